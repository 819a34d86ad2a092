//! The GRU cell of PyTorch's `nn.GRU`: `r = σ(x_r + h_r)`, `z = σ(x_z + h_z)`,
//! `n = tanh(x_n + r h_n)`, `h(t) = (1 - z) n + z h(t-1)`, where `x_* = W_i* x + b_i*` and
//! `h_* = W_h* h(t-1) + b_h*`. Since r multiplies h_n, the hidden projection stays apart from
//! the input projection; h_n is recorded for backward.

use super::{strided, TorchLayout};
use crate::float::Float;
use crate::kernels::gru::{backward_gates, forward_gates};
use crate::layers::cell::{row, row_mut, Cell, StepBackward, StepForward};
use crate::layers::params::CellParams;

/// A GRU cell (three gate blocks).
#[derive(Debug, Clone)]
pub struct Gru {
    /// Sizes and biases.
    pub layout: TorchLayout,
}

/// The three H-wide blocks of a gate row.
fn split3<T>(g: &mut [T], hs: usize) -> [&mut [T]; 3] {
    let (r, rest) = g.split_at_mut(hs);
    let (z, n) = rest.split_at_mut(hs);
    [r, z, &mut n[..hs]]
}

impl<T: Float> Cell<T> for Gru {
    torch_layout_methods!();
    fn name(&self) -> &'static str {
        "gru"
    }
    fn record_width(&self) -> usize {
        self.layout.hidden
    }
    /// The hidden projection (3H) and an output row (H).
    fn scratch_width(&self) -> usize {
        4 * self.layout.hidden
    }

    fn step(&self, p: &CellParams<T>, s: StepForward<'_, T>) {
        let (hs, gh) = (self.layout.hidden, self.layout.gh());
        let ld = 4 * hs;
        s.scratch[..s.batch * ld].fill(T::ZERO);
        self.layout
            .add_recurrent(p, s.batch, s.prev, hs, s.scratch, ld);
        let mut record = s.record;
        for b in 0..s.batch {
            let [xr, xz, xn] = split3(row_mut(s.proj, b, gh), hs);
            let (hp, out) = row_mut(s.scratch, b, ld).split_at_mut(gh);
            let h = row_mut(s.next, b, hs);
            h.copy_from_slice(row(s.prev, b, hs));
            let (hr, rest) = hp.split_at(hs);
            let (hz, hn) = rest.split_at(hs);
            forward_gates(xr, xz, xn, hr, hz, hn, h, out);
            if let Some(rec) = record.as_deref_mut() {
                row_mut(rec, b, hs).copy_from_slice(hn);
            }
        }
    }

    fn step_backward(&self, p: &CellParams<T>, s: StepBackward<'_, T>, g: &mut CellParams<T>) {
        let (hs, gh) = (self.layout.hidden, self.layout.gh());
        let ld = 4 * hs;
        for b in 0..s.batch {
            let [gr, gz, gn] = split3(row_mut(s.proj, b, gh), hs);
            let [pr, pz, pn] = split3(&mut row_mut(s.scratch, b, ld)[..gh], hs);
            let dh = row_mut(s.dprev, b, hs);
            dh.copy_from_slice(row(s.dnext, b, hs));
            let hn = row_mut(s.record, b, hs);
            backward_gates(gr, gz, gn, hn, pr, pz, pn, row(s.prev, b, hs), dh);
        }
        self.layout.add_recurrent_backward(
            p,
            s.batch,
            strided(s.prev, hs),
            strided(s.scratch, ld),
            s.dprev,
            g,
        );
    }
}
