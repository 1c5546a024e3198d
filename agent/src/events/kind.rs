//! The kind of every message Canh sends (and the IOC's commands it hears): the one place where a
//! message's topic below the site prefix is made ([`MessageKind::topic`]) and read back
//! ([`MessageKind::of`]), and where its retain flag and its priority in a full outbox are decided.

/// What a message is, which decides its topic below the site prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKind {
    AgentStatus,
    Stats,
    Reply,
    /// The IOC's own commands, seen because the consumer subscribes to everything.
    Command,
    CameraStatus { camera: String },
    Crossing { camera: String },
    Counts { camera: String },
    Violation { camera: String },
    Fire { camera: String },
    Evidence { camera: String, id: String },
    Snapshot { camera: String, request_id: String },
}

impl MessageKind {
    /// The topic below the site prefix: the inverse of [`MessageKind::of`].
    pub fn topic(&self) -> String {
        match self {
            MessageKind::AgentStatus => "status".into(),
            MessageKind::Stats => "stats".into(),
            MessageKind::Reply => "reply".into(),
            MessageKind::Command => "cmd".into(),
            MessageKind::CameraStatus { camera } => format!("{camera}/status"),
            MessageKind::Crossing { camera } => format!("{camera}/crossing"),
            MessageKind::Counts { camera } => format!("{camera}/counts"),
            MessageKind::Violation { camera } => format!("{camera}/violation"),
            MessageKind::Fire { camera } => format!("{camera}/fire"),
            MessageKind::Evidence { camera, id } => format!("{camera}/evidence/{id}"),
            MessageKind::Snapshot { camera, request_id } => format!("{camera}/snapshot/{request_id}"),
        }
    }

    /// The schema version its JSON payload carries in `v`.
    pub fn schema_version(&self) -> u32 {
        match self {
            MessageKind::Violation { .. } => super::VIOLATION_SCHEMA_VERSION,
            _ => super::SCHEMA_VERSION,
        }
    }

    /// Whether the broker keeps it as the topic's last value: the agent's and each camera's status.
    pub fn retained(&self) -> bool {
        matches!(self, MessageKind::AgentStatus | MessageKind::CameraStatus { .. })
    }

    /// Which messages go first when the outbox is full (lowest first): counts, status and stats
    /// before images (evidence, snapshots), images before alerts, crossings and replies.
    pub fn drop_priority(&self) -> i64 {
        match self {
            MessageKind::Counts { .. } | MessageKind::CameraStatus { .. } | MessageKind::Stats => 0,
            MessageKind::Evidence { .. } | MessageKind::Snapshot { .. } => 1,
            _ => 2,
        }
    }

    /// The kind of `topic` below `prefix`, or why it is not one of the documented topics.
    pub fn of(topic: &str, prefix: &str) -> Result<MessageKind, String> {
        let rest = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')).ok_or_else(|| format!("not below the prefix {prefix}"))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let camera = |c: &str| c.to_string();
        Ok(match parts.as_slice() {
            ["status"] => MessageKind::AgentStatus,
            ["stats"] => MessageKind::Stats,
            ["reply"] => MessageKind::Reply,
            ["cmd", ..] => MessageKind::Command,
            [c, "status"] => MessageKind::CameraStatus { camera: camera(c) },
            [c, "crossing"] => MessageKind::Crossing { camera: camera(c) },
            [c, "counts"] => MessageKind::Counts { camera: camera(c) },
            [c, "violation"] => MessageKind::Violation { camera: camera(c) },
            [c, "fire"] => MessageKind::Fire { camera: camera(c) },
            [c, "evidence", id] => MessageKind::Evidence { camera: camera(c), id: id.to_string() },
            [c, "snapshot", request] => MessageKind::Snapshot { camera: camera(c), request_id: request.to_string() },
            _ => return Err(format!("'{rest}' is not a documented topic")),
        })
    }

    /// The short name used in the store and the summary lines.
    pub fn name(&self) -> &'static str {
        match self {
            MessageKind::AgentStatus => "status",
            MessageKind::Stats => "stats",
            MessageKind::Reply => "reply",
            MessageKind::Command => "cmd",
            MessageKind::CameraStatus { .. } => "camera-status",
            MessageKind::Crossing { .. } => "crossing",
            MessageKind::Counts { .. } => "counts",
            MessageKind::Violation { .. } => "violation",
            MessageKind::Fire { .. } => "fire",
            MessageKind::Evidence { .. } => "evidence",
            MessageKind::Snapshot { .. } => "snapshot",
        }
    }

    pub fn camera(&self) -> Option<&str> {
        match self {
            MessageKind::CameraStatus { camera }
            | MessageKind::Crossing { camera }
            | MessageKind::Counts { camera }
            | MessageKind::Violation { camera }
            | MessageKind::Fire { camera }
            | MessageKind::Evidence { camera, .. }
            | MessageKind::Snapshot { camera, .. } => Some(camera),
            _ => None,
        }
    }
}

