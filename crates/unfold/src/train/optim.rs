//! Optimizers with PyTorch's update rules (the single-tensor `torch.optim` code paths, in the
//! same order of operations, so updates agree with PyTorch to rounding): SGD with momentum,
//! dampening and Nesterov; Adam (optionally AMSGrad); AdamW (decoupled weight decay);
//! RMSProp (optionally centred, with momentum); Adagrad (with learning-rate decay). The
//! learning rate is passed to every step, so any schedule can drive it.
//!
//! State buffers are kept per parameter tensor and can be saved into and restored from a
//! checkpoint exactly ([`Optimizer::save`], [`Optimizer::load`]).

use crate::checkpoint::TensorFile;
use crate::error::{Error, Result};
use crate::float::Float;

/// An optimizer and its hyper-parameters (PyTorch's defaults where it has them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerConfig {
    /// Stochastic gradient descent.
    Sgd {
        /// Momentum factor (0: none).
        momentum: f64,
        /// Dampening of the momentum.
        dampening: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 penalty added to the gradient.
        weight_decay: f64,
    },
    /// Adam; with `decoupled`, AdamW.
    Adam {
        /// Decay of the first moment.
        beta1: f64,
        /// Decay of the second moment.
        beta2: f64,
        /// Added to the denominator.
        eps: f64,
        /// L2 penalty (Adam) or decoupled decay (AdamW).
        weight_decay: f64,
        /// AdamW: decay the weights directly instead of adding to the gradient.
        decoupled: bool,
        /// Use the maximum of past second moments (AMSGrad).
        amsgrad: bool,
    },
    /// RMSProp.
    RmsProp {
        /// Smoothing constant.
        alpha: f64,
        /// Added to the denominator.
        eps: f64,
        /// Momentum factor.
        momentum: f64,
        /// Normalise by the centred second moment (an estimate of the variance).
        centered: bool,
        /// L2 penalty.
        weight_decay: f64,
    },
    /// Adagrad.
    Adagrad {
        /// Learning-rate decay per step.
        lr_decay: f64,
        /// Added to the denominator.
        eps: f64,
        /// L2 penalty.
        weight_decay: f64,
        /// Initial value of the sum of squares.
        initial_accumulator: f64,
    },
}

impl OptimizerConfig {
    /// SGD without momentum.
    pub fn sgd() -> Self {
        OptimizerConfig::Sgd {
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// Adam with PyTorch's defaults.
    pub fn adam() -> Self {
        OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            amsgrad: false,
        }
    }

    /// AdamW with PyTorch's defaults (weight decay 0.01).
    pub fn adamw() -> Self {
        OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            decoupled: true,
            amsgrad: false,
        }
    }

    /// RMSProp with PyTorch's defaults.
    pub fn rmsprop() -> Self {
        OptimizerConfig::RmsProp {
            alpha: 0.99,
            eps: 1e-8,
            momentum: 0.0,
            centered: false,
            weight_decay: 0.0,
        }
    }

    /// Adagrad with PyTorch's defaults.
    pub fn adagrad() -> Self {
        OptimizerConfig::Adagrad {
            lr_decay: 0.0,
            eps: 1e-10,
            weight_decay: 0.0,
            initial_accumulator: 0.0,
        }
    }

    /// By name: `sgd`, `momentum` (SGD, 0.9), `nesterov`, `adam`, `adamw`, `rmsprop`, `adagrad`.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "sgd" => Self::sgd(),
            "momentum" => OptimizerConfig::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                nesterov: false,
                weight_decay: 0.0,
            },
            "nesterov" => OptimizerConfig::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                nesterov: true,
                weight_decay: 0.0,
            },
            "adam" => Self::adam(),
            "adamw" => Self::adamw(),
            "rmsprop" => Self::rmsprop(),
            "adagrad" => Self::adagrad(),
            other => {
                return Err(Error::InvalidConfig(format!(
                    "unknown optimizer '{other}' (sgd, momentum, nesterov, adam, adamw, rmsprop, \
                     adagrad)"
                )))
            }
        })
    }

    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd { nesterov: true, .. } => "nesterov",
            OptimizerConfig::Sgd { .. } => "sgd",
            OptimizerConfig::Adam {
                decoupled: true, ..
            } => "adamw",
            OptimizerConfig::Adam { .. } => "adam",
            OptimizerConfig::RmsProp { .. } => "rmsprop",
            OptimizerConfig::Adagrad { .. } => "adagrad",
        }
    }

    /// Names of the state buffers kept per parameter.
    fn buffers(&self) -> &'static [&'static str] {
        match *self {
            OptimizerConfig::Sgd { momentum, .. } if momentum != 0.0 => &["momentum_buffer"],
            OptimizerConfig::Sgd { .. } => &[],
            OptimizerConfig::Adam { amsgrad: true, .. } => {
                &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
            }
            OptimizerConfig::Adam { .. } => &["exp_avg", "exp_avg_sq"],
            OptimizerConfig::RmsProp {
                centered, momentum, ..
            } => match (centered, momentum != 0.0) {
                (true, true) => &["square_avg", "grad_avg", "momentum_buffer"],
                (true, false) => &["square_avg", "grad_avg"],
                (false, true) => &["square_avg", "momentum_buffer"],
                (false, false) => &["square_avg"],
            },
            OptimizerConfig::Adagrad { .. } => &["sum"],
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |w: &str| Err(Error::InvalidConfig(format!("optimizer: {w}")));
        match *self {
            OptimizerConfig::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
            } => {
                if momentum < 0.0 || weight_decay < 0.0 {
                    return bad("momentum and weight decay must be >= 0");
                }
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return bad("Nesterov momentum needs momentum > 0 and zero dampening");
                }
            }
            OptimizerConfig::Adam {
                beta1, beta2, eps, ..
            } => {
                if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) || eps < 0.0 {
                    return bad("betas must be in [0, 1) and eps >= 0");
                }
            }
            OptimizerConfig::RmsProp { alpha, eps, .. } => {
                if alpha < 0.0 || eps < 0.0 {
                    return bad("alpha and eps must be >= 0");
                }
            }
            OptimizerConfig::Adagrad { lr_decay, eps, .. } => {
                if lr_decay < 0.0 || eps < 0.0 {
                    return bad("lr_decay and eps must be >= 0");
                }
            }
        }
        Ok(())
    }
}

/// An optimizer with its state for one model's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer<T> {
    config: OptimizerConfig,
    /// Steps taken.
    step: u64,
    /// Per parameter tensor: its state buffers (created on the first step).
    state: Vec<Vec<Vec<T>>>,
}

fn lerp<T: Float>(a: &mut T, b: T, w: T) {
    // PyTorch's lerp for weight < 0.5: a + w * (b - a).
    *a += w * (b - *a);
}

impl<T: Float> Optimizer<T> {
    /// A fresh optimizer.
    pub fn new(config: OptimizerConfig) -> Result<Self> {
        config.validate()?;
        Ok(Optimizer {
            config,
            step: 0,
            state: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of every parameter tensor with its gradient at learning rate `lr`.
    pub fn step(&mut self, params: Vec<&mut [T]>, grads: Vec<&[T]>, lr: f64) -> Result<()> {
        if params.len() != grads.len() {
            return Err(Error::InvalidCall(format!(
                "{} parameter tensors but {} gradients",
                params.len(),
                grads.len()
            )));
        }
        if self.state.is_empty() {
            let nb = self.config.buffers().len();
            self.state = params
                .iter()
                .map(|p| vec![vec![T::ZERO; p.len()]; nb])
                .collect();
            if let OptimizerConfig::Adagrad {
                initial_accumulator,
                ..
            } = self.config
            {
                for s in &mut self.state {
                    s[0].fill(T::from_f64(initial_accumulator));
                }
            }
        }
        if self.state.len() != params.len()
            || params
                .iter()
                .zip(&grads)
                .zip(&self.state)
                .any(|((p, g), s)| {
                    p.len() != g.len() || s.first().is_some_and(|b| b.len() != p.len())
                })
        {
            return Err(Error::InvalidCall(
                "parameter, gradient and optimizer state shapes differ".into(),
            ));
        }
        self.step += 1;
        let step = self.step;
        for ((p, g), st) in params.into_iter().zip(grads).zip(self.state.iter_mut()) {
            update(&self.config, p, g, st, lr, step);
        }
        Ok(())
    }

    /// Writes the state into `file` under `optim.`: one tensor per parameter and buffer,
    /// named after the parameters, and the step count in the metadata.
    pub fn save(&self, file: &mut TensorFile, param_names: &[String]) {
        file.metadata
            .insert("optim.name".into(), self.config.name().into());
        file.metadata
            .insert("optim.step".into(), self.step.to_string());
        for (name, st) in param_names.iter().zip(&self.state) {
            for (buf, bname) in st.iter().zip(self.config.buffers()) {
                file.insert(&format!("optim.{name}.{bname}"), &[buf.len()], buf);
            }
        }
    }

    /// Restores the state written by [`Optimizer::save`] for the same parameters and kind of
    /// optimizer.
    pub fn load(
        &mut self,
        file: &TensorFile,
        param_names: &[String],
        sizes: &[usize],
    ) -> Result<()> {
        let step: u64 = file
            .metadata
            .get("optim.step")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::CheckpointMismatch("optimizer step count missing".into()))?;
        if file.metadata.get("optim.name").map(String::as_str) != Some(self.config.name()) {
            return Err(Error::CheckpointMismatch(format!(
                "checkpoint optimizer is {:?}, this run uses {}",
                file.metadata.get("optim.name"),
                self.config.name()
            )));
        }
        if step == 0 {
            self.step = 0;
            self.state.clear();
            return Ok(());
        }
        let mut state = Vec::new();
        for (name, &n) in param_names.iter().zip(sizes) {
            let mut st = Vec::new();
            for bname in self.config.buffers() {
                let key = format!("optim.{name}.{bname}");
                let t = file
                    .tensors
                    .get(&key)
                    .ok_or_else(|| Error::CheckpointMismatch(format!("missing {key}")))?;
                if t.numel() != n {
                    return Err(Error::CheckpointMismatch(format!(
                        "{key} has {} values, expected {n}",
                        t.numel()
                    )));
                }
                st.push(t.to_vec()?);
            }
            state.push(st);
        }
        self.step = step;
        self.state = state;
        Ok(())
    }
}

fn update<T: Float>(
    cfg: &OptimizerConfig,
    p: &mut [T],
    g: &[T],
    st: &mut [Vec<T>],
    lr: f64,
    step: u64,
) {
    let t = |v: f64| T::from_f64(v);
    match *cfg {
        OptimizerConfig::Sgd {
            momentum,
            dampening,
            nesterov,
            weight_decay,
        } => {
            let (wd, m, damp, neg_lr) = (t(weight_decay), t(momentum), t(1.0 - dampening), t(-lr));
            for i in 0..p.len() {
                let mut d = g[i];
                if weight_decay != 0.0 {
                    d += wd * p[i];
                }
                if momentum != 0.0 {
                    let buf = &mut st[0][i];
                    // PyTorch initialises the buffer with the first gradient, undamped.
                    *buf = if step == 1 { d } else { m * *buf + damp * d };
                    d = if nesterov { d + m * *buf } else { *buf };
                }
                p[i] += neg_lr * d;
            }
        }
        OptimizerConfig::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
            amsgrad,
        } => {
            if decoupled && weight_decay != 0.0 {
                let f = t(1.0 - lr * weight_decay);
                p.iter_mut().for_each(|v| *v *= f);
            }
            let bc1 = 1.0 - beta1.powi(step as i32);
            let bc2_sqrt = (1.0 - beta2.powi(step as i32)).sqrt();
            let step_size = t(lr / bc1);
            let (w1, b2, w2, wd, e, bc2s) = (
                t(1.0 - beta1),
                t(beta2),
                t(1.0 - beta2),
                t(weight_decay),
                t(eps),
                t(bc2_sqrt),
            );
            let (m, rest) = st.split_at_mut(1);
            let (v, vmax) = rest.split_at_mut(1);
            for i in 0..p.len() {
                let mut d = g[i];
                if !decoupled && weight_decay != 0.0 {
                    d += wd * p[i];
                }
                lerp(&mut m[0][i], d, w1);
                v[0][i] = v[0][i] * b2 + w2 * d * d;
                let second = if amsgrad {
                    let mx = &mut vmax[0][i];
                    if v[0][i] > *mx {
                        *mx = v[0][i];
                    }
                    *mx
                } else {
                    v[0][i]
                };
                let denom = second.sqrt() / bc2s + e;
                p[i] -= step_size * (m[0][i] / denom);
            }
        }
        OptimizerConfig::RmsProp {
            alpha,
            eps,
            momentum,
            centered,
            weight_decay,
        } => {
            let (a, wa, wd, e, m, lr_t) = (
                t(alpha),
                t(1.0 - alpha),
                t(weight_decay),
                t(eps),
                t(momentum),
                t(lr),
            );
            for i in 0..p.len() {
                let mut d = g[i];
                if weight_decay != 0.0 {
                    d += wd * p[i];
                }
                st[0][i] = st[0][i] * a + wa * d * d;
                let avg = if centered {
                    lerp(&mut st[1][i], d, wa);
                    let ga = st[1][i];
                    (st[0][i] - ga * ga).sqrt() + e
                } else {
                    st[0][i].sqrt() + e
                };
                if momentum != 0.0 {
                    let bi = if centered { 2 } else { 1 };
                    let buf = &mut st[bi][i];
                    *buf = *buf * m + d / avg;
                    p[i] -= lr_t * *buf;
                } else {
                    p[i] -= lr_t * (d / avg);
                }
            }
        }
        OptimizerConfig::Adagrad {
            lr_decay,
            eps,
            weight_decay,
            ..
        } => {
            let clr = t(lr / (1.0 + (step - 1) as f64 * lr_decay));
            let (wd, e) = (t(weight_decay), t(eps));
            for i in 0..p.len() {
                let mut d = g[i];
                if weight_decay != 0.0 {
                    d += wd * p[i];
                }
                st[0][i] += d * d;
                let std = st[0][i].sqrt() + e;
                p[i] -= clr * (d / std);
            }
        }
    }
}
