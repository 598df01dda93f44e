//! Request middleware.

pub mod observe;
pub mod security;
