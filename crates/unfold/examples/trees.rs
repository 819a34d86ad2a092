//! Recursive networks against a chain: the value of nested arithmetic expressions modulo 10
//! (the built-in `arith` tree task), trained on expressions of depth 1 to 4 and tested on
//! depths 5 to 8. A binary Tree-LSTM and a binary TreeRNN read each expression as its tree; an
//! LSTM reads the same expression written out with brackets. Same budget for all (updates,
//! batch, learning rate, hidden units); accuracy reported per test depth.
//!
//! ```text
//! cargo run --release --example trees [-- --task arith --steps 4000 --hidden 64 --seed 1]
//! ```

use std::time::Instant;

use unfold::data::tree_tasks::{self, flat_dataset, tree_set};
use unfold::data::{Dataset, TreeSet};
use unfold::layers::tree::{Children, TreeCell};
use unfold::layers::OutputKind;
use unfold::models::{
    InputSpec, Model, ModelConfig, Readout, SequenceClassifier, TreeConfig, TreeModel, TreeOutputs,
};
use unfold::train::{Batches, Decay, LrSchedule, TrainConfig, Trainer, TreeBatches};
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
    let task: String = arg("--task", "arith".to_string());
    let info = tree_tasks::find(&task).expect("arith or logic");
    let steps: u64 = arg("--steps", info.steps);
    let hidden: usize = arg("--hidden", info.hidden);
    let seed: u64 = arg("--seed", 1);
    let depth = info.depth;
    let data = tree_tasks::generate(&task, depth, info.train_size, 1000, seed)?;
    let (words, flat_words, labels) = (data.word_vocab(), data.flat_vocab(), data.label_vocab());
    let classes = labels.len();
    let cfg = TrainConfig {
        seed,
        lr: LrSchedule {
            decay: Decay::Cosine {
                period: steps,
                min_lr: info.lr / 20.0,
            },
            ..LrSchedule::constant(info.lr)
        },
        eval_every: 0,
        ..TrainConfig::new(steps)
    };
    // Test trees grouped by depth, for both readers.
    let by_depth: Vec<(usize, Vec<unfold::data::Tree>)> = (depth + 1..=2 * depth)
        .map(|d| {
            (
                d,
                data.test
                    .iter()
                    .filter(|t| t.depth() == d)
                    .cloned()
                    .collect(),
            )
        })
        .collect();
    println!(
        "{task}: {} training trees of depth 1-{depth}, test depths {}-{}; {steps} updates, batch {}, hidden {hidden}",
        data.train.len(),
        depth + 1,
        2 * depth,
        info.batch
    );
    println!(
        "| model | valid (depth 1-{depth}) | {} | train s |",
        by_depth
            .iter()
            .map(|(d, _)| format!("depth {d}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|{}---|", "---|".repeat(by_depth.len()));
    let train: TreeSet<f32> = tree_set(&data.train, &words, &labels)?;
    let valid: TreeSet<f32> = tree_set(&data.valid, &words, &labels)?;
    for (name, cell) in [
        ("Tree-LSTM (binary)", TreeCell::Lstm),
        ("TreeRNN (binary)", TreeCell::Rnn),
    ] {
        let config = TreeConfig {
            input: InputSpec::Symbols {
                vocab: words.len(),
                dim: 16,
            },
            cell,
            children: Children::Nary { n: 2 },
            hidden,
            deep_output: 0,
            output: OutputKind::Categorical { classes, pad: None },
            outputs: TreeOutputs::Root,
        };
        let t0 = Instant::now();
        let mut tr = Trainer::new(TreeModel::new(config, seed)?, cfg.clone())?;
        tr.run(
            &mut TreeBatches::new(&train, info.batch, seed)?,
            None,
            &mut |_| {},
        )?;
        let secs = t0.elapsed().as_secs_f64();
        let acc = |trees: &[unfold::data::Tree]| -> unfold::Result<f64> {
            let set: TreeSet<f32> = tree_set(trees, &words, &labels)?;
            Ok(tr.model.evaluate_set(&set)?.accuracy().unwrap_or(0.0))
        };
        let mut row = format!(
            "| {name} | {:.3} |",
            tr.model.evaluate_set(&valid)?.accuracy().unwrap_or(0.0)
        );
        for (_, ts) in &by_depth {
            row += &format!(" {:.3} |", acc(ts)?);
        }
        println!("{row} {secs:.0} |");
    }
    let flat_train: Dataset<f32> = flat_dataset(&data.train, &flat_words, &labels)?;
    let flat_valid: Dataset<f32> = flat_dataset(&data.valid, &flat_words, &labels)?;
    let config = ModelConfig {
        input: InputSpec::Symbols {
            vocab: flat_words.len(),
            dim: 16,
        },
        cell: CellKind::Lstm,
        hidden,
        layers: 1,
        bidirectional: false,
        output: OutputKind::Categorical { classes, pad: None },
        deep_output: 0,
        residual: false,
    };
    let t0 = Instant::now();
    let mut tr = Trainer::new(SequenceClassifier::new(config, Readout::Last, seed)?, cfg)?;
    tr.run(
        &mut Batches::new(&flat_train, info.batch, 8, seed)?,
        None,
        &mut |_| {},
    )?;
    let secs = t0.elapsed().as_secs_f64();
    let acc = |d: &Dataset<f32>| -> unfold::Result<f64> {
        let idx: Vec<usize> = (0..d.len()).collect();
        let st = tr.model.evaluate(&d.batch(&idx), &mut Default::default())?;
        Ok(st.accuracy().unwrap_or(0.0))
    };
    let mut row = format!(
        "| LSTM over the bracketed expression | {:.3} |",
        acc(&flat_valid)?
    );
    for (_, ts) in &by_depth {
        row += &format!(" {:.3} |", acc(&flat_dataset(ts, &flat_words, &labels)?)?);
    }
    println!("{row} {secs:.0} |");
    Ok(())
}
