//! When fire evidence becomes an alert. Per zone and kind, an [`Incident`] follows the evidence
//! frame by frame: a *run* starts with the first frame showing evidence and lasts while at least
//! `min_fraction` of the analysed frames since then show it (with no gap over `max_gap`). A run of
//! `suspect_after` is `suspected`; of `confirm_after`, with enough flicker for flames (or a
//! detector model's box) and, for smoke, often enough corroborated by the change cue,
//! `confirmed`. Smoke the change cue cannot see (a distant plume, a time-lapse whose light
//! changes from frame to frame) is also `confirmed` once the smoke model has kept finding it at
//! one place (its [`Anchor`]), in `min_fraction` of the frames, for `rooted_confirm_after`: a
//! plume stays rooted where it rises, in the view's own frame (the model judges only a still
//! view), while clouds drift on and a glint goes with the light. That takes minutes, not
//! seconds: a cloud or the sun on a mast can hold its place for as long as a short run lasts.
//! While it goes on, an `update` at most every `update_interval`; once no evidence has been seen
//! for `clear_after`, `cleared`, and no new alert for `cooldown` after that.
//!
//! The times hold in frames as well as seconds: a feed that sends a frame a minute (a lookout's
//! stills) cannot show evidence twice within `suspect_after` nor without a gap of a minute. So
//! each time is at least a few of the feed's own frame intervals ([`FrameClock`]),
//! and such a feed is suspected on its second frame with evidence, confirmed on its fourth.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::types::BBox;

/// The thresholds of one kind of evidence (flames or smoke).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Persistence {
    pub suspect_after: Duration,
    pub confirm_after: Duration,
    /// Share of analysed frames in a run that must show evidence (0..1).
    pub min_fraction: f32,
    /// A run breaks when no frame has shown evidence for this long.
    pub max_gap: Duration,
    /// Mean flicker over the run needed to confirm (0 for smoke).
    pub min_flicker: f32,
    /// Share of the run's evidence frames that another cue corroborated, needed to confirm (0
    /// when nothing needs corroborating).
    pub min_corroborated_share: f32,
    /// How long the smoke model must keep finding smoke at its anchor to confirm it without
    /// corroboration; `None` when nothing confirms that way.
    pub rooted_confirm_after: Option<Duration>,
    pub update_interval: Duration,
    pub clear_after: Duration,
    pub cooldown: Duration,
}

/// What the cues saw in one frame, for one zone and kind.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Scores {
    /// Flame classifier probability (0..1) on the best frame or tile.
    pub flame: f32,
    /// Share of fire-coloured pixels in the region (0..1).
    pub colour: f32,
    /// Share of fire-coloured pixels that changed since the last analysed frame (0..1).
    pub flicker: f32,
    /// Share of the frame covered by the grey-foreground smoke candidate (0..1); 0 when it does
    /// not overlap the smoke model's region.
    pub smoke: f32,
    /// Smoke model probability (0..1) of the best newly hot cell in the region, when smoke is
    /// watched with a smoke model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoke_model: Option<f32>,
    /// Best score of a fire/smoke detector model, when one is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detector: Option<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    pub region: BBox,
    pub scores: Scores,
    /// Whether another cue saw it too (for smoke found by the smoke model: the scene changed
    /// there).
    pub corroborated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Suspected,
    Confirmed,
    Update,
    Cleared,
}

/// A change worth telling the IOC about.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub stage: Stage,
    /// The same for every message about one fire.
    pub incident: String,
    pub first_evidence: Duration,
    pub confirmed_at: Option<Duration>,
    /// The latest evidence (at `cleared`, the last seen).
    pub evidence: Evidence,
    /// Region area when confirmed, to report growth.
    pub confirmed_area: Option<f32>,
}

#[derive(Debug, Clone)]
struct Run {
    start: Duration,
    frames: u32,
    positives: u32,
    flicker_sum: f32,
    corroborations: u32,
    last_positive: Duration,
    last_evidence: Evidence,
    /// Where the smoke model found it first, or where it found it after the first place stopped
    /// holding.
    anchor: Option<Anchor>,
    /// The evidence regions that join the first one since the run began or the anchor moved,
    /// together: where it has been, not where an odd frame put it.
    extent: Option<BBox>,
}

/// Where the smoke model first found smoke in a run: a plume rises there and stays rooted while
/// it grows and drifts; a cloud passes, a ghost of the model hops about. When the model has found
/// it at its anchor in less than `min_fraction` of the frames since (after a few frames: one
/// stray region does not move it), the anchor moves to where the model finds it now (a ghost
/// first, then the plume: the plume is rooted from then on).
#[derive(Debug, Clone, Copy)]
struct Anchor {
    region: BBox,
    since: Duration,
    /// Analysed frames since `since`, and those in which the model found it at `region`.
    frames: u32,
    rooted: u32,
}

impl Anchor {
    fn new(region: BBox, now: Duration) -> Anchor {
        Anchor { region, since: now, frames: 1, rooted: 1 }
    }

    /// Whether the model found it here in `min_fraction` of the frames so far.
    fn holding(&self, min_fraction: f32) -> bool {
        self.rooted as f32 >= min_fraction * self.frames as f32
    }

    /// Whether it has held its place for `after`.
    fn rooted_for(&self, now: Duration, after: Duration, min_fraction: f32) -> bool {
        now.saturating_sub(self.since) >= after && self.holding(min_fraction)
    }
}

impl Run {
    fn new(now: Duration, e: Evidence) -> Run {
        Run {
            start: now,
            frames: 1,
            positives: 1,
            flicker_sum: e.scores.flicker,
            corroborations: u32::from(e.corroborated),
            last_positive: now,
            last_evidence: e,
            anchor: e.scores.smoke_model.map(|_| Anchor::new(e.region, now)),
            extent: Some(e.region),
        }
    }

    /// One more analysed frame, with or without evidence.
    fn observe(&mut self, now: Duration, evidence: Option<Evidence>, min_fraction: f32) {
        self.frames += 1;
        if let Some(anchor) = &mut self.anchor {
            anchor.frames += 1;
        }
        let Some(e) = evidence else { return };
        self.positives += 1;
        self.flicker_sum += e.scores.flicker;
        self.corroborations += u32::from(e.corroborated);
        if e.scores.smoke_model.is_some() {
            match &mut self.anchor {
                Some(anchor) if anchor.region.intersection(&e.region) > 0.0 => anchor.rooted += 1,
                // Over its first few frames one stray region would outweigh it.
                Some(anchor) if anchor.frames < ANCHOR_SETTLE_FRAMES || anchor.holding(min_fraction) => {}
                _ => {
                    // Where it has been is where the old anchor was: it starts again here.
                    self.anchor = Some(Anchor::new(e.region, now));
                    self.extent = None;
                }
            }
        }
        self.last_positive = now;
        self.last_evidence = e;
        self.extent = Some(self.extent.map_or(e.region, |extent| extent.joined(&e.region)));
    }
}

#[derive(Debug, Clone)]
struct Active {
    incident: String,
    confirmed_at: Option<Duration>,
    confirmed_area: Option<f32>,
    last_update: Duration,
}

/// Each time of [`Persistence`] is at least this many of the feed's frame intervals.
const SUSPECT_FRAMES: u32 = 1;
const CONFIRM_FRAMES: u32 = 3;
const GAP_FRAMES: u32 = 2;
const CLEAR_FRAMES: u32 = 3;
/// Frames an anchor keeps its place before it may move.
const ANCHOR_SETTLE_FRAMES: u32 = 3;
/// Frame intervals the feed's own is the median of.
const INTERVALS_KEPT: usize = 5;

/// The feed's own frame interval: the lower median of the last few between analysed frames
/// (one stall among few intervals does not stretch every time). One per camera, for all its
/// incidents.
#[derive(Debug, Clone, Default)]
pub struct FrameClock {
    last_frame: Option<Duration>,
    /// The latest intervals, oldest first.
    intervals: std::collections::VecDeque<Duration>,
}

impl FrameClock {
    /// Notes an analysed frame at stream time `now`; the feed's frame interval so far.
    pub fn tick(&mut self, now: Duration) -> Duration {
        if let Some(last) = self.last_frame.replace(now) {
            if self.intervals.len() == INTERVALS_KEPT {
                self.intervals.pop_front();
            }
            self.intervals.push_back(now.saturating_sub(last));
        }
        let mut sorted: Vec<Duration> = self.intervals.iter().copied().collect();
        sorted.sort();
        sorted.get(sorted.len().saturating_sub(1) / 2).copied().unwrap_or_default()
    }

    /// The stream restarted: the next frame starts afresh.
    pub fn restart(&mut self) {
        self.last_frame = None;
    }
}

/// One zone's incident state for one kind of evidence.
#[derive(Debug, Clone)]
pub struct Incident {
    persistence: Persistence,
    run: Option<Run>,
    active: Option<Active>,
    quiet_until: Duration,
}

impl Incident {
    pub fn new(persistence: Persistence) -> Incident {
        Incident { persistence, run: None, active: None, quiet_until: Duration::ZERO }
    }

    /// The persistence for a feed of `frame` intervals: each time at least a few of them.
    fn persistence_for(&self, frame: Duration) -> Persistence {
        let frames = |n: u32| frame.checked_mul(n).unwrap_or(Duration::MAX);
        let p = self.persistence;
        Persistence {
            suspect_after: p.suspect_after.max(frames(SUSPECT_FRAMES)),
            confirm_after: p.confirm_after.max(frames(CONFIRM_FRAMES)),
            rooted_confirm_after: p.rooted_confirm_after.map(|after| after.max(frames(CONFIRM_FRAMES))),
            max_gap: p.max_gap.max(frames(GAP_FRAMES)),
            clear_after: p.clear_after.max(frames(CLEAR_FRAMES)),
            ..p
        }
    }

    /// Where the evidence of the run under way has been.
    pub fn extent(&self) -> Option<BBox> {
        self.run.as_ref().and_then(|r| r.extent)
    }

    /// The camera looks at another view (a PTZ preset): where the model found smoke before is
    /// not where it finds it now.
    pub fn forget_anchor(&mut self) {
        if let Some(run) = &mut self.run {
            (run.anchor, run.extent) = (None, None);
        }
    }

    /// The stream restarted and its time starts again from zero. An open incident stays open
    /// (the fire did not go out because the camera reconnected), its run counted from now; a
    /// cooldown under way lasts a full `cooldown` from now. Without this, times from before the
    /// restart would keep an incident from clearing, or the zone quiet, for as long as the stream
    /// had run.
    pub fn restart_clock(&mut self) {
        if self.active.is_none() {
            self.run = None;
        }
        if let Some(run) = &mut self.run {
            // One frame's worth of what the run had seen: its mean flicker, at most one
            // corroboration, and no footing yet.
            run.flicker_sum /= run.positives.max(1) as f32;
            run.corroborations = run.corroborations.min(1);
            (run.start, run.last_positive, run.frames, run.positives, run.anchor) = (Duration::ZERO, Duration::ZERO, 1, 1, None);
        }
        if let Some(active) = &mut self.active {
            active.last_update = Duration::ZERO;
        }
        if self.quiet_until > Duration::ZERO {
            self.quiet_until = self.persistence.cooldown;
        }
    }

    /// Feeds one analysed frame at stream time `now`, of a feed whose frames come `frame` apart
    /// ([`FrameClock`]).
    pub fn observe(&mut self, now: Duration, frame: Duration, evidence: Option<Evidence>) -> Option<Transition> {
        let p = self.persistence_for(frame);
        if let Some(run) = &mut self.run {
            run.observe(now, evidence, p.min_fraction);
        } else if let Some(e) = evidence {
            self.run = Some(Run::new(now, e));
        }
        let run = self.run.as_ref()?;
        let gap = now.saturating_sub(run.last_positive);
        let holding = (run.positives as f32) >= p.min_fraction * run.frames as f32 && gap <= p.max_gap;

        if let Some(active) = &mut self.active {
            if gap >= p.clear_after {
                let transition = Transition {
                    stage: Stage::Cleared,
                    incident: active.incident.clone(),
                    first_evidence: run.start,
                    confirmed_at: active.confirmed_at,
                    evidence: run.last_evidence,
                    confirmed_area: active.confirmed_area,
                };
                self.active = None;
                self.run = None;
                self.quiet_until = now + p.cooldown;
                return Some(transition);
            }
            let lasted = now.saturating_sub(run.start);
            // A fire/smoke detector model's word stands in for flicker: it has seen the flames.
            let flickering = run.flicker_sum / run.positives.max(1) as f32 >= p.min_flicker || run.last_evidence.scores.detector.is_some();
            let corroborated = run.corroborations as f32 >= p.min_corroborated_share * run.positives as f32;
            let rooted = p.rooted_confirm_after.zip(run.anchor).is_some_and(|(after, anchor)| anchor.rooted_for(now, after, p.min_fraction));
            let stage = if active.confirmed_at.is_none() && holding && flickering && ((lasted >= p.confirm_after && corroborated) || rooted) {
                active.confirmed_at = Some(now);
                active.confirmed_area = Some(run.last_evidence.region.area());
                Stage::Confirmed
            } else if active.confirmed_at.is_some() && evidence.is_some() && now.saturating_sub(active.last_update) >= p.update_interval {
                Stage::Update
            } else {
                return None;
            };
            active.last_update = now;
            return Some(Transition {
                stage,
                incident: active.incident.clone(),
                first_evidence: run.start,
                confirmed_at: active.confirmed_at,
                evidence: run.last_evidence,
                confirmed_area: active.confirmed_area,
            });
        }

        if !holding {
            // Too sparse or gone: start again from the next frame with evidence.
            self.run = None;
            return None;
        }
        if now.saturating_sub(run.start) >= p.suspect_after && now >= self.quiet_until {
            let incident = uuid::Uuid::now_v7().to_string();
            self.active = Some(Active { incident: incident.clone(), confirmed_at: None, confirmed_area: None, last_update: now });
            return Some(Transition { stage: Stage::Suspected, incident, first_evidence: run.start, confirmed_at: None, evidence: run.last_evidence, confirmed_area: None });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(500);

    fn persistence() -> Persistence {
        Persistence {
            suspect_after: Duration::from_secs(1),
            confirm_after: Duration::from_secs(2),
            min_fraction: 0.6,
            max_gap: Duration::from_secs(2),
            min_flicker: 0.1,
            min_corroborated_share: 0.0,
            rooted_confirm_after: None,
            update_interval: Duration::from_secs(10),
            clear_after: Duration::from_secs(5),
            cooldown: Duration::from_secs(20),
        }
    }

    fn seen(flicker: f32) -> Option<Evidence> {
        Some(Evidence { region: BBox { x1: 0.4, y1: 0.4, x2: 0.6, y2: 0.6 }, scores: Scores { flame: 0.99, colour: 0.2, flicker, ..Default::default() }, corroborated: false })
    }

    /// Feeds a pattern at 2 fps (`#` evidence, `.` none); returns (frame, stage) of each transition.
    fn play(incident: &mut Incident, pattern: &str, flicker: f32, from_frame: u32) -> Vec<(u32, Stage)> {
        pattern
            .chars()
            .enumerate()
            .filter_map(|(i, c)| {
                let f = from_frame + i as u32;
                incident.observe(FRAME * f, FRAME, if c == '#' { seen(flicker) } else { None }).map(|t| (f, t.stage))
            })
            .collect()
    }

    #[test]
    fn a_feed_of_a_frame_a_minute_is_suspected_and_confirmed_within_a_few_frames() {
        let minute = Duration::from_secs(60);
        let mut incident = Incident::new(persistence());
        let mut clock = FrameClock::default();
        let mut got = Vec::new();
        // Smoke from frame 42 on, one frame missing at 45.
        for f in 0..50u32 {
            let evidence = if f >= 42 && f != 45 { seen(0.3) } else { None };
            got.extend(incident.observe(minute * f, clock.tick(minute * f), evidence).map(|t| (f, t.stage)));
        }
        // Confirmed once the run has lasted three frames, the missing one included.
        assert_eq!(got[..2], [(43, Stage::Suspected), (45, Stage::Confirmed)]);
        // Cleared only after three frames without evidence.
        let cleared: Vec<_> = (50..56u32).filter_map(|f| incident.observe(minute * f, clock.tick(minute * f), None).map(|t| (f, t.stage))).collect();
        assert_eq!(cleared, vec![(52, Stage::Cleared)]);
    }

    #[test]
    fn persistent_evidence_is_suspected_then_confirmed_then_updated_then_cleared() {
        let mut incident = Incident::new(persistence());
        // 30 s of fire, then nothing.
        let fire = "#".repeat(60);
        let mut got = play(&mut incident, &fire, 0.3, 0);
        got.extend(play(&mut incident, &".".repeat(20), 0.3, 60));
        assert_eq!(got, vec![(2, Stage::Suspected), (4, Stage::Confirmed), (24, Stage::Update), (44, Stage::Update), (69, Stage::Cleared)]);
    }

    #[test]
    fn a_flash_or_sparse_evidence_raises_nothing() {
        let mut incident = Incident::new(persistence());
        assert!(play(&mut incident, "#.......#.......#.#.....#..", 0.3, 0).is_empty());
        // Two in five frames is under the 60% needed.
        assert!(play(&mut incident, "#...#...#...#...#...", 0.3, 40).is_empty());
    }

    #[test]
    fn smoke_is_confirmed_once_the_change_cue_agrees_often_enough_or_it_stays_rooted_long_enough() {
        let persistence = Persistence { min_flicker: 0.0, min_corroborated_share: 0.3, rooted_confirm_after: Some(Duration::from_secs(10)), ..persistence() };
        let model_at = |x: f32, width: f32, corroborated: bool| {
            Some(Evidence { region: BBox { x1: x, y1: 0.4, x2: x + width, y2: 0.5 }, scores: Scores { smoke_model: Some(0.999), ..Default::default() }, corroborated })
        };
        let stages = |incident: &mut Incident, frames: std::ops::Range<u32>, evidence: &dyn Fn(u32) -> Option<Evidence>| -> Vec<(u32, Stage)> {
            frames.filter_map(|f| incident.observe(FRAME * f, FRAME, evidence(f)).map(|t| (f, t.stage))).collect()
        };
        // The model's region hops between four places (clouds, haze): it only suspects.
        let mut incident = Incident::new(persistence);
        let hopping = |f: u32| 0.1 + 0.2 * (f % 4) as f32;
        assert_eq!(stages(&mut incident, 0..40, &|f| model_at(hopping(f), 0.1, false)), vec![(2, Stage::Suspected)]);
        // The change cue agrees from frame 40 on: at frame 57, on 18 of 58 evidence frames (31 %).
        assert_eq!(stages(&mut incident, 40..80, &|f| model_at(hopping(f), 0.1, true)).first(), Some(&(57, Stage::Confirmed)));
        // A plume that stays where it rose, growing, is confirmed by the model alone after 10 s.
        let mut incident = Incident::new(persistence);
        let growing = stages(&mut incident, 0..30, &|f| model_at(0.4 - 0.01 * f as f32, 0.1 + 0.01 * f as f32, false));
        assert_eq!(growing, vec![(2, Stage::Suspected), (20, Stage::Confirmed)]);
        // Something holding its place for 8 s only (a cloud, a glint) is not.
        let mut incident = Incident::new(persistence);
        let passing = stages(&mut incident, 0..40, &|f| (f < 16).then(|| model_at(0.4, 0.1, false)).flatten());
        assert_eq!(passing, vec![(2, Stage::Suspected), (25, Stage::Cleared)]);
        // A ghost of the model first, then the plume elsewhere: the anchor moves to the plume once
        // the ghost holds less than 60 % of the frames (frame 6), and the plume is confirmed 10 s
        // after that.
        let mut incident = Incident::new(persistence);
        let ghost_then_plume = stages(&mut incident, 0..40, &|f| model_at(if f < 4 { 0.1 } else { 0.6 }, 0.1, false));
        assert_eq!(ghost_then_plume, vec![(2, Stage::Suspected), (26, Stage::Confirmed)]);
        assert_eq!(incident.extent(), model_at(0.6, 0.1, false).map(|e| e.region), "where the plume is, not the ghost");
        // After the camera turned to another view, it starts anew there.
        let mut incident = Incident::new(persistence);
        let mut got = stages(&mut incident, 0..16, &|_| model_at(0.4, 0.1, false));
        incident.forget_anchor();
        got.extend(stages(&mut incident, 16..40, &|_| model_at(0.4, 0.1, false)));
        assert_eq!(got, vec![(2, Stage::Suspected), (36, Stage::Confirmed)]);
        // The change cue alone (no model) is never confirmed: nothing corroborates it.
        let mut incident = Incident::new(persistence);
        let change_only = |_| Some(Evidence { region: BBox { x1: 0.4, y1: 0.4, x2: 0.5, y2: 0.5 }, scores: Scores { smoke: 0.01, ..Default::default() }, corroborated: false });
        assert_eq!(stages(&mut incident, 0..40, &change_only), vec![(2, Stage::Suspected)]);
    }

    #[test]
    fn after_a_stream_restart_an_open_incident_clears_and_a_new_one_is_raised_in_time() {
        let mut incident = Incident::new(persistence());
        // An hour into the stream, a fire is confirmed; then the camera reconnects and stream
        // time starts again from zero, with no more evidence.
        let mut got = play(&mut incident, "######", 0.3, 7200);
        incident.restart_clock();
        got.extend(play(&mut incident, &".".repeat(12), 0.3, 0));
        assert_eq!(got, vec![(7202, Stage::Suspected), (7204, Stage::Confirmed), (10, Stage::Cleared)], "cleared 5 s after the restart");
        // Another restart during the cooldown: it lasts a full 20 s from then, and a fire after
        // it is raised.
        incident.restart_clock();
        assert_eq!(play(&mut incident, &"#".repeat(6), 0.3, 40), vec![(42, Stage::Suspected), (44, Stage::Confirmed)]);
    }

    #[test]
    fn steady_light_without_flicker_stays_suspected_and_clears() {
        let mut incident = Incident::new(persistence());
        let mut got = play(&mut incident, &"#".repeat(20), 0.0, 0);
        got.extend(play(&mut incident, &".".repeat(12), 0.0, 20));
        assert_eq!(got, vec![(2, Stage::Suspected), (29, Stage::Cleared)]);
    }

    #[test]
    fn a_gap_shorter_than_max_gap_keeps_the_run() {
        let mut incident = Incident::new(persistence());
        assert_eq!(play(&mut incident, "##.##", 0.3, 0), vec![(2, Stage::Suspected), (4, Stage::Confirmed)]);
    }

    #[test]
    fn no_new_alert_during_the_cooldown_after_cleared() {
        let mut incident = Incident::new(persistence());
        let mut got = play(&mut incident, "######", 0.3, 0);
        got.extend(play(&mut incident, &".".repeat(10), 0.3, 6));
        // Cleared at frame 15; cooldown 20 s = 40 frames: fire at frames 20-39 raises nothing.
        got.extend(play(&mut incident, &"#".repeat(20), 0.3, 16));
        got.extend(play(&mut incident, &".".repeat(20), 0.3, 36));
        // After the cooldown, a new fire is a new incident.
        got.extend(play(&mut incident, "######", 0.3, 56));
        let stages: Vec<(u32, Stage)> = got;
        assert_eq!(stages, vec![(2, Stage::Suspected), (4, Stage::Confirmed), (15, Stage::Cleared), (58, Stage::Suspected), (60, Stage::Confirmed)]);
    }
}
