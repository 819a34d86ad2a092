//! The model of a run, built from its settings and task, and loaded back from a run directory
//! or checkpoint with nothing else.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use unfold::builtin::ModelKind;
use unfold::checkpoint::TensorFile;
use unfold::data::Vocab;
use unfold::models::{
    Attention, InputSpec, ModelConfig, Readout, Seq2Seq, Seq2SeqConfig, SequenceClassifier,
    SequenceLabeller,
};
use unfold::Parameters;

use crate::data::{Scaler, Shape};
use crate::settings::Settings;
use crate::BadInput;

/// Metadata key of the resolved settings (TOML) in a checkpoint.
pub const META_SETTINGS: &str = "unfold.settings";
/// Metadata key of the vocabulary in a checkpoint.
pub const META_VOCAB: &str = "unfold.vocab";
/// Metadata key of the source vocabulary of an encoder-decoder.
pub const META_SRC_VOCAB: &str = "unfold.src_vocab";
/// Metadata key of the model's shape in a checkpoint.
pub const META_SHAPE: &str = "unfold.shape";
/// Metadata key of the input scaling in a checkpoint.
pub const META_SCALER: &str = "unfold.scaler";

/// A run's model: pattern I or pattern III.
pub enum Model {
    /// Output at every step (language models, tagging, forecasting).
    Labeller(SequenceLabeller<f32>),
    /// One output per sequence.
    Classifier(SequenceClassifier<f32>),
    /// Encoder-decoder.
    Seq2Seq(Box<Seq2Seq<f32>>),
}

impl Model {
    /// Builds the model the settings ask for, in the given shape.
    pub fn build(s: &Settings, setup: &Shape) -> Result<Self> {
        let input = match setup.input {
            InputSpec::Symbols { vocab, .. } => InputSpec::Symbols {
                vocab,
                dim: s.embed,
            },
            other => other,
        };
        let cfg = ModelConfig {
            input,
            cell: s.cell(),
            hidden: s.hidden,
            layers: s.layers,
            bidirectional: false,
            output: setup.output,
        };
        let mut m = match setup.kind {
            ModelKind::Labeller => {
                let mut m = SequenceLabeller::new(cfg, s.seed)?;
                m.set_dropout(s.dropout)?;
                Model::Labeller(m)
            }
            ModelKind::Classifier => {
                Model::Classifier(SequenceClassifier::new(cfg, Readout::Last, s.seed)?)
            }
            ModelKind::Seq2Seq => {
                let (
                    InputSpec::Symbols {
                        vocab: src_vocab, ..
                    },
                    unfold::layers::OutputKind::Categorical { classes, .. },
                ) = (setup.input, setup.output)
                else {
                    anyhow::bail!("an encoder-decoder reads and writes symbols");
                };
                Model::Seq2Seq(Box::new(Seq2Seq::new(
                    Seq2SeqConfig {
                        src_vocab,
                        tgt_vocab: classes,
                        embed: s.embed,
                        cell: s.cell(),
                        hidden: s.hidden,
                        layers: s.layers,
                        bidirectional: true,
                        context_init: true,
                        context_every_step: false,
                        attention: match s.attention.as_deref() {
                            Some("none") => Attention::None,
                            Some("multiplicative") => Attention::Multiplicative,
                            _ => Attention::Additive,
                        },
                    },
                    s.seed,
                )?))
            }
        };
        if s.cell() == unfold::CellKind::Lstm && s.forget_bias != 0.0 {
            match &mut m {
                Model::Labeller(l) => l.rnn.set_forget_bias(s.forget_bias as f32)?,
                Model::Classifier(c) => c.rnn.set_forget_bias(s.forget_bias as f32)?,
                Model::Seq2Seq(q) => {
                    q.encoder.set_forget_bias(s.forget_bias as f32)?;
                    q.decoder.set_forget_bias(s.forget_bias as f32)?;
                }
            }
        }
        Ok(m)
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        match self {
            Model::Labeller(m) => m.num_params(),
            Model::Classifier(m) => m.num_params(),
            Model::Seq2Seq(m) => m.num_params(),
        }
    }

    /// Parameter names, shapes and values.
    pub fn params(&self) -> Vec<(String, Vec<usize>, &[f32])> {
        let (specs, slices) = match self {
            Model::Labeller(m) => (m.param_specs(), m.param_slices()),
            Model::Classifier(m) => (m.param_specs(), m.param_slices()),
            Model::Seq2Seq(m) => (m.param_specs(), m.param_slices()),
        };
        specs
            .into_iter()
            .zip(slices)
            .map(|(s, v)| (s.name, s.shape, v))
            .collect()
    }
}

/// Everything a run directory or checkpoint gives back.
pub struct Loaded {
    /// The checkpoint file read.
    pub path: PathBuf,
    /// The run's settings.
    pub settings: Settings,
    /// The model's shape.
    pub shape: Shape,
    /// The vocabulary of a symbol model (the target side of an encoder-decoder).
    pub vocab: Option<Vocab>,
    /// The source vocabulary of an encoder-decoder.
    pub src_vocab: Option<Vocab>,
    /// The input scaling of a real-valued model.
    pub scaler: Option<Scaler>,
    /// The trained model.
    pub model: Model,
    /// The checkpoint's tensors and metadata.
    pub file: TensorFile,
}

/// The checkpoint of a run directory (its latest), or the file itself.
pub fn checkpoint_path(arg: &Path) -> Result<PathBuf> {
    if arg.is_dir() {
        let p = arg.join(unfold::train::trainer::CHECKPOINT);
        if !p.exists() {
            return Err(BadInput(format!(
                "{}: a directory without {} (not a run directory)",
                arg.display(),
                unfold::train::trainer::CHECKPOINT
            ))
            .into());
        }
        Ok(p)
    } else if arg.exists() {
        Ok(arg.to_path_buf())
    } else {
        Err(BadInput(format!(
            "{}: no such run directory or checkpoint",
            arg.display()
        ))
        .into())
    }
}

/// Loads a run directory or checkpoint: the model is rebuilt from the checkpoint alone.
pub fn load(arg: &Path) -> Result<Loaded> {
    let path = checkpoint_path(arg)?;
    let file = TensorFile::read(&path).map_err(|e| BadInput(e.to_string()))?;
    let origin = path.display().to_string();
    let meta = |k: &str| {
        file.metadata.get(k).ok_or_else(|| {
            BadInput(format!(
                "{origin}: not an unfold run checkpoint (no {k} in its metadata)"
            ))
        })
    };
    let settings = Settings::from_toml(meta(META_SETTINGS)?, &origin)?;
    let shape = Shape::from_text(meta(META_SHAPE)?, &origin)?;
    let vocab = match file.metadata.get(META_VOCAB) {
        Some(v) => Some(Vocab::from_metadata(v).map_err(|e| BadInput(format!("{origin}: {e}")))?),
        None => None,
    };
    let src_vocab = match file.metadata.get(META_SRC_VOCAB) {
        Some(v) => Some(Vocab::from_metadata(v).map_err(|e| BadInput(format!("{origin}: {e}")))?),
        None => None,
    };
    let scaler = match file.metadata.get(META_SCALER) {
        Some(v) => Some(
            serde_json::from_str(v).map_err(|e| BadInput(format!("{origin}: bad scaler: {e}")))?,
        ),
        None => None,
    };
    let mut model = Model::build(&settings, &shape)?;
    let res = match &mut model {
        Model::Labeller(m) => file.load_params("model.", m),
        Model::Classifier(m) => file.load_params("model.", m),
        Model::Seq2Seq(m) => file.load_params("model.", m.as_mut()),
    };
    res.map_err(|e| BadInput(format!("{origin}: {e}")))
        .context("loading the model")?;
    Ok(Loaded {
        path,
        settings,
        shape,
        vocab,
        src_vocab,
        scaler,
        model,
        file,
    })
}
