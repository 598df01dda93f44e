//! `Idempotency-Key` on creating requests (`POST`): the first request with a key runs and its
//! answer is kept for a day; the same key with the same method, path and body gets that answer
//! again (with `Idempotent-Replayed: true`) and changes nothing; the same key with anything else
//! is refused (422 IDEM001); a key whose first request is still running answers 409 IDEM002.
//! Keys belong to the caller: the signed-in user, or the client address when anonymous.
//! Only successful answers are kept: a refused or failed request changed nothing, so a retry
//! with the same key simply runs again.

use super::client_ip::ClientIp;
use crate::error::{ApiError, ErrorCode};
use crate::extract::JsonLimit;
use crate::state::AppState;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{web, Error, HttpMessage, HttpResponse};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// Headers kept with a stored answer.
const KEPT_HEADERS: [&str; 4] = [
    "content-type",
    "location",
    "x-stream-position",
    "x-next-cursor",
];

/// A pending claim older than this is taken to belong to a request that died.
const STALE_SECONDS: f64 = 60.0;

fn scope(req: &ServiceRequest) -> Option<String> {
    match crate::auth::bearer_claims(req) {
        Some(claims) => Some(format!("user:{}", claims.sub)),
        None => req
            .extensions()
            .get::<ClientIp>()
            .map(|ip| format!("ip:{}", ip.0))
            .or_else(|| req.peer_addr().map(|a| format!("ip:{}", a.ip()))),
    }
}

enum Claim {
    Mine,
    Replay(StoredAnswer),
    Mismatch,
    InProgress,
}

/// (request hash, status, headers, body, stale claim)
type StoredRow = (
    Vec<u8>,
    Option<i16>,
    Option<serde_json::Value>,
    Option<Vec<u8>>,
    bool,
);

struct StoredAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn claim(pool: &PgPool, scope: &str, key: &str, hash: &[u8]) -> Result<Claim, sqlx::Error> {
    for _ in 0..2 {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(hash)
        .execute(pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(Claim::Mine);
        }
        let row: Option<StoredRow> = sqlx::query_as(
            "SELECT request_hash, status, response_headers, response_body, \
                   completed_at IS NULL AND created_at < now() - make_interval(secs => $3) \
                 FROM idempotency_keys WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .bind(STALE_SECONDS)
        .fetch_optional(pool)
        .await?;
        let Some((stored_hash, status, headers, body, stale)) = row else {
            continue; // deleted in between: claim again
        };
        if stored_hash != hash {
            return Ok(Claim::Mismatch);
        }
        match status {
            Some(status) => {
                let headers = headers
                    .and_then(|h| serde_json::from_value::<Vec<(String, String)>>(h).ok())
                    .unwrap_or_default();
                return Ok(Claim::Replay(StoredAnswer {
                    status: u16::try_from(status).unwrap_or(200),
                    headers,
                    body: body.unwrap_or_default(),
                }));
            }
            None if stale => {
                sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND completed_at IS NULL")
                    .bind(scope)
                    .bind(key)
                    .execute(pool)
                    .await?;
            }
            None => return Ok(Claim::InProgress),
        }
    }
    Ok(Claim::InProgress)
}

/// The middleware function.
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    // Uploads (multipart) are not replayed: each stores new objects under fresh keys, and
    // their bodies are far larger than what is kept for a replay.
    let multipart = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/"));
    if req.method() != Method::POST || multipart {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let key = match crate::extract::idempotency_key(req.headers()) {
        Ok(Some(key)) => key,
        Ok(None) => {
            return next
                .call(req)
                .await
                .map(ServiceResponse::map_into_boxed_body)
        }
        Err(e) => return refuse(req, e),
    };
    let Some(pool) = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.pool.clone())
    else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let Some(scope) = scope(&req) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    // The body is read here to fingerprint the request, then handed on unchanged.
    let limit = req
        .app_data::<web::Data<JsonLimit>>()
        .map_or(64 * 1024, |l| l.0);
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                return refuse(
                    req,
                    ApiError::new(ErrorCode::REQ001).caused_by(anyhow::anyhow!(e.to_string())),
                )
            }
        };
        if body.len() + chunk.len() > limit {
            return refuse(req, ApiError::new(ErrorCode::REQ003));
        }
        body.extend_from_slice(&chunk);
    }
    let body: Bytes = body.freeze();
    let mut hasher = Sha256::new();
    hasher.update(req.method().as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(req.uri().to_string().as_bytes());
    hasher.update(b"\n");
    hasher.update(&body);
    let hash = hasher.finalize().to_vec();
    req.set_payload(Payload::from(body));

    let claimed = match claim(&pool, &scope, &key, &hash).await {
        Ok(c) => c,
        Err(e) => return refuse(req, ApiError::from(e)),
    };
    match claimed {
        Claim::Mismatch => return refuse(req, ApiError::new(ErrorCode::IDEM001)),
        Claim::InProgress => return refuse(req, ApiError::new(ErrorCode::IDEM002)),
        Claim::Replay(answer) => {
            let mut response =
                HttpResponse::build(StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK));
            for (name, value) in &answer.headers {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::try_from(name.as_str()),
                    HeaderValue::from_str(value),
                ) {
                    response.insert_header((n, v));
                }
            }
            response.insert_header(("Idempotent-Replayed", "true"));
            let (http_req, _) = req.into_parts();
            return Ok(ServiceResponse::new(http_req, response.body(answer.body)));
        }
        Claim::Mine => {}
    }

    let res = next.call(req).await;
    let res = match res {
        Ok(res) => res.map_into_boxed_body(),
        Err(e) => {
            release(&pool, &scope, &key).await;
            return Err(e);
        }
    };
    let status = res.status();
    // Only successes are kept: a refused request changed nothing, so running it again gives
    // the same refusal (or, after a transient failure, does the work).
    if !status.is_success() {
        release(&pool, &scope, &key).await;
        return Ok(res);
    }
    let (http_req, response) = res.into_parts();
    let headers: Vec<(String, String)> = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            response
                .headers()
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .map(|v| ((*name).to_string(), v.to_string()))
        })
        .collect();
    let (response, body) = response.into_parts();
    let body = actix_web::body::to_bytes(body).await.unwrap_or_default();
    if let Err(e) = sqlx::query(
        "UPDATE idempotency_keys SET status = $3, response_headers = $4, response_body = $5, completed_at = now() \
         WHERE scope = $1 AND key = $2",
    )
    .bind(&scope)
    .bind(&key)
    .bind(i16::try_from(status.as_u16()).unwrap_or(200))
    .bind(serde_json::to_value(&headers).unwrap_or_default())
    .bind(body.to_vec())
    .execute(&pool)
    .await
    {
        tracing::warn!(error = %e, "could not store the idempotent answer");
        release(&pool, &scope, &key).await;
    }
    Ok(ServiceResponse::new(
        http_req,
        response.set_body(BoxBody::new(body)),
    ))
}

/// Answers with an error that the outer middleware renders (language, correlation id).
fn refuse(req: ServiceRequest, err: ApiError) -> Result<ServiceResponse<BoxBody>, Error> {
    let (http_req, _) = req.into_parts();
    Ok(ServiceResponse::new(
        http_req,
        HttpResponse::from_error(err),
    ))
}

async fn release(pool: &PgPool, scope: &str, key: &str) {
    if let Err(e) = sqlx::query(
        "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND completed_at IS NULL",
    )
    .bind(scope)
    .bind(key)
    .execute(pool)
    .await
    {
        tracing::warn!(error = %e, "could not release an idempotency key");
    }
}

/// Deletes answers older than a day.
pub async fn purge_expired(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < now() - interval '1 day'")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
