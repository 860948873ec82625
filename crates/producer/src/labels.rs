//! `argus label`: ground truth from a CSV or JSON-lines file (or stdin) onto the labels
//! topic as `argus.label/v1` ([`argus_wire::Label`]). One label per row: `id` (the
//! prediction's id, `topic/partition/offset`), `label`, `source` (annotator, feedback,
//! system; or a default), optional `labelled_at` (RFC 3339 UTC) or `labelled_at_us`
//! (µs since the epoch; default: now), `confidence`, `key` (the input's key), `by`. Rows are
//! read by the same rules as `argus produce records` ([`argus_wire::records`]) with every
//! column read as text but `confidence`; a row that is not a valid label is a bad row,
//! named with its line and what to fix, skipped or ending the run as `--on-bad-row` says.
use crate::metrics as m;
use crate::produce::{BadRows, ProduceError};
use crate::records::{self, BadRow, RecordFormat, RecordsSource, Row};
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use argus_wire::{ColumnType, Label, LabelSource, Value, LABEL_SCHEMA};
use std::time::Duration;

/// Columns a label file may have.
pub const COLUMNS: [&str; 8] = [
    "id",
    "label",
    "source",
    "labelled_at",
    "labelled_at_us",
    "confidence",
    "key",
    "by",
];

/// What rows do not say.
#[derive(Debug, Clone, Default)]
pub struct LabelDefaults {
    /// The source of rows without one.
    pub source: Option<LabelSource>,
    /// Who labelled rows without `by`.
    pub by: Option<String>,
}

/// A label file (`-`: stdin, then `format` is needed), key column `id`.
pub fn label_source(path: &str, format: Option<RecordFormat>) -> Result<RecordsSource, String> {
    RecordsSource::new(path, format, "id")
}

/// The column type of a label column: text but `confidence` (a float) and
/// `labelled_at_us` (an integer), so a label `1` or a key `007` stays as written.
fn column_type(column: &str) -> ColumnType {
    match column {
        "confidence" => ColumnType::Float,
        "labelled_at_us" => ColumnType::Int,
        _ => ColumnType::Text,
    }
}

/// Opens a label file (or stdin): a CSV's header is read first so the label columns it has
/// are declared with their types (text but `confidence` and `labelled_at_us`); JSON values
/// keep their own.
pub fn open(source: &RecordsSource) -> Result<records::RecordReader, String> {
    use std::io::{BufRead, Read};
    let input: Box<dyn Read + Send> = match &source.path {
        None => Box::new(std::io::stdin()),
        Some(p) => std::fs::File::open(p)
            .map(|f| Box::new(f) as Box<dyn Read + Send>)
            .map_err(|e| format!("{}: cannot open: {e}", p.display()))?,
    };
    let mut source = source.clone();
    let mut input = std::io::BufReader::new(input);
    let mut header = String::new();
    if source.format == RecordFormat::Csv {
        input
            .read_line(&mut header)
            .map_err(|e| format!("{}: cannot read: {e}", source.name()))?;
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(header.as_bytes());
        if let Some(Ok(names)) = r.records().next() {
            source.types = names
                .iter()
                .filter(|n| COLUMNS.contains(n))
                .map(|n| (n.to_string(), column_type(n)))
                .collect();
        }
    }
    let rest: Box<dyn Read + Send> =
        Box::new(std::io::Cursor::new(header.into_bytes()).chain(input));
    records::RecordReader::from_reader(&source, rest)
}

fn text(row: &Row, name: &str) -> Option<String> {
    row.record
        .fields
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| match &f.value {
            Value::Text(t) if !t.is_empty() => Some(t.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(x) => Some(x.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
}

/// `2026-12-05T10:00:00Z` (fractional seconds allowed) → µs since the epoch.
pub fn parse_rfc3339_us(s: &str) -> Result<i64, String> {
    let err = || format!("labelled_at {s:?} is not RFC 3339 UTC like 2026-12-05T10:00:00Z");
    let body = s.trim().strip_suffix(['Z', 'z']).ok_or_else(err)?;
    let t = humantime::parse_rfc3339_weak(body).map_err(|_| err())?;
    let d = t.duration_since(std::time::UNIX_EPOCH).map_err(|_| err())?;
    i64::try_from(d.as_micros()).map_err(|_| err())
}

/// The label of one row (`now_us` when it says no time).
pub fn to_label(row: &Row, defaults: &LabelDefaults, now_us: i64) -> Result<Label, String> {
    let unknown: Vec<&str> = row
        .record
        .fields
        .iter()
        .map(|f| f.name.as_str())
        .filter(|n| !COLUMNS.contains(n))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unknown column(s) {}: a label row has {}",
            unknown.join(", "),
            COLUMNS.join(", ")
        ));
    }
    let label = text(row, "label").ok_or("no label")?;
    let source = match (text(row, "source"), defaults.source) {
        (Some(s), _) => s.parse::<LabelSource>()?,
        (None, Some(d)) => d,
        (None, None) => return Err("no source: give a source column or --source".into()),
    };
    let labelled_at_us = match (text(row, "labelled_at"), text(row, "labelled_at_us")) {
        (Some(t), _) => parse_rfc3339_us(&t)?,
        (None, Some(us)) => us.parse().map_err(|_| format!("labelled_at_us {us:?}"))?,
        (None, None) => now_us,
    };
    let confidence = row
        .record
        .fields
        .iter()
        .find_map(|f| match (&*f.name, &f.value) {
            ("confidence", Value::Float(x)) => Some(*x),
            ("confidence", Value::Int(i)) => Some(*i as f64),
            _ => None,
        });
    let l = Label {
        schema: LABEL_SCHEMA.into(),
        id: row.key.clone(),
        key: text(row, "key"),
        label,
        source,
        labelled_at_us,
        confidence,
        by: text(row, "by").or_else(|| defaults.by.clone()),
    };
    l.validate().map_err(|e| e.to_string())?;
    Ok(l)
}

/// What a label run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSummary {
    /// Labels the broker acknowledged.
    pub published: u64,
    /// Rows skipped as bad.
    pub bad: u64,
    /// Labels the broker did not take.
    pub failed: u64,
}

impl std::fmt::Display for LabelSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "labels: {} published, {} bad rows skipped, {} failed",
            self.published, self.bad, self.failed
        )
    }
}

/// Publishes one label (value: its JSON; key: [`Label::kafka_key`]) and waits for the ack.
pub async fn send_label(
    producer: &FutureProducer,
    topic: &str,
    label: &Label,
) -> Result<(), String> {
    let json = serde_json::to_vec(label).map_err(|e| e.to_string())?;
    let record = FutureRecord::to(topic)
        .key(label.kafka_key())
        .payload(json.as_slice());
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map(|_| ())
        .map_err(|(e, _)| e.to_string())
}

/// Reads `source` and publishes its labels to `topic`, one at a time in file order.
pub async fn publish(
    source: &RecordsSource,
    defaults: &LabelDefaults,
    bad_rows: BadRows,
    topic: &str,
    producer: &FutureProducer,
) -> Result<LabelSummary, ProduceError> {
    let mut reader = open(source).map_err(ProduceError::Source)?;
    let mut summary = LabelSummary::default();
    while let Some(row) = reader.next_row() {
        let label = row.and_then(|r| {
            to_label(&r, defaults, argus_wire::now_us()).map_err(|message| BadRow {
                source_name: source.name(),
                line: r.line,
                message,
            })
        });
        let label = match label {
            Ok(l) => l,
            Err(bad) => {
                metrics::counter!(m::LABELS, "outcome" => "bad").increment(1);
                tracing::warn!(%bad, "label row skipped");
                summary.bad += 1;
                if bad_rows == BadRows::Fail {
                    return Err(ProduceError::BadRow(bad));
                }
                continue;
            }
        };
        match send_label(producer, topic, &label).await {
            Ok(()) => {
                metrics::counter!(m::LABELS, "outcome" => "ok").increment(1);
                summary.published += 1;
            }
            Err(e) => {
                metrics::counter!(m::LABELS, "outcome" => "error").increment(1);
                tracing::error!(id = %label.id, error = %e, "label not published");
                summary.failed += 1;
            }
        }
    }
    Ok(summary)
}

/// Whether the input `id` is among the `share` labelled: a hash of the id (FNV-1a, then
/// splitmix64's finaliser) below `share`, so the choice is deterministic and even.
pub fn selected(id: &str, share: f64) -> bool {
    if share >= 1.0 {
        return true;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64 <= share
}

/// Labels waiting for their delay, in the order their inputs were delivered (the delay is
/// the same for all, so that is due order).
#[derive(Debug, Default)]
pub struct LabelQueue {
    waiting: std::collections::VecDeque<(std::time::Instant, Label)>,
}

impl LabelQueue {
    /// Queues `label` to go out at `due`.
    pub fn push(&mut self, due: std::time::Instant, label: Label) {
        self.waiting.push_back((due, label));
    }

    /// The labels due by `now` (all of them with `all`), each stamped `labelled_at_us` =
    /// `now_us` (when the truth "became known"), and how many of them were not due yet.
    pub fn due(&mut self, now: std::time::Instant, now_us: i64, all: bool) -> (Vec<Label>, u64) {
        let (mut out, mut early) = (Vec::new(), 0);
        while let Some((due, _)) = self.waiting.front() {
            if *due > now {
                if !all {
                    break;
                }
                early += 1;
            }
            if let Some((_, mut l)) = self.waiting.pop_front() {
                l.labelled_at_us = now_us;
                out.push(l);
            }
        }
        (out, early)
    }

    /// Labels waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;

    fn rows(ext: &str, text: &str) -> Vec<Result<Row, BadRow>> {
        let mut f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        let src = label_source(f.path().to_str().unwrap(), None).unwrap();
        let mut r = open(&src).unwrap();
        std::iter::from_fn(|| r.next_row()).collect()
    }

    #[test]
    fn csv_rows_become_labels_with_defaults_and_times() {
        let d = LabelDefaults {
            source: Some(LabelSource::Annotator),
            by: Some("ann-1".into()),
        };
        let got: Vec<Result<Label, String>> = rows(
            ".csv",
            "id,label,labelled_at,confidence,key\n\
             frames/0/5,1,2026-12-05T10:00:00Z,0.9,cam-1\n\
             frames/0/6,empty,,,007\n\
             frames/0/7,person,yesterday,,\n\
             frames/0/8,person,,1.5,\n\
             nope,person,,,\n",
        )
        .into_iter()
        .map(|r| to_label(&r.unwrap(), &d, 42))
        .collect();
        let first = got[0].as_ref().unwrap();
        assert_eq!(
            first.label, "1",
            "a label that looks like a number stays text"
        );
        assert_eq!(first.labelled_at_us, 1_796_464_800_000_000);
        assert_eq!(
            (first.confidence, first.key.as_deref()),
            (Some(0.9), Some("cam-1"))
        );
        assert_eq!(
            (first.source, first.by.as_deref()),
            (LabelSource::Annotator, Some("ann-1"))
        );
        let second = got[1].as_ref().unwrap();
        assert_eq!(
            (second.labelled_at_us, second.key.as_deref()),
            (42, Some("007"))
        );
        assert!(got[2].as_ref().unwrap_err().contains("RFC 3339"));
        assert!(got[3].as_ref().unwrap_err().contains("confidence"));
        assert!(got[4]
            .as_ref()
            .unwrap_err()
            .contains("topic/partition/offset"));
    }

    #[test]
    fn a_share_of_ids_is_chosen_deterministically_and_labels_wait_their_delay() {
        let ids: Vec<String> = (0..10_000)
            .map(|i| format!("frames/{}/{i}", i % 4))
            .collect();
        let chosen = ids.iter().filter(|id| selected(id, 0.2)).count();
        // Binomial(10 000, 0.2): sd 40; 5 sd either way.
        assert!((1800..=2200).contains(&chosen), "{chosen}");
        assert!(ids.iter().all(|id| selected(id, 1.0)));
        assert_eq!(
            ids.iter().filter(|id| selected(id, 0.2)).count(),
            chosen,
            "the same ids every time"
        );
        let t0 = std::time::Instant::now();
        let mut q = LabelQueue::default();
        for (i, d) in [1u64, 2, 3].iter().enumerate() {
            let l = Label::new(format!("t/0/{i}"), "x", LabelSource::System);
            q.push(t0 + std::time::Duration::from_secs(*d), l);
        }
        assert!(q.due(t0, 5, false).0.is_empty());
        let (due, early) = q.due(t0 + std::time::Duration::from_secs(2), 9, false);
        assert_eq!((due.len(), early), (2, 0));
        assert!(due.iter().all(|l| l.labelled_at_us == 9));
        assert_eq!(q.len(), 1);
        let (rest, early) = q.due(t0, 11, true);
        assert_eq!((rest.len(), early, q.is_empty()), (1, 1, true));
    }

    #[test]
    fn jsonl_rows_need_a_source_and_known_columns() {
        let got: Vec<Result<Label, String>> = rows(
            ".jsonl",
            "{\"id\": \"t/1/2\", \"label\": \"churn\", \"source\": \"feedback\", \"labelled_at_us\": 7}\n\
             {\"id\": \"t/1/3\", \"label\": \"stay\"}\n\
             {\"id\": \"t/1/4\", \"label\": \"stay\", \"source\": \"system\", \"colour\": \"red\"}\n\
             {\"id\": \"t/1/5\", \"label\": \"stay\", \"source\": \"oracle\"}\n",
        )
        .into_iter()
        .map(|r| to_label(&r.unwrap(), &LabelDefaults::default(), 0))
        .collect();
        let l = got[0].as_ref().unwrap();
        assert_eq!((l.source, l.labelled_at_us), (LabelSource::Feedback, 7));
        assert!(got[1].as_ref().unwrap_err().contains("--source"));
        assert!(got[2].as_ref().unwrap_err().contains("colour"));
        assert!(got[3].as_ref().unwrap_err().contains("oracle"));
    }
}
