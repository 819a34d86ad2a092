//! Linear readouts of reservoir states: ridge regression in closed form, with the ridge chosen on
//! a validation split, and recursive least squares for online (FORCE) learning.
//!
//! Ridge works on accumulated Gram matrices ([`Gram`]: `X^T X`, `X^T Y`, `Y^T Y` built chunk by
//! chunk with one GEMM each), so the feature matrix of a long run is never held whole, and the
//! validation error of any weights follows from the validation Gram exactly:
//! `|Y - X W^T|^2 = tr(Y^T Y) - 2 tr(W X^T Y) + tr(W X^T X W^T)`. The system
//! `(X^T X + lambda I) W^T = X^T Y` is solved by faer's Cholesky factorisation; a system that is
//! not numerically positive definite, with a ridge too small to make it so, is reported as
//! singular, never solved into garbage.

#![allow(clippy::needless_range_loop)]

use crate::error::{Error, Result};
use crate::kernels::gemm::gemm_tn;
use faer::linalg::solvers::Solve;
use faer::Mat;

/// Accumulated normal equations of a least-squares problem with `f` features and `o` outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Gram {
    /// Number of features.
    pub features: usize,
    /// Number of outputs.
    pub outputs: usize,
    /// `[f, f]` sum of `x x^T`; only the lower triangle (`i >= j`) is accumulated, read it
    /// through [`Gram::xtx_full`].
    pub xtx: Vec<f64>,
    /// `[f, o]` sum of `x y^T`.
    pub xty: Vec<f64>,
    /// `[o]` sum of `y^2` per output.
    pub yty: Vec<f64>,
    /// `[o]` sum of `y` per output (for the variance behind NRMSE).
    pub ysum: Vec<f64>,
    /// Number of rows accumulated.
    pub rows: usize,
}

impl Gram {
    /// An empty accumulator.
    pub fn new(features: usize, outputs: usize) -> Self {
        Gram {
            features,
            outputs,
            xtx: vec![0.0; features * features],
            xty: vec![0.0; features * outputs],
            yty: vec![0.0; outputs],
            ysum: vec![0.0; outputs],
            rows: 0,
        }
    }

    /// Adds `r` rows: `x` is `[r, f]`, `y` is `[r, o]`, both row-major.
    pub fn add_rows(&mut self, x: &[f64], y: &[f64]) -> Result<()> {
        let (f, o) = (self.features, self.outputs);
        if f == 0 || !x.len().is_multiple_of(f) {
            return Err(Error::Shape {
                what: "readout features".into(),
                expected: format!("a multiple of {f}"),
                got: x.len().to_string(),
            });
        }
        let r = x.len() / f;
        crate::error::check_len("readout targets", r * o, y.len())?;
        if r == 0 {
            return Ok(());
        }
        // X^T X is symmetric: only the blocks on and below the diagonal are multiplied, by the
        // packed Gram kernel where the machine has AVX-512, else by blocks of general products.
        const BS: usize = 256;
        let done = crate::kernels::gram::add_xtx_lower(r, f, x, f, &mut self.xtx, f);
        for j0 in (0..f).step_by(BS).filter(|_| !done) {
            let nj = BS.min(f - j0);
            for i0 in (j0..f).step_by(BS) {
                let ni = BS.min(f - i0);
                gemm_tn(
                    ni,
                    nj,
                    r,
                    &x[i0..],
                    f,
                    &x[j0..],
                    f,
                    &mut self.xtx[i0 * f + j0..],
                    f,
                    true,
                );
            }
        }
        gemm_tn(f, o, r, x, f, y, o, &mut self.xty, o, true);
        for row in y.chunks_exact(o) {
            for k in 0..o {
                self.yty[k] += row[k] * row[k];
                self.ysum[k] += row[k];
            }
        }
        self.rows += r;
        Ok(())
    }

    /// The full `[f, f]` matrix `X^T X` (the upper triangle mirrored from the lower).
    pub fn xtx_full(&self) -> Vec<f64> {
        let f = self.features;
        let mut m = self.xtx.clone();
        for i in 0..f {
            for j in 0..i {
                m[j * f + i] = m[i * f + j];
            }
        }
        m
    }

    /// Adds another accumulator of the same sizes.
    pub fn merge(&mut self, other: &Gram) {
        if other.rows == 0 {
            return;
        }
        for (a, b) in self.xtx.iter_mut().zip(&other.xtx) {
            *a += b;
        }
        for (a, b) in self.xty.iter_mut().zip(&other.xty) {
            *a += b;
        }
        for k in 0..self.outputs {
            self.yty[k] += other.yty[k];
            self.ysum[k] += other.ysum[k];
        }
        self.rows += other.rows;
    }

    /// Sum of squared errors per output of the weights `w` (`[o, f]`) on the accumulated rows.
    pub fn sse(&self, w: &[f64]) -> Vec<f64> {
        let (f, o) = (self.features, self.outputs);
        // gw[f, o] = (X^T X) W^T in one product.
        let mut gw = vec![0.0; f * o];
        let full = self.xtx_full();
        crate::kernels::gemm::gemm_nt(f, o, f, &full, f, w, f, &mut gw, o, false);
        (0..o)
            .map(|k| {
                let wk = &w[k * f..(k + 1) * f];
                let quad: f64 = (0..f).map(|i| wk[i] * gw[i * o + k]).sum();
                let lin: f64 = (0..f).map(|i| wk[i] * self.xty[i * o + k]).sum();
                (self.yty[k] - 2.0 * lin + quad).max(0.0)
            })
            .collect()
    }

    /// Variance per output of the accumulated targets.
    pub fn target_variance(&self) -> Vec<f64> {
        let n = self.rows.max(1) as f64;
        (0..self.outputs)
            .map(|k| (self.yty[k] / n - (self.ysum[k] / n).powi(2)).max(0.0))
            .collect()
    }
}

/// Solves `(X^T X + lambda I) W^T = X^T Y` by Cholesky; returns `W` as `[o, f]`.
pub fn solve_ridge(g: &Gram, lambda: f64) -> Result<Vec<f64>> {
    if !(lambda.is_finite() && lambda >= 0.0) {
        return Err(Error::InvalidConfig(format!(
            "ridge must be finite and non-negative, got {lambda}"
        )));
    }
    let (f, o) = (g.features, g.outputs);
    if g.rows == 0 {
        return Err(Error::InvalidCall(
            "ridge readout fitted on no rows (is the washout longer than the series?)".into(),
        ));
    }
    if let Some(bad) = g.xtx.iter().chain(&g.xty).find(|v| !v.is_finite()) {
        return Err(Error::Numerical(format!(
            "the readout's normal equations hold a non-finite value ({bad}): the reservoir \
             states or targets are not finite"
        )));
    }
    let singular = || {
        Error::Numerical(format!(
            "the readout system is singular (features are linearly dependent or constant, \
             {} rows for {f} features) at ridge {lambda}; use a positive ridge",
            g.rows
        ))
    };
    let sol = cholesky_solve(
        f,
        o,
        lambda,
        |i, j| g.xtx[i.max(j) * f + i.min(j)] + if i == j { lambda } else { 0.0 },
        |i, k| g.xty[i * o + k],
        &singular,
    )?;
    // sol is [o, f] already: one row per output.
    Ok(sol)
}

/// Solves the symmetric positive definite system `A X = B` (`A` is `n x n` given by `a(i, j)`,
/// `B` is `n x o` given by `b(i, k)`), where `A` includes a ridge `lambda` on its diagonal, by
/// faer's Cholesky factorisation and returns `X^T` (`[o, n]`).
///
/// `singular()` is returned for a failed factorisation, a non-finite solution, or a pivot below
/// `1e-13` of the largest diagonal entry when the ridge is also below the rounding level of the
/// system (`sqrt(n) eps max_diag`). A ridge above that level makes the system positive definite
/// however collinear the data: its small pivots are the ridge itself, and rejecting them would
/// make the outcome hang on the last bits of rounding (10 000 Mackey-Glass states at ridge
/// 1e-9 have pivots right at `1e-13` of the diagonal).
fn cholesky_solve(
    n: usize,
    o: usize,
    lambda: f64,
    a: impl Fn(usize, usize) -> f64,
    b: impl Fn(usize, usize) -> f64,
    singular: &dyn Fn() -> Error,
) -> Result<Vec<f64>> {
    let a = Mat::<f64>::from_fn(n, n, a);
    let max_diag = (0..n).map(|i| a[(i, i)]).fold(0.0f64, f64::max);
    let llt = a.llt(faer::Side::Lower).map_err(|_| singular())?;
    let l = llt.L();
    let min_pivot = (0..n)
        .map(|i| l[(i, i)] * l[(i, i)])
        .fold(f64::MAX, f64::min);
    let unresolved = lambda < (n as f64).sqrt() * f64::EPSILON * max_diag;
    if min_pivot.is_nan()
        || min_pivot <= 0.0
        || (unresolved && min_pivot <= 1e-13 * max_diag.max(f64::MIN_POSITIVE))
    {
        return Err(singular());
    }
    let sol = llt.solve(Mat::<f64>::from_fn(n, o, b));
    let mut xt = vec![0.0; o * n];
    for k in 0..o {
        for i in 0..n {
            xt[k * n + i] = sol[(i, k)];
        }
    }
    if xt.iter().any(|v| !v.is_finite()) {
        return Err(singular());
    }
    Ok(xt)
}

/// Ridge regression in its dual (kernel) form, for fewer rows than features:
/// `W = A^T X` with `(X X^T + lambda I) A = Y`, an `r x r` Cholesky solve instead of `f x f`.
/// For `lambda > 0` it equals [`solve_ridge`] on the same rows exactly (the push-through
/// identity `(X^T X + lambda I)^-1 X^T = X^T (X X^T + lambda I)^-1`); with `lambda = 0` it gives
/// the minimum-norm interpolating solution. `x` is `[r, f]`, `y` is `[r, o]`; returns `[o, f]`.
pub fn solve_ridge_dual(x: &[f64], y: &[f64], f: usize, o: usize, lambda: f64) -> Result<Vec<f64>> {
    if !(lambda.is_finite() && lambda >= 0.0) {
        return Err(Error::InvalidConfig(format!(
            "ridge must be finite and non-negative, got {lambda}"
        )));
    }
    if f == 0 || !x.len().is_multiple_of(f) {
        return Err(Error::Shape {
            what: "readout features".into(),
            expected: format!("a multiple of {f}"),
            got: x.len().to_string(),
        });
    }
    let r = x.len() / f;
    crate::error::check_len("readout targets", r * o, y.len())?;
    if r == 0 {
        return Err(Error::InvalidCall("ridge readout fitted on no rows".into()));
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(Error::Numerical(
            "the readout's features or targets hold a non-finite value".into(),
        ));
    }
    // K = X X^T (r x r).
    let mut k = vec![0.0; r * r];
    crate::kernels::gemm::gemm_nt(r, r, f, x, f, x, f, &mut k, r, false);
    let singular = || {
        Error::Numerical(format!(
            "the readout system is singular (repeated or linearly dependent rows, {r} rows) at \
             ridge {lambda}; use a positive ridge"
        ))
    };
    let at = cholesky_solve(
        r,
        o,
        lambda,
        |i, j| k[i * r + j] + if i == j { lambda } else { 0.0 },
        |i, c| y[i * o + c],
        &singular,
    )?;
    let mut w = vec![0.0; o * f];
    crate::kernels::gemm::gemm_nn(o, f, r, &at, r, x, f, &mut w, f, false);
    if w.iter().any(|v| !v.is_finite()) {
        return Err(singular());
    }
    Ok(w)
}

/// The ridge chosen on a validation split and the validation error of every candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct RidgeSelection {
    /// The candidate with the lowest validation mean squared error.
    pub ridge: f64,
    /// `(ridge, validation MSE averaged over outputs)` for each candidate that could be solved.
    pub scores: Vec<(f64, f64)>,
}

/// Fits on `train` with each candidate ridge, scores on `valid`, returns the best.
pub fn select_ridge(train: &Gram, valid: &Gram, candidates: &[f64]) -> Result<RidgeSelection> {
    if candidates.is_empty() {
        return Err(Error::InvalidConfig("no ridge candidates given".into()));
    }
    if valid.rows == 0 {
        return Err(Error::InvalidCall(
            "no validation rows to choose the ridge on".into(),
        ));
    }
    let mut scores = Vec::new();
    let mut last_err = None;
    for &lambda in candidates {
        match solve_ridge(train, lambda) {
            Ok(w) => {
                let sse = valid.sse(&w);
                let mse = sse.iter().sum::<f64>() / (valid.rows * valid.outputs) as f64;
                scores.push((lambda, mse));
            }
            Err(e) => last_err = Some(e),
        }
    }
    let best = scores
        .iter()
        .copied()
        .filter(|s| s.1.is_finite())
        .min_by(|a, b| a.1.total_cmp(&b.1));
    match best {
        Some((ridge, _)) => Ok(RidgeSelection { ridge, scores }),
        None => Err(last_err.unwrap_or_else(|| {
            Error::Numerical("no ridge candidate gave a finite validation error".into())
        })),
    }
}

/// Recursive least squares: the exact online form of ridge regression.
///
/// Starting from `P = I / alpha` and `W = 0`, after rows `x_1..x_n` the weights equal the ridge
/// solution with `lambda = alpha` on those rows. Each update costs `O(f^2)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rls {
    /// Number of features.
    pub features: usize,
    /// Number of outputs.
    pub outputs: usize,
    /// `[f, f]` inverse correlation matrix estimate.
    pub p: Vec<f64>,
    /// `[o, f]` weights.
    pub w: Vec<f64>,
    px: Vec<f64>,
}

impl Rls {
    /// Zero weights and `P = I / alpha` (`alpha > 0`, the ridge of the equivalent batch problem).
    pub fn new(features: usize, outputs: usize, alpha: f64) -> Result<Self> {
        if !(alpha > 0.0 && alpha.is_finite()) {
            return Err(Error::InvalidConfig(format!(
                "RLS regularisation must be positive, got {alpha}"
            )));
        }
        let mut p = vec![0.0; features * features];
        for i in 0..features {
            p[i * features + i] = 1.0 / alpha;
        }
        Ok(Rls {
            features,
            outputs,
            p,
            w: vec![0.0; outputs * features],
            px: vec![0.0; features],
        })
    }

    /// `out[o] = W x`.
    pub fn predict(&self, x: &[f64], out: &mut [f64]) {
        let f = self.features;
        for k in 0..self.outputs {
            out[k] = self.w[k * f..(k + 1) * f]
                .iter()
                .zip(x)
                .map(|(a, b)| a * b)
                .sum();
        }
    }

    /// One update towards target `y` for features `x`; returns the squared prior error summed
    /// over outputs.
    pub fn update(&mut self, x: &[f64], y: &[f64]) -> f64 {
        let f = self.features;
        for i in 0..f {
            self.px[i] = self.p[i * f..(i + 1) * f]
                .iter()
                .zip(x)
                .map(|(a, b)| a * b)
                .sum();
        }
        let denom = 1.0 + x.iter().zip(&self.px).map(|(a, b)| a * b).sum::<f64>();
        let mut sq = 0.0;
        for k in 0..self.outputs {
            let wk = &mut self.w[k * f..(k + 1) * f];
            let e = wk.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() - y[k];
            sq += e * e;
            let c = e / denom;
            for (wv, &pv) in wk.iter_mut().zip(&self.px) {
                *wv -= c * pv;
            }
        }
        for i in 0..f {
            let ci = self.px[i] / denom;
            let row = &mut self.p[i * f..(i + 1) * f];
            for (pv, &pj) in row.iter_mut().zip(&self.px) {
                *pv -= ci * pj;
            }
        }
        sq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn problem(r: usize, f: usize, o: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = Rng::new(seed);
        let x: Vec<f64> = (0..r * f).map(|_| rng.normal()).collect();
        let y: Vec<f64> = (0..r * o).map(|_| rng.normal()).collect();
        (x, y)
    }

    /// Reference by SVD of X: `W^T = V diag(s / (s^2 + lambda)) U^T Y`.
    fn svd_ridge(x: &[f64], y: &[f64], r: usize, f: usize, o: usize, lambda: f64) -> Vec<f64> {
        let xm = Mat::<f64>::from_fn(r, f, |i, j| x[i * f + j]);
        let svd = xm.thin_svd().unwrap();
        let (u, s, v) = (svd.U(), svd.S(), svd.V());
        let mut w = vec![0.0; o * f];
        for k in 0..o {
            for c in 0..s.dim() {
                let sc = s[c];
                let uty: f64 = (0..r).map(|i| u[(i, c)] * y[i * o + k]).sum();
                let coef = sc / (sc * sc + lambda) * uty;
                for j in 0..f {
                    w[k * f + j] += v[(j, c)] * coef;
                }
            }
        }
        w
    }

    #[test]
    fn ridge_equals_svd_reference_and_chunking_does_not_matter() {
        let (r, f, o) = (200, 12, 3);
        let (x, y) = problem(r, f, o, 1);
        let mut whole = Gram::new(f, o);
        whole.add_rows(&x, &y).unwrap();
        let mut parts = Gram::new(f, o);
        parts.add_rows(&x[..77 * f], &y[..77 * o]).unwrap();
        let mut rest = Gram::new(f, o);
        rest.add_rows(&x[77 * f..], &y[77 * o..]).unwrap();
        parts.merge(&rest);
        for &lambda in &[0.0, 1e-3, 5.0] {
            let w = solve_ridge(&whole, lambda).unwrap();
            let w2 = solve_ridge(&parts, lambda).unwrap();
            let reference = svd_ridge(&x, &y, r, f, o, lambda);
            for i in 0..w.len() {
                assert!(
                    (w[i] - reference[i]).abs() < 1e-10,
                    "{} vs {}",
                    w[i],
                    reference[i]
                );
                assert!((w[i] - w2[i]).abs() < 1e-10);
            }
            // The Gram-based error equals the error computed from the rows.
            let sse = whole.sse(&w);
            for k in 0..o {
                let direct: f64 = (0..r)
                    .map(|i| {
                        let p: f64 = (0..f).map(|j| w[k * f + j] * x[i * f + j]).sum();
                        (p - y[i * o + k]).powi(2)
                    })
                    .sum();
                assert!((sse[k] - direct).abs() < 1e-8 * direct.max(1.0));
            }
        }
    }

    #[test]
    fn dual_ridge_equals_primal_when_rows_are_fewer_than_features() {
        let (r, f, o) = (30, 70, 3);
        let (x, y) = problem(r, f, o, 8);
        let mut g = Gram::new(f, o);
        g.add_rows(&x, &y).unwrap();
        for &lambda in &[1e-3, 0.5, 20.0] {
            let p = solve_ridge(&g, lambda).unwrap();
            let d = solve_ridge_dual(&x, &y, f, o, lambda).unwrap();
            for i in 0..p.len() {
                assert!(
                    (p[i] - d[i]).abs() < 1e-9 * (1.0 + p[i].abs()),
                    "{} vs {}",
                    p[i],
                    d[i]
                );
            }
        }
        // lambda = 0: the primal system is singular, the dual gives the minimum-norm fit.
        assert!(solve_ridge(&g, 0.0).is_err());
        let d = solve_ridge_dual(&x, &y, f, o, 0.0).unwrap();
        for i in 0..r {
            for c in 0..o {
                let p: f64 = (0..f).map(|j| d[c * f + j] * x[i * f + j]).sum();
                assert!((p - y[i * o + c]).abs() < 1e-8);
            }
        }
    }

    #[test]
    fn singular_system_is_an_error_not_garbage() {
        let (r, f) = (50, 4);
        let mut rng = Rng::new(2);
        let mut x = vec![0.0; r * f];
        for i in 0..r {
            x[i * f] = 1.0;
            x[i * f + 1] = 1.0; // the same as the bias column
            x[i * f + 2] = rng.normal();
            x[i * f + 3] = rng.normal();
        }
        let y: Vec<f64> = (0..r).map(|_| rng.normal()).collect();
        let mut g = Gram::new(f, 1);
        g.add_rows(&x, &y).unwrap();
        let err = solve_ridge(&g, 0.0).unwrap_err();
        assert!(err.to_string().contains("singular"), "{err}");
        assert!(solve_ridge(&g, 1e-6).is_ok());
        // A ridge below the rounding of the system cannot make it definite.
        assert!(solve_ridge(&g, 1e-14).is_err());
        // One well above it can, even where its pivots are below 1e-13 of the diagonal: the
        // two identical columns then share their weight equally, as the ridge says.
        let w = solve_ridge(&g, 1e-12).unwrap();
        assert!(
            (w[0] - w[1]).abs() < 0.05 * w[0].abs().max(w[1].abs()),
            "{w:?}"
        );
    }

    #[test]
    fn rls_converges_to_the_ridge_solution() {
        let (r, f, o) = (300, 10, 2);
        let (x, y) = problem(r, f, o, 3);
        let alpha = 0.5;
        let mut rls = Rls::new(f, o, alpha).unwrap();
        for i in 0..r {
            rls.update(&x[i * f..(i + 1) * f], &y[i * o..(i + 1) * o]);
        }
        let mut g = Gram::new(f, o);
        g.add_rows(&x, &y).unwrap();
        let w = solve_ridge(&g, alpha).unwrap();
        for i in 0..w.len() {
            assert!((w[i] - rls.w[i]).abs() < 1e-9, "{} vs {}", w[i], rls.w[i]);
        }
    }

    #[test]
    fn validation_picks_a_ridge_that_generalises() {
        // Few rows, many features, noisy targets: some shrinkage beats none.
        let (f, o) = (40, 1);
        let mut rng = Rng::new(4);
        let truth: Vec<f64> = (0..f).map(|_| rng.normal() * 0.3).collect();
        let make = |r: usize, rng: &mut Rng| {
            let x: Vec<f64> = (0..r * f).map(|_| rng.normal()).collect();
            let y: Vec<f64> = (0..r)
                .map(|i| (0..f).map(|j| truth[j] * x[i * f + j]).sum::<f64>() + 2.0 * rng.normal())
                .collect();
            let mut g = Gram::new(f, o);
            g.add_rows(&x, &y).unwrap();
            g
        };
        let train = make(60, &mut rng);
        let valid = make(500, &mut rng);
        let sel = select_ridge(&train, &valid, &[1e-8, 1e-2, 1.0, 10.0, 100.0]).unwrap();
        assert!(sel.ridge >= 1.0, "{sel:?}");
        let worst = sel.scores.iter().map(|s| s.1).fold(0.0, f64::max);
        let best = sel.scores.iter().map(|s| s.1).fold(f64::MAX, f64::min);
        assert!(best < worst);
    }
}
