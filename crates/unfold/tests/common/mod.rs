//! Helpers shared by the PyTorch parity tests: reading fixture tensors and comparing with a
//! relative tolerance.

#![allow(dead_code)] // each test binary uses its own subset

use unfold::checkpoint::TensorFile;
use unfold::Parameters;

/// Relative tolerance of the comparison: |a - b| <= REL * max(|b|, FLOOR * max|tensor|).
/// The floor matters only for elements much smaller than the rest of their tensor: a gradient
/// is a sum of many terms of the tensor's magnitude, and when they cancel, f32 rounding in a
/// different summation order (ours vs MKL's) leaves an error relative to the terms, not to the
/// small sum.
pub const REL: f32 = 1e-5;
/// See [`REL`].
pub const FLOOR: f32 = 0.1;

/// Tensor `name` of a fixture as `f32` values (panics when the fixture lacks it).
pub fn tensor(f: &TensorFile, name: &str) -> Vec<f32> {
    f.tensors
        .get(name)
        .unwrap_or_else(|| panic!("fixture lacks {name}"))
        .to_vec()
        .unwrap()
}

/// Asserts `got` equals `want` within [`REL`] (see there); returns the worst relative error.
pub fn compare(tag: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "{tag}: length");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())) * FLOOR;
    let mut worst = 0.0f32;
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let rel = (a - b).abs() / b.abs().max(scale).max(f32::MIN_POSITIVE);
        assert!(
            rel <= REL,
            "{tag}[{i}]: unfold {a} vs torch {b} (rel {rel:e})"
        );
        worst = worst.max(rel);
    }
    worst
}

/// Compares every parameter gradient in `grads` with the fixture's `grad.` tensors (loaded
/// into a layer shaped like `grads`); returns the worst relative error.
pub fn compare_param_grads<P: Parameters<f32> + Clone>(
    tag: &str,
    f: &TensorFile,
    grads: &P,
) -> f32 {
    let mut want = grads.clone();
    want.zero();
    f.load_params("grad.", &mut want).unwrap();
    let mut worst = 0.0f32;
    for ((spec, g), w) in grads
        .param_specs()
        .iter()
        .zip(grads.param_slices())
        .zip(want.param_slices())
    {
        worst = worst.max(compare(&format!("{tag} d{}", spec.name), g, w));
    }
    worst
}

/// The `.safetensors` fixtures under `tests/fixtures/<dir>`, sorted; asserts there are `count`.
pub fn fixture_files(dir: &str, count: usize) -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), count, "fixtures in {}", dir.display());
    paths
}
