//! The input layer of a model: an embedding for symbols, a linear projection or nothing for
//! real-valued rows.

use crate::data::Values;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::embedding::Embedding;
use crate::layers::linear::Linear;
use crate::layers::params::{ParamSpec, Parameters};

/// What a model reads at each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InputSpec {
    /// Symbol ids from `0..vocab`, embedded into `dim` reals.
    Symbols {
        /// Vocabulary size.
        vocab: usize,
        /// Embedding width.
        dim: usize,
    },
    /// `width` reals per step, optionally projected linearly to `project` reals first.
    Reals {
        /// Reals per step.
        width: usize,
        /// Width of a learned linear projection, or `None` to feed the rows as they are.
        project: Option<usize>,
    },
}

/// The layer built from an [`InputSpec`].
#[derive(Debug, Clone, PartialEq)]
pub enum InputLayer<T> {
    /// Symbol embedding.
    Embedding(Embedding<T>),
    /// Linear projection of real rows.
    Linear(Linear<T>),
    /// Real rows fed as they are (`width` each).
    Identity(usize),
}

impl<T: Float> InputLayer<T> {
    /// Builds the layer with its default initialisation.
    pub fn new(spec: InputSpec, seed: u64) -> Result<Self> {
        Ok(match spec {
            InputSpec::Symbols { vocab, dim } => {
                InputLayer::Embedding(Embedding::new(vocab, dim, seed)?)
            }
            InputSpec::Reals {
                width,
                project: Some(p),
            } => InputLayer::Linear(Linear::new(width, p, true, seed)?),
            InputSpec::Reals {
                width,
                project: None,
            } => InputLayer::Identity(width),
        })
    }

    /// Zero parameters of the same shape.
    pub fn zeros_like(&self) -> Self {
        match self {
            InputLayer::Embedding(e) => InputLayer::Embedding(e.zeros_like()),
            InputLayer::Linear(l) => InputLayer::Linear(l.zeros_like()),
            InputLayer::Identity(w) => InputLayer::Identity(*w),
        }
    }

    /// Width of the rows it produces.
    pub fn out_width(&self) -> usize {
        match self {
            InputLayer::Embedding(e) => e.dim(),
            InputLayer::Linear(l) => l.out_features(),
            InputLayer::Identity(w) => *w,
        }
    }

    /// True when it has parameters that need the input gradient.
    pub fn trainable(&self) -> bool {
        !matches!(self, InputLayer::Identity(_))
    }

    /// Maps `rows` input rows to `[rows, out_width]`, in `buf` unless the rows pass as they are.
    pub fn forward<'a>(
        &'a self,
        input: &'a Values<T>,
        rows: usize,
        buf: &'a mut Vec<T>,
    ) -> Result<&'a [T]> {
        match (self, input) {
            (InputLayer::Embedding(e), Values::Symbols(ids)) => {
                buf.resize(rows * e.dim(), T::ZERO);
                e.forward(&ids[..rows], buf)?;
                Ok(&buf[..])
            }
            (InputLayer::Linear(l), Values::Reals { data, .. }) => {
                buf.resize(rows * l.out_features(), T::ZERO);
                l.forward(data, rows, buf)?;
                Ok(&buf[..])
            }
            (InputLayer::Identity(w), Values::Reals { width, data }) if w == width => Ok(data),
            _ => Err(Error::InvalidCall(
                "the batch's inputs do not match the model's input layer (symbols vs reals, or \
                 width)"
                    .into(),
            )),
        }
    }

    /// Adds the parameter gradients given the gradient `dout` on its output rows.
    pub fn backward(
        &self,
        input: &Values<T>,
        rows: usize,
        dout: &[T],
        grads: &mut InputLayer<T>,
    ) -> Result<()> {
        match (self, input, grads) {
            (InputLayer::Embedding(e), Values::Symbols(ids), InputLayer::Embedding(g)) => {
                e.backward(&ids[..rows], dout, g, None)
            }
            (InputLayer::Linear(l), Values::Reals { data, .. }, InputLayer::Linear(g)) => {
                l.backward(data, dout, rows, g, None, false)
            }
            (InputLayer::Identity(_), _, _) => Ok(()),
            _ => Err(Error::InvalidCall(
                "input gradient buffer does not match the input layer".into(),
            )),
        }
    }
}

impl<T: Float> Parameters<T> for InputLayer<T> {
    fn param_specs(&self) -> Vec<ParamSpec> {
        match self {
            InputLayer::Embedding(e) => e.param_specs(),
            InputLayer::Linear(l) => l.param_specs(),
            InputLayer::Identity(_) => Vec::new(),
        }
    }

    fn param_slices(&self) -> Vec<&[T]> {
        match self {
            InputLayer::Embedding(e) => e.param_slices(),
            InputLayer::Linear(l) => l.param_slices(),
            InputLayer::Identity(_) => Vec::new(),
        }
    }

    fn param_slices_mut(&mut self) -> Vec<&mut [T]> {
        match self {
            InputLayer::Embedding(e) => e.param_slices_mut(),
            InputLayer::Linear(l) => l.param_slices_mut(),
            InputLayer::Identity(_) => Vec::new(),
        }
    }
}
