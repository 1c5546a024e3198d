//! A camera's analyzers, run in order on each analysed frame: line counting, the traffic rules,
//! the fire watch. Also what they draw together: their geometry, and each track's mark with its
//! notes (speed) and whether it raised an alert.

use std::collections::HashSet;
use std::time::Duration;

use super::analyzer::{Analyzer, Finding, FrameContext};
use super::history::TrackHistory;
use crate::health::repeated::Repeated;
use crate::render::{Mark, Overlay};
use crate::types::{CameraId, Point, TrackedObject};

/// The shortest track history kept, whatever the analyzers measure over: enough to tell a track
/// that is still live from one that is gone.
const MIN_HISTORY: Duration = Duration::from_secs(2);

pub struct CameraAnalyzers {
    camera: CameraId,
    list: Vec<Box<dyn Analyzer>>,
    /// The camera model's class names, for marks.
    labels: Vec<String>,
    /// Tracks that raised any alert, drawn as violators while they live.
    violators: HashSet<u64>,
    /// Each analyzer's failures.
    failures: Vec<Repeated>,
}

impl CameraAnalyzers {
    pub fn new(camera: CameraId, list: Vec<Box<dyn Analyzer>>, labels: Vec<String>) -> CameraAnalyzers {
        let failures = list.iter().map(|_| Repeated::default()).collect();
        CameraAnalyzers { camera, list, labels, violators: HashSet::new(), failures }
    }

    /// The track history the analyzers need.
    pub fn history(&self) -> TrackHistory {
        TrackHistory::new(self.list.iter().map(|a| a.history()).fold(MIN_HISTORY, Duration::max))
    }

    /// The class name of a model class id.
    pub fn label(&self, class: usize) -> &str {
        self.labels.get(class).map_or("?", String::as_str)
    }

    /// What `call` finds with every analyzer, in order. An analyzer that fails is logged (after
    /// `when`) and the others go on.
    fn gather(&mut self, when: impl Fn() -> String, mut call: impl FnMut(&mut dyn Analyzer) -> Result<Vec<Finding>, String>) -> Vec<Finding> {
        let mut findings = Vec::new();
        for (analyzer, failures) in self.list.iter_mut().zip(&mut self.failures) {
            match call(analyzer.as_mut()) {
                Ok(found) => {
                    if let Some(repeated) = failures.quiet() {
                        tracing::warn!(camera = %self.camera, repeated, "an analyzer's error came {repeated} times more since it was logged; it worked at {}", when());
                    }
                    findings.extend(found);
                }
                Err(e) => {
                    if let Some(repeated) = failures.due() {
                        tracing::error!(camera = %self.camera, repeated, "{}: {e}", when());
                    }
                }
            }
        }
        findings
    }

    /// Every analyzer's findings on one frame, in order.
    pub fn analyse(&mut self, frame: &FrameContext) -> Vec<Finding> {
        let findings = self.gather(|| format!("frame {}", frame.frame.seq), |a| a.analyse(frame));
        for finding in &findings {
            if let Finding::Violation(v) = finding
                && v.ends.is_none()
            {
                self.violators.insert(v.object.id);
            }
        }
        self.violators.retain(|track| frame.history.knows(*track));
        findings
    }

    /// The stream ended or is about to restart: every analyzer's findings that the end confirms.
    /// (Crossings only: no violation is begun at the end, so `violators` stays as it is.)
    pub fn end(&mut self) -> Vec<Finding> {
        self.gather(|| "at the stream's end".into(), |a| a.end())
    }

    /// The stream restarted: every analyzer forgets what was tied to its times.
    pub fn reset(&mut self) {
        self.violators.clear();
        for analyzer in &mut self.list {
            if let Err(e) = analyzer.reset() {
                tracing::error!(camera = %self.camera, "{e}");
            }
        }
    }

    /// A signal controller's message, for the analyzers that hear `topic`.
    pub fn signal(&mut self, topic: &str, payload: &[u8], at: Duration) {
        for analyzer in &mut self.list {
            if let Err(e) = analyzer.signal(topic, payload, at) {
                tracing::warn!(camera = %self.camera, "{e}");
            }
        }
    }

    /// The points of the camera's lines and rule geometry (see [`Analyzer::watched`]).
    pub fn watched(&self) -> Vec<Point> {
        self.list.iter().flat_map(|a| a.watched()).collect()
    }

    /// Everything drawn for engineers: counting lines, rules' geometry, fire watch zones.
    pub fn overlays(&self) -> Vec<Overlay> {
        self.list.iter().flat_map(|a| a.overlays()).collect()
    }

    /// The geometry of one rule or zone, for its evidence.
    pub fn overlays_of(&self, id: &str) -> Vec<Overlay> {
        self.overlays().into_iter().filter(|o| o.rule == id).collect()
    }

    /// A track as drawn: id, class and the first note an analyzer has on it.
    pub fn mark(&self, object: &TrackedObject) -> Mark {
        let class = self.label(object.class);
        let text = match self.list.iter().find_map(|a| a.note(object.id)) {
            Some(note) => format!("#{} {class} {note}", object.id),
            None => format!("#{} {class}", object.id),
        };
        Mark { bbox: object.bbox, text, violator: self.violators.contains(&object.id) }
    }
}
