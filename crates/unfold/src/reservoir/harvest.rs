//! Harvesting reservoir states: sequences advanced together in blocks (states `[N, B]`), the
//! per-step or pooled features they produce, the single-sequence pipeline that overlaps the
//! state updates with the Gram products, and per-step prediction and classification.

#![allow(clippy::needless_range_loop)]

use super::esn::{Esn, Pooling, ReadoutKind};
use super::fit::Example;
use super::readout::Gram;
use crate::error::{Error, Result};
use crate::rng::Rng;
use rayon::prelude::*;

/// Sequences advanced together in one block.
pub(crate) const BLOCK: usize = 32;
/// Rows buffered before they go into the Gram accumulator.
pub(crate) const CHUNK: usize = 512;

pub(crate) struct Accum {
    pub(crate) gram: Gram,
    x: Vec<f64>,
    y: Vec<f64>,
}

impl Accum {
    pub(crate) fn new(f: usize, o: usize) -> Self {
        Accum {
            gram: Gram::new(f, o),
            x: Vec::with_capacity(CHUNK * f),
            y: Vec::with_capacity(CHUNK * o),
        }
    }
    pub(crate) fn push(&mut self, row: &[f64], target: &[f64]) {
        self.x.extend_from_slice(row);
        self.y.extend_from_slice(target);
        if self.x.len() >= CHUNK * self.gram.features {
            self.flush();
        }
    }
    pub(crate) fn flush(&mut self) {
        // Shapes are consistent by construction.
        let _ = self.gram.add_rows(&self.x, &self.y);
        self.x.clear();
        self.y.clear();
    }
}

impl Esn {
    /// Runs `seqs` together from zero states and calls `sink(j, t, features)` for every step of
    /// every sequence. With `teacher`, the fed-back output at step `t` is the target of `t - 1`.
    pub(crate) fn harvest_block(
        &self,
        seqs: &[Example],
        steps: &[usize],
        noise: Option<&mut Rng>,
        sink: &mut dyn FnMut(usize, usize, &[f64]),
    ) {
        let b = seqs.len();
        let (d, o) = (self.inputs, self.outputs);
        let tmax = steps.iter().copied().max().unwrap_or(0);
        let mut xs: Vec<Vec<f64>> = self
            .layers
            .iter()
            .map(|l| vec![0.0; l.units() * b])
            .collect();
        let maxn = self.layers.iter().map(|l| l.units()).max().unwrap_or(0);
        let mut pre = vec![0.0; maxn * b];
        let mut ub = vec![0.0; d * b];
        let mut yb = vec![0.0; o * b];
        let mut row = vec![0.0; self.step_features()];
        let fb = self.has_feedback();
        let mut noise = noise;
        for t in 0..tmax {
            for (j, s) in seqs.iter().enumerate() {
                let live = t < steps[j];
                for k in 0..d {
                    ub[k * b + j] = if live { s.input[t * d + k] } else { 0.0 };
                }
                if fb {
                    for k in 0..o {
                        yb[k * b + j] = if t >= 1 && t - 1 < steps[j] {
                            s.target[(t - 1) * o + k]
                        } else {
                            0.0
                        };
                    }
                }
            }
            for l in 0..self.layers.len() {
                let (prev, cur) = xs.split_at_mut(l);
                let input = if l == 0 { &ub[..] } else { &prev[l - 1][..] };
                self.layers[l].step(&mut cur[0], input, &yb, b, &mut pre, noise.as_deref_mut());
            }
            for j in 0..b {
                if t < steps[j] {
                    self.write_row(&xs, &ub, j, b, &mut row);
                    sink(j, t, &row);
                }
            }
        }
    }

    /// Harvests one block of sequences on this thread while another thread folds the finished
    /// chunks of rows into the Gram accumulators (serial products), so the sequential state
    /// updates and the products overlap.
    pub(crate) fn harvest_pipelined(
        &self,
        data: &[Example],
        steps: &[usize],
        valid_seq: &[bool],
        valid_from: usize,
    ) -> Result<(Gram, Gram)> {
        use std::sync::mpsc::sync_channel;
        type Chunk = (Vec<f64>, Vec<f64>);
        let (f, o) = (self.features(), self.outputs);
        let washout = self.config.washout;
        let (full_tx, full_rx) = sync_channel::<(Chunk, bool)>(2);
        let (empty_tx, empty_rx) = sync_channel::<Chunk>(6);
        let fresh = || (Vec::with_capacity(CHUNK * f), Vec::with_capacity(CHUNK * o));
        std::thread::scope(|sc| {
            let consumer = sc.spawn(move || -> Result<(Gram, Gram)> {
                let _serial = crate::kernels::gemm::serial_scope();
                let (mut train, mut valid) = (Gram::new(f, o), Gram::new(f, o));
                for ((mut x, mut y), is_valid) in full_rx {
                    let g = if is_valid { &mut valid } else { &mut train };
                    g.add_rows(&x, &y)?;
                    x.clear();
                    y.clear();
                    let _ = empty_tx.try_send((x, y));
                }
                Ok((train, valid))
            });
            // Never wait for an empty buffer (the consumer frees one only after it received a
            // full one); the bounded queue of full chunks is what holds the producer back.
            let take = || empty_rx.try_recv().unwrap_or_else(|_| fresh());
            let mut cur = [take(), take()];
            let mut rng = self.block_rng(0);
            let noise = (self.config.reservoir.noise > 0.0).then_some(&mut rng);
            self.harvest_block(data, steps, noise, &mut |j, t, row| {
                if t < washout {
                    return;
                }
                let v = usize::from(valid_seq[j] || t >= valid_from);
                cur[v].0.extend_from_slice(row);
                cur[v]
                    .1
                    .extend_from_slice(&data[j].target[t * o..(t + 1) * o]);
                if cur[v].0.len() >= CHUNK * f {
                    let done = std::mem::replace(&mut cur[v], take());
                    let _ = full_tx.send((done, v == 1));
                }
            });
            for (v, c) in cur.into_iter().enumerate() {
                if !c.0.is_empty() {
                    let _ = full_tx.send((c, v == 1));
                }
            }
            drop(full_tx);
            consumer
                .join()
                .unwrap_or_else(|_| Err(Error::Numerical("the readout accumulator failed".into())))
        })
    }

    /// The noise generator of the block starting at sequence `start`.
    pub(crate) fn block_rng(&self, start: usize) -> Rng {
        Rng::new(self.config.seed ^ (start as u64).wrapping_mul(0x9e37_79b9))
    }

    /// Pooled features `[b, F]` of a block of sequences.
    pub(crate) fn pool_block(
        &self,
        seqs: &[Example],
        steps: &[usize],
        p: Pooling,
        noise: Option<&mut Rng>,
    ) -> Vec<f64> {
        let b = seqs.len();
        let sf = self.step_features();
        let bias = usize::from(self.config.readout_bias);
        let body = sf - bias;
        let f = self.features();
        let washout = self.config.washout;
        let mut sums = vec![0.0; b * body];
        let mut counts = vec![0usize; b];
        let mut lasts = vec![0.0; b * body];
        self.harvest_block(seqs, steps, noise, &mut |j, t, row| {
            // Short sequences keep at least their last step.
            if t >= washout || t + 1 == steps[j] {
                for i in 0..body {
                    sums[j * body + i] += row[bias + i];
                }
                counts[j] += 1;
            }
            if t + 1 == steps[j] {
                lasts[j * body..(j + 1) * body].copy_from_slice(&row[bias..]);
            }
        });
        let mut out = vec![0.0; b * f];
        for j in 0..b {
            let o = &mut out[j * f..(j + 1) * f];
            if bias == 1 {
                o[0] = 1.0;
            }
            let mean = |i: usize| sums[j * body + i] / counts[j].max(1) as f64;
            for i in 0..body {
                match p {
                    Pooling::Last => o[bias + i] = lasts[j * body + i],
                    Pooling::Mean => o[bias + i] = mean(i),
                    Pooling::LastAndMean => {
                        o[bias + i] = lasts[j * body + i];
                        o[bias + body + i] = mean(i);
                    }
                }
            }
        }
        out
    }

    /// Per-step outputs for each `[T, D]` input sequence, from zero states. With feedback the
    /// model's own outputs are fed back.
    pub fn predict(&self, inputs: &[&[f64]]) -> Result<Vec<Vec<f64>>> {
        if self.kind != ReadoutKind::PerStep {
            return Err(Error::InvalidCall("use classify for a pooled ESN".into()));
        }
        if self.has_feedback() || self.inputs == 0 {
            return inputs
                .iter()
                .map(|x| {
                    let mut st = self.state();
                    self.run(&mut st, x, None)
                })
                .collect();
        }
        let o = self.outputs;
        self.map_blocks(inputs, false, |seqs, steps| {
            let mut outs: Vec<Vec<f64>> = steps.iter().map(|&t| vec![0.0; t * o]).collect();
            self.harvest_block(seqs, steps, None, &mut |j, t, row| {
                self.apply_readout(row, &mut outs[j][t * o..(t + 1) * o]);
            });
            outs
        })
    }

    /// Readout scores (`[O]`) of each `[T, D]` input sequence for a pooled ESN.
    pub fn classify(&self, inputs: &[&[f64]]) -> Result<Vec<Vec<f64>>> {
        let ReadoutKind::Pooled(p) = self.kind else {
            return Err(Error::InvalidCall("classify needs a pooled ESN".into()));
        };
        let (f, o) = (self.features(), self.outputs);
        self.map_blocks(inputs, true, |seqs, steps| {
            self.pool_block(seqs, steps, p, None)
                .chunks_exact(f)
                .map(|row| {
                    let mut out = vec![0.0; o];
                    self.apply_readout(row, &mut out);
                    out
                })
                .collect()
        })
    }

    /// Checks `[T, D]` input sequences (finite; non-empty when `non_empty`), then runs `work` on
    /// blocks of them in parallel (with each sequence's number of steps) and concatenates the
    /// per-sequence results in order.
    fn map_blocks(
        &self,
        inputs: &[&[f64]],
        non_empty: bool,
        work: impl Fn(&[Example], &[usize]) -> Vec<Vec<f64>> + Sync,
    ) -> Result<Vec<Vec<f64>>> {
        let d = self.inputs.max(1);
        for (i, x) in inputs.iter().enumerate() {
            if (non_empty && x.is_empty())
                || !x.len().is_multiple_of(d)
                || x.iter().any(|v| !v.is_finite())
            {
                return Err(Error::InvalidData(format!(
                    "input sequence {i} is not a finite{} [T, {d}] array",
                    if non_empty { " non-empty" } else { "" }
                )));
            }
        }
        let blocks: Vec<usize> = (0..inputs.len()).step_by(BLOCK).collect();
        let parts: Vec<Vec<Vec<f64>>> = blocks
            .par_iter()
            .map(|&start| {
                let end = (start + BLOCK).min(inputs.len());
                let seqs: Vec<Example> = inputs[start..end]
                    .iter()
                    .map(|x| Example {
                        input: x,
                        target: &[],
                    })
                    .collect();
                let steps: Vec<usize> = seqs.iter().map(|s| s.input.len() / d).collect();
                work(&seqs, &steps)
            })
            .collect();
        Ok(parts.into_iter().flatten().collect())
    }
}
