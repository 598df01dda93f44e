//! Security headers on every response (the Helmet defaults that matter for a JSON API).

use actix_web::middleware::DefaultHeaders;

/// Headers added to every response.
pub fn headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        ))
        .add((
            "Content-Security-Policy",
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add(("Cross-Origin-Resource-Policy", "same-origin"))
        .add(("X-DNS-Prefetch-Control", "off"))
        .add(("X-Permitted-Cross-Domain-Policies", "none"))
}
