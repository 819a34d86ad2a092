//! Harvesting reservoir states: sequences advanced together in blocks (states `[N, B]`), the
//! per-step or pooled features they produce, the single-sequence pipeline that overlaps the
//! state updates with the Gram products, and per-step prediction and classification.

#![allow(clippy::needless_range_loop)]

use super::esn::{Esn, Pooling, ReadoutKind};
use super::fit::{length_order, Example};
use super::readout::Gram;
use super::split::{SPLIT_MIN_STEPS, SPLIT_MIN_UNITS};
use crate::error::{Error, Result};
use crate::rng::Rng;
use rayon::prelude::*;

/// Sequences advanced together in one block.
pub(crate) const BLOCK: usize = 32;
/// Rows buffered before they go into the Gram accumulator.
pub(crate) const CHUNK: usize = 512;
/// In the single-series pipeline the harvesting thread folds every `OWN_EVERY`-th chunk itself
/// (a third of the products beside the state updates balanced the two threads best at 1000
/// units) and hands the others to the folding thread.
const OWN_EVERY: usize = 3;
/// Finished chunks that may wait for the folding thread.
const QUEUED_CHUNKS: usize = 4;

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

/// What [`Esn::advance_block`] calls after each step: `(t, layer states, inputs)`.
type BlockStep<'a> = dyn FnMut(usize, &[Vec<f64>], &[f64]) + 'a;

impl Esn {
    /// Runs `seqs` together from zero states and calls `sink(j, t, features)` for every step of
    /// every sequence. With feedback, the fed-back output at step `t` is the target of `t - 1`.
    pub(crate) fn harvest_block(
        &self,
        seqs: &[Example],
        steps: &[usize],
        noise: Option<&mut Rng>,
        sink: &mut dyn FnMut(usize, usize, &[f64]),
    ) {
        let b = seqs.len();
        let mut row = vec![0.0; self.step_features()];
        self.advance_block(seqs, steps, noise, &mut |t, xs, ub| {
            for j in 0..b {
                if t < steps[j] {
                    self.write_row(xs, ub, j, b, &mut row);
                    sink(j, t, &row);
                }
            }
        });
    }

    /// Runs `seqs` together from zero states and calls `on_step(t, states, inputs)` after every
    /// step with the unit-major block states (`[N, B]` per layer) and inputs (`[D, B]`).
    fn advance_block(
        &self,
        seqs: &[Example],
        steps: &[usize],
        noise: Option<&mut Rng>,
        on_step: &mut BlockStep,
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
            on_step(t, &xs, &ub);
        }
    }

    /// Harvests one block of sequences on this thread while another thread folds the finished
    /// chunks of rows into the Gram accumulators (serial products), so the sequential state
    /// updates and the products overlap.
    ///
    /// Which thread folds a chunk is fixed by its position (this thread every
    /// [`OWN_EVERY`]-th, the other the rest, each in order), not by timing, so the sums, and
    /// the fit, are the same at every run.
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
        let (full_tx, full_rx) = sync_channel::<(Chunk, bool)>(QUEUED_CHUNKS);
        let (empty_tx, empty_rx) = sync_channel::<Chunk>(QUEUED_CHUNKS + 4);
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
            let take = || empty_rx.try_recv().unwrap_or_else(|_| fresh());
            let mut cur = [take(), take()];
            let mut own = [Gram::new(f, o), Gram::new(f, o)];
            let mut failed: Option<Error> = None;
            let mut fold = |own: &mut [Gram; 2], (x, y): &Chunk, v: usize| {
                let _serial = crate::kernels::gemm::serial_scope();
                if let Err(e) = own[v].add_rows(x, y) {
                    failed.get_or_insert(e);
                }
            };
            let mut rng = self.block_rng(0);
            let noise = (self.config.reservoir.noise > 0.0).then_some(&mut rng);
            let mut chunks = 0usize;
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
                    chunks += 1;
                    if chunks.is_multiple_of(OWN_EVERY) {
                        fold(&mut own, &cur[v], v);
                        cur[v].0.clear();
                        cur[v].1.clear();
                    } else {
                        let done = std::mem::replace(&mut cur[v], take());
                        // Fails only if the consumer stopped on an error, returned below.
                        let _ = full_tx.send((done, v == 1));
                    }
                }
            });
            for (v, c) in cur.iter().enumerate() {
                if !c.0.is_empty() {
                    fold(&mut own, c, v);
                }
            }
            drop(full_tx);
            let (mut train, mut valid) = consumer.join().unwrap_or_else(|_| {
                Err(Error::Numerical("the readout accumulator failed".into()))
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
            train.merge(&own[0]);
            valid.merge(&own[1]);
            Ok((train, valid))
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
        let bias = usize::from(self.config.readout_bias);
        let body = self.step_features() - bias;
        let f = self.features();
        let washout = self.config.washout;
        let with_input = self.config.readout_input;
        // Unit-major sums and last states, `[body, B]`, updated in place from the block states
        // (no per-sequence rows): `count[j]` is 1 where step t of sequence j enters the mean.
        let mut sums = vec![0.0; body * b];
        let mut lasts = vec![0.0; body * b];
        let mut counts = vec![0.0f64; b];
        let mut count = vec![0.0f64; b];
        let mut ending: Vec<usize> = Vec::with_capacity(b);
        let (need_mean, need_last) = (p != Pooling::Last, p != Pooling::Mean);
        self.advance_block(seqs, steps, noise, &mut |t, xs, ub| {
            ending.clear();
            for j in 0..b {
                let live = t < steps[j];
                // Short sequences keep at least their last step.
                count[j] = f64::from(u8::from(live && (t >= washout || t + 1 == steps[j])));
                counts[j] += count[j];
                if t + 1 == steps[j] {
                    ending.push(j);
                }
            }
            let parts = with_input
                .then_some(ub)
                .into_iter()
                .chain(xs.iter().map(|x| x.as_slice()));
            let mut k0 = 0;
            for part in parts {
                let rows = part.len() / b.max(1);
                if need_mean {
                    for k in 0..rows {
                        let src = &part[k * b..(k + 1) * b];
                        let dst = &mut sums[(k0 + k) * b..(k0 + k + 1) * b];
                        for ((s, &c), &v) in dst.iter_mut().zip(&count).zip(src) {
                            *s += c * v;
                        }
                    }
                }
                if need_last {
                    for &j in &ending {
                        for k in 0..rows {
                            lasts[(k0 + k) * b + j] = part[k * b + j];
                        }
                    }
                }
                k0 += rows;
            }
        });
        let mut out = vec![0.0; b * f];
        for j in 0..b {
            let o = &mut out[j * f..(j + 1) * f];
            if bias == 1 {
                o[0] = 1.0;
            }
            let n = counts[j].max(1.0);
            for i in 0..body {
                let (lv, mv) = (lasts[i * b + j], sums[i * b + j] / n);
                match p {
                    Pooling::Last => o[bias + i] = lv,
                    Pooling::Mean => o[bias + i] = mv,
                    Pooling::LastAndMean => {
                        o[bias + i] = lv;
                        o[bias + body + i] = mv;
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
        if let [x] = inputs {
            // One long sequence: its units are split between threads instead.
            let threads = crate::kernels::gemm::effective_threads();
            let d = self.inputs;
            if threads > 1
                && self.units() >= SPLIT_MIN_UNITS
                && x.len() >= SPLIT_MIN_STEPS * d
                && x.len().is_multiple_of(d)
                && x.iter().all(|v| v.is_finite())
            {
                return Ok(vec![self.predict_split(x, threads)]);
            }
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
        // Blocks of similar lengths, so few steps are spent on finished sequences.
        let order = length_order(&inputs.iter().map(|x| x.len() / d).collect::<Vec<_>>());
        let blocks: Vec<usize> = (0..inputs.len()).step_by(BLOCK).collect();
        let parts: Vec<Vec<Vec<f64>>> = blocks
            .par_iter()
            .map(|&start| {
                let end = (start + BLOCK).min(inputs.len());
                let seqs: Vec<Example> = order[start..end]
                    .iter()
                    .map(|&i| Example {
                        input: inputs[i],
                        target: &[],
                    })
                    .collect();
                let steps: Vec<usize> = seqs.iter().map(|s| s.input.len() / d).collect();
                work(&seqs, &steps)
            })
            .collect();
        let mut out = vec![Vec::new(); inputs.len()];
        for (r, i) in parts.into_iter().flatten().zip(order) {
            out[i] = r;
        }
        Ok(out)
    }
}
