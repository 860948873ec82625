//! The produce loop: paces frames to a rate, refuses frames over the message size limit,
//! sends with key = camera id and the envelope headers, logs progress and returns a summary.
//!
//! Outage policy (a broker away, a slow cluster): a live source (synthetic cameras, a
//! folder replayed at `--fps`, a video stream or a video file read in real time) never
//! stops to wait. At most `max_outstanding` frames are in the producer at once; the frames
//! behind them wait in a [`Backlog`] of at most `backlog_bytes`, and when it is full the
//! *oldest* waiting frame is dropped (counted, `reason="backlog_full"`) — for a camera the
//! newest frames matter. A frame the producer could not deliver within
//! `message.timeout.ms` is dropped too (`reason="expired"`). The run goes on and delivers
//! what it holds once the broker is back. A records source (a file, stdin) never drops a
//! row: it waits for room instead — as does a video file decoded as fast as ffmpeg goes —
//! and a row the broker has not taken within `message.timeout.ms` is a failure (the run
//! exits 1). Errors a retry cannot fix (authorization, a record too large for the topic)
//! are failures, not drops.
//!
//! Pacing: synthetic cameras and folders are sent at their `fps`; a video source paces
//! itself (ffmpeg delivers frames at the stream's rate); `rate_limit` caps any of them.
use crate::labels::LabelQueue;
use crate::source::{DirSource, Frame, Source, SyntheticSource};
use argus_kafka::rdkafka::error::KafkaError;
use argus_kafka::rdkafka::message::{Header, OwnedHeaders};
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use argus_kafka::rdkafka::types::RDKafkaErrorCode;
use argus_kafka::rdkafka::util::Timeout;
use argus_wire::{encode_envelope, headers as h, now_us, ENVELOPE_SCHEMA};
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Bytes a record needs beyond key and value (record header, envelope headers); kept
/// conservative so a frame we accept is never refused by the broker.
const RECORD_OVERHEAD: usize = 512;

/// How long the end of a live run waits for frames still in the backlog before dropping
/// them (a broker still away at Ctrl-C must not hold the producer for minutes).
pub const FINISH_WAIT: Duration = Duration::from_secs(30);

/// Default [`ProduceConfig::backlog_bytes`]: 64 MiB, about a minute of four 640×480
/// cameras at 10 frames/s.
pub const DEFAULT_BACKLOG_BYTES: usize = 64 << 20;

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
    /// Frames handed to the producer and not yet acknowledged, at most.
    pub max_outstanding: usize,
    /// Encoded frames waiting behind those (a broker outage), at most this many bytes; the
    /// oldest are dropped beyond it (live sources only: see the module doc).
    pub backlog_bytes: usize,
    /// How often to log a progress line.
    pub progress_every: Duration,
    /// Records: what a bad row (line reported either way) does to the run.
    pub bad_rows: BadRows,
    /// Synthetic cameras spread over this many partitions (camera `i` → partition
    /// `i mod n`) instead of by key hash: with a handful of cameras the hash can put all
    /// of them on one worker's partitions (the demo's four did). A camera still has one
    /// partition, so its frames stay in order.
    pub spread_cameras: Option<i32>,
    /// Publish the truth the source knows as labels ([`LabelEmission`]).
    pub labels: Option<LabelEmission>,
    /// Records: the column holding the truth, removed from the record before it is sent
    /// (the model must not see it) and, with `labels`, published as its label; values
    /// mapped by `label_map` (`(value, label)`), else used as they are.
    pub label_column: Option<String>,
    /// Column value → label (e.g. `1` → `churn`).
    pub label_map: Vec<(String, String)>,
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

/// Ground truth the producer knows, published to a labels topic for a share of the inputs
/// after a delay (as verification arrives later in the field): see [`crate::labels`].
#[derive(Debug, Clone, PartialEq)]
pub struct LabelEmission {
    /// The labels topic.
    pub topic: String,
    /// Share of inputs labelled, (0, 1], chosen by a hash of the input's id.
    pub share: f64,
    /// How long after an input's delivery its label is published.
    pub delay: Duration,
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
            backlog_bytes: DEFAULT_BACKLOG_BYTES,
            progress_every: Duration::from_secs(5),
            bad_rows: BadRows::Skip,
            spread_cameras: None,
            labels: None,
            label_column: None,
            label_map: Vec::new(),
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
    /// Frames the broker refused with an error a retry cannot fix.
    pub failed: u64,
    /// Frames dropped by the outage policy: the oldest waiting when the backlog was full,
    /// or not delivered within `message.timeout.ms`.
    pub dropped: u64,
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
    /// Labels published (`labels`).
    pub labels: u64,
    /// Of those, published at the end of the run before their delay had passed.
    pub labels_early: u64,
    /// Labels the broker did not take.
    pub labels_failed: u64,
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
        if self.dropped > 0 {
            write!(
                f,
                "; {} dropped by the outage policy (backlog full or not delivered in time)",
                self.dropped
            )?;
        }
        if self.labels + self.labels_failed > 0 {
            write!(
                f,
                "; labels {} published ({} at the end, before their delay), {} failed",
                self.labels, self.labels_early, self.labels_failed
            )?;
        }
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
/// `shutdown`; then delivers what waits ([`FINISH_WAIT`] at most for a live source's
/// backlog) and waits for the deliveries before returning.
pub async fn run(
    source: Source,
    config: ProduceConfig,
    producer: FutureProducer,
    shutdown: CancellationToken,
) -> Result<ProduceSummary, ProduceError> {
    let source_fps = match &source {
        Source::Synthetic(s) => s.total_fps(),
        Source::Dir(d) => d.fps,
        // ffmpeg delivers frames at the stream's pace (or a file's, as fast as it decodes).
        Source::Video(_) | Source::Records(_) => f64::INFINITY,
    };
    let rate = match config.rate_limit {
        Some(r) if r > 0.0 => source_fps.min(r),
        _ => source_fps,
    };
    let interval = (rate > 0.0 && rate.is_finite()).then(|| Duration::from_secs_f64(1.0 / rate));
    // Live sources (cameras, a folder replayed at --fps, a video stream or a file read in
    // real time) drop their oldest frames in an outage; a records file never drops a row,
    // nor a video file decoded as fast as ffmpeg goes (it waits, as a file can).
    let live = match &source {
        Source::Synthetic(_) | Source::Dir(_) => true,
        Source::Video(v) => v.paced(),
        Source::Records(_) => false,
    };
    let mut inputs = Inputs::open(source)?;
    let start = Instant::now();
    let tstart = tokio::time::Instant::now();
    let deadline = config.duration.map(|d| tstart + d);
    let mut sender = Sender::new(producer, &config, live);
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
            if !sender.serve_until(due, &shutdown).await {
                break;
            }
        }
        let (frame, truth) = match inputs
            .next(i, &config, &mut sender, &shutdown, deadline)
            .await
        {
            Fetched::Input(frame, truth) => (frame, truth),
            Fetched::End => break,
            Fetched::BadRow => continue,
            Fetched::Refused(e) => {
                tracing::error!(error = %e, "frame skipped");
                sender.summary.refused += 1;
                i += 1;
                continue;
            }
            Fetched::Failed(e) => {
                sender.finish().await;
                return Err(e);
            }
        };
        i += 1;
        let value = match encode_envelope(&frame.envelope) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(key = %frame.key, error = %e, "frame refused");
                sender.summary.refused += 1;
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
            sender.summary.refused += 1;
            continue;
        }
        if frame.has_person == Some(true) {
            sender.summary.with_person += 1;
        }
        let partition = spread_partition(&frame.key, config.spread_cameras);
        let truth = truth.or_else(|| {
            frame
                .has_person
                .map(|p| if p { "person" } else { "empty" }.to_owned())
        });
        let mut ready = Ready::new(frame, value, partition);
        ready.truth = truth;
        sender.offer(ready).await;
        if last_progress.elapsed() >= config.progress_every {
            last_progress = Instant::now();
            sender.log_progress(start.elapsed());
        }
    }
    let mut summary = sender.finish().await;
    summary.elapsed = start.elapsed();
    Ok(summary)
}

/// A run's source, opened: the folder listed, the records file or the video's ffmpeg
/// started.
enum Inputs {
    Synthetic(SyntheticSource),
    Dir(
        DirSource,
        Vec<(std::path::PathBuf, argus_wire::ImageFormat)>,
    ),
    Records(crate::records::RecordReader),
    Video(crate::video::VideoReader),
}

/// What [`Inputs::next`] fetched.
enum Fetched {
    /// The next input, and its true label when the source knows it.
    Input(Frame, Option<String>),
    /// The source has ended (or `shutdown`, or the run's duration, came while waiting).
    End,
    /// A bad row, reported and counted (the run goes on).
    BadRow,
    /// A frame that could not be made (reported, counted as refused).
    Refused(String),
    /// The source failed, or a bad row with `--on-bad-row fail`: the run ends with it.
    Failed(ProduceError),
}

impl Inputs {
    fn open(source: Source) -> Result<Inputs, ProduceError> {
        Ok(match source {
            Source::Synthetic(s) => Inputs::Synthetic(s),
            Source::Dir(d) => {
                let files = d.files().map_err(ProduceError::Source)?;
                Inputs::Dir(d, files)
            }
            Source::Records(r) => {
                let reader = crate::records::open(&r).map_err(ProduceError::Source)?;
                let columns: Vec<String> = reader
                    .column_types()
                    .iter()
                    .map(|(c, t)| format!("{c}:{}", t.as_str()))
                    .collect();
                tracing::info!(columns = %columns.join(","), "reading records");
                Inputs::Records(reader)
            }
            Source::Video(v) => {
                let reader = v.open().map_err(ProduceError::Source)?;
                tracing::info!(camera = %v.camera, input = %v.input, fps = v.fps, "reading video");
                Inputs::Video(reader)
            }
        })
    }

    /// Input number `i`. A video frame is awaited while `sender` serves deliveries, until
    /// `shutdown` or `deadline`.
    async fn next(
        &mut self,
        i: u64,
        config: &ProduceConfig,
        sender: &mut Sender,
        shutdown: &CancellationToken,
        deadline: Option<tokio::time::Instant>,
    ) -> Fetched {
        let frame = match self {
            Inputs::Synthetic(s) => synthetic_frame(s.clone(), i).await.map(Some),
            Inputs::Dir(d, files) => dir_frame(d, files, i),
            Inputs::Video(v) => {
                match sender.serve_while(v.next_frame(), shutdown, deadline).await {
                    None => Ok(None),
                    Some(Ok(frame)) => Ok(frame),
                    Some(Err(e)) => return Fetched::Failed(ProduceError::Source(e)),
                }
            }
            Inputs::Records(reader) => {
                return match reader.next_row() {
                    None => Fetched::End,
                    Some(Ok(mut row)) => {
                        let truth = take_label(&mut row, config);
                        let frame = Frame {
                            key: row.key.clone(),
                            envelope: row.envelope(i, now_us()),
                            has_person: None,
                        };
                        Fetched::Input(frame, truth)
                    }
                    Some(Err(bad)) => {
                        tracing::error!(line = bad.line, error = %bad, "bad row");
                        metrics::counter!(crate::metrics::BAD_ROWS).increment(1);
                        sender.summary.bad_rows += 1;
                        if sender.summary.bad_lines.len() < 20 {
                            sender.summary.bad_lines.push(bad.line);
                        }
                        if config.bad_rows == BadRows::Fail {
                            return Fetched::Failed(ProduceError::BadRow(bad));
                        }
                        Fetched::BadRow
                    }
                };
            }
        };
        match frame {
            Ok(Some(f)) => Fetched::Input(f, None),
            Ok(None) => Fetched::End,
            Err(e) => Fetched::Refused(e),
        }
    }
}

/// An encoded frame ready to send: the envelope's payload now lives only in `value`.
#[derive(Debug)]
pub struct Ready {
    key: String,
    value: Vec<u8>,
    content_type: &'static str,
    capture_time_us: i64,
    partition: Option<i32>,
    /// The true label, when the source knows it.
    truth: Option<String>,
}

impl Ready {
    fn new(frame: Frame, value: Vec<u8>, partition: Option<i32>) -> Ready {
        Ready {
            content_type: frame.envelope.payload.content_type(),
            capture_time_us: frame.envelope.capture_time_us,
            key: frame.key,
            value,
            partition,
            truth: None,
        }
    }
}

/// Removes the label column from a record row; its value (mapped) is the row's truth.
fn take_label(row: &mut crate::records::Row, config: &ProduceConfig) -> Option<String> {
    let column = config.label_column.as_ref()?;
    let at = row.record.fields.iter().position(|f| f.name == column)?;
    let value = match row.record.fields.remove(at).value {
        argus_wire::Value::Text(t) => t.into_string(),
        argus_wire::Value::Int(i) => i.to_string(),
        argus_wire::Value::Float(x) => x.to_string(),
        argus_wire::Value::Bool(b) => b.to_string(),
        argus_wire::Value::Null => return None,
    };
    Some(
        config
            .label_map
            .iter()
            .find(|(from, _)| *from == value)
            .map_or(value, |(_, to)| to.clone()),
    )
}

/// Frames waiting for room in the producer, oldest first, at most `max_bytes` of values
/// (always room for one frame, however large).
#[derive(Debug, Default)]
pub struct Backlog {
    frames: VecDeque<Ready>,
    bytes: usize,
    max_bytes: usize,
}

impl Backlog {
    /// An empty backlog holding at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Backlog {
        Backlog {
            max_bytes,
            ..Backlog::default()
        }
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame waits.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether `bytes` more fit without dropping anything.
    pub fn has_room(&self, bytes: usize) -> bool {
        self.frames.is_empty() || self.bytes + bytes <= self.max_bytes
    }

    /// Appends `frame`, dropping the oldest frames until it fits; returns how many were
    /// dropped.
    pub fn push(&mut self, frame: Ready) -> u64 {
        let mut dropped = 0;
        while !self.has_room(frame.value.len()) {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= old.value.len();
                dropped += 1;
            }
        }
        self.bytes += frame.value.len();
        self.frames.push_back(frame);
        dropped
    }

    /// Drops every waiting frame; returns how many.
    pub fn clear(&mut self) -> u64 {
        let n = self.frames.len() as u64;
        self.frames.clear();
        self.bytes = 0;
        n
    }

    /// Takes the oldest waiting frame.
    pub fn pop(&mut self) -> Option<Ready> {
        let f = self.frames.pop_front()?;
        self.bytes -= f.value.len();
        Some(f)
    }
}

/// A delivered input: its size, where it landed, and what its label needs.
struct Delivered {
    bytes: usize,
    partition: i32,
    offset: i64,
    key: String,
    truth: Option<String>,
}

/// A delivery's outcome.
type Delivery = Result<Delivered, KafkaError>;

/// The frames of a run between the source and the broker: at most `max_outstanding` in
/// the producer, the rest in the [`Backlog`] (see the module doc for the policy).
struct Sender {
    producer: FutureProducer,
    topic: String,
    max_outstanding: usize,
    /// Live source: drop the oldest waiting frames rather than wait for room.
    live: bool,
    backlog: Backlog,
    outstanding: FuturesUnordered<futures::future::BoxFuture<'static, Delivery>>,
    summary: ProduceSummary,
    /// Labels to publish and the ones waiting for their delay.
    labels: Option<(LabelEmission, LabelQueue)>,
    label_sends: FuturesUnordered<futures::future::BoxFuture<'static, bool>>,
}

impl Sender {
    fn new(producer: FutureProducer, config: &ProduceConfig, live: bool) -> Sender {
        Sender {
            producer,
            topic: config.topic.clone(),
            max_outstanding: config.max_outstanding.max(1),
            live,
            backlog: Backlog::new(config.backlog_bytes),
            outstanding: FuturesUnordered::new(),
            summary: ProduceSummary::default(),
            labels: config.labels.clone().map(|l| (l, LabelQueue::default())),
            label_sends: FuturesUnordered::new(),
        }
    }

    /// Publishes the labels due now (every waiting one with `all`).
    fn flush_labels(&mut self, all: bool) {
        let Some((emission, queue)) = self.labels.as_mut() else {
            return;
        };
        let (due, early) = queue.due(Instant::now(), now_us(), all);
        self.summary.labels_early += early;
        for label in due {
            let (producer, topic) = (self.producer.clone(), emission.topic.clone());
            self.label_sends.push(Box::pin(async move {
                match crate::labels::send_label(&producer, &topic, &label).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(id = %label.id, error = %e, "label not published");
                        false
                    }
                }
            }));
        }
        while let Some(Some(ok)) = futures::FutureExt::now_or_never(self.label_sends.next()) {
            self.count_label(ok);
        }
    }

    fn count_label(&mut self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        metrics::counter!(crate::metrics::LABELS, "outcome" => outcome).increment(1);
        if ok {
            self.summary.labels += 1;
        } else {
            self.summary.labels_failed += 1;
        }
    }

    /// Queues the label of a delivered input, if it is among the share labelled.
    fn queue_label(&mut self, d: Delivered) {
        let (Some((emission, queue)), Some(truth)) = (self.labels.as_mut(), d.truth) else {
            return;
        };
        let id = format!("{}/{}/{}", self.topic, d.partition, d.offset);
        if !crate::labels::selected(&id, emission.share) {
            return;
        }
        let mut label = argus_wire::Label::new(id, truth, argus_wire::LabelSource::System);
        label.key = Some(d.key);
        label.by = Some("argus-producer".into());
        queue.push(Instant::now() + emission.delay, label);
    }

    /// Takes a frame: into the producer if there is room, else — a live source — into the
    /// backlog, dropping the oldest waiting frames to make room; any other source waits for
    /// a delivery instead (its backlog stays empty).
    async fn offer(&mut self, frame: Ready) {
        if !self.live {
            while self.outstanding.len() >= self.max_outstanding {
                self.settle_one().await;
            }
        }
        let dropped = self.backlog.push(frame);
        if dropped > 0 {
            self.dropped(dropped, crate::metrics::DROPPED_BACKLOG_FULL);
        }
        self.pump();
        self.settle_ready();
    }

    /// Moves waiting frames into the producer while fewer than `max_outstanding` are in it.
    fn pump(&mut self) {
        while self.outstanding.len() < self.max_outstanding {
            let Some(frame) = self.backlog.pop() else {
                break;
            };
            self.outstanding.push(Box::pin(send(
                self.producer.clone(),
                self.topic.clone(),
                frame,
            )));
        }
    }

    /// Accounts the deliveries that have completed, without waiting, refills, and
    /// publishes the labels now due.
    fn settle_ready(&mut self) {
        while let Some(Some(r)) = futures::FutureExt::now_or_never(self.outstanding.next()) {
            self.account(r);
        }
        self.pump();
        self.flush_labels(false);
    }

    /// Waits for one delivery (if any is outstanding) and refills.
    async fn settle_one(&mut self) {
        if let Some(r) = self.outstanding.next().await {
            self.account(r);
        }
        self.pump();
    }

    /// Serves deliveries until `due`; false if `shutdown` came first.
    async fn serve_until(
        &mut self,
        due: tokio::time::Instant,
        shutdown: &CancellationToken,
    ) -> bool {
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => return true,
                _ = shutdown.cancelled() => return false,
                Some(r) = self.outstanding.next(), if !self.outstanding.is_empty() => {
                    self.account(r);
                    self.pump();
                    self.flush_labels(false);
                }
            }
        }
    }

    /// Awaits `fut` while serving deliveries; `None` if `shutdown` or `deadline` came
    /// first (`fut` is then dropped: a video reader is not read again).
    async fn serve_while<F: std::future::Future>(
        &mut self,
        fut: F,
        shutdown: &CancellationToken,
        deadline: Option<tokio::time::Instant>,
    ) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        let until = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let mut until = std::pin::pin!(until);
        loop {
            tokio::select! {
                out = &mut fut => return Some(out),
                _ = shutdown.cancelled() => return None,
                _ = &mut until => return None,
                Some(r) = self.outstanding.next(), if !self.outstanding.is_empty() => {
                    self.account(r);
                    self.pump();
                    self.flush_labels(false);
                }
            }
        }
    }

    /// Delivers what is waiting and waits for every delivery, refilling the producer as
    /// deliveries complete. A live source gives up on frames still waiting after
    /// [`FINISH_WAIT`] (dropped, `expired`); deliveries already in the producer end within
    /// `message.timeout.ms` either way. A records source waits for all of its rows.
    async fn finish(mut self) -> ProduceSummary {
        let deadline = tokio::time::Instant::now() + FINISH_WAIT;
        self.pump();
        while !self.outstanding.is_empty() || !self.backlog.is_empty() {
            if self.live && tokio::time::Instant::now() >= deadline && !self.backlog.is_empty() {
                let n = self.backlog.clear();
                self.dropped(n, crate::metrics::DROPPED_EXPIRED);
            }
            self.settle_one().await;
        }
        // Labels still waiting for their delay go out now (the summary says how many).
        self.flush_labels(true);
        while let Some(ok) = self.label_sends.next().await {
            self.count_label(ok);
        }
        if let Err(e) = self.producer.flush(Duration::from_secs(10)) {
            tracing::warn!(error = %e, "producer flush failed");
        }
        self.summary
    }

    fn log_progress(&self, elapsed: Duration) {
        let s = &self.summary;
        tracing::info!(
            sent = s.sent,
            failed = s.failed,
            dropped = s.dropped,
            waiting = self.backlog.len(),
            refused = s.refused,
            mb = s.bytes as f64 / 1e6,
            rate = format!("{:.1}", s.sent as f64 / elapsed.as_secs_f64()),
            "producing"
        );
    }

    fn dropped(&mut self, n: u64, reason: &'static str) {
        let first = self.summary.dropped == 0;
        self.summary.dropped += n;
        metrics::counter!(crate::metrics::DROPPED, "reason" => reason).increment(n);
        if first {
            tracing::warn!(
                reason,
                metric = crate::metrics::DROPPED,
                waiting = self.backlog.len(),
                in_producer = self.outstanding.len(),
                "dropping frames: the broker is not taking them (outage policy: frames that \
                 waited too long or the oldest waiting when the backlog is full; counted, and \
                 progress lines say how many)"
            );
        }
    }

    fn account(&mut self, r: Delivery) {
        match r {
            Ok(d) => {
                self.summary.sent += 1;
                self.summary.bytes += d.bytes as u64;
                metrics::counter!(crate::metrics::FRAMES, "outcome" => "ok").increment(1);
                self.queue_label(d);
            }
            // A live frame that waited too long is dropped by policy; a record is not.
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)) if self.live => {
                self.dropped(1, crate::metrics::DROPPED_EXPIRED);
            }
            Err(e) => {
                self.summary.failed += 1;
                metrics::counter!(crate::metrics::FRAMES, "outcome" => "error").increment(1);
                tracing::warn!(topic = %self.topic, error = %e, "frame not delivered");
            }
        }
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
    envelope_headers_for(payload.content_type(), capture_time_us)
}

fn envelope_headers_for(content_type: &str, capture_time_us: i64) -> OwnedHeaders {
    let capture = capture_time_us.to_string();
    OwnedHeaders::new()
        .insert(Header {
            key: h::SCHEMA,
            value: Some(ENVELOPE_SCHEMA),
        })
        .insert(Header {
            key: h::CONTENT_TYPE,
            value: Some(content_type),
        })
        .insert(Header {
            key: h::CAPTURE_TIME_US,
            value: Some(&capture),
        })
}

async fn send(producer: FutureProducer, topic: String, frame: Ready) -> Delivery {
    let headers = envelope_headers_for(frame.content_type, frame.capture_time_us);
    let mut record = FutureRecord::to(&topic)
        .key(&frame.key)
        .payload(&frame.value)
        .headers(headers);
    if let Some(p) = frame.partition {
        record = record.partition(p);
    }
    // Waiting for queue room is bounded by the in-flight limit, not by this timeout.
    producer
        .send(record, Timeout::After(Duration::from_secs(30)))
        .await
        .map(|d| Delivered {
            bytes: frame.value.len(),
            partition: d.partition,
            offset: d.offset,
            key: frame.key.clone(),
            truth: frame.truth.clone(),
        })
        .map_err(|(e, _)| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(i: u8, bytes: usize) -> Ready {
        Ready {
            key: format!("cam-{i}"),
            value: vec![i; bytes],
            content_type: "image/jpeg",
            capture_time_us: i64::from(i),
            partition: None,
            truth: None,
        }
    }

    #[test]
    fn a_full_backlog_drops_its_oldest_frames() {
        let mut b = Backlog::new(300);
        for i in 0..3 {
            assert_eq!(b.push(frame(i, 100)), 0);
        }
        // Full: the fourth frame pushes out the first, a 250-byte one the next three.
        assert_eq!(b.push(frame(3, 100)), 1);
        assert_eq!(b.len(), 3);
        assert_eq!(b.push(frame(4, 250)), 3);
        assert_eq!(b.len(), 1);
        assert_eq!(b.pop().map(|f| f.key), Some("cam-4".into()));
        assert!(b.is_empty());
        // Oldest first, and the byte count follows pops.
        b.push(frame(5, 100));
        b.push(frame(6, 100));
        assert_eq!(b.pop().map(|f| f.key), Some("cam-5".into()));
        assert!(b.has_room(200));
        assert!(!b.has_room(201));
    }

    #[test]
    fn a_frame_larger_than_the_backlog_still_waits_alone() {
        let mut b = Backlog::new(10);
        assert!(b.has_room(1000), "an empty backlog takes any frame");
        assert_eq!(b.push(frame(0, 1000)), 0);
        assert_eq!(b.push(frame(1, 5)), 1, "the next frame replaces it");
        assert_eq!(b.len(), 1);
    }

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
