//! `unfold bench`: the kernel benchmark ladder, and the tree configurations, as a table or JSON
//! lines.

use anyhow::{Context, Result};

/// Runs the selected configurations and prints one line per measurement.
pub fn bench(
    json: bool,
    configs: &[String],
    modes: &[String],
    seconds: f64,
    peak: bool,
    cells: bool,
) -> Result<()> {
    use unfold::bench::{cell_configs, find, gemm_peak_gflops, run, train_flops, Mode, CONFIGS};
    anyhow::ensure!(
        seconds.is_finite() && seconds >= 0.0,
        "--seconds must be a non-negative number"
    );
    let selected: Vec<&unfold::bench::BenchConfig> = if cells {
        cell_configs().iter().collect()
    } else if configs.is_empty() {
        CONFIGS.iter().collect()
    } else {
        configs
            .iter()
            .map(|n| find(n))
            .collect::<Result<_, _>>()
            .context("--config")?
    };
    let wanted: Vec<Mode> = modes
        .iter()
        .map(|m| match m.as_str() {
            "train" => Ok(Mode::Train),
            "infer" => Ok(Mode::Infer),
            "stream" => Ok(Mode::Stream),
            other => anyhow::bail!("--mode {other:?}: expected train, infer or stream"),
        })
        .collect::<Result<_>>()?;
    let peak_gflops = if peak {
        let g = gemm_peak_gflops(seconds);
        if json {
            println!(
                "{{\"config\": \"gemm-2048\", \"mode\": \"peak\", \"gflops\": {g:.1}, \"threads\": {}}}",
                unfold::num_threads()
            );
        } else {
            println!("GEMM peak (2048^3, f32): {g:.1} GFLOP/s");
        }
        Some(g)
    } else {
        None
    };
    if !json {
        println!(
            "{:<18} {:<7} {:>14} {:>12} {:>8}",
            "config", "mode", "tokens/s", "us/step", "threads"
        );
    }
    for c in selected {
        for &mode in c.modes() {
            if !wanted.is_empty() && !wanted.contains(&mode) {
                continue;
            }
            let r = run(c, mode, seconds).with_context(|| format!("benchmark {}", c.name))?;
            let share = match (peak_gflops, mode) {
                (Some(p), Mode::Train) => {
                    let tokens = (unfold::bench::STEPS * c.batch) as f64;
                    let gflops = train_flops(c) / (tokens / r.tokens_per_s) / 1e9;
                    Some((gflops, 100.0 * gflops / p))
                }
                _ => None,
            };
            if json {
                match share {
                    Some((g, pct)) => {
                        let j = r.to_json();
                        println!(
                            "{}, \"gflops\": {g:.1}, \"peak_percent\": {pct:.1}}}",
                            &j[..j.len() - 1]
                        );
                    }
                    None => println!("{}", r.to_json()),
                }
            } else if let Some((g, pct)) = share {
                println!(
                    "{:<18} {:<7} {:>14.0} {:>12.2} {:>8}   {g:.1} GFLOP/s = {pct:.0}% of peak",
                    r.config,
                    mode.name(),
                    r.tokens_per_s,
                    r.us_per_step,
                    r.threads
                );
            } else {
                println!(
                    "{:<18} {:<7} {:>14.0} {:>12.2} {:>8}",
                    r.config,
                    mode.name(),
                    r.tokens_per_s,
                    r.us_per_step,
                    r.threads
                );
            }
        }
    }
    Ok(())
}

/// Runs the tree configurations (all, or those named) in the selected modes.
pub fn bench_trees(json: bool, configs: &[String], modes: &[String], seconds: f64) -> Result<()> {
    use unfold::bench::trees::{find_tree, run_tree, TREE_CONFIGS};
    use unfold::bench::Mode;
    anyhow::ensure!(
        seconds.is_finite() && seconds >= 0.0,
        "--seconds must be a non-negative number"
    );
    let selected = select(configs, &TREE_CONFIGS, find_tree)?;
    let wanted = train_or_infer(modes, "tree")?;
    if !json {
        println!(
            "{:<26} {:<7} {:>12} {:>12} {:>12} {:>8}",
            "config", "mode", "trees/s", "nodes/s", "ms/batch", "threads"
        );
    }
    for c in selected {
        for mode in [Mode::Train, Mode::Infer] {
            if !wanted.is_empty() && !wanted.contains(&mode) {
                continue;
            }
            let r = run_tree(c, mode, seconds).with_context(|| format!("benchmark {}", c.name))?;
            if json {
                println!("{}", r.to_json());
            } else {
                println!(
                    "{:<26} {:<7} {:>12.0} {:>12.0} {:>12.3} {:>8}",
                    r.config,
                    mode.name(),
                    r.trees_per_s,
                    r.nodes_per_s,
                    r.ms_per_batch,
                    r.threads
                );
            }
        }
    }
    Ok(())
}

/// Runs the grid configurations (all, or those named) in the selected modes.
pub fn bench_grids(json: bool, configs: &[String], modes: &[String], seconds: f64) -> Result<()> {
    use unfold::bench::grids::{find_grid, run_grid, GRID_CONFIGS};
    use unfold::bench::Mode;
    anyhow::ensure!(
        seconds.is_finite() && seconds >= 0.0,
        "--seconds must be a non-negative number"
    );
    let selected = select(configs, &GRID_CONFIGS, find_grid)?;
    let wanted = train_or_infer(modes, "grid")?;
    if !json {
        println!(
            "{:<24} {:<7} {:>12} {:>12} {:>8}",
            "config", "mode", "images/s", "ms/batch", "threads"
        );
    }
    for c in selected {
        for mode in [Mode::Train, Mode::Infer] {
            if !wanted.is_empty() && !wanted.contains(&mode) {
                continue;
            }
            let r = run_grid(c, mode, seconds).with_context(|| format!("benchmark {}", c.name))?;
            if json {
                println!("{}", r.to_json());
            } else {
                println!(
                    "{:<24} {:<7} {:>12.0} {:>12.3} {:>8}",
                    r.config,
                    mode.name(),
                    r.images_per_s,
                    r.ms_per_batch,
                    r.threads
                );
            }
        }
    }
    Ok(())
}

/// The configurations named (all of `all` when none is), each found by `find`.
fn select<C>(
    configs: &[String],
    all: &'static [C],
    find: impl Fn(&str) -> unfold::Result<&'static C>,
) -> Result<Vec<&'static C>> {
    if configs.is_empty() {
        return Ok(all.iter().collect());
    }
    configs
        .iter()
        .map(|n| find(n))
        .collect::<Result<_, _>>()
        .context("--config")
}

/// The modes `--mode` names for a benchmark that runs training and inference only (none: both).
fn train_or_infer(modes: &[String], what: &str) -> Result<Vec<unfold::bench::Mode>> {
    use unfold::bench::Mode;
    modes
        .iter()
        .map(|m| match m.as_str() {
            "train" => Ok(Mode::Train),
            "infer" => Ok(Mode::Infer),
            other => anyhow::bail!("--mode {other:?}: a {what} benchmark runs train or infer"),
        })
        .collect()
}
