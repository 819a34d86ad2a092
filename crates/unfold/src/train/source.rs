//! Where training batches come from. The trainer asks a [`TrainData`] for the loss and gradient
//! of its next batch, so one trainer serves a set of variable-length sequences
//! ([`Batches`]: seeded shuffling and length bucketing, epoch after epoch) and one long stream
//! trained by truncated BPTT ([`crate::train::tbptt::Stream`]), and sets of trees
//! ([`TreeBatches`]). A source also saves and restores
//! its position, which makes a resumed run replay exactly the batches the uninterrupted run
//! would have seen.

use std::collections::BTreeMap;

use crate::checkpoint::TensorFile;
use crate::data::{Dataset, TreeBatch, TreeSet};
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
    epoch: u64,
    index: usize,
    order: Vec<Vec<usize>>,
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
            epoch: 0,
            index: 0,
            order: data.epoch_batches(seed, 0, batch_size, bucket),
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
        if self.index >= self.order.len() {
            self.epoch += 1;
            self.index = 0;
            self.order =
                self.data
                    .epoch_batches(self.seed, self.epoch, self.batch_size, self.bucket);
        }
        let batch = self.data.batch(&self.order[self.index]);
        self.index += 1;
        let stats = model.loss_and_grad(&batch, ws, grads, ctx)?;
        Ok((stats, batch.tokens()))
    }

    fn save_position(&self, meta: &mut BTreeMap<String, String>, _tensors: &mut TensorFile) {
        write_position(meta, self.epoch, self.index);
    }

    fn restore_position(&mut self, file: &TensorFile) -> Result<()> {
        (self.epoch, self.index) = read_position(file)?;
        self.order = self
            .data
            .epoch_batches(self.seed, self.epoch, self.batch_size, self.bucket);
        Ok(())
    }

    fn epoch(&self) -> u64 {
        self.epoch
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

/// Minibatches of trees, epoch after epoch: each epoch's grouping is a function of the seed
/// and the epoch number ([`TreeSet::epoch_batches`]), and each group is level-scheduled
/// ([`TreeSet::batch`]).
pub struct TreeBatches<'a, T> {
    data: &'a TreeSet<T>,
    batch_size: usize,
    seed: u64,
    epoch: u64,
    index: usize,
    order: Vec<Vec<usize>>,
}

impl<'a, T: Float> TreeBatches<'a, T> {
    /// Batches of `batch_size` trees.
    pub fn new(data: &'a TreeSet<T>, batch_size: usize, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::InvalidConfig("batch size must be at least 1".into()));
        }
        Ok(TreeBatches {
            data,
            batch_size,
            seed,
            epoch: 0,
            index: 0,
            order: data.epoch_batches(seed, 0, batch_size),
        })
    }
}

impl<T: Float, M: Model<T, Batch = TreeBatch<T>>> TrainData<T, M> for TreeBatches<'_, T> {
    fn next_batch(
        &mut self,
        model: &M,
        ws: &mut M::Workspace,
        grads: &mut M,
        ctx: &mut TrainContext<'_>,
    ) -> Result<(LossStats, usize)> {
        if self.index >= self.order.len() {
            self.epoch += 1;
            self.index = 0;
            self.order = self
                .data
                .epoch_batches(self.seed, self.epoch, self.batch_size);
        }
        let batch = self.data.batch(&self.order[self.index]);
        self.index += 1;
        let stats = model.loss_and_grad(&batch, ws, grads, ctx)?;
        Ok((stats, batch.nodes))
    }

    fn save_position(&self, meta: &mut BTreeMap<String, String>, _tensors: &mut TensorFile) {
        write_position(meta, self.epoch, self.index);
    }

    fn restore_position(&mut self, file: &TensorFile) -> Result<()> {
        (self.epoch, self.index) = read_position(file)?;
        self.order = self
            .data
            .epoch_batches(self.seed, self.epoch, self.batch_size);
        Ok(())
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// Stores a minibatch source's position (epoch, batch within it) in checkpoint metadata.
fn write_position(meta: &mut BTreeMap<String, String>, epoch: u64, index: usize) {
    meta.insert("data.epoch".into(), epoch.to_string());
    meta.insert("data.index".into(), index.to_string());
}

/// Reads the position [`write_position`] stored.
fn read_position(file: &TensorFile) -> Result<(u64, usize)> {
    let get = |k: &str| -> Result<u64> {
        file.metadata
            .get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::CheckpointMismatch(format!("metadata {k} missing")))
    };
    Ok((get("data.epoch")?, get("data.index")? as usize))
}
