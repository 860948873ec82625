//! Stage 2 on the broker: the records are pre-filled once into a fresh topic, then one
//! in-process worker (`argus_worker::run`, as `argus-bench worker` and `drift` run it) drains
//! the whole topic per variant — an alert rule's threshold, evidence on or off — each time
//! in a fresh consumer group with fresh output topics, timed from its first consumed record
//! to its last finished one (group join excluded). What happened to the alerts' evidence is
//! read from the worker's own metrics (`argus_worker_evidence_seconds{method}`,
//! `argus_worker_evidence_skipped_total{reason}`), differences over the drain.
use super::EvidenceBenchOptions;
use crate::error::{runtime, usage, BenchError};
use crate::harness::cpu::{quiet_machine, thread_groups, thread_ticks, CpuMark, CpuUse};
use crate::harness::kafka::{finished, prefill, wait_until, BenchWorker};
use argus_kafka::TopicSpec;
use argus_model::Classifier;
use argus_producer::Frame;
use argus_worker::config::EvidenceSettings;
use argus_worker::metrics as wm;
use argus_worker::{AlertRule, WorkerConfig, WorkerStats};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How one drain runs: the alert rule's threshold and whether evidence is on.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Variant {
    pub name: String,
    pub threshold: f32,
    pub evidence: bool,
}

/// The worker's evidence metrics (cumulative over the process: drains use differences).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct EvidenceCounters {
    /// Evidence computed (`argus_worker_evidence_seconds` count, all methods) ...
    pub ok: f64,
    /// ... and the seconds from request to evidence, summed.
    pub ok_seconds: f64,
    /// Alerts without evidence, by reason.
    pub skipped: BTreeMap<String, f64>,
}

impl EvidenceCounters {
    /// Now, from the process's Prometheus recorder.
    pub(super) fn read() -> Self {
        Self::parse(&crate::harness::metrics_handle().render())
    }

    /// From Prometheus text: `NAME_count{method="…"} v`, `NAME_sum{…} v` and
    /// `SKIPPED{reason="…"} v` lines.
    pub(super) fn parse(text: &str) -> Self {
        let mut c = EvidenceCounters::default();
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            if name == format!("{}_count", wm::EVIDENCE_SECONDS) {
                c.ok += v;
            } else if name == format!("{}_sum", wm::EVIDENCE_SECONDS) {
                c.ok_seconds += v;
            } else if name == wm::EVIDENCE_SKIPPED {
                let reason = labels
                    .split_once("reason=\"")
                    .and_then(|(_, r)| r.split_once('"'))
                    .map_or("?", |(r, _)| r);
                *c.skipped.entry(reason.to_owned()).or_default() += v;
            }
        }
        c
    }

    /// What was counted from `before` to `self`.
    pub(super) fn since(&self, before: &Self) -> Self {
        let mut skipped = self.skipped.clone();
        for (k, v) in &before.skipped {
            *skipped.entry(k.clone()).or_default() -= v;
        }
        skipped.retain(|_, v| *v > 0.0);
        EvidenceCounters {
            ok: self.ok - before.ok,
            ok_seconds: self.ok_seconds - before.ok_seconds,
            skipped,
        }
    }
}

/// What a run's alerts' evidence came to, from the worker's metrics and the pool's
/// threads (a drain's or a live stream's).
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct EvidenceSeen {
    /// Alerts with evidence, and their mean wait for it (request → evidence, queueing
    /// included; the worker's histogram).
    pub evidence_ok: u64,
    pub evidence_mean_ms: Option<f64>,
    /// Alerts without evidence, by reason (deadline, saturated, backlog, error,
    /// unavailable).
    pub evidence_skipped: BTreeMap<String, u64>,
    /// CPU of the evidence pool's threads (`argus-evidence-*`) over the run.
    pub evidence_thread_cpu_seconds: f64,
}

impl EvidenceSeen {
    /// Since `counters` and `threads` were read at the start of a run of `n` inputs.
    pub(super) fn since(
        counters: &EvidenceCounters,
        threads: &[(u32, String, u64)],
        n: u64,
    ) -> Self {
        let evidence = EvidenceCounters::read().since(counters);
        let groups = thread_groups(threads, &thread_ticks(), n);
        EvidenceSeen {
            evidence_ok: evidence.ok.round() as u64,
            evidence_mean_ms: (evidence.ok > 0.0).then(|| evidence.ok_seconds * 1e3 / evidence.ok),
            evidence_skipped: evidence
                .skipped
                .iter()
                .map(|(k, v)| (k.clone(), v.round() as u64))
                .collect(),
            evidence_thread_cpu_seconds: groups
                .iter()
                .filter(|g| g.name.starts_with(argus_worker::evidence::THREAD_PREFIX))
                .fold(0.0, |sum, g| sum + g.cpu_seconds),
        }
    }
}

/// One timed drain.
#[derive(Debug, Clone, Serialize)]
pub(super) struct DrainRun {
    /// `None`: the warm-up drain, not counted.
    pub round: Option<usize>,
    pub variant: String,
    pub threshold: f32,
    pub evidence: bool,
    pub records: u64,
    pub group_join_seconds: f64,
    pub seconds: f64,
    pub records_per_s: f64,
    pub predicted: u64,
    pub not_predicted: u64,
    pub alerts: u64,
    pub alert_share: f64,
    /// What the alerts' evidence came to.
    #[serde(flatten)]
    pub seen: EvidenceSeen,
    pub pauses: u64,
    /// CPU over the drain (first consumed → last finished): bench process (the worker),
    /// broker, other processes, machine idle.
    pub cpu: CpuUse,
    /// Waited for a quiet machine before the drain (s), and whether it got quiet.
    pub quiet_wait_seconds: f64,
    pub quiet: bool,
    /// Other processes used more than 10 % of the machine during the drain.
    pub contended: bool,
}

/// The broker stage: its topics, and the worker of the drain under way.
#[derive(Debug)]
pub(super) struct Drains<'a> {
    pub options: &'a EvidenceBenchOptions,
    pub model: Arc<Classifier>,
    /// The label the alert rule watches.
    pub label: String,
    pub run_id: String,
    pub input: String,
    /// Every topic created (deleted at the end).
    pub topics: Vec<String>,
    pub interrupted: CancellationToken,
    pub worker: Option<BenchWorker>,
}

impl Drains<'_> {
    /// Creates the input topic and sends `drain_records` records cycling through
    /// `records`, as `argus produce` sends them; returns the seconds it took.
    pub(super) async fn prefill(&mut self, records: &[Frame]) -> Result<f64, BenchError> {
        let n = self.options.drain_records;
        let spec = TopicSpec::new(&self.input, self.options.partitions);
        argus_kafka::ensure_topics(&self.options.kafka, &[spec])
            .await
            .map_err(runtime)?;
        self.topics.push(self.input.clone());
        let producer = self
            .options
            .kafka
            .producer(&format!("argus-evidence-bench-producer-{}", self.run_id))
            .map_err(|e| usage(e.to_string()))?;
        let seconds = prefill(&producer, &self.input, records, n, "records").await?;
        println!(
            "  pre-filled {n} records into {} ({} partitions) in {seconds:.2} s",
            self.input, self.options.partitions
        );
        Ok(seconds)
    }

    /// Fresh output topics for drain `tag` (remembered for deletion).
    pub(super) async fn output_topics(
        &mut self,
        tag: &str,
    ) -> Result<argus_worker::OutputTopics, BenchError> {
        let base = format!("argus-evidence-bench-{tag}");
        let topics = argus_worker::OutputTopics {
            predictions: format!("{base}.predictions"),
            alerts: format!("{base}.alerts"),
            dlq: format!("{base}.dlq"),
            ..Default::default()
        };
        argus_kafka::ensure_topics(
            &self.options.kafka,
            &[
                TopicSpec::new(&topics.predictions, 4),
                TopicSpec::new(&topics.alerts, 4),
                TopicSpec::new(&topics.dlq, 1),
            ],
        )
        .await
        .map_err(runtime)?;
        self.topics.extend([
            topics.predictions.clone(),
            topics.alerts.clone(),
            topics.dlq.clone(),
        ]);
        Ok(topics)
    }

    /// A worker reading `input` with `argus work`'s defaults (but `max_in_flight` if set), one alert rule at
    /// the variant's threshold and the run's `[worker.evidence]`, `enabled` as the variant
    /// says.
    pub(super) fn start_worker(
        &mut self,
        tag: &str,
        input: &str,
        topics: argus_worker::OutputTopics,
        variant: &Variant,
        stats: Arc<WorkerStats>,
    ) -> Result<(), BenchError> {
        let id = format!("argus-evidence-bench-worker-{tag}");
        let mut config = WorkerConfig::new(id, vec![input.to_owned()]);
        config.topics = topics;
        config.rules = vec![AlertRule {
            name: self.label.clone(),
            label: self.label.clone(),
            threshold: variant.threshold,
        }];
        config.evidence = EvidenceSettings {
            enabled: variant.evidence,
            ..self.options.evidence.clone()
        };
        if let Some(m) = self.options.max_in_flight {
            config.max_in_flight = m;
        }
        let group = format!("argus-evidence-bench-{tag}");
        let worker = BenchWorker::start(
            config,
            &self.options.kafka,
            &group,
            self.model.clone(),
            stats,
        )?;
        self.worker = Some(worker);
        Ok(())
    }

    /// Drains the pre-filled topic once with a fresh worker configured as `variant`.
    pub(super) async fn drain(
        &mut self,
        index: usize,
        round: Option<usize>,
        variant: &Variant,
    ) -> Result<DrainRun, BenchError> {
        let tag = format!("{}-{index}", self.run_id);
        let topics = self.output_topics(&tag).await?;
        let (quiet_wait_seconds, quiet) = quiet_machine(self.options.quiet_wait).await;
        let stats = Arc::new(WorkerStats::default());
        let input = self.input.clone();
        self.start_worker(&tag, &input, topics, variant, stats.clone())?;
        let result = self.timed(&stats, round, variant).await;
        if let Some(w) = self.worker.take() {
            w.stop().await;
        }
        result.map(|mut r| {
            r.quiet_wait_seconds = quiet_wait_seconds;
            r.quiet = quiet;
            r
        })
    }

    /// Waits for the worker to join, then times its drain of every record.
    async fn timed(
        &mut self,
        stats: &WorkerStats,
        round: Option<usize>,
        variant: &Variant,
    ) -> Result<DrainRun, BenchError> {
        let n = self.options.drain_records;
        let t = Instant::now();
        let joined = || stats.consumed.load(Ordering::Relaxed) >= 1;
        self.wait(Duration::from_secs(60), "the worker to join", joined)
            .await?;
        let first = Instant::now();
        let (mark, threads, counters) = (
            CpuMark::now(self.options.broker_pid),
            thread_ticks(),
            EvidenceCounters::read(),
        );
        let limit = Duration::from_secs(60 + n / 20);
        self.wait(limit, "the worker to drain the topic", || {
            finished(stats) >= n
        })
        .await?;
        let last = Instant::now();
        let end = CpuMark::now(self.options.broker_pid);
        let seconds = (last - first).as_secs_f64();
        let cpu = mark.until(&end, n);
        let (predicted, alerts) = (
            stats.predicted.load(Ordering::Relaxed),
            stats.alerts.load(Ordering::Relaxed),
        );
        Ok(DrainRun {
            round,
            variant: variant.name.clone(),
            threshold: variant.threshold,
            evidence: variant.evidence,
            records: n,
            group_join_seconds: (first - t).as_secs_f64(),
            seconds,
            records_per_s: n as f64 / seconds,
            predicted,
            not_predicted: finished(stats).saturating_sub(predicted),
            alerts,
            alert_share: alerts as f64 / n as f64,
            seen: EvidenceSeen::since(&counters, &threads, n),
            pauses: stats.pauses.load(Ordering::Relaxed),
            contended: cpu.contention().is_some(),
            cpu,
            quiet_wait_seconds: 0.0,
            quiet: true,
        })
    }

    /// Polls `done` every millisecond; fails on timeout, Ctrl-C, or if the worker stopped.
    pub(super) async fn wait(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn() -> bool,
    ) -> Result<(), BenchError> {
        wait_until(
            &mut self.worker,
            &self.interrupted,
            limit,
            what,
            done,
            || Ok(()),
        )
        .await
        .map(|_| ())
    }

    /// An untimed warm-up drain (`warm_up`), then `rounds` rounds of every variant, the
    /// order reversed every other round (A B C D, D C B A, …) so that a drift of the
    /// machine's speed over the run weighs on every variant alike.
    pub(super) async fn rounds(
        &mut self,
        variants: &[Variant],
        warm_up: Option<&Variant>,
        mut each: impl FnMut(&DrainRun),
    ) -> Result<(Option<DrainRun>, Vec<DrainRun>), BenchError> {
        let mut index = 0;
        let warm = match warm_up {
            Some(v) => {
                let r = self.drain(index, None, v).await?;
                index += 1;
                each(&r);
                Some(r)
            }
            None => None,
        };
        let mut runs = Vec::new();
        for round in 0..self.options.rounds {
            let mut order: Vec<&Variant> = variants.iter().collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for v in order {
                let r = self.drain(index, Some(round), v).await?;
                index += 1;
                each(&r);
                runs.push(r);
            }
        }
        Ok((warm, runs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_counters_read_prometheus_text() {
        let (secs, skipped) = (wm::EVIDENCE_SECONDS, wm::EVIDENCE_SKIPPED);
        let before = EvidenceCounters::parse(&format!(
            "{secs}_bucket{{method=\"tree_shap\",le=\"0.005\"}} 3\n\
             {secs}_sum{{method=\"tree_shap\"}} 0.5\n\
             {secs}_count{{method=\"tree_shap\"}} 10\n\
             {skipped}{{reason=\"deadline\"}} 0\n"
        ));
        let after = EvidenceCounters::parse(&format!(
            "# HELP {skipped} x\n\
             {secs}_sum{{method=\"tree_shap\"}} 1.5\n\
             {secs}_count{{method=\"tree_shap\"}} 30\n\
             {skipped}{{reason=\"deadline\"}} 2\n\
             {skipped}{{reason=\"saturated\"}} 0\n"
        ));
        let d = after.since(&before);
        assert_eq!(d.ok, 20.0);
        assert!((d.ok_seconds - 1.0).abs() < 1e-12);
        assert_eq!(d.skipped.len(), 1);
        assert_eq!(d.skipped.get("deadline"), Some(&2.0));
    }
}
