//! Data: sequences and their padded, length-bucketed batches; generated tasks for tests,
//! examples and the command line.

pub mod batch;
pub mod tasks;

pub use batch::{Dataset, SeqBatch, Sequence, Values};
