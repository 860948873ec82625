//! The produce loop: paces frames to a rate, refuses frames over the message size limit,
//! sends with key = camera id and the envelope headers, logs progress and returns a summary.
use crate::records::RecordReader;
use crate::source::{DirSource, Frame, Source, SyntheticSource};
use argus_kafka::rdkafka::message::{Header, OwnedHeaders};
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use argus_kafka::rdkafka::util::Timeout;
use argus_wire::{encode_envelope, headers as h, now_us, ENVELOPE_SCHEMA};
use futures::stream::{FuturesUnordered, StreamExt};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Bytes a record needs beyond key and value (record header, envelope headers); kept
/// conservative so a frame we accept is never refused by the broker.
const RECORD_OVERHEAD: usize = 512;

/// Produce loop settings.
#[derive(Debug, Clone)]
pub struct ProduceConfig {
    /// Topic to produce to.
    pub topic: String,
    /// Overall messages per second at most (on top of the source's own fps).
    pub rate_limit: Option<f64>,
    /// Stop after this many frames.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// The broker's/producer's `message.max.bytes`; larger frames are refused.
    pub max_message_bytes: usize,
    /// Deliveries awaited at once.
    pub max_outstanding: usize,
    /// How often to log a progress line.
    pub progress_every: Duration,
    /// Records: what a bad row (line reported either way) does to the run.
    pub bad_rows: BadRows,
    /// Synthetic cameras spread over this many partitions (camera `i` → partition
    /// `i mod n`) instead of by key hash: with a handful of cameras the hash can put all
    /// of them on one worker's partitions (the demo's four did). A camera still has one
    /// partition, so its frames stay in order.
    pub spread_cameras: Option<i32>,
}

/// What a bad input row does: skipped (reported, counted) or the end of the run (reported,
/// an error after the rows before it were delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadRows {
    /// Report it and go on with the next row (the default).
    #[default]
    Skip,
    /// Report it and end the run with an error.
    Fail,
}

impl ProduceConfig {
    /// Defaults: no limits, 1,000,000-byte messages (librdkafka's default).
    pub fn new(topic: impl Into<String>) -> Self {
        ProduceConfig {
            topic: topic.into(),
            rate_limit: None,
            count: None,
            duration: None,
            max_message_bytes: 1_000_000,
            max_outstanding: 1000,
            progress_every: Duration::from_secs(5),
            bad_rows: BadRows::Skip,
            spread_cameras: None,
        }
    }
}

/// The partition `spread` puts a frame keyed `cam-<i>` on, if any.
fn spread_partition(key: &str, spread: Option<i32>) -> Option<i32> {
    let n = spread.filter(|n| *n > 0)?;
    let camera: i64 = key.strip_prefix("cam-")?.parse().ok()?;
    i32::try_from(camera.rem_euclid(i64::from(n))).ok()
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProduceSummary {
    /// Frames acknowledged by the broker.
    pub sent: u64,
    /// Frames the broker did not acknowledge.
    pub failed: u64,
    /// Frames refused before sending (over the size limit, unreadable file).
    pub refused: u64,
    /// Input rows that could not be read as records (records source), each reported.
    pub bad_rows: u64,
    /// The first few bad rows' line numbers.
    pub bad_lines: Vec<u64>,
    /// Value bytes acknowledged.
    pub bytes: u64,
    /// Frames known to show a person (synthetic source).
    pub with_person: u64,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
}

impl ProduceSummary {
    /// Acknowledged frames per second.
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for ProduceSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} inputs ({:.1} MB) in {:.1}s = {:.1}/s; failed {}, refused {}",
            self.sent,
            self.bytes as f64 / 1e6,
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.failed,
            self.refused
        )?;
        if self.bad_rows > 0 {
            let lines: Vec<String> = self.bad_lines.iter().map(u64::to_string).collect();
            write!(
                f,
                "; {} bad rows skipped (lines {}{})",
                self.bad_rows,
                lines.join(", "),
                if self.bad_rows > self.bad_lines.len() as u64 {
                    ", …"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}

/// Errors that stop the produce loop.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The source could not be opened or read.
    #[error("{0}")]
    Source(String),
    /// A frame is larger than the message size limit.
    #[error("frame of {bytes} bytes from {key} exceeds the message size limit of {limit} bytes (message.max.bytes); lower the resolution or JPEG quality, or raise message.max.bytes on the broker, topic and producer")]
    Oversize {
        /// The frame's key (camera or entity id).
        key: String,
        /// Its encoded size.
        bytes: usize,
        /// The limit, `max_message_bytes`.
        limit: usize,
    },
    /// A bad row, with `--on-bad-row fail`.
    #[error("{0} (the run stops at a bad row with --on-bad-row fail; rows before it were sent)")]
    BadRow(crate::records::BadRow),
}

/// Produces frames from `source` until it ends, `count`/`duration` is reached, or
/// `shutdown`; waits for every outstanding delivery before returning.
pub async fn run(
    source: Source,
    config: ProduceConfig,
    producer: FutureProducer,
    shutdown: CancellationToken,
) -> Result<ProduceSummary, ProduceError> {
    let source_fps = match &source {
        Source::Synthetic(s) => s.total_fps(),
        Source::Dir(d) => d.fps,
        Source::Records(_) => f64::INFINITY,
    };
    let rate = match config.rate_limit {
        Some(r) if r > 0.0 => source_fps.min(r),
        _ => source_fps,
    };
    let interval = (rate > 0.0 && rate.is_finite()).then(|| Duration::from_secs_f64(1.0 / rate));
    let dir_files = match &source {
        Source::Dir(d) => d.files().map_err(ProduceError::Source)?,
        Source::Synthetic(_) | Source::Records(_) => Vec::new(),
    };
    let mut rows = match &source {
        Source::Records(r) => Some(RecordReader::open(r).map_err(ProduceError::Source)?),
        _ => None,
    };
    if let Some(r) = &rows {
        let columns: Vec<String> = r
            .column_types()
            .iter()
            .map(|(c, t)| format!("{c}:{}", t.as_str()))
            .collect();
        tracing::info!(columns = %columns.join(","), "reading records");
    }
    let start = Instant::now();
    let tstart = tokio::time::Instant::now();
    let mut summary = ProduceSummary::default();
    let mut outstanding = FuturesUnordered::new();
    let mut last_progress = Instant::now();
    let mut i: u64 = 0;
    loop {
        if config.count.is_some_and(|c| i >= c)
            || config.duration.is_some_and(|d| start.elapsed() >= d)
            || shutdown.is_cancelled()
        {
            break;
        }
        if let Some(iv) = interval {
            let due = tstart + iv.mul_f64(i as f64);
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        let next = match rows.as_mut() {
            Some(reader) => match reader.next_row() {
                None => Ok(None),
                Some(Ok(row)) => Ok(Some(Frame {
                    key: row.key.clone(),
                    envelope: row.envelope(i, now_us()),
                    has_person: None,
                })),
                Some(Err(bad)) => {
                    tracing::error!(line = bad.line, error = %bad, "bad row");
                    metrics::counter!(crate::metrics::BAD_ROWS).increment(1);
                    summary.bad_rows += 1;
                    if summary.bad_lines.len() < 20 {
                        summary.bad_lines.push(bad.line);
                    }
                    if config.bad_rows == BadRows::Fail {
                        while let Some(r) = outstanding.next().await {
                            account(&mut summary, r);
                        }
                        let _ = producer.flush(Duration::from_secs(10));
                        return Err(ProduceError::BadRow(bad));
                    }
                    continue;
                }
            },
            None => next_frame(&source, &dir_files, i).await,
        };
        let frame = match next {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::error!(error = %e, "frame skipped");
                summary.refused += 1;
                i += 1;
                continue;
            }
        };
        i += 1;
        let value = match encode_envelope(&frame.envelope) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(key = %frame.key, error = %e, "frame refused");
                summary.refused += 1;
                continue;
            }
        };
        if value.len() + frame.key.len() + RECORD_OVERHEAD > config.max_message_bytes {
            let e = ProduceError::Oversize {
                key: frame.key.clone(),
                bytes: value.len(),
                limit: config.max_message_bytes,
            };
            tracing::error!(error = %e, "frame refused");
            summary.refused += 1;
            continue;
        }
        if frame.has_person == Some(true) {
            summary.with_person += 1;
        }
        while outstanding.len() >= config.max_outstanding {
            if let Some(r) = outstanding.next().await {
                account(&mut summary, r);
            }
        }
        let partition = spread_partition(&frame.key, config.spread_cameras);
        outstanding.push(send(
            producer.clone(),
            config.topic.clone(),
            frame,
            value,
            partition,
        ));
        while let Some(Some(r)) = futures::FutureExt::now_or_never(outstanding.next()) {
            account(&mut summary, r);
        }
        if last_progress.elapsed() >= config.progress_every {
            last_progress = Instant::now();
            tracing::info!(
                sent = summary.sent,
                failed = summary.failed,
                refused = summary.refused,
                mb = summary.bytes as f64 / 1e6,
                rate = format!("{:.1}", summary.sent as f64 / start.elapsed().as_secs_f64()),
                "producing"
            );
        }
    }
    while let Some(r) = outstanding.next().await {
        account(&mut summary, r);
    }
    if let Err(e) = producer.flush(Duration::from_secs(10)) {
        tracing::warn!(error = %e, "producer flush failed");
    }
    summary.elapsed = start.elapsed();
    Ok(summary)
}

fn account(summary: &mut ProduceSummary, r: Result<usize, String>) {
    match r {
        Ok(bytes) => {
            summary.sent += 1;
            summary.bytes += bytes as u64;
            metrics::counter!(crate::metrics::FRAMES, "outcome" => "ok").increment(1);
        }
        Err(e) => {
            summary.failed += 1;
            metrics::counter!(crate::metrics::FRAMES, "outcome" => "error").increment(1);
            tracing::warn!(error = %e, "frame not delivered");
        }
    }
}

async fn next_frame(
    source: &Source,
    dir_files: &[(std::path::PathBuf, argus_wire::ImageFormat)],
    i: u64,
) -> Result<Option<Frame>, String> {
    match source {
        Source::Synthetic(s) => synthetic_frame(s.clone(), i).await.map(Some),
        Source::Dir(d) => dir_frame(d, dir_files, i),
        Source::Records(_) => Ok(None),
    }
}

async fn synthetic_frame(s: SyntheticSource, i: u64) -> Result<Frame, String> {
    tokio::task::spawn_blocking(move || s.frame(i, now_us()))
        .await
        .map_err(|e| format!("render task failed: {e}"))?
        .map_err(|e| format!("JPEG encoding failed: {e}"))
}

fn dir_frame(
    d: &DirSource,
    files: &[(std::path::PathBuf, argus_wire::ImageFormat)],
    i: u64,
) -> Result<Option<Frame>, String> {
    let n = files.len() as u64;
    if n == 0 || (!d.looped && i >= n) {
        return Ok(None);
    }
    let Some((path, format)) = usize::try_from(i % n).ok().and_then(|k| files.get(k)) else {
        return Ok(None);
    };
    d.frame(path, *format, i, now_us())
        .map(Some)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The headers every envelope travels with (schema, content type, capture time), so tools
/// that cannot read bincode can still route and measure.
pub fn envelope_headers(payload: &argus_wire::Payload, capture_time_us: i64) -> OwnedHeaders {
    let capture = capture_time_us.to_string();
    OwnedHeaders::new()
        .insert(Header {
            key: h::SCHEMA,
            value: Some(ENVELOPE_SCHEMA),
        })
        .insert(Header {
            key: h::CONTENT_TYPE,
            value: Some(payload.content_type()),
        })
        .insert(Header {
            key: h::CAPTURE_TIME_US,
            value: Some(&capture),
        })
}

async fn send(
    producer: FutureProducer,
    topic: String,
    frame: Frame,
    value: Vec<u8>,
    partition: Option<i32>,
) -> Result<usize, String> {
    let headers = envelope_headers(&frame.envelope.payload, frame.envelope.capture_time_us);
    let mut record = FutureRecord::to(&topic)
        .key(&frame.key)
        .payload(&value)
        .headers(headers);
    if let Some(p) = partition {
        record = record.partition(p);
    }
    producer
        .send(record, Timeout::After(Duration::from_secs(30)))
        .await
        .map(|_| value.len())
        .map_err(|(e, _)| format!("{topic}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_puts_camera_i_on_partition_i_mod_n() {
        let on = |key: &str| spread_partition(key, Some(8));
        assert_eq!(
            ["cam-0", "cam-1", "cam-2", "cam-3", "cam-9"].map(on),
            [Some(0), Some(1), Some(2), Some(3), Some(1)]
        );
        // Other keys, or no spread: the key hash decides.
        assert_eq!(on("door"), None);
        assert_eq!(spread_partition("cam-1", None), None);
        assert_eq!(spread_partition("cam-1", Some(0)), None);
    }
}
