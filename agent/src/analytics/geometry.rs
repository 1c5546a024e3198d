//! Plane geometry in normalized image coordinates (x right, y down, 0..1): zones and headings.

use crate::check::{ConfigError, check_point};
use crate::types::{BBox, Point};

/// A zone: a simple polygon, edges joining consecutive points and the last to the first.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    pub points: Vec<Point>,
}

impl Polygon {
    pub fn new(points: &[[f32; 2]]) -> Polygon {
        Polygon { points: points.iter().map(|&[x, y]| Point { x, y }).collect() }
    }

    /// The smallest box holding every point.
    pub fn bounds(&self) -> BBox {
        self.points.iter().fold(BBox { x1: f32::MAX, y1: f32::MAX, x2: f32::MIN, y2: f32::MIN }, |b, p| BBox {
            x1: b.x1.min(p.x),
            y1: b.y1.min(p.y),
            x2: b.x2.max(p.x),
            y2: b.y2.max(p.y),
        })
    }

    /// Even-odd rule: points exactly on an edge may fall either way.
    pub fn contains(&self, p: Point) -> bool {
        let mut inside = false;
        let n = self.points.len();
        for i in 0..n {
            let (a, b) = (self.points[i], self.points[(i + n - 1) % n]);
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
        }
        inside
    }
}

/// Checks a zone from the config: at least three points, each normalized.
pub fn check_zone(points: &[[f32; 2]], path: &str, errors: &mut Vec<ConfigError>) {
    if points.len() < 3 {
        errors.push(ConfigError::new(path, format!("a zone needs at least 3 points [x, y], got {}", points.len())));
    }
    for (i, &p) in points.iter().enumerate() {
        check_point(p, &format!("{path}[{i}]"), errors);
    }
    if let Some((i, j)) = crossing_edges(points) {
        errors.push(ConfigError::new(path, format!("edges {i} and {j} cross: list the corners in order around the zone")));
    } else if points.len() >= 3 && area(points) < MIN_ZONE_AREA {
        errors.push(ConfigError::new(path, format!("the zone covers {:.6} of the frame: its points lie on one line, or nearly", area(points))));
    }
}

/// The smallest zone area (a share of the frame): a zone whose points lie on one line contains
/// no point, and its rule would never fire. A hundredth of a percent is a 19x11-pixel patch of
/// a 1080p frame.
const MIN_ZONE_AREA: f32 = 1e-4;

/// The area of a simple polygon (shoelace): a share of the frame for normalized points.
pub fn area(points: &[[f32; 2]]) -> f32 {
    let n = points.len();
    let twice: f32 = (0..n).map(|i| points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]).sum();
    twice.abs() / 2.0
}

/// Two edges of the closed polygon that cross (not neighbours sharing a corner), if any: a zone
/// drawn with its corners out of order.
fn crossing_edges(points: &[[f32; 2]]) -> Option<(usize, usize)> {
    let n = points.len();
    // Which side of a → b the point c is on: > 0 left, < 0 right.
    let turn = |a: [f32; 2], b: [f32; 2], c: [f32; 2]| (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
    let edge = |i: usize| (points[i], points[(i + 1) % n]);
    for i in 0..n {
        for j in i + 2..n {
            if i == 0 && j == n - 1 {
                continue;
            }
            let ((a, b), (c, d)) = (edge(i), edge(j));
            let straddles = |p: f32, q: f32| (p > 0.0 && q < 0.0) || (p < 0.0 && q > 0.0);
            if straddles(turn(a, b, c), turn(a, b, d)) && straddles(turn(c, d, a), turn(c, d, b)) {
                return Some((i, j));
            }
        }
    }
    None
}

pub fn distance(a: Point, b: Point) -> f32 {
    ((b.x - a.x).powi(2) + (b.y - a.y).powi(2)).sqrt()
}

/// Screen heading of the move `a → b` in degrees, 0..360: 0 towards the right edge, 90 towards the
/// bottom, 180 left, 270 up. `aspect` (frame width / height) turns normalized steps into square
/// pixels, so the angle is the one seen on screen.
pub fn heading_deg(a: Point, b: Point, aspect: f32) -> f32 {
    ((b.y - a.y).atan2((b.x - a.x) * aspect).to_degrees() + 360.0) % 360.0
}

/// The smaller angle between two headings, 0..180 degrees.
pub fn angle_between_deg(a: f32, b: f32) -> f32 {
    let d = (a - b).rem_euclid(360.0);
    d.min(360.0 - d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_and_outside_a_concave_zone() {
        // An L shape: the notch at the top right is outside.
        let zone = Polygon::new(&[[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]);
        assert!(zone.contains(Point { x: 0.25, y: 0.25 }));
        assert!(zone.contains(Point { x: 0.75, y: 0.75 }));
        assert!(!zone.contains(Point { x: 0.75, y: 0.25 }));
        assert!(!zone.contains(Point { x: 1.5, y: 0.75 }));
    }

    #[test]
    fn a_zone_with_corners_out_of_order_is_refused() {
        let mut errors = Vec::new();
        check_zone(&[[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]], "zone", &mut errors);
        assert!(errors.is_empty(), "a concave zone is fine: {errors:?}");
        check_zone(&[[0.0, 0.5], [1.0, 1.0], [1.0, 0.5], [0.0, 1.0]], "zone", &mut errors);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("edges 0 and 2 cross"), "{}", errors[0]);
    }

    #[test]
    fn headings_follow_the_screen() {
        let o = Point { x: 0.5, y: 0.5 };
        assert_eq!(heading_deg(o, Point { x: 0.6, y: 0.5 }, 1.0), 0.0);
        assert_eq!(heading_deg(o, Point { x: 0.5, y: 0.6 }, 1.0), 90.0);
        assert_eq!(heading_deg(o, Point { x: 0.4, y: 0.5 }, 1.0), 180.0);
        assert_eq!(heading_deg(o, Point { x: 0.5, y: 0.4 }, 1.0), 270.0);
        // Equal normalized steps on a 16:9 frame are flatter than 45 degrees on screen.
        assert!((heading_deg(o, Point { x: 0.6, y: 0.6 }, 16.0 / 9.0) - 29.36).abs() < 0.01);
        assert_eq!(angle_between_deg(350.0, 10.0), 20.0);
        assert_eq!(angle_between_deg(0.0, 180.0), 180.0);
    }
}
