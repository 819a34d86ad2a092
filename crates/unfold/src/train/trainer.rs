//! The training loop: gradient, clipping, update, schedules, validation, early stopping,
//! checkpoints and exact resume.
//!
//! Every random choice of a run flows from its seed: parameters from the model's seed, batch
//! order from `(seed, epoch)`, and scheduled sampling from the trainer's [`Rng`], whose state
//! is part of the checkpoint. A checkpoint holds the parameters, the optimizer state, that RNG
//! state, the step count, the data position and the early-stopping record, so a run stopped at
//! step k and resumed reaches bit-identical parameters at step n to a run never stopped.
//! Checkpoints are written to a temporary file and renamed into place.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::checkpoint::{write_atomic, TensorFile};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::output::LossStats;
use crate::models::{EvalSet, Model, TrainContext};
use crate::probes::{probe, ProbeConfig, ProbeRecord};
use crate::rng::Rng;
use crate::train::clip::{clip_and_report, Clip};
use crate::train::optim::{Optimizer, OptimizerConfig};
use crate::train::schedule::{FeedSchedule, LrSchedule};
use crate::train::source::TrainData;

/// File name of the latest checkpoint in a run directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// File name of the best checkpoint (by the monitored validation metric).
pub const BEST: &str = "best.safetensors";
/// File name of the metrics log.
pub const METRICS: &str = "metrics.jsonl";

/// Settings of a training run. [`TrainConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Optimisation steps in total (default 1000).
    pub steps: u64,
    /// Seed of the batch order and of the trainer's random stream (default 0).
    pub seed: u64,
    /// The optimizer (default Adam).
    pub optimizer: OptimizerConfig,
    /// Learning rate by step (default constant 1e-3).
    pub lr: LrSchedule,
    /// Gradient clipping (default none).
    pub clip: Clip,
    /// Probability of self-feeding by step, for models with output feedback (default pure
    /// teacher forcing).
    pub feed: FeedSchedule,
    /// Validate every this many steps (0: only at the end; default 100).
    pub eval_every: u64,
    /// Batch size for validation (default 64).
    pub eval_batch: usize,
    /// Stop after this many validations without improvement (default: never).
    pub patience: Option<usize>,
    /// Validation metric to monitor: `loss`, `bits`, `perplexity`, `accuracy`, `error`, `mse`
    /// (default `loss`). Accuracy is maximised, the others minimised.
    pub monitor: String,
    /// Write a checkpoint every this many steps (0: only at the end; default 0).
    pub checkpoint_every: u64,
    /// Run directory for checkpoints and `metrics.jsonl` (default: none, nothing written).
    pub out_dir: Option<PathBuf>,
    /// Skip a batch whose loss or gradient is not finite instead of stopping (default false).
    pub skip_nonfinite: bool,
    /// Extra metadata written into every checkpoint (e.g. the run's settings and vocabulary).
    pub metadata: Vec<(String, String)>,
    /// Long-term dependency probes ([`crate::probes`]) recorded in `metrics.jsonl` (lines with
    /// `"split":"probe"`) and reported as [`Event::Probe`] (default none). Models without a
    /// probe view ([`Model::probe_view`]) are not probed.
    pub probe: Option<ProbeConfig>,
    /// A flag that ends the run cleanly when set (e.g. by a signal handler): the step under
    /// way finishes, a checkpoint is written (with `out_dir`), and [`Trainer::run`] returns
    /// with [`Summary::interrupted`] (default none).
    pub stop: Option<StopFlag>,
}

/// A shared flag that asks a training run to stop after its current step; see
/// [`TrainConfig::stop`]. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl StopFlag {
    /// A flag not yet set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop (safe to call from a signal handler: one atomic store).
    pub fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The flag itself, for a signal handler that must not allocate.
    pub fn as_atomic(&self) -> &std::sync::atomic::AtomicBool {
        &self.0
    }
}

/// Two settings are equal when they share the same flag (or both have none).
impl PartialEq for StopFlag {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl TrainConfig {
    /// The defaults, with `steps` steps.
    pub fn new(steps: u64) -> Self {
        TrainConfig {
            steps,
            seed: 0,
            optimizer: OptimizerConfig::adam(),
            lr: LrSchedule::constant(1e-3),
            clip: Clip::None,
            feed: FeedSchedule::TeacherForcing,
            eval_every: 100,
            eval_batch: 64,
            patience: None,
            monitor: "loss".into(),
            checkpoint_every: 0,
            out_dir: None,
            skip_nonfinite: false,
            metadata: Vec::new(),
            probe: None,
            stop: None,
        }
    }

    fn higher_is_better(&self) -> bool {
        self.monitor == "accuracy"
    }
}

/// What the trainer reports to its progress callback.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An update was made (or skipped).
    Step {
        /// Steps completed.
        step: u64,
        /// Total steps of the run.
        total: u64,
        /// Mean training loss of the batch (nats).
        loss: f64,
        /// Global gradient norm before clipping.
        grad_norm: f64,
        /// Global gradient norm after clipping.
        grad_norm_clipped: f64,
        /// Learning rate used.
        lr: f64,
        /// Probability of self-feeding used.
        feed_prob: f64,
        /// Real tokens in the batch.
        tokens: usize,
        /// Tokens per second since the run (or resume) began.
        tokens_per_sec: f64,
        /// True when the batch was skipped for a non-finite value.
        skipped: bool,
    },
    /// The probes of a step were taken (before its update).
    Probe(Box<ProbeRecord>),
    /// A validation pass finished.
    Eval {
        /// Steps completed.
        step: u64,
        /// The validation sums.
        stats: LossStats,
        /// True when the monitored metric improved.
        improved: bool,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// Where.
        path: PathBuf,
    },
    /// Training stopped early.
    EarlyStop {
        /// Steps completed.
        step: u64,
    },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Steps completed.
    pub steps: u64,
    /// True when early stopping ended it.
    pub stopped_early: bool,
    /// Best value of the monitored validation metric.
    pub best: Option<f64>,
    /// The last validation sums.
    pub last_eval: Option<LossStats>,
    /// Batches skipped for non-finite values.
    pub skipped: u64,
    /// True when [`TrainConfig::stop`] ended the run before its last step.
    pub interrupted: bool,
}

/// Trains any [`Model`], on batches of its own kind.
pub struct Trainer<T: Float, M: Model<T>> {
    cfg: TrainConfig,
    /// The model being trained.
    pub model: M,
    grads: M,
    ws: M::Workspace,
    opt: Optimizer<T>,
    rng: Rng,
    step: u64,
    best: Option<f64>,
    stale: usize,
    skipped: u64,
    last_eval: Option<LossStats>,
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

/// One metrics line as JSON.
fn stats_json(step: u64, split: &str, s: &LossStats, extra: &[(&str, f64)]) -> String {
    let mut out = format!(
        "{{\"step\":{step},\"split\":\"{split}\",\"loss\":{},\"bits\":{},\"perplexity\":{}",
        json_num(s.mean_nll()),
        json_num(s.bits_per_symbol()),
        json_num(s.perplexity())
    );
    if let Some(a) = s.accuracy() {
        out += &format!(",\"accuracy\":{}", json_num(a));
    }
    if let Some(m) = s.mse() {
        out += &format!(",\"mse\":{}", json_num(m));
    }
    for (k, v) in extra {
        out += &format!(",\"{k}\":{}", json_num(*v));
    }
    out.push('}');
    out
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

impl<T: Float, M: Model<T>> Trainer<T, M> {
    /// A trainer at step 0.
    pub fn new(model: M, cfg: TrainConfig) -> Result<Self> {
        cfg.lr.validate()?;
        cfg.feed.validate()?;
        let opt = Optimizer::new(cfg.optimizer)?;
        if let Some(dir) = &cfg.out_dir {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        Ok(Trainer {
            grads: model.zeros_like(),
            model,
            ws: M::Workspace::default(),
            opt,
            rng: Rng::new(cfg.seed ^ 0x5851_F42D_4C95_7F2D),
            step: 0,
            best: None,
            stale: 0,
            skipped: 0,
            last_eval: None,
            cfg,
        })
    }

    /// A trainer continuing from a checkpoint written by [`Trainer::save_checkpoint`]: `model`
    /// must have the same architecture (its values are replaced), `data` is moved to the saved
    /// position. The metrics log keeps only the lines up to the checkpoint's step.
    pub fn resume(
        model: M,
        cfg: TrainConfig,
        path: &Path,
        data: &mut dyn TrainData<T, M>,
    ) -> Result<Self> {
        let mut tr = Self::new(model, cfg)?;
        let file = TensorFile::read(path)?;
        file.load_params("model.", &mut tr.model)?;
        let names: Vec<String> = tr.model.param_specs().into_iter().map(|s| s.name).collect();
        let sizes: Vec<usize> = tr.model.param_slices().iter().map(|s| s.len()).collect();
        tr.opt.load(&file, &names, &sizes)?;
        let meta = &file.metadata;
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| Error::CheckpointMismatch(format!("metadata {k} missing")))
        };
        let num = |k: &str| -> Result<u64> {
            get(k)?
                .parse()
                .map_err(|_| Error::CheckpointMismatch(format!("metadata {k} is not a number")))
        };
        tr.step = num("train.step")?;
        tr.stale = num("train.stale")? as usize;
        tr.skipped = num("train.skipped")?;
        let rng: Vec<u64> = get("train.rng")?
            .split(',')
            .map(|w| u64::from_str_radix(w, 16))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::CheckpointMismatch("bad train.rng".into()))?;
        if rng.len() != 4 {
            return Err(Error::CheckpointMismatch("bad train.rng".into()));
        }
        tr.rng = Rng::from_state([rng[0], rng[1], rng[2], rng[3]]);
        tr.best = match get("train.best")?.as_str() {
            "none" => None,
            h => Some(f64::from_bits(u64::from_str_radix(h, 16).map_err(
                |_| Error::CheckpointMismatch("bad train.best".into()),
            )?)),
        };
        data.restore_position(&file)?;
        if let Some(dir) = tr.cfg.out_dir.clone() {
            tr.truncate_metrics(&dir.join(METRICS))?;
        }
        Ok(tr)
    }

    /// Drops metrics lines written after the current step (by a run that went on past its
    /// last checkpoint), so the log matches the resumed run.
    fn truncate_metrics(&self, path: &Path) -> Result<()> {
        let Ok(f) = File::open(path) else {
            return Ok(());
        };
        let mut keep = String::new();
        for line in BufReader::new(f).lines() {
            let line = line.map_err(|e| io_err(path, e))?;
            let step = line
                .strip_prefix("{\"step\":")
                .and_then(|r| r.split(',').next())
                .and_then(|s| s.parse::<u64>().ok());
            if step.is_some_and(|s| s <= self.step) {
                keep.push_str(&line);
                keep.push('\n');
            }
        }
        write_atomic(path, keep.as_bytes())
    }

    /// Steps completed.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Sets the step at which [`Trainer::run`] stops, so a run can be continued in stages (to
    /// score the model between them). Learning-rate schedules that depend on the total number
    /// of steps see the new total from then on.
    pub fn set_steps(&mut self, steps: u64) {
        self.cfg.steps = steps;
    }

    /// Writes a checkpoint (atomically) with everything needed to resume exactly.
    pub fn save_checkpoint(&self, path: &Path, data: &dyn TrainData<T, M>) -> Result<()> {
        let mut file = TensorFile::new();
        file.insert_params("model.", &self.model);
        let names: Vec<String> = self
            .model
            .param_specs()
            .into_iter()
            .map(|s| s.name)
            .collect();
        self.opt.save(&mut file, &names);
        let mut meta = BTreeMap::new();
        meta.insert("format".into(), "unfold-train-1".into());
        meta.insert("train.step".into(), self.step.to_string());
        meta.insert("train.stale".into(), self.stale.to_string());
        meta.insert("train.skipped".into(), self.skipped.to_string());
        let st = self.rng.state();
        meta.insert(
            "train.rng".into(),
            st.iter()
                .map(|w| format!("{w:x}"))
                .collect::<Vec<_>>()
                .join(","),
        );
        meta.insert(
            "train.best".into(),
            self.best
                .map_or("none".into(), |b| format!("{:x}", b.to_bits())),
        );
        meta.insert("train.seed".into(), self.cfg.seed.to_string());
        meta.insert(
            "train.optimizer".into(),
            format!("{:?}", self.cfg.optimizer),
        );
        meta.insert("train.lr".into(), format!("{:?}", self.cfg.lr));
        for (k, v) in self.model.describe() {
            meta.insert(format!("model.{k}"), v);
        }
        for (k, v) in &self.cfg.metadata {
            meta.insert(k.clone(), v.clone());
        }
        data.save_position(&mut meta, &mut file);
        file.metadata.extend(meta);
        file.write(path)
    }

    /// Validates on `data` under run-time conditions.
    pub fn evaluate(&mut self, data: &M::EvalSet) -> Result<LossStats> {
        data.evaluate(&self.model, &mut self.ws, self.cfg.eval_batch)
    }

    /// Runs until `steps` or early stopping, validating on `valid` when given.
    pub fn run(
        &mut self,
        data: &mut dyn TrainData<T, M>,
        valid: Option<&M::EvalSet>,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<Summary> {
        let mut log = match &self.cfg.out_dir {
            Some(dir) => {
                let p = dir.join(METRICS);
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&p)
                    .map_err(|e| io_err(&p, e))?;
                Some((BufWriter::new(f), p))
            }
            None => None,
        };
        let start = Instant::now();
        let mut tokens_total = 0usize;
        let mut stopped_early = false;
        let mut interrupted = false;
        while self.step < self.cfg.steps {
            let lr = self.cfg.lr.at(self.step);
            let feed_prob = self.cfg.feed.prob(self.step);
            self.grads.zero();
            let mut ctx = TrainContext {
                rng: &mut self.rng,
                feed_prob,
                step: self.step + 1,
            };
            let (stats, tokens) =
                data.next_batch(&self.model, &mut self.ws, &mut self.grads, &mut ctx)?;
            let loss = stats.mean_nll();
            let probed = match &self.cfg.probe {
                Some(pc) if pc.due(self.step + 1, self.cfg.steps) && loss.is_finite() => self
                    .model
                    .probe_view(&self.ws)
                    .map(|view| probe(&view, pc, self.step + 1)),
                _ => None,
            };
            let clip = clip_and_report(self.grads.param_slices_mut(), self.cfg.clip);
            let grad_norm = clip.before;
            self.step += 1;
            let bad = if !loss.is_finite() {
                Some("loss")
            } else if !grad_norm.is_finite() {
                Some("gradient")
            } else {
                None
            };
            let skipped = bad.is_some();
            if let Some(what) = bad {
                if !self.cfg.skip_nonfinite {
                    return Err(Error::NonFinite {
                        step: self.step,
                        what: what.into(),
                    });
                }
                self.skipped += 1;
            } else {
                self.opt
                    .step(self.model.param_slices_mut(), self.grads.param_slices(), lr)?;
            }
            tokens_total += tokens;
            let tps = tokens_total as f64 / start.elapsed().as_secs_f64().max(1e-9);
            if let Some((w, p)) = log.as_mut() {
                let line = stats_json(
                    self.step,
                    "train",
                    &stats,
                    &[
                        ("lr", lr),
                        ("grad_norm", grad_norm),
                        ("grad_norm_clipped", clip.after),
                        ("clipped", f64::from(u8::from(clip.clipped))),
                        ("feed_prob", feed_prob),
                        ("tokens", tokens as f64),
                    ],
                );
                writeln!(w, "{line}").map_err(|e| io_err(p, e))?;
            }
            // A probe that fails numerically (an exploded state) is logged as such, not fatal.
            match probed {
                Some(Ok(rec)) => {
                    if let Some((w, p)) = log.as_mut() {
                        writeln!(w, "{}", rec.to_json()).map_err(|e| io_err(p, e))?;
                    }
                    progress(&Event::Probe(Box::new(rec)));
                }
                Some(Err(e)) => {
                    if let Some((w, p)) = log.as_mut() {
                        let msg = serde_json::to_string(&e.to_string()).unwrap_or_default();
                        writeln!(
                            w,
                            "{{\"step\":{},\"split\":\"probe\",\"error\":{msg}}}",
                            self.step
                        )
                        .map_err(|e| io_err(p, e))?;
                    }
                }
                None => {}
            }
            progress(&Event::Step {
                step: self.step,
                total: self.cfg.steps,
                loss,
                grad_norm,
                grad_norm_clipped: clip.after,
                lr,
                feed_prob,
                tokens,
                tokens_per_sec: tps,
                skipped,
            });
            let last = self.step == self.cfg.steps;
            let eval_now = self.cfg.eval_every > 0 && self.step.is_multiple_of(self.cfg.eval_every);
            if let (Some(v), true) = (valid, eval_now || last) {
                let st = self.evaluate(v)?;
                let improved = self.record_eval(&st)?;
                if let Some((w, p)) = log.as_mut() {
                    writeln!(w, "{}", stats_json(self.step, "valid", &st, &[]))
                        .map_err(|e| io_err(p, e))?;
                    w.flush().map_err(|e| io_err(p, e))?;
                }
                progress(&Event::Eval {
                    step: self.step,
                    stats: st,
                    improved,
                });
                if improved {
                    if let Some(dir) = &self.cfg.out_dir {
                        self.save_checkpoint(&dir.join(BEST), data)?;
                    }
                }
                if self.cfg.patience.is_some_and(|p| self.stale >= p) {
                    stopped_early = true;
                }
            }
            let ck_now = self.cfg.checkpoint_every > 0
                && self.step.is_multiple_of(self.cfg.checkpoint_every);
            if let Some(dir) = self.cfg.out_dir.clone() {
                if ck_now || last || stopped_early {
                    if let Some((w, p)) = log.as_mut() {
                        w.flush().map_err(|e| io_err(p, e))?;
                    }
                    let path = dir.join(CHECKPOINT);
                    self.save_checkpoint(&path, data)?;
                    progress(&Event::Checkpoint { path });
                }
            }
            if stopped_early {
                progress(&Event::EarlyStop { step: self.step });
                break;
            }
            if self.step < self.cfg.steps && self.cfg.stop.as_ref().is_some_and(StopFlag::is_set) {
                if let Some((w, p)) = log.as_mut() {
                    w.flush().map_err(|e| io_err(p, e))?;
                }
                if let Some(dir) = self.cfg.out_dir.clone() {
                    let path = dir.join(CHECKPOINT);
                    self.save_checkpoint(&path, data)?;
                    progress(&Event::Checkpoint { path });
                }
                interrupted = true;
                break;
            }
        }
        if let Some((w, p)) = log.as_mut() {
            w.flush().map_err(|e| io_err(p, e))?;
        }
        Ok(Summary {
            steps: self.step,
            stopped_early,
            best: self.best,
            last_eval: self.last_eval,
            skipped: self.skipped,
            interrupted,
        })
    }

    /// Updates the early-stopping record; true when the monitored metric improved.
    fn record_eval(&mut self, st: &LossStats) -> Result<bool> {
        let v = st.metric(&self.cfg.monitor).ok_or_else(|| {
            Error::InvalidConfig(format!(
                "validation metric '{}' is not available for this model",
                self.cfg.monitor
            ))
        })?;
        self.last_eval = Some(*st);
        let better = match self.best {
            None => true,
            Some(b) if self.cfg.higher_is_better() => v > b,
            Some(b) => v < b,
        };
        if better {
            self.best = Some(v);
            self.stale = 0;
        } else {
            self.stale += 1;
        }
        Ok(better)
    }
}
