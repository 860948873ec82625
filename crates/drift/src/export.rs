//! `argus export-training`: verified samples for the next training run. The labels that
//! arrived in a time range (Kafka timestamps of the labels topic) are deduplicated by the
//! prediction id they name; each id is the input's `topic/partition/offset`, so the input
//! is read back from exactly there; the prediction that scored it (and the model version)
//! is found on the predictions topic around the input's time. Records go to `samples.csv`
//! (the record's fields, then the label and the prediction), frames to `images/` plus
//! `manifest.csv`; `summary.json` counts samples per label, segment, label source and model
//! version, the time range, and everything left out and why.
//!
//! Layout: [`LabelSet`] (which label of an id counts) and [`Samples`] (the table and the
//! summary) are pure and unit-tested; [`export`] reads the three topics.
use crate::sidecar::input::Incoming;
use crate::sidecar::DriftError;
use argus_kafka::bounded::{self, Bounds};
use argus_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use argus_kafka::rdkafka::message::Message;
use argus_kafka::KafkaSettings;
use argus_wire::{Envelope, Label, Payload, Prediction, Value};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// The labels topic.
    pub labels_topic: String,
    /// The predictions topic.
    pub predictions_topic: String,
    /// Labels from this Kafka timestamp on (ms since the epoch; `None`: the start).
    pub from_ms: Option<i64>,
    /// Labels before this Kafka timestamp (`None`: up to the end seen at start).
    pub to_ms: Option<i64>,
    /// Output directory (created; files in it are replaced).
    pub out: PathBuf,
    /// A record field naming the segment (e.g. region); frames use their camera.
    pub segment_field: Option<String>,
    /// Predictions are looked for from the earliest labelled input's time up to the
    /// latest one's plus this.
    pub prediction_window: Duration,
    /// Per Kafka call.
    pub timeout: Duration,
}

/// Which label of each prediction id counts: the latest by `labelled_at_us` (then by
/// arrival); the others are counted as duplicates (same class) or conflicts (another).
#[derive(Debug, Default)]
pub struct LabelSet {
    by_id: BTreeMap<String, Label>,
    /// Labels that did not parse or break the schema's rules.
    pub invalid: u64,
    /// Labels repeating an id's class.
    pub duplicates: u64,
    /// Labels giving an id another class than an earlier one (the latest wins).
    pub conflicts: u64,
}

impl LabelSet {
    /// Adds one message's value.
    pub fn add(&mut self, payload: &[u8]) {
        let label = match serde_json::from_slice::<Label>(payload) {
            Ok(l) if l.validate().is_ok() => l,
            _ => {
                self.invalid += 1;
                return;
            }
        };
        match self.by_id.get_mut(&label.id) {
            None => {
                self.by_id.insert(label.id.clone(), label);
            }
            Some(held) => {
                if held.label == label.label {
                    self.duplicates += 1;
                } else {
                    self.conflicts += 1;
                }
                if label.labelled_at_us >= held.labelled_at_us {
                    *held = label;
                }
            }
        }
    }

    /// The labels that count, by id.
    pub fn labels(&self) -> &BTreeMap<String, Label> {
        &self.by_id
    }

    /// The wanted inputs: offsets per (topic, partition).
    pub fn inputs(&self) -> BTreeMap<(String, i32), BTreeSet<i64>> {
        let mut out: BTreeMap<(String, i32), BTreeSet<i64>> = BTreeMap::new();
        for id in self.by_id.keys() {
            if let Some((topic, partition, offset)) = argus_wire::label::parse_id(id) {
                out.entry((topic.to_owned(), partition))
                    .or_default()
                    .insert(offset);
            }
        }
        out
    }
}

/// What the export wrote and left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExportSummary {
    /// Samples written.
    pub samples: u64,
    /// Samples per true label.
    pub per_label: BTreeMap<String, u64>,
    /// Samples per segment (camera, or the segment field; `*` without).
    pub per_segment: BTreeMap<String, u64>,
    /// Samples per label source.
    pub per_source: BTreeMap<String, u64>,
    /// Samples per model version that scored them (`-`: no prediction found).
    pub per_model_version: BTreeMap<String, u64>,
    /// Earliest and latest input capture time, RFC 3339.
    pub captured: Option<(String, String)>,
    /// Earliest and latest `labelled_at`, RFC 3339.
    pub labelled: Option<(String, String)>,
    /// Label messages read in the range.
    pub labels_read: u64,
    /// Labels that did not parse or break the schema's rules.
    pub labels_invalid: u64,
    /// Labels repeating an id's class.
    pub labels_duplicate: u64,
    /// Labels giving an id another class (the latest counts).
    pub labels_conflicting: u64,
    /// Labelled ids whose input is gone (retention) or was never there.
    pub inputs_missing: u64,
    /// Labelled inputs that do not decode (their label cannot be used).
    pub inputs_undecodable: u64,
    /// Samples written without a prediction (none found in the window).
    pub predictions_missing: u64,
    /// The files written, relative to the output directory.
    pub files: Vec<String>,
}

/// One labelled input read back.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The prediction id.
    pub id: String,
    /// The label that counts.
    pub label: Label,
    /// The input.
    pub envelope: Envelope,
    /// The Kafka key of the input.
    pub key: Option<String>,
    /// The prediction, when found.
    pub prediction: Option<Prediction>,
}

fn rfc3339(us: i64) -> String {
    argus_stats::report::rfc3339_us(us)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(t) => t.to_string(),
    }
}

/// The columns after the record's fields (records) or the file name (frames).
pub const TAIL: [&str; 9] = [
    "label",
    "label_source",
    "labelled_at",
    "prediction",
    "score",
    "model",
    "model_version",
    "key",
    "captured_at",
];

fn tail(s: &Sample) -> [String; 9] {
    let p = s.prediction.as_ref();
    [
        s.label.label.clone(),
        s.label.source.as_str().to_owned(),
        rfc3339(s.label.labelled_at_us),
        p.and_then(|p| p.label.clone()).unwrap_or_default(),
        p.and_then(|p| p.score)
            .map(|v| v.to_string())
            .unwrap_or_default(),
        p.map(|p| p.model.name.clone()).unwrap_or_default(),
        p.map(|p| p.model.version.clone()).unwrap_or_default(),
        s.key.clone().unwrap_or_default(),
        rfc3339(s.envelope.capture_time_us),
    ]
}

/// The samples, deduplicated by id, and the summary as they are added.
#[derive(Debug, Default)]
pub struct Samples {
    records: Vec<Sample>,
    frames: Vec<(Sample, String)>,
    /// The summary so far.
    pub summary: ExportSummary,
    segment_field: Option<String>,
}

impl Samples {
    /// An empty table; `segment_field` names records' segment field.
    pub fn new(segment_field: Option<String>) -> Self {
        Samples {
            segment_field,
            ..Samples::default()
        }
    }

    fn count(&mut self, s: &Sample) {
        let segment = match &s.envelope.payload {
            Payload::Record(r) => self
                .segment_field
                .as_ref()
                .and_then(|f| r.fields.iter().find(|x| x.name == f))
                .map_or_else(|| "*".to_owned(), |x| cell(&x.value)),
            _ => s.envelope.source_id.clone(),
        };
        let sm = &mut self.summary;
        sm.samples += 1;
        *sm.per_label.entry(s.label.label.clone()).or_default() += 1;
        *sm.per_segment.entry(segment).or_default() += 1;
        *sm.per_source
            .entry(s.label.source.as_str().to_owned())
            .or_default() += 1;
        let version = s
            .prediction
            .as_ref()
            .map_or("-".to_owned(), |p| p.model.version.clone());
        *sm.per_model_version.entry(version).or_default() += 1;
        if s.prediction.is_none() {
            sm.predictions_missing += 1;
        }
        let widen = |r: &mut Option<(String, String)>, t: String| {
            *r = Some(match r.take() {
                None => (t.clone(), t),
                Some((a, b)) => (a.min(t.clone()), b.max(t)),
            });
        };
        widen(&mut sm.captured, rfc3339(s.envelope.capture_time_us));
        widen(&mut sm.labelled, rfc3339(s.label.labelled_at_us));
    }

    /// Adds a record sample.
    pub fn add_record(&mut self, s: Sample) {
        self.count(&s);
        self.records.push(s);
    }

    /// Adds a frame sample whose image was written as `file`.
    pub fn add_frame(&mut self, s: Sample, file: String) {
        self.count(&s);
        self.frames.push((s, file));
    }

    /// `samples.csv`: every field any record has (in first-seen order), then [`TAIL`].
    pub fn records_csv(&self) -> Result<Option<Vec<u8>>, csv::Error> {
        if self.records.is_empty() {
            return Ok(None);
        }
        let mut columns: Vec<String> = Vec::new();
        for s in &self.records {
            if let Payload::Record(r) = &s.envelope.payload {
                for f in &r.fields {
                    if !columns.iter().any(|c| *c == f.name) {
                        columns.push(f.name.to_string());
                    }
                }
            }
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(
            std::iter::once("id")
                .chain(columns.iter().map(String::as_str))
                .chain(TAIL),
        )?;
        for s in &self.records {
            let Payload::Record(r) = &s.envelope.payload else {
                continue;
            };
            let values: HashMap<&str, String> = r
                .fields
                .iter()
                .map(|f| (f.name.as_str(), cell(&f.value)))
                .collect();
            let row = std::iter::once(s.id.clone())
                .chain(
                    columns
                        .iter()
                        .map(|c| values.get(c.as_str()).cloned().unwrap_or_default()),
                )
                .chain(tail(s));
            w.write_record(row)?;
        }
        w.into_inner().map(Some).map_err(|e| e.into_error().into())
    }

    /// `manifest.csv` of the frames: `file`, `id`, `camera`, then [`TAIL`].
    pub fn frames_csv(&self) -> Result<Option<Vec<u8>>, csv::Error> {
        if self.frames.is_empty() {
            return Ok(None);
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["file", "id", "camera"].into_iter().chain(TAIL))?;
        for (s, file) in &self.frames {
            let row = [file.clone(), s.id.clone(), s.envelope.source_id.clone()]
                .into_iter()
                .chain(tail(s));
            w.write_record(row)?;
        }
        w.into_inner().map(Some).map_err(|e| e.into_error().into())
    }
}

/// The image file of a frame: its encoded bytes as they came, or raw pixels as PNG.
fn image_file(id: &str, payload: &Payload) -> Result<Option<(String, Vec<u8>)>, String> {
    let stem: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match payload {
        Payload::Encoded { format, bytes } => {
            let ext = match format {
                argus_wire::ImageFormat::Jpeg => "jpg",
                argus_wire::ImageFormat::Png => "png",
            };
            Ok(Some((format!("{stem}.{ext}"), bytes.clone())))
        }
        Payload::Raw(raw) => {
            let (w, h) = (raw.width, raw.height);
            let img = match raw.layout {
                argus_wire::PixelLayout::Gray8 => image::DynamicImage::ImageLuma8(
                    image::GrayImage::from_raw(w, h, raw.data.clone()).ok_or("bad raw size")?,
                ),
                layout => {
                    let mut data = raw.data.clone();
                    if layout == argus_wire::PixelLayout::Bgr8 {
                        data.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
                    }
                    image::DynamicImage::ImageRgb8(
                        image::RgbImage::from_raw(w, h, data).ok_or("bad raw size")?,
                    )
                }
            };
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(|e| e.to_string())?;
            Ok(Some((format!("{stem}.png"), png)))
        }
        Payload::Record(_) => Ok(None),
    }
}

fn write(out: &Path, name: &str, bytes: &[u8]) -> Result<(), DriftError> {
    let path = out.join(name);
    std::fs::write(&path, bytes).map_err(|source| DriftError::Output { path, source })
}

fn kafka_setup(e: argus_kafka::KafkaSetupError) -> DriftError {
    DriftError::Setup(e)
}

/// Reads `bounds` of `topic`, calling `f` with each message, until every partition reached
/// its end. A partition that stops short (records deleted under it) ends at its high
/// watermark.
async fn read_bounds(
    consumer: &StreamConsumer,
    topic: &str,
    bounds: &Bounds,
    timeout: Duration,
    mut f: impl FnMut(&argus_kafka::rdkafka::message::BorrowedMessage<'_>),
) -> Result<(), DriftError> {
    let mut open: BTreeMap<i32, i64> = bounds
        .iter()
        .filter(|(_, (s, e))| s < e)
        .map(|(&p, &(_, e))| (p, e))
        .collect();
    if open.is_empty() {
        return Ok(());
    }
    consumer.assign(&bounded::assignment(topic, bounds).map_err(kafka_setup)?)?;
    while !open.is_empty() {
        let m = match tokio::time::timeout(timeout, consumer.recv()).await {
            Ok(m) => m?,
            Err(_) => {
                return Err(DriftError::Config(format!(
                    "reading {topic} stalled for {timeout:?} with partitions {:?} unfinished",
                    open.keys().collect::<Vec<_>>()
                )))
            }
        };
        let Some(&end) = open.get(&m.partition()) else {
            continue;
        };
        if m.offset() < end {
            f(&m);
        }
        if m.offset() + 1 >= end {
            open.remove(&m.partition());
        }
    }
    consumer.unassign()?;
    Ok(())
}

/// The labelled inputs of `wanted`, read back by offset; `missing` counts ids whose
/// offset is no longer (or never was) in the topic, `undecodable` those that do not decode.
async fn read_inputs(
    consumer: &StreamConsumer,
    wanted: &BTreeMap<(String, i32), BTreeSet<i64>>,
    timeout: Duration,
    summary: &mut ExportSummary,
) -> Result<BTreeMap<String, (Envelope, Option<String>, i64)>, DriftError> {
    let mut out = BTreeMap::new();
    for ((topic, partition), offsets) in wanted {
        // A partition that cannot be looked up (deleted, or the broker does not answer) is
        // read as empty: its inputs are counted missing, and the reason logged.
        let (low, high) = consumer
            .fetch_watermarks(topic, *partition, timeout)
            .unwrap_or_else(|e| {
                tracing::warn!(topic = %topic, partition, error = %e, inputs = offsets.len(), "input partition cannot be looked up; its inputs are counted as gone");
                (0, 0)
            });
        let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
            continue;
        };
        let start = first.max(low);
        let end = (last + 1).min(high);
        let mut bounds = Bounds::new();
        bounds.insert(*partition, (start, end.max(start)));
        read_bounds(consumer, topic, &bounds, timeout, |m| {
            if !offsets.contains(&m.offset()) {
                return;
            }
            let headers = argus_kafka::raw_headers(m);
            let rec = Incoming {
                topic: m.topic(),
                partition: m.partition(),
                offset: m.offset(),
                payload: m.payload().unwrap_or_default(),
                key: m.key(),
                headers: &headers,
                timestamp_ms: m.timestamp().to_millis(),
            };
            let id = format!("{topic}/{partition}/{}", m.offset());
            match rec.envelope() {
                Ok(env) => {
                    let key = m
                        .key()
                        .and_then(|k| std::str::from_utf8(k).ok())
                        .map(str::to_owned);
                    let ts = m
                        .timestamp()
                        .to_millis()
                        .unwrap_or(env.capture_time_us / 1000);
                    out.insert(id, (env, key, ts));
                }
                Err(_) => summary.inputs_undecodable += 1,
            }
        })
        .await?;
    }
    let found = out.len() as u64 + summary.inputs_undecodable;
    let asked: u64 = wanted.values().map(|o| o.len() as u64).sum();
    summary.inputs_missing = asked.saturating_sub(found);
    Ok(out)
}

/// The first prediction of every id in `ids` on `topic` between the Kafka times.
async fn read_predictions(
    consumer: &StreamConsumer,
    config: &ExportConfig,
    ids: &BTreeMap<String, (Envelope, Option<String>, i64)>,
) -> Result<HashMap<String, Prediction>, DriftError> {
    let (Some(first), Some(last)) = (
        ids.values().map(|v| v.2).min(),
        ids.values().map(|v| v.2).max(),
    ) else {
        return Ok(HashMap::new());
    };
    let window = i64::try_from(config.prediction_window.as_millis()).unwrap_or(i64::MAX);
    let bounds = bounded::time_bounds(
        consumer,
        &config.predictions_topic,
        Some(first.saturating_sub(1_000)),
        Some(last.saturating_add(window)),
        config.timeout,
    )
    .map_err(kafka_setup)?;
    let mut found = HashMap::new();
    read_bounds(
        consumer,
        &config.predictions_topic,
        &bounds,
        config.timeout,
        |m| {
            let Some(p) = m
                .payload()
                .and_then(|b| serde_json::from_slice::<Prediction>(b).ok())
            else {
                return;
            };
            if ids.contains_key(&p.id) && !found.contains_key(&p.id) {
                found.insert(p.id.clone(), p);
            }
        },
    )
    .await?;
    Ok(found)
}

/// Runs the export; see the module doc.
pub async fn export(
    config: &ExportConfig,
    settings: &KafkaSettings,
) -> Result<ExportSummary, DriftError> {
    let consumer = settings.reader("argus-export").map_err(kafka_setup)?;
    let bounds = bounded::time_bounds(
        &consumer,
        &config.labels_topic,
        config.from_ms,
        config.to_ms,
        config.timeout,
    )
    .map_err(kafka_setup)?;
    let mut labels = LabelSet::default();
    let mut read = 0u64;
    read_bounds(
        &consumer,
        &config.labels_topic,
        &bounds,
        config.timeout,
        |m| {
            read += 1;
            labels.add(m.payload().unwrap_or_default());
        },
    )
    .await?;
    let mut samples = Samples::new(config.segment_field.clone());
    let sm = &mut samples.summary;
    (
        sm.labels_read,
        sm.labels_invalid,
        sm.labels_duplicate,
        sm.labels_conflicting,
    ) = (read, labels.invalid, labels.duplicates, labels.conflicts);
    let inputs = read_inputs(&consumer, &labels.inputs(), config.timeout, sm).await?;
    let mut predictions = read_predictions(&consumer, config, &inputs).await?;
    std::fs::create_dir_all(config.out.join("images")).map_err(|source| DriftError::Output {
        path: config.out.join("images"),
        source,
    })?;
    for (id, (envelope, key, _)) in inputs {
        let Some(label) = labels.labels().get(&id).cloned() else {
            continue;
        };
        let sample = Sample {
            prediction: predictions.remove(&id),
            id,
            label,
            envelope,
            key,
        };
        match image_file(&sample.id, &sample.envelope.payload) {
            Ok(None) => samples.add_record(sample),
            Ok(Some((file, bytes))) => {
                let rel = format!("images/{file}");
                write(&config.out, &rel, &bytes)?;
                samples.add_frame(sample, rel);
            }
            Err(_) => samples.summary.inputs_undecodable += 1,
        }
    }
    finish(config, samples)
}

/// Writes the tables and the summary.
fn finish(config: &ExportConfig, mut samples: Samples) -> Result<ExportSummary, DriftError> {
    let csv_err = |e: csv::Error| DriftError::Config(format!("cannot write CSV: {e}"));
    if let Some(bytes) = samples.records_csv().map_err(csv_err)? {
        write(&config.out, "samples.csv", &bytes)?;
        samples.summary.files.push("samples.csv".into());
    }
    if let Some(bytes) = samples.frames_csv().map_err(csv_err)? {
        write(&config.out, "manifest.csv", &bytes)?;
        samples.summary.files.push("manifest.csv".into());
        samples.summary.files.push("images/".into());
    }
    samples.summary.files.push("summary.json".into());
    let json = serde_json::to_vec_pretty(&samples.summary)
        .map_err(|e| DriftError::Config(format!("cannot write the summary: {e}")))?;
    write(&config.out, "summary.json", &json)?;
    Ok(samples.summary)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use argus_wire::{Field, LabelSource, Record};

    fn label(id: &str, class: &str, at: i64) -> Vec<u8> {
        let mut l = Label::new(id, class, LabelSource::Annotator);
        l.labelled_at_us = at;
        serde_json::to_vec(&l).unwrap()
    }

    #[test]
    fn the_latest_label_of_an_id_counts_and_the_rest_are_counted() {
        let mut s = LabelSet::default();
        s.add(&label("in/0/5", "churn", 10));
        s.add(&label("in/0/5", "churn", 5));
        s.add(&label("in/0/5", "stay", 20));
        s.add(&label("in/1/7", "stay", 1));
        s.add(b"not json");
        s.add(&label("no-offset", "stay", 1));
        assert_eq!((s.invalid, s.duplicates, s.conflicts), (2, 1, 1));
        assert_eq!(s.labels()["in/0/5"].label, "stay");
        let inputs = s.inputs();
        assert_eq!(inputs[&("in".to_owned(), 0)], BTreeSet::from([5]));
        assert_eq!(inputs[&("in".to_owned(), 1)], BTreeSet::from([7]));
    }

    fn record_sample(id: &str, fields: &[(&str, Value)], class: &str) -> Sample {
        Sample {
            id: id.into(),
            label: serde_json::from_slice(&label(id, class, 1_000_000)).unwrap(),
            envelope: Envelope {
                schema_version: argus_wire::SCHEMA_VERSION,
                source_id: "src".into(),
                sequence: 0,
                capture_time_us: 2_000_000,
                payload: Payload::Record(Record {
                    fields: fields
                        .iter()
                        .map(|(n, v)| Field {
                            name: (*n).into(),
                            value: v.clone(),
                        })
                        .collect(),
                }),
            },
            key: Some("c-1".into()),
            prediction: None,
        }
    }

    #[test]
    fn records_become_one_csv_with_every_field_and_the_summary_counts_them() {
        let mut s = Samples::new(Some("region".into()));
        s.add_record(record_sample(
            "in/0/1",
            &[
                ("tenure", Value::Int(3)),
                ("region", Value::Text("north".into())),
            ],
            "churn",
        ));
        s.add_record(record_sample(
            "in/0/2",
            &[
                ("region", Value::Text("south".into())),
                ("autopay", Value::Bool(true)),
            ],
            "stay",
        ));
        let csv = String::from_utf8(s.records_csv().unwrap().unwrap()).unwrap();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "id,tenure,region,autopay,label,label_source,labelled_at,prediction,score,model,model_version,key,captured_at"
        );
        assert!(lines
            .next()
            .unwrap()
            .starts_with("in/0/1,3,north,,churn,annotator,"));
        assert!(lines
            .next()
            .unwrap()
            .starts_with("in/0/2,,south,true,stay,annotator,"));
        let sm = &s.summary;
        assert_eq!(sm.samples, 2);
        assert_eq!(sm.per_segment["north"], 1);
        assert_eq!(sm.per_model_version["-"], 2);
        assert_eq!(sm.predictions_missing, 2);
        assert_eq!(s.frames_csv().unwrap(), None);
    }

    #[test]
    fn raw_frames_are_written_as_png_and_encoded_ones_as_they_came() {
        let raw = Payload::Raw(argus_wire::RawImage {
            width: 2,
            height: 1,
            layout: argus_wire::PixelLayout::Bgr8,
            data: vec![0, 0, 255, 255, 0, 0],
        });
        let (name, png) = image_file("frames/0/9", &raw).unwrap().unwrap();
        assert_eq!(name, "frames_0_9.png");
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.get_pixel(0, 0).0, [255, 0, 0], "BGR became RGB");
        let jpeg = Payload::Encoded {
            format: argus_wire::ImageFormat::Jpeg,
            bytes: vec![1, 2, 3],
        };
        assert_eq!(
            image_file("a/1/2", &jpeg).unwrap(),
            Some(("a_1_2.jpg".into(), vec![1, 2, 3]))
        );
    }
}
