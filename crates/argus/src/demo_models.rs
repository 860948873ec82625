//! The demo's model life: the camera model is served through a registry on the demo's own
//! broker and switched live while frames flow. Version 2 is made at run time from the
//! bundle — the same weights with a stricter alert threshold, honestly a decision change —
//! and goes to a canary on half the cameras a third into the run, then to production two
//! thirds in. Workers follow the registry as `argus work --follow` does
//! ([`crate::work::follow_registry`]); the summary counts predictions per version and says
//! how long the swaps took.
use crate::CliError;
use argus_kafka::{EmbeddedBroker, KafkaSettings, TopicSpec};
use argus_registry::{
    ArtifactTarget, Change, DeploymentRecord, Lineage, RegisterOptions, Registry, RegistrySettings,
    Stage,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A switch of the demo's story.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Version 2 serves half the cameras (by key hash).
    Canary,
    /// Version 2 serves every camera.
    Production,
}

/// Share of cameras on the canary.
pub const CANARY_SHARE: f64 = 0.5;

/// When each switch happens in a run of `duration`: a third in, two thirds in.
pub fn schedule(duration: Duration) -> [(Duration, Step); 2] {
    [
        (duration / 3, Step::Canary),
        (duration * 2 / 3, Step::Production),
    ]
}

/// The version after `v`: `n + 1` for a number, else `v.2`.
pub fn next_version(v: &str) -> String {
    v.parse::<u64>()
        .map_or_else(|_| format!("{v}.2"), |n| (n + 1).to_string())
}

/// The stricter threshold of version 2: 0.2 higher, at most 0.95.
pub fn stricter(threshold: f32) -> f32 {
    ((threshold + 0.2).min(0.95) * 100.0).round() / 100.0
}

/// `manifest` (TOML text) as `version` with `threshold` in its `[decision]`.
pub fn second_manifest(manifest: &str, version: &str, threshold: f32) -> String {
    let mut in_decision = false;
    manifest
        .lines()
        .map(|line| {
            let t = line.trim_start();
            if t.starts_with('[') {
                in_decision = t.starts_with("[decision]");
            }
            if !in_decision && t.starts_with("version =") && !line.starts_with(' ') {
                format!("version = \"{version}\"")
            } else if in_decision && t.starts_with("threshold =") {
                format!("threshold = {threshold}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The registry of one demo run and its two versions.
pub struct DemoRegistry {
    /// The registry client.
    pub registry: Arc<Registry>,
    /// Model name.
    pub name: String,
    /// The first version.
    pub v1: String,
    /// The second version.
    pub v2: String,
    /// Version 2's alert threshold.
    pub v2_threshold: f32,
    _dir: tempfile::TempDir,
}

fn runtime(e: impl std::fmt::Display) -> CliError {
    CliError::Runtime(anyhow::anyhow!("demo registry: {e}"))
}

fn change(reason: &str) -> Change {
    Change {
        by: "argus demo".into(),
        reason: reason.into(),
        forced: true,
        gate: None,
    }
}

impl DemoRegistry {
    /// Creates the registry topic on the demo's broker, registers `bundle` as version 1 in
    /// production and a stricter version 2 as a candidate.
    pub async fn start(
        settings: &KafkaSettings,
        embedded: Option<&EmbeddedBroker>,
        run_id: &str,
        bundle: &Path,
    ) -> Result<DemoRegistry, CliError> {
        let dir = tempfile::tempdir().map_err(runtime)?;
        let rs = RegistrySettings {
            topic: format!("argus.models.demo-{run_id}"),
            cache_dir: Some(dir.path().join("cache")),
            ..RegistrySettings::default()
        };
        let registry = match embedded {
            Some(b) => {
                b.create_topics(&[TopicSpec::new(&rs.topic, 1)])
                    .map_err(runtime)?;
                Registry::open_existing(settings, rs).map_err(runtime)?
            }
            None => Registry::open(settings, rs).await.map_err(runtime)?,
        };
        let options = || RegisterOptions {
            by: "argus demo".into(),
            reason: "demo".into(),
            lineage: Lineage::default(),
            artifact: ArtifactTarget::Chunks,
        };
        let v1 = registry
            .register(bundle, options())
            .await
            .map_err(runtime)?;
        let text = std::fs::read_to_string(bundle.join("manifest.toml")).map_err(runtime)?;
        let threshold = argus_model::Manifest::load(bundle)
            .map_err(runtime)?
            .decision
            .map_or(0.5, |d| d.threshold);
        let (v2, v2_threshold) = (next_version(&v1.version), stricter(threshold));
        let v2_dir = make_bundle(bundle, &dir.path().join("v2"), &text, &v2, v2_threshold)?;
        registry
            .register(&v2_dir, options())
            .await
            .map_err(runtime)?;
        registry
            .set_stage(
                &v1.name,
                &v1.version,
                Stage::Production,
                change("demo start"),
                None,
            )
            .await
            .map_err(runtime)?;
        Ok(DemoRegistry {
            registry: Arc::new(registry),
            name: v1.name,
            v1: v1.version,
            v2,
            v2_threshold,
            _dir: dir,
        })
    }

    /// Carries out `step` and returns the deployment after it.
    pub async fn switch(&self, step: Step) -> Result<DeploymentRecord, CliError> {
        let (stage, share, why) = match step {
            Step::Canary => (Stage::Canary, Some(CANARY_SHARE), "demo: canary"),
            Step::Production => (Stage::Production, None, "demo: promote"),
        };
        self.registry
            .set_stage(&self.name, &self.v2, stage, change(why), share)
            .await
            .map_err(runtime)
    }

    /// The line printed for `step`.
    pub fn describe(&self, step: Step, d: &DeploymentRecord, at: Duration) -> String {
        let what = match step {
            Step::Canary => format!("canary on {:.0} % of the cameras", CANARY_SHARE * 100.0),
            Step::Production => "production on every camera".into(),
        };
        format!(
            "MODEL  {:>5.1}s  {} v{} (same weights, alert threshold {}) → {what} (revision {}); workers swap between batches",
            at.as_secs_f64(),
            self.name,
            self.v2,
            self.v2_threshold,
            d.revision
        )
    }
}

/// A copy of `bundle`'s model with `manifest` rewritten as `version` / `threshold`.
fn make_bundle(
    bundle: &Path,
    dir: &Path,
    manifest: &str,
    version: &str,
    threshold: f32,
) -> Result<PathBuf, CliError> {
    std::fs::create_dir_all(dir).map_err(runtime)?;
    let m = argus_model::Manifest::load(bundle).map_err(runtime)?;
    for f in m.files() {
        std::fs::copy(bundle.join(f), dir.join(f)).map_err(runtime)?;
    }
    std::fs::write(
        dir.join("manifest.toml"),
        second_manifest(manifest, version, threshold),
    )
    .map_err(runtime)?;
    Ok(dir.to_path_buf())
}

/// Mean of a histogram in a Prometheus exposition (`name_sum / name_count`), if recorded.
pub fn histogram_mean(exposition: &str, name: &str) -> Option<(f64, u64)> {
    let value = |suffix: &str| {
        exposition
            .lines()
            .find(|l| l.starts_with(&format!("{name}{suffix} ")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let (sum, count) = (value("_sum")?, value("_count")?);
    (count > 0.0).then(|| (sum / count, count as u64))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_story_switches_a_third_and_two_thirds_in() {
        let s = schedule(Duration::from_secs(30));
        assert_eq!(s[0], (Duration::from_secs(10), Step::Canary));
        assert_eq!(s[1], (Duration::from_secs(20), Step::Production));
        assert_eq!(next_version("1"), "2");
        assert_eq!(next_version("2026-a"), "2026-a.2");
        assert_eq!(stricter(0.5), 0.7);
        assert_eq!(stricter(0.9), 0.95);
    }

    #[test]
    fn version_two_differs_in_version_and_threshold_only() {
        let text = include_str!("../../../models/camera-person/manifest.toml");
        let second = second_manifest(text, "2", 0.7);
        let a: toml::Table = toml::from_str(text).unwrap();
        let mut b: toml::Table = toml::from_str(&second).unwrap();
        assert_eq!(b["version"].as_str(), Some("2"));
        assert_eq!(b["decision"]["threshold"].as_float(), Some(0.7));
        b.insert("version".into(), a["version"].clone());
        b["decision"]
            .as_table_mut()
            .unwrap()
            .insert("threshold".into(), a["decision"]["threshold"].clone());
        assert_eq!(a, b);
    }

    #[test]
    fn histogram_means_come_from_sum_and_count() {
        let text = "x_sum 0.5\nx_count 2\ny_sum 1\ny_count 0\n";
        assert_eq!(histogram_mean(text, "x"), Some((0.25, 2)));
        assert_eq!(histogram_mean(text, "y"), None);
        assert_eq!(histogram_mean(text, "z"), None);
    }
}
