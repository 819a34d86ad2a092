//! The chapter's models, each a composition of the layer contract (input layer, recurrent
//! layer, linear head, output distribution):
//!
//! - [`SequenceLabeller`]: pattern I, hidden-to-hidden recurrence with an output at every step;
//! - [`OutputFeedback`]: pattern II, the previous output (not the hidden state) feeds the hidden
//!   layer; trains in parallel over time under teacher forcing, runs free at inference, and
//!   supports scheduled sampling and free-running segments;
//! - [`SequenceClassifier`]: pattern III, one output for the whole sequence;
//! - [`TreeModel`]: a recursive network over trees, with outputs at the root or every node;
//! - [`GridModel`]: a two-dimensional recurrent network over images, with outputs per image or
//!   per pixel.
//!
//! All implement [`Model`] (over sequence batches: [`SequenceModel`]), which is what the
//! trainer drives. [`Generator`] samples
//! from a pattern-I language model one symbol at a time.

pub mod classifier;
pub mod feedback;
pub mod forecast;
pub mod grid;
pub mod input;
pub mod labeller;
pub mod lm_sampler;
pub mod model;
pub mod real_generator;
pub mod seq2seq;
pub mod shape;
pub mod spec;
pub mod tree;

pub use classifier::{Readout, SequenceClassifier};
pub use feedback::{FeedbackConfig, FeedbackStyle, OutputFeedback};
pub use grid::{
    GridConfig, GridKind, GridModel, GridReadout, GridStage, GridWorkspace, StageCache,
};
pub use input::{InputLayer, InputSpec};
pub use labeller::{CondMode, Conditioning, ModelConfig, SequenceLabeller};
pub use lm_sampler::{Generator, Sampling, Stop};
pub use model::{EvalSet, Model, SequenceModel, TrainContext};
pub use real_generator::{generator_sequences, RealGenerator, StopRule};
pub use seq2seq::{Attention, Decode, Seq2Seq, Seq2SeqConfig};
pub use shape::{ModelKind, Shape};
pub use spec::{load_model, AnyModel, Architecture, ModelSpec, SavedModel};
pub use tree::{TreeConfig, TreeModel, TreeOutputs, TreeWorkspace};

use crate::data::SeqBatch;
use crate::error::Result;
use crate::float::Float;
use crate::layers::linear::Linear;
use crate::layers::output::{OutputKind, Target};
use crate::layers::params::ParamSpec;
use crate::layers::{RecurrentConfig, RecurrentState};

/// How a context or conditioning vector starts a recurrent stack: the initial state
/// `h(0) = tanh(W c + b)` of every layer and direction from one vector `c` per sequence
/// (`[B, C]`; `proj` maps it to `[B, L*D*H]`), cell states zero.
pub(crate) struct InitProjection<'a, T> {
    /// The map `W c + b`.
    pub proj: &'a Linear<T>,
    /// The stack it starts.
    pub config: &'a RecurrentConfig,
    /// `[B, C]` the vectors.
    pub c: &'a [T],
    /// `B`.
    pub batch: usize,
}

/// The initial state of [`InitProjection`] into `state`; `pre` keeps the `tanh` outputs for
/// backward.
pub(crate) fn project_init<T: Float>(
    ip: &InitProjection<'_, T>,
    pre: &mut Vec<T>,
    state: &mut RecurrentState<T>,
) -> Result<()> {
    let (proj, config, c, b) = (ip.proj, ip.config, ip.c, ip.batch);
    let (n, h) = (config.num_layers * config.directions(), config.hidden_size);
    pre.resize(b * n * h, T::ZERO);
    proj.forward(c, b, pre)?;
    pre.iter_mut().for_each(|v| *v = v.tanh());
    *state = RecurrentState::zeros(config, b);
    for k in 0..n {
        for j in 0..b {
            state.h[(k * b + j) * h..][..h].copy_from_slice(&pre[(j * n + k) * h..][..h]);
        }
    }
    Ok(())
}

/// Backward of [`project_init`]: adds the projection's gradients given the gradient on the
/// initial state, and adds the gradient on `c` to `dc` when given.
pub(crate) fn project_init_backward<T: Float>(
    ip: &InitProjection<'_, T>,
    pre: &[T],
    dinit: &RecurrentState<T>,
    dpre: &mut Vec<T>,
    grads: &mut Linear<T>,
    dc: Option<&mut [T]>,
) -> Result<()> {
    let (proj, config, c, b) = (ip.proj, ip.config, ip.c, ip.batch);
    let (n, h) = (config.num_layers * config.directions(), config.hidden_size);
    dpre.resize(b * n * h, T::ZERO);
    for k in 0..n {
        for j in 0..b {
            for i in 0..h {
                let y = pre[(j * n + k) * h + i];
                dpre[(j * n + k) * h + i] = dinit.h[(k * b + j) * h + i] * (T::ONE - y * y);
            }
        }
    }
    proj.backward(c, dpre, b, grads, dc, true)
}

/// The batch's targets as a [`Target`] view.
pub(crate) fn target_view<T: Float>(batch: &SeqBatch<T>) -> Target<'_, T> {
    match &batch.target {
        crate::data::Values::Symbols(s) => Target::Symbols(s),
        crate::data::Values::Reals { data, .. } => Target::Reals(data),
    }
}

/// Number of rows an output of `kind` scores: masked-in rows whose target is not padding.
pub(crate) fn scored_rows<T: Float>(
    kind: OutputKind,
    target: &Target<'_, T>,
    mask: Option<&[bool]>,
    rows: usize,
) -> usize {
    let pad = match kind {
        OutputKind::Categorical { pad, .. } => pad,
        _ => None,
    };
    (0..rows)
        .filter(|&r| {
            mask.is_none_or(|m| m[r])
                && match (pad, target) {
                    (Some(p), Target::Symbols(s)) => s[r] != p,
                    _ => true,
                }
        })
        .count()
}

/// Joins the specs of named parts into one list with `part.` prefixes.
pub(crate) fn joined_specs(parts: &[(&str, Vec<ParamSpec>)]) -> Vec<ParamSpec> {
    parts
        .iter()
        .flat_map(|(p, specs)| {
            specs.iter().map(move |s| ParamSpec {
                name: format!("{p}.{}", s.name),
                shape: s.shape.clone(),
            })
        })
        .collect()
}

/// Implements [`Parameters`] for a model struct by listing its parts in order.
macro_rules! compose_parameters {
    ($ty:ident { $($field:ident : $name:literal),* $(,)? }) => {
        impl<T: Float> $crate::layers::params::Parameters<T> for $ty<T> {
            fn param_specs(&self) -> Vec<$crate::layers::params::ParamSpec> {
                $crate::models::joined_specs(&[
                    $(($name, self.$field.param_specs())),*
                ])
            }
            fn param_slices(&self) -> Vec<&[T]> {
                let mut v = Vec::new();
                $(v.extend(self.$field.param_slices());)*
                v
            }
            fn param_slices_mut(&mut self) -> Vec<&mut [T]> {
                let mut v = Vec::new();
                $(v.extend(self.$field.param_slices_mut());)*
                v
            }
        }
    };
}
pub(crate) use compose_parameters;
