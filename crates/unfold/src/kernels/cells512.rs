//! The cells' forward element-wise updates in explicit AVX-512 for `f32`, used by the fused
//! time loop (`layers::fused`) right after each block's product.
//!
//! The portable loops in `lstm.rs`, `gru.rs` and `elman.rs` vectorise, but the compiler keeps
//! them at 256 bits on these CPUs and they spend most of their time in five exponentials and
//! five divisions per LSTM unit. Here each function works on 16 lanes with masked tails; e^x
//! uses the same Cephes reduction and polynomial as [`crate::float::exp_f32`] with `vscalefps`
//! for the power of two, and reciprocals use `vrcp14ps` plus one Newton step (relative error
//! about 2^-23). tanh keeps [`crate::float::tanh_f32`]'s odd polynomial below 0.625 so small
//! arguments keep their relative accuracy. Tested against the portable loops.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// e^x on 16 lanes, inputs clamped to [-87.3, 88.3] (NaN stays NaN).
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::excessive_precision)] // Cephes' published coefficients
fn exp16(x: __m512) -> __m512 {
    // vmaxps / vminps return their second operand when either is NaN: x goes second.
    let x = _mm512_min_ps(
        _mm512_set1_ps(88.3),
        _mm512_max_ps(_mm512_set1_ps(-87.3), x),
    );
    // n = round(x log2 e), r = x - n ln 2 (ln 2 in two parts).
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.398_199_9e-3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.333_452e-3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.166_579_6e-2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.666_666_5e-1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.000_000_1e-1));
    let z = _mm512_mul_ps(r, r);
    let e = _mm512_add_ps(_mm512_fmadd_ps(p, z, r), _mm512_set1_ps(1.0));
    _mm512_scalef_ps(e, n)
}

/// 1 / d on 16 lanes: `vrcp14ps` and one Newton step.
#[inline]
#[target_feature(enable = "avx512f")]
fn recip16(d: __m512) -> __m512 {
    let r = _mm512_rcp14_ps(d);
    // r (2 - d r)
    _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)))
}

/// The logistic function on 16 lanes.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn sigmoid16(x: __m512) -> __m512 {
    let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
    recip16(_mm512_add_ps(e, _mm512_set1_ps(1.0)))
}

/// tanh on 16 lanes.
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::excessive_precision)] // Cephes' published coefficients
pub(crate) fn tanh16(x: __m512) -> __m512 {
    let sign = _mm512_set1_epi32(i32::MIN);
    let a = _mm512_castsi512_ps(_mm512_andnot_si512(sign, _mm512_castps_si512(x)));
    let z = _mm512_mul_ps(x, x);
    let mut p = _mm512_set1_ps(-5.704_988_7e-3);
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.063_908_9e-2));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.373_971_6e-2));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.333_144_2e-1));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.333_328_2e-1));
    let small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
    let e = exp16(_mm512_add_ps(a, a));
    let large = _mm512_fnmadd_ps(
        _mm512_set1_ps(2.0),
        recip16(_mm512_add_ps(e, _mm512_set1_ps(1.0))),
        _mm512_set1_ps(1.0),
    );
    let large = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(large),
        _mm512_and_si512(_mm512_castps_si512(x), sign),
    ));
    let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, _mm512_set1_ps(0.625));
    _mm512_mask_blend_ps(is_small, large, small)
}

#[inline]
fn tail_mask(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as __mmask16
    }
}

/// Loads 16 lanes (fewer under a partial mask, the rest zero). Full vectors use a plain load
/// and store: a masked store cannot forward its data to a later load.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load(m: __mmask16, p: *const f32) -> __m512 {
    unsafe {
        if m == 0xffff {
            _mm512_loadu_ps(p)
        } else {
            _mm512_maskz_loadu_ps(m, p)
        }
    }
}

/// Stores the lanes of `m` (see [`load`]).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store(p: *mut f32, m: __mmask16, v: __m512) {
    unsafe {
        if m == 0xffff {
            _mm512_storeu_ps(p, v)
        } else {
            _mm512_mask_storeu_ps(p, m, v)
        }
    }
}

/// LSTM forward of `n` units (see `lstm::forward_gates`): the four gate slices hold the
/// pre-activations and receive i, f, g, o; `c` is c(t-1) in, c(t) out; `h` and `out` receive
/// h(t); `c_copy`, when not null, receives c(t) too (the copy training keeps for backward).
///
/// # Safety
/// AVX-512F must be available; every pointer (but a null `c_copy`) must be valid for `n`
/// values.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn lstm_forward(
    n: usize,
    gi: *mut f32,
    gf: *mut f32,
    gg: *mut f32,
    go: *mut f32,
    c: *mut f32,
    h: *mut f32,
    out: *mut f32,
    c_copy: *mut f32,
) {
    let mut j = 0;
    while j < n {
        let m = tail_mask(n - j);
        unsafe {
            let i = sigmoid16(load(m, gi.add(j)));
            let f = sigmoid16(load(m, gf.add(j)));
            let g = tanh16(load(m, gg.add(j)));
            let o = sigmoid16(load(m, go.add(j)));
            let cn = _mm512_fmadd_ps(f, load(m, c.add(j)), _mm512_mul_ps(i, g));
            let hn = _mm512_mul_ps(o, tanh16(cn));
            store(gi.add(j), m, i);
            store(gf.add(j), m, f);
            store(gg.add(j), m, g);
            store(go.add(j), m, o);
            store(c.add(j), m, cn);
            if !c_copy.is_null() {
                store(c_copy.add(j), m, cn);
            }
            store(h.add(j), m, hn);
            store(out.add(j), m, hn);
        }
        j += 16;
    }
}

/// LSTM backward of `n` units (see `lstm::backward_gates`): the gate slices hold i, f, g, o
/// and receive the pre-activation gradients; `c_t` is c(t) and `c_prev` c(t-1); the gradient
/// on h(t) is `dh` plus `dout` (when not null), and `dh` is zeroed; `dc` is the gradient on
/// c(t) on entry and on c(t-1) on exit.
///
/// # Safety
/// AVX-512F must be available; every pointer (but a null `dout`) must be valid for `n` values.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn lstm_backward(
    n: usize,
    gi: *mut f32,
    gf: *mut f32,
    gg: *mut f32,
    go: *mut f32,
    c_t: *const f32,
    c_prev: *const f32,
    dh: *mut f32,
    dout: *const f32,
    dc: *mut f32,
) {
    let one = _mm512_set1_ps(1.0);
    let mut j = 0;
    while j < n {
        let m = tail_mask(n - j);
        unsafe {
            let ld = |p: *const f32| load(m, p.add(j));
            let (i, f, g, o) = (ld(gi), ld(gf), ld(gg), ld(go));
            let mut dht = ld(dh);
            if !dout.is_null() {
                dht = _mm512_add_ps(dht, ld(dout));
            }
            let tc = tanh16(ld(c_t));
            let d_o = _mm512_mul_ps(dht, tc);
            // dc + dh o (1 - tc^2)
            let dct = _mm512_fmadd_ps(_mm512_mul_ps(dht, o), _mm512_fnmadd_ps(tc, tc, one), ld(dc));
            let di = _mm512_mul_ps(dct, g);
            let dg = _mm512_mul_ps(dct, i);
            let df = _mm512_mul_ps(dct, ld(c_prev));
            store(dc.add(j), m, _mm512_mul_ps(dct, f));
            let dsig =
                |d: __m512, s: __m512| _mm512_mul_ps(_mm512_mul_ps(d, s), _mm512_sub_ps(one, s));
            store(gi.add(j), m, dsig(di, i));
            store(gf.add(j), m, dsig(df, f));
            store(gg.add(j), m, _mm512_mul_ps(dg, _mm512_fnmadd_ps(g, g, one)));
            store(go.add(j), m, dsig(d_o, o));
            store(dh.add(j), m, _mm512_setzero_ps());
        }
        j += 16;
    }
}

/// GRU forward of `n` units (see `gru::forward_gates`): `xr`, `xz`, `xn` hold the input
/// projections and receive r, z, n; `hr`, `hz`, `hn` are the hidden projections; `h` is h(t-1)
/// in, h(t) out; `out` receives h(t).
///
/// # Safety
/// AVX-512F must be available; every pointer must be valid for `n` values.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn gru_forward(
    n: usize,
    xr: *mut f32,
    xz: *mut f32,
    xn: *mut f32,
    hr: *const f32,
    hz: *const f32,
    hn: *const f32,
    h: *mut f32,
    out: *mut f32,
) {
    let mut j = 0;
    while j < n {
        let m = tail_mask(n - j);
        unsafe {
            let ld = |p: *const f32| load(m, p.add(j));
            let r = sigmoid16(_mm512_add_ps(ld(xr), ld(hr)));
            let z = sigmoid16(_mm512_add_ps(ld(xz), ld(hz)));
            let nn = tanh16(_mm512_fmadd_ps(r, ld(hn), ld(xn)));
            // (1 - z) n + z h = n + z (h - n)
            let hnew = _mm512_fmadd_ps(z, _mm512_sub_ps(ld(h), nn), nn);
            store(xr.add(j), m, r);
            store(xz.add(j), m, z);
            store(xn.add(j), m, nn);
            store(h.add(j), m, hnew);
            store(out.add(j), m, hnew);
        }
        j += 16;
    }
}

/// Elman forward of `n` units with tanh (`relu == false`) or ReLU: `a` holds the
/// pre-activations and receives h(t), as do `h` and `out`.
///
/// # Safety
/// AVX-512F must be available; every pointer must be valid for `n` values.
#[target_feature(enable = "avx512f")]
pub unsafe fn elman_forward(n: usize, relu: bool, a: *mut f32, h: *mut f32, out: *mut f32) {
    let mut j = 0;
    while j < n {
        let m = tail_mask(n - j);
        unsafe {
            let x = load(m, a.add(j));
            let y = if relu {
                _mm512_max_ps(x, _mm512_setzero_ps())
            } else {
                tanh16(x)
            };
            store(a.add(j), m, y);
            store(h.add(j), m, y);
            store(out.add(j), m, y);
        }
        j += 16;
    }
}

/// `out[r] (+)= dot(x, w[r, ..k])` (added when `acc`) for `rows` rows of `w` (row stride `ldw`): four rows at a
/// time share each 16-lane load of `x`; a masked load covers `k % 16`. The batch-1 streaming
/// step reads its weights as stored through this.
///
/// # Safety
/// AVX-512F must be available; `x` valid for `k` values, `w` for `rows` rows of `k` (stride
/// `ldw`), `out` for `rows` values.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn dot_rows(
    x: *const f32,
    k: usize,
    w: *const f32,
    ldw: usize,
    rows: usize,
    out: *mut f32,
    acc: bool,
) {
    let full = k / 16;
    let tail = tail_mask(k % 16);
    let mut r = 0;
    unsafe {
        while r + 4 <= rows {
            let (w0, w1, w2, w3) = (
                w.add(r * ldw),
                w.add((r + 1) * ldw),
                w.add((r + 2) * ldw),
                w.add((r + 3) * ldw),
            );
            let mut a = [_mm512_setzero_ps(); 4];
            for c in 0..full {
                let o = c * 16;
                let xv = _mm512_loadu_ps(x.add(o));
                a[0] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w0.add(o)), a[0]);
                a[1] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w1.add(o)), a[1]);
                a[2] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w2.add(o)), a[2]);
                a[3] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w3.add(o)), a[3]);
            }
            if !k.is_multiple_of(16) {
                let o = full * 16;
                let xv = _mm512_maskz_loadu_ps(tail, x.add(o));
                a[0] = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, w0.add(o)), a[0]);
                a[1] = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, w1.add(o)), a[1]);
                a[2] = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, w2.add(o)), a[2]);
                a[3] = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, w3.add(o)), a[3]);
            }
            for (q, v) in a.iter().enumerate() {
                let o = out.add(r + q);
                *o = _mm512_reduce_add_ps(*v) + if acc { *o } else { 0.0 };
            }
            r += 4;
        }
        while r < rows {
            let wr = w.add(r * ldw);
            let mut a = _mm512_setzero_ps();
            for c in 0..full {
                let o = c * 16;
                a = _mm512_fmadd_ps(_mm512_loadu_ps(x.add(o)), _mm512_loadu_ps(wr.add(o)), a);
            }
            if !k.is_multiple_of(16) {
                let o = full * 16;
                let xv = _mm512_maskz_loadu_ps(tail, x.add(o));
                a = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(tail, wr.add(o)), a);
            }
            let o = out.add(r);
            *o = _mm512_reduce_add_ps(a) + if acc { *o } else { 0.0 };
            r += 1;
        }
    }
}

/// tanh on 8 `f64` lanes: [`crate::float::tanh_f64`]'s formula (`N / (N + 2 d)` from the
/// exponential's Pade pieces of `2|x|`, sign restored) with the division done as `vrcp14pd`
/// and two Newton steps (relative error about 2^-56). NaN stays NaN.
#[inline]
#[target_feature(enable = "avx512f")]
#[allow(clippy::excessive_precision)] // Cephes' published coefficients, as in float.rs
fn tanh8_f64(x: __m512d) -> __m512d {
    let sign = _mm512_set1_epi64(i64::MIN);
    let ax = _mm512_castsi512_pd(_mm512_andnot_si512(sign, _mm512_castpd_si512(x)));
    // min(40, y) keeps a NaN y (the second operand wins when either is NaN).
    let y = _mm512_min_pd(_mm512_set1_pd(40.0), _mm512_add_pd(ax, ax));
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let t = _mm512_fmadd_pd(
        y,
        _mm512_set1_pd(std::f64::consts::LOG2_E),
        _mm512_set1_pd(ROUND),
    );
    let n = _mm512_sub_pd(t, _mm512_set1_pd(ROUND));
    let ni = _mm512_sub_epi64(
        _mm512_castpd_si512(t),
        _mm512_set1_epi64(ROUND.to_bits() as i64),
    );
    let r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.931_457_519_531_25e-1), y);
    let r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.428_606_820_309_417_232_12e-6), r);
    let z = _mm512_mul_pd(r, r);
    let mut px = _mm512_fmadd_pd(
        _mm512_set1_pd(1.261_771_930_748_105_908_78e-4),
        z,
        _mm512_set1_pd(3.029_944_077_074_419_613_00e-2),
    );
    px = _mm512_fmadd_pd(px, z, _mm512_set1_pd(9.999_999_999_999_999_999_10e-1));
    px = _mm512_mul_pd(px, r);
    let mut qx = _mm512_fmadd_pd(
        _mm512_set1_pd(3.001_985_051_386_644_550_42e-6),
        z,
        _mm512_set1_pd(2.524_483_403_496_841_041_92e-3),
    );
    qx = _mm512_fmadd_pd(qx, z, _mm512_set1_pd(2.272_655_482_081_550_287_66e-1));
    qx = _mm512_fmadd_pd(qx, z, _mm512_set1_pd(2.000_000_000_000_000_000_09));
    let d = _mm512_sub_pd(qx, px);
    let scale = _mm512_castsi512_pd(_mm512_slli_epi64::<52>(_mm512_add_epi64(
        ni,
        _mm512_set1_epi64(1023),
    )));
    // N = 2 scale p + (scale - 1) d;  tanh |x| = N / (N + 2 d).
    let num = _mm512_fmadd_pd(
        _mm512_add_pd(scale, scale),
        px,
        _mm512_mul_pd(_mm512_sub_pd(scale, _mm512_set1_pd(1.0)), d),
    );
    let den = _mm512_fmadd_pd(_mm512_set1_pd(2.0), d, num);
    let two = _mm512_set1_pd(2.0);
    let mut q = _mm512_rcp14_pd(den);
    q = _mm512_mul_pd(q, _mm512_fnmadd_pd(den, q, two));
    q = _mm512_mul_pd(q, _mm512_fnmadd_pd(den, q, two));
    let th = _mm512_mul_pd(num, q);
    _mm512_castsi512_pd(_mm512_or_si512(
        _mm512_castpd_si512(th),
        _mm512_and_si512(_mm512_castpd_si512(x), sign),
    ))
}

/// The leaky tanh update of reservoir units, `x <- (1 - a) x + a tanh(pre)`, 8 lanes at a
/// time (`x = tanh(pre)` when `a == 1`).
///
/// # Safety
/// The CPU must have AVX-512F; `pre` holds at least `x.len()` values.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn leaky_tanh_f64(x: &mut [f64], pre: &[f64], a: f64) {
    let n = x.len();
    assert!(pre.len() >= n);
    let (xp, pp) = (x.as_mut_ptr(), pre.as_ptr());
    let (av, keep) = (_mm512_set1_pd(a), _mm512_set1_pd(1.0 - a));
    let mut i = 0;
    while i < n {
        let m: __mmask8 = if n - i >= 8 {
            0xff
        } else {
            (1u8 << (n - i)) - 1
        };
        let th = tanh8_f64(_mm512_maskz_loadu_pd(m, pp.add(i)));
        let v = if a == 1.0 {
            th
        } else {
            let old = _mm512_maskz_loadu_pd(m, xp.add(i));
            _mm512_fmadd_pd(keep, old, _mm512_mul_pd(av, th))
        };
        _mm512_mask_storeu_pd(xp.add(i), m, v);
        i += 8;
    }
}

/// The logistic function of every value of `x`, in place.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn sigmoid_in_place(x: &mut [f32]) {
    let (n, p) = (x.len(), x.as_mut_ptr());
    let mut j = 0;
    while j < n {
        let m = tail_mask(n - j);
        unsafe { store(p.add(j), m, sigmoid16(load(m, p.add(j)))) };
        j += 16;
    }
}

/// tanh of every value of `x`, in place.
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn tanh_in_place(x: &mut [f32]) {
    let (n, p) = (x.len(), x.as_mut_ptr());
    let mut j = 0;
    while j < n {
        let m = tail_mask(n - j);
        unsafe { store(p.add(j), m, tanh16(load(m, p.add(j)))) };
        j += 16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{elman, gru, lstm};
    use crate::rng::Rng;

    fn close(a: &[f32], b: &[f32], what: &str) {
        for (k, (&x, &y)) in a.iter().zip(b).enumerate() {
            let tol = 4e-7 * (1.0 + y.abs());
            assert!((x - y).abs() <= tol, "{what}[{k}]: {x} vs {y}");
        }
    }

    /// Multi-row dot products against a plain loop: row counts with and without a remainder of
    /// four, lengths with and without a masked tail, both modes.
    #[test]
    fn dot_rows_matches_reference() {
        if !crate::kernels::packed::available() {
            return;
        }
        let mut r = Rng::new(4);
        for &(rows, k) in &[(1usize, 1usize), (4, 16), (7, 33), (13, 100), (8, 256)] {
            let ldw = k + 3;
            let x: Vec<f32> = (0..k).map(|_| r.uniform_range(-1.0, 1.0) as f32).collect();
            let w: Vec<f32> = (0..rows * ldw)
                .map(|_| r.uniform_range(-1.0, 1.0) as f32)
                .collect();
            for acc in [false, true] {
                let mut out: Vec<f32> = (0..rows).map(|i| i as f32).collect();
                unsafe { dot_rows(x.as_ptr(), k, w.as_ptr(), ldw, rows, out.as_mut_ptr(), acc) };
                for (i, &o) in out.iter().enumerate() {
                    let mut e = if acc { i as f64 } else { 0.0 };
                    for j in 0..k {
                        e += x[j] as f64 * w[i * ldw + j] as f64;
                    }
                    assert!(
                        (o as f64 - e).abs() < 1e-4,
                        "rows {rows} k {k} row {i}: {o} vs {e}"
                    );
                }
            }
        }
    }

    /// The LSTM backward equals the portable loop's (within a few ulp) with and without an
    /// output gradient, on widths with and without a masked tail; `dh` is left zero.
    #[test]
    fn lstm_backward_matches_portable_loop() {
        if !crate::kernels::packed::available() {
            return;
        }
        let mut r = Rng::new(12);
        for n in [1usize, 16, 21, 45] {
            let mut v = |lo: f64, hi: f64| -> Vec<f32> {
                (0..n).map(|_| r.uniform_range(lo, hi) as f32).collect()
            };
            // Gates as the forward leaves them: sigmoids in (0, 1), tanh in (-1, 1).
            let gates = [v(0.0, 1.0), v(0.0, 1.0), v(-1.0, 1.0), v(0.0, 1.0)];
            let (c_t, c_prev) = (v(-3.0, 3.0), v(-3.0, 3.0));
            let (dh, dout, dc) = (v(-1.0, 1.0), v(-1.0, 1.0), v(-1.0, 1.0));
            for with_out in [false, true] {
                let mut want = gates.clone();
                let mut dh_total = dh.clone();
                if with_out {
                    for (a, &b) in dh_total.iter_mut().zip(&dout) {
                        *a += b;
                    }
                }
                let mut dc_want = dc.clone();
                {
                    let [a, b, c, d] = &mut want;
                    lstm::backward_gates(a, b, c, d, &c_t, &c_prev, &dh_total, &mut dc_want);
                }
                let mut got = gates.clone();
                let (mut dh_got, mut dc_got) = (dh.clone(), dc.clone());
                let dout_ptr = if with_out {
                    dout.as_ptr()
                } else {
                    std::ptr::null()
                };
                let [a, b, c, d] = &mut got;
                unsafe {
                    lstm_backward(
                        n,
                        a.as_mut_ptr(),
                        b.as_mut_ptr(),
                        c.as_mut_ptr(),
                        d.as_mut_ptr(),
                        c_t.as_ptr(),
                        c_prev.as_ptr(),
                        dh_got.as_mut_ptr(),
                        dout_ptr,
                        dc_got.as_mut_ptr(),
                    )
                };
                for q in 0..4 {
                    close(&got[q], &want[q], "lstm gate gradient");
                }
                close(&dc_got, &dc_want, "lstm dc");
                assert!(dh_got.iter().all(|&x| x == 0.0), "dh not cleared");
            }
        }
    }

    /// Each update equals the portable loop's (same formulas, within a few ulp), on widths
    /// with and without a masked tail, over arguments from -20 to 20.
    #[test]
    fn cells_match_portable_loops() {
        if !crate::kernels::packed::available() {
            return;
        }
        let mut r = Rng::new(9);
        for n in [1usize, 16, 21, 32, 45] {
            let v = |r: &mut Rng, s: f64| -> Vec<f32> {
                (0..n)
                    .map(|_| (r.uniform_range(-1.0, 1.0) * s) as f32)
                    .collect()
            };
            for scale in [0.3, 3.0, 20.0] {
                // LSTM
                let (g0, c0) = (v(&mut r, scale), v(&mut r, 2.0));
                let (g1, g2, g3) = (v(&mut r, scale), v(&mut r, scale), v(&mut r, scale));
                let mut a = [g0.clone(), g1.clone(), g2.clone(), g3.clone()];
                let (mut ca, mut ha, mut oa) = (c0.clone(), vec![0.0; n], vec![0.0; n]);
                let mut b = a.clone();
                let (mut cb, mut hb, mut ob) = (c0.clone(), vec![0.0; n], vec![0.0; n]);
                let mut c_copy = vec![0.0f32; n];
                {
                    let [x0, x1, x2, x3] = &mut a;
                    lstm::forward_gates(x0, x1, x2, x3, &mut ca, &mut ha, &mut oa);
                }
                let [y0, y1, y2, y3] = &mut b;
                unsafe {
                    lstm_forward(
                        n,
                        y0.as_mut_ptr(),
                        y1.as_mut_ptr(),
                        y2.as_mut_ptr(),
                        y3.as_mut_ptr(),
                        cb.as_mut_ptr(),
                        hb.as_mut_ptr(),
                        ob.as_mut_ptr(),
                        c_copy.as_mut_ptr(),
                    )
                };
                for q in 0..4 {
                    close(&b[q], &a[q], "lstm gate");
                }
                close(&cb, &ca, "lstm c");
                assert_eq!(c_copy, cb, "lstm c copy");
                close(&hb, &ha, "lstm h");
                close(&ob, &oa, "lstm out");
                // GRU
                let x: Vec<Vec<f32>> = (0..3).map(|_| v(&mut r, scale)).collect();
                let hpj: Vec<Vec<f32>> = (0..3).map(|_| v(&mut r, scale)).collect();
                let h0 = v(&mut r, 1.0);
                let mut xa = x.clone();
                let (mut ha, mut oa) = (h0.clone(), vec![0.0; n]);
                {
                    let (xr, rest) = xa.split_at_mut(1);
                    let (xz, xn) = rest.split_at_mut(1);
                    gru::forward_gates(
                        &mut xr[0], &mut xz[0], &mut xn[0], &hpj[0], &hpj[1], &hpj[2], &mut ha,
                        &mut oa,
                    );
                }
                let mut xb = x.clone();
                let (mut hb, mut ob) = (h0.clone(), vec![0.0; n]);
                unsafe {
                    gru_forward(
                        n,
                        xb[0].as_mut_ptr(),
                        xb[1].as_mut_ptr(),
                        xb[2].as_mut_ptr(),
                        hpj[0].as_ptr(),
                        hpj[1].as_ptr(),
                        hpj[2].as_ptr(),
                        hb.as_mut_ptr(),
                        ob.as_mut_ptr(),
                    )
                };
                for q in 0..3 {
                    close(&xb[q], &xa[q], "gru gate");
                }
                close(&hb, &ha, "gru h");
                close(&ob, &oa, "gru out");
                // Elman
                for (relu, act) in [
                    (false, elman::Activation::Tanh),
                    (true, elman::Activation::Relu),
                ] {
                    let pre = v(&mut r, scale);
                    let (mut aa, mut ha, mut oa) = (pre.clone(), vec![0.0; n], vec![0.0; n]);
                    elman::forward_row(act, &mut aa, &mut ha, &mut oa);
                    let (mut ab, mut hb, mut ob) = (pre.clone(), vec![0.0; n], vec![0.0; n]);
                    unsafe {
                        elman_forward(n, relu, ab.as_mut_ptr(), hb.as_mut_ptr(), ob.as_mut_ptr())
                    };
                    close(&ab, &aa, "elman a");
                    close(&hb, &ha, "elman h");
                    close(&ob, &oa, "elman out");
                }
            }
        }
        // NaN stays NaN (a diverging run must be seen), as in the portable loops.
        let mut a = vec![f32::NAN; 3];
        let (mut h, mut o) = (vec![0.0; 3], vec![0.0; 3]);
        unsafe { elman_forward(3, false, a.as_mut_ptr(), h.as_mut_ptr(), o.as_mut_ptr()) };
        assert!(h.iter().all(|v| v.is_nan()), "tanh(NaN) = {h:?}");
        let mut g = [vec![f32::NAN; 2], vec![0.0; 2], vec![0.0; 2], vec![0.0; 2]];
        let (mut c, mut h) = (vec![0.0f32; 2], vec![0.0f32; 2]);
        let mut o = vec![0.0f32; 2];
        {
            let [g0, g1, g2, g3] = &mut g;
            unsafe {
                lstm_forward(
                    2,
                    g0.as_mut_ptr(),
                    g1.as_mut_ptr(),
                    g2.as_mut_ptr(),
                    g3.as_mut_ptr(),
                    c.as_mut_ptr(),
                    h.as_mut_ptr(),
                    o.as_mut_ptr(),
                    std::ptr::null_mut(),
                )
            };
        }
        assert!(
            c.iter().chain(&h).all(|v| v.is_nan()),
            "LSTM with a NaN gate: {c:?} {h:?}"
        );
        // tanh near zero keeps its relative accuracy; extreme arguments saturate.
        let xs = [1e-6f32, -3e-5, 0.1, 0.6249, 0.6251, -5.0, 40.0, -100.0];
        let mut a = xs.to_vec();
        let (mut h, mut o) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        unsafe {
            elman_forward(
                xs.len(),
                false,
                a.as_mut_ptr(),
                h.as_mut_ptr(),
                o.as_mut_ptr(),
            )
        };
        for (&x, &y) in xs.iter().zip(&a) {
            let e = (x as f64).tanh();
            assert!(
                ((y as f64) - e).abs() <= 3e-7 * e.abs().max(1e-30),
                "tanh({x}) = {y}, want {e}"
            );
        }
    }
    #[test]
    fn leaky_tanh_f64_matches_the_scalar_update() {
        if !crate::kernels::packed::available() {
            return;
        }
        let ulp = |a: f64, b: f64| {
            let u = b.abs().max(f64::MIN_POSITIVE);
            (a - b).abs() / (f64::from_bits(u.to_bits() + 1) - u)
        };
        let mut pre: Vec<f64> = (0..20_001).map(|i| -25.0 + i as f64 * 0.0025).collect();
        pre.extend([1e-300, -1e-12, 3e-5, 700.0, -700.0, 0.0, f64::NAN]);
        for a in [1.0, 0.3] {
            let x0: Vec<f64> = (0..pre.len())
                .map(|i| ((i % 7) as f64 - 3.0) * 0.1)
                .collect();
            let mut x = x0.clone();
            unsafe { leaky_tanh_f64(&mut x, &pre, a) };
            let mut worst = 0.0f64;
            for i in 0..pre.len() {
                if pre[i].is_nan() {
                    assert!(x[i].is_nan());
                    continue;
                }
                if a == 1.0 {
                    worst = worst.max(ulp(x[i], pre[i].tanh()));
                } else {
                    let want = (1.0 - a) * x0[i] + a * pre[i].tanh();
                    assert!(
                        (x[i] - want).abs() <= 4e-16 * (1.0 + want.abs()),
                        "{}",
                        pre[i]
                    );
                }
            }
            assert!(worst <= 4.0, "tanh worst {worst} ulp");
        }
    }
}
