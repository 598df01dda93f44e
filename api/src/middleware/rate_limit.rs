//! Rate limits kept in Redis, so every API instance counts against the same budget:
//! requests per client address per minute, per signed-in user per hour, and (stricter) login
//! and registration attempts per address per minute. Fixed windows aligned to the clock.
//! Answers carry `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds) and
//! `RateLimit-Policy` of the tightest limit; a refused request gets 429 with `Retry-After`.
//!
//! If Redis cannot be reached the limits are not enforced (logged and counted): public reads
//! stay up during a Redis outage, while authenticated routes answer 503 through the token
//! check anyway.

use super::client_ip::{self, ClientIp};
use crate::error::{ApiError, ErrorCode};
use crate::redis_client::RedisHandle;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};
use carshare_event_store::metrics::counter_vec;
use ipnet::IpNet;
use prometheus::IntCounterVec;
use std::sync::{Arc, LazyLock};

static LIMITED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "carshare_rate_limited_total",
        "Requests refused by a rate limit, and checks skipped because Redis was unreachable",
        &["limit"],
    )
});

/// The limits, in app data.
pub struct RateLimiter {
    /// Redis.
    pub redis: Arc<RedisHandle>,
    /// Requests per address per minute.
    pub ip_per_minute: u32,
    /// Requests per user per hour.
    pub user_per_hour: u32,
    /// Login/registration attempts per address per minute.
    pub auth_per_minute: u32,
    /// The per-address window in seconds (60: a minute); the per-user one is 60 times longer.
    pub window_seconds: u64,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

/// One limit that applies to a request.
struct Budget {
    name: &'static str,
    key: String,
    limit: u32,
    window: u64,
}

/// Counts the request in each budget: `INCR`, set the expiry on first use, read the TTL.
const SCRIPT: &str = r#"
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[i]) end
  local ttl = redis.call('TTL', key)
  if ttl < 0 then redis.call('EXPIRE', key, ARGV[i]); ttl = tonumber(ARGV[i]) end
  out[#out + 1] = n
  out[#out + 1] = ttl
end
return out
"#;

/// Where an answer stands against one budget.
#[derive(Debug, Clone, Copy)]
struct Standing {
    limit: u32,
    remaining: u32,
    reset: u64,
    window: u64,
    exceeded: bool,
}

fn headers(standing: &Standing) -> [(HeaderName, String); 4] {
    [
        (
            HeaderName::from_static("ratelimit-limit"),
            standing.limit.to_string(),
        ),
        (
            HeaderName::from_static("ratelimit-remaining"),
            standing.remaining.to_string(),
        ),
        (
            HeaderName::from_static("ratelimit-reset"),
            standing.reset.to_string(),
        ),
        (
            HeaderName::from_static("ratelimit-policy"),
            format!("{};w={}", standing.limit, standing.window),
        ),
    ]
}

impl RateLimiter {
    fn budgets(
        &self,
        req: &ServiceRequest,
        ip: Option<std::net::IpAddr>,
        claims: Option<&crate::auth::Claims>,
        now: u64,
    ) -> Vec<Budget> {
        let mut budgets = Vec::with_capacity(3);
        let short = self.window_seconds.max(1);
        let long = short * 60;
        if let Some(ip) = ip {
            budgets.push(Budget {
                name: "ip",
                key: self.redis.key(&format!("rl:ip:{ip}:{}", now / short)),
                limit: self.ip_per_minute,
                window: short,
            });
            let path = req.path();
            if req.method() == actix_web::http::Method::POST
                && (path == "/v1/auth/login" || path == "/v1/auth/register")
            {
                budgets.push(Budget {
                    name: "auth",
                    key: self.redis.key(&format!("rl:auth:{ip}:{}", now / short)),
                    limit: self.auth_per_minute,
                    window: short,
                });
            }
        }
        if let Some(claims) = claims {
            budgets.push(Budget {
                name: "user",
                key: self
                    .redis
                    .key(&format!("rl:user:{}:{}", claims.sub, now / long)),
                limit: self.user_per_hour,
                window: long,
            });
        }
        budgets
    }

    /// Counts the request against `budgets`; with `revocation` (a command answering a count
    /// on this limiter's Redis), sends it in the same round trip and says whether the count
    /// was above zero. `None` when Redis did not answer.
    async fn count(
        &self,
        budgets: &[Budget],
        revocation: Option<redis::Cmd>,
    ) -> Option<(Vec<Standing>, Option<bool>)> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SCRIPT).arg(budgets.len());
        for b in budgets {
            cmd.arg(&b.key);
        }
        for b in budgets {
            cmd.arg(b.window);
        }
        let answer = match revocation {
            Some(revocation) => {
                let mut pipeline = redis::pipe();
                pipeline.add_command(cmd).add_command(revocation);
                self.redis
                    .run_pipeline::<(Vec<i64>, i64)>(&pipeline)
                    .await
                    .map(|(counts, revoked)| (counts, Some(revoked > 0)))
            }
            None => self.redis.run::<Vec<i64>>(&cmd).await.map(|c| (c, None)),
        };
        let (counts, revoked) = match answer {
            Ok(answer) => answer,
            Err(e) => {
                LIMITED.with_label_values(&["redis_unavailable"]).inc();
                tracing::warn!(error = %e, "rate limits not enforced: Redis unavailable");
                return None;
            }
        };
        let standings = budgets
            .iter()
            .zip(counts.chunks(2))
            .map(|(b, pair)| {
                let used = u64::try_from(pair.first().copied().unwrap_or(0)).unwrap_or(0);
                let ttl = u64::try_from(pair.get(1).copied().unwrap_or(0)).unwrap_or(0);
                Standing {
                    limit: b.limit,
                    remaining: u32::try_from(u64::from(b.limit).saturating_sub(used)).unwrap_or(0),
                    reset: ttl.max(1),
                    window: b.window,
                    exceeded: used > u64::from(b.limit),
                }
            })
            .collect();
        Some((standings, revoked))
    }
}

/// Operational endpoints are not limited (load balancers and scrapers poll them).
fn exempt(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
}

/// The middleware function.
pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(limiter) = req.app_data::<web::Data<RateLimiter>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let ip = client_ip::resolve(&req, &limiter.trusted_proxies);
    if let Some(ip) = ip {
        req.extensions_mut().insert(ClientIp(ip));
    }
    if exempt(req.path()) || req.method() == actix_web::http::Method::OPTIONS {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let claims = crate::auth::bearer_claims(&req);
    // The token's revocation check rides in the same round trip when the denylist is on this
    // limiter's Redis; authentication then takes its answer (and asks itself when Redis did
    // not answer, failing closed).
    let revocation = claims.as_ref().and_then(|c| {
        let auth = req.app_data::<web::Data<crate::auth::Authenticator>>()?;
        let (redis, cmd) = auth.revocations.as_redis_command(c)?;
        Arc::ptr_eq(&redis, &limiter.redis).then_some(cmd)
    });
    let budgets = limiter.budgets(&req, ip, claims.as_ref(), now);
    let counted = limiter.count(&budgets, revocation).await;
    let standings = match counted {
        Some((standings, revoked)) => {
            if let (Some(claims), Some(revoked)) = (claims, revoked) {
                crate::auth::settle_checked(&req, claims, revoked);
            }
            Some(standings)
        }
        None => None,
    };
    let tightest = standings.as_ref().and_then(|s| {
        let exceeded = s
            .iter()
            .zip(&budgets)
            .filter(|(st, _)| st.exceeded)
            .max_by_key(|(st, _)| st.reset);
        match exceeded {
            Some((st, b)) => Some((*st, Some(b.name))),
            None => s.iter().min_by_key(|st| st.remaining).map(|st| (*st, None)),
        }
    });
    if let Some((standing, Some(name))) = tightest {
        LIMITED.with_label_values(&[name]).inc();
        let mut err = ApiError::new(ErrorCode::RATE001);
        err.retry_after = Some(standing.reset);
        // The error travels with the response, so the outer middleware renders it in the
        // request's language with its correlation id, keeping these headers.
        let mut response = actix_web::HttpResponse::from_error(err);
        for (name, value) in headers(&standing) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        let (http_req, _) = req.into_parts();
        return Ok(ServiceResponse::new(http_req, response));
    }
    let mut res = next.call(req).await?.map_into_boxed_body();
    if let Some((standing, None)) = tightest {
        for (name, value) in headers(&standing) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                res.headers_mut().insert(name, v);
            }
        }
    }
    Ok(res)
}
