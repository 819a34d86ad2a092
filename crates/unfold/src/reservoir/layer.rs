//! One reservoir layer: fixed random input, bias, recurrent and feedback weights, and the
//! leaky-integrator update `x <- (1 - a) x + a f(W_in u + b + W x + W_fb y)`.
//!
//! The layer advances a block of `B` independent sequences at once, with states unit-major
//! (`[N, B]`), so each recurrent product streams the weights once for the whole block.

#![allow(clippy::needless_range_loop)]

use super::sparse::{WeightDist, Weights};
use super::spectral::scale_to_radius;
use crate::error::{Error, Result};
use crate::float::{exp_f64, tanh_f64};
use crate::rng::Rng;

/// The units' nonlinearity `f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Hyperbolic tangent (the usual choice).
    Tanh,
    /// Identity: a linear reservoir.
    Identity,
    /// Logistic sigmoid.
    Sigmoid,
    /// Rectified linear.
    Relu,
}

impl Activation {
    /// Applies `f`.
    #[inline]
    pub fn apply(self, v: f64) -> f64 {
        match self {
            Activation::Tanh => tanh_f64(v),
            Activation::Identity => v,
            Activation::Sigmoid => 1.0 / (1.0 + exp_f64(-v)),
            Activation::Relu => v.max(0.0),
        }
    }

    /// The name used in configs and checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Identity => "identity",
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
        }
    }

    /// Parses [`Activation::name`].
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "tanh" => Ok(Activation::Tanh),
            "identity" | "linear" => Ok(Activation::Identity),
            "sigmoid" => Ok(Activation::Sigmoid),
            "relu" => Ok(Activation::Relu),
            _ => Err(Error::InvalidConfig(format!(
                "unknown activation {s:?} (tanh, identity, sigmoid, relu)"
            ))),
        }
    }
}

/// Settings of one reservoir layer.
#[derive(Debug, Clone, PartialEq)]
pub struct ReservoirConfig {
    /// Number of units `N`.
    pub units: usize,
    /// Spectral radius the recurrent matrix is scaled to (any value >= 0; above 1 is allowed and
    /// relies on the activation's saturation).
    pub spectral_radius: f64,
    /// Fraction of non-zero recurrent weights.
    pub connectivity: f64,
    /// Distribution of the recurrent weights before scaling.
    pub weight_dist: WeightDist,
    /// Multiplier of the input weights.
    pub input_scaling: f64,
    /// Fraction of non-zero input weights.
    pub input_connectivity: f64,
    /// Distribution of the input (and feedback) weights before scaling.
    pub input_dist: WeightDist,
    /// Scale of the uniform random bias in `[-s, s]` (0: no bias).
    pub bias_scaling: f64,
    /// Leak rate `a` in (0, 1]: 1 is a plain (non-leaky) ESN.
    pub leak_rate: f64,
    /// The units' nonlinearity.
    pub activation: Activation,
    /// Multiplier of the output-feedback weights (0: no feedback).
    pub feedback_scaling: f64,
    /// Amplitude of uniform state noise added while harvesting training states (0: none).
    pub noise: f64,
}

impl Default for ReservoirConfig {
    fn default() -> Self {
        ReservoirConfig {
            units: 300,
            spectral_radius: 0.9,
            connectivity: 0.1,
            weight_dist: WeightDist::Normal,
            input_scaling: 1.0,
            input_connectivity: 1.0,
            input_dist: WeightDist::Uniform,
            bias_scaling: 0.0,
            leak_rate: 1.0,
            activation: Activation::Tanh,
            feedback_scaling: 0.0,
            noise: 0.0,
        }
    }
}

impl ReservoirConfig {
    /// Checks every value's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.units == 0 {
            return bad("a reservoir needs at least one unit".into());
        }
        if !(self.leak_rate > 0.0 && self.leak_rate <= 1.0) {
            return bad(format!(
                "leak rate must be in (0, 1], got {}",
                self.leak_rate
            ));
        }
        for (name, v) in [
            ("spectral radius", self.spectral_radius),
            ("input scaling", self.input_scaling),
            ("bias scaling", self.bias_scaling),
            ("feedback scaling", self.feedback_scaling),
            ("noise", self.noise),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be finite and non-negative, got {v}"));
            }
        }
        for (name, v) in [
            ("connectivity", self.connectivity),
            ("input connectivity", self.input_connectivity),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return bad(format!("{name} must be in (0, 1], got {v}"));
            }
        }
        Ok(())
    }
}

/// One reservoir layer with its fixed weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservoir {
    /// The settings it was built from.
    pub config: ReservoirConfig,
    /// `[N, D]` input weights.
    pub w_in: Weights,
    /// `[N]` bias (empty when `bias_scaling` is 0).
    pub bias: Vec<f64>,
    /// `[N, N]` recurrent weights, scaled to the spectral radius.
    pub w: Weights,
    /// `[N, O]` output-feedback weights, when feedback is on.
    pub w_fb: Option<Weights>,
    /// The spectral radius the recurrent matrix had before scaling.
    pub raw_radius: f64,
}

impl Reservoir {
    /// Draws the weights for `inputs` input dimensions and `feedback` fed-back outputs (0: none)
    /// from `rng`, and scales the recurrent matrix to the configured spectral radius.
    pub fn new(
        config: &ReservoirConfig,
        inputs: usize,
        feedback: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        config.validate()?;
        let n = config.units;
        let mut w = Weights::random(n, n, config.connectivity, config.weight_dist, rng)?;
        let raw_radius = scale_to_radius(&mut w, config.spectral_radius, rng.next_u64())?;
        let mut w_in = if inputs > 0 {
            Weights::random(n, inputs, config.input_connectivity, config.input_dist, rng)?
        } else {
            Weights::Dense {
                rows: n,
                cols: 0,
                values: Vec::new(),
            }
        };
        w_in.scale(config.input_scaling);
        let bias = if config.bias_scaling > 0.0 {
            (0..n)
                .map(|_| rng.uniform_range(-1.0, 1.0) * config.bias_scaling)
                .collect()
        } else {
            Vec::new()
        };
        let w_fb = if config.feedback_scaling > 0.0 && feedback > 0 {
            let mut f = Weights::random(n, feedback, 1.0, config.input_dist, rng)?;
            f.scale(config.feedback_scaling);
            Some(f)
        } else {
            None
        };
        Ok(Reservoir {
            config: config.clone(),
            w_in,
            bias,
            w,
            w_fb,
            raw_radius,
        })
    }

    /// Number of units.
    pub fn units(&self) -> usize {
        self.config.units
    }

    /// Number of input dimensions.
    pub fn inputs(&self) -> usize {
        self.w_in.cols()
    }

    /// Advances `b` sequences by one step.
    ///
    /// `x` (`[N, b]`) is the state, updated in place; `u` (`[D, b]`) the inputs; `y` (`[O, b]`)
    /// the fed-back outputs (ignored without feedback); `pre` a `[N, b]` scratch buffer;
    /// `noise` adds uniform noise of the configured amplitude.
    pub fn step(
        &self,
        x: &mut [f64],
        u: &[f64],
        y: &[f64],
        b: usize,
        pre: &mut [f64],
        noise: Option<&mut Rng>,
    ) {
        let n = self.units();
        let pre = &mut pre[..n * b];
        self.w.mul_cols(x, b, pre, false);
        if self.inputs() > 0 {
            self.w_in.mul_cols(u, b, pre, true);
        }
        if let Some(fb) = &self.w_fb {
            fb.mul_cols(y, b, pre, true);
        }
        if !self.bias.is_empty() {
            for (i, &bi) in self.bias.iter().enumerate() {
                pre[i * b..(i + 1) * b].iter_mut().for_each(|p| *p += bi);
            }
        }
        self.activate(&mut x[..n * b], pre);
        if let Some(rng) = noise {
            let s = self.config.noise;
            if s > 0.0 {
                for v in x.iter_mut().take(n * b) {
                    *v += rng.uniform_range(-s, s);
                }
            }
        }
    }

    /// Advances the units `r0..r1` of one sequence without output feedback: `out` (those units)
    /// becomes the new state from the previous state `prev` (all `N` units) and the input `u`;
    /// `pre` is a scratch buffer of at least `r1 - r0` entries. Threads that own disjoint unit
    /// ranges advance one step together (`super::split`).
    pub(crate) fn step_rows(
        &self,
        prev: &[f64],
        u: &[f64],
        r0: usize,
        r1: usize,
        pre: &mut [f64],
        out: &mut [f64],
    ) {
        let pre = &mut pre[..r1 - r0];
        self.w.mul_rows(prev, r0, r1, pre, false);
        if self.inputs() > 0 {
            self.w_in.mul_rows(u, r0, r1, pre, true);
        }
        if !self.bias.is_empty() {
            pre.iter_mut()
                .zip(&self.bias[r0..r1])
                .for_each(|(p, b)| *p += b);
        }
        out.copy_from_slice(&prev[r0..r1]);
        self.activate(out, pre);
    }

    /// `x <- (1 - a) x + a f(pre)` with this layer's leak rate and activation.
    fn activate(&self, x: &mut [f64], pre: &[f64]) {
        let a = self.config.leak_rate;
        // One flat loop per activation, so the compiler vectorises it (tanh is branch-free).
        #[cfg(target_arch = "x86_64")]
        if self.config.activation == Activation::Tanh && crate::kernels::packed::available() {
            // SAFETY: AVX-512F is present; `pre` covers `x`.
            unsafe { crate::kernels::cells512::leaky_tanh_f64(x, pre, a) };
            return;
        }
        match self.config.activation {
            Activation::Tanh => leaky_update(x, pre, a, tanh_f64),
            Activation::Identity => leaky_update(x, pre, a, |v| v),
            Activation::Sigmoid => leaky_update(x, pre, a, |v| 1.0 / (1.0 + exp_f64(-v))),
            Activation::Relu => leaky_update(x, pre, a, |v| v.max(0.0)),
        }
    }
}

/// `x <- (1 - a) x + a f(pre)` over whole buffers.
#[inline(always)]
fn leaky_update(x: &mut [f64], pre: &[f64], a: f64, f: impl Fn(f64) -> f64) {
    if a == 1.0 {
        for (xv, &pv) in x.iter_mut().zip(pre) {
            *xv = f(pv);
        }
    } else {
        for (xv, &pv) in x.iter_mut().zip(pre) {
            *xv = (1.0 - a) * *xv + a * f(pv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reservoir::spectral::spectral_radius;

    #[test]
    fn radius_is_the_requested_one_below_and_above_one() {
        for &(units, rho, conn) in &[(200usize, 0.9, 0.1), (150, 3.0, 0.2), (600, 1.25, 0.02)] {
            let cfg = ReservoirConfig {
                units,
                spectral_radius: rho,
                connectivity: conn,
                ..Default::default()
            };
            let r = Reservoir::new(&cfg, 2, 0, &mut Rng::new(5)).unwrap();
            let got = spectral_radius(&r.w, 11).unwrap();
            assert!((got - rho).abs() < 1e-8 * rho, "{got} vs {rho}");
        }
    }

    #[test]
    fn leaky_step_matches_the_formula() {
        let cfg = ReservoirConfig {
            units: 20,
            leak_rate: 0.3,
            bias_scaling: 0.5,
            feedback_scaling: 0.4,
            ..Default::default()
        };
        let r = Reservoir::new(&cfg, 3, 2, &mut Rng::new(1)).unwrap();
        let mut rng = Rng::new(2);
        let x0: Vec<f64> = (0..20).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
        let u = [0.3, -0.2, 1.0];
        let y = [0.5, -1.0];
        let mut x = x0.clone();
        let mut pre = vec![0.0; 20];
        r.step(&mut x, &u, &y, 1, &mut pre, None);
        let (w, wi, wf) = (
            r.w.to_dense(),
            r.w_in.to_dense(),
            r.w_fb.as_ref().unwrap().to_dense(),
        );
        for i in 0..20 {
            let s: f64 = (0..20).map(|j| w[i * 20 + j] * x0[j]).sum::<f64>()
                + (0..3).map(|j| wi[i * 3 + j] * u[j]).sum::<f64>()
                + (0..2).map(|j| wf[i * 2 + j] * y[j]).sum::<f64>()
                + r.bias[i];
            let want = 0.7 * x0[i] + 0.3 * s.tanh();
            assert!((x[i] - want).abs() < 1e-14);
        }
    }

    #[test]
    fn bad_settings_are_errors() {
        for cfg in [
            ReservoirConfig {
                leak_rate: 0.0,
                ..Default::default()
            },
            ReservoirConfig {
                spectral_radius: f64::NAN,
                ..Default::default()
            },
            ReservoirConfig {
                units: 0,
                ..Default::default()
            },
        ] {
            assert!(Reservoir::new(&cfg, 1, 0, &mut Rng::new(0)).is_err());
        }
    }
}
