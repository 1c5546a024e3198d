//! Line counting as an analyzer: a camera's counting lines (`[[cameras.lines]]`), each crossing
//! a finding that the emitter counts per interval and, on lines that publish crossings, sends.

use std::collections::BTreeSet;

use super::analyzer::{Analyzer, AnalyzerConfig, BuildContext, CheckContext, Finding, FrameContext};
use super::line::{Crossing, Line, LineConfig, LineCounter};
use crate::check::{ConfigError, check_unique_ids};
use crate::render::{Overlay, Shape, Tone};

impl AnalyzerConfig for Vec<LineConfig> {
    fn validate(&self, path: &str, ctx: &CheckContext, errors: &mut Vec<ConfigError>) {
        check_unique_ids(self.iter().map(|l| l.id.as_str()), path, "line", errors);
        for (j, line) in self.iter().enumerate() {
            line.validate(&format!("{path}[{j}]"), ctx.labels, errors);
        }
    }

    fn build(&self, ctx: &mut BuildContext) -> Result<Box<dyn Analyzer>, String> {
        let lines = self.iter().map(|l| Line::new(&l.id, l.p1, l.p2, ctx.classes(l.classes.as_deref()), l.confirm_frames)).collect();
        let counted_only = self.iter().filter(|l| !l.publish_crossings).map(|l| l.id.clone()).collect();
        Ok(Box::new(LineCounting { counter: LineCounter::new(lines).for_counts(), counted_only }))
    }
}

/// A camera's counting lines.
struct LineCounting {
    counter: LineCounter,
    /// Lines whose crossings are only counted, not published one by one.
    counted_only: BTreeSet<String>,
}

impl LineCounting {
    fn findings(&self, crossings: Vec<Crossing>, at_end: bool) -> Vec<Finding> {
        for c in &crossings {
            tracing::debug!(line = %c.line, direction = ?c.direction, track = c.track_id, class = c.class, at_s = c.at.as_secs_f32(), recount = c.recount, at_end, "crossing");
        }
        crossings.into_iter().map(|crossing| Finding::Crossing { publish: !self.counted_only.contains(&crossing.line), crossing }).collect()
    }
}

impl Analyzer for LineCounting {
    fn analyse(&mut self, frame: &FrameContext) -> Result<Vec<Finding>, String> {
        let crossings = self.counter.update(frame.tracks, frame.now);
        Ok(self.findings(crossings, false))
    }

    fn end(&mut self) -> Result<Vec<Finding>, String> {
        let crossings = self.counter.end();
        Ok(self.findings(crossings, true))
    }

    fn reset(&mut self) -> Result<(), String> {
        self.counter.reset();
        Ok(())
    }

    fn overlays(&self) -> Vec<Overlay> {
        let line = |l: &Line| Overlay { rule: l.id.clone(), shape: Shape::Segment(l.p1, l.p2), label: format!("line {}", l.id), tone: Tone::Rule };
        self.counter.lines().iter().map(line).collect()
    }
}
