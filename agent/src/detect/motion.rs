//! Motion gating: a glance at a coarse grey copy of each frame decides whether the detector
//! needs to run. A still scene (an empty road at night, a parked car, a fire-watch hillside) costs
//! a pass over the pixels instead of an inference; a still scene is still looked at every
//! `recheck_s`, so parked vehicles keep being seen and dwell timers keep running.
//!
//! The gate must never hide movement the agent cares about, so three things set it:
//! - its grain follows the smallest object of interest: the frame is averaged over cells half
//!   `min_object_px` wide, so such an object covers a whole cell and changes its mean, where a
//!   sampled thumbnail can fall between a motorbike's pixels;
//! - each frame is compared with the last frame the detector ran on, not with the previous one,
//!   so traffic crawling a pixel a frame at 30 fps adds up instead of slipping under the
//!   threshold frame by frame;
//! - while any track is moving the caller does not ask it (see `Tracker::moving`).

use std::time::Duration;

use serde::Deserialize;

use crate::check::{ConfigError, check_positive_seconds};
use crate::types::Frame;

/// `motion` in a camera's config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotionConfig {
    /// Whether to gate at all; `false` runs the detector on every analysed frame.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// The smallest object whose movement must wake the detector, in pixels of the frame the
    /// detector sees (416 wide by default; see `detect_width_px`).
    #[serde(default = "default_min_object_px")]
    pub min_object_px: u32,
    /// Grey levels (of 255) a cell's mean must change by to count as moving.
    #[serde(default = "default_pixel_threshold")]
    pub pixel_threshold: u8,
    /// A still scene is still run through the detector this often, seconds.
    #[serde(default = "default_recheck_s")]
    pub recheck_s: f32,
}

fn default_enabled() -> bool {
    true
}
/// YOLOX's finest stride: objects smaller than this are barely detected anyway.
fn default_min_object_px() -> u32 {
    8
}
fn default_pixel_threshold() -> u8 {
    20
}
/// The longest `recheck_s` on a camera with a `no_parking`, `no_stopping` or `congestion` rule:
/// well within the 10 s a stop is kept unseen (and a queue's default `clear_s`), since on the
/// frames the gate skips the rules see no vehicle.
const MAX_RECHECK_S: f32 = 5.0;
fn default_recheck_s() -> f32 {
    2.0
}

impl Default for MotionConfig {
    fn default() -> MotionConfig {
        MotionConfig { enabled: default_enabled(), min_object_px: default_min_object_px(), pixel_threshold: default_pixel_threshold(), recheck_s: default_recheck_s() }
    }
}

impl MotionConfig {
    /// The longest `recheck_s` on a camera with rules on vehicles that stand (`no_parking`,
    /// `no_stopping`, `congestion`), given its `congestion` rules' `clear_s`: `None` without such
    /// rules.
    pub fn recheck_limit_s(standing_rules: bool, clear_s: impl Iterator<Item = f32>) -> Option<f32> {
        standing_rules.then(|| clear_s.filter(|&c| c > 0.0).fold(MAX_RECHECK_S, f32::min))
    }

    /// `recheck_limit_s`: the longest `recheck_s` the camera's rules on vehicles that stand allow
    /// ([`MotionConfig::recheck_limit_s`]), if it has any.
    pub fn validate(&self, path: &str, recheck_limit_s: Option<f32>, errors: &mut Vec<ConfigError>) {
        if !(2..=256).contains(&self.min_object_px) {
            errors.push(ConfigError::new(format!("{path}.min_object_px"), format!("must be within 2..256 pixels, got {}", self.min_object_px)));
        }
        check_positive_seconds(self.recheck_s, &format!("{path}.recheck_s"), errors);
        let Some(limit_s) = recheck_limit_s else { return };
        if self.enabled && self.recheck_s > limit_s {
            errors.push(ConfigError::new(
                format!("{path}.recheck_s"),
                format!("must be at most {limit_s} s on this camera (5 s with a no_parking, no_stopping or congestion rule, and no more than a congestion rule's clear_s), got {}: between two looks at a still scene the rules see no vehicle, and a stop unseen for 10 s is over, as is a queue unseen for clear_s: the rule would never fire", self.recheck_s),
            ));
        }
    }
}

pub struct MotionGate {
    config: MotionConfig,
    /// Cell means of the last frame the detector ran on.
    reference: Vec<u8>,
    /// This frame's cell means (kept to be reused: it becomes the reference when the detector
    /// runs, and the reference becomes the next frame's buffer).
    current: Vec<u8>,
    /// Stream time of the last frame the detector ran on.
    last_detection: Option<Duration>,
}

impl MotionGate {
    pub fn new(config: MotionConfig) -> MotionGate {
        MotionGate { config, reference: Vec::new(), current: Vec::new(), last_detection: None }
    }

    /// Whether the detector should run on `frame`: a cell changed since the frame it last ran
    /// on, or the scene has not been looked at for `recheck_s`, or the stream restarted, or
    /// `tracks_moving` (the caller's tracks are in motion: the gate never hides them).
    pub fn should_detect(&mut self, frame: &Frame, tracks_moving: bool) -> bool {
        if !self.config.enabled {
            return true;
        }
        let cell = (self.config.min_object_px / 2).max(1) as usize;
        if !cell_means(frame, cell, &mut self.current) {
            return true;
        }
        let moved = self.current.len() != self.reference.len()
            || self.current.iter().zip(&self.reference).any(|(a, b)| a.abs_diff(*b) > self.config.pixel_threshold);
        let due = match self.last_detection {
            Some(last) if frame.pts >= last => frame.pts - last >= Duration::from_secs_f32(self.config.recheck_s),
            // First frame, or time went back (the stream restarted).
            _ => true,
        };
        let detect = due || moved || tracks_moving;
        if detect {
            self.last_detection = Some(frame.pts);
            std::mem::swap(&mut self.reference, &mut self.current);
        }
        detect
    }
}

/// The mean grey level of each `cell` x `cell` block of a BGR frame (partial blocks at the right
/// and bottom edges dropped), into `means`; `false` when the frame cannot be read. Every pixel
/// is read: a sampled copy misses small objects.
fn cell_means(frame: &Frame, cell: usize, means: &mut Vec<u8>) -> bool {
    let Ok(map) = frame.buffer.map_readable() else { return false };
    let (width, height) = (frame.width as usize, frame.height as usize);
    let (cols, rows) = (width / cell, height / cell);
    if cols == 0 || rows == 0 || map.len() < frame.stride * (height - 1) + width * 3 {
        return false;
    }
    let mut sums = vec![0u32; cols];
    means.clear();
    for row in 0..rows {
        sums.fill(0);
        for y in row * cell..(row + 1) * cell {
            let line = &map[y * frame.stride..][..cols * cell * 3];
            for (sum, block) in sums.iter_mut().zip(line.chunks_exact(3 * cell)) {
                *sum += block.chunks_exact(3).map(|px| px[0] as u32 + 2 * px[1] as u32 + px[2] as u32).sum::<u32>();
            }
        }
        let n = (4 * cell * cell) as u32;
        means.extend(sums.iter().map(|s| (s / n) as u8));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pts_ms: u64, fill: impl Fn(usize, usize) -> u8) -> Frame {
        let (width, height) = (128usize, 72usize);
        let mut data = vec![0u8; width * height * 3];
        for y in 0..height {
            for x in 0..width {
                data[(y * width + x) * 3..][..3].fill(fill(x, y));
            }
        }
        Frame {
            camera: "c".into(),
            seq: 0,
            pts: Duration::from_millis(pts_ms),
            source_run: 0,
            width: width as u32,
            height: height as u32,
            stride: width * 3,
            buffer: gstreamer::Buffer::from_slice(data),
            native: None,
            arrived: std::time::Instant::now(),
        }
    }

    #[test]
    fn still_frames_skip_the_detector_until_the_recheck_and_motion_wakes_it() {
        gstreamer::init().unwrap();
        let mut gate = MotionGate::new(MotionConfig::default());
        let still = |t| frame(t, |_, _| 100);
        assert!(gate.should_detect(&still(0), false), "the first frame is always looked at");
        assert!(!gate.should_detect(&still(200), false));
        assert!(!gate.should_detect(&still(1800), false));
        assert!(gate.should_detect(&still(2000), false), "recheck after 2 s");
        // A bright block (a vehicle) appears.
        let block = |x: usize, y: usize| (40..60).contains(&x) && (30..40).contains(&y);
        assert!(gate.should_detect(&frame(2200, |x, y| if block(x, y) { 250 } else { 100 }), false));
        // Sensor noise of a few grey levels is not motion.
        assert!(!gate.should_detect(&frame(2400, |x, y| if block(x, y) { 245 } else { 103 }), false));
        // Moving tracks are never hidden, even where the pixels hardly change.
        assert!(gate.should_detect(&frame(2600, |x, y| if block(x, y) { 245 } else { 103 }), true));
        let mut off = MotionGate::new(MotionConfig { enabled: false, ..MotionConfig::default() });
        assert!(off.should_detect(&still(0), false) && off.should_detect(&still(200), false));
    }

    #[test]
    fn an_object_as_small_as_min_object_px_moving_a_pixel_a_frame_wakes_it() {
        gstreamer::init().unwrap();
        let mut gate = MotionGate::new(MotionConfig::default());
        // An 8 px dark motorbike on grey road, one pixel further each frame (30 fps).
        let bike = |t: u64| frame(t * 33, move |x, y| if (20 + t as usize..28 + t as usize).contains(&x) && (40..48).contains(&y) { 40 } else { 110 });
        assert!(gate.should_detect(&bike(0), false));
        let woke: Vec<u64> = (1..12).filter(|&t| gate.should_detect(&bike(t), false)).collect();
        // Frame to frame the change is one column of the bike; against the last detected frame
        // it adds up within a few frames, every few frames.
        assert!(woke.len() >= 3 && woke[0] <= 4, "{woke:?}");
    }
}
