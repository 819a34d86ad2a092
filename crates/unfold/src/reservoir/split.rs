//! One long sequence run through an ESN on several threads at once.
//!
//! A single series (a forecasting workload) has no batch to spread over threads, and each step
//! depends on the one before. Here the units of every reservoir are split into ranges, one per
//! block, and a team of threads advances all ranges of a step together (one spin-wait per layer
//! and step, `kernels::team`). Each block also reads out its own units: it adds its share of
//! every output (`W_out[:, range] x[range]`) into a per-block buffer, so no thread waits for
//! the read-out; the shares, the bias and the input terms are summed once at the end. The state
//! of each layer is double-buffered, so a step reads the previous state while the other blocks
//! write the new one.

use super::esn::Esn;
use crate::kernels::gemm::SendPtr;
use crate::kernels::team::run_steps;

/// Fewest steps and units for which the split pays for its per-step synchronisation (about a
/// microsecond, while one step of 256 units costs a few).
pub(crate) const SPLIT_MIN_STEPS: usize = 64;
/// See [`SPLIT_MIN_STEPS`].
pub(crate) const SPLIT_MIN_UNITS: usize = 256;

impl Esn {
    /// Per-step outputs (`[T, O]`) of one `[T, D]` input sequence from zero states, with the
    /// units split between `threads` threads. Needs a per-step readout without feedback.
    pub(crate) fn predict_split(&self, input: &[f64], threads: usize) -> Vec<f64> {
        let (d, o, layers) = (self.inputs, self.outputs, self.layers.len());
        let steps = input.len() / d.max(1);
        let f = self.step_features();
        let blocks = threads.max(1);
        // Unit ranges of each layer, starting on multiples of 8 (the sparse product's slices).
        let ranges: Vec<Vec<(usize, usize)>> = self
            .layers
            .iter()
            .map(|l| {
                let n = l.units();
                let per = n.div_ceil(blocks).next_multiple_of(8);
                (0..blocks)
                    .map(|k| ((k * per).min(n), ((k + 1) * per).min(n)))
                    .collect()
            })
            .collect();
        // Feature offset of each layer's units in a readout row.
        let bias = usize::from(self.config.readout_bias);
        let input_width = if self.config.readout_input { d } else { 0 };
        let mut offsets = Vec::with_capacity(layers);
        let mut off = bias + input_width;
        for l in &self.layers {
            offsets.push(off);
            off += l.units();
        }
        // Two state buffers per layer: step t writes buffer t % 2 and reads the other.
        let mut states: Vec<[Vec<f64>; 2]> = self
            .layers
            .iter()
            .map(|l| [vec![0.0; l.units()], vec![0.0; l.units()]])
            .collect();
        let maxn = self.layers.iter().map(|l| l.units()).max().unwrap_or(0);
        let mut scratch = vec![0.0; blocks * maxn];
        let mut shares = vec![0.0; blocks * steps * o];
        let state_ptrs: Vec<[SendPtr<f64>; 2]> = states
            .iter_mut()
            .map(|[a, b]| [SendPtr(a.as_mut_ptr()), SendPtr(b.as_mut_ptr())])
            .collect();
        let (scratch_p, shares_p) = (SendPtr(scratch.as_mut_ptr()), SendPtr(shares.as_mut_ptr()));
        let (state_ptrs, scratch_p, shares_p) = (&state_ptrs, &scratch_p, &shares_p);
        run_steps(threads, steps * layers, blocks, |round, k| {
            let (t, l) = (round / layers, round % layers);
            let (r0, r1) = ranges[l][k];
            if r0 == r1 {
                return;
            }
            let layer = &self.layers[l];
            let n = layer.units();
            // SAFETY: within a round, block k alone writes units r0..r1 of layer l's buffer
            // t % 2, its own scratch and its own shares; every other access is a read of a
            // buffer no block writes in this round (the previous step's buffer, or the lower
            // layer's current one, finished in an earlier round). Rounds are separated by the
            // team's barrier.
            unsafe {
                let cur = state_ptrs[l][t % 2].0;
                let prev = std::slice::from_raw_parts(state_ptrs[l][(t + 1) % 2].0, n);
                let u = if l == 0 {
                    &input[t * d..(t + 1) * d]
                } else {
                    let below = self.layers[l - 1].units();
                    std::slice::from_raw_parts(state_ptrs[l - 1][t % 2].0, below)
                };
                let pre = std::slice::from_raw_parts_mut(scratch_p.0.add(k * maxn), r1 - r0);
                let out = std::slice::from_raw_parts_mut(cur.add(r0), r1 - r0);
                // The other blocks' units of the previous state were written on other cores:
                // one sequential pass brings them over with many lines in flight, where the
                // product's scattered reads would wait for them one at a time.
                std::hint::black_box(prev.iter().step_by(8).fold(0.0, |a, &v| a + v));
                layer.step_rows(prev, u, r0, r1, pre, out);
                let share = std::slice::from_raw_parts_mut(shares_p.0.add((k * steps + t) * o), o);
                for (q, s) in share.iter_mut().enumerate() {
                    let w = &self.readout[q * f + offsets[l] + r0..q * f + offsets[l] + r1];
                    let dot: f64 = w.iter().zip(out.iter()).map(|(a, b)| a * b).sum();
                    *s = if l == 0 { dot } else { *s + dot };
                }
            }
        });
        let mut outs = vec![0.0; steps * o];
        for t in 0..steps {
            for q in 0..o {
                let w = &self.readout[q * f..(q + 1) * f];
                let mut v = if bias == 1 { w[0] } else { 0.0 };
                for i in 0..input_width {
                    v += w[bias + i] * input[t * d + i];
                }
                for k in 0..blocks {
                    v += shares[(k * steps + t) * o + q];
                }
                outs[t * o + q] = v;
            }
        }
        outs
    }
}

#[cfg(test)]
mod tests {
    use crate::reservoir::{Esn, EsnConfig, ReadoutKind, ReservoirConfig};

    #[test]
    fn split_run_equals_the_single_thread_one() {
        // Two layers of 300 units (ragged ranges), inputs in the readout, leaky units, a bias.
        let cfg = EsnConfig {
            reservoir: ReservoirConfig {
                units: 300,
                connectivity: 0.03,
                leak_rate: 0.7,
                bias_scaling: 0.2,
                ..Default::default()
            },
            layers: 2,
            readout_input: true,
            ..Default::default()
        };
        let mut esn = Esn::new(cfg, 2, 3, ReadoutKind::PerStep).unwrap();
        let mut rng = crate::rng::Rng::new(3);
        esn.readout.iter_mut().for_each(|w| *w = rng.normal());
        let input: Vec<f64> = (0..2 * 150).map(|i| (i as f64 * 0.1).sin()).collect();
        let mut st = esn.state();
        let mut want = Vec::new();
        for u in input.chunks_exact(2) {
            want.extend_from_slice(esn.step(&mut st, u).unwrap());
        }
        for threads in [1, 2, 3] {
            let got = esn.predict_split(&input, threads);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() < 1e-10 * (1.0 + w.abs()),
                    "{threads}: {g} vs {w}"
                );
            }
        }
    }
}
