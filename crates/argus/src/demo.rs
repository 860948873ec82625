//! `argus demo`: the whole pipeline in one process. By default on the embedded broker
//! (librdkafka's mock cluster): a synthetic producer with N cameras, M workers in one
//! group, a subscriber printing alerts, and a closing summary checked against the scenes'
//! ground truth.
use crate::config::ArgusConfig;
use crate::demo_models::{histogram_mean, schedule, DemoRegistry, Step};
use crate::work::{load_model, worker_config};
use crate::{shutdown, telemetry, CliError};
use argus_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use argus_kafka::rdkafka::Message;
use argus_kafka::{EmbeddedBroker, KafkaSettings, TopicSpec};
use argus_model::detection::BBox;
use argus_producer::{ProduceConfig, Source};
use argus_wire::{Alert, Prediction};
use argus_worker::pipeline::Pipeline;
use argus_worker::{Models, OutputTopics, Serving, WorkerSettings, WorkerStats};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
struct Tally {
    predictions: u64,
    alerts: u64,
    dlq: u64,
    latencies_ms: Vec<f64>,
    /// Ground truth (person in the scene) per prediction id.
    truth: std::collections::HashMap<String, bool>,
    /// Prediction ids that raised at least one alert.
    alerted: std::collections::HashSet<String>,
    /// Every prediction id seen, and how many came twice.
    seen: std::collections::HashSet<String>,
    duplicates: u64,
    /// Predictions per model version.
    per_version: std::collections::BTreeMap<String, u64>,
    /// Alerts' evidence: computed, skipped (by reason), and how often its saliency peak
    /// lies on the person the scene put in the frame.
    evidence: EvidenceTally,
}

#[derive(Debug, Default)]
struct EvidenceTally {
    ok: u64,
    skipped: std::collections::BTreeMap<String, u64>,
    /// Alerts on frames with a person whose saliency was checked against it.
    checked: u64,
    /// Of those, peaks that overlap the person.
    on_person: u64,
}

impl EvidenceTally {
    /// Counts `a`'s evidence; for a synthetic frame with a person, checks the saliency
    /// peak against where the scene put the person (`scene` renders the frame).
    fn observe(
        &mut self,
        a: &Alert,
        scene: impl FnOnce() -> Option<argus_producer::scene::BoundingBox>,
    ) {
        let Some(e) = &a.evidence else {
            return;
        };
        if e.status == argus_wire::EvidenceStatus::Skipped {
            let reason = e
                .reason
                .as_deref()
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("");
            *self.skipped.entry(reason.to_owned()).or_default() += 1;
            return;
        }
        self.ok += 1;
        if let (Some(s), Some(b)) = (e.saliency.first(), scene()) {
            let [x1, y1, x2, y2] = s.peak;
            let (bx, by) = (b.x as f32, b.y as f32);
            let person = BBox::new(bx, by, bx + b.width as f32, by + b.height as f32);
            self.checked += 1;
            self.on_person += u64::from(BBox::new(x1, y1, x2, y2).overlap(&person) > 0.0);
        }
    }

    /// The summary line, if evidence was on.
    fn line(&self) -> Option<String> {
        if self.ok == 0 && self.skipped.is_empty() {
            return None;
        }
        let skipped: Vec<String> = self
            .skipped
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        let mut line = format!(
            "evidence: {} alerts explained, {} skipped{}",
            self.ok,
            self.skipped.values().sum::<u64>(),
            if skipped.is_empty() {
                String::new()
            } else {
                format!(" ({})", skipped.join(", "))
            }
        );
        if self.checked > 0 {
            line += &format!(
                " | saliency peak on the person in {} of {} alerts on frames with one ({:.0} %)",
                self.on_person,
                self.checked,
                100.0 * self.on_person as f64 / self.checked as f64
            );
        }
        Some(line)
    }
}

impl Tally {
    /// (precision, recall) of alerts against the scenes' ground truth.
    fn precision_recall(&self) -> (f64, f64) {
        let tp = self
            .alerted
            .iter()
            .filter(|id| self.truth.get(*id) == Some(&true))
            .count();
        let alerts = self
            .alerted
            .iter()
            .filter(|id| self.truth.contains_key(*id))
            .count();
        let positives = self.truth.values().filter(|t| **t).count();
        (
            tp as f64 / alerts.max(1) as f64,
            tp as f64 / positives.max(1) as f64,
        )
    }
}

fn resolve_model(path: &std::path::Path) -> PathBuf {
    if path.join("manifest.toml").exists() || path.is_absolute() {
        return path.to_path_buf();
    }
    // Running from elsewhere than the repository root: fall back to the bundled models.
    let bundled = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    if bundled.join("manifest.toml").exists() {
        bundled
    } else {
        path.to_path_buf()
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn camera_index(source_id: Option<&str>) -> Option<u32> {
    source_id?.strip_prefix("cam-")?.parse().ok()
}

/// What `argus demo` runs with: `[demo]`, the pipeline of `[worker]`, the cameras of
/// `[producer.synthetic]` and `--brighten`.
#[derive(Debug)]
pub struct DemoArgs {
    pub brokers: Option<String>,
    pub duration: Duration,
    pub cameras: argus_producer::SyntheticSource,
    pub workers: usize,
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub max_printed_alerts: u64,
    pub model: WorkerSettings,
    pub no_drift: bool,
    pub drift_pane: Duration,
    pub no_shift: bool,
    pub no_swap: bool,
    pub no_evidence: bool,
    pub video: Option<PathBuf>,
}

impl DemoArgs {
    pub fn new(config: ArgusConfig, brighten: Option<argus_producer::Brighten>) -> Self {
        let d = config.demo;
        DemoArgs {
            brokers: d.brokers,
            duration: d.duration,
            cameras: argus_producer::SyntheticSource {
                brighten,
                ..config.producer.synthetic
            },
            workers: d.workers,
            metrics_addr: d.metrics_addr,
            max_printed_alerts: d.max_printed_alerts,
            model: config.worker,
            no_drift: d.no_drift,
            drift_pane: d.drift_pane,
            no_shift: d.no_shift,
            no_swap: d.no_swap,
            no_evidence: d.no_evidence,
            video: d.video,
        }
    }
}

/// The demo's zones on `vtest.avi`-like footage when none are configured: the plaza in the
/// middle of the frame (scaled to a 768×576 frame), a loitering rule and a crowd rule.
fn demo_zones(camera: &str) -> Vec<argus_worker::zones::ZoneSettings> {
    use argus_worker::zones::{RuleKind, ZoneSettings};
    let zone = |name: &str, rule| {
        let plaza = vec![
            [300.0, 150.0],
            [560.0, 150.0],
            [560.0, 300.0],
            [300.0, 300.0],
        ];
        let mut z = ZoneSettings::new(name, plaza, rule);
        z.cameras = vec![camera.to_owned()];
        z.cooldown = Some(Duration::from_secs(10));
        z
    };
    let mut loiter = zone("plaza-loiter", RuleKind::Loiter);
    loiter.dwell = Some(Duration::from_secs(4));
    let mut crowd = zone("plaza-crowd", RuleKind::Count);
    crowd.count = Some(3);
    vec![loiter, crowd]
}

/// Video mode: one camera from the file, the person detector unless the configured model
/// detects, demo zones unless some are configured, snapshots in a temporary directory; no
/// registry switch, drift sidecar or ground truth.
fn video_mode(
    args: &mut DemoArgs,
    video: &std::path::Path,
    run_id: &str,
) -> argus_producer::VideoSource {
    let camera = video
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    let configured_detects = argus_model::Manifest::load(&resolve_model(&args.model.model))
        .is_ok_and(|m| m.task == argus_model::manifest::Task::Detection);
    if !configured_detects {
        args.model.model = PathBuf::from("models/person-detector");
    }
    if args.model.zones.is_empty() {
        args.model.zones = demo_zones(&camera);
    }
    if args.model.snapshots.is_none() {
        args.model.snapshots =
            Some(std::env::temp_dir().join(format!("argus-demo-snapshots-{run_id}")));
    }
    args.model.alerts.clear();
    args.no_swap = true;
    args.no_drift = true;
    args.cameras.cameras = 1;
    let mut source = argus_producer::VideoSource::new(video.display().to_string(), camera);
    source.fps = args.cameras.fps;
    source.realtime = true;
    source.looped = true;
    source
}

pub async fn run(mut args: DemoArgs) -> Result<(), CliError> {
    let run_id = format!("{:x}", std::process::id());
    let video = match args.video.clone() {
        Some(v) => {
            let source = video_mode(&mut args, &v, &run_id);
            source.check().map_err(CliError::Usage)?;
            Some(source)
        }
        None => None,
    };
    let mut source = args.cameras.clone();
    if source.brighten.is_none() && !args.no_shift && !args.no_drift {
        // Halfway through, camera 2 gets 40 % brighter: something for the sidecar to find.
        let frames_per_camera = (source.fps * args.duration.as_secs_f64()) as u64;
        source.brighten = Some(argus_producer::Brighten {
            camera: 2 % source.cameras.max(1),
            gain: 1.4,
            from_sequence: frames_per_camera / 2,
        });
    }
    if args.workers == 0 {
        return Err(CliError::Usage("--workers must be at least 1".into()));
    }
    if !args.no_evidence {
        args.model.evidence.enabled = true;
        if args.model.evidence.overlays.is_none() {
            args.model.evidence.overlays =
                Some(std::env::temp_dir().join(format!("argus-demo-evidence-{run_id}")));
        }
    }
    let model = load_model(
        &resolve_model(&args.model.model),
        &args
            .model
            .engine_options(args.model.inference_threads * args.workers),
        args.model.max_decoded_pixels,
    )?;
    let (_embedded, mut settings, input) = match &args.brokers {
        None => {
            let broker = EmbeddedBroker::start().map_err(|e| CliError::Runtime(e.into()))?;
            let settings = KafkaSettings::new(broker.bootstrap_servers());
            (Some(broker), settings, "frames.demo".to_string())
        }
        Some(b) => (
            None,
            KafkaSettings::new(b.clone()),
            format!("frames.demo-{run_id}"),
        ),
    };
    let topics = OutputTopics::default().renamed(|t| format!("{t}.demo-{run_id}"));
    // One partition per camera (at least one per worker), camera i on partition i: every
    // worker gets cameras whatever the assignor (by key hash the four default cameras all
    // landed on one worker's partitions).
    let input_partitions =
        i32::try_from(source.cameras.max(args.workers as u32).max(1)).unwrap_or(i32::MAX);
    let mut specs = vec![TopicSpec::new(&input, input_partitions)];
    // The DLQ gets 1 partition, every other output 4.
    specs.extend(
        topics
            .iter()
            .map(|t| TopicSpec::new(t, if t == topics.dlq { 1 } else { 4 })),
    );
    specs.extend(crate::demo_drift::topics(&run_id).map(|t| TopicSpec::new(t, 1)));
    match &_embedded {
        Some(b) => {
            b.create_topics(&specs)
                .map_err(|e| CliError::Runtime(e.into()))?;
            // The mock cluster answers fetches at once only with a short wait.
            settings
                .consumer_options
                .insert("fetch.wait.max.ms".into(), "10".into());
        }
        None => argus_kafka::ensure_topics(&settings, &specs)
            .await
            .map_err(|e| CliError::Runtime(e.into()))?,
    }
    telemetry::metrics_handle();
    // The demo runs every role: its producer, workers and drift sidecar.
    argus_producer::metrics::register_defaults();
    argus_kafka::metrics::register_defaults();
    argus_model::metrics::register_defaults();
    argus_worker::metrics::register_defaults(std::slice::from_ref(&input));
    if !args.no_drift {
        argus_drift::metrics::register_defaults(&[input.as_str(), topics.predictions.as_str()]);
    }
    // The model's life: served through a registry on the demo's broker, switched live.
    let swap = if args.no_swap {
        None
    } else {
        argus_registry::metrics::register_defaults();
        let bundle = resolve_model(&args.model.model);
        Some(DemoRegistry::start(&settings, _embedded.as_ref(), &run_id, &bundle).await?)
    };
    let stop = shutdown::on_signal();
    let cameras = match &video {
        Some(v) => format!(
            "video {} as camera {} at {} fps, zones {}",
            v.input,
            v.camera,
            v.fps,
            args.model
                .zones
                .iter()
                .map(|z| z.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => format!(
            "{} cameras at {} fps ({}x{})",
            source.cameras, source.fps, source.width, source.height
        ),
    };
    println!(
        "argus demo: {cameras}, {} workers, model {} v{}, broker {}",
        args.workers,
        model.model_ref().name,
        model.model_ref().version,
        if _embedded.is_some() {
            "embedded".to_string()
        } else {
            settings.brokers.clone()
        }
    );

    if let Some(r) = &swap {
        println!(
            "MODEL  registry {}: {} v{} in production; v{} (same weights, alert threshold {}) registered, to canary at {:.0}s and production at {:.0}s",
            r.registry.settings().topic,
            r.name,
            r.v1,
            r.v2,
            r.v2_threshold,
            schedule(args.duration)[0].0.as_secs_f64(),
            schedule(args.duration)[1].0.as_secs_f64(),
        );
    }

    // Subscriber: what an alerting service would see.
    let tap: StreamConsumer = settings
        .consumer_config(&format!("argus-demo-tap-{run_id}"), "argus-demo-tap")
        .set("enable.auto.offset.store", "true")
        .set("statistics.interval.ms", "0")
        .create()
        .map_err(|e| CliError::Runtime(e.into()))?;
    tap.subscribe(&[&topics.predictions, &topics.alerts, &topics.dlq])
        .map_err(|e| CliError::Runtime(e.into()))?;

    // Drift sidecar, with a reference profile from other frames of the same cameras. The
    // profile is built in the background; the sidecar then reads the topics from the start.
    let drift_stop = CancellationToken::new();
    let mut drift = (!args.no_drift).then(|| {
        println!(
            "drift sidecar: building the reference profile in the background; {}",
            match source.brighten {
                Some(b) => format!(
                    "cam-{} gets {:.0}% brighter from frame {}",
                    b.camera,
                    (b.gain - 1.0) * 100.0,
                    b.from_sequence
                ),
                None => "no shift injected".into(),
            }
        );
        let [_, _, labels, quality] = crate::demo_drift::topics(&run_id);
        crate::demo_drift::start(
            settings.clone(),
            source.clone(),
            model.clone(),
            &input,
            &topics.predictions,
            &run_id,
            args.drift_pane,
            _embedded.is_none(),
            crate::demo_drift::DemoQuality {
                labels,
                quality,
                alerts: topics.alerts.clone(),
                label_delay: DEMO_LABEL_DELAY,
            },
            drift_stop.clone(),
        )
    });

    // Workers.
    let workers_stop = CancellationToken::new();
    let group = format!("argus-demo-{run_id}");
    let mut worker_tasks = Vec::new();
    let mut all_stats = Vec::new();
    let mut assignments = Vec::new();
    for w in 0..args.workers {
        let id = format!("demo-worker-{w}");
        let pipeline = WorkerSettings {
            inputs: vec![input.clone()],
            topics: topics.clone(),
            ..args.model.clone()
        };
        let mut config = worker_config(id.clone(), &pipeline, &model)?;
        config.drain_timeout = Duration::from_secs(10);
        config.zones.history = Some(settings.clone());
        let consumer = settings
            .consumer(&group, &id)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let producer = settings
            .producer(&id)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        assignments.push(consumer.context().assignment());
        let stats = Arc::new(WorkerStats::default());
        all_stats.push(stats.clone());
        let models = match &swap {
            Some(r) => {
                let loader = crate::work::loader(&pipeline, pipeline.inference_threads, &id);
                let (models, follower, updates) =
                    crate::work::follow_registry(r.registry.clone(), &r.name, loader).await?;
                tokio::spawn(follower.follow(
                    updates,
                    crate::work::deployment,
                    workers_stop.clone(),
                ));
                models
            }
            None => Models::new(Serving::production(Arc::new(Pipeline::new(
                model.clone(),
                &config,
            )))),
        };
        worker_tasks.push(tokio::spawn(argus_worker::run_models(
            config,
            consumer,
            producer,
            models,
            stats,
            workers_stop.clone(),
        )));
    }
    let server_stop = CancellationToken::new();
    if let Some(addr) = args.metrics_addr {
        let listener = telemetry::bind(addr).await.map_err(CliError::Usage)?;
        tokio::spawn(telemetry::serve(
            listener,
            all_stats.clone(),
            server_stop.clone(),
        ));
    }

    // Start producing once the group has settled, so the first frames do not wait out the
    // join (about 3 s) and the latency figures describe the steady state.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(20) && !stop.is_cancelled() {
        let owned: Vec<usize> = assignments.iter().map(|a| a.borrow().len()).collect();
        let everyone = owned.iter().all(|&n| n > 0) || args.workers > 8;
        if owned.iter().sum::<usize>() == input_partitions as usize && everyone {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Producer.
    let mut pconfig = ProduceConfig::new(&input);
    pconfig.duration = Some(args.duration);
    pconfig.progress_every = Duration::from_secs(3600);
    pconfig.spread_cameras = Some(input_partitions);
    if !args.no_drift {
        // The generator knows each scene's truth: half the frames get a label, as an
        // operator checking them would give it a little later.
        pconfig.labels = Some(argus_producer::LabelEmission {
            topic: crate::demo_drift::topics(&run_id)[2].clone(),
            share: DEMO_LABEL_SHARE,
            delay: DEMO_LABEL_DELAY,
        });
    }
    let producer = settings
        .producer("argus-demo-producer")
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let produce_stop = stop.child_token();
    let started = Instant::now();
    let producing = tokio::spawn(argus_producer::run(
        match video {
            Some(v) => Source::Video(v),
            None => Source::Synthetic(source),
        },
        pconfig,
        producer,
        produce_stop,
    ));

    let mut tally = Tally::default();
    let mut steps: Vec<(Duration, Step)> = match &swap {
        Some(_) => schedule(args.duration).to_vec(),
        None => Vec::new(),
    };
    let mut sent: Option<u64> = None;
    let mut drain_deadline: Option<Instant> = None;
    let mut producing = Some(producing);
    loop {
        if let Some(n) = sent {
            if tally.predictions + tally.dlq >= n {
                break;
            }
            if drain_deadline.is_some_and(|d| Instant::now() > d) {
                println!(
                    "(stopped waiting for the last {} outputs)",
                    n.saturating_sub(tally.predictions + tally.dlq)
                );
                break;
            }
        }
        tokio::select! {
            r = async { producing.as_mut().expect("checked").await }, if producing.is_some() => {
                producing = None;
                let summary = r.map_err(|e| CliError::Runtime(e.into()))?.map_err(|e| CliError::Runtime(e.into()))?;
                sent = Some(summary.sent);
                drain_deadline = Some(Instant::now() + Duration::from_secs(if stop.is_cancelled() { 5 } else { 30 }));
            }
            m = tap.recv() => match m {
                Ok(m) => observe(&m, &topics, &mut tally, &args),
                Err(e) => tracing::warn!(error = %e, "demo subscriber error"),
            },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        if let Some(d) = drift.as_mut() {
            d.print_new();
        }
        if let (Some(r), Some(&(at, step))) = (&swap, steps.first()) {
            if started.elapsed() >= at && producing.is_some() {
                steps.remove(0);
                let d = r.switch(step).await?;
                println!("{}", r.describe(step, &d, started.elapsed()));
            }
        }
    }
    let elapsed = started.elapsed();
    workers_stop.cancel();
    for t in worker_tasks {
        match t.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "worker failed"),
            Err(e) => tracing::warn!(error = %e, "worker task failed"),
            Ok(Ok(())) => {}
        }
    }
    server_stop.cancel();
    let mut drift_lines = Vec::new();
    if let Some(mut d) = drift.take() {
        // Wait (bounded) until the sidecar has caught up to the last complete window.
        let until_us = argus_wire::now_us()
            - 2 * i64::try_from(args.drift_pane.as_micros()).unwrap_or(0)
            - 1_000_000;
        let deadline =
            Instant::now() + Duration::from_secs(if stop.is_cancelled() { 2 } else { 60 });
        while Instant::now() < deadline && !d.task.is_finished() {
            d.print_new();
            if d.latest
                .get("*")
                .is_some_and(|r| r.window.end_us >= until_us)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        drift_stop.cancel();
        match (&mut d.task).await {
            Ok(Err(e)) => tracing::warn!(error = ?e, "drift sidecar failed"),
            Err(e) => tracing::warn!(error = %e, "drift sidecar task failed"),
            Ok(Ok(_)) => {}
        }
        drift_lines = d.summary();
    }

    tally.latencies_ms.sort_by(f64::total_cmp);
    let frames = sent.unwrap_or(0);
    let (precision, recall) = tally.precision_recall();
    let truth = if tally.truth.is_empty() {
        "no ground truth (video)".to_string()
    } else {
        format!("alert precision {precision:.3} recall {recall:.3} vs scene ground truth")
    };
    println!();
    println!(
        "summary: frames {} | predictions {} | alerts {} | DLQ {} | throughput {:.1} frames/s | latency p50 {:.1} ms p99 {:.1} ms (capture → prediction at subscriber) | {truth}",
        frames,
        tally.predictions,
        tally.alerts,
        tally.dlq,
        tally.predictions as f64 / elapsed.as_secs_f64(),
        percentile(&tally.latencies_ms, 0.50),
        percentile(&tally.latencies_ms, 0.99),
    );
    let per_worker: Vec<String> = all_stats
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "demo-worker-{i} {}",
                s.consumed.load(std::sync::atomic::Ordering::Relaxed)
            )
        })
        .collect();
    println!("frames consumed per worker: {}", per_worker.join(", "));
    if let Some(line) = tally.evidence.line() {
        let overlays = args
            .model
            .evidence
            .overlays
            .as_ref()
            .map(|d| format!(" | overlays (PNG) in {}", d.display()))
            .unwrap_or_default();
        println!("{line}{overlays}");
    }
    if swap.is_some() {
        println!("{}", versions_line(&tally, frames));
    }
    for l in drift_lines {
        println!("{l}");
    }
    Ok(())
}

/// The closing line of the model's life: predictions per version, every frame once, and
/// the swaps as the workers measured them.
fn versions_line(tally: &Tally, frames: u64) -> String {
    let per: Vec<String> = tally
        .per_version
        .iter()
        .map(|(v, n)| format!("v{v} {n}"))
        .collect();
    let text = telemetry::metrics_handle().render();
    let swaps = match (
        histogram_mean(&text, argus_worker::metrics::MODEL_SWAP_SECONDS),
        histogram_mean(&text, argus_worker::metrics::MODEL_PREPARE_SECONDS),
    ) {
        (Some((swap, n)), Some((prepare, _))) => format!(
            "{n} swaps: mean swap {:.0} µs after a mean {:.0} ms loading and warming beside the serving version",
            swap * 1e6,
            prepare * 1e3
        ),
        _ => "no swap happened".into(),
    };
    format!(
        "models: predictions by version {} | {} frames, {} distinct predictions, {} scored twice | {swaps}",
        per.join(", "),
        frames,
        tally.seen.len(),
        tally.duplicates
    )
}

/// Share of the demo's frames labelled, and how late.
const DEMO_LABEL_SHARE: f64 = 0.5;
const DEMO_LABEL_DELAY: Duration = Duration::from_secs(2);

fn observe(
    m: &argus_kafka::rdkafka::message::BorrowedMessage<'_>,
    topics: &OutputTopics,
    tally: &mut Tally,
    args: &DemoArgs,
) {
    let payload = m.payload().unwrap_or_default();
    let now = argus_wire::now_us();
    if m.topic() == topics.predictions {
        let Ok(p) = serde_json::from_slice::<Prediction>(payload) else {
            return;
        };
        tally.predictions += 1;
        if !tally.seen.insert(p.id.clone()) {
            tally.duplicates += 1;
        }
        *tally
            .per_version
            .entry(p.model.version.clone())
            .or_default() += 1;
        if let Some(c) = p.input.capture_time_us {
            tally.latencies_ms.push((now - c) as f64 / 1000.0);
        }
        if let (Some(cam), Some(seq)) =
            (camera_index(p.input.source_id.as_deref()), p.input.sequence)
        {
            let truth = argus_producer::scene::has_person(args.cameras.seed, cam, seq);
            tally.truth.insert(p.id.clone(), truth);
        }
    } else if m.topic() == topics.alerts {
        let Ok(a) = serde_json::from_slice::<Alert>(payload) else {
            if let Ok(q) = serde_json::from_slice::<argus_drift::quality::QualityAlert>(payload) {
                let what: Vec<String> = q
                    .findings
                    .iter()
                    .map(|f| format!("{} {:.3} vs {:.3}", f.metric.as_str(), f.value, f.against))
                    .collect();
                println!(
                    "QUALITY ALERT {} v{} {}: {} ({})",
                    q.model.id,
                    q.model.version,
                    q.segment,
                    what.join(", "),
                    q.id
                );
            }
            return;
        };
        tally.alerts += 1;
        tally.alerted.insert(a.prediction_id.clone());
        if a.zone.is_none() {
            let synthetic = camera_index(a.input.source_id.as_deref()).zip(a.input.sequence);
            let c = &args.cameras;
            tally.evidence.observe(&a, || {
                let (cam, seq) = synthetic.filter(|_| args.video.is_none())?;
                argus_producer::scene::render(c.seed, cam, seq, c.width, c.height).person
            });
        }
        if let (Some(zone), true) = (&a.zone, tally.alerts <= args.max_printed_alerts) {
            let tracks: Vec<String> = a
                .detections
                .iter()
                .flatten()
                .map(|b| format!("#{} {:.2}", b.track.unwrap_or_default(), b.score))
                .collect();
            println!(
                "ZONE  {:<6} seq {:>5}  {} {} ({}): {}{}",
                a.input.source_id.as_deref().unwrap_or("?"),
                a.input.sequence.map(|s| s.to_string()).unwrap_or_default(),
                zone.name,
                zone.rule,
                tracks.len(),
                tracks.join(", "),
                a.snapshot
                    .as_deref()
                    .map(|s| format!("  snapshot {s}"))
                    .unwrap_or_default()
            );
        } else if tally.alerts <= args.max_printed_alerts {
            println!(
                "ALERT {:<6} seq {:>5}  {} {:.2}  ({}){}",
                a.input.source_id.as_deref().unwrap_or("?"),
                a.input.sequence.map(|s| s.to_string()).unwrap_or_default(),
                a.label,
                a.score,
                a.id,
                a.evidence
                    .as_ref()
                    .map(|e| format!("\n      {}", e.headline()))
                    .unwrap_or_default()
            );
        } else if tally.alerts == args.max_printed_alerts + 1 {
            println!("(further alerts are counted, not printed)");
        }
    } else {
        tally.dlq += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_and_recall_join_alerts_to_predictions() {
        let mut t = Tally::default();
        for (id, truth) in [
            ("t/0/1", true),
            ("t/0/2", false),
            ("t/0/3", true),
            ("t/0/4", false),
        ] {
            t.truth.insert(id.into(), truth);
        }
        // One true alert, one false alert, one missed person; an alert whose prediction
        // was not seen does not count.
        for id in ["t/0/1", "t/0/2", "t/9/9"] {
            t.alerted.insert(id.into());
        }
        assert_eq!(t.precision_recall(), (0.5, 0.5));
    }
}
