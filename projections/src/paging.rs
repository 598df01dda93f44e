//! Newest-first pages keyed by `(created_at, id)`, shared by the list queries.

use crate::vehicles::OwnerCursor;
use sqlx::{Postgres, QueryBuilder};

/// Appends `AND (created_at, id) < (…)` for rows after `after`, then the order and a limit one
/// larger than the page (to learn whether another page follows).
pub(crate) fn finish_query(
    sql: &mut QueryBuilder<'_, Postgres>,
    after: Option<OwnerCursor>,
    limit: i64,
) {
    if let Some(after) = after {
        sql.push(" AND (created_at, id) < (")
            .push_bind(after.created_at)
            .push(", ")
            .push_bind(after.id)
            .push(")");
    }
    sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(limit + 1);
}

/// Cuts the rows of [`finish_query`] to the page and gives the next page's cursor, if any.
pub(crate) fn split_page<T>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> OwnerCursor,
) -> (Vec<T>, Option<OwnerCursor>) {
    if rows.len() as i64 > limit {
        rows.truncate(usize::try_from(limit).unwrap_or(0));
        let next = rows.last().map(key);
        (rows, next)
    } else {
        (rows, None)
    }
}
