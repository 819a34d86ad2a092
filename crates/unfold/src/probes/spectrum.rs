//! Spectra: singular values of the Jacobian products `d h(T) / d h(T-k)` along a replayed
//! sequence, eigenvalues of the linearised step, and eigenvalues of a square recurrent weight
//! matrix. Dense routines are faer's.

use super::ProbeView;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::Recurrent;
use crate::reservoir::spectral::dense_eigenvalues;
use faer::Mat;

/// The largest modulus of `(re, im)` eigenvalues.
pub fn spectral_radius_of(eigenvalues: &[(f64, f64)]) -> f64 {
    eigenvalues
        .iter()
        .map(|&(re, im)| re.hypot(im))
        .fold(0.0, f64::max)
}

/// For each lag `k` in `lags` (those up to the sequence's length), the singular values
/// (descending) of `J_k = d h(T) / d h(T-k)` along sequence `b` of the view's batch, `T` its
/// last step; `h(T-k)` is varied with the rest of the state at `T-k` held (the LSTM's c).
pub fn jacobian_singular_values<T: Float>(
    view: &ProbeView<'_, T>,
    b: usize,
    lags: &[usize],
) -> Result<Vec<(usize, Vec<f64>)>> {
    let (cell, p) = view.top();
    let h = view.rnn.config().hidden_size;
    let tr = view.replay(b)?;
    let (len, s) = (tr.len, tr.state);
    let deepest = lags.iter().copied().filter(|&k| k <= len).max();
    let Some(deepest) = deepest else {
        return Ok(Vec::new());
    };
    let mut d = vec![T::ZERO; h * s];
    for i in 0..h {
        d[i * s + i] = T::ONE;
    }
    let mut mats: Vec<(usize, Vec<f64>)> = Vec::new();
    tr.chain(cell, p, h, (len, len - deepest), &mut d, |i, d| {
        let k = len - i;
        if lags.contains(&k) {
            let j: Vec<f64> = (0..h * h)
                .map(|x| d[(x / h) * s + x % h].to_f64())
                .collect();
            mats.push((k, j));
        }
    });
    mats.into_iter()
        .map(|(k, j)| Ok((k, singular_values(h, &j)?)))
        .collect()
}

/// Singular values of a dense row-major `n x n` matrix, descending.
pub(crate) fn singular_values(n: usize, a: &[f64]) -> Result<Vec<f64>> {
    if a.iter().any(|v| !v.is_finite()) {
        return Err(Error::Numerical(
            "a Jacobian product is not finite (the state has exploded)".into(),
        ));
    }
    let m = Mat::<f64>::from_fn(n, n, |i, j| a[i * n + j]);
    let mut sv = m
        .singular_values()
        .map_err(|e| Error::Numerical(format!("singular value routine failed: {e:?}")))?;
    sv.sort_by(|x, y| y.total_cmp(x));
    Ok(sv)
}

/// Eigenvalues `(re, im)` of the linearised last step of sequence `b`: the Jacobian
/// `d s(T) / d s(T-1)` over the whole state row (`S x S`: h and, for an LSTM, c).
pub fn step_eigenvalues<T: Float>(view: &ProbeView<'_, T>, b: usize) -> Result<Vec<(f64, f64)>> {
    let (cell, p) = view.top();
    let tr = view.replay(b)?;
    let (len, s) = (tr.len, tr.state);
    if len == 0 {
        return Ok(Vec::new());
    }
    let mut d = vec![T::ZERO; s * s];
    for i in 0..s {
        d[i * s + i] = T::ONE;
    }
    tr.chain(cell, p, s, (len, len - 1), &mut d, |_, _| {});
    let j: Vec<f64> = d.iter().map(|v| v.to_f64()).collect();
    if j.iter().any(|v| !v.is_finite()) {
        return Err(Error::Numerical(
            "the step Jacobian is not finite (the state has exploded)".into(),
        ));
    }
    dense_eigenvalues(s, &j)
}

/// Eigenvalues `(re, im)` of stacked layer `layer`'s recurrent matrix (forward direction),
/// for a cell whose `weight_hh` is one square `H x H` matrix (the tanh and ReLU RNNs, leaky,
/// clockwork, deep-transition cells); `None` for the gated cells, whose `W_hh` stacks one block
/// per gate (read [`step_eigenvalues`] for them).
pub fn weight_eigenvalues<T: Float>(
    rnn: &Recurrent<T>,
    layer: usize,
) -> Result<Option<Vec<(f64, f64)>>> {
    let h = rnn.config().hidden_size;
    let specs = rnn.cell_fn(layer).param_specs();
    let Some(i) = specs
        .iter()
        .position(|s| s.name == "weight_hh" && s.shape == [h, h])
    else {
        return Ok(None);
    };
    let w: Vec<f64> = rnn
        .cell(layer, 0)
        .get(i)
        .iter()
        .map(|v| v.to_f64())
        .collect();
    if w.iter().any(|v| !v.is_finite()) {
        return Err(Error::Numerical("W_hh is not finite".into()));
    }
    dense_eigenvalues(h, &w).map(Some)
}
