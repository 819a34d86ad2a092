//! Which loop runs a layer's time steps: decided here, in [`choose`], and nowhere else. The
//! layer asks once per call (the answer depends on the cell, the number type, the batch and
//! whether the call trains); the prepared weights follow the answer, and the engines dispatch
//! on what was prepared.
//!
//! | engine | runs | when |
//! |---|---|---|
//! | [`Engine::Reference`] | the generic loop over the cell contract (`unrolled.rs`) | a cell without an engine, or a layer set to the reference loop |
//! | [`Engine::PortableRows`] | the portable engine, W_hh read as stored by one-row products | batches of one or two sequences |
//! | [`Engine::PortableGemm`] | the portable engine, W_hh transposed once per call for the `gemm` crate | `f64`, or no AVX-512 |
//! | [`Engine::Fused`] | the fused `f32` AVX-512 loops on packed panels (`fused.rs`) | `f32` with AVX-512 |
//! | [`Engine::Lanes`] | the lane-layout LSTM inference (`fused_lanes.rs`) | `f32` LSTM inference on batches that fill 16-lane vectors |
//!
//! A streaming step ([`crate::layers::Recurrent::step`]) of a cell with an engine takes the
//! explicit AVX-512 row products when [`step_fused`] says so.

use crate::kernels::packed;
use crate::layers::config::CellKind;
use crate::layers::fused_lanes;

/// Batches up to this size use the single-row product, which reads W_hh as it is.
const ROWS_MAX_BATCH: usize = 2;

/// The loop that runs a layer's time steps (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    /// The generic reference loop.
    Reference,
    /// The portable engine with one-row products on W_hh as stored.
    PortableRows,
    /// The portable engine with GEMMs on W_hh transposed.
    PortableGemm,
    /// The fused `f32` AVX-512 loops.
    Fused,
    /// The lane-layout `f32` LSTM inference.
    Lanes,
}

/// Whether a layer of `kind` runs on an engine at all (not the reference loop); `reference`
/// is the layer's own setting.
pub(crate) fn has_engine(kind: CellKind, reference: bool) -> bool {
    kind.has_engine() && !reference
}

/// The engine for one call on a layer of `kind` (`reference`: the layer's own setting) over
/// `batch` sequences, with `f32` numbers or not, training or inference.
pub(crate) fn choose(
    kind: CellKind,
    reference: bool,
    is_f32: bool,
    batch: usize,
    training: bool,
) -> Engine {
    if !has_engine(kind, reference) {
        Engine::Reference
    } else if batch <= ROWS_MAX_BATCH {
        Engine::PortableRows
    } else if !(is_f32 && packed::available()) {
        Engine::PortableGemm
    } else if !training && fused_lanes::usable(kind, batch) {
        Engine::Lanes
    } else {
        Engine::Fused
    }
}

/// Whether a streaming step (`stream.rs`) takes the explicit `f32` AVX-512 row products.
pub(crate) fn step_fused(is_f32: bool) -> bool {
    is_f32 && packed::available()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::LeakSpec;

    #[test]
    fn each_call_gets_the_engine_of_the_table() {
        let leaky = CellKind::Leaky(LeakSpec {
            min: 0.1,
            max: 1.0,
            learn: true,
        });
        assert_eq!(choose(leaky, false, true, 32, false), Engine::Reference);
        assert_eq!(
            choose(CellKind::Lstm, true, true, 32, false),
            Engine::Reference
        );
        assert_eq!(
            choose(CellKind::Gru, false, true, 2, true),
            Engine::PortableRows
        );
        assert_eq!(
            choose(CellKind::Lstm, false, false, 32, false),
            Engine::PortableGemm
        );
        let avx = packed::available();
        let fast = |e| if avx { e } else { Engine::PortableGemm };
        assert_eq!(
            choose(CellKind::Lstm, false, true, 32, false),
            fast(Engine::Lanes)
        );
        assert_eq!(
            choose(CellKind::Lstm, false, true, 32, true),
            fast(Engine::Fused)
        );
        assert_eq!(
            choose(CellKind::Gru, false, true, 32, false),
            fast(Engine::Fused)
        );
        // A batch that fills too little of its vectors stays on the fused loop.
        assert_eq!(
            choose(CellKind::Lstm, false, true, 17, false),
            fast(Engine::Fused)
        );
    }
}
