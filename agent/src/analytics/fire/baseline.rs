//! What the smoke model usually says about one camera's view. Haze over a valley, a bright ridge
//! or a cloud bank can score high every day; smoke is a cell scoring well above what it usually
//! scores. Per cell, the baseline is a high quantile of the model's logit over heat maps learnt
//! every `interval` (the last `maps` of them; no cell is judged before `min_maps`). Cells newly
//! hot are kept out of learning for `hold`, so a plume is not learnt as scenery while it is
//! watched, yet something that stays for good (a new roof) becomes scenery in the end.
//!
//! In the daemon the learnt maps are kept in a file, rewritten at each learning, so that a
//! restart (a power cut, an update) does not leave the camera without its baseline for the
//! `min_maps` it takes to learn one again.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use crate::detect::Heatmap;
use crate::types::BBox;

/// The quantile of a cell's learnt logits that is its baseline: with an hour of maps a minute
/// apart, about its second-highest, so one odd hour does not blind a cell, nor make it hot.
/// Training chose the model's threshold with the same rule (`training/smoke/train.py`).
const QUANTILE: f32 = 0.98;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineSettings {
    /// How far above its baseline (in logits) a cell must score to be newly hot.
    pub margin_logit: f32,
    /// Time between learnt heat maps.
    pub interval: Duration,
    /// How many learnt heat maps are kept.
    pub maps: usize,
    /// How many learnt heat maps a cell needs before it can be newly hot: one frame is no
    /// picture of a view (a car parked on grey asphalt leaves, and the asphalt is "new").
    pub min_maps: usize,
    /// How long a newly hot cell is kept out of learning.
    pub hold: Duration,
}

/// A region of newly hot cells: its box (normalized) and its best cell's probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HotRegion {
    pub region: BBox,
    pub p: f32,
}

/// Where a camera's learnt maps are kept, and which model they are the logits of (a baseline of
/// another model means nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineFile {
    pub path: PathBuf,
    pub model: String,
}

/// The first line of a baseline file, then the model, then cols, rows and maps as u32 and the
/// maps' logits as f32, little-endian.
const FILE_MAGIC: &[u8] = b"canh smoke baseline 1\n";

pub struct SmokeBaseline {
    settings: BaselineSettings,
    file: Option<BaselineFile>,
    grid: (usize, usize),
    /// Learnt logits per cell, oldest first; NaN where a cell was held out.
    learnt: VecDeque<Vec<f32>>,
    /// Per cell, the quantile of its learnt logits (NaN while it has fewer than `min_maps`).
    baseline: Vec<f32>,
    hot_since: Vec<Option<Duration>>,
    last_learnt: Option<Duration>,
}

impl SmokeBaseline {
    pub fn new(settings: BaselineSettings) -> SmokeBaseline {
        SmokeBaseline { settings, file: None, grid: (0, 0), learnt: VecDeque::new(), baseline: Vec::new(), hot_since: Vec::new(), last_learnt: None }
    }

    /// Keeps the learnt maps in `file` from now on, first taking up what it holds (unless they
    /// were learnt with another model). A file that cannot be read is an error naming it; either
    /// way the baseline then starts empty and the file is rewritten at the next learning.
    pub fn keep_in(&mut self, file: BaselineFile) -> Result<(), String> {
        let restored = match std::fs::read(&file.path) {
            Ok(bytes) => parse_file(&bytes, &file.model).map_err(|e| format!("smoke baseline {}: {e}; starting afresh", file.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("smoke baseline {}: {e}; starting afresh", file.path.display())),
        };
        self.file = Some(file);
        if let Some((grid, maps)) = restored? {
            self.grid = grid;
            self.hot_since = vec![None; grid.0 * grid.1];
            self.learnt = maps.into();
            self.baseline = self.quantiles();
        }
        Ok(())
    }

    /// Which cells of `map` are newly hot: at or above `threshold` and `margin_logit` above
    /// their baseline. Then learns `map` when it is due. A cell with too little learnt is never
    /// newly hot: the first maps only teach.
    pub fn observe(&mut self, map: &Heatmap, threshold: f32, now: Duration) -> Vec<bool> {
        if self.grid != (map.cols, map.rows) {
            *self = SmokeBaseline { file: self.file.take(), ..SmokeBaseline::new(self.settings) };
            self.grid = (map.cols, map.rows);
            self.hot_since = vec![None; map.values.len()];
        }
        let hot: Vec<bool> = map
            .values
            .iter()
            .zip(self.baseline.iter().chain(std::iter::repeat(&f32::NAN)))
            .map(|(&p, &base)| p >= threshold && logit(p) - base >= self.settings.margin_logit)
            .collect();
        for (since, &is_hot) in self.hot_since.iter_mut().zip(&hot) {
            *since = if is_hot { since.or(Some(now)) } else { None };
        }
        if self.last_learnt.is_none_or(|t| now.saturating_sub(t) >= self.settings.interval) {
            self.learn(map, now);
        }
        hot
    }

    /// The stream restarted, and its clock with it: what was learnt stays (the view is the same),
    /// the timing of learning and holding starts again.
    pub fn restart_clock(&mut self) {
        self.last_learnt = None;
        self.hot_since.fill(None);
    }

    fn learn(&mut self, map: &Heatmap, now: Duration) {
        let hold = self.settings.hold;
        let sample = map.values.iter().zip(&self.hot_since).map(|(&p, since)| if since.is_some_and(|s| now.saturating_sub(s) < hold) { f32::NAN } else { logit(p) }).collect();
        self.learnt.push_back(sample);
        while self.learnt.len() > self.settings.maps.max(1) {
            self.learnt.pop_front();
        }
        self.baseline = self.quantiles();
        self.last_learnt = Some(now);
        if let Some(file) = &self.file
            && let Err(e) = write_file(file, self.grid, &self.learnt)
        {
            tracing::warn!(path = %file.path.display(), "cannot keep the smoke baseline: {e}");
        }
    }

    fn quantiles(&self) -> Vec<f32> {
        (0..self.grid.0 * self.grid.1)
            .map(|cell| {
                let mut values: Vec<f32> = self.learnt.iter().map(|m| m[cell]).filter(|v| !v.is_nan()).collect();
                values.sort_by(f32::total_cmp);
                if values.len() < self.settings.min_maps { f32::NAN } else { quantile(&values, QUANTILE) }
            })
            .collect()
    }
}

/// Writes the maps next to `file` and renames them over it: a crash mid-write leaves the old file.
fn write_file(file: &BaselineFile, (cols, rows): (usize, usize), maps: &VecDeque<Vec<f32>>) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(FILE_MAGIC.len() + 64 + maps.len() * cols * rows * 4);
    bytes.extend_from_slice(FILE_MAGIC);
    bytes.extend_from_slice(file.model.as_bytes());
    bytes.push(b'\n');
    for n in [cols, rows, maps.len()] {
        bytes.extend_from_slice(&(n as u32).to_le_bytes());
    }
    for value in maps.iter().flatten() {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    if let Some(dir) = file.path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = file.path.with_extension("partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, &file.path)
}

/// A grid's (cols, rows) and learnt maps.
type LearntMaps = ((usize, usize), Vec<Vec<f32>>);

/// The grid and maps a baseline file holds; `None` when they were learnt with another model.
fn parse_file(bytes: &[u8], model: &str) -> Result<Option<LearntMaps>, String> {
    let rest = bytes.strip_prefix(FILE_MAGIC).ok_or("not a smoke baseline file")?;
    let end = rest.iter().position(|&b| b == b'\n').ok_or("truncated before the model")?;
    if &rest[..end] != model.as_bytes() {
        return Ok(None);
    }
    let rest = &rest[end + 1..];
    let number = |i: usize| rest.get(4 * i..4 * i + 4).map(|b| u32::from_le_bytes(b.try_into().expect("four bytes")) as usize).ok_or("truncated in the header");
    let (cols, rows, count) = (number(0)?, number(1)?, number(2)?);
    let values = &rest[12..];
    let cells = cols * rows;
    if cells == 0 || values.len() != count * cells * 4 {
        return Err(format!("holds {} bytes of maps, {count} maps of {cols}x{rows} cells need {}", values.len(), count * cells * 4));
    }
    let logits: Vec<f32> = values.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("four bytes"))).collect();
    Ok(Some(((cols, rows), logits.chunks(cells).map(<[f32]>::to_vec).collect())))
}

fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// The `q` quantile of sorted `values`, interpolated between neighbours (numpy's default, as in
/// training); NaN when there are none.
fn quantile(values: &[f32], q: f32) -> f32 {
    let Some(last) = values.len().checked_sub(1) else { return f32::NAN };
    let at = q * last as f32;
    let (below, above) = (at.floor() as usize, at.ceil() as usize);
    values[below] + (values[above] - values[below]) * (at - below as f32)
}

/// The regions that the `hot` cells of `map` whose centres `watched` accepts make (cells touching
/// by sides or corners), best first.
pub fn hot_regions(map: &Heatmap, hot: &[bool], watched: impl Fn(&BBox) -> bool) -> Vec<HotRegion> {
    let watched_hot: Vec<bool> = hot.iter().enumerate().map(|(i, &h)| h && map.cell(i).is_some_and(|b| watched(&b))).collect();
    let mut regions: Vec<HotRegion> = connected(&watched_hot, map.cols)
        .into_iter()
        .map(|cells| {
            let region = cells.iter().filter_map(|&i| map.cell(i)).reduce(|a, b| a.union(&b)).expect("a region has a watched cell");
            HotRegion { region, p: cells.iter().map(|&i| map.values[i]).fold(0.0, f32::max) }
        })
        .collect();
    regions.sort_by(|a, b| b.p.total_cmp(&a.p));
    regions
}

/// Groups of set cells touching each other (sides or corners) in a grid `cols` wide.
fn connected(set: &[bool], cols: usize) -> Vec<Vec<usize>> {
    let mut seen = vec![false; set.len()];
    let mut groups = Vec::new();
    for start in 0..set.len() {
        if !set[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        let mut group = vec![start];
        let mut next = 0;
        while next < group.len() {
            let (row, col) = ((group[next] / cols) as isize, (group[next] % cols) as isize);
            next += 1;
            for (dr, dc) in [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)] {
                let (r, c) = (row + dr, col + dc);
                if r < 0 || c < 0 || c >= cols as isize {
                    continue;
                }
                let i = r as usize * cols + c as usize;
                if i < set.len() && set[i] && !seen[i] {
                    seen[i] = true;
                    group.push(i);
                }
            }
        }
        groups.push(group);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BaselineSettings {
        BaselineSettings { margin_logit: 2.0, interval: Duration::from_secs(60), maps: 60, min_maps: 2, hold: Duration::from_secs(600) }
    }

    /// A 4x3 map, each cell 0.25 x 0.25 of the frame.
    fn map(values: [f32; 12]) -> Heatmap {
        Heatmap { values: values.to_vec(), cols: 4, rows: 3, cell_width: 0.25, cell_height: 0.25 }
    }

    const HAZE: f32 = 0.999;
    const CALM: f32 = 0.01;

    fn scene(smoke_at: &[usize]) -> Heatmap {
        // Cell 0 is haze the model always likes.
        let mut v = [CALM; 12];
        v[0] = HAZE;
        for &i in smoke_at {
            v[i] = 0.998;
        }
        map(v)
    }

    /// Observes `map` and returns its regions over the whole frame.
    fn regions(baseline: &mut SmokeBaseline, map: &Heatmap, now: Duration) -> Vec<HotRegion> {
        let hot = baseline.observe(map, 0.99, now);
        hot_regions(map, &hot, |_| true)
    }

    #[test]
    fn what_the_view_always_scores_is_never_smoke_and_what_is_new_is() {
        let mut baseline = SmokeBaseline::new(settings());
        let smoke = scene(&[5, 6, 10]);
        assert!(regions(&mut baseline, &scene(&[]), Duration::ZERO).is_empty(), "the first map only teaches");
        assert!(regions(&mut baseline, &smoke, Duration::from_secs(1)).is_empty(), "nothing is judged before two maps are learnt");
        regions(&mut baseline, &scene(&[]), Duration::from_secs(60));
        assert!(regions(&mut baseline, &scene(&[]), Duration::from_secs(61)).is_empty(), "haze is what this cell always scores");
        let found = regions(&mut baseline, &smoke, Duration::from_secs(62));
        assert_eq!(found.len(), 1, "touching cells are one region: {found:?}");
        assert_eq!(found[0], HotRegion { region: BBox { x1: 0.25, y1: 0.25, x2: 0.75, y2: 0.75 }, p: 0.998 });
        let hot = baseline.observe(&smoke, 0.99, Duration::from_secs(63));
        let right_half = hot_regions(&smoke, &hot, |b| b.x1 >= 0.5);
        assert_eq!(right_half[0].region, BBox { x1: 0.5, y1: 0.25, x2: 0.75, y2: 0.75 }, "only watched cells count");
    }

    #[test]
    fn a_plume_is_not_learnt_while_it_is_watched_but_what_stays_for_good_is() {
        let mut baseline = SmokeBaseline::new(settings());
        let minute = |m: u64| Duration::from_secs(60 * m);
        regions(&mut baseline, &scene(&[]), minute(0));
        regions(&mut baseline, &scene(&[]), minute(1));
        // Learnt every minute while hot: for the first ten minutes (hold) it is held out.
        for m in 2..=11 {
            assert_eq!(regions(&mut baseline, &scene(&[7]), minute(m)).len(), 1, "minute {m}");
        }
        for m in 12..15 {
            regions(&mut baseline, &scene(&[7]), minute(m));
        }
        assert!(regions(&mut baseline, &scene(&[7]), minute(15)).is_empty(), "after the hold, it became scenery");
    }

    #[test]
    fn a_restarted_stream_keeps_what_was_learnt_and_learns_on() {
        let mut baseline = SmokeBaseline::new(settings());
        regions(&mut baseline, &scene(&[]), Duration::from_secs(3600));
        regions(&mut baseline, &scene(&[]), Duration::from_secs(3660));
        baseline.restart_clock();
        // Stream time starts again from zero: the view is still known, and learning goes on.
        assert_eq!(regions(&mut baseline, &scene(&[7]), Duration::ZERO).len(), 1);
        assert_eq!(baseline.learnt.len(), 3, "the first frame after the restart is learnt");
    }

    #[test]
    fn a_restarted_agent_takes_up_the_baseline_it_kept() {
        let dir = std::env::temp_dir().join(format!("canh-smoke-baseline-{}", std::process::id()));
        let file = |model: &str| BaselineFile { path: dir.join("cam.bin"), model: model.into() };
        let mut before = SmokeBaseline::new(settings());
        before.keep_in(file("model-a")).unwrap();
        regions(&mut before, &scene(&[]), Duration::ZERO);
        regions(&mut before, &scene(&[]), Duration::from_secs(60));

        let mut after = SmokeBaseline::new(settings());
        after.keep_in(file("model-a")).unwrap();
        assert!(regions(&mut after, &scene(&[]), Duration::ZERO).is_empty(), "the haze is still known");
        assert_eq!(regions(&mut after, &scene(&[5]), Duration::from_secs(1)).len(), 1, "judged at once, no new learning needed");

        let mut other_model = SmokeBaseline::new(settings());
        other_model.keep_in(file("model-b")).unwrap();
        assert!(regions(&mut other_model, &scene(&[5]), Duration::ZERO).is_empty(), "another model's baseline is not taken up");

        std::fs::write(dir.join("cam.bin"), b"not a baseline").unwrap();
        let mut damaged = SmokeBaseline::new(settings());
        let e = damaged.keep_in(file("model-a")).unwrap_err();
        assert!(e.contains("cam.bin") && e.contains("not a smoke baseline file"), "{e}");
        regions(&mut damaged, &scene(&[]), Duration::ZERO);
        assert!(SmokeBaseline::new(settings()).keep_in(file("model-a")).is_ok(), "rewritten at the next learning");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn quantiles_interpolate_as_numpy_does() {
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
        assert!((quantile(&[0.0, 10.0], 0.98) - 9.8).abs() < 1e-5);
        assert!(quantile(&[], 0.98).is_nan());
    }
}
