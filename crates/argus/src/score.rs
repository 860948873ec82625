//! `argus score`: the daily batch flow — flags, wiring and the summary. The scoring itself
//! (bounded range → the workers' pipeline core → outputs and the at-risk report) is
//! `argus_worker::score`.
use crate::config::{ArgusConfig, Flags, KafkaConfig};
use crate::flags::{parse_duration, KafkaFlags, ModelArgs, TopicArgs};
use crate::work::{load_model, worker_config};
use crate::CliError;
use argus_kafka::rdkafka::consumer::StreamConsumer;
use argus_model::Classifier;
use argus_worker::score::{ScoreConfig, ScoreSummary};
use argus_worker::WorkerError;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// `argus score` flags (`[score]`; the model and pipeline settings are `[worker]`'s).
#[derive(Debug, Args)]
pub struct ScoreFlags {
    #[command(flatten)]
    pub kafka: KafkaFlags,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub topics: TopicArgs,
    /// Input topic to score [default: frames.default].
    #[arg(long = "input")]
    pub input: Option<String>,
    /// Start at records written at or after this time: RFC 3339 UTC
    /// (2026-11-29T00:00:00Z) or milliseconds since the Unix epoch [default: the beginning].
    #[arg(long, conflicts_with = "since")]
    pub from: Option<String>,
    /// Start at records written within this long before now (e.g. 24h).
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// The at-risk report (CSV) [default: at-risk.csv].
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Rows in the report, at most, best first (0: every record at or above the threshold)
    /// [default: 100].
    #[arg(long)]
    pub top: Option<usize>,
    /// Only write the report: publish no predictions, alerts or dead letters.
    #[arg(long)]
    pub no_publish: bool,
    /// Records per model call [default: 64].
    #[arg(long)]
    pub batch: Option<usize>,
}

impl ScoreFlags {
    pub fn flags(&self, f: &mut Flags) {
        self.kafka.flags(f);
        self.model.flags(f);
        self.topics.flags(f);
        f.set("score.input", "--input", self.input.as_ref());
        f.set("score.from", "--from", self.from.as_ref());
        f.duration("score.since", "--since", self.since);
        f.set("score.report", "--report", self.report.as_ref());
        f.set("score.top", "--top", self.top.as_ref());
        f.switch("score.no_publish", "--no-publish", self.no_publish);
        f.set("score.batch", "--batch", self.batch.as_ref());
    }
}

/// What `argus score` runs with: the configuration's `[kafka]`, `[worker]` (reading
/// `input`) and `[score]`.
#[derive(Debug)]
pub struct ScoreArgs {
    pub kafka: KafkaConfig,
    pub model: argus_worker::WorkerSettings,
    pub input: String,
    pub from: Option<String>,
    pub since: Option<Duration>,
    pub report: PathBuf,
    pub top: usize,
    pub no_publish: bool,
    pub batch: usize,
}

impl ScoreArgs {
    pub fn new(config: ArgusConfig) -> Result<Self, CliError> {
        let s = config.score;
        if s.from.is_some() && s.since.is_some() {
            return Err(CliError::Usage(
                "score.from and score.since cannot both be set: pick one".into(),
            ));
        }
        Ok(ScoreArgs {
            kafka: config.kafka,
            model: argus_worker::WorkerSettings {
                inputs: vec![s.input.clone()],
                ..config.worker
            },
            input: s.input,
            from: s.from,
            since: s.since,
            report: s.report,
            top: s.top,
            no_publish: s.no_publish,
            batch: s.batch,
        })
    }
}

/// Parses `2026-11-29T06:00:00Z` (optionally with fractional seconds; a space for the `T`)
/// or epoch milliseconds. The calendar is humantime's; a time without its `Z` is refused
/// rather than guessed to be UTC.
pub fn parse_time_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let err =
        || format!("{s:?}: use RFC 3339 UTC like 2026-11-29T06:00:00Z, or epoch milliseconds");
    let body = s.strip_suffix(['Z', 'z']).ok_or_else(err)?;
    // humantime takes a bare "." for no fraction; RFC 3339 wants digits after it.
    if body.ends_with('.') {
        return Err(err());
    }
    let t = humantime::parse_rfc3339_weak(body).map_err(|_| err())?;
    let ms = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).map_err(|_| err())?,
        Err(before) => -i64::try_from(before.duration().as_millis()).map_err(|_| err())?,
    };
    Ok(ms)
}

/// The label whose score the report ranks, and its threshold.
fn decision(args: &ScoreArgs, model: &Classifier) -> Result<(usize, f32), CliError> {
    let rules = argus_worker::AlertRule::for_bundle(&args.model.alerts, model);
    let rule = rules.first().ok_or_else(|| {
        CliError::Usage(format!(
            "the bundle {} has no [decision] and no --alert LABEL>=THRESHOLD was given; the report needs the label to rank and its threshold",
            args.model.model.display()
        ))
    })?;
    let index = model
        .labels()
        .iter()
        .position(|l| *l == rule.label)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "label {:?} is not one of the model's labels ({})",
                rule.label,
                model.labels().join(", ")
            ))
        })?;
    Ok((index, rule.threshold))
}

pub async fn run(args: ScoreArgs) -> Result<(), CliError> {
    let model = load_model(
        &args.model.model,
        &args.model.engine_options(1),
        args.model.max_decoded_pixels,
    )?;
    let (positive, threshold) = decision(&args, &model)?;
    let worker = worker_config(
        format!("argus-score-{}", crate::work::default_worker_id()),
        &args.model,
        &model,
    )?;
    let settings = args.kafka.settings();
    crate::work::preflight(&settings).await?;
    let mut cc = settings.consumer_config(
        &format!("argus-score-{}", std::process::id()),
        "argus-score",
    );
    cc.set("enable.auto.commit", "false");
    // Through KafkaSetupError: it names a refused property without its value.
    let consumer: StreamConsumer = cc.create().map_err(|error| {
        CliError::Usage(
            argus_kafka::KafkaSetupError::Client {
                role: "consumer",
                brokers: args.kafka.brokers.clone(),
                error,
            }
            .to_string(),
        )
    })?;
    // Negative "times" are librdkafka's special offsets (-1 end, -2 beginning): the scorer
    // reads a time before 1970 as "from the beginning".
    let start_ms = match (&args.from, args.since) {
        (Some(f), _) => Some(parse_time_ms(f).map_err(|e| CliError::Usage(format!("--from {e}")))?),
        (None, Some(d)) => Some(
            (argus_wire::now_us() / 1000)
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        ),
        (None, None) => None,
    };
    let producer = (!args.no_publish)
        .then(|| settings.producer("argus-score"))
        .transpose()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let config = ScoreConfig {
        input: args.input.clone(),
        start_ms,
        batch: args.batch.max(1),
        positive,
        threshold,
        report: args.report.clone(),
        top: args.top,
    };
    let summary = argus_worker::score::score(&config, &worker, model.clone(), consumer, producer)
        .await
        .map_err(|e| match e {
            WorkerError::Config(_) | WorkerError::Input(_) | WorkerError::Report { .. } => {
                CliError::Usage(e.to_string())
            }
            other => CliError::Runtime(other.into()),
        })?;
    print_summary(&args, &config, &model, &summary);
    if summary.delivery_failures > 0 {
        return Err(CliError::Runtime(anyhow::anyhow!("the outputs of {} records were not acknowledged by the broker; the report is complete, the topics are not — run again", summary.delivery_failures)));
    }
    Ok(())
}

fn print_summary(args: &ScoreArgs, config: &ScoreConfig, model: &Classifier, s: &ScoreSummary) {
    let secs = s.elapsed.as_secs_f64();
    let dlq: Vec<String> = s.dlq.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "scored {} records of {} ({} partitions) in {:.1}s = {:.0} records/s; dead letters {} ({}); {} customers at or above {} = {:.2}: {} in the report {}; published {}",
        s.scored,
        config.input,
        s.partitions,
        secs,
        s.scored as f64 / secs.max(1e-9),
        s.dlq.values().sum::<u64>(),
        if dlq.is_empty() { "none".into() } else { dlq.join(", ") },
        s.at_risk,
        model.labels()[config.positive],
        config.threshold,
        s.written,
        config.report.display(),
        if args.no_publish { "nothing (--no-publish)".to_string() } else { format!("{} predictions, {} alerts", s.scored, s.alerts) },
    );
    if args.model.evidence.enabled {
        let alerts = if args.no_publish {
            "alerts not published, not explained".to_string()
        } else {
            format!("{} of {} alerts explained", s.explained, s.alerts)
        };
        println!("evidence: {alerts}; the report's `why` column gives each row's top reasons");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times_parse_as_utc_milliseconds() {
        assert_eq!(parse_time_ms("0").unwrap(), 0);
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_time_ms("2000-03-01T00:00:00Z").unwrap(),
            951_868_800_000
        );
        assert_eq!(
            parse_time_ms("2026-11-29T06:30:15.25Z").unwrap(),
            1_795_933_815_250
        );
        assert!(parse_time_ms("2026-13-01T00:00:00Z").is_err());
        assert!(parse_time_ms("yesterday").is_err());
        assert!(parse_time_ms("2026-11-29T06:30:15").is_err());
        assert_eq!(
            parse_time_ms("2024-02-29T00:00:00.5Z").unwrap(),
            1_709_164_800_500
        );
        for bad in [
            "2026-01-01T00:00:00.abéZ",
            "99999999999-01-01T00:00:00Z",
            "2026-01-01T-1:00:00Z",
            "2026-02-31T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-01-01T00:00:00.Z",
        ] {
            assert!(parse_time_ms(bad).is_err(), "{bad}");
        }
    }
}
