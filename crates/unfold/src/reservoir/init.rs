//! From reservoir to back-propagation: an engine RNN initialised from an echo state network.
//!
//! A single-layer ESN with leak rate 1, tanh units, no output feedback and a readout over its
//! state (and bias) computes exactly what a [`SequenceLabeller`] with a tanh RNN layer and a
//! linear Gaussian head computes: `h = tanh(W_in x + b + W h)`, `y = c + V h`.
//! [`labeller_from_esn`] copies the reservoir into the RNN's `W_ih`, `W_hh`, `b_ih` and the
//! ridge readout into the head, so that training every weight with BPTT starts from the ESN's
//! solution instead of from a random one (the "reservoir, then fine-tune" recipe).

use super::esn::{Esn, ReadoutKind};
use super::layer::Activation;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::OutputKind;
use crate::models::{InputSpec, ModelConfig, SequenceLabeller};
use crate::CellKind;

/// A tanh-RNN labeller whose forward pass equals the ESN's (up to the precision of `T`).
///
/// Needs one reservoir layer with leak rate 1 and tanh units, no output feedback, a per-step
/// readout, and a readout that does not read the input directly (`readout_input = false`): the
/// engine's head reads the recurrent state only.
pub fn labeller_from_esn<T: Float>(esn: &Esn) -> Result<SequenceLabeller<T>> {
    let c = &esn.config;
    let why = if esn.layers.len() != 1 {
        Some("it has more than one reservoir layer (the engine's head reads the top layer only)")
    } else if c.reservoir.leak_rate != 1.0 {
        Some("its leak rate is not 1 (the engine's RNN has no leaky integration)")
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
        cell: CellKind::RnnTanh,
        hidden: n,
        layers: 1,
        bidirectional: false,
        output: OutputKind::Gaussian {
            dim: o,
            learn_variance: false,
        },
    };
    let mut m = SequenceLabeller::<T>::new(cfg, c.seed)?;
    let conv = |v: &[f64]| -> Vec<T> { v.iter().map(|&x| T::from_f64(x)).collect() };
    let cell = m.rnn.cell_mut(0, 0);
    cell.w_ih = conv(&layer.w_in.to_dense());
    cell.w_hh = conv(&layer.w.to_dense());
    let bias = if layer.bias.is_empty() {
        vec![0.0; n]
    } else {
        layer.bias.clone()
    };
    if !cell.b_ih.is_empty() {
        cell.b_ih = conv(&bias);
        cell.b_hh = vec![T::ZERO; n];
    }
    let f = esn.features();
    let off = usize::from(c.readout_bias);
    for k in 0..o {
        let row = &esn.readout[k * f..(k + 1) * f];
        m.head.weight[k * n..(k + 1) * n].copy_from_slice(&conv(&row[off..off + n]));
        if !m.head.bias.is_empty() {
            m.head.bias[k] = T::from_f64(if off == 1 { row[0] } else { 0.0 });
        }
    }
    Ok(m)
}
