//! Reservoir first, then BPTT: an echo state network, a tanh RNN trained from a random
//! initialisation, and the same RNN initialised from the ESN (reservoir and readout) then
//! trained, on the same task, data and budget.
//!
//! Task: one-step prediction of the Mackey-Glass series (tau = 17), windows of `len` steps
//! starting from a zero state; training windows come from the first 80 % of the series, the
//! test windows from the rest. The ESN's readout is fitted by ridge regression on the training
//! windows (each from a zero state, like the RNNs'); both RNNs are trained with Adam on batches of 32 training windows for the same number
//! of steps and the same learning rate. The score is the test NRMSE over every step of every
//! test window.
//!
//! `cargo run --release --example reservoir_to_bptt -- [units] [steps] [seed] [lr]`

use unfold::data::{tasks, Dataset};
use unfold::layers::OutputKind;
use unfold::models::{InputSpec, ModelConfig, SequenceLabeller};
use unfold::reservoir::{labeller_from_esn, Esn, EsnConfig, Example, ReadoutKind, ReservoirConfig};
use unfold::train::{evaluate, Batches, LrSchedule, OptimizerConfig, TrainConfig, Trainer};
use unfold::CellKind;

fn main() -> unfold::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let units: usize = a.first().and_then(|s| s.parse().ok()).unwrap_or(100);
    let steps: u64 = a.get(1).and_then(|s| s.parse().ok()).unwrap_or(1500);
    let seed: u64 = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let lr: f64 = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(1e-3);
    let len = 100;
    let series: Vec<f64> = tasks::mackey_glass(6000, 17.0, 500)
        .iter()
        .map(|v| v - 1.0)
        .collect();
    let cut = 4800;
    let train = Dataset::new(tasks::forecast_windows::<f32>(&series[..cut], len, 10))?;
    let test = Dataset::new(tasks::forecast_windows::<f32>(&series[cut..], len, 50))?;
    let test_y: Vec<f64> = series[cut + 1..].to_vec();
    let var = {
        let m = test_y.iter().sum::<f64>() / test_y.len() as f64;
        test_y.iter().map(|v| (v - m).powi(2)).sum::<f64>() / test_y.len() as f64
    };
    let nrmse = |mse: f64| (mse / var).sqrt();

    // 1. The ESN: ridge readout on the training part (one long sequence, washout 100).
    let cfg = EsnConfig {
        reservoir: ReservoirConfig {
            units,
            spectral_radius: 0.9,
            connectivity: (10.0 / units as f64).min(1.0),
            input_scaling: 1.0,
            bias_scaling: 0.2,
            ..Default::default()
        },
        washout: 0,
        readout_input: false,
        ridge: vec![1e-10, 1e-8, 1e-6, 1e-4, 1e-2],
        seed,
        ..Default::default()
    };
    let mut esn = Esn::new(cfg, 1, 1, ReadoutKind::PerStep)?;
    // The same training windows as the RNNs, each from a zero state.
    let starts: Vec<usize> = (0..cut - len - 1).step_by(10).collect();
    let examples: Vec<Example> = starts
        .iter()
        .map(|&s| Example {
            input: &series[s..s + len],
            target: &series[s + 1..s + len + 1],
        })
        .collect();
    esn.fit(&examples)?;
    let esn_model: SequenceLabeller<f32> = labeller_from_esn(&esn)?;
    let mut ws = Default::default();
    let esn_score = evaluate(&esn_model, &mut ws, &test, 64)?;

    // 2. and 3. The same RNN from random weights and from the ESN, trained alike.
    let random = SequenceLabeller::<f32>::new(
        ModelConfig {
            input: InputSpec::Reals {
                width: 1,
                project: None,
            },
            cell: CellKind::RnnTanh,
            hidden: units,
            layers: 1,
            bidirectional: false,
            output: OutputKind::Gaussian {
                dim: 1,
                learn_variance: false,
            },
            deep_output: 0,
            residual: false,
        },
        seed,
    )?;
    let tcfg = || TrainConfig {
        lr: LrSchedule::constant(lr),
        optimizer: OptimizerConfig::adam(),
        eval_every: 0,
        seed,
        ..TrainConfig::new(steps)
    };
    let mut rows = Vec::new();
    for (name, model) in [("RNN, random init", random), ("RNN, ESN init", esn_model)] {
        let mut tr = Trainer::new(model, tcfg())?;
        let mut data = Batches::new(&train, 32, 4, seed)?;
        let mut curve = Vec::new();
        let checkpoints = [steps / 10, steps / 3, steps];
        for &c in &checkpoints {
            tr.set_steps(c);
            tr.run(&mut data, None, &mut |_| {})?;
            let st = evaluate(&tr.model, &mut Default::default(), &test, 64)?;
            curve.push((c, nrmse(st.mse().unwrap_or(f64::NAN))));
        }
        rows.push((name, curve));
    }
    println!("Mackey-Glass one-step, {units} tanh units, windows of {len} from a zero state, Adam lr {lr}");
    println!(
        "ESN (ridge readout only): test NRMSE {:.4}",
        nrmse(esn_score.mse().unwrap_or(f64::NAN))
    );
    for (name, curve) in rows {
        let s: Vec<String> = curve
            .iter()
            .map(|(s, e)| format!("{s} steps {e:.4}"))
            .collect();
        println!("{name}: test NRMSE after {}", s.join(", "));
    }
    Ok(())
}
