//! Pattern III: hidden-to-hidden recurrence read out once, sequence to one value. The summary
//! of a sequence is the recurrent state at its own last step (both directions joined for a
//! bidirectional stack: the forward direction's last step and the reverse direction's first)
//! or the mean of the top layer's outputs over its valid steps; a linear head and an output
//! distribution turn it into a class or a real value.

use crate::data::SeqBatch;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::output::{LossStats, OutputLayer};
use crate::layers::{Head, HeadCache, InferWorkspace, Recurrent, RecurrentState, TrainCache};
use crate::models::input::InputLayer;
use crate::models::labeller::ModelConfig;
use crate::models::{compose_parameters, scored_rows, target_view, Model, TrainContext};
use crate::probes::ProbeView;

/// How a whole sequence is summarised for the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Readout {
    /// The top layer's final state, each sequence at its own last step.
    Last,
    /// The mean of the top layer's outputs over each sequence's valid steps.
    Mean,
}

/// Pattern III: one output per sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceClassifier<T> {
    config: ModelConfig,
    readout: Readout,
    /// Embedding or projection of the inputs.
    pub input: InputLayer<T>,
    /// The recurrent stack.
    pub rnn: Recurrent<T>,
    /// Head on the summary vector.
    pub head: Head<T>,
    /// The output distribution.
    pub output: OutputLayer<T>,
}

compose_parameters!(SequenceClassifier {
    input: "input",
    rnn: "rnn",
    head: "head",
    output: "output"
});

/// Buffers of a [`SequenceClassifier`].
#[derive(Debug, Default)]
pub struct ClassifierWorkspace<T> {
    x: Vec<T>,
    cache: TrainCache<T>,
    infer: InferWorkspace<T>,
    feat: Vec<T>,
    logits: Vec<T>,
    dlogits: Vec<T>,
    dfeat: Vec<T>,
    dout: Vec<T>,
    dfinal: RecurrentState<T>,
    head: HeadCache<T>,
}

impl<T: Float> ClassifierWorkspace<T> {
    /// `[B, O]` output rows of the last call.
    pub fn logits(&self) -> &[T] {
        &self.logits
    }
}

impl<T: Float> SequenceClassifier<T> {
    /// A model with each part initialised as PyTorch does, from `seed`.
    pub fn new(config: ModelConfig, readout: Readout, seed: u64) -> Result<Self> {
        let input = InputLayer::new(config.input, seed)?;
        let rnn = Recurrent::new(config.recurrent(input.out_width()), seed.wrapping_add(1))?;
        let head = Head::new(
            rnn.config().output_size(),
            config.output.width(),
            config.deep_output,
            seed.wrapping_add(2),
        )?;
        Ok(SequenceClassifier {
            config,
            readout,
            input,
            rnn,
            head,
            output: OutputLayer::new(config.output)?,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The readout.
    pub fn readout(&self) -> Readout {
        self.readout
    }

    /// Writes the `[B, D*H]` summary of each sequence into `feat`.
    fn summarise(
        &self,
        out: &[T],
        fin: &RecurrentState<T>,
        batch: &SeqBatch<T>,
        feat: &mut Vec<T>,
    ) {
        let cfg = self.rnn.config();
        let (h, nd, b) = (cfg.hidden_size, cfg.directions(), batch.batch);
        let w = nd * h;
        feat.clear();
        feat.resize(b * w, T::ZERO);
        match self.readout {
            Readout::Last => fin.top_h_into(cfg, feat),
            Readout::Mean => {
                for j in 0..b {
                    let len = batch.lengths[j];
                    let f = &mut feat[j * w..(j + 1) * w];
                    for t in 0..len {
                        for (fv, &o) in f.iter_mut().zip(&out[(t * b + j) * w..][..w]) {
                            *fv += o;
                        }
                    }
                    let inv = T::ONE / T::from_f64(len.max(1) as f64);
                    f.iter_mut().for_each(|v| *v *= inv);
                }
            }
        }
    }

    fn check_batch(&self, batch: &SeqBatch<T>) -> Result<()> {
        if batch.per_step {
            return Err(Error::InvalidCall(
                "a sequence classifier needs one target per sequence".into(),
            ));
        }
        if batch.lengths.contains(&0) {
            return Err(Error::InvalidCall(
                "a sequence classifier cannot summarise an empty sequence".into(),
            ));
        }
        Ok(())
    }
}

impl<T: Float> Model<T> for SequenceClassifier<T> {
    type Batch = SeqBatch<T>;
    type EvalSet = crate::data::Dataset<T>;
    type Workspace = ClassifierWorkspace<T>;

    fn loss_and_grad(
        &self,
        batch: &SeqBatch<T>,
        ws: &mut Self::Workspace,
        grads: &mut Self,
        _ctx: &mut TrainContext<'_>,
    ) -> Result<LossStats> {
        self.check_batch(batch)?;
        let (steps, b) = (batch.steps, batch.batch);
        let rows = steps * b;
        let cfg = self.rnn.config().clone();
        let (h, nd) = (cfg.hidden_size, cfg.directions());
        let w = nd * h;
        let ClassifierWorkspace {
            x,
            cache,
            feat,
            logits,
            dlogits,
            dfeat,
            dout,
            dfinal,
            head: hc,
            ..
        } = ws;
        let xin = self.input.forward(&batch.input, rows, x)?;
        self.rnn
            .forward_train(xin, steps, b, Some(&batch.lengths), None, cache)?;
        self.summarise(cache.output(), cache.final_state(), batch, feat);
        let o = self.head.out_features();
        logits.resize(b * o, T::ZERO);
        dlogits.resize(b * o, T::ZERO);
        self.head.forward(feat, b, logits, hc)?;
        let target = target_view(batch);
        let n = scored_rows(self.output.kind(), &target, None, b);
        let stats = self.output.nll_grad(
            logits,
            b,
            target,
            None,
            1.0 / n.max(1) as f64,
            (&mut dlogits[..], &mut grads.output),
        )?;
        dfeat.resize(b * w, T::ZERO);
        self.head
            .backward(feat, dlogits, b, &mut grads.head, dfeat, hc)?;
        let need_dx = self.input.trainable();
        match self.readout {
            Readout::Last => {
                if dfinal.check(&cfg, b, "").is_ok() {
                    dfinal.reset();
                } else {
                    *dfinal = RecurrentState::zeros(&cfg, b);
                }
                dfinal.set_top_h(&cfg, dfeat);
                self.rnn
                    .backward(cache, None, Some(dfinal), &mut grads.rnn, need_dx)?;
            }
            Readout::Mean => {
                dout.clear();
                dout.resize(rows * w, T::ZERO);
                for j in 0..b {
                    let len = batch.lengths[j];
                    let inv = T::ONE / T::from_f64(len as f64);
                    for t in 0..len {
                        for (dv, &g) in dout[(t * b + j) * w..][..w]
                            .iter_mut()
                            .zip(&dfeat[j * w..][..w])
                        {
                            *dv = g * inv;
                        }
                    }
                }
                self.rnn
                    .backward(cache, Some(dout), None, &mut grads.rnn, need_dx)?;
            }
        }
        if need_dx {
            self.input
                .backward(&batch.input, rows, cache.dinput(), &mut grads.input)?;
        }
        Ok(stats)
    }

    fn evaluate(&self, batch: &SeqBatch<T>, ws: &mut Self::Workspace) -> Result<LossStats> {
        self.check_batch(batch)?;
        let (steps, b) = (batch.steps, batch.batch);
        let xin = self.input.forward(&batch.input, steps * b, &mut ws.x)?;
        self.rnn
            .forward_infer(xin, steps, b, Some(&batch.lengths), None, &mut ws.infer)?;
        self.summarise(
            ws.infer.output(),
            ws.infer.final_state(),
            batch,
            &mut ws.feat,
        );
        ws.logits.resize(b * self.head.out_features(), T::ZERO);
        self.head
            .forward(&ws.feat, b, &mut ws.logits, &mut ws.head)?;
        self.output
            .nll(&ws.logits, b, target_view(batch), None, None)
    }

    fn probe_view<'a>(&'a self, ws: &'a Self::Workspace) -> Option<ProbeView<'a, T>> {
        let (dout, dfinal) = match self.readout {
            Readout::Last => (None, Some(&ws.dfinal)),
            Readout::Mean => (Some(&ws.dout[..]), None),
        };
        Some(ProbeView {
            rnn: &self.rnn,
            cache: &ws.cache,
            dout,
            dfinal,
        })
    }

    fn describe(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("model".to_string(), "sequence_classifier".to_string()),
            ("readout".to_string(), format!("{:?}", self.readout)),
        ];
        v.extend(self.config.describe());
        v
    }
}
