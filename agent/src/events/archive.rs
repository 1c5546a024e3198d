//! Evidence images kept on disk after they are published, so that the IOC can ask for one again
//! (the `evidence` command) after its own copy went missing. One file per image,
//! `{dir}/{camera}/{event id}.jpg`; event ids are UUID v7, so names sort by time and the oldest
//! go first when the archive is over its size bound.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("evidence archive {path}: {source}")]
pub struct ArchiveError {
    path: String,
    source: std::io::Error,
}

pub struct EvidenceArchive {
    dir: PathBuf,
    max_bytes: u64,
    /// Event id → (camera, bytes), oldest first.
    files: BTreeMap<String, (String, u64)>,
    total_bytes: u64,
}

impl EvidenceArchive {
    /// Opens the folder (creating it) and indexes what an earlier run kept.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<EvidenceArchive, ArchiveError> {
        let err = |source| ArchiveError { path: dir.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut files = BTreeMap::new();
        for camera in std::fs::read_dir(dir).map_err(err)?.flatten().filter(|e| e.path().is_dir()) {
            let camera_name = camera.file_name().to_string_lossy().into_owned();
            for file in std::fs::read_dir(camera.path()).map_err(err)?.flatten() {
                let path = file.path();
                // What a crash left half written (a power cut may leave the renamed file empty).
                if path.extension().is_some_and(|e| e == "partial") || file.metadata().is_ok_and(|m| m.len() == 0) {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                if let (Some("jpg"), Some(id), Ok(meta)) = (path.extension().and_then(|e| e.to_str()), path.file_stem().and_then(|s| s.to_str()), file.metadata()) {
                    files.insert(id.to_string(), (camera_name.clone(), meta.len()));
                }
            }
        }
        let total_bytes = files.values().map(|(_, bytes)| bytes).sum();
        let mut archive = EvidenceArchive { dir: dir.to_path_buf(), max_bytes, files, total_bytes };
        archive.prune();
        Ok(archive)
    }

    /// Whether an evidence image's worth can be written in the archive now (after a write failed).
    pub fn writable(&self) -> bool {
        let probe = self.dir.join(".probe");
        let written = std::fs::write(&probe, vec![0u8; crate::render::EVIDENCE_MAX_BYTES]).is_ok();
        let _ = std::fs::remove_file(&probe);
        written
    }

    fn path(&self, camera: &str, id: &str) -> PathBuf {
        self.dir.join(camera).join(format!("{id}.jpg"))
    }

    /// Keeps an image; the oldest go when the archive is over its bound.
    pub fn keep(&mut self, camera: &str, id: &str, jpeg: &[u8]) -> Result<(), ArchiveError> {
        let path = self.path(camera, id);
        let err = |source| ArchiveError { path: path.display().to_string(), source };
        std::fs::create_dir_all(self.dir.join(camera)).map_err(err)?;
        // Whole or not at all: a file cut short by a full disk or a crash would be handed out as
        // the evidence.
        crate::files::write_whole(&path, jpeg, false).map_err(err)?;
        if let Some((_, old)) = self.files.insert(id.to_string(), (camera.to_string(), jpeg.len() as u64)) {
            self.total_bytes -= old;
        }
        self.total_bytes += jpeg.len() as u64;
        self.prune();
        Ok(())
    }

    /// The camera and image of an event, if still kept.
    pub fn get(&self, id: &str) -> Option<(String, Result<Vec<u8>, ArchiveError>)> {
        let (camera, _) = self.files.get(id)?;
        let path = self.path(camera, id);
        let read = std::fs::read(&path).map_err(|source| ArchiveError { path: path.display().to_string(), source });
        Some((camera.clone(), read))
    }

    fn prune(&mut self) {
        while self.total_bytes > self.max_bytes {
            let Some((id, (camera, bytes))) = self.files.pop_first() else { break };
            let path = self.path(&camera, &id);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), "cannot remove old evidence: {e}");
            }
            self.total_bytes -= bytes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_images_and_drops_the_oldest_beyond_the_bound() {
        let dir = std::env::temp_dir().join(format!("canh-archive-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut archive = EvidenceArchive::open(&dir, 25).unwrap();
        archive.keep("cam1", "0001", &[1; 10]).unwrap();
        archive.keep("cam2", "0002", &[2; 10]).unwrap();
        assert_eq!(archive.get("0001").unwrap().1.unwrap(), vec![1; 10]);
        archive.keep("cam1", "0003", &[3; 10]).unwrap();
        assert!(archive.get("0001").is_none(), "the oldest went");
        assert!(!dir.join("cam1/0001.jpg").exists());
        // Another run finds what was kept, and clears what a crash left half written.
        std::fs::write(dir.join("cam1/0004.partial"), [4; 3]).unwrap();
        std::fs::write(dir.join("cam2/0005.jpg"), []).unwrap();
        let archive = EvidenceArchive::open(&dir, 25).unwrap();
        assert_eq!(archive.get("0002").unwrap().0, "cam2");
        assert_eq!(archive.get("0003").unwrap().1.unwrap(), vec![3; 10]);
        assert!(archive.get("0004").is_none() && !dir.join("cam1/0004.partial").exists());
        assert!(archive.get("0005").is_none() && !dir.join("cam2/0005.jpg").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
