//! Occlusion saliency (Zeiler & Fergus, 2014) for image models: the frame's area in the
//! model input is cut into a coarse grid; each cell in turn is blanked (set to the image's
//! mean colour in the model's input space) and the model runs again; a cell's saliency is
//! how much the label's score dropped. For detection models the score is that of the box
//! explained (the best box of the label overlapping it by IoU ≥ [`MATCH_IOU`], 0 when it
//! vanished), so one set of occluded runs gives a grid per box.
//!
//! Model-agnostic and batch-friendly (every occluded input is independent); it costs
//! `grid²` model calls per alert, one at a time (detectors exported for batch 1 cannot
//! batch).
use crate::classifier::{Classification, Classifier};
use crate::detection::{BBox, Detection, Fit, Geometry};
use crate::error::ModelError;
use crate::manifest::{Layout, Resize};
use argus_wire::{Payload, Saliency};

/// Overlap with the explained box at which an occluded run's box counts as the same object.
pub const MATCH_IOU: f32 = 0.3;
/// Largest grid side.
pub const MAX_GRID: u32 = 16;

/// One grid for `label` (classifiers) or one per box in `boxes` (detectors, frame pixels).
pub fn occlusion(
    model: &Classifier,
    payload: &Payload,
    label: usize,
    boxes: &[Detection],
    grid: u32,
) -> Result<Vec<Saliency>, ModelError> {
    let prepared = model.prepare(payload)?;
    let m = model.manifest();
    let (h, w) = m.image_size();
    let input = (w as u32, h as u32);
    let frame = prepared.frame.unwrap_or(input);
    let fit = match model.detection_head() {
        Some(head) => head.fit(),
        None => match m.preprocess.as_ref().map(|p| p.resize) {
            Some(Resize::Letterbox) => Fit::Letterbox,
            _ => Fit::Stretch,
        },
    };
    let geometry = Geometry::new(fit, frame, input);
    let targets: Vec<Option<BBox>> = if model.detection_head().is_some() {
        boxes.iter().map(|d| Some(d.bbox)).collect()
    } else {
        vec![None]
    };
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let run = |data: Vec<f32>| -> Result<Classification, ModelError> {
        let p = crate::classifier::Prepared {
            data,
            ..prepared.clone()
        };
        model
            .classify_batch(std::slice::from_ref(&p))?
            .pop()
            .ok_or_else(|| ModelError::Inference {
                source: "model produced no output".into(),
            })
    };
    let base = run(prepared.data.clone())?;
    let baseline: Vec<f32> = targets.iter().map(|t| score_of(&base, label, *t)).collect();
    let channels = m.channels();
    let mean = channel_means(&prepared.data, m.layout(), channels, h * w);
    let grid = grid.clamp(1, MAX_GRID);
    // The frame's area in input pixels (letterboxing leaves padding around it).
    let area = [
        geometry.pad_x,
        geometry.pad_y,
        geometry.pad_x + geometry.frame_w * geometry.scale_x,
        geometry.pad_y + geometry.frame_h * geometry.scale_y,
    ];
    let cell = |r: u32, c: u32| -> [usize; 4] {
        let at = |a: f32, b: f32, k: u32| (a + (b - a) * k as f32 / grid as f32).round() as usize;
        [
            at(area[0], area[2], c),
            at(area[1], area[3], r),
            at(area[0], area[2], c + 1).min(w),
            at(area[1], area[3], r + 1).min(h),
        ]
    };
    let mut values = vec![Vec::with_capacity((grid * grid) as usize); targets.len()];
    for r in 0..grid {
        for c in 0..grid {
            let mut data = prepared.data.clone();
            blank(&mut data, m.layout(), (h, w), cell(r, c), &mean);
            let out = run(data)?;
            for (k, t) in targets.iter().enumerate() {
                values[k].push(baseline[k] - score_of(&out, label, *t));
            }
        }
    }
    Ok(targets
        .iter()
        .zip(values)
        .map(|(t, values)| {
            let best = values
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i) as u32;
            let [x1, y1, x2, y2] = cell(best / grid, best % grid);
            let peak = geometry.to_frame(&BBox::new(x1 as f32, y1 as f32, x2 as f32, y2 as f32));
            Saliency {
                rows: grid,
                cols: grid,
                values,
                bbox: t.map(|b| [b.x1, b.y1, b.x2, b.y2]),
                peak: [peak.x1, peak.y1, peak.x2, peak.y2],
                overlay: None,
            }
        })
        .collect())
}

/// The label's score: its probability, or the best matching box's score.
fn score_of(c: &Classification, label: usize, target: Option<BBox>) -> f32 {
    match target {
        None => c.probability(label),
        Some(b) => c
            .detections
            .iter()
            .filter(|d| d.class == label && d.bbox.iou(&b) >= MATCH_IOU)
            .map(|d| d.score)
            .fold(0.0, f32::max),
    }
}

fn channel_means(data: &[f32], layout: Layout, channels: usize, plane: usize) -> Vec<f32> {
    let mut sum = vec![0f64; channels];
    for (i, v) in data.iter().enumerate() {
        let ch = match layout {
            Layout::Nchw => i / plane.max(1),
            Layout::Nhwc => i % channels.max(1),
        };
        if let Some(s) = sum.get_mut(ch) {
            *s += f64::from(*v);
        }
    }
    sum.iter()
        .map(|s| (s / plane.max(1) as f64) as f32)
        .collect()
}

/// Sets the input pixels in `rect` (`[x1, y1, x2, y2)`) to `fill` per channel.
fn blank(data: &mut [f32], layout: Layout, (h, w): (usize, usize), rect: [usize; 4], fill: &[f32]) {
    let channels = fill.len();
    for y in rect[1]..rect[3].min(h) {
        for x in rect[0]..rect[2].min(w) {
            for (ch, &f) in fill.iter().enumerate() {
                let i = match layout {
                    Layout::Nchw => ch * h * w + y * w + x,
                    Layout::Nhwc => (y * w + x) * channels + ch,
                };
                if let Some(v) = data.get_mut(i) {
                    *v = f;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanking_touches_only_the_cell_in_either_layout() {
        let (h, w) = (4, 4);
        let mut nchw = vec![1.0f32; 3 * h * w];
        blank(
            &mut nchw,
            Layout::Nchw,
            (h, w),
            [1, 2, 3, 4],
            &[0.0, 0.5, 0.25],
        );
        let changed: Vec<usize> = (0..nchw.len()).filter(|&i| nchw[i] != 1.0).collect();
        assert_eq!(changed.len(), 3 * 2 * 2);
        assert_eq!(nchw[16 + 2 * 4 + 1], 0.5);
        let mut nhwc = vec![1.0f32; 3 * h * w];
        blank(
            &mut nhwc,
            Layout::Nhwc,
            (h, w),
            [0, 0, 1, 1],
            &[0.0, 0.5, 0.25],
        );
        assert_eq!(&nhwc[..4], &[0.0, 0.5, 0.25, 1.0]);
        let means = channel_means(&nchw, Layout::Nchw, 3, h * w);
        assert!((means[0] - 12.0 / 16.0).abs() < 1e-6);
    }
}
