//! Stage 3 on the broker: a live stream instead of a backlog. Records are sent at a fixed
//! rate (`--live-rate`, well under the worker's drain rate, as a fleet sized for its
//! stream runs) to a fresh topic that one in-process worker consumes, with evidence off
//! and on; what is measured is what evidence costs there — the share of alerts that get
//! it, how long an alert waits for it, and the worker's CPU per record on against off.
//! A drain (stage 2) shows the other end: no spare CPU at all.
use super::drain::{Drains, EvidenceCounters, EvidenceSeen, Variant};
use crate::error::{runtime, BenchError};
use crate::harness::cpu::{thread_ticks, CpuMark, CpuUse};
use crate::harness::envelope_bytes;
use crate::harness::kafka::{await_deliveries, enqueue, finished};
use argus_kafka::TopicSpec;
use argus_producer::Frame;
use argus_wire::now_us;
use argus_worker::WorkerStats;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One live run: `records` sent at `rate` per second.
#[derive(Debug, Clone, Serialize)]
pub(super) struct LiveRun {
    pub variant: String,
    pub evidence: bool,
    pub rate: f64,
    pub records: u64,
    /// From the first record sent to the last one finished.
    pub seconds: f64,
    pub alerts: u64,
    /// What the alerts' evidence came to.
    #[serde(flatten)]
    pub seen: EvidenceSeen,
    /// CPU over the run (the bench process sends the records too, alike in both runs).
    pub cpu: CpuUse,
}

impl LiveRun {
    /// Share of the alerts that carried evidence.
    pub(super) fn explained(&self) -> Option<f64> {
        (self.alerts > 0).then(|| self.seen.evidence_ok as f64 / self.alerts as f64)
    }

    /// The bench process's CPU per record (µs).
    pub(super) fn cpu_us_per_record(&self) -> Option<f64> {
        self.cpu.bench_process_cpu_ms_per_input.map(|ms| ms * 1e3)
    }
}

impl Drains<'_> {
    /// Sends `seconds` of `records` (cycled) at `rate` per second to a fresh topic that a
    /// fresh worker configured as `variant` consumes; one record first, untimed, to see the
    /// worker join.
    pub(super) async fn live(
        &mut self,
        index: usize,
        variant: &Variant,
        records: &[Frame],
        (rate, seconds): (f64, f64),
    ) -> Result<LiveRun, BenchError> {
        let tag = format!("{}-live{index}", self.run_id);
        let input = format!("argus-evidence-bench-{tag}.records");
        argus_kafka::ensure_topics(
            &self.options.kafka,
            &[TopicSpec::new(&input, self.options.partitions)],
        )
        .await
        .map_err(runtime)?;
        self.topics.push(input.clone());
        let topics = self.output_topics(&tag).await?;
        let stats = Arc::new(WorkerStats::default());
        self.start_worker(&tag, &input, topics, variant, stats.clone())?;
        let result = self
            .paced(&input, &stats, variant, records, (rate, seconds))
            .await;
        if let Some(w) = self.worker.take() {
            w.stop().await;
        }
        result
    }

    async fn paced(
        &mut self,
        input: &str,
        stats: &WorkerStats,
        variant: &Variant,
        records: &[Frame],
        (rate, seconds): (f64, f64),
    ) -> Result<LiveRun, BenchError> {
        let producer = self
            .options
            .kafka
            .producer(&format!("argus-evidence-bench-live-{}", self.run_id))
            .map_err(runtime)?;
        let send = |i: u64| {
            let record = &records[(i % records.len() as u64) as usize];
            let capture = now_us();
            envelope_bytes(record, i, capture).map(|v| (record, v, capture))
        };
        let (record, value, capture) = send(0)?;
        let first = enqueue(&producer, input, record, &value, capture).await?;
        await_deliveries(vec![first]).await;
        self.wait(Duration::from_secs(60), "the worker to join", || {
            finished(stats) >= 1
        })
        .await?;
        let n = (rate * seconds).round().max(1.0) as u64;
        let (mark, threads, counters) = (
            CpuMark::now(self.options.broker_pid),
            thread_ticks(),
            EvidenceCounters::read(),
        );
        let alerts_before = stats.alerts.load(Ordering::Relaxed);
        let started = Instant::now();
        let mut deliveries = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        for i in 1..=n {
            let due = started + Duration::from_secs_f64((i - 1) as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            let (record, value, capture) = send(i)?;
            deliveries.push(enqueue(&producer, input, record, &value, capture).await?);
            if self.interrupted.is_cancelled() {
                return Err(runtime("interrupted"));
            }
        }
        let (_, failed) = await_deliveries(deliveries).await;
        if failed > 0 {
            return Err(runtime(format!(
                "{failed} of {n} records were not acknowledged"
            )));
        }
        self.wait(
            Duration::from_secs(120),
            "the worker to finish the stream",
            || finished(stats) > n,
        )
        .await?;
        let end = CpuMark::now(self.options.broker_pid);
        Ok(LiveRun {
            variant: variant.name.clone(),
            evidence: variant.evidence,
            rate,
            records: n,
            seconds: started.elapsed().as_secs_f64(),
            alerts: stats.alerts.load(Ordering::Relaxed) - alerts_before,
            seen: EvidenceSeen::since(&counters, &threads, n),
            cpu: mark.until(&end, n),
        })
    }
}

/// Prints one live run.
pub(super) fn print_live(r: &LiveRun) {
    let skipped: Vec<String> = r
        .seen
        .evidence_skipped
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    println!(
        "  live {:<4} {:>6.0} records/s for {:>5.1} s: {} alerts, {} with evidence ({}), skipped: {}; mean wait for evidence {}; bench process {} µs CPU/record; evidence threads {:.2} s CPU; machine idle {}",
        r.variant,
        r.rate,
        r.seconds,
        r.alerts,
        r.seen.evidence_ok,
        r.explained().map_or("–".into(), |s| format!("{:.1}%", s * 100.0)),
        if skipped.is_empty() { "none".into() } else { skipped.join(", ") },
        r.seen.evidence_mean_ms.map_or("–".into(), |ms| format!("{ms:.1} ms")),
        r.cpu_us_per_record().map_or("n/a".into(), |u| format!("{u:.1}")),
        r.seen.evidence_thread_cpu_seconds,
        r.cpu.machine_idle.map_or("n/a".into(), |i| format!("{:.0}%", i * 100.0)),
    );
}
