//! Times the matrix products of the recurrent kernels on their real shapes, at the current
//! thread count (`UNFOLD_THREADS`): the per-step forward product `B x H @ H x G*H`, the per-step
//! backward product `B x G*H @ G*H x H`, the whole-sequence input projection
//! `T*B x I @ I x G*H` and the weight gradient `A^T B` with K = T*B.
//!
//! `cargo run --release --example gemm_shapes`

use std::time::Instant;
use unfold::kernels::gemm::{gemm_nn, gemm_tn};

fn time(label: &str, flops: f64, mut f: impl FnMut()) {
    f();
    let mut v = Vec::new();
    let start = Instant::now();
    while v.len() < 20 || start.elapsed().as_secs_f64() < 0.5 {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_secs_f64());
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let med = v[v.len() / 2];
    println!(
        "{label:<36} {:>9.1} us {:>7.1} GFLOP/s",
        med * 1e6,
        flops / med / 1e9
    );
}

fn main() {
    println!("threads = {}", unfold::num_threads());
    if std::env::args().any(|a| a == "--square") {
        square();
        return;
    }
    for &(b, h, g) in &[
        (32usize, 64usize, 4usize),
        (32, 256, 4),
        (64, 256, 4),
        (64, 512, 4),
    ] {
        let gh = g * h;
        let x = vec![0.5f32; b * h];
        let w = vec![0.25f32; gh * h];
        let mut c = vec![0.0f32; b * gh];
        let fl = 2.0 * (b * h * gh) as f64;
        time(&format!("step fwd {b}x{h} @ {h}x{gh}"), fl, || {
            gemm_nn(b, gh, h, &x, h, &w, gh, &mut c, gh, true)
        });
        let mut d = vec![0.0f32; b * h];
        time(&format!("step bwd {b}x{gh} @ {gh}x{h}"), fl, || {
            gemm_nn(b, h, gh, &c, gh, &w, h, &mut d, h, true)
        });
        let tb = 100 * b;
        let xs = vec![0.5f32; tb * h];
        let mut gs = vec![0.0f32; tb * gh];
        let fl = 2.0 * (tb * h * gh) as f64;
        time(&format!("proj {tb}x{h} @ {h}x{gh}"), fl, || {
            gemm_nn(tb, gh, h, &xs, h, &w, gh, &mut gs, gh, false)
        });
        let mut dw = vec![0.0f32; gh * h];
        time(&format!("dW {gh}x{tb} @ {tb}x{h}"), fl, || {
            gemm_tn(gh, h, tb, &gs, gh, &xs, h, &mut dw, h, true)
        });
    }
}

#[allow(dead_code)]
fn square() {
    let n = 2048;
    let a = vec![0.5f32; n * n];
    let b = vec![0.25f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let fl = 2.0 * (n * n * n) as f64;
    time("square 2048 nn (row-major)", fl, || {
        gemm_nn(n, n, n, &a, n, &b, n, &mut c, n, false)
    });
}
