//! Clients of external HTTP APIs, with timeouts, bounded retries and circuit breakers.

pub mod fcm;
pub mod kakao;
pub mod resilience;
pub mod toss;
