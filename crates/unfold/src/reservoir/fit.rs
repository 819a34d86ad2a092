//! Fitting the ESN readout by ridge regression on harvested states.
//!
//! Sequences are advanced together in blocks (states `[N, B]`), blocks run in parallel, and the
//! features of each block go straight into Gram accumulators ([`Gram`]) in chunks, so memory
//! stays `O(F^2)` however long the data. The ridge is chosen on a validation split (the last
//! part of a single sequence, or a seeded subset of several sequences) and the readout is then
//! refitted on all the data with it.

#![allow(clippy::needless_range_loop)]

use super::esn::{Esn, ReadoutKind};
use super::harvest::{Accum, BLOCK};
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
                // One pooled row per sequence: gather them (blocks of similar lengths, so few
                // steps are spent on finished sequences), then one product per split.
                let order = length_order(&steps);
                let sorted: Vec<Example> = order.iter().map(|&i| data[i]).collect();
                let sorted_steps: Vec<usize> = order.iter().map(|&i| steps[i]).collect();
                let pooled: Vec<Vec<f64>> = blocks
                    .par_iter()
                    .map(|&start| {
                        let end = (start + BLOCK).min(data.len());
                        let mut rng = self.block_rng(start);
                        let noise = (self.config.reservoir.noise > 0.0).then_some(&mut rng);
                        self.pool_block(&sorted[start..end], &sorted_steps[start..end], p, noise)
                    })
                    .collect();
                let mut row_of = vec![0usize; data.len()];
                for (pos, &i) in order.iter().enumerate() {
                    row_of[i] = pos;
                }
                let all: Vec<f64> = pooled.concat();
                let (mut tx, mut ty, mut vx, mut vy) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for (i, ex) in data.iter().enumerate() {
                    let (x, y) = if valid_seq[i] {
                        (&mut vx, &mut vy)
                    } else {
                        (&mut tx, &mut ty)
                    };
                    x.extend_from_slice(&all[row_of[i] * f..(row_of[i] + 1) * f]);
                    y.extend_from_slice(ex.target);
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
                if blocks.len() == 1 && crate::kernels::gemm::effective_threads() > 1 =>
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
}

/// Sequence indices ordered by length (stable), so blocks hold sequences of similar lengths.
pub(crate) fn length_order(steps: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..steps.len()).collect();
    order.sort_by_key(|&i| steps[i]);
    order
}
