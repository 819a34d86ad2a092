//! The picture of what each sweep of a trained 2-D network sees (`sweeps.png` / `sweeps.svg`
//! in the run directory): for a few test images, the input (and the target of per-pixel
//! tasks), then for each sweep of the last layer its vote at every position (the part of the
//! output score that the sweep's state contributes: `w . h_s(p)`, the head's weights
//! restricted to that sweep's features), then all sweeps together. The vote is for the
//! predicted class, or, for two classes per pixel, for class 1 against class 0 (the sweep's
//! share of the log-odds). Red votes for, blue against. A sweep from the top-left can only
//! vote from what lies above and to the left of each position.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use unfold::data::GridSet;
use unfold::layers::grid::Combine;
use unfold::layers::output::argmax;
use unfold::models::{GridKind, GridModel, GridReadout, GridWorkspace};

/// One panel: a grid of values and its title.
struct Panel {
    title: String,
    side: (usize, usize),
    values: Vec<f64>,
    /// Signed values (red/blue) or intensities (grey).
    signed: bool,
}

/// The panels of `images` test images: one row per image.
fn panels(model: &GridModel<f32>, set: &GridSet<f32>, images: usize) -> Result<Vec<Vec<Panel>>> {
    let cfg = *model.config();
    let n = images.min(set.len());
    let idx: Vec<usize> = (0..n).collect();
    let batch = set.batch(&idx);
    let mut ws = GridWorkspace::default();
    let rows = model.outputs(&batch, &mut ws)?;
    let o = ws.logits().len() / rows.max(1);
    let (h, w, c) = (set.height, set.width, set.channels);
    let px = h * w;
    let Some(last) = ws.caches().last().and_then(|l| l.sweeps()) else {
        return Ok(Vec::new());
    };
    let hid = cfg.hidden;
    let weights = &model.head.out.weight;
    let fw = cfg.feature_width();
    let mut states = Vec::new();
    let mut out = Vec::new();
    let per_sweep: Vec<Vec<f32>> = (0..cfg.sweeps)
        .map(|s| {
            last.sweep_states(s, &mut states);
            states.clone()
        })
        .collect();
    for img in 0..n {
        let mut row = Vec::new();
        row.push(Panel {
            title: "input".into(),
            side: (h, w),
            values: (0..px)
                .map(|p| {
                    let v = &batch.x[(img * px + p) * c..(img * px + p + 1) * c];
                    v.iter().map(|&x| x as f64).sum::<f64>() / c as f64
                })
                .collect(),
            signed: false,
        });
        let binary_pixels = cfg.readout == GridReadout::Pixels && o == 2;
        if binary_pixels {
            row.push(Panel {
                title: "target (red: 1)".into(),
                side: (h, w),
                values: (0..px)
                    .map(|p| {
                        let r = img * px + p;
                        match (batch.mask.get(r), batch.target[r]) {
                            (Some(false), _) => 0.0,
                            (_, 1) => 1.0,
                            _ => -1.0,
                        }
                    })
                    .collect(),
                signed: true,
            });
        }
        // The weights each position's vote is read with: class 1 minus class 0 for two classes
        // per pixel, else the predicted class (of the image, or of the pixel).
        let head_row = |p: usize, off: usize| -> Vec<f64> {
            let row = |k: usize| &weights[k * fw + off..k * fw + off + hid];
            if binary_pixels {
                row(1)
                    .iter()
                    .zip(row(0))
                    .map(|(&a, &b)| (a - b) as f64)
                    .collect()
            } else {
                let r = match cfg.readout {
                    GridReadout::Pixels => img * px + p,
                    _ => img,
                };
                let k = argmax(&ws.logits()[r * o..(r + 1) * o]);
                row(k).iter().map(|&a| a as f64).collect()
            }
        };
        let mut total = vec![0.0f64; px];
        for (s, st) in per_sweep.iter().enumerate() {
            let values: Vec<f64> = (0..px)
                .map(|p| {
                    // The sweep's block of the head's input (its own block when concatenated,
                    // the shared one when summed); a deep head is read through its last map
                    // only, so the picture shows the direct part.
                    let off = match (cfg.readout, cfg.combine) {
                        (GridReadout::Last, _) | (_, Combine::Concat) => s * hid,
                        (_, Combine::Sum) => 0,
                    };
                    let wk = head_row(p, off);
                    let hv = &st[(img * px + p) * hid..(img * px + p + 1) * hid];
                    wk.iter().zip(hv).map(|(&a, &b)| a * b as f64).sum()
                })
                .collect();
            total.iter_mut().zip(&values).for_each(|(t, v)| *t += v);
            row.push(Panel {
                title: format!("from {}", corner_words(cfg.sweeps, s)),
                side: (h, w),
                values,
                signed: true,
            });
        }
        row.push(Panel {
            title: "all sweeps".into(),
            side: (h, w),
            values: total,
            signed: true,
        });
        out.push(row);
    }
    Ok(out)
}

fn corner_words(sweeps: usize, s: usize) -> &'static str {
    match unfold::layers::grid::Corner::for_sweeps(sweeps)[s] {
        unfold::layers::grid::Corner::TopLeft => "top-left",
        unfold::layers::grid::Corner::TopRight => "top-right",
        unfold::layers::grid::Corner::BottomLeft => "bottom-left",
        unfold::layers::grid::Corner::BottomRight => "bottom-right",
    }
}

/// Red for positive, blue for negative, white for zero (`scale`: the largest magnitude).
fn colour(v: f64, scale: f64) -> RGBColor {
    let t = if scale > 0.0 { v / scale } else { 0.0 }.clamp(-1.0, 1.0);
    let k = (255.0 * (1.0 - t.abs())) as u8;
    if t >= 0.0 {
        RGBColor(255, k, k)
    } else {
        RGBColor(k, k, 255)
    }
}

fn draw<DB: DrawingBackend>(area: DrawingArea<DB, Shift>, rows: &[Vec<Panel>]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e| anyhow::anyhow!("{e:?}");
    area.fill(&WHITE).map_err(e)?;
    let cols = rows[0].len();
    let cells = area.split_evenly((rows.len(), cols));
    for (r, row) in rows.iter().enumerate() {
        for (k, panel) in row.iter().enumerate() {
            let a = &cells[r * cols + k];
            let (pw, ph) = a.dim_in_pixel();
            let top = 22i32;
            let (gh, gw) = panel.side;
            let cell = ((pw as i32 - 8) / gw as i32).min((ph as i32 - top - 4) / gh as i32);
            let x0 = (pw as i32 - cell * gw as i32) / 2;
            let scale = if panel.signed {
                panel.values.iter().fold(0.0f64, |m, v| m.max(v.abs()))
            } else {
                let (lo, hi) = panel
                    .values
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                (hi - lo).max(1e-9)
            };
            let lo = panel.values.iter().cloned().fold(f64::MAX, f64::min);
            a.draw_text(
                &panel.title,
                &("sans-serif", 14).into_text_style(a),
                (x0, 4),
            )
            .map_err(e)?;
            for i in 0..gh {
                for j in 0..gw {
                    let v = panel.values[i * gw + j];
                    let c = if panel.signed {
                        colour(v, scale)
                    } else {
                        // Dark for large values (ink on paper).
                        let g = (255.0 * (1.0 - ((v - lo) / scale).clamp(0.0, 1.0))) as u8;
                        RGBColor(g, g, g)
                    };
                    let (x, y) = (x0 + j as i32 * cell, top + i as i32 * cell);
                    a.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], c.filled()))
                        .map_err(e)?;
                }
            }
        }
    }
    area.present().map_err(e)?;
    Ok(())
}

/// Writes `sweeps.png` and `sweeps.svg` in `dir` for the first `images` images of `set`;
/// returns their paths (none for a ReNet model, which has no sweeps).
pub fn sweep_maps(
    dir: &Path,
    model: &GridModel<f32>,
    set: &GridSet<f32>,
    images: usize,
) -> Result<Vec<PathBuf>> {
    if model.config().kind == GridKind::ReNet {
        return Ok(Vec::new());
    }
    let rows = panels(model, set, images)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    crate::plot::register_font();
    let size = (150 * rows[0].len() as u32, 150 * rows.len() as u32);
    let png = dir.join("sweeps.png");
    let svg = dir.join("sweeps.svg");
    draw(BitMapBackend::new(&png, size).into_drawing_area(), &rows)
        .with_context(|| format!("drawing {}", png.display()))?;
    draw(SVGBackend::new(&svg, size).into_drawing_area(), &rows)
        .with_context(|| format!("drawing {}", svg.display()))?;
    Ok(vec![png, svg])
}
