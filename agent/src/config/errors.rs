//! Config errors that name the key path (`cameras[1].lines[0].p1`) and, for parse errors, the line.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// Key path such as `cameras[1].lines[0].p1`; empty for the file as a whole.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { path: path.into(), message: message.into() }
    }

    /// Builds an error from a TOML/serde error. Only the message and position are kept: the TOML
    /// crate's own rendering quotes the offending line, which may hold a password.
    pub(super) fn from_toml(error: &toml::de::Error, text: &str, path: &str) -> ConfigError {
        let mut message = error.message().trim().to_string();
        if let Some(span) = error.span() {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            message = format!("{message} (line {line})");
        }
        ConfigError::new(path, message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { write!(f, "{}", self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// All the errors found in one file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub(super) fn single(file: &Path, error: ConfigError) -> ConfigErrors {
        ConfigErrors { file: file.to_path_buf(), errors: vec![error] }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(f, "{}: {n} error{}", self.file.display(), if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}
