//! Parameters by name: the weights of one cell (layer and direction) and the trait through
//! which optimizers and checkpoints see any module's parameters.

use crate::float::Float;

/// The name and shape of one parameter tensor (PyTorch's state_dict naming).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// Name, e.g. `weight_ih_l0_reverse`.
    pub name: String,
    /// Shape, row-major.
    pub shape: Vec<usize>,
}

impl ParamSpec {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Anything with named parameters: a module, or the gradients of one (same names, same order).
pub trait Parameters<T: Float> {
    /// Names and shapes, in a fixed order.
    fn param_specs(&self) -> Vec<ParamSpec>;
    /// The tensors, in the order of `param_specs`.
    fn param_slices(&self) -> Vec<&[T]>;
    /// The tensors, mutable, in the order of `param_specs`.
    fn param_slices_mut(&mut self) -> Vec<&mut [T]>;

    /// Total number of scalars.
    fn num_params(&self) -> usize {
        self.param_slices().iter().map(|s| s.len()).sum()
    }

    /// Sets every tensor to zero (gradients are zeroed once per step, then accumulated).
    fn zero(&mut self) {
        for s in self.param_slices_mut() {
            s.fill(T::ZERO);
        }
    }
}

/// The parameters of one cell (one layer, one direction): one tensor per [`ParamSpec`] of the
/// cell ([`crate::layers::Cell::param_specs`]), in that order, row-major. The four PyTorch
/// cells store `[W_ih, W_hh, b_ih, b_hh]` (gates stacked by rows, biases absent when the layer
/// has none); the accessors below read that layout.
#[derive(Debug, Clone, PartialEq)]
pub struct CellParams<T> {
    /// The tensors, in the cell's spec order.
    pub tensors: Vec<Vec<T>>,
}

impl<T: Float> CellParams<T> {
    /// All-zero tensors of the given specs.
    pub fn zeros_for(specs: &[ParamSpec]) -> Self {
        CellParams {
            tensors: specs.iter().map(|s| vec![T::ZERO; s.numel()]).collect(),
        }
    }

    /// Tensor `i`, or an empty slice when the cell has fewer.
    #[inline]
    pub fn get(&self, i: usize) -> &[T] {
        self.tensors.get(i).map_or(&[], |v| &v[..])
    }

    /// Tensor `i`, mutable (empty when the cell has fewer).
    #[inline]
    pub fn get_mut(&mut self, i: usize) -> &mut [T] {
        self.tensors.get_mut(i).map_or(&mut [], |v| &mut v[..])
    }

    /// PyTorch layout: `[G*H, I]` input-to-hidden weights.
    #[inline]
    pub fn w_ih(&self) -> &[T] {
        self.get(0)
    }

    /// PyTorch layout: `[G*H, H]` hidden-to-hidden weights.
    #[inline]
    pub fn w_hh(&self) -> &[T] {
        self.get(1)
    }

    /// PyTorch layout: `[G*H]` input bias (empty without biases).
    #[inline]
    pub fn b_ih(&self) -> &[T] {
        self.get(2)
    }

    /// PyTorch layout: `[G*H]` hidden bias (empty without biases).
    #[inline]
    pub fn b_hh(&self) -> &[T] {
        self.get(3)
    }
}

/// An optional part has the parameters of its content, or none.
impl<T: Float, P: Parameters<T>> Parameters<T> for Option<P> {
    fn param_specs(&self) -> Vec<ParamSpec> {
        self.as_ref().map_or_else(Vec::new, |p| p.param_specs())
    }

    fn param_slices(&self) -> Vec<&[T]> {
        self.as_ref().map_or_else(Vec::new, |p| p.param_slices())
    }

    fn param_slices_mut(&mut self) -> Vec<&mut [T]> {
        self.as_mut()
            .map_or_else(Vec::new, |p| p.param_slices_mut())
    }
}

/// Fills every tensor uniform in `[-1/sqrt(hidden), 1/sqrt(hidden)]`, in order, from one
/// stream seeded by `seed`: PyTorch's recurrent initialisation, used by the tree and grid
/// layers.
pub(crate) fn uniform_fill<T: Float>(tensors: Vec<&mut [T]>, hidden: usize, seed: u64) {
    let k = 1.0 / (hidden as f64).sqrt();
    let mut rng = crate::rng::Rng::new(seed);
    for t in tensors {
        for v in t.iter_mut() {
            *v = T::from_f64(rng.uniform_range(-k, k));
        }
    }
}
