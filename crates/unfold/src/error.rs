//! Typed errors returned by every fallible function of the library.
//!
//! The CLI adds context with `anyhow`; library code never panics on user input, it returns one of
//! these variants instead.

use thiserror::Error;

/// Everything that can go wrong in the library.
#[derive(Debug, Error)]
pub enum Error {
    /// A configuration value is out of its valid range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A buffer or tensor does not have the shape an operation needs.
    #[error("shape mismatch for {what}: expected {expected}, got {got}")]
    Shape {
        /// Which argument or tensor.
        what: String,
        /// The expected shape or length, as text.
        expected: String,
        /// The shape or length that was given.
        got: String,
    },
    /// An operation was called in an order the layer does not allow (e.g. backward before a
    /// training forward).
    #[error("invalid call: {0}")]
    InvalidCall(String),
    /// The loss or a gradient became NaN or infinite.
    #[error("non-finite {what} at step {step}")]
    NonFinite {
        /// The optimisation step (1-based) at which it happened.
        step: u64,
        /// What was not finite (`loss` or `gradient`).
        what: String,
    },
    /// Input data is malformed: unparsable, non-finite, too short or without variation.
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// A numerical method failed: a singular linear system, a series with no variance, an
    /// iteration that did not converge.
    #[error("numerical failure: {0}")]
    Numerical(String),
    /// A checkpoint's tensors do not match the model (names, shapes or dtypes).
    #[error("checkpoint does not match the model:\n{0}")]
    CheckpointMismatch(String),
    /// A safetensors file could not be parsed or written.
    #[error("safetensors: {0}")]
    SafeTensors(String),
    /// An I/O error with the path it concerned.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Returns a [`Error::Shape`] unless `got == expected`.
pub(crate) fn check_len(what: &str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Shape {
            what: what.to_string(),
            expected: expected.to_string(),
            got: got.to_string(),
        })
    }
}
