//! Timing of echo state networks for the side-by-side comparison with reservoirpy
//! (`tools/reservoir_bench.py` runs both on the same data and settings and prints the table).
//!
//! - `mg SERIES.csv UNITS WARMUP RIDGE`: one-step prediction of a single series (one value per
//!   line): build the reservoir, fit the readout (harvest the states after `WARMUP`, ridge
//!   solve), then run over the whole series.
//! - `jv TRAIN.csv TEST.csv UNITS RIDGE`: sequence classification from the last state; each
//!   CSV line is `label,len,channels,values...` (standardised by the script).
//!
//! Both print one JSON object with the phases' seconds. Settings follow reservoirpy's defaults
//! where they are the same thing: normal recurrent weights with 10 non-zeros per row scaled to
//! radius 1, input weights of +-1 (all connected), no bias, leak rate 1, readout with a bias and
//! without the input.

use std::time::Instant;
use unfold::reservoir::{
    Esn, EsnConfig, Example, Pooling, ReadoutKind, ReservoirConfig, WeightDist,
};

fn config(units: usize, ridge: f64, washout: usize) -> EsnConfig {
    EsnConfig {
        reservoir: ReservoirConfig {
            units,
            spectral_radius: 1.0,
            connectivity: (10.0 / units as f64).min(1.0),
            weight_dist: WeightDist::Normal,
            input_scaling: 1.0,
            input_connectivity: 1.0,
            input_dist: WeightDist::Bernoulli,
            bias_scaling: 0.0,
            leak_rate: 1.0,
            ..Default::default()
        },
        washout,
        readout_bias: true,
        readout_input: false,
        ridge: vec![ridge],
        seed: 1,
        ..Default::default()
    }
}

fn read_lines(path: &str) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .map(|v| v.trim().parse().expect("number"))
                .collect()
        })
        .collect()
}

fn main() -> unfold::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    match a.first().map(String::as_str) {
        Some("mg") => {
            let series: Vec<f64> = read_lines(&a[1]).into_iter().map(|r| r[0]).collect();
            let units: usize = a[2].parse().expect("units");
            let warmup: usize = a[3].parse().expect("warmup");
            let ridge: f64 = a[4].parse().expect("ridge");
            let t0 = Instant::now();
            let mut esn = Esn::new(config(units, ridge, warmup), 1, 1, ReadoutKind::PerStep)?;
            let t1 = Instant::now();
            let n = series.len() - 1;
            esn.fit(&[Example {
                input: &series[..n],
                target: &series[1..],
            }])?;
            let t2 = Instant::now();
            let pred = esn.predict(&[&series[..n]])?.remove(0);
            let t3 = Instant::now();
            let mse = pred[warmup..]
                .iter()
                .zip(&series[warmup + 1..])
                .map(|(p, y)| (p - y).powi(2))
                .sum::<f64>()
                / (n - warmup) as f64;
            println!(
                "{{\"build\": {:.6}, \"fit\": {:.6}, \"run\": {:.6}, \"train_mse\": {:.3e}}}",
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                (t3 - t2).as_secs_f64(),
                mse
            );
        }
        Some("jv") => {
            let parse = |p: &str| -> (Vec<usize>, Vec<Vec<f64>>, usize) {
                let rows = read_lines(p);
                let ch = rows[0][2] as usize;
                let labels = rows.iter().map(|r| r[0] as usize).collect();
                let xs = rows.iter().map(|r| r[3..].to_vec()).collect();
                (labels, xs, ch)
            };
            let (ytr, xtr, ch) = parse(&a[1]);
            let (yte, xte, _) = parse(&a[2]);
            let units: usize = a[3].parse().expect("units");
            let ridge: f64 = a[4].parse().expect("ridge");
            let k = ytr.iter().chain(&yte).max().copied().unwrap_or(0) + 1;
            let onehot: Vec<Vec<f64>> = ytr
                .iter()
                .map(|&c| (0..k).map(|j| f64::from(u8::from(j == c))).collect())
                .collect();
            let t0 = Instant::now();
            let mut esn = Esn::new(config(units, ridge, 0), ch, k, ReadoutKind::Pooled(Pooling::Last))?;
            let t1 = Instant::now();
            let data: Vec<Example> = xtr
                .iter()
                .zip(&onehot)
                .map(|(x, y)| Example { input: x, target: y })
                .collect();
            esn.fit(&data)?;
            let t2 = Instant::now();
            let tx: Vec<&[f64]> = xte.iter().map(|x| x.as_slice()).collect();
            let scores = esn.classify(&tx)?;
            let t3 = Instant::now();
            let correct = scores
                .iter()
                .zip(&yte)
                .filter(|(s, &y)| (0..k).max_by(|&p, &q| s[p].total_cmp(&s[q])) == Some(y))
                .count();
            println!(
                "{{\"build\": {:.6}, \"fit\": {:.6}, \"run\": {:.6}, \"accuracy\": {:.4}}}",
                (t1 - t0).as_secs_f64(),
                (t2 - t1).as_secs_f64(),
                (t3 - t2).as_secs_f64(),
                correct as f64 / yte.len() as f64
            );
        }
        _ => eprintln!("usage: reservoir_bench mg SERIES.csv UNITS WARMUP RIDGE | jv TRAIN.csv TEST.csv UNITS RIDGE"),
    }
    Ok(())
}
