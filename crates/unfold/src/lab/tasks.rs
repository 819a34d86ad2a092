//! The lab's tasks: each a generated (or shared) data set at a chosen sequence length, the
//! model shape it needs, a metric and the threshold at which a run counts as solved.

use crate::builtin::{self, TaskSetup};
use crate::data::{tasks, Dataset, Sequence, Values};
use crate::error::{Error, Result};
use crate::layers::output::OutputKind;
use crate::models::{InputSpec, ModelKind, Shape};
use crate::rng::Rng;

/// A long-term dependency task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabTask {
    /// The adding problem: the sum of two marked values, the first among the first ten
    /// steps, read at the end.
    Adding,
    /// The copy-memory task: recall 10 symbols after a delay.
    Copy,
    /// Embedded Reber strings (a language model; the length is the grammar's).
    Reber,
    /// Parity of a bit string of half the length to the length.
    Parity,
    /// The temporal order of two relevant symbols among distractors.
    Order,
    /// Pixel-by-pixel 8x8 digits (the shared scikit-learn set), 64 steps, or 192 with each
    /// pixel held for three steps.
    Digits,
}

/// Every task, in the order the lab lists them.
pub const LAB_TASKS: [LabTask; 6] = [
    LabTask::Adding,
    LabTask::Copy,
    LabTask::Reber,
    LabTask::Parity,
    LabTask::Order,
    LabTask::Digits,
];

impl LabTask {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LabTask::Adding => "adding",
            LabTask::Copy => "copy",
            LabTask::Reber => "reber",
            LabTask::Parity => "parity",
            LabTask::Order => "order",
            LabTask::Digits => "digits",
        }
    }

    /// The task of a name.
    pub fn parse(s: &str) -> Result<Self> {
        LAB_TASKS
            .iter()
            .copied()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "unknown lab task '{s}' (tasks: {})",
                    LAB_TASKS.map(|t| t.name()).join(", ")
                ))
            })
    }

    /// What the metric measures, and the value a solved run reaches.
    pub fn criterion(self) -> (&'static str, f64) {
        match self {
            LabTask::Adding => ("share of test sequences with absolute error < 0.04", 0.9),
            LabTask::Copy => ("accuracy of the 10 recalled symbols", 0.9),
            LabTask::Reber => ("share of 200 sampled strings that are valid", 0.95),
            LabTask::Parity => ("test accuracy", 0.95),
            LabTask::Order => ("test accuracy", 0.95),
            LabTask::Digits => ("test accuracy", 0.9),
        }
    }

    /// What the length setting means for the task, and whether it can vary.
    pub fn length_meaning(self) -> (&'static str, bool) {
        match self {
            LabTask::Adding => ("sequence length T", true),
            LabTask::Copy => ("delay T (sequence length T + 20)", true),
            LabTask::Reber => ("(fixed by the grammar)", false),
            LabTask::Parity => ("maximum length (minimum half)", true),
            LabTask::Order => ("sequence length T", true),
            LabTask::Digits => ("64 or 192 steps", true),
        }
    }

    /// The chance-level value of the metric (a model that learned nothing).
    pub fn chance(self) -> f64 {
        match self {
            LabTask::Adding => 0.16,
            LabTask::Copy => 0.125,
            LabTask::Reber => 0.0,
            LabTask::Parity => 0.5,
            LabTask::Order => 0.25,
            LabTask::Digits => 0.1,
        }
    }
}

/// The 8x8 digits as read from the shared CSV: 64 pixel values in 0..=16 and a label per row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Digits {
    /// `[n, 64]` pixels.
    pub pixels: Vec<[f64; 64]>,
    /// Labels 0-9.
    pub labels: Vec<usize>,
}

/// One task's data at one length.
#[derive(Debug, Clone)]
pub struct LabData {
    /// The task.
    pub task: LabTask,
    /// The length setting.
    pub length: usize,
    /// Training sequences.
    pub train: Dataset<f32>,
    /// Held-out sequences the criterion is measured on.
    pub valid: Dataset<f32>,
    /// The model shape.
    pub shape: Shape,
    /// The built-in task behind it (adding, copy, Reber, parity), whose scorers the lab uses.
    pub setup: Option<TaskSetup>,
}

/// Makes `task`'s data at `length` with `train` and `valid` sequences from `seed`. The digits
/// task needs `digits` (the shared set) and takes `valid` as the held-out share's size cap.
pub fn lab_data(
    task: LabTask,
    length: usize,
    (train, valid): (usize, usize),
    seed: u64,
    digits: Option<&Digits>,
) -> Result<LabData> {
    let builtin_task = |name: &str, len: usize| -> Result<LabData> {
        let s = builtin::setup(name, len, train, valid, seed)?;
        Ok(LabData {
            task,
            length: s.length,
            train: s.train.clone(),
            valid: s.valid.clone(),
            shape: s.shape(),
            setup: Some(s),
        })
    };
    match task {
        LabTask::Adding => builtin_task("adding", length),
        LabTask::Copy => builtin_task("copy", length),
        LabTask::Reber => builtin_task("reber", 0),
        LabTask::Parity => builtin_task("parity", length),
        LabTask::Order => {
            if length < 10 {
                return Err(Error::InvalidConfig(
                    "the temporal order task needs a length of at least 10".into(),
                ));
            }
            let (s1, s2) = (seed.wrapping_mul(2) + 1, seed.wrapping_mul(2) + 2);
            Ok(LabData {
                task,
                length,
                train: Dataset::new(tasks::temporal_order(train, length, s1))?,
                valid: Dataset::new(tasks::temporal_order(valid, length, s2))?,
                shape: classifier_shape(tasks::ORDER_SYMBOLS.len(), 4),
                setup: None,
            })
        }
        LabTask::Digits => {
            let d = digits.ok_or_else(|| {
                Error::InvalidConfig(
                    "the digits task needs the 8x8 digits (../shared/data/classification/\
                     sklearn_digits/digits.csv.gz)"
                        .into(),
                )
            })?;
            let hold = match length {
                64 => 1,
                192 => 3,
                _ => {
                    return Err(Error::InvalidConfig(format!(
                        "the digits task runs at 64 or 192 steps, not {length}"
                    )))
                }
            };
            let (tr, va) = digit_sequences(d, hold, valid, seed)?;
            Ok(LabData {
                task,
                length,
                train: Dataset::new(tr)?,
                valid: Dataset::new(va)?,
                shape: classifier_shape(1, 10),
                setup: None,
            })
        }
    }
}

fn classifier_shape(width: usize, classes: usize) -> Shape {
    Shape {
        kind: ModelKind::Classifier,
        input: InputSpec::Reals {
            width,
            project: None,
        },
        output: OutputKind::Categorical { classes, pad: None },
    }
}

/// Training and held-out sequences.
type TrainAndHeldOut = (Vec<Sequence<f32>>, Vec<Sequence<f32>>);

/// Each digit as a sequence of its 64 pixels (row by row, scaled to [0, 1]), each held for
/// `hold` steps; a seeded split holds out a fifth (at most `valid` images).
fn digit_sequences(d: &Digits, hold: usize, valid: usize, seed: u64) -> Result<TrainAndHeldOut> {
    if d.pixels.len() != d.labels.len() || d.pixels.len() < 10 {
        return Err(Error::InvalidConfig(format!(
            "the digits set needs at least 10 labelled images (got {} images, {} labels)",
            d.pixels.len(),
            d.labels.len()
        )));
    }
    if let Some(bad) = d.labels.iter().find(|&&l| l > 9) {
        return Err(Error::InvalidConfig(format!(
            "digit label {bad} is not 0-9"
        )));
    }
    let mut idx: Vec<usize> = (0..d.pixels.len()).collect();
    Rng::new(seed ^ 0x5eed_d161).shuffle(&mut idx);
    let n_valid = (idx.len() / 5).min(valid.max(1));
    let seq = |i: usize| Sequence {
        len: 64 * hold,
        input: Values::Reals {
            width: 1,
            data: d.pixels[i]
                .iter()
                .flat_map(|&p| std::iter::repeat_n((p / 16.0) as f32, hold))
                .collect(),
        },
        target: Values::Symbols(vec![d.labels[i]]),
    };
    let va = idx[..n_valid].iter().map(|&i| seq(i)).collect();
    let tr = idx[n_valid..].iter().map(|&i| seq(i)).collect();
    Ok((tr, va))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_order_puts_the_two_symbols_in_their_windows_and_labels_their_order() {
        let seqs = tasks::temporal_order::<f64>(200, 100, 3);
        let mut seen = [0usize; 4];
        for s in &seqs {
            let Values::Reals { data, width } = &s.input else {
                panic!("one-hot reals")
            };
            let sym: Vec<usize> = data
                .chunks(*width)
                .map(|r| r.iter().position(|&v| v == 1.0).unwrap())
                .collect();
            assert_eq!((sym[0], sym[99]), (6, 7));
            let rel: Vec<(usize, usize)> = sym
                .iter()
                .enumerate()
                .filter(|(_, &v)| v == 4 || v == 5)
                .map(|(t, &v)| (t, v))
                .collect();
            assert_eq!(rel.len(), 2);
            assert!((10..20).contains(&rel[0].0) && (50..60).contains(&rel[1].0));
            let class = 2 * (rel[0].1 - 4) + (rel[1].1 - 4);
            assert_eq!(s.target, Values::Symbols(vec![class]));
            seen[class] += 1;
        }
        assert!(seen.iter().all(|&c| c > 30), "{seen:?}");
    }

    #[test]
    fn digits_become_64_or_192_step_sequences_with_a_seeded_split() {
        let d = Digits {
            pixels: (0..50)
                .map(|i| std::array::from_fn(|p| ((i + p) % 17) as f64))
                .collect(),
            labels: (0..50).map(|i| i % 10).collect(),
        };
        let a = lab_data(LabTask::Digits, 192, (0, 100), 1, Some(&d)).unwrap();
        assert_eq!((a.train.len(), a.valid.len()), (40, 10));
        let s = &a.valid.sequences()[0];
        assert_eq!(s.len, 192);
        let Values::Reals { data, .. } = &s.input else {
            panic!()
        };
        assert!(data[0] == data[1] && data[1] == data[2]);
        let b = lab_data(LabTask::Digits, 192, (0, 100), 1, Some(&d)).unwrap();
        assert_eq!(a.valid.sequences(), b.valid.sequences());
        assert!(lab_data(LabTask::Digits, 100, (0, 100), 1, Some(&d)).is_err());
        assert!(lab_data(LabTask::Digits, 64, (0, 100), 1, None).is_err());
    }
}
