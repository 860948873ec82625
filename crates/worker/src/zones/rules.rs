//! The rule state of one camera: its tracker and, per zone, what the rule remembers (the
//! frames with a box in the zone, when each track entered, when it last fired). Frames go
//! in capture-time order; [`CameraState::step`] returns the rules that fire on a frame.
use super::tracker::Tracker;
use super::{Rule, RuleKind, Zone};
use argus_wire::DetectedBox;
use std::collections::{BTreeMap, VecDeque};

/// Boxes overlapping at least this much continue a track.
pub const TRACK_MIN_IOU: f32 = 0.3;
/// A track unseen for longer than this ends (a person hidden behind a pillar for longer
/// comes back as a new track).
pub const TRACK_MAX_GAP_US: i64 = 2_000_000;

/// One frame of a camera: when it was captured and the boxes found in it.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameBoxes {
    /// Capture time, µs since the Unix epoch (the stream's clock).
    pub capture_us: i64,
    /// Boxes, as the prediction reports them.
    pub boxes: Vec<DetectedBox>,
}

/// A box of a firing, with its track.
#[derive(Debug, Clone, PartialEq)]
pub struct FiredBox {
    /// The box.
    pub observed: DetectedBox,
    /// Its track id on this camera.
    pub track: u64,
    /// (loiter) When its track entered the zone, µs.
    pub in_zone_since_us: Option<i64>,
}

/// A zone rule that fired on a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// Index of the zone in the configured list.
    pub zone: usize,
    /// The rule's kind.
    pub kind: RuleKind,
    /// The best score among the boxes in the zone.
    pub score: f32,
    /// The boxes of the label in the zone on this frame.
    pub boxes: Vec<FiredBox>,
    /// Since when the condition holds: the first frame in the window (presence), the
    /// loitering track's entry (loiter), this frame (count).
    pub since_us: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct ZoneMemory {
    /// Capture times of frames with a box in the zone, within the window (presence).
    hits: VecDeque<i64>,
    /// Track id → when it entered (loiter).
    entered: BTreeMap<u64, i64>,
    last_fired: Option<i64>,
}

/// The rule state of one camera.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraState {
    tracker: Tracker,
    memory: Vec<ZoneMemory>,
    last_us: Option<i64>,
}

impl CameraState {
    /// Fresh state for `zones` zones.
    pub fn new(zones: usize) -> CameraState {
        CameraState {
            tracker: Tracker::new(TRACK_MIN_IOU, TRACK_MAX_GAP_US),
            memory: vec![ZoneMemory::default(); zones],
            last_us: None,
        }
    }

    /// Capture time of the last frame taken, µs.
    pub fn last_capture_us(&self) -> Option<i64> {
        self.last_us
    }

    /// Live tracks.
    pub fn tracks(&self) -> usize {
        self.tracker.tracks().len()
    }

    /// Takes the next frame of `camera`; returns the rules of `zones` (the same list every
    /// call) that fire on it. A frame older than the last one taken changes nothing
    /// (`None`).
    pub fn step(
        &mut self,
        zones: &[Zone],
        camera: &str,
        frame: &FrameBoxes,
    ) -> Option<Vec<Firing>> {
        let now = frame.capture_us;
        if self.last_us.is_some_and(|last| now < last) {
            return None;
        }
        self.last_us = Some(now);
        if self.memory.len() != zones.len() {
            self.memory.resize(zones.len(), ZoneMemory::default());
        }
        let boxes: Vec<(u32, [f32; 4])> = frame.boxes.iter().map(|b| (b.index, b.bbox)).collect();
        let ids = self.tracker.update(now, &boxes);
        let live: Vec<u64> = self.tracker.tracks().iter().map(|t| t.id).collect();
        let mut firings = Vec::new();
        for (zi, (zone, memory)) in zones.iter().zip(&mut self.memory).enumerate() {
            if !zone.covers(camera) {
                continue;
            }
            let inside: Vec<(usize, u64)> = frame
                .boxes
                .iter()
                .zip(&ids)
                .enumerate()
                .filter(|(_, (b, _))| {
                    b.label == zone.label && b.score >= zone.min_score && zone.contains_box(&b.bbox)
                })
                .map(|(i, (_, id))| (i, *id))
                .collect();
            let since = memory.observe(zone.rule, now, &inside, &ids, &live);
            let Some(since_us) = since else { continue };
            if memory
                .last_fired
                .is_some_and(|t| now.saturating_sub(t) < zone.cooldown_us)
            {
                continue;
            }
            memory.last_fired = Some(now);
            let boxes: Vec<FiredBox> = inside
                .iter()
                .map(|&(i, track)| FiredBox {
                    observed: frame.boxes[i].clone(),
                    track,
                    in_zone_since_us: memory.entered.get(&track).copied(),
                })
                .collect();
            firings.push(Firing {
                zone: zi,
                kind: zone.rule.kind(),
                score: boxes.iter().map(|b| b.observed.score).fold(0.0, f32::max),
                boxes,
                since_us,
            });
        }
        Some(firings)
    }
}

impl ZoneMemory {
    /// Updates the rule's memory with a frame (`inside`: box index and track of each box
    /// in the zone; `seen`: every box's track; `live`: the tracker's tracks); returns since
    /// when the condition holds if it holds now.
    fn observe(
        &mut self,
        rule: Rule,
        now: i64,
        inside: &[(usize, u64)],
        seen: &[u64],
        live: &[u64],
    ) -> Option<i64> {
        match rule {
            Rule::Presence { frames, within_us } => {
                if !inside.is_empty() {
                    self.hits.push_back(now);
                }
                while self
                    .hits
                    .front()
                    .is_some_and(|&t| t <= now.saturating_sub(within_us))
                {
                    self.hits.pop_front();
                }
                (self.hits.len() >= frames as usize).then(|| self.hits[0])
            }
            Rule::Loiter { dwell_us } => {
                for &(_, id) in inside {
                    self.entered.entry(id).or_insert(now);
                }
                // A track leaves the zone when it is seen outside it or ends; a frame where
                // the detector missed it does not reset its dwell.
                self.entered.retain(|id, _| {
                    inside.iter().any(|(_, t)| t == id) || (!seen.contains(id) && live.contains(id))
                });
                inside
                    .iter()
                    .filter_map(|(_, id)| self.entered.get(id).copied())
                    .filter(|&t| now.saturating_sub(t) >= dwell_us)
                    .min()
            }
            Rule::Count { count } => (inside.len() >= count as usize).then_some(now),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::zones::{RuleKind, ZoneSettings};
    use std::time::Duration;

    const MS: i64 = 1000;

    fn zone(rule: RuleKind, f: impl FnOnce(&mut ZoneSettings)) -> Zone {
        let square = vec![[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]];
        let mut s = ZoneSettings::new("door", square, rule);
        s.cameras = vec!["cam-0".into()];
        s.cooldown = Some(Duration::from_secs(5));
        f(&mut s);
        s.compile().unwrap()
    }

    fn person(x: f32, y: f32, score: f32) -> DetectedBox {
        DetectedBox {
            label: "person".into(),
            index: 0,
            score,
            bbox: [x, y - 40.0, x + 20.0, y],
        }
    }

    fn frame(t_ms: i64, boxes: Vec<DetectedBox>) -> FrameBoxes {
        FrameBoxes {
            capture_us: t_ms * MS,
            boxes,
        }
    }

    /// Runs a script of frames; returns (frame time ms, zone index) of each firing.
    fn run(zones: &[Zone], camera: &str, frames: &[FrameBoxes]) -> Vec<(i64, usize)> {
        let mut s = CameraState::new(zones.len());
        let mut out = Vec::new();
        for f in frames {
            for firing in s.step(zones, camera, f).unwrap_or_default() {
                out.push((f.capture_us / MS, firing.zone));
            }
        }
        out
    }

    #[test]
    fn presence_needs_n_frames_within_the_window() {
        let z = [zone(RuleKind::Presence, |s| {
            s.frames = Some(3);
            s.within = Some(Duration::from_secs(1));
        })];
        // Hits at 0, 600, 1200 (0 has left the window at 1200: only 2 within 1 s), 1500.
        let frames = [
            frame(0, vec![person(50.0, 50.0, 0.9)]),
            frame(600, vec![person(50.0, 50.0, 0.9)]),
            frame(900, vec![]),
            frame(1200, vec![person(50.0, 50.0, 0.9)]),
            frame(1500, vec![person(50.0, 50.0, 0.9)]),
        ];
        assert_eq!(run(&z, "cam-0", &frames), [(1500, 0)]);
        // Another camera, a weak box or a box outside: nothing.
        assert!(run(&z, "cam-1", &frames).is_empty());
        let weak: Vec<FrameBoxes> = (0..10)
            .map(|i| frame(i * 100, vec![person(50.0, 50.0, 0.4)]))
            .collect();
        assert!(run(&z, "cam-0", &weak).is_empty());
        let outside: Vec<FrameBoxes> = (0..10)
            .map(|i| frame(i * 100, vec![person(50.0, 150.0, 0.9)]))
            .collect();
        assert!(run(&z, "cam-0", &outside).is_empty());
    }

    #[test]
    fn loitering_is_one_track_for_the_dwell_and_a_miss_does_not_reset_it() {
        let z = [zone(RuleKind::Loiter, |s| {
            s.dwell = Some(Duration::from_secs(2))
        })];
        // Someone stands in the zone from 0 ms (moving slowly); the detector misses them
        // at 1000 ms; they stay until 2000 ms: fires at 2000 (dwell 2 s).
        let mut frames: Vec<FrameBoxes> = (0..=20)
            .map(|i| frame(i * 100, vec![person(40.0 + i as f32, 60.0, 0.8)]))
            .collect();
        frames[10].boxes.clear();
        assert_eq!(run(&z, "cam-0", &frames), [(2000, 0)]);
        // Stands in the zone for 1.5 s, walks out (10 px a frame), comes back and stands
        // 1.5 s again: the track was seen outside, so its dwell starts again.
        let mut ys: Vec<f32> = vec![60.0; 15];
        ys.extend((1..=10).map(|k| 60.0 + 10.0 * k as f32));
        ys.extend((1..=10).map(|k| 160.0 - 10.0 * k as f32));
        ys.extend(vec![60.0; 15]);
        let through: Vec<FrameBoxes> = ys
            .iter()
            .enumerate()
            .map(|(i, &y)| frame(i as i64 * 100, vec![person(40.0, y, 0.8)]))
            .collect();
        assert!(run(&z, "cam-0", &through).is_empty());
        // Two different people one after the other for 1.5 s each: two tracks, no alert.
        let relay: Vec<FrameBoxes> = (0..30)
            .map(|i| {
                let x = if i < 15 { 10.0 } else { 70.0 };
                frame(i * 100, vec![person(x, 60.0, 0.8)])
            })
            .collect();
        assert!(run(&z, "cam-0", &relay).is_empty());
    }

    #[test]
    fn count_fires_on_k_at_once_and_the_cooldown_holds_it_back() {
        let z = [zone(RuleKind::Count, |s| s.count = Some(2))];
        let two = |t| frame(t, vec![person(10.0, 50.0, 0.9), person(60.0, 50.0, 0.9)]);
        let frames = [
            frame(0, vec![person(10.0, 50.0, 0.9)]),
            two(100),
            two(200),
            two(4900),
            two(5100),
        ];
        // Fires at 100; quiet until 5 s after that.
        assert_eq!(run(&z, "cam-0", &frames), [(100, 0), (5100, 0)]);
        let mut s = CameraState::new(1);
        let fired = s.step(&z, "cam-0", &two(0)).unwrap();
        assert_eq!(fired[0].boxes.len(), 2);
        assert_eq!(
            fired[0].boxes.iter().map(|b| b.track).collect::<Vec<_>>(),
            [1, 2]
        );
    }

    #[test]
    fn old_frames_change_nothing_and_replaying_history_rebuilds_the_same_state() {
        let z = [
            zone(RuleKind::Loiter, |s| s.dwell = Some(Duration::from_secs(1))),
            zone(RuleKind::Presence, |s| s.name = "door-presence".into()),
        ];
        let frames: Vec<FrameBoxes> = (0..40)
            .map(|i| frame(i * 100, vec![person(30.0 + (i % 7) as f32, 60.0, 0.8)]))
            .collect();
        let mut whole = CameraState::new(2);
        let mut fired_whole = Vec::new();
        for f in &frames {
            fired_whole.push(whole.step(&z, "cam-0", f).unwrap());
        }
        // A new owner replays frames 0..25 (alerts muted), then takes 25.. live.
        let mut rebuilt = CameraState::new(2);
        for f in &frames[..25] {
            rebuilt.step(&z, "cam-0", f);
        }
        for (i, f) in frames.iter().enumerate().skip(25) {
            assert_eq!(
                rebuilt.step(&z, "cam-0", f).unwrap(),
                fired_whole[i],
                "frame {i}"
            );
        }
        assert_eq!(rebuilt, whole);
        assert_eq!(
            whole.step(&z, "cam-0", &frames[3]),
            None,
            "older than the last"
        );
    }
}
