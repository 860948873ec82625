//! The `argus drift watch` child process of stage 3: start/stop, its /metrics scraped over
//! plain HTTP, and CPU counters that include it.
use crate::error::{runtime, BenchError};
use crate::harness::cpu::{cpu_snapshot, stat_ticks, TICKS_PER_S};
use argus_drift::metrics as dm;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// CPU counters at one instant.
#[derive(Debug, Clone)]
pub(super) struct Snap {
    pub bench: Option<u64>,
    pub broker: Option<u64>,
    pub sidecar: Option<u64>,
    pub machine: Option<(u64, u64)>,
}

impl Snap {
    pub(super) fn now(brokers: &[u32], sidecar: Option<u32>) -> Self {
        let ticks = |pid: u32| stat_ticks(&format!("/proc/{pid}")).map(|t| t.1);
        Snap {
            bench: stat_ticks("/proc/self").map(|t| t.1),
            broker: (!brokers.is_empty()).then(|| brokers.iter().filter_map(|p| ticks(*p)).sum()),
            sidecar: sidecar.and_then(ticks),
            machine: cpu_snapshot(),
        }
    }
}

pub(super) fn secs(a: Option<u64>, b: Option<u64>) -> Option<f64> {
    Some(b?.saturating_sub(a?) as f64 / TICKS_PER_S)
}

/// A running `argus drift watch` child process; killed if dropped while running.
#[derive(Debug)]
pub(super) struct Sidecar {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    pub input: String,
    pub predictions: String,
}

impl Sidecar {
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(super) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM (graceful), then SIGKILL after 15 s.
    pub(super) fn stop(&mut self) {
        if !self.running() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the sidecar's /metrics said.
#[derive(Debug, Clone, Default)]
pub(super) struct SidecarMetrics {
    pub input_read: u64,
    pub input_sampled: u64,
    pub predictions_read: u64,
    pub eval_count: u64,
    pub eval_sum_seconds: f64,
}

pub(super) fn scrape(port: u16) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.contains("HTTP/1").then_some(body)
}

pub(super) fn parse_metrics(text: &str, input: &str, predictions: &str) -> SidecarMetrics {
    let mut m = SidecarMetrics::default();
    for line in text.lines() {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        if key
            .strip_prefix(dm::RECORDS)
            .is_some_and(|l| l.starts_with('{'))
        {
            let n = v as u64;
            if key.contains(&format!("topic=\"{input}\"")) {
                m.input_read += n;
                if key.contains("outcome=\"sampled\"") {
                    m.input_sampled += n;
                }
            } else if key.contains(&format!("topic=\"{predictions}\"")) {
                m.predictions_read += n;
            }
        } else if key.strip_prefix(dm::EVAL_SECONDS) == Some("_count") {
            m.eval_count = v as u64;
        } else if key.strip_prefix(dm::EVAL_SECONDS) == Some("_sum") {
            m.eval_sum_seconds = v;
        }
    }
    m
}

pub(super) async fn sidecar_metrics(s: &Sidecar) -> Option<SidecarMetrics> {
    let (port, input, predictions) = (s.port, s.input.clone(), s.predictions.clone());
    tokio::task::spawn_blocking(move || {
        scrape(port).map(|t| parse_metrics(&t, &input, &predictions))
    })
    .await
    .ok()
    .flatten()
}

pub(super) fn free_port() -> Result<u16, BenchError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(runtime)?;
    Ok(l.local_addr().map_err(runtime)?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_parses() {
        let (r, e) = (dm::RECORDS, dm::EVAL_SECONDS);
        let text = format!(
            "{r}{{topic=\"in\",outcome=\"sampled\"}} 12\n\
             {r}{{topic=\"in\",outcome=\"skipped\"}} 30\n\
             {r}{{topic=\"pred\",outcome=\"sampled\"}} 7\n\
             {e}_sum 0.5\n\
             {e}_count 4\n"
        );
        let m = parse_metrics(&text, "in", "pred");
        assert_eq!(m.input_read, 42);
        assert_eq!(m.input_sampled, 12);
        assert_eq!(m.predictions_read, 7);
        assert_eq!(m.eval_count, 4);
        assert!((m.eval_sum_seconds - 0.5).abs() < 1e-12);
    }
}
