//! Training: optimizers with PyTorch's update rules, learning-rate and scheduled-sampling
//! schedules, gradient clipping, batch sources (bucketed minibatches, truncated BPTT on a
//! stream) and the trainer with validation, early stopping, checkpoints and exact resume.

pub mod clip;
pub mod optim;
pub mod schedule;
pub mod source;
pub mod tbptt;
pub mod trainer;

pub use clip::{clip_and_report, clip_gradients, global_norm, Clip, ClipReport};
pub use optim::{Optimizer, OptimizerConfig};
pub use schedule::{Decay, FeedSchedule, LrSchedule};
pub use source::{evaluate, Batches, GridBatches, SetBatches, ShuffledSet, TrainData, TreeBatches};
pub use tbptt::{evaluate_stream, Stream};
pub use trainer::{Event, StopFlag, Summary, TrainConfig, Trainer};
