//! MQTT sink over `rumqttc`: QoS 1, stable client id, retained availability on `status`.
//!
//! The connection's event loop runs on its own thread: it reconnects with exponential backoff
//! (rumqttc has none of its own), re-announces `online` after each connect, and counts PUBACKs so
//! a clean shutdown can wait until the broker has everything. Messages are kept in memory only;
//! surviving agent crashes needs the disk outbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;
use rumqttc::{Client, Connection, Event, Incoming, LastWill, MqttOptions, Outgoing, QoS};

use super::{MqttConfig, PublishError, Secret, Sink};
use crate::events::{Availability, Message, status_message};

/// Requests waiting for the event loop inside rumqttc.
const REQUEST_QUEUE: usize = 1_000;
/// How long a clean shutdown waits for the broker to acknowledge what was published.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a shutdown waits for the MQTT thread to see the disconnect through.
const EVENT_LOOP_EXIT: Duration = Duration::from_secs(2);
/// Largest MQTT packet either way: an evidence image (at most 40 KiB) with its topic fits with
/// room to spare. A packet over rumqttc's limit would fail the connection on every retry, so
/// larger messages are refused before they reach it.
const MAX_PACKET: usize = 64 * 1024;
/// Fixed header, topic length and packet id around the topic and payload.
const PACKET_OVERHEAD: usize = 16;
const RECONNECT_START: Duration = Duration::from_millis(500);
const RECONNECT_CAP: Duration = Duration::from_secs(30);

/// Progress shared between the sink and its event-loop thread.
#[derive(Default)]
struct Delivery {
    /// QoS 1 publishes handed to rumqttc.
    requested: AtomicU64,
    /// PUBACKs received.
    acked: AtomicU64,
    closing: AtomicBool,
}

/// Topics the agent listens to (signal controllers), and where their messages go.
pub struct Subscriptions {
    pub topics: Vec<String>,
    /// (topic, payload); full when the analysis thread stalls, and then messages are dropped
    /// with a warning rather than stall the connection.
    pub inbox: Sender<(String, Vec<u8>)>,
}

pub struct MqttSink {
    client: Client,
    prefix: String,
    delivery: Arc<Delivery>,
    event_loop: Option<JoinHandle<()>>,
}

impl MqttSink {
    /// Connects in the background; messages published before the connection is up are queued.
    pub fn connect(config: &MqttConfig, site: &str, prefix: String, subscriptions: Subscriptions) -> Result<MqttSink, PublishError> {
        let broker = config.broker().map_err(PublishError::Mqtt)?;
        let mut options = MqttOptions::new(config.client_id(site), broker.host, broker.port);
        options.set_keep_alive(Duration::from_secs(config.keep_alive_s));
        options.set_clean_session(false);
        options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        let password = config.resolve_password().map_err(PublishError::Mqtt)?;
        if let Some(user) = &config.username {
            options.set_credentials(user, password.as_ref().map_or("", Secret::expose));
        }
        let will = status_message(Availability::Offline, None);
        options.set_last_will(LastWill::new(format!("{prefix}/{}", will.topic), will.payload.bytes().to_vec(), QoS::AtLeastOnce, true));
        let (client, connection) = Client::new(options, REQUEST_QUEUE);
        let delivery = Arc::new(Delivery::default());
        let event_loop = {
            let (client, delivery, prefix) = (client.clone(), delivery.clone(), prefix.clone());
            std::thread::Builder::new()
                .name("mqtt".into())
                .spawn(move || run_event_loop(connection, client, delivery, prefix, subscriptions))
                .map_err(|e| PublishError::Mqtt(format!("cannot start the MQTT thread: {e}")))?
        };
        Ok(MqttSink { client, prefix, delivery, event_loop: Some(event_loop) })
    }

    fn send(&self, message: &Message) -> Result<(), PublishError> {
        let topic = format!("{}/{}", self.prefix, message.topic);
        let size = topic.len() + message.payload.bytes().len() + PACKET_OVERHEAD;
        if size > MAX_PACKET {
            return Err(PublishError::Mqtt(format!("a {size}-byte message is over the {MAX_PACKET}-byte packet limit")));
        }
        self.client
            .publish(topic, QoS::AtLeastOnce, message.retain, message.payload.bytes())
            .map_err(|e| PublishError::Mqtt(e.to_string()))?;
        self.delivery.requested.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn run_event_loop(mut connection: Connection, client: Client, delivery: Arc<Delivery>, prefix: String, subscriptions: Subscriptions) {
    let mut backoff = RECONNECT_START;
    for event in connection.iter() {
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                tracing::info!("MQTT connected");
                backoff = RECONNECT_START;
                if !delivery.closing.load(Ordering::Relaxed) {
                    let online = status_message(Availability::Online, Some(SystemTime::now()));
                    // try_: this thread drives the queue, so it must never wait on it.
                    if client.try_publish(format!("{prefix}/{}", online.topic), QoS::AtLeastOnce, true, online.payload.bytes().to_vec()).is_ok() {
                        delivery.requested.fetch_add(1, Ordering::Relaxed);
                    }
                    // Again on every connect: a broker that lost its sessions has forgotten them.
                    for topic in &subscriptions.topics {
                        if let Err(e) = client.try_subscribe(topic.as_str(), QoS::AtLeastOnce) {
                            tracing::error!(%topic, "cannot subscribe: {e}");
                        }
                    }
                }
            }
            Ok(Event::Incoming(Incoming::Publish(publish))) => {
                if subscriptions.topics.contains(&publish.topic)
                    && subscriptions.inbox.try_send((publish.topic.clone(), publish.payload.to_vec())).is_err()
                {
                    tracing::warn!(topic = %publish.topic, "signal message dropped: the analysis thread is behind");
                }
            }
            Ok(Event::Incoming(Incoming::PubAck(_))) => {
                delivery.acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(e) => {
                if delivery.closing.load(Ordering::Relaxed) {
                    break;
                }
                tracing::warn!(retry_in_ms = backoff.as_millis() as u64, "MQTT connection: {e}");
                // Jitter keeps a fleet of boxes from reconnecting to a restarted broker in lockstep.
                let jitter = Duration::from_millis(u64::from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().subsec_millis()) % 250);
                std::thread::sleep(backoff + jitter);
                backoff = (backoff * 2).min(RECONNECT_CAP);
            }
        }
    }
}

impl Sink for MqttSink {
    fn publish(&mut self, message: &Message) -> Result<(), PublishError> {
        self.send(message)
    }

    fn close(&mut self) -> Result<(), PublishError> {
        self.send(&status_message(Availability::Stopped, Some(SystemTime::now())))?;
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        let d = &self.delivery;
        while d.acked.load(Ordering::Relaxed) < d.requested.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let unacked = d.requested.load(Ordering::Relaxed).saturating_sub(d.acked.load(Ordering::Relaxed));
        if unacked > 0 {
            tracing::warn!(unacked, "stopping with messages the broker has not acknowledged");
        }
        d.closing.store(true, Ordering::Relaxed);
        // try_: with the broker down and rumqttc's queue full, a blocking disconnect never returns.
        let _ = self.client.try_disconnect();
        if let Some(thread) = self.event_loop.take() {
            let deadline = Instant::now() + EVENT_LOOP_EXIT;
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
