//! Output layers as probability distributions (the chapter's "RNNs as directed graphical
//! models"): the network's output row `o(t)` parameterises `P(y(t) | ...)` and training minimises
//! the negative log-likelihood. Each distribution gives the NLL of a batch of rows, its exact
//! gradient with respect to `o` (and to its own parameters), per-row log-likelihoods for the
//! sequence log-likelihood, and a prediction or sample for feeding outputs back.
//!
//! - [`OutputKind::Categorical`]: softmax over symbols, cross-entropy; an optional padding symbol
//!   whose rows are ignored.
//! - [`OutputKind::Gaussian`]: mean `o`, unit variance (mean squared error up to a constant and a
//!   factor 1/2) or a learned per-output log-variance.
//! - [`OutputKind::Bernoulli`]: `P(y=1) = sigmoid(o)` per output, with the numerically stable
//!   binary cross-entropy `max(o,0) - o y + log(1 + exp(-|o|))`.

use crate::error::{check_len, Error, Result};
use crate::float::Float;
use crate::layers::params::{ParamSpec, Parameters};
use crate::rng::Rng;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// Which distribution an output row parameterises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OutputKind {
    /// Softmax over `classes` symbols. Rows whose target is `pad` are not scored.
    Categorical {
        /// Number of symbols.
        classes: usize,
        /// A padding symbol to ignore, if any.
        pad: Option<usize>,
    },
    /// Independent Gaussians over `dim` reals with mean `o`.
    Gaussian {
        /// Number of outputs.
        dim: usize,
        /// Learn one log-variance per output (otherwise the variance is 1).
        learn_variance: bool,
    },
    /// Independent Bernoulli variables, `P(y_j = 1) = sigmoid(o_j)`.
    Bernoulli {
        /// Number of outputs.
        dim: usize,
    },
}

impl OutputKind {
    /// Width of the output row `o(t)` this distribution reads.
    pub fn width(&self) -> usize {
        match *self {
            OutputKind::Categorical { classes, .. } => classes,
            OutputKind::Gaussian { dim, .. } | OutputKind::Bernoulli { dim } => dim,
        }
    }

    /// True when targets are symbol ids (otherwise they are reals, `width` per row).
    pub fn symbolic(&self) -> bool {
        matches!(self, OutputKind::Categorical { .. })
    }
}

/// The targets of a batch of rows.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a, T> {
    /// One symbol id per row.
    Symbols(&'a [usize]),
    /// `width` reals per row (0/1 for a Bernoulli output).
    Reals(&'a [T]),
}

/// Sums over a batch of scored rows, mergeable across batches. Turn them into the usual metrics
/// with the methods (nats, bits, perplexity, accuracy, mean squared error).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossStats {
    /// Sum over scored rows of `-log P(y(t) | ...)`, in nats.
    pub nll: f64,
    /// Number of scored rows (symbols, steps or sequences).
    pub rows: usize,
    /// Correct predictions (argmax for symbols, thresholded for Bernoulli values).
    pub correct: usize,
    /// Number of predictions `correct` counts over.
    pub judged: usize,
    /// Sum of squared errors of the predicted mean (Gaussian and Bernoulli outputs).
    pub sq_err: f64,
    /// Number of real values `sq_err` sums over.
    pub values: usize,
}

impl LossStats {
    /// Adds another batch's sums.
    pub fn merge(&mut self, o: &LossStats) {
        self.nll += o.nll;
        self.rows += o.rows;
        self.correct += o.correct;
        self.judged += o.judged;
        self.sq_err += o.sq_err;
        self.values += o.values;
    }

    /// Mean negative log-likelihood per scored row, in nats (the training loss).
    pub fn mean_nll(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.nll / self.rows as f64
        }
    }

    /// Mean NLL in bits (bits per symbol for a categorical output).
    pub fn bits_per_symbol(&self) -> f64 {
        self.mean_nll() / std::f64::consts::LN_2
    }

    /// `exp(mean NLL)`: perplexity for a categorical output.
    pub fn perplexity(&self) -> f64 {
        self.mean_nll().exp()
    }

    /// Share of correct predictions, when the output has any.
    pub fn accuracy(&self) -> Option<f64> {
        (self.judged > 0).then(|| self.correct as f64 / self.judged as f64)
    }

    /// Mean squared error of the predicted means, when the output is real-valued.
    pub fn mse(&self) -> Option<f64> {
        (self.values > 0).then(|| self.sq_err / self.values as f64)
    }

    /// A metric by name: `loss`/`nll`, `bits`, `perplexity`, `accuracy`, `error` (1 -
    /// accuracy), `mse`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "loss" | "nll" => Some(self.mean_nll()),
            "bits" => Some(self.bits_per_symbol()),
            "perplexity" => Some(self.perplexity()),
            "accuracy" => self.accuracy(),
            "error" => self.accuracy().map(|a| 1.0 - a),
            "mse" => self.mse(),
            _ => None,
        }
    }
}

/// An output distribution and its parameters (only a learned Gaussian variance has any).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputLayer<T> {
    kind: OutputKind,
    /// `[dim]` log-variances of a Gaussian with learned variance, else empty.
    pub log_var: Vec<T>,
}

impl<T: Float> OutputLayer<T> {
    /// A distribution of the given kind; a learned variance starts at 1 (log-variance 0).
    pub fn new(kind: OutputKind) -> Result<Self> {
        if kind.width() == 0 {
            return Err(Error::InvalidConfig(
                "an output distribution needs at least one output".into(),
            ));
        }
        if let OutputKind::Categorical {
            classes,
            pad: Some(p),
        } = kind
        {
            if p >= classes {
                return Err(Error::InvalidConfig(format!(
                    "padding symbol {p} is outside the {classes} classes"
                )));
            }
        }
        let log_var = match kind {
            OutputKind::Gaussian {
                dim,
                learn_variance: true,
            } => vec![T::ZERO; dim],
            _ => Vec::new(),
        };
        Ok(OutputLayer { kind, log_var })
    }

    /// Zero parameters of the same shape: the gradient buffer.
    pub fn zeros_like(&self) -> Self {
        OutputLayer {
            kind: self.kind,
            log_var: vec![T::ZERO; self.log_var.len()],
        }
    }

    /// The distribution's kind.
    pub fn kind(&self) -> OutputKind {
        self.kind
    }

    /// Width of the output rows.
    pub fn width(&self) -> usize {
        self.kind.width()
    }

    fn check_target(&self, rows: usize, target: &Target<'_, T>) -> Result<()> {
        match (self.kind, target) {
            (OutputKind::Categorical { classes, .. }, Target::Symbols(s)) => {
                check_len("symbol targets", rows, s.len())?;
                if let Some(p) = s.iter().position(|&y| y >= classes) {
                    return Err(Error::Shape {
                        what: format!("target symbol at row {p}"),
                        expected: format!("< {classes} (the number of classes)"),
                        got: s[p].to_string(),
                    });
                }
                Ok(())
            }
            (OutputKind::Categorical { .. }, Target::Reals(_)) => Err(Error::InvalidCall(
                "a categorical output needs symbol targets".into(),
            )),
            (_, Target::Reals(r)) => {
                check_len("real targets [N, dim]", rows * self.width(), r.len())
            }
            (_, Target::Symbols(_)) => Err(Error::InvalidCall(
                "a Gaussian or Bernoulli output needs real-valued targets".into(),
            )),
        }
    }

    /// Negative log-likelihood of `rows` output rows `out` (`[rows, width]`) against `target`.
    /// Rows with `mask[r] == false` (and padding symbols) are not scored. `row_ll`, when given,
    /// receives each row's log-likelihood (0 for unscored rows).
    pub fn nll(
        &self,
        out: &[T],
        rows: usize,
        target: Target<'_, T>,
        mask: Option<&[bool]>,
        row_ll: Option<&mut [f64]>,
    ) -> Result<LossStats> {
        let scored = ScoredRows {
            out,
            rows,
            target,
            mask,
        };
        self.score(scored, 1.0, None, row_ll)
    }

    /// [`OutputLayer::nll`] and its gradient: `dout` receives `scale * d(sum NLL)/d out` (zero
    /// on unscored rows), and the distribution's own parameter gradients (the Gaussian's
    /// log-variances) are *added* to `dparams`.
    pub fn nll_grad(
        &self,
        out: &[T],
        rows: usize,
        target: Target<'_, T>,
        mask: Option<&[bool]>,
        scale: f64,
        (dout, dparams): (&mut [T], &mut OutputLayer<T>),
    ) -> Result<LossStats> {
        let scored = ScoredRows {
            out,
            rows,
            target,
            mask,
        };
        self.score(scored, scale, Some((dout, dparams)), None)
    }

    /// What [`OutputLayer::nll`] and [`OutputLayer::nll_grad`] share.
    fn score(
        &self,
        ScoredRows {
            out,
            rows,
            target,
            mask,
        }: ScoredRows<'_, T>,
        scale: f64,
        grad: Option<(&mut [T], &mut OutputLayer<T>)>,
        mut row_ll: Option<&mut [f64]>,
    ) -> Result<LossStats> {
        let w = self.width();
        check_len("output rows [N, width]", rows * w, out.len())?;
        self.check_target(rows, &target)?;
        if let Some(m) = mask {
            check_len("row mask", rows, m.len())?;
        }
        if let Some(ll) = row_ll.as_deref() {
            check_len("row log-likelihoods", rows, ll.len())?;
        }
        let (mut dout, mut dparams) = match grad {
            Some((d, p)) => {
                check_len("output gradient [N, width]", rows * w, d.len())?;
                check_len("log-variance gradient", self.log_var.len(), p.log_var.len())?;
                (Some(d), Some(p))
            }
            None => (None, None),
        };
        let mut st = LossStats::default();
        let sc = T::from_f64(scale);
        for r in 0..rows {
            let o = &out[r * w..(r + 1) * w];
            let mut scored = mask.is_none_or(|m| m[r]);
            if let (OutputKind::Categorical { pad: Some(p), .. }, Target::Symbols(s)) =
                (self.kind, &target)
            {
                scored &= s[r] != p;
            }
            if !scored {
                if let Some(d) = dout.as_deref_mut() {
                    d[r * w..(r + 1) * w].fill(T::ZERO);
                }
                if let Some(ll) = row_ll.as_deref_mut() {
                    ll[r] = 0.0;
                }
                continue;
            }
            let d = dout.as_deref_mut().map(|d| &mut d[r * w..(r + 1) * w]);
            let nll = match (self.kind, &target) {
                (OutputKind::Categorical { .. }, Target::Symbols(s)) => {
                    categorical_row(o, s[r], sc, d, &mut st)
                }
                (OutputKind::Gaussian { .. }, Target::Reals(y)) => {
                    let y = &y[r * w..(r + 1) * w];
                    gaussian_row(o, y, &self.log_var, sc, d, dparams.as_deref_mut(), &mut st)
                }
                (OutputKind::Bernoulli { .. }, Target::Reals(y)) => {
                    bernoulli_row(o, &y[r * w..(r + 1) * w], sc, d, &mut st)
                }
                _ => unreachable!("targets checked above"),
            };
            st.nll += nll;
            st.rows += 1;
            if let Some(ll) = row_ll.as_deref_mut() {
                ll[r] = -nll;
            }
        }
        Ok(st)
    }

    /// The value fed back for an output row: the most likely symbol (`greedy`) or a sample from
    /// the softmax as a symbol id; the mean (`greedy`) or a sample for a Gaussian; the
    /// probability thresholded at 1/2 (`greedy`) or a 0/1 sample for a Bernoulli. Reals are
    /// written to `y` (`[width]`); the symbol id is returned for a categorical output.
    pub fn predict(&self, o: &[T], greedy: bool, rng: &mut Rng, y: &mut [T]) -> usize {
        match self.kind {
            OutputKind::Categorical { .. } => {
                if greedy {
                    argmax(o)
                } else {
                    sample_softmax(o, rng)
                }
            }
            OutputKind::Gaussian { .. } => {
                for j in 0..o.len() {
                    y[j] = if greedy {
                        o[j]
                    } else {
                        let sd = self
                            .log_var
                            .get(j)
                            .map_or(1.0, |lv| (0.5 * lv.to_f64()).exp());
                        T::from_f64(o[j].to_f64() + sd * rng.normal())
                    };
                }
                0
            }
            OutputKind::Bernoulli { .. } => {
                for j in 0..o.len() {
                    let p = o[j].sigmoid().to_f64();
                    let on = if greedy { p > 0.5 } else { rng.uniform() < p };
                    y[j] = if on { T::ONE } else { T::ZERO };
                }
                0
            }
        }
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax<T: Float>(o: &[T]) -> usize {
    let mut best = 0;
    for (j, &v) in o.iter().enumerate() {
        if v > o[best] {
            best = j;
        }
    }
    best
}

/// Draws a symbol from `softmax(o)`.
pub fn sample_softmax<T: Float>(o: &[T], rng: &mut Rng) -> usize {
    let m = o[argmax(o)].to_f64();
    let total: f64 = o.iter().map(|v| (v.to_f64() - m).exp()).sum();
    let mut u = rng.uniform() * total;
    for (j, v) in o.iter().enumerate() {
        u -= (v.to_f64() - m).exp();
        if u <= 0.0 {
            return j;
        }
    }
    o.len() - 1
}

fn categorical_row<T: Float>(
    o: &[T],
    y: usize,
    sc: T,
    d: Option<&mut [T]>,
    st: &mut LossStats,
) -> f64 {
    let best = argmax(o);
    let m = o[best];
    // The exponentials go into a vectorisable loop (into the gradient row when there is one,
    // which then only needs scaling), and their sum into independent partial sums.
    let sum = match d {
        Some(d) => {
            for (dj, &v) in d.iter_mut().zip(o) {
                *dj = (v - m).exp();
            }
            let sum = lane_sum(d);
            let inv = sc / sum;
            for dj in d.iter_mut() {
                *dj *= inv;
            }
            d[y] -= sc;
            sum
        }
        None => {
            let mut e = [T::ZERO; SUM_LANES];
            let mut sum = T::ZERO;
            for chunk in o.chunks(SUM_LANES) {
                for (ej, &v) in e.iter_mut().zip(chunk) {
                    *ej = (v - m).exp();
                }
                sum += lane_sum(&e[..chunk.len()]);
            }
            sum
        }
    };
    let lse = m + sum.ln();
    st.correct += usize::from(best == y);
    st.judged += 1;
    (lse - o[y]).to_f64()
}

/// Partial sums in [`lane_sum`].
const SUM_LANES: usize = 16;

/// Sum with [`SUM_LANES`] independent partial sums (vectorisable, unlike one running sum).
fn lane_sum<T: Float>(v: &[T]) -> T {
    let mut acc = [T::ZERO; SUM_LANES];
    let chunks = v.chunks_exact(SUM_LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    let mut s = T::ZERO;
    for &x in tail {
        s += x;
    }
    for a in acc {
        s += a;
    }
    s
}

fn gaussian_row<T: Float>(
    o: &[T],
    y: &[T],
    log_var: &[T],
    sc: T,
    d: Option<&mut [T]>,
    dparams: Option<&mut OutputLayer<T>>,
    st: &mut LossStats,
) -> f64 {
    let half = T::from_f64(0.5);
    let mut nll = 0.0;
    let mut dd = d;
    let mut dp = dparams;
    for j in 0..o.len() {
        let e = o[j] - y[j];
        st.sq_err += (e * e).to_f64();
        let (lv, inv_var) = match log_var.get(j) {
            Some(&lv) => (lv, (-lv).exp()),
            None => (T::ZERO, T::ONE),
        };
        nll += 0.5 * (LN_2PI + lv.to_f64() + (e * e * inv_var).to_f64());
        if let Some(d) = dd.as_deref_mut() {
            d[j] = sc * e * inv_var;
        }
        if let (Some(p), Some(_)) = (dp.as_deref_mut(), log_var.get(j)) {
            p.log_var[j] += sc * half * (T::ONE - e * e * inv_var);
        }
    }
    st.values += o.len();
    nll
}

fn bernoulli_row<T: Float>(
    o: &[T],
    y: &[T],
    sc: T,
    d: Option<&mut [T]>,
    st: &mut LossStats,
) -> f64 {
    let mut nll = 0.0;
    let mut dd = d;
    for j in 0..o.len() {
        let z = o[j];
        let p = z.sigmoid();
        // max(z, 0) - z y + log(1 + exp(-|z|)): no overflow for any z.
        let l = z.relu() - z * y[j] + (T::ONE + (-z.abs()).exp()).ln();
        nll += l.to_f64();
        let e = p - y[j];
        st.sq_err += (e * e).to_f64();
        st.correct += usize::from((p > T::from_f64(0.5)) == (y[j] > T::from_f64(0.5)));
        st.judged += 1;
        if let Some(d) = dd.as_deref_mut() {
            d[j] = sc * e;
        }
    }
    st.values += o.len();
    nll
}

impl<T: Float> Parameters<T> for OutputLayer<T> {
    fn param_specs(&self) -> Vec<ParamSpec> {
        if self.log_var.is_empty() {
            Vec::new()
        } else {
            vec![ParamSpec {
                name: "log_var".into(),
                shape: vec![self.log_var.len()],
            }]
        }
    }

    fn param_slices(&self) -> Vec<&[T]> {
        if self.log_var.is_empty() {
            Vec::new()
        } else {
            vec![&self.log_var]
        }
    }

    fn param_slices_mut(&mut self) -> Vec<&mut [T]> {
        if self.log_var.is_empty() {
            Vec::new()
        } else {
            vec![&mut self.log_var]
        }
    }
}

/// The rows one call to [`OutputLayer::nll`] scores: `rows` output rows `out`, their targets,
/// and which rows count.
struct ScoredRows<'a, T> {
    out: &'a [T],
    rows: usize,
    target: Target<'a, T>,
    mask: Option<&'a [bool]>,
}
