//! Events stage: the messages Canh sends to the IOC, as documented in `docs/messages.md`.
//!
//! Every payload is a JSON object with a schema version `"v"`. A [`Message`] pairs a payload with
//! its topic below the site prefix (`{camera}/crossing`, `{camera}/counts`, `status`); the publish
//! stage adds the prefix. Times are RFC 3339 UTC with milliseconds.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::analytics::{Direction, LineCounts};

/// Schema version of every payload; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// A payload ready to publish.
#[derive(Debug, Clone)]
pub struct Message {
    /// Topic below the site prefix, e.g. `cam1/crossing`.
    pub topic: String,
    pub payload: String,
    /// Whether the broker keeps it as the topic's last value (status messages).
    pub retain: bool,
}

impl Message {
    fn new(topic: String, payload: &impl Serialize, retain: bool) -> Message {
        let payload = serde_json::to_string(payload).expect("event payloads are plain data");
        Message { topic, payload, retain }
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
}

impl CrossingEvent<'_> {
    pub fn message(&self) -> Message {
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
        };
        Message::new(format!("{}/crossing", self.camera), &payload, false)
    }
}

#[derive(Debug, Serialize)]
struct CountsPayload<'a> {
    v: u32,
    camera: &'a str,
    start: String,
    end: String,
    lines: &'a [LineCounts],
}

/// Counts of one camera over one interval `[start, end)`.
pub fn counts_message(camera: &str, start: SystemTime, end: SystemTime, lines: &[LineCounts]) -> Message {
    let payload = CountsPayload { v: SCHEMA_VERSION, camera, start: rfc3339(start), end: rfc3339(end), lines };
    Message::new(format!("{camera}/counts"), &payload, false)
}

/// Agent availability on `status`, retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<String>,
    agent: &'static str,
}

/// The status message; the Last Will carries no time, since it is registered at connect.
pub fn status_message(status: Availability, time: Option<SystemTime>) -> Message {
    let payload = StatusPayload { v: SCHEMA_VERSION, status, time: time.map(rfc3339), agent: concat!("canh ", env!("CARGO_PKG_VERSION")) };
    Message::new("status".into(), &payload, true)
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
        };
        let msg = event.message();
        assert_eq!(msg.topic, "cam1/crossing");
        let v: serde_json::Value = serde_json::from_str(&msg.payload).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["direction"], "in");
        assert_eq!(v["confidence"], 0.812);
        assert_eq!(v["stream_time_s"], 1.5);
        assert_eq!(v["id"].as_str().unwrap().len(), 36);
    }
}
