//! Low-level kernels: matrix products and the fused element-wise forward/backward of each cell.
//!
//! Nothing here allocates. Each cell file holds its forward and backward side by side, for one
//! batch row; the recurrent layer (`crate::layers`) owns the time loop, the buffers and the
//! variable-length bookkeeping.

pub mod elman;
pub mod gemm;
pub mod gru;
pub mod lstm;
