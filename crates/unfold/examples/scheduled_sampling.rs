//! Teacher forcing against its remedies on a generated task (pattern II, output-to-hidden
//! recurrence): continue a point going round the unit circle from noisy observations.
//!
//! The model sees only its previous output. Trained with pure teacher forcing it is always fed
//! the noisy truth, so it learns `E[y(t) | noisy y(t-1)]`, which shrinks towards the centre;
//! run free on its own smooth outputs, the shrinking compounds step after step. Scheduled
//! sampling (and free-running segments) train it on its own outputs, so it learns to keep the
//! orbit. The free-running error over the whole horizon, on clean test sequences, is printed
//! for each way of training and several seeds.
//!
//! ```text
//! cargo run --release --example scheduled_sampling [-- --steps 1500 --noise 0.5 --seeds 5]
//! ```

use unfold::data::{tasks, Dataset};
use unfold::layers::OutputKind;
use unfold::models::{FeedbackConfig, FeedbackStyle, OutputFeedback};
use unfold::train::{Batches, FeedSchedule, LrSchedule, TrainConfig, Trainer};

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> unfold::Result<()> {
    let steps = arg("--steps", 1500.0) as u64;
    let noise = arg("--noise", 0.5);
    let seeds = arg("--seeds", 5.0) as u64;
    let len = 40;
    let omega = (0.3, 0.3);
    let radius = (arg("--rmin", 0.5), arg("--rmax", 1.5));
    let floor = arg("--min-truth", 0.25);
    let test = Dataset::new(tasks::noisy_circle::<f32>(
        200, len, omega, radius, 0.0, 999,
    ))?;
    let all: Vec<usize> = (0..test.len()).collect();
    let test_batch = test.batch(&all);
    let runs: [(&str, FeedSchedule, FeedbackStyle, bool); 6] = [
        (
            "teacher forcing",
            FeedSchedule::TeacherForcing,
            FeedbackStyle::PerStep,
            false,
        ),
        (
            "scheduled sampling, linear",
            FeedSchedule::Linear {
                steps: steps * 2 / 3,
                min_truth: floor,
            },
            FeedbackStyle::PerStep,
            false,
        ),
        (
            "scheduled sampling, exponential",
            FeedSchedule::Exponential {
                base: 0.01f64.powf(1.0 / (steps as f64 * 2.0 / 3.0)),
                min_truth: floor,
            },
            FeedbackStyle::PerStep,
            false,
        ),
        (
            "scheduled sampling, inverse sigmoid",
            FeedSchedule::InverseSigmoid {
                c: steps as f64 / 9.4,
                min_truth: floor,
            },
            FeedbackStyle::PerStep,
            false,
        ),
        (
            "scheduled sampling, constant p",
            FeedSchedule::Constant(arg("--p", 0.5)),
            FeedbackStyle::PerStep,
            false,
        ),
        (
            "free-running segments + BPTT",
            FeedSchedule::Constant(0.5),
            FeedbackStyle::Segments { len: 8 },
            true,
        ),
    ];
    println!("free-running MSE over {len} steps (1 priming step), clean test signal; training noise sd {noise}");
    println!(
        "{:<38} {:>10} {:>10}   per seed",
        "training", "one-step", "free-run"
    );
    for (name, feed, style, through) in runs {
        let mut free = Vec::new();
        let mut one = Vec::new();
        for seed in 0..seeds {
            let train = Dataset::new(tasks::noisy_circle::<f32>(
                512,
                len,
                omega,
                radius,
                noise,
                100 + seed,
            ))?;
            let model = OutputFeedback::new(
                FeedbackConfig {
                    input: None,
                    hidden: 32,
                    relu: false,
                    output: OutputKind::Gaussian {
                        dim: 2,
                        learn_variance: false,
                    },
                    style,
                    backprop_feedback: through,
                    prime_steps: 1,
                },
                seed,
            )?;
            let cfg = TrainConfig {
                lr: LrSchedule::constant(0.005),
                feed,
                eval_every: 0,
                seed,
                ..TrainConfig::new(steps)
            };
            let mut tr = Trainer::new(model, cfg)?;
            let mut data = Batches::new(&train, 32, 0, seed)?;
            tr.run(&mut data, None, &mut |_| {})?;
            let mut ws = Default::default();
            free.push(
                tr.model
                    .free_run(&test_batch, &mut ws)?
                    .mse()
                    .unwrap_or(f64::NAN),
            );
            one.push(
                tr.model
                    .teacher_forced(&test_batch, &mut ws)?
                    .mse()
                    .unwrap_or(f64::NAN),
            );
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "{name:<38} {:>10.5} {:>10.5}   {}",
            mean(&one),
            mean(&free),
            free.iter()
                .map(|v| format!("{v:.4}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(())
}
