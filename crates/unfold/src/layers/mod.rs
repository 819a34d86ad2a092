//! Layers built on the kernels: the recurrent layer (the cell contract and its cells, the
//! generic time loop and the fused engines, configuration, parameters by name, state, the
//! stacked / bidirectional / variable-length layer with its training, inference and streaming
//! modes), the recursive layer over trees, the two-dimensional layer over grids, and the dense
//! pieces around them: linear layers, embeddings and output distributions.

pub mod cell;
pub mod cell_specs;
pub mod cells;
pub mod config;
mod direction;
pub mod embedding;
mod engine_choice;
mod engine_io;
mod fused;
mod fused_lanes;
pub mod grid;
mod grid_schedule;
pub mod head;
pub mod init;
pub mod linear;
pub mod output;
pub mod params;
pub mod recurrent;
pub mod renet;
pub mod state;
mod stream;
mod sweep;
pub mod tree;
pub(crate) mod unrolled;

pub use cell::Cell;
pub use config::{
    CellKind, ClockSpec, DeepSpec, DelaySpec, LeakSpec, RecurrentConfig, SmallList, TdnnSpec,
};
pub use embedding::Embedding;
pub use head::{Head, HeadCache};
pub use init::RecurrentInit;
pub use linear::Linear;
pub use output::{LossStats, OutputKind, OutputLayer, Target};
pub use params::{CellParams, ParamSpec, Parameters};
pub use recurrent::{
    InferWorkspace, Recurrent, RecurrentGrads, SeqInput, StepWorkspace, TrainCache,
};
pub use state::RecurrentState;
