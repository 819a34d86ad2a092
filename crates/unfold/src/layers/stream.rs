//! The fused streaming step for a single sequence (batch 1): per layer, one parallel region in
//! which each thread computes the gate rows of its own block of hidden units (dot products with
//! x and h(t-1)) and then those units' cell update. One synchronisation per layer and step,
//! each thread streaming only its share of the weights, no allocation.

use crate::float::Float;
use crate::kernels::elman::{self, Activation};
use crate::kernels::gemm::{dot, num_threads, SendPtr, GEMV_PARALLEL_MIN};
use crate::kernels::team::run_steps;
use crate::kernels::{gru, lstm};
use crate::layers::config::{CellKind, EngineCell};
use crate::layers::engine_io::as_f32;
use crate::layers::params::CellParams;

/// Scratch of the fused step: gates `[G*H]`, hidden projection `[G*H]` (GRU), a copy of
/// h(t-1) `[H]` that the dot products read while the units are updated, and an output row.
pub(crate) struct StepScratch<'a, T> {
    pub gates: &'a mut [T],
    pub hp: &'a mut [T],
    pub h_old: &'a mut [T],
    pub out: &'a mut [T],
}

/// Advances one layer of one sequence by one step: `h` (H) and `c` (H, LSTM) in place.
pub(crate) fn step_single<T: Float>(
    kind: CellKind,
    p: &CellParams<T>,
    x: &[T],
    h: &mut [T],
    c: &mut [T],
    s: StepScratch<T>,
) {
    let engine = kind
        .engine_cell()
        .expect("the streaming kernel runs only a cell that has an engine");
    let hs = h.len();
    let g = kind.gates();
    s.h_old.copy_from_slice(h);
    let threads = num_threads();
    let work = g * hs * (x.len() + hs);
    let parts = if threads > 1 && work >= GEMV_PARALLEL_MIN && hs >= 32 {
        threads
    } else {
        1
    };
    let chunk = hs.div_ceil(parts).div_ceil(8) * 8;
    let ptrs = (
        SendPtr(s.gates.as_mut_ptr()),
        SendPtr(s.hp.as_mut_ptr()),
        SendPtr(s.out.as_mut_ptr()),
        SendPtr(h.as_mut_ptr()),
        SendPtr(c.as_mut_ptr()),
    );
    let h_old: &[T] = s.h_old;
    let has_c = !c.is_empty();
    // f32 on AVX-512: four gate rows per pass over x (or h), in explicit vector code.
    let fast = crate::layers::engine_choice::step_fused(as_f32(x).is_some());
    let run = move |u0: usize, u1: usize| {
        let (gp, hpp, op, hptr, cptr) = ptrs;
        // SAFETY: every thread touches only the units u0..u1 of each gate block, of h, c and
        // the output row; the ranges of different threads are disjoint and inside the buffers.
        unsafe {
            let blk = |ptr: &SendPtr<T>, b: usize| {
                std::slice::from_raw_parts_mut(ptr.0.add(b * hs + u0), u1 - u0)
            };
            for gi in 0..g {
                let gate = blk(&gp, gi);
                let hpg = blk(&hpp, gi);
                if fast {
                    let r0 = gi * hs + u0;
                    dot_rows_f32(x, &p.w_ih()[r0 * x.len()..], gate);
                    dot_rows_f32(h_old, &p.w_hh()[r0 * hs..], hpg);
                    for (k, u) in (u0..u1).enumerate() {
                        let r = gi * hs + u;
                        if !p.b_ih().is_empty() {
                            gate[k] += p.b_ih()[r];
                            hpg[k] += p.b_hh()[r];
                        }
                        if kind != CellKind::Gru {
                            gate[k] += hpg[k];
                        }
                    }
                    continue;
                }
                for (k, u) in (u0..u1).enumerate() {
                    let r = gi * hs + u;
                    let wi = &p.w_ih()[r * x.len()..(r + 1) * x.len()];
                    let wh = &p.w_hh()[r * hs..(r + 1) * hs];
                    let (bi, bh) = if p.b_ih().is_empty() {
                        (T::ZERO, T::ZERO)
                    } else {
                        (p.b_ih()[r], p.b_hh()[r])
                    };
                    let xp = dot(x, wi) + bi;
                    let hp = dot(h_old, wh) + bh;
                    if kind == CellKind::Gru {
                        gate[k] = xp;
                        hpg[k] = hp;
                    } else {
                        gate[k] = xp + hp;
                    }
                }
            }
            let hu = blk(&hptr, 0);
            let ou = blk(&op, 0);
            match engine {
                EngineCell::Lstm => {
                    let cu = if has_c { blk(&cptr, 0) } else { &mut [] };
                    lstm::forward_gates(
                        blk(&gp, 0),
                        blk(&gp, 1),
                        blk(&gp, 2),
                        blk(&gp, 3),
                        cu,
                        hu,
                        ou,
                    );
                }
                EngineCell::Gru => gru::forward_gates(
                    blk(&gp, 0),
                    blk(&gp, 1),
                    blk(&gp, 2),
                    blk(&hpp, 0),
                    blk(&hpp, 1),
                    blk(&hpp, 2),
                    hu,
                    ou,
                ),
                EngineCell::RnnTanh => elman::forward_row(Activation::Tanh, blk(&gp, 0), hu, ou),
                EngineCell::RnnRelu => elman::forward_row(Activation::Relu, blk(&gp, 0), hu, ou),
            }
        }
    };
    // One round of the team: each worker takes the same block of units at every step, so
    // its share of the weights stays in its own core's cache.
    let blocks = hs.div_ceil(chunk);
    run_steps(parts, 1, blocks, |_, b| {
        run(b * chunk, ((b + 1) * chunk).min(hs))
    });
}

/// `out[r] = dot(v, w[r, ..])` for the first `out.len()` rows of `w` (rows of `v.len()`), on
/// the AVX-512 kernel. Only called when `T` is `f32` and the kernel is available.
fn dot_rows_f32<T: Float>(v: &[T], w: &[T], out: &mut [T]) {
    let k = v.len();
    assert!(w.len() >= out.len() * k);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller checked that T is f32 and AVX-512 is available; sizes checked above.
    unsafe {
        crate::kernels::cells512::dot_rows(
            v.as_ptr() as *const f32,
            k,
            w.as_ptr() as *const f32,
            k,
            out.len(),
            out.as_mut_ptr() as *mut f32,
            false,
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("no AVX-512 off x86-64");
}
