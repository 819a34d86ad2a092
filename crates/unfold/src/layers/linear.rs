//! A dense (affine) layer `y = x W^T + b` over a batch of rows, with PyTorch's `nn.Linear`
//! layout and initialisation. It is the input projection and the output head of the chapter's
//! models (`o = c + V h`).

use crate::error::{check_len, Error, Result};
use crate::float::Float;
use crate::kernels::gemm::{gemm_nn, gemm_nt, gemm_tn, sum_rows};
use crate::layers::params::{ParamSpec, Parameters};
use crate::rng::Rng;

/// `y[N, out] = x[N, in] W[out, in]^T + b[out]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear<T> {
    in_features: usize,
    out_features: usize,
    /// `[out, in]` weights.
    pub weight: Vec<T>,
    /// `[out]` bias, or empty when the layer has none.
    pub bias: Vec<T>,
}

impl<T: Float> Linear<T> {
    /// PyTorch's default initialisation: weights and bias uniform in `[-1/sqrt(in), 1/sqrt(in)]`.
    pub fn new(in_features: usize, out_features: usize, bias: bool, seed: u64) -> Result<Self> {
        let mut l = Self::zeros(in_features, out_features, bias)?;
        let k = 1.0 / (in_features.max(1) as f64).sqrt();
        let mut rng = Rng::new(seed);
        for s in l.param_slices_mut() {
            for v in s.iter_mut() {
                *v = T::from_f64(rng.uniform_range(-k, k));
            }
        }
        Ok(l)
    }

    /// All-zero parameters (also the gradient buffer's shape).
    pub fn zeros(in_features: usize, out_features: usize, bias: bool) -> Result<Self> {
        if out_features == 0 {
            return Err(Error::InvalidConfig(
                "a linear layer needs at least one output".into(),
            ));
        }
        Ok(Linear {
            in_features,
            out_features,
            weight: vec![T::ZERO; in_features * out_features],
            bias: if bias {
                vec![T::ZERO; out_features]
            } else {
                Vec::new()
            },
        })
    }

    /// Zero parameters of the same shape: the gradient buffer.
    pub fn zeros_like(&self) -> Self {
        Linear {
            in_features: self.in_features,
            out_features: self.out_features,
            weight: vec![T::ZERO; self.weight.len()],
            bias: vec![T::ZERO; self.bias.len()],
        }
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// `y = x W^T + b` for `rows` rows; `y` is overwritten.
    pub fn forward(&self, x: &[T], rows: usize, y: &mut [T]) -> Result<()> {
        let (i, o) = (self.in_features, self.out_features);
        check_len("linear input [N, in]", rows * i, x.len())?;
        check_len("linear output [N, out]", rows * o, y.len())?;
        if rows == 0 {
            return Ok(());
        }
        if self.bias.is_empty() {
            y.fill(T::ZERO);
        } else {
            for r in y.chunks_exact_mut(o) {
                r.copy_from_slice(&self.bias);
            }
        }
        if i > 0 {
            gemm_nt(rows, o, i, x, i, &self.weight, i, y, o, true);
        }
        Ok(())
    }

    /// Backward of [`Linear::forward`]: adds `dW = dy^T x` and `db = sum dy` to `grads` and,
    /// when `dx` is given, writes (`acc_dx == false`) or adds the input gradient `dy W`.
    pub fn backward(
        &self,
        x: &[T],
        dy: &[T],
        rows: usize,
        grads: &mut Linear<T>,
        dx: Option<&mut [T]>,
        acc_dx: bool,
    ) -> Result<()> {
        let (i, o) = (self.in_features, self.out_features);
        check_len("linear input [N, in]", rows * i, x.len())?;
        check_len("linear output gradient [N, out]", rows * o, dy.len())?;
        if grads.weight.len() != self.weight.len() || grads.bias.len() != self.bias.len() {
            return Err(Error::InvalidCall(
                "gradient buffer has a different shape than the linear layer".into(),
            ));
        }
        if rows == 0 {
            if let Some(dx) = dx {
                if !acc_dx {
                    dx.fill(T::ZERO);
                }
            }
            return Ok(());
        }
        if i > 0 {
            gemm_tn(o, i, rows, dy, o, x, i, &mut grads.weight, i, true);
        }
        if !self.bias.is_empty() {
            sum_rows(rows, o, dy, o, &mut grads.bias);
        }
        if let Some(dx) = dx {
            check_len("linear input gradient [N, in]", rows * i, dx.len())?;
            if i > 0 {
                gemm_nn(rows, i, o, dy, o, &self.weight, i, dx, i, acc_dx);
            }
        }
        Ok(())
    }
}

impl<T: Float> Parameters<T> for Linear<T> {
    fn param_specs(&self) -> Vec<ParamSpec> {
        let mut v = vec![ParamSpec {
            name: "weight".into(),
            shape: vec![self.out_features, self.in_features],
        }];
        if !self.bias.is_empty() {
            v.push(ParamSpec {
                name: "bias".into(),
                shape: vec![self.out_features],
            });
        }
        v
    }

    fn param_slices(&self) -> Vec<&[T]> {
        let mut v: Vec<&[T]> = vec![&self.weight];
        if !self.bias.is_empty() {
            v.push(&self.bias);
        }
        v
    }

    fn param_slices_mut(&mut self) -> Vec<&mut [T]> {
        let mut v: Vec<&mut [T]> = vec![&mut self.weight];
        if !self.bias.is_empty() {
            v.push(&mut self.bias);
        }
        v
    }
}
