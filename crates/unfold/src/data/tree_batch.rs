//! Trees ready for a recursive network, and the level schedule that batches them.
//!
//! A [`TreeExample`] is a tree's structure (children first, root last) with one input row per
//! node (a symbol id or reals; nodes without a word read nothing) and one optional target per
//! node. A [`TreeSet`] holds examples and cuts them into batches. [`TreeSet::batch`] builds a
//! [`TreeBatch`]: the nodes of all its trees ordered by height (leaves first, then every node
//! whose children are all done), so that each level of the whole batch is one contiguous block
//! of rows and one matrix product, the schedule of dynamic batching (TensorFlow Fold, DyNet's
//! autobatching).

use crate::data::tree::Tree;
use crate::data::{Values, Vocab};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::rng::Rng;

/// One tree with its node inputs and targets.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeExample<T> {
    /// Each node's children (indices of earlier nodes), children first, root last.
    pub children: Vec<Vec<usize>>,
    /// One input row per node: a symbol id, or `width` reals (rows of nodes without input are
    /// ignored).
    pub input: Values<T>,
    /// Which nodes read their input row (a constituency tree's internal nodes read nothing).
    pub has_input: Vec<bool>,
    /// One target row per node (symbol id or reals; rows of unlabelled nodes are ignored).
    pub target: Values<T>,
    /// Which nodes have a target.
    pub has_target: Vec<bool>,
}

impl<T: Float> TreeExample<T> {
    /// Checks the parts agree: children before parents, one parent each, root last, and one
    /// input and target row per node.
    pub fn validate(&self) -> Result<()> {
        let n = self.children.len();
        if n == 0 {
            return Err(Error::InvalidData("a tree needs at least one node".into()));
        }
        let mut parents = vec![0usize; n];
        for (i, ch) in self.children.iter().enumerate() {
            for &c in ch {
                if c >= i {
                    return Err(Error::InvalidData(format!(
                        "node {i} has child {c}: children must come before their parent"
                    )));
                }
                parents[c] += 1;
            }
        }
        if parents[..n - 1].iter().any(|&p| p != 1) || parents[n - 1] != 0 {
            return Err(Error::InvalidData(
                "not one tree: every node but the root (the last) needs exactly one parent".into(),
            ));
        }
        let rows = |v: &Values<T>| match v {
            Values::Symbols(s) => s.len(),
            Values::Reals { width, data } => data.len() / (*width).max(1),
        };
        if rows(&self.input) != n || rows(&self.target) != n {
            return Err(Error::InvalidData(format!(
                "a tree of {n} nodes needs {n} input and target rows (got {} and {})",
                rows(&self.input),
                rows(&self.target)
            )));
        }
        if self.has_input.len() != n || self.has_target.len() != n {
            return Err(Error::InvalidData(
                "input and target flags need one per node".into(),
            ));
        }
        Ok(())
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Height of every node (0 for leaves).
    pub fn heights(&self) -> Vec<usize> {
        let mut h = vec![0usize; self.children.len()];
        for (i, ch) in self.children.iter().enumerate() {
            h[i] = ch.iter().map(|&c| h[c] + 1).max().unwrap_or(0);
        }
        h
    }

    /// Height of the root.
    pub fn depth(&self) -> usize {
        *self.heights().last().expect("a tree has a root")
    }

    /// The largest number of children of a node.
    pub fn max_arity(&self) -> usize {
        self.children.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// A parsed tree with symbol inputs and targets: each node's word through `words` (nodes
    /// without a word read nothing), each node's label through `labels` (an unlabelled node,
    /// or every node when `labels` is `None`, has no target). A label missing from `labels`
    /// is an error.
    pub fn from_tree(tree: &Tree, words: &Vocab, labels: Option<&Vocab>) -> Result<Self> {
        let n = tree.len();
        let mut input = vec![0usize; n];
        let mut has_input = vec![false; n];
        let mut target = vec![0usize; n];
        let mut has_target = vec![false; n];
        for (i, node) in tree.nodes().iter().enumerate() {
            if let Some(w) = &node.word {
                input[i] = words.word_id(w);
                has_input[i] = true;
            }
            if let (Some(l), Some(v)) = (&node.label, labels) {
                let id = v.word_id(l);
                if id < crate::data::vocab::SPECIALS {
                    return Err(Error::InvalidData(format!(
                        "label '{l}' is not a known class"
                    )));
                }
                target[i] = id;
                has_target[i] = true;
            }
        }
        Ok(TreeExample {
            children: tree.nodes().iter().map(|nd| nd.children.clone()).collect(),
            input: Values::Symbols(input),
            has_input,
            target: Values::Symbols(target),
            has_target,
        })
    }
}

/// A list of trees of one kind (symbol or real inputs of one width, targets of one kind).
#[derive(Debug, Clone, PartialEq)]
pub struct TreeSet<T> {
    examples: Vec<TreeExample<T>>,
}

impl<T: Float> TreeSet<T> {
    /// A set of validated examples whose inputs and targets are all of one kind.
    pub fn new(examples: Vec<TreeExample<T>>) -> Result<Self> {
        let Some(first) = examples.first() else {
            return Err(Error::InvalidData(
                "a tree set needs at least one tree".into(),
            ));
        };
        for (k, e) in examples.iter().enumerate() {
            e.validate()
                .map_err(|err| Error::InvalidData(format!("tree {k}: {err}")))?;
            if e.input.width() != first.input.width()
                || e.input.symbols().is_some() != first.input.symbols().is_some()
                || e.target.width() != first.target.width()
                || e.target.symbols().is_some() != first.target.symbols().is_some()
            {
                return Err(Error::InvalidData(format!(
                    "tree {k}: its inputs or targets are of another kind than tree 0's"
                )));
            }
        }
        Ok(TreeSet { examples })
    }

    /// The examples.
    pub fn examples(&self) -> &[TreeExample<T>] {
        &self.examples
    }

    /// Number of trees.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Never empty (checked on construction).
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Total number of nodes.
    pub fn nodes(&self) -> usize {
        self.examples.iter().map(TreeExample::len).sum()
    }

    /// The largest number of children of any node.
    pub fn max_arity(&self) -> usize {
        self.examples
            .iter()
            .map(TreeExample::max_arity)
            .max()
            .unwrap_or(0)
    }

    /// A subset by index.
    pub fn subset(&self, idx: &[usize]) -> Result<Self> {
        TreeSet::new(idx.iter().map(|&i| self.examples[i].clone()).collect())
    }

    /// The groups of one epoch: a shuffle that depends only on `(seed, epoch)`, cut into
    /// batches of `batch_size` trees.
    pub fn epoch_batches(&self, seed: u64, epoch: u64, batch_size: usize) -> Vec<Vec<usize>> {
        let mut rng = Rng::new(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17));
        let mut order: Vec<usize> = (0..self.examples.len()).collect();
        rng.shuffle(&mut order);
        order
            .chunks(batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// The trees `idx` as one level-scheduled batch.
    pub fn batch(&self, idx: &[usize]) -> TreeBatch<T> {
        TreeBatch::new(idx.iter().map(|&i| &self.examples[i]))
    }
}

/// The nodes of several trees in level order: a node's row comes after the rows of all its
/// children, and the nodes of one height (level) are one contiguous block.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeBatch<T> {
    /// Number of trees.
    pub trees: usize,
    /// Number of nodes (rows).
    pub nodes: usize,
    /// Row ranges of the levels: level `l` is rows `level_start[l]..level_start[l + 1]`; level
    /// 0 holds the leaves.
    pub level_start: Vec<usize>,
    /// Children of row `r` are `child_rows[child_start[r]..child_start[r + 1]]`, in order.
    pub child_start: Vec<usize>,
    /// The children's rows.
    pub child_rows: Vec<usize>,
    /// `[nodes]` symbols or `[nodes, width]` reals, in row order.
    pub input: Values<T>,
    /// Which rows read their input.
    pub has_input: Vec<bool>,
    /// `[nodes]` symbol or `[nodes, dim]` real targets, in row order.
    pub target: Values<T>,
    /// Which rows have a target.
    pub has_target: Vec<bool>,
    /// The row of each tree's root, in the order the trees were given.
    pub roots: Vec<usize>,
    /// `node_rows[k][i]`: the row of node `i` of the `k`-th tree given.
    pub node_rows: Vec<Vec<usize>>,
}

impl<T: Float> TreeBatch<T> {
    /// Schedules the given trees (at least one).
    pub fn new<'a>(examples: impl IntoIterator<Item = &'a TreeExample<T>>) -> Self
    where
        T: 'a,
    {
        let ex: Vec<&TreeExample<T>> = examples.into_iter().collect();
        assert!(!ex.is_empty(), "a batch needs a tree");
        let heights: Vec<Vec<usize>> = ex.iter().map(|e| e.heights()).collect();
        let levels = heights
            .iter()
            .map(|h| h.last().unwrap() + 1)
            .max()
            .unwrap_or(1);
        let mut count = vec![0usize; levels + 1];
        for h in &heights {
            for &v in h {
                count[v + 1] += 1;
            }
        }
        for l in 0..levels {
            count[l + 1] += count[l];
        }
        let level_start = count.clone();
        let nodes = level_start[levels];
        // Row of every node: stable counting sort by height (trees in order, nodes in order).
        let mut next = count;
        let rows: Vec<Vec<usize>> = heights
            .iter()
            .map(|h| {
                h.iter()
                    .map(|&v| {
                        next[v] += 1;
                        next[v] - 1
                    })
                    .collect()
            })
            .collect();
        let mut by_row: Vec<(usize, usize)> = vec![(0, 0); nodes];
        for (k, r) in rows.iter().enumerate() {
            for (i, &row) in r.iter().enumerate() {
                by_row[row] = (k, i);
            }
        }
        let mut child_start = Vec::with_capacity(nodes + 1);
        let mut child_rows = Vec::new();
        let mut input = ex[0].input.empty_like(nodes);
        let mut target = ex[0].target.empty_like(nodes);
        let mut has_input = vec![false; nodes];
        let mut has_target = vec![false; nodes];
        child_start.push(0);
        for (row, &(k, i)) in by_row.iter().enumerate() {
            let e = ex[k];
            child_rows.extend(e.children[i].iter().map(|&c| rows[k][c]));
            child_start.push(child_rows.len());
            input.copy_row(row, &e.input, i);
            target.copy_row(row, &e.target, i);
            has_input[row] = e.has_input[i];
            has_target[row] = e.has_target[i];
        }
        let roots = rows.iter().map(|r| *r.last().unwrap()).collect();
        TreeBatch {
            trees: ex.len(),
            nodes,
            level_start,
            child_start,
            child_rows,
            input,
            has_input,
            target,
            has_target,
            roots,
            node_rows: rows,
        }
    }

    /// Number of levels (the height of the deepest tree plus one).
    pub fn levels(&self) -> usize {
        self.level_start.len() - 1
    }

    /// The children rows of row `r`.
    #[inline]
    pub fn children(&self, r: usize) -> &[usize] {
        &self.child_rows[self.child_start[r]..self.child_start[r + 1]]
    }

    /// The largest number of children of a row.
    pub fn max_arity(&self) -> usize {
        self.child_start
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0)
    }

    /// Nodes with a target.
    pub fn targets(&self) -> usize {
        self.has_target.iter().filter(|&&t| t).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tree::{parse_bracketed, Brackets};

    fn set() -> TreeSet<f64> {
        let text =
            "(3 (2 the) (4 (3 good) (2 film)))\n(1 (1 bad))\n(0 (1 a) (2 (3 b) (4 (0 c) (1 d))))";
        let trees = parse_bracketed(text, Brackets::Labelled).unwrap();
        let words = Vocab::words_of(trees.iter().flat_map(|t| t.words())).unwrap();
        let labels = Vocab::words_of(["0", "1", "2", "3", "4"]).unwrap();
        let ex = trees
            .iter()
            .map(|t| TreeExample::from_tree(t, &words, Some(&labels)).unwrap())
            .collect();
        TreeSet::new(ex).unwrap()
    }

    #[test]
    fn levels_put_children_before_parents() {
        let s = set();
        let b = s.batch(&[0, 1, 2]);
        assert_eq!(b.nodes, s.nodes());
        assert_eq!(b.levels(), 4);
        assert_eq!(b.roots.len(), 3);
        let level_of = |r: usize| (0..b.levels()).find(|&l| r < b.level_start[l + 1]).unwrap();
        for r in 0..b.nodes {
            let l = level_of(r);
            if l == 0 {
                assert!(b.children(r).is_empty());
            }
            for &c in b.children(r) {
                assert!(level_of(c) < l, "child {c} of {r}");
            }
            // A node's level is exactly one more than its highest child's.
            if let Some(m) = b.children(r).iter().map(|&c| level_of(c)).max() {
                assert_eq!(m + 1, l);
            }
        }
        // Every row but the roots is somebody's child exactly once.
        let mut parents = vec![0; b.nodes];
        b.child_rows.iter().for_each(|&c| parents[c] += 1);
        for (r, &p) in parents.iter().enumerate() {
            assert_eq!(p, usize::from(!b.roots.contains(&r)));
        }
        // The second tree is a unary chain over one leaf: its root is on level 1.
        assert!(level_of(b.roots[1]) == 1);
        assert_eq!(b.targets(), s.nodes());
        assert_eq!(b.has_input.iter().filter(|&&x| x).count(), 3 + 1 + 4);
    }

    #[test]
    fn epoch_batches_cover_every_tree_once() {
        let s = set();
        let mut all: Vec<usize> = s.epoch_batches(7, 3, 2).concat();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2]);
        assert_eq!(s.epoch_batches(7, 3, 2), s.epoch_batches(7, 3, 2));
    }

    #[test]
    fn rejects_inconsistent_examples() {
        let mut e = set().examples()[0].clone();
        e.has_input.pop();
        assert!(TreeSet::new(vec![e]).is_err());
        let mut e = set().examples()[0].clone();
        e.children[4] = vec![0];
        assert!(TreeSet::new(vec![e]).is_err());
        assert!(TreeSet::<f64>::new(vec![]).is_err());
    }
}
