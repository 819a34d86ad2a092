//! `unfold esn`: fit an echo state network on Mackey-Glass (built in), a CSV column or a `.ts`
//! classification pair, with every reservoir setting on the command line; write its metrics,
//! the reservoir's eigenvalues and its echo-state diagnostic as plots, and the fitted network
//! as a checkpoint that `unfold forecast --load` reuses.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use unfold::checkpoint::write_atomic;
use unfold::data::tasks::mackey_glass;
use unfold::reservoir::{
    echo_state_check, eigenvalues, Activation, Esn, EsnConfig, Example, Pooling, ReadoutKind,
    ReservoirConfig, WeightDist,
};

use crate::rundir::{claim, Claim, RunLock};
use crate::settings::fresh_dir;
use crate::{plot, BadInput, Global};

/// Reservoir and readout settings shared by `unfold esn` and `unfold forecast`.
#[derive(Args, Clone, Debug)]
pub struct ReservoirArgs {
    /// Reservoir units per layer.
    #[arg(long, default_value_t = 500)]
    pub units: usize,
    /// Spectral radius of the recurrent matrix (any value >= 0: below 1 is the usual echo-state
    /// regime, above 1 relies on tanh saturation).
    #[arg(long, default_value_t = 0.95)]
    pub spectral_radius: f64,
    /// Fraction of non-zero recurrent weights (default: 10 per unit).
    #[arg(long)]
    pub connectivity: Option<f64>,
    /// Multiplier of the input weights.
    #[arg(long, default_value_t = 1.0)]
    pub input_scaling: f64,
    /// Fraction of non-zero input weights.
    #[arg(long, default_value_t = 1.0)]
    pub input_connectivity: f64,
    /// Scale of the random bias (0: none).
    #[arg(long, default_value_t = 0.2)]
    pub bias_scaling: f64,
    /// Leak rate in (0, 1] (1: no leaky integration).
    #[arg(long, default_value_t = 1.0)]
    pub leak_rate: f64,
    /// Units' nonlinearity: tanh, identity, sigmoid, relu.
    #[arg(long, default_value = "tanh")]
    pub activation: String,
    /// Output-feedback scaling (0: no feedback; training is teacher-forced).
    #[arg(long, default_value_t = 0.0)]
    pub feedback_scaling: f64,
    /// Amplitude of state noise while harvesting training states.
    #[arg(long, default_value_t = 0.0)]
    pub noise: f64,
    /// Stacked reservoirs (a deep ESN reads all of them).
    #[arg(long = "reservoirs", default_value_t = 1)]
    pub reservoirs: usize,
    /// Steps discarded at the start of each sequence before fitting.
    #[arg(long, default_value_t = 100)]
    pub washout: usize,
    /// Ridge candidates, comma-separated; several are compared on a validation split.
    #[arg(long, default_value = "1e-10,1e-8,1e-6,1e-4,1e-2,1")]
    pub ridge: String,
}

impl ReservoirArgs {
    /// The library configuration.
    pub fn config(&self, seed: u64) -> Result<EsnConfig> {
        let ridge = self
            .ridge
            .split(',')
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| BadInput(format!("--ridge: '{v}' is not a number")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let units = self.units.max(1);
        Ok(EsnConfig {
            reservoir: ReservoirConfig {
                units: self.units,
                spectral_radius: self.spectral_radius,
                connectivity: self.connectivity.unwrap_or((10.0 / units as f64).min(1.0)),
                weight_dist: WeightDist::Normal,
                input_scaling: self.input_scaling,
                input_connectivity: self.input_connectivity,
                input_dist: WeightDist::Uniform,
                bias_scaling: self.bias_scaling,
                leak_rate: self.leak_rate,
                activation: Activation::parse(&self.activation)
                    .map_err(|e| BadInput(format!("--activation: {e}")))?,
                feedback_scaling: self.feedback_scaling,
                noise: self.noise,
            },
            layers: self.reservoirs,
            washout: self.washout,
            readout_bias: true,
            readout_input: true,
            ridge,
            valid_fraction: 0.2,
            seed,
        })
    }
}

/// `unfold esn` arguments.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    unfold esn                                  # Mackey-Glass, 500 units: NRMSE84 and plots\n  \
    unfold esn --units 1000 --spectral-radius 1.0 --steps 10000\n  \
    unfold esn --spectral-radius 3 --input-scaling 0.1   # beyond 1: see echo_state.png\n  \
    unfold esn --ts JapaneseVowels_TRAIN.ts --test JapaneseVowels_TEST.ts --washout 0 --leak-rate 0.2\n  \
    unfold forecast --load runs/esn/esn.safetensors --csv FILE --column NAME")]
pub struct EsnArgs {
    /// Classification data in the sktime .ts format (training part; needs --test).
    #[arg(long)]
    pub ts: Option<PathBuf>,
    /// The held-out .ts file for --ts.
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// How a sequence's states are summarised for classification: last, mean, last+mean.
    #[arg(long, default_value = "last+mean")]
    pub pooling: String,
    /// Mackey-Glass training steps (after the washout).
    #[arg(long, default_value_t = 3000)]
    pub steps: usize,
    /// Free-running steps of the closed-loop score (NRMSE after this many steps).
    #[arg(long, default_value_t = 84)]
    pub horizon: usize,
    /// Closed-loop trials averaged in the Mackey-Glass score.
    #[arg(long, default_value_t = 50)]
    pub trials: usize,
    #[command(flatten)]
    pub reservoir: ReservoirArgs,
}

/// Writes `summary.json` in `dir` atomically.
pub(crate) fn write_summary(dir: &Path, summary: &serde_json::Value) -> Result<()> {
    write_atomic(
        &dir.join("summary.json"),
        serde_json::to_string_pretty(summary)?.as_bytes(),
    )?;
    Ok(())
}

/// The run directory: `--out`, else a fresh `runs/<name>`; created and claimed for this run
/// (`rundir.rs`): keep the lock until the run ends.
pub(crate) fn out_dir(global: &Global, name: &str) -> Result<(PathBuf, RunLock)> {
    let dir = match &global.out {
        Some(d) => d.clone(),
        None => fresh_dir(&Path::new("runs").join(name)),
    };
    let lock = claim(
        &dir,
        Claim::Fresh {
            overwrite: global.overwrite,
        },
    )?;
    Ok((dir, lock))
}

/// Saves the eigenvalue plot and the echo-state diagnostic of the first reservoir.
fn diagnostics(
    esn: &Esn,
    drive: &[f64],
    dir: &Path,
    say: &dyn Fn(&str),
) -> Result<serde_json::Value> {
    let layer = &esn.layers[0];
    let n = layer.units();
    let mut report = json!({});
    if n <= 2000 {
        let ev = eigenvalues(&layer.w)?;
        let rho = ev.iter().map(|&(a, b)| a.hypot(b)).fold(0.0, f64::max);
        plot::scatter(
            dir,
            "eigenvalues",
            &format!("Reservoir eigenvalues ({n} units, radius {rho:.3})"),
            &ev,
            rho,
        )?;
        report["spectral_radius_measured"] = json!(rho);
    }
    let steps = (drive.len() / esn.inputs.max(1)).min(500);
    if steps > 0 && esn.inputs > 0 {
        let esp = echo_state_check(esn, &drive[..steps * esn.inputs], None, 5, 1e-8, 7)?;
        let points: Vec<(f64, f64)> = esp
            .distance
            .iter()
            .enumerate()
            .map(|(t, &d)| (t as f64, d.max(1e-18)))
            .collect();
        plot::plot(
            dir,
            "echo_state",
            "Echo-state check: distance between states from different starts",
            "RMS state distance",
            &[plot::Series {
                name: "max over 5 random starts".into(),
                points,
            }],
            true,
        )?;
        match esp.converged_at {
            Some(t) => say(&format!(
                "echo-state check: initial states forgotten (distance < 1e-8) after {t} steps, contraction {:.3} per step",
                esp.contraction
            )),
            None => say(&format!(
                "echo-state check: initial states not forgotten within the {steps} steps of this input (final distance {:.2e})",
                esp.distance.last().copied().unwrap_or(f64::NAN)
            )),
        }
        report["echo_state_converged_at"] = json!(esp.converged_at);
        report["echo_state_contraction"] = json!(esp.contraction);
    }
    Ok(report)
}

/// Runs `unfold esn`.
pub fn esn(args: EsnArgs, global: &Global) -> Result<()> {
    let say = |s: &str| {
        if !global.quiet {
            println!("{s}");
        }
    };
    let seed = global.seed.unwrap_or(1);
    let cfg = args.reservoir.config(seed)?;
    if let Some(train) = &args.ts {
        let test = args
            .test
            .as_ref()
            .ok_or_else(|| BadInput("--ts needs --test with the held-out file".into()))?;
        return classify(&args, cfg, train, test, global, &say);
    }
    if args.ts.is_none() && args.test.is_some() {
        return Err(BadInput("--test needs --ts".into()).into());
    }
    let (dir, _lock) = out_dir(global, "esn")?;
    let washout = cfg.washout;
    let warm = 500;
    let total = washout + args.steps + 1 + args.trials.max(1) * (warm + args.horizon);
    let series: Vec<f64> = mackey_glass(total, 17.0, 1000)
        .iter()
        .map(|v| v - 1.0)
        .collect();
    let n_fit = washout + args.steps;
    let t0 = Instant::now();
    let mut esn = Esn::new(cfg, 1, 1, ReadoutKind::PerStep)?;
    let built = t0.elapsed();
    let report = esn.fit(&[Example {
        input: &series[..n_fit],
        target: &series[1..n_fit + 1],
    }])?;
    let fitted = t0.elapsed() - built;
    let std = {
        let m = series.iter().sum::<f64>() / series.len() as f64;
        (series.iter().map(|v| (v - m).powi(2)).sum::<f64>() / series.len() as f64).sqrt()
    };
    let pred = esn.predict(&[&series[..series.len() - 1]])?.remove(0);
    let test = n_fit + 1..series.len() - 1;
    let one_step = (test
        .clone()
        .map(|t| (pred[t] - series[t + 1]).powi(2))
        .sum::<f64>()
        / test.len().max(1) as f64)
        .sqrt()
        / std;
    let mut sq = 0.0;
    let mut first: Option<(Vec<f64>, Vec<f64>)> = None;
    for k in 0..args.trials.max(1) {
        let start = n_fit + 1 + k * (warm + args.horizon) + warm;
        let mut st = esn.state();
        esn.run(&mut st, &series[start - warm..start], None)?;
        let fc = esn.forecast(&mut st, args.horizon.max(1))?;
        let h = args.horizon.max(1);
        sq += (fc[h - 1] - series[start + h - 1]).powi(2);
        if first.is_none() {
            first = Some((fc, series[start..start + h].to_vec()));
        }
    }
    let nrmse_h = (sq / args.trials.max(1) as f64).sqrt() / std;
    say(&format!(
        "Mackey-Glass (tau 17), {} units x {} reservoir(s), radius {}, {} training steps: ridge {:.0e}",
        esn.config.reservoir.units, esn.config.layers, esn.config.reservoir.spectral_radius, args.steps, report.ridge
    ));
    say(&format!(
        "one-step NRMSE {one_step:.3e}   NRMSE after {} free-running steps {nrmse_h:.3e} (log10 {:.2}, {} trials)",
        args.horizon,
        nrmse_h.log10(),
        args.trials.max(1)
    ));
    say(&format!("built in {built:.2?}, fitted in {fitted:.2?}"));
    let diag = diagnostics(&esn, &series[..n_fit], &dir, &say)?;
    if let Some((fc, truth)) = first {
        let pts = |v: &[f64]| {
            v.iter()
                .enumerate()
                .map(|(t, &y)| (t as f64, y + 1.0))
                .collect()
        };
        plot::plot(
            &dir,
            "forecast",
            "Closed-loop forecast of Mackey-Glass",
            "x(t)",
            &[
                plot::Series {
                    name: "truth".into(),
                    points: pts(&truth),
                },
                plot::Series {
                    name: "ESN, free running".into(),
                    points: pts(&fc),
                },
            ],
            false,
        )?;
    }
    let ckpt = dir.join("esn.safetensors");
    esn.save(&ckpt)?;
    let summary = json!({
        "task": "mackey-glass",
        "units": esn.config.reservoir.units,
        "reservoirs": esn.config.layers,
        "spectral_radius": esn.config.reservoir.spectral_radius,
        "training_steps": args.steps,
        "ridge": report.ridge,
        "one_step_nrmse": one_step,
        "horizon": args.horizon,
        "closed_loop_nrmse": nrmse_h,
        "fit_seconds": fitted.as_secs_f64(),
        "diagnostics": diag,
    });
    write_summary(&dir, &summary)?;
    say(&format!(
        "wrote {} (checkpoint), summary.json, eigenvalues.png/svg, echo_state.png/svg, forecast.png/svg in {}",
        ckpt.file_name().and_then(|s| s.to_str()).unwrap_or(""),
        dir.display()
    ));
    Ok(())
}

fn classify(
    args: &EsnArgs,
    cfg: EsnConfig,
    train: &Path,
    test: &Path,
    global: &Global,
    say: &dyn Fn(&str),
) -> Result<()> {
    let tr = crate::data::parse_ts(train)?;
    let te = crate::data::parse_ts(test)?;
    if tr.channels != te.channels {
        return Err(BadInput(format!(
            "{} has {} channels, {} has {}",
            test.display(),
            te.channels,
            train.display(),
            tr.channels
        ))
        .into());
    }
    let ch = tr.channels;
    let (mean, std) = tr.channel_moments();
    let classes = tr.classes.clone();
    let k = classes.len();
    let label = |l: &str, f: &Path| {
        classes.iter().position(|c| c == l).ok_or_else(|| {
            BadInput(format!(
                "{}: class '{l}' is not in the training file",
                f.display()
            ))
        })
    };
    let xs = tr.standardised(&mean, &std);
    let ys: Vec<Vec<f64>> = tr
        .labels
        .iter()
        .map(|l| label(l, train).map(|c| (0..k).map(|j| f64::from(u8::from(j == c))).collect()))
        .collect::<Result<_, _>>()?;
    let pooling = Pooling::parse(&args.pooling).map_err(|e| BadInput(format!("--pooling: {e}")))?;
    let (dir, _lock) = out_dir(global, "esn-classify")?;
    let t0 = Instant::now();
    let mut esn = Esn::new(cfg, ch, k, ReadoutKind::Pooled(pooling))?;
    let data: Vec<Example> = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| Example {
            input: x,
            target: y,
        })
        .collect();
    let report = esn.fit(&data)?;
    let txs = te.standardised(&mean, &std);
    let inputs: Vec<&[f64]> = txs.iter().map(|x| x.as_slice()).collect();
    let scores = esn.classify(&inputs)?;
    let elapsed = t0.elapsed();
    let mut correct = 0;
    for (s, l) in scores.iter().zip(&te.labels) {
        let want = label(l, test)?;
        if (0..k).max_by(|&a, &b| s[a].total_cmp(&s[b])) == Some(want) {
            correct += 1;
        }
    }
    let acc = correct as f64 / te.labels.len().max(1) as f64;
    say(&format!(
        "{} classes, {} training and {} test sequences, {} units: ridge {:.0e}",
        k,
        xs.len(),
        txs.len(),
        esn.config.reservoir.units,
        report.ridge
    ));
    say(&format!(
        "test accuracy {:.2}% ({correct}/{}), fit and test in {elapsed:.2?}",
        100.0 * acc,
        te.labels.len()
    ));
    let diag = diagnostics(&esn, &xs[0], &dir, say)?;
    esn.save(dir.join("esn.safetensors"))?;
    let summary = json!({
        "task": "classification",
        "train": train.display().to_string(),
        "test": test.display().to_string(),
        "units": esn.config.reservoir.units,
        "ridge": report.ridge,
        "accuracy": acc,
        "diagnostics": diag,
    });
    write_summary(&dir, &summary)?;
    say(&format!(
        "wrote esn.safetensors, summary.json and plots in {}",
        dir.display()
    ));
    Ok(())
}
