//! The disk outbox: every message is written here before it is published, and deleted only when
//! the broker has acknowledged it (PUBACK), so a broker outage or an agent crash loses nothing.
//!
//! SQLite (through `rusqlite`, linked to the system library) in WAL mode with `synchronous=FULL`:
//! a single-file store that survives power loss, is inspectable with the `sqlite3` tool on the
//! box, and has been hardened by decades of use on embedded devices; a home-made log format would
//! have to earn all of that. Rows are kept in insertion order (`id`), which is publish order.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::events::{Message, Payload};

#[derive(Debug, thiserror::Error)]
#[error("outbox {path}: {source}")]
pub struct OutboxError {
    path: String,
    source: rusqlite::Error,
}

impl OutboxError {
    /// Whether the file system is full (as opposed to failing or read-only).
    fn is_disk_full(&self) -> bool {
        self.source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
    }
}

/// How a message was stored: how many messages were dropped to make room, and whether that was
/// because the file system is full (rather than the size budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    pub dropped: u64,
    pub made_room: bool,
}

/// Messages dropped at a time to make room when the file system refuses a write.
const WRITE_FAILURE_BATCH: usize = 16;

/// A row's size in bytes, as SQL: its payload and its topic (as bytes, not characters).
const ROW_BYTES: &str = "LENGTH(payload) + LENGTH(CAST(topic AS BLOB))";

/// A message read back from the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: i64,
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    /// Left over from an earlier run of the agent.
    pub replayed: bool,
    /// Which messages go first when the outbox is full (`MessageKind::drop_priority`).
    pub priority: i64,
}

pub struct Outbox {
    db: Connection,
    path: String,
    max_bytes: u64,
    /// Messages dropped because the outbox was full, by priority: counts and status, evidence,
    /// events (alerts and crossings).
    pub dropped: [u64; 3],
    /// Rows stored and their bytes (payload and topic), kept as rows come and go: summing the
    /// table on every message took 37 ms at 200,000 rows (64 MiB of crossings after a long
    /// broker outage), and a full outbox asks for it several times a message.
    rows: u64,
    bytes: u64,
}

impl Outbox {
    /// Opens (or creates) the outbox; whatever an earlier run left is marked as replayed.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Outbox, OutboxError> {
        let name = path.display().to_string();
        let err = |source| OutboxError { path: name.clone(), source };
        let db = Connection::open(path).map_err(err)?;
        // The WAL is cut back to 4 MiB at each checkpoint: it otherwise keeps the largest size it
        // ever reached. Rows an earlier start marked are not written again.
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA journal_size_limit = 4194304;
             CREATE TABLE IF NOT EXISTS outbox (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 topic TEXT NOT NULL,
                 payload BLOB NOT NULL,
                 json INTEGER NOT NULL,
                 retain INTEGER NOT NULL,
                 priority INTEGER NOT NULL,
                 replayed INTEGER NOT NULL DEFAULT 0
             );
             CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS subscriptions (filter TEXT PRIMARY KEY);
             UPDATE outbox SET replayed = 1 WHERE replayed = 0;",
        )
        .map_err(err)?;
        // The oldest of the lowest priority is what a full outbox drops: without this index each
        // drop sorted the whole table (33 ms at 200,000 rows). Made at the first open of an
        // outbox an earlier version filled, it needs room: on a full disk the agent runs without
        // it (slower drops) rather than not at all, and makes it at a later start.
        if let Err(e) = db.execute_batch("CREATE INDEX IF NOT EXISTS outbox_by_priority ON outbox (priority, id);") {
            tracing::warn!("outbox {name}: no index of what to drop first: {e}");
        }
        let (rows, bytes) = db
            .query_row(&format!("SELECT COUNT(*), COALESCE(SUM({ROW_BYTES}), 0) FROM outbox"), [], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)))
            .map_err(err)?;
        Ok(Outbox { db, path: name, max_bytes, dropped: [0; 3], rows, bytes })
    }

    fn err(&self, source: rusqlite::Error) -> OutboxError {
        OutboxError { path: self.path.clone(), source }
    }

    /// Stores a message durably; when over the size bound, drops the oldest of the lowest
    /// priority first. When the file system is full, makes room the same way among messages of
    /// lower priority than this one and tries again; the error, when that is not enough (or the
    /// write failed otherwise: a failing or read-only disk).
    pub fn push(&mut self, topic: &str, message: &Message) -> Result<Pushed, OutboxError> {
        let priority = message.kind.drop_priority();
        let mut dropped = 0;
        let mut made_room = false;
        while let Err(e) = self.insert(topic, message, priority) {
            if !e.is_disk_full() {
                return Err(e);
            }
            match self.drop_oldest(priority - 1, WRITE_FAILURE_BATCH)? {
                0 => return Err(e),
                n => dropped += n,
            }
            made_room = true;
            // The write-ahead log holds what was deleted until it is checkpointed; truncating it
            // gives its space back to the file system.
            let _ = self.db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        }
        while self.bytes > self.max_bytes {
            match self.drop_oldest(2, 1)? {
                0 => break,
                n => dropped += n,
            }
        }
        Ok(Pushed { dropped, made_room })
    }

    /// The outbox's file.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn insert(&mut self, topic: &str, message: &Message, priority: i64) -> Result<(), OutboxError> {
        let json = matches!(message.payload, Payload::Json(_));
        self.push_raw(topic, message.payload.bytes(), json, message.retain(), priority)
    }

    /// Stores a payload as it is, without making room.
    pub fn push_raw(&mut self, topic: &str, payload: &[u8], json: bool, retain: bool, priority: i64) -> Result<(), OutboxError> {
        self.db
            .execute("INSERT INTO outbox (topic, payload, json, retain, priority) VALUES (?1, ?2, ?3, ?4, ?5)", params![topic, payload, json, retain, priority])
            .map_err(|e| self.err(e))?;
        self.rows += 1;
        self.bytes += (payload.len() + topic.len()) as u64;
        Ok(())
    }

    /// Deletes row `id`; whether it was there. Its size is read first and the delete made by
    /// itself: a `DELETE … RETURNING` gives its row before it commits, and a commit that fails
    /// (the disk full) would go unreported, the row kept and counted gone.
    fn delete(&mut self, id: i64) -> Result<bool, OutboxError> {
        let size: Option<i64> = self.db.query_row(&format!("SELECT {ROW_BYTES} FROM outbox WHERE id = ?1"), [id], |r| r.get(0)).optional().map_err(|e| self.err(e))?;
        let Some(size) = size else { return Ok(false) };
        if self.db.execute("DELETE FROM outbox WHERE id = ?1", [id]).map_err(|e| self.err(e))? == 0 {
            return Ok(false);
        }
        self.rows = self.rows.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(size as u64);
        Ok(true)
    }

    /// Drops up to `count` of the oldest messages of the lowest priority, at most `max_priority`
    /// (counted in `dropped`); how many it dropped.
    fn drop_oldest(&mut self, max_priority: i64, count: usize) -> Result<u64, OutboxError> {
        let mut dropped = 0;
        for _ in 0..count {
            let oldest: Option<(i64, i64)> = self
                .db
                .query_row("SELECT id, priority FROM outbox WHERE priority <= ?1 ORDER BY priority, id LIMIT 1", [max_priority], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(|e| self.err(e))?;
            let Some((id, priority)) = oldest else { break };
            if !self.delete(id)? {
                break;
            }
            self.dropped[crate::health::drop_class(priority)] += 1;
            dropped += 1;
        }
        Ok(dropped)
    }

    /// Bytes stored: payloads and topics.
    pub fn stored_bytes(&self) -> u64 {
        self.bytes
    }

    /// The first stored message after `id`, in publish order. A replayed JSON payload says so
    /// (`"replayed": true`), so the IOC knows it may have seen it before.
    pub fn next_after(&self, id: i64) -> Result<Option<Stored>, OutboxError> {
        let row = self
            .db
            .query_row(
                "SELECT id, topic, payload, json, retain, replayed, priority FROM outbox WHERE id > ?1 ORDER BY id LIMIT 1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, bool>(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(row.map(|(id, topic, payload, json, retain, replayed, priority)| {
            let payload = if replayed && json { mark_replayed(payload) } else { payload };
            Stored { id, topic, payload, retain, replayed, priority }
        }))
    }

    /// The broker has it: forget it.
    pub fn remove(&mut self, id: i64) -> Result<(), OutboxError> {
        self.delete(id).map(|_| ())
    }

    /// The next connection sequence number, kept here so it grows across restarts.
    pub fn next_connection_seq(&self) -> Result<u64, OutboxError> {
        // Counted, then read, in two statements: a `RETURNING` read through `query_row` gives the
        // value before the commit, and a commit the full disk refused would give it again.
        self.db
            .execute("INSERT INTO counters (name, value) VALUES ('connection', 1) ON CONFLICT (name) DO UPDATE SET value = value + 1", [])
            .and_then(|_| self.db.query_row("SELECT value FROM counters WHERE name = 'connection'", [], |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Messages stored.
    pub fn messages(&self) -> u64 {
        self.rows
    }

    /// Records `filters` as subscribed for the agent in the broker's session, and returns the
    /// filters recorded before that it no longer wants: the session outlives the site file that
    /// asked for them. They stay recorded until [`Outbox::unsubscribed`].
    pub fn subscribe(&mut self, filters: &[String]) -> Result<Vec<String>, OutboxError> {
        let recorded = |db: &mut Connection| -> rusqlite::Result<Vec<String>> {
            let before: Vec<String> = db.prepare("SELECT filter FROM subscriptions")?.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            // Written only when something is new: this runs at every connection.
            if filters.iter().any(|f| !before.contains(f)) {
                let tx = db.transaction()?;
                for filter in filters {
                    tx.execute("INSERT OR IGNORE INTO subscriptions (filter) VALUES (?1)", [filter])?;
                }
                tx.commit()?;
            }
            Ok(before.into_iter().filter(|f| !filters.contains(f)).collect())
        };
        recorded(&mut self.db).map_err(|e| self.err(e))
    }

    /// The broker was asked to drop `filter` from the session.
    pub fn unsubscribed(&mut self, filter: &str) -> Result<(), OutboxError> {
        self.db.execute("DELETE FROM subscriptions WHERE filter = ?1", [filter]).map(|_| ()).map_err(|e| self.err(e))
    }
}

/// Adds `"replayed": true` to a JSON object payload; anything else is left as it is.
fn mark_replayed(payload: Vec<u8>) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(&payload) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("replayed".into(), serde_json::Value::Bool(true));
            serde_json::to_vec(&map).unwrap_or(payload)
        }
        _ => payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JSON message on `topic`, below the prefix `p`.
    fn json(topic: &str, body: &str) -> Message {
        Message { kind: crate::events::MessageKind::of(topic, "p").unwrap(), payload: Payload::Json(body.into()), origin: None }
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("canh-outbox-{name}-{}.sqlite", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        path
    }

    #[test]
    fn keeps_order_removes_on_ack_and_marks_leftovers_as_replayed() {
        let path = temp("order");
        let mut outbox = Outbox::open(&path, 1 << 20).unwrap();
        for i in 0..3 {
            outbox.push("p/cam/crossing", &json("p/cam/crossing", &format!(r#"{{"n":{i}}}"#))).unwrap();
        }
        let first = outbox.next_after(0).unwrap().unwrap();
        assert_eq!((first.payload.as_slice(), first.replayed), (&br#"{"n":0}"#[..], false));
        outbox.remove(first.id).unwrap();
        drop(outbox);
        // The agent starts again: what is left goes out first, marked.
        let outbox = Outbox::open(&path, 1 << 20).unwrap();
        assert_eq!(outbox.messages(), 2);
        assert_eq!((outbox.next_connection_seq().unwrap(), outbox.next_connection_seq().unwrap()), (1, 2));
        drop(outbox);
        let outbox = Outbox::open(&path, 1 << 20).unwrap();
        assert_eq!(outbox.next_connection_seq().unwrap(), 3, "the sequence survives a restart");
        let next = outbox.next_after(0).unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&next.payload).unwrap();
        assert_eq!((v["n"].as_i64(), v["replayed"].as_bool()), (Some(1), Some(true)));
        assert_eq!(outbox.next_after(next.id).unwrap().unwrap().topic, "p/cam/crossing");
    }

    #[test]
    fn when_full_counts_go_first_and_alerts_last() {
        let path = temp("full");
        // Room for five messages of 40 bytes with their topics (264 bytes in all).
        let mut outbox = Outbox::open(&path, 270).unwrap();
        let body = "x".repeat(40);
        for topic in ["p/cam/violation", "p/cam/counts", "p/cam/fire", "p/cam/counts", "p/cam/violation"] {
            outbox.push(topic, &json(topic, &body)).unwrap();
        }
        assert_eq!(outbox.dropped, [0, 0, 0]);
        for _ in 0..3 {
            outbox.push("p/cam/violation", &json("p/cam/violation", &body)).unwrap();
        }
        assert_eq!(outbox.dropped, [2, 0, 1], "both counts first, then the oldest alert");
        assert_eq!(outbox.next_after(0).unwrap().unwrap().topic, "p/cam/fire");
    }

    /// The sizes kept as rows come and go are the table's: checked against a count of the file
    /// itself after pushes, acknowledgements and drops, with a topic that is not ASCII.
    #[test]
    fn sizes_kept_as_rows_come_and_go_are_the_tables() {
        let path = temp("sizes");
        let mut outbox = Outbox::open(&path, 400).unwrap();
        let body = "y".repeat(50);
        for topic in ["p/cam/counts", "p/cầu/crossing", "p/cam/violation", "p/cam/counts", "p/cầu/crossing", "p/cam/violation", "p/cam/fire"] {
            outbox.push(topic, &json(topic, &body)).unwrap();
        }
        assert!(outbox.dropped.iter().sum::<u64>() > 0, "the bound dropped some: {:?}", outbox.dropped);
        assert!(outbox.stored_bytes() <= 400);
        let first = outbox.next_after(0).unwrap().unwrap();
        outbox.remove(first.id).unwrap();
        outbox.remove(first.id).unwrap();
        let (rows, bytes) = (outbox.messages(), outbox.stored_bytes());
        drop(outbox);
        let counted = Outbox::open(&path, 400).unwrap();
        assert_eq!((rows, bytes), (counted.messages(), counted.stored_bytes()));
        let (n, sum): (i64, i64) = counted.db.query_row("SELECT COUNT(*), SUM(LENGTH(payload)) FROM outbox", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        let topics: Vec<String> = counted.db.prepare("SELECT topic FROM outbox").unwrap().query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        assert_eq!((rows, bytes), (n as u64, (sum as usize + topics.iter().map(String::len).sum::<usize>()) as u64));
    }
}
