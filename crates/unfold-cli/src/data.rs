//! The data of a run: a built-in task's generated sets, or the user's files, read and checked
//! here with errors that name the file, line and field:
//!
//! - `--text FILE`: a character language model; the text is split 90/5/5 into training,
//!   validation and test parts; training runs truncated BPTT over parallel streams, and the
//!   test score is bits per character over the whole test part with the state carried.
//! - `--ts TRAIN.ts --test TEST.ts`: sequence classification in the sktime/UEA `.ts` format
//!   (variable length, multivariate); inputs are standardised per channel with the training
//!   set's statistics, which are kept in the checkpoint.
//! - `--csv FILE --column A,B [--target A]`: one-step-ahead forecasting of a column from
//!   windows of the chosen columns; scaling is kept in the checkpoint, errors are reported in
//!   the original units; the last 10% of the rows are held out.

use std::path::Path;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use unfold::builtin::{self, ModelKind, TaskSetup};
use unfold::data::ts::TsFile;
use unfold::data::{vocab, Dataset, Sequence, Values, Vocab};
use unfold::layers::LossStats;
use unfold::layers::OutputKind;
use unfold::models::{Generator, InputSpec, Model as _, Sampling};
use unfold::rng::Rng;

use crate::model::Model;

use crate::settings::Settings;
use crate::BadInput;

pub use unfold::data::Scaler;

/// How training batches are drawn.
pub enum TrainData {
    /// Minibatches of sequences.
    Sequences(Dataset<f32>),
    /// One long stream (text), trained by truncated BPTT.
    Stream {
        /// Symbols.
        input: Values<f32>,
        /// Next symbols.
        target: Values<f32>,
    },
}

/// What the final score is computed on.
pub enum TestData {
    /// A built-in task's own scoring.
    Builtin(Box<TaskSetup>),
    /// A held-out stream (text).
    Stream {
        /// Symbols.
        input: Values<f32>,
        /// Next symbols.
        target: Values<f32>,
    },
    /// Held-out sequences.
    Sequences(Dataset<f32>),
    /// Held-out pairs of an encoder-decoder: source and target symbol ids.
    Pairs(Vec<(Vec<usize>, Vec<usize>)>),
    /// One held-out forecast window whose first `warm` steps only warm the state up.
    Forecast {
        /// The window.
        data: Dataset<f32>,
        /// Steps not scored.
        warm: usize,
    },
}

/// A run's data and the model shape it needs.
pub struct Prepared {
    /// What is learned, in words.
    pub summary: String,
    /// Name of the final metric.
    pub metric: String,
    /// Success threshold of the metric, if there is one.
    pub threshold: Option<f64>,
    /// True when larger is better.
    pub higher_is_better: bool,
    /// The model's shape.
    pub shape: Shape,
    /// Vocabulary of text data (the target side of pairs).
    pub vocab: Option<Vocab>,
    /// Vocabulary of the source side of pairs.
    pub src_vocab: Option<Vocab>,
    /// Scaling of real-valued data.
    pub scaler: Option<Scaler>,
    /// Training data.
    pub train: TrainData,
    /// Validation sequences.
    pub valid: Dataset<f32>,
    /// Test data.
    pub test: TestData,
}

/// A model's shape, stored in checkpoints so that a model can be rebuilt without its data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Pattern I or III.
    pub kind: ModelKind,
    /// What it reads.
    pub input: InputSpec,
    /// Its output distribution.
    pub output: OutputKind,
}

/// The text form of a [`Shape`] (checkpoint metadata).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShapeText {
    kind: String,
    input_symbols: usize,
    input_width: usize,
    output: String,
    output_width: usize,
    pad: Option<usize>,
}

impl Shape {
    /// As TOML text.
    pub fn to_text(self) -> String {
        let (input_symbols, input_width) = match self.input {
            InputSpec::Symbols { vocab, .. } => (vocab, 0),
            InputSpec::Reals { width, .. } => (0, width),
        };
        let (output, output_width, pad) = match self.output {
            OutputKind::Categorical { classes, pad } => ("categorical", classes, pad),
            OutputKind::Gaussian { dim, .. } => ("gaussian", dim, None),
            OutputKind::Bernoulli { dim } => ("bernoulli", dim, None),
        };
        toml::to_string(&ShapeText {
            kind: match self.kind {
                ModelKind::Labeller => "labeller".into(),
                ModelKind::Classifier => "classifier".into(),
                ModelKind::Seq2Seq => "seq2seq".into(),
            },
            input_symbols,
            input_width,
            output: output.into(),
            output_width,
            pad,
        })
        .expect("shape serialises")
    }

    /// Parses [`Shape::to_text`].
    pub fn from_text(text: &str, origin: &str) -> Result<Self> {
        let t: ShapeText = toml::from_str(text)
            .map_err(|e| BadInput(format!("{origin}: bad model shape: {e}")))?;
        let kind = match t.kind.as_str() {
            "labeller" => ModelKind::Labeller,
            "classifier" => ModelKind::Classifier,
            "seq2seq" => ModelKind::Seq2Seq,
            k => bail!(BadInput(format!("{origin}: unknown model kind {k}"))),
        };
        let input = if t.input_symbols > 0 {
            InputSpec::Symbols {
                vocab: t.input_symbols,
                dim: 16,
            }
        } else {
            InputSpec::Reals {
                width: t.input_width,
                project: None,
            }
        };
        let output = match t.output.as_str() {
            "categorical" => OutputKind::Categorical {
                classes: t.output_width,
                pad: t.pad,
            },
            "gaussian" => OutputKind::Gaussian {
                dim: t.output_width,
                learn_variance: false,
            },
            "bernoulli" => OutputKind::Bernoulli {
                dim: t.output_width,
            },
            o => bail!(BadInput(format!("{origin}: unknown output {o}"))),
        };
        Ok(Shape {
            kind,
            input,
            output,
        })
    }
}

/// The validation figure shown while training.
pub fn monitor(shape: &Shape) -> &'static str {
    match (shape.output, shape.kind) {
        (OutputKind::Categorical { .. }, ModelKind::Classifier) => "accuracy",
        (OutputKind::Categorical { .. }, _) => "bits",
        _ => "mse",
    }
}

/// Reads and checks the data the settings name.
pub fn prepare(s: &Settings) -> Result<Prepared> {
    if let Some(path) = &s.pairs {
        return pairs(Path::new(path), s);
    }
    if let Some(path) = &s.text {
        return text(Path::new(path), s);
    }
    if let (Some(train), Some(test)) = (&s.ts, &s.test) {
        return ts(Path::new(train), Path::new(test), s);
    }
    if let Some(path) = &s.csv {
        return csv(Path::new(path), s);
    }
    let setup = builtin::setup(&s.task, s.length, s.train_size, s.valid_size, s.seed)
        .map_err(|e| BadInput(e.to_string()))?;
    let info = setup.info;
    Ok(Prepared {
        summary: info.summary.into(),
        metric: info.metric.into(),
        threshold: Some(info.threshold),
        higher_is_better: info.higher_is_better,
        shape: Shape {
            kind: setup.kind,
            input: setup.input,
            output: setup.output,
        },
        vocab: setup.vocab.clone(),
        src_vocab: None,
        scaler: None,
        train: TrainData::Sequences(setup.train.clone()),
        valid: setup.valid.clone(),
        test: TestData::Builtin(Box::new(setup)),
    })
}

pub(crate) fn read(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|e| {
        BadInput(format!(
            "{}: not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
        .into()
    })
}

fn text(path: &Path, s: &Settings) -> Result<Prepared> {
    let body = read(path)?;
    let n = body.chars().count();
    if n < 1000 {
        bail!(BadInput(format!(
            "{}: {n} characters; a language model needs at least 1000",
            path.display()
        )));
    }
    let v = Vocab::chars_of(&body);
    let ids = v.encode(&body);
    let (a, b) = (n * 9 / 10, n * 19 / 20);
    let stream = |part: &[usize]| {
        (
            Values::Symbols(part[..part.len() - 1].to_vec()),
            Values::Symbols(part[1..].to_vec()),
        )
    };
    let (tx, ty) = stream(&ids[..a]);
    let (ex, ey) = stream(&ids[b..]);
    // Validation: consecutive windows of the validation part, each from a zero state.
    let w = s.seq_len.max(2);
    let valid_part = &ids[a..b];
    let valid: Vec<Sequence<f32>> = valid_part
        .windows(w + 1)
        .step_by(w)
        .take(s.valid_size.max(1))
        .map(|c| Sequence {
            len: w,
            input: Values::Symbols(c[..w].to_vec()),
            target: Values::Symbols(c[1..].to_vec()),
        })
        .collect();
    if valid.is_empty() {
        bail!(BadInput(format!(
            "{}: too short for --seq-len {w}",
            path.display()
        )));
    }
    Ok(Prepared {
        summary: format!(
            "character language model of {} ({n} characters, {} symbols)",
            path.display(),
            v.len()
        ),
        metric: "test bits per character".into(),
        threshold: None,
        higher_is_better: false,
        shape: Shape {
            kind: ModelKind::Labeller,
            input: InputSpec::Symbols {
                vocab: v.len(),
                dim: s.embed,
            },
            output: OutputKind::Categorical {
                classes: v.len(),
                pad: Some(vocab::PAD),
            },
        },
        vocab: Some(v),
        src_vocab: None,
        scaler: None,
        train: TrainData::Stream {
            input: tx,
            target: ty,
        },
        valid: Dataset::new(valid)?,
        test: TestData::Stream {
            input: ex,
            target: ey,
        },
    })
}

/// Reads a `.ts` file through the library's parser, reporting problems as bad input.
fn parse_ts(path: &Path) -> Result<TsFile> {
    unfold::data::ts::read_ts(path).map_err(|e| BadInput(e.to_string()).into())
}

fn ts(train: &Path, test: &Path, s: &Settings) -> Result<Prepared> {
    let tr = parse_ts(train)?;
    let te = parse_ts(test)?;
    if tr.channels != te.channels {
        bail!(BadInput(format!(
            "{}: {} channels, but {} has {}",
            test.display(),
            te.channels,
            train.display(),
            tr.channels
        )));
    }
    let ch = tr.channels;
    let (mean, std) = moments(tr.series.iter().flat_map(|(_, r)| r.chunks(ch)), ch);
    let scaler = Scaler {
        names: (1..=ch).map(|c| c.to_string()).collect(),
        mean,
        std,
        target: None,
        classes: tr.classes.clone(),
    };
    let to_seqs = |f: &TsFile, origin: &Path| -> Result<Vec<Sequence<f32>>> {
        f.series
            .iter()
            .zip(&f.labels)
            .map(|((len, rows), label)| {
                let class = scaler
                    .classes
                    .iter()
                    .position(|c| c == label)
                    .ok_or_else(|| {
                        BadInput(format!(
                            "{}: class '{label}' does not occur in the training file",
                            origin.display()
                        ))
                    })?;
                Ok(Sequence {
                    len: *len,
                    input: Values::Reals {
                        width: ch,
                        data: scale(rows, &scaler),
                    },
                    target: Values::Symbols(vec![class]),
                })
            })
            .collect()
    };
    let mut train_seqs = to_seqs(&tr, train)?;
    let test_seqs = to_seqs(&te, test)?;
    // 10% of the training file (at least one series) validates.
    unfold::rng::Rng::new(s.seed).shuffle(&mut train_seqs);
    let k = (train_seqs.len() / 10).max(1);
    if train_seqs.len() < 2 {
        bail!(BadInput(format!(
            "{}: at least two training series are needed",
            train.display()
        )));
    }
    let valid = train_seqs.split_off(train_seqs.len() - k);
    let classes = scaler.classes.len();
    Ok(Prepared {
        summary: format!(
            "sequence classification of {} ({} series, {ch} channels, {classes} classes)",
            train.display(),
            tr.series.len()
        ),
        metric: format!("test accuracy on {}", test.display()),
        threshold: None,
        higher_is_better: true,
        shape: Shape {
            kind: ModelKind::Classifier,
            input: InputSpec::Reals {
                width: ch,
                project: None,
            },
            output: OutputKind::Categorical { classes, pad: None },
        },
        vocab: None,
        src_vocab: None,
        scaler: Some(scaler),
        train: TrainData::Sequences(Dataset::new(train_seqs)?),
        valid: Dataset::new(valid)?,
        test: TestData::Sequences(Dataset::new(test_seqs)?),
    })
}

fn moments<'a>(rows: impl Iterator<Item = &'a [f64]>, width: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut sum, mut sq, mut n) = (vec![0.0; width], vec![0.0; width], 0usize);
    for r in rows {
        for (j, &v) in r.iter().enumerate() {
            sum[j] += v;
            sq[j] += v * v;
        }
        n += 1;
    }
    let n = n.max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| {
            let v = (q / n - m * m).max(0.0).sqrt();
            if v > 1e-12 {
                v
            } else {
                1.0
            }
        })
        .collect();
    (mean, std)
}

fn scale(rows: &[f64], sc: &Scaler) -> Vec<f32> {
    sc.apply(rows)
}

/// Splits one CSV line into fields (double quotes may enclose a field; `""` is a quote).
pub(crate) fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|f| f.trim().to_string()).collect()
}

/// The non-blank lines of a CSV text after its header, with their 0-based line numbers.
pub(crate) type CsvLines<'a> = Vec<(usize, &'a str)>;

/// The header fields of a CSV text and its other non-blank lines; an empty file is bad input
/// naming `path`.
pub(crate) fn csv_header<'a>(path: &Path, body: &'a str) -> Result<(Vec<String>, CsvLines<'a>)> {
    let mut lines = body
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| BadInput(format!("{}: empty file", path.display())))?;
    Ok((csv_fields(header), lines.collect()))
}

fn csv(path: &Path, s: &Settings) -> Result<Prepared> {
    let body = read(path)?;
    let p = path.display();
    let (header, lines) = csv_header(path, &body)?;
    let wanted: Vec<String> = s
        .column
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    if wanted.is_empty() {
        bail!(BadInput("--column: no column names".into()));
    }
    let find = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            BadInput(format!(
                "{p}: no column '{name}' (columns: {})",
                header.join(", ")
            ))
        })
    };
    let idx: Vec<usize> = wanted.iter().map(|w| find(w)).collect::<Result<_, _>>()?;
    let target_name = s.target.clone().unwrap_or_else(|| wanted[0].clone());
    let target = match wanted.iter().position(|w| *w == target_name) {
        Some(t) => t,
        None => {
            find(&target_name)?;
            bail!(BadInput(format!(
                "--target {target_name} must also be one of the --column inputs"
            )));
        }
    };
    let mut rows: Vec<f64> = Vec::new();
    for (i, line) in lines {
        let f = csv_fields(line);
        for (&c, name) in idx.iter().zip(&wanted) {
            let v = f.get(c).map(String::as_str).unwrap_or("");
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() => rows.push(x),
                _ => bail!(BadInput(format!(
                    "{p}:{}: column '{name}': '{v}' is not a finite number",
                    i + 1
                ))),
            }
        }
    }
    let w = wanted.len();
    let n = rows.len() / w;
    let len = if s.length == 0 { 50 } else { s.length };
    let cut = n - n / 10;
    if cut < len + 2 || n - cut < 2 {
        bail!(BadInput(format!(
            "{p}: {n} rows are too few for windows of {len} steps with 10% held out (use --length)"
        )));
    }
    let (mean, std) = moments(rows[..cut * w].chunks(w), w);
    let scaler = Scaler {
        names: wanted.clone(),
        mean,
        std,
        target: Some(target),
        classes: Vec::new(),
    };
    let scaled = scale(&rows, &scaler);
    let window = |a: usize, b: usize| Sequence {
        len: b - a,
        input: Values::Reals {
            width: w,
            data: scaled[a * w..b * w].to_vec(),
        },
        target: Values::Reals {
            width: 1,
            data: (a + 1..b + 1).map(|t| scaled[t * w + target]).collect(),
        },
    };
    // Training windows from the first 90% (stride 1 up to train_size windows), validation =
    // the last training windows, test = the held-out rows as one window after a warm-up.
    let mut train: Vec<Sequence<f32>> = (0..cut - len).map(|a| window(a, a + len)).collect();
    let k = (train.len() / 10).max(1);
    let valid = train.split_off(train.len() - k);
    if train.is_empty() {
        bail!(BadInput(format!("{p}: too few rows for --length {len}")));
    }
    let warm = len.min(cut);
    let test = Dataset::new(vec![window(cut - warm, n - 1)])?;
    Ok(Prepared {
        summary: format!(
            "one-step forecast of '{target_name}' in {p} from {} ({n} rows)",
            wanted.join(", ")
        ),
        metric: "NRMSE of one-step forecasts on the held-out last 10%".into(),
        threshold: None,
        higher_is_better: false,
        shape: Shape {
            kind: ModelKind::Labeller,
            input: InputSpec::Reals {
                width: w,
                project: None,
            },
            output: OutputKind::Gaussian {
                dim: 1,
                learn_variance: false,
            },
        },
        vocab: None,
        src_vocab: None,
        scaler: Some(scaler),
        train: TrainData::Sequences(Dataset::new(train)?),
        valid: Dataset::new(valid)?,
        test: TestData::Forecast { data: test, warm },
    })
}

/// A run's final score.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// The metric's value.
    pub metric: f64,
    /// Whether the threshold was reached (when there is one).
    pub passed: Option<bool>,
    /// Other figures.
    pub details: Vec<(String, f64)>,
    /// Examples (samples, for generative models).
    pub examples: Vec<String>,
}

/// Scores a trained model on the run's test data.
pub fn score(p: &Prepared, model: &Model, s: &Settings) -> Result<Score> {
    let mut ws_l = Default::default();
    let mut ws_c = Default::default();
    match (&p.test, model) {
        (TestData::Builtin(setup), m) => {
            let sc = match m {
                Model::Labeller(m) => {
                    builtin::score_labeller(setup, m, s.samples, s.seed.wrapping_add(12345))?
                }
                Model::Classifier(m) => builtin::score_classifier(setup, m)?,
                Model::Seq2Seq(_) => bail!("built-in tasks do not use an encoder-decoder"),
            };
            Ok(Score {
                metric: sc.metric,
                passed: Some(sc.passed),
                details: sc.details,
                examples: sc.examples,
            })
        }
        (TestData::Stream { input, target }, Model::Labeller(m)) => {
            let st = unfold::train::evaluate_stream(m, input, target, 1000)?;
            let v = p.vocab.as_ref().expect("text runs have a vocabulary");
            let mut g = Generator::new(m)?;
            let mut rng = Rng::new(s.seed.wrapping_add(777));
            let (ids, _) = g.generate(
                &[vocab::BOS],
                None,
                300,
                &Sampling::default(),
                &mut rng,
                |_| true,
            )?;
            Ok(Score {
                metric: st.bits_per_symbol(),
                passed: None,
                details: vec![
                    ("test_bits_per_character".into(), st.bits_per_symbol()),
                    ("test_nats_per_character".into(), st.mean_nll()),
                    ("test_perplexity".into(), st.perplexity()),
                    ("test_characters".into(), st.rows as f64),
                ],
                examples: vec![v.decode(&ids)],
            })
        }
        (TestData::Sequences(d), Model::Classifier(m)) => {
            let all: Vec<usize> = (0..d.len()).collect();
            let st: LossStats = m.evaluate(&d.batch(&all), &mut ws_c)?;
            let acc = st.accuracy().unwrap_or(0.0);
            Ok(Score {
                metric: acc,
                passed: None,
                details: vec![
                    ("test_accuracy".into(), acc),
                    ("test_loss".into(), st.mean_nll()),
                    ("test_sequences".into(), d.len() as f64),
                ],
                examples: Vec::new(),
            })
        }
        (TestData::Forecast { data, warm }, Model::Labeller(m)) => {
            let mut b = data.batch(&[0]);
            let w = (*warm).min(b.steps);
            b.mask[..w * b.batch].fill(false);
            let st = m.evaluate(&b, &mut ws_l)?;
            let (var, scored) = builtin::target_variance(&b);
            let mse = st.mse().unwrap_or(f64::NAN);
            let sc = p.scaler.as_ref().expect("csv runs have a scaler");
            let unit = sc.std[sc.target.unwrap_or(0)];
            Ok(Score {
                metric: (mse / var).sqrt(),
                passed: None,
                details: vec![
                    ("nrmse".into(), (mse / var).sqrt()),
                    ("rmse_original_units".into(), mse.sqrt() * unit),
                    ("forecast_steps".into(), scored as f64),
                ],
                examples: Vec::new(),
            })
        }
        (TestData::Pairs(pairs), Model::Seq2Seq(m)) => {
            let tv = p.vocab.as_ref().expect("pairs have a target vocabulary");
            let d = unfold::models::Decode {
                beam: 1,
                max_len: 200,
                length_alpha: 1.0,
            };
            let (mut exact, mut tok_err, mut tok_n, mut chr_err, mut chr_n) = (0, 0, 0, 0, 0);
            let mut examples = Vec::new();
            for (i, (x, y)) in pairs.iter().enumerate() {
                let (got, _) = m.translate(x, &d)?;
                exact += usize::from(&got == y);
                chr_err += edit_distance(&got, y);
                chr_n += y.len();
                let (gs, ys) = (tv.decode(&got), tv.decode(y));
                let gt: Vec<&str> = gs.split_whitespace().collect();
                let yt: Vec<&str> = ys.split_whitespace().collect();
                tok_err += edit_distance(&gt, &yt);
                tok_n += yt.len();
                if i < 5 {
                    let sv = p
                        .src_vocab
                        .as_ref()
                        .expect("pairs have a source vocabulary");
                    examples.push(format!("{} -> {gs}  (want {ys})", sv.decode(x)));
                }
            }
            let n = pairs.len().max(1) as f64;
            Ok(Score {
                metric: exact as f64 / n,
                passed: None,
                details: vec![
                    ("exact_match".into(), exact as f64 / n),
                    (
                        "token_error_rate".into(),
                        tok_err as f64 / tok_n.max(1) as f64,
                    ),
                    (
                        "character_error_rate".into(),
                        chr_err as f64 / chr_n.max(1) as f64,
                    ),
                    ("test_pairs".into(), n),
                ],
                examples,
            })
        }
        _ => bail!("the model does not fit the run's data"),
    }
}

fn pairs(path: &Path, s: &Settings) -> Result<Prepared> {
    let body = read(path)?;
    let p = path.display();
    let mut raw: Vec<(String, String)> = Vec::new();
    for (i, line) in body.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((a, b)) = line.split_once('\t') else {
            bail!(BadInput(format!(
                "{p}:{}: expected 'source<TAB>target'",
                i + 1
            )));
        };
        if a.is_empty() || b.is_empty() || b.contains('\t') {
            bail!(BadInput(format!(
                "{p}:{}: empty source or target, or more than two fields",
                i + 1
            )));
        }
        raw.push((a.to_string(), b.to_string()));
    }
    if raw.len() < 20 {
        bail!(BadInput(format!(
            "{p}: {} pairs; at least 20 are needed",
            raw.len()
        )));
    }
    let sv = Vocab::chars_of(&raw.iter().map(|r| r.0.as_str()).collect::<String>());
    let tv = Vocab::chars_of(&raw.iter().map(|r| r.1.as_str()).collect::<String>());
    unfold::rng::Rng::new(s.seed).shuffle(&mut raw);
    let n = raw.len();
    let (a, b) = (n * 9 / 10, n * 19 / 20);
    let encode = |part: &[(String, String)]| -> Result<Dataset<f32>> {
        let mut seqs = Vec::new();
        let mut srcs = Vec::new();
        for (x, y) in part {
            let ids = tv.encode(y);
            let mut input = vec![vocab::BOS];
            input.extend(&ids);
            let mut target = ids;
            target.push(vocab::END);
            seqs.push(Sequence {
                len: input.len(),
                input: Values::Symbols(input),
                target: Values::Symbols(target),
            });
            srcs.push(Values::Symbols(sv.encode(x)));
        }
        Ok(Dataset::with_sources(seqs, srcs)?)
    };
    let test: Vec<(Vec<usize>, Vec<usize>)> = raw[b..]
        .iter()
        .map(|(x, y)| (sv.encode(x), tv.encode(y)))
        .collect();
    Ok(Prepared {
        summary: format!("sequence to sequence on {p} ({n} pairs; characters)"),
        metric: "test exact-match accuracy (greedy decoding)".into(),
        threshold: None,
        higher_is_better: true,
        shape: Shape {
            kind: ModelKind::Seq2Seq,
            input: InputSpec::Symbols {
                vocab: sv.len(),
                dim: s.embed,
            },
            output: OutputKind::Categorical {
                classes: tv.len(),
                pad: Some(vocab::PAD),
            },
        },
        train: TrainData::Sequences(encode(&raw[..a])?),
        valid: encode(&raw[a..b])?,
        vocab: Some(tv.clone()),
        src_vocab: Some(sv.clone()),
        scaler: None,
        test: TestData::Pairs(test),
    })
}

/// Levenshtein distance between two token lists.
pub fn edit_distance<X: PartialEq>(a: &[X], b: &[X]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}
