//! Closed-loop forecasting with a trained pattern-I model of real values: the model reads a
//! history (one parallel pass over all of it, to warm its state up), then runs free, each
//! predicted mean fed back as the next step's input, for as many steps as asked. This is how a
//! one-step-ahead forecaster (trained on windows with targets one step ahead) continues a
//! series past its end.

use crate::data::{Dataset, Sequence, Values};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::output::OutputKind;
use crate::layers::StepWorkspace;
use crate::models::{InputSpec, SequenceLabeller};

impl<T: Float> SequenceLabeller<T> {
    /// Continues `history` (`[steps, D]` rows, row-major) by `horizon` steps in closed loop:
    /// returns `[horizon, D]` predicted means. The model must read `D` reals per step and
    /// predict a `D`-dimensional Gaussian (a one-step-ahead forecaster), run in one direction
    /// with no conditioning vector.
    pub fn forecast(&self, history: &[T], horizon: usize) -> Result<Vec<T>> {
        let cfg = self.config();
        let width = match (cfg.input, cfg.output) {
            (InputSpec::Reals { width, .. }, OutputKind::Gaussian { dim, .. }) if width == dim => {
                width
            }
            _ => {
                return Err(Error::InvalidCall(
                    "closed-loop forecasting needs a model that reads D reals per step and \
                     predicts D Gaussian values (a one-step-ahead forecaster)"
                        .into(),
                ))
            }
        };
        if cfg.bidirectional || self.conditioning().is_some() {
            return Err(Error::InvalidCall(
                "closed-loop forecasting runs forward in time with no conditioning vector: a \
                 bidirectional or conditioned model cannot"
                    .into(),
            ));
        }
        if history.is_empty() || !history.len().is_multiple_of(width) {
            return Err(Error::InvalidCall(format!(
                "a history of {} values is not a whole number (at least one) of rows of {width}",
                history.len()
            )));
        }
        let steps = history.len() / width;
        // Warm up over the whole history in one pass.
        let seq = Sequence {
            len: steps,
            input: Values::Reals {
                width,
                data: history.to_vec(),
            },
            target: Values::Reals {
                width,
                data: vec![T::ZERO; history.len()],
            },
        };
        let batch = Dataset::new(vec![seq])?.batch(&[0]);
        let mut ws = Default::default();
        self.forward_infer(&batch, None, &mut ws, None)?;
        let mut state = ws.infer_final_state().clone();
        let out_w = self.head.out_features();
        let last = &ws.logits()[(steps - 1) * out_w..steps * out_w];
        let mut input = Values::Reals {
            width,
            data: last[..width].to_vec(),
        };
        // Then run free, one step at a time, each mean fed back.
        let mut out = Vec::with_capacity(horizon * width);
        let mut step_ws = StepWorkspace::default();
        let (mut x, mut row) = (Vec::new(), vec![T::ZERO; out_w]);
        let mut head = crate::layers::HeadCache::default();
        for k in 0..horizon {
            let Values::Reals { data: next, .. } = &mut input else {
                unreachable!("the fed-back input is real-valued")
            };
            if k > 0 {
                next.copy_from_slice(&row[..width]);
            }
            out.extend_from_slice(next);
            if k + 1 == horizon {
                break;
            }
            let xin = self.input.forward(&input, 1, &mut x)?;
            let h = self.rnn.step(xin, &mut state, &mut step_ws)?;
            self.head.forward(h, 1, &mut row, &mut head)?;
        }
        Ok(out)
    }
}
