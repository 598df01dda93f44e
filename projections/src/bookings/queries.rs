//! Reads of `read.bookings`.

use super::row::{BookingRow, COLUMNS};
use carshare_domain::booking::BookingStatus;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// Position in a newest-first list: (created_at, id) of the last row seen. The same opaque
/// token as the host's vehicle list.
pub type BookingCursor = crate::vehicles::OwnerCursor;

/// Whose bookings to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListRole {
    /// Bookings the user made.
    Guest,
    /// Bookings of the user's cars.
    Host,
}

/// A page of one user's bookings, newest first.
#[derive(Debug, Clone)]
pub struct BookingListQuery {
    /// The user.
    pub user_id: Uuid,
    /// As guest or as host.
    pub role: ListRole,
    /// Only this status.
    pub status: Option<BookingStatus>,
    /// Rows after this cursor.
    pub after: Option<BookingCursor>,
    /// Page size.
    pub limit: i64,
}

/// One booking.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<BookingRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM read.bookings WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The user's bookings, and the cursor of the next page if there is one.
pub async fn list(
    pool: &PgPool,
    q: &BookingListQuery,
) -> Result<(Vec<BookingRow>, Option<BookingCursor>), sqlx::Error> {
    let column = match q.role {
        ListRole::Guest => "guest_id",
        ListRole::Host => "host_id",
    };
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM read.bookings WHERE {column} = "
    ));
    sql.push_bind(q.user_id);
    if let Some(status) = q.status {
        sql.push(" AND status = ").push_bind(status.as_str());
    }
    crate::paging::finish_query(&mut sql, q.after, q.limit);
    let rows: Vec<BookingRow> = sql.build_query_as().fetch_all(pool).await?;
    Ok(crate::paging::split_page(rows, q.limit, |r| {
        crate::vehicles::OwnerCursor {
            created_at: r.created_at,
            id: r.id,
        }
    }))
}
