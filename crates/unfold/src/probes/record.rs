//! One probe of a model at one training step, as the trainer records it: every probe of this
//! module on the batch just trained, and its JSON line for `metrics.jsonl`.

use super::{
    gradient_by_lag, jacobian_singular_values, spectral_radius_of, step_eigenvalues,
    weight_eigenvalues, LagProfile, ProbeView,
};
use crate::error::Result;
use crate::float::Float;

/// What to probe, and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// Probe every this many steps (and at the first and the last step).
    pub every: u64,
    /// Sequences of the batch followed back for the gradient by lag (default 4).
    pub sequences: usize,
    /// Output positions per sequence for a per-step loss (default 8).
    pub positions: usize,
    /// Lags `k` of the Jacobian products whose singular values are recorded (default 1, 10,
    /// 50).
    pub jacobian_lags: Vec<usize>,
    /// Singular values kept per Jacobian product (the largest; default 8).
    pub singular_values: usize,
}

impl ProbeConfig {
    /// The defaults, probing every `every` steps.
    pub fn every(every: u64) -> Self {
        ProbeConfig {
            every: every.max(1),
            sequences: 4,
            positions: 8,
            jacobian_lags: vec![1, 10, 50],
            singular_values: 8,
        }
    }

    /// Whether step `step` (counted from 1) of a run of `total` steps is probed.
    pub fn due(&self, step: u64, total: u64) -> bool {
        step == 1 || step == total || step.is_multiple_of(self.every)
    }
}

/// The probes of one step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProbeRecord {
    /// The step (counted from 1).
    pub step: u64,
    /// Gradient norm by lag.
    pub lag: LagProfile,
    /// Per lag `k`: the largest singular values of `d h(T) / d h(T-k)` (first sequence).
    pub jacobian: Vec<(usize, Vec<f64>)>,
    /// Eigenvalues of the linearised last step (first sequence).
    pub step_eigenvalues: Vec<(f64, f64)>,
    /// Eigenvalues of a square `W_hh`, when the cell has one.
    pub weight_eigenvalues: Option<Vec<(f64, f64)>>,
}

impl ProbeRecord {
    /// Spectral radius of the linearised step.
    pub fn step_radius(&self) -> f64 {
        spectral_radius_of(&self.step_eigenvalues)
    }

    /// Spectral radius of `W_hh`, when the cell has a square one.
    pub fn weight_radius(&self) -> Option<f64> {
        self.weight_eigenvalues.as_deref().map(spectral_radius_of)
    }

    /// The record as one JSON object (`"split":"probe"`), non-finite numbers as `null`.
    pub fn to_json(&self) -> String {
        let num = |v: f64| {
            if v.is_finite() {
                format!("{v}")
            } else {
                "null".into()
            }
        };
        let list = |v: &[f64]| v.iter().map(|&x| num(x)).collect::<Vec<_>>().join(",");
        let pairs = |v: &[(f64, f64)]| {
            v.iter()
                .map(|&(a, b)| format!("[{},{}]", num(a), num(b)))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut out = format!(
            "{{\"step\":{},\"split\":\"probe\",\"grad_by_lag\":[{}],\"step_radius\":{},\
             \"step_eigenvalues\":[{}]",
            self.step,
            list(&self.lag.norms),
            num(self.step_radius()),
            pairs(&self.step_eigenvalues)
        );
        if let Some(w) = &self.weight_eigenvalues {
            out += &format!(
                ",\"weight_radius\":{},\"weight_eigenvalues\":[{}]",
                num(spectral_radius_of(w)),
                pairs(w)
            );
        }
        let jac = self
            .jacobian
            .iter()
            .map(|(k, sv)| format!("\"{k}\":[{}]", list(sv)))
            .collect::<Vec<_>>()
            .join(",");
        out += &format!(",\"jacobian_singular_values\":{{{jac}}}}}");
        out
    }
}

/// Every probe of `cfg` on the view, at step `step`.
pub fn probe<T: Float>(
    view: &ProbeView<'_, T>,
    cfg: &ProbeConfig,
    step: u64,
) -> Result<ProbeRecord> {
    let lag = gradient_by_lag(view, cfg.sequences, cfg.positions)?;
    let mut jacobian = jacobian_singular_values(view, 0, &cfg.jacobian_lags)?;
    for (_, sv) in &mut jacobian {
        sv.truncate(cfg.singular_values);
    }
    let top = view.rnn.config().num_layers - 1;
    Ok(ProbeRecord {
        step,
        lag,
        jacobian,
        step_eigenvalues: step_eigenvalues(view, 0)?,
        weight_eigenvalues: weight_eigenvalues(view.rnn, top)?,
    })
}
