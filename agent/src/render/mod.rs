//! What the agent sees, drawn: rule geometry (stop lines in their signal's colour), tracks with
//! ids and speeds, violators highlighted. Used for violation evidence ([`evidence_jpeg`]) and for
//! the frames `canh replay --render` writes for engineers tuning rules.

use opencv::core::{CV_8UC3, Mat, Point as CvPoint, Rect, Scalar, Size, Vector};
use opencv::imgproc::{self, FONT_HERSHEY_SIMPLEX, LINE_AA};
use opencv::prelude::*;

use crate::types::{BBox, Frame, Point};

/// Evidence images never exceed this many bytes (40 KB), so an alert and its image cross a
/// mobile uplink in well under a second.
pub const EVIDENCE_MAX_BYTES: usize = 40 * 1024;

/// JPEG qualities tried in turn until the image fits.
const EVIDENCE_QUALITIES: [i32; 5] = [85, 70, 55, 40, 30];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("OpenCV: {0}")]
    OpenCv(#[from] opencv::Error),
    #[error("the frame buffer cannot be read")]
    Unreadable,
    #[error("evidence image does not fit in {EVIDENCE_MAX_BYTES} bytes even at {0} px wide")]
    TooLarge(i32),
}

/// A copy of a frame's pixels (BGR) to draw on.
pub fn frame_to_mat(frame: &Frame) -> Result<Mat, RenderError> {
    let map = frame.buffer.map_readable().map_err(|_| RenderError::Unreadable)?;
    let (w, h) = (frame.width as i32, frame.height as i32);
    let row = frame.width as usize * 3;
    if frame.height == 0 || map.len() < frame.stride * (frame.height as usize - 1) + row {
        return Err(RenderError::Unreadable);
    }
    let mut mat = Mat::new_rows_cols_with_default(h, w, CV_8UC3, Scalar::all(0.0))?;
    let data = mat.data_bytes_mut()?;
    for (y, out) in data.chunks_exact_mut(row).enumerate() {
        out.copy_from_slice(&map[y * frame.stride..y * frame.stride + row]);
    }
    Ok(mat)
}

/// `region` (normalized) of the frame as BGR at the stream's own resolution, or of the analysed
/// frame where the frame has no native picture; scaled down to at most `max_side_px` on its
/// longer side. Returns it with how many source pixels one of its pixels stands for.
pub fn crop(frame: &Frame, region: BBox, max_side_px: u32) -> Result<(Mat, f32), String> {
    if let Some(native) = &frame.native {
        return native.crop(region, max_side_px);
    }
    let whole = frame_to_mat(frame).map_err(|e| e.to_string())?;
    let (w, h) = (frame.width as f32, frame.height as f32);
    let x = (region.x1.clamp(0.0, 1.0) * w) as i32;
    let y = (region.y1.clamp(0.0, 1.0) * h) as i32;
    let rect = Rect::new(x, y, ((region.x2.clamp(0.0, 1.0) * w) as i32 - x).max(1), ((region.y2.clamp(0.0, 1.0) * h) as i32 - y).max(1));
    let part = Mat::roi(&whole, rect).map_err(|e| e.to_string())?;
    let fit = (max_side_px as f64 / rect.width.max(rect.height) as f64).min(1.0);
    let mut out = Mat::default();
    imgproc::resize(&part, &mut out, Size::default(), fit, fit, imgproc::INTER_AREA).map_err(|e| e.to_string())?;
    let per_px = rect.width as f32 / out.cols().max(1) as f32;
    Ok((out, per_px))
}

/// Geometry to draw for engineers and on evidence images.
#[derive(Debug, Clone)]
pub enum Shape {
    Segment(Point, Point),
    Zone(Vec<Point>),
}

impl Shape {
    pub fn points(&self) -> Vec<Point> {
        match self {
            Shape::Segment(a, b) => vec![*a, *b],
            Shape::Zone(points) => points.clone(),
        }
    }
}

/// How a shape is drawn: neutral rule geometry, or a signal's current colour (grey while it is
/// not known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Rule,
    Red,
    Amber,
    Green,
    Unknown,
}

/// A shape with its label, drawn for `rule` (the id of the rule or fire zone it belongs to, which
/// evidence uses to pick the geometry of its own rule).
#[derive(Debug, Clone)]
pub struct Overlay {
    pub rule: String,
    pub shape: Shape,
    pub label: String,
    pub tone: Tone,
}

/// A tracked object as drawn.
#[derive(Debug, Clone)]
pub struct Mark {
    pub bbox: BBox,
    pub text: String,
    pub violator: bool,
}

fn bgr(b: f64, g: f64, r: f64) -> Scalar {
    Scalar::new(b, g, r, 0.0)
}

fn tone_colour(tone: Tone) -> Scalar {
    match tone {
        Tone::Rule => bgr(0.0, 215.0, 255.0),
        Tone::Red => bgr(0.0, 0.0, 255.0),
        Tone::Amber => bgr(0.0, 160.0, 255.0),
        Tone::Green => bgr(0.0, 210.0, 0.0),
        Tone::Unknown => bgr(170.0, 170.0, 170.0),
    }
}

fn pixel(mat: &Mat, p: Point) -> CvPoint {
    CvPoint::new((p.x * mat.cols() as f32).round() as i32, (p.y * mat.rows() as f32).round() as i32)
}

/// `text` as OpenCV's Hershey fonts can draw it: ASCII only, any other character drawn as `?`.
/// A plate's `Đ` (the special series `TĐ`, `MĐ`) is drawn as the `D` it is read as.
fn drawable(text: &str) -> String {
    text.replace('Đ', "D").replace('đ', "d")
}

/// Text on a dark band, readable over any scene; `origin` is the top-left corner of the band.
fn label(mat: &mut Mat, text: &str, origin: CvPoint, colour: Scalar) -> opencv::Result<()> {
    let text = drawable(text);
    let text = text.as_str();
    let scale = (mat.cols() as f64 / 1000.0).clamp(0.35, 0.8);
    let mut baseline = 0;
    let size = imgproc::get_text_size(text, FONT_HERSHEY_SIMPLEX, scale, 1, &mut baseline)?;
    let x = origin.x.clamp(0, (mat.cols() - size.width - 4).max(0));
    let y = origin.y.clamp(0, (mat.rows() - size.height - baseline - 4).max(0));
    imgproc::rectangle(mat, Rect::new(x, y, size.width + 4, size.height + baseline + 4), bgr(0.0, 0.0, 0.0), imgproc::FILLED, imgproc::LINE_8, 0)?;
    imgproc::put_text(mat, text, CvPoint::new(x + 2, y + size.height + 2), FONT_HERSHEY_SIMPLEX, scale, colour, 1, LINE_AA, false)
}

/// Draws rule geometry and tracked objects onto `mat` in place.
pub fn draw(mat: &mut Mat, overlays: &[Overlay], marks: &[Mark]) -> opencv::Result<()> {
    for overlay in overlays {
        let colour = tone_colour(overlay.tone);
        let anchor = match &overlay.shape {
            Shape::Segment(a, b) => {
                imgproc::line(mat, pixel(mat, *a), pixel(mat, *b), colour, 2, LINE_AA, 0)?;
                pixel(mat, *a)
            }
            Shape::Zone(points) => {
                let polygon: Vector<CvPoint> = points.iter().map(|p| pixel(mat, *p)).collect();
                imgproc::polylines(mat, &polygon, true, colour, 1, LINE_AA, 0)?;
                polygon.iter().min_by_key(|p| (p.y, p.x)).unwrap_or_default()
            }
        };
        label(mat, &overlay.label, anchor, colour)?;
    }
    for mark in marks {
        let (colour, thickness) = if mark.violator { (bgr(0.0, 0.0, 255.0), 2) } else { (bgr(255.0, 200.0, 0.0), 1) };
        let (a, b) = (pixel(mat, Point { x: mark.bbox.x1, y: mark.bbox.y1 }), pixel(mat, Point { x: mark.bbox.x2, y: mark.bbox.y2 }));
        imgproc::rectangle_points(mat, a, b, colour, thickness, LINE_AA, 0)?;
        label(mat, &mark.text, CvPoint::new(a.x, a.y - 14), colour)?;
    }
    Ok(())
}

/// The vehicle of an alert at the stream's resolution, beside the scene on its evidence image,
/// with its plate when one was read.
pub struct Inset<'a> {
    pub vehicle: &'a Mat,
    /// Stream pixels per pixel of `vehicle` (1 when it is at native resolution).
    pub native_per_px: f32,
    /// The plate's crop and its text.
    pub plate: Option<(&'a Mat, &'a str)>,
}

/// Where the vehicle's crop is on an evidence image, in its pixels, and at what scale.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Placed {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
    /// Image pixels per stream pixel: 1 at native resolution.
    pub scale: f32,
}

/// A JPEG evidence image, its size, and where its vehicle crop is.
pub struct Evidence {
    pub jpeg: Vec<u8>,
    pub size: Size,
    pub vehicle: Option<Placed>,
}

/// A plate's crop is enlarged to at least this height on evidence, so its characters read.
const PLATE_MIN_HEIGHT_PX: i32 = 72;

/// An evidence image (or a snapshot): the scene with the rules' geometry, the boxes of the
/// vehicles concerned and a caption, and beside it the `inset` vehicle at native resolution with
/// its plate; a JPEG of at most [`EVIDENCE_MAX_BYTES`].
pub fn evidence_jpeg(frame: &Mat, overlays: &[Overlay], marks: &[Mark], caption: &str, inset: Option<&Inset>) -> Result<Evidence, RenderError> {
    let mut scene = frame.try_clone()?;
    draw(&mut scene, overlays, marks)?;
    let bottom = CvPoint::new(0, scene.rows());
    label(&mut scene, caption, bottom, bgr(255.0, 255.0, 255.0))?;
    let (mut image, mut placed) = match inset {
        Some(inset) => composed(&scene, inset)?,
        None => (scene, None),
    };
    loop {
        let mut jpeg = Vector::<u8>::new();
        for quality in EVIDENCE_QUALITIES {
            jpeg.clear();
            opencv::imgcodecs::imencode(".jpg", &image, &mut jpeg, &Vector::from_slice(&[opencv::imgcodecs::IMWRITE_JPEG_QUALITY, quality]))?;
            if jpeg.len() <= EVIDENCE_MAX_BYTES {
                return Ok(Evidence { jpeg: jpeg.to_vec(), size: image.size()?, vehicle: placed });
            }
        }
        // Still too big at the lowest quality: a noisy high-resolution scene. Shrink and retry.
        if image.cols() < 200 {
            return Err(RenderError::TooLarge(image.cols()));
        }
        let mut smaller = Mat::default();
        imgproc::resize(&image, &mut smaller, Size::default(), 0.75, 0.75, imgproc::INTER_AREA)?;
        image = smaller;
        placed = placed.map(|p| {
            let s = |v: i32| (v as f32 * 0.75) as i32;
            Placed { x: s(p.x), y: s(p.y), width: s(p.width), height: s(p.height), scale: p.scale * 0.75 }
        });
    }
}

/// The scene on the left; the vehicle on the right, its plate below it, enlarged, with its text.
fn composed(scene: &Mat, inset: &Inset) -> Result<(Mat, Option<Placed>), RenderError> {
    let vehicle = inset.vehicle;
    let plate = match inset.plate {
        Some((plate, text)) if plate.rows() > 0 => {
            let factor = (PLATE_MIN_HEIGHT_PX as f64 / plate.rows() as f64).max(1.0).min(vehicle.cols().max(plate.cols()) as f64 / plate.cols() as f64);
            let mut enlarged = Mat::default();
            imgproc::resize(plate, &mut enlarged, Size::default(), factor, factor, imgproc::INTER_CUBIC)?;
            Some((enlarged, text))
        }
        _ => None,
    };
    let plate_height = plate.as_ref().map_or(0, |(p, _)| p.rows() + 24);
    let width = scene.cols() + vehicle.cols().max(plate.as_ref().map_or(0, |(p, _)| p.cols()));
    let height = scene.rows().max(vehicle.rows() + plate_height);
    let mut canvas = Mat::new_rows_cols_with_default(height, width, CV_8UC3, Scalar::all(0.0))?;
    let paste = |canvas: &mut Mat, image: &Mat, x: i32, y: i32| -> opencv::Result<()> {
        let mut target = Mat::roi_mut(canvas, Rect::new(x, y, image.cols(), image.rows()))?;
        image.copy_to(&mut target)
    };
    paste(&mut canvas, scene, 0, 0)?;
    let x = scene.cols();
    paste(&mut canvas, vehicle, x, 0)?;
    if let Some((plate, text)) = &plate {
        paste(&mut canvas, plate, x, vehicle.rows())?;
        label(&mut canvas, text, CvPoint::new(x, vehicle.rows() + plate.rows()), bgr(255.0, 255.0, 255.0))?;
    }
    let placed = Placed { x, y: 0, width: vehicle.cols(), height: vehicle.rows(), scale: 1.0 / inset.native_per_px };
    Ok((canvas, Some(placed)))
}

/// The frame scaled up to at least `min_width` pixels, so labels stay readable on frames the
/// size of the model's input.
pub fn enlarged(frame: &Mat, min_width: i32) -> Result<Mat, RenderError> {
    if frame.cols() >= min_width {
        return Ok(frame.try_clone()?);
    }
    let factor = (min_width as f64 / frame.cols() as f64).ceil();
    let mut out = Mat::default();
    imgproc::resize(frame, &mut out, Size::default(), factor, factor, imgproc::INTER_LINEAR)?;
    Ok(out)
}

/// Width and height of a JPEG.
pub fn jpeg_size(jpeg: &[u8]) -> Result<Size, RenderError> {
    let image = opencv::imgcodecs::imdecode(&Vector::<u8>::from_slice(jpeg), opencv::imgcodecs::IMREAD_UNCHANGED)?;
    if image.empty() {
        return Err(RenderError::Unreadable);
    }
    Ok(image.size()?)
}

/// Writes an image file; the format follows the extension (`.png`, `.jpg`).
pub fn write_image(path: &std::path::Path, mat: &Mat) -> Result<(), RenderError> {
    if opencv::imgcodecs::imwrite_def(path, mat)? { Ok(()) } else { Err(RenderError::OpenCv(opencv::Error::new(0, format!("cannot write {}", path.display())))) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::RNG;

    #[test]
    fn a_plates_d_with_a_bar_is_drawn_as_the_d_it_reads_as() {
        assert_eq!(drawable("29-MĐ1 234.56"), "29-MD1 234.56");
        assert_eq!(drawable("29TĐ-012.34 đ"), "29TD-012.34 d");
        assert!(drawable("51LĐ").is_ascii());
    }

    #[test]
    fn evidence_fits_the_budget_even_for_a_noisy_large_frame() {
        let mut frame = Mat::new_rows_cols_with_default(720, 1280, CV_8UC3, Scalar::all(0.0)).unwrap();
        // Noise is the worst case for JPEG.
        let mut rng = RNG::new(7).unwrap();
        rng.fill(&mut frame, opencv::core::RNG_UNIFORM, &Scalar::all(0.0), &Scalar::all(255.0), false).unwrap();
        let vehicle = Mark { bbox: BBox { x1: 0.4, y1: 0.4, x2: 0.6, y2: 0.7 }, text: "#3 car".into(), violator: true };
        let overlays = [Overlay { rule: "stop".into(), shape: Shape::Segment(Point { x: 0.5, y: 1.0 }, Point { x: 0.5, y: 0.0 }), label: "red_light stop".into(), tone: Tone::Red }];
        let Evidence { jpeg, size, vehicle: placed } = evidence_jpeg(&frame, &overlays, std::slice::from_ref(&vehicle), "red_light stop 1.2 s after red", None).unwrap();
        assert_eq!(placed, None);
        assert!(jpeg.len() <= EVIDENCE_MAX_BYTES, "{} bytes", jpeg.len());
        assert_eq!(&jpeg[..2], &[0xff, 0xd8], "a JPEG");
        assert!(size.width < 1280 && size.width >= 200, "{size:?}");
        let decoded = opencv::imgcodecs::imdecode(&Vector::from_slice(&jpeg), opencv::imgcodecs::IMREAD_COLOR).unwrap();
        assert_eq!((decoded.cols(), decoded.rows()), (size.width, size.height));
    }
}
