//! The time-delay neural network layer (Waibel et al. 1989), the chapter's non-recurrent
//! baseline for sequences: a causal 1-D convolution over time with `K` taps `d` steps apart,
//!
//! ```text
//! h(t) = tanh(sum over k < K of W_k x(t - k d) + b)
//! ```
//!
//! (inputs before the first step are zero: PyTorch's `Conv1d` with `(K - 1) d` zeros of left
//! padding). It has no recurrence, so what it can see is bounded by its receptive field
//! `(K - 1) d + 1` steps (times the number of stacked layers).
//!
//! It runs on the cell contract so that every model, direction, ragged batch, streaming and
//! checkpoint works with it unchanged. All the arithmetic with weights is in the input
//! projection, one GEMM for the whole sequence: `p(t) = [W_0 x(t) + b | W_1 x(t) | ... |
//! W_(K-1) x(t)]`. Each tap's projection is owed to a later step (tap `k` of step `t` to step
//! `t + k d`), so the state keeps, for each of the next `(K - 1) d` steps, the sum of what is
//! owed to it: the step reads the sum owed to itself, moves the others one step closer and adds
//! its own taps. Backward runs the same accounts in reverse, and one GEMM gives the weight and
//! input gradients.
//!
//! Parameters: `weight [K, H, I]` (tap `k`, the input `k d` steps back, is `weight[k]`; a
//! PyTorch `Conv1d` weight `[H, I, K]` is this with the taps reversed and moved last) and
//! `bias [H]` with biases, uniform in `±1/sqrt(K I)` as PyTorch's `Conv1d` starts.

use crate::float::Float;
use crate::kernels::gemm::{gemm_nn, gemm_nt, gemm_tn, sum_rows};
use crate::layers::cell::{row, row_mut, Cell, StepBackward, StepForward};
use crate::layers::config::TdnnSpec;
use crate::layers::params::{CellParams, ParamSpec};
use crate::rng::Rng;

/// A layer direction of time-delay units.
#[derive(Debug, Clone)]
pub struct Tdnn {
    input: usize,
    hidden: usize,
    bias: bool,
    taps: usize,
    dilation: usize,
}

impl Tdnn {
    /// The layer for `input` features and `hidden` units with the kernel of `spec`.
    pub fn new(input: usize, hidden: usize, bias: bool, spec: TdnnSpec) -> Self {
        Tdnn {
            input,
            hidden,
            bias,
            taps: spec.taps.max(1),
            dilation: spec.dilation.max(1),
        }
    }

    /// `(H, d, state row width, projection width)`.
    fn dims(&self) -> (usize, usize, usize, usize) {
        let h = self.hidden;
        (h, self.dilation, self.width(), self.taps * h)
    }

    /// Steps ahead that a state row holds sums for: `(K - 1) d`.
    fn slots(&self) -> usize {
        (self.taps - 1) * self.dilation
    }

    /// Values per state row: h, then the sums owed to the next `(K - 1) d` steps (slot `j`,
    /// `j = 0..`, for the step `j + 1` ahead), H each.
    fn width(&self) -> usize {
        self.hidden * (1 + self.slots())
    }
}

impl<T: Float> Cell<T> for Tdnn {
    fn name(&self) -> &'static str {
        "tdnn"
    }
    fn input_size(&self) -> usize {
        self.input
    }
    fn hidden_size(&self) -> usize {
        self.hidden
    }
    fn extra_state_size(&self) -> usize {
        self.width() - self.hidden
    }
    fn param_specs(&self) -> Vec<ParamSpec> {
        let mut v = vec![ParamSpec {
            name: "weight".into(),
            shape: vec![self.taps, self.hidden, self.input],
        }];
        if self.bias {
            v.push(ParamSpec {
                name: "bias".into(),
                shape: vec![self.hidden],
            });
        }
        v
    }
    fn init_params(&self, p: &mut CellParams<T>, rng: &mut Rng) {
        let k = 1.0 / ((self.taps * self.input) as f64).sqrt();
        for t in p.tensors.iter_mut() {
            for v in t.iter_mut() {
                *v = T::from_f64(rng.uniform_range(-k, k));
            }
        }
    }
    fn projection_width(&self) -> usize {
        self.taps * self.hidden
    }
    fn project(&self, p: &CellParams<T>, x: &[T], rows: usize, proj: &mut [T]) {
        let (h, i, w) = (self.hidden, self.input, self.taps * self.hidden);
        let proj = &mut proj[..rows * w];
        gemm_nt(rows, w, i, x, i, p.get(0), i, proj, w, false);
        if self.bias {
            for r in proj.chunks_exact_mut(w) {
                for (v, &b) in r[..h].iter_mut().zip(p.get(1)) {
                    *v += b;
                }
            }
        }
    }
    fn project_backward(
        &self,
        p: &CellParams<T>,
        x: &[T],
        dproj: &[T],
        rows: usize,
        g: &mut CellParams<T>,
        dx: Option<&mut [T]>,
    ) {
        let (h, i, w) = (self.hidden, self.input, self.taps * self.hidden);
        gemm_tn(w, i, rows, dproj, w, x, i, g.get_mut(0), i, true);
        if self.bias {
            sum_rows(rows, h, dproj, w, g.get_mut(1));
        }
        if let Some(dx) = dx {
            gemm_nn(rows, i, w, dproj, w, p.get(0), i, dx, i, true);
        }
    }

    fn step(&self, _p: &CellParams<T>, s: StepForward<'_, T>) {
        let (h, d, sw, pw) = self.dims();
        let n = self.slots() * h;
        for b in 0..s.batch {
            let (pr, pv, nx) = (
                row_mut(s.proj, b, pw),
                row(s.prev, b, sw),
                row_mut(s.next, b, sw),
            );
            if n > 0 {
                // What earlier steps owe this one (slot 0), then the rest one step closer,
                // plus this step's taps for the steps k d ahead (slot k d - 1).
                for (v, &o) in pr[..h].iter_mut().zip(&pv[h..2 * h]) {
                    *v += o;
                }
                nx[h..h + n - h].copy_from_slice(&pv[2 * h..h + n]);
                nx[h + n - h..h + n].fill(T::ZERO);
                for k in 1..self.taps {
                    let slot = h + (k * d - 1) * h;
                    for (v, &t) in nx[slot..slot + h].iter_mut().zip(&pr[k * h..(k + 1) * h]) {
                        *v += t;
                    }
                }
            }
            // proj keeps h(t) for backward.
            for (v, o) in pr[..h].iter_mut().zip(&mut nx[..h]) {
                *v = v.tanh();
                *o = *v;
            }
        }
    }

    fn step_backward(&self, _p: &CellParams<T>, s: StepBackward<'_, T>, _g: &mut CellParams<T>) {
        let (h, d, sw, pw) = self.dims();
        let n = self.slots() * h;
        for b in 0..s.batch {
            let (pr, dn, dp) = (
                row_mut(s.proj, b, pw),
                row(s.dnext, b, sw),
                row_mut(s.dprev, b, sw),
            );
            // The output does not read the previous output.
            dp[..h].fill(T::ZERO);
            for (v, &g) in pr[..h].iter_mut().zip(&dn[..h]) {
                *v = g * (T::ONE - *v * *v);
            }
            if n > 0 {
                for k in 1..self.taps {
                    let slot = h + (k * d - 1) * h;
                    pr[k * h..(k + 1) * h].copy_from_slice(&dn[slot..slot + h]);
                }
                dp[h..2 * h].copy_from_slice(&pr[..h]);
                dp[2 * h..h + n].copy_from_slice(&dn[h..n]);
            }
        }
    }
}
