//! Where `canh listen` keeps what it receives: SQLite for messages (events once each, by id; the
//! latest status, stats and replies; invalid messages with the reason) and the JPEGs as files
//! beside the database, `evidence/{camera}/{id}.jpg` and `snapshots/{camera}/{request}.jpg`.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::schema::ImageRef;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Db { path: String, source: rusqlite::Error },
    #[error("{path}: {source}")]
    File { path: String, source: std::io::Error },
}

pub struct Store {
    db: Connection,
    path: String,
    files: PathBuf,
}

/// Whether an image matches the reference an event made to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageCheck {
    Matches,
    /// Size or SHA-256 differ: the image is not the one the agent took.
    Differs,
    /// Not received (yet).
    Missing,
}

fn now() -> String {
    crate::events::rfc3339(std::time::SystemTime::now())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let name = path.display().to_string();
        let db = Connection::open(path).map_err(|source| StoreError::Db { path: name.clone(), source })?;
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS events (
                 id TEXT PRIMARY KEY,
                 kind TEXT NOT NULL,
                 camera TEXT NOT NULL,
                 topic TEXT NOT NULL,
                 received TEXT NOT NULL,
                 replayed INTEGER NOT NULL,
                 duplicates INTEGER NOT NULL DEFAULT 0,
                 payload TEXT NOT NULL,
                 image_topic TEXT,
                 image_bytes INTEGER,
                 image_sha256 TEXT
             );
             CREATE INDEX IF NOT EXISTS events_image ON events (image_topic);
             CREATE TABLE IF NOT EXISTS images (
                 topic TEXT PRIMARY KEY,
                 kind TEXT NOT NULL,
                 camera TEXT NOT NULL,
                 path TEXT NOT NULL,
                 bytes INTEGER NOT NULL,
                 sha256 TEXT NOT NULL,
                 received TEXT NOT NULL,
                 duplicates INTEGER NOT NULL DEFAULT 0
             );
             CREATE TABLE IF NOT EXISTS latest (topic TEXT PRIMARY KEY, kind TEXT NOT NULL, received TEXT NOT NULL, payload TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS invalid (received TEXT NOT NULL, topic TEXT NOT NULL, error TEXT NOT NULL, payload BLOB NOT NULL);",
        )
        .map_err(|source| StoreError::Db { path: name.clone(), source })?;
        let files = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Store { db, path: name, files })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Db { path: self.path.clone(), source }
    }

    /// Stores an event once; `false` (and the duplicate counted) when its id was seen before.
    #[allow(clippy::too_many_arguments)]
    pub fn event(&self, id: &str, kind: &str, camera: &str, topic: &str, payload: &str, replayed: bool, image: Option<&ImageRef>) -> Result<bool, StoreError> {
        let inserted = self
            .db
            .execute(
                "INSERT OR IGNORE INTO events (id, kind, camera, topic, received, replayed, payload, image_topic, image_bytes, image_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![id, kind, camera, topic, now(), replayed, payload, image.map(|i| &i.topic), image.map(|i| i.bytes as i64), image.map(|i| &i.sha256)],
            )
            .map_err(|e| self.err(e))?;
        if inserted == 0 {
            self.db.execute("UPDATE events SET duplicates = duplicates + 1 WHERE id = ?1", [id]).map_err(|e| self.err(e))?;
        }
        Ok(inserted == 1)
    }

    /// Keeps the latest message of a status-like topic (agent and camera status, stats, replies).
    pub fn latest(&self, key: &str, kind: &str, payload: &str) -> Result<(), StoreError> {
        self.db
            .execute("INSERT OR REPLACE INTO latest (topic, kind, received, payload) VALUES (?1, ?2, ?3, ?4)", params![key, kind, now(), payload])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    pub fn invalid(&self, topic: &str, error: &str, payload: &[u8]) -> Result<(), StoreError> {
        self.db
            .execute("INSERT INTO invalid (received, topic, error, payload) VALUES (?1, ?2, ?3, ?4)", params![now(), topic, error, payload])
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Writes a JPEG to `{folder}/{camera}/{name}.jpg` and records it; `false` when that topic's
    /// image was received before (it is written again: the same bytes, or a correction).
    pub fn image(&self, topic: &str, kind: &str, folder: &str, camera: &str, name: &str, jpeg: &[u8]) -> Result<(PathBuf, bool), StoreError> {
        let dir = self.files.join(folder).join(camera);
        let path = dir.join(format!("{name}.jpg"));
        let file_err = |source| StoreError::File { path: path.display().to_string(), source };
        std::fs::create_dir_all(&dir).map_err(file_err)?;
        std::fs::write(&path, jpeg).map_err(file_err)?;
        let seen: Option<i64> = self.db.query_row("SELECT 1 FROM images WHERE topic = ?1", [topic], |r| r.get(0)).optional().map_err(|e| self.err(e))?;
        if seen.is_some() {
            self.db.execute("UPDATE images SET duplicates = duplicates + 1 WHERE topic = ?1", [topic]).map_err(|e| self.err(e))?;
        } else {
            self.db
                .execute(
                    "INSERT INTO images (topic, kind, camera, path, bytes, sha256, received) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![topic, kind, camera, path.display().to_string(), jpeg.len() as i64, sha256_hex(jpeg), now()],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok((path, seen.is_none()))
    }

    /// Checks a reference against the image received on its topic.
    pub fn check_image(&self, image: &ImageRef) -> Result<ImageCheck, StoreError> {
        let stored: Option<(i64, String)> = self
            .db
            .query_row("SELECT bytes, sha256 FROM images WHERE topic = ?1", [&image.topic], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(match stored {
            None => ImageCheck::Missing,
            Some((bytes, sha)) if bytes as usize == image.bytes && sha == image.sha256 => ImageCheck::Matches,
            Some(_) => ImageCheck::Differs,
        })
    }

    /// For an image that arrived after its event: the reference the event made to it.
    pub fn reference_to(&self, topic: &str) -> Result<Option<(String, ImageRef)>, StoreError> {
        self.db
            .query_row("SELECT id, image_bytes, image_sha256 FROM events WHERE image_topic = ?1", [topic], |r| {
                Ok((r.get::<_, String>(0)?, ImageRef { topic: topic.to_string(), bytes: r.get::<_, i64>(1)? as usize, sha256: r.get(2)?, width: 0, height: 0, vehicle: None }))
            })
            .optional()
            .map_err(|e| self.err(e))
    }
}
