//! The cells, one file each, and their registration: [`build`] turns a
//! [`CellKind`] into the [`Cell`] that the generic time loop runs.
//!
//! - [`elman`]: `h = tanh(W_ih x + b_ih + W_hh h + b_hh)` or ReLU (PyTorch `nn.RNN`);
//! - [`lstm`]: PyTorch's `nn.LSTM` cell;
//! - [`gru`]: PyTorch's `nn.GRU` cell;
//! - [`leaky`]: the leaky-integrator unit `h = (1 - a) h + a tanh(W x + U h + b)`, one time
//!   constant per unit, fixed or learned;
//! - [`clockwork`]: the clockwork RNN, modules of tanh units updated at their own periods;
//! - [`delay`]: tanh units with recurrences from `h(t - d)` for several delays `d`;
//! - [`deep_transition`]: an MLP from `h(t-1)` to `h(t)` (DT-RNN), with an optional shortcut
//!   (DT(S)-RNN);
//! - [`tdnn`]: a time-delay layer (causal dilated convolution over time), the non-recurrent
//!   baseline, on the same contract.
//!
//! The three PyTorch cells share the layout of [`TorchLayout`]: `[W_ih, W_hh, b_ih, b_hh]`,
//! gates stacked by rows.

/// The methods of [`Cell`] that the PyTorch cells take from their `layout: TorchLayout`:
/// sizes, parameter specs and initialisation, and the input projection with its backward.
macro_rules! torch_layout_methods {
    () => {
        fn input_size(&self) -> usize {
            self.layout.input
        }
        fn hidden_size(&self) -> usize {
            self.layout.hidden
        }
        fn param_specs(&self) -> Vec<crate::layers::params::ParamSpec> {
            self.layout.specs()
        }
        fn init_params(&self, p: &mut CellParams<T>, rng: &mut crate::rng::Rng) {
            self.layout.init(p, rng)
        }
        fn projection_width(&self) -> usize {
            self.layout.gh()
        }
        fn project(&self, p: &CellParams<T>, x: &[T], rows: usize, proj: &mut [T]) {
            self.layout.project(p, x, rows, proj)
        }
        fn project_backward(
            &self,
            p: &CellParams<T>,
            x: &[T],
            dproj: &[T],
            rows: usize,
            grads: &mut CellParams<T>,
            dx: Option<&mut [T]>,
        ) {
            self.layout.project_backward(p, x, dproj, rows, grads, dx)
        }
    };
}

/// The methods of [`Cell`] that the cells with a [`DenseInput`] projection (from their
/// `dense_input()`) share: sizes and the projection with its backward.
macro_rules! dense_input_methods {
    () => {
        fn input_size(&self) -> usize {
            self.input
        }
        fn hidden_size(&self) -> usize {
            self.hidden
        }
        fn projection_width(&self) -> usize {
            self.hidden
        }
        fn project(&self, p: &CellParams<T>, x: &[T], rows: usize, proj: &mut [T]) {
            self.dense_input().project(p, x, rows, proj)
        }
        fn project_backward(
            &self,
            p: &CellParams<T>,
            x: &[T],
            dproj: &[T],
            rows: usize,
            g: &mut CellParams<T>,
            dx: Option<&mut [T]>,
        ) {
            self.dense_input()
                .project_backward(p, x, dproj, rows, g, dx)
        }
    };
}

pub mod clockwork;
pub mod deep_transition;
pub mod delay;
pub mod elman;
pub mod gru;
pub mod leaky;
pub mod lstm;
pub mod tdnn;

use crate::float::Float;
use crate::kernels::gemm::{gemm_nn, gemm_nt, gemm_tn, sum_rows};
use crate::layers::cell::Cell;
use crate::layers::config::CellKind;
use crate::layers::params::{CellParams, ParamSpec};
use crate::rng::Rng;

/// The registry: the cell of `kind` for one layer direction reading `input` features.
pub fn build<T: Float>(
    kind: CellKind,
    input: usize,
    hidden: usize,
    bias: bool,
) -> Box<dyn Cell<T>> {
    let layout = TorchLayout {
        input,
        hidden,
        gates: kind.gates(),
        bias,
    };
    match kind {
        CellKind::RnnTanh => Box::new(elman::Elman::new(layout, false)),
        CellKind::RnnRelu => Box::new(elman::Elman::new(layout, true)),
        CellKind::Lstm => Box::new(lstm::Lstm { layout }),
        CellKind::Gru => Box::new(gru::Gru { layout }),
        CellKind::Leaky(spec) => Box::new(leaky::Leaky::new(input, hidden, bias, spec)),
        CellKind::Clockwork(spec) => Box::new(clockwork::Clockwork::new(input, hidden, bias, spec)),
        CellKind::Delay(spec) => Box::new(delay::Delay::new(input, hidden, bias, spec)),
        CellKind::DeepTransition(spec) => Box::new(deep_transition::DeepTransition::new(
            input, hidden, bias, spec,
        )),
        CellKind::Tdnn(spec) => Box::new(tdnn::Tdnn::new(input, hidden, bias, spec)),
    }
}

/// PyTorch's parameter layout of a gated cell with `gates` blocks of `hidden` rows:
/// `weight_ih [G*H, I]`, `weight_hh [G*H, H]`, and with biases `bias_ih`, `bias_hh [G*H]`.
#[derive(Debug, Clone, Copy)]
pub struct TorchLayout {
    /// Input features I.
    pub input: usize,
    /// Hidden size H.
    pub hidden: usize,
    /// Gate blocks G.
    pub gates: usize,
    /// Whether there are biases.
    pub bias: bool,
}

impl TorchLayout {
    /// `G * H`.
    pub fn gh(&self) -> usize {
        self.gates * self.hidden
    }

    /// The four specs (two without biases).
    pub fn specs(&self) -> Vec<ParamSpec> {
        let gh = self.gh();
        let mut v = vec![
            ParamSpec {
                name: "weight_ih".into(),
                shape: vec![gh, self.input],
            },
            ParamSpec {
                name: "weight_hh".into(),
                shape: vec![gh, self.hidden],
            },
        ];
        if self.bias {
            for name in ["bias_ih", "bias_hh"] {
                v.push(ParamSpec {
                    name: name.into(),
                    shape: vec![gh],
                });
            }
        }
        v
    }

    /// PyTorch's initialisation: every value uniform in `[-1/sqrt(H), 1/sqrt(H)]`.
    pub fn init<T: Float>(&self, p: &mut CellParams<T>, rng: &mut Rng) {
        uniform_init(p, self.hidden, rng);
    }

    /// `proj = x W_ih^T + b_ih` over `rows` rows.
    pub fn project<T: Float>(&self, p: &CellParams<T>, x: &[T], rows: usize, proj: &mut [T]) {
        let (gh, i) = (self.gh(), self.input);
        let proj = &mut proj[..rows * gh];
        if self.bias {
            for r in proj.chunks_exact_mut(gh) {
                r.copy_from_slice(p.b_ih());
            }
        }
        gemm_nt(rows, gh, i, x, i, p.w_ih(), i, proj, gh, self.bias);
    }

    /// Backward of [`TorchLayout::project`].
    pub fn project_backward<T: Float>(
        &self,
        p: &CellParams<T>,
        x: &[T],
        dproj: &[T],
        rows: usize,
        g: &mut CellParams<T>,
        dx: Option<&mut [T]>,
    ) {
        let (gh, i) = (self.gh(), self.input);
        gemm_tn(gh, i, rows, dproj, gh, x, i, g.get_mut(0), i, true);
        if self.bias {
            sum_rows(rows, gh, dproj, gh, g.get_mut(2));
        }
        if let Some(dx) = dx {
            gemm_nn(rows, i, gh, dproj, gh, p.w_ih(), i, dx, i, true);
        }
    }

    /// `acc[B, G*H] (row stride ld) += h W_hh^T + b_hh`, `h` the first H values of each state
    /// row (stride `s`).
    pub fn add_recurrent<T: Float>(
        &self,
        p: &CellParams<T>,
        batch: usize,
        h: &[T],
        s: usize,
        acc: &mut [T],
        ld: usize,
    ) {
        let (gh, hs) = (self.gh(), self.hidden);
        if self.bias {
            for b in 0..batch {
                for (a, &v) in acc[b * ld..b * ld + gh].iter_mut().zip(p.b_hh()) {
                    *a += v;
                }
            }
        }
        gemm_nt(batch, gh, hs, h, s, p.w_hh(), hs, acc, ld, true);
    }

    /// Backward of [`TorchLayout::add_recurrent`] given `d` (`[B, G*H]`), the gradient on its
    /// result: adds `d W_hh` to `dh` (`[B, H]` in rows of `h`'s stride) and the `W_hh` and
    /// `b_hh` gradients to `g`.
    pub fn add_recurrent_backward<T: Float>(
        &self,
        p: &CellParams<T>,
        batch: usize,
        h: StridedRows<'_, T>,
        d: StridedRows<'_, T>,
        dh: &mut [T],
        g: &mut CellParams<T>,
    ) {
        let (gh, hs) = (self.gh(), self.hidden);
        let (s, ld, d, h) = (h.ld, d.ld, d.data, h.data);
        gemm_nn(batch, hs, gh, d, ld, p.w_hh(), hs, dh, s, true);
        gemm_tn(gh, hs, batch, d, ld, h, s, g.get_mut(1), hs, true);
        if self.bias {
            sum_rows(batch, gh, d, ld, g.get_mut(3));
        }
    }
}

/// The rows of a row-major matrix whose rows lie `ld` values apart in `data` (each row's
/// first values used, the rest belonging to something else).
#[derive(Clone, Copy, Debug)]
pub struct StridedRows<'a, T> {
    /// The values, row `r` starting at `r * ld`.
    pub data: &'a [T],
    /// The distance between rows.
    pub ld: usize,
}

/// The input projection `p = x W^T + b` of the cells whose projection is one dense map of
/// width H (leaky, clockwork, delay, deep transition): `W` is tensor 0 (`weight_ih [H, I]`) and
/// `b` the tensor at `bias` when the layer has biases.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DenseInput {
    /// Input features I.
    pub input: usize,
    /// Hidden size H.
    pub hidden: usize,
    /// Index of the bias tensor, if any.
    pub bias: Option<usize>,
}

impl DenseInput {
    /// `proj[rows, H] = x W^T + b`.
    pub fn project<T: Float>(&self, p: &CellParams<T>, x: &[T], rows: usize, proj: &mut [T]) {
        let (h, i) = (self.hidden, self.input);
        let proj = &mut proj[..rows * h];
        if let Some(bi) = self.bias {
            for r in proj.chunks_exact_mut(h) {
                r.copy_from_slice(p.get(bi));
            }
        }
        gemm_nt(rows, h, i, x, i, p.get(0), i, proj, h, self.bias.is_some());
    }

    /// Backward of [`DenseInput::project`]: adds the weight and bias gradients to `g` and, when
    /// `dx` is given, the input gradient to it.
    pub fn project_backward<T: Float>(
        &self,
        p: &CellParams<T>,
        x: &[T],
        dproj: &[T],
        rows: usize,
        g: &mut CellParams<T>,
        dx: Option<&mut [T]>,
    ) {
        let (h, i) = (self.hidden, self.input);
        gemm_tn(h, i, rows, dproj, h, x, i, g.get_mut(0), i, true);
        if let Some(bi) = self.bias {
            sum_rows(rows, h, dproj, h, g.get_mut(bi));
        }
        if let Some(dx) = dx {
            gemm_nn(rows, i, h, dproj, h, p.get(0), i, dx, i, true);
        }
    }
}

/// `data` seen as rows `ld` values apart.
pub(crate) fn strided<T>(data: &[T], ld: usize) -> StridedRows<'_, T> {
    StridedRows { data, ld }
}

/// Every tensor uniform in `[-1/sqrt(H), 1/sqrt(H)]`, in order, from one stream.
pub(crate) fn uniform_init<T: Float>(p: &mut CellParams<T>, hidden: usize, rng: &mut Rng) {
    let k = 1.0 / (hidden as f64).sqrt();
    for t in p.tensors.iter_mut() {
        for v in t.iter_mut() {
            *v = T::from_f64(rng.uniform_range(-k, k));
        }
    }
}
