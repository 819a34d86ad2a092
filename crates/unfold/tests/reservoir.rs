//! Echo state networks end to end: forecasting Mackey-Glass, closed-loop generation, deep
//! reservoirs, output feedback, sequence classification, the echo-state diagnostic,
//! checkpoints and bad input.

use unfold::data::tasks::mackey_glass;
use unfold::reservoir::{
    echo_state_check, spectral_radius, Activation, Esn, EsnConfig, Example, Pooling, ReadoutKind,
    ReservoirConfig, WeightDist,
};
use unfold::reservoir::{Lsm, LsmConfig};
use unfold::rng::Rng;

fn mg_series(n: usize) -> Vec<f64> {
    mackey_glass(n, 17.0, 500).iter().map(|v| v - 1.0).collect()
}

fn mg_config(units: usize, seed: u64) -> EsnConfig {
    EsnConfig {
        reservoir: ReservoirConfig {
            units,
            spectral_radius: 1.0,
            connectivity: 10.0 / units as f64,
            bias_scaling: 0.2,
            ..Default::default()
        },
        washout: 100,
        ridge: vec![1e-10, 1e-8, 1e-6, 1e-4],
        seed,
        ..Default::default()
    }
}

fn nrmse(pred: &[f64], truth: &[f64]) -> f64 {
    let n = truth.len() as f64;
    let mean = truth.iter().sum::<f64>() / n;
    let var = truth.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let mse = pred
        .iter()
        .zip(truth)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / n;
    (mse / var).sqrt()
}

#[test]
fn mackey_glass_one_step_and_closed_loop() {
    let series = mg_series(2000);
    let mut esn = Esn::new(mg_config(200, 1), 1, 1, ReadoutKind::PerStep).unwrap();
    let n_fit = 1500;
    let report = esn
        .fit(&[Example {
            input: &series[..n_fit],
            target: &series[1..n_fit + 1],
        }])
        .unwrap();
    assert!(report.train_nrmse[0] < 1e-3, "{report:?}");
    assert_eq!(report.scores.len(), 4);
    let pred = esn.predict(&[&series[..]]).unwrap().remove(0);
    let one_step = nrmse(&pred[n_fit..1999], &series[n_fit + 1..2000]);
    assert!(one_step < 1e-3, "one-step NRMSE {one_step}");
    // Closed loop: 84 steps from the end of the training data.
    let mut st = esn.state();
    esn.run(&mut st, &series[..n_fit + 1], None).unwrap();
    let fc = esn.forecast(&mut st, 84).unwrap();
    let truth = &series[n_fit + 1..n_fit + 85];
    let err84 = (fc[83] - truth[83]).abs();
    assert!(err84 < 0.05, "error after 84 free-running steps {err84}");
    // A constant guess is far worse: the forecast really follows the chaotic series.
    assert!(nrmse(&fc, truth) < 0.1);
}

#[test]
fn threaded_fit_and_prediction_equal_the_serial_ones() {
    // One long series: fitted with the harvest and the Gram products on two threads (5 chunks
    // of rows), and predicted with the units split between threads (300 units), against the
    // same work inside a serial scope (one thread, no pipeline, no split).
    unfold::kernels::gemm::set_num_threads(2);
    let series = mg_series(2700);
    let data = [Example {
        input: &series[..2600],
        target: &series[1..2601],
    }];
    let mut cfg = mg_config(300, 4);
    cfg.ridge = vec![1e-8];
    let mut threaded = Esn::new(cfg.clone(), 1, 1, ReadoutKind::PerStep).unwrap();
    threaded.fit(&data).unwrap();
    // The pipeline's split of the products between its threads does not depend on timing:
    // a second fit gives the same readout to the last bit.
    let mut again = Esn::new(cfg.clone(), 1, 1, ReadoutKind::PerStep).unwrap();
    again.fit(&data).unwrap();
    assert_eq!(threaded.readout, again.readout);
    let got = threaded.predict(&[&series[..1500]]).unwrap().remove(0);
    let mut serial = Esn::new(cfg, 1, 1, ReadoutKind::PerStep).unwrap();
    let want = {
        let _one = unfold::kernels::gemm::serial_scope();
        serial.fit(&data).unwrap();
        serial.predict(&[&series[..1500]]).unwrap().remove(0)
    };
    // The readouts differ by rounding amplified by the system's conditioning; what they
    // predict agrees closely.
    let worst = got[100..]
        .iter()
        .zip(&want[100..])
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst < 1e-7,
        "threaded and serial predictions differ by {worst}"
    );
    assert!(nrmse(&got[100..], &series[101..1501]) < 1e-3);
}

#[test]
fn same_seed_same_network_and_readout() {
    let series = mg_series(800);
    let fit = |seed| {
        let mut e = Esn::new(mg_config(80, seed), 1, 1, ReadoutKind::PerStep).unwrap();
        e.fit(&[Example {
            input: &series[..700],
            target: &series[1..701],
        }])
        .unwrap();
        e
    };
    assert_eq!(fit(3), fit(3));
    assert_ne!(fit(3).readout, fit(4).readout);
}

#[test]
fn checkpoint_round_trip_predicts_identically() {
    let series = mg_series(600);
    let mut cfg = mg_config(120, 2);
    cfg.layers = 2;
    cfg.reservoir.leak_rate = 0.7;
    let mut esn = Esn::new(cfg, 1, 1, ReadoutKind::PerStep).unwrap();
    esn.fit(&[Example {
        input: &series[..500],
        target: &series[1..501],
    }])
    .unwrap();
    let dir = std::env::temp_dir().join(format!("unfold-esn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("esn.safetensors");
    esn.save(&path).unwrap();
    let back = Esn::load(&path).unwrap();
    assert_eq!(back, esn);
    let a = esn.predict(&[&series[..]]).unwrap();
    let b = back.predict(&[&series[..]]).unwrap();
    assert_eq!(a, b);
    // The library's one loading call tells an ESN from a trained model and rebuilds it equal.
    match unfold::saved::load::<f32>(&path).unwrap() {
        unfold::saved::Saved::Esn {
            esn: any, scaler, ..
        } => {
            assert_eq!(*any, esn);
            assert!(scaler.is_none());
        }
        unfold::saved::Saved::Model(m) => panic!("an ESN loaded as {:?}", m.spec),
    }
    // A file that is neither is refused with its name.
    let other = dir.join("neither.safetensors");
    unfold::checkpoint::TensorFile::new().write(&other).unwrap();
    let err = unfold::saved::load::<f32>(&other).unwrap_err().to_string();
    assert!(err.contains("neither.safetensors"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn deep_reservoir_features_include_every_layer() {
    let series = mg_series(900);
    let mut cfg = mg_config(60, 5);
    cfg.layers = 3;
    cfg.reservoir.input_connectivity = 0.2;
    let mut esn = Esn::new(cfg, 1, 1, ReadoutKind::PerStep).unwrap();
    assert_eq!(esn.features(), 1 + 1 + 3 * 60);
    let r = esn
        .fit(&[Example {
            input: &series[..800],
            target: &series[1..801],
        }])
        .unwrap();
    assert!(r.train_nrmse[0] < 5e-3, "{r:?}");
    // Every layer's recurrent matrix has the requested radius.
    for l in &esn.layers {
        assert!((spectral_radius(&l.w, 0).unwrap() - 1.0).abs() < 1e-9);
    }
}

#[test]
fn output_feedback_generator_is_teacher_forced_then_runs_free() {
    // A feedback-only ESN (no input) learns to generate a two-tone signal.
    let y: Vec<f64> = (0..1600)
        .map(|t| 0.4 * (t as f64 * 0.21).sin() + 0.2 * (t as f64 * 0.07).cos())
        .collect();
    let cfg = EsnConfig {
        reservoir: ReservoirConfig {
            units: 150,
            spectral_radius: 0.8,
            connectivity: 0.1,
            feedback_scaling: 0.3,
            bias_scaling: 0.2,
            noise: 1e-8,
            ..Default::default()
        },
        washout: 100,
        readout_input: false,
        ridge: vec![1e-9, 1e-7, 1e-5],
        seed: 9,
        ..Default::default()
    };
    let mut esn = Esn::new(cfg, 0, 1, ReadoutKind::PerStep).unwrap();
    assert!(esn.has_feedback());
    esn.fit(&[Example {
        input: &[],
        target: &y[..1400],
    }])
    .unwrap();
    let mut st = esn.state();
    esn.run(&mut st, &[], Some(&y[..1400])).unwrap();
    let fc = esn.forecast(&mut st, 200).unwrap();
    let e = nrmse(&fc, &y[1400..1600]);
    assert!(e < 0.01, "free-running NRMSE over 200 steps {e}");
}

#[test]
fn pooled_readout_classifies_sequences() {
    // Three classes: sines of different frequencies with random phase and noise, lengths vary.
    let mut rng = Rng::new(11);
    let mut make = |n: usize| {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..n {
            let c = i % 3;
            let len = 15 + rng.below(15);
            let phase = rng.uniform_range(0.0, 6.3);
            let f = [0.3, 0.6, 1.1][c];
            let x: Vec<f64> = (0..len)
                .map(|t| (f * t as f64 + phase).sin() + 0.1 * rng.normal())
                .collect();
            let mut y = vec![0.0; 3];
            y[c] = 1.0;
            xs.push(x);
            ys.push(y);
        }
        (xs, ys)
    };
    let (train_x, train_y) = make(150);
    let (test_x, test_y) = make(90);
    let cfg = EsnConfig {
        reservoir: ReservoirConfig {
            units: 100,
            spectral_radius: 0.9,
            leak_rate: 0.5,
            // An odd activation without bias maps a sine and its negation to opposite states,
            // which no linear readout separates by frequency: the bias breaks the symmetry.
            bias_scaling: 1.0,
            ..Default::default()
        },
        washout: 0,
        ridge: vec![1e-4, 1e-2, 1.0],
        seed: 1,
        ..Default::default()
    };
    let mut esn = Esn::new(cfg, 1, 3, ReadoutKind::Pooled(Pooling::LastAndMean)).unwrap();
    let data: Vec<Example> = train_x
        .iter()
        .zip(&train_y)
        .map(|(x, y)| Example {
            input: x,
            target: y,
        })
        .collect();
    esn.fit(&data).unwrap();
    let inputs: Vec<&[f64]> = test_x.iter().map(|x| x.as_slice()).collect();
    let scores = esn.classify(&inputs).unwrap();
    let argmax = |v: &[f64]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
    let correct = scores
        .iter()
        .zip(&test_y)
        .filter(|(s, y)| argmax(s) == argmax(y))
        .count();
    assert!(correct as f64 / 90.0 > 0.9, "accuracy {correct}/90");
}

#[test]
fn echo_state_check_separates_contracting_from_chaotic_reservoirs() {
    let mut rng = Rng::new(4);
    let input: Vec<f64> = (0..300).map(|_| rng.uniform_range(-0.5, 0.5)).collect();
    let make = |rho: f64, scaling: f64| {
        let cfg = EsnConfig {
            reservoir: ReservoirConfig {
                units: 100,
                spectral_radius: rho,
                connectivity: 0.2,
                input_scaling: scaling,
                activation: Activation::Tanh,
                weight_dist: WeightDist::Normal,
                ..Default::default()
            },
            ..Default::default()
        };
        Esn::new(cfg, 1, 1, ReadoutKind::PerStep).unwrap()
    };
    let good = echo_state_check(&make(0.8, 1.0), &input, None, 5, 1e-8, 1).unwrap();
    let t = good
        .converged_at
        .expect("radius 0.8 forgets its initial state");
    assert!(t < 200, "converged at {t}");
    assert!(good.contraction < 1.0);
    // Radius 3 with a weak input: tanh saturation keeps the initial state's imprint.
    let bad = echo_state_check(&make(3.0, 0.01), &input, None, 5, 1e-8, 1).unwrap();
    assert!(bad.converged_at.is_none());
    assert!(
        *bad.distance.last().unwrap() > 1e-2,
        "{:?}",
        bad.distance.last()
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let series = mg_series(300);
    let mut esn = Esn::new(mg_config(50, 1), 1, 1, ReadoutKind::PerStep).unwrap();
    // Shorter than the washout plus one.
    let err = esn
        .fit(&[Example {
            input: &series[..80],
            target: &series[1..81],
        }])
        .unwrap_err();
    assert!(err.to_string().contains("washout"), "{err}");
    // A non-finite value.
    let mut bad = series.clone();
    bad[150] = f64::NAN;
    let err = esn
        .fit(&[Example {
            input: &bad[..250],
            target: &bad[1..251],
        }])
        .unwrap_err();
    assert!(err.to_string().contains("non-finite"), "{err}");
    // A reservoir too sparse to have any recurrent weight: its radius cannot be scaled.
    let mut cfg = mg_config(4, 1);
    cfg.reservoir.connectivity = 1e-6;
    let err = Esn::new(cfg, 1, 1, ReadoutKind::PerStep).unwrap_err();
    assert!(err.to_string().contains("cannot be scaled"), "{err}");
    // A constant input with ridge 0: the readout system is singular (bias = input column).
    let mut cfg = mg_config(20, 1);
    cfg.ridge = vec![0.0];
    cfg.reservoir.spectral_radius = 0.0;
    let mut esn = Esn::new(cfg, 1, 1, ReadoutKind::PerStep).unwrap();
    let ones = vec![1.0; 300];
    let err = esn
        .fit(&[Example {
            input: &ones,
            target: &series[..300],
        }])
        .unwrap_err();
    assert!(err.to_string().contains("singular"), "{err}");
}

#[test]
fn liquid_state_machine_spikes_and_learns_temporal_order() {
    // Two classes with the same values in opposite temporal order (a rising or a falling ramp,
    // with noise): only a memory of the order separates them.
    let mut rng = Rng::new(21);
    let mut make = |n: usize| {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..n {
            let c = i % 2;
            let len = 12 + rng.below(8);
            let x: Vec<f64> = (0..len)
                .map(|t| {
                    let r = t as f64 / (len - 1) as f64;
                    (if c == 0 { r } else { 1.0 - r }) + 0.1 * rng.normal()
                })
                .collect();
            xs.push(x);
            ys.push(if c == 0 {
                vec![1.0, 0.0]
            } else {
                vec![0.0, 1.0]
            });
        }
        (xs, ys)
    };
    let (train_x, train_y) = make(80);
    let (test_x, test_y) = make(60);
    let cfg = LsmConfig {
        units: 200,
        seed: 3,
        ..Default::default()
    };
    let mut lsm = Lsm::new(cfg, 1, 2, Some(Pooling::Last)).unwrap();
    let xs: Vec<&[f64]> = train_x.iter().map(|x| x.as_slice()).collect();
    let ys: Vec<&[f64]> = train_y.iter().map(|y| y.as_slice()).collect();
    let (_, stats) = lsm.fit(&xs, &ys, &[1e-3, 1e-1, 10.0]).unwrap();
    assert!(
        stats.spikes > 0 && stats.rate() < 0.5,
        "spike rate {}",
        stats.rate()
    );
    let tx: Vec<&[f64]> = test_x.iter().map(|x| x.as_slice()).collect();
    let out = lsm.predict(&tx, 1000).unwrap();
    let correct = out
        .iter()
        .zip(&test_y)
        .filter(|(o, y)| (o[0] > o[1]) == (y[0] > y[1]))
        .count();
    assert!(correct >= 54, "LSM accuracy {correct}/60");
}

#[test]
fn esn_becomes_an_rnn_layer_with_the_same_outputs_then_trains_by_bptt() {
    // Leak rate 1 becomes a tanh RNN layer, a leak rate below 1 a leaky layer with that leak.
    for leak in [1.0, 0.3] {
        esn_hand_off(leak);
    }
}

fn esn_hand_off(leak: f64) {
    use unfold::data::{tasks, Dataset};
    use unfold::reservoir::labeller_from_esn;
    use unfold::train::{evaluate, Batches, LrSchedule, OptimizerConfig, TrainConfig, Trainer};
    let series = mg_series(700);
    let mut cfg = mg_config(40, 3);
    cfg.washout = 0;
    cfg.readout_input = false;
    cfg.reservoir.leak_rate = leak;
    let mut esn = Esn::new(cfg, 1, 1, ReadoutKind::PerStep).unwrap();
    let windows: Vec<(usize, usize)> = (0..=500).step_by(25).map(|s| (s, s + 30)).collect();
    let ex: Vec<Example> = windows
        .iter()
        .map(|&(s, e)| Example {
            input: &series[s..e],
            target: &series[s + 1..e + 1],
        })
        .collect();
    esn.fit(&ex).unwrap();
    // The same windows as a dataset: the labeller's MSE equals the ESN's.
    let data = Dataset::new(tasks::forecast_windows::<f64>(&series[..531], 30, 25)).unwrap();
    assert_eq!(data.len(), windows.len());
    let model = labeller_from_esn::<f64>(&esn).unwrap();
    let want_cell = if leak == 1.0 { "rnn_tanh" } else { "leaky" };
    assert_eq!(model.config().cell.name(), want_cell);
    let got = evaluate(&model, &mut Default::default(), &data, 64)
        .unwrap()
        .mse()
        .unwrap();
    let inputs: Vec<&[f64]> = ex.iter().map(|e| e.input).collect();
    let preds = esn.predict(&inputs).unwrap();
    let (mut sq, mut n) = (0.0, 0);
    for (p, e) in preds.iter().zip(&ex) {
        for (a, b) in p.iter().zip(e.target) {
            sq += (a - b).powi(2);
            n += 1;
        }
    }
    let want = sq / n as f64;
    assert!(
        (got - want).abs() <= 1e-9 * want,
        "leak {leak}: labeller {got} vs ESN {want}"
    );
    // Fine-tuning every weight with BPTT runs from there and keeps the loss finite and low.
    let cfg = TrainConfig {
        // The leaky reservoir's readout sits in a sharper minimum: Adam's first steps (about
        // lr per weight, whatever the gradient) must be smaller to stay in it.
        lr: LrSchedule::constant(if leak == 1.0 { 1e-4 } else { 1e-5 }),
        optimizer: OptimizerConfig::adam(),
        eval_every: 0,
        ..TrainConfig::new(30)
    };
    let mut tr = Trainer::new(model, cfg).unwrap();
    let mut batches = Batches::new(&data, 8, 1, 1).unwrap();
    tr.run(&mut batches, None, &mut |_| {}).unwrap();
    let after = evaluate(&tr.model, &mut Default::default(), &data, 64)
        .unwrap()
        .mse()
        .unwrap();
    assert!(
        after.is_finite() && after < 4.0 * want,
        "leak {leak}: after fine-tuning {after} vs {want}"
    );
}
