//! The inference forward of an LSTM direction with the batch in the vector lanes, on the
//! tiles of `kernels::lanes`.
//!
//! The state lives transposed for the whole sweep (`h^T`, `c^T`: `[H, B]`, double-buffered
//! `h^T`), and so does the current input row block (`x(t)^T`: `[I, B]`, double-buffered). The
//! hidden units are cut into blocks of [`BLOCK`] = 32; the task "block u at step t" runs the
//! block's tiles (product and cell update in registers), writes the block's output columns of
//! step t, and transposes its share of the input features of the next step, so a step needs
//! one synchronisation (`kernels::team`) and no pass outside the team. Only inference uses it:
//! training keeps the gates for backward, which the row-major fused loop (`layers::fused`)
//! provides.

use crate::kernels::aligned::carve_aligned;
use crate::kernels::gemm::SendPtr;
#[cfg(target_arch = "x86_64")]
use crate::kernels::lanes::step_block;
use crate::kernels::lanes::{partial_len, LanePanels, BLOCK};
use crate::kernels::team::run_steps;
use crate::layers::config::CellKind;
use crate::layers::engine_io::SharedColumns;
use crate::layers::sweep::Sweep;

/// Below this much multiply-add work per step the loop stays on one thread.
const PARALLEL_MIN_STEP_WORK: usize = 1 << 17;

/// Up to this many bytes of weights, every core holds them all in its L2 and the sequences
/// are split between threads (down to one vector of 16 each).
const SMALL_WEIGHTS: usize = 1 << 20;

/// The most 16-lane vectors of sequences a call takes (a batch of up to 256).
const MAX_VECTORS: usize = 16;

/// Whether an inference forward of `kind` with `batch` sequences runs here: an LSTM on a
/// machine with AVX-512, and a batch that fills at least three quarters of its 16-lane vectors
/// (up to [`MAX_VECTORS`] of them; the lanes past the batch compute nothing useful).
pub(crate) fn usable(kind: CellKind, batch: usize) -> bool {
    let ld = lanes(batch);
    kind == CellKind::Lstm
        && (16..=16 * MAX_VECTORS).contains(&ld)
        && 4 * batch >= 3 * ld
        && crate::kernels::packed::available()
}

/// Lanes for `batch` sequences: whole 16-lane vectors.
fn lanes(batch: usize) -> usize {
    batch.next_multiple_of(16)
}

/// Scratch values [`forward`] needs for `input` inputs, `hidden` units and `batch` sequences.
pub(crate) fn scratch_len(input: usize, hidden: usize, batch: usize) -> usize {
    let ld = lanes(batch);
    (2 * input + 3 * hidden) * ld + hidden.div_ceil(BLOCK) * partial_len(ld) + 6 * 16
}

/// One LSTM direction's inference forward: `x` (`[T*B, I]`), `out` the outputs (row stride
/// `out.ld`, zero at padded steps), `h` and `c` (`[B, H]`) the state, initial on entry and
/// final on exit (each sequence's at its own last step); `scratch` at least
/// [`scratch_len`] values.
///
/// # Safety
/// `out` must be valid for `out.len` values, and nothing else may access this direction's
/// output columns (`r * out.ld + j`, `j < H`) meanwhile; the other columns are not touched.
pub(crate) unsafe fn forward(
    sw: &Sweep,
    panels: &LanePanels,
    x: &[f32],
    out: SharedColumns<f32>,
    h: &mut [f32],
    c: &mut [f32],
    scratch: &mut [f32],
) {
    let (hs, bsz, input) = (sw.hidden, sw.batch, sw.input_size);
    assert!(
        usable(sw.kind, bsz),
        "the lane layout needs an LSTM and whole vectors"
    );
    assert_eq!(panels.shape(), (input, hs), "packed for another shape");
    assert!(
        scratch.len() >= scratch_len(input, hs, bsz),
        "scratch too small"
    );
    let tb = sw.steps * bsz;
    assert!(x.len() >= tb * input && h.len() >= bsz * hs && c.len() >= bsz * hs);
    assert!(sw.steps == 0 || out.len >= (tb - 1) * out.ld + hs);
    let ld = lanes(bsz);
    let (ni, nh) = (input * ld, hs * ld);
    let blocks = hs.div_ceil(BLOCK);
    let np = blocks * partial_len(ld);
    let [xa, xb, ha, hb, ct, part] = carve_aligned(scratch, [ni, ni, nh, nh, nh, np]);
    if ld > bsz {
        // Lanes past the batch: zeros (finite, never denormal), never active, never read out.
        for v in [&mut *xa, &mut *xb, &mut *ha, &mut *hb, &mut *ct] {
            v.fill(0.0);
        }
    }
    for b in 0..bsz {
        for j in 0..hs {
            ha[j * ld + b] = h[b * hs + j];
            ct[j * ld + b] = c[b * hs + j];
        }
    }
    if sw.steps > 0 {
        // SAFETY: `xa` holds `input * ld` values.
        unsafe { transpose_rows(x, sw.fwd_t(0), bsz, ld, input, xa.as_mut_ptr()) };
    }
    let (xa, xb, ha, hb, ct, op, pp) = (
        SendPtr(xa.as_mut_ptr()),
        SendPtr(xb.as_mut_ptr()),
        SendPtr(ha.as_mut_ptr()),
        SendPtr(hb.as_mut_ptr()),
        SendPtr(ct.as_mut_ptr()),
        SendPtr(out.ptr),
        SendPtr(part.as_mut_ptr()),
    );
    // Block u at step s for the sequences (lanes) l0..l1.
    let task = |s: usize, u: usize, l0: usize, l1: usize| {
        // Whole-struct copies, so the closure captures the Sync wrappers, not their fields.
        let (xa, xb, ha, hb, ct, op, pp) = (xa, xb, ha, hb, ct, op, pp);
        let t = sw.fwd_t(s);
        let ((xcur, xnext), (hcur, hnext)) = if s.is_multiple_of(2) {
            ((xa, xb), (ha, hb))
        } else {
            ((xb, xa), (hb, ha))
        };
        let (u0, u1) = (u * BLOCK, ((u + 1) * BLOCK).min(hs));
        // SAFETY: this task writes only lanes l0..l1 (whole cache lines) of the rows u0..u1 of
        // c^T, h(t)^T and of block u's partial sums, the columns u0..u1 of those sequences'
        // output rows of step t, and its share of those lanes of the next step's x^T; it reads
        // lanes l0..l1 of x(t)^T and h(t-1)^T, completed before this step began (run_steps
        // orders steps; in the split by sequences one thread owns the lanes for all steps).
        // All offsets are within the sizes asserted above.
        unsafe {
            if s + 1 < sw.steps {
                // This block's share of the next step's features, in whole 16-feature chunks.
                let chunks = input.div_ceil(16);
                let tn = sw.fwd_t(s + 1);
                for kc in u * chunks / blocks..(u + 1) * chunks / blocks {
                    let (k0, cols) = (16 * kc, (input - 16 * kc).min(16));
                    for b0 in (l0..l1).step_by(16) {
                        let src = x.as_ptr().add((tn * bsz + b0) * input + k0);
                        let rows = (bsz - b0).min(16);
                        tr16(src, input, rows, cols, xnext.0.add(k0 * ld + b0), ld, 0);
                    }
                }
            }
            let mut active = [0u16; MAX_VECTORS];
            for (l, &len) in sw.lengths[..bsz].iter().enumerate() {
                if t < len {
                    active[l / 16] |= 1 << (l % 16);
                }
            }
            let part = pp.0.add(u * partial_len(ld));
            #[cfg(target_arch = "x86_64")]
            step_block(
                panels,
                u0,
                u1,
                ld,
                l0..l1,
                xcur.0,
                hcur.0,
                ct.0,
                hnext.0,
                part,
                &active,
            );
            #[cfg(not(target_arch = "x86_64"))]
            {
                let _ = (part, active);
                unreachable!("the lane layout needs AVX-512");
            }
            // The outputs of step t: this block's columns, zero for sequences without step t.
            for b0 in (l0..l1).step_by(16) {
                let inactive = !(active[b0 / 16]);
                for j0 in (u0..u1).step_by(16) {
                    let dst = op.0.add((t * bsz + b0) * out.ld + j0);
                    let src = hnext.0.add(j0 * ld + b0);
                    let cols = (bsz - b0).min(16);
                    tr16(src, ld, (u1 - j0).min(16), cols, dst, out.ld, inactive);
                }
            }
        }
    };
    let threads = if bsz * 4 * hs * (input + hs) < PARALLEL_MIN_STEP_WORK {
        1
    } else {
        crate::kernels::gemm::effective_threads()
    };
    // Sequences do not interact: when every core can hold all the weights in its cache, each
    // thread runs every step for its own sequences (at least one vector of 16; no
    // synchronisation, no state moving between cores). Otherwise the threads split the blocks
    // of units at every step, each keeping its share of the weights in its cache (measured
    // faster at H = 256 and 512 with 64 sequences than each thread streaming all the weights
    // for half of them).
    let weights = 4 * hs * (input + hs) * 4;
    let groups = if weights <= SMALL_WEIGHTS {
        threads.min(ld / 16)
    } else {
        1
    };
    if groups >= 2 {
        let per = (ld / 16).div_ceil(groups) * 16;
        rayon::scope(|sc| {
            for l0 in (0..ld).step_by(per) {
                let task = &task;
                sc.spawn(move |_| {
                    for s in 0..sw.steps {
                        for u in 0..blocks {
                            task(s, u, l0, (l0 + per).min(ld));
                        }
                    }
                });
            }
        });
    } else {
        run_steps(threads, sw.steps, blocks, |s, u| task(s, u, 0, ld));
    }
    let last = if sw.steps.is_multiple_of(2) { ha } else { hb };
    // SAFETY: the team has finished; `last` and `ct` are carved pieces of `nh` values.
    let (last, ct) = unsafe {
        (
            std::slice::from_raw_parts(last.0, nh),
            std::slice::from_raw_parts(ct.0, nh),
        )
    };
    for b in 0..bsz {
        for j in 0..hs {
            h[b * hs + j] = last[j * ld + b];
            c[b * hs + j] = ct[j * ld + b];
        }
    }
}

/// [`crate::kernels::lanes::transpose16`] where it exists.
///
/// # Safety
/// As for `transpose16`.
#[inline]
unsafe fn tr16(
    src: *const f32,
    src_ld: usize,
    rows: usize,
    cols: usize,
    dst: *mut f32,
    dst_ld: usize,
    zero: u16,
) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        crate::kernels::lanes::transpose16(src, src_ld, rows, cols, dst, dst_ld, zero)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (src, src_ld, rows, cols, dst, dst_ld, zero);
        unreachable!("the lane layout needs AVX-512");
    }
}

/// `dst[k * ld + b] = x[(t * B + b) * I + k]` for every feature `k` and sequence `b < B`.
///
/// # Safety
/// `dst` must be valid for writes of `I` rows of `ld >= B` values, and no other live
/// reference may overlap them.
unsafe fn transpose_rows(x: &[f32], t: usize, bsz: usize, ld: usize, input: usize, dst: *mut f32) {
    for b in 0..bsz {
        let row = &x[(t * bsz + b) * input..(t * bsz + b + 1) * input];
        for (k, &v) in row.iter().enumerate() {
            // SAFETY: row k < I of `dst`, lane b < ld, as the caller guarantees.
            unsafe { *dst.add(k * ld + b) = v };
        }
    }
}
