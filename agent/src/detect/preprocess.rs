//! Frame → input tensor. GStreamer has already scaled the frame to fit the model input, so this is
//! one pass that reorders channels, normalizes and pastes into the padded tensor.

use super::manifest::{ColorOrder, InputSpec, Letterbox};
use crate::types::BBox;

/// Where the frame landed inside the model input, to map boxes back to the frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub offset_x: f32,
    pub offset_y: f32,
    pub width: f32,
    pub height: f32,
}

impl Placement {
    /// Where a frame lands in an input of `input` (width, height) pixels.
    pub fn new(letterbox: &Letterbox, input: (u32, u32), frame_width: u32, frame_height: u32) -> Placement {
        let (w, h) = (frame_width.min(input.0) as f32, frame_height.min(input.1) as f32);
        let (offset_x, offset_y) = match letterbox {
            Letterbox::TopLeft | Letterbox::Stretch => (0.0, 0.0),
            Letterbox::Center => (((input.0 as f32 - w) / 2.0).floor(), ((input.1 as f32 - h) / 2.0).floor()),
        };
        Placement { offset_x, offset_y, width: w, height: h }
    }

    /// A box in model-input pixels → normalized frame coordinates, clipped to the frame.
    pub fn to_frame(&self, cx: f32, cy: f32, w: f32, h: f32) -> BBox {
        let clip = |v: f32| v.clamp(0.0, 1.0);
        let b = BBox::from_center((cx - self.offset_x) / self.width, (cy - self.offset_y) / self.height, w / self.width, h / self.height);
        BBox { x1: clip(b.x1), y1: clip(b.y1), x2: clip(b.x2), y2: clip(b.y2) }
    }
}

/// Fills `tensor` (NCHW, length 3*H*W for an `input` of (W, H), the spec's size or a smaller one
/// it allows) from a packed BGR frame with row stride `stride`.
pub fn fill_tensor(spec: &InputSpec, input: (u32, u32), tensor: &mut [f32], bgr: &[u8], width: u32, height: u32, stride: usize) -> Placement {
    let place = Placement::new(&spec.letterbox, input, width, height);
    let (tw, th) = (input.0 as usize, input.1 as usize);
    let plane = tw * th;
    debug_assert_eq!(tensor.len(), 3 * plane);
    // Channel c of the tensor reads byte `src_channel[c]` of a BGR pixel.
    let src_channel = match spec.color {
        ColorOrder::Bgr => [0, 1, 2],
        ColorOrder::Rgb => [2, 1, 0],
    };
    let lut: [[f32; 256]; 3] = std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 * spec.scale - spec.mean[c]) / spec.std[c]));
    for c in 0..3 {
        let pad = (spec.pad_value * spec.scale - spec.mean[c]) / spec.std[c];
        tensor[c * plane..(c + 1) * plane].fill(pad);
    }
    let (ox, oy) = (place.offset_x as usize, place.offset_y as usize);
    let (w, h) = (place.width as usize, place.height as usize);
    for y in 0..h {
        let row = &bgr[y * stride..y * stride + w * 3];
        let dst_row = (y + oy) * tw + ox;
        for c in 0..3 {
            let dst = &mut tensor[c * plane + dst_row..c * plane + dst_row + w];
            let (lut, sc) = (&lut[c], src_channel[c]);
            for (x, d) in dst.iter_mut().enumerate() {
                *d = lut[row[x * 3 + sc] as usize];
            }
        }
    }
    place
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yolox_spec() -> InputSpec {
        InputSpec {
            name: "images".into(),
            width: 8,
            height: 8,
            layout: "nchw".into(),
            color: ColorOrder::Bgr,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            letterbox: Letterbox::TopLeft,
            pad_value: 114.0,
            size_multiple: None,
        }
    }

    #[test]
    fn a_model_with_a_size_multiple_runs_a_wide_frame_at_a_smaller_input() {
        let spec = InputSpec { width: 416, height: 416, size_multiple: Some(32), ..yolox_spec() };
        assert_eq!(spec.fitted(416, 234), (416, 256));
        assert_eq!(spec.fitted(312, 416), (320, 416));
        assert_eq!(spec.fitted(416, 416), (416, 416));
        assert_eq!(InputSpec { size_multiple: None, ..spec.clone() }.fitted(416, 234), (416, 416));
        assert_eq!(InputSpec { letterbox: Letterbox::Center, ..spec.clone() }.fitted(416, 234), (416, 416));
        // Frames scaled wider than the model's own width for small objects run at their size.
        assert_eq!(spec.frame_bounds(Some(832)), (832, 832));
        assert_eq!(spec.fitted(832, 468), (832, 480));
        assert!(spec.check_width(832).is_ok());
        assert!(spec.check_width(840).unwrap_err().contains("multiple of 32"), "{:?}", spec.check_width(840));
        let fixed = InputSpec { size_multiple: None, ..spec };
        assert_eq!(fixed.frame_bounds(Some(832)), (416, 416));
        assert!(fixed.check_width(832).unwrap_err().contains("fixed at 416x416"));
    }

    #[test]
    fn pastes_top_left_and_pads_the_rest() {
        let spec = yolox_spec();
        // A 8x4 frame (stride padded to 28 bytes): every pixel B=10, G=20, R=30.
        let stride = 28;
        let mut frame = vec![0u8; stride * 4];
        for y in 0..4 {
            for x in 0..8 {
                frame[y * stride + x * 3..y * stride + x * 3 + 3].copy_from_slice(&[10, 20, 30]);
            }
        }
        let mut tensor = vec![0f32; 3 * 64];
        let place = fill_tensor(&spec, (spec.width, spec.height), &mut tensor, &frame, 8, 4, stride);
        assert_eq!(place, Placement { offset_x: 0.0, offset_y: 0.0, width: 8.0, height: 4.0 });
        assert_eq!(tensor[0], 10.0); // B plane, top-left
        assert_eq!(tensor[64 + 3 * 8 + 7], 20.0); // G plane, last frame row
        assert_eq!(tensor[128 + 4 * 8], 114.0); // R plane, first padded row
        // Boxes map back to the frame: the bottom half of the input lies outside it.
        let b = place.to_frame(4.0, 2.0, 4.0, 2.0);
        assert_eq!((b.x1, b.y1, b.x2, b.y2), (0.25, 0.25, 0.75, 0.75));
    }

    #[test]
    fn rgb_models_get_channels_swapped_and_normalized() {
        let spec = InputSpec { color: ColorOrder::Rgb, scale: 1.0 / 255.0, mean: [0.5; 3], std: [0.5; 3], ..yolox_spec() };
        let frame = [0u8, 0, 255].repeat(64); // pure red in BGR
        let mut tensor = vec![0f32; 3 * 64];
        fill_tensor(&spec, (spec.width, spec.height), &mut tensor, &frame, 8, 8, 24);
        assert_eq!(tensor[0], 1.0); // R plane
        assert_eq!(tensor[128], -1.0); // B plane
    }
}
