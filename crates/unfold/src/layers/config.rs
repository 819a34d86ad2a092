//! Configuration of a recurrent layer: which cell, its sizes, depth and directions. The cell
//! kinds are the registry of [`crate::layers::cells`]: each names one [`crate::layers::Cell`].

use crate::error::{Error, Result};
pub use crate::layers::cell_specs::{
    ClockSpec, DeepSpec, DelaySpec, LeakSpec, SmallList, TdnnSpec,
};

/// The recurrent cell of a layer. The four PyTorch cells also have fused engines; any other
/// cell runs on the generic time loop (`layers/unrolled.rs`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum CellKind {
    /// Elman RNN with tanh: `h = tanh(W_ih x + b_ih + W_hh h + b_hh)` (PyTorch `nn.RNN`).
    RnnTanh,
    /// Elman RNN with ReLU (PyTorch `nn.RNN(nonlinearity="relu")`).
    RnnRelu,
    /// Long short-term memory, gates i, f, g, o (PyTorch `nn.LSTM`).
    Lstm,
    /// Gated recurrent unit, gates r, z, n (PyTorch `nn.GRU`).
    Gru,
    /// Leaky-integrator tanh units, `h = (1 - a) h + a tanh(W x + U h + b)`, one leak rate per
    /// unit ([`crate::layers::cells::leaky`]).
    Leaky(LeakSpec),
    /// Clockwork RNN: tanh units in modules with periods, a module updated only at multiples
    /// of its period ([`crate::layers::cells::clockwork`]).
    Clockwork(ClockSpec),
    /// Tanh RNN with recurrences from `h(t - d)` for several delays `d`
    /// ([`crate::layers::cells::delay`]).
    Delay(DelaySpec),
    /// Deep transition: an MLP from `h(t-1)` to `h(t)`, optionally with a shortcut
    /// ([`crate::layers::cells::deep_transition`]).
    DeepTransition(DeepSpec),
    /// Time-delay layer: a causal dilated 1-D convolution over time, no recurrence
    /// ([`crate::layers::cells::tdnn`]).
    Tdnn(TdnnSpec),
}

/// The cells the fused engines run (`direction.rs`, `fused.rs`, `stream.rs` match on these, so
/// adding a cell without an engine touches none of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EngineCell {
    /// Elman, tanh.
    RnnTanh,
    /// Elman, ReLU.
    RnnRelu,
    /// LSTM.
    Lstm,
    /// GRU.
    Gru,
}

impl CellKind {
    /// Number of gate blocks of size H stacked in the weight matrices.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
            _ => 1,
        }
    }

    /// State values per sequence beyond h, per layer and direction, for `hidden` units: the
    /// LSTM's cell state, a delay cell's older states, a clockwork cell's phase.
    pub fn extra_state_size(self, hidden: usize) -> usize {
        match self {
            CellKind::Lstm => hidden,
            CellKind::Delay(d) => (d.delays.max() - 1) * hidden,
            CellKind::Clockwork(c) => c.periods.len(),
            CellKind::Tdnn(t) => t.delay_line() * hidden,
            _ => 0,
        }
    }

    /// Whether the cell has a second state (the LSTM cell state c).
    pub fn has_cell_state(self) -> bool {
        self == CellKind::Lstm
    }

    /// Whether the cell is one of PyTorch's four, which have fused engines; the others run on
    /// the generic time loop.
    pub fn has_engine(self) -> bool {
        self.engine_cell().is_some()
    }

    /// The engine cell of PyTorch's four; `None` for a cell that runs on the generic loop only
    /// (a new cell needs no arm here).
    pub(crate) fn engine_cell(self) -> Option<EngineCell> {
        match self {
            CellKind::RnnTanh => Some(EngineCell::RnnTanh),
            CellKind::RnnRelu => Some(EngineCell::RnnRelu),
            CellKind::Lstm => Some(EngineCell::Lstm),
            CellKind::Gru => Some(EngineCell::Gru),
            _ => None,
        }
    }

    /// Short name: `rnn_tanh`, `rnn_relu`, `lstm`, `gru`.
    pub fn name(self) -> &'static str {
        match self {
            CellKind::RnnTanh => "rnn_tanh",
            CellKind::RnnRelu => "rnn_relu",
            CellKind::Lstm => "lstm",
            CellKind::Gru => "gru",
            CellKind::Leaky(_) => "leaky",
            CellKind::Clockwork(_) => "clockwork",
            CellKind::Delay(_) => "delay",
            CellKind::DeepTransition(_) => "deep",
            CellKind::Tdnn(_) => "tdnn",
        }
    }

    /// Parses [`CellKind::name`] (also accepts `rnn` for `rnn_tanh`, and hyphens for the
    /// underscores).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "rnn" | "rnn_tanh" | "rnn-tanh" | "tanh" => Ok(CellKind::RnnTanh),
            "rnn_relu" | "rnn-relu" | "relu" => Ok(CellKind::RnnRelu),
            "lstm" => Ok(CellKind::Lstm),
            "gru" => Ok(CellKind::Gru),
            "leaky" => Ok(CellKind::Leaky(LeakSpec::default())),
            "clockwork" | "cwrnn" => Ok(CellKind::Clockwork(ClockSpec::default_for(8))),
            "delay" => Ok(CellKind::Delay(DelaySpec::default_delays())),
            "deep" | "dt" => Ok(CellKind::DeepTransition(DeepSpec::default())),
            "tdnn" => Ok(CellKind::Tdnn(TdnnSpec::default())),
            other => Err(Error::InvalidConfig(format!(
                "unknown cell kind {other:?} (expected rnn_tanh, rnn_relu, lstm, gru, leaky, \
                 clockwork, delay, deep or tdnn)"
            ))),
        }
    }

    /// Floats kept per token, per layer and direction, by a training forward for backward:
    /// the gate buffer (reused for the gate gradients), the output h, and c (LSTM) or h_n (GRU);
    /// on the generic loop, the projection, the state row and the output.
    pub fn floats_per_token(self, hidden: usize) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 2 * hidden,
            CellKind::Lstm => 6 * hidden,
            CellKind::Gru => 5 * hidden,
            CellKind::Leaky(_) => 3 * hidden,
            CellKind::Clockwork(c) => 3 * hidden + c.periods.len(),
            CellKind::Delay(d) => (1 + d.delays.max()) * hidden + hidden,
            CellKind::DeepTransition(d) => (d.depth + 2) * hidden,
            CellKind::Tdnn(t) => (2 + t.taps + t.delay_line()) * hidden,
        }
    }
}

/// The shape of a (possibly stacked, possibly bidirectional) recurrent layer.
///
/// Mirrors the constructor of PyTorch's `nn.RNN` / `nn.LSTM` / `nn.GRU` (always
/// `batch_first=False`: sequences are time-major `[T, B, F]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentConfig {
    /// The cell. No default.
    pub kind: CellKind,
    /// Features of the input x(t). No default.
    pub input_size: usize,
    /// Size H of the hidden state. No default.
    pub hidden_size: usize,
    /// Stacked layers; layer k > 0 reads layer k-1's output. Default 1.
    pub num_layers: usize,
    /// Adds a reverse direction; outputs are the concatenation [forward, reverse]. Default false.
    pub bidirectional: bool,
    /// Whether the cells have `b_ih` and `b_hh`. Default true.
    pub bias: bool,
    /// Residual connections between stacked layers: layer `l > 0` outputs its cells' outputs
    /// plus its input, `y_l = f_l(y_(l-1)) + y_(l-1)`, so a gradient can skip a layer.
    /// Default false.
    pub residual: bool,
}

impl RecurrentConfig {
    /// One unidirectional layer with biases.
    pub fn new(kind: CellKind, input_size: usize, hidden_size: usize) -> Self {
        RecurrentConfig {
            kind,
            input_size,
            hidden_size,
            num_layers: 1,
            bidirectional: false,
            bias: true,
            residual: false,
        }
    }

    /// Sets the number of stacked layers.
    pub fn layers(mut self, n: usize) -> Self {
        self.num_layers = n;
        self
    }

    /// Sets bidirectionality.
    pub fn bidirectional(mut self, b: bool) -> Self {
        self.bidirectional = b;
        self
    }

    /// Sets whether the cells have biases.
    pub fn bias(mut self, b: bool) -> Self {
        self.bias = b;
        self
    }

    /// Sets residual connections between stacked layers.
    pub fn residual(mut self, r: bool) -> Self {
        self.residual = r;
        self
    }

    /// Whether layer `layer`'s output includes its input (a residual connection).
    pub fn adds_input(&self, layer: usize) -> bool {
        self.residual && layer > 0
    }

    /// 1 or 2.
    pub fn directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// Features of the layer's output: `directions * H`.
    pub fn output_size(&self) -> usize {
        self.directions() * self.hidden_size
    }

    /// State values per sequence beyond h, per layer and direction (the LSTM's cell state c;
    /// none for the other cells).
    pub fn extra_state_size(&self) -> usize {
        self.kind.extra_state_size(self.hidden_size)
    }

    /// Input features of stacked layer `layer`.
    pub fn layer_input_size(&self, layer: usize) -> usize {
        if layer == 0 {
            self.input_size
        } else {
            self.output_size()
        }
    }

    /// Checks that every size is positive.
    pub fn validate(&self) -> Result<()> {
        if self.input_size == 0 || self.hidden_size == 0 || self.num_layers == 0 {
            return Err(Error::InvalidConfig(format!(
                "input_size, hidden_size and num_layers must be positive (got {}, {}, {})",
                self.input_size, self.hidden_size, self.num_layers
            )));
        }
        match self.kind {
            CellKind::Leaky(spec) => spec.validate()?,
            CellKind::Clockwork(spec) => spec.check_hidden(self.hidden_size)?,
            CellKind::DeepTransition(spec) => spec.validate()?,
            CellKind::Tdnn(spec) => spec.validate()?,
            _ => {}
        }
        Ok(())
    }
}
