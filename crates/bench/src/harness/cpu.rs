//! CPU time from /proc (Linux): the whole machine, this process and its threads, and the
//! local Kafka broker, so a rate is reported with what it cost and whether other processes
//! competed for the machine meanwhile; [`quiet_machine`] waits for other processes to calm down.
use serde::Serialize;
use std::time::{Duration, Instant};

/// (busy, total) jiffies of the whole machine from the first line of /proc/stat (Linux).
pub fn cpu_snapshot() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The unit of CPU times in /proc (`USER_HZ`, 100 on every Linux the project targets).
pub const TICKS_PER_S: f64 = 100.0;

/// utime + stime of one process (all its threads, also those that have exited) or, with a
/// `/proc/<pid>/task/<tid>` path, of one thread, in ticks.
pub fn stat_ticks(dir: &str) -> Option<(String, u64)> {
    parse_stat(&std::fs::read_to_string(format!("{dir}/stat")).ok()?)
}

/// (name, utime + stime) from the text of a /proc stat file.
pub fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    // After the name: state is field 3, utime field 14, stime field 15.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Local Kafka broker processes: `--broker-pid`, or every process whose command line has
/// the argument `kafka.Kafka` (the broker's main class).
pub fn broker_pids(pinned: Option<u32>) -> Vec<u32> {
    if let Some(pid) = pinned {
        return vec![pid];
    }
    let own = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"kafka.Kafka"))
        })
        .collect()
}

/// CPU counters at one instant.
#[derive(Debug, Clone)]
pub struct CpuMark {
    pub at: Instant,
    pub bench: Option<u64>,
    /// (pid, ticks) per broker process.
    pub brokers: Vec<(u32, u64)>,
    /// (busy, total) ticks of the whole machine.
    pub machine: Option<(u64, u64)>,
}

impl CpuMark {
    pub fn now(broker_pid: Option<u32>) -> Self {
        let brokers = broker_pids(broker_pid)
            .into_iter()
            .filter_map(|pid| Some((pid, stat_ticks(&format!("/proc/{pid}"))?.1)))
            .collect();
        CpuMark {
            at: Instant::now(),
            bench: stat_ticks("/proc/self").map(|(_, t)| t),
            brokers,
            machine: cpu_snapshot(),
        }
    }

    /// CPU used from `self` to `end`, per input for `inputs` inputs.
    pub fn until(&self, end: &CpuMark, inputs: u64) -> CpuUse {
        let secs = |a: u64, b: u64| b.saturating_sub(a) as f64 / TICKS_PER_S;
        let per_input = |s: Option<f64>| s.map(|s| s * 1e3 / inputs.max(1) as f64);
        let bench = self.bench.zip(end.bench).map(|(a, b)| secs(a, b));
        // Only processes seen at both ends (a broker restarted meanwhile is not counted).
        let pairs: Vec<(u64, u64)> = self
            .brokers
            .iter()
            .filter_map(|(pid, a)| {
                let b = end.brokers.iter().find(|(p, _)| p == pid)?.1;
                Some((*a, b))
            })
            .collect();
        let broker = (!pairs.is_empty()).then(|| pairs.iter().map(|&(a, b)| secs(a, b)).sum());
        let machine = self
            .machine
            .zip(end.machine)
            .and_then(|((b0, t0), (b1, t1))| {
                let total = t1.checked_sub(t0).filter(|t| *t > 0)?;
                Some((secs(b0, b1), total as f64 / TICKS_PER_S))
            });
        let other = machine.map(|(busy, _)| busy - bench.unwrap_or(0.0) - broker.unwrap_or(0.0));
        CpuUse {
            wall_seconds: (end.at - self.at).as_secs_f64(),
            inputs,
            bench_process_cpu_seconds: bench,
            bench_process_cpu_ms_per_input: per_input(bench),
            broker_pids: self.brokers.iter().map(|(p, _)| *p).collect(),
            broker_cpu_seconds: broker,
            broker_cpu_ms_per_input: per_input(broker),
            other_cpu_seconds: other,
            other_cpu_ms_per_input: per_input(other),
            machine_cpu_seconds: machine.map(|(_, total)| total),
            machine_idle: machine.map(|(busy, total)| (1.0 - busy / total).max(0.0)),
        }
    }
}

/// CPU time used over one timed stage.
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    pub wall_seconds: f64,
    pub inputs: u64,
    /// utime + stime of the bench process (/proc/self/stat).
    pub bench_process_cpu_seconds: Option<f64>,
    pub bench_process_cpu_ms_per_input: Option<f64>,
    /// Local broker processes measured (empty: none found).
    pub broker_pids: Vec<u32>,
    pub broker_cpu_seconds: Option<f64>,
    pub broker_cpu_ms_per_input: Option<f64>,
    /// Machine busy time not accounted to the bench or the broker: other processes, and
    /// interrupt time the kernel charges to no process.
    pub other_cpu_seconds: Option<f64>,
    pub other_cpu_ms_per_input: Option<f64>,
    /// CPU time the machine had (wall time × cores), from /proc/stat.
    pub machine_cpu_seconds: Option<f64>,
    pub machine_idle: Option<f64>,
}

impl CpuUse {
    /// CPU seconds per wall second: cores used on average.
    pub fn cores(&self, seconds: Option<f64>) -> Option<f64> {
        seconds
            .filter(|_| self.wall_seconds > 0.0)
            .map(|s| s / self.wall_seconds)
    }

    /// A warning when processes other than the bench and the broker used more than a tenth
    /// of the machine: rates measured meanwhile are not comparable with a quiet machine's.
    pub fn contention(&self) -> Option<String> {
        let (other, machine) = (self.other_cpu_seconds?, self.machine_cpu_seconds?);
        (other > 0.1 * machine).then(|| {
            format!(
                "WARNING: other processes used {:.0}% of the machine meanwhile; this rate is not comparable with a quiet machine's",
                100.0 * other / machine
            )
        })
    }

    pub fn line(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.2}"));
        let broker = if self.broker_pids.is_empty() {
            "n/a (no local kafka.Kafka process found)".to_string()
        } else {
            ms(self.broker_cpu_ms_per_input)
        };
        format!(
            "CPU-ms per input: bench process {}, broker {}, other {}; machine idle {} (over {:.2} s wall)",
            ms(self.bench_process_cpu_ms_per_input),
            broker,
            ms(self.other_cpu_ms_per_input),
            percent(self.machine_idle),
            self.wall_seconds
        )
    }
}

/// CPU time of the bench process's threads over a stage, grouped by name.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadGroup {
    /// Thread name with trailing digits replaced by `*` (`argus-worker` is the worker's
    /// tokio runtime: its workers and its blocking pool, where it decodes; `argus-infer-*`
    /// the model threads; `rdk:*` librdkafka's; `argus-bench-rt` the bench's runtime).
    pub name: String,
    pub threads: usize,
    pub cpu_seconds: f64,
    pub cpu_ms_per_input: f64,
    /// Of the whole process's CPU over the stage (threads that exited meanwhile are missing).
    pub share: f64,
    /// CPU seconds of the busiest threads of this group, most first (at most 4).
    pub busiest: Vec<f64>,
}

/// Each live thread of the process: (tid, name, CPU ticks so far).
pub type ThreadSample = Vec<(u32, String, u64)>;

/// (tid, name, ticks) of every live thread of this process.
pub fn thread_ticks() -> ThreadSample {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let tid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let (name, ticks) = stat_ticks(&format!("/proc/self/task/{tid}"))?;
        Some((tid, name, ticks))
    })
    .collect()
}

pub fn thread_groups(
    before: &[(u32, String, u64)],
    after: &[(u32, String, u64)],
    inputs: u64,
) -> Vec<ThreadGroup> {
    let mut groups: Vec<(String, Vec<f64>)> = Vec::new();
    for (tid, name, ticks) in after {
        let start = before
            .iter()
            .find(|(t, n, _)| t == tid && n == name)
            .map_or(0, |b| b.2);
        let secs = ticks.saturating_sub(start) as f64 / TICKS_PER_S;
        let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let key = if base.len() < name.len() {
            format!("{base}*")
        } else {
            name.clone()
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(secs),
            None => groups.push((key, vec![secs])),
        }
    }
    let total: f64 = groups.iter().flat_map(|(_, v)| v).sum();
    let mut out: Vec<ThreadGroup> = groups
        .into_iter()
        .map(|(name, mut v)| {
            v.sort_by(|a, b| b.total_cmp(a));
            let cpu: f64 = v.iter().sum();
            ThreadGroup {
                name,
                threads: v.len(),
                cpu_seconds: cpu,
                cpu_ms_per_input: cpu * 1e3 / inputs.max(1) as f64,
                share: if total > 0.0 { cpu / total } else { 0.0 },
                busiest: v.into_iter().take(4).collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.cpu_seconds.total_cmp(&a.cpu_seconds));
    out
}

/// Busy fraction of the machine between two snapshots.
pub fn cpu_busy(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<f64> {
    let ((busy0, total0), (busy1, total1)) = (a?, b?);
    let total = total1.checked_sub(total0).filter(|t| *t > 0)?;
    Some(busy1.saturating_sub(busy0) as f64 / total as f64)
}

pub fn percent(f: Option<f64>) -> String {
    f.map_or_else(|| "n/a".into(), |f| format!("{:.0}%", f * 100.0))
}

/// Waits until the machine has been ≥ 85% idle for 2 s (sampled every 250 ms), at most
/// `limit`; returns the time waited and whether it got quiet.
pub async fn quiet_machine(limit: Duration) -> (f64, bool) {
    let start = Instant::now();
    if limit.is_zero() {
        return (0.0, true);
    }
    let mut quiet_since: Option<Instant> = None;
    let mut last = cpu_snapshot();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = cpu_snapshot();
        let idle = cpu_busy(last, now).is_some_and(|b| b <= 0.15);
        last = now;
        match (idle, quiet_since) {
            (true, None) => quiet_since = Some(Instant::now()),
            (true, Some(t)) if t.elapsed() >= Duration::from_secs(2) => {
                return (start.elapsed().as_secs_f64(), true)
            }
            (false, _) => quiet_since = None,
            _ => {}
        }
        if start.elapsed() >= limit {
            return (start.elapsed().as_secs_f64(), false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_despite_odd_names() {
        let line = "17215 (java) S 1 17215 17215 0 -1 4194304 103352 0 30 0 1073 136 0 0 20 0 96";
        assert_eq!(parse_stat(line), Some(("java".to_string(), 1209)));
        let odd = "42 (rdk:broker) 1)) R 1 2 3 0 -1 0 0 0 0 0 7 5 0 0";
        assert_eq!(parse_stat(odd), Some(("rdk:broker) 1)".to_string(), 12)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn threads_group_by_name_without_trailing_digits() {
        let before = vec![
            (1, "argus".to_string(), 10),
            (2, "rdk:broker1".to_string(), 5),
        ];
        let after = vec![
            (1, "argus".to_string(), 110),
            (2, "rdk:broker1".to_string(), 15),
            (3, "rdk:broker2".to_string(), 40),
        ];
        let g = thread_groups(&before, &after, 100);
        assert_eq!(g[0].name, "argus");
        assert!((g[0].cpu_seconds - 1.0).abs() < 1e-9);
        assert_eq!(g[1].name, "rdk:broker*");
        assert_eq!(g[1].threads, 2);
        assert!((g[1].cpu_seconds - 0.5).abs() < 1e-9);
        assert!((g[1].cpu_ms_per_input - 5.0).abs() < 1e-9);
    }
}
