//! Recursive networks over trees: finite-difference gradient checks in f64 of every parameter
//! for every composition (TreeRNN and Tree-LSTM, child sum and N-ary), root and node outputs,
//! symbol and real inputs; and the batching invariants: a tree's states do not depend on the
//! other trees of its batch, nor on the order of the batch.

#![allow(clippy::needless_range_loop)] // perturbing element j of parallel buffers

use unfold::data::{TreeBatch, TreeExample, TreeSet, Values};
use unfold::layers::tree::{Children, TreeCell};
use unfold::layers::OutputKind;
use unfold::models::{
    InputSpec, Model, TrainContext, TreeConfig, TreeModel, TreeOutputs, TreeWorkspace,
};
use unfold::rng::Rng;
use unfold::Parameters;

/// A random tree over `leaves` leaves whose nodes have 1 to `arity` children: groups of
/// adjacent subtrees are merged until one is left.
fn random_children(leaves: usize, arity: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    let mut nodes: Vec<Vec<usize>> = vec![Vec::new(); leaves];
    let mut level: Vec<usize> = (0..leaves).collect();
    while level.len() > 1 {
        let take = 1 + rng.below(arity.min(level.len()));
        let at = rng.below(level.len() - take + 1);
        let kids: Vec<usize> = level.drain(at..at + take).collect();
        nodes.push(kids);
        level.insert(at, nodes.len() - 1);
    }
    nodes
}

fn example(
    leaves: usize,
    arity: usize,
    input: InputSpec,
    output: OutputKind,
    rng: &mut Rng,
) -> TreeExample<f64> {
    let children = random_children(leaves, arity, rng);
    let n = children.len();
    // Leaves always read their input; a third of the internal nodes do too (as in dependency
    // trees); four in five nodes have a target.
    let has_input: Vec<bool> = (0..n)
        .map(|i| children[i].is_empty() || rng.below(3) == 0)
        .collect();
    let has_target: Vec<bool> = (0..n).map(|i| i + 1 == n || rng.below(5) != 0).collect();
    let input = match input {
        InputSpec::Symbols { vocab, .. } => {
            Values::Symbols((0..n).map(|_| rng.below(vocab)).collect())
        }
        InputSpec::Reals { width, .. } => Values::Reals {
            width,
            data: (0..n * width)
                .map(|_| rng.uniform_range(-1.0, 1.0))
                .collect(),
        },
    };
    let target = match output {
        OutputKind::Categorical { classes, .. } => {
            Values::Symbols((0..n).map(|_| rng.below(classes)).collect())
        }
        OutputKind::Gaussian { dim, .. } => Values::Reals {
            width: dim,
            data: (0..n * dim).map(|_| rng.uniform_range(-1.0, 1.0)).collect(),
        },
        OutputKind::Bernoulli { dim } => Values::Reals {
            width: dim,
            data: (0..n * dim).map(|_| rng.below(2) as f64).collect(),
        },
    };
    TreeExample {
        children,
        input,
        has_input,
        target,
        has_target,
    }
}

fn set(arity: usize, input: InputSpec, output: OutputKind, seed: u64) -> TreeSet<f64> {
    let mut rng = Rng::new(seed);
    let leaves = [5, 1, 3, 7];
    TreeSet::new(
        leaves
            .iter()
            .map(|&l| example(l, arity, input, output, &mut rng))
            .collect(),
    )
    .unwrap()
}

fn loss_grad(m: &TreeModel<f64>, b: &TreeBatch<f64>, grads: &mut TreeModel<f64>) -> f64 {
    let mut rng = Rng::new(1);
    let mut ctx = TrainContext {
        rng: &mut rng,
        feed_prob: 0.0,
        step: 1,
    };
    let mut ws = TreeWorkspace::default();
    m.loss_and_grad(b, &mut ws, grads, &mut ctx)
        .unwrap()
        .mean_nll()
}

/// Compares every parameter's gradient with central differences.
fn check(tag: &str, model: &TreeModel<f64>, b: &TreeBatch<f64>) {
    let mut grads = model.zeros_like();
    let base = loss_grad(model, b, &mut grads);
    assert!(base.is_finite(), "{tag}: loss {base}");
    let analytic: Vec<Vec<f64>> = grads.param_slices().iter().map(|s| s.to_vec()).collect();
    let mut probe = model.clone();
    let mut scratch = model.zeros_like();
    let eps = 1e-6;
    let mut checked = 0;
    for (pi, spec) in model.param_specs().iter().enumerate() {
        let mut nonzero = 0;
        for j in 0..spec.numel() {
            let orig = probe.param_slices()[pi][j];
            probe.param_slices_mut()[pi][j] = orig + eps;
            let up = loss_grad(&probe, b, &mut scratch);
            probe.param_slices_mut()[pi][j] = orig - eps;
            let down = loss_grad(&probe, b, &mut scratch);
            probe.param_slices_mut()[pi][j] = orig;
            let fd = (up - down) / (2.0 * eps);
            let an = analytic[pi][j];
            let err = (fd - an).abs() / fd.abs().max(an.abs()).max(1e-3);
            assert!(
                err < 1e-5,
                "{tag}: {}[{j}] analytic {an:e} vs finite difference {fd:e}",
                spec.name
            );
            nonzero += usize::from(an.abs() > 1e-9);
            checked += 1;
        }
        // Every tensor takes part (the embedding rows of unused ids aside).
        assert!(nonzero > 0, "{tag}: {} has no gradient", spec.name);
    }
    assert!(checked >= 30, "{tag}: only {checked} parameters");
}

fn config(
    cell: TreeCell,
    children: Children,
    input: InputSpec,
    output: OutputKind,
    outputs: TreeOutputs,
) -> TreeConfig {
    TreeConfig {
        input,
        cell,
        children,
        hidden: 3,
        deep_output: 0,
        output,
        outputs,
    }
}

const CATEGORICAL: OutputKind = OutputKind::Categorical {
    classes: 3,
    pad: None,
};
const SYMBOLS: InputSpec = InputSpec::Symbols { vocab: 5, dim: 2 };
const REALS: InputSpec = InputSpec::Reals {
    width: 2,
    project: None,
};

fn compositions() -> Vec<(TreeCell, Children, usize)> {
    vec![
        (TreeCell::Rnn, Children::Nary { n: 2 }, 2),
        (TreeCell::Rnn, Children::Nary { n: 3 }, 3),
        (TreeCell::Rnn, Children::Sum, 4),
        (TreeCell::Lstm, Children::Sum, 4),
        (TreeCell::Lstm, Children::Nary { n: 2 }, 2),
        (TreeCell::Lstm, Children::Nary { n: 3 }, 3),
    ]
}

#[test]
fn every_composition_matches_finite_differences() {
    for (cell, children, arity) in compositions() {
        for outputs in [TreeOutputs::Root, TreeOutputs::Nodes] {
            for input in [SYMBOLS, REALS] {
                let tag = format!("{cell:?} {children:?} {outputs:?} {input:?}");
                let s = set(arity, input, CATEGORICAL, 11);
                let m =
                    TreeModel::new(config(cell, children, input, CATEGORICAL, outputs), 3).unwrap();
                check(&tag, &m, &s.batch(&[0, 1, 2, 3]));
            }
        }
    }
}

#[test]
fn gaussian_outputs_and_a_deep_head_match_finite_differences() {
    let out = OutputKind::Gaussian {
        dim: 2,
        learn_variance: true,
    };
    let s = set(2, SYMBOLS, out, 4);
    let mut cfg = config(
        TreeCell::Lstm,
        Children::Nary { n: 2 },
        SYMBOLS,
        out,
        TreeOutputs::Nodes,
    );
    cfg.deep_output = 1;
    let m = TreeModel::new(cfg, 8).unwrap();
    check("gaussian deep head", &m, &s.batch(&[3, 1, 0]));
}

/// The root states of a batch equal those of each tree alone, whatever the order.
#[test]
fn batching_does_not_change_any_tree() {
    for (cell, children, arity) in compositions() {
        let s = set(arity, SYMBOLS, CATEGORICAL, 21);
        let cfg = config(cell, children, SYMBOLS, CATEGORICAL, TreeOutputs::Root);
        let m = TreeModel::new(TreeConfig { hidden: 4, ..cfg }, 5).unwrap();
        let mut ws = TreeWorkspace::default();
        let order = [2, 0, 3, 1];
        let rows = m.outputs(&s.batch(&order), &mut ws).unwrap();
        assert_eq!(rows, 4);
        let together = ws.logits().to_vec();
        for (j, &t) in order.iter().enumerate() {
            m.outputs(&s.batch(&[t]), &mut ws).unwrap();
            for (a, b) in ws.logits().iter().zip(&together[j * 3..(j + 1) * 3]) {
                assert!(
                    (a - b).abs() < 1e-12,
                    "{cell:?} {children:?} tree {t}: {a} vs {b}"
                );
            }
        }
    }
}

/// A node's state depends on its own subtree only: changing a leaf's word changes exactly its
/// ancestors.
#[test]
fn a_leaf_reaches_exactly_its_ancestors() {
    let s = set(2, SYMBOLS, CATEGORICAL, 2);
    let cfg = config(
        TreeCell::Lstm,
        Children::Sum,
        SYMBOLS,
        CATEGORICAL,
        TreeOutputs::Nodes,
    );
    let m = TreeModel::new(cfg, 1).unwrap();
    let mut ex = s.examples()[3].clone();
    let b = TreeBatch::new([&ex]);
    let mut ws = TreeWorkspace::default();
    m.outputs(&b, &mut ws).unwrap();
    let before = ws.states().to_vec();
    if let Values::Symbols(ids) = &mut ex.input {
        ids[0] = (ids[0] + 1) % 5;
    }
    m.outputs(&TreeBatch::new([&ex]), &mut ws).unwrap();
    let after = ws.states();
    // Ancestors of node 0 in the example's own numbering.
    let n = ex.children.len();
    let mut anc = vec![false; n];
    anc[0] = true;
    for i in 0..n {
        if ex.children[i].iter().any(|&c| anc[c]) {
            anc[i] = true;
        }
    }
    // Rows of the batch: map example nodes to rows by height order (one tree: stable).
    let heights = ex.heights();
    let mut rows: Vec<usize> = (0..n).collect();
    rows.sort_by_key(|&i| heights[i]);
    let h = 3;
    for (row, &node) in rows.iter().enumerate() {
        let changed = (0..h).any(|j| (before[row * h + j] - after[row * h + j]).abs() > 1e-12);
        assert_eq!(changed, anc[node], "node {node}");
    }
}

#[test]
fn too_many_children_for_an_nary_layer_is_an_error() {
    let s = set(3, SYMBOLS, CATEGORICAL, 11);
    let cfg = config(
        TreeCell::Rnn,
        Children::Nary { n: 2 },
        SYMBOLS,
        CATEGORICAL,
        TreeOutputs::Root,
    );
    let m = TreeModel::<f64>::new(cfg, 1).unwrap();
    let mut ws = TreeWorkspace::default();
    let b = s.batch(&[0, 1, 2, 3]);
    assert!(b.max_arity() > 2);
    let e = m.outputs(&b, &mut ws).unwrap_err().to_string();
    assert!(e.contains("at most 2"), "{e}");
}
