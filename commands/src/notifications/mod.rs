//! Notifications: announcements (an aggregate, so they reach inboxes through the event stream
//! like every other notification), push devices, and the dispatcher that sends what the
//! notification projection queued. Nothing here runs inside a command handler: inbox entries
//! come from events, and sending them never holds up a command or a projection.

mod dispatcher;

pub use dispatcher::{DispatchReport, DispatchSettings, Dispatcher, InboxPublisher};

use crate::bus::{CommandBus, CommandError};
use crate::clock::Clock;
use carshare_domain::announcement::{Announcement, AnnouncementError, Audience, SendAnnouncement};
use carshare_domain::Actor;
use carshare_event_store::{CommitSignal, EventMetadata, StreamCursor};
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// Longest accepted FCM registration token.
pub const MAX_DEVICE_TOKEN_CHARS: usize = 4_096;

/// A device platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Android app.
    Android,
    /// iOS app.
    Ios,
    /// Web (browser push).
    Web,
}

impl Platform {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Android => "android",
            Platform::Ios => "ios",
            Platform::Web => "web",
        }
    }
}

/// Whether `token` looks like an FCM registration token: 1 to 4096 printable ASCII characters,
/// no spaces.
pub fn valid_device_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_DEVICE_TOKEN_CHARS
        && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Registers (or moves to `user_id`) a device token. A token belongs to one app install, so
/// registering it again from another account moves it.
pub async fn register_device(
    pool: &PgPool,
    user_id: Uuid,
    token: &str,
    platform: Platform,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification_devices (token, user_id, platform) VALUES ($1, $2, $3) \
         ON CONFLICT (token) DO UPDATE SET user_id = EXCLUDED.user_id, \
             platform = EXCLUDED.platform, updated_at = now()",
    )
    .bind(token)
    .bind(user_id)
    .bind(platform.as_str())
    .execute(pool)
    .await?;
    Ok(())
}

/// Unregisters one of the user's device tokens; whether it was registered to them.
pub async fn unregister_device(
    pool: &PgPool,
    user_id: Uuid,
    token: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM notification_devices WHERE token = $1 AND user_id = $2")
        .bind(token)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// How long finished deliveries (sent, skipped, failed) are kept for inspection.
pub const DELIVERY_RETENTION_DAYS: i64 = 30;

/// Removes deliveries finished more than `older_than` ago; how many. The inbox entries stay
/// (they are the user's), and a removed delivery is never sent again: redelivered events find
/// their inbox entry and queue nothing.
pub async fn purge_finished_deliveries(
    pool: &PgPool,
    older_than: chrono::Duration,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM notification_deliveries \
         WHERE status IN ('sent', 'skipped', 'failed') AND finished_at < now() - $1::interval",
    )
    .bind(older_than)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// An announcement as an admin writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAnnouncement {
    /// Recipients.
    pub audience: Audience,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Custom data.
    pub data: BTreeMap<String, String>,
}

/// Sends announcements.
pub struct AnnouncementService {
    bus: CommandBus<Announcement>,
    clock: Arc<dyn Clock>,
}

impl AnnouncementService {
    /// The service over `pool`.
    pub fn new(pool: PgPool, signal: CommitSignal, clock: Arc<dyn Clock>) -> AnnouncementService {
        AnnouncementService {
            bus: CommandBus::new(pool, (), signal, 0),
            clock,
        }
    }

    /// Records the announcement; the notification projection fans it out. Returns its id and
    /// the stream position of its event.
    pub async fn send(
        &self,
        actor: Actor,
        announcement: NewAnnouncement,
        meta: &EventMetadata,
    ) -> Result<(Uuid, Option<StreamCursor>), CommandError<AnnouncementError>> {
        let id = Uuid::new_v4();
        let committed = self
            .bus
            .execute(
                &id.to_string(),
                SendAnnouncement {
                    actor,
                    at: self.clock.now(),
                    announcement_id: id,
                    audience: announcement.audience,
                    title: announcement.title,
                    body: announcement.body,
                    data: announcement.data,
                },
                meta,
            )
            .await?;
        Ok((id, committed.cursor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tokens_are_printable_and_bounded() {
        assert!(valid_device_token("fcm:APA91bH-abc_123"));
        assert!(!valid_device_token(""));
        assert!(!valid_device_token("has space"));
        assert!(!valid_device_token("토큰"));
        assert!(!valid_device_token(&"a".repeat(4_097)));
    }

    #[test]
    fn platform_names_are_the_stored_ones() {
        for platform in [Platform::Android, Platform::Ios, Platform::Web] {
            assert_eq!(
                serde_json::to_value(platform).unwrap(),
                serde_json::Value::from(platform.as_str())
            );
        }
    }
}
