//! Sources of frames, and the produce loop.
//!
//! Layout:
//! - [`scene`]: deterministic synthetic camera scenes with ground truth.
//! - [`source`]: where frames come from (`synthetic`, `dir`) as an iterator of envelopes.
//! - [`produce`]: the paced, size-checked produce loop with progress and a summary.
pub mod produce;
pub mod scene;
pub mod source;

pub use produce::{run, ProduceConfig, ProduceError, ProduceSummary};
pub use source::{Brighten, DirSource, Frame, Source, SyntheticSource};
