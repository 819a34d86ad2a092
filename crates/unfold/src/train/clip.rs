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
pub fn clip_gradients<T: Float>(grads: Vec<&mut [T]>, clip: Clip) -> f64 {
    clip_and_report(grads, clip).before
}

/// What clipping did to one step's gradients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipReport {
    /// Global norm before clipping.
    pub before: f64,
    /// Global norm after clipping.
    pub after: f64,
    /// Whether clipping changed the gradients.
    pub clipped: bool,
}

/// Applies `clip` and reports the global norm before and after.
pub fn clip_and_report<T: Float>(mut grads: Vec<&mut [T]>, clip: Clip) -> ClipReport {
    let norm = global_norm(&grads.iter().map(|g| &**g).collect::<Vec<_>>());
    let mut report = ClipReport {
        before: norm,
        after: norm,
        clipped: false,
    };
    match clip {
        Clip::None => {}
        Clip::Norm(max) => {
            let coef = max / (norm + 1e-6);
            if coef < 1.0 {
                let c = T::from_f64(coef);
                for g in grads.iter_mut() {
                    g.iter_mut().for_each(|v| *v *= c);
                }
                report.after = norm * coef;
                report.clipped = true;
            }
        }
        Clip::Value(v) => {
            let (lo, hi) = (T::from_f64(-v), T::from_f64(v));
            for g in grads.iter_mut() {
                for x in g.iter_mut() {
                    if *x < lo {
                        *x = lo;
                        report.clipped = true;
                    } else if *x > hi {
                        *x = hi;
                        report.clipped = true;
                    }
                }
            }
            if report.clipped {
                report.after = global_norm(&grads.iter().map(|g| &**g).collect::<Vec<_>>());
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_gives_the_norm_before_and_after() {
        let mut g = [3.0f64, 4.0];
        let r = clip_and_report(vec![&mut g[..]], Clip::Norm(1.0));
        assert!(r.clipped && (r.before - 5.0).abs() < 1e-12);
        assert!((r.after - 1.0).abs() < 1e-6 && (g[0] - 0.6).abs() < 1e-6);
        let r = clip_and_report(vec![&mut g[..]], Clip::Norm(10.0));
        assert!(!r.clipped && r.after == r.before);
        let mut g = [3.0f64, -0.5];
        let r = clip_and_report(vec![&mut g[..]], Clip::Value(1.0));
        assert!(r.clipped && (r.after - 1.25f64.sqrt()).abs() < 1e-12);
    }
}
