//! Numerical parity with PyTorch's nn.RNN / nn.LSTM / nn.GRU on the committed fixtures made by
//! `tools/torch_reference.py` (see `fixtures/torch/README.md`): same weights, inputs and output
//! gradients; outputs, final states and every gradient compared in f32.
//!
//! Each loaded layer is also written back to `target/unfold-export/` so that
//! `tools/check_torch_load.py` can show PyTorch loads unfold's files with `strict=True`.

use std::path::PathBuf;
use unfold::checkpoint::TensorFile;
use unfold::layers::TrainCache;
use unfold::{CellKind, Recurrent, RecurrentConfig, RecurrentState};

mod common;

use common::{compare, compare_param_grads, tensor};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch")
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
        worst = worst.max(compare_param_grads(&tag, &f, &grads));
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
