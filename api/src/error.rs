//! The one error shape of the API and the catalogue of its codes.
//!
//! Every failure leaves as `{"error": {"code", "message", "details", "correlation_id"}}` with a
//! stable code. The message is Korean, or English when the client asks with
//! `Accept-Language: en`. The body is rendered by [`crate::middleware::errors`], which knows the
//! request; here errors are only classified. Internal causes go to the log, never to the body.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;
use utoipa::ToSchema;

/// Stable, hierarchical error codes. The catalogue is in `docs/errors.md`.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
pub enum ErrorCode {
    /// 400 — the body is not valid JSON.
    REQ001,
    /// 422 — the request is well-formed but some fields are invalid (see `details`).
    REQ002,
    /// 413 — the body is too large.
    REQ003,
    /// 415 — the body is not `application/json`.
    REQ004,
    /// 400 — a path parameter is malformed (e.g. not a UUID).
    REQ005,
    /// 400 — a query parameter is malformed.
    REQ006,
    /// 404 — no such route.
    REQ007,
    /// 405 — the route exists but not with this method.
    REQ008,
    /// 401 — no bearer token.
    AUTH001,
    /// 401 — the token is malformed or its signature is wrong.
    AUTH002,
    /// 401 — the token has expired.
    AUTH003,
    /// 401 — the token was revoked (logout).
    AUTH004,
    /// 403 — the caller's role may not do this.
    AUTH005,
    /// 401 — wrong e-mail address or password.
    AUTH006,
    /// 401 — the refresh token is unknown, expired or revoked.
    AUTH007,
    /// 401 — the refresh token was already used: the session was revoked.
    AUTH008,
    /// 409 — the e-mail address is already registered.
    ACCOUNT001,
    /// 422 — account fields are invalid (see `details`).
    ACCOUNT002,
    /// 404 — no such account (or it was erased).
    ACCOUNT003,
    /// 409 — the host still lists vehicles; remove them before erasing the account.
    ACCOUNT004,
    /// 409 — the host already has a corporate profile.
    CORP001,
    /// 409 — the business registration number is already registered.
    CORP002,
    /// 422 — corporate profile fields are invalid (see `details`).
    CORP003,
    /// 404 — no such corporate profile.
    CORP004,
    /// 403 — only hosts have corporate profiles.
    CORP005,
    /// 429 — too many requests; see `Retry-After`.
    RATE001,
    /// 422 — the Idempotency-Key was used for a different request.
    IDEM001,
    /// 409 — a request with this Idempotency-Key is still being processed.
    IDEM002,
    /// 404 — no such vehicle.
    VEHICLE001,
    /// 409 — another live vehicle has this licence plate.
    VEHICLE002,
    /// 409 — the vehicle was removed and cannot change.
    VEHICLE003,
    /// 403 — only the vehicle's host (or an admin) may change it.
    VEHICLE004,
    /// 403 — only hosts can register vehicles.
    VEHICLE005,
    /// 422 — vehicle fields are invalid (see `details`).
    VEHICLE006,
    /// 409 — bookings still hold the vehicle; it cannot be removed.
    VEHICLE007,
    /// 404 — no such booking (or not one of yours).
    BOOKING001,
    /// 409 — the vehicle is already booked in (or too close to) that window.
    BOOKING002,
    /// 422 — booking fields are invalid (see `details`).
    BOOKING003,
    /// 409 — the booking's status does not allow this.
    BOOKING004,
    /// 403 — only the booking's guest, host or an admin, as the action requires.
    BOOKING005,
    /// 403 — only guests can book.
    BOOKING006,
    /// 403 — a host cannot book their own vehicle.
    BOOKING007,
    /// 409 — the vehicle is not taking bookings (inactive or in maintenance).
    BOOKING008,
    /// 409 — the window lies outside the vehicle's availability.
    BOOKING009,
    /// 409 — the host's time to answer the request is over.
    BOOKING010,
    /// 409 — pickup is possible from 30 minutes before the start until the end.
    BOOKING011,
    /// 409 — photos of this kind are not taken at this point of the booking.
    BOOKING012,
    /// 409 — pickup needs the booking paid.
    BOOKING013,
    /// 404 — no payment is due for this booking (not approved yet, or unknown).
    PAYMENT001,
    /// 422 — the order id or amount does not match what is due.
    PAYMENT002,
    /// 409 — the booking is already paid (with another payment).
    PAYMENT003,
    /// 402 — Toss refused the payment (its code and message in `details`).
    PAYMENT004,
    /// 409 — the payment deadline has passed.
    PAYMENT005,
    /// 503 — the payment provider is unavailable.
    PAYMENT006,
    /// 403 — only the booking's guest pays.
    PAYMENT007,
    /// 409 — the booking ended before it was paid; nothing is owed.
    PAYMENT008,
    /// 422 — review fields are invalid (see `details`).
    REVIEW001,
    /// 409 — a booking can be reviewed once it is completed.
    REVIEW002,
    /// 409 — you already reviewed this booking.
    REVIEW003,
    /// 409 — the 14 days to review this booking are over.
    REVIEW004,
    /// 404 — no such notification (or not yours).
    NOTIFICATION001,
    /// 422 — notification fields are invalid (see `details`).
    NOTIFICATION002,
    /// 404 — the recipient does not exist.
    NOTIFICATION003,
    /// 404 — the device token is not registered to you.
    NOTIFICATION004,
    /// 404 — no such projection.
    ADMIN001,
    /// 409 — a rebuild of this projection is already running.
    ADMIN002,
    /// 413 — an uploaded file is larger than 10 MB.
    UPLOAD001,
    /// 415 — an uploaded file is not a JPEG, PNG, HEIC or WebP image (judged by content).
    UPLOAD002,
    /// 422 — the upload form is invalid (see `details`).
    UPLOAD003,
    /// 503 — image storage is unavailable.
    UPLOAD004,
    /// 422 — no coordinates were given and address geocoding is not configured.
    GEO001,
    /// 422 — the address could not be found.
    GEO002,
    /// 503 — the geocoding service is unavailable.
    GEO003,
    /// 409 — concurrent changes kept conflicting; retry.
    SYS001,
    /// 503 — a dependency (database, cache) is unavailable; retry later.
    SYS002,
    /// 500 — an unexpected error (details are in the server log under the correlation id).
    SYS003,
}

impl ErrorCode {
    /// The HTTP status of this code.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            REQ001 | REQ005 | REQ006 => StatusCode::BAD_REQUEST,
            REQ002 | VEHICLE006 | GEO001 | GEO002 | ACCOUNT002 | CORP003 | IDEM001 | BOOKING003
            | UPLOAD003 | PAYMENT002 | REVIEW001 | NOTIFICATION002 => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            REQ003 | UPLOAD001 => StatusCode::PAYLOAD_TOO_LARGE,
            REQ004 | UPLOAD002 => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            REQ007 | VEHICLE001 | ACCOUNT003 | CORP004 | BOOKING001 | PAYMENT001
            | NOTIFICATION001 | NOTIFICATION003 | NOTIFICATION004 | ADMIN001 => {
                StatusCode::NOT_FOUND
            }
            REQ008 => StatusCode::METHOD_NOT_ALLOWED,
            AUTH001 | AUTH002 | AUTH003 | AUTH004 | AUTH006 | AUTH007 | AUTH008 => {
                StatusCode::UNAUTHORIZED
            }
            AUTH005 | VEHICLE004 | VEHICLE005 | CORP005 | BOOKING005 | BOOKING006 | BOOKING007
            | PAYMENT007 => StatusCode::FORBIDDEN,
            VEHICLE002 | VEHICLE003 | VEHICLE007 | SYS001 | ACCOUNT001 | ACCOUNT004 | CORP001
            | CORP002 | IDEM002 | BOOKING002 | BOOKING004 | BOOKING008 | BOOKING009
            | BOOKING010 | BOOKING011 | BOOKING012 | BOOKING013 | PAYMENT003 | PAYMENT005
            | PAYMENT008 | REVIEW002 | REVIEW003 | REVIEW004 | ADMIN002 => StatusCode::CONFLICT,
            RATE001 => StatusCode::TOO_MANY_REQUESTS,
            GEO003 | SYS002 | UPLOAD004 | PAYMENT006 => StatusCode::SERVICE_UNAVAILABLE,
            PAYMENT004 => StatusCode::PAYMENT_REQUIRED,
            SYS003 => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message in Korean and in English.
    pub fn messages(self) -> (&'static str, &'static str) {
        use ErrorCode::*;
        match self {
            REQ001 => ("요청 본문이 올바른 JSON이 아닙니다.", "The request body is not valid JSON."),
            REQ002 => ("입력값이 올바르지 않습니다.", "Some fields are invalid."),
            REQ003 => ("요청 본문이 너무 큽니다.", "The request body is too large."),
            REQ004 => ("요청 본문은 application/json 형식이어야 합니다.", "The request body must be application/json."),
            REQ005 => ("경로의 식별자가 올바르지 않습니다.", "The identifier in the path is not valid."),
            REQ006 => ("쿼리 매개변수가 올바르지 않습니다.", "A query parameter is not valid."),
            REQ007 => ("요청한 경로를 찾을 수 없습니다.", "No such route."),
            REQ008 => ("허용되지 않은 메서드입니다.", "Method not allowed on this route."),
            AUTH001 => ("인증 토큰이 필요합니다.", "A bearer token is required."),
            AUTH002 => ("인증 토큰이 올바르지 않습니다.", "The bearer token is not valid."),
            AUTH003 => ("인증 토큰이 만료되었습니다.", "The bearer token has expired."),
            AUTH004 => ("폐기된 인증 토큰입니다. 다시 로그인해 주세요.", "The bearer token was revoked; sign in again."),
            AUTH005 => ("이 작업을 수행할 권한이 없습니다.", "Your role is not allowed to do this."),
            AUTH006 => ("이메일 또는 비밀번호가 올바르지 않습니다.", "Wrong e-mail address or password."),
            AUTH007 => ("리프레시 토큰이 유효하지 않거나 만료되었습니다. 다시 로그인해 주세요.", "The refresh token is not valid or has expired; sign in again."),
            AUTH008 => ("이미 사용된 리프레시 토큰입니다. 보안을 위해 세션이 종료되었습니다.", "The refresh token was already used; the session was revoked for safety."),
            ACCOUNT001 => ("이미 가입된 이메일입니다.", "This e-mail address is already registered."),
            ACCOUNT002 => ("계정 정보가 올바르지 않습니다.", "Some account fields are invalid."),
            ACCOUNT003 => ("계정을 찾을 수 없습니다.", "Account not found."),
            ACCOUNT004 => ("등록된 차량을 모두 삭제한 뒤 탈퇴할 수 있습니다.", "Remove your listed vehicles before erasing the account."),
            CORP001 => ("법인 프로필이 이미 등록되어 있습니다.", "A corporate profile already exists for this host."),
            CORP002 => ("이미 등록된 사업자등록번호입니다.", "This business registration number is already registered."),
            CORP003 => ("법인 정보가 올바르지 않습니다.", "Some corporate profile fields are invalid."),
            CORP004 => ("법인 프로필을 찾을 수 없습니다.", "Corporate profile not found."),
            CORP005 => ("법인 프로필은 호스트만 등록할 수 있습니다.", "Only hosts have corporate profiles."),
            RATE001 => ("요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.", "Too many requests; try again later."),
            IDEM001 => ("같은 Idempotency-Key로 다른 요청을 보낼 수 없습니다.", "This Idempotency-Key was used for a different request."),
            IDEM002 => ("같은 Idempotency-Key의 요청이 아직 처리 중입니다.", "A request with this Idempotency-Key is still being processed."),
            VEHICLE001 => ("차량을 찾을 수 없습니다.", "Vehicle not found."),
            VEHICLE002 => ("이미 등록된 차량 번호입니다.", "A vehicle with this licence plate is already registered."),
            VEHICLE003 => ("삭제된 차량은 변경할 수 없습니다.", "The vehicle was removed and cannot change."),
            VEHICLE004 => ("차량의 호스트 또는 관리자만 변경할 수 있습니다.", "Only the vehicle's host or an admin may change it."),
            VEHICLE005 => ("차량 등록은 호스트만 할 수 있습니다.", "Only hosts can register vehicles."),
            VEHICLE006 => ("차량 정보가 올바르지 않습니다.", "Some vehicle fields are invalid."),
            VEHICLE007 => ("예약이 남아 있는 차량은 삭제할 수 없습니다.", "Bookings still hold this vehicle; it cannot be removed."),
            BOOKING001 => ("예약을 찾을 수 없습니다.", "Booking not found."),
            BOOKING002 => ("해당 시간에 이미 예약된 차량입니다.", "The vehicle is already booked in (or too close to) that window."),
            BOOKING003 => ("예약 정보가 올바르지 않습니다.", "Some booking fields are invalid."),
            BOOKING004 => ("현재 예약 상태에서는 할 수 없는 작업입니다.", "The booking's status does not allow this."),
            BOOKING005 => ("이 예약에 대해 이 작업을 할 권한이 없습니다.", "You may not do this to this booking."),
            BOOKING006 => ("예약은 게스트만 할 수 있습니다.", "Only guests can book."),
            BOOKING007 => ("자신의 차량은 예약할 수 없습니다.", "A host cannot book their own vehicle."),
            BOOKING008 => ("현재 예약을 받지 않는 차량입니다.", "The vehicle is not taking bookings."),
            BOOKING009 => ("해당 시간에는 이용할 수 없는 차량입니다.", "The vehicle is not available in that window."),
            BOOKING010 => ("예약 요청에 응답할 수 있는 시간이 지났습니다.", "The time to answer this request is over."),
            BOOKING011 => ("픽업은 예약 시작 30분 전부터 종료 시각 전까지 가능합니다.", "Pickup is possible from 30 minutes before the start until the end."),
            BOOKING012 => ("지금은 이 종류의 사진을 올릴 수 없습니다.", "Photos of this kind are not taken at this point of the booking."),
            BOOKING013 => ("결제를 마친 뒤 픽업할 수 있습니다.", "The booking must be paid before pickup."),
            PAYMENT001 => ("이 예약에 대해 결제할 금액이 없습니다.", "No payment is due for this booking."),
            PAYMENT002 => ("주문 번호 또는 금액이 예약과 일치하지 않습니다.", "The order id or amount does not match what is due."),
            PAYMENT003 => ("이미 결제된 예약입니다.", "The booking is already paid."),
            PAYMENT004 => ("결제가 거절되었습니다.", "The payment was refused."),
            PAYMENT005 => ("결제 기한이 지났습니다.", "The payment deadline has passed."),
            PAYMENT006 => ("결제 서비스를 일시적으로 사용할 수 없습니다. 잠시 후 다시 시도해 주세요.", "The payment service is temporarily unavailable; try again shortly."),
            PAYMENT007 => ("예약한 게스트만 결제할 수 있습니다.", "Only the booking's guest pays."),
            PAYMENT008 => ("취소된 예약은 결제할 수 없습니다.", "The booking ended; nothing is owed."),
            REVIEW001 => ("리뷰 내용이 올바르지 않습니다.", "Some review fields are invalid."),
            REVIEW002 => ("이용이 완료된 예약만 리뷰할 수 있습니다.", "A booking can be reviewed once it is completed."),
            REVIEW003 => ("이미 이 예약에 리뷰를 작성했습니다.", "You already reviewed this booking."),
            REVIEW004 => ("리뷰는 반납 후 14일 이내에 작성할 수 있습니다.", "Reviews are accepted for 14 days after the return."),
            NOTIFICATION001 => ("알림을 찾을 수 없습니다.", "Notification not found."),
            NOTIFICATION002 => ("알림 정보가 올바르지 않습니다.", "Some notification fields are invalid."),
            NOTIFICATION003 => ("받는 사용자를 찾을 수 없습니다.", "The recipient does not exist."),
            NOTIFICATION004 => ("등록되지 않은 기기입니다.", "That device token is not registered to you."),
            ADMIN001 => ("프로젝션을 찾을 수 없습니다.", "No such projection."),
            ADMIN002 => ("이 프로젝션은 이미 재구축 중입니다.", "A rebuild of this projection is already running."),
            UPLOAD001 => ("파일은 10MB 이하여야 합니다.", "Each file must be at most 10 MB."),
            UPLOAD002 => ("JPEG, PNG, HEIC, WebP 이미지만 올릴 수 있습니다.", "Only JPEG, PNG, HEIC and WebP images are accepted."),
            UPLOAD003 => ("업로드 양식이 올바르지 않습니다.", "The upload form is invalid."),
            UPLOAD004 => ("이미지 저장소를 일시적으로 사용할 수 없습니다.", "Image storage is temporarily unavailable."),
            GEO001 => ("좌표(location_lat, location_lng)를 함께 보내 주세요. 주소 변환이 설정되어 있지 않습니다.", "Send location_lat and location_lng: address geocoding is not configured."),
            GEO002 => ("주소를 찾을 수 없습니다.", "The address could not be found."),
            GEO003 => ("주소 변환 서비스를 일시적으로 사용할 수 없습니다. 잠시 후 다시 시도해 주세요.", "The geocoding service is unavailable; try again shortly."),
            SYS001 => ("다른 요청과 동시에 변경되었습니다. 다시 시도해 주세요.", "The resource changed concurrently; try again."),
            SYS002 => ("일시적으로 서비스를 사용할 수 없습니다. 잠시 후 다시 시도해 주세요.", "The service is temporarily unavailable; try again shortly."),
            SYS003 => ("내부 오류가 발생했습니다.", "An internal error occurred."),
        }
    }

    /// Every code, for the catalogue.
    pub const ALL: [ErrorCode; 76] = {
        use ErrorCode::*;
        [
            REQ001,
            REQ002,
            REQ003,
            REQ004,
            REQ005,
            REQ006,
            REQ007,
            REQ008,
            AUTH001,
            AUTH002,
            AUTH003,
            AUTH004,
            AUTH005,
            AUTH006,
            AUTH007,
            AUTH008,
            ACCOUNT001,
            ACCOUNT002,
            ACCOUNT003,
            ACCOUNT004,
            CORP001,
            CORP002,
            CORP003,
            CORP004,
            CORP005,
            VEHICLE001,
            VEHICLE002,
            VEHICLE003,
            VEHICLE004,
            VEHICLE005,
            VEHICLE006,
            VEHICLE007,
            BOOKING001,
            BOOKING002,
            BOOKING003,
            BOOKING004,
            BOOKING005,
            BOOKING006,
            BOOKING007,
            BOOKING008,
            BOOKING009,
            BOOKING010,
            BOOKING011,
            BOOKING012,
            BOOKING013,
            PAYMENT001,
            PAYMENT002,
            PAYMENT003,
            PAYMENT004,
            PAYMENT005,
            PAYMENT006,
            PAYMENT007,
            PAYMENT008,
            REVIEW001,
            REVIEW002,
            REVIEW003,
            REVIEW004,
            NOTIFICATION001,
            NOTIFICATION002,
            NOTIFICATION003,
            NOTIFICATION004,
            ADMIN001,
            ADMIN002,
            UPLOAD001,
            UPLOAD002,
            UPLOAD003,
            UPLOAD004,
            GEO001,
            GEO002,
            GEO003,
            RATE001,
            IDEM001,
            IDEM002,
            SYS001,
            SYS002,
            SYS003,
        ]
    };
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A language of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Korean (the default).
    Ko,
    /// English.
    En,
}

impl Lang {
    /// Picks the preferred of Korean and English from an `Accept-Language` header.
    pub fn from_accept_language(header: Option<&str>) -> Lang {
        let Some(header) = header else {
            return Lang::Ko;
        };
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = pieces
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|v| v.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let lang = if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else if tag == "ko" || tag.starts_with("ko-") {
                Lang::Ko
            } else {
                continue;
            };
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Ko, |(_, l)| l)
    }
}

/// One field-level problem.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldIssue {
    /// Path of the field, e.g. `license_plate` or `rules[2].end_time`.
    pub field: String,
    /// Machine-readable reason, e.g. `invalid_format`.
    pub reason: &'static str,
    /// Korean explanation.
    pub ko: String,
    /// English explanation.
    pub en: String,
}

impl FieldIssue {
    /// A field issue with messages in both languages.
    pub fn new(
        field: impl Into<String>,
        reason: &'static str,
        ko: impl Into<String>,
        en: impl Into<String>,
    ) -> FieldIssue {
        FieldIssue {
            field: field.into(),
            reason,
            ko: ko.into(),
            en: en.into(),
        }
    }
}

/// An API failure: a code, field details, and (for 5xx) the cause kept for the log.
#[derive(Debug)]
pub struct ApiError {
    /// The code.
    pub code: ErrorCode,
    /// Field-level details.
    pub details: Vec<FieldIssue>,
    /// Seconds the client should wait before retrying (sent as `Retry-After`).
    pub retry_after: Option<u64>,
    /// The underlying cause, logged but never sent.
    pub cause: Option<anyhow::Error>,
    /// The methods a path does allow (sent as `Allow` with a 405).
    pub allow: Option<String>,
    /// The read models had not caught up when the answer was made (sent as
    /// `X-Read-Model-Lag: true`): a 404 may only mean "not there yet".
    pub read_model_lag: bool,
}

impl ApiError {
    /// An error with no details.
    pub fn new(code: ErrorCode) -> ApiError {
        ApiError {
            code,
            details: Vec::new(),
            retry_after: None,
            cause: None,
            allow: None,
            read_model_lag: false,
        }
    }

    /// An error with field details.
    pub fn with_details(code: ErrorCode, details: Vec<FieldIssue>) -> ApiError {
        ApiError {
            details,
            ..ApiError::new(code)
        }
    }

    /// Keeps `cause` for the log.
    pub fn caused_by(mut self, cause: impl Into<anyhow::Error>) -> ApiError {
        self.cause = Some(cause.into());
        self
    }

    /// A 503 for a dependency outage.
    pub fn unavailable(cause: impl Into<anyhow::Error>) -> ApiError {
        let mut err = ApiError::new(ErrorCode::SYS002).caused_by(cause);
        err.retry_after = Some(5);
        err
    }

    /// A 500 for anything unexpected.
    pub fn internal(cause: impl Into<anyhow::Error>) -> ApiError {
        ApiError::new(ErrorCode::SYS003).caused_by(cause)
    }

    /// A 422 validation failure with one field issue.
    pub fn invalid_field(
        field: impl Into<String>,
        reason: &'static str,
        ko: &str,
        en: &str,
    ) -> ApiError {
        ApiError::with_details(
            ErrorCode::REQ002,
            vec![FieldIssue::new(field, reason, ko, en)],
        )
    }

    /// The body for `lang` and `correlation_id`.
    pub fn body(&self, lang: Lang, correlation_id: &str) -> ErrorResponse {
        let (ko, en) = self.code.messages();
        let pick = |k: &str, e: &str| match lang {
            Lang::Ko => k.to_string(),
            Lang::En => e.to_string(),
        };
        ErrorResponse {
            error: ErrorBody {
                code: self.code,
                message: pick(ko, en),
                details: self
                    .details
                    .iter()
                    .map(|d| ErrorDetail {
                        field: d.field.clone(),
                        reason: d.reason.to_string(),
                        message: pick(&d.ko, &d.en),
                    })
                    .collect(),
                correlation_id: correlation_id.to_string(),
            },
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(cause) = &self.cause {
            write!(f, ": {cause:#}")?;
        }
        Ok(())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    /// A complete body in Korean without a correlation id; the error middleware re-renders it
    /// with the request's language and correlation id.
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after {
            response.insert_header(("Retry-After", secs.to_string()));
        }
        if let Some(allow) = &self.allow {
            response.insert_header(("Allow", allow.clone()));
        }
        if self.read_model_lag {
            response.insert_header((crate::routes::READ_MODEL_LAG, "true"));
        }
        response.json(self.body(Lang::Ko, ""))
    }
}

/// The error envelope.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorBody,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code (see the catalogue).
    pub code: ErrorCode,
    /// Human-readable message (Korean, or English with `Accept-Language: en`).
    pub message: String,
    /// Field-level problems (validation failures), otherwise empty.
    pub details: Vec<ErrorDetail>,
    /// The request's correlation id (echoes `X-Request-Id`), for support.
    pub correlation_id: String,
}

/// A field-level problem.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Path of the field, e.g. `rules[2].end_time`.
    pub field: String,
    /// Machine-readable reason.
    pub reason: String,
    /// Explanation.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_is_chosen_only_when_preferred() {
        assert_eq!(Lang::from_accept_language(None), Lang::Ko);
        assert_eq!(Lang::from_accept_language(Some("en")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(
            Lang::from_accept_language(Some("ko-KR,ko;q=0.9,en;q=0.8")),
            Lang::Ko
        );
        assert_eq!(Lang::from_accept_language(Some("fr, en;q=0.5")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("fr")), Lang::Ko);
    }

    #[test]
    fn every_code_has_messages_and_a_status() {
        for code in ErrorCode::ALL {
            let (ko, en) = code.messages();
            assert!(!ko.is_empty() && !en.is_empty());
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }
}

#[cfg(test)]
mod catalogue_tests {
    use super::ErrorCode;

    #[test]
    fn the_documented_catalogue_lists_every_code_with_its_status() {
        let doc = include_str!("../../docs/errors.md");
        for code in ErrorCode::ALL {
            let row = format!("| {code} | {} |", code.status().as_u16());
            assert!(doc.contains(&row), "docs/errors.md lacks the row `{row}`");
        }
    }
}
