//! Video sources: a file, an RTSP camera, MJPEG over HTTP or a snapshot URL, decoded by
//! `ffmpeg` run as a subprocess and read as JPEG frames.
//!
//! ffmpeg samples the stream at `fps` (`-vf fps=F`, optionally scaled down) and writes
//! JPEGs to its stdout (`-f image2pipe -c:v mjpeg -q:v N`); [`split::JpegSplitter`] cuts
//! the bytes into frames and [`VideoReader::next_frame`] makes each one an envelope keyed
//! by the camera id. One code path serves every input:
//! - a file (`-re` to read it at its own speed with `realtime`, `-stream_loop -1` with
//!   `looped`); a file that ends ends the source;
//! - an RTSP URL (`-rtsp_transport tcp|udp -timeout <stall>`);
//! - MJPEG over HTTP (`--format mjpeg`: `-f mjpeg`, with the wall clock as timestamps, as
//!   such streams carry none and ffmpeg would otherwise assume 25 frames/s);
//! - a snapshot URL, one JPEG per GET (`--format snapshot`), polled by ffmpeg itself: the
//!   image2 demuxer looping over the URL (`-f image2 -loop 1 -framerate F -re`) issues one
//!   GET per frame. Simpler than an HTTP client of our own (HTTPS, redirects, auth in the
//!   URL, PNG cameras all work) and its failures take the same restart path;
//! - any other URL ffmpeg reads (HLS, RTMP, SRT, …), as it detects it.
//!
//! **Capture time** comes from the stream's clock, not from when a frame was read: a run
//! of ffmpeg starts a clock at the wall time its first frame arrives, and frame `k` of
//! that run is stamped `start + k / fps` ([`capture_time_us`]; the fps filter makes the
//! output constant-rate, so `k / fps` is the frame's pts). Frames read in a burst (a
//! stalled pipe, a file read faster than real time) keep their spacing. The clock starts
//! again at each restart, so drift between a camera's clock and ours never accumulates
//! over more than one connection. A file read without `realtime` is decoded as fast as
//! ffmpeg goes, so its stamps run ahead of the wall clock (video time laid from the start).
//!
//! **Restarts**: when ffmpeg exits, or no frame came for `stall`, on a live input (a URL,
//! a snapshot) or a looped file, it is started again after an exponential [`Backoff`]
//! (reset by the next frame), counted in [`crate::metrics::SOURCE_RECONNECTS`] and logged
//! as a warning with the reason and ffmpeg's last stderr lines. A missing ffmpeg or a
//! local file that does not exist is an error at once; a file ffmpeg cannot read is an
//! error when ffmpeg exits.
pub mod split;

use crate::source::Frame;
use argus_wire::{now_us, Envelope, ImageFormat, Payload, SCHEMA_VERSION};
use split::JpegSplitter;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::Instant;

/// Frames larger than this are dropped by the splitter (a 4K JPEG at high quality is a few
/// MB; the message size limit refuses far smaller ones anyway).
const MAX_FRAME_BYTES: usize = 32 << 20;
/// ffmpeg stderr lines kept for the log when it exits.
const STDERR_LINES: usize = 20;

/// Exponential backoff between restarts: `initial`, doubling, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 0.5 s doubling up to 30 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before restart number `attempt` (0 for the first since the last frame).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2f64.powi(i32::try_from(attempt.min(60)).unwrap_or(60));
        self.initial.mul_f64(factor).min(self.max)
    }
}

/// RTSP transport (`-rtsp_transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection: works through NAT and firewalls (default).
    #[default]
    Tcp,
    /// RTP over UDP: lower latency on a clean LAN, loses frames on a lossy one.
    Udp,
}

impl RtspTransport {
    /// ffmpeg's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
        }
    }
}

impl std::str::FromStr for RtspTransport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(RtspTransport::Tcp),
            "udp" => Ok(RtspTransport::Udp),
            _ => Err(format!("RTSP transport {s:?}: expected tcp or udp")),
        }
    }
}

/// What the input's bytes are, when ffmpeg cannot tell or must be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VideoFormat {
    /// Let ffmpeg detect it (files, RTSP, HLS, …).
    #[default]
    Auto,
    /// A stream of JPEGs, e.g. an HTTP `multipart/x-mixed-replace` camera stream.
    Mjpeg,
    /// One JPEG per read: a snapshot URL (or a file some other program rewrites), polled at
    /// `fps`.
    Snapshot,
}

impl std::str::FromStr for VideoFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(VideoFormat::Auto),
            "mjpeg" => Ok(VideoFormat::Mjpeg),
            "snapshot" => Ok(VideoFormat::Snapshot),
            _ => Err(format!(
                "video format {s:?}: expected auto, mjpeg or snapshot"
            )),
        }
    }
}

/// Where the input's bytes come from, by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A local path (no `scheme://`).
    File,
    /// `rtsp://` or `rtsps://`.
    Rtsp,
    /// `http://` or `https://`.
    Http,
    /// Another URL ffmpeg reads (`rtmp://`, `srt://`, `udp://`, …).
    OtherUrl,
}

/// A video input decoded by ffmpeg into JPEG frames of one camera. Build with
/// [`VideoSource::new`], adjust the fields, [`check`](Self::check), then
/// [`open`](Self::open).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoSource {
    /// A path or a URL.
    pub input: String,
    /// Camera id: the Kafka key and `source_id` of every frame.
    pub camera: String,
    /// Frames per second sampled from the stream (`-vf fps=F`); default 5.
    pub fps: f64,
    /// Files: read at the video's own speed (`-re`) rather than as fast as ffmpeg decodes.
    /// URLs are live anyway.
    pub realtime: bool,
    /// Files: start again at the end (`-stream_loop -1`).
    pub looped: bool,
    /// Only the first `duration` of the input (`-t`); mostly for tests and samples.
    pub duration: Option<Duration>,
    /// What the input is, when ffmpeg must be told ([`VideoFormat`]).
    pub format: VideoFormat,
    /// Delay between restarts of ffmpeg.
    pub reconnect: Backoff,
    /// No frame for this long: ffmpeg is restarted (live inputs, looped files) or the
    /// source fails (a file); also ffmpeg's socket timeout. Default 10 s.
    pub stall: Duration,
    /// JPEG quality as ffmpeg's `-q:v`: 2 (best, largest) to 31 (smallest); default 5.
    pub jpeg_qscale: u8,
    /// The ffmpeg binary; default `ffmpeg` (found on `PATH`).
    pub ffmpeg: PathBuf,
    /// RTSP transport; default TCP.
    pub rtsp_transport: RtspTransport,
    /// Scale frames wider than this down to it, keeping the aspect ratio.
    pub max_width: Option<u32>,
    /// Scale frames taller than this down to it, keeping the aspect ratio.
    pub max_height: Option<u32>,
}

impl VideoSource {
    /// `input` as camera `camera` with the defaults.
    pub fn new(input: impl Into<String>, camera: impl Into<String>) -> VideoSource {
        VideoSource {
            input: input.into(),
            camera: camera.into(),
            fps: 5.0,
            realtime: false,
            looped: false,
            duration: None,
            format: VideoFormat::Auto,
            reconnect: Backoff::default(),
            stall: Duration::from_secs(10),
            jpeg_qscale: 5,
            ffmpeg: PathBuf::from("ffmpeg"),
            rtsp_transport: RtspTransport::Tcp,
            max_width: None,
            max_height: None,
        }
    }

    /// Where the input comes from, by its scheme.
    pub fn kind(&self) -> InputKind {
        let lower = self.input.to_ascii_lowercase();
        if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
            InputKind::Rtsp
        } else if lower.starts_with("http://") || lower.starts_with("https://") {
            InputKind::Http
        } else if lower.contains("://") {
            InputKind::OtherUrl
        } else {
            InputKind::File
        }
    }

    /// Whether the input is live: its end is an outage to recover from, not the end of
    /// the source (a URL, a polled snapshot, or a looped file).
    pub fn restarts(&self) -> bool {
        self.kind() != InputKind::File || self.format == VideoFormat::Snapshot || self.looped
    }

    /// Whether frames come at the stream's pace (a URL, a snapshot, a file read in real
    /// time) rather than as fast as ffmpeg decodes a file.
    pub fn paced(&self) -> bool {
        self.kind() != InputKind::File || self.format == VideoFormat::Snapshot || self.realtime
    }

    /// Cross-field checks; the message says what to fix.
    pub fn check(&self) -> Result<(), String> {
        if self.input.is_empty() {
            return Err("video input is empty: give a file path or a URL".into());
        }
        if self.camera.is_empty() {
            return Err("video source needs a camera id (--camera), the Kafka key".into());
        }
        if !self.fps.is_finite() || self.fps <= 0.0 || self.fps > 1000.0 {
            return Err(format!("video --fps {} must be > 0 and ≤ 1000", self.fps));
        }
        if !(2..=31).contains(&self.jpeg_qscale) {
            return Err(format!(
                "video JPEG quality (ffmpeg -q:v) {} must be within 2 (best) ..= 31 (smallest)",
                self.jpeg_qscale
            ));
        }
        let period = Duration::from_secs_f64(1.0 / self.fps);
        if self.stall < period * 2 {
            return Err(format!(
                "video stall timeout {:?} must be at least two frame periods ({:?} at {} fps)",
                self.stall,
                period * 2,
                self.fps
            ));
        }
        if self.reconnect.initial.is_zero() || self.reconnect.max < self.reconnect.initial {
            return Err("video reconnect backoff needs 0 < initial ≤ max".into());
        }
        if self.max_width == Some(0) || self.max_height == Some(0) {
            return Err("video max width/height must be > 0".into());
        }
        let file = self.kind() == InputKind::File;
        if (self.looped || self.realtime) && !file {
            return Err(format!(
                "--loop and --realtime apply to files; {} is a live URL",
                self.input
            ));
        }
        if self.format == VideoFormat::Snapshot && self.looped {
            return Err("--loop does not apply to a snapshot source (it polls forever)".into());
        }
        if self.rtsp_transport != RtspTransport::Tcp && self.kind() != InputKind::Rtsp {
            return Err("--transport applies to rtsp:// URLs only".into());
        }
        Ok(())
    }

    /// The ffmpeg arguments (without the program) that decode the input into JPEGs on
    /// stdout.
    pub fn ffmpeg_args(&self) -> Vec<OsString> {
        let mut a: Vec<String> = ["-hide_banner", "-loglevel", "error", "-nostdin"]
            .map(String::from)
            .to_vec();
        let kind = self.kind();
        let socket_timeout_us = self.stall.as_micros().to_string();
        match kind {
            InputKind::Rtsp => {
                a.extend([
                    "-rtsp_transport".into(),
                    self.rtsp_transport.as_str().into(),
                    "-timeout".into(),
                    socket_timeout_us,
                ]);
            }
            // The image2 demuxer of a snapshot opens each read itself, without the
            // option (ffmpeg then refuses it): the stall watchdog covers a hung GET.
            InputKind::Http if self.format != VideoFormat::Snapshot => {
                a.extend(["-rw_timeout".into(), socket_timeout_us]);
            }
            InputKind::Http | InputKind::File | InputKind::OtherUrl => {}
        }
        match self.format {
            VideoFormat::Auto => {}
            VideoFormat::Mjpeg => {
                if kind != InputKind::File {
                    // Such streams carry no timestamps: sample them by the wall clock.
                    a.extend(["-use_wallclock_as_timestamps".into(), "1".into()]);
                }
                a.extend(["-f".into(), "mjpeg".into()]);
            }
            VideoFormat::Snapshot => {
                // One read (GET) of the same URL per frame, at fps.
                a.extend(["-re".into(), "-f".into(), "image2".into(), "-loop".into()]);
                a.extend(["1".into(), "-pattern_type".into(), "none".into()]);
                a.extend(["-framerate".into(), format_number(self.fps)]);
            }
        }
        if kind == InputKind::File && self.format != VideoFormat::Snapshot {
            if self.realtime {
                a.push("-re".into());
            }
            if self.looped {
                a.extend(["-stream_loop".into(), "-1".into()]);
            }
        }
        let mut args: Vec<OsString> = a.into_iter().map(OsString::from).collect();
        args.push("-i".into());
        args.push(self.input_arg());
        let mut out: Vec<String> = Vec::new();
        if let Some(d) = self.duration {
            out.extend(["-t".into(), format_number(d.as_secs_f64())]);
        }
        out.extend(["-an".into(), "-vf".into(), self.filter()]);
        out.extend(["-f", "image2pipe", "-c:v", "mjpeg", "-q:v"].map(String::from));
        out.extend([self.jpeg_qscale.to_string(), "-".into()]);
        args.extend(out.into_iter().map(OsString::from));
        args
    }

    /// The input as ffmpeg's `-i` argument: a path that looks like an option or a URL is
    /// prefixed with `file:`.
    fn input_arg(&self) -> OsString {
        if self.kind() == InputKind::File
            && (self.input.starts_with('-') || self.input.contains(':'))
        {
            OsString::from(format!("file:{}", self.input))
        } else {
            OsString::from(&self.input)
        }
    }

    /// `fps=F`, then a scale that only ever shrinks, keeping the aspect ratio.
    fn filter(&self) -> String {
        let fps = format!("fps={}", format_number(self.fps));
        // Quoted: the commas of min() would otherwise split the filter chain.
        let scale = match (self.max_width, self.max_height) {
            (None, None) => return fps,
            (Some(w), None) => format!("scale='min({w},iw)':-2"),
            (None, Some(h)) => format!("scale=-2:'min({h},ih)'"),
            (Some(w), Some(h)) => {
                format!("scale='min({w},iw)':'min({h},ih)':force_original_aspect_ratio=decrease")
            }
        };
        format!("{fps},{scale}")
    }

    /// Checks the configuration and the input (a local file must exist), starts ffmpeg
    /// and returns the reader of its frames. A missing ffmpeg is an error here; a live URL
    /// that cannot be reached yet is retried by the reader. Call within a Tokio runtime
    /// (ffmpeg's stderr is read by a task).
    pub fn open(&self) -> Result<VideoReader, String> {
        self.check()?;
        if self.kind() == InputKind::File && !Path::new(&self.input).exists() {
            return Err(format!("video file {} does not exist", self.input));
        }
        let mut reader = VideoReader {
            source: self.clone(),
            run: None,
            splitter: JpegSplitter::new(MAX_FRAME_BYTES),
            sequence: 0,
            attempt: 0,
            restarts: 0,
            ended: false,
            buf: vec![0; 1 << 16],
        };
        let camera = self.camera.clone();
        metrics::counter!(crate::metrics::SOURCE_RECONNECTS, "camera" => camera.clone())
            .increment(0);
        metrics::counter!(crate::metrics::SOURCE_FRAMES, "camera" => camera).increment(0);
        reader.run = Some(reader.spawn()?);
        Ok(reader)
    }
}

/// The capture time of frame `index` of a run of ffmpeg whose first frame arrived at
/// `start_us`, sampled at `fps`: the stream's clock, see the module doc.
pub fn capture_time_us(start_us: i64, index: u64, fps: f64) -> i64 {
    start_us + (index as f64 * 1e6 / fps).round() as i64
}

/// A number for ffmpeg: `5`, `2.5`.
fn format_number(x: f64) -> String {
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// One run of ffmpeg.
#[derive(Debug)]
struct Running {
    child: Child,
    stdout: ChildStdout,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_task: tokio::task::JoinHandle<()>,
    /// Wall time of its first frame, µs: the start of its clock.
    start_us: Option<i64>,
    /// Frames it delivered.
    frames: u64,
    /// When it started, or its last frame came.
    last_progress: Instant,
}

/// How a run of ffmpeg ended.
#[derive(Debug)]
struct Ended {
    /// What happened: the cause, the exit status, ffmpeg's last stderr lines.
    why: String,
    /// It exited by itself, successfully (the end of a file).
    clean: bool,
}

/// Reads the frames of a [`VideoSource`]: see the module doc.
#[derive(Debug)]
pub struct VideoReader {
    source: VideoSource,
    run: Option<Running>,
    splitter: JpegSplitter,
    sequence: u64,
    /// Restarts since the last frame (the backoff exponent).
    attempt: u32,
    restarts: u64,
    ended: bool,
    buf: Vec<u8>,
}

impl VideoReader {
    /// The source read.
    pub fn source(&self) -> &VideoSource {
        &self.source
    }

    /// Restarts of ffmpeg so far.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// The next frame; `None` when a file (not looped) has ended. Errors end the source:
    /// ffmpeg cannot be started, or a file could not be read to its end.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        loop {
            if self.ended {
                return Ok(None);
            }
            if let Some(jpeg) = self.splitter.next_frame() {
                return Ok(Some(self.frame(jpeg)));
            }
            if self.run.is_none() {
                let run = self.spawn()?;
                self.run = Some(run);
            }
            let Some(run) = self.run.as_mut() else {
                continue;
            };
            let deadline = run.last_progress + self.source.stall;
            let read = tokio::time::timeout_at(deadline, run.stdout.read(&mut self.buf)).await;
            let ended = match read {
                Ok(Ok(n)) if n > 0 => {
                    self.splitter.push(self.buf.get(..n).unwrap_or_default());
                    continue;
                }
                Ok(Ok(_)) => self.stop(false, String::new()).await,
                Ok(Err(e)) => {
                    self.stop(true, format!("reading its output failed: {e}"))
                        .await
                }
                Err(_) => {
                    self.stop(true, format!("no frame for {:?}", self.source.stall))
                        .await
                }
            };
            self.ended_run(ended).await?;
        }
    }

    /// Handles the end of a run: the end of the source, an error, or a restart after the
    /// backoff.
    async fn ended_run(&mut self, ended: Ended) -> Result<(), String> {
        let s = &self.source;
        if !s.restarts() {
            if ended.clean {
                tracing::info!(camera = %s.camera, input = %s.input, frames = self.sequence, "video file ended");
                self.ended = true;
                return Ok(());
            }
            return Err(format!("ffmpeg could not read {}: {}", s.input, ended.why));
        }
        let delay = s.reconnect.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        self.restarts += 1;
        metrics::counter!(crate::metrics::SOURCE_RECONNECTS, "camera" => s.camera.clone())
            .increment(1);
        tracing::warn!(
            camera = %s.camera,
            input = %s.input,
            retry_in = ?delay,
            reason = %ended.why,
            metric = crate::metrics::SOURCE_RECONNECTS,
            "video source restarting ffmpeg"
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// Frame `jpeg` as the next envelope, stamped by the run's clock.
    fn frame(&mut self, jpeg: Vec<u8>) -> Frame {
        let (start_us, index) = match self.run.as_mut() {
            Some(run) => {
                let start = *run.start_us.get_or_insert_with(now_us);
                run.frames += 1;
                run.last_progress = Instant::now();
                (start, run.frames - 1)
            }
            None => (now_us(), 0),
        };
        self.attempt = 0;
        let s = &self.source;
        metrics::counter!(crate::metrics::SOURCE_FRAMES, "camera" => s.camera.clone()).increment(1);
        let sequence = self.sequence;
        self.sequence += 1;
        Frame {
            key: s.camera.clone(),
            envelope: Envelope {
                schema_version: SCHEMA_VERSION,
                source_id: s.camera.clone(),
                sequence,
                capture_time_us: capture_time_us(start_us, index, s.fps),
                payload: Payload::Encoded {
                    format: ImageFormat::Jpeg,
                    bytes: jpeg,
                },
            },
            has_person: None,
        }
    }

    /// Starts ffmpeg.
    fn spawn(&mut self) -> Result<Running, String> {
        let s = &self.source;
        self.splitter.reset();
        let mut cmd = Command::new(&s.ffmpeg);
        cmd.args(s.ffmpeg_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group: a Ctrl-C at the terminal reaches argus, which stops it,
        // rather than ffmpeg too (which would look like a dropped stream).
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "cannot run {}: not found; install ffmpeg (apt-get install ffmpeg) or give its path",
                    s.ffmpeg.display()
                )
            } else {
                format!("cannot run {}: {e}", s.ffmpeg.display())
            }
        })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err("ffmpeg started without its pipes".into());
        };
        let lines = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_LINES)));
        let kept = Arc::clone(&lines);
        let stderr_task = tokio::spawn(async move {
            let mut r = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = r.next_line().await {
                if let Ok(mut l) = kept.lock() {
                    if l.len() == STDERR_LINES {
                        l.pop_front();
                    }
                    l.push_back(line);
                }
            }
        });
        tracing::debug!(camera = %s.camera, args = ?s.ffmpeg_args(), "ffmpeg started");
        Ok(Running {
            child,
            stdout,
            stderr: lines,
            stderr_task,
            start_us: None,
            frames: 0,
            last_progress: Instant::now(),
        })
    }

    /// Stops the current run — killed first with `kill`, else waited for (its stdout
    /// closed: it is exiting) — and says how it ended, `cause` first, with the exit status
    /// and ffmpeg's last stderr lines.
    async fn stop(&mut self, kill: bool, cause: String) -> Ended {
        let Some(mut run) = self.run.take() else {
            return Ended {
                why: "not running".into(),
                clean: false,
            };
        };
        if kill {
            let _ = run.child.start_kill();
        }
        let status = match tokio::time::timeout(Duration::from_secs(5), run.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                let _ = run.child.start_kill();
                run.child.wait().await
            }
        };
        // Its stderr closes with it.
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut run.stderr_task).await;
        let tail: Vec<String> = run
            .stderr
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default();
        let (status, success) = match status {
            Ok(s) => (format!("ffmpeg {s}"), s.success()),
            Err(e) => (format!("waiting for ffmpeg failed: {e}"), false),
        };
        let mut why = if cause.is_empty() {
            status
        } else {
            format!("{cause}; {status}")
        };
        why.push_str(&format!(" after {} frames", run.frames));
        if !tail.is_empty() {
            why.push_str(&format!("; stderr: {}", tail.join(" | ")));
        }
        Ended {
            why,
            clean: !kill && success,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args(s: &VideoSource) -> String {
        s.ffmpeg_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    const TAIL: &str = "-f image2pipe -c:v mjpeg -q:v 5 -";

    #[test]
    fn a_file_is_read_once_by_default_and_looped_in_real_time_on_request() {
        let mut s = VideoSource::new("clips/door.mp4", "door");
        assert_eq!(
            args(&s),
            format!("-hide_banner -loglevel error -nostdin -i clips/door.mp4 -an -vf fps=5 {TAIL}")
        );
        assert!(!s.restarts() && !s.paced());
        s.realtime = true;
        s.looped = true;
        s.fps = 2.5;
        s.duration = Some(Duration::from_millis(2500));
        assert_eq!(
            args(&s),
            format!("-hide_banner -loglevel error -nostdin -re -stream_loop -1 -i clips/door.mp4 -t 2.5 -an -vf fps=2.5 {TAIL}")
        );
        assert!(s.restarts() && s.paced());
        // A path ffmpeg could take for an option or a protocol.
        assert!(args(&VideoSource::new("-x.mp4", "c")).contains("-i file:-x.mp4 "));
        assert!(args(&VideoSource::new("a:b.mp4", "c")).contains("-i file:a:b.mp4 "));
    }

    #[test]
    fn rtsp_gets_its_transport_and_a_socket_timeout() {
        let mut s = VideoSource::new("rtsp://cam.local:554/stream1", "gate");
        s.rtsp_transport = RtspTransport::Udp;
        s.jpeg_qscale = 3;
        assert_eq!(
            args(&s),
            "-hide_banner -loglevel error -nostdin -rtsp_transport udp -timeout 10000000 \
             -i rtsp://cam.local:554/stream1 -an -vf fps=5 -f image2pipe -c:v mjpeg -q:v 3 -"
        );
        assert_eq!(s.kind(), InputKind::Rtsp);
        assert!(s.restarts() && s.paced());
    }

    #[test]
    fn mjpeg_and_snapshot_urls_tell_ffmpeg_what_they_are() {
        let mut s = VideoSource::new("http://cam/video.mjpg", "hall");
        s.format = VideoFormat::Mjpeg;
        assert_eq!(
            args(&s),
            format!(
                "-hide_banner -loglevel error -nostdin -rw_timeout 10000000 \
             -use_wallclock_as_timestamps 1 -f mjpeg -i http://cam/video.mjpg -an -vf fps=5 {TAIL}"
            )
        );
        s.format = VideoFormat::Snapshot;
        s.input = "https://cam/snapshot.cgi?user=a".into();
        s.fps = 1.0;
        assert_eq!(
            args(&s),
            format!(
                "-hide_banner -loglevel error -nostdin -re -f image2 \
             -loop 1 -pattern_type none -framerate 1 -i https://cam/snapshot.cgi?user=a \
             -an -vf fps=1 {TAIL}"
            )
        );
        // A snapshot file (another program rewrites it) is polled too, forever.
        let mut f = VideoSource::new("/run/cam/latest.jpg", "c");
        f.format = VideoFormat::Snapshot;
        assert!(f.restarts() && f.paced());
        assert!(!args(&f).contains("-stream_loop"));
    }

    #[test]
    fn scaling_only_shrinks_and_keeps_the_aspect_ratio() {
        let mut s = VideoSource::new("a.mp4", "c");
        s.max_width = Some(640);
        assert!(args(&s).contains("-vf fps=5,scale='min(640,iw)':-2 "));
        s.max_height = Some(360);
        assert!(args(&s).contains(
            "-vf fps=5,scale='min(640,iw)':'min(360,ih)':force_original_aspect_ratio=decrease "
        ));
        s.max_width = None;
        assert!(args(&s).contains("-vf fps=5,scale=-2:'min(360,ih)' "));
    }

    #[test]
    fn check_says_what_to_fix() {
        let ok = VideoSource::new("a.mp4", "c");
        assert_eq!(ok.check(), Ok(()));
        let bad = |f: &dyn Fn(&mut VideoSource)| {
            let mut s = ok.clone();
            f(&mut s);
            s.check().unwrap_err()
        };
        assert!(bad(&|s| s.fps = 0.0).contains("--fps"));
        assert!(bad(&|s| s.camera.clear()).contains("--camera"));
        assert!(bad(&|s| s.jpeg_qscale = 1).contains("-q:v"));
        assert!(bad(&|s| s.stall = Duration::from_millis(300)).contains("stall"));
        assert!(bad(&|s| {
            s.input = "rtsp://x/y".into();
            s.looped = true;
        })
        .contains("--loop"));
        assert!(bad(&|s| s.rtsp_transport = RtspTransport::Udp).contains("rtsp://"));
        assert!(bad(&|s| s.max_width = Some(0)).contains("max"));
        assert!("udp".parse::<RtspTransport>() == Ok(RtspTransport::Udp));
        assert!("quic".parse::<RtspTransport>().is_err());
        assert_eq!("snapshot".parse::<VideoFormat>(), Ok(VideoFormat::Snapshot));
    }

    #[test]
    fn backoff_doubles_to_its_maximum() {
        let b = Backoff::default();
        let secs: Vec<f64> = (0..9).map(|a| b.delay(a).as_secs_f64()).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn capture_times_follow_the_stream_clock() {
        let start = 1_700_000_000_000_000;
        let at: Vec<i64> = (0..4)
            .map(|k| capture_time_us(start, k, 5.0) - start)
            .collect();
        assert_eq!(at, [0, 200_000, 400_000, 600_000]);
        // 30000/1001 fps: rounded per frame, no drift accumulated.
        assert_eq!(capture_time_us(0, 30_000, 30_000.0 / 1001.0), 1_001_000_000);
        assert_eq!(format_number(29.97002997), "29.97003");
    }

    #[test]
    fn a_missing_file_or_ffmpeg_is_an_error_at_once() {
        let err = VideoSource::new("/nonexistent/clip.mp4", "c")
            .open()
            .unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt.block_on(async {
            let mut s = VideoSource::new("rtsp://127.0.0.1:9/x", "c");
            s.ffmpeg = PathBuf::from("/nonexistent/ffmpeg");
            s.open().map(|_| ()).unwrap_err()
        });
        assert!(err.contains("apt-get install ffmpeg"), "{err}");
    }
}
