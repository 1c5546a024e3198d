//! Publish stage: delivers event messages to the IOC. One publisher thread owns the sink; the
//! analysis stage hands it messages through a channel.
//!
//! Two sinks: [`StdoutSink`] prints JSON lines (the default without a broker) and [`MqttSink`]
//! publishes at QoS 1 under the topic prefix through a disk outbox ([`outbox`]), with a retained
//! `online`/`stopped` status and a retained `offline` Last Will.

mod config;
mod mqtt;
mod outbox;
mod tls;

pub use config::{MqttConfig, Secret, topic_prefix};
pub use mqtt::{MAX_INCOMING_PACKET, MqttSink, Subscriptions};
pub use outbox::Outbox;
pub use tls::explain as explain_connection_error;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use base64::prelude::*;

use crate::events::archive::EvidenceArchive;
use crate::events::{Message, MessageKind, Payload};
use crate::health::{AgentHealth, CameraHealth};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("MQTT: {0}")]
    Mqtt(String),
    #[error("stdout: {0}")]
    Io(#[from] std::io::Error),
}

/// Where messages go.
pub trait Sink: Send {
    fn publish(&mut self, message: &Message) -> Result<(), PublishError>;
    /// Called once after the last message, to announce a clean stop and flush.
    fn close(&mut self) -> Result<(), PublishError>;
}

/// JSON lines on stdout: `{"topic": "...", "payload": {...}}`, or for an evidence image
/// `{"topic": "...", "payload_base64": "..."}`.
pub struct StdoutSink {
    prefix: String,
}

impl StdoutSink {
    pub fn new(prefix: String) -> StdoutSink {
        StdoutSink { prefix }
    }
}

impl Sink for StdoutSink {
    fn publish(&mut self, message: &Message) -> Result<(), PublishError> {
        let topic = serde_json::to_string(&format!("{}/{}", self.prefix, message.topic())).expect("strings serialize");
        let mut out = std::io::stdout().lock();
        match &message.payload {
            Payload::Json(json) => writeln!(out, "{{\"topic\":{topic},\"payload\":{json}}}")?,
            Payload::Jpeg(bytes) => writeln!(out, "{{\"topic\":{topic},\"payload_base64\":\"{}\"}}", BASE64_STANDARD.encode(bytes))?,
        }
        out.flush()?;
        Ok(())
    }

    fn close(&mut self) -> Result<(), PublishError> {
        Ok(())
    }
}

/// The publisher thread and the channel feeding it.
pub struct Publisher {
    sender: Sender<Message>,
    thread: JoinHandle<()>,
}

/// The evidence archive, as its failures are named in the agent's health.
const ARCHIVE: &str = "evidence archive";
/// How often an evidence archive whose writes failed is tried again, when no image comes.
const ARCHIVE_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Messages waiting for the sink; the analysis stage blocks when it is full rather than lose events.
const PUBLISH_QUEUE: usize = 10_000;

impl Publisher {
    /// Starts the thread; evidence images are also kept in `archive`, when given, for the IOC's
    /// `evidence` command.
    pub fn spawn(mut sink: Box<dyn Sink>, archive: Option<Arc<Mutex<EvidenceArchive>>>, health: Arc<AgentHealth>) -> std::io::Result<Publisher> {
        let (sender, receiver): (Sender<Message>, Receiver<Message>) = crossbeam_channel::bounded(PUBLISH_QUEUE);
        let thread = std::thread::Builder::new().name("publish".into()).spawn(move || {
            let mut probed = std::time::Instant::now();
            for message in receiver {
                // Nothing else would tell that the archive can write again before the next image.
                if let Some(archive) = &archive
                    && health.storage_failing(ARCHIVE)
                    && probed.elapsed() >= ARCHIVE_PROBE_INTERVAL
                {
                    probed = std::time::Instant::now();
                    if archive.lock().unwrap_or_else(|p| p.into_inner()).writable() {
                        health.set_disk_full(ARCHIVE, None);
                    }
                }
                if let (Some(archive), Payload::Jpeg(jpeg), MessageKind::Evidence { camera, id }) = (&archive, &message.payload, &message.kind) {
                    // A full disk costs the copy kept for the `evidence` command, never the publishing.
                    match archive.lock().unwrap_or_else(|p| p.into_inner()).keep(camera, id, jpeg) {
                        Ok(()) => health.set_disk_full(ARCHIVE, None),
                        Err(e) => {
                            CameraHealth::count(&health.evidence_lost);
                            health.set_disk_full(ARCHIVE, Some(e.to_string()));
                        }
                    }
                }
                match sink.publish(&message) {
                    Ok(()) => {
                        if let Some(origin) = message.origin {
                            health.event_latency_ms.observe(origin.elapsed());
                        }
                    }
                    Err(e) => tracing::error!(topic = %message.topic(), "cannot publish: {e}"),
                }
            }
            if let Err(e) = sink.close() {
                tracing::error!("closing the publisher: {e}");
            }
        })?;
        Ok(Publisher { sender, thread })
    }

    pub fn sender(&self) -> Sender<Message> {
        self.sender.clone()
    }

    /// Publishes what is queued, closes the sink and waits for it. Every other sender must be gone.
    pub fn finish(self) {
        drop(self.sender);
        let _ = self.thread.join();
    }
}
