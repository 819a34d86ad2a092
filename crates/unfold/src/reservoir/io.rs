//! Checkpoints of echo state networks as safetensors files.
//!
//! Every weight is stored as it is used: a dense matrix as one `F64` tensor `[rows, cols]`, a
//! sparse one as three tensors `<name>.values` (`F64`), `<name>.indices` and `<name>.row_ptr`
//! (`I64`, CSR; PyTorch rebuilds it with `torch.sparse_csr_tensor`). The configuration goes into
//! the file's metadata under `unfold.esn.*`, so a file alone rebuilds the network exactly.

use super::esn::{Esn, EsnConfig, Pooling, ReadoutKind};
use super::layer::{Activation, Reservoir, ReservoirConfig};
use super::sparse::{Csr, WeightDist, Weights};
use crate::checkpoint::{RawTensor, TensorFile};
use crate::error::{Error, Result};
use safetensors::tensor::Dtype;
use std::collections::BTreeMap;

fn insert_i64(tf: &mut TensorFile, name: &str, data: &[i64]) {
    let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tf.tensors.insert(
        name.to_string(),
        RawTensor {
            dtype: Dtype::I64,
            shape: vec![data.len()],
            bytes,
        },
    );
}

fn get<'a>(tf: &'a TensorFile, name: &str) -> Result<&'a RawTensor> {
    tf.tensors
        .get(name)
        .ok_or_else(|| Error::CheckpointMismatch(format!("missing tensor {name}")))
}

fn get_i64(tf: &TensorFile, name: &str) -> Result<Vec<i64>> {
    let t = get(tf, name)?;
    if t.dtype != Dtype::I64 || t.bytes.len() != 8 * t.numel() {
        return Err(Error::CheckpointMismatch(format!(
            "{name} is not an I64 tensor"
        )));
    }
    Ok(t.bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

fn insert_weights(tf: &mut TensorFile, name: &str, w: &Weights) {
    match w {
        Weights::Dense { rows, cols, values } => tf.insert(name, &[*rows, *cols], values),
        Weights::Sparse(c) => {
            tf.insert(&format!("{name}.values"), &[c.values().len()], c.values());
            let idx: Vec<i64> = c.indices().iter().map(|&i| i as i64).collect();
            insert_i64(tf, &format!("{name}.indices"), &idx);
            let ptr: Vec<i64> = c.row_ptr().iter().map(|&i| i as i64).collect();
            insert_i64(tf, &format!("{name}.row_ptr"), &ptr);
            tf.metadata.insert(
                format!("{name}.shape"),
                format!("{},{}", c.rows(), c.cols()),
            );
        }
    }
}

fn load_weights(tf: &TensorFile, name: &str, rows: usize, cols: usize) -> Result<Weights> {
    if let Some(t) = tf.tensors.get(name) {
        if t.shape != [rows, cols] {
            return Err(Error::CheckpointMismatch(format!(
                "{name}: shape {:?}, expected [{rows}, {cols}]",
                t.shape
            )));
        }
        return Ok(Weights::Dense {
            rows,
            cols,
            values: t.to_vec()?,
        });
    }
    let values: Vec<f64> = get(tf, &format!("{name}.values"))?.to_vec()?;
    let indices = get_i64(tf, &format!("{name}.indices"))?;
    let row_ptr = get_i64(tf, &format!("{name}.row_ptr"))?;
    let bad = || {
        Error::CheckpointMismatch(format!(
            "{name}: inconsistent sparse matrix for shape [{rows}, {cols}]"
        ))
    };
    let to_index = |v: &i64| usize::try_from(*v).map_err(|_| bad());
    let row_ptr = row_ptr
        .iter()
        .map(to_index)
        .collect::<Result<Vec<usize>>>()?;
    let indices = indices
        .iter()
        .map(|v| u32::try_from(*v).map_err(|_| bad()))
        .collect::<Result<Vec<u32>>>()?;
    Ok(Weights::Sparse(
        Csr::new(rows, cols, row_ptr, indices, values).map_err(|_| bad())?,
    ))
}

fn kind_name(k: ReadoutKind) -> String {
    match k {
        ReadoutKind::PerStep => "per-step".into(),
        ReadoutKind::Pooled(p) => format!("pooled:{}", p.name()),
    }
}

impl Esn {
    /// The network as a tensor file (weights plus configuration metadata).
    pub fn to_tensor_file(&self) -> TensorFile {
        let mut tf = TensorFile::new();
        let c = &self.config;
        let r = &c.reservoir;
        let m: &mut BTreeMap<String, String> = &mut tf.metadata;
        let mut put = |k: &str, v: String| {
            m.insert(format!("unfold.esn.{k}"), v);
        };
        put("format", "1".into());
        put("inputs", self.inputs.to_string());
        put("outputs", self.outputs.to_string());
        put("kind", kind_name(self.kind));
        put("ridge", format!("{:e}", self.ridge));
        put("layers", c.layers.to_string());
        put("washout", c.washout.to_string());
        put("readout_bias", c.readout_bias.to_string());
        put("readout_input", c.readout_input.to_string());
        put(
            "ridge_candidates",
            c.ridge
                .iter()
                .map(|v| format!("{v:e}"))
                .collect::<Vec<_>>()
                .join(","),
        );
        put("valid_fraction", c.valid_fraction.to_string());
        put("seed", c.seed.to_string());
        put("units", r.units.to_string());
        put("spectral_radius", r.spectral_radius.to_string());
        put("connectivity", r.connectivity.to_string());
        put("weight_dist", r.weight_dist.name().into());
        put("input_scaling", r.input_scaling.to_string());
        put("input_connectivity", r.input_connectivity.to_string());
        put("input_dist", r.input_dist.name().into());
        put("bias_scaling", r.bias_scaling.to_string());
        put("leak_rate", r.leak_rate.to_string());
        put("activation", r.activation.name().into());
        put("feedback_scaling", r.feedback_scaling.to_string());
        put("noise", r.noise.to_string());
        for (l, layer) in self.layers.iter().enumerate() {
            put(
                &format!("layer{l}.raw_radius"),
                layer.raw_radius.to_string(),
            );
        }
        for (l, layer) in self.layers.iter().enumerate() {
            insert_weights(&mut tf, &format!("layers.{l}.w"), &layer.w);
            insert_weights(&mut tf, &format!("layers.{l}.w_in"), &layer.w_in);
            if let Some(fb) = &layer.w_fb {
                insert_weights(&mut tf, &format!("layers.{l}.w_fb"), fb);
            }
            if !layer.bias.is_empty() {
                tf.insert(
                    &format!("layers.{l}.bias"),
                    &[layer.bias.len()],
                    &layer.bias,
                );
            }
        }
        tf.insert(
            "readout.weight",
            &[self.outputs, self.features()],
            &self.readout,
        );
        tf
    }

    /// Writes the network atomically to a safetensors file.
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        self.to_tensor_file().write(path)
    }

    /// Reads a network written by [`Esn::save`].
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        Self::from_tensor_file(&TensorFile::read(path)?)
    }

    /// Rebuilds a network from [`Esn::to_tensor_file`]'s output.
    pub fn from_tensor_file(tf: &TensorFile) -> Result<Self> {
        let meta = |k: &str| -> Result<&str> {
            tf.metadata
                .get(&format!("unfold.esn.{k}"))
                .map(|s| s.as_str())
                .ok_or_else(|| {
                    Error::CheckpointMismatch(format!(
                        "metadata unfold.esn.{k} missing (not an ESN checkpoint?)"
                    ))
                })
        };
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T> {
            v.parse()
                .map_err(|_| Error::CheckpointMismatch(format!("unfold.esn.{k}: bad value {v:?}")))
        }
        let f = |k: &str| -> Result<f64> { num(k, meta(k)?) };
        let u = |k: &str| -> Result<usize> { num(k, meta(k)?) };
        let b = |k: &str| -> Result<bool> { num(k, meta(k)?) };
        let reservoir = ReservoirConfig {
            units: u("units")?,
            spectral_radius: f("spectral_radius")?,
            connectivity: f("connectivity")?,
            weight_dist: WeightDist::parse(meta("weight_dist")?)?,
            input_scaling: f("input_scaling")?,
            input_connectivity: f("input_connectivity")?,
            input_dist: WeightDist::parse(meta("input_dist")?)?,
            bias_scaling: f("bias_scaling")?,
            leak_rate: f("leak_rate")?,
            activation: Activation::parse(meta("activation")?)?,
            feedback_scaling: f("feedback_scaling")?,
            noise: f("noise")?,
        };
        reservoir.validate()?;
        let ridge = meta("ridge_candidates")?
            .split(',')
            .map(|s| num::<f64>("ridge_candidates", s))
            .collect::<Result<Vec<_>>>()?;
        let config = EsnConfig {
            reservoir,
            layers: u("layers")?,
            washout: u("washout")?,
            readout_bias: b("readout_bias")?,
            readout_input: b("readout_input")?,
            ridge,
            valid_fraction: f("valid_fraction")?,
            seed: num("seed", meta("seed")?)?,
        };
        let kind = match meta("kind")? {
            "per-step" => ReadoutKind::PerStep,
            k => match k.strip_prefix("pooled:") {
                Some(p) => ReadoutKind::Pooled(Pooling::parse(p)?),
                None => return Err(Error::CheckpointMismatch(format!("unknown ESN kind {k:?}"))),
            },
        };
        let (inputs, outputs) = (u("inputs")?, u("outputs")?);
        let n = config.reservoir.units;
        let mut layers = Vec::new();
        for l in 0..config.layers {
            let d = if l == 0 { inputs } else { n };
            let w = load_weights(tf, &format!("layers.{l}.w"), n, n)?;
            let w_in = load_weights(tf, &format!("layers.{l}.w_in"), n, d)?;
            let fb_name = format!("layers.{l}.w_fb");
            let has_fb = tf.tensors.contains_key(&fb_name)
                || tf.tensors.contains_key(&format!("{fb_name}.values"));
            let w_fb = if has_fb {
                Some(load_weights(tf, &fb_name, n, outputs)?)
            } else {
                None
            };
            let bias: Vec<f64> = match tf.tensors.get(&format!("layers.{l}.bias")) {
                Some(t) if t.numel() == n => t.to_vec()?,
                Some(_) => {
                    return Err(Error::CheckpointMismatch(format!(
                        "layers.{l}.bias: wrong size"
                    )))
                }
                None => Vec::new(),
            };
            layers.push(Reservoir {
                config: config.reservoir.clone(),
                w_in,
                bias,
                w,
                w_fb,
                raw_radius: f(&format!("layer{l}.raw_radius"))?,
            });
        }
        let mut esn = Esn {
            config,
            inputs,
            outputs,
            kind,
            layers,
            readout: Vec::new(),
            ridge: f("ridge")?,
        };
        let rt = get(tf, "readout.weight")?;
        if rt.shape != [outputs, esn.features()] {
            return Err(Error::CheckpointMismatch(format!(
                "readout.weight: shape {:?}, expected [{outputs}, {}]",
                rt.shape,
                esn.features()
            )));
        }
        esn.readout = rt.to_vec()?;
        Ok(esn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reservoir::{EsnConfig, ReadoutKind, ReservoirConfig};

    /// A checkpoint whose sparse reservoir has an index past its columns, a negative index, or
    /// offsets that go backwards is a clear error, never a matrix the product would read out
    /// of bounds.
    #[test]
    fn corrupt_sparse_weights_are_a_clear_error() {
        let cfg = EsnConfig {
            reservoir: ReservoirConfig {
                units: 300,
                connectivity: 0.02,
                ..Default::default()
            },
            ..Default::default()
        };
        let esn = Esn::new(cfg, 1, 1, ReadoutKind::PerStep).unwrap();
        let tf = esn.to_tensor_file();
        assert!(Esn::from_tensor_file(&tf).is_ok());
        let key = |suffix: &str| {
            tf.tensors
                .keys()
                .find(|k| k.ends_with(suffix))
                .cloned()
                .unwrap()
        };
        let (ik, pk) = (key(".indices"), key(".row_ptr"));
        let (idx, ptr) = (get_i64(&tf, &ik).unwrap(), get_i64(&tf, &pk).unwrap());
        let mut cases = Vec::new();
        for bad in [300, -1] {
            let mut t = tf.clone();
            let mut v = idx.clone();
            v[3] = bad;
            insert_i64(&mut t, &ik, &v);
            cases.push(t);
        }
        let mut t = tf.clone();
        let mut v = ptr.clone();
        v[5] = v[6] + 1;
        insert_i64(&mut t, &pk, &v);
        cases.push(t);
        for t in cases {
            let err = Esn::from_tensor_file(&t).unwrap_err().to_string();
            assert!(err.contains("inconsistent sparse matrix"), "{err}");
        }
    }
}
