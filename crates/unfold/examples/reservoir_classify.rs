//! Sequence classification with a reservoir: JapaneseVowels (or any sktime `.ts` pair) with an
//! echo state network or a liquid state machine and a ridge readout over pooled states.
//!
//! Inputs are standardised per channel with the training set's moments; targets are one-hot;
//! the predicted class is the largest readout output. The ridge is chosen on a seeded 20 %
//! validation split of the training set, then the readout is refitted on all of it.
//!
//! `cargo run --release --example reservoir_classify -- [esn|lsm] [TRAIN.ts] [TEST.ts] [units] [seed]`

use std::path::Path;
use std::time::Instant;
use unfold::data::ts::{read_ts, TsFile};
use unfold::reservoir::{
    Esn, EsnConfig, Example, Lsm, LsmConfig, Pooling, ReadoutKind, ReservoirConfig,
};

fn main() -> unfold::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = args
        .first()
        .map(String::as_str)
        .unwrap_or("esn")
        .to_string();
    let dir = "../shared/data/classification/JapaneseVowels";
    let pick = |i: usize, d: String| args.get(i).filter(|s| !s.is_empty()).cloned().unwrap_or(d);
    let train_path = pick(1, format!("{dir}/JapaneseVowels_TRAIN.ts"));
    let test_path = pick(2, format!("{dir}/JapaneseVowels_TEST.ts"));
    let units: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(500);
    let seed: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);
    let train = read_ts(Path::new(&train_path))?;
    let test = read_ts(Path::new(&test_path))?;
    let ch = train.channels;
    let classes = train.classes.clone();
    let k = classes.len();
    // Per-channel standardisation with the training moments.
    let (mean, std) = train.channel_moments();
    let prep = |f: &TsFile| -> (Vec<Vec<f64>>, Vec<usize>) {
        let xs = f.standardised(&mean, &std);
        let ys = f
            .labels
            .iter()
            .map(|l| classes.iter().position(|c| c == l).unwrap_or(0))
            .collect();
        (xs, ys)
    };
    let (train_x, train_y) = prep(&train);
    let (test_x, test_y) = prep(&test);
    let onehot: Vec<Vec<f64>> = train_y
        .iter()
        .map(|&c| (0..k).map(|j| f64::from(u8::from(j == c))).collect())
        .collect();
    let ridges = vec![1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0];
    let t0 = Instant::now();
    let scores: Vec<Vec<f64>> = if kind == "lsm" {
        let cfg = LsmConfig {
            units,
            seed,
            ..Default::default()
        };
        let mut lsm = Lsm::new(cfg, ch, k, Some(Pooling::LastAndMean))?;
        let xs: Vec<&[f64]> = train_x.iter().map(|x| x.as_slice()).collect();
        let ys: Vec<&[f64]> = onehot.iter().map(|y| y.as_slice()).collect();
        let (ridge, stats) = lsm.fit(&xs, &ys, &ridges)?;
        println!(
            "LSM: {units} LIF units, ridge {ridge:.0e}, mean spike probability per unit and step {:.3}",
            stats.rate()
        );
        let tx: Vec<&[f64]> = test_x.iter().map(|x| x.as_slice()).collect();
        lsm.predict(&tx, 1 << 32)?
    } else {
        let cfg = EsnConfig {
            reservoir: ReservoirConfig {
                units,
                spectral_radius: 0.9,
                connectivity: (10.0 / units as f64).min(1.0),
                input_scaling: 0.3,
                bias_scaling: 0.5,
                leak_rate: 0.2,
                ..Default::default()
            },
            washout: 0,
            ridge: ridges,
            seed,
            ..Default::default()
        };
        let mut esn = Esn::new(cfg, ch, k, ReadoutKind::Pooled(Pooling::LastAndMean))?;
        let data: Vec<Example> = train_x
            .iter()
            .zip(&onehot)
            .map(|(x, y)| Example {
                input: x,
                target: y,
            })
            .collect();
        let r = esn.fit(&data)?;
        println!("ESN: {units} units, ridge {:.0e}", r.ridge);
        let tx: Vec<&[f64]> = test_x.iter().map(|x| x.as_slice()).collect();
        esn.classify(&tx)?
    };
    let elapsed = t0.elapsed();
    let correct = scores
        .iter()
        .zip(&test_y)
        .filter(|(s, &y)| (0..k).max_by(|&a, &b| s[a].total_cmp(&s[b])) == Some(y))
        .count();
    println!(
        "{kind}: test accuracy {:.1}% ({correct}/{}), fit + predict {:.2?}",
        100.0 * correct as f64 / test_y.len() as f64,
        test_y.len(),
        elapsed
    );
    Ok(())
}
