//! The Elman cell of PyTorch's `nn.RNN`: `h(t) = act(W_ih x + b_ih + W_hh h(t-1) + b_hh)`,
//! act tanh or ReLU. The state is h alone; backward reads the activation's derivative off
//! h(t) itself, so nothing is recorded.

use super::{strided, TorchLayout};
use crate::float::Float;
use crate::kernels::elman::{backward_row, forward_row, Activation};
use crate::layers::cell::{row, row_mut, Cell, StepBackward, StepForward};
use crate::layers::params::CellParams;

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
    torch_layout_methods!();
    fn name(&self) -> &'static str {
        match self.act {
            Activation::Tanh => "rnn_tanh",
            Activation::Relu => "rnn_relu",
        }
    }
    fn scratch_width(&self) -> usize {
        self.layout.hidden
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
        self.layout.add_recurrent_backward(
            p,
            s.batch,
            strided(s.prev, hs),
            strided(s.proj, hs),
            s.dprev,
            g,
        );
    }
}
