//! A lookup table from symbol ids to vectors (PyTorch's `nn.Embedding`): the input layer for
//! symbol sequences. Its backward scatters the output gradient into the rows that were used.

use crate::error::{check_len, Error, Result};
use crate::float::Float;
use crate::layers::params::{ParamSpec, Parameters};
use crate::rng::Rng;

/// `out[n] = weight[ids[n]]`, weight `[vocab, dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding<T> {
    vocab: usize,
    dim: usize,
    /// `[vocab, dim]` table.
    pub weight: Vec<T>,
}

impl<T: Float> Embedding<T> {
    /// PyTorch's default initialisation: every entry from N(0, 1).
    pub fn new(vocab: usize, dim: usize, seed: u64) -> Result<Self> {
        let mut e = Self::zeros(vocab, dim)?;
        let mut rng = Rng::new(seed);
        for v in e.weight.iter_mut() {
            *v = T::from_f64(rng.normal());
        }
        Ok(e)
    }

    /// All-zero table (the gradient buffer's shape).
    pub fn zeros(vocab: usize, dim: usize) -> Result<Self> {
        if vocab == 0 || dim == 0 {
            return Err(Error::InvalidConfig(format!(
                "an embedding needs a vocabulary and a width above zero (got {vocab} x {dim})"
            )));
        }
        Ok(Embedding {
            vocab,
            dim,
            weight: vec![T::ZERO; vocab * dim],
        })
    }

    /// Zero table of the same shape: the gradient buffer.
    pub fn zeros_like(&self) -> Self {
        Embedding {
            vocab: self.vocab,
            dim: self.dim,
            weight: vec![T::ZERO; self.weight.len()],
        }
    }

    /// Number of symbols.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Vector width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    fn check_ids(&self, ids: &[usize]) -> Result<()> {
        match ids.iter().position(|&i| i >= self.vocab) {
            Some(p) => Err(Error::Shape {
                what: format!("symbol id at position {p}"),
                expected: format!("< {} (the vocabulary size)", self.vocab),
                got: ids[p].to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Looks up every id; `out` is `[ids.len(), dim]`.
    pub fn forward(&self, ids: &[usize], out: &mut [T]) -> Result<()> {
        self.check_ids(ids)?;
        check_len("embedding output [N, dim]", ids.len() * self.dim, out.len())?;
        let d = self.dim;
        for (o, &id) in out.chunks_exact_mut(d).zip(ids) {
            o.copy_from_slice(&self.weight[id * d..(id + 1) * d]);
        }
        Ok(())
    }

    /// Adds each row of `dout` to the gradient row of its id. Rows whose id equals `skip` (a
    /// padding id) add nothing.
    pub fn backward(
        &self,
        ids: &[usize],
        dout: &[T],
        grads: &mut Embedding<T>,
        skip: Option<usize>,
    ) -> Result<()> {
        self.check_ids(ids)?;
        check_len(
            "embedding output gradient",
            ids.len() * self.dim,
            dout.len(),
        )?;
        check_len("embedding gradient", self.weight.len(), grads.weight.len())?;
        let d = self.dim;
        for (g, &id) in dout.chunks_exact(d).zip(ids) {
            if Some(id) == skip {
                continue;
            }
            for (w, &gv) in grads.weight[id * d..(id + 1) * d].iter_mut().zip(g) {
                *w += gv;
            }
        }
        Ok(())
    }
}

impl<T: Float> Parameters<T> for Embedding<T> {
    fn param_specs(&self) -> Vec<ParamSpec> {
        vec![ParamSpec {
            name: "weight".into(),
            shape: vec![self.vocab, self.dim],
        }]
    }

    fn param_slices(&self) -> Vec<&[T]> {
        vec![&self.weight]
    }

    fn param_slices_mut(&mut self) -> Vec<&mut [T]> {
        vec![&mut self.weight]
    }
}
