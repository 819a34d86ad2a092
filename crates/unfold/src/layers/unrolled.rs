//! The generic time loop: one direction of one layer of any [`Cell`], forward and backward
//! through time over a batch of variable-length sequences. This is the definition of what a
//! recurrent layer computes; the fused engines of the PyTorch cells (`direction.rs`,
//! `fused.rs`, `fused_lanes.rs`) are specialisations of it, tested equal to it, and a cell
//! without an engine runs here.
//!
//! Forward: the input projection of the whole sequence in one call (one GEMM), then one
//! [`Cell::step`] per time step for the whole batch; rows of sequences that have ended keep
//! their state and get a zero output (PyTorch's packed semantics; see [`Sweep`]). Training
//! keeps the projection row (as the cell left it), the cell's record and the state after every
//! step. Backward walks the steps in reverse with [`Cell::step_backward`], then turns all the
//! projection gradients into weight and input gradients in one [`Cell::project_backward`].
//! Nothing is allocated: the caller passes every buffer, sized by [`Sizes`].

use crate::float::Float;
use crate::layers::cell::{row, row_mut, Cell, StepBackward, StepForward};
use crate::layers::params::CellParams;
use crate::layers::sweep::Sweep;

/// Buffer sizes of one direction's sweep over `steps * batch` tokens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    /// H.
    pub hidden: usize,
    /// S = H + extra state.
    pub state: usize,
    /// P.
    pub proj: usize,
    /// R.
    pub record: usize,
    /// Cell scratch per sequence.
    pub scratch: usize,
}

impl Sizes {
    /// The sizes of `cell`.
    pub(crate) fn of<T: Float>(cell: &dyn Cell<T>) -> Self {
        Sizes {
            hidden: cell.hidden_size(),
            state: cell.state_size(),
            proj: cell.projection_width(),
            record: cell.record_width(),
            scratch: cell.scratch_width(),
        }
    }

    /// Scratch values a forward or backward over `batch` sequences needs besides the
    /// per-token buffers: four state rows per sequence and the cell's scratch.
    pub(crate) fn work_len(&self, batch: usize) -> usize {
        batch * (4 * self.state + self.scratch)
    }
}

/// Copies a state held as `h` (`[B, H]`) and `extra` (`[B, S-H]`) into rows `[B, S]`.
fn gather<T: Float>(h: &[T], extra: &[T], hs: usize, s: usize, rows: &mut [T]) {
    let e = s - hs;
    for (b, r) in rows.chunks_exact_mut(s).enumerate() {
        r[..hs].copy_from_slice(&h[b * hs..(b + 1) * hs]);
        r[hs..].copy_from_slice(&extra[b * e..(b + 1) * e]);
    }
}

/// The inverse of [`gather`].
fn scatter<T: Float>(rows: &[T], hs: usize, s: usize, h: &mut [T], extra: &mut [T]) {
    let e = s - hs;
    for (b, r) in rows.chunks_exact(s).enumerate() {
        h[b * hs..(b + 1) * hs].copy_from_slice(&r[..hs]);
        extra[b * e..(b + 1) * e].copy_from_slice(&r[hs..]);
    }
}

/// The buffers of one direction's forward.
pub(crate) struct Forward<'a, T> {
    /// `[T*B, I]` input.
    pub x: &'a [T],
    /// `[T*B, P]` receives the projection rows as the cell leaves them.
    pub proj: &'a mut [T],
    /// `[T*B, S]` receives the state after every step (training; zero rows where inactive).
    pub states: Option<&'a mut [T]>,
    /// `[T*B, R]` receives the cell's records (training).
    pub record: Option<&'a mut [T]>,
    /// This direction's output columns, row stride `out_ld` (`[T*B, H]` view).
    pub out: &'a mut [T],
    /// Row stride of `out`.
    pub out_ld: usize,
    /// `[B, H]` h: the initial state on entry, the final state on exit.
    pub h: &'a mut [T],
    /// `[B, S-H]` the rest of the state, likewise.
    pub extra: &'a mut [T],
    /// Scratch of [`Sizes::work_len`].
    pub work: &'a mut [T],
}

/// Forward of one direction of `cell` with parameters `p`.
pub(crate) fn forward<T: Float>(sw: &Sweep, cell: &dyn Cell<T>, p: &CellParams<T>, f: Forward<T>) {
    let z = Sizes::of(cell);
    let (bsz, hs, s, pw, rw) = (sw.batch, z.hidden, z.state, z.proj, z.record);
    let Forward {
        x,
        proj,
        mut states,
        mut record,
        out,
        out_ld,
        h,
        extra,
        work,
    } = f;
    let (cur, rest) = work.split_at_mut(bsz * s);
    let (next, rest) = rest.split_at_mut(bsz * s);
    let scratch = &mut rest[..bsz * z.scratch];
    cell.project(p, x, sw.steps * bsz, proj);
    gather(h, extra, hs, s, cur);
    for k in 0..sw.steps {
        let t = sw.fwd_t(k);
        let rows = t * bsz..(t + 1) * bsz;
        let proj_t = &mut proj[rows.start * pw..rows.end * pw];
        let mut rec_t = record
            .as_deref_mut()
            .map(|r| &mut r[rows.start * rw..rows.end * rw]);
        cell.step(
            p,
            StepForward {
                batch: bsz,
                proj: proj_t,
                prev: cur,
                next,
                record: rec_t.as_deref_mut(),
                scratch,
            },
        );
        let proj_t = &mut proj[rows.start * pw..rows.end * pw];
        for b in 0..bsz {
            let r = t * bsz + b;
            let o = &mut out[r * out_ld..r * out_ld + hs];
            let st = states.as_deref_mut().map(|v| row_mut(v, r, s));
            if sw.active(t, b) {
                let n = row(next, b, s);
                o.copy_from_slice(&n[..hs]);
                row_mut(cur, b, s).copy_from_slice(n);
                if let Some(st) = st {
                    st.copy_from_slice(n);
                }
            } else {
                // An ended sequence: zero output, and nothing its backward could read.
                o.fill(T::ZERO);
                row_mut(proj_t, b, pw).fill(T::ZERO);
                if let Some(st) = st {
                    st.fill(T::ZERO);
                }
                if let Some(rec) = rec_t.as_deref_mut() {
                    row_mut(rec, b, rw).fill(T::ZERO);
                }
            }
        }
    }
    scatter(cur, hs, s, h, extra);
}

/// The buffers of one direction's backward, after a training [`forward`] filled `proj`,
/// `states` and `record`.
pub(crate) struct Backward<'a, T> {
    /// `[T*B, I]` the forward's input.
    pub x: &'a [T],
    /// `[T*B, P]` the forward's projection rows on entry, their gradients on exit.
    pub proj: &'a mut [T],
    /// `[T*B, S]` the forward's states.
    pub states: &'a [T],
    /// `[T*B, R]` the forward's records (consumed).
    pub record: &'a mut [T],
    /// Gradient on this direction's outputs (row stride `out_ld`), if any.
    pub dout: Option<&'a [T]>,
    /// Row stride of `dout`.
    pub out_ld: usize,
    /// `[B, H]` and `[B, S-H]` the initial state.
    pub h0: &'a [T],
    /// See `h0`.
    pub extra0: &'a [T],
    /// `[B, H]` gradient on the final h on entry, on the initial h on exit.
    pub dh: &'a mut [T],
    /// `[B, S-H]` likewise for the rest of the state.
    pub dextra: &'a mut [T],
    /// Scratch of [`Sizes::work_len`].
    pub work: &'a mut [T],
}

/// Backward through time of one direction: adds the parameter gradients to `grads` and, when
/// `dx` is given, *adds* the input gradient (`[T*B, I]`) to it.
pub(crate) fn backward<T: Float>(
    sw: &Sweep,
    cell: &dyn Cell<T>,
    p: &CellParams<T>,
    b: Backward<T>,
    grads: &mut CellParams<T>,
    dx: Option<&mut [T]>,
) {
    let z = Sizes::of(cell);
    let (bsz, hs, s, pw, rw) = (sw.batch, z.hidden, z.state, z.proj, z.record);
    let Backward {
        x,
        proj,
        states,
        record,
        dout,
        out_ld,
        h0,
        extra0,
        dh,
        dextra,
        work,
    } = b;
    // dcur: the gradient on the state after the current step, per sequence (the carry);
    // prev: the state before it; dnext / dprev: the cell's view of this step, where ended
    // sequences have a zero gradient (so they contribute nothing) and keep their carry.
    let (dcur, rest) = work.split_at_mut(bsz * s);
    let (prev, rest) = rest.split_at_mut(bsz * s);
    let (dnext, rest) = rest.split_at_mut(bsz * s);
    let (dprev, rest) = rest.split_at_mut(bsz * s);
    let scratch = &mut rest[..bsz * z.scratch];
    gather(dh, dextra, hs, s, dcur);
    let e = s - hs;
    for k in (0..sw.steps).rev() {
        let t = sw.fwd_t(k);
        let rows = t * bsz..(t + 1) * bsz;
        for bb in 0..bsz {
            let (pr, dn) = (row_mut(prev, bb, s), row_mut(dnext, bb, s));
            if !sw.active(t, bb) {
                pr.fill(T::ZERO);
                dn.fill(T::ZERO);
                continue;
            }
            let dc = row_mut(dcur, bb, s);
            if let Some(d) = dout {
                let r = t * bsz + bb;
                for (a, &v) in dc[..hs].iter_mut().zip(&d[r * out_ld..r * out_ld + hs]) {
                    *a += v;
                }
            }
            dn.copy_from_slice(dc);
            if sw.is_first(t, bb) {
                pr[..hs].copy_from_slice(&h0[bb * hs..(bb + 1) * hs]);
                pr[hs..].copy_from_slice(&extra0[bb * e..(bb + 1) * e]);
            } else {
                pr.copy_from_slice(row(states, sw.prev_t(t) * bsz + bb, s));
            }
        }
        cell.step_backward(
            p,
            StepBackward {
                batch: bsz,
                proj: &mut proj[rows.start * pw..rows.end * pw],
                record: &mut record[rows.start * rw..rows.end * rw],
                prev,
                next: &states[rows.start * s..rows.end * s],
                dnext,
                dprev,
                scratch,
            },
            grads,
        );
        for bb in 0..bsz {
            if sw.active(t, bb) {
                row_mut(dcur, bb, s).copy_from_slice(row(dprev, bb, s));
            }
        }
    }
    cell.project_backward(p, x, proj, sw.steps * bsz, grads, dx);
    scatter(dcur, hs, s, dh, dextra);
}
