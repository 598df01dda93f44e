//! Request extractors that refuse bad input with the API's error shape: a JSON body
//! ([`ValidJson`]), query parameters ([`ValidQuery`]) and path parameters ([`path_config`]).

use crate::error::{ApiError, ErrorCode, FieldIssue};
use actix_web::dev::Payload;
use actix_web::error::PathError;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;

/// The largest JSON body accepted, in app data (default 64 KiB).
#[derive(Debug, Clone, Copy)]
pub struct JsonLimit(pub usize);

/// A JSON body deserialised into `T`, or a 400/413/415/422 in the error shape.
#[derive(Debug)]
pub struct ValidJson<T>(pub T);

fn is_json(req: &HttpRequest) -> bool {
    match req.mime_type() {
        Ok(Some(mime)) => mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"),
        _ => false,
    }
}

/// A 400 for a body that is not JSON, pointing at where it stops being JSON.
fn syntax_error(e: &serde_json::Error) -> ApiError {
    ApiError::with_details(
        ErrorCode::REQ001,
        vec![FieldIssue::new(
            "body",
            "malformed_json",
            format!(
                "{}행 {}열 근처에서 JSON 구문 오류가 있습니다.",
                e.line(),
                e.column()
            ),
            format!(
                "JSON syntax error near line {} column {}.",
                e.line(),
                e.column()
            ),
        )],
    )
}

/// Turns a serde failure with its path into the error shape: syntax errors are 400 (REQ001),
/// wrong types, unknown fields and unknown enum values are 422 (REQ002) naming the field.
fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.inner();
    match inner.classify() {
        serde_json::error::Category::Syntax
        | serde_json::error::Category::Eof
        | serde_json::error::Category::Io => syntax_error(inner),
        serde_json::error::Category::Data => {
            let field = field_name(&path, &inner.to_string(), "body");
            // serde's message names the expected type or the allowed values; drop its position.
            let message = inner.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m)
                .to_string();
            ApiError::with_details(
                ErrorCode::REQ002,
                vec![FieldIssue::new(
                    field,
                    "invalid_value",
                    format!("값이 올바르지 않습니다: {message}"),
                    message,
                )],
            )
        }
    }
}

/// The path of the offending field; serde reports a missing field at its parent's path and
/// names it only in the message, so it is taken from there.
fn field_name(path: &str, message: &str, root: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    match (path, missing) {
        (".", Some(name)) => name.to_string(),
        (".", None) => root.to_string(),
        (parent, Some(name)) => format!("{parent}.{name}"),
        (path, None) => path.to_string(),
    }
}

/// Parses `bytes` as JSON into `T`. The syntax of the whole body is checked first, so a body
/// that is not JSON is always a 400, whatever its first value looks like.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| syntax_error(&e))?;
    if has_nul_escape(bytes) {
        return Err(nul_refused("body"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(|e| {
        ApiError::with_details(
            ErrorCode::REQ001,
            vec![FieldIssue::new(
                "body",
                "trailing_characters",
                format!(
                    "JSON 값 뒤에 불필요한 문자가 있습니다 ({}행 {}열).",
                    e.line(),
                    e.column()
                ),
                format!(
                    "Unexpected characters after the JSON value (line {} column {}).",
                    e.line(),
                    e.column()
                ),
            )],
        )
    })?;
    Ok(value)
}

/// Reads a body of at most `limit` bytes.
async fn read_body(
    mut payload: Payload,
    limit: usize,
    declared: Option<usize>,
) -> Result<BytesMut, ApiError> {
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::new(ErrorCode::REQ003));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk: Bytes = chunk.map_err(|e| {
            ApiError::with_details(
                ErrorCode::REQ001,
                vec![FieldIssue::new(
                    "body",
                    "unreadable",
                    "요청 본문을 읽을 수 없습니다.",
                    e.to_string(),
                )],
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(ErrorCode::REQ003));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

struct BodyInfo {
    limit: usize,
    json: bool,
    declared: Option<usize>,
}

fn body_info(req: &HttpRequest) -> BodyInfo {
    BodyInfo {
        limit: req
            .app_data::<web::Data<JsonLimit>>()
            .map_or(64 * 1024, |l| l.0),
        json: is_json(req),
        declared: req
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok()),
    }
}

fn empty_body() -> ApiError {
    ApiError::with_details(
        ErrorCode::REQ001,
        vec![FieldIssue::new(
            "body",
            "empty",
            "요청 본문이 비어 있습니다.",
            "The request body is empty.",
        )],
    )
}

impl<T: DeserializeOwned + 'static> FromRequest for ValidJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let info = body_info(req);
        let payload = payload.take();
        Box::pin(async move {
            if !info.json {
                return Err(ApiError::new(ErrorCode::REQ004));
            }
            let body = read_body(payload, info.limit, info.declared).await?;
            if body.is_empty() {
                return Err(empty_body());
            }
            parse_json(&body).map(ValidJson)
        })
    }
}

/// A JSON body that may be absent (no body at all): `None` then. A body that is present is
/// checked exactly as [`ValidJson`] does.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let info = body_info(req);
        let payload = payload.take();
        Box::pin(async move {
            let body = read_body(payload, info.limit, info.declared).await?;
            if body.is_empty() {
                return Ok(OptionalJson(None));
            }
            if !info.json {
                return Err(ApiError::new(ErrorCode::REQ004));
            }
            parse_json(&body).map(|v| OptionalJson(Some(v)))
        })
    }
}

/// Whether a syntactically valid JSON text has a string holding U+0000 (`\u0000`), which no
/// text column can store: such input is refused up front rather than failing in the database.
fn has_nul_escape(bytes: &[u8]) -> bool {
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(b"0000") {
                    return true;
                }
                i += 1; // skip the escaped character
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// The refusal of a NUL character in `field`.
fn nul_refused(field: &str) -> ApiError {
    ApiError::with_details(
        ErrorCode::REQ002,
        vec![FieldIssue::new(
            field,
            "nul_character",
            "NUL 문자(U+0000)는 사용할 수 없습니다.",
            "The NUL character (U+0000) is not accepted.",
        )],
    )
}

/// Query parameters deserialised into `T`, or a 400 (REQ006) naming the parameter.
#[derive(Debug)]
pub struct ValidQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequest for ValidQuery<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some((name, _)) = form_urlencoded_parse(req.query_string())
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            let mut err = nul_refused(&name);
            err.code = ErrorCode::REQ006;
            return std::future::ready(Err(err));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(req.query_string()));
        let result = serde_path_to_error::deserialize(de)
            .map(ValidQuery)
            .map_err(|err| {
                let message = err.inner().to_string();
                let field = field_name(&err.path().to_string(), &message, "query");
                ApiError::with_details(
                    ErrorCode::REQ006,
                    vec![FieldIssue::new(
                        field,
                        "invalid_value",
                        format!("값이 올바르지 않습니다: {message}"),
                        message,
                    )],
                )
            });
        std::future::ready(result)
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// Deserialises a present field (even `null`) as `Some(value)`, so `null` can mean "clear"
/// while an absent field means "leave alone" (with `#[serde(default)]`).
pub fn nullable<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(de).map(Some)
}

/// The `Idempotency-Key` header, if present: 1 to 255 ASCII characters, or a 422.
pub fn idempotency_key(
    headers: &actix_web::http::header::HeaderMap,
) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 255)
            .map(|k| Some(k.to_string()))
            .ok_or_else(|| {
                ApiError::with_details(
                    ErrorCode::REQ002,
                    vec![FieldIssue::new(
                        "Idempotency-Key",
                        "invalid_header",
                        "Idempotency-Key는 1~255자의 ASCII 문자열이어야 합니다.",
                        "Idempotency-Key must be 1 to 255 ASCII characters.",
                    )],
                )
            }),
    }
}

/// Path extraction failures (e.g. a malformed UUID) as 400 REQ005.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        let message = err.to_string();
        ApiError::with_details(
            ErrorCode::REQ005,
            vec![FieldIssue::new(
                "path",
                "invalid_identifier",
                "경로의 식별자가 올바르지 않습니다.",
                message,
            )],
        )
        .into()
    })
}

#[cfg(test)]
mod nul_tests {
    use super::has_nul_escape;

    #[test]
    fn nul_escapes_are_found_only_inside_strings() {
        assert!(has_nul_escape(br#"{"name": "a\u0000b"}"#));
        assert!(has_nul_escape(br#"["\u0000"]"#));
        assert!(
            !has_nul_escape(br#"{"name": "a\\u0000b"}"#),
            "an escaped backslash"
        );
        assert!(!has_nul_escape(br#"{"name": "a\u0001"}"#));
        assert!(!has_nul_escape(br#"{"name": "plain"}"#));
    }
}
