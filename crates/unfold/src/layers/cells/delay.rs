//! Skip connections through time (the chapter's section 10.9.1; the delayed recurrences of
//! Lin, Horne, Tiňo and Giles 1996): a tanh unit that reads its own state from several steps
//! back,
//!
//! ```text
//! h(t) = tanh(W x(t) + sum over d in D of U_d h(t - d) + b)
//! ```
//!
//! for a set of delays `D` (1 and 4 by default). With a delay `d`, a gradient crosses `n` steps
//! in about `n / d` Jacobians instead of `n`, which is what lets it survive long lags; leaving 1
//! out of `D` removes the one-step recurrence altogether.
//!
//! The state of a sequence is the last `max(D)` outputs, newest first:
//! `[h(t-1) | h(t-2) | ... | h(t - max D)]`, so the layer's `h` is the newest and the older ones
//! are its extra state (carried by streaming and truncated back-propagation like an LSTM's c).
//!
//! Parameters: `weight_ih [H, I]`, one `weight_hh_d{d} [H, H]` per delay and `bias [H]` with
//! biases. The recurrent weights start uniform in `±1/sqrt(H |D|)`, the others in
//! `±1/sqrt(H)`, so the summed recurrence starts at the scale of one tanh RNN's.

use super::DenseInput;
use crate::float::Float;
use crate::kernels::gemm::{gemm_nn, gemm_nt, gemm_tn};
use crate::layers::cell::{row, row_mut, Cell, StepBackward, StepForward};
use crate::layers::config::DelaySpec;
use crate::layers::params::{CellParams, ParamSpec};
use crate::rng::Rng;

/// A layer direction of tanh units with delayed recurrences.
#[derive(Debug, Clone)]
pub struct Delay {
    input: usize,
    hidden: usize,
    bias: bool,
    delays: Vec<usize>,
}

impl Delay {
    /// The cell for `input` features and `hidden` units with the delays of `spec`.
    pub fn new(input: usize, hidden: usize, bias: bool, spec: DelaySpec) -> Self {
        Delay {
            input,
            hidden,
            bias,
            delays: spec.delays.values(),
        }
    }

    /// The longest delay: the number of past outputs in the state.
    fn depth(&self) -> usize {
        self.delays.iter().copied().max().unwrap_or(1)
    }

    /// Index of the bias tensor.
    fn bias_index(&self) -> usize {
        1 + self.delays.len()
    }

    /// The input projection `x W^T + b`.
    fn dense_input(&self) -> DenseInput {
        DenseInput {
            input: self.input,
            hidden: self.hidden,
            bias: self.bias.then_some(self.bias_index()),
        }
    }
}

impl<T: Float> Cell<T> for Delay {
    fn name(&self) -> &'static str {
        "delay"
    }
    dense_input_methods!();
    fn extra_state_size(&self) -> usize {
        (self.depth() - 1) * self.hidden
    }
    fn param_specs(&self) -> Vec<ParamSpec> {
        let (h, i) = (self.hidden, self.input);
        let spec = |name: String, shape: Vec<usize>| ParamSpec { name, shape };
        let mut v = vec![spec("weight_ih".into(), vec![h, i])];
        for d in &self.delays {
            v.push(spec(format!("weight_hh_d{d}"), vec![h, h]));
        }
        if self.bias {
            v.push(spec("bias".into(), vec![h]));
        }
        v
    }
    fn init_params(&self, p: &mut CellParams<T>, rng: &mut Rng) {
        let h = self.hidden as f64;
        let k = 1.0 / h.sqrt();
        let kr = 1.0 / (h * self.delays.len() as f64).sqrt();
        for (i, t) in p.tensors.iter_mut().enumerate() {
            let r = if (1..=self.delays.len()).contains(&i) {
                kr
            } else {
                k
            };
            for v in t.iter_mut() {
                *v = T::from_f64(rng.uniform_range(-r, r));
            }
        }
    }

    fn step(&self, p: &CellParams<T>, s: StepForward<'_, T>) {
        let h = self.hidden;
        let sw = self.depth() * h;
        for (k, &d) in self.delays.iter().enumerate() {
            let hd = &s.prev[(d - 1) * h..];
            gemm_nt(s.batch, h, h, hd, sw, p.get(1 + k), h, s.proj, h, true);
        }
        for b in 0..s.batch {
            let (pr, pv, nx) = (
                row_mut(s.proj, b, h),
                row(s.prev, b, sw),
                row_mut(s.next, b, sw),
            );
            // proj keeps h(t) for backward; the older outputs shift back one place.
            for (u, n) in pr.iter_mut().zip(&mut nx[..h]) {
                *u = u.tanh();
                *n = *u;
            }
            nx[h..].copy_from_slice(&pv[..sw - h]);
        }
    }

    fn step_backward(&self, p: &CellParams<T>, s: StepBackward<'_, T>, g: &mut CellParams<T>) {
        let h = self.hidden;
        let sw = self.depth() * h;
        for b in 0..s.batch {
            let (dn, dp, pr) = (
                row(s.dnext, b, sw),
                row_mut(s.dprev, b, sw),
                row_mut(s.proj, b, h),
            );
            for (u, &d) in pr.iter_mut().zip(&dn[..h]) {
                *u = d * (T::ONE - *u * *u);
            }
            dp[..sw - h].copy_from_slice(&dn[h..]);
            dp[sw - h..].fill(T::ZERO);
        }
        for (k, &d) in self.delays.iter().enumerate() {
            let off = (d - 1) * h;
            gemm_nn(
                s.batch,
                h,
                h,
                s.proj,
                h,
                p.get(1 + k),
                h,
                &mut s.dprev[off..],
                sw,
                true,
            );
            gemm_tn(
                h,
                h,
                s.batch,
                s.proj,
                h,
                &s.prev[off..],
                sw,
                g.get_mut(1 + k),
                h,
                true,
            );
        }
    }
}
