//! The model of a run, built from its settings and task, and loaded back from a run directory
//! or checkpoint with nothing else.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use unfold::builtin::ModelKind;
use unfold::checkpoint::TensorFile;
use unfold::data::Vocab;
use unfold::models::{
    AnyModel, Attention, InputSpec, ModelConfig, ModelSpec, Readout, SavedModel, Seq2SeqConfig,
};

use crate::data::{Scaler, Shape};
use crate::settings::Settings;
use crate::BadInput;

/// Metadata key of the resolved settings (TOML) in a checkpoint.
pub const META_SETTINGS: &str = "unfold.settings";
/// Metadata keys the library reads too (vocabularies, input scaling).
pub use unfold::models::spec::{
    SCALER_KEY as META_SCALER, SRC_VOCAB_KEY as META_SRC_VOCAB, VOCAB_KEY as META_VOCAB,
};
/// Metadata key of the model's shape in a checkpoint.
pub const META_SHAPE: &str = "unfold.shape";

/// A run's model: any architecture the library's [`ModelSpec`] describes.
pub type Model = AnyModel<f32>;

/// The architecture the settings ask for, in the given shape.
pub fn spec_of(s: &Settings, setup: &Shape) -> Result<ModelSpec> {
    let input = match setup.input {
        InputSpec::Symbols { vocab, .. } => InputSpec::Symbols {
            vocab,
            dim: s.embed,
        },
        other => other,
    };
    let config = ModelConfig {
        input,
        cell: s.cell(),
        hidden: s.hidden,
        layers: s.layers,
        bidirectional: false,
        output: setup.output,
    };
    Ok(match setup.kind {
        ModelKind::Labeller => ModelSpec::Labeller {
            config,
            dropout: s.dropout,
            conditioning: None,
        },
        ModelKind::Classifier => ModelSpec::Classifier {
            config,
            readout: Readout::Last,
        },
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
            ModelSpec::Seq2Seq {
                config: Seq2SeqConfig {
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
            }
        }
    })
}

/// Builds the model the settings ask for (initialised from the run's seed, with the LSTM
/// forget-gate bias the settings give).
pub fn build(s: &Settings, setup: &Shape) -> Result<Model> {
    let mut m = spec_of(s, setup)?.build(s.seed)?;
    if s.cell() == unfold::CellKind::Lstm && s.forget_bias != 0.0 {
        m.set_forget_bias(s.forget_bias as f32)?;
    }
    Ok(m)
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
    // The library rebuilds the model from the spec it stored; a checkpoint written before
    // specs were stored is rebuilt from its run settings and shape.
    let model = if file.metadata.contains_key(unfold::models::spec::SPEC_KEY) {
        SavedModel::<f32>::from_file(&file)
            .map_err(|e| BadInput(format!("{origin}: {e}")))
            .context("loading the model")?
            .model
    } else {
        let mut model = build(&settings, &shape)?;
        file.load_params(unfold::models::spec::PARAM_PREFIX, &mut model)
            .map_err(|e| BadInput(format!("{origin}: {e}")))
            .context("loading the model")?;
        model
    };
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
