//! Payload → RGB image → normalised tensor, as the manifest says.
//!
//! Pixel formula (pinned): for channel c of the model's colour order,
//! `x = (u8 * preprocess.scale - mean[c]) / std[c]`, after resizing the RGB frame to the
//! input's height × width with the manifest's filter.
use crate::error::ModelError;
use crate::jpeg;
use crate::manifest::{Color, Filter, Layout, Manifest, Resize};
use argus_wire::{ImageFormat, Payload, PixelLayout, RawImage};
use fast_image_resize as fr;
use image::imageops::FilterType;
use image::{ImageReader, RgbImage};
use std::cell::RefCell;
use std::io::Cursor;

/// Largest frame side the decoder accepts; bigger claims are refused before allocating.
pub const MAX_DIMENSION: u32 = 8192;
/// Most pixels one encoded frame may decode to by default (16 MP: 4096×4096, above 4K UHD's
/// 8.3 MP; the worker's `max_decoded_pixels` changes it),
/// checked from the file's header before any pixel is decoded. With `decode_threads`
/// decodes at a time, decoded frames hold at most `decode_threads` × 16 MP × 11 bytes (the
/// decoder's buffer, up to 8 bytes a pixel, and the RGB copy): 370 MB at the default 2
/// threads, 235 MB for 8-bit images. A fuzz run with
/// 8192×8192 PNGs (within the side limit) had raised a worker's RSS to 705 MB.
pub const MAX_DECODED_PIXELS: u64 = 4096 * 4096;

/// The most pixels [`decode_limited`] may be asked to allow: the side limit squared.
pub const MAX_DECODED_PIXELS_LIMIT: u64 = MAX_DIMENSION as u64 * MAX_DIMENSION as u64;

/// Decodes a payload into an RGB image, at most [`MAX_DECODED_PIXELS`]. Errors are
/// `Decode` (bad bytes) or `Shape` (a payload kind or size this model cannot take).
pub fn decode(payload: &Payload) -> Result<RgbImage, ModelError> {
    decode_limited(payload, MAX_DECODED_PIXELS)
}

/// [`decode`] with another bound on the pixels one encoded frame may decode to (the
/// worker's `max_decoded_pixels`; clamped to 1..=[`MAX_DECODED_PIXELS_LIMIT`]). The decoder's
/// allocation limit follows it (8 bytes a pixel, plus 16 MiB).
pub fn decode_limited(payload: &Payload, max_pixels: u64) -> Result<RgbImage, ModelError> {
    let max_pixels = max_pixels.clamp(1, MAX_DECODED_PIXELS_LIMIT);
    match payload {
        Payload::Encoded { format, bytes } => decode_encoded(*format, bytes, max_pixels),
        Payload::Raw(raw) => from_raw(raw),
        Payload::Record(_) => Err(ModelError::Shape {
            reason: "payload is a record but this model takes images".into(),
        }),
    }
}

/// The DCT-domain reduction (1, 2, 4 or 8) a JPEG of `frame` (w, h) can be decoded at for
/// a model input of `input` (w, h): the largest whose decoded size still covers the input
/// on both axes to within 10 % (a slight upscale on one axis costs nothing a detector
/// notices, and lets a 768×576 frame decode at half size for a 300×300 input).
pub fn jpeg_reduction(frame: (u32, u32), input: (u32, u32)) -> u32 {
    [8u32, 4, 2]
        .into_iter()
        .find(|&k| {
            let covers = |f: u32, i: u32| u64::from(f.div_ceil(k)) * 10 >= u64::from(i) * 9;
            covers(frame.0, input.0) && covers(frame.1, input.1)
        })
        .unwrap_or(1)
}

/// Decodes a payload for a model whose input is `input` (w, h) pixels. With `reduce` (the
/// manifest's `preprocess.reduced_decode`) a JPEG much larger than the input is decoded at
/// 1/2, 1/4 or 1/8 scale in the DCT domain ([`jpeg_reduction`]), which skips most of the
/// inverse DCT and colour conversion; every other payload decodes as [`decode_limited`]
/// does. Returns the image and the frame's full size (boxes are reported in full-size
/// pixels).
pub fn decode_for_input(
    payload: &Payload,
    max_pixels: u64,
    input: (u32, u32),
    reduce: bool,
) -> Result<(RgbImage, (u32, u32)), ModelError> {
    if let (
        true,
        Payload::Encoded {
            format: ImageFormat::Jpeg,
            bytes,
        },
    ) = (reduce, payload)
    {
        if let Some(decoded) =
            jpeg::decode(bytes, max_pixels, |frame| jpeg_reduction(frame, input))?
        {
            return Ok(decoded);
        }
    }
    let img = decode_limited(payload, max_pixels)?;
    let size = img.dimensions();
    Ok((img, size))
}

fn reader_for(format: ImageFormat, bytes: &[u8]) -> ImageReader<Cursor<&[u8]>> {
    let mut reader = ImageReader::new(Cursor::new(bytes));
    reader.set_format(match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
    });
    reader
}

fn decode_encoded(
    format: ImageFormat,
    bytes: &[u8],
    max_pixels: u64,
) -> Result<RgbImage, ModelError> {
    if format == ImageFormat::Jpeg {
        if let Some((img, _)) = jpeg::decode(bytes, max_pixels, |_| 1)? {
            return Ok(img);
        }
        // CMYK or YCCK: the image crate's decoder converts those.
    }
    let mut reader = reader_for(format, bytes);
    let limits = || {
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_DIMENSION);
        limits.max_image_height = Some(MAX_DIMENSION);
        limits.max_alloc = Some(max_pixels * 8 + 16 * 1024 * 1024);
        limits
    };
    // The header first: a frame declaring too many pixels is refused before decoding.
    let mut header = reader_for(format, bytes);
    header.limits(limits());
    let (w, h) = header.into_dimensions().map_err(|e| ModelError::Decode {
        source: Box::new(e),
    })?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(ModelError::Shape {
            reason: format!(
                "image is {w}x{h} = {pixels} pixels; at most {max_pixels} are decoded (max_decoded_pixels)"
            ),
        });
    }
    reader.limits(limits());
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

thread_local! {
    /// One resizer per decode thread: it keeps its scratch buffers between frames.
    static RESIZER: RefCell<fr::Resizer> = RefCell::new(fr::Resizer::new());
}

/// Resizes an RGB frame with fast_image_resize (SIMD convolution; its `Bilinear` is
/// Pillow's `BILINEAR` with antialiasing, the filter the Python reference uses). The image
/// crate's `resize` cost 18 % of the worker's CPU on MobileNetV2 (perf, 640x480 → 224x224)
/// and allocates a 2.3 MB float intermediate per frame. Falls back to the image crate
/// on the (not expected) error.
pub fn resize(img: &RgbImage, w: u32, h: u32, filter: Filter) -> RgbImage {
    let alg = match filter {
        Filter::Nearest => fr::ResizeAlg::Nearest,
        Filter::Triangle => fr::ResizeAlg::Convolution(fr::FilterType::Bilinear),
        Filter::CatmullRom => fr::ResizeAlg::Convolution(fr::FilterType::CatmullRom),
    };
    let fast =
        fr::images::ImageRef::new(img.width(), img.height(), img.as_raw(), fr::PixelType::U8x3)
            .ok()
            .and_then(|src| {
                let mut dst = fr::images::Image::new(w, h, fr::PixelType::U8x3);
                let options = fr::ResizeOptions::new().resize_alg(alg);
                RESIZER
                    .with(|r| r.borrow_mut().resize(&src, &mut dst, &options))
                    .ok()?;
                RgbImage::from_raw(w, h, dst.into_vec())
            });
    fast.unwrap_or_else(|| {
        let filter = match filter {
            Filter::Nearest => FilterType::Nearest,
            Filter::Triangle => FilterType::Triangle,
            Filter::CatmullRom => FilterType::CatmullRom,
        };
        image::imageops::resize(img, w, h, filter)
    })
}

/// `img` scaled to fit inside `input` (w, h) with its aspect ratio kept and centred on a
/// `pad`-coloured canvas, at [`crate::detection::letterbox_placement`].
pub fn letterbox(img: &RgbImage, input: (u32, u32), filter: Filter, pad: [u8; 3]) -> RgbImage {
    let (w, h, x0, y0) = crate::detection::letterbox_placement((img.width(), img.height()), input);
    let scaled;
    let src = if (w, h) == img.dimensions() {
        img
    } else {
        scaled = resize(img, w, h, filter);
        &scaled
    };
    let mut canvas = RgbImage::from_pixel(input.0, input.1, image::Rgb(pad));
    image::imageops::replace(&mut canvas, src, i64::from(x0), i64::from(y0));
    canvas
}

/// Resizes and normalises one image into `out`, which holds exactly one batch item
/// (`channels * height * width` floats) in the manifest's layout.
pub fn to_tensor(manifest: &Manifest, img: &RgbImage, out: &mut [f32]) {
    let Some(p) = &manifest.preprocess else {
        // Only image bundles (validated to have [preprocess]) reach here.
        return;
    };
    let (h, w) = manifest.image_size();
    let fitted;
    let img = if img.width() as usize == w && img.height() as usize == h {
        img
    } else {
        fitted = match p.resize {
            Resize::Stretch => resize(img, w as u32, h as u32, p.filter),
            Resize::Letterbox => letterbox(img, (w as u32, h as u32), p.filter, p.pad),
        };
        &fitted
    };
    let order: [usize; 3] = match manifest.color() {
        Color::Rgb => [0, 1, 2],
        Color::Bgr => [2, 1, 0],
    };
    // Per-channel affine form: x * a[c] + b[c].
    let a: [f32; 3] = std::array::from_fn(|c| p.scale / p.std[c]);
    let b: [f32; 3] = std::array::from_fn(|c| -p.mean[c] / p.std[c]);
    let plane = h * w;
    let layout = manifest.layout();
    for (i, px) in img.pixels().enumerate() {
        for (c, &src) in order.iter().enumerate() {
            let v = f32::from(px.0[src]) * a[c] + b[c];
            match layout {
                Layout::Nchw => out[c * plane + i] = v,
                Layout::Nhwc => out[i * 3 + c] = v,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A PNG that declares `w`×`h` RGB pixels but carries only a tiny (wrong) data chunk:
    /// an image bomb as far as the header goes.
    fn png_declaring(w: u32, h: u32) -> Vec<u8> {
        png_with_header(w, h, 8, 2)
    }

    /// As [`png_declaring`], with any bit depth and colour type in the header.
    pub(super) fn png_with_header(w: u32, h: u32, depth: u8, colour: u8) -> Vec<u8> {
        fn crc32(bytes: &[u8]) -> u32 {
            let mut c = 0xFFFF_FFFFu32;
            for &b in bytes {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 == 1 {
                        0xEDB8_8320 ^ (c >> 1)
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        }
        fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut body = kind.to_vec();
            body.extend_from_slice(data);
            out.extend_from_slice(&body);
            out.extend_from_slice(&crc32(&body).to_be_bytes());
        }
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[depth, colour, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(
            &mut out,
            b"IDAT",
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        );
        chunk(&mut out, b"IEND", &[]);
        out
    }

    #[test]
    fn frames_declaring_too_many_pixels_are_refused_before_decoding() {
        // Within the side limit, above the pixel budget: a shape error naming the size.
        let bomb = Payload::Encoded {
            format: ImageFormat::Png,
            bytes: png_declaring(8000, 8000),
        };
        match decode(&bomb) {
            Err(ModelError::Shape { reason }) => assert!(reason.contains("8000x8000"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // 100k × 100k: refused by the side limit, before any allocation.
        let huge = Payload::Encoded {
            format: ImageFormat::Png,
            bytes: png_declaring(100_000, 100_000),
        };
        assert!(matches!(decode(&huge), Err(ModelError::Decode { .. })));
        // Within both limits the header passes and the (broken) data is a decode error.
        let small = Payload::Encoded {
            format: ImageFormat::Png,
            bytes: png_declaring(64, 64),
        };
        assert!(matches!(decode(&small), Err(ModelError::Decode { .. })));
    }

    #[test]
    fn the_pixel_bound_is_the_callers() {
        let png = |w, h| {
            let img = image::RgbImage::from_pixel(w, h, image::Rgb([1, 2, 3]));
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, image::ImageFormat::Png).unwrap();
            Payload::Encoded {
                format: ImageFormat::Png,
                bytes: out.into_inner(),
            }
        };
        // 100×100 = 10,000 pixels: decoded under a bound of 10,000, refused under 9,999.
        assert_eq!(decode_limited(&png(100, 100), 10_000).unwrap().width(), 100);
        match decode_limited(&png(100, 100), 9_999) {
            Err(ModelError::Shape { reason }) => {
                assert!(
                    reason.contains("100x100") && reason.contains("9999"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        // 8000×8000 passes a raised bound's header check (then fails on its broken data).
        let bomb = Payload::Encoded {
            format: ImageFormat::Png,
            bytes: png_declaring(8000, 8000),
        };
        assert!(matches!(
            decode_limited(&bomb, MAX_DECODED_PIXELS_LIMIT),
            Err(ModelError::Decode { .. })
        ));
    }

    fn manifest(layout: &str, color: &str, shape: &str) -> Manifest {
        let text = format!(
            r#"schema = "argus.bundle/v1"
name = "t"
version = "1"
task = "classify"
[model]
file = "m.onnx"
sha256 = "{}"
[input]
name = "x"
shape = {shape}
layout = "{layout}"
color = "{color}"
[preprocess]
resize = "stretch"
filter = "triangle"
scale = 0.00392156862745098
mean = [0.5, 0.25, 0.0]
std = [0.5, 0.25, 1.0]
[output]
name = "y"
kind = "logits"
labels = ["a", "b"]
"#,
            "0".repeat(64)
        );
        let m: Manifest = toml::from_str(&text).unwrap();
        m.validate().unwrap();
        m
    }

    fn image() -> RgbImage {
        // 2x1: (255, 0, 51) then (0, 255, 102)
        RgbImage::from_raw(2, 1, vec![255, 0, 51, 0, 255, 102]).unwrap()
    }

    #[test]
    fn nchw_rgb_values_follow_the_pinned_formula() {
        let m = manifest("nchw", "rgb", "[1, 3, 1, 2]");
        let mut out = vec![0.0; 6];
        to_tensor(&m, &image(), &mut out);
        // ((v/255) - mean[c]) / std[c], planes R, G, B.
        let expected = [1.0, -1.0, -1.0, 3.0, 0.2, 0.4];
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn nhwc_bgr_interleaves_in_model_order() {
        let m = manifest("nhwc", "bgr", "[1, 1, 2, 3]");
        let mut out = vec![0.0; 6];
        to_tensor(&m, &image(), &mut out);
        // Pixel 0 in model order B, G, R with channel c's mean/std.
        let expected = [(0.2 - 0.5) / 0.5, -1.0, 1.0, (0.4 - 0.5) / 0.5, 3.0, 0.0];
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn gray_raw_images_replicate_the_channel() {
        let raw = RawImage {
            width: 2,
            height: 1,
            layout: PixelLayout::Gray8,
            data: vec![10, 200],
        };
        let img = decode(&Payload::Raw(raw)).unwrap();
        assert_eq!(img.into_raw(), vec![10, 10, 10, 200, 200, 200]);
    }

    #[test]
    fn reductions_keep_the_input_covered() {
        assert_eq!(
            jpeg_reduction((1920, 1080), (300, 300)),
            4,
            "480x270: 270 >= 0.9 * 300"
        );
        assert_eq!(jpeg_reduction((768, 576), (300, 300)), 2);
        assert_eq!(jpeg_reduction((3840, 2160), (300, 300)), 8);
        assert_eq!(jpeg_reduction((320, 240), (300, 300)), 1);
        assert_eq!(jpeg_reduction((640, 480), (640, 640)), 1);
    }

    #[test]
    fn a_big_jpeg_decodes_reduced_at_its_full_size_frame() {
        // A 1920x1080 gradient: decoded at 1/4 (480x270), reported as 1920x1080, and close
        // to a full decode resized to the same size.
        let img = RgbImage::from_fn(1920, 1080, |x, y| {
            image::Rgb([(x / 8) as u8, (y / 5) as u8, ((x + y) / 12) as u8])
        });
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode_image(&img)
            .unwrap();
        let payload = Payload::Encoded {
            format: ImageFormat::Jpeg,
            bytes,
        };
        let (small, frame) =
            decode_for_input(&payload, MAX_DECODED_PIXELS, (300, 300), true).unwrap();
        assert_eq!(frame, (1920, 1080));
        assert_eq!(small.dimensions(), (480, 270));
        let full = resize(&decode(&payload).unwrap(), 480, 270, Filter::Triangle);
        let mean_diff: f64 = small
            .as_raw()
            .iter()
            .zip(full.as_raw())
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
            .sum::<f64>()
            / small.as_raw().len() as f64;
        assert!(mean_diff < 3.0, "mean |reduced - full| = {mean_diff}");
        // Too small to reduce, or the bundle does not ask for it: decoded whole.
        for (input, reduce) in [((1600, 1000), true), ((300, 300), false)] {
            let (whole, frame) =
                decode_for_input(&payload, MAX_DECODED_PIXELS, input, reduce).unwrap();
            assert_eq!((whole.dimensions(), frame), ((1920, 1080), (1920, 1080)));
        }
        // A frame over the pixel bound is refused as before, not decoded reduced.
        assert!(matches!(
            decode_for_input(&payload, 1000, (300, 300), true),
            Err(ModelError::Shape { .. })
        ));
    }

    #[test]
    fn jpeg_decodes_grey_frames_to_rgb_and_refuses_bad_bytes_as_decode() {
        let grey = image::GrayImage::from_fn(64, 48, |x, y| image::Luma([(x * 3 + y) as u8]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95)
            .encode_image(&grey)
            .unwrap();
        let img = decode(&Payload::Encoded {
            format: ImageFormat::Jpeg,
            bytes: bytes.clone(),
        })
        .unwrap();
        assert_eq!(img.dimensions(), (64, 48));
        let p = img.get_pixel(40, 30).0;
        assert_eq!((p[0], p[1]), (p[1], p[2]), "grey stays grey: {p:?}");
        assert!((i32::from(p[0]) - (40 * 3 + 30)).abs() <= 3, "{p:?}");
        // Cut in the header, or not a JPEG at all: a decode failure, not a panic.
        for bad in [&bytes[..20], &b"not a jpeg"[..]] {
            let r = decode(&Payload::Encoded {
                format: ImageFormat::Jpeg,
                bytes: bad.to_vec(),
            });
            assert!(matches!(r, Err(ModelError::Decode { .. })), "{r:?}");
        }
    }

    #[test]
    fn letterbox_pads_with_the_pad_colour() {
        let img = RgbImage::from_pixel(300, 224, image::Rgb([10, 20, 30]));
        let boxed = letterbox(&img, (300, 300), Filter::Triangle, [114, 114, 114]);
        assert_eq!(boxed.dimensions(), (300, 300));
        assert_eq!(boxed.get_pixel(150, 37), &image::Rgb([114, 114, 114]));
        assert_eq!(boxed.get_pixel(150, 38), &image::Rgb([10, 20, 30]));
        assert_eq!(boxed.get_pixel(150, 261), &image::Rgb([10, 20, 30]));
        assert_eq!(boxed.get_pixel(150, 262), &image::Rgb([114, 114, 114]));
    }

    #[test]
    fn images_are_resized_to_the_input() {
        let m = manifest("nchw", "rgb", "[1, 3, 4, 4]");
        let big = RgbImage::from_pixel(64, 48, image::Rgb([255, 64, 0]));
        let mut out = vec![0.0; 48];
        to_tensor(&m, &big, &mut out);
        assert!(out[..16].iter().all(|v| (v - 1.0).abs() < 1e-5));
        assert!(out[32..].iter().all(|v| (v + 0.0).abs() < 1e-5));
    }
}

/// Bounded fuzzing of image decoding (proptest, fixed seed; `PROPTEST_CASES` /
/// `PROPTEST_RNG_SEED` run a longer campaign, see docs/testing.md): PNG and JPEG headers
/// declaring any size (up to 100k×100k and beyond), and small real images with mutated
/// bytes. Never a panic; errors are `Decode` or `Shape`; a frame over the limits is refused
/// from its header, before anything the size of its pixels is allocated.
#[cfg(test)]
mod fuzz {
    #![allow(clippy::unwrap_used)]
    use super::tests::png_with_header;
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::{select, Index};
    use proptest::test_runner::RngSeed;

    fn fuzz_config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            rng_seed: RngSeed::Fixed(0x0A26_0005),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// A JPEG's start: SOI, a baseline SOF0 header declaring `w`×`h` with `components`
    /// channels, then EOI (no tables, no scan).
    fn jpeg_with_header(w: u16, h: u16, components: u8) -> Vec<u8> {
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xC0];
        let len = 8 + 3 * u16::from(components);
        out.extend_from_slice(&len.to_be_bytes());
        out.push(8);
        out.extend_from_slice(&h.to_be_bytes());
        out.extend_from_slice(&w.to_be_bytes());
        out.push(components);
        for c in 0..components {
            out.extend_from_slice(&[c + 1, 0x11, 0]);
        }
        out.extend_from_slice(&[0xFF, 0xD9]);
        out
    }

    /// Decodes with the allocation held at most, checking the error is typed.
    fn decode_checked(payload: &Payload) -> Result<(Option<RgbImage>, u64), TestCaseError> {
        let mut result = None;
        let info = allocation_counter::measure(|| result = Some(decode(payload)));
        match result.unwrap() {
            Ok(img) => Ok((Some(img), info.bytes_max)),
            Err(ModelError::Decode { .. } | ModelError::Shape { .. }) => Ok((None, info.bytes_max)),
            Err(other) => Err(TestCaseError::fail(format!("{other:?}"))),
        }
    }

    fn side() -> impl Strategy<Value = u32> {
        prop_oneof![
            1u32..64,
            select(vec![
                0,
                4096,
                4097,
                8192,
                8193,
                65_535,
                100_000,
                u32::MAX >> 1,
                u32::MAX
            ]),
            any::<u32>(),
        ]
    }

    fn small_image() -> impl Strategy<Value = (ImageFormat, Vec<u8>)> {
        (1u32..24, 1u32..24, any::<bool>(), any::<u8>()).prop_map(|(w, h, png, seed)| {
            let img = RgbImage::from_fn(w, h, |x, y| {
                image::Rgb([seed ^ x as u8, (y as u8).wrapping_mul(7), seed])
            });
            let (format, f) = if png {
                (ImageFormat::Png, image::ImageFormat::Png)
            } else {
                (ImageFormat::Jpeg, image::ImageFormat::Jpeg)
            };
            let mut bytes = Cursor::new(Vec::new());
            img.write_to(&mut bytes, f).unwrap();
            (format, bytes.into_inner())
        })
    }

    proptest! {
        #![proptest_config(fuzz_config(200))]

        /// A letterboxed frame sits where the geometry that maps boxes back says: inside
        /// the placed rectangle the frame's colour, outside it the pad colour.
        #[test]
        fn letterbox_places_the_frame_where_the_geometry_says(
            fw in 1u32..400, fh in 1u32..400, iw in 8u32..160, ih in 8u32..160,
        ) {
            let img = RgbImage::from_pixel(fw, fh, image::Rgb([200, 10, 60]));
            let boxed = letterbox(&img, (iw, ih), Filter::Triangle, [114, 114, 114]);
            prop_assert_eq!(boxed.dimensions(), (iw, ih));
            let g = crate::detection::Geometry::new(crate::detection::Fit::Letterbox, (fw, fh), (iw, ih));
            let (x0, y0) = (g.pad_x as u32, g.pad_y as u32);
            let (w, h) = ((fw as f32 * g.scale_x).round() as u32, (fh as f32 * g.scale_y).round() as u32);
            prop_assert!(w == iw || h == ih, "one side fills the input");
            for (x, y, p) in boxed.enumerate_pixels() {
                let inside = x >= x0 && x < x0 + w && y >= y0 && y < y0 + h;
                let want = if inside { [200, 10, 60] } else { [114, 114, 114] };
                prop_assert_eq!(p.0, want, "pixel ({}, {}) of {}x{} in {}x{}", x, y, fw, fh, iw, ih);
            }
        }
    }

    /// Bytes held at once while refusing a header: the reader's buffers, never pixels.
    const REFUSAL_BYTES: u64 = 1 << 20;

    proptest! {
        #![proptest_config(fuzz_config(2000))]

        /// PNG headers of any size, bit depth and colour type (valid or not).
        #[test]
        fn fuzz_image_png_header(
            w in side(),
            h in side(),
            depth in select(vec![1u8, 2, 4, 8, 16, 0, 3, 255]),
            colour in select(vec![0u8, 2, 3, 4, 6, 1, 7]),
        ) {
            let bytes = png_with_header(w, h, depth, colour);
            let (img, held) = decode_checked(&Payload::Encoded { format: ImageFormat::Png, bytes })?;
            let pixels = u64::from(w) * u64::from(h);
            if w > MAX_DIMENSION || h > MAX_DIMENSION || pixels > MAX_DECODED_PIXELS {
                prop_assert!(img.is_none());
                prop_assert!(held <= REFUSAL_BYTES, "refusing {w}x{h} held {held} bytes");
            }
        }

        /// JPEG frame headers of any size and channel count.
        #[test]
        fn fuzz_image_jpeg_header(w in any::<u16>(), h in any::<u16>(), components in 0u8..5) {
            let bytes = jpeg_with_header(w, h, components);
            let (img, held) = decode_checked(&Payload::Encoded { format: ImageFormat::Jpeg, bytes })?;
            prop_assert!(img.is_none(), "a JPEG without a scan decoded");
            let pixels = u64::from(w) * u64::from(h);
            if u32::from(w) > MAX_DIMENSION || u32::from(h) > MAX_DIMENSION || pixels > MAX_DECODED_PIXELS {
                prop_assert!(held <= REFUSAL_BYTES, "refusing {w}x{h} held {held} bytes");
            }
        }

        /// Small real PNGs and JPEGs with a few bytes changed, cut or overwritten by a
        /// header field.
        #[test]
        fn fuzz_image_mutated_files(
            (format, good) in small_image(),
            edits in proptest::collection::vec((any::<Index>(), any::<u8>(), 0u8..3), 1..6),
        ) {
            let (img, _) = decode_checked(&Payload::Encoded { format, bytes: good.clone() })?;
            prop_assert!(img.is_some(), "an encoded image did not decode");
            let mut bytes = good;
            for (i, b, how) in edits {
                let len = bytes.len();
                match how {
                    0 => bytes[i.index(len)] = b,
                    1 => bytes.truncate(i.index(len + 1)),
                    _ if len >= 4 => {
                        let at = i.index(len - 3);
                        bytes[at..at + 4].copy_from_slice(&u32::from(b).rotate_right(8).to_be_bytes());
                    }
                    _ => {}
                }
                if bytes.is_empty() { break; }
            }
            if let (Some(img), _) = decode_checked(&Payload::Encoded { format, bytes })? {
                prop_assert!(u64::from(img.width()) * u64::from(img.height()) <= MAX_DECODED_PIXELS);
            }
        }

        /// Raw payloads of any declared size and data length.
        #[test]
        fn fuzz_image_raw_declared_sizes(
            w in side(),
            h in side(),
            layout in select(vec![PixelLayout::Rgb8, PixelLayout::Bgr8, PixelLayout::Gray8]),
            extra in -2i64..3,
        ) {
            let fits = (1..=64).contains(&w) && (1..=64).contains(&h);
            let len = if fits {
                usize::try_from((i64::from(w * h) * layout.channels() as i64 + extra).max(0)).unwrap()
            } else {
                usize::try_from(extra.max(0)).unwrap()
            };
            let raw = RawImage { width: w, height: h, layout, data: vec![9; len] };
            let (img, _) = decode_checked(&Payload::Raw(raw))?;
            prop_assert_eq!(img.is_some(), fits && extra == 0);
        }
    }

    /// The brief's case: a tiny PNG declaring 100k×100k pixels is refused from its header,
    /// holding no more than the reader's buffers.
    #[test]
    fn fuzz_image_regression_100k_square_png_is_refused_before_allocation() {
        let payload = Payload::Encoded {
            format: ImageFormat::Png,
            bytes: png_with_header(100_000, 100_000, 16, 6),
        };
        let mut result = None;
        let info = allocation_counter::measure(|| result = Some(decode(&payload)));
        assert!(
            matches!(result, Some(Err(ModelError::Decode { .. }))),
            "{result:?}"
        );
        assert!(info.bytes_max <= REFUSAL_BYTES, "{info:?}");
    }
}
