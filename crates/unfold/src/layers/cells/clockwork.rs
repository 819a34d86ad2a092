//! The clockwork RNN (Koutník, Greff, Gomez and Schmidhuber 2014), the chapter's example of
//! multiple time scales by removing connections (section 10.9.3). The H tanh units are split
//! into modules `m = 0..M` with periods `T_0 <= T_1 <= ...` (1, 2, 4, ... by default); at step
//! `t` of a sequence only the modules with `t mod T_m == 0` are updated:
//!
//! ```text
//! h_m(t) = tanh(W_m x(t) + U_m h(t-1) + b_m)   if t mod T_m == 0
//! h_m(t) = h_m(t-1)                             otherwise
//! ```
//!
//! and `U` is block upper triangular: module `m` reads the state of modules `m..M` only (its own
//! and the slower ones). Slow modules thus keep information for many steps, and a gradient
//! crosses `n` steps through a module of period `T` in `n / T` Jacobians.
//!
//! The step skips the work of the modules that do not tick: their rows of `U` are not
//! multiplied, and the blocks below the diagonal are never multiplied at all, so a step with
//! periods 1, 2, 4, ... costs well under a dense tanh step of the same size.
//!
//! Each module's phase `t mod T_m` is part of the state (M numbers beside h), so streaming,
//! truncated back-propagation and carried states keep the clock, and the reverse direction of
//! a bidirectional layer counts from its own first step. The phases get no gradient.
//!
//! Parameters: `weight_ih [H, I]`, `weight_hh [H, H]` (zero below the module blocks, and kept
//! zero: those entries get no gradient) and `bias [H]` with biases.

#![allow(clippy::needless_range_loop)] // module m indexes starts, periods and ticks together

use super::DenseInput;
use crate::float::Float;
use crate::kernels::gemm::{gemm_nn, gemm_nt, gemm_tn};
use crate::layers::cell::{row, row_mut, Cell, StepBackward, StepForward};
use crate::layers::config::ClockSpec;
use crate::layers::params::{CellParams, ParamSpec};
use crate::rng::Rng;

/// A layer direction of clockwork tanh units.
#[derive(Debug, Clone)]
pub struct Clockwork {
    input: usize,
    hidden: usize,
    bias: bool,
    /// Each module's first unit, and `hidden` at the end (`M + 1` values).
    starts: Vec<usize>,
    periods: Vec<usize>,
}

/// Which modules update at a step.
type Ticks = [bool; crate::layers::SmallList::CAPACITY];

impl Clockwork {
    /// The cell for `input` features and `hidden` units in the modules of `spec`.
    pub fn new(input: usize, hidden: usize, bias: bool, spec: ClockSpec) -> Self {
        let periods = spec.periods.values();
        let mut starts: Vec<usize> = (0..periods.len())
            .map(|m| spec.module_units(m, hidden).start)
            .collect();
        starts.push(hidden);
        Clockwork {
            input,
            hidden,
            bias,
            starts,
            periods,
        }
    }

    /// Module `m`'s phase in a state row: a whole number in `0..T_m` (anything else, such
    /// as a user's initial state, is rounded and wrapped).
    fn phase<T: Float>(&self, state_row: &[T], m: usize) -> usize {
        let v = state_row[self.hidden + m].to_f64();
        if !v.is_finite() {
            return 0;
        }
        (v.round() as i64).rem_euclid(self.periods[m] as i64) as usize
    }

    /// Which modules of a state row update at this step (those at phase 0).
    fn ticks<T: Float>(&self, state_row: &[T]) -> Ticks {
        let mut t = [false; crate::layers::SmallList::CAPACITY];
        for (m, tick) in t.iter_mut().enumerate().take(self.periods.len()) {
            *tick = self.phase(state_row, m) == 0;
        }
        t
    }

    /// The rows of the batch grouped into runs `r0..r1` whose modules tick alike (usually one
    /// run: the sequences of a batch start together).
    fn runs<T: Float>(&self, prev: &[T], batch: usize, mut f: impl FnMut(usize, usize, &Ticks)) {
        let s = self.hidden + self.periods.len();
        let mut r0 = 0;
        while r0 < batch {
            let ticks = self.ticks(row(prev, r0, s));
            let mut r1 = r0 + 1;
            while r1 < batch && self.ticks(row(prev, r1, s)) == ticks {
                r1 += 1;
            }
            f(r0, r1, &ticks);
            r0 = r1;
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

impl<T: Float> Cell<T> for Clockwork {
    fn name(&self) -> &'static str {
        "clockwork"
    }
    dense_input_methods!();
    fn extra_state_size(&self) -> usize {
        self.periods.len()
    }
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
        v
    }
    /// Uniform in `[-1/sqrt(H), 1/sqrt(H)]` (PyTorch's RNN initialisation), `weight_hh` zero
    /// outside its module blocks.
    fn init_params(&self, p: &mut CellParams<T>, rng: &mut Rng) {
        let h = self.hidden;
        super::uniform_init(p, h, rng);
        let w = p.get_mut(1);
        for m in 0..self.periods.len() {
            for u in self.starts[m]..self.starts[m + 1] {
                w[u * h..u * h + self.starts[m]].fill(T::ZERO);
            }
        }
    }

    fn step(&self, p: &CellParams<T>, s: StepForward<'_, T>) {
        let (h, sw) = (self.hidden, self.hidden + self.periods.len());
        let w = p.get(1);
        let StepForward {
            batch,
            proj,
            prev,
            next,
            ..
        } = s;
        self.runs(prev, batch, |r0, r1, ticks| {
            let n = r1 - r0;
            for m in 0..self.periods.len() {
                let (u0, u1) = (self.starts[m], self.starts[m + 1]);
                if ticks[m] {
                    // pre[:, u0..u1] += h(t-1)[:, u0..H] U[u0..u1, u0..H]^T
                    gemm_nt(
                        n,
                        u1 - u0,
                        h - u0,
                        &prev[r0 * sw + u0..],
                        sw,
                        &w[u0 * h + u0..],
                        h,
                        &mut proj[r0 * h + u0..],
                        h,
                        true,
                    );
                    for b in r0..r1 {
                        let (pr, nx) = (row_mut(proj, b, h), row_mut(next, b, sw));
                        for u in u0..u1 {
                            pr[u] = pr[u].tanh();
                            nx[u] = pr[u];
                        }
                    }
                } else {
                    for b in r0..r1 {
                        let (pv, nx) = (row(prev, b, sw), row_mut(next, b, sw));
                        nx[u0..u1].copy_from_slice(&pv[u0..u1]);
                    }
                }
            }
        });
        for b in 0..batch {
            for m in 0..self.periods.len() {
                let ph = (self.phase(row(prev, b, sw), m) + 1) % self.periods[m];
                next[b * sw + h + m] = T::from_f64(ph as f64);
            }
        }
    }

    fn step_backward(&self, p: &CellParams<T>, s: StepBackward<'_, T>, g: &mut CellParams<T>) {
        let (h, sw) = (self.hidden, self.hidden + self.periods.len());
        let w = p.get(1);
        let gw = g.get_mut(1);
        let StepBackward {
            batch,
            proj,
            prev,
            next,
            dnext,
            dprev,
            ..
        } = s;
        self.runs(prev, batch, |r0, r1, ticks| {
            let n = r1 - r0;
            // Units that do not tick pass their gradient straight back; the phase has none.
            for b in r0..r1 {
                let (dn, dp) = (row(dnext, b, sw), row_mut(dprev, b, sw));
                dp.fill(T::ZERO);
                for m in 0..self.periods.len() {
                    if !ticks[m] {
                        let r = self.starts[m]..self.starts[m + 1];
                        dp[r.clone()].copy_from_slice(&dn[r]);
                    }
                }
            }
            for m in 0..self.periods.len() {
                let (u0, u1) = (self.starts[m], self.starts[m + 1]);
                if !ticks[m] {
                    for b in r0..r1 {
                        row_mut(proj, b, h)[u0..u1].fill(T::ZERO);
                    }
                    continue;
                }
                for b in r0..r1 {
                    let (dn, nx) = (row(dnext, b, sw), row(next, b, sw));
                    let pr = row_mut(proj, b, h);
                    for u in u0..u1 {
                        pr[u] = dn[u] * (T::ONE - nx[u] * nx[u]);
                    }
                }
                // dh(t-1)[:, u0..H] += dpre[:, u0..u1] U[u0..u1, u0..H]
                gemm_nn(
                    n,
                    h - u0,
                    u1 - u0,
                    &proj[r0 * h + u0..],
                    h,
                    &w[u0 * h + u0..],
                    h,
                    &mut dprev[r0 * sw + u0..],
                    sw,
                    true,
                );
                // dU[u0..u1, u0..H] += dpre[:, u0..u1]^T h(t-1)[:, u0..H]
                gemm_tn(
                    u1 - u0,
                    h - u0,
                    n,
                    &proj[r0 * h + u0..],
                    h,
                    &prev[r0 * sw + u0..],
                    sw,
                    &mut gw[u0 * h + u0..],
                    h,
                    true,
                );
            }
        });
    }
}
