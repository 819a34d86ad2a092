//! The tree benchmark: trees per second of the recursive layer, training (forward with cache
//! and back-propagation through structure, no optimizer) and inference, on fixed batches of
//! deterministic trees that `tools/torch_tree_bench.py` rebuilds exactly, so PyTorch's node-by-
//! node and level-batched versions run on the same trees in the same run.
//!
//! Trees: a batch of `batch` trees, tree `j` over `10 + 7 j mod 21` words (10 to 30, like
//! sentences). Binary trees split `n` leaves at `1 + (7 n + 3 s) mod (n - 1)` (salt `s` of the
//! subtree: the left child's salt is `s + 1`, the right's `s + 2`), words at the leaves only;
//! dependency-like trees give word `i > 0` the head `(5 i + 3) mod i`, every node reads its
//! word. Inputs are `H` reals per word.

use crate::data::{TreeBatch, TreeExample, Values};
use crate::error::{Error, Result};
use crate::layers::tree::{
    Children, TreeCache, TreeCell, TreeGradWork, TreeLayer, TreeLayerConfig,
};
use crate::rng::Rng;

use super::Mode;

/// The shape of the benchmark's trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeShape {
    /// Binary constituency-like trees, words at the leaves.
    Binary,
    /// Dependency-like trees, a word at every node, any number of children.
    Dependency,
}

/// One tree benchmark configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeBenchConfig {
    /// Name, e.g. `treelstm-binary-h128-b32`.
    pub name: &'static str,
    /// Composition.
    pub cell: TreeCell,
    /// How children are read.
    pub children: Children,
    /// Tree shape.
    pub shape: TreeShape,
    /// Hidden size (= input size).
    pub hidden: usize,
    /// Trees per batch.
    pub batch: usize,
}

const fn tcfg(
    name: &'static str,
    cell: TreeCell,
    children: Children,
    shape: TreeShape,
    hidden: usize,
    batch: usize,
) -> TreeBenchConfig {
    TreeBenchConfig {
        name,
        cell,
        children,
        shape,
        hidden,
        batch,
    }
}

/// The tree configurations.
pub const TREE_CONFIGS: [TreeBenchConfig; 5] = [
    tcfg(
        "treelstm-binary-h128-b32",
        TreeCell::Lstm,
        Children::Nary { n: 2 },
        TreeShape::Binary,
        128,
        32,
    ),
    tcfg(
        "treelstm-binary-h128-b1",
        TreeCell::Lstm,
        Children::Nary { n: 2 },
        TreeShape::Binary,
        128,
        1,
    ),
    tcfg(
        "treelstm-sum-h128-b32",
        TreeCell::Lstm,
        Children::Sum,
        TreeShape::Dependency,
        128,
        32,
    ),
    tcfg(
        "treernn-binary-h128-b32",
        TreeCell::Rnn,
        Children::Nary { n: 2 },
        TreeShape::Binary,
        128,
        32,
    ),
    tcfg(
        "treelstm-binary-h256-b64",
        TreeCell::Lstm,
        Children::Nary { n: 2 },
        TreeShape::Binary,
        256,
        64,
    ),
];

/// Words of tree `j`.
pub fn words_of(j: usize) -> usize {
    10 + (7 * j) % 21
}

fn binary(n: usize, salt: usize, nodes: &mut Vec<Vec<usize>>) -> usize {
    if n == 1 {
        nodes.push(Vec::new());
        return nodes.len() - 1;
    }
    let k = 1 + (7 * n + 3 * salt) % (n - 1);
    let l = binary(k, salt + 1, nodes);
    let r = binary(n - k, salt + 2, nodes);
    nodes.push(vec![l, r]);
    nodes.len() - 1
}

/// The children lists (children first, root last) of tree `j` of `shape`.
pub fn children_of(shape: TreeShape, j: usize) -> Vec<Vec<usize>> {
    let n = words_of(j);
    match shape {
        TreeShape::Binary => {
            let mut nodes = Vec::new();
            binary(n, 0, &mut nodes);
            nodes
        }
        TreeShape::Dependency => {
            // Word i's head is (5 i + 3) mod i < i; stored in reverse so children come first.
            let mut kids = vec![Vec::new(); n];
            for i in 1..n {
                kids[(5 * i + 3) % i].push(i);
            }
            (0..n)
                .rev()
                .map(|w| kids[w].iter().rev().map(|&c| n - 1 - c).collect())
                .collect()
        }
    }
}

/// The benchmark batch of a configuration.
pub fn batch_of(c: &TreeBenchConfig) -> TreeBatch<f32> {
    let mut rng = Rng::new(7);
    let ex: Vec<TreeExample<f32>> = (0..c.batch)
        .map(|j| {
            let children = children_of(c.shape, j);
            let n = children.len();
            let has_input: Vec<bool> = children
                .iter()
                .map(|k| c.shape == TreeShape::Dependency || k.is_empty())
                .collect();
            TreeExample {
                input: Values::Reals {
                    width: c.hidden,
                    data: (0..n * c.hidden)
                        .map(|_| rng.uniform_range(-1.0, 1.0) as f32)
                        .collect(),
                },
                has_input,
                target: Values::Symbols(vec![0; n]),
                has_target: vec![false; n],
                children,
            }
        })
        .collect();
    TreeBatch::new(ex.iter())
}

/// One tree measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeBenchResult {
    /// Configuration name.
    pub config: String,
    /// Train or infer.
    pub mode: Mode,
    /// Trees per second.
    pub trees_per_s: f64,
    /// Nodes per second.
    pub nodes_per_s: f64,
    /// Milliseconds per batch.
    pub ms_per_batch: f64,
    /// Threads of the matrix products.
    pub threads: usize,
}

impl TreeBenchResult {
    /// The JSON line `unfold bench --trees --json` prints (`tools/torch_tree_bench.py` prints
    /// the same keys).
    pub fn to_json(&self) -> String {
        format!(
            "{{\"config\": \"{}\", \"mode\": \"{}\", \"trees_per_s\": {:.1}, \"nodes_per_s\": {:.1}, \"ms_per_batch\": {:.3}, \"threads\": {}}}",
            self.config,
            self.mode.name(),
            self.trees_per_s,
            self.nodes_per_s,
            self.ms_per_batch,
            self.threads
        )
    }
}

/// The tree configuration called `name`.
pub fn find_tree(name: &str) -> Result<&'static TreeBenchConfig> {
    TREE_CONFIGS
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| Error::InvalidConfig(format!("no tree benchmark configuration '{name}'")))
}

/// Measures one tree configuration: the layer alone, forward over the whole batch (inference)
/// or forward and backward with a random gradient on every node's state (training).
pub fn run_tree(c: &TreeBenchConfig, mode: Mode, min_secs: f64) -> Result<TreeBenchResult> {
    let cfg = TreeLayerConfig {
        cell: c.cell,
        children: c.children,
        input_size: c.hidden,
        hidden: c.hidden,
    };
    let layer = TreeLayer::<f32>::new(cfg, 42)?;
    let batch = batch_of(c);
    let x: Vec<f32> = match &batch.input {
        Values::Reals { data, .. } => data.clone(),
        Values::Symbols(_) => unreachable!("real inputs"),
    };
    let mut rng = Rng::new(9);
    let dh0: Vec<f32> = (0..batch.nodes * c.hidden)
        .map(|_| rng.uniform_range(-1.0, 1.0) as f32)
        .collect();
    let mut cache = TreeCache::default();
    let mut grads = layer.zeros_like();
    let mut work = TreeGradWork::default();
    let mut dh = dh0.clone();
    let mut dx = vec![0.0f32; x.len()];
    let secs = super::median_time_of(
        || {
            layer.forward(&batch, &x, &mut cache)?;
            if mode == Mode::Train {
                dh.copy_from_slice(&dh0);
                let g = (&mut grads, &mut work);
                layer.backward(&batch, &x, &cache, &mut dh, g, &mut dx)?;
            }
            Ok(())
        },
        5,
        min_secs,
    )?;
    Ok(TreeBenchResult {
        config: c.name.to_string(),
        mode,
        trees_per_s: c.batch as f64 / secs,
        nodes_per_s: batch.nodes as f64 / secs,
        ms_per_batch: secs * 1e3,
        threads: crate::num_threads(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_trees_are_trees_of_the_stated_sizes() {
        for shape in [TreeShape::Binary, TreeShape::Dependency] {
            for j in 0..40 {
                let ch = children_of(shape, j);
                let leaves = ch.iter().filter(|k| k.is_empty()).count();
                match shape {
                    TreeShape::Binary => {
                        assert_eq!(leaves, words_of(j));
                        assert_eq!(ch.len(), 2 * words_of(j) - 1);
                    }
                    TreeShape::Dependency => assert_eq!(ch.len(), words_of(j)),
                }
            }
        }
        for c in &TREE_CONFIGS {
            let b = batch_of(c);
            assert_eq!(b.trees, c.batch);
        }
    }
}
