//! The model contract the trainer drives. A model chooses its own batch type (sequences for
//! the chain models; trees and grids for the structures that come next) and the held-out set
//! it is validated on; the trainer, the optimizers, clipping, schedules, validation,
//! checkpoints and exact resume are written once against [`Model`].

use crate::data::{Dataset, SeqBatch};
use crate::error::Result;
use crate::float::Float;
use crate::layers::output::LossStats;
use crate::layers::params::Parameters;
use crate::probes::ProbeView;
use crate::rng::Rng;

/// What a training step may need besides the batch: randomness (scheduled sampling, dropout)
/// and the current probability of feeding the model its own prediction.
pub struct TrainContext<'a> {
    /// The run's random stream (part of the checkpoint, so resuming replays it).
    pub rng: &'a mut Rng,
    /// Probability of feeding back the model's own output instead of the true previous target
    /// (0 = pure teacher forcing). Ignored by models without output feedback.
    pub feed_prob: f64,
    /// The optimisation step being computed.
    pub step: u64,
}

/// A model trained by minimising a negative log-likelihood over batches of its own kind.
pub trait Model<T: Float>: Parameters<T> + Clone {
    /// What one training or evaluation call reads (e.g. [`SeqBatch`]).
    type Batch;
    /// A held-out set the trainer validates on (e.g. [`Dataset`] for sequence models).
    type EvalSet: EvalSet<T, Self> + ?Sized;
    /// Buffers reused across calls (caches for backward, scratch).
    type Workspace: Default;

    /// All-zero parameters of the same shape and settings: the gradient buffer.
    fn zeros_like(&self) -> Self {
        let mut z = self.clone();
        z.zero();
        z
    }

    /// Mean NLL of the batch; its gradient is *added* to `grads`. Returns the batch's sums.
    fn loss_and_grad(
        &self,
        batch: &Self::Batch,
        ws: &mut Self::Workspace,
        grads: &mut Self,
        ctx: &mut TrainContext<'_>,
    ) -> Result<LossStats>;

    /// The batch's NLL sums and metrics under run-time conditions (nothing kept for backward;
    /// a model with output feedback runs free on its own outputs).
    fn evaluate(&self, batch: &Self::Batch, ws: &mut Self::Workspace) -> Result<LossStats>;

    /// Key/value description of the architecture, stored in checkpoint metadata.
    fn describe(&self) -> Vec<(String, String)>;

    /// What the long-term dependency probes ([`crate::probes`]) read after the last
    /// [`Model::loss_and_grad`] on `ws`: the top recurrent layer, its cache and the loss's
    /// gradients on its outputs and final state. The sequence classifier and labeller give
    /// their recurrent stack, the encoder-decoder its decoder; `None` (the default) for a model
    /// without a recurrent layer over time (output feedback only, trees, grids).
    fn probe_view<'a>(&'a self, _ws: &'a Self::Workspace) -> Option<ProbeView<'a, T>> {
        None
    }
}

/// A held-out set a model of type `M` can be scored on, in batches of at most `batch_size`.
pub trait EvalSet<T: Float, M: Model<T>> {
    /// The merged NLL sums and metrics of the whole set under run-time conditions.
    fn evaluate(&self, model: &M, ws: &mut M::Workspace, batch_size: usize) -> Result<LossStats>;
}

/// A model over batches of variable-length sequences, validated on a [`Dataset`]: every chain
/// model of the chapter (patterns I-III, output feedback, encoder-decoder).
pub trait SequenceModel<T: Float>: Model<T, Batch = SeqBatch<T>, EvalSet = Dataset<T>> {}

impl<T: Float, M: Model<T, Batch = SeqBatch<T>, EvalSet = Dataset<T>>> SequenceModel<T> for M {}

/// A dataset is scored in length-sorted batches of `batch_size`, deterministically, and the
/// sums merged.
impl<T: Float, M: SequenceModel<T>> EvalSet<T, M> for Dataset<T> {
    fn evaluate(&self, model: &M, ws: &mut M::Workspace, batch_size: usize) -> Result<LossStats> {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.sort_by_key(|&i| self.sequences()[i].len);
        let mut total = LossStats::default();
        for chunk in idx.chunks(batch_size.max(1)) {
            total.merge(&model.evaluate(&self.batch(chunk), ws)?);
        }
        Ok(total)
    }
}
