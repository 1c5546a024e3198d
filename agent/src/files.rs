//! Files written whole or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The name a file is written under before it replaces `path`.
pub fn partial(path: &Path) -> PathBuf {
    path.with_extension("partial")
}

/// Writes `bytes` to `path` through [`partial`] renamed over it, so that a crash mid-write leaves
/// the old file (or none), never a part of the new one; `durable` flushes it to the disk first,
/// so that a power cut does not leave an empty file where months of learning were.
pub fn write_whole(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    let partial = partial(path);
    let written = std::fs::File::create(&partial).and_then(|mut file| {
        file.write_all(bytes)?;
        if durable { file.sync_all() } else { Ok(()) }
    });
    match written.and_then(|_| std::fs::rename(&partial, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_partial() {
        let dir = std::env::temp_dir().join(format!("canh-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.bin");
        std::fs::write(&path, b"old").unwrap();
        write_whole(&path, b"new", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!partial(&path).exists());
        // A file that cannot be written (its folder is gone) leaves nothing behind.
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(write_whole(&path, b"newer", false).is_err());
        assert!(!dir.exists());
    }
}
