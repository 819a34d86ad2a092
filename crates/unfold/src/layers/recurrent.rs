//! The recurrent layer: any [`Cell`] (RNN (tanh/ReLU), LSTM, GRU, leaky units, ...); stacked;
//! uni- or bidirectional; with PyTorch's parameter names and layout.
//!
//! The layer owns the parameters, the buffers and the stacking; the time loop of each layer
//! direction runs on the generic loop (`unrolled.rs`) or, for the cells that have one, on a
//! fused engine (`direction.rs`), chosen in [`Recurrent::uses_engine`].
//!
//! Four ways to run it, one set of parameters:
//! - [`Recurrent::forward_train`] keeps in a [`TrainCache`] exactly what backward needs;
//! - [`Recurrent::backward`] (BPTT) accumulates every parameter gradient and gives the gradients
//!   of the input sequence and of the initial state;
//! - [`Recurrent::forward_infer`] keeps nothing beyond reusable scratch ([`InferWorkspace`]);
//! - [`Recurrent::step`] advances one time step from a state the caller holds.
//!
//! Sequences are time-major `[T, B, F]` with optional per-sequence lengths (PyTorch packed
//! semantics). Buffers grow on first use and are reused: the time loop never allocates.

use crate::error::{check_len, Error, Result};
use crate::float::Float;
use crate::kernels::aligned::AlignedBuf;
use crate::layers::cell::Cell;
use crate::layers::config::{CellKind, RecurrentConfig};
use crate::layers::direction::{self, PreparedWeights, RecurrentWeights};
use crate::layers::engine_choice::{self, Engine};
use crate::layers::engine_io::{as_f32, BackwardBufs, ForwardBufs, SharedColumns};
use crate::layers::params::{CellParams, ParamSpec, Parameters};
use crate::layers::state::RecurrentState;
use crate::layers::sweep::Sweep;
use crate::layers::unrolled::{self, Sizes};
use crate::layers::{cells, stream};
use crate::rng::Rng;
use std::sync::Arc;

/// A batch of sequences as a recurrent layer reads it: `x` (`[steps, batch, input_size]`,
/// time-major) and, for a ragged batch, each sequence's length (PyTorch's packed semantics;
/// `None` when all run the whole `steps`).
#[derive(Clone, Copy, Debug)]
pub struct SeqInput<'a, T> {
    /// `[steps, batch, input_size]` inputs.
    pub x: &'a [T],
    /// Time steps.
    pub steps: usize,
    /// Sequences.
    pub batch: usize,
    /// Each sequence's length, or `None` for all `steps`.
    pub lengths: Option<&'a [usize]>,
}

/// A stacked, optionally bidirectional recurrent layer. Also serves as the container of its own
/// gradients (same names, same shapes): see [`Recurrent::zeros_like`].
#[derive(Debug, Clone)]
pub struct Recurrent<T> {
    config: RecurrentConfig,
    /// Parameters indexed by `layer * directions + direction`.
    cells: Vec<CellParams<T>>,
    /// The cell of each stacked layer (both directions share it).
    funcs: Vec<Arc<dyn Cell<T>>>,
    /// Run the generic loop even where an engine exists (see [`Recurrent::set_reference_loop`]).
    reference: bool,
}

impl<T: PartialEq> PartialEq for Recurrent<T> {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config && self.cells == other.cells
    }
}

/// Gradients of a [`Recurrent`] layer have the same structure as its parameters.
pub type RecurrentGrads<T> = Recurrent<T>;

/// Resizes `v` to `n` without shrinking its capacity; new elements are zero.
fn ensure<T: Float>(v: &mut Vec<T>, n: usize) {
    v.resize(n, T::ZERO);
}

impl<T: Float> Recurrent<T> {
    /// A layer with PyTorch's default initialisation: every weight and bias uniform in
    /// `[-1/sqrt(H), 1/sqrt(H)]`, drawn from `seed`.
    pub fn new(config: RecurrentConfig, seed: u64) -> Result<Self> {
        let mut layer = Self::zeros(config)?;
        let mut rng = Rng::new(seed);
        let nd = layer.config.directions();
        for (idx, p) in layer.cells.iter_mut().enumerate() {
            layer.funcs[idx / nd].init_params(p, &mut rng);
        }
        Ok(layer)
    }

    /// A layer whose parameters are all zero (also the shape of its gradients).
    pub fn zeros(config: RecurrentConfig) -> Result<Self> {
        config.validate()?;
        let mut cells = Vec::new();
        let mut funcs: Vec<Arc<dyn Cell<T>>> = Vec::new();
        for l in 0..config.num_layers {
            let cell = cells::build::<T>(
                config.kind,
                config.layer_input_size(l),
                config.hidden_size,
                config.bias,
            );
            for _ in 0..config.directions() {
                cells.push(CellParams::zeros_for(&cell.param_specs()));
            }
            funcs.push(Arc::from(cell));
        }
        Ok(Recurrent {
            config,
            cells,
            funcs,
            reference: false,
        })
    }

    /// The cell of stacked layer `layer`.
    pub fn cell_fn(&self, layer: usize) -> &dyn Cell<T> {
        &*self.funcs[layer]
    }

    /// Whether the time loops run on a fused engine (the PyTorch cells) rather than the
    /// generic loop: the one place where the choice between the two is made.
    pub fn uses_engine(&self) -> bool {
        engine_choice::has_engine(self.config.kind, self.reference)
    }

    /// The engine of one call over `batch` sequences (see [`engine_choice`]).
    fn engine(&self, batch: usize, training: bool) -> Engine {
        let is_f32 = as_f32(self.cells[0].w_hh()).is_some();
        engine_choice::choose(self.config.kind, self.reference, is_f32, batch, training)
    }

    /// Runs every time loop of this layer on the generic reference loop, even for a cell that
    /// has a fused engine (slower; the same results up to rounding). This is how the engines
    /// are tested, and a way to rule an engine out when a result looks wrong.
    pub fn set_reference_loop(&mut self, on: bool) {
        self.reference = on;
    }

    /// An all-zero layer of the same configuration: the gradient buffer for this layer.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.config.clone()).expect("configuration already validated")
    }

    /// The configuration.
    pub fn config(&self) -> &RecurrentConfig {
        &self.config
    }

    /// The weights of one layer and direction (0 forward, 1 reverse).
    pub fn cell(&self, layer: usize, dir: usize) -> &CellParams<T> {
        &self.cells[layer * self.config.directions() + dir]
    }

    /// Sets the forget-gate biases of an LSTM (both `b_ih` and `b_hh` rows `H..2H` of every
    /// layer and direction) so that their sum is `value`: a positive value (1 is the usual
    /// choice, Jozefowicz et al. 2015) makes the cell keep its state at the start of training,
    /// which helps on long-range tasks. PyTorch's default is a sum of two small uniform values.
    pub fn set_forget_bias(&mut self, value: T) -> Result<()> {
        if self.config.kind != CellKind::Lstm || !self.config.bias {
            return Err(Error::InvalidCall(
                "a forget-gate bias needs an LSTM layer with biases".into(),
            ));
        }
        let h = self.config.hidden_size;
        for c in &mut self.cells {
            c.get_mut(2)[h..2 * h].fill(value);
            c.get_mut(3)[h..2 * h].fill(T::ZERO);
        }
        Ok(())
    }

    /// Mutable weights of one layer and direction.
    pub fn cell_mut(&mut self, layer: usize, dir: usize) -> &mut CellParams<T> {
        let d = self.config.directions();
        &mut self.cells[layer * d + dir]
    }

    fn check_input(
        &self,
        x: &[T],
        steps: usize,
        batch: usize,
        lengths: Option<&[usize]>,
        init: Option<&RecurrentState<T>>,
    ) -> Result<()> {
        check_len(
            "input [T, B, I]",
            steps * batch * self.config.input_size,
            x.len(),
        )?;
        if let Some(l) = lengths {
            check_len("lengths", batch, l.len())?;
            if let Some((b, &len)) = l.iter().enumerate().find(|(_, &len)| len > steps) {
                return Err(Error::Shape {
                    what: format!("lengths[{b}]"),
                    expected: format!("<= {steps} (the number of steps)"),
                    got: len.to_string(),
                });
            }
        }
        if let Some(s) = init {
            s.check(&self.config, batch, "initial state")?;
        }
        Ok(())
    }

    /// Training forward over `x` (`[steps, batch, input_size]`), from `init` (zeros if `None`).
    /// Outputs and final state are read from the cache ([`TrainCache::output`],
    /// [`TrainCache::final_state`]); everything backward needs stays in it.
    pub fn forward_train(
        &self,
        x: &[T],
        steps: usize,
        batch: usize,
        lengths: Option<&[usize]>,
        init: Option<&RecurrentState<T>>,
        cache: &mut TrainCache<T>,
    ) -> Result<()> {
        let input = SeqInput {
            x,
            steps,
            batch,
            lengths,
        };
        self.forward_train_dropout(input, init, None, cache)
    }

    /// [`Recurrent::forward_train`] with dropout between stacked layers (PyTorch's `dropout`
    /// argument): each output of a layer below the top is zeroed with probability `p` and the
    /// rest scaled by `1 / (1 - p)` before the next layer reads it, masks drawn from `rng`.
    /// Backward uses the same masks. Inference and streaming never drop.
    pub fn forward_train_dropout(
        &self,
        input: SeqInput<'_, T>,
        init: Option<&RecurrentState<T>>,
        dropout: Option<(f64, &mut Rng)>,
        cache: &mut TrainCache<T>,
    ) -> Result<()> {
        let SeqInput {
            x,
            steps,
            batch,
            lengths,
        } = input;
        self.check_input(x, steps, batch, lengths, init)?;
        let mut dropout = dropout;
        if let Some((p, _)) = &dropout {
            if !(0.0..1.0).contains(p) {
                return Err(Error::InvalidConfig(format!(
                    "dropout must be in [0, 1) (got {p})"
                )));
            }
            if *p == 0.0 || self.config.num_layers < 2 {
                dropout = None;
            }
        }
        let cfg = &self.config;
        let (hs, nd, nl) = (cfg.hidden_size, cfg.directions(), cfg.num_layers);
        let gh = cfg.kind.gates() * hs;
        let tb = steps * batch;
        let choice = self.engine(batch, true);
        let engine = choice != Engine::Reference;
        cache.prepare(cfg, &self.funcs, engine, steps, batch, lengths);
        cache.input.clear();
        cache.input.extend_from_slice(x);
        match init {
            Some(s) => cache.init.copy_from(s),
            None => cache.init.set_zeros(cfg, batch),
        }
        cache.dropout = dropout.as_ref().map_or(0.0, |d| d.0);
        let TrainCache {
            input,
            outputs,
            gates,
            stores,
            lengths,
            init,
            final_state,
            hp,
            h2,
            weights,
            masks,
            dropped,
            records,
            work,
            sums,
            ..
        } = cache;
        if engine {
            weights.prepare(&self.cells, cfg.kind, hs, choice, true);
        }
        let e = cfg.extra_state_size();
        final_state.copy_from(init);
        if dropout.is_some() {
            masks.resize_with(nl - 1, Vec::new);
            dropped.resize_with(nl - 1, Vec::new);
        }
        if cfg.residual {
            sums.resize_with(nl, Vec::new);
        }
        for l in 0..nl {
            let (before, rest) = outputs.split_at_mut(l);
            // y_(l-1): the layer below's output, its cells' outputs plus its input when it has
            // a residual connection.
            let below: &[T] = match l {
                0 => &[],
                _ if cfg.adds_input(l - 1) => &sums[l - 1],
                _ => &before[l - 1],
            };
            if let (Some((p, rng)), true) = (dropout.as_mut(), l > 0) {
                let keep = T::from_f64(1.0 / (1.0 - *p));
                let (m, dr) = (&mut masks[l - 1], &mut dropped[l - 1]);
                ensure(m, tb * nd * hs);
                ensure(dr, tb * nd * hs);
                for ((mv, dv), &ov) in m.iter_mut().zip(dr.iter_mut()).zip(below.iter()) {
                    *mv = if rng.uniform() < *p { T::ZERO } else { keep };
                    *dv = ov * *mv;
                }
            }
            let x_l: &[T] = if l == 0 {
                input
            } else if dropout.is_some() {
                &dropped[l - 1]
            } else {
                below
            };
            let out = &mut rest[0];
            for d in 0..nd {
                let idx = l * nd + d;
                let sw = Sweep {
                    kind: cfg.kind,
                    hidden: hs,
                    batch,
                    steps,
                    lengths,
                    reverse: d == 1,
                    input_size: cfg.layer_input_size(l),
                };
                if !engine {
                    let cell = &*self.funcs[l];
                    let z = Sizes::of(cell);
                    let (hsl, esl) = (idx * batch * hs.., idx * batch * e..);
                    let f = unrolled::Forward {
                        x: x_l,
                        proj: &mut gates[idx][..tb * z.proj],
                        states: Some(&mut stores[idx][..tb * z.state]),
                        record: Some(&mut records[idx][..tb * z.record]),
                        out: &mut out[d * hs..],
                        out_ld: nd * hs,
                        h: &mut final_state.h[hsl.start..hsl.start + batch * hs],
                        extra: &mut final_state.c[esl.start..esl.start + batch * e],
                        work,
                    };
                    unrolled::forward(&sw, cell, &self.cells[idx], f);
                    continue;
                }
                let st = if cfg.kind == CellKind::Lstm || cfg.kind == CellKind::Gru {
                    Some(&mut stores[idx][..tb * hs])
                } else {
                    None
                };
                let hsl = idx * batch * hs..(idx + 1) * batch * hs;
                let c_slice = if cfg.kind.has_cell_state() {
                    &mut final_state.c[hsl.clone()]
                } else {
                    &mut []
                };
                direction::forward(
                    &sw,
                    &self.cells[idx],
                    weights.get(idx),
                    ForwardBufs {
                        x: x_l,
                        gates: &mut gates[idx][..tb * gh],
                        store: st,
                        out: &mut out[d * hs..],
                        out_ld: nd * hs,
                        h: &mut final_state.h[hsl],
                        c: c_slice,
                        hp: &mut hp[..],
                        h2,
                    },
                );
            }
            if cfg.adds_input(l) {
                let (done, sl) = sums.split_at_mut(l);
                let below: &[T] = if cfg.adds_input(l - 1) {
                    &done[l - 1]
                } else {
                    &outputs[l - 1]
                };
                add_rows(&mut sl[0], &outputs[l], below);
            }
        }
        cache.top_sum = cfg.adds_input(nl - 1);
        cache.ready = true;
        Ok(())
    }

    /// Backward through time after [`Recurrent::forward_train`].
    ///
    /// `dout` is the gradient on the outputs `[T, B, D*H]` (values at padded steps are ignored),
    /// `dfinal` the gradient on the final state; either may be absent (zero). Parameter gradients
    /// are *added* to `grads` (zero them once per optimisation step). When `need_input_grad`,
    /// [`TrainCache::dinput`] holds the input gradient; [`TrainCache::dinit`] always holds the
    /// initial-state gradient. The cache's forward buffers are consumed: call forward again
    /// before another backward.
    pub fn backward(
        &self,
        cache: &mut TrainCache<T>,
        dout: Option<&[T]>,
        dfinal: Option<&RecurrentState<T>>,
        grads: &mut RecurrentGrads<T>,
        need_input_grad: bool,
    ) -> Result<()> {
        if !cache.ready {
            return Err(Error::InvalidCall(
                "backward needs a training forward first (each forward allows one backward)".into(),
            ));
        }
        if grads.config != self.config {
            return Err(Error::InvalidCall(
                "gradient buffer has a different configuration than the layer".into(),
            ));
        }
        let cfg = &self.config;
        let (steps, batch) = (cache.steps, cache.batch);
        let (hs, nd, nl) = (cfg.hidden_size, cfg.directions(), cfg.num_layers);
        let gh = cfg.kind.gates() * hs;
        let tb = steps * batch;
        let od = nd * hs;
        if let Some(d) = dout {
            check_len("dout [T, B, D*H]", tb * od, d.len())?;
        }
        if let Some(s) = dfinal {
            s.check(cfg, batch, "final-state gradient")?;
        }
        cache.ready = false;
        let TrainCache {
            input,
            outputs,
            gates,
            stores,
            lengths,
            init,
            dinit,
            dbuf,
            dinput,
            ws,
            first,
            masks,
            dropped,
            dropout,
            h2,
            weights,
            records,
            work,
            bias_sums,
            sums,
            ..
        } = cache;
        let dropping = *dropout > 0.0;
        let engine = self.uses_engine();
        let e = cfg.extra_state_size();
        match dfinal {
            Some(s) => dinit.copy_from(s),
            None => {
                dinit.set_zeros(cfg, batch);
            }
        }
        // dbuf[0] holds the gradient on the current layer's output, dbuf[1] receives the
        // gradient on its input (the previous layer's output); they swap after each layer.
        ensure(&mut dbuf[0], tb * od);
        ensure(&mut dbuf[1], tb * od);
        match dout {
            Some(d) => dbuf[0].copy_from_slice(d),
            None => dbuf[0].fill(T::ZERO),
        }
        ensure(
            dinput,
            if need_input_grad {
                tb * cfg.input_size
            } else {
                0
            },
        );
        for l in (0..nl).rev() {
            let x_l: &[T] = if l == 0 {
                input
            } else if dropping {
                &dropped[l - 1]
            } else if cfg.adds_input(l - 1) {
                &sums[l - 1]
            } else {
                &outputs[l - 1]
            };
            let (dcur, dnext) = dbuf.split_at_mut(1);
            let dx: Option<&mut Vec<T>> = if l > 0 {
                Some(&mut dnext[0])
            } else if need_input_grad {
                Some(dinput)
            } else {
                None
            };
            let mut dx = dx;
            for d in 0..nd {
                let idx = l * nd + d;
                let sw = Sweep {
                    kind: cfg.kind,
                    hidden: hs,
                    batch,
                    steps,
                    lengths,
                    reverse: d == 1,
                    input_size: cfg.layer_input_size(l),
                };
                let hsl = idx * batch * hs..(idx + 1) * batch * hs;
                if !engine {
                    let cell = &*self.funcs[l];
                    let z = Sizes::of(cell);
                    let esl = idx * batch * e..(idx + 1) * batch * e;
                    let dxd = dx.as_deref_mut().map(|v| {
                        // The generic loop adds: the first direction starts from zero.
                        if d == 0 {
                            v.fill(T::ZERO);
                        }
                        &mut v[..]
                    });
                    let b = unrolled::Backward {
                        x: x_l,
                        proj: &mut gates[idx][..tb * z.proj],
                        states: &stores[idx][..tb * z.state],
                        record: &mut records[idx][..tb * z.record],
                        dout: Some(&dcur[0][d * hs..]),
                        out_ld: od,
                        h0: &init.h[hsl.clone()],
                        extra0: &init.c[esl.clone()],
                        dh: &mut dinit.h[hsl],
                        dextra: &mut dinit.c[esl],
                        work,
                    };
                    unrolled::backward(&sw, cell, &self.cells[idx], b, &mut grads.cells[idx], dxd);
                    continue;
                }
                let has_c = cfg.kind.has_cell_state();
                let (h0, c0): (&[T], &[T]) = (
                    &init.h[hsl.clone()],
                    if has_c { &init.c[hsl.clone()] } else { &[] },
                );
                let (dh, dc): (&mut [T], &mut [T]) = if has_c {
                    (&mut dinit.h[hsl.clone()], &mut dinit.c[hsl])
                } else {
                    (&mut dinit.h[hsl], &mut [])
                };
                let bufs = BackwardBufs {
                    x: x_l,
                    gates: &mut gates[idx][..tb * gh],
                    store: &mut stores[idx][..],
                    out: &outputs[l][d * hs..],
                    dout: Some(&dcur[0][d * hs..]),
                    out_ld: od,
                    h0,
                    c0,
                    dh,
                    dc,
                    ws,
                    first,
                    scratch: h2,
                    sums: &mut bias_sums[..],
                };
                direction::backward(
                    &sw,
                    &self.cells[idx],
                    weights.backward_panels(idx),
                    bufs,
                    &mut grads.cells[idx],
                    dx.as_deref_mut().map(|v| &mut v[..]),
                    d > 0,
                );
            }
            if l > 0 && dropping {
                for (g, &m) in dbuf[1].iter_mut().zip(&masks[l - 1]) {
                    *g *= m;
                }
            }
            if cfg.adds_input(l) {
                // The residual path: y_l = f(y_(l-1)) + y_(l-1).
                let (dcur, dbelow) = dbuf.split_at_mut(1);
                for (g, &d) in dbelow[0].iter_mut().zip(dcur[0].iter()) {
                    *g += d;
                }
            }
            dbuf.swap(0, 1);
        }
        Ok(())
    }

    /// Inference forward: same results as [`Recurrent::forward_train`], keeping nothing for
    /// backward. Outputs and final state are read from the workspace.
    pub fn forward_infer(
        &self,
        x: &[T],
        steps: usize,
        batch: usize,
        lengths: Option<&[usize]>,
        init: Option<&RecurrentState<T>>,
        ws: &mut InferWorkspace<T>,
    ) -> Result<()> {
        self.check_input(x, steps, batch, lengths, init)?;
        let cfg = &self.config;
        let (hs, nd, nl) = (cfg.hidden_size, cfg.directions(), cfg.num_layers);
        let gh = cfg.kind.gates() * hs;
        let tb = steps * batch;
        ws.steps = steps;
        ws.batch = batch;
        ws.lengths.clear();
        match lengths {
            Some(l) => ws.lengths.extend_from_slice(l),
            None => ws.lengths.resize(batch, steps),
        }
        match init {
            Some(s) => ws.state.copy_from(s),
            None => ws.state.set_zeros(cfg, batch),
        }
        let choice = self.engine(batch, false);
        let engine = choice != Engine::Reference;
        if engine {
            ws.weights.prepare(&self.cells, cfg.kind, hs, choice, false);
        }
        // The lane-layout LSTM keeps no gates: its scratch is a few rows of the state. Its two
        // directions run at once, one thread each, when there are two threads.
        let lanes = choice == Engine::Lanes;
        let side_by_side = lanes && nd == 2 && crate::kernels::gemm::effective_threads() >= 2;
        let per_direction = (0..nl)
            .map(|l| super::fused_lanes::scratch_len(cfg.layer_input_size(l), hs, batch))
            .max()
            .unwrap_or(0);
        let gates = match (lanes, side_by_side) {
            (true, true) => 2 * per_direction,
            (true, false) => per_direction,
            _ if !engine => {
                let z = self.funcs.iter().map(|f| Sizes::of(&**f));
                ensure(
                    &mut ws.work,
                    z.clone().map(|z| z.work_len(batch)).max().unwrap_or(0),
                );
                tb * z.map(|z| z.proj).max().unwrap_or(0)
            }
            _ => tb * gh,
        };
        let e = cfg.extra_state_size();
        ws.gates.resize(gates);
        ws.hp.resize(batch * gh);
        ensure(&mut ws.h2, super::fused::state_len(batch * hs));
        for o in ws.outs.iter_mut() {
            o.resize(tb * nd * hs);
        }
        ws.last = 0;
        let sweep = |l: usize, d: usize| Sweep {
            kind: cfg.kind,
            hidden: hs,
            batch,
            steps,
            lengths: &ws.lengths,
            reverse: d == 1,
            input_size: cfg.layer_input_size(l),
        };
        for l in 0..nl {
            let (a, b) = ws.outs.split_at_mut(1);
            let (src, dst) = if l % 2 == 0 {
                (&a[0], &mut b[0])
            } else {
                (&b[0], &mut a[0])
            };
            let x_l: &[T] = if l == 0 { x } else { src };
            if side_by_side {
                let n = batch * hs;
                let (g0, g1) = ws.gates[..gates].split_at_mut(per_direction);
                let (h0, h1) = ws.state.h[2 * l * n..(2 * l + 2) * n].split_at_mut(n);
                let (c0, c1) = ws.state.c[2 * l * n..(2 * l + 2) * n].split_at_mut(n);
                let out = SharedColumns {
                    ptr: dst.as_mut_ptr(),
                    len: dst.len(),
                    ld: 2 * hs,
                };
                let weights = &ws.weights;
                let run = |d: usize, h: &mut [T], c: &mut [T], g: &mut [T]| {
                    #[allow(clippy::redundant_locals)]
                    let out = out;
                    let _serial = crate::kernels::gemm::serial_scope();
                    // SAFETY: direction d writes only its own output columns d*H..(d+1)*H of
                    // `dst`, which outlives the join.
                    let done = unsafe {
                        direction::forward_lanes(
                            &sweep(l, d),
                            weights.get(2 * l + d),
                            x_l,
                            SharedColumns {
                                ptr: out.ptr.add(d * hs),
                                len: out.len - d * hs,
                                ..out
                            },
                            h,
                            c,
                            g,
                        )
                    };
                    assert!(done, "lane layout prepared but not taken");
                };
                rayon::join(|| run(0, h0, c0, g0), || run(1, h1, c1, g1));
                if cfg.adds_input(l) {
                    dst.iter_mut().zip(src.iter()).for_each(|(o, &i)| *o += i);
                }
                ws.last = if l % 2 == 0 { 1 } else { 0 };
                continue;
            }
            for d in 0..nd {
                let idx = l * nd + d;
                let sw = sweep(l, d);
                let hsl = idx * batch * hs..(idx + 1) * batch * hs;
                if !engine {
                    let f = unrolled::Forward {
                        x: x_l,
                        proj: &mut ws.gates[..gates],
                        states: None,
                        record: None,
                        out: &mut dst[d * hs..],
                        out_ld: nd * hs,
                        h: &mut ws.state.h[hsl],
                        extra: &mut ws.state.c[idx * batch * e..(idx + 1) * batch * e],
                        work: &mut ws.work,
                    };
                    unrolled::forward(&sw, &*self.funcs[l], &self.cells[idx], f);
                    continue;
                }
                let c_slice = if cfg.kind.has_cell_state() {
                    &mut ws.state.c[hsl.clone()]
                } else {
                    &mut []
                };
                direction::forward(
                    &sw,
                    &self.cells[idx],
                    ws.weights.get(idx),
                    ForwardBufs {
                        x: x_l,
                        gates: &mut ws.gates[..gates],
                        store: None,
                        out: &mut dst[d * hs..],
                        out_ld: nd * hs,
                        h: &mut ws.state.h[hsl],
                        c: c_slice,
                        hp: &mut ws.hp,
                        h2: &mut ws.h2,
                    },
                );
            }
            if cfg.adds_input(l) {
                dst.iter_mut().zip(src.iter()).for_each(|(o, &i)| *o += i);
            }
            ws.last = if l % 2 == 0 { 1 } else { 0 };
        }
        Ok(())
    }

    /// One streaming step: advances `state` (`[L, B, H]`, held by the caller) by one input row
    /// per sequence (`x`: `[B, I]`) and returns the top layer's new h (`[B, H]`). Allocates
    /// nothing once `ws` has been used with this batch size. Unidirectional layers only.
    pub fn step<'s>(
        &self,
        x: &[T],
        state: &'s mut RecurrentState<T>,
        ws: &'s mut StepWorkspace<T>,
    ) -> Result<&'s [T]> {
        let cfg = &self.config;
        if cfg.bidirectional {
            return Err(Error::InvalidCall(
                "a bidirectional layer cannot be stepped: its reverse direction needs the whole \
                 sequence"
                    .into(),
            ));
        }
        let batch = state.batch;
        check_len("step input [B, I]", batch * cfg.input_size, x.len())?;
        state.check(cfg, batch, "state")?;
        let (hs, nl) = (cfg.hidden_size, cfg.num_layers);
        let gh = cfg.kind.gates() * hs;
        ensure(&mut ws.gates, batch * gh);
        ensure(&mut ws.hp, batch * gh);
        ensure(&mut ws.out, batch * hs);
        // A residual stack's output is the running sum of its layers' h, kept in `ws.sum`.
        let residual = cfg.residual && nl > 1;
        let top = |state: &'s RecurrentState<T>, ws: &'s StepWorkspace<T>| -> &'s [T] {
            if residual {
                &ws.sum[..batch * hs]
            } else {
                &state.h[(nl - 1) * batch * hs..nl * batch * hs]
            }
        };
        if ws.lengths.len() != batch {
            ws.lengths.clear();
            ws.lengths.resize(batch, 1);
        }
        if !self.uses_engine() {
            let e = cfg.extra_state_size();
            for l in 0..nl {
                let cell = &*self.funcs[l];
                let z = Sizes::of(cell);
                ensure(&mut ws.gates, batch * z.proj);
                ensure(&mut ws.work, z.work_len(batch));
                let sw = Sweep {
                    kind: cfg.kind,
                    hidden: hs,
                    batch,
                    steps: 1,
                    lengths: &ws.lengths,
                    reverse: false,
                    input_size: cfg.layer_input_size(l),
                };
                // Layer l > 0 reads layer l-1's new h straight from the state (or the
                // running sum of a residual stack).
                let (below, h_l) = state.h.split_at_mut(l * batch * hs);
                let x_l: &[T] = if l == 0 {
                    x
                } else if residual {
                    &ws.sum
                } else {
                    &below[(l - 1) * batch * hs..]
                };
                let f = unrolled::Forward {
                    x: x_l,
                    proj: &mut ws.gates,
                    states: None,
                    record: None,
                    out: &mut ws.out,
                    out_ld: hs,
                    h: &mut h_l[..batch * hs],
                    extra: &mut state.c[l * batch * e..(l + 1) * batch * e],
                    work: &mut ws.work,
                };
                unrolled::forward(&sw, cell, &self.cells[l], f);
                if residual {
                    accumulate(
                        l,
                        &state.h[l * batch * hs..(l + 1) * batch * hs],
                        &mut ws.sum,
                    );
                }
            }
            return Ok(top(state, ws));
        }
        if batch == 1 {
            ensure(&mut ws.h_old, hs);
            for l in 0..nl {
                let has_c = cfg.kind.has_cell_state();
                let (below, h_l) = state.h.split_at_mut(l * hs);
                let x_l: &[T] = match l {
                    0 => x,
                    _ if residual => &ws.sum,
                    _ => &below[(l - 1) * hs..],
                };
                let c_l: &mut [T] = if has_c {
                    &mut state.c[l * hs..(l + 1) * hs]
                } else {
                    &mut []
                };
                stream::step_single(
                    cfg.kind,
                    &self.cells[l],
                    x_l,
                    &mut h_l[..hs],
                    c_l,
                    stream::StepScratch {
                        gates: &mut ws.gates[..gh],
                        hp: &mut ws.hp[..gh],
                        h_old: &mut ws.h_old,
                        out: &mut ws.out[..hs],
                    },
                );
                if residual {
                    accumulate(l, &state.h[l * hs..(l + 1) * hs], &mut ws.sum);
                }
            }
            return Ok(top(state, ws));
        }
        for l in 0..nl {
            let sw = Sweep {
                kind: cfg.kind,
                hidden: hs,
                batch,
                steps: 1,
                lengths: &ws.lengths,
                reverse: false,
                input_size: cfg.layer_input_size(l),
            };
            let hsl = l * batch * hs..(l + 1) * batch * hs;
            let c_slice = if cfg.kind.has_cell_state() {
                &mut state.c[hsl.clone()]
            } else {
                &mut []
            };
            // Layer l > 0 reads layer l-1's new h straight from the state (or the running
            // sum of a residual stack).
            let (below, h_l) = state.h.split_at_mut(hsl.start);
            let x_l: &[T] = if l == 0 {
                x
            } else if residual {
                &ws.sum
            } else {
                &below[(l - 1) * batch * hs..]
            };
            direction::forward(
                &sw,
                &self.cells[l],
                RecurrentWeights::AsStored,
                ForwardBufs {
                    x: x_l,
                    gates: &mut ws.gates,
                    store: None,
                    out: &mut ws.out,
                    out_ld: hs,
                    h: &mut h_l[..batch * hs],
                    c: c_slice,
                    hp: &mut ws.hp,
                    h2: &mut [],
                },
            );
            if residual {
                accumulate(l, &state.h[hsl], &mut ws.sum);
            }
        }
        Ok(top(state, ws))
    }
}

/// `sum = a + b`, elementwise (`sum` sized to `a`, which `b` must match).
fn add_rows<T: Float>(sum: &mut Vec<T>, a: &[T], b: &[T]) {
    ensure(sum, a.len());
    for ((s, &x), &y) in sum.iter_mut().zip(a).zip(b) {
        *s = x + y;
    }
}

/// The streaming output of a residual stack: after layer `l`, `y += h_l` (`y = h_0` after the
/// first layer).
fn accumulate<T: Float>(l: usize, h_l: &[T], y: &mut Vec<T>) {
    ensure(y, h_l.len());
    if l == 0 {
        y.copy_from_slice(h_l);
    } else {
        for (s, &v) in y.iter_mut().zip(h_l) {
            *s += v;
        }
    }
}

impl<T: Float> Parameters<T> for Recurrent<T> {
    /// Each cell's tensors as `{name}_l{layer}` (`_reverse` for the reverse direction):
    /// PyTorch's state_dict names for its cells.
    fn param_specs(&self) -> Vec<ParamSpec> {
        let nd = self.config.directions();
        let mut v = Vec::new();
        for (idx, _) in self.cells.iter().enumerate() {
            let (l, d) = (idx / nd, idx % nd);
            let sfx = if d == 1 { "_reverse" } else { "" };
            for spec in self.funcs[l].param_specs() {
                v.push(ParamSpec {
                    name: format!("{}_l{l}{sfx}", spec.name),
                    shape: spec.shape,
                });
            }
        }
        v
    }

    fn param_slices(&self) -> Vec<&[T]> {
        self.cells
            .iter()
            .flat_map(|c| c.tensors.iter().map(|t| &t[..]))
            .collect()
    }

    fn param_slices_mut(&mut self) -> Vec<&mut [T]> {
        self.cells
            .iter_mut()
            .flat_map(|c| c.tensors.iter_mut().map(|t| &mut t[..]))
            .collect()
    }
}

/// What a training forward keeps for backward, plus backward's scratch. Create once with
/// `TrainCache::default()` and reuse: buffers only grow.
#[derive(Debug, Default)]
pub struct TrainCache<T> {
    steps: usize,
    batch: usize,
    ready: bool,
    lengths: Vec<usize>,
    input: Vec<T>,
    /// Per layer: `[T, B, D*H]` outputs (zero at padded steps).
    outputs: Vec<AlignedBuf<T>>,
    /// Per layer and direction: `[T, B, G*H]` gates, then their gradients.
    gates: Vec<AlignedBuf<T>>,
    /// Per layer and direction: `[T, B, H]` c(t) (LSTM) or h_n (GRU).
    stores: Vec<AlignedBuf<T>>,
    init: RecurrentState<T>,
    final_state: RecurrentState<T>,
    hp: AlignedBuf<T>,
    h2: Vec<T>,
    dinit: RecurrentState<T>,
    dbuf: [Vec<T>; 2],
    dinput: Vec<T>,
    ws: Vec<T>,
    first: Vec<T>,
    weights: PreparedWeights<T>,
    /// Dropout probability of the last training forward (0: none).
    dropout: f64,
    /// Per layer boundary: `[T, B, D*H]` dropout multipliers (0 or 1/(1-p)).
    masks: Vec<Vec<T>>,
    /// Per layer boundary: the outputs after dropout (the next layer's input).
    dropped: Vec<Vec<T>>,
    /// Per layer with a residual connection: its output `y_l`, the cells' outputs plus the
    /// layer's input (empty for the others).
    sums: Vec<Vec<T>>,
    /// Whether the top layer's output is in `sums` (a residual top layer).
    top_sum: bool,
    /// Per layer and direction on the generic loop: `[T, B, R]` the cell's records.
    records: Vec<Vec<T>>,
    /// Scratch of the generic loop.
    work: Vec<T>,
    /// `[G*H]` the bias gradients' sum over the sequence (engines).
    bias_sums: Vec<T>,
}

impl<T: Float> TrainCache<T> {
    fn prepare(
        &mut self,
        cfg: &RecurrentConfig,
        funcs: &[Arc<dyn Cell<T>>],
        engine: bool,
        steps: usize,
        batch: usize,
        lengths: Option<&[usize]>,
    ) {
        let (hs, nd, nl) = (cfg.hidden_size, cfg.directions(), cfg.num_layers);
        let gh = cfg.kind.gates() * hs;
        let tb = steps * batch;
        self.steps = steps;
        self.batch = batch;
        self.ready = false;
        self.lengths.clear();
        match lengths {
            Some(l) => self.lengths.extend_from_slice(l),
            None => self.lengths.resize(batch, steps),
        }
        self.outputs.resize_with(nl, AlignedBuf::default);
        for o in &mut self.outputs {
            o.resize(tb * nd * hs);
        }
        self.gates.resize_with(nl * nd, AlignedBuf::default);
        self.stores.resize_with(nl * nd, AlignedBuf::default);
        let store_len = match cfg.kind {
            CellKind::Lstm | CellKind::Gru => tb * hs,
            _ => 0,
        };
        if engine {
            for (g, s) in self.gates.iter_mut().zip(self.stores.iter_mut()) {
                g.resize(tb * gh);
                s.resize(store_len);
            }
        } else {
            // The generic loop: projections, states after every step and records.
            self.records.resize_with(nl * nd, Vec::new);
            let mut work = 0;
            for (idx, ((g, s), r)) in self
                .gates
                .iter_mut()
                .zip(self.stores.iter_mut())
                .zip(self.records.iter_mut())
                .enumerate()
            {
                let z = Sizes::of(&*funcs[idx / nd]);
                g.resize(tb * z.proj);
                s.resize(tb * z.state);
                ensure(r, tb * z.record);
                work = work.max(z.work_len(batch));
            }
            ensure(&mut self.work, work);
        }
        self.hp.resize(batch * gh);
        ensure(&mut self.h2, super::fused::state_len(batch * hs));
        // Two steps' worth: the fused backward (GRU) keeps the previous step's.
        ensure(&mut self.ws, 2 * batch * gh);
        ensure(&mut self.bias_sums, gh);
        ensure(&mut self.first, batch * gh);
    }

    /// `(steps, batch)` of the last training forward.
    pub fn shape(&self) -> (usize, usize) {
        (self.steps, self.batch)
    }

    /// Each sequence's length in the last training forward.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// `[T, B, I_l]` what stacked layer `l` read in the last training forward (the input,
    /// or the layer below's output after dropout and residual sums), for a layer of `config`.
    pub fn layer_input(&self, config: &RecurrentConfig, l: usize) -> &[T] {
        if l == 0 {
            &self.input
        } else if self.dropout > 0.0 {
            &self.dropped[l - 1]
        } else if config.adds_input(l - 1) {
            &self.sums[l - 1]
        } else {
            &self.outputs[l - 1]
        }
    }

    /// The initial state of the last training forward.
    pub fn initial_state(&self) -> &RecurrentState<T> {
        &self.init
    }

    /// `[T, B, D*H]` outputs of the top layer (zero at padded steps).
    pub fn output(&self) -> &[T] {
        if self.top_sum {
            return self.sums.last().map(|v| &v[..]).unwrap_or(&[]);
        }
        self.outputs.last().map(|v| &v[..]).unwrap_or(&[])
    }

    /// Final state `[L*D, B, H]`, each sequence's at its own last step.
    pub fn final_state(&self) -> &RecurrentState<T> {
        &self.final_state
    }

    /// `[T, B, I]` gradient on the input (after a backward with `need_input_grad`).
    pub fn dinput(&self) -> &[T] {
        &self.dinput
    }

    /// Gradient on the initial state (after a backward).
    pub fn dinit(&self) -> &RecurrentState<T> {
        &self.dinit
    }

    /// Bytes held by the cache's buffers.
    pub fn bytes(&self) -> usize {
        let f = |v: &Vec<T>| v.capacity() * std::mem::size_of::<T>();
        let mut n = f(&self.input) + self.hp.bytes() + f(&self.dinput) + f(&self.ws);
        n += f(&self.first) + f(&self.h2) + self.weights.bytes();
        n += self.outputs.iter().map(|b| b.bytes()).sum::<usize>();
        n += self.gates.iter().map(|b| b.bytes()).sum::<usize>();
        n += self.stores.iter().map(|b| b.bytes()).sum::<usize>();
        n += self.dbuf.iter().map(f).sum::<usize>();
        n += self.records.iter().map(f).sum::<usize>() + f(&self.work);
        n
    }
}

/// Scratch of [`Recurrent::forward_infer`]: two ping-pong layer outputs, one gate buffer.
#[derive(Debug, Default)]
pub struct InferWorkspace<T> {
    steps: usize,
    batch: usize,
    lengths: Vec<usize>,
    gates: AlignedBuf<T>,
    hp: AlignedBuf<T>,
    h2: Vec<T>,
    outs: [AlignedBuf<T>; 2],
    last: usize,
    state: RecurrentState<T>,
    weights: PreparedWeights<T>,
    /// Scratch of the generic loop.
    work: Vec<T>,
}

impl<T: Float> InferWorkspace<T> {
    /// `[T, B, D*H]` outputs of the top layer.
    pub fn output(&self) -> &[T] {
        let n = self.outs[self.last].len();
        &self.outs[self.last][..n]
    }

    /// Final state `[L*D, B, H]`.
    pub fn final_state(&self) -> &RecurrentState<T> {
        &self.state
    }

    /// (steps, batch) of the last run.
    pub fn shape(&self) -> (usize, usize) {
        (self.steps, self.batch)
    }
}

/// Scratch of [`Recurrent::step`].
#[derive(Debug, Default)]
pub struct StepWorkspace<T> {
    h_old: Vec<T>,
    gates: Vec<T>,
    hp: Vec<T>,
    out: Vec<T>,
    lengths: Vec<usize>,
    /// Scratch of the generic loop.
    work: Vec<T>,
    /// The running output of a residual stack.
    sum: Vec<T>,
}
