//! The emitter: the one place where a camera's findings become messages. A crossing is counted
//! (per interval and in the run's totals) and, on lines that publish crossings, sent; a violation
//! or a fire event gets its evidence image first (the scene, the rule's or zone's geometry and the
//! vehicle or region drawn), then its alert. The counts of each interval go out as `counts`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;
use serde::Serialize;

use super::{CrossingEvent, EvidenceRef, FireMessage, Message, ViolationEvent, counts_message, evidence_message};
use crate::analytics::fire::{FireEvent, Stage};
use crate::analytics::rules::ZONE_TRACK;
use crate::analytics::{CameraAnalyzers, CountsTable, Crossing, Finding, FrameContext, LineCounts, Violation};
use crate::health::CameraHealth;
use crate::plates::Unread;
use crate::plates::watch::{CROP_MAX_SIDE_PX as VEHICLE_MAX_SIDE_PX, PlateWatch, TrackPlate};
use crate::render::{Evidence, Inset, Mark, Overlay, crop, evidence_jpeg};
use crate::types::{BBox, ClassId};
use crate::types::CameraId;

/// One fire message, as a replay summarises it.
#[derive(Debug, Clone, Serialize)]
pub struct FireSummary {
    pub kind: &'static str,
    pub level: Stage,
    pub zone: String,
    /// Position in the clip, seconds.
    pub t_s: f64,
    pub region: [f32; 4],
}

/// Between two readings, a wall clock that moved this much more or less than the monotonic clock
/// was set, not run. A smaller step (NTP steps from a fraction of a second) moves the times in
/// the messages by as little, and the intervals go on as they are.
const CLOCK_SET: Duration = Duration::from_secs(2);

/// By how many seconds the wall clock was set between readings `(last_wall, last_at)` and
/// `(wall, at)` (positive forward), when by more than [`CLOCK_SET`].
fn clock_set_by_s(last_wall: SystemTime, last_at: Instant, wall: SystemTime, at: Instant) -> Option<f64> {
    let ran = at.saturating_duration_since(last_at).as_secs_f64();
    let moved = match wall.duration_since(last_wall) {
        Ok(forward) => forward.as_secs_f64(),
        Err(back) => -back.duration().as_secs_f64(),
    };
    Some(moved - ran).filter(|set| set.abs() > CLOCK_SET.as_secs_f64())
}

/// A camera's emitter, owned by its analysis.
pub struct Emitter {
    camera: CameraId,
    /// Topic prefix, to give alerts the full topic of their evidence.
    prefix: String,
    events: Sender<Message>,
    health: Arc<CameraHealth>,
    /// Counts of the current interval, which started at `interval_start` and lasts
    /// `counts_interval` (none in a replay, which only sums totals).
    interval: CountsTable,
    interval_start: SystemTime,
    counts_interval: Option<Duration>,
    /// The wall clock and the monotonic clock when last read together, to see the wall clock set.
    clocks_read: (SystemTime, Instant),
    totals: CountsTable,
    /// Alerts raised over the whole run, by rule id.
    violations: BTreeMap<String, u64>,
    /// Fire messages by kind and level (`"smoke suspected"`).
    fire_counts: BTreeMap<String, u64>,
    /// Every fire message, in order, when listed (a replay's summary): a service keeps only the
    /// counts, since a confirmed fire's update each minute would grow the list for as long as
    /// the agent runs.
    fire_events: Option<Vec<FireSummary>>,
    /// Wall-clock times of each open fire incident's first evidence and confirmation, fixed in
    /// the first message that tells of each (a replay runs faster than the clock, a live
    /// stream's frames arrive late by varying amounts).
    incidents: BTreeMap<String, (SystemTime, Option<SystemTime>)>,
    /// Lines and rules whose vehicles' plates go in their messages.
    plate_readers: BTreeSet<String>,
}

/// What a camera emitted over a run.
pub struct Emitted {
    pub lines: Vec<LineCounts>,
    pub violations: BTreeMap<String, u64>,
    /// Fire messages by kind and level (`"smoke suspected"`).
    pub fire_counts: BTreeMap<String, u64>,
    /// Every fire message, in order, when the emitter listed them.
    pub fire_events: Vec<FireSummary>,
}

impl Emitter {
    /// An emitter counting on the lines `line_ids`, with an alert count for each of `rule_ids`.
    pub fn new<'a>(
        camera: CameraId,
        prefix: &str,
        line_ids: impl Iterator<Item = &'a str> + Clone,
        rule_ids: impl Iterator<Item = &'a str>,
        counts_interval: Option<Duration>,
        events: Sender<Message>,
        health: Arc<CameraHealth>,
    ) -> Emitter {
        Emitter {
            camera,
            prefix: prefix.to_string(),
            events,
            health,
            interval: CountsTable::new(line_ids.clone()),
            interval_start: SystemTime::now(),
            counts_interval,
            clocks_read: (SystemTime::now(), Instant::now()),
            totals: CountsTable::new(line_ids),
            violations: rule_ids.map(|id| (id.to_string(), 0)).collect(),
            fire_counts: BTreeMap::new(),
            fire_events: None,
            incidents: BTreeMap::new(),
            plate_readers: BTreeSet::new(),
        }
    }

    /// Lists every fire message for [`Emitter::emitted`], not only their counts.
    pub fn list_fire_messages(&mut self) {
        self.fire_events.get_or_insert_with(Vec::new);
    }

    /// The lines and rules (ids) whose messages carry the vehicle's plate.
    pub fn read_plates_on(&mut self, ids: impl Iterator<Item = String>) {
        self.plate_readers.extend(ids);
    }

    /// The plate of `track_id` for a message of line or rule `id`: `None` where that reads no
    /// plates (or the camera reads none, or the class carries none), else the plate or why it is
    /// unread.
    fn plate(&self, id: &str, track_id: u64, class: ClassId, now: Duration, plates: Option<&mut PlateWatch>) -> Option<TrackPlate> {
        let plates = plates.filter(|p| self.plate_readers.contains(id) && track_id != ZONE_TRACK && p.carries_plate(class))?;
        match plates.plate(track_id) {
            Ok(read) => Some(read.unwrap_or_else(|| TrackPlate::unseen(track_id, class, now))),
            Err(e) => {
                tracing::error!(camera = %self.camera, track = track_id, "cannot read the plate: {e}");
                None
            }
        }
    }

    /// Sends a message; the publisher outlives every emitter, so a closed channel only happens
    /// while the site shuts down, when there is nothing left to tell.
    fn send(&self, message: Message) {
        let _ = self.events.send(message);
    }

    /// Turns one frame's findings into messages, in order.
    pub fn emit(&mut self, findings: Vec<Finding>, frame: &FrameContext, scene: &CameraAnalyzers, mut plates: Option<&mut PlateWatch>) {
        for finding in findings {
            match finding {
                Finding::Crossing { crossing, publish } => self.crossing(&crossing, publish, frame, scene, plates.as_deref_mut()),
                Finding::Violation(violation) => self.violation(&violation, frame, scene, plates.as_deref_mut()),
                Finding::Fire(event) => self.fire(&event, frame, scene),
            }
        }
    }

    /// A crossing is stamped with the time its frame arrived, not the time it was analysed, and
    /// counted in the interval that contains that time: so `counts` and the crossings stamped
    /// inside its interval agree, whatever the analysis lag or a broker outage did. A frame
    /// analysed after its interval was sent (a lag longer than the time left in the interval)
    /// is stamped at the start of the current one.
    fn crossing(&mut self, crossing: &Crossing, publish: bool, frame: &FrameContext, scene: &CameraAnalyzers, mut plates: Option<&mut PlateWatch>) {
        if crossing.recount
            && let Some(plates) = plates.as_deref_mut()
        {
            plates.leave(crossing.track_id);
        }
        let class = scene.label(crossing.class);
        let (wall, at) = (SystemTime::now(), Instant::now());
        self.notice_clock_set(wall, at);
        let arrived = wall.checked_sub(at.saturating_duration_since(frame.frame.arrived)).unwrap_or(SystemTime::UNIX_EPOCH);
        self.flush_counts(arrived, false);
        let time = arrived.max(self.interval_start);
        self.interval.add(&crossing.line, crossing.direction, class);
        self.totals.add(&crossing.line, crossing.direction, class);
        CameraHealth::count(&self.health.crossings);
        if !publish {
            return;
        }
        // A track counted again may follow another vehicle than the one whose frames it kept
        // (dropped above): it has shown too little of this one.
        let plate = self.plate(&crossing.line, crossing.track_id, crossing.class, frame.now, plates)
            .map(|p| if crossing.recount { TrackPlate { outcome: Err(Unread::Unsure), ..p } } else { p });
        let event = CrossingEvent {
            time,
            stream_time: frame.now,
            camera: &self.camera,
            line: &crossing.line,
            direction: crossing.direction,
            class,
            track_id: crossing.track_id,
            confidence: crossing.confidence,
            plate: plate.as_ref().map(|p| &p.outcome),
        };
        self.send(event.message().seen_at(frame.frame.arrived));
    }

    /// An alert with its evidence image (first, so it is there when the alert is read), or the
    /// end of one. An alert whose image cannot be made still goes out, without it.
    fn violation(&mut self, violation: &Violation, frame: &FrameContext, scene: &CameraAnalyzers, plates: Option<&mut PlateWatch>) {
        let mut evidence = None;
        let mut plate = None;
        if violation.ends.is_none() {
            plate = self.plate(&violation.rule, violation.object.id, violation.object.class, frame.now, plates);
            *self.violations.entry(violation.rule.clone()).or_default() += 1;
            let summary = violation.measured.summary();
            let caption = format!("{} {} t={:.1}s {summary}", violation.kind.name(), violation.rule, frame.now.as_secs_f32());
            // A zone's alert (a queue) has no vehicle to name: its box is labelled with what it measured.
            let mark = match violation.object.id {
                ZONE_TRACK => Mark { bbox: violation.object.bbox, text: summary.clone(), violator: true },
                _ => Mark { violator: true, ..scene.mark(&violation.object) },
            };
            let vehicle = (violation.object.id != ZONE_TRACK).then_some(violation.object.bbox);
            evidence = self.evidence(&violation.id, &scene.overlays_of(&violation.rule), &mark, &caption, frame, vehicle.map(|v| (v, plate.as_ref())));
            tracing::info!(camera = %self.camera, rule = %violation.rule, kind = violation.kind.name(), track = violation.object.id, measured = %summary, "violation");
        }
        let event = ViolationEvent {
            time: SystemTime::now(),
            stream_time: frame.now,
            camera: &self.camera,
            violation,
            class: scene.label(violation.object.class),
            evidence: evidence.as_ref(),
            plate: plate.as_ref().map(|p| &p.outcome),
        };
        self.send(event.message().seen_at(frame.frame.arrived));
        CameraHealth::count(&self.health.violations);
    }

    /// A fire message, after a JPEG of the frame with the region drawn (not for `cleared`).
    fn fire(&mut self, event: &FireEvent, frame: &FrameContext, scene: &CameraAnalyzers) {
        let t = &event.transition;
        let id = uuid::Uuid::now_v7().to_string();
        let evidence = if t.stage == Stage::Cleared {
            None
        } else {
            let s = t.evidence.scores;
            let mark = Mark { bbox: t.evidence.region, text: format!("{} flame {:.2} smoke {:.3}", event.kind, s.flame, s.smoke), violator: true };
            let caption = format!("{} {:?} zone {} t={:.1}s", event.kind, t.stage, event.zone, frame.now.as_secs_f32());
            self.evidence(&id, &scene.overlays_of(&event.zone), &mark, &caption, frame, None)
        };
        tracing::info!(camera = %self.camera, zone = %event.zone, kind = event.kind, stage = ?t.stage, "fire");
        *self.fire_counts.entry(format!("{} {:?}", event.kind, t.stage).to_lowercase()).or_default() += 1;
        if let Some(list) = &mut self.fire_events {
            let r = t.evidence.region;
            let t_s = super::round3(frame.now.as_secs_f64());
            list.push(FireSummary { kind: event.kind, level: t.stage, zone: event.zone.clone(), t_s, region: [r.x1, r.y1, r.x2, r.y2].map(|v| (v * 1000.0).round() / 1000.0) });
        }
        let time = SystemTime::now();
        // Now, less the stream time since.
        let wall = |at: Duration| time.checked_sub(frame.now.saturating_sub(at)).unwrap_or(time);
        let times = self.incidents.entry(t.incident.clone()).or_insert_with(|| (wall(t.first_evidence), None));
        if times.1.is_none() {
            times.1 = t.confirmed_at.map(wall);
        }
        let (first_evidence, confirmed) = *times;
        if t.stage == Stage::Cleared {
            self.incidents.remove(&t.incident);
        }
        let message = FireMessage { id: &id, time, stream_time: frame.now, first_evidence, confirmed, camera: &self.camera, event, evidence: evidence.as_ref() };
        self.send(message.message().seen_at(frame.frame.arrived));
        CameraHealth::count(&self.health.fire_messages);
    }

    /// Makes and sends an evidence image on `{camera}/evidence/{id}`, with the `vehicle` (its box,
    /// and its plate when one was read) cut out at the stream's resolution; the reference to put
    /// in the alert, or `None` (logged) when the image cannot be made.
    fn evidence(&self, id: &str, overlays: &[Overlay], mark: &Mark, caption: &str, frame: &FrameContext, vehicle: Option<(BBox, Option<&TrackPlate>)>) -> Option<EvidenceRef> {
        let made = frame.image().and_then(|scene| {
            // Only a picture at the camera's resolution adds to the scene; one that cannot be cut
            // out leaves the scene alone rather than the alert without evidence.
            let cut = vehicle.filter(|_| frame.frame.native.is_some()).and_then(|(bbox, _)| match crop(frame.frame, bbox, VEHICLE_MAX_SIDE_PX) {
                Ok(cut) => Some(cut),
                Err(e) => {
                    tracing::warn!(camera = %self.camera, event = %id, "evidence without the vehicle's crop: {e}");
                    None
                }
            });
            let plate = vehicle.and_then(|(_, plate)| plate).and_then(|p| Some((p.image.as_ref()?, p.outcome.as_ref().ok()?.text.as_str())));
            let inset = cut.as_ref().map(|(vehicle, native_per_px)| Inset { vehicle, native_per_px: *native_per_px, plate });
            evidence_jpeg(scene, overlays, std::slice::from_ref(mark), caption, inset.as_ref()).map_err(|e| e.to_string())
        });
        match made {
            Ok(Evidence { jpeg, size, vehicle }) => {
                let message = evidence_message(&self.camera, id, jpeg);
                let reference = EvidenceRef { vehicle, ..EvidenceRef::of(&self.prefix, &message, size.width as u32, size.height as u32) };
                self.send(message);
                Some(reference)
            }
            Err(e) => {
                tracing::error!(camera = %self.camera, event = %id, "no evidence image: {e}");
                None
            }
        }
    }

    /// The periodic report at wall-clock time `wall`, monotonic time `at`: the intervals ended
    /// by then ([`Self::flush_counts`]), once a clock set since is seen to.
    pub fn report_counts(&mut self, wall: SystemTime, at: Instant, force: bool) {
        self.notice_clock_set(wall, at);
        self.flush_counts(wall, force);
    }

    /// Looks at whether the wall clock was set since it was last read (moved more than [`CLOCK_SET`]
    /// against the monotonic clock) out of the intervals it was in: a box without a
    /// battery-backed clock boots with the time it was switched off and NTP steps it days forward
    /// later (one empty `counts` message for every interval in between: 4,320 a camera for three
    /// days of minutes, more than the publisher's queue); a step back before the interval's start
    /// left it starting in the future, and no counts went out until the clock caught up. Then the
    /// interval ends at the last reading before the step (sent unless it counted nothing, as a
    /// stopping camera's part-interval, with all it counted) and the next starts at the new time:
    /// the time skipped was never watched. A step that stays within the interval or the next one
    /// leaves the intervals as they are, aligned.
    fn notice_clock_set(&mut self, wall: SystemTime, at: Instant) {
        let (last_wall, last_at) = std::mem::replace(&mut self.clocks_read, (wall, at));
        let Some(interval) = self.counts_interval else { return };
        let Some(set_by_s) = clock_set_by_s(last_wall, last_at, wall, at) else { return };
        if wall >= self.interval_start && wall < self.interval_end(interval) + interval {
            return;
        }
        tracing::warn!(camera = %self.camera, set_by_s, "the wall clock was set: the counts interval ends at the time before and the next starts at the new time");
        if !self.interval.snapshot().iter().all(LineCounts::is_empty) && last_wall > self.interval_start {
            let lines = self.interval.take();
            self.send(counts_message(&self.camera, self.interval_start, last_wall, &lines));
        }
        self.interval_start = wall;
    }

    /// The end of the current interval: the first multiple of `interval` since the epoch after
    /// its start.
    fn interval_end(&self, interval: Duration) -> SystemTime {
        let since_epoch = self.interval_start.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        SystemTime::UNIX_EPOCH + interval * (since_epoch.as_secs() / interval.as_secs().max(1) + 1) as u32
    }

    /// Sends each interval that has ended by `now` (and the current one too with `force`, unless
    /// it counted nothing), and starts the next. Intervals end on multiples of `counts_interval`
    /// since the epoch, so boxes' counts line up.
    pub fn flush_counts(&mut self, now: SystemTime, force: bool) {
        let Some(interval) = self.counts_interval else { return };
        loop {
            let boundary = self.interval_end(interval);
            let end = match (now >= boundary, force) {
                (true, _) => boundary,
                (false, true) => now,
                (false, false) => return,
            };
            let lines = self.interval.take();
            // A camera that stops sends its part-interval only if it counted something: an
            // empty tail of a second says nothing the interval before did not.
            let empty_tail = now < boundary && lines.iter().all(LineCounts::is_empty);
            if !empty_tail {
                self.send(counts_message(&self.camera, self.interval_start, end, &lines));
            }
            self.interval_start = end;
            if end == now {
                return;
            }
        }
    }

    /// What was emitted over the whole run.
    pub fn emitted(self) -> Emitted {
        Emitted { lines: self.totals.snapshot().to_vec(), violations: self.violations, fire_counts: self.fire_counts, fire_events: self.fire_events.unwrap_or_default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::Direction;
    use crate::events::{Payload, rfc3339};

    const MINUTE: Duration = Duration::from_secs(60);

    /// An emitter counting on line `l` every minute, its interval started at `start_s` since the
    /// epoch and the clocks last read at `read_s` and the monotonic time returned; what it sends.
    fn emitter(start_s: u64, read_s: u64) -> (Emitter, crossbeam_channel::Receiver<Message>, Instant) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut emitter = Emitter::new("cam".into(), "p", ["l"].into_iter(), std::iter::empty(), Some(MINUTE), tx, CameraHealth::new("cam", 5));
        let m0 = Instant::now();
        (emitter.interval_start, emitter.clocks_read) = (at(start_s), (at(read_s), m0));
        (emitter, rx, m0)
    }

    /// The `start`, `end` and count on the way in of each counts message sent.
    fn counts(rx: &crossbeam_channel::Receiver<Message>) -> Vec<(String, String, u64)> {
        rx.try_iter()
            .map(|m| {
                let Payload::Json(json) = m.payload else { panic!("counts are JSON") };
                let v: serde_json::Value = serde_json::from_str(&json).unwrap();
                (v["start"].as_str().unwrap().to_string(), v["end"].as_str().unwrap().to_string(), v["lines"][0]["in"]["car"].as_u64().unwrap_or(0))
            })
            .collect()
    }

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    /// A box that booted with the time it was switched off has its clock stepped three days
    /// forward: one message for what it counted before, none for the 4,320 minutes it never
    /// watched, and the minutes after counted as before.
    #[test]
    fn a_clock_set_days_forward_sends_what_was_counted_not_every_minute_between() {
        let t0 = 1_000_000_020;
        let (mut e, rx, m0) = emitter(t0, t0);
        e.interval.add("l", Direction::In, "car");
        e.report_counts(at(t0 + 5), m0 + Duration::from_secs(5), false);
        let days = 3 * 86_400;
        e.report_counts(at(t0 + days + 6), m0 + Duration::from_secs(6), false);
        assert_eq!(counts(&rx), vec![(rfc3339(at(t0)), rfc3339(at(t0 + 5)), 1)], "what was counted before the step, up to the last report");
        e.interval.add("l", Direction::In, "car");
        e.report_counts(at(t0 + days + 66), m0 + Duration::from_secs(66), false);
        let sent = counts(&rx);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].0, rfc3339(at(t0 + days + 6)), "the next interval starts at the new time");
        assert_eq!(sent[0].2, 1);
    }

    /// A clock set an hour back: the interval does not start in the future, and the counts
    /// go on every minute of the new time.
    #[test]
    fn a_clock_set_back_restarts_the_interval_at_the_new_time() {
        let t0 = 1_000_003_620;
        let (mut e, rx, m0) = emitter(t0, t0 + 10);
        e.report_counts(at(t0 - 3600), m0 + Duration::from_secs(1), false);
        assert!(counts(&rx).is_empty(), "nothing counted before the step");
        e.interval.add("l", Direction::In, "car");
        e.report_counts(at(t0 - 3600 + 70), m0 + Duration::from_secs(71), false);
        let sent = counts(&rx);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!((sent[0].0.as_str(), sent[0].2), (rfc3339(at(t0 - 3600)).as_str(), 1));
    }

    /// A clock set half a minute forward within the interval, or back within it: the intervals
    /// go on as they were, on the minute.
    #[test]
    fn a_clock_set_within_the_interval_keeps_the_intervals_on_the_minute() {
        let t0 = 1_000_000_020;
        let (mut e, rx, m0) = emitter(t0, t0);
        e.interval.add("l", Direction::In, "car");
        e.report_counts(at(t0 + 35), m0 + Duration::from_secs(1), false);
        e.report_counts(at(t0 + 20), m0 + Duration::from_secs(2), false);
        assert!(counts(&rx).is_empty());
        e.report_counts(at(t0 + 61), m0 + Duration::from_secs(43), false);
        assert_eq!(counts(&rx), vec![(rfc3339(at(t0)), rfc3339(at(t0 + 60)), 1)]);
    }

    /// A clock that runs, late reports and NTP's slewing included, is not taken for a step.
    #[test]
    fn a_running_clock_is_not_a_step() {
        let m0 = Instant::now();
        assert_eq!(clock_set_by_s(at(100), m0, at(161), m0 + Duration::from_millis(59_500)), None);
        assert_eq!(clock_set_by_s(at(100), m0, at(99), m0 + Duration::from_millis(10)), None);
        assert!(clock_set_by_s(at(100), m0, at(95), m0 + Duration::from_secs(1)).is_some_and(|s| (s + 6.0).abs() < 1e-6));
    }
}
