//! Shared types that travel between stages: a decoded frame, a detection, a tracked object.
//!
//! Geometry is kept in normalized frame coordinates (0..1, origin top-left, x right, y down) from
//! the detector onwards, so every later stage is independent of the stream's resolution.

use std::sync::Arc;
use std::time::Duration;

/// Camera ids are cloned into every frame and event; `Arc<str>` keeps that cheap.
pub type CameraId = Arc<str>;

/// One decoded, scaled frame as the appsink delivered it: BGR, 8 bits per channel.
///
/// The GStreamer buffer is kept as is, so the detector reads it straight into its input tensor.
#[derive(Debug, Clone)]
pub struct Frame {
    pub camera: CameraId,
    /// Counts frames delivered by this camera's source since the agent started, across reconnects.
    pub seq: u64,
    /// Position in the stream (restarts when the source reconnects): its timestamp, or its
    /// index at the nominal frame rate when the stream has none.
    pub pts: Duration,
    /// Which run of the source pipeline produced the frame: it changes on every reconnect, when
    /// positions and timestamps no longer follow on from the previous frame.
    pub source_run: u32,
    pub width: u32,
    pub height: u32,
    /// Bytes per row; GStreamer pads rows to 4 bytes.
    pub stride: usize,
    pub buffer: gstreamer::Buffer,
    /// The same picture at the stream's resolution, before scaling (for evidence and plates);
    /// `None` where the decoder's output cannot be mapped (or in frames made by hand).
    pub native: Option<crate::source::NativeFrame>,
    /// When the appsink handed it over: the start of an event's latency.
    pub arrived: std::time::Instant,
}

/// An axis-aligned box in normalized coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

/// The whole frame, as a region.
pub const WHOLE_FRAME: BBox = BBox { x1: 0.0, y1: 0.0, x2: 1.0, y2: 1.0 };

impl BBox {
    pub fn from_center(cx: f32, cy: f32, w: f32, h: f32) -> BBox {
        BBox { x1: cx - w / 2.0, y1: cy - h / 2.0, x2: cx + w / 2.0, y2: cy + h / 2.0 }
    }

    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    pub fn center(&self) -> Point {
        Point { x: (self.x1 + self.x2) / 2.0, y: (self.y1 + self.y2) / 2.0 }
    }

    pub fn contains(&self, p: Point) -> bool {
        (self.x1..=self.x2).contains(&p.x) && (self.y1..=self.y2).contains(&p.y)
    }

    /// Where a vehicle touches the road: the reference point for lines and zones.
    pub fn bottom_center(&self) -> Point {
        Point { x: (self.x1 + self.x2) / 2.0, y: self.y2 }
    }

    /// How far the two boxes overlap horizontally (negative when they are apart).
    pub fn shared_width(&self, other: &BBox) -> f32 {
        self.x2.min(other.x2) - self.x1.max(other.x1)
    }

    pub fn intersection(&self, other: &BBox) -> f32 {
        let iw = self.shared_width(other).max(0.0);
        let ih = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        iw * ih
    }

    /// Top-left, top-right, bottom-right, bottom-left.
    pub fn corners(&self) -> [Point; 4] {
        [Point { x: self.x1, y: self.y1 }, Point { x: self.x2, y: self.y1 }, Point { x: self.x2, y: self.y2 }, Point { x: self.x1, y: self.y2 }]
    }

    /// The smallest box holding both.
    pub fn union(&self, other: &BBox) -> BBox {
        BBox { x1: self.x1.min(other.x1), y1: self.y1.min(other.y1), x2: self.x2.max(other.x2), y2: self.y2.max(other.y2) }
    }

    /// Where something has been (this box) grown by where it is now (`other`) when the two meet;
    /// an `other` apart is an odd frame's, and leaves it as it is.
    pub fn joined(&self, other: &BBox) -> BBox {
        if self.intersection(other) > 0.0 { self.union(other) } else { *self }
    }

    /// How far the box reaches along the unit direction `(ux, uy)`.
    pub fn extent_along(&self, ux: f32, uy: f32) -> f32 {
        self.width() * ux.abs() + self.height() * uy.abs()
    }

    pub fn iou(&self, other: &BBox) -> f32 {
        let inter = self.intersection(other);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// How much of the smaller of the two boxes lies inside the other (0..1).
    pub fn overlap_of_smaller(&self, other: &BBox) -> f32 {
        let smaller = self.area().min(other.area());
        if smaller <= 0.0 { 0.0 } else { self.intersection(other) / smaller }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

/// Index into the model's label list.
pub type ClassId = usize;

#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub bbox: BBox,
    pub class: ClassId,
    pub score: f32,
}

/// A confirmed track as the analytics stage sees it after one frame.
#[derive(Debug, Clone)]
pub struct TrackedObject {
    /// Unique per camera, never reused while the agent runs.
    pub id: u64,
    /// The box the detector reported this frame. Two exceptions, where it is the filter's
    /// estimate: when `hidden`; and for a track that took one box round itself and a neighbour it
    /// hides, its own place in that box (where its filter has it, moved inside the box).
    pub bbox: BBox,
    /// Majority vote over the track's detections.
    pub class: ClassId,
    pub score: f32,
    /// The box centre's velocity as the tracker estimates it over the track's life (x, y),
    /// normalized units per second: the track's own motion, steadier than box to box.
    pub velocity: [f32; 2],
    /// On a new track's first report only (none with `min_hits` 1, whose first report is its first
    /// detection): where its vehicle was first seen (a box's bottom centre). For a moving vehicle,
    /// its first detection, before the tracker confirmed it, or earlier where low-score boxes no
    /// track took lead back to along its motion; for one the detector boxed together with a
    /// neighbour before, where it was in that box (its first box moved back along its motion).
    /// Counting lines start the track there; violation rules do not.
    pub origin: Option<Point>,
    /// Not seen alone in this frame: the detector boxed it together with a neighbour, and `bbox`
    /// is where the tracker expects it inside that box. A guess: it may confirm a crossing of a
    /// line seen begun, but begins none, and rules, speeds and plates leave it out.
    pub hidden: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_and_disjoint_boxes() {
        let a = BBox { x1: 0.0, y1: 0.0, x2: 0.2, y2: 0.2 };
        let b = BBox { x1: 0.1, y1: 0.0, x2: 0.3, y2: 0.2 };
        let far = BBox { x1: 0.5, y1: 0.5, x2: 0.6, y2: 0.6 };
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-5);
        assert_eq!(a.iou(&far), 0.0);
    }
}
