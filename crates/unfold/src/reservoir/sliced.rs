//! The single-vector product of a sparse reservoir matrix in sliced ELLPACK form (SELL-8).
//!
//! A reservoir step with one sequence multiplies the recurrent matrix by one state vector. In
//! compressed rows each row is a short loop of a random length (10 non-zeros on average, Poisson
//! distributed), so nearly every row ends with a mispredicted branch, which costs more than its
//! arithmetic. Here rows are taken eight at a time (one AVX-512 register of `f64`): the slice's
//! non-zeros are stored column by column (`[width, 8]`, padded to the slice's longest row), and
//! one pass of `width` masked gathers and fused multiply-adds computes all eight sums. The lanes
//! past a row's length are masked off, so padding never reads the vector (a non-finite entry
//! reaches exactly the rows that use it). At 1000 units and 10 non-zeros per row this takes
//! about 7 us against 10-15 us for the row loop (`docs/reservoir.md`); the gathers bound it.

/// Rows per slice: the `f64` lanes of one AVX-512 register.
const LANES: usize = 8;

/// A sparse matrix's non-zeros in slices of eight consecutive rows, stored column by column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sliced {
    rows: usize,
    /// One past the largest column index: the shortest vector the product may read.
    reach: usize,
    /// `slices + 1` offsets into `idx` / `val` (multiples of 8).
    slice_ptr: Vec<usize>,
    /// Each row's number of non-zeros, padded with zeros to a multiple of 8 rows.
    lens: Vec<u32>,
    /// Column of each stored entry (0 in padding).
    idx: Vec<u32>,
    /// Value of each stored entry (0 in padding).
    val: Vec<f64>,
}

impl Sliced {
    /// The sliced copy of a matrix in compressed rows (`row_ptr`, `indices`, `values`), whose
    /// indices are below the number of columns.
    pub(crate) fn new(row_ptr: &[usize], indices: &[u32], values: &[f64]) -> Self {
        let rows = row_ptr.len() - 1;
        let slices = rows.div_ceil(LANES);
        let len = |i: usize| {
            if i < rows {
                row_ptr[i + 1] - row_ptr[i]
            } else {
                0
            }
        };
        let mut slice_ptr = Vec::with_capacity(slices + 1);
        slice_ptr.push(0);
        let mut lens = vec![0u32; slices * LANES];
        for s in 0..slices {
            let width = (s * LANES..(s + 1) * LANES).map(len).max().unwrap_or(0);
            slice_ptr.push(slice_ptr[s] + width * LANES);
        }
        let total = slice_ptr[slices];
        let (mut idx, mut val) = (vec![0u32; total], vec![0.0f64; total]);
        for i in 0..rows {
            let (s, lane) = (i / LANES, i % LANES);
            lens[i] = len(i) as u32;
            for (k, e) in (row_ptr[i]..row_ptr[i + 1]).enumerate() {
                let at = slice_ptr[s] + k * LANES + lane;
                idx[at] = indices[e];
                val[at] = values[e];
            }
        }
        Sliced {
            rows,
            reach: indices.iter().map(|&j| j as usize + 1).max().unwrap_or(0),
            slice_ptr,
            lens,
            idx,
            val,
        }
    }

    /// Multiplies every value by `s`.
    pub(crate) fn scale(&mut self, s: f64) {
        self.val.iter_mut().for_each(|v| *v *= s);
    }

    /// `y (+)= A[rows] x` for the rows `r0..r1` (`y` holds those rows), with AVX-512 when the
    /// machine has it and `r0` starts a slice; `None` otherwise (the caller then uses the row
    /// loop). `x` must hold an entry for every column used (checked).
    pub(crate) fn mul_rows(
        &self,
        x: &[f64],
        r0: usize,
        r1: usize,
        y: &mut [f64],
        acc: bool,
    ) -> Option<()> {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::packed::available() && r0.is_multiple_of(LANES) {
            assert!(
                r0 <= r1 && r1 <= self.rows && y.len() >= r1 - r0,
                "row range"
            );
            assert!(x.len() >= self.reach, "vector shorter than the columns");
            // SAFETY: AVX-512F is present; every stored index is below `reach`, which `x`
            // covers, and `y` holds the rows written.
            unsafe { self.mul_rows_avx512(x, r0, r1, y, acc) };
            return Some(());
        }
        let _ = (x, r0, r1, y, acc);
        None
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn mul_rows_avx512(&self, x: &[f64], r0: usize, r1: usize, y: &mut [f64], acc: bool) {
        use std::arch::x86_64::*;
        let (xp, ip, vp) = (x.as_ptr(), self.idx.as_ptr(), self.val.as_ptr());
        for s in r0 / LANES..r1.div_ceil(LANES) {
            let (start, end) = (self.slice_ptr[s], self.slice_ptr[s + 1]);
            let lens = _mm512_cvtepu32_epi64(_mm256_loadu_si256(
                self.lens.as_ptr().add(s * LANES) as *const __m256i
            ));
            // Two partial sums, so consecutive multiply-adds do not wait on each other.
            let (mut even, mut odd) = (_mm512_setzero_pd(), _mm512_setzero_pd());
            let term = |e: usize, k: i64| {
                let live = _mm512_cmpgt_epi64_mask(lens, _mm512_set1_epi64(k));
                let cols = _mm256_loadu_si256(ip.add(e) as *const __m256i);
                let xv = _mm512_mask_i32gather_pd::<8>(_mm512_setzero_pd(), live, cols, xp as _);
                (_mm512_loadu_pd(vp.add(e)), xv)
            };
            let mut k = 0i64;
            let mut e = start;
            while e + LANES < end {
                let (v0, x0) = term(e, k);
                let (v1, x1) = term(e + LANES, k + 1);
                even = _mm512_fmadd_pd(v0, x0, even);
                odd = _mm512_fmadd_pd(v1, x1, odd);
                k += 2;
                e += 2 * LANES;
            }
            if e < end {
                let (v0, x0) = term(e, k);
                even = _mm512_fmadd_pd(v0, x0, even);
            }
            let mut sum = _mm512_add_pd(even, odd);
            let row0 = s * LANES;
            let n = LANES.min(r1 - row0);
            let m: __mmask8 = if n == LANES { 0xff } else { (1u8 << n) - 1 };
            let yp = y.as_mut_ptr().add(row0 - r0);
            if acc {
                sum = _mm512_add_pd(sum, _mm512_maskz_loadu_pd(m, yp));
            }
            _mm512_mask_storeu_pd(yp, m, sum);
        }
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;
    use crate::reservoir::sparse::{Csr, WeightDist, Weights};
    use crate::rng::Rng;

    fn product(dense: &[f64], cols: usize, x: &[f64], i: usize) -> f64 {
        (0..cols).map(|j| dense[i * cols + j] * x[j]).sum()
    }

    #[test]
    fn sliced_product_equals_the_dense_one() {
        if !crate::kernels::packed::available() {
            return;
        }
        let mut rng = Rng::new(4);
        // Ragged last slices (rows not a multiple of 8), empty rows, dense-ish rows.
        for &(rows, cols, density) in &[(37usize, 29usize, 0.1), (8, 8, 0.9), (1000, 1000, 0.01)] {
            let Weights::Sparse(c) =
                Weights::random(rows, cols, density, WeightDist::Normal, &mut rng).unwrap()
            else {
                // Above the dense threshold: build the sparse form directly.
                let d: Vec<f64> = (0..rows * cols).map(|_| rng.normal()).collect();
                let c = Csr::from_dense(rows, cols, &d);
                let s = Sliced::new(c.row_ptr(), c.indices(), c.values());
                let x: Vec<f64> = (0..cols).map(|_| rng.normal()).collect();
                let mut y = vec![0.0; rows];
                s.mul_rows(&x, 0, rows, &mut y, false).unwrap();
                for i in 0..rows {
                    assert!((y[i] - product(&d, cols, &x, i)).abs() < 1e-12);
                }
                continue;
            };
            let dense = c.to_dense();
            let s = Sliced::new(c.row_ptr(), c.indices(), c.values());
            let x: Vec<f64> = (0..cols).map(|_| rng.normal()).collect();
            let mut y = vec![0.5; rows + 3];
            s.mul_rows(&x, 0, rows, &mut y, true).unwrap();
            // A row range starting at a slice: only those rows are written.
            let mut part = vec![0.0; rows - 8.min(rows)];
            if rows > 8 {
                s.mul_rows(&x, 8, rows, &mut part, false).unwrap();
                for i in 8..rows {
                    assert!((part[i - 8] + 0.5 - y[i]).abs() < 1e-12);
                }
            }
            for i in 0..rows {
                let want = 0.5 + product(&dense, cols, &x, i);
                assert!((y[i] - want).abs() < 1e-12, "row {i}: {} vs {want}", y[i]);
            }
            assert_eq!(&y[rows..], &[0.5; 3], "wrote past the rows");
        }
    }

    #[test]
    fn padding_never_reads_the_vector() {
        if !crate::kernels::packed::available() {
            return;
        }
        // Row 0 has three entries, row 1 one (column 2): a NaN in column 0 reaches row 0 only.
        let d = [1.0, 2.0, 3.0, 0.0, 0.0, 4.0];
        let c = Csr::from_dense(2, 3, &d);
        let s = Sliced::new(c.row_ptr(), c.indices(), c.values());
        let mut y = [0.0; 2];
        s.mul_rows(&[f64::NAN, 1.0, 1.0], 0, 2, &mut y, false)
            .unwrap();
        assert!(y[0].is_nan());
        assert_eq!(y[1], 4.0);
    }
}
