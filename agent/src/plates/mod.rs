//! Plates stage: licence plates read on the vehicles that need one (those of violations, those
//! crossing a line marked `plates = true`, every vehicle in `canh replay --plates`).
//!
//! A vehicle's plate is read on its best few frames ([`watch`]), each a crop of the vehicle at
//! the stream's own resolution: PP-OCRv4's detector finds the text lines in the crop, its
//! recogniser reads each, lines that sit one above the other are joined top to bottom (two-line
//! plates), and the joined text must fit a plate format of the table in [`format`]. The frames'
//! reads are then voted on ([`vote`]). A plate that is too small, blurred, not found or read
//! differently from frame to frame is reported as unread, with that reason: never a guess.

pub mod format;
mod ocr;
pub mod vote;
pub mod watch;

pub use format::PlateFormat;
pub use vote::{Plate, PlateOutcome, Unread};

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use opencv::core::{Mat, MatTraitConst, MatTraitConstManual, Rect, Size};
use opencv::imgproc::{self, CLAHETrait};
use ort::session::Session;
use ort::value::TensorRef;
use serde::Deserialize;

use ocr::{Line, TextBox};

use crate::types::BBox;

/// The reader's models, a folder of the models folder.
pub const MODELS: &str = "ppocr_v4";

#[derive(Debug, thiserror::Error)]
pub enum PlateError {
    #[error("plate models {path}: {message}")]
    Models { path: PathBuf, message: String },
    #[error("plate model {model}: {message}")]
    Inference { model: &'static str, message: String },
    #[error("plate image: {0}")]
    Image(#[from] opencv::Error),
}

/// `models/<name>/manifest.toml` of the OCR models (what the reader needs of it; the name,
/// licence and provenance are for people).
#[derive(Debug, Deserialize)]
struct OcrManifest {
    detection: ModelFile,
    recognition: ModelFile,
    /// The recogniser's characters, one per line: class `i` is line `i` (class 0 is CTC's blank).
    dictionary: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    file: String,
    sha256: String,
    input: String,
    output: String,
}

/// The detector's input: the crop scaled so that its longer side is this (a multiple of 32, as
/// the model needs). Measured on the Vietnamese junction: as good as the plate zone at native
/// resolution or twice it, at a quarter of the time (150 against 700 ms a vehicle).
const DETECT_SIDE_PX: f32 = 320.0;
/// Local contrast for the text detector ([`local_contrast`]): the region in this many tiles a
/// side, each tile's histogram clipped at this multiple of its mean (the value usually chosen;
/// OpenCV's default of 40 hardly clips, and raises compression noise to look like text). The
/// same plates read at 1.5 and 3; on the Vietnamese junction at 5 fps it reads one plate more
/// (the Tucson's, 5 of 8); the detector finds no text on 71 frames' crops instead of 81, and no
/// plate is read that a person does not read.
const CONTRAST_TILES: i32 = 8;
const CONTRAST_CLIP: f64 = 2.0;
/// A crop that gave no plate is looked at again, its plate zone enlarged this much (at most to
/// `RETRY_MAX_SIDE_PX`), if the vehicle is at least `RETRY_VEHICLE_PX` stream pixels high. On the
/// Vietnamese junction a white car's plate, lines 17 px high, was found this way and not on the
/// whole crop at 320, 480 or 640 px.
const RETRY_ENLARGE: f32 = 1.5;
const RETRY_MAX_SIDE_PX: f32 = 720.0;
const RETRY_VEHICLE_PX: f32 = 200.0;
/// The recogniser reads lines scaled to this height, at most `REC_MAX_WIDTH_PX` wide.
const REC_HEIGHT_PX: u32 = 48;
const REC_MAX_WIDTH_PX: u32 = 320;
/// Text lines read per crop, largest first: a vehicle's plate is among its larger text; the
/// rest (stickers, a bus's route board) only costs time.
const MAX_LINES: usize = 6;
/// A line of a plate is at least this many pixels high at the stream's resolution; below it
/// the recogniser reads noise (`too_small`).
pub const MIN_LINE_PX: f32 = 9.0;
/// Beside a line of at least `MIN_LINE_PX`, lines this share of it high are read too.
const PAIRED_LINE_SHARE: f32 = 0.8;
/// A read counts only if every character was read at least this surely (a character below it
/// was as likely another one); the vote across frames does the rest.
const MIN_CHAR_P: f32 = 0.35;
/// Variance of the Laplacian over the text lines found below which a plate that did not read is
/// called `blurred` rather than `unreadable`.
const BLUR_VARIANCE: f64 = 60.0;
/// Share of a crop's width on each side where a plate is not looked for: there, a neighbour's
/// plate shows when vehicles queue side by side.
const SIDE_SHARE: f32 = 0.08;
/// A box this near the edge of what the detector saw (share of the frame's width or height) was
/// cut by it.
const AT_EDGE_SHARE: f32 = 0.005;
/// A text line ending this many line heights or nearer to a cut left or right side ([`CutSides`]:
/// the frame's edge, or the detection region's) may go on beyond it: a character's width and the gap to the
/// next are about 0.7 of a line's height, and the detector leaves out a character's sliver at the
/// edge. On the Vietnamese junction a Tucson entering at the left edge showed `20 10` of its
/// `420.10` there, 0.9 heights from the crop's side, read as the valid older plate `30G-2010`; a
/// Sorento's whole plate lay as near.
const CUT_LINE_HEIGHTS: f32 = 1.5;
/// At a cut bottom a line is cut only where it reaches the edge (its characters are not beyond
/// it, below): within this many of its heights.
const CUT_BOTTOM_LINE_HEIGHTS: f32 = 0.5;

/// What one frame of a vehicle gave.
pub type FrameRead = Result<PlateRead, Unread>;

/// A plate read on one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct PlateRead {
    /// Normalized, e.g. `30E-586.70`.
    pub text: String,
    pub format: &'static str,
    /// The least of its lines' mean character probabilities.
    pub confidence: f32,
    /// Where the plate is in the crop, pixels.
    pub region: Rect,
    /// A line of it ends by a side of the crop that the frame's edge cut (see [`CutSides`]):
    /// characters may be missing beyond, and the rest can fit a format as another plate (the
    /// vote weighs it so).
    pub at_frame_edge: bool,
}

/// Sides of a vehicle's crop that the frame's edge cut (or the detection region's, on a camera
/// with one): the vehicle goes on beyond them, so its plate may lie right at them, and no
/// neighbour's can. The bottom too: a vehicle driving away from a camera that sees its rear
/// enters across the bottom edge, largest (so its frames are kept) while its plate, lowest on
/// it, is still cut through, and half a line of characters reads as other characters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CutSides {
    pub left: bool,
    pub right: bool,
    pub bottom: bool,
}

impl CutSides {
    /// The sides of `bbox` (normalized) that lie at the edge of `seen`, what the detector looked
    /// at (the frame, or the camera's detection region). Detector boxes are clamped to it, so a
    /// vehicle cut by its edge has its box within a pixel or two of that edge. A vehicle cut by
    /// the region's edge goes on in the frame; its crop reaches a margin beyond its box, into
    /// pixels the detector did not see, and its text is cut where the crop ends.
    pub fn of(bbox: BBox, seen: BBox) -> CutSides {
        CutSides { left: bbox.x1 <= seen.x1 + AT_EDGE_SHARE, right: bbox.x2 >= seen.x2 - AT_EDGE_SHARE, bottom: bbox.y2 >= seen.y2 - AT_EDGE_SHARE }
    }
}

/// PP-OCRv4 detection and recognition sessions, shared by every camera of a site.
pub struct PlateReader {
    detection: Mutex<Session>,
    recognition: Mutex<Session>,
    /// The models' input and output names.
    detection_io: ModelFile,
    recognition_io: ModelFile,
    dictionary: Vec<String>,
    formats: &'static [PlateFormat],
}

impl PlateReader {
    /// Loads the models of `dir` (its `manifest.toml`), reading Vietnam's formats.
    pub fn load(dir: &Path, onnxruntime_lib: Option<&Path>) -> Result<PlateReader, PlateError> {
        let err = |message: String| PlateError::Models { path: dir.to_path_buf(), message };
        let manifest_path = dir.join("manifest.toml");
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| err(format!("cannot read {}: {e}", manifest_path.display())))?;
        let manifest: OcrManifest = toml::from_str(&text).map_err(|e| err(format!("{}: {e}", manifest_path.display())))?;
        let env = crate::detect::ort_environment(&crate::detect::ort_library_path(onnxruntime_lib)).map_err(|e| err(e.to_string()))?;
        let open = |model: &ModelFile| -> Result<Session, PlateError> {
            let path = dir.join(&model.file);
            crate::detect::verify_checksum(&path, &model.sha256).map_err(err)?;
            let session = Session::builder(&env)
                .and_then(|b| Ok(b.with_intra_threads(1)?))
                .and_then(|mut b| b.commit_from_file(&path))
                .map_err(|e| err(format!("cannot load {}: {e}", path.display())))?;
            // Checked here, not at the first plate: a name the model lacks fails every read.
            if !session.inputs().iter().any(|i| i.name() == model.input) {
                return Err(err(format!("{}: the model has no input named '{}'", path.display(), model.input)));
            }
            if !session.outputs().iter().any(|o| o.name() == model.output) {
                return Err(err(format!("{}: the model has no output named '{}'", path.display(), model.output)));
            }
            Ok(session)
        };
        let (detection, recognition) = (open(&manifest.detection)?, open(&manifest.recognition)?);
        let dictionary_path = dir.join(&manifest.dictionary);
        let dictionary: Vec<String> = std::fs::read_to_string(&dictionary_path)
            .map_err(|e| err(format!("cannot read {}: {e}", dictionary_path.display())))?
            .lines()
            .map(String::from)
            .collect();
        // Its classes are the blank, the dictionary's characters and a space: checked here, not
        // at the first plate, which another dictionary would fail (or read as other characters).
        let classes = recognition.outputs().iter().find(|o| o.name() == manifest.recognition.output).and_then(|o| o.dtype().tensor_shape()).and_then(|shape| shape.last().copied());
        if let Some(classes) = classes.filter(|&c| c > 0 && c as usize != dictionary.len() + 2) {
            return Err(err(format!("{}: {} characters, but the recogniser reads {classes} classes (the characters, a blank and a space): not its dictionary", dictionary_path.display(), dictionary.len())));
        }
        Ok(PlateReader {
            detection: Mutex::new(detection),
            recognition: Mutex::new(recognition),
            detection_io: manifest.detection,
            recognition_io: manifest.recognition,
            dictionary,
            formats: format::VIETNAM,
        })
    }

    /// Reads the plate on one crop of a vehicle; `native_per_px` is how many stream pixels one
    /// pixel of the crop stands for (above 1 when the crop was scaled down); `cut` the sides the
    /// frame's edge cut.
    pub fn read(&self, crop: &Mat, native_per_px: f32, cut: CutSides) -> Result<FrameRead, PlateError> {
        let size = crop.size()?;
        if (size.height as f32 * native_per_px) < 2.0 * MIN_LINE_PX {
            return Ok(Err(Unread::TooSmall));
        }
        let whole = Rect::new(0, 0, size.width, size.height);
        let first = self.read_lines(crop, self.text_boxes(crop, whole, DETECT_SIDE_PX / size.width.max(size.height) as f32)?, native_per_px, cut)?;
        // The detector misses some plates' lines on the crop scaled to 320 px (a white plate on
        // a white car). A vehicle big enough to show a readable plate is looked at again: the
        // part of it where a plate can be, enlarged.
        if first.is_ok() || (size.height as f32 * native_per_px) < RETRY_VEHICLE_PX {
            return Ok(first);
        }
        let zone = plate_zone(size, cut);
        let enlarge = RETRY_ENLARGE.min(RETRY_MAX_SIDE_PX / zone.width.max(zone.height) as f32);
        let second = self.read_lines(crop, self.text_boxes(crop, zone, enlarge)?, native_per_px, cut)?;
        // Unread both times: the nearer miss says why.
        Ok(second.or_else(|b| first.map_err(|a| a.max(b))))
    }

    /// The plate among text `lines` found on the crop, or why there is none.
    fn read_lines(&self, crop: &Mat, lines: Vec<TextBox>, native_per_px: f32, cut: CutSides) -> Result<FrameRead, PlateError> {
        let size = crop.size()?;
        let mut lines: Vec<TextBox> = lines.into_iter().filter(|b| in_plate_zone(b, size, cut)).collect();
        if lines.is_empty() {
            return Ok(Err(Unread::NotFound));
        }
        if lines.iter().all(|b| b.height() * native_per_px < MIN_LINE_PX) {
            return Ok(Err(Unread::TooSmall));
        }
        // A line well under the least height reads noise, beside larger text (a sticker, a
        // taxi's number) as much as alone; one a little under it may be the other line of a
        // plate whose first reaches it, and is read only as that (`readable_candidates`).
        lines.retain(|b| b.height() * native_per_px >= PAIRED_LINE_SHARE * MIN_LINE_PX);
        lines.sort_by(|a, b| (b.width() * b.height()).total_cmp(&(a.width() * a.height())));
        lines.truncate(MAX_LINES);
        let read: Vec<Line> = lines.iter().map(|b| self.recognise(crop, b)).collect::<Result<_, _>>()?;
        if tracing::enabled!(tracing::Level::DEBUG) {
            let seen: Vec<String> = lines.iter().zip(&read).map(|(b, l)| format!("{:?} {:.2}/{:.2} at [{:.0},{:.0},{:.0},{:.0}]", l.text, l.mean, l.least, b.x1, b.y1, b.x2, b.y2)).collect();
            tracing::debug!(crop = ?(size.width, size.height), native_per_px, ?seen, "text lines");
        }
        let best = readable_candidates(&lines, native_per_px)
            .into_iter()
            .filter_map(|members| {
                let texts: Vec<&str> = members.iter().map(|&i| read[i].text.as_str()).collect();
                let fitted = format::fit(self.formats, &texts)?;
                members.iter().all(|&i| read[i].least >= MIN_CHAR_P).then_some(())?;
                let confidence = members.iter().map(|&i| read[i].mean).fold(1.0, f32::min);
                let members: Vec<TextBox> = members.iter().map(|&i| lines[i]).collect();
                let at_frame_edge = members.iter().any(|b| reaches_cut_side(b, size, cut));
                Some(PlateRead { text: fitted.text, format: fitted.format, confidence, region: union(&members), at_frame_edge })
            })
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence));
        Ok(match best {
            Some(plate) => Ok(plate),
            None if sharpness(&Mat::roi(crop, union(&lines))?)? < BLUR_VARIANCE => Err(Unread::Blurred),
            None => Err(Unread::Unreadable),
        })
    }

    /// Text lines of `region` of the crop, scaled by `scale` for the detector, in the crop's
    /// pixels.
    fn text_boxes(&self, crop: &Mat, region: Rect, scale: f32) -> Result<Vec<TextBox>, PlateError> {
        // Sides in multiples of 32, as the model needs.
        let side = |v: i32| (((v as f32 * scale / 32.0).round() as i32).max(1) * 32) as u32;
        let (w, h) = (side(region.width), side(region.height));
        let mut scaled = Mat::default();
        imgproc::resize(&local_contrast(&Mat::roi(crop, region)?)?, &mut scaled, Size::new(w as i32, h as i32), 0.0, 0.0, imgproc::INTER_CUBIC)?;
        let input = normalized_chw(&scaled, w)?;
        let map = run(&self.detection, "detection", &self.detection_io, [1, 3, h as i64, w as i64], &input, &[1, 1, h as i64, w as i64])?;
        let to_crop = (region.width as f32 / w as f32, region.height as f32 / h as f32);
        let boxes = ocr::text_boxes(&map, w as usize, h as usize, to_crop, (region.width as f32, region.height as f32))?;
        let (dx, dy) = (region.x as f32, region.y as f32);
        Ok(boxes.into_iter().map(|b| TextBox { x1: b.x1 + dx, y1: b.y1 + dy, x2: b.x2 + dx, y2: b.y2 + dy, ..b }).collect())
    }

    fn recognise(&self, crop: &Mat, b: &TextBox) -> Result<Line, PlateError> {
        let rect = Rect::new(b.x1 as i32, b.y1 as i32, (b.width() as i32).max(1), (b.height() as i32).max(1));
        let line = Mat::roi(crop, rect)?;
        let width = ((REC_HEIGHT_PX as f32 * b.width() / b.height().max(1.0)).round() as u32).clamp(8, REC_MAX_WIDTH_PX);
        let mut scaled = Mat::default();
        imgproc::resize(&line, &mut scaled, Size::new(width as i32, REC_HEIGHT_PX as i32), 0.0, 0.0, imgproc::INTER_LINEAR)?;
        // The model's width is free; a multiple of 8 (its stride), zero-padded on the right.
        let padded = width.div_ceil(8) * 8;
        let input = normalized_chw(&scaled, padded)?;
        // A step per 8 columns, each of the blank, the dictionary's characters and a space: a
        // dictionary that is not the model's gives another count.
        let classes = self.dictionary.len() + 2;
        let steps = (padded / 8) as i64;
        let probs = run(&self.recognition, "recognition", &self.recognition_io, [1, 3, REC_HEIGHT_PX as i64, padded as i64], &input, &[1, steps, classes as i64])?;
        Ok(ocr::ctc_decode(&probs, classes, &self.dictionary))
    }
}

/// Where a plate can be on a vehicle's crop: below its top third (the rear window, a bus's
/// route board), away from the sides (which hold the neighbours' plates when vehicles queue side
/// by side) but those the frame's edge cut. A car entering at the frame's edge shows its plate
/// there: on the Vietnamese junction, a Sorento's plate lay in the `SIDE_SHARE` of its crop by
/// the edge.
fn plate_zone(size: Size, cut: CutSides) -> Rect {
    let side = (size.width as f32 * SIDE_SHARE) as i32;
    let (x1, x2) = (if cut.left { 0 } else { side }, if cut.right { size.width } else { size.width - side });
    let y = (size.height as f32 * 0.3) as i32;
    Rect::new(x1, y, (x2 - x1).max(1), (size.height - y).max(1))
}

/// A text line that may be part of a plate: its centre in the plate zone, and not much higher
/// than wide (a two-line plate's short top line is nearly square).
fn in_plate_zone(b: &TextBox, size: Size, cut: CutSides) -> bool {
    let (cx, cy) = b.centre();
    plate_zone(size, cut).contains(opencv::core::Point::new(cx as i32, cy as i32)) && b.width() >= 0.8 * b.height()
}

/// Whether a text line ends near a cut side of the crop ([`CutSides`]), where its text may go on
/// out of view.
fn reaches_cut_side(b: &TextBox, size: Size, cut: CutSides) -> bool {
    let margin = CUT_LINE_HEIGHTS * b.height();
    (cut.left && b.x1 <= margin) || (cut.right && size.width as f32 - b.x2 <= margin) || (cut.bottom && size.height as f32 - b.y2 <= CUT_BOTTOM_LINE_HEIGHTS * b.height())
}

/// The sets of lines (indices into `lines`, top to bottom) that may be one plate: each line
/// alone, and each pair where one lies just below the other, about as high and overlapping it
/// across (a two-line plate).
fn plate_candidates(lines: &[TextBox]) -> Vec<Vec<usize>> {
    let mut candidates: Vec<Vec<usize>> = (0..lines.len()).map(|i| vec![i]).collect();
    for (i, top) in lines.iter().enumerate() {
        for (j, bottom) in lines.iter().enumerate() {
            let tall = top.height().max(bottom.height());
            let below = bottom.centre().1 > top.centre().1 && bottom.y1 - top.y2 < 0.8 * tall;
            let similar = (0.5..=2.0).contains(&(top.height() / bottom.height().max(1.0)));
            let across = top.x2.min(bottom.x2) - top.x1.max(bottom.x1) >= 0.5 * top.width().min(bottom.width());
            if i != j && below && similar && across {
                candidates.push(vec![i, j]);
            }
        }
    }
    candidates
}

/// The plate candidates of `lines` ([`plate_candidates`]) with a line of at least `MIN_LINE_PX`
/// stream pixels: a line under it is read only as the other line of a plate.
fn readable_candidates(lines: &[TextBox], native_per_px: f32) -> Vec<Vec<usize>> {
    let tall = |i: &usize| lines[*i].height() * native_per_px >= MIN_LINE_PX;
    plate_candidates(lines).into_iter().filter(|members| members.iter().any(tall)).collect()
}

/// The rectangle holding every line.
fn union(lines: &[TextBox]) -> Rect {
    let u = lines.iter().fold((f32::MAX, f32::MAX, 0f32, 0f32), |r, b| (r.0.min(b.x1), r.1.min(b.y1), r.2.max(b.x2), r.3.max(b.y2)));
    Rect::new(u.0 as i32, u.1 as i32, ((u.2 - u.0) as i32).max(1), ((u.3 - u.1) as i32).max(1))
}

/// `image` with its lightness equalized tile by tile (CLAHE), for the text detector: a plate
/// washed out by sun or glare, or white on a silver car, differs from its surroundings by a few
/// grey levels, too few for the detector, and equalizing the tile it lies in spreads them. The
/// recogniser is given the image as it is: equalized lines read worse (on the Vietnamese junction
/// at 5 fps, 1 plate of 8 instead of 5), as it learnt on natural text.
fn local_contrast(image: &impl opencv::core::ToInputArray) -> Result<Mat, PlateError> {
    let (mut lab, mut lightness, mut out) = (Mat::default(), Mat::default(), Mat::default());
    imgproc::cvt_color_def(image, &mut lab, imgproc::COLOR_BGR2Lab)?;
    let mut channels = opencv::core::Vector::<Mat>::new();
    opencv::core::split(&lab, &mut channels)?;
    imgproc::create_clahe(CONTRAST_CLIP, Size::new(CONTRAST_TILES, CONTRAST_TILES))?.apply(&channels.get(0)?, &mut lightness)?;
    channels.set(0, lightness)?;
    opencv::core::merge(&channels, &mut lab)?;
    imgproc::cvt_color_def(&lab, &mut out, imgproc::COLOR_Lab2BGR)?;
    Ok(out)
}

/// How sharp an image is: the variance of the Laplacian of its grey pixels.
fn sharpness(image: &impl opencv::core::ToInputArray) -> Result<f64, PlateError> {
    let (mut grey, mut laplacian) = (Mat::default(), Mat::default());
    imgproc::cvt_color_def(image, &mut grey, imgproc::COLOR_BGR2GRAY)?;
    imgproc::laplacian_def(&grey, &mut laplacian, opencv::core::CV_64F)?;
    let (mut mean, mut deviation) = (opencv::core::Scalar::default(), opencv::core::Scalar::default());
    opencv::core::mean_std_dev_def(&laplacian, &mut mean, &mut deviation)?;
    Ok(deviation[0] * deviation[0])
}

/// A BGR image as PP-OCR's input: channels first, `(x / 255 - 0.5) / 0.5`, zero-padded on the
/// right to `width`.
fn normalized_chw(image: &Mat, width: u32) -> Result<Vec<f32>, PlateError> {
    let (cols, rows) = (image.cols() as usize, image.rows() as usize);
    let width = width as usize;
    let mut input = vec![0f32; 3 * rows * width];
    // Freshly resized, so continuous.
    let bytes = image.data_bytes()?;
    for y in 0..rows {
        for x in 0..cols {
            for c in 0..3 {
                input[c * rows * width + y * width + x] = bytes[(y * cols + x) * 3 + c] as f32 / 127.5 - 1.0;
            }
        }
    }
    Ok(input)
}

/// Runs one of the sessions on an NCHW input; its output, flattened, which must be of shape
/// `expected` (the manifest says what each model gives): another model under the same names
/// would be read as garbage, not fail.
fn run(session: &Mutex<Session>, model: &'static str, io: &ModelFile, shape: [i64; 4], data: &[f32], expected: &[i64]) -> Result<Vec<f32>, PlateError> {
    let err = |message: String| PlateError::Inference { model, message };
    let (input, output) = (io.input.as_str(), io.output.as_str());
    let tensor = TensorRef::from_array_view((shape, data)).map_err(|e| err(e.to_string()))?;
    let mut session = session.lock().unwrap_or_else(|p| p.into_inner());
    let outputs = session.run(ort::inputs![input => tensor]).map_err(|e| err(format!("inference failed: {e}")))?;
    let value = outputs.get(output).ok_or_else(|| err(format!("no output named '{output}'")))?;
    let (got, values) = value.try_extract_tensor::<f32>().map_err(|e| err(format!("output '{output}': {e}")))?;
    if **got != *expected {
        return Err(err(format!("output '{output}' is of shape {:?}, not {expected:?}", &**got)));
    }
    Ok(values.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(x1: f32, y1: f32, x2: f32, y2: f32) -> TextBox {
        TextBox { x1, y1, x2, y2, score: 0.9 }
    }

    #[test]
    fn stacked_lines_pair_top_to_bottom_and_side_by_side_ones_do_not() {
        // A two-line plate (top, bottom) and a sticker beside it.
        let lines = [line(40.0, 100.0, 80.0, 118.0), line(36.0, 120.0, 86.0, 140.0), line(120.0, 100.0, 160.0, 118.0)];
        let candidates = plate_candidates(&lines);
        assert!(candidates.contains(&vec![0, 1]), "{candidates:?}");
        assert!(!candidates.contains(&vec![1, 0]), "bottom line first");
        assert!(!candidates.iter().any(|c| c.len() == 2 && c.contains(&2)), "the sticker beside the plate: {candidates:?}");
        assert_eq!(candidates.iter().filter(|c| c.len() == 1).count(), 3);
    }

    #[test]
    fn a_plate_by_a_side_the_frame_cut_is_in_the_zone_and_a_neighbours_by_another_side_is_not() {
        let size = Size::new(400, 300);
        let by_left = line(4.0, 200.0, 50.0, 220.0);
        assert!(!in_plate_zone(&by_left, size, CutSides::default()), "a neighbour's, queued beside");
        assert!(in_plate_zone(&by_left, size, CutSides { left: true, ..CutSides::default() }), "the car goes on beyond the frame");
        assert!(!in_plate_zone(&line(360.0, 200.0, 396.0, 220.0), size, CutSides { left: true, ..CutSides::default() }));
        assert_eq!(plate_zone(size, CutSides { left: true, right: true, bottom: false }), Rect::new(0, 90, 400, 210));
        let cut = |x1: f32, x2: f32| CutSides::of(BBox { x1, y1: 0.4, x2, y2: 0.8 }, crate::types::WHOLE_FRAME);
        assert_eq!(cut(0.0, 0.2), CutSides { left: true, ..CutSides::default() });
        assert_eq!(cut(0.85, 1.0), CutSides { right: true, ..CutSides::default() });
        assert_eq!(cut(0.02, 0.3), CutSides::default(), "near the edge, not cut by it");
        let region = BBox { x1: 0.25, y1: 0.2, x2: 0.75, y2: 0.9 };
        let in_region = |x1: f32, x2: f32| CutSides::of(BBox { x1, y1: 0.4, x2, y2: 0.8 }, region);
        assert_eq!(in_region(0.25, 0.4), CutSides { left: true, ..CutSides::default() }, "cut by the detection region");
        assert_eq!(in_region(0.6, 0.75), CutSides { right: true, ..CutSides::default() });
        assert_eq!(in_region(0.27, 0.74), CutSides::default(), "near its edges, not cut by them");
        let entering = CutSides::of(BBox { x1: 0.4, y1: 0.6, x2: 0.6, y2: 1.0 }, crate::types::WHOLE_FRAME);
        assert_eq!(entering, CutSides { bottom: true, ..CutSides::default() }, "entering across the bottom edge");
    }

    #[test]
    fn a_line_near_a_side_the_frame_cut_may_go_on_beyond_it() {
        let size = Size::new(392, 366);
        // The Tucson's bottom line, `20 10` of `420.10`, 18 px high and 17 px from the edge.
        let bottom = line(17.0, 232.0, 65.0, 250.0);
        assert!(reaches_cut_side(&bottom, size, CutSides { left: true, ..CutSides::default() }));
        assert!(!reaches_cut_side(&bottom, size, CutSides::default()), "a crop's side, not the frame's");
        assert!(!reaches_cut_side(&bottom, size, CutSides { right: true, ..CutSides::default() }));
        assert!(!reaches_cut_side(&line(61.0, 229.0, 116.0, 248.0), size, CutSides { left: true, ..CutSides::default() }), "the whole line, 3 heights in");
        assert!(reaches_cut_side(&line(300.0, 200.0, 380.0, 220.0), size, CutSides { right: true, ..CutSides::default() }));
        let bottom_cut = CutSides { bottom: true, ..CutSides::default() };
        assert!(reaches_cut_side(&line(150.0, 340.0, 220.0, 358.0), size, bottom_cut), "8 px from the bottom the frame cut");
        assert!(!reaches_cut_side(&line(150.0, 322.0, 220.0, 340.0), size, bottom_cut), "a whole line 26 px above it");
    }

    #[test]
    fn a_line_under_the_least_height_is_read_only_beside_one_that_reaches_it() {
        // At 1 stream pixel a pixel: a plate of a 12-px and an 8-px line, a lone 8-px sticker.
        let lines = [line(40.0, 100.0, 80.0, 112.0), line(38.0, 113.0, 82.0, 121.0), line(200.0, 100.0, 240.0, 108.0)];
        let readable = readable_candidates(&lines, 1.0);
        assert!(readable.contains(&vec![0]) && readable.contains(&vec![0, 1]), "{readable:?}");
        assert!(!readable.contains(&vec![1]) && !readable.contains(&vec![2]), "8-px lines alone: {readable:?}");
        assert!(readable_candidates(&lines[1..], 1.0).is_empty(), "two 8-px lines make no plate");
    }

    #[test]
    fn lines_far_apart_or_of_different_heights_are_not_one_plate() {
        let far = [line(40.0, 10.0, 80.0, 28.0), line(40.0, 100.0, 80.0, 118.0)];
        assert!(plate_candidates(&far).iter().all(|c| c.len() == 1));
        let unlike = [line(40.0, 100.0, 80.0, 106.0), line(36.0, 108.0, 86.0, 140.0)];
        assert!(plate_candidates(&unlike).iter().all(|c| c.len() == 1));
    }
}
