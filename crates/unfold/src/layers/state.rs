//! The state a recurrent layer carries between steps or chunks: h (and c for LSTM).

use crate::error::{check_len, Result};
use crate::float::Float;
use crate::layers::config::RecurrentConfig;

/// Hidden state of a recurrent layer, PyTorch layout `[num_layers * directions, B, H]`
/// (layer-major, forward before reverse). `c` is empty unless the cell is an LSTM.
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentState<T> {
    /// `[L * D, B, H]` hidden states.
    pub h: Vec<T>,
    /// `[L * D, B, H]` LSTM cell states, or empty.
    pub c: Vec<T>,
    /// Batch size B.
    pub batch: usize,
}

impl<T: Float> RecurrentState<T> {
    /// The all-zero state (PyTorch's default initial state).
    pub fn zeros(config: &RecurrentConfig, batch: usize) -> Self {
        let planes = config.num_layers * config.directions() * batch;
        RecurrentState {
            h: vec![T::ZERO; planes * config.hidden_size],
            c: vec![T::ZERO; planes * config.extra_state_size()],
            batch,
        }
    }

    /// Makes this the all-zero state of `batch` sequences for `config`, reusing the buffers
    /// (no allocation once they are large enough).
    pub fn set_zeros(&mut self, config: &RecurrentConfig, batch: usize) {
        let planes = config.num_layers * config.directions() * batch;
        self.h.clear();
        self.h.resize(planes * config.hidden_size, T::ZERO);
        self.c.clear();
        self.c.resize(planes * config.extra_state_size(), T::ZERO);
        self.batch = batch;
    }

    /// Checks the shapes against a layer configuration and batch size.
    pub fn check(&self, config: &RecurrentConfig, batch: usize, what: &str) -> Result<()> {
        let n = config.num_layers * config.directions() * batch * config.hidden_size;
        check_len(&format!("{what}.h"), n, self.h.len())?;
        let nc = config.num_layers * config.directions() * batch * config.extra_state_size();
        check_len(&format!("{what}.c"), nc, self.c.len())
    }

    /// Sets h and c to zero.
    pub fn reset(&mut self) {
        self.h.fill(T::ZERO);
        self.c.fill(T::ZERO);
    }

    /// Copies the top layer's h into `dst` (`[B, D*H]`: each sequence's directions side by
    /// side): the summary of a whole sequence, e.g. an encoder's context.
    pub fn top_h_into(&self, config: &RecurrentConfig, dst: &mut [T]) {
        let (h, nd, b) = (config.hidden_size, config.directions(), self.batch);
        let top = (config.num_layers - 1) * nd;
        for j in 0..b {
            for d in 0..nd {
                dst[(j * nd + d) * h..][..h]
                    .copy_from_slice(&self.h[((top + d) * b + j) * h..][..h]);
            }
        }
    }

    /// Sets the top layer's h from `src` (`[B, D*H]`, the layout of
    /// [`RecurrentState::top_h_into`]); the other layers are left as they are.
    pub fn set_top_h(&mut self, config: &RecurrentConfig, src: &[T]) {
        let (h, nd, b) = (config.hidden_size, config.directions(), self.batch);
        let top = (config.num_layers - 1) * nd;
        for j in 0..b {
            for d in 0..nd {
                self.h[((top + d) * b + j) * h..][..h]
                    .copy_from_slice(&src[(j * nd + d) * h..][..h]);
            }
        }
    }

    /// The state of sequences `j0..j1` of the batch (a state of `j1 - j0` sequences), for a
    /// layer of `config`.
    pub fn select(&self, config: &RecurrentConfig, j0: usize, j1: usize) -> Self {
        let b = self.batch;
        let pick = |v: &[T], w: usize| -> Vec<T> {
            if w == 0 {
                return Vec::new();
            }
            v.chunks_exact(b * w)
                .flat_map(|plane| &plane[j0 * w..j1 * w])
                .copied()
                .collect()
        };
        RecurrentState {
            h: pick(&self.h, config.hidden_size),
            c: pick(&self.c, config.extra_state_size()),
            batch: j1 - j0,
        }
    }

    /// Writes `part` (the state of `part.batch` sequences, as [`RecurrentState::select`] gives
    /// it) into sequences `j0..j0 + part.batch` of this state.
    pub fn place(&mut self, config: &RecurrentConfig, part: &RecurrentState<T>, j0: usize) {
        let (b, pb) = (self.batch, part.batch);
        let put = |dst: &mut [T], src: &[T], w: usize| {
            if w == 0 {
                return;
            }
            for (plane, from) in dst.chunks_exact_mut(b * w).zip(src.chunks_exact(pb * w)) {
                plane[j0 * w..(j0 + pb) * w].copy_from_slice(from);
            }
        };
        put(&mut self.h, &part.h, config.hidden_size);
        put(&mut self.c, &part.c, config.extra_state_size());
    }

    /// Copies another state of the same shape into this one, without allocating. This is how a
    /// final state is carried into the next chunk in truncated BPTT: values only, no gradient
    /// path back across the border.
    pub fn copy_from(&mut self, other: &RecurrentState<T>) {
        self.h.clone_from(&other.h);
        self.c.clone_from(&other.c);
        self.batch = other.batch;
    }
}

impl<T> Default for RecurrentState<T> {
    fn default() -> Self {
        RecurrentState {
            h: Vec::new(),
            c: Vec::new(),
            batch: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::CellKind;

    #[test]
    fn select_and_place_round_trip() {
        use crate::layers::{ClockSpec, DelaySpec};
        // Extra state of H (LSTM), 2H (delays up to 3) and one phase per module (clockwork).
        let kinds = [
            CellKind::Lstm,
            CellKind::Delay(DelaySpec::new(&[1, 3]).unwrap()),
            CellKind::Clockwork(ClockSpec::new(&[1, 2]).unwrap()),
        ];
        for kind in kinds {
            let mut config = RecurrentConfig::new(kind, 2, 3);
            config.num_layers = 2;
            config.bidirectional = true;
            let mut s = RecurrentState::<f64>::zeros(&config, 5);
            for (i, v) in s.h.iter_mut().enumerate() {
                *v = i as f64;
            }
            for (i, v) in s.c.iter_mut().enumerate() {
                *v = -(i as f64);
            }
            let part = s.select(&config, 1, 4);
            assert_eq!(part.batch, 3);
            part.check(&config, 3, "part").unwrap();
            // Plane 2 (layer 1, forward), sequence 1 (the part's first), unit 2.
            assert_eq!(part.h[(2 * 3) * 3 + 2], s.h[(2 * 5 + 1) * 3 + 2]);
            let e = config.extra_state_size();
            assert_eq!(part.c[2 * 3 * e + e - 1], s.c[(2 * 5 + 1) * e + e - 1]);
            let mut back = RecurrentState::zeros(&config, 5);
            back.place(&config, &s.select(&config, 0, 1), 0);
            back.place(&config, &part, 1);
            back.place(&config, &s.select(&config, 4, 5), 4);
            assert_eq!(back, s, "{kind:?}");
        }
    }
}
