//! Every compression codec a producer may choose (zstd, lz4, snappy, gzip) on the real
//! broker: batches written by `argus produce -X compression.type=…` are read and predicted.
//! (A zstd batch used to stop its partition: librdkafka was built without zstd.)
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_e2e::*;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_in_every_codec_are_predicted() {
    let topics = Topics::create(2).await;
    let group = unique("workers");
    let mut w = RunningWorker::start(topics.worker_config("w-codecs"), &group, model());
    w.wait_assigned(Duration::from_secs(60)).await;
    let codecs = ["zstd", "lz4", "snappy", "gzip"];
    for codec in codecs {
        let out = Command::new(argus_bin())
            .args(["produce", "--brokers", &brokers(), "--topic", &topics.input])
            .args(["--count", "10", "-X", &format!("compression.type={codec}")])
            .args(["synthetic", "--cameras", "2"])
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{codec}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let want = 10 * codecs.len();
    let preds = predictions_until(&topics.predictions, Duration::from_secs(90), want);
    w.stop().await;
    assert_eq!(
        counts(&preds).len(),
        want,
        "every frame of every codec predicted"
    );
}
