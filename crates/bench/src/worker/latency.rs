//! Stage 4: end-to-end latency at fractions of the capacity stage 3 measured. A fixed-rate
//! producer stamps each frame with its *intended* send time (a late send counts as latency:
//! no coordinated omission); a `read_committed` subscriber on the predictions topic
//! measures receive time − capture time. Each prediction's latency is split by the actual
//! send time and both topics' broker append times ([`super::report::stage_stats`]).
use super::report::{
    histogram_totals, internals, stage_stats, LatencyResult, Record, Seen, StageStats,
};
use super::session::KafkaSession;
use crate::error::{runtime, usage, BenchError};
use crate::harness::cpu::{cpu_busy, percent, thread_ticks, CpuMark, ThreadSample};
use crate::harness::kafka::{appended_times, enqueue};
use crate::harness::{envelope_bytes, percentile};
use argus_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use argus_kafka::rdkafka::producer::{DeliveryFuture, FutureProducer};
use argus_kafka::rdkafka::{Message, Timestamp};
use argus_wire::{now_us, Prediction};
use argus_worker::WorkerStats;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

/// One load level as sent: its window of capture times and what it cost to send.
struct SentLevel {
    n: u64,
    t0_us: i64,
    window_end: i64,
    max_behind: Duration,
    /// The sequence number of the level's first input; the rest follow.
    first_sequence: u64,
    /// When each input was handed to the producer, µs.
    sent_us: Vec<i64>,
    deliveries: Vec<DeliveryFuture>,
    pauses: u64,
    mark: CpuMark,
    end: CpuMark,
    /// The process's threads when the level started and ended.
    threads: (ThreadSample, ThreadSample),
    hist: std::collections::HashMap<String, f64>,
}

impl KafkaSession<'_> {
    pub(crate) async fn latency(
        &mut self,
        producer: &FutureProducer,
        stats: &WorkerStats,
        capacity: f64,
        already_predicted: u64,
    ) -> Result<Vec<LatencyResult>, BenchError> {
        println!();
        println!(
            "stage 4  end-to-end latency: fixed-rate producer (capture time = intended send time) → worker → read_committed subscriber on {}; latency = receive time − capture time",
            self.topics.predictions
        );
        // The subscriber reads the predictions of stage 3 first, so once it has seen them
        // all it is assigned and positioned at the end.
        let tap: StreamConsumer = self
            .options
            .kafka
            .consumer_config(
                &format!("argus-bench-tap-{}", self.run_id),
                "argus-bench-tap",
            )
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            // The lag statistics are the worker's business; the default context would log
            // them at info level every 5 s.
            .set("statistics.interval.ms", "0")
            .create()
            .map_err(|e| usage(e.to_string()))?;
        tap.subscribe(&[&self.topics.predictions])
            .map_err(runtime)?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Seen>();
        let tap_stop = CancellationToken::new();
        let tap_task = {
            let stop = tap_stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        m = tap.recv() => match m {
                            Ok(m) => {
                                let received_us = now_us();
                                let p = m
                                    .payload()
                                    .and_then(|p| serde_json::from_slice::<Prediction>(p).ok());
                                let appended_us = match m.timestamp() {
                                    Timestamp::LogAppendTime(ms) => Some(ms * 1000),
                                    _ => None,
                                };
                                let seen = Seen {
                                    received_us,
                                    appended_us,
                                    capture_us: p.as_ref().and_then(|p| p.input.capture_time_us),
                                    sequence: p.as_ref().and_then(|p| p.input.sequence),
                                    timings: p.map(|p| p.timings),
                                };
                                if tx.send(seen).is_err() {
                                    break;
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "bench subscriber error"),
                        },
                    }
                }
            })
        };
        let result = self
            .latency_levels(producer, stats, capacity, already_predicted, &mut rx)
            .await;
        tap_stop.cancel();
        let _ = tap_task.await;
        result
    }

    async fn latency_levels(
        &mut self,
        producer: &FutureProducer,
        stats: &WorkerStats,
        capacity: f64,
        already_predicted: u64,
        rx: &mut UnboundedReceiver<Seen>,
    ) -> Result<Vec<LatencyResult>, BenchError> {
        skip_stage3(rx, already_predicted).await?;
        println!(
            "  {:>5} {:>8} {:>6} {:>8} {:>9} {:>9} {:>9} {:>13} {:>7} {:>9}",
            "load",
            "rate/s",
            "sent",
            "received",
            "p50 ms",
            "p99 ms",
            "max ms",
            "send late ms",
            "pauses",
            "CPU busy"
        );
        let mut out = Vec::new();
        let mut sequence = self.options.frames;
        for &load in &self.options.loads {
            let rate = load * capacity;
            let mut sent = self
                .send_level(producer, stats, rate, &mut sequence)
                .await?;
            let appended = appended_times(std::mem::take(&mut sent.deliveries)).await;
            let failed = appended.iter().filter(|a| a.is_err()).count();
            if failed > 0 {
                tracing::warn!(failed, "latency frames not acknowledged by the broker");
            }
            let appended: Vec<Option<i64>> =
                appended.into_iter().map(|a| a.ok().flatten()).collect();
            let (latencies, records) = collect_level(rx, &sent, &appended).await;
            let r = LatencyResult {
                load,
                rate_per_s: rate,
                sent: sent.n,
                received: latencies.len() as u64,
                producer_max_behind_ms: sent.max_behind.as_secs_f64() * 1e3,
                p50_ms: percentile(&latencies, 0.5),
                p99_ms: percentile(&latencies, 0.99),
                max_ms: latencies.last().copied().unwrap_or(f64::NAN),
                stages: stage_stats(&records),
                pauses: sent.pauses,
                machine_cpu_busy: cpu_busy(sent.mark.machine, sent.end.machine),
                cpu: sent.mark.until(&sent.end, sent.n),
                worker_cpu: self.worker_cpu(&sent.threads.0, &sent.threads.1, sent.n),
                internals: internals(&sent.hist, &histogram_totals()),
            };
            print_level(&r);
            out.push(r);
            // Let the queue empty before the next level.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(out)
    }

    /// Sends one level: `rate` × `--latency-duration` frames, each at its due time.
    async fn send_level(
        &self,
        producer: &FutureProducer,
        stats: &WorkerStats,
        rate: f64,
        sequence: &mut u64,
    ) -> Result<SentLevel, BenchError> {
        let n = ((rate * self.options.latency_duration.as_secs_f64()).round() as u64).max(1);
        let pauses = stats.pauses.load(Ordering::Relaxed);
        let mark = CpuMark::now(self.options.broker_pid);
        let threads_before = thread_ticks();
        let hist = histogram_totals();
        let t0 = tokio::time::Instant::now();
        let t0_us = now_us();
        let mut deliveries = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        let mut sent_us = Vec::with_capacity(deliveries.capacity());
        let first_sequence = *sequence;
        let mut max_behind = Duration::ZERO;
        for i in 0..n {
            if self.interrupted.is_cancelled() {
                return Err(runtime("interrupted"));
            }
            let offset = Duration::from_secs_f64(i as f64 / rate);
            let due = t0 + offset;
            tokio::time::sleep_until(due).await;
            max_behind = max_behind.max(due.elapsed());
            let capture = t0_us + i64::try_from(offset.as_micros()).unwrap_or(i64::MAX);
            let frame = &self.pool[(*sequence % self.pool.len() as u64) as usize];
            let value = envelope_bytes(frame, *sequence, capture)?;
            *sequence += 1;
            sent_us.push(now_us());
            deliveries.push(enqueue(producer, &self.topics.input, frame, &value, capture).await?);
        }
        let end = CpuMark::now(self.options.broker_pid);
        let threads = (threads_before, thread_ticks());
        let pauses = stats.pauses.load(Ordering::Relaxed) - pauses;
        let window_end = t0_us
            + i64::try_from(Duration::from_secs_f64(n as f64 / rate).as_micros())
                .unwrap_or(i64::MAX);
        Ok(SentLevel {
            n,
            t0_us,
            window_end,
            max_behind,
            first_sequence,
            sent_us,
            deliveries,
            pauses,
            mark,
            end,
            threads,
            hist,
        })
    }
}

/// Reads past the predictions of stage 3, so the subscriber is assigned and positioned at
/// the end before the first level is sent.
async fn skip_stage3(
    rx: &mut UnboundedReceiver<Seen>,
    already_predicted: u64,
) -> Result<(), BenchError> {
    let mut seen = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < already_predicted {
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some(_)) => seen += 1,
            Ok(None) | Err(_) => {
                return Err(runtime(format!(
                    "the predictions subscriber saw {seen} of the {already_predicted} stage-3 predictions within 60 s"
                )))
            }
        }
    }
    Ok(())
}

/// The level's latencies (sorted, ms) and the records with timings, for at most 30 s;
/// `appended` holds each input's append time, in the order sent.
async fn collect_level(
    rx: &mut UnboundedReceiver<Seen>,
    sent: &SentLevel,
    appended: &[Option<i64>],
) -> (Vec<f64>, Vec<Record>) {
    let mut latencies: Vec<f64> = Vec::with_capacity(usize::try_from(sent.n).unwrap_or(0));
    // (latency ms, that prediction's timings) for the breakdown.
    let mut records: Vec<Record> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (latencies.len() as u64) < sent.n {
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some(Seen {
                received_us,
                capture_us: Some(c),
                sequence,
                timings,
                appended_us,
            })) if c >= sent.t0_us && c < sent.window_end => {
                let latency = (received_us - c) as f64 / 1e3;
                latencies.push(latency);
                let index = sequence
                    .and_then(|s| s.checked_sub(sent.first_sequence))
                    .and_then(|i| usize::try_from(i).ok());
                if let Some(t) = timings {
                    records.push(Record {
                        latency_ms: latency,
                        capture_us: c,
                        sent_us: index.and_then(|i| sent.sent_us.get(i).copied()),
                        input_appended_us: index.and_then(|i| appended.get(i).copied().flatten()),
                        received_us,
                        appended_us,
                        timings: t,
                    });
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    latencies.sort_by(f64::total_cmp);
    (latencies, records)
}

fn print_level(r: &LatencyResult) {
    println!(
        "  {:>4.0}% {:>8.1} {:>6} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>13.1} {:>7} {:>9}",
        r.load * 100.0,
        r.rate_per_s,
        r.sent,
        r.received,
        r.p50_ms,
        r.p99_ms,
        r.max_ms,
        r.producer_max_behind_ms,
        r.pauses,
        percent(r.machine_cpu_busy)
    );
    print_stages(&r.stages);
    println!(
        "         {} (bench process = worker + load generator + subscriber)",
        r.cpu.line()
    );
    println!("         {}", r.internals.line());
    println!("         {}", r.worker_cpu.line());
    if r.received < r.sent {
        println!(
            "  WARNING: {} predictions of this level did not arrive within 30 s",
            r.sent - r.received
        );
    }
}

/// The parts of the latency as a table: percentiles over all predictions, and the median
/// over the slowest 1 %.
fn print_stages(stages: &[StageStats]) {
    println!(
        "         {:<100} {:>7} {:>8} {:>8} {:>8} {:>10}",
        "part of the latency, ms", "p50", "p99", "p99.9", "max", "slowest 1%"
    );
    for s in stages {
        println!(
            "         {:<100} {:>7.2} {:>8.2} {:>8.2} {:>8.2} {:>10.2}",
            s.stage, s.p50_ms, s.p99_ms, s.p999_ms, s.max_ms, s.slowest_1pct_median_ms
        );
    }
}
