//! One lab run (a model on a task at a length with a seed) and a plan of runs executed on
//! parallel workers. A trained run is the ordinary trainer with the probes on: it trains in
//! chunks of `eval_every` steps, scores the task's metric after each, and stops when the run
//! meets the task's criterion (or its budget ends, or it diverges). An ESN run harvests its
//! reservoir and fits the readout.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use super::models::{LabModel, Recipe};
use super::tasks::{LabData, LabTask};
use crate::builtin;
use crate::data::{Dataset, Values};
use crate::error::{Error, Result};
use crate::kernels::gemm::serial_scope;
use crate::layers::output::OutputKind;
use crate::models::{
    EvalSet, ModelConfig, ModelKind, Readout, SequenceClassifier, SequenceLabeller, SequenceModel,
};
use crate::probes::{spectral_radius_of, ProbeConfig, ProbeRecord};
use crate::reservoir::spectral::dense_eigenvalues;
use crate::reservoir::{Esn, EsnConfig, Example, Pooling, ReadoutKind, ReservoirConfig};
use crate::train::{Batches, Clip, Event, OptimizerConfig, TrainConfig, Trainer};

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
        return esn_run(spec, data, settings);
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
    cfg.probe = Some(ProbeConfig {
        every: s.eval_every.max(1),
        ..s.probe.clone()
    });
    let (threshold, higher) = (spec.task.criterion().1, true);
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
            }
        }
        let m = score(&tr.model)?;
        out.metric = m;
        out.curve.push((tr.step(), m));
        let ok = if higher {
            m >= threshold
        } else {
            m <= threshold
        };
        if ok && out.steps_to_solve.is_none() {
            out.steps_to_solve = Some(tr.step());
        }
        out.solved = ok;
        if ok && s.stop_when_solved {
            break;
        }
    }
    out.wall_s = t0.elapsed().as_secs_f64();
    Ok(out)
}

/// A sequence's inputs as reals (symbols one-hot over `vocab`).
fn real_inputs(v: &Values<f32>, vocab: usize) -> Vec<f64> {
    match v {
        Values::Reals { data, .. } => data.iter().map(|&x| f64::from(x)).collect(),
        Values::Symbols(ids) => ids
            .iter()
            .flat_map(|&i| (0..vocab).map(move |j| f64::from(u8::from(i == j))))
            .collect(),
    }
}

/// The ESN: a reservoir harvested over each sequence, a ridge readout of its last state (a
/// per-step readout for the copy task).
fn esn_run(spec: RunSpec, data: &LabData, s: &LabSettings) -> Result<RunResult> {
    let t0 = Instant::now();
    let (width, vocab) = match data.shape.input {
        crate::models::InputSpec::Reals { width, .. } => (width, 0),
        crate::models::InputSpec::Symbols { vocab, .. } => (vocab, vocab),
    };
    let per_step = data.shape.kind == ModelKind::Labeller;
    if spec.task == LabTask::Reber {
        return Err(Error::InvalidConfig(
            "an ESN readout is not a generative model: the Reber task samples strings".into(),
        ));
    }
    let (outputs, classes) = match data.shape.output {
        OutputKind::Categorical { classes, .. } => (classes, Some(classes)),
        OutputKind::Gaussian { dim, .. } => (dim, None),
        other => {
            return Err(Error::InvalidConfig(format!(
                "the lab's ESN reads classes or reals, not {other:?}"
            )))
        }
    };
    let targets = |d: &Dataset<f32>| -> Vec<Vec<f64>> {
        d.sequences()
            .iter()
            .map(|q| match (&q.target, classes) {
                (Values::Symbols(ids), Some(k)) => ids
                    .iter()
                    .flat_map(|&c| (0..k).map(move |j| f64::from(u8::from(c == j))))
                    .collect(),
                (t, _) => real_inputs(t, 0),
            })
            .collect()
    };
    let xs: Vec<Vec<f64>> = data
        .train
        .sequences()
        .iter()
        .map(|q| real_inputs(&q.input, vocab))
        .collect();
    let ys = targets(&data.train);
    let cfg = EsnConfig {
        reservoir: ReservoirConfig {
            units: s.esn_units,
            spectral_radius: 0.95,
            ..Default::default()
        },
        washout: 0,
        seed: spec.seed,
        ..Default::default()
    };
    let kind = if per_step {
        ReadoutKind::PerStep
    } else {
        ReadoutKind::Pooled(Pooling::Last)
    };
    let mut esn = Esn::new(cfg, width, outputs, kind)?;
    let ex: Vec<Example> = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| Example {
            input: x,
            target: y,
        })
        .collect();
    esn.fit(&ex)?;
    let vx: Vec<Vec<f64>> = data
        .valid
        .sequences()
        .iter()
        .map(|q| real_inputs(&q.input, vocab))
        .collect();
    let vy = targets(&data.valid);
    let refs: Vec<&[f64]> = vx.iter().map(|v| v.as_slice()).collect();
    let pred = if per_step {
        esn.predict(&refs)?
    } else {
        esn.classify(&refs)?
    };
    let argmax = |v: &[f64]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]));
    let metric = match (spec.task, classes) {
        (LabTask::Copy, Some(k)) => {
            let (mut right, mut all) = (0usize, 0usize);
            for (p, y) in pred.iter().zip(&vy) {
                let steps = y.len() / k;
                for t in steps.saturating_sub(10)..steps {
                    right += usize::from(
                        argmax(&p[t * k..(t + 1) * k]) == argmax(&y[t * k..(t + 1) * k]),
                    );
                    all += 1;
                }
            }
            right as f64 / all.max(1) as f64
        }
        (_, Some(_)) => {
            let right = pred
                .iter()
                .zip(&vy)
                .filter(|(p, y)| argmax(p) == argmax(y))
                .count();
            right as f64 / pred.len().max(1) as f64
        }
        (_, None) => {
            let right = pred
                .iter()
                .zip(&vy)
                .filter(|(p, y)| (p[0] - y[0]).abs() < 0.04)
                .count();
            right as f64 / pred.len().max(1) as f64
        }
    };
    let w = &esn.layers[0].w;
    let ev = dense_eigenvalues(w.rows(), &w.to_dense())?;
    let rec = ProbeRecord {
        step: 0,
        weight_eigenvalues: Some(ev.clone()),
        ..Default::default()
    };
    let solved = metric >= spec.task.criterion().1;
    Ok(RunResult {
        spec: Some(spec),
        solved,
        metric,
        steps_to_solve: solved.then_some(0),
        steps: 0,
        wall_s: t0.elapsed().as_secs_f64(),
        final_loss: f64::NAN,
        diverged: false,
        curve: vec![(0, metric)],
        radius: vec![(0, spectral_radius_of(&ev))],
        first_probe: Some(rec.clone()),
        last_probe: Some(rec),
        ..Default::default()
    })
}

/// Runs every spec of `plan` on `jobs` worker threads (each with single-threaded products),
/// making each run's data with `data_for`, and calls `done` on this thread as each finishes
/// (in the order they finish). A run's directory is `out/runs/NAME` when `out` is given.
/// Returns the results in the plan's order; a run that fails is returned as its error text.
pub fn run_all(
    plan: &[RunSpec],
    settings: &LabSettings,
    data_for: &(dyn Fn(&RunSpec) -> Result<LabData> + Sync),
    jobs: usize,
    out: Option<&Path>,
    done: &mut dyn FnMut(usize, &std::result::Result<RunResult, String>),
) -> Vec<std::result::Result<RunResult, String>> {
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    let mut results: Vec<Option<std::result::Result<RunResult, String>>> = vec![None; plan.len()];
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(plan.len().max(1)) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                let _serial = serial_scope();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(spec) = plan.get(i) else {
                        break;
                    };
                    let dir: Option<PathBuf> = out.map(|o| o.join("runs").join(spec.name()));
                    let r = (|| {
                        if let Some(d) = &dir {
                            std::fs::create_dir_all(d).map_err(|e| Error::Io {
                                path: d.display().to_string(),
                                source: e,
                            })?;
                        }
                        let data = data_for(spec)?;
                        run_one(*spec, &data, settings, dir.as_deref())
                    })()
                    .map_err(|e| e.to_string());
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, r) in rx {
            done(i, &r);
            results[i] = Some(r);
        }
    });
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("not run".into())))
        .collect()
}

/// Every (task, model, length, seed) of the lists, leaving out the combinations that cannot
/// run (the ESN on Reber) and repeating a fixed-length task (Reber) at one length only.
pub fn plan(
    tasks: &[LabTask],
    models: &[LabModel],
    lengths: &[usize],
    seeds: &[u64],
) -> Vec<RunSpec> {
    let mut v = Vec::new();
    for &task in tasks {
        let lens: Vec<usize> = if task.length_meaning().1 {
            lengths.to_vec()
        } else {
            vec![0]
        };
        for &length in &lens {
            for &model in models {
                if model == LabModel::Esn && task == LabTask::Reber {
                    continue;
                }
                for &seed in seeds {
                    v.push(RunSpec {
                        task,
                        model,
                        length,
                        seed,
                    });
                }
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::tasks::lab_data;

    #[test]
    fn a_quick_lab_runs_every_model_and_records_probes() {
        let s = LabSettings::quick();
        let plan = plan(&[LabTask::Adding], &crate::lab::LAB_MODELS, &[12], &[1]);
        assert_eq!(plan.len(), 10);
        let data =
            |r: &RunSpec| lab_data(r.task, r.length, (s.train_size, s.valid_size), r.seed, None);
        let mut seen = 0;
        let res = run_all(&plan, &s, &data, 2, None, &mut |_, _| seen += 1);
        assert_eq!(seen, 10);
        for (spec, r) in plan.iter().zip(&res) {
            let r = r
                .as_ref()
                .unwrap_or_else(|e| panic!("{}: {e}", spec.name()));
            assert_eq!(r.spec, Some(*spec));
            assert!(r.metric.is_finite() && (0.0..=1.0).contains(&r.metric));
            let first = r.first_probe.as_ref().unwrap();
            if spec.model.trained() {
                assert!(r.steps > 0 && r.steps <= s.steps);
                assert_eq!(first.step, 1);
                assert_eq!(first.lag.norms.len(), 12, "{}", spec.name());
                assert!(!r.radius.is_empty() && !r.curve.is_empty());
                if spec.model != LabModel::RnnClip {
                    assert!(
                        r.clip_rate.iter().all(|c| c.1 == 0.0),
                        "only rnn-clip clips"
                    );
                }
            } else {
                assert!(
                    (r.radius[0].1 - 0.95).abs() < 1e-6,
                    "the reservoir's radius"
                );
            }
        }
        let rnn = res[0].as_ref().unwrap();
        let again = run_one(plan[0], &data(&plan[0]).unwrap(), &s, None).unwrap();
        assert_eq!(again.curve, rnn.curve, "a seed fixes a run");
    }
}
