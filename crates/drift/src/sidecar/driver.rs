//! The Kafka side of the sidecar: creates the clients, feeds the [`Sidecar`] state machine
//! from a small `select!` loop and carries out the effects it returns (sends, stored
//! offsets, reports to the caller's channel).
use super::input::Incoming;
use super::state::{Effect, Owned, PartitionEnds, PartitionKey, Sidecar};
use super::{DriftConfig, DriftError, DriftStats, PANE_MESSAGE_MAX_BYTES};
use crate::metrics as m;
use crate::quality::{QualityAlert, QualityReport};
use argus_kafka::rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use argus_kafka::rdkafka::message::Message;
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use argus_kafka::rdkafka::{Offset, TopicPartitionList};
use argus_kafka::{ensure_topics, GroupContext, KafkaSettings, KafkaSetupError, TopicSpec};
use argus_stats::profile::Profile;
use argus_stats::report::DriftReport;
use metrics::gauge;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Where a caller (the demo, tests) wants every report this sidecar evaluates, besides the
/// topics.
#[derive(Debug, Default, Clone)]
pub struct Outputs {
    /// Drift reports.
    pub reports: Option<mpsc::UnboundedSender<DriftReport>>,
    /// Quality reports (with a labels topic).
    pub quality: Option<mpsc::UnboundedSender<QualityReport>>,
}

impl Outputs {
    /// Drift reports to `tx`.
    pub fn reports(tx: mpsc::UnboundedSender<DriftReport>) -> Self {
        Self {
            reports: Some(tx),
            quality: None,
        }
    }
}

/// Run one sidecar until `shutdown`. Reports go to the reports (and quality) topic when
/// this sidecar leads and, every one, to `outputs`.
pub async fn run(
    config: DriftConfig,
    settings: KafkaSettings,
    profile: Arc<Profile>,
    outputs: Outputs,
    shutdown: CancellationToken,
) -> Result<DriftStats, DriftError> {
    let mut sidecar = Sidecar::new(config.clone(), profile.clone())?;
    if config.create_topics {
        let mut topics = vec![
            TopicSpec::new(&config.panes_topic, 1)
                .with_config("max.message.bytes", &PANE_MESSAGE_MAX_BYTES.to_string())
                .with_config("retention.ms", "86400000"),
            TopicSpec::new(&config.reports_topic, 1),
        ];
        if let Some(q) = &config.quality {
            topics.push(TopicSpec::new(&q.quality_topic, 1));
            topics.push(TopicSpec::new(&q.alerts_topic, 1));
        }
        ensure_topics(&settings, &topics).await?;
    }
    gauge!(m::REFERENCE_INFO, "reference_id" => profile.id.clone(), "sha256" => profile.sha256.clone()).set(1.0);

    let cc = settings.consumer_config(&config.group, &config.sidecar_id);
    let consumer: StreamConsumer<GroupContext> = cc
        .create_with_context(GroupContext::new(&config.sidecar_id))
        .map_err(|error| KafkaSetupError::Client {
            role: "drift consumer",
            brokers: settings.brokers.clone(),
            error,
        })?;
    let mut topics = vec![config.input_topic.as_str()];
    if let Some(p) = &config.predictions_topic {
        topics.push(p);
    }
    if let Some(q) = &config.quality {
        topics.push(&q.labels_topic);
    }
    consumer.subscribe(&topics)?;
    let assignment = consumer.context().assignment();
    let panes_reader = panes_reader(&config, &settings)?;
    let mut ends = assign_panes_reader(&panes_reader, &config).await?;
    let quality_end = match &config.quality {
        Some(q) => ends.remove(&q.quality_topic).unwrap_or_default(),
        None => BTreeMap::new(),
    };
    sidecar.start(
        ends.remove(&config.reports_topic).unwrap_or_default(),
        quality_end,
    );
    // Partials carry bottom-k samples (≤ k per feature and segment): allow big messages.
    let producer: FutureProducer = settings
        .producer_config(&config.sidecar_id)
        .set("message.max.bytes", PANE_MESSAGE_MAX_BYTES.to_string())
        .create()
        .map_err(|error| KafkaSetupError::Client {
            role: "drift producer",
            brokers: settings.brokers.clone(),
            error,
        })?;
    let mut tick = tokio::time::interval(config.tick);
    let ends = Ends(&consumer);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            msg = consumer.recv() => match msg {
                Ok(msg) => {
                    // Header bytes are input: read without rdkafka's UTF-8 assumption.
                    let headers = argus_kafka::raw_headers(&msg);
                    let rec = Incoming {
                        topic: msg.topic(),
                        partition: msg.partition(),
                        offset: msg.offset(),
                        payload: msg.payload().unwrap_or_default(),
                        key: msg.key(),
                        headers: &headers,
                        timestamp_ms: msg.timestamp().to_millis(),
                    };
                    let generation = consumer.context().generation(rec.topic, rec.partition);
                    sidecar.on_record(&rec, generation, argus_wire::now_us())?;
                }
                Err(e) => tracing::warn!(error = %e, "drift consumer error"),
            },
            msg = panes_reader.recv() => match msg {
                Ok(msg) if msg.topic() == config.reports_topic => {
                    sidecar.on_report(msg.partition(), msg.offset(), msg.payload());
                }
                Ok(msg) if config.quality.as_ref().is_some_and(|q| q.quality_topic == msg.topic()) => {
                    sidecar.on_quality_report(msg.partition(), msg.offset(), msg.payload());
                }
                Ok(msg) => sidecar.on_pane(msg.offset(), msg.payload()),
                Err(e) => tracing::warn!(error = %e, "panes reader error"),
            },
            _ = tick.tick() => {
                if sidecar.metadata_due(Instant::now()) {
                    if let Some(expected) = watched_partitions(&consumer, &topics) {
                        sidecar.on_expected(expected);
                    }
                }
                let owned: Owned = assignment
                    .borrow()
                    .iter()
                    .map(|(t, p)| ((t.clone(), *p), consumer.context().generation(t, *p)))
                    .collect();
                for effect in sidecar.on_tick(&owned, &ends, Instant::now()) {
                    apply(effect, &mut sidecar, &config, &consumer, &producer, &outputs).await?;
                }
            }
        }
    }
    consumer.unsubscribe();
    Ok(sidecar.stats().clone())
}

/// Carry out one effect of a tick.
async fn apply(
    effect: Effect,
    sidecar: &mut Sidecar,
    config: &DriftConfig,
    consumer: &StreamConsumer<GroupContext>,
    producer: &FutureProducer,
    outputs: &Outputs,
) -> Result<(), DriftError> {
    match effect {
        Effect::Partial(record) => {
            // A partial the broker refuses (e.g. too large) is lost to its windows: counted
            // and logged, and the sidecar goes on (a restart would only rebuild the same
            // partial).
            let sent = send_json(producer, &config.panes_topic, &record.key(), &record).await;
            if let Err(e) = &sent {
                tracing::error!(error = %e, key = %record.key(), "partial pane summary not published; its windows will lack this partition's pane");
            }
            sidecar.partial_sent(sent.is_ok());
        }
        Effect::Progress(record) => {
            send_json(producer, &config.panes_topic, &record.key(), &record).await?;
        }
        Effect::StoreOffset {
            topic,
            partition,
            offset,
        } => {
            if let Err(e) = consumer.store_offset(&topic, partition, offset) {
                tracing::debug!(error = %e, topic = %topic, partition, "offset not stored");
            }
        }
        Effect::Evaluated(report) => {
            if let Some(tx) = &outputs.reports {
                let _ = tx.send(*report);
            }
        }
        Effect::Publish(report) => {
            send_json(producer, &config.reports_topic, &report.segment, &report).await?;
            sidecar.report_published(&report);
        }
        Effect::QualityEvaluated(report) => {
            if let Some(tx) = &outputs.quality {
                let _ = tx.send(*report);
            }
        }
        Effect::PublishQuality(e) => {
            let Some(q) = &config.quality else {
                return Ok(());
            };
            let key = format!("{}/{}", e.report.model.version, e.report.segment);
            // The alert first: a crash between the two repeats the alert, never loses it.
            if e.fired {
                let alert = QualityAlert::of(&e.report, argus_wire::now_us());
                send_json(producer, &q.alerts_topic, &key, &alert).await?;
                tracing::warn!(id = %alert.id, topic = %q.alerts_topic, "quality degradation alert published");
            }
            send_json(producer, &q.quality_topic, &key, &e.report).await?;
            sidecar.quality_published(&e, e.fired);
        }
    }
    Ok(())
}

/// The reader of the panes and reports topics (no group: it reads them whole).
fn panes_reader(
    config: &DriftConfig,
    settings: &KafkaSettings,
) -> Result<StreamConsumer, DriftError> {
    let mut pc = settings.consumer_config(
        &format!("{}-panes-{}", config.group, config.sidecar_id),
        &config.sidecar_id,
    );
    pc.set("enable.auto.commit", "false")
        .set("statistics.interval.ms", "0");
    Ok(pc.create().map_err(|error| KafkaSetupError::Client {
        role: "panes reader",
        brokers: settings.brokers.clone(),
        error,
    })?)
}

/// Every sidecar reads the whole panes topic (partials and progress) and the reports and
/// quality topics (what was already published). A topic created a moment ago may take a
/// while to show its partitions. Returns, per reports or quality topic, where each of its
/// non-empty partitions ends now.
async fn assign_panes_reader(
    reader: &StreamConsumer,
    config: &DriftConfig,
) -> Result<BTreeMap<String, BTreeMap<i32, i64>>, DriftError> {
    let mut tpl = TopicPartitionList::new();
    let mut ends: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    let mut read = vec![&config.panes_topic, &config.reports_topic];
    if let Some(q) = &config.quality {
        read.push(&q.quality_topic);
    }
    for topic in read {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let meta = reader.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            let partitions: Vec<i32> = meta
                .topics()
                .iter()
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if !partitions.is_empty() {
                for p in partitions {
                    tpl.add_partition_offset(topic, p, Offset::Beginning)?;
                    if topic != &config.panes_topic {
                        let (_, high) =
                            reader.fetch_watermarks(topic, p, Duration::from_secs(10))?;
                        if high > 0 {
                            ends.entry(topic.clone()).or_default().insert(p, high);
                        }
                    }
                }
                break;
            }
            if Instant::now() > deadline {
                return Err(DriftError::Config(format!(
                    "topic {topic} has no partitions"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    reader.assign(&tpl)?;
    Ok(ends)
}

/// Every partition of the watched topics, or `None` when a lookup failed (the partitions
/// known before are kept). A topic that does not exist (yet) is left out: windows go on
/// without it rather than wait for it forever.
fn watched_partitions<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    topics: &[&str],
) -> Option<Vec<PartitionKey>> {
    let mut expected = Vec::new();
    let mut complete = true;
    for t in topics {
        match consumer.fetch_metadata(Some(t), Duration::from_secs(5)) {
            Ok(md) => {
                let before = expected.len();
                for mt in md.topics() {
                    for p in mt.partitions() {
                        expected.push((mt.name().to_owned(), p.id()));
                    }
                }
                if expected.len() == before {
                    tracing::warn!(topic = %t, "watched topic has no partitions; windows do not include it until it exists");
                }
            }
            Err(e) => {
                complete = false;
                tracing::warn!(error = %e, topic = %t, "metadata lookup failed; keeping the partitions known before");
            }
        }
    }
    complete.then_some(expected)
}

/// The broker lookups of [`PartitionEnds`], through the group consumer (blocking round
/// trips, rare: at most once a second per quiet partition).
struct Ends<'a>(&'a StreamConsumer<GroupContext>);

impl PartitionEnds for Ends<'_> {
    fn watermarks(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        self.0
            .fetch_watermarks(topic, partition, Duration::from_secs(2))
            .map_err(|e| {
                tracing::debug!(error = %e, topic, partition, "high watermark lookup failed");
            })
            .ok()
    }

    fn committed(&self, topic: &str, partition: i32) -> Option<Option<i64>> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        match self.0.committed_offsets(tpl, Duration::from_secs(2)) {
            Ok(c) => Some(
                match c.find_partition(topic, partition).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => Some(o),
                    _ => None,
                },
            ),
            Err(e) => {
                tracing::debug!(error = %e, topic, partition, "committed offset lookup failed");
                None
            }
        }
    }
}

async fn send_json<T: serde::Serialize>(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    value: &T,
) -> Result<(), DriftError> {
    let body = serde_json::to_vec(value)
        .map_err(|e| DriftError::Config(format!("cannot serialise: {e}")))?;
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(&body),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| DriftError::Kafka(e))?;
    Ok(())
}
