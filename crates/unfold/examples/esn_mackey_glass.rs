//! Mackey-Glass (tau = 17) with an echo state network: one-step NRMSE and NRMSE after 84
//! free-running (closed-loop) steps, the benchmark of Jaeger (2001) and Jaeger & Haas (2004).
//!
//! The series is integrated in code (`unfold::data::tasks::mackey_glass`: RK4 with step 0.1,
//! constant history 1.2, one sample per time unit, the first 1000 samples discarded) and shifted
//! by -1. The ESN is a one-step predictor (input `x(t)`, target `x(t+1)`) trained by ridge
//! regression with the ridge chosen on a validation split; forecasting feeds each prediction
//! back as the next input. NRMSE84 is the root mean square over `trials` start points of the
//! error 84 steps after the start, divided by the series' standard deviation, each trial being
//! warmed up by teacher forcing on the 500 true values before its start.
//!
//! `cargo run --release --example esn_mackey_glass -- [units] [train_steps] [trials] [seed]`

use std::time::Instant;
use unfold::data::tasks::mackey_glass;
use unfold::reservoir::{Esn, EsnConfig, Example, ReadoutKind, ReservoirConfig, WeightDist};

fn main() -> unfold::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let units = arg(0, 400);
    let train = arg(1, 3000);
    let trials = arg(2, 50);
    let seed = arg(3, 1) as u64;
    let warm = 500;
    let washout = 100;
    let horizon = 84;
    let total = washout + train + 1 + trials * (warm + horizon);
    let series: Vec<f64> = mackey_glass(total + 10, 17.0, 1000)
        .iter()
        .map(|v| v - 1.0)
        .collect();
    let mean = series.iter().sum::<f64>() / series.len() as f64;
    let std = (series.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / series.len() as f64).sqrt();
    let env = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let cfg = EsnConfig {
        reservoir: ReservoirConfig {
            units,
            spectral_radius: env("RHO", 1.0),
            connectivity: (env("DEGREE", 10.0) / units as f64).min(1.0),
            weight_dist: WeightDist::Normal,
            input_scaling: env("INPUT", 1.0),
            input_dist: WeightDist::Uniform,
            bias_scaling: env("BIAS", 0.2),
            leak_rate: env("LEAK", 1.0),
            ..Default::default()
        },
        washout,
        ridge: vec![1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5],
        seed,
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut esn = Esn::new(cfg, 1, 1, ReadoutKind::PerStep)?;
    let build = t0.elapsed();
    let n_fit = washout + train;
    let t1 = Instant::now();
    let report = esn.fit(&[Example {
        input: &series[..n_fit],
        target: &series[1..n_fit + 1],
    }])?;
    let fit = t1.elapsed();
    // One-step NRMSE on the test region (teacher-forced inputs).
    let test_start = n_fit + 1;
    let pred = esn.predict(&[&series[..]])?.remove(0);
    let one_step: f64 = (test_start..series.len() - 1)
        .map(|t| (pred[t] - series[t + 1]).powi(2))
        .sum::<f64>()
        / (series.len() - 1 - test_start) as f64;
    let mut sq84 = 0.0;
    for k in 0..trials {
        let start = test_start + k * (warm + horizon) + warm;
        let mut st = esn.state();
        esn.run(&mut st, &series[start - warm..start], None)?;
        let fc = esn.forecast(&mut st, horizon)?;
        sq84 += (fc[horizon - 1] - series[start + horizon - 1]).powi(2);
    }
    let nrmse84 = (sq84 / trials as f64).sqrt() / std;
    println!(
        "units {units}  train {train}  ridge {:.0e}  one-step NRMSE {:.2e}  NRMSE84 {:.2e} (log10 {:.2})  build {:.2?}  fit {:.2?}",
        report.ridge,
        one_step.sqrt() / std,
        nrmse84,
        nrmse84.log10(),
        build,
        fit
    );
    Ok(())
}
