//! The Announcement aggregate: a message from platform staff to one user or to everyone in a
//! role. Like every other notification it reaches inboxes through the event stream: the
//! command records `AnnouncementSent`, and the notification projection fans it out.

use crate::actor::{Actor, Role};
use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 100;
/// Longest body, in characters.
pub const MAX_BODY_CHARS: usize = 1_000;
/// Most custom data entries (FCM data payloads are string to string).
pub const MAX_DATA_ENTRIES: usize = 20;
/// Longest data key or value, in characters.
pub const MAX_DATA_CHARS: usize = 256;

/// Who receives an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Audience {
    /// One user.
    User {
        /// The user.
        user_id: Uuid,
    },
    /// Every user of a role at the time the announcement is fanned out.
    Role {
        /// The role.
        role: Role,
    },
}

/// Send an announcement.
#[derive(Debug, Clone, PartialEq)]
pub struct SendAnnouncement {
    /// Who sends it (an admin).
    pub actor: Actor,
    /// When.
    pub at: DateTime<Utc>,
    /// Its id.
    pub announcement_id: Uuid,
    /// Recipients.
    pub audience: Audience,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Custom key/value data passed to the apps.
    pub data: BTreeMap<String, String>,
}

/// What happened to an announcement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AnnouncementEvent {
    /// It was sent.
    AnnouncementSent {
        /// Its id.
        announcement_id: Uuid,
        /// Recipients.
        audience: Audience,
        /// Title (trimmed).
        title: String,
        /// Body (trimmed).
        body: String,
        /// Custom data.
        data: BTreeMap<String, String>,
        /// The admin who sent it.
        sent_by: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for AnnouncementEvent {
    fn event_type(&self) -> String {
        "AnnouncementSent".into()
    }

    fn event_version(&self) -> String {
        "1.0".into()
    }
}

/// Why an announcement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnouncementError {
    /// Only admins announce.
    #[error("only admins send announcements")]
    AdminOnly,
    /// Sent already.
    #[error("announcement already sent")]
    AlreadySent,
    /// A field is empty or too long.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// An announcement; `None` until sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    /// The sent announcement.
    pub sent: Option<AnnouncementEvent>,
}

impl Aggregate for Announcement {
    const TYPE: &'static str = "Announcement";
    type Command = SendAnnouncement;
    type Event = AnnouncementEvent;
    type Error = AnnouncementError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.sent = Some(event);
    }
}

fn required(field: &'static str, value: &str, max: usize) -> Result<String, AnnouncementError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(AnnouncementError::Invalid {
            field,
            reason: "must not be empty".into(),
        });
    }
    if trimmed.chars().count() > max {
        return Err(AnnouncementError::Invalid {
            field,
            reason: format!("at most {max} characters"),
        });
    }
    Ok(trimmed.to_string())
}

impl Announcement {
    /// The event of a valid announcement. Pure.
    pub fn decide(&self, c: SendAnnouncement) -> Result<Vec<AnnouncementEvent>, AnnouncementError> {
        if !c.actor.is_admin() {
            return Err(AnnouncementError::AdminOnly);
        }
        if self.sent.is_some() {
            return Err(AnnouncementError::AlreadySent);
        }
        let title = required("title", &c.title, MAX_TITLE_CHARS)?;
        let body = required("body", &c.body, MAX_BODY_CHARS)?;
        if c.data.len() > MAX_DATA_ENTRIES {
            return Err(AnnouncementError::Invalid {
                field: "data",
                reason: format!("at most {MAX_DATA_ENTRIES} entries"),
            });
        }
        for (key, value) in &c.data {
            if key.trim().is_empty()
                || key.chars().count() > MAX_DATA_CHARS
                || value.chars().count() > MAX_DATA_CHARS
            {
                return Err(AnnouncementError::Invalid {
                    field: "data",
                    reason: format!(
                        "keys must be non-empty; keys and values at most {MAX_DATA_CHARS} characters"
                    ),
                });
            }
        }
        Ok(vec![AnnouncementEvent::AnnouncementSent {
            announcement_id: c.announcement_id,
            audience: c.audience,
            title,
            body,
            data: c.data,
            sent_by: c.actor.user_id,
            at: c.at,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn send(actor: Actor) -> SendAnnouncement {
        SendAnnouncement {
            actor,
            at: "2026-12-01T00:00:00Z".parse().unwrap(),
            announcement_id: Uuid::from_u128(7),
            audience: Audience::Role { role: Role::Host },
            title: "  점검 안내 ".into(),
            body: "12월 3일 새벽 2시부터 점검합니다.".into(),
            data: BTreeMap::from([("link".to_string(), "/notices/7".to_string())]),
        }
    }

    #[test]
    fn an_admin_announces_to_a_role() {
        let admin = Actor::new(Uuid::from_u128(1), Role::Admin);
        TestFramework::<Announcement>::with(())
            .given_no_previous_events()
            .when(send(admin))
            .then_expect_events(vec![AnnouncementEvent::AnnouncementSent {
                announcement_id: Uuid::from_u128(7),
                audience: Audience::Role { role: Role::Host },
                title: "점검 안내".into(),
                body: "12월 3일 새벽 2시부터 점검합니다.".into(),
                data: BTreeMap::from([("link".to_string(), "/notices/7".to_string())]),
                sent_by: admin.user_id,
                at: "2026-12-01T00:00:00Z".parse().unwrap(),
            }]);
    }

    #[test]
    fn only_admins_announce_and_only_with_a_title_and_body() {
        TestFramework::<Announcement>::with(())
            .given_no_previous_events()
            .when(send(Actor::new(Uuid::from_u128(1), Role::Host)))
            .then_expect_error(AnnouncementError::AdminOnly);
        let mut empty = send(Actor::new(Uuid::from_u128(1), Role::Admin));
        empty.body = "   ".into();
        TestFramework::<Announcement>::with(())
            .given_no_previous_events()
            .when(empty)
            .then_expect_error(AnnouncementError::Invalid {
                field: "body",
                reason: "must not be empty".into(),
            });
        let mut long = send(Actor::new(Uuid::from_u128(1), Role::Admin));
        long.title = "가".repeat(101);
        TestFramework::<Announcement>::with(())
            .given_no_previous_events()
            .when(long)
            .then_expect_error(AnnouncementError::Invalid {
                field: "title",
                reason: "at most 100 characters".into(),
            });
    }

    #[test]
    fn the_audience_is_tagged_on_the_wire() {
        let json = serde_json::to_value(Audience::User {
            user_id: Uuid::from_u128(9),
        })
        .unwrap();
        assert_eq!(json["kind"], "user");
        let back: Audience =
            serde_json::from_value(serde_json::json!({"kind": "role", "role": "guest"})).unwrap();
        assert_eq!(back, Audience::Role { role: Role::Guest });
    }

    #[test]
    fn an_announcement_goes_out_once_with_bounded_data() {
        let admin = Actor::new(Uuid::from_u128(1), Role::Admin);
        let sent = Announcement::default().decide(send(admin)).unwrap();
        assert_eq!(
            cqrs_es::DomainEvent::event_type(&sent[0]),
            "AnnouncementSent"
        );
        assert_eq!(cqrs_es::DomainEvent::event_version(&sent[0]), "1.0");
        TestFramework::<Announcement>::with(())
            .given(sent)
            .when(send(admin))
            .then_expect_error(AnnouncementError::AlreadySent);
        let mut crowded = send(admin);
        crowded.data = (0..=MAX_DATA_ENTRIES)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        TestFramework::<Announcement>::with(())
            .given_no_previous_events()
            .when(crowded)
            .then_expect_error(AnnouncementError::Invalid {
                field: "data",
                reason: format!("at most {MAX_DATA_ENTRIES} entries"),
            });
        let bad_entries = [
            (" ".to_string(), "v".to_string()),
            ("k".repeat(MAX_DATA_CHARS + 1), "v".to_string()),
            ("k".to_string(), "v".repeat(MAX_DATA_CHARS + 1)),
        ];
        for (key, value) in bad_entries {
            let mut bad = send(admin);
            bad.data = BTreeMap::from([(key, value)]);
            let result = Announcement::default().decide(bad);
            assert!(
                matches!(
                    result,
                    Err(AnnouncementError::Invalid { field: "data", .. })
                ),
                "{result:?}"
            );
        }
    }
}
