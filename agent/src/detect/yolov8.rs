//! YOLOv8-style head (also YOLOv9/v10/11 exports without NMS): `[1, 4 + classes, anchors]`,
//! boxes already decoded to `cx, cy, w, h` in input pixels, class scores already sigmoid, no
//! objectness. The layout is transposed: one row per value, one column per anchor.

use super::preprocess::Placement;
use crate::types::Detection;

/// Decodes every anchor whose best class score reaches `min_score`.
pub fn decode(data: &[f32], classes: usize, place: &Placement, min_score: f32) -> Result<Vec<Detection>, String> {
    let rows = 4 + classes;
    if data.is_empty() || !data.len().is_multiple_of(rows) {
        return Err(format!("output has {} values, not a multiple of {rows} (4 box values + {classes} classes)", data.len()));
    }
    let anchors = data.len() / rows;
    let at = |row: usize, anchor: usize| data[row * anchors + anchor];
    let mut detections = Vec::new();
    for a in 0..anchors {
        let (class, score) = (0..classes).map(|c| (c, at(4 + c, a))).fold((0, f32::MIN), |best, (c, s)| if s > best.1 { (c, s) } else { best });
        if score < min_score {
            continue;
        }
        let bbox = place.to_frame(at(0, a), at(1, a), at(2, a), at(3, a));
        // A box wholly in the padding comes back empty, and a NaN one too.
        if bbox.area() > 0.0 {
            detections.push(Detection { bbox, class, score });
        }
    }
    Ok(detections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_transposed_anchors() {
        // Two classes, three anchors; anchor 1 is a class-1 box at (32, 16) of 16x8 pixels.
        #[rustfmt::skip]
        let data = [
            10.0, 32.0, 50.0, // cx
            10.0, 16.0, 50.0, // cy
            4.0, 16.0, 4.0, // w
            4.0, 8.0, 4.0, // h
            0.1, 0.2, 0.05, // class 0
            0.2, 0.9, 0.1, // class 1
        ];
        let place = Placement { offset_x: 0.0, offset_y: 0.0, width: 64.0, height: 32.0 };
        let got = decode(&data, 2, &place, 0.5).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].class, got[0].score), (1, 0.9));
        let b = got[0].bbox;
        assert_eq!((b.x1, b.y1, b.x2, b.y2), (0.375, 0.375, 0.625, 0.625));
        assert!(decode(&data[..17], 2, &place, 0.5).is_err());
    }

    /// NaN scores and NaN or empty boxes (a broken model's, or one in the padding) are dropped.
    #[test]
    fn nan_scores_and_empty_boxes_are_dropped() {
        let nan = f32::NAN;
        #[rustfmt::skip]
        let data = [
            32.0, nan, 32.0, 200.0, // cx
            16.0, 16.0, 16.0, 16.0, // cy
            16.0, 16.0, 16.0, 16.0, // w
            8.0, 8.0, 8.0, 8.0, // h
            nan, 0.9, 0.9, 0.9, // class 0
        ];
        let place = Placement { offset_x: 0.0, offset_y: 0.0, width: 64.0, height: 32.0 };
        let got = decode(&data, 1, &place, 0.5).unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].bbox.x1, 0.375);
    }
}
