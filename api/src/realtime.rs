//! Real-time messages over WebSocket, fanned out across API instances by Redis pub/sub.
//!
//! Two channels feed the sessions:
//! - `<REDIS_KEY_PREFIX>booking-updates`: a booking command that commits publishes a
//!   [`BookingUpdate`], forwarded to the booking's guest and host. Best effort (a client that
//!   was offline re-reads `GET /v1/bookings`).
//! - `<REDIS_KEY_PREFIX>notifications`: the notification dispatcher publishes each new inbox
//!   entry once (`{"type": "notification", "user_id", "notification": {…}}`), forwarded to the
//!   recipient's sessions. A client that was offline reads `GET /v1/notifications`.
//!
//! Every API instance subscribes to both and forwards to the sessions connected to it; the
//! authoritative state is always the read models.

use crate::auth::Authenticator;
use crate::error::{ApiError, ErrorCode};
use crate::redis_client::RedisHandle;
use actix_web::{get, web, HttpRequest, HttpResponse};
use carshare_commands::bookings::{BookingUpdate, UpdatePublisher};
use carshare_commands::notifications::InboxPublisher;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The booking updates channel, after the key prefix.
const CHANNEL: &str = "booking-updates";
/// The inbox channel, after the key prefix.
const NOTIFICATIONS: &str = "notifications";

/// Publishes booking updates with `PUBLISH` from a task of its own, so a command never waits
/// for Redis: updates queue in order (at most [`UPDATE_QUEUE`]; beyond that, while Redis is
/// slow or down, new ones are dropped, and every 1,000th drop is logged), and each round trip carries
/// every update queued meanwhile as one pipeline.
pub struct RedisUpdates {
    redis: Arc<RedisHandle>,
    queue: mpsc::Sender<BookingUpdate>,
}

/// Booking updates dropped because the queue was full (the log mentions every 1,000th).
static DROPPED_UPDATES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Booking updates waiting to be published, at most.
pub const UPDATE_QUEUE: usize = 10_000;

/// Updates published in one pipeline, at most.
const UPDATES_PER_ROUND_TRIP: usize = 256;

impl RedisUpdates {
    /// A publisher over `redis`; its publishing task runs on the current Tokio runtime until
    /// the publisher is dropped.
    pub fn new(redis: Arc<RedisHandle>) -> RedisUpdates {
        let (queue, updates) = mpsc::channel(UPDATE_QUEUE);
        tokio::spawn(publish_updates(redis.clone(), updates));
        RedisUpdates { redis, queue }
    }
}

async fn publish_updates(redis: Arc<RedisHandle>, mut updates: mpsc::Receiver<BookingUpdate>) {
    let channel = redis.key(CHANNEL);
    let mut batch = Vec::with_capacity(UPDATES_PER_ROUND_TRIP);
    while updates.recv_many(&mut batch, UPDATES_PER_ROUND_TRIP).await > 0 {
        let mut pipeline = redis::pipe();
        for update in &batch {
            if let Ok(payload) = serde_json::to_string(update) {
                pipeline.cmd("PUBLISH").arg(&channel).arg(payload).ignore();
            }
        }
        if let Err(e) = redis.run_pipeline::<()>(&pipeline).await {
            tracing::warn!(error = %e, updates = batch.len(), "booking updates not published");
        }
        batch.clear();
    }
}

impl UpdatePublisher for RedisUpdates {
    fn publish(&self, update: BookingUpdate) {
        if let Err(e) = self.queue.try_send(update) {
            let booking_id = match &e {
                mpsc::error::TrySendError::Full(u) | mpsc::error::TrySendError::Closed(u) => {
                    u.booking_id
                }
            };
            let dropped = DROPPED_UPDATES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if dropped % 1_000 == 0 {
                tracing::warn!(%booking_id, dropped = dropped + 1, "booking update dropped: the publish queue is full");
            }
        }
    }
}

#[async_trait::async_trait]
impl InboxPublisher for RedisUpdates {
    /// The messages in one pipeline: one round trip, in order; all published or, when the
    /// round trip fails, all reported failed (to be retried).
    async fn publish_all(
        &self,
        user_id: Uuid,
        messages: &[serde_json::Value],
    ) -> Vec<Result<(), String>> {
        let channel = self.redis.key(NOTIFICATIONS);
        let mut pipeline = redis::pipe();
        for message in messages {
            pipeline
                .cmd("PUBLISH")
                .arg(&channel)
                .arg(message.to_string());
        }
        match self.redis.run_pipeline::<Vec<i64>>(&pipeline).await {
            Ok(_) => messages.iter().map(|_| Ok(())).collect(),
            Err(e) => {
                let error = format!("publishing to Redis for {user_id}: {e}");
                messages.iter().map(|_| Err(error.clone())).collect()
            }
        }
    }
}

/// An inbox entry as published on the notifications channel.
#[derive(serde::Deserialize)]
struct InboxMessage {
    user_id: Uuid,
}

/// One WebSocket session's outbox, with the session's number.
type Outbox = (u64, mpsc::UnboundedSender<String>);

/// The WebSocket sessions of this instance, by user.
#[derive(Clone, Default)]
pub struct Hub {
    sessions: Arc<Mutex<HashMap<Uuid, Vec<Outbox>>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Hub {
    fn join(&self, user: Uuid) -> (u64, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut map) = self.sessions.lock() {
            map.entry(user).or_default().push((id, tx));
        }
        (id, rx)
    }

    fn leave(&self, user: Uuid, id: u64) {
        if let Ok(mut map) = self.sessions.lock() {
            if let Some(list) = map.get_mut(&user) {
                list.retain(|(i, _)| *i != id);
                if list.is_empty() {
                    map.remove(&user);
                }
            }
        }
    }

    /// Sends `text` to every session of `user` here.
    fn send(&self, user: Uuid, text: &str) {
        if let Ok(map) = self.sessions.lock() {
            for (_, tx) in map.get(&user).into_iter().flatten() {
                let _ = tx.send(text.to_string());
            }
        }
    }

    /// Forwards one update to its guest and host.
    fn deliver(&self, update: &BookingUpdate, text: &str) {
        self.send(update.guest_id, text);
        if update.host_id != update.guest_id {
            self.send(update.host_id, text);
        }
    }

    /// Number of open sessions (for metrics and tests).
    pub fn sessions(&self) -> usize {
        self.sessions
            .lock()
            .map(|m| m.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    /// Forwards one message of `channel` to the sessions it concerns.
    fn route(&self, channel: &str, notifications: &str, text: &str) {
        if channel == notifications {
            match serde_json::from_str::<InboxMessage>(text) {
                Ok(message) => self.send(message.user_id, text),
                Err(e) => tracing::warn!(error = %e, "unreadable notification message"),
            }
        } else {
            match serde_json::from_str::<BookingUpdate>(text) {
                Ok(update) => self.deliver(&update, text),
                Err(e) => tracing::warn!(error = %e, "unreadable booking update"),
            }
        }
    }

    /// Subscribes to both channels and forwards messages until `shutdown`, reconnecting after
    /// Redis outages.
    pub async fn run(self, redis: Arc<RedisHandle>, shutdown: CancellationToken) {
        let channel = redis.key(CHANNEL);
        let notifications = redis.key(NOTIFICATIONS);
        let mut backoff = Duration::from_millis(200);
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            match redis.pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&[&channel, &notifications]).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(200);
                        tracing::info!(%channel, %notifications, "subscribed to real-time channels");
                        let mut messages = pubsub.on_message();
                        loop {
                            tokio::select! {
                                _ = shutdown.cancelled() => return,
                                message = messages.next() => match message {
                                    Some(message) => {
                                        let text: String = match message.get_payload() {
                                            Ok(text) => text,
                                            Err(_) => continue,
                                        };
                                        self.route(message.get_channel_name(), &notifications, &text);
                                    }
                                    None => break,
                                },
                            }
                        }
                        tracing::warn!("real-time subscription ended; reconnecting");
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot subscribe to real-time channels"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot connect for real-time channels"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}

/// The access token of a WebSocket handshake: the `Authorization: Bearer` header, or the
/// `access_token` query parameter (browsers cannot set headers on WebSocket requests).
fn handshake_token(req: &HttpRequest) -> Option<String> {
    if let Some(value) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = value.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
}

/// Real-time updates of the caller's bookings (as guest and as host) and inbox. Authenticate
/// with `Authorization: Bearer <token>` or `?access_token=<token>`. The first message is
/// `{"type": "ready", "user_id": …}`; then each message is either a `booking.updated` object
/// (`{type, booking_id, vehicle_id, guest_id, host_id, status, event, at, position}`) or a new
/// inbox entry (`{"type": "notification", "user_id", "notification": {id, kind, title, body,
/// data, booking_id, created_at, read_at}}`).
#[utoipa::path(
    tag = "bookings",
    params(("access_token" = Option<String>, Query, description = "Access token, when no Authorization header can be sent")),
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to WebSocket"),
        (status = 401, description = "No, bad, expired or revoked token", body = crate::error::ErrorResponse),
        (status = 503, body = crate::error::ErrorResponse)
    )
)]
#[get("/ws")]
pub async fn ws(
    req: HttpRequest,
    body: web::Payload,
    auth: web::Data<Authenticator>,
    hub: web::Data<Hub>,
) -> Result<HttpResponse, ApiError> {
    let token = handshake_token(&req).ok_or_else(|| ApiError::new(ErrorCode::AUTH001))?;
    let claims = auth.authenticate(&token).await?;
    let (response, mut session, mut stream) =
        actix_ws::handle(&req, body).map_err(|_| ApiError::new(ErrorCode::REQ002))?;
    let user = claims.sub;
    let hub = hub.get_ref().clone();
    let (id, mut outbox) = hub.join(user);
    let expires_in = u64::try_from(claims.exp - chrono::Utc::now().timestamp()).unwrap_or(0);
    actix_web::rt::spawn(async move {
        let ready = serde_json::json!({"type": "ready", "user_id": user}).to_string();
        let mut open = session.text(ready).await.is_ok();
        // The session ends when the token does; the client reconnects with a fresh one.
        let expiry = tokio::time::sleep(Duration::from_secs(expires_in));
        tokio::pin!(expiry);
        let mut heartbeat = tokio::time::interval(Duration::from_secs(30));
        while open {
            tokio::select! {
                _ = &mut expiry => break,
                _ = heartbeat.tick() => open = session.ping(b"").await.is_ok(),
                outgoing = outbox.recv() => match outgoing {
                    Some(text) => open = session.text(text).await.is_ok(),
                    None => break,
                },
                incoming = stream.recv() => match incoming {
                    Some(Ok(actix_ws::Message::Ping(bytes))) => open = session.pong(&bytes).await.is_ok(),
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        hub.leave(user, id);
        let _ = session.close(None).await;
    });
    Ok(response)
}
