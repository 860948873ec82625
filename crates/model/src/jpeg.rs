//! JPEG frames decoded by libjpeg-turbo (the `turbojpeg` crate, which builds the library
//! from its bundled source; with `nasm` on the build machine it gets libjpeg-turbo's SIMD).
//!
//! Why not the image crate's decoder (zune-jpeg) for JPEG: libjpeg-turbo decodes a 1080p
//! camera frame in about 3.7 ms against zune-jpeg's ~7 ms, and it can decode at 1/2, 1/4 or
//! 1/8 scale in the DCT domain (2.2 ms at 1/4), which zune-jpeg cannot. It is also what
//! Pillow and OpenCV decode with, so the Python reference pipelines see the same pixels.
//!
//! Hostile frames: the header is read first and a frame over the pixel bound is refused
//! before anything is allocated for its pixels; progressive frames are limited to
//! [`SCAN_LIMIT`] scans (libjpeg-turbo's guard against the many-scans exploit). CMYK and
//! YCCK frames, which libjpeg-turbo cannot convert to RGB, are left to the image crate.
use crate::error::ModelError;
use crate::preprocess::{MAX_DECODED_PIXELS_LIMIT, MAX_DIMENSION};
use image::RgbImage;
use std::cell::RefCell;
use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat, ScalingFactor};

/// Whether the linked libjpeg-turbo has its SIMD code (`build.rs` reads its `jconfig.h`).
/// Without it, JPEG frames decode about 1.4× slower: a build machine without `nasm`
/// builds it so, and cargo keeps that build after nasm is installed
/// (`scripts/turbojpeg-simd` finds and rebuilds it). Image models warn at load when it
/// is missing ([`warn_without_simd`]).
pub const SIMD: bool = cfg!(jpeg_simd);

/// Logs a warning, once per process, when JPEG frames will decode without libjpeg-turbo's
/// SIMD code, saying how to get it. Called when an image model loads.
pub fn warn_without_simd() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if !SIMD {
        WARNED.call_once(|| {
            tracing::warn!(
                "JPEG decoding runs without libjpeg-turbo's SIMD code, about 1.4x slower per \
                 frame: nasm was missing when the turbojpeg-sys crate built it; install nasm \
                 and run scripts/turbojpeg-simd (or cargo clean -p turbojpeg-sys), then rebuild"
            );
        });
    }
}

/// Most scans a progressive frame may have. Cameras send baseline frames (one scan);
/// photo encoders write about ten for a progressive one.
pub const SCAN_LIMIT: u32 = 500;

thread_local! {
    /// One decompressor per decode thread (creating one allocates libjpeg-turbo's state).
    static DECOMPRESSOR: RefCell<Option<Decompressor>> = const { RefCell::new(None) };
}

/// A decoded frame: the pixels (at the reduced scale when one applied) and the frame's full
/// size, which boxes are reported in.
pub type Decoded = (RgbImage, (u32, u32));

/// Decodes a JPEG of at most `max_pixels` (full-size) pixels, at the DCT-domain reduction
/// (1, 2, 4 or 8) that `reduction` picks from the frame's full size. `Ok(None)`: a colour
/// space libjpeg-turbo cannot turn into RGB (CMYK, YCCK), for the caller's other decoder.
/// Errors: `Decode` for bytes that are not a readable JPEG, `Shape` for a frame over the
/// bounds.
pub fn decode(
    bytes: &[u8],
    max_pixels: u64,
    reduction: impl FnOnce((u32, u32)) -> u32,
) -> Result<Option<Decoded>, ModelError> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = match slot.as_mut() {
            Some(d) => d,
            None => {
                let mut d = Decompressor::new().map_err(decode_error)?;
                d.set_scan_limit(SCAN_LIMIT).map_err(decode_error)?;
                slot.insert(d)
            }
        };
        let decoded = decode_with(d, bytes, max_pixels, reduction);
        if decoded.is_err() {
            // A failed decode can leave state in the handle (parameters read from a broken
            // header): the next frame gets a fresh one.
            *slot = None;
        }
        decoded
    })
}

fn decode_with(
    d: &mut Decompressor,
    bytes: &[u8],
    max_pixels: u64,
    reduction: impl FnOnce((u32, u32)) -> u32,
) -> Result<Option<Decoded>, ModelError> {
    let header = d.read_header(bytes).map_err(decode_error)?;
    if matches!(header.colorspace, Colorspace::CMYK | Colorspace::YCCK) {
        return Ok(None);
    }
    let (w, h) = (header.width, header.height);
    let max_pixels = max_pixels.clamp(1, MAX_DECODED_PIXELS_LIMIT);
    let side = MAX_DIMENSION as usize;
    let pixels = (w as u64).saturating_mul(h as u64);
    if w == 0 || h == 0 || w > side || h > side || pixels > max_pixels {
        return Err(ModelError::Shape {
            reason: format!(
                "image is {w}x{h} = {pixels} pixels; at most {max_pixels} are decoded \
                 (max_decoded_pixels), at most {MAX_DIMENSION} a side"
            ),
        });
    }
    // Both sides are at most MAX_DIMENSION (8192): they fit u32.
    let frame = (w as u32, h as u32);
    let k = match reduction(frame) {
        // Lossless JPEGs have no DCT to scale in.
        k @ (2 | 4 | 8) if !header.is_lossless => k as usize,
        _ => 1,
    };
    let scale = ScalingFactor::new(1, k);
    d.set_scaling_factor(scale).map_err(decode_error)?;
    let (sw, sh) = (scale.scale(w), scale.scale(h));
    let mut out = Image {
        pixels: vec![0u8; 3 * sw * sh],
        width: sw,
        pitch: 3 * sw,
        height: sh,
        format: PixelFormat::RGB,
    };
    d.decompress(bytes, out.as_deref_mut())
        .map_err(decode_error)?;
    // sw, sh <= the frame's sides, which fit u32.
    let img =
        RgbImage::from_raw(sw as u32, sh as u32, out.pixels).ok_or_else(|| ModelError::Shape {
            reason: format!("decoded JPEG buffer does not match {sw}x{sh}"),
        })?;
    Ok(Some((img, frame)))
}

fn decode_error(e: turbojpeg::Error) -> ModelError {
    ModelError::Decode {
        source: Box::new(e),
    }
}
