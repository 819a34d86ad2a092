//! The chapter's three RNN patterns, each trained on a generated task, with its learning curve
//! printed as it goes (training loss averaged since the last validation, validation metrics).
//!
//! - Pattern I (output at every step): tag each symbol with `(x(t) + x(t-1)) mod 4`.
//! - Pattern II (output-to-hidden recurrence): continue a noisy circle from its own outputs;
//!   validation runs free.
//! - Pattern III (sequence to one): the sign of the sum of a variable-length sequence.
//!
//! ```text
//! cargo run --release --example patterns [-- --cell lstm --steps 600]
//! ```

use unfold::data::{tasks, Dataset};
use unfold::layers::{LossStats, OutputKind};
use unfold::models::{
    FeedbackConfig, FeedbackStyle, InputSpec, ModelConfig, OutputFeedback, Readout,
    SequenceClassifier, SequenceLabeller, SequenceModel,
};
use unfold::train::{Batches, Event, FeedSchedule, LrSchedule, TrainConfig, Trainer};
use unfold::CellKind;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn describe(s: &LossStats) -> String {
    let mut out = format!("loss {:.4}", s.mean_nll());
    if let Some(a) = s.accuracy() {
        out += &format!("  accuracy {:.3}", a);
    }
    if let Some(m) = s.mse() {
        out += &format!("  mse {:.5}", m);
    }
    out
}

fn train<M: SequenceModel<f32>>(
    title: &str,
    model: M,
    train: &Dataset<f32>,
    valid: &Dataset<f32>,
    cfg: TrainConfig,
) -> unfold::Result<()> {
    println!("\n{title}: {} parameters", model.num_params());
    println!("{:>6}  {:>10}  validation", "step", "train loss");
    let mut tr = Trainer::new(model, cfg)?;
    let mut data = Batches::new(train, 32, 8, 1)?;
    let (mut sum, mut n) = (0.0, 0);
    tr.run(&mut data, Some(valid), &mut |e| match e {
        Event::Step { loss, .. } => {
            sum += loss;
            n += 1;
        }
        Event::Eval { step, stats, .. } => {
            println!(
                "{step:>6}  {:>10.4}  {}",
                sum / n.max(1) as f64,
                describe(stats)
            );
            (sum, n) = (0.0, 0);
        }
        _ => {}
    })?;
    Ok(())
}

fn main() -> unfold::Result<()> {
    let cell = CellKind::parse(&arg("--cell", "gru"))?;
    let steps: u64 = arg("--steps", "600").parse().unwrap_or(600);
    let cfg = |lr: f64, feed: FeedSchedule| TrainConfig {
        lr: LrSchedule::constant(lr),
        eval_every: steps / 10,
        feed,
        ..TrainConfig::new(steps)
    };

    let tr1 = Dataset::new(tasks::running_pair_sum::<f32>(2000, 4, 5, 30, 1))?;
    let va1 = Dataset::new(tasks::running_pair_sum::<f32>(200, 4, 5, 30, 2))?;
    let m1 = SequenceLabeller::new(
        ModelConfig {
            input: InputSpec::Symbols { vocab: 4, dim: 8 },
            cell,
            hidden: 32,
            layers: 1,
            bidirectional: false,
            output: OutputKind::Categorical {
                classes: 4,
                pad: None,
            },
            deep_output: 0,
            residual: false,
        },
        1,
    )?;
    train(
        "Pattern I: tag every step",
        m1,
        &tr1,
        &va1,
        cfg(0.01, FeedSchedule::TeacherForcing),
    )?;

    let tr2 = Dataset::new(tasks::noisy_circle::<f32>(
        512,
        40,
        (0.3, 0.3),
        (0.5, 1.5),
        0.1,
        1,
    ))?;
    let va2 = Dataset::new(tasks::noisy_circle::<f32>(
        100,
        40,
        (0.3, 0.3),
        (0.5, 1.5),
        0.0,
        2,
    ))?;
    let m2 = OutputFeedback::new(
        FeedbackConfig {
            input: None,
            hidden: 32,
            relu: false,
            output: OutputKind::Gaussian {
                dim: 2,
                learn_variance: false,
            },
            style: FeedbackStyle::PerStep,
            backprop_feedback: false,
            prime_steps: 1,
        },
        1,
    )?;
    let ss = FeedSchedule::Linear {
        steps: steps * 2 / 3,
        min_truth: 0.75,
    };
    train(
        "Pattern II: continue a signal from its own outputs (scheduled sampling; validation runs free)",
        m2,
        &tr2,
        &va2,
        cfg(0.005, ss),
    )?;

    let tr3 = Dataset::new(tasks::sign_of_sum::<f32>(4000, 5, 40, 1))?;
    let va3 = Dataset::new(tasks::sign_of_sum::<f32>(500, 5, 40, 2))?;
    let m3 = SequenceClassifier::new(
        ModelConfig {
            input: InputSpec::Reals {
                width: 1,
                project: None,
            },
            cell,
            hidden: 32,
            layers: 1,
            bidirectional: false,
            output: OutputKind::Categorical {
                classes: 2,
                pad: None,
            },
            deep_output: 0,
            residual: false,
        },
        Readout::Last,
        1,
    )?;
    train(
        "Pattern III: sign of a sum, one output per sequence",
        m3,
        &tr3,
        &va3,
        cfg(0.01, FeedSchedule::TeacherForcing),
    )?;
    Ok(())
}
