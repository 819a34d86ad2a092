//! Pattern II: output-to-hidden recurrence. There is no hidden-to-hidden matrix; the previous
//! output feeds the hidden layer:
//! `h(t) = act(b + U x(t) + W y'(t-1))`, `o(t) = c + V h(t)`, `P(y(t) | ...) = dist(o(t))`,
//! where `y'(t-1)` is the true previous target under teacher forcing and the model's own
//! previous prediction when it runs free (a one-hot vector for symbols). `U` and `W` are the two
//! column blocks of the `hidden` layer's weight `[H, I + F]`.
//!
//! Under pure teacher forcing nothing depends on an earlier step's computation, so training is
//! one batched pass over all `T * B` rows (one GEMM per layer, no loop over time). The remedies
//! for exposure bias feed the model its own predictions during training and then run step by
//! step:
//! - scheduled sampling ([`FeedbackStyle::PerStep`]): each step independently, with the
//!   probability the trainer's schedule gives;
//! - free-running segments ([`FeedbackStyle::Segments`]): whole segments of consecutive steps
//!   run free.
//!
//! With `backprop_feedback` and a Gaussian output (whose fed-back mean is differentiable), the
//! gradient also flows back through every self-fed output: exact BPTT through the feedback
//! loop. Otherwise fed-back predictions are treated as given inputs, as in Bengio et al. (2015).

use crate::data::{SeqBatch, Values};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::gemm::gemm_nn;
use crate::layers::linear::Linear;
use crate::layers::output::{LossStats, OutputKind, OutputLayer};
use crate::models::input::{InputLayer, InputSpec};
use crate::models::{compose_parameters, scored_rows, target_view, Model, TrainContext};
use crate::rng::Rng;

/// How self-fed steps are chosen during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedbackStyle {
    /// Each step independently (scheduled sampling).
    PerStep,
    /// Segments of `len` consecutive steps, each segment wholly self-fed or wholly
    /// teacher-forced.
    Segments {
        /// Steps per segment.
        len: usize,
    },
}

/// Architecture and feedback settings of an [`OutputFeedback`] model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeedbackConfig {
    /// External inputs per step, symbols or reals (`None`: the model is driven by its own
    /// outputs alone).
    pub input: Option<InputSpec>,
    /// Hidden units.
    pub hidden: usize,
    /// Hidden activation: tanh (`false`) or ReLU (`true`).
    pub relu: bool,
    /// The output distribution.
    pub output: OutputKind,
    /// How self-fed steps are chosen in training.
    pub style: FeedbackStyle,
    /// Back-propagate through self-fed outputs (Gaussian outputs only).
    pub backprop_feedback: bool,
    /// Steps whose feedback is always the truth when the model runs free: the steps that
    /// prime it (at least 1 for a model without inputs, which must see where the signal is).
    /// Free-running evaluation scores only the steps from here on.
    pub prime_steps: usize,
}

/// Pattern II model.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputFeedback<T> {
    config: FeedbackConfig,
    /// Embedding or projection of the external inputs (width `I`).
    pub input: InputLayer<T>,
    /// `[H, I + F]`: `U` (first `I` columns) and `W` (last `F`), and `b`.
    pub hidden: Linear<T>,
    /// `o = c + V h`.
    pub head: Linear<T>,
    /// The output distribution.
    pub output: OutputLayer<T>,
}

compose_parameters!(OutputFeedback {
    input: "input",
    hidden: "hidden",
    head: "head",
    output: "output"
});

/// Buffers of an [`OutputFeedback`] model.
#[derive(Debug, Default)]
pub struct FeedbackWorkspace<T> {
    x: Vec<T>,
    dx: Vec<T>,
    z: Vec<T>,
    act: Vec<T>,
    logits: Vec<T>,
    dlogits: Vec<T>,
    dh: Vec<T>,
    dfb: Vec<T>,
    own: Vec<bool>,
    seg: Vec<bool>,
    pred: Vec<T>,
    mask: Vec<bool>,
}

impl<T: Float> FeedbackWorkspace<T> {
    /// `[T, B, O]` output rows of the last call.
    pub fn logits(&self) -> &[T] {
        &self.logits
    }
}

/// Who feeds the model at each step.
enum Feeding<'r> {
    /// Always the truth.
    Teacher,
    /// Training with self-feeding probability `p`.
    Mixed { p: f64, rng: &'r mut Rng },
    /// Free running after the priming steps (greedy predictions).
    Free,
}

impl<T: Float> OutputFeedback<T> {
    /// A model initialised as PyTorch initialises its linear layers, from `seed`.
    pub fn new(config: FeedbackConfig, seed: u64) -> Result<Self> {
        if config.hidden == 0 {
            return Err(Error::InvalidConfig(
                "hidden size must be at least 1".into(),
            ));
        }
        if let FeedbackStyle::Segments { len: 0 } = config.style {
            return Err(Error::InvalidConfig(
                "segment length must be at least 1".into(),
            ));
        }
        let f = config.output.width();
        let input = match config.input {
            Some(spec) => InputLayer::new(spec, seed.wrapping_add(2))?,
            None => InputLayer::Identity(0),
        };
        Ok(OutputFeedback {
            config,
            hidden: Linear::new(input.out_width() + f, config.hidden, true, seed)?,
            input,
            head: Linear::new(config.hidden, f, true, seed.wrapping_add(1))?,
            output: OutputLayer::new(config.output)?,
        })
    }

    /// The settings.
    pub fn config(&self) -> &FeedbackConfig {
        &self.config
    }

    /// Sets how training feeds the model (the architecture stays).
    pub fn set_feedback(&mut self, style: FeedbackStyle, backprop_feedback: bool) {
        self.config.style = style;
        self.config.backprop_feedback = backprop_feedback;
    }

    fn fb_width(&self) -> usize {
        self.config.output.width()
    }

    /// Widths: external inputs `I`, fed-back outputs `F`, hidden `H`, output rows `O`.
    fn dims(&self) -> (usize, usize, usize, usize) {
        (
            self.input.out_width(),
            self.fb_width(),
            self.config.hidden,
            self.head.out_features(),
        )
    }

    /// Writes the true previous target of row (t, j) into the feedback columns of `zrow`.
    fn truth_into(&self, batch: &SeqBatch<T>, t: usize, j: usize, zrow: &mut [T]) {
        let fb = &mut zrow[self.input.out_width()..];
        fb.fill(T::ZERO);
        if t == 0 {
            return;
        }
        let r = (t - 1) * batch.batch + j;
        match &batch.target {
            Values::Symbols(s) => fb[s[r]] = T::ONE,
            Values::Reals { width, data } => fb.copy_from_slice(&data[r * width..(r + 1) * width]),
        }
    }

    fn activate(&self, a: &mut [T]) {
        if self.config.relu {
            a.iter_mut().for_each(|v| *v = v.relu());
        } else {
            a.iter_mut().for_each(|v| *v = v.tanh());
        }
    }

    /// Forward over the batch with the given feeding; fills `z`, `act`, `logits` and `own`.
    fn run(
        &self,
        batch: &SeqBatch<T>,
        ws: &mut FeedbackWorkspace<T>,
        mut feeding: Feeding<'_>,
    ) -> Result<()> {
        if !batch.per_step {
            return Err(Error::InvalidCall(
                "pattern II needs one target per step".into(),
            ));
        }
        let (steps, b) = (batch.steps, batch.batch);
        let rows = steps * b;
        let (iw, f, h, o) = self.dims();
        let zw = iw + f;
        let no_input = matches!(&batch.input, Values::Reals { width: 0, .. });
        let x: &[T] = if self.config.input.is_none() {
            if !no_input {
                return Err(Error::InvalidCall(
                    "this pattern II model has no external inputs, but the batch has some".into(),
                ));
            }
            &[]
        } else {
            self.input.forward(&batch.input, rows, &mut ws.x)?
        };
        match (self.config.output, &batch.target) {
            (OutputKind::Categorical { .. }, Values::Symbols(_)) => {}
            (OutputKind::Categorical { .. }, _) => {
                return Err(Error::InvalidCall(
                    "categorical output needs symbol targets".into(),
                ))
            }
            (_, Values::Reals { width, .. }) if *width == f => {}
            _ => {
                return Err(Error::InvalidCall(format!(
                    "real-valued output needs {f} target values per step"
                )))
            }
        }
        ws.z.resize(rows * zw, T::ZERO);
        ws.act.resize(rows * h, T::ZERO);
        ws.logits.resize(rows * o, T::ZERO);
        ws.own.clear();
        ws.own.resize(rows, false);
        for r in 0..rows {
            ws.z[r * zw..r * zw + iw].copy_from_slice(&x[r * iw..(r + 1) * iw]);
        }
        if let Feeding::Teacher = feeding {
            for t in 0..steps {
                for j in 0..b {
                    let r = t * b + j;
                    self.truth_into(batch, t, j, &mut ws.z[r * zw..(r + 1) * zw]);
                }
            }
            self.hidden.forward(&ws.z, rows, &mut ws.act)?;
            self.activate(&mut ws.act);
            return self.head.forward(&ws.act, rows, &mut ws.logits);
        }
        ws.seg.clear();
        ws.seg.resize(b, false);
        ws.pred.resize(f, T::ZERO);
        let prime = self.config.prime_steps;
        let mut scratch_rng = Rng::new(0);
        for t in 0..steps {
            if let (Feeding::Mixed { p, rng }, FeedbackStyle::Segments { len }) =
                (&mut feeding, self.config.style)
            {
                if t % len == 0 {
                    for s in ws.seg.iter_mut() {
                        *s = rng.uniform() < *p;
                    }
                }
            }
            for j in 0..b {
                let r = t * b + j;
                let own = t >= 1
                    && t > prime
                    && match &mut feeding {
                        Feeding::Teacher => false,
                        Feeding::Free => true,
                        Feeding::Mixed { p, rng } => match self.config.style {
                            FeedbackStyle::PerStep => rng.uniform() < *p,
                            FeedbackStyle::Segments { .. } => ws.seg[j],
                        },
                    };
                ws.own[r] = own;
                let zrow = &mut ws.z[r * zw..(r + 1) * zw];
                if !own {
                    self.truth_into(batch, t, j, zrow);
                    continue;
                }
                let prev = &ws.logits[(r - b) * o..(r - b + 1) * o];
                let (greedy, rng) = match &mut feeding {
                    Feeding::Mixed { rng, .. } => (false, &mut **rng),
                    _ => (true, &mut scratch_rng),
                };
                // Gaussian feedback is the mean in every mode (a differentiable path); symbols
                // and bits are sampled in training, as in scheduled sampling.
                let greedy = greedy || matches!(self.config.output, OutputKind::Gaussian { .. });
                let sym = self.output.predict(prev, greedy, rng, &mut ws.pred);
                let fb = &mut zrow[iw..];
                if self.config.output.symbolic() {
                    fb.fill(T::ZERO);
                    fb[sym] = T::ONE;
                } else {
                    fb.copy_from_slice(&ws.pred);
                }
            }
            let rs = t * b..(t + 1) * b;
            self.hidden.forward(
                &ws.z[rs.start * zw..rs.end * zw],
                b,
                &mut ws.act[rs.start * h..rs.end * h],
            )?;
            self.activate(&mut ws.act[rs.start * h..rs.end * h]);
            self.head.forward(
                &ws.act[rs.start * h..rs.end * h],
                b,
                &mut ws.logits[rs.start * o..rs.end * o],
            )?;
        }
        Ok(())
    }

    /// Runs free after the priming steps and scores the remaining steps: the run-time error.
    pub fn free_run(
        &self,
        batch: &SeqBatch<T>,
        ws: &mut FeedbackWorkspace<T>,
    ) -> Result<LossStats> {
        self.run(batch, ws, Feeding::Free)?;
        self.score(batch, ws, self.config.prime_steps)
    }

    /// Scores the steps from `prime_steps` on under teacher forcing (one-step-ahead
    /// prediction from the true previous output), comparable with [`OutputFeedback::free_run`].
    pub fn teacher_forced(
        &self,
        batch: &SeqBatch<T>,
        ws: &mut FeedbackWorkspace<T>,
    ) -> Result<LossStats> {
        self.run(batch, ws, Feeding::Teacher)?;
        self.score(batch, ws, self.config.prime_steps)
    }

    fn score(
        &self,
        batch: &SeqBatch<T>,
        ws: &mut FeedbackWorkspace<T>,
        from: usize,
    ) -> Result<LossStats> {
        let rows = batch.steps * batch.batch;
        ws.mask.clear();
        ws.mask.extend_from_slice(&batch.mask);
        ws.mask[..(from * batch.batch).min(rows)].fill(false);
        self.output
            .nll(&ws.logits, rows, target_view(batch), Some(&ws.mask), None)
    }

    /// Generates `steps` outputs for one sequence, running free after `P` priming values
    /// (`prime`: `[P, F]`, one-hot rows for symbols) that are fed back as the truth. `x` holds
    /// the external inputs of all `P + steps` steps (`None` for a model without inputs).
    /// Returns the generated values (`[steps, F]`; one-hot rows for symbols): greedy (the mean
    /// or the most likely symbol) or sampled.
    pub fn generate(
        &self,
        prime: &[T],
        x: Option<&Values<T>>,
        steps: usize,
        greedy: bool,
        rng: &mut Rng,
    ) -> Result<Vec<T>> {
        let (iw, f, h, o) = self.dims();
        if !prime.len().is_multiple_of(f) {
            return Err(Error::Shape {
                what: "priming values".into(),
                expected: format!("a multiple of {f}"),
                got: prime.len().to_string(),
            });
        }
        let p = prime.len() / f;
        let mut xbuf = Vec::new();
        let xs: &[T] = match (x, self.config.input.is_some()) {
            (Some(v), true) => self.input.forward(v, p + steps, &mut xbuf)?,
            (None, false) => &[],
            _ => {
                return Err(Error::InvalidCall(
                    "generation inputs must be given exactly when the model has inputs".into(),
                ))
            }
        };
        let mut z = vec![T::ZERO; iw + f];
        let mut a = vec![T::ZERO; h];
        let mut lo = vec![T::ZERO; o];
        let mut y = vec![T::ZERO; f];
        let mut out = Vec::with_capacity(steps * f);
        for t in 0..p + steps {
            z[..iw].copy_from_slice(&xs[t * iw..(t + 1) * iw]);
            if t > 0 && t <= p {
                z[iw..].copy_from_slice(&prime[(t - 1) * f..t * f]);
            } else if t > p {
                z[iw..].copy_from_slice(&y);
            }
            self.hidden.forward(&z, 1, &mut a)?;
            self.activate(&mut a);
            self.head.forward(&a, 1, &mut lo)?;
            if t >= p {
                let sym = self.output.predict(&lo, greedy, rng, &mut y);
                if self.config.output.symbolic() {
                    y.fill(T::ZERO);
                    y[sym] = T::ONE;
                }
                out.extend_from_slice(&y);
            }
        }
        Ok(out)
    }
}

impl<T: Float> Model<T> for OutputFeedback<T> {
    type Batch = SeqBatch<T>;
    type EvalSet = crate::data::Dataset<T>;
    type Workspace = FeedbackWorkspace<T>;

    fn loss_and_grad(
        &self,
        batch: &SeqBatch<T>,
        ws: &mut Self::Workspace,
        grads: &mut Self,
        ctx: &mut TrainContext<'_>,
    ) -> Result<LossStats> {
        let feeding = if ctx.feed_prob > 0.0 {
            Feeding::Mixed {
                p: ctx.feed_prob,
                rng: ctx.rng,
            }
        } else {
            Feeding::Teacher
        };
        self.run(batch, ws, feeding)?;
        let (steps, b) = (batch.steps, batch.batch);
        let rows = steps * b;
        let (iw, f, h, o) = self.dims();
        let zw = iw + f;
        let target = target_view(batch);
        let n = scored_rows(self.output.kind(), &target, Some(&batch.mask), rows);
        ws.dlogits.resize(rows * o, T::ZERO);
        let stats = self.output.nll_grad(
            &ws.logits,
            rows,
            target,
            Some(&batch.mask),
            1.0 / batch.loss_norm.unwrap_or(n.max(1) as f64),
            (&mut ws.dlogits[..], &mut grads.output),
        )?;
        ws.dh.resize(rows * h, T::ZERO);
        let through = self.config.backprop_feedback
            && matches!(self.config.output, OutputKind::Gaussian { .. })
            && ws.own.iter().any(|&x| x);
        if through {
            // Reverse sweep: the gradient of a self-fed input at t flows into o(t-1).
            ws.dfb.resize(b * f, T::ZERO);
            for t in (0..steps).rev() {
                let (rs, re) = (t * b, (t + 1) * b);
                gemm_nn(
                    b,
                    h,
                    o,
                    &ws.dlogits[rs * o..re * o],
                    o,
                    &self.head.weight,
                    h,
                    &mut ws.dh[rs * h..re * h],
                    h,
                    false,
                );
                self.act_backward(rs * h..re * h, ws);
                if t == 0 || !ws.own[rs..re].iter().any(|&x| x) {
                    continue;
                }
                gemm_nn(
                    b,
                    f,
                    h,
                    &ws.dh[rs * h..re * h],
                    h,
                    &self.hidden.weight[iw..],
                    zw,
                    &mut ws.dfb,
                    f,
                    false,
                );
                for j in 0..b {
                    if ws.own[rs + j] {
                        let prev = (rs - b + j) * o;
                        for (d, &g) in ws.dlogits[prev..prev + o]
                            .iter_mut()
                            .zip(&ws.dfb[j * f..(j + 1) * f])
                        {
                            *d += g;
                        }
                    }
                }
            }
            self.head
                .backward(&ws.act, &ws.dlogits, rows, &mut grads.head, None, false)?;
        } else {
            self.head.backward(
                &ws.act,
                &ws.dlogits,
                rows,
                &mut grads.head,
                Some(&mut ws.dh),
                false,
            )?;
            self.act_backward(0..rows * h, ws);
        }
        self.hidden
            .backward(&ws.z, &ws.dh, rows, &mut grads.hidden, None, false)?;
        if self.input.trainable() {
            // dX = dA U: the first `I` columns of the hidden layer's weight.
            ws.dx.resize(rows * iw, T::ZERO);
            gemm_nn(
                rows,
                iw,
                h,
                &ws.dh,
                h,
                &self.hidden.weight,
                zw,
                &mut ws.dx,
                iw,
                false,
            );
            self.input
                .backward(&batch.input, rows, &ws.dx, &mut grads.input)?;
        }
        Ok(stats)
    }

    fn evaluate(&self, batch: &SeqBatch<T>, ws: &mut Self::Workspace) -> Result<LossStats> {
        self.free_run(batch, ws)
    }

    fn describe(&self) -> Vec<(String, String)> {
        vec![
            ("model".into(), "output_feedback".into()),
            ("input".into(), format!("{:?}", self.config.input)),
            ("hidden".into(), self.config.hidden.to_string()),
            (
                "activation".into(),
                if self.config.relu { "relu" } else { "tanh" }.into(),
            ),
            ("output".into(), format!("{:?}", self.config.output)),
            ("prime_steps".into(), self.config.prime_steps.to_string()),
        ]
    }
}

impl<T: Float> OutputFeedback<T> {
    /// `dh *= act'(a)` on a range of `[rows, H]`, in place (from the stored activations).
    fn act_backward(&self, range: std::ops::Range<usize>, ws: &mut FeedbackWorkspace<T>) {
        let (dh, act) = (&mut ws.dh[range.clone()], &ws.act[range]);
        if self.config.relu {
            for (d, &a) in dh.iter_mut().zip(act) {
                if a <= T::ZERO {
                    *d = T::ZERO;
                }
            }
        } else {
            for (d, &a) in dh.iter_mut().zip(act) {
                *d *= T::ONE - a * a;
            }
        }
    }
}
