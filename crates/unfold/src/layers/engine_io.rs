//! What the engines of the PyTorch cells share: the buffers of one direction's backward
//! ([`BackwardBufs`]) and the views of generic buffers as `f32` through which the generic layer
//! reaches the `f32` AVX-512 loops. A module of its own so that the portable engine
//! (`direction.rs`) and the fused loops (`fused.rs`) each import it and not each other.

use std::any::TypeId;

use crate::float::Float;
use crate::layers::params::CellParams;

/// Buffers of one direction's backward (all borrowed from the layer's cache).
pub(crate) struct BackwardBufs<'a, T> {
    /// `[T*B, I]` this layer's input.
    pub x: &'a [T],
    /// `[T*B, G*H]` forward gates on entry, pre-activation gradients on exit.
    pub gates: &'a mut [T],
    /// `[T*B, H]` c(t) (LSTM) or h_n (GRU; becomes its gradient); unused otherwise.
    pub store: &'a mut [T],
    /// This direction's outputs (row stride `out_ld`).
    pub out: &'a [T],
    /// Gradient on this direction's outputs (row stride `out_ld`), if any.
    pub dout: Option<&'a [T]>,
    /// Row stride of `out` and `dout`.
    pub out_ld: usize,
    /// `[B, H]` initial h and c.
    pub h0: &'a [T],
    /// `[B, H]` initial c (LSTM only).
    pub c0: &'a [T],
    /// `[B, H]` gradient on the final h (c) on entry, on the initial h (c) on exit.
    pub dh: &'a mut [T],
    /// See `dh`.
    pub dc: &'a mut [T],
    /// `[B, G*H]` scratch for the hidden-projection gradient of one step (GRU); the fused
    /// path keeps two steps', `[2, B, G*H]`.
    pub ws: &'a mut [T],
    /// `[B, G*H]` scratch: each sequence's hidden-projection gradient at its first step.
    pub first: &'a mut [T],
    /// Scratch for the fused path (`fused::state_len(B * H)`; may be empty otherwise).
    pub scratch: &'a mut [T],
    /// `[G*H]` scratch for the bias gradients' sum over the sequence.
    pub sums: &'a mut [T],
}

impl<T: Float> BackwardBufs<'_, T> {
    /// The same buffers seen as `f32`, when `T` is `f32`.
    pub(crate) fn as_f32(&mut self) -> Option<BackwardBufs<'_, f32>> {
        fn m<T: Float>(s: &mut [T]) -> &mut [f32] {
            as_f32_mut(s).expect("T is f32")
        }
        Some(BackwardBufs {
            x: as_f32(self.x)?,
            gates: m(self.gates),
            store: m(self.store),
            out: as_f32(self.out)?,
            dout: self.dout.and_then(as_f32),
            out_ld: self.out_ld,
            h0: as_f32(self.h0)?,
            c0: as_f32(self.c0)?,
            dh: m(self.dh),
            dc: m(self.dc),
            ws: m(self.ws),
            first: m(self.first),
            scratch: m(self.scratch),
            sums: m(self.sums),
        })
    }
}

/// The buffers of one direction's forward on an engine (borrowed from the layer's cache or
/// workspace).
pub(crate) struct ForwardBufs<'a, T> {
    /// `[T*B, I]` input.
    pub x: &'a [T],
    /// `[T*B, G*H]` receives the (activated) gates.
    pub gates: &'a mut [T],
    /// `[T*B, H]` c(t) (LSTM) or h_n (GRU) for backward; `None` in inference.
    pub store: Option<&'a mut [T]>,
    /// This direction's output columns, row stride `out_ld` (`[T*B, H]` view).
    pub out: &'a mut [T],
    /// Row stride of `out`.
    pub out_ld: usize,
    /// `[B, H]` h: the initial state on entry, the final state on exit.
    pub h: &'a mut [T],
    /// `[B, H]` c (LSTM; empty otherwise), likewise.
    pub c: &'a mut [T],
    /// `[B, G*H]` scratch.
    pub hp: &'a mut [T],
    /// Scratch for the fused path's private state copies (`fused::state_len(B * H)`; unused,
    /// and may be empty, on the other paths).
    pub h2: &'a mut [T],
}

impl<'a, T: Float> ForwardBufs<'a, T> {
    /// The same buffers seen as `f32`, when `T` is `f32`.
    pub(crate) fn into_f32(self) -> Option<ForwardBufs<'a, f32>> {
        if TypeId::of::<T>() != TypeId::of::<f32>() {
            return None;
        }
        // SAFETY: T is f32, so every cast is to the same type.
        unsafe {
            Some(ForwardBufs {
                x: std::slice::from_raw_parts(self.x.as_ptr() as *const f32, self.x.len()),
                gates: cast_mut(self.gates),
                store: self.store.map(|s| cast_mut(s)),
                out: cast_mut(self.out),
                out_ld: self.out_ld,
                h: cast_mut(self.h),
                c: cast_mut(self.c),
                hp: cast_mut(self.hp),
                h2: cast_mut(self.h2),
            })
        }
    }
}

/// A cell's parameters seen as `f32`, when `T` is `f32`.
pub(crate) fn params_f32<T: Float>(p: &CellParams<T>) -> Option<&CellParams<f32>> {
    // SAFETY: same type.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { &*(p as *const CellParams<T> as *const CellParams<f32>) })
}

/// `&[T]` as `&[f32]` when `T` is `f32`.
pub(crate) fn as_f32<T: Float>(s: &[T]) -> Option<&[f32]> {
    // SAFETY: same type.
    (TypeId::of::<T>() == TypeId::of::<f32>())
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr() as *const f32, s.len()) })
}

/// `&mut [T]` as `&mut [f32]` when `T` is `f32`.
pub(crate) fn as_f32_mut<T: Float>(s: &mut [T]) -> Option<&mut [f32]> {
    // SAFETY: same type.
    (TypeId::of::<T>() == TypeId::of::<f32>()).then(|| unsafe { cast_mut(s) })
}

/// # Safety
/// `T` must be `f32`.
unsafe fn cast_mut<T>(s: &mut [T]) -> &mut [f32] {
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut f32, s.len()) }
}

/// One direction's output columns inside an output buffer that another thread writes too
/// (the other direction's columns): a raw pointer to `len` values with row stride `ld`, so
/// that the two directions of a bidirectional layer run at once on one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SharedColumns<T> {
    /// The first value of this direction's first row.
    pub ptr: *mut T,
    /// How many values may be reached from `ptr`.
    pub len: usize,
    /// Row stride.
    pub ld: usize,
}

// SAFETY: a `SharedColumns` is only created over a buffer that outlives the threads using
// it, and each direction writes only its own columns (see `forward_lanes`).
unsafe impl<T> Send for SharedColumns<T> {}
unsafe impl<T> Sync for SharedColumns<T> {}
