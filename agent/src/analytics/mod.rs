//! Analytics stage: what the tracked objects mean. Directional counting on lines ([`line`]) with
//! the per-interval count tables published to the IOC ([`CountsTable`]), and traffic rules
//! ([`rules`]) with the signal state red-light rules need ([`signal`]), and fire, smoke and open
//! burning ([`fire`]).

pub mod fire;
pub mod geometry;
mod history;
mod line;
pub mod rules;
pub mod signal;

pub use line::{Crossing, Direction, Line, LineConfig, LineCounter};
pub use rules::{Overlay, RuleConfig, RuleKind, Rules, Shape, Tone, Violation};

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

/// Counts per line × direction × class, in line order, summed until taken.
#[derive(Debug, Clone)]
pub struct CountsTable {
    lines: Vec<LineCounts>,
}

impl CountsTable {
    pub fn new(lines: &[Line]) -> CountsTable {
        CountsTable { lines: lines.iter().map(|l| LineCounts { id: l.id.clone(), ..Default::default() }).collect() }
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
