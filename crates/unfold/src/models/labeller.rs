//! Pattern I: hidden-to-hidden recurrence with an output at every step,
//! `h(t) = f(h(t-1), x(t))`, `o(t) = c + V h(t)`, `P(y(t) | x(1..t)) = dist(o(t))`. With an
//! Elman (tanh) cell and a categorical output this is exactly the chapter's
//! `a = b + W h(t-1) + U x(t)`, `h = tanh(a)`, `o = c + V h`, `softmax(o)`; any cell kind, depth
//! and (for tagging whole given sequences) bidirectional layers work the same way.

use crate::data::SeqBatch;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::linear::Linear;
use crate::layers::output::{LossStats, OutputKind, OutputLayer};
use crate::layers::{
    CellKind, Head, HeadCache, InferWorkspace, Recurrent, RecurrentConfig, RecurrentState,
    SeqInput, TrainCache,
};
use crate::models::input::{InputLayer, InputSpec};
use crate::models::{
    compose_parameters, project_init, project_init_backward, scored_rows, target_view,
    InitProjection, Model, TrainContext,
};
use crate::probes::ProbeView;
use crate::rng::Rng;

/// The architecture shared by the labeller and the classifier.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelConfig {
    /// What is read at each step.
    pub input: InputSpec,
    /// Recurrent cell kind.
    pub cell: CellKind,
    /// Hidden units per layer and direction.
    pub hidden: usize,
    /// Stacked recurrent layers (1 or more).
    pub layers: usize,
    /// Run a reverse direction too and join both at every step.
    pub bidirectional: bool,
    /// The output distribution.
    pub output: OutputKind,
    /// Extra tanh layers between the recurrent output and the output map (a deep output,
    /// the DOT-RNN of Pascanu et al. 2014 with a deep transition). Default 0.
    #[serde(default)]
    pub deep_output: usize,
    /// Residual connections between the stacked recurrent layers (with 2 or more). Default
    /// false.
    #[serde(default)]
    pub residual: bool,
}

impl ModelConfig {
    pub(crate) fn recurrent(&self, input_width: usize) -> RecurrentConfig {
        RecurrentConfig::new(self.cell, input_width, self.hidden)
            .layers(self.layers)
            .bidirectional(self.bidirectional)
            .residual(self.residual)
    }

    pub(crate) fn describe(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("cell".to_string(), self.cell.name().to_string()),
            ("hidden".to_string(), self.hidden.to_string()),
            ("layers".to_string(), self.layers.to_string()),
            ("bidirectional".to_string(), self.bidirectional.to_string()),
            ("output".to_string(), format!("{:?}", self.output)),
        ];
        v.push(("input".to_string(), format!("{:?}", self.input)));
        v
    }
}

/// How a fixed conditioning vector `c` (one per sequence) enters a labeller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CondMode {
    /// Through a learned projection to the initial state, `h(0) = tanh(W c + b)` per layer.
    InitialState,
    /// As an extra input at every step, `x'(t) = [x(t); c]`.
    EveryStep,
    /// Both.
    Both,
}

/// Conditioning settings of a labeller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conditioning {
    /// Width of the conditioning vector.
    pub width: usize,
    /// Where it enters.
    pub mode: CondMode,
}

impl Conditioning {
    fn init(&self) -> bool {
        self.mode != CondMode::EveryStep
    }
    fn every(&self) -> bool {
        self.mode != CondMode::InitialState
    }
}

/// Pattern I: an output at every step.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceLabeller<T> {
    config: ModelConfig,
    /// Conditioning on a fixed vector per sequence, if any.
    cond: Option<Conditioning>,
    /// Dropout between stacked recurrent layers in training (0: none).
    dropout: f64,
    /// Embedding or projection of the inputs.
    pub input: InputLayer<T>,
    /// The recurrent stack.
    pub rnn: Recurrent<T>,
    /// `o = c + V h`, optionally with extra layers (a deep output).
    pub head: Head<T>,
    /// The output distribution (and its parameters, if any).
    pub output: OutputLayer<T>,
    /// Conditioning vector to initial state, `[L*H, C]` (with [`CondMode::InitialState`] or
    /// [`CondMode::Both`]).
    pub cond_init: Option<Linear<T>>,
}

compose_parameters!(SequenceLabeller {
    input: "input",
    rnn: "rnn",
    head: "head",
    output: "output",
    cond_init: "cond_init"
});

/// Buffers of a [`SequenceLabeller`], reused across calls.
#[derive(Debug, Default)]
pub struct LabellerWorkspace<T> {
    x: Vec<T>,
    xc: Vec<T>,
    pre: Vec<T>,
    dpre: Vec<T>,
    dxe: Vec<T>,
    init: RecurrentState<T>,
    cache: TrainCache<T>,
    infer: InferWorkspace<T>,
    logits: Vec<T>,
    dlogits: Vec<T>,
    dh: Vec<T>,
    head: HeadCache<T>,
}

impl<T: Float> LabellerWorkspace<T> {
    /// `[T, B, O]` output rows of the last call.
    pub fn logits(&self) -> &[T] {
        &self.logits
    }

    /// Final recurrent state of the last training call (for carrying into the next chunk).
    pub fn final_state(&self) -> &RecurrentState<T> {
        self.cache.final_state()
    }

    /// Final recurrent state of the last [`SequenceLabeller::forward_infer`].
    pub fn infer_final_state(&self) -> &RecurrentState<T> {
        self.infer.final_state()
    }
}

impl<T: Float> SequenceLabeller<T> {
    /// A model with each part initialised as PyTorch does, from `seed`.
    pub fn new(config: ModelConfig, seed: u64) -> Result<Self> {
        Self::build(config, None, seed)
    }

    /// A model conditioned on a fixed vector per sequence (batches carry it in
    /// [`SeqBatch::cond`]): the chapter's image-to-caption case.
    pub fn conditioned(config: ModelConfig, cond: Conditioning, seed: u64) -> Result<Self> {
        if cond.width == 0 {
            return Err(Error::InvalidConfig(
                "conditioning width must be at least 1".into(),
            ));
        }
        Self::build(config, Some(cond), seed)
    }

    fn build(config: ModelConfig, cond: Option<Conditioning>, seed: u64) -> Result<Self> {
        let input = InputLayer::new(config.input, seed)?;
        let extra = cond.filter(|c| c.every()).map_or(0, |c| c.width);
        let rnn = Recurrent::new(
            config.recurrent(input.out_width() + extra),
            seed.wrapping_add(1),
        )?;
        let cond_init = match cond.filter(|c| c.init()) {
            Some(c) => Some(Linear::new(
                c.width,
                rnn.config().num_layers * rnn.config().directions() * config.hidden,
                true,
                seed.wrapping_add(3),
            )?),
            None => None,
        };
        let head = Head::new(
            rnn.config().output_size(),
            config.output.width(),
            config.deep_output,
            seed.wrapping_add(2),
        )?;
        let output = OutputLayer::new(config.output)?;
        Ok(SequenceLabeller {
            config,
            cond,
            cond_init,
            dropout: 0.0,
            input,
            rnn,
            head,
            output,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Sets the dropout between stacked recurrent layers used in training (PyTorch's
    /// `dropout` argument of `nn.LSTM`); it needs at least two layers to act.
    pub fn set_dropout(&mut self, p: f64) -> Result<()> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::InvalidConfig(format!(
                "dropout must be in [0, 1) (got {p})"
            )));
        }
        self.dropout = p;
        Ok(())
    }

    /// The dropout between layers.
    pub fn dropout(&self) -> f64 {
        self.dropout
    }

    /// The conditioning settings, if the model is conditioned.
    pub fn conditioning(&self) -> Option<Conditioning> {
        self.cond
    }

    fn check_cond(&self, batch: &SeqBatch<T>) -> Result<()> {
        match (&self.cond, &batch.cond) {
            (None, None) => Ok(()),
            (Some(c), Some(v)) => crate::error::check_len(
                "conditioning vectors [B, C]",
                batch.batch * c.width,
                v.len(),
            ),
            (Some(_), None) => Err(Error::InvalidCall(
                "this model needs a conditioning vector per sequence".into(),
            )),
            (None, Some(_)) => Err(Error::InvalidCall("this model is not conditioned".into())),
        }
    }

    /// `[x; c]` rows when the condition enters every step (else `x` itself).
    fn with_cond<'a>(
        &self,
        x: &'a [T],
        cond: Option<&[T]>,
        rows: usize,
        b: usize,
        buf: &'a mut Vec<T>,
    ) -> &'a [T] {
        match (self.cond, cond) {
            (Some(c), Some(cv)) if c.every() => {
                let e = x.len() / rows.max(1);
                let w = e + c.width;
                buf.resize(rows * w, T::ZERO);
                for r in 0..rows {
                    buf[r * w..r * w + e].copy_from_slice(&x[r * e..(r + 1) * e]);
                    buf[r * w + e..(r + 1) * w]
                        .copy_from_slice(&cv[(r % b) * c.width..(r % b + 1) * c.width]);
                }
                &buf[..]
            }
            _ => x,
        }
    }

    /// Sets `state` to the initial state given by the condition, `tanh(W c + b)` for every
    /// layer and direction; false (and `state` untouched) when the condition does not set it.
    pub fn cond_state(
        &self,
        cond: &[T],
        b: usize,
        pre: &mut Vec<T>,
        state: &mut RecurrentState<T>,
    ) -> Result<bool> {
        let Some(ci) = &self.cond_init else {
            return Ok(false);
        };
        let ip = InitProjection {
            proj: ci,
            config: self.rnn.config(),
            c: cond,
            batch: b,
        };
        project_init(&ip, pre, state)?;
        Ok(true)
    }

    fn check_batch(&self, batch: &SeqBatch<T>) -> Result<()> {
        if !batch.per_step {
            return Err(Error::InvalidCall(
                "a sequence labeller needs one target per step".into(),
            ));
        }
        Ok(())
    }

    /// Training forward and backward from an initial state (`None`: zeros). The final state is
    /// left in [`LabellerWorkspace::final_state`]: pass it as `init` of the next chunk for
    /// truncated BPTT (values only, no gradient crosses the border).
    pub fn loss_and_grad_from(
        &self,
        batch: &SeqBatch<T>,
        init: Option<&RecurrentState<T>>,
        ws: &mut LabellerWorkspace<T>,
        grads: &mut Self,
    ) -> Result<LossStats> {
        self.train_step(batch, init, ws, grads, None)
    }

    /// [`SequenceLabeller::loss_and_grad_from`] with the model's dropout between layers,
    /// masks drawn from `rng` (no dropout without one).
    pub fn train_step(
        &self,
        batch: &SeqBatch<T>,
        init: Option<&RecurrentState<T>>,
        ws: &mut LabellerWorkspace<T>,
        grads: &mut Self,
        rng: Option<&mut Rng>,
    ) -> Result<LossStats> {
        self.check_batch(batch)?;
        self.check_cond(batch)?;
        let (steps, b) = (batch.steps, batch.batch);
        let rows = steps * b;
        let LabellerWorkspace {
            x,
            xc,
            pre,
            dpre,
            dxe,
            init: cinit,
            cache,
            logits,
            dlogits,
            dh,
            head: hc,
            ..
        } = ws;
        let xin = self.input.forward(&batch.input, rows, x)?;
        let xin = self.with_cond(xin, batch.cond.as_deref(), rows, b, xc);
        let from_cond = init.is_none()
            && match batch.cond.as_deref() {
                Some(cv) => self.cond_state(cv, b, pre, cinit)?,
                None => false,
            };
        let init = if from_cond { Some(&*cinit) } else { init };
        let drop = rng.map(|r| (self.dropout, r));
        let input = SeqInput {
            x: xin,
            steps,
            batch: b,
            lengths: Some(&batch.lengths),
        };
        self.rnn.forward_train_dropout(input, init, drop, cache)?;
        let o = self.head.out_features();
        logits.resize(rows * o, T::ZERO);
        dlogits.resize(rows * o, T::ZERO);
        self.head.forward(cache.output(), rows, logits, hc)?;
        let target = target_view(batch);
        let n = scored_rows(self.output.kind(), &target, Some(&batch.mask), rows);
        let scale = 1.0 / batch.loss_norm.unwrap_or(n.max(1) as f64);
        let stats = self.output.nll_grad(
            logits,
            rows,
            target,
            Some(&batch.mask),
            scale,
            (&mut dlogits[..], &mut grads.output),
        )?;
        let hw = self.rnn.config().output_size();
        dh.resize(rows * hw, T::ZERO);
        self.head
            .backward(cache.output(), dlogits, rows, &mut grads.head, dh, hc)?;
        let need_dx = self.input.trainable();
        self.rnn
            .backward(cache, Some(dh), None, &mut grads.rnn, need_dx)?;
        if need_dx {
            let e = self.input.out_width();
            let din = self.rnn.config().input_size;
            let dx: &[T] = if din == e {
                cache.dinput()
            } else {
                dxe.resize(rows * e, T::ZERO);
                for r in 0..rows {
                    dxe[r * e..(r + 1) * e].copy_from_slice(&cache.dinput()[r * din..r * din + e]);
                }
                dxe
            };
            self.input
                .backward(&batch.input, rows, dx, &mut grads.input)?;
        }
        if let (true, Some(ci), Some(gci), Some(cv)) = (
            from_cond,
            &self.cond_init,
            grads.cond_init.as_mut(),
            batch.cond.as_deref(),
        ) {
            let ip = InitProjection {
                proj: ci,
                config: self.rnn.config(),
                c: cv,
                batch: b,
            };
            project_init_backward(&ip, pre, cache.dinit(), dpre, gci, None)?;
        }
        Ok(stats)
    }

    /// Inference forward from `init`: output rows in [`LabellerWorkspace::logits`], final state
    /// in [`LabellerWorkspace::infer_final_state`]; returns the NLL sums.
    pub fn forward_infer(
        &self,
        batch: &SeqBatch<T>,
        init: Option<&RecurrentState<T>>,
        ws: &mut LabellerWorkspace<T>,
        row_ll: Option<&mut [f64]>,
    ) -> Result<LossStats> {
        self.check_batch(batch)?;
        self.check_cond(batch)?;
        let (steps, b) = (batch.steps, batch.batch);
        let rows = steps * b;
        let xin = self.input.forward(&batch.input, rows, &mut ws.x)?;
        let xin = self.with_cond(xin, batch.cond.as_deref(), rows, b, &mut ws.xc);
        let from_cond = init.is_none()
            && match batch.cond.as_deref() {
                Some(cv) => self.cond_state(cv, b, &mut ws.pre, &mut ws.init)?,
                None => false,
            };
        let init = if from_cond { Some(&ws.init) } else { init };
        self.rnn
            .forward_infer(xin, steps, b, Some(&batch.lengths), init, &mut ws.infer)?;
        ws.logits.resize(rows * self.head.out_features(), T::ZERO);
        self.head
            .forward(ws.infer.output(), rows, &mut ws.logits, &mut ws.head)?;
        self.output.nll(
            &ws.logits,
            rows,
            target_view(batch),
            Some(&batch.mask),
            row_ll,
        )
    }

    /// Log-likelihood of each whole sequence, `sum_t log P(y(t) | x(1..t))` in nats.
    pub fn sequence_log_likelihood(
        &self,
        batch: &SeqBatch<T>,
        ws: &mut LabellerWorkspace<T>,
    ) -> Result<Vec<f64>> {
        let mut ll = vec![0.0; batch.steps * batch.batch];
        self.forward_infer(batch, None, ws, Some(&mut ll))?;
        let mut per_seq = vec![0.0; batch.batch];
        for (r, v) in ll.iter().enumerate() {
            per_seq[r % batch.batch] += v;
        }
        Ok(per_seq)
    }
}

impl<T: Float> Model<T> for SequenceLabeller<T> {
    type Batch = SeqBatch<T>;
    type EvalSet = crate::data::Dataset<T>;
    type Workspace = LabellerWorkspace<T>;

    fn loss_and_grad(
        &self,
        batch: &SeqBatch<T>,
        ws: &mut Self::Workspace,
        grads: &mut Self,
        ctx: &mut TrainContext<'_>,
    ) -> Result<LossStats> {
        self.train_step(batch, None, ws, grads, Some(&mut *ctx.rng))
    }

    fn evaluate(&self, batch: &SeqBatch<T>, ws: &mut Self::Workspace) -> Result<LossStats> {
        self.forward_infer(batch, None, ws, None)
    }

    fn probe_view<'a>(&'a self, ws: &'a Self::Workspace) -> Option<ProbeView<'a, T>> {
        Some(ProbeView {
            rnn: &self.rnn,
            cache: &ws.cache,
            dout: Some(&ws.dh[..]),
            dfinal: None,
        })
    }

    fn describe(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("model".to_string(), "sequence_labeller".to_string()),
            ("dropout".to_string(), self.dropout.to_string()),
            ("conditioning".to_string(), format!("{:?}", self.cond)),
        ];
        v.extend(self.config.describe());
        v
    }
}
