//! Configuration of a recurrent layer: which cell, its sizes, depth and directions.

use crate::error::{Error, Result};

/// The recurrent cell of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CellKind {
    /// Elman RNN with tanh: `h = tanh(W_ih x + b_ih + W_hh h + b_hh)` (PyTorch `nn.RNN`).
    RnnTanh,
    /// Elman RNN with ReLU (PyTorch `nn.RNN(nonlinearity="relu")`).
    RnnRelu,
    /// Long short-term memory, gates i, f, g, o (PyTorch `nn.LSTM`).
    Lstm,
    /// Gated recurrent unit, gates r, z, n (PyTorch `nn.GRU`).
    Gru,
}

impl CellKind {
    /// Number of gate blocks of size H stacked in the weight matrices.
    pub fn gates(self) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    /// Whether the cell has a second state (the LSTM cell state c).
    pub fn has_cell_state(self) -> bool {
        self == CellKind::Lstm
    }

    /// Short name: `rnn_tanh`, `rnn_relu`, `lstm`, `gru`.
    pub fn name(self) -> &'static str {
        match self {
            CellKind::RnnTanh => "rnn_tanh",
            CellKind::RnnRelu => "rnn_relu",
            CellKind::Lstm => "lstm",
            CellKind::Gru => "gru",
        }
    }

    /// Parses [`CellKind::name`] (also accepts `rnn` for `rnn_tanh`).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "rnn" | "rnn_tanh" | "tanh" => Ok(CellKind::RnnTanh),
            "rnn_relu" | "relu" => Ok(CellKind::RnnRelu),
            "lstm" => Ok(CellKind::Lstm),
            "gru" => Ok(CellKind::Gru),
            other => Err(Error::InvalidConfig(format!(
                "unknown cell kind {other:?} (expected rnn_tanh, rnn_relu, lstm or gru)"
            ))),
        }
    }

    /// Floats kept per token, per layer and direction, by a training forward for backward:
    /// the gate buffer (reused for the gate gradients), the output h, and c (LSTM) or h_n (GRU).
    pub fn floats_per_token(self, hidden: usize) -> usize {
        match self {
            CellKind::RnnTanh | CellKind::RnnRelu => 2 * hidden,
            CellKind::Lstm => 6 * hidden,
            CellKind::Gru => 5 * hidden,
        }
    }
}

/// The shape of a (possibly stacked, possibly bidirectional) recurrent layer.
///
/// Mirrors the constructor of PyTorch's `nn.RNN` / `nn.LSTM` / `nn.GRU` (always
/// `batch_first=False`: sequences are time-major `[T, B, F]`).
#[derive(Debug, Clone, PartialEq, Eq)]
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
        Ok(())
    }
}
