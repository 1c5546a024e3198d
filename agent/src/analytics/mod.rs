//! Analytics stage: what the tracked objects mean. Every analysis is an [`Analyzer`]
//! ([`analyzer`]) built from its config: directional counting on lines ([`counting`], over
//! [`line`]) with the per-interval count tables published to the IOC ([`CountsTable`]), each
//! traffic rule ([`rules`], with the signal state red-light rules need, [`signal`]), and fire,
//! smoke and open burning ([`fire`]). [`CameraAnalyzers`] runs a camera's list of them.

pub mod analyzer;
mod camera;
mod counting;
pub mod fire;
pub mod geometry;
pub mod history;
mod line;
pub mod rules;
pub mod signal;

pub use analyzer::{Analyzer, AnalyzerConfig, BuildContext, CheckContext, Finding, FrameContext};
pub use camera::CameraAnalyzers;
pub use line::{CONFIRM_FRAMES, Crossing, Direction, Line, LineConfig, LineCounter};
pub use rules::{RuleConfig, RuleKind, Violation};
pub use crate::render::{Overlay, Shape, Tone};

use std::collections::BTreeMap;

use serde::Serialize;

/// Counts on one line, by direction and class name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LineCounts {
    pub id: String,
    #[serde(rename = "in")]
    pub into: BTreeMap<String, u64>,
    pub out: BTreeMap<String, u64>,
}

impl LineCounts {
    /// Nothing counted, either way.
    pub fn is_empty(&self) -> bool {
        self.into.is_empty() && self.out.is_empty()
    }
}

/// Counts per line × direction × class, in line order, summed until taken.
#[derive(Debug, Clone)]
pub struct CountsTable {
    lines: Vec<LineCounts>,
}

impl CountsTable {
    /// A table for the lines `ids`, in that order.
    pub fn new<'a>(ids: impl IntoIterator<Item = &'a str>) -> CountsTable {
        CountsTable { lines: ids.into_iter().map(|id| LineCounts { id: id.to_string(), ..Default::default() }).collect() }
    }

    pub fn add(&mut self, line: &str, direction: Direction, class: &str) {
        if let Some(counts) = self.lines.iter_mut().find(|l| l.id == line) {
            let table = match direction {
                Direction::In => &mut counts.into,
                Direction::Out => &mut counts.out,
            };
            *table.entry(class.to_string()).or_default() += 1;
        }
    }

    /// The counts so far, leaving the table at zero.
    pub fn take(&mut self) -> Vec<LineCounts> {
        self.lines
            .iter_mut()
            .map(|l| LineCounts { id: l.id.clone(), into: std::mem::take(&mut l.into), out: std::mem::take(&mut l.out) })
            .collect()
    }

    pub fn snapshot(&self) -> &[LineCounts] {
        &self.lines
    }
}
