//! MQTT sink over `rumqttc`: at-least-once delivery through the disk [`Outbox`].
//!
//! Every message is stored before it is published and deleted when its PUBACK arrives. rumqttc's
//! `publish()` does not return the packet id, so the link keeps the outbox ids of its publishes in
//! request order and pairs each with the packet id of the next `Outgoing::Publish` event. At most
//! `MAX_IN_FLIGHT` messages are unacknowledged at a time.
//!
//! One thread owns the connection. When it fails, that thread drops the client with everything
//! rumqttc still held, waits (exponential backoff with jitter: rumqttc has none of its own), and
//! connects afresh; the outbox then sends everything unacknowledged again, in order. The IOC drops
//! the duplicates by event id. On connect it announces `online` (retained) and subscribes to the
//! signal controllers' topics and the IOC's commands.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;
use rumqttc::{Client, Connection, Event, Incoming, LastWill, MqttOptions, Outgoing, QoS};

use super::outbox::Outbox;
use super::{MqttConfig, PublishError, Sink};
use crate::events::{Availability, Message, status_message};
use crate::health::AgentHealth;

/// Requests waiting for the event loop inside rumqttc.
const REQUEST_QUEUE: usize = 1_000;
/// Published messages awaiting their PUBACK at any time.
const MAX_IN_FLIGHT: usize = 64;
/// How long a clean shutdown waits for the broker to acknowledge what was published.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest MQTT packet either way: an evidence image (at most 40 KiB) with its topic fits with
/// room to spare. A packet over rumqttc's limit would fail the connection on every retry, so
/// larger messages are refused before they reach it.
const MAX_PACKET: usize = 64 * 1024;
/// How long closing waits for the connection's thread to say goodbye to the broker.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Fixed header, topic length and packet id around the topic and payload.
const PACKET_OVERHEAD: usize = 16;
const RECONNECT_START: Duration = Duration::from_millis(500);
const RECONNECT_CAP: Duration = Duration::from_secs(30);
/// How stale the outbox figures in the agent's health may be.
const HEALTH_REFRESH: Duration = Duration::from_secs(1);

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
    /// Outbox ids of publishes handed to rumqttc, oldest first, waiting for their packet id
    /// (`None` for the untracked `online` announcement).
    requested: VecDeque<Option<i64>>,
    /// Packet id → outbox id, waiting for the PUBACK.
    in_flight: HashMap<u16, i64>,
    /// The last outbox id handed to this connection.
    sent_up_to: i64,
    prefix: String,
    /// This connection's sequence number, in its `online`, `offline` (Last Will) and `stopped`.
    seq: u64,
    health: Arc<AgentHealth>,
    /// When the outbox's size was last copied into `health`.
    health_at: Option<Instant>,
}

impl Link {
    /// Hands rumqttc the next stored messages, up to the in-flight limit.
    fn pump(&mut self) {
        while self.requested.len() + self.in_flight.len() < MAX_IN_FLIGHT {
            let next = match self.outbox.next_after(self.sent_up_to) {
                Ok(Some(next)) => next,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!("{e}");
                    return;
                }
            };
            if self.client.try_publish(next.topic.as_str(), QoS::AtLeastOnce, next.retain, next.payload).is_err() {
                return;
            }
            self.requested.push_back(Some(next.id));
            self.sent_up_to = next.id;
        }
    }

    fn acked(&mut self, pkid: u16) {
        if let Some(id) = self.in_flight.remove(&pkid)
            && let Err(e) = self.outbox.remove(id)
        {
            tracing::error!("{e}");
        }
        self.report(false);
    }

    /// Copies the outbox's size and drops into `health`, at most every `HEALTH_REFRESH` unless
    /// `now` (counting the rows costs a table scan).
    fn report(&mut self, now: bool) {
        if !now && self.health_at.is_some_and(|at| at.elapsed() < HEALTH_REFRESH) {
            return;
        }
        self.health_at = Some(Instant::now());
        if let (Ok(messages), Ok(bytes)) = (self.outbox.len(), self.outbox.stored_bytes()) {
            AgentHealth::set(&self.health.outbox_messages, messages);
            AgentHealth::set(&self.health.outbox_bytes, bytes);
        }
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
        options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        let outbox = Outbox::open(&config.outbox_path(), (config.outbox_max_mb * 1024.0 * 1024.0) as u64).map_err(|e| PublishError::Mqtt(e.to_string()))?;
        let left = outbox.len().map_err(|e| PublishError::Mqtt(e.to_string()))?;
        if left > 0 {
            tracing::info!(messages = left, "publishing what an earlier run left in the outbox first");
        }
        let seq = outbox.next_connection_seq().map_err(|e| PublishError::Mqtt(e.to_string()))?;
        let tls_ca = config.broker().map_err(PublishError::Mqtt)?.tls.then(|| config.ca_file());
        let connector = Connector { options, subscriptions, prefix: prefix.clone(), tls_ca };
        let (client, connection) = connector.connect(seq);
        let link = Link { client, outbox, requested: VecDeque::new(), in_flight: HashMap::new(), sent_up_to: 0, prefix, seq, health, health_at: None };
        let link = Arc::new(Mutex::new(link));
        lock(&link).pump();
        lock(&link).report(true);
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
                l.report(true);
                if !closing.load(Ordering::Relaxed) {
                    let online = status_message(Availability::Online, Some(SystemTime::now()), l.seq);
                    // try_: this thread drives the queue, so it must never wait on it.
                    let topic = format!("{}/{}", l.prefix, online.topic());
                    if l.client.try_publish(topic, QoS::AtLeastOnce, true, online.payload.bytes().to_vec()).is_ok() {
                        l.requested.push_back(None);
                    }
                }
                // Again on every connect: a broker that lost its sessions has forgotten them.
                for topic in connector.subscriptions.topics.iter().chain([&connector.subscriptions.commands]) {
                    if let Err(e) = l.client.try_subscribe(topic.as_str(), QoS::AtLeastOnce) {
                        tracing::error!(%topic, "cannot subscribe: {e}");
                    }
                }
                l.pump();
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                let mut l = lock(link);
                if let Some(Some(id)) = l.requested.pop_front() {
                    l.in_flight.insert(pkid, id);
                }
            }
            Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                let mut l = lock(link);
                l.acked(ack.pkid);
                l.pump();
            }
            Ok(Event::Incoming(Incoming::Publish(publish))) => {
                let subscriptions = &connector.subscriptions;
                let command = publish.topic.starts_with(subscriptions.commands.trim_end_matches('+'));
                if (command || subscriptions.topics.contains(&publish.topic)) && subscriptions.inbox.try_send((publish.topic.clone(), publish.payload.to_vec())).is_err() {
                    tracing::warn!(topic = %publish.topic, "message dropped: the analysis thread is behind");
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return "disconnected".into(),
            Ok(_) => {}
            Err(e) => return e.to_string(),
        }
    }
    "the connection closed".into()
}

impl Sink for MqttSink {
    fn publish(&mut self, message: &Message) -> Result<(), PublishError> {
        let mut l = lock(&self.link);
        let topic = format!("{}/{}", l.prefix, message.topic());
        let size = topic.len() + message.payload.bytes().len() + PACKET_OVERHEAD;
        if size > MAX_PACKET {
            return Err(PublishError::Mqtt(format!("a {size}-byte message is over the {MAX_PACKET}-byte packet limit")));
        }
        let dropped = l.outbox.push(&topic, message).map_err(|e| PublishError::Mqtt(e.to_string()))?;
        if dropped > 0 {
            let [counts, evidence, events] = l.outbox.dropped;
            tracing::warn!(dropped, counts, evidence, events, "the outbox is full: oldest messages dropped (totals since start; counts and status go first, alerts and crossings last)");
        }
        l.pump();
        l.report(dropped > 0);
        Ok(())
    }

    fn close(&mut self) -> Result<(), PublishError> {
        let seq = lock(&self.link).seq;
        self.publish(&status_message(Availability::Stopped, Some(SystemTime::now()), seq))?;
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        let unacked = loop {
            let left = lock(&self.link).outbox.len().unwrap_or(0);
            if left == 0 || Instant::now() >= deadline {
                break left;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if unacked > 0 {
            tracing::warn!(unacked, "stopping with messages the broker has not acknowledged; they stay in the outbox for the next start");
        }
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
