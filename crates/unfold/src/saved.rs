//! One call that loads any model unfold saves, from the file alone: a model trained by
//! back-propagation (a checkpoint with a [`crate::models::ModelSpec`], e.g. a run directory's
//! `checkpoint.safetensors`, see [`crate::models::spec`]) or an echo state network (the file
//! [`Esn::save`] writes, e.g. `unfold esn`'s `esn.safetensors`).
//!
//! ```no_run
//! # fn main() -> unfold::Result<()> {
//! match unfold::saved::load::<f32>("runs/esn/esn.safetensors")? {
//!     unfold::saved::Saved::Model(m) => println!("{:?}", m.spec.shape()),
//!     unfold::saved::Saved::Esn { esn, .. } => println!("{} reservoir units", esn.config.reservoir.units),
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use crate::checkpoint::TensorFile;
use crate::data::Scaler;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::models::spec::{scaler_from_metadata, SPEC_KEY};
use crate::models::SavedModel;
use crate::reservoir::Esn;

/// Metadata keys of an echo state network's file start with this.
pub const ESN_PREFIX: &str = "unfold.esn.";

/// A saved model of any kind.
#[derive(Debug, Clone)]
pub enum Saved<T> {
    /// A model trained by back-propagation, with its vocabularies and input scaling.
    Model(Box<SavedModel<T>>),
    /// An echo state network (its readout fitted in closed form).
    Esn {
        /// The network, exactly as saved.
        esn: Box<Esn>,
        /// The input scaling, where the writer stored one (`unfold forecast` does).
        scaler: Option<Scaler>,
        /// All of the file's metadata (the network's own and anything the writer added).
        metadata: BTreeMap<String, String>,
    },
}

/// Loads any model unfold saves from `path`; a file that holds neither kind is a clear error
/// that names it.
pub fn load<T: Float>(path: impl AsRef<Path>) -> Result<Saved<T>> {
    let path = path.as_ref();
    let named = |e: Error| match e {
        Error::CheckpointMismatch(m) => {
            Error::CheckpointMismatch(format!("{}: {m}", path.display()))
        }
        other => other,
    };
    let file = TensorFile::read(path)?;
    from_file(&file).map_err(named)
}

/// [`load`] on a file already read.
pub fn from_file<T: Float>(file: &TensorFile) -> Result<Saved<T>> {
    let esn = file.metadata.keys().any(|k| k.starts_with(ESN_PREFIX));
    if esn && !file.metadata.contains_key(SPEC_KEY) {
        return Ok(Saved::Esn {
            esn: Box::new(Esn::from_tensor_file(file)?),
            scaler: scaler_from_metadata(&file.metadata)?,
            metadata: file.metadata.clone(),
        });
    }
    Ok(Saved::Model(Box::new(SavedModel::from_file(file)?)))
}
