//! The cell contract: what one recurrent transition `s(t) = f(s(t-1), x(t); θ)` states about
//! itself so that the generic time loop (`layers/unrolled.rs`) can run it over batches
//! of variable-length sequences, in both directions, stacked, in training (with backward
//! through time), in inference and one step at a time.
//!
//! A cell is split the way every fast RNN implementation splits it: a part that does not
//! depend on the state, the *input projection* `p(t) = g(x(t))`, which the loop computes for
//! all steps of a sequence at once (one GEMM), and the *step* `s(t) = f(s(t-1), p(t))`, which
//! it runs once per time step for the whole batch. Backward mirrors both: the step's backward
//! gives the gradient on `p(t)` and on `s(t-1)` and accumulates the recurrent parameters'
//! gradients; the projection's backward turns all the `dp(t)` at once into the input-side
//! weight gradients and the input gradient.
//!
//! The state of one sequence is one row `[h | e]`: the output `h` (H values, what the layer
//! emits and the next layer reads) followed by `extra_state_size()` more values (the LSTM's cell
//! state c; nothing for most cells). Parameters live in [`CellParams`], one tensor per
//! [`ParamSpec`] in the order the cell lists them; gradients have the same shape.
//!
//! A new cell implements [`Cell`] once, is registered in [`crate::layers::CellKind`], and gets
//! the time loop, variable lengths, directions, stacking, streaming, checkpoints and the
//! trainer from the generic code. A fused engine for it is an optional specialisation, tested
//! equal to the generic loop.

use crate::float::Float;
use crate::layers::params::{CellParams, ParamSpec};
use crate::rng::Rng;

/// One step's forward for a batch of `batch` sequences (all buffers row-major, one row per
/// sequence). The loop calls it for every row, active or not, and restores the rows of
/// sequences that have ended (their state is kept, their output is zero).
pub struct StepForward<'a, T> {
    /// Sequences in the batch.
    pub batch: usize,
    /// `[B, P]` the input projection of this step; the cell may overwrite it with what its
    /// backward reads (e.g. the activated gates): the loop keeps it in training.
    pub proj: &'a mut [T],
    /// `[B, S]` the state before the step (`S = H + extra`).
    pub prev: &'a [T],
    /// `[B, S]` receives the state after the step.
    pub next: &'a mut [T],
    /// `[B, R]` what backward needs besides `proj` and the states (`R = record_width()`);
    /// `None` in inference.
    pub record: Option<&'a mut [T]>,
    /// `[B, scratch_width()]` scratch.
    pub scratch: &'a mut [T],
}

/// One step's backward, after the training forward left `proj` and `record` as they were.
pub struct StepBackward<'a, T> {
    /// Sequences in the batch.
    pub batch: usize,
    /// `[B, P]` what the forward left in the projection row; receives the gradient on the
    /// input projection `dp(t)`.
    pub proj: &'a mut [T],
    /// `[B, R]` the forward's record (the cell may consume it as scratch).
    pub record: &'a mut [T],
    /// `[B, S]` the state before the step.
    pub prev: &'a [T],
    /// `[B, S]` the state after the step.
    pub next: &'a [T],
    /// `[B, S]` the total gradient on the state after the step (from the output and from the
    /// next step); the cell may use it as scratch.
    pub dnext: &'a mut [T],
    /// `[B, S]` receives (is set to) the gradient on the state before the step.
    pub dprev: &'a mut [T],
    /// `[B, scratch_width()]` scratch.
    pub scratch: &'a mut [T],
}

/// A recurrent transition. Implementations hold only their sizes and settings; parameters are
/// passed in as [`CellParams`] (the layer owns them), so one cell value serves the parameters
/// and their gradients alike.
pub trait Cell<T: Float>: Send + Sync + std::fmt::Debug {
    /// Short name (`lstm`, `leaky`, ...).
    fn name(&self) -> &'static str;
    /// Features of the input x(t).
    fn input_size(&self) -> usize;
    /// Size H of the output h(t), the first part of the state.
    fn hidden_size(&self) -> usize;
    /// State values per sequence beyond h (the LSTM's cell state: H). Default none.
    fn extra_state_size(&self) -> usize {
        0
    }
    /// Size S of one sequence's state row.
    fn state_size(&self) -> usize {
        self.hidden_size() + self.extra_state_size()
    }
    /// Parameter tensors, local names (the layer adds `_l{k}` and `_reverse`) and shapes, in
    /// storage order.
    fn param_specs(&self) -> Vec<ParamSpec>;
    /// Sets the parameters to the cell's default initialisation, drawn from `rng`.
    fn init_params(&self, params: &mut CellParams<T>, rng: &mut Rng);
    /// Width P of one token's input projection.
    fn projection_width(&self) -> usize;
    /// Values per token that the training forward records for backward, besides the
    /// projection row and the states, which the loop keeps anyway. Default none.
    fn record_width(&self) -> usize {
        0
    }
    /// Scratch values per sequence that [`Cell::step`] and [`Cell::step_backward`] need.
    /// Default none.
    fn scratch_width(&self) -> usize {
        0
    }
    /// `proj` (`[rows, P]`) = the input projection of `x` (`[rows, I]`).
    fn project(&self, p: &CellParams<T>, x: &[T], rows: usize, proj: &mut [T]);
    /// Backward of [`Cell::project`]: adds the parameter gradients to `grads` and, when `dx`
    /// is given, adds the input gradient to it (`[rows, I]`).
    fn project_backward(
        &self,
        p: &CellParams<T>,
        x: &[T],
        dproj: &[T],
        rows: usize,
        grads: &mut CellParams<T>,
        dx: Option<&mut [T]>,
    );
    /// One step for every row of the batch.
    fn step(&self, p: &CellParams<T>, s: StepForward<'_, T>);
    /// Backward of one step for every row: sets `dprev` and `proj` (now `dp(t)`), and adds
    /// the step's parameter gradients to `grads`. Rows whose incoming gradient is zero must
    /// contribute nothing to `grads` (the loop relies on it for sequences that have ended).
    fn step_backward(&self, p: &CellParams<T>, s: StepBackward<'_, T>, grads: &mut CellParams<T>);
}

/// Row `b` of a `[rows, width]` buffer.
#[inline]
pub(crate) fn row<T>(buf: &[T], b: usize, width: usize) -> &[T] {
    &buf[b * width..(b + 1) * width]
}

/// Row `b` of a `[rows, width]` buffer, mutable.
#[inline]
pub(crate) fn row_mut<T>(buf: &mut [T], b: usize, width: usize) -> &mut [T] {
    &mut buf[b * width..(b + 1) * width]
}
