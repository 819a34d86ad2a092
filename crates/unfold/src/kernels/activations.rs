//! Element-wise activations over a slice, in place: 16 lanes of AVX-512 for `f32` where the
//! machine has it (the same functions as the fused cell kernels), the scalar [`Float`]
//! functions otherwise (and for `f64`, so gradient checks see the exact functions). For layers
//! whose element-wise work does not fit a fused per-cell kernel (the tree layer's per-node
//! gates).

use crate::float::Float;

/// `x = sigmoid(x)` for every value.
pub fn sigmoid_in_place<T: Float>(x: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(v) = as_f32(x) {
        // SAFETY: AVX-512 availability checked by `as_f32`.
        unsafe { super::cells512::sigmoid_in_place(v) };
        return;
    }
    x.iter_mut().for_each(|v| *v = v.sigmoid());
}

/// `x = tanh(x)` for every value.
pub fn tanh_in_place<T: Float>(x: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(v) = as_f32(x) {
        // SAFETY: AVX-512 availability checked by `as_f32`.
        unsafe { super::cells512::tanh_in_place(v) };
        return;
    }
    x.iter_mut().for_each(|v| *v = v.tanh());
}

/// `x` as `f32` values when `T` is `f32` and the AVX-512 kernels run here.
#[cfg(target_arch = "x86_64")]
fn as_f32<T: Float>(x: &mut [T]) -> Option<&mut [f32]> {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() && super::packed::available() {
        // SAFETY: T is f32 (same size, alignment and representation).
        Some(unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr() as *mut f32, x.len()) })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_activations_match_the_scalar_functions() {
        let xs: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.7).collect();
        let (mut s, mut t) = (xs.clone(), xs.clone());
        sigmoid_in_place(&mut s);
        tanh_in_place(&mut t);
        for ((&x, &sv), &tv) in xs.iter().zip(&s).zip(&t) {
            assert!(
                (sv - 1.0 / (1.0 + (-x as f64).exp()) as f32).abs() < 1e-6,
                "sigmoid {x}"
            );
            assert!((tv - (x as f64).tanh() as f32).abs() < 1e-6, "tanh {x}");
        }
    }
}
