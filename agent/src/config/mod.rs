//! The site configuration: one TOML file per site, parsed, validated and resolved before anything runs.
//!
//! Each stage owns the config struct (and checks) for its own part: lines, rules and the fire
//! watch in `analytics` (each an [`AnalyzerConfig`](crate::analytics::AnalyzerConfig) that checks
//! itself and builds its analyzer), the tracker in `track`, the detector and motion gate in
//! `detect`, MQTT in `publish`; what they share (errors with key paths, the common checks) is the
//! leaf module [`crate::check`]. This module holds the site and camera structs ([`camera`]), ties
//! the parts together, turns relative paths into absolute ones (relative to the config file) and
//! collects *every* problem with its key path, so an installer fixes a file in one pass. Nothing
//! here prints secrets: sources are shown through [`redact_url`].

mod camera;
mod paths;
mod recover;

pub use crate::check::{ConfigError, ConfigErrors, redact_url};
pub use camera::{CameraConfig, DecodeFrames};
pub use paths::Resources;
pub use recover::{Parsed, without_placeholders};

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::check::{check_id, check_whole_seconds, is_url, resolve_relative};
use crate::detect::DetectorConfig;
use crate::publish::MqttConfig;
use crate::track::TrackerConfig;

/// The whole site file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Site id, used in MQTT topics and client id. Letters, digits, `-` and `_`.
    pub site: String,
    /// Length of the period over which line counts are summed and published, seconds.
    #[serde(default = "default_counts_interval_s")]
    pub counts_interval_s: u64,
    /// How often the agent publishes its `stats` message, seconds; 0 turns it off.
    #[serde(default = "default_stats_interval_s")]
    pub stats_interval_s: u64,
    #[serde(default)]
    pub detector: DetectorConfig,
    #[serde(default)]
    pub tracker: TrackerConfig,
    /// Where events go; without it they are printed to stdout as JSON lines.
    pub mqtt: Option<MqttConfig>,
    /// The `/metrics` and `/healthz` endpoint; off without it.
    pub metrics: Option<MetricsConfig>,
    /// Where the agent keeps what must outlive it (the outbox, kept evidence, smoke baselines).
    /// Default: `$STATE_DIRECTORY` (systemd's `StateDirectory=`), else the config file's folder.
    /// Relative paths are relative to the config file.
    pub state_dir: Option<String>,
    pub cameras: Vec<CameraConfig>,
}

fn default_counts_interval_s() -> u64 {
    60
}

fn default_stats_interval_s() -> u64 {
    60
}

/// `[metrics]`: where Prometheus scrapes the agent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `address:port` to serve `/metrics` and `/healthz` on, e.g. `127.0.0.1:9464`.
    pub listen: String,
}

impl SiteConfig {
    /// Reads, parses and validates a site file, resolving model and pipeline names through
    /// `resources`. Every error is reported at once: the structural ones, then the semantic ones
    /// of what remains without the offending keys.
    pub fn load(path: &Path, resources: &Resources) -> Result<SiteConfig, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::single(path, ConfigError::new("", format!("cannot read the file: {e}")))
        })?;
        let Parsed { config, mut errors, placeholders } = Self::parse_all(&text);
        if let Some(mut config) = config {
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            config.resolve_paths(&base, resources);
            errors.extend(without_placeholders(config.validate(resources), &placeholders));
            if errors.is_empty() {
                return Ok(config);
            }
        }
        Err(ConfigErrors { file: path.to_path_buf(), errors })
    }

    /// Parses TOML into the config structs; the first structural error when there is one.
    pub fn parse(text: &str) -> Result<SiteConfig, ConfigError> {
        match Self::parse_all(text) {
            Parsed { config: Some(config), errors, .. } if errors.is_empty() => Ok(config),
            Parsed { errors, .. } => Err(errors.into_iter().next().unwrap_or_else(|| ConfigError::new("", "the file does not parse"))),
        }
    }

    /// Parses TOML into the config structs, collecting every structural error (see [`recover`]).
    pub fn parse_all(text: &str) -> Parsed {
        recover::parse_all(text)
    }

    fn resolve_paths(&mut self, base: &Path, resources: &Resources) {
        let state_dir = match (&self.state_dir, std::env::var_os("STATE_DIRECTORY")) {
            (Some(dir), _) => resolve_relative(base, dir),
            (None, Some(dir)) => PathBuf::from(dir),
            (None, None) => base.to_path_buf(),
        };
        if let Some(mqtt) = &mut self.mqtt {
            mqtt.resolve_paths(base, &state_dir, resources.credentials_dir.as_deref());
        }
        self.state_dir = Some(state_dir.to_string_lossy().into_owned());
        for camera in &mut self.cameras {
            if !is_url(&camera.source) {
                camera.source = resolve_relative(base, &camera.source).to_string_lossy().into_owned();
            }
        }
    }

    /// Where the agent keeps what must outlive it (resolved when the file is loaded).
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.as_deref().unwrap_or(".").into()
    }

    /// What may go wrong at run time without being an error in the file: a broker password
    /// that cannot be checked here or is the installer's placeholder; the outbox's and the
    /// evidence archive's size budgets larger than the free space where they live (the disk fills
    /// before the budgets drop anything).
    pub fn warnings(&self) -> Vec<String> {
        let Some(mqtt) = &self.mqtt else { return Vec::new() };
        let mut warnings = mqtt.warnings();
        let budget_mb = mqtt.outbox_max_mb + mqtt.evidence_keep_mb;
        let dir = self.state_dir();
        if let Some(free) = crate::check::free_bytes(&dir).filter(|&free| budget_mb * 1024.0 * 1024.0 > free as f64) {
            warnings.push(format!(
                "state_dir {}: mqtt.outbox_max_mb and mqtt.evidence_keep_mb ({budget_mb} MiB together) exceed the {:.1} MiB free there; when the disk fills, the agent drops counts, then images, and holds alerts in memory",
                dir.display(),
                free as f64 / 1024.0 / 1024.0
            ));
        }
        warnings
    }

    /// Every semantic problem in the file, each with its key path. Empty when the file is good.
    pub fn validate(&self, resources: &Resources) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        check_id(&self.site, "site", &mut errors);
        check_whole_seconds(self.counts_interval_s, "counts_interval_s", &mut errors);
        self.detector.validate("detector", self.cameras.len(), &mut errors);
        self.tracker.validate("tracker", &mut errors);
        if let Some(mqtt) = &self.mqtt {
            mqtt.validate("mqtt", &mut errors);
        }
        if let Some(metrics) = &self.metrics
            && metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            errors.push(ConfigError::new("metrics.listen", format!("'{}' is not an address:port such as 127.0.0.1:9464", metrics.listen)));
        }
        if self.cameras.is_empty() {
            errors.push(ConfigError::new("cameras", "at least one camera is needed"));
        }
        let mut seen = HashSet::new();
        for (i, camera) in self.cameras.iter().enumerate() {
            let path = format!("cameras[{i}]");
            check_id(&camera.id, &format!("{path}.id"), &mut errors);
            if !seen.insert(camera.id.as_str()) {
                errors.push(ConfigError::new(format!("{path}.id"), format!("'{}' is used by another camera", camera.id)));
            }
            camera.validate(&path, resources, self.mqtt.is_some(), &mut errors);
        }
        errors
    }
}

#[cfg(test)]
mod tests;
