//! Control stage: commands from the IOC, on `{prefix}/cmd/{command}`, as documented in
//! `docs/messages.md`. This module reads and validates them; the agent carries them out and
//! answers every one on `{prefix}/reply`, an error included, so a bad command never goes
//! unanswered and never stops the agent.

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// What the IOC asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A fresh JPEG of a camera's latest analysed frame.
    Snapshot { camera: String },
    /// Publish an event's evidence image again.
    Evidence { event_id: String },
    /// Read the site config again (validated first; a bad one is refused and the old one kept).
    Reload,
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Snapshot { .. } => "snapshot",
            Command::Evidence { .. } => "evidence",
            Command::Reload => "reload",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub request_id: String,
    pub command: Command,
}

/// A command that cannot be carried out as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The request's id, when it had a readable one.
    pub request_id: Option<String>,
    /// The command named by the topic.
    pub command: String,
    pub error: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotArgs {
    request_id: String,
    camera: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceArgs {
    request_id: String,
    event_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadArgs {
    request_id: String,
}

/// Longest request id: it becomes part of a topic.
const MAX_REQUEST_ID: usize = 64;

/// Reads the command on `topic` (below `commands_prefix`, e.g. `canh/v1/site/cmd/`).
pub fn parse(commands_prefix: &str, topic: &str, payload: &[u8]) -> Result<Request, Rejected> {
    let name = shown(topic.strip_prefix(commands_prefix).unwrap_or(topic));
    let value: Result<serde_json::Value, _> = serde_json::from_slice(payload);
    let request_id = value.as_ref().ok().and_then(|v| v.get("request_id")).and_then(|id| id.as_str()).filter(|id| valid_request_id(id)).map(str::to_string);
    let reject = |error: String| Rejected { request_id: request_id.clone(), command: name.clone(), error };
    let value = value.map_err(|e| reject(format!("the payload is not JSON: {e}")))?;
    if let Some(id) = value.get("request_id").and_then(|id| id.as_str())
        && !valid_request_id(id)
    {
        return Err(reject(format!("request_id: 1 to {MAX_REQUEST_ID} letters, digits, '-' or '_'")));
    }
    let (request_id, command) = match name.as_str() {
        "snapshot" => args::<SnapshotArgs>(value).map(|a| (a.request_id, Command::Snapshot { camera: a.camera })),
        "evidence" => args::<EvidenceArgs>(value).map(|a| (a.request_id, Command::Evidence { event_id: a.event_id })),
        "reload" => args::<ReloadArgs>(value).map(|a| (a.request_id, Command::Reload)),
        _ => Err(format!("unknown command '{name}' (snapshot, evidence or reload)")),
    }
    .map_err(reject)?;
    Ok(Request { request_id, command })
}

/// Longest name or id from a command that a reply repeats, in characters.
const MAX_SHOWN_CHARS: usize = 64;

/// `text` from a command as a reply repeats it: cut to [`MAX_SHOWN_CHARS`] characters, with `…`
/// when cut. A command's topic or payload may name a command, camera or event in tens of
/// kilobytes, and a reply repeating it whole would be over the packet limit, never sent.
pub fn shown(text: &str) -> String {
    cut(text, MAX_SHOWN_CHARS)
}

/// `text`'s first `max_chars` characters, with `…` when cut.
fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Longest error a reply gives about a command's arguments, in characters, besides where it is:
/// serde names the unknown field it met, which the command may make as long as it likes.
const MAX_ARGS_ERROR_CHARS: usize = 256;

/// Whether `id` may be used as a request id (it ends up in topics).
pub fn valid_request_id(id: &str) -> bool {
    crate::check::is_plain_id(id, MAX_REQUEST_ID)
}

fn args<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let error = cut(&e.inner().to_string(), MAX_ARGS_ERROR_CHARS);
        match e.path().to_string().as_str() {
            "." => error,
            path => format!("{}: {error}", shown(path)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "canh/v1/site/cmd/";

    fn topic(name: &str) -> String {
        format!("{PREFIX}{name}")
    }

    #[test]
    fn reads_each_command() {
        let r = parse(PREFIX, &topic("snapshot"), br#"{"request_id":"r-1","camera":"gate"}"#).unwrap();
        assert_eq!(r, Request { request_id: "r-1".into(), command: Command::Snapshot { camera: "gate".into() } });
        let r = parse(PREFIX, &topic("evidence"), br#"{"request_id":"r2","event_id":"abc"}"#).unwrap();
        assert_eq!(r.command, Command::Evidence { event_id: "abc".into() });
        assert_eq!(parse(PREFIX, &topic("reload"), br#"{"request_id":"r3"}"#).unwrap().command, Command::Reload);
    }

    /// A name or an argument tens of kilobytes long is repeated cut short, so that the reply
    /// stays far under the packet limit.
    #[test]
    fn long_names_are_repeated_cut_short() {
        let e = parse(PREFIX, &topic(&"é".repeat(30_000)), br#"{"request_id":"r7"}"#).unwrap_err();
        assert_eq!(e.command.chars().count(), MAX_SHOWN_CHARS + 1, "{}", e.command.len());
        assert!(e.error.len() < 300, "{} bytes", e.error.len());
        let payload = format!(r#"{{"request_id":"r8","{}":1}}"#, "f".repeat(60_000));
        let e = parse(PREFIX, &topic("reload"), payload.as_bytes()).unwrap_err();
        assert!(e.error.contains("unknown field") && e.error.chars().count() < 2 * MAX_ARGS_ERROR_CHARS, "{} bytes: {}", e.error.len(), e.error);
        assert_eq!(shown("gate"), "gate");
    }

    #[test]
    fn rejects_with_the_reason_and_the_request_id_when_readable() {
        let e = parse(PREFIX, &topic("snapshot"), b"{not json").unwrap_err();
        assert!(e.error.contains("not JSON") && e.request_id.is_none(), "{e:?}");
        let e = parse(PREFIX, &topic("snapshot"), br#"{"request_id":"r4"}"#).unwrap_err();
        assert!(e.error.contains("camera"), "{e:?}");
        assert_eq!(e.request_id.as_deref(), Some("r4"));
        let e = parse(PREFIX, &topic("reboot"), br#"{"request_id":"r5"}"#).unwrap_err();
        assert!(e.error.contains("unknown command 'reboot'"), "{e:?}");
        let e = parse(PREFIX, &topic("reload"), br#"{"request_id":"r6","force":true}"#).unwrap_err();
        assert!(e.error.contains("force"), "{e:?}");
        let e = parse(PREFIX, &topic("reload"), br#"{"request_id":"a/b"}"#).unwrap_err();
        assert!(e.error.contains("request_id") && e.request_id.is_none(), "{e:?}");
    }
}
