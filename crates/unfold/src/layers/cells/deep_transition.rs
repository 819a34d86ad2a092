//! The deep transition RNN of Pascanu, Gulcehre, Cho and Bengio (2014), one of the chapter's
//! three ways of making a recurrent network deep (section 10.5): the map from `h(t-1)` to
//! `h(t)` is an MLP of `k` tanh layers instead of one,
//!
//! ```text
//! z_1 = tanh(W x(t) + U h(t-1) + b_1)
//! z_j = tanh(V_j z_(j-1) + b_j)                    j = 2..k-1
//! h(t) = z_k = tanh(V_k z_(k-1) + S h(t-1) + b_k)  (S only with the shortcut: DT(S)-RNN)
//! ```
//!
//! Without the shortcut (the DT-RNN) the path from one step to the next is `k` layers long,
//! which makes long-term dependencies harder to learn; the shortcut `S` (the DT(S)-RNN) adds a
//! path of one layer beside it. A step costs about `k` times a plain tanh step.
//!
//! Parameters: `weight_ih [H, I]`, `weight_hh [H, H]` (U), then for each layer `j = 2..k`
//! `weight_l{j} [H, H]`, then `weight_skip [H, H]` (S, with the shortcut and `k >= 2`), then
//! with biases `bias [H]` (b_1) and `bias_l{j} [H]`. Everything starts uniform in
//! `±1/sqrt(H)`.

use super::DenseInput;
use crate::float::Float;
use crate::kernels::gemm::{gemm_nn, gemm_nt, gemm_tn, sum_rows};
use crate::layers::cell::{Cell, StepBackward, StepForward};
use crate::layers::config::DeepSpec;
use crate::layers::params::{CellParams, ParamSpec};
use crate::rng::Rng;

/// A layer direction with a deep transition.
#[derive(Debug, Clone)]
pub struct DeepTransition {
    input: usize,
    hidden: usize,
    bias: bool,
    depth: usize,
    shortcut: bool,
}

impl DeepTransition {
    /// The cell for `input` features and `hidden` units, with the transition of `spec`.
    pub fn new(input: usize, hidden: usize, bias: bool, spec: DeepSpec) -> Self {
        DeepTransition {
            input,
            hidden,
            bias,
            depth: spec.depth.max(1),
            shortcut: spec.shortcut && spec.depth >= 2,
        }
    }

    /// Tensor index of `V_j` (`j = 2..k`).
    fn v(&self, j: usize) -> usize {
        j
    }

    /// Tensor index of `S`.
    fn skip(&self) -> usize {
        self.depth + 1
    }

    /// Tensor index of `b_j` (`j = 1..k`).
    fn b(&self, j: usize) -> usize {
        self.depth + 1 + usize::from(self.shortcut) + j - 1
    }

    /// Width of the record: the layers between the first and the last, `[z_2 .. z_(k-1)]`.
    fn record(&self) -> usize {
        self.depth.saturating_sub(2) * self.hidden
    }

    /// The input projection `x W^T + b`.
    fn dense_input(&self) -> DenseInput {
        DenseInput {
            input: self.input,
            hidden: self.hidden,
            bias: self.bias.then_some(self.b(1)),
        }
    }
}

impl<T: Float> Cell<T> for DeepTransition {
    fn name(&self) -> &'static str {
        "deep"
    }
    dense_input_methods!();
    fn param_specs(&self) -> Vec<ParamSpec> {
        let (h, i) = (self.hidden, self.input);
        let spec = |name: String, shape: Vec<usize>| ParamSpec { name, shape };
        let mut v = vec![
            spec("weight_ih".into(), vec![h, i]),
            spec("weight_hh".into(), vec![h, h]),
        ];
        for j in 2..=self.depth {
            v.push(spec(format!("weight_l{j}"), vec![h, h]));
        }
        if self.shortcut {
            v.push(spec("weight_skip".into(), vec![h, h]));
        }
        if self.bias {
            v.push(spec("bias".into(), vec![h]));
            for j in 2..=self.depth {
                v.push(spec(format!("bias_l{j}"), vec![h]));
            }
        }
        v
    }
    fn init_params(&self, p: &mut CellParams<T>, rng: &mut Rng) {
        super::uniform_init(p, self.hidden, rng);
    }
    fn record_width(&self) -> usize {
        self.record()
    }
    /// Two `[H]` gradient rows per sequence in backward.
    fn scratch_width(&self) -> usize {
        2 * self.hidden
    }

    /// The intermediate layers are recorded layer-major (`[k-2, B, H]`), and in inference
    /// they alternate between the two halves of the scratch.
    fn step(&self, p: &CellParams<T>, s: StepForward<'_, T>) {
        let (h, k, bsz) = (self.hidden, self.depth, s.batch);
        let n = bsz * h;
        // z_1 stays in proj.
        gemm_nt(bsz, h, h, s.prev, h, p.get(1), h, s.proj, h, true);
        s.proj[..n].iter_mut().for_each(|v| *v = v.tanh());
        if k == 1 {
            s.next[..n].copy_from_slice(&s.proj[..n]);
            return;
        }
        let ping = s.record.is_none();
        let store: &mut [T] = match s.record {
            Some(r) => r,
            None => &mut s.scratch[..2 * n],
        };
        let slot = |j: usize| if ping { (j - 2) % 2 } else { j - 2 };
        for j in 2..=k {
            if j == k {
                let src: &[T] = if j == 2 {
                    &s.proj[..n]
                } else {
                    &store[slot(j - 1) * n..][..n]
                };
                self.layer(p, j, bsz, src, s.prev, &mut s.next[..n]);
            } else if j == 2 {
                let dst = &mut store[slot(j) * n..][..n];
                self.layer(p, j, bsz, &s.proj[..n], s.prev, dst);
            } else {
                let (src, dst) = two_slots(store, slot(j - 1), slot(j), n);
                self.layer(p, j, bsz, src, s.prev, dst);
            }
        }
    }

    fn step_backward(&self, p: &CellParams<T>, s: StepBackward<'_, T>, g: &mut CellParams<T>) {
        let (h, k, bsz) = (self.hidden, self.depth, s.batch);
        let n = bsz * h;
        let StepBackward {
            proj,
            record,
            prev,
            next,
            dnext,
            dprev,
            scratch,
            ..
        } = s;
        dprev[..n].fill(T::ZERO);
        if k == 1 {
            for ((d, &dn), &y) in proj[..n].iter_mut().zip(&dnext[..n]).zip(&next[..n]) {
                *d = dn * (T::ONE - y * y);
            }
        } else {
            let (mut cur, mut below) = scratch[..2 * n].split_at_mut(n);
            for ((d, &dn), &y) in cur.iter_mut().zip(&dnext[..n]).zip(&next[..n]) {
                *d = dn * (T::ONE - y * y);
            }
            for j in (2..=k).rev() {
                let z: &[T] = if j == 2 {
                    &proj[..n]
                } else {
                    &record[(j - 3) * n..][..n]
                };
                gemm_tn(h, h, bsz, cur, h, z, h, g.get_mut(self.v(j)), h, true);
                if self.bias {
                    sum_rows(bsz, h, cur, h, g.get_mut(self.b(j)));
                }
                if j == k && self.shortcut {
                    gemm_tn(h, h, bsz, cur, h, prev, h, g.get_mut(self.skip()), h, true);
                    gemm_nn(bsz, h, h, cur, h, p.get(self.skip()), h, dprev, h, true);
                }
                gemm_nn(bsz, h, h, cur, h, p.get(self.v(j)), h, below, h, false);
                for (d, &y) in below.iter_mut().zip(z) {
                    *d *= T::ONE - y * y;
                }
                std::mem::swap(&mut cur, &mut below);
            }
            // `cur` now holds the gradient on z_1's pre-activation.
            proj[..n].copy_from_slice(cur);
        }
        gemm_nn(bsz, h, h, proj, h, p.get(1), h, dprev, h, true);
        gemm_tn(h, h, bsz, proj, h, prev, h, g.get_mut(1), h, true);
    }
}

impl DeepTransition {
    /// Layer `j >= 2` of the transition for the batch: `dst = tanh(b_j + src V_j^T)`, plus
    /// `prev S^T` inside the tanh for the last layer with the shortcut.
    fn layer<T: Float>(
        &self,
        p: &CellParams<T>,
        j: usize,
        bsz: usize,
        src: &[T],
        prev: &[T],
        dst: &mut [T],
    ) {
        let h = self.hidden;
        if self.bias {
            for r in dst.chunks_exact_mut(h) {
                r.copy_from_slice(p.get(self.b(j)));
            }
        }
        gemm_nt(bsz, h, h, src, h, p.get(self.v(j)), h, dst, h, self.bias);
        if j == self.depth && self.shortcut {
            gemm_nt(bsz, h, h, prev, h, p.get(self.skip()), h, dst, h, true);
        }
        dst.iter_mut().for_each(|v| *v = v.tanh());
    }
}

/// Slots `a` (read) and `b` (written), `a != b`, of `n` values each in `buf`.
fn two_slots<T>(buf: &mut [T], a: usize, b: usize, n: usize) -> (&[T], &mut [T]) {
    if a < b {
        let (lo, hi) = buf.split_at_mut(b * n);
        (&lo[a * n..][..n], &mut hi[..n])
    } else {
        let (lo, hi) = buf.split_at_mut(a * n);
        (&hi[..n], &mut lo[b * n..][..n])
    }
}
