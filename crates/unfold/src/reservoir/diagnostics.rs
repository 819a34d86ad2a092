//! The echo-state property made visible: do two different initial states forget their
//! difference under the same input, and how fast?
//!
//! [`echo_state_check`] drives copies of an ESN's reservoirs from several random initial states
//! (plus the zero state) with one input sequence and records, step by step, the largest distance
//! between any copy's state and the zero-start copy. A reservoir with the echo-state property
//! shows a distance that decays to round-off; one without it (too large a spectral radius for
//! the input's strength) keeps a distance of order one.

use super::esn::Esn;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The outcome of an echo-state check.
#[derive(Debug, Clone, PartialEq)]
pub struct EchoStateReport {
    /// Per step, the largest Euclidean distance (over all layers' states, divided by the square
    /// root of the number of units) between a random-start copy and the zero-start copy.
    pub distance: Vec<f64>,
    /// The first step after which the distance stays below the tolerance, if it does.
    pub converged_at: Option<usize>,
    /// The tolerance used.
    pub tolerance: f64,
    /// Mean per-step contraction factor of the distance over the steps before convergence
    /// (below 1: the initial state is forgotten geometrically).
    pub contraction: f64,
}

/// Runs `trials` random initial states (uniform in `[-1, 1]`) and the zero state through the
/// reservoirs of `esn` with the same `[T, D]` input (and, with feedback, the same fed-back
/// `teacher` outputs `[T, O]`).
pub fn echo_state_check(
    esn: &Esn,
    inputs: &[f64],
    teacher: Option<&[f64]>,
    trials: usize,
    tolerance: f64,
    seed: u64,
) -> Result<EchoStateReport> {
    let (d, o) = (esn.inputs, esn.outputs);
    let steps = inputs
        .len()
        .checked_div(d)
        .unwrap_or_else(|| teacher.map(|t| t.len() / o).unwrap_or(0));
    if steps == 0 || (d > 0 && inputs.len() != steps * d) {
        return Err(Error::InvalidConfig(format!(
            "the echo-state check needs a non-empty [T, {d}] input"
        )));
    }
    if trials == 0 {
        return Err(Error::InvalidConfig(
            "the echo-state check needs at least one trial".into(),
        ));
    }
    let mut rng = Rng::new(seed);
    let base = esn.state();
    let mut copies = vec![base.clone()];
    for _ in 0..trials {
        let mut s = base.clone();
        for x in s.x.iter_mut() {
            x.iter_mut().for_each(|v| *v = rng.uniform_range(-1.0, 1.0));
        }
        copies.push(s);
    }
    let units = esn.units() as f64;
    let mut distance = Vec::with_capacity(steps);
    for t in 0..steps {
        for c in copies.iter_mut() {
            if let Some(te) = teacher {
                if t > 0 {
                    c.y.copy_from_slice(&te[(t - 1) * o..t * o]);
                }
            }
            esn.advance(c, &inputs[t * d..(t + 1) * d])?;
        }
        let reference = &copies[0];
        let mut worst = 0.0f64;
        for c in &copies[1..] {
            let sq: f64 =
                c.x.iter()
                    .zip(&reference.x)
                    .flat_map(|(a, b)| a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)))
                    .sum();
            worst = worst.max((sq / units).sqrt());
        }
        distance.push(worst);
    }
    let converged_at = (0..steps)
        .rev()
        .take_while(|&t| distance[t] < tolerance)
        .last();
    let end = converged_at.unwrap_or(steps).max(1);
    let (first, last) = (
        distance[0].max(f64::MIN_POSITIVE),
        distance[end - 1].max(f64::MIN_POSITIVE),
    );
    let contraction = if end > 1 {
        (last / first).powf(1.0 / (end - 1) as f64)
    } else {
        0.0
    };
    Ok(EchoStateReport {
        distance,
        converged_at,
        tolerance,
        contraction,
    })
}
