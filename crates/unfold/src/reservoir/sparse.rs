//! Fixed random weight matrices of reservoirs, stored sparse (compressed rows) or dense.
//!
//! A reservoir's recurrent matrix is random, fixed and usually sparse (1 to 10 % of the entries
//! are non-zero). [`Weights`] holds it either as a CSR matrix or as a dense row-major one, and
//! picks the form that multiplies faster for its density ([`Weights::random`] switches to dense
//! above [`DENSE_ABOVE`]). Both forms multiply a block of state columns at once: states are kept
//! unit-major (`[N, B]`, the batch contiguous), so one pass over a row's non-zeros serves every
//! sequence of the batch.

#![allow(clippy::needless_range_loop)]

use super::sliced::Sliced;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Density above which [`Weights::random`] stores the matrix dense. Measured at 1000 units
/// (`docs/reservoir.md`): with one column (a single sequence) CSR costs 13 us at 1 %, 73 us at
/// 10 % and 236 us at 30 % against 220-250 us dense, so the crossing is near 30 %; with blocks
/// of 32 sequences dense wins from about 6 % (910 against 477 us at 10 %). The default
/// reservoirs (10 non-zeros per unit, 1-2 %) are sparse in both uses.
pub const DENSE_ABOVE: f64 = 0.3;

/// How the non-zero entries are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightDist {
    /// Uniform on [-1, 1].
    Uniform,
    /// Standard normal.
    Normal,
    /// -1 or +1 with equal probability.
    Bernoulli,
}

impl WeightDist {
    fn draw(self, rng: &mut Rng) -> f64 {
        match self {
            WeightDist::Uniform => rng.uniform_range(-1.0, 1.0),
            WeightDist::Normal => rng.normal(),
            WeightDist::Bernoulli => {
                if rng.uniform() < 0.5 {
                    -1.0
                } else {
                    1.0
                }
            }
        }
    }

    /// The name used in configs and checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            WeightDist::Uniform => "uniform",
            WeightDist::Normal => "normal",
            WeightDist::Bernoulli => "bernoulli",
        }
    }

    /// Parses [`WeightDist::name`].
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "uniform" => Ok(WeightDist::Uniform),
            "normal" => Ok(WeightDist::Normal),
            "bernoulli" => Ok(WeightDist::Bernoulli),
            _ => Err(Error::InvalidConfig(format!(
                "unknown weight distribution {s:?} (uniform, normal, bernoulli)"
            ))),
        }
    }
}

/// A compressed-sparse-row matrix of `f64`.
///
/// Its parts are checked when it is built (offsets increasing, indices below the number of
/// columns), and it keeps a sliced copy of its non-zeros for the fast single-vector product
/// (`sliced.rs`), so its fields are read through methods and changed only through
/// [`Csr::scale`].
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    rows: usize,
    cols: usize,
    row_ptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f64>,
    sliced: Sliced,
}

impl Csr {
    /// A `rows x cols` matrix from its compressed rows: `row_ptr` (`rows + 1` increasing offsets
    /// from 0 to the number of non-zeros), and each non-zero's column (`indices`, below `cols`)
    /// and value. Inconsistent parts are an error.
    pub fn new(
        rows: usize,
        cols: usize,
        row_ptr: Vec<usize>,
        indices: Vec<u32>,
        values: Vec<f64>,
    ) -> Result<Self> {
        let ok = row_ptr.len() == rows + 1
            && row_ptr.first() == Some(&0)
            && row_ptr.last() == Some(&values.len())
            && row_ptr.windows(2).all(|w| w[0] <= w[1])
            && indices.len() == values.len()
            && indices.iter().all(|&i| (i as usize) < cols);
        if !ok {
            return Err(Error::InvalidData(format!(
                "inconsistent compressed rows for a [{rows}, {cols}] matrix"
            )));
        }
        Ok(Self::assemble(rows, cols, row_ptr, indices, values))
    }

    /// The matrix from parts already known to be consistent, with its sliced copy.
    fn assemble(
        rows: usize,
        cols: usize,
        row_ptr: Vec<usize>,
        indices: Vec<u32>,
        values: Vec<f64>,
    ) -> Self {
        let sliced = Sliced::new(&row_ptr, &indices, &values);
        Csr {
            rows,
            cols,
            row_ptr,
            indices,
            values,
            sliced,
        }
    }

    /// Builds the CSR form of a dense row-major matrix, keeping the non-zero entries.
    pub fn from_dense(rows: usize, cols: usize, dense: &[f64]) -> Self {
        let mut row_ptr = Vec::with_capacity(rows + 1);
        let mut indices = Vec::new();
        let mut values = Vec::new();
        row_ptr.push(0);
        for i in 0..rows {
            for j in 0..cols {
                let v = dense[i * cols + j];
                if v != 0.0 {
                    indices.push(j as u32);
                    values.push(v);
                }
            }
            row_ptr.push(indices.len());
        }
        Self::assemble(rows, cols, row_ptr, indices, values)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `rows + 1` offsets into [`Csr::indices`] and [`Csr::values`].
    pub fn row_ptr(&self) -> &[usize] {
        &self.row_ptr
    }

    /// Column of each non-zero, increasing within a row.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// Value of each non-zero.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Multiplies every entry by `s`.
    pub fn scale(&mut self, s: f64) {
        self.values.iter_mut().for_each(|v| *v *= s);
        self.sliced.scale(s);
    }

    /// The dense row-major copy.
    pub fn to_dense(&self) -> Vec<f64> {
        let mut d = vec![0.0; self.rows * self.cols];
        for i in 0..self.rows {
            for k in self.row_ptr[i]..self.row_ptr[i + 1] {
                d[i * self.cols + self.indices[k] as usize] = self.values[k];
            }
        }
        d
    }

    /// `y[rows, b] (+)= self * x[cols, b]`, both unit-major with `b` columns.
    pub fn mul_cols(&self, x: &[f64], b: usize, y: &mut [f64], acc: bool) {
        assert!(x.len() >= self.cols * b && y.len() >= self.rows * b);
        if b == 1 {
            self.mul_rows(x, 0, self.rows, y, acc);
            return;
        }
        if b.is_multiple_of(LANE_GROUP) {
            self.mul_cols_grouped(x, b, y, acc);
            return;
        }
        for i in 0..self.rows {
            let yi = &mut y[i * b..(i + 1) * b];
            if !acc {
                yi.fill(0.0);
            }
            for k in self.row_ptr[i]..self.row_ptr[i + 1] {
                let v = self.values[k];
                let j = self.indices[k] as usize;
                let xj = &x[j * b..(j + 1) * b];
                for (yv, &xv) in yi.iter_mut().zip(xj) {
                    *yv += v * xv;
                }
            }
        }
    }
}

/// Columns of a block accumulated in registers at once by [`Csr::mul_cols`] (four AVX-512
/// vectors of `f64`).
const LANE_GROUP: usize = 32;

impl Csr {
    /// [`Csr::mul_cols`] for `b` a multiple of [`LANE_GROUP`]: each row's sums for a group of
    /// 32 columns stay in registers over the row's non-zeros, instead of a load and a store of
    /// the output per non-zero.
    fn mul_cols_grouped(&self, x: &[f64], b: usize, y: &mut [f64], acc: bool) {
        for i in 0..self.rows {
            let (s, e) = (self.row_ptr[i], self.row_ptr[i + 1]);
            for g in (0..b).step_by(LANE_GROUP) {
                let yi: &mut [f64; LANE_GROUP] = (&mut y[i * b + g..i * b + g + LANE_GROUP])
                    .try_into()
                    .unwrap();
                let mut sum = if acc { *yi } else { [0.0; LANE_GROUP] };
                for (&j, &v) in self.indices[s..e].iter().zip(&self.values[s..e]) {
                    let at = j as usize * b + g;
                    let xj: &[f64; LANE_GROUP] = x[at..at + LANE_GROUP].try_into().unwrap();
                    for (a, &xv) in sum.iter_mut().zip(xj) {
                        *a += v * xv;
                    }
                }
                *yi = sum;
            }
        }
    }

    /// `y (+)= self[r0..r1] x` for one vector `x` (`cols` entries); `y` holds rows `r0..r1`.
    /// Slices of 8 rows with AVX-512 gathers where the machine has them and `r0` is a multiple
    /// of 8, else one short dot per row.
    pub fn mul_rows(&self, x: &[f64], r0: usize, r1: usize, y: &mut [f64], acc: bool) {
        assert!(
            r0 <= r1 && r1 <= self.rows && y.len() >= r1 - r0,
            "row range"
        );
        let x = &x[..self.cols];
        if self.sliced.mul_rows(x, r0, r1, y, acc).is_some() {
            return;
        }
        for (i, yi) in (r0..r1).zip(y.iter_mut()) {
            let (s, e) = (self.row_ptr[i], self.row_ptr[i + 1]);
            let sum = sparse_dot(&self.indices[s..e], &self.values[s..e], x);
            *yi = if acc { *yi + sum } else { sum };
        }
    }
}

/// `sum_k values[k] * x[indices[k]]` with four independent accumulators, so the additions of a
/// row do not wait on one another (a single chain of dependent adds bounds a short row's cost).
#[inline(always)]
fn sparse_dot(indices: &[u32], values: &[f64], x: &[f64]) -> f64 {
    let mut a = [0.0f64; 4];
    let ic = indices.chunks_exact(4);
    let vc = values.chunks_exact(4);
    let (ir, vr) = (ic.remainder(), vc.remainder());
    for (ii, vv) in ic.zip(vc) {
        unsafe {
            a[0] += vv[0] * *x.get_unchecked(ii[0] as usize);
            a[1] += vv[1] * *x.get_unchecked(ii[1] as usize);
            a[2] += vv[2] * *x.get_unchecked(ii[2] as usize);
            a[3] += vv[3] * *x.get_unchecked(ii[3] as usize);
        }
    }
    for (&j, &v) in ir.iter().zip(vr) {
        a[0] += v * x[j as usize];
    }
    (a[0] + a[1]) + (a[2] + a[3])
}

/// A fixed weight matrix, sparse or dense.
#[derive(Debug, Clone, PartialEq)]
pub enum Weights {
    /// Row-major dense matrix.
    Dense {
        /// Number of rows.
        rows: usize,
        /// Number of columns.
        cols: usize,
        /// `rows * cols` entries.
        values: Vec<f64>,
    },
    /// Compressed sparse rows.
    Sparse(Csr),
}

impl Weights {
    /// A `rows x cols` matrix whose entries are non-zero with probability `density` (drawn from
    /// `dist`), stored sparse unless `density > DENSE_ABOVE`. Deterministic for the generator's
    /// state; the number of draws is proportional to the number of non-zeros.
    pub fn random(
        rows: usize,
        cols: usize,
        density: f64,
        dist: WeightDist,
        rng: &mut Rng,
    ) -> Result<Self> {
        if !(density > 0.0 && density <= 1.0) {
            return Err(Error::InvalidConfig(format!(
                "connectivity must be in (0, 1], got {density}"
            )));
        }
        let mut row_ptr = vec![0usize];
        let mut indices = Vec::new();
        let mut values = Vec::new();
        let log_q = (1.0 - density).ln();
        for _ in 0..rows {
            if density >= 1.0 {
                for j in 0..cols {
                    indices.push(j as u32);
                    values.push(dist.draw(rng));
                }
            } else {
                // Geometric gaps between successive non-zeros.
                let mut j = 0usize;
                loop {
                    let u = 1.0 - rng.uniform();
                    let gap = (u.ln() / log_q).floor();
                    if !gap.is_finite() || gap >= (cols - j.min(cols)) as f64 {
                        break;
                    }
                    j += gap as usize;
                    if j >= cols {
                        break;
                    }
                    indices.push(j as u32);
                    values.push(dist.draw(rng));
                    j += 1;
                }
            }
            row_ptr.push(indices.len());
        }
        let csr = Csr::new(rows, cols, row_ptr, indices, values)?;
        Ok(if density > DENSE_ABOVE {
            Weights::Dense {
                rows,
                cols,
                values: csr.to_dense(),
            }
        } else {
            Weights::Sparse(csr)
        })
    }

    /// Wraps a dense row-major matrix, stored sparse when at most `DENSE_ABOVE` of it is
    /// non-zero.
    pub fn from_dense(rows: usize, cols: usize, values: Vec<f64>) -> Self {
        let nnz = values.iter().filter(|v| **v != 0.0).count();
        if (nnz as f64) <= DENSE_ABOVE * (rows * cols) as f64 {
            Weights::Sparse(Csr::from_dense(rows, cols, &values))
        } else {
            Weights::Dense { rows, cols, values }
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        match self {
            Weights::Dense { rows, .. } => *rows,
            Weights::Sparse(c) => c.rows,
        }
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        match self {
            Weights::Dense { cols, .. } => *cols,
            Weights::Sparse(c) => c.cols,
        }
    }

    /// Number of stored non-zero entries.
    pub fn nnz(&self) -> usize {
        match self {
            Weights::Dense { values, .. } => values.iter().filter(|v| **v != 0.0).count(),
            Weights::Sparse(c) => c.values.len(),
        }
    }

    /// Multiplies every entry by `s`.
    pub fn scale(&mut self, s: f64) {
        match self {
            Weights::Dense { values, .. } => values.iter_mut().for_each(|x| *x *= s),
            Weights::Sparse(c) => c.scale(s),
        }
    }

    /// The dense row-major copy.
    pub fn to_dense(&self) -> Vec<f64> {
        match self {
            Weights::Dense { values, .. } => values.clone(),
            Weights::Sparse(c) => c.to_dense(),
        }
    }

    /// `y (+)= self[r0..r1] x` for one vector `x`; `y` holds rows `r0..r1`.
    pub fn mul_rows(&self, x: &[f64], r0: usize, r1: usize, y: &mut [f64], acc: bool) {
        match self {
            Weights::Dense { cols, values, .. } => {
                let (x, y) = (&x[..*cols], &mut y[..r1 - r0]);
                let w = &values[r0 * cols..r1 * cols];
                if *cols <= 8 {
                    // A few inputs: column by column over all rows (vectorised), inline.
                    if !acc {
                        y.fill(0.0);
                    }
                    for (j, &xj) in x.iter().enumerate() {
                        for (yi, wi) in y.iter_mut().zip(w.chunks_exact(*cols)) {
                            *yi += wi[j] * xj;
                        }
                    }
                } else {
                    crate::kernels::gemm::gemv_rows(x, w, *cols, y, acc)
                }
            }
            Weights::Sparse(c) => c.mul_rows(x, r0, r1, y, acc),
        }
    }

    /// `y[rows, b] (+)= self * x[cols, b]`, both unit-major with `b` columns.
    pub fn mul_cols(&self, x: &[f64], b: usize, y: &mut [f64], acc: bool) {
        match self {
            Weights::Dense { rows, cols, values } => {
                if b == 1 {
                    self.mul_rows(x, 0, *rows, y, acc)
                } else {
                    crate::kernels::gemm::gemm_nn(*rows, b, *cols, values, *cols, x, b, y, b, acc)
                }
            }
            Weights::Sparse(c) => c.mul_cols(x, b, y, acc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_and_dense_products_agree() {
        let mut rng = Rng::new(3);
        for &(density, b) in &[
            (0.05, 1),
            (0.2, 3),
            (0.5, 4),
            (1.0, 1),
            (0.1, 32),
            (0.2, 64),
        ] {
            let w = Weights::random(37, 29, density, WeightDist::Normal, &mut rng).unwrap();
            let dense = w.to_dense();
            let x: Vec<f64> = (0..29 * b).map(|_| rng.normal()).collect();
            let mut y = vec![1.0; 37 * b];
            w.mul_cols(&x, b, &mut y, true);
            for i in 0..37 {
                for c in 0..b {
                    let want: f64 = 1.0
                        + (0..29)
                            .map(|j| dense[i * 29 + j] * x[j * b + c])
                            .sum::<f64>();
                    assert!((y[i * b + c] - want).abs() < 1e-12);
                }
            }
            let frac = w.nnz() as f64 / (37.0 * 29.0);
            assert!((frac - density).abs() < 0.1, "{frac} vs {density}");
        }
    }

    #[test]
    fn random_density_is_unbiased_and_seeded() {
        let a = Weights::random(400, 400, 0.1, WeightDist::Uniform, &mut Rng::new(9)).unwrap();
        let b = Weights::random(400, 400, 0.1, WeightDist::Uniform, &mut Rng::new(9)).unwrap();
        assert_eq!(a, b);
        let frac = a.nnz() as f64 / 160_000.0;
        assert!((frac - 0.1).abs() < 0.005, "{frac}");
        assert!(Weights::random(4, 4, 0.0, WeightDist::Uniform, &mut Rng::new(1)).is_err());
    }
}
