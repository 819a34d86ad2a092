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
use unfold::builtin::{self, ModelKind};
use unfold::data::ts::TsFile;
use unfold::data::{vocab, Dataset, GridSet, Sequence, TreeSet, Values, Vocab};
use unfold::layers::OutputKind;
use unfold::models::{InputSpec, Shape};
use unfold::score::ScoreContext;
pub use unfold::score::{HeldOut, Score};

use crate::model::Model;

use crate::settings::Settings;
use crate::BadInput;

pub use unfold::data::Scaler;

/// How training batches are drawn.
pub enum TrainData {
    /// Minibatches of sequences.
    Sequences(Dataset<f32>),
    /// Trees (tree runs).
    Trees(TreeSet<f32>),
    /// Images (grid runs).
    Grids(GridSet<f32>),
    /// One long stream (text), trained by truncated BPTT.
    Stream {
        /// Symbols.
        input: Values<f32>,
        /// Next symbols.
        target: Values<f32>,
    },
}

/// The held-out set the trainer validates on.
pub enum Valid {
    /// Sequences.
    Sequences(Dataset<f32>),
    /// Trees.
    Trees(TreeSet<f32>),
    /// Images.
    Grids(GridSet<f32>),
}

impl Valid {
    /// Number of held-out sequences or trees.
    pub fn len(&self) -> usize {
        match self {
            Valid::Sequences(d) => d.len(),
            Valid::Trees(t) => t.len(),
            Valid::Grids(g) => g.len(),
        }
    }
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
    /// Validation sequences or trees.
    pub valid: Valid,
    /// Test data.
    pub test: HeldOut,
    /// The class names of a tree run's labels.
    pub labels: Option<Vocab>,
    /// How a tree model reads children, as the data decided (tree runs).
    pub children: Option<unfold::layers::tree::Children>,
}

/// Reads and checks the data the settings name.
pub fn prepare(s: &Settings) -> Result<Prepared> {
    if let Some(path) = &s.grid {
        return crate::grid_data::file(Path::new(path), s);
    }
    if unfold::data::grid::find_task(&s.task).is_some() {
        return crate::grid_data::task(s);
    }
    if let Some(path) = &s.trees {
        return crate::tree_data::file(Path::new(path), s);
    }
    if unfold::data::tree_tasks::find(&s.task).is_some() {
        return crate::tree_data::task(s);
    }
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
        shape: setup.shape(),
        vocab: setup.vocab.clone(),
        src_vocab: None,
        scaler: None,
        train: TrainData::Sequences(setup.train.clone()),
        valid: Valid::Sequences(setup.valid.clone()),
        labels: None,
        children: None,
        test: HeldOut::Builtin(Box::new(setup)),
    })
}

/// Reads a text file, gzip-compressed or not (told by its first two bytes, not its name).
pub(crate) fn read(path: &Path) -> Result<String> {
    let mut bytes =
        std::fs::read(path).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::MultiGzDecoder::new(&bytes[..]),
            &mut plain,
        )
        .map_err(|e| BadInput(format!("{}: bad gzip data: {e}", path.display())))?;
        bytes = plain;
    }
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
        valid: Valid::Sequences(Dataset::new(valid)?),
        labels: None,
        children: None,
        test: HeldOut::Stream {
            input: ex,
            target: ey,
        },
    })
}

/// Reads a `.ts` file through the library's parser, reporting problems as bad input.
/// The longest series a classifier reads by default: longer ones are downsampled
/// (`--downsample 0`) to at most this many steps.
pub const AUTO_MAX_STEPS: usize = 300;

/// Reads a `.ts` file (gzip-compressed or not).
pub(crate) fn parse_ts(path: &Path) -> Result<TsFile> {
    unfold::data::ts::parse_ts(&read(path)?, &path.display().to_string())
        .map_err(|e| BadInput(e.to_string()).into())
}

fn ts(train: &Path, test: &Path, s: &Settings) -> Result<Prepared> {
    let mut tr = parse_ts(train)?;
    let mut te = parse_ts(test)?;
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
    let longest = tr.series.iter().map(|(len, _)| *len).max().unwrap_or(1);
    let downsample = match s.downsample {
        0 => longest.div_ceil(AUTO_MAX_STEPS).max(1),
        k => k,
    };
    let mut scaler = Scaler {
        names: (1..=ch).map(|c| c.to_string()).collect(),
        mean: vec![0.0; ch],
        std: vec![1.0; ch],
        target: None,
        classes: tr.classes.clone(),
        downsample,
    };
    // Downsampled first (both files, once); the scaling is fitted on what the model reads.
    for (len, rows) in tr.series.iter_mut().chain(te.series.iter_mut()) {
        *rows = scaler.downsampled(rows);
        *len = len.div_ceil(downsample);
    }
    (scaler.mean, scaler.std) = moments(tr.series.iter().flat_map(|(_, r)| r.chunks(ch)), ch);
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
            "sequence classification of {} ({} series, {ch} channels, {classes} classes{})",
            train.display(),
            tr.series.len(),
            if downsample > 1 {
                format!(
                    "; every {downsample} steps averaged into one: {longest} -> {} steps",
                    longest.div_ceil(downsample)
                )
            } else {
                String::new()
            }
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
        valid: Valid::Sequences(Dataset::new(valid)?),
        labels: None,
        children: None,
        test: HeldOut::Sequences(Dataset::new(test_seqs)?),
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
        downsample: 1,
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
        valid: Valid::Sequences(Dataset::new(valid)?),
        labels: None,
        children: None,
        test: HeldOut::Forecast { data: test, warm },
    })
}

/// Scores a trained model on the run's held-out data (through the library's scoring).
pub fn score(p: &Prepared, model: &Model, s: &Settings) -> Result<Score> {
    let ctx = ScoreContext {
        vocab: p.vocab.as_ref(),
        src_vocab: p.src_vocab.as_ref(),
        scaler: p.scaler.as_ref(),
        samples: s.samples,
        seed: s.seed,
    };
    let mut sc = unfold::score::score(&p.test, model, &ctx)?;
    if let (None, Some(t)) = (sc.passed, p.threshold) {
        sc.passed = Some(if p.higher_is_better {
            sc.metric >= t
        } else {
            sc.metric <= t
        });
    }
    Ok(sc)
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
        valid: Valid::Sequences(encode(&raw[a..b])?),
        labels: None,
        children: None,
        vocab: Some(tv.clone()),
        src_vocab: Some(sv.clone()),
        scaler: None,
        test: HeldOut::Pairs(test),
    })
}
