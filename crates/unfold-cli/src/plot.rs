//! Plots of a run's curves (PNG and SVG) from its `metrics.jsonl`, drawn with plotters. Text
//! uses a font embedded in the binary (DejaVu Sans, see `assets/`), so plots render on a
//! machine with no system fonts.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// One named curve of (step, value) points.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

/// Reads `split` lines of a metrics log and returns `key` against the step.
pub fn read_metric(log: &Path, split: &str, key: &str) -> Result<Vec<(f64, f64)>> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if v["split"] != split {
            continue;
        }
        if let (Some(s), Some(x)) = (v["step"].as_f64(), v[key].as_f64()) {
            out.push((s, x));
        }
    }
    Ok(out)
}

/// Averages consecutive points in windows of `w` (to make a noisy training curve readable).
pub fn smooth(points: &[(f64, f64)], w: usize) -> Vec<(f64, f64)> {
    points
        .chunks(w.max(1))
        .map(|c| {
            let n = c.len() as f64;
            (
                c.iter().map(|p| p.0).sum::<f64>() / n,
                c.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect()
}

fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    title: &str,
    ylabel: &str,
    series: &[Series],
    log_y: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        if y.is_finite() && (!log_y || y > 0.0) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.1, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 * 1.1 + 1e-9;
    }
    let mut chart = ChartBuilder::on(&area);
    chart
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    let colours = [BLUE, RED, GREEN, MAGENTA];
    macro_rules! body {
        ($c:expr) => {{
            let mut c = $c;
            c.configure_mesh()
                .x_desc("step")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_desc(ylabel)
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            for (i, s) in series.iter().enumerate() {
                let col = colours[i % colours.len()];
                c.draw_series(LineSeries::new(
                    s.points
                        .iter()
                        .copied()
                        .filter(|p| p.1.is_finite() && (!log_y || p.1 > 0.0)),
                    col.stroke_width(2),
                ))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2))
                });
            }
            c.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }};
    }
    if log_y {
        body!(chart
            .build_cartesian_2d(x0..x1, (y0 * 0.9..y1 * 1.1).log_scale())
            .map_err(|e| anyhow::anyhow!("{e:?}"))?);
    } else {
        let pad = (y1 - y0) * 0.05;
        body!(chart
            .build_cartesian_2d(x0..x1, y0 - pad..y1 + pad)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?);
    }
    area.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

/// Registers the embedded font (once) before anything is drawn.
pub fn register_font() {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Writes `<stem>.png` and `<stem>.svg` in `dir`; returns both paths.
pub fn plot(
    dir: &Path,
    stem: &str,
    title: &str,
    ylabel: &str,
    series: &[Series],
    log_y: bool,
) -> Result<Vec<PathBuf>> {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    draw(
        BitMapBackend::new(&png, (800, 480)).into_drawing_area(),
        title,
        ylabel,
        series,
        log_y,
    )
    .with_context(|| format!("drawing {}", png.display()))?;
    draw(
        SVGBackend::new(&svg, (800, 480)).into_drawing_area(),
        title,
        ylabel,
        series,
        log_y,
    )
    .with_context(|| format!("drawing {}", svg.display()))?;
    Ok(vec![png, svg])
}

fn draw_scatter<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    title: &str,
    points: &[(f64, f64)],
    radius: f64,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e| anyhow::anyhow!("{e:?}");
    area.fill(&WHITE).map_err(e)?;
    let r = points
        .iter()
        .map(|p| p.0.hypot(p.1))
        .fold(radius.max(1.0), f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-r..r, -r..r)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    chart
        .configure_mesh()
        .x_desc("real part")
        .y_desc("imaginary part")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for (rad, col, name) in [
        (1.0, BLACK, "unit circle"),
        (radius, RED, "spectral radius"),
    ] {
        chart
            .draw_series(LineSeries::new(
                (0..=360).map(|d| {
                    let a = (d as f64).to_radians();
                    (rad * a.cos(), rad * a.sin())
                }),
                col.stroke_width(1),
            ))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
            .label(format!("{name} ({rad:.3})"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(1)));
    }
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 2, BLUE.filled())))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    area.present().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

/// Writes `<stem>.png` and `<stem>.svg`: points in the complex plane with the unit circle and
/// a circle of `radius`; returns both paths.
pub fn scatter(
    dir: &Path,
    stem: &str,
    title: &str,
    points: &[(f64, f64)],
    radius: f64,
) -> Result<Vec<PathBuf>> {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    draw_scatter(
        BitMapBackend::new(&png, (640, 640)).into_drawing_area(),
        title,
        points,
        radius,
    )
    .with_context(|| format!("drawing {}", png.display()))?;
    draw_scatter(
        SVGBackend::new(&svg, (640, 640)).into_drawing_area(),
        title,
        points,
        radius,
    )
    .with_context(|| format!("drawing {}", svg.display()))?;
    Ok(vec![png, svg])
}
