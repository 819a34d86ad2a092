//! GRU cell, PyTorch's formulation, one batch row at a time:
//!
//! ```text
//! [x_r x_z x_n] = x W_ih^T + b_ih          [h_r h_z h_n] = h(t-1) W_hh^T + b_hh
//! r = σ(x_r + h_r)   z = σ(x_z + h_z)   n = tanh(x_n + r * h_n)
//! h(t) = (1 - z) * n + z * h(t-1)
//! ```
//!
//! Forward keeps r, z, n (3H) and h_n (H) per token. Because r multiplies h_n, the gradient
//! reaching the hidden projection differs from the one reaching the input projection in the n
//! block: backward writes both (`dxp` in place of the gates, `dhp` for the recurrent GEMM).

// Indexed loops over several equal-length slices are what the vectoriser handles best.
#![allow(clippy::needless_range_loop)]

use crate::float::Float;

/// Forward of one row. `xp` (3H) holds the input projection and receives r, z, n; `hp` (3H) is
/// the hidden projection; `h` (H) is h(t-1) on entry and h(t) on exit; `out` receives h(t);
/// `hn_store`, when given, receives h_n for backward.
#[inline(always)]
pub fn forward_row<T: Float>(
    xp: &mut [T],
    hp: &[T],
    h: &mut [T],
    out: &mut [T],
    hn_store: Option<&mut [T]>,
) {
    let hs = h.len();
    let (xr, rest) = xp.split_at_mut(hs);
    let (xz, xn) = rest.split_at_mut(hs);
    let (hr, rest) = hp.split_at(hs);
    let (hz, hn) = rest.split_at(hs);
    forward_gates(xr, xz, xn, hr, hz, hn, h, out);
    if let Some(s) = hn_store {
        s[..hs].copy_from_slice(&hn[..hs]);
    }
}

// Out of line so the separate `&mut` arguments are known not to alias (see lstm.rs).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_gates<T: Float>(
    xr: &mut [T],
    xz: &mut [T],
    xn: &mut [T],
    hr: &[T],
    hz: &[T],
    hn: &[T],
    h: &mut [T],
    out: &mut [T],
) {
    let hs = h.len();
    let (xr, xz, xn) = (&mut xr[..hs], &mut xz[..hs], &mut xn[..hs]);
    let (hr, hz, hn, out) = (&hr[..hs], &hz[..hs], &hn[..hs], &mut out[..hs]);
    for j in 0..hs {
        let r = (xr[j] + hr[j]).sigmoid();
        let z = (xz[j] + hz[j]).sigmoid();
        let n = (xn[j] + r * hn[j]).tanh();
        let hnew = (T::ONE - z) * n + z * h[j];
        xr[j] = r;
        xz[j] = z;
        xn[j] = n;
        h[j] = hnew;
        out[j] = hnew;
    }
}

/// Backward of one row. `gates` holds r, z, n and receives the input-projection gradients;
/// `hn` holds h_n and receives the gradient on h_n's pre-activation (`d a_n * r`); `dhp` (3H)
/// receives the hidden-projection gradients; `h_prev` is h(t-1); `dh` (H) is the total gradient
/// on h(t) on entry and the direct part of the gradient on h(t-1) (`dh * z`) on exit.
#[inline(always)]
pub fn backward_row<T: Float>(
    gates: &mut [T],
    hn: &mut [T],
    dhp: &mut [T],
    h_prev: &[T],
    dh: &mut [T],
) {
    let hs = dh.len();
    let (gr, rest) = gates.split_at_mut(hs);
    let (gz, gn) = rest.split_at_mut(hs);
    let (pr, rest) = dhp.split_at_mut(hs);
    let (pz, pn) = rest.split_at_mut(hs);
    backward_gates(gr, gz, gn, hn, pr, pz, pn, h_prev, dh);
}

#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_gates<T: Float>(
    gr: &mut [T],
    gz: &mut [T],
    gn: &mut [T],
    hn: &mut [T],
    pr: &mut [T],
    pz: &mut [T],
    pn: &mut [T],
    h_prev: &[T],
    dh: &mut [T],
) {
    let hs = dh.len();
    let (gr, gz, gn, hn) = (&mut gr[..hs], &mut gz[..hs], &mut gn[..hs], &mut hn[..hs]);
    let (pr, pz, pn, h_prev) = (&mut pr[..hs], &mut pz[..hs], &mut pn[..hs], &h_prev[..hs]);
    for j in 0..hs {
        let (r, z, n) = (gr[j], gz[j], gn[j]);
        let d = dh[j];
        let dn = d * (T::ONE - z);
        let dz = d * (h_prev[j] - n);
        dh[j] = d * z;
        let dan = dn * (T::ONE - n * n);
        let daz = dz * z * (T::ONE - z);
        let dar = dan * hn[j] * r * (T::ONE - r);
        let dhn = dan * r;
        gr[j] = dar;
        gz[j] = daz;
        gn[j] = dan;
        pr[j] = dar;
        pz[j] = daz;
        pn[j] = dhn;
        hn[j] = dhn;
    }
}
