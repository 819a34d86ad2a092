//! Matrix products for the kernels, on the `gemm` crate (chosen by measurement: see
//! `docs/gemm-choice.md`), plus hand-written single-row paths.
//!
//! All matrices are row-major slices with an explicit row stride (`ld*`), so a direction's
//! columns inside a bidirectional output `[T, B, 2H]` are used in place, never copied. Every
//! function either overwrites `c` or accumulates into it (`acc`). A product with a single row
//! (batch 1, the streaming step) does not go through `gemm`, which is slow on GEMV shapes, but
//! through fused dot-product / axpy loops.

use crate::float::Float;
use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Below this many multiply-adds a product runs on one thread: splitting it costs more than it
/// saves on the small per-step shapes (measured: two threads slow `32 x 64 x 256` down).
const PARALLEL_MIN_WORK: usize = 1 << 20;

/// The number of threads matrix products use: `set_num_threads`, else the `UNFOLD_THREADS`
/// environment variable, else the available cores.
pub fn num_threads() -> usize {
    let n = THREADS.load(Ordering::Relaxed);
    if n > 0 {
        return n;
    }
    let n = std::env::var("UNFOLD_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    set_num_threads(n);
    n
}

/// Sets the number of threads (at least 1) used by matrix products and parallel loops.
///
/// The first call also sizes rayon's global pool; later calls only lower or raise how many of
/// its workers a product asks for.
pub fn set_num_threads(n: usize) {
    let n = n.max(1);
    THREADS.store(n, Ordering::Relaxed);
    // Fails harmlessly if the pool already exists.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

thread_local! {
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While alive, products on the current thread run on that thread only (for a thread that
/// works beside others, e.g. a consumer in a pipeline). Restores the previous mode on drop.
pub struct SerialScope(bool);

/// Makes this thread's products serial until the returned guard is dropped.
pub fn serial_scope() -> SerialScope {
    SerialScope(SERIAL.with(|s| s.replace(true)))
}

impl Drop for SerialScope {
    fn drop(&mut self) {
        SERIAL.with(|s| s.set(self.0));
    }
}

/// Threads a product on this thread may use: 1 inside a [`serial_scope`], else
/// [`num_threads`].
pub(crate) fn effective_threads() -> usize {
    if SERIAL.with(|s| s.get()) {
        1
    } else {
        num_threads()
    }
}

fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    let threads = effective_threads();
    if threads > 1 && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_WORK {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

#[inline]
fn check(len: usize, rows: usize, cols: usize, ld: usize, name: &str) {
    if rows > 0 && cols > 0 {
        assert!(
            ld >= cols && (rows - 1) * ld + cols <= len,
            "{name}: buffer of {len} too small for {rows}x{cols} with stride {ld}"
        );
    }
}

/// Raw strided product `c = [acc ? c : 0] + a * b` where each operand is given by pointer,
/// row stride and column stride.
#[allow(clippy::too_many_arguments)]
unsafe fn raw<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    c: *mut T,
    c_rs: usize,
    acc: bool,
    a: *const T,
    a_rs: usize,
    a_cs: usize,
    b: *const T,
    b_rs: usize,
    b_cs: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            for i in 0..m {
                for j in 0..n {
                    *c.add(i * c_rs + j) = T::ZERO;
                }
            }
        }
        return;
    }
    let threads = effective_threads();
    let work = m.saturating_mul(n).saturating_mul(k);
    if threads > 1 && work >= PARALLEL_MIN_WORK && m <= SPLIT_COLS_MAX_ROWS && n >= 32 {
        // A short, wide product (the per-step recurrent GEMM, B rows): split the columns
        // into one block per thread. The gemm crate's own threading gains nothing here.
        let parts = threads.min(n / 16).max(1);
        let chunk = (n.div_ceil(parts)).div_ceil(16) * 16;
        let (cp, ap, bp) = (SendPtr(c), SendPtr(a as *mut T), SendPtr(b as *mut T));
        rayon::scope(|sc| {
            for j0 in (0..n).step_by(chunk) {
                let nj = chunk.min(n - j0);
                sc.spawn(move |_| {
                    let (cp, ap, bp) = (cp, ap, bp);
                    // SAFETY: column blocks are disjoint; the caller checked the bounds.
                    unsafe {
                        one(
                            m,
                            nj,
                            k,
                            cp.0.add(j0),
                            c_rs,
                            acc,
                            ap.0,
                            a_rs,
                            a_cs,
                            bp.0.add(j0 * b_cs),
                            b_rs,
                            b_cs,
                            gemm::Parallelism::None,
                        )
                    }
                });
            }
        });
        return;
    }
    one(
        m,
        n,
        k,
        c,
        c_rs,
        acc,
        a,
        a_rs,
        a_cs,
        b,
        b_rs,
        b_cs,
        parallelism(m, n, k),
    );
}

/// Products with at most this many rows are threaded by splitting columns ourselves.
const SPLIT_COLS_MAX_ROWS: usize = 256;

#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
// SAFETY: used only to hand disjoint blocks of one buffer to scoped threads.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

#[allow(clippy::too_many_arguments)]
unsafe fn one<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    c: *mut T,
    c_rs: usize,
    acc: bool,
    a: *const T,
    a_rs: usize,
    a_cs: usize,
    b: *const T,
    b_rs: usize,
    b_cs: usize,
    par: gemm::Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        c_rs as isize,
        acc,
        a,
        a_cs as isize,
        a_rs as isize,
        b,
        b_cs as isize,
        b_rs as isize,
        T::ONE,
        T::ONE,
        false,
        false,
        false,
        par,
    );
}

/// `c[m,n] (+)= a[m,k] * w[n,k]^T`: the layer products `x W^T` and `h W_hh^T`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_nt<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    lda: usize,
    w: &[T],
    ldw: usize,
    c: &mut [T],
    ldc: usize,
    acc: bool,
) {
    check(a.len(), m, k, lda, "gemm_nt a");
    check(w.len(), n, k, ldw, "gemm_nt w");
    check(c.len(), m, n, ldc, "gemm_nt c");
    if m <= 2 {
        for i in 0..m {
            let ai = &a[i * lda..i * lda + k];
            let ci = &mut c[i * ldc..i * ldc + n];
            gemv_rows(ai, w, ldw, ci, acc);
        }
        return;
    }
    unsafe {
        raw(
            m,
            n,
            k,
            c.as_mut_ptr(),
            ldc,
            acc,
            a.as_ptr(),
            lda,
            1,
            w.as_ptr(),
            1,
            ldw,
        )
    }
}

/// `c[m,n] (+)= a[m,k] * b[k,n]`: the backward products `dgates W`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_nn<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    lda: usize,
    b: &[T],
    ldb: usize,
    c: &mut [T],
    ldc: usize,
    acc: bool,
) {
    check(a.len(), m, k, lda, "gemm_nn a");
    check(b.len(), k, n, ldb, "gemm_nn b");
    check(c.len(), m, n, ldc, "gemm_nn c");
    if m <= 2 {
        for i in 0..m {
            let ai = &a[i * lda..i * lda + k];
            let ci = &mut c[i * ldc..i * ldc + n];
            axpy_rows(ai, b, ldb, ci, acc);
        }
        return;
    }
    unsafe {
        raw(
            m,
            n,
            k,
            c.as_mut_ptr(),
            ldc,
            acc,
            a.as_ptr(),
            lda,
            1,
            b.as_ptr(),
            ldb,
            1,
        )
    }
}

/// Largest output (`m * n` entries) whose [`gemm_tn`] splits the rows `k` between threads.
const K_SPLIT_MAX_OUTPUT: usize = 1 << 15;
/// Fewest rows `k` for that split.
const K_SPLIT_MIN_ROWS: usize = 512;

/// [`gemm_tn`] with the `k` rows split between `threads` threads, each summing its share into
/// its own `[m, n]` buffer (the first into `c`), added in order at the end.
///
/// For a small output and many rows (the weight gradients of a layer with H = 64: `[256, 64]`
/// over 3200 rows), `gemm` can only split the small output and gains nothing from a second
/// thread (0.79 ms either way); split rows take 0.48-0.51 ms (`docs/benchmarks.md`). Larger
/// outputs keep `gemm`'s own split, which is as fast there.
#[allow(clippy::too_many_arguments)]
fn gemm_tn_split_rows<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    lda: usize,
    b: &[T],
    ldb: usize,
    c: &mut [T],
    ldc: usize,
    acc: bool,
    threads: usize,
) {
    use rayon::prelude::*;
    let parts = threads.min(k / (K_SPLIT_MIN_ROWS / 2)).max(1);
    let bounds: Vec<(usize, usize)> = (0..parts)
        .map(|p| (p * k / parts, (p + 1) * k / parts))
        .collect();
    let mut partial = vec![T::ZERO; (parts - 1) * m * n];
    let part = |(r0, r1): (usize, usize), out: &mut [T], ld: usize, acc: bool| {
        let _one = serial_scope();
        let rows = r1 - r0;
        let (a, b) = (&a[r0 * lda..], &b[r0 * ldb..]);
        let (a, b) = (&a[..(rows - 1) * lda + m], &b[..(rows - 1) * ldb + n]);
        gemm_tn(m, n, rows, a, lda, b, ldb, out, ld, acc);
    };
    rayon::join(
        || part(bounds[0], c, ldc, acc),
        || {
            partial
                .par_chunks_mut(m * n)
                .zip(&bounds[1..])
                .for_each(|(out, &r)| part(r, out, n, false))
        },
    );
    for p in partial.chunks_exact(m * n) {
        for i in 0..m {
            for (cv, &pv) in c[i * ldc..i * ldc + n]
                .iter_mut()
                .zip(&p[i * n..(i + 1) * n])
            {
                *cv += pv;
            }
        }
    }
}

/// `c[m,n] (+)= a[k,m]^T * b[k,n]`: the weight gradients, with `k = T * B` rows.
#[allow(clippy::too_many_arguments)]
pub fn gemm_tn<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: &[T],
    lda: usize,
    b: &[T],
    ldb: usize,
    c: &mut [T],
    ldc: usize,
    acc: bool,
) {
    check(a.len(), k, m, lda, "gemm_tn a");
    check(b.len(), k, n, ldb, "gemm_tn b");
    check(c.len(), m, n, ldc, "gemm_tn c");
    let threads = effective_threads();
    if threads > 1 && m * n <= K_SPLIT_MAX_OUTPUT && k >= K_SPLIT_MIN_ROWS && k >= 2 * m.max(n) {
        gemm_tn_split_rows(m, n, k, a, lda, b, ldb, c, ldc, acc, threads);
        return;
    }
    unsafe {
        raw(
            m,
            n,
            k,
            c.as_mut_ptr(),
            ldc,
            acc,
            a.as_ptr(),
            1,
            lda,
            b.as_ptr(),
            ldb,
            1,
        )
    }
}

/// Lanes of the hand-written dot product: enough independent accumulators for the compiler to
/// fill vector registers without reassociating floating-point sums itself.
const LANES: usize = 16;

/// Dot product with `LANES` independent partial sums.
#[inline(always)]
pub fn dot<T: Float>(x: &[T], y: &[T]) -> T {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [T::ZERO; LANES];
    let chunks = n / LANES;
    for c in 0..chunks {
        let xs = &x[c * LANES..c * LANES + LANES];
        let ys = &y[c * LANES..c * LANES + LANES];
        for l in 0..LANES {
            acc[l] += xs[l] * ys[l];
        }
    }
    let mut tail = T::ZERO;
    for i in chunks * LANES..n {
        tail += x[i] * y[i];
    }
    let mut s = T::ZERO;
    for a in acc {
        s += a;
    }
    s + tail
}

/// Below this many weights a single-row product stays on one thread.
pub(crate) const GEMV_PARALLEL_MIN: usize = 1 << 16;

/// `c[j] (+)= dot(a, w[j, :])` for every row j of w. Large products are split by rows across
/// the threads: each then streams its share of the weights from its own core's cache.
pub fn gemv_rows<T: Float>(a: &[T], w: &[T], ldw: usize, c: &mut [T], acc: bool) {
    let threads = effective_threads();
    if threads > 1 && c.len() * a.len() >= GEMV_PARALLEL_MIN && c.len() >= 2 * threads {
        let rows = c.len().div_ceil(threads);
        rayon::scope(|sc| {
            for (i, cc) in c.chunks_mut(rows).enumerate() {
                let ww = &w[i * rows * ldw..];
                sc.spawn(move |_| gemv_rows_serial(a, ww, ldw, cc, acc));
            }
        });
        return;
    }
    gemv_rows_serial(a, w, ldw, c, acc);
}

/// [`gemv_rows`] on the calling thread only.
pub(crate) fn gemv_rows_serial<T: Float>(a: &[T], w: &[T], ldw: usize, c: &mut [T], acc: bool) {
    let k = a.len();
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && super::packed::available() {
        if !c.is_empty() {
            assert!(ldw >= k && w.len() >= (c.len() - 1) * ldw + k);
        }
        // SAFETY: T is f32, AVX-512 is available, and the sizes were checked.
        unsafe {
            super::cells512::dot_rows(
                a.as_ptr() as *const f32,
                k,
                w.as_ptr() as *const f32,
                ldw,
                c.len(),
                c.as_mut_ptr() as *mut f32,
                acc,
            )
        };
        return;
    }
    for (j, cj) in c.iter_mut().enumerate() {
        let d = dot(a, &w[j * ldw..j * ldw + k]);
        *cj = if acc { *cj + d } else { d };
    }
}

/// `c (+)= sum_k a[k] * b[k, :]`.
pub fn axpy_rows<T: Float>(a: &[T], b: &[T], ldb: usize, c: &mut [T], acc: bool) {
    let n = c.len();
    if !acc {
        c.fill(T::ZERO);
    }
    for (kk, &ak) in a.iter().enumerate() {
        if ak == T::ZERO {
            continue;
        }
        let row = &b[kk * ldb..kk * ldb + n];
        for (cj, &bj) in c.iter_mut().zip(row) {
            *cj += ak * bj;
        }
    }
}

/// Writes the transpose of `src` (`[rows, cols]`, row-major) into `dst` (`[cols, rows]`), in
/// cache-sized blocks.
pub fn transpose<T: Float>(rows: usize, cols: usize, src: &[T], dst: &mut [T]) {
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    const BLK: usize = 32;
    for r0 in (0..rows).step_by(BLK) {
        for c0 in (0..cols).step_by(BLK) {
            for r in r0..(r0 + BLK).min(rows) {
                for c in c0..(c0 + BLK).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

/// Adds the rows `a[k, n]` (row stride `lda`) into `c[n]`: the bias gradients.
pub fn sum_rows<T: Float>(k: usize, n: usize, a: &[T], lda: usize, c: &mut [T]) {
    for r in 0..k {
        for (cj, &aj) in c[..n].iter_mut().zip(&a[r * lda..r * lda + n]) {
            *cj += aj;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn rand(n: usize, r: &mut Rng) -> Vec<f64> {
        (0..n).map(|_| r.uniform_range(-1.0, 1.0)).collect()
    }

    /// Every product against a plain triple loop over many sizes, strides and both modes.
    #[test]
    fn row_split_weight_gradient_equals_the_serial_product() {
        // A small output over many rows takes the split (2 threads), with and without
        // accumulation and with row strides wider than the product.
        set_num_threads(2);
        let mut r = Rng::new(9);
        let (m, n, k) = (24, 10, 2100);
        let (lda, ldb, ldc) = (m + 3, n + 1, n + 2);
        let a = rand(k * lda, &mut r);
        let b = rand(k * ldb, &mut r);
        let c0 = rand(m * ldc, &mut r);
        for acc in [false, true] {
            let mut split = c0.clone();
            gemm_tn(m, n, k, &a, lda, &b, ldb, &mut split, ldc, acc);
            let mut want = c0.clone();
            {
                let _one = serial_scope();
                gemm_tn(m, n, k, &a, lda, &b, ldb, &mut want, ldc, acc);
            }
            for (i, (x, y)) in split.iter().zip(&want).enumerate() {
                assert!(
                    (x - y).abs() < 1e-10 * (1.0 + y.abs()),
                    "{acc} {i}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn products_match_reference() {
        let mut r = Rng::new(3);
        for &(m, n, k) in &[
            (1, 5, 7),
            (2, 3, 1),
            (3, 17, 9),
            (33, 40, 65),
            (8, 1, 3),
            (5, 4, 0),
        ] {
            let pad = 3;
            let a = rand(m * (k + pad), &mut r);
            let w = rand(n * (k + pad), &mut r);
            let b = rand(k * (n + pad), &mut r);
            let at = rand(k * (m + pad), &mut r);
            for acc in [false, true] {
                let c0 = rand(m * (n + pad), &mut r);
                let ldc = n + pad;
                let mut c1 = c0.clone();
                gemm_nt(m, n, k, &a, k + pad, &w, k + pad, &mut c1, ldc, acc);
                let mut c2 = c0.clone();
                gemm_nn(m, n, k, &a, k + pad, &b, n + pad, &mut c2, ldc, acc);
                let mut c3 = c0.clone();
                gemm_tn(m, n, k, &at, m + pad, &b, n + pad, &mut c3, ldc, acc);
                for i in 0..m {
                    for j in 0..n {
                        let base = if acc { c0[i * ldc + j] } else { 0.0 };
                        let (mut e1, mut e2, mut e3) = (base, base, base);
                        for kk in 0..k {
                            e1 += a[i * (k + pad) + kk] * w[j * (k + pad) + kk];
                            e2 += a[i * (k + pad) + kk] * b[kk * (n + pad) + j];
                            e3 += at[kk * (m + pad) + i] * b[kk * (n + pad) + j];
                        }
                        assert!((c1[i * ldc + j] - e1).abs() < 1e-12, "nt {m} {n} {k}");
                        assert!((c2[i * ldc + j] - e2).abs() < 1e-12, "nn {m} {n} {k}");
                        assert!((c3[i * ldc + j] - e3).abs() < 1e-12, "tn {m} {n} {k}");
                    }
                    // Padding columns are never written.
                    for j in n..ldc {
                        assert_eq!(c1[i * ldc + j], c0[i * ldc + j]);
                    }
                }
            }
        }
    }
}
