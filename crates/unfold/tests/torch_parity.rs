//! Numerical parity with PyTorch's nn.RNN / nn.LSTM / nn.GRU on the committed fixtures made by
//! `tools/torch_reference.py` (see `fixtures/torch/README.md`): same weights, inputs and output
//! gradients; outputs, final states and every gradient compared in f32.
//!
//! Each loaded layer is also written back to `target/unfold-export/` so that
//! `tools/check_torch_load.py` can show PyTorch loads unfold's files with `strict=True`.

use std::path::PathBuf;
use unfold::checkpoint::TensorFile;
use unfold::layers::TrainCache;
use unfold::{CellKind, Parameters, Recurrent, RecurrentConfig, RecurrentState};

/// Relative tolerance of the comparison: |a - b| <= REL * max(|b|, FLOOR * max|tensor|).
/// The floor matters only for elements much smaller than the rest of their tensor: a gradient
/// is a sum of many terms of the tensor's magnitude, and when they cancel, f32 rounding in a
/// different summation order (ours vs MKL's) leaves an error relative to the terms, not to the
/// small sum.
const REL: f32 = 1e-5;
const FLOOR: f32 = 0.1;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch")
}

fn tensor(f: &TensorFile, name: &str) -> Vec<f32> {
    f.tensors
        .get(name)
        .unwrap_or_else(|| panic!("fixture lacks {name}"))
        .to_vec()
        .unwrap()
}

fn compare(tag: &str, got: &[f32], want: &[f32]) -> f32 {
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

#[test]
fn matches_pytorch_on_every_configuration() {
    let mut names: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 32, "one fixture per combination");
    let export = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/unfold-export");
    std::fs::create_dir_all(&export).unwrap();
    let mut worst = 0.0f32;
    for path in names {
        let f = TensorFile::read(&path).unwrap();
        let m = |k: &str| f.metadata[k].clone();
        let num = |k: &str| m(k).parse::<usize>().unwrap();
        let kind = CellKind::parse(&m("kind")).unwrap();
        let cfg = RecurrentConfig::new(kind, num("input_size"), num("hidden_size"))
            .layers(num("num_layers"))
            .bidirectional(m("bidirectional") == "true");
        let (steps, batch) = (num("steps"), num("batch"));
        let tag = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut layer = Recurrent::<f32>::zeros(cfg.clone()).unwrap();
        f.load_params("rnn.", &mut layer).unwrap();
        let lengths: Vec<usize> = tensor(&f, "lengths").iter().map(|&v| v as usize).collect();
        let mut init = RecurrentState::zeros(&cfg, batch);
        init.h = tensor(&f, "h0");
        let mut dfinal = RecurrentState::zeros(&cfg, batch);
        dfinal.h = tensor(&f, "dh_n");
        if kind == CellKind::Lstm {
            init.c = tensor(&f, "c0");
            dfinal.c = tensor(&f, "dc_n");
        }
        let mut cache = TrainCache::default();
        layer
            .forward_train(
                &tensor(&f, "x"),
                steps,
                batch,
                Some(&lengths),
                Some(&init),
                &mut cache,
            )
            .unwrap();
        worst = worst.max(compare(
            &format!("{tag} out"),
            cache.output(),
            &tensor(&f, "out"),
        ));
        let fs = cache.final_state();
        worst = worst.max(compare(&format!("{tag} h_n"), &fs.h, &tensor(&f, "h_n")));
        if kind == CellKind::Lstm {
            worst = worst.max(compare(&format!("{tag} c_n"), &fs.c, &tensor(&f, "c_n")));
        }
        let mut grads = layer.zeros_like();
        let dout = tensor(&f, "dout");
        layer
            .backward(&mut cache, Some(&dout), Some(&dfinal), &mut grads, true)
            .unwrap();
        let mut want = layer.zeros_like();
        f.load_params("grad.", &mut want).unwrap();
        for ((spec, g), w) in grads
            .param_specs()
            .iter()
            .zip(grads.param_slices())
            .zip(want.param_slices())
        {
            worst = worst.max(compare(&format!("{tag} d{}", spec.name), g, w));
        }
        worst = worst.max(compare(
            &format!("{tag} dx"),
            cache.dinput(),
            &tensor(&f, "dx"),
        ));
        worst = worst.max(compare(
            &format!("{tag} dh0"),
            &cache.dinit().h,
            &tensor(&f, "dh0"),
        ));
        if kind == CellKind::Lstm {
            worst = worst.max(compare(
                &format!("{tag} dc0"),
                &cache.dinit().c,
                &tensor(&f, "dc0"),
            ));
        }
        // Export for the reverse check (PyTorch loading unfold's file).
        let mut out = TensorFile::new();
        out.insert_params("", &layer);
        for (k, v) in &f.metadata {
            out.metadata.insert(k.clone(), v.clone());
        }
        out.write(export.join(format!("{tag}.safetensors")))
            .unwrap();
    }
    eprintln!("worst relative error against PyTorch: {worst:e}");
}
