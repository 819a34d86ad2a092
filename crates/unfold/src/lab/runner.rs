//! The plan of a lab (every task, model, length and seed) and its runs on parallel workers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use super::models::LabModel;
use super::run::{run_one, LabSettings, RunResult, RunSpec};
use super::tasks::{LabData, LabTask};
use crate::error::{Error, Result};
use crate::kernels::gemm::serial_scope;

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
                    if settings.stop.as_ref().is_some_and(|f| f.is_set()) {
                        break;
                    }
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
        .map(|r| r.unwrap_or_else(|| Err("not run (interrupted)".into())))
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
