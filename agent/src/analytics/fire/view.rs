//! The view's own motion between analysed frames. A fire camera on a pole sways in the wind, a
//! PTZ camera patrols, a drone or a handheld camera moves all the time; then every pixel changes
//! and the cues that look for change (flames flicker, smoke drifts into a still scene) see it
//! everywhere. So each frame's shift against the last is estimated by phase correlation on a
//! small grey copy, and kept only if it explains the change between the frames about as well as
//! no shift at all, or better (the scene's own change, noise and light, may dwarf what a slow pan
//! adds, so the shift need not explain much, only not worsen it). Flicker is then measured
//! against the last frame moved by that shift, and the smoke change cue learns the view afresh.
//! A shift that explains less than none is *unexplained*: a bus crossing a fixed view pulls the
//! estimate along with it, a shaking handheld camera turns and tilts more than any shift
//! explains, a slow pan drowns in a grainy picture's own change. Flicker is then the lesser of
//! the two readings, against the last frame as it stands and moved by the shift: flames flicker
//! either way, the edges of a red sign in a shaking view do not both ways.

use opencv::core::{self, Mat, Point2d, Scalar, Size};
use opencv::imgproc;
use opencv::prelude::*;

/// Width of the grey copy the shift is measured on.
const VIEW_WIDTH: i32 = 160;
/// A shift below this many pixels of the grey copy (about 1 % of the width) is noise.
const STILL_PX: f64 = 1.5;
/// A shift is the view's own only if the difference it leaves is at most this share of the
/// difference no shift leaves (a little above 1: noise).
const EXPLAINED_RESIDUAL: f64 = 1.05;
/// Blur of the grey copy, pixels: compression noise and grain are not the view.
const BLUR_PX: f64 = 1.5;

/// How the view moved since the last analysed frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ViewMotion {
    /// The first frame, or a view that stands still.
    Still,
    /// The view moved by this many pixels of the analysed frame (`dx` right, `dy` down): the
    /// content of the last frame at (x, y) is now at (x + dx, y + dy).
    Shifted { dx: f32, dy: f32 },
    /// A shift was measured but explains the change no better than none: something large
    /// crossed a still view, or the camera shook, turned or zoomed, or a pan drowned in the
    /// scene's own change.
    Unexplained { dx: f32, dy: f32 },
}

/// Estimates [`ViewMotion`] frame to frame.
pub struct ViewTracker {
    previous: Option<Mat>,
    window: Mat,
}

impl ViewTracker {
    pub fn new() -> ViewTracker {
        ViewTracker { previous: None, window: Mat::default() }
    }

    /// The view's motion from the last frame to `frame` (BGR, the analysed frame).
    pub fn observe(&mut self, frame: &Mat) -> opencv::Result<ViewMotion> {
        let grey = small_grey(frame)?;
        let motion = match &self.previous {
            Some(previous) if previous.size()? == grey.size()? => motion_between(&mut self.window, previous, &grey, frame.cols())?,
            _ => ViewMotion::Still,
        };
        self.previous = Some(grey);
        Ok(motion)
    }

    /// Forgets the last frame (the stream restarted).
    pub fn restart(&mut self) {
        self.previous = None;
    }
}

impl Default for ViewTracker {
    fn default() -> Self {
        Self::new()
    }
}

/// How the view moved from `previous` to `grey` (grey copies of one size, of frames `cols`
/// wide); `window` is phase correlation's, kept between frames.
fn motion_between(window: &mut Mat, previous: &Mat, grey: &Mat, cols: i32) -> opencv::Result<ViewMotion> {
    if window.size()? != grey.size()? {
        imgproc::create_hanning_window(window, grey.size()?, core::CV_32F)?;
    }
    let Point2d { x, y } = imgproc::phase_correlate(previous, grey, window, None)?;
    if x.hypot(y) < STILL_PX {
        return Ok(ViewMotion::Still);
    }
    let (before, now) = (blurred(previous)?, blurred(grey)?);
    let scale = cols as f64 / grey.cols() as f64;
    let (dx, dy) = ((x * scale) as f32, (y * scale) as f32);
    let mut unmoved = Mat::default();
    core::absdiff(&before, &now, &mut unmoved)?;
    Ok(if residual(&before, &now, x, y)? > EXPLAINED_RESIDUAL * core::mean_def(&unmoved)?[0] {
        ViewMotion::Unexplained { dx, dy }
    } else {
        ViewMotion::Shifted { dx, dy }
    })
}

/// The frame (BGR), grey and `width` wide.
fn grey_copy(frame: &Mat, width: i32) -> opencv::Result<Mat> {
    let height = ((frame.rows() as f64 * width as f64 / frame.cols().max(1) as f64).round() as i32).max(1);
    let mut small = Mat::default();
    imgproc::resize(frame, &mut small, Size::new(width, height), 0.0, 0.0, imgproc::INTER_AREA)?;
    let mut grey = Mat::default();
    imgproc::cvt_color_def(&small, &mut grey, imgproc::COLOR_BGR2GRAY)?;
    Ok(grey)
}

/// The frame, grey, `VIEW_WIDTH` wide, as 32-bit floats (phase correlation's input).
fn small_grey(frame: &Mat) -> opencv::Result<Mat> {
    let mut out = Mat::default();
    grey_copy(frame, VIEW_WIDTH)?.convert_to(&mut out, core::CV_32F, 1.0, 0.0)?;
    Ok(out)
}

/// Width of the thumbnail a view is known by: its coarse structure (ridges, horizon, buildings),
/// not what moves in it.
const SIGNATURE_WIDTH: i32 = 32;

/// The frame's thumbnail, grey, `SIGNATURE_WIDTH` wide, of zero mean and unit norm, so that the
/// sum of two thumbnails' products is their correlation, whatever the light's level and contrast.
pub fn signature(frame: &Mat) -> opencv::Result<Vec<f32>> {
    let values: Vec<f32> = grey_copy(frame, SIGNATURE_WIDTH)?.data_bytes()?.iter().map(|&v| v as f32).collect();
    let mean = values.iter().sum::<f32>() / values.len() as f32;
    let norm = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>().sqrt().max(1e-6);
    Ok(values.iter().map(|v| (v - mean) / norm).collect())
}

/// `image` moved by (`dx`, `dy`) pixels; what moves in from outside is 0, and `valid` (255 where
/// the moved image has content) says where.
pub fn shifted(image: &Mat, dx: f64, dy: f64) -> opencv::Result<(Mat, Mat)> {
    let m = Mat::from_slice_2d(&[[1.0f64, 0.0, dx], [0.0, 1.0, dy]])?;
    let size = image.size()?;
    let mut moved = Mat::default();
    imgproc::warp_affine(image, &mut moved, &m, size, imgproc::INTER_NEAREST, core::BORDER_CONSTANT, Scalar::all(0.0))?;
    let full = Mat::new_size_with_default(size, core::CV_8UC1, Scalar::all(255.0))?;
    let mut valid = Mat::default();
    imgproc::warp_affine(&full, &mut valid, &m, size, imgproc::INTER_NEAREST, core::BORDER_CONSTANT, Scalar::all(0.0))?;
    Ok((moved, valid))
}

/// `image` without its grain (compression noise is not the view).
fn blurred(image: &Mat) -> opencv::Result<Mat> {
    let mut out = Mat::default();
    imgproc::gaussian_blur_def(image, &mut out, Size::new(0, 0), BLUR_PX)?;
    Ok(out)
}

/// Mean absolute grey-level difference between `now` and `before` moved by (`dx`, `dy`), over
/// the pixels both cover.
fn residual(before: &Mat, now: &Mat, dx: f64, dy: f64) -> opencv::Result<f64> {
    let (moved, valid) = shifted(before, dx, dy)?;
    let mut difference = Mat::default();
    core::absdiff(&moved, now, &mut difference)?;
    Ok(core::mean(&difference, &valid)?[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured frame, larger than the 416x234 view: blobs of light and dark some 20 pixels
    /// across, as a landscape has.
    fn scene() -> Mat {
        let mut noise = Mat::new_rows_cols_with_default((234 + 80) / 16, (416 + 80) / 16, core::CV_8UC3, Scalar::all(0.0)).unwrap();
        core::randu(&mut noise, &Scalar::all(0.0), &Scalar::all(255.0)).unwrap();
        let mut big = Mat::default();
        imgproc::resize(&noise, &mut big, Size::new(416 + 80, 234 + 80), 0.0, 0.0, imgproc::INTER_CUBIC).unwrap();
        big
    }

    fn window(big: &Mat, x: i32, y: i32) -> Mat {
        Mat::roi(big, core::Rect::new(x, y, 416, 234)).unwrap().try_clone().unwrap()
    }

    #[test]
    fn a_panned_view_is_measured_and_a_still_one_is_still() {
        let big = scene();
        let mut tracker = ViewTracker::new();
        assert_eq!(tracker.observe(&window(&big, 40, 40)).unwrap(), ViewMotion::Still);
        assert_eq!(tracker.observe(&window(&big, 40, 40)).unwrap(), ViewMotion::Still);
        // The camera pans right and tilts up: the content moves left and down.
        match tracker.observe(&window(&big, 52, 33)).unwrap() {
            ViewMotion::Shifted { dx, dy } => assert!((dx + 12.0).abs() < 2.0 && (dy - 7.0).abs() < 2.0, "({dx}, {dy})"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn something_crossing_a_still_view_does_not_move_it() {
        let big = scene();
        let background = window(&big, 40, 40);
        let mut tracker = ViewTracker::new();
        tracker.observe(&background).unwrap();
        // A bus, a third of the frame wide, drives across.
        let mut with_bus = background.clone();
        let bus = window(&big, 0, 0);
        Mat::roi(&bus, core::Rect::new(100, 80, 140, 100)).unwrap().copy_to(&mut Mat::roi_mut(&mut with_bus, core::Rect::new(130, 80, 140, 100)).unwrap()).unwrap();
        let motion = tracker.observe(&with_bus).unwrap();
        assert!(!matches!(motion, ViewMotion::Shifted { .. }), "{motion:?}");
    }

    #[test]
    fn a_view_no_shift_explains_is_never_followed() {
        let big = scene();
        let mut tracker = ViewTracker::new();
        tracker.observe(&window(&big, 40, 40)).unwrap();
        let mut flipped = Mat::default();
        core::flip(&window(&big, 40, 40), &mut flipped, 1).unwrap();
        let motion = tracker.observe(&flipped).unwrap();
        assert!(!matches!(motion, ViewMotion::Shifted { .. }), "{motion:?}");
    }
}
