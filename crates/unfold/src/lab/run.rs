//! One lab run: a model on a task at a length with a seed. A trained run is the ordinary trainer with the probes on: it trains in
//! chunks of `eval_every` steps, scores the task's metric after each, and stops when the run
//! meets the task's criterion (or its budget ends, or it diverges). An ESN run harvests its
//! reservoir and fits the readout.

use std::path::Path;
use std::time::Instant;

use super::models::{LabModel, Recipe};
use super::tasks::{LabData, LabTask};
use crate::builtin;
use crate::error::{Error, Result};
use crate::models::{
    EvalSet, ModelConfig, ModelKind, Readout, SequenceClassifier, SequenceLabeller, SequenceModel,
};
use crate::probes::{ProbeConfig, ProbeRecord};
use crate::train::{Batches, Clip, Event, OptimizerConfig, StopFlag, TrainConfig, Trainer};

/// The budget and settings every run of a lab shares.
#[derive(Debug, Clone, PartialEq)]
pub struct LabSettings {
    /// Hidden units of the trained models.
    pub hidden: usize,
    /// Optimisation steps at most.
    pub steps: u64,
    /// Sequences per batch.
    pub batch: usize,
    /// Learning rate (constant).
    pub lr: f64,
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Score (and probe) every this many steps.
    pub eval_every: u64,
    /// The norm `rnn-clip` clips at.
    pub clip: f64,
    /// The spectral radius the plain tanh RNNs start at (`None`: PyTorch's initialisation).
    pub radius: Option<f64>,
    /// The LSTM's initial forget-gate bias (default 1).
    pub forget_bias: f64,
    /// Training sequences generated per run.
    pub train_size: usize,
    /// Held-out sequences the criterion is measured on.
    pub valid_size: usize,
    /// Reservoir units of the ESN.
    pub esn_units: usize,
    /// Stop a run when it meets the criterion.
    pub stop_when_solved: bool,
    /// What the probes follow (their `every` is set to `eval_every`).
    pub probe: ProbeConfig,
    /// When set, runs stop after their current step and no new run starts (an interrupt).
    pub stop: Option<StopFlag>,
}

impl LabSettings {
    /// The `--quick` preset: tiny models and budgets, for a test that runs in seconds.
    pub fn quick() -> Self {
        LabSettings {
            hidden: 8,
            steps: 60,
            batch: 16,
            lr: 1e-2,
            optimizer: OptimizerConfig::adam(),
            eval_every: 20,
            clip: 1.0,
            radius: None,
            forget_bias: 1.0,
            train_size: 128,
            valid_size: 64,
            esn_units: 50,
            stop_when_solved: true,
            probe: ProbeConfig::every(20),
            stop: None,
        }
    }

    /// The default preset: minutes on two cores for one task, ten models, four lengths and
    /// two seeds.
    pub fn standard() -> Self {
        LabSettings {
            hidden: 32,
            steps: 3000,
            batch: 32,
            lr: 2e-3,
            optimizer: OptimizerConfig::adam(),
            eval_every: 100,
            clip: 1.0,
            radius: None,
            forget_bias: 1.0,
            train_size: 10000,
            valid_size: 500,
            esn_units: 400,
            stop_when_solved: true,
            probe: ProbeConfig::every(100),
            stop: None,
        }
    }

    /// The `--full` preset: the literature's sizes (hours).
    pub fn full() -> Self {
        LabSettings {
            hidden: 128,
            steps: 20000,
            train_size: 20000,
            valid_size: 1000,
            esn_units: 1000,
            eval_every: 500,
            probe: ProbeConfig::every(500),
            ..Self::standard()
        }
    }
}

/// What one run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunSpec {
    /// The task.
    pub task: LabTask,
    /// The model.
    pub model: LabModel,
    /// The length setting.
    pub length: usize,
    /// The seed of the data and the weights.
    pub seed: u64,
}

impl RunSpec {
    /// A name for the run's directory: `adding-lstm-T50-s1`.
    pub fn name(&self) -> String {
        format!(
            "{}-{}-T{}-s{}",
            self.task.name(),
            self.model.name(),
            self.length,
            self.seed
        )
    }
}

/// What one run found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunResult {
    /// The run (`None` only in a default value).
    pub spec: Option<RunSpec>,
    /// Whether the metric reached the task's threshold.
    pub solved: bool,
    /// The last value of the metric.
    pub metric: f64,
    /// The first step at which the criterion was met.
    pub steps_to_solve: Option<u64>,
    /// Steps trained.
    pub steps: u64,
    /// Seconds, data generation excluded.
    pub wall_s: f64,
    /// The last validation loss (nats).
    pub final_loss: f64,
    /// Whether training stopped on a non-finite loss or gradient.
    pub diverged: bool,
    /// Whether an interrupt stopped the run before its budget ended.
    pub interrupted: bool,
    /// The metric by step.
    pub curve: Vec<(u64, f64)>,
    /// Share of steps clipped, per chunk (by the chunk's last step).
    pub clip_rate: Vec<(u64, f64)>,
    /// Mean gradient norm before clipping, in windows of a tenth of a chunk.
    pub grad_norm: Vec<(u64, f64)>,
    /// Spectral radius of `W_hh` (or of the linearised step for gated cells) by step.
    pub radius: Vec<(u64, f64)>,
    /// The probes at the first step.
    pub first_probe: Option<ProbeRecord>,
    /// The probes at the last step.
    pub last_probe: Option<ProbeRecord>,
}

impl RunResult {
    /// Everything as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let pts = |v: &[(u64, f64)]| -> serde_json::Value {
            v.iter()
                .map(|&(s, x)| serde_json::json!([s, finite(x)]))
                .collect()
        };
        let probe = |p: &Option<ProbeRecord>| -> serde_json::Value {
            p.as_ref()
                .and_then(|r| serde_json::from_str(&r.to_json()).ok())
                .unwrap_or(serde_json::Value::Null)
        };
        let s = self.spec;
        serde_json::json!({
            "task": s.map(|s| s.task.name()),
            "model": s.map(|s| s.model.name()),
            "length": s.map(|s| s.length),
            "seed": s.map(|s| s.seed),
            "solved": self.solved,
            "metric": finite(self.metric),
            "steps_to_solve": self.steps_to_solve,
            "steps": self.steps,
            "wall_s": self.wall_s,
            "final_loss": finite(self.final_loss),
            "diverged": self.diverged,
            "interrupted": self.interrupted,
            "curve": pts(&self.curve),
            "clip_rate": pts(&self.clip_rate),
            "grad_norm": pts(&self.grad_norm),
            "radius": pts(&self.radius),
            "first_probe": probe(&self.first_probe),
            "last_probe": probe(&self.last_probe),
        })
    }
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Runs `spec` on `data` with `settings`; a trained model logs to `dir` (its metrics.jsonl,
/// probes included, and checkpoint) when given.
pub fn run_one(
    spec: RunSpec,
    data: &LabData,
    settings: &LabSettings,
    dir: Option<&Path>,
) -> Result<RunResult> {
    if spec.model == LabModel::Esn {
        return super::esn::esn_run(spec, data, settings);
    }
    let mut recipe = spec.model.recipe(settings.radius, settings.clip)?;
    if recipe.forget_bias.is_some() {
        recipe.forget_bias = Some(settings.forget_bias);
    }
    let input = data.shape.input;
    let cfg = ModelConfig {
        input,
        cell: recipe.cell,
        hidden: settings.hidden,
        layers: 1,
        bidirectional: false,
        output: data.shape.output,
        deep_output: 0,
        residual: false,
    };
    match data.shape.kind {
        ModelKind::Classifier => {
            let mut m = SequenceClassifier::<f32>::new(cfg, Readout::Last, spec.seed)?;
            prepare(&mut m.rnn, &recipe, spec.seed)?;
            train_run(m, spec, data, settings, &recipe, dir, |m| {
                classifier_metric(data, m)
            })
        }
        ModelKind::Labeller => {
            let mut m = SequenceLabeller::<f32>::new(cfg, spec.seed)?;
            prepare(&mut m.rnn, &recipe, spec.seed)?;
            train_run(m, spec, data, settings, &recipe, dir, |m| {
                labeller_metric(data, m, spec.seed)
            })
        }
        other => Err(Error::InvalidConfig(format!(
            "the lab trains classifiers and labellers, not {other:?}"
        ))),
    }
}

fn prepare(rnn: &mut crate::layers::Recurrent<f32>, r: &Recipe, seed: u64) -> Result<()> {
    rnn.initialise(r.init, seed.wrapping_add(17))?;
    if let Some(b) = r.forget_bias {
        rnn.set_forget_bias(b as f32)?;
    }
    Ok(())
}

fn classifier_metric(data: &LabData, m: &SequenceClassifier<f32>) -> Result<f64> {
    match &data.setup {
        Some(s) => Ok(builtin::score_classifier(s, m)?.metric),
        None => {
            let mut ws = Default::default();
            let st = EvalSet::evaluate(&data.valid, m, &mut ws, 256)?;
            Ok(st.accuracy().unwrap_or(f64::NAN))
        }
    }
}

fn labeller_metric(data: &LabData, m: &SequenceLabeller<f32>, seed: u64) -> Result<f64> {
    let s = data
        .setup
        .as_ref()
        .ok_or_else(|| Error::InvalidCall("a labeller task comes from a built-in task".into()))?;
    Ok(builtin::score_labeller(s, m, 200, seed)?.metric)
}

/// Trains in chunks of `eval_every` steps, scoring after each.
fn train_run<M: SequenceModel<f32>>(
    model: M,
    spec: RunSpec,
    data: &LabData,
    s: &LabSettings,
    recipe: &Recipe,
    dir: Option<&Path>,
    score: impl Fn(&M) -> Result<f64>,
) -> Result<RunResult> {
    let t0 = Instant::now();
    let mut cfg = TrainConfig::new(s.eval_every.max(1));
    cfg.seed = spec.seed;
    cfg.optimizer = s.optimizer;
    cfg.lr = crate::train::LrSchedule::constant(s.lr);
    cfg.clip = recipe.clip.map_or(Clip::None, Clip::Norm);
    cfg.eval_every = 0;
    cfg.eval_batch = 256;
    cfg.out_dir = dir.map(Path::to_path_buf);
    cfg.stop = s.stop.clone();
    cfg.probe = Some(ProbeConfig {
        every: s.eval_every.max(1),
        ..s.probe.clone()
    });
    // Every lab metric is higher-is-better.
    let threshold = spec.task.criterion().1;
    let mut tr = Trainer::new(model, cfg)?;
    let mut batches = Batches::new(&data.train, s.batch, 4, spec.seed)?;
    let mut out = RunResult {
        spec: Some(spec),
        metric: f64::NAN,
        final_loss: f64::NAN,
        ..Default::default()
    };
    let mut end = 0;
    while end < s.steps {
        end = (end + s.eval_every.max(1)).min(s.steps);
        tr.set_steps(end);
        let (mut clipped, mut n) = (0usize, 0usize);
        // The gradient norm in windows of a tenth of a chunk (a divergence shows its rise).
        let window = (s.eval_every / 10).max(1);
        let (mut wsum, mut wn) = (0.0, 0u64);
        let mut norms: Vec<(u64, f64)> = Vec::new();
        let mut probes: Vec<ProbeRecord> = Vec::new();
        let res = tr.run(&mut batches, Some(&data.valid), &mut |e| match e {
            Event::Step {
                step,
                grad_norm,
                grad_norm_clipped,
                ..
            } => {
                n += 1;
                clipped += usize::from(grad_norm_clipped < grad_norm);
                wsum += grad_norm;
                wn += 1;
                if step % window == 0 || !grad_norm.is_finite() {
                    norms.push((*step, wsum / wn as f64));
                    (wsum, wn) = (0.0, 0);
                }
            }
            Event::Probe(p) => probes.push((**p).clone()),
            _ => {}
        });
        if wn > 0 {
            norms.push((tr.step(), wsum / wn as f64));
        }
        out.grad_norm.extend(norms);
        for p in probes {
            let r = p.weight_radius().unwrap_or_else(|| p.step_radius());
            out.radius.push((p.step, r));
            if out.first_probe.is_none() {
                out.first_probe = Some(p.clone());
            }
            out.last_probe = Some(p);
        }
        if n > 0 {
            out.clip_rate.push((tr.step(), clipped as f64 / n as f64));
        }
        out.steps = tr.step();
        match res {
            Err(Error::NonFinite { .. }) => {
                out.diverged = true;
                break;
            }
            Err(e) => return Err(e),
            Ok(sum) => {
                out.final_loss = sum.last_eval.map_or(f64::NAN, |st| st.mean_nll());
                out.interrupted = sum.interrupted;
            }
        }
        let m = score(&tr.model)?;
        out.metric = m;
        out.curve.push((tr.step(), m));
        let ok = m >= threshold;
        if ok && out.steps_to_solve.is_none() {
            out.steps_to_solve = Some(tr.step());
        }
        out.solved = ok;
        if (ok && s.stop_when_solved) || out.interrupted {
            break;
        }
    }
    out.wall_s = t0.elapsed().as_secs_f64();
    Ok(out)
}
