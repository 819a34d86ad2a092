//! The loss gradient on the hidden state against the lag: `||dL_τ / dh(τ - k)||` for every
//! lag `k`, averaged over output positions `τ` and sequences. For a loss at the end of the
//! sequence there is one position, the last step; for a loss at every step each position's
//! own loss term is followed back on its own (not the sum over later positions, which mixes
//! lags).

use super::ProbeView;
use crate::error::Result;
use crate::float::Float;

/// Mean gradient norm by lag.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LagProfile {
    /// `norms[k]`: the mean of `||dL_τ / dh(τ - k)||` over the chains that reach lag `k`.
    pub norms: Vec<f64>,
    /// `counts[k]`: how many chains reached lag `k`.
    pub counts: Vec<usize>,
}

impl LagProfile {
    /// The decay per step of the gradient norm: the slope of `ln ||g||` against the lag, by
    /// least squares over lags with a positive norm (`exp(slope) < 1`: vanishing).
    pub fn log_slope(&self) -> Option<f64> {
        let pts: Vec<(f64, f64)> = self
            .norms
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0.0 && n.is_finite())
            .map(|(k, &n)| (k as f64, n.ln()))
            .collect();
        if pts.len() < 2 {
            return None;
        }
        let m = pts.len() as f64;
        let (sx, sy) = pts
            .iter()
            .fold((0.0, 0.0), |(a, b), &(x, y)| (a + x, b + y));
        let (mx, my) = (sx / m, sy / m);
        let sxx: f64 = pts.iter().map(|&(x, _)| (x - mx).powi(2)).sum();
        let sxy: f64 = pts.iter().map(|&(x, y)| (x - mx) * (y - my)).sum();
        (sxx > 0.0).then(|| sxy / sxx)
    }
}

/// `||dL_τ / dh(τ - k)||` by lag for the first `sequences` sequences of the view's batch, each
/// followed back from at most `positions` output positions (evenly spaced over those that
/// carry a loss, the last always among them).
pub fn gradient_by_lag<T: Float>(
    view: &ProbeView<'_, T>,
    sequences: usize,
    positions: usize,
) -> Result<LagProfile> {
    let mut sums: Vec<f64> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    for b in 0..view.batch().min(sequences) {
        follow(view, b, positions, |tau, t, g| {
            let k = tau - t;
            if sums.len() <= k {
                sums.resize(k + 1, 0.0);
                counts.resize(k + 1, 0);
            }
            sums[k] += g.iter().map(|v| v.to_f64().powi(2)).sum::<f64>().sqrt();
            counts[k] += 1;
        })?;
    }
    let norms = sums
        .iter()
        .zip(&counts)
        .map(|(&s, &c)| if c > 0 { s / c as f64 } else { 0.0 })
        .collect();
    Ok(LagProfile { norms, counts })
}

/// Follows the loss gradient of sequence `b` back from at most `positions` of its output
/// positions: `visit(τ, t, dL_τ/dh(t))` for every position `τ` followed and every `t <= τ`.
pub(crate) fn follow<T: Float>(
    view: &ProbeView<'_, T>,
    b: usize,
    positions: usize,
    mut visit: impl FnMut(usize, usize, &[T]),
) -> Result<()> {
    let all = view.seeds(b);
    if all.is_empty() {
        return Ok(());
    }
    let (cell, p) = view.top();
    let h = view.rnn.config().hidden_size;
    let seeds = spread(all, positions.max(1));
    let tr = view.replay(b)?;
    let (rows, s) = (seeds.len(), tr.state);
    let top = seeds.last().map(|x| x.0).unwrap_or(0);
    let mut dcur = vec![T::ZERO; rows * s];
    tr.chain(cell, p, rows, (top + 1, 1), &mut dcur, |i, d| {
        let t = i - 1;
        for (r, (tau, g)) in seeds.iter().enumerate() {
            if *tau == t {
                d[r * s..r * s + h].copy_from_slice(g);
            }
            if *tau >= t {
                visit(*tau, t, &d[r * s..r * s + h]);
            }
        }
    });
    Ok(())
}

/// At most `n` of `all` (ascending by position), evenly spaced, the last always kept.
fn spread<X>(all: Vec<X>, n: usize) -> Vec<X> {
    let m = all.len();
    if m <= n {
        return all;
    }
    let keep: Vec<usize> = (0..n)
        .map(|j| (m - 1) - j * (m - 1) / (n - 1).max(1))
        .collect();
    all.into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, x)| x)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_the_last_and_spaces_the_rest() {
        let v: Vec<usize> = (0..10).collect();
        assert_eq!(spread(v.clone(), 3), vec![0, 5, 9]);
        assert_eq!(spread(v.clone(), 1), vec![9]);
        assert_eq!(spread(v, 20).len(), 10);
    }

    #[test]
    fn log_slope_of_an_exponential_is_its_rate() {
        let p = LagProfile {
            norms: (0..20).map(|k| 3.0 * 0.5f64.powi(k)).collect(),
            counts: vec![1; 20],
        };
        assert!((p.log_slope().unwrap() - 0.5f64.ln()).abs() < 1e-12);
    }
}
