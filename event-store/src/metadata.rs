//! Metadata recorded with every event: who caused it and in answer to what.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// Key names inside the `metadata` column (and Kafka headers).
pub mod keys {
    /// The id shared by everything one client request caused.
    pub const CORRELATION_ID: &str = "correlation_id";
    /// The id of the message (request or event) that directly caused this command.
    pub const CAUSATION_ID: &str = "causation_id";
    /// The acting user's id.
    pub const ACTOR_ID: &str = "actor_id";
    /// The acting user's role.
    pub const ACTOR_ROLE: &str = "actor_role";
    /// The client's idempotency key, if it sent one.
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    /// When the command was issued (RFC 3339).
    pub const ISSUED_AT: &str = "issued_at";
    /// The command's name.
    pub const COMMAND: &str = "command";
}

/// The metadata of one command, copied onto each event it produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Request-wide correlation id (from `X-Request-Id` or generated).
    pub correlation_id: String,
    /// What caused the command: the request id for HTTP commands, an event id for reactions.
    pub causation_id: String,
    /// The acting user, if any (system reactions have none).
    pub actor_id: Option<Uuid>,
    /// The acting user's role.
    pub actor_role: Option<String>,
    /// The client's idempotency key.
    pub idempotency_key: Option<String>,
    /// When the command was issued.
    pub issued_at: DateTime<Utc>,
    /// Name of the command, e.g. `RegisterVehicle`.
    pub command: String,
}

impl EventMetadata {
    /// Metadata of a command the platform issues itself (no actor), e.g. an expiry.
    pub fn system(command: &str, issued_at: DateTime<Utc>) -> EventMetadata {
        let id = Uuid::new_v4().to_string();
        EventMetadata {
            correlation_id: id.clone(),
            causation_id: id,
            actor_id: None,
            actor_role: Some("system".into()),
            idempotency_key: None,
            issued_at,
            command: command.to_string(),
        }
    }

    /// The flat string map cqrs-es stores.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::with_capacity(7);
        map.insert(keys::CORRELATION_ID.into(), self.correlation_id.clone());
        map.insert(keys::CAUSATION_ID.into(), self.causation_id.clone());
        if let Some(actor) = self.actor_id {
            map.insert(keys::ACTOR_ID.into(), actor.to_string());
        }
        if let Some(role) = &self.actor_role {
            map.insert(keys::ACTOR_ROLE.into(), role.clone());
        }
        if let Some(key) = &self.idempotency_key {
            map.insert(keys::IDEMPOTENCY_KEY.into(), key.clone());
        }
        map.insert(keys::ISSUED_AT.into(), self.issued_at.to_rfc3339());
        map.insert(keys::COMMAND.into(), self.command.clone());
        map
    }

    /// Reads metadata back from the stored JSON object; missing keys become empty or `None`.
    pub fn from_json(value: &serde_json::Value) -> EventMetadata {
        let get = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_string);
        EventMetadata {
            correlation_id: get(keys::CORRELATION_ID).unwrap_or_default(),
            causation_id: get(keys::CAUSATION_ID).unwrap_or_default(),
            actor_id: get(keys::ACTOR_ID).and_then(|s| Uuid::parse_str(&s).ok()),
            actor_role: get(keys::ACTOR_ROLE),
            idempotency_key: get(keys::IDEMPOTENCY_KEY),
            issued_at: get(keys::ISSUED_AT)
                .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            command: get(keys::COMMAND).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_the_stored_map() {
        let meta = EventMetadata {
            correlation_id: "req-1".into(),
            causation_id: "req-1".into(),
            actor_id: Some(Uuid::from_u128(5)),
            actor_role: Some("host".into()),
            idempotency_key: None,
            issued_at: "2026-11-27T03:00:00Z".parse().unwrap(),
            command: "RegisterVehicle".into(),
        };
        let json = serde_json::to_value(meta.to_map()).unwrap();
        assert_eq!(EventMetadata::from_json(&json), meta);
    }
}
