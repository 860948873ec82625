//! Decode cost of big JPEG frames for a small model input, per frame, on synthetic camera
//! frames of the given size: the image crate's decoder (zune-jpeg), libjpeg-turbo's full
//! decode and its DCT-domain reduced decode (`preprocess.reduced_decode`), each alone and
//! followed by the resize to the input.
//!
//! `cargo run --release -p argus-model --example decode_cost -- 1920 1080 300` (results in
//! docs/cameras.md).
use argus_model::manifest::Filter;
use argus_model::preprocess::{decode, decode_for_input, resize, MAX_DECODED_PIXELS};
use argus_wire::{ImageFormat, Payload};
use std::time::Instant;

fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: WIDTH HEIGHT INPUT"))
        .collect();
    let (w, h, input) = match args.as_slice() {
        [w, h, i] => (*w, *h, *i),
        _ => (1920, 1080, 300),
    };
    // A synthetic scene with texture (noise and edges), JPEG q85 as the bench sends.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let n = (state >> 59) as u8;
        let base = if (x / 64 + y / 48) % 2 == 0 { 90 } else { 160 };
        image::Rgb([
            base + n,
            (base / 2) + (x % 97) as u8,
            60 + (y % 71) as u8 + n,
        ])
    });
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
        .encode_image(&img)
        .expect("encodes");
    let payload = Payload::Encoded {
        format: ImageFormat::Jpeg,
        bytes,
    };
    let time = |f: &dyn Fn()| {
        let mut best = f64::INFINITY;
        for _ in 0..15 {
            let t = Instant::now();
            f();
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
        }
        best
    };
    let Payload::Encoded { bytes, .. } = &payload else {
        unreachable!("the payload is encoded")
    };
    // The image crate's decoder (zune-jpeg): what Argus decoded JPEGs with before.
    let zune = || {
        image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg)
            .expect("decodes")
            .into_rgb8()
    };
    let zune_decode = time(&|| {
        std::hint::black_box(zune());
    });
    let zune_full = time(&|| {
        std::hint::black_box(resize(&zune(), input, input, Filter::Triangle));
    });
    let ours = |reduce: bool| {
        decode_for_input(&payload, MAX_DECODED_PIXELS, (input, input), reduce)
            .expect("decodes")
            .0
    };
    let full_decode = time(&|| {
        std::hint::black_box(decode(&payload).expect("decodes"));
    });
    let full = time(&|| {
        std::hint::black_box(resize(&ours(false), input, input, Filter::Triangle));
    });
    let reduced_decode = time(&|| {
        std::hint::black_box(ours(true));
    });
    let reduced = time(&|| {
        std::hint::black_box(resize(&ours(true), input, input, Filter::Triangle));
    });
    let kb = bytes.len() as f64 / 1024.0;
    println!(
        "{w}x{h} JPEG q85 ({kb:.0} kB) for a {input}x{input} input, best of 15, ms (decode, decode + resize): \
         zune-jpeg full {zune_decode:.2}, {zune_full:.2}; libjpeg-turbo full {full_decode:.2}, {full:.2}; \
         libjpeg-turbo 1/{} {reduced_decode:.2}, {reduced:.2}",
        argus_model::preprocess::jpeg_reduction((w, h), (input, input))
    );
}
