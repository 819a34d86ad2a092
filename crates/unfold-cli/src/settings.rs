//! Training settings: raw values from a TOML file and from flags (each optional), resolved in
//! one place against the task's defaults. Flags override the file; the resolved settings are
//! written to the run directory (`config.toml`) and into the checkpoint's metadata, so a run
//! can be resumed, sampled and evaluated from its directory alone.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use unfold::builtin::{self, TaskInfo};
use unfold::data::tree_tasks;
use unfold::layers::tree::Children;
use unfold::layers::{ClockSpec, DeepSpec, DelaySpec, LeakSpec, TdnnSpec};
use unfold::models::Readout;
use unfold::train::{Clip, Decay, FeedSchedule, LrSchedule, OptimizerConfig};
use unfold::CellKind;

use crate::BadInput;

/// Settings as given: every field optional (a TOML file, or flags).
#[derive(Debug, Clone, Default, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// Built-in task: reber, adding, copy, parity, period, mackey-glass, sines, and the tree
    /// tasks arith and logic (`unfold tasks`).
    #[arg(long)]
    pub task: Option<String>,
    /// Recurrent cell: rnn (tanh), rnn-relu, lstm, gru, leaky (leaky-integrator tanh units),
    /// clockwork (modules of tanh units at their own periods), delay (tanh units reading
    /// h(t-d) for several delays d), deep (a deep transition h(t-1) -> h(t)), tdnn (a
    /// time-delay layer: a causal dilated convolution over time, no recurrence).
    #[arg(long)]
    pub model: Option<String>,
    /// Clockwork RNN: the modules' periods, e.g. 1,2,4,8 (default 1, 2, 4, ... 128: eight
    /// modules, fewer for fewer than eight units).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub periods: Option<Vec<usize>>,
    /// Delay cell: the delays d of the recurrences from h(t-d), e.g. 1,4 (the default); leave
    /// 1 out to drop the one-step recurrence.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub delays: Option<Vec<usize>>,
    /// Deep transition: tanh layers between h(t-1) and h(t) (default 2).
    #[arg(long)]
    pub depth: Option<usize>,
    /// Deep transition: a shortcut from h(t-1) to the last layer, the DT(S)-RNN (default true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub shortcut: Option<bool>,
    /// Extra tanh layers between the recurrent state and the output map: a deep output (the
    /// DOT-RNN with --model deep). Default 0.
    #[arg(long)]
    pub deep_output: Option<usize>,
    /// Residual connections between stacked recurrent layers (with --layers 2 or more): each
    /// layer above the first adds its input to its output.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub residual: Option<bool>,
    /// Time-delay layer: taps of the causal convolution over time (default 4).
    #[arg(long)]
    pub taps: Option<usize>,
    /// Time-delay layer: steps between taps (default 1).
    #[arg(long)]
    pub dilation: Option<usize>,
    /// Leaky units: leak rate of the slowest unit, in (0, 1] (default 0.02: a time constant of
    /// 50 steps); the units' leaks are spread geometrically from --leak-max down to it.
    #[arg(long)]
    pub leak_min: Option<f64>,
    /// Leaky units: leak rate of the fastest unit, in [--leak-min, 1] (default 1).
    #[arg(long)]
    pub leak_max: Option<f64>,
    /// Leaky units: keep the leak rates fixed instead of learning them.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub leak_fixed: Option<bool>,
    /// Hidden units per layer.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Stacked recurrent layers.
    #[arg(long)]
    pub layers: Option<usize>,
    /// Embedding width for symbol inputs.
    #[arg(long)]
    pub embed: Option<usize>,
    /// Initial LSTM forget-gate bias (0: PyTorch's initialisation).
    #[arg(long)]
    pub forget_bias: Option<f64>,
    /// Dropout between stacked recurrent layers in training (needs --layers 2 or more).
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Training steps (updates).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Sequences per batch.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule: constant or cosine (decays to lr/20 over the run).
    #[arg(long)]
    pub schedule: Option<String>,
    /// Optimizer: sgd, momentum, nesterov, adam, adamw, rmsprop, adagrad.
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Clip gradients to this global norm (0: no clipping).
    #[arg(long)]
    pub clip: Option<f64>,
    /// Recurrent weight initialisation: default, orthogonal[:GAIN], identity[:SCALE] (IRNN,
    /// with --model rnn-relu), radius:R (W_hh scaled to spectral radius R),
    /// echo-state[:R[:DENSITY]].
    #[arg(long)]
    pub init: Option<String>,
    /// Record the long-term dependency probes (gradient norm by lag, Jacobian singular
    /// values, spectra) in metrics.jsonl every this many steps (0: never).
    #[arg(long)]
    pub probe_every: Option<u64>,
    /// Task length setting (see `unfold tasks`; 0: the task's default).
    #[arg(long)]
    pub length: Option<usize>,
    /// Training sequences to generate (default 5000; 20000 for the copy task).
    #[arg(long)]
    pub train_size: Option<usize>,
    /// Held-out sequences to generate.
    #[arg(long)]
    pub valid_size: Option<usize>,
    /// Validate every this many steps.
    #[arg(long)]
    pub eval_every: Option<u64>,
    /// Stop after this many validations without improvement.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Samples drawn when scoring a generative task.
    #[arg(long)]
    pub samples: Option<usize>,
    /// Train a character language model on this text file (90/5/5 train/valid/test split).
    #[arg(long, value_name = "FILE")]
    pub text: Option<String>,
    /// Window of truncated BPTT for --text: steps per update, gradient through all of them.
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// Train a sequence classifier on this sktime/UEA .ts file (with --test).
    #[arg(long, value_name = "TRAIN.ts")]
    pub ts: Option<String>,
    /// The held-out .ts file for --ts.
    #[arg(long, value_name = "TEST.ts")]
    pub test: Option<String>,
    /// Forecast a time series from this CSV file (with --column).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<String>,
    /// CSV columns read as inputs, comma-separated.
    #[arg(long, value_name = "NAME[,NAME...]")]
    pub column: Option<String>,
    /// CSV column forecast one step ahead (default: the first --column).
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Train an encoder-decoder on this TSV file of `source<TAB>target` lines.
    #[arg(long, value_name = "FILE.tsv")]
    pub pairs: Option<String>,
    /// Attention of the encoder-decoder: none, additive or multiplicative.
    #[arg(long)]
    pub attention: Option<String>,
    /// How a sequence classifier summarises the sequence: last (the final state) or mean (the
    /// mean of the outputs over every step).
    #[arg(long, value_name = "last|mean")]
    pub readout: Option<String>,
    /// Read each sequence in both directions (sequence classifiers).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub bidirectional: Option<bool>,
    /// --ts: average every K consecutive steps into one before training (0, the default for
    /// --ts: the smallest K that leaves the longest training series at most 300 steps; 1: keep
    /// every step).
    #[arg(long, value_name = "K")]
    pub downsample: Option<usize>,
    /// Scheduled sampling for the encoder-decoder: the probability of feeding the decoder its
    /// own prediction rises linearly from 0 to this over the first two thirds of the run.
    #[arg(long, value_name = "P")]
    pub scheduled_sampling: Option<f64>,
    /// Trees to learn from: bracketed trees such as `(3 (2 the) (4 (3 good) (2 film)))` or
    /// dependency trees in CoNLL-U (gzip or not); 80/10/10 split into training, validation and
    /// test trees by a seeded shuffle.
    #[arg(long, value_name = "FILE")]
    pub trees: Option<String>,
    /// --trees format: auto (CoNLL-U when lines hold ten tab-separated columns), bracketed,
    /// conllu.
    #[arg(long, value_name = "FORMAT")]
    pub tree_format: Option<String>,
    /// --trees in CoNLL-U: the column that labels each word: upos, xpos or deprel.
    #[arg(long, value_name = "COLUMN")]
    pub tree_label: Option<String>,
    /// Tree models: how a node reads its children: sum (any number, the child-sum
    /// composition), N (up to N children by position, the N-ary composition), or auto (N-ary
    /// for the built-in tasks and bracketed trees of at most 4 children, else sum).
    #[arg(long, value_name = "sum|N|auto")]
    pub children: Option<String>,
    /// Tree models: predict at the root or at every labelled node (auto: every node for
    /// CoNLL-U, the root otherwise).
    #[arg(long, value_name = "root|nodes|auto")]
    pub outputs: Option<String>,
    /// Tree tasks: read each expression as a flat bracketed sequence with a chain model (the
    /// baseline a tree model is compared with) instead of as a tree.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub flat: Option<bool>,
    /// Images to learn from, for a two-dimensional network: a CSV file with one image per row
    /// (height * width * channels values, row-major, then a label; gzip or not), or a
    /// directory with one folder of PNG / PGM / PPM images per class. Split 70/10/20 into
    /// training, validation and test images by a seeded shuffle.
    #[arg(long, value_name = "FILE|DIR")]
    pub grid: Option<String>,
    /// --grid CSV: the size of each image, HxW (grey) or HxWxC (default: square and grey).
    #[arg(long, value_name = "HxW[xC]")]
    pub grid_shape: Option<String>,
    /// 2-D networks: the corners each layer sweeps from: 1 (top-left), 2 (top-left and
    /// bottom-right) or 4 (every corner, the default).
    #[arg(long)]
    pub sweeps: Option<usize>,
    /// 2-D networks: how a layer's sweeps combine: concat (the default) or sum.
    #[arg(long, value_name = "concat|sum")]
    pub combine: Option<String>,
    /// Images: ReNet layers (a bidirectional RNN over the rows, then one over the columns,
    /// Visin et al. 2015) instead of 2-D sweeps.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub renet: Option<bool>,
    /// Seed of everything random in the run (also a global flag).
    #[arg(skip)]
    pub seed: Option<u64>,
}

/// Fully resolved settings of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Built-in task.
    pub task: String,
    /// Recurrent cell.
    pub model: String,
    /// Leaky units: leak rate of the slowest unit.
    #[serde(default = "default_leak_min")]
    pub leak_min: f64,
    /// Leaky units: leak rate of the fastest unit.
    #[serde(default = "default_leak_max")]
    pub leak_max: f64,
    /// Leaky units: leak rates fixed (not learned).
    #[serde(default)]
    pub leak_fixed: bool,
    /// Clockwork RNN: the modules' periods (empty: 1, 2, 4, ... for up to eight modules).
    #[serde(default)]
    pub periods: Vec<usize>,
    /// Delay cell: the delays.
    #[serde(default = "default_delays")]
    pub delays: Vec<usize>,
    /// Deep transition: layers from h(t-1) to h(t).
    #[serde(default = "default_depth")]
    pub depth: usize,
    /// Deep transition: shortcut from h(t-1) to the last layer.
    #[serde(default = "default_shortcut")]
    pub shortcut: bool,
    /// Extra tanh layers before the output map.
    #[serde(default)]
    pub deep_output: usize,
    /// Residual connections between stacked layers.
    #[serde(default)]
    pub residual: bool,
    /// Time-delay layer: taps.
    #[serde(default = "default_taps")]
    pub taps: usize,
    /// Time-delay layer: steps between taps.
    #[serde(default = "default_dilation")]
    pub dilation: usize,
    /// Hidden units per layer.
    pub hidden: usize,
    /// Stacked recurrent layers.
    pub layers: usize,
    /// Embedding width for symbol inputs.
    pub embed: usize,
    /// Initial LSTM forget-gate bias (0: PyTorch's initialisation).
    pub forget_bias: f64,
    /// Dropout between stacked layers.
    #[serde(default)]
    pub dropout: f64,
    /// Training steps.
    pub steps: u64,
    /// Sequences per batch.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning-rate schedule.
    pub schedule: String,
    /// Optimizer name.
    pub optimizer: String,
    /// Gradient clipping norm (0: none).
    pub clip: f64,
    /// Recurrent weight initialisation (`unfold::layers::RecurrentInit::parse`).
    #[serde(default = "default_init")]
    pub init: String,
    /// Probe every this many steps (0: never).
    #[serde(default)]
    pub probe_every: u64,
    /// Task length setting (0: default).
    pub length: usize,
    /// Training sequences.
    pub train_size: usize,
    /// Held-out sequences.
    pub valid_size: usize,
    /// Validation interval in steps.
    pub eval_every: u64,
    /// Early-stopping patience (0: none).
    pub patience: usize,
    /// Samples for generative scoring.
    pub samples: usize,
    /// Seed.
    pub seed: u64,
    /// Text file of a language-model run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Truncated-BPTT window of a text run.
    #[serde(default)]
    pub seq_len: usize,
    /// Training .ts file of a classification run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    /// Test .ts file of a classification run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// CSV file of a forecasting run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<String>,
    /// CSV input columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// CSV target column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// TSV pairs of an encoder-decoder run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<String>,
    /// Attention of an encoder-decoder run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<String>,
    /// Readout of a sequence classifier: last or mean.
    #[serde(default = "default_readout")]
    pub readout: String,
    /// Both directions (sequence classifiers).
    #[serde(default)]
    pub bidirectional: bool,
    /// Downsampling factor of --ts series (0: automatic).
    #[serde(default = "default_downsample")]
    pub downsample: usize,
    /// Final self-feeding probability of scheduled sampling (0: teacher forcing).
    #[serde(default)]
    pub scheduled_sampling: f64,
    /// Tree file of a tree run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trees: Option<String>,
    /// Format of the tree file: auto, bracketed, conllu.
    #[serde(default = "default_auto")]
    pub tree_format: String,
    /// CoNLL-U column that labels the words.
    #[serde(default = "default_tree_label")]
    pub tree_label: String,
    /// How a tree model reads children: auto, sum, or a number.
    #[serde(default = "default_auto")]
    pub children: String,
    /// Tree model outputs: auto, root, nodes.
    #[serde(default = "default_auto")]
    pub outputs: String,
    /// Tree task or images read as a flat sequence by a chain model.
    #[serde(default)]
    pub flat: bool,
    /// Image file or directory of a grid run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<String>,
    /// Image size of a grid CSV (HxW or HxWxC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid_shape: Option<String>,
    /// Corners a 2-D layer sweeps from.
    #[serde(default = "default_sweeps")]
    pub sweeps: usize,
    /// How a 2-D layer's sweeps combine: concat or sum.
    #[serde(default = "default_combine")]
    pub combine: String,
    /// ReNet layers instead of 2-D sweeps.
    #[serde(default)]
    pub renet: bool,
}

impl RawSettings {
    /// Reads a TOML settings file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            BadInput(format!("{}: {}", path.display(), e.to_string().trim_end())).into()
        })
    }

    /// `self` where set, else `other`.
    pub fn or(self, other: RawSettings) -> RawSettings {
        macro_rules! pick {
            ($($f:ident),*) => { RawSettings { $($f: self.$f.or(other.$f)),* } };
        }
        pick!(
            task,
            model,
            leak_min,
            leak_max,
            leak_fixed,
            periods,
            delays,
            depth,
            shortcut,
            deep_output,
            residual,
            taps,
            dilation,
            hidden,
            layers,
            embed,
            forget_bias,
            dropout,
            steps,
            batch,
            lr,
            schedule,
            optimizer,
            clip,
            init,
            probe_every,
            length,
            train_size,
            valid_size,
            eval_every,
            patience,
            samples,
            text,
            seq_len,
            ts,
            test,
            csv,
            column,
            target,
            pairs,
            attention,
            readout,
            bidirectional,
            downsample,
            scheduled_sampling,
            trees,
            tree_format,
            tree_label,
            children,
            outputs,
            flat,
            grid,
            grid_shape,
            sweeps,
            combine,
            renet,
            seed
        )
    }

    /// Fills what is missing from the task's defaults and checks every value.
    pub fn resolve(self) -> Result<Settings> {
        let sources = [
            self.text.is_some(),
            self.ts.is_some(),
            self.csv.is_some(),
            self.pairs.is_some(),
            self.trees.is_some(),
            self.grid.is_some(),
        ];
        if sources.iter().filter(|&&b| b).count() > 1 {
            bail!(BadInput(
                "give at most one of --text, --ts, --csv, --pairs, --trees and --grid".into()
            ));
        }
        if self.pairs.is_none() && (self.attention.is_some() || self.scheduled_sampling.is_some()) {
            bail!(BadInput(
                "--attention and --scheduled-sampling apply to --pairs".into()
            ));
        }
        let user = if self.grid.is_some() {
            Some("grid")
        } else if self.trees.is_some() {
            Some("trees")
        } else if self.pairs.is_some() {
            Some("pairs")
        } else if self.text.is_some() {
            Some("text")
        } else if self.ts.is_some() {
            Some("ts")
        } else if self.csv.is_some() {
            Some("csv")
        } else {
            None
        };
        if let (Some(u), Some(t)) = (user, &self.task) {
            if t != u {
                bail!(BadInput(format!(
                    "--task {t} cannot be combined with --{u} (a data file is its own task)"
                )));
            }
        }
        if self.ts.is_some() != self.test.is_some() {
            bail!(BadInput(
                "--ts and --test go together: a training and a test .ts file".into()
            ));
        }
        if self.csv.is_some() && self.column.is_none() {
            bail!(BadInput("--csv needs --column NAME[,NAME...]".into()));
        }
        if self.csv.is_none() && (self.column.is_some() || self.target.is_some()) {
            bail!(BadInput("--column and --target apply to --csv".into()));
        }
        // Defaults: a built-in task's, or those of the kind of user data.
        let (task, cell, hidden, steps, lr, batch, forget_bias, train_size) = match user {
            // lr 1e-2, not 2e-3: 0.35 bits per character lower on Shakespeare at 2000 updates,
            // three seeds (docs/defaults.md).
            Some("text") => (
                "text".to_string(),
                CellKind::Lstm,
                128,
                2000,
                1e-2,
                32,
                0.0,
                5000,
            ),
            Some("ts") => (
                "ts".to_string(),
                CellKind::Gru,
                64,
                1500,
                5e-3,
                32,
                1.0,
                5000,
            ),
            Some("pairs") => (
                "pairs".to_string(),
                CellKind::Gru,
                128,
                3000,
                3e-3,
                64,
                1.0,
                5000,
            ),
            Some("trees") => (
                "trees".to_string(),
                CellKind::Lstm,
                64,
                2000,
                5e-3,
                32,
                1.0,
                5000,
            ),
            Some("grid") => (
                "grid".to_string(),
                CellKind::Lstm,
                64,
                3000,
                5e-3,
                32,
                1.0,
                5000,
            ),
            // lr 2e-3, not 5e-3: 12% lower held-out NRMSE on average over four shared series
            // and three seeds (docs/defaults.md).
            Some(_) => (
                "csv".to_string(),
                CellKind::Gru,
                32,
                2000,
                2e-3,
                32,
                1.0,
                5000,
            ),
            None => {
                let task = self
                    .task
                    .unwrap_or_else(|| builtin::TASKS[0].name.to_string());
                if let Some(t) = unfold::data::grid::find_task(&task) {
                    (
                        task,
                        CellKind::Lstm,
                        t.hidden,
                        t.steps,
                        t.lr,
                        t.batch,
                        1.0,
                        t.train_size,
                    )
                } else if let Some(t) = tree_tasks::find(&task) {
                    (
                        task,
                        CellKind::Lstm,
                        t.hidden,
                        t.steps,
                        t.lr,
                        t.batch,
                        1.0,
                        t.train_size,
                    )
                } else {
                    let info: &TaskInfo =
                        builtin::find(&task).map_err(|e| BadInput(e.to_string()))?;
                    (
                        task,
                        info.cell,
                        info.hidden,
                        info.steps,
                        info.lr,
                        info.batch,
                        info.forget_bias,
                        info.train_size,
                    )
                }
            }
        };
        let steps = self.steps.unwrap_or(steps);
        // A series classifier reads both ways and pools over every step, on series of at most
        // AUTO_MAX_STEPS steps (docs/defaults.md has the measurements behind these).
        let ts = user == Some("ts");
        let grid = user == Some("grid") || unfold::data::grid::find_task(&task).is_some();
        let layers = unfold::data::grid::find_task(&task).map_or(1, |t| t.layers);
        let mut s = Settings {
            task,
            model: self.model.unwrap_or_else(|| cell.name().to_string()),
            leak_min: self.leak_min.unwrap_or_else(default_leak_min),
            leak_max: self.leak_max.unwrap_or_else(default_leak_max),
            leak_fixed: self.leak_fixed.unwrap_or(false),
            periods: self.periods.unwrap_or_default(),
            delays: self.delays.unwrap_or_else(default_delays),
            depth: self.depth.unwrap_or_else(default_depth),
            shortcut: self.shortcut.unwrap_or_else(default_shortcut),
            deep_output: self.deep_output.unwrap_or(0),
            residual: self.residual.unwrap_or(false),
            taps: self.taps.unwrap_or_else(default_taps),
            dilation: self.dilation.unwrap_or_else(default_dilation),
            hidden: self.hidden.unwrap_or(hidden),
            layers: self.layers.unwrap_or(layers),
            embed: self.embed.unwrap_or(16),
            forget_bias: self.forget_bias.unwrap_or(forget_bias),
            dropout: self.dropout.unwrap_or(0.0),
            steps,
            batch: self.batch.unwrap_or(batch),
            lr: self.lr.unwrap_or(lr),
            schedule: self.schedule.unwrap_or_else(|| "cosine".into()),
            optimizer: self.optimizer.unwrap_or_else(|| "adam".into()),
            clip: self.clip.unwrap_or(1.0),
            init: self.init.unwrap_or_else(default_init),
            probe_every: self.probe_every.unwrap_or(0),
            length: self.length.unwrap_or(0),
            train_size: self.train_size.unwrap_or(train_size),
            valid_size: self.valid_size.unwrap_or(500),
            eval_every: self.eval_every.unwrap_or((steps / 20).max(1)),
            patience: self.patience.unwrap_or(0),
            samples: self.samples.unwrap_or(1000),
            seed: self.seed.unwrap_or(0),
            text: self.text,
            seq_len: self.seq_len.unwrap_or(100),
            ts: self.ts,
            test: self.test,
            csv: self.csv,
            column: self.column,
            target: self.target,
            attention: self
                .pairs
                .as_ref()
                .map(|_| self.attention.unwrap_or_else(|| "additive".into())),
            scheduled_sampling: self.scheduled_sampling.unwrap_or(0.0),
            readout: self.readout.unwrap_or_else(|| {
                if ts || (grid && !self.flat.unwrap_or(false)) {
                    "mean".into()
                } else {
                    default_readout()
                }
            }),
            bidirectional: self.bidirectional.unwrap_or(ts),
            downsample: self
                .downsample
                .unwrap_or(if ts { 0 } else { default_downsample() }),
            pairs: self.pairs,
            trees: self.trees,
            tree_format: self.tree_format.unwrap_or_else(default_auto),
            tree_label: self.tree_label.unwrap_or_else(default_tree_label),
            children: self.children.unwrap_or_else(default_auto),
            outputs: self.outputs.unwrap_or_else(default_auto),
            flat: self.flat.unwrap_or(false),
            grid: self.grid,
            grid_shape: self.grid_shape,
            sweeps: self.sweeps.unwrap_or_else(default_sweeps),
            combine: self.combine.unwrap_or_else(default_combine),
            renet: self.renet.unwrap_or(false),
        };
        s.check()?;
        // The clockwork periods in use, so that config.toml shows them.
        if let CellKind::Clockwork(spec) = s.cell() {
            s.periods = spec.periods.values();
        }
        Ok(s)
    }
}

fn default_readout() -> String {
    "last".into()
}

fn default_sweeps() -> usize {
    4
}

fn default_combine() -> String {
    "concat".into()
}

fn default_auto() -> String {
    "auto".into()
}

fn default_tree_label() -> String {
    "upos".into()
}

fn default_downsample() -> usize {
    1
}

impl Settings {
    /// The classifier readout the settings name.
    pub fn readout(&self) -> Readout {
        match self.readout.as_str() {
            "mean" => Readout::Mean,
            _ => Readout::Last,
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| -> Result<()> { Err(BadInput(m).into()) };
        if !matches!(self.readout.as_str(), "last" | "mean") {
            return bad(format!("--readout: '{}' (last or mean)", self.readout));
        }
        if let Err(e) = CellKind::parse(&self.model) {
            return bad(format!("--model: {e}"));
        }
        if let Err(e) = self.try_cell() {
            return bad(e);
        }
        if let Err(e) = unfold::RecurrentConfig::new(self.cell(), 1, self.hidden.max(1)).validate()
        {
            return bad(format!("--model {}: {e}", self.model));
        }
        if let Err(e) = OptimizerConfig::parse(&self.optimizer) {
            return bad(format!("--optimizer: {e}"));
        }
        for (name, v) in [
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("embed", self.embed),
            ("batch", self.batch),
            ("train-size", self.train_size),
            ("valid-size", self.valid_size),
        ] {
            if v == 0 {
                return bad(format!("--{name} must be at least 1"));
            }
        }
        if self.steps == 0 {
            return bad("--steps must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("--lr must be a positive number (got {})", self.lr));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!(
                "--dropout must be in [0, 1) (got {})",
                self.dropout
            ));
        }
        if !(0.0..=1.0).contains(&self.scheduled_sampling) {
            return bad(format!(
                "--scheduled-sampling must be a probability (got {})",
                self.scheduled_sampling
            ));
        }
        if !self.forget_bias.is_finite() {
            return bad("--forget-bias must be a finite number".into());
        }
        if let Err(e) = unfold::layers::RecurrentInit::parse(&self.init) {
            return bad(format!("--init: {e}"));
        }
        if !(self.clip >= 0.0 && self.clip.is_finite()) {
            return bad(format!("--clip must be >= 0 (got {})", self.clip));
        }
        if !matches!(self.schedule.as_str(), "constant" | "cosine") {
            return bad(format!(
                "--schedule: expected constant or cosine, got '{}'",
                self.schedule
            ));
        }
        if self.eval_every == 0 {
            return bad("--eval-every must be at least 1".into());
        }
        if let Some(a) = &self.attention {
            if !matches!(a.as_str(), "none" | "additive" | "multiplicative") {
                return bad(format!(
                    "--attention: expected none, additive or multiplicative, got '{a}'"
                ));
            }
        }
        if self.seq_len == 0 {
            return bad("--seq-len must be at least 1".into());
        }
        if self.residual && self.layers < 2 {
            return bad("--residual connects stacked layers: it needs --layers 2 or more".into());
        }
        if !matches!(self.tree_format.as_str(), "auto" | "bracketed" | "conllu") {
            return bad(format!(
                "--tree-format: '{}' (auto, bracketed or conllu)",
                self.tree_format
            ));
        }
        if !matches!(self.tree_label.as_str(), "upos" | "xpos" | "deprel") {
            return bad(format!(
                "--tree-label: '{}' (upos, xpos or deprel)",
                self.tree_label
            ));
        }
        if !matches!(self.outputs.as_str(), "auto" | "root" | "nodes") {
            return bad(format!(
                "--outputs: '{}' (root, nodes or auto)",
                self.outputs
            ));
        }
        if let Err(e) = self.tree_children(usize::MAX, false) {
            return bad(e);
        }
        let tree_data = self.trees.is_some() || tree_tasks::find(&self.task).is_some();
        if let Err(e) = self.check_grid() {
            return bad(e);
        }
        if self.flat && tree_tasks::find(&self.task).is_none() && self.grid.is_none() {
            return bad(
                "--flat applies to the built-in tree tasks (arith, logic) and to --grid images"
                    .into(),
            );
        }
        if self.tree_run() && !matches!(self.cell(), CellKind::Lstm | CellKind::RnnTanh) {
            return bad(format!(
                "--model {}: a tree model composes with rnn (TreeRNN) or lstm (Tree-LSTM); \
                 --flat reads a tree task as a sequence with any cell",
                self.model
            ));
        }
        if self.tree_run() && (self.layers > 1 || self.bidirectional || self.residual) {
            return bad(
                "--layers, --bidirectional and --residual apply to chain models, not to a tree \
                 model"
                    .into(),
            );
        }
        if !tree_data
            && (self.children != "auto" || self.outputs != "auto" || self.tree_format != "auto")
        {
            return bad("--children, --outputs and --tree-format apply to tree runs".into());
        }
        if self.deep_output > 16 {
            return bad(format!(
                "--deep-output {}: at most 16 extra output layers",
                self.deep_output
            ));
        }
        Ok(())
    }

    /// True for a run of a tree model (tree data, not read flat).
    pub fn tree_run(&self) -> bool {
        (self.trees.is_some() || tree_tasks::find(&self.task).is_some()) && !self.flat
    }

    /// How a tree model reads children, given the largest number of children in the data
    /// (`auto`: N-ary up to 4 children for the built-in tasks and bracketed trees, else sum).
    pub fn tree_children(
        &self,
        max_arity: usize,
        dependency: bool,
    ) -> std::result::Result<Children, String> {
        match self.children.as_str() {
            "sum" => Ok(Children::Sum),
            "auto" => Ok(if (1..=4).contains(&max_arity) && !dependency {
                Children::Nary { n: max_arity }
            } else {
                Children::Sum
            }),
            v => match v.parse::<usize>() {
                Ok(n) if (1..=64).contains(&n) => Ok(Children::Nary { n }),
                _ => Err(format!(
                    "--children: '{v}' (sum, auto, or a number of children 1 to 64)"
                )),
            },
        }
    }

    /// The `children` setting that names `c` (what [`Settings::tree_children`] parses).
    pub fn children_setting(c: Children) -> String {
        match c {
            Children::Sum => "sum".into(),
            Children::Nary { n } => n.to_string(),
        }
    }

    /// The recurrent cell with its settings (leaks, periods, delays, depth).
    pub fn cell(&self) -> CellKind {
        self.try_cell().expect("checked when resolved")
    }

    /// [`Settings::cell`], or what is wrong with the cell's settings.
    fn try_cell(&self) -> std::result::Result<CellKind, String> {
        let kind = CellKind::parse(&self.model).map_err(|e| format!("--model: {e}"))?;
        Ok(match kind {
            CellKind::Leaky(_) => {
                let spec = LeakSpec {
                    min: self.leak_min,
                    max: self.leak_max,
                    learn: !self.leak_fixed,
                };
                spec.validate()
                    .map_err(|e| format!("--leak-min / --leak-max: {e}"))?;
                CellKind::Leaky(spec)
            }
            CellKind::Clockwork(_) => CellKind::Clockwork(if self.periods.is_empty() {
                ClockSpec::default_for(self.hidden)
            } else {
                ClockSpec::new(&self.periods).map_err(|e| format!("--periods: {e}"))?
            }),
            CellKind::Delay(_) => {
                CellKind::Delay(DelaySpec::new(&self.delays).map_err(|e| format!("--delays: {e}"))?)
            }
            CellKind::DeepTransition(_) => {
                let spec = DeepSpec {
                    depth: self.depth,
                    shortcut: self.shortcut,
                };
                spec.validate().map_err(|e| format!("--depth: {e}"))?;
                CellKind::DeepTransition(spec)
            }
            CellKind::Tdnn(_) => {
                let spec = TdnnSpec {
                    taps: self.taps,
                    dilation: self.dilation,
                };
                spec.validate()
                    .map_err(|e| format!("--taps / --dilation: {e}"))?;
                CellKind::Tdnn(spec)
            }
            kind => kind,
        })
    }

    /// The optimizer.
    pub fn optimizer(&self) -> OptimizerConfig {
        OptimizerConfig::parse(&self.optimizer).expect("checked when resolved")
    }

    /// The learning-rate schedule.
    pub fn lr_schedule(&self) -> LrSchedule {
        let decay = match self.schedule.as_str() {
            "cosine" => Decay::Cosine {
                period: self.steps,
                min_lr: self.lr / 20.0,
            },
            _ => Decay::Constant,
        };
        LrSchedule {
            decay,
            ..LrSchedule::constant(self.lr)
        }
    }

    /// The self-feeding schedule (encoder-decoder runs).
    pub fn feed(&self) -> FeedSchedule {
        if self.scheduled_sampling > 0.0 {
            FeedSchedule::Linear {
                steps: (self.steps * 2 / 3).max(1),
                min_truth: 1.0 - self.scheduled_sampling,
            }
        } else {
            FeedSchedule::TeacherForcing
        }
    }

    /// Gradient clipping.
    pub fn clip(&self) -> Clip {
        if self.clip > 0.0 {
            Clip::Norm(self.clip)
        } else {
            Clip::None
        }
    }

    /// As TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("settings serialise")
    }

    /// Parses [`Settings::to_toml`]'s text (from a run directory or checkpoint).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let s: Settings = toml::from_str(text)
            .map_err(|e| BadInput(format!("{origin}: {}", e.to_string().trim_end())))?;
        s.check().with_context(|| origin.to_string())?;
        Ok(s)
    }
}

/// A fresh run directory: `base` itself when it does not exist yet, else `base-2`, `base-3`...
pub fn fresh_dir(base: &Path) -> PathBuf {
    if !base.exists() {
        return base.to_path_buf();
    }
    (2..)
        .map(|i| PathBuf::from(format!("{}-{i}", base.display())))
        .find(|p| !p.exists())
        .expect("some suffix is free")
}

/// Refuses a run directory that would be ambiguous.
pub fn check_out(dir: &Path) -> Result<()> {
    if dir.is_file() {
        bail!(BadInput(format!(
            "--out {}: is a file, not a directory",
            dir.display()
        )));
    }
    Ok(())
}

fn default_init() -> String {
    "default".into()
}

fn default_delays() -> Vec<usize> {
    DelaySpec::default_delays().delays.values()
}

fn default_depth() -> usize {
    DeepSpec::default().depth
}

fn default_shortcut() -> bool {
    DeepSpec::default().shortcut
}

fn default_taps() -> usize {
    TdnnSpec::default().taps
}

fn default_dilation() -> usize {
    TdnnSpec::default().dilation
}

fn default_leak_min() -> f64 {
    LeakSpec::default().min
}

fn default_leak_max() -> f64 {
    LeakSpec::default().max
}
