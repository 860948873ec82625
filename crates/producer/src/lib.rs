//! Sources of frames, and the produce loop.
//!
//! Layout:
//! - [`scene`]: deterministic synthetic camera scenes with ground truth.
//! - [`source`]: where frames come from (`synthetic`, `dir`) as an iterator of envelopes.
//! - [`records`]: CSV / JSON-lines rows as `Record` envelopes (type inference, bad rows
//!   with line numbers).
//! - [`labels`]: `argus label` — ground truth from a CSV / JSON-lines file onto the labels
//!   topic.
//! - [`video`]: a video file, RTSP camera, MJPEG or snapshot URL decoded by an `ffmpeg`
//!   subprocess into JPEG frames (restarts with backoff, stream-clock capture times).
//! - [`metrics`]: the metric names it emits, described.
//! - [`produce`]: the paced, size-checked produce loop with progress, a summary and the
//!   outage policy (a bounded backlog that drops the oldest frames of a live source).
#![warn(missing_docs)]
pub mod labels;
pub mod metrics;
pub mod produce;
pub mod records;
pub mod scene;
pub mod source;
pub mod video;

pub use argus_wire::ColumnType;
pub use produce::{
    envelope_headers, run, Backlog, BadRows, LabelEmission, ProduceConfig, ProduceError,
    ProduceSummary, DEFAULT_BACKLOG_BYTES,
};
pub use records::{RecordFormat, RecordReader, RecordsSource};
pub use source::{Brighten, DirSource, Frame, Source, SyntheticSource};
pub use video::{Backoff, InputKind, RtspTransport, VideoFormat, VideoReader, VideoSource};
