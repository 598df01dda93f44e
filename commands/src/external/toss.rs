//! Toss Payments: confirming a payment the guest completed in the Toss widget
//! (`POST /v1/payments/confirm`). Authentication is HTTP Basic with the secret key as the user
//! and an empty password; every confirmation carries an `Idempotency-Key`, which is what makes
//! retrying it after a timeout or a 5xx safe.

use super::resilience::{BreakerSettings, CallError, CircuitBreaker, RetryPolicy};
use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;

const SERVICE: &str = "toss_payments";

/// A payment as Toss describes it (the fields the platform records).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TossPayment {
    /// Toss's key.
    pub payment_key: String,
    /// Our order id.
    pub order_id: String,
    /// e.g. `DONE`.
    pub status: String,
    /// e.g. `카드`.
    pub method: Option<String>,
    /// Amount in won.
    pub total_amount: i64,
    /// Approval time.
    pub approved_at: Option<DateTime<Utc>>,
}

/// Why a confirmation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Toss refused the payment (card declined, wrong amount…): the guest's problem, with
    /// Toss's code and message.
    #[error("Toss refused ({code}): {message}")]
    Refused {
        /// Toss's error code, e.g. `REJECT_CARD_COMPANY`.
        code: String,
        /// Toss's message.
        message: String,
    },
    /// Toss cannot be reached, is failing, or refuses our key: retry later.
    #[error("Toss unavailable: {0}")]
    Unavailable(String),
}

/// Confirms payments with the payment provider.
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Confirms `payment_key` for `order_id` and `amount`; `idempotency_key` makes a repeat
    /// harmless.
    async fn confirm(
        &self,
        payment_key: &str,
        order_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<TossPayment, GatewayError>;

    /// The payment `payment_key` as Toss has it now.
    async fn payment(&self, payment_key: &str) -> Result<TossPayment, GatewayError>;

    /// Refunds `amount` of the payment `payment_key` (partial when less than what is left).
    async fn refund(
        &self,
        payment_key: &str,
        amount: i64,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<TossRefund, GatewayError>;
}

/// A refund as Toss recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TossRefund {
    /// Toss's transaction key of the cancellation.
    pub transaction_key: Option<String>,
}

/// Settings of the Toss client.
#[derive(Debug, Clone)]
pub struct TossSettings {
    /// e.g. `https://api.tosspayments.com`.
    pub base_url: String,
    /// The secret key (`test_sk_…` or `live_sk_…`); never logged.
    pub secret_key: SecretString,
    /// Per-attempt timeout (30 s).
    pub timeout: Duration,
    /// Retries (3, with backoff) on network errors and 5xx.
    pub retry: RetryPolicy,
    /// Breaker.
    pub breaker: BreakerSettings,
}

impl TossSettings {
    /// Production defaults for a base URL and key.
    pub fn new(base_url: impl Into<String>, secret_key: SecretString) -> TossSettings {
        TossSettings {
            base_url: base_url.into(),
            secret_key,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            breaker: BreakerSettings::default(),
        }
    }
}

/// The Toss Payments client.
pub struct TossClient {
    http: reqwest::Client,
    settings: TossSettings,
    breaker: CircuitBreaker,
    authorization: SecretString,
}

#[derive(Debug, Deserialize)]
struct TossErrorBody {
    code: Option<String>,
    message: Option<String>,
}

impl TossClient {
    /// A client with its own connection pool.
    pub fn new(settings: TossSettings) -> Result<TossClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("carshare/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:", settings.secret_key.expose_secret()));
        Ok(TossClient {
            http,
            breaker: CircuitBreaker::new(SERVICE, settings.breaker),
            authorization: SecretString::from(format!("Basic {token}")),
            settings,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelledPayment {
    #[serde(default)]
    cancels: Vec<CancelEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelEntry {
    transaction_key: Option<String>,
}

impl TossClient {
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
        idempotency_key: &str,
    ) -> Result<T, CallError> {
        let url = format!("{}{path}", self.settings.base_url.trim_end_matches('/'));
        let response = self
            .http
            .post(url)
            .header("Authorization", self.authorization.expose_secret())
            .header("Idempotency-Key", idempotency_key)
            .json(&body)
            .send()
            .await
            .map_err(|e| CallError::from_reqwest(&e))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json::<T>()
                .await
                .map_err(|e| CallError::Decode(e.to_string()));
        }
        let code = status.as_u16();
        if status.is_server_error() || code == 429 {
            return Err(CallError::Unavailable { status: code });
        }
        let body: Option<TossErrorBody> = response.json().await.ok();
        let toss_code = body.as_ref().and_then(|b| b.code.clone());
        // A refused key is our configuration, not the guest's payment.
        if code == 401 || toss_code.as_deref() == Some("UNAUTHORIZED_KEY") {
            return Err(CallError::Unauthorized { status: code });
        }
        Err(CallError::Refused {
            status: code,
            code: toss_code,
            message: body.and_then(|b| b.message).unwrap_or_default(),
        })
    }

    async fn guarded<T, Fut>(&self, call: impl Fn() -> Fut) -> Result<T, GatewayError>
    where
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        let result = self
            .breaker
            .call(self.settings.retry.run(SERVICE, |_| call()))
            .await;
        match result {
            Ok(value) => Ok(value),
            Err(CallError::Refused { code, message, .. }) => Err(GatewayError::Refused {
                code: code.unwrap_or_else(|| "UNKNOWN".into()),
                message,
            }),
            Err(err) => {
                tracing::warn!(error = %err, "Toss call failed");
                Err(GatewayError::Unavailable(err.to_string()))
            }
        }
    }
}

#[async_trait]
impl PaymentGateway for TossClient {
    #[tracing::instrument(name = "toss.confirm", skip_all, fields(order_id = %order_id))]
    async fn confirm(
        &self,
        payment_key: &str,
        order_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<TossPayment, GatewayError> {
        let body = serde_json::json!({
            "paymentKey": payment_key,
            "orderId": order_id,
            "amount": amount,
        });
        self.guarded(|| self.post("/v1/payments/confirm", body.clone(), idempotency_key))
            .await
    }

    #[tracing::instrument(name = "toss.payment", skip_all)]
    async fn payment(&self, payment_key: &str) -> Result<TossPayment, GatewayError> {
        let url = format!(
            "{}/v1/payments/{payment_key}",
            self.settings.base_url.trim_end_matches('/')
        );
        self.guarded(|| async {
            let response = self
                .http
                .get(&url)
                .header("Authorization", self.authorization.expose_secret())
                .send()
                .await
                .map_err(|e| CallError::from_reqwest(&e))?;
            let status = response.status();
            if status.is_success() {
                return response
                    .json::<TossPayment>()
                    .await
                    .map_err(|e| CallError::Decode(e.to_string()));
            }
            let code = status.as_u16();
            if status.is_server_error() || code == 429 {
                return Err(CallError::Unavailable { status: code });
            }
            if code == 401 {
                return Err(CallError::Unauthorized { status: code });
            }
            let body: Option<TossErrorBody> = response.json().await.ok();
            Err(CallError::Refused {
                status: code,
                code: body.as_ref().and_then(|b| b.code.clone()),
                message: body.and_then(|b| b.message).unwrap_or_default(),
            })
        })
        .await
    }

    #[tracing::instrument(name = "toss.refund", skip_all)]
    async fn refund(
        &self,
        payment_key: &str,
        amount: i64,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<TossRefund, GatewayError> {
        let body = serde_json::json!({"cancelReason": reason, "cancelAmount": amount});
        let path = format!("/v1/payments/{payment_key}/cancel");
        let cancelled: CancelledPayment = self
            .guarded(|| self.post(&path, body.clone(), idempotency_key))
            .await?;
        Ok(TossRefund {
            transaction_key: cancelled
                .cancels
                .last()
                .and_then(|c| c.transaction_key.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn client(server: &MockServer) -> TossClient {
        TossClient::new(TossSettings {
            base_url: server.uri(),
            secret_key: SecretString::from("test_sk_secret"),
            timeout: Duration::from_millis(300),
            retry: RetryPolicy {
                max_retries: 3,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
            },
            breaker: BreakerSettings {
                failure_threshold: 5,
                open_for: Duration::from_millis(200),
            },
        })
        .unwrap()
    }

    fn done() -> serde_json::Value {
        json!({
            "mId": "tosspayments", "version": "2022-11-16", "paymentKey": "pk_1",
            "orderId": "bk-1", "orderName": "쏘나타 4시간", "status": "DONE", "method": "카드",
            "totalAmount": 54000, "balanceAmount": 54000,
            "requestedAt": "2026-12-01T10:29:00+09:00", "approvedAt": "2026-12-01T10:30:00+09:00"
        })
    }

    #[tokio::test]
    async fn a_confirmation_sends_the_key_basic_auth_and_idempotency_key() {
        let server = MockServer::start().await;
        // base64("test_sk_secret:")
        Mock::given(method("POST"))
            .and(path("/v1/payments/confirm"))
            .and(header("authorization", "Basic dGVzdF9za19zZWNyZXQ6"))
            .and(header("idempotency-key", "idem-1"))
            .and(body_json(
                json!({"paymentKey": "pk_1", "orderId": "bk-1", "amount": 54000}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(done()))
            .expect(1)
            .mount(&server)
            .await;
        let payment = client(&server)
            .confirm("pk_1", "bk-1", 54_000, "idem-1")
            .await
            .unwrap();
        assert_eq!(payment.status, "DONE");
        assert_eq!(payment.total_amount, 54_000);
        assert_eq!(
            payment.approved_at,
            Some("2026-12-01T01:30:00Z".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn server_errors_are_retried_and_refusals_are_not() {
        let server = MockServer::start().await;
        Mock::given(path("/v1/payments/confirm"))
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(2)
            .expect(2)
            .mount(&server)
            .await;
        Mock::given(path("/v1/payments/confirm"))
            .respond_with(ResponseTemplate::new(200).set_body_json(done()))
            .mount(&server)
            .await;
        assert!(client(&server)
            .confirm("pk_1", "bk-1", 54_000, "k")
            .await
            .is_ok());

        let server = MockServer::start().await;
        Mock::given(path("/v1/payments/confirm"))
            .respond_with(ResponseTemplate::new(400).set_body_json(
                json!({"code": "REJECT_CARD_COMPANY", "message": "카드사에서 거절했습니다."}),
            ))
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(
            client(&server).confirm("pk_1", "bk-1", 54_000, "k").await,
            Err(GatewayError::Refused {
                code: "REJECT_CARD_COMPANY".into(),
                message: "카드사에서 거절했습니다.".into()
            })
        );
    }

    #[tokio::test]
    async fn timeouts_and_a_refused_key_are_unavailability() {
        let server = MockServer::start().await;
        Mock::given(path("/v1/payments/confirm"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
            .mount(&server)
            .await;
        assert!(matches!(
            client(&server).confirm("pk_1", "bk-1", 54_000, "k").await,
            Err(GatewayError::Unavailable(_))
        ));
        let server = MockServer::start().await;
        Mock::given(path("/v1/payments/confirm"))
            .respond_with(ResponseTemplate::new(401).set_body_json(
                json!({"code": "UNAUTHORIZED_KEY", "message": "인증되지 않은 시크릿 키"}),
            ))
            .mount(&server)
            .await;
        assert!(matches!(
            client(&server).confirm("pk_1", "bk-1", 54_000, "k").await,
            Err(GatewayError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn a_payment_lookup_retries_outages_but_not_a_refused_key() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v1/payments/pk_down"))
            .respond_with(ResponseTemplate::new(503))
            .expect(4)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/payments/pk_key"))
            .respond_with(ResponseTemplate::new(401).set_body_json(
                json!({"code": "UNAUTHORIZED_KEY", "message": "인증되지 않은 시크릿 키"}),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let toss = client(&server);
        assert_eq!(
            toss.payment("pk_down").await.err(),
            Some(GatewayError::Unavailable("service answered 503".into()))
        );
        assert_eq!(
            toss.payment("pk_key").await.err(),
            Some(GatewayError::Unavailable(
                "service refused our credentials (401)".into()
            ))
        );
        server.verify().await;
    }

    #[tokio::test]
    async fn a_refusal_without_a_code_is_reported_as_unknown() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/payments/confirm"))
            .respond_with(ResponseTemplate::new(400).set_body_string("<html>Bad Request</html>"))
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(
            client(&server)
                .confirm("pk_1", "bk-1", 54_000, "idem-1")
                .await
                .err(),
            Some(GatewayError::Refused {
                code: "UNKNOWN".into(),
                message: String::new(),
            })
        );
    }
}
