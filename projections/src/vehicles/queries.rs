//! Reads of `read.vehicles`.

use super::row::{VehicleRow, COLUMNS};
use crate::reviews::mean_rating;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use carshare_domain::TimeWindow;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// One vehicle by id, removed or not.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<VehicleRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM read.vehicles WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A host's own vehicles, newest first.
#[derive(Debug, Clone)]
pub struct OwnerListQuery {
    /// The host.
    pub owner_id: Uuid,
    /// Only this status.
    pub status: Option<String>,
    /// Include removed vehicles.
    pub include_removed: bool,
    /// Page size.
    pub limit: i64,
    /// Continue after this opaque cursor.
    pub after: Option<OwnerCursor>,
}

/// Position in a host's list: (created_at, id) of the last row seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerCursor {
    /// Registration time of the last row.
    pub created_at: DateTime<Utc>,
    /// Id of the last row.
    pub id: Uuid,
}

impl OwnerCursor {
    /// The opaque token.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            self.created_at.timestamp_micros(),
            self.id
        ))
    }

    /// Reads a token; `None` if it is not one of ours.
    pub fn decode(token: &str) -> Option<OwnerCursor> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let (micros, id) = raw.split_once('|')?;
        Some(OwnerCursor {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// The host's vehicles, and the cursor of the next page if there is one.
pub async fn list_by_owner(
    pool: &PgPool,
    q: &OwnerListQuery,
) -> Result<(Vec<VehicleRow>, Option<OwnerCursor>), sqlx::Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM read.vehicles WHERE owner_id = "
    ));
    sql.push_bind(q.owner_id);
    if !q.include_removed {
        sql.push(" AND removed_at IS NULL");
    }
    if let Some(status) = &q.status {
        sql.push(" AND status = ").push_bind(status.clone());
    }
    crate::paging::finish_query(&mut sql, q.after, q.limit);
    let rows: Vec<VehicleRow> = sql.build_query_as().fetch_all(pool).await?;
    Ok(crate::paging::split_page(rows, q.limit, |r| {
        crate::vehicles::OwnerCursor {
            created_at: r.created_at,
            id: r.id,
        }
    }))
}

/// An availability search.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// Centre latitude.
    pub lat: f64,
    /// Centre longitude.
    pub lng: f64,
    /// Radius in kilometres.
    pub radius_km: f64,
    /// The window the vehicle must be bookable for, entirely.
    pub window: TimeWindow,
    /// Substring of make, model or description (any script).
    pub text: Option<String>,
    /// Fuel filter (wire name).
    pub fuel_type: Option<String>,
    /// Gearbox filter (wire name).
    pub transmission: Option<String>,
    /// Lowest hourly rate.
    pub min_price: Option<i64>,
    /// Highest hourly rate.
    pub max_price: Option<i64>,
    /// Free time required between a booking already holding the car and this window.
    pub buffer: chrono::Duration,
    /// Order of the results.
    pub sort: SearchSort,
    /// Page size.
    pub limit: i64,
    /// Continue after this cursor.
    pub after: Option<SearchCursor>,
}

/// Order of search results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchSort {
    /// Nearest first (the default; walks the spatial index and stops after the page).
    #[default]
    Distance,
    /// Best average rating first (unrated vehicles last), nearest first among equals. Sorts
    /// every match within the radius.
    Rating,
}

/// Position in a search. Results come nearest first (a KNN scan, which cannot add a second
/// sort key), so vehicles at exactly the same distance — a fleet parked in one garage — tie
/// in no particular order. The cursor therefore holds the last distance key and the ids already
/// returned at that key; the next page starts at that key and leaves those ids out.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchCursor {
    /// Sort key (projected distance in metres) of the last hit.
    pub key: f64,
    /// Ids already returned with exactly that key.
    pub seen: Vec<Uuid>,
}

/// Most ids a cursor carries (a tie group larger than this is cut short).
const MAX_SEEN: usize = 500;

impl SearchCursor {
    /// The position after `key`, where `at_key` are the ids just passed with exactly that key
    /// (added to those `prev` already held there, when it stood at the same key).
    fn after(prev: Option<&SearchCursor>, key: f64, at_key: impl Iterator<Item = Uuid>) -> Self {
        let mut seen: Vec<Uuid> = match prev {
            Some(prev) if prev.key == key => prev.seen.clone(),
            _ => Vec::new(),
        };
        seen.extend(at_key);
        SearchCursor { key, seen }
    }

    /// The opaque token (the float travels as its exact bits, ids in compact form).
    pub fn encode(&self) -> String {
        let ids: Vec<String> = self.seen.iter().map(|id| id.simple().to_string()).collect();
        URL_SAFE_NO_PAD.encode(format!("{:016x}|{}", self.key.to_bits(), ids.join(".")))
    }

    /// Reads a token; `None` if it is not one of ours.
    pub fn decode(token: &str) -> Option<SearchCursor> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let (bits, ids) = raw.split_once('|')?;
        let key = f64::from_bits(u64::from_str_radix(bits, 16).ok()?);
        if !key.is_finite() || key < 0.0 {
            return None;
        }
        let seen = if ids.is_empty() {
            Vec::new()
        } else {
            ids.split('.')
                .map(|id| Uuid::parse_str(id).ok())
                .collect::<Option<Vec<_>>>()?
        };
        (seen.len() <= MAX_SEEN).then_some(SearchCursor { key, seen })
    }
}

/// A search result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The vehicle.
    pub vehicle: VehicleRow,
    /// Great-circle distance from the centre in km.
    pub distance_km: f64,
    /// The vehicle's reviews (by guests after their trips).
    pub vehicle_rating: Rating,
    /// The host's reviews (by guests).
    pub host_rating: Rating,
}

/// Count and mean of ratings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rating {
    /// Mean rating, two decimals; `None` without reviews.
    pub average: Option<f64>,
    /// Reviews counted.
    pub count: i64,
}

#[derive(sqlx::FromRow)]
struct HitRow {
    #[sqlx(flatten)]
    vehicle: VehicleRow,
    distance_km: f64,
    sort_key: f64,
    vehicle_rating: Option<f64>,
    vehicle_reviews: i64,
    host_rating: Option<f64>,
    host_reviews: i64,
}

fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The search centre ($1 = latitude, $2 = longitude) in the table's projection (EPSG:5179).
const CENTER: &str = "ST_Transform(ST_SetSRID(ST_MakePoint($2, $1), 4326), 5179)";

/// A value bound to a numbered placeholder of a dynamically built query.
enum Arg {
    Text(String),
    Int(i64),
    Float(f64),
    Ids(Vec<Uuid>),
}

/// Active vehicles within the radius that are bookable for the whole window, nearest first
/// (or best rated first), and the cursor of the next page if there is one.
///
/// One statement. Nearest first, Postgres walks the GiST index on the projected point outward
/// (KNN) and stops after the page wherever matches are not rare; availability is checked on
/// precomputed multiranges: weekly minute-of-week ranges, dated instants and the windows
/// bookings hold (see `docs/read-models.md`). A two-step variant (a round of nearest
/// candidates by the index alone, then the filters by id) was measured against this on the
/// benchmark's data and dropped: it cost more where cars are mostly free (see
/// `docs/benchmarks.md`).
pub async fn search(
    pool: &PgPool,
    q: &SearchQuery,
) -> Result<(Vec<SearchHit>, Option<SearchCursor>), sqlx::Error> {
    let mut hits = fetch_hits(pool, q, q.after.as_ref(), q.limit + 1).await?;
    // Ties in distance come back in no particular order: show them by id.
    hits.sort_by(|a, b| {
        a.sort_key
            .total_cmp(&b.sort_key)
            .then(a.vehicle.id.cmp(&b.vehicle.id))
    });
    let next = if hits.len() as i64 > q.limit {
        hits.truncate(usize::try_from(q.limit).unwrap_or(0));
        hits.last().map(|last| {
            let key = last.sort_key;
            let mut cursor = SearchCursor::after(
                q.after.as_ref(),
                key,
                hits.iter()
                    .filter(|h| h.sort_key == key)
                    .map(|h| h.vehicle.id),
            );
            cursor.seen.truncate(MAX_SEEN);
            cursor
        })
    } else {
        None
    };
    Ok((
        hits.into_iter()
            .map(|h| SearchHit {
                vehicle: h.vehicle,
                distance_km: h.distance_km,
                vehicle_rating: Rating {
                    average: h.vehicle_rating,
                    count: h.vehicle_reviews,
                },
                host_rating: Rating {
                    average: h.host_rating,
                    count: h.host_reviews,
                },
            })
            .collect(),
        next,
    ))
}

/// At most `limit` matches of the search's filters after `after`, in the search's order.
async fn fetch_hits(
    pool: &PgPool,
    q: &SearchQuery,
    after: Option<&SearchCursor>,
    limit: i64,
) -> Result<Vec<HitRow>, sqlx::Error> {
    let ((a1, b1), (a2, b2)) = q.window.week_pieces();
    let to_i32 = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    // $1..$11 are fixed; optional filters take $12 onwards, in the order they are added.
    // Rating order: the rounded mean (unrated = 0) dominates, distance (< 1e9 m) breaks ties,
    // in one float so the same cursor works for both orders.
    let sort_key = match q.sort {
        SearchSort::Distance => format!("location <-> {CENTER}"),
        SearchSort::Rating => format!(
            "(5.0 - COALESCE({}, 0)::float8) * 1e9 + (location <-> {CENTER})",
            mean_rating("vs")
        ),
    };
    let (vehicle_mean, host_mean) = (mean_rating("vs"), mean_rating("hs"));
    let mut sql = format!(
        "SELECT {COLUMNS}, \
           ST_Distance(location, {CENTER}) / 1000.0 AS distance_km, \
           {sort_key} AS sort_key, \
           {vehicle_mean}::float8 AS vehicle_rating, \
           COALESCE(vs.review_count, 0) AS vehicle_reviews, \
           {host_mean}::float8 AS host_rating, \
           COALESCE(hs.review_count, 0) AS host_reviews \
         FROM read.vehicles \
         LEFT JOIN read.rating_summaries vs \
           ON vs.subject_kind = 'vehicle' AND vs.subject_id = read.vehicles.id \
         LEFT JOIN read.rating_summaries hs \
           ON hs.subject_kind = 'user' AND hs.subject_id = read.vehicles.owner_id \
         WHERE status = 'active' AND removed_at IS NULL \
           AND ST_DWithin(location, {CENTER}, $3) \
           AND NOT (weekly_blocked && int4range($4, $5)) AND NOT (weekly_blocked && int4range($6, $7)) \
           AND NOT (dated_blocked && tstzrange($8, $9)) \
           AND NOT (reserved && tstzrange($10, $11)) \
           AND (NOT has_available_rules \
                OR (weekly_available @> int4range($4, $5) AND weekly_available @> int4range($6, $7)) \
                OR dated_available @> tstzrange($8, $9) \
                OR (NOT isempty(dated_available) \
                    AND read.rules_cover(weekly_available, dated_available, $8, $9)))"
    );
    let mut args: Vec<Arg> = Vec::new();
    let placeholder = |args: &mut Vec<Arg>, arg: Arg| {
        args.push(arg);
        format!("${}", 11 + args.len())
    };
    if let Some(text) = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let p = placeholder(&mut args, Arg::Text(like_pattern(text)));
        sql.push_str(&format!(" AND search_text ILIKE {p} ESCAPE '\\'"));
    }
    if let Some(fuel) = &q.fuel_type {
        let p = placeholder(&mut args, Arg::Text(fuel.clone()));
        sql.push_str(&format!(" AND fuel_type = {p}"));
    }
    if let Some(t) = &q.transmission {
        let p = placeholder(&mut args, Arg::Text(t.clone()));
        sql.push_str(&format!(" AND transmission = {p}"));
    }
    if let Some(min) = q.min_price {
        let p = placeholder(&mut args, Arg::Int(min));
        sql.push_str(&format!(" AND hourly_rate >= {p}"));
    }
    if let Some(max) = q.max_price {
        let p = placeholder(&mut args, Arg::Int(max));
        sql.push_str(&format!(" AND hourly_rate <= {p}"));
    }
    if let Some(after) = after {
        let k = placeholder(&mut args, Arg::Float(after.key));
        let seen = placeholder(&mut args, Arg::Ids(after.seen.clone()));
        sql.push_str(&format!(
            " AND ({sort_key} > {k} \
               OR ({sort_key} = {k} AND id <> ALL({seen}::uuid[])))"
        ));
    }
    // Ordering by the distance alone lets Postgres walk the GiST index nearest-first and stop
    // after the page; a second sort key would force it to collect the whole radius and sort.
    let limit = placeholder(&mut args, Arg::Int(limit));
    sql.push_str(&format!(" ORDER BY {sort_key} LIMIT {limit}"));

    let mut query = sqlx::query_as::<_, HitRow>(&sql)
        .bind(q.lat)
        .bind(q.lng)
        .bind(q.radius_km * 1000.0)
        .bind(to_i32(a1))
        .bind(to_i32(b1))
        .bind(to_i32(a2))
        .bind(to_i32(b2))
        .bind(q.window.start)
        .bind(q.window.end)
        .bind(q.window.start - q.buffer)
        .bind(q.window.end + q.buffer);
    for arg in args {
        query = match arg {
            Arg::Text(v) => query.bind(v),
            Arg::Int(v) => query.bind(v),
            Arg::Float(v) => query.bind(v),
            Arg::Ids(v) => query.bind(v),
        };
    }
    query.fetch_all(pool).await
}
