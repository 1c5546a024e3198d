//! The documented message schema (`docs/messages.md`, version 1), as the IOC reads it: a topic
//! tells what a payload must be, and [`validate`] checks the payload against that. New fields are
//! allowed (the schema may grow within a version); missing, mistyped or out-of-range ones are
//! errors naming the field.

// The payload structs exist to be parsed: a field that is only checked is never read again.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::analytics::fire::Stage;
use crate::analytics::{Direction, RuleKind};
use crate::events::{Availability, MessageKind};
use crate::plates::Unread;
use crate::health::quality::Quality;

/// An image reference in an alert or a reply.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageRef {
    pub topic: String,
    pub bytes: usize,
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    /// (Violations) where the vehicle's crop is on the image.
    pub vehicle: Option<Placed>,
}

/// Where a violation's vehicle crop is on its evidence image, pixels.
#[derive(Debug, Clone, Deserialize)]
pub struct Placed {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub scale: f64,
}

impl ImageRef {
    /// The vehicle's crop lies inside the image, at a positive scale.
    fn check(&self) -> Result<(), String> {
        match &self.vehicle {
            // In u64: a sum of two u32 from the message may not fit in one.
            Some(v) if v.x as u64 + v.width as u64 > self.width as u64 || v.y as u64 + v.height as u64 > self.height as u64 => {
                Err(format!("evidence.vehicle: [{}, {}] + {}x{} is outside the {}x{} image", v.x, v.y, v.width, v.height, self.width, self.height))
            }
            Some(v) if v.scale.is_nan() || v.scale <= 0.0 => Err(format!("evidence.vehicle.scale: {} is not positive", v.scale)),
            _ => Ok(()),
        }
    }
}

/// What the store and the summary need from a valid JSON message.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    /// Event or message id, for de-duplication (absent from status, stats and replies).
    pub id: Option<String>,
    pub replayed: bool,
    /// The image it refers to, to check against the JPEG received.
    pub image: Option<ImageRef>,
    /// (Replies) the request answered.
    pub request_id: Option<String>,
    /// A one-line description for the operator.
    pub summary: String,
}

#[derive(Deserialize)]
struct Envelope {
    v: u32,
    #[serde(default)]
    replayed: bool,
}

#[derive(Deserialize)]
struct AgentStatus {
    status: Word<Availability>,
    seq: u64,
}

#[derive(Deserialize)]
struct CameraStatus {
    camera: String,
    state: Word<StateWord>,
    quality: Word<Quality>,
    time: Time,
    fps_in: f64,
    fps_analysed: f64,
    frames_dropped: u64,
    reconnects: u64,
    /// Added within version 1: absent from older agents.
    abandoned_pipelines: Option<u64>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum StateWord {
    Starting,
    Streaming,
    Stalled,
    Reconnecting,
    Ended,
    Error,
    Stopped,
}

#[derive(Deserialize)]
struct Crossing {
    id: Id,
    time: Time,
    camera: String,
    line: String,
    direction: Word<Direction>,
    class: String,
    track_id: u64,
    confidence: Unit,
    stream_time_s: f64,
    #[serde(flatten)]
    plate: PlateFields,
}

/// `plate` (absent, an object, or `null` with `plate_unread` saying why).
#[derive(Deserialize)]
struct PlateFields {
    #[serde(default, deserialize_with = "present")]
    plate: Option<Option<Plate>>,
    plate_unread: Option<Word<Unread>>,
}

/// A field that is there, `null` or not, as `Some`.
fn present<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Plate {
    text: String,
    confidence: Unit,
    format: String,
}

impl PlateFields {
    /// The plate for the operator's summary line; a `null` plate must say why.
    fn check(&self) -> Result<String, String> {
        match (&self.plate, &self.plate_unread) {
            (None, None) => Ok(String::new()),
            (Some(Some(p)), None) => Ok(format!(" plate {} ({:.2})", p.text, p.confidence.0)),
            (Some(Some(_)), Some(_)) => Err("plate_unread: given with a plate".into()),
            (Some(None), Some(reason)) => Ok(format!(" plate unread ({})", reason.text)),
            (Some(None), None) => Err("plate_unread: a null plate says why".into()),
            (None, Some(_)) => Err("plate_unread: given without a plate field".into()),
        }
    }
}

#[derive(Deserialize)]
struct Counts {
    id: Id,
    camera: String,
    start: Time,
    end: Time,
    lines: Vec<LineCounts>,
}

#[derive(Deserialize)]
struct LineCounts {
    id: String,
    #[serde(rename = "in")]
    inbound: BTreeMap<String, u64>,
    #[serde(rename = "out")]
    outbound: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct Violation {
    id: Id,
    #[serde(rename = "type")]
    kind_of_event: Word<AlertWord>,
    alert_id: Option<Id>,
    kind: Word<RuleKind>,
    rule: String,
    time: Time,
    stream_time_s: f64,
    camera: String,
    track_id: u64,
    class: String,
    #[serde(rename = "box")]
    bbox: [Unit; 4],
    confidence: Unit,
    measured: serde_json::Map<String, serde_json::Value>,
    #[serde(flatten)]
    plate: PlateFields,
    evidence: Option<ImageRef>,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum AlertWord {
    Alert,
    End,
}

#[derive(Deserialize)]
struct Fire {
    id: Id,
    incident: Id,
    #[serde(rename = "type")]
    stage: Word<Stage>,
    kind: Word<FireWord>,
    zone: String,
    time: Time,
    stream_time_s: f64,
    camera: String,
    region: [Unit; 4],
    area: Unit,
    evidence: Option<ImageRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum FireWord {
    Fire,
    Smoke,
    OpenBurning,
}

#[derive(Deserialize)]
struct Stats {
    time: Time,
    uptime_s: f64,
    cameras: BTreeMap<String, u64>,
    outbox: OutboxStats,
    mqtt_connected: bool,
}

#[derive(Deserialize)]
struct OutboxStats {
    messages: u64,
    dropped: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct Reply {
    /// Absent or null when the request had no readable id.
    request_id: Option<String>,
    command: String,
    ok: bool,
    error: Option<String>,
    snapshot: Option<ImageRef>,
    evidence: Option<ImageRef>,
}

/// A closed set of words, kept with the word itself for the summary line.
struct Word<T> {
    text: String,
    word: T,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Word<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let word = T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(&text))
            .map_err(|_| serde::de::Error::custom(format!("'{text}' is not one of the documented values")))?;
        Ok(Word { text, word })
    }
}

/// An RFC 3339 time.
struct Time;

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).map_err(|e| serde::de::Error::custom(format!("'{text}' is not an RFC 3339 time: {e}")))?;
        Ok(Time)
    }
}

/// A UUID.
struct Id(String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        uuid::Uuid::parse_str(&text).map_err(|e| serde::de::Error::custom(format!("'{text}' is not a UUID: {e}")))?;
        Ok(Id(text))
    }
}

/// A number in 0..=1.
struct Unit(f64);

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let x = f64::deserialize(d)?;
        if !(0.0..=1.0).contains(&x) {
            return Err(serde::de::Error::custom(format!("{x} is outside 0..1")));
        }
        Ok(Unit(x))
    }
}

/// `payload` parsed as `T`, with the path of the field at fault in the error.
fn parse<T: DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    serde_path_to_error::deserialize(&mut de).map_err(|e| match e.path().to_string().as_str() {
        "." => e.inner().to_string(),
        path => format!("{path}: {}", e.inner()),
    })
}

fn same_camera(topic: &str, payload: &str) -> Result<(), String> {
    if topic == payload { Ok(()) } else { Err(format!("camera: '{payload}' but the topic names '{topic}'")) }
}

/// Checks a JSON payload against the schema of its topic.
pub fn validate(kind: &MessageKind, payload: &[u8]) -> Result<Checked, String> {
    let envelope: Envelope = parse(payload)?;
    let version = kind.schema_version();
    if envelope.v != version {
        return Err(format!("v: schema version {} is not {version}", envelope.v));
    }
    let topic_camera = kind.camera().unwrap_or_default();
    let mut checked = match kind {
        MessageKind::AgentStatus => {
            let s: AgentStatus = parse(payload)?;
            Checked { summary: format!("agent {} (connection {})", s.status.text, s.seq), ..Checked::default() }
        }
        MessageKind::CameraStatus { .. } => {
            let s: CameraStatus = parse(payload)?;
            same_camera(topic_camera, &s.camera)?;
            let reason = s.reason.map(|r| format!(": {r}")).unwrap_or_default();
            let summary = format!("{} {}{reason}, quality {}, {:.1}/{:.1} fps in/analysed, {} dropped, {} reconnects", s.camera, s.state.text, s.quality.text, s.fps_in, s.fps_analysed, s.frames_dropped, s.reconnects);
            Checked { summary, ..Checked::default() }
        }
        MessageKind::Crossing { .. } => {
            let c: Crossing = parse(payload)?;
            same_camera(topic_camera, &c.camera)?;
            let plate = c.plate.check()?;
            let summary = format!("{} line {} {} {} track {} at {:.1} s{plate}", c.camera, c.line, c.direction.text, c.class, c.track_id, c.stream_time_s);
            Checked { id: Some(c.id.0), summary, ..Checked::default() }
        }
        MessageKind::Counts { .. } => {
            let c: Counts = parse(payload)?;
            same_camera(topic_camera, &c.camera)?;
            let lines: Vec<String> = c.lines.iter().map(|l| format!("{} in {} out {}", l.id, l.inbound.values().sum::<u64>(), l.outbound.values().sum::<u64>())).collect();
            Checked { id: Some(c.id.0), summary: format!("{} counts: {}", c.camera, lines.join(", ")), ..Checked::default() }
        }
        MessageKind::Violation { .. } => {
            let v: Violation = parse(payload)?;
            same_camera(topic_camera, &v.camera)?;
            if v.kind_of_event.word == AlertWord::End && v.alert_id.is_none() {
                return Err("alert_id: an end names the alert it closes".into());
            }
            let measured: Vec<String> = v.measured.iter().map(|(k, x)| format!("{k}={x}")).collect();
            let plate = v.plate.check()?;
            if let Some(evidence) = &v.evidence {
                evidence.check()?;
            }
            let summary = format!("{} {} {} rule {} {} track {} at {:.1} s {}{plate}", v.camera, v.kind_of_event.text, v.kind.text, v.rule, v.class, v.track_id, v.stream_time_s, measured.join(" "));
            Checked { id: Some(v.id.0), image: v.evidence, summary, ..Checked::default() }
        }
        MessageKind::Fire { .. } => {
            let f: Fire = parse(payload)?;
            same_camera(topic_camera, &f.camera)?;
            let summary = format!("{} {} {} zone {} incident {} at {:.1} s", f.camera, f.kind.text, f.stage.text, f.zone, f.incident.0, f.stream_time_s);
            Checked { id: Some(f.id.0), image: f.evidence, summary, ..Checked::default() }
        }
        MessageKind::Stats => {
            let s: Stats = parse(payload)?;
            let cameras: Vec<String> = s.cameras.iter().map(|(state, n)| format!("{n} {state}")).collect();
            let dropped: u64 = s.outbox.dropped.values().sum();
            let link = if s.mqtt_connected { "connected" } else { "disconnected" };
            let summary = format!("agent up {:.0} s, cameras {}, outbox {} waiting ({dropped} dropped), {link}", s.uptime_s, cameras.join(" "), s.outbox.messages);
            Checked { summary, ..Checked::default() }
        }
        MessageKind::Reply => {
            let r: Reply = parse(payload)?;
            let outcome = match (r.ok, &r.error) {
                (true, _) => "ok".to_string(),
                (false, Some(e)) => format!("error: {e}"),
                (false, None) => return Err("error: a failed reply says why".into()),
            };
            let summary = format!("reply to {} {}: {outcome}", r.command, r.request_id.as_deref().unwrap_or("(no request id)"));
            Checked { image: r.snapshot.or(r.evidence), request_id: r.request_id, summary, ..Checked::default() }
        }
        MessageKind::Command | MessageKind::Evidence { .. } | MessageKind::Snapshot { .. } => return Err("not a JSON topic".into()),
    };
    checked.replayed = envelope.replayed;
    Ok(checked)
}

/// Checks that `bytes` look like a whole JPEG (start and end markers).
pub fn validate_jpeg(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 4 || bytes[..2] != [0xFF, 0xD8] || bytes[bytes.len() - 2..] != [0xFF, 0xD9] {
        return Err(format!("{} bytes that are not a whole JPEG", bytes.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "canh/v1/site";

    fn kind(topic: &str) -> MessageKind {
        MessageKind::of(&format!("{PREFIX}/{topic}"), PREFIX).unwrap()
    }

    #[test]
    fn topics_map_to_kinds() {
        assert_eq!(kind("cam1/crossing"), MessageKind::Crossing { camera: "cam1".into() });
        assert_eq!(kind("cam1/evidence/abc"), MessageKind::Evidence { camera: "cam1".into(), id: "abc".into() });
        assert_eq!(kind("status"), MessageKind::AgentStatus);
        assert!(MessageKind::of("canh/v1/site/cam1/unknown", PREFIX).unwrap_err().contains("cam1/unknown"));
        assert!(MessageKind::of("other/status", PREFIX).is_err());
    }

    #[test]
    fn a_valid_crossing_passes_and_faults_name_the_field() {
        let good = r#"{"v":1,"id":"01a2054f-86a6-778d-a105-281e92fe50d3","time":"2026-11-22T22:10:27.622Z","camera":"cam1",
            "line":"middle","direction":"in","class":"car","track_id":54,"confidence":0.638,"stream_time_s":18.101,"new_field":1}"#;
        let checked = validate(&kind("cam1/crossing"), good.as_bytes()).unwrap();
        assert_eq!(checked.id.as_deref(), Some("01a2054f-86a6-778d-a105-281e92fe50d3"));
        assert!(checked.summary.contains("line middle in car"), "{}", checked.summary);
        let cases = [
            (good.replace("\"in\"", "\"sideways\""), "direction"),
            (good.replace("0.638", "1.5"), "confidence"),
            (good.replace("\"track_id\":54,", ""), "track_id"),
            (good.replace("2026-11-22T22:10:27.622Z", "yesterday"), "time"),
            (good.replace("\"v\":1", "\"v\":2"), "schema version 2"),
            (good.replace("01a2054f-86a6", "not-a-uuid"), "id"),
        ];
        for (bad, field) in cases {
            let e = validate(&kind("cam1/crossing"), bad.as_bytes()).unwrap_err();
            assert!(e.contains(field), "{e} should name {field}");
        }
        let e = validate(&kind("cam2/crossing"), good.as_bytes()).unwrap_err();
        assert!(e.contains("topic names 'cam2'"), "{e}");
        let read = good.replace("\"new_field\":1", "\"plate\":{\"text\":\"29-B1 787.67\",\"confidence\":0.91,\"format\":\"vn_motorbike\"}");
        assert!(validate(&kind("cam1/crossing"), read.as_bytes()).unwrap().summary.contains("plate 29-B1 787.67"));
        let unread = good.replace("\"new_field\":1", "\"plate\":null,\"plate_unread\":\"too_small\"");
        assert!(validate(&kind("cam1/crossing"), unread.as_bytes()).unwrap().summary.contains("plate unread (too_small)"));
        for (bad, field) in [("\"plate\":null", "plate_unread"), ("\"plate\":null,\"plate_unread\":\"smudged\"", "'smudged'"), ("\"plate\":{\"text\":\"A\"}", "confidence")] {
            let e = validate(&kind("cam1/crossing"), good.replace("\"new_field\":1", bad).as_bytes()).unwrap_err();
            assert!(e.contains(field), "{e} should name {field}");
        }
        assert!(validate(&kind("cam1/crossing"), b"not json").is_err());
    }

    #[test]
    fn a_violation_is_version_2_with_its_vehicle_inside_its_evidence() {
        let good = r#"{"v":2,"id":"01a2334f-bfa8-7269-8f82-03c9fd48d0cc","type":"alert","kind":"wrong_way","rule":"r","time":"2026-12-01T20:33:14.281Z",
            "stream_time_s":1.9,"camera":"cam1","track_id":3,"class":"car","box":[0.579,0.381,0.8,0.566],"confidence":0.399,"measured":{},
            "plate":{"text":"30E-586.70","confidence":0.97,"format":"vn_car"},
            "evidence":{"topic":"t","bytes":20766,"sha256":"5b4f","width":556,"height":234,"vehicle":{"x":416,"y":0,"width":140,"height":66,"scale":1.0}}}"#;
        let checked = validate(&kind("cam1/violation"), good.as_bytes()).unwrap();
        assert!(checked.summary.contains("plate 30E-586.70"), "{}", checked.summary);
        for (bad, field) in [
            (good.replace("\"v\":2", "\"v\":1"), "schema version 1"),
            (good.replace("\"x\":416", "\"x\":420"), "evidence.vehicle"),
            // x + width past u32: not wrapped round to a crop inside the image.
            (good.replace("\"x\":416", "\"x\":4294967295").replace("\"width\":140", "\"width\":1"), "evidence.vehicle"),
            (good.replace("\"scale\":1.0", "\"scale\":0.0"), "evidence.vehicle.scale"),
            (good.replace("\"plate\":{\"text\":\"30E-586.70\",\"confidence\":0.97,\"format\":\"vn_car\"},", "\"plate_unread\":\"too_small\","), "plate_unread"),
        ] {
            let e = validate(&kind("cam1/violation"), bad.as_bytes()).unwrap_err();
            assert!(e.contains(field), "{e} should name {field}");
        }
    }

    #[test]
    fn jpeg_markers_are_checked() {
        assert!(validate_jpeg(&[0xFF, 0xD8, 0, 0xFF, 0xD9]).is_ok());
        assert!(validate_jpeg(b"GIF89a").is_err());
    }
}
