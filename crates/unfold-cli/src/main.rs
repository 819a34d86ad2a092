//! The `unfold` command-line tool: a thin front end over the `unfold` library.
//!
//! Raw arguments become validated settings here; the library does the work and returns typed
//! errors, which are reported on one line. Exit status: 0 on success, 2 for bad input (flags,
//! files, settings, checkpoints of the wrong kind), 1 for anything else, 128 + the signal for a
//! training run stopped cleanly by SIGINT or SIGTERM (`interrupt.rs`).

// Doc comments here are also clap's --help text, where <end> or <task> read as they should.
#![allow(rustdoc::invalid_html_tags)]

mod bench;
mod data;
mod esn;
mod forecast;
mod grid_data;
mod grid_plot;
mod inspect;
mod interrupt;
mod lab;
mod lab_report;
mod model;
mod plot;
mod progress;
mod rundir;
mod sample;
mod settings;
mod svg;
mod train;
mod translate;
mod tree_data;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Recurrent and recursive neural networks: train, sample, forecast, fit reservoirs, evaluate,
/// inspect and benchmark.
///
/// Start with `unfold train`: it trains an LSTM language model of the embedded Reber grammar,
/// samples from it and scores it, with nothing to download.
#[derive(Parser)]
#[command(name = "unfold", version, about, long_about)]
struct Cli {
    /// Threads for matrix products, at most the number of cores (default: the UNFOLD_THREADS
    /// variable, else all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Seed of everything random (data, initialisation, batch order, sampling).
    #[arg(long, global = true)]
    seed: Option<u64>,
    /// Print nothing but errors (and the samples of `unfold sample`).
    #[arg(long, global = true)]
    quiet: bool,
    /// Run directory for `unfold train` (default: runs/<task>, numbered if it exists).
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Replace the run already in `--out` (its files are removed first); without it a
    /// directory that holds a run is refused.
    #[arg(long, global = true)]
    overwrite: bool,
    #[command(subcommand)]
    command: Command,
}

/// Options every command can see.
pub struct Global {
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--quiet`.
    pub quiet: bool,
    /// `--out`.
    pub out: Option<PathBuf>,
    /// `--overwrite`.
    pub overwrite: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on a built-in task (default: the embedded Reber grammar language model).
    Train(Box<train::TrainArgs>),
    /// Sample from a trained language model.
    Sample(sample::SampleArgs),
    /// Decode lines of standard input with a trained encoder-decoder.
    Translate(translate::TranslateArgs),
    /// Fit an echo state network (Mackey-Glass by default, or a .ts classification pair) and
    /// plot its eigenvalues and echo-state diagnostic.
    Esn(Box<esn::EsnArgs>),
    /// Forecast the end of a CSV column in closed loop with an ESN, LSTM or GRU.
    Forecast(Box<forecast::ForecastArgs>),
    /// Score a trained model on its task's held-out data.
    Eval(inspect::EvalArgs),
    /// The long-term dependency lab: train every remedy (tanh RNN, IRNN, clipping, leaky,
    /// clockwork, deep transition, LSTM, GRU, ESN, ESN-initialised RNN) on one task over a range
    /// of lengths and seeds, with gradient and spectrum probes, and write an HTML report.
    Lab(Box<lab::LabArgs>),
    /// Show what a run directory or checkpoint holds.
    Inspect(inspect::InspectArgs),
    /// List the built-in tasks with their metric and success threshold.
    #[command(after_help = "Example:\n  unfold tasks\n  unfold train --task copy --length 20")]
    Tasks,
    /// Benchmark the recurrent kernels on the standard configurations (T = 100, f32).
    #[command(after_help = "Examples:\n  \
        unfold bench\n  \
        unfold bench --json --config lstm-h256-b32 --mode train\n  \
        unfold bench --threads 1 --peak\n  \
        unfold bench --cells\n  \
        unfold bench --trees --json\n  \
        unfold bench --grids")]
    Bench {
        /// Print one JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Run only this configuration (e.g. lstm-h256-b32); repeatable.
        #[arg(long = "config")]
        configs: Vec<String>,
        /// Only these modes: train, infer, stream (default: all that apply).
        #[arg(long = "mode")]
        modes: Vec<String>,
        /// Minimum measuring time per measurement, in seconds.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Also measure the GEMM peak (2048^3 product) and print each training run's share of it.
        #[arg(long)]
        peak: bool,
        /// Run the configurations of the cells PyTorch has no module for (deep transitions,
        /// clockwork, delays), each beside its dense equivalent on the same time loop.
        #[arg(long)]
        cells: bool,
        /// Run the recursive-network configurations instead: trees per second of the tree
        /// layer, training and inference (`tools/torch_tree_bench.py` runs PyTorch's).
        #[arg(long, conflicts_with = "cells")]
        trees: bool,
        /// Run the 2-D recurrent configurations instead: images per second of a four-sweep
        /// layer, training and inference (`tools/torch_grid_bench.py` runs PyTorch's).
        #[arg(long, conflicts_with_all = ["cells", "trees"])]
        grids: bool,
    },
}

/// An error caused by the user's input (exit status 2).
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// 2 when any cause is bad input, 1 otherwise.
fn exit_code(e: &anyhow::Error) -> i32 {
    let bad = e.chain().any(|c| {
        c.is::<BadInput>()
            || matches!(
                c.downcast_ref::<unfold::Error>(),
                Some(
                    unfold::Error::InvalidConfig(_)
                        | unfold::Error::InvalidData(_)
                        | unfold::Error::Numerical(_)
                        | unfold::Error::Shape { .. }
                        | unfold::Error::CheckpointMismatch(_)
                        | unfold::Error::SafeTensors(_)
                        | unfold::Error::Io { .. }
                )
            )
    });
    if bad {
        2
    } else {
        1
    }
}

fn main() {
    // A closed pipe (`unfold inspect run | head`) ends the program quietly, as for other
    // command-line tools, instead of making every print fail.
    #[cfg(unix)]
    // SAFETY: restores the default action of one signal before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        // One line: the causes joined, no backtrace.
        eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
        std::process::exit(exit_code(&e));
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        if n == 0 {
            return Err(BadInput("--threads must be at least 1".into()).into());
        }
        // More threads than cores only adds hand-overs (and a huge number exhausts the system).
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        if n > cores {
            return Err(BadInput(format!(
                "--threads {n}: this machine has {cores} cores; give at most {cores}"
            ))
            .into());
        }
        unfold::set_num_threads(n);
    }
    let global = Global {
        seed: cli.seed,
        quiet: cli.quiet,
        out: cli.out,
        overwrite: cli.overwrite,
    };
    match cli.command {
        Command::Train(args) => train::train(*args, &global),
        Command::Sample(args) => sample::sample(args, &global),
        Command::Translate(args) => translate::translate(args),
        Command::Eval(args) => inspect::eval(args, &global),
        Command::Esn(args) => esn::esn(*args, &global),
        Command::Forecast(args) => forecast::forecast(*args, &global),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Lab(args) => lab::lab(*args, &global),
        Command::Tasks => {
            tasks();
            Ok(())
        }
        Command::Bench {
            json,
            configs,
            modes,
            seconds,
            peak,
            cells,
            trees,
            grids,
        } => if trees {
            bench::bench_trees(json, &configs, &modes, seconds)
        } else if grids {
            bench::bench_grids(json, &configs, &modes, seconds)
        } else {
            bench::bench(json, &configs, &modes, seconds, peak, cells)
        }
        .map_err(|e| {
            if e.is::<unfold::Error>() {
                BadInput(format!("{e:#}")).into()
            } else {
                e
            }
        }),
    }
}

fn tasks() {
    println!(
        "{:<13} {:<10} {:<9} metric / what it is",
        "task", "threshold", "--length"
    );
    for t in unfold::builtin::TASKS {
        println!(
            "{:<13} {:<10} {:<9} {}\n{:<34}{}",
            t.name,
            format!(
                "{}{}",
                if t.higher_is_better { ">=" } else { "<=" },
                t.threshold
            ),
            if t.length.1 == 0 {
                "-".to_string()
            } else {
                t.length.1.to_string()
            },
            t.metric,
            "",
            t.summary
        );
    }
    for t in unfold::data::tree_tasks::TREE_TASKS {
        println!(
            "{:<13} {:<10} {:<9} {}\n{:<34}{} (a tree model; --flat: an LSTM reads it as a sequence)",
            t.name,
            format!(">={}", t.threshold),
            t.depth,
            t.metric,
            "",
            t.summary
        );
    }
    for t in unfold::data::grid::GRID_TASKS {
        println!(
            "{:<13} {:<10} {:<9} accuracy over the open cells\n{:<34}{} (a 2-D network \
             sweeping from every corner; --sweeps 1: from the top-left only)",
            t.name,
            format!(">={}", t.threshold),
            t.size,
            "",
            t.summary
        );
    }
    println!("\nTrain one with `unfold train --task NAME` (defaults: `unfold train --help`).");
}
