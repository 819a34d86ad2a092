//! A hand-written AVX-512 product for the recurrent matrices, on weights packed once per call.
//!
//! The per-step product of a recurrent layer, `c[B, N] (+)= a[B, K] @ W`, has few rows (the
//! batch) and reuses the same `W` at every step. General-purpose GEMMs repack `W` at each call
//! and split the work in ways that suit large squares; here `W` is packed once into column
//! panels of [`NR`] = 32 columns (`panel[k][0..32]`, 64-byte aligned, zero-padded), and a
//! register-blocked micro-kernel computes 8 rows x 32 columns at a time (16 accumulators, two
//! vector loads and eight broadcast FMAs per `k`). A caller chooses which panels to compute,
//! so one thread can own all the gate columns of a block of hidden units and apply the gate
//! nonlinearities right after its product (see `layers::fused`).
//!
//! Only `f32` on x86-64 with AVX-512F; [`available`] says whether this machine has it. Other
//! cases use the `gemm` crate path.

/// Columns per packed panel: two 16-lane vectors.
pub const NR: usize = 32;

/// Rows per micro-kernel tile.
#[cfg(target_arch = "x86_64")]
const MR: usize = 8;

/// Whether the packed AVX-512 kernel runs on this machine (checked once). Setting the
/// environment variable `UNFOLD_NO_AVX512` turns it off (for comparisons and tests of the
/// portable path).
pub fn available() -> bool {
    use std::sync::OnceLock;
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if std::env::var_os("UNFOLD_NO_AVX512").is_some() {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// A matrix `B[K, N]` stored as column panels of [`NR`] columns; which columns each panel
/// holds is the packer's choice (see [`PackedPanels::pack`]).
#[derive(Debug, Default, Clone)]
pub struct PackedPanels {
    data: Vec<f32>,
    /// Offset of the first panel in `data` (64-byte alignment).
    start: usize,
    k: usize,
    panels: usize,
}

impl PackedPanels {
    /// Packs `panels` panels of depth `k`: panel `p` column `j` row `kk` is `get(p, j, kk)`,
    /// with `j < width(p)`; columns past the width are zero. Reuses the buffer.
    pub fn pack(
        &mut self,
        k: usize,
        panels: usize,
        width: impl Fn(usize) -> usize,
        get: impl Fn(usize, usize, usize) -> f32,
    ) {
        let len = panels * k * NR;
        self.data.clear();
        self.data.resize(len + 16, 0.0);
        let addr = self.data.as_ptr() as usize;
        self.start = (addr.next_multiple_of(64) - addr) / 4;
        self.k = k;
        self.panels = panels;
        for p in 0..panels {
            let w = width(p).min(NR);
            let base = self.start + p * k * NR;
            for kk in 0..k {
                let row = &mut self.data[base + kk * NR..base + kk * NR + NR];
                for (j, v) in row.iter_mut().enumerate() {
                    *v = if j < w { get(p, j, kk) } else { 0.0 };
                }
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.capacity() * 4
    }

    /// Depth (rows of B).
    pub fn depth(&self) -> usize {
        self.k
    }

    /// Number of panels.
    pub fn panels(&self) -> usize {
        self.panels
    }

    /// The packed data of panel `p` (`[K, NR]`).
    pub fn panel(&self, p: usize) -> &[f32] {
        assert!(p < self.panels, "panel {p} of {}", self.panels);
        let base = self.start + p * self.k * NR;
        &self.data[base..base + self.k * NR]
    }
}

/// `c[m, 0..width] (+)= a[m, 0..k] @ panel` with `a` and `c` row-major with strides `lda` and
/// `ldc`; `width <= NR` columns of `c` are written, nothing else.
///
/// # Safety
/// [`available`] must be true; `a` must be valid for `m` rows of `k` (stride `lda`), `c` for
/// `m` rows of `width` (stride `ldc`), and `panel` must hold `k * NR` values.
#[allow(clippy::too_many_arguments)]
pub unsafe fn panel_product(
    m: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    panel: &[f32],
    width: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
) {
    unsafe { product(m, k, a, lda, panel, width, c, ldc, acc, std::ptr::null()) }
}

/// `c[m, 0..width] = init[0..width] + a[m, 0..k] @ panel`: [`panel_product`] with every row's
/// sums starting from `init` (a bias) in registers, instead of a pass writing the bias into
/// `c` and a product reading it back.
///
/// # Safety
/// As for [`panel_product`]; `init` must hold `width` values.
#[allow(clippy::too_many_arguments)]
pub unsafe fn panel_product_init(
    m: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    panel: &[f32],
    width: usize,
    c: *mut f32,
    ldc: usize,
    init: &[f32],
) {
    assert!(init.len() >= width, "bias shorter than the width");
    unsafe { product(m, k, a, lda, panel, width, c, ldc, false, init.as_ptr()) }
}

#[allow(clippy::too_many_arguments)]
unsafe fn product(
    m: usize,
    k: usize,
    a: *const f32,
    lda: usize,
    panel: &[f32],
    width: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
    init: *const f32,
) {
    debug_assert!(panel.len() >= k * NR && width <= NR);
    #[cfg(target_arch = "x86_64")]
    unsafe {
        let b = panel.as_ptr();
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(MR);
            let (ai, ci) = (a.add(i * lda), c.add(i * ldc));
            match rows {
                12 => tile::<12>(k, ai, lda, b, ci, ldc, width, acc, init),
                11 => tile::<11>(k, ai, lda, b, ci, ldc, width, acc, init),
                10 => tile::<10>(k, ai, lda, b, ci, ldc, width, acc, init),
                9 => tile::<9>(k, ai, lda, b, ci, ldc, width, acc, init),
                8 => tile::<8>(k, ai, lda, b, ci, ldc, width, acc, init),
                7 => tile::<7>(k, ai, lda, b, ci, ldc, width, acc, init),
                6 => tile::<6>(k, ai, lda, b, ci, ldc, width, acc, init),
                5 => tile::<5>(k, ai, lda, b, ci, ldc, width, acc, init),
                4 => tile::<4>(k, ai, lda, b, ci, ldc, width, acc, init),
                3 => tile::<3>(k, ai, lda, b, ci, ldc, width, acc, init),
                2 => tile::<2>(k, ai, lda, b, ci, ldc, width, acc, init),
                _ => tile::<1>(k, ai, lda, b, ci, ldc, width, acc, init),
            }
            i += rows;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, k, a, lda, width, c, ldc, acc);
        unreachable!("packed kernel used without AVX-512");
    }
}

/// One tile of `M <= 8` rows by 32 columns: 2M accumulators in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const M: usize>(
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    width: usize,
    acc: bool,
    init: *const f32,
) {
    use std::arch::x86_64::*;
    let (s0, s1) = if init.is_null() {
        (_mm512_setzero_ps(), _mm512_setzero_ps())
    } else {
        // The bias of the `width` columns, zero past them.
        let m0 = ((1u64 << width.min(16)) - 1) as __mmask16;
        let m1 = ((1u64 << width.saturating_sub(16)) - 1) as __mmask16;
        unsafe {
            (
                _mm512_maskz_loadu_ps(m0, init),
                _mm512_maskz_loadu_ps(m1, init.add(16)),
            )
        }
    };
    let mut c0 = [s0; M];
    let mut c1 = [s1; M];
    for kk in 0..k {
        let (b0, b1) = unsafe {
            (
                _mm512_loadu_ps(b.add(kk * NR)),
                _mm512_loadu_ps(b.add(kk * NR + 16)),
            )
        };
        for i in 0..M {
            let ai = _mm512_set1_ps(unsafe { *a.add(i * lda + kk) });
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
    }
    let full = |n: usize| -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    };
    if width == NR {
        // Unmasked: a masked store cannot forward its data to a later load (the fused loop
        // reads these values right away), and full-width columns are the common case.
        for i in 0..M {
            unsafe {
                let ci = c.add(i * ldc);
                let (mut v0, mut v1) = (c0[i], c1[i]);
                if acc {
                    v0 = _mm512_add_ps(v0, _mm512_loadu_ps(ci));
                    v1 = _mm512_add_ps(v1, _mm512_loadu_ps(ci.add(16)));
                }
                _mm512_storeu_ps(ci, v0);
                _mm512_storeu_ps(ci.add(16), v1);
            }
        }
        return;
    }
    let (m0, m1) = (full(width), full(width.saturating_sub(16)));
    for i in 0..M {
        unsafe {
            let ci = c.add(i * ldc);
            let (mut v0, mut v1) = (c0[i], c1[i]);
            if acc {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, ci));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, ci.add(16)));
            }
            _mm512_mask_storeu_ps(ci, m0, v0);
            _mm512_mask_storeu_ps(ci.add(16), m1, v1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Every row count (full tiles and remainders), widths below and above 16, both modes,
    /// against a plain loop.
    #[test]
    fn panel_product_matches_reference() {
        if !available() {
            return;
        }
        let mut r = Rng::new(5);
        for &(m, k, width) in &[
            (1, 3, 32),
            (8, 17, 32),
            (13, 64, 20),
            (35, 40, 7),
            (3, 1, 16),
        ] {
            let (lda, ldc) = (k + 3, width + 5);
            let a: Vec<f32> = (0..m * lda)
                .map(|_| r.uniform_range(-1.0, 1.0) as f32)
                .collect();
            let bm: Vec<f32> = (0..k * width)
                .map(|_| r.uniform_range(-1.0, 1.0) as f32)
                .collect();
            let mut p = PackedPanels::default();
            p.pack(k, 1, |_| width, |_, j, kk| bm[kk * width + j]);
            for acc in [false, true] {
                let c0: Vec<f32> = (0..m * ldc)
                    .map(|_| r.uniform_range(-1.0, 1.0) as f32)
                    .collect();
                let mut c = c0.clone();
                unsafe {
                    panel_product(
                        m,
                        k,
                        a.as_ptr(),
                        lda,
                        p.panel(0),
                        width,
                        c.as_mut_ptr(),
                        ldc,
                        acc,
                    )
                };
                for i in 0..m {
                    for j in 0..ldc {
                        let got = c[i * ldc + j];
                        if j >= width {
                            assert_eq!(got, c0[i * ldc + j], "column {j} past the width written");
                            continue;
                        }
                        let mut e = if acc { c0[i * ldc + j] as f64 } else { 0.0 };
                        for kk in 0..k {
                            e += a[i * lda + kk] as f64 * bm[kk * width + j] as f64;
                        }
                        assert!(
                            (got as f64 - e).abs() < 1e-4,
                            "{m} {k} {width}: {got} vs {e}"
                        );
                    }
                }
            }
        }
    }
    #[test]
    fn panel_product_init_starts_from_the_bias() {
        if !available() {
            return;
        }
        let mut r = Rng::new(6);
        for &(m, k, width) in &[(13usize, 20usize, 32usize), (9, 7, 20), (3, 5, 9)] {
            let (lda, ldc) = (k + 1, width + 3);
            let a: Vec<f32> = (0..m * lda)
                .map(|_| r.uniform_range(-1.0, 1.0) as f32)
                .collect();
            let bm: Vec<f32> = (0..k * width)
                .map(|_| r.uniform_range(-1.0, 1.0) as f32)
                .collect();
            let bias: Vec<f32> = (0..width)
                .map(|_| r.uniform_range(-1.0, 1.0) as f32)
                .collect();
            let mut p = PackedPanels::default();
            p.pack(k, 1, |_| width, |_, j, kk| bm[kk * width + j]);
            let mut c = vec![7.0f32; m * ldc];
            unsafe {
                panel_product_init(
                    m,
                    k,
                    a.as_ptr(),
                    lda,
                    p.panel(0),
                    width,
                    c.as_mut_ptr(),
                    ldc,
                    &bias,
                )
            };
            for i in 0..m {
                for j in 0..ldc {
                    let got = c[i * ldc + j];
                    if j >= width {
                        assert_eq!(got, 7.0, "column {j} past the width written");
                        continue;
                    }
                    let mut e = bias[j] as f64;
                    for kk in 0..k {
                        e += a[i * lda + kk] as f64 * bm[kk * width + j] as f64;
                    }
                    assert!(
                        (got as f64 - e).abs() < 1e-4,
                        "{m} {k} {width}: {got} vs {e}"
                    );
                }
            }
        }
    }
}
