//! PP-OCRv4's two stages, outside the models: text regions from the detector's probability map
//! (DB post-processing), and text from the recogniser's per-step class probabilities (CTC).

use opencv::core::{CV_8UC1, Mat, MatTraitConst, MatTraitConstManual, MatTraitManual};
use opencv::imgproc;

/// A text region, in pixels of the image the map was computed for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    /// The mean text probability inside the region.
    pub score: f32,
}

impl TextBox {
    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }

    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }

    pub fn centre(&self) -> (f32, f32) {
        ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)
    }
}

/// A pixel is text above this probability (PP-OCR's `thresh`).
const PIXEL_THRESHOLD: f32 = 0.3;
/// A region is text when its mean probability is above this (PP-OCR's `box_thresh`).
const BOX_THRESHOLD: f32 = 0.5;
/// The detector marks a shrunk core of each text line; it is grown back by
/// area × ratio / perimeter (PP-OCR's `unclip_ratio`).
const UNCLIP_RATIO: f32 = 1.6;
/// Regions smaller than this many map pixels are specks.
const MIN_AREA: i32 = 6;

/// Text regions of a `cols` × `rows` probability map, scaled by `scale` (image pixels per map
/// pixel, x and y) and clamped to `width` × `height`. Axis-aligned: plates face the camera.
pub fn text_boxes(map: &[f32], cols: usize, rows: usize, scale: (f32, f32), size: (f32, f32)) -> Result<Vec<TextBox>, opencv::Error> {
    let mut mask = Mat::new_rows_cols_with_default(rows as i32, cols as i32, CV_8UC1, 0.into())?;
    for (m, &p) in mask.data_bytes_mut()?.iter_mut().zip(map) {
        *m = u8::from(p > PIXEL_THRESHOLD);
    }
    let (mut labels, mut stats, mut centroids) = (Mat::default(), Mat::default(), Mat::default());
    let count = imgproc::connected_components_with_stats(&mask, &mut labels, &mut stats, &mut centroids, 4, opencv::core::CV_32S)? as usize;
    let mut sums = vec![0f32; count];
    for (&label, &p) in labels.data_typed::<i32>()?.iter().zip(map) {
        sums[label as usize] += p;
    }
    let mut boxes = Vec::new();
    for (label, sum) in sums.iter().enumerate().skip(1) {
        let stat = |field: i32| stats.at_2d::<i32>(label as i32, field).copied();
        let (x, y, w, h, area) = (stat(0)?, stat(1)?, stat(2)?, stat(3)?, stat(4)?);
        let score = sum / area.max(1) as f32;
        if area < MIN_AREA || score < BOX_THRESHOLD {
            continue;
        }
        let grow = area as f32 * UNCLIP_RATIO / (2 * (w + h)) as f32;
        boxes.push(TextBox {
            x1: ((x as f32 - grow) * scale.0).max(0.0),
            y1: ((y as f32 - grow) * scale.1).max(0.0),
            x2: (((x + w) as f32 + grow) * scale.0).min(size.0),
            y2: (((y + h) as f32 + grow) * scale.1).min(size.1),
            score,
        });
    }
    Ok(boxes)
}

/// One recognised line: its characters and their probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub text: String,
    /// The mean of its characters' probabilities (PP-OCR's score), and the least of them.
    pub mean: f32,
    pub least: f32,
}

/// Greedy CTC decoding of `steps` rows of `classes` probabilities: the best class of each step,
/// repeats merged, blanks (class 0) dropped. Class `i` is `dictionary[i - 1]`; the class past
/// the dictionary is a space.
pub fn ctc_decode(probs: &[f32], classes: usize, dictionary: &[String]) -> Line {
    let mut text = String::new();
    let (mut sum, mut least, mut count) = (0f32, 1f32, 0usize);
    let mut previous = 0usize;
    for step in probs.chunks_exact(classes) {
        let (best, p) = step.iter().enumerate().fold((0, f32::MIN), |(bi, bp), (i, &p)| if p > bp { (i, p) } else { (bi, bp) });
        if best != 0 && best != previous {
            text.push_str(dictionary.get(best - 1).map_or(" ", String::as_str));
            sum += p;
            least = least.min(p);
            count += 1;
        }
        previous = best;
    }
    let mean = if count == 0 { 0.0 } else { sum / count as f32 };
    Line { text, mean, least: if count == 0 { 0.0 } else { least } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctc_merges_repeats_and_drops_blanks() {
        let dictionary: Vec<String> = ["3", "0", "E"].iter().map(|s| s.to_string()).collect();
        // Classes: blank, 3, 0, E, space.
        let step = |class: usize, p: f32| {
            let mut row = vec![(1.0 - p) / 4.0; 5];
            row[class] = p;
            row
        };
        let probs: Vec<f32> = [step(1, 0.9), step(1, 0.8), step(0, 0.9), step(2, 0.95), step(0, 0.9), step(2, 0.7), step(3, 0.99), step(4, 0.6)].concat();
        let line = ctc_decode(&probs, 5, &dictionary);
        assert_eq!(line.text, "300E ");
        assert!((line.least - 0.6).abs() < 1e-6);
        assert!((line.mean - (0.9 + 0.95 + 0.7 + 0.99 + 0.6) / 5.0).abs() < 1e-6);
    }

    #[test]
    fn two_stacked_regions_are_two_boxes() {
        // An 8x8 map: rows 1-2 and rows 5-6 are text.
        let mut map = vec![0.0f32; 64];
        for r in [1, 2, 5, 6] {
            for c in 1..7 {
                map[r * 8 + c] = 0.9;
            }
        }
        let boxes = text_boxes(&map, 8, 8, (4.0, 4.0), (32.0, 32.0)).unwrap();
        assert_eq!(boxes.len(), 2);
        assert!(boxes[0].y2 <= boxes[1].y1 + 4.0, "{boxes:?}");
        assert!(boxes.iter().all(|b| (b.score - 0.9).abs() < 1e-6));
    }
}
