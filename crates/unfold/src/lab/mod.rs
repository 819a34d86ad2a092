//! The long-term dependency lab: the chapter's remedies for vanishing and exploding gradients
//! (gating, leaky units, multiple time scales, deep transitions with shortcuts, clipping,
//! orthogonal / identity / echo-state initialisation, reservoirs) compared on equal terms:
//! every model trained with the same budget on the same tasks over a range of sequence
//! lengths and seeds, with the [`crate::probes`] recorded along the way. `unfold lab` runs a
//! plan of [`RunSpec`]s with [`run_all`] and writes the report.
//!
//! - [`tasks`]: adding, copy, Reber, parity, temporal order, pixel-by-pixel digits;
//! - [`models`]: the contestants and how each is built;
//! - [`run`]: one run (trained in chunks with the probes; the ESN is fitted);
//! - [`runner`]: the plan and the parallel runner.

mod esn;
pub mod models;
pub mod run;
pub mod runner;
pub mod tasks;

pub use models::{LabModel, Recipe, LAB_MODELS};
pub use run::{run_one, LabSettings, RunResult, RunSpec};
pub use runner::{plan, run_all};
pub use tasks::{lab_data, Digits, LabData, LabTask, LAB_TASKS};
