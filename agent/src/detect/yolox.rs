//! YOLOX head decode: one row per grid cell of each stride, `[x, y, w, h, objectness, classes…]`,
//! with sigmoids already applied in the graph but the grid offsets and exponent not.

use super::preprocess::Placement;
use crate::types::Detection;

/// Decodes every cell whose best class score (objectness × class probability) reaches `min_score`.
/// `data` holds `rows × (5 + classes)` values; the grid is row-major per stride level.
pub fn decode(
    data: &[f32],
    classes: usize,
    input_width: u32,
    input_height: u32,
    strides: &[u32],
    place: &Placement,
    min_score: f32,
) -> Result<Vec<Detection>, String> {
    let row_len = 5 + classes;
    let expected_rows: usize = strides.iter().map(|s| ((input_width / s) * (input_height / s)) as usize).sum();
    if data.len() != expected_rows * row_len {
        return Err(format!(
            "output has {} values, expected {expected_rows} rows x {row_len} for a {input_width}x{input_height} input with strides {strides:?}",
            data.len()
        ));
    }
    let mut detections = Vec::new();
    let mut rows = data.chunks_exact(row_len);
    for &stride in strides {
        let (gw, gh) = (input_width / stride, input_height / stride);
        for gy in 0..gh {
            for gx in 0..gw {
                let row = rows.next().expect("row count checked above");
                let objectness = row[4];
                // NaN (a broken model's output) fails every comparison: dropped too.
                if objectness.is_nan() || objectness < min_score {
                    continue;
                }
                let (class, prob) = row[5..]
                    .iter()
                    .enumerate()
                    .fold((0, f32::MIN), |best, (i, &p)| if p > best.1 { (i, p) } else { best });
                let score = objectness * prob;
                if score.is_nan() || score < min_score {
                    continue;
                }
                let s = stride as f32;
                let cx = (row[0] + gx as f32) * s;
                let cy = (row[1] + gy as f32) * s;
                let w = row[2].exp() * s;
                let h = row[3].exp() * s;
                let bbox = place.to_frame(cx, cy, w, h);
                if bbox.area() > 0.0 {
                    detections.push(Detection { bbox, class, score });
                }
            }
        }
    }
    Ok(detections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_grid_offsets_and_strides() {
        // 32x32 input, strides 16 and 32: 4 + 1 rows of [x, y, w, h, obj, c0, c1].
        let mut data = vec![0f32; 5 * 7];
        // Cell (1, 1) of stride 16: centre (1.5*16, 1.5*16) = (24, 24), size e^0*16 = 16, class 1.
        data[3 * 7..4 * 7].copy_from_slice(&[0.5, 0.5, 0.0, 0.0, 0.9, 0.1, 0.8]);
        // Stride 32 cell: low score, must be dropped.
        data[4 * 7..5 * 7].copy_from_slice(&[0.5, 0.5, 0.0, 0.0, 0.2, 0.5, 0.1]);
        let place = Placement { offset_x: 0.0, offset_y: 0.0, width: 32.0, height: 32.0 };
        let dets = decode(&data, 2, 32, 32, &[16, 32], &place, 0.3).unwrap();
        assert_eq!(dets.len(), 1);
        assert_eq!(dets[0].class, 1);
        assert!((dets[0].score - 0.72).abs() < 1e-6);
        let b = dets[0].bbox;
        assert_eq!((b.x1, b.y1, b.x2, b.y2), (0.5, 0.5, 1.0, 1.0));
    }

    /// What a broken model may give (NaN scores, a NaN or empty box) is no detection.
    #[test]
    fn nan_scores_and_boxes_are_dropped() {
        let place = Placement { offset_x: 0.0, offset_y: 0.0, width: 32.0, height: 32.0 };
        let nan = f32::NAN;
        for row in [[0.5, 0.5, 0.0, 0.0, nan, 0.1, 0.8], [0.5, 0.5, 0.0, 0.0, 0.9, nan, nan], [nan, 0.5, 0.0, 0.0, 0.9, 0.1, 0.8], [0.5, 0.5, f32::NEG_INFINITY, 0.0, 0.9, 0.1, 0.8]] {
            let mut data = vec![0f32; 5 * 7];
            data[3 * 7..4 * 7].copy_from_slice(&row);
            assert!(decode(&data, 2, 32, 32, &[16, 32], &place, 0.3).unwrap().is_empty(), "{row:?}");
        }
    }

    #[test]
    fn rejects_output_of_the_wrong_size() {
        let place = Placement { offset_x: 0.0, offset_y: 0.0, width: 32.0, height: 32.0 };
        let err = decode(&[0.0; 10], 2, 32, 32, &[16, 32], &place, 0.3).unwrap_err();
        assert!(err.contains("expected 5 rows x 7"), "{err}");
    }
}
