//! Numerical parity with PyTorch for the recursive networks, on the fixtures made by
//! `tools/torch_tree_reference.py`, where each composition (TreeRNN binary and child-sum,
//! child-sum Tree-LSTM, N-ary Tree-LSTM) is written as a recursive Python function over each
//! tree: same weights and trees; every node's state, the loss and every parameter gradient
//! compared in f32 with unfold's level-batched forward and backward.

use serde_json::Value;
use unfold::checkpoint::TensorFile;
use unfold::data::{TreeExample, TreeSet, Values};
use unfold::models::{Model, TrainContext, TreeConfig, TreeModel, TreeWorkspace};
use unfold::rng::Rng;

mod common;

use common::{compare, compare_param_grads, fixture_files, tensor};

fn list<T>(v: &Value, f: impl Fn(&Value) -> T) -> Vec<T> {
    v.as_array().unwrap().iter().map(f).collect()
}

fn examples(json: &str) -> Vec<TreeExample<f32>> {
    let trees: Value = serde_json::from_str(json).unwrap();
    list(&trees, |t| {
        let idx = |v: &Value| v.as_u64().unwrap() as usize;
        TreeExample {
            children: list(&t["children"], |c| list(c, idx)),
            input: Values::Symbols(list(&t["input"], idx)),
            has_input: list(&t["has_input"], |v| v.as_bool().unwrap()),
            target: Values::Symbols(list(&t["target"], idx)),
            has_target: list(&t["has_target"], |v| v.as_bool().unwrap()),
        }
    })
}

#[test]
fn tree_models_match_their_recursive_pytorch_definitions() {
    let paths = fixture_files("trees", 6);
    for path in paths {
        let tag = path.file_stem().unwrap().to_string_lossy().into_owned();
        let f = TensorFile::read(&path).unwrap();
        let cfg: TreeConfig = serde_json::from_str(&f.metadata["config"]).unwrap();
        let mut model = TreeModel::<f32>::new(cfg, 0).unwrap();
        f.load_params("model.", &mut model).unwrap();
        let set = TreeSet::new(examples(&f.metadata["trees"])).unwrap();
        let idx: Vec<usize> = (0..set.len()).collect();
        let batch = set.batch(&idx);
        let mut grads = model.zeros_like();
        let mut ws = TreeWorkspace::default();
        let mut rng = Rng::new(0);
        let mut ctx = TrainContext {
            rng: &mut rng,
            feed_prob: 0.0,
            step: 1,
        };
        let stats = model
            .loss_and_grad(&batch, &mut ws, &mut grads, &mut ctx)
            .unwrap();
        compare(
            &format!("{tag} loss"),
            &[stats.mean_nll() as f32],
            &tensor(&f, "loss"),
        );
        // States in the trees' own order.
        let h = cfg.hidden;
        let states: Vec<f32> = batch
            .node_rows
            .iter()
            .flatten()
            .flat_map(|&r| ws.states()[r * h..(r + 1) * h].to_vec())
            .collect();
        compare(&format!("{tag} h"), &states, &tensor(&f, "h"));
        compare_param_grads(&tag, &f, &grads);
    }
}
