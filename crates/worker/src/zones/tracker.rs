//! A simple multi-object tracker for one camera: greedy IoU matching of each frame's
//! boxes to the live tracks (same label only, best overlap first, ties by track then box
//! order, so it is deterministic), new tracks for unmatched boxes, and tracks dropped once
//! unseen for longer than `max_gap_us`. Enough for people walking at surveillance frame
//! rates; a motion model (SORT's Kalman filter) would hold tracks through longer
//! occlusions.

/// One tracked object.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Per-camera id, from 1, in order of appearance.
    pub id: u64,
    /// Label index.
    pub class: u32,
    /// Its last box, `[x1, y1, x2, y2]`.
    pub bbox: [f32; 4],
    /// Capture time it was first seen, µs.
    pub first_seen_us: i64,
    /// Capture time it was last seen, µs.
    pub last_seen_us: i64,
}

/// The tracks of one camera.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracker {
    tracks: Vec<Track>,
    next_id: u64,
    min_iou: f32,
    max_gap_us: i64,
}

/// Overlap of two `[x1, y1, x2, y2]` boxes (0 when either is empty).
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

impl Tracker {
    /// A tracker matching at IoU ≥ `min_iou` and forgetting tracks unseen for `max_gap_us`.
    pub fn new(min_iou: f32, max_gap_us: i64) -> Tracker {
        Tracker {
            tracks: Vec::new(),
            next_id: 1,
            min_iou,
            max_gap_us,
        }
    }

    /// The live tracks.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Takes one frame's boxes `(class, box)` captured at `now_us`; returns the track id of
    /// each box, in box order.
    pub fn update(&mut self, now_us: i64, boxes: &[(u32, [f32; 4])]) -> Vec<u64> {
        self.tracks
            .retain(|t| now_us.saturating_sub(t.last_seen_us) <= self.max_gap_us);
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            for (bi, (class, b)) in boxes.iter().enumerate() {
                if *class != t.class {
                    continue;
                }
                let o = iou(&t.bbox, b);
                if o >= self.min_iou && o > 0.0 {
                    pairs.push((o, ti, bi));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut track_of: Vec<Option<usize>> = vec![None; boxes.len()];
        let mut taken = vec![false; self.tracks.len()];
        for (_, ti, bi) in pairs {
            if taken[ti] || track_of[bi].is_some() {
                continue;
            }
            taken[ti] = true;
            track_of[bi] = Some(ti);
        }
        let mut ids = Vec::with_capacity(boxes.len());
        for (bi, (class, b)) in boxes.iter().enumerate() {
            let id = match track_of[bi] {
                Some(ti) => {
                    let t = &mut self.tracks[ti];
                    t.bbox = *b;
                    t.last_seen_us = now_us;
                    t.id
                }
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.tracks.push(Track {
                        id,
                        class: *class,
                        bbox: *b,
                        first_seen_us: now_us,
                        last_seen_us: now_us,
                    });
                    id
                }
            };
            ids.push(id);
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn walk(x: f32) -> [f32; 4] {
        [x, 100.0, x + 30.0, 180.0]
    }

    #[test]
    fn a_walking_person_keeps_one_id() {
        let mut t = Tracker::new(0.3, 1_000_000);
        let ids: Vec<u64> = (0..10)
            .map(|i| t.update(i * 100_000, &[(0, walk(i as f32 * 5.0))])[0])
            .collect();
        assert!(ids.iter().all(|&id| id == 1), "{ids:?}");
        assert_eq!(t.tracks()[0].first_seen_us, 0);
    }

    #[test]
    fn two_people_crossing_keep_their_ids_while_apart_and_new_ones_after_a_gap() {
        let mut t = Tracker::new(0.3, 300_000);
        assert_eq!(t.update(0, &[(0, walk(0.0)), (0, walk(200.0))]), [1, 2]);
        // Listed in the other order: matched by overlap, not by position in the list.
        assert_eq!(
            t.update(100_000, &[(0, walk(195.0)), (0, walk(5.0))]),
            [2, 1]
        );
        // Unseen for longer than the gap: forgotten; the same place gets a new id.
        assert_eq!(t.update(600_000, &[(0, walk(5.0))]), [3]);
        // Other labels never match.
        assert_eq!(t.update(700_000, &[(1, walk(5.0))]), [4]);
    }

    #[test]
    fn iou_of_boxes() {
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0]), 1.0);
        assert!((iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0]), 0.0);
    }
}
