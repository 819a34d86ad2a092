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

/// The weights of one cell: one layer, one direction, PyTorch layout (gates stacked by rows).
#[derive(Debug, Clone, PartialEq)]
pub struct CellParams<T> {
    /// `[G*H, I]` input-to-hidden weights.
    pub w_ih: Vec<T>,
    /// `[G*H, H]` hidden-to-hidden weights.
    pub w_hh: Vec<T>,
    /// `[G*H]` input bias (empty when the layer has no biases).
    pub b_ih: Vec<T>,
    /// `[G*H]` hidden bias (empty when the layer has no biases).
    pub b_hh: Vec<T>,
}

impl<T: Float> CellParams<T> {
    /// All-zero parameters of the given sizes.
    pub fn zeros(gh: usize, input: usize, hidden: usize, bias: bool) -> Self {
        let nb = if bias { gh } else { 0 };
        CellParams {
            w_ih: vec![T::ZERO; gh * input],
            w_hh: vec![T::ZERO; gh * hidden],
            b_ih: vec![T::ZERO; nb],
            b_hh: vec![T::ZERO; nb],
        }
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
