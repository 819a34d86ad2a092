//! Numerical parity with PyTorch for the cells PyTorch has no module for (leaky units, deep
//! transitions with and without the shortcut, delayed recurrences, the clockwork RNN) and for
//! the time-delay layer (against `conv1d`), on the fixtures made by
//! `tools/torch_cells_reference.py`, where each cell is written as a loop over time steps in
//! PyTorch (see `fixtures/cells/README.md`): same weights, inputs and output gradients over a
//! ragged batch; outputs, final states and every gradient compared in f32.

use std::path::PathBuf;
use unfold::checkpoint::TensorFile;
use unfold::layers::TrainCache;
use unfold::{CellKind, Recurrent, RecurrentConfig, RecurrentState};

mod common;

use common::{compare, compare_param_grads, tensor};

#[test]
fn cells_match_their_pytorch_loops() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cells");
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 7, "one fixture per cell setting");
    let mut seen = Vec::new();
    for path in names {
        let f = TensorFile::read(&path).unwrap();
        let num = |k: &str| f.metadata[k].parse::<usize>().unwrap();
        let kind: CellKind = serde_json::from_str(&f.metadata["cell"]).unwrap();
        seen.push(kind.name());
        let cfg = RecurrentConfig::new(kind, num("input_size"), num("hidden_size"));
        let (steps, batch) = (num("steps"), num("batch"));
        let tag = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut layer = Recurrent::<f32>::zeros(cfg.clone()).unwrap();
        f.load_params("rnn.", &mut layer).unwrap();
        let lengths: Vec<usize> = tensor(&f, "lengths").iter().map(|&v| v as usize).collect();
        let extra = cfg.extra_state_size() > 0;
        let differentiable = extra && f.tensors.contains_key("de_n");
        let mut init = RecurrentState::zeros(&cfg, batch);
        init.h = tensor(&f, "h0");
        let mut dfinal = RecurrentState::zeros(&cfg, batch);
        dfinal.h = tensor(&f, "dh_n");
        if extra {
            init.c = tensor(&f, "e0");
        }
        if differentiable {
            dfinal.c = tensor(&f, "de_n");
        }
        let mut cache = TrainCache::default();
        let x = tensor(&f, "x");
        layer
            .forward_train(&x, steps, batch, Some(&lengths), Some(&init), &mut cache)
            .unwrap();
        compare(&format!("{tag} out"), cache.output(), &tensor(&f, "out"));
        let fs = cache.final_state();
        compare(&format!("{tag} h_n"), &fs.h, &tensor(&f, "h_n"));
        if differentiable {
            compare(&format!("{tag} e_n"), &fs.c, &tensor(&f, "e_n"));
        }
        let mut grads = layer.zeros_like();
        let dout = tensor(&f, "dout");
        layer
            .backward(&mut cache, Some(&dout), Some(&dfinal), &mut grads, true)
            .unwrap();
        compare_param_grads(&tag, &f, &grads);
        compare(&format!("{tag} dx"), cache.dinput(), &tensor(&f, "dx"));
        compare(&format!("{tag} dh0"), &cache.dinit().h, &tensor(&f, "dh0"));
        if differentiable {
            compare(&format!("{tag} de0"), &cache.dinit().c, &tensor(&f, "de0"));
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["clockwork", "deep", "delay", "leaky", "tdnn"]);
}
