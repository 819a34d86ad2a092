//! The recursive network as a model: node inputs (an embedding of each node's word, or its
//! reals) -> a [`TreeLayer`] over every tree of the batch -> a head -> an output distribution,
//! read at the root (tree classification, [`TreeOutputs::Root`]) or at every labelled node
//! (node labelling, [`TreeOutputs::Nodes`]). Trained by back-propagation through structure with
//! the same trainer, optimizers and checkpoints as the chain models.

use serde::{Deserialize, Serialize};

use crate::data::{TreeBatch, TreeSet, Values};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::head::{Head, HeadCache};
use crate::layers::output::{LossStats, OutputKind, OutputLayer, Target};
use crate::layers::tree::{
    Children, TreeCache, TreeCell, TreeGradWork, TreeLayer, TreeLayerConfig,
};
use crate::models::{compose_parameters, EvalSet, InputLayer, InputSpec, Model, TrainContext};

/// Where a tree model makes its predictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TreeOutputs {
    /// One output per tree, from the root's state.
    Root,
    /// An output at every node that has a target.
    Nodes,
}

/// The architecture of a [`TreeModel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeConfig {
    /// What a node reads.
    pub input: InputSpec,
    /// The composition function.
    pub cell: TreeCell,
    /// How children are read.
    pub children: Children,
    /// State width.
    pub hidden: usize,
    /// Extra tanh layers before the output map.
    #[serde(default)]
    pub deep_output: usize,
    /// The output distribution.
    pub output: OutputKind,
    /// Root or every node.
    pub outputs: TreeOutputs,
}

/// A recursive network with its head and output distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeModel<T> {
    config: TreeConfig,
    /// Node input layer.
    pub input: InputLayer<T>,
    /// The composition.
    pub tree: TreeLayer<T>,
    /// Map from a state to the output row.
    pub head: Head<T>,
    /// The output distribution.
    pub output: OutputLayer<T>,
}

compose_parameters!(TreeModel {
    input: "input",
    tree: "tree",
    head: "head",
    output: "output"
});

/// Buffers of a [`TreeModel`], reused across calls.
#[derive(Debug, Default)]
pub struct TreeWorkspace<T> {
    x: Vec<T>,
    cache: TreeCache<T>,
    work: TreeGradWork<T>,
    feat: Vec<T>,
    logits: Vec<T>,
    dlogits: Vec<T>,
    dfeat: Vec<T>,
    dh: Vec<T>,
    dx: Vec<T>,
    head: HeadCache<T>,
    target: Option<Values<T>>,
    mask: Vec<bool>,
}

impl<T: Float> TreeWorkspace<T> {
    /// `[rows, O]` output rows of the last call (one per tree, or one per node).
    pub fn logits(&self) -> &[T] {
        &self.logits
    }

    /// `[nodes, H]` every node's state after the last call.
    pub fn states(&self) -> &[T] {
        &self.cache.h
    }
}

impl<T: Float> TreeModel<T> {
    /// A model with each part initialised from `seed`.
    pub fn new(config: TreeConfig, seed: u64) -> Result<Self> {
        let input = InputLayer::new(config.input, seed)?;
        let tree = TreeLayer::new(
            TreeLayerConfig {
                cell: config.cell,
                children: config.children,
                input_size: input.out_width(),
                hidden: config.hidden,
            },
            seed.wrapping_add(1),
        )?;
        let head = Head::new(
            config.hidden,
            config.output.width(),
            config.deep_output,
            seed.wrapping_add(2),
        )?;
        Ok(TreeModel {
            config,
            input,
            tree,
            head,
            output: OutputLayer::new(config.output)?,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &TreeConfig {
        &self.config
    }

    /// Node inputs, states, and the output rows with their targets and mask, for the batch.
    fn forward(&self, batch: &TreeBatch<T>, ws: &mut TreeWorkspace<T>) -> Result<usize> {
        let n = batch.nodes;
        // Checks the inputs and fills `ws.x` (the tree layer reads only the rows of nodes
        // that have an input).
        let _ = self.input.forward(&batch.input, n, &mut ws.x)?;
        self.tree
            .forward(batch, self.input_rows(batch, &ws.x), &mut ws.cache)?;
        let h = self.config.hidden;
        let rows = match self.config.outputs {
            TreeOutputs::Root => {
                let b = batch.trees;
                ws.feat.resize(b * h, T::ZERO);
                let mut target = batch.target.empty_like(b);
                ws.mask.clear();
                for (j, &r) in batch.roots.iter().enumerate() {
                    ws.feat[j * h..(j + 1) * h].copy_from_slice(&ws.cache.h[r * h..(r + 1) * h]);
                    target.copy_row(j, &batch.target, r);
                    ws.mask.push(batch.has_target[r]);
                }
                ws.target = Some(target);
                b
            }
            TreeOutputs::Nodes => {
                ws.mask.clear();
                ws.mask.extend_from_slice(&batch.has_target);
                ws.target = None;
                n
            }
        };
        ws.logits.resize(rows * self.head.out_features(), T::ZERO);
        // Node outputs read every state where it is.
        let feat = match self.config.outputs {
            TreeOutputs::Root => &ws.feat[..],
            TreeOutputs::Nodes => &ws.cache.h[..n * h],
        };
        self.head
            .forward(feat, rows, &mut ws.logits, &mut ws.head)?;
        Ok(rows)
    }

    /// The node input rows of `batch`: its own reals when they pass as they are, else the input
    /// layer's output in `x`.
    fn input_rows<'a>(&self, batch: &'a TreeBatch<T>, x: &'a [T]) -> &'a [T] {
        match (&self.input, &batch.input) {
            (InputLayer::Identity(_), Values::Reals { data, .. }) => data,
            _ => x,
        }
    }

    /// The merged NLL sums and metrics over a whole set (batches of 256 trees).
    pub fn evaluate_set(&self, set: &TreeSet<T>) -> Result<LossStats> {
        EvalSet::evaluate(set, self, &mut TreeWorkspace::default(), 256)
    }

    /// The output rows (`[trees, O]` for root outputs, `[nodes, O]` in the batch's row order
    /// for node outputs) of a batch, in `ws` ([`TreeWorkspace::logits`]); returns the number
    /// of rows.
    pub fn outputs(&self, batch: &TreeBatch<T>, ws: &mut TreeWorkspace<T>) -> Result<usize> {
        self.forward(batch, ws)
    }
}

/// The targets of the rows [`TreeModel::forward`] scored.
fn targets<'a, T>(batch: &'a TreeBatch<T>, own: &'a Option<Values<T>>) -> Target<'a, T> {
    match own.as_ref().unwrap_or(&batch.target) {
        Values::Symbols(s) => Target::Symbols(s),
        Values::Reals { data, .. } => Target::Reals(data),
    }
}

impl<T: Float> Model<T> for TreeModel<T> {
    type Batch = TreeBatch<T>;
    type EvalSet = TreeSet<T>;
    type Workspace = TreeWorkspace<T>;

    fn loss_and_grad(
        &self,
        batch: &TreeBatch<T>,
        ws: &mut Self::Workspace,
        grads: &mut Self,
        _ctx: &mut TrainContext<'_>,
    ) -> Result<LossStats> {
        let rows = self.forward(batch, ws)?;
        let scored = ws.mask.iter().filter(|&&m| m).count();
        if scored == 0 {
            return Err(Error::InvalidData(
                "no node of the batch has a target".into(),
            ));
        }
        ws.dlogits.resize(ws.logits.len(), T::ZERO);
        let target = targets(batch, &ws.target);
        let stats = self.output.nll_grad(
            &ws.logits,
            rows,
            target,
            Some(&ws.mask),
            1.0 / scored as f64,
            (&mut ws.dlogits[..], &mut grads.output),
        )?;
        let (n, h) = (batch.nodes, self.config.hidden);
        ws.dh.clear();
        ws.dh.resize(n * h, T::ZERO);
        match self.config.outputs {
            TreeOutputs::Root => {
                ws.dfeat.resize(rows * h, T::ZERO);
                let (dl, g) = (&ws.dlogits, &mut grads.head);
                self.head
                    .backward(&ws.feat, dl, rows, g, &mut ws.dfeat, &mut ws.head)?;
                for (j, &r) in batch.roots.iter().enumerate() {
                    ws.dh[r * h..(r + 1) * h].copy_from_slice(&ws.dfeat[j * h..(j + 1) * h]);
                }
            }
            // Node outputs: the head's input gradient is the states' gradient.
            TreeOutputs::Nodes => {
                let (dl, g) = (&ws.dlogits, &mut grads.head);
                self.head
                    .backward(&ws.cache.h, dl, rows, g, &mut ws.dh, &mut ws.head)?;
            }
        }
        ws.dx.resize(n * self.input.out_width(), T::ZERO);
        // The input gradient of nodes without input is zero.
        self.tree.backward(
            batch,
            self.input_rows(batch, &ws.x),
            &ws.cache,
            &mut ws.dh,
            (&mut grads.tree, &mut ws.work),
            &mut ws.dx,
        )?;
        if self.input.trainable() {
            self.input
                .backward(&batch.input, n, &ws.dx, &mut grads.input)?;
        }
        Ok(stats)
    }

    fn evaluate(&self, batch: &TreeBatch<T>, ws: &mut Self::Workspace) -> Result<LossStats> {
        let rows = self.forward(batch, ws)?;
        self.output.nll(
            &ws.logits,
            rows,
            targets(batch, &ws.target),
            Some(&ws.mask),
            None,
        )
    }

    fn describe(&self) -> Vec<(String, String)> {
        let c = &self.config;
        vec![
            ("model".into(), "tree".into()),
            ("cell".into(), format!("{:?}", c.cell)),
            ("children".into(), format!("{:?}", c.children)),
            ("hidden".into(), c.hidden.to_string()),
            ("outputs".into(), format!("{:?}", c.outputs)),
        ]
    }
}

/// A tree set is scored in batches of `batch_size` trees, in order, and the sums merged.
impl<T: Float> EvalSet<T, TreeModel<T>> for TreeSet<T> {
    fn evaluate(
        &self,
        model: &TreeModel<T>,
        ws: &mut TreeWorkspace<T>,
        batch_size: usize,
    ) -> Result<LossStats> {
        let idx: Vec<usize> = (0..self.len()).collect();
        let mut total = LossStats::default();
        for chunk in idx.chunks(batch_size.max(1)) {
            total.merge(&model.evaluate(&self.batch(chunk), ws)?);
        }
        Ok(total)
    }
}
