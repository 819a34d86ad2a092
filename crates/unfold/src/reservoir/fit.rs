//! Harvesting reservoir states and fitting the ESN readout by ridge regression.
//!
//! Sequences are advanced together in blocks (states `[N, B]`), blocks run in parallel, and the
//! features of each block go straight into Gram accumulators ([`Gram`]) in chunks, so memory
//! stays `O(F^2)` however long the data. The ridge is chosen on a validation split (the last
//! part of a single sequence, or a seeded subset of several sequences) and the readout is then
//! refitted on all the data with it.

#![allow(clippy::needless_range_loop)]

use super::esn::{Esn, Pooling, ReadoutKind};
use super::readout::{select_ridge, solve_ridge, solve_ridge_dual, Gram};
use crate::error::{Error, Result};
use crate::rng::Rng;
use rayon::prelude::*;

/// One training sequence: `[T, D]` inputs and `[T, O]` targets (per-step readout) or `[O]`
/// targets (pooled readout). A feedback-only ESN (`D == 0`) takes an empty input.
#[derive(Debug, Clone, Copy)]
pub struct Example<'a> {
    /// Row-major inputs.
    pub input: &'a [f64],
    /// Row-major targets.
    pub target: &'a [f64],
}

/// What a fit did.
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    /// The ridge used for the final readout.
    pub ridge: f64,
    /// Validation MSE of each ridge candidate (empty with a single candidate).
    pub scores: Vec<(f64, f64)>,
    /// Rows (steps or sequences) the final readout was fitted on.
    pub rows: usize,
    /// Rows held out for the ridge choice.
    pub valid_rows: usize,
    /// NRMSE per output of the final readout on all fitted rows.
    pub train_nrmse: Vec<f64>,
}

/// Sequences advanced together in one block.
const BLOCK: usize = 32;
/// Rows buffered before they go into the Gram accumulator.
const CHUNK: usize = 512;

struct Accum {
    gram: Gram,
    x: Vec<f64>,
    y: Vec<f64>,
}

impl Accum {
    fn new(f: usize, o: usize) -> Self {
        Accum {
            gram: Gram::new(f, o),
            x: Vec::with_capacity(CHUNK * f),
            y: Vec::with_capacity(CHUNK * o),
        }
    }
    fn push(&mut self, row: &[f64], target: &[f64]) {
        self.x.extend_from_slice(row);
        self.y.extend_from_slice(target);
        if self.x.len() >= CHUNK * self.gram.features {
            self.flush();
        }
    }
    fn flush(&mut self) {
        // Shapes are consistent by construction.
        let _ = self.gram.add_rows(&self.x, &self.y);
        self.x.clear();
        self.y.clear();
    }
}

impl Esn {
    fn steps(&self, ex: &Example) -> Result<usize> {
        let (d, o) = (self.inputs, self.outputs);
        match self.kind {
            ReadoutKind::PerStep => {
                let t = ex.input.len().checked_div(d).unwrap_or(ex.target.len() / o);
                if (d > 0 && ex.input.len() != t * d) || ex.target.len() != t * o {
                    return Err(Error::Shape {
                        what: "ESN example".into(),
                        expected: format!("[T, {d}] inputs and [T, {o}] targets"),
                        got: format!(
                            "{} input and {} target values",
                            ex.input.len(),
                            ex.target.len()
                        ),
                    });
                }
                Ok(t)
            }
            ReadoutKind::Pooled(_) => {
                let t = ex.input.len() / d.max(1);
                if d == 0 || ex.input.len() != t * d || ex.target.len() != o {
                    return Err(Error::Shape {
                        what: "ESN example".into(),
                        expected: format!("[T, {d}] inputs and [{o}] targets"),
                        got: format!(
                            "{} input and {} target values",
                            ex.input.len(),
                            ex.target.len()
                        ),
                    });
                }
                Ok(t)
            }
        }
    }

    fn check_examples(&self, data: &[Example]) -> Result<Vec<usize>> {
        if data.is_empty() {
            return Err(Error::InvalidCall("no sequences to fit on".into()));
        }
        let mut steps = Vec::with_capacity(data.len());
        for (i, ex) in data.iter().enumerate() {
            let t = self.steps(ex)?;
            if let Some(p) = ex
                .input
                .iter()
                .chain(ex.target)
                .position(|v| !v.is_finite())
            {
                return Err(Error::InvalidData(format!(
                    "sequence {i} holds a non-finite value (at flat position {p})"
                )));
            }
            let need = match self.kind {
                ReadoutKind::PerStep => self.config.washout + 1,
                ReadoutKind::Pooled(_) => 1,
            };
            if t < need {
                return Err(Error::InvalidData(format!(
                    "sequence {i} has {t} steps; it needs at least {need} (washout {} plus one)",
                    self.config.washout
                )));
            }
            steps.push(t);
        }
        Ok(steps)
    }

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

    /// Which sequences (or, for a single sequence, which steps from where) are held out.
    fn split(&self, steps: &[usize]) -> (Vec<bool>, usize) {
        let n = steps.len();
        let vf = self.config.valid_fraction;
        if n == 1 {
            let usable = steps[0] - self.config.washout.min(steps[0]);
            let start =
                steps[0] - ((usable as f64 * vf).round() as usize).clamp(1, usable.max(2) - 1);
            return (vec![false], start);
        }
        let mut idx: Vec<usize> = (0..n).collect();
        Rng::new(self.config.seed ^ 0x5b11_7a11).shuffle(&mut idx);
        let k = ((n as f64 * vf).round() as usize).clamp(1, n - 1);
        let mut valid = vec![false; n];
        for &i in &idx[..k] {
            valid[i] = true;
        }
        (valid, usize::MAX)
    }

    /// Fits the readout by ridge regression on `data` and stores it; the ridge is chosen on a
    /// validation split when the config lists several candidates.
    pub fn fit(&mut self, data: &[Example]) -> Result<FitReport> {
        let steps = self.check_examples(data)?;
        let (f, o) = (self.features(), self.outputs);
        let choose = self.config.ridge.len() > 1;
        let (valid_seq, valid_from) = if choose {
            self.split(&steps)
        } else {
            (vec![false; steps.len()], usize::MAX)
        };
        let washout = self.config.washout;
        let blocks: Vec<usize> = (0..data.len()).step_by(BLOCK).collect();
        let (mut train, valid) = match self.kind {
            ReadoutKind::Pooled(p) => {
                // One pooled row per sequence: gather them, then one product per split.
                let pooled: Vec<Vec<f64>> = blocks
                    .par_iter()
                    .map(|&start| {
                        let end = (start + BLOCK).min(data.len());
                        let mut rng = self.block_rng(start);
                        let noise = (self.config.reservoir.noise > 0.0).then_some(&mut rng);
                        self.pool_block(&data[start..end], &steps[start..end], p, noise)
                    })
                    .collect();
                let (mut tx, mut ty, mut vx, mut vy) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for (&start, rows) in blocks.iter().zip(&pooled) {
                    for (j, prow) in rows.chunks_exact(f).enumerate() {
                        let (x, y) = if valid_seq[start + j] {
                            (&mut vx, &mut vy)
                        } else {
                            (&mut tx, &mut ty)
                        };
                        x.extend_from_slice(prow);
                        y.extend_from_slice(data[start + j].target);
                    }
                }
                if (tx.len() + vx.len()) / f < f {
                    // Fewer sequences than features: the dual (kernel) form is exact and solves
                    // a system the size of the number of sequences.
                    return self.fit_dual(&tx, &ty, &vx, &vy, choose);
                }
                let mut train = Gram::new(f, o);
                train.add_rows(&tx, &ty)?;
                let mut valid = Gram::new(f, o);
                valid.add_rows(&vx, &vy)?;
                (train, valid)
            }
            ReadoutKind::PerStep
                if blocks.len() == 1 && crate::kernels::gemm::num_threads() > 1 =>
            {
                self.harvest_pipelined(data, &steps, &valid_seq, valid_from)?
            }
            ReadoutKind::PerStep => {
                // One pair of accumulators per thread, not per block: each is `O(F^2)`.
                let jobs = crate::kernels::gemm::num_threads().clamp(1, blocks.len());
                let per = blocks.len().div_ceil(jobs);
                let parts: Vec<(Gram, Gram)> = blocks
                    .par_chunks(per)
                    .map(|chunk| {
                        let mut train = Accum::new(f, o);
                        let mut valid = Accum::new(f, o);
                        for &start in chunk {
                            let end = (start + BLOCK).min(data.len());
                            let seqs = &data[start..end];
                            let mut rng = self.block_rng(start);
                            let noise = (self.config.reservoir.noise > 0.0).then_some(&mut rng);
                            self.harvest_block(
                                seqs,
                                &steps[start..end],
                                noise,
                                &mut |j, t, row| {
                                    if t < washout {
                                        return;
                                    }
                                    let y = &seqs[j].target[t * o..(t + 1) * o];
                                    if valid_seq[start + j] || t >= valid_from {
                                        valid.push(row, y);
                                    } else {
                                        train.push(row, y);
                                    }
                                },
                            );
                        }
                        train.flush();
                        valid.flush();
                        (train.gram, valid.gram)
                    })
                    .collect();
                let mut parts = parts.into_iter();
                let (mut train, mut valid) =
                    parts.next().unwrap_or((Gram::new(f, o), Gram::new(f, o)));
                for (t, v) in parts {
                    train.merge(&t);
                    valid.merge(&v);
                }
                (train, valid)
            }
        };
        let (ridge, scores) = if choose {
            let sel = select_ridge(&train, &valid, &self.config.ridge)?;
            (sel.ridge, sel.scores)
        } else {
            (self.config.ridge[0], Vec::new())
        };
        let valid_rows = valid.rows;
        train.merge(&valid);
        self.readout = solve_ridge(&train, ridge)?;
        self.ridge = ridge;
        let sse = train.sse(&self.readout);
        let var = train.target_variance();
        let train_nrmse = (0..o)
            .map(|k| (sse[k] / train.rows as f64 / var[k].max(f64::MIN_POSITIVE)).sqrt())
            .collect();
        Ok(FitReport {
            ridge,
            scores,
            rows: train.rows,
            valid_rows,
            train_nrmse,
        })
    }

    /// Ridge in dual form on explicit rows: candidates scored on the held-out rows, then the
    /// chosen ridge refitted on all of them.
    fn fit_dual(
        &mut self,
        tx: &[f64],
        ty: &[f64],
        vx: &[f64],
        vy: &[f64],
        choose: bool,
    ) -> Result<FitReport> {
        let (f, o) = (self.features(), self.outputs);
        let predict = |w: &[f64], x: &[f64]| -> Vec<f64> {
            let r = x.len() / f;
            let mut out = vec![0.0; r * o];
            crate::kernels::gemm::gemm_nt(r, o, f, x, f, w, f, &mut out, o, false);
            out
        };
        let mse = |p: &[f64], y: &[f64]| {
            p.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / y.len().max(1) as f64
        };
        let mut scores = Vec::new();
        let ridge = if choose {
            let mut last_err = None;
            for &lambda in &self.config.ridge {
                match solve_ridge_dual(tx, ty, f, o, lambda) {
                    Ok(w) => scores.push((lambda, mse(&predict(&w, vx), vy))),
                    Err(e) => last_err = Some(e),
                }
            }
            match scores
                .iter()
                .filter(|s| s.1.is_finite())
                .min_by(|a, b| a.1.total_cmp(&b.1))
            {
                Some(&(r, _)) => r,
                None => {
                    return Err(last_err.unwrap_or_else(|| {
                        Error::Numerical("no ridge candidate gave a finite validation error".into())
                    }))
                }
            }
        } else {
            self.config.ridge[0]
        };
        let x: Vec<f64> = tx.iter().chain(vx).copied().collect();
        let y: Vec<f64> = ty.iter().chain(vy).copied().collect();
        self.readout = solve_ridge_dual(&x, &y, f, o, ridge)?;
        self.ridge = ridge;
        let p = predict(&self.readout, &x);
        let rows = x.len() / f;
        let train_nrmse = (0..o)
            .map(|k| {
                let ys: Vec<f64> = (0..rows).map(|i| y[i * o + k]).collect();
                let m = ys.iter().sum::<f64>() / rows as f64;
                let var = ys.iter().map(|v| (v - m).powi(2)).sum::<f64>() / rows as f64;
                let e = (0..rows)
                    .map(|i| (p[i * o + k] - ys[i]).powi(2))
                    .sum::<f64>()
                    / rows as f64;
                (e / var.max(f64::MIN_POSITIVE)).sqrt()
            })
            .collect();
        Ok(FitReport {
            ridge,
            scores,
            rows,
            valid_rows: vx.len() / f,
            train_nrmse,
        })
    }

    /// Harvests one block of sequences on this thread while another thread folds the finished
    /// chunks of rows into the Gram accumulators (serial products), so the sequential state
    /// updates and the products overlap.
    fn harvest_pipelined(
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
    fn block_rng(&self, start: usize) -> Rng {
        Rng::new(self.config.seed ^ (start as u64).wrapping_mul(0x9e37_79b9))
    }

    /// Pooled features `[b, F]` of a block of sequences.
    fn pool_block(
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
        let d = self.inputs.max(1);
        for (i, x) in inputs.iter().enumerate() {
            if x.len() % d != 0 || x.iter().any(|v| !v.is_finite()) {
                return Err(Error::InvalidData(format!(
                    "input sequence {i} is not a finite [T, {d}] array"
                )));
            }
        }
        let o = self.outputs;
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
                let mut outs: Vec<Vec<f64>> = steps.iter().map(|&t| vec![0.0; t * o]).collect();
                self.harvest_block(&seqs, &steps, None, &mut |j, t, row| {
                    self.apply_readout(row, &mut outs[j][t * o..(t + 1) * o]);
                });
                outs
            })
            .collect();
        Ok(parts.into_iter().flatten().collect())
    }

    /// Readout scores (`[O]`) of each `[T, D]` input sequence for a pooled ESN.
    pub fn classify(&self, inputs: &[&[f64]]) -> Result<Vec<Vec<f64>>> {
        let ReadoutKind::Pooled(p) = self.kind else {
            return Err(Error::InvalidCall("classify needs a pooled ESN".into()));
        };
        let d = self.inputs;
        for (i, x) in inputs.iter().enumerate() {
            if x.is_empty() || x.len() % d != 0 || x.iter().any(|v| !v.is_finite()) {
                return Err(Error::InvalidData(format!(
                    "input sequence {i} is not a finite non-empty [T, {d}] array"
                )));
            }
        }
        let f = self.features();
        let o = self.outputs;
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
                let pooled = self.pool_block(&seqs, &steps, p, None);
                pooled
                    .chunks_exact(f)
                    .map(|row| {
                        let mut out = vec![0.0; o];
                        self.apply_readout(row, &mut out);
                        out
                    })
                    .collect()
            })
            .collect();
        Ok(parts.into_iter().flatten().collect())
    }
}
