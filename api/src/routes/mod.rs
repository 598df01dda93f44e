//! Routes. Each module exposes `configure`, registering its handlers (and their OpenAPI
//! descriptions) on the app.

pub mod accounts_dto;
pub mod admin;
pub mod auth;
pub mod bookings;
pub mod health;
pub mod notifications;
pub mod payments;
pub mod reviews;
pub mod users;
pub mod vehicles;

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode, FieldIssue};
use crate::middleware::observe::CorrelationId;
use crate::state::AppState;
use actix_web::{HttpMessage, HttpRequest, HttpResponseBuilder};
use carshare_event_store::{EventMetadata, StreamCursor};
use carshare_projections::Source;
use chrono::Utc;
use uuid::Uuid;

/// Header carrying the stream position of a command's events; pass it back as `min_position`
/// to read your own write from any read endpoint.
pub const STREAM_POSITION: &str = "X-Stream-Position";
/// Header telling the client that the read models had not caught up with its write in time.
pub const READ_MODEL_LAG: &str = "X-Read-Model-Lag";
/// Header carrying the cursor of the next page.
pub const NEXT_CURSOR: &str = "X-Next-Cursor";

/// The request's correlation id.
pub fn correlation_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<CorrelationId>()
        .map(|c| c.0.clone())
        .unwrap_or_else(|| Uuid::new_v4().to_string())
}

/// Metadata of a command issued by this request.
pub fn command_metadata(
    req: &HttpRequest,
    user: &AuthUser,
    command: &str,
) -> Result<EventMetadata, ApiError> {
    let correlation_id = correlation_id(req);
    let idempotency_key = crate::extract::idempotency_key(req.headers())?;
    Ok(EventMetadata {
        causation_id: correlation_id.clone(),
        correlation_id,
        actor_id: Some(user.id),
        actor_role: Some(user.role.as_str().to_string()),
        idempotency_key,
        issued_at: Utc::now(),
        command: command.to_string(),
    })
}

/// Parses a `min_position` parameter.
pub fn parse_min_position(raw: Option<&str>) -> Result<Option<StreamCursor>, ApiError> {
    raw.map(|s| {
        s.parse::<StreamCursor>().map_err(|_| {
            ApiError::with_details(
                ErrorCode::REQ006,
                vec![FieldIssue::new(
                    "min_position",
                    "invalid_value",
                    "min_position은 X-Stream-Position 헤더의 값이어야 합니다.",
                    "min_position must be a value of the X-Stream-Position header.",
                )],
            )
        })
    })
    .transpose()
}

/// Before a read: waits (bounded) for the named projections to show `min_position` (if given)
/// and every write this process has acknowledged, so a client reads its own writes without
/// naming them; `min_position` carries a write answered by another instance.
///
/// When the wait runs out, `response` gets `X-Read-Model-Lag: true`, and the returned
/// [`Freshness`] marks an error the read ends in (a 404 may only mean "not there yet").
pub async fn await_position(
    state: &AppState,
    projections: &[&str],
    min_position: Option<&str>,
    response: &mut HttpResponseBuilder,
) -> Result<Freshness, ApiError> {
    let named = parse_min_position(min_position)?;
    let target = named.max(state.progress.acknowledged());
    let lagging = !state.settle(projections, target).await;
    if lagging {
        response.insert_header((READ_MODEL_LAG, "true"));
    }
    Ok(Freshness { lagging })
}

/// Whether the read models had caught up before a read (see [`await_position`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    lagging: bool,
}

impl Freshness {
    /// `err` as the read's answer: marked with `X-Read-Model-Lag` when the read models had
    /// not caught up, as a success would be.
    pub fn error(self, err: ApiError) -> ApiError {
        ApiError {
            read_model_lag: err.read_model_lag || self.lagging,
            ..err
        }
    }
}

/// Before a command that decides on read tables (account erasure, settlement): waits for the
/// named projections to show every write this process has acknowledged, or answers 503.
pub async fn await_own_writes(state: &AppState, projections: &[&str]) -> Result<(), ApiError> {
    if state
        .settle(projections, state.progress.acknowledged())
        .await
    {
        Ok(())
    } else {
        Err(ApiError::unavailable(anyhow::anyhow!(
            "read models {projections:?} lag behind this instance's writes"
        )))
    }
}

/// After a command: sets the position header and makes later reads wait for the write.
///
/// Reading the Postgres stream, the command does not wait for the read models: its response is
/// rendered from the aggregate, and the wait moves to the reads that must show it
/// ([`await_position`]), so a write costs one commit and no read-model round trip. Consuming
/// Kafka, partitions advance independently and a later position does not cover an earlier
/// one, so the command waits for its own event as before.
pub async fn settle_command(
    state: &AppState,
    projections: &[&str],
    cursor: Option<StreamCursor>,
    response: &mut HttpResponseBuilder,
) {
    let Some(c) = cursor else { return };
    response.insert_header((STREAM_POSITION, c.to_string()));
    if state.progress.source() == Source::Postgres {
        state.progress.acknowledge(c);
    } else if !state.settle(projections, cursor).await {
        tracing::warn!("read models did not reach the command's events in time");
        response.insert_header((READ_MODEL_LAG, "true"));
    }
}

/// A `cursor` parameter read with `decode`: `None` when absent, a 422 when it is not a token
/// this API issued.
pub fn parse_cursor<T>(
    token: Option<&str>,
    decode: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    token
        .map(|t| {
            decode(t).ok_or_else(|| {
                ApiError::invalid_field(
                    "cursor",
                    "invalid_cursor",
                    "cursor 값이 올바르지 않습니다.",
                    "Unknown cursor.",
                )
            })
        })
        .transpose()
}

/// Page size from a `limit` parameter (default 20, 1..=100).
pub fn page_size(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(20),
        Some(n) if (1..=100).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid_field(
            "limit",
            "out_of_range",
            "limit은 1 이상 100 이하여야 합니다.",
            "limit must be between 1 and 100.",
        )),
    }
}
