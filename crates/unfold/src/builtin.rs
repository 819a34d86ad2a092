//! The built-in tasks: generated data sets with a model shape, a metric and a success
//! threshold each, so a run needs no data file. The command line's `unfold train --task NAME`
//! and `unfold tasks` are thin wrappers over this module.
//!
//! | task | model | metric |
//! |---|---|---|
//! | `reber` | language model over embedded Reber strings | share of 1000 sampled strings that are valid |
//! | `adding` | sequence to one value | share of sequences with absolute error < 0.04 |
//! | `copy` | output at every step | accuracy of the 10 recalled symbols |
//! | `parity` | sequence to class | accuracy |
//! | `mackey-glass` | one-step forecasting | NRMSE |
//! | `sines` | one-step forecasting | NRMSE |

use crate::data::{reber, tasks, vocab, Dataset, SeqBatch, Sequence, Values, Vocab};
use crate::error::{Error, Result};
use crate::layers::output::OutputKind;
use crate::layers::CellKind;
use crate::models::{
    Generator, InputSpec, Model, Sampling, SequenceClassifier, SequenceLabeller, Shape,
};
use crate::rng::Rng;

pub use crate::models::ModelKind;

/// A built-in task's description and default settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskInfo {
    /// Name used on the command line.
    pub name: &'static str,
    /// One line on what it is.
    pub summary: &'static str,
    /// The success metric.
    pub metric: &'static str,
    /// The value the metric must reach.
    pub threshold: f64,
    /// True when larger values of the metric are better.
    pub higher_is_better: bool,
    /// What `--length` sets, and its default.
    pub length: (&'static str, usize),
    /// Default recurrent cell.
    pub cell: CellKind,
    /// Default hidden size.
    pub hidden: usize,
    /// Default number of training steps.
    pub steps: u64,
    /// Default learning rate (Adam).
    pub lr: f64,
    /// Default batch size.
    pub batch: usize,
    /// Default initial forget-gate bias of an LSTM (1 is the usual choice; a larger one keeps
    /// the cell's memory open longer at the start, which long-delay tasks need to leave the
    /// plateau of predicting the mean).
    pub forget_bias: f64,
}

/// Every built-in task; the first is the default.
pub const TASKS: [TaskInfo; 6] = [
    TaskInfo {
        name: "reber",
        summary: "language model of embedded Reber strings (Hochreiter & Schmidhuber 1997): the second symbol must be repeated at the end",
        metric: "share of 1000 sampled strings that are valid embedded Reber strings",
        threshold: 0.99,
        higher_is_better: true,
        length: ("(unused: string lengths follow the grammar)", 0),
        cell: CellKind::Lstm,
        hidden: 64,
        steps: 12000,
        lr: 5e-3,
        batch: 32,
        forget_bias: 1.0,
    },
    TaskInfo {
        name: "adding",
        summary: "adding problem (Hochreiter & Schmidhuber 1997): 0.5 + (X1 + X2) / 4 of the two marked values of a sequence",
        metric: "share of test sequences with absolute error < 0.04",
        threshold: 0.99,
        higher_is_better: true,
        length: ("sequence length T", 50),
        cell: CellKind::Lstm,
        hidden: 64,
        steps: 6000,
        lr: 2e-3,
        batch: 32,
        forget_bias: 3.0,
    },
    TaskInfo {
        name: "copy",
        summary: "copy memory (Arjovsky et al. 2016): repeat 10 symbols after a delay; baseline cross-entropy 10 ln 8 / (T + 20)",
        metric: "accuracy of the 10 recalled symbols",
        threshold: 0.99,
        higher_is_better: true,
        length: ("delay T", 10),
        cell: CellKind::Gru,
        hidden: 96,
        steps: 20000,
        lr: 1e-2,
        batch: 32,
        forget_bias: 1.0,
    },
    TaskInfo {
        name: "parity",
        summary: "parity of a bit string of variable length",
        metric: "accuracy",
        threshold: 0.99,
        higher_is_better: true,
        length: ("maximum length (minimum is half)", 6),
        cell: CellKind::Lstm,
        hidden: 32,
        steps: 6000,
        lr: 5e-3,
        batch: 128,
        forget_bias: 1.0,
    },
    TaskInfo {
        name: "mackey-glass",
        summary: "one-step forecasting of the Mackey-Glass series (tau = 17, RK4 at dt = 0.1, one sample per time unit)",
        metric: "NRMSE of one-step forecasts on held-out windows",
        threshold: 0.05,
        higher_is_better: false,
        length: ("window length", 100),
        cell: CellKind::Gru,
        hidden: 32,
        steps: 4000,
        lr: 5e-3,
        batch: 32,
        forget_bias: 1.0,
    },
    TaskInfo {
        name: "sines",
        summary: "one-step forecasting of sums of three sines with random frequencies, amplitudes and phases",
        metric: "NRMSE of one-step forecasts",
        threshold: 0.05,
        higher_is_better: false,
        length: ("sequence length", 100),
        cell: CellKind::Gru,
        hidden: 32,
        steps: 2000,
        lr: 5e-3,
        batch: 32,
        forget_bias: 1.0,
    },
];

/// The task of a name.
pub fn find(name: &str) -> Result<&'static TaskInfo> {
    TASKS.iter().find(|t| t.name == name).ok_or_else(|| {
        Error::InvalidConfig(format!(
            "unknown task '{name}' (tasks: {})",
            TASKS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// A task's data and the model shape it needs.
#[derive(Debug, Clone)]
pub struct TaskSetup {
    /// The description.
    pub info: &'static TaskInfo,
    /// Training sequences.
    pub train: Dataset<f32>,
    /// Held-out sequences.
    pub valid: Dataset<f32>,
    /// Which pattern.
    pub kind: ModelKind,
    /// What the model reads.
    pub input: InputSpec,
    /// The output distribution.
    pub output: OutputKind,
    /// The vocabulary of symbol tasks with text (Reber).
    pub vocab: Option<Vocab>,
    /// The sequence-length setting used.
    pub length: usize,
}

impl TaskSetup {
    /// The shape of the model the task trains.
    pub fn shape(&self) -> Shape {
        Shape {
            kind: self.kind,
            input: self.input,
            output: self.output,
        }
    }
}

/// Generates a task's data: `train` and `valid` sequences from `seed` (`length` 0: the
/// task's default).
pub fn setup(
    name: &str,
    length: usize,
    train: usize,
    valid: usize,
    seed: u64,
) -> Result<TaskSetup> {
    let info = find(name)?;
    let length = if length == 0 { info.length.1 } else { length };
    if train == 0 || valid == 0 {
        return Err(Error::InvalidConfig(
            "training and validation sets need at least one sequence".into(),
        ));
    }
    let (s1, s2) = (
        seed.wrapping_mul(2).wrapping_add(1),
        seed.wrapping_mul(2).wrapping_add(2),
    );
    let cat = |classes| OutputKind::Categorical { classes, pad: None };
    let gauss = OutputKind::Gaussian {
        dim: 1,
        learn_variance: false,
    };
    let reals1 = InputSpec::Reals {
        width: 1,
        project: None,
    };
    let (tr, va, kind, input, output, vocab) = match info.name {
        "reber" => {
            let v = Vocab::chars_of("BTPSXVE");
            let make = |n, s| reber_sequences(&v, n, s);
            let out = OutputKind::Categorical {
                classes: v.len(),
                pad: Some(vocab::PAD),
            };
            let input = InputSpec::Symbols {
                vocab: v.len(),
                dim: 16,
            };
            (
                make(train, s1),
                make(valid, s2),
                ModelKind::Labeller,
                input,
                out,
                Some(v),
            )
        }
        "adding" => {
            if length < 12 {
                return Err(Error::InvalidConfig(
                    "the adding problem needs a length of at least 12".into(),
                ));
            }
            (
                tasks::adding(train, length, s1),
                tasks::adding(valid, length, s2),
                ModelKind::Classifier,
                InputSpec::Reals {
                    width: 2,
                    project: None,
                },
                gauss,
                None,
            )
        }
        "copy" => (
            tasks::copy_memory(train, length, s1),
            tasks::copy_memory(valid, length, s2),
            ModelKind::Labeller,
            InputSpec::Symbols { vocab: 10, dim: 16 },
            cat(10),
            None,
        ),
        "parity" => {
            if length < 2 {
                return Err(Error::InvalidConfig(
                    "parity needs a maximum length of at least 2".into(),
                ));
            }
            let r = ((length / 2).max(1), length);
            (
                tasks::parity(train, r, s1),
                tasks::parity(valid, r, s2),
                ModelKind::Classifier,
                reals1,
                cat(2),
                None,
            )
        }
        "mackey-glass" => {
            if length < 2 {
                return Err(Error::InvalidConfig(
                    "the window length must be at least 2".into(),
                ));
            }
            // One long series: training windows from the first 80%, held-out from the rest.
            let n = (train + valid) * length / 2 + 2 * length + 2;
            let series = tasks::mackey_glass(n, 17.0, 500);
            let cut = n * 4 / 5;
            let mut tr =
                tasks::forecast_windows(&series[..cut], length, (cut / train.max(1)).max(1));
            let mut va =
                tasks::forecast_windows(&series[cut..], length, ((n - cut) / valid.max(1)).max(1));
            tr.truncate(train);
            va.truncate(valid);
            if tr.is_empty() || va.is_empty() {
                return Err(Error::InvalidConfig(
                    "series too short for the window length".into(),
                ));
            }
            (tr, va, ModelKind::Labeller, reals1, gauss, None)
        }
        "sines" => (
            tasks::sum_of_sines(train, length.max(2), s1),
            tasks::sum_of_sines(valid, length.max(2), s2),
            ModelKind::Labeller,
            reals1,
            gauss,
            None,
        ),
        _ => unreachable!("find() knows every task"),
    };
    Ok(TaskSetup {
        info,
        train: Dataset::new(tr)?,
        valid: Dataset::new(va)?,
        kind,
        input,
        output,
        vocab,
        length,
    })
}

/// Language-model sequences of embedded Reber strings: input `<bos> s`, target `s <end>`.
pub fn reber_sequences(v: &Vocab, n: usize, seed: u64) -> Vec<Sequence<f32>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let ids = v.encode(&reber::embedded_reber(&mut rng));
            let mut input = vec![vocab::BOS];
            input.extend(&ids);
            let mut target = ids;
            target.push(vocab::END);
            Sequence {
                len: input.len(),
                input: Values::Symbols(input),
                target: Values::Symbols(target),
            }
        })
        .collect()
}

/// A task's score on its metric, with details and examples.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskScore {
    /// The value of the task's metric.
    pub metric: f64,
    /// Whether it reached the task's threshold.
    pub passed: bool,
    /// Other figures by name.
    pub details: Vec<(String, f64)>,
    /// Example outputs (sampled strings for Reber).
    pub examples: Vec<String>,
}

fn verdict(
    info: &TaskInfo,
    metric: f64,
    details: Vec<(String, f64)>,
    examples: Vec<String>,
) -> TaskScore {
    let passed = if info.higher_is_better {
        metric >= info.threshold
    } else {
        metric <= info.threshold
    };
    TaskScore {
        metric,
        passed,
        details,
        examples,
    }
}

/// Scores a pattern-I model on its task (Reber: sampling `samples` strings with `seed`).
pub fn score_labeller(
    setup: &TaskSetup,
    model: &SequenceLabeller<f32>,
    samples: usize,
    seed: u64,
) -> Result<TaskScore> {
    let info = setup.info;
    let mut ws = Default::default();
    let all: Vec<usize> = (0..setup.valid.len()).collect();
    match info.name {
        "reber" => {
            let v = setup.vocab.as_ref().expect("reber has a vocabulary");
            let mut g = Generator::new(model)?;
            let mut rng = Rng::new(seed);
            let (mut valid, mut outer, mut total_len) = (0usize, 0usize, 0usize);
            let mut examples = Vec::new();
            for i in 0..samples {
                let (ids, _) = g.generate(
                    &[vocab::BOS],
                    Some(vocab::END),
                    500,
                    &Sampling::default(),
                    &mut rng,
                    |_| true,
                )?;
                let s = v.decode(&ids);
                let c = reber::check_embedded(&s);
                valid += usize::from(c.valid);
                outer += usize::from(c.outer_matched);
                total_len += s.len();
                if i < 10 {
                    examples.push(format!(
                        "{s}  {}",
                        if c.valid { "valid" } else { "INVALID" }
                    ));
                }
            }
            let n = samples.max(1) as f64;
            let bits = model
                .evaluate(&setup.valid.batch(&all), &mut ws)?
                .bits_per_symbol();
            Ok(verdict(
                info,
                valid as f64 / n,
                vec![
                    ("valid_share".into(), valid as f64 / n),
                    ("long_range_matched_share".into(), outer as f64 / n),
                    ("mean_length".into(), total_len as f64 / n),
                    ("valid_bits_per_symbol".into(), bits),
                ],
                examples,
            ))
        }
        "copy" => {
            let batch = setup.valid.batch(&all);
            let st = model.evaluate(&batch, &mut ws)?;
            let logits = ws.logits();
            let (b, steps) = (batch.batch, batch.steps);
            let y = batch.target.symbols().expect("copy targets are symbols");
            let mut correct = 0;
            for t in steps - 10..steps {
                for j in 0..b {
                    let r = t * b + j;
                    correct += usize::from(
                        crate::layers::output::argmax(&logits[r * 10..(r + 1) * 10]) == y[r],
                    );
                }
            }
            let acc = correct as f64 / (10 * b) as f64;
            let baseline = 10.0 * 8f64.ln() / (setup.length + 20) as f64;
            Ok(verdict(
                info,
                acc,
                vec![
                    ("recall_accuracy".into(), acc),
                    ("cross_entropy_per_step".into(), st.mean_nll()),
                    ("baseline_cross_entropy".into(), baseline),
                ],
                Vec::new(),
            ))
        }
        "mackey-glass" | "sines" => {
            let batch = setup.valid.batch(&all);
            let st = model.evaluate(&batch, &mut ws)?;
            let (var, _) = target_variance(&batch);
            let mse = st.mse().unwrap_or(f64::NAN);
            let nrmse = (mse / var).sqrt();
            Ok(verdict(
                info,
                nrmse,
                vec![("nrmse".into(), nrmse), ("mse".into(), mse)],
                Vec::new(),
            ))
        }
        other => Err(Error::InvalidCall(format!(
            "task {other} does not use a labeller"
        ))),
    }
}

/// Variance of a batch's real targets over its scored (masked-in) rows, and their number: the
/// denominator of a normalised RMSE.
pub fn target_variance(batch: &SeqBatch<f32>) -> (f64, usize) {
    let y = batch.target.reals().unwrap_or(&[]);
    let w = batch.target.width().max(1);
    let m: Vec<f64> = y
        .iter()
        .enumerate()
        .filter(|(i, _)| batch.mask.get(i / w).copied().unwrap_or(true))
        .map(|(_, v)| *v as f64)
        .collect();
    let n = m.len().max(1) as f64;
    let mean = m.iter().sum::<f64>() / n;
    (
        m.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n,
        m.len(),
    )
}

/// Scores a pattern-III model on its task.
pub fn score_classifier(setup: &TaskSetup, model: &SequenceClassifier<f32>) -> Result<TaskScore> {
    let info = setup.info;
    let mut ws = Default::default();
    let all: Vec<usize> = (0..setup.valid.len()).collect();
    let batch = setup.valid.batch(&all);
    let st = model.evaluate(&batch, &mut ws)?;
    match info.name {
        "adding" => {
            let y = batch.target.reals().expect("real targets");
            let pred = ws.logits();
            let ok = pred
                .iter()
                .zip(y)
                .filter(|(p, t)| (**p - **t).abs() < 0.04)
                .count();
            let share = ok as f64 / y.len() as f64;
            Ok(verdict(
                info,
                share,
                vec![
                    ("correct_share".into(), share),
                    ("mse".into(), st.mse().unwrap_or(f64::NAN)),
                ],
                Vec::new(),
            ))
        }
        "parity" => {
            let acc = st.accuracy().unwrap_or(0.0);
            Ok(verdict(
                info,
                acc,
                vec![("accuracy".into(), acc), ("loss".into(), st.mean_nll())],
                Vec::new(),
            ))
        }
        other => Err(Error::InvalidCall(format!(
            "task {other} does not use a classifier"
        ))),
    }
}
