//! Bounded reads for batch jobs (`argus score`, `argus export-training`): a topic's
//! offsets between two times, the end fixed when asked, so a job reads a range that does
//! not grow under it.
use crate::KafkaSetupError;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::Duration;

/// Per partition: the offset to start from and the end (exclusive).
pub type Bounds = BTreeMap<i32, (i64, i64)>;

fn lookup(what: String, source: KafkaError) -> KafkaSetupError {
    KafkaSetupError::Lookup { what, source }
}

/// The partitions of `topic` with, for each, the first offset at or after `from_ms` (the
/// partition's start without it) and the first offset at or after `to_ms` (the end seen
/// now without it, and never beyond it). Times are Kafka timestamps, ms since the epoch.
pub fn time_bounds<X: ConsumerContext + 'static>(
    consumer: &StreamConsumer<X>,
    topic: &str,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    timeout: Duration,
) -> Result<Bounds, KafkaSetupError> {
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| lookup(format!("cannot read metadata of {topic}"), e))?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(KafkaSetupError::MissingTopic {
            topic: topic.to_owned(),
        });
    }
    let mut bounds = Bounds::new();
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| lookup(format!("cannot read the offsets of {topic}/{p}"), e))?;
        bounds.insert(p, (low, high.max(low)));
    }
    let at = |ms: i64| offsets_at(consumer, topic, &bounds, ms, timeout);
    let starts = from_ms.map(|ms| at(ms.max(0))).transpose()?;
    let ends = to_ms.map(|ms| at(ms.max(0))).transpose()?;
    for (p, (start, end)) in bounds.iter_mut() {
        if let Some(e) = ends.as_ref().and_then(|e| e.get(p)) {
            *end = (*e).clamp(*start, *end);
        }
        if let Some(s) = starts.as_ref().and_then(|s| s.get(p)) {
            *start = (*s).clamp(*start, *end);
        }
    }
    Ok(bounds)
}

/// Per partition of `bounds`: the first offset whose timestamp is at or after `ms` (the
/// partition's end when none is).
fn offsets_at<X: ConsumerContext + 'static>(
    consumer: &StreamConsumer<X>,
    topic: &str,
    bounds: &Bounds,
    ms: i64,
    timeout: Duration,
) -> Result<BTreeMap<i32, i64>, KafkaSetupError> {
    let mut query = TopicPartitionList::new();
    for &p in bounds.keys() {
        query
            .add_partition_offset(topic, p, Offset::Offset(ms))
            .map_err(|e| lookup("bad offset query".into(), e))?;
    }
    let found = consumer
        .offsets_for_times(query, timeout)
        .map_err(|e| lookup(format!("cannot look up offsets by time in {topic}"), e))?;
    let mut out = BTreeMap::new();
    for e in found.elements() {
        if let Err(err) = e.error() {
            return Err(lookup(
                format!(
                    "cannot look up the offset of time {ms} in {topic}/{}",
                    e.partition()
                ),
                err,
            ));
        }
        let end = bounds.get(&e.partition()).map_or(0, |b| b.1);
        let offset = match e.offset() {
            Offset::Offset(o) => o.min(end),
            // No record at or after the time.
            _ => end,
        };
        out.insert(e.partition(), offset);
    }
    Ok(out)
}

/// The partitions of `bounds` that hold records, each at its start offset.
pub fn assignment(topic: &str, bounds: &Bounds) -> Result<TopicPartitionList, KafkaSetupError> {
    let mut tpl = TopicPartitionList::new();
    for (&p, &(start, end)) in bounds {
        if start < end {
            tpl.add_partition_offset(topic, p, Offset::Offset(start))
                .map_err(|e| lookup("bad offset".into(), e))?;
        }
    }
    Ok(tpl)
}

/// Records in `bounds`.
pub fn total(bounds: &Bounds) -> i64 {
    bounds.values().map(|(start, end)| end - start).sum()
}
