//! Encoder-decoder on a generated transduction task: reverse a string of digits. Trains the
//! same GRU encoder-decoder without attention and with each attention, then reports the
//! exact-match accuracy (the whole output right) on lengths seen in training and on longer
//! ones, decoding greedily and with a beam of 4.
//!
//! ```text
//! cargo run --release --example seq2seq_reverse [-- --steps 3000]
//! ```

use unfold::data::{tasks, vocab, Dataset};
use unfold::models::seq2seq::Decode;
use unfold::models::{Attention, Seq2Seq, Seq2SeqConfig};
use unfold::train::{Batches, Clip, LrSchedule, TrainConfig, Trainer};
use unfold::CellKind;

fn exact_match(
    m: &Seq2Seq<f32>,
    min: usize,
    max: usize,
    beam: usize,
    seed: u64,
) -> unfold::Result<f64> {
    let (seqs, srcs) = tasks::reverse_digits(300, min, max, seed);
    let mut ok = 0;
    for (s, src) in seqs.iter().zip(&srcs) {
        let want: Vec<usize> = s
            .target
            .symbols()
            .unwrap()
            .iter()
            .copied()
            .filter(|&t| t != vocab::END)
            .collect();
        let d = Decode {
            beam,
            max_len: 2 * max + 5,
            length_alpha: 1.0,
        };
        let (got, _) = m.translate(src.symbols().unwrap(), &d)?;
        ok += usize::from(got == want);
    }
    Ok(ok as f64 / seqs.len() as f64)
}

fn main() -> unfold::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let steps: u64 = args
        .iter()
        .position(|a| a == "--steps")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let (seqs, srcs) = tasks::reverse_digits(20000, 1, 8, 1);
    let train = Dataset::with_sources(seqs, srcs)?;
    println!(
        "reverse digit strings: train on lengths 1-8, {steps} steps; exact match over 300 strings"
    );
    println!(
        "{:<16} {:>12} {:>12} {:>12} {:>12} {:>8}",
        "attention", "1-8 greedy", "1-8 beam 4", "9-10 greedy", "9-10 beam 4", "time"
    );
    for attention in [
        Attention::None,
        Attention::Additive,
        Attention::Multiplicative,
    ] {
        let cfg = Seq2SeqConfig {
            src_vocab: 10,
            tgt_vocab: vocab::SPECIALS + 10,
            embed: 16,
            cell: CellKind::Gru,
            hidden: 64,
            layers: 1,
            bidirectional: true,
            context_init: true,
            context_every_step: false,
            attention,
        };
        let model = Seq2Seq::new(cfg, 1)?;
        let t0 = std::time::Instant::now();
        let tc = TrainConfig {
            lr: LrSchedule::constant(3e-3),
            clip: Clip::Norm(1.0),
            eval_every: 0,
            ..TrainConfig::new(steps)
        };
        let mut tr = Trainer::new(model, tc)?;
        let mut data = Batches::new(&train, 64, 8, 1)?;
        tr.run(&mut data, None, &mut |_| {})?;
        let secs = t0.elapsed().as_secs_f64();
        let m = &tr.model;
        println!(
            "{:<16} {:>12.3} {:>12.3} {:>12.3} {:>12.3} {:>7.1}s",
            format!("{attention:?}"),
            exact_match(m, 1, 8, 1, 7)?,
            exact_match(m, 1, 8, 4, 7)?,
            exact_match(m, 9, 10, 1, 8)?,
            exact_match(m, 9, 10, 4, 8)?,
            secs
        );
    }
    Ok(())
}
