//! Reading the sktime / UEA `.ts` format of time-series classification data sets: a header of
//! `@` lines (`@classLabel true A B ...`), then after `@data` one series per line, channels
//! separated by `:` (values by `,`), the class label last. Series may differ in length; every
//! value must be a finite number.

use crate::error::{Error, Result};
use std::path::Path;

/// One `.ts` file: its series (`[len, channels]` each) and labels.
pub struct TsFile {
    /// Each series' length and its `[len, channels]` values, row-major.
    pub series: Vec<(usize, Vec<f64>)>,
    /// Each series' class label.
    pub labels: Vec<String>,
    /// Number of channels (the same for every series).
    pub channels: usize,
    /// The declared class labels (`@classLabel true ...`), else the sorted distinct labels.
    pub classes: Vec<String>,
}

impl TsFile {
    /// Mean and standard deviation of each channel over every step of every series (the
    /// deviation floored at 1e-12, so a constant channel scales by a finite factor).
    pub fn channel_moments(&self) -> (Vec<f64>, Vec<f64>) {
        let ch = self.channels;
        let (mut mean, mut sq, mut n) = (vec![0.0; ch], vec![0.0; ch], 0.0);
        for (_, rows) in &self.series {
            for r in rows.chunks_exact(ch) {
                for c in 0..ch {
                    mean[c] += r[c];
                    sq[c] += r[c] * r[c];
                }
                n += 1.0;
            }
        }
        let n = f64::max(n, 1.0);
        let std = (0..ch)
            .map(|c| {
                mean[c] /= n;
                (sq[c] / n - mean[c] * mean[c]).max(0.0).sqrt().max(1e-12)
            })
            .collect();
        (mean, std)
    }

    /// Each series with every channel standardised by the given moments, `[len, channels]`.
    pub fn standardised(&self, mean: &[f64], std: &[f64]) -> Vec<Vec<f64>> {
        let ch = self.channels;
        self.series
            .iter()
            .map(|(_, rows)| {
                rows.iter()
                    .enumerate()
                    .map(|(i, v)| (v - mean[i % ch]) / std[i % ch])
                    .collect()
            })
            .collect()
    }
}

/// Reads and parses a `.ts` file.
pub fn read_ts(path: &Path) -> Result<TsFile> {
    let body = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_ts(&body, &path.display().to_string())
}

/// Parses the text of a `.ts` file; `p` names it in error messages.
pub fn parse_ts(body: &str, p: &str) -> Result<TsFile> {
    let mut classes: Vec<String> = Vec::new();
    let mut in_data = false;
    let mut out = TsFile {
        series: Vec::new(),
        labels: Vec::new(),
        channels: 0,
        classes: Vec::new(),
    };
    for (i, raw) in body.lines().enumerate() {
        let line = raw.trim();
        let ln = i + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !in_data {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("@classlabel") {
                let mut parts = line.split_whitespace().skip(1);
                if parts.next().map(|t| t.eq_ignore_ascii_case("true")) == Some(true) {
                    classes = parts.map(String::from).collect();
                }
            } else if lower.starts_with("@data") {
                in_data = true;
            } else if !line.starts_with('@') {
                return Err(Error::InvalidData(format!(
                    "{p}:{ln}: expected a header line starting with @ before @data"
                )));
            }
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 2 {
            return Err(Error::InvalidData(format!(
                "{p}:{ln}: expected channels separated by ':' and a class label"
            )));
        }
        let Some((label, chans)) = fields.split_last() else {
            continue;
        };
        let label = label.trim().to_string();
        if !classes.is_empty() && !classes.contains(&label) {
            return Err(Error::InvalidData(format!(
                "{p}:{ln}: class label '{label}' is not declared in @classLabel"
            )));
        }
        if out.channels == 0 {
            out.channels = chans.len();
        } else if chans.len() != out.channels {
            return Err(Error::InvalidData(format!(
                "{p}:{ln}: {} channels, earlier lines have {}",
                chans.len(),
                out.channels
            )));
        }
        let mut cols: Vec<Vec<f64>> = Vec::with_capacity(chans.len());
        for (c, ch) in chans.iter().enumerate() {
            let vals: Vec<f64> = ch
                .split(',')
                .enumerate()
                .map(|(k, v)| {
                    let v = v.trim();
                    match v.parse::<f64>() {
                        Ok(x) if x.is_finite() => Ok(x),
                        _ => Err(Error::InvalidData(format!(
                            "{p}:{ln}: channel {}, value {}: '{v}' is not a finite number",
                            c + 1,
                            k + 1
                        ))),
                    }
                })
                .collect::<Result<_, _>>()?;
            cols.push(vals);
        }
        let len = cols[0].len();
        if cols.iter().any(|c| c.len() != len) {
            return Err(Error::InvalidData(format!(
                "{p}:{ln}: channels of different lengths in one series"
            )));
        }
        let mut rows = Vec::with_capacity(len * cols.len());
        for t in 0..len {
            for c in &cols {
                rows.push(c[t]);
            }
        }
        out.series.push((len, rows));
        out.labels.push(label);
    }
    if out.series.is_empty() {
        return Err(Error::InvalidData(format!("{p}: no series after @data")));
    }
    if classes.is_empty() {
        classes = out.labels.clone();
        classes.sort();
        classes.dedup();
    }
    out.classes = classes;
    Ok(out)
}
