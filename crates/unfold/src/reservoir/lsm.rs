//! Liquid state machines: a reservoir of leaky integrate-and-fire (LIF) spiking units with the
//! same linear readout as echo state networks.
//!
//! - **Encoding.** Each input dimension is scaled to `[0, 1]` by a range fitted on the training
//!   data and represented by `channels` input neurons with Gaussian tuning curves over that
//!   range (a population rate code); each fires in a simulation step with probability
//!   `max_rate * tuning`, drawn from a seeded generator.
//! - **Units.** `v <- v + dt/tau_m (-v + I + bias)`; a unit whose `v` reaches the threshold emits
//!   a binary spike, is reset and stays silent for the refractory period. The synaptic current
//!   decays with `tau_syn` and jumps by the weights of each incoming spike: a fraction of the
//!   units are excitatory (positive outgoing weights), the rest inhibitory (negative), as in
//!   Maass, Natschlager & Markram (2002). Spikes are propagated event by event (only the columns
//!   of units that fired are touched).
//! - **State.** Each unit's spike train filtered by an exponential kernel (`tau_trace`), read at
//!   the end of each input step (which lasts `substeps` simulation steps).
//!
//! The readout is ridge regression over per-step or pooled states, its ridge chosen on a
//! validation split, exactly as for ESNs ([`super::readout`]).

#![allow(clippy::needless_range_loop)]

use super::esn::Pooling;
use super::readout::{select_ridge, solve_ridge, Gram};
use super::sparse::Csr;
use crate::error::{Error, Result};
use crate::rng::Rng;
use rayon::prelude::*;

/// Settings of a liquid state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct LsmConfig {
    /// Number of LIF units.
    pub units: usize,
    /// Fraction of excitatory units.
    pub excitatory: f64,
    /// Probability of a recurrent connection between two units.
    pub connectivity: f64,
    /// Weight of an excitatory synapse (current jump, in units of the threshold).
    pub weight_exc: f64,
    /// Magnitude of an inhibitory synapse.
    pub weight_inh: f64,
    /// Encoder neurons per input dimension.
    pub channels: usize,
    /// Probability that an encoder neuron connects to a unit.
    pub input_connectivity: f64,
    /// Weight of an input synapse.
    pub input_weight: f64,
    /// Firing probability per simulation step of an encoder neuron at the centre of its tuning.
    pub max_rate: f64,
    /// Simulation steps per input step.
    pub substeps: usize,
    /// Membrane time constant, in simulation steps.
    pub tau_mem: f64,
    /// Synaptic current time constant, in simulation steps.
    pub tau_syn: f64,
    /// Time constant of the filtered spike trains read out, in simulation steps.
    pub tau_trace: f64,
    /// Firing threshold (the resting and reset potential is 0).
    pub threshold: f64,
    /// Refractory period, in simulation steps.
    pub refractory: usize,
    /// Constant input current to every unit.
    pub bias_current: f64,
    /// Seed of the weights and of the input spike trains.
    pub seed: u64,
}

impl Default for LsmConfig {
    fn default() -> Self {
        LsmConfig {
            units: 300,
            excitatory: 0.8,
            connectivity: 0.1,
            weight_exc: 0.3,
            weight_inh: 1.2,
            channels: 6,
            input_connectivity: 0.2,
            input_weight: 1.0,
            max_rate: 0.3,
            substeps: 10,
            tau_mem: 10.0,
            tau_syn: 3.0,
            tau_trace: 20.0,
            threshold: 1.0,
            refractory: 2,
            bias_current: 0.0,
            seed: 0,
        }
    }
}

impl LsmConfig {
    /// Checks every value's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.units == 0 || self.channels == 0 || self.substeps == 0 {
            return bad("an LSM needs units, input channels and substeps (all at least 1)".into());
        }
        for (name, v) in [
            ("excitatory fraction", self.excitatory),
            ("connectivity", self.connectivity),
            ("input connectivity", self.input_connectivity),
            ("max rate", self.max_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must be in [0, 1], got {v}"));
            }
        }
        for (name, v) in [
            ("tau_mem", self.tau_mem),
            ("tau_syn", self.tau_syn),
            ("tau_trace", self.tau_trace),
            ("threshold", self.threshold),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} must be positive, got {v}"));
            }
        }
        Ok(())
    }
}

/// A liquid state machine with its fitted input range and readout.
#[derive(Debug, Clone, PartialEq)]
pub struct Lsm {
    /// The settings it was built from.
    pub config: LsmConfig,
    /// Input dimensions.
    pub inputs: usize,
    /// Outputs of the readout.
    pub outputs: usize,
    /// How sequence-level features pool the states (`None`: per-step readout).
    pub pooling: Option<Pooling>,
    /// Outgoing recurrent synapses: row `j` lists the targets of unit `j` and their weights.
    pub w_out: Csr,
    /// Outgoing input synapses: row `c` lists the targets of encoder neuron `c`.
    pub w_input: Csr,
    /// Per input dimension, the `(min, max)` the encoding maps to `[0, 1]`.
    pub range: Vec<(f64, f64)>,
    /// `[O, F]` readout over `[1, states]` (or pooled states).
    pub readout: Vec<f64>,
    /// The ridge the readout was fitted with.
    pub ridge: f64,
}

/// Spike statistics of a simulation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SpikeStats {
    /// Spikes emitted by reservoir units.
    pub spikes: u64,
    /// Unit-steps simulated.
    pub unit_steps: u64,
}

impl SpikeStats {
    /// Mean spike probability per unit and simulation step.
    pub fn rate(&self) -> f64 {
        self.spikes as f64 / self.unit_steps.max(1) as f64
    }
}

fn random_synapses(
    pre: usize,
    post: usize,
    p: f64,
    weight: impl Fn(usize) -> f64,
    rng: &mut Rng,
) -> Csr {
    let mut row_ptr = vec![0usize];
    let mut indices = Vec::new();
    let mut values = Vec::new();
    for j in 0..pre {
        for i in 0..post {
            if (i != j || pre != post) && rng.uniform() < p {
                indices.push(i as u32);
                values.push(weight(j) * rng.uniform_range(0.5, 1.5));
            }
        }
        row_ptr.push(indices.len());
    }
    Csr::new(pre, post, row_ptr, indices, values)
        .expect("offsets and indices in range by construction")
}

impl Lsm {
    /// Draws the synapses for `inputs` input dimensions and `outputs` readout outputs.
    pub fn new(
        config: LsmConfig,
        inputs: usize,
        outputs: usize,
        pooling: Option<Pooling>,
    ) -> Result<Self> {
        config.validate()?;
        if inputs == 0 || outputs == 0 {
            return Err(Error::InvalidConfig(
                "an LSM needs inputs and outputs".into(),
            ));
        }
        let mut rng = Rng::new(config.seed);
        let n = config.units;
        let n_exc = (config.excitatory * n as f64).round() as usize;
        let (we, wi) = (config.weight_exc, config.weight_inh);
        let w_out = random_synapses(
            n,
            n,
            config.connectivity,
            |j| if j < n_exc { we } else { -wi },
            &mut rng,
        );
        let w_input = random_synapses(
            inputs * config.channels,
            n,
            config.input_connectivity,
            |_| config.input_weight,
            &mut rng,
        );
        let mut lsm = Lsm {
            config,
            inputs,
            outputs,
            pooling,
            w_out,
            w_input,
            range: vec![(0.0, 1.0); inputs],
            readout: Vec::new(),
            ridge: f64::NAN,
        };
        lsm.readout = vec![0.0; outputs * lsm.features()];
        Ok(lsm)
    }

    /// Width of the readout's input.
    pub fn features(&self) -> usize {
        1 + self.config.units * self.pooling.map(|p| p.width()).unwrap_or(1)
    }

    /// Sets the encoding range of each input dimension from the data (min and max).
    pub fn fit_encoding(&mut self, inputs: &[&[f64]]) -> Result<()> {
        let d = self.inputs;
        let mut range = vec![(f64::INFINITY, f64::NEG_INFINITY); d];
        for (i, x) in inputs.iter().enumerate() {
            if x.len() % d != 0 || x.iter().any(|v| !v.is_finite()) {
                return Err(Error::InvalidData(format!(
                    "input sequence {i} is not a finite [T, {d}] array"
                )));
            }
            for row in x.chunks_exact(d) {
                for k in 0..d {
                    range[k].0 = range[k].0.min(row[k]);
                    range[k].1 = range[k].1.max(row[k]);
                }
            }
        }
        for (k, r) in range.iter_mut().enumerate() {
            if r.1.partial_cmp(&r.0) != Some(std::cmp::Ordering::Greater) {
                return Err(Error::InvalidData(format!(
                    "input dimension {k} is constant (or absent): nothing to encode"
                )));
            }
        }
        self.range = range;
        Ok(())
    }

    /// Simulates one `[T, D]` sequence and returns the `[T, N]` filtered spike trains at the end
    /// of each input step, plus spike statistics. `stream` seeds the input spikes.
    pub fn states(&self, input: &[f64], stream: u64) -> (Vec<f64>, SpikeStats) {
        let c = &self.config;
        let (n, d, ch) = (c.units, self.inputs, c.channels);
        let steps = input.len() / d;
        let mut rng = Rng::new(c.seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x15a1);
        let mut v = vec![0.0; n];
        let mut cur = vec![0.0; n];
        let mut refr = vec![0usize; n];
        let mut trace = vec![0.0; n];
        let mut fired: Vec<usize> = Vec::new();
        let mut rates = vec![0.0; d * ch];
        let (dm, ds, dt) = (
            1.0 / c.tau_mem,
            (-1.0 / c.tau_syn).exp(),
            (-1.0 / c.tau_trace).exp(),
        );
        let sigma = if ch > 1 { 1.0 / (ch - 1) as f64 } else { 1.0 };
        let mut out = Vec::with_capacity(steps * n);
        let mut stats = SpikeStats::default();
        for t in 0..steps {
            for k in 0..d {
                let (lo, hi) = self.range[k];
                let r = ((input[t * d + k] - lo) / (hi - lo)).clamp(0.0, 1.0);
                for q in 0..ch {
                    let centre = if ch > 1 {
                        q as f64 / (ch - 1) as f64
                    } else {
                        0.5
                    };
                    rates[k * ch + q] =
                        c.max_rate * (-(r - centre).powi(2) / (2.0 * sigma * sigma)).exp();
                }
            }
            for _ in 0..c.substeps {
                cur.iter_mut().for_each(|x| *x *= ds);
                for &j in &fired {
                    let row = self.w_out.row_ptr()[j]..self.w_out.row_ptr()[j + 1];
                    for k in row {
                        cur[self.w_out.indices()[k] as usize] += self.w_out.values()[k];
                    }
                }
                for (e, &p) in rates.iter().enumerate() {
                    if rng.uniform() < p {
                        for k in self.w_input.row_ptr()[e]..self.w_input.row_ptr()[e + 1] {
                            cur[self.w_input.indices()[k] as usize] += self.w_input.values()[k];
                        }
                    }
                }
                fired.clear();
                for i in 0..n {
                    trace[i] *= dt;
                    if refr[i] > 0 {
                        refr[i] -= 1;
                        v[i] = 0.0;
                        continue;
                    }
                    v[i] += dm * (-v[i] + cur[i] + c.bias_current);
                    if v[i] >= c.threshold {
                        fired.push(i);
                        v[i] = 0.0;
                        refr[i] = c.refractory;
                        trace[i] += 1.0;
                    }
                }
                stats.spikes += fired.len() as u64;
                stats.unit_steps += n as u64;
            }
            out.extend_from_slice(&trace);
        }
        (out, stats)
    }

    fn feature_rows(&self, states: &[f64], steps: usize) -> Vec<f64> {
        let n = self.config.units;
        match self.pooling {
            None => states
                .chunks_exact(n)
                .flat_map(|s| std::iter::once(1.0).chain(s.iter().copied()))
                .collect(),
            Some(p) => {
                let last = &states[(steps - 1) * n..steps * n];
                let mut mean = vec![0.0; n];
                for s in states.chunks_exact(n) {
                    for i in 0..n {
                        mean[i] += s[i] / steps as f64;
                    }
                }
                let mut row = vec![1.0];
                match p {
                    Pooling::Last => row.extend_from_slice(last),
                    Pooling::Mean => row.extend_from_slice(&mean),
                    Pooling::LastAndMean => {
                        row.extend_from_slice(last);
                        row.extend_from_slice(&mean);
                    }
                }
                row
            }
        }
    }

    /// Fits the encoding range and the readout on `(input [T, D], target)` pairs: targets are
    /// `[T, O]` for a per-step readout, `[O]` for a pooled one. The ridge is chosen among
    /// `ridges` on a seeded 20 % validation split of the sequences, then refitted on all.
    /// Returns the chosen ridge and the spike statistics of the training runs.
    pub fn fit(
        &mut self,
        inputs: &[&[f64]],
        targets: &[&[f64]],
        ridges: &[f64],
    ) -> Result<(f64, SpikeStats)> {
        if inputs.len() != targets.len() || inputs.len() < 2 {
            return Err(Error::InvalidCall(
                "an LSM fit needs at least two (input, target) sequences, as many of each".into(),
            ));
        }
        self.fit_encoding(inputs)?;
        let (f, o, d) = (self.features(), self.outputs, self.inputs);
        for (i, (x, y)) in inputs.iter().zip(targets).enumerate() {
            let t = x.len() / d;
            let want = if self.pooling.is_some() { o } else { t * o };
            if t == 0 || y.len() != want || y.iter().any(|v| !v.is_finite()) {
                return Err(Error::InvalidData(format!(
                    "sequence {i}: {t} steps and {} finite target values (expected {want})",
                    y.len()
                )));
            }
        }
        let mut idx: Vec<usize> = (0..inputs.len()).collect();
        Rng::new(self.config.seed ^ 0x5b11_7a11).shuffle(&mut idx);
        let k = ((inputs.len() as f64 * 0.2).round() as usize).clamp(1, inputs.len() - 1);
        let mut valid = vec![false; inputs.len()];
        for &i in &idx[..k] {
            valid[i] = true;
        }
        // Feature rows per sequence in parallel; then one Gram product per split.
        let parts: Vec<(Vec<f64>, SpikeStats)> = (0..inputs.len())
            .into_par_iter()
            .map(|i| {
                let steps = inputs[i].len() / d;
                let (states, stats) = self.states(inputs[i], i as u64);
                (self.feature_rows(&states, steps), stats)
            })
            .collect();
        let (mut tx, mut ty, mut vx, mut vy) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut stats = SpikeStats::default();
        for (i, (rows, s)) in parts.iter().enumerate() {
            let (x, y) = if valid[i] {
                (&mut vx, &mut vy)
            } else {
                (&mut tx, &mut ty)
            };
            x.extend_from_slice(rows);
            y.extend_from_slice(targets[i]);
            stats.spikes += s.spikes;
            stats.unit_steps += s.unit_steps;
        }
        let mut train = Gram::new(f, o);
        train.add_rows(&tx, &ty)?;
        let mut held = Gram::new(f, o);
        held.add_rows(&vx, &vy)?;
        let ridge = if ridges.len() > 1 {
            select_ridge(&train, &held, ridges)?.ridge
        } else {
            *ridges
                .first()
                .ok_or_else(|| Error::InvalidConfig("no ridge given".into()))?
        };
        train.merge(&held);
        self.readout = solve_ridge(&train, ridge)?;
        self.ridge = ridge;
        Ok((ridge, stats))
    }

    /// Readout outputs of each sequence: `[T, O]` per step, or `[O]` pooled. Sequence `i` uses
    /// input spike stream `offset + i`.
    pub fn predict(&self, inputs: &[&[f64]], offset: u64) -> Result<Vec<Vec<f64>>> {
        let (f, o, d) = (self.features(), self.outputs, self.inputs);
        for (i, x) in inputs.iter().enumerate() {
            if x.is_empty() || x.len() % d != 0 || x.iter().any(|v| !v.is_finite()) {
                return Err(Error::InvalidData(format!(
                    "input sequence {i} is not a finite non-empty [T, {d}] array"
                )));
            }
        }
        Ok((0..inputs.len())
            .into_par_iter()
            .map(|i| {
                let steps = inputs[i].len() / d;
                let (states, _) = self.states(inputs[i], offset + i as u64);
                let rows = self.feature_rows(&states, steps);
                rows.chunks_exact(f)
                    .flat_map(|row| {
                        (0..o).map(move |k| {
                            self.readout[k * f..(k + 1) * f]
                                .iter()
                                .zip(row)
                                .map(|(a, b)| a * b)
                                .sum::<f64>()
                        })
                    })
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_spike_with_refractory_gaps_and_traces_follow() {
        let lsm = Lsm::new(
            LsmConfig {
                units: 100,
                ..Default::default()
            },
            1,
            1,
            None,
        )
        .unwrap();
        let input: Vec<f64> = (0..40)
            .map(|t| (t as f64 * 0.3).sin() * 0.5 + 0.5)
            .collect();
        let (states, stats) = lsm.states(&input, 0);
        assert_eq!(states.len(), 40 * 100);
        let rate = stats.rate();
        assert!(rate > 0.005 && rate < 1.0 / 3.0, "rate {rate}");
        // A unit can fire at most once per refractory period plus one step.
        let max_trace_gain = 1.0 / (1.0 - (-3.0f64 / 20.0).exp());
        assert!(states
            .iter()
            .all(|&s| (0.0..=max_trace_gain + 1e-9).contains(&s)));
        // Same stream, same spikes; another stream, other spikes.
        assert_eq!(lsm.states(&input, 0).0, states);
        assert_ne!(lsm.states(&input, 1).0, states);
    }

    #[test]
    fn silent_input_gives_no_spikes_without_bias() {
        let mut cfg = LsmConfig {
            units: 50,
            ..Default::default()
        };
        cfg.max_rate = 0.0;
        let lsm = Lsm::new(cfg, 2, 1, None).unwrap();
        let (states, stats) = lsm.states(&[0.3; 20], 0);
        assert_eq!(stats.spikes, 0);
        assert!(states.iter().all(|&s| s == 0.0));
    }
}
