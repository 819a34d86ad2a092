//! Multiple time scales and deep transitions on the adding problem: the same classifier with a
//! tanh RNN, leaky units, a clockwork RNN, delayed recurrences, deep transitions (with and
//! without the shortcut) and the non-recurrent time-delay layer, each trained with the same
//! budget, then scored on held-out sequences.
//! The model for each cell comes from the library's shape-and-architecture call, the data and
//! the score from the built-in task, so the example is also a tour of those calls.
//!
//! ```text
//! cargo run --release --example multiscale [-- --length 50 --steps 3000 --lr 0.01 --hidden 64]
//! ```

use std::time::Instant;
use unfold::builtin;
use unfold::layers::{ClockSpec, DeepSpec, DelaySpec, LeakSpec, TdnnSpec};
use unfold::models::{AnyModel, Architecture, ModelSpec};
use unfold::train::{Batches, LrSchedule, TrainConfig, Trainer};
use unfold::CellKind;

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> unfold::Result<()> {
    let length: usize = arg("--length", 50);
    let steps: u64 = arg("--steps", 3000);
    let lr: f64 = arg("--lr", 0.01);
    let hidden: usize = arg("--hidden", 64);
    let task = builtin::setup("adding", length, 5000, 500, 1)?;
    let cells = [
        ("tanh RNN", CellKind::RnnTanh),
        ("leaky (learned)", CellKind::Leaky(LeakSpec::default())),
        (
            "clockwork 1..128",
            CellKind::Clockwork(ClockSpec::default_for(hidden)),
        ),
        ("delay 1, 4", CellKind::Delay(DelaySpec::new(&[1, 4])?)),
        (
            "DT-RNN depth 2",
            CellKind::DeepTransition(DeepSpec {
                depth: 2,
                shortcut: false,
            }),
        ),
        (
            "DT(S)-RNN depth 2",
            CellKind::DeepTransition(DeepSpec::default()),
        ),
        (
            "TDNN 8 taps, dil. 4",
            CellKind::Tdnn(TdnnSpec {
                taps: 8,
                dilation: 4,
            }),
        ),
    ];
    println!(
        "adding problem, T = {length}: {steps} updates of 32 sequences, lr {lr}, {hidden} units"
    );
    println!(
        "{:<20} {:>10} {:>12} {:>8}",
        "cell", "params", "share<0.04", "seconds"
    );
    for (name, cell) in cells {
        let spec = ModelSpec::for_shape(task.shape(), &Architecture::new(cell, hidden))?;
        let AnyModel::Classifier(model) = spec.build::<f32>(7)? else {
            unreachable!("the adding problem reads a whole sequence into one value")
        };
        let params = unfold::Parameters::num_params(&model);
        let cfg = TrainConfig {
            lr: LrSchedule::constant(lr),
            ..TrainConfig::new(steps)
        };
        let t0 = Instant::now();
        let mut trainer = Trainer::new(model, cfg)?;
        let mut data = Batches::new(&task.train, 32, 8, 1)?;
        trainer.run(&mut data, None, &mut |_| {})?;
        let secs = t0.elapsed().as_secs_f64();
        let score = builtin::score_classifier(&task, &trainer.model)?;
        println!("{name:<20} {params:>10} {:>12.3} {secs:>8.1}", score.metric);
    }
    Ok(())
}
