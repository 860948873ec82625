//! Payload → RGB image → normalised tensor, as the manifest says.
//!
//! Pixel formula (pinned): for channel c of the model's colour order,
//! `x = (u8 * preprocess.scale - mean[c]) / std[c]`, after resizing the RGB frame to the
//! input's height × width with the manifest's filter.
use crate::error::ModelError;
use crate::manifest::{Color, Filter, Layout, Manifest};
use argus_wire::{ImageFormat, Payload, PixelLayout, RawImage};
use image::imageops::FilterType;
use image::{ImageReader, RgbImage};
use std::io::Cursor;

/// Largest frame side the decoder accepts; bigger claims are refused before allocating.
pub const MAX_DIMENSION: u32 = 8192;
/// Largest allocation one decode may make.
pub const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// Decodes a payload into an RGB image. Errors are `Decode` (bad bytes) or `Shape` (a
/// payload kind or size this model cannot take).
pub fn decode(payload: &Payload) -> Result<RgbImage, ModelError> {
    match payload {
        Payload::Encoded { format, bytes } => decode_encoded(*format, bytes),
        Payload::Raw(raw) => from_raw(raw),
        Payload::Record(_) => Err(ModelError::Shape {
            reason: "payload is a record but this model takes images".into(),
        }),
    }
}

fn decode_encoded(format: ImageFormat, bytes: &[u8]) -> Result<RgbImage, ModelError> {
    let mut reader = ImageReader::new(Cursor::new(bytes));
    reader.set_format(match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
    });
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| ModelError::Decode {
        source: Box::new(e),
    })?;
    Ok(img.into_rgb8())
}

fn from_raw(raw: &RawImage) -> Result<RgbImage, ModelError> {
    if raw.width == 0 || raw.height == 0 || raw.width > MAX_DIMENSION || raw.height > MAX_DIMENSION
    {
        return Err(ModelError::Shape {
            reason: format!(
                "raw image is {}x{}; each side must be 1..={MAX_DIMENSION}",
                raw.width, raw.height
            ),
        });
    }
    let pixels = raw.width as usize * raw.height as usize;
    let expected = pixels * raw.layout.channels();
    if raw.data.len() != expected {
        return Err(ModelError::Shape {
            reason: format!(
                "raw {:?} image {}x{} needs {expected} bytes, got {}",
                raw.layout,
                raw.width,
                raw.height,
                raw.data.len()
            ),
        });
    }
    let data = match raw.layout {
        PixelLayout::Rgb8 => raw.data.clone(),
        PixelLayout::Bgr8 => raw
            .data
            .chunks_exact(3)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect(),
        PixelLayout::Gray8 => raw.data.iter().flat_map(|&g| [g, g, g]).collect(),
    };
    RgbImage::from_raw(raw.width, raw.height, data).ok_or_else(|| ModelError::Shape {
        reason: "raw image buffer does not match its dimensions".into(),
    })
}

/// Resizes and normalises one image into `out`, which holds exactly one batch item
/// (`channels * height * width` floats) in the manifest's layout.
pub fn to_tensor(manifest: &Manifest, img: &RgbImage, out: &mut [f32]) {
    let (h, w) = manifest.image_size();
    let filter = match manifest.preprocess.filter {
        Filter::Nearest => FilterType::Nearest,
        Filter::Triangle => FilterType::Triangle,
        Filter::CatmullRom => FilterType::CatmullRom,
    };
    let resized;
    let img = if img.width() as usize == w && img.height() as usize == h {
        img
    } else {
        resized = image::imageops::resize(img, w as u32, h as u32, filter);
        &resized
    };
    let p = &manifest.preprocess;
    let order: [usize; 3] = match manifest.input.color {
        Color::Rgb => [0, 1, 2],
        Color::Bgr => [2, 1, 0],
    };
    // Per-channel affine form: x * a[c] + b[c].
    let a: [f32; 3] = std::array::from_fn(|c| p.scale / p.std[c]);
    let b: [f32; 3] = std::array::from_fn(|c| -p.mean[c] / p.std[c]);
    let plane = h * w;
    for (i, px) in img.pixels().enumerate() {
        for (c, &src) in order.iter().enumerate() {
            let v = f32::from(px.0[src]) * a[c] + b[c];
            match manifest.input.layout {
                Layout::Nchw => out[c * plane + i] = v,
                Layout::Nhwc => out[i * 3 + c] = v,
            }
        }
    }
}
