//! Elman (vanilla) RNN cell, the chapter's pattern-I recurrence, one batch row at a time:
//!
//! ```text
//! a = x W_ih^T + b_ih + h(t-1) W_hh^T + b_hh        h(t) = tanh(a)  or  relu(a)
//! ```
//!
//! Forward keeps nothing beyond h(t) itself: the derivative of both activations is a function
//! of the output (1 - h^2 for tanh, `[h > 0]` for ReLU).

// Indexed loops over several equal-length slices are what the vectoriser handles best.
#![allow(clippy::needless_range_loop)]

use crate::float::Float;

/// The activation of an Elman cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Hyperbolic tangent.
    Tanh,
    /// Rectified linear unit.
    Relu,
}

/// Forward of one row: `a` (H) holds the pre-activation and receives h(t); `h` and `out`
/// receive h(t).
#[inline(never)]
pub fn forward_row<T: Float>(act: Activation, a: &mut [T], h: &mut [T], out: &mut [T]) {
    let hs = h.len();
    let (a, out) = (&mut a[..hs], &mut out[..hs]);
    match act {
        Activation::Tanh => {
            for j in 0..hs {
                a[j] = a[j].tanh();
            }
        }
        Activation::Relu => {
            for j in 0..hs {
                a[j] = a[j].relu();
            }
        }
    }
    h.copy_from_slice(a);
    out.copy_from_slice(a);
}

/// Backward of one row: `h_t` is h(t), `dh` the total gradient on it; `da` receives the
/// pre-activation gradient.
#[inline(never)]
pub fn backward_row<T: Float>(act: Activation, h_t: &[T], dh: &[T], da: &mut [T]) {
    let hs = da.len();
    let (h_t, dh) = (&h_t[..hs], &dh[..hs]);
    match act {
        Activation::Tanh => {
            for j in 0..hs {
                da[j] = dh[j] * (T::ONE - h_t[j] * h_t[j]);
            }
        }
        Activation::Relu => {
            for j in 0..hs {
                da[j] = if h_t[j] > T::ZERO { dh[j] } else { T::ZERO };
            }
        }
    }
}
