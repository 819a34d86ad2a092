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

/// The adding problem (Hochreiter & Schmidhuber 1997, experiment 4): each step carries a value
/// uniform in [-1, 1] and a marker; two steps are marked with 1 (the first among the first 10
/// steps, the second among the first `T/2 - 1`); the first and last steps carry marker -1
/// unless marked. The target is `0.5 + (X1 + X2) / 4` of the two marked values; a prediction
/// counts as correct when its absolute error is below 0.04. One target per sequence.
pub fn adding<T: Float>(n: usize, len: usize, seed: u64) -> Vec<Sequence<T>> {
    let mut rng = Rng::new(seed);
    let len = len.max(4);
    (0..n)
        .map(|_| {
            let first = rng.below(10.min(len / 2));
            let half = (len / 2).saturating_sub(1).max(2);
            let mut second = rng.below(half);
            while second == first {
                second = rng.below(half);
            }
            let mut x = Vec::with_capacity(2 * len);
            let mut sum = 0.0;
            for t in 0..len {
                let v = rng.uniform_range(-1.0, 1.0);
                let marked = t == first || t == second;
                let marker = if marked {
                    sum += v;
                    1.0
                } else if t == 0 || t == len - 1 {
                    -1.0
                } else {
                    0.0
                };
                x.push(T::from_f64(v));
                x.push(T::from_f64(marker));
            }
            Sequence {
                len,
                input: Values::Reals { width: 2, data: x },
                target: Values::Reals {
                    width: 1,
                    data: vec![T::from_f64(0.5 + sum / 4.0)],
                },
            }
        })
        .collect()
}

/// The copy memory task (Arjovsky, Shah & Bengio 2016): 10 symbols from 1..=8, then `delay - 1`
/// blanks (0), the delimiter 9, and 10 more blanks; the target is blank for the first
/// `delay + 10` steps and then the 10 symbols. Length `delay + 20`, 10 symbol classes; the
/// memoryless baseline has cross-entropy `10 ln 8 / (delay + 20)` per step.
pub fn copy_memory(n: usize, delay: usize, seed: u64) -> Vec<Sequence<f32>> {
    let mut rng = Rng::new(seed);
    let delay = delay.max(1);
    let len = delay + 20;
    (0..n)
        .map(|_| {
            let symbols: Vec<usize> = (0..10).map(|_| 1 + rng.below(8)).collect();
            let mut x = symbols.clone();
            x.extend(std::iter::repeat_n(0, delay - 1));
            x.push(9);
            x.extend(std::iter::repeat_n(0, 10));
            let mut y = vec![0; delay + 10];
            y.extend(&symbols);
            Sequence {
                len,
                input: Values::Symbols(x),
                target: Values::Symbols(y),
            }
        })
        .collect()
}

/// Parity of a bit string: `len_range` bits (0/1 as reals), class 1 when the number of ones is
/// odd. One target per sequence.
pub fn parity<T: Float>(n: usize, len_range: (usize, usize), seed: u64) -> Vec<Sequence<T>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let len = len_range.0 + rng.below(len_range.1 - len_range.0 + 1);
            let bits: Vec<usize> = (0..len).map(|_| rng.below(2)).collect();
            let class = bits.iter().sum::<usize>() % 2;
            Sequence {
                len,
                input: Values::Reals {
                    width: 1,
                    data: bits.iter().map(|&b| T::from_f64(b as f64)).collect(),
                },
                target: Values::Symbols(vec![class]),
            }
        })
        .collect()
}

/// The periods of [`pulse_period`]'s classes.
pub const PULSE_PERIODS: [usize; 4] = [16, 24, 32, 48];

/// Which of [`PULSE_PERIODS`] a noisy pulse train has: each sequence has a length drawn from
/// `len_range`, a unit pulse every `P` steps from a random phase, and Gaussian noise of
/// standard deviation 0.2 on every step; the class (0-3) is the index of `P`. Variable lengths
/// keep the number of pulses from giving the period away: the answer needs the time between
/// pulses, 16 to 48 steps, a slow periodic signal.
pub fn pulse_period<T: Float>(n: usize, len_range: (usize, usize), seed: u64) -> Vec<Sequence<T>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let len = len_range.0 + rng.below(len_range.1 - len_range.0 + 1);
            let class = rng.below(PULSE_PERIODS.len());
            let period = PULSE_PERIODS[class];
            let phase = rng.below(period);
            let data = (0..len)
                .map(|t| {
                    let pulse = if t % period == phase { 1.0 } else { 0.0 };
                    T::from_f64(pulse + 0.2 * rng.normal())
                })
                .collect();
            Sequence {
                len,
                input: Values::Reals { width: 1, data },
                target: Values::Symbols(vec![class]),
            }
        })
        .collect()
}

/// The Mackey-Glass series `dx/dt = 0.2 x(t - tau) / (1 + x(t - tau)^10) - 0.1 x(t)`,
/// integrated with 4th-order Runge-Kutta at step `dt = 0.1` (the delayed value linearly
/// interpolated on the grid, constant history `x = 1.2` before 0), sampled every `1 / dt`
/// integration steps (one sample per time unit), after discarding the first `discard` samples.
pub fn mackey_glass(samples: usize, tau: f64, discard: usize) -> Vec<f64> {
    let dt = 0.1;
    let per = (1.0 / dt) as usize;
    let lag = (tau / dt).round() as usize;
    let total = (samples + discard) * per + 1;
    let mut x = vec![1.2f64; total + 1];
    let f = |x: f64, xd: f64| 0.2 * xd / (1.0 + xd.powi(10)) - 0.1 * x;
    let delayed = |x: &[f64], i: usize, half: bool| -> f64 {
        // x(t - tau) at grid index i (plus half a step), constant history before 0.
        if i < lag {
            1.2
        } else if half {
            0.5 * (x[i - lag] + x[i - lag + 1])
        } else {
            x[i - lag]
        }
    };
    for i in 0..total {
        let xi = x[i];
        let d0 = delayed(&x, i, false);
        let dh = delayed(&x, i, true);
        let d1 = delayed(&x, i + 1, false);
        let k1 = f(xi, d0);
        let k2 = f(xi + 0.5 * dt * k1, dh);
        let k3 = f(xi + 0.5 * dt * k2, dh);
        let k4 = f(xi + dt * k3, d1);
        x[i + 1] = xi + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
    }
    (discard..discard + samples).map(|s| x[s * per]).collect()
}

/// One-step-ahead forecasting windows of a series: each sequence is `len` consecutive values as
/// input and the same values shifted by one as targets (one target per step).
pub fn forecast_windows<T: Float>(series: &[f64], len: usize, stride: usize) -> Vec<Sequence<T>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start + len < series.len() {
        let x: Vec<T> = series[start..start + len]
            .iter()
            .map(|&v| T::from_f64(v))
            .collect();
        let y: Vec<T> = series[start + 1..start + len + 1]
            .iter()
            .map(|&v| T::from_f64(v))
            .collect();
        out.push(Sequence {
            len,
            input: Values::Reals { width: 1, data: x },
            target: Values::Reals { width: 1, data: y },
        });
        start += stride.max(1);
    }
    out
}

/// Sums of three sines with random frequencies in [0.05, 0.3] rad/step, amplitudes in
/// [0.2, 0.6] and phases: one-step-ahead forecasting of `len` steps (one target per step).
pub fn sum_of_sines<T: Float>(n: usize, len: usize, seed: u64) -> Vec<Sequence<T>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let comps: Vec<(f64, f64, f64)> = (0..3)
                .map(|_| {
                    (
                        rng.uniform_range(0.05, 0.3),
                        rng.uniform_range(0.2, 0.6),
                        rng.uniform_range(0.0, std::f64::consts::TAU),
                    )
                })
                .collect();
            let v = |t: usize| {
                comps
                    .iter()
                    .map(|(w, a, p)| a * (w * t as f64 + p).sin())
                    .sum::<f64>()
            };
            Sequence {
                len,
                input: Values::Reals {
                    width: 1,
                    data: (0..len).map(|t| T::from_f64(v(t))).collect(),
                },
                target: Values::Reals {
                    width: 1,
                    data: (1..=len).map(|t| T::from_f64(v(t))).collect(),
                },
            }
        })
        .collect()
}

/// Reversing digit strings, a sequence-to-sequence task: sources are `min_len..=max_len`
/// digits (symbols 0-9), targets the same digits reversed, as symbols `SPECIALS + digit` of a
/// target vocabulary with the special symbols; decoder inputs are `<bos>` and the target
/// shifted, decoder targets end with `<end>`. Returns the sequences and their sources for
/// [`crate::data::Dataset::with_sources`].
pub fn reverse_digits(
    n: usize,
    min_len: usize,
    max_len: usize,
    seed: u64,
) -> (Vec<Sequence<f32>>, Vec<Values<f32>>) {
    use crate::data::vocab::{BOS, END, SPECIALS};
    let mut rng = Rng::new(seed);
    let mut seqs = Vec::with_capacity(n);
    let mut srcs = Vec::with_capacity(n);
    for _ in 0..n {
        let len = min_len + rng.below(max_len - min_len + 1);
        let digits: Vec<usize> = (0..len).map(|_| rng.below(10)).collect();
        let y: Vec<usize> = digits.iter().rev().map(|&d| SPECIALS + d).collect();
        let mut input = vec![BOS];
        input.extend(&y);
        let mut target = y;
        target.push(END);
        seqs.push(Sequence {
            len: input.len(),
            input: Values::Symbols(input),
            target: Values::Symbols(target),
        });
        srcs.push(Values::Symbols(digits));
    }
    (seqs, srcs)
}

/// Symbols of [`temporal_order`], one-hot in this order: the four distractors `a b c d`, the
/// two relevant symbols `X Y`, and the start and end markers `B E`.
pub const ORDER_SYMBOLS: [char; 8] = ['a', 'b', 'c', 'd', 'X', 'Y', 'B', 'E'];

/// The temporal order task (Hochreiter and Schmidhuber 1997, experiment 6a), scaled to any
/// length `len >= 10`: `B`, then distractors from `a b c d`, then `E`; an `X` or a `Y` replaces
/// the distractor at one step in `[len/10, len/5)` and at one in `[len/2, 3 len/5)`. The class
/// (0-3) is the order of the two: XX, XY, YX, YY. One-hot inputs of width 8, one target per
/// sequence; the first relevant symbol lies at least `0.8 len` steps before the end.
pub fn temporal_order<T: Float>(n: usize, len: usize, seed: u64) -> Vec<Sequence<T>> {
    let mut rng = Rng::new(seed);
    let len = len.max(10);
    let w = ORDER_SYMBOLS.len();
    let span = |rng: &mut Rng, lo: usize, hi: usize| lo + rng.below((hi - lo).max(1));
    (0..n)
        .map(|_| {
            let mut sym: Vec<usize> = (0..len).map(|_| rng.below(4)).collect();
            sym[0] = 6;
            sym[len - 1] = 7;
            let t1 = span(&mut rng, (len / 10).max(1), len / 5);
            let t2 = span(&mut rng, len / 2, 3 * len / 5);
            let (a, b) = (rng.below(2), rng.below(2));
            sym[t1] = 4 + a;
            sym[t2] = 4 + b;
            let mut data = vec![T::ZERO; len * w];
            for (t, &s) in sym.iter().enumerate() {
                data[t * w + s] = T::ONE;
            }
            Sequence {
                len,
                input: Values::Reals { width: w, data },
                target: Values::Symbols(vec![2 * a + b]),
            }
        })
        .collect()
}
