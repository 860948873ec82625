//! `argus label`: flags and the printed summary; the reading and publishing is
//! `argus_producer::labels`.
use crate::config::{ArgusConfig, Flags};
use crate::flags::KafkaFlags;
use crate::CliError;
use argus_producer::labels::{label_source, publish, LabelDefaults};
use argus_producer::{BadRows, ProduceError, RecordFormat};
use argus_wire::LabelSource;
use clap::Args;

/// `argus label` flags.
#[derive(Debug, Args)]
pub struct LabelArgs {
    #[command(flatten)]
    pub kafka: KafkaFlags,
    /// The labels: a CSV or JSON-lines file (`-`: stdin, with --format), one per row with
    /// `id` (the prediction's id, topic/partition/offset), `label`, `source`, and optionally
    /// `labelled_at` (RFC 3339 UTC) or `labelled_at_us`, `confidence`, `key`, `by`. Required.
    pub path: Option<String>,
    /// The labels topic.
    #[arg(long, env = "ARGUS_LABEL_TOPIC", default_value = "labels")]
    pub topic: String,
    /// csv or jsonl [default: from the file's extension].
    #[arg(long, env = "ARGUS_LABEL_FORMAT")]
    pub format: Option<RecordFormat>,
    /// The source of rows without one: annotator, feedback or system.
    #[arg(long, env = "ARGUS_LABEL_SOURCE")]
    pub source: Option<LabelSource>,
    /// Who labelled rows without a `by` column.
    #[arg(long, env = "ARGUS_LABEL_BY")]
    pub by: Option<String>,
    /// A row that is not a valid label: skip it (reported, counted) or stop (exit 65).
    #[arg(long, env = "ARGUS_LABEL_ON_BAD_ROW", default_value = "skip", value_parser = ["skip", "fail"])]
    pub on_bad_row: String,
}

impl LabelArgs {
    pub fn flags(&self, f: &mut Flags) {
        self.kafka.flags(f);
    }
}

pub async fn run(a: LabelArgs, config: ArgusConfig) -> Result<(), CliError> {
    let path = a.path.as_deref().ok_or_else(|| {
        CliError::Usage("give the label file (CSV or JSON lines; - for stdin)".into())
    })?;
    let source = label_source(path, a.format).map_err(CliError::Usage)?;
    let defaults = LabelDefaults {
        source: a.source,
        by: a.by,
    };
    let bad_rows = if a.on_bad_row == "fail" {
        BadRows::Fail
    } else {
        BadRows::Skip
    };
    let settings = config.kafka.settings();
    crate::work::preflight(&settings).await?;
    argus_producer::metrics::register_defaults();
    let producer = settings
        .producer("argus-label")
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let summary = match publish(&source, &defaults, bad_rows, &a.topic, &producer).await {
        Ok(s) => s,
        Err(ProduceError::Source(m)) => return Err(CliError::Usage(m)),
        Err(e @ ProduceError::BadRow(_)) => return Err(CliError::Data(e.to_string())),
        Err(e) => return Err(CliError::Runtime(e.into())),
    };
    println!("{summary} to {}", a.topic);
    if summary.failed > 0 {
        return Err(CliError::Runtime(anyhow::anyhow!(
            "{} labels were not published; see the log above",
            summary.failed
        )));
    }
    Ok(())
}
