//! The lab's echo state network: a fixed reservoir harvested over each sequence and a ridge
//! readout of its last state (of every state for the copy task); no gradient descent.

use std::time::Instant;

use super::run::{LabSettings, RunResult, RunSpec};
use super::tasks::{LabData, LabTask};
use crate::data::{Dataset, Values};
use crate::error::{Error, Result};
use crate::layers::output::OutputKind;
use crate::models::ModelKind;
use crate::probes::{spectral_radius_of, ProbeRecord};
use crate::reservoir::spectral::dense_eigenvalues;
use crate::reservoir::{Esn, EsnConfig, Example, Pooling, ReadoutKind, ReservoirConfig};

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
pub(super) fn esn_run(spec: RunSpec, data: &LabData, s: &LabSettings) -> Result<RunResult> {
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
