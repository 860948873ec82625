//! [`DriftSettings`]: the `[drift]` table of the configuration (`argus drift watch`), every
//! default defined once here; [`DriftSettings::sidecar_config`] turns it into the
//! [`DriftConfig`] the sidecar runs with, checked once.
use crate::sidecar::{DriftConfig, DriftError, QualityWiring};
use argus_kafka::serde_helpers::duration;
use argus_stats::evaluate::EvalConfig;
use argus_stats::live::LiveMetric;
use argus_stats::report::ModelInfo;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `[drift]`: the drift sidecar (`argus drift watch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftSettings {
    /// Reference profile (from `argus drift profile`); required to watch, unless `follow`
    /// names a model whose versions ship their own (`[monitoring] profile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<PathBuf>,
    /// Follow this model's production version in the registry (`[registry]`): its
    /// reference profile, its name and version in reports, its predictions only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<String>,
    /// Input topic to watch.
    pub input: String,
    /// Predictions topic to watch too ("" = none).
    pub predictions: String,
    /// Topic the reports go to.
    pub reports_topic: String,
    /// Topic sidecars exchange pane summaries on.
    pub panes_topic: String,
    /// Consumer group of the sidecars.
    pub group: String,
    /// Sidecar id [default: hostname-pid].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar_id: Option<String>,
    /// Event-time pane length.
    #[serde(with = "duration")]
    pub pane: Duration,
    /// Panes per evaluation window.
    pub window_panes: u32,
    /// How late (event time) a record may arrive and still count.
    #[serde(with = "duration")]
    pub lateness: Duration,
    /// Share of frames sampled.
    pub sample_rate: f64,
    /// Frames per second per camera at most (0 = no cap).
    pub max_fps: f64,
    /// Segments (cameras) exported as per-segment metrics at most, besides the fleet `*`
    /// (about 200 series each); later segments are still analysed and reported on the
    /// reports topic, and counted in `argus_drift_segments_unexported_total`.
    pub max_metric_segments: usize,
    /// Consecutive drifting windows before the alarm fires.
    pub alarm_windows: u32,
    /// Per-feature significance level before FDR control.
    pub alpha: f64,
    /// Model id in reports [default: the profile id].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// Model version in reports.
    pub model_version: String,
    /// Address for /metrics and /healthz.
    pub metrics_addr: SocketAddr,
    /// Labels topic (`argus.label/v1`) to join with the predictions for live quality
    /// ("" = none).
    pub labels: String,
    /// Topic the quality reports go to.
    pub quality_topic: String,
    /// Topic the degradation alert goes to (the workers' alerts topic).
    pub alerts_topic: String,
    /// How long a prediction waits for its label (event time); a window is judged this long
    /// after its end.
    #[serde(with = "duration")]
    pub quality_horizon: Duration,
    /// The positive label [default: the profile's score label].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_positive: Option<String>,
    /// Decision threshold on its probability [default: the profile's calibration, else 0.5].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_threshold: Option<f64>,
    /// Floors, `metric=value` (accuracy, precision, recall, f1, roc_auc, pr_auc): a window
    /// below one is degraded.
    pub quality_floors: Vec<String>,
    /// Test-set values recorded with the model, `metric=value` (accuracy, precision, recall,
    /// roc_auc): a window significantly below one (one-sided test at its size) is degraded.
    pub quality_reference: Vec<String>,
    /// Significance level of those one-sided tests.
    pub quality_alpha: f64,
    /// Labelled predictions a window needs before it is judged.
    pub quality_min_labels: u64,
    /// Consecutive degraded windows before the degradation alarm fires.
    pub quality_alarm_windows: u32,
}

impl Default for DriftSettings {
    fn default() -> Self {
        DriftSettings {
            profile: None,
            follow: None,
            input: "frames.default".into(),
            predictions: "predictions".into(),
            reports_topic: "drift".into(),
            panes_topic: "drift.panes".into(),
            group: "argus-drift".into(),
            sidecar_id: None,
            pane: Duration::from_secs(60),
            window_panes: 5,
            lateness: Duration::from_secs(30),
            sample_rate: 1.0,
            max_fps: 1.0,
            max_metric_segments: 50,
            alarm_windows: 3,
            alpha: 0.05,
            model_id: None,
            model_version: "-".into(),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9101)),
            labels: String::new(),
            quality_topic: "quality".into(),
            alerts_topic: "alerts".into(),
            quality_horizon: Duration::from_secs(600),
            quality_positive: None,
            quality_threshold: None,
            quality_floors: Vec::new(),
            quality_reference: Vec::new(),
            quality_alpha: 0.01,
            quality_min_labels: 30,
            quality_alarm_windows: 2,
        }
    }
}

impl DriftSettings {
    /// The sidecar's configuration: `sidecar_id` when none is set, the model named by
    /// `profile_id` when no model id is set. Checked here, once (a mistake is
    /// [`DriftError::Config`], saying what to fix).
    pub fn sidecar_config(
        &self,
        default_sidecar_id: impl FnOnce() -> String,
        profile_id: &str,
    ) -> Result<DriftConfig, DriftError> {
        let id = self.sidecar_id.clone().unwrap_or_else(default_sidecar_id);
        let model = ModelInfo {
            id: self
                .model_id
                .clone()
                .unwrap_or_else(|| profile_id.to_owned()),
            version: self.model_version.clone(),
        };
        let mut c = DriftConfig::new(&self.input, &id, model);
        c.predictions_topic = (!self.predictions.is_empty()).then(|| self.predictions.clone());
        c.reports_topic.clone_from(&self.reports_topic);
        c.panes_topic.clone_from(&self.panes_topic);
        c.group.clone_from(&self.group);
        c.max_metric_segments = self.max_metric_segments;
        self.windows(&mut c);
        c.eval = eval_config(self.alpha).map_err(DriftError::Config)?;
        c.quality = self.quality().map_err(DriftError::Config)?;
        c.validate().map_err(DriftError::Config)?;
        Ok(c)
    }

    /// The quality join, when a labels topic is set.
    fn quality(&self) -> Result<Option<QualityWiring>, String> {
        if self.labels.is_empty() {
            return Ok(None);
        }
        Ok(Some(QualityWiring {
            labels_topic: self.labels.clone(),
            quality_topic: self.quality_topic.clone(),
            alerts_topic: self.alerts_topic.clone(),
            horizon: self.quality_horizon,
            positive: self.quality_positive.clone(),
            threshold: self.quality_threshold,
            floors: metric_values(&self.quality_floors, "--quality-floor")?,
            reference: metric_values(&self.quality_reference, "--quality-reference")?,
            alpha: self.quality_alpha,
            min_labels: self.quality_min_labels,
            alarm_k: self.quality_alarm_windows,
        }))
    }

    /// The window and sampling settings onto `c` (the rest of [`DriftConfig`] is the
    /// sidecar's own).
    pub(crate) fn windows(&self, c: &mut DriftConfig) {
        c.pane = self.pane;
        c.window_panes = self.window_panes;
        c.lateness = self.lateness;
        c.sample_rate = self.sample_rate;
        c.max_fps = self.max_fps;
        c.alarm_k = self.alarm_windows;
    }
}

/// `metric=value` pairs (`flag` names them in errors).
pub fn metric_values(pairs: &[String], flag: &str) -> Result<Vec<(LiveMetric, f64)>, String> {
    pairs
        .iter()
        .map(|pair| {
            let (name, value) = pair.split_once('=').ok_or_else(|| {
                format!("{flag} {pair:?}: write metric=value, e.g. precision=0.6")
            })?;
            let metric = LiveMetric::ALL
                .into_iter()
                .find(|m| m.as_str() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<&str> = LiveMetric::ALL.iter().map(|m| m.as_str()).collect();
                    format!(
                        "{flag} {pair:?}: unknown metric {name:?}; use one of {}",
                        names.join(", ")
                    )
                })?;
            let v: f64 = value
                .trim()
                .parse()
                .map_err(|_| format!("{flag} {pair:?}: {value:?} is not a number"))?;
            Ok((metric, v))
        })
        .collect()
}

/// Evaluation thresholds at significance level `alpha`, which must be in (0, 1).
pub fn eval_config(alpha: f64) -> Result<EvalConfig, String> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err("--alpha must be in (0, 1)".into());
    }
    Ok(EvalConfig {
        alpha,
        ..EvalConfig::default()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_sidecar_config_takes_its_defaults_from_the_settings() {
        let s = DriftSettings::default();
        let c = s.sidecar_config(|| "host-1".into(), "camera-v1").unwrap();
        assert_eq!(c.sidecar_id, "host-1");
        assert_eq!(c.model.id, "camera-v1");
        assert_eq!(c.predictions_topic.as_deref(), Some("predictions"));
        assert_eq!((c.pane, c.window_panes, c.alarm_k), (s.pane, 5, 3));
        assert_eq!(c.max_metric_segments, 50);
        let none = DriftSettings {
            predictions: String::new(),
            ..s.clone()
        };
        let c = none.sidecar_config(|| "x".into(), "p").unwrap();
        assert_eq!(c.predictions_topic, None);
        let tuned = DriftSettings {
            pane: Duration::from_secs(5),
            window_panes: 3,
            lateness: Duration::from_secs(2),
            sample_rate: 0.5,
            max_fps: 0.0,
            alarm_windows: 1,
            alpha: 0.01,
            sidecar_id: Some("side-2".into()),
            model_id: Some("m".into()),
            max_metric_segments: 3,
            ..s
        };
        let c = tuned.sidecar_config(|| "unused".into(), "p").unwrap();
        assert_eq!(
            (c.pane, c.window_panes, c.lateness),
            (Duration::from_secs(5), 3, Duration::from_secs(2))
        );
        assert_eq!(
            (c.sample_rate, c.max_fps, c.alarm_k, c.eval.alpha),
            (0.5, 0.0, 1, 0.01)
        );
        assert_eq!(
            (c.sidecar_id.as_str(), c.model.id.as_str()),
            ("side-2", "m")
        );
        assert_eq!(c.max_metric_segments, 3);
        assert_eq!(c.quality, None, "no labels topic, no join");
    }

    #[test]
    fn a_labels_topic_turns_the_quality_join_on() {
        let s = DriftSettings {
            labels: "labels".into(),
            quality_floors: vec!["precision=0.6".into()],
            quality_reference: vec!["roc_auc = 0.85".into()],
            ..DriftSettings::default()
        };
        let q = s
            .sidecar_config(|| "x".into(), "p")
            .unwrap()
            .quality
            .unwrap();
        assert_eq!(q.labels_topic, "labels");
        assert_eq!(
            (q.quality_topic.as_str(), q.alerts_topic.as_str()),
            ("quality", "alerts")
        );
        assert_eq!(q.floors, [(LiveMetric::Precision, 0.6)]);
        assert_eq!(q.reference, [(LiveMetric::RocAuc, 0.85)]);
        assert_eq!((q.alpha, q.min_labels, q.alarm_k), (0.01, 30, 2));
    }

    #[test]
    fn mistakes_are_config_errors_naming_the_setting() {
        for (s, what) in [
            (
                DriftSettings {
                    alpha: 1.5,
                    ..DriftSettings::default()
                },
                "--alpha",
            ),
            (
                DriftSettings {
                    sample_rate: 0.0,
                    ..DriftSettings::default()
                },
                "--sample-rate",
            ),
            (
                DriftSettings {
                    predictions: "frames.default".into(),
                    ..DriftSettings::default()
                },
                "--predictions-topic",
            ),
            (
                DriftSettings {
                    labels: "labels".into(),
                    quality_floors: vec!["precision:0.5".into()],
                    ..DriftSettings::default()
                },
                "--quality-floor",
            ),
            (
                DriftSettings {
                    labels: "labels".into(),
                    quality_reference: vec!["auc=0.9".into()],
                    ..DriftSettings::default()
                },
                "roc_auc",
            ),
            (
                DriftSettings {
                    labels: "labels".into(),
                    quality_horizon: Duration::from_secs(1),
                    ..DriftSettings::default()
                },
                "--quality-horizon",
            ),
            (
                DriftSettings {
                    labels: "predictions".into(),
                    ..DriftSettings::default()
                },
                "--labels",
            ),
        ] {
            match s.sidecar_config(|| "x".into(), "p") {
                Err(DriftError::Config(m)) => assert!(m.contains(what), "{m}"),
                other => panic!("{what}: {other:?}"),
            }
        }
    }
}
