//! Zone rules in the streaming worker: the rule state of every camera of the partitions
//! this worker owns ([`crate::zones`]), fed in partition order as outputs are handed over,
//! and rebuilt after a rebalance from the camera's recent predictions.
//!
//! **Rebuild.** The first frame of a partition in a new assignment generation drops what
//! the worker knew of that partition's cameras and replays the predictions topic's last
//! [`ZoneRunner::history_us`] (the longest zone window, dwell + cooldown, plus a track's
//! gap): every prediction of an input of the same partition with an offset below this
//! frame's, in offset order, alerts muted. Tracks, dwell times and cooldowns are then what
//! the previous owner had after its last published prediction, because the rules are a
//! deterministic function of the frames' capture times and boxes. Inputs the previous owner
//! scored but did not commit are redone here and are not replayed, so no frame counts twice.
//! Without a history reader (or when the read fails) the state starts empty and the
//! failure is logged and counted.
use crate::job::Job;
use crate::metrics as m;
use crate::outputs::Outcome;
use crate::pipeline::Pipeline;
use crate::zones::{rules::TRACK_MAX_GAP_US, CameraState, Firing, FrameBoxes, Zone};
use argus_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use argus_kafka::rdkafka::Message;
use argus_kafka::KafkaSettings;
use argus_wire::{
    Alert, AlertBox, AlertRule, FrameSize, InputRef, ModelRef, Payload, Prediction, ZoneHit,
    ALERT_SCHEMA_V3,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Zone rules and where their state comes from after a rebalance.
#[derive(Debug, Clone, Default)]
pub struct ZoneConfig {
    /// The zones (empty: no zone rules).
    pub zones: Arc<Vec<Zone>>,
    /// Directory for alert snapshots (a JPEG per zone alert with boxes and zone drawn).
    pub snapshots: Option<PathBuf>,
    /// Reads the predictions topic back to rebuild rule state after a rebalance.
    pub history: Option<KafkaSettings>,
}

/// One frame of a detection model, as the zone rules see it.
#[derive(Debug, Clone)]
pub(crate) struct ZoneFrame {
    pub(crate) camera: String,
    pub(crate) boxes: FrameBoxes,
    pub(crate) size: (u32, u32),
    pub(crate) prediction_id: String,
    pub(crate) input: InputRef,
    pub(crate) model: ModelRef,
    worker: String,
    /// The frame itself, for a snapshot.
    pub(crate) payload: Option<Payload>,
}

#[derive(Debug, Default)]
struct PartitionZones {
    /// The assignment generation the state belongs to (`None`: never filled).
    generation: Option<u64>,
    cameras: HashMap<String, CameraState>,
}

/// One input partition's rule state, behind its own lock.
type PartitionSlot = Arc<tokio::sync::Mutex<PartitionZones>>;

/// The rule state of the owned partitions' cameras.
#[derive(Debug)]
pub(crate) struct ZoneRunner {
    config: ZoneConfig,
    worker: String,
    predictions_topic: String,
    /// Per input partition, each behind its own lock: a partition's rebuild (a read of the
    /// predictions topic, up to seconds) holds up only that partition's frames.
    partitions: std::sync::Mutex<HashMap<(String, i32), PartitionSlot>>,
}

impl ZoneRunner {
    /// A runner for `config`'s zones (`None` without zones); `predictions_topic` is where
    /// the history is.
    pub(crate) fn new(
        config: ZoneConfig,
        predictions_topic: &str,
        worker: &str,
    ) -> Option<ZoneRunner> {
        if config.zones.is_empty() {
            return None;
        }
        Some(ZoneRunner {
            config,
            worker: worker.to_owned(),
            predictions_topic: predictions_topic.to_owned(),
            partitions: Default::default(),
        })
    }

    /// The frame the zone rules see for an input `pipeline` scored (`None` unless its
    /// model is a detector and the input has a camera key and boxes).
    pub(crate) fn frame(
        &self,
        job: &Job,
        pipeline: &Pipeline,
        outcome: &Outcome,
    ) -> Option<ZoneFrame> {
        let Outcome::Classified(c) = outcome else {
            return None;
        };
        let model = pipeline.model();
        let head = model.detection_head()?;
        let camera = job.key_str()?.to_owned();
        let input = job.input_ref(Some(&c.envelope));
        Some(ZoneFrame {
            camera,
            boxes: FrameBoxes {
                capture_us: c.envelope.capture_time_us,
                boxes: argus_model::detection::detected_boxes(
                    &c.classification.detections,
                    model.labels(),
                ),
            },
            size: c.classification.frame.unwrap_or_else(|| head.input_size()),
            prediction_id: input.id(),
            input,
            model: model.model_ref().clone(),
            worker: self.worker.clone(),
            payload: self
                .config
                .snapshots
                .is_some()
                .then(|| c.envelope.payload.clone()),
        })
    }

    /// How far back a rebuild replays, µs.
    pub(crate) fn history_us(&self) -> i64 {
        self.config
            .zones
            .iter()
            .map(Zone::history_us)
            .max()
            .unwrap_or(0)
            .saturating_add(TRACK_MAX_GAP_US)
    }

    /// Takes the next frame of input `topic`/`partition`@`offset` (assigned in
    /// `generation`), in partition order; returns the zone alerts it raises.
    pub(crate) async fn alerts(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        generation: u64,
        frame: ZoneFrame,
    ) -> Vec<Alert> {
        let slot = {
            let mut partitions = self
                .partitions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(partitions.entry((topic.to_owned(), partition)).or_default())
        };
        let mut entry = slot.lock().await;
        if entry.generation != Some(generation) {
            entry.generation = Some(generation);
            entry.cameras = self
                .rebuild(topic, partition, offset, frame.boxes.capture_us)
                .await;
        }
        let zones = self.config.zones.as_slice();
        let state = entry
            .cameras
            .entry(frame.camera.clone())
            .or_insert_with(|| CameraState::new(zones.len()));
        let Some(firings) = state.step(zones, &frame.camera, &frame.boxes) else {
            tracing::debug!(camera = %frame.camera, offset, "frame older than the camera's last: not applied to zone rules");
            return Vec::new();
        };
        drop(entry);
        let mut alerts = Vec::with_capacity(firings.len());
        for f in firings {
            let zone = &zones[f.zone];
            metrics::counter!(m::ZONE_ALERTS, "zone" => zone.name.clone(), "rule" => f.kind.as_str()).increment(1);
            let mut alert = zone_alert(zone, &f, &frame);
            if let Some(dir) = &self.config.snapshots {
                alert.snapshot = self.snapshot(dir, zone, &f, &frame, &alert.id).await;
            }
            tracing::info!(camera = %frame.camera, zone = %zone.name, rule = f.kind.as_str(), boxes = f.boxes.len(), "zone rule fired");
            alerts.push(alert);
        }
        alerts
    }

    async fn snapshot(
        &self,
        dir: &std::path::Path,
        zone: &Zone,
        f: &Firing,
        frame: &ZoneFrame,
        id: &str,
    ) -> Option<String> {
        let payload = frame.payload.clone()?;
        let path = dir
            .join(crate::snapshot::file_name(&frame.camera))
            .join(crate::snapshot::file_name(id) + ".jpg");
        let boxes: Vec<[f32; 4]> = f.boxes.iter().map(|b| b.observed.bbox).collect();
        let others: Vec<[f32; 4]> = frame
            .boxes
            .boxes
            .iter()
            .map(|b| b.bbox)
            .filter(|b| !boxes.contains(b))
            .collect();
        let polygon = zone.polygon.clone();
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || {
            crate::snapshot::write(&payload, &boxes, &others, &polygon, &target)
        })
        .await;
        match written {
            Ok(Ok(())) => Some(format!("file://{}", absolute(&path).display())),
            Ok(Err(e)) => {
                metrics::counter!(m::ZONE_SNAPSHOT_FAILURES).increment(1);
                tracing::warn!(path = %path.display(), error = %e, "alert snapshot not written");
                None
            }
            Err(e) => {
                metrics::counter!(m::ZONE_SNAPSHOT_FAILURES).increment(1);
                tracing::warn!(error = %e, "alert snapshot task failed");
                None
            }
        }
    }

    /// The cameras' state after replaying the partition's history before `offset`.
    async fn rebuild(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        capture_us: i64,
    ) -> HashMap<String, CameraState> {
        let Some(settings) = &self.config.history else {
            metrics::counter!(m::ZONE_REBUILDS, "outcome" => "skipped").increment(1);
            return HashMap::new();
        };
        let t = Instant::now();
        let since_us = capture_us.saturating_sub(self.history_us());
        let history = read_history(
            settings,
            &self.predictions_topic,
            topic,
            partition,
            offset,
            since_us,
        )
        .await;
        let frames = match history {
            Ok(f) => f,
            Err(e) => {
                metrics::counter!(m::ZONE_REBUILDS, "outcome" => "failed").increment(1);
                tracing::warn!(topic, partition, error = %e, "zone rule state not rebuilt: starting empty");
                return HashMap::new();
            }
        };
        let zones = self.config.zones.as_slice();
        let mut cameras: HashMap<String, CameraState> = HashMap::new();
        for (camera, boxes) in &frames {
            cameras
                .entry(camera.clone())
                .or_insert_with(|| CameraState::new(zones.len()))
                .step(zones, camera, boxes);
        }
        metrics::counter!(m::ZONE_REBUILDS, "outcome" => "ok").increment(1);
        metrics::counter!(m::ZONE_REPLAYED).increment(frames.len() as u64);
        metrics::histogram!(m::ZONE_REBUILD_SECONDS).record(t.elapsed().as_secs_f64());
        tracing::info!(
            topic,
            partition,
            before_offset = offset,
            frames = frames.len(),
            cameras = cameras.len(),
            ms = t.elapsed().as_millis() as u64,
            "zone rule state rebuilt from recent predictions"
        );
        cameras
    }
}

fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The v3 alert of a zone rule that fired.
fn zone_alert(zone: &Zone, f: &Firing, frame: &ZoneFrame) -> Alert {
    Alert {
        schema: ALERT_SCHEMA_V3.into(),
        id: format!("{}/zone/{}", frame.prediction_id, zone.name),
        prediction_id: frame.prediction_id.clone(),
        input: frame.input.clone(),
        model: frame.model.clone(),
        rule: AlertRule {
            name: zone.name.clone(),
            label: zone.label.clone(),
            threshold: zone.min_score,
        },
        label: zone.label.clone(),
        score: f.score,
        worker: frame.worker.clone(),
        raised_at_us: argus_wire::now_us(),
        features: None,
        detections: Some(
            f.boxes
                .iter()
                .map(|b| AlertBox {
                    label: b.observed.label.clone(),
                    score: b.observed.score,
                    bbox: b.observed.bbox,
                    track: Some(b.track),
                    in_zone_since_us: b.in_zone_since_us,
                })
                .collect(),
        ),
        zone: Some(ZoneHit {
            name: zone.name.clone(),
            rule: f.kind.as_str().into(),
            polygon: zone.polygon.clone(),
            since_us: f.since_us,
            frame: FrameSize {
                width: frame.size.0,
                height: frame.size.1,
            },
        }),
        snapshot: None,
        evidence: None,
    }
}

/// The boxes of a v3 prediction, as the zone rules read them; `None` for other predictions.
pub(crate) fn frame_of(p: &Prediction) -> Option<(String, FrameBoxes)> {
    let detections = p.detections.as_ref()?;
    let camera = p.input.key.clone()?;
    Some((
        camera,
        FrameBoxes {
            capture_us: p.input.capture_time_us?,
            boxes: detections.clone(),
        },
    ))
}

/// Why the history could not be read.
#[derive(Debug, thiserror::Error)]
enum HistoryError {
    #[error(transparent)]
    Setup(#[from] argus_kafka::KafkaSetupError),
    #[error("reading {topic}: {source}")]
    Read {
        topic: String,
        source: argus_kafka::rdkafka::error::KafkaError,
    },
    #[error("reading {topic} timed out")]
    Timeout { topic: String },
}

/// The frames of input `topic`/`partition` below `before_offset` captured since
/// `since_us`, by camera, in input offset order, from the predictions topic.
async fn read_history(
    settings: &KafkaSettings,
    predictions: &str,
    topic: &str,
    partition: i32,
    before_offset: i64,
    since_us: i64,
) -> Result<Vec<(String, FrameBoxes)>, HistoryError> {
    const TIMEOUT: Duration = Duration::from_secs(10);
    let consumer: StreamConsumer = settings.reader("argus-zone-history")?;
    // Predictions are written after capture: a minute of slack on the broker's clock.
    let from_ms = since_us / 1000 - 60_000;
    let bounds =
        argus_kafka::bounded::time_bounds(&consumer, predictions, Some(from_ms), None, TIMEOUT)?;
    let mut remaining: HashMap<i32, i64> = bounds
        .iter()
        .filter(|(_, (start, end))| end > start)
        .map(|(p, (_, end))| (*p, *end))
        .collect();
    if remaining.is_empty() {
        return Ok(Vec::new());
    }
    let assignment = argus_kafka::bounded::assignment(predictions, &bounds)?;
    consumer
        .assign(&assignment)
        .map_err(|source| HistoryError::Read {
            topic: predictions.to_owned(),
            source,
        })?;
    let mut found: Vec<(i64, String, FrameBoxes)> = Vec::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !remaining.is_empty() {
        let msg = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => {
                return Err(HistoryError::Timeout {
                    topic: predictions.to_owned(),
                })
            }
            Ok(Err(source)) => {
                return Err(HistoryError::Read {
                    topic: predictions.to_owned(),
                    source,
                })
            }
            Ok(Ok(m)) => m,
        };
        if let Some(end) = remaining.get(&msg.partition()) {
            if msg.offset() + 1 >= *end {
                remaining.remove(&msg.partition());
            }
        }
        let Some(Ok(p)) = msg.payload().map(serde_json::from_slice::<Prediction>) else {
            continue;
        };
        if p.input.topic != topic
            || p.input.partition != partition
            || p.input.offset >= before_offset
        {
            continue;
        }
        if let Some((camera, frame)) = frame_of(&p) {
            if frame.capture_us >= since_us {
                found.push((p.input.offset, camera, frame));
            }
        }
    }
    found.sort_by_key(|(offset, _, _)| *offset);
    found.dedup_by_key(|(offset, _, _)| *offset);
    Ok(found.into_iter().map(|(_, c, f)| (c, f)).collect())
}
