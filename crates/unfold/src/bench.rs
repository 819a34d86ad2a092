//! The standard benchmark ladder: training step, inference forward and streaming step latency
//! for fixed configurations (T = 100, input size = H, f32, zero initial state).
//!
//! `tools/torch_bench.py` runs the same configurations in PyTorch and prints the same JSON, so
//! the two are compared side by side, in one run, on one machine (`tools/bench_compare.py`).
//! [`trees`] measures the recursive layer in trees per second (`tools/torch_tree_bench.py`),
//! [`grids`] the 2-D layer in images per second (`tools/torch_grid_bench.py`).

use crate::error::{Error, Result};
use crate::layers::{
    CellKind, InferWorkspace, Recurrent, RecurrentConfig, RecurrentState, StepWorkspace, TrainCache,
};
use crate::rng::Rng;
use std::time::Instant;

pub mod grids;
pub mod trees;

/// Sequence length of every non-streaming configuration.
pub const STEPS: usize = 100;

/// What a benchmark run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward with cache + backward (no input gradient, no optimizer).
    Train,
    /// Inference forward.
    Infer,
    /// One streaming step, batch 1.
    Stream,
}

impl Mode {
    /// `train`, `infer` or `stream`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Train => "train",
            Mode::Infer => "infer",
            Mode::Stream => "stream",
        }
    }
}

/// One named configuration of the ladder.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// Name, e.g. `lstm-h256-b32`.
    pub name: &'static str,
    /// Cell.
    pub kind: CellKind,
    /// Hidden size (and input size).
    pub hidden: usize,
    /// Batch size.
    pub batch: usize,
    /// Stacked layers.
    pub layers: usize,
    /// Bidirectional.
    pub bidirectional: bool,
    /// Streaming configuration (batch 1, one step at a time).
    pub stream: bool,
}

const fn cfg(
    name: &'static str,
    kind: CellKind,
    hidden: usize,
    batch: usize,
    layers: usize,
    bidirectional: bool,
    stream: bool,
) -> BenchConfig {
    BenchConfig {
        name,
        kind,
        hidden,
        batch,
        layers,
        bidirectional,
        stream,
    }
}

/// The standard configurations, in order.
pub const CONFIGS: [BenchConfig; 13] = [
    cfg("lstm-h64-b1", CellKind::Lstm, 64, 1, 1, false, false),
    cfg("lstm-h64-b32", CellKind::Lstm, 64, 32, 1, false, false),
    cfg("lstm-h256-b32", CellKind::Lstm, 256, 32, 1, false, false),
    cfg("lstm-h256-b64", CellKind::Lstm, 256, 64, 1, false, false),
    cfg("lstm-h512-b64", CellKind::Lstm, 512, 64, 1, false, false),
    cfg("gru-h256-b32", CellKind::Gru, 256, 32, 1, false, false),
    cfg("rnn-h256-b32", CellKind::RnnTanh, 256, 32, 1, false, false),
    cfg("lstm2-h256-b32", CellKind::Lstm, 256, 32, 2, false, false),
    cfg("bilstm-h256-b32", CellKind::Lstm, 256, 32, 1, true, false),
    cfg("lstm-h64-stream", CellKind::Lstm, 64, 1, 1, false, true),
    cfg("lstm-h256-stream", CellKind::Lstm, 256, 1, 1, false, true),
    cfg("gru-h64-stream", CellKind::Gru, 64, 1, 1, false, true),
    cfg("gru-h256-stream", CellKind::Gru, 256, 1, 1, false, true),
];

/// The cells PyTorch has no module for, on the generic time loop, each beside its dense
/// equivalent on the same loop (H = 256, B = 32, T = 100): a deep transition of depth 1 is the
/// tanh RNN (`deep1`), so `deep2` and `deep4` show what each extra transition layer costs; a
/// clockwork RNN of one module of period 1 is a dense tanh RNN (`clockwork1`), so
/// `clockwork8` (periods 1, 2, ..., 128) shows what skipping the modules that do not tick
/// saves; `delay14` reads h(t-1) and h(t-4); `tdnn4` is a time-delay layer of 4 taps (all its
/// weight products in the one input GEMM). `unfold bench --cells` runs them.
pub fn cell_configs() -> &'static [BenchConfig] {
    use crate::layers::{ClockSpec, DeepSpec, DelaySpec, TdnnSpec};
    static CELLS: std::sync::LazyLock<Vec<BenchConfig>> = std::sync::LazyLock::new(|| {
        let deep = |depth| {
            CellKind::DeepTransition(DeepSpec {
                depth,
                shortcut: true,
            })
        };
        let clock = |m| CellKind::Clockwork(ClockSpec::exponential(m).expect("valid"));
        let delay = CellKind::Delay(DelaySpec::new(&[1, 4]).expect("valid"));
        let tdnn = CellKind::Tdnn(TdnnSpec {
            taps: 4,
            dilation: 1,
        });
        vec![
            cfg("deep1-h256-b32", deep(1), 256, 32, 1, false, false),
            cfg("deep2-h256-b32", deep(2), 256, 32, 1, false, false),
            cfg("deep4-h256-b32", deep(4), 256, 32, 1, false, false),
            cfg("clockwork1-h256-b32", clock(1), 256, 32, 1, false, false),
            cfg("clockwork8-h256-b32", clock(8), 256, 32, 1, false, false),
            cfg("delay14-h256-b32", delay, 256, 32, 1, false, false),
            cfg("tdnn4-h256-b32", tdnn, 256, 32, 1, false, false),
        ]
    });
    &CELLS
}

/// Finds a configuration by name (of [`CONFIGS`] or [`cell_configs`]).
pub fn find(name: &str) -> Result<&'static BenchConfig> {
    let all = || CONFIGS.iter().chain(cell_configs());
    all().find(|c| c.name == name).ok_or_else(|| {
        let names: Vec<&str> = all().map(|c| c.name).collect();
        Error::InvalidConfig(format!(
            "unknown benchmark configuration {name:?}; known: {}",
            names.join(", ")
        ))
    })
}

impl BenchConfig {
    /// The modes this configuration is measured in.
    pub fn modes(&self) -> &'static [Mode] {
        if self.stream {
            &[Mode::Stream]
        } else {
            &[Mode::Train, Mode::Infer]
        }
    }

    fn layer_config(&self) -> RecurrentConfig {
        RecurrentConfig::new(self.kind, self.hidden, self.hidden)
            .layers(self.layers)
            .bidirectional(self.bidirectional)
    }
}

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// Configuration name.
    pub config: String,
    /// What was measured.
    pub mode: Mode,
    /// Tokens (sequence elements, batch x steps) per second.
    pub tokens_per_s: f64,
    /// Microseconds per time step (the whole batch).
    pub us_per_step: f64,
    /// Threads used by the matrix products.
    pub threads: usize,
}

impl BenchResult {
    /// The JSON line `unfold bench --json` prints.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"config\": \"{}\", \"mode\": \"{}\", \"tokens_per_s\": {:.1}, \"us_per_step\": {:.3}, \"threads\": {}}}",
            self.config,
            self.mode.name(),
            self.tokens_per_s,
            self.us_per_step,
            self.threads
        )
    }
}

/// Runs `f` after warm-up until both `min_reps` repetitions and `min_secs` seconds are reached;
/// returns the median duration of one call in seconds.
pub(crate) fn median_time(mut f: impl FnMut(), min_reps: usize, min_secs: f64) -> f64 {
    f();
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < min_reps || start.elapsed().as_secs_f64() < min_secs {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
        if times.len() >= 10_000 {
            break;
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times[times.len() / 2]
}

/// [`median_time`] of a call that can fail: the first error ends the measurement and is
/// returned.
pub(crate) fn median_time_of(
    mut f: impl FnMut() -> Result<()>,
    min_reps: usize,
    min_secs: f64,
) -> Result<f64> {
    let mut err = None;
    let secs = median_time(
        || {
            if err.is_none() {
                if let Err(e) = f() {
                    err = Some(e);
                }
            }
        },
        min_reps,
        min_secs,
    );
    match err {
        Some(e) => Err(e),
        None => Ok(secs),
    }
}

/// Measures one configuration in one mode. `min_secs` bounds the measuring time (about).
pub fn run(c: &BenchConfig, mode: Mode, min_secs: f64) -> Result<BenchResult> {
    let lc = c.layer_config();
    let layer = Recurrent::<f32>::new(lc.clone(), 42)?;
    let mut rng = Rng::new(7);
    let threads = crate::num_threads();
    let (steps, batch) = (STEPS, c.batch);
    let x: Vec<f32> = (0..steps * batch * c.hidden)
        .map(|_| rng.uniform_range(-1.0, 1.0) as f32)
        .collect();
    let secs_per_call;
    let calls_steps;
    match mode {
        Mode::Train => {
            let dout: Vec<f32> = (0..steps * batch * lc.output_size())
                .map(|_| rng.uniform_range(-1.0, 1.0) as f32)
                .collect();
            let mut cache = TrainCache::default();
            let mut grads = layer.zeros_like();
            secs_per_call = median_time_of(
                || {
                    layer
                        .forward_train(&x, steps, batch, None, None, &mut cache)
                        .and_then(|_| {
                            layer.backward(&mut cache, Some(&dout), None, &mut grads, false)
                        })
                },
                5,
                min_secs,
            )?;
            calls_steps = steps;
        }
        Mode::Infer => {
            let mut ws = InferWorkspace::default();
            secs_per_call = median_time_of(
                || layer.forward_infer(&x, steps, batch, None, None, &mut ws),
                5,
                min_secs,
            )?;
            calls_steps = steps;
        }
        Mode::Stream => {
            // Time blocks of 100 steps (one timer call per block), report per step.
            let mut state = RecurrentState::zeros(&lc, batch);
            let mut ws = StepWorkspace::default();
            secs_per_call = median_time_of(
                || {
                    for t in 0..steps {
                        let xt = &x[t * batch * c.hidden..(t + 1) * batch * c.hidden];
                        layer.step(xt, &mut state, &mut ws)?;
                    }
                    Ok(())
                },
                20,
                min_secs,
            )?;
            calls_steps = steps;
        }
    }
    let per_step = secs_per_call / calls_steps as f64;
    Ok(BenchResult {
        config: c.name.to_string(),
        mode,
        tokens_per_s: batch as f64 / per_step,
        us_per_step: per_step * 1e6,
        threads,
    })
}

/// The machine's f32 matrix-multiply peak as the GEMM crate reaches it: a 2048 x 2048 x 2048
/// product at the current thread count, median GFLOP/s. The training figures are read against
/// it (see `train_gflops`).
pub fn gemm_peak_gflops(min_secs: f64) -> f64 {
    let n = 2048;
    let a = vec![0.5f32; n * n];
    let b = vec![0.25f32; n * n];
    let mut c = vec![0.0f32; n * n];
    let t = median_time(
        || crate::kernels::gemm::gemm_nn(n, n, n, &a, n, &b, n, &mut c, n, false),
        5,
        min_secs,
    );
    2.0 * (n as f64).powi(3) / t / 1e9
}

/// Matrix work of one training call (forward + backward, no input gradient) of a
/// configuration, counted the usual way: three times the forward's matrix FLOPs.
pub fn train_flops(c: &BenchConfig) -> f64 {
    let gh = (c.kind.gates() * c.hidden) as f64;
    let tb = (STEPS * c.batch) as f64;
    let dirs = if c.bidirectional { 2.0 } else { 1.0 };
    let mut fwd = 0.0;
    for l in 0..c.layers {
        let input = if l == 0 {
            c.hidden as f64
        } else {
            dirs * c.hidden as f64
        };
        fwd += dirs * 2.0 * tb * gh * (input + c.hidden as f64);
    }
    3.0 * fwd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configuration_is_known_and_runs_briefly() {
        assert!(find("lstm-h64-b1").is_ok());
        assert!(find("nope").is_err());
        let r = run(find("gru-h64-stream").unwrap(), Mode::Stream, 0.0).unwrap();
        assert!(r.tokens_per_s > 0.0 && r.to_json().contains("\"mode\": \"stream\""));
        let r = run(find("lstm-h64-b1").unwrap(), Mode::Train, 0.0).unwrap();
        assert!(r.us_per_step > 0.0);
    }
}
