//! Truncated back-propagation through time on one long stream (a long text or series), as
//! char-rnn does: the stream is cut into `B` parallel contiguous streams; each update advances
//! every stream by `k1` steps and back-propagates through the last `k2` steps, with the
//! recurrent state carried from update to update (values only: no gradient crosses a window's
//! start).
//!
//! - `k2 == k1`: consecutive windows, each scored and back-propagated whole.
//! - `k2 > k1`: windows overlap; the window starts `k2` steps before the end, from the state
//!   recorded at an earlier update (advanced without gradient to the window's start), and only
//!   the `k1` new steps are scored, so every step is scored once and its gradient reaches `k2`
//!   steps back.
//! - `k2 < k1`: the first `k1 - k2` new steps only advance the state; the last `k2` are scored
//!   and back-propagated.

use std::collections::BTreeMap;

use crate::checkpoint::TensorFile;
use crate::data::{SeqBatch, Values};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::output::LossStats;
use crate::layers::params::Parameters;
use crate::layers::RecurrentState;
use crate::models::labeller::LabellerWorkspace;
use crate::models::{Model, SequenceLabeller, TrainContext};
use crate::train::source::TrainData;

/// One long stream trained by truncated BPTT (a [`TrainData`] for a [`SequenceLabeller`]).
pub struct Stream<'a, T> {
    input: &'a Values<T>,
    target: &'a Values<T>,
    streams: usize,
    len: usize,
    k1: usize,
    k2: usize,
    epoch: u64,
    pos: usize,
    /// States at update boundaries `(position, state)`, oldest first; the last is the carried
    /// state. Empty at the start of an epoch (zero state).
    history: Vec<(usize, RecurrentState<T>)>,
    aux: LabellerWorkspace<T>,
    /// Buffers of the data-parallel parts beyond the first (`Stream::split_step`).
    parts: Vec<Part<T>>,
}

/// One update's window of the stream: positions `start..end`, gradients through all of it,
/// loss scored from `score_from`, from the carried state `init` at `start`.
struct Window<'a, T> {
    start: usize,
    end: usize,
    score_from: usize,
    init: &'a RecurrentState<T>,
}

impl<'a, T: Float> Stream<'a, T> {
    /// A stream of `input` rows with one `target` row each, cut into `streams` parallel
    /// streams, advanced `k1` steps per update with gradients through the last `k2`.
    pub fn new(
        input: &'a Values<T>,
        target: &'a Values<T>,
        streams: usize,
        k1: usize,
        k2: usize,
    ) -> Result<Self> {
        let n = input
            .rows()
            .ok_or_else(|| Error::InvalidConfig("a stream needs inputs of width >= 1".into()))?;
        if target.rows() != Some(n) {
            return Err(Error::InvalidConfig(format!(
                "stream has {n} input rows but {:?} target rows",
                target.rows()
            )));
        }
        if streams == 0 || k1 == 0 || k2 == 0 {
            return Err(Error::InvalidConfig(
                "streams, k1 and k2 must all be at least 1".into(),
            ));
        }
        let len = n / streams;
        if len < 2 {
            return Err(Error::InvalidConfig(format!(
                "a stream of {n} rows is too short for {streams} parallel streams"
            )));
        }
        Ok(Stream {
            input,
            target,
            streams,
            len,
            k1,
            k2,
            epoch: 0,
            pos: 0,
            history: Vec::new(),
            aux: LabellerWorkspace::default(),
            parts: Vec::new(),
        })
    }

    /// Steps of each parallel stream.
    pub fn stream_len(&self) -> usize {
        self.len
    }

    /// The batch of rows `[a, b)` of every parallel stream; scored from `score_from` on.
    fn window(&self, a: usize, b: usize, score_from: usize) -> SeqBatch<T> {
        self.window_of(a, b, score_from, 0, self.streams)
    }

    /// [`Stream::window`] for the parallel streams `j0..j1` only.
    fn window_of(
        &self,
        a: usize,
        b: usize,
        score_from: usize,
        j0: usize,
        j1: usize,
    ) -> SeqBatch<T> {
        let (n, s) = (b - a, j1 - j0);
        let mut input = self.input.empty_like(n * s);
        let mut target = self.target.empty_like(n * s);
        let mut mask = vec![false; n * s];
        for t in 0..n {
            for j in 0..s {
                let src = (j0 + j) * self.len + a + t;
                input.copy_row(t * s + j, self.input, src);
                target.copy_row(t * s + j, self.target, src);
                mask[t * s + j] = a + t >= score_from;
            }
        }
        SeqBatch {
            steps: n,
            batch: s,
            lengths: vec![n; s],
            input,
            target,
            mask,
            per_step: true,
            source: None,
            loss_norm: None,
            cond: None,
        }
    }

    /// The state at position `p`, advanced without gradient from the latest recorded state at
    /// or before `p`.
    fn state_at(&mut self, model: &SequenceLabeller<T>, p: usize) -> Result<RecurrentState<T>> {
        let (from, state) = match self.history.iter().rev().find(|(q, _)| *q <= p) {
            Some((q, s)) => (*q, s.clone()),
            None => (0, RecurrentState::zeros(model.rnn.config(), self.streams)),
        };
        if from == p {
            return Ok(state);
        }
        let w = self.window(from, p, usize::MAX);
        let mut aux = std::mem::take(&mut self.aux);
        let r = model.forward_infer(&w, Some(&state), &mut aux, None);
        let out = aux.infer_final_state().clone();
        self.aux = aux;
        r.map(|_| out)
    }
}

/// Smallest number of parallel streams each thread gets in a data-parallel update.
const MIN_STREAMS_PER_PART: usize = 8;
/// Largest recurrent stack (bytes of its parameters) trained data-parallel: larger layers
/// already keep every thread busy inside each product.
const DATA_PARALLEL_MAX_BYTES: usize = 2 << 20;

/// How many parts an update of `streams` parallel streams is split into, one per thread: 1
/// (no split) inside a serial scope, with one thread, with fewer than 16 streams, or for a
/// large model.
fn data_parallel_parts<T: Float>(model: &SequenceLabeller<T>, streams: usize) -> usize {
    let bytes = model.rnn.num_params() * std::mem::size_of::<T>();
    if bytes > DATA_PARALLEL_MAX_BYTES {
        return 1;
    }
    crate::kernels::gemm::effective_threads().min(streams / MIN_STREAMS_PER_PART)
}

/// The buffers of one part of a data-parallel update beyond the first.
struct Part<T> {
    ws: LabellerWorkspace<T>,
    grads: SequenceLabeller<T>,
}

impl<T: Float> Stream<'_, T> {
    /// One update with the parallel streams split into `parts` groups, each trained on its own
    /// thread (serially inside) from its share of `init`, with the loss of every group divided
    /// by the whole update's scored rows, so the summed gradients are the whole batch's. Each
    /// group draws its dropout masks from its own generator, seeded from `ctx.rng`. Returns
    /// the loss sums and the whole final state.
    fn split_step(
        &mut self,
        model: &SequenceLabeller<T>,
        parts: usize,
        window: Window<'_, T>,
        ws: &mut LabellerWorkspace<T>,
        grads: &mut SequenceLabeller<T>,
        ctx: &mut TrainContext<'_>,
    ) -> Result<(LossStats, RecurrentState<T>)> {
        use rayon::prelude::*;
        let Window {
            start,
            end,
            score_from,
            init,
        } = window;
        let config = model.rnn.config().clone();
        let bounds: Vec<(usize, usize)> = (0..parts)
            .map(|k| (k * self.streams / parts, (k + 1) * self.streams / parts))
            .collect();
        let mut batches: Vec<SeqBatch<T>> = bounds
            .iter()
            .map(|&(j0, j1)| self.window_of(start, end, score_from, j0, j1))
            .collect();
        // The rows the whole update scores, as the unsplit step would count them.
        let scored: usize = batches
            .iter()
            .map(|b| {
                let rows = b.steps * b.batch;
                let target = crate::models::target_view(b);
                crate::models::scored_rows(model.output.kind(), &target, Some(&b.mask), rows)
            })
            .sum();
        for b in &mut batches {
            b.loss_norm = Some(scored.max(1) as f64);
        }
        while self.parts.len() < parts - 1 {
            self.parts.push(Part {
                ws: LabellerWorkspace::default(),
                grads: model.zeros_like(),
            });
        }
        let mut jobs: Vec<(&mut LabellerWorkspace<T>, &mut SequenceLabeller<T>)> =
            vec![(ws, grads)];
        for p in self.parts.iter_mut().take(parts - 1) {
            p.grads.zero();
            jobs.push((&mut p.ws, &mut p.grads));
        }
        let seeds: Vec<u64> = (0..parts).map(|_| ctx.rng.next_u64()).collect();
        let results: Vec<Result<LossStats>> = jobs
            .par_iter_mut()
            .zip(&batches)
            .zip(&bounds)
            .zip(&seeds)
            .map(|((((ws, g), batch), &(j0, j1)), &seed)| {
                let _one = crate::kernels::gemm::serial_scope();
                let part_init = init.select(&config, j0, j1);
                let mut rng = crate::rng::Rng::new(seed);
                model.train_step(batch, Some(&part_init), ws, g, Some(&mut rng))
            })
            .collect();
        let mut stats = LossStats::default();
        for r in results {
            stats.merge(&r?);
        }
        let mut last = RecurrentState::zeros(&config, self.streams);
        for ((ws, _), &(j0, _)) in jobs.iter().zip(&bounds) {
            last.place(&config, ws.final_state(), j0);
        }
        let (first, rest) = jobs.split_at_mut(1);
        let total = &mut first[0].1;
        for (_, g) in rest.iter() {
            for (dst, src) in total.param_slices_mut().into_iter().zip(g.param_slices()) {
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
            }
        }
        Ok((stats, last))
    }
}

impl<T: Float> TrainData<T, SequenceLabeller<T>> for Stream<'_, T> {
    fn next_batch(
        &mut self,
        model: &SequenceLabeller<T>,
        ws: &mut LabellerWorkspace<T>,
        grads: &mut SequenceLabeller<T>,
        ctx: &mut TrainContext<'_>,
    ) -> Result<(LossStats, usize)> {
        if self.pos >= self.len {
            self.epoch += 1;
            self.pos = 0;
            self.history.clear();
        }
        let end = (self.pos + self.k1).min(self.len);
        let start = end.saturating_sub(self.k2);
        let score_from = self.pos.max(start);
        let init = self.state_at(model, start)?;
        let parts = data_parallel_parts(model, self.streams);
        let stats = if parts > 1 {
            let window = Window {
                start,
                end,
                score_from,
                init: &init,
            };
            let (stats, last) = self.split_step(model, parts, window, ws, grads, ctx)?;
            self.history.push((end, last));
            stats
        } else {
            let batch = self.window(start, end, score_from);
            let stats = model.train_step(&batch, Some(&init), ws, grads, Some(&mut *ctx.rng))?;
            self.history.push((end, ws.final_state().clone()));
            stats
        };
        // Keep only what a later window can start from.
        // The next window starts k2 steps before its end, which is at most the stream's end.
        let need = (end + self.k1).min(self.len).saturating_sub(self.k2);
        let keep_from = self
            .history
            .iter()
            .rposition(|(q, _)| *q <= need)
            .unwrap_or(0);
        self.history.drain(..keep_from);
        self.pos = end;
        Ok((stats, (end - score_from) * self.streams))
    }

    fn save_position(&self, meta: &mut BTreeMap<String, String>, tensors: &mut TensorFile) {
        meta.insert("data.epoch".into(), self.epoch.to_string());
        meta.insert("data.pos".into(), self.pos.to_string());
        let ps: Vec<String> = self.history.iter().map(|(p, _)| p.to_string()).collect();
        meta.insert("data.history".into(), ps.join(","));
        for (i, (_, s)) in self.history.iter().enumerate() {
            tensors.insert(&format!("stream.{i}.h"), &[s.h.len()], &s.h);
            tensors.insert(&format!("stream.{i}.c"), &[s.c.len()], &s.c);
        }
    }

    fn restore_position(&mut self, file: &TensorFile) -> Result<()> {
        let m = &file.metadata;
        let bad = |k: &str| Error::CheckpointMismatch(format!("stream position: bad {k}"));
        self.epoch = m
            .get("data.epoch")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("epoch"))?;
        self.pos = m
            .get("data.pos")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("pos"))?;
        let hist = m.get("data.history").ok_or_else(|| bad("history"))?;
        self.history.clear();
        for (i, p) in hist.split(',').filter(|s| !s.is_empty()).enumerate() {
            let p: usize = p.parse().map_err(|_| bad("history"))?;
            let get = |k: String| -> Result<Vec<T>> {
                file.tensors.get(&k).ok_or_else(|| bad(&k))?.to_vec()
            };
            let h = get(format!("stream.{i}.h"))?;
            let c = get(format!("stream.{i}.c"))?;
            self.history.push((
                p,
                RecurrentState {
                    h,
                    c,
                    batch: self.streams,
                },
            ));
        }
        Ok(())
    }

    fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// Scores a language model on one long stream (`input` rows with one `target` row each) as a
/// single sequence, `chunk` steps at a time with the state carried across chunks: the
/// held-out bits per symbol of a text.
pub fn evaluate_stream<T: Float>(
    model: &SequenceLabeller<T>,
    input: &Values<T>,
    target: &Values<T>,
    chunk: usize,
) -> Result<LossStats> {
    let s = Stream::new(input, target, 1, chunk.max(1), chunk.max(1))?;
    let n = s.len;
    let mut ws = LabellerWorkspace::default();
    let mut state = RecurrentState::zeros(model.rnn.config(), 1);
    let mut total = LossStats::default();
    let mut pos = 0;
    while pos < n {
        let end = (pos + chunk.max(1)).min(n);
        let w = s.window(pos, end, pos);
        total.merge(&model.forward_infer(&w, Some(&state), &mut ws, None)?);
        state.copy_from(ws.infer_final_state());
        pos = end;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tasks;
    use crate::layers::{CellKind, OutputKind};
    use crate::models::{InputSpec, Model, ModelConfig};
    use crate::rng::Rng;

    /// An update split between threads (16 streams in two parts) gives the unsplit update's
    /// loss, gradients and carried state, over consecutive and overlapping windows.
    #[test]
    fn data_parallel_update_equals_the_whole_one() {
        crate::kernels::gemm::set_num_threads(2);
        let seqs = tasks::running_pair_sum::<f64>(1, 3, 16 * 40, 16 * 40, 2);
        let model = SequenceLabeller::<f64>::new(
            ModelConfig {
                input: InputSpec::Symbols { vocab: 3, dim: 4 },
                cell: CellKind::Lstm,
                hidden: 6,
                layers: 2,
                bidirectional: false,
                output: OutputKind::Categorical {
                    classes: 3,
                    pad: None,
                },
                deep_output: 0,
                residual: false,
            },
            3,
        )
        .unwrap();
        assert_eq!(data_parallel_parts(&model, 16), 2);
        for (k1, k2) in [(10, 10), (6, 9)] {
            let run = |serial: bool| {
                let _one = serial.then(crate::kernels::gemm::serial_scope);
                let mut s = Stream::new(&seqs[0].input, &seqs[0].target, 16, k1, k2).unwrap();
                let mut ws = LabellerWorkspace::default();
                let mut out = Vec::new();
                let mut rng = Rng::new(0);
                for _ in 0..3 {
                    let mut g = model.zeros_like();
                    let mut ctx = TrainContext {
                        rng: &mut rng,
                        feed_prob: 0.0,
                        step: 0,
                    };
                    let (stats, n) = s.next_batch(&model, &mut ws, &mut g, &mut ctx).unwrap();
                    out.push((stats, n, g, s.history.last().unwrap().1.clone()));
                }
                out
            };
            let (split, whole) = (run(false), run(true));
            for ((a, na, ga, sa), (b, nb, gb, sb)) in split.iter().zip(&whole) {
                assert_eq!((na, a.rows), (nb, b.rows));
                assert!((a.nll - b.nll).abs() < 1e-9 * b.nll.abs());
                for (x, y) in ga.param_slices().iter().zip(gb.param_slices()) {
                    for (u, v) in x.iter().zip(y) {
                        assert!((u - v).abs() < 1e-12, "{k1} {k2}: gradient {u} vs {v}");
                    }
                }
                assert_eq!(sa.batch, 16);
                for (u, v) in sa.h.iter().chain(&sa.c).zip(sb.h.iter().chain(&sb.c)) {
                    assert!((u - v).abs() < 1e-12);
                }
            }
        }
    }

    /// Every window's start state is found in the kept history close by (never replayed from
    /// the stream's beginning), including the short last window of an epoch: replaying from
    /// the beginning once made a character language model allocate 15 GB at its first epoch's
    /// end.
    #[test]
    fn history_always_holds_the_next_windows_start() {
        let seqs = tasks::running_pair_sum::<f64>(1, 3, 103, 103, 1);
        let model = SequenceLabeller::<f64>::new(
            ModelConfig {
                input: InputSpec::Symbols { vocab: 3, dim: 2 },
                cell: CellKind::Gru,
                hidden: 3,
                layers: 1,
                bidirectional: false,
                output: OutputKind::Categorical {
                    classes: 3,
                    pad: None,
                },
                deep_output: 0,
                residual: false,
            },
            1,
        )
        .unwrap();
        for (k1, k2) in [(10, 10), (7, 20), (20, 5)] {
            let mut s = Stream::new(&seqs[0].input, &seqs[0].target, 1, k1, k2).unwrap();
            let mut ws = LabellerWorkspace::default();
            let mut g = model.zeros_like();
            let mut rng = Rng::new(0);
            for _ in 0..30 {
                let mut ctx = TrainContext {
                    rng: &mut rng,
                    feed_prob: 0.0,
                    step: 0,
                };
                s.next_batch(&model, &mut ws, &mut g, &mut ctx).unwrap();
                if s.pos >= s.len {
                    continue;
                }
                let next_start = (s.pos + k1).min(s.len).saturating_sub(k2);
                // The nearest kept state (or the zero state at 0) is at most one window back.
                let q = s
                    .history
                    .iter()
                    .map(|(q, _)| *q)
                    .filter(|&q| q <= next_start)
                    .max()
                    .unwrap_or(0);
                assert!(
                    next_start - q <= k1 + k2,
                    "k1 {k1} k2 {k2}: the next window at {next_start} would replay from {q} (pos {})",
                    s.pos
                );
            }
        }
    }
}
