//! Generating real-valued sequences and deciding when to stop (the chapter's three ways for
//! sequences that are not symbols, each a trainable part of the model):
//!
//! - [`StopRule::StopBit`]: an extra Bernoulli output `P(stop after step t | h(t))`, trained on
//!   a 1 at each sequence's last step and 0 before;
//! - [`StopRule::LengthHead`]: an extra output that predicts the length up front, a softmax
//!   over `1..=max_len` (or a Poisson with a learned rate); generation draws `T` and runs
//!   exactly `T` steps;
//! - [`StopRule::MaxLength`]: only a hard maximum.
//!
//! (The third way, an `<end>` symbol, belongs to symbol models: see [`crate::models::Generator`].)
//! The model reads its previous output, `h(t) = f(h(t-1), y(t-1))` with `y(0) = 0`, and
//! predicts `y(t)` with a unit-variance Gaussian. Batches carry targets of width `D + 1`: the
//! values, then the stop bit (1 at the last step). All gradients are exact (finite-difference
//! tests).

use crate::data::{SeqBatch, Values};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::linear::Linear;
use crate::layers::output::{LossStats, OutputKind, OutputLayer, Target};
use crate::layers::params::{ParamSpec, Parameters};
use crate::layers::{
    CellKind, Recurrent, RecurrentConfig, RecurrentState, StepWorkspace, TrainCache,
};
use crate::models::{compose_parameters, Model, TrainContext};
use crate::rng::Rng;

/// How a generated sequence ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopRule {
    /// A Bernoulli "stop after this step" output.
    StopBit,
    /// The length predicted up front: categorical over `1..=max_len`, or Poisson.
    LengthHead {
        /// Largest length (the categorical's size; the Poisson is truncated here).
        max_len: usize,
        /// Poisson instead of categorical.
        poisson: bool,
    },
    /// Only the hard maximum length of generation.
    MaxLength,
}

/// The length distribution's parameters: logits over lengths, or one log-rate.
#[derive(Debug, Clone, PartialEq)]
pub struct LengthHead<T> {
    /// `[max_len]` logits, or `[1]` Poisson log-rate.
    pub logits: Vec<T>,
}

impl<T: Float> Parameters<T> for LengthHead<T> {
    fn param_specs(&self) -> Vec<ParamSpec> {
        vec![ParamSpec {
            name: "logits".into(),
            shape: vec![self.logits.len()],
        }]
    }
    fn param_slices(&self) -> Vec<&[T]> {
        vec![&self.logits]
    }
    fn param_slices_mut(&mut self) -> Vec<&mut [T]> {
        vec![&mut self.logits]
    }
}

/// An autoregressive generator of real-valued sequences with a stopping rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RealGenerator<T> {
    rule: StopRule,
    dim: usize,
    /// The recurrent stack, reading the previous output.
    pub rnn: Recurrent<T>,
    /// Mean of the next value.
    pub head: Linear<T>,
    /// Stop logit (with [`StopRule::StopBit`]).
    pub stop: Option<Linear<T>>,
    /// Length distribution (with [`StopRule::LengthHead`]).
    pub length: Option<LengthHead<T>>,
}

compose_parameters!(RealGenerator {
    rnn: "rnn",
    head: "head",
    stop: "stop",
    length: "length"
});

/// Buffers of a [`RealGenerator`].
#[derive(Debug, Default)]
pub struct RealGeneratorWorkspace<T> {
    cache: TrainCache<T>,
    mean: Vec<T>,
    dmean: Vec<T>,
    zs: Vec<T>,
    dzs: Vec<T>,
    dh: Vec<T>,
    y: Vec<T>,
    bits: Vec<T>,
}

fn ln_factorial(k: usize) -> f64 {
    (1..=k).map(|i| (i as f64).ln()).sum()
}

impl<T: Float> RealGenerator<T> {
    /// A generator of `dim` values per step with the given cell, width and stopping rule.
    pub fn new(
        dim: usize,
        cell: CellKind,
        hidden: usize,
        layers: usize,
        rule: StopRule,
        seed: u64,
    ) -> Result<Self> {
        if dim == 0 {
            return Err(Error::InvalidConfig("at least one value per step".into()));
        }
        let length = match rule {
            StopRule::LengthHead { max_len: 0, .. } => {
                return Err(Error::InvalidConfig("max_len must be at least 1".into()))
            }
            StopRule::LengthHead { max_len, poisson } => Some(LengthHead {
                logits: vec![T::ZERO; if poisson { 1 } else { max_len }],
            }),
            _ => None,
        };
        Ok(RealGenerator {
            rule,
            dim,
            rnn: Recurrent::new(RecurrentConfig::new(cell, dim, hidden).layers(layers), seed)?,
            head: Linear::new(hidden, dim, true, seed.wrapping_add(1))?,
            stop: if rule == StopRule::StopBit {
                Some(Linear::new(hidden, 1, true, seed.wrapping_add(2))?)
            } else {
                None
            },
            length,
        })
    }

    /// The stopping rule.
    pub fn rule(&self) -> StopRule {
        self.rule
    }

    /// Negative log-likelihood of a length (and its gradient on the head's parameters).
    fn length_nll(&self, len: usize, scale: T, grad: Option<&mut LengthHead<T>>) -> f64 {
        let Some(lh) = &self.length else { return 0.0 };
        match self.rule {
            StopRule::LengthHead {
                poisson: false,
                max_len,
            } => {
                let k = len.clamp(1, max_len) - 1;
                let m = lh
                    .logits
                    .iter()
                    .fold(lh.logits[0], |m, &x| if x > m { x } else { m });
                let sum: T = lh.logits.iter().fold(T::ZERO, |s, &x| s + (x - m).exp());
                if let Some(g) = grad {
                    for (gv, &x) in g.logits.iter_mut().zip(&lh.logits) {
                        *gv += scale * (x - m).exp() / sum;
                    }
                    g.logits[k] -= scale;
                }
                (m + sum.ln() - lh.logits[k]).to_f64()
            }
            _ => {
                // Poisson over len - 1 >= 0: -log P = rate - k log rate + log k!.
                let (lr, k) = (lh.logits[0], (len.max(1) - 1) as f64);
                let rate = lr.exp();
                if let Some(g) = grad {
                    g.logits[0] += scale * (rate - T::from_f64(k));
                }
                rate.to_f64() - k * lr.to_f64() + ln_factorial(k as usize)
            }
        }
    }

    /// Draws a length from the length head.
    fn sample_length(&self, rng: &mut Rng) -> usize {
        let Some(lh) = &self.length else { return 0 };
        match self.rule {
            StopRule::LengthHead { poisson: false, .. } => {
                1 + crate::layers::output::sample_softmax(&lh.logits, rng)
            }
            StopRule::LengthHead { max_len, .. } => {
                // Knuth's method: count uniform draws until their product falls below e^-rate.
                let limit = (-lh.logits[0].to_f64().exp()).exp();
                let (mut k, mut p) = (0usize, rng.uniform());
                while p > limit && k < max_len {
                    k += 1;
                    p *= rng.uniform();
                }
                (k + 1).min(max_len)
            }
            _ => 0,
        }
    }

    /// Generates one sequence (`[T, D]` values, means of the Gaussian or samples with `noise`)
    /// and returns it with its length, stopping by the model's rule or at `max_len`.
    pub fn generate(
        &self,
        max_len: usize,
        sample_values: bool,
        rng: &mut Rng,
    ) -> Result<(Vec<T>, usize)> {
        let d = self.dim;
        let mut state = RecurrentState::zeros(self.rnn.config(), 1);
        let mut ws = StepWorkspace::default();
        let mut y = vec![T::ZERO; d];
        let mut mean = vec![T::ZERO; d];
        let mut z = vec![T::ZERO; 1];
        let mut out = Vec::new();
        let fixed = self.sample_length(rng);
        let limit = if fixed > 0 {
            fixed.min(max_len)
        } else {
            max_len
        };
        for t in 0..limit {
            let h = self.rnn.step(&y, &mut state, &mut ws)?;
            self.head.forward(h, 1, &mut mean)?;
            for j in 0..d {
                y[j] = if sample_values {
                    T::from_f64(mean[j].to_f64() + rng.normal())
                } else {
                    mean[j]
                };
            }
            out.extend_from_slice(&y);
            if let Some(stop) = &self.stop {
                stop.forward(h, 1, &mut z)?;
                if rng.uniform() < z[0].sigmoid().to_f64() {
                    return Ok((out, t + 1));
                }
            }
        }
        Ok((out, limit))
    }
}

impl<T: Float> Model<T> for RealGenerator<T> {
    type Batch = SeqBatch<T>;
    type EvalSet = crate::data::Dataset<T>;
    type Workspace = RealGeneratorWorkspace<T>;

    fn loss_and_grad(
        &self,
        batch: &SeqBatch<T>,
        ws: &mut Self::Workspace,
        grads: &mut Self,
        _ctx: &mut TrainContext<'_>,
    ) -> Result<LossStats> {
        let d = self.dim;
        let (steps, b) = (batch.steps, batch.batch);
        let rows = steps * b;
        let (Values::Reals { width: iw, data: x }, Values::Reals { width: tw, data: y }) =
            (&batch.input, &batch.target)
        else {
            return Err(Error::InvalidCall(
                "a real generator needs real inputs and targets".into(),
            ));
        };
        if *iw != d || *tw != d + 1 {
            return Err(Error::InvalidCall(format!(
                "a real generator of {d} values needs {d} inputs and {} targets (values, stop bit)",
                d + 1
            )));
        }
        let RealGeneratorWorkspace {
            cache,
            mean,
            dmean,
            zs,
            dzs,
            dh,
            y: yv,
            bits,
        } = ws;
        self.rnn
            .forward_train(x, steps, b, Some(&batch.lengths), None, cache)?;
        let hsz = self.rnn.config().hidden_size;
        let scale = 1.0 / batch.loss_norm.unwrap_or(batch.tokens().max(1) as f64);
        mean.resize(rows * d, T::ZERO);
        dmean.resize(rows * d, T::ZERO);
        self.head.forward(cache.output(), rows, mean)?;
        yv.clear();
        bits.clear();
        for r in 0..rows {
            yv.extend_from_slice(&y[r * (d + 1)..r * (d + 1) + d]);
            bits.push(y[r * (d + 1) + d]);
        }
        let gauss = OutputLayer::<T>::new(OutputKind::Gaussian {
            dim: d,
            learn_variance: false,
        })?;
        let mut scratch = gauss.zeros_like();
        let mut st = gauss.nll_grad(
            mean,
            rows,
            Target::Reals(yv),
            Some(&batch.mask),
            scale,
            (&mut dmean[..], &mut scratch),
        )?;
        dh.resize(rows * hsz, T::ZERO);
        self.head.backward(
            cache.output(),
            dmean,
            rows,
            &mut grads.head,
            Some(dh),
            false,
        )?;
        if let (Some(stop), Some(gs)) = (&self.stop, grads.stop.as_mut()) {
            let bern = OutputLayer::<T>::new(OutputKind::Bernoulli { dim: 1 })?;
            let mut sc = bern.zeros_like();
            zs.resize(rows, T::ZERO);
            dzs.resize(rows, T::ZERO);
            stop.forward(cache.output(), rows, zs)?;
            let sb = bern.nll_grad(
                zs,
                rows,
                Target::Reals(bits),
                Some(&batch.mask),
                scale,
                (&mut dzs[..], &mut sc),
            )?;
            st.nll += sb.nll;
            st.correct += sb.correct;
            st.judged += sb.judged;
            stop.backward(cache.output(), dzs, rows, gs, Some(dh), true)?;
        }
        if self.length.is_some() {
            // One length per sequence, on the same per-step scale as the other terms.
            let sc = T::from_f64(scale);
            for &len in &batch.lengths {
                st.nll += self.length_nll(len, sc, grads.length.as_mut());
            }
        }
        self.rnn
            .backward(cache, Some(dh), None, &mut grads.rnn, false)?;
        Ok(st)
    }

    fn evaluate(&self, batch: &SeqBatch<T>, ws: &mut Self::Workspace) -> Result<LossStats> {
        let mut g = self.zeros_like();
        let mut rng = Rng::new(0);
        let mut ctx = TrainContext {
            rng: &mut rng,
            feed_prob: 0.0,
            step: 0,
        };
        self.loss_and_grad(batch, ws, &mut g, &mut ctx)
    }

    fn describe(&self) -> Vec<(String, String)> {
        vec![
            ("model".into(), "real_generator".into()),
            ("stop_rule".into(), format!("{:?}", self.rule)),
        ]
    }
}

/// Training sequences for a [`RealGenerator`] from value sequences (`[len, dim]` each): inputs
/// are the values shifted by one step (zeros first), targets the values plus the stop bit.
pub fn generator_sequences<T: Float>(
    series: &[Vec<T>],
    dim: usize,
) -> Vec<crate::data::Sequence<T>> {
    series
        .iter()
        .map(|v| {
            let len = v.len() / dim;
            let mut x = vec![T::ZERO; dim];
            x.extend_from_slice(&v[..(len - 1) * dim]);
            let mut y = Vec::with_capacity(len * (dim + 1));
            for t in 0..len {
                y.extend_from_slice(&v[t * dim..(t + 1) * dim]);
                y.push(if t + 1 == len { T::ONE } else { T::ZERO });
            }
            crate::data::Sequence {
                len,
                input: Values::Reals {
                    width: dim,
                    data: x,
                },
                target: Values::Reals {
                    width: dim + 1,
                    data: y,
                },
            }
        })
        .collect()
}
