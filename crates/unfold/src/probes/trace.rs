//! One sequence replayed through a cell, and vector-Jacobian products run backwards through
//! it: the machinery under every probe. The replay runs the cell contract's own
//! [`Cell::step`] (so it holds for every cell, fused engine or not), and the backward chains
//! run [`Cell::step_backward`] on a batch of chains that share the replayed step: row `r` of
//! the batch carries one vector `v_r`, and after the backward of step `t` it holds
//! `v_r^T d s(t+1) / d s(t)`.

use crate::float::Float;
use crate::layers::cell::{Cell, StepBackward, StepForward};
use crate::layers::params::CellParams;

/// A replayed sequence: what the step backward of every step needs.
pub(crate) struct Trace<T> {
    /// Steps.
    pub len: usize,
    /// State width S.
    pub state: usize,
    proj_w: usize,
    rec_w: usize,
    /// `[len, P]` the projection rows as the steps left them.
    proj: Vec<T>,
    /// `[len, R]` the records.
    record: Vec<T>,
    /// `[len + 1, S]`: the initial state, then the state after each step.
    pub states: Vec<T>,
}

impl<T: Float> Trace<T> {
    /// Replays `x` (`[len, I]`) from the state row `init` (`[S]`).
    pub(crate) fn replay(cell: &dyn Cell<T>, p: &CellParams<T>, x: &[T], init: &[T]) -> Self {
        let (s, pw, rw) = (
            cell.state_size(),
            cell.projection_width(),
            cell.record_width(),
        );
        let len = x.len() / cell.input_size().max(1);
        let mut proj = vec![T::ZERO; len * pw];
        let mut record = vec![T::ZERO; len * rw];
        let mut states = vec![T::ZERO; (len + 1) * s];
        let mut scratch = vec![T::ZERO; cell.scratch_width()];
        states[..s].copy_from_slice(init);
        cell.project(p, x, len, &mut proj);
        for t in 0..len {
            let (before, after) = states.split_at_mut((t + 1) * s);
            cell.step(
                p,
                StepForward {
                    batch: 1,
                    proj: &mut proj[t * pw..(t + 1) * pw],
                    prev: &before[t * s..],
                    next: &mut after[..s],
                    record: Some(&mut record[t * rw..(t + 1) * rw]),
                    scratch: &mut scratch,
                },
            );
        }
        Trace {
            len,
            state: s,
            proj_w: pw,
            rec_w: rw,
            proj,
            record,
            states,
        }
    }

    /// The state after step `i - 1` (`i = 0`: the initial state).
    pub(crate) fn state(&self, i: usize) -> &[T] {
        &self.states[i * self.state..(i + 1) * self.state]
    }

    /// Runs `rows` chains backwards from state index `from` down to `to` (`to <= from`).
    /// `dcur` (`[rows, S]`) holds the vectors at state `from` on entry; `visit(i, dcur)` sees
    /// (and may change) them at every state index `i` from `from` down to `to`, before the
    /// backward of the step that produced that state.
    pub(crate) fn chain(
        &self,
        cell: &dyn Cell<T>,
        p: &CellParams<T>,
        rows: usize,
        (from, to): (usize, usize),
        dcur: &mut [T],
        mut visit: impl FnMut(usize, &mut [T]),
    ) {
        let (s, pw, rw) = (self.state, self.proj_w, self.rec_w);
        let mut proj = vec![T::ZERO; rows * pw];
        let mut record = vec![T::ZERO; rows * rw];
        let mut prev = vec![T::ZERO; rows * s];
        let mut next = vec![T::ZERO; rows * s];
        let mut dnext = vec![T::ZERO; rows * s];
        let mut scratch = vec![T::ZERO; rows * cell.scratch_width()];
        let mut sink = CellParams::zeros_for(&cell.param_specs());
        let mut i = from;
        loop {
            visit(i, dcur);
            if i <= to {
                break;
            }
            let t = i - 1;
            for r in 0..rows {
                proj[r * pw..(r + 1) * pw].copy_from_slice(&self.proj[t * pw..(t + 1) * pw]);
                record[r * rw..(r + 1) * rw].copy_from_slice(&self.record[t * rw..(t + 1) * rw]);
                prev[r * s..(r + 1) * s].copy_from_slice(self.state(t));
                next[r * s..(r + 1) * s].copy_from_slice(self.state(i));
            }
            dnext.copy_from_slice(dcur);
            cell.step_backward(
                p,
                StepBackward {
                    batch: rows,
                    proj: &mut proj,
                    record: &mut record,
                    prev: &prev,
                    next: &next,
                    dnext: &mut dnext,
                    dprev: &mut *dcur,
                    scratch: &mut scratch,
                },
                &mut sink,
            );
            i -= 1;
        }
    }
}
