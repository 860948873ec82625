//! Frame sources. A source yields frames in order; the produce loop paces and sends them.
use crate::scene;
use argus_wire::{Envelope, ImageFormat, Payload, SCHEMA_VERSION};
use image::codecs::jpeg::JpegEncoder;
use std::path::{Path, PathBuf};

/// One frame ready to send.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Kafka key: the camera id.
    pub key: String,
    /// The frame (or record) to send.
    pub envelope: Envelope,
    /// Ground truth when the source knows it (synthetic scenes).
    pub has_person: Option<bool>,
}

/// Synthetic cameras: `cameras` cameras at `fps` frames per second each, `width`×`height`
/// JPEG frames, deterministic from `seed`. Also the `[producer.synthetic]` table of the
/// configuration: its defaults are defined here only.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticSource {
    /// Seed of the scenes: the same seed gives the same frames.
    pub seed: u64,
    /// Number of cameras (keys `cam-0`, `cam-1`, …).
    pub cameras: u32,
    /// Frames per second per camera.
    pub fps: f64,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// JPEG quality, 1–100.
    pub jpeg_quality: u8,
    /// Brighten one camera from some frame on (to demonstrate and test drift detection);
    /// a per-run flag (`--brighten`), not a setting.
    #[serde(skip)]
    pub brighten: Option<Brighten>,
}

impl Default for SyntheticSource {
    fn default() -> Self {
        SyntheticSource {
            seed: 1,
            cameras: 4,
            fps: 5.0,
            width: 640,
            height: 480,
            jpeg_quality: 85,
            brighten: None,
        }
    }
}

impl SyntheticSource {
    /// Cross-field checks; the message says what to fix.
    pub fn check(&self) -> Result<(), String> {
        if self.cameras == 0
            || self.width < 32
            || self.height < 32
            || !self.fps.is_finite()
            || self.fps <= 0.0
        {
            return Err(
                "synthetic cameras need --cameras ≥ 1, --fps > 0 and frames of at least 32x32"
                    .into(),
            );
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err(format!(
                "synthetic jpeg_quality {} must be within 1..=100",
                self.jpeg_quality
            ));
        }
        Ok(())
    }
}

/// Multiply every channel of `camera`'s frames from sequence `from_sequence` on by `gain`
/// (rounded, clamped to 0–255): an exposure change the drift sidecar should flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Brighten {
    /// Camera index.
    pub camera: u32,
    /// Multiplier of every channel.
    pub gain: f32,
    /// First sequence number brightened.
    pub from_sequence: u64,
}

impl Brighten {
    /// Apply to an image in place.
    pub fn apply(&self, img: &mut image::RgbImage) {
        for p in img.pixels_mut() {
            for c in p.0.iter_mut() {
                *c = (f32::from(*c) * self.gain).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Every JPEG/PNG in a folder, in name order, once or looped, as one camera.
#[derive(Debug, Clone)]
pub struct DirSource {
    /// The folder.
    pub path: PathBuf,
    /// Camera id: the Kafka key of every frame.
    pub camera: String,
    /// Frames per second.
    pub fps: f64,
    /// Start again from the first file after the last.
    pub looped: bool,
}

/// Where frames (or records) come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Synthetic scenes ([`SyntheticSource`]).
    Synthetic(SyntheticSource),
    /// Image files of a folder ([`DirSource`]).
    Dir(DirSource),
    /// A video file or stream decoded by ffmpeg ([`crate::video::VideoSource`]).
    Video(crate::video::VideoSource),
    /// Rows of a CSV or JSON-lines file (or stdin) as `Record` envelopes.
    Records(crate::records::RecordsSource),
}

/// Camera id of synthetic camera `c`.
pub fn camera_id(c: u32) -> String {
    format!("cam-{c}")
}

/// JPEG-encodes an RGB image.
pub fn encode_jpeg(img: &image::RgbImage, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::with_capacity(img.len() / 8);
    JpegEncoder::new_with_quality(&mut out, quality).encode_image(img)?;
    Ok(out)
}

impl SyntheticSource {
    /// Frame number `i` of the interleaved stream (camera `i % cameras`, sequence
    /// `i / cameras`), captured at `capture_time_us`.
    pub fn frame(&self, i: u64, capture_time_us: i64) -> Result<Frame, image::ImageError> {
        let cameras = u64::from(self.cameras.max(1));
        let camera = u32::try_from(i % cameras).unwrap_or(0);
        let seq = i / cameras;
        let mut s = scene::render(self.seed, camera, seq, self.width, self.height);
        if let Some(b) = self
            .brighten
            .filter(|b| b.camera == camera && seq >= b.from_sequence)
        {
            b.apply(&mut s.image);
        }
        let bytes = encode_jpeg(&s.image, self.jpeg_quality)?;
        Ok(Frame {
            key: camera_id(camera),
            envelope: Envelope {
                schema_version: SCHEMA_VERSION,
                source_id: camera_id(camera),
                sequence: seq,
                capture_time_us,
                payload: Payload::Encoded {
                    format: ImageFormat::Jpeg,
                    bytes,
                },
            },
            has_person: Some(s.person.is_some()),
        })
    }

    /// Frames per second over all cameras.
    pub fn total_fps(&self) -> f64 {
        self.fps * f64::from(self.cameras.max(1))
    }
}

impl DirSource {
    /// The image files of the folder in name order. Errors if the folder cannot be read or
    /// holds no JPEG/PNG.
    pub fn files(&self) -> Result<Vec<(PathBuf, ImageFormat)>, String> {
        let entries = std::fs::read_dir(&self.path)
            .map_err(|e| format!("cannot read folder {}: {e}", self.path.display()))?;
        let mut files: Vec<(PathBuf, ImageFormat)> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| format_of(&p).map(|f| (p, f)))
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        if files.is_empty() {
            return Err(format!(
                "folder {} holds no .jpg, .jpeg or .png files",
                self.path.display()
            ));
        }
        Ok(files)
    }

    /// Reads file `path` as frame `seq`; its bytes are passed through untouched.
    pub fn frame(
        &self,
        path: &Path,
        format: ImageFormat,
        seq: u64,
        capture_time_us: i64,
    ) -> std::io::Result<Frame> {
        let bytes = std::fs::read(path)?;
        Ok(Frame {
            key: self.camera.clone(),
            envelope: Envelope {
                schema_version: SCHEMA_VERSION,
                source_id: self.camera.clone(),
                sequence: seq,
                capture_time_us,
                payload: Payload::Encoded { format, bytes },
            },
            has_person: None,
        })
    }
}

fn format_of(p: &Path) -> Option<ImageFormat> {
    let ext = p.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => Some(ImageFormat::Jpeg),
        "png" => Some(ImageFormat::Png),
        _ => None,
    }
}
