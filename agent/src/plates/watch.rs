//! A camera's plate watch: for each vehicle track, the few frames its plate is best seen in,
//! kept as crops at the stream's resolution until the plate is asked for.
//!
//! Plates are read on demand (a violation, a crossing of a plate line) and once per track (twice
//! at most reading every vehicle, below), never on every frame. Each analysed frame costs a size
//! comparison per track and, for a vehicle nearly as near as in its nearest frame kept, a crop
//! of it and a Laplacian to rank the frame. A track read once is never read again, even unread
//! (a violation raised while the vehicle was far gives `unsure` or `too_small` for good).
//! Reading every vehicle (`canh replay --plates`), a track read in view without a plate is read
//! once more (when it leaves, or on demand) if it showed frames since.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opencv::core::{Mat, MatTraitConst};

use super::{CutSides, FrameRead, PlateError, PlateOutcome, PlateReader, vote};
use crate::render::crop;
use crate::types::{BBox, ClassId, Frame, TrackedObject, WHOLE_FRAME};

/// Frames kept (and read) per vehicle: the ones where it is largest. Three let the vote
/// outvote one misread frame.
const KEEP_FRAMES: usize = 3;
/// A vehicle's crop (kept for its plate, or on evidence) is at most this many pixels on its
/// longer side: a plate on it is still 60 px or more wide, a car at 1080p is at native
/// resolution, and a bus filling a 4K frame does not hold megabytes per frame.
pub const CROP_MAX_SIDE_PX: u32 = 720;
/// A frame is a candidate when the vehicle is at least this share of its size in the nearest
/// frame kept.
const NEAR_ENOUGH: f32 = 0.8;
/// With every vehicle read, a track is read once this long has passed since the last frame it
/// kept: it is not getting nearer or sharper.
const SETTLED_AFTER: Duration = Duration::from_secs(2);
/// A track unseen for this long has left; its crops are dropped (after a last read, for
/// watches that read every vehicle).
const GONE_AFTER: Duration = Duration::from_secs(2);

/// A read plate, or why not, with when (the stream time of the best frame) and what it cost.
#[derive(Debug, Clone)]
pub struct TrackPlate {
    pub track_id: u64,
    pub class: ClassId,
    pub outcome: PlateOutcome,
    /// Stream time of the frame likeliest to read (the vehicle near and sharp).
    pub t: Duration,
    /// Time spent reading (all frames), milliseconds.
    pub read_ms: f64,
    /// The plate's crop from that frame, when one was read.
    pub image: Option<Mat>,
}

impl TrackPlate {
    /// For a track the watch never saw (not a plate class, or gone before it was asked for).
    pub fn unseen(track_id: u64, class: ClassId, t: Duration) -> TrackPlate {
        TrackPlate { track_id, class, outcome: Err(super::Unread::NotFound), t, read_ms: 0.0, image: None }
    }
}

struct Kept {
    image: Mat,
    /// Stream pixels per crop pixel.
    native_per_px: f32,
    /// The side of a square as large as the vehicle's box, in stream pixels: bigger is nearer,
    /// or more of it in view, and better. Not its height: a car entering at the frame's edge is
    /// cut, its box as high as the whole car but only as wide as the part in view, and its plate
    /// may be on the part still outside.
    size_px: f32,
    /// How likely the plate reads here: size times sharpness.
    score: f32,
    /// The sides of the crop that the frame's edge (or the detection region's) cut.
    cut: CutSides,
    t: Duration,
}

struct Track {
    class: ClassId,
    kept: Vec<Kept>,
    last_seen: Duration,
    read: Option<TrackPlate>,
    /// Reading every vehicle: what reading it in view gave when that found no plate. Its frames
    /// are then kept afresh and read again (when it leaves, or on demand): a car queued at a
    /// light was read on its frames standing far back, and shows its plate when it drives up.
    unread_in_view: Option<TrackPlate>,
    /// Reading every vehicle: its read is in the finished list.
    reported: bool,
}

/// One camera's plate watch.
pub struct PlateWatch {
    reader: Arc<PlateReader>,
    /// Which classes carry plates (the model's `plate_classes`).
    classes: Vec<ClassId>,
    tracks: BTreeMap<u64, Track>,
    /// Read every vehicle (`canh replay --plates`), not only those asked for: in view once it
    /// stops coming nearer, and again as it leaves if that found no plate.
    read_all: bool,
    /// Reads for [`PlateWatch::take_finished`] (with `read_all`), one per track.
    finished: Vec<TrackPlate>,
    /// What the detector looks at (the frame, or the camera's detection region).
    seen: BBox,
}

impl PlateWatch {
    pub fn new(reader: Arc<PlateReader>, classes: Vec<ClassId>, read_all: bool) -> PlateWatch {
        PlateWatch { reader, classes, tracks: BTreeMap::new(), read_all, finished: Vec::new(), seen: WHOLE_FRAME }
    }

    /// Vehicles are detected in `region` of the frame only: one at its edge is cut by it.
    pub fn look_within(&mut self, region: BBox) {
        self.seen = region;
    }

    /// Keeps this frame's crop of every vehicle whose plate is likelier to read here than in one
    /// of its frames kept: it is nearly as near as in the nearest, and sharper (compression and
    /// motion blur vary from frame to frame far more than a vehicle's size does).
    /// Tracks leave only on frames the detector ran on (`detected`): on a frame the motion gate
    /// skipped as still, standing vehicles are unseen, not gone.
    pub fn observe(&mut self, frame: &Frame, objects: &[TrackedObject], now: Duration, detected: bool) {
        let (native_width, native_height) = frame.native.as_ref().map_or((frame.width, frame.height), |n| (n.width(), n.height()));
        let native_area = native_width as f32 * native_height as f32;
        for object in objects.iter().filter(|o| self.classes.contains(&o.class)) {
            let track = self.tracks.entry(object.id).or_insert_with(|| Track { class: object.class, kept: Vec::new(), last_seen: now, read: None, unread_in_view: None, reported: false });
            track.last_seen = now;
            track.class = object.class;
            // Boxed with its neighbour: a crop of it may hold the neighbour's plate.
            if object.hidden {
                continue;
            }
            let size_px = (object.bbox.area() * native_area).sqrt();
            let nearest = track.kept.iter().map(|k| k.size_px).fold(0.0, f32::max);
            if track.read.is_some() || size_px < NEAR_ENOUGH * nearest {
                continue;
            }
            let (image, native_per_px) = match crop(frame, margin(object.bbox), CROP_MAX_SIDE_PX) {
                Ok(cropped) => cropped,
                Err(e) => {
                    tracing::warn!(track = object.id, "no crop for the plate: {e}");
                    continue;
                }
            };
            let score = match super::sharpness(&image) {
                Ok(sharpness) => size_px * sharpness.sqrt() as f32,
                Err(e) => {
                    tracing::warn!(track = object.id, "cannot measure the crop's sharpness: {e}");
                    continue;
                }
            };
            let kept = Kept { image, native_per_px, size_px, score, cut: CutSides::of(object.bbox, self.seen), t: now };
            // Frames much farther than the nearest go first, then the least likely to read.
            track.kept.retain(|k| k.size_px >= NEAR_ENOUGH * size_px);
            if track.kept.len() < KEEP_FRAMES {
                track.kept.push(kept);
            } else if let Some(worst) = track.kept.iter_mut().min_by(|a, b| a.score.total_cmp(&b.score)).filter(|w| w.score < score) {
                *worst = kept;
            }
        }
        // Reading every vehicle, one whose likeliest frame is long past is read while still in
        // view (it drives away, or stands), so a render shows its plate.
        if self.read_all {
            let settled: Vec<u64> = self
                .tracks
                .iter()
                .filter(|(_, t)| t.read.is_none() && t.unread_in_view.is_none() && t.kept.iter().map(|k| k.t).max().is_some_and(|t| now.saturating_sub(t) >= SETTLED_AFTER))
                .map(|(id, _)| *id)
                .collect();
            for id in settled {
                self.read_in_view(id);
            }
        }
        if !detected {
            return;
        }
        let gone: Vec<u64> = self.tracks.iter().filter(|(_, t)| now.saturating_sub(t.last_seen) > GONE_AFTER).map(|(id, _)| *id).collect();
        for id in gone {
            self.leave(id);
        }
    }

    /// Track `id` has left, or follows another vehicle now (it was counted again on a line, and
    /// its frames and read are not the new one's): read it first if every vehicle is read.
    pub fn leave(&mut self, id: u64) {
        self.read_for_all(id);
        self.tracks.remove(&id);
    }

    /// Reads track `id`, still in view, when every vehicle is read: a plate read is final; no
    /// plate, and the track is read again when it leaves, on the frames it shows from now on.
    fn read_in_view(&mut self, id: u64) {
        match self.plate(id) {
            Ok(Some(read)) if read.outcome.is_err() => {
                if let Some(track) = self.tracks.get_mut(&id) {
                    track.read = None;
                    track.unread_in_view = Some(read);
                }
            }
            Ok(Some(_)) => self.report(id),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(track = id, "cannot read the plate: {e}");
                // Its frames would settle it again on the next frame, and fail again.
                if let Some(track) = self.tracks.get_mut(&id) {
                    track.kept.clear();
                }
            }
        }
    }

    /// Reads track `id` for [`PlateWatch::take_finished`] when every vehicle is read, unless its
    /// read is there already (a read on demand, for a violation, is reported too).
    fn read_for_all(&mut self, id: u64) {
        if !self.read_all || self.tracks.get(&id).is_none_or(|t| t.reported) {
            return;
        }
        if let Err(e) = self.plate(id) {
            tracing::error!(track = id, "cannot read the plate: {e}");
            // What a read in view gave, if any, rather than nothing.
            if let Some(track) = self.tracks.get_mut(&id).filter(|t| t.read.is_none()) {
                track.read = track.unread_in_view.take();
            }
        }
        self.report(id);
    }

    /// Puts track `id`'s read in the finished list, once.
    fn report(&mut self, id: u64) {
        if let Some(track) = self.tracks.get_mut(&id).filter(|t| !t.reported)
            && let Some(read) = &track.read
        {
            self.finished.push(read.clone());
            track.reported = true;
        }
    }

    /// Whether vehicles of `class` carry a plate.
    pub fn carries_plate(&self, class: ClassId) -> bool {
        self.classes.contains(&class)
    }

    /// The plate text read for track `id`, if it was read.
    pub fn text(&self, id: u64) -> Option<&str> {
        self.tracks.get(&id)?.read.as_ref()?.outcome.as_ref().ok().map(|p| p.text.as_str())
    }

    /// The plate of track `id`, read now on its frames kept if it was not read before; `None`
    /// for a track the watch never saw (not a vehicle). A track read in view without a plate
    /// (reading every vehicle) is read on the frames kept since, if any, and both reads merged.
    pub fn plate(&mut self, id: u64) -> Result<Option<TrackPlate>, PlateError> {
        let Some(track) = self.tracks.get_mut(&id) else { return Ok(None) };
        if let Some(read) = &track.read {
            return Ok(Some(read.clone()));
        }
        if track.kept.is_empty()
            && let Some(first) = track.unread_in_view.take()
        {
            track.read = Some(first.clone());
            return Ok(Some(first));
        }
        let started = Instant::now();
        let reads: Vec<FrameRead> = track.kept.iter().map(|kept| self.reader.read(&kept.image, kept.native_per_px, kept.cut)).collect::<Result<_, _>>()?;
        let outcome = vote::vote(&reads);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let frames: Vec<String> = track.kept.iter().zip(&reads).map(|(k, r)| format!("t={:.2}s {:.0}px score {:.0}: {r:?}", k.t.as_secs_f32(), k.size_px, k.score)).collect();
            tracing::debug!(track = id, ?frames, ?outcome, "plate");
        }
        let best = track.kept.iter().max_by(|a, b| a.score.total_cmp(&b.score));
        // The plate's picture from the surest frame that read the winning text.
        let image = outcome.as_ref().ok().and_then(|plate| {
            let (i, read) = reads.iter().enumerate().filter_map(|(i, r)| r.as_ref().ok().filter(|r| r.text == plate.text).map(|r| (i, r))).max_by(|a, b| a.1.confidence.total_cmp(&b.1.confidence))?;
            Mat::roi(&track.kept[i].image, read.region).and_then(|m| m.try_clone()).ok()
        });
        let read = TrackPlate { track_id: id, class: track.class, outcome, t: best.map_or(track.last_seen, |k| k.t), read_ms: started.elapsed().as_secs_f64() * 1000.0, image };
        let read = merged(track.unread_in_view.take(), read);
        // The frames are not needed once read.
        track.kept.clear();
        track.read = Some(read.clone());
        Ok(Some(read))
    }

    /// The reads made since the last call, one per track, with `read_all` (in view, or as the
    /// track left); at the end of the stream (`end`) every track still in view is read too.
    pub fn take_finished(&mut self, end: bool) -> Vec<TrackPlate> {
        if end {
            let ids: Vec<u64> = self.tracks.keys().copied().collect();
            for id in ids {
                self.leave(id);
            }
        }
        std::mem::take(&mut self.finished)
    }

    /// The stream restarted: tracks start again.
    pub fn reset(&mut self) {
        self.tracks.clear();
    }
}

/// A track's second read after a `first` that found no plate: its plate if it read one, else the
/// nearer miss of the two (with that read's time); the time taken is both reads'.
fn merged(first: Option<TrackPlate>, second: TrackPlate) -> TrackPlate {
    let Some(first) = first else { return second };
    let read_ms = first.read_ms + second.read_ms;
    let nearer = match (&first.outcome, &second.outcome) {
        (Err(a), Err(b)) if a > b => first,
        _ => second,
    };
    TrackPlate { read_ms, ..nearer }
}

/// The box grown a little, so a plate on its edge (a motorbike's, under the rider) is whole.
fn margin(b: BBox) -> BBox {
    let (dx, dy) = (b.width() * 0.04, b.height() * 0.04);
    BBox { x1: b.x1 - dx, y1: b.y1 - dy, x2: b.x2 + dx, y2: b.y2 + dy }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plates::{Plate, Unread};

    fn read(outcome: PlateOutcome, t_s: u64, read_ms: f64) -> TrackPlate {
        TrackPlate { track_id: 7, class: 2, outcome, t: Duration::from_secs(t_s), read_ms, image: None }
    }

    #[test]
    fn a_second_read_gives_its_plate_or_the_nearer_miss_and_costs_both() {
        let plate = Plate { text: "51F-737.01".into(), confidence: 0.97, format: "vn_car" };
        let found = merged(Some(read(Err(Unread::NotFound), 1, 100.0)), read(Ok(plate.clone()), 3, 50.0));
        assert_eq!((found.outcome, found.t, found.read_ms), (Ok(plate), Duration::from_secs(3), 150.0));
        let nearer_first = merged(Some(read(Err(Unread::Unsure), 1, 100.0)), read(Err(Unread::NotFound), 3, 50.0));
        assert_eq!((nearer_first.outcome, nearer_first.t, nearer_first.read_ms), (Err(Unread::Unsure), Duration::from_secs(1), 150.0));
        let nearer_second = merged(Some(read(Err(Unread::TooSmall), 1, 100.0)), read(Err(Unread::Disagreeing), 3, 50.0));
        assert_eq!((nearer_second.outcome, nearer_second.t, nearer_second.read_ms), (Err(Unread::Disagreeing), Duration::from_secs(3), 150.0));
        let tie = merged(Some(read(Err(Unread::NotFound), 1, 100.0)), read(Err(Unread::NotFound), 3, 50.0));
        assert_eq!(tie.t, Duration::from_secs(3), "the later read's frame");
        assert_eq!(merged(None, read(Err(Unread::Blurred), 3, 50.0)).read_ms, 50.0);
    }
}
