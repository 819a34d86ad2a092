//! # unfold
//!
//! Recurrent and recursive neural networks on hand-written CPU kernels with exact
//! back-propagation through time. The layers go kernels -> recurrent layers -> models ->
//! training; this crate holds all of them, the `unfold` binary is a thin front end.
//!
//! Reservoir computing (echo state networks, liquid state machines, ridge and RLS readouts) is in
//! [`reservoir`]: fixed recurrent weights, only a linear readout trained in closed form.
//!
//! Start with [`layers::Recurrent`]: an RNN, LSTM or GRU layer (stacked, bidirectional,
//! variable-length) with PyTorch's parameter names, loadable from and savable to safetensors
//! files PyTorch reads ([`checkpoint`]).

pub mod bench;
pub mod builtin;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod float;
pub mod kernels;
pub mod lab;
pub mod layers;
pub mod models;
pub mod probes;
pub mod reservoir;
pub mod rng;
pub mod saved;
pub mod score;
pub mod train;

pub use error::{Error, Result};

/// The README's library examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// The library example of `docs/trees.md`, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/trees.md")]
struct TreeDocDoctests;

/// The library example of `docs/grids.md`, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/grids.md")]
struct GridDocDoctests;

/// The library example of `docs/lab.md`, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/lab.md")]
struct LabDocDoctests;

pub use float::Float;
pub use kernels::gemm::{num_threads, set_num_threads};
pub use layers::{CellKind, Parameters, Recurrent, RecurrentConfig, RecurrentState};
