//! A model's shape: which of the chapter's patterns it is, what it reads and what it predicts,
//! independent of its cell and sizes. Data decide the shape (a text gives symbols in and out, a
//! labelled series set gives reals in and classes out); the user's settings then choose the rest
//! of the [`crate::models::ModelSpec`], which gives its shape back ([`ModelSpec::shape`]).

use crate::layers::output::OutputKind;
use crate::models::{InputSpec, ModelSpec};

/// Which of the chapter's patterns a model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Output at every step (pattern I; language models too).
    Labeller,
    /// One output per sequence (pattern III).
    Classifier,
    /// Encoder-decoder (sequence to sequence).
    Seq2Seq,
    /// A recursive network over trees, with outputs at the root or at every node.
    Tree(crate::models::TreeOutputs),
    /// A two-dimensional network over images, with outputs per image or per pixel.
    Grid(crate::models::GridReadout),
}

/// A model's pattern, input and output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// The pattern.
    pub kind: ModelKind,
    /// What it reads (the source side of an encoder-decoder).
    pub input: InputSpec,
    /// Its output distribution (the target side of an encoder-decoder).
    pub output: OutputKind,
}

impl Shape {
    /// The name of the figure that best shows progress on held-out data: `accuracy` for a
    /// classifier of symbols, `bits` (per symbol) for other categorical outputs, `mse` for
    /// real-valued outputs.
    pub fn monitor(&self) -> &'static str {
        match (self.output, self.kind) {
            (
                OutputKind::Categorical { .. },
                ModelKind::Classifier | ModelKind::Tree(_) | ModelKind::Grid(_),
            ) => "accuracy",
            (OutputKind::Categorical { .. }, _) => "bits",
            _ => "mse",
        }
    }
}

impl ModelSpec {
    /// The model's shape: pattern, input and output.
    pub fn shape(&self) -> Shape {
        match self {
            ModelSpec::Labeller { config, .. } => Shape {
                kind: ModelKind::Labeller,
                input: config.input,
                output: config.output,
            },
            ModelSpec::Classifier { config, .. } => Shape {
                kind: ModelKind::Classifier,
                input: config.input,
                output: config.output,
            },
            ModelSpec::Seq2Seq { config } => Shape {
                kind: ModelKind::Seq2Seq,
                input: InputSpec::Symbols {
                    vocab: config.src_vocab,
                    dim: config.embed,
                },
                output: OutputKind::Categorical {
                    classes: config.tgt_vocab,
                    pad: Some(crate::data::vocab::PAD),
                },
            },
            ModelSpec::Tree { config } => Shape {
                kind: ModelKind::Tree(config.outputs),
                input: config.input,
                output: config.output,
            },
            ModelSpec::Grid { config } => Shape {
                kind: ModelKind::Grid(config.readout),
                input: InputSpec::Reals {
                    width: config.channels,
                    project: None,
                },
                output: config.output,
            },
        }
    }
}
