//! The harnesses' one error type: bad options (the binary exits 64) or a failed run.
use std::error::Error as StdError;

/// Why a benchmark run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options do not make a run (the binary exits 64), e.g. `--frames 0` or a model
    /// bundle that does not load.
    #[error("{0}")]
    Usage(String),
    /// The run failed (broker, worker, sidecar, file, or a stage that did not finish).
    #[error(transparent)]
    Runtime(Box<dyn StdError + Send + Sync>),
}

impl BenchError {
    /// A failed run from any error or message.
    pub fn runtime(e: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        BenchError::Runtime(e.into())
    }
}

/// `BenchError::runtime`, short for `map_err`.
pub(crate) fn runtime(e: impl Into<Box<dyn StdError + Send + Sync>>) -> BenchError {
    BenchError::runtime(e)
}

/// An options error.
pub(crate) fn usage(m: impl Into<String>) -> BenchError {
    BenchError::Usage(m.into())
}
