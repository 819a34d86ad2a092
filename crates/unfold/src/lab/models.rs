//! The lab's models: the chapter's remedies for long-term dependencies, each one recurrent
//! cell with its initialisation and training settings, all trained with the same budget.

use crate::error::{Error, Result};
use crate::layers::{CellKind, ClockSpec, DeepSpec, LeakSpec, RecurrentInit};

/// One contestant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabModel {
    /// A tanh RNN, PyTorch's initialisation (or the lab's `radius`), no clipping.
    Rnn,
    /// A ReLU RNN with identity recurrence (Le, Jaitly and Hinton 2015).
    Irnn,
    /// The tanh RNN with gradient clipping by norm.
    RnnClip,
    /// Leaky-integrator units with learned time constants.
    Leaky,
    /// The clockwork RNN (modules with periods 1, 2, 4, 8, ...).
    Clockwork,
    /// A deep transition (two tanh layers per step) with a shortcut.
    DeepTransition,
    /// LSTM with a unit forget-gate bias.
    Lstm,
    /// GRU.
    Gru,
    /// An echo state network: a fixed reservoir and a ridge readout (no gradient descent).
    Esn,
    /// A tanh RNN whose recurrent matrix starts as an echo-state reservoir, trained by BPTT.
    EsnRnn,
}

/// Every model, in the order the lab lists them.
pub const LAB_MODELS: [LabModel; 10] = [
    LabModel::Rnn,
    LabModel::Irnn,
    LabModel::RnnClip,
    LabModel::Leaky,
    LabModel::Clockwork,
    LabModel::DeepTransition,
    LabModel::Lstm,
    LabModel::Gru,
    LabModel::Esn,
    LabModel::EsnRnn,
];

/// How a trained contestant is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recipe {
    /// The cell.
    pub cell: CellKind,
    /// The recurrent initialisation.
    pub init: RecurrentInit,
    /// The LSTM's forget-gate bias, when set.
    pub forget_bias: Option<f64>,
    /// Clip gradients to this global norm.
    pub clip: Option<f64>,
}

impl LabModel {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LabModel::Rnn => "rnn",
            LabModel::Irnn => "irnn",
            LabModel::RnnClip => "rnn-clip",
            LabModel::Leaky => "leaky",
            LabModel::Clockwork => "clockwork",
            LabModel::DeepTransition => "dt",
            LabModel::Lstm => "lstm",
            LabModel::Gru => "gru",
            LabModel::Esn => "esn",
            LabModel::EsnRnn => "esn-rnn",
        }
    }

    /// One line on what it is.
    pub fn summary(self) -> &'static str {
        match self {
            LabModel::Rnn => "tanh RNN, PyTorch init, no clipping",
            LabModel::Irnn => "ReLU RNN, W_hh = I, biases 0 (IRNN)",
            LabModel::RnnClip => "tanh RNN, gradients clipped by norm",
            LabModel::Leaky => "leaky tanh units, learned leak rates in [0.02, 1]",
            LabModel::Clockwork => "clockwork RNN, module periods 1, 2, 4, 8, 16",
            LabModel::DeepTransition => "deep transition (2 tanh layers) with shortcut",
            LabModel::Lstm => "LSTM, forget-gate bias 1 (--forget-bias)",
            LabModel::Gru => "GRU",
            LabModel::Esn => "echo state network, ridge readout only",
            LabModel::EsnRnn => "tanh RNN, W_hh an echo-state reservoir, trained by BPTT",
        }
    }

    /// The model of a name.
    pub fn parse(s: &str) -> Result<Self> {
        LAB_MODELS
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "unknown lab model '{s}' (models: {})",
                    LAB_MODELS.map(|m| m.name()).join(", ")
                ))
            })
    }

    /// Whether it is trained by gradient descent (all but the ESN).
    pub fn trained(self) -> bool {
        self != LabModel::Esn
    }

    /// How it is built. `radius`: the spectral radius the plain tanh RNNs start at (`None`:
    /// PyTorch's initialisation); `clip`: the norm `rnn-clip` clips at.
    pub fn recipe(self, radius: Option<f64>, clip: f64) -> Result<Recipe> {
        let plain = radius.map_or(RecurrentInit::Default, RecurrentInit::Radius);
        let r = |cell, init| Recipe {
            cell,
            init,
            forget_bias: None,
            clip: None,
        };
        Ok(match self {
            LabModel::Rnn => r(CellKind::RnnTanh, plain),
            LabModel::Irnn => r(CellKind::RnnRelu, RecurrentInit::Identity { scale: 1.0 }),
            LabModel::RnnClip => Recipe {
                clip: Some(clip),
                ..r(CellKind::RnnTanh, plain)
            },
            LabModel::Leaky => r(CellKind::Leaky(LeakSpec::default()), RecurrentInit::Default),
            LabModel::Clockwork => r(
                CellKind::Clockwork(ClockSpec::new(&[1, 2, 4, 8, 16])?),
                RecurrentInit::Default,
            ),
            LabModel::DeepTransition => r(
                CellKind::DeepTransition(DeepSpec {
                    depth: 2,
                    shortcut: true,
                }),
                RecurrentInit::Default,
            ),
            LabModel::Lstm => Recipe {
                forget_bias: Some(1.0),
                ..r(CellKind::Lstm, RecurrentInit::Default)
            },
            LabModel::Gru => r(CellKind::Gru, RecurrentInit::Default),
            LabModel::Esn | LabModel::EsnRnn => r(
                CellKind::RnnTanh,
                RecurrentInit::EchoState {
                    radius: 0.95,
                    density: 0.1,
                },
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_recipes_build() {
        for m in LAB_MODELS {
            assert_eq!(LabModel::parse(m.name()).unwrap(), m);
            let r = m.recipe(Some(1.5), 1.0).unwrap();
            assert_eq!(r.clip.is_some(), m == LabModel::RnnClip);
        }
        assert!(LabModel::parse("transformer").is_err());
        assert_eq!(
            LabModel::Rnn.recipe(Some(1.5), 1.0).unwrap().init,
            RecurrentInit::Radius(1.5)
        );
    }
}
