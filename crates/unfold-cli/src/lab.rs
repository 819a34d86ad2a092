//! `unfold lab`: trains every remedy for long-term dependencies on one task over a range of
//! sequence lengths and seeds, with the probes on, in parallel runs, and writes the report
//! (`report.html` with its plots inline, `results.json`, `results.csv`, the plots as SVG files,
//! and each run's `metrics.jsonl`).

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use unfold::checkpoint::write_atomic;
use unfold::lab::{
    lab_data, plan, run_all, Digits, LabModel, LabSettings, LabTask, RunResult, LAB_MODELS,
};
use unfold::train::OptimizerConfig;

use crate::esn::out_dir;
use crate::lab_report::{self, Report};
use crate::{BadInput, Global};

/// Where the shared 8x8 digits are looked for when `--digits` is not given.
const DIGITS_PATHS: [&str; 2] = [
    "../shared/data/classification/sklearn_digits/digits.csv.gz",
    "shared/data/classification/sklearn_digits/digits.csv.gz",
];

/// Options of `unfold lab`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    unfold lab --quick\n  \
    unfold lab --task adding --lengths 10,25,50,100 --seeds 2\n  \
    unfold lab --task adding --models rnn,rnn-clip --radius 1.5 --optimizer sgd --lr 0.05\n  \
    unfold lab --task digits --lengths 64,192 --models rnn,irnn,lstm,gru\n  \
    unfold lab --task copy --full --jobs 2")]
pub struct LabArgs {
    /// Task: adding, copy, reber, parity, order (temporal order), digits (pixel by pixel).
    #[arg(long, default_value = "adding")]
    task: String,
    /// Models, comma-separated, or `all`: rnn, irnn, rnn-clip, leaky, clockwork, dt, lstm,
    /// gru, esn, esn-rnn.
    #[arg(long, default_value = "all")]
    models: String,
    /// Sequence lengths, comma-separated (default: the task's range for the preset).
    #[arg(long)]
    lengths: Option<String>,
    /// Seeds per model and length (default: 1 quick, 2 standard, 5 full), counted from
    /// `--seed` (default 1).
    #[arg(long)]
    seeds: Option<usize>,
    /// Tiny models and budgets: seconds.
    #[arg(long)]
    quick: bool,
    /// The literature's sizes: hours.
    #[arg(long, conflicts_with = "quick")]
    full: bool,
    /// Hidden units of every trained model.
    #[arg(long)]
    hidden: Option<usize>,
    /// Training steps at most per run.
    #[arg(long)]
    steps: Option<u64>,
    /// Sequences per batch.
    #[arg(long)]
    batch: Option<usize>,
    /// Learning rate (constant).
    #[arg(long)]
    lr: Option<f64>,
    /// Optimizer: adam, sgd, rmsprop, adamw, adagrad.
    #[arg(long)]
    optimizer: Option<String>,
    /// Score and probe every this many steps.
    #[arg(long)]
    eval_every: Option<u64>,
    /// The gradient norm `rnn-clip` clips at.
    #[arg(long)]
    clip: Option<f64>,
    /// Spectral radius of the initial W_hh of `rnn` and `rnn-clip` (default: PyTorch's
    /// initialisation).
    #[arg(long)]
    radius: Option<f64>,
    /// The LSTM's initial forget-gate bias (default 1).
    #[arg(long)]
    forget_bias: Option<f64>,
    /// Training sequences per run.
    #[arg(long)]
    train_size: Option<usize>,
    /// Held-out sequences per run.
    #[arg(long)]
    valid_size: Option<usize>,
    /// Reservoir units of the ESN.
    #[arg(long)]
    esn_units: Option<usize>,
    /// Runs at once (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Keep training after the criterion is met (default: a run stops when solved).
    #[arg(long)]
    full_budget: bool,
    /// The 8x8 digits CSV (64 pixels and a label per row, gzip or plain) for `--task digits`
    /// (default: ../shared/data/classification/sklearn_digits/digits.csv.gz).
    #[arg(long)]
    digits: Option<PathBuf>,
}

fn bad(msg: String) -> anyhow::Error {
    BadInput(msg).into()
}

/// The task's lengths for a preset.
fn default_lengths(task: LabTask, quick: bool, full: bool) -> Vec<usize> {
    match (task, quick, full) {
        (LabTask::Reber, _, _) => vec![0],
        (LabTask::Digits, true, _) => vec![64],
        (LabTask::Digits, _, _) => vec![64, 192],
        (LabTask::Adding, true, _) | (LabTask::Order, true, _) => vec![12, 24],
        (LabTask::Copy, true, _) | (LabTask::Parity, true, _) => vec![4, 8],
        (LabTask::Adding, _, false) => vec![12, 25, 50, 100],
        (LabTask::Copy, _, false) => vec![5, 10, 20, 40],
        (LabTask::Parity, _, false) => vec![4, 8, 16],
        (LabTask::Order, _, false) => vec![20, 50, 100],
        (LabTask::Adding, _, true) => vec![25, 50, 100, 200, 400],
        (LabTask::Copy, _, true) => vec![10, 25, 50, 100, 200],
        (LabTask::Parity, _, true) => vec![8, 16, 32, 64],
        (LabTask::Order, _, true) => vec![50, 100, 200, 400],
    }
}

fn list<T: std::str::FromStr>(flag: &str, s: &str) -> Result<Vec<T>> {
    s.split(',')
        .map(|p| {
            p.trim()
                .parse::<T>()
                .map_err(|_| bad(format!("{flag}: '{p}' is not a whole number")))
        })
        .collect()
}

fn positive(flag: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(bad(format!("{flag} must be a finite number > 0 (got {v})")))
    }
}

/// The settings of the preset with the flags applied.
fn settings(a: &LabArgs) -> Result<LabSettings> {
    let mut s = if a.quick {
        LabSettings::quick()
    } else if a.full {
        LabSettings::full()
    } else {
        LabSettings::standard()
    };
    let at_least_1 = |flag: &str, v: usize| -> Result<usize> {
        if v == 0 {
            Err(bad(format!("{flag} must be at least 1")))
        } else {
            Ok(v)
        }
    };
    if let Some(v) = a.hidden {
        s.hidden = at_least_1("--hidden", v)?;
        if v > 4096 {
            bail!(bad(format!(
                "--hidden {v}: the lab takes at most 4096 units"
            )));
        }
    }
    if let Some(v) = a.steps {
        s.steps = at_least_1("--steps", v as usize)? as u64;
    }
    if let Some(v) = a.batch {
        s.batch = at_least_1("--batch", v)?;
    }
    if let Some(v) = a.lr {
        s.lr = positive("--lr", v)?;
    }
    if let Some(o) = &a.optimizer {
        s.optimizer = OptimizerConfig::parse(o).map_err(|e| bad(format!("--optimizer: {e}")))?;
    }
    if let Some(v) = a.eval_every {
        s.eval_every = at_least_1("--eval-every", v as usize)? as u64;
        s.probe.every = s.eval_every;
    }
    if let Some(v) = a.clip {
        s.clip = positive("--clip", v)?;
    }
    if let Some(v) = a.radius {
        s.radius = Some(positive("--radius", v)?);
    }
    if let Some(v) = a.forget_bias {
        if !v.is_finite() || v.abs() > 100.0 {
            bail!(bad(format!(
                "--forget-bias {v}: give a number in [-100, 100]"
            )));
        }
        s.forget_bias = v;
    }
    if let Some(v) = a.train_size {
        s.train_size = at_least_1("--train-size", v)?;
    }
    if let Some(v) = a.valid_size {
        s.valid_size = at_least_1("--valid-size", v)?;
    }
    if let Some(v) = a.esn_units {
        s.esn_units = at_least_1("--esn-units", v)?;
        if v > 4096 {
            bail!(bad(format!(
                "--esn-units {v}: the lab takes at most 4096 units"
            )));
        }
    }
    s.stop_when_solved = !a.full_budget;
    Ok(s)
}

/// Reads the digits CSV: 64 pixel values then the label on each line.
fn read_digits(path: &Path) -> Result<Digits> {
    let file =
        std::fs::File::open(path).map_err(|e| bad(format!("--digits {}: {e}", path.display())))?;
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut d = Digits::default();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let vals: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad(format!("{} line {}: not numbers", path.display(), i + 1)))?;
        if vals.len() != 65 || vals.iter().any(|v| !v.is_finite()) {
            bail!(bad(format!(
                "{} line {}: expected 64 pixels and a label, got {} values",
                path.display(),
                i + 1,
                vals.len()
            )));
        }
        let label = vals[64];
        if label.fract() != 0.0 || !(0.0..=9.0).contains(&label) {
            bail!(bad(format!(
                "{} line {}: label {label} is not a digit",
                path.display(),
                i + 1
            )));
        }
        d.pixels.push(std::array::from_fn(|p| vals[p]));
        d.labels.push(label as usize);
    }
    Ok(d)
}

/// Runs the lab.
pub fn lab(a: LabArgs, global: &Global) -> Result<()> {
    let task = LabTask::parse(&a.task).map_err(|e| bad(format!("--task: {e}")))?;
    let models: Vec<LabModel> = if a.models == "all" {
        LAB_MODELS.to_vec()
    } else {
        a.models
            .split(',')
            .map(|m| LabModel::parse(m.trim()).map_err(|e| bad(format!("--models: {e}"))))
            .collect::<Result<_>>()?
    };
    let lengths = match &a.lengths {
        Some(l) => list::<usize>("--lengths", l)?,
        None => default_lengths(task, a.quick, a.full),
    };
    if lengths.iter().any(|&l| l > 100_000) {
        bail!(bad("--lengths: at most 100000 steps".into()));
    }
    let n_seeds = a.seeds.unwrap_or(if a.quick {
        1
    } else if a.full {
        5
    } else {
        2
    });
    if n_seeds == 0 || n_seeds > 1000 {
        bail!(bad(format!("--seeds {n_seeds}: give 1 to 1000")));
    }
    let base = global.seed.unwrap_or(1);
    let seeds: Vec<u64> = (0..n_seeds as u64).map(|i| base.wrapping_add(i)).collect();
    let mut s = settings(&a)?;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let jobs = a.jobs.unwrap_or(cores);
    if jobs == 0 || jobs > cores {
        bail!(bad(format!(
            "--jobs {jobs}: this machine has {cores} cores; give 1 to {cores}"
        )));
    }
    let digits = if task == LabTask::Digits {
        let path = match &a.digits {
            Some(p) => p.clone(),
            None => DIGITS_PATHS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    bad(format!(
                        "the digits task needs --digits PATH (not found at {})",
                        DIGITS_PATHS.join(" or ")
                    ))
                })?,
        };
        Some(read_digits(&path)?)
    } else {
        None
    };
    // Check every length once before any run starts.
    for &l in &lengths {
        lab_data(task, l, (1, 1), 0, digits.as_ref())
            .map_err(|e| bad(format!("--lengths {l}: {e}")))?;
    }
    let runs = plan(&[task], &models, &lengths, &seeds);
    if runs.is_empty() {
        bail!(bad(format!(
            "nothing to run: the models given cannot run the {} task",
            task.name()
        )));
    }
    let (dir, lock) = out_dir(global, &format!("lab-{}", task.name()))?;
    let say = |m: &str| {
        if !global.quiet {
            println!("{m}");
        }
    };
    say(&format!(
        "lab: {} task, {} models x {} lengths x {} seeds = {} runs on {jobs} workers; \
         hidden {}, at most {} steps of batch {}, {} lr {}",
        task.name(),
        models.len(),
        if task.length_meaning().1 {
            lengths.len()
        } else {
            1
        },
        seeds.len(),
        runs.len(),
        s.hidden,
        s.steps,
        s.batch,
        s.optimizer.name(),
        s.lr
    ));
    let bar = (!global.quiet && std::io::stdout().is_terminal()).then(|| {
        let b = ProgressBar::new(runs.len() as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} runs  {msg}  [{elapsed_precise} < {eta_precise}]",
            )
            .expect("valid template"),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    // Ctrl-C or SIGTERM: the runs under way stop after their step, no new one starts, and the
    // report is written with what finished.
    let signals = crate::interrupt::listen();
    s.stop = Some(signals.flag());
    let t0 = Instant::now();
    let data_for = |r: &unfold::lab::RunSpec| {
        lab_data(
            r.task,
            r.length,
            (s.train_size, s.valid_size),
            r.seed,
            digits.as_ref(),
        )
    };
    let mut done = 0usize;
    let results = run_all(&runs, &s, &data_for, jobs, Some(&dir), &mut |i, r| {
        done += 1;
        let line = format!("[{done}/{}] {}", runs.len(), describe(&runs[i].name(), r));
        match &bar {
            Some(b) => {
                b.inc(1);
                b.set_message(line);
            }
            None if !global.quiet => println!("{line}"),
            None => {}
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let wall = t0.elapsed().as_secs_f64();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = Report {
        task,
        models: &models,
        seeds: &seeds,
        settings: &s,
        runs: &runs,
        results: &results,
        command: &command,
        wall_s: wall,
        jobs,
    };
    let plots = lab_report::plots(&report);
    let plot_dir = dir.join("plots");
    std::fs::create_dir_all(&plot_dir)
        .with_context(|| format!("creating {}", plot_dir.display()))?;
    for (name, svg) in &plots {
        write_atomic(&plot_dir.join(format!("{name}.svg")), svg.as_bytes())?;
    }
    write_atomic(
        &dir.join("report.html"),
        lab_report::html(&report, &plots).as_bytes(),
    )?;
    write_atomic(
        &dir.join("results.json"),
        serde_json::to_string_pretty(&lab_report::json(&report))?.as_bytes(),
    )?;
    write_atomic(
        &dir.join("results.csv"),
        lab_report::csv(&report).as_bytes(),
    )?;
    say(&lab_report::text_table(&report));
    let failed = results.iter().filter(|r| r.is_err()).count();
    say(&format!(
        "{} runs in {wall:.1} s{}; wrote report.html, results.json, results.csv and plots/ in {}",
        runs.len(),
        if failed > 0 {
            format!(" ({failed} failed: see results.json)")
        } else {
            String::new()
        },
        dir.display()
    ));
    if signals.signal().is_some() {
        let status = signals.exit_status();
        let done = results
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|x| !x.interrupted))
            .count();
        drop(signals);
        drop(lock);
        eprintln!(
            "interrupted: {done} of {} runs finished; the report holds every run, the \
             interrupted ones as far as they went",
            runs.len()
        );
        std::process::exit(status);
    }
    Ok(())
}

/// One line on a finished run.
fn describe(name: &str, r: &std::result::Result<RunResult, String>) -> String {
    match r {
        Ok(r) if r.diverged => format!("{name}: diverged at step {}", r.steps),
        Ok(r) if r.interrupted => format!(
            "{name}: interrupted at step {} (metric {:.3})",
            r.steps, r.metric
        ),
        Ok(r) => match r.steps_to_solve {
            Some(s) => format!(
                "{name}: solved at step {s} (metric {:.3}, {:.1} s)",
                r.metric, r.wall_s
            ),
            None => format!(
                "{name}: not solved in {} steps (metric {:.3}, {:.1} s)",
                r.steps, r.metric, r.wall_s
            ),
        },
        Err(e) => format!("{name}: failed: {e}"),
    }
}
