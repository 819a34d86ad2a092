//! Eigenvalues and spectral radius of reservoir matrices.
//!
//! The spectral radius (largest eigenvalue modulus) sets a reservoir's dynamics, so it is
//! computed, not estimated loosely: small matrices go through faer's dense eigenvalue routine
//! (Hessenberg reduction and shifted QR); large sparse ones through an Arnoldi iteration from a
//! seeded start vector, whose Krylov basis grows until the residual of the largest Ritz pair is
//! below a relative tolerance (and which is exact when the basis reaches the matrix's size).
//! Both are deterministic for a seed.

#![allow(clippy::needless_range_loop)]

use super::sparse::Weights;
use crate::error::{Error, Result};
use crate::kernels::gemm::{axpy_rows, gemv_rows_serial};
use crate::rng::Rng;
use faer::Mat;

/// Matrices up to this size use the dense eigenvalue routine in [`spectral_radius`].
pub const DENSE_EIGEN_MAX: usize = 256;

/// Relative residual at which [`arnoldi_radius`] accepts the largest Ritz value.
pub const ARNOLDI_TOL: f64 = 1e-8;

/// All eigenvalues `(re, im)` of a square matrix, by faer's dense routine.
pub fn eigenvalues(w: &Weights) -> Result<Vec<(f64, f64)>> {
    let n = w.rows();
    if w.cols() != n {
        return Err(Error::Shape {
            what: "eigenvalues".into(),
            expected: "a square matrix".into(),
            got: format!("{}x{}", n, w.cols()),
        });
    }
    let d = w.to_dense();
    dense_eigenvalues(n, &d)
}

/// All eigenvalues `(re, im)` of a dense row-major `n x n` matrix.
pub fn dense_eigenvalues(n: usize, d: &[f64]) -> Result<Vec<(f64, f64)>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let m = Mat::<f64>::from_fn(n, n, |i, j| d[i * n + j]);
    let ev = m
        .eigenvalues()
        .map_err(|e| Error::Numerical(format!("eigenvalue routine failed: {e:?}")))?;
    Ok(ev.iter().map(|c| (c.re, c.im)).collect())
}

/// The largest eigenvalue modulus: dense routine up to [`DENSE_EIGEN_MAX`] units, Arnoldi above.
pub fn spectral_radius(w: &Weights, seed: u64) -> Result<f64> {
    if w.rows() <= DENSE_EIGEN_MAX {
        let ev = eigenvalues(w)?;
        Ok(ev.iter().map(|&(re, im)| re.hypot(im)).fold(0.0, f64::max))
    } else {
        arnoldi_radius(w, seed, ARNOLDI_TOL)
    }
}

/// The largest eigenvalue modulus by Arnoldi iteration with a growing Krylov basis.
///
/// Starts from a seeded normal vector and orthogonalises each new vector against the basis by
/// classical Gram-Schmidt (two matrix-vector products with the basis), repeated while the DGKS
/// criterion says the vector lost too much of its norm for one pass to be exact. At checkpoints it takes the largest-modulus eigenvalue of the Hessenberg matrix
/// (faer), finds its eigenvector by inverse iteration and accepts it when the Ritz residual
/// `h[m+1,m] |y_m| / |y|` is at most `tol |lambda|`; the next checkpoint is placed where the
/// residual's geometric decay so far predicts convergence. A basis that stops growing (an
/// invariant subspace) or reaches `n` vectors gives exact eigenvalues.
pub fn arnoldi_radius(w: &Weights, seed: u64, tol: f64) -> Result<f64> {
    let n = w.rows();
    if w.cols() != n {
        return Err(Error::Shape {
            what: "spectral radius".into(),
            expected: "a square matrix".into(),
            got: format!("{}x{}", n, w.cols()),
        });
    }
    if n == 0 {
        return Ok(0.0);
    }
    let mut rng = Rng::new(seed ^ 0x5eed_a4d0);
    // Row-major basis, one vector per row.
    let mut basis: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let norm = norm2(&basis);
    basis.iter_mut().for_each(|x| *x /= norm);
    // h[j] is column j of the Hessenberg matrix (length j + 2).
    let mut h: Vec<Vec<f64>> = Vec::new();
    let mut check_at = 24.min(n);
    let mut last_check: Option<(usize, f64)> = None;
    let mut tracked: Option<(f64, f64)> = None;
    let mut wv = vec![0.0; n];
    let mut coef = Vec::new();
    loop {
        let j = h.len();
        w.mul_cols(&basis[j * n..(j + 1) * n], 1, &mut wv, false);
        let mut col = vec![0.0; j + 2];
        coef.resize(j + 1, 0.0);
        // Classical Gram-Schmidt, repeated when the vector lost most of its norm to the
        // projection (the DGKS criterion), which is when a single pass leaves it inexact.
        let mut before = norm2(&wv);
        let mut beta = before;
        for _pass in 0..3 {
            // One thread: waking another costs more than these small products.
            gemv_rows_serial(&wv, &basis, n, &mut coef, false);
            for (c, k) in col.iter_mut().zip(coef.iter_mut()) {
                *c += *k;
                *k = -*k;
            }
            axpy_rows(&coef, &basis, n, &mut wv, true);
            beta = norm2(&wv);
            if beta > 0.717 * before {
                break;
            }
            before = beta;
        }
        col[j + 1] = beta;
        h.push(col);
        let m = j + 1;
        let scale = h
            .iter()
            .flat_map(|c| c.iter())
            .fold(0.0f64, |a, &b| a.max(b.abs()));
        let invariant = beta <= 1e-12 * scale.max(f64::MIN_POSITIVE) || m == n;
        if invariant || m == check_at {
            // Small bases: all Ritz values (faer). Larger ones: follow the top Ritz value by
            // Rayleigh-quotient iteration from where it was (O(m^2)), and confirm a converged
            // one with all Ritz values before accepting it.
            let tracked_pair = match tracked {
                Some(t) if m > 64 && !invariant => track(&h, m, t),
                _ => None,
            };
            let (top, resid, full) = match tracked_pair {
                Some((t, r)) => (t, r, false),
                None => {
                    let (t, r) = ritz(&h, m)?;
                    (t, r, true)
                }
            };
            let lambda = top.0.hypot(top.1);
            let rel = resid / lambda.max(f64::MIN_POSITIVE);
            tracked = Some(top);
            if invariant || rel <= tol {
                if full {
                    return Ok(lambda);
                }
                let (t, r) = ritz(&h, m)?;
                let confirmed = t.0.hypot(t.1);
                tracked = Some(t);
                if r <= tol * confirmed.max(f64::MIN_POSITIVE) {
                    return Ok(confirmed);
                }
            }
            // Predict where the residual reaches tol from its decay since the last check.
            let mut next = m + m / 2;
            if let Some((m0, r0)) = last_check {
                let rate = (rel / r0).ln() / (m - m0) as f64;
                if rate < 0.0 {
                    let need = ((tol / rel).ln() / rate).ceil() as usize + 2;
                    next = next.min(m + need.max(4));
                }
            }
            last_check = Some((m, rel));
            check_at = next.min(n);
        }
        basis.extend(wv.iter().map(|x| x / beta));
    }
}

/// The eigenvalue of the leading `m x m` Hessenberg block nearest `start`, by Rayleigh-quotient
/// iteration, and its Ritz residual; `None` if the iteration fails.
fn track(h: &[Vec<f64>], m: usize, start: (f64, f64)) -> Option<((f64, f64), f64)> {
    let at = |i: usize, j: usize| if i <= j + 1 { h[j][i] } else { 0.0 };
    let mut sigma = start;
    let mut y: Vec<(f64, f64)> = vec![(1.0, 0.0); m];
    for it in 0..6 {
        let shift = (sigma.0 * (1.0 + 1e-12) + 1e-300, sigma.1 * (1.0 + 1e-12));
        y = hessenberg_solve(&at, m, shift, &y);
        let nrm = y.iter().map(|c| c.0 * c.0 + c.1 * c.1).sum::<f64>().sqrt();
        if !(nrm.is_finite() && nrm > 0.0) {
            return None;
        }
        y.iter_mut().for_each(|c| {
            c.0 /= nrm;
            c.1 /= nrm;
        });
        if it >= 1 {
            // Rayleigh quotient y* H y (y has unit norm).
            let mut q = (0.0, 0.0);
            for i in 0..m {
                let mut hy = (0.0, 0.0);
                for j in i.saturating_sub(1)..m {
                    let a = at(i, j);
                    hy.0 += a * y[j].0;
                    hy.1 += a * y[j].1;
                }
                q.0 += y[i].0 * hy.0 + y[i].1 * hy.1;
                q.1 += y[i].0 * hy.1 - y[i].1 * hy.0;
            }
            sigma = q;
        }
    }
    let last = y[m - 1];
    Some((sigma, h[m - 1][m] * last.0.hypot(last.1)))
}

/// Largest-modulus eigenvalue of the leading `m x m` Hessenberg block and its Ritz residual.
fn ritz(h: &[Vec<f64>], m: usize) -> Result<((f64, f64), f64)> {
    let at = |i: usize, j: usize| if i <= j + 1 { h[j][i] } else { 0.0 };
    let hm = Mat::<f64>::from_fn(m, m, at);
    let ev = hm
        .eigenvalues()
        .map_err(|e| Error::Numerical(format!("Hessenberg eigenvalues failed: {e:?}")))?;
    let top = ev
        .iter()
        .max_by(|a, b| a.re.hypot(a.im).total_cmp(&b.re.hypot(b.im)))
        .map(|c| (c.re, c.im))
        .unwrap_or((0.0, 0.0));
    // Inverse iteration on (H - sigma I), sigma a hair off the eigenvalue.
    let sigma = (top.0 * (1.0 + 1e-10) + 1e-300, top.1 * (1.0 + 1e-10));
    let mut y: Vec<(f64, f64)> = vec![(1.0, 0.0); m];
    for _ in 0..3 {
        y = hessenberg_solve(&at, m, sigma, &y);
        let nrm = y.iter().map(|c| c.0 * c.0 + c.1 * c.1).sum::<f64>().sqrt();
        if !(nrm.is_finite() && nrm > 0.0) {
            return Ok((top, f64::INFINITY));
        }
        y.iter_mut().for_each(|c| {
            c.0 /= nrm;
            c.1 /= nrm;
        });
    }
    let last = y[m - 1];
    Ok((top, h[m - 1][m] * last.0.hypot(last.1)))
}

/// Solves `(H - sigma I) x = b` for an upper Hessenberg `H` in complex arithmetic, by Gaussian
/// elimination with partial pivoting between neighbouring rows (`O(m^2)`).
fn hessenberg_solve(
    at: &dyn Fn(usize, usize) -> f64,
    m: usize,
    sigma: (f64, f64),
    b: &[(f64, f64)],
) -> Vec<(f64, f64)> {
    type C = (f64, f64);
    let mul = |a: C, b: C| (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0);
    let sub = |a: C, b: C| (a.0 - b.0, a.1 - b.1);
    let div = |a: C, b: C| {
        let d = b.0 * b.0 + b.1 * b.1;
        ((a.0 * b.0 + a.1 * b.1) / d, (a.1 * b.0 - a.0 * b.1) / d)
    };
    // Dense upper part of rows as they are eliminated (row-major m x m, complex).
    let mut a: Vec<C> = (0..m * m)
        .map(|k| {
            let (i, j) = (k / m, k % m);
            let v = at(i, j);
            if i == j {
                (v - sigma.0, -sigma.1)
            } else {
                (v, 0.0)
            }
        })
        .collect();
    let mut x: Vec<C> = b.to_vec();
    for k in 0..m.saturating_sub(1) {
        let (p, q) = (a[k * m + k], a[(k + 1) * m + k]);
        if q.0.hypot(q.1) > p.0.hypot(p.1) {
            for j in k..m {
                a.swap(k * m + j, (k + 1) * m + j);
            }
            x.swap(k, k + 1);
        }
        let piv = a[k * m + k];
        if piv == (0.0, 0.0) {
            continue;
        }
        let f = div(a[(k + 1) * m + k], piv);
        for j in k..m {
            a[(k + 1) * m + j] = sub(a[(k + 1) * m + j], mul(f, a[k * m + j]));
        }
        x[k + 1] = sub(x[k + 1], mul(f, x[k]));
    }
    for k in (0..m).rev() {
        let mut s = x[k];
        for j in k + 1..m {
            s = sub(s, mul(a[k * m + j], x[j]));
        }
        let d = a[k * m + k];
        x[k] = if d == (0.0, 0.0) {
            (s.0 / 1e-300, s.1 / 1e-300)
        } else {
            div(s, d)
        };
    }
    x
}

fn norm2(a: &[f64]) -> f64 {
    a.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Scales `w` in place so that its spectral radius is `target`; returns the radius it had.
///
/// Fails with [`Error::Numerical`] when the matrix's radius is zero (an all-zero or nilpotent
/// reservoir), since no scaling reaches a positive target then.
pub fn scale_to_radius(w: &mut Weights, target: f64, seed: u64) -> Result<f64> {
    if !(target.is_finite() && target >= 0.0) {
        return Err(Error::InvalidConfig(format!(
            "spectral radius must be finite and non-negative, got {target}"
        )));
    }
    let rho = spectral_radius(w, seed)?;
    if target == 0.0 {
        w.scale(0.0);
        return Ok(rho);
    }
    if rho.is_nan() || rho <= 1e-12 {
        return Err(Error::Numerical(format!(
            "the reservoir matrix has spectral radius {rho:.3e} (all-zero or nilpotent), so it \
             cannot be scaled to {target}; raise the connectivity or the number of units"
        )));
    }
    w.scale(target / rho);
    Ok(rho)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reservoir::sparse::WeightDist;

    #[test]
    fn arnoldi_matches_dense_eigenvalues() {
        for &(n, density, seed) in &[(300usize, 0.05, 1u64), (200, 0.5, 2), (120, 1.0, 3)] {
            let w =
                Weights::random(n, n, density, WeightDist::Normal, &mut Rng::new(seed)).unwrap();
            let dense = eigenvalues(&w)
                .unwrap()
                .iter()
                .map(|&(a, b)| a.hypot(b))
                .fold(0.0, f64::max);
            let arn = arnoldi_radius(&w, 7, 1e-10).unwrap();
            assert!(
                (arn - dense).abs() <= 1e-7 * dense,
                "n={n}: arnoldi {arn} dense {dense}"
            );
        }
    }

    #[test]
    fn known_spectrum_rotation_block() {
        // A rotation by 0.3 rad scaled by 2 has eigenvalues 2 e^{+-0.3i}: radius 2, complex pair
        // (power iteration would oscillate here).
        let (c, s) = (2.0 * 0.3f64.cos(), 2.0 * 0.3f64.sin());
        let mut d = vec![0.0; 9];
        d[0] = c;
        d[1] = -s;
        d[3] = s;
        d[4] = c;
        d[8] = 0.5;
        let w = Weights::Dense {
            rows: 3,
            cols: 3,
            values: d,
        };
        assert!((spectral_radius(&w, 0).unwrap() - 2.0).abs() < 1e-12);
        assert!((arnoldi_radius(&w, 0, 1e-12).unwrap() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn zero_matrix_cannot_be_scaled() {
        let mut w = Weights::Dense {
            rows: 4,
            cols: 4,
            values: vec![0.0; 16],
        };
        let err = scale_to_radius(&mut w, 0.9, 0).unwrap_err();
        assert!(err.to_string().contains("cannot be scaled"), "{err}");
    }
}
