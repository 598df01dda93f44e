//! Kafka: connection settings, topic names, topic creation, and the envelope every event
//! travels in.
//!
//! One topic per aggregate type, `<prefix>.<aggregate type, lower case>.events` (e.g.
//! `carshare.vehicle.events`), keyed by aggregate id so one aggregate's events stay in one
//! partition, in order. The value is the JSON [`Envelope`]; headers repeat the fields a
//! consumer may want without parsing it (see [`headers`]).

use crate::stream::StoredEvent;
use chrono::{DateTime, Utc};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::time::Duration;

/// Aggregate types whose topics are created when the relay starts; a type met later gets its
/// topic when its first event is published.
pub const AGGREGATE_TYPES: &[&str] = &[
    "Vehicle",
    "Booking",
    "Payment",
    "Settlement",
    "Announcement",
];

/// How to reach the brokers and name things there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `host:port[,host:port...]`.
    pub brokers: String,
    /// First part of every topic name.
    pub topic_prefix: String,
    /// Partitions of a topic the relay creates.
    pub partitions: i32,
    /// Replication factor of a topic the relay creates.
    pub replication: i32,
    /// First part of every consumer group id (`<prefix>.projection.<name>`).
    pub group_prefix: String,
    /// How long the producer keeps trying one message before reporting it failed.
    pub message_timeout: Duration,
    /// `client.id` sent to the brokers.
    pub client_id: String,
}

impl KafkaSettings {
    /// Settings with the defaults: prefix and group prefix `carshare`, 6 partitions,
    /// replication 1, 30 s message timeout.
    pub fn new(brokers: impl Into<String>) -> KafkaSettings {
        KafkaSettings {
            brokers: brokers.into(),
            topic_prefix: "carshare".into(),
            partitions: 6,
            replication: 1,
            group_prefix: "carshare".into(),
            message_timeout: Duration::from_secs(30),
            client_id: "carshare".into(),
        }
    }

    /// The topic of an aggregate type.
    pub fn topic(&self, aggregate_type: &str) -> String {
        topic_name(&self.topic_prefix, aggregate_type)
    }

    /// The consumer group of a projection.
    pub fn group(&self, projection: &str) -> String {
        format!("{}.projection.{projection}", self.group_prefix)
    }

    /// Client configuration shared by producers, consumers and the admin client.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id)
            // A broker that stops answering is noticed in seconds, not minutes.
            .set("socket.timeout.ms", "10000")
            .set("socket.connection.setup.timeout.ms", "10000")
            .set("reconnect.backoff.max.ms", "2000")
            .set("log_level", "4");
        config
    }

    /// Creates the given topics if they do not exist yet.
    pub async fn ensure_topics(&self, topics: &[String]) -> Result<(), KafkaError> {
        if topics.is_empty() {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> = self.client_config().create()?;
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    self.partitions,
                    TopicReplication::Fixed(self.replication),
                )
            })
            .collect();
        let options = AdminOptions::new()
            .request_timeout(Some(Duration::from_secs(10)))
            .operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&new, &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    tracing::warn!(topic, error = %code, "topic could not be created");
                    return Err(KafkaError::AdminOp(code));
                }
            }
        }
        Ok(())
    }
}

/// `<prefix>.<aggregate type, lower case>.events`.
pub fn topic_name(prefix: &str, aggregate_type: &str) -> String {
    format!("{prefix}.{}.events", aggregate_type.to_ascii_lowercase())
}

/// Whether `name` may be used as (part of) a Kafka topic name: ASCII letters, digits, `.`,
/// `_` and `-`, at most 200 characters (leaving room for the rest of the name).
pub fn is_valid_topic_part(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Version of the envelope's shape, in the `envelope` field.
pub const ENVELOPE_VERSION: u32 = 1;

/// Header names.
pub mod header {
    /// Event type, e.g. `VehicleRegistered`.
    pub const EVENT_TYPE: &str = "event_type";
    /// Payload shape version, e.g. `1.0`.
    pub const EVENT_VERSION: &str = "event_version";
    /// Aggregate type, e.g. `Vehicle`.
    pub const AGGREGATE_TYPE: &str = "aggregate_type";
    /// Sequence within the aggregate (decimal).
    pub const SEQUENCE: &str = "sequence";
    /// Global position in the store (decimal).
    pub const POSITION: &str = "position";
    /// The request-wide correlation id from the event's metadata.
    pub const CORRELATION_ID: &str = "correlation_id";
}

/// The message value: one event with everything needed to apply it without the store.
///
/// ```json
/// {"envelope": 1, "position": 42, "transaction_id": "7311",
///  "aggregate_type": "Vehicle", "aggregate_id": "0193…", "sequence": 3,
///  "event_type": "VehicleUpdated", "event_version": "1.0",
///  "recorded_at": "2026-11-27T09:00:00.123456Z",
///  "payload": {"VehicleUpdated": {…}}, "metadata": {"correlation_id": "…", …}}
/// ```
///
/// An event is identified by (aggregate type, aggregate id, sequence), and also by its
/// position; consumers drop a (aggregate, sequence) they have already applied, since the
/// relay publishes at least once.
#[derive(Debug, Serialize)]
struct EnvelopeRef<'a> {
    envelope: u32,
    position: i64,
    transaction_id: String,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    sequence: i64,
    event_type: &'a str,
    event_version: &'a str,
    recorded_at: DateTime<Utc>,
    payload: &'a RawValue,
    metadata: &'a RawValue,
}

/// The envelope as read by a consumer.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    /// Shape version of the envelope.
    pub envelope: u32,
    /// Global position.
    pub position: i64,
    /// Writing transaction (decimal text).
    pub transaction_id: String,
    /// Aggregate type.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// Sequence within the aggregate.
    pub sequence: i64,
    /// Event type.
    pub event_type: String,
    /// Payload shape version.
    pub event_version: String,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
    /// The event.
    pub payload: Box<RawValue>,
    /// Its metadata.
    pub metadata: Box<RawValue>,
}

/// Why a message could not be read as an event.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not the JSON of an envelope.
    #[error("not an event envelope: {0}")]
    Json(#[from] serde_json::Error),
    /// An envelope of a later shape than this build knows.
    #[error("envelope version {0} is newer than this build understands ({ENVELOPE_VERSION})")]
    Version(u32),
    /// The transaction id is not a number.
    #[error("transaction id `{0}` is not a number")]
    TransactionId(String),
}

/// The message value of `event`.
pub fn encode(event: &StoredEvent) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&EnvelopeRef {
        envelope: ENVELOPE_VERSION,
        position: event.position,
        transaction_id: event.transaction_id.to_string(),
        aggregate_type: &event.aggregate_type,
        aggregate_id: &event.aggregate_id,
        sequence: event.sequence,
        event_type: &event.event_type,
        event_version: &event.event_version,
        recorded_at: event.recorded_at,
        payload: &event.payload,
        metadata: &event.metadata,
    })
}

/// The event inside a message value.
pub fn decode(value: &[u8]) -> Result<StoredEvent, EnvelopeError> {
    let envelope: Envelope = serde_json::from_slice(value)?;
    if envelope.envelope > ENVELOPE_VERSION {
        return Err(EnvelopeError::Version(envelope.envelope));
    }
    let transaction_id = envelope
        .transaction_id
        .parse()
        .map_err(|_| EnvelopeError::TransactionId(envelope.transaction_id.clone()))?;
    Ok(StoredEvent {
        position: envelope.position,
        transaction_id,
        aggregate_type: envelope.aggregate_type,
        aggregate_id: envelope.aggregate_id,
        sequence: envelope.sequence,
        event_type: envelope.event_type,
        event_version: envelope.event_version,
        payload: envelope.payload,
        metadata: envelope.metadata,
        recorded_at: envelope.recorded_at,
    })
}

/// The message headers of `event`.
pub fn headers(event: &StoredEvent) -> OwnedHeaders {
    let sequence = event.sequence.to_string();
    let position = event.position.to_string();
    let correlation = correlation_id(event);
    let headers = OwnedHeaders::new_with_capacity(6)
        .insert(Header {
            key: header::EVENT_TYPE,
            value: Some(event.event_type.as_str()),
        })
        .insert(Header {
            key: header::EVENT_VERSION,
            value: Some(event.event_version.as_str()),
        })
        .insert(Header {
            key: header::AGGREGATE_TYPE,
            value: Some(event.aggregate_type.as_str()),
        })
        .insert(Header {
            key: header::SEQUENCE,
            value: Some(sequence.as_str()),
        })
        .insert(Header {
            key: header::POSITION,
            value: Some(position.as_str()),
        });
    match correlation {
        Some(id) => headers.insert(Header {
            key: header::CORRELATION_ID,
            value: Some(id.as_str()),
        }),
        None => headers,
    }
}

/// The correlation id in an event's metadata, read without parsing the rest.
fn correlation_id(event: &StoredEvent) -> Option<String> {
    #[derive(Deserialize)]
    struct Only {
        correlation_id: Option<String>,
    }
    serde_json::from_str::<Only>(event.metadata.get())
        .ok()
        .and_then(|m| m.correlation_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;

    fn event() -> StoredEvent {
        StoredEvent {
            position: 42,
            transaction_id: 18_446_744_073_709_551_000,
            aggregate_type: "Vehicle".into(),
            aggregate_id: "0193a0c4-0000-7000-8000-000000000001".into(),
            sequence: 3,
            event_type: "VehicleUpdated".into(),
            event_version: "1.0".into(),
            payload: serde_json::value::to_raw_value(
                &serde_json::json!({"VehicleUpdated": {"daily_rate": 80000}}),
            )
            .unwrap(),
            metadata: serde_json::value::to_raw_value(
                &serde_json::json!({"correlation_id": "req-1", "actor_id": "u"}),
            )
            .unwrap(),
            recorded_at: "2026-11-27T09:00:00.123456Z".parse().unwrap(),
        }
    }

    #[test]
    fn envelope_round_trips_every_field() {
        let original = event();
        let bytes = encode(&original).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["envelope"], 1);
        // The transaction id travels as text: it can exceed what JSON numbers hold exactly.
        assert_eq!(json["transaction_id"], "18446744073709551000");
        assert_eq!(json["payload"]["VehicleUpdated"]["daily_rate"], 80000);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.position, original.position);
        assert_eq!(back.transaction_id, original.transaction_id);
        assert_eq!(back.aggregate_id, original.aggregate_id);
        assert_eq!(back.sequence, 3);
        assert_eq!(back.event_type, "VehicleUpdated");
        assert_eq!(back.recorded_at, original.recorded_at);
        assert_eq!(back.payload.get(), original.payload.get());
        assert_eq!(back.metadata.get(), original.metadata.get());
    }

    #[test]
    fn envelopes_of_unknown_shape_are_refused() {
        assert!(matches!(decode(b"{}"), Err(EnvelopeError::Json(_))));
        let mut json: serde_json::Value =
            serde_json::from_slice(&encode(&event()).unwrap()).unwrap();
        json["envelope"] = 2.into();
        assert!(matches!(
            decode(&serde_json::to_vec(&json).unwrap()),
            Err(EnvelopeError::Version(2))
        ));
    }

    #[test]
    fn headers_carry_type_version_sequence_position_and_correlation() {
        let h = headers(&event());
        let get = |name: &str| {
            h.iter()
                .find(|x| x.key == name)
                .and_then(|x| x.value)
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
        };
        assert_eq!(get(header::EVENT_TYPE).as_deref(), Some("VehicleUpdated"));
        assert_eq!(get(header::EVENT_VERSION).as_deref(), Some("1.0"));
        assert_eq!(get(header::SEQUENCE).as_deref(), Some("3"));
        assert_eq!(get(header::POSITION).as_deref(), Some("42"));
        assert_eq!(get(header::CORRELATION_ID).as_deref(), Some("req-1"));
    }

    #[test]
    fn topics_are_named_per_aggregate_type() {
        assert_eq!(topic_name("carshare", "Vehicle"), "carshare.vehicle.events");
        let s = KafkaSettings::new("b:9092");
        assert_eq!(s.topic("Booking"), "carshare.booking.events");
        assert_eq!(s.group("vehicles"), "carshare.projection.vehicles");
        assert!(is_valid_topic_part("carshare-test_1.x"));
        assert!(!is_valid_topic_part("bad prefix"));
        assert!(!is_valid_topic_part(""));
    }
}
