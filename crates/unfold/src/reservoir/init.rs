//! From reservoir to back-propagation: an engine RNN initialised from an echo state network.
//!
//! A single-layer ESN with tanh units, no output feedback and a readout over its state (and
//! bias) computes exactly what a [`SequenceLabeller`] with a recurrent layer and a linear
//! Gaussian head computes: with leak rate 1, `h = tanh(W_in x + b + W h)` (a tanh RNN layer);
//! with a leak rate `a < 1`, `h = (1 - a) h + a tanh(W_in x + b + W h)` (a leaky layer, its
//! leak fixed at `a`). `y = c + V h` either way. [`labeller_from_esn`] copies the reservoir into
//! the layer's input and recurrent weights and bias and the ridge readout into the head, so
//! that training every weight with BPTT starts from the ESN's solution instead of from a random
//! one (the "reservoir, then fine-tune" recipe).

use super::esn::{Esn, ReadoutKind};
use super::layer::Activation;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{LeakSpec, OutputKind};
use crate::models::{InputSpec, ModelConfig, SequenceLabeller};
use crate::CellKind;

/// A labeller whose forward pass equals the ESN's (up to the precision of `T`): a tanh RNN for
/// leak rate 1, a leaky layer with the ESN's leak rate (fixed) below it.
///
/// Needs one reservoir layer with tanh units, no output feedback, a per-step
/// readout, and a readout that does not read the input directly (`readout_input = false`): the
/// engine's head reads the recurrent state only.
pub fn labeller_from_esn<T: Float>(esn: &Esn) -> Result<SequenceLabeller<T>> {
    let c = &esn.config;
    let why = if esn.layers.len() != 1 {
        Some("it has more than one reservoir layer (the engine's head reads the top layer only)")
    } else if c.reservoir.activation != Activation::Tanh {
        Some("its units are not tanh")
    } else if esn.has_feedback() {
        Some("it has output feedback")
    } else if esn.kind != ReadoutKind::PerStep {
        Some("its readout is pooled")
    } else if c.readout_input {
        Some("its readout reads the input directly (set readout_input = false)")
    } else if esn.inputs == 0 {
        Some("it has no input")
    } else {
        None
    };
    if let Some(why) = why {
        return Err(Error::InvalidConfig(format!(
            "this ESN cannot become an RNN layer exactly: {why}"
        )));
    }
    let layer = &esn.layers[0];
    let (n, d, o) = (layer.units(), esn.inputs, esn.outputs);
    let cfg = ModelConfig {
        input: InputSpec::Reals {
            width: d,
            project: None,
        },
        cell: if c.reservoir.leak_rate == 1.0 {
            CellKind::RnnTanh
        } else {
            let a = c.reservoir.leak_rate;
            CellKind::Leaky(LeakSpec {
                min: a,
                max: a,
                learn: false,
            })
        },
        hidden: n,
        layers: 1,
        bidirectional: false,
        output: OutputKind::Gaussian {
            dim: o,
            learn_variance: false,
        },
        deep_output: 0,
        residual: false,
    };
    let mut m = SequenceLabeller::<T>::new(cfg, c.seed)?;
    let conv = |v: &[f64]| -> Vec<T> { v.iter().map(|&x| T::from_f64(x)).collect() };
    // Both cells store [W_ih, W_hh, b_ih (leaky: its one bias), b_hh (RNN: zero)].
    let cell = m.rnn.cell_mut(0, 0);
    cell.tensors[0] = conv(&layer.w_in.to_dense());
    cell.tensors[1] = conv(&layer.w.to_dense());
    let bias = if layer.bias.is_empty() {
        vec![0.0; n]
    } else {
        layer.bias.clone()
    };
    if let Some(b) = cell.tensors.get_mut(2) {
        *b = conv(&bias);
    }
    if let Some(b) = cell.tensors.get_mut(3) {
        b.fill(T::ZERO);
    }
    let f = esn.features();
    let off = usize::from(c.readout_bias);
    for k in 0..o {
        let row = &esn.readout[k * f..(k + 1) * f];
        m.head.out.weight[k * n..(k + 1) * n].copy_from_slice(&conv(&row[off..off + n]));
        if !m.head.out.bias.is_empty() {
            m.head.out.bias[k] = T::from_f64(if off == 1 { row[0] } else { 0.0 });
        }
    }
    Ok(m)
}
