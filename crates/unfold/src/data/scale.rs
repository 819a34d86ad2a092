//! Input scaling kept with a model: per-channel standardisation `(x - mean) / std` fitted on
//! the training data, stored in the checkpoint so that a reloaded model reads raw values the
//! way it was trained to.

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

    /// A scaled value of channel `c` back in its original units.
    pub fn unscale(&self, c: usize, v: f64) -> f64 {
        v * self.std[c] + self.mean[c]
    }
}
