//! Low-level kernels: matrix products and the fused element-wise forward/backward of each cell.
//!
//! Nothing here allocates. Each cell file holds its forward and backward side by side, for one
//! batch row; the recurrent layer (`crate::layers`) owns the time loop, the buffers and the
//! variable-length bookkeeping.

pub mod activations;
pub mod aligned;
#[cfg(target_arch = "x86_64")]
pub(crate) mod cells512;
pub mod elman;
pub mod gemm;
pub mod gram;
pub mod gru;
pub mod lanes;
pub mod lstm;
pub mod packed;
pub(crate) mod team;
