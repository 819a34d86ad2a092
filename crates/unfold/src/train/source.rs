//! Where training batches come from. The trainer asks a [`TrainData`] for the loss and gradient
//! of its next batch, so one trainer serves a set of variable-length sequences
//! ([`Batches`]: seeded shuffling and length bucketing, epoch after epoch) and one long stream
//! trained by truncated BPTT ([`crate::train::tbptt::Stream`]), and sets of trees
//! ([`TreeBatches`]) and images ([`GridBatches`]). A source also saves and restores
//! its position, which makes a resumed run replay exactly the batches the uninterrupted run
//! would have seen.

use std::collections::BTreeMap;

use crate::checkpoint::TensorFile;
use crate::data::{Dataset, GridBatch, GridSet, TreeBatch, TreeSet};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::output::LossStats;
use crate::models::{EvalSet, Model, SequenceModel, TrainContext};

/// A source of training batches for model `M`.
pub trait TrainData<T: Float, M: Model<T>> {
    /// Computes the mean loss of the next batch and *adds* its gradient to `grads`. Returns the
    /// batch's sums and the number of real tokens (steps) it held.
    fn next_batch(
        &mut self,
        model: &M,
        ws: &mut M::Workspace,
        grads: &mut M,
        ctx: &mut TrainContext<'_>,
    ) -> Result<(LossStats, usize)>;

    /// The position to store in a checkpoint (metadata entries).
    fn save_position(&self, meta: &mut BTreeMap<String, String>, tensors: &mut TensorFile);

    /// Restores a position saved by [`TrainData::save_position`].
    fn restore_position(&mut self, file: &TensorFile) -> Result<()>;

    /// Passes completed so far (epochs).
    fn epoch(&self) -> u64;
}

/// Minibatches of a [`Dataset`], epoch after epoch: each epoch's grouping is a function of the
/// seed and the epoch number ([`Dataset::epoch_batches`]).
pub struct Batches<'a, T> {
    data: &'a Dataset<T>,
    batch_size: usize,
    bucket: usize,
    seed: u64,
    cursor: EpochCursor,
}

impl<'a, T: Float> Batches<'a, T> {
    /// Batches of `batch_size` sequences; `bucket` batches form one length-sorted pool (0 or 1:
    /// no bucketing).
    pub fn new(data: &'a Dataset<T>, batch_size: usize, bucket: usize, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::InvalidConfig("batch size must be at least 1".into()));
        }
        Ok(Batches {
            data,
            batch_size,
            bucket,
            seed,
            cursor: EpochCursor::new(data.epoch_batches(seed, 0, batch_size, bucket)),
        })
    }
}

impl<T: Float, M: SequenceModel<T>> TrainData<T, M> for Batches<'_, T> {
    fn next_batch(
        &mut self,
        model: &M,
        ws: &mut M::Workspace,
        grads: &mut M,
        ctx: &mut TrainContext<'_>,
    ) -> Result<(LossStats, usize)> {
        let (data, seed, bs, bucket) = (self.data, self.seed, self.batch_size, self.bucket);
        let batch = data.batch(
            self.cursor
                .next(|e| data.epoch_batches(seed, e, bs, bucket)),
        );
        let stats = model.loss_and_grad(&batch, ws, grads, ctx)?;
        Ok((stats, batch.tokens()))
    }

    fn save_position(&self, meta: &mut BTreeMap<String, String>, _tensors: &mut TensorFile) {
        self.cursor.save(meta);
    }

    fn restore_position(&mut self, file: &TensorFile) -> Result<()> {
        let (data, seed, bs, bucket) = (self.data, self.seed, self.batch_size, self.bucket);
        self.cursor
            .restore(file, |e| data.epoch_batches(seed, e, bs, bucket))
    }

    fn epoch(&self) -> u64 {
        self.cursor.epoch
    }
}

/// Evaluates `model` on every sequence of `data` (in length-sorted batches of `batch_size`,
/// deterministic) and merges the sums ([`EvalSet`] for a [`Dataset`]).
pub fn evaluate<T: Float, M: SequenceModel<T>>(
    model: &M,
    ws: &mut M::Workspace,
    data: &Dataset<T>,
    batch_size: usize,
) -> Result<LossStats> {
    data.evaluate(model, ws, batch_size)
}

/// A set of examples shuffled into minibatches epoch after epoch (trees, grids): each epoch's
/// grouping is a function of the seed and the epoch number.
pub trait ShuffledSet {
    /// One minibatch.
    type Batch;
    /// The groups of example indices of an epoch.
    fn epoch_groups(&self, seed: u64, epoch: u64, batch_size: usize) -> Vec<Vec<usize>>;
    /// The examples `idx` as one batch.
    fn make_batch(&self, idx: &[usize]) -> Self::Batch;
    /// What a batch counts as its tokens (nodes, pixels).
    fn units(batch: &Self::Batch) -> usize;
}

impl<T: Float> ShuffledSet for TreeSet<T> {
    type Batch = TreeBatch<T>;
    fn epoch_groups(&self, seed: u64, epoch: u64, batch_size: usize) -> Vec<Vec<usize>> {
        self.epoch_batches(seed, epoch, batch_size)
    }
    fn make_batch(&self, idx: &[usize]) -> TreeBatch<T> {
        self.batch(idx)
    }
    fn units(batch: &TreeBatch<T>) -> usize {
        batch.nodes
    }
}

impl<T: Float> ShuffledSet for GridSet<T> {
    type Batch = GridBatch<T>;
    fn epoch_groups(&self, seed: u64, epoch: u64, batch_size: usize) -> Vec<Vec<usize>> {
        self.epoch_batches(seed, epoch, batch_size)
    }
    fn make_batch(&self, idx: &[usize]) -> GridBatch<T> {
        self.batch(idx)
    }
    fn units(batch: &GridBatch<T>) -> usize {
        batch.shape.positions()
    }
}

/// Minibatches of a [`ShuffledSet`], epoch after epoch ([`TreeBatches`]: level-scheduled
/// trees; [`GridBatches`]: images).
pub struct SetBatches<'a, S> {
    data: &'a S,
    batch_size: usize,
    seed: u64,
    cursor: EpochCursor,
}

/// Minibatches of trees, each level-scheduled ([`TreeSet::batch`]).
pub type TreeBatches<'a, T> = SetBatches<'a, TreeSet<T>>;

/// Minibatches of images.
pub type GridBatches<'a, T> = SetBatches<'a, GridSet<T>>;

impl<'a, S: ShuffledSet> SetBatches<'a, S> {
    /// Batches of `batch_size` examples.
    pub fn new(data: &'a S, batch_size: usize, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::InvalidConfig("batch size must be at least 1".into()));
        }
        Ok(SetBatches {
            data,
            batch_size,
            seed,
            cursor: EpochCursor::new(data.epoch_groups(seed, 0, batch_size)),
        })
    }
}

impl<T: Float, S: ShuffledSet, M: Model<T, Batch = S::Batch>> TrainData<T, M>
    for SetBatches<'_, S>
{
    fn next_batch(
        &mut self,
        model: &M,
        ws: &mut M::Workspace,
        grads: &mut M,
        ctx: &mut TrainContext<'_>,
    ) -> Result<(LossStats, usize)> {
        let (data, seed, bs) = (self.data, self.seed, self.batch_size);
        let batch = data.make_batch(self.cursor.next(|e| data.epoch_groups(seed, e, bs)));
        let stats = model.loss_and_grad(&batch, ws, grads, ctx)?;
        Ok((stats, S::units(&batch)))
    }

    fn save_position(&self, meta: &mut BTreeMap<String, String>, _tensors: &mut TensorFile) {
        self.cursor.save(meta);
    }

    fn restore_position(&mut self, file: &TensorFile) -> Result<()> {
        let (data, seed, bs) = (self.data, self.seed, self.batch_size);
        self.cursor
            .restore(file, |e| data.epoch_groups(seed, e, bs))
    }

    fn epoch(&self) -> u64 {
        self.cursor.epoch
    }
}

/// Where a minibatch source is in its epoch-by-epoch order: the epoch, the next group within
/// it, and the epoch's groups (drawn again from `(seed, epoch)` by the source when needed).
struct EpochCursor {
    epoch: u64,
    index: usize,
    order: Vec<Vec<usize>>,
}

impl EpochCursor {
    fn new(order: Vec<Vec<usize>>) -> Self {
        EpochCursor {
            epoch: 0,
            index: 0,
            order,
        }
    }

    /// The next group, starting the next epoch (its groups from `draw(epoch)`) when this one
    /// is done.
    fn next(&mut self, draw: impl Fn(u64) -> Vec<Vec<usize>>) -> &[usize] {
        if self.index >= self.order.len() {
            self.epoch += 1;
            self.index = 0;
            self.order = draw(self.epoch);
        }
        self.index += 1;
        &self.order[self.index - 1]
    }

    /// Stores the position in checkpoint metadata.
    fn save(&self, meta: &mut BTreeMap<String, String>) {
        meta.insert("data.epoch".into(), self.epoch.to_string());
        meta.insert("data.index".into(), self.index.to_string());
    }

    /// Restores the position [`EpochCursor::save`] stored.
    fn restore(&mut self, file: &TensorFile, draw: impl Fn(u64) -> Vec<Vec<usize>>) -> Result<()> {
        let get = |k: &str| -> Result<u64> {
            file.metadata
                .get(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| Error::CheckpointMismatch(format!("metadata {k} missing")))
        };
        self.epoch = get("data.epoch")?;
        self.index = get("data.index")? as usize;
        self.order = draw(self.epoch);
        Ok(())
    }
}
