//! Small generated tasks, one per pattern of the chapter, used by the tests and examples: each
//! is a function of a seed, so runs are reproducible without any data file.

use crate::data::batch::{Sequence, Values};
use crate::float::Float;
use crate::rng::Rng;

/// Pattern III: sequences of `min_len..=max_len` reals uniform in [-1, 1]; the class is 1 when
/// their sum is positive. One target per sequence.
pub fn sign_of_sum<T: Float>(
    n: usize,
    min_len: usize,
    max_len: usize,
    seed: u64,
) -> Vec<Sequence<T>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let len = min_len + rng.below(max_len - min_len + 1);
            let xs: Vec<f64> = (0..len).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
            let class = usize::from(xs.iter().sum::<f64>() > 0.0);
            Sequence {
                len,
                input: Values::Reals {
                    width: 1,
                    data: xs.into_iter().map(T::from_f64).collect(),
                },
                target: Values::Symbols(vec![class]),
            }
        })
        .collect()
}

/// Pattern I: symbols from `0..k`; the tag at step t is `(x(t) + x(t-1)) mod k` (with x(-1) =
/// 0), so each tag needs the previous input. One target per step.
pub fn running_pair_sum<T: Float>(
    n: usize,
    k: usize,
    min_len: usize,
    max_len: usize,
    seed: u64,
) -> Vec<Sequence<T>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let len = min_len + rng.below(max_len - min_len + 1);
            let xs: Vec<usize> = (0..len).map(|_| rng.below(k)).collect();
            let ys = (0..len)
                .map(|t| (xs[t] + if t > 0 { xs[t - 1] } else { 0 }) % k)
                .collect();
            Sequence {
                len,
                input: Values::Symbols(xs),
                target: Values::Symbols(ys),
            }
        })
        .collect()
}

/// Pattern II: a point going round a circle, `y(t) = r (sin, cos)(phase + omega t)`, with
/// Gaussian observation noise of standard deviation `noise`; the model has no external input
/// and must continue the signal from its own previous output. Each sequence has a random phase,
/// a radius `r` drawn from `radius` and an angular step `omega` drawn from `omega` (give equal
/// bounds for a fixed value). One target per step: the noisy point (pass `noise = 0` for the
/// clean signal that free-running generation is scored against).
pub fn noisy_circle<T: Float>(
    n: usize,
    len: usize,
    omega: (f64, f64),
    radius: (f64, f64),
    noise: f64,
    seed: u64,
) -> Vec<Sequence<T>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let phase = rng.uniform_range(0.0, std::f64::consts::TAU);
            let w = rng.uniform_range(omega.0, omega.1);
            let r = rng.uniform_range(radius.0, radius.1);
            let mut y = Vec::with_capacity(2 * len);
            for t in 0..len {
                let a = phase + w * t as f64;
                y.push(T::from_f64(r * a.sin() + noise * rng.normal()));
                y.push(T::from_f64(r * a.cos() + noise * rng.normal()));
            }
            Sequence {
                len,
                input: Values::Reals {
                    width: 0,
                    data: Vec::new(),
                },
                target: Values::Reals { width: 2, data: y },
            }
        })
        .collect()
}
