//! The LSTM inference step with the batch in the vector lanes: weights broadcast, states
//! transposed, the cell update done in registers right after the product.
//!
//! The fused time loop (`layers::fused`) keeps the batch in rows: each micro-kernel tile reads
//! a panel of `W_hh` (32 gate columns) from L2 once per 8 batch rows, and the gates go through
//! a buffer before the element-wise update. For inference there is a better arrangement. With
//! the state stored transposed (`h^T`: `[H, B]`, a row of `B` lanes per unit), one step is
//! `gates^T = [W_ih | W_hh] [x(t)^T ; h(t-1)^T] + b`: the panel `[x^T ; h^T]` is read by every
//! tile and stays close in cache, while each weight is read exactly once per step as a scalar
//! broadcast from a packed stream. A tile covers the four gates of up to [`UNITS`] units for
//! 32 (or 16) sequences, 24 accumulators in registers, and applies the LSTM update to them
//! before anything is stored: the gates never reach memory, and the new `h^T` rows are the
//! next step's panel as they are written.
//!
//! The input and recurrent parts of the product are one loop over `k` with the panel rows
//! taken from two pointers, so no input projection is computed ahead and nothing of size
//! `T x B x 4H` is kept.

#[cfg(target_arch = "x86_64")]
use crate::kernels::cells512::{sigmoid16, tanh16};

/// Hidden units per tile (four gate rows each).
pub const UNITS: usize = 3;

/// Units per block: the unit of work of one thread in a step (a multiple of 16 keeps each
/// block's output columns on cache lines of its own).
pub const BLOCK: usize = 32;

/// The tiles of the units `[u0, u1)`: `(first unit, units)` pairs of up to [`UNITS`] units,
/// from `u0` on.
pub fn tiles(u0: usize, u1: usize) -> impl Iterator<Item = (usize, usize)> {
    (u0..u1).step_by(UNITS).map(move |j| (j, UNITS.min(u1 - j)))
}

/// `[W_ih | W_hh]` of an LSTM (`[4H, I + H]`) packed for [`lstm_tile`]: the tiles of every
/// block in order, tile `(j0, u)` holding `[I + H][4u]` values (row `k`, entry `4 uu + g`: gate
/// `g` of unit `j0 + uu`), so each tile's weights are one sequential stream; plus the bias
/// `b_ih + b_hh` in the same order.
#[derive(Debug, Default, Clone)]
pub struct LanePanels {
    data: Vec<f32>,
    start: usize,
    bias: Vec<f32>,
    input: usize,
    hidden: usize,
}

impl LanePanels {
    /// Packs the weights of an LSTM cell of `hidden` units and `input` inputs; `b_ih`/`b_hh`
    /// empty means no bias. Reuses the buffers.
    pub fn pack(
        &mut self,
        hidden: usize,
        input: usize,
        w_ih: &[f32],
        w_hh: &[f32],
        b_ih: &[f32],
        b_hh: &[f32],
    ) {
        let (hs, k) = (hidden, input + hidden);
        assert_eq!(w_ih.len(), 4 * hs * input, "W_ih shape");
        assert_eq!(w_hh.len(), 4 * hs * hs, "W_hh shape");
        self.data.clear();
        self.data.resize(4 * hs * k + 16, 0.0);
        let addr = self.data.as_ptr() as usize;
        self.start = (addr.next_multiple_of(64) - addr) / 4;
        self.bias.clear();
        self.bias.resize(4 * hs, 0.0);
        self.input = input;
        self.hidden = hs;
        for b0 in (0..hs).step_by(BLOCK) {
            for (j0, u) in tiles(b0, (b0 + BLOCK).min(hs)) {
                let base = self.start + j0 * 4 * k;
                for kk in 0..k {
                    for uu in 0..u {
                        for g in 0..4 {
                            let row = g * hs + j0 + uu;
                            self.data[base + kk * 4 * u + 4 * uu + g] = if kk < input {
                                w_ih[row * input + kk]
                            } else {
                                w_hh[row * hs + kk - input]
                            };
                        }
                    }
                }
                for uu in 0..u {
                    for g in 0..4 {
                        let row = g * hs + j0 + uu;
                        let b = |v: &[f32]| v.get(row).copied().unwrap_or(0.0);
                        self.bias[4 * j0 + 4 * uu + g] = b(b_ih) + b(b_hh);
                    }
                }
            }
        }
    }

    /// Whether nothing is packed.
    pub fn is_empty(&self) -> bool {
        self.hidden == 0
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        (self.data.capacity() + self.bias.capacity()) * 4
    }

    /// Input size and hidden size packed.
    pub fn shape(&self) -> (usize, usize) {
        (self.input, self.hidden)
    }

    /// The packed weights of the tile starting at unit `j0` (`[I + H][4u]`) and its bias.
    pub fn tile(&self, j0: usize, u: usize) -> (&[f32], &[f32]) {
        let k = self.input + self.hidden;
        let base = self.start + j0 * 4 * k;
        (
            &self.data[base..base + 4 * u * k],
            &self.bias[4 * j0..4 * (j0 + u)],
        )
    }
}

/// How many rows of `k` ahead a tile prefetches its weights.
const PREFETCH_ROWS: usize = 8;

/// Where a tile's sums go when its share of `k` is done.
#[derive(Clone, Copy)]
pub enum Finish {
    /// More rows of `k` follow: store the sums (`4U` rows of stride `ld`) for the next call.
    Partial(*mut f32),
    /// The last rows: apply the LSTM update. `c`: the tile's rows of `c^T` (`U` rows, stride
    /// `ld`), c(t-1) in, c(t) out; `hn`: the same rows of `h(t)^T`, written; `hp`: those of
    /// `h(t-1)^T`; `active`: per vector, the lanes whose sequence has step t (the others keep
    /// their state).
    Cell {
        c: *mut f32,
        hn: *mut f32,
        hp: *const f32,
        active: [u16; 2],
    },
}

/// Part of one LSTM step for the `U` units of a tile and `16 * V` sequences (lanes): the sums
/// over the panel rows in `segs` (each a pointer to its first row, already offset to the first
/// lane, and a row count; rows of stride `ld`), starting from `start` (partial sums as
/// [`Finish::Partial`] stored them) or, when null, from the bias; then `finish`.
///
/// `w` points to the tile's weights of the first row (see [`LanePanels::tile`]).
///
/// # Safety
/// AVX-512F must be available; every pointer must be valid for the rows and lanes described,
/// `w` for the rows of `segs` times `4U` values and `bias` for `4U`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline(never)]
#[allow(clippy::needless_range_loop)]
pub unsafe fn lstm_tile<const U: usize, const V: usize>(
    segs: [(*const f32, usize); 2],
    ld: usize,
    w: *const f32,
    start: *const f32,
    bias: *const f32,
    finish: Finish,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); V]; 4 * UNITS];
    for r in 0..4 * U {
        for v in 0..V {
            // SAFETY: row r of the partial sums, or entry r of the bias.
            acc[r][v] = unsafe {
                if start.is_null() {
                    _mm512_set1_ps(*bias.add(r))
                } else {
                    _mm512_loadu_ps(start.add(r * ld + 16 * v))
                }
            };
        }
    }
    // SAFETY (the loops): the rows of `segs`, 16 V lanes each, and their 4U weights, as the
    // caller guarantees.
    let mut wk = w;
    for (panel, rows) in segs {
        for k in 0..rows {
            let mut b = [_mm512_setzero_ps(); V];
            for v in 0..V {
                b[v] = unsafe { _mm512_loadu_ps(panel.add(k * ld + 16 * v)) };
            }
            _mm_prefetch::<_MM_HINT_T0>(wk.wrapping_add(PREFETCH_ROWS * 4 * U) as *const i8);
            for r in 0..4 * U {
                let s = _mm512_set1_ps(unsafe { *wk.add(r) });
                for v in 0..V {
                    acc[r][v] = _mm512_fmadd_ps(s, b[v], acc[r][v]);
                }
            }
            wk = unsafe { wk.add(4 * U) };
        }
    }
    match finish {
        Finish::Partial(p) => {
            for r in 0..4 * U {
                for v in 0..V {
                    // SAFETY: row r of the partial sums.
                    unsafe { _mm512_storeu_ps(p.add(r * ld + 16 * v), acc[r][v]) };
                }
            }
        }
        Finish::Cell { c, hn, hp, active } => {
            // Through memory with constant indices: the cell loop below is not unrolled, and
            // indexing `acc` in it would keep every accumulator in memory during the sums.
            let mut sums = [[[0f32; 16]; 2]; 4 * UNITS];
            for r in 0..4 * U {
                for v in 0..V {
                    // SAFETY: a 16-value array.
                    unsafe { _mm512_storeu_ps(sums[r][v].as_mut_ptr(), acc[r][v]) };
                }
            }
            // SAFETY: reads of 16-value arrays.
            let gate = |r: usize, v: usize| unsafe { _mm512_loadu_ps(sums[r][v].as_ptr()) };
            for uu in 0..U {
                for v in 0..V {
                    let m = active[v] as __mmask16;
                    let i = sigmoid16(gate(4 * uu, v));
                    let f = sigmoid16(gate(4 * uu + 1, v));
                    let g = tanh16(gate(4 * uu + 2, v));
                    let o = sigmoid16(gate(4 * uu + 3, v));
                    let off = uu * ld + 16 * v;
                    // SAFETY: row uu of the tile's c, hn and hp rows, lanes 16v..16v+16.
                    unsafe {
                        let c0 = _mm512_loadu_ps(c.add(off));
                        let c1 = _mm512_fmadd_ps(f, c0, _mm512_mul_ps(i, g));
                        let h1 = _mm512_mul_ps(o, tanh16(c1));
                        let h0 = _mm512_loadu_ps(hp.add(off));
                        _mm512_storeu_ps(c.add(off), _mm512_mask_blend_ps(m, c0, c1));
                        _mm512_storeu_ps(hn.add(off), _mm512_mask_blend_ps(m, h0, h1));
                    }
                }
            }
        }
    }
}

/// Panel bytes a tile sweeps per call: the panel rows of one `k` block stay in L1 while every
/// tile of a block of units goes over them.
const PANEL_BLOCK_BYTES: usize = 16 << 10;

/// Values of the partial-sum scratch [`step_block`] needs for `ld` lanes.
pub const fn partial_len(ld: usize) -> usize {
    4 * BLOCK * ld
}

/// One LSTM step of the units `u0..u1` (within one block of [`BLOCK`]) for the sequences
/// (lanes) `lanes` of `ld`: `xt` is `x(t)^T` (`[I, ld]`), `ht` is `h(t-1)^T` and `hn` receives
/// `h(t)^T` (`[H, ld]`), `ct` is `c^T` (`[H, ld]`, updated), `active[v]` the lanes of vector `v`
/// whose sequence has step t, and `partial` a scratch of [`partial_len`]`(ld)` values (only
/// its `lanes` are used). `ld` and the ends of `lanes` must be multiples of 16.
///
/// The rows of `[x^T ; h^T]` go in blocks small enough to stay in L1 while every tile of the
/// block of units reads them; the tiles' sums wait in `partial` between blocks.
///
/// # Safety
/// AVX-512F must be available; the pointers must be valid for the sizes above, and nothing
/// else may access the rows `u0..u1` of `ct` and `hn` or `partial` meanwhile.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn step_block(
    p: &LanePanels,
    u0: usize,
    u1: usize,
    ld: usize,
    lanes: std::ops::Range<usize>,
    xt: *const f32,
    ht: *const f32,
    ct: *mut f32,
    hn: *mut f32,
    partial: *mut f32,
    active: &[u16],
) {
    let (input, hs) = p.shape();
    let k = input + hs;
    assert!(ld.is_multiple_of(16) && active.len() >= ld / 16 && u1 - u0 <= BLOCK);
    assert!(lanes.start.is_multiple_of(16) && lanes.end.is_multiple_of(16) && lanes.end <= ld);
    let kb = (PANEL_BLOCK_BYTES / (4 * ld)).max(16);
    for k0 in (0..k).step_by(kb) {
        let k1 = (k0 + kb).min(k);
        let (xr, hr) = (k0.min(input)..k1.min(input), k0.max(input)..k1.max(input));
        for (j0, nu) in tiles(u0, u1) {
            let (w, bias) = p.tile(j0, nu);
            let pt = 4 * (j0 - u0) * ld;
            for g0 in lanes.clone().step_by(32) {
                // SAFETY: offsets within the sizes the caller guarantees.
                unsafe {
                    let segs = [
                        (xt.add(xr.start * ld + g0), xr.len()),
                        (ht.add((hr.start - input) * ld + g0), hr.len()),
                    ];
                    let start = if k0 == 0 {
                        std::ptr::null()
                    } else {
                        partial.add(pt + g0) as *const f32
                    };
                    let finish = if k1 < k {
                        Finish::Partial(partial.add(pt + g0))
                    } else {
                        let o = j0 * ld + g0;
                        Finish::Cell {
                            c: ct.add(o),
                            hn: hn.add(o),
                            hp: ht.add(o),
                            active: [
                                active[g0 / 16],
                                active.get(g0 / 16 + 1).copied().unwrap_or(0),
                            ],
                        }
                    };
                    let (w, b) = (w.as_ptr().add(k0 * 4 * nu), bias.as_ptr());
                    macro_rules! call {
                        ($u:literal, $v:literal) => {
                            lstm_tile::<$u, $v>(segs, ld, w, start, b, finish)
                        };
                    }
                    match (nu, lanes.end - g0 >= 32) {
                        (3, true) => call!(3, 2),
                        (2, true) => call!(2, 2),
                        (1, true) => call!(1, 2),
                        (3, false) => call!(3, 1),
                        (2, false) => call!(2, 1),
                        _ => call!(1, 1),
                    }
                }
            }
        }
    }
}

/// `dst[c * dst_ld + r] = src[r * src_ld + c]` for `r < rows`, `c < cols` (both at most 16),
/// through one 16 x 16 transpose in registers; rows `c` of `dst` whose bit in `zero` is set
/// are written as zeros instead.
///
/// # Safety
/// AVX-512F must be available; `src` must be valid for `rows` rows of `cols` values and `dst`
/// for `cols` rows of `rows` values, with the given strides.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)]
pub unsafe fn transpose16(
    src: *const f32,
    src_ld: usize,
    rows: usize,
    cols: usize,
    dst: *mut f32,
    dst_ld: usize,
    zero: u16,
) {
    use std::arch::x86_64::*;
    let mask = |n: usize| -> __mmask16 { ((1u32 << n) - 1) as __mmask16 };
    let (cm, rm) = (mask(cols), mask(rows));
    let mut r = [_mm512_setzero_ps(); 16];
    for i in 0..rows {
        // SAFETY: row i of `src`, `cols` values.
        r[i] = unsafe { _mm512_maskz_loadu_ps(cm, src.add(i * src_ld)) };
    }
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for i in 0..4 {
        let q = 4 * i;
        r[q] = _mm512_shuffle_ps::<0x44>(t[q], t[q + 2]);
        r[q + 1] = _mm512_shuffle_ps::<0xEE>(t[q], t[q + 2]);
        r[q + 2] = _mm512_shuffle_ps::<0x44>(t[q + 1], t[q + 3]);
        r[q + 3] = _mm512_shuffle_ps::<0xEE>(t[q + 1], t[q + 3]);
    }
    for i in 0..2 {
        for j in 0..4 {
            let q = 8 * i + j;
            t[q] = _mm512_shuffle_f32x4::<0x88>(r[q], r[q + 4]);
            t[q + 4] = _mm512_shuffle_f32x4::<0xDD>(r[q], r[q + 4]);
        }
    }
    for j in 0..8 {
        r[j] = _mm512_shuffle_f32x4::<0x88>(t[j], t[j + 8]);
        r[j + 8] = _mm512_shuffle_f32x4::<0xDD>(t[j], t[j + 8]);
    }
    for c in 0..cols {
        let v = if zero & (1 << c) != 0 {
            _mm512_setzero_ps()
        } else {
            r[c]
        };
        // SAFETY: row c of `dst`, `rows` values.
        unsafe { _mm512_mask_storeu_ps(dst.add(c * dst_ld), rm, v) };
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::kernels::lstm;
    use crate::rng::Rng;

    /// A whole step over every tile shape (3, 2 and 1 units), both lane widths, several `k`
    /// blocks (straddling the input/hidden border) and a partial set of active lanes, against
    /// the portable LSTM row update.
    #[test]
    fn step_matches_portable_cell() {
        if !crate::kernels::packed::available() {
            return;
        }
        let mut r = Rng::new(11);
        let mut u = |n: usize, s: f64| -> Vec<f32> {
            (0..n).map(|_| r.uniform_range(-s, s) as f32).collect()
        };
        for &(hs, input, lanes) in &[
            (37usize, 5usize, 32usize),
            (8, 19, 16),
            (34, 3, 48),
            (40, 300, 64),
        ] {
            let (w_ih, w_hh) = (u(4 * hs * input, 0.2), u(4 * hs * hs, 0.2));
            let (b_ih, b_hh) = (u(4 * hs, 0.5), u(4 * hs, 0.5));
            let x = u(lanes * input, 1.0);
            let h = u(lanes * hs, 1.0);
            let c = u(lanes * hs, 1.0);
            let mut p = LanePanels::default();
            p.pack(hs, input, &w_ih, &w_hh, &b_ih, &b_hh);
            // Transposed copies, row stride `lanes`.
            let tr = |m: &[f32], cols: usize| -> Vec<f32> {
                let mut t = vec![0.0; m.len()];
                for b in 0..lanes {
                    for j in 0..cols {
                        t[j * lanes + b] = m[b * cols + j];
                    }
                }
                t
            };
            let (xt, ht) = (tr(&x, input), tr(&h, hs));
            let mut ct = tr(&c, hs);
            let mut hn = vec![f32::NAN; hs * lanes];
            let mut partial = vec![0.0; partial_len(lanes)];
            // Every third sequence has no step t.
            let is_active = |b: usize| b % 3 != 1;
            let active: Vec<u16> = (0..lanes / 16)
                .map(|v| {
                    (0..16)
                        .filter(|l| is_active(16 * v + l))
                        .map(|l| 1 << l)
                        .sum()
                })
                .collect();
            for b0 in (0..hs).step_by(BLOCK) {
                unsafe {
                    step_block(
                        &p,
                        b0,
                        (b0 + BLOCK).min(hs),
                        lanes,
                        0..lanes,
                        xt.as_ptr(),
                        ht.as_ptr(),
                        ct.as_mut_ptr(),
                        hn.as_mut_ptr(),
                        partial.as_mut_ptr(),
                        &active,
                    )
                };
            }
            for b in 0..lanes {
                let mut g = b_ih
                    .iter()
                    .zip(&b_hh)
                    .map(|(a, b)| a + b)
                    .collect::<Vec<_>>();
                for (row, gr) in g.iter_mut().enumerate() {
                    for k in 0..input {
                        *gr += w_ih[row * input + k] * x[b * input + k];
                    }
                    for k in 0..hs {
                        *gr += w_hh[row * hs + k] * h[b * hs + k];
                    }
                }
                let mut cb = c[b * hs..(b + 1) * hs].to_vec();
                let mut hb = h[b * hs..(b + 1) * hs].to_vec();
                let mut out = vec![0.0; hs];
                if is_active(b) {
                    lstm::forward_row(&mut g, &mut cb, &mut hb, &mut out, None);
                }
                for j in 0..hs {
                    let (gc, gh) = (ct[j * lanes + b], hn[j * lanes + b]);
                    assert!(
                        (gc - cb[j]).abs() < 1e-4,
                        "c {hs} {b} {j}: {gc} vs {}",
                        cb[j]
                    );
                    assert!(
                        (gh - hb[j]).abs() < 1e-4,
                        "h {hs} {b} {j}: {gh} vs {}",
                        hb[j]
                    );
                }
            }
        }
    }

    /// Every partial shape, with rows zeroed, against a plain loop.
    #[test]
    fn transpose16_matches_loop() {
        if !crate::kernels::packed::available() {
            return;
        }
        let src: Vec<f32> = (0..16 * 20).map(|i| i as f32).collect();
        for (rows, cols, zero) in [(16, 16, 0u16), (5, 16, 0b101), (16, 3, 0), (7, 11, 0x400)] {
            let mut dst = vec![-1.0f32; 16 * 18];
            unsafe { transpose16(src.as_ptr(), 20, rows, cols, dst.as_mut_ptr(), 18, zero) };
            for c in 0..16 {
                for r in 0..18 {
                    let want = if c < cols && r < rows {
                        if zero & (1 << c) != 0 {
                            0.0
                        } else {
                            src[r * 20 + c]
                        }
                    } else {
                        -1.0
                    };
                    assert_eq!(dst[c * 18 + r], want, "{rows}x{cols} at {c},{r}");
                }
            }
        }
    }
}
