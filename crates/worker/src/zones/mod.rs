//! Zones and dwell rules for detection models (issue 17): polygons per camera in frame
//! pixels, a multi-object tracker per camera ([`tracker`]), and rules that turn a camera's
//! boxes over time into alerts ([`rules`]) — "a person in the zone in ≥ N frames within T",
//! "one track in the zone for ≥ T" (loitering), "≥ K people in the zone at once" — with a
//! cooldown against alert storms.
//!
//! Pure: no Kafka, no clock. Time is the frames' capture time (the stream's clock), so the
//! same frames give the same tracks and alerts wherever and whenever they are replayed.
//! That is how rule state survives a rebalance: the new owner of a camera's partition
//! replays the camera's recent predictions (which carry the boxes) through a fresh
//! [`CameraState`] with alerts muted, and continues where the previous owner stopped
//! (`crate::zone_state` reads them back).
//!
//! A box is in a zone when its anchor — the middle of its bottom edge, where a standing
//! person touches the ground — lies inside the polygon.
pub mod rules;
pub mod tracker;

pub use rules::{CameraState, Firing, FrameBoxes};

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a zone's rule watches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// A box of the label in the zone in at least `frames` frames within `within`.
    Presence,
    /// One track in the zone for at least `dwell` without leaving it.
    Loiter,
    /// At least `count` boxes of the label in the zone in one frame.
    Count,
}

impl RuleKind {
    /// The name in configuration and alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Presence => "presence",
            RuleKind::Loiter => "loiter",
            RuleKind::Count => "count",
        }
    }
}

/// One `[[worker.zones]]` entry: a polygon on some cameras and the rule that fires on it.
/// Several entries may share a polygon (one rule each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSettings {
    /// The zone's name (in alerts, their ids and metrics); unique.
    pub name: String,
    /// Cameras (Kafka keys) it applies to; empty: every camera.
    #[serde(default)]
    pub cameras: Vec<String>,
    /// Corners in frame pixels, `[[x, y], …]`, at least three, in order around the zone.
    pub polygon: Vec<[f32; 2]>,
    /// The label it watches.
    #[serde(default = "default_label")]
    pub label: String,
    /// Boxes scoring below this are ignored.
    #[serde(default = "default_min_score")]
    pub min_score: f32,
    /// `presence`, `loiter` or `count`.
    pub rule: RuleKind,
    /// `presence`: frames with a box in the zone [default: 3].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
    /// `presence`: within this long [default: 2s].
    #[serde(
        default,
        with = "crate::config::serde_helpers::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub within: Option<Duration>,
    /// `loiter`: time one track spends in the zone [default: 10s].
    #[serde(
        default,
        with = "crate::config::serde_helpers::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub dwell: Option<Duration>,
    /// `count`: boxes in the zone at once [default: 2].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// After firing, the rule stays quiet on that camera this long [default: 30s].
    #[serde(
        default,
        with = "crate::config::serde_helpers::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub cooldown: Option<Duration>,
}

fn default_label() -> String {
    "person".into()
}

impl ZoneSettings {
    /// A zone on every camera watching `person` boxes scoring 0.5 or more, with the rule's
    /// defaults; set the other fields as needed.
    pub fn new(name: impl Into<String>, polygon: Vec<[f32; 2]>, rule: RuleKind) -> ZoneSettings {
        ZoneSettings {
            name: name.into(),
            cameras: Vec::new(),
            polygon,
            label: default_label(),
            min_score: default_min_score(),
            rule,
            frames: None,
            within: None,
            dwell: None,
            count: None,
            cooldown: None,
        }
    }
}
fn default_min_score() -> f32 {
    0.5
}

/// A checked zone with its rule's parameters resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// Its name.
    pub name: String,
    /// Cameras it applies to (empty: all).
    pub cameras: Vec<String>,
    /// Corners, frame pixels.
    pub polygon: Vec<[f32; 2]>,
    /// The label watched.
    pub label: String,
    /// Boxes below this score are ignored.
    pub min_score: f32,
    /// The rule.
    pub rule: Rule,
    /// Quiet time after firing, µs.
    pub cooldown_us: i64,
}

/// A rule with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// At least `frames` frames with a box in the zone within `within_us`.
    Presence {
        /// Frames needed.
        frames: u32,
        /// Window, µs.
        within_us: i64,
    },
    /// One track in the zone for at least `dwell_us`.
    Loiter {
        /// Dwell, µs.
        dwell_us: i64,
    },
    /// At least `count` boxes in the zone in one frame.
    Count {
        /// Boxes needed.
        count: u32,
    },
}

impl Rule {
    /// Its kind.
    pub fn kind(&self) -> RuleKind {
        match self {
            Rule::Presence { .. } => RuleKind::Presence,
            Rule::Loiter { .. } => RuleKind::Loiter,
            Rule::Count { .. } => RuleKind::Count,
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl ZoneSettings {
    /// Checks the entry and resolves its rule; the error names the zone and what to fix.
    pub fn compile(&self) -> Result<Zone, String> {
        let err = |what: String| format!("zone {:?}: {what}", self.name);
        if self.name.is_empty() {
            return Err("every [[worker.zones]] entry needs a name".into());
        }
        if self.polygon.len() < 3 {
            return Err(err(format!(
                "polygon needs at least 3 corners [[x, y], …] in frame pixels, got {}",
                self.polygon.len()
            )));
        }
        if self.polygon.iter().flatten().any(|v| !v.is_finite()) {
            return Err(err("polygon corners must be finite numbers".into()));
        }
        if polygon_area(&self.polygon) <= 0.0 {
            return Err(err(
                "polygon has no area (its corners are on one line)".into()
            ));
        }
        if !(0.0..=1.0).contains(&self.min_score) {
            return Err(err(format!(
                "min_score is {}; it must be within 0..=1",
                self.min_score
            )));
        }
        let only = |field: &str, set: bool, kinds: &str| {
            if set {
                Err(err(format!("{field} is for rule = {kinds}; remove it")))
            } else {
                Ok(())
            }
        };
        let rule = match self.rule {
            RuleKind::Presence => {
                only("dwell", self.dwell.is_some(), "\"loiter\"")?;
                only("count", self.count.is_some(), "\"count\"")?;
                let frames = self.frames.unwrap_or(3);
                let within = self.within.unwrap_or(Duration::from_secs(2));
                if frames == 0 || within.is_zero() {
                    return Err(err("presence needs frames ≥ 1 and within > 0".into()));
                }
                Rule::Presence {
                    frames,
                    within_us: micros(within),
                }
            }
            RuleKind::Loiter => {
                only("frames", self.frames.is_some(), "\"presence\"")?;
                only("within", self.within.is_some(), "\"presence\"")?;
                only("count", self.count.is_some(), "\"count\"")?;
                Rule::Loiter {
                    dwell_us: micros(self.dwell.unwrap_or(Duration::from_secs(10))),
                }
            }
            RuleKind::Count => {
                only("frames", self.frames.is_some(), "\"presence\"")?;
                only("within", self.within.is_some(), "\"presence\"")?;
                only("dwell", self.dwell.is_some(), "\"loiter\"")?;
                let count = self.count.unwrap_or(2);
                if count == 0 {
                    return Err(err("count must be at least 1".into()));
                }
                Rule::Count { count }
            }
        };
        Ok(Zone {
            name: self.name.clone(),
            cameras: self.cameras.clone(),
            polygon: self.polygon.clone(),
            label: self.label.clone(),
            min_score: self.min_score,
            rule,
            cooldown_us: micros(self.cooldown.unwrap_or(Duration::from_secs(30))),
        })
    }
}

/// Checks every zone (names unique, labels among the model's `labels` when given).
pub fn compile(settings: &[ZoneSettings], labels: Option<&[String]>) -> Result<Vec<Zone>, String> {
    let mut zones: Vec<Zone> = Vec::with_capacity(settings.len());
    for s in settings {
        let z = s.compile()?;
        if zones.iter().any(|o| o.name == z.name) {
            return Err(format!("zone {:?} is defined twice", z.name));
        }
        if let Some(labels) = labels {
            if !labels.contains(&z.label) {
                return Err(format!(
                    "zone {:?} watches label {:?}, which the model does not have ({})",
                    z.name,
                    z.label,
                    labels.join(", ")
                ));
            }
        }
        zones.push(z);
    }
    Ok(zones)
}

impl Zone {
    /// Whether the zone applies to `camera`.
    pub fn covers(&self, camera: &str) -> bool {
        self.cameras.is_empty() || self.cameras.iter().any(|c| c == camera)
    }

    /// Whether a box `[x1, y1, x2, y2]` is in the zone: its bottom-centre lies inside.
    pub fn contains_box(&self, b: &[f32; 4]) -> bool {
        point_in_polygon(((b[0] + b[2]) / 2.0, b[3]), &self.polygon)
    }

    /// How far back a camera's history must be replayed to rebuild this rule's state:
    /// its window (presence), its dwell plus its cooldown (loiter) or its cooldown.
    pub fn history_us(&self) -> i64 {
        let rule = match self.rule {
            Rule::Presence { within_us, .. } => within_us,
            Rule::Loiter { dwell_us } => dwell_us.saturating_add(self.cooldown_us),
            Rule::Count { .. } => 0,
        };
        rule.max(self.cooldown_us)
    }
}

/// Twice the signed area is not needed; the absolute area (shoelace).
fn polygon_area(p: &[[f32; 2]]) -> f32 {
    let n = p.len();
    let twice: f32 = (0..n)
        .map(|i| {
            let (a, b) = (p[i], p[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum();
    twice.abs() / 2.0
}

/// Even–odd rule (ray casting to the right); points on an edge may fall either way.
pub fn point_in_polygon(pt: (f32, f32), poly: &[[f32; 2]]) -> bool {
    let (x, y) = pt;
    let mut inside = false;
    let n = poly.len();
    let mut j = n.wrapping_sub(1);
    for i in 0..n {
        let (xi, yi) = (poly[i][0], poly[i][1]);
        let (xj, yj) = (poly[j][0], poly[j][1]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings(rule: RuleKind) -> ZoneSettings {
        let square = vec![[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]];
        ZoneSettings::new("door", square, rule)
    }

    #[test]
    fn points_in_a_concave_polygon() {
        // An L: the notch at the top right is outside.
        let l = [
            [0.0, 0.0],
            [10.0, 0.0],
            [10.0, 5.0],
            [5.0, 5.0],
            [5.0, 10.0],
            [0.0, 10.0],
        ];
        assert!(point_in_polygon((2.0, 2.0), &l));
        assert!(point_in_polygon((7.0, 2.0), &l));
        assert!(point_in_polygon((2.0, 7.0), &l));
        assert!(!point_in_polygon((7.0, 7.0), &l));
        assert!(!point_in_polygon((-1.0, 2.0), &l));
    }

    #[test]
    fn a_box_is_in_the_zone_by_its_feet() {
        let z = settings(RuleKind::Presence).compile().unwrap();
        assert!(
            z.contains_box(&[40.0, -50.0, 60.0, 90.0]),
            "head outside, feet inside"
        );
        assert!(
            !z.contains_box(&[40.0, 50.0, 60.0, 150.0]),
            "head inside, feet outside"
        );
    }

    #[test]
    fn settings_errors_name_the_zone_and_the_fix() {
        let mut s = settings(RuleKind::Presence);
        s.polygon.truncate(2);
        assert!(s.compile().unwrap_err().contains("at least 3 corners"));
        let mut s = settings(RuleKind::Presence);
        s.dwell = Some(Duration::from_secs(1));
        assert!(s
            .compile()
            .unwrap_err()
            .contains("dwell is for rule = \"loiter\""));
        let mut s = settings(RuleKind::Count);
        s.count = Some(0);
        assert!(s
            .compile()
            .unwrap_err()
            .contains("count must be at least 1"));
        let mut s = settings(RuleKind::Loiter);
        s.polygon = vec![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]];
        assert!(s.compile().unwrap_err().contains("no area"));
        let both = [settings(RuleKind::Presence), settings(RuleKind::Loiter)];
        assert!(compile(&both, None).unwrap_err().contains("defined twice"));
        let labels = ["car".to_string()];
        assert!(compile(&both[..1], Some(&labels))
            .unwrap_err()
            .contains("does not have"));
    }

    #[test]
    fn defaults_and_history() {
        let z = settings(RuleKind::Loiter).compile().unwrap();
        assert_eq!(
            z.rule,
            Rule::Loiter {
                dwell_us: 10_000_000
            }
        );
        assert_eq!(z.history_us(), 40_000_000, "dwell + cooldown");
        let p = settings(RuleKind::Presence).compile().unwrap();
        assert_eq!(
            p.rule,
            Rule::Presence {
                frames: 3,
                within_us: 2_000_000
            }
        );
        assert_eq!(p.history_us(), 30_000_000, "the cooldown is longer");
    }
}
