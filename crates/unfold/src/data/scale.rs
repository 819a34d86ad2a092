//! Input scaling kept with a model: per-channel standardisation `(x - mean) / std` fitted on
//! the training data, and for series classifiers an optional downsampling (the mean of every
//! `k` consecutive steps, the piecewise aggregate approximation), stored in the checkpoint so
//! that a reloaded model reads raw values the way it was trained to.

use serde::{Deserialize, Serialize};

use crate::float::Float;

/// Per-channel standardisation `(x - mean) / std`, with the names of the channels and, for
/// classifiers, of the classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Column names (CSV) or channel numbers (.ts).
    pub names: Vec<String>,
    /// Means of the inputs.
    pub mean: Vec<f64>,
    /// Standard deviations of the inputs (1 where constant).
    pub std: Vec<f64>,
    /// The forecast column's index among the inputs (CSV only).
    pub target: Option<usize>,
    /// Class labels in order (.ts only).
    pub classes: Vec<String>,
    /// Consecutive steps averaged into one before scaling (1: none); see
    /// [`Scaler::downsampled`].
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub downsample: usize,
}

fn one() -> usize {
    1
}

fn is_one(k: &usize) -> bool {
    *k == 1
}

impl Scaler {
    /// Scales rows of raw values (`[n, channels]`, flattened).
    pub fn apply<T: Float>(&self, rows: &[f64]) -> Vec<T> {
        let w = self.mean.len();
        rows.iter()
            .enumerate()
            .map(|(i, &v)| T::from_f64((v - self.mean[i % w]) / self.std[i % w]))
            .collect()
    }

    /// Rows of raw values (`[steps, channels]`, flattened) shortened by the downsampling
    /// factor: each output step is the mean of `downsample` consecutive steps (the last of a
    /// series that does not divide evenly averages what is left), so a series of `n` steps
    /// becomes `ceil(n / downsample)`. Unscaled; [`Scaler::apply`] then scales.
    pub fn downsampled(&self, rows: &[f64]) -> Vec<f64> {
        let (k, w) = (self.downsample.max(1), self.mean.len().max(1));
        if k == 1 {
            return rows.to_vec();
        }
        let steps = rows.len() / w;
        let mut out = Vec::with_capacity(steps.div_ceil(k) * w);
        for group in rows[..steps * w].chunks(k * w) {
            let n = (group.len() / w) as f64;
            for c in 0..w {
                out.push(group.iter().skip(c).step_by(w).sum::<f64>() / n);
            }
        }
        out
    }

    /// A scaled value of channel `c` back in its original units.
    pub fn unscale(&self, c: usize, v: f64) -> f64 {
        v * self.std[c] + self.mean[c]
    }
}

#[cfg(test)]
mod tests {
    use super::Scaler;

    #[test]
    fn downsampling_averages_groups_of_steps_per_channel() {
        let mut sc = Scaler {
            names: vec!["a".into(), "b".into()],
            mean: vec![0.0, 0.0],
            std: vec![1.0, 1.0],
            target: None,
            classes: Vec::new(),
            downsample: 1,
        };
        // Five steps of two channels.
        let rows = [1.0, 10.0, 3.0, 30.0, 5.0, 50.0, 7.0, 70.0, 9.0, 90.0];
        assert_eq!(sc.downsampled(&rows), rows.to_vec());
        sc.downsample = 2;
        assert_eq!(sc.downsampled(&rows), vec![2.0, 20.0, 6.0, 60.0, 9.0, 90.0]);
        sc.downsample = 5;
        assert_eq!(sc.downsampled(&rows), vec![5.0, 50.0]);
        sc.downsample = 9;
        assert_eq!(sc.downsampled(&rows), vec![5.0, 50.0]);
        // Stored only when it is not 1, and read back as 1 when absent.
        let json = serde_json::to_string(&Scaler {
            downsample: 1,
            ..sc.clone()
        })
        .unwrap();
        assert!(!json.contains("downsample"));
        let back: Scaler = serde_json::from_str(&json).unwrap();
        assert_eq!(back.downsample, 1);
        let back: Scaler = serde_json::from_str(&serde_json::to_string(&sc).unwrap()).unwrap();
        assert_eq!(back.downsample, 9);
    }
}
