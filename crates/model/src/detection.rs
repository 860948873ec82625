//! Detection outputs → boxes in frame pixels (issue 17, first part): the geometry of
//! letterbox and stretch preprocessing, the two output decodings detection graphs export,
//! per-class score thresholds and class-aware non-maximum suppression. Pure: no engine, no
//! image; the bundle loader and the worker build on it.
//!
//! - [`Geometry`]: where a frame of W×H lands in the model's input (stretched to fill it,
//!   or scaled to fit with its aspect ratio kept and padded — letterbox) and the way back,
//!   so boxes are reported in frame pixels, clipped to the frame.
//! - [`decode_yolo`]: YOLO-style heads, one `[4 + C, N]` tensor (as YOLOv8 exports: for each
//!   of N candidates the box centre, width and height in input pixels, then C class
//!   scores); a candidate's class is its best-scoring one.
//! - [`decode_ssd`]: SSD-style graphs that decode in the graph: `[N, 4]` boxes as
//!   `(ymin, xmin, ymax, xmax)` normalised to the input, `[N, C]` scores (or `[N]` scores
//!   and `[N]` classes).
//! - [`nms`]: greedy NMS per class (boxes of different classes never suppress each
//!   other), highest score first, ties broken by candidate order so the result is
//!   deterministic.

use crate::manifest::{DetectionFormat, Manifest, Resize};
use argus_wire::DetectedBox;

/// An axis-aligned box, `x1 ≤ x2`, `y1 ≤ y2`, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BBox {
    /// Left.
    pub x1: f32,
    /// Top.
    pub y1: f32,
    /// Right.
    pub x2: f32,
    /// Bottom.
    pub y2: f32,
}

impl BBox {
    /// A box from its corners, in any order.
    pub fn new(xa: f32, ya: f32, xb: f32, yb: f32) -> BBox {
        BBox {
            x1: xa.min(xb),
            y1: ya.min(yb),
            x2: xa.max(xb),
            y2: ya.max(yb),
        }
    }

    /// Width × height.
    pub fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }

    /// The area this box shares with `other` (0 when they do not overlap).
    pub fn overlap(&self, other: &BBox) -> f32 {
        let w = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let h = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        w * h
    }

    /// Intersection over union (0 when both are empty).
    pub fn iou(&self, other: &BBox) -> f32 {
        let inter = self.overlap(other);
        let union = self.area() + other.area() - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }
}

/// One detected object.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detection {
    /// Class index (into the bundle's labels).
    pub class: usize,
    /// Its score.
    pub score: f32,
    /// Where, in input pixels after decoding, in frame pixels after [`Geometry::to_frame`].
    pub bbox: BBox,
}

/// The boxes as predictions report them (`argus.prediction/v3`): each with its label from
/// `labels` (the class index as text when the bundle names fewer labels).
pub fn detected_boxes(detections: &[Detection], labels: &[String]) -> Vec<DetectedBox> {
    detections
        .iter()
        .map(|d| DetectedBox {
            label: labels
                .get(d.class)
                .cloned()
                .unwrap_or_else(|| d.class.to_string()),
            index: u32::try_from(d.class).unwrap_or(u32::MAX),
            score: d.score,
            bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
        })
        .collect()
}

/// How a frame is fitted to the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Each axis scaled on its own to fill the input (aspect ratio not kept).
    Stretch,
    /// Scaled by one factor to fit inside the input, centred, the rest padded.
    Letterbox,
}

/// Where a letterboxed `frame` (w, h) lands in an `input` (w, h), in whole pixels: the
/// scaled size (aspect ratio kept, at least 1) and the top-left offset; the
/// preprocessing resizes to that size and pastes it there, and [`Geometry`] maps boxes
/// back by the same numbers.
pub fn letterbox_placement(frame: (u32, u32), input: (u32, u32)) -> (u32, u32, u32, u32) {
    let (fw, fh) = (frame.0.max(1) as f64, frame.1.max(1) as f64);
    let (iw, ih) = (input.0.max(1), input.1.max(1));
    let s = (f64::from(iw) / fw).min(f64::from(ih) / fh);
    let w = ((fw * s).round() as u32).clamp(1, iw);
    let h = ((fh * s).round() as u32).clamp(1, ih);
    (w, h, (iw - w) / 2, (ih - h) / 2)
}

/// Where a frame lands in the model's input: `input = frame · scale + pad`, per axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Horizontal scale.
    pub scale_x: f32,
    /// Vertical scale.
    pub scale_y: f32,
    /// Left padding, input pixels.
    pub pad_x: f32,
    /// Top padding, input pixels.
    pub pad_y: f32,
    /// Frame width, pixels.
    pub frame_w: f32,
    /// Frame height, pixels.
    pub frame_h: f32,
}

impl Geometry {
    /// The geometry of fitting a `frame` (w, h) into an `input` (w, h); sizes of 0 count as 1.
    pub fn new(fit: Fit, frame: (u32, u32), input: (u32, u32)) -> Geometry {
        let (fw, fh) = (frame.0.max(1) as f32, frame.1.max(1) as f32);
        let (iw, ih) = (input.0.max(1) as f32, input.1.max(1) as f32);
        match fit {
            Fit::Stretch => Geometry {
                scale_x: iw / fw,
                scale_y: ih / fh,
                pad_x: 0.0,
                pad_y: 0.0,
                frame_w: fw,
                frame_h: fh,
            },
            Fit::Letterbox => {
                let (w, h, x0, y0) = letterbox_placement(frame, input);
                Geometry {
                    scale_x: w as f32 / fw,
                    scale_y: h as f32 / fh,
                    pad_x: x0 as f32,
                    pad_y: y0 as f32,
                    frame_w: fw,
                    frame_h: fh,
                }
            }
        }
    }

    /// A box in input pixels → frame pixels, clipped to the frame.
    pub fn to_frame(&self, b: &BBox) -> BBox {
        let x = |v: f32| ((v - self.pad_x) / self.scale_x).clamp(0.0, self.frame_w);
        let y = |v: f32| ((v - self.pad_y) / self.scale_y).clamp(0.0, self.frame_h);
        BBox::new(x(b.x1), y(b.y1), x(b.x2), y(b.y2))
    }

    /// A box in frame pixels → input pixels (the inverse of [`Geometry::to_frame`] inside
    /// the frame).
    pub fn to_input(&self, b: &BBox) -> BBox {
        BBox::new(
            b.x1 * self.scale_x + self.pad_x,
            b.y1 * self.scale_y + self.pad_y,
            b.x2 * self.scale_x + self.pad_x,
            b.y2 * self.scale_y + self.pad_y,
        )
    }
}

/// Score thresholds: one per class where given, else the default.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// For classes not listed.
    pub default: f32,
    /// (class, threshold).
    pub per_class: Vec<(usize, f32)>,
}

impl Thresholds {
    /// The same threshold for every class.
    pub fn all(t: f32) -> Thresholds {
        Thresholds {
            default: t,
            per_class: Vec::new(),
        }
    }

    /// The threshold of `class`.
    pub fn of(&self, class: usize) -> f32 {
        self.per_class
            .iter()
            .find(|(c, _)| *c == class)
            .map_or(self.default, |(_, t)| *t)
    }
}

/// Why an output tensor cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The tensor's length does not match the shape the manifest declares.
    #[error("{what}: expected {expected} values, the model gave {got}")]
    Shape {
        /// Which output.
        what: &'static str,
        /// Values expected.
        expected: usize,
        /// Values given.
        got: usize,
    },
}

/// YOLO-style output `[4 + classes, n]` (row-major: all centre-x values, then all centre-y,
/// width, height, then each class's scores): the candidates whose best class reaches its
/// threshold, in input pixels, in candidate order.
pub fn decode_yolo(
    out: &[f32],
    classes: usize,
    n: usize,
    thresholds: &Thresholds,
) -> Result<Vec<Detection>, DecodeError> {
    let expected = (4 + classes) * n;
    if out.len() != expected {
        return Err(DecodeError::Shape {
            what: "YOLO output [4 + classes, candidates]",
            expected,
            got: out.len(),
        });
    }
    let at = |row: usize, i: usize| out[row * n + i];
    let mut dets = Vec::new();
    for i in 0..n {
        let Some((class, score)) = best_class((0..classes).map(|c| at(4 + c, i))) else {
            continue;
        };
        if score < thresholds.of(class) {
            continue;
        }
        let (cx, cy, w, h) = (at(0, i), at(1, i), at(2, i), at(3, i));
        if ![cx, cy, w, h].iter().all(|v| v.is_finite()) {
            continue;
        }
        dets.push(Detection {
            class,
            score,
            bbox: BBox::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0),
        });
    }
    Ok(dets)
}

/// SSD-style outputs decoded in the graph: `boxes` `[n, 4]` as `(ymin, xmin, ymax, xmax)`
/// normalised to the input, `scores` `[n, num_classes]` (`[n]` for one class) and
/// optionally `classes` `[n]` (class indices as floats, as TensorFlow's post-processed
/// exports give; `scores` is then `[n]`). Without `classes` a candidate's class is its best
/// score's (ties: the lower class). Those reaching their class's threshold, in input
/// pixels, in candidate order.
pub fn decode_ssd(
    boxes: &[f32],
    scores: &[f32],
    classes: Option<&[f32]>,
    num_classes: usize,
    input: (u32, u32),
    thresholds: &Thresholds,
) -> Result<Vec<Detection>, DecodeError> {
    let n = boxes.len() / 4;
    let columns = if classes.is_some() {
        1
    } else {
        num_classes.max(1)
    };
    let mut checks = vec![
        ("SSD boxes [candidates, 4]", boxes.len(), 4 * n),
        (
            "SSD scores [candidates, classes]",
            scores.len(),
            columns * n,
        ),
    ];
    if let Some(c) = classes {
        checks.push(("SSD classes [candidates]", c.len(), n));
    }
    for (what, got, expected) in checks {
        if got != expected {
            return Err(DecodeError::Shape {
                what,
                expected,
                got,
            });
        }
    }
    let (iw, ih) = (input.0 as f32, input.1 as f32);
    let mut dets = Vec::new();
    for i in 0..n {
        let best = match classes {
            Some(c) => {
                let (score, class) = (scores[i], c[i]);
                (score.is_finite() && class.is_finite() && class >= 0.0)
                    .then(|| (class.round() as usize, score))
            }
            None => best_class(scores[i * columns..(i + 1) * columns].iter().copied()),
        };
        let Some((class, score)) = best else { continue };
        if score < thresholds.of(class) {
            continue;
        }
        let b = &boxes[4 * i..4 * i + 4];
        if !b.iter().all(|v| v.is_finite()) {
            continue;
        }
        dets.push(Detection {
            class,
            score,
            bbox: BBox::new(b[1] * iw, b[0] * ih, b[3] * iw, b[2] * ih),
        });
    }
    Ok(dets)
}

/// The best finite score and its class (ties: the lower class).
fn best_class(scores: impl IntoIterator<Item = f32>) -> Option<(usize, f32)> {
    let mut best: Option<(usize, f32)> = None;
    for (c, s) in scores.into_iter().enumerate() {
        if s.is_finite() && best.is_none_or(|(_, b)| s > b) {
            best = Some((c, s));
        }
    }
    best
}

/// Greedy non-maximum suppression per class: highest score first (ties: earlier candidate
/// first); a box is dropped when it overlaps a kept box of its class by more than
/// `iou_threshold`; at most `max_per_class` per class. Output: highest score first.
pub fn nms(dets: &[Detection], iou_threshold: f32, max_per_class: usize) -> Vec<Detection> {
    let mut order: Vec<usize> = (0..dets.len()).collect();
    order.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score).then(a.cmp(&b)));
    let mut kept: Vec<usize> = Vec::new();
    let mut per_class: std::collections::HashMap<usize, usize> = Default::default();
    for i in order {
        let d = &dets[i];
        let n = per_class.entry(d.class).or_default();
        if *n >= max_per_class {
            continue;
        }
        let overlaps = kept
            .iter()
            .any(|&k| dets[k].class == d.class && dets[k].bbox.iou(&d.bbox) > iou_threshold);
        if !overlaps {
            *n += 1;
            kept.push(i);
        }
    }
    kept.into_iter().map(|i| dets[i]).collect()
}

/// A detection bundle's decoding, read from its manifest: the model's outputs for one
/// frame → boxes in frame pixels, thresholded and suppressed, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionHead {
    format: DetectionFormat,
    classes: usize,
    thresholds: Thresholds,
    iou_threshold: f32,
    max_per_class: usize,
    fit: Fit,
    input: (u32, u32),
    has_classes_output: bool,
}

impl DetectionHead {
    /// The head of a validated detection manifest; `None` for other tasks.
    pub fn from_manifest(m: &Manifest) -> Option<DetectionHead> {
        let d = m.detection.as_ref()?;
        let (h, w) = m.image_size();
        let fit = match m.preprocess.as_ref().map(|p| p.resize) {
            Some(Resize::Letterbox) => Fit::Letterbox,
            _ => Fit::Stretch,
        };
        Some(DetectionHead {
            format: d.format,
            classes: m.output.labels.len(),
            thresholds: Thresholds {
                default: d.score_threshold,
                per_class: d
                    .thresholds
                    .iter()
                    .filter_map(|(label, t)| {
                        Some((m.output.labels.iter().position(|l| l == label)?, *t))
                    })
                    .collect(),
            },
            iou_threshold: d.iou_threshold,
            max_per_class: d.max_detections,
            fit,
            input: (
                u32::try_from(w).unwrap_or(u32::MAX),
                u32::try_from(h).unwrap_or(u32::MAX),
            ),
            has_classes_output: d.classes.is_some(),
        })
    }

    /// How frames are fitted to the input.
    pub fn fit(&self) -> Fit {
        self.fit
    }

    /// The model's input size (w, h).
    pub fn input_size(&self) -> (u32, u32) {
        self.input
    }

    /// Boxes in frame pixels for one frame of size `frame` (w, h), from the values of the
    /// outputs [`Manifest::output_names`] lists, in that order.
    pub fn detect(
        &self,
        outputs: &[&[f32]],
        frame: (u32, u32),
    ) -> Result<Vec<Detection>, DecodeError> {
        let output = |i: usize, what: &'static str| {
            outputs.get(i).copied().ok_or(DecodeError::Shape {
                what,
                expected: 1,
                got: 0,
            })
        };
        let candidates = match self.format {
            DetectionFormat::Yolo => {
                let out = output(0, "YOLO output [4 + classes, candidates]")?;
                let rows = 4 + self.classes;
                if out.len() % rows != 0 {
                    return Err(DecodeError::Shape {
                        what: "YOLO output [4 + classes, candidates]",
                        expected: out.len().next_multiple_of(rows),
                        got: out.len(),
                    });
                }
                decode_yolo(out, self.classes, out.len() / rows, &self.thresholds)?
            }
            DetectionFormat::Ssd => decode_ssd(
                output(0, "SSD boxes [candidates, 4]")?,
                output(1, "SSD scores [candidates, classes]")?,
                if self.has_classes_output {
                    Some(output(2, "SSD classes [candidates]")?)
                } else {
                    None
                },
                self.classes,
                self.input,
                &self.thresholds,
            )?,
        };
        let g = Geometry::new(self.fit, frame, self.input);
        let mut kept = nms(&candidates, self.iou_threshold, self.max_per_class);
        for d in &mut kept {
            d.bbox = g.to_frame(&d.bbox);
        }
        Ok(kept)
    }

    /// Each class's best box score (0 where it found none): a frame's score per label.
    pub fn scores(&self, detections: &[Detection]) -> Vec<f32> {
        let mut best = vec![0f32; self.classes];
        for d in detections {
            if let Some(b) = best.get_mut(d.class) {
                *b = b.max(d.score);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn det(class: usize, score: f32, x: f32, y: f32, w: f32, h: f32) -> Detection {
        Detection {
            class,
            score,
            bbox: BBox::new(x, y, x + w, y + h),
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        let b = BBox::new(5.0, 0.0, 15.0, 10.0);
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        assert_eq!(a.iou(&a), 1.0);
    }

    #[test]
    fn letterbox_pads_the_short_side_and_maps_back() {
        // 768×576 into 640×640: scale 5/6, 480 rows high, 80 rows of padding above and below.
        let g = Geometry::new(Fit::Letterbox, (768, 576), (640, 640));
        assert!((g.scale_x - 640.0 / 768.0).abs() < 1e-6);
        assert!((g.pad_y - 80.0).abs() < 1e-4 && g.pad_x.abs() < 1e-4);
        let b = g.to_frame(&BBox::new(0.0, 80.0, 640.0, 560.0));
        assert!((b.x2 - 768.0).abs() < 1e-3 && (b.y2 - 576.0).abs() < 1e-3 && b.y1.abs() < 1e-3);
        // A box in the padding is clipped to the frame's edge.
        let edge = g.to_frame(&BBox::new(10.0, 0.0, 20.0, 40.0));
        assert_eq!((edge.y1, edge.y2), (0.0, 0.0));
        // Stretch scales each axis.
        let s = Geometry::new(Fit::Stretch, (1920, 1080), (300, 300));
        let b = s.to_frame(&BBox::new(150.0, 150.0, 300.0, 300.0));
        assert!((b.x1 - 960.0).abs() < 1e-3 && (b.y1 - 540.0).abs() < 1e-3);
    }

    #[test]
    fn yolo_candidates_take_their_best_class_and_its_threshold() {
        // 3 candidates, 2 classes; rows: cx, cy, w, h, class 0, class 1.
        let out = [
            100.0, 200.0, 300.0, // cx
            50.0, 60.0, 70.0, // cy
            20.0, 20.0, 20.0, // w
            10.0, 10.0, 10.0, // h
            0.9, 0.2, 0.3, // class 0
            0.1, 0.6, 0.35, // class 1
        ];
        let t = Thresholds {
            default: 0.5,
            per_class: vec![(1, 0.3)],
        };
        let d = decode_yolo(&out, 2, 3, &t).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!((d[0].class, d[0].score), (0, 0.9));
        assert_eq!(d[0].bbox, BBox::new(90.0, 45.0, 110.0, 55.0));
        assert_eq!((d[1].class, d[2].class), (1, 1));
        let strict = decode_yolo(&out, 2, 3, &Thresholds::all(0.5)).unwrap();
        assert_eq!(strict.len(), 2, "the third's best (0.35) is below 0.5");
        assert!(matches!(
            decode_yolo(&out[..17], 2, 3, &t),
            Err(DecodeError::Shape {
                expected: 18,
                got: 17,
                ..
            })
        ));
    }

    #[test]
    fn ssd_boxes_are_normalised_yxyx() {
        let boxes = [0.1, 0.2, 0.5, 0.6, 0.0, 0.0, 1.0, 1.0];
        let d = decode_ssd(
            &boxes,
            &[0.8, 0.1],
            Some(&[1.0, 1.0]),
            2,
            (300, 300),
            &Thresholds::all(0.5),
        )
        .unwrap();
        assert_eq!(d.len(), 1);
        let b = d[0].bbox;
        assert!((b.x1 - 60.0).abs() < 1e-4 && (b.y1 - 30.0).abs() < 1e-4);
        assert!((b.x2 - 180.0).abs() < 1e-4 && (b.y2 - 150.0).abs() < 1e-4);
        assert!(decode_ssd(
            &boxes[..4],
            &[0.8, 0.1],
            Some(&[1.0, 1.0]),
            2,
            (300, 300),
            &Thresholds::all(0.5)
        )
        .is_err());
    }

    #[test]
    fn nms_is_per_class_and_keeps_the_best() {
        let dets = [
            det(0, 0.9, 0.0, 0.0, 10.0, 10.0),
            det(0, 0.8, 1.0, 1.0, 10.0, 10.0), // overlaps the first: dropped
            det(1, 0.7, 1.0, 1.0, 10.0, 10.0), // other class: kept
            det(0, 0.6, 50.0, 50.0, 10.0, 10.0),
        ];
        let kept = nms(&dets, 0.5, 100);
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, [0.9, 0.7, 0.6]);
        assert_eq!(nms(&dets, 0.5, 1).len(), 2, "one per class");
    }

    fn arb_det() -> impl Strategy<Value = Detection> {
        (
            0usize..3,
            0.0f32..1.0,
            0.0f32..100.0,
            0.0f32..100.0,
            1.0f32..40.0,
            1.0f32..40.0,
        )
            .prop_map(|(c, s, x, y, w, h)| det(c, s, x, y, w, h))
    }

    proptest! {
        #[test]
        fn nms_leaves_no_overlapping_pair_of_a_class(
            dets in proptest::collection::vec(arb_det(), 0..40),
            iou in 0.1f32..0.9,
        ) {
            let kept = nms(&dets, iou, usize::MAX);
            for (i, a) in kept.iter().enumerate() {
                prop_assert!(dets.contains(a));
                for b in &kept[i + 1..] {
                    prop_assert!(a.class != b.class || a.bbox.iou(&b.bbox) <= iou);
                    prop_assert!(a.score >= b.score);
                }
            }
            // Each class's best box survives, and NMS of its own output changes nothing.
            for c in 0..3 {
                let best = dets.iter().filter(|d| d.class == c).map(|d| d.score).fold(None, |m: Option<f32>, s| Some(m.map_or(s, |m| m.max(s))));
                if let Some(best) = best {
                    prop_assert!(kept.iter().any(|d| d.class == c && d.score == best));
                }
            }
            prop_assert_eq!(nms(&kept, iou, usize::MAX), kept);
        }

        #[test]
        fn a_frame_box_survives_the_trip_through_the_input(
            fw in 16u32..2000, fh in 16u32..2000, iw in 16u32..1000, ih in 16u32..1000,
            letterbox: bool,
            x in 0.0f32..1.0, y in 0.0f32..1.0, w in 0.0f32..1.0, h in 0.0f32..1.0,
        ) {
            let fit = if letterbox { Fit::Letterbox } else { Fit::Stretch };
            let g = Geometry::new(fit, (fw, fh), (iw, ih));
            let (fwf, fhf) = (fw as f32, fh as f32);
            let b = BBox::new(x * fwf, y * fhf, (x + w * (1.0 - x)) * fwf, (y + h * (1.0 - y)) * fhf);
            let input = g.to_input(&b);
            // Inside the input (letterbox keeps the frame within the padding).
            prop_assert!(input.x1 >= -1e-3 && input.x2 <= iw as f32 + 1e-3);
            prop_assert!(input.y1 >= -1e-3 && input.y2 <= ih as f32 + 1e-3);
            if letterbox {
                // One factor, up to the rounding of the placed size to whole pixels (a
                // side squeezed under one pixel is kept at one: up to a whole pixel then),
                // and the frame centred (the odd pixel of padding goes after it).
                let placed_w = (fwf * g.scale_x).round();
                let placed_h = (fhf * g.scale_y).round();
                let rounding = if placed_w.min(placed_h) <= 1.0 { 1.0 } else { 0.5 };
                prop_assert!((g.scale_x - g.scale_y).abs() <= rounding / fwf.min(fhf) + 1e-6);
                prop_assert!((iw as f32 - placed_w - 2.0 * g.pad_x).abs() <= 1.0);
                prop_assert!((ih as f32 - placed_h - 2.0 * g.pad_y).abs() <= 1.0);
            }
            let back = g.to_frame(&input);
            let tol = 1e-3 * fwf.max(fhf);
            prop_assert!((back.x1 - b.x1).abs() <= tol && (back.x2 - b.x2).abs() <= tol);
            prop_assert!((back.y1 - b.y1).abs() <= tol && (back.y2 - b.y2).abs() <= tol);
        }
    }
}
