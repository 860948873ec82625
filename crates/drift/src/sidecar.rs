//! `argus drift watch`: the sidecar loop.
//!
//! It joins its own consumer group on the input topic (and the predictions topic), keeps
//! event-time panes per assigned partition (`pane`), publishes each final pane's partial
//! summary and its partition's progress to the panes topic, reads the whole panes topic
//! back into an [`Aggregator`] and — on the sidecar that owns partition 0 of the input
//! topic — publishes one report per complete window and segment to the reports topic.
//! Offsets: a partition's committed offset is the first record of its oldest open pane, so a
//! restarted or new owner replays open panes in full; partials already published are not
//! counted twice (see `aggregate`).
use crate::aggregate::{AggregateConfig, Aggregator};
use crate::features::{self, image_feature_names, PREDICTED_CLASS, SCORE};
use crate::metrics as m;
use crate::pane::{Admit, PaneConfig, PaneMessage, PaneRecord, PartitionPanes, Progress};
use argus_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use argus_kafka::rdkafka::error::KafkaError;
use argus_kafka::rdkafka::message::Message;
use argus_kafka::rdkafka::producer::{FutureProducer, FutureRecord};
use argus_kafka::rdkafka::{Offset, TopicPartitionList};
use argus_kafka::{ensure_topics, GroupContext, KafkaSettings, KafkaSetupError, TopicSpec};
use argus_stats::evaluate::EvalConfig;
use argus_stats::hash::Sampler;
use argus_stats::image::ImageHistograms;
use argus_stats::profile::{Profile, StreamKind};
use argus_stats::report::{DriftReport, ModelInfo};
use argus_stats::summary::Cell;
use metrics::{counter, gauge, histogram};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Largest message on the panes topic (the topic is created with this `max.message.bytes`;
/// a partial of 20 numeric features × 1024 samples is about 0.8 MB of JSON per segment).
pub const PANE_MESSAGE_MAX_BYTES: usize = 16 * 1024 * 1024;

/// What a sidecar needs to know. All sidecars of one group must agree on the window and
/// sampling settings (and the profile); the sidecar id is theirs alone.
#[derive(Debug, Clone)]
pub struct DriftConfig {
    /// The stream to watch (frames or records).
    pub input_topic: String,
    /// The predictions topic, when model outputs (score, predicted class) are watched too.
    pub predictions_topic: Option<String>,
    /// Where sidecars exchange pane summaries and progress.
    pub panes_topic: String,
    /// Where drift reports go.
    pub reports_topic: String,
    /// Consumer group of the sidecars.
    pub group: String,
    /// This sidecar's id, unique in the group.
    pub sidecar_id: String,
    /// Pane length (event time).
    pub pane: Duration,
    /// Panes per window.
    pub window_panes: u32,
    /// How far a record may lag the newest one (event time) before its pane is final.
    pub lateness: Duration,
    /// Share of records summarised, (0, 1], by record hash.
    pub sample_rate: f64,
    /// Frames per camera per second of event time at most (0 = no cap).
    pub max_fps: f64,
    /// Cameras beyond this many get no segment of their own (fleet `*` only).
    pub max_segments: usize,
    /// Consecutive drifting windows that fire the alarm.
    pub alarm_k: u32,
    /// Evaluation thresholds.
    pub eval: EvalConfig,
    /// The model, named in reports.
    pub model: ModelInfo,
    /// How often panes are closed, progress published and reports evaluated.
    pub tick: Duration,
    /// A partition that has sent nothing for this long (wall clock) follows the furthest
    /// watermark, so it does not hold windows back (`None`: one pane).
    pub idle_timeout: Option<Duration>,
    /// Records with an event time further than this ahead of the wall clock are invalid
    /// (a wrong unit or clock would otherwise push the watermark into the future).
    pub max_future: Duration,
    /// Create the panes and reports topics if missing (off where topics are made elsewhere,
    /// e.g. the embedded broker, whose admin API is limited).
    pub create_topics: bool,
}

impl DriftConfig {
    /// Defaults for everything but the input topic, the sidecar id and the model.
    pub fn new(input_topic: &str, sidecar_id: &str, model: ModelInfo) -> Self {
        Self {
            input_topic: input_topic.to_owned(),
            predictions_topic: None,
            panes_topic: "drift.panes".to_owned(),
            reports_topic: "drift".to_owned(),
            group: "argus-drift".to_owned(),
            sidecar_id: sidecar_id.to_owned(),
            pane: Duration::from_secs(60),
            window_panes: 5,
            lateness: Duration::from_secs(30),
            sample_rate: 1.0,
            max_fps: 1.0,
            max_segments: 200,
            alarm_k: 3,
            eval: EvalConfig::default(),
            model,
            tick: Duration::from_millis(250),
            create_topics: true,
            idle_timeout: None,
            max_future: Duration::from_secs(3600),
        }
    }

    /// Cross-field checks; the message says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.pane < Duration::from_millis(100) {
            return Err("--pane must be at least 100ms".into());
        }
        if self.window_panes == 0 || self.alarm_k == 0 {
            return Err("--window-panes and --alarm-windows must be at least 1".into());
        }
        if !(self.sample_rate > 0.0 && self.sample_rate <= 1.0) {
            return Err("--sample-rate must be in (0, 1]".into());
        }
        if !(self.max_fps >= 0.0 && self.max_fps.is_finite()) {
            return Err("--max-fps must be ≥ 0 (0 = no cap)".into());
        }
        if self.predictions_topic.as_deref() == Some(self.input_topic.as_str()) {
            return Err("--predictions-topic must differ from the input topic".into());
        }
        Ok(())
    }
}

/// Why the sidecar stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// Clients or topics could not be set up.
    #[error(transparent)]
    Setup(#[from] KafkaSetupError),
    /// Kafka failed while running.
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The stream does not fit the profile (its schema hash or features).
    #[error("the stream does not match the profile: {0}")]
    SchemaMismatch(String),
    /// The configuration is inconsistent.
    #[error("invalid sidecar configuration: {0}")]
    Config(String),
}

/// Counters a caller (the demo, tests) can read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DriftStats {
    /// Records read.
    pub records: u64,
    /// Records summarised.
    pub sampled: u64,
    /// Records whose pane was already final.
    pub late: u64,
    /// Records that yielded no features.
    pub invalid: u64,
    /// Partial pane summaries published.
    pub partials: u64,
    /// Drift reports published.
    pub reports: u64,
}

/// Feature indices the stream maps onto.
struct Layout {
    image: Vec<Option<usize>>,
    record: HashMap<String, usize>,
    score: Option<usize>,
    class: Option<usize>,
    positive_label: Option<String>,
}

impl Layout {
    fn new(profile: &Profile) -> Result<Self, DriftError> {
        let fleet = profile.fleet();
        let score = fleet.feature_index(SCORE);
        let class = fleet.feature_index(PREDICTED_CLASS);
        let mut image = Vec::new();
        let mut record = HashMap::new();
        match profile.stream {
            StreamKind::Images => {
                for name in image_feature_names() {
                    image.push(fleet.feature_index(&name));
                }
                if image.iter().all(Option::is_none) {
                    return Err(DriftError::SchemaMismatch(
                        "the profile is for images but has none of the image features; rebuild it with `argus drift profile --images`".into(),
                    ));
                }
            }
            StreamKind::Records => {
                for (i, f) in fleet.features.iter().enumerate() {
                    if Some(i) != score && Some(i) != class {
                        record.insert(f.name.clone(), i);
                    }
                }
            }
        }
        Ok(Self {
            image,
            record,
            score,
            class,
            positive_label: profile.score_label.clone().or_else(|| {
                profile
                    .calibration
                    .as_ref()
                    .map(|c| c.positive_label.clone())
            }),
        })
    }
}

/// Run one sidecar until `shutdown`. Reports go to the reports topic (when this sidecar
/// leads) and, every one, to `reports_out` if given.
pub async fn run(
    config: DriftConfig,
    settings: KafkaSettings,
    profile: Arc<Profile>,
    reports_out: Option<mpsc::UnboundedSender<DriftReport>>,
    shutdown: CancellationToken,
) -> Result<DriftStats, DriftError> {
    config.validate().map_err(DriftError::Config)?;
    let layout = Layout::new(&profile)?;
    if config.create_topics {
        ensure_topics(
            &settings,
            &[
                TopicSpec::new(&config.panes_topic, 1)
                    .with_config("max.message.bytes", &PANE_MESSAGE_MAX_BYTES.to_string())
                    .with_config("retention.ms", "86400000"),
                TopicSpec::new(&config.reports_topic, 1),
            ],
        )
        .await?;
    }
    gauge!(m::REFERENCE_INFO, "reference_id" => profile.id.clone(), "sha256" => profile.sha256.clone()).set(1.0);

    let cc = settings.consumer_config(&config.group, &config.sidecar_id);
    let consumer: StreamConsumer<GroupContext> = cc
        .create_with_context(GroupContext::new(&config.sidecar_id))
        .map_err(|source| KafkaSetupError::Client {
            role: "drift consumer",
            brokers: settings.brokers.clone(),
            source,
        })?;
    let mut topics = vec![config.input_topic.as_str()];
    if let Some(p) = &config.predictions_topic {
        topics.push(p);
    }
    consumer.subscribe(&topics)?;
    let assignment = consumer.context().assignment();

    let mut pc = settings.consumer_config(
        &format!("{}-panes-{}", config.group, config.sidecar_id),
        &config.sidecar_id,
    );
    pc.set("enable.auto.commit", "false")
        .set("statistics.interval.ms", "0");
    let panes_reader: StreamConsumer = pc.create().map_err(|source| KafkaSetupError::Client {
        role: "panes reader",
        brokers: settings.brokers.clone(),
        source,
    })?;
    // Every sidecar reads the whole panes topic (partials and progress) and the reports
    // topic (what was already published). A topic created a moment ago may take a while to
    // show its partitions.
    let mut tpl = TopicPartitionList::new();
    let mut reports_end: BTreeMap<i32, i64> = BTreeMap::new();
    for topic in [&config.panes_topic, &config.reports_topic] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let meta = panes_reader.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            let partitions: Vec<i32> = meta
                .topics()
                .iter()
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if !partitions.is_empty() {
                for p in partitions {
                    tpl.add_partition_offset(topic, p, Offset::Beginning)?;
                    if topic == &config.reports_topic {
                        let (_, high) =
                            panes_reader.fetch_watermarks(topic, p, Duration::from_secs(10))?;
                        if high > 0 {
                            reports_end.insert(p, high);
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
    panes_reader.assign(&tpl)?;
    // Reports already on the reports topic, per segment: the newest window end.
    let mut reported: HashMap<String, i64> = HashMap::new();
    // Evaluated reports the reports topic does not show yet (the publisher's backlog).
    let mut pending: BTreeMap<(i64, String), DriftReport> = BTreeMap::new();
    let idle_timeout = config.idle_timeout.unwrap_or(config.pane);
    // Partials carry bottom-k samples (≤ k per feature and segment): allow big messages.
    let producer: FutureProducer = settings
        .producer_config(&config.sidecar_id)
        .set("message.max.bytes", PANE_MESSAGE_MAX_BYTES.to_string())
        .create()
        .map_err(|source| KafkaSetupError::Client {
            role: "drift producer",
            brokers: settings.brokers.clone(),
            source,
        })?;

    let pane_cfg = PaneConfig {
        pane_us: i64::try_from(config.pane.as_micros()).unwrap_or(i64::MAX),
        lateness_us: i64::try_from(config.lateness.as_micros()).unwrap_or(i64::MAX),
        sampler: Sampler::new(config.sample_rate),
        max_fps: config.max_fps,
        max_segments: config.max_segments,
        seed: profile.settings.seed,
    };
    let mut aggregator = Aggregator::new(
        AggregateConfig {
            pane_us: pane_cfg.pane_us,
            window_panes: config.window_panes,
            alarm_k: config.alarm_k,
            eval: config.eval.clone(),
            model: config.model.clone(),
            sample_rate: config.sample_rate,
            input_topic: config.input_topic.clone(),
        },
        profile.clone(),
    );
    let mut parts: BTreeMap<(String, i32), PartitionPanes> = BTreeMap::new();
    let mut published_wm: HashMap<(String, i32), i64> = HashMap::new();
    let mut stats = DriftStats::default();
    let mut tick = tokio::time::interval(config.tick);
    let mut last_meta: Option<Instant> = None;
    let mut schema_checked = false;

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            msg = consumer.recv() => match msg {
                Ok(msg) => {
                    let topic = msg.topic().to_owned();
                    let key = (topic.clone(), msg.partition());
                    // A partition assigned since the last tick — or revoked and assigned again,
                    // which rewinds the consumer to the committed offset — starts afresh at its
                    // published floor.
                    let generation = consumer.context().generation(&topic, msg.partition());
                    let state = parts.entry(key).or_insert_with(|| {
                        PartitionPanes::new(&topic, msg.partition(), aggregator.progress_of(&topic, msg.partition()))
                    });
                    if state.generation != generation {
                        *state = PartitionPanes::new(&topic, msg.partition(), aggregator.progress_of(&topic, msg.partition()));
                        state.generation = generation;
                    }
                    handle_record(state, &msg, &profile, &pane_cfg, &layout, &config, &mut stats, &mut schema_checked)?;
                }
                Err(e) => tracing::warn!(error = %e, "drift consumer error"),
            },
            msg = panes_reader.recv() => match msg {
                Ok(msg) if msg.topic() == config.reports_topic => {
                    if reports_end.get(&msg.partition()).is_some_and(|end| msg.offset() + 1 >= *end) {
                        reports_end.remove(&msg.partition());
                    }
                    if let Some(seen) = msg.payload().and_then(|p| serde_json::from_slice::<ReportKey>(p).ok()) {
                        let e = reported.entry(seen.segment).or_insert(seen.window.end_us);
                        *e = (*e).max(seen.window.end_us);
                    }
                }
                Ok(msg) => {
                    let Some(payload) = msg.payload() else { continue };
                    match serde_json::from_slice::<PaneRecord>(payload) {
                        Ok(r) => aggregator.ingest(r.message),
                        Err(e) => {
                            counter!(m::INVALID, "reason" => "pane_message").increment(1);
                            tracing::warn!(error = %e, offset = msg.offset(), "unreadable message on the panes topic");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "panes reader error"),
            },
            _ = tick.tick() => {
                if last_meta.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    last_meta = Some(Instant::now());
                    // Replace the expected partitions only when every topic answered, so a
                    // failed lookup never lets a window complete without a topic.
                    let mut expected = Vec::new();
                    let mut complete = true;
                    for t in &topics {
                        match consumer.fetch_metadata(Some(t), Duration::from_secs(5)) {
                            Ok(md) => {
                                let before = expected.len();
                                for mt in md.topics() {
                                    for p in mt.partitions() {
                                        expected.push((mt.name().to_owned(), p.id()));
                                    }
                                }
                                if expected.len() == before {
                                    // The topic does not exist (yet): windows go on without
                                    // it rather than wait for it forever.
                                    tracing::warn!(topic = %t, "watched topic has no partitions; windows do not include it until it exists");
                                }
                            }
                            Err(e) => {
                                complete = false;
                                tracing::warn!(error = %e, topic = %t, "metadata lookup failed; keeping the partitions known before");
                            }
                        }
                    }
                    if complete {
                        aggregator.set_expected(expected);
                    }
                }
                // Follow the assignment: new partitions start at their published floor.
                let owned = assignment.borrow().clone();
                parts.retain(|k, s| owned.contains(k) && s.generation == consumer.context().generation(&k.0, k.1));
                published_wm.retain(|k, _| owned.contains(k));
                for (t, p) in &owned {
                    parts.entry((t.clone(), *p)).or_insert_with(|| {
                        let mut s = PartitionPanes::new(t, *p, aggregator.progress_of(t, *p));
                        s.generation = consumer.context().generation(t, *p);
                        s
                    });
                }
                let global = parts.values().filter_map(PartitionPanes::watermark).chain(aggregator.max_progress()).max();
                for (key, state) in parts.iter_mut() {
                    if let Some(g) = global {
                        if state.quiet_for(idle_timeout) && read_to_end(&consumer, state) {
                            state.follow(g);
                        }
                    }
                    for partial in state.close_final(&pane_cfg, &config.sidecar_id, &profile.sha256) {
                        let record = PaneRecord::new(PaneMessage::Partial(Box::new(partial)));
                        // A partial the broker refuses (e.g. too large) is lost to its windows:
                        // counted and logged, and the sidecar goes on (a restart would only
                        // rebuild the same partial).
                        match send_json(&producer, &config.panes_topic, &record.key(), &record).await {
                            Ok(()) => {
                                counter!(m::PARTIALS).increment(1);
                                stats.partials += 1;
                            }
                            Err(e) => {
                                counter!(m::PARTIALS_FAILED).increment(1);
                                tracing::error!(error = %e, key = %record.key(), "partial pane summary not published; its windows will lack this partition's pane");
                            }
                        }
                    }
                    if let Some(wm) = state.watermark() {
                        gauge!(m::WATERMARK_SECONDS, "topic" => key.0.clone(), "partition" => key.1.to_string()).set(wm as f64 / 1e6);
                        if published_wm.get(key) != Some(&wm) {
                            let record = PaneRecord::new(PaneMessage::Progress(Progress {
                                sidecar: config.sidecar_id.clone(),
                                reference_sha256: profile.sha256.clone(),
                                topic: key.0.clone(),
                                partition: key.1,
                                watermark_us: wm,
                            }));
                            send_json(&producer, &config.panes_topic, &record.key(), &record).await?;
                            published_wm.insert(key.clone(), wm);
                        }
                    }
                    if let Some(c) = state.commit_offset() {
                        if c > 0 {
                            // store_offset stores offset + 1.
                            if let Err(e) = consumer.store_offset(&key.0, key.1, c - 1) {
                                tracing::debug!(error = %e, topic = %key.0, partition = key.1, "offset not stored");
                            }
                        }
                    }
                }
                let started = Instant::now();
                let reports = aggregator.poll_reports();
                if !reports.is_empty() {
                    histogram!(m::EVAL_SECONDS).record(started.elapsed().as_secs_f64());
                }
                for r in reports {
                    m::record_report(&r);
                    tracing::info!(segment = %r.segment, window_end = %r.window.end, status = ?r.dataset.status, alarm = %r.alarm.state, "drift window evaluated");
                    if let Some(tx) = &reports_out {
                        let _ = tx.send(r.clone());
                    }
                    pending.insert((r.window.end_us, r.segment.clone()), r);
                }
                // The owner of input partition 0 publishes every evaluated report the reports
                // topic does not show yet — also windows that completed while no sidecar led
                // (a rebalance) — once it has read the topic up to where it was at start.
                pending.retain(|(end, seg), _| reported.get(seg).is_none_or(|r| end > r));
                let horizon = pending.keys().map(|k| k.0).max().unwrap_or(0)
                    - i64::from(config.window_panes * (2 * config.alarm_k + 1)) * pane_cfg.pane_us;
                pending.retain(|(end, _), _| *end >= horizon);
                let leader = owned.contains(&(config.input_topic.clone(), 0));
                if leader && reports_end.is_empty() {
                    for ((end, seg), r) in std::mem::take(&mut pending) {
                        send_json(&producer, &config.reports_topic, &seg, &r).await?;
                        stats.reports += 1;
                        let e = reported.entry(seg).or_insert(end);
                        *e = (*e).max(end);
                    }
                }
                counter!(m::DUPLICATES).absolute(aggregator.duplicates);
            }
        }
    }
    consumer.unsubscribe();
    Ok(stats)
}

/// The part of a report the publisher needs to know it was published.
#[derive(serde::Deserialize)]
struct ReportKey {
    segment: String,
    window: ReportWindow,
}

#[derive(serde::Deserialize)]
struct ReportWindow {
    end_us: i64,
}

/// Whether the consumer has read `state`'s partition to its end: its position is at the
/// broker's high watermark. Asked of the broker (a blocking round trip, at most once a
/// second per quiet partition; a confirmed end is remembered until a record arrives). With
/// no record seen in this generation, the start is the committed offset, or the log start
/// under `auto.offset.reset=earliest`.
fn read_to_end<C: Consumer<X>, X: argus_kafka::rdkafka::consumer::ConsumerContext>(
    consumer: &C,
    state: &mut PartitionPanes,
) -> bool {
    if state.position().is_some() && state.end.verified_end == state.position() {
        return true;
    }
    if state
        .end
        .last_probe
        .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
    {
        return false;
    }
    state.end.last_probe = Some(Instant::now());
    let timeout = Duration::from_secs(2);
    let (low, high) = match consumer.fetch_watermarks(&state.topic, state.partition, timeout) {
        Ok(w) => w,
        Err(e) => {
            tracing::debug!(error = %e, topic = %state.topic, partition = state.partition, "high watermark lookup failed");
            return false;
        }
    };
    if state.position().is_none() {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&state.topic, state.partition);
        match consumer.committed_offsets(tpl, timeout) {
            Ok(c) => {
                let committed = c
                    .find_partition(&state.topic, state.partition)
                    .map(|e| e.offset());
                state.end.start_offset = Some(match committed {
                    Some(Offset::Offset(o)) => o,
                    _ => low.max(0),
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, topic = %state.topic, partition = state.partition, "committed offset lookup failed");
                return false;
            }
        }
    }
    let at_end = state.position().is_some_and(|p| p >= high);
    if at_end {
        state.end.verified_end = state.position();
    }
    at_end
}

/// Admit one record to its partition's panes and summarise it if sampled.
#[allow(clippy::too_many_arguments)]
fn handle_record(
    state: &mut PartitionPanes,
    msg: &argus_kafka::rdkafka::message::BorrowedMessage<'_>,
    profile: &Profile,
    pane_cfg: &PaneConfig,
    layout: &Layout,
    config: &DriftConfig,
    stats: &mut DriftStats,
    schema_checked: &mut bool,
) -> Result<(), DriftError> {
    stats.records += 1;
    let topic = msg.topic();
    let is_input = topic == config.input_topic;
    let payload = msg.payload().unwrap_or_default();
    if is_input {
        let env = match argus_wire::decode_envelope(payload) {
            Ok(e) => e,
            Err(e) => {
                invalid(stats, topic, "envelope", &e.to_string());
                return Ok(());
            }
        };
        if !*schema_checked {
            check_schema(profile, layout, &env.payload)?;
            *schema_checked = true;
        }
        if !event_time_ok(env.capture_time_us, config) {
            invalid(
                stats,
                topic,
                "event_time",
                "capture time before 1970 or too far in the future",
            );
            return Ok(());
        }
        let segment = segment_of(profile, &env.source_id);
        let capped = profile.stream == StreamKind::Images;
        let (admit, pane) =
            state.admit(pane_cfg, msg.offset(), env.capture_time_us, segment, capped);
        if !count(stats, topic, admit) {
            return Ok(());
        }
        match profile.stream {
            StreamKind::Images => {
                let mut hist = ImageHistograms::default();
                let values: Vec<(usize, Cell<'_>)> =
                    match features::frame_values(&env.payload, &mut hist) {
                        Ok(v) => layout
                            .image
                            .iter()
                            .zip(v)
                            .filter_map(|(i, x)| i.map(|i| (i, Cell::Num(x))))
                            .collect(),
                        Err(e) => {
                            counter!(m::INVALID, "reason" => e.0).increment(1);
                            stats.invalid += 1;
                            layout
                                .image
                                .iter()
                                .flatten()
                                .map(|i| (*i, Cell::Null))
                                .collect()
                        }
                    };
                state.add(
                    profile,
                    pane_cfg,
                    pane,
                    msg.offset(),
                    segment,
                    &values,
                    None,
                    Some(&hist),
                );
            }
            StreamKind::Records => {
                let argus_wire::Payload::Record(rec) = &env.payload else {
                    invalid(
                        stats,
                        topic,
                        "not_a_record",
                        "payload is an image, profile is for records",
                    );
                    return Ok(());
                };
                // Profiled fields the record lacks count as null.
                let mut cells: Vec<Option<Cell<'_>>> = vec![None; profile.fleet().features.len()];
                for i in layout.record.values() {
                    cells[*i] = Some(Cell::Null);
                }
                for f in &rec.fields {
                    if let Some(i) = layout.record.get(&f.name) {
                        cells[*i] = Some(features::field_cell(&f.value));
                    }
                }
                let values: Vec<(usize, Cell<'_>)> = cells
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, c)| c.map(|c| (i, c)))
                    .collect();
                state.add(
                    profile,
                    pane_cfg,
                    pane,
                    msg.offset(),
                    segment,
                    &values,
                    None,
                    None,
                );
            }
        }
    } else {
        let p: argus_wire::Prediction = match serde_json::from_slice(payload) {
            Ok(p) => p,
            Err(e) => {
                invalid(stats, topic, "prediction_json", &e.to_string());
                return Ok(());
            }
        };
        let Some(event_us) = p.input.capture_time_us else {
            invalid(
                stats,
                topic,
                "no_capture_time",
                "prediction has no input.capture_time_us",
            );
            return Ok(());
        };
        let source = p.input.source_id.as_deref().or(p.input.key.as_deref());
        let segment = source.and_then(|s| segment_of(profile, s));
        if !event_time_ok(event_us, config) {
            invalid(
                stats,
                topic,
                "event_time",
                "capture time before 1970 or too far in the future",
            );
            return Ok(());
        }
        let (admit, pane) = state.admit(pane_cfg, msg.offset(), event_us, segment, false);
        if !count(stats, topic, admit) {
            return Ok(());
        }
        let Some(out) = features::prediction_outputs(&p, layout.positive_label.as_deref()) else {
            return Ok(());
        };
        let mut values = Vec::new();
        if let Some(i) = layout.score {
            values.push((i, out.score.map_or(Cell::Null, Cell::Num)));
        }
        if let Some(i) = layout.class {
            values.push((
                i,
                out.predicted_class
                    .as_deref()
                    .map_or(Cell::Null, Cell::Text),
            ));
        }
        state.add(
            profile,
            pane_cfg,
            pane,
            msg.offset(),
            segment,
            &values,
            out.score,
            None,
        );
    }
    Ok(())
}

/// Event times must be after 1970 and at most `max_future` ahead of the wall clock.
fn event_time_ok(t: i64, config: &DriftConfig) -> bool {
    let ahead = i64::try_from(config.max_future.as_micros()).unwrap_or(i64::MAX);
    t >= 0 && t <= argus_wire::now_us().saturating_add(ahead)
}

/// The segment a source reports in besides the fleet: every camera of an image stream (a
/// camera without its own reference is compared with the fleet's); for records only sources
/// the profile has a segment for, so entity ids do not become segments.
fn segment_of<'a>(profile: &Profile, source: &'a str) -> Option<&'a str> {
    match profile.stream {
        StreamKind::Images => Some(source),
        StreamKind::Records => profile.segments.contains_key(source).then_some(source),
    }
}

fn count(stats: &mut DriftStats, topic: &str, admit: Admit) -> bool {
    let outcome = match admit {
        Admit::Sampled => "sampled",
        Admit::Skipped => "skipped",
        Admit::Late => {
            counter!(m::LATE, "topic" => topic.to_owned()).increment(1);
            stats.late += 1;
            "late"
        }
    };
    counter!(m::RECORDS, "topic" => topic.to_owned(), "outcome" => outcome).increment(1);
    if admit == Admit::Sampled {
        stats.sampled += 1;
    }
    admit == Admit::Sampled
}

fn invalid(stats: &mut DriftStats, topic: &str, reason: &'static str, detail: &str) {
    stats.invalid += 1;
    counter!(m::INVALID, "reason" => reason).increment(1);
    counter!(m::RECORDS, "topic" => topic.to_owned(), "outcome" => "invalid").increment(1);
    tracing::debug!(topic, reason, detail, "record yielded no features");
}

/// The first input decides whether the stream matches the profile; a mismatch stops the
/// sidecar (its reports would be meaningless).
fn check_schema(
    profile: &Profile,
    layout: &Layout,
    payload: &argus_wire::Payload,
) -> Result<(), DriftError> {
    match (profile.stream, payload) {
        (StreamKind::Images, argus_wire::Payload::Record(_)) => Err(DriftError::SchemaMismatch(format!(
            "profile {} (schema {}) is for images, the stream carries records; use a records profile",
            profile.id, profile.schema_sha256
        ))),
        (StreamKind::Records, argus_wire::Payload::Record(r)) => {
            let missing: Vec<&str> = layout
                .record
                .keys()
                .filter(|k| !r.fields.iter().any(|f| &f.name == *k))
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                let mut missing = missing;
                missing.sort_unstable();
                Err(DriftError::SchemaMismatch(format!(
                    "profile {} expects fields the stream's records lack: {}",
                    profile.id,
                    missing.join(", ")
                )))
            }
        }
        (StreamKind::Records, _) => Err(DriftError::SchemaMismatch(format!(
            "profile {} is for records, the stream carries images; use an images profile",
            profile.id
        ))),
        (StreamKind::Images, _) => Ok(()),
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
