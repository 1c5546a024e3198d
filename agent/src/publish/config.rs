//! `[mqtt]` in the site config.

use std::fmt;

use serde::Deserialize;

use crate::config::ConfigError;

/// A string that never appears in `Debug` output, logs or error messages.
#[derive(Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker address, `mqtt://host[:port]` (port 1883 by default).
    pub url: String,
    /// MQTT client id; stable, so the broker keeps the session across reconnects. Default `canh-{site}`.
    pub client_id: Option<String>,
    /// Prefix of every topic. Default `canh/v1/{site}`.
    pub topic_prefix: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// MQTT keep-alive interval, seconds; a dead link is noticed within about twice this.
    #[serde(default = "default_keep_alive_s")]
    pub keep_alive_s: u64,
}

fn default_keep_alive_s() -> u64 {
    30
}

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
}

impl MqttConfig {
    pub fn broker(&self) -> Result<BrokerAddress, String> {
        let url = url::Url::parse(&self.url).map_err(|e| format!("'{}' is not a valid URL: {e}", crate::config::redact_url(&self.url)))?;
        if !matches!(url.scheme(), "mqtt" | "tcp") {
            return Err(format!("scheme '{}' is not supported (use mqtt://host:port)", url.scheme()));
        }
        if url.password().is_some() {
            return Err("put the password in mqtt.password, not in the URL".into());
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("the URL names no host")?;
        Ok(BrokerAddress { host: host.trim_matches(['[', ']']).to_string(), port: url.port().unwrap_or(1883) })
    }

    pub fn client_id(&self, site: &str) -> String {
        self.client_id.clone().unwrap_or_else(|| format!("canh-{site}"))
    }

    pub fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        if let Err(e) = self.broker() {
            errors.push(ConfigError::new(format!("{path}.url"), e));
        }
        if self.password.is_some() && self.username.is_none() {
            errors.push(ConfigError::new(format!("{path}.username"), "is required when a password is given"));
        }
        if let Some(prefix) = &self.topic_prefix
            && (prefix.is_empty() || prefix.ends_with('/') || prefix.contains(['+', '#']))
        {
            errors.push(ConfigError::new(format!("{path}.topic_prefix"), "must be non-empty, without a trailing '/', '+' or '#'"));
        }
        if self.keep_alive_s < 5 {
            errors.push(ConfigError::new(format!("{path}.keep_alive_s"), "must be at least 5 seconds"));
        }
    }
}

/// The topic prefix for a site: the configured one, or `canh/v1/{site}`.
pub fn topic_prefix(mqtt: Option<&MqttConfig>, site: &str) -> String {
    mqtt.and_then(|m| m.topic_prefix.clone()).unwrap_or_else(|| format!("canh/v1/{site}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> MqttConfig {
        MqttConfig { url: url.into(), client_id: None, topic_prefix: None, username: None, password: None, keep_alive_s: 30 }
    }

    #[test]
    fn parses_broker_urls() {
        assert_eq!(config("mqtt://127.0.0.1").broker().unwrap(), BrokerAddress { host: "127.0.0.1".into(), port: 1883 });
        assert_eq!(config("tcp://broker.local:2883").broker().unwrap().port, 2883);
        assert!(config("http://x").broker().unwrap_err().contains("scheme 'http'"));
        assert!(!config("mqtt://u:hunter2@x").broker().unwrap_err().contains("hunter2"));
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let c = MqttConfig { password: Some(Secret("hunter2".into())), ..config("mqtt://x") };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
