//! The LSTM cell of PyTorch's `nn.LSTM`: gates `[i f g o] = W_ih x + b_ih + W_hh h + b_hh`,
//! `c(t) = σ(f) c(t-1) + σ(i) tanh(g)`, `h(t) = σ(o) tanh(c(t))`. The state row is `[h | c]`;
//! the projection row keeps the activated gates for backward.

use super::{strided, TorchLayout};
use crate::float::Float;
use crate::kernels::lstm::{backward_gates, forward_gates};
use crate::layers::cell::{row, row_mut, Cell, StepBackward, StepForward};
use crate::layers::params::CellParams;

/// An LSTM cell (four gate blocks).
#[derive(Debug, Clone)]
pub struct Lstm {
    /// Sizes and biases.
    pub layout: TorchLayout,
}

/// The four H-wide blocks of a gate row.
fn split4<T>(g: &mut [T], hs: usize) -> [&mut [T]; 4] {
    let (i, rest) = g.split_at_mut(hs);
    let (f, rest) = rest.split_at_mut(hs);
    let (gg, o) = rest.split_at_mut(hs);
    [i, f, gg, &mut o[..hs]]
}

impl<T: Float> Cell<T> for Lstm {
    torch_layout_methods!();
    fn name(&self) -> &'static str {
        "lstm"
    }
    fn extra_state_size(&self) -> usize {
        self.layout.hidden
    }
    fn scratch_width(&self) -> usize {
        self.layout.hidden
    }

    fn step(&self, p: &CellParams<T>, s: StepForward<'_, T>) {
        let (hs, gh) = (self.layout.hidden, self.layout.gh());
        let sw = 2 * hs;
        self.layout
            .add_recurrent(p, s.batch, s.prev, sw, s.proj, gh);
        for b in 0..s.batch {
            let [gi, gf, gg, go] = split4(row_mut(s.proj, b, gh), hs);
            let (h, c) = row_mut(s.next, b, sw).split_at_mut(hs);
            c.copy_from_slice(&row(s.prev, b, sw)[hs..]);
            forward_gates(gi, gf, gg, go, c, h, row_mut(s.scratch, b, hs));
        }
    }

    fn step_backward(&self, p: &CellParams<T>, s: StepBackward<'_, T>, g: &mut CellParams<T>) {
        let (hs, gh) = (self.layout.hidden, self.layout.gh());
        let sw = 2 * hs;
        for b in 0..s.batch {
            let [gi, gf, gg, go] = split4(row_mut(s.proj, b, gh), hs);
            let (dh, dc_next) = row(s.dnext, b, sw).split_at(hs);
            let (dh_prev, dc) = row_mut(s.dprev, b, sw).split_at_mut(hs);
            dh_prev.fill(T::ZERO);
            dc.copy_from_slice(dc_next);
            let c_t = &row(s.next, b, sw)[hs..];
            let c_prev = &row(s.prev, b, sw)[hs..];
            backward_gates(gi, gf, gg, go, c_t, c_prev, dh, dc);
        }
        self.layout.add_recurrent_backward(
            p,
            s.batch,
            strided(s.prev, sw),
            strided(s.proj, gh),
            s.dprev,
            g,
        );
    }
}
