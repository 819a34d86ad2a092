//! The Elman cell of PyTorch's `nn.RNN`: `h(t) = act(W_ih x + b_ih + W_hh h(t-1) + b_hh)`,
//! act tanh or ReLU. The state is h alone; backward reads the activation's derivative off
//! h(t) itself, so nothing is recorded.

use super::TorchLayout;
use crate::float::Float;
use crate::kernels::elman::{backward_row, forward_row, Activation};
use crate::layers::cell::{row, row_mut, Cell, StepBackward, StepForward};
use crate::layers::params::{CellParams, ParamSpec};
use crate::rng::Rng;

/// An Elman cell.
#[derive(Debug, Clone)]
pub struct Elman {
    layout: TorchLayout,
    act: Activation,
}

impl Elman {
    /// The cell of `layout` (one gate block), with ReLU when `relu`, else tanh.
    pub fn new(layout: TorchLayout, relu: bool) -> Self {
        let act = if relu {
            Activation::Relu
        } else {
            Activation::Tanh
        };
        Elman { layout, act }
    }
}

impl<T: Float> Cell<T> for Elman {
    fn name(&self) -> &'static str {
        match self.act {
            Activation::Tanh => "rnn_tanh",
            Activation::Relu => "rnn_relu",
        }
    }
    fn input_size(&self) -> usize {
        self.layout.input
    }
    fn hidden_size(&self) -> usize {
        self.layout.hidden
    }
    fn param_specs(&self) -> Vec<ParamSpec> {
        self.layout.specs()
    }
    fn init_params(&self, p: &mut CellParams<T>, rng: &mut Rng) {
        self.layout.init(p, rng)
    }
    fn projection_width(&self) -> usize {
        self.layout.hidden
    }
    fn scratch_width(&self) -> usize {
        self.layout.hidden
    }
    fn project(&self, p: &CellParams<T>, x: &[T], rows: usize, proj: &mut [T]) {
        self.layout.project(p, x, rows, proj)
    }
    fn project_backward(
        &self,
        p: &CellParams<T>,
        x: &[T],
        dproj: &[T],
        rows: usize,
        grads: &mut CellParams<T>,
        dx: Option<&mut [T]>,
    ) {
        self.layout.project_backward(p, x, dproj, rows, grads, dx)
    }

    fn step(&self, p: &CellParams<T>, s: StepForward<'_, T>) {
        let hs = self.layout.hidden;
        self.layout
            .add_recurrent(p, s.batch, s.prev, hs, s.proj, hs);
        for b in 0..s.batch {
            // proj keeps h(t): the derivative of both activations is a function of it.
            forward_row(
                self.act,
                row_mut(s.proj, b, hs),
                row_mut(s.next, b, hs),
                row_mut(s.scratch, b, hs),
            );
        }
    }

    fn step_backward(&self, p: &CellParams<T>, s: StepBackward<'_, T>, g: &mut CellParams<T>) {
        let hs = self.layout.hidden;
        for b in 0..s.batch {
            let h_t = row(s.next, b, hs);
            backward_row(self.act, h_t, row(s.dnext, b, hs), row_mut(s.proj, b, hs));
        }
        s.dprev.fill(T::ZERO);
        self.layout
            .add_recurrent_backward(p, s.batch, s.prev, hs, s.proj, hs, s.dprev, g);
    }
}
