//! The Gram product `C += X^T X` of a row-major `f64` matrix, lower triangle, in AVX-512.
//!
//! Ridge readouts accumulate `X^T X` of long runs of reservoir states (10 000 rows of 1001
//! features: 10 GFLOP for the lower half). General GEMM calls on blocks of it pack both
//! operands of every block and, on these shapes, reached about 40-50 % of this machine's `f64`
//! peak (this kernel about 60 %, `docs/reservoir.md`). Here `X` is row-major,
//! so both operands are column strips of the same rows: a block of `KC` rows is packed once into
//! panels of 8 columns (`[KC, 8]`, contiguous, zero-padded past the last column) and every tile
//! of `C` reads its two operands from those panels. The 8 x 24 register tile broadcasts 8
//! entries of one panel against 3 vectors of three others, 24 multiply-adds per row of `X`;
//! tiles whose rows lie wholly above the diagonal are skipped. Column tiles run in parallel
//! when the caller may use several threads.

use super::gemm::{effective_threads, SendPtr};
use rayon::prelude::*;

/// Columns of one packed panel: the `f64` lanes of one AVX-512 register.
const W: usize = 8;
/// Panels in the column tile of one micro-kernel call.
const NB: usize = 3;
/// Rows of `X` packed at once: the three column panels of a tile (24 KB) stay in L1 while the
/// row panels stream from L2 (the packed block is `KC * f * 8` bytes, 1 MB at 1001 features).
const KC: usize = 128;

/// Whether [`add_xtx_lower`] runs here (AVX-512F present and not turned off).
pub fn available() -> bool {
    super::packed::available()
}

/// `c[i, j] += sum_k x[k, i] x[k, j]` for `j <= i` (row-major `[f, f]` `c` with row stride
/// `ldc`; some entries just above the diagonal are accumulated too, with their true values),
/// where `x` is `[r, f]` row-major with row stride `ldx`. Returns `false` without touching `c`
/// where AVX-512 is not available (the caller then uses a general product).
pub fn add_xtx_lower(r: usize, f: usize, x: &[f64], ldx: usize, c: &mut [f64], ldc: usize) -> bool {
    if !available() {
        return false;
    }
    if r == 0 || f == 0 {
        return true;
    }
    assert!(
        ldx >= f && x.len() >= (r - 1) * ldx + f,
        "gram: x too short"
    );
    assert!(
        ldc >= f && c.len() >= (f - 1) * ldc + f,
        "gram: c too short"
    );
    let panels = f.div_ceil(W);
    let mut packed = vec![0.0f64; KC * panels * W];
    let tiles: Vec<usize> = (0..panels).step_by(NB).collect();
    let threads = effective_threads();
    let cp = SendPtr(c.as_mut_ptr());
    for k0 in (0..r).step_by(KC) {
        let kc = KC.min(r - k0);
        pack(&x[k0 * ldx..], ldx, kc, f, panels, &mut packed);
        let packed = &packed[..];
        let tile = |&jt: &usize| {
            let cp = &cp;
            // SAFETY: AVX-512F is present; the tile writes columns `jt * 8 ..` of the rows at
            // and below its diagonal, within `f` (masked), and distinct `jt` touch distinct
            // columns, so parallel tiles never write the same entry.
            unsafe { column_tile(packed, kc, panels, f, jt, cp.0, ldc) }
        };
        if threads > 1 && tiles.len() > 1 {
            tiles.par_iter().with_max_len(1).for_each(tile);
        } else {
            tiles.iter().for_each(tile);
        }
    }
    true
}

/// Packs `kc` rows of `x` into `panels` panels of `[kc, 8]` (panel `p` holds columns `8 p ..`),
/// zero past column `f`.
fn pack(x: &[f64], ldx: usize, kc: usize, f: usize, panels: usize, out: &mut [f64]) {
    for p in 0..panels {
        let (c0, n) = (p * W, W.min(f - p * W));
        let dst = &mut out[p * KC * W..p * KC * W + kc * W];
        if n == W {
            // Fixed-length copies: moves in registers, not a call per 8 values.
            for (k, d) in dst.chunks_exact_mut(W).enumerate() {
                let src: &[f64; W] = x[k * ldx + c0..k * ldx + c0 + W].try_into().unwrap();
                d.copy_from_slice(src);
            }
        } else {
            for (k, d) in dst.chunks_exact_mut(W).enumerate() {
                d[..n].copy_from_slice(&x[k * ldx + c0..k * ldx + c0 + n]);
                d[n..].fill(0.0);
            }
        }
    }
}

/// All tiles of the column tile starting at panel `jt`: row panels from `jt` down.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn column_tile(
    packed: &[f64],
    kc: usize,
    panels: usize,
    f: usize,
    jt: usize,
    c: *mut f64,
    ldc: usize,
) {
    let nb = NB.min(panels - jt);
    let b = packed.as_ptr().add(jt * KC * W);
    for it in jt..panels {
        let a = packed.as_ptr().add(it * KC * W);
        let rows = W.min(f - it * W);
        let cols = f - jt * W;
        let ct = c.add(it * W * ldc + jt * W);
        // The next tile's rows of C (eight rows a row of C apart, far out of cache): their
        // misses overlap this tile's arithmetic instead of stalling its write-back.
        if it + 1 < panels {
            let next = c.add((it + 1) * W * ldc + jt * W);
            for i in 0..W.min(f - (it + 1) * W) {
                for v in 0..nb {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        next.add(i * ldc + v * W) as *const i8,
                    );
                }
            }
        }
        match nb {
            3 => tile::<3>(a, b, kc, ct, ldc, rows, cols),
            2 => tile::<2>(a, b, kc, ct, ldc, rows, cols),
            _ => tile::<1>(a, b, kc, ct, ldc, rows, cols),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn column_tile(_: &[f64], _: usize, _: usize, _: usize, _: usize, _: *mut f64, _: usize) {
    unreachable!("add_xtx_lower checks for AVX-512")
}

/// `C[8, 8 N] += A^T B` over `kc` packed rows: `a` one panel, `b` the first of `N` panels
/// (`KC * 8` apart); `rows` and `cols` bound the entries of `C` written.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const N: usize>(
    a: *const f64,
    b: *const f64,
    kc: usize,
    c: *mut f64,
    ldc: usize,
    rows: usize,
    cols: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_pd(); N]; W];
    for k in 0..kc {
        let mut bv = [_mm512_setzero_pd(); N];
        for (v, bv) in bv.iter_mut().enumerate() {
            *bv = _mm512_loadu_pd(b.add(v * KC * W + k * W));
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_pd(*a.add(k * W + i));
            for (r, &bv) in row.iter_mut().zip(&bv) {
                *r = _mm512_fmadd_pd(av, bv, *r);
            }
        }
    }
    for (i, row) in acc.iter().enumerate().take(rows) {
        for (v, &sum) in row.iter().enumerate() {
            let left = cols.saturating_sub(v * W);
            if left == 0 {
                break;
            }
            let m: __mmask8 = if left >= W { 0xff } else { (1u8 << left) - 1 };
            let p = c.add(i * ldc + v * W);
            _mm512_mask_storeu_pd(p, m, _mm512_add_pd(_mm512_maskz_loadu_pd(m, p), sum));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn lower_triangle_equals_the_plain_sum() {
        if !available() {
            return;
        }
        let mut rng = Rng::new(8);
        // Ragged features (not a multiple of 8 or 24), rows not a multiple of KC, row strides.
        for &(r, f, ldx) in &[
            (1usize, 1usize, 1usize),
            (300, 37, 40),
            (129, 50, 50),
            (7, 8, 9),
        ] {
            let x: Vec<f64> = (0..r * ldx).map(|_| rng.normal()).collect();
            let ldc = f + 3;
            let mut c = vec![0.25; f * ldc];
            assert!(add_xtx_lower(r, f, &x, ldx, &mut c, ldc));
            for i in 0..f {
                for j in 0..=i {
                    let want: f64 =
                        0.25 + (0..r).map(|k| x[k * ldx + i] * x[k * ldx + j]).sum::<f64>();
                    let got = c[i * ldc + j];
                    assert!((got - want).abs() < 1e-10 * (1.0 + want.abs()), "{i},{j}");
                }
                // Entries past the columns are never written.
                assert_eq!(&c[i * ldc + f..(i + 1) * ldc], &[0.25; 3]);
            }
        }
    }
}
