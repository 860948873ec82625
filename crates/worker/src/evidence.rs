//! Evidence on alerts, under a budget: each alert's evidence (see
//! [`argus_model::explain`]) is computed on a bounded pool of its own threads, never the
//! model's, at idle CPU priority by default, and an alert waits for it at most
//! `evidence.deadline`. Past the deadline, when the pool's queue is full, or when the
//! input was already old when it alerted (the worker is catching up), the alert goes out
//! anyway with `evidence: {status: "skipped", reason}`.
//!
//! The worker asks for evidence ([`EvidencePool::request`]) as soon as an input's alerts
//! are known and publishes the input's prediction at once; the alerts follow when
//! [`AwaitingEvidence::evidence`] has them (see `process.rs`). Batch scoring explains
//! without a deadline ([`Explaining::attach_now`]).
//!
//! Only alerts ask for evidence, so its cost follows the alert rate, not the input rate.
use crate::config::{EvidencePriority, EvidenceSettings};
use crate::job::Classified;
use crate::metrics as m;
use argus_model::detection::{BBox, Detection};
use argus_model::explain::Explainer;
use argus_model::Classifier;
use argus_wire::{Alert, Evidence, Payload, ALERT_SCHEMA_V4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What a model version's alerts get as evidence.
#[derive(Debug, Clone)]
pub enum Explaining {
    /// Evidence is off.
    Off,
    /// Evidence is on and the version has an explainer.
    Ready(Arc<Explainer>),
    /// Evidence is on but the version cannot be explained, for this reason.
    Unavailable(String),
}

impl Explaining {
    /// The explainer of `model` when `settings` turn evidence on.
    pub fn for_model(model: &Classifier, settings: &EvidenceSettings) -> Explaining {
        if !settings.enabled {
            return Explaining::Off;
        }
        match Explainer::for_model(model, settings.explain_settings()) {
            Ok(Some(e)) => Explaining::Ready(Arc::new(e)),
            Ok(None) => Explaining::Unavailable(format!(
                "bundle {} ships no [explain] covers or background for its tabular model",
                model.model_ref().name
            )),
            Err(e) => Explaining::Unavailable(e.to_string()),
        }
    }
}

impl Explaining {
    /// Attaches evidence to `alerts` (on `payload`) now, on this thread, however long it
    /// takes: for batch scoring, where no alert waits on a stream. Each alert becomes
    /// `argus.alert/v4`; an explainer's failure is the alert's `skipped` reason. Returns
    /// how many alerts got evidence. Blocking.
    pub fn attach_now(&self, model: &Classifier, payload: &Payload, alerts: &mut [Alert]) -> usize {
        let mut explained = 0;
        for alert in alerts {
            let evidence = match self {
                Explaining::Off => return 0,
                Explaining::Unavailable(reason) => {
                    skipped("unavailable", format!("unavailable: {reason}"))
                }
                Explaining::Ready(explainer) => {
                    let (label, boxes) = alert_target(model, alert);
                    let started = Instant::now();
                    match explainer.explain(model, payload, label, &boxes) {
                        Ok(mut e) => {
                            let took = started.elapsed();
                            e.compute_us =
                                Some(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                            metrics::histogram!(m::EVIDENCE_SECONDS, "method" => explainer.method().as_str())
                                .record(took.as_secs_f64());
                            e
                        }
                        Err(e) => skipped("error", format!("error: {e}")),
                    }
                }
            };
            explained += usize::from(evidence.status == argus_wire::EvidenceStatus::Ok);
            alert.schema = ALERT_SCHEMA_V4.into();
            alert.evidence = Some(evidence);
        }
        explained
    }
}

/// One alert's evidence to compute.
struct Task {
    model: Arc<Classifier>,
    explainer: Arc<Explainer>,
    payload: Payload,
    label: usize,
    boxes: Vec<Detection>,
    deadline: Instant,
    /// Where this alert's saliency overlays go (`<this>-<grid>.png`), if written.
    overlay: Option<PathBuf>,
    reply: oneshot::Sender<Result<Evidence, Missed>>,
}

/// Why a task produced no evidence.
#[derive(Debug)]
enum Missed {
    /// Its deadline passed before a thread took it.
    Deadline,
    /// It would not have finished in time: this explainer's evidence takes about this
    /// long, more than was left.
    TooSlow(Duration),
    /// The explainer failed (or panicked), with this message.
    Failed(String),
}

/// The name of each evidence thread: this prefix and its index (Linux keeps 15 bytes of a
/// thread's name: the prefix whole, the index cut off).
pub const THREAD_PREFIX: &str = "argus-evidence-";

/// The evidence pool: `threads` threads and a queue of `queue` requests.
#[derive(Debug)]
pub struct EvidencePool {
    tx: Mutex<Option<SyncSender<Task>>>,
    busy: Arc<AtomicUsize>,
    slots: usize,
    deadline: Duration,
    /// Inputs older than this when they alert get no evidence (zero: no limit).
    skip_older_than: Duration,
    overlays: Option<PathBuf>,
}

impl EvidencePool {
    /// Starts the pool's threads. They stop when the pool is dropped.
    pub fn start(settings: &EvidenceSettings) -> Arc<EvidencePool> {
        let (tx, rx) = sync_channel::<Task>(settings.queue);
        let rx = Arc::new(Mutex::new(rx));
        let busy = Arc::new(AtomicUsize::new(0));
        let slots = settings.threads.max(1) + settings.queue;
        let priority = settings.priority;
        let costs = Arc::new(Costs::default());
        for i in 0..settings.threads.max(1) {
            let (rx, busy, costs) = (rx.clone(), busy.clone(), costs.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("{THREAD_PREFIX}{i}"))
                .spawn(move || {
                    set_priority(priority);
                    serve(&rx, &busy, &costs, slots)
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start an evidence thread");
            }
        }
        m::register_evidence_defaults();
        if settings.deadline >= crate::commit::REVOKE_GRACE {
            tracing::warn!(
                deadline_ms = settings.deadline.as_millis(),
                grace_ms = crate::commit::REVOKE_GRACE.as_millis(),
                "worker.evidence.deadline is not below the revocation grace: a partition revoked while an alert waits for its evidence is handed over without it, and its next owner redoes the input (its prediction and alert may come twice)"
            );
        }
        Arc::new(EvidencePool {
            tx: Mutex::new(Some(tx)),
            busy,
            slots,
            deadline: settings.deadline,
            skip_older_than: settings.skip_older_than,
            overlays: settings.overlays.clone(),
        })
    }

    /// Asks for the evidence for `label` of `model` on `payload` (detectors: on `boxes`)
    /// without waiting: the pool starts on it as soon as a thread is free, or it is skipped
    /// at once when the pool is full. `name` (the alert's camera and id) names its
    /// saliency overlays when they are written. [`Requested::wait`] never waits past the
    /// deadline, which runs from now.
    pub fn submit(
        &self,
        model: Arc<Classifier>,
        explainer: Arc<Explainer>,
        payload: Payload,
        label: usize,
        boxes: Vec<Detection>,
        name: Option<(&str, &str)>,
    ) -> Requested {
        let started = Instant::now();
        let deadline = started + self.deadline;
        let (reply, rx) = oneshot::channel();
        let method = explainer.method().as_str();
        let task = Task {
            model,
            explainer,
            payload,
            label,
            boxes,
            deadline,
            overlay: self.overlays.as_ref().zip(name).map(|(dir, (camera, id))| {
                dir.join(crate::snapshot::file_name(camera))
                    .join(crate::snapshot::file_name(id))
            }),
            reply,
        };
        let sent = match self.tx.lock() {
            Ok(tx) => match tx.as_ref() {
                Some(tx) => {
                    self.busy.fetch_add(1, Ordering::Relaxed);
                    let r = tx.try_send(task);
                    if r.is_err() {
                        self.busy.fetch_sub(1, Ordering::Relaxed);
                    }
                    r
                }
                None => Err(TrySendError::Disconnected(task)),
            },
            Err(_) => Err(TrySendError::Disconnected(task)),
        };
        self.gauge();
        match sent {
            Ok(()) => Requested(Asked::Later {
                rx,
                started,
                deadline,
                budget: self.deadline,
                method,
            }),
            Err(TrySendError::Full(_)) => Requested(Asked::Now(skipped(
                "saturated",
                format!(
                    "saturated: all {} evidence slots (threads + queue) were busy",
                    self.slots
                ),
            ))),
            Err(TrySendError::Disconnected(_)) => Requested(Asked::Now(skipped(
                "error",
                "error: the evidence pool has stopped".into(),
            ))),
        }
    }

    /// Asks for the evidence of `alerts` (those of a model's own rules; zone alerts are
    /// added later and carry their boxes and snapshot instead), all at once and without
    /// waiting; [`AwaitingEvidence::evidence`] collects it.
    pub fn request(
        &self,
        explaining: &Explaining,
        model: &Arc<Classifier>,
        c: &Classified,
        alerts: Vec<Alert>,
    ) -> AwaitingEvidence {
        let age_us = argus_wire::now_us().saturating_sub(c.envelope.capture_time_us);
        let age = Duration::from_micros(u64::try_from(age_us).unwrap_or(0));
        let backlog = (!self.skip_older_than.is_zero() && age > self.skip_older_than).then(|| {
            format!(
                "backlog: the input was {} ms old when it alerted (over {} ms): the worker is catching up",
                age.as_millis(),
                self.skip_older_than.as_millis()
            )
        });
        let requested = alerts
            .iter()
            .map(|alert| match (explaining, &backlog) {
                (Explaining::Off, _) => None,
                (Explaining::Unavailable(reason), _) => Some(Requested(Asked::Now(skipped(
                    "unavailable",
                    format!("unavailable: {reason}"),
                )))),
                (Explaining::Ready(_), Some(detail)) => {
                    Some(Requested(Asked::Now(skipped("backlog", detail.clone()))))
                }
                (Explaining::Ready(explainer), None) => {
                    let (label, boxes) = alert_target(model, alert);
                    let camera = alert.input.source_id.as_deref().unwrap_or_default();
                    Some(self.submit(
                        model.clone(),
                        explainer.clone(),
                        c.envelope.payload.clone(),
                        label,
                        boxes,
                        Some((camera, &alert.id)),
                    ))
                }
            })
            .collect();
        AwaitingEvidence { alerts, requested }
    }

    fn gauge(&self) {
        metrics::gauge!(m::EVIDENCE_POOL_SATURATION)
            .set(self.busy.load(Ordering::Relaxed) as f64 / self.slots as f64);
    }
}

/// One alert's evidence, asked for ([`EvidencePool::submit`]).
#[derive(Debug)]
pub struct Requested(Asked);

#[derive(Debug)]
enum Asked {
    /// Known at once: skipped (pool full or stopped, or the version cannot be explained).
    Now(Evidence),
    /// On its way from the pool.
    Later {
        rx: oneshot::Receiver<Result<Evidence, Missed>>,
        started: Instant,
        deadline: Instant,
        budget: Duration,
        method: &'static str,
    },
}

impl Requested {
    /// The evidence, or why there is none, by the deadline at the latest.
    pub async fn wait(self) -> Evidence {
        let (rx, started, deadline, budget, method) = match self.0 {
            Asked::Now(e) => return e,
            Asked::Later {
                rx,
                started,
                deadline,
                budget,
                method,
            } => (rx, started, deadline, budget, method),
        };
        let missed = || {
            skipped(
                "deadline",
                format!("deadline: not computed within {} ms", budget.as_millis()),
            )
        };
        match tokio::time::timeout_at(deadline.into(), rx).await {
            Ok(Ok(Ok(mut e))) => {
                let took = started.elapsed();
                e.compute_us = Some(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                metrics::histogram!(m::EVIDENCE_SECONDS, "method" => method)
                    .record(took.as_secs_f64());
                e
            }
            Ok(Ok(Err(Missed::Failed(reason)))) => skipped("error", format!("error: {reason}")),
            Ok(Ok(Err(Missed::TooSlow(takes)))) => skipped(
                "deadline",
                format!(
                    "deadline: this model's evidence takes about {} ms, more than was left of {} ms; not computed",
                    takes.as_millis(),
                    budget.as_millis()
                ),
            ),
            Ok(Ok(Err(Missed::Deadline))) | Err(_) => missed(),
            Ok(Err(_)) => skipped("error", "error: the evidence pool has stopped".into()),
        }
    }
}

/// Alerts whose evidence was asked for ([`EvidencePool::request`]) and is on its way.
#[derive(Debug)]
pub struct AwaitingEvidence {
    alerts: Vec<Alert>,
    /// Per alert; none when evidence is off.
    requested: Vec<Option<Requested>>,
}

impl AwaitingEvidence {
    /// The alerts with their evidence (`argus.alert/v4`), or with why there is none: by
    /// the deadline at the latest.
    pub async fn evidence(self) -> Vec<Alert> {
        let AwaitingEvidence {
            mut alerts,
            requested,
        } = self;
        let evidence = futures::future::join_all(requested.into_iter().map(|r| async move {
            match r {
                Some(r) => Some(r.wait().await),
                None => None,
            }
        }))
        .await;
        for (alert, evidence) in alerts.iter_mut().zip(evidence) {
            if let Some(e) = evidence {
                alert.schema = ALERT_SCHEMA_V4.into();
                alert.evidence = Some(e);
            }
        }
        alerts
    }
}

impl Drop for EvidencePool {
    fn drop(&mut self) {
        // Closing the queue ends the threads once it is empty.
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
    }
}

/// Gives the calling thread `priority`; on failure the thread keeps its priority and says
/// so (evidence then competes with the model for the cores).
fn set_priority(priority: EvidencePriority) {
    if priority == EvidencePriority::Normal {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadPriority, ThreadSchedulePolicy,
        };
        let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(e) =
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, policy)
        {
            tracing::warn!(error = ?e, "cannot give the evidence thread idle priority; it runs at normal priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        use thread_priority::{set_current_thread_priority, ThreadPriority};
        if let Err(e) = set_current_thread_priority(ThreadPriority::Min) {
            tracing::warn!(error = ?e, "cannot lower the evidence thread's priority");
        }
    }
}

/// An explainer refused as too slow is tried again this long after its last run, to
/// measure again (the machine may have become less busy).
const PROBE_AFTER: Duration = Duration::from_secs(10);
/// Recent runs per explainer whose median is its expected cost.
const COST_SAMPLES: usize = 5;

/// What each explainer's evidence has been taking (the median of its last few runs), so a
/// task that cannot finish before its deadline is not started: its alert would not wait
/// for it, and the pool would be busy for nothing (a person-detector alert's occlusion
/// takes ~1.4 s against a 500 ms deadline).
#[derive(Debug, Default)]
struct Costs {
    by_explainer: Mutex<std::collections::HashMap<usize, Cost>>,
}

#[derive(Debug)]
struct Cost {
    recent: std::collections::VecDeque<Duration>,
    /// When a task of this explainer last started.
    last_run: Instant,
}

impl Cost {
    fn expected(&self) -> Duration {
        let mut v: Vec<Duration> = self.recent.iter().copied().collect();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }
}

impl Costs {
    /// Whether a task of `explainer` with `left` before its deadline should start at
    /// `now`; if not, about how long it would take. One that has been refused for
    /// [`PROBE_AFTER`] starts anyway.
    fn start(&self, explainer: usize, left: Duration, now: Instant) -> Result<(), Duration> {
        let mut by = self.by_explainer.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = by.get_mut(&explainer) else {
            return Ok(());
        };
        let expected = c.expected();
        if expected <= left || now.saturating_duration_since(c.last_run) >= PROBE_AFTER {
            c.last_run = now;
            Ok(())
        } else {
            Err(expected)
        }
    }

    /// A task of `explainer` started at `started` took `took`.
    fn record(&self, explainer: usize, took: Duration, started: Instant) {
        let mut by = self.by_explainer.lock().unwrap_or_else(|e| e.into_inner());
        let c = by.entry(explainer).or_insert_with(|| Cost {
            recent: std::collections::VecDeque::with_capacity(COST_SAMPLES),
            last_run: started,
        });
        if c.recent.len() == COST_SAMPLES {
            c.recent.pop_front();
        }
        c.recent.push_back(took);
    }
}

/// An evidence thread: takes tasks until the queue closes.
fn serve(rx: &Mutex<Receiver<Task>>, busy: &AtomicUsize, costs: &Costs, slots: usize) {
    loop {
        let task = match rx.lock() {
            Ok(rx) => match rx.recv() {
                Ok(t) => t,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let key = Arc::as_ptr(&task.explainer) as usize;
        let now = Instant::now();
        // Nobody waits any more (deadline passed), or nobody will by the time it is done:
        // don't spend the pool on it, and say why (the waiting alert's own timer may not
        // have fired yet).
        if now >= task.deadline {
            let _ = task.reply.send(Err(Missed::Deadline));
        } else if task.reply.is_closed() {
            // Its alert stopped waiting (the input's partition was revoked).
        } else if let Err(takes) =
            costs.start(key, task.deadline.saturating_duration_since(now), now)
        {
            let _ = task.reply.send(Err(Missed::TooSlow(takes)));
        } else {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                task.explainer
                    .explain(&task.model, &task.payload, task.label, &task.boxes)
            }));
            costs.record(key, now.elapsed(), now);
            let result = match result {
                Ok(Ok(mut e)) => {
                    if let Some(base) = &task.overlay {
                        write_overlays(&task.payload, &mut e, base);
                    }
                    Ok(e)
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "evidence failed");
                    Err(Missed::Failed(e.to_string()))
                }
                Err(_) => Err(Missed::Failed("the explainer panicked".to_string())),
            };
            let _ = task.reply.send(result);
        }
        let left = busy.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        metrics::gauge!(m::EVIDENCE_POOL_SATURATION).set(left as f64 / slots as f64);
    }
}

/// Writes a PNG per saliency grid of `e` next to `base` and records where in the grid.
fn write_overlays(payload: &Payload, e: &mut Evidence, base: &std::path::Path) {
    for (k, s) in e.saliency.iter_mut().enumerate() {
        let mut path = base.as_os_str().to_owned();
        path.push(format!("-{k}.png"));
        let path = PathBuf::from(path);
        match crate::snapshot::write_overlay(payload, s, &path) {
            Ok(()) => s.overlay = Some(format!("file://{}", path.display())),
            Err(error) => {
                metrics::counter!(m::EVIDENCE_OVERLAY_FAILURES).increment(1);
                tracing::warn!(path = %path.display(), error, "saliency overlay not written");
            }
        }
    }
}

/// Evidence skipped for `reason` (the metric's label) with `detail` for the reader.
fn skipped(reason: &'static str, detail: String) -> Evidence {
    metrics::counter!(m::EVIDENCE_SKIPPED, "reason" => reason).increment(1);
    tracing::debug!(reason, detail, "alert without evidence");
    Evidence::skipped(detail)
}

/// What an alert's evidence explains: its label's index in `model`'s outputs, and (for a
/// detector) the alert's boxes as detections of that label, in frame pixels.
fn alert_target(model: &Classifier, alert: &Alert) -> (usize, Vec<Detection>) {
    let label = model
        .labels()
        .iter()
        .position(|l| *l == alert.label)
        .unwrap_or(0);
    let boxes = alert
        .detections
        .iter()
        .flatten()
        .map(|b| Detection {
            class: label,
            score: b.score,
            bbox: BBox::new(b.bbox[0], b.bbox[1], b.bbox[2], b.bbox[3]),
        })
        .collect();
    (label, boxes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::path::PathBuf;

    fn churn() -> Arc<Classifier> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/churn");
        Arc::new(Classifier::load(&dir).unwrap())
    }

    fn record() -> Payload {
        use argus_wire::Value::{Bool, Float, Int, Text};
        let fields = [
            ("tenure_months", Int(2)),
            ("monthly_charges", Float(95.5)),
            ("total_charges", Float(190.0)),
            ("complaints_90d", Int(4)),
            ("support_calls_30d", Int(5)),
            ("days_since_last_interaction", Int(120)),
            ("region", Text("west".into())),
            ("plan", Text("unlimited".into())),
            ("contract", Text("month_to_month".into())),
            ("autopay", Bool(false)),
            ("senior", Bool(true)),
        ];
        Payload::Record(argus_wire::Record {
            fields: fields
                .into_iter()
                .map(|(n, value)| argus_wire::Field {
                    name: n.into(),
                    value,
                })
                .collect(),
        })
    }

    fn settings(threads: usize, queue: usize, deadline: Duration) -> EvidenceSettings {
        EvidenceSettings {
            enabled: true,
            threads,
            queue,
            deadline,
            ..EvidenceSettings::default()
        }
    }

    fn explainer(model: &Classifier, s: &EvidenceSettings) -> Arc<Explainer> {
        match Explaining::for_model(model, s) {
            Explaining::Ready(e) => e,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn evidence_comes_back_within_the_deadline() {
        let model = churn();
        let s = settings(1, 4, Duration::from_secs(30));
        let pool = EvidencePool::start(&s);
        let e = pool
            .submit(
                model.clone(),
                explainer(&model, &s),
                record(),
                1,
                vec![],
                None,
            )
            .wait()
            .await;
        assert_eq!(e.status, argus_wire::EvidenceStatus::Ok, "{e:?}");
        assert!(e.compute_us.is_some());
    }

    /// Under load the budget holds: no request waits past its deadline (plus scheduling
    /// slack), and what the pool cannot take is skipped at once as `saturated`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_load_no_alert_waits_past_its_deadline() {
        let deadline = Duration::from_millis(20);
        let s = EvidenceSettings {
            // Slow explanations (sampling with many permutations) to overload the pool.
            permutations: 20_000,
            ..settings(1, 2, deadline)
        };
        let slow = {
            let dir = tempfile::tempdir().unwrap();
            let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/churn");
            for f in ["model.onnx", "background.json"] {
                std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
            }
            let manifest = std::fs::read_to_string(src.join("manifest.toml"))
                .unwrap()
                .replace("covers = \"tree_covers.json\"\n", "");
            std::fs::write(dir.path().join("manifest.toml"), manifest).unwrap();
            let m = Arc::new(Classifier::load(dir.path()).unwrap());
            (m, dir)
        };
        let explainer = explainer(&slow.0, &s);
        let pool = EvidencePool::start(&s);
        let started = Instant::now();
        let waits = futures::future::join_all((0..12).map(|_| {
            let (pool, model, explainer) = (&pool, slow.0.clone(), explainer.clone());
            async move {
                let t = Instant::now();
                let e = pool
                    .submit(model, explainer, record(), 1, vec![], None)
                    .wait()
                    .await;
                (t.elapsed(), e)
            }
        }))
        .await;
        let mut reasons = std::collections::BTreeMap::new();
        for (waited, e) in &waits {
            assert!(
                *waited < deadline + Duration::from_millis(200),
                "waited {waited:?} with a {deadline:?} deadline"
            );
            assert_eq!(e.status, argus_wire::EvidenceStatus::Skipped);
            let reason = e
                .reason
                .as_deref()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_owned();
            *reasons.entry(reason).or_insert(0) += 1;
        }
        assert!(
            reasons.get("saturated").copied().unwrap_or(0) >= 8,
            "{reasons:?}"
        );
        assert!(reasons.contains_key("deadline"), "{reasons:?}");
        // A task the pool drops as expired is a deadline, not an error.
        assert!(!reasons.contains_key("error"), "{reasons:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    /// A classified churn record captured `age` ago, on `pipeline`: its outputs and the
    /// alerts it raised, their evidence asked for from `pool`.
    fn alert_aged(
        pipeline: &crate::pipeline::Pipeline,
        pool: &EvidencePool,
        age: Duration,
    ) -> Option<AwaitingEvidence> {
        let envelope = argus_wire::Envelope {
            schema_version: argus_wire::SCHEMA_VERSION,
            source_id: "C1".into(),
            sequence: 1,
            capture_time_us: argus_wire::now_us() - age.as_micros() as i64,
            payload: record(),
        };
        let classification = pipeline.model().classify(&envelope.payload).unwrap();
        let job = crate::job::Job {
            topic: "customers".into(),
            partition: 0,
            offset: 7,
            key: Some(b"C1".to_vec()),
            value: std::sync::Arc::from(&b""[..]),
            headers: argus_kafka::RawHeaders::new(),
            timestamp_ms: None,
            received: Instant::now(),
        };
        let outcome = crate::outputs::Outcome::Classified(Classified {
            envelope,
            classification,
            queue_us: 0,
            envelope_us: 0,
        });
        pipeline
            .render_asking_evidence(&job, &outcome, Some(pool))
            .1
    }

    /// An alert on an input older than `skip_older_than` (the worker is catching up) goes
    /// out without evidence at once, reason `backlog`; a fresh one gets its evidence.
    #[tokio::test]
    async fn alerts_on_old_inputs_skip_evidence_as_backlog() {
        let model = churn();
        let mut config = crate::WorkerConfig::new("w", vec!["customers".into()]);
        config.rules = crate::AlertRule::for_bundle(&[], &model);
        config.evidence = EvidenceSettings {
            skip_older_than: Duration::from_secs(2),
            ..settings(1, 4, Duration::from_secs(30))
        };
        let pipeline = crate::pipeline::Pipeline::new(model, &config);
        let pool = EvidencePool::start(&config.evidence);
        let old = alert_aged(&pipeline, &pool, Duration::from_secs(5)).unwrap();
        let started = Instant::now();
        let alerts = old.evidence().await;
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(alerts.len(), 1);
        let e = alerts[0].evidence.as_ref().unwrap();
        assert_eq!(e.status, argus_wire::EvidenceStatus::Skipped);
        assert!(
            e.reason.as_deref().unwrap().starts_with("backlog: "),
            "{e:?}"
        );
        let fresh = alert_aged(&pipeline, &pool, Duration::from_millis(100)).unwrap();
        let alerts = fresh.evidence().await;
        let e = alerts[0].evidence.as_ref().unwrap();
        assert_eq!(e.status, argus_wire::EvidenceStatus::Ok, "{e:?}");
        assert_eq!(alerts[0].schema, ALERT_SCHEMA_V4);
    }

    /// An explainer known to take longer than the time left is not started, but tried
    /// again after [`PROBE_AFTER`]; one that fits is; one outlier does not stick.
    #[test]
    fn tasks_that_cannot_finish_in_time_are_not_started() {
        let costs = Costs::default();
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        assert_eq!(costs.start(1, ms(500), t0), Ok(()), "unknown cost: start");
        costs.record(1, ms(1400), t0);
        assert_eq!(costs.start(1, ms(500), t0 + ms(10)), Err(ms(1400)));
        assert_eq!(
            costs.start(1, ms(2000), t0 + ms(20)),
            Ok(()),
            "enough time left"
        );
        assert_eq!(
            costs.start(2, ms(500), t0 + ms(30)),
            Ok(()),
            "another explainer"
        );
        assert!(costs.start(1, ms(500), t0 + ms(9000)).is_err());
        let probe = t0 + ms(20) + PROBE_AFTER;
        assert_eq!(costs.start(1, ms(500), probe), Ok(()), "a probe");
        assert!(
            costs.start(1, ms(500), probe + ms(1)).is_err(),
            "one probe at a time"
        );
        // Faster now: after a few quick runs the median is under the deadline.
        for _ in 0..3 {
            costs.record(1, ms(100), probe);
        }
        assert_eq!(costs.start(1, ms(500), probe + ms(2)), Ok(()));
        // One slow outlier among quick runs changes nothing.
        costs.record(1, ms(5000), probe);
        assert_eq!(costs.start(1, ms(500), probe + ms(3)), Ok(()));
    }

    /// The pool's threads run under `SCHED_IDLE` (policy 5 in `/proc/.../stat`), so
    /// evidence only takes CPU nothing else wants.
    #[cfg(target_os = "linux")]
    #[test]
    fn evidence_threads_run_at_idle_priority() {
        let s = settings(1, 1, Duration::from_secs(1));
        assert_eq!(s.priority, EvidencePriority::Idle);
        let _pool = EvidencePool::start(&s);
        // The kernel keeps 15 bytes of a thread's name.
        let policies = |name: &str| -> Vec<u32> {
            let mut found = Vec::new();
            for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                if !comm.trim().starts_with(name) {
                    continue;
                }
                let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
                let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
                // Fields from the third (state) on; the policy is the 41st.
                if let Some(p) = after.split_whitespace().nth(41 - 3) {
                    found.push(p.parse().unwrap());
                }
            }
            found
        };
        let started = Instant::now();
        loop {
            let found = policies(THREAD_PREFIX);
            if !found.is_empty() && found.iter().all(|&p| p == 5) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "evidence threads' scheduling policies: {found:?} (SCHED_IDLE is 5)"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_tabular_bundle_without_explain_files_is_unavailable_and_off_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/churn");
        std::fs::copy(src.join("model.onnx"), dir.path().join("model.onnx")).unwrap();
        let manifest = std::fs::read_to_string(src.join("manifest.toml"))
            .unwrap()
            .replace(
                "[explain]\ncovers = \"tree_covers.json\"\nbackground = \"background.json\"\n",
                "",
            )
            .replace("argus.bundle/v5", "argus.bundle/v2");
        std::fs::write(dir.path().join("manifest.toml"), manifest).unwrap();
        let model = Classifier::load(dir.path()).unwrap();
        let on = settings(1, 1, Duration::from_secs(1));
        assert!(matches!(
            Explaining::for_model(&model, &on),
            Explaining::Unavailable(r) if r.contains("[explain]")
        ));
        assert!(matches!(
            Explaining::for_model(&model, &EvidenceSettings::default()),
            Explaining::Off
        ));
    }
}
