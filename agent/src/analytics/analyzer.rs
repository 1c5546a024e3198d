//! The seam every analysis plugs into. An [`Analyzer`] turns one camera's analysed frames and
//! tracks into typed [`Finding`]s (crossings, violations, fire events); the emitter
//! (`events::emitter`) turns findings into messages and evidence. Line counting, each traffic rule
//! and the fire watch are analyzers; a camera runs the list its config builds
//! ([`AnalyzerConfig::build`]), after the shared stages (motion gate, detector, tracker).

use std::cell::OnceCell;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opencv::core::Mat;

use super::fire::FireEvent;
use super::history::TrackHistory;
use super::line::Crossing;
use super::rules::Violation;
use crate::check::ConfigError;
use crate::detect::{Detector, ManifestError, ModelManifest};
use crate::render::{Overlay, frame_to_mat};
use crate::types::{ClassId, Detection, Frame, Point, TrackedObject};

/// What an analyzer sees of one analysed frame.
pub struct FrameContext<'a> {
    /// Position in the stream.
    pub now: Duration,
    pub frame: &'a Frame,
    /// The detector's boxes in this frame (empty when the motion gate skipped it).
    pub detections: &'a [Detection],
    /// The tracker's objects in this frame.
    pub tracks: &'a [TrackedObject],
    /// Recent positions of every live track.
    pub history: &'a TrackHistory,
    image: OnceCell<Mat>,
}

impl<'a> FrameContext<'a> {
    pub fn new(now: Duration, frame: &'a Frame, detections: &'a [Detection], tracks: &'a [TrackedObject], history: &'a TrackHistory) -> FrameContext<'a> {
        FrameContext { now, frame, detections, tracks, history, image: OnceCell::new() }
    }

    /// Frame width over height, to measure headings as seen on screen.
    pub fn aspect(&self) -> f32 {
        self.frame.width as f32 / self.frame.height.max(1) as f32
    }

    /// The frame's pixels (BGR), copied on first use: only what needs them pays for the copy
    /// (signal heads, fire, evidence, rendering).
    pub fn image(&self) -> Result<&Mat, String> {
        if let Some(image) = self.image.get() {
            return Ok(image);
        }
        let image = frame_to_mat(self.frame).map_err(|e| e.to_string())?;
        Ok(self.image.get_or_init(|| image))
    }
}

/// What an analyzer found, for the emitter.
#[derive(Debug, Clone)]
pub enum Finding {
    /// A vehicle crossed a counting line; `publish` is false on lines that only count.
    Crossing { crossing: Crossing, publish: bool },
    /// A traffic rule's alert or the end of one.
    Violation(Violation),
    /// A fire watch's transition (suspected, confirmed, update, cleared).
    Fire(FireEvent),
}

/// One analysis of a camera's frames. Errors name what failed; the camera logs them and goes on
/// with the next frame.
pub trait Analyzer: Send {
    /// What this frame shows.
    fn analyse(&mut self, frame: &FrameContext) -> Result<Vec<Finding>, String>;

    /// The stream ended, or is about to restart: what its last frames began and the end left no
    /// frames to confirm. [`Analyzer::reset`] follows before a restart.
    fn end(&mut self) -> Result<Vec<Finding>, String> {
        Ok(Vec::new())
    }

    /// The stream restarted and its times start again from zero.
    fn reset(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// Geometry to draw on evidence, snapshots and rendered frames.
    fn overlays(&self) -> Vec<Overlay> {
        Vec::new()
    }

    /// The points of the road geometry whose vehicles it needs tracked (the automatic
    /// `detect_region` holds them): its overlays' by default.
    fn watched(&self) -> Vec<Point> {
        self.overlays().iter().flat_map(|o| o.shape.points()).collect()
    }

    /// A signal controller's message on `topic`, applied at stream time `at`; an error names
    /// what is wrong with the payload.
    fn signal(&mut self, _topic: &str, _payload: &[u8], _at: Duration) -> Result<(), String> {
        Ok(())
    }

    /// A short note drawn beside a track, such as its speed.
    fn note(&self, _track: u64) -> Option<String> {
        None
    }

    /// How much of each track's history it measures over.
    fn history(&self) -> Duration {
        Duration::ZERO
    }
}

/// What an analyzer's config is checked against.
pub struct CheckContext<'a> {
    /// The class names the camera's model reports (its labels less those read as another), when
    /// the model could be loaded.
    pub labels: Option<&'a [String]>,
    /// Whether the site has a broker (signal controllers' feeds come over it).
    pub broker: bool,
    /// The manifest of a model by name.
    pub model: &'a dyn Fn(&str) -> Result<ModelManifest, ManifestError>,
}

/// What an analyzer is built with.
pub struct BuildContext<'a> {
    pub camera: &'a str,
    /// The camera's object detector, whose labels classes are resolved against.
    pub manifest: &'a ModelManifest,
    /// A loaded model by name, shared with the site's other cameras.
    pub model: &'a mut dyn FnMut(&str) -> Result<Arc<Detector>, String>,
    /// Where analyzers keep what should survive a restart; `None` in a replay.
    pub state_dir: Option<&'a Path>,
}

impl BuildContext<'_> {
    /// A `classes` key as model class ids (default: the model's vehicle classes).
    pub fn classes(&self, names: Option<&[String]>) -> Vec<ClassId> {
        self.manifest.resolve_classes(names)
    }
}

/// The config of an analyzer: it checks itself and builds what it describes.
pub trait AnalyzerConfig {
    /// Every problem, each with its key path below `path`.
    fn validate(&self, path: &str, ctx: &CheckContext, errors: &mut Vec<ConfigError>);

    /// The analyzer; the config must have passed validation.
    fn build(&self, ctx: &mut BuildContext) -> Result<Box<dyn Analyzer>, String>;
}
