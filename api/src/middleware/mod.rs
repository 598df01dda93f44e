//! Request middleware.

pub mod client_ip;
pub mod idempotency;
pub mod observe;
pub mod rate_limit;
pub mod security;
