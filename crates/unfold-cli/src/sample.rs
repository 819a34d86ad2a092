//! `unfold sample`: draws sequences from a trained language model, streaming each symbol as it
//! is produced. Needs nothing but the run directory or checkpoint.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Result};
use unfold::data::{reber, vocab};
use unfold::models::{Generator, Sampling};
use unfold::rng::Rng;

use crate::model::{load, Model};
use crate::{BadInput, Global};

/// Arguments of `unfold sample`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    unfold sample runs/reber                      # 5 strings at temperature 1\n  \
    unfold sample runs/reber --prime BP --count 3 # continue a given beginning\n  \
    unfold sample runs/reber/checkpoint.safetensors --top-k 2 --seed 7\n  \
    unfold sample runs/reber --temperature 0.5 --top-p 0.9 --length 50")]
pub struct SampleArgs {
    /// Run directory or checkpoint file.
    run: PathBuf,
    /// Text to start from (unknown characters become <unk>).
    #[arg(long, default_value = "")]
    prime: String,
    /// Softmax temperature (> 0).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Keep only the k most likely symbols (0: all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling: keep the most likely symbols up to this probability (1: all).
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Always take the most likely symbol.
    #[arg(long)]
    greedy: bool,
    /// Maximum symbols generated per sample (generation also ends at <end>).
    #[arg(long, default_value_t = 200)]
    length: usize,
    /// Number of samples.
    #[arg(long, default_value_t = 5)]
    count: usize,
}

/// Runs `unfold sample`.
pub fn sample(args: SampleArgs, global: &Global) -> Result<()> {
    let sampling = Sampling {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        greedy: args.greedy,
    };
    sampling.validate().map_err(|e| BadInput(e.to_string()))?;
    let loaded = load(&args.run)?;
    let model = match &loaded.model {
        Model::Labeller(m) => m,
        Model::Seq2Seq(_) => bail!(BadInput(format!(
            "{}: an encoder-decoder does not generate on its own; use `unfold translate`",
            loaded.path.display()
        ))),
        Model::Classifier(_) => bail!(BadInput(format!(
            "{}: task '{}' trains a sequence classifier, which does not generate",
            loaded.path.display(),
            loaded.settings.task
        ))),
        Model::Tree(_) => bail!(BadInput(format!(
            "{}: a tree model labels trees; it does not generate",
            loaded.path.display()
        ))),
        Model::Grid(_) => bail!(BadInput(format!(
            "{}: a 2-D network labels images; it does not generate",
            loaded.path.display()
        ))),
    };
    let Some(v) = loaded.vocab.as_ref() else {
        bail!(BadInput(format!(
            "{}: task '{}' has no text vocabulary to sample from",
            loaded.path.display(),
            loaded.settings.task
        )));
    };
    let mut gen = Generator::new(model)?;
    let mut rng = Rng::new(global.seed.unwrap_or(0));
    let mut start = vec![vocab::BOS];
    start.extend(v.encode(&args.prime));
    let stdout = std::io::stdout();
    for _ in 0..args.count {
        let mut out = stdout.lock();
        write!(out, "{}", args.prime)?;
        let (ids, _) = gen.generate(
            &start,
            Some(vocab::END),
            args.length,
            &sampling,
            &mut rng,
            |id| {
                // Stream each symbol as it is drawn; a closed pipe ends generation.
                write!(out, "{}", v.symbol(id)).is_ok() && out.flush().is_ok()
            },
        )?;
        if loaded.settings.task == "reber" {
            let text = format!("{}{}", args.prime, v.decode(&ids));
            let c = reber::check_embedded(&text);
            write!(out, "  [{}]", if c.valid { "valid" } else { "invalid" })?;
        }
        writeln!(out)?;
    }
    Ok(())
}
