//! Alert snapshots: the alerting frame as a JPEG with the boxes behind the alert (red), the
//! frame's other boxes (blue) and the zone (yellow) drawn, written to a file the alert
//! refers to — never inline in the alert. Saliency overlays: the frame as a PNG with an
//! occlusion grid's cells tinted by how much they mattered, the box explained and the peak
//! cell outlined (evidence, [`crate::evidence`]).
use argus_wire::Payload;
use image::{Rgb, RgbImage};
use std::path::Path;

/// `name` with every character but ASCII letters, digits, `.`, `-` and `_` replaced by `_`
/// (alert ids hold `/`): one safe path segment.
pub(crate) fn file_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        "_".into()
    } else {
        s
    }
}

/// Decodes `payload`, draws `others` (`[x1, y1, x2, y2]`), `boxes` and the `zone`
/// polygon, and writes a JPEG to `path` (its directory created; written to a temporary name
/// first so a reader never sees half a file).
pub(crate) fn write(
    payload: &Payload,
    boxes: &[[f32; 4]],
    others: &[[f32; 4]],
    zone: &[[f32; 2]],
    path: &Path,
) -> Result<(), String> {
    let mut img = argus_model::preprocess::decode(payload).map_err(|e| e.to_string())?;
    for b in others {
        rectangle(&mut img, b, OTHER);
    }
    draw(&mut img, boxes, zone);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("jpg.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut out = std::io::BufWriter::new(file);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .map_err(|e| e.to_string())?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Decodes `payload`, tints each cell of `saliency`'s grid red in proportion to its drop
/// (cells that did not lower the score stay as they are), outlines the box explained and
/// the peak cell, and writes a PNG to `path` (its directory created; written to a temporary
/// name first).
pub(crate) fn write_overlay(
    payload: &Payload,
    saliency: &argus_wire::Saliency,
    path: &Path,
) -> Result<(), String> {
    let mut img = argus_model::preprocess::decode(payload).map_err(|e| e.to_string())?;
    tint(&mut img, saliency);
    if let Some(b) = &saliency.bbox {
        rectangle(&mut img, b, OTHER);
    }
    rectangle(&mut img, &saliency.peak, ZONE);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("png.tmp");
    img.save_with_format(&tmp, image::ImageFormat::Png)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Tints the grid's cells (a uniform grid over the frame) red by their share of the
/// largest drop, at most 60 % opaque.
fn tint(img: &mut RgbImage, s: &argus_wire::Saliency) {
    let top = s.values.iter().copied().fold(0f32, f32::max);
    if top <= 0.0 || s.rows == 0 || s.cols == 0 {
        return;
    }
    let (w, h) = img.dimensions();
    for (y, row) in img.rows_mut().enumerate() {
        let r = (y as u64 * u64::from(s.rows) / u64::from(h.max(1))) as u32;
        for (x, px) in row.enumerate() {
            let c = (x as u64 * u64::from(s.cols) / u64::from(w.max(1))) as u32;
            let v = s
                .values
                .get((r * s.cols + c) as usize)
                .copied()
                .unwrap_or(0.0);
            let a = 0.6 * (v / top).clamp(0.0, 1.0);
            for (k, ch) in px.0.iter_mut().enumerate() {
                let target = if k == 0 { 255.0 } else { 0.0 };
                *ch = (f32::from(*ch) * (1.0 - a) + target * a).round() as u8;
            }
        }
    }
}

const ZONE: Rgb<u8> = Rgb([255, 220, 0]);
const BOX: Rgb<u8> = Rgb([255, 40, 40]);
const OTHER: Rgb<u8> = Rgb([60, 140, 255]);

/// Draws boxes and a polygon, 2 px wide, clipped to the image.
pub fn draw(img: &mut RgbImage, boxes: &[[f32; 4]], zone: &[[f32; 2]]) {
    for i in 0..zone.len() {
        let (a, b) = (zone[i], zone[(i + 1) % zone.len()]);
        line(img, (a[0], a[1]), (b[0], b[1]), ZONE);
    }
    for b in boxes {
        rectangle(img, b, BOX);
    }
}

fn rectangle(img: &mut RgbImage, b: &[f32; 4], colour: Rgb<u8>) {
    let corners = [(b[0], b[1]), (b[2], b[1]), (b[2], b[3]), (b[0], b[3])];
    for i in 0..4 {
        line(img, corners[i], corners[(i + 1) % 4], colour);
    }
}

fn line(img: &mut RgbImage, a: (f32, f32), b: (f32, f32), colour: Rgb<u8>) {
    let steps = (b.0 - a.0)
        .abs()
        .max((b.1 - a.1).abs())
        .ceil()
        .clamp(1.0, 20_000.0) as u32;
    for s in 0..=steps {
        let t = s as f32 / steps as f32;
        let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let (px, py) = (x as i64 + dx, y as i64 + dy);
            if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                img.put_pixel(px as u32, py as u32, colour);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn overlays_tint_the_cells_that_mattered() {
        let mut img = RgbImage::from_pixel(60, 40, Rgb([100, 100, 100]));
        let s = argus_wire::Saliency {
            rows: 2,
            cols: 3,
            values: vec![0.0, 2.0, 0.0, -1.0, 1.0, 0.0],
            bbox: None,
            peak: [20.0, 0.0, 40.0, 20.0],
            overlay: None,
        };
        tint(&mut img, &s);
        assert_eq!(img.get_pixel(5, 5).0, [100, 100, 100], "no drop: untouched");
        assert_eq!(img.get_pixel(30, 5).0, [193, 40, 40], "the peak: 60 % red");
        assert_eq!(
            img.get_pixel(30, 30).0,
            [147, 70, 70],
            "half the peak's drop: 30 %"
        );
        assert_eq!(img.get_pixel(5, 30).0, [100, 100, 100], "a rise: untouched");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cam-1").join("a.png");
        let mut png = Vec::new();
        RgbImage::from_pixel(60, 40, Rgb([9, 9, 9]))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let payload = Payload::Encoded {
            format: argus_wire::ImageFormat::Png,
            bytes: png,
        };
        write_overlay(&payload, &s, &path).unwrap();
        let back = image::open(&path).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), (60, 40));
        assert_ne!(back.get_pixel(30, 10).0, [9, 9, 9]);
    }

    #[test]
    fn names_are_one_safe_segment() {
        assert_eq!(file_name("frames/0/17/zone/door"), "frames_0_17_zone_door");
        assert_eq!(file_name(".."), "_");
        assert_eq!(file_name("cam-1"), "cam-1");
    }

    #[test]
    fn boxes_and_zone_are_drawn_and_clipped() {
        let mut img = RgbImage::new(40, 30);
        draw(
            &mut img,
            &[[5.0, 5.0, 20.0, 25.0], [30.0, 10.0, 90.0, 90.0]],
            &[[0.0, 0.0], [39.0, 0.0], [39.0, 29.0]],
        );
        assert_eq!(
            img.get_pixel(5, 15),
            &Rgb([255, 40, 40]),
            "left edge of the box"
        );
        assert_eq!(
            img.get_pixel(10, 0),
            &Rgb([255, 220, 0]),
            "the zone's top edge"
        );
        assert_eq!(
            img.get_pixel(12, 15),
            &Rgb([0, 0, 0]),
            "inside the box is untouched"
        );
    }
}
