//! Notification routes (seed: 알림 모듈): the caller's inbox, read marks, push devices, and
//! announcements by admins. Inbox entries are made from events by the `notifications`
//! projection; nothing here sends anything directly.

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode, ErrorResponse, FieldIssue};
use crate::extract::{ValidJson, ValidQuery};
use crate::routes::{await_position, command_metadata, page_size, NEXT_CURSOR};
use crate::state::AppState;
use actix_web::{delete, get, post, put, web, HttpRequest, HttpResponse};
use carshare_commands::notifications::{
    register_device, unregister_device, valid_device_token, NewAnnouncement, Platform,
};
use carshare_commands::CommandError;
use carshare_domain::announcement::{AnnouncementError, Audience};
use carshare_domain::Role;
use carshare_projections::notifications::{self, InboxCursor, InboxEntry, InboxQuery};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Header with the caller's number of unread entries.
pub const UNREAD_COUNT: &str = "X-Unread-Count";

/// Registers the routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list)
        .service(read_all)
        .service(read_one)
        .service(send)
        .service(add_device)
        .service(remove_device);
}

/// An inbox entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationResponse {
    /// Id.
    pub id: Uuid,
    /// `booking.requested`, `booking.approved`, `booking.rejected`, `booking.expired`,
    /// `booking.cancelled`, `payment.completed`, `payment.refunded`, `settlement.issued`,
    /// `review.received` or `announcement`.
    pub kind: String,
    /// Title (Korean).
    pub title: String,
    /// Body (Korean).
    pub body: String,
    /// String values for the apps (e.g. `booking_id`), also sent as the push data payload.
    #[schema(value_type = Object)]
    pub data: serde_json::Map<String, serde_json::Value>,
    /// The booking concerned, if any.
    pub booking_id: Option<Uuid>,
    /// When the event happened (UTC).
    pub created_at: DateTime<Utc>,
    /// When you marked it read; null while unread.
    pub read_at: Option<DateTime<Utc>>,
}

impl From<&InboxEntry> for NotificationResponse {
    fn from(e: &InboxEntry) -> Self {
        let n = &e.notification;
        NotificationResponse {
            id: n.id,
            kind: n.kind.clone(),
            title: n.title.clone(),
            body: n.body.clone(),
            data: n.data.0.clone(),
            booking_id: n.booking_id,
            created_at: n.created_at,
            read_at: e.read_at,
        }
    }
}

/// Parameters of `GET /v1/notifications`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InboxParams {
    /// Only unread entries.
    pub unread: Option<bool>,
    /// Page size (default 20, at most 100).
    pub limit: Option<i64>,
    /// The `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
    /// Wait until the inbox has reached this stream position (from `X-Stream-Position`).
    pub min_position: Option<String>,
}

/// The caller's inbox: unread entries first, newest first within each group (or only unread
/// ones with `unread=true`). The number of unread entries is in `X-Unread-Count`, the next
/// page's cursor in `X-Next-Cursor`.
#[utoipa::path(
    tag = "notifications",
    params(InboxParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<NotificationResponse>,
         headers(("X-Next-Cursor" = String, description = "Cursor of the next page, if any"),
                 ("X-Unread-Count" = i64, description = "Unread entries in all"))),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 422, description = "Bad cursor or limit", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/notifications")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    params: ValidQuery<InboxParams>,
) -> Result<HttpResponse, ApiError> {
    let p = params.0;
    let after = crate::routes::parse_cursor(p.cursor.as_deref(), InboxCursor::decode)?;
    let limit = page_size(p.limit)?;
    let mut response = HttpResponse::Ok();
    await_position(
        &state,
        &[notifications::NAME],
        p.min_position.as_deref(),
        &mut response,
    )
    .await?;
    let (rows, next) = notifications::inbox(
        &state.pool,
        InboxQuery {
            user_id: user.id,
            unread_only: p.unread.unwrap_or(false),
            after,
            limit,
        },
    )
    .await?;
    let unread = notifications::unread_count(&state.pool, user.id).await?;
    response.insert_header((UNREAD_COUNT, unread.to_string()));
    if let Some(next) = next {
        response.insert_header((NEXT_CURSOR, next.encode()));
    }
    let body: Vec<NotificationResponse> = rows.iter().map(NotificationResponse::from).collect();
    Ok(response.json(body))
}

/// Marks one of the caller's entries read (again: no change).
#[utoipa::path(
    tag = "notifications",
    params(("id" = Uuid, Path, description = "Notification id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = NotificationResponse),
        (status = 401, body = ErrorResponse),
        (status = 404, description = "No such notification, or not yours", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[put("/notifications/{id}/read")]
pub async fn read_one(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let entry = notifications::entry(&state.pool, id)
        .await?
        .filter(|e| e.notification.user_id == user.id)
        .ok_or_else(|| ApiError::new(ErrorCode::NOTIFICATION001))?;
    if entry.read_at.is_none() {
        sqlx::query(
            "INSERT INTO notification_reads (notification_id, user_id) VALUES ($1, $2) \
             ON CONFLICT (notification_id) DO NOTHING",
        )
        .bind(id)
        .bind(user.id)
        .execute(&state.pool)
        .await?;
    }
    let entry = notifications::entry(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NOTIFICATION001))?;
    Ok(HttpResponse::Ok().json(NotificationResponse::from(&entry)))
}

/// How many entries `read-all` marked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReadAllResponse {
    /// Entries that were unread and are now read.
    pub marked: u64,
}

/// Marks every entry of the caller's inbox read.
#[utoipa::path(
    tag = "notifications",
    security(("bearer" = [])),
    responses(
        (status = 200, body = ReadAllResponse),
        (status = 401, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[put("/notifications/read-all")]
pub async fn read_all(
    state: web::Data<AppState>,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let done = sqlx::query(
        "INSERT INTO notification_reads (notification_id, user_id) \
         SELECT id, user_id FROM read.notifications WHERE user_id = $1 \
         ON CONFLICT (notification_id) DO NOTHING",
    )
    .bind(user.id)
    .execute(&state.pool)
    .await?;
    Ok(HttpResponse::Ok().json(ReadAllResponse {
        marked: done.rows_affected(),
    }))
}

/// Who receives an announcement.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleWire {
    /// Every guest.
    Guest,
    /// Every host.
    Host,
    /// Every admin.
    Admin,
}

/// An announcement: to one user (`user_id`) or to every user of a role (`role`), not both.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// One recipient.
    pub user_id: Option<Uuid>,
    /// Every user of this role.
    pub role: Option<RoleWire>,
    /// Title, at most 100 characters.
    pub title: String,
    /// Body, at most 1,000 characters.
    pub body: String,
    /// Up to 20 string entries passed to the apps.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// An announcement as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SendResponse {
    /// The announcement's id (`data.announcement_id` of the entries it makes).
    pub announcement_id: Uuid,
}

fn invalid(field: &str, reason: &'static str, ko: &str, en: &str) -> ApiError {
    ApiError::with_details(
        ErrorCode::NOTIFICATION002,
        vec![FieldIssue::new(field, reason, ko, en)],
    )
}

/// An admin sends an announcement to one user or to every user of a role. It is recorded as an
/// event; the notification projection puts it in each recipient's inbox, and the dispatcher
/// pushes it (WebSocket, FCM). `202 Accepted`: entries appear within moments.
#[utoipa::path(
    tag = "notifications",
    request_body = SendRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, body = SendResponse,
         headers(("X-Stream-Position" = String, description = "Pass as min_position to read the entries"))),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Not an admin", body = ErrorResponse),
        (status = 404, description = "No such recipient", body = ErrorResponse),
        (status = 422, body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/notifications/send")]
pub async fn send(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    body: ValidJson<SendRequest>,
) -> Result<HttpResponse, ApiError> {
    user.require(&[Role::Admin])?;
    let body = body.0;
    let audience = match (body.user_id, body.role) {
        (Some(user_id), None) => {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND erased_at IS NULL)",
            )
            .bind(user_id)
            .fetch_one(&state.pool)
            .await?;
            if !exists {
                return Err(ApiError::new(ErrorCode::NOTIFICATION003));
            }
            Audience::User { user_id }
        }
        (None, Some(role)) => Audience::Role {
            role: match role {
                RoleWire::Guest => Role::Guest,
                RoleWire::Host => Role::Host,
                RoleWire::Admin => Role::Admin,
            },
        },
        _ => {
            return Err(invalid(
                "user_id",
                "one_of",
                "user_id와 role 중 하나만 보내 주세요.",
                "Send exactly one of user_id and role.",
            ))
        }
    };
    let meta = command_metadata(&req, &user, "SendAnnouncement")?;
    let (announcement_id, cursor) = state
        .announcements
        .send(
            user.actor(),
            NewAnnouncement {
                audience,
                title: body.title,
                body: body.body,
                data: body.data,
            },
            &meta,
        )
        .await
        .map_err(|e| match e {
            CommandError::Rejected(AnnouncementError::AdminOnly) => {
                ApiError::new(ErrorCode::AUTH005)
            }
            CommandError::Rejected(AnnouncementError::Invalid { field, reason }) => {
                let ko = format!("{field}: {reason}");
                invalid(field, "invalid", &ko, &ko)
            }
            CommandError::Rejected(AnnouncementError::AlreadySent) => {
                ApiError::new(ErrorCode::SYS001)
            }
            CommandError::Infra(e) => e.into(),
        })?;
    let mut response = HttpResponse::Accepted();
    if let Some(c) = cursor {
        response.insert_header((crate::routes::STREAM_POSITION, c.to_string()));
    }
    Ok(response.json(SendResponse { announcement_id }))
}

/// A device to push to.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    /// The app's FCM registration token.
    pub token: String,
    /// `android`, `ios` or `web`.
    #[schema(value_type = String)]
    pub platform: Platform,
}

/// A registered device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceResponse {
    /// The token.
    pub token: String,
    /// Its platform.
    #[schema(value_type = String)]
    pub platform: Platform,
}

/// Registers a device for push notifications (again: updates it; a token registered by another
/// account moves to the caller, as the app install now belongs to them).
#[utoipa::path(
    tag = "notifications",
    request_body = DeviceRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = DeviceResponse),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 422, description = "Not a registration token", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/notifications/devices")]
pub async fn add_device(
    state: web::Data<AppState>,
    user: AuthUser,
    body: ValidJson<DeviceRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    if !valid_device_token(&body.token) {
        return Err(invalid(
            "token",
            "invalid_token",
            "FCM 등록 토큰이 올바르지 않습니다.",
            "Not an FCM registration token (1 to 4096 printable characters, no spaces).",
        ));
    }
    register_device(&state.pool, user.id, &body.token, body.platform).await?;
    Ok(HttpResponse::Created().json(DeviceResponse {
        token: body.token,
        platform: body.platform,
    }))
}

/// Unregisters one of the caller's devices (e.g. at logout).
#[utoipa::path(
    tag = "notifications",
    params(("token" = String, Path, description = "The FCM registration token, URL-encoded")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Unregistered"),
        (status = 401, body = ErrorResponse),
        (status = 404, description = "Not registered to you", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[delete("/notifications/devices/{token}")]
pub async fn remove_device(
    state: web::Data<AppState>,
    user: AuthUser,
    token: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    if valid_device_token(&token) && unregister_device(&state.pool, user.id, &token).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::new(ErrorCode::NOTIFICATION004))
    }
}
