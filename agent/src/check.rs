//! What every part of the configuration checks with: errors that name the key path
//! (`cameras[1].lines[0].p1`) and, for parse errors, the line; the checks shared by several
//! stages' configs (ids, normalized points, segments, classes, positive numbers); and path and
//! URL helpers. A leaf: it imports nothing of the stages, so each stage's config can use it
//! without the configuration and the stages importing each other.

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
    pub fn from_toml(error: &toml::de::Error, text: &str, path: &str) -> ConfigError {
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
    pub fn single(file: &Path, error: ConfigError) -> ConfigErrors {
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

/// Ids end up in MQTT topics, where `/`, `+`, `#` and spaces would break subscriptions.
/// Whether `text` is a plain id: letters, digits, '-' and '_' only, 1 to `max_bytes` long (what
/// may name a topic level or a file).
pub fn is_plain_id(text: &str, max_bytes: usize) -> bool {
    (1..=max_bytes).contains(&text.len()) && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub fn check_id(id: &str, path: &str, errors: &mut Vec<ConfigError>) {
    if id.is_empty() {
        errors.push(ConfigError::new(path, "must not be empty"));
    } else if !is_plain_id(id, usize::MAX) {
        errors.push(ConfigError::new(path, format!("'{id}' may hold only letters, digits, '-' and '_'")));
    }
}

/// Checks a normalized point, naming the coordinate that is out of range.
pub fn check_point(point: [f32; 2], path: &str, errors: &mut Vec<ConfigError>) {
    for (value, axis) in point.iter().zip(["x", "y"]) {
        if !(0.0..=1.0).contains(value) {
            errors.push(ConfigError::new(path, format!("{axis} must be within 0..1 (normalized), got {value}")));
        }
    }
}

/// Checks a `classes` list against the class names the camera's model reports (its labels less
/// those read as another; when the model could be loaded).
pub fn check_classes(classes: Option<&[String]>, labels: Option<&[String]>, path: &str, errors: &mut Vec<ConfigError>) {
    if let (Some(classes), Some(labels)) = (classes, labels) {
        if classes.is_empty() {
            errors.push(ConfigError::new(format!("{path}.classes"), "must name at least one class (leave it out for the model's vehicle classes)"));
        }
        for (k, class) in classes.iter().enumerate() {
            if !labels.contains(class) {
                errors.push(ConfigError::new(format!("{path}.classes[{k}]"), format!("'{class}' is not a class this camera's model reports (see its manifest's labels and read_as)")));
            }
        }
    }
}

/// Checks a line segment given as `p1`/`p2` keys under `path`: both normalized, and distinct.
pub fn check_segment(p1: [f32; 2], p2: [f32; 2], path: &str, errors: &mut Vec<ConfigError>) {
    check_point(p1, &format!("{path}.p1"), errors);
    check_point(p2, &format!("{path}.p2"), errors);
    if p1 == p2 {
        errors.push(ConfigError::new(format!("{path}.p2"), "must differ from p1"));
    }
}

/// Longest time a setting may give, in seconds. A week is longer than any of them needs, and a
/// time beyond what a `Duration` holds (1e30) would stop the agent as it starts.
pub const MAX_SECONDS: f32 = 604_800.0;

/// Checks a time in seconds: above 0 when `positive`, else 0 or more; at most a week.
fn check_time(value: f32, positive: bool, path: &str, errors: &mut Vec<ConfigError>) {
    let low = if positive { value > 0.0 } else { value >= 0.0 };
    if !(low && value <= MAX_SECONDS) {
        let from = if positive { "more than 0" } else { "0 or more" };
        errors.push(ConfigError::new(path, format!("must be {from} and at most {MAX_SECONDS} seconds (a week), got {value}")));
    }
}

/// Checks a time in seconds that may be 0, up to [`MAX_SECONDS`].
pub fn check_seconds(value: f32, path: &str, errors: &mut Vec<ConfigError>) {
    check_time(value, false, path, errors);
}

/// Checks a time in seconds above 0, up to [`MAX_SECONDS`].
pub fn check_positive_seconds(value: f32, path: &str, errors: &mut Vec<ConfigError>) {
    check_time(value, true, path, errors);
}

/// Checks a whole number of seconds: at least 1, at most [`MAX_SECONDS`].
pub fn check_whole_seconds(value: u64, path: &str, errors: &mut Vec<ConfigError>) {
    if !(1..=MAX_SECONDS as u64).contains(&value) {
        errors.push(ConfigError::new(path, format!("must be 1 to {MAX_SECONDS} seconds (a week), got {value}")));
    }
}

/// Checks that `value` is a positive finite number; `what` names it in the message.
pub fn check_positive(value: f32, path: &str, what: &str, errors: &mut Vec<ConfigError>) {
    if !(value > 0.0 && value.is_finite()) {
        errors.push(ConfigError::new(path, format!("must be a positive {what}, got {value}")));
    }
}

/// Reports every id (of a camera's lines, rules, zones) that an earlier one already uses; `what`
/// names the thing in the message.
pub fn check_unique_ids<'a>(ids: impl Iterator<Item = &'a str>, path: &str, what: &str, errors: &mut Vec<ConfigError>) {
    let mut seen = std::collections::HashSet::new();
    for (j, id) in ids.enumerate() {
        if !seen.insert(id) {
            errors.push(ConfigError::new(format!("{path}[{j}].id"), format!("'{id}' is used by another {what} of this camera")));
        }
    }
}

/// Resolves `path` against the config file's folder unless it is absolute.
pub fn resolve_relative(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

/// Bytes free for an unprivileged writer on the file system holding `path` (or its nearest
/// existing ancestor); `None` when that cannot be read.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let name = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `name` is a NUL-terminated path and `stats` is written by statvfs before it is read.
    let stats = unsafe {
        if libc::statvfs(name.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    Some(stats.f_bavail as u64 * stats.f_frsize as u64)
}

/// Whether a camera's source is a stream URL rather than a file path.
pub fn is_url(source: &str) -> bool {
    source.starts_with("rtsp://") || source.starts_with("rtsps://")
}

/// The URL with its password replaced by `***`, for logs, errors and status messages.
/// Strings that are not URLs (file paths) are returned unchanged.
pub fn redact_url(source: &str) -> String {
    match url::Url::parse(source) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => source.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_rtsp_password_only() {
        assert_eq!(redact_url("rtsp://admin:s3cret@10.0.0.5:554/sub"), "rtsp://admin:***@10.0.0.5:554/sub");
        assert_eq!(redact_url("rtsp://10.0.0.5/sub"), "rtsp://10.0.0.5/sub");
        assert_eq!(redact_url("/var/clips/a.mp4"), "/var/clips/a.mp4");
    }
}
