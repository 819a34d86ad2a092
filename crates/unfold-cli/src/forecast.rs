//! `unfold forecast`: closed-loop forecasting of one CSV column with an echo state network or an
//! LSTM/GRU, scored against the last `--horizon` values held out.
//!
//! The column is standardised with the moments of the part before the held-out tail. The model
//! is a one-step predictor fitted on that part (ridge readout for the ESN, Adam on windows for
//! the RNNs); it is then run over the whole history and continued in closed loop, each forecast
//! fed back as the next input. Metrics are in the column's own units, beside the persistence
//! baseline (repeat the last value). Writes `forecast.csv`, `forecast.png`/`.svg`,
//! `summary.json` and the fitted model.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use serde_json::json;
use unfold::checkpoint::write_atomic;
use unfold::data::{tasks, Dataset, Scaler};
use unfold::layers::OutputKind;
use unfold::models::{AnyModel, InputSpec, ModelConfig, ModelSpec, SavedModel, SequenceLabeller};
use unfold::reservoir::{Esn, Example, ReadoutKind};
use unfold::train::{Batches, LrSchedule, OptimizerConfig, TrainConfig, Trainer};
use unfold::CellKind;

use crate::data::{csv_fields, csv_header, read};
use crate::esn::{out_dir, write_summary, ReservoirArgs};
use crate::{plot, BadInput, Global};

/// `unfold forecast` arguments.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    unfold forecast --csv ../shared/data/timeseries/statsmodels/sunspots/sunspots.csv --column SUNACTIVITY\n  \
    unfold forecast --csv FILE --column NAME --model lstm --horizon 24 --steps 2000\n  \
    unfold forecast --csv FILE --column NAME --load runs/forecast/esn.safetensors")]
pub struct ForecastArgs {
    /// The CSV file (a header line, then one row per time step).
    #[arg(long)]
    pub csv: PathBuf,
    /// The column to forecast.
    #[arg(long)]
    pub column: String,
    /// esn, lstm or gru.
    #[arg(long, default_value = "esn")]
    pub model: String,
    /// Values held out at the end and forecast in closed loop.
    #[arg(long, default_value_t = 24)]
    pub horizon: usize,
    /// A fitted ESN checkpoint (from `unfold forecast` or `unfold esn`) to use instead of fitting.
    #[arg(long)]
    pub load: Option<PathBuf>,
    /// RNN hidden units (lstm, gru).
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// RNN training steps (lstm, gru).
    #[arg(long, default_value_t = 1500)]
    pub steps: u64,
    /// RNN training window length (lstm, gru).
    #[arg(long, default_value_t = 50)]
    pub length: usize,
    /// RNN learning rate (Adam).
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    #[command(flatten)]
    pub reservoir: ReservoirArgs,
}

/// Reads one numeric column of a CSV file.
fn read_column(path: &Path, name: &str) -> Result<Vec<f64>> {
    let body = read(path)?;
    let p = path.display();
    let (header, lines) = csv_header(path, &body)?;
    let col = header.iter().position(|h| h == name).ok_or_else(|| {
        BadInput(format!(
            "{p}: no column '{name}' (columns: {})",
            header.join(", ")
        ))
    })?;
    let mut out = Vec::new();
    for (i, line) in lines {
        let f = csv_fields(line);
        let v = f.get(col).map(String::as_str).unwrap_or("");
        match v.parse::<f64>() {
            Ok(x) if x.is_finite() => out.push(x),
            _ => {
                return Err(BadInput(format!(
                    "{p}:{}: column '{name}': '{v}' is not a finite number",
                    i + 1
                ))
                .into())
            }
        }
    }
    Ok(out)
}

/// The fitted forecaster's closed-loop continuation of the (scaled) history.
/// Reads a saved ESN and checks that it forecasts one series.
fn load_forecaster(path: &Path) -> Result<Esn> {
    let not_esn = || {
        BadInput(format!(
            "{}: not a one-input one-output forecasting ESN",
            path.display()
        ))
    };
    let esn = match unfold::saved::load::<f32>(path).map_err(|e| BadInput(e.to_string()))? {
        unfold::saved::Saved::Esn { esn, .. } => *esn,
        unfold::saved::Saved::Model(_) => return Err(not_esn().into()),
    };
    if esn.inputs != 1 || esn.outputs != 1 || esn.kind != ReadoutKind::PerStep {
        return Err(not_esn().into());
    }
    Ok(esn)
}

/// The scaling of one forecast series (`(mean, std)`), as every saved model stores it.
fn series_scaler(column: &str, (mean, std): (f64, f64)) -> Scaler {
    Scaler {
        names: vec![column.to_string()],
        mean: vec![mean],
        std: vec![std],
        target: Some(0),
        classes: Vec::new(),
        downsample: 1,
    }
}

fn esn_forecast(
    args: &ForecastArgs,
    loaded: Option<Esn>,
    hist: &[f64],
    seed: u64,
    dir: &Path,
    scaler: (f64, f64),
) -> Result<(Vec<f64>, serde_json::Value)> {
    let (esn, info) = match loaded {
        Some(esn) => {
            let from = args.load.as_ref().map(|p| p.display().to_string());
            (esn, json!({ "loaded": from }))
        }
        None => {
            let cfg = args.reservoir.config(seed)?;
            if hist.len() < cfg.washout + 10 {
                return Err(BadInput(format!(
                    "{} values before the held-out {} are too few for a washout of {} (use --washout)",
                    hist.len(),
                    args.horizon,
                    cfg.washout
                ))
                .into());
            }
            let mut esn = Esn::new(cfg, 1, 1, ReadoutKind::PerStep)?;
            let n = hist.len() - 1;
            let rep = esn.fit(&[Example {
                input: &hist[..n],
                target: &hist[1..],
            }])?;
            let mut tf = esn.to_tensor_file();
            tf.metadata
                .insert("unfold.forecast.column".into(), args.column.clone());
            // The series' scaling, as every saved model stores it.
            let (key, json) =
                unfold::models::spec::scaler_entry(&series_scaler(&args.column, scaler));
            tf.metadata.insert(key, json);
            tf.write(dir.join("esn.safetensors"))?;
            (
                esn,
                json!({"ridge": rep.ridge, "ridge_scores": rep.scores, "train_one_step_nrmse": rep.train_nrmse[0]}),
            )
        }
    };
    let mut st = esn.state();
    esn.run(&mut st, hist, None)?;
    Ok((esn.forecast(&mut st, args.horizon)?, info))
}

fn rnn_forecast(
    args: &ForecastArgs,
    hist: &[f64],
    seed: u64,
    dir: &Path,
    quiet: bool,
    scaler: (f64, f64),
) -> Result<(Vec<f64>, serde_json::Value)> {
    let cell = CellKind::parse(&args.model).map_err(|e| BadInput(format!("--model: {e}")))?;
    let len = args.length.min(hist.len() / 4).max(2);
    let windows = tasks::forecast_windows::<f32>(hist, len, (len / 4).max(1));
    if windows.len() < 2 {
        return Err(BadInput(format!("{} values are too few to train an RNN", hist.len())).into());
    }
    let data = Dataset::new(windows)?;
    let config = ModelConfig {
        input: InputSpec::Reals {
            width: 1,
            project: None,
        },
        cell,
        hidden: args.hidden,
        layers: 1,
        bidirectional: false,
        output: OutputKind::Gaussian {
            dim: 1,
            learn_variance: false,
        },
        deep_output: 0,
        residual: false,
    };
    let model = SequenceLabeller::<f32>::new(config, seed)?;
    let cfg = TrainConfig {
        lr: LrSchedule::constant(args.lr),
        optimizer: OptimizerConfig::adam(),
        eval_every: 0,
        seed,
        ..TrainConfig::new(args.steps)
    };
    let mut tr = Trainer::new(model, cfg)?;
    let mut batches = Batches::new(&data, 32, 4, seed)?;
    let mut bar = crate::progress::Progress::new(args.steps, 0, quiet, "loss");
    tr.run(&mut batches, None, &mut |e| bar.event(e))?;
    bar.finish();
    let model = tr.model;
    // Saved so that `unfold::models::load_model` rebuilds it, with the series' scaling.
    SavedModel {
        spec: ModelSpec::Labeller {
            config,
            dropout: 0.0,
            conditioning: None,
        },
        model: AnyModel::Labeller(model.clone()),
        vocab: None,
        src_vocab: None,
        scaler: Some(series_scaler(&args.column, scaler)),
        metadata: [("unfold.forecast.cell".to_string(), args.model.clone())].into(),
    }
    .save(dir.join("model.safetensors"))?;
    // Warm up over the whole history, then feed each forecast back (closed loop).
    let h32: Vec<f32> = hist.iter().map(|&v| v as f32).collect();
    let out: Vec<f64> = model
        .forecast(&h32, args.horizon)?
        .into_iter()
        .map(f64::from)
        .collect();
    Ok((
        out,
        json!({"hidden": args.hidden, "steps": args.steps, "window": len}),
    ))
}

/// Runs `unfold forecast`.
pub fn forecast(args: ForecastArgs, global: &Global) -> Result<()> {
    let say = |s: &str| {
        if !global.quiet {
            println!("{s}");
        }
    };
    if !matches!(args.model.as_str(), "esn" | "lstm" | "gru") {
        return Err(BadInput(format!(
            "--model: unknown model '{}' (esn, lstm, gru)",
            args.model
        ))
        .into());
    }
    if args.load.is_some() && args.model != "esn" {
        return Err(BadInput("--load takes an ESN checkpoint (use --model esn)".into()).into());
    }
    let loaded = args.load.as_deref().map(load_forecaster).transpose()?;
    let series = read_column(&args.csv, &args.column)?;
    if args.horizon == 0 {
        return Err(BadInput("--horizon must be at least 1".into()).into());
    }
    if series.len() < args.horizon + 20 {
        return Err(BadInput(format!(
            "{}: too few values ({}): forecasting {} needs at least {} (20 to learn from)",
            args.csv.display(),
            series.len(),
            args.horizon,
            args.horizon + 20
        ))
        .into());
    }
    let cut = series.len() - args.horizon;
    let (hist_raw, truth) = (&series[..cut], &series[cut..]);
    let mean = hist_raw.iter().sum::<f64>() / cut as f64;
    let std = (hist_raw.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cut as f64).sqrt();
    if std.is_nan() || std <= 1e-12 * mean.abs().max(1.0) {
        return Err(BadInput(format!(
            "column '{}' is constant before the held-out part: nothing to learn",
            args.column
        ))
        .into());
    }
    let hist: Vec<f64> = hist_raw.iter().map(|v| (v - mean) / std).collect();
    let seed = global.seed.unwrap_or(1);
    let (dir, _lock) = out_dir(global, "forecast")?;
    let (fc, info) = match args.model.as_str() {
        "esn" => esn_forecast(&args, loaded, &hist, seed, &dir, (mean, std))?,
        _ => rnn_forecast(&args, &hist, seed, &dir, global.quiet, (mean, std))?,
    };
    let fc: Vec<f64> = fc.iter().map(|v| v * std + mean).collect();
    let n = truth.len() as f64;
    let rmse = (fc
        .iter()
        .zip(truth)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    let mae = fc
        .iter()
        .zip(truth)
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / n;
    let last = hist_raw[cut - 1];
    let base = (truth.iter().map(|b| (last - b).powi(2)).sum::<f64>() / n).sqrt();
    say(&format!(
        "{} '{}': {} values, forecasting the last {} in closed loop with {}",
        args.csv.display(),
        args.column,
        series.len(),
        args.horizon,
        args.model
    ));
    say(&format!(
        "RMSE {rmse:.4}  MAE {mae:.4}  NRMSE {:.4}   (persistence baseline RMSE {base:.4})",
        rmse / std
    ));
    let mut csv = String::from("step,truth,forecast\n");
    for (i, (t, f)) in truth.iter().zip(&fc).enumerate() {
        csv += &format!("{},{t},{f}\n", cut + i);
    }
    write_atomic(&dir.join("forecast.csv"), csv.as_bytes())?;
    let tail = cut.saturating_sub(4 * args.horizon);
    let pts = |from: usize, v: &[f64]| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(i, &y)| ((from + i) as f64, y))
            .collect()
    };
    plot::plot(
        &dir,
        "forecast",
        &format!("{}: closed-loop forecast ({})", args.column, args.model),
        &args.column,
        &[
            plot::Series {
                name: "history".into(),
                points: pts(tail, &series[tail..cut]),
            },
            plot::Series {
                name: "truth".into(),
                points: pts(cut, truth),
            },
            plot::Series {
                name: "forecast".into(),
                points: pts(cut, &fc),
            },
        ],
        false,
    )?;
    let summary = json!({
        "csv": args.csv.display().to_string(),
        "column": args.column,
        "model": args.model,
        "horizon": args.horizon,
        "rmse": rmse,
        "mae": mae,
        "nrmse": rmse / std,
        "persistence_rmse": base,
        "model_info": info,
    });
    write_summary(&dir, &summary)?;
    say(&format!(
        "wrote forecast.csv, forecast.png/svg, summary.json and the model in {}",
        dir.display()
    ));
    Ok(())
}
