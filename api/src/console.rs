//! The operations console (`/console`): one static page for support, finance and admins, embedded
//! in the binary. It calls only the public `/v1` API with the admin's own access token; the API
//! enforces the admin role on every call, and the page refuses other accounts at sign-in.
//! The assets carry a strict Content-Security-Policy: scripts, styles and requests from this
//! origin only, nothing inline, no framing.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/app.js");
const STYLE: &str = include_str!("../console/app.css");

/// The console's Content-Security-Policy.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(body)
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

/// The console's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(index))
        .route("/console/", web::get().to(index))
        .route("/console/app.js", web::get().to(script))
        .route("/console/app.css", web::get().to(style));
}
