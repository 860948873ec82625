//! `argus drift`: reference profiles, the sidecar, and offline comparison.
use crate::config::{ArgusConfig, Flags};
use crate::flags::{parse_duration, KafkaFlags};
use crate::{shutdown, telemetry, CliError};
use argus_drift::follow::{ReferenceFailure, RegistryReferences};
use argus_drift::profile::ImageProfileBuilder;
use argus_drift::records::{self, ColumnSpec};
use argus_drift::settings::eval_config;
use argus_drift::sidecar::DriftError;
use argus_stats::profile::{Profile, ProfileSettings};
use clap::builder::BoolishValueParser;
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum DriftCommand {
    /// Build a reference profile from training data (records, an image folder, or synthetic
    /// scenes), with the same code the sidecar summarises windows with.
    Profile(ProfileArgs),
    /// Run the drift sidecar on a live stream.
    Watch(Box<WatchFlags>),
    /// Compare two CSV/JSON-lines files (or a profile and a file) and print the report.
    ///
    /// Every row of the current file is tested (KS, Cramér–von Mises, Wasserstein), against
    /// every row of a --reference file (up to 10 000 000) or a --profile's stored sample (up
    /// to its reference_sample_max, 100 000 by default). Each test's `sample_n` = [current
    /// values, reference values] says what was tested. The sidecar (`drift watch`) tests a
    /// bottom-k sample of 1024 values per feature and window instead: its windows are merged
    /// from many partitions' and sidecars' partials, which that sample keeps exact and bounded.
    Compare(CompareArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ColumnArgs {
    /// Columns that are numeric (inferred otherwise).
    #[arg(long, env = "ARGUS_DRIFT_COLUMNS_NUMERIC", value_delimiter = ',')]
    pub numeric: Vec<String>,
    /// Columns that are categorical even if they hold numbers.
    #[arg(long, env = "ARGUS_DRIFT_COLUMNS_CATEGORICAL", value_delimiter = ',')]
    pub categorical: Vec<String>,
    /// Columns that are not features (ids, timestamps).
    #[arg(long, env = "ARGUS_DRIFT_COLUMNS_IGNORE", value_delimiter = ',')]
    pub ignore: Vec<String>,
    /// Column that names the segment (e.g. camera or region): one report per value.
    #[arg(long, env = "ARGUS_DRIFT_COLUMNS_SEGMENT")]
    pub segment_column: Option<String>,
    /// Ground-truth label column; with --score-column fits the CBPE calibration.
    #[arg(long, env = "ARGUS_DRIFT_COLUMNS_LABEL")]
    pub label_column: Option<String>,
    /// Model score column (probability of the positive label).
    #[arg(long, env = "ARGUS_DRIFT_COLUMNS_SCORE")]
    pub score_column: Option<String>,
}

impl ColumnArgs {
    fn spec(&self) -> ColumnSpec {
        ColumnSpec {
            numeric: self.numeric.clone(),
            categorical: self.categorical.clone(),
            ignore: self.ignore.clone(),
            segment: self.segment_column.clone(),
            label: self.label_column.clone(),
            score: self.score_column.clone(),
            threshold: None,
        }
    }
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Records: a CSV or JSON-lines file.
    #[arg(long, env = "ARGUS_DRIFT_PROFILE_RECORDS", conflicts_with_all = ["images", "synthetic"])]
    pub records: Option<PathBuf>,
    /// Images: a folder of JPEG/PNG; frames in sub-folders belong to the camera named by the
    /// sub-folder.
    #[arg(long, env = "ARGUS_DRIFT_PROFILE_IMAGES", conflicts_with = "synthetic")]
    pub images: Option<PathBuf>,
    /// Synthetic camera scenes: this many frames (ground truth known: fits CBPE calibration).
    #[arg(long, env = "ARGUS_DRIFT_PROFILE_SYNTHETIC")]
    pub synthetic: Option<u64>,
    /// Synthetic cameras (frames are spread round-robin).
    #[arg(long, env = "ARGUS_DRIFT_PROFILE_CAMERAS", default_value_t = 4)]
    pub cameras: u32,
    /// Synthetic scene seed: the live stream's (`argus produce synthetic --seed`), so the
    /// cameras look the same; reference frames come from far into each camera's sequence
    /// (from frame 100 000), away from the live ones.
    #[arg(long, env = "ARGUS_DRIFT_PROFILE_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Synthetic frame width.
    #[arg(long, env = "ARGUS_DRIFT_PROFILE_WIDTH", default_value_t = 640)]
    pub width: u32,
    /// Synthetic frame height.
    #[arg(long, env = "ARGUS_DRIFT_PROFILE_HEIGHT", default_value_t = 480)]
    pub height: u32,
    /// Model bundle whose outputs (score, predicted class) to profile too (images only).
    #[arg(long, env = "ARGUS_DRIFT_PROFILE_MODEL")]
    pub model: Option<PathBuf>,
    /// The label whose probability is the `score` feature.
    #[arg(
        long,
        env = "ARGUS_DRIFT_PROFILE_POSITIVE_LABEL",
        default_value = "person"
    )]
    pub positive_label: String,
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Profile id (default: the file or folder name).
    #[arg(long, env = "ARGUS_DRIFT_PROFILE_ID")]
    pub id: Option<String>,
    /// Where to write the profile (JSON).
    #[arg(long, short, env = "ARGUS_DRIFT_PROFILE_OUT")]
    pub out: PathBuf,
}

/// `argus drift watch` flags (`[drift]`).
#[derive(Debug, Args)]
pub struct WatchFlags {
    #[command(flatten)]
    pub kafka: KafkaFlags,
    /// Reference profile (from `argus drift profile`); required here or as drift.profile,
    /// unless --follow names a model whose versions ship their own.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Follow this model's production version in the registry (`[registry]`): watch
    /// against its reference profile (the bundle's `[monitoring] profile`, else --profile),
    /// name it in reports, count only its predictions, and switch when production changes.
    #[arg(long)]
    pub follow: Option<String>,
    /// The registry topic --follow reads [default: argus.models].
    #[arg(long)]
    pub registry_topic: Option<String>,
    /// Input topic to watch [default: frames.default].
    #[arg(long)]
    pub input: Option<String>,
    /// Predictions topic to watch too ("" = none) [default: predictions].
    #[arg(long)]
    pub predictions: Option<String>,
    /// Topic the reports go to [default: drift].
    #[arg(long)]
    pub reports_topic: Option<String>,
    /// Topic sidecars exchange pane summaries on [default: drift.panes].
    #[arg(long)]
    pub panes_topic: Option<String>,
    /// Consumer group of the sidecars (all sidecars of one group merge into one report)
    /// [default: argus-drift].
    #[arg(long)]
    pub group: Option<String>,
    /// Sidecar id (default: hostname-pid).
    #[arg(long)]
    pub sidecar_id: Option<String>,
    /// Event-time pane length [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    pub pane: Option<Duration>,
    /// Panes per evaluation window (the window slides by one pane) [default: 5].
    #[arg(long)]
    pub window_panes: Option<u32>,
    /// How late (event time) a record may arrive and still count [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    pub lateness: Option<Duration>,
    /// Share of frames sampled (deterministic by camera and capture time) [default: 1].
    #[arg(long)]
    pub sample_rate: Option<f64>,
    /// Frames per second per camera at most (0 = no cap) [default: 1].
    #[arg(long)]
    pub max_fps: Option<f64>,
    /// Consecutive drifting windows before the alarm fires [default: 3].
    #[arg(long)]
    pub alarm_windows: Option<u32>,
    /// Segments (cameras) exported as per-segment metrics at most, besides the fleet `*`;
    /// later ones are still analysed and reported [default: 50].
    #[arg(long)]
    pub max_metric_segments: Option<usize>,
    /// Per-feature significance level before FDR control [default: 0.05].
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Model id and version in reports (default: the profile id, "-").
    #[arg(long)]
    pub model_id: Option<String>,
    #[arg(long)]
    pub model_version: Option<String>,
    /// Address for /metrics and /healthz [default: 127.0.0.1:9101].
    #[arg(long)]
    pub metrics_addr: Option<SocketAddr>,
    /// Labels topic (argus.label/v1): join ground truth with the predictions and report live
    /// quality per model version and segment ("" = none) [default: none].
    #[arg(long)]
    pub labels: Option<String>,
    /// Topic the quality reports (argus.quality/v1) go to [default: quality].
    #[arg(long)]
    pub quality_topic: Option<String>,
    /// Topic the degradation alert (argus.quality-alert/v1) goes to [default: alerts].
    #[arg(long)]
    pub alerts_topic: Option<String>,
    /// How long a prediction waits for its label (event time); windows are judged this long
    /// after their end [default: 10m].
    #[arg(long, value_parser = parse_duration)]
    pub quality_horizon: Option<Duration>,
    /// The positive label [default: the profile's score label].
    #[arg(long)]
    pub quality_positive: Option<String>,
    /// Decision threshold on the positive label's probability [default: the profile's
    /// calibration, else 0.5].
    #[arg(long)]
    pub quality_threshold: Option<f64>,
    /// A floor, metric=value (accuracy, precision, recall, f1, roc_auc, pr_auc); repeat for
    /// more: a window below it is degraded.
    #[arg(long = "quality-floor")]
    pub quality_floors: Vec<String>,
    /// A test-set value recorded with the model, metric=value (accuracy, precision, recall,
    /// roc_auc); repeat for more: a window significantly below it is degraded.
    #[arg(long)]
    pub quality_reference: Vec<String>,
    /// Significance level of the one-sided tests against test-set values [default: 0.01].
    #[arg(long)]
    pub quality_alpha: Option<f64>,
    /// Labelled predictions a window needs before it is judged [default: 30].
    #[arg(long)]
    pub quality_min_labels: Option<u64>,
    /// Consecutive degraded windows before the degradation alarm fires [default: 2].
    #[arg(long)]
    pub quality_alarm_windows: Option<u32>,
}

impl WatchFlags {
    pub fn flags(&self, f: &mut Flags) {
        self.kafka.flags(f);
        f.set("drift.profile", "--profile", self.profile.as_ref());
        f.set("drift.follow", "--follow", self.follow.as_ref());
        f.set(
            "registry.topic",
            "--registry-topic",
            self.registry_topic.as_ref(),
        );
        f.set("drift.input", "--input", self.input.as_ref());
        f.set(
            "drift.predictions",
            "--predictions",
            self.predictions.as_ref(),
        );
        f.set(
            "drift.reports_topic",
            "--reports-topic",
            self.reports_topic.as_ref(),
        );
        f.set(
            "drift.panes_topic",
            "--panes-topic",
            self.panes_topic.as_ref(),
        );
        f.set("drift.group", "--group", self.group.as_ref());
        f.set("drift.sidecar_id", "--sidecar-id", self.sidecar_id.as_ref());
        f.duration("drift.pane", "--pane", self.pane);
        f.set(
            "drift.window_panes",
            "--window-panes",
            self.window_panes.as_ref(),
        );
        f.duration("drift.lateness", "--lateness", self.lateness);
        f.set(
            "drift.sample_rate",
            "--sample-rate",
            self.sample_rate.as_ref(),
        );
        f.set("drift.max_fps", "--max-fps", self.max_fps.as_ref());
        f.set(
            "drift.alarm_windows",
            "--alarm-windows",
            self.alarm_windows.as_ref(),
        );
        f.set(
            "drift.max_metric_segments",
            "--max-metric-segments",
            self.max_metric_segments.as_ref(),
        );
        f.set("drift.alpha", "--alpha", self.alpha.as_ref());
        f.set("drift.model_id", "--model-id", self.model_id.as_ref());
        f.set(
            "drift.model_version",
            "--model-version",
            self.model_version.as_ref(),
        );
        f.set(
            "drift.metrics_addr",
            "--metrics-addr",
            self.metrics_addr.as_ref(),
        );
        f.set("drift.labels", "--labels", self.labels.as_ref());
        f.set(
            "drift.quality_topic",
            "--quality-topic",
            self.quality_topic.as_ref(),
        );
        f.set(
            "drift.alerts_topic",
            "--alerts-topic",
            self.alerts_topic.as_ref(),
        );
        f.duration(
            "drift.quality_horizon",
            "--quality-horizon",
            self.quality_horizon,
        );
        f.set(
            "drift.quality_positive",
            "--quality-positive",
            self.quality_positive.as_ref(),
        );
        f.set(
            "drift.quality_threshold",
            "--quality-threshold",
            self.quality_threshold.as_ref(),
        );
        f.list(
            "drift.quality_floors",
            "--quality-floor",
            &self.quality_floors,
        );
        f.list(
            "drift.quality_reference",
            "--quality-reference",
            &self.quality_reference,
        );
        f.set(
            "drift.quality_alpha",
            "--quality-alpha",
            self.quality_alpha.as_ref(),
        );
        f.set(
            "drift.quality_min_labels",
            "--quality-min-labels",
            self.quality_min_labels.as_ref(),
        );
        f.set(
            "drift.quality_alarm_windows",
            "--quality-alarm-windows",
            self.quality_alarm_windows.as_ref(),
        );
    }
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Reference data (CSV or JSON lines).
    #[arg(
        long,
        env = "ARGUS_DRIFT_COMPARE_REFERENCE",
        required_unless_present = "profile"
    )]
    pub reference: Option<PathBuf>,
    /// A saved profile instead of --reference.
    #[arg(
        long,
        env = "ARGUS_DRIFT_COMPARE_PROFILE",
        conflicts_with = "reference"
    )]
    pub profile: Option<PathBuf>,
    /// Current data (CSV or JSON lines).
    #[arg(long, env = "ARGUS_DRIFT_COMPARE_CURRENT")]
    pub current: PathBuf,
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// Per-feature significance level before FDR control.
    #[arg(long, env = "ARGUS_DRIFT_COMPARE_ALPHA", default_value_t = 0.05)]
    pub alpha: f64,
    /// Pretty-print the JSON.
    #[arg(long, env = "ARGUS_DRIFT_COMPARE_PRETTY", value_parser = BoolishValueParser::new())]
    pub pretty: bool,
    /// Exit with code 3 when some segment drifted, so a pipeline tells "drift found" from
    /// "compare failed" (1; 64 for bad usage or an unreadable file).
    #[arg(long, env = "ARGUS_DRIFT_COMPARE_FAIL_ON_DRIFT", value_parser = BoolishValueParser::new())]
    pub fail_on_drift: bool,
}

/// Runs `cmd`; `config` layers the configuration under the sidecar's flags (`watch` only).
pub async fn run(
    cmd: DriftCommand,
    config: impl FnOnce(&WatchFlags) -> Result<ArgusConfig, CliError>,
) -> Result<(), CliError> {
    match cmd {
        DriftCommand::Profile(a) => tokio::task::spawn_blocking(move || profile(a))
            .await
            .map_err(|e| CliError::Runtime(e.into()))?,
        DriftCommand::Compare(a) => compare(a),
        DriftCommand::Watch(f) => watch(config(&f)?).await,
    }
}

fn created_by() -> String {
    format!("argus {}", env!("CARGO_PKG_VERSION"))
}

fn name_of(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Load and verify a profile; any problem is a configuration error (exit 64).
pub fn load_profile(path: &Path) -> Result<Profile, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read profile {}: {e}", path.display())))?;
    Profile::from_json(&text).map_err(|e| {
        CliError::Usage(format!(
            "{}: {e}; rebuild it with `argus drift profile`",
            path.display()
        ))
    })
}

fn profile(a: ProfileArgs) -> Result<(), CliError> {
    let settings = ProfileSettings::default();
    let profile = if let Some(path) = &a.records {
        let table = records::read_table(path).map_err(|e| CliError::Usage(e.to_string()))?;
        let id = a.id.clone().unwrap_or_else(|| name_of(path));
        records::profile_table(&table, &a.columns.spec(), &settings, &id, &created_by())
            .map_err(|e| CliError::Usage(e.to_string()))?
    } else if a.images.is_some() || a.synthetic.is_some() {
        let model = match &a.model {
            Some(p) => Some(crate::work::load_model(
                p,
                &Default::default(),
                argus_model::preprocess::MAX_DECODED_PIXELS,
            )?),
            None => None,
        };
        if let Some(m) = &model {
            if !m.labels().contains(&a.positive_label) {
                return Err(CliError::Usage(format!(
                    "--positive-label {} is not a label of the model ({})",
                    a.positive_label,
                    m.labels().join(", ")
                )));
            }
        }
        let mut b = ImageProfileBuilder::new(
            settings,
            model.as_deref().map(|m| (m, a.positive_label.clone())),
        );
        let (id, source) = if let Some(dir) = &a.images {
            let n = add_folder(&mut b, dir, "*")?;
            (
                a.id.clone().unwrap_or_else(|| name_of(dir)),
                format!("{} ({n} frames)", dir.display()),
            )
        } else {
            let n = a.synthetic.unwrap_or(0);
            let src = argus_producer::SyntheticSource {
                seed: a.seed,
                cameras: a.cameras.max(1),
                fps: 5.0,
                width: a.width,
                height: a.height,
                jpeg_quality: 85,
                brighten: None,
            };
            add_synthetic(&mut b, &src, n.div_ceil(u64::from(src.cameras)))?;
            (
                a.id.clone()
                    .unwrap_or_else(|| format!("synthetic-seed{}", a.seed)),
                format!(
                    "synthetic scenes: seed {}, {} cameras, {n} frames, {}x{}",
                    a.seed, a.cameras, a.width, a.height
                ),
            )
        };
        b.build(&id, &source, &created_by())
            .map_err(|e| CliError::Usage(e.to_string()))?
    } else {
        return Err(CliError::Usage(
            "say what to profile: --records FILE, --images DIR or --synthetic N".into(),
        ));
    };
    let json = profile.to_json().map_err(|e| CliError::Runtime(e.into()))?;
    std::fs::write(&a.out, json)
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", a.out.display())))?;
    let features: usize = profile.fleet().features.len();
    eprintln!(
        "profile {} written to {}: {} features, {} segment(s), {} reference records, sha256 {}",
        profile.id,
        a.out.display(),
        features,
        profile.segments.len(),
        profile.fleet().n,
        profile.sha256
    );
    Ok(())
}

/// Reference frames of synthetic cameras start this far into each camera's sequence.
pub const SYNTHETIC_REFERENCE_FIRST_SEQUENCE: u64 = 100_000;

/// Add `per_camera` frames of every camera of `src` (unbrightened), with ground truth, from
/// [`SYNTHETIC_REFERENCE_FIRST_SEQUENCE`] on.
pub fn add_synthetic(
    b: &mut ImageProfileBuilder<'_>,
    src: &argus_producer::SyntheticSource,
    per_camera: u64,
) -> Result<(), CliError> {
    let mut src = src.clone();
    src.brighten = None;
    let cameras = u64::from(src.cameras.max(1));
    let first = SYNTHETIC_REFERENCE_FIRST_SEQUENCE * cameras;
    for i in first..first + per_camera * cameras {
        let f = src.frame(i, 0).map_err(|e| CliError::Runtime(e.into()))?;
        b.add(&f.key, &f.envelope.payload, f.has_person)
            .map_err(CliError::Usage)?;
    }
    Ok(())
}

/// Every image in `dir` (sorted) as `segment`; sub-folders are cameras of their own.
fn add_folder(b: &mut ImageProfileBuilder<'_>, dir: &Path, segment: &str) -> Result<u64, CliError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut n = 0;
    for p in entries {
        if p.is_dir() {
            n += add_folder(b, &p, &name_of(&p))?;
            continue;
        }
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let format = match ext.as_str() {
            "jpg" | "jpeg" => argus_wire::ImageFormat::Jpeg,
            "png" => argus_wire::ImageFormat::Png,
            _ => continue,
        };
        let bytes = std::fs::read(&p)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", p.display())))?;
        b.add(
            segment,
            &argus_wire::Payload::Encoded { format, bytes },
            None,
        )
        .map_err(CliError::Usage)?;
        n += 1;
    }
    if n == 0 && segment == "*" {
        return Err(CliError::Usage(format!(
            "no .jpg/.jpeg/.png files in {}",
            dir.display()
        )));
    }
    Ok(n)
}

fn compare(a: CompareArgs) -> Result<(), CliError> {
    let cfg = eval_config(a.alpha).map_err(CliError::Usage)?;
    let current = records::read_table(&a.current).map_err(|e| CliError::Usage(e.to_string()))?;
    let reports = if let Some(p) = &a.profile {
        let profile = load_profile(p)?;
        argus_drift::compare::compare_with_profile(
            &profile,
            &current,
            a.columns.segment_column.as_deref(),
            &cfg,
            3,
        )
    } else {
        let path = a
            .reference
            .as_ref()
            .ok_or_else(|| CliError::Usage("--reference or --profile is required".into()))?;
        let reference = records::read_table(path).map_err(|e| CliError::Usage(e.to_string()))?;
        argus_drift::compare::compare(&reference, &current, &a.columns.spec(), &cfg, 3)
    }
    .map_err(|e| CliError::Usage(e.to_string()))?;
    for r in &reports {
        let line = if a.pretty {
            serde_json::to_string_pretty(r)
        } else {
            serde_json::to_string(r)
        };
        println!("{}", line.map_err(|e| CliError::Runtime(e.into()))?);
    }
    let drifted = reports.iter().filter(|r| r.dataset.drift).count();
    if drifted > 0 && a.fail_on_drift {
        return Err(CliError::Drift(format!(
            "drift detected in {drifted} of {} segment(s)",
            reports.len()
        )));
    }
    Ok(())
}

async fn watch(config: ArgusConfig) -> Result<(), CliError> {
    let d = &config.drift;
    let profile = match &d.profile {
        Some(path) => Some(Arc::new(load_profile(path)?)),
        None if d.follow.is_some() => None,
        None => {
            return Err(CliError::Usage(
                "no reference profile: give --profile FILE (or drift.profile, ARGUS_DRIFT_PROFILE), or --follow a model whose bundles ship one"
                    .into(),
            ))
        }
    };
    let name_in_reports = match (&d.follow, &profile) {
        (Some(model), _) => model.clone(),
        (None, Some(p)) => p.id.clone(),
        (None, None) => String::new(),
    };
    let sidecar = d
        .sidecar_config(crate::work::default_worker_id, &name_in_reports)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    if d.metrics_addr == argus_drift::settings::DriftSettings::default().metrics_addr {
        let env: Vec<(String, String)> = std::env::vars().collect();
        for (old, new) in crate::config::narrowed_env(&env, "drift.metrics_addr") {
            tracing::warn!(addr = %d.metrics_addr, "{old} is argus work's only now; the sidecar's address is {new} (or --metrics-addr)");
        }
    }
    let settings = config.kafka.settings();
    crate::work::preflight(&settings).await?;
    telemetry::metrics_handle();
    argus_kafka::metrics::register_defaults();
    let mut watched = vec![sidecar.input_topic.as_str()];
    watched.extend(sidecar.predictions_topic.as_deref());
    watched.extend(sidecar.quality.as_ref().map(|q| q.labels_topic.as_str()));
    argus_drift::metrics::register_defaults(&watched);
    let listener = telemetry::bind(d.metrics_addr)
        .await
        .map_err(CliError::Usage)?;
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(telemetry::serve(listener, Vec::new(), stop.clone()));
    let shutdown = shutdown::on_signal();
    let result = match (&d.follow, profile) {
        (Some(model), fallback) => {
            follow(&config, model, sidecar, settings, fallback, shutdown).await
        }
        (None, Some(profile)) => {
            tracing::info!(profile = %profile.id, sha256 = %profile.sha256, input = %sidecar.input_topic, "drift sidecar starting");
            argus_drift::sidecar::run(sidecar, settings, profile, Default::default(), shutdown)
                .await
        }
        (None, None) => Err(DriftError::Config("no reference profile".into())),
    };
    stop.cancel();
    let _ = server.await;
    match result {
        Ok(stats) => {
            tracing::info!(?stats, "drift sidecar stopped");
            Ok(())
        }
        Err(
            e @ (DriftError::SchemaMismatch(_)
            | DriftError::Config(_)
            | DriftError::Reference {
                reason: ReferenceFailure::Profile | ReferenceFailure::Verify,
                ..
            }),
        ) => Err(CliError::Usage(e.to_string())),
        Err(e) => Err(CliError::Runtime(e.into())),
    }
}

/// The sidecar on `model`'s production version in the registry (`--follow`).
async fn follow(
    config: &ArgusConfig,
    model: &str,
    sidecar: argus_drift::sidecar::DriftConfig,
    settings: argus_kafka::KafkaSettings,
    fallback: Option<Arc<Profile>>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<argus_drift::sidecar::DriftStats, DriftError> {
    let registry = argus_registry::Registry::open(&settings, config.registry.clone())
        .await
        .map_err(|e| DriftError::Config(e.to_string()))?;
    let updates = registry
        .follow(model)
        .map_err(|e| DriftError::Config(e.to_string()))?;
    argus_registry::metrics::register_defaults();
    let source = Arc::new(RegistryReferences {
        registry: Arc::new(registry),
        fallback,
    });
    tracing::info!(model, topic = %config.registry.topic, input = %sidecar.input_topic, "drift sidecar following the model's production version");
    argus_drift::follow::run_following(sidecar, settings, model, updates, source, shutdown).await
}
