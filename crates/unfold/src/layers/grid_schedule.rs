//! The wavefront schedule of a two-dimensional sweep: the positions of a batch of `H x W` grids
//! in the order a sweep visits them, anti-diagonal by anti-diagonal, so that the positions of
//! one diagonal of every grid in the batch (which do not depend on each other) are contiguous
//! rows and one matrix product serves them all.
//!
//! A sweep runs from one corner ([`Corner`]); in its own coordinates it always runs from the
//! top-left, position `(i, j)` reading `(i - 1, j)` (its *vertical* predecessor) and
//! `(i, j - 1)` (its *horizontal* one), and the corner only decides how sweep coordinates map
//! to the grid (rows and/or columns mirrored). Rows are ordered by diagonal `d = i + j`, then
//! `i`, then the grid of the batch, so the predecessors of a diagonal's rows are contiguous
//! blocks of the previous diagonal.

use serde::{Deserialize, Serialize};

/// The corner a sweep starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Corner {
    /// Down and to the right.
    TopLeft,
    /// Down and to the left.
    TopRight,
    /// Up and to the right.
    BottomLeft,
    /// Up and to the left.
    BottomRight,
}

impl Corner {
    /// The corners of one, two (opposite corners) or four sweeps.
    pub fn for_sweeps(sweeps: usize) -> &'static [Corner] {
        use Corner::*;
        match sweeps {
            1 => &[TopLeft],
            2 => &[TopLeft, BottomRight],
            _ => &[TopLeft, TopRight, BottomLeft, BottomRight],
        }
    }

    /// Short name, used in parameter names (`tl`, `tr`, `bl`, `br`).
    pub fn name(self) -> &'static str {
        match self {
            Corner::TopLeft => "tl",
            Corner::TopRight => "tr",
            Corner::BottomLeft => "bl",
            Corner::BottomRight => "br",
        }
    }

    /// Whether the sweep mirrors the rows and the columns.
    pub fn flips(self) -> (bool, bool) {
        match self {
            Corner::TopLeft => (false, false),
            Corner::TopRight => (false, true),
            Corner::BottomLeft => (true, false),
            Corner::BottomRight => (true, true),
        }
    }
}

/// The size of a batch of grids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GridShape {
    /// Grids in the batch.
    pub images: usize,
    /// Rows of each grid.
    pub height: usize,
    /// Columns of each grid.
    pub width: usize,
}

impl GridShape {
    /// Positions in the batch (`images * height * width`).
    pub fn positions(&self) -> usize {
        self.images * self.height * self.width
    }

    /// Anti-diagonals of a grid (`height + width - 1`).
    pub fn diagonals(&self) -> usize {
        self.height + self.width - 1
    }
}

/// The wavefront order of every sweep over one [`GridShape`].
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    shape: GridShape,
    /// `[diagonals + 1]` first row of each diagonal.
    diag_start: Vec<usize>,
    /// `[diagonals]` smallest sweep row index `i` on each diagonal.
    lo: Vec<usize>,
    /// Per corner: sweep row -> position in the batch's `[images, height, width]` order.
    orders: Vec<(Corner, Vec<usize>)>,
}

impl Schedule {
    /// Makes sure the schedule is the one of `shape` for `corners`, rebuilding it if not.
    pub fn prepare(&mut self, shape: GridShape, corners: &[Corner]) {
        let same = self.shape == shape
            && self.orders.len() == corners.len()
            && self.orders.iter().zip(corners).all(|(o, c)| o.0 == *c);
        if same && !self.diag_start.is_empty() {
            return;
        }
        let (b, h, w) = (shape.images, shape.height, shape.width);
        self.shape = shape;
        self.diag_start.clear();
        self.lo.clear();
        let mut row = 0;
        for d in 0..shape.diagonals() {
            let lo = d.saturating_sub(w - 1);
            let hi = d.min(h - 1);
            self.diag_start.push(row);
            self.lo.push(lo);
            row += (hi + 1 - lo) * b;
        }
        self.diag_start.push(row);
        self.orders.clear();
        for &corner in corners {
            let (fr, fc) = corner.flips();
            let mut order = Vec::with_capacity(shape.positions());
            for d in 0..shape.diagonals() {
                for i in self.lo[d]..=d.min(h - 1) {
                    let j = d - i;
                    let oi = if fr { h - 1 - i } else { i };
                    let oj = if fc { w - 1 - j } else { j };
                    for img in 0..b {
                        order.push((img * h + oi) * w + oj);
                    }
                }
            }
            self.orders.push((corner, order));
        }
    }

    /// The shape scheduled.
    pub fn shape(&self) -> GridShape {
        self.shape
    }

    /// Rows `a..b` of diagonal `d`.
    pub fn diagonal(&self, d: usize) -> (usize, usize) {
        (self.diag_start[d], self.diag_start[d + 1])
    }

    /// Sweep row -> batch position, for the `s`-th corner.
    pub fn order(&self, s: usize) -> &[usize] {
        &self.orders[s].1
    }

    /// The rows of the predecessors of the first grid's row for sweep index `i` on diagonal
    /// `d >= 1` (add the grid's index within the batch): vertical `(i - 1, j)` and horizontal
    /// `(i, j - 1)`, `None` at the grid's edge.
    pub fn predecessors(&self, d: usize, i: usize) -> (Option<usize>, Option<usize>) {
        let b = self.shape.images;
        let (start, lo) = (self.diag_start[d - 1], self.lo[d - 1]);
        let up = (i >= 1).then(|| start + (i - 1 - lo) * b);
        let left = (i < d).then(|| start + (i - lo) * b);
        (up, left)
    }

    /// Every row of diagonal `d` with the rows of its vertical and horizontal predecessors
    /// (`None` at the grid's edge, and on the first diagonal): `(row, up, left)`.
    pub fn rows(
        &self,
        d: usize,
    ) -> impl Iterator<Item = (usize, Option<usize>, Option<usize>)> + '_ {
        let (b, start) = (self.shape.images, self.diag_start[d]);
        let (lo, hi) = self.rows_on(d);
        (lo..=hi).flat_map(move |i| {
            let (up, left) = if d > 0 {
                self.predecessors(d, i)
            } else {
                (None, None)
            };
            (0..b).map(move |img| {
                let r = start + (i - lo) * b + img;
                (r, up.map(|u| u + img), left.map(|l| l + img))
            })
        })
    }

    /// The smallest and largest sweep row index on diagonal `d`.
    pub fn rows_on(&self, d: usize) -> (usize, usize) {
        (self.lo[d], d.min(self.shape.height - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sweep_visits_each_position_once_after_its_predecessors() {
        let shape = GridShape {
            images: 3,
            height: 4,
            width: 6,
        };
        let mut s = Schedule::default();
        s.prepare(shape, Corner::for_sweeps(4));
        for k in 0..4 {
            let order = s.order(k);
            let mut seen = vec![false; shape.positions()];
            for &p in order {
                assert!(!seen[p]);
                seen[p] = true;
            }
            assert!(seen.iter().all(|&v| v));
            // Each predecessor row maps to the grid neighbour one step back along the sweep.
            let (fr, fc) = s.orders[k].0.flips();
            for d in 1..shape.diagonals() {
                let (lo, hi) = s.rows_on(d);
                for i in lo..=hi {
                    let (up, left) = s.predecessors(d, i);
                    let (a, _) = s.diagonal(d);
                    let row = a + (i - lo) * shape.images + 2;
                    let here = order[row];
                    let (hi_, hj) = ((here / shape.width) % shape.height, here % shape.width);
                    if let Some(u) = up {
                        let p = order[u + 2];
                        let (pi, pj) = ((p / shape.width) % shape.height, p % shape.width);
                        assert_eq!(pj, hj);
                        assert_eq!(pi as isize - hi_ as isize, if fr { 1 } else { -1 });
                        assert_eq!(p / (shape.width * shape.height), 2);
                    } else {
                        assert_eq!(i, 0);
                    }
                    if let Some(l) = left {
                        let p = order[l + 2];
                        let (pi, pj) = ((p / shape.width) % shape.height, p % shape.width);
                        assert_eq!(pi, hi_);
                        assert_eq!(pj as isize - hj as isize, if fc { 1 } else { -1 });
                    } else {
                        assert_eq!(i, d);
                    }
                }
            }
        }
    }
}
