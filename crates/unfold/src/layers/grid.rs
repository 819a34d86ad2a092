//! The two-dimensional recurrent layer (multi-dimensional RNNs, Graves, Fernandez and
//! Schmidhuber 2007; MDLSTM, Graves and Schmidhuber 2009): over a grid such as an image, the
//! state at `(i, j)` reads the input there and the states at `(i - 1, j)` and `(i, j - 1)`;
//! one such sweep runs from each of one, two or four corners ([`Corner`]), each with its own
//! weights, and their states are concatenated or summed into the layer's feature map, so that
//! with four sweeps the output at every position depends on the whole grid.
//!
//! Cells ([`GridCell`]):
//!
//! - `Rnn`: `h = tanh(W x + b + U_v h_v + U_h h_h)`;
//! - `Lstm`: Graves's 2-D LSTM, gates `i, f_v, f_h, g, o` (one forget gate per incoming
//!   direction), `c = i g + f_v c_v + f_h c_h`, `h = o tanh(c)`.
//!
//! Missing neighbours (at the sweep's starting edges) read as zero states and cells.
//!
//! Parameters per sweep, named `{corner}.weight_ih` `[G H, I]`, `{corner}.weight_hh`
//! `[G H, 2 H]` (columns: the vertical predecessor's state, then the horizontal one's) and
//! `{corner}.bias` `[G H]`, with `G = 1` or `5` (gate rows in the order above).
//!
//! Speed: positions on one anti-diagonal do not depend on each other, so the layer runs a
//! wavefront ([`Schedule`]): one GEMM for the input projection of every position of the batch
//! per sweep, then, diagonal by diagonal, one GEMM for the recurrent term of that diagonal of
//! every grid in the batch, and small element-wise loops; backward the same in reverse, with
//! the weight gradients as one GEMM each over all positions. Nothing is allocated per position.

use serde::{Deserialize, Serialize};

use crate::error::{check_len, Error, Result};
use crate::float::Float;
use crate::kernels::activations::{sigmoid_in_place, tanh_in_place};
use crate::kernels::gemm::{effective_threads, gemm_nn, gemm_nt, gemm_tn, serial_scope, sum_rows};
pub use crate::layers::grid_schedule::{Corner, GridShape, Schedule};
use crate::layers::params::{uniform_fill, ParamSpec, Parameters};

/// The cell of a 2-D recurrent layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridCell {
    /// `h = tanh(...)` (the MD-RNN).
    Rnn,
    /// The 2-D LSTM with one forget gate per direction (MDLSTM).
    Lstm,
}

/// How the sweeps' states make the layer's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Side by side (`sweeps * H` features).
    Concat,
    /// Added (`H` features).
    Sum,
}

/// Sizes and kind of a [`GridLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridLayerConfig {
    /// The cell.
    pub cell: GridCell,
    /// Channels of the input at each position.
    pub input_size: usize,
    /// State width of each sweep.
    pub hidden: usize,
    /// Sweeps: 1 (from the top-left), 2 (top-left and bottom-right) or 4 (every corner).
    pub sweeps: usize,
    /// How the sweeps combine.
    pub combine: Combine,
}

impl GridLayerConfig {
    /// Gate blocks (1 or 5).
    pub fn gates(&self) -> usize {
        match self.cell {
            GridCell::Rnn => 1,
            GridCell::Lstm => 5,
        }
    }

    /// Features of the output at each position.
    pub fn out_width(&self) -> usize {
        match self.combine {
            Combine::Concat => self.sweeps * self.hidden,
            Combine::Sum => self.hidden,
        }
    }

    /// The corners swept from.
    pub fn corners(&self) -> &'static [Corner] {
        Corner::for_sweeps(self.sweeps)
    }

    fn check(&self) -> Result<()> {
        if self.hidden == 0 || self.input_size == 0 {
            return Err(Error::InvalidConfig(
                "a 2-D recurrent layer needs input channels and hidden units".into(),
            ));
        }
        if !matches!(self.sweeps, 1 | 2 | 4) {
            return Err(Error::InvalidConfig(format!(
                "a 2-D recurrent layer sweeps from 1, 2 or 4 corners, not {}",
                self.sweeps
            )));
        }
        Ok(())
    }
}

/// The weights of one sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct GridSweep<T> {
    /// `[G H, I]`.
    pub weight_ih: Vec<T>,
    /// `[G H, 2 H]`.
    pub weight_hh: Vec<T>,
    /// `[G H]`.
    pub bias: Vec<T>,
}

/// A 2-D recurrent layer's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct GridLayer<T> {
    config: GridLayerConfig,
    /// One set of weights per corner, in [`GridLayerConfig::corners`] order.
    pub sweeps: Vec<GridSweep<T>>,
}

/// One sweep's forward values, rows in its wavefront order.
#[derive(Debug, Clone, Default)]
struct SweepCache<T> {
    /// `[N, I]` the input rows in the sweep's order.
    xs: Vec<T>,
    /// `[N, 5 H]` gate activations (LSTM).
    gates: Vec<T>,
    /// `[N, 2 H]` the predecessors' states each row read (zeros where missing).
    prev: Vec<T>,
    /// `[N, H]` states.
    h: Vec<T>,
    /// `[N, H]` memory cells (LSTM).
    c: Vec<T>,
    /// `[N, H]` their tanh (LSTM).
    tc: Vec<T>,
}

/// What a forward pass keeps for backward, and its output; reused across calls.
#[derive(Debug, Clone, Default)]
pub struct GridCache<T> {
    schedule: Schedule,
    sweeps: Vec<SweepCache<T>>,
    /// `[N, F]` the layer's output, positions in the batch's `[images, height, width]` order.
    pub out: Vec<T>,
}

impl<T: Float> GridCache<T> {
    /// The shape of the last forward pass.
    pub fn shape(&self) -> GridShape {
        self.schedule.shape()
    }

    /// `[images, H]` the state at the last position of sweep `s` (its opposite corner) for each
    /// grid of the batch: the summary of the whole grid that sweep read.
    pub fn final_states(&self, s: usize) -> &[T] {
        let h = &self.sweeps[s].h;
        let n = self.schedule.shape();
        let hid = h.len() / n.positions().max(1);
        &h[(n.positions() - n.images) * hid..]
    }

    /// `[N, H]` sweep `s`'s states in the batch's position order, written to `dst`.
    pub fn sweep_states(&self, s: usize, dst: &mut Vec<T>) {
        let h = &self.sweeps[s].h;
        let n = self.schedule.shape().positions();
        let hid = h.len() / n.max(1);
        dst.clear();
        dst.resize(n * hid, T::ZERO);
        for (r, &p) in self.schedule.order(s).iter().enumerate() {
            dst[p * hid..(p + 1) * hid].copy_from_slice(&h[r * hid..(r + 1) * hid]);
        }
    }
}

/// Buffers of the backward pass, reused across calls.
#[derive(Debug, Clone, Default)]
pub struct GridGradWork<T> {
    sweeps: Vec<SweepWork<T>>,
}

/// One sweep's backward buffers.
#[derive(Debug, Clone, Default)]
struct SweepWork<T> {
    dh: Vec<T>,
    dc: Vec<T>,
    dz: Vec<T>,
    dprev: Vec<T>,
    dxs: Vec<T>,
}

impl<T: Float> GridLayer<T> {
    /// A layer with PyTorch's recurrent initialisation: uniform in `[-1/sqrt(H), 1/sqrt(H)]`.
    pub fn new(config: GridLayerConfig, seed: u64) -> Result<Self> {
        let mut l = Self::zeros(config)?;
        uniform_fill(l.param_slices_mut(), config.hidden, seed);
        Ok(l)
    }

    /// All-zero parameters.
    pub fn zeros(config: GridLayerConfig) -> Result<Self> {
        config.check()?;
        let gh = config.gates() * config.hidden;
        let sweep = GridSweep {
            weight_ih: vec![T::ZERO; gh * config.input_size],
            weight_hh: vec![T::ZERO; gh * 2 * config.hidden],
            bias: vec![T::ZERO; gh],
        };
        Ok(GridLayer {
            config,
            sweeps: vec![sweep; config.sweeps],
        })
    }

    /// Zero parameters of the same shape: the gradient buffer.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.config).expect("checked when built")
    }

    /// The layer's settings.
    pub fn config(&self) -> GridLayerConfig {
        self.config
    }

    /// Sets both forget-gate biases of a 2-D LSTM (no effect on the RNN).
    pub fn set_forget_bias(&mut self, value: T) {
        if self.config.cell == GridCell::Lstm {
            let h = self.config.hidden;
            for s in &mut self.sweeps {
                s.bias[h..3 * h].fill(value);
            }
        }
    }

    /// Runs every sweep over the batch `x` (`[images, height, width, I]`, row-major): the
    /// output is in `cache.out` (`[images, height, width, F]`) and the cache holds what
    /// [`GridLayer::backward`] needs. No allocation once the buffers have grown.
    pub fn forward(&self, shape: GridShape, x: &[T], cache: &mut GridCache<T>) -> Result<()> {
        let cfg = self.config;
        if shape.height == 0 || shape.width == 0 || shape.images == 0 {
            return Err(Error::InvalidData("an empty grid batch".into()));
        }
        let (n, h, i) = (shape.positions(), cfg.hidden, cfg.input_size);
        check_len(
            "grid layer input [images, height, width, I]",
            n * i,
            x.len(),
        )?;
        cache.schedule.prepare(shape, cfg.corners());
        cache.sweeps.resize_with(cfg.sweeps, SweepCache::default);
        let f = cfg.out_width();
        cache.out.clear();
        cache.out.resize(n * f, T::ZERO);
        let GridCache {
            schedule,
            sweeps,
            out,
        } = cache;
        let schedule = &*schedule;
        // The sweeps are independent: with several threads each runs whole sweeps with serial
        // products (no hand-over per diagonal), else one after the other with threaded ones.
        for_each_sweep(sweeps, |s, sc| {
            gather_rows(schedule.order(s), x, i, &mut sc.xs);
            self.sweep_forward(s, schedule, sc);
        });
        for (s, sc) in sweeps.iter().enumerate() {
            for (r, &p) in schedule.order(s).iter().enumerate() {
                let src = &sc.h[r * h..(r + 1) * h];
                match cfg.combine {
                    Combine::Concat => out[p * f + s * h..p * f + (s + 1) * h].copy_from_slice(src),
                    Combine::Sum => add_in_place(&mut out[p * f..(p + 1) * f], src),
                }
            }
        }
        Ok(())
    }

    fn sweep_forward(&self, s: usize, sched: &Schedule, sc: &mut SweepCache<T>) {
        let cfg = self.config;
        let w = &self.sweeps[s];
        let shape = sched.shape();
        let (n, h, i) = (shape.positions(), cfg.hidden, cfg.input_size);
        let gh = cfg.gates() * h;
        let lstm = cfg.cell == GridCell::Lstm;
        sc.h.resize(n * h, T::ZERO);
        sc.prev.resize(n * 2 * h, T::ZERO);
        sc.gates.resize(if lstm { n * gh } else { 0 }, T::ZERO);
        sc.c.resize(if lstm { n * h } else { 0 }, T::ZERO);
        sc.tc.resize(if lstm { n * h } else { 0 }, T::ZERO);
        // One GEMM: the input projection of every position (into the states for the RNN, the
        // gates for the LSTM), the bias first.
        let z = if lstm { &mut sc.gates } else { &mut sc.h };
        for r in z.chunks_exact_mut(gh) {
            r.copy_from_slice(&w.bias);
        }
        gemm_nt(n, gh, i, &sc.xs, i, &w.weight_ih, i, z, gh, true);
        let (a0, e0) = sched.diagonal(0);
        sc.prev[a0 * 2 * h..e0 * 2 * h].fill(T::ZERO);
        for d in 0..shape.diagonals() {
            let (a, e) = sched.diagonal(d);
            let m = e - a;
            if d > 0 {
                // The predecessors' states side by side, then one GEMM for the diagonal.
                for (r, up, left) in sched.rows(d) {
                    let (pv, ph) = sc.prev[r * 2 * h..(r + 1) * 2 * h].split_at_mut(h);
                    copy_or_zero(pv, up.map(|u| &sc.h[u * h..(u + 1) * h]));
                    copy_or_zero(ph, left.map(|l| &sc.h[l * h..(l + 1) * h]));
                }
                let z = if lstm { &mut sc.gates } else { &mut sc.h };
                gemm_nt(
                    m,
                    gh,
                    2 * h,
                    &sc.prev[a * 2 * h..e * 2 * h],
                    2 * h,
                    &w.weight_hh,
                    2 * h,
                    &mut z[a * gh..e * gh],
                    gh,
                    true,
                );
            }
            if !lstm {
                tanh_in_place(&mut sc.h[a * h..e * h]);
                continue;
            }
            self.lstm_diagonal(sched, d, sc);
        }
    }

    /// The 2-D LSTM's element-wise step over diagonal `d` (gates already hold their
    /// pre-activations).
    fn lstm_diagonal(&self, sched: &Schedule, d: usize, sc: &mut SweepCache<T>) {
        let h = self.config.hidden;
        for (r, up, left) in sched.rows(d) {
            let g = &mut sc.gates[r * 5 * h..(r + 1) * 5 * h];
            sigmoid_in_place(&mut g[..3 * h]);
            tanh_in_place(&mut g[3 * h..4 * h]);
            sigmoid_in_place(&mut g[4 * h..]);
            let (gi, rest) = g.split_at(h);
            let (gfv, rest) = rest.split_at(h);
            let (gfh, rest) = rest.split_at(h);
            let (gg, go) = rest.split_at(h);
            let (cs, ctail) = sc.c.split_at_mut(r * h);
            let cr = &mut ctail[..h];
            for ((cv, &iv), &gv) in cr.iter_mut().zip(gi).zip(gg) {
                *cv = iv * gv;
            }
            if let Some(u) = up {
                let cu = &cs[u * h..(u + 1) * h];
                for ((cv, &fv), &ck) in cr.iter_mut().zip(gfv).zip(cu) {
                    *cv += fv * ck;
                }
            }
            if let Some(l) = left {
                let cl = &cs[l * h..(l + 1) * h];
                for ((cv, &fv), &ck) in cr.iter_mut().zip(gfh).zip(cl) {
                    *cv += fv * ck;
                }
            }
            let tc = &mut sc.tc[r * h..(r + 1) * h];
            tc.copy_from_slice(cr);
            tanh_in_place(tc);
            let hr = &mut sc.h[r * h..(r + 1) * h];
            for ((hv, &ov), &t) in hr.iter_mut().zip(go).zip(tc.iter()) {
                *hv = ov * t;
            }
        }
    }

    /// Back-propagation through the grid: given `dout` (`[images, height, width, F]`, the loss
    /// gradient on the layer's output) and, optionally, `dfinal` (`[images, sweeps * H]`, a
    /// gradient on each sweep's final state, [`GridCache::final_states`]), *adds* the parameter
    /// gradients to `grads` and writes the gradient on the input to `dx`
    /// (`[images, height, width, I]`).
    pub fn backward(
        &self,
        x: &[T],
        cache: &mut GridCache<T>,
        dout: &[T],
        dfinal: Option<&[T]>,
        (grads, work): (&mut GridLayer<T>, &mut GridGradWork<T>),
        dx: &mut [T],
    ) -> Result<()> {
        let cfg = self.config;
        let shape = cache.schedule.shape();
        let (n, h, i, f) = (
            shape.positions(),
            cfg.hidden,
            cfg.input_size,
            cfg.out_width(),
        );
        if cache.sweeps.len() != cfg.sweeps || cache.out.len() != n * f || n == 0 {
            return Err(Error::InvalidCall(
                "backward without a forward of this layer".into(),
            ));
        }
        check_len("grid input", n * i, x.len())?;
        check_len("grid output gradient", n * f, dout.len())?;
        check_len("grid input gradient", n * i, dx.len())?;
        if let Some(df) = dfinal {
            check_len(
                "grid final-state gradient",
                shape.images * cfg.sweeps * h,
                df.len(),
            )?;
        }
        if grads.config != cfg {
            return Err(Error::InvalidCall(
                "gradient buffer of another 2-D layer".into(),
            ));
        }
        let gh = cfg.gates() * h;
        let schedule = &cache.schedule;
        work.sweeps.resize_with(cfg.sweeps, SweepWork::default);
        // Each sweep's backward and weight gradients, in parallel as in the forward pass.
        let mut jobs: Vec<_> = cache
            .sweeps
            .iter()
            .zip(work.sweeps.iter_mut())
            .zip(grads.sweeps.iter_mut())
            .collect();
        for_each_sweep(&mut jobs, |s, ((sc, wk), g)| {
            let order = schedule.order(s);
            // The output's gradient in the sweep's row order.
            wk.dh.resize(n * h, T::ZERO);
            for (r, &p) in order.iter().enumerate() {
                let src = match cfg.combine {
                    Combine::Concat => &dout[p * f + s * h..p * f + (s + 1) * h],
                    Combine::Sum => &dout[p * f..(p + 1) * f],
                };
                wk.dh[r * h..(r + 1) * h].copy_from_slice(src);
            }
            if let Some(df) = dfinal {
                let (b, k) = (shape.images, cfg.sweeps * h);
                for img in 0..b {
                    let r = n - b + img;
                    let src = &df[img * k + s * h..img * k + (s + 1) * h];
                    add_in_place(&mut wk.dh[r * h..(r + 1) * h], src);
                }
            }
            self.sweep_backward(s, schedule, sc, wk);
            let w = &self.sweeps[s];
            gemm_tn(
                gh,
                2 * h,
                n,
                &wk.dz,
                gh,
                &sc.prev,
                2 * h,
                &mut g.weight_hh,
                2 * h,
                true,
            );
            gemm_tn(gh, i, n, &wk.dz, gh, &sc.xs, i, &mut g.weight_ih, i, true);
            sum_rows(n, gh, &wk.dz, gh, &mut g.bias);
            wk.dxs.resize(n * i, T::ZERO);
            gemm_nn(n, i, gh, &wk.dz, gh, &w.weight_ih, i, &mut wk.dxs, i, false);
        });
        dx.fill(T::ZERO);
        for (s, wk) in work.sweeps.iter().enumerate() {
            for (r, &p) in schedule.order(s).iter().enumerate() {
                add_in_place(&mut dx[p * i..(p + 1) * i], &wk.dxs[r * i..(r + 1) * i]);
            }
        }
        Ok(())
    }

    /// Fills `work.dz` (`[N, G H]`, the gradient on the pre-activations) for sweep `s`, given
    /// the gradient on its states in `work.dh` (used as scratch).
    fn sweep_backward(
        &self,
        s: usize,
        sched: &Schedule,
        sc: &SweepCache<T>,
        work: &mut SweepWork<T>,
    ) {
        let cfg = self.config;
        let shape = sched.shape();
        let (n, h) = (shape.positions(), cfg.hidden);
        let gh = cfg.gates() * h;
        let lstm = cfg.cell == GridCell::Lstm;
        let w = &self.sweeps[s];
        work.dz.resize(n * gh, T::ZERO);
        work.dc.resize(if lstm { n * h } else { 0 }, T::ZERO);
        work.dc.fill(T::ZERO);
        work.dprev.resize(n * 2 * h, T::ZERO);
        for d in (0..shape.diagonals()).rev() {
            let (a, e) = sched.diagonal(d);
            if lstm {
                self.lstm_diagonal_backward(sched, d, sc, work);
            } else {
                for ((dz, &g), &hv) in work.dz[a * h..e * h]
                    .iter_mut()
                    .zip(&work.dh[a * h..e * h])
                    .zip(&sc.h[a * h..e * h])
                {
                    *dz = g * (T::ONE - hv * hv);
                }
            }
            if d == 0 {
                continue;
            }
            // The predecessors' share: one GEMM for the diagonal, then scattered.
            let m = e - a;
            gemm_nn(
                m,
                2 * h,
                gh,
                &work.dz[a * gh..e * gh],
                gh,
                &w.weight_hh,
                2 * h,
                &mut work.dprev[a * 2 * h..e * 2 * h],
                2 * h,
                false,
            );
            for (r, up, left) in sched.rows(d) {
                let (dv, dhz) = work.dprev[r * 2 * h..(r + 1) * 2 * h].split_at(h);
                if let Some(u) = up {
                    add_in_place(&mut work.dh[u * h..(u + 1) * h], dv);
                }
                if let Some(l) = left {
                    add_in_place(&mut work.dh[l * h..(l + 1) * h], dhz);
                }
            }
        }
    }

    /// The 2-D LSTM's element-wise backward over diagonal `d`: fills `dz` for its rows and
    /// adds to the predecessors' memory-cell gradients.
    fn lstm_diagonal_backward(
        &self,
        sched: &Schedule,
        d: usize,
        sc: &SweepCache<T>,
        work: &mut SweepWork<T>,
    ) {
        let h = self.config.hidden;
        let one = T::ONE;
        for (r, up, left) in sched.rows(d) {
            let g = &sc.gates[r * 5 * h..(r + 1) * 5 * h];
            let (gi, rest) = g.split_at(h);
            let (gfv, rest) = rest.split_at(h);
            let (gfh, rest) = rest.split_at(h);
            let (gg, go) = rest.split_at(h);
            let tcr = &sc.tc[r * h..(r + 1) * h];
            let dhr = &work.dh[r * h..(r + 1) * h];
            let (dcs, dctail) = work.dc.split_at_mut(r * h);
            let dcr = &mut dctail[..h];
            let dz = &mut work.dz[r * 5 * h..(r + 1) * 5 * h];
            let (di, rest) = dz.split_at_mut(h);
            let (dfv, rest) = rest.split_at_mut(h);
            let (dfh, rest) = rest.split_at_mut(h);
            let (dg, dov) = rest.split_at_mut(h);
            for (((dc, (di, dg)), dov), (((&iv, &gv), &ov), (&tc, &dhv))) in dcr
                .iter_mut()
                .zip(di.iter_mut().zip(dg.iter_mut()))
                .zip(dov.iter_mut())
                .zip(gi.iter().zip(gg).zip(go).zip(tcr.iter().zip(dhr)))
            {
                let dct = *dc + dhv * ov * (one - tc * tc);
                *dc = dct;
                *di = dct * gv * iv * (one - iv);
                *dg = dct * iv * (one - gv * gv);
                *dov = dhv * tc * ov * (one - ov);
            }
            for (pred, gf, df) in [(up, gfv, dfv), (left, gfh, dfh)] {
                match pred {
                    Some(p) => {
                        let row = p;
                        let cp = &sc.c[row * h..(row + 1) * h];
                        let dcp = &mut dcs[row * h..(row + 1) * h];
                        for ((((dfv, dcpv), &fv), &cv), &dct) in df
                            .iter_mut()
                            .zip(dcp.iter_mut())
                            .zip(gf)
                            .zip(cp)
                            .zip(dcr.iter())
                        {
                            *dfv = dct * cv * fv * (one - fv);
                            *dcpv += dct * fv;
                        }
                    }
                    None => df.fill(T::ZERO),
                }
            }
        }
    }
}

impl<T: Float> Parameters<T> for GridLayer<T> {
    fn param_specs(&self) -> Vec<ParamSpec> {
        let cfg = self.config;
        let gh = cfg.gates() * cfg.hidden;
        cfg.corners()
            .iter()
            .flat_map(|c| {
                let n = c.name();
                [
                    ParamSpec {
                        name: format!("{n}.weight_ih"),
                        shape: vec![gh, cfg.input_size],
                    },
                    ParamSpec {
                        name: format!("{n}.weight_hh"),
                        shape: vec![gh, 2 * cfg.hidden],
                    },
                    ParamSpec {
                        name: format!("{n}.bias"),
                        shape: vec![gh],
                    },
                ]
            })
            .collect()
    }

    fn param_slices(&self) -> Vec<&[T]> {
        self.sweeps
            .iter()
            .flat_map(|s| [&s.weight_ih[..], &s.weight_hh[..], &s.bias[..]])
            .collect()
    }

    fn param_slices_mut(&mut self) -> Vec<&mut [T]> {
        self.sweeps
            .iter_mut()
            .flat_map(|s| [&mut s.weight_ih[..], &mut s.weight_hh[..], &mut s.bias[..]])
            .collect()
    }
}

/// Runs `job(s, item)` for every sweep's item: with several threads (and more than one sweep)
/// in parallel on rayon's pool, each job's products serial; else in order.
fn for_each_sweep<X: Send>(items: &mut [X], job: impl Fn(usize, &mut X) + Sync) {
    if items.len() > 1 && effective_threads() > 1 {
        use rayon::prelude::*;
        items.par_iter_mut().enumerate().for_each(|(s, it)| {
            let _serial = serial_scope();
            job(s, it)
        });
    } else {
        items.iter_mut().enumerate().for_each(|(s, it)| job(s, it));
    }
}

/// `dst[r] = src[order[r]]` for rows of width `w`.
fn gather_rows<T: Float>(order: &[usize], src: &[T], w: usize, dst: &mut Vec<T>) {
    dst.resize(order.len() * w, T::ZERO);
    for (r, &p) in order.iter().enumerate() {
        dst[r * w..(r + 1) * w].copy_from_slice(&src[p * w..(p + 1) * w]);
    }
}

fn copy_or_zero<T: Float>(dst: &mut [T], src: Option<&[T]>) {
    match src {
        Some(s) => dst.copy_from_slice(s),
        None => dst.fill(T::ZERO),
    }
}

/// `x += y`.
#[inline]
fn add_in_place<T: Float>(x: &mut [T], y: &[T]) {
    x.iter_mut().zip(y).for_each(|(a, &b)| *a += b);
}
