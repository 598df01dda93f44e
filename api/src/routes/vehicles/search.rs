//! `GET /v1/vehicles`: bookable vehicles near a point for a time window.

use super::dto::SearchSortWire;
use super::dto::{SearchParams, VehicleResponse};
use super::READ_MODELS;
use crate::error::{ApiError, ErrorCode, ErrorResponse, FieldIssue};
use crate::extract::ValidQuery;
use crate::routes::{await_position, page_size, NEXT_CURSOR};
use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use carshare_domain::geo::GeoPoint;
use carshare_domain::time::WindowError;
use carshare_domain::TimeWindow;
use carshare_projections::vehicles::{self, SearchCursor, SearchQuery, SearchSort};
use chrono::{Duration, Utc};

/// Default search radius in km.
const DEFAULT_RADIUS_KM: f64 = 5.0;
/// Largest search radius in km.
const MAX_RADIUS_KM: f64 = 50.0;
/// Longest window searched, in days.
const MAX_WINDOW_DAYS: i64 = 30;
/// How far in the past a window may start (clock skew, typing).
const START_GRACE_MINUTES: i64 = 5;
/// Longest text filter, in characters.
const MAX_QUERY_CHARS: usize = 100;

fn issue(field: &str, reason: &'static str, ko: &str, en: &str) -> FieldIssue {
    FieldIssue::new(field, reason, ko, en)
}

fn validate(p: &SearchParams) -> Result<SearchQuery, ApiError> {
    let mut issues = Vec::new();
    if GeoPoint::in_korea(p.lat, p.lng).is_err() {
        issues.push(issue(
            "lat",
            "outside_service_area",
            "검색 위치가 대한민국 밖에 있습니다.",
            "The search point lies outside South Korea.",
        ));
    }
    let radius = p.radius.unwrap_or(DEFAULT_RADIUS_KM);
    if !(radius.is_finite() && radius > 0.0 && radius <= MAX_RADIUS_KM) {
        issues.push(issue(
            "radius",
            "out_of_range",
            "radius는 0보다 크고 50 이하(km)여야 합니다.",
            "radius must be more than 0 and at most 50 (km).",
        ));
    }
    let window = match TimeWindow::new(p.start_datetime, p.end_datetime) {
        Ok(w) => match w.ensure_upcoming(
            Utc::now(),
            Duration::minutes(START_GRACE_MINUTES),
            MAX_WINDOW_DAYS,
        ) {
            Ok(()) => Some(w),
            Err(WindowError::InThePast) => {
                issues.push(issue(
                    "start_datetime",
                    "in_the_past",
                    "과거 시간으로는 검색할 수 없습니다.",
                    "The window lies in the past.",
                ));
                None
            }
            Err(WindowError::TooLong { max_days }) => {
                issues.push(issue(
                    "end_datetime",
                    "too_long",
                    &format!("기간은 최대 {max_days}일입니다."),
                    &format!("The window is at most {max_days} days."),
                ));
                None
            }
            Err(WindowError::EndNotAfterStart) => None,
        },
        Err(_) => {
            issues.push(issue(
                "end_datetime",
                "before_start",
                "end_datetime은 start_datetime보다 늦어야 합니다.",
                "end_datetime must be after start_datetime.",
            ));
            None
        }
    };
    for (field, value) in [("min_price", p.min_price), ("max_price", p.max_price)] {
        if value.is_some_and(|v| v < 0) {
            issues.push(issue(
                field,
                "out_of_range",
                "금액은 0 이상이어야 합니다.",
                "Amounts are 0 or more.",
            ));
        }
    }
    if let (Some(min), Some(max)) = (p.min_price, p.max_price) {
        if min > max {
            issues.push(issue(
                "min_price",
                "out_of_range",
                "min_price는 max_price 이하여야 합니다.",
                "min_price must not exceed max_price.",
            ));
        }
    }
    if p.q
        .as_deref()
        .is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS)
    {
        issues.push(issue(
            "q",
            "too_long",
            "검색어는 100자 이하여야 합니다.",
            "At most 100 characters.",
        ));
    }
    let after = match p.cursor.as_deref() {
        None => None,
        Some(token) => match SearchCursor::decode(token) {
            Some(c) => Some(c),
            None => {
                issues.push(issue(
                    "cursor",
                    "invalid_cursor",
                    "cursor 값이 올바르지 않습니다.",
                    "Unknown cursor.",
                ));
                None
            }
        },
    };
    let limit = page_size(p.limit)?;
    match window {
        Some(window) if issues.is_empty() => Ok(SearchQuery {
            lat: p.lat,
            lng: p.lng,
            radius_km: radius,
            window,
            text: p.q.clone(),
            fuel_type: p.fuel_type.map(|f| f.as_str().to_string()),
            transmission: p.transmission.map(|t| t.as_str().to_string()),
            min_price: p.min_price,
            max_price: p.max_price,
            // The caller sets the buffer between trips from the settings.
            buffer: chrono::Duration::zero(),
            sort: match p.sort {
                None | Some(SearchSortWire::Distance) => SearchSort::Distance,
                Some(SearchSortWire::Rating) => SearchSort::Rating,
            },
            limit,
            after,
        }),
        _ => Err(ApiError::with_details(ErrorCode::REQ002, issues)),
    }
}

/// Active vehicles within `radius` km of (`lat`, `lng`) that are bookable for the whole window
/// (availability rules read in Asia/Seoul), nearest first (or best rated first with
/// `sort=rating`), each with `distance_km`, the car's `rating` and the host's `host_rating`. The body
/// is the seed's array of vehicles; the next page's cursor is in `X-Next-Cursor` (and `Link`).
#[utoipa::path(
    tag = "vehicles",
    params(SearchParams),
    responses(
        (status = 200, body = Vec<VehicleResponse>,
         headers(("X-Next-Cursor" = String, description = "Cursor of the next page, if any"))),
        (status = 400, description = "Malformed parameter", body = ErrorResponse),
        (status = 422, description = "Invalid search", body = ErrorResponse),
        (status = 503, body = ErrorResponse)
    )
)]
#[get("/vehicles")]
pub async fn search(
    state: web::Data<AppState>,
    params: ValidQuery<SearchParams>,
) -> Result<HttpResponse, ApiError> {
    let params = params.0;
    let mut query = validate(&params)?;
    query.buffer = state.settings.booking.policy().buffer;
    let mut response = HttpResponse::Ok();
    await_position(
        &state,
        READ_MODELS,
        params.min_position.as_deref(),
        &mut response,
    )
    .await?;
    let (hits, next) = vehicles::search(&state.pool, &query).await?;
    if let Some(next) = next {
        let token = next.encode();
        response.insert_header((NEXT_CURSOR, token.clone()));
        let mut link_params: Vec<(String, String)> = vec![
            ("lat".into(), params.lat.to_string()),
            ("lng".into(), params.lng.to_string()),
            ("start_datetime".into(), query.window.start.to_rfc3339()),
            ("end_datetime".into(), query.window.end.to_rfc3339()),
            ("radius".into(), query.radius_km.to_string()),
            ("limit".into(), query.limit.to_string()),
        ];
        for (k, v) in [
            ("q", params.q.clone()),
            ("fuel_type", query.fuel_type.clone()),
            ("transmission", query.transmission.clone()),
            ("min_price", params.min_price.map(|v| v.to_string())),
            ("max_price", params.max_price.map(|v| v.to_string())),
            (
                "sort",
                params.sort.map(|s| {
                    match s {
                        SearchSortWire::Distance => "distance",
                        SearchSortWire::Rating => "rating",
                    }
                    .to_string()
                }),
            ),
        ] {
            if let Some(v) = v {
                link_params.push((k.into(), v));
            }
        }
        link_params.push(("cursor".into(), token));
        if let Ok(qs) = serde_urlencoded::to_string(&link_params) {
            response.insert_header(("Link", format!("</v1/vehicles?{qs}>; rel=\"next\"")));
        }
    }
    let body: Vec<VehicleResponse> = hits
        .iter()
        .map(|h| {
            let mut v = VehicleResponse::from(&h.vehicle);
            v.distance_km = Some((h.distance_km * 1000.0).round() / 1000.0);
            v.rating = Some(h.vehicle_rating.into());
            v.host_rating = Some(h.host_rating.into());
            v
        })
        .collect();
    Ok(response.json(body))
}
