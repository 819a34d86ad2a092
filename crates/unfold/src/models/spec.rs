//! Models that rebuild from their checkpoint. A model's architecture is a typed, versioned
//! [`ModelSpec`] (serde), stored as JSON in the checkpoint metadata under [`SPEC_KEY`]; with
//! the vocabularies and the input scaling stored beside it, [`load_model`] rebuilds any saved
//! model from the file alone, with no command-line code.
//!
//! ```no_run
//! # fn main() -> unfold::Result<()> {
//! let saved = unfold::models::load_model::<f32>("runs/reber/checkpoint.safetensors")?;
//! println!("{} parameters", unfold::Parameters::num_params(&saved.model));
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checkpoint::TensorFile;
use crate::data::{Scaler, Vocab};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::grid::{Combine, GridCell};
use crate::layers::output::OutputKind;
use crate::layers::params::{ParamSpec, Parameters};
use crate::layers::tree::{Children, TreeCell};
use crate::layers::CellKind;
use crate::layers::RecurrentInit;
use crate::models::{
    Attention, Conditioning, GridConfig, GridKind, GridModel, InputSpec, ModelConfig, ModelKind,
    Readout, Seq2Seq, Seq2SeqConfig, SequenceClassifier, SequenceLabeller, Shape, TreeConfig,
    TreeModel,
};

/// Metadata key of the model spec (JSON of [`SavedSpec`]).
pub const SPEC_KEY: &str = "unfold.model";
/// Metadata key of the vocabulary of a symbol model (the target side of an encoder-decoder).
pub const VOCAB_KEY: &str = "unfold.vocab";
/// Metadata key of the source vocabulary of an encoder-decoder.
pub const SRC_VOCAB_KEY: &str = "unfold.src_vocab";
/// Metadata key of the input scaling (JSON of [`Scaler`]).
pub const SCALER_KEY: &str = "unfold.scaler";
/// Prefix of the model's tensors in a checkpoint.
pub const PARAM_PREFIX: &str = "model.";
/// The version of the spec format this release writes and reads.
pub const SPEC_VERSION: u32 = 1;

/// The architecture of a saved model: everything needed to build it again (its parameters
/// then come from the checkpoint's tensors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    /// Pattern I: an output at every step ([`SequenceLabeller`]).
    Labeller {
        /// Input, cell, sizes and output.
        config: ModelConfig,
        /// Dropout between stacked layers in training.
        #[serde(default)]
        dropout: f64,
        /// Conditioning on a fixed vector, if any.
        #[serde(default)]
        conditioning: Option<Conditioning>,
    },
    /// Pattern III: one output per sequence ([`SequenceClassifier`]).
    Classifier {
        /// Input, cell, sizes and output.
        config: ModelConfig,
        /// How the sequence is summarised.
        readout: Readout,
    },
    /// Encoder-decoder ([`Seq2Seq`]).
    Seq2Seq {
        /// Both sides' architecture.
        config: Seq2SeqConfig,
    },
    /// A recursive network over trees ([`TreeModel`]).
    Tree {
        /// Input, composition, sizes and output.
        config: TreeConfig,
    },
    /// A two-dimensional recurrent network over images ([`GridModel`]).
    Grid {
        /// Channels, cell, sweeps, sizes, read-out and output.
        config: GridConfig,
    },
}

/// The choices a user makes about a model beyond its [`Shape`] (which the data decide):
/// what [`ModelSpec::for_shape`] combines with a shape into a spec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Architecture {
    /// The recurrent cell.
    pub cell: CellKind,
    /// Hidden units per layer and direction.
    pub hidden: usize,
    /// Stacked recurrent layers.
    pub layers: usize,
    /// Embedding width of symbol inputs.
    pub embed: usize,
    /// Dropout between stacked layers in training (labellers).
    pub dropout: f64,
    /// Read the sequence in both directions (classifiers; an encoder-decoder's encoder always
    /// is).
    pub bidirectional: bool,
    /// How a classifier summarises the sequence.
    pub readout: Readout,
    /// An encoder-decoder's attention.
    pub attention: Attention,
    /// Extra tanh layers before the output map of a labeller or classifier (a deep output).
    pub deep_output: usize,
    /// Residual connections between stacked layers of a labeller or classifier.
    pub residual: bool,
    /// How a tree model reads a node's children.
    pub children: Children,
    /// Corners a 2-D layer sweeps from (1, 2 or 4).
    pub sweeps: usize,
    /// How a 2-D layer's sweeps combine.
    pub combine: Combine,
    /// 2-D sweeps or ReNet layers over images.
    pub grid_kind: GridKind,
}

impl Architecture {
    /// A one-layer model of `hidden` units of `cell`, embedding 16, no dropout, one direction,
    /// the last state read out, additive attention, a linear output map.
    pub fn new(cell: CellKind, hidden: usize) -> Self {
        Architecture {
            cell,
            hidden,
            layers: 1,
            embed: 16,
            dropout: 0.0,
            bidirectional: false,
            readout: Readout::Last,
            attention: Attention::Additive,
            deep_output: 0,
            residual: false,
            children: Children::Sum,
            sweeps: 4,
            combine: Combine::Concat,
            grid_kind: GridKind::Sweeps,
        }
    }
}

/// What [`SPEC_KEY`] holds: the spec with its format version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSpec {
    /// [`SPEC_VERSION`] of the release that wrote it.
    pub version: u32,
    /// The architecture.
    pub model: ModelSpec,
}

/// Any model a [`ModelSpec`] describes.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyModel<T> {
    /// Output at every step (language models, tagging, forecasting).
    Labeller(SequenceLabeller<T>),
    /// One output per sequence.
    Classifier(SequenceClassifier<T>),
    /// Encoder-decoder.
    Seq2Seq(Box<Seq2Seq<T>>),
    /// A recursive network over trees.
    Tree(TreeModel<T>),
    /// A two-dimensional recurrent network over images.
    Grid(GridModel<T>),
}

impl ModelSpec {
    /// A new model of this architecture, initialised from `seed`.
    pub fn build<T: Float>(&self, seed: u64) -> Result<AnyModel<T>> {
        Ok(match self {
            ModelSpec::Labeller {
                config,
                dropout,
                conditioning,
            } => {
                let mut m = match conditioning {
                    Some(c) => SequenceLabeller::conditioned(*config, *c, seed)?,
                    None => SequenceLabeller::new(*config, seed)?,
                };
                m.set_dropout(*dropout)?;
                AnyModel::Labeller(m)
            }
            ModelSpec::Classifier { config, readout } => {
                AnyModel::Classifier(SequenceClassifier::new(*config, *readout, seed)?)
            }
            ModelSpec::Seq2Seq { config } => {
                AnyModel::Seq2Seq(Box::new(Seq2Seq::new(*config, seed)?))
            }
            ModelSpec::Tree { config } => AnyModel::Tree(TreeModel::new(*config, seed)?),
            ModelSpec::Grid { config } => AnyModel::Grid(GridModel::new(*config, seed)?),
        })
    }

    /// The spec of a model of the given shape (what the data need) and architecture (what
    /// the user chose). A symbol input gets the architecture's embedding width.
    pub fn for_shape(shape: Shape, arch: &Architecture) -> Result<ModelSpec> {
        let input = match shape.input {
            InputSpec::Symbols { vocab, .. } => InputSpec::Symbols {
                vocab,
                dim: arch.embed,
            },
            other => other,
        };
        let config = ModelConfig {
            input,
            cell: arch.cell,
            hidden: arch.hidden,
            layers: arch.layers,
            bidirectional: false,
            output: shape.output,
            deep_output: arch.deep_output,
            residual: arch.residual,
        };
        Ok(match shape.kind {
            ModelKind::Grid(readout) => {
                let InputSpec::Reals { width, .. } = shape.input else {
                    return Err(Error::InvalidConfig(
                        "a 2-D network reads real pixel values".into(),
                    ));
                };
                ModelSpec::Grid {
                    config: GridConfig {
                        channels: width,
                        cell: match arch.cell {
                            CellKind::RnnTanh => GridCell::Rnn,
                            CellKind::Lstm => GridCell::Lstm,
                            other => {
                                return Err(Error::InvalidConfig(format!(
                                    "a 2-D network sweeps with rnn or lstm, not {}",
                                    other.name()
                                )))
                            }
                        },
                        hidden: arch.hidden,
                        layers: arch.layers,
                        sweeps: arch.sweeps,
                        combine: arch.combine,
                        deep_output: arch.deep_output,
                        output: shape.output,
                        readout,
                        kind: arch.grid_kind,
                    },
                }
            }
            ModelKind::Tree(outputs) => ModelSpec::Tree {
                config: TreeConfig {
                    input,
                    cell: match arch.cell {
                        CellKind::RnnTanh => TreeCell::Rnn,
                        CellKind::Lstm => TreeCell::Lstm,
                        other => {
                            return Err(Error::InvalidConfig(format!(
                                "a tree model composes with rnn or lstm, not {}",
                                other.name()
                            )))
                        }
                    },
                    children: arch.children,
                    hidden: arch.hidden,
                    deep_output: arch.deep_output,
                    output: shape.output,
                    outputs,
                },
            },
            ModelKind::Labeller => ModelSpec::Labeller {
                config,
                dropout: arch.dropout,
                conditioning: None,
            },
            ModelKind::Classifier => ModelSpec::Classifier {
                config: ModelConfig {
                    bidirectional: arch.bidirectional,
                    ..config
                },
                readout: arch.readout,
            },
            ModelKind::Seq2Seq => {
                let (
                    InputSpec::Symbols { vocab: src, .. },
                    OutputKind::Categorical { classes, .. },
                ) = (shape.input, shape.output)
                else {
                    return Err(Error::InvalidConfig(
                        "an encoder-decoder reads and writes symbols".into(),
                    ));
                };
                ModelSpec::Seq2Seq {
                    config: Seq2SeqConfig {
                        src_vocab: src,
                        tgt_vocab: classes,
                        embed: arch.embed,
                        cell: arch.cell,
                        hidden: arch.hidden,
                        layers: arch.layers,
                        bidirectional: true,
                        context_init: true,
                        context_every_step: false,
                        attention: arch.attention,
                    },
                }
            }
        })
    }

    /// The recurrent cell.
    pub fn cell(&self) -> CellKind {
        match self {
            ModelSpec::Labeller { config, .. } | ModelSpec::Classifier { config, .. } => {
                config.cell
            }
            ModelSpec::Seq2Seq { config } => config.cell,
            ModelSpec::Tree { config } => match config.cell {
                crate::layers::tree::TreeCell::Rnn => CellKind::RnnTanh,
                crate::layers::tree::TreeCell::Lstm => CellKind::Lstm,
            },
            ModelSpec::Grid { config } => match config.cell {
                GridCell::Rnn => CellKind::RnnTanh,
                GridCell::Lstm => CellKind::Lstm,
            },
        }
    }

    /// The metadata entry that stores this spec.
    pub fn metadata_entry(&self) -> (String, String) {
        let saved = SavedSpec {
            version: SPEC_VERSION,
            model: self.clone(),
        };
        let json = serde_json::to_string(&saved).expect("a spec always serialises");
        (SPEC_KEY.to_string(), json)
    }

    /// Reads the spec stored in checkpoint metadata; a missing entry, a newer version or a
    /// malformed one is a clear error.
    pub fn from_metadata(meta: &BTreeMap<String, String>) -> Result<Self> {
        let text = meta.get(SPEC_KEY).ok_or_else(|| {
            Error::CheckpointMismatch(format!(
                "no model spec ({SPEC_KEY}) in its metadata: not an unfold model checkpoint, or \
                 one written before model specs were stored (the `unfold` command still loads a \
                 run directory of that kind from its settings)"
            ))
        })?;
        let saved: SavedSpec = serde_json::from_str(text)
            .map_err(|e| Error::CheckpointMismatch(format!("malformed model spec: {e}")))?;
        if saved.version > SPEC_VERSION {
            return Err(Error::CheckpointMismatch(format!(
                "model spec version {} is newer than this release reads ({SPEC_VERSION})",
                saved.version
            )));
        }
        Ok(saved.model)
    }
}

impl<T: Float> AnyModel<T> {
    /// Applies a recurrent initialisation ([`RecurrentInit`]) to every recurrent layer over
    /// time (the encoder's and the decoder's of an encoder-decoder), drawing from `seed`.
    /// Trees and grids take only the default.
    pub fn initialise(&mut self, init: RecurrentInit, seed: u64) -> Result<()> {
        match self {
            AnyModel::Labeller(m) => m.rnn.initialise(init, seed),
            AnyModel::Classifier(m) => m.rnn.initialise(init, seed),
            AnyModel::Seq2Seq(m) => {
                m.encoder.initialise(init, seed)?;
                m.decoder.initialise(init, seed.wrapping_add(1))
            }
            AnyModel::Tree(_) | AnyModel::Grid(_) if init == RecurrentInit::Default => Ok(()),
            AnyModel::Tree(_) | AnyModel::Grid(_) => Err(Error::InvalidConfig(format!(
                "the {} initialisation applies to recurrent layers over time, not to trees or \
                 grids",
                init.name()
            ))),
        }
    }

    /// Sets an LSTM's initial forget-gate bias (every recurrent layer of the model); see
    /// [`crate::layers::Recurrent::set_forget_bias`].
    pub fn set_forget_bias(&mut self, value: T) -> Result<()> {
        match self {
            AnyModel::Labeller(m) => m.rnn.set_forget_bias(value),
            AnyModel::Classifier(m) => m.rnn.set_forget_bias(value),
            AnyModel::Seq2Seq(m) => {
                m.encoder.set_forget_bias(value)?;
                m.decoder.set_forget_bias(value)
            }
            AnyModel::Tree(m) => {
                m.tree.set_forget_bias(value);
                Ok(())
            }
            AnyModel::Grid(m) => m.set_forget_bias(value),
        }
    }

    /// Parameter names, shapes and values.
    pub fn params(&self) -> Vec<(String, Vec<usize>, &[T])> {
        self.param_specs()
            .into_iter()
            .zip(self.param_slices())
            .map(|(s, v)| (s.name, s.shape, v))
            .collect()
    }
}

impl<T: Float> Parameters<T> for AnyModel<T> {
    fn param_specs(&self) -> Vec<ParamSpec> {
        match self {
            AnyModel::Labeller(m) => m.param_specs(),
            AnyModel::Classifier(m) => m.param_specs(),
            AnyModel::Seq2Seq(m) => m.param_specs(),
            AnyModel::Tree(m) => m.param_specs(),
            AnyModel::Grid(m) => m.param_specs(),
        }
    }
    fn param_slices(&self) -> Vec<&[T]> {
        match self {
            AnyModel::Labeller(m) => m.param_slices(),
            AnyModel::Classifier(m) => m.param_slices(),
            AnyModel::Seq2Seq(m) => m.param_slices(),
            AnyModel::Tree(m) => m.param_slices(),
            AnyModel::Grid(m) => m.param_slices(),
        }
    }
    fn param_slices_mut(&mut self) -> Vec<&mut [T]> {
        match self {
            AnyModel::Labeller(m) => m.param_slices_mut(),
            AnyModel::Classifier(m) => m.param_slices_mut(),
            AnyModel::Seq2Seq(m) => m.param_slices_mut(),
            AnyModel::Tree(m) => m.param_slices_mut(),
            AnyModel::Grid(m) => m.param_slices_mut(),
        }
    }
}

/// A model loaded from its checkpoint, with what it needs to read real data.
#[derive(Debug, Clone)]
pub struct SavedModel<T> {
    /// The architecture.
    pub spec: ModelSpec,
    /// The model, with the checkpoint's parameters.
    pub model: AnyModel<T>,
    /// The vocabulary of a symbol model (the target side of an encoder-decoder).
    pub vocab: Option<Vocab>,
    /// The source vocabulary of an encoder-decoder.
    pub src_vocab: Option<Vocab>,
    /// The input scaling of a model of real values.
    pub scaler: Option<Scaler>,
    /// All of the checkpoint's metadata (training step, settings, ...).
    pub metadata: BTreeMap<String, String>,
}

impl<T: Float> SavedModel<T> {
    /// Rebuilds the model stored in `file` (tensors and metadata already read).
    pub fn from_file(file: &TensorFile) -> Result<Self> {
        let spec = ModelSpec::from_metadata(&file.metadata)?;
        let mut model = spec.build::<T>(0)?;
        file.load_params(PARAM_PREFIX, &mut model)?;
        Ok(SavedModel {
            spec,
            model,
            vocab: vocab_from_metadata(&file.metadata, VOCAB_KEY)?,
            src_vocab: vocab_from_metadata(&file.metadata, SRC_VOCAB_KEY)?,
            scaler: scaler_from_metadata(&file.metadata)?,
            metadata: file.metadata.clone(),
        })
    }

    /// Writes the model as a checkpoint [`load_model`] reads: its tensors under
    /// [`PARAM_PREFIX`] (PyTorch's names) and the metadata of [`SavedModel::metadata_entries`]
    /// besides `self.metadata` (atomically: a temporary file, then a rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut file = TensorFile::new();
        file.insert_params(PARAM_PREFIX, &self.model);
        file.metadata = self.metadata.clone();
        let entries = Self::metadata_entries(
            &self.spec,
            self.vocab.as_ref(),
            self.src_vocab.as_ref(),
            self.scaler.as_ref(),
        );
        file.metadata.extend(entries);
        file.write(path)
    }

    /// The metadata entries that let [`load_model`] rebuild this model: the spec, the
    /// vocabularies and the scaling.
    pub fn metadata_entries(
        spec: &ModelSpec,
        vocab: Option<&Vocab>,
        src_vocab: Option<&Vocab>,
        scaler: Option<&Scaler>,
    ) -> Vec<(String, String)> {
        let mut v = vec![spec.metadata_entry()];
        if let Some(x) = vocab {
            v.push((VOCAB_KEY.to_string(), x.to_metadata()));
        }
        if let Some(x) = src_vocab {
            v.push((SRC_VOCAB_KEY.to_string(), x.to_metadata()));
        }
        if let Some(x) = scaler {
            v.push(scaler_entry(x));
        }
        v
    }
}

/// The metadata entry ([`SCALER_KEY`]) that stores an input scaling.
pub fn scaler_entry(scaler: &Scaler) -> (String, String) {
    let json = serde_json::to_string(scaler).expect("a scaler always serialises");
    (SCALER_KEY.to_string(), json)
}

/// The input scaling stored in checkpoint metadata, if there is one; a malformed one is an
/// error.
pub fn scaler_from_metadata(meta: &BTreeMap<String, String>) -> Result<Option<Scaler>> {
    meta.get(SCALER_KEY)
        .map(|v| {
            serde_json::from_str(v)
                .map_err(|e| Error::CheckpointMismatch(format!("malformed scaler: {e}")))
        })
        .transpose()
}

/// The vocabulary stored under `key` ([`VOCAB_KEY`] or [`SRC_VOCAB_KEY`]), if there is one.
pub fn vocab_from_metadata(meta: &BTreeMap<String, String>, key: &str) -> Result<Option<Vocab>> {
    meta.get(key).map(|v| Vocab::from_metadata(v)).transpose()
}

/// Loads any model saved by unfold (a checkpoint file, e.g. a run directory's
/// `checkpoint.safetensors`) with nothing else.
pub fn load_model<T: Float>(path: impl AsRef<Path>) -> Result<SavedModel<T>> {
    let path = path.as_ref();
    let file = TensorFile::read(path)?;
    SavedModel::from_file(&file).map_err(|e| match e {
        Error::CheckpointMismatch(m) => {
            Error::CheckpointMismatch(format!("{}: {m}", path.display()))
        }
        other => other,
    })
}
