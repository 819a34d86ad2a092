//! The output head of the sequence models, `o = c + V h`, optionally made deep: `k` tanh layers
//! of the input's width before the affine map, `o = c + V tanh(W_k ... tanh(W_1 h + b_1) ...)`.
//! The deep version is the deep output of the chapter's section 10.5 (Pascanu et al. 2014, the
//! "DOT-RNN" with a deep transition): depth between the state and the output, off the
//! recurrent path, so it costs nothing in how far a gradient travels through time.
//!
//! Parameters: `hidden{j}.weight [W, W]` and `hidden{j}.bias [W]` for each extra layer, then
//! `weight [O, W]` and `bias [O]`, so a head without extra layers has the names of a plain
//! linear layer.

use crate::error::Result;
use crate::float::Float;
use crate::layers::linear::Linear;
use crate::layers::params::{ParamSpec, Parameters};

/// An affine output map with `depth` tanh layers before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Head<T> {
    /// The extra layers, each `[W, W]`, in order.
    pub hidden: Vec<Linear<T>>,
    /// The final affine map `[O, W]`.
    pub out: Linear<T>,
}

/// Buffers of a [`Head`]'s forward and backward: the extra layers' activations and their
/// gradients.
#[derive(Debug, Default, Clone)]
pub struct HeadCache<T> {
    acts: Vec<T>,
    grad: Vec<T>,
}

impl<T: Float> Head<T> {
    /// A head from `width` features to `out` with `depth` extra layers, each initialised as
    /// PyTorch's `nn.Linear`; the final map is drawn from `seed` (as a plain linear head is),
    /// the extra layers from the seeds after it.
    pub fn new(width: usize, out: usize, depth: usize, seed: u64) -> Result<Self> {
        let hidden = (0..depth)
            .map(|j| Linear::new(width, width, true, seed.wrapping_add(1000 + j as u64)))
            .collect::<Result<_>>()?;
        Ok(Head {
            hidden,
            out: Linear::new(width, out, true, seed)?,
        })
    }

    /// Zero parameters of the same shape: the gradient buffer.
    pub fn zeros_like(&self) -> Self {
        Head {
            hidden: self.hidden.iter().map(Linear::zeros_like).collect(),
            out: self.out.zeros_like(),
        }
    }

    /// Features of the output.
    pub fn out_features(&self) -> usize {
        self.out.out_features()
    }

    /// Features of the input.
    pub fn in_features(&self) -> usize {
        self.out.in_features()
    }

    /// Extra layers before the final map.
    pub fn depth(&self) -> usize {
        self.hidden.len()
    }

    /// `y` (`[rows, O]`) for `x` (`[rows, W]`), keeping the extra layers' activations in
    /// `cache` for [`Head::backward`].
    pub fn forward(
        &self,
        x: &[T],
        rows: usize,
        y: &mut [T],
        cache: &mut HeadCache<T>,
    ) -> Result<()> {
        if self.hidden.is_empty() {
            return self.out.forward(x, rows, y);
        }
        let n = rows * self.in_features();
        cache.acts.resize(self.hidden.len() * n, T::ZERO);
        for (j, layer) in self.hidden.iter().enumerate() {
            let (done, rest) = cache.acts.split_at_mut(j * n);
            let src = if j == 0 { x } else { &done[(j - 1) * n..] };
            let dst = &mut rest[..n];
            layer.forward(src, rows, dst)?;
            dst.iter_mut().for_each(|v| *v = v.tanh());
        }
        let last = &cache.acts[(self.hidden.len() - 1) * n..];
        self.out.forward(last, rows, y)
    }

    /// Backward of the last [`Head::forward`] on `x` with `cache`: adds every parameter
    /// gradient to `grads` and writes the gradient on `x` to `dx`.
    pub fn backward(
        &self,
        x: &[T],
        dy: &[T],
        rows: usize,
        grads: &mut Head<T>,
        dx: &mut [T],
        cache: &mut HeadCache<T>,
    ) -> Result<()> {
        let k = self.hidden.len();
        if k == 0 {
            return self
                .out
                .backward(x, dy, rows, &mut grads.out, Some(dx), false);
        }
        let n = rows * self.in_features();
        let HeadCache { acts, grad } = cache;
        grad.resize(n, T::ZERO);
        let last = &acts[(k - 1) * n..k * n];
        self.out
            .backward(last, dy, rows, &mut grads.out, Some(grad), false)?;
        for j in (0..k).rev() {
            let a = &acts[j * n..(j + 1) * n];
            for (g, &y) in grad.iter_mut().zip(a) {
                *g *= T::ONE - y * y;
            }
            let src = if j == 0 { x } else { &acts[(j - 1) * n..j * n] };
            if j == 0 {
                self.hidden[0].backward(src, grad, rows, &mut grads.hidden[0], Some(dx), false)?;
            } else {
                // The gradient on the layer below's activation replaces this one's; `dx` serves
                // as scratch until the first layer writes it.
                let below = &mut dx[..n];
                let g = &mut grads.hidden[j];
                self.hidden[j].backward(src, grad, rows, g, Some(below), false)?;
                grad.copy_from_slice(below);
            }
        }
        Ok(())
    }
}

impl<T: Float> Parameters<T> for Head<T> {
    fn param_specs(&self) -> Vec<ParamSpec> {
        let mut v = Vec::new();
        for (j, l) in self.hidden.iter().enumerate() {
            v.extend(l.param_specs().into_iter().map(|s| ParamSpec {
                name: format!("hidden{j}.{}", s.name),
                shape: s.shape,
            }));
        }
        v.extend(self.out.param_specs());
        v
    }

    fn param_slices(&self) -> Vec<&[T]> {
        let mut v = Vec::new();
        for l in &self.hidden {
            v.extend(l.param_slices());
        }
        v.extend(self.out.param_slices());
        v
    }

    fn param_slices_mut(&mut self) -> Vec<&mut [T]> {
        let mut v = Vec::new();
        for l in &mut self.hidden {
            v.extend(l.param_slices_mut());
        }
        v.extend(self.out.param_slices_mut());
        v
    }
}
