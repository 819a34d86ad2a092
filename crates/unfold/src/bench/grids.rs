//! The grid benchmark: images per second of one 2-D recurrent layer sweeping from all four
//! corners (outputs concatenated), training (forward with cache and backward from a fixed
//! gradient on the whole feature map, no optimizer) and inference, on a fixed batch of
//! images that `tools/torch_grid_bench.py` draws the same way (uniform in `[-1, 1]`; the
//! values do not matter to the timing), so PyTorch's position-by-position and wavefront
//! versions run side by side in the same run.

use crate::error::{Error, Result};
use crate::layers::grid::{
    Combine, GridCache, GridCell, GridGradWork, GridLayer, GridLayerConfig, GridShape,
};
use crate::rng::Rng;

use super::Mode;

/// One grid benchmark configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridBenchConfig {
    /// Name, e.g. `mdlstm-8x8-h32-b32`.
    pub name: &'static str,
    /// The cell.
    pub cell: GridCell,
    /// Image side.
    pub side: usize,
    /// Channels per pixel.
    pub channels: usize,
    /// Hidden units per sweep.
    pub hidden: usize,
    /// Images per batch.
    pub batch: usize,
}

const fn gcfg(
    name: &'static str,
    cell: GridCell,
    side: usize,
    channels: usize,
    hidden: usize,
    batch: usize,
) -> GridBenchConfig {
    GridBenchConfig {
        name,
        cell,
        side,
        channels,
        hidden,
        batch,
    }
}

/// The grid configurations: the 8x8 digits' size, a single image, and colour images of
/// 16x16 and 32x32 (CIFAR's size).
pub const GRID_CONFIGS: [GridBenchConfig; 5] = [
    gcfg("mdlstm-8x8-h32-b32", GridCell::Lstm, 8, 1, 32, 32),
    gcfg("mdlstm-8x8-h32-b1", GridCell::Lstm, 8, 1, 32, 1),
    gcfg("mdrnn-8x8-h32-b32", GridCell::Rnn, 8, 1, 32, 32),
    gcfg("mdlstm-16x16-h64-b16", GridCell::Lstm, 16, 3, 64, 16),
    gcfg("mdlstm-32x32-h32-b16", GridCell::Lstm, 32, 3, 32, 16),
];

/// One grid measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct GridBenchResult {
    /// Configuration name.
    pub config: String,
    /// Train or infer.
    pub mode: Mode,
    /// Images per second.
    pub images_per_s: f64,
    /// Milliseconds per batch.
    pub ms_per_batch: f64,
    /// Threads of the matrix products.
    pub threads: usize,
}

impl GridBenchResult {
    /// The JSON line `unfold bench --grids --json` prints (`tools/torch_grid_bench.py` prints
    /// the same keys).
    pub fn to_json(&self) -> String {
        format!(
            "{{\"config\": \"{}\", \"mode\": \"{}\", \"images_per_s\": {:.1}, \"ms_per_batch\": {:.3}, \"threads\": {}}}",
            self.config,
            self.mode.name(),
            self.images_per_s,
            self.ms_per_batch,
            self.threads
        )
    }
}

/// The grid configuration called `name`.
pub fn find_grid(name: &str) -> Result<&'static GridBenchConfig> {
    GRID_CONFIGS
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| Error::InvalidConfig(format!("no grid benchmark configuration '{name}'")))
}

/// Measures one grid configuration: the layer alone.
pub fn run_grid(c: &GridBenchConfig, mode: Mode, min_secs: f64) -> Result<GridBenchResult> {
    let cfg = GridLayerConfig {
        cell: c.cell,
        input_size: c.channels,
        hidden: c.hidden,
        sweeps: 4,
        combine: Combine::Concat,
    };
    let layer = GridLayer::<f32>::new(cfg, 42)?;
    let shape = GridShape {
        images: c.batch,
        height: c.side,
        width: c.side,
    };
    let n = shape.positions();
    let mut rng = Rng::new(7);
    let mut draw = |k: usize| -> Vec<f32> {
        (0..k)
            .map(|_| rng.uniform_range(-1.0, 1.0) as f32)
            .collect()
    };
    let x = draw(n * c.channels);
    let dout = draw(n * cfg.out_width());
    let mut cache = GridCache::default();
    let mut grads = layer.zeros_like();
    let mut work = GridGradWork::default();
    let mut dx = vec![0.0f32; x.len()];
    let secs = super::median_time_of(
        || {
            layer.forward(shape, &x, &mut cache)?;
            if mode == Mode::Train {
                let g = (&mut grads, &mut work);
                layer.backward(&x, &mut cache, &dout, None, g, &mut dx)?;
            }
            Ok(())
        },
        5,
        min_secs,
    )?;
    Ok(GridBenchResult {
        config: c.name.to_string(),
        mode,
        images_per_s: c.batch as f64 / secs,
        ms_per_batch: secs * 1e3,
        threads: crate::num_threads(),
    })
}
