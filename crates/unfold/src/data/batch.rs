//! Variable-length sequences and the padded time-major batches the models train on.
//!
//! A [`Dataset`] is a list of [`Sequence`]s whose inputs and targets are symbols or real rows.
//! [`Dataset::epoch_batches`] groups them into batches for one epoch: a seeded shuffle, then
//! length bucketing (sort pools of several batches by length and cut them, so sequences of
//! similar length share a batch and little padding is wasted), then a seeded shuffle of the
//! batch order. The grouping depends only on `(seed, epoch)`, which is what makes training
//! resumable at any step. [`Dataset::batch`] pads a group into a [`SeqBatch`] (`[T, B, ...]`).

use crate::error::{Error, Result};
use crate::float::Float;
use crate::rng::Rng;

/// A block of symbols or of real rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Values<T> {
    /// One symbol id per row.
    Symbols(Vec<usize>),
    /// `width` reals per row, row-major.
    Reals {
        /// Reals per row.
        width: usize,
        /// The values.
        data: Vec<T>,
    },
}

impl<T: Float> Values<T> {
    /// Number of rows (given the row count when the width is zero).
    pub(crate) fn rows(&self) -> Option<usize> {
        match self {
            Values::Symbols(s) => Some(s.len()),
            Values::Reals { width: 0, .. } => None,
            Values::Reals { width, data } => Some(data.len() / width),
        }
    }

    /// Reals per row (0 for symbols).
    pub fn width(&self) -> usize {
        match self {
            Values::Symbols(_) => 0,
            Values::Reals { width, .. } => *width,
        }
    }

    /// The symbol ids, if these are symbols.
    pub fn symbols(&self) -> Option<&[usize]> {
        match self {
            Values::Symbols(s) => Some(s),
            _ => None,
        }
    }

    /// The reals, if these are reals.
    pub fn reals(&self) -> Option<&[T]> {
        match self {
            Values::Reals { data, .. } => Some(data),
            _ => None,
        }
    }

    fn same_kind(&self, other: &Values<T>) -> bool {
        match (self, other) {
            (Values::Symbols(_), Values::Symbols(_)) => true,
            (Values::Reals { width: a, .. }, Values::Reals { width: b, .. }) => a == b,
            _ => false,
        }
    }

    pub(crate) fn empty_like(&self, rows: usize) -> Values<T> {
        match self {
            Values::Symbols(_) => Values::Symbols(vec![0; rows]),
            Values::Reals { width, .. } => Values::Reals {
                width: *width,
                data: vec![T::ZERO; rows * width],
            },
        }
    }

    /// Copies row `src_row` of `src` into row `dst_row` of `self` (same kind).
    pub(crate) fn copy_row(&mut self, dst_row: usize, src: &Values<T>, src_row: usize) {
        match (self, src) {
            (Values::Symbols(d), Values::Symbols(s)) => d[dst_row] = s[src_row],
            (Values::Reals { width, data }, Values::Reals { data: s, .. }) => {
                let w = *width;
                data[dst_row * w..(dst_row + 1) * w]
                    .copy_from_slice(&s[src_row * w..(src_row + 1) * w]);
            }
            _ => unreachable!("kinds checked when the dataset was built"),
        }
    }
}

/// One example: `len` input rows and either `len` target rows (a target per step) or one
/// (a target for the whole sequence).
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence<T> {
    /// Number of steps.
    pub len: usize,
    /// `len` input rows (a real width of 0 means the model has no external input).
    pub input: Values<T>,
    /// `len` target rows, or one.
    pub target: Values<T>,
}

/// The source side of a sequence-to-sequence batch: `[Tx, B]` symbols or `[Tx, B, I]` reals,
/// with each source's own length.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceBatch<T> {
    /// Padded source length.
    pub steps: usize,
    /// Each source's length.
    pub lengths: Vec<usize>,
    /// The padded sources.
    pub input: Values<T>,
}

/// A padded batch, time-major. Padded positions hold symbol 0 or zeros and are masked.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqBatch<T> {
    /// Padded length T (the longest sequence).
    pub steps: usize,
    /// Number of sequences B.
    pub batch: usize,
    /// Each sequence's own length.
    pub lengths: Vec<usize>,
    /// `[T, B]` symbols or `[T, B, I]` reals.
    pub input: Values<T>,
    /// `[T, B](, O)` per-step targets, or `[B](, O)` per-sequence targets.
    pub target: Values<T>,
    /// `[T, B]`: true where the step is inside its sequence.
    pub mask: Vec<bool>,
    /// True when `target` has one row per step.
    pub per_step: bool,
    /// The source sequences of a sequence-to-sequence batch (`None` otherwise).
    pub source: Option<SourceBatch<T>>,
    /// What the summed loss of the batch is divided by for the gradient (`None`: the number
    /// of scored rows). Batches of a [`Dataset`] use `B` times the data set's mean length, so
    /// every sequence weighs the same whatever batch it lands in: dividing by each batch's own
    /// token count would give the sequences of length-bucketed short batches more weight
    /// and, for example, bias a learned end-of-sequence probability upwards.
    pub loss_norm: Option<f64>,
    /// `[B, C]` fixed conditioning vectors, one per sequence (`None`: unconditioned).
    pub cond: Option<Vec<T>>,
}

impl<T: Float> SeqBatch<T> {
    /// Number of real steps (the sum of the lengths).
    pub fn tokens(&self) -> usize {
        self.lengths.iter().sum()
    }
}

/// A set of sequences of one kind (same input and target kinds and widths).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset<T> {
    seqs: Vec<Sequence<T>>,
    per_step: bool,
    mean_len: f64,
    /// Source sequences of a sequence-to-sequence set, one per sequence.
    sources: Option<Vec<Values<T>>>,
    /// Conditioning vectors, one per sequence, all of one width.
    conds: Option<Vec<Vec<T>>>,
}

impl<T: Float> Dataset<T> {
    /// Checks that every sequence has the same kinds and widths, consistent row counts, and
    /// targets either per step (all) or per sequence (all).
    pub fn new(seqs: Vec<Sequence<T>>) -> Result<Self> {
        let first = seqs
            .first()
            .ok_or_else(|| Error::InvalidConfig("a dataset needs at least one sequence".into()))?;
        let per_step = seqs.iter().all(|s| s.target.rows() == Some(s.len));
        for (i, s) in seqs.iter().enumerate() {
            let bad = |why: String| Error::InvalidConfig(format!("sequence {i}: {why}"));
            if !s.input.same_kind(&first.input) || !s.target.same_kind(&first.target) {
                return Err(bad(
                    "input or target kind/width differs from sequence 0".into()
                ));
            }
            if s.len == 0 {
                return Err(bad("empty sequence".into()));
            }
            match s.input.rows() {
                Some(r) if r != s.len => {
                    return Err(bad(format!("{r} input rows for length {}", s.len)))
                }
                None if s.input.reals().is_some_and(|d| !d.is_empty()) => {
                    return Err(bad("inputs of width 0 must be empty".into()))
                }
                _ => {}
            }
            let want = if per_step { s.len } else { 1 };
            if s.target.rows() != Some(want) {
                return Err(bad(format!(
                    "{:?} target rows, expected {want} ({})",
                    s.target.rows(),
                    if per_step {
                        "one per step"
                    } else {
                        "one per sequence"
                    }
                )));
            }
        }
        let mean_len = seqs.iter().map(|s| s.len as f64).sum::<f64>() / seqs.len() as f64;
        Ok(Dataset {
            seqs,
            per_step,
            mean_len,
            sources: None,
            conds: None,
        })
    }

    /// A sequence-to-sequence set: each sequence (the decoder side: inputs and per-step
    /// targets) with its source sequence (symbols or real rows of one kind, non-empty).
    pub fn with_sources(seqs: Vec<Sequence<T>>, sources: Vec<Values<T>>) -> Result<Self> {
        let mut d = Self::new(seqs)?;
        if sources.len() != d.seqs.len() {
            return Err(Error::InvalidConfig(format!(
                "{} sources for {} sequences",
                sources.len(),
                d.seqs.len()
            )));
        }
        for (i, s) in sources.iter().enumerate() {
            if !s.same_kind(&sources[0]) || s.rows().unwrap_or(0) == 0 {
                return Err(Error::InvalidConfig(format!(
                    "source {i}: empty, or of another kind than source 0"
                )));
            }
        }
        d.sources = Some(sources);
        Ok(d)
    }

    /// A set whose sequences each come with a fixed conditioning vector (a class, an image
    /// embedding...), all of one width.
    pub fn with_conditions(seqs: Vec<Sequence<T>>, conds: Vec<Vec<T>>) -> Result<Self> {
        let mut d = Self::new(seqs)?;
        if conds.len() != d.seqs.len()
            || conds
                .iter()
                .any(|c| c.len() != conds[0].len() || c.is_empty())
        {
            return Err(Error::InvalidConfig(
                "one non-empty conditioning vector of a common width per sequence".into(),
            ));
        }
        d.conds = Some(conds);
        Ok(d)
    }

    /// The source sequences, if this is a sequence-to-sequence set.
    pub fn sources(&self) -> Option<&[Values<T>]> {
        self.sources.as_deref()
    }

    /// The sequences.
    pub fn sequences(&self) -> &[Sequence<T>] {
        &self.seqs
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    /// True when there are no sequences (never, for a constructed dataset).
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// True when targets come one per step.
    pub fn per_step(&self) -> bool {
        self.per_step
    }

    /// The batches of one epoch as lists of sequence indices, a function of `(seed, epoch)`
    /// only. `bucket` is how many batches form one length-sorted pool (0 or 1: no bucketing).
    pub fn epoch_batches(
        &self,
        seed: u64,
        epoch: u64,
        batch_size: usize,
        bucket: usize,
    ) -> Vec<Vec<usize>> {
        let bs = batch_size.max(1);
        let mut rng = Rng::new(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17));
        let mut order: Vec<usize> = (0..self.seqs.len()).collect();
        rng.shuffle(&mut order);
        if bucket > 1 {
            for pool in order.chunks_mut(bs * bucket) {
                pool.sort_by_key(|&i| self.seqs[i].len);
            }
        }
        let mut batches: Vec<Vec<usize>> = order.chunks(bs).map(|c| c.to_vec()).collect();
        if bucket > 1 {
            rng.shuffle(&mut batches);
        }
        batches
    }

    /// Pads the sequences `idx` into one time-major batch.
    pub fn batch(&self, idx: &[usize]) -> SeqBatch<T> {
        let b = idx.len();
        let lengths: Vec<usize> = idx.iter().map(|&i| self.seqs[i].len).collect();
        let steps = lengths.iter().copied().max().unwrap_or(0);
        let first = &self.seqs[idx[0]];
        let mut input = first.input.empty_like(steps * b);
        let trows = if self.per_step { steps * b } else { b };
        let mut target = first.target.empty_like(trows);
        let mut mask = vec![false; steps * b];
        for (j, &i) in idx.iter().enumerate() {
            let s = &self.seqs[i];
            for t in 0..s.len {
                if s.input.width() > 0 || s.input.symbols().is_some() {
                    input.copy_row(t * b + j, &s.input, t);
                }
                mask[t * b + j] = true;
                if self.per_step {
                    target.copy_row(t * b + j, &s.target, t);
                }
            }
            if !self.per_step {
                target.copy_row(j, &s.target, 0);
            }
        }
        let source = self.sources.as_ref().map(|src| {
            let lens: Vec<usize> = idx.iter().map(|&i| src[i].rows().unwrap_or(0)).collect();
            let sx = lens.iter().copied().max().unwrap_or(0);
            let mut sin = src[idx[0]].empty_like(sx * b);
            for (j, &i) in idx.iter().enumerate() {
                for t in 0..lens[j] {
                    sin.copy_row(t * b + j, &src[i], t);
                }
            }
            SourceBatch {
                steps: sx,
                lengths: lens,
                input: sin,
            }
        });
        SeqBatch {
            steps,
            batch: b,
            lengths,
            input,
            target,
            mask,
            per_step: self.per_step,
            source,
            loss_norm: self.per_step.then_some(b as f64 * self.mean_len),
            cond: self
                .conds
                .as_ref()
                .map(|c| idx.iter().flat_map(|&i| c[i].iter().copied()).collect()),
        }
    }

    /// Splits off the last `share` of the sequences (after a seeded shuffle) as a held-out set.
    pub fn split(self, share: f64, seed: u64) -> Result<(Dataset<T>, Dataset<T>)> {
        let n = self.seqs.len();
        let k = ((n as f64) * share).round() as usize;
        if k == 0 || k >= n {
            return Err(Error::InvalidConfig(format!(
                "a held-out share of {share} leaves no sequences on one side of {n}"
            )));
        }
        let mut order: Vec<usize> = (0..n).collect();
        Rng::new(seed).shuffle(&mut order);
        let take = |ix: &[usize], this: &Dataset<T>| -> Result<Dataset<T>> {
            let seqs = ix.iter().map(|&i| this.seqs[i].clone()).collect();
            match &this.sources {
                Some(src) => {
                    Dataset::with_sources(seqs, ix.iter().map(|&i| src[i].clone()).collect())
                }
                None => Dataset::new(seqs),
            }
        };
        Ok((take(&order[..n - k], &self)?, take(&order[n - k..], &self)?))
    }
}
