//! The model of a run, built from its settings and task, and loaded back from a run directory
//! or checkpoint with nothing else.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use unfold::checkpoint::TensorFile;
use unfold::data::Vocab;
use unfold::layers::OutputKind;
use unfold::models::{
    AnyModel, Architecture, Attention, InputSpec, ModelKind, ModelSpec, SavedModel, Shape,
};

use crate::data::Scaler;
use crate::settings::Settings;
use crate::BadInput;

/// Metadata key of the class names of a tree run's labels (a word vocabulary).
pub const META_LABELS: &str = "unfold.labels";
/// Metadata key of the resolved settings (TOML) in a checkpoint.
pub const META_SETTINGS: &str = "unfold.settings";
use unfold::models::spec;
/// Metadata keys the library reads too (vocabularies).
pub use unfold::models::spec::{SRC_VOCAB_KEY as META_SRC_VOCAB, VOCAB_KEY as META_VOCAB};
/// Metadata key of the model's shape in checkpoints written before model specs were stored
/// (their model is rebuilt from the run's settings and this shape).
pub const META_SHAPE: &str = "unfold.shape";

/// A run's model: any architecture the library's [`ModelSpec`] describes.
pub type Model = AnyModel<f32>;

/// The architecture the settings ask for, in the given shape.
pub fn spec_of(s: &Settings, shape: &Shape) -> Result<ModelSpec> {
    let classifier = matches!(shape.kind, ModelKind::Classifier | ModelKind::Grid(_));
    if !classifier && (s.bidirectional || s.readout != "last") {
        return Err(BadInput(
            "--bidirectional and --readout apply to sequence classifiers (--ts, and the tasks \
             with one output per sequence): a model that predicts at every step cannot read \
             ahead, and an encoder-decoder's encoder always reads both ways"
                .into(),
        )
        .into());
    }
    if shape.kind == ModelKind::Seq2Seq && (s.deep_output > 0 || s.residual) {
        return Err(BadInput(
            "--deep-output and --residual apply to labellers and classifiers, not (yet) to an \
             encoder-decoder"
                .into(),
        )
        .into());
    }
    let arch = Architecture {
        cell: s.cell(),
        hidden: s.hidden,
        layers: s.layers,
        embed: s.embed,
        dropout: s.dropout,
        bidirectional: s.bidirectional,
        readout: s.readout(),
        attention: match s.attention.as_deref() {
            Some("none") => Attention::None,
            Some("multiplicative") => Attention::Multiplicative,
            _ => Attention::Additive,
        },
        deep_output: s.deep_output,
        residual: s.residual,
        // A tree run's `children` is resolved from its data before the model is built (see
        // `train`); an unresolved `auto` reads any number of children.
        children: s.tree_children(usize::MAX, true).map_err(BadInput)?,
        sweeps: s.sweeps,
        combine: s.grid_combine(),
        grid_kind: if s.renet {
            unfold::models::GridKind::ReNet
        } else {
            unfold::models::GridKind::Sweeps
        },
    };
    Ok(ModelSpec::for_shape(*shape, &arch)?)
}

/// Builds the model the settings ask for (initialised from the run's seed, with the LSTM
/// forget-gate bias the settings give).
pub fn build(s: &Settings, setup: &Shape) -> Result<Model> {
    let mut m = spec_of(s, setup)?.build(s.seed)?;
    let init = unfold::layers::RecurrentInit::parse(&s.init)
        .map_err(|e| BadInput(format!("--init: {e}")))?;
    m.initialise(init, s.seed.wrapping_add(0x1417))
        .map_err(|e| BadInput(format!("--init: {e}")))?;
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
    let bad = |e: unfold::Error| BadInput(format!("{origin}: {e}"));
    let vocab = spec::vocab_from_metadata(&file.metadata, META_VOCAB).map_err(bad)?;
    let src_vocab = spec::vocab_from_metadata(&file.metadata, META_SRC_VOCAB).map_err(bad)?;
    let scaler = spec::scaler_from_metadata(&file.metadata).map_err(bad)?;
    // The library rebuilds the model from the spec it stored; a checkpoint written before
    // specs were stored is rebuilt from its run settings and shape.
    let (model, shape) = if file.metadata.contains_key(unfold::models::spec::SPEC_KEY) {
        let saved = SavedModel::<f32>::from_file(&file)
            .map_err(|e| BadInput(format!("{origin}: {e}")))
            .context("loading the model")?;
        (saved.model, saved.spec.shape())
    } else {
        let shape = legacy_shape(meta(META_SHAPE)?, &origin, settings.embed)?;
        let mut model = build(&settings, &shape)?;
        file.load_params(unfold::models::spec::PARAM_PREFIX, &mut model)
            .map_err(|e| BadInput(format!("{origin}: {e}")))
            .context("loading the model")?;
        (model, shape)
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

/// The TOML form of a model's shape in checkpoints written before model specs were stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyShape {
    kind: String,
    input_symbols: usize,
    input_width: usize,
    output: String,
    output_width: usize,
    pad: Option<usize>,
}

/// Reads the shape of a checkpoint written before model specs were stored. Its embedding width
/// is not part of the text: the run's settings give it (`embed`).
fn legacy_shape(text: &str, origin: &str, embed: usize) -> Result<Shape> {
    let bad = |m: String| BadInput(format!("{origin}: bad model shape: {m}"));
    let t: LegacyShape = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    let kind = match t.kind.as_str() {
        "labeller" => ModelKind::Labeller,
        "classifier" => ModelKind::Classifier,
        "seq2seq" => ModelKind::Seq2Seq,
        k => return Err(bad(format!("unknown model kind {k}")).into()),
    };
    let input = if t.input_symbols > 0 {
        InputSpec::Symbols {
            vocab: t.input_symbols,
            dim: embed,
        }
    } else {
        InputSpec::Reals {
            width: t.input_width,
            project: None,
        }
    };
    let output = match t.output.as_str() {
        "categorical" => OutputKind::Categorical {
            classes: t.output_width,
            pad: t.pad,
        },
        "gaussian" => OutputKind::Gaussian {
            dim: t.output_width,
            learn_variance: false,
        },
        "bernoulli" => OutputKind::Bernoulli {
            dim: t.output_width,
        },
        o => return Err(bad(format!("unknown output {o}")).into()),
    };
    Ok(Shape {
        kind,
        input,
        output,
    })
}
