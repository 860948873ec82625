//! `argus export-training`: flags and the printed summary; the export is
//! `argus_drift::export`.
use crate::config::{ArgusConfig, Flags};
use crate::flags::{parse_duration, KafkaFlags};
use crate::score::parse_time_ms;
use crate::CliError;
use argus_drift::export::{export, ExportConfig};
use argus_drift::sidecar::DriftError;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// `argus export-training` flags.
#[derive(Debug, Args)]
pub struct ExportFlags {
    #[command(flatten)]
    pub kafka: KafkaFlags,
    /// Labels that arrived from this time (RFC 3339 UTC like 2026-12-01T00:00:00Z, or epoch
    /// ms; Kafka timestamps of the labels topic) [default: the topic's start].
    #[arg(long, env = "ARGUS_EXPORT_FROM")]
    pub from: Option<String>,
    /// …until before this time [default: the end of the topic when the export starts].
    #[arg(long, env = "ARGUS_EXPORT_TO")]
    pub to: Option<String>,
    /// Output directory: samples.csv (records) or images/ + manifest.csv (frames), and
    /// summary.json. Required.
    #[arg(long, env = "ARGUS_EXPORT_OUT")]
    pub out: Option<PathBuf>,
    /// The labels topic.
    #[arg(long, env = "ARGUS_EXPORT_LABELS_TOPIC", default_value = "labels")]
    pub labels_topic: String,
    /// The predictions topic.
    #[arg(long, env = "ARGUS_EXPORT_PREDICTIONS", default_value = "predictions")]
    pub predictions: String,
    /// A record field that names the segment in the summary (e.g. region); frames are
    /// counted per camera.
    #[arg(long, env = "ARGUS_EXPORT_SEGMENT_FIELD")]
    pub segment_field: Option<String>,
    /// How long after an input its prediction may have been published.
    #[arg(long, env = "ARGUS_EXPORT_PREDICTION_WINDOW", value_parser = parse_duration, default_value = "1h")]
    pub prediction_window: Duration,
}

impl ExportFlags {
    pub fn flags(&self, f: &mut Flags) {
        self.kafka.flags(f);
    }
}

pub async fn run(a: ExportFlags, config: ArgusConfig) -> Result<(), CliError> {
    let time = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| parse_time_ms(s).map_err(|e| CliError::Usage(format!("{flag} {e}"))))
            .transpose()
    };
    let cfg = ExportConfig {
        labels_topic: a.labels_topic,
        predictions_topic: a.predictions,
        from_ms: time("--from", &a.from)?,
        to_ms: time("--to", &a.to)?,
        out: a
            .out
            .ok_or_else(|| CliError::Usage("--out DIR is required".into()))?,
        segment_field: a.segment_field,
        prediction_window: a.prediction_window,
        timeout: Duration::from_secs(30),
    };
    let settings = config.kafka.settings();
    crate::work::preflight(&settings).await?;
    let s = export(&cfg, &settings).await.map_err(|e| match e {
        DriftError::Setup(argus_kafka::KafkaSetupError::MissingTopic { .. })
        | DriftError::Output { .. } => CliError::Usage(e.to_string()),
        other => CliError::Runtime(other.into()),
    })?;
    let counts = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "exported {} samples to {}: labels {} | sources {} | model versions {} | segments {}",
        s.samples,
        cfg.out.display(),
        counts(&s.per_label),
        counts(&s.per_source),
        counts(&s.per_model_version),
        s.per_segment.len()
    );
    println!(
        "left out: {} invalid, {} duplicate and {} conflicting labels (the latest counts), {} inputs gone, {} undecodable; {} samples without a prediction",
        s.labels_invalid,
        s.labels_duplicate,
        s.labels_conflicting,
        s.inputs_missing,
        s.inputs_undecodable,
        s.predictions_missing
    );
    Ok(())
}
