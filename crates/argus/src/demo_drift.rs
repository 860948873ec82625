//! The demo's drift sidecar: a reference profile built from other frames of the same
//! synthetic cameras (with the model's outputs and ground truth, so CBPE is calibrated), a
//! sidecar with short panes, and one status line per evaluated window.
use crate::CliError;
use argus_drift::profile::ImageProfileBuilder;
use argus_drift::quality::QualityReport;
use argus_drift::sidecar::{DriftConfig, DriftStats, QualityWiring};
use argus_model::Classifier;
use argus_producer::SyntheticSource;
use argus_stats::live::LiveMetric;
use argus_stats::profile::{Profile, ProfileSettings};
use argus_stats::report::{DriftReport, ModelInfo, Status};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Reference frames per camera.
const REFERENCE_PER_CAMERA: u64 = 120;

/// Profile the cameras of `source` (unbrightened) with `model`'s outputs.
pub fn reference(source: &SyntheticSource, model: &Classifier) -> Result<Profile, CliError> {
    let positive = if model.labels().iter().any(|l| l == "person") {
        "person".to_owned()
    } else {
        model.labels().last().cloned().unwrap_or_default()
    };
    let mut b = ImageProfileBuilder::new(ProfileSettings::default(), Some((model, positive)));
    crate::drift::add_synthetic(&mut b, source, REFERENCE_PER_CAMERA)?;
    b.build(
        &format!("demo-seed{}", source.seed),
        &format!(
            "synthetic cameras, seed {}, {} frames per camera",
            source.seed, REFERENCE_PER_CAMERA
        ),
        &format!("argus {}", env!("CARGO_PKG_VERSION")),
    )
    .map_err(|e| CliError::Runtime(e.into()))
}

pub struct DemoDrift {
    pub task: JoinHandle<Result<DriftStats, CliError>>,
    pub reports: mpsc::UnboundedReceiver<DriftReport>,
    /// Latest report per segment.
    pub latest: BTreeMap<String, DriftReport>,
    pub quality: mpsc::UnboundedReceiver<QualityReport>,
    /// Latest judged quality per (version, segment).
    pub latest_quality: BTreeMap<(String, String), QualityReport>,
}

/// Where the demo's sidecar reads labels and writes quality reports and alerts.
pub struct DemoQuality {
    pub labels: String,
    pub quality: String,
    pub alerts: String,
    /// How long after a frame its label is published.
    pub label_delay: Duration,
}

/// Build the reference, then run a sidecar on `input` and `predictions`.
#[allow(clippy::too_many_arguments)]
pub fn start(
    settings: argus_kafka::KafkaSettings,
    source: SyntheticSource,
    model: Arc<Classifier>,
    input: &str,
    predictions: &str,
    run_id: &str,
    pane: Duration,
    create_topics: bool,
    quality: DemoQuality,
    stop: CancellationToken,
) -> DemoDrift {
    let mut c = DriftConfig::new(
        input,
        "demo-drift",
        ModelInfo {
            id: "camera-person".into(),
            version: "1".into(),
        },
    );
    c.predictions_topic = Some(predictions.to_owned());
    c.group = format!("argus-demo-drift-{run_id}");
    let [panes, reports, _, _] = topics(run_id);
    c.panes_topic = panes;
    c.reports_topic = reports;
    c.pane = pane;
    c.window_panes = 3;
    c.lateness = Duration::from_millis(500);
    c.max_fps = 0.0;
    c.alarm_k = 2;
    c.create_topics = create_topics;
    let (tx, reports) = mpsc::unbounded_channel();
    let (qtx, quality_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let t = std::time::Instant::now();
        let profile = tokio::task::spawn_blocking(move || reference(&source, &model))
            .await
            .map_err(|e| CliError::Runtime(e.into()))??;
        println!(
            "drift sidecar: reference {} ready ({} features, {} cameras + fleet, CBPE calibration {}) after {:.1} s",
            profile.id,
            profile.fleet().features.len(),
            profile.segments.len().saturating_sub(1),
            if profile.calibration.is_some() { "yes" } else { "no" },
            t.elapsed().as_secs_f64(),
        );
        // Live quality: labels from the producer (it knows each scene's truth) joined with
        // the predictions; a window significantly less accurate than the reference (where
        // the model's accuracy was measured with labels) is degraded.
        let reference_accuracy = profile.calibration.as_ref().map(|c| c.reference_accuracy);
        c.quality = Some(QualityWiring {
            labels_topic: quality.labels,
            quality_topic: quality.quality,
            alerts_topic: quality.alerts,
            horizon: quality.label_delay + 3 * pane,
            positive: None,
            threshold: None,
            floors: Vec::new(),
            reference: reference_accuracy
                .map(|a| vec![(LiveMetric::Accuracy, a)])
                .unwrap_or_default(),
            alpha: 0.01,
            min_labels: 10,
            alarm_k: 2,
        });
        c.validate().map_err(CliError::Usage)?;
        argus_drift::sidecar::run(
            c,
            settings,
            Arc::new(profile),
            argus_drift::sidecar::Outputs {
                reports: Some(tx),
                quality: Some(qtx),
            },
            stop,
        )
        .await
        .map_err(|e| CliError::Runtime(e.into()))
    });
    DemoDrift {
        task,
        reports,
        latest: BTreeMap::new(),
        quality: quality_rx,
        latest_quality: BTreeMap::new(),
    }
}

/// The topics the demo's sidecar uses (created up front on the embedded broker): panes,
/// reports, labels, quality.
pub fn topics(run_id: &str) -> [String; 4] {
    [
        format!("drift.panes.demo-{run_id}"),
        format!("drift.demo-{run_id}"),
        format!("labels.demo-{run_id}"),
        format!("quality.demo-{run_id}"),
    ]
}

/// One line per quality report, after `prefix`: version, segment, window, labelled share,
/// the metrics, the CBPE estimate beside the realised accuracy, the alarm.
pub fn quality_line(prefix: &str, r: &QualityReport) -> String {
    let time = |s: &str| s.get(11..19).unwrap_or(s).to_owned();
    let mut out = format!(
        "{prefix} v{} {:<5} {}–{} labelled {}/{}",
        r.model.version,
        r.segment,
        time(&r.window.start),
        time(&r.window.end),
        r.labelled,
        r.predictions,
    );
    match &r.metrics {
        Some(m) => out.push_str(&format!(
            " precision {:.3} recall {:.3} accuracy {:.3}",
            m.precision, m.recall, m.accuracy
        )),
        None => out.push_str(" (too few labels to judge)"),
    }
    if let Some(e) = &r.estimate {
        out.push_str(&format!(
            " | est. accuracy {:.3} (error {:+.3})",
            e.estimated_accuracy, e.error
        ));
    }
    if !r.degraded.is_empty() {
        let what: Vec<String> = r
            .degraded
            .iter()
            .map(|f| format!("{} {:.3} < {:.3}", f.metric.as_str(), f.value, f.against))
            .collect();
        out.push_str(&format!(" | DEGRADED {}", what.join(", ")));
    }
    out.push_str(&format!(" | alarm {}", r.alarm.state));
    out
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Warn => "warn",
        Status::Drift => "DRIFT",
        Status::InsufficientData => "insufficient data",
    }
}

/// One line per report: segment, window, status, drifting features, alarm, CBPE.
pub fn line(r: &DriftReport) -> String {
    let drifting: Vec<&str> = r
        .features
        .iter()
        .filter(|f| f.status == Status::Drift)
        .map(|f| f.name.as_str())
        .collect();
    let time = |s: &str| s.get(11..19).unwrap_or(s).to_owned();
    let mut out = format!(
        "DRIFT-CHECK {:<5} {}–{} n={:<4} {:<17}",
        r.segment,
        time(&r.window.start),
        time(&r.window.end),
        r.window.n_sampled,
        status(r.dataset.status)
    );
    if !drifting.is_empty() {
        let shown: Vec<&str> = drifting.iter().take(4).copied().collect();
        out.push_str(&format!(
            " features: {}{}",
            shown.join(", "),
            if drifting.len() > 4 {
                format!(" (+{})", drifting.len() - 4)
            } else {
                String::new()
            }
        ));
    }
    out.push_str(&format!(" | alarm {}", r.alarm.state));
    if let Some(p) = &r.performance_estimate {
        if p.sufficient {
            out.push_str(&format!(
                " | est. accuracy {:.3} ± {:.3} (reference {:.3})",
                p.accuracy,
                3.0 * p.accuracy_se,
                p.reference_estimated_accuracy
            ));
        }
    }
    out
}

impl DemoDrift {
    /// Print new reports: the fleet every window, cameras when not ok; quality of the
    /// fleet per version every window, cameras when degraded.
    pub fn print_new(&mut self) {
        while let Ok(r) = self.reports.try_recv() {
            if r.segment == "*" || r.dataset.status == Status::Drift || r.alarm.state != "ok" {
                println!("{}", line(&r));
            }
            self.latest.insert(r.segment.clone(), r);
        }
        while let Ok(r) = self.quality.try_recv() {
            if r.segment == "*" || !r.degraded.is_empty() || r.alarm.state != "ok" {
                println!("{}", quality_line("QUALITY", &r));
            }
            // The summary keeps the last window each series could be judged in.
            let key = (r.model.version.clone(), r.segment.clone());
            if r.metrics.is_some() || !self.latest_quality.contains_key(&key) {
                self.latest_quality.insert(key, r);
            }
        }
    }

    /// Closing lines: each segment's last drift status, then each version and camera's last
    /// judged quality (precision per camera shows which camera's alerts are false).
    pub fn summary(&mut self) -> Vec<String> {
        self.print_new();
        let quality: Vec<String> = self
            .latest_quality
            .values()
            .map(|r| quality_line("quality", r))
            .collect();
        self.latest
            .values()
            .map(|r| {
                let named =
                    |st: Status, why: fn(&argus_stats::report::FeatureReport) -> &'static str| {
                        r.features
                            .iter()
                            .filter(|f| f.status == st)
                            .map(|f| format!("{}{}", f.name, why(f)))
                            .collect::<Vec<_>>()
                    };
                let drifting = named(Status::Drift, |_| "");
                let warning = named(Status::Warn, |f| {
                    if f.significant {
                        " (significant)"
                    } else {
                        " (material)"
                    }
                });
                let mut line = format!(
                    "drift {:<5}: {} (alarm {})",
                    r.segment,
                    status(r.dataset.status),
                    r.alarm.state
                );
                if !drifting.is_empty() {
                    line.push_str(&format!(" — {}", drifting.join(", ")));
                }
                if !warning.is_empty() {
                    line.push_str(&format!(" — warn: {}", warning.join(", ")));
                }
                line
            })
            .chain(quality)
            .collect()
    }
}
