//! Gradient clipping, the standard defence against exploding gradients: by global norm
//! (PyTorch's `clip_grad_norm_`: scale all gradients by `max / (norm + 1e-6)` when the norm
//! exceeds `max`) and by value (`clip_grad_value_`). Both report the global norm before
//! clipping, the quantity to watch for explosion.

use crate::float::Float;

/// How gradients are clipped before each update.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Clip {
    /// No clipping.
    #[default]
    None,
    /// Rescale so the global L2 norm is at most this.
    Norm(f64),
    /// Clamp every component to `[-v, v]`.
    Value(f64),
}

/// Global L2 norm of all gradients, accumulated in f64.
pub fn global_norm<T: Float>(grads: &[&[T]]) -> f64 {
    grads
        .iter()
        .map(|g| g.iter().map(|v| v.to_f64() * v.to_f64()).sum::<f64>())
        .sum::<f64>()
        .sqrt()
}

/// Applies `clip` and returns the global norm before clipping.
pub fn clip_gradients<T: Float>(mut grads: Vec<&mut [T]>, clip: Clip) -> f64 {
    let norm = global_norm(&grads.iter().map(|g| &**g).collect::<Vec<_>>());
    match clip {
        Clip::None => {}
        Clip::Norm(max) => {
            let coef = max / (norm + 1e-6);
            if coef < 1.0 {
                let c = T::from_f64(coef);
                for g in grads.iter_mut() {
                    g.iter_mut().for_each(|v| *v *= c);
                }
            }
        }
        Clip::Value(v) => {
            let (lo, hi) = (T::from_f64(-v), T::from_f64(v));
            for g in grads.iter_mut() {
                for x in g.iter_mut() {
                    if *x < lo {
                        *x = lo;
                    } else if *x > hi {
                        *x = hi;
                    }
                }
            }
        }
    }
    norm
}
