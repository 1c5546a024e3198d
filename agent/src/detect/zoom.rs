//! `detect_zoom`: whether a camera's detector should look closer, decided from what it finds.
//!
//! The default look (the whole frame at the model's 416 px) suits a view whose vehicles are large
//! and costs least, but a view whose motorbikes are far away loses them below what the detector
//! finds; a closer look (the road round the lines, cut from the decoded picture with the pixels
//! of a 640-px frame: [`crate::detect::region`]) finds them at about twice the inference, and
//! loses cars that are already large (YOLOX-nano scores them lower). Which view is which cannot
//! be told from the boxes' sizes: the vehicles the default look misses leave no box to measure
//! (median box heights at 416 px, arterial 42, bgslibrary 25, the junction at half size 23, a
//! residential street 17.7: the street and the half-size junction fall on the wrong sides).
//! So a new camera looks both ways at each frame until the two looks have made enough vehicle
//! detections between them, and keeps the closer look only where it finds clearly more. The
//! choice holds while the agent runs (it is made again after a restart, or when a reload changes
//! the camera).
//!
//! Measured (vehicles scored 0.5 or more with their centre in the region, when the two looks
//! had made 100 such detections between them; at 5 fps / at every frame): the closer look found 1.17 / 1.38 times
//! as many on the arterial, 0.98 / 0.85 on the residential street, 1.00 / 1.00 on bgslibrary,
//! 1.24 / 1.33 on the Vietnamese junction, and on the junction shown smaller on a 1080p canvas
//! 2.03 / 1.78 at 3/4 size, 2.25 / 2.14 at 0.6, 2.25 / 2.15 at half size, 6.3 / 10.9 at a third.

use std::fmt;

use crate::types::{BBox, ClassId, Detection};

/// The closer look gets the pixels of the frame scaled to this width.
pub const ZOOM_WIDTH_PX: u32 = 640;
/// The closer look is kept when it finds this many times the vehicles the camera's own look
/// finds: between the 1.38 of the arterial (where it loses cars) and the 1.78 of the junction at
/// 3/4 size (where it finds motorbikes that the whole frame misses: that counts 5 of 7 at 5 fps). The junction
/// itself (1.24 / 1.33) keeps its own look, which counts it as a person does.
const ZOOM_GAIN: f32 = 1.5;
/// Vehicle detections both looks must have made together (a vehicle seen in 10 frames by both
/// is 20) before the choice is made: at 5 fps a busy junction gets there within a second, a road
/// with a car now and then within 10 s of traffic.
const DECIDE_AFTER_DETECTIONS: u32 = 100;
/// Frames looked at both ways (each costs the two inferences) before a camera that shows too few
/// vehicles is looked at both ways only every [`PROBE_EVERY_AFTER`]th frame, until it has shown
/// enough: one that started at night decides in the morning, at a tenth of the cost meanwhile.
const PROBE_FRAMES_FULL: u32 = 300;
const PROBE_EVERY_AFTER: u32 = 10;
/// Only detections the detector is sure of count: the closer look also finds more doubtful
/// boxes (parts, reflections), which say nothing about which look sees the road better.
const SURE_SCORE: f32 = 0.5;

/// Counts, frame by frame, the vehicles the camera's own look and the closer one find in the
/// closer look's region, until it can tell which to keep.
#[derive(Debug)]
pub struct ZoomProbe {
    /// Where the closer look looks: the lines' region (`detect_region = "auto"`).
    pub region: BBox,
    vehicle_classes: Vec<ClassId>,
    own: u32,
    closer: u32,
    /// Frames looked at both ways, and frames offered ([`ZoomProbe::due`]) in all.
    probed: u32,
    offered: u32,
}

/// What a [`ZoomProbe`] decided, and on what.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoomVerdict {
    pub zoom: bool,
    /// Vehicle detections by the camera's own look and by the closer one.
    pub own: u32,
    pub closer: u32,
    /// Frames looked at both ways.
    pub probed: u32,
}

impl fmt::Display for ZoomVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let look = if self.zoom { format!("looks closer (the lines' region with the pixels of a {ZOOM_WIDTH_PX}-px frame)") } else { "keeps its own look (the whole frame)".into() };
        write!(f, "the detector {look}: in {} frames looked at both ways, {} vehicle detections by its own look, {} by the closer look", self.probed, self.own, self.closer)
    }
}

impl ZoomProbe {
    pub fn new(region: BBox, vehicle_classes: Vec<ClassId>) -> ZoomProbe {
        ZoomProbe { region, vehicle_classes, own: 0, closer: 0, probed: 0, offered: 0 }
    }

    /// The pixels the closer look gets, for an analysed frame of `width` x `height`: those of the
    /// frame scaled to [`ZOOM_WIDTH_PX`], never fewer than the frame's own.
    pub fn budget_px(width: u32, height: u32) -> f32 {
        let scale = (ZOOM_WIDTH_PX as f32 / width as f32).max(1.0);
        width as f32 * height as f32 * scale * scale
    }

    /// Whether this frame (one the detector runs on) is to be looked at both ways; if not, it
    /// is counted as offered.
    pub fn due(&mut self) -> bool {
        let due = self.probed < PROBE_FRAMES_FULL || self.offered.is_multiple_of(PROBE_EVERY_AFTER);
        self.offered += 1;
        due
    }

    /// Adds one frame's detections by each look; the verdict once it is made.
    pub fn observe(&mut self, own: &[Detection], closer: &[Detection]) -> Option<ZoomVerdict> {
        self.own += self.sure_vehicles(own);
        self.closer += self.sure_vehicles(closer);
        self.probed += 1;
        (self.own + self.closer >= DECIDE_AFTER_DETECTIONS).then_some(ZoomVerdict {
            zoom: self.closer as f32 >= ZOOM_GAIN * self.own as f32,
            own: self.own,
            closer: self.closer,
            probed: self.probed,
        })
    }

    fn sure_vehicles(&self, detections: &[Detection]) -> u32 {
        // By the box's centre: the closer look cuts a vehicle at the region's edge, moving its
        // centre in, but counting only boxes wholly inside drops the large near vehicles the own
        // look sees well (they reach past the edge), and, measured, tipped the junction itself to
        // the closer look (1.8 times), which counted it worse (11 of 13 crossings at every
        // frame, against 13).
        let counted = |d: &&Detection| d.score >= SURE_SCORE && self.vehicle_classes.contains(&d.class) && self.region.contains(d.bbox.center());
        detections.iter().filter(counted).count() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAR: ClassId = 2;
    const PERSON: ClassId = 0;
    const ROAD: BBox = BBox { x1: 0.2, y1: 0.2, x2: 0.8, y2: 0.8 };

    fn det(class: ClassId, score: f32, x: f32, y: f32) -> Detection {
        Detection { bbox: BBox { x1: x - 0.02, y1: y - 0.02, x2: x + 0.02, y2: y + 0.02 }, class, score }
    }

    fn cars(n: usize) -> Vec<Detection> {
        (0..n).map(|i| det(CAR, 0.8, 0.3 + 0.04 * i as f32, 0.5)).collect()
    }

    fn probe() -> ZoomProbe {
        ZoomProbe::new(ROAD, vec![CAR])
    }

    #[test]
    fn the_closer_look_is_kept_where_it_finds_half_as_many_vehicles_again() {
        let mut p = probe();
        let verdict = (0..20).find_map(|_| p.observe(&cars(4), &cars(6)));
        assert_eq!(verdict, Some(ZoomVerdict { zoom: true, own: 40, closer: 60, probed: 10 }), "decided at 100 detections");
    }

    #[test]
    fn the_own_look_is_kept_where_the_closer_one_finds_little_more() {
        let mut p = probe();
        let verdict = (0..30).find_map(|_| p.observe(&cars(5), &cars(7))).expect("decided");
        assert!(!verdict.zoom, "{verdict:?}");
        assert_eq!(verdict.own + verdict.closer, 108);
    }

    #[test]
    fn only_sure_vehicles_centred_in_the_region_count() {
        let mut p = probe();
        let noise = vec![det(CAR, 0.4, 0.5, 0.5), det(PERSON, 0.9, 0.5, 0.5), det(CAR, 0.9, 0.9, 0.5)];
        let mut closer = cars(1);
        closer.extend(noise);
        assert_eq!(p.observe(&cars(1), &closer), None);
        assert_eq!((p.own, p.closer), (1, 1));
    }

    #[test]
    fn a_quiet_camera_is_looked_at_both_ways_every_tenth_frame_until_it_has_shown_enough() {
        let mut p = probe();
        let mut both_ways = 0;
        for _ in 0..PROBE_FRAMES_FULL + 100 {
            if p.due() {
                both_ways += 1;
                assert_eq!(p.observe(&[], &[]), None);
            }
        }
        assert_eq!(both_ways, PROBE_FRAMES_FULL + 10);
        let mut verdict = None;
        for _ in 0..1000 {
            if verdict.is_none() && p.due() {
                verdict = p.observe(&cars(1), &cars(3));
            }
        }
        assert!(verdict.is_some_and(|v| v.zoom && v.own + v.closer >= DECIDE_AFTER_DETECTIONS), "{verdict:?}");
    }

    #[test]
    fn the_closer_look_gets_the_pixels_of_a_640_px_frame_and_never_fewer_than_the_frame() {
        assert!((ZoomProbe::budget_px(416, 234) - 640.0 * 360.0).abs() < 1.0);
        assert_eq!(ZoomProbe::budget_px(832, 468), 832.0 * 468.0);
    }
}
