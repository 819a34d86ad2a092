//! The `f32` time loops on the packed AVX-512 kernel (`kernels::packed`), with the per-step
//! product and the gate nonlinearities fused per block of hidden units.
//!
//! The hidden units are cut into blocks of [`NR`] = 32. The task "block u at step t" computes
//! the recurrent product for all gate columns of those units (all batch rows), then at once
//! applies the cell's element-wise update to them (`kernels::cells512`), so a step needs one
//! synchronisation (h(t) complete before step t+1 reads it; `kernels::team`) instead of a fork
//! and join around the product plus a serial element-wise pass. The state is double-buffered
//! in private, cache-line-aligned copies: a task reads all of h(t-1) and writes only its units
//! of h(t), so no cache line is written by two cores.
//!
//! The input projection is still one product per chunk of steps (not one per step), computed a
//! chunk ahead of the recurrence so its results are in cache when the loop reads them, and each
//! block's columns are projected by the task that then owns them.
//!
//! Backward is cut the same way: dh(t-1) for a block of units is `dgates(t) W_hh[:, units]`,
//! and the gate gradients of those units at step t-1 need only that block of dh, so one task
//! does both, again with one synchronisation per step. The weight gradients stay large GEMMs
//! after the loop (`direction::backward`). Results equal the portable path's up to rounding (`tests/fused_path.rs` compares against
//! the f64 path on several blocks, ragged sizes, both directions and variable lengths; the
//! PyTorch parity tests run this path on AVX-512 machines).

use crate::kernels::aligned::carve_aligned;
#[cfg(target_arch = "x86_64")]
use crate::kernels::cells512 as cells;
use crate::kernels::elman::{self, Activation};
use crate::kernels::gemm::SendPtr;
use crate::kernels::gru;
use crate::kernels::lanes::LanePanels;
use crate::kernels::packed::{panel_product, panel_product_init, PackedPanels, NR};
use crate::kernels::team::run_steps;
use crate::layers::config::{CellKind, EngineCell};
use crate::layers::engine_io::{BackwardBufs, ForwardBufs};
use crate::layers::params::CellParams;
use crate::layers::sweep::Sweep;

/// A round of the team loop.
#[derive(Clone, Copy)]
enum Round {
    /// The input projection of time steps `t0..t1`.
    Project(usize, usize),
    /// Recurrent step `s` (in this direction's order).
    Step(usize),
}

/// Bytes of projected inputs computed ahead of the recurrence at a time (fits in L2).
const CHUNK_BYTES: usize = 1 << 19;
/// Bounds on the steps per projection chunk.
const CHUNK_MIN_STEPS: usize = 4;
const CHUNK_MAX_STEPS: usize = 32;

/// Below this much multiply-add work per step the loop stays on one thread.
const PARALLEL_MIN_STEP_WORK: usize = 1 << 17;

/// One cell's weights packed for the fused loops.
#[derive(Debug, Default)]
pub(crate) struct PackedCell {
    /// W_ih^T (`[I, G*H]`): panel `u * G + g` holds the columns of gate `g` for the units of
    /// block `u`.
    w_ih: PackedPanels,
    /// W_hh^T (`[H, G*H]`), same panels.
    w_hh: PackedPanels,
    /// `[W_ih | W_hh]` and the bias for the lane-layout LSTM inference
    /// (`layers::fused_lanes`); empty unless an inference call asked for it.
    pub(crate) lanes: LanePanels,
}

impl PackedCell {
    /// Packs the cell's input and recurrent weights.
    pub(crate) fn pack(&mut self, kind: CellKind, hs: usize, w_ih: &[f32], w_hh: &[f32]) {
        let input = w_ih.len() / (kind.gates() * hs);
        pack_gate_panels(kind, hs, input, w_ih, &mut self.w_ih);
        pack_gate_panels(kind, hs, hs, w_hh, &mut self.w_hh);
        self.lanes = LanePanels::default();
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.w_ih.bytes() + self.w_hh.bytes() + self.lanes.bytes()
    }
}

/// Packs `w^T` for a weight `w` of `[G*H, k]` so that panel `u * G + g` holds the columns of
/// gate `g` for the units of block `u`.
fn pack_gate_panels(kind: CellKind, hs: usize, k: usize, w: &[f32], out: &mut PackedPanels) {
    let ng = kind.gates();
    let blocks = hs.div_ceil(NR);
    out.pack(
        k,
        blocks * ng,
        |p| NR.min(hs - (p / ng) * NR),
        |p, j, kk| {
            let (u, g) = (p / ng, p % ng);
            w[(g * hs + u * NR + j) * k + kk]
        },
    );
}

/// Up to this many bytes of weights per layer direction, the batch is split between threads
/// instead of the hidden units (each core then holds all the weights in its cache).
const ROW_SPLIT_MAX_WEIGHTS: usize = 1 << 20;

/// Runs `rounds` rounds of `blocks` blocks of `f(round, block, b0, b1)` over the batch rows.
///
/// Two ways to use two or more threads: split the hidden units (every round synchronises
/// the team, since step t+1 reads all of h(t)), or, when the weights are small enough for
/// every core to hold them all, split the batch: sequences do not interact in the time loop,
/// so each thread runs all rounds and blocks for its own rows with no synchronisation at all.
fn run_split<F>(
    batch: usize,
    gh: usize,
    hs: usize,
    weights: usize,
    rounds: usize,
    blocks: usize,
    f: F,
) where
    F: Fn(usize, usize, usize, usize) + Sync,
{
    let threads = team_size(batch, gh, hs);
    // Row groups of at least 8 rows (one micro-kernel tile).
    let groups = threads.min(batch / 8);
    if groups >= 2 && weights <= ROW_SPLIT_MAX_WEIGHTS {
        let per = batch.div_ceil(groups).next_multiple_of(8);
        rayon::scope(|sc| {
            for b0 in (0..batch).step_by(per) {
                let b1 = (b0 + per).min(batch);
                let f = &f;
                sc.spawn(move |_| {
                    for r in 0..rounds {
                        for u in 0..blocks {
                            f(r, u, b0, b1);
                        }
                    }
                });
            }
        });
        return;
    }
    run_steps(threads, rounds, blocks, |r, u| f(r, u, 0, batch));
}

fn team_size(batch: usize, gh: usize, hs: usize) -> usize {
    if batch * gh * hs < PARALLEL_MIN_STEP_WORK {
        1
    } else {
        crate::kernels::gemm::effective_threads()
    }
}

/// # Safety
/// `p` must point to at least `off + len` valid values, and no other live reference may
/// overlap the returned range while it is used.
#[inline(always)]
unsafe fn sub<'a>(p: SendPtr<f32>, off: usize, len: usize) -> &'a mut [f32] {
    unsafe { std::slice::from_raw_parts_mut(p.0.add(off), len) }
}

/// One direction's forward (buffers as [`ForwardBufs`] says; `h2` must hold
/// [`state_len`]`(B * H)` values for the private state copies).
///
/// The input projection runs a chunk of steps ahead of the recurrence (one product over the
/// chunk's rows), so the gates the loop reads are still in cache, and each block of units is
/// projected by the same team task that then runs its recurrence (no cache lines move between
/// cores).
pub(crate) fn forward(sw: &Sweep, p: &CellParams<f32>, packed: &PackedCell, f: ForwardBufs<f32>) {
    let ForwardBufs {
        x,
        gates,
        store,
        out,
        out_ld,
        h,
        c,
        hp,
        h2,
    } = f;
    let (hs, bsz, kind, engine) = (sw.hidden, sw.batch, sw.kind, sw.engine());
    let ng = kind.gates();
    let gh = ng * hs;
    let tb = sw.steps * bsz;
    assert!(gates.len() >= tb * gh && hp.len() >= bsz * gh && h2.len() >= bsz * hs);
    assert!(h.len() >= bsz * hs && (kind != CellKind::Lstm || c.len() >= bsz * hs));
    assert!(sw.steps == 0 || out.len() >= (tb - 1) * out_ld + hs);
    let blocks = hs.div_ceil(NR);
    let input = sw.input_size;
    assert_eq!(packed.w_hh.panels(), blocks * ng);
    assert_eq!(packed.w_ih.panels(), blocks * ng);
    assert!(x.len() >= tb * input);
    let store_ptr = store.map(|s| {
        assert!(s.len() >= tb * hs);
        SendPtr(s.as_mut_ptr())
    });
    let (gp, op, hpp) = (
        SendPtr(gates.as_mut_ptr()),
        SendPtr(out.as_mut_ptr()),
        SendPtr(hp.as_mut_ptr()),
    );
    // Private, cache-line-aligned copies of the state, so no line is shared by two tasks.
    let n = bsz * hs;
    let (ha, hb, cx) = carve_state(h2, n);
    ha.copy_from_slice(&h[..n]);
    if kind == CellKind::Lstm {
        cx.copy_from_slice(&c[..n]);
    }
    let (ha, hb, cp) = (
        SendPtr(ha.as_mut_ptr()),
        SendPtr(hb.as_mut_ptr()),
        SendPtr(cx.as_mut_ptr()),
    );
    let bias = !p.b_hh().is_empty();
    // The bias the projection starts from: b_ih + b_hh (GRU: b_ih; its b_hh enters inside r).
    let start_bias: Vec<f32> = if !bias {
        Vec::new()
    } else if kind == CellKind::Gru {
        p.b_ih().to_vec()
    } else {
        p.b_ih().iter().zip(p.b_hh()).map(|(a, b)| a + b).collect()
    };
    // Time steps t0..t1 of the input projection for the units of block u and the sequences
    // (batch rows) b0..b1.
    let project = |t0: usize, t1: usize, u: usize, b0: usize, b1: usize| {
        // A whole-struct copy, so the closure captures the Sync wrapper, not its field.
        #[allow(clippy::redundant_locals)]
        let gp = gp;
        let u0 = u * NR;
        let w = NR.min(hs - u0);
        // All rows of the steps at once when they are contiguous (every sequence).
        let (per, times) = if b1 - b0 == bsz {
            ((t1 - t0) * bsz, 1)
        } else {
            (b1 - b0, t1 - t0)
        };
        // SAFETY: writes only block u's columns of the rows (t, b0..b1) of `gates`, t in
        // t0..t1; no step of those rows runs before this round ends.
        unsafe {
            for g in 0..ng {
                let col = g * hs + u0;
                let panel = packed.w_ih.panel(u * ng + g);
                for i in 0..times {
                    let r0 = (t0 + i) * bsz + b0;
                    let a = x.as_ptr().add(r0 * input);
                    let dst = gp.0.add(r0 * gh + col);
                    if bias {
                        let init = &start_bias[col..col + w];
                        panel_product_init(per, input, a, input, panel, w, dst, gh, init);
                    } else {
                        panel_product(per, input, a, input, panel, w, dst, gh, false);
                    }
                }
            }
        }
    };
    let task = |s: usize, u: usize, b0: usize, b1: usize| {
        // Whole-struct copies, so the closure captures the Sync wrappers, not their fields.
        let (gp, op, hpp, ha, hb, cp) = (gp, op, hpp, ha, hb, cp);
        let t = sw.fwd_t(s);
        let (hcur, hnext) = if s.is_multiple_of(2) {
            (ha, hb)
        } else {
            (hb, ha)
        };
        let u0 = u * NR;
        let w = NR.min(hs - u0);
        let g_t = t * bsz * gh;
        // SAFETY: this task writes only the columns of units u0..u0+w (of every gate) in row
        // block t of `gates`, in `hp`, `out`, `store`, `c` and h(t); it reads h(t-1), which the
        // previous step completed (run_steps orders steps). All offsets are within the sizes
        // asserted above.
        unsafe {
            for g in 0..ng {
                let col = g * hs + u0;
                let panel = packed.w_hh.panel(u * ng + g);
                let a = hcur.0.add(b0 * hs);
                if kind == CellKind::Gru {
                    // W_hn h + b_hn stays apart from the input part (r multiplies it).
                    let dst = hpp.0.add(b0 * gh + col);
                    if bias {
                        let init = &p.b_hh()[col..col + w];
                        panel_product_init(b1 - b0, hs, a, hs, panel, w, dst, gh, init);
                    } else {
                        panel_product(b1 - b0, hs, a, hs, panel, w, dst, gh, false);
                    }
                } else {
                    let dst = gp.0.add(g_t + b0 * gh + col);
                    panel_product(b1 - b0, hs, a, hs, panel, w, dst, gh, true);
                }
            }
            for b in b0..b1 {
                let r = t * bsz + b;
                let o = sub(op, r * out_ld + u0, w);
                let hn = sub(hnext, b * hs + u0, w);
                if t >= sw.lengths[b] {
                    o.fill(0.0);
                    if let Some(st) = store_ptr {
                        sub(st, r * hs + u0, w).fill(0.0);
                    }
                    hn.copy_from_slice(sub(hcur, b * hs + u0, w));
                    continue;
                }
                let row = g_t + b * gh;
                let gptr = |g: usize| gp.0.add(row + g * hs + u0);
                match engine {
                    EngineCell::RnnTanh | EngineCell::RnnRelu => {
                        let relu = kind == CellKind::RnnRelu;
                        cells::elman_forward(w, relu, gptr(0), hn.as_mut_ptr(), o.as_mut_ptr());
                    }
                    EngineCell::Lstm => {
                        let cb = sub(cp, b * hs + u0, w);
                        // Training keeps c(t) for backward: stored by the same pass.
                        let c_copy =
                            store_ptr.map_or(std::ptr::null_mut(), |st| st.0.add(r * hs + u0));
                        cells::lstm_forward(
                            w,
                            gptr(0),
                            gptr(1),
                            gptr(2),
                            gptr(3),
                            cb.as_mut_ptr(),
                            hn.as_mut_ptr(),
                            o.as_mut_ptr(),
                            c_copy,
                        );
                    }
                    EngineCell::Gru => {
                        hn.copy_from_slice(sub(hcur, b * hs + u0, w));
                        let hrow = hpp.0.add(b * gh + u0);
                        cells::gru_forward(
                            w,
                            gptr(0),
                            gptr(1),
                            gptr(2),
                            hrow,
                            hrow.add(hs),
                            hrow.add(2 * hs),
                            hn.as_mut_ptr(),
                            o.as_mut_ptr(),
                        );
                        if let Some(st) = store_ptr {
                            sub(st, r * hs + u0, w).copy_from_slice(sub(
                                hpp,
                                b * gh + 2 * hs + u0,
                                w,
                            ));
                        }
                    }
                }
            }
        }
    };
    // Rounds: each chunk's projection, then its steps.
    let chunk = (CHUNK_BYTES / (bsz * gh * 4)).clamp(CHUNK_MIN_STEPS, CHUNK_MAX_STEPS);
    let mut rounds = Vec::with_capacity(sw.steps + sw.steps.div_ceil(chunk));
    for s0 in (0..sw.steps).step_by(chunk) {
        let s1 = (s0 + chunk).min(sw.steps);
        let (t0, t1) = if sw.reverse {
            (sw.steps - s1, sw.steps - s0)
        } else {
            (s0, s1)
        };
        rounds.push(Round::Project(t0, t1));
        rounds.extend((s0..s1).map(Round::Step));
    }
    let weights = (input + hs) * gh * 4;
    run_split(
        bsz,
        gh,
        hs,
        weights,
        rounds.len(),
        blocks,
        |r, u, b0, b1| match rounds[r] {
            Round::Project(t0, t1) => project(t0, t1, u, b0, b1),
            Round::Step(s) => task(s, u, b0, b1),
        },
    );
    let last = if !sw.steps.is_multiple_of(2) { hb } else { ha };
    // SAFETY: the team has finished; these are the carved pieces of `h2`, `n` values each.
    unsafe {
        h[..n].copy_from_slice(sub(last, 0, n));
        if kind == CellKind::Lstm {
            c[..n].copy_from_slice(sub(cp, 0, n));
        }
    }
}

/// Length of the state scratch [`forward`] needs for `n = B * H` state values.
pub(crate) fn state_len(n: usize) -> usize {
    3 * n.next_multiple_of(16) + 16
}

/// Three 64-byte-aligned pieces of `n` values from a scratch of [`state_len`]`(n)`.
fn carve_state(buf: &mut [f32], n: usize) -> (&mut [f32], &mut [f32], &mut [f32]) {
    assert!(buf.len() >= state_len(n), "state scratch too small");
    let [a, b, c] = carve_aligned(buf, [n; 3]);
    (a, b, c)
}

/// Never called off x86-64: [`crate::kernels::packed::available`] is false there.
#[cfg(not(target_arch = "x86_64"))]
mod cells {
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn lstm_forward(
        _: usize,
        _: *mut f32,
        _: *mut f32,
        _: *mut f32,
        _: *mut f32,
        _: *mut f32,
        _: *mut f32,
        _: *mut f32,
        _: *mut f32,
    ) {
        unreachable!()
    }
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gru_forward(
        _: usize,
        _: *mut f32,
        _: *mut f32,
        _: *mut f32,
        _: *const f32,
        _: *const f32,
        _: *const f32,
        _: *mut f32,
        _: *mut f32,
    ) {
        unreachable!()
    }
    pub unsafe fn elman_forward(_: usize, _: bool, _: *mut f32, _: *mut f32, _: *mut f32) {
        unreachable!()
    }
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn lstm_backward(
        _: usize,
        _: *mut f32,
        _: *mut f32,
        _: *mut f32,
        _: *mut f32,
        _: *const f32,
        _: *const f32,
        _: *mut f32,
        _: *const f32,
        _: *mut f32,
    ) {
        unreachable!()
    }
}

/// W_hh (`[G*H, H]`) packed for the backward product `dh += dgates W_hh`: panel `u` holds the
/// columns of the units of block `u`.
pub(crate) fn pack_backward(kind: CellKind, hs: usize, w_hh: &[f32], out: &mut PackedPanels) {
    let gh = kind.gates() * hs;
    out.pack(
        gh,
        hs.div_ceil(NR),
        |u| NR.min(hs - u * NR),
        |u, j, kk| w_hh[kk * hs + u * NR + j],
    );
}

/// The time loop of one direction's backward (the weight-gradient products come after it, in
/// `direction::backward`): per block of units, the product `dh(t) += dgates(t+1) W_hh[:, u]`
/// for the step after, then the gate gradients of step t, both by the same task; one
/// synchronisation per step. Same results as the portable loop up to rounding.
pub(crate) fn backward(sw: &Sweep, packed: &PackedPanels, b: BackwardBufs<f32>) {
    let (hs, bsz, kind, engine) = (sw.hidden, sw.batch, sw.kind, sw.engine());
    let ng = kind.gates();
    let gh = ng * hs;
    let tb = sw.steps * bsz;
    let blocks = hs.div_ceil(NR);
    let is_gru = kind == CellKind::Gru;
    let is_lstm = kind == CellKind::Lstm;
    assert_eq!(packed.panels(), blocks);
    assert!(b.gates.len() >= tb * gh && b.first.len() >= bsz * gh);
    assert!(!is_gru || b.ws.len() >= 2 * bsz * gh);
    assert!((!is_gru && !is_lstm) || b.store.len() >= tb * hs);
    assert!(sw.steps == 0 || b.out.len() >= (tb - 1) * b.out_ld + hs);
    let n = bsz * hs;
    let (dh, _, dc) = carve_state(b.scratch, n);
    dh.copy_from_slice(&b.dh[..n]);
    if is_lstm {
        dc.copy_from_slice(&b.dc[..n]);
    }
    b.first[..bsz * gh].fill(0.0);
    let (gp, sp, wsp, fp) = (
        SendPtr(b.gates.as_mut_ptr()),
        SendPtr(b.store.as_mut_ptr()),
        SendPtr(b.ws.as_mut_ptr()),
        SendPtr(b.first.as_mut_ptr()),
    );
    let (dhp, dcp) = (SendPtr(dh.as_mut_ptr()), SendPtr(dc.as_mut_ptr()));
    let (out, out_ld, dout, h0, c0) = (b.out, b.out_ld, b.dout, b.h0, b.c0);
    let act = if kind == CellKind::RnnRelu {
        Activation::Relu
    } else {
        Activation::Tanh
    };
    // Round k: the product of backward step k-1 (if any), then the gate gradients of backward
    // step k (if any); backward step k is forward step steps-1-k.
    let task = |k: usize, u: usize, b0: usize, b1: usize| {
        let (gp, sp, wsp, fp, dhp, dcp) = (gp, sp, wsp, fp, dhp, dcp);
        let u0 = u * NR;
        let w = NR.min(hs - u0);
        // SAFETY: the task writes only block u's columns (of every gate) of the rows of one
        // step in `gates`, `store`, `ws`, `first`, and block u of dh and dc; the product reads
        // all columns of the previous backward step's rows, which the previous round
        // completed. Offsets are within the sizes asserted above.
        unsafe {
            if k > 0 {
                let t = sw.fwd_t(sw.steps - k);
                let a = if is_gru {
                    wsp.0.add(((k - 1) % 2) * bsz * gh)
                } else {
                    gp.0.add(t * bsz * gh)
                };
                let (a, dst) = (a.add(b0 * gh), dhp.0.add(b0 * hs + u0));
                panel_product(b1 - b0, gh, a, gh, packed.panel(u), w, dst, hs, true);
            }
            if k == sw.steps {
                return;
            }
            let t = sw.fwd_t(sw.steps - 1 - k);
            let wsk = (k % 2) * bsz * gh;
            for bb in b0..b1 {
                let r = t * bsz + bb;
                let g = |q: usize| sub(gp, r * gh + q * hs + u0, w);
                if t >= sw.lengths[bb] {
                    for q in 0..ng {
                        g(q).fill(0.0);
                    }
                    if is_gru {
                        for q in 0..ng {
                            sub(wsp, wsk + bb * gh + q * hs + u0, w).fill(0.0);
                        }
                        sub(sp, r * hs + u0, w).fill(0.0);
                    }
                    continue;
                }
                let dhb = sub(dhp, bb * hs + u0, w);
                let dout_row = dout.map(|d| &d[r * out_ld + u0..r * out_ld + u0 + w]);
                if !is_lstm {
                    if let Some(dr) = dout_row {
                        for (a, &v) in dhb.iter_mut().zip(dr) {
                            *a += v;
                        }
                    }
                }
                let first_step = sw.is_first(t, bb);
                let pr = if first_step {
                    usize::MAX
                } else {
                    sw.prev_t(t) * bsz + bb
                };
                match engine {
                    EngineCell::RnnTanh | EngineCell::RnnRelu => {
                        let h_t = &out[r * out_ld + u0..r * out_ld + u0 + w];
                        elman::backward_row(act, h_t, dhb, g(0));
                        dhb.fill(0.0);
                    }
                    EngineCell::Lstm => {
                        let c_t = sub(sp, r * hs + u0, w);
                        let c_prev: &[f32] = if first_step {
                            &c0[bb * hs + u0..bb * hs + u0 + w]
                        } else {
                            sub(sp, pr * hs + u0, w)
                        };
                        let dcb = sub(dcp, bb * hs + u0, w);
                        // The output gradient is added to dh(t) in the same pass, and dh(t)
                        // is zeroed for the next step's product.
                        let dr = dout_row.map_or(std::ptr::null(), |d| d.as_ptr());
                        let gq = |q: usize| g(q).as_mut_ptr();
                        cells::lstm_backward(
                            w,
                            gq(0),
                            gq(1),
                            gq(2),
                            gq(3),
                            c_t.as_ptr(),
                            c_prev.as_ptr(),
                            dhb.as_mut_ptr(),
                            dr,
                            dcb.as_mut_ptr(),
                        );
                    }
                    EngineCell::Gru => {
                        let h_prev: &[f32] = if first_step {
                            &h0[bb * hs + u0..bb * hs + u0 + w]
                        } else {
                            &out[pr * out_ld + u0..pr * out_ld + u0 + w]
                        };
                        let wq = |q: usize| sub(wsp, wsk + bb * gh + q * hs + u0, w);
                        gru::backward_gates(
                            g(0),
                            g(1),
                            g(2),
                            sub(sp, r * hs + u0, w),
                            wq(0),
                            wq(1),
                            wq(2),
                            h_prev,
                            dhb,
                        );
                    }
                }
                if first_step {
                    for q in 0..ng {
                        let src = if is_gru {
                            sub(wsp, wsk + bb * gh + q * hs + u0, w)
                        } else {
                            g(q)
                        };
                        sub(fp, bb * gh + q * hs + u0, w).copy_from_slice(src);
                    }
                }
            }
        }
    };
    run_split(bsz, gh, hs, gh * hs * 4, sw.steps + 1, blocks, task);
    b.dh[..n].copy_from_slice(dh);
    if is_lstm {
        b.dc[..n].copy_from_slice(dc);
    }
}
