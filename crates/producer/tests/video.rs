//! The video source against the real ffmpeg (no broker): a file, MJPEG over HTTP from an
//! in-test server (with a reconnect), a snapshot URL, and a file ffmpeg cannot read.
//! ffmpeg missing is a failure, not a skip.
#![allow(clippy::unwrap_used)]
use argus_producer::{Backoff, Frame, VideoFormat, VideoReader, VideoSource};
use argus_wire::{ImageFormat, Payload};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// OpenCV's sample: 768×576, 10 frames/s, 795 frames (Debian package opencv-doc).
const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

fn need_ffmpeg() {
    let found = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "these tests run the real ffmpeg, which is not on PATH: apt-get install ffmpeg"
    );
}

fn need_vtest() {
    assert!(
        std::path::Path::new(VTEST).exists(),
        "{VTEST} is missing: apt-get install opencv-doc"
    );
}

fn jpeg_size(f: &Frame) -> (u32, u32) {
    let Payload::Encoded {
        format: ImageFormat::Jpeg,
        bytes,
    } = &f.envelope.payload
    else {
        panic!(
            "not a JPEG payload: {:?}",
            f.envelope.payload.content_type()
        );
    };
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg).unwrap();
    (img.width(), img.height())
}

/// Up to `n` frames, or all of them if the source ends first; 30 s at most.
async fn take(reader: &mut VideoReader, n: usize) -> Vec<Frame> {
    let mut frames = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while frames.len() < n {
            match reader.next_frame().await.unwrap() {
                Some(f) => frames.push(f),
                None => break,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} frames in 30 s", frames.len()));
    frames
}

fn assert_consecutive(frames: &[Frame], camera: &str) {
    for (k, f) in frames.iter().enumerate() {
        assert_eq!(f.key, camera);
        assert_eq!(f.envelope.source_id, camera);
        assert_eq!(f.envelope.sequence, k as u64);
    }
}

#[tokio::test]
async fn a_file_gives_consecutive_jpegs_stamped_by_the_stream_clock() {
    need_ffmpeg();
    need_vtest();
    let mut src = VideoSource::new(VTEST, "hall");
    src.fps = 5.0;
    src.duration = Some(Duration::from_secs(2));
    let mut reader = src.open().unwrap();
    let frames = take(&mut reader, usize::MAX).await;
    // Two seconds at 5 frames/s; then the file (cut by -t) ends the source.
    assert_eq!(frames.len(), 10);
    assert_consecutive(&frames, "hall");
    for f in &frames {
        assert_eq!(jpeg_size(f), (768, 576));
    }
    // Decoded faster than real time, yet 200 ms apart: the stream's clock.
    let gaps: Vec<i64> = frames
        .windows(2)
        .map(|w| w[1].envelope.capture_time_us - w[0].envelope.capture_time_us)
        .collect();
    assert!(gaps.iter().all(|&g| g == 200_000), "{gaps:?}");
    assert_eq!(reader.restarts(), 0);
    assert!(
        reader.next_frame().await.unwrap().is_none(),
        "ended stays ended"
    );
}

#[tokio::test]
async fn frames_are_scaled_down_keeping_the_aspect_ratio() {
    need_ffmpeg();
    need_vtest();
    let mut src = VideoSource::new(VTEST, "hall");
    src.fps = 10.0;
    src.duration = Some(Duration::from_millis(300));
    src.max_width = Some(384);
    src.max_height = Some(1000);
    let frames = take(&mut src.open().unwrap(), usize::MAX).await;
    assert_eq!(frames.len(), 3);
    assert!(frames.iter().all(|f| jpeg_size(f) == (384, 288)));
}

#[tokio::test]
async fn a_file_ffmpeg_cannot_read_is_an_error_with_its_words() {
    need_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.mp4");
    std::fs::write(&path, "not a video").unwrap();
    let mut reader = VideoSource::new(path.to_string_lossy(), "c")
        .open()
        .unwrap();
    let err = reader.next_frame().await.unwrap_err();
    assert!(
        err.contains("ffmpeg could not read") && err.contains("stderr"),
        "{err}"
    );
}

/// Small JPEGs of distinct colours.
fn jpegs(n: u8) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let img = image::RgbImage::from_pixel(64, 48, image::Rgb([i * 40, 255 - i * 40, 90]));
            argus_producer::source::encode_jpeg(&img, 90).unwrap()
        })
        .collect()
}

async fn read_request(sock: &mut TcpStream) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
}

/// An MJPEG camera: each connection gets `per_connection` parts of
/// `multipart/x-mixed-replace`, 100 ms apart, then is closed (a dropped stream).
async fn mjpeg_camera(listener: TcpListener, per_connection: usize) {
    let frames = jpegs(5);
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        read_request(&mut sock).await;
        let head = "HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=argusframe\r\n\r\n";
        if sock.write_all(head.as_bytes()).await.is_err() {
            continue;
        }
        for jpeg in frames.iter().cycle().take(per_connection) {
            let part = format!(
                "--argusframe\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                jpeg.len()
            );
            let sent = async {
                sock.write_all(part.as_bytes()).await?;
                sock.write_all(jpeg).await?;
                sock.write_all(b"\r\n").await
            };
            if sent.await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn mjpeg_over_http_is_read_and_reconnected_when_the_stream_drops() {
    need_ffmpeg();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(mjpeg_camera(listener, 6));
    let mut src = VideoSource::new(format!("http://127.0.0.1:{port}/video.mjpg"), "door");
    src.format = VideoFormat::Mjpeg;
    src.fps = 10.0;
    src.reconnect = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
    };
    let mut reader = src.open().unwrap();
    let frames = take(&mut reader, 12).await;
    assert_eq!(frames.len(), 12);
    assert_consecutive(&frames, "door");
    assert!(frames.iter().all(|f| jpeg_size(f) == (64, 48)));
    assert!(
        reader.restarts() >= 1,
        "six parts per connection: 12 frames need a reconnect"
    );
    server.abort();
}

/// A snapshot camera: each GET is answered with one JPEG.
async fn snapshot_camera(listener: TcpListener) {
    let frames = jpegs(3);
    for jpeg in frames.iter().cycle() {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        read_request(&mut sock).await;
        let head = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            jpeg.len()
        );
        let _ = sock.write_all(head.as_bytes()).await;
        let _ = sock.write_all(jpeg).await;
    }
}

#[tokio::test]
async fn a_snapshot_url_is_polled_at_fps() {
    need_ffmpeg();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(snapshot_camera(listener));
    let mut src = VideoSource::new(format!("http://127.0.0.1:{port}/snapshot.cgi"), "yard");
    src.format = VideoFormat::Snapshot;
    src.fps = 5.0;
    let mut reader = src.open().unwrap();
    let started = std::time::Instant::now();
    let frames = take(&mut reader, 5).await;
    assert_eq!(frames.len(), 5);
    assert_consecutive(&frames, "yard");
    assert!(frames.iter().all(|f| jpeg_size(f) == (64, 48)));
    // Polled at 5/s, not as fast as the server answers.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
    server.abort();
}

#[tokio::test]
async fn the_produce_loop_sends_a_video_file_to_the_embedded_broker() {
    use argus_kafka::{EmbeddedBroker, KafkaSettings, TopicSpec};
    need_ffmpeg();
    need_vtest();
    let broker = EmbeddedBroker::start().unwrap();
    broker
        .create_topics(&[TopicSpec::new("frames", 1)])
        .unwrap();
    let settings = KafkaSettings::new(broker.bootstrap_servers());
    let producer = settings.producer("video-test").unwrap();
    let mut src = VideoSource::new(VTEST, "hall");
    src.fps = 5.0;
    src.duration = Some(Duration::from_secs(1));
    let summary = argus_producer::run(
        argus_producer::Source::Video(src),
        argus_producer::ProduceConfig::new("frames"),
        producer,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!((summary.sent, summary.refused, summary.dropped), (5, 0, 0));
    assert!(summary.bytes > 5 * 10_000, "{summary}");
}
