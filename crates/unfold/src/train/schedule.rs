//! Learning-rate schedules and scheduled-sampling schedules, both functions of the step.
//!
//! [`LrSchedule`] gives the learning rate at step `k` (0-based, the number of updates already
//! made) with PyTorch's closed forms: constant, step decay (`StepLR`), exponential decay
//! (`ExponentialLR`), cosine annealing (`CosineAnnealingLR`), each optionally after a linear
//! warm-up (`LinearLR` then the schedule, as `SequentialLR` chains them).
//!
//! [`FeedSchedule`] gives the probability of feeding a model its own prediction instead of the
//! true previous output (scheduled sampling, Bengio et al. 2015, who write `eps_i` for the
//! probability of the truth; here `p = 1 - eps_i`): linear, exponential and inverse-sigmoid
//! decay of the truth's share.

use crate::error::{Error, Result};

/// The decay applied after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decay {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` steps.
    Step {
        /// Steps between decays.
        every: u64,
        /// Factor per decay.
        gamma: f64,
    },
    /// Multiply by `gamma` every step.
    Exponential {
        /// Factor per step.
        gamma: f64,
    },
    /// Half a cosine from the base rate down to `min_lr` over `period` steps, then `min_lr`
    /// (PyTorch's `CosineAnnealingLR` would climb back up after the period).
    Cosine {
        /// Steps from the base rate to `min_lr`.
        period: u64,
        /// The floor.
        min_lr: f64,
    },
}

/// A learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// The base learning rate.
    pub base: f64,
    /// Linear warm-up steps from `warmup_start * base` to `base` (0: none).
    pub warmup: u64,
    /// Starting factor of the warm-up (PyTorch's `start_factor`, default 1/3).
    pub warmup_start: f64,
    /// The decay after the warm-up.
    pub decay: Decay,
}

impl LrSchedule {
    /// A constant rate.
    pub fn constant(base: f64) -> Self {
        LrSchedule {
            base,
            warmup: 0,
            warmup_start: 1.0 / 3.0,
            decay: Decay::Constant,
        }
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        let bad = |w: &str| Err(Error::InvalidConfig(format!("learning-rate schedule: {w}")));
        if !(self.base > 0.0 && self.base.is_finite()) {
            return bad("the learning rate must be positive");
        }
        if self.warmup > 0 && !(self.warmup_start > 0.0 && self.warmup_start <= 1.0) {
            return bad("the warm-up start factor must be in (0, 1]");
        }
        match self.decay {
            Decay::Step { every: 0, .. } => bad("step decay needs a period of at least 1"),
            Decay::Cosine { period: 0, .. } => bad("cosine decay needs a period of at least 1"),
            Decay::Step { gamma, .. } | Decay::Exponential { gamma } if gamma <= 0.0 => {
                bad("the decay factor must be positive")
            }
            _ => Ok(()),
        }
    }

    /// The rate for update number `k` (0-based).
    pub fn at(&self, k: u64) -> f64 {
        if k < self.warmup {
            let s = self.warmup_start;
            return self.base * (s + (1.0 - s) * k as f64 / self.warmup as f64);
        }
        let k = k - self.warmup;
        match self.decay {
            Decay::Constant => self.base,
            Decay::Step { every, gamma } => self.base * gamma.powi((k / every) as i32),
            Decay::Exponential { gamma } => self.base * gamma.powi(k as i32),
            Decay::Cosine { period, min_lr } => {
                let k = k.min(period) as f64;
                min_lr
                    + (self.base - min_lr)
                        * (1.0 + (std::f64::consts::PI * k / period as f64).cos())
                        / 2.0
            }
        }
    }
}

/// The probability of feeding a model its own previous prediction at training step `k`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeedSchedule {
    /// Always the truth: pure teacher forcing.
    TeacherForcing,
    /// A fixed probability.
    Constant(f64),
    /// Truth's share `max(min_truth, 1 - k / steps)`, falling linearly.
    Linear {
        /// Steps over which the truth's share falls from 1 to `min_truth`.
        steps: u64,
        /// The floor of the truth's share.
        min_truth: f64,
    },
    /// Truth's share `base^k` (base < 1), floored at `min_truth`.
    Exponential {
        /// Decay per step.
        base: f64,
        /// The floor of the truth's share.
        min_truth: f64,
    },
    /// Truth's share `max(min_truth, c / (c + exp(k / c)))` (c >= 1): slow at first, then
    /// fast, then slow.
    InverseSigmoid {
        /// The time constant c, in steps.
        c: f64,
        /// The floor of the truth's share.
        min_truth: f64,
    },
}

impl FeedSchedule {
    /// Probability of feeding the model's own prediction at step `k`.
    pub fn prob(&self, k: u64) -> f64 {
        let k = k as f64;
        let truth = match *self {
            FeedSchedule::TeacherForcing => 1.0,
            FeedSchedule::Constant(p) => 1.0 - p,
            FeedSchedule::Linear { steps, min_truth } => {
                (1.0 - k / steps.max(1) as f64).max(min_truth)
            }
            FeedSchedule::Exponential { base, min_truth } => base.powf(k).max(min_truth),
            FeedSchedule::InverseSigmoid { c, min_truth } => {
                (c / (c + (k / c).exp())).max(min_truth)
            }
        };
        (1.0 - truth).clamp(0.0, 1.0)
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            FeedSchedule::TeacherForcing => true,
            FeedSchedule::Constant(p) => (0.0..=1.0).contains(&p),
            FeedSchedule::Linear { min_truth, .. } => (0.0..=1.0).contains(&min_truth),
            FeedSchedule::Exponential { base, min_truth } => {
                base > 0.0 && base <= 1.0 && (0.0..=1.0).contains(&min_truth)
            }
            FeedSchedule::InverseSigmoid { c, min_truth } => {
                c >= 1.0 && (0.0..=1.0).contains(&min_truth)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidConfig(format!(
                "scheduled sampling: bad values in {self:?}"
            )))
        }
    }
}
