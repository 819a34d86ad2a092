//! The separable alternative to a 2-D sweep (ReNet, Visin et al. 2015), built from the
//! sequence layers: a bidirectional recurrent layer reads every row of the grid left to right
//! and right to left, then a second one reads every column of the result top to bottom and
//! bottom to top. Each output position then depends on the whole grid, as with four 2-D
//! sweeps, but through two one-dimensional passes (each a batch of `images * rows` or
//! `images * columns` sequences for the fused engines) instead of one two-dimensional
//! recurrence.
//!
//! Parameters: `rows.*` and `cols.*`, each a bidirectional [`Recurrent`] with PyTorch's names.

use serde::{Deserialize, Serialize};

use crate::error::{check_len, Error, Result};
use crate::float::Float;
use crate::layers::config::{CellKind, RecurrentConfig};
use crate::layers::grid::GridShape;
use crate::layers::params::{ParamSpec, Parameters};
use crate::layers::recurrent::{Recurrent, TrainCache};
use crate::models::joined_specs;

/// Sizes and cell of a [`ReNetLayer`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReNetConfig {
    /// The cell of both passes.
    pub cell: CellKind,
    /// Channels of the input at each position.
    pub input_size: usize,
    /// Hidden units per direction.
    pub hidden: usize,
}

impl ReNetConfig {
    /// Features of the output at each position (`2 * hidden`).
    pub fn out_width(&self) -> usize {
        2 * self.hidden
    }
}

/// A ReNet layer: rows, then columns.
#[derive(Debug, Clone, PartialEq)]
pub struct ReNetLayer<T> {
    config: ReNetConfig,
    /// The pass over the rows.
    pub rows: Recurrent<T>,
    /// The pass over the columns of the rows' output.
    pub cols: Recurrent<T>,
}

/// What a forward pass keeps for backward, and its output.
#[derive(Debug, Default)]
pub struct ReNetCache<T> {
    shape: GridShape,
    /// `[W, B * H, I]` the rows as sequences.
    xr: Vec<T>,
    rows: TrainCache<T>,
    /// `[H, B * W, 2 h]` the columns of the rows' output as sequences.
    xc: Vec<T>,
    cols: TrainCache<T>,
    /// `[B, H, W, 2 h]` the layer's output.
    pub out: Vec<T>,
    /// Scratch for the gradients on the passes' outputs.
    dseq: Vec<T>,
}

impl<T: Float> ReNetLayer<T> {
    /// A layer with PyTorch's initialisation, drawn from `seed`.
    pub fn new(config: ReNetConfig, seed: u64) -> Result<Self> {
        let rows = Recurrent::new(
            RecurrentConfig::new(config.cell, config.input_size, config.hidden).bidirectional(true),
            seed,
        )?;
        let cols = Recurrent::new(
            RecurrentConfig::new(config.cell, config.out_width(), config.hidden)
                .bidirectional(true),
            seed.wrapping_add(7),
        )?;
        Ok(ReNetLayer { config, rows, cols })
    }

    /// Zero parameters of the same shape: the gradient buffer.
    pub fn zeros_like(&self) -> Self {
        ReNetLayer {
            config: self.config,
            rows: self.rows.zeros_like(),
            cols: self.cols.zeros_like(),
        }
    }

    /// The layer's settings.
    pub fn config(&self) -> ReNetConfig {
        self.config
    }

    /// Sets the forget-gate bias of both passes (LSTM).
    pub fn set_forget_bias(&mut self, value: T) -> Result<()> {
        self.rows.set_forget_bias(value)?;
        self.cols.set_forget_bias(value)
    }

    /// Runs both passes over `x` (`[images, height, width, I]`); the output is in `cache.out`
    /// (`[images, height, width, 2 h]`).
    pub fn forward(&self, shape: GridShape, x: &[T], cache: &mut ReNetCache<T>) -> Result<()> {
        let (b, h, w, i) = (
            shape.images,
            shape.height,
            shape.width,
            self.config.input_size,
        );
        if b * h * w == 0 {
            return Err(Error::InvalidData("an empty grid batch".into()));
        }
        check_len(
            "ReNet input [images, height, width, I]",
            b * h * w * i,
            x.len(),
        )?;
        let f = self.config.out_width();
        cache.shape = shape;
        // Rows: time = column j, sequence = (image, row).
        cache.xr.resize(b * h * w * i, T::ZERO);
        for n in 0..b * h {
            for j in 0..w {
                let src = &x[(n * w + j) * i..(n * w + j + 1) * i];
                cache.xr[(j * b * h + n) * i..(j * b * h + n + 1) * i].copy_from_slice(src);
            }
        }
        self.rows
            .forward_train(&cache.xr, w, b * h, None, None, &mut cache.rows)?;
        // Columns: time = row r, sequence = (image, column).
        let ro = cache.rows.output();
        cache.xc.resize(b * h * w * f, T::ZERO);
        for img in 0..b {
            for r in 0..h {
                for j in 0..w {
                    let src = &ro[(j * b * h + img * h + r) * f..(j * b * h + img * h + r + 1) * f];
                    let dst = (r * b * w + img * w + j) * f;
                    cache.xc[dst..dst + f].copy_from_slice(src);
                }
            }
        }
        self.cols
            .forward_train(&cache.xc, h, b * w, None, None, &mut cache.cols)?;
        let co = cache.cols.output();
        cache.out.resize(b * h * w * f, T::ZERO);
        for img in 0..b {
            for r in 0..h {
                for j in 0..w {
                    let src = &co[(r * b * w + img * w + j) * f..(r * b * w + img * w + j + 1) * f];
                    let dst = ((img * h + r) * w + j) * f;
                    cache.out[dst..dst + f].copy_from_slice(src);
                }
            }
        }
        Ok(())
    }

    /// Backward of the last forward: given `dout` (`[images, height, width, 2 h]`), *adds* the
    /// parameter gradients to `grads` and writes the input gradient to `dx`.
    pub fn backward(
        &self,
        cache: &mut ReNetCache<T>,
        dout: &[T],
        grads: &mut ReNetLayer<T>,
        dx: &mut [T],
    ) -> Result<()> {
        let shape = cache.shape;
        let (b, h, w, i) = (
            shape.images,
            shape.height,
            shape.width,
            self.config.input_size,
        );
        let f = self.config.out_width();
        check_len("ReNet output gradient", b * h * w * f, dout.len())?;
        check_len("ReNet input gradient", b * h * w * i, dx.len())?;
        cache.dseq.resize(b * h * w * f, T::ZERO);
        for img in 0..b {
            for r in 0..h {
                for j in 0..w {
                    let src = ((img * h + r) * w + j) * f;
                    let dst = (r * b * w + img * w + j) * f;
                    cache.dseq[dst..dst + f].copy_from_slice(&dout[src..src + f]);
                }
            }
        }
        self.cols.backward(
            &mut cache.cols,
            Some(&cache.dseq),
            None,
            &mut grads.cols,
            true,
        )?;
        let dc = cache.cols.dinput();
        for img in 0..b {
            for r in 0..h {
                for j in 0..w {
                    let src = (r * b * w + img * w + j) * f;
                    let dst = (j * b * h + img * h + r) * f;
                    cache.dseq[dst..dst + f].copy_from_slice(&dc[src..src + f]);
                }
            }
        }
        self.rows.backward(
            &mut cache.rows,
            Some(&cache.dseq),
            None,
            &mut grads.rows,
            true,
        )?;
        let dr = cache.rows.dinput();
        for n in 0..b * h {
            for j in 0..w {
                let src = (j * b * h + n) * i;
                dx[(n * w + j) * i..(n * w + j + 1) * i].copy_from_slice(&dr[src..src + i]);
            }
        }
        Ok(())
    }
}

impl<T: Float> Parameters<T> for ReNetLayer<T> {
    fn param_specs(&self) -> Vec<ParamSpec> {
        joined_specs(&[
            ("rows", self.rows.param_specs()),
            ("cols", self.cols.param_specs()),
        ])
    }

    fn param_slices(&self) -> Vec<&[T]> {
        let mut v = self.rows.param_slices();
        v.extend(self.cols.param_slices());
        v
    }

    fn param_slices_mut(&mut self) -> Vec<&mut [T]> {
        let mut v = self.rows.param_slices_mut();
        v.extend(self.cols.param_slices_mut());
        v
    }
}
