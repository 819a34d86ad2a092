//! The sizes and time order of one direction's sweep over a batch of variable-length
//! sequences, shared by every time loop (the generic one and the fused engines).
//!
//! Variable lengths follow PyTorch's packed sequences: step t of sequence b is active when
//! `t < len[b]`. An inactive step writes a zero output, leaves the state untouched and gets zero
//! gradients; the reverse direction therefore starts at each sequence's own last step.

use crate::layers::config::{CellKind, EngineCell};

/// Sizes and order of one direction's sweep.
#[derive(Clone, Copy)]
pub(crate) struct Sweep<'a> {
    pub kind: CellKind,
    pub hidden: usize,
    pub batch: usize,
    pub steps: usize,
    pub lengths: &'a [usize],
    pub reverse: bool,
    pub input_size: usize,
}

impl Sweep<'_> {
    /// `G * H` of the PyTorch cells.
    pub(crate) fn gh(&self) -> usize {
        self.kind.gates() * self.hidden
    }

    /// The engine cell of this sweep: only the engines ask, and they run only the cells that
    /// have one (the layer sends the others to the generic loop).
    pub(crate) fn engine(&self) -> EngineCell {
        self.kind
            .engine_cell()
            .expect("an engine runs only a cell that has one")
    }

    /// The time index of the `s`-th step in forward order.
    #[inline]
    pub(crate) fn fwd_t(&self, s: usize) -> usize {
        if self.reverse {
            self.steps - 1 - s
        } else {
            s
        }
    }

    /// Whether h(t-1) of active step `t` of sequence `b` is the initial state.
    #[inline]
    pub(crate) fn is_first(&self, t: usize, b: usize) -> bool {
        if self.reverse {
            t + 1 >= self.lengths[b]
        } else {
            t == 0
        }
    }

    /// The time index of the state before active step `t` (when not the initial state).
    #[inline]
    pub(crate) fn prev_t(&self, t: usize) -> usize {
        if self.reverse {
            t + 1
        } else {
            t - 1
        }
    }

    /// Whether step `t` of sequence `b` is active.
    #[inline]
    pub(crate) fn active(&self, t: usize, b: usize) -> bool {
        t < self.lengths[b]
    }
}
