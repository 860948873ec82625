//! `argus model`: the model registry from the command line (register, list, show, promote,
//! rollback, archive). Thin: flags → [`argus_registry::Registry`] → a table or `--json`.
//! A registry error the user must fix (bad bundle, unknown name or version, a refused stage
//! change) exits 64; Kafka failures exit 1.
use crate::config::{ArgusConfig, Flags};
use crate::flags::KafkaFlags;
use crate::CliError;
use argus_registry::{
    ArtifactTarget, Change, DeploymentRecord, EvaluationRecord, Lineage, RegisterOptions, Registry,
    RegistryError, RegistryState, Stage, VersionRecord,
};
use argus_stats::gate::GateConfig;
use argus_worker::evaluate::{promotion_gate, Evaluation};
use clap::builder::BoolishValueParser;
use clap::{Args, Subcommand};
use std::fmt::Write;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Check a bundle directory and register it as a candidate version (artifact in the
    /// registry topic in chunks, or at --uri).
    Register(RegisterArgs),
    /// Every model and version (or one model's) with its stage.
    List(ListArgs),
    /// A model's deployment and versions, or one version's record and history.
    Show(ShowArgs),
    /// Move a version to shadow, canary or production (production needs the promotion
    /// gate's decision, or --force with --reason).
    Promote(PromoteArgs),
    /// Production back to the previous production version.
    Rollback(RollbackArgs),
    /// Retire a version that does not serve.
    Archive(ArchiveArgs),
}

/// `argus model`: the registry's commands and the promotion gate's.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    #[command(flatten)]
    Registry(RegistryCommand),
    /// Score a bundle on a fixed, labelled test set through the worker pipeline and write
    /// the evaluation (metric, 95 % interval, per-item outcomes) as JSON.
    Evaluate(crate::model_eval::EvaluateArgs),
    /// The promotion gate: a paired test of a candidate's evaluation against production's
    /// on the same test set. Exit 0 if the candidate is significantly better, 1 if not.
    Compare(crate::model_eval::CompareArgs),
}

impl ModelCommand {
    /// The configuration flags of the command (`[kafka]`, `[registry]`; `evaluate` and
    /// `compare` work on files and read none).
    pub fn flags(&self, f: &mut Flags) {
        match self {
            ModelCommand::Registry(c) => c.flags(f),
            ModelCommand::Evaluate(a) => a.registry.flags(f),
            ModelCommand::Compare(_) => {}
        }
    }
}

impl RegistryCommand {
    fn common(&self) -> &RegistryFlags {
        match self {
            RegistryCommand::Register(a) => &a.registry,
            RegistryCommand::List(a) => &a.registry,
            RegistryCommand::Show(a) => &a.registry,
            RegistryCommand::Promote(a) => &a.registry,
            RegistryCommand::Rollback(a) => &a.registry,
            RegistryCommand::Archive(a) => &a.registry,
        }
    }

    /// The configuration flags of the command (`[kafka]`, `[registry]`).
    pub fn flags(&self, f: &mut Flags) {
        self.common().flags(f);
        if let RegistryCommand::Register(a) = self {
            f.set(
                "registry.chunk_bytes",
                "--chunk-bytes",
                a.chunk_bytes.as_ref(),
            );
        }
    }
}

/// Flags of every `argus model` command that reads the registry.
#[derive(Debug, Clone, Args)]
pub struct RegistryAccess {
    #[command(flatten)]
    pub kafka: KafkaFlags,
    /// The registry topic [default: argus.models].
    #[arg(long)]
    pub registry_topic: Option<String>,
    /// Where fetched bundles are unpacked [default: ~/.cache/argus/models].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

impl RegistryAccess {
    pub fn flags(&self, f: &mut Flags) {
        self.kafka.flags(f);
        f.set(
            "registry.topic",
            "--registry-topic",
            self.registry_topic.as_ref(),
        );
        f.set("registry.cache_dir", "--cache-dir", self.cache_dir.as_ref());
    }
}

/// Flags of every registry command.
#[derive(Debug, Clone, Args)]
pub struct RegistryFlags {
    #[command(flatten)]
    pub access: RegistryAccess,
    /// Print JSON (the registry records) instead of a table.
    #[arg(long, env = "ARGUS_MODEL_JSON", value_parser = BoolishValueParser::new())]
    pub json: bool,
}

impl RegistryFlags {
    fn flags(&self, f: &mut Flags) {
        self.access.flags(f);
    }
}

/// Who changes something and why.
#[derive(Debug, Clone, Args)]
pub struct ChangeFlags {
    /// Who makes the change [default: $USER@hostname].
    #[arg(long, env = "ARGUS_MODEL_BY")]
    pub by: Option<String>,
    /// Why (recorded in the version's history).
    #[arg(long, env = "ARGUS_MODEL_REASON")]
    pub reason: Option<String>,
}

impl ChangeFlags {
    fn change(&self) -> Change {
        Change {
            by: self.by.clone().unwrap_or_else(default_by),
            reason: self.reason.clone().unwrap_or_default(),
            forced: false,
            gate: None,
        }
    }
}

fn default_by() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The bundle directory (manifest.toml and the model file it names).
    pub bundle: Option<PathBuf>,
    /// Keep the artifact at this URI instead of the topic: file:///path (written if absent)
    /// or http://host/path (must already serve the same bytes).
    #[arg(long, env = "ARGUS_MODEL_URI")]
    pub uri: Option<String>,
    /// The version this one derives from.
    #[arg(long, env = "ARGUS_MODEL_PARENT")]
    pub parent: Option<String>,
    /// sha256 of the training data.
    #[arg(long, env = "ARGUS_MODEL_TRAINING_DATA_SHA256")]
    pub training_data_sha256: Option<String>,
    /// The training script.
    #[arg(long, env = "ARGUS_MODEL_SCRIPT")]
    pub script: Option<String>,
    /// Artifact chunk size in bytes [default: 524288].
    #[arg(long)]
    pub chunk_bytes: Option<u64>,
    #[command(flatten)]
    pub change: ChangeFlags,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this model.
    pub name: Option<String>,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// NAME or NAME@VERSION.
    pub target: Option<String>,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// NAME@VERSION.
    pub target: Option<String>,
    /// shadow, canary, production (or candidate: out of the canary or shadow slot).
    #[arg(long, env = "ARGUS_MODEL_TO")]
    pub to: Option<Stage>,
    /// The canary's share of keys, in (0, 1) [default: 0.1].
    #[arg(long, env = "ARGUS_MODEL_SHARE")]
    pub share: Option<f64>,
    /// Promote to production without the promotion gate's decision, or against a refusal
    /// (needs --reason; the registry records forced=true, the reason and any decision).
    #[arg(long, env = "ARGUS_MODEL_FORCE", value_parser = BoolishValueParser::new())]
    pub force: bool,
    /// The promotion gate: the candidate's evaluation (`argus model evaluate` of this
    /// version's bundle), paired with --baseline on the same test set.
    #[arg(
        long,
        env = "ARGUS_MODEL_EVALUATION",
        value_name = "FILE",
        requires = "baseline"
    )]
    pub evaluation: Option<PathBuf>,
    /// The promotion gate: production's evaluation on the same test set.
    #[arg(
        long,
        env = "ARGUS_MODEL_BASELINE",
        value_name = "FILE",
        requires = "evaluation"
    )]
    pub baseline: Option<PathBuf>,
    /// The gate's significance level (two-sided p below it, and better).
    #[arg(long, env = "ARGUS_MODEL_ALPHA", default_value_t = 0.05)]
    pub alpha: f64,
    #[command(flatten)]
    pub change: ChangeFlags,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The model name.
    pub name: Option<String>,
    #[command(flatten)]
    pub change: ChangeFlags,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// NAME@VERSION.
    pub target: Option<String>,
    #[command(flatten)]
    pub change: ChangeFlags,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

fn usage(e: RegistryError) -> CliError {
    if e.is_usage() {
        CliError::Usage(e.to_string())
    } else {
        CliError::Runtime(e.into())
    }
}

fn required<T: Clone>(value: &Option<T>, what: &str) -> Result<T, CliError> {
    value
        .clone()
        .ok_or_else(|| CliError::Usage(format!("{what} is required")))
}

fn name_at_version(target: &Option<String>) -> Result<(String, String), CliError> {
    let t = required(target, "NAME@VERSION")?;
    match t.split_once('@') {
        Some((n, v)) if !n.is_empty() && !v.is_empty() => Ok((n.into(), v.into())),
        _ => Err(CliError::Usage(format!("{t:?}: expected NAME@VERSION"))),
    }
}

fn reason_required(change: &Change, what: &str) -> Result<(), CliError> {
    if change.reason.trim().is_empty() {
        return Err(CliError::Usage(format!("{what} needs --reason WHY")));
    }
    Ok(())
}

/// Runs an `argus model` command with the loaded configuration.
pub async fn run(cmd: ModelCommand, config: ArgusConfig) -> Result<(), CliError> {
    match cmd {
        ModelCommand::Registry(c) => run_registry(c, config).await,
        ModelCommand::Evaluate(mut a) => {
            if let Some(target) = a
                .bundle
                .as_ref()
                .filter(|b| !b.exists())
                .and_then(|b| b.to_str())
                .filter(|t| t.contains('@'))
            {
                a.bundle = Some(registered_bundle(&config, target).await?);
            }
            tokio::task::spawn_blocking(move || crate::model_eval::run_evaluate(&a))
                .await
                .map_err(|e| CliError::Runtime(e.into()))?
        }
        ModelCommand::Compare(a) => crate::model_eval::run_compare(&a),
    }
}

/// The bundle directory of a registered `NAME@VERSION`: its artifact fetched from the
/// registry and verified (sha256) into the cache, so an evaluation is of exactly the
/// registered bytes.
async fn registered_bundle(config: &ArgusConfig, target: &str) -> Result<PathBuf, CliError> {
    let (name, version) = name_at_version(&Some(target.to_string()))?;
    let registry = Registry::open(&config.kafka.settings(), config.registry.clone())
        .await
        .map_err(usage)?;
    let dir = registry.fetch(&name, &version).await.map_err(usage)?;
    eprintln!(
        "evaluating {name}@{version} from the registry ({})",
        dir.display()
    );
    Ok(dir)
}

async fn run_registry(cmd: RegistryCommand, config: ArgusConfig) -> Result<(), CliError> {
    let json = cmd.common().json;
    let registry = Registry::open(&config.kafka.settings(), config.registry.clone())
        .await
        .map_err(usage)?;
    let out = match cmd {
        RegistryCommand::Register(a) => register(&registry, a).await?,
        RegistryCommand::List(a) => list(&registry.state().await.map_err(usage)?, a.name, json)?,
        RegistryCommand::Show(a) => show(&registry.state().await.map_err(usage)?, a.target, json)?,
        RegistryCommand::Promote(a) => promote(&registry, a).await?,
        RegistryCommand::Rollback(a) => {
            let name = required(&a.name, "NAME")?;
            let change = a.change.change();
            reason_required(&change, "rollback")?;
            deployment(
                &registry.rollback(&name, change).await.map_err(usage)?,
                json,
            )?
        }
        RegistryCommand::Archive(a) => {
            let (name, version) = name_at_version(&a.target)?;
            let change = a.change.change();
            reason_required(&change, "archive")?;
            let v = registry
                .archive(&name, &version, change)
                .await
                .map_err(usage)?;
            version_out(&v, json)?
        }
    };
    print!("{out}");
    Ok(())
}

async fn register(registry: &Registry, a: RegisterArgs) -> Result<String, CliError> {
    let bundle = required(&a.bundle, "BUNDLE (a bundle directory)")?;
    let change = a.change.change();
    let opts = RegisterOptions {
        by: change.by,
        reason: change.reason,
        lineage: Lineage {
            training_data_sha256: a.training_data_sha256,
            script: a.script,
            parent_version: a.parent,
        },
        artifact: a.uri.map_or(ArtifactTarget::Chunks, ArtifactTarget::Uri),
    };
    let v = registry.register(&bundle, opts).await.map_err(usage)?;
    version_out(&v, a.registry.json)
}

async fn promote(registry: &Registry, a: PromoteArgs) -> Result<String, CliError> {
    let (name, version) = name_at_version(&a.target)?;
    let to = required(&a.to, "--to shadow|canary|production")?;
    let mut change = a.change.change();
    change.forced = a.force;
    if a.force {
        reason_required(&change, "--force")?;
    }
    if let (Some(candidate), Some(baseline)) = (&a.evaluation, &a.baseline) {
        let state = registry.state().await.map_err(usage)?;
        let (candidate, baseline) = (read_evaluation(candidate)?, read_evaluation(baseline)?);
        let decision = gate(&state, &name, &version, &candidate.0, &baseline.0, a.alpha)?;
        // Both evaluations go on their versions' records (once per evaluation file).
        let production = state
            .deployment(&name)
            .and_then(|d| d.production.clone())
            .unwrap_or_default();
        for (v, (evaluation, sha256)) in [(&version, &candidate), (&production, &baseline)] {
            let record = evaluation_record(evaluation, sha256, &change.by);
            let known = state.version(&name, v).is_ok_and(|r| {
                r.evaluations
                    .iter()
                    .any(|e| e.evaluation_sha256 == record.evaluation_sha256)
            });
            if !known {
                registry
                    .add_evaluation(&name, v, record)
                    .await
                    .map_err(usage)?;
            }
        }
        if !decision.passed && !a.force {
            return Err(CliError::Refused(format!(
                "the promotion gate refused {name}@{version}: {} (--force --reason WHY promotes anyway, recorded as forced)",
                decision.reason
            )));
        }
        eprintln!("gate: {}", decision.reason);
        change.gate =
            Some(serde_json::to_value(&decision).map_err(|e| CliError::Runtime(e.into()))?);
    }
    let d = registry
        .set_stage(&name, &version, to, change, a.share)
        .await
        .map_err(usage)?;
    deployment(&d, a.registry.json)
}

/// An evaluation file (from `argus model evaluate`), parsed, and its sha256.
fn read_evaluation(path: &std::path::Path) -> Result<(Evaluation, String), CliError> {
    let bytes =
        std::fs::read(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    let e = Evaluation::from_json(&String::from_utf8_lossy(&bytes), path)
        .map_err(|e| CliError::Usage(e.to_string()))?;
    Ok((e, argus_registry::artifact::sha256_hex(&bytes)))
}

/// The registry's summary of an evaluation file: metric, value, interval, test set and the
/// file's sha256 (the same bundle and test set give the same file).
fn evaluation_record(e: &Evaluation, sha256: &str, by: &str) -> EvaluationRecord {
    EvaluationRecord {
        metric: e.metric.to_string(),
        value: e.value,
        ci_low: e.ci_low,
        ci_high: e.ci_high,
        n: e.n as u64,
        test_set_sha256: e.test_set.sha256.clone(),
        evaluation_sha256: sha256.to_string(),
        at: argus_registry::records::now(),
        by: by.to_string(),
        extra: serde_json::Map::new(),
    }
}

/// The promotion gate's decision for `name@version` replacing the current production: the
/// two evaluations must be of exactly the registered bundles (model sha256), of one test
/// set, and on the metric the candidate's manifest fixes (`[monitoring] gate_metric`).
fn gate(
    state: &RegistryState,
    name: &str,
    version: &str,
    c: &Evaluation,
    p: &Evaluation,
    alpha: f64,
) -> Result<argus_stats::gate::GateDecision, CliError> {
    let production = state
        .deployment(name)
        .and_then(|d| d.production.clone())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{name} has no production version to compare with: the first promotion takes --force --reason"
            ))
        })?;
    let model_sha = |v: &str| -> Result<String, CliError> {
        let record = state.version(name, v).map_err(usage)?;
        record.manifest["model"]["sha256"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "{name}@{v}: the registered manifest has no model.sha256"
                ))
            })
    };
    let record = state.version(name, version).map_err(usage)?;
    if let Some(fixed) = record.manifest["monitoring"]["gate_metric"].as_str() {
        if c.metric.as_str() != fixed {
            return Err(CliError::Usage(format!(
                "{name}@{version} fixes its gate metric to {fixed} ([monitoring] gate_metric) but the evaluations use {}: re-run argus model evaluate without --metric",
                c.metric
            )));
        }
    }
    let (c_sha, p_sha) = (model_sha(version)?, model_sha(&production)?);
    let config = GateConfig {
        alpha,
        ..GateConfig::default()
    };
    promotion_gate(
        c,
        p,
        (name, version, &c_sha),
        (name, &production, &p_sha),
        &config,
    )
    .map_err(|e| CliError::Usage(e.to_string()))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| CliError::Runtime(e.into()))
}

fn list(state: &RegistryState, name: Option<String>, json: bool) -> Result<String, CliError> {
    let versions: Vec<&VersionRecord> = match &name {
        Some(n) => state.versions_of(n).map_err(usage)?.values().collect(),
        None => state.versions.values().flat_map(|vs| vs.values()).collect(),
    };
    if json {
        return to_json(&versions);
    }
    let rows: Vec<Vec<String>> = versions.iter().map(|v| row(v)).collect();
    Ok(table(
        &[
            "NAME",
            "VERSION",
            "STAGE",
            "SHA256",
            "ARTIFACT",
            "REGISTERED",
            "BY",
        ],
        &rows,
    ))
}

fn row(v: &VersionRecord) -> Vec<String> {
    let first = v.history.first();
    vec![
        v.name.clone(),
        v.version.clone(),
        v.stage.to_string(),
        v.sha12().to_string(),
        match &v.artifact {
            argus_registry::ArtifactLocation::Chunks { bytes, chunks, .. } => {
                format!("{bytes} B in {chunks} chunks")
            }
            argus_registry::ArtifactLocation::Uri { uri } => uri.clone(),
        },
        first.map(|h| h.at.clone()).unwrap_or_default(),
        first.map(|h| h.by.clone()).unwrap_or_default(),
    ]
}

fn show(state: &RegistryState, target: Option<String>, json: bool) -> Result<String, CliError> {
    let t = required(&target, "NAME or NAME@VERSION")?;
    if let Some((name, version)) = t.split_once('@') {
        return version_out(state.version(name, version).map_err(usage)?, json);
    }
    let versions = state.versions_of(&t).map_err(usage)?;
    let dep = state.deployment(&t);
    if json {
        let v: Vec<&VersionRecord> = versions.values().collect();
        return to_json(&serde_json::json!({"deployment": dep, "versions": v}));
    }
    let mut out = match dep {
        Some(d) => deployment(d, false)?,
        None => format!("{t}: not deployed (no version promoted yet)\n"),
    };
    out.push('\n');
    let rows: Vec<Vec<String>> = versions.values().map(row).collect();
    out.push_str(&table(
        &[
            "NAME",
            "VERSION",
            "STAGE",
            "SHA256",
            "ARTIFACT",
            "REGISTERED",
            "BY",
        ],
        &rows,
    ));
    Ok(out)
}

fn deployment(d: &DeploymentRecord, json: bool) -> Result<String, CliError> {
    if json {
        return to_json(d);
    }
    let mut out = String::new();
    let none = || "-".to_string();
    let _ = writeln!(
        out,
        "model       {}  (revision {}, {} by {})",
        d.name, d.revision, d.changed_at, d.by
    );
    let _ = writeln!(
        out,
        "production  {}",
        d.production.clone().unwrap_or_else(none)
    );
    let _ = writeln!(
        out,
        "canary      {}",
        d.canary
            .as_ref()
            .map_or_else(none, |c| format!("{} at share {}", c.version, c.share))
    );
    let _ = writeln!(out, "shadow      {}", d.shadow.clone().unwrap_or_else(none));
    let _ = writeln!(out, "why         {}", d.why);
    let previous: Vec<&str> = d.history.iter().rev().map(|p| p.version.as_str()).collect();
    let _ = writeln!(
        out,
        "rollback to {}",
        previous.first().copied().unwrap_or("-")
    );
    Ok(out)
}

fn version_out(v: &VersionRecord, json: bool) -> Result<String, CliError> {
    if json {
        return to_json(v);
    }
    let mut out = table(
        &[
            "NAME",
            "VERSION",
            "STAGE",
            "SHA256",
            "ARTIFACT",
            "REGISTERED",
            "BY",
        ],
        &[row(v)],
    );
    let l = &v.lineage;
    let _ = writeln!(
        out,
        "\nlineage: parent {}, training data {}, script {}",
        l.parent_version.as_deref().unwrap_or("-"),
        l.training_data_sha256.as_deref().unwrap_or("-"),
        l.script.as_deref().unwrap_or("-")
    );
    for e in &v.evaluations {
        let _ = writeln!(
            out,
            "evaluation: {} = {} [{}, {}] n={} test set {} ({} by {})",
            e.metric, e.value, e.ci_low, e.ci_high, e.n, e.test_set_sha256, e.at, e.by
        );
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = v
        .history
        .iter()
        .map(|h| {
            vec![
                h.at.clone(),
                h.by.clone(),
                h.action.clone(),
                h.from_stage.map_or("-".into(), |s| s.to_string()),
                h.to_stage.to_string(),
                if h.forced {
                    "forced".into()
                } else if h.gate.is_some() {
                    "gate".into()
                } else {
                    "-".into()
                },
                h.reason.clone(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["AT", "BY", "ACTION", "FROM", "TO", "GATE", "REASON"],
        &rows,
    ));
    Ok(out)
}

/// Left-aligned columns, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(header.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked_before_kafka() {
        assert_eq!(
            name_at_version(&Some("churn@2".into())).ok(),
            Some(("churn".into(), "2".into()))
        );
        for bad in ["churn", "@2", "churn@"] {
            assert!(matches!(
                name_at_version(&Some(bad.into())),
                Err(CliError::Usage(_))
            ));
        }
    }

    #[test]
    fn tables_align_columns() {
        let t = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    LONGER\nxyz  1\n");
    }
}
