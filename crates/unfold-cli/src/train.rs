//! `unfold train`: trains a model on a built-in task (the embedded Reber grammar language
//! model by default), with progress, validation and checkpoints, then scores it on the task's
//! metric, prints examples, and writes plots and a summary into the run directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use unfold::checkpoint::write_atomic;
use unfold::layers::LossStats;
use unfold::models::SequenceLabeller;
use unfold::train::trainer::{CHECKPOINT, METRICS};
use unfold::train::{
    Batches, GridBatches, Stream, Summary, TrainConfig, TrainData, Trainer, TreeBatches,
};
use unfold::Parameters as _;

use crate::data::{prepare, score, Prepared, Score, TrainData as Source, Valid};
use crate::model::{Model, META_LABELS, META_SETTINGS};
use crate::plot::{plot, read_metric, smooth, Series};
use crate::progress::Progress;
use crate::rundir::{claim, Claim};
use crate::settings::{check_out, fresh_dir, RawSettings, Settings};
use crate::{BadInput, Global};
use unfold::models::SavedModel;

/// Arguments of `unfold train`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    unfold train                                  # LSTM language model of the embedded Reber grammar\n  \
    unfold train --task adding                    # the adding problem, T = 50\n  \
    unfold train --task parity --model gru --hidden 64 --out runs/parity\n  \
    unfold train --config run.toml --lr 0.002     # flags override the file\n  \
    unfold train --resume runs/reber --steps 8000 # continue a run exactly\n  \
    unfold train lm --text input.txt              # a character language model of a text\n  \
    unfold train seq2seq --pairs pairs.tsv        # an encoder-decoder on source/target pairs\n  \
    unfold train --ts TRAIN.ts --test TEST.ts     # sequence classification\n  \
    unfold train --csv data.csv --column A,B      # one-step forecasting")]
pub struct TrainArgs {
    /// What to train, as a check on the data flags: `lm` (needs --text), `seq2seq` (needs
    /// --pairs), `classifier` (needs --ts), `forecast` (needs --csv); optional.
    #[arg(value_parser = ["lm", "seq2seq", "classifier", "forecast"])]
    kind: Option<String>,
    #[command(flatten)]
    raw: RawSettings,
    /// Settings file (TOML, the same keys as the flags with _ for -); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run in this directory exactly where its checkpoint stopped (only --steps
    /// may change).
    #[arg(long, conflicts_with = "config")]
    resume: Option<PathBuf>,
}

fn resolve(args: &TrainArgs, global: &Global) -> Result<(Settings, PathBuf, bool)> {
    if let Some(kind) = &args.kind {
        let (flag, given) = match kind.as_str() {
            "lm" => ("--text FILE", args.raw.text.is_some()),
            "seq2seq" => ("--pairs FILE.tsv", args.raw.pairs.is_some()),
            "classifier" => ("--ts TRAIN.ts --test TEST.ts", args.raw.ts.is_some()),
            _ => ("--csv FILE --column NAME", args.raw.csv.is_some()),
        };
        if !given && args.resume.is_none() {
            bail!(BadInput(format!("unfold train {kind} needs {flag}")));
        }
    }
    if let Some(dir) = &args.resume {
        let path = dir.join("config.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| BadInput(format!("--resume {}: {e}", path.display())))?;
        let mut s = Settings::from_toml(&text, &path.display().to_string())?;
        let changed = RawSettings {
            steps: None,
            ..args.raw.clone()
        };
        if format!("{changed:?}") != format!("{:?}", RawSettings::default())
            || global.seed.is_some()
        {
            bail!(BadInput(
                "a resumed run keeps its settings; only --steps may be given with --resume".into()
            ));
        }
        if let Some(st) = args.raw.steps {
            s.steps = st;
        }
        if !dir.join(CHECKPOINT).exists() {
            bail!(BadInput(format!(
                "--resume {}: no {CHECKPOINT} there",
                dir.display()
            )));
        }
        return Ok((s, dir.clone(), true));
    }
    let file = match &args.config {
        Some(p) => RawSettings::from_file(p)?,
        None => RawSettings::default(),
    };
    let flags = RawSettings {
        seed: global.seed,
        ..args.raw.clone()
    };
    let s = flags.or(file).resolve()?;
    let dir = match &global.out {
        Some(d) => d.clone(),
        None => fresh_dir(&Path::new("runs").join(&s.task)),
    };
    check_out(&dir)?;
    Ok((s, dir, false))
}

/// Trains for the settings' steps (or resumes) from `data`, returning the model and how the
/// run went.
fn fit<M: unfold::models::Model<f32>>(
    model: M,
    cfg: TrainConfig,
    data: &mut dyn TrainData<f32, M>,
    valid: &M::EvalSet,
    resume: Option<&Path>,
    progress: &mut Progress,
) -> Result<(M, Summary)> {
    let mut tr = match resume {
        Some(ck) => Trainer::resume(model, cfg, ck, data)
            .map_err(|e| BadInput(format!("{}: {e}", ck.display())))?,
        None => Trainer::new(model, cfg)?,
    };
    let summary = tr.run(data, Some(valid), &mut |e| progress.event(e))?;
    Ok((tr.model, summary))
}

/// The validation sequences of a chain model's run.
fn seq_valid(p: &Prepared) -> Result<&unfold::data::Dataset<f32>> {
    match &p.valid {
        Valid::Sequences(d) => Ok(d),
        Valid::Trees(_) | Valid::Grids(_) => bail!("a chain model validates on sequences"),
    }
}

fn fit_labeller(
    m: SequenceLabeller<f32>,
    cfg: TrainConfig,
    p: &Prepared,
    s: &Settings,
    resume: Option<&Path>,
    progress: &mut Progress,
) -> Result<(SequenceLabeller<f32>, Summary)> {
    match &p.train {
        Source::Sequences(d) => fit(
            m,
            cfg,
            &mut Batches::new(d, s.batch, 8, s.seed)?,
            seq_valid(p)?,
            resume,
            progress,
        ),
        Source::Stream { input, target } => {
            let mut st = Stream::new(input, target, s.batch, s.seq_len, s.seq_len)
                .map_err(|e| BadInput(e.to_string()))?;
            fit(m, cfg, &mut st, seq_valid(p)?, resume, progress)
        }
        Source::Trees(_) | Source::Grids(_) => bail!("a labeller trains on sequences"),
    }
}

/// Runs `unfold train`.
pub fn train(args: TrainArgs, global: &Global) -> Result<()> {
    let (mut s, dir, resuming) = resolve(&args, global)?;
    let setup = prepare(&s)?;
    // A tree model's child reading as the data decided it, so that config.toml shows it.
    if let Some(c) = setup.children {
        s.children = Settings::children_setting(c);
    }
    let model = crate::model::build(&s, &setup.shape)?;
    // The directory is this run's from here to the end (released when `_lock` drops).
    let how = if resuming {
        Claim::Resume
    } else {
        Claim::Fresh {
            overwrite: global.overwrite,
        }
    };
    let lock = claim(&dir, how)?;
    // Ctrl-C or SIGTERM from here on: finish the step, write a checkpoint, say how to resume.
    let signals = crate::interrupt::listen();
    let toml = s.to_toml();
    write_atomic(&dir.join("config.toml"), toml.as_bytes())?;
    let say = |line: &str| {
        if !global.quiet {
            println!("{line}");
        }
    };
    if !resuming {
        say(&setup.summary);
    }
    say(&format!(
        "{} {}: {} ({} x {}, {} layer{}), {} parameters -> {}",
        if resuming { "resuming" } else { "training" },
        s.task,
        s.model,
        s.hidden,
        s.layers,
        s.layers,
        if s.layers == 1 { "" } else { "s" },
        model.num_params(),
        dir.display()
    ));
    // The run's settings for the command line, and what the library needs to rebuild the
    // model alone: its spec, vocabularies and input scaling.
    let mut metadata = vec![
        (META_SETTINGS.to_string(), toml.clone()),
        ("unfold.task".to_string(), s.task.clone()),
    ];
    if let Some(l) = &setup.labels {
        metadata.push((META_LABELS.to_string(), l.to_metadata()));
    }
    metadata.extend(SavedModel::<f32>::metadata_entries(
        &crate::model::spec_of(&s, &setup.shape)?,
        setup.vocab.as_ref(),
        setup.src_vocab.as_ref(),
        setup.scaler.as_ref(),
    ));
    let cfg = TrainConfig {
        seed: s.seed,
        optimizer: s.optimizer(),
        lr: s.lr_schedule(),
        clip: s.clip(),
        feed: s.feed(),
        eval_every: s.eval_every,
        eval_batch: 256,
        patience: (s.patience > 0).then_some(s.patience),
        monitor: "loss".into(),
        checkpoint_every: s.eval_every,
        out_dir: Some(dir.clone()),
        metadata,
        probe: (s.probe_every > 0).then(|| unfold::probes::ProbeConfig::every(s.probe_every)),
        stop: Some(signals.flag()),
        ..TrainConfig::new(s.steps)
    };
    let ck = dir.join(CHECKPOINT);
    let resume = resuming.then_some(ck.as_path());
    let start_step = if resuming {
        let f = unfold::checkpoint::TensorFile::read(&ck)?;
        f.metadata
            .get("train.step")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    } else {
        0
    };
    let mut progress = Progress::new(s.steps, start_step, global.quiet, setup.shape.monitor());
    let t0 = Instant::now();
    let (model, summary) = match model {
        Model::Labeller(m) => {
            let (m, sm) = fit_labeller(m, cfg, &setup, &s, resume, &mut progress)?;
            (Model::Labeller(m), sm)
        }
        Model::Classifier(m) => {
            let Source::Sequences(d) = &setup.train else {
                bail!("a classifier trains on sequences");
            };
            let mut data = Batches::new(d, s.batch, 8, s.seed)?;
            let valid = seq_valid(&setup)?;
            let (m, sm) = fit(m, cfg, &mut data, valid, resume, &mut progress)?;
            (Model::Classifier(m), sm)
        }
        Model::Seq2Seq(m) => {
            let Source::Sequences(d) = &setup.train else {
                bail!("an encoder-decoder trains on pairs");
            };
            let mut data = Batches::new(d, s.batch, 8, s.seed)?;
            let valid = seq_valid(&setup)?;
            let (m, sm) = fit(*m, cfg, &mut data, valid, resume, &mut progress)?;
            (Model::Seq2Seq(Box::new(m)), sm)
        }
        Model::Tree(m) => {
            let (Source::Trees(t), Valid::Trees(v)) = (&setup.train, &setup.valid) else {
                bail!("a tree model trains on trees");
            };
            let mut data = TreeBatches::new(t, s.batch, s.seed)?;
            let (m, sm) = fit(m, cfg, &mut data, v, resume, &mut progress)?;
            (Model::Tree(m), sm)
        }
        Model::Grid(m) => {
            let (Source::Grids(t), Valid::Grids(v)) = (&setup.train, &setup.valid) else {
                bail!("a 2-D network trains on images");
            };
            let mut data = GridBatches::new(t, s.batch, s.seed)?;
            let (m, sm) = fit(m, cfg, &mut data, v, resume, &mut progress)?;
            (Model::Grid(m), sm)
        }
    };
    progress.finish();
    if summary.interrupted {
        let status = signals.exit_status();
        drop(signals);
        drop(lock);
        eprintln!(
            "interrupted at step {} of {}: checkpoint written; continue with `unfold train \
             --resume {}`",
            summary.steps,
            s.steps,
            dir.display()
        );
        std::process::exit(status);
    }
    let secs = t0.elapsed().as_secs_f64();
    say(&format!(
        "trained {} steps in {secs:.1} s{}",
        summary.steps - start_step,
        if summary.stopped_early {
            " (stopped early)"
        } else {
            ""
        }
    ));
    let score = score(&setup, &model, &s)?;
    let valid = summary.last_eval.unwrap_or_default();
    report(&s, &setup, &score, &valid, global.quiet);
    let mut plots = write_plots(&dir, &s, setup.shape.monitor())?;
    if let (Model::Grid(m), crate::data::HeldOut::Grids(test)) = (&model, &setup.test) {
        plots.extend(crate::grid_plot::sweep_maps(&dir, m, test, 4)?);
    }
    let outcome = Outcome {
        score: &score,
        valid: &valid,
        summary: &summary,
        secs,
        params: model.num_params(),
        plots: &plots,
    };
    write_summary(&dir, &s, &setup, &outcome)?;
    say(&format!(
        "run directory {}: {CHECKPOINT}, config.toml, {METRICS}, loss.png/svg, valid.png/svg, summary.json, summary.md",
        dir.display()
    ));
    Ok(())
}

/// Prints the verdict and examples.
pub fn report(s: &Settings, p: &Prepared, score: &Score, valid: &LossStats, quiet: bool) {
    if quiet {
        return;
    }
    if !score.examples.is_empty() {
        println!("samples:");
        for e in &score.examples {
            println!("  {e}");
        }
    }
    println!(
        "validation: loss {:.4} nats, {:.4} bits{}{}",
        valid.mean_nll(),
        valid.bits_per_symbol(),
        valid
            .accuracy()
            .map_or(String::new(), |a| format!(", accuracy {a:.4}")),
        valid
            .mse()
            .map_or(String::new(), |m| format!(", mse {m:.6}"))
    );
    for (k, v) in &score.details {
        println!("  {k}: {v:.4}");
    }
    let target = match p.threshold {
        Some(t) => format!(
            " (target {} {t}{}): {}",
            if p.higher_is_better { ">=" } else { "<=" },
            if s.task == "reber" {
                format!(" over {} samples", s.samples)
            } else {
                String::new()
            },
            if score.passed == Some(true) {
                "PASSED"
            } else {
                "not reached"
            }
        ),
        None => String::new(),
    };
    println!("{}: {} = {:.4}{target}", s.task, p.metric, score.metric);
}

fn write_plots(dir: &Path, s: &Settings, key: &str) -> Result<Vec<PathBuf>> {
    let log = dir.join(METRICS);
    let train = read_metric(&log, "train", "loss")?;
    let valid = read_metric(&log, "valid", "loss")?;
    let w = (s.eval_every as usize / 4).max(1);
    let mut files = plot(
        dir,
        "loss",
        &format!("{}: loss (nats per scored step)", s.task),
        "loss",
        &[
            Series {
                name: format!("train (mean of {w} steps)"),
                points: smooth(&train, w),
            },
            Series {
                name: "validation".into(),
                points: valid,
            },
        ],
        true,
    )?;
    let (key, label) = (key, key);
    let points = read_metric(&log, "valid", key)?;
    files.extend(plot(
        dir,
        "valid",
        &format!("{}: validation {label}", s.task),
        label,
        &[Series {
            name: format!("validation {label}"),
            points,
        }],
        key == "mse",
    )?);
    Ok(files)
}

/// What a finished run reports in its summary files.
struct Outcome<'a> {
    score: &'a Score,
    valid: &'a LossStats,
    summary: &'a Summary,
    /// Training time in seconds.
    secs: f64,
    params: usize,
    plots: &'a [PathBuf],
}

/// Writes summary.json and summary.md into the run directory.
fn write_summary(dir: &Path, s: &Settings, setup: &Prepared, outcome: &Outcome) -> Result<()> {
    let &Outcome {
        score,
        valid,
        summary,
        secs,
        params,
        plots,
    } = outcome;
    let details: serde_json::Map<String, serde_json::Value> = score
        .details
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
        .collect();
    let json = serde_json::json!({
        "task": s.task,
        "metric": setup.metric,
        "value": score.metric,
        "threshold": setup.threshold,
        "higher_is_better": setup.higher_is_better,
        "passed": score.passed,
        "details": details,
        "steps": summary.steps,
        "stopped_early": summary.stopped_early,
        "skipped_batches": summary.skipped,
        "train_seconds": secs,
        "parameters": params,
        "validation": {
            "loss": valid.mean_nll(),
            "bits": valid.bits_per_symbol(),
            "perplexity": valid.perplexity(),
            "accuracy": valid.accuracy(),
            "mse": valid.mse(),
        },
        "examples": score.examples,
        "settings": serde_json::to_value(s)?,
    });
    write_atomic(
        &dir.join("summary.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    let mut md = format!(
        "# {} run\n\n{}\n\n| | |\n|---|---|\n| metric | {} |\n| value | {:.4} |\n| target | {} |\n| result | {} |\n| model | {} x {} ({} layers), {} parameters |\n| steps | {}{} |\n| training time | {:.1} s |\n| validation loss | {:.4} nats ({:.4} bits) |\n",
        s.task,
        setup.summary,
        setup.metric,
        score.metric,
        setup.threshold.map_or("-".to_string(), |t| format!("{} {t}", if setup.higher_is_better { ">=" } else { "<=" })),
        match score.passed {
            Some(true) => "passed",
            Some(false) => "not reached",
            None => "-",
        },
        s.model,
        s.hidden,
        s.layers,
        params,
        summary.steps,
        if summary.stopped_early { " (early stop)" } else { "" },
        secs,
        valid.mean_nll(),
        valid.bits_per_symbol()
    );
    for (k, v) in &score.details {
        md += &format!("| {k} | {v:.4} |\n");
    }
    if !score.examples.is_empty() {
        md += "\n## Samples\n\n```text\n";
        for e in &score.examples {
            md += &format!("{e}\n");
        }
        md += "```\n";
    }
    md += "\n## Curves\n\n";
    for p in plots
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
    {
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        md += &format!("![{name}]({name})\n");
    }
    md += &format!("\n## Settings\n\n```toml\n{}```\n", s.to_toml());
    write_atomic(&dir.join("summary.md"), md.as_bytes())?;
    Ok(())
}
