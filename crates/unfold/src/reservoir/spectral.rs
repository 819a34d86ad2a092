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
use crate::rng::Rng;
use faer::Mat;

/// Matrices up to this size use the dense eigenvalue routine in [`spectral_radius`].
pub const DENSE_EIGEN_MAX: usize = 500;

/// Relative residual at which [`arnoldi_radius`] accepts the largest Ritz value.
pub const ARNOLDI_TOL: f64 = 1e-9;

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

fn dense_eigenvalues(n: usize, d: &[f64]) -> Result<Vec<(f64, f64)>> {
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
/// Starts from a seeded normal vector, orthogonalises each new vector twice (classical
/// Gram-Schmidt with re-orthogonalisation), and every time the basis has grown by half checks
/// the largest-modulus Ritz pair: it is accepted when `h[m+1,m] |y_m| <= tol |lambda|`. A basis
/// that stops growing (an invariant subspace) or reaches `n` vectors gives exact eigenvalues.
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
    let mut basis: Vec<Vec<f64>> = Vec::new();
    let mut v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let norm = norm2(&v);
    v.iter_mut().for_each(|x| *x /= norm);
    basis.push(v);
    // h[j] is column j of the Hessenberg matrix (length j + 2).
    let mut h: Vec<Vec<f64>> = Vec::new();
    let mut check_at = 16.min(n);
    let mut w_vec = vec![0.0; n];
    loop {
        let j = h.len();
        w.mul_cols(&basis[j], 1, &mut w_vec, false);
        let mut col = vec![0.0; j + 2];
        for _pass in 0..2 {
            for (i, q) in basis.iter().enumerate() {
                let c = dot(q, &w_vec);
                col[i] += c;
                for (x, &qv) in w_vec.iter_mut().zip(q) {
                    *x -= c * qv;
                }
            }
        }
        let beta = norm2(&w_vec);
        col[j + 1] = beta;
        h.push(col);
        let m = j + 1;
        let scale = h
            .iter()
            .flat_map(|c| c.iter())
            .fold(0.0f64, |a, &b| a.max(b.abs()));
        let invariant = beta <= 1e-12 * scale.max(f64::MIN_POSITIVE) || m == n;
        if invariant || m == check_at {
            let (lambda, resid) = ritz(&h, m)?;
            if invariant || resid <= tol * lambda.max(f64::MIN_POSITIVE) {
                return Ok(lambda);
            }
            check_at = (m + m / 2).min(n);
        }
        let next: Vec<f64> = w_vec.iter().map(|x| x / beta).collect();
        basis.push(next);
    }
}

/// Largest-modulus eigenvalue of the leading `m x m` Hessenberg block and its Ritz residual.
fn ritz(h: &[Vec<f64>], m: usize) -> Result<(f64, f64)> {
    let hm = Mat::<f64>::from_fn(m, m, |i, j| if i <= j + 1 { h[j][i] } else { 0.0 });
    let eig = hm
        .eigen()
        .map_err(|e| Error::Numerical(format!("Hessenberg eigenvalues failed: {e:?}")))?;
    let s = eig.S();
    let u = eig.U();
    let mut best = 0usize;
    let mut best_mod = -1.0;
    for k in 0..m {
        let c = s[k];
        let md = c.re.hypot(c.im);
        if md > best_mod {
            best_mod = md;
            best = k;
        }
    }
    let mut nrm = 0.0;
    for i in 0..m {
        let c = u[(i, best)];
        nrm += c.re * c.re + c.im * c.im;
    }
    let last = u[(m - 1, best)];
    let resid = h[m - 1][m] * last.re.hypot(last.im) / nrm.sqrt().max(f64::MIN_POSITIVE);
    Ok((best_mod, resid))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm2(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
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
