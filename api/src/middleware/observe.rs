//! The outermost middleware: gives every request a correlation id and a tracing span, records
//! HTTP metrics, renders every error in the one error shape (in the client's language, with the
//! correlation id), and logs each failure once.

use crate::error::{ApiError, ErrorCode, Lang};
use crate::metrics;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse};
use std::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

/// The header carrying the correlation id in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// The request's correlation id, in request extensions.
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

/// The request's preferred language, in request extensions.
#[derive(Debug, Clone, Copy)]
pub struct RequestLang(pub Lang);

/// A client-supplied id is kept if it is short and plain; otherwise a fresh one is made, so log
/// lines cannot be forged through it.
fn correlation_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| Uuid::new_v4().to_string())
}

/// The middleware function.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let id = correlation_id(&req);
    let lang = Lang::from_accept_language(
        req.headers()
            .get("accept-language")
            .and_then(|v| v.to_str().ok()),
    );
    req.extensions_mut().insert(CorrelationId(id.clone()));
    req.extensions_mut().insert(RequestLang(lang));
    let method = req.method().to_string();
    let span = tracing::info_span!(
        "http",
        correlation_id = %id,
        method = %method,
        route = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    // Handlers' and extractors' errors arrive as responses carrying the error; an `Err` here
    // could only come from a middleware inside this one, and goes out as actix renders it.
    let mut response: ServiceResponse<BoxBody> = match next.call(req).instrument(span.clone()).await
    {
        Ok(res) => res.map_into_boxed_body(),
        Err(err) => {
            let _entered = span.enter();
            tracing::error!(error = %err, "request failed inside the middleware stack");
            return Err(err);
        }
    };
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let status = response.status();
    span.record("route", route.as_str());
    span.record("status", status.as_u16());

    if let Some(api_error) = response
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>())
    {
        log_failure(&span, api_error, &route);
        let mut rendered = HttpResponse::build(status);
        // Headers set on the way out (rate limits, CORS, Retry-After) are kept.
        for (name, value) in response.headers() {
            if name != actix_web::http::header::CONTENT_TYPE
                && name != actix_web::http::header::CONTENT_LENGTH
            {
                rendered.append_header((name.clone(), value.clone()));
            }
        }
        let body = rendered.json(api_error.body(lang, &id));
        response = response.into_response(body);
    } else if let Some(cause) = response.response().error() {
        // A failure produced by actix itself rather than by our handlers (e.g. a method not
        // allowed): keep the one error shape. Responses our handlers built on purpose (such as
        // a 503 from /ready) carry no error and pass through untouched.
        let code = match status.as_u16() {
            404 => ErrorCode::REQ007,
            405 => ErrorCode::REQ008,
            413 => ErrorCode::REQ003,
            415 => ErrorCode::REQ004,
            400..=499 => ErrorCode::REQ006,
            _ => ErrorCode::SYS003,
        };
        {
            let _entered = span.enter();
            tracing::warn!(code = %code, error = %cause, "request failed outside a handler");
        }
        let body = HttpResponse::build(code.status()).json(ApiError::new(code).body(lang, &id));
        response = response.into_response(body);
    }

    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), value);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status();
    metrics::HTTP_REQUESTS
        .with_label_values(&[&method, &route, status.as_str()])
        .inc();
    metrics::HTTP_SECONDS
        .with_label_values(&[&method, &route])
        .observe(elapsed);
    {
        let _entered = span.enter();
        tracing::info!(
            status = status.as_u16(),
            latency_ms = (elapsed * 1000.0).round() as u64,
            "request completed"
        );
    }
    Ok(response)
}

/// Logs a failure once: server errors with their cause chain, client errors briefly.
fn log_failure(span: &tracing::Span, err: &ApiError, route: &str) {
    let _entered = span.enter();
    if err.code.status().is_server_error() {
        match &err.cause {
            Some(cause) => {
                tracing::error!(code = %err.code, route, error = format!("{cause:#}"), "request failed")
            }
            None => tracing::error!(code = %err.code, route, "request failed"),
        }
    } else {
        tracing::info!(code = %err.code, route, "request refused");
    }
}
