//! Recurrent layers built on the kernels: configuration, parameters by name, state, and the
//! stacked / bidirectional / variable-length layer with its training, inference and streaming
//! modes.

pub mod config;
mod direction;
pub mod params;
pub mod recurrent;
pub mod state;
mod stream;

pub use config::{CellKind, RecurrentConfig};
pub use params::{CellParams, ParamSpec, Parameters};
pub use recurrent::{InferWorkspace, Recurrent, RecurrentGrads, StepWorkspace, TrainCache};
pub use state::RecurrentState;
