//! Grids (images) for two-dimensional recurrent networks: a [`GridSet`] of fixed-size images
//! with one class per image or one class per pixel (with a mask of the pixels that have
//! one), its shuffled minibatches ([`GridBatch`]), the CSV image format (one row of
//! `height * width * channels` values and a label, as the 8x8 digits are), and the generated
//! maze task, whose per-pixel labels depend on distant pixels in every direction.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::grid::GridShape;
use crate::rng::Rng;

/// What is predicted of a grid.
#[derive(Debug, Clone, PartialEq)]
pub enum GridLabels {
    /// One class per image.
    Image(Vec<usize>),
    /// One class per pixel (`[images, height, width]`), scored where `mask` is true.
    Pixels {
        /// The classes.
        labels: Vec<usize>,
        /// Which pixels have a target.
        mask: Vec<bool>,
    },
}

/// Fixed-size images (`[images, height, width, channels]`, row-major) with their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct GridSet<T> {
    /// Rows of each image.
    pub height: usize,
    /// Columns of each image.
    pub width: usize,
    /// Values per pixel.
    pub channels: usize,
    /// The pixel values.
    pub pixels: Vec<T>,
    /// The targets.
    pub labels: GridLabels,
    /// Number of classes.
    pub classes: usize,
}

/// A minibatch of grids.
#[derive(Debug, Clone, PartialEq)]
pub struct GridBatch<T> {
    /// Images, rows, columns.
    pub shape: GridShape,
    /// Values per pixel.
    pub channels: usize,
    /// `[images, height, width, channels]`.
    pub x: Vec<T>,
    /// Class per image, or per pixel.
    pub target: Vec<usize>,
    /// Per-pixel targets: which pixels are scored (empty for image targets).
    pub mask: Vec<bool>,
}

impl<T: Float> GridSet<T> {
    /// A validated set.
    pub fn new(
        (height, width, channels): (usize, usize, usize),
        pixels: Vec<T>,
        labels: GridLabels,
        classes: usize,
    ) -> Result<Self> {
        let px = height * width;
        if px == 0 || channels == 0 {
            return Err(Error::InvalidData(format!(
                "a grid of {height}x{width} pixels with {channels} channels"
            )));
        }
        if !pixels.len().is_multiple_of(px * channels) || pixels.is_empty() {
            return Err(Error::InvalidData(format!(
                "{} values are not whole {height}x{width}x{channels} images",
                pixels.len()
            )));
        }
        let n = pixels.len() / (px * channels);
        let (targets, expected) = match &labels {
            GridLabels::Image(l) => (l, n),
            GridLabels::Pixels { labels, mask } => {
                if mask.len() != labels.len() {
                    return Err(Error::InvalidData("pixel mask of another size".into()));
                }
                (labels, n * px)
            }
        };
        if targets.len() != expected {
            return Err(Error::InvalidData(format!(
                "{n} images need {expected} labels, got {}",
                targets.len()
            )));
        }
        if let Some(&bad) = targets.iter().find(|&&c| c >= classes) {
            return Err(Error::InvalidData(format!(
                "label {bad} is outside the {classes} classes"
            )));
        }
        if pixels.iter().any(|v| !v.to_f64().is_finite()) {
            return Err(Error::InvalidData("a pixel value is not finite".into()));
        }
        Ok(GridSet {
            height,
            width,
            channels,
            pixels,
            labels,
            classes,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len() / (self.height * self.width * self.channels)
    }

    /// True when there are no images (never, for a validated set).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for per-pixel targets.
    pub fn per_pixel(&self) -> bool {
        matches!(self.labels, GridLabels::Pixels { .. })
    }

    /// The images `idx` as a new set.
    pub fn subset(&self, idx: &[usize]) -> GridSet<T> {
        let b = self.batch(idx);
        let labels = match self.labels {
            GridLabels::Image(_) => GridLabels::Image(b.target),
            GridLabels::Pixels { .. } => GridLabels::Pixels {
                labels: b.target,
                mask: b.mask,
            },
        };
        GridSet {
            pixels: b.x,
            labels,
            ..*self
        }
    }

    /// Each epoch's groups of `batch_size` images: a shuffle drawn from `(seed, epoch)`.
    pub fn epoch_batches(&self, seed: u64, epoch: u64, batch_size: usize) -> Vec<Vec<usize>> {
        let mut rng = Rng::new(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17));
        let mut order: Vec<usize> = (0..self.len()).collect();
        rng.shuffle(&mut order);
        order
            .chunks(batch_size.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// The images `idx` as one batch.
    pub fn batch(&self, idx: &[usize]) -> GridBatch<T> {
        let px = self.height * self.width;
        let w = px * self.channels;
        let mut x = Vec::with_capacity(idx.len() * w);
        let mut target = Vec::new();
        let mut mask = Vec::new();
        for &i in idx {
            x.extend_from_slice(&self.pixels[i * w..(i + 1) * w]);
            match &self.labels {
                GridLabels::Image(l) => target.push(l[i]),
                GridLabels::Pixels { labels, mask: m } => {
                    target.extend_from_slice(&labels[i * px..(i + 1) * px]);
                    mask.extend_from_slice(&m[i * px..(i + 1) * px]);
                }
            }
        }
        GridBatch {
            shape: GridShape {
                images: idx.len(),
                height: self.height,
                width: self.width,
            },
            channels: self.channels,
            x,
            target,
            mask,
        }
    }

    /// Scales every value to `[0, 1]` by `(v - lo) / (hi - lo)`; returns `(lo, hi)` (the
    /// set's extremes unless given, so that held-out sets use the training set's).
    pub fn normalise(&mut self, range: Option<(f64, f64)>) -> (f64, f64) {
        let (lo, hi) = range.unwrap_or_else(|| {
            self.pixels.iter().fold((f64::MAX, f64::MIN), |(a, b), v| {
                (a.min(v.to_f64()), b.max(v.to_f64()))
            })
        });
        let span = if hi > lo { hi - lo } else { 1.0 };
        for v in &mut self.pixels {
            *v = T::from_f64((v.to_f64() - lo) / span);
        }
        (lo, hi)
    }
}

/// Images read from CSV: the values and the label text of each row.
#[derive(Debug, Clone, PartialEq)]
pub struct GridCsv {
    /// `[images, height, width, channels]` values.
    pub pixels: Vec<f32>,
    /// Each row's label (its last field).
    pub labels: Vec<String>,
    /// Rows, columns and channels of each image.
    pub dims: (usize, usize, usize),
}

/// Reads CSV images: each row `height * width * channels` numbers (row-major, channels
/// innermost) and a label last; a first row that is not numeric is a header. `dims` gives the
/// image size; without it a row of `k * k` values is a `k x k` grey image. Errors name the
/// line.
pub fn read_grid_csv(text: &str, dims: Option<(usize, usize, usize)>) -> Result<GridCsv> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut width: Option<usize> = None;
    for (no, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() < 2 {
            return Err(Error::InvalidData(format!(
                "line {}: an image row needs pixel values and a label",
                no + 1
            )));
        }
        let (vals, label) = fields.split_at(fields.len() - 1);
        let parsed: std::result::Result<Vec<f32>, _> =
            vals.iter().map(|v| v.parse::<f32>()).collect();
        let parsed = match parsed {
            Ok(p) => p,
            Err(_) if labels.is_empty() && width.is_none() => {
                width = Some(vals.len());
                continue; // a header
            }
            Err(_) => {
                return Err(Error::InvalidData(format!(
                    "line {}: a pixel value is not a number",
                    no + 1
                )))
            }
        };
        if parsed.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidData(format!(
                "line {}: a pixel value is not finite",
                no + 1
            )));
        }
        match width {
            Some(w) if w != parsed.len() => {
                return Err(Error::InvalidData(format!(
                    "line {}: {} pixel values where the rows before have {w}",
                    no + 1,
                    parsed.len()
                )))
            }
            _ => width = Some(parsed.len()),
        }
        pixels.extend(parsed);
        labels.push(label[0].to_string());
    }
    let Some(w) = width.filter(|_| !labels.is_empty()) else {
        return Err(Error::InvalidData("no image rows in the CSV".into()));
    };
    let dims = match dims {
        Some((h, wd, c)) if h * wd * c == w => (h, wd, c),
        Some((h, wd, c)) => {
            return Err(Error::InvalidData(format!(
                "rows have {w} pixel values, not {h}x{wd}x{c} = {}",
                h * wd * c
            )))
        }
        None => {
            let k = (w as f64).sqrt().round() as usize;
            if k * k != w {
                return Err(Error::InvalidData(format!(
                    "rows have {w} pixel values, not a square grey image: give the shape \
                     (height x width x channels)"
                )));
            }
            (k, k, 1)
        }
    };
    Ok(GridCsv {
        pixels,
        labels,
        dims,
    })
}

/// Class names for label texts: sorted numerically when all are integers, else as text.
pub fn class_names(labels: &[String]) -> Vec<String> {
    let mut names: Vec<String> = labels.to_vec();
    names.sort();
    names.dedup();
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().unwrap_or(0));
    }
    names
}

/// The maze task: `count` random `size x size` grids of walls (channel value 1) and open
/// cells (0), the top-left cell always open, each wall present with probability `walls`;
/// every open cell is labelled 1 when a path of open cells (moving up, down, left or right)
/// joins it to the top-left cell, else 0, and walls are not scored. Paths wind in every
/// direction, so a sweep from one corner cannot label a cell whose path to the corner turns
/// back; sweeps from all four corners, stacked, can.
pub fn maze<T: Float>(count: usize, size: usize, walls: f64, seed: u64) -> Result<GridSet<T>> {
    if size < 2 || count == 0 {
        return Err(Error::InvalidConfig(
            "the maze task needs at least one grid of at least 2x2".into(),
        ));
    }
    let mut rng = Rng::new(seed);
    let px = size * size;
    let mut pixels = Vec::with_capacity(count * px);
    let mut labels = Vec::with_capacity(count * px);
    let mut mask = Vec::with_capacity(count * px);
    let mut stack = Vec::new();
    for _ in 0..count {
        let wall: Vec<bool> = (0..px).map(|p| p != 0 && rng.uniform() < walls).collect();
        let mut reach = vec![false; px];
        reach[0] = true;
        stack.clear();
        stack.push(0usize);
        while let Some(p) = stack.pop() {
            let (i, j) = (p / size, p % size);
            let mut visit = |q: usize| {
                if !wall[q] && !reach[q] {
                    reach[q] = true;
                    stack.push(q);
                }
            };
            if i > 0 {
                visit(p - size);
            }
            if i + 1 < size {
                visit(p + size);
            }
            if j > 0 {
                visit(p - 1);
            }
            if j + 1 < size {
                visit(p + 1);
            }
        }
        for p in 0..px {
            pixels.push(if wall[p] { T::ONE } else { T::ZERO });
            labels.push(usize::from(reach[p]));
            mask.push(!wall[p]);
        }
    }
    GridSet::new(
        (size, size, 1),
        pixels,
        GridLabels::Pixels { labels, mask },
        2,
    )
}

/// Two shares of a maze set: of the open cells, those a path joins to the top-left cell (the
/// score of always answering "reached" is the larger of it and its complement); and of those,
/// the ones a path joins only through moves down and right (which a sweep from the top-left
/// sees; the rest need paths that turn back).
pub fn maze_shares<T: Float>(set: &GridSet<T>) -> (f64, f64) {
    let (s, px) = (set.width, set.width * set.height);
    let GridLabels::Pixels { labels, mask } = &set.labels else {
        return (0.0, 0.0);
    };
    let (mut mono, mut reached, mut open) = (0usize, 0usize, 0usize);
    for img in 0..set.len() {
        let wall = |p: usize| set.pixels[img * px + p].to_f64() > 0.5;
        let mut m = vec![false; px];
        for p in 0..px {
            let (i, j) = (p / s, p % s);
            m[p] = !wall(p) && (p == 0 || (i > 0 && m[p - s]) || (j > 0 && m[p - 1]));
            open += usize::from(mask[img * px + p]);
            if mask[img * px + p] && labels[img * px + p] == 1 {
                reached += 1;
                mono += usize::from(m[p]);
            }
        }
    }
    (
        reached as f64 / open.max(1) as f64,
        mono as f64 / reached.max(1) as f64,
    )
}

/// A built-in grid task and the defaults it trains with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GridTaskInfo {
    /// Its name (`--task`).
    pub name: &'static str,
    /// What is learned, in words.
    pub summary: &'static str,
    /// Grid side (`--length` overrides).
    pub size: usize,
    /// Probability of a wall.
    pub walls: f64,
    /// Default hidden units per sweep.
    pub hidden: usize,
    /// Default stacked layers.
    pub layers: usize,
    /// Default optimisation steps.
    pub steps: u64,
    /// Default learning rate.
    pub lr: f64,
    /// Default batch size.
    pub batch: usize,
    /// Default training grids.
    pub train_size: usize,
    /// Accuracy over the test grids' open cells that counts as solved.
    pub threshold: f64,
}

/// The built-in grid tasks.
pub const GRID_TASKS: &[GridTaskInfo] = &[GridTaskInfo {
    name: "maze",
    summary: "label every open cell of a random maze by whether a path joins it to the \
              top-left corner",
    size: 8,
    walls: 0.4,
    hidden: 32,
    layers: 2,
    steps: 2000,
    lr: 5e-3,
    batch: 32,
    train_size: 4000,
    threshold: 0.95,
}];

/// The built-in grid task of that name.
pub fn find_task(name: &str) -> Option<&'static GridTaskInfo> {
    GRID_TASKS.iter().find(|t| t.name == name)
}

/// Each image as a sequence of its pixels, row by row (`height * width` steps of `channels`
/// values), with its class as the one target: what a chain model reading the pixels one at a
/// time sees. Per-pixel labels are refused.
pub fn flat_dataset<T: Float>(set: &GridSet<T>) -> Result<crate::data::Dataset<T>> {
    let GridLabels::Image(labels) = &set.labels else {
        return Err(Error::InvalidData(
            "only images with one label each read as a flat sequence".into(),
        ));
    };
    let steps = set.height * set.width;
    let w = steps * set.channels;
    let seqs = labels
        .iter()
        .enumerate()
        .map(|(i, &c)| crate::data::Sequence {
            len: steps,
            input: crate::data::Values::Reals {
                width: set.channels,
                data: set.pixels[i * w..(i + 1) * w].to_vec(),
            },
            target: crate::data::Values::Symbols(vec![c]),
        })
        .collect();
    crate::data::Dataset::new(seqs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_become_images_and_errors_name_the_line() {
        let t = "a,b,c,d,label\n1,2,3,4,x\n5,6,7,8,y\n";
        let g = read_grid_csv(t, None).unwrap();
        assert_eq!(g.dims, (2, 2, 1));
        assert_eq!(g.labels, vec!["x", "y"]);
        assert_eq!(g.pixels[4], 5.0);
        let e = read_grid_csv("1,2,3,4,x\n1,2,3,x\n", None).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(read_grid_csv("1,2,3,x\n", None).is_err()); // 3 is not square
        assert_eq!(
            read_grid_csv("1,2,3,4,5,6,x\n", Some((1, 2, 3)))
                .unwrap()
                .dims,
            (1, 2, 3)
        );
        assert!(read_grid_csv("", None).is_err());
        assert_eq!(
            class_names(&["10".into(), "9".into(), "10".into()]),
            ["9", "10"]
        );
    }

    #[test]
    fn maze_labels_follow_paths_in_every_direction() {
        let set: GridSet<f32> = maze(200, 7, 0.35, 3).unwrap();
        let GridLabels::Pixels { labels, mask } = &set.labels else {
            panic!()
        };
        // The corner is open and reached; walls are not scored; both classes occur.
        for img in 0..set.len() {
            assert!(mask[img * 49] && labels[img * 49] == 1);
        }
        let open: Vec<usize> = (0..labels.len()).filter(|&p| mask[p]).collect();
        let reached = open.iter().filter(|&&p| labels[p] == 1).count();
        assert!(reached > open.len() / 5 && reached < open.len() * 4 / 5);
        // Some reached cells need a path that turns back.
        let (reached_share, share) = maze_shares(&set);
        assert!(share > 0.2 && share < 0.9, "{share}");
        assert!((reached_share - reached as f64 / open.len() as f64).abs() < 1e-12);
        // Same seed, same mazes.
        assert_eq!(set, maze(200, 7, 0.35, 3).unwrap());
    }
}
