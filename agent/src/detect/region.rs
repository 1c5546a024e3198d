//! `detect_region`: the part of a camera's view the detector looks at, and at what resolution.
//!
//! The detector's input is a few hundred pixels wide. Shrinking a whole 1080p view into it makes
//! a motorbike 60 px wide 13 px wide, and one twice as far away 7 px: below what a small detector
//! finds (on the Vietnamese junction shown at half size, 1 of 14 motorbikes is counted at 416 px
//! and 5 fps). Most of a traffic view is sky, façades and road far beyond the lines that count.
//! So the detector is given the road around the camera's lines and zones, cut from the
//! decoded picture at its own resolution ([`crate::source::NativeFrame`]), with as many input
//! pixels as the whole frame would have had (about the same inference cost), or more where
//! `detect_width_px` asks for them.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use crate::check::ConfigError;
use crate::types::{BBox, Point};

/// How far beyond the camera's lines and zones the automatic region reaches, as a share of the
/// frame's width and height on every side. A vehicle must be tracked on both sides of a line:
/// at 5 analysed fps a car approaching the camera moves down by up to a quarter of the frame
/// between two frames (a motorway seen from an overpass).
pub const AUTO_MARGIN: f32 = 0.25;
/// A region this close to the whole frame (in each side's share) is the whole frame: cutting it
/// would cost a conversion and gain nothing.
const WHOLE_FRAME_SHARE: f32 = 0.95;
/// The smallest region side, as a share of the frame: a vehicle must fit in it.
const MIN_SIDE: f32 = 0.05;

/// `detect_region` in a camera's config.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum DetectRegion {
    /// The camera's lines and rule geometry, [`AUTO_MARGIN`] beyond them on every side; the
    /// whole frame on a camera without any.
    Auto,
    /// The whole frame, scaled down as it is. The default: a region cuts the vehicles that
    /// cross its edge, and where vehicles are large in the view (the arterial's cars are a
    /// quarter of the frame long) a quarter of the frame around its line is too little road to
    /// track two cars in a row (eastbound at 5 fps, 16 of 16 counted with the whole frame, 10
    /// with `auto`).
    #[default]
    Frame,
    /// A fixed region (normalized).
    Bounds(BBox),
}

impl DetectRegion {
    /// The region to cut, given the points of the camera's lines and zones; `None` for the whole
    /// frame.
    pub fn resolve(&self, geometry: &[Point]) -> Option<BBox> {
        let region = match self {
            DetectRegion::Frame => return None,
            DetectRegion::Bounds(b) => *b,
            DetectRegion::Auto => {
                let first = geometry.first()?;
                let around = geometry.iter().fold(BBox { x1: first.x, y1: first.y, x2: first.x, y2: first.y }, |b, p| BBox {
                    x1: b.x1.min(p.x),
                    y1: b.y1.min(p.y),
                    x2: b.x2.max(p.x),
                    y2: b.y2.max(p.y),
                });
                BBox {
                    x1: (around.x1 - AUTO_MARGIN).max(0.0),
                    y1: (around.y1 - AUTO_MARGIN).max(0.0),
                    x2: (around.x2 + AUTO_MARGIN).min(1.0),
                    y2: (around.y2 + AUTO_MARGIN).min(1.0),
                }
            }
        };
        (region.width() < WHOLE_FRAME_SHARE || region.height() < WHOLE_FRAME_SHARE).then_some(region)
    }

    /// Bounds must lie in the frame and be large enough to hold a vehicle.
    pub fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        let DetectRegion::Bounds(b) = self else { return };
        let inside = [b.x1, b.y1, b.x2, b.y2].iter().all(|v| (0.0..=1.0).contains(v));
        if !inside || b.x2 - b.x1 < MIN_SIDE || b.y2 - b.y1 < MIN_SIDE {
            errors.push(ConfigError::new(
                path,
                format!("[x1, y1, x2, y2] must lie within 0..1 with x2 - x1 and y2 - y1 at least {MIN_SIDE}, got [{}, {}, {}, {}]", b.x1, b.y1, b.x2, b.y2),
            ));
        }
    }
}

/// The size (width, height) in pixels the `width_px` x `height_px` pixels of a region are scaled to, so
/// that they hold about `budget_px` pixels: never more than the region's own pixels, never below
/// one pixel a side.
pub fn scaled_size(width_px: f32, height_px: f32, budget_px: f32) -> (u32, u32) {
    let scale = (budget_px / (width_px * height_px).max(1.0)).sqrt().min(1.0);
    (((width_px * scale).round() as u32).max(1), ((height_px * scale).round() as u32).max(1))
}

impl std::str::FromStr for DetectRegion {
    type Err = String;

    /// `auto`, `frame` or `x1,y1,x2,y2` (the command line's spelling).
    fn from_str(s: &str) -> Result<DetectRegion, String> {
        if let Some(region) = named(s) {
            return Ok(region);
        }
        let v: Vec<f32> = s.split(',').map(|p| p.trim().parse::<f32>()).collect::<Result<_, _>>().map_err(|e| format!("'{s}': {e}"))?;
        bounds(&v).ok_or_else(|| format!("'{s}': expected auto, frame or x1,y1,x2,y2"))
    }
}

/// The regions spelt by name.
fn named(s: &str) -> Option<DetectRegion> {
    match s {
        "auto" => Some(DetectRegion::Auto),
        "frame" => Some(DetectRegion::Frame),
        _ => None,
    }
}

fn bounds(v: &[f32]) -> Option<DetectRegion> {
    match *v {
        [x1, y1, x2, y2] => Some(DetectRegion::Bounds(BBox { x1, y1, x2, y2 })),
        _ => None,
    }
}

impl<'de> Deserialize<'de> for DetectRegion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DetectRegion, D::Error> {
        struct RegionVisitor;
        impl<'de> Visitor<'de> for RegionVisitor {
            type Value = DetectRegion;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"auto\", \"frame\" or [x1, y1, x2, y2] (normalized)")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<DetectRegion, E> {
                named(s).ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DetectRegion, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element::<f32>()? {
                    v.push(x);
                }
                bounds(&v).ok_or_else(|| de::Error::invalid_length(v.len(), &self))
            }
        }
        deserializer.deserialize_any(RegionVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x: f32, y: f32) -> Point {
        Point { x, y }
    }

    #[test]
    fn the_automatic_region_is_the_geometry_with_its_margin() {
        let line = [p(0.03, 0.44), p(1.0, 0.44)];
        let r = DetectRegion::Auto.resolve(&line).unwrap();
        assert_eq!((r.x1, r.x2), (0.0, 1.0));
        assert!((r.y1 - 0.19).abs() < 1e-6 && (r.y2 - 0.69).abs() < 1e-6, "{r:?}");
        // Geometry spread over the frame leaves nothing to cut, and none means the whole frame.
        assert_eq!(DetectRegion::Auto.resolve(&[p(0.1, 0.2), p(0.9, 0.8)]), None);
        assert_eq!(DetectRegion::Auto.resolve(&[]), None);
        assert_eq!(DetectRegion::Frame.resolve(&line), None);
        let fixed = BBox { x1: 0.2, y1: 0.3, x2: 0.8, y2: 0.9 };
        assert_eq!(DetectRegion::Bounds(fixed).resolve(&[]), Some(fixed));
    }

    #[test]
    fn a_region_gets_the_pixel_budget_never_more_than_its_own() {
        // A 1920x540 band with the budget of a 1920x1080 frame at 416 px (416x234): 1.7x the
        // linear resolution the whole frame gets.
        let (w, h) = scaled_size(1920.0, 540.0, 416.0 * 234.0);
        assert_eq!((w, h), (588, 165));
        assert_eq!(scaled_size(200.0, 100.0, 1e6), (200, 100));
    }

    #[test]
    fn parses_and_checks_its_spellings() {
        #[derive(Deserialize)]
        struct C {
            r: DetectRegion,
        }
        let parse = |s: &str| toml::from_str::<C>(s).map(|c| c.r);
        assert_eq!(parse("r = \"auto\"").unwrap(), DetectRegion::Auto);
        assert_eq!(parse("r = \"frame\"").unwrap(), DetectRegion::Frame);
        assert_eq!(parse("r = [0.0, 0.5, 1.0, 1.0]").unwrap(), DetectRegion::Bounds(BBox { x1: 0.0, y1: 0.5, x2: 1.0, y2: 1.0 }));
        let err = parse("r = \"road\"").unwrap_err().to_string();
        assert!(err.contains("\"auto\", \"frame\" or [x1, y1, x2, y2]"), "{err}");
        assert!(parse("r = [0.0, 0.5, 1.0]").is_err());
        assert_eq!("0,0.5,1,1".parse::<DetectRegion>().unwrap(), DetectRegion::Bounds(BBox { x1: 0.0, y1: 0.5, x2: 1.0, y2: 1.0 }));
        assert!("0,0.5".parse::<DetectRegion>().is_err());
        let mut errors = Vec::new();
        DetectRegion::Bounds(BBox { x1: 0.5, y1: 0.5, x2: 0.52, y2: 1.2 }).validate("cameras[0].detect_region", &mut errors);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("cameras[0].detect_region"), "{}", errors[0]);
    }
}
