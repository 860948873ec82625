//! What the worker harness reports: one struct per stage (serialised into the `--json`
//! file as they are), the latency breakdown of a set of predictions, and the worker's own
//! histograms read back from the process's Prometheus recorder.
use crate::harness::cpu::{CpuUse, ThreadGroup, ThreadSample};
use crate::harness::{median, percentile};
use argus_worker::metrics as wm;
use serde::Serialize;

/// One batch size of the tract-alone stage.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BatchResult {
    pub batch: usize,
    pub calls: usize,
    pub inputs_per_s: f64,
    pub p50_call_us: f64,
    pub p50_per_input_us: f64,
    /// p50 per input relative to batch 1.
    pub relative_to_batch_1: f64,
    /// The process's CPU time per input over the timed calls, ms: the engine's own CPU
    /// (an engine with intra-op threads uses more CPU than wall time).
    pub cpu_ms_per_input: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct OfflineResult {
    pub threads: usize,
    pub inputs: u64,
    pub errors: u64,
    pub seconds: f64,
    pub inputs_per_s: f64,
    /// Decode + preprocess + infer + postprocess of one input, one thread's view.
    pub p50_per_input_us: f64,
    /// Whole machine (all processes, the broker too), from /proc/stat.
    pub machine_cpu_busy: Option<f64>,
    /// CPU time by process over the timed part.
    pub cpu: CpuUse,
}

/// The worker's own threads' CPU over a stage (the load generator and the subscriber,
/// which share the process, left out), per input.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkerCpu {
    /// All of the worker's threads: its runtime, model threads and librdkafka clients.
    pub cpu_ms_per_input: f64,
    /// Its model threads (`argus-infer-*`): the model calls and their batching.
    pub model_threads_ms_per_input: f64,
    /// The rest: consume, decode and preprocess, JSON, publish, commit, hand-offs.
    pub outside_model_threads_ms_per_input: f64,
    pub groups: Vec<ThreadGroup>,
}

impl WorkerCpu {
    /// From two [`crate::harness::cpu::thread_ticks`] samples; `owns` says which threads are
    /// the worker's.
    pub(crate) fn of(
        before: &ThreadSample,
        after: &ThreadSample,
        inputs: u64,
        owns: impl Fn(u32, &str) -> bool,
    ) -> Self {
        let mine: ThreadSample = after
            .iter()
            .filter(|(tid, name, _)| owns(*tid, name))
            .cloned()
            .collect();
        let groups = crate::harness::cpu::thread_groups(before, &mine, inputs);
        let total: f64 = groups.iter().map(|g| g.cpu_ms_per_input).sum();
        let model: f64 = groups
            .iter()
            .filter(|g| g.name.starts_with(argus_worker::INFERENCE_THREAD_PREFIX))
            .map(|g| g.cpu_ms_per_input)
            .sum();
        WorkerCpu {
            cpu_ms_per_input: total,
            model_threads_ms_per_input: model,
            outside_model_threads_ms_per_input: total - model,
            groups,
        }
    }

    pub(crate) fn line(&self) -> String {
        let groups: Vec<String> = self
            .groups
            .iter()
            .filter(|g| g.cpu_ms_per_input > 0.0)
            .map(|g| format!("{} ×{} {:.3}", g.name, g.threads, g.cpu_ms_per_input))
            .collect();
        format!(
            "the worker's threads, CPU-ms per input: {:.3} (model threads {:.3}, the rest {:.3}): {}",
            self.cpu_ms_per_input,
            self.model_threads_ms_per_input,
            self.outside_model_threads_ms_per_input,
            groups.join(", ")
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkerResult {
    pub frames: u64,
    pub partitions: i32,
    pub prefill_seconds: f64,
    pub group_join_seconds: f64,
    pub seconds: f64,
    pub predicted: u64,
    pub dead_lettered: u64,
    /// Stale, abandoned (partition revoked) or undelivered: none is expected.
    pub other: u64,
    pub inputs_per_s: f64,
    /// Times the worker paused its partitions (backpressure).
    pub pauses: u64,
    pub machine_cpu_busy: Option<f64>,
    /// CPU time by process over the drain; the bench process is the worker (the bench
    /// itself only polls a counter every millisecond meanwhile).
    pub cpu: CpuUse,
    /// CPU time of the bench process's threads over the drain, grouped by thread name.
    pub threads: Vec<ThreadGroup>,
    /// The worker's own threads over the drain.
    pub worker_cpu: WorkerCpu,
    pub internals: WorkerInternals,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct LatencyResult {
    pub load: f64,
    pub rate_per_s: f64,
    pub sent: u64,
    pub received: u64,
    /// Largest delay of a send behind its schedule (already counted in the latencies).
    pub producer_max_behind_ms: f64,
    /// Where the latency goes: each part's percentiles, and its median over the slowest 1%.
    pub stages: Vec<StageStats>,
    /// Times the worker paused its partitions while this level was sent.
    pub pauses: u64,
    /// While this level was sent; the load generator and subscriber run on the same machine.
    pub machine_cpu_busy: Option<f64>,
    /// While this level was sent; the bench process is the worker plus the load generator
    /// and the subscriber.
    pub cpu: CpuUse,
    /// The worker's own threads while this level was sent.
    pub worker_cpu: WorkerCpu,
    /// From the start of sending to the last of this level's predictions received.
    pub internals: WorkerInternals,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One part of the way from capture to the subscriber, over a level's predictions (ms).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StageStats {
    pub stage: &'static str,
    /// Predictions this part could be measured for.
    pub records: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// The median of this part over the slowest 1 % of predictions (by total latency):
    /// which part the tail's extra time is in.
    pub slowest_1pct_median_ms: f64,
}

/// The parts of one prediction's latency, ms, in the order they happen (`None` where a
/// timestamp is missing). The names are [`STAGES`].
fn stages(r: &Record) -> [Option<f64>; 11] {
    let ms = |us: i64| us as f64 / 1e3;
    let t = &r.timings;
    let built = t
        .capture_to_output_us
        .and_then(|c| i64::try_from(c).ok())
        .map(|c| r.capture_us + c);
    let inside = i64::try_from(
        t.queue_us + t.decode_us + t.preprocess_us + t.inference_us + t.postprocess_us,
    )
    .ok();
    let consumed = built.zip(inside).map(|(b, i)| b - i);
    [
        Some(r.latency_ms),
        r.sent_us.map(|s| ms(r.received_us - s)),
        r.input_appended_us
            .zip(r.appended_us)
            .map(|(i, o)| ms(o - i)),
        r.sent_us.map(|s| ms(s - r.capture_us)),
        r.input_appended_us.zip(r.sent_us).map(|(a, s)| ms(a - s)),
        consumed.zip(r.input_appended_us).map(|(c, a)| ms(c - a)),
        Some(t.queue_us as f64 / 1e3),
        Some((t.decode_us + t.preprocess_us) as f64 / 1e3),
        Some(t.inference_us as f64 / 1e3),
        built.zip(r.appended_us).map(|(b, a)| ms(a - b)),
        r.appended_us.map(|a| ms(r.received_us - a)),
    ]
}

/// What [`stages`] returns, by position.
pub(crate) const STAGES: [&str; 11] = [
    "total: capture (intended send) → received",
    "actual send → received",
    "the worker's part: input appended → prediction appended",
    "load generator late (intended → actual send)",
    "send → input appended (load generator's producer, broker)",
    "input appended → consumed + waits (worker's fetch, waits for the model thread and partition order)",
    "queue (consumed → decoding)",
    "decode + preprocess",
    "inference (share of the batch's call)",
    "prediction built → appended (worker's producer, broker)",
    "appended → received (subscriber's fetch)",
];

/// Each part's percentiles over `records`, and its median over the slowest 1 %. Broker
/// append times have ms resolution, so parts next to them can read up to 1 ms off (and
/// below 0).
pub(crate) fn stage_stats(records: &[Record]) -> Vec<StageStats> {
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by(|a, b| a.latency_ms.total_cmp(&b.latency_ms));
    let slow_from = ((sorted.len() as f64) * 0.99).floor() as usize;
    let parts: Vec<[Option<f64>; 11]> = sorted.iter().map(|r| stages(r)).collect();
    STAGES
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let mut all: Vec<f64> = parts.iter().filter_map(|p| p[i]).collect();
            all.sort_by(f64::total_cmp);
            let slow: Vec<f64> = parts[slow_from.min(parts.len())..]
                .iter()
                .filter_map(|p| p[i])
                .collect();
            StageStats {
                stage,
                records: all.len(),
                p50_ms: percentile(&all, 0.5),
                p99_ms: percentile(&all, 0.99),
                p999_ms: percentile(&all, 0.999),
                max_ms: all.last().copied().unwrap_or(f64::NAN),
                slowest_1pct_median_ms: median(&slow),
            }
        })
        .collect()
}

/// What the predictions subscriber saw of one record.
#[derive(Debug)]
pub(crate) struct Seen {
    pub received_us: i64,
    pub capture_us: Option<i64>,
    /// The input's envelope sequence number: which send it was.
    pub sequence: Option<u64>,
    pub timings: Option<argus_wire::Timings>,
    /// The broker's append time (the predictions topic has `LogAppendTime`), µs.
    pub appended_us: Option<i64>,
}

/// One received prediction of a latency level.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    pub latency_ms: f64,
    /// The intended send time, written into the envelope as its capture time.
    pub capture_us: i64,
    /// When the load generator handed the input to its producer.
    pub sent_us: Option<i64>,
    /// The broker's append time of the input (the input topic has `LogAppendTime`).
    pub input_appended_us: Option<i64>,
    pub received_us: i64,
    /// The broker's append time of the prediction.
    pub appended_us: Option<i64>,
    pub timings: argus_wire::Timings,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Ratios {
    pub worker_over_offline: f64,
    /// Offline CPU-ms per input ÷ the worker process's CPU-ms per input during the drain:
    /// 1.0 means the worker spends no CPU per input beyond the offline pipeline's.
    pub cpu_efficiency_offline_over_worker: Option<f64>,
    pub offline_over_tract_batch_1: f64,
    /// e2e p99 at the first load level minus the model's p50 inference (batch 1), ms.
    pub e2e_p99_minus_model_p50_ms: Option<f64>,
    /// The worker process's CPU-ms per input during the drain ÷ the engine's own CPU-ms per
    /// inference (batch 1, engine alone): everything a frame costs — decode, preprocess,
    /// Kafka, JSON, rules — against the model's own cost (issue 17 target ≤ 1.5).
    pub worker_cpu_over_inference: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub time_us: i64,
    pub model: String,
    pub model_version: String,
    pub frame: String,
    pub distinct_frames: usize,
    pub mean_frame_bytes: f64,
    pub worker_decode_threads: usize,
    pub worker_inference_threads: usize,
    pub worker_max_batch: usize,
    pub worker_max_in_flight: usize,
    pub offline_threads: usize,
    /// `--capacity`: what the latency levels' `load` is a fraction of, if not the drain's
    /// `inputs_per_s`.
    pub load_capacity_per_s: Option<f64>,
    /// `--relay`: stages 3 and 4 ran the bare relay, not the worker.
    pub relay: bool,
    pub brokers: String,
    /// `-X` (every client) and `--worker-option` (worker only) librdkafka properties.
    pub kafka_options: Vec<(String, String)>,
    pub worker_kafka_options: Vec<(String, String)>,
    pub cores: usize,
    /// /proc/loadavg when the run started and when it ended.
    pub loadavg_start: Option<String>,
    pub loadavg_end: Option<String>,
    pub tract: Vec<BatchResult>,
    pub offline: OfflineResult,
    pub worker: WorkerResult,
    pub latency: Vec<LatencyResult>,
    pub ratios: Ratios,
}

/// Sums, counts and buckets of the worker's histograms, from the process's Prometheus
/// recorder (they accumulate over the run; stages use differences).
pub(crate) fn histogram_totals() -> std::collections::HashMap<String, f64> {
    crate::harness::metrics_handle()
        .render()
        .lines()
        .filter(|l| l.starts_with(wm::COMMIT_SECONDS) || l.starts_with(wm::BATCH_SIZE))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// What the worker's own metrics say about a stage.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkerInternals {
    /// Offset commits (at-least-once: synchronous, explicit).
    pub commits: u64,
    pub commit_mean_ms: f64,
    /// Commits that took more than 50 ms.
    pub commits_over_50ms: u64,
    pub model_calls: u64,
    pub mean_batch: f64,
}

pub(crate) fn internals(
    a: &std::collections::HashMap<String, f64>,
    b: &std::collections::HashMap<String, f64>,
) -> WorkerInternals {
    // Prometheus series of a histogram: NAME_count, NAME_sum, NAME_bucket{le="…"}.
    let d = |name: &str, suffix: &str| {
        let k = format!("{name}{suffix}");
        b.get(&k).copied().unwrap_or(0.0) - a.get(&k).copied().unwrap_or(0.0)
    };
    let commits = d(wm::COMMIT_SECONDS, "_count");
    let calls = d(wm::BATCH_SIZE, "_count");
    WorkerInternals {
        commits: commits.max(0.0) as u64,
        commit_mean_ms: d(wm::COMMIT_SECONDS, "_sum") * 1e3 / commits.max(1.0),
        commits_over_50ms: (commits - d(wm::COMMIT_SECONDS, "_bucket{le=\"0.05\"}")).max(0.0)
            as u64,
        model_calls: calls.max(0.0) as u64,
        mean_batch: d(wm::BATCH_SIZE, "_sum") / calls.max(1.0),
    }
}

impl WorkerInternals {
    pub(crate) fn line(&self) -> String {
        format!(
            "worker metrics: {} model calls (mean batch {:.2}), {} offset commits (mean {:.1} ms, {} over 50 ms)",
            self.model_calls, self.mean_batch, self.commits, self.commit_mean_ms, self.commits_over_50ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_split_each_prediction_and_find_the_tail() {
        // Prediction i: sent 1 ms late, appended 1 ms later, consumed i/10 ms after that,
        // 0.3 ms in the worker, appended 2 ms after built, received 0.5 ms later.
        let records: Vec<Record> = (1..=1000)
            .map(|i| {
                let inside = 300;
                let built = 1000 + 1000 + i * 100 + inside;
                Record {
                    latency_ms: (built + 2500) as f64 / 1e3,
                    capture_us: 0,
                    sent_us: Some(1000),
                    input_appended_us: Some(2000),
                    received_us: built + 2500,
                    appended_us: Some(built + 2000),
                    timings: argus_wire::Timings {
                        queue_us: 100,
                        decode_us: 200,
                        capture_to_output_us: u64::try_from(built).ok(),
                        ..Default::default()
                    },
                }
            })
            .collect();
        let s = stage_stats(&records);
        let by = |name: &str| {
            s.iter()
                .find(|x| x.stage.starts_with(name))
                .unwrap_or_else(|| panic!("{name}"))
        };
        assert_eq!(s.len(), STAGES.len());
        assert_eq!(by("load generator late").p99_ms, 1.0);
        assert_eq!(by("send → input appended").p50_ms, 1.0);
        let fetch = by("input appended → consumed");
        assert_eq!(fetch.p50_ms, 50.1);
        assert_eq!(fetch.p99_ms, 99.0);
        assert_eq!(fetch.max_ms, 100.0);
        // The slowest 10 of 1000: consumed 99.1 … 100 ms after the append.
        assert_eq!(fetch.slowest_1pct_median_ms, 99.6);
        assert_eq!(by("prediction built").p999_ms, 2.0);
        assert_eq!(by("appended → received").p50_ms, 0.5);
        assert_eq!(by("total").max_ms, 104.8);
        assert_eq!(by("actual send").max_ms, 103.8);
        // Appended at 2 ms, prediction appended 2 ms after built.
        assert_eq!(by("the worker's part").max_ms, 102.3);
    }
}
