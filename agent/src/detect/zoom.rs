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
//! So a new camera looks both ways at each frame until the two looks have found enough vehicles
//! between them, and keeps the closer look only where it finds clearly more.
//!
//! Measured (5 fps, every frame detected, vehicles scored 0.5 or more with their centre in the
//! region, by the time both looks had found 100): the arterial 1.17 times as many with the closer
//! look (0.92 over the whole clip), the residential street 1.00, bgslibrary 1.00, the Vietnamese
//! junction 1.24, the same junction at half size 2.25 and at a third 6.3.

use std::fmt;

use crate::types::{BBox, ClassId, Detection};

/// The closer look gets the pixels of the frame scaled to this width.
pub const ZOOM_WIDTH_PX: u32 = 640;
/// The closer look is kept when it finds this many times the vehicles the camera's own look
/// finds: between the arterial's 1.17 (where it loses cars) and the half-size junction's 2.25
/// (where it finds the motorbikes). The junction itself (1.24) keeps its own look, which counts
/// it as a person does.
const ZOOM_GAIN: f32 = 1.5;
/// Vehicles both looks must have found together before the choice is made: at 5 fps a busy
/// junction gets there within a second, a road with a car now and then within 10 s.
const DECIDE_AFTER_VEHICLES: u32 = 100;
/// A camera that shows fewer vehicles than that is decided after this many frames looked at both
/// ways (each costs the two inferences), on what it has shown; with fewer than a quarter of
/// [`DECIDE_AFTER_VEHICLES`] it keeps its own look.
const PROBE_FRAMES_MAX: u32 = 300;
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
    zoomed: u32,
    frames: u32,
}

/// What a [`ZoomProbe`] decided, and on what.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoomVerdict {
    pub zoom: bool,
    pub own: u32,
    pub zoomed: u32,
    pub frames: u32,
}

impl fmt::Display for ZoomVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let look = if self.zoom { "looks closer (the lines' region at 640 px of pixels)" } else { "keeps its own look" };
        write!(f, "the detector {look}: {} vehicles found in {} frames looked at both ways, {} of them by the closer look", self.own + self.zoomed, self.frames, self.zoomed)
    }
}

impl ZoomProbe {
    pub fn new(region: BBox, vehicle_classes: Vec<ClassId>) -> ZoomProbe {
        ZoomProbe { region, vehicle_classes, own: 0, zoomed: 0, frames: 0 }
    }

    /// The pixels the closer look gets, for an analysed frame of `width` x `height`: those of the
    /// frame scaled to [`ZOOM_WIDTH_PX`], never fewer than the frame's own.
    pub fn budget_px(width: u32, height: u32) -> f32 {
        let scale = (ZOOM_WIDTH_PX as f32 / width as f32).max(1.0);
        width as f32 * height as f32 * scale * scale
    }

    /// Adds one frame's detections by each look; the verdict once it is made.
    pub fn observe(&mut self, own: &[Detection], zoomed: &[Detection]) -> Option<ZoomVerdict> {
        self.own += self.sure_vehicles(own);
        self.zoomed += self.sure_vehicles(zoomed);
        self.frames += 1;
        let found = self.own + self.zoomed;
        let enough = found >= DECIDE_AFTER_VEHICLES || (self.frames >= PROBE_FRAMES_MAX && found >= DECIDE_AFTER_VEHICLES / 4);
        if !enough && self.frames < PROBE_FRAMES_MAX {
            return None;
        }
        let zoom = enough && self.zoomed as f32 >= ZOOM_GAIN * self.own as f32;
        Some(ZoomVerdict { zoom, own: self.own, zoomed: self.zoomed, frames: self.frames })
    }

    fn sure_vehicles(&self, detections: &[Detection]) -> u32 {
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
        assert_eq!(verdict, Some(ZoomVerdict { zoom: true, own: 40, zoomed: 60, frames: 10 }), "decided once 100 vehicles were found");
    }

    #[test]
    fn the_own_look_is_kept_where_the_closer_one_finds_little_more() {
        let mut p = probe();
        let verdict = (0..30).find_map(|_| p.observe(&cars(5), &cars(7))).expect("decided");
        assert!(!verdict.zoom, "{verdict:?}");
        assert_eq!(verdict.own + verdict.zoomed, 108);
    }

    #[test]
    fn only_sure_vehicles_inside_the_region_count() {
        let mut p = probe();
        let noise = vec![det(CAR, 0.4, 0.5, 0.5), det(PERSON, 0.9, 0.5, 0.5), det(CAR, 0.9, 0.9, 0.5)];
        let mut zoomed = cars(1);
        zoomed.extend(noise);
        assert_eq!(p.observe(&cars(1), &zoomed), None);
        assert_eq!((p.own, p.zoomed), (1, 1));
    }

    #[test]
    fn a_quiet_camera_is_decided_on_what_it_showed_and_keeps_its_look_without_enough() {
        let mut quiet = probe();
        let verdict = (0..PROBE_FRAMES_MAX).find_map(|i| quiet.observe(&cars(usize::from(i % 20 == 0)), &cars(2 * usize::from(i % 20 == 0))));
        assert_eq!(verdict, Some(ZoomVerdict { zoom: true, own: 15, zoomed: 30, frames: PROBE_FRAMES_MAX }));
        let mut empty = probe();
        let verdict = (0..PROBE_FRAMES_MAX).find_map(|_| empty.observe(&[], &[]));
        assert_eq!(verdict, Some(ZoomVerdict { zoom: false, own: 0, zoomed: 0, frames: PROBE_FRAMES_MAX }));
    }

    #[test]
    fn the_closer_look_gets_the_pixels_of_a_640_px_frame_and_never_fewer_than_the_frame() {
        assert!((ZoomProbe::budget_px(416, 234) - 640.0 * 360.0).abs() < 1.0);
        assert_eq!(ZoomProbe::budget_px(832, 468), 832.0 * 468.0);
    }
}
