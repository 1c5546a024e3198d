//! What the smoke model usually says about one camera's view. Haze over a valley, a bright ridge
//! or a cloud bank can score high every day; smoke is a cell scoring well above what it usually
//! scores. Per cell, the baseline is a high quantile of the model's logit over heat maps learnt
//! every `interval` (the last `maps` of them; no cell is judged before `min_maps`). Cells newly
//! hot, and the cells around them, are kept out of learning for `hold` from when they first
//! became hot, so a plume is not learnt as scenery while it is watched, yet something that stays
//! for good (a new roof) becomes scenery in the end. A plume's cells flicker about the threshold
//! and its edges drift from cell to cell: had a cell been learnt whenever it was not hot at that
//! moment, the plume would have been learnt within minutes, cell by cell (on a lookout's
//! time-lapse, its hot cells were gone three frames after the plume appeared). So the `hold` of
//! a cell runs on through the frames where neither it nor a neighbour is hot, and starts again
//! when one is hot after more than an `interval` without: a new plume where a glint came and
//! went is held afresh (a glint that keeps coming back is never learnt; a steady new roof
//! is). The cells where the caller says a fire is confirmed are not learnt at all in its view
//! while it lasts ([`SmokeBaseline::observe`]).
//!
//! A PTZ camera that patrols its presets shows the model several views: one baseline learnt from
//! all of them would take each view's haze for the others' (blind where any view is hazy) and
//! judge a view by cells of another. So each view has its own baseline. A view is known by a
//! thumbnail of the frame ([`super::view::signature`]); on the first still frame after the camera
//! moved (and after a start), the frame's thumbnail is matched against the views known, and a
//! view matching none is new (up to [`MAX_VIEWS`]; the view with the fewest maps learnt, then the
//! one seen longest ago, makes room, unless a fire is confirmed in it). The thumbnail is matched
//! only after a move, never while the camera stands still, because a plume that grows changes
//! the picture too and must be judged by its view's baseline, not start a view of its own. A
//! view's thumbnail is renewed at each map it learns, so it follows the day's light; one seen
//! again much later in other light may not be known again (below) and is then learnt afresh, as
//! a new camera is.
//!
//! In the daemon the learnt maps of every view are kept in a file, rewritten at each learning, so
//! that a restart (a power cut, an update) does not leave the camera without its baselines for
//! the `min_maps` it takes to learn them again.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use crate::detect::Heatmap;
use crate::types::BBox;

/// The quantile of a cell's learnt logits that is its baseline: with an hour of maps a minute
/// apart, about its second-highest, so one odd hour does not blind a cell, nor make it hot.
/// Training chose the model's threshold with the same rule (`training/smoke/train.py`).
const QUANTILE: f32 = 0.98;
/// Views a camera keeps baselines for: a PTZ patrol has a handful of presets.
pub const MAX_VIEWS: usize = 8;
/// A frame whose thumbnail correlates at least this much with a view's is that view. Measured on
/// 400 HPWREN lookout stills: stills of one view taken over a day correlate 0.95 at the median
/// (82 % at 0.9 or more; the thumbnail kept is renewed every learnt map, so a patrol's return
/// minutes later sees far less change), stills of different lookout cameras 0.65 (1 % at 0.9 or
/// more).
const SAME_VIEW: f32 = 0.9;
/// Cells a side a baseline file may hold: a heat map of a frame 16,384 pixels wide at 16 pixels
/// a cell. Anything larger is a damaged file, not a view.
const MAX_GRID_SIDE: usize = 1024;

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

/// A cell kept out of learning: since `since`, the cell or a neighbour hot last at `last`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Held {
    since: Duration,
    last: Duration,
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

/// The first line of a baseline file, then the model; then the number of views as u32, and per
/// view its thumbnail's length and values, cols, rows and maps as u32 and the maps' logits
/// (little-endian u32 and f32).
const FILE_MAGIC: &[u8] = b"canh smoke baseline 2\n";
/// The first format: one view without a thumbnail (cols, rows and maps, then the logits).
const FILE_MAGIC_1: &[u8] = b"canh smoke baseline 1\n";
/// The file is written at most this often (stream time): a baseline learning every frame (a
/// short `smoke_baseline_interval_s`) would otherwise rewrite it several times a second, wearing
/// the box's flash for months; a crash loses what was learnt since, no more (a stop writes it).
const WRITE_EVERY: Duration = Duration::from_secs(30);

/// A camera's baselines, one per view.
pub struct SmokeBaseline {
    settings: BaselineSettings,
    file: Option<BaselineFile>,
    /// When the file was last written (or tried), stream time; whether maps were learnt since.
    written: Option<Duration>,
    unwritten: bool,
    views: Vec<ViewBaseline>,
    /// The view being watched (an index into `views`, which is empty before the first frame).
    current: usize,
    /// Frames observed, for which view was seen longest ago.
    frames: u64,
    /// Whether the last frame observed showed another view than the one before it, or a view
    /// just made (which may take the place, and the index, of one forgotten).
    view_changed: bool,
}

/// One view's baseline.
struct ViewBaseline {
    /// The view's thumbnail; `None` for a view taken up from a file of the first format, which
    /// adopts the first frame's.
    signature: Option<Vec<f32>>,
    grid: (usize, usize),
    /// Learnt logits per cell, oldest first; NaN where a cell was held out.
    learnt: VecDeque<Vec<f32>>,
    /// Per cell, the quantile of its learnt logits (NaN while it has fewer than `min_maps`).
    baseline: Vec<f32>,
    /// Per cell, since when it has been held out of learning, and when it or a neighbour was last
    /// hot.
    held: Vec<Option<Held>>,
    /// When the last frame was observed.
    last_frame: Option<Duration>,
    last_learnt: Option<Duration>,
    last_seen: u64,
}

impl SmokeBaseline {
    pub fn new(settings: BaselineSettings) -> SmokeBaseline {
        SmokeBaseline { settings, file: None, written: None, unwritten: false, views: Vec::new(), current: 0, frames: 0, view_changed: false }
    }

    /// Keeps the learnt maps in `file` from now on, first taking up what it holds (unless they
    /// were learnt with another model). A file that cannot be read is an error naming it; either
    /// way the baseline then starts empty and the file is rewritten at the next learning.
    pub fn keep_in(&mut self, file: BaselineFile) -> Result<(), String> {
        let restored = match std::fs::read(&file.path) {
            Ok(bytes) => parse_file(&bytes, &file.model).map_err(|e| format!("smoke baseline {}: {e}; starting afresh", file.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("smoke baseline {}: {e}; starting afresh", file.path.display())),
        };
        self.file = Some(file);
        let views = restored?;
        self.views = views.into_iter().map(|v| ViewBaseline::restored(v, &self.settings)).collect();
        self.current = 0;
        Ok(())
    }

    /// Which cells of `map` are newly hot: at or above `threshold` and `margin_logit` above
    /// their view's baseline. Then learns `map` when it is due. A cell with too little learnt is
    /// never newly hot: the first maps only teach. `signature` is the frame's thumbnail; `moved`
    /// says whether the camera moved since the last frame observed. Cells meeting `kept_out`
    /// (confirmed fires, each with the view it burns in) are not learnt in that view, however
    /// long they last: a forest fire's plume that burns for hours is not scenery.
    pub fn observe(&mut self, map: &Heatmap, signature: &[f32], moved: bool, threshold: f32, now: Duration, kept_out: &[(usize, BBox)]) -> Vec<bool> {
        self.frames += 1;
        self.view_changed = false;
        if self.views.is_empty() || moved {
            let (view, new) = self.identify(signature, kept_out);
            self.view_changed = new || view != self.current;
            self.current = view;
        }
        let current = self.current;
        let view = &mut self.views[current];
        view.last_seen = self.frames;
        let (hot, learnt) = view.observe(map, threshold, now, (current, kept_out), &self.settings);
        // A view from a file of the first format adopts the first frame's thumbnail.
        if learnt || view.signature.is_none() {
            view.signature = Some(signature.to_vec());
        }
        self.unwritten |= learnt;
        if self.unwritten && self.written.is_none_or(|at| now.saturating_sub(at) >= WRITE_EVERY) {
            self.written = Some(now);
            self.write();
        }
        hot
    }

    /// The view the last frame observed showed (an index that stays the view's while it is kept).
    pub fn view(&self) -> usize {
        self.current
    }

    /// Whether the last frame observed showed another view than the frame before it, or a view
    /// just made (which may take a forgotten one's place and index).
    pub fn view_changed(&self) -> bool {
        self.view_changed
    }

    /// The stream restarted, and its clock with it: what was learnt stays (the views are the
    /// same), the timing of learning and holding starts again.
    /// Writes the learnt maps to the file, when there is one.
    fn write(&mut self) {
        self.unwritten = false;
        if let Some(file) = &self.file
            && let Err(e) = write_file(file, &self.views)
        {
            tracing::warn!(path = %file.path.display(), "cannot keep the smoke baseline: {e}");
        }
    }

    pub fn restart_clock(&mut self) {
        self.written = None;
        for view in &mut self.views {
            view.last_learnt = None;
            view.held.fill(None);
            view.last_frame = None;
        }
    }

    /// The view `signature` shows: the known view it matches best, a view from an old file that
    /// has no thumbnail yet, or a new one (then `true`). With [`MAX_VIEWS`] kept, a new view takes
    /// the place of the least learnt, then longest unseen, of those no fire is confirmed in
    /// (`kept_out`; of all of them only if every view has one): a burning view's cells would
    /// be kept out of the new view's learning, and the fire's own view forgotten.
    fn identify(&mut self, signature: &[f32], kept_out: &[(usize, BBox)]) -> (usize, bool) {
        let best = self
            .views
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.signature.as_ref().map(|s| (i, correlation(s, signature))))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((i, c)) = best
            && c >= SAME_VIEW
        {
            return (i, false);
        }
        if let Some(i) = self.views.iter().position(|v| v.signature.is_none()) {
            return (i, false);
        }
        if best.is_some() {
            // Debug, not info: a bus filling a fixed view can look like a new view for a while.
            tracing::debug!(views = self.views.len() + 1, "the smoke model sees a new view; it learns its baseline before judging it");
        }
        let view = ViewBaseline::new(Some(signature.to_vec()));
        if self.views.len() < MAX_VIEWS {
            self.views.push(view);
            (self.views.len() - 1, true)
        } else {
            let burning = |i: usize| kept_out.iter().any(|(view, _)| *view == i);
            let oldest = self.views.iter().enumerate().min_by_key(|(i, v)| (burning(*i), v.learnt.len(), v.last_seen)).map(|(i, _)| i).expect("views are full");
            self.views[oldest] = view;
            (oldest, true)
        }
    }
}

impl ViewBaseline {
    fn new(signature: Option<Vec<f32>>) -> ViewBaseline {
        ViewBaseline { signature, grid: (0, 0), learnt: VecDeque::new(), baseline: Vec::new(), held: Vec::new(), last_frame: None, last_learnt: None, last_seen: 0 }
    }

    fn restored(stored: StoredView, settings: &BaselineSettings) -> ViewBaseline {
        let (grid, maps) = stored.maps;
        let mut view = ViewBaseline { grid, held: vec![None; grid.0 * grid.1], learnt: maps.into(), ..ViewBaseline::new(stored.signature) };
        view.baseline = view.quantiles(settings);
        view
    }

    /// The newly hot cells, and whether `map` was learnt (but for the cells meeting the regions of
    /// `kept_out` that are in this view, its index).
    fn observe(&mut self, map: &Heatmap, threshold: f32, now: Duration, kept_out: (usize, &[(usize, BBox)]), settings: &BaselineSettings) -> (Vec<bool>, bool) {
        if self.grid != (map.cols, map.rows) {
            *self = ViewBaseline { grid: (map.cols, map.rows), held: vec![None; map.values.len()], last_seen: self.last_seen, ..ViewBaseline::new(self.signature.take()) };
        }
        let hot: Vec<bool> = map
            .values
            .iter()
            .zip(self.baseline.iter().chain(std::iter::repeat(&f32::NAN)))
            .map(|(&p, &base)| p >= threshold && logit(p) - base >= settings.margin_logit)
            .collect();
        let near_hot = dilated(&hot, map.cols);
        let previous_frame = self.last_frame.replace(now);
        // Quiet in at least one frame, for more than an interval: hot again, it is held afresh.
        let was_quiet = |h: &Held| previous_frame.is_some_and(|p| h.last < p) && now.saturating_sub(h.last) > settings.interval;
        for (held, near) in self.held.iter_mut().zip(near_hot) {
            if near {
                let since = held.filter(|h| !was_quiet(h)).map_or(now, |h| h.since);
                *held = Some(Held { since, last: now });
            } else if held.is_some_and(|h| now.saturating_sub(h.last) >= settings.hold) {
                *held = None;
            }
        }
        let due = self.last_learnt.is_none_or(|t| now.saturating_sub(t) >= settings.interval);
        if due {
            self.learn(map, now, kept_out, settings);
        }
        (hot, due)
    }

    fn learn(&mut self, map: &Heatmap, now: Duration, (this_view, kept_out): (usize, &[(usize, BBox)]), settings: &BaselineSettings) {
        let held = |i: usize| {
            self.held[i].is_some_and(|h| now.saturating_sub(h.since) < settings.hold)
                || map.cell(i).is_some_and(|cell| kept_out.iter().any(|(view, r)| *view == this_view && r.intersection(&cell) > 0.0))
        };
        let sample = map.values.iter().enumerate().map(|(i, &p)| if held(i) { f32::NAN } else { logit(p) }).collect();
        self.learnt.push_back(sample);
        while self.learnt.len() > settings.maps.max(1) {
            self.learnt.pop_front();
        }
        self.baseline = self.quantiles(settings);
        self.last_learnt = Some(now);
    }

    fn quantiles(&self, settings: &BaselineSettings) -> Vec<f32> {
        (0..self.grid.0 * self.grid.1)
            .map(|cell| {
                let mut values: Vec<f32> = self.learnt.iter().map(|m| m[cell]).filter(|v| !v.is_nan()).collect();
                values.sort_by(f32::total_cmp);
                if values.len() < settings.min_maps { f32::NAN } else { quantile(&values, QUANTILE) }
            })
            .collect()
    }
}

/// What was learnt since the last write is kept when the camera stops (a reload, the agent's
/// stop), not only up to the last write.
impl Drop for SmokeBaseline {
    fn drop(&mut self) {
        if self.unwritten {
            self.write();
        }
    }
}

/// Correlation of two thumbnails (each of zero mean and unit norm); 0 when their sizes differ.
fn correlation(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Writes every view's maps to `file`, whole and flushed to the disk.
fn write_file(file: &BaselineFile, views: &[ViewBaseline]) -> std::io::Result<()> {
    let mut bytes = FILE_MAGIC.to_vec();
    bytes.extend_from_slice(file.model.as_bytes());
    bytes.push(b'\n');
    let number = |bytes: &mut Vec<u8>, n: usize| bytes.extend_from_slice(&(n as u32).to_le_bytes());
    number(&mut bytes, views.len());
    for view in views {
        let signature = view.signature.as_deref().unwrap_or_default();
        number(&mut bytes, signature.len());
        bytes.extend(signature.iter().flat_map(|v| v.to_le_bytes()));
        for n in [view.grid.0, view.grid.1, view.learnt.len()] {
            number(&mut bytes, n);
        }
        bytes.extend(view.learnt.iter().flatten().flat_map(|v| v.to_le_bytes()));
    }
    if let Some(dir) = file.path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::files::write_whole(&file.path, &bytes, true)
}

/// A grid's (cols, rows) and learnt maps.
type LearntMaps = ((usize, usize), Vec<Vec<f32>>);

/// A view as a baseline file holds it: its thumbnail and its learnt maps.
struct StoredView {
    signature: Option<Vec<f32>>,
    maps: LearntMaps,
}

/// Reads a baseline file's numbers in order.
struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, bytes: usize, what: &str) -> Result<&[u8], String> {
        if self.rest.len() < bytes {
            return Err(format!("truncated in {what}"));
        }
        let (taken, rest) = self.rest.split_at(bytes);
        self.rest = rest;
        Ok(taken)
    }

    fn number(&mut self, what: &str) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("four bytes")) as usize)
    }

    fn floats(&mut self, count: usize, what: &str) -> Result<Vec<f32>, String> {
        let bytes = self.take(count.checked_mul(4).ok_or_else(|| format!("{what} is too long"))?, what)?;
        Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("four bytes"))).collect())
    }

    /// A grid's cols and rows, its maps' count and their logits.
    fn maps(&mut self) -> Result<LearntMaps, String> {
        let (cols, rows, count) = (self.number("the grid")?, self.number("the grid")?, self.number("the grid")?);
        if !(1..=MAX_GRID_SIDE).contains(&cols) || !(1..=MAX_GRID_SIDE).contains(&rows) {
            return Err(format!("a grid of {cols}x{rows} cells"));
        }
        let cells = cols * rows;
        let logits = self.floats(count.checked_mul(cells).ok_or("the maps are too many")?, "the maps")?;
        Ok(((cols, rows), logits.chunks(cells).map(<[f32]>::to_vec).collect()))
    }
}

/// The views a baseline file holds; none when they were learnt with another model.
fn parse_file(bytes: &[u8], model: &str) -> Result<Vec<StoredView>, String> {
    let (first_format, rest) = match (bytes.strip_prefix(FILE_MAGIC), bytes.strip_prefix(FILE_MAGIC_1)) {
        (Some(rest), _) => (false, rest),
        (None, Some(rest)) => (true, rest),
        (None, None) => return Err("not a smoke baseline file".into()),
    };
    let end = rest.iter().position(|&b| b == b'\n').ok_or("truncated before the model")?;
    if &rest[..end] != model.as_bytes() {
        return Ok(Vec::new());
    }
    let mut reader = Reader { rest: &rest[end + 1..] };
    let views = if first_format {
        vec![StoredView { signature: None, maps: reader.maps()? }]
    } else {
        let count = reader.number("the number of views")?;
        if count > MAX_VIEWS {
            return Err(format!("holds {count} views, more than {MAX_VIEWS}"));
        }
        (0..count)
            .map(|_| {
                let length = reader.number("a view's thumbnail")?;
                let signature = reader.floats(length, "a view's thumbnail")?;
                if signature.iter().any(|v| !v.is_finite()) {
                    return Err("a view's thumbnail holds a value that is not a number".to_string());
                }
                Ok(StoredView { signature: (!signature.is_empty()).then_some(signature), maps: reader.maps()? })
            })
            .collect::<Result<_, String>>()?
    };
    if !reader.rest.is_empty() {
        return Err(format!("{} bytes left over after the maps", reader.rest.len()));
    }
    Ok(views)
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

/// The cells touching cell `i` by a side or a corner, in a grid of `len` cells `cols` wide.
fn neighbours(i: usize, cols: usize, len: usize) -> impl Iterator<Item = usize> {
    let (row, col) = ((i / cols) as isize, (i % cols) as isize);
    [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)].into_iter().filter_map(move |(dr, dc)| {
        let (r, c) = (row + dr, col + dc);
        let j = (r >= 0 && c >= 0 && c < cols as isize).then(|| r as usize * cols + c as usize)?;
        (j < len).then_some(j)
    })
}

/// The cells set in `set` or beside one set, in a grid `cols` wide.
fn dilated(set: &[bool], cols: usize) -> Vec<bool> {
    (0..set.len()).map(|i| set[i] || neighbours(i, cols, set.len()).any(|j| set[j])).collect()
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
            for j in neighbours(group[next], cols, set.len()) {
                if set[j] && !seen[j] {
                    seen[j] = true;
                    group.push(j);
                }
            }
            next += 1;
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

    /// Two views' thumbnails (zero mean, unit norm, uncorrelated).
    const VIEW_A: [f32; 4] = [0.5, 0.5, -0.5, -0.5];
    const VIEW_B: [f32; 4] = [0.5, -0.5, 0.5, -0.5];

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

    fn minute(m: u64) -> Duration {
        Duration::from_secs(60 * m)
    }

    /// A baseline that learnt the calm view (but for its hazy cell) at minutes 0 and 1.
    fn calm_baseline() -> SmokeBaseline {
        let mut baseline = SmokeBaseline::new(settings());
        regions(&mut baseline, &scene(&[]), minute(0));
        regions(&mut baseline, &scene(&[]), minute(1));
        baseline
    }

    /// Observes `map` and returns its regions over the whole frame.
    fn regions(baseline: &mut SmokeBaseline, map: &Heatmap, now: Duration) -> Vec<HotRegion> {
        let hot = baseline.observe(map, &VIEW_A, false, 0.99, now, &[]);
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
        let hot = baseline.observe(&smoke, &VIEW_A, false, 0.99, Duration::from_secs(63), &[]);
        let right_half = hot_regions(&smoke, &hot, |b| b.x1 >= 0.5);
        assert_eq!(right_half[0].region, BBox { x1: 0.5, y1: 0.25, x2: 0.75, y2: 0.75 }, "only watched cells count");
    }

    #[test]
    fn a_plume_is_not_learnt_while_it_is_watched_but_what_stays_for_good_is() {
        let mut baseline = calm_baseline();
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
    fn a_plume_flickering_about_the_threshold_is_held_with_the_cells_around_it() {
        let mut baseline = calm_baseline();
        // The plume's edge drifts between cells 6 and 7: each is just under the threshold
        // (0.989, 2 logits above calm) while the other is hot. Cell 5, beside 6, is just under
        // it until minute 10, when the plume spreads into it. Had the cooler cells been learnt,
        // neither 6 nor 7 would be hot by minute 6, nor 5 at minute 10.
        let drifting = |m: u64| {
            let (hot, edge) = if m.is_multiple_of(2) { (6, 7) } else { (7, 6) };
            let mut map = scene(&[hot]);
            map.values[edge] = 0.989;
            map.values[5] = if m < 10 { 0.989 } else { 0.998 };
            map
        };
        for m in 2..=11 {
            let found = regions(&mut baseline, &drifting(m), minute(m));
            assert!(found.iter().any(|r| r.region.x2 >= 0.75), "minute {m}: cell 6 or 7 is hot");
            assert_eq!(found.iter().any(|r| r.region.x1 <= 0.25), m >= 10, "minute {m}: cell 5 hot from minute 10 on");
        }
    }

    #[test]
    fn a_new_plume_where_a_glint_came_and_went_is_held_afresh() {
        let mut baseline = calm_baseline();
        // A glint in cell 7 at minute 2 and minute 8; then a plume there from minute 11, which
        // must be held for its own ten minutes, not what was left of the glint's.
        for m in 2..=20 {
            let there = m == 2 || m == 8 || m >= 11;
            let found = regions(&mut baseline, &scene(if there { &[7] } else { &[] }), minute(m));
            assert_eq!(found.len(), usize::from(there), "minute {m}");
        }
    }

    #[test]
    fn a_confirmed_fire_is_never_learnt_while_it_lasts() {
        let mut baseline = SmokeBaseline::new(settings());
        let confirmed = [(0, BBox { x1: 0.8, y1: 0.3, x2: 0.9, y2: 0.45 })];
        for m in 0..=30 {
            // Suspected at minute 2, confirmed at minute 4.
            let kept_out: &[(usize, BBox)] = if m >= 4 { &confirmed } else { &[] };
            let hot = baseline.observe(&scene(if m < 2 { &[] } else { &[7] }), &VIEW_A, false, 0.99, minute(m), kept_out);
            assert_eq!(hot[7], m >= 2, "minute {m}: cell 7 is where the fire is");
        }
    }

    #[test]
    fn a_restarted_stream_keeps_what_was_learnt_and_learns_on() {
        let mut baseline = SmokeBaseline::new(settings());
        regions(&mut baseline, &scene(&[]), Duration::from_secs(3600));
        regions(&mut baseline, &scene(&[]), Duration::from_secs(3660));
        baseline.restart_clock();
        // Stream time starts again from zero: the view is still known, and learning goes on.
        assert_eq!(regions(&mut baseline, &scene(&[7]), Duration::ZERO).len(), 1);
        assert_eq!(baseline.views[0].learnt.len(), 3, "the first frame after the restart is learnt");
    }

    /// A baseline learning every frame writes its file at once, then at most every 30 s.
    #[test]
    fn the_file_is_written_at_most_every_30_s() {
        let dir = std::env::temp_dir().join(format!("canh-smoke-baseline-often-{}", std::process::id()));
        let path = dir.join("cam.bin");
        let mut baseline = SmokeBaseline::new(BaselineSettings { interval: Duration::from_millis(250), ..settings() });
        baseline.keep_in(BaselineFile { path: path.clone(), model: "model-a".into() }).unwrap();
        let mut written = Vec::new();
        for frame in 0..200u64 {
            let _ = std::fs::remove_file(&path);
            regions(&mut baseline, &scene(&[]), Duration::from_millis(250 * frame));
            if path.exists() {
                written.push(frame);
            }
        }
        assert_eq!(written, vec![0, 120], "at 0 s and 30 s of 50 s learning every frame");
        drop(baseline);
        assert!(path.exists(), "what was learnt since is written when the camera stops");
        std::fs::remove_dir_all(&dir).unwrap();
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

    /// A PTZ patrol between two presets: view A's haze is in cell 0, view B's in cell 11.
    fn preset(view: [f32; 4], smoke_at: &[usize]) -> Heatmap {
        let mut v = [CALM; 12];
        v[if view == VIEW_A { 0 } else { 11 }] = HAZE;
        for &i in smoke_at {
            v[i] = 0.998;
        }
        map(v)
    }

    /// Observes one visit of the patrol to `view` (the camera moved there) and returns its
    /// regions.
    fn visit(baseline: &mut SmokeBaseline, view: [f32; 4], smoke_at: &[usize], minute: u64) -> Vec<HotRegion> {
        let map = preset(view, smoke_at);
        let hot = baseline.observe(&map, &view, true, 0.99, Duration::from_secs(60 * minute), &[]);
        hot_regions(&map, &hot, |_| true)
    }

    #[test]
    fn each_preset_of_a_patrolling_camera_has_its_own_baseline() {
        let mut baseline = SmokeBaseline::new(settings());
        for minute in 0..4 {
            let view = if minute % 2 == 0 { VIEW_A } else { VIEW_B };
            assert!(visit(&mut baseline, view, &[], minute).is_empty(), "minute {minute}: the first maps of each view only teach");
        }
        assert_eq!(baseline.views.len(), 2);
        assert!(visit(&mut baseline, VIEW_A, &[], 4).is_empty(), "view A's haze is A's scenery");
        assert!(visit(&mut baseline, VIEW_B, &[], 5).is_empty(), "view B's haze is B's scenery");
        assert!(baseline.view_changed(), "from A to B");
        visit(&mut baseline, VIEW_B, &[], 5);
        assert!(!baseline.view_changed(), "moved, and back on B");
        // One baseline for both would know cell 11 as hazy and miss a plume there in view A.
        let found = visit(&mut baseline, VIEW_A, &[11], 6);
        assert_eq!(found.iter().map(|r| r.region).collect::<Vec<_>>(), vec![BBox { x1: 0.75, y1: 0.5, x2: 1.0, y2: 0.75 }]);
        // A plume that grows while the camera stands still changes the picture, and stays
        // judged by its view's baseline.
        let grown = preset(VIEW_A, &[5, 6, 9, 10, 11]);
        let hot = baseline.observe(&grown, &VIEW_B, false, 0.99, Duration::from_secs(6 * 60 + 1), &[]);
        assert_eq!(hot_regions(&grown, &hot, |_| true).len(), 1, "still view A");
        assert!(!baseline.view_changed());
        assert_eq!(baseline.views.len(), 2, "no view was added");
    }

    #[test]
    fn a_camera_keeps_at_most_max_views_and_forgets_the_one_seen_longest_ago_unless_a_fire_burns_in_it() {
        let mut baseline = SmokeBaseline::new(settings());
        let thumbnail = |k: usize| -> Vec<f32> {
            // Up to MAX_VIEWS + 1 distinct thumbnails of 36 values.
            let mut v = [-1.0 / 6.0; 36];
            v[k * 3] = 5.0 / 6.0;
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / norm).collect()
        };
        for k in 0..=MAX_VIEWS {
            baseline.observe(&scene(&[]), &thumbnail(k), true, 0.99, Duration::from_secs(k as u64), &[]);
        }
        assert_eq!(baseline.views.len(), MAX_VIEWS);
        assert!(baseline.views.iter().all(|v| v.signature.as_deref() != Some(&thumbnail(0)[..])), "the first view made room");
        assert_eq!((baseline.view(), baseline.view_changed()), (0, true), "the new view in its place");
        // Every view but view 1 learns a second map, view 2 first: view 1 is the least learnt.
        for k in 2..=MAX_VIEWS {
            baseline.observe(&scene(&[]), &thumbnail(k), true, 0.99, Duration::from_secs(60 + k as u64), &[]);
        }
        // A fire is confirmed in view 1: of the others, view 2 was seen longest ago.
        let fire = [(1, BBox { x1: 0.0, y1: 0.0, x2: 0.5, y2: 0.5 })];
        baseline.observe(&scene(&[]), &thumbnail(MAX_VIEWS + 1), true, 0.99, Duration::from_secs(100), &fire);
        assert_eq!(baseline.view(), 2, "the burning view is kept");
        assert_eq!(baseline.views[1].signature.as_deref(), Some(&thumbnail(1)[..]));
    }

    #[test]
    fn a_restarted_agent_takes_up_every_view_and_reads_the_first_format() {
        let dir = std::env::temp_dir().join(format!("canh-smoke-views-{}", std::process::id()));
        let file = BaselineFile { path: dir.join("ptz.bin"), model: "model-a".into() };
        let mut before = SmokeBaseline::new(settings());
        before.keep_in(file.clone()).unwrap();
        for minute in 0..4 {
            visit(&mut before, if minute % 2 == 0 { VIEW_A } else { VIEW_B }, &[], minute);
        }
        let mut after = SmokeBaseline::new(settings());
        after.keep_in(file.clone()).unwrap();
        assert!(visit(&mut after, VIEW_B, &[], 10).is_empty(), "view B's haze is still known");
        assert_eq!(visit(&mut after, VIEW_A, &[11], 11).len(), 1, "view A judged at once");

        // The first format: one view, no thumbnail; the first frame's view adopts it.
        let mut first = FILE_MAGIC_1.to_vec();
        first.extend_from_slice(b"model-a\n");
        for n in [4u32, 3, 2] {
            first.extend_from_slice(&n.to_le_bytes());
        }
        for m in [scene(&[]), scene(&[])] {
            first.extend(m.values.iter().flat_map(|&p| logit(p).to_le_bytes()));
        }
        std::fs::write(&file.path, &first).unwrap();
        let mut old = SmokeBaseline::new(settings());
        old.keep_in(file.clone()).unwrap();
        assert!(regions(&mut old, &scene(&[]), Duration::ZERO).is_empty(), "the haze is known");
        assert_eq!(regions(&mut old, &scene(&[5]), Duration::from_secs(1)).len(), 1);
        assert_eq!(old.views[0].signature.as_deref(), Some(&VIEW_A[..]), "the view adopted the frame's thumbnail");

        first.extend_from_slice(&[0, 0]);
        std::fs::write(&file.path, &first).unwrap();
        let e = SmokeBaseline::new(settings()).keep_in(file.clone()).unwrap_err();
        assert!(e.contains("2 bytes left over"), "{e}");

        // Damaged files of the second format: a huge grid, a thumbnail that is not a number.
        let damaged = |thumbnail: f32, cols: u32| {
            let mut bytes = FILE_MAGIC.to_vec();
            bytes.extend_from_slice(b"model-a\n");
            for n in [1u32, 1] {
                bytes.extend_from_slice(&n.to_le_bytes());
            }
            bytes.extend_from_slice(&thumbnail.to_le_bytes());
            for n in [cols, cols, 0] {
                bytes.extend_from_slice(&n.to_le_bytes());
            }
            std::fs::write(&file.path, &bytes).unwrap();
            SmokeBaseline::new(settings()).keep_in(file.clone())
        };
        assert!(damaged(1.0, 4).is_ok());
        assert!(damaged(1.0, 65536).unwrap_err().contains("a grid of 65536x65536 cells"));
        assert!(damaged(f32::NAN, 4).unwrap_err().contains("not a number"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn quantiles_interpolate_as_numpy_does() {
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), 3.0);
        assert!((quantile(&[0.0, 10.0], 0.98) - 9.8).abs() < 1e-5);
        assert!(quantile(&[], 0.98).is_nan());
    }
}
