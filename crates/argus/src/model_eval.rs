//! `argus model evaluate` and `argus model compare`: flags, wiring and the printed report of
//! the promotion gate (`argus_worker::evaluate`, `argus_stats::gate`). Exit codes of
//! `compare`: 0 the candidate passes, 1 refused, 64 bad input (e.g. different test sets).
//! Both read no configuration: every flag is a per-run input with its own variable.
use crate::CliError;
use argus_model::Classifier;
use argus_stats::gate::{GateConfig, GateDecision, Metric};
use argus_worker::evaluate::{
    compare, evaluate, read_test_set, EvaluateOptions, Evaluation, LabelMap, TestSetSpec,
};
use clap::builder::BoolishValueParser;
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `argus model evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The bundle: a folder with manifest.toml and the model, or NAME@VERSION of the
    /// registry (its artifact fetched and verified first). Required.
    pub bundle: Option<PathBuf>,
    /// The test set: a CSV or JSON-lines file with a label column, or a folder of frames
    /// with labels.csv (file,label).
    /// Required.
    #[arg(long, env = "ARGUS_MODEL_TEST_SET")]
    pub test_set: Option<PathBuf>,
    /// The metric the model is judged on: accuracy, f1 or roc_auc [default: roc_auc for a
    /// two-label bundle with a [decision], else accuracy].
    #[arg(long, env = "ARGUS_MODEL_METRIC")]
    pub metric: Option<Metric>,
    /// The label column of a records test set.
    #[arg(long, env = "ARGUS_MODEL_LABEL_COLUMN", default_value = "label")]
    pub label_column: String,
    /// The column naming each item (records) [default: the line number].
    #[arg(long, env = "ARGUS_MODEL_ID_COLUMN")]
    pub id_column: Option<String>,
    /// Write the evaluation JSON here.
    #[arg(long, env = "ARGUS_MODEL_EVALUATION_OUT")]
    pub out: Option<PathBuf>,
    /// Where NAME@VERSION is fetched from.
    #[command(flatten)]
    pub registry: crate::model::RegistryAccess,
    /// Print the evaluation JSON instead of the summary.
    #[arg(long, env = "ARGUS_MODEL_EVALUATE_JSON", value_parser = BoolishValueParser::new())]
    pub json: bool,
}

/// `argus model compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The candidate's evaluation (JSON from `argus model evaluate`).
    pub candidate: PathBuf,
    /// Production's evaluation on the same test set.
    pub production: PathBuf,
    /// Significance level of the two-sided paired test.
    #[arg(long, env = "ARGUS_MODEL_GATE_ALPHA", default_value_t = 0.05)]
    pub alpha: f64,
    /// Print the decision as JSON.
    #[arg(long, env = "ARGUS_MODEL_COMPARE_JSON", value_parser = BoolishValueParser::new())]
    pub json: bool,
}

fn usage(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(e.to_string())
}

/// `argus model evaluate`. Blocking (inference on this thread).
pub fn run_evaluate(a: &EvaluateArgs) -> Result<(), CliError> {
    let (Some(bundle), Some(test_set)) = (&a.bundle, &a.test_set) else {
        return Err(CliError::Usage(
            "give the bundle (a directory or NAME@VERSION) and --test-set PATH".into(),
        ));
    };
    let model = Arc::new(Classifier::load(bundle).map_err(usage)?);
    let labels = model.labels().to_vec();
    let positive = model
        .manifest()
        .decision
        .as_ref()
        .and_then(|d| labels.iter().position(|l| *l == d.positive));
    let spec = TestSetSpec {
        path: test_set.clone(),
        label_column: a.label_column.clone(),
        id_column: a.id_column.clone(),
    };
    let set = read_test_set(
        &spec,
        &LabelMap {
            labels: &labels,
            positive,
        },
    )
    .map_err(usage)?;
    let options = EvaluateOptions {
        metric: a.metric,
        ..EvaluateOptions::default()
    };
    let label_column = (set.kind == argus_worker::evaluate::TestSetKind::Records)
        .then_some(a.label_column.as_str());
    let evaluation = evaluate(model, &set, label_column, &options).map_err(usage)?;
    let json = evaluation.to_json();
    if let Some(out) = &a.out {
        std::fs::write(out, &json).map_err(|e| {
            CliError::Runtime(anyhow::anyhow!("cannot write {}: {e}", out.display()))
        })?;
    }
    if a.json {
        print!("{json}");
    } else {
        print!("{}", summary(&evaluation, a.out.as_deref()));
    }
    Ok(())
}

/// The human summary of an evaluation.
fn summary(e: &Evaluation, out: Option<&Path>) -> String {
    let mut s = format!(
        "{} v{} (sha256 {}) on {} ({} items, sha256 {})\n",
        e.model.name,
        e.model.version,
        short(&e.model.sha256),
        e.test_set.name,
        e.n,
        short(&e.test_set.sha256)
    );
    for (name, m) in &e.metrics {
        let judged = if name == e.metric.as_str() {
            "  <- judged"
        } else {
            ""
        };
        s.push_str(&format!(
            "  {name:<9} {:.4}  95% CI [{:.4}, {:.4}] ({}){judged}\n",
            m.value, m.ci_low, m.ci_high, m.ci_method
        ));
    }
    match out {
        Some(p) => s.push_str(&format!("wrote {}\n", p.display())),
        None => s.push_str("(evaluation not written: pass --out FILE)\n"),
    }
    s
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn read_evaluation(path: &Path) -> Result<Evaluation, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    Evaluation::from_json(&text, path).map_err(usage)
}

/// `argus model compare`.
pub fn run_compare(a: &CompareArgs) -> Result<(), CliError> {
    if !(a.alpha > 0.0 && a.alpha < 1.0) {
        return Err(CliError::Usage(format!(
            "--alpha {} must be between 0 and 1",
            a.alpha
        )));
    }
    let candidate = read_evaluation(&a.candidate)?;
    let production = read_evaluation(&a.production)?;
    let config = GateConfig {
        alpha: a.alpha,
        resamples: candidate.bootstrap.resamples,
        seed: candidate.bootstrap.seed,
    };
    let decision = compare(&candidate, &production, &config).map_err(usage)?;
    if a.json {
        let text = serde_json::to_string_pretty(&decision)
            .map_err(|e| CliError::Runtime(anyhow::anyhow!("cannot render the decision: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", report(&candidate, &production, &decision));
    }
    if decision.passed {
        Ok(())
    } else {
        Err(CliError::Refused(decision.reason))
    }
}

/// The human report of a decision.
fn report(c: &Evaluation, p: &Evaluation, d: &GateDecision) -> String {
    format!(
        "candidate  {} v{}: {} = {:.4}\nproduction {} v{}: {} = {:.4}\n\
         difference {:+.4}  95% CI [{:+.4}, {:+.4}]  {:?} statistic {:.4}  p = {:.3e}  (n = {}, alpha = {})\n\
         {}: {}\n",
        c.model.name,
        c.model.version,
        d.metric,
        d.candidate_value,
        p.model.name,
        p.model.version,
        d.metric,
        d.production_value,
        d.difference,
        d.ci[0],
        d.ci[1],
        d.test,
        d.statistic,
        d.p_value,
        d.n,
        d.alpha,
        if d.passed { "PASS" } else { "REFUSED" },
        d.reason
    )
}
