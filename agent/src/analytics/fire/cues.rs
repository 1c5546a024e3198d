//! The image cues of fire and smoke, each computed with OpenCV on the analysed frame:
//! - flames: the OnFire classifier on the whole frame and on tiles (so a small, far fire is
//!   located), with fire-coloured pixels and their flicker between frames;
//! - smoke: slow, greyish foreground (background subtraction on a small copy of the frame) that
//!   stays in place from frame to frame.

use opencv::core::{self, Mat, Point as CvPoint, Rect, Scalar, Size, Vector};
use opencv::imgproc;
use opencv::prelude::*;
use opencv::video::BackgroundSubtractorMOG2;

use crate::analytics::geometry::Polygon;
use crate::detect::{DetectError, Detector};
use crate::types::BBox;

/// Tiles are squares of half the frame height: a fire a tenth of the frame high is a fifth of a
/// tile, which the classifier sees far better than a fiftieth of the whole frame.
const TILE_OF_HEIGHT: f64 = 0.5;

/// An image region handed to a classifier, its place in the frame and the probability it gave.
pub struct Tile {
    pub rect: Rect,
    pub p: f32,
}

/// Squares of half the frame height covering `area`, each overlapping the next by half of it,
/// so that a flame up to half a tile across lies whole within one tile wherever it is. Tiles that
/// only abut cut such a flame in two where it crosses their border, and neither half looks like
/// a fire to the classifier: the office fire seen by a panning camera, crossing borders as the
/// view moves, was confirmed at 5 s with abutting tiles (and missed with a 3-s sweep), at 3.5 s
/// with overlapping ones. There are more of them (9 on a square frame instead of 4, 21 on a 16:9
/// frame instead of 8; OnFire takes 1.4 ms a tile on one core), so the watch classifies only
/// those with fire-coloured pixels in a flame zone ([`lit_tiles`]).
pub fn tile_rects(frame: &Mat, area: Rect) -> Vec<Rect> {
    let side = ((frame.rows() as f64 * TILE_OF_HEIGHT).round() as i32).clamp(16, frame.rows().min(frame.cols()));
    let starts = |from: i32, len: i32| -> Vec<i32> {
        if len <= side {
            return vec![(from + len / 2 - side / 2).max(0)];
        }
        // Steps of at most half a tile from one end to the other.
        let steps = (2 * (len - side) + side - 1) / side;
        (0..=steps).map(|i| from + i * (len - side) / steps).collect()
    };
    let mut rects = Vec::new();
    for y in starts(area.y, area.height) {
        for x in starts(area.x, area.width) {
            rects.push(Rect::new(x.min(frame.cols() - side), y.min(frame.rows() - side), side, side));
        }
    }
    rects
}

/// Of `tiles`, those that can give flame evidence: where one meets a flame zone (`zones`, their
/// bounds), at least `min_fire_pixels` of the part inside the zone is fire-coloured (`fire`), as
/// flame evidence needs. The classifier looks at these only: on most frames of most views, none.
/// Judged within each zone, not over the whole tile: a small zone in a corner of a tile holds a
/// small fire's pixels at a share the whole tile would not show.
pub fn lit_tiles(fire: &Mat, tiles: Vec<Rect>, zones: &[Rect], min_fire_pixels: f32) -> opencv::Result<Vec<Rect>> {
    let mut lit = Vec::new();
    for tile in tiles {
        for zone in zones {
            let part = tile & *zone;
            if part.area() > 0 && count_in(fire, part)? as f32 >= min_fire_pixels * part.area() as f32 {
                lit.push(tile);
                break;
            }
        }
    }
    Ok(lit)
}

/// Runs an image classifier on each of `rects`, each resized to the model's input, in one batch.
pub fn classify_tiles(classifier: &Detector, frame: &Mat, rects: Vec<Rect>) -> Result<Vec<Tile>, String> {
    let input = &classifier.manifest().input;
    let size = Size::new(input.width as i32, input.height as i32);
    let mut images = Vec::with_capacity(rects.len());
    for rect in &rects {
        let mut resized = Mat::default();
        imgproc::resize(&Mat::roi(frame, *rect).map_err(|e| e.to_string())?, &mut resized, size, 0.0, 0.0, imgproc::INTER_LINEAR).map_err(|e| e.to_string())?;
        images.push(resized);
    }
    let bytes: Vec<&[u8]> = images.iter().map(|m| m.data_bytes()).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let p = classifier.classify(&bytes).map_err(|e: DetectError| e.to_string())?;
    Ok(rects.into_iter().zip(p).map(|(rect, p)| Tile { rect, p }).collect())
}

/// Fire-coloured pixels: red to yellow hue, saturated and bright, or the near-white core of a
/// flame with a warm cast. 255 where fire-coloured.
pub fn fire_colour_mask(frame: &Mat) -> opencv::Result<Mat> {
    let mut hsv = Mat::default();
    imgproc::cvt_color_def(frame, &mut hsv, imgproc::COLOR_BGR2HSV)?;
    let mut mask = Mat::default();
    let mut part = Mat::default();
    core::in_range(&hsv, &Scalar::new(0.0, 70.0, 150.0, 0.0), &Scalar::new(35.0, 255.0, 255.0, 0.0), &mut mask)?;
    core::in_range(&hsv, &Scalar::new(170.0, 70.0, 150.0, 0.0), &Scalar::new(180.0, 255.0, 255.0, 0.0), &mut part)?;
    let mut out = Mat::default();
    core::bitwise_or(&mask, &part, &mut out, &core::no_array())?;
    core::in_range(&hsv, &Scalar::new(10.0, 20.0, 235.0, 0.0), &Scalar::new(35.0, 70.0, 255.0, 0.0), &mut part)?;
    core::bitwise_or(&out, &part, &mut mask, &core::no_array())?;
    Ok(mask)
}

/// 255 inside `zone` and outside every mask, at the size of `like`.
pub fn zone_mask(like: &Mat, zone: &Polygon, masks: &[Polygon]) -> opencv::Result<Mat> {
    let mut out = Mat::new_rows_cols_with_default(like.rows(), like.cols(), core::CV_8UC1, Scalar::all(0.0))?;
    let pixels = |p: &Polygon| -> Vector<Vector<CvPoint>> {
        let ring: Vector<CvPoint> =
            p.points.iter().map(|q| CvPoint::new((q.x * like.cols() as f32).round() as i32, (q.y * like.rows() as f32).round() as i32)).collect();
        Vector::from_iter([ring])
    };
    imgproc::fill_poly(&mut out, &pixels(zone), Scalar::all(255.0), imgproc::LINE_8, 0, CvPoint::new(0, 0))?;
    for mask in masks {
        imgproc::fill_poly(&mut out, &pixels(mask), Scalar::all(0.0), imgproc::LINE_8, 0, CvPoint::new(0, 0))?;
    }
    Ok(out)
}

/// Whether `mask` is set at `point` (normalized).
pub fn is_set_at(mask: &Mat, point: crate::types::Point) -> bool {
    let (x, y) = ((point.x * mask.cols() as f32) as i32, (point.y * mask.rows() as f32) as i32);
    mask.at_2d::<u8>(y.clamp(0, mask.rows() - 1), x.clamp(0, mask.cols() - 1)).is_ok_and(|v| *v != 0)
}

/// Non-zero pixels of `mask` inside `rect`.
pub fn count_in(mask: &Mat, rect: Rect) -> opencv::Result<i32> {
    core::count_non_zero(&Mat::roi(mask, rect)?)
}

/// The box of the largest blob of non-zero pixels of `mask` inside `rect` (a fire is one body
/// of flame; a red vehicle beside it is another blob), normalized to the mask size.
pub fn largest_blob_in(mask: &Mat, rect: Rect) -> opencv::Result<Option<BBox>> {
    let roi = Mat::roi(mask, rect)?;
    // Join the tongues of one flame.
    let kernel = imgproc::get_structuring_element_def(imgproc::MORPH_ELLIPSE, Size::new(5, 5))?;
    let mut joined = Mat::default();
    imgproc::morphology_ex_def(&roi, &mut joined, imgproc::MORPH_CLOSE, &kernel)?;
    let (mut labels, mut stats, mut centroids) = (Mat::default(), Mat::default(), Mat::default());
    let n = imgproc::connected_components_with_stats_def(&joined, &mut labels, &mut stats, &mut centroids)?;
    let stat = |i: i32, which: i32| stats.at_2d::<i32>(i, which).copied();
    let mut best = None;
    for i in 1..n {
        if best.is_none_or(|(_, area)| stat(i, imgproc::CC_STAT_AREA).is_ok_and(|a| a > area)) {
            best = Some((i, stat(i, imgproc::CC_STAT_AREA)?));
        }
    }
    let Some((i, _)) = best else { return Ok(None) };
    let (x, y) = (rect.x + stat(i, imgproc::CC_STAT_LEFT)?, rect.y + stat(i, imgproc::CC_STAT_TOP)?);
    let (bw, bh) = (stat(i, imgproc::CC_STAT_WIDTH)?, stat(i, imgproc::CC_STAT_HEIGHT)?);
    let (w, h) = (mask.cols() as f32, mask.rows() as f32);
    Ok(Some(BBox { x1: x as f32 / w, y1: y as f32 / h, x2: (x + bw) as f32 / w, y2: (y + bh) as f32 / h }))
}

/// Width of the copy the smoke cue works on: smoke is large and slow, detail only adds noise.
const SMOKE_WIDTH: i32 = 160;
/// Analysed frames the background model learns before the smoke cue says anything.
const SMOKE_WARM_UP_FRAMES: u32 = 8;
/// Share of the background model replaced by each frame after the warm-up (about 100 s to
/// absorb a change at 2 analysed fps).
const SMOKE_LEARNING_RATE: f64 = 0.005;
/// Grey-level change between analysed frames that counts as churn.
const SMOKE_CHURN_LEVEL: f64 = 4.0;
/// Share of a candidate's box that must churn from one frame to the next.
const SMOKE_MIN_CHURN: f32 = 0.05;
/// More foreground than this share of the frame is the camera moving or the light changing.
const GLOBAL_CHANGE: f64 = 0.25;

/// Smoke candidates: foreground that is grey (low saturation, mid to high brightness).
pub struct SmokeCue {
    subtractor: opencv::core::Ptr<BackgroundSubtractorMOG2>,
    frames: u32,
    previous: Option<BBox>,
    /// Last frame's small grey copy, to see whether a candidate is alive.
    previous_grey: Option<Mat>,
}

impl SmokeCue {
    pub fn new() -> opencv::Result<SmokeCue> {
        // History of about a minute at 2 analysed fps: slow smoke stays foreground for a while.
        Ok(SmokeCue { subtractor: opencv::video::create_background_subtractor_mog2(120, 16.0, false)?, frames: 0, previous: None, previous_grey: None })
    }

    /// The largest smoke-like blob inside `allowed` (a mask at frame size) covering at least
    /// `min_area` of the frame, when it overlaps last frame's blob (smoke drifts, cars drive off).
    /// Returns its box and its share of the frame.
    pub fn observe(&mut self, frame: &Mat, allowed: &Mat, objects: &[BBox], min_area: f32) -> opencv::Result<Option<(BBox, f32)>> {
        let scale = SMOKE_WIDTH as f64 / frame.cols() as f64;
        let size = Size::new(SMOKE_WIDTH, ((frame.rows() as f64 * scale).round() as i32).max(1));
        let mut small = Mat::default();
        imgproc::resize(frame, &mut small, size, 0.0, 0.0, imgproc::INTER_AREA)?;
        let mut foreground = Mat::default();
        // Learn fast while the model forms, then slowly: a smoke column that stands still for a
        // minute must stay foreground, not become background within seconds.
        self.frames += 1;
        let learning_rate = if self.frames <= SMOKE_WARM_UP_FRAMES { -1.0 } else { SMOKE_LEARNING_RATE };
        opencv::prelude::BackgroundSubtractorMOG2Trait::apply(&mut self.subtractor, &small, &mut foreground, learning_rate)?;
        let mut grey_now = Mat::default();
        imgproc::cvt_color_def(&small, &mut grey_now, imgproc::COLOR_BGR2GRAY)?;
        let grey_before = self.previous_grey.replace(grey_now.clone());
        let total = (size.width * size.height) as f64;
        let moving = core::count_non_zero(&foreground)? as f64 / total;
        tracing::debug!(frame = self.frames, foreground = format!("{moving:.3}"), "smoke cue");
        if self.frames <= SMOKE_WARM_UP_FRAMES || moving > GLOBAL_CHANGE {
            self.previous = None;
            return Ok(None);
        }
        let mut hsv = Mat::default();
        imgproc::cvt_color_def(&small, &mut hsv, imgproc::COLOR_BGR2HSV)?;
        let mut grey = Mat::default();
        core::in_range(&hsv, &Scalar::new(0.0, 0.0, 90.0, 0.0), &Scalar::new(180.0, 60.0, 240.0, 0.0), &mut grey)?;
        let mut allowed_small = Mat::default();
        imgproc::resize(allowed, &mut allowed_small, size, 0.0, 0.0, imgproc::INTER_NEAREST)?;
        let mut candidate = Mat::default();
        core::bitwise_and(&foreground, &grey, &mut candidate, &allowed_small)?;
        // Detected objects (a grey car, a person in a grey coat) are not smoke.
        for b in objects {
            let r = Rect::new((b.x1 * size.width as f32) as i32, (b.y1 * size.height as f32) as i32, (b.width() * size.width as f32).ceil() as i32 + 1, (b.height() * size.height as f32).ceil() as i32 + 1);
            imgproc::rectangle(&mut candidate, r, Scalar::all(0.0), imgproc::FILLED, imgproc::LINE_8, 0)?;
        }
        let kernel = imgproc::get_structuring_element_def(imgproc::MORPH_ELLIPSE, Size::new(3, 3))?;
        let mut opened = Mat::default();
        imgproc::morphology_ex_def(&candidate, &mut opened, imgproc::MORPH_OPEN, &kernel)?;
        let (mut labels, mut stats, mut centroids) = (Mat::default(), Mat::default(), Mat::default());
        let n = imgproc::connected_components_with_stats_def(&opened, &mut labels, &mut stats, &mut centroids)?;
        // Changed pixels since the last frame: smoke churns; the ghost a parked car leaves behind
        // when it drives off (road newly seen) is as still as the road.
        let mut churn = Mat::default();
        if let Some(before) = &grey_before {
            let mut difference = Mat::default();
            core::absdiff(&grey_now, before, &mut difference)?;
            imgproc::threshold(&difference, &mut churn, SMOKE_CHURN_LEVEL, 255.0, imgproc::THRESH_BINARY)?;
        }
        let mut best: Option<(BBox, f32)> = None;
        for i in 1..n {
            let area = *stats.at_2d::<i32>(i, imgproc::CC_STAT_AREA)? as f32 / total as f32;
            if area < min_area || best.is_some_and(|(_, a)| a >= area) {
                continue;
            }
            let (x, y) = (*stats.at_2d::<i32>(i, imgproc::CC_STAT_LEFT)?, *stats.at_2d::<i32>(i, imgproc::CC_STAT_TOP)?);
            let (w, h) = (*stats.at_2d::<i32>(i, imgproc::CC_STAT_WIDTH)?, *stats.at_2d::<i32>(i, imgproc::CC_STAT_HEIGHT)?);
            let rect = Rect::new(x, y, w, h);
            let alive = !churn.empty() && core::count_non_zero(&Mat::roi(&churn, rect)?)? as f32 >= SMOKE_MIN_CHURN * (w * h) as f32;
            if !alive {
                continue;
            }
            let (sw, sh) = (size.width as f32, size.height as f32);
            best = Some((BBox { x1: x as f32 / sw, y1: y as f32 / sh, x2: (x + w) as f32 / sw, y2: (y + h) as f32 / sh }, area));
        }
        tracing::debug!(frame = self.frames, blob = ?best, "smoke candidate");
        let previous = std::mem::replace(&mut self.previous, best.map(|(b, _)| b));
        Ok(best.filter(|(b, _)| previous.is_some_and(|p| p.overlap_of_smaller(b) > 0.3)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flame_up_to_half_a_tile_across_lies_whole_in_one_tile_wherever_it_is() {
        for (cols, rows) in [(416, 416), (416, 234), (640, 360)] {
            let frame = Mat::new_rows_cols_with_default(rows, cols, core::CV_8UC3, Scalar::all(0.0)).unwrap();
            let tiles = tile_rects(&frame, Rect::new(0, 0, cols, rows));
            let side = tiles[0].width;
            assert!(tiles.iter().all(|t| t.width == side && t.x >= 0 && t.y >= 0 && t.x + side <= cols && t.y + side <= rows), "{tiles:?}");
            let half = side / 2;
            for y in (0..=rows - half).step_by(3) {
                for x in (0..=cols - half).step_by(3) {
                    let flame = Rect::new(x, y, half, half);
                    assert!(tiles.iter().any(|t| (*t & flame) == flame), "{cols}x{rows}: {flame:?} cut by every tile of {tiles:?}");
                }
            }
        }
        let square = Mat::new_rows_cols_with_default(416, 416, core::CV_8UC3, Scalar::all(0.0)).unwrap();
        assert_eq!(tile_rects(&square, Rect::new(0, 0, 416, 416)).len(), 9);
        assert_eq!(tile_rects(&square, Rect::new(100, 100, 150, 150)), vec![Rect::new(71, 71, 208, 208)], "a zone within one tile: one tile on it");
    }

    #[test]
    fn a_tile_is_classified_where_a_zone_of_it_holds_enough_fire_coloured_pixels() {
        let mut fire = Mat::new_rows_cols_with_default(234, 416, core::CV_8UC1, Scalar::all(0.0)).unwrap();
        // A small fire of 50 pixels: 1.4 % of a 60x60 zone, 0.4 % of a 117-px tile round it.
        imgproc::rectangle(&mut fire, Rect::new(20, 20, 10, 5), Scalar::all(255.0), -1, imgproc::LINE_8, 0).unwrap();
        let tile = Rect::new(0, 0, 117, 117);
        let small_zone = Rect::new(0, 0, 60, 60);
        assert_eq!(lit_tiles(&fire, vec![tile], &[small_zone], 0.01).unwrap(), vec![tile]);
        let whole = Rect::new(0, 0, 416, 234);
        assert!(lit_tiles(&fire, vec![tile], &[whole], 0.01).unwrap().is_empty(), "0.4 % of the tile");
        let elsewhere = Rect::new(300, 100, 60, 60);
        assert!(lit_tiles(&fire, vec![tile, Rect::new(299, 117, 117, 117)], &[elsewhere], 0.01).unwrap().is_empty(), "no fire in the zone");
    }
}
