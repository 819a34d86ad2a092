//! Generating from a language model (a [`SequenceLabeller`] over symbols with a softmax
//! output): one streaming step at a time from a state held here, drawing each next symbol with
//! temperature, top-k, top-p (nucleus) or greedy decoding, stopping at `<end>` or a maximum
//! length, and handing each symbol to the caller as it is produced.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::output::{argmax, OutputKind};
use crate::layers::{HeadCache, RecurrentState, StepWorkspace};
use crate::models::input::InputLayer;
use crate::models::SequenceLabeller;
use crate::rng::Rng;

/// How the next symbol is drawn from the softmax.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Divides the logits (below 1 sharpens, above 1 flattens). Default 1.
    pub temperature: f64,
    /// Keep only the k most likely symbols (0: all). Default 0.
    pub top_k: usize,
    /// Keep the smallest set of most likely symbols whose probability reaches p (1: all).
    /// Default 1.
    pub top_p: f64,
    /// Always take the most likely symbol. Default false.
    pub greedy: bool,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            greedy: false,
        }
    }
}

impl Sampling {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(Error::InvalidConfig(format!(
                "temperature must be positive (got {})",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::InvalidConfig(format!(
                "top-p must be in (0, 1] (got {})",
                self.top_p
            )));
        }
        Ok(())
    }

    /// Draws a symbol from `logits`; `scratch` is reused between calls.
    pub fn pick<T: Float>(
        &self,
        logits: &[T],
        rng: &mut Rng,
        scratch: &mut Vec<(f64, usize)>,
    ) -> usize {
        if self.greedy {
            return argmax(logits);
        }
        let m = logits[argmax(logits)].to_f64();
        scratch.clear();
        scratch.extend(
            logits
                .iter()
                .enumerate()
                .map(|(i, v)| (((v.to_f64() - m) / self.temperature).exp(), i)),
        );
        if self.top_k > 0 || self.top_p < 1.0 {
            scratch.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            if self.top_k > 0 {
                scratch.truncate(self.top_k.max(1));
            }
            if self.top_p < 1.0 {
                let total: f64 = scratch.iter().map(|p| p.0).sum();
                let mut acc = 0.0;
                let mut keep = scratch.len();
                for (i, p) in scratch.iter().enumerate() {
                    acc += p.0;
                    if acc >= self.top_p * total {
                        keep = i + 1;
                        break;
                    }
                }
                scratch.truncate(keep);
            }
        }
        let total: f64 = scratch.iter().map(|p| p.0).sum();
        let mut u = rng.uniform() * total;
        for &(p, i) in scratch.iter() {
            u -= p;
            if u <= 0.0 {
                return i;
            }
        }
        scratch.last().map_or(0, |p| p.1)
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The `<end>` symbol was drawn (it is not part of the output).
    End,
    /// The maximum length was reached.
    MaxLength,
    /// The caller's callback asked to stop.
    Caller,
}

/// Steps a language model one symbol at a time.
pub struct Generator<'m, T> {
    model: &'m SequenceLabeller<T>,
    cond: Vec<T>,
    xe: Vec<T>,
    pre: Vec<T>,
    state: RecurrentState<T>,
    ws: StepWorkspace<T>,
    x: Vec<T>,
    logits: Vec<T>,
    /// The deep output's activations.
    head: HeadCache<T>,
    scratch: Vec<(f64, usize)>,
}

impl<'m, T: Float> Generator<'m, T> {
    /// A generator at the zero state; the model must read symbols, be unidirectional and have
    /// a categorical output.
    pub fn new(model: &'m SequenceLabeller<T>) -> Result<Self> {
        if !matches!(model.input, InputLayer::Embedding(_)) {
            return Err(Error::InvalidCall(
                "generation needs a model that reads symbols".into(),
            ));
        }
        if !matches!(model.output.kind(), OutputKind::Categorical { .. }) {
            return Err(Error::InvalidCall(
                "generation needs a categorical output".into(),
            ));
        }
        if model.rnn.config().bidirectional {
            return Err(Error::InvalidCall(
                "a bidirectional model cannot generate: it needs the future".into(),
            ));
        }
        Ok(Generator {
            model,
            cond: Vec::new(),
            xe: Vec::new(),
            pre: Vec::new(),
            state: RecurrentState::zeros(model.rnn.config(), 1),
            ws: StepWorkspace::default(),
            x: Vec::new(),
            logits: vec![T::ZERO; model.head.out_features()],
            head: HeadCache::default(),
            scratch: Vec::new(),
        })
    }

    /// Sets the conditioning vector of a conditioned model (a class, an image embedding):
    /// every later generation starts from it.
    pub fn set_condition(&mut self, c: &[T]) -> Result<()> {
        match self.model.conditioning() {
            Some(cc) => crate::error::check_len("conditioning vector", cc.width, c.len())?,
            None => return Err(Error::InvalidCall("this model is not conditioned".into())),
        }
        self.cond = c.to_vec();
        Ok(())
    }

    /// Back to the initial state: zero, or the one the condition gives.
    pub fn reset(&mut self) {
        self.state.reset();
        if !self.cond.is_empty() {
            let _ = self
                .model
                .cond_state(&self.cond, 1, &mut self.pre, &mut self.state);
        }
    }

    /// Feeds one symbol and returns the logits of the next.
    pub fn feed(&mut self, id: usize) -> Result<&[T]> {
        let InputLayer::Embedding(e) = &self.model.input else {
            unreachable!("checked in new");
        };
        if self.model.conditioning().is_some() && self.cond.is_empty() {
            return Err(Error::InvalidCall(
                "a conditioned model needs set_condition before generating".into(),
            ));
        }
        self.xe.resize(e.dim(), T::ZERO);
        e.forward(&[id], &mut self.xe)?;
        self.x.clear();
        self.x.extend_from_slice(&self.xe);
        let every = self
            .model
            .conditioning()
            .is_some_and(|c| c.mode != crate::models::labeller::CondMode::InitialState);
        if every {
            self.x.extend_from_slice(&self.cond);
        }
        let h = self
            .model
            .rnn
            .step(&self.x, &mut self.state, &mut self.ws)?;
        self.model
            .head
            .forward(h, 1, &mut self.logits, &mut self.head)?;
        Ok(&self.logits)
    }

    /// From the zero state, feeds `start` (e.g. `<bos>` then a priming text), then draws
    /// symbols until `end` is drawn, `max_len` symbols were drawn, or `on_symbol` returns
    /// false. Returns the drawn symbols (without `end`) and why it stopped.
    pub fn generate(
        &mut self,
        start: &[usize],
        end: Option<usize>,
        max_len: usize,
        sampling: &Sampling,
        rng: &mut Rng,
        mut on_symbol: impl FnMut(usize) -> bool,
    ) -> Result<(Vec<usize>, Stop)> {
        sampling.validate()?;
        if start.is_empty() {
            return Err(Error::InvalidCall(
                "generation needs at least one starting symbol".into(),
            ));
        }
        self.reset();
        for &s in start {
            self.feed(s)?;
        }
        let mut out = Vec::new();
        loop {
            if out.len() >= max_len {
                return Ok((out, Stop::MaxLength));
            }
            let id = sampling.pick(&self.logits, rng, &mut self.scratch);
            if Some(id) == end {
                return Ok((out, Stop::End));
            }
            out.push(id);
            if !on_symbol(id) {
                return Ok((out, Stop::Caller));
            }
            self.feed(id)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_rules() {
        let logits = [2.0f64, 1.0, 0.0, -1.0];
        let mut rng = Rng::new(1);
        let mut scratch = Vec::new();
        let count = |s: Sampling, rng: &mut Rng, scratch: &mut Vec<(f64, usize)>| {
            let mut c = [0usize; 4];
            for _ in 0..20000 {
                c[s.pick(&logits, rng, scratch)] += 1;
            }
            c
        };
        let greedy = Sampling {
            greedy: true,
            ..Default::default()
        };
        assert_eq!(count(greedy, &mut rng, &mut scratch), [20000, 0, 0, 0]);
        let k2 = Sampling {
            top_k: 2,
            ..Default::default()
        };
        let c = count(k2, &mut rng, &mut scratch);
        assert_eq!(c[2] + c[3], 0);
        // P(0 | top 2) = e / (e + 1) = 0.731.
        assert!((c[0] as f64 / 20000.0 - 0.731).abs() < 0.015, "{c:?}");
        // Softmax probabilities: 0.644, 0.237, 0.087, 0.032; top-p 0.85 keeps the first two.
        let p = Sampling {
            top_p: 0.85,
            ..Default::default()
        };
        let c = count(p, &mut rng, &mut scratch);
        assert_eq!(c[2] + c[3], 0, "{c:?}");
        let plain = count(Sampling::default(), &mut rng, &mut scratch);
        assert!(
            (plain[3] as f64 / 20000.0 - 0.032).abs() < 0.006,
            "{plain:?}"
        );
        let cold = Sampling {
            temperature: 0.25,
            ..Default::default()
        };
        let c = count(cold, &mut rng, &mut scratch);
        assert!(c[0] > 19000, "{c:?}");
        assert!(Sampling {
            temperature: 0.0,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(Sampling {
            top_p: 0.0,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
