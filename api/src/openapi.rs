//! The OpenAPI document, generated from the route annotations.

use crate::error::{ErrorBody, ErrorCode, ErrorDetail, ErrorResponse};
use actix_web::{get, web, HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's fixed parts; paths and schemas are collected from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "카셰어링 서비스 API",
        version = "1.0.0",
        description = "Car-sharing platform API for corporate hosts and guests in Korea. \
            Every error has the shape `{\"error\": {code, message, details, correlation_id}}`; \
            the codes are listed in the `ErrorCode` schema and in docs/errors.md. Messages are \
            Korean unless `Accept-Language: en` is sent. Money is KRW in whole won; times are \
            RFC 3339 (stored in UTC, calendar rules read in Asia/Seoul)."
    ),
    components(schemas(
        ErrorResponse,
        ErrorBody,
        ErrorDetail,
        ErrorCode,
        crate::routes::accounts_dto::ProfileStatusFilter,
        crate::routes::bookings::dto::BookingStatusWire,
        crate::routes::bookings::dto::ListRoleWire,
        crate::routes::vehicles::dto::SearchSortWire,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "인증: registration, login, token rotation, logout"),
        (name = "users", description = "The caller's account and corporate host profile"),
        (name = "vehicles", description = "차량 관리: listing, availability and search"),
        (name = "bookings", description = "예약 관리: requests, answers, cancellations, pickup and return"),
        (name = "payments", description = "결제 처리: Toss Payments confirmation"),
        (name = "reviews", description = "리뷰: guests and hosts rate each other after a trip"),
        (name = "notifications", description = "알림: inbox, read marks, push devices, announcements"),
        (name = "operations", description = "Health, readiness, metrics and pipeline state")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".into());
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

/// Documents the error answers every operation can give whatever it does: malformed or
/// unreadable input (400, 413, 415, 422) where it takes parameters or a body, rate limiting
/// (429) and an unavailable dependency (503), each with the one error shape.
pub struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorResponse")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for op in [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let has_body = op.request_body.is_some();
                let mut add = |status: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                };
                if has_params || has_body {
                    add(
                        "400",
                        "Malformed request: unreadable JSON or query parameters",
                    );
                    add("422", "Invalid values (see `details`)");
                }
                if has_body {
                    add("413", "Body too large");
                    add("415", "Not a JSON (or multipart) body");
                }
                add("429", "Too many requests (see `Retry-After`)");
                add("503", "A dependency is unavailable (see `Retry-After`)");
            }
        }
    }
}

/// The generated document, serialised once per process.
#[derive(Clone)]
pub struct OpenApiJson(pub std::sync::Arc<String>);

/// Registers the route.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(openapi_json);
}

/// This document.
#[utoipa::path(tag = "operations", responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
#[get("/openapi.json")]
async fn openapi_json(doc: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.as_str().to_string())
}
