//! Notifications and reviews end to end: a booking's lifecycle fills the right inboxes, pushed
//! over WebSocket and to a stub FCM server speaking the HTTP v1 API (with the service-account
//! token exchange); redelivered events make no duplicates; reviews and their refusals;
//! announcements and read marks; an FCM outage delays pushes without holding anything up.

use carshare_domain::Role;
use carshare_event_store::StreamReader;
use carshare_projections::notifications::NotificationProjection;
use carshare_projections::{Projection, Target};
use carshare_tests::{assert_error, eventually, json, vehicle_body, AppOptions, TestApp};
use chrono::{DateTime, Duration, DurationRound, Utc};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration as StdDuration;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const PROJECT: &str = "carshare-test";
const ACCESS_TOKEN: &str = "ya29.test-access-token";
const PRIVATE_KEY: &str = include_str!("../fixtures/fcm-test-key.pem");
const PUBLIC_KEY: &str = include_str!("../fixtures/fcm-test-key.pub.pem");

/// Accepts a token request only if it is a JWT-bearer grant whose assertion is signed with the
/// service account's key, for the right audience and scope.
struct SignedAssertion {
    audience: String,
}

impl wiremock::Match for SignedAssertion {
    fn matches(&self, request: &Request) -> bool {
        let form: BTreeMap<String, String> =
            form_urlencoded::parse(&request.body).into_owned().collect();
        if form.get("grant_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        {
            return false;
        }
        let Some(assertion) = form.get("assertion") else {
            return false;
        };
        let Ok(key) = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()) else {
            return false;
        };
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&["push@carshare-test.iam.gserviceaccount.com"]);
        match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
            Ok(token) => {
                token.claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
            }
            Err(_) => false,
        }
    }
}

/// A stub of Google's token endpoint and FCM, and a service-account key file pointing at it.
struct Fcm {
    server: MockServer,
    key_file: std::path::PathBuf,
}

impl Fcm {
    async fn start() -> Fcm {
        let server = MockServer::start().await;
        let token_uri = format!("{}/token", server.uri());
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(SignedAssertion {
                audience: token_uri.clone(),
            })
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": ACCESS_TOKEN, "expires_in": 3599, "token_type": "Bearer"
            })))
            .mount(&server)
            .await;
        let key_file = std::env::temp_dir().join(format!("fcm-{}.json", Uuid::new_v4()));
        let key = json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "test-key-1",
            "private_key": PRIVATE_KEY,
            "client_email": "push@carshare-test.iam.gserviceaccount.com",
            "client_id": "1000",
            "token_uri": token_uri,
        });
        std::fs::write(&key_file, key.to_string()).expect("key file");
        Fcm { server, key_file }
    }

    /// Answers sends with Google's success body (lower priority than specific mocks).
    async fn accept_sends(&self) {
        Mock::given(method("POST"))
            .and(path(format!("/v1/projects/{PROJECT}/messages:send")))
            .and(header("authorization", format!("Bearer {ACCESS_TOKEN}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "name": format!("projects/{PROJECT}/messages/0:1500415314455276%31bd1c9631bd1c96")
            })))
            .with_priority(10)
            .mount(&self.server)
            .await;
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("FCM_BASE_URL", self.server.uri()),
            (
                "FCM_SERVICE_ACCOUNT_FILE",
                self.key_file.display().to_string(),
            ),
            ("NOTIFICATION_POLL_MS", "50".into()),
        ]
    }

    /// The sends FCM received, as (device token, title) pairs.
    async fn sends(&self) -> Vec<(String, String)> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path().ends_with("messages:send"))
            .filter_map(|r| {
                let body: Value = serde_json::from_slice(&r.body).ok()?;
                Some((
                    body["message"]["token"].as_str()?.to_string(),
                    body["message"]["notification"]["title"]
                        .as_str()?
                        .to_string(),
                ))
            })
            .collect()
    }

    async fn token_requests(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == "/token")
            .count()
    }
}

impl Drop for Fcm {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.key_file);
    }
}

async fn register(app: &TestApp, role: &str) -> (Uuid, String) {
    let (status, body) = json(
        app.post(
            "/v1/auth/register",
            None,
            &json!({
                "email": format!("{}@example.com", Uuid::new_v4().simple()),
                "password": "correct horse battery",
                "name": "김민수",
                "phone": "+82 10-1234-5678",
                "role": role
            }),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["user"]["id"].as_str().unwrap().parse().unwrap(),
        body["access_token"].as_str().unwrap().to_string(),
    )
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp, token: &str) -> Socket {
    let url = format!(
        "{}/v1/ws?access_token={token}",
        app.base.replace("http://", "ws://")
    );
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("handshake");
    socket
}

/// Every `notification` message received within `wait`.
async fn notifications_on(socket: &mut Socket, wait: StdDuration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, socket.next()).await {
        match message {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["type"] == "notification" {
                    out.push(value);
                }
            }
            Message::Ping(bytes) => {
                let _ = socket.send(Message::Pong(bytes)).await;
            }
            _ => {}
        }
    }
    out
}

async fn inbox(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = json(app.get("/v1/notifications?limit=100", Some(token)).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

fn kinds(entries: &[Value]) -> BTreeSet<String> {
    entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

async fn deliveries(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT channel, status FROM notification_deliveries ORDER BY notification_id, channel",
    )
    .fetch_all(app.pool())
    .await
    .unwrap()
}

async fn announce(app: &TestApp, admin: &str, body: Value) -> (StatusCode, Value) {
    json(app.post("/v1/notifications/send", Some(admin), &body).await).await
}

fn slot() -> DateTime<Utc> {
    (Utc::now() + Duration::minutes(10))
        .duration_trunc(Duration::minutes(10))
        .unwrap()
}

#[tokio::test]
async fn a_lifecycle_notifies_the_right_people_once_on_every_channel_and_reviews_follow_the_rules()
{
    let fcm = Fcm::start().await;
    fcm.accept_sends().await;
    // The stale device: FCM says its token is no longer registered.
    Mock::given(method("POST"))
        .and(path(format!("/v1/projects/{PROJECT}/messages:send")))
        .and(body_partial_json(
            json!({"message": {"token": "stale-device"}}),
        ))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {
            "code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                         "errorCode": "UNREGISTERED"}]
        }})))
        .with_priority(1)
        .mount(&fcm.server)
        .await;
    let app = TestApp::spawn_with(AppOptions {
        toss: true,
        env: fcm.env(),
        ..AppOptions::default()
    })
    .await;
    let (host_id, host) = register(&app, "host").await;
    let (guest_id, guest) = register(&app, "guest").await;
    let (_, stranger) = app.user(Role::Guest);
    for (token, device, platform) in [
        (&guest, "guest-device", "android"),
        (&guest, "stale-device", "web"),
        (&host, "host-device", "ios"),
    ] {
        let (status, body) = json(
            app.post(
                "/v1/notifications/devices",
                Some(token),
                &json!({"token": device, "platform": platform}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = json(
        app.post(
            "/v1/notifications/devices",
            Some(&guest),
            &json!({"token": "has spaces", "platform": "android"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "NOTIFICATION002");
    let (status, body) = json(
        app.post(
            "/v1/notifications/devices",
            Some(&guest),
            &json!({"token": "x", "platform": "blackberry"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "REQ002");
    let mut guest_socket = connect(&app, &guest).await;
    let mut host_socket = connect(&app, &host).await;

    // Request, approve, pay, pick up, return.
    let vehicle = app
        .register_vehicle(&host, &vehicle_body(37.5665, 126.9780))
        .await;
    let vehicle = vehicle["id"].as_str().unwrap().to_string();
    let start = slot();
    let (status, booking) = json(
        app.post(
            "/v1/bookings",
            Some(&guest),
            &json!({"vehicle_id": vehicle, "start_datetime": start.to_rfc3339(),
                    "end_datetime": (start + Duration::minutes(90)).to_rfc3339()}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    let id = booking["id"].as_str().unwrap().to_string();
    let (status, approved) = json(
        app.put(
            &format!("/v1/bookings/{id}/approve"),
            Some(&host),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    let review = |rating: Value| json!({"rating": rating, "comment": "차가 깨끗했어요", "category_ratings": {"cleanliness": 5, "punctuality": 4, "manners": 5}});
    let (status, body) = json(
        app.post(
            &format!("/v1/bookings/{id}/reviews"),
            Some(&guest),
            &review(json!(5)),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "REVIEW002");
    let order_id = approved["payment"]["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    Mock::given(method("POST"))
        .and(path("/v1/payments/confirm"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "paymentKey": "pk_notify", "orderId": order_id, "status": "DONE", "method": "카드",
            "totalAmount": 18_000, "balanceAmount": 18_000,
            "approvedAt": Utc::now().to_rfc3339(), "requestedAt": Utc::now().to_rfc3339()
        })))
        .mount(app.toss.as_ref().unwrap())
        .await;
    let (status, body) = json(
        app.post(
            "/v1/payments/process",
            Some(&guest),
            &json!({"booking_id": id, "payment_key": "pk_notify", "order_id": order_id, "amount": 18_000}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for step in ["start", "complete"] {
        let (status, body) = json(
            app.post(
                &format!("/v1/bookings/{id}/{step}"),
                Some(&guest),
                &json!({}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{step}: {body}");
    }

    // Reviews: strangers, out-of-range and malformed ratings are refused and change nothing.
    let events_before = app.event_count().await;
    let (status, body) = json(
        app.post(
            &format!("/v1/bookings/{id}/reviews"),
            Some(&stranger),
            &review(json!(5)),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error(&body, "BOOKING005");
    for (bad, field) in [
        (review(json!(6)), "rating"),
        (review(json!(0)), "rating"),
        (
            json!({"rating": 4, "category_ratings": {"manners": 9}}),
            "category_ratings.manners",
        ),
        (
            json!({"rating": 4, "comment": "가".repeat(2_001)}),
            "comment",
        ),
    ] {
        let (status, body) = json(
            app.post(&format!("/v1/bookings/{id}/reviews"), Some(&guest), &bad)
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let error = assert_error(&body, "REVIEW001");
        assert_eq!(error["details"][0]["field"], field, "{body}");
    }
    for bad in [
        json!({"rating": "five"}),
        json!({"rating": 4, "stars": 5}),
        json!({"rating": 4.5}),
    ] {
        let (status, body) = json(
            app.post(&format!("/v1/bookings/{id}/reviews"), Some(&guest), &bad)
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_error(&body, "REQ002");
    }
    let (status, body) = json(
        app.http
            .post(format!("{}/v1/bookings/{id}/reviews", app.base))
            .bearer_auth(&guest)
            .header("content-type", "application/json")
            .body("{\"rating\": 5")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        app.event_count().await,
        events_before,
        "refusals change nothing"
    );
    let res = app
        .post(
            &format!("/v1/bookings/{id}/reviews"),
            Some(&guest),
            &review(json!(5)),
        )
        .await;
    assert!(res.headers().contains_key("x-stream-position"));
    let (status, written) = json(res).await;
    assert_eq!(status, StatusCode::CREATED, "{written}");
    assert_eq!(written["reviewer_role"], "guest");
    assert_eq!(written["reviewee_id"], host_id.to_string());
    assert_eq!(written["category_ratings"]["punctuality"], 4);
    assert_eq!(written["is_recommended"], true);
    let (status, body) = json(
        app.post(
            &format!("/v1/bookings/{id}/reviews"),
            Some(&guest),
            &review(json!(4)),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "REVIEW003");
    let (status, body) = json(
        app.post(
            &format!("/v1/bookings/{id}/reviews"),
            Some(&host),
            &json!({"rating": 4, "is_recommended": false}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The reviews read model: per user, and in search (sortable by rating).
    let (status, host_reviews) = json(
        app.get(&format!("/v1/users/{host_id}/reviews"), Some(&stranger))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{host_reviews}");
    assert_eq!(host_reviews["review_count"], 1);
    assert_eq!(host_reviews["average_rating"], 5.0);
    assert_eq!(host_reviews["reviews"][0]["comment"], "차가 깨끗했어요");
    let (_, guest_reviews) = json(
        app.get(&format!("/v1/users/{guest_id}/reviews"), Some(&host))
            .await,
    )
    .await;
    assert_eq!(guest_reviews["average_rating"], 4.0);
    assert_eq!(guest_reviews["recommended_count"], 0);
    let (status, body) = json(
        app.get(
            &format!("/v1/users/{}/reviews", Uuid::new_v4()),
            Some(&host),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "ACCOUNT003");
    let (_, booking) = json(app.get(&format!("/v1/bookings/{id}"), Some(&guest)).await).await;
    assert_eq!(booking["guest_reviewed"], true);
    assert_eq!(booking["host_reviewed"], true);
    let unrated = app
        .register_vehicle(&host, &vehicle_body(37.5664, 126.9779))
        .await;
    let later = start + Duration::days(3);
    let res = app
        .http
        .get(format!("{}/v1/vehicles", app.base))
        .query(&[
            ("lat", "37.5664"),
            ("lng", "126.9779"),
            ("start_datetime", &later.to_rfc3339()),
            ("end_datetime", &(later + Duration::hours(2)).to_rfc3339()),
            ("sort", "rating"),
        ])
        .send()
        .await
        .unwrap();
    let (status, hits) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{hits}");
    assert_eq!(
        hits[0]["id"], vehicle,
        "the rated car first, though farther"
    );
    assert_eq!(hits[0]["rating"], json!({"average": 5.0, "count": 1}));
    assert_eq!(hits[1]["id"], unrated["id"]);
    assert_eq!(hits[1]["rating"], json!({"average": null, "count": 0}));
    assert_eq!(hits[1]["host_rating"]["count"], 1);

    // Inboxes: the right entries for the right people, in Korean.
    let expected_host: BTreeSet<String> =
        ["booking.requested", "payment.completed", "review.received"]
            .map(String::from)
            .into();
    let expected_guest: BTreeSet<String> =
        ["booking.approved", "payment.completed", "review.received"]
            .map(String::from)
            .into();
    let filled = eventually(StdDuration::from_secs(10), || async {
        kinds(&inbox(&app, &host).await) == expected_host
            && kinds(&inbox(&app, &guest).await) == expected_guest
    })
    .await;
    assert!(
        filled,
        "host {:?}, guest {:?}",
        inbox(&app, &host).await,
        inbox(&app, &guest).await
    );
    let host_inbox = inbox(&app, &host).await;
    let guest_inbox = inbox(&app, &guest).await;
    let requested = host_inbox
        .iter()
        .find(|e| e["kind"] == "booking.requested")
        .unwrap();
    assert_eq!(requested["title"], "새 예약 요청");
    assert!(
        requested["body"].as_str().unwrap().contains("18,000원"),
        "{requested}"
    );
    assert_eq!(requested["booking_id"], id);
    assert_eq!(requested["data"]["booking_id"], id);
    assert!(requested["read_at"].is_null());
    let paid = guest_inbox
        .iter()
        .find(|e| e["kind"] == "payment.completed")
        .unwrap();
    assert_eq!(paid["title"], "결제가 완료되었습니다");
    assert_eq!(inbox(&app, &stranger).await, Vec::<Value>::new());

    // Every entry went out once on each channel: WebSocket and FCM.
    let all_sent = eventually(StdDuration::from_secs(10), || async {
        let d = deliveries(&app).await;
        d.len() == 12 && d.iter().all(|(_, status)| status == "sent")
    })
    .await;
    assert!(all_sent, "{:?}", deliveries(&app).await);
    let ids = |entries: &[Value]| -> BTreeSet<String> {
        entries
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    let pushed_to_guest = notifications_on(&mut guest_socket, StdDuration::from_secs(1)).await;
    let pushed_to_host = notifications_on(&mut host_socket, StdDuration::from_secs(1)).await;
    let socket_ids = |messages: &[Value]| -> Vec<String> {
        messages
            .iter()
            .map(|m| m["notification"]["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut guest_ws = socket_ids(&pushed_to_guest);
    guest_ws.sort();
    assert_eq!(guest_ws, ids(&guest_inbox).into_iter().collect::<Vec<_>>());
    let mut host_ws = socket_ids(&pushed_to_host);
    host_ws.sort();
    assert_eq!(host_ws, ids(&host_inbox).into_iter().collect::<Vec<_>>());
    let sends = fcm.sends().await;
    let to = |device: &str| sends.iter().filter(|(t, _)| t == device).count();
    assert_eq!(to("guest-device"), 3, "{sends:?}");
    assert_eq!(to("host-device"), 3, "{sends:?}");
    assert_eq!(to("stale-device"), 1, "dropped after FCM said unregistered");
    assert!(sends.contains(&("host-device".into(), "새 예약 요청".into())));
    assert_eq!(fcm.token_requests().await, 1, "the access token is cached");
    let devices: Vec<String> =
        sqlx::query_scalar("SELECT token FROM notification_devices ORDER BY token")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(devices, vec!["guest-device", "host-device"]);

    // Redelivery: the whole log applied again to the live inbox adds no entry, no delivery,
    // and sends nothing.
    let entries_before: i64 = sqlx::query_scalar("SELECT count(*) FROM read.notifications")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let reader = StreamReader::new(app.pool().clone());
    let mut events = reader.aggregate_events("Booking", &id).await.unwrap();
    events.extend(reader.aggregate_events("Payment", &id).await.unwrap());
    events.sort_by_key(|e| e.position);
    assert!(events.len() >= 8, "{}", events.len());
    for _ in 0..2 {
        let mut tx = app.pool().begin().await.unwrap();
        let poisoned = NotificationProjection
            .apply(&mut tx, Target::Live, &reader, &events)
            .await
            .unwrap();
        assert!(poisoned.is_empty(), "{poisoned:?}");
        tx.commit().await.unwrap();
    }
    tokio::time::sleep(StdDuration::from_millis(500)).await;
    let entries_after: i64 = sqlx::query_scalar("SELECT count(*) FROM read.notifications")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(entries_after, entries_before);
    assert_eq!(deliveries(&app).await.len(), 12);
    assert_eq!(fcm.sends().await.len(), sends.len());
    assert!(
        notifications_on(&mut guest_socket, StdDuration::from_millis(300))
            .await
            .is_empty()
    );

    // Rebuilds from the log give the same inbox (same ids, so read marks stay), the same
    // reviews and totals, and send nothing again.
    let first = guest_inbox[0]["id"].as_str().unwrap().to_string();
    let (status, _) = json(
        app.put(
            &format!("/v1/notifications/{first}/read"),
            Some(&guest),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let before = read_tables(app.pool()).await;
    assert_eq!(before.1.len(), 3, "vehicle, host and guest totals");
    for projection in carshare_projections::all()
        .into_iter()
        .filter(|p| ["notifications", "reviews"].contains(&p.name()))
    {
        carshare_projections::rebuild::rebuild(
            app.pool(),
            projection.as_ref(),
            carshare_projections::rebuild::RebuildSettings { chunk_size: 3 },
            |_, _| {},
        )
        .await
        .unwrap();
    }
    assert_eq!(read_tables(app.pool()).await, before);
    let after = inbox(&app, &guest).await;
    assert!(after
        .iter()
        .any(|e| e["id"] == first.as_str() && e["read_at"].is_string()));
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(deliveries(&app).await.len(), 12);
    assert_eq!(fcm.sends().await.len(), sends.len());
}

type Notes = Vec<(Uuid, Uuid, String, String)>;
type Totals = Vec<(String, Uuid, i64, i64, i64)>;
type Reviews = Vec<(Uuid, i32, Option<String>)>;

/// The rows of the notification and review read tables, in a stable order.
async fn read_tables(pool: &sqlx::PgPool) -> (Notes, Totals, Reviews) {
    let notes =
        sqlx::query_as("SELECT id, user_id, kind, body FROM read.notifications ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    let totals = sqlx::query_as(
        "SELECT subject_kind, subject_id, review_count, rating_sum, recommended_count \
         FROM read.rating_summaries ORDER BY subject_kind, subject_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let reviews = sqlx::query_as("SELECT id, rating, comment FROM read.reviews ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap();
    (notes, totals, reviews)
}

#[tokio::test]
async fn admins_announce_to_a_role_or_a_user_and_users_mark_their_inbox_read() {
    let app = TestApp::spawn_with(AppOptions {
        env: vec![("NOTIFICATION_POLL_MS", "50".into())],
        ..AppOptions::default()
    })
    .await;
    let (host_a, host_a_token) = register(&app, "host").await;
    let (_, host_b_token) = register(&app, "host").await;
    let (guest_id, guest) = register(&app, "guest").await;
    let (_, admin) = app.user(Role::Admin);

    // Refusals: wrong role, no or two audiences, empty title, unknown recipient, bad role.
    let (status, body) = json(
        app.post(
            "/v1/notifications/send",
            Some(&host_a_token),
            &json!({"role": "host", "title": "t", "body": "b"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "AUTH005");
    for (bad, code) in [
        (json!({"title": "t", "body": "b"}), "NOTIFICATION002"),
        (
            json!({"role": "host", "user_id": guest_id, "title": "t", "body": "b"}),
            "NOTIFICATION002",
        ),
        (
            json!({"role": "host", "title": "  ", "body": "b"}),
            "NOTIFICATION002",
        ),
        (
            json!({"user_id": Uuid::new_v4(), "title": "t", "body": "b"}),
            "NOTIFICATION003",
        ),
    ] {
        let (status, body) = announce(&app, &admin, bad.clone()).await;
        assert!(status.is_client_error(), "{bad}: {body}");
        assert_error(&body, code);
    }
    let (status, body) = announce(
        &app,
        &admin,
        json!({"role": "pilot", "title": "t", "body": "b"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error(&body, "REQ002");
    assert_eq!(app.event_count().await, 0, "refusals record nothing");

    let (status, sent) = announce(
        &app,
        &admin,
        json!({
            "role": "host", "title": "정산 일정 안내", "body": "12월 정산은 1월 5일에 지급됩니다.",
            "data": {"link": "/notices/12"}
        }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let (status, _) = announce(&app, &admin, json!({
        "user_id": guest_id, "title": "쿠폰 도착", "body": "첫 예약 10% 할인 쿠폰이 도착했습니다."
    }))
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let arrived = eventually(StdDuration::from_secs(5), || async {
        inbox(&app, &host_a_token).await.len() == 1
            && inbox(&app, &host_b_token).await.len() == 1
            && inbox(&app, &guest).await.len() == 1
    })
    .await;
    assert!(arrived);
    let entry = &inbox(&app, &host_a_token).await[0];
    assert_eq!(entry["kind"], "announcement");
    assert_eq!(entry["title"], "정산 일정 안내");
    assert_eq!(entry["data"]["link"], "/notices/12");
    assert_eq!(entry["data"]["announcement_id"], sent["announcement_id"]);
    assert_eq!(inbox(&app, &guest).await[0]["title"], "쿠폰 도착");

    // Two more for host A, then read marks.
    for n in 0..2 {
        let (status, _) = announce(
            &app,
            &admin,
            json!({
                "user_id": host_a, "title": format!("공지 {n}"), "body": "본문"
            }),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    assert!(
        eventually(StdDuration::from_secs(5), || async {
            inbox(&app, &host_a_token).await.len() == 3
        })
        .await
    );
    let entries = inbox(&app, &host_a_token).await;
    let oldest = entries.last().unwrap()["id"].as_str().unwrap().to_string();
    let (status, marked) = json(
        app.put(
            &format!("/v1/notifications/{oldest}/read"),
            Some(&host_a_token),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{marked}");
    assert!(marked["read_at"].is_string());
    // Someone else's entry, or none: 404.
    for token in [&host_b_token, &guest] {
        let (status, body) = json(
            app.put(
                &format!("/v1/notifications/{oldest}/read"),
                Some(token),
                &json!({}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_error(&body, "NOTIFICATION001");
    }
    // Unread first: the read one sinks to the end; the filter leaves it out.
    let res = app
        .get("/v1/notifications?limit=2", Some(&host_a_token))
        .await;
    assert_eq!(res.headers()["x-unread-count"], "2");
    let next = res.headers()["x-next-cursor"].to_str().unwrap().to_string();
    let (_, first_page) = json(res).await;
    assert!(first_page
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["read_at"].is_null()));
    let (_, second_page) = json(
        app.get(
            &format!("/v1/notifications?limit=2&cursor={next}"),
            Some(&host_a_token),
        )
        .await,
    )
    .await;
    assert_eq!(second_page.as_array().unwrap().len(), 1);
    assert_eq!(second_page[0]["id"], oldest);
    let (_, unread) = json(
        app.get("/v1/notifications?unread=true", Some(&host_a_token))
            .await,
    )
    .await;
    assert_eq!(unread.as_array().unwrap().len(), 2);
    let (status, all) = json(
        app.put(
            "/v1/notifications/read-all",
            Some(&host_a_token),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["marked"], 2);
    let res = app.get("/v1/notifications", Some(&host_a_token)).await;
    assert_eq!(res.headers()["x-unread-count"], "0");
    // Host B's inbox is untouched.
    let res = app.get("/v1/notifications", Some(&host_b_token)).await;
    assert_eq!(res.headers()["x-unread-count"], "1");
    let (status, body) = json(
        app.get("/v1/notifications?cursor=garbage", Some(&host_b_token))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = json(
        app.delete("/v1/notifications/devices/not-mine", Some(&host_b_token))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "NOTIFICATION004");

    // Finished deliveries are purged after their retention; the inbox stays.
    let finished = eventually(StdDuration::from_secs(5), || async {
        deliveries(&app)
            .await
            .iter()
            .all(|(_, s)| s != "pending" && s != "sending")
    })
    .await;
    assert!(finished, "{:?}", deliveries(&app).await);
    let total = deliveries(&app).await.len() as u64;
    let too_young = carshare_commands::notifications::purge_finished_deliveries(
        app.pool(),
        chrono::Duration::days(30),
    )
    .await
    .unwrap();
    assert_eq!(too_young, 0, "nothing is old enough yet");
    sqlx::query("UPDATE notification_deliveries SET finished_at = now() - interval '31 days'")
        .execute(app.pool())
        .await
        .unwrap();
    let purged = carshare_commands::notifications::purge_finished_deliveries(
        app.pool(),
        chrono::Duration::days(30),
    )
    .await
    .unwrap();
    assert_eq!(purged, total);
    assert_eq!(inbox(&app, &host_a_token).await.len(), 3);
}

#[tokio::test]
async fn an_fcm_outage_delays_pushes_without_holding_up_the_inbox() {
    let fcm = Fcm::start().await;
    fcm.accept_sends().await;
    // The first four sends fail (one call and its three retries): FCM is down for a moment.
    Mock::given(method("POST"))
        .and(path(format!("/v1/projects/{PROJECT}/messages:send")))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"error": {
            "code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"
        }})))
        .up_to_n_times(4)
        .with_priority(1)
        .mount(&fcm.server)
        .await;
    let app = TestApp::spawn_with(AppOptions {
        env: fcm.env(),
        ..AppOptions::default()
    })
    .await;
    let (guest_id, guest) = register(&app, "guest").await;
    let (_, admin) = app.user(Role::Admin);
    let (status, _) = json(
        app.post(
            "/v1/notifications/devices",
            Some(&guest),
            &json!({"token": "guest-device", "platform": "android"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = json(
        app.post(
            "/v1/notifications/send",
            Some(&admin),
            &json!({"user_id": guest_id, "title": "점검 안내", "body": "오늘 밤 점검이 있습니다."}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The inbox has it at once, while the push is still failing.
    let listed = eventually(StdDuration::from_secs(2), || async {
        inbox(&app, &guest).await.len() == 1
    })
    .await;
    assert!(listed);
    let push_status: String =
        sqlx::query_scalar("SELECT status FROM notification_deliveries WHERE channel = 'push'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_ne!(push_status, "sent", "FCM is still down");
    // It goes out once FCM is back, exactly once.
    let pushed = eventually(StdDuration::from_secs(15), || async {
        let row: (String, i32) = sqlx::query_as(
            "SELECT status, attempts FROM notification_deliveries WHERE channel = 'push'",
        )
        .fetch_one(app.pool())
        .await
        .unwrap();
        row.0 == "sent" && row.1 >= 2
    })
    .await;
    assert!(pushed, "{:?}", deliveries(&app).await);
    let sends = fcm.sends().await;
    assert_eq!(
        sends.len(),
        5,
        "four refused attempts, then one delivery: {sends:?}"
    );
    // Meanwhile the pipeline kept going: a second announcement reached the inbox.
    let (status, _) = json(
        app.post(
            "/v1/notifications/send",
            Some(&admin),
            &json!({"user_id": guest_id, "title": "두 번째", "body": "본문"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(
        eventually(StdDuration::from_secs(3), || async {
            inbox(&app, &guest).await.len() == 2
        })
        .await
    );
}
