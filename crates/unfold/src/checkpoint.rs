//! Checkpoints as safetensors files with PyTorch's names, so a `state_dict` saved by
//! `safetensors.torch.save_file` loads here and a file written here loads into PyTorch with
//! `load_state_dict(..., strict=True)`.
//!
//! A [`TensorFile`] is an ordered map of named tensors plus string metadata (configs and
//! vocabularies go there). Loading into a module is strict: missing keys, unexpected keys under
//! the module's prefix and shape mismatches are all reported together in one error. Files are
//! written atomically: to a temporary file beside the target, synced, then renamed.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::layers::Parameters;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

/// One tensor as stored: dtype, shape and little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    /// Element type (F32, F64, F16 and BF16 convert on load).
    pub dtype: Dtype,
    /// Shape, row-major.
    pub shape: Vec<usize>,
    /// Little-endian element bytes.
    pub bytes: Vec<u8>,
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if mant == 0 {
            sign
        } else {
            // Subnormal: value = mant * 2^-24.
            let v = mant as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
    } else if exp == 31 {
        sign | 0x7f80_0000 | (mant << 13)
    } else {
        sign | ((exp + 112) << 23) | (mant << 13)
    };
    f32::from_bits(bits)
}

impl RawTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Converts the elements to `T` into `dst` (which must have `numel` elements).
    pub fn copy_into<T: Float>(&self, dst: &mut [T]) -> Result<()> {
        let n = self.numel();
        if dst.len() != n {
            return Err(Error::Shape {
                what: "tensor".into(),
                expected: dst.len().to_string(),
                got: n.to_string(),
            });
        }
        let b = &self.bytes;
        let get = |i: usize, w: usize| &b[i * w..(i + 1) * w];
        match self.dtype {
            Dtype::F32 => {
                for (i, d) in dst.iter_mut().enumerate() {
                    let v = f32::from_le_bytes(get(i, 4).try_into().unwrap());
                    *d = T::from_f64(v as f64);
                }
            }
            Dtype::F64 => {
                for (i, d) in dst.iter_mut().enumerate() {
                    *d = T::from_f64(f64::from_le_bytes(get(i, 8).try_into().unwrap()));
                }
            }
            Dtype::BF16 => {
                for (i, d) in dst.iter_mut().enumerate() {
                    let h = u16::from_le_bytes(get(i, 2).try_into().unwrap());
                    *d = T::from_f64(f32::from_bits((h as u32) << 16) as f64);
                }
            }
            Dtype::F16 => {
                for (i, d) in dst.iter_mut().enumerate() {
                    let h = u16::from_le_bytes(get(i, 2).try_into().unwrap());
                    *d = T::from_f64(f16_to_f32(h) as f64);
                }
            }
            other => {
                return Err(Error::SafeTensors(format!(
                    "unsupported dtype {other:?} (expected F32, F64, F16 or BF16)"
                )))
            }
        }
        Ok(())
    }

    /// The elements converted to `T`.
    pub fn to_vec<T: Float>(&self) -> Result<Vec<T>> {
        let mut v = vec![T::ZERO; self.numel()];
        self.copy_into(&mut v)?;
        Ok(v)
    }
}

/// An ordered set of named tensors with string metadata: the contents of one safetensors file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TensorFile {
    /// Tensors by name.
    pub tensors: BTreeMap<String, RawTensor>,
    /// The file's `__metadata__` (string to string).
    pub metadata: BTreeMap<String, String>,
}

impl TensorFile {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses safetensors bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::SafeTensors(e.to_string()))?;
        let (_, meta) =
            SafeTensors::read_metadata(bytes).map_err(|e| Error::SafeTensors(e.to_string()))?;
        let mut f = TensorFile::new();
        for (name, view) in st.tensors() {
            f.tensors.insert(
                name,
                RawTensor {
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    bytes: view.data().to_vec(),
                },
            );
        }
        if let Some(m) = meta.metadata() {
            f.metadata = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
        Ok(f)
    }

    /// Reads a safetensors file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            Error::SafeTensors(m) => Error::SafeTensors(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Adds (or replaces) a tensor stored in `T`'s own dtype.
    pub fn insert<T: Float>(&mut self, name: &str, shape: &[usize], data: &[T]) {
        let mut bytes = Vec::with_capacity(std::mem::size_of_val(data));
        for &v in data {
            v.write_le(&mut bytes);
        }
        let dtype = if T::DTYPE == "F64" {
            Dtype::F64
        } else {
            Dtype::F32
        };
        self.tensors.insert(
            name.to_string(),
            RawTensor {
                dtype,
                shape: shape.to_vec(),
                bytes,
            },
        );
    }

    /// Adds every parameter of a module under `prefix` (e.g. `"rnn."`, or `""`).
    pub fn insert_params<T: Float, M: Parameters<T> + ?Sized>(&mut self, prefix: &str, m: &M) {
        for (spec, data) in m.param_specs().iter().zip(m.param_slices()) {
            self.insert(&format!("{prefix}{}", spec.name), &spec.shape, data);
        }
    }

    /// Loads a module's parameters from the tensors named `prefix + name`, strictly: every
    /// parameter must be present with its exact shape, and no other tensor may start with
    /// `prefix` (tensors outside the prefix are ignored, so one file can hold several modules).
    /// On any mismatch nothing is changed and the error lists every offending key.
    pub fn load_params<T: Float, M: Parameters<T> + ?Sized>(
        &self,
        prefix: &str,
        m: &mut M,
    ) -> Result<()> {
        let specs = m.param_specs();
        let mut problems = Vec::new();
        for s in &specs {
            let key = format!("{prefix}{}", s.name);
            match self.tensors.get(&key) {
                None => problems.push(format!("missing key {key} (shape {:?})", s.shape)),
                Some(t) if t.shape != s.shape => problems.push(format!(
                    "shape mismatch for {key}: file has {:?}, model expects {:?}",
                    t.shape, s.shape
                )),
                Some(t) => {
                    if !matches!(t.dtype, Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16) {
                        problems.push(format!("unsupported dtype {:?} for {key}", t.dtype));
                    }
                }
            }
        }
        let known: std::collections::HashSet<String> = specs
            .iter()
            .map(|s| format!("{prefix}{}", s.name))
            .collect();
        for k in self.tensors.keys() {
            if k.starts_with(prefix) && !known.contains(k) {
                problems.push(format!("unexpected key {k}"));
            }
        }
        if !problems.is_empty() {
            return Err(Error::CheckpointMismatch(problems.join("\n")));
        }
        for (s, dst) in specs.iter().zip(m.param_slices_mut()) {
            self.tensors[&format!("{prefix}{}", s.name)].copy_into(dst)?;
        }
        Ok(())
    }

    /// Serialises to safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut views = Vec::with_capacity(self.tensors.len());
        for (k, t) in &self.tensors {
            let v = TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map_err(|e| Error::SafeTensors(format!("{k}: {e}")))?;
            views.push((k.clone(), v));
        }
        let meta: Option<HashMap<String, String>> = if self.metadata.is_empty() {
            None
        } else {
            Some(self.metadata.clone().into_iter().collect())
        };
        safetensors::serialize(views, &meta).map_err(|e| Error::SafeTensors(e.to_string()))
    }

    /// Writes the file atomically: a temporary file in the same folder, synced, then renamed
    /// over `path`, so a crash leaves either the old file or the new one, never half of one.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = self.to_bytes()?;
        write_atomic(path.as_ref(), &bytes)
    }
}

/// Writes `bytes` to `path` atomically (temporary file + fsync + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{CellKind, Recurrent, RecurrentConfig};

    #[test]
    fn roundtrip_and_strict_errors() {
        let cfg = RecurrentConfig::new(CellKind::Lstm, 3, 4).bidirectional(true);
        let a = Recurrent::<f32>::new(cfg.clone(), 1).unwrap();
        let mut f = TensorFile::new();
        f.insert_params("rnn.", &a);
        f.metadata.insert("kind".into(), "lstm".into());
        let g = TensorFile::from_bytes(&f.to_bytes().unwrap()).unwrap();
        assert_eq!(g, f);
        let mut b = Recurrent::<f32>::new(cfg.clone(), 2).unwrap();
        g.load_params("rnn.", &mut b).unwrap();
        assert_eq!(a, b);
        // f64 copy of the same parameters, loaded into f32.
        let mut f64file = TensorFile::new();
        let a64 = Recurrent::<f64>::new(cfg.clone(), 1).unwrap();
        f64file.insert_params("", &a64);
        let mut c = Recurrent::<f32>::new(cfg.clone(), 3).unwrap();
        f64file.load_params("", &mut c).unwrap();
        // Wrong prefix: every key missing and every file key unexpected, all listed.
        let mut d = Recurrent::<f32>::new(cfg, 3).unwrap();
        let before = d.clone();
        let err = g.load_params("", &mut d).unwrap_err().to_string();
        assert!(err.contains("missing key weight_ih_l0"), "{err}");
        assert!(err.contains("unexpected key rnn.weight_ih_l0"), "{err}");
        assert_eq!(d, before, "a failed load changes nothing");
        // Shape mismatch.
        let mut e = Recurrent::<f32>::new(
            RecurrentConfig::new(CellKind::Lstm, 5, 4).bidirectional(true),
            1,
        )
        .unwrap();
        let err = g.load_params("rnn.", &mut e).unwrap_err().to_string();
        assert!(
            err.contains(
                "shape mismatch for rnn.weight_ih_l0: file has [16, 3], model expects [16, 5]"
            ),
            "{err}"
        );
        assert!(TensorFile::from_bytes(b"garbage").is_err());
    }

    #[test]
    fn half_precision_conversions() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn atomic_write_replaces_file() {
        let dir = std::env::temp_dir().join(format!("unfold-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("m.safetensors");
        let mut f = TensorFile::new();
        f.insert::<f32>("w", &[2], &[1.0, 2.0]);
        f.write(&p).unwrap();
        f.insert::<f32>("w", &[1], &[3.0]);
        f.write(&p).unwrap();
        let g = TensorFile::read(&p).unwrap();
        assert_eq!(g.tensors["w"].to_vec::<f32>().unwrap(), vec![3.0]);
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
        assert!(TensorFile::read(dir.join("absent")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
