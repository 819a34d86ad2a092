//! The engines of the four PyTorch cells, one direction of one layer: forward (training and
//! inference share it) and backward through time, portable, with the fused `f32` AVX-512 loops
//! (`fused.rs`, `fused_lanes.rs`) taken when their weights were prepared for them (the choice
//! itself is `engine_choice.rs`'s). They are
//! specialisations of the generic loop (`unrolled.rs`) and tested equal to it. The layer
//! (`recurrent.rs`) owns buffers and stacking; these functions only borrow slices and never
//! allocate in the time loop.

use crate::float::Float;
use crate::kernels::elman::{self, Activation};
use crate::kernels::gemm::{gemm_nn, gemm_nt, gemm_tn, sum_rows, transpose};
use crate::kernels::packed::PackedPanels;
use crate::kernels::{gru, lstm};
use crate::layers::config::{CellKind, EngineCell};
use crate::layers::engine_choice::Engine;
use crate::layers::engine_io::{
    as_f32, as_f32_mut, params_f32, BackwardBufs, ForwardBufs, SharedColumns,
};
use crate::layers::params::CellParams;
use crate::layers::sweep::Sweep;
use crate::layers::{fused, fused_lanes};

/// How a forward's per-step product reads W_hh.
#[derive(Clone, Copy)]
pub(crate) enum RecurrentWeights<'a, T> {
    /// W_hh as stored (`[G*H, H]`): the single-row paths read it directly.
    AsStored,
    /// W_hh transposed (`[H, G*H]`): the GEMM micro-kernel reads it without repacking.
    Transposed(&'a [T]),
    /// Packed panels for the fused `f32` AVX-512 path (`layers::fused`).
    Packed(&'a fused::PackedCell),
    /// Packed panels with the lane layout too (`layers::fused_lanes`): inference takes the
    /// lane-layout loop, training the fused one.
    Lanes(&'a fused::PackedCell),
}

fn activation(kind: CellKind) -> Activation {
    if kind == CellKind::RnnRelu {
        Activation::Relu
    } else {
        Activation::Tanh
    }
}

/// Forward of one direction (buffers in [`ForwardBufs`]); `whh` says how the per-step product
/// reads W_hh (see [`RecurrentWeights`]): packed weights take the fused loops (the lane layout
/// in inference where it applies), the others the portable loop.
pub(crate) fn forward<T: Float>(
    sw: &Sweep,
    p: &CellParams<T>,
    whh: RecurrentWeights<T>,
    f: ForwardBufs<T>,
) {
    if let RecurrentWeights::Packed(pk) | RecurrentWeights::Lanes(pk) = whh {
        // SAFETY: `out` is a live exclusive slice.
        if matches!(whh, RecurrentWeights::Lanes(_))
            && f.store.is_none()
            && unsafe {
                forward_lanes(
                    sw,
                    whh,
                    f.x,
                    SharedColumns {
                        ptr: f.out.as_mut_ptr(),
                        len: f.out.len(),
                        ld: f.out_ld,
                    },
                    f.h,
                    f.c,
                    f.gates,
                )
            }
        {
            return;
        }
        let p = params_f32(p).expect("packed weights are only prepared for f32");
        let f = f
            .into_f32()
            .expect("packed weights are only prepared for f32");
        fused::forward(sw, p, pk, f);
        return;
    }
    let ForwardBufs {
        x,
        gates,
        mut store,
        out,
        out_ld,
        h,
        c,
        hp,
        ..
    } = f;
    let (hs, bsz, gh) = (sw.hidden, sw.batch, sw.gh());
    let bias = !p.b_ih().is_empty();
    let is_gru = sw.kind == CellKind::Gru;
    // Input projection of the whole sequence: one GEMM on top of the broadcast biases.
    project_inputs(sw, p, x, gates, 0, sw.steps);
    let whh_t = match whh {
        RecurrentWeights::Transposed(wt) => Some(wt),
        _ => None,
    };
    let act = activation(sw.kind);
    for s in 0..sw.steps {
        let t = sw.fwd_t(s);
        let g_t = &mut gates[t * bsz * gh..(t + 1) * bsz * gh];
        if is_gru {
            if bias {
                for b in 0..bsz {
                    hp[b * gh..(b + 1) * gh].copy_from_slice(p.b_hh());
                }
            }
            recurrent_product(sw, h, p, whh_t, hp, bias);
        } else {
            recurrent_product(sw, h, p, whh_t, g_t, true);
        }
        for b in 0..bsz {
            let r = t * bsz + b;
            let o = &mut out[r * out_ld..r * out_ld + hs];
            let st = store.as_deref_mut().map(|s| &mut s[r * hs..(r + 1) * hs]);
            if t >= sw.lengths[b] {
                o.fill(T::ZERO);
                if let Some(st) = st {
                    st.fill(T::ZERO);
                }
                continue;
            }
            let g = &mut g_t[b * gh..(b + 1) * gh];
            let hb = &mut h[b * hs..(b + 1) * hs];
            match sw.engine() {
                EngineCell::RnnTanh | EngineCell::RnnRelu => elman::forward_row(act, g, hb, o),
                EngineCell::Lstm => {
                    lstm::forward_row(g, &mut c[b * hs..(b + 1) * hs], hb, o, st);
                }
                EngineCell::Gru => gru::forward_row(g, &hp[b * gh..(b + 1) * gh], hb, o, st),
            }
        }
    }
}

/// The lane-layout inference forward of one LSTM direction (`layers::fused_lanes`) when it
/// applies: `f32` weights packed for it, a batch it takes and scratch enough. Returns false,
/// having done nothing, otherwise. Arguments as for [`forward`] (inference), with `scratch` in
/// place of the gate buffer and `out` as this direction's columns of a shared buffer.
///
/// # Safety
/// `out` must be valid for `out.len` values, and nothing else may access this direction's
/// output columns (`r * out.ld + j`, `j < H`) meanwhile.
pub(crate) unsafe fn forward_lanes<T: Float>(
    sw: &Sweep,
    whh: RecurrentWeights<T>,
    x: &[T],
    out: SharedColumns<T>,
    h: &mut [T],
    c: &mut [T],
    scratch: &mut [T],
) -> bool {
    let RecurrentWeights::Lanes(pk) = whh else {
        return false;
    };
    if pk.lanes.is_empty()
        || !fused_lanes::usable(sw.kind, sw.batch)
        || scratch.len() < fused_lanes::scratch_len(sw.input_size, sw.hidden, sw.batch)
    {
        return false;
    }
    let xf = as_f32(x).expect("packed weights are only prepared for f32");
    let g = as_f32_mut(scratch).expect("T is f32");
    let (h, c) = (
        as_f32_mut(h).expect("T is f32"),
        as_f32_mut(c).expect("T is f32"),
    );
    // SAFETY: T is f32 (checked above); the caller guarantees `out`.
    unsafe {
        let out = SharedColumns {
            ptr: out.ptr as *mut f32,
            len: out.len,
            ld: out.ld,
        };
        fused_lanes::forward(sw, &pk.lanes, xf, out, h, c, g);
    }
    true
}

/// The input projection of time steps `t0..t1`: `gates[t] = b_ih (+ b_hh, except GRU) + x[t]
/// W_ih^T`, one GEMM over all their rows.
pub(crate) fn project_inputs<T: Float>(
    sw: &Sweep,
    p: &CellParams<T>,
    x: &[T],
    gates: &mut [T],
    t0: usize,
    t1: usize,
) {
    let (bsz, gh, i) = (sw.batch, sw.gh(), sw.input_size);
    let bias = !p.b_ih().is_empty();
    let rows = t0 * bsz..t1 * bsz;
    let g = &mut gates[rows.start * gh..rows.end * gh];
    if bias {
        for row in g.chunks_exact_mut(gh) {
            row.copy_from_slice(p.b_ih());
            if sw.kind != CellKind::Gru {
                for (r, &b) in row.iter_mut().zip(p.b_hh()) {
                    *r += b;
                }
            }
        }
    }
    let xs = &x[rows.start * i..];
    gemm_nt(rows.len(), gh, i, xs, i, p.w_ih(), i, g, gh, bias);
}

/// `c[B, G*H] (+)= h[B, H] W_hh^T`, from the transposed copy when there is one.
#[inline]
fn recurrent_product<T: Float>(
    sw: &Sweep,
    h: &[T],
    p: &CellParams<T>,
    whh_t: Option<&[T]>,
    c: &mut [T],
    acc: bool,
) {
    let (bsz, gh, hs) = (sw.batch, sw.gh(), sw.hidden);
    match whh_t {
        Some(wt) => gemm_nn(bsz, gh, hs, h, hs, wt, gh, c, gh, acc),
        None => gemm_nt(bsz, gh, hs, h, hs, p.w_hh(), hs, c, gh, acc),
    }
}

/// The portable time loop of [`backward`]: gate gradients row by row, then one GEMM per step
/// for dh(t-1).
fn backward_steps<T: Float>(sw: &Sweep, p: &CellParams<T>, b: &mut BackwardBufs<T>) {
    let BackwardBufs {
        gates,
        store,
        out,
        dout,
        out_ld,
        h0,
        c0,
        dh,
        dc,
        ws,
        first,
        ..
    } = b;
    let out_ld = *out_ld;
    let (hs, bsz, gh) = (sw.hidden, sw.batch, sw.gh());
    let is_gru = sw.kind == CellKind::Gru;
    let act = activation(sw.kind);
    first.fill(T::ZERO);
    for s in (0..sw.steps).rev() {
        let t = sw.fwd_t(s);
        for b in 0..bsz {
            let r = t * bsz + b;
            if t >= sw.lengths[b] {
                gates[r * gh..(r + 1) * gh].fill(T::ZERO);
                if is_gru {
                    ws[b * gh..(b + 1) * gh].fill(T::ZERO);
                    store[r * hs..(r + 1) * hs].fill(T::ZERO);
                }
                continue;
            }
            let dhb = &mut dh[b * hs..(b + 1) * hs];
            if let Some(d) = dout {
                for (a, &v) in dhb.iter_mut().zip(&d[r * out_ld..r * out_ld + hs]) {
                    *a += v;
                }
            }
            let first_step = sw.is_first(t, b);
            let pr = if first_step {
                usize::MAX
            } else {
                sw.prev_t(t) * bsz + b
            };
            let grow = &mut gates[r * gh..(r + 1) * gh];
            match sw.engine() {
                EngineCell::RnnTanh | EngineCell::RnnRelu => {
                    elman::backward_row(act, &out[r * out_ld..r * out_ld + hs], dhb, grow);
                    dhb.fill(T::ZERO);
                }
                EngineCell::Lstm => {
                    let (c_t, c_prev) = if first_step {
                        (&store[r * hs..(r + 1) * hs], &c0[b * hs..(b + 1) * hs])
                    } else {
                        (&store[r * hs..(r + 1) * hs], &store[pr * hs..(pr + 1) * hs])
                    };
                    lstm::backward_row(grow, c_t, c_prev, dhb, &mut dc[b * hs..(b + 1) * hs]);
                    dhb.fill(T::ZERO);
                }
                EngineCell::Gru => {
                    let h_prev = if first_step {
                        &h0[b * hs..(b + 1) * hs]
                    } else {
                        &out[pr * out_ld..pr * out_ld + hs]
                    };
                    gru::backward_row(
                        grow,
                        &mut store[r * hs..(r + 1) * hs],
                        &mut ws[b * gh..(b + 1) * gh],
                        h_prev,
                        dhb,
                    );
                }
            }
            if first_step {
                let src = if is_gru {
                    &ws[b * gh..(b + 1) * gh]
                } else {
                    &gates[r * gh..(r + 1) * gh]
                };
                first[b * gh..(b + 1) * gh].copy_from_slice(src);
            }
        }
        // dh(t-1) += dhp(t) W_hh for every row (inactive rows have dhp = 0: their carry stays).
        let dhp: &[T] = if is_gru {
            ws
        } else {
            &gates[t * bsz * gh..(t + 1) * bsz * gh]
        };
        gemm_nn(bsz, hs, gh, dhp, gh, p.w_hh(), hs, dh, hs, true);
    }
}

/// Backward through time of one direction: accumulates parameter gradients into `grads` and,
/// when `dx` is given, writes (or adds, `dx_acc`) the input gradient `[T*B, I]`. The time loop
/// runs fused when `packed` holds W_hh prepared for it (`f32` on AVX-512), else portably.
pub(crate) fn backward<T: Float>(
    sw: &Sweep,
    p: &CellParams<T>,
    packed: Option<&PackedPanels>,
    mut bufs: BackwardBufs<T>,
    grads: &mut CellParams<T>,
    dx: Option<&mut [T]>,
    dx_acc: bool,
) {
    match packed {
        Some(pk) => fused::backward(sw, pk, bufs.as_f32().expect("packed weights are f32")),
        None => backward_steps(sw, p, &mut bufs),
    }
    let BackwardBufs {
        x,
        gates,
        store,
        out,
        out_ld,
        h0,
        first,
        sums: gate_sums,
        ..
    } = bufs;
    let (hs, bsz, gh) = (sw.hidden, sw.batch, sw.gh());
    let tb = sw.steps * bsz;
    let is_gru = sw.kind == CellKind::Gru;

    // Weight gradients of the whole sequence as large GEMMs.
    let i = sw.input_size;
    gemm_tn(gh, i, tb, gates, gh, x, i, grads.get_mut(0), i, true);
    let bias = !p.b_ih().is_empty();
    // The bias gradients: every gate row summed over the sequence. Both biases of an LSTM or
    // Elman cell (and the r and z parts of a GRU's) get the same sum, so it is taken once (one
    // pass over the gates, which do not fit in L2 for long sequences).
    let add_sums = |dst: &mut [T], sums: &[T]| {
        for (g, &s) in dst.iter_mut().zip(sums) {
            *g += s;
        }
    };
    if bias {
        let gate_sums = &mut gate_sums[..gh];
        gate_sums.fill(T::ZERO);
        sum_rows(tb, gh, gates, gh, gate_sums);
        add_sums(grads.get_mut(2), gate_sums);
    }
    if sw.steps > 1 {
        let k = (sw.steps - 1) * bsz;
        // Row t of dhp pairs with h(t-1): the output one step earlier in this direction's order.
        let (dhp_off, out_off) = if sw.reverse {
            (0, bsz * out_ld)
        } else {
            (bsz, 0)
        };
        let hprev = &out[out_off..];
        if is_gru {
            let (gw_rz, gw_n) = grads.get_mut(1).split_at_mut(2 * hs * hs);
            gemm_tn(
                2 * hs,
                hs,
                k,
                &gates[dhp_off * gh..],
                gh,
                hprev,
                out_ld,
                gw_rz,
                hs,
                true,
            );
            gemm_tn(
                hs,
                hs,
                k,
                &store[dhp_off * hs..],
                hs,
                hprev,
                out_ld,
                gw_n,
                hs,
                true,
            );
        } else {
            let a = &gates[dhp_off * gh..];
            gemm_tn(gh, hs, k, a, gh, hprev, out_ld, grads.get_mut(1), hs, true);
        }
    }
    // The steps whose h(t-1) is the initial state.
    gemm_tn(gh, hs, bsz, first, gh, h0, hs, grads.get_mut(1), hs, true);
    if bias {
        if is_gru {
            let (b_rz, b_n) = grads.get_mut(3).split_at_mut(2 * hs);
            sum_rows(tb, hs, store, hs, b_n);
            // r and z: the same rows as b_ih's.
            add_sums(b_rz, gate_sums);
        } else {
            add_sums(grads.get_mut(3), gate_sums);
        }
    }
    if let Some(dx) = dx {
        gemm_nn(tb, i, gh, gates, gh, p.w_ih(), i, dx, i, dx_acc);
    }
}

/// W_hh of every cell of a layer prepared for the per-step products of one call: packed for
/// the fused `f32` AVX-512 path, transposed for the `gemm` crate, or used as stored (batches
/// of one or two rows). Refreshed at every forward, since the weights may have changed: one
/// pass over the weights per sequence saves one per step. Packed panels are kept with the
/// weights they came from and reused while the weights are equal (one comparison instead of a
/// packing pass, 4-5 % of an lstm-h256-b32 inference call).
#[derive(Debug, Default)]
pub(crate) struct PreparedWeights<T> {
    transposed: Vec<Vec<T>>,
    packed: Vec<fused::PackedCell>,
    /// W_hh packed for the backward product (training only).
    backward: Vec<PackedPanels>,
    /// The `f32` parameters `[W_ih, W_hh, b_ih, b_hh]` each packed cell was packed from (the
    /// lane layout packs the biases too), with the cell kind and hidden size: parameters equal
    /// to these (repeated inference, or any call between two updates) are not packed again.
    source: Vec<[Vec<f32>; 4]>,
    source_shape: Option<(CellKind, usize)>,
    mode: Prepared,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Prepared {
    #[default]
    AsStored,
    Transposed,
    Packed,
    Lanes,
}

impl<T: Float> PreparedWeights<T> {
    /// Prepares the forward products of `cells` for the engine the layer chose
    /// ([`crate::layers::engine_choice::choose`]), and the backward ones too when `training`.
    pub(crate) fn prepare(
        &mut self,
        cells: &[CellParams<T>],
        kind: CellKind,
        hs: usize,
        engine: Engine,
        training: bool,
    ) {
        let gh = kind.gates() * hs;
        self.mode = match engine {
            Engine::Reference | Engine::PortableRows => Prepared::AsStored,
            Engine::PortableGemm => Prepared::Transposed,
            Engine::Fused => Prepared::Packed,
            Engine::Lanes => Prepared::Lanes,
        };
        match self.mode {
            Prepared::AsStored => {}
            Prepared::Transposed => {
                self.transposed.resize_with(cells.len(), Vec::new);
                for (c, b) in cells.iter().zip(self.transposed.iter_mut()) {
                    b.resize(gh * hs, T::ZERO);
                    transpose(gh, hs, c.w_hh(), b);
                }
            }
            Prepared::Packed | Prepared::Lanes => {
                let same_shape = self.source_shape == Some((kind, hs));
                self.source_shape = Some((kind, hs));
                self.packed.resize_with(cells.len(), Default::default);
                self.source.resize_with(cells.len(), Default::default);
                // Backward panels exist for every cell only if the last call was training.
                let had_backward = self.backward.len() == cells.len();
                let n = if training { cells.len() } else { 0 };
                self.backward.resize_with(n, PackedPanels::default);
                for (i, c) in cells.iter().enumerate() {
                    let w_ih = as_f32(c.w_ih()).expect("checked above");
                    let w_hh = as_f32(c.w_hh()).expect("checked above");
                    let b_ih = as_f32(c.b_ih()).expect("checked above");
                    let b_hh = as_f32(c.b_hh()).expect("checked above");
                    let now = [w_ih, w_hh, b_ih, b_hh];
                    let src = &mut self.source[i];
                    let same = |a: &[f32], b: &[f32]| {
                        a.len() == b.len()
                            && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
                    };
                    let unchanged = same_shape && src.iter().zip(now).all(|(a, b)| same(a, b));
                    if !unchanged {
                        self.packed[i].pack(kind, hs, w_ih, w_hh);
                        for (s, n) in src.iter_mut().zip(now) {
                            s.clear();
                            s.extend_from_slice(n);
                        }
                    }
                    if self.mode == Prepared::Lanes && self.packed[i].lanes.is_empty() {
                        let input = w_ih.len() / (4 * hs);
                        self.packed[i].lanes.pack(hs, input, w_ih, w_hh, b_ih, b_hh);
                    }
                    if training && !(unchanged && had_backward) {
                        fused::pack_backward(kind, hs, w_hh, &mut self.backward[i]);
                    }
                }
            }
        }
    }

    /// How cell `idx`'s forward reads W_hh.
    pub(crate) fn get(&self, idx: usize) -> RecurrentWeights<'_, T> {
        match self.mode {
            Prepared::AsStored => RecurrentWeights::AsStored,
            Prepared::Transposed => RecurrentWeights::Transposed(&self.transposed[idx]),
            Prepared::Packed => RecurrentWeights::Packed(&self.packed[idx]),
            Prepared::Lanes => RecurrentWeights::Lanes(&self.packed[idx]),
        }
    }

    /// W_hh of cell `idx` packed for the fused backward, if prepared.
    pub(crate) fn backward_panels(&self, idx: usize) -> Option<&PackedPanels> {
        matches!(self.mode, Prepared::Packed | Prepared::Lanes)
            .then(|| self.backward.get(idx))
            .flatten()
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        let t: usize = self.transposed.iter().map(|v| v.capacity()).sum();
        let p: usize = self.packed.iter().map(|p| p.bytes()).sum::<usize>()
            + self.backward.iter().map(|p| p.bytes()).sum::<usize>();
        t * std::mem::size_of::<T>() + p
    }
}
