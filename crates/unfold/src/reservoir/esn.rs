//! Echo state networks: one or more stacked reservoirs and a linear readout.
//!
//! An [`Esn`] holds fixed reservoirs (layer `l > 0` is driven by the states of layer `l - 1`, as
//! in deep ESNs) and a readout `y = W [1; u; x_1; ...; x_L]` (bias and input parts optional).
//! Only `W` is trained: in closed form by ridge regression ([`Esn::fit`] in `fit.rs`) or online
//! by recursive least squares ([`Esn::fit_force`]). This file holds the configuration, the
//! streaming state ([`EsnState`]: one step at a time, output feedback from the model's own
//! outputs or from a teacher) and closed-loop forecasting.

#![allow(clippy::needless_range_loop)]

use super::layer::{Reservoir, ReservoirConfig};
use super::readout::Rls;
use crate::error::{check_len, Error, Result};
use crate::rng::Rng;

/// How per-sequence features summarise the states of a sequence (sequence classification).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The state after the last step.
    Last,
    /// The mean state over the steps after the washout.
    Mean,
    /// Both, concatenated.
    LastAndMean,
}

impl Pooling {
    /// The name used in configs and checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Last => "last",
            Pooling::Mean => "mean",
            Pooling::LastAndMean => "last+mean",
        }
    }

    /// Parses [`Pooling::name`].
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "last" => Ok(Pooling::Last),
            "mean" => Ok(Pooling::Mean),
            "last+mean" | "both" => Ok(Pooling::LastAndMean),
            _ => Err(Error::InvalidConfig(format!(
                "unknown pooling {s:?} (last, mean, last+mean)"
            ))),
        }
    }

    /// How many copies of the per-step features a pooled row holds.
    pub fn width(self) -> usize {
        if self == Pooling::LastAndMean {
            2
        } else {
            1
        }
    }
}

/// What the readout maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadoutKind {
    /// One output per step (forecasting, labelling, generation).
    PerStep,
    /// One output per sequence from pooled states (classification).
    Pooled(Pooling),
}

/// Settings of an echo state network.
#[derive(Debug, Clone, PartialEq)]
pub struct EsnConfig {
    /// Settings shared by every reservoir layer.
    pub reservoir: ReservoirConfig,
    /// Number of stacked reservoirs (1: a plain ESN).
    pub layers: usize,
    /// Steps at the start of each sequence whose states are not used for fitting.
    pub washout: usize,
    /// Whether the readout sees a constant 1 (a bias).
    pub readout_bias: bool,
    /// Whether the readout sees the input itself.
    pub readout_input: bool,
    /// Ridge candidates: one is used as given; several are compared on a validation split.
    pub ridge: Vec<f64>,
    /// Share of the data held out to choose the ridge (when there are several candidates).
    pub valid_fraction: f64,
    /// Seed of every random choice (weights, noise, the validation split).
    pub seed: u64,
}

impl Default for EsnConfig {
    fn default() -> Self {
        EsnConfig {
            reservoir: ReservoirConfig::default(),
            layers: 1,
            washout: 100,
            readout_bias: true,
            readout_input: true,
            ridge: vec![1e-8, 1e-6, 1e-4, 1e-2, 1.0],
            valid_fraction: 0.2,
            seed: 0,
        }
    }
}

/// An echo state network: fixed reservoirs plus a trained linear readout.
#[derive(Debug, Clone, PartialEq)]
pub struct Esn {
    /// The settings it was built from.
    pub config: EsnConfig,
    /// Input dimensions `D` (0: driven by feedback and bias only).
    pub inputs: usize,
    /// Output dimensions `O`.
    pub outputs: usize,
    /// What the readout maps.
    pub kind: ReadoutKind,
    /// The reservoirs, input side first.
    pub layers: Vec<Reservoir>,
    /// `[O, F]` readout weights over [`Esn::features`] features.
    pub readout: Vec<f64>,
    /// The ridge the readout was fitted with (`NaN` before fitting).
    pub ridge: f64,
}

/// The running state of an ESN for streaming use.
#[derive(Debug, Clone, PartialEq)]
pub struct EsnState {
    /// Each layer's state `[N]`.
    pub x: Vec<Vec<f64>>,
    /// The last output, fed back at the next step when the ESN has feedback, and the next input
    /// of closed-loop forecasting.
    pub y: Vec<f64>,
    pre: Vec<f64>,
    row: Vec<f64>,
}

impl Esn {
    /// Builds the reservoirs for `inputs` inputs and `outputs` outputs (readout all zero).
    pub fn new(
        config: EsnConfig,
        inputs: usize,
        outputs: usize,
        kind: ReadoutKind,
    ) -> Result<Self> {
        if config.layers == 0 {
            return Err(Error::InvalidConfig(
                "an ESN needs at least one layer".into(),
            ));
        }
        if outputs == 0 {
            return Err(Error::InvalidConfig(
                "an ESN needs at least one output".into(),
            ));
        }
        if inputs == 0
            && config.reservoir.feedback_scaling == 0.0
            && config.reservoir.bias_scaling == 0.0
        {
            return Err(Error::InvalidConfig(
                "an ESN with no inputs needs output feedback (or a bias) to be driven".into(),
            ));
        }
        if config.reservoir.feedback_scaling > 0.0 && kind != ReadoutKind::PerStep {
            return Err(Error::InvalidConfig(
                "output feedback needs a per-step readout, not a pooled one".into(),
            ));
        }
        if config.ridge.iter().any(|r| !(r.is_finite() && *r >= 0.0)) || config.ridge.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "ridge candidates must be finite and non-negative, got {:?}",
                config.ridge
            )));
        }
        if !(config.valid_fraction > 0.0 && config.valid_fraction < 1.0) {
            return Err(Error::InvalidConfig(format!(
                "validation fraction must be in (0, 1), got {}",
                config.valid_fraction
            )));
        }
        let mut rng = Rng::new(config.seed);
        let mut layers = Vec::with_capacity(config.layers);
        for l in 0..config.layers {
            let (d, fb) = if l == 0 {
                (inputs, outputs)
            } else {
                (config.reservoir.units, 0)
            };
            layers.push(Reservoir::new(&config.reservoir, d, fb, &mut rng)?);
        }
        let mut esn = Esn {
            config,
            inputs,
            outputs,
            kind,
            layers,
            readout: Vec::new(),
            ridge: f64::NAN,
        };
        esn.readout = vec![0.0; outputs * esn.features()];
        Ok(esn)
    }

    /// Whether the first reservoir receives the outputs back.
    pub fn has_feedback(&self) -> bool {
        self.layers[0].w_fb.is_some()
    }

    /// Total number of reservoir units over the layers.
    pub fn units(&self) -> usize {
        self.layers.iter().map(|l| l.units()).sum()
    }

    /// Width of one step's features: `[1][u][x_1 .. x_L]`.
    pub fn step_features(&self) -> usize {
        usize::from(self.config.readout_bias)
            + if self.config.readout_input {
                self.inputs
            } else {
                0
            }
            + self.units()
    }

    /// Width of the readout's input (per-step features, or pooled ones).
    pub fn features(&self) -> usize {
        match self.kind {
            ReadoutKind::PerStep => self.step_features(),
            ReadoutKind::Pooled(p) => {
                let bias = usize::from(self.config.readout_bias);
                bias + (self.step_features() - bias) * p.width()
            }
        }
    }

    /// Writes one step's features for column `j` of `b` (states unit-major) into `row`.
    pub(crate) fn write_row(
        &self,
        xs: &[Vec<f64>],
        u: &[f64],
        j: usize,
        b: usize,
        row: &mut [f64],
    ) {
        let mut k = 0;
        if self.config.readout_bias {
            row[0] = 1.0;
            k = 1;
        }
        if self.config.readout_input {
            for i in 0..self.inputs {
                row[k + i] = u[i * b + j];
            }
            k += self.inputs;
        }
        for x in xs {
            let n = x.len() / b;
            for i in 0..n {
                row[k + i] = x[i * b + j];
            }
            k += n;
        }
    }

    /// `out = W row`.
    pub(crate) fn apply_readout(&self, row: &[f64], out: &mut [f64]) {
        let f = row.len();
        for k in 0..self.outputs {
            out[k] = self.readout[k * f..(k + 1) * f]
                .iter()
                .zip(row)
                .map(|(a, b)| a * b)
                .sum();
        }
    }

    /// A zero state (and zero last output).
    pub fn state(&self) -> EsnState {
        EsnState {
            x: self.layers.iter().map(|l| vec![0.0; l.units()]).collect(),
            y: vec![0.0; self.outputs],
            pre: vec![0.0; self.layers.iter().map(|l| l.units()).max().unwrap_or(0)],
            row: vec![0.0; self.step_features()],
        }
    }

    /// Advances the reservoirs by one step with input `u` (feeding back `st.y`) without reading
    /// out.
    pub fn advance(&self, st: &mut EsnState, u: &[f64]) -> Result<()> {
        check_len("ESN input", self.inputs, u.len())?;
        for l in 0..self.layers.len() {
            let (prev, cur) = st.x.split_at_mut(l);
            let input = if l == 0 { u } else { &prev[l - 1][..] };
            self.layers[l].step(&mut cur[0], input, &st.y, 1, &mut st.pre, None);
        }
        self.write_row(&st.x, u, 0, 1, &mut st.row);
        Ok(())
    }

    /// One streaming step: advances with input `u` and writes the readout into `st.y`, which it
    /// returns (no allocation). Needs a per-step readout.
    pub fn step<'s>(&self, st: &'s mut EsnState, u: &[f64]) -> Result<&'s [f64]> {
        if self.kind != ReadoutKind::PerStep {
            return Err(Error::InvalidCall(
                "a pooled (classification) ESN has no per-step output".into(),
            ));
        }
        self.advance(st, u)?;
        self.apply_readout(&st.row, &mut st.y);
        Ok(&st.y)
    }

    /// Runs a whole sequence (`[T, D]` inputs) from `st`, returning `[T, O]` outputs. With a
    /// `teacher` (`[T, O]`), the fed-back output after step `t` is the teacher's row `t`
    /// (teacher forcing); without, it is the model's own output.
    pub fn run(
        &self,
        st: &mut EsnState,
        inputs: &[f64],
        teacher: Option<&[f64]>,
    ) -> Result<Vec<f64>> {
        let steps = self.steps_of(inputs, teacher)?;
        let (d, o) = (self.inputs, self.outputs);
        let mut out = Vec::with_capacity(steps * o);
        for t in 0..steps {
            out.extend_from_slice(self.step(st, &inputs[t * d..(t + 1) * d])?);
            if let Some(te) = teacher {
                st.y.copy_from_slice(&te[t * o..(t + 1) * o]);
            }
        }
        Ok(out)
    }

    fn steps_of(&self, inputs: &[f64], teacher: Option<&[f64]>) -> Result<usize> {
        let (d, o) = (self.inputs, self.outputs);
        let steps = if d > 0 {
            if !inputs.len().is_multiple_of(d) {
                return Err(Error::Shape {
                    what: "ESN inputs".into(),
                    expected: format!("a multiple of {d}"),
                    got: inputs.len().to_string(),
                });
            }
            inputs.len() / d
        } else {
            teacher.map(|t| t.len() / o).unwrap_or(0)
        };
        if let Some(te) = teacher {
            check_len("ESN teacher outputs", steps * o, te.len())?;
        }
        Ok(steps)
    }

    /// Closed-loop forecast of `horizon` values of the series' continuation from `st`.
    ///
    /// An input-driven one-step predictor (`D == O`, trained with target `u(t+1)`) already holds
    /// its next value in `st.y`: that is the first forecast, and each later one is the output for
    /// the previous forecast as input. A generator driven by feedback alone (`D == 0`) steps with
    /// its last output fed back.
    pub fn forecast(&self, st: &mut EsnState, horizon: usize) -> Result<Vec<f64>> {
        let o = self.outputs;
        let mut out = Vec::with_capacity(horizon * o);
        if self.inputs == 0 {
            for _ in 0..horizon {
                out.extend_from_slice(self.step(st, &[])?);
            }
        } else if self.inputs == o {
            let mut u = vec![0.0; o];
            for h in 0..horizon {
                if h > 0 {
                    u.copy_from_slice(&st.y);
                    self.step(st, &u)?;
                }
                out.extend_from_slice(&st.y);
            }
        } else {
            return Err(Error::InvalidCall(format!(
                "closed-loop forecasting feeds outputs back as inputs, so it needs as many \
                 outputs as inputs ({} vs {}) or no inputs",
                o, self.inputs
            )));
        }
        if out.iter().any(|v| !v.is_finite()) {
            return Err(Error::Numerical(
                "the closed-loop forecast diverged to a non-finite value".into(),
            ));
        }
        Ok(out)
    }

    /// Online readout learning by recursive least squares (FORCE) on one sequence.
    ///
    /// The readout starts at zero with `P = I / alpha`; at each step after the washout the
    /// output `z = W r` is computed, fed back (when the ESN has feedback) and `W` is updated
    /// towards the target. During the washout the teacher is fed back. Returns the squared
    /// prior errors (summed over outputs) of the steps after the washout.
    pub fn fit_force(&mut self, inputs: &[f64], targets: &[f64], alpha: f64) -> Result<Vec<f64>> {
        let steps = self.steps_of(inputs, Some(targets))?;
        let washout = self.config.washout;
        if steps <= washout {
            return Err(Error::InvalidData(format!(
                "the sequence has {steps} steps, not more than the washout {washout}"
            )));
        }
        let (d, o) = (self.inputs, self.outputs);
        let f = self.step_features();
        let mut rls = Rls::new(f, o, alpha)?;
        let mut st = self.state();
        let mut errs = Vec::with_capacity(steps - washout);
        let mut z = vec![0.0; o];
        for t in 0..steps {
            self.advance(&mut st, &inputs[t * d..(t + 1) * d])?;
            let target = &targets[t * o..(t + 1) * o];
            if t < washout {
                st.y.copy_from_slice(target);
                continue;
            }
            rls.predict(&st.row, &mut z);
            errs.push(rls.update(&st.row, target));
            st.y.copy_from_slice(&z);
        }
        self.readout = rls.w;
        self.ridge = alpha;
        Ok(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reservoir::sparse::WeightDist;

    #[test]
    fn force_learns_a_sine_generator_from_feedback_alone() {
        let cfg = EsnConfig {
            reservoir: ReservoirConfig {
                units: 200,
                spectral_radius: 1.2,
                connectivity: 0.1,
                weight_dist: WeightDist::Normal,
                feedback_scaling: 1.0,
                bias_scaling: 0.2,
                ..Default::default()
            },
            washout: 50,
            readout_input: false,
            ..Default::default()
        };
        let mut esn = Esn::new(cfg, 0, 1, ReadoutKind::PerStep).unwrap();
        let steps = 2000;
        let y: Vec<f64> = (0..steps + 200)
            .map(|t| (t as f64 * 0.2).sin() * 0.5)
            .collect();
        let errs = esn.fit_force(&[], &y[..steps], 1.0).unwrap();
        let late: f64 = errs[errs.len() - 200..].iter().sum::<f64>() / 200.0;
        assert!(late < 2e-3, "late FORCE error {late}");
        // Continue the sine in closed loop from the trained state.
        let mut st = esn.state();
        esn.run(&mut st, &[], Some(&y[..steps])).unwrap();
        let fc = esn.forecast(&mut st, 100).unwrap();
        let mse: f64 = fc
            .iter()
            .zip(&y[steps..steps + 100])
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / 100.0;
        assert!(mse < 0.01, "closed-loop MSE {mse}");
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let base = EsnConfig::default();
        assert!(Esn::new(base.clone(), 0, 1, ReadoutKind::PerStep).is_err());
        let mut c = base.clone();
        c.ridge = vec![-1.0];
        assert!(Esn::new(c, 1, 1, ReadoutKind::PerStep).is_err());
        let mut c = base;
        c.reservoir.feedback_scaling = 1.0;
        assert!(Esn::new(c, 1, 1, ReadoutKind::Pooled(Pooling::Last)).is_err());
    }
}
