//! MQTT sink over `rumqttc`: at-least-once delivery through the disk [`Outbox`].
//!
//! Every message is stored before it is published and deleted when its PUBACK arrives. rumqttc's
//! `publish()` does not return the packet id, so the link keeps the outbox ids of its publishes in
//! request order and pairs each with the packet id of the next `Outgoing::Publish` event. At most
//! `MAX_IN_FLIGHT` messages are unacknowledged at a time.
//!
//! When the outbox's file system refuses a write (full, failing, read-only) even after making
//! room, the message is held in memory instead ([`Spill`], bounded by [`SPILL_MAX_BYTES`], counts
//! and status dropped first, alerts last) and published from there; every loss is counted in the
//! agent's health, and the outbox is tried again with the next message.
//!
//! One thread owns the connection. When it fails, that thread drops the client with everything
//! rumqttc still held, waits (exponential backoff with jitter: rumqttc has none of its own), and
//! connects afresh; the outbox then sends everything unacknowledged again, in order. The IOC drops
//! the duplicates by event id. On connect it announces `online` (retained) and subscribes to the
//! signal controllers' topics and the IOC's commands.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;
use rumqttc::{Client, Connection, Event, Incoming, LastWill, MqttOptions, Outgoing, QoS};

use super::outbox::Outbox;
use super::{MqttConfig, PublishError, Sink};
use crate::events::{Availability, Message, Reply, status_message};
use crate::health::{AgentHealth, CameraHealth, drop_class};

/// Requests waiting for the event loop inside rumqttc.
const REQUEST_QUEUE: usize = 1_000;
/// Published messages awaiting their PUBACK at any time.
const MAX_IN_FLIGHT: usize = 64;
/// How long a clean shutdown waits for the broker to acknowledge what was published (the agent
/// stops within 10 s of SIGTERM, all told).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest MQTT packet the agent sends: an evidence image (at most 40 KiB) with its topic fits
/// with room to spare. A packet over rumqttc's limit would fail the connection on every retry, so
/// larger messages are refused before they reach it.
const MAX_PACKET: usize = 64 * 1024;
/// Largest packet the client reads: MQTT's own maximum. A smaller limit would let one oversized
/// message on a command or signal topic drop the connection, be delivered again to the
/// persistent session, and drop it again for as long as the broker keeps it; the agent reads it
/// and refuses it itself (the broker's `message_size_limit` keeps such messages off the wire).
pub const MAX_INCOMING_PACKET: usize = 268_435_455;
/// Most stray topics unsubscribed one by one (they come from filters an earlier site file left).
const MAX_STRAYS: usize = 1_000;
/// Largest command or signal payload the agent accepts: a command is a few hundred bytes.
pub const MAX_INBOUND_BYTES: usize = 64 * 1024;
/// An oversized command is read for its `request_id` (to answer it) up to this size.
const MAX_REPLY_READ_BYTES: usize = 1024 * 1024;
/// How long closing waits for the connection's thread to say goodbye to the broker.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Fixed header, topic length and packet id around the topic and payload.
const PACKET_OVERHEAD: usize = 16;
/// The size of a PUBLISH packet of `payload` on `topic` (the full topic, prefix included).
fn packet_size(topic: &str, payload: &[u8]) -> usize {
    topic.len() + payload.len() + PACKET_OVERHEAD
}
const RECONNECT_START: Duration = Duration::from_millis(500);
const RECONNECT_CAP: Duration = Duration::from_secs(30);
/// Memory held for messages the outbox's file system refused: a few thousand alerts.
const SPILL_MAX_BYTES: usize = 8 * 1024 * 1024;

/// Where a message handed to rumqttc is kept until its PUBACK.
#[derive(Debug, Clone, Copy)]
enum Held {
    Outbox(i64),
    Memory(u64),
}

/// A message the outbox could not store, held in memory until the broker has it.
struct Spilled {
    seq: u64,
    topic: String,
    payload: Vec<u8>,
    json: bool,
    retain: bool,
    priority: i64,
    /// Handed to the current connection.
    sent: bool,
}

/// Messages held in memory while the outbox cannot write, oldest first, at most `max_bytes`.
struct Spill {
    messages: VecDeque<Spilled>,
    bytes: usize,
    max_bytes: usize,
    next_seq: u64,
}

impl Spill {
    fn new(max_bytes: usize) -> Spill {
        Spill { messages: VecDeque::new(), bytes: 0, max_bytes, next_seq: 0 }
    }

    /// Holds a message; drops the oldest of the lowest priority while over `max_bytes`,
    /// counting each loss by class in `lost`.
    fn hold(&mut self, topic: String, message: &Message, lost: &[std::sync::atomic::AtomicU64; 3]) {
        let payload = message.payload.bytes().to_vec();
        self.bytes += topic.len() + payload.len();
        self.next_seq += 1;
        let json = matches!(message.payload, crate::events::Payload::Json(_));
        self.messages.push_back(Spilled { seq: self.next_seq, topic, payload, json, retain: message.retain(), priority: message.kind.drop_priority(), sent: false });
        while self.bytes > self.max_bytes {
            let Some(i) = self.messages.iter().enumerate().min_by_key(|(i, m)| (m.priority, *i)).map(|(i, _)| i) else { break };
            let gone = self.messages.remove(i).expect("an index of the queue");
            self.bytes -= gone.topic.len() + gone.payload.len();
            CameraHealth::count(&lost[drop_class(gone.priority)]);
            tracing::warn!(topic = %gone.topic, "message lost: neither the disk nor memory can hold it");
        }
    }

    fn acked(&mut self, seq: u64) {
        if let Some(i) = self.messages.iter().position(|m| m.seq == seq) {
            let gone = self.messages.remove(i).expect("an index of the queue");
            self.bytes -= gone.topic.len() + gone.payload.len();
        }
    }
}

/// Topics the agent listens to, and where their messages go.
pub struct Subscriptions {
    /// Signal controllers' topics.
    pub topics: Vec<String>,
    /// The IOC's commands: `{prefix}/cmd/+`.
    pub commands: String,
    /// (topic, payload); full when the analysis thread stalls, and then messages are dropped
    /// with a warning rather than stall the connection.
    pub inbox: Sender<(String, Vec<u8>)>,
}

/// The connection's side of delivery, shared by the publishing caller and the connection thread.
struct Link {
    client: Client,
    outbox: Outbox,
    /// Where the publishes handed to rumqttc are held, oldest first, waiting for their packet
    /// id (`None` for the untracked `online` announcement).
    requested: VecDeque<Option<Held>>,
    /// Packet id → where the message is held, waiting for the PUBACK.
    in_flight: HashMap<u16, Held>,
    /// Messages the outbox could not store.
    spill: Spill,
    /// The last outbox id handed to this connection.
    sent_up_to: i64,
    prefix: String,
    /// This connection's sequence number, in its `online`, `offline` (Last Will) and `stopped`.
    seq: u64,
    health: Arc<AgentHealth>,
    /// Topics the agent does not listen to that the broker delivered, each unsubscribed once.
    strays: HashSet<String>,
}

impl Link {
    /// Asks the broker to drop `topic` from the session (`why`, logged); whether it was asked.
    fn unsubscribe(&mut self, topic: &str, why: &str) -> bool {
        tracing::info!(%topic, "unsubscribing: {why}");
        match self.client.try_unsubscribe(topic) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(%topic, "cannot unsubscribe: {e}");
                false
            }
        }
    }

    /// Hands rumqttc the next stored messages, up to the in-flight limit.
    fn pump(&mut self) {
        while self.requested.len() + self.in_flight.len() < MAX_IN_FLIGHT {
            let next = match self.outbox.next_after(self.sent_up_to) {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("{e}");
                    break;
                }
            };
            // Stored by an earlier version, or grown by its replayed mark: sent, it would fail
            // the connection at every try.
            let size = packet_size(&next.topic, &next.payload);
            if size > MAX_PACKET {
                tracing::error!(topic = %next.topic, "a stored {size}-byte message is over the {MAX_PACKET}-byte packet limit: dropped");
                CameraHealth::count(&self.health.outbox_lost[drop_class(next.priority)]);
                if let Err(e) = self.outbox.remove(next.id) {
                    tracing::error!("{e}");
                    break;
                }
                continue;
            }
            if self.client.try_publish(next.topic.as_str(), QoS::AtLeastOnce, next.retain, next.payload).is_err() {
                return;
            }
            self.requested.push_back(Some(Held::Outbox(next.id)));
            self.sent_up_to = next.id;
        }
        self.pump_spill();
    }

    /// Hands rumqttc the messages held in memory that this connection has not had yet.
    fn pump_spill(&mut self) {
        for message in self.spill.messages.iter_mut().filter(|m| !m.sent) {
            if self.requested.len() + self.in_flight.len() >= MAX_IN_FLIGHT || self.client.try_publish(message.topic.as_str(), QoS::AtLeastOnce, message.retain, message.payload.clone()).is_err() {
                return;
            }
            message.sent = true;
            self.requested.push_back(Some(Held::Memory(message.seq)));
        }
    }

    fn acked(&mut self, pkid: u16) {
        match self.in_flight.remove(&pkid) {
            Some(Held::Outbox(id)) => {
                if let Err(e) = self.outbox.remove(id) {
                    tracing::error!("{e}");
                }
            }
            Some(Held::Memory(seq)) => self.spill.acked(seq),
            None => {}
        }
        self.report();
    }

    /// Stores a message in the outbox, or, when its file system refuses, in memory; how many
    /// messages the outbox dropped to make room. The agent's health says whether the outbox
    /// can write: not while it has to drop messages to do so. A message over the packet limit
    /// is refused here, whatever made it: stored, it would fail the connection at every send,
    /// and it stays in the outbox across restarts.
    fn store(&mut self, message: &Message) -> Result<u64, PublishError> {
        let topic = format!("{}/{}", self.prefix, message.topic());
        let size = packet_size(&topic, message.payload.bytes());
        if size > MAX_PACKET {
            return Err(PublishError::Mqtt(format!("a {size}-byte message on {topic} is over the {MAX_PACKET}-byte packet limit")));
        }
        match self.outbox.push(&topic, message) {
            Ok(stored) => {
                let failure = stored.made_room.then(|| format!("outbox {}: full: older messages dropped to make room", self.outbox.path()));
                self.health.set_disk_full("outbox", failure);
                Ok(stored.dropped)
            }
            Err(e) => {
                self.health.set_disk_full("outbox", Some(e.to_string()));
                let health = self.health.clone();
                self.spill.hold(topic, message, &health.outbox_lost);
                Ok(0)
            }
        }
    }

    /// Moves what is held in memory into the outbox for the next start, as far as the disk takes
    /// it; the rest is counted as lost.
    fn save_spill(&mut self) {
        let held = std::mem::take(&mut self.spill.messages);
        for message in held {
            let stored = self.outbox.push_raw(&message.topic, &message.payload, message.json, message.retain, message.priority);
            if let Err(e) = stored {
                CameraHealth::count(&self.health.outbox_lost[drop_class(message.priority)]);
                tracing::warn!(topic = %message.topic, "message lost at shutdown: {e}");
            }
        }
        self.spill.bytes = 0;
    }

    /// Messages waiting for the broker: in the outbox and in memory.
    fn waiting(&self) -> u64 {
        self.outbox.messages() + self.spill.messages.len() as u64
    }

    /// Copies the outbox's size and drops into `health`.
    fn report(&self) {
        AgentHealth::set(&self.health.outbox_messages, self.outbox.messages() + self.spill.messages.len() as u64);
        AgentHealth::set(&self.health.outbox_bytes, self.outbox.stored_bytes() + self.spill.bytes as u64);
        for (counter, dropped) in self.health.outbox_dropped.iter().zip(self.outbox.dropped) {
            AgentHealth::set(counter, dropped);
        }
        AgentHealth::set(&self.health.mqtt_connection_seq, self.seq);
    }
}

pub struct MqttSink {
    link: Arc<Mutex<Link>>,
    closing: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock(link: &Mutex<Link>) -> MutexGuard<'_, Link> {
    link.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything needed to (re)build the connection.
struct Connector {
    options: MqttOptions,
    subscriptions: Subscriptions,
    prefix: String,
    /// The CA file of a TLS connection, named when the broker's certificate is refused.
    tls_ca: Option<std::path::PathBuf>,
}

impl Connector {
    /// A client for connection `seq`, whose Last Will names it.
    fn connect(&self, seq: u64) -> (Client, Connection) {
        let mut options = self.options.clone();
        let will = status_message(Availability::Offline, None, seq);
        options.set_last_will(LastWill::new(format!("{}/{}", self.prefix, will.topic()), will.payload.bytes().to_vec(), QoS::AtLeastOnce, true));
        Client::new(options, REQUEST_QUEUE)
    }
}

impl MqttSink {
    /// Opens the outbox and connects in the background; messages published before the
    /// connection is up wait in the outbox.
    pub fn connect(config: &MqttConfig, site: &str, prefix: String, subscriptions: Subscriptions, health: Arc<AgentHealth>) -> Result<MqttSink, PublishError> {
        let mut options = config.options(config.client_id(site)).map_err(PublishError::Mqtt)?;
        options.set_clean_session(false);
        options.set_max_packet_size(MAX_INCOMING_PACKET, MAX_PACKET);
        let outbox = Outbox::open(&config.outbox_path(), (config.outbox_max_mb * 1024.0 * 1024.0) as u64).map_err(|e| PublishError::Mqtt(e.to_string()))?;
        let left = outbox.messages();
        if left > 0 {
            tracing::info!(messages = left, "publishing what an earlier run left in the outbox first");
        }
        let seq = outbox.next_connection_seq().map_err(|e| PublishError::Mqtt(e.to_string()))?;
        let tls_ca = config.broker().map_err(PublishError::Mqtt)?.tls.then(|| config.ca_file());
        let connector = Connector { options, subscriptions, prefix: prefix.clone(), tls_ca };
        let (client, connection) = connector.connect(seq);
        let link = Link { client, outbox, requested: VecDeque::new(), in_flight: HashMap::new(), spill: Spill::new(SPILL_MAX_BYTES), sent_up_to: 0, prefix, seq, health, strays: HashSet::new() };
        let link = Arc::new(Mutex::new(link));
        lock(&link).pump();
        lock(&link).report();
        let closing = Arc::new(AtomicBool::new(false));
        let thread = {
            let (link, closing) = (link.clone(), closing.clone());
            std::thread::Builder::new()
                .name("mqtt".into())
                .spawn(move || run_connection(connection, connector, link, closing))
                .map_err(|e| PublishError::Mqtt(format!("cannot start the MQTT thread: {e}")))?
        };
        Ok(MqttSink { link, closing, thread: Some(thread) })
    }
}

/// Drives the connection until closing; rebuilds it after each failure.
fn run_connection(mut connection: Connection, connector: Connector, link: Arc<Mutex<Link>>, closing: Arc<AtomicBool>) {
    let mut backoff = RECONNECT_START;
    loop {
        let failure = drive(&mut connection, &connector, &link, &closing, &mut backoff);
        lock(&link).health.mqtt_connected.store(false, Ordering::Relaxed);
        if closing.load(Ordering::Relaxed) {
            return;
        }
        let explained = super::tls::explain(&failure, connector.tls_ca.as_deref());
        if explained == failure {
            tracing::warn!(retry_in_ms = backoff.as_millis() as u64, "MQTT connection: {failure}");
        } else {
            tracing::error!(retry_in_ms = backoff.as_millis() as u64, "MQTT connection: {explained}");
        }
        // Jitter keeps a fleet of boxes from reconnecting to a restarted broker in lockstep.
        let jitter = Duration::from_millis(u64::from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().subsec_millis()) % 250);
        let resume = Instant::now() + backoff + jitter;
        while Instant::now() < resume && !closing.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if closing.load(Ordering::Relaxed) {
            return;
        }
        backoff = (backoff * 2).min(RECONNECT_CAP);
        // A fresh client: what the old one held unacknowledged is still in the outbox.
        let mut l = lock(&link);
        match l.outbox.next_connection_seq() {
            Ok(seq) => l.seq = seq,
            Err(e) => tracing::error!("{e}"),
        }
        let (client, fresh) = connector.connect(l.seq);
        connection = fresh;
        l.client = client;
        l.requested.clear();
        l.in_flight.clear();
        l.sent_up_to = 0;
        l.spill.messages.iter_mut().for_each(|m| m.sent = false);
        l.pump();
    }
}

/// Runs one connection until it fails (returning why) or is closed.
fn drive(connection: &mut Connection, connector: &Connector, link: &Mutex<Link>, closing: &AtomicBool, backoff: &mut Duration) -> String {
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                tracing::info!("MQTT connected");
                *backoff = RECONNECT_START;
                let mut l = lock(link);
                l.health.mqtt_connected.store(true, Ordering::Relaxed);
                l.report();
                if !closing.load(Ordering::Relaxed) {
                    let online = status_message(Availability::Online, Some(SystemTime::now()), l.seq);
                    // try_: this thread drives the queue, so it must never wait on it.
                    let topic = format!("{}/{}", l.prefix, online.topic());
                    if l.client.try_publish(topic, QoS::AtLeastOnce, true, online.payload.bytes().to_vec()).is_ok() {
                        l.requested.push_back(None);
                    }
                }
                // Again on every connect: a broker that lost its sessions has forgotten them.
                let wanted: Vec<String> = connector.subscriptions.topics.iter().chain([&connector.subscriptions.commands]).cloned().collect();
                for topic in &wanted {
                    if let Err(e) = l.client.try_subscribe(topic.as_str(), QoS::AtLeastOnce) {
                        tracing::error!(%topic, "cannot subscribe: {e}");
                    }
                }
                // The session keeps what an earlier site file subscribed to (a signal topic since
                // removed, an older prefix's commands): every message there would be refused.
                match l.outbox.subscribe(&wanted) {
                    Ok(stale) => {
                        for topic in stale {
                            // Asked again at the next connection when it cannot be asked now.
                            if l.unsubscribe(&topic, "no longer in the site file")
                                && let Err(e) = l.outbox.unsubscribed(&topic)
                            {
                                tracing::warn!("{e}");
                            }
                        }
                    }
                    Err(e) => tracing::warn!("{e}"),
                }
                l.pump();
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut l = lock(link);
                if let Some(Some(held)) = l.requested.pop_front() {
                    l.in_flight.insert(pkid, held);
                }
            }
            Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                let mut l = lock(link);
                l.acked(ack.pkid);
                l.pump();
            }
            Ok(Event::Incoming(Incoming::Publish(publish))) => receive(&publish, &connector.subscriptions, link),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return "disconnected".into(),
            Ok(_) => {}
            Err(e) => return e.to_string(),
        }
    }
    "the connection closed".into()
}

/// A message the broker delivered (rumqttc has acknowledged it): commands and signal phases go to
/// the analysis thread; what is oversized, a retained command, or on no topic of the agent's is
/// refused here, counted and logged, and a refused command that names its `request_id` is
/// answered on `reply`.
fn receive(publish: &rumqttc::Publish, subscriptions: &Subscriptions, link: &Mutex<Link>) {
    let commands = subscriptions.commands.trim_end_matches('+');
    let command = publish.topic.strip_prefix(commands);
    if command.is_some() && publish.payload.is_empty() {
        // What the broker sends subscribers when a retained command is cleared.
        tracing::debug!(topic = %publish.topic, "an empty command: ignored");
        return;
    }
    let stray = command.is_none() && !subscriptions.topics.contains(&publish.topic);
    let refused = if stray {
        "not a topic the agent listens to".to_string()
    } else if command.is_some() && publish.retain {
        // The broker sets the flag only on what it keeps and sends again at every subscription,
        // so a command published retained would run at every reconnect (a signal's phase is
        // retained on purpose, and taken).
        "a retained command is not run (the broker would deliver it again at every reconnect): publish commands without retain, and clear this one with an empty retained message".to_string()
    } else if publish.payload.len() > MAX_INBOUND_BYTES {
        format!("the payload is {} bytes, over the {MAX_INBOUND_BYTES}-byte limit", publish.payload.len())
    } else {
        if subscriptions.inbox.try_send((publish.topic.clone(), publish.payload.to_vec())).is_err() {
            tracing::warn!(topic = %publish.topic, "message dropped: the analysis thread is behind");
        }
        return;
    };
    tracing::warn!(topic = %publish.topic, bytes = publish.payload.len(), "message refused: {refused}");
    #[derive(serde::Deserialize)]
    struct Named {
        request_id: Option<String>,
    }
    // Read before the link is locked, and only from a payload small enough to read quickly.
    let request_id = command
        .filter(|_| publish.payload.len() <= MAX_REPLY_READ_BYTES)
        .and_then(|_| serde_json::from_slice::<Named>(&publish.payload).ok()?.request_id)
        .filter(|id| crate::control::valid_request_id(id));
    let mut l = lock(link);
    CameraHealth::count(&l.health.messages_refused);
    // A filter the session kept from before the agent recorded what it subscribed to: dropped,
    // asked once a topic.
    if stray && l.strays.len() < MAX_STRAYS && l.strays.insert(publish.topic.clone()) {
        l.unsubscribe(&publish.topic, "not a topic the agent listens to");
    }
    if let (Some(name), Some(request_id)) = (command, request_id) {
        let reply = Reply { request_id: Some(&request_id), command: &crate::control::shown(name), ok: false, error: Some(refused), snapshot: None, evidence: None }.message();
        match l.store(&reply) {
            Ok(_) => l.pump(),
            Err(e) => tracing::error!("the refusal is not answered: {e}"),
        }
    }
}

impl Sink for MqttSink {
    fn publish(&mut self, message: &Message) -> Result<(), PublishError> {
        let mut l = lock(&self.link);
        let dropped = l.store(message)?;
        if dropped > 0 {
            let [counts, evidence, events] = l.outbox.dropped;
            tracing::warn!(dropped, counts, evidence, events, "the outbox is full: oldest messages dropped (totals since start; counts and status go first, alerts and crossings last)");
        }
        l.pump();
        l.report();
        Ok(())
    }

    fn close(&mut self) -> Result<(), PublishError> {
        let seq = lock(&self.link).seq;
        self.publish(&status_message(Availability::Stopped, Some(SystemTime::now()), seq))?;
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        let unacked = loop {
            let left = lock(&self.link).waiting();
            if left == 0 || Instant::now() >= deadline {
                break left;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if unacked > 0 {
            tracing::warn!(unacked, "stopping with messages the broker has not acknowledged; they stay in the outbox for the next start");
        }
        lock(&self.link).save_spill();
        self.closing.store(true, Ordering::Relaxed);
        // try_: with the broker down and rumqttc's queue full, a blocking disconnect never returns.
        let _ = lock(&self.link).client.try_disconnect();
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + CLOSE_WAIT;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            // A loop still waiting for an unreachable broker is left to end with the process.
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{MessageKind, Payload};

    #[test]
    fn memory_keeps_alerts_longest_and_counts_each_loss() {
        let message = |kind: MessageKind| Message { kind, payload: Payload::Json("x".repeat(100)), origin: None };
        let camera = || "cam".to_string();
        let lost: [std::sync::atomic::AtomicU64; 3] = Default::default();
        // Room for four messages of 112 to 117 bytes with their topics.
        let mut spill = Spill::new(460);
        for kind in [MessageKind::Violation { camera: camera() }, MessageKind::Counts { camera: camera() }, MessageKind::Evidence { camera: camera(), id: "e1".into() }, MessageKind::Counts { camera: camera() }] {
            spill.hold(format!("p/{}", kind.topic()), &message(kind), &lost);
        }
        assert_eq!(lost.iter().map(|l| l.load(Ordering::Relaxed)).collect::<Vec<_>>(), [0, 0, 0]);
        for _ in 0..3 {
            spill.hold("p/cam/violation".into(), &message(MessageKind::Violation { camera: camera() }), &lost);
        }
        assert_eq!(lost.iter().map(|l| l.load(Ordering::Relaxed)).collect::<Vec<_>>(), [2, 1, 0], "counts first, then the image");
        assert!(spill.messages.iter().all(|m| m.topic.ends_with("/violation")) && spill.messages.len() == 4);
        spill.acked(spill.messages[0].seq);
        assert_eq!(spill.messages.len(), 3);
    }
}
