//! Events stage: the messages Canh sends to the IOC, as documented in `docs/messages.md`.
//!
//! Every payload is a JSON object with a schema version `"v"`, except evidence images (JPEG). A
//! [`Message`] pairs a payload with its [`MessageKind`], which gives its topic below the site
//! prefix (`{camera}/crossing`, `{camera}/counts`, `{camera}/violation`, `{camera}/evidence/{id}`,
//! `status`); the publish stage adds the prefix. Times are RFC 3339 UTC with milliseconds. The
//! [`emitter`] turns a camera's findings into these messages.

pub mod archive;
pub mod emitter;
mod kind;

pub use kind::MessageKind;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::analytics::fire::{FireEvent, Scores, Stage};
use crate::analytics::rules::Measured;
use crate::analytics::{Direction, LineCounts, RuleKind, Violation};
use crate::health::SourceState;
use crate::health::quality::Quality;
use crate::plates::{Plate, PlateOutcome, Unread};
use crate::render::Placed;

/// Schema version of every payload but violations; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;
/// Schema version of violations. 2: the evidence image holds the scene and, beside it, the
/// vehicle at the stream's resolution (`evidence.vehicle` says where), so `box` no longer maps
/// onto the whole image; `plate` and `plate_unread` were added.
pub const VIOLATION_SCHEMA_VERSION: u32 = 2;

/// A payload ready to publish.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: MessageKind,
    pub payload: Payload,
    /// When the frame an event was seen in arrived, to measure the event's latency.
    pub origin: Option<std::time::Instant>,
}

impl Message {
    /// The message of an event seen in a frame that arrived at `arrived`.
    pub fn seen_at(self, arrived: std::time::Instant) -> Message {
        Message { origin: Some(arrived), ..self }
    }

    /// Topic below the site prefix, e.g. `cam1/crossing`.
    pub fn topic(&self) -> String {
        self.kind.topic()
    }

    /// Whether the broker keeps it as the topic's last value (status messages).
    pub fn retain(&self) -> bool {
        self.kind.retained()
    }

    /// An image message.
    fn jpeg(kind: MessageKind, jpeg: Vec<u8>) -> Message {
        Message { kind, payload: Payload::Jpeg(jpeg), origin: None }
    }
}

#[derive(Debug, Clone)]
pub enum Payload {
    Json(String),
    /// An evidence image.
    Jpeg(Vec<u8>),
}

impl Payload {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Payload::Json(text) => text.as_bytes(),
            Payload::Jpeg(bytes) => bytes,
        }
    }
}

impl Message {
    fn new(kind: MessageKind, payload: &impl Serialize) -> Message {
        let payload = serde_json::to_string(payload).expect("event payloads are plain data");
        Message { kind, payload: Payload::Json(payload), origin: None }
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-22T21:16:50.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time::OffsetDateTime::from(t).format(&format).expect("UTC times always format")
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `[x1, y1, x2, y2]` inside the frame, to three decimals (a pixel of a 1000-pixel frame).
fn normalized_box(b: crate::types::BBox) -> [f64; 4] {
    [b.x1, b.y1, b.x2, b.y2].map(|c| round3(c.clamp(0.0, 1.0) as f64))
}

#[derive(Debug, Serialize)]
struct CrossingPayload<'a> {
    v: u32,
    id: String,
    time: String,
    camera: &'a str,
    line: &'a str,
    direction: Direction,
    class: &'a str,
    track_id: u64,
    confidence: f64,
    /// Position in the stream (seconds from its start), to find the moment in a recording.
    stream_time_s: f64,
    /// On lines that read plates: the plate, or `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    plate: Option<Option<&'a Plate>>,
    /// Why `plate` is `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    plate_unread: Option<Unread>,
}

/// The `plate` and `plate_unread` fields of a message about a vehicle whose plate was asked for.
fn plate_fields(outcome: Option<&PlateOutcome>) -> (Option<Option<&Plate>>, Option<Unread>) {
    match outcome {
        None => (None, None),
        Some(Ok(plate)) => (Some(Some(plate)), None),
        Some(Err(reason)) => (Some(None), Some(*reason)),
    }
}

/// One vehicle crossing one line.
pub struct CrossingEvent<'a> {
    pub time: SystemTime,
    pub stream_time: Duration,
    pub camera: &'a str,
    pub line: &'a str,
    pub direction: Direction,
    pub class: &'a str,
    pub track_id: u64,
    pub confidence: f32,
    /// The vehicle's plate (or why not), on lines that read plates.
    pub plate: Option<&'a PlateOutcome>,
}

impl CrossingEvent<'_> {
    pub fn message(&self) -> Message {
        let (plate, plate_unread) = plate_fields(self.plate);
        let payload = CrossingPayload {
            v: SCHEMA_VERSION,
            id: uuid::Uuid::now_v7().to_string(),
            time: rfc3339(self.time),
            camera: self.camera,
            line: self.line,
            direction: self.direction,
            class: self.class,
            track_id: self.track_id,
            confidence: round3(self.confidence as f64),
            stream_time_s: round3(self.stream_time.as_secs_f64()),
            plate,
            plate_unread,
        };
        Message::new(MessageKind::Crossing { camera: self.camera.into() }, &payload)
    }
}

/// Where an alert's evidence image is, and how to check it is the one the agent took.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceRef {
    /// Full MQTT topic of the JPEG.
    pub topic: String,
    pub bytes: usize,
    /// Hex SHA-256 of the JPEG.
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    /// Where the vehicle is cut out at the stream's resolution on the image (violations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vehicle: Option<Placed>,
}

impl EvidenceRef {
    /// The reference to an image `message`, published under `prefix`.
    pub fn of(prefix: &str, message: &Message, width: u32, height: u32) -> EvidenceRef {
        let bytes = message.payload.bytes();
        EvidenceRef {
            topic: format!("{prefix}/{}", message.topic()),
            bytes: bytes.len(),
            sha256: sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect(),
            width,
            height,
            vehicle: None,
        }
    }
}

/// The evidence image of violation `id`, on `{camera}/evidence/{id}`.
pub fn evidence_message(camera: &str, id: &str, jpeg: Vec<u8>) -> Message {
    Message::jpeg(MessageKind::Evidence { camera: camera.into(), id: id.into() }, jpeg)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum ViolationType {
    Alert,
    End,
}

#[derive(Debug, Serialize)]
struct ViolationPayload<'a> {
    v: u32,
    id: &'a str,
    #[serde(rename = "type")]
    kind_of_event: ViolationType,
    /// For `end`: the alert it closes.
    #[serde(skip_serializing_if = "Option::is_none")]
    alert_id: Option<&'a str>,
    kind: RuleKind,
    rule: &'a str,
    time: String,
    stream_time_s: f64,
    camera: &'a str,
    track_id: u64,
    class: &'a str,
    /// `[x1, y1, x2, y2]`, normalized.
    #[serde(rename = "box")]
    bbox: [f64; 4],
    confidence: f64,
    measured: &'a Measured,
    /// On rules that read plates: the vehicle's plate, or `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    plate: Option<Option<&'a Plate>>,
    /// Why `plate` is `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    plate_unread: Option<Unread>,
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence: Option<&'a EvidenceRef>,
}

/// One violation (an alert, or the end of a dwell alert).
pub struct ViolationEvent<'a> {
    pub time: SystemTime,
    pub stream_time: Duration,
    pub camera: &'a str,
    pub violation: &'a Violation,
    pub class: &'a str,
    pub evidence: Option<&'a EvidenceRef>,
    /// The vehicle's plate (or why not), on rules that read plates.
    pub plate: Option<&'a PlateOutcome>,
}

impl ViolationEvent<'_> {
    pub fn message(&self) -> Message {
        let v = self.violation;
        let (plate, plate_unread) = plate_fields(self.plate);
        let b = v.object.bbox;
        let payload = ViolationPayload {
            v: VIOLATION_SCHEMA_VERSION,
            id: &v.id,
            kind_of_event: if v.ends.is_some() { ViolationType::End } else { ViolationType::Alert },
            alert_id: v.ends.as_deref(),
            kind: v.kind,
            rule: &v.rule,
            time: rfc3339(self.time),
            stream_time_s: round3(self.stream_time.as_secs_f64()),
            camera: self.camera,
            track_id: v.object.id,
            class: self.class,
            bbox: normalized_box(b),
            confidence: round3(v.object.score as f64),
            measured: &v.measured,
            plate,
            plate_unread,
            evidence: self.evidence,
        };
        Message::new(MessageKind::Violation { camera: self.camera.into() }, &payload)
    }
}

#[derive(Debug, Serialize)]
struct FirePayload<'a> {
    v: u32,
    id: &'a str,
    /// The same for every message about one fire.
    incident: &'a str,
    #[serde(rename = "type")]
    stage: Stage,
    kind: &'a str,
    zone: &'a str,
    time: String,
    stream_time_s: f64,
    camera: &'a str,
    first_evidence: String,
    first_evidence_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmed: Option<String>,
    /// `[x1, y1, x2, y2]`, normalized.
    region: [f64; 4],
    /// Region area, share of the frame.
    area: f64,
    /// Area now over area when confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    growth: Option<f64>,
    scores: Scores,
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence: Option<&'a EvidenceRef>,
}

/// A fire, smoke or open-burning alert, update or all-clear.
pub struct FireMessage<'a> {
    /// The message's id, which is also its evidence image's (`{camera}/evidence/{id}`).
    pub id: &'a str,
    pub time: SystemTime,
    pub stream_time: Duration,
    /// Wall-clock times of the incident's first evidence and of its confirmation, as the
    /// emitter fixed them when it first told of each, so every message of one fire gives the same.
    pub first_evidence: SystemTime,
    pub confirmed: Option<SystemTime>,
    pub camera: &'a str,
    pub event: &'a FireEvent,
    pub evidence: Option<&'a EvidenceRef>,
}

impl FireMessage<'_> {
    pub fn message(&self) -> Message {
        let t = &self.event.transition;
        let b = t.evidence.region;
        let area = b.area() as f64;
        let round = |x: f32| round3(x as f64) as f32;
        let scores = Scores {
            flame: round(t.evidence.scores.flame),
            colour: round(t.evidence.scores.colour),
            flicker: round(t.evidence.scores.flicker),
            smoke: round(t.evidence.scores.smoke),
            smoke_model: t.evidence.scores.smoke_model.map(round),
            detector: t.evidence.scores.detector.map(round),
        };
        let payload = FirePayload {
            v: SCHEMA_VERSION,
            id: self.id,
            incident: &t.incident,
            stage: t.stage,
            kind: self.event.kind,
            zone: &self.event.zone,
            time: rfc3339(self.time),
            stream_time_s: round3(self.stream_time.as_secs_f64()),
            camera: self.camera,
            first_evidence: rfc3339(self.first_evidence),
            first_evidence_s: round3(t.first_evidence.as_secs_f64()),
            confirmed: self.confirmed.map(rfc3339),
            region: normalized_box(b),
            area: round3(area),
            growth: t.confirmed_area.filter(|a| *a > 0.0).map(|a| round3(area / a as f64)),
            scores,
            evidence: self.evidence,
        };
        Message::new(MessageKind::Fire { camera: self.camera.into() }, &payload)
    }
}

#[derive(Debug, Serialize)]
struct CountsPayload<'a> {
    v: u32,
    /// UUID v7, so the IOC can drop a count delivered twice.
    id: String,
    camera: &'a str,
    start: String,
    end: String,
    lines: &'a [LineCounts],
}

/// Counts of one camera over one interval `[start, end)`.
pub fn counts_message(camera: &str, start: SystemTime, end: SystemTime, lines: &[LineCounts]) -> Message {
    let payload = CountsPayload { v: SCHEMA_VERSION, id: uuid::Uuid::now_v7().to_string(), camera, start: rfc3339(start), end: rfc3339(end), lines };
    Message::new(MessageKind::Counts { camera: camera.into() }, &payload)
}

#[derive(Debug, Serialize)]
struct CameraStatusPayload<'a> {
    v: u32,
    camera: &'a str,
    #[serde(flatten)]
    state: &'a SourceState,
    quality: Quality,
    time: String,
    /// Frames per second delivered by the source, and analysed, since the last status.
    fps_in: f64,
    fps_analysed: f64,
    /// Totals since the agent started.
    frames_dropped: u64,
    reconnects: u64,
    abandoned_pipelines: u64,
}

/// A camera's health, retained on `{camera}/status`, for operators' camera lists.
pub struct CameraStatus<'a> {
    pub camera: &'a str,
    pub state: &'a SourceState,
    pub quality: Quality,
    pub time: SystemTime,
    pub fps_in: f64,
    pub fps_analysed: f64,
    pub frames_dropped: u64,
    pub reconnects: u64,
    /// Pipelines whose start or teardown hung and were left behind.
    pub abandoned_pipelines: u64,
}

impl CameraStatus<'_> {
    pub fn message(&self) -> Message {
        let payload = CameraStatusPayload {
            v: SCHEMA_VERSION,
            camera: self.camera,
            state: self.state,
            quality: self.quality,
            time: rfc3339(self.time),
            fps_in: (self.fps_in * 10.0).round() / 10.0,
            fps_analysed: (self.fps_analysed * 10.0).round() / 10.0,
            frames_dropped: self.frames_dropped,
            reconnects: self.reconnects,
            abandoned_pipelines: self.abandoned_pipelines,
        };
        Message::new(MessageKind::CameraStatus { camera: self.camera.into() }, &payload)
    }
}

/// Agent availability on `status`, retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Online,
    /// Sent by the broker as the Last Will when the agent vanishes.
    Offline,
    /// Sent by the agent on a clean shutdown.
    Stopped,
}

#[derive(Debug, Serialize)]
struct StatusPayload {
    v: u32,
    status: Availability,
    /// Connection sequence number: grows with every connection, across restarts, so the IOC can
    /// tell a stale `offline` (Last Will of an older connection) from the current state.
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<String>,
    agent: &'static str,
}

/// The status message of connection `seq`; the Last Will carries no time, since it is
/// registered at connect.
pub fn status_message(status: Availability, time: Option<SystemTime>, seq: u64) -> Message {
    let payload = StatusPayload { v: SCHEMA_VERSION, status, seq, time: time.map(rfc3339), agent: concat!("canh ", env!("CARGO_PKG_VERSION")) };
    Message::new(MessageKind::AgentStatus, &payload)
}

/// The agent's periodic health on `stats`: cameras by state, the outbox and the broker link.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub time: String,
    pub uptime_s: f64,
    /// How many cameras are in each state (`streaming`, `reconnecting`, …).
    pub cameras: BTreeMap<&'static str, u64>,
    /// Frames analysed, all cameras, since the agent started.
    pub frames_analysed: u64,
    pub outbox: OutboxStats,
    pub mqtt_connected: bool,
    pub mqtt_connection_seq: u64,
    /// Messages from the broker refused since the start (oversized, malformed commands and
    /// signal phases, unexpected topics).
    pub messages_refused: u64,
    /// The storage whose writes fail, with why (`null` when writes work).
    pub disk_full: Option<String>,
    /// Conditions an operator should look at, e.g. `outbox_full`.
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct OutboxStats {
    /// Messages waiting for the broker's acknowledgement, and their size.
    pub messages: u64,
    pub bytes: u64,
    /// Messages dropped since the start because the outbox was full.
    pub dropped: BTreeMap<&'static str, u64>,
    /// Messages lost since the start because the disk refused them and memory could not hold
    /// them either.
    pub lost: BTreeMap<&'static str, u64>,
    /// Evidence images not kept for the `evidence` command (the disk refused them).
    pub evidence_lost: u64,
}

impl Stats {
    pub fn message(&self) -> Message {
        #[derive(Serialize)]
        struct Versioned<'a> {
            v: u32,
            #[serde(flatten)]
            stats: &'a Stats,
        }
        Message::new(MessageKind::Stats, &Versioned { v: SCHEMA_VERSION, stats: self })
    }
}

/// The answer to an IOC command, on `reply`.
#[derive(Debug, Serialize)]
pub struct Reply<'a> {
    /// The request's `request_id`; absent when the request had none that could be read.
    pub request_id: Option<&'a str>,
    pub command: &'a str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// (`snapshot`) the image published for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<&'a EvidenceRef>,
    /// (`evidence`) the image published again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<&'a EvidenceRef>,
}

impl Reply<'_> {
    pub fn message(&self) -> Message {
        #[derive(Serialize)]
        struct Versioned<'a> {
            v: u32,
            time: String,
            #[serde(flatten)]
            reply: &'a Reply<'a>,
        }
        Message::new(MessageKind::Reply, &Versioned { v: SCHEMA_VERSION, time: rfc3339(SystemTime::now()), reply: self })
    }
}

/// A JPEG taken at the IOC's request, on `{camera}/snapshot/{request_id}`.
pub fn snapshot_message(camera: &str, request_id: &str, jpeg: Vec<u8>) -> Message {
    Message::jpeg(MessageKind::Snapshot { camera: camera.into(), request_id: request_id.into() }, jpeg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_milliseconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.123Z");
    }

    #[test]
    fn crossing_payload_has_version_and_fields() {
        let event = CrossingEvent {
            time: SystemTime::UNIX_EPOCH,
            stream_time: Duration::from_millis(1500),
            camera: "cam1",
            line: "north",
            direction: Direction::In,
            class: "car",
            track_id: 7,
            confidence: 0.81234,
            plate: None,
        };
        let msg = event.message();
        assert_eq!(msg.topic(), "cam1/crossing");
        let v: serde_json::Value = serde_json::from_slice(msg.payload.bytes()).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["direction"], "in");
        assert_eq!(v["confidence"], 0.812);
        assert_eq!(v["stream_time_s"], 1.5);
        assert_eq!(v["id"].as_str().unwrap().len(), 36);
    }
}
