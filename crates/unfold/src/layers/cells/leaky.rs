//! The leaky-integrator unit, the chapter's tool for multiple time scales (section 10.9.2):
//!
//! ```text
//! u(t) = tanh(W x(t) + U h(t-1) + b)        h(t) = (1 - a) h(t-1) + a u(t)
//! ```
//!
//! with one leak rate `a_j` in (0, 1] per unit: `a = 1` is an ordinary tanh RNN unit, a small
//! `a` integrates its input over about `1/a` steps, so the unit's self-connection `1 - a` is
//! near one and gradients survive over long lags. The initial leaks are spread geometrically
//! over `[min, max]` across the units (several time scales at once). They are either fixed
//! (set by the configuration, not trained) or learned through `a = 1 / (1 + ρ²)`, i.e. a time
//! constant `τ = 1/a = 1 + ρ²`, which keeps `a` in (0, 1] for any `ρ` (tensor `leak_rho`).
//!
//! Parameters: `weight_ih [H, I]`, `weight_hh [H, H]`, `bias [H]` (when the layer has biases)
//! and `leak_rho [H]` (learned leaks only). An echo state network with leak rate `a` is exactly
//! this cell with a fixed leak (`reservoir::labeller_from_esn`).

use super::DenseInput;
use crate::float::Float;
use crate::kernels::gemm::{gemm_nn, gemm_nt, gemm_tn};
use crate::layers::cell::{row, row_mut, Cell, StepBackward, StepForward};
use crate::layers::config::LeakSpec;
use crate::layers::params::{CellParams, ParamSpec};
use crate::rng::Rng;

/// A layer direction of leaky-integrator tanh units.
#[derive(Debug, Clone)]
pub struct Leaky<T> {
    input: usize,
    hidden: usize,
    bias: bool,
    spec: LeakSpec,
    /// The leak of every unit when the leaks are fixed (empty when learned).
    fixed: Vec<T>,
}

impl<T: Float> Leaky<T> {
    /// The cell for `input` features and `hidden` units.
    pub fn new(input: usize, hidden: usize, bias: bool, spec: LeakSpec) -> Self {
        let fixed = if spec.learn {
            Vec::new()
        } else {
            spec.initial(hidden).into_iter().map(T::from_f64).collect()
        };
        Leaky {
            input,
            hidden,
            bias,
            spec,
            fixed,
        }
    }

    /// Index of `leak_rho` among the tensors.
    fn rho_index(&self) -> usize {
        2 + usize::from(self.bias)
    }

    /// Writes every unit's leak rate into `a` (`[H]`).
    fn leaks(&self, p: &CellParams<T>, a: &mut [T]) {
        if self.spec.learn {
            for (a, &r) in a.iter_mut().zip(p.get(self.rho_index())) {
                *a = T::ONE / (T::ONE + r * r);
            }
        } else {
            a.copy_from_slice(&self.fixed);
        }
    }

    /// The input projection `x W^T + b`.
    fn dense_input(&self) -> DenseInput {
        DenseInput {
            input: self.input,
            hidden: self.hidden,
            bias: self.bias.then_some(2),
        }
    }
}

impl<T: Float> Cell<T> for Leaky<T> {
    fn name(&self) -> &'static str {
        "leaky"
    }
    dense_input_methods!();
    fn param_specs(&self) -> Vec<ParamSpec> {
        let (h, i) = (self.hidden, self.input);
        let spec = |name: &str, shape: Vec<usize>| ParamSpec {
            name: name.into(),
            shape,
        };
        let mut v = vec![spec("weight_ih", vec![h, i]), spec("weight_hh", vec![h, h])];
        if self.bias {
            v.push(spec("bias", vec![h]));
        }
        if self.spec.learn {
            v.push(spec("leak_rho", vec![h]));
        }
        v
    }
    /// Weights and bias uniform in `[-1/sqrt(H), 1/sqrt(H)]` (PyTorch's RNN initialisation);
    /// `ρ` from the spec's initial leaks.
    fn init_params(&self, p: &mut CellParams<T>, rng: &mut Rng) {
        let k = 1.0 / (self.hidden as f64).sqrt();
        for t in p.tensors.iter_mut().take(2 + usize::from(self.bias)) {
            for v in t.iter_mut() {
                *v = T::from_f64(rng.uniform_range(-k, k));
            }
        }
        if self.spec.learn {
            let rho = p.get_mut(self.rho_index());
            for (r, a) in rho.iter_mut().zip(self.spec.initial(self.hidden)) {
                *r = T::from_f64(LeakSpec::rho_of(a));
            }
        }
    }
    /// The leak rates and, in backward, their derivatives (`2H`; per step, not per sequence,
    /// but a batch of one must hold them).
    fn scratch_width(&self) -> usize {
        2 * self.hidden
    }

    fn step(&self, p: &CellParams<T>, s: StepForward<'_, T>) {
        let hs = self.hidden;
        gemm_nt(s.batch, hs, hs, s.prev, hs, p.get(1), hs, s.proj, hs, true);
        let a = &mut s.scratch[..hs];
        self.leaks(p, a);
        for b in 0..s.batch {
            let (u, prev, next) = (
                row_mut(s.proj, b, hs),
                row(s.prev, b, hs),
                row_mut(s.next, b, hs),
            );
            for j in 0..hs {
                // proj keeps u(t) for backward.
                u[j] = u[j].tanh();
                next[j] = (T::ONE - a[j]) * prev[j] + a[j] * u[j];
            }
        }
    }

    fn step_backward(&self, p: &CellParams<T>, s: StepBackward<'_, T>, g: &mut CellParams<T>) {
        let hs = self.hidden;
        let (a, dadr) = s.scratch[..2 * hs].split_at_mut(hs);
        self.leaks(p, a);
        // Learned leaks: da/dρ = -2ρ a² per unit, once per step; the gradient on ρ is summed
        // over the batch.
        let mut drho = if self.spec.learn {
            let ri = self.rho_index();
            for ((d, &r), &aj) in dadr.iter_mut().zip(p.get(ri)).zip(a.iter()) {
                *d = -(r + r) * aj * aj;
            }
            Some(g.get_mut(ri))
        } else {
            None
        };
        for b in 0..s.batch {
            let (dh, prev) = (row(s.dnext, b, hs), row(s.prev, b, hs));
            let (u, dprev) = (row_mut(s.proj, b, hs), row_mut(s.dprev, b, hs));
            for j in 0..hs {
                let d = dh[j];
                dprev[j] = d * (T::ONE - a[j]);
                if let Some(gr) = drho.as_deref_mut() {
                    gr[j] += d * (u[j] - prev[j]) * dadr[j];
                }
                u[j] = d * a[j] * (T::ONE - u[j] * u[j]);
            }
        }
        gemm_nn(s.batch, hs, hs, s.proj, hs, p.get(1), hs, s.dprev, hs, true);
        gemm_tn(
            hs,
            hs,
            s.batch,
            s.proj,
            hs,
            s.prev,
            hs,
            g.get_mut(1),
            hs,
            true,
        );
    }
}
