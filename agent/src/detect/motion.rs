//! Motion gating: a glance at a small grey thumbnail of each frame decides whether the detector
//! needs to run. A still scene (an empty road at night, a parked car, a fire-watch hillside) costs
//! a few thousand pixel reads instead of an inference; a still scene is still looked at every
//! `recheck_s`, so parked vehicles keep being seen and dwell timers keep running.

use std::time::Duration;

use serde::Deserialize;

use crate::check::ConfigError;
use crate::types::Frame;

/// `motion` in a camera's config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MotionConfig {
    /// Share of the thumbnail's pixels that must change for the frame to count as moving (0..1);
    /// 0 runs the detector on every analysed frame.
    #[serde(default = "default_min_changed")]
    pub min_changed: f32,
    /// Grey levels (of 255) a thumbnail pixel must change by to count as changed.
    #[serde(default = "default_pixel_threshold")]
    pub pixel_threshold: u8,
    /// A still scene is still run through the detector this often, seconds.
    #[serde(default = "default_recheck_s")]
    pub recheck_s: f32,
}

fn default_min_changed() -> f32 {
    0.001
}
fn default_pixel_threshold() -> u8 {
    20
}
fn default_recheck_s() -> f32 {
    2.0
}

impl Default for MotionConfig {
    fn default() -> MotionConfig {
        MotionConfig { min_changed: default_min_changed(), pixel_threshold: default_pixel_threshold(), recheck_s: default_recheck_s() }
    }
}

impl MotionConfig {
    pub fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        if !(0.0..=1.0).contains(&self.min_changed) {
            errors.push(ConfigError::new(format!("{path}.min_changed"), format!("must be within 0..1, got {}", self.min_changed)));
        }
        if !(self.recheck_s > 0.0 && self.recheck_s.is_finite()) {
            errors.push(ConfigError::new(format!("{path}.recheck_s"), format!("must be a positive number of seconds, got {}", self.recheck_s)));
        }
    }
}

/// Thumbnail size: enough to see a vehicle move at 416 px (one thumbnail pixel is ~6 px there).
const THUMB_W: usize = 64;
const THUMB_H: usize = 36;

pub struct MotionGate {
    config: MotionConfig,
    previous: Vec<u8>,
    /// Stream time of the last frame the detector ran on.
    last_detection: Option<Duration>,
}

impl MotionGate {
    pub fn new(config: MotionConfig) -> MotionGate {
        MotionGate { config, previous: Vec::new(), last_detection: None }
    }

    /// Whether the detector should run on `frame`: something moved since the previous frame,
    /// or the scene has not been looked at for `recheck_s`, or the stream restarted.
    pub fn should_detect(&mut self, frame: &Frame) -> bool {
        if self.config.min_changed <= 0.0 {
            return true;
        }
        let Some(thumb) = thumbnail(frame) else { return true };
        let changed = if self.previous.len() == thumb.len() {
            let threshold = self.config.pixel_threshold;
            thumb.iter().zip(&self.previous).filter(|&(a, b)| a.abs_diff(*b) > threshold).count() as f32 / thumb.len() as f32
        } else {
            1.0
        };
        self.previous = thumb;
        let due = match self.last_detection {
            Some(last) if frame.pts >= last => frame.pts - last >= Duration::from_secs_f32(self.config.recheck_s),
            // First frame, or time went back (the stream restarted).
            _ => true,
        };
        let detect = due || changed >= self.config.min_changed;
        if detect {
            self.last_detection = Some(frame.pts);
        }
        detect
    }
}

/// A `THUMB_W` x `THUMB_H` grey thumbnail of a BGR frame, by sampling (no copy of the frame).
fn thumbnail(frame: &Frame) -> Option<Vec<u8>> {
    let map = frame.buffer.map_readable().ok()?;
    let (width, height) = (frame.width as usize, frame.height as usize);
    if width < THUMB_W || height < THUMB_H || map.len() < frame.stride * height {
        return None;
    }
    let mut thumb = Vec::with_capacity(THUMB_W * THUMB_H);
    for ty in 0..THUMB_H {
        let row = &map[(ty * height / THUMB_H) * frame.stride..];
        for tx in 0..THUMB_W {
            let px = &row[(tx * width / THUMB_W) * 3..];
            thumb.push(((px[0] as u16 + 2 * px[1] as u16 + px[2] as u16) / 4) as u8);
        }
    }
    Some(thumb)
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
            arrived: std::time::Instant::now(),
        }
    }

    #[test]
    fn still_frames_skip_the_detector_until_the_recheck_and_motion_wakes_it() {
        gstreamer::init().unwrap();
        let mut gate = MotionGate::new(MotionConfig::default());
        let still = |t| frame(t, |_, _| 100);
        assert!(gate.should_detect(&still(0)), "the first frame is always looked at");
        assert!(!gate.should_detect(&still(200)));
        assert!(!gate.should_detect(&still(1800)));
        assert!(gate.should_detect(&still(2000)), "recheck after 2 s");
        // A bright block (a vehicle) appears.
        assert!(gate.should_detect(&frame(2200, |x, y| if (40..60).contains(&x) && (30..40).contains(&y) { 250 } else { 100 })));
        // Sensor noise of a few grey levels is not motion.
        assert!(!gate.should_detect(&frame(2400, |x, y| if (40..60).contains(&x) && (30..40).contains(&y) { 245 } else { 103 })));
        let mut off = MotionGate::new(MotionConfig { min_changed: 0.0, ..MotionConfig::default() });
        assert!(off.should_detect(&still(0)) && off.should_detect(&still(200)));
    }
}
