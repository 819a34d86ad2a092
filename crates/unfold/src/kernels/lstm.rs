//! LSTM cell, PyTorch's formulation, one batch row at a time (the layer loops over rows):
//!
//! ```text
//! [a_i a_f a_g a_o] = x W_ih^T + b_ih + h(t-1) W_hh^T + b_hh      // (4H,)
//! i = σ(a_i)  f = σ(a_f)  g = tanh(a_g)  o = σ(a_o)
//! c(t) = f * c(t-1) + i * g          h(t) = o * tanh(c(t))
//! ```
//!
//! Forward keeps the activated gates (4H) and c(t) (H) per token; backward recomputes tanh(c).
//! Backward turns the gate row into the pre-activation gradients in place, so the same buffer
//! then feeds the weight-gradient GEMMs.

// Indexed loops over several equal-length slices are what the vectoriser handles best.
#![allow(clippy::needless_range_loop)]

use crate::float::Float;

/// Forward of one row. `gates` (4H) holds the pre-activations and receives i, f, g, o.
/// `c` (H) is c(t-1) on entry and c(t) on exit; `h` (H) receives h(t); `out` (H) receives h(t)
/// too (the layer output); `c_store`, when given, receives c(t) for backward.
#[inline(always)]
pub fn forward_row<T: Float>(
    gates: &mut [T],
    c: &mut [T],
    h: &mut [T],
    out: &mut [T],
    c_store: Option<&mut [T]>,
) {
    let hs = c.len();
    let (gi, rest) = gates.split_at_mut(hs);
    let (gf, rest) = rest.split_at_mut(hs);
    let (gg, go) = rest.split_at_mut(hs);
    forward_gates(gi, gf, gg, go, c, h, out);
    if let Some(cs) = c_store {
        cs[..hs].copy_from_slice(c);
    }
}

// Out of line on purpose: as separate `&mut` arguments the slices are known not to alias, which
// is what lets the compiler vectorise the loop (inlined, it would need runtime overlap checks).
#[inline(never)]
pub(crate) fn forward_gates<T: Float>(
    gi: &mut [T],
    gf: &mut [T],
    gg: &mut [T],
    go: &mut [T],
    c: &mut [T],
    h: &mut [T],
    out: &mut [T],
) {
    let hs = c.len();
    let (gi, gf, gg, go) = (&mut gi[..hs], &mut gf[..hs], &mut gg[..hs], &mut go[..hs]);
    let (h, out) = (&mut h[..hs], &mut out[..hs]);
    for j in 0..hs {
        let i = gi[j].sigmoid();
        let f = gf[j].sigmoid();
        let g = gg[j].tanh();
        let o = go[j].sigmoid();
        let cn = f * c[j] + i * g;
        let hn = o * cn.tanh();
        gi[j] = i;
        gf[j] = f;
        gg[j] = g;
        go[j] = o;
        c[j] = cn;
        h[j] = hn;
        out[j] = hn;
    }
}

/// Backward of one row. `gates` holds i, f, g, o and receives the pre-activation gradients;
/// `c_t` is c(t), `c_prev` is c(t-1); `dh` (H) is the total gradient on h(t) (recurrent +
/// output); `dc` (H) is the gradient on c(t) on entry and on c(t-1) on exit.
#[inline(always)]
pub fn backward_row<T: Float>(gates: &mut [T], c_t: &[T], c_prev: &[T], dh: &[T], dc: &mut [T]) {
    let hs = dc.len();
    let (gi, rest) = gates.split_at_mut(hs);
    let (gf, rest) = rest.split_at_mut(hs);
    let (gg, go) = rest.split_at_mut(hs);
    backward_gates(gi, gf, gg, go, c_t, c_prev, dh, dc);
}

#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_gates<T: Float>(
    gi: &mut [T],
    gf: &mut [T],
    gg: &mut [T],
    go: &mut [T],
    c_t: &[T],
    c_prev: &[T],
    dh: &[T],
    dc: &mut [T],
) {
    let hs = dc.len();
    let (gi, gf, gg, go) = (&mut gi[..hs], &mut gf[..hs], &mut gg[..hs], &mut go[..hs]);
    let (c_t, c_prev, dh) = (&c_t[..hs], &c_prev[..hs], &dh[..hs]);
    for j in 0..hs {
        let (i, f, g, o) = (gi[j], gf[j], gg[j], go[j]);
        let tc = c_t[j].tanh();
        let dht = dh[j];
        let d_o = dht * tc;
        let dct = dc[j] + dht * o * (T::ONE - tc * tc);
        let di = dct * g;
        let dg = dct * i;
        let df = dct * c_prev[j];
        dc[j] = dct * f;
        gi[j] = di * i * (T::ONE - i);
        gf[j] = df * f * (T::ONE - f);
        gg[j] = dg * (T::ONE - g * g);
        go[j] = d_o * o * (T::ONE - o);
    }
}
