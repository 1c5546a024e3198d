//! `speeding`: speed over the ground from a 4-point calibration. The four image points and their
//! positions on the road in metres give a homography (image → ground plane); a track's speed is
//! the ground distance its reference point covered over at least `window_s`, divided by the time.
//! A vehicle is speeding when the median of its last three estimates is over the limit, so one
//! bent box (a passing occlusion) does not make a speeder.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use opencv::core::{Mat, Point2f, Vector};
use opencv::prelude::*;
use serde::Deserialize;

use super::{Check, Measured, RuleFinding, RuleKindConfig, round1};
use crate::analytics::FrameContext;
use crate::analytics::geometry::{Polygon, area, check_zone};
use crate::check::{ConfigError, check_point, check_positive, check_seconds};
use crate::render::{Shape, Tone};
use crate::types::{ClassId, Point, TrackedObject};

/// Four image points and where they lie on the road.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Four normalized `[x, y]` image points on the road surface (e.g. lane-marking corners).
    pub image: [[f32; 2]; 4],
    /// The same four points on the ground, `[x, y]` in metres in any road-aligned frame.
    pub ground_m: [[f32; 2]; 4],
}

/// `speeding = { … }` of a rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeedingConfig {
    pub calibration: Calibration,
    /// Speed limit, km/h: faster is a violation.
    pub limit_kmh: f32,
    /// Track history a speed is measured over, seconds; at least 0.5.
    #[serde(default = "default_window_s")]
    pub window_s: f32,
    /// Where speed is measured (normalized polygon). Default: the calibration quadrilateral,
    /// outside which the ground plane is an extrapolation.
    pub zone: Option<Vec<[f32; 2]>>,
}

fn default_window_s() -> f32 {
    1.0
}

/// Shortest window: below it, a few pixels of box jitter read as several km/h.
const MIN_WINDOW_S: f32 = 0.5;

impl Calibration {
    /// Checks the calibration (`path`), and that every point of the rule's `zone` (`zone_path`)
    /// lies on its ground plane in front of the camera.
    pub fn validate(&self, path: &str, zone: &[[f32; 2]], zone_path: &str, errors: &mut Vec<ConfigError>) {
        for (i, &p) in self.image.iter().enumerate() {
            check_point(p, &format!("{path}.image[{i}]"), errors);
        }
        let h = match Homography::from_calibration(self) {
            Ok(h) => h,
            Err(e) => return errors.push(ConfigError::new(path, e)),
        };
        // The ground's horizon in the image is where the map's divisor is 0: beyond it a point
        // is behind the camera, and near it pixels of jitter read as kilometres. The four points
        // themselves straddle it when the image and ground points are not in the same order.
        let side = h.divisor(self.image[0]).signum();
        if self.image.iter().any(|&p| h.divisor(p) * side <= 0.0) {
            return errors.push(ConfigError::new(path, "the image and ground points are not listed in the same order (the map folds the road over): list both in the same order around the quadrilateral"));
        }
        for (i, &p) in zone.iter().enumerate() {
            if h.divisor(p) * side <= 0.0 {
                errors.push(ConfigError::new(format!("{zone_path}[{i}]"), "lies beyond the horizon of the calibration's ground plane (it maps behind the camera): keep the zone on the road the calibration measures"));
            }
        }
    }
}

impl RuleKindConfig for SpeedingConfig {
    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        let zone = self.zone.as_deref().unwrap_or(&self.calibration.image);
        self.calibration.validate(&format!("{path}.calibration"), zone, &format!("{path}.zone"), errors);
        check_positive(self.limit_kmh, &format!("{path}.limit_kmh"), "speed", errors);
        if self.window_s.is_nan() || self.window_s < MIN_WINDOW_S {
            errors.push(ConfigError::new(format!("{path}.window_s"), format!("must be at least {MIN_WINDOW_S} seconds, got {}", self.window_s)));
        } else {
            check_seconds(self.window_s, &format!("{path}.window_s"), errors);
        }
        if let Some(zone) = &self.zone {
            check_zone(zone, &format!("{path}.zone"), errors);
        }
    }

    fn build(&self, _id: &str, _classes: &[ClassId]) -> Result<Box<dyn Check>, String> {
        Ok(Box::new(Speeding::new(self)?))
    }
}

/// A 3×3 projective map from normalized image points to ground metres.
#[derive(Debug, Clone, Copy)]
pub struct Homography([[f64; 3]; 3]);

impl Homography {
    pub fn from_calibration(calibration: &Calibration) -> Result<Homography, String> {
        let points = |ps: &[[f32; 2]; 4]| ps.iter().map(|&[x, y]| Point2f::new(x, y)).collect::<Vector<Point2f>>();
        let (image, ground) = (points(&calibration.image), points(&calibration.ground_m));
        let degenerate = |ps: &[[f32; 2]; 4]| {
            // Any three of the four on one line leave the plane undetermined.
            (0..4).any(|skip| {
                let q: Vec<[f32; 2]> = (0..4).filter(|&i| i != skip).map(|i| ps[i]).collect();
                area(&q) < 0.5e-6
            })
        };
        if degenerate(&calibration.image) || degenerate(&calibration.ground_m) {
            return Err("three of the four points lie on one line (image or ground): pick four corners of a quadrilateral".into());
        }
        let m: Mat = opencv::imgproc::get_perspective_transform_def(&image, &ground).map_err(|e| format!("no homography: {e}"))?;
        let mut h = [[0.0; 3]; 3];
        for (r, row) in h.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = *m.at_2d::<f64>(r as i32, c as i32).map_err(|e| format!("no homography: {e}"))?;
            }
        }
        Ok(Homography(h))
    }

    /// Ground position in metres of a normalized image point.
    pub fn to_ground(self, p: Point) -> (f64, f64) {
        let h = &self.0;
        let (x, y) = (p.x as f64, p.y as f64);
        let w = self.divisor([p.x, p.y]);
        ((h[0][0] * x + h[0][1] * y + h[0][2]) / w, (h[1][0] * x + h[1][1] * y + h[1][2]) / w)
    }

    /// The projective divisor at a normalized image point: 0 on the ground's horizon, of one sign
    /// on the ground in front of the camera.
    fn divisor(self, [x, y]: [f32; 2]) -> f64 {
        let h = &self.0;
        h[2][0] * x as f64 + h[2][1] * y as f64 + h[2][2]
    }

    /// Ground distance between two image points, metres.
    pub fn ground_distance_m(self, a: Point, b: Point) -> f64 {
        let ((ax, ay), (bx, by)) = (self.to_ground(a), self.to_ground(b));
        ((bx - ax).powi(2) + (by - ay).powi(2)).sqrt()
    }
}

/// Estimates the median is taken over.
const ESTIMATES: usize = 3;

struct Speeding {
    homography: Homography,
    zone: Polygon,
    limit_kmh: f32,
    window: Duration,
    /// Recent estimates per track (newest last) and when the last was made.
    speeds: HashMap<u64, (VecDeque<f32>, Duration)>,
}

impl Speeding {
    fn new(config: &SpeedingConfig) -> Result<Speeding, String> {
        Ok(Speeding {
            homography: Homography::from_calibration(&config.calibration)?,
            zone: Polygon::new(config.zone.as_deref().unwrap_or(&config.calibration.image)),
            limit_kmh: config.limit_kmh,
            window: Duration::from_secs_f32(config.window_s),
            speeds: HashMap::new(),
        })
    }

}

/// A track history spanning this many windows may be measured over: longer means missed detections.
const MAX_WINDOWS: f64 = 3.0;
/// Estimates of a track not measured again for this long are dropped.
const ESTIMATES_KEPT: Duration = Duration::from_secs(2);

impl Check for Speeding {
    fn overlay(&self) -> (Shape, Tone) {
        (Shape::Zone(self.zone.points.clone()), Tone::Rule)
    }

    fn history(&self) -> Duration {
        self.window.mul_f64(MAX_WINDOWS)
    }

    /// The track's current speed: the median of its recent estimates.
    fn speed_kmh(&self, track: u64) -> Option<f32> {
        let (recent, _) = self.speeds.get(&track)?;
        let mut sorted: Vec<f32> = recent.iter().copied().collect();
        sorted.sort_by(f32::total_cmp);
        sorted.get(sorted.len() / 2).copied()
    }

    fn reset(&mut self) {
        self.speeds.clear();
    }

    fn update(&mut self, objects: &[TrackedObject], ctx: &FrameContext) -> Vec<RuleFinding> {
        let mut findings = Vec::new();
        for obj in objects {
            let Some(((t0, from), (t1, to))) = ctx.history.span(obj.id, self.window) else { continue };
            let dt = t1.saturating_sub(t0).as_secs_f64();
            // A gap in the track (missed detections) would average over a different motion.
            if dt > MAX_WINDOWS * self.window.as_secs_f64() || !(self.zone.contains(from) && self.zone.contains(to)) {
                continue;
            }
            let kmh = (self.homography.ground_distance_m(from, to) / dt * 3.6) as f32;
            if !kmh.is_finite() {
                continue;
            }
            let (recent, at) = self.speeds.entry(obj.id).or_default();
            recent.push_back(kmh);
            if recent.len() > ESTIMATES {
                recent.pop_front();
            }
            *at = ctx.now;
            let full = recent.len() == ESTIMATES;
            let kmh = self.speed_kmh(obj.id).expect("just estimated");
            if full && kmh > self.limit_kmh {
                findings.push(RuleFinding::alert(obj, Measured { speed_kmh: Some(round1(kmh)), limit_kmh: Some(self.limit_kmh), ..Default::default() }));
            }
        }
        self.speeds.retain(|_, (_, at)| ctx.now.saturating_sub(*at) < ESTIMATES_KEPT);
        findings
    }
}
