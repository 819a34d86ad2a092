//! The two-dimensional recurrent network as a model: pixels -> a stack of [`GridLayer`]s
//! (each sweeping from one, two or four corners), or of ReNet layers ([`ReNetLayer`]: rows,
//! then columns, by sequence layers) -> a read-out -> a head -> a softmax, for
//! image classification (the mean of the last layer's feature map, or each sweep's final
//! state) and per-pixel labelling. Trained with the same trainer, optimizers and checkpoints
//! as the chain and tree models.

use serde::{Deserialize, Serialize};

use crate::data::{GridBatch, GridSet};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::grid::{Combine, GridCache, GridCell, GridGradWork, GridLayer, GridLayerConfig};
use crate::layers::head::{Head, HeadCache};
use crate::layers::output::{LossStats, OutputKind, OutputLayer, Target};
use crate::layers::params::{ParamSpec, Parameters};
use crate::layers::renet::{ReNetCache, ReNetConfig, ReNetLayer};
use crate::layers::CellKind;
use crate::models::{joined_specs, EvalSet, Model, TrainContext};

/// What the head reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridReadout {
    /// One output per image from the mean of the last layer's output over all positions.
    Mean,
    /// One output per image from each sweep's state at its final position (the corner
    /// opposite its start), side by side.
    Last,
    /// One output per pixel from the last layer's output there.
    Pixels,
}

/// What each layer of a [`GridModel`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridKind {
    /// 2-D sweeps ([`GridLayer`]).
    #[default]
    Sweeps,
    /// ReNet: a bidirectional pass over the rows, then over the columns ([`ReNetLayer`]).
    #[serde(rename = "renet")]
    ReNet,
}

/// The architecture of a [`GridModel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridConfig {
    /// Values per pixel.
    pub channels: usize,
    /// The cell.
    pub cell: GridCell,
    /// State width of each sweep.
    pub hidden: usize,
    /// Stacked 2-D layers.
    pub layers: usize,
    /// Sweeps per layer (1, 2 or 4).
    pub sweeps: usize,
    /// How a layer's sweeps combine.
    pub combine: Combine,
    /// Extra tanh layers before the output map.
    #[serde(default)]
    pub deep_output: usize,
    /// The output distribution (categorical).
    pub output: OutputKind,
    /// Image or pixel outputs.
    pub readout: GridReadout,
    /// 2-D sweeps or ReNet layers.
    #[serde(default)]
    pub kind: GridKind,
}

impl GridConfig {
    fn layer(&self, l: usize) -> GridLayerConfig {
        let base = GridLayerConfig {
            cell: self.cell,
            input_size: self.channels,
            hidden: self.hidden,
            sweeps: self.sweeps,
            combine: self.combine,
        };
        GridLayerConfig {
            input_size: if l == 0 {
                self.channels
            } else {
                base.out_width()
            },
            ..base
        }
    }

    fn renet(&self, l: usize) -> ReNetConfig {
        ReNetConfig {
            cell: match self.cell {
                GridCell::Rnn => CellKind::RnnTanh,
                GridCell::Lstm => CellKind::Lstm,
            },
            input_size: if l == 0 {
                self.channels
            } else {
                2 * self.hidden
            },
            hidden: self.hidden,
        }
    }

    /// Features of each layer's output at a position.
    pub fn map_width(&self) -> usize {
        match self.kind {
            GridKind::Sweeps => self.layer(0).out_width(),
            GridKind::ReNet => 2 * self.hidden,
        }
    }

    /// Features the head reads.
    pub fn feature_width(&self) -> usize {
        match self.readout {
            GridReadout::Last => self.sweeps * self.hidden,
            _ => self.map_width(),
        }
    }
}

/// One layer of a [`GridModel`].
#[derive(Debug, Clone, PartialEq)]
pub enum GridStage<T> {
    /// 2-D sweeps.
    Sweeps(GridLayer<T>),
    /// Rows, then columns.
    ReNet(Box<ReNetLayer<T>>),
}

impl<T: Float> GridStage<T> {
    fn zeros_like(&self) -> Self {
        match self {
            GridStage::Sweeps(l) => GridStage::Sweeps(l.zeros_like()),
            GridStage::ReNet(l) => GridStage::ReNet(Box::new(l.zeros_like())),
        }
    }

    fn params(&self) -> (Vec<ParamSpec>, Vec<&[T]>) {
        match self {
            GridStage::Sweeps(l) => (l.param_specs(), l.param_slices()),
            GridStage::ReNet(l) => (l.param_specs(), l.param_slices()),
        }
    }

    fn params_mut(&mut self) -> Vec<&mut [T]> {
        match self {
            GridStage::Sweeps(l) => l.param_slices_mut(),
            GridStage::ReNet(l) => l.param_slices_mut(),
        }
    }
}

/// A layer's forward values.
#[derive(Debug)]
pub enum StageCache<T> {
    /// Of 2-D sweeps.
    Sweeps(GridCache<T>),
    /// Of a ReNet layer.
    ReNet(Box<ReNetCache<T>>),
}

impl<T: Float> StageCache<T> {
    /// `[images, height, width, F]` the layer's output.
    pub fn out(&self) -> &[T] {
        match self {
            StageCache::Sweeps(c) => &c.out,
            StageCache::ReNet(c) => &c.out,
        }
    }

    /// The sweeps' cache (`None` for a ReNet layer).
    pub fn sweeps(&self) -> Option<&GridCache<T>> {
        match self {
            StageCache::Sweeps(c) => Some(c),
            StageCache::ReNet(_) => None,
        }
    }
}

/// A 2-D recurrent network with its head and output distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct GridModel<T> {
    config: GridConfig,
    /// The stacked layers.
    pub layers: Vec<GridStage<T>>,
    /// Map from the read-out features to the output row.
    pub head: Head<T>,
    /// The output distribution.
    pub output: OutputLayer<T>,
}

/// Buffers of a [`GridModel`], reused across calls.
#[derive(Debug, Default)]
pub struct GridWorkspace<T> {
    caches: Vec<StageCache<T>>,
    work: GridGradWork<T>,
    feat: Vec<T>,
    logits: Vec<T>,
    dlogits: Vec<T>,
    dfeat: Vec<T>,
    dout: Vec<T>,
    dx: Vec<T>,
    head: HeadCache<T>,
}

impl<T: Float> GridWorkspace<T> {
    /// `[rows, O]` output rows of the last call (one per image, or one per pixel).
    pub fn logits(&self) -> &[T] {
        &self.logits
    }

    /// The caches of the last call, one per layer ([`StageCache::out`] is each layer's
    /// feature map).
    pub fn caches(&self) -> &[StageCache<T>] {
        &self.caches
    }
}

impl<T: Float> GridModel<T> {
    /// A model with each part initialised from `seed`.
    pub fn new(config: GridConfig, seed: u64) -> Result<Self> {
        if config.layers == 0 {
            return Err(Error::InvalidConfig(
                "a 2-D network needs at least one layer".into(),
            ));
        }
        if !config.output.symbolic() {
            return Err(Error::InvalidConfig(
                "a 2-D network predicts classes (a categorical output)".into(),
            ));
        }
        if config.kind == GridKind::ReNet && config.readout == GridReadout::Last {
            return Err(Error::InvalidConfig(
                "a ReNet layer has no final sweep states: read it out by the mean or per pixel"
                    .into(),
            ));
        }
        let layers = (0..config.layers)
            .map(|l| {
                let seed = seed.wrapping_add(1 + l as u64);
                Ok(match config.kind {
                    GridKind::Sweeps => GridStage::Sweeps(GridLayer::new(config.layer(l), seed)?),
                    GridKind::ReNet => {
                        GridStage::ReNet(Box::new(ReNetLayer::new(config.renet(l), seed)?))
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let head = Head::new(
            config.feature_width(),
            config.output.width(),
            config.deep_output,
            seed.wrapping_add(100),
        )?;
        Ok(GridModel {
            config,
            layers,
            head,
            output: OutputLayer::new(config.output)?,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &GridConfig {
        &self.config
    }

    /// Sets every layer's forget-gate biases (2-D LSTM).
    pub fn set_forget_bias(&mut self, value: T) -> Result<()> {
        for l in &mut self.layers {
            match l {
                GridStage::Sweeps(l) => l.set_forget_bias(value),
                GridStage::ReNet(l) => l.set_forget_bias(value)?,
            }
        }
        Ok(())
    }

    /// Runs the layers and the head over `batch`; returns the number of output rows.
    fn forward(&self, batch: &GridBatch<T>, ws: &mut GridWorkspace<T>) -> Result<usize> {
        if batch.channels != self.config.channels {
            return Err(Error::InvalidData(format!(
                "images of {} channels for a model of {}",
                batch.channels, self.config.channels
            )));
        }
        let shape = batch.shape;
        let (b, px) = (shape.images, shape.height * shape.width);
        let rows = match self.config.readout {
            GridReadout::Pixels => b * px,
            _ => b,
        };
        if batch.target.len() != rows
            || (self.config.readout == GridReadout::Pixels) == batch.mask.is_empty()
        {
            return Err(Error::InvalidData(format!(
                "{} targets for a {:?} read-out of {b} images",
                batch.target.len(),
                self.config.readout
            )));
        }
        if ws.caches.len() != self.layers.len() {
            ws.caches = self
                .layers
                .iter()
                .map(|l| match l {
                    GridStage::Sweeps(_) => StageCache::Sweeps(GridCache::default()),
                    GridStage::ReNet(_) => StageCache::ReNet(Box::default()),
                })
                .collect();
        }
        for (l, layer) in self.layers.iter().enumerate() {
            let (done, rest) = ws.caches.split_at_mut(l);
            let x = if l == 0 { &batch.x } else { done[l - 1].out() };
            match (layer, &mut rest[0]) {
                (GridStage::Sweeps(g), StageCache::Sweeps(c)) => g.forward(shape, x, c)?,
                (GridStage::ReNet(g), StageCache::ReNet(c)) => g.forward(shape, x, c)?,
                _ => return Err(Error::InvalidCall("a workspace of another model".into())),
            }
        }
        let last = &ws.caches[self.layers.len() - 1];
        let f = self.config.feature_width();
        match self.config.readout {
            GridReadout::Mean => {
                ws.feat.clear();
                ws.feat.resize(b * f, T::ZERO);
                let scale = T::from_f64(1.0 / px as f64);
                for img in 0..b {
                    let dst = &mut ws.feat[img * f..(img + 1) * f];
                    for p in 0..px {
                        let src = &last.out()[(img * px + p) * f..(img * px + p + 1) * f];
                        dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
                    }
                    dst.iter_mut().for_each(|d| *d *= scale);
                }
            }
            GridReadout::Last => {
                let (h, s) = (self.config.hidden, self.config.sweeps);
                ws.feat.resize(b * f, T::ZERO);
                let Some(last) = last.sweeps() else {
                    return Err(Error::InvalidConfig("ReNet has no final states".into()));
                };
                for k in 0..s {
                    let fin = last.final_states(k);
                    for img in 0..b {
                        ws.feat[img * f + k * h..img * f + (k + 1) * h]
                            .copy_from_slice(&fin[img * h..(img + 1) * h]);
                    }
                }
            }
            GridReadout::Pixels => {}
        }
        let feat = match self.config.readout {
            GridReadout::Pixels => last.out(),
            _ => &ws.feat[..],
        };
        ws.logits.resize(rows * self.head.out_features(), T::ZERO);
        self.head
            .forward(feat, rows, &mut ws.logits, &mut ws.head)?;
        Ok(rows)
    }

    /// The output rows of a batch (`[images, O]`, or `[pixels, O]` for per-pixel outputs) in
    /// `ws` ([`GridWorkspace::logits`]); returns the number of rows.
    pub fn outputs(&self, batch: &GridBatch<T>, ws: &mut GridWorkspace<T>) -> Result<usize> {
        self.forward(batch, ws)
    }

    /// The merged NLL sums and metrics over a whole set (batches of 256 images).
    pub fn evaluate_set(&self, set: &GridSet<T>) -> Result<LossStats> {
        EvalSet::evaluate(set, self, &mut GridWorkspace::default(), 256)
    }
}

fn mask(batch: &GridBatch<impl Float>) -> Option<&[bool]> {
    (!batch.mask.is_empty()).then_some(&batch.mask[..])
}

impl<T: Float> Parameters<T> for GridModel<T> {
    fn param_specs(&self) -> Vec<ParamSpec> {
        let names: Vec<String> = (0..self.layers.len())
            .map(|l| format!("grid.{l}"))
            .collect();
        let mut parts: Vec<(&str, Vec<ParamSpec>)> = names
            .iter()
            .zip(&self.layers)
            .map(|(n, l)| (n.as_str(), l.params().0))
            .collect();
        parts.push(("head", self.head.param_specs()));
        parts.push(("output", self.output.param_specs()));
        joined_specs(&parts)
    }

    fn param_slices(&self) -> Vec<&[T]> {
        let mut v: Vec<&[T]> = self.layers.iter().flat_map(|l| l.params().1).collect();
        v.extend(self.head.param_slices());
        v.extend(self.output.param_slices());
        v
    }

    fn param_slices_mut(&mut self) -> Vec<&mut [T]> {
        let mut v: Vec<&mut [T]> = self
            .layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect();
        v.extend(self.head.param_slices_mut());
        v.extend(self.output.param_slices_mut());
        v
    }
}

impl<T: Float> Model<T> for GridModel<T> {
    type Batch = GridBatch<T>;
    type EvalSet = GridSet<T>;
    type Workspace = GridWorkspace<T>;

    fn zeros_like(&self) -> Self {
        GridModel {
            config: self.config,
            layers: self.layers.iter().map(GridStage::zeros_like).collect(),
            head: self.head.zeros_like(),
            output: self.output.zeros_like(),
        }
    }

    fn loss_and_grad(
        &self,
        batch: &GridBatch<T>,
        ws: &mut Self::Workspace,
        grads: &mut Self,
        _ctx: &mut TrainContext<'_>,
    ) -> Result<LossStats> {
        let rows = self.forward(batch, ws)?;
        let scored = match mask(batch) {
            Some(m) => m.iter().filter(|&&v| v).count(),
            None => rows,
        };
        if scored == 0 {
            return Err(Error::InvalidData(
                "no pixel of the batch has a target".into(),
            ));
        }
        ws.dlogits.resize(ws.logits.len(), T::ZERO);
        let stats = self.output.nll_grad(
            &ws.logits,
            rows,
            Target::Symbols(&batch.target),
            mask(batch),
            1.0 / scored as f64,
            (&mut ws.dlogits[..], &mut grads.output),
        )?;
        let shape = batch.shape;
        let (b, px) = (shape.images, shape.height * shape.width);
        let nl = self.layers.len();
        let fo = self.config.map_width();
        let f = self.config.feature_width();
        // The gradient on the last layer's output (and on its sweeps' final states).
        ws.dout.clear();
        ws.dout.resize(b * px * fo, T::ZERO);
        let mut dfinal = false;
        match self.config.readout {
            GridReadout::Pixels => {
                let last = ws.caches[nl - 1].out();
                self.head.backward(
                    last,
                    &ws.dlogits,
                    rows,
                    &mut grads.head,
                    &mut ws.dout,
                    &mut ws.head,
                )?;
            }
            GridReadout::Mean | GridReadout::Last => {
                ws.dfeat.resize(b * f, T::ZERO);
                self.head.backward(
                    &ws.feat,
                    &ws.dlogits,
                    rows,
                    &mut grads.head,
                    &mut ws.dfeat,
                    &mut ws.head,
                )?;
                if self.config.readout == GridReadout::Mean {
                    let scale = T::from_f64(1.0 / px as f64);
                    for img in 0..b {
                        let src = &ws.dfeat[img * f..(img + 1) * f];
                        for p in 0..px {
                            let dst = &mut ws.dout[(img * px + p) * f..(img * px + p + 1) * f];
                            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s * scale);
                        }
                    }
                } else {
                    dfinal = true;
                }
            }
        }
        for l in (0..nl).rev() {
            let (done, rest) = ws.caches.split_at_mut(l);
            let x = if l == 0 { &batch.x } else { done[l - 1].out() };
            ws.dx.resize(x.len(), T::ZERO);
            let df = (dfinal && l + 1 == nl).then_some(&ws.dfeat[..]);
            match (&self.layers[l], &mut rest[0], &mut grads.layers[l]) {
                (GridStage::Sweeps(g), StageCache::Sweeps(c), GridStage::Sweeps(d)) => {
                    g.backward(x, c, &ws.dout, df, (d, &mut ws.work), &mut ws.dx)?
                }
                (GridStage::ReNet(g), StageCache::ReNet(c), GridStage::ReNet(d)) => {
                    g.backward(c, &ws.dout, d.as_mut(), &mut ws.dx)?
                }
                _ => return Err(Error::InvalidCall("gradients of another model".into())),
            }
            std::mem::swap(&mut ws.dout, &mut ws.dx);
        }
        Ok(stats)
    }

    fn evaluate(&self, batch: &GridBatch<T>, ws: &mut Self::Workspace) -> Result<LossStats> {
        let rows = self.forward(batch, ws)?;
        self.output.nll(
            &ws.logits,
            rows,
            Target::Symbols(&batch.target),
            mask(batch),
            None,
        )
    }

    fn describe(&self) -> Vec<(String, String)> {
        let c = &self.config;
        vec![
            ("model".into(), format!("grid ({:?})", c.kind)),
            ("cell".into(), format!("{:?}", c.cell)),
            ("hidden".into(), c.hidden.to_string()),
            ("layers".into(), c.layers.to_string()),
            ("sweeps".into(), c.sweeps.to_string()),
            ("readout".into(), format!("{:?}", c.readout)),
        ]
    }
}

/// A grid set is scored in batches of at most `batch_size` images (and at most 65536 pixels, so
/// that large images do not hold gigabytes of cached gates), in order, and the sums merged.
impl<T: Float> EvalSet<T, GridModel<T>> for GridSet<T> {
    fn evaluate(
        &self,
        model: &GridModel<T>,
        ws: &mut GridWorkspace<T>,
        batch_size: usize,
    ) -> Result<LossStats> {
        let idx: Vec<usize> = (0..self.len()).collect();
        let cap = (1usize << 16) / (self.height * self.width).max(1);
        let mut total = LossStats::default();
        for chunk in idx.chunks(batch_size.min(cap).max(1)) {
            total.merge(&model.evaluate(&self.batch(chunk), ws)?);
        }
        Ok(total)
    }
}
