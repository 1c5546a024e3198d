//! The analysis thread's site-wide duties besides frames: carrying out the IOC's commands
//! (snapshot, evidence again, reload) and publishing the agent's `stats`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;

use super::camera::CameraAnalysis;
use crate::control::{self, Command, Rejected, Request};
use crate::events::archive::EvidenceArchive;
use crate::events::{EvidenceRef, Message, OutboxStats, Reply, Stats, evidence_message, rfc3339, snapshot_message};
use crate::health::{AgentHealth, CameraHealth, DROP_CLASSES};
use crate::render::{Evidence, Mark, crop, evidence_jpeg, jpeg_size};
use crate::types::{CameraId, WHOLE_FRAME};

/// A snapshot is refused when the camera's latest frame is older than this: the IOC asked for
/// the scene now, not as it was before the camera went away.
const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(10);

pub struct SiteDuties {
    /// Topic prefix of commands, `{prefix}/cmd/`.
    pub commands_prefix: String,
    pub prefix: String,
    /// Evidence kept for the `evidence` command; shared with the publisher, which keeps it.
    pub archive: Option<Arc<Mutex<EvidenceArchive>>>,
    /// Whether the site has a broker; without one (messages on stdout) its absence is no warning.
    pub broker: bool,
    /// Reload requests (their request ids) for the site runner, which validates the config.
    pub reload_requests: Sender<String>,
    pub health: Arc<AgentHealth>,
    pub stats_interval: Option<Duration>,
    pub started: Instant,
    pub last_stats: Option<Instant>,
}


impl SiteDuties {
    pub fn is_command(&self, topic: &str) -> bool {
        topic.starts_with(&self.commands_prefix)
    }

    /// Carries out one command and answers it; every failure is an error reply.
    pub fn command(&self, topic: &str, payload: &[u8], cameras: &[&CameraAnalysis], events: &Sender<Message>) {
        let request = match control::parse(&self.commands_prefix, topic, payload) {
            Ok(request) => request,
            Err(Rejected { request_id, command, error }) => {
                CameraHealth::count(&self.health.messages_refused);
                tracing::warn!(%topic, "command refused: {error}");
                let reply = Reply { request_id: request_id.as_deref(), command: &command, ok: false, error: Some(error), snapshot: None, evidence: None };
                let _ = events.send(reply.message());
                return;
            }
        };
        let Request { request_id, command } = request;
        tracing::info!(command = command.name(), request = %request_id, "command");
        let image: EvidenceRef;
        let mut reply = Reply { request_id: Some(&request_id), command: command.name(), ok: true, error: None, snapshot: None, evidence: None };
        match &command {
            Command::Snapshot { camera } => match cameras.iter().find(|c| *c.id == **camera) {
                None => reply.error = Some(format!("no camera '{}' at this site", control::shown(camera))),
                Some(camera) => match camera.snapshot(&request_id, &self.prefix) {
                    Ok((message, reference)) => {
                        let _ = events.send(message);
                        image = reference;
                        reply.snapshot = Some(&image);
                    }
                    Err(e) => reply.error = Some(e),
                },
            },
            Command::Evidence { event_id } => match self.resend_evidence(event_id, events) {
                Ok(reference) => {
                    image = reference;
                    reply.evidence = Some(&image);
                }
                Err(e) => reply.error = Some(e),
            },
            // The site runner validates the config and answers.
            Command::Reload => {
                let _ = self.reload_requests.send(request_id.clone());
                return;
            }
        }
        reply.ok = reply.error.is_none();
        if let Some(error) = &reply.error {
            tracing::warn!(command = command.name(), request = %request_id, "command failed: {error}");
        }
        let _ = events.send(reply.message());
    }

    fn resend_evidence(&self, event_id: &str, events: &Sender<Message>) -> Result<EvidenceRef, String> {
        let archive = self.archive.as_ref().ok_or("this agent keeps no evidence (no broker configured)")?;
        let (camera, jpeg) = archive.lock().unwrap_or_else(|p| p.into_inner()).get(event_id).ok_or_else(|| format!("no evidence kept for event '{}'", control::shown(event_id)))?;
        let jpeg = jpeg.map_err(|e| e.to_string())?;
        let size = jpeg_size(&jpeg).map_err(|e| format!("the kept evidence of '{event_id}': {e}"))?;
        let message = evidence_message(&camera, event_id, jpeg);
        let reference = EvidenceRef::of(&self.prefix, &message, size.width as u32, size.height as u32);
        let _ = events.send(message);
        Ok(reference)
    }

    /// Whether `stats` is due at `now`: `stats_interval` has passed since the last.
    pub fn stats_due(&self, now: Instant) -> bool {
        self.stats_interval.is_some_and(|interval| self.last_stats.is_none_or(|at| now.duration_since(at) >= interval))
    }

    /// Publishes `stats` (the caller asked [`Self::stats_due`]).
    /// `ended`: the state of each camera no longer analysed whose source ended or could not run.
    pub fn stats(&mut self, now: Instant, cameras: &[&CameraAnalysis], ended: &BTreeMap<CameraId, &'static str>, events: &Sender<Message>) {
        self.last_stats = Some(now);
        let mut by_state = BTreeMap::new();
        for state in ended.values() {
            *by_state.entry(*state).or_insert(0) += 1;
        }
        for camera in cameras {
            *by_state.entry(camera.health.state().name()).or_insert(0) += 1;
        }
        let h = &self.health;
        let dropped: Vec<u64> = h.outbox_dropped.iter().map(CameraHealth::get).collect();
        let mut warnings = Vec::new();
        if dropped.iter().any(|&n| n > 0) {
            warnings.push("outbox_full".to_string());
        }
        if self.broker && !h.mqtt_connected.load(std::sync::atomic::Ordering::Relaxed) {
            warnings.push("mqtt_disconnected".to_string());
        }
        let disk_full = h.disk_full();
        if disk_full.is_some() {
            warnings.push("disk_full".to_string());
        }
        let lost: Vec<u64> = h.outbox_lost.iter().map(CameraHealth::get).collect();
        let stats = Stats {
            time: rfc3339(SystemTime::now()),
            uptime_s: (now.duration_since(self.started).as_secs_f64() * 10.0).round() / 10.0,
            cameras: by_state,
            frames_analysed: cameras.iter().map(|c| CameraHealth::get(&c.health.frames_analysed)).sum(),
            outbox: OutboxStats {
                messages: CameraHealth::get(&h.outbox_messages),
                bytes: CameraHealth::get(&h.outbox_bytes),
                dropped: DROP_CLASSES.into_iter().zip(dropped).collect(),
                lost: DROP_CLASSES.into_iter().zip(lost).collect(),
                evidence_lost: CameraHealth::get(&h.evidence_lost),
            },
            disk_full,
            mqtt_connected: h.mqtt_connected.load(std::sync::atomic::Ordering::Relaxed),
            messages_refused: CameraHealth::get(&h.messages_refused),
            mqtt_connection_seq: CameraHealth::get(&h.mqtt_connection_seq),
            warnings,
        };
        let _ = events.send(stats.message());
    }
}

/// Snapshots show the scene at the stream's resolution, down to this size on its longer side at
/// most: an operator checking a camera sees what it sees, within the evidence bound.
const SNAPSHOT_MAX_SIDE_PX: u32 = 1280;

impl CameraAnalysis {
    /// A JPEG of the latest analysed frame with the rules' geometry and the tracked vehicles.
    fn snapshot(&self, request_id: &str, prefix: &str) -> Result<(Message, EvidenceRef), String> {
        let Some(last) = &self.last_frame else {
            return Err(format!("camera '{}' has not delivered a frame yet ({})", self.id, self.health.state().name()));
        };
        if last.at.elapsed() > SNAPSHOT_MAX_AGE {
            return Err(format!("camera '{}' has had no frame for {:.0} s ({})", self.id, last.at.elapsed().as_secs_f64(), self.health.state().name()));
        }
        let (mat, _) = crop(&last.frame, WHOLE_FRAME, SNAPSHOT_MAX_SIDE_PX)?;
        let marks: Vec<Mark> = last.objects.iter().map(|o| self.analyzers.mark(o)).collect();
        let caption = format!("snapshot {} {}", self.id, rfc3339(SystemTime::now()));
        let Evidence { jpeg, size, .. } = evidence_jpeg(&mat, &self.analyzers.overlays(), &marks, &caption, None).map_err(|e| e.to_string())?;
        let message = snapshot_message(&self.id, request_id, jpeg);
        let reference = EvidenceRef::of(prefix, &message, size.width as u32, size.height as u32);
        Ok((message, reference))
    }
}
