//! `unfold translate`: decodes each line of standard input with a trained encoder-decoder,
//! greedily or by beam search, one output line per input line.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Result};
use unfold::models::Decode;

use crate::model::{load, Model};
use crate::BadInput;

/// Arguments of `unfold translate`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    unfold train --pairs pairs.tsv --out runs/g2p\n  \
    echo hello | unfold translate runs/g2p\n  \
    unfold translate runs/g2p --beam 5 < words.txt > outputs.txt")]
pub struct TranslateArgs {
    /// Run directory or checkpoint of an encoder-decoder (`unfold train --pairs`).
    run: PathBuf,
    /// Beam width (1: greedy).
    #[arg(long, default_value_t = 1)]
    beam: usize,
    /// Maximum output length in symbols.
    #[arg(long, default_value_t = 200)]
    max_len: usize,
    /// Rank hypotheses by log-probability / length^alpha.
    #[arg(long, default_value_t = 1.0)]
    length_alpha: f64,
}

/// Runs `unfold translate`.
pub fn translate(args: TranslateArgs) -> Result<()> {
    if args.beam == 0 {
        bail!(BadInput("--beam must be at least 1".into()));
    }
    let loaded = load(&args.run)?;
    let Model::Seq2Seq(m) = &loaded.model else {
        bail!(BadInput(format!(
            "{}: not an encoder-decoder run (train one with --pairs)",
            loaded.path.display()
        )));
    };
    let (Some(sv), Some(tv)) = (&loaded.src_vocab, &loaded.vocab) else {
        bail!(BadInput(format!(
            "{}: vocabularies missing",
            loaded.path.display()
        )));
    };
    let d = Decode {
        beam: args.beam,
        max_len: args.max_len,
        length_alpha: args.length_alpha,
    };
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| BadInput(format!("standard input: {e}")))?;
        if line.is_empty() {
            writeln!(out)?;
            continue;
        }
        let (ids, _) = m.translate(&sv.encode(&line), &d)?;
        if writeln!(out, "{}", tv.decode(&ids)).is_err() {
            break;
        }
    }
    Ok(())
}
