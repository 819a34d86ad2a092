//! Probes of the long-term dependency problem, for any model built on the cell contract: how
//! the loss gradient on the hidden state decays (or grows) with the lag, the singular values of
//! the Jacobian products `d h(t) / d h(t-k)`, the eigenvalues and spectral radius of the
//! recurrent weight matrix and of the linearised step. The trainer records them on request in
//! `metrics.jsonl` ([`crate::train::TrainConfig::probe`]); the lab (`unfold lab`) plots them.
//!
//! A model exposes what the probes read through [`crate::models::Model::probe_view`]: its top
//! recurrent layer, that layer's training cache, and the gradient of the loss on the layer's
//! outputs and final state after a `loss_and_grad`. The probes replay chosen sequences of the
//! batch through the top layer's cell (forward direction) with the cell's own step, then run
//! vector-Jacobian products backwards with the cell's step backward ([`trace`]): exact for
//! every cell, independent of which engine trained the batch, and cheap next to a training
//! step for the default numbers of sequences and positions.
//!
//! - [`gradient_by_lag`]: `||dL_τ/dh(τ-k)||` against the lag `k`, averaged over the output
//!   positions `τ` that carry a loss (one per sequence for a loss at the end);
//! - [`jacobian_singular_values`]: the singular values of `d h(T) / d h(T-k)` for chosen `k`;
//! - [`step_eigenvalues`]: the eigenvalues of the linearised step `d s(T) / d s(T-1)` over
//!   the whole state (h and, for an LSTM, c);
//! - [`weight_eigenvalues`]: the eigenvalues of a square recurrent matrix `W_hh`.

mod lag;
mod record;
mod spectrum;
mod trace;

#[cfg(test)]
mod tests;

pub use lag::{gradient_by_lag, LagProfile};
pub use record::{probe, ProbeConfig, ProbeRecord};
pub use spectrum::{
    jacobian_singular_values, spectral_radius_of, step_eigenvalues, weight_eigenvalues,
};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::{Cell, CellParams, Recurrent, RecurrentState, TrainCache};
use trace::Trace;

/// What the probes read from a model after a training forward and backward.
pub struct ProbeView<'a, T> {
    /// The model's top recurrent layer (the probes read its last stacked layer, forward
    /// direction).
    pub rnn: &'a Recurrent<T>,
    /// That layer's cache of the last training forward.
    pub cache: &'a TrainCache<T>,
    /// `[T, B, D*H]` gradient of the loss on the layer's outputs, when the loss reads them.
    pub dout: Option<&'a [T]>,
    /// Gradient of the loss on the layer's final state, when the loss reads it.
    pub dfinal: Option<&'a RecurrentState<T>>,
}

impl<'a, T: Float> ProbeView<'a, T> {
    /// The top layer's cell and its (forward direction's) parameters.
    fn top(&self) -> (&'a dyn Cell<T>, &'a CellParams<T>) {
        let l = self.rnn.config().num_layers - 1;
        (self.rnn.cell_fn(l), self.rnn.cell(l, 0))
    }

    /// Sequences in the batch.
    pub fn batch(&self) -> usize {
        self.cache.shape().1
    }

    /// Replays sequence `b` through the top layer's cell.
    fn replay(&self, b: usize) -> Result<Trace<T>> {
        let cfg = self.rnn.config();
        let (steps, batch) = self.cache.shape();
        if b >= batch {
            return Err(Error::InvalidCall(format!(
                "probe of sequence {b} in a batch of {batch}"
            )));
        }
        let l = cfg.num_layers - 1;
        let (cell, p) = self.top();
        let w = cfg.layer_input_size(l);
        let len = self.cache.lengths()[b].min(steps);
        let xs = self.cache.layer_input(cfg, l);
        let mut x = Vec::with_capacity(len * w);
        for t in 0..len {
            x.extend_from_slice(&xs[(t * batch + b) * w..(t * batch + b + 1) * w]);
        }
        let (h, e) = (cfg.hidden_size, cfg.extra_state_size());
        let idx = l * cfg.directions();
        let init = self.cache.initial_state();
        let mut row = init.h[(idx * batch + b) * h..(idx * batch + b + 1) * h].to_vec();
        row.extend_from_slice(&init.c[(idx * batch + b) * e..(idx * batch + b + 1) * e]);
        Ok(Trace::replay(cell, p, &x, &row))
    }

    /// The loss's gradients on the top layer's h in sequence `b`, by output position `τ`
    /// (ascending; positions with a zero gradient left out).
    fn seeds(&self, b: usize) -> Vec<(usize, Vec<T>)> {
        let cfg = self.rnn.config();
        let (steps, batch) = self.cache.shape();
        let (h, od) = (cfg.hidden_size, cfg.output_size());
        let len = self.cache.lengths()[b].min(steps);
        let mut seeds: Vec<(usize, Vec<T>)> = Vec::new();
        if let Some(d) = self.dout {
            for t in 0..len {
                let g = &d[(t * batch + b) * od..][..h];
                if g.iter().any(|v| *v != T::ZERO) {
                    seeds.push((t, g.to_vec()));
                }
            }
        }
        if let (Some(fin), true) = (self.dfinal, len > 0) {
            let idx = (cfg.num_layers - 1) * cfg.directions();
            let g = &fin.h[(idx * batch + b) * h..][..h];
            if g.iter().any(|v| *v != T::ZERO) {
                match seeds.last_mut() {
                    Some((t, v)) if *t == len - 1 => {
                        v.iter_mut().zip(g).for_each(|(a, &x)| *a += x);
                    }
                    _ => seeds.push((len - 1, g.to_vec())),
                }
            }
        }
        seeds
    }
}
