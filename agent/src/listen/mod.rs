//! `canh listen`: the reference IOC consumer. It subscribes to a site's topics, validates every
//! message against the documented schema ([`schema`]), drops duplicates by event id, stores
//! events in SQLite and images on disk ([`store`]), and prints one line per message. It is what
//! an IOC integrator runs first, and what the delivery tests read their results from.
//!
//! Its session is persistent (a stable client id, `clean_session = false`), so a broker that
//! keeps sessions queues messages for it while it is away; the agent's own retries cover the rest.

pub mod schema;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use rumqttc::{Client, Event, Incoming, QoS};
use serde::Serialize;

use crate::publish::MqttConfig;
use schema::{Checked, validate, validate_jpeg};
use crate::events::MessageKind;
use store::{ImageCheck, Store};

pub struct ListenOptions {
    pub mqtt: MqttConfig,
    pub prefix: String,
    pub db: PathBuf,
    /// Forget what was received longer ago than this (checked at start and every hour); `None`
    /// keeps everything.
    pub keep: Option<Duration>,
}

/// How often what is older than `keep` is forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);


/// How long the consumer waits for a message before it looks for a stop again.
const POLL: Duration = Duration::from_millis(250);

/// What a listening session received, printed when it ends.
#[derive(Debug, Default, Serialize)]
pub struct ListenSummary {
    pub events: u64,
    pub duplicates: u64,
    pub images: u64,
    pub invalid: u64,
}

/// What the consumer sends (subscriptions, acknowledgements) is small.
const MAX_OUTGOING_PACKET: usize = 64 * 1024;
/// Images and a little more: the largest message the agent sends is a 40 KiB JPEG. Anything
/// larger is invalid.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// How much of an invalid message is kept in the `invalid` table.
const INVALID_KEPT_BYTES: usize = 4 * 1024;

/// Listens until `stop` is set.
pub fn listen(options: &ListenOptions, stop: Arc<AtomicBool>) -> Result<ListenSummary> {
    let store = Store::open(&options.db)?;
    let client_id = format!("canh-listen-{}", options.prefix.replace('/', "-"));
    let mut mqtt = options.mqtt.options(client_id).map_err(anyhow::Error::msg).context("--broker")?;
    mqtt.set_clean_session(false);
    // One oversized message must not drop the connection (to be delivered again, and drop it
    // again): the consumer reads it and records it as invalid.
    mqtt.set_max_packet_size(crate::publish::MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET);
    let (client, mut connection) = Client::new(mqtt, 100);
    let filter = format!("{}/#", options.prefix);
    let tls_ca = options.mqtt.broker().map_err(anyhow::Error::msg)?.tls.then(|| options.mqtt.ca_file());
    let mut consumer = Consumer { store, prefix: options.prefix.clone(), summary: ListenSummary::default() };
    let mut pruned_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if let Some(keep) = options.keep
            && pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY)
        {
            pruned_at = Some(Instant::now());
            forget_older_than(&consumer.store, keep);
        }
        match connection.recv_timeout(POLL) {
            Err(_) => continue,
            Ok(Ok(Event::Incoming(Incoming::ConnAck(_)))) => {
                tracing::info!(broker = %options.mqtt.url, %filter, "connected");
                // Again on every connect: a broker that lost its sessions has forgotten it.
                client.try_subscribe(filter.as_str(), QoS::AtLeastOnce).context("cannot subscribe")?;
            }
            Ok(Ok(Event::Incoming(Incoming::Publish(publish)))) => {
                let line = consumer.receive(&publish.topic, &publish.payload)?;
                println!("{line}");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                let why = crate::publish::explain_connection_error(&e.to_string(), tls_ca.as_deref());
                tracing::warn!("connection to {}: {why}; retrying in 1 s", options.mqtt.url);
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    let _ = client.try_disconnect();
    Ok(consumer.summary)
}

/// Forgets what the store received longer than `keep` ago. A failure is logged and listening
/// goes on: what is received is still stored.
fn forget_older_than(store: &Store, keep: Duration) {
    // Days before 1970 (a clock set far back): nothing is that old.
    let Some(cutoff) = SystemTime::now().checked_sub(keep).filter(|t| *t >= SystemTime::UNIX_EPOCH) else { return };
    match store.prune(cutoff) {
        Ok((0, 0)) => {}
        Ok((events, images)) => tracing::info!(events, images, keep_days = keep.as_secs() / 86_400, "forgot what was received before the days kept"),
        Err(e) => tracing::error!("cannot forget what was received before the days kept: {e}"),
    }
}

struct Consumer {
    store: Store,
    prefix: String,
    summary: ListenSummary,
}

impl Consumer {
    /// Validates, stores and describes one message. Only a store failure is an error: an invalid
    /// message is recorded and reported, and listening goes on.
    fn receive(&mut self, topic: &str, payload: &[u8]) -> Result<String, store::StoreError> {
        if payload.len() > MAX_MESSAGE_BYTES {
            return self.invalid(topic, &format!("{} bytes, over the {MAX_MESSAGE_BYTES}-byte limit of any message Canh sends", payload.len()), payload);
        }
        let kind = match MessageKind::of(topic, &self.prefix) {
            Ok(kind) => kind,
            Err(e) => return self.invalid(topic, &e, payload),
        };
        match &kind {
            MessageKind::Command => Ok(format!("command {topic} (from the IOC)")),
            MessageKind::Evidence { camera, id } => self.image(topic, &kind, "evidence", camera, id, payload),
            MessageKind::Snapshot { camera, request_id } => self.image(topic, &kind, "snapshots", camera, request_id, payload),
            _ => match validate(&kind, payload) {
                Ok(checked) => self.json(topic, &kind, payload, checked),
                Err(e) => self.invalid(topic, &e, payload),
            },
        }
    }

    fn invalid(&mut self, topic: &str, error: &str, payload: &[u8]) -> Result<String, store::StoreError> {
        self.summary.invalid += 1;
        self.store.invalid(topic, error, &payload[..payload.len().min(INVALID_KEPT_BYTES)])?;
        Ok(format!("INVALID {topic}: {error}"))
    }

    fn json(&mut self, topic: &str, kind: &MessageKind, payload: &[u8], checked: Checked) -> Result<String, store::StoreError> {
        let text = String::from_utf8_lossy(payload);
        let image = match &checked.image {
            Some(image) => describe(self.store.check_image(image)?),
            None => "",
        };
        let replayed = if checked.replayed { " (replayed)" } else { "" };
        let line = format!("{} {}{image}{replayed}", kind.name(), checked.summary);
        match &checked.id {
            None => {
                let key = match &checked.request_id {
                    Some(request) => format!("{topic}/{request}"),
                    None => topic.to_string(),
                };
                self.store.latest(&key, kind.name(), &text)?;
            }
            Some(id) => {
                let camera = kind.camera().unwrap_or_default();
                if !self.store.event(id, kind.name(), camera, topic, &text, checked.replayed, checked.image.as_ref())? {
                    self.summary.duplicates += 1;
                    return Ok(format!("duplicate {} {id}", kind.name()));
                }
                self.summary.events += 1;
            }
        }
        Ok(line)
    }

    fn image(&mut self, topic: &str, kind: &MessageKind, folder: &str, camera: &str, name: &str, jpeg: &[u8]) -> Result<String, store::StoreError> {
        if let Err(e) = validate_jpeg(jpeg).and(file_name_part("camera", camera)).and(file_name_part("id", name)) {
            return self.invalid(topic, &e, jpeg);
        }
        let (path, first) = self.store.image(topic, kind.name(), folder, camera, name, jpeg)?;
        if !first {
            self.summary.duplicates += 1;
            return Ok(format!("duplicate {} {camera}/{name}", kind.name()));
        }
        self.summary.images += 1;
        // Usually the image comes first; when its event came before, check it now.
        let check = match self.store.reference_to(topic)? {
            Some((event, reference)) => format!(" for {event}{}", describe(self.store.check_image(&reference)?)),
            None => String::new(),
        };
        Ok(format!("{} {camera}/{name} {} bytes -> {}{check}", kind.name(), jpeg.len(), path.display()))
    }
}

/// Longest camera or id an image's file is named by, in bytes (event ids are 36, request ids
/// at most 64; a file name may have 255).
const MAX_NAME_PART_BYTES: usize = 200;

/// Whether `part` of a topic can name a file or folder as Canh names them (letters, digits, '-'
/// and '_', as camera, event and request ids are): a topic part of 300 characters failed the
/// write and stopped `canh listen`, and `..` would have written beside the evidence folder.
fn file_name_part(what: &str, part: &str) -> Result<(), String> {
    if crate::check::is_plain_id(part, MAX_NAME_PART_BYTES) {
        Ok(())
    } else {
        Err(format!("the topic's {what} is not 1 to {MAX_NAME_PART_BYTES} letters, digits, '-' or '_'"))
    }
}

fn describe(check: ImageCheck) -> &'static str {
    match check {
        ImageCheck::Matches => ", image verified",
        ImageCheck::Differs => ", IMAGE DIFFERS from its reference",
        ImageCheck::Missing => ", image not received yet",
    }
}
