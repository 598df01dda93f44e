//! Firebase Cloud Messaging, HTTP v1 API: `POST /v1/projects/{project}/messages:send`.
//!
//! Authentication follows Google's service-account flow: the client signs a JWT (RS256) with the
//! key file's private key, exchanges it at the key file's `token_uri` for an OAuth2 access token
//! (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`), and caches that token until a
//! minute before it expires. Sends time out after 10 s, are retried (at most 3 times, with
//! backoff) on network errors, 429 and 5xx, and go through a circuit breaker. A token FCM reports
//! as `UNREGISTERED` is reported as such so the caller can drop it.

use super::resilience::{BreakerSettings, CallError, CircuitBreaker, RetryPolicy};
use async_trait::async_trait;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const SERVICE: &str = "fcm";
/// The OAuth2 scope of FCM sends.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The grant type of the token exchange.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Access tokens are renewed this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// One push message to one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMessage {
    /// The device's FCM registration token.
    pub token: String,
    /// Notification title.
    pub title: String,
    /// Notification body.
    pub body: String,
    /// Custom data (FCM data payloads are string to string).
    pub data: BTreeMap<String, String>,
}

/// Why a push was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The token is no longer valid (app uninstalled, token rotated): drop it.
    #[error("the device token is unregistered")]
    Unregistered,
    /// FCM refused this message for good (e.g. a malformed token); retrying will not help.
    #[error("FCM refused the message: {0}")]
    Refused(String),
    /// FCM (or the token endpoint) is unreachable or failing; try again later.
    #[error("FCM unavailable: {0}")]
    Unavailable(String),
}

/// Sends push messages (the FCM client; tests may substitute a recorder).
#[async_trait]
pub trait PushSender: Send + Sync {
    /// Sends one message to one device.
    async fn send(&self, message: &PushMessage) -> Result<(), PushError>;
}

/// The fields of a Google service-account key file that the client uses.
#[derive(Clone)]
pub struct ServiceAccountKey {
    /// The service account's e-mail (the JWT issuer).
    pub client_email: String,
    /// PEM-encoded RSA private key.
    pub private_key: SecretString,
    /// Where tokens are exchanged (`https://oauth2.googleapis.com/token`).
    pub token_uri: String,
    /// The Firebase project, if the file names one.
    pub project_id: Option<String>,
}

#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: String,
    token_uri: String,
    #[serde(default)]
    project_id: Option<String>,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Unreadable file.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a service-account key.
    #[error("not a service-account key file: {0}")]
    Format(String),
    /// The private key is not an RSA PEM key.
    #[error("the private key cannot be used for RS256: {0}")]
    Key(String),
}

impl ServiceAccountKey {
    /// Reads a key file as downloaded from the Firebase console.
    pub fn from_file(path: &Path) -> Result<ServiceAccountKey, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        ServiceAccountKey::from_json(&text)
    }

    /// Parses the key file's JSON.
    pub fn from_json(text: &str) -> Result<ServiceAccountKey, KeyFileError> {
        let file: KeyFile =
            serde_json::from_str(text).map_err(|e| KeyFileError::Format(e.to_string()))?;
        let key = ServiceAccountKey {
            client_email: file.client_email,
            private_key: SecretString::from(file.private_key),
            token_uri: file.token_uri,
            project_id: file.project_id,
        };
        EncodingKey::from_rsa_pem(key.private_key.expose_secret().as_bytes())
            .map_err(|e| KeyFileError::Key(e.to_string()))?;
        Ok(key)
    }
}

/// Settings of the FCM client.
#[derive(Debug, Clone)]
pub struct FcmSettings {
    /// e.g. `https://fcm.googleapis.com`.
    pub base_url: String,
    /// The Firebase project id.
    pub project_id: String,
    /// The service account.
    pub key: ServiceAccountKey,
    /// Per-attempt timeout (10 s).
    pub timeout: Duration,
    /// Retries on network errors, 429 and 5xx.
    pub retry: RetryPolicy,
    /// Breaker.
    pub breaker: BreakerSettings,
}

impl FcmSettings {
    /// Production defaults.
    pub fn new(
        base_url: impl Into<String>,
        project_id: impl Into<String>,
        key: ServiceAccountKey,
    ) -> FcmSettings {
        FcmSettings {
            base_url: base_url.into(),
            project_id: project_id.into(),
            key,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            breaker: BreakerSettings::default(),
        }
    }
}

struct CachedToken {
    value: SecretString,
    renew_at: Instant,
}

/// The FCM HTTP v1 client.
pub struct FcmClient {
    http: reqwest::Client,
    settings: FcmSettings,
    signer: EncodingKey,
    breaker: CircuitBreaker,
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default = "default_expiry")]
    expires_in: u64,
}

fn default_expiry() -> u64 {
    3600
}

#[derive(Deserialize)]
struct FcmErrorBody {
    error: FcmError,
}

#[derive(Deserialize)]
struct FcmError {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Vec<FcmErrorDetail>,
}

#[derive(Deserialize)]
struct FcmErrorDetail {
    #[serde(rename = "errorCode", default)]
    error_code: Option<String>,
}

/// How one attempt ended, before retries are decided.
enum Attempt {
    Sent,
    Unregistered,
}

impl FcmClient {
    /// A client with its own connection pool.
    pub fn new(settings: FcmSettings) -> Result<FcmClient, KeyFileError> {
        let signer = EncodingKey::from_rsa_pem(settings.key.private_key.expose_secret().as_bytes())
            .map_err(|e| KeyFileError::Key(e.to_string()))?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("carshare/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| KeyFileError::Format(e.to_string()))?;
        Ok(FcmClient {
            http,
            breaker: CircuitBreaker::new(SERVICE, settings.breaker),
            settings,
            signer,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, or a fresh one from the token endpoint.
    async fn access_token(&self) -> Result<SecretString, CallError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            if Instant::now() < token.renew_at {
                return Ok(token.value.clone());
            }
        }
        let key = &self.settings.key;
        let now = Utc::now().timestamp();
        let assertion = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &Assertion {
                iss: &key.client_email,
                scope: FCM_SCOPE,
                aud: &key.token_uri,
                iat: now,
                exp: now + 3600,
            },
            &self.signer,
        )
        .map_err(|e| CallError::Decode(format!("signing the token request: {e}")))?;
        let response = self
            .http
            .post(&key.token_uri)
            .form(&[("grant_type", JWT_BEARER_GRANT), ("assertion", &assertion)])
            .send()
            .await
            .map_err(|e| CallError::from_reqwest(&e))?;
        let status = response.status();
        if !status.is_success() {
            let code = status.as_u16();
            return Err(if status.is_server_error() || code == 429 {
                CallError::Unavailable { status: code }
            } else {
                CallError::Unauthorized { status: code }
            });
        }
        let token: TokenResponse = response
            .json()
            .await
            .map_err(|e| CallError::Decode(e.to_string()))?;
        let lifetime = Duration::from_secs(token.expires_in).saturating_sub(TOKEN_MARGIN);
        let value = SecretString::from(token.access_token);
        *cached = Some(CachedToken {
            value: value.clone(),
            renew_at: Instant::now() + lifetime,
        });
        Ok(value)
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    async fn attempt(&self, message: &PushMessage) -> Result<Attempt, CallError> {
        let token = self.access_token().await?;
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.settings.base_url.trim_end_matches('/'),
            self.settings.project_id
        );
        let body = serde_json::json!({
            "message": {
                "token": message.token,
                "notification": {"title": message.title, "body": message.body},
                "data": message.data,
                "android": {"priority": "high"},
                "apns": {"payload": {"aps": {"sound": "default"}}},
            }
        });
        let response = self
            .http
            .post(url)
            .bearer_auth(token.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| CallError::from_reqwest(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Attempt::Sent);
        }
        let code = status.as_u16();
        if status.is_server_error() || code == 429 {
            return Err(CallError::Unavailable { status: code });
        }
        if code == 401 {
            // The cached token was revoked or expired early: fetch another and retry.
            self.forget_token().await;
            return Err(CallError::Unavailable { status: code });
        }
        let error = response.json::<FcmErrorBody>().await.ok().map(|b| b.error);
        let fcm_code = error
            .as_ref()
            .and_then(|e| e.details.iter().find_map(|d| d.error_code.clone()));
        if fcm_code.as_deref() == Some("UNREGISTERED")
            || (code == 404
                && error.as_ref().and_then(|e| e.status.as_deref()) == Some("NOT_FOUND"))
        {
            return Ok(Attempt::Unregistered);
        }
        Err(CallError::Refused {
            status: code,
            code: fcm_code.or_else(|| error.as_ref().and_then(|e| e.status.clone())),
            message: error.and_then(|e| e.message).unwrap_or_default(),
        })
    }
}

#[async_trait]
impl PushSender for FcmClient {
    #[tracing::instrument(name = "fcm.send", skip_all)]
    async fn send(&self, message: &PushMessage) -> Result<(), PushError> {
        let result = self
            .breaker
            .call(
                self.settings
                    .retry
                    .run(SERVICE, |_| async { self.attempt(message).await }),
            )
            .await;
        match result {
            Ok(Attempt::Sent) => Ok(()),
            Ok(Attempt::Unregistered) => Err(PushError::Unregistered),
            Err(CallError::Refused { status, code, .. }) => Err(PushError::Refused(format!(
                "{status} {}",
                code.unwrap_or_default()
            ))),
            Err(err) => {
                tracing::warn!(error = %err, "FCM send failed");
                Err(PushError::Unavailable(err.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const KEY: &str = include_str!("../../../tests/fixtures/fcm-test-key.pem");

    async fn client(server: &MockServer) -> FcmClient {
        let key = ServiceAccountKey::from_json(
            &serde_json::json!({
                "type": "service_account",
                "client_email": "push@p.iam.gserviceaccount.com",
                "private_key": KEY,
                "token_uri": format!("{}/token", server.uri()),
                "project_id": "p",
            })
            .to_string(),
        )
        .unwrap();
        let mut settings = FcmSettings::new(server.uri(), "p", key);
        settings.retry = RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        };
        FcmClient::new(settings).unwrap()
    }

    fn token(value: &str) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"access_token": value, "expires_in": 3599}))
    }

    fn message() -> PushMessage {
        PushMessage {
            token: "device".into(),
            title: "제목".into(),
            body: "본문".into(),
            data: BTreeMap::from([("booking_id".to_string(), "b1".to_string())]),
        }
    }

    #[tokio::test]
    async fn a_rejected_access_token_is_renewed_and_the_send_retried() {
        let server = MockServer::start().await;
        Mock::given(path("/token"))
            .respond_with(token("first"))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(path("/token"))
            .respond_with(token("second"))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/projects/p/messages:send"))
            .and(header("authorization", "Bearer first"))
            .respond_with(ResponseTemplate::new(401))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/projects/p/messages:send"))
            .and(header("authorization", "Bearer second"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"name": "projects/p/messages/1"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        client(&server).await.send(&message()).await.unwrap();
        let tokens = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/token")
            .count();
        assert_eq!(tokens, 2);
    }

    #[tokio::test]
    async fn a_malformed_message_is_refused_once_and_an_unregistered_token_reported() {
        let server = MockServer::start().await;
        Mock::given(path("/token"))
            .respond_with(token("t"))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/projects/p/messages:send"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": {
                "code": 400, "message": "The registration token is not a valid FCM registration token",
                "status": "INVALID_ARGUMENT",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                             "errorCode": "INVALID_ARGUMENT"}]}})))
            .expect(1)
            .mount(&server)
            .await;
        let fcm = client(&server).await;
        assert_eq!(
            fcm.send(&message()).await,
            Err(PushError::Refused("400 INVALID_ARGUMENT".into()))
        );
        server.verify().await;
        server.reset().await;
        Mock::given(path("/token"))
            .respond_with(token("t"))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/projects/p/messages:send"))
            .respond_with(
                ResponseTemplate::new(404).set_body_json(serde_json::json!({"error": {
                "code": 404, "status": "NOT_FOUND",
                "details": [{"errorCode": "UNREGISTERED"}]}})),
            )
            .mount(&server)
            .await;
        assert_eq!(fcm.send(&message()).await, Err(PushError::Unregistered));
    }

    #[tokio::test]
    async fn an_outage_is_retried_then_reported_unavailable() {
        let server = MockServer::start().await;
        Mock::given(path("/token"))
            .respond_with(token("t"))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/projects/p/messages:send"))
            .respond_with(ResponseTemplate::new(503))
            .expect(4)
            .mount(&server)
            .await;
        let result = client(&server).await.send(&message()).await;
        assert!(
            matches!(result, Err(PushError::Unavailable(_))),
            "{result:?}"
        );
    }

    #[test]
    fn key_files_must_hold_an_rsa_key() {
        assert!(matches!(
            ServiceAccountKey::from_json("not json"),
            Err(KeyFileError::Format(_))
        ));
        let bad = serde_json::json!({
            "client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
            "token_uri": "https://oauth2.googleapis.com/token"
        });
        assert!(matches!(
            ServiceAccountKey::from_json(&bad.to_string()),
            Err(KeyFileError::Key(_))
        ));
        let key = ServiceAccountKey::from_json(
            &serde_json::json!({"client_email": "a@b", "private_key": KEY,
                                "token_uri": "https://oauth2.googleapis.com/token"})
            .to_string(),
        )
        .unwrap();
        assert!(!format!("{key:?}").contains("PRIVATE"), "never printed");
    }

    #[tokio::test]
    async fn a_token_endpoint_refusing_our_key_is_not_retried() {
        let server = MockServer::start().await;
        Mock::given(path("/token"))
            .respond_with(ResponseTemplate::new(400).set_body_json(
                serde_json::json!({"error": "invalid_grant", "error_description": "Invalid JWT"}),
            ))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/projects/p/messages:send"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        assert_eq!(
            client(&server).await.send(&message()).await,
            Err(PushError::Unavailable(
                "service refused our credentials (400)".into()
            ))
        );
        server.verify().await;
    }

    #[tokio::test]
    async fn a_token_endpoint_outage_is_retried() {
        let server = MockServer::start().await;
        Mock::given(path("/token"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        // A token answer without `expires_in` lives for the default hour.
        Mock::given(path("/token"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"access_token": "t"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/projects/p/messages:send"))
            .and(header("authorization", "Bearer t"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"name": "projects/p/messages/1"})),
            )
            .expect(2)
            .mount(&server)
            .await;
        let fcm = client(&server).await;
        fcm.send(&message()).await.unwrap();
        // The token is cached: the second send asks for none.
        fcm.send(&message()).await.unwrap();
        server.verify().await;
        assert_eq!(default_expiry(), 3600);
    }

    #[tokio::test]
    async fn a_token_unknown_to_fcm_is_unregistered() {
        let server = MockServer::start().await;
        Mock::given(path("/token"))
            .respond_with(token("t"))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/projects/p/messages:send"))
            .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!({"error": {
                "code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}})))
            .mount(&server)
            .await;
        assert_eq!(
            client(&server).await.send(&message()).await,
            Err(PushError::Unregistered)
        );
    }
}
