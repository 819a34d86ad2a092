//! `unfold eval` (scores a trained model on its task's held-out data) and `unfold inspect`
//! (what a checkpoint holds: settings, training state, parameters).

use std::path::PathBuf;

use anyhow::{bail, Result};
use unfold::layers::LossStats;
use unfold::models::Model as _;
use unfold::Parameters as _;

use crate::data::Valid;
use crate::data::{prepare, score};
use crate::model::{load, Model};
use crate::train::report;
use crate::{BadInput, Global};

/// Arguments of `unfold eval`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    unfold eval runs/reber\n  \
    unfold eval runs/adding/checkpoint.safetensors --json")]
pub struct EvalArgs {
    /// Run directory or checkpoint file.
    run: PathBuf,
    /// Samples drawn for a generative task (default: the run's setting).
    #[arg(long)]
    samples: Option<usize>,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `unfold eval`.
pub fn eval(args: EvalArgs, global: &Global) -> Result<()> {
    let mut loaded = load(&args.run)?;
    if let Some(n) = args.samples {
        loaded.settings.samples = n;
    }
    let p = prepare(&loaded.settings)?;
    let all: Vec<usize> = (0..p.valid.len()).collect();
    let valid: LossStats = match (&loaded.model, &p.valid) {
        (Model::Labeller(m), Valid::Sequences(d)) => {
            m.evaluate(&d.batch(&all), &mut Default::default())?
        }
        (Model::Classifier(m), Valid::Sequences(d)) => {
            m.evaluate(&d.batch(&all), &mut Default::default())?
        }
        (Model::Seq2Seq(m), Valid::Sequences(d)) => {
            m.evaluate(&d.batch(&all), &mut Default::default())?
        }
        (Model::Tree(m), Valid::Trees(t)) => m.evaluate_set(t)?,
        (Model::Grid(m), Valid::Grids(g)) => m.evaluate_set(g)?,
        _ => bail!(BadInput(format!(
            "{}: the model does not fit the run's data",
            loaded.path.display()
        ))),
    };
    let sc = score(&p, &loaded.model, &loaded.settings)?;
    if args.json {
        let details: serde_json::Map<String, serde_json::Value> = sc
            .details
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::json!(v)))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "task": loaded.settings.task,
                "value": sc.metric,
                "passed": sc.passed,
                "details": details,
                "loss": valid.mean_nll(),
                "bits": valid.bits_per_symbol(),
                "accuracy": valid.accuracy(),
                "mse": valid.mse(),
            })
        );
    } else {
        println!(
            "{}: {} held-out sequences or trees",
            loaded.path.display(),
            all.len()
        );
        report(&loaded.settings, &p, &sc, &valid, global.quiet);
    }
    Ok(())
}

/// Arguments of `unfold inspect`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    unfold inspect runs/reber\n  \
    unfold inspect runs/reber/best.safetensors")]
pub struct InspectArgs {
    /// Run directory or checkpoint file.
    run: PathBuf,
}

/// Runs `unfold inspect`.
pub fn inspect(args: InspectArgs) -> Result<()> {
    let loaded = load(&args.run)?;
    let s = &loaded.settings;
    let meta = &loaded.file.metadata;
    println!("checkpoint  {}", loaded.path.display());
    let data = s
        .text
        .as_ref()
        .or(s.ts.as_ref())
        .or(s.csv.as_ref())
        .or(s.pairs.as_ref())
        .map_or(String::from("generated in code"), |f| format!("from {f}"));
    println!("task        {} (data {data})", s.task);
    println!(
        "model       {} hidden {} layers {}, {} parameters",
        s.model,
        s.hidden,
        s.layers,
        loaded.model.num_params()
    );
    println!(
        "training    step {} of {}, optimizer {} lr {} ({}), batch {}, seed {}",
        meta.get("train.step").map_or("?", String::as_str),
        s.steps,
        s.optimizer,
        s.lr,
        s.schedule,
        s.batch,
        s.seed
    );
    println!(
        "shape       {:?} reading {:?}, output {:?}",
        loaded.shape.kind, loaded.shape.input, loaded.shape.output
    );
    if let Some(sc) = &loaded.scaler {
        println!(
            "scaling     {} input(s) {}, standardised with the training data's mean and std",
            sc.names.len(),
            sc.names.join(", ")
        );
        if !sc.classes.is_empty() {
            println!("classes     {}", sc.classes.join(" "));
        }
    }
    if let Some(v) = &loaded.vocab {
        let symbols: Vec<String> = (0..v.len()).map(|i| v.symbol(i)).collect();
        println!("vocabulary  {} symbols: {}", v.len(), symbols.join(" "));
    }
    println!(
        "\n{:<28} {:>14} {:>10} {:>12} {:>12}",
        "parameter", "shape", "count", "rms", "max |w|"
    );
    for (name, shape, values) in loaded.model.params() {
        let n = values.len().max(1) as f64;
        let rms = (values.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n).sqrt();
        let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        let shape = shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        println!(
            "{name:<28} {shape:>14} {:>10} {rms:>12.5} {max:>12.5}",
            values.len()
        );
    }
    let optim: usize = loaded
        .file
        .tensors
        .keys()
        .filter(|k| k.starts_with("optim."))
        .count();
    println!(
        "\noptimizer state: {optim} tensors; metadata keys: {}",
        meta.len()
    );
    Ok(())
}
