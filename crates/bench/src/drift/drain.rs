//! One drain of stage 3: a fresh worker (and, for a sidecar variant, a fresh `argus drift
//! watch` child) on the pre-filled topic, timed from the worker's first consumed input; the
//! sidecar is then given time to catch up so its whole cost is charged to the run.
use super::sidecar::{free_port, secs, sidecar_metrics, Sidecar, SidecarMetrics, Snap};
use super::throughput::{variant_name, DrainRun, RunTopics, Stage3};
use crate::error::{runtime, BenchError};
use crate::harness::cores;
use crate::harness::cpu::quiet_machine;
use crate::harness::kafka::{finished, wait_until, BenchWorker};
use argus_kafka::TopicSpec;
use argus_worker::{AlertRule, WorkerConfig, WorkerStats};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Stage3<'_> {
    fn start_worker(
        &self,
        tag: &str,
        topics: &RunTopics,
        stats: Arc<WorkerStats>,
    ) -> Result<BenchWorker, BenchError> {
        // As `argus-bench worker` stage 3 starts it: `argus work`'s defaults, one alert rule.
        let worker_id = format!("argus-drift-bench-worker-{tag}");
        let mut config = WorkerConfig::new(worker_id, vec![self.input.clone()]);
        config.topics = argus_worker::OutputTopics {
            predictions: topics.predictions.clone(),
            alerts: topics.alerts.clone(),
            dlq: topics.dlq.clone(),
            ..Default::default()
        };
        if self.model.labels().iter().any(|l| l == "person") {
            config.rules = vec![AlertRule {
                name: "person".into(),
                label: "person".into(),
                threshold: 0.5,
            }];
        }
        let group = format!("argus-drift-bench-{tag}");
        BenchWorker::start(config, &self.settings, &group, self.model.clone(), stats)
    }

    fn spawn_sidecar(
        &self,
        tag: &str,
        topics: &RunTopics,
        max_fps: f64,
    ) -> Result<Sidecar, BenchError> {
        let port = free_port()?;
        let log = self.dir.join(format!("sidecar-{tag}.log"));
        let file = std::fs::File::create(&log).map_err(runtime)?;
        let err = file.try_clone().map_err(runtime)?;
        let mut cmd = Command::new(&self.argus);
        cmd.args(["drift", "watch", "--brokers", &self.settings.brokers])
            .arg("--profile")
            .arg(&self.profile)
            .args([
                "--input",
                &self.input,
                "--predictions",
                &topics.predictions,
                "--reports-topic",
                &topics.reports,
                "--panes-topic",
                &topics.panes,
                "--group",
                &format!("argus-drift-bench-sidecar-{tag}"),
                "--sidecar-id",
                &format!("drift-bench-{tag}"),
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
                "--max-fps",
                &max_fps.to_string(),
            ]);
        for (k, v) in &self.settings.options {
            cmd.arg("-X").arg(format!("{k}={v}"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| runtime(format!("cannot start {}: {e}", self.argus.display())))?;
        Ok(Sidecar {
            child,
            port,
            log,
            input: self.input.clone(),
            predictions: topics.predictions.clone(),
        })
    }

    /// One drain of the pre-filled topic by a fresh worker, with or without a sidecar.
    pub(super) async fn drain(
        &mut self,
        index: usize,
        round: usize,
        max_fps: Option<f64>,
    ) -> Result<DrainRun, BenchError> {
        let tag = format!("{}-{index}", self.run_id);
        let topics = self.run_topics(&tag, max_fps.is_some()).await?;
        let (quiet_wait_seconds, quiet) = quiet_machine(self.args.quiet_wait).await;
        // The sidecar and the worker are started together; the worker is timed from its first
        // consumed input, as in `argus-bench worker`.
        let mut sidecar = match max_fps {
            Some(f) => Some(self.spawn_sidecar(&tag, &topics, f)?),
            None => None,
        };
        let before_sidecar = Snap::now(&self.brokers, sidecar.as_ref().map(Sidecar::pid));
        let stats = Arc::new(WorkerStats::default());
        let mut worker = Some(self.start_worker(&tag, &topics, stats.clone())?);
        let t = Instant::now();
        let mut result = self
            .drain_timed(&mut worker, &mut sidecar, &stats, t, round, max_fps)
            .await;
        if let (Ok(run), Some(s)) = (result.as_mut(), sidecar.as_mut()) {
            if let Err(e) = self.sidecar_tail(run, s, &before_sidecar).await {
                result = Err(e);
            }
        }
        if let Some(w) = worker.take() {
            w.stop().await;
        }
        if let Some(mut s) = sidecar.take() {
            tokio::task::spawn_blocking(move || s.stop())
                .await
                .map_err(runtime)?;
        }
        result.map(|mut r| {
            r.quiet_wait_seconds = quiet_wait_seconds;
            r.quiet = quiet;
            r
        })
    }

    /// Names the run's topics, creates the worker's (the sidecar creates its own) and
    /// remembers them all for deletion.
    async fn run_topics(&mut self, tag: &str, sidecar: bool) -> Result<RunTopics, BenchError> {
        let base = format!("argus-drift-bench-{tag}");
        let topics = RunTopics {
            predictions: format!("{base}.predictions"),
            alerts: format!("{base}.alerts"),
            dlq: format!("{base}.dlq"),
            panes: format!("{base}.panes"),
            reports: format!("{base}.reports"),
        };
        self.topics.extend([
            topics.predictions.clone(),
            topics.alerts.clone(),
            topics.dlq.clone(),
        ]);
        if sidecar {
            self.topics
                .extend([topics.panes.clone(), topics.reports.clone()]);
        }
        argus_kafka::ensure_topics(
            &self.settings,
            &[
                TopicSpec::new(&topics.predictions, 4),
                TopicSpec::new(&topics.alerts, 4),
                TopicSpec::new(&topics.dlq, 1),
            ],
        )
        .await
        .map_err(runtime)?;
        Ok(topics)
    }

    /// Waits for the worker to join, then times its drain of `--frames` frames.
    async fn drain_timed(
        &mut self,
        worker: &mut Option<BenchWorker>,
        sidecar: &mut Option<Sidecar>,
        stats: &WorkerStats,
        t: Instant,
        round: usize,
        max_fps: Option<f64>,
    ) -> Result<DrainRun, BenchError> {
        let frames = self.args.frames;
        let sidecar_pid = sidecar.as_ref().map(Sidecar::pid);
        self.wait(
            worker,
            sidecar,
            Duration::from_secs(60),
            "the worker to join",
            || stats.consumed.load(Ordering::Relaxed) >= 1,
        )
        .await?;
        let first = Instant::now();
        let start = Snap::now(&self.brokers, sidecar_pid);
        let at_start = match sidecar.as_ref() {
            Some(s) => sidecar_metrics(s).await,
            None => None,
        };
        let limit = Duration::from_secs(60 + frames / 50);
        self.wait(
            worker,
            sidecar,
            limit,
            "the worker to drain the topic",
            || finished(stats) >= frames,
        )
        .await?;
        let last = Instant::now();
        let end = Snap::now(&self.brokers, sidecar_pid);
        let seconds = (last - first).as_secs_f64();
        let predicted = stats.predicted.load(Ordering::Relaxed);
        let mut run = DrainRun {
            round,
            variant: variant_name(max_fps),
            max_fps,
            frames,
            group_join_seconds: (first - t).as_secs_f64(),
            seconds,
            frames_per_s: frames as f64 / seconds,
            predicted,
            not_predicted: finished(stats).saturating_sub(predicted),
            pauses: stats.pauses.load(Ordering::Relaxed),
            worker_process_cpu_seconds: secs(start.bench, end.bench),
            broker_cpu_seconds: secs(start.broker, end.broker),
            sidecar_cpu_seconds: secs(start.sidecar, end.sidecar),
            machine_busy: crate::harness::cpu::cpu_busy(start.machine, end.machine),
            other_cpu_seconds: None,
            contended: false,
            quiet_wait_seconds: 0.0,
            quiet: true,
            sidecar_cpu_total_seconds: None,
            sidecar_cpu_ms_per_frame: None,
            sidecar_input_read_at_start: at_start.as_ref().map(|m| m.input_read),
            sidecar_input_read_at_end: None,
            sidecar_predictions_read_at_end: None,
            sidecar_frames_analysed: None,
            sidecar_catch_up_seconds: None,
            sidecar_caught_up: None,
            sidecar_windows_evaluated: None,
            sidecar_eval_mean_ms: None,
            sidecar_log_warnings: None,
            sidecar_log_partition_eof_errors: None,
        };
        let cores = cores() as f64;
        run.other_cpu_seconds = run.machine_busy.map(|b| {
            b * seconds * cores
                - run.worker_process_cpu_seconds.unwrap_or(0.0)
                - run.broker_cpu_seconds.unwrap_or(0.0)
                - run.sidecar_cpu_seconds.unwrap_or(0.0)
        });
        run.contended = run
            .other_cpu_seconds
            .is_some_and(|o| o > 0.1 * seconds * cores);
        Ok(run)
    }

    /// After the drain: lets the sidecar finish reading what the worker produced (30 s at
    /// most), to charge it its whole cost, and reads its metrics and log.
    async fn sidecar_tail(
        &self,
        run: &mut DrainRun,
        s: &mut Sidecar,
        before_sidecar: &Snap,
    ) -> Result<(), BenchError> {
        let (frames, predicted) = (run.frames, run.predicted);
        let at_end = sidecar_metrics(s).await;
        run.sidecar_input_read_at_end = at_end.as_ref().map(|m| m.input_read);
        run.sidecar_predictions_read_at_end = at_end.as_ref().map(|m| m.predictions_read);
        let caught = |m: &SidecarMetrics| m.input_read >= frames && m.predictions_read >= predicted;
        let mut latest = at_end;
        let wait_from = Instant::now();
        let deadline = wait_from + Duration::from_secs(30);
        let mut waited = false;
        while !latest.as_ref().is_some_and(caught) && Instant::now() < deadline && s.running() {
            waited = true;
            tokio::time::sleep(Duration::from_millis(250)).await;
            latest = sidecar_metrics(s).await;
        }
        let done = Snap::now(&self.brokers, Some(s.pid()));
        run.sidecar_caught_up = latest.as_ref().map(caught);
        if waited {
            run.sidecar_catch_up_seconds = Some(wait_from.elapsed().as_secs_f64());
        }
        run.sidecar_cpu_total_seconds = secs(before_sidecar.sidecar.or(Some(0)), done.sidecar);
        run.sidecar_cpu_ms_per_frame = run
            .sidecar_cpu_total_seconds
            .map(|c| c * 1e3 / frames as f64);
        run.sidecar_frames_analysed = latest.as_ref().map(|m| m.input_sampled);
        run.sidecar_windows_evaluated = latest.as_ref().map(|m| m.eval_count);
        run.sidecar_eval_mean_ms = latest
            .as_ref()
            .filter(|m| m.eval_count > 0)
            .map(|m| m.eval_sum_seconds * 1e3 / m.eval_count as f64);
        if !s.running() {
            return Err(runtime(format!(
                "the sidecar exited during the run; see {}",
                s.log.display()
            )));
        }
        if let Ok(text) = std::fs::read_to_string(&s.log) {
            let bad: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            let eof = bad.iter().filter(|l| l.contains("PartitionEOF")).count();
            run.sidecar_log_warnings = Some(bad.len() - eof);
            run.sidecar_log_partition_eof_errors = Some(eof);
        }
        Ok(())
    }

    /// Polls `done` every millisecond; fails on timeout, Ctrl-C, or if the worker or the
    /// sidecar stopped.
    async fn wait(
        &self,
        worker: &mut Option<BenchWorker>,
        sidecar: &mut Option<Sidecar>,
        limit: Duration,
        what: &str,
        done: impl Fn() -> bool,
    ) -> Result<(), BenchError> {
        let check = || match sidecar.as_mut() {
            Some(s) => {
                if s.running() {
                    Ok(())
                } else {
                    Err(runtime(format!(
                        "the sidecar exited; see {}",
                        s.log.display()
                    )))
                }
            }
            None => Ok(()),
        };
        wait_until(worker, &self.interrupted, limit, what, done, check)
            .await
            .map(|_| ())
    }
}
