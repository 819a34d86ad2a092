//! Data: sequences and their padded, length-bucketed batches; vocabularies; generated tasks
//! (including the embedded Reber grammar) for tests, examples and the command line; the `.ts`
//! classification format; the input scaling a model keeps; trees (bracketed and CoNLL-U) and
//! their level-scheduled batches for recursive networks; grids (images) for two-dimensional
//! networks.

pub mod batch;
pub mod grid;
pub mod reber;
pub mod scale;
pub mod tasks;
pub mod tree;
pub mod tree_batch;
pub mod tree_tasks;
pub mod ts;
pub mod vocab;

pub use batch::{Dataset, SeqBatch, Sequence, SourceBatch, Values};
pub use grid::{GridBatch, GridLabels, GridSet};
pub use scale::Scaler;
pub use tree::{Tree, TreeNode};
pub use tree_batch::{TreeBatch, TreeExample, TreeSet};
pub use vocab::Vocab;
