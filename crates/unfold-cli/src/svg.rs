//! Small self-contained SVG charts for HTML reports: lines or points on linear or log axes,
//! with ticks, a legend, and optionally the unit circle (for eigenvalues in the complex
//! plane). The text is plain SVG, so a report is one file that any browser opens.

use std::fmt::Write;

/// Ten distinguishable colours (matplotlib's "tab10").
pub const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#393b79",
    "#bcbd22", "#17becf",
];

/// One series.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text (empty: not in the legend).
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
    /// Stroke colour.
    pub colour: String,
    /// Draw points instead of a line.
    pub dots: bool,
    /// Dashed line.
    pub dashed: bool,
    /// Mark the points of a line too.
    pub marked: bool,
}

impl Series {
    /// A solid line.
    pub fn line(name: &str, points: Vec<(f64, f64)>, colour: &str) -> Self {
        Series {
            name: name.into(),
            points,
            colour: colour.into(),
            dots: false,
            dashed: false,
            marked: false,
        }
    }

    /// Points.
    pub fn dots(name: &str, points: Vec<(f64, f64)>, colour: &str) -> Self {
        Series {
            dots: true,
            ..Series::line(name, points, colour)
        }
    }
}

/// A chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Logarithmic y axis (non-positive values are left out).
    pub log_y: bool,
    /// The series.
    pub series: Vec<Series>,
    /// Draw the unit circle and keep the axes' scales equal (the complex plane).
    pub complex_plane: bool,
    /// Width and height in pixels.
    pub size: (f64, f64),
    /// Fixed y range, if any.
    pub y_range: Option<(f64, f64)>,
}

impl Chart {
    /// An empty chart with a title and axis labels.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Chart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_y: false,
            series: Vec::new(),
            complex_plane: false,
            size: (560.0, 340.0),
            y_range: None,
        }
    }

    fn y_of(&self, y: f64) -> Option<f64> {
        if self.log_y {
            (y > 0.0 && y.is_finite()).then(|| y.log10())
        } else {
            y.is_finite().then_some(y)
        }
    }

    /// The chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let (w, h) = self.size;
        let right = if self.complex_plane { 80.0 } else { 150.0 };
        let (left, top, bottom) = (62.0, 28.0, 42.0);
        let (pw, ph) = (w - left - right, h - top - bottom);
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite())
            .filter_map(|&(x, y)| self.y_of(y).map(|y| (x, y)))
            .collect();
        let mut out = String::new();
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"11\">\
             <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\
             <text x=\"{}\" y=\"17\" text-anchor=\"middle\" font-size=\"13\">{}</text>",
            left + pw / 2.0,
            esc(&self.title)
        );
        if pts.is_empty() {
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#888\">no data</text></svg>",
                left + pw / 2.0,
                top + ph / 2.0
            );
            return out;
        }
        let (mut x0, mut x1) = min_max(pts.iter().map(|p| p.0));
        let (mut y0, mut y1) = match (self.y_range, self.log_y) {
            (Some((a, b)), false) => (a, b),
            (Some((a, b)), true) => (a.max(1e-300).log10(), b.max(1e-300).log10()),
            (None, _) => min_max(pts.iter().map(|p| p.1)),
        };
        if self.complex_plane {
            let r = [x0.abs(), x1.abs(), y0.abs(), y1.abs(), 1.05]
                .into_iter()
                .fold(0.0, f64::max)
                * 1.05;
            (x0, x1, y0, y1) = (-r, r, -r, r);
        }
        if x1 - x0 < 1e-12 {
            (x0, x1) = (x0 - 1.0, x1 + 1.0);
        }
        if y1 - y0 < 1e-12 {
            (y0, y1) = (y0 - 1.0, y1 + 1.0);
        } else if !self.complex_plane && self.y_range.is_none() {
            let pad = (y1 - y0) * 0.04;
            (y0, y1) = (y0 - pad, y1 + pad);
        }
        // The complex plane keeps equal scales: a square plot area.
        let (pw, ph) = if self.complex_plane {
            let s = pw.min(ph);
            (s, s)
        } else {
            (pw, ph)
        };
        let sx = |x: f64| left + (x - x0) / (x1 - x0) * pw;
        let sy = |y: f64| top + ph - (y - y0) / (y1 - y0) * ph;
        let _ = write!(
            out,
            "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" \
             stroke=\"#444\"/>"
        );
        // Ticks.
        for t in ticks(x0, x1) {
            let x = sx(t);
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#eee\"/>\
                 <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                top + ph,
                top + ph + 14.0,
                fmt_tick(t)
            );
        }
        let yt = if self.log_y {
            let (a, b) = (y0.ceil() as i32, y1.floor() as i32);
            let step = ((b - a) / 6).max(1);
            (a..=b).step_by(step as usize).map(f64::from).collect()
        } else {
            ticks(y0, y1)
        };
        for t in yt {
            let y = sy(t);
            let label = if self.log_y {
                format!("1e{}", t as i32)
            } else {
                fmt_tick(t)
            };
            let _ = write!(
                out,
                "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
                left + pw,
                left - 4.0,
                y + 4.0
            );
        }
        if self.complex_plane {
            let (cx, cy) = (sx(0.0), sy(0.0));
            let _ = write!(
                out,
                "<ellipse cx=\"{cx:.1}\" cy=\"{cy:.1}\" rx=\"{:.1}\" ry=\"{:.1}\" fill=\"none\" \
                 stroke=\"#999\" stroke-dasharray=\"4 3\"/>",
                sx(1.0) - cx,
                cy - sy(1.0)
            );
        }
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
             <text transform=\"translate(14 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
            left + pw / 2.0,
            (top + ph + 32.0).min(h - 8.0),
            esc(&self.x_label),
            top + ph / 2.0,
            esc(&self.y_label)
        );
        let _ = write!(
            out,
            "<clipPath id=\"c{}\"><rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\"/>\
             </clipPath>",
            self.clip_id()
        );
        let mut legend_y = top + 6.0;
        for s in &self.series {
            let p: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|p| p.0.is_finite())
                .filter_map(|&(x, y)| self.y_of(y).map(|y| (sx(x), sy(y))))
                .collect();
            let _ = write!(out, "<g clip-path=\"url(#c{})\">", self.clip_id());
            if s.dots {
                for (x, y) in &p {
                    let _ = write!(
                        out,
                        "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.2\" fill=\"{}\" \
                         fill-opacity=\"0.75\"/>",
                        s.colour
                    );
                }
            } else if !p.is_empty() {
                let d: Vec<String> = p.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = write!(
                    out,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\"{}/>",
                    d.join(" "),
                    s.colour,
                    if s.dashed {
                        " stroke-dasharray=\"5 3\""
                    } else {
                        ""
                    }
                );
                if p.len() == 1 || s.marked {
                    for (x, y) in &p {
                        let _ = write!(
                            out,
                            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.8\" fill=\"{}\"/>",
                            s.colour
                        );
                    }
                }
            }
            out.push_str("</g>");
            if !s.name.is_empty() {
                let lx = left + pw + 10.0;
                let _ = write!(
                    out,
                    "<line x1=\"{lx}\" y1=\"{legend_y}\" x2=\"{}\" y2=\"{legend_y}\" stroke=\"{}\" \
                     stroke-width=\"3\"{}/><text x=\"{}\" y=\"{}\">{}</text>",
                    lx + 18.0,
                    s.colour,
                    if s.dashed {
                        " stroke-dasharray=\"5 3\""
                    } else {
                        ""
                    },
                    lx + 23.0,
                    legend_y + 4.0,
                    esc(&s.name)
                );
                legend_y += 15.0;
            }
        }
        out.push_str("</svg>");
        out
    }

    /// An id unique enough for the clip path of this chart within one page.
    fn clip_id(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.title.hash(&mut h);
        self.series.len().hash(&mut h);
        for s in &self.series {
            s.name.hash(&mut h);
            s.points.len().hash(&mut h);
        }
        h.finish()
    }
}

fn min_max(v: impl Iterator<Item = f64>) -> (f64, f64) {
    v.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    })
}

/// About five round tick values covering `[a, b]`.
fn ticks(a: f64, b: f64) -> Vec<f64> {
    let span = b - a;
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let first = (a / step).ceil() * step;
    (0..)
        .map(|i| first + i as f64 * step)
        .take_while(|t| *t <= b + step * 1e-9)
        .take(12)
        .collect()
}

fn fmt_tick(t: f64) -> String {
    if t == 0.0 {
        "0".into()
    } else if t.abs() >= 1e4 || t.abs() < 1e-2 {
        format!("{t:.0e}")
    } else {
        let s = format!("{t:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Escapes text for XML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let t = ticks(0.0, 1.0);
        assert_eq!(t.len(), 6);
        for (i, v) in t.iter().enumerate() {
            assert!((v - 0.2 * i as f64).abs() < 1e-12);
        }
        let t = ticks(3.0, 1234.0);
        assert!(t.len() >= 3 && t[0] >= 3.0 && *t.last().unwrap() <= 1234.0);
    }

    #[test]
    fn a_chart_is_one_svg_element_with_its_series() {
        let mut c = Chart::new("decay", "lag", "norm");
        c.log_y = true;
        c.series.push(Series::line(
            "rnn",
            (0..10).map(|k| (k as f64, 0.5f64.powi(k))).collect(),
            PALETTE[0],
        ));
        c.series.push(Series::dots(
            "zero is left out",
            vec![(1.0, 0.0)],
            PALETTE[1],
        ));
        let s = c.render();
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(s.contains("<polyline") && s.contains(">rnn<") && s.contains("1e-2"));
        assert!(!s.contains("<circle"), "a zero on a log axis is not drawn");
        let mut e = Chart::new("eigenvalues", "re", "im");
        e.complex_plane = true;
        e.series
            .push(Series::dots("", vec![(0.5, 0.5)], PALETTE[0]));
        assert!(e.render().contains("<ellipse"));
        assert!(Chart::new("empty", "x", "y").render().contains("no data"));
    }
}
