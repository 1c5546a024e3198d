//! The decoded picture at the stream's own resolution, kept beside each analysed frame.
//!
//! The detector sees a frame scaled to a few hundred pixels, where a plate is a few grey pixels.
//! A buffer probe in front of the scaler keeps a reference to the decoder's buffer of each frame
//! that passed the rate limit (no copy), and the appsink's callback hands it on with the scaled
//! frame. A camera holds as many of the decoder's buffers as it has frames waiting (the frame
//! queue, 8, when analysis lags; one or two when it keeps up), plus the frame analysed and the
//! last frame kept for snapshots: at 1080p (I420, 3 MB) at most 30 MB a camera. Letting queued
//! frames drop theirs would lose them exactly when analysis lags, in every replay. A hardware
//! decoder with a fixed pool needs that many buffers to spare. Pixels are copied only when
//! evidence or a plate needs them, and then only the region asked for ([`NativeFrame::crop`]).
//! [`super::decode_frame`] pulls samples itself, so its probe may run ahead of the sample it
//! returns, which then comes without a native picture.

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use opencv::core::{CV_8UC3, Mat, MatTraitManual};

use crate::types::BBox;

/// One decoded frame at the stream's resolution, in the decoder's pixel format.
#[derive(Debug, Clone)]
pub struct NativeFrame {
    pub buffer: gst::Buffer,
    pub info: gst_video::VideoInfo,
}

/// Where the probe leaves the latest native frame for the appsink's callback.
pub(super) type NativeSlot = Arc<Mutex<Option<NativeFrame>>>;

/// Keeps a reference to each buffer entering `element`'s sink pad in the returned slot. The
/// probe and the appsink run on the same streaming thread (no queue between them), so the slot
/// holds the native picture of the frame the appsink gets next.
pub(super) fn keep_native(element: &gst::Element) -> Result<NativeSlot, String> {
    let pad = element.static_pad("sink").ok_or_else(|| format!("{} has no sink pad", element.name()))?;
    let slot: NativeSlot = Arc::default();
    let kept = slot.clone();
    let info: Mutex<Option<(gst::Caps, gst_video::VideoInfo)>> = Mutex::new(None);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
        let Some(buffer) = probe.buffer() else { return gst::PadProbeReturn::Ok };
        let caps = pad.current_caps();
        let mut info = info.lock().unwrap_or_else(|p| p.into_inner());
        // Caps change rarely (a camera's new resolution); their info is parsed once per change.
        if let Some(caps) = caps.filter(|c| info.as_ref().is_none_or(|(known, _)| known != c)) {
            *info = gst_video::VideoInfo::from_caps(&caps).ok().map(|i| (caps, i));
        }
        let native = info.as_ref().map(|(_, info)| NativeFrame { buffer: buffer.clone(), info: info.clone() });
        *kept.lock().unwrap_or_else(|p| p.into_inner()) = native;
        gst::PadProbeReturn::Ok
    });
    Ok(slot)
}

/// Takes the native frame the probe left, if it is the one of the buffer at `pts`.
pub(super) fn take(slot: &NativeSlot, pts: Option<gst::ClockTime>) -> Option<NativeFrame> {
    let native = slot.lock().unwrap_or_else(|p| p.into_inner()).take()?;
    (native.buffer.pts() == pts).then_some(native)
}

impl NativeFrame {
    pub fn width(&self) -> u32 {
        self.info.width()
    }

    pub fn height(&self) -> u32 {
        self.info.height()
    }

    /// The pixels of `region` (normalized, clamped to the frame) as BGR, scaled down to at most
    /// `max_side_px` on its longer side (never up), with the stream pixels per pixel of it. Only
    /// the region is converted.
    pub fn crop(&self, region: BBox, max_side_px: u32) -> Result<(Mat, f32), String> {
        let (w, h) = (self.width() as f32, self.height() as f32);
        // Even offsets and sizes: chroma planes are subsampled by two.
        let even = |v: f32| ((v.max(0.0) as i32) / 2) * 2;
        let x = even(region.x1.clamp(0.0, 1.0) * w);
        let y = even(region.y1.clamp(0.0, 1.0) * h);
        let cw = (even(region.x2.clamp(0.0, 1.0) * w) - x).max(2);
        let ch = (even(region.y2.clamp(0.0, 1.0) * h) - y).max(2);
        let cw = cw.min(self.width() as i32 - x).max(0);
        let ch = ch.min(self.height() as i32 - y).max(0);
        if cw < 2 || ch < 2 {
            return Err(format!("the region {region:?} is empty in a {}x{} frame", self.width(), self.height()));
        }
        let scale = (max_side_px as f32 / cw.max(ch) as f32).min(1.0);
        let (ow, oh) = (((cw as f32 * scale).round() as u32).max(1), ((ch as f32 * scale).round() as u32).max(1));
        let out_info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Bgr, ow, oh)
            .fps(self.info.fps())
            .interlace_mode(self.info.interlace_mode())
            .build()
            .map_err(|e| e.to_string())?;
        let mut config = gst_video::VideoConverterConfig::new();
        config.set_src_x(x);
        config.set_src_y(y);
        config.set_src_width(Some(cw));
        config.set_src_height(Some(ch));
        let converter = gst_video::VideoConverter::new(&self.info, &out_info, Some(config)).map_err(|e| format!("cannot convert from {:?}: {e}", self.info.format()))?;
        let src = gst_video::VideoFrameRef::from_buffer_ref_readable(self.buffer.as_ref(), &self.info).map_err(|e| format!("cannot map the decoded frame: {e}"))?;
        let mut out = gst::Buffer::with_size(out_info.size()).map_err(|e| e.to_string())?;
        {
            let out = out.get_mut().expect("a new buffer is writable");
            let mut dest = gst_video::VideoFrameRef::from_buffer_ref_writable(out, &out_info).map_err(|e| e.to_string())?;
            converter.frame_ref(&src, &mut dest);
        }
        let stride = out_info.stride()[0] as usize;
        let map = out.map_readable().map_err(|e| e.to_string())?;
        let mut mat = Mat::new_rows_cols_with_default(oh as i32, ow as i32, CV_8UC3, 0.into()).map_err(|e| e.to_string())?;
        let row = ow as usize * 3;
        let data = mat.data_bytes_mut().map_err(|e| e.to_string())?;
        for (r, dest) in data.chunks_exact_mut(row).enumerate() {
            dest.copy_from_slice(&map[r * stride..r * stride + row]);
        }
        Ok((mat, cw as f32 / ow as f32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer_video::VideoFrameExt;
    use opencv::core::{MatTraitConst, Vec3b};

    /// A 64x48 I420 frame, black on the left half and white on the right.
    fn frame() -> NativeFrame {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 64, 48).build().unwrap();
        let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
        {
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer.get_mut().unwrap(), &info).unwrap();
            let stride = frame.plane_stride()[0] as usize;
            for line in frame.plane_data_mut(0).unwrap().chunks_mut(stride).take(48) {
                for (x, y) in line.iter_mut().enumerate().take(64) {
                    *y = if x < 32 { 16 } else { 235 };
                }
            }
            for plane in 1..3 {
                frame.plane_data_mut(plane).unwrap().fill(128);
            }
        }
        NativeFrame { buffer, info }
    }

    #[test]
    fn a_crop_is_the_region_at_native_size_or_scaled_down() {
        let native = frame();
        let (right, per_px) = native.crop(BBox { x1: 0.5, y1: 0.25, x2: 1.0, y2: 0.75 }, 720).unwrap();
        assert_eq!((right.cols(), right.rows(), per_px), (32, 24, 1.0));
        let white = *right.at_2d::<Vec3b>(12, 16).unwrap();
        assert!(white.iter().all(|&c| c > 240), "{white:?}");
        let (whole, per_px) = native.crop(BBox { x1: -0.2, y1: 0.0, x2: 1.3, y2: 1.0 }, 32).unwrap();
        assert_eq!((whole.cols(), whole.rows(), per_px), (32, 24, 2.0), "clamped to the frame, then halved");
        let black = *whole.at_2d::<Vec3b>(12, 4).unwrap();
        assert!(black.iter().all(|&c| c < 15), "{black:?}");
    }

    #[test]
    fn an_empty_region_is_an_error_not_a_panic() {
        let native = frame();
        assert!(native.crop(BBox { x1: 1.0, y1: 0.0, x2: 1.2, y2: 1.0 }, 720).is_err());
        assert!(native.crop(BBox { x1: 0.5, y1: 0.5, x2: 0.5, y2: 0.5 }, 720).is_ok_and(|(m, _)| m.cols() >= 1));
    }
}
