//! Reservoir computing: echo state networks and liquid state machines.
//!
//! A reservoir is a fixed random recurrent network; only a linear readout of its states is
//! trained, in closed form. The pieces:
//! - [`sparse`]: fixed weight matrices, sparse (CSR) or dense, multiplied a block of sequences
//!   at a time;
//! - [`spectral`]: eigenvalues and the spectral radius (dense routine or Arnoldi), and scaling
//!   to a requested radius;
//! - [`layer`]: one leaky-integrator reservoir layer;
//! - [`readout`]: ridge regression on Gram matrices with the ridge chosen on a validation
//!   split, and recursive least squares;
//! - [`esn`], `harvest` and `fit`: the echo state network (stacked reservoirs, output feedback, streaming,
//!   closed-loop forecasting, FORCE learning, ridge fitting, sequence classification);
//! - [`diagnostics`]: the echo-state property check;
//! - [`io`], checkpoints as safetensors files;
//! - [`lsm`]: the liquid state machine (leaky integrate-and-fire units);
//! - [`init`]: an engine RNN layer initialised from a reservoir, for BPTT fine-tuning.

pub mod diagnostics;
pub mod esn;
mod fit;
mod harvest;
pub mod init;
pub mod io;
pub mod layer;
pub mod lsm;
pub mod readout;
mod sliced;
pub mod sparse;
pub mod spectral;
mod split;

pub use diagnostics::{echo_state_check, EchoStateReport};
pub use esn::{Esn, EsnConfig, EsnState, Pooling, ReadoutKind};
pub use fit::{Example, FitReport};
pub use init::labeller_from_esn;
pub use layer::{Activation, Reservoir, ReservoirConfig};
pub use lsm::{Lsm, LsmConfig, SpikeStats};
pub use readout::{select_ridge, solve_ridge, solve_ridge_dual, Gram, RidgeSelection, Rls};
pub use sparse::{Csr, WeightDist, Weights};
pub use spectral::{arnoldi_radius, eigenvalues, scale_to_radius, spectral_radius};
