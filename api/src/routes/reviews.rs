//! Reviews (seed: Review model): after a completed trip the guest reviews the host and the host
//! reviews the guest, once each, within 14 days.

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorCode, ErrorResponse};
use crate::extract::{ValidJson, ValidQuery};
use crate::routes::{await_position, command_metadata, page_size, settle_command, NEXT_CURSOR};
use crate::state::AppState;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use carshare_domain::booking::{BookingAction, BookingEvent, CategoryRatings, NewReview};
use carshare_projections::reviews::{self, ReviewRow};
use carshare_projections::vehicles::OwnerCursor;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Read models a review must reach before its response.
const READ_MODELS: &[&str] = &[reviews::NAME, carshare_projections::bookings::NAME];

/// Registers the routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(create).service(received);
}

/// Ratings per category, each a whole number from 1 to 5 (all optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryRatingsWire {
    /// 청결도.
    pub cleanliness: Option<i32>,
    /// 시간준수.
    pub punctuality: Option<i32>,
    /// 매너.
    pub manners: Option<i32>,
}

impl From<CategoryRatingsWire> for CategoryRatings {
    fn from(c: CategoryRatingsWire) -> Self {
        CategoryRatings {
            cleanliness: c.cleanliness,
            punctuality: c.punctuality,
            manners: c.manners,
        }
    }
}

impl From<CategoryRatings> for CategoryRatingsWire {
    fn from(c: CategoryRatings) -> Self {
        CategoryRatingsWire {
            cleanliness: c.cleanliness,
            punctuality: c.punctuality,
            manners: c.manners,
        }
    }
}

/// A review as its author sends it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewCreate {
    /// Overall rating, a whole number from 1 to 5.
    pub rating: i32,
    /// Per-category ratings (청결도 `cleanliness`, 시간준수 `punctuality`, 매너 `manners`).
    pub category_ratings: Option<CategoryRatingsWire>,
    /// Free text, at most 2,000 characters.
    pub comment: Option<String>,
    /// Whether you recommend the other side (default true).
    pub is_recommended: Option<bool>,
}

/// A review.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReviewResponse {
    /// Id.
    pub id: Uuid,
    /// The booking reviewed.
    pub booking_id: Uuid,
    /// Its vehicle.
    pub vehicle_id: Uuid,
    /// Author.
    pub reviewer_id: Uuid,
    /// `guest` (reviewing the host) or `host` (reviewing the guest).
    pub reviewer_role: String,
    /// Who is reviewed.
    pub reviewee_id: Uuid,
    /// 1–5.
    pub rating: i32,
    /// Per category.
    pub category_ratings: CategoryRatingsWire,
    /// Free text.
    pub comment: Option<String>,
    /// Recommended.
    pub is_recommended: bool,
    /// When it was written (UTC).
    pub created_at: DateTime<Utc>,
}

impl From<&ReviewRow> for ReviewResponse {
    fn from(r: &ReviewRow) -> Self {
        ReviewResponse {
            id: r.id,
            booking_id: r.booking_id,
            vehicle_id: r.vehicle_id,
            reviewer_id: r.reviewer_id,
            reviewer_role: r.reviewer_role.clone(),
            reviewee_id: r.reviewee_id,
            rating: r.rating,
            category_ratings: r.category_ratings.0.into(),
            comment: r.comment.clone(),
            is_recommended: r.is_recommended,
            created_at: r.created_at,
        }
    }
}

/// The guest (reviewing the host and the car) or the host (reviewing the guest) reviews a
/// completed booking, once each, within 14 days of the return.
#[utoipa::path(
    tag = "reviews",
    params(("id" = Uuid, Path, description = "Booking id")),
    request_body = ReviewCreate,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Recorded", body = ReviewResponse,
         headers(("X-Stream-Position" = String, description = "Pass as min_position to read this write"))),
        (status = 400, description = "Malformed JSON", body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 403, description = "Neither the booking's guest nor its host", body = ErrorResponse),
        (status = 404, body = ErrorResponse),
        (status = 409, description = "Not completed yet, already reviewed, or the 14 days are over", body = ErrorResponse),
        (status = 422, description = "Rating out of range or comment too long", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[post("/bookings/{id}/reviews")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: ValidJson<ReviewCreate>,
) -> Result<HttpResponse, ApiError> {
    let booking_id = id.into_inner();
    let body = body.0;
    let action = BookingAction::Review(NewReview {
        review_id: Uuid::new_v4(),
        rating: body.rating,
        category_ratings: body.category_ratings.unwrap_or_default().into(),
        comment: body.comment,
        is_recommended: body.is_recommended.unwrap_or(true),
    });
    let meta = command_metadata(&req, &user, action.name())?;
    let done = state
        .bookings
        .execute(Some(user.actor()), booking_id, action, &meta)
        .await
        .map_err(crate::error_map::review_refusal)?;
    let review = done
        .events
        .iter()
        .find_map(|e| match e {
            BookingEvent::ReviewSubmitted {
                review_id,
                reviewer_id,
                reviewer_role,
                reviewee_id,
                vehicle_id,
                rating,
                category_ratings,
                comment,
                is_recommended,
                at,
            } => Some(ReviewResponse {
                id: *review_id,
                booking_id,
                vehicle_id: *vehicle_id,
                reviewer_id: *reviewer_id,
                reviewer_role: reviewer_role.as_str().into(),
                reviewee_id: *reviewee_id,
                rating: *rating,
                category_ratings: (*category_ratings).into(),
                comment: comment.clone(),
                is_recommended: *is_recommended,
                created_at: *at,
            }),
            _ => None,
        })
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("review accepted without its event")))?;
    let mut response = HttpResponse::Created();
    response.insert_header((
        "Location",
        format!("/v1/users/{}/reviews", review.reviewee_id),
    ));
    settle_command(&state, READ_MODELS, done.cursor, &mut response).await;
    Ok(response.json(review))
}

/// Parameters of `GET /v1/users/{id}/reviews`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReceivedParams {
    /// Page size (default 20, at most 100).
    pub limit: Option<i64>,
    /// The `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
    /// Wait until the read model has reached this stream position (from `X-Stream-Position`).
    pub min_position: Option<String>,
}

/// The reviews a user received, with their count and mean.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReceivedReviews {
    /// The user.
    pub user_id: Uuid,
    /// Reviews received in all.
    pub review_count: i64,
    /// Mean rating, two decimals; null without reviews.
    pub average_rating: Option<f64>,
    /// Reviews that recommend the user.
    pub recommended_count: i64,
    /// This page, newest first.
    pub reviews: Vec<ReviewResponse>,
}

/// The reviews a user received (as host, from guests; as guest, from hosts), newest first,
/// with their count and mean. Any signed-in user may read them. The next page's cursor is in
/// `X-Next-Cursor`.
#[utoipa::path(
    tag = "reviews",
    params(("id" = Uuid, Path, description = "User id"), ReceivedParams),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ReceivedReviews,
         headers(("X-Next-Cursor" = String, description = "Cursor of the next page, if any"))),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/users/{id}/reviews")]
pub async fn received(
    state: web::Data<AppState>,
    _user: AuthUser,
    id: web::Path<Uuid>,
    params: ValidQuery<ReceivedParams>,
) -> Result<HttpResponse, ApiError> {
    let user_id = id.into_inner();
    let p = params.0;
    let after = crate::routes::parse_cursor(p.cursor.as_deref(), OwnerCursor::decode)?;
    let limit = page_size(p.limit)?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
        .bind(user_id)
        .fetch_one(&state.pool)
        .await?;
    if !exists {
        return Err(ApiError::new(ErrorCode::ACCOUNT003));
    }
    let mut response = HttpResponse::Ok();
    await_position(
        &state,
        &[reviews::NAME],
        p.min_position.as_deref(),
        &mut response,
    )
    .await?;
    let summary = reviews::user_summary(&state.pool, user_id).await?;
    let (rows, next) = reviews::received(&state.pool, user_id, after, limit).await?;
    if let Some(next) = next {
        response.insert_header((NEXT_CURSOR, next.encode()));
    }
    Ok(response.json(ReceivedReviews {
        user_id,
        review_count: summary.review_count,
        average_rating: summary.average_rating,
        recommended_count: summary.recommended_count,
        reviews: rows.iter().map(ReviewResponse::from).collect(),
    }))
}
