//! The data of a grid run: the built-in maze task (per-pixel labels), or images from the
//! user (`--grid`): a CSV file of one image per row (`height * width * channels` values, then
//! a label; the shape from `--grid-shape`, or square and grey), or a directory with one folder
//! of PNG / PGM / PPM images per class. Images are split 70/10/20 into training, validation
//! and test by a seeded shuffle and scaled to `[0, 1]` with the training images' range (kept
//! in the checkpoint). With `--flat` a chain model reads each image as a sequence of pixels.

use std::path::Path;

use anyhow::{bail, Result};
use unfold::data::grid::{self, class_names, read_grid_csv, GridCsv};
use unfold::data::{GridLabels, GridSet, Scaler};
use unfold::layers::OutputKind;
use unfold::models::{GridReadout, InputSpec, ModelKind, Shape};
use unfold::rng::Rng;
use unfold::score::HeldOut;

use crate::data::{read, Prepared, TrainData, Valid};
use crate::settings::Settings;
use crate::BadInput;

/// The built-in maze task.
pub fn task(s: &Settings) -> Result<Prepared> {
    let info = grid::find_task(&s.task).expect("checked by the caller");
    let size = if s.length == 0 { info.size } else { s.length };
    if size > 256 {
        bail!(BadInput(format!(
            "--length {size}: mazes of at most 256x256"
        )));
    }
    // Each cell costs about 10 bytes (value, label, mask) before batching.
    let cells = (s.train_size + s.valid_size.max(1) + 1000).saturating_mul(size * size);
    if cells > 400_000_000 {
        bail!(BadInput(format!(
            "--train-size {} of {size}x{size} mazes holds {cells} cells, about {} GB: at most \
             400 million cells",
            s.train_size,
            cells / 100_000_000
        )));
    }
    let make = |n: usize, k: u64| {
        grid::maze::<f32>(n, size, info.walls, s.seed.wrapping_mul(31).wrapping_add(k))
            .map_err(|e| BadInput(e.to_string()))
    };
    let train = make(s.train_size, 1)?;
    let valid = make(s.valid_size.max(1), 2)?;
    let test = make(1000, 3)?;
    let (reached, mono) = grid::maze_shares(&test);
    Ok(Prepared {
        summary: format!(
            "{}: {} ({} training mazes of {size}x{size}, walls with probability {}; {:.0}% of \
             the open test cells are reached, {:.0}% of those by a path that only goes down and \
             right)",
            info.name,
            info.summary,
            train.len(),
            info.walls,
            100.0 * reached,
            100.0 * mono
        ),
        metric: "accuracy over the open cells of the test mazes".into(),
        threshold: Some(info.threshold),
        higher_is_better: true,
        shape: Shape {
            kind: ModelKind::Grid(GridReadout::Pixels),
            input: InputSpec::Reals {
                width: 1,
                project: None,
            },
            output: OutputKind::Categorical {
                classes: 2,
                pad: None,
            },
        },
        vocab: None,
        src_vocab: None,
        scaler: None,
        train: TrainData::Grids(train),
        valid: Valid::Grids(valid),
        test: HeldOut::Grids(test),
        labels: None,
        children: None,
    })
}

/// Images from a CSV file or a directory of class folders.
pub fn file(path: &Path, s: &Settings) -> Result<Prepared> {
    let dims = s.grid_dims().map_err(BadInput)?;
    let csv = if path.is_dir() {
        read_folders(path, dims)?
    } else {
        let text = read(path)?;
        read_grid_csv(&text, dims).map_err(|e| BadInput(format!("{}: {e}", path.display())))?
    };
    let names = class_names(&csv.labels);
    if names.len() < 2 {
        bail!(BadInput(format!(
            "{}: the images need at least two classes",
            path.display()
        )));
    }
    let labels: Vec<usize> = csv
        .labels
        .iter()
        .map(|l| {
            names
                .iter()
                .position(|n| n == l)
                .expect("a name of the set")
        })
        .collect();
    let n = labels.len();
    if n < 10 {
        bail!(BadInput(format!(
            "{}: {n} images; at least 10 are needed to split off validation and test images",
            path.display()
        )));
    }
    let (h, w, c) = csv.dims;
    let all = GridSet::new(csv.dims, csv.pixels, GridLabels::Image(labels), names.len())
        .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    // 70/10/20 by a seeded shuffle.
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(s.seed ^ 0x6772_6964).shuffle(&mut order);
    let (n_test, n_valid) = ((n / 5).max(1), (n / 10).max(1));
    let test_idx = &order[..n_test];
    let valid_idx = &order[n_test..n_test + n_valid];
    let train_idx = &order[n_test + n_valid..];
    let mut train = all.subset(train_idx);
    let (lo, hi) = train.normalise(None);
    let mut valid = all.subset(valid_idx);
    valid.normalise(Some((lo, hi)));
    let mut test = all.subset(test_idx);
    test.normalise(Some((lo, hi)));
    let scaler = Scaler {
        names: (0..c).map(|k| format!("channel {k}")).collect(),
        mean: vec![lo; c],
        std: vec![if hi > lo { hi - lo } else { 1.0 }; c],
        target: None,
        classes: names.clone(),
        downsample: 1,
    };
    let classes = names.len();
    let output = OutputKind::Categorical { classes, pad: None };
    let input = InputSpec::Reals {
        width: c,
        project: None,
    };
    let reference = match nearest_neighbour(&train, &test) {
        Some(a) => format!("; 1-nearest-neighbour (Euclidean) on the same split: {a:.4}"),
        None => String::new(),
    };
    let summary = format!(
        "image classification of {} ({n} images of {h}x{w}x{c}, {classes} classes; {} training, \
         {} validation, {} test{reference}{})",
        path.display(),
        train.len(),
        valid.len(),
        test.len(),
        if s.flat {
            "; each image read as a sequence of its pixels, row by row"
        } else {
            ""
        }
    );
    let (kind, train, valid, test) = if s.flat {
        let enc = |g: &GridSet<f32>| {
            grid::flat_dataset(g).map_err(|e| anyhow::Error::from(BadInput(e.to_string())))
        };
        (
            ModelKind::Classifier,
            TrainData::Sequences(enc(&train)?),
            Valid::Sequences(enc(&valid)?),
            HeldOut::Sequences(enc(&test)?),
        )
    } else {
        (
            ModelKind::Grid(s.grid_readout()),
            TrainData::Grids(train),
            Valid::Grids(valid),
            HeldOut::Grids(test),
        )
    };
    Ok(Prepared {
        summary,
        metric: "test accuracy".into(),
        threshold: None,
        higher_is_better: true,
        shape: Shape {
            kind,
            input,
            output,
        },
        vocab: None,
        src_vocab: None,
        scaler: Some(scaler),
        train,
        valid,
        test,
        labels: None,
        children: None,
    })
}

/// The test accuracy of the 1-nearest-neighbour classifier (Euclidean distance on the scaled
/// pixels): the reference a learned model has to beat. `None` when it would cost more than a
/// few seconds (`train * test * pixels` above 2e10).
fn nearest_neighbour(train: &GridSet<f32>, test: &GridSet<f32>) -> Option<f64> {
    let (GridLabels::Image(tl), GridLabels::Image(el)) = (&train.labels, &test.labels) else {
        return None;
    };
    let d = train.height * train.width * train.channels;
    if (train.len() * test.len()).saturating_mul(d) > 20_000_000_000 {
        return None;
    }
    let right = (0..test.len())
        .filter(|&i| {
            let x = &test.pixels[i * d..(i + 1) * d];
            let best = (0..train.len())
                .map(|j| {
                    let y = &train.pixels[j * d..(j + 1) * d];
                    let dist: f32 = x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
                    (dist, j)
                })
                .fold((f32::MAX, 0), |a, b| if b.0 < a.0 { b } else { a });
            tl[best.1] == el[i]
        })
        .count();
    Some(right as f64 / test.len().max(1) as f64)
}

/// A directory with one folder per class, each holding PNG or PGM / PPM images of one size.
fn read_folders(dir: &Path, dims: Option<(usize, usize, usize)>) -> Result<GridCsv> {
    let mut classes: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| BadInput(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .collect();
    classes.sort_by_key(|e| e.file_name());
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut shape: Option<(usize, usize, usize)> = dims;
    for class in classes {
        let name = class.file_name().to_string_lossy().into_owned();
        let mut files: Vec<_> = std::fs::read_dir(class.path())
            .map_err(|e| BadInput(format!("{}: {e}", class.path().display())))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| {
                    matches!(
                        x.to_string_lossy().to_ascii_lowercase().as_str(),
                        "png" | "pgm" | "ppm" | "pnm"
                    )
                })
            })
            .collect();
        files.sort();
        for f in files {
            let img = image::open(&f)
                .map_err(|e| BadInput(format!("{}: not a readable image: {e}", f.display())))?;
            let (w, h) = (img.width() as usize, img.height() as usize);
            let want_c = shape.map(|s| s.2);
            let (c, data): (usize, Vec<f32>) = match (want_c, img.color().channel_count()) {
                (Some(1), _) | (None, 1 | 2) => (
                    1,
                    img.to_luma8()
                        .into_raw()
                        .into_iter()
                        .map(f32::from)
                        .collect(),
                ),
                _ => (
                    3,
                    img.to_rgb8()
                        .into_raw()
                        .into_iter()
                        .map(f32::from)
                        .collect(),
                ),
            };
            match shape {
                Some(s) if s != (h, w, c) => bail!(BadInput(format!(
                    "{}: {h}x{w}x{c}, where the images before are {}x{}x{}",
                    f.display(),
                    s.0,
                    s.1,
                    s.2
                ))),
                _ => shape = Some((h, w, c)),
            }
            pixels.extend(data);
            labels.push(name.clone());
        }
    }
    let Some(dims) = shape.filter(|_| !labels.is_empty()) else {
        bail!(BadInput(format!(
            "{}: no PNG, PGM or PPM images in class folders (a folder per class)",
            dir.display()
        )));
    };
    Ok(GridCsv {
        pixels,
        labels,
        dims,
    })
}

impl Settings {
    /// True for a run of a 2-D network (images or the maze task, not read flat).
    pub fn grid_run(&self) -> bool {
        (self.grid.is_some() || grid::find_task(&self.task).is_some()) && !self.flat
    }

    /// The image size `--grid-shape` gives, if any.
    pub fn grid_dims(&self) -> std::result::Result<Option<(usize, usize, usize)>, String> {
        let Some(text) = &self.grid_shape else {
            return Ok(None);
        };
        let parts: Vec<Option<usize>> = text
            .split(['x', 'X'])
            .map(|p| p.trim().parse().ok().filter(|&v| v > 0 && v <= 4096))
            .collect();
        match parts[..] {
            [Some(h), Some(w)] => Ok(Some((h, w, 1))),
            [Some(h), Some(w), Some(c)] if c <= 64 => Ok(Some((h, w, c))),
            _ => Err(format!(
                "--grid-shape: '{text}' (HxW or HxWxC, e.g. 8x8 or 32x32x3)"
            )),
        }
    }

    /// How a 2-D classifier reads its feature map: mean or last.
    pub fn grid_readout(&self) -> GridReadout {
        match self.readout.as_str() {
            "last" => GridReadout::Last,
            _ => GridReadout::Mean,
        }
    }

    /// How a 2-D layer's sweeps combine.
    pub fn grid_combine(&self) -> unfold::layers::grid::Combine {
        match self.combine.as_str() {
            "sum" => unfold::layers::grid::Combine::Sum,
            _ => unfold::layers::grid::Combine::Concat,
        }
    }

    /// What is wrong with the grid settings, if anything.
    pub fn check_grid(&self) -> std::result::Result<(), String> {
        self.grid_dims()?;
        if !matches!(self.sweeps, 1 | 2 | 4) {
            return Err(format!("--sweeps {}: 1, 2 or 4 corners", self.sweeps));
        }
        if !matches!(self.combine.as_str(), "concat" | "sum") {
            return Err(format!("--combine: '{}' (concat or sum)", self.combine));
        }
        let grid_data = self.grid.is_some() || grid::find_task(&self.task).is_some();
        let shaped = self.grid_shape.is_some() || self.sweeps != 4 || self.combine != "concat";
        if !grid_data && (shaped || self.renet) {
            return Err("--grid-shape, --sweeps, --combine and --renet apply to grid runs".into());
        }
        if self.renet && (self.sweeps != 4 || self.combine != "concat" || self.readout == "last") {
            return Err(
                "--renet reads rows and columns both ways: --sweeps, --combine and --readout \
                 last apply to 2-D sweeps"
                    .into(),
            );
        }
        if self.flat && grid::find_task(&self.task).is_some() {
            return Err(
                "--flat reads images with one label each as sequences; the maze labels every \
                 cell"
                    .into(),
            );
        }
        if self.grid_run() {
            if !matches!(
                self.cell(),
                unfold::CellKind::Lstm | unfold::CellKind::RnnTanh
            ) {
                return Err(format!(
                    "--model {}: a 2-D network sweeps with rnn (MD-RNN) or lstm (MDLSTM); \
                     --flat reads the images as sequences with any cell",
                    self.model
                ));
            }
            if self.bidirectional || self.residual {
                return Err(
                    "--bidirectional and --residual apply to chain models, not to a 2-D network \
                     (--sweeps sets its directions)"
                        .into(),
                );
            }
        }
        Ok(())
    }
}
