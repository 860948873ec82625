//! `argus explain`: the evidence an alert carries, computed offline for one record or
//! image — for the person investigating an alert after the fact. The same explainer as the
//! worker's (`argus_model::explain`), without its deadline. Reads no configuration: every
//! flag is a per-run input with its own variable. Exit 64 for a bundle that cannot be
//! explained, 65 for an input the model refuses.
use crate::CliError;
use argus_model::explain::{ExplainSettings, Explainer};
use argus_model::{Classifier, ModelError};
use argus_wire::{ImageFormat, Payload};
use clap::Args;
use std::path::PathBuf;

/// `argus explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Model bundle directory.
    #[arg(
        long,
        env = "ARGUS_EXPLAIN_MODEL",
        default_value = "models/camera-person"
    )]
    pub model: PathBuf,
    /// The record to explain, a JSON object (e.g. one line of the records the worker
    /// scored); @FILE reads it from FILE.
    #[arg(long, env = "ARGUS_EXPLAIN_RECORD", conflicts_with = "image")]
    pub record: Option<String>,
    /// The image to explain (JPEG or PNG).
    #[arg(long, env = "ARGUS_EXPLAIN_IMAGE")]
    pub image: Option<PathBuf>,
    /// The label to explain [default: the bundle's [decision] label, else the top label].
    #[arg(long, env = "ARGUS_EXPLAIN_LABEL")]
    pub label: Option<String>,
    /// Occlusion grid cells per side (images) [default: 6, as the worker].
    #[arg(long, env = "ARGUS_EXPLAIN_GRID")]
    pub grid: Option<u32>,
    /// Sampled permutations (tabular models without tree covers) [default: 64].
    #[arg(long, env = "ARGUS_EXPLAIN_PERMUTATIONS")]
    pub permutations: Option<usize>,
    /// Print only the evidence, as the JSON of an alert's `evidence` section.
    #[arg(long, env = "ARGUS_EXPLAIN_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
}

/// Runs `argus explain`.
pub fn run(args: ExplainArgs) -> Result<(), CliError> {
    let usage = |e: ModelError| CliError::Usage(e.to_string());
    let model = Classifier::load(&args.model).map_err(usage)?;
    let defaults = ExplainSettings::default();
    let settings = ExplainSettings {
        grid: args.grid.unwrap_or(defaults.grid),
        permutations: args.permutations.unwrap_or(defaults.permutations),
        ..defaults
    };
    let explainer = Explainer::for_model(&model, settings)
        .map_err(usage)?
        .ok_or_else(|| {
            CliError::Usage(format!(
                "{}: the bundle ships no [explain] covers or background, so its tabular model cannot be explained",
                args.model.display()
            ))
        })?;
    let payload = payload(&args)?;
    let t = std::time::Instant::now();
    let out = explainer
        .explain_input(&model, &payload, args.label.as_deref())
        .map_err(|e| match e {
            ModelError::Bundle { .. }
            | ModelError::HashMismatch { .. }
            | ModelError::Load { .. } => CliError::Usage(e.to_string()),
            other => CliError::Data(other.to_string()),
        })?;
    let json =
        serde_json::to_string_pretty(&out.evidence).map_err(|e| CliError::Runtime(e.into()))?;
    if args.json {
        println!("{json}");
        return Ok(());
    }
    let m = model.model_ref();
    println!(
        "{} v{}: {} {:.3}{} — {} in {:.1} ms",
        m.name,
        m.version,
        out.label,
        out.score,
        if model.detection_head().is_some() {
            format!(" ({} boxes)", out.boxes)
        } else {
            String::new()
        },
        explainer.method().as_str(),
        t.elapsed().as_secs_f64() * 1e3
    );
    for line in &out.evidence.summary {
        println!("  {line}");
    }
    if out.evidence.summary.is_empty() {
        println!("  {}", out.evidence.headline());
    }
    println!("{json}");
    Ok(())
}

/// The input as the worker would see it.
fn payload(args: &ExplainArgs) -> Result<Payload, CliError> {
    if let Some(record) = &args.record {
        let text = match record.strip_prefix('@') {
            Some(path) => std::fs::read(path)
                .map_err(|e| CliError::Usage(format!("--record @{path}: {e}")))?,
            None => record.as_bytes().to_vec(),
        };
        return argus_wire::json_record(&text)
            .map(Payload::Record)
            .map_err(|e| CliError::Data(format!("--record: {e}")));
    }
    let Some(path) = &args.image else {
        return Err(CliError::Usage(
            "give the input to explain: --record '{...}' (or @FILE) or --image FILE".into(),
        ));
    };
    let bytes =
        std::fs::read(path).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    let format = if bytes.starts_with(b"\x89PNG") {
        ImageFormat::Png
    } else {
        ImageFormat::Jpeg
    };
    Ok(Payload::Encoded { format, bytes })
}
