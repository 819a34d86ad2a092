//! The recursive layer: one composition function, the same weights at every node of a tree,
//! each node's state computed from its own input row and its children's states (the chapter's
//! recursive networks), run over a level-scheduled [`TreeBatch`] so that every level of every
//! tree in the batch is one matrix product, forward and backward (back-propagation through
//! structure).
//!
//! Cells ([`TreeCell`]) times ways of reading the children ([`Children`]):
//!
//! - `Rnn` + `Nary { n }`: Socher's recursive network, `h = tanh(W x + b + U [h_1; ...; h_n])`,
//!   missing children read as zeros (`n = 2` over binary trees is `tanh(W [h_l; h_r] + b)` with
//!   an input term for nodes that carry a word);
//! - `Rnn` + `Sum`: `h = tanh(W x + b + U sum_k h_k)`, any number of children;
//! - `Lstm` + `Sum`: the child-sum Tree-LSTM of Tai, Socher and Manning (2015), one forget gate
//!   per child, `f_k = sigmoid(W_f x + b_f + U_f h_k)`;
//! - `Lstm` + `Nary { n }`: their N-ary Tree-LSTM, every gate reading all `n` child positions
//!   with its own matrix, one forget gate per position.
//!
//! Parameters (`weight_ih`, `weight_hh`, `bias`): `weight_ih` is `[G H, I]` with `G = 1` for the
//! RNN and `G = 4` for the LSTM (gates `i, f, g, o` as in PyTorch; the N-ary LSTM shares `W_f x`
//! among its forget gates, as in the paper); `weight_hh` is `[H, K H]` for the RNN (`K = n`, or 1
//! for a sum), `[4 H, H]` for the child-sum LSTM (rows `i, f, g, o`; the `f` block reads each
//! child alone) and `[(n + 3) H, n H]` for the N-ary LSTM (rows `i, f_1..f_n, g, o`); `bias` is
//! `[G H]`.

use serde::{Deserialize, Serialize};

use crate::data::TreeBatch;
use crate::error::{check_len, Error, Result};
use crate::float::Float;
use crate::kernels::activations::{sigmoid_in_place, tanh_in_place};
use crate::kernels::gemm::{gemm_nn, gemm_nt, gemm_tn, sum_rows};
use crate::layers::params::{uniform_fill, ParamSpec, Parameters};

/// The composition function of a recursive layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TreeCell {
    /// `h = tanh(...)`.
    Rnn,
    /// A Tree-LSTM: input, forget (per child), cell and output gates and a memory cell.
    Lstm,
}

/// How a node reads its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Children {
    /// Their states summed (any number of children, order ignored; the Tree-LSTM's forget
    /// gates still see each child).
    Sum,
    /// Up to `n` children by position, each with its own weights (order matters; missing
    /// children read as zero states).
    Nary {
        /// The largest number of children.
        n: usize,
    },
}

impl Children {
    /// Child slots the hidden weights read (`n`, or 1 for a sum).
    pub fn slots(&self) -> usize {
        match *self {
            Children::Sum => 1,
            Children::Nary { n } => n,
        }
    }
}

/// Sizes and kind of a [`TreeLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeLayerConfig {
    /// The composition function.
    pub cell: TreeCell,
    /// How children are read.
    pub children: Children,
    /// Width of a node's input row.
    pub input_size: usize,
    /// Width of a node's state.
    pub hidden: usize,
}

impl TreeLayerConfig {
    /// Gate blocks of the input projection (1 or 4).
    pub fn input_gates(&self) -> usize {
        match self.cell {
            TreeCell::Rnn => 1,
            TreeCell::Lstm => 4,
        }
    }

    /// Gate blocks of the hidden projection (and of the cached activations).
    pub fn hidden_gates(&self) -> usize {
        match (self.cell, self.children) {
            (TreeCell::Rnn, _) => 1,
            (TreeCell::Lstm, Children::Sum) => 4,
            (TreeCell::Lstm, Children::Nary { n }) => n + 3,
        }
    }

    fn check(&self) -> Result<()> {
        if self.hidden == 0 {
            return Err(Error::InvalidConfig(
                "a tree layer needs hidden units".into(),
            ));
        }
        if let Children::Nary { n } = self.children {
            if n == 0 || n > 64 {
                return Err(Error::InvalidConfig(format!(
                    "an N-ary composition reads 1 to 64 children, not {n}"
                )));
            }
        }
        Ok(())
    }
}

/// A recursive layer's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeLayer<T> {
    config: TreeLayerConfig,
    /// `[G H, I]` input weights.
    pub weight_ih: Vec<T>,
    /// Hidden (children) weights, shape in the module docs.
    pub weight_hh: Vec<T>,
    /// `[G H]` bias.
    pub bias: Vec<T>,
}

/// What a forward pass keeps for backward, and the states it computed; reused across calls.
#[derive(Debug, Clone, Default)]
pub struct TreeCache<T> {
    /// `[nodes, G H]` input projections `W x + b`.
    pre: Vec<T>,
    /// `[nodes, Gh H]` gate activations (LSTM); unused for the RNN.
    gates: Vec<T>,
    /// `[nodes, K H]` the children's states as each node read them (summed, or by slot).
    kids: Vec<T>,
    /// `[nodes, H]` child-sum LSTM: `U_f h` of each node, read by its parent's forget gate.
    uf_h: Vec<T>,
    /// `[nodes, H]` child-sum LSTM: the forget gate each node's parent applied to its cell.
    fgate: Vec<T>,
    /// `[nodes, H]` states.
    pub h: Vec<T>,
    /// `[nodes, H]` memory cells (LSTM).
    pub c: Vec<T>,
    /// `[nodes, H]` tanh of the memory cells (LSTM).
    tc: Vec<T>,
    /// Rows of the nodes that read an input, their input rows and their projections.
    in_rows: Vec<usize>,
    xin: Vec<T>,
    pin: Vec<T>,
    nodes: usize,
}

/// Buffers of the backward pass, reused across calls.
#[derive(Debug, Clone, Default)]
pub struct TreeGradWork<T> {
    dpre: Vec<T>,
    dgates: Vec<T>,
    dkids: Vec<T>,
    dc: Vec<T>,
    duf: Vec<T>,
    dpin: Vec<T>,
    dxin: Vec<T>,
}

impl<T: Float> TreeLayer<T> {
    /// A layer with PyTorch's recurrent initialisation: uniform in `[-1/sqrt(H), 1/sqrt(H)]`.
    pub fn new(config: TreeLayerConfig, seed: u64) -> Result<Self> {
        let mut l = Self::zeros(config)?;
        uniform_fill(l.param_slices_mut(), config.hidden, seed);
        Ok(l)
    }

    /// All-zero parameters.
    pub fn zeros(config: TreeLayerConfig) -> Result<Self> {
        config.check()?;
        let (h, gx, gh, k) = (
            config.hidden,
            config.input_gates(),
            config.hidden_gates(),
            config.children.slots(),
        );
        Ok(TreeLayer {
            config,
            weight_ih: vec![T::ZERO; gx * h * config.input_size],
            weight_hh: vec![T::ZERO; gh * h * k * h],
            bias: vec![T::ZERO; gx * h],
        })
    }

    /// Zero parameters of the same shape: the gradient buffer.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.config).expect("checked when built")
    }

    /// The layer's settings.
    pub fn config(&self) -> TreeLayerConfig {
        self.config
    }

    /// Sets the forget-gate bias of a Tree-LSTM (no effect on the RNN).
    pub fn set_forget_bias(&mut self, value: T) {
        if self.config.cell == TreeCell::Lstm {
            let h = self.config.hidden;
            self.bias[h..2 * h].fill(value);
        }
    }

    /// Runs the layer over `batch` given its node input rows `x` (`[nodes, I]`; the rows of
    /// nodes without input, `batch.has_input[r] == false`, are not read): `cache.h` holds every node's state afterwards, and the
    /// cache what [`TreeLayer::backward`] needs. No allocation once the buffers have grown.
    pub fn forward(&self, batch: &TreeBatch<T>, x: &[T], cache: &mut TreeCache<T>) -> Result<()> {
        let cfg = self.config;
        let (n, h, i) = (batch.nodes, cfg.hidden, cfg.input_size);
        check_len("tree layer input [nodes, I]", n * i, x.len())?;
        if let Children::Nary { n: slots } = cfg.children {
            if batch.max_arity() > slots {
                return Err(Error::InvalidData(format!(
                    "a node has {} children; this {slots}-ary layer reads at most {slots}",
                    batch.max_arity()
                )));
            }
        }
        let (gx, gh, k) = (cfg.input_gates(), cfg.hidden_gates(), cfg.children.slots());
        let lstm = cfg.cell == TreeCell::Lstm;
        let sum_lstm = lstm && cfg.children == Children::Sum;
        cache.nodes = n;
        cache.pre.resize(n * gx * h, T::ZERO);
        cache.kids.resize(n * k * h, T::ZERO);
        cache.h.resize(n * h, T::ZERO);
        cache.c.resize(if lstm { n * h } else { 0 }, T::ZERO);
        cache.tc.resize(if lstm { n * h } else { 0 }, T::ZERO);
        cache
            .gates
            .resize(if lstm { n * gh * h } else { 0 }, T::ZERO);
        cache.uf_h.resize(if sum_lstm { n * h } else { 0 }, T::ZERO);
        cache
            .fgate
            .resize(if sum_lstm { n * h } else { 0 }, T::ZERO);
        // One GEMM for the input projection of every node that reads an input (the rows of
        // the others, a constituency tree's internal nodes, are skipped: about half the nodes
        // of a binary tree).
        for r in cache.pre.chunks_exact_mut(gx * h) {
            r.copy_from_slice(&self.bias);
        }
        cache.in_rows.clear();
        cache.in_rows.extend((0..n).filter(|&r| batch.has_input[r]));
        let k = cache.in_rows.len();
        let gxh = gx * h;
        if i > 0 && k == n {
            gemm_nt(
                n,
                gxh,
                i,
                x,
                i,
                &self.weight_ih,
                i,
                &mut cache.pre,
                gxh,
                true,
            );
        } else if i > 0 && k > 0 {
            cache.xin.resize(k * i, T::ZERO);
            for (j, &r) in cache.in_rows.iter().enumerate() {
                cache.xin[j * i..(j + 1) * i].copy_from_slice(&x[r * i..(r + 1) * i]);
            }
            cache.pin.resize(k * gxh, T::ZERO);
            gemm_nt(
                k,
                gxh,
                i,
                &cache.xin,
                i,
                &self.weight_ih,
                i,
                &mut cache.pin,
                gxh,
                false,
            );
            for (j, &r) in cache.in_rows.iter().enumerate() {
                let dst = &mut cache.pre[r * gxh..(r + 1) * gxh];
                dst.iter_mut()
                    .zip(&cache.pin[j * gxh..(j + 1) * gxh])
                    .for_each(|(d, &p)| *d += p);
            }
        }
        let levels = batch.levels();
        for l in 0..levels {
            let (a, b) = (batch.level_start[l], batch.level_start[l + 1]);
            let m = b - a;
            if m == 0 {
                continue;
            }
            if l > 0 {
                self.gather_children(batch, a, b, cache);
            }
            match cfg.cell {
                TreeCell::Rnn => self.rnn_level(a, b, l > 0, cache),
                TreeCell::Lstm => self.lstm_level(batch, a, b, l > 0, cache),
            }
            if sum_lstm && l + 1 < levels {
                // U_f h of this level's nodes, for their parents' forget gates.
                let wf = &self.weight_hh[h * h..2 * h * h];
                gemm_nt(
                    m,
                    h,
                    h,
                    &cache.h[a * h..b * h],
                    h,
                    wf,
                    h,
                    &mut cache.uf_h[a * h..b * h],
                    h,
                    false,
                );
            }
        }
        Ok(())
    }

    /// Fills `kids` for rows `a..b`: the sum of the children's states, or each child's state in
    /// its slot (zeros for missing ones).
    fn gather_children(&self, batch: &TreeBatch<T>, a: usize, b: usize, cache: &mut TreeCache<T>) {
        let h = self.config.hidden;
        let k = self.config.children.slots();
        let (kids, hs) = (&mut cache.kids, &cache.h);
        for r in a..b {
            let row = &mut kids[r * k * h..(r + 1) * k * h];
            row.fill(T::ZERO);
            for (slot, &c) in batch.children(r).iter().enumerate() {
                let src = &hs[c * h..(c + 1) * h];
                match k {
                    1 => row.iter_mut().zip(src).for_each(|(d, &s)| *d += s),
                    _ => row[slot * h..(slot + 1) * h].copy_from_slice(src),
                }
            }
        }
    }

    fn rnn_level(&self, a: usize, b: usize, has_kids: bool, cache: &mut TreeCache<T>) {
        let h = self.config.hidden;
        let kh = self.config.children.slots() * h;
        let m = b - a;
        let out = &mut cache.h[a * h..b * h];
        out.copy_from_slice(&cache.pre[a * h..b * h]);
        if has_kids {
            gemm_nt(
                m,
                h,
                kh,
                &cache.kids[a * kh..b * kh],
                kh,
                &self.weight_hh,
                kh,
                out,
                h,
                true,
            );
        }
        tanh_in_place(out);
    }

    fn lstm_level(
        &self,
        batch: &TreeBatch<T>,
        a: usize,
        b: usize,
        has_kids: bool,
        cache: &mut TreeCache<T>,
    ) {
        let cfg = self.config;
        let (h, gh) = (cfg.hidden, cfg.hidden_gates());
        let m = b - a;
        let gw = gh * h;
        let g = &mut cache.gates[a * gw..b * gw];
        match cfg.children {
            Children::Nary { n } if has_kids => {
                let kh = n * h;
                gemm_nt(
                    m,
                    gw,
                    kh,
                    &cache.kids[a * kh..b * kh],
                    kh,
                    &self.weight_hh,
                    kh,
                    g,
                    gw,
                    false,
                );
            }
            Children::Sum if has_kids => {
                // Rows i and g, o of U read the summed children; the f rows read each child.
                let s = &cache.kids[a * h..b * h];
                gemm_nt(m, h, h, s, h, &self.weight_hh[..h * h], h, g, gw, false);
                gemm_nt(
                    m,
                    2 * h,
                    h,
                    s,
                    h,
                    &self.weight_hh[2 * h * h..],
                    h,
                    &mut g[2 * h..],
                    gw,
                    false,
                );
            }
            _ => g.fill(T::ZERO),
        }
        let nf = gh - 3;
        for r in a..b {
            let p = &cache.pre[r * 4 * h..(r + 1) * 4 * h];
            let (p_i, p_rest) = p.split_at(h);
            let (p_f, p_rest) = p_rest.split_at(h);
            let (p_g, p_o) = p_rest.split_at(h);
            let gr = &mut cache.gates[r * gw..(r + 1) * gw];
            let (g_i, g_rest) = gr.split_at_mut(h);
            let (g_f, g_rest) = g_rest.split_at_mut(nf * h);
            let (g_g, g_o) = g_rest.split_at_mut(h);
            let (cs, ctail) = cache.c.split_at_mut(r * h);
            let cr = &mut ctail[..h];
            // Activations of i, g, o over whole slices (AVX-512 for f32), then c = i g.
            add_in_place(g_i, p_i);
            add_in_place(g_g, p_g);
            add_in_place(g_o, p_o);
            sigmoid_in_place(g_i);
            tanh_in_place(g_g);
            sigmoid_in_place(g_o);
            for ((cv, &iv), &gv) in cr.iter_mut().zip(g_i.iter()).zip(g_g.iter()) {
                *cv = iv * gv;
            }
            // One forget gate per child: c += f_k c_k.
            for (slot, &c) in batch.children(r).iter().enumerate() {
                let f: &mut [T] = match cfg.children {
                    Children::Nary { .. } => {
                        let f = &mut g_f[slot * h..(slot + 1) * h];
                        add_in_place(f, p_f);
                        f
                    }
                    Children::Sum => {
                        let f = &mut cache.fgate[c * h..(c + 1) * h];
                        f.copy_from_slice(&cache.uf_h[c * h..(c + 1) * h]);
                        add_in_place(f, p_f);
                        f
                    }
                };
                sigmoid_in_place(f);
                let cc = &cs[c * h..(c + 1) * h];
                for ((cv, &fv), &ck) in cr.iter_mut().zip(f.iter()).zip(cc) {
                    *cv += fv * ck;
                }
            }
            // h = o tanh(c), tanh(c) kept for backward.
            let tc = &mut cache.tc[r * h..(r + 1) * h];
            tc.copy_from_slice(cr);
            tanh_in_place(tc);
            let hr = &mut cache.h[r * h..(r + 1) * h];
            for ((hv, &ov), &t) in hr.iter_mut().zip(g_o.iter()).zip(tc.iter()) {
                *hv = ov * t;
            }
        }
    }

    /// Back-propagation through structure: given `dh` (`[nodes, H]`, the loss gradient on
    /// every node's state; overwritten as scratch), *adds* the parameter gradients to `grads`
    /// and writes the gradient on the input rows to `dx` (`[nodes, I]`).
    pub fn backward(
        &self,
        batch: &TreeBatch<T>,
        x: &[T],
        cache: &TreeCache<T>,
        dh: &mut [T],
        (grads, work): (&mut TreeLayer<T>, &mut TreeGradWork<T>),
        dx: &mut [T],
    ) -> Result<()> {
        let cfg = self.config;
        let (n, h, i) = (batch.nodes, cfg.hidden, cfg.input_size);
        if cache.nodes != n {
            return Err(Error::InvalidCall(
                "backward without a forward over this batch".into(),
            ));
        }
        check_len("tree state gradient [nodes, H]", n * h, dh.len())?;
        check_len("tree input gradient [nodes, I]", n * i, dx.len())?;
        if grads.config != cfg {
            return Err(Error::InvalidCall(
                "gradient buffer of another tree layer".into(),
            ));
        }
        let (gx, gh, k) = (cfg.input_gates(), cfg.hidden_gates(), cfg.children.slots());
        let lstm = cfg.cell == TreeCell::Lstm;
        let sum_lstm = lstm && cfg.children == Children::Sum;
        let (kh, gw) = (k * h, gh * h);
        work.dpre.resize(n * gx * h, T::ZERO);
        work.dkids.resize(n * kh, T::ZERO);
        work.dc.resize(if lstm { n * h } else { 0 }, T::ZERO);
        work.dc.fill(T::ZERO);
        work.dgates.resize(if lstm { n * gw } else { 0 }, T::ZERO);
        work.duf.resize(if sum_lstm { n * h } else { 0 }, T::ZERO);
        work.duf.fill(T::ZERO);
        let levels = batch.levels();
        for l in (0..levels).rev() {
            let (a, b) = (batch.level_start[l], batch.level_start[l + 1]);
            let m = b - a;
            if m == 0 {
                continue;
            }
            if sum_lstm && l + 1 < levels {
                // This level's share of its parents' forget gates: U_f^T dF and dU_f.
                let wf = &self.weight_hh[h * h..2 * h * h];
                let duf = &work.duf[a * h..b * h];
                gemm_nn(m, h, h, duf, h, wf, h, &mut dh[a * h..b * h], h, true);
                gemm_tn(
                    h,
                    h,
                    m,
                    duf,
                    h,
                    &cache.h[a * h..b * h],
                    h,
                    &mut grads.weight_hh[h * h..2 * h * h],
                    h,
                    true,
                );
            }
            // The gradient on the pre-activations that read the children (dgates, or dpre for
            // the RNN, whose only gate reads both).
            let dz: &[T] = match cfg.cell {
                TreeCell::Rnn => {
                    let dp = &mut work.dpre[a * h..b * h];
                    for ((d, &g), &hv) in dp
                        .iter_mut()
                        .zip(&dh[a * h..b * h])
                        .zip(&cache.h[a * h..b * h])
                    {
                        *d = g * (T::ONE - hv * hv);
                    }
                    &work.dpre[a * h..b * h]
                }
                TreeCell::Lstm => {
                    self.lstm_level_backward(batch, a, b, cache, dh, work);
                    &work.dgates[a * gw..b * gw]
                }
            };
            if l == 0 {
                continue;
            }
            // Weight gradient of this level and the children's share, then scattered.
            let kids = &cache.kids[a * kh..b * kh];
            let dk = &mut work.dkids[a * kh..b * kh];
            match (cfg.cell, cfg.children) {
                (TreeCell::Lstm, Children::Sum) => {
                    // Rows i and g, o read the summed children.
                    gemm_tn(
                        h,
                        h,
                        m,
                        dz,
                        gw,
                        kids,
                        h,
                        &mut grads.weight_hh[..h * h],
                        h,
                        true,
                    );
                    gemm_tn(
                        2 * h,
                        h,
                        m,
                        &dz[2 * h..],
                        gw,
                        kids,
                        h,
                        &mut grads.weight_hh[2 * h * h..],
                        h,
                        true,
                    );
                    gemm_nn(m, h, h, dz, gw, &self.weight_hh[..h * h], h, dk, h, false);
                    gemm_nn(
                        m,
                        h,
                        2 * h,
                        &dz[2 * h..],
                        gw,
                        &self.weight_hh[2 * h * h..],
                        h,
                        dk,
                        h,
                        true,
                    );
                }
                _ => {
                    let zw = if lstm { gw } else { h };
                    gemm_tn(zw, kh, m, dz, zw, kids, kh, &mut grads.weight_hh, kh, true);
                    gemm_nn(m, kh, zw, dz, zw, &self.weight_hh, kh, dk, kh, false);
                }
            }
            for r in a..b {
                let d = &work.dkids[r * kh..(r + 1) * kh];
                for (slot, &c) in batch.children(r).iter().enumerate() {
                    let src = if k == 1 {
                        d
                    } else {
                        &d[slot * h..(slot + 1) * h]
                    };
                    dh[c * h..(c + 1) * h]
                        .iter_mut()
                        .zip(src)
                        .for_each(|(t, &s)| *t += s);
                }
            }
        }
        // One GEMM each for the input weights, the bias and the input rows, over the nodes
        // that read an input (the others get a zero input gradient).
        let gxh = gx * h;
        let k = cache.in_rows.len();
        if i > 0 && k == n {
            gemm_tn(
                gxh,
                i,
                n,
                &work.dpre,
                gxh,
                x,
                i,
                &mut grads.weight_ih,
                i,
                true,
            );
            gemm_nn(n, i, gxh, &work.dpre, gxh, &self.weight_ih, i, dx, i, false);
        } else {
            dx.fill(T::ZERO);
            if i > 0 && k > 0 {
                work.dpin.resize(k * gxh, T::ZERO);
                for (j, &r) in cache.in_rows.iter().enumerate() {
                    work.dpin[j * gxh..(j + 1) * gxh]
                        .copy_from_slice(&work.dpre[r * gxh..(r + 1) * gxh]);
                }
                gemm_tn(
                    gxh,
                    i,
                    k,
                    &work.dpin,
                    gxh,
                    &cache.xin,
                    i,
                    &mut grads.weight_ih,
                    i,
                    true,
                );
                work.dxin.resize(k * i, T::ZERO);
                gemm_nn(
                    k,
                    i,
                    gxh,
                    &work.dpin,
                    gxh,
                    &self.weight_ih,
                    i,
                    &mut work.dxin,
                    i,
                    false,
                );
                for (j, &r) in cache.in_rows.iter().enumerate() {
                    dx[r * i..(r + 1) * i].copy_from_slice(&work.dxin[j * i..(j + 1) * i]);
                }
            }
        }
        sum_rows(n, gxh, &work.dpre, gxh, &mut grads.bias);
        Ok(())
    }

    /// The LSTM's element-wise backward over rows `a..b`: fills `dgates` and `dpre` for them and
    /// adds to the children's memory-cell gradients (and, for the child sum, their `duf`).
    fn lstm_level_backward(
        &self,
        batch: &TreeBatch<T>,
        a: usize,
        b: usize,
        cache: &TreeCache<T>,
        dh: &[T],
        work: &mut TreeGradWork<T>,
    ) {
        let cfg = self.config;
        let (h, gh) = (cfg.hidden, cfg.hidden_gates());
        let gw = gh * h;
        let nf = gh - 3;
        let one = T::ONE;
        for r in a..b {
            let gr = &cache.gates[r * gw..(r + 1) * gw];
            let (g_i, g_rest) = gr.split_at(h);
            let (g_f, g_rest) = g_rest.split_at(nf * h);
            let (g_g, g_o) = g_rest.split_at(h);
            let tcr = &cache.tc[r * h..(r + 1) * h];
            let dhr = &dh[r * h..(r + 1) * h];
            let (dcs, dctail) = work.dc.split_at_mut(r * h);
            let dcr = &mut dctail[..h];
            let dg = &mut work.dgates[r * gw..(r + 1) * gw];
            let (d_i, d_rest) = dg.split_at_mut(h);
            let (d_f, d_rest) = d_rest.split_at_mut(nf * h);
            let (d_g, d_o) = d_rest.split_at_mut(h);
            let dp = &mut work.dpre[r * 4 * h..(r + 1) * 4 * h];
            let (dp_i, dp_rest) = dp.split_at_mut(h);
            let (dp_f, dp_rest) = dp_rest.split_at_mut(h);
            let (dp_g, dp_o) = dp_rest.split_at_mut(h);
            // Gates i, g, o and the cell's total gradient (slices zipped so the loop
            // vectorises); the input projection's f block collects the forget gates below.
            for (((((dc, di), dgv), dov), (dpi, (dpg, dpo))), (((&iv, &gv), &ov), (&tc, &dhv))) in
                dcr.iter_mut()
                    .zip(d_i.iter_mut())
                    .zip(d_g.iter_mut())
                    .zip(d_o.iter_mut())
                    .zip(dp_i.iter_mut().zip(dp_g.iter_mut().zip(dp_o.iter_mut())))
                    .zip(g_i.iter().zip(g_g).zip(g_o).zip(tcr.iter().zip(dhr)))
            {
                let dct = *dc + dhv * ov * (one - tc * tc);
                *dc = dct;
                *di = dct * gv * iv * (one - iv);
                *dgv = dct * iv * (one - gv * gv);
                *dov = dhv * tc * ov * (one - ov);
                (*dpi, *dpg, *dpo) = (*di, *dgv, *dov);
            }
            dp_f.fill(T::ZERO);
            d_f.fill(T::ZERO);
            for (slot, &c) in batch.children(r).iter().enumerate() {
                let cc = &cache.c[c * h..(c + 1) * h];
                let dcc = &mut dcs[c * h..(c + 1) * h];
                let (f, df_out) = match cfg.children {
                    Children::Nary { .. } => (
                        &g_f[slot * h..(slot + 1) * h],
                        &mut d_f[slot * h..(slot + 1) * h],
                    ),
                    Children::Sum => (
                        &cache.fgate[c * h..(c + 1) * h],
                        &mut work.duf[c * h..(c + 1) * h],
                    ),
                };
                for ((((dfo, dpf), dck), (&fv, &ck)), &dct) in df_out
                    .iter_mut()
                    .zip(dp_f.iter_mut())
                    .zip(dcc.iter_mut())
                    .zip(f.iter().zip(cc))
                    .zip(dcr.iter())
                {
                    let df = dct * ck * fv * (one - fv);
                    *dfo = df;
                    *dpf += df;
                    *dck += dct * fv;
                }
            }
        }
    }
}

impl<T: Float> Parameters<T> for TreeLayer<T> {
    fn param_specs(&self) -> Vec<ParamSpec> {
        let cfg = self.config;
        let (h, gx, gh, k) = (
            cfg.hidden,
            cfg.input_gates(),
            cfg.hidden_gates(),
            cfg.children.slots(),
        );
        vec![
            ParamSpec {
                name: "weight_ih".into(),
                shape: vec![gx * h, cfg.input_size],
            },
            ParamSpec {
                name: "weight_hh".into(),
                shape: vec![gh * h, k * h],
            },
            ParamSpec {
                name: "bias".into(),
                shape: vec![gx * h],
            },
        ]
    }

    fn param_slices(&self) -> Vec<&[T]> {
        vec![&self.weight_ih, &self.weight_hh, &self.bias]
    }

    fn param_slices_mut(&mut self) -> Vec<&mut [T]> {
        vec![&mut self.weight_ih, &mut self.weight_hh, &mut self.bias]
    }
}

/// `x += y`.
#[inline]
fn add_in_place<T: Float>(x: &mut [T], y: &[T]) {
    x.iter_mut().zip(y).for_each(|(a, &b)| *a += b);
}
