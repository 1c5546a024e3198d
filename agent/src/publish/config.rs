//! `[mqtt]` in the site config.

use std::fmt;

use std::time::Duration;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use serde::Deserialize;

use super::tls::TlsFiles;
use crate::check::ConfigError;

/// A string that never appears in `Debug` output, logs or error messages.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker address, `mqtt://host[:port]` (port 1883 by default), or `mqtts://host[:port]`
    /// for TLS (port 8883 by default); `tcp://` and `ssl://` are their synonyms.
    pub url: String,
    /// MQTT client id; stable, so the broker keeps the session across reconnects. Default `canh-{site}`.
    pub client_id: Option<String>,
    /// Prefix of every topic. Default `canh/v1/{site}`.
    pub topic_prefix: Option<String>,
    pub username: Option<String>,
    /// The password itself. Prefer `password_file` or `password_env`, which keep it out of the
    /// site file.
    pub password: Option<Secret>,
    /// A file holding the password (trailing newline ignored); relative to the config file.
    /// `$CREDENTIALS_DIRECTORY/NAME` reads a systemd credential (`LoadCredential=`).
    pub password_file: Option<String>,
    /// An environment variable holding the password.
    pub password_env: Option<String>,
    /// (TLS) PEM file of the CA certificates the broker's certificate must be signed by.
    /// Default: the system's bundle, `/etc/ssl/certs/ca-certificates.crt`.
    pub ca_file: Option<String>,
    /// (Mutual TLS) PEM file of the agent's certificate (chain), and of its private key.
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
    /// MQTT keep-alive interval, seconds; a dead link is noticed within about twice this.
    #[serde(default = "default_keep_alive_s")]
    pub keep_alive_s: u64,
    /// The disk outbox (SQLite) holding every message until the broker acknowledges it.
    /// Default: `outbox.sqlite` in the site's `state_dir`. Relative paths are relative to the
    /// config file.
    pub outbox_path: Option<String>,
    /// Size bound of the outbox, MiB: beyond it the oldest counts go first, alerts last.
    #[serde(default = "default_outbox_max_mb")]
    pub outbox_max_mb: f64,
    /// Evidence images are kept after publishing, for the IOC's `evidence` command, in
    /// `evidence/` in the site's `state_dir`; the oldest go beyond this size, MiB.
    #[serde(default = "default_evidence_keep_mb")]
    pub evidence_keep_mb: f64,
}

fn default_evidence_keep_mb() -> f64 {
    256.0
}

fn default_outbox_max_mb() -> f64 {
    64.0
}

fn default_keep_alive_s() -> u64 {
    30
}

/// Debian's bundle of the system's trusted CAs.
const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl MqttConfig {
    /// A broker at `url` with every other key at its default.
    pub fn new(url: &str) -> MqttConfig {
        MqttConfig {
            url: url.into(),
            client_id: None,
            topic_prefix: None,
            username: None,
            password: None,
            password_file: None,
            password_env: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            keep_alive_s: default_keep_alive_s(),
            outbox_path: None,
            outbox_max_mb: default_outbox_max_mb(),
            evidence_keep_mb: default_evidence_keep_mb(),
        }
    }

    pub fn broker(&self) -> Result<BrokerAddress, String> {
        let url = url::Url::parse(&self.url).map_err(|e| format!("'{}' is not a valid URL: {e}", crate::check::redact_url(&self.url)))?;
        let (tls, default_port) = match url.scheme() {
            "mqtt" | "tcp" => (false, 1883),
            "mqtts" | "ssl" => (true, 8883),
            other => return Err(format!("scheme '{other}' is not supported (use mqtt://host:port, or mqtts://host:port for TLS)")),
        };
        if url.password().is_some() {
            return Err("put the password in mqtt.password, not in the URL".into());
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("the URL names no host")?;
        Ok(BrokerAddress { host: host.trim_matches(['[', ']']).to_string(), port: url.port().unwrap_or(default_port), tls })
    }

    /// The CA file TLS connections trust.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.ca_file.as_deref().unwrap_or(SYSTEM_CA_FILE).into()
    }

    /// Connection options for `client_id`: address, credentials and TLS; the caller sets the
    /// session and will. Errors name the key or file at fault, never a secret.
    pub fn options(&self, client_id: String) -> Result<MqttOptions, String> {
        let broker = self.broker()?;
        let mut options = MqttOptions::new(client_id, broker.host, broker.port);
        options.set_keep_alive(Duration::from_secs(self.keep_alive_s));
        let password = self.resolve_password()?;
        if let Some(user) = &self.username {
            options.set_credentials(user, password.as_ref().map_or("", Secret::expose));
        }
        if broker.tls {
            let ca_file = self.ca_file();
            let client = match (&self.client_cert_file, &self.client_key_file) {
                (Some(cert), Some(key)) => Some((std::path::Path::new(cert), std::path::Path::new(key))),
                _ => None,
            };
            let config = super::tls::client_config(&TlsFiles { ca_file: &ca_file, client })?;
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        }
        Ok(options)
    }

    /// Whether the password is a systemd credential whose folder is not known here (outside the
    /// service, without `canh check --credentials`).
    pub fn awaits_credentials(&self) -> bool {
        self.password_file.as_deref().is_some_and(|f| f.starts_with(CREDENTIALS_DIRECTORY))
    }

    /// What may stop the connection without being an error in the file.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.awaits_credentials() {
            warnings.push(format!(
                "mqtt.password_file names {CREDENTIALS_DIRECTORY}, which systemd sets for the service from its LoadCredential= line; not checked here (canh check --credentials DIR checks it)"
            ));
        }
        if self.resolve_password().is_ok_and(|p| p.is_some_and(|p| p.expose() == PLACEHOLDER_PASSWORD)) {
            warnings.push(format!("mqtt: the password is still the installer's placeholder '{PLACEHOLDER_PASSWORD}'"));
        }
        warnings
    }

    /// The password from whichever of `password`, `password_file` or `password_env` is set.
    /// Errors name the file or variable, never the secret.
    pub fn resolve_password(&self) -> Result<Option<Secret>, String> {
        match (&self.password, &self.password_file, &self.password_env) {
            (Some(password), None, None) => Ok(Some(password.clone())),
            (None, Some(file), None) => {
                if file.starts_with(CREDENTIALS_DIRECTORY) {
                    return Err(format!("password_file names {CREDENTIALS_DIRECTORY}, which systemd sets for the service from its LoadCredential= line; outside the service, name the folder holding the credential: canh check --credentials /etc/canh"));
                }
                let path = std::path::Path::new(file);
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                Ok(Some(Secret(text.trim_end_matches(['\n', '\r']).to_string())))
            }
            (None, None, Some(var)) => std::env::var(var).map(|v| Some(Secret(v))).map_err(|_| format!("the environment variable {var} is not set")),
            (None, None, None) => Ok(None),
            _ => Err("give at most one of password, password_file and password_env".into()),
        }
    }

    /// Makes relative paths relative to the config file's folder `base`, a credential's
    /// relative to `credentials_dir` (systemd's, when known), and puts the default outbox in
    /// `state_dir`.
    pub fn resolve_paths(&mut self, base: &std::path::Path, state_dir: &std::path::Path, credentials_dir: Option<&std::path::Path>) {
        if let Some(file) = &mut self.password_file {
            match (file.strip_prefix(CREDENTIALS_DIRECTORY), credentials_dir) {
                (Some(name), Some(dir)) => *file = dir.join(name.trim_start_matches('/')).to_string_lossy().into_owned(),
                (Some(_), None) => {}
                (None, _) => *file = crate::check::resolve_relative(base, file).to_string_lossy().into_owned(),
            }
        }
        for file in [&mut self.ca_file, &mut self.client_cert_file, &mut self.client_key_file].into_iter().flatten() {
            *file = crate::check::resolve_relative(base, file).to_string_lossy().into_owned();
        }
        let outbox = match &self.outbox_path {
            Some(path) => crate::check::resolve_relative(base, path),
            None => state_dir.join("outbox.sqlite"),
        };
        self.outbox_path = Some(outbox.to_string_lossy().into_owned());
    }

    pub fn outbox_path(&self) -> std::path::PathBuf {
        self.outbox_path.as_deref().unwrap_or("outbox.sqlite").into()
    }

    pub fn client_id(&self, site: &str) -> String {
        self.client_id.clone().unwrap_or_else(|| format!("canh-{site}"))
    }

    pub fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        match self.broker() {
            Err(e) => errors.push(ConfigError::new(format!("{path}.url"), e)),
            Ok(broker) if broker.tls => {
                let client = match (&self.client_cert_file, &self.client_key_file) {
                    (Some(cert), Some(key)) => Some((std::path::Path::new(cert), std::path::Path::new(key))),
                    (None, None) => None,
                    _ => {
                        errors.push(ConfigError::new(format!("{path}.client_cert_file"), "client_cert_file and client_key_file go together"));
                        None
                    }
                };
                let ca_file = self.ca_file();
                if let Err(e) = super::tls::client_config(&TlsFiles { ca_file: &ca_file, client }) {
                    // The message starts with the key at fault.
                    errors.push(ConfigError::new(path.to_string(), e));
                }
            }
            Ok(_) if self.ca_file.is_some() || self.client_cert_file.is_some() || self.client_key_file.is_some() => {
                errors.push(ConfigError::new(format!("{path}.url"), "TLS files are given: use an mqtts:// URL"));
            }
            Ok(_) => {}
        }
        match self.resolve_password() {
            Ok(Some(_)) if self.username.is_none() => errors.push(ConfigError::new(format!("{path}.username"), "is required when a password is given")),
            Ok(_) => {}
            // A site file meant for the service, checked outside it: a warning (see `warnings`).
            Err(_) if self.awaits_credentials() => {}
            Err(e) => errors.push(ConfigError::new(format!("{path}.password"), e)),
        }
        if let Some(prefix) = &self.topic_prefix
            && (prefix.is_empty() || prefix.ends_with('/') || prefix.contains(['+', '#']))
        {
            errors.push(ConfigError::new(format!("{path}.topic_prefix"), "must be non-empty, without a trailing '/', '+' or '#'"));
        }
        if !(self.outbox_max_mb > 0.0 && self.outbox_max_mb.is_finite()) {
            errors.push(ConfigError::new(format!("{path}.outbox_max_mb"), "must be a positive number of MiB"));
        }
        if !(self.evidence_keep_mb >= 0.0 && self.evidence_keep_mb.is_finite()) {
            errors.push(ConfigError::new(format!("{path}.evidence_keep_mb"), "must be a number of MiB, 0 or more"));
        }
        // The MQTT header holds it in 16 bits: more would wrap to a keep-alive of 0 (none).
        if !(5..=u64::from(u16::MAX)).contains(&self.keep_alive_s) {
            errors.push(ConfigError::new(format!("{path}.keep_alive_s"), format!("must be 5 to {} seconds", u16::MAX)));
        }
    }
}

/// How a site file names systemd's folder of the service's credentials (`LoadCredential=`).
const CREDENTIALS_DIRECTORY: &str = "$CREDENTIALS_DIRECTORY";
/// The password `systemd/install.sh` puts in the credential file for the installer to replace.
const PLACEHOLDER_PASSWORD: &str = "change-me";

/// The topic prefix for a site: the configured one, or `canh/v1/{site}`.
pub fn topic_prefix(mqtt: Option<&MqttConfig>, site: &str) -> String {
    mqtt.and_then(|m| m.topic_prefix.clone()).unwrap_or_else(|| format!("canh/v1/{site}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> MqttConfig {
        MqttConfig::new(url)
    }

    #[test]
    fn parses_broker_urls() {
        assert_eq!(config("mqtt://127.0.0.1").broker().unwrap(), BrokerAddress { host: "127.0.0.1".into(), port: 1883, tls: false });
        assert_eq!(config("mqtts://broker.local").broker().unwrap(), BrokerAddress { host: "broker.local".into(), port: 8883, tls: true });
        assert_eq!(config("tcp://broker.local:2883").broker().unwrap().port, 2883);
        assert!(config("http://x").broker().unwrap_err().contains("scheme 'http'"));
        assert!(!config("mqtt://u:hunter2@x").broker().unwrap_err().contains("hunter2"));
    }

    #[test]
    fn password_from_a_file_or_the_environment() {
        let file = std::env::temp_dir().join(format!("canh-password-{}", std::process::id()));
        std::fs::write(&file, "from-file\n").unwrap();
        let c = MqttConfig { password_file: Some(file.to_string_lossy().into()), ..config("mqtt://x") };
        assert_eq!(c.resolve_password().unwrap().unwrap().expose(), "from-file");
        // Cargo sets this variable for every test run.
        let c = MqttConfig { password_env: Some("CARGO_PKG_NAME".into()), ..config("mqtt://x") };
        assert_eq!(c.resolve_password().unwrap().unwrap().expose(), "canh");
        let c = MqttConfig { password_env: Some("CANH_NO_SUCH_VARIABLE".into()), ..config("mqtt://x") };
        assert!(c.resolve_password().unwrap_err().contains("CANH_NO_SUCH_VARIABLE is not set"));
        let c = MqttConfig { password: Some(Secret("x".into())), password_env: Some("HOME".into()), ..config("mqtt://x") };
        assert!(c.resolve_password().unwrap_err().contains("at most one"));
        let c = MqttConfig { password_file: Some("/no/such/file".into()), ..config("mqtt://x") };
        assert!(c.resolve_password().unwrap_err().contains("cannot read /no/such/file"));
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn a_systemd_credential_is_read_from_the_credentials_folder_once_it_is_known() {
        let dir = std::env::temp_dir().join(format!("canh-credentials-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mqtt-password"), "from-systemd\n").unwrap();
        let site = MqttConfig { password_file: Some("$CREDENTIALS_DIRECTORY/mqtt-password".into()), ..config("mqtt://x") };
        let mut c = site.clone();
        c.resolve_paths(std::path::Path::new("/etc/canh"), &dir, None);
        assert!(c.resolve_password().unwrap_err().contains("canh check --credentials"));
        let mut errors = Vec::new();
        c.validate("mqtt", &mut errors);
        assert_eq!(errors, vec![], "a site meant for the service is no error outside it");
        assert!(c.warnings()[0].contains("--credentials"), "{:?}", c.warnings());
        let mut c = site;
        c.resolve_paths(std::path::Path::new("/etc/canh"), &dir, Some(&dir));
        assert_eq!(c.resolve_password().unwrap().unwrap().expose(), "from-systemd");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let c = MqttConfig { password: Some(Secret("hunter2".into())), ..config("mqtt://x") };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
