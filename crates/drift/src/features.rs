//! From stream messages to feature values: frames → image features (pinned in
//! `argus_stats::image`), predictions → score and predicted class, records → named fields.
//! The profile builder uses exactly these functions, so reference and stream agree.
use argus_stats::image::{frame_features_with_histograms, FrameFeatures, ImageHistograms};
use argus_wire::{Payload, Prediction, PredictionOutcome, Value};
use image::RgbImage;

/// Frames are analysed at most this many pixels on the long side (downscaled with a box
/// filter first), so cost per frame does not grow with camera resolution.
pub const MAX_SIDE: u32 = 256;
/// Feature names of an image stream, in order: the per-frame features of
/// [`FrameFeatures::NAMES`], then `bytes` (encoded size).
pub fn image_feature_names() -> Vec<String> {
    FrameFeatures::NAMES
        .iter()
        .map(|s| (*s).to_owned())
        .chain(std::iter::once("bytes".to_owned()))
        .collect()
}
/// Output features of a classification model.
pub const SCORE: &str = "score";
/// Output feature: the model's predicted class.
pub const PREDICTED_CLASS: &str = "predicted_class";

/// Why a frame yielded no features (the `reason` label of `drift_records_invalid_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub &'static str, pub String);

/// Decode a frame (encoded or raw), downscale to ≤ [`MAX_SIDE`], and compute its features,
/// adding its pixels to `hist`. Values are in [`image_feature_names`] order. A frame that
/// cannot be decoded yields `Err`, and the caller counts it as null in every feature so the
/// null-share test sees decode failures.
pub fn frame_values(payload: &Payload, hist: &mut ImageHistograms) -> Result<Vec<f64>, Invalid> {
    let bytes = match payload {
        Payload::Encoded { bytes, .. } => bytes.len() as f64,
        Payload::Raw(raw) => raw.data.len() as f64,
        Payload::Record(_) => {
            return Err(Invalid(
                "not_an_image",
                "payload is a record, profile is for images".into(),
            ))
        }
    };
    let img =
        argus_model::preprocess::decode(payload).map_err(|e| Invalid("decode", e.to_string()))?;
    let img = downscale(img);
    let f = frame_features_with_histograms(img.as_raw(), img.width(), img.height(), hist)
        .map_err(|e| Invalid("decode", e.to_string()))?;
    let mut v = f.values().to_vec();
    v.push(bytes);
    Ok(v)
}

/// Integer box downscale so the long side is at most [`MAX_SIDE`]: with `f = ⌈long / 256⌉`,
/// each output pixel is the rounded mean of an `f × f` block (`w / f × h / f` pixels; the
/// last `w mod f` columns and `h mod f` rows are dropped). No-op when already small. Pinned
/// here because reference and stream must agree; about 10× faster than a fractional resize.
pub fn downscale(img: RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let long = w.max(h);
    if long <= MAX_SIDE {
        return img;
    }
    let f = long.div_ceil(MAX_SIDE);
    let (nw, nh) = ((w / f).max(1), (h / f).max(1));
    let (f, nw_us, w_us, h_us) = (f as usize, nw as usize, w as usize, h as usize);
    let src = img.as_raw();
    let mut out = Vec::with_capacity(nw_us * nh as usize * 3);
    let mut acc = vec![0u32; nw_us * 3];
    for oy in 0..nh as usize {
        acc.iter_mut().for_each(|a| *a = 0);
        // Blocks are clipped to the image (a side shorter than f gives one narrower block).
        let rows = oy * f..(oy * f + f).min(h_us);
        let n_rows = rows.len();
        for y in rows {
            let row = &src[y * w_us * 3..(y + 1) * w_us * 3];
            for (ox, a) in acc.chunks_exact_mut(3).enumerate() {
                let cols = (ox * f).min(w_us)..(ox * f + f).min(w_us);
                for px in row[cols.start * 3..cols.end * 3].chunks_exact(3) {
                    a[0] += u32::from(px[0]);
                    a[1] += u32::from(px[1]);
                    a[2] += u32::from(px[2]);
                }
            }
        }
        for ox in 0..nw_us {
            let n_cols = ((ox * f + f).min(w_us)).saturating_sub((ox * f).min(w_us));
            let area = (n_rows * n_cols).max(1) as u32;
            out.extend(
                acc[ox * 3..ox * 3 + 3]
                    .iter()
                    .map(|a| ((a + area / 2) / area) as u8),
            );
        }
    }
    RgbImage::from_raw(nw, nh, out).unwrap_or_else(|| image::imageops::thumbnail(&img, nw, nh))
}

/// The model outputs the sidecar watches, from one prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// P(positive label), when the prediction carries it (or it follows from a binary top).
    pub score: Option<f64>,
    /// The predicted class (the best label).
    pub predicted_class: Option<String>,
}

/// Score and class of a model prediction; `None` for skipped (stale) inputs.
pub fn prediction_outputs(p: &Prediction, positive_label: Option<&str>) -> Option<Outputs> {
    if p.outcome != PredictionOutcome::Ok {
        return None;
    }
    let score = match positive_label {
        Some(pos) => p
            .top
            .iter()
            .find(|s| s.label == pos)
            .map(|s| f64::from(s.score))
            .or_else(|| {
                // A binary model reporting only its top class: P(pos) = 1 − P(top).
                (p.top.len() == 1 && p.label.as_deref() != Some(pos))
                    .then(|| 1.0 - f64::from(p.top[0].score))
            }),
        None => p.score.map(f64::from),
    };
    Some(Outputs {
        score,
        predicted_class: p.label.clone(),
    })
}

/// Value of a record field as a summary cell.
pub fn field_cell(v: &Value) -> argus_stats::summary::Cell<'_> {
    use argus_stats::summary::Cell;
    match v {
        Value::Null => Cell::Null,
        Value::Bool(b) => Cell::Text(if *b { "true" } else { "false" }),
        Value::Int(i) => Cell::Num(*i as f64),
        Value::Float(x) => Cell::Num(*x),
        Value::Text(t) => Cell::Text(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downscale_averages_blocks() {
        // 600×300 → f = 3 → 200×100; a block of values 0..9 (+ channel offsets) averages to 4.
        let img = RgbImage::from_fn(600, 300, |x, y| {
            let v = ((y % 3) * 3 + x % 3) as u8;
            image::Rgb([v, v + 10, v + 20])
        });
        let small = downscale(img);
        assert_eq!(small.dimensions(), (200, 100));
        assert!(small.pixels().all(|p| p.0 == [4, 14, 24]));
        let tiny = RgbImage::new(100, 50);
        assert_eq!(downscale(tiny).dimensions(), (100, 50));
        // 257 wide → f = 2.
        assert_eq!(downscale(RgbImage::new(257, 3)).dimensions(), (128, 1));
        // A side shorter than the block: no panic, one narrower block.
        let strip = RgbImage::from_pixel(1, 600, image::Rgb([9, 9, 9]));
        let small = downscale(strip);
        assert_eq!(small.dimensions(), (1, 200));
        assert!(small.pixels().all(|p| p.0 == [9, 9, 9]));
    }
}
