//! Where `canh listen` keeps what it receives: SQLite for messages (events once each, by id; the
//! latest status, stats and replies; invalid messages with the reason) and the JPEGs as files
//! beside the database, `evidence/{camera}/{id}.jpg` and `snapshots/{camera}/{request}.jpg`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

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

/// The folder beside the database `path`, where its images go: absolute, so the paths recorded
/// say where they are from any folder (a bare file name's is the current folder).
fn files_folder(path: &Path) -> std::io::Result<PathBuf> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::path::absolute(parent)
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
    crate::events::rfc3339(SystemTime::now())
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
             CREATE TABLE IF NOT EXISTS invalid (received TEXT NOT NULL, topic TEXT NOT NULL, error TEXT NOT NULL, payload BLOB NOT NULL);
             CREATE INDEX IF NOT EXISTS events_received ON events (received);
             CREATE INDEX IF NOT EXISTS images_received ON images (received);
             CREATE INDEX IF NOT EXISTS invalid_received ON invalid (received);",
        )
        .map_err(|source| StoreError::Db { path: name.clone(), source })?;
        let files = files_folder(path).map_err(|source| StoreError::File { path: name.clone(), source })?;
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

    /// Forgets what was received before `cutoff`: events, images (their files too) and invalid
    /// messages; each topic's latest status stays. How many events and images went. An event
    /// forgotten is stored again should it come again (the agent replays only what the broker
    /// has not acknowledged, within hours). An image's file is found in this store's folder
    /// whatever path was recorded (relative ones, before, were from wherever it ran); those that
    /// cannot be deleted are left, and logged in one line.
    pub fn prune(&self, cutoff: SystemTime) -> Result<(usize, usize), StoreError> {
        let before = crate::events::rfc3339(cutoff);
        let paths: Vec<String> = {
            let mut old = self.db.prepare("SELECT path FROM images WHERE received < ?1").map_err(|e| self.err(e))?;
            old.query_map([&before], |r| r.get(0)).and_then(Iterator::collect).map_err(|e| self.err(e))?
        };
        let mut left: Vec<String> = Vec::new();
        for recorded in &paths {
            let Some(path) = self.own_file(Path::new(recorded)) else {
                left.push(format!("{recorded}: not an image path of this store"));
                continue;
            };
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                left.push(format!("{}: {e}", path.display()));
            }
        }
        if let Some(first) = left.first() {
            tracing::warn!(left = left.len(), "images being forgotten whose files cannot be deleted stay on the disk; the first: {first}");
        }
        let images = self.db.execute("DELETE FROM images WHERE received < ?1", [&before]).map_err(|e| self.err(e))?;
        let events = self.db.execute("DELETE FROM events WHERE received < ?1", [&before]).map_err(|e| self.err(e))?;
        self.db.execute("DELETE FROM invalid WHERE received < ?1", [&before]).map_err(|e| self.err(e))?;
        Ok((events, images))
    }

    /// The image file recorded as `recorded` (`…/{evidence|snapshots}/{camera}/{name}.jpg`), in
    /// this store's folder; `None` for a path of any other shape: never a file elsewhere, nor
    /// the database.
    fn own_file(&self, recorded: &Path) -> Option<PathBuf> {
        let mut parts = recorded.components().rev().map(|c| match c {
            std::path::Component::Normal(part) => part.to_str(),
            _ => None,
        });
        let (name, camera, folder) = (parts.next()??, parts.next()??, parts.next()??);
        (["evidence", "snapshots"].contains(&folder) && name.ends_with(".jpg")).then(|| self.files.join(folder).join(camera).join(name))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pruning_forgets_events_images_and_their_files_received_before_the_cutoff() {
        let dir = std::env::temp_dir().join(format!("canh-store-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("listen.sqlite")).unwrap();
        assert!(store.event("e1", "violation", "gate", "p/gate/violation", "{}", false, None).unwrap());
        let (image, _) = store.image("p/gate/evidence/e1", "evidence", "evidence", "gate", "e1", b"jpeg").unwrap();
        store.latest("p/gate/status", "camera_status", "{}").unwrap();
        store.invalid("p/gate/crossing", "not JSON", b"?").unwrap();
        assert_eq!(store.prune(SystemTime::now() - Duration::from_secs(3600)).unwrap(), (0, 0), "nothing that old");
        assert!(image.is_file());
        assert_eq!(store.prune(SystemTime::now() + Duration::from_secs(1)).unwrap(), (1, 1));
        assert!(!image.exists(), "the image's file goes with it");
        let count = |table: &str| store.db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!((count("events"), count("images"), count("invalid"), count("latest")), (0, 0, 0, 1), "the latest status stays");
        assert!(store.event("e1", "violation", "gate", "p/gate/violation", "{}", false, None).unwrap(), "stored again once forgotten");
        // A path recorded relative to another folder, or pointing elsewhere, is this store's file.
        assert_eq!(store.own_file(Path::new("evidence/gate/e2.jpg")), Some(dir.join("evidence/gate/e2.jpg")));
        assert_eq!(store.own_file(Path::new("/elsewhere/../x/snapshots/gate/r1.jpg")), Some(dir.join("snapshots/gate/r1.jpg")));
        for odd in ["listen.sqlite", "x/gate/e2.jpg", "evidence/gate/e2.sqlite", "evidence/../e2.jpg"] {
            assert_eq!(store.own_file(Path::new(odd)), None, "{odd}");
        }
        assert_eq!(files_folder(Path::new("listen.sqlite")).unwrap(), std::env::current_dir().unwrap(), "a bare file name's folder");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
