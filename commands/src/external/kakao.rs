//! Kakao Local address search (`GET /v2/local/search/address.json`), used to geocode pickup
//! addresses. Authentication is the REST API key in `Authorization: KakaoAK {key}`; the first
//! document's `x` is the longitude and `y` the latitude, both as strings.

use super::resilience::{BreakerSettings, CallError, CircuitBreaker, RetryPolicy};
use crate::geocoding::{GeocodeError, Geocoder};
use async_trait::async_trait;
use carshare_domain::GeoPoint;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;

const SERVICE: &str = "kakao_local";

/// Settings of the Kakao Local client.
#[derive(Debug, Clone)]
pub struct KakaoSettings {
    /// e.g. `https://dapi.kakao.com`.
    pub base_url: String,
    /// The REST API key.
    pub rest_api_key: SecretString,
    /// Per-attempt timeout (10 s by the platform's rules).
    pub timeout: Duration,
    /// Retry schedule.
    pub retry: RetryPolicy,
    /// Breaker settings.
    pub breaker: BreakerSettings,
}

impl KakaoSettings {
    /// Production defaults for a base URL and key: 10 s timeout, 3 retries, breaker 5 / 30 s.
    pub fn new(base_url: impl Into<String>, rest_api_key: SecretString) -> KakaoSettings {
        KakaoSettings {
            base_url: base_url.into(),
            rest_api_key,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            breaker: BreakerSettings::default(),
        }
    }
}

/// The Kakao Local client.
pub struct KakaoGeocoder {
    http: reqwest::Client,
    settings: KakaoSettings,
    breaker: CircuitBreaker,
}

#[derive(Debug, Deserialize)]
struct AddressSearch {
    documents: Vec<AddressDocument>,
}

#[derive(Debug, Deserialize)]
struct AddressDocument {
    x: String,
    y: String,
}

#[derive(Debug, Deserialize)]
struct KakaoErrorBody {
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    message: Option<String>,
}

impl KakaoGeocoder {
    /// A client with its own connection pool.
    pub fn new(settings: KakaoSettings) -> Result<KakaoGeocoder, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(3)))
            .user_agent(concat!("carshare/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(KakaoGeocoder {
            http,
            breaker: CircuitBreaker::new(SERVICE, settings.breaker),
            settings,
        })
    }

    async fn attempt(&self, address: &str) -> Result<Option<GeoPoint>, CallError> {
        let url = format!(
            "{}/v2/local/search/address.json",
            self.settings.base_url.trim_end_matches('/')
        );
        let response = self
            .http
            .get(url)
            .header(
                "Authorization",
                format!("KakaoAK {}", self.settings.rest_api_key.expose_secret()),
            )
            .query(&[("query", address), ("size", "1")])
            .send()
            .await
            .map_err(|e| CallError::from_reqwest(&e))?;
        let status = response.status();
        if status.is_success() {
            let body: AddressSearch = response
                .json()
                .await
                .map_err(|e| CallError::Decode(e.to_string()))?;
            return match body.documents.first() {
                None => Ok(None),
                Some(doc) => {
                    let lng = doc.x.trim().parse::<f64>();
                    let lat = doc.y.trim().parse::<f64>();
                    match (lat, lng) {
                        (Ok(lat), Ok(lng)) if lat.is_finite() && lng.is_finite() => {
                            Ok(Some(GeoPoint { lat, lng }))
                        }
                        _ => Err(CallError::Decode(format!(
                            "coordinates x={:?} y={:?} are not numbers",
                            doc.x, doc.y
                        ))),
                    }
                }
            };
        }
        let code = status.as_u16();
        if status.is_server_error() || code == 429 {
            return Err(CallError::Unavailable { status: code });
        }
        if code == 401 || code == 403 {
            return Err(CallError::Unauthorized { status: code });
        }
        let body: Option<KakaoErrorBody> = response.json().await.ok();
        Err(CallError::Refused {
            status: code,
            code: body.as_ref().and_then(|b| b.error_type.clone()),
            message: body.and_then(|b| b.message).unwrap_or_default(),
        })
    }
}

#[async_trait]
impl Geocoder for KakaoGeocoder {
    #[tracing::instrument(name = "kakao.geocode", skip(self, address))]
    async fn geocode(&self, address: &str) -> Result<Option<GeoPoint>, GeocodeError> {
        let result = self
            .breaker
            .call(self.settings.retry.run(SERVICE, |_| self.attempt(address)))
            .await;
        match result {
            Ok(point) => Ok(point),
            // Kakao refused the query itself (e.g. unusable text): no match.
            Err(CallError::Refused {
                status,
                code,
                message,
            }) => {
                tracing::info!(status, code = ?code, message, "Kakao refused the address query");
                Ok(None)
            }
            Err(err) => {
                tracing::warn!(error = %err, "Kakao geocoding failed");
                Err(GeocodeError::Unavailable(err.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn settings(server: &MockServer) -> KakaoSettings {
        KakaoSettings {
            base_url: server.uri(),
            rest_api_key: SecretString::from("test-key"),
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
        }
    }

    fn found() -> serde_json::Value {
        json!({
            "meta": {"total_count": 1, "pageable_count": 1, "is_end": true},
            "documents": [{
                "address_name": "서울 중구 한강대로 405",
                "address_type": "ROAD_ADDR",
                "x": "126.970606917394",
                "y": "37.5546788388674",
                "address": null,
                "road_address": {"address_name": "서울 중구 한강대로 405", "zone_no": "04509"}
            }]
        })
    }

    #[tokio::test]
    async fn geocodes_with_the_rest_api_key() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/local/search/address.json"))
            .and(header("Authorization", "KakaoAK test-key"))
            .and(query_param("query", "서울 중구 한강대로 405"))
            .respond_with(ResponseTemplate::new(200).set_body_json(found()))
            .expect(1)
            .mount(&server)
            .await;
        let geocoder = KakaoGeocoder::new(settings(&server)).unwrap();
        let point = geocoder
            .geocode("서울 중구 한강대로 405")
            .await
            .unwrap()
            .unwrap();
        assert!((point.lat - 37.5546788388674).abs() < 1e-9);
        assert!((point.lng - 126.970606917394).abs() < 1e-9);
    }

    #[tokio::test]
    async fn no_documents_means_no_match() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "meta": {"total_count": 0, "pageable_count": 0, "is_end": true}, "documents": []
            })))
            .mount(&server)
            .await;
        let geocoder = KakaoGeocoder::new(settings(&server)).unwrap();
        assert_eq!(geocoder.geocode("없는 주소").await, Ok(None));
    }

    #[tokio::test]
    async fn server_errors_are_retried_then_succeed() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(found()))
            .mount(&server)
            .await;
        let geocoder = KakaoGeocoder::new(settings(&server)).unwrap();
        assert!(geocoder.geocode("서울").await.unwrap().is_some());
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn timeouts_exhaust_three_retries_then_report_unavailable() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(found())
                    .set_delay(Duration::from_secs(2)),
            )
            .mount(&server)
            .await;
        let geocoder = KakaoGeocoder::new(settings(&server)).unwrap();
        let err = geocoder.geocode("서울").await.unwrap_err();
        assert!(matches!(err, GeocodeError::Unavailable(_)));
        assert_eq!(server.received_requests().await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn a_bad_key_is_not_retried() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({
                "errorType": "AccessDeniedError", "message": "cannot find appkey"
            })))
            .mount(&server)
            .await;
        let geocoder = KakaoGeocoder::new(settings(&server)).unwrap();
        assert!(geocoder.geocode("서울").await.is_err());
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_circuit_opens_after_five_failed_calls_and_recovers() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&server)
            .await;
        let mut s = settings(&server);
        s.retry.max_retries = 0;
        let geocoder = KakaoGeocoder::new(s).unwrap();
        for _ in 0..5 {
            assert!(geocoder.geocode("서울").await.is_err());
        }
        assert_eq!(server.received_requests().await.unwrap().len(), 5);
        // Open: refused without a request.
        assert!(geocoder.geocode("서울").await.is_err());
        assert_eq!(server.received_requests().await.unwrap().len(), 5);
        // Half-open after the pause: the service is back.
        server.reset().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(found()))
            .mount(&server)
            .await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(geocoder.geocode("서울").await.unwrap().is_some());
        assert!(geocoder.geocode("서울").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_refused_query_is_no_match_and_is_not_retried() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "errorType": "InvalidArgument", "message": "query is too long"
            })))
            .mount(&server)
            .await;
        let geocoder = KakaoGeocoder::new(settings(&server)).unwrap();
        assert_eq!(geocoder.geocode("?".repeat(500).as_str()).await, Ok(None));
        assert_eq!(
            geocoder.attempt("?").await,
            Err(CallError::Refused {
                status: 400,
                code: Some("InvalidArgument".into()),
                message: "query is too long".into(),
            })
        );
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn coordinates_that_are_not_numbers_are_unreadable() {
        let server = MockServer::start().await;
        let mut body = found();
        body["documents"][0]["x"] = json!("동경 127도");
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
        let geocoder = KakaoGeocoder::new(settings(&server)).unwrap();
        match geocoder.attempt("서울").await {
            Err(CallError::Decode(why)) => assert!(why.contains("동경 127도"), "{why}"),
            other => panic!("expected unreadable coordinates, got {other:?}"),
        }
        // An unreadable answer is not retried, and the caller hears "unavailable".
        assert!(matches!(
            geocoder.geocode("서울").await,
            Err(GeocodeError::Unavailable(_))
        ));
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
        assert_eq!(
            KakaoSettings::new("https://dapi.kakao.com", SecretString::from("k")).timeout,
            Duration::from_secs(10)
        );
    }
}
