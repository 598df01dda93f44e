//! The `reviews` projection: `read.reviews` (one row per `ReviewSubmitted`) and
//! `read.rating_summaries` (count and sum of ratings per reviewed user and per vehicle), which
//! vehicle search joins to show and sort by rating.
//!
//! A review is unique per booking and side, so a redelivered event inserts nothing and the
//! totals only grow with rows that were actually inserted.

use crate::fold::decode;
use crate::paging::{finish_query, split_page};
use crate::projection::{Poisoned, Projection, Target};
use crate::vehicles::OwnerCursor;
use async_trait::async_trait;
use carshare_domain::booking::{Booking, BookingEvent, CategoryRatings};
use carshare_event_store::{StoredEvent, StreamReader};
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// Name of the projection.
pub const NAME: &str = "reviews";

const COLUMNS: &str = "id, booking_id, vehicle_id, reviewer_id, reviewer_role, reviewee_id, \
    rating, category_ratings, comment, is_recommended, created_at, sequence, position";

/// A review as the read side keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct ReviewRow {
    /// The review's id.
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
    /// Per category (`cleanliness`, `punctuality`, `manners`).
    pub category_ratings: Json<CategoryRatings>,
    /// Free text.
    pub comment: Option<String>,
    /// Recommended.
    pub is_recommended: bool,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Sequence of its event in the booking.
    pub sequence: i64,
    /// Stream position of its event.
    pub position: i64,
}

impl ReviewRow {
    fn of(stored: &StoredEvent) -> Result<Option<ReviewRow>, String> {
        if stored.event_type != "ReviewSubmitted" {
            return Ok(None);
        }
        let booking_id = Uuid::parse_str(&stored.aggregate_id)
            .map_err(|_| format!("booking id `{}` is not a UUID", stored.aggregate_id))?;
        match decode::<BookingEvent>(stored)? {
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
            } => Ok(Some(ReviewRow {
                id: review_id,
                booking_id,
                vehicle_id,
                reviewer_id,
                reviewer_role: reviewer_role.as_str().into(),
                reviewee_id,
                rating,
                category_ratings: Json(category_ratings),
                comment,
                is_recommended,
                created_at: at,
                sequence: stored.sequence,
                position: stored.position,
            })),
            other => Err(format!("{} stored as ReviewSubmitted", other.name())),
        }
    }
}

/// Builds `read.reviews` and `read.rating_summaries`.
pub struct ReviewProjection;

#[async_trait]
impl Projection for ReviewProjection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["reviews", "rating_summaries"]
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[Booking::TYPE]
    }

    fn event_types(&self) -> Option<&'static [&'static str]> {
        Some(&["ReviewSubmitted"])
    }

    fn needs_metadata(&self) -> bool {
        false
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        target: Target,
        _reader: &StreamReader,
        events: &[StoredEvent],
    ) -> Result<Vec<Poisoned>, sqlx::Error> {
        let mut rows = Vec::new();
        let mut poisoned = Vec::new();
        for event in events.iter().filter(|e| self.handles(&e.aggregate_type)) {
            match ReviewRow::of(event) {
                Ok(Some(row)) => rows.push(row),
                Ok(None) => {}
                Err(error) => poisoned.push(Poisoned {
                    position: event.position,
                    error,
                }),
            }
        }
        if rows.is_empty() {
            return Ok(poisoned);
        }
        let reviews = target.table("reviews");
        let summaries = target.table("rating_summaries");
        let json = serde_json::to_value(&rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        // Only rows actually inserted count towards the totals: redelivery adds nothing. Totals
        // are shared by many bookings, so concurrent writers (rebuild lanes, Kafka workers)
        // lock them in one order (`ORDER BY`) and never deadlock.
        sqlx::query(&format!(
            "WITH inserted AS ( \
                 INSERT INTO {reviews} ({COLUMNS}) \
                 SELECT {COLUMNS} FROM jsonb_populate_recordset(NULL::{reviews}, $1) \
                 ON CONFLICT DO NOTHING \
                 RETURNING vehicle_id, reviewer_role, reviewee_id, rating, is_recommended), \
             subjects AS ( \
                 SELECT 'user' AS kind, reviewee_id AS id, rating, is_recommended FROM inserted \
                 UNION ALL \
                 SELECT 'vehicle', vehicle_id, rating, is_recommended FROM inserted \
                 WHERE reviewer_role = 'guest') \
             INSERT INTO {summaries} AS s \
                 (subject_kind, subject_id, review_count, rating_sum, recommended_count) \
             SELECT kind, id, count(*), sum(rating), count(*) FILTER (WHERE is_recommended) \
             FROM subjects GROUP BY kind, id ORDER BY kind, id \
             ON CONFLICT (subject_kind, subject_id) DO UPDATE SET \
                 review_count = s.review_count + EXCLUDED.review_count, \
                 rating_sum = s.rating_sum + EXCLUDED.rating_sum, \
                 recommended_count = s.recommended_count + EXCLUDED.recommended_count"
        ))
        .bind(Json(json))
        .execute(&mut *conn)
        .await?;
        Ok(poisoned)
    }

    async fn applied_sequence(
        &self,
        pool: &PgPool,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<i64, sqlx::Error> {
        let Ok(id) = Uuid::parse_str(aggregate_id) else {
            return Ok(0);
        };
        if !self.handles(aggregate_type) {
            return Ok(0);
        }
        let last: Option<i64> =
            sqlx::query_scalar("SELECT max(sequence) FROM read.reviews WHERE booking_id = $1")
                .bind(id)
                .fetch_one(pool)
                .await?;
        Ok(last.unwrap_or(0))
    }
}

/// SQL for the mean rating of the `read.rating_summaries` row aliased `alias`, rounded to two
/// decimals (`NULL` without reviews).
pub(crate) fn mean_rating(alias: &str) -> String {
    format!("round({alias}.rating_sum::numeric / NULLIF({alias}.review_count, 0), 2)")
}

/// Count and average rating of one reviewed subject.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct RatingSummary {
    /// Reviews counted.
    pub review_count: i64,
    /// Mean rating, rounded to two decimals (`None` without reviews).
    pub average_rating: Option<f64>,
    /// Reviews that recommend.
    pub recommended_count: i64,
}

/// The summary of the reviews a user received.
pub async fn user_summary(pool: &PgPool, user_id: Uuid) -> Result<RatingSummary, sqlx::Error> {
    let row: Option<RatingSummary> = sqlx::query_as(&format!(
        "SELECT review_count, {}::float8 AS average_rating, recommended_count \
         FROM read.rating_summaries s WHERE subject_kind = 'user' AND subject_id = $1",
        mean_rating("s")
    ))
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.unwrap_or(RatingSummary {
        review_count: 0,
        average_rating: None,
        recommended_count: 0,
    }))
}

/// A page of the reviews `user_id` received, newest first, and the next page's cursor.
pub async fn received(
    pool: &PgPool,
    user_id: Uuid,
    after: Option<OwnerCursor>,
    limit: i64,
) -> Result<(Vec<ReviewRow>, Option<OwnerCursor>), sqlx::Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM read.reviews WHERE reviewee_id = "
    ));
    sql.push_bind(user_id);
    finish_query(&mut sql, after, limit);
    let rows: Vec<ReviewRow> = sql.build_query_as().fetch_all(pool).await?;
    Ok(split_page(rows, limit, |r| OwnerCursor {
        created_at: r.created_at,
        id: r.id,
    }))
}

/// The reviews of one booking (at most one per side).
pub async fn of_booking(pool: &PgPool, booking_id: Uuid) -> Result<Vec<ReviewRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM read.reviews WHERE booking_id = $1 ORDER BY created_at"
    ))
    .bind(booking_id)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn event(aggregate_type: &str, event_type: &str) -> StoredEvent {
        StoredEvent {
            position: 1,
            transaction_id: 1,
            aggregate_type: aggregate_type.into(),
            aggregate_id: Uuid::nil().to_string(),
            sequence: 1,
            event_type: event_type.into(),
            event_version: "1.0".into(),
            payload: RawValue::NULL.to_owned(),
            metadata: RawValue::NULL.to_owned(),
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn only_submitted_reviews_concern_the_review_tables() {
        assert!(ReviewProjection.concerns(&event("Booking", "ReviewSubmitted")));
        for (aggregate, kind) in [
            ("Booking", "BookingRequested"),
            ("Booking", "BookingCompleted"),
            ("Vehicle", "ReviewSubmitted"),
        ] {
            assert!(
                !ReviewProjection.concerns(&event(aggregate, kind)),
                "{aggregate}/{kind}"
            );
        }
    }
}
