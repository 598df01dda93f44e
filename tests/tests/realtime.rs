//! Real-time messages: WebSocket sessions on one API instance receive the booking changes and
//! inbox entries made through another, fanned out by Redis pub/sub.

use carshare_domain::Role;
use carshare_tests::{json, vehicle_body, AppOptions, TestApp};
use chrono::{Duration, DurationRound, Utc};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration as StdDuration;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp, token: &str) -> Socket {
    let url = format!(
        "{}/v1/ws?access_token={token}",
        app.base.replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("handshake");
    let ready = next_json(&mut socket, StdDuration::from_secs(2))
        .await
        .expect("ready message");
    assert_eq!(ready["type"], "ready");
    socket
}

/// The next JSON text message within `timeout` other than inbox entries (tested in
/// `notifications.rs`), answering pings on the way.
async fn next_json(socket: &mut Socket, timeout: StdDuration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??
            .ok()?;
        match message {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).ok()?;
                if value["type"] != "notification" {
                    return Some(value);
                }
            }
            Message::Ping(bytes) => {
                let _ = socket.send(Message::Pong(bytes)).await;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn participants_hear_of_booking_changes_made_on_another_instance() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn_with(AppOptions {
        pool: Some(a.pool().clone()),
        env: vec![("REDIS_KEY_PREFIX", a.redis_prefix.clone())],
        ..AppOptions::default()
    })
    .await;
    let (_, host) = a.user(Role::Host);
    let (guest_id, guest) = a.user(Role::Guest);
    let (_, stranger) = a.user(Role::Guest);
    let vehicle = a
        .register_vehicle(&host, &vehicle_body(37.5665, 126.9780))
        .await;
    let vehicle = vehicle["id"].as_str().unwrap();

    let mut guest_socket = connect(&b, &guest).await;
    let mut host_socket = connect(&a, &host).await;
    let mut stranger_socket = connect(&b, &stranger).await;

    let start = (Utc::now() + Duration::days(2))
        .duration_trunc(Duration::hours(1))
        .unwrap();
    let (status, booking) = json(
        a.post(
            "/v1/bookings",
            Some(&guest),
            &json!({
                "vehicle_id": vehicle,
                "start_datetime": start.to_rfc3339(),
                "end_datetime": (start + Duration::hours(3)).to_rfc3339(),
            }),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    let id = booking["id"].as_str().unwrap();

    // Within a second, on the other instance, the guest hears of the request; the host too.
    for socket in [&mut guest_socket, &mut host_socket] {
        let update = next_json(socket, StdDuration::from_secs(1))
            .await
            .expect("an update within a second");
        assert_eq!(update["type"], "booking.updated");
        assert_eq!(update["booking_id"], id);
        assert_eq!(update["status"], "pending");
        assert_eq!(update["event"], "BookingRequested");
        assert_eq!(update["guest_id"], guest_id.to_string());
    }
    let (status, _) = json(
        a.put(
            &format!("/v1/bookings/{id}/approve"),
            Some(&host),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let update = next_json(&mut guest_socket, StdDuration::from_secs(1))
        .await
        .expect("approval within a second");
    assert_eq!(update["status"], "approved");
    assert_eq!(update["event"], "BookingApproved");
    assert!(update["position"].is_string());
    let update = next_json(&mut host_socket, StdDuration::from_secs(1))
        .await
        .expect("approval within a second");
    assert_eq!(update["status"], "approved");
    // Nobody else hears anything.
    assert!(
        next_json(&mut stranger_socket, StdDuration::from_millis(500))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn the_socket_needs_a_valid_token() {
    let app = TestApp::spawn().await;
    let base = app.base.replace("http://", "ws://");
    for url in [
        format!("{base}/v1/ws"),
        format!("{base}/v1/ws?access_token=not-a-token"),
        format!(
            "{base}/v1/ws?access_token={}",
            app.expired_token(Role::Guest)
        ),
    ] {
        match tokio_tungstenite::connect_async(url.clone()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 401, "{url}");
            }
            other => panic!("{url}: expected a 401 refusal, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn inbox_entries_reach_the_recipient_on_an_instance_that_sends_nothing_itself() {
    // Instance A projects and dispatches; instance B only serves sockets.
    let a = TestApp::spawn_with(AppOptions {
        env: vec![("NOTIFICATION_POLL_MS", "50".into())],
        ..AppOptions::default()
    })
    .await;
    let b = TestApp::spawn_with(AppOptions {
        pool: Some(a.pool().clone()),
        env: vec![
            ("REDIS_KEY_PREFIX", a.redis_prefix.clone()),
            ("RUN_PROJECTIONS", "false".into()),
            ("RUN_NOTIFICATIONS", "false".into()),
        ],
        ..AppOptions::default()
    })
    .await;
    let (status, registered) = json(
        a.post(
            "/v1/auth/register",
            None,
            &json!({"email": "listener@example.com", "password": "correct horse battery",
                    "name": "이서연", "phone": "010-2222-3333", "role": "guest"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let user_id = registered["user"]["id"].as_str().unwrap().to_string();
    let token = registered["access_token"].as_str().unwrap();
    let (_, other) = a.user(Role::Guest);
    let mut listener = connect(&b, token).await;
    let mut bystander = connect(&b, &other).await;
    let (_, admin) = a.user(Role::Admin);
    let (status, _) = json(
        a.post(
            "/v1/notifications/send",
            Some(&admin),
            &json!({"user_id": user_id, "title": "환영합니다", "body": "첫 예약을 시작해 보세요."}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let message = next_of(&mut listener, "notification", StdDuration::from_secs(3))
        .await
        .expect("the entry, through Redis, on the other instance");
    assert_eq!(message["user_id"], user_id);
    assert_eq!(message["notification"]["title"], "환영합니다");
    assert_eq!(message["notification"]["kind"], "announcement");
    // Several entries for one user, sent back to back (the dispatcher publishes a user's run of
    // entries in one round trip): every one arrives, in the order they were made.
    let titles: Vec<String> = (1..=6).map(|i| format!("공지 {i}")).collect();
    for title in &titles {
        let (status, _) = json(
            a.post(
                "/v1/notifications/send",
                Some(&admin),
                &json!({"user_id": user_id, "title": title, "body": "순서대로 도착해야 합니다."}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let mut heard = Vec::new();
    while heard.len() < titles.len() {
        let Some(message) = next_of(&mut listener, "notification", StdDuration::from_secs(3)).await
        else {
            break;
        };
        heard.push(
            message["notification"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(heard, titles, "every entry, once, in order");
    assert!(next_of(
        &mut bystander,
        "notification",
        StdDuration::from_millis(500)
    )
    .await
    .is_none());
}

/// The next message of `kind` within `timeout`.
async fn next_of(socket: &mut Socket, kind: &str, timeout: StdDuration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).ok()?;
            if value["type"] == kind {
                return Some(value);
            }
        }
    }
}

#[tokio::test]
async fn a_users_run_of_inbox_entries_is_published_in_order_or_reported_failed_together() {
    use carshare_api::realtime::RedisUpdates;
    use carshare_api::redis_client::RedisHandle;
    use carshare_commands::notifications::InboxPublisher;
    use std::sync::Arc;

    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let redis = Arc::new(
        RedisHandle::new(
            &carshare_tests::redis_url(),
            prefix.clone(),
            StdDuration::from_secs(2),
        )
        .unwrap(),
    );
    let mut subscriber = redis.pubsub().await.expect("Redis is up");
    subscriber
        .subscribe(format!("{prefix}notifications"))
        .await
        .unwrap();
    let user = uuid::Uuid::new_v4();
    let messages: Vec<Value> = (0..25)
        .map(|i| json!({"type": "notification", "user_id": user, "n": i}))
        .collect();
    let outcomes = RedisUpdates::new(redis.clone())
        .publish_all(user, &messages)
        .await;
    assert_eq!(outcomes.len(), messages.len());
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let mut heard = Vec::new();
    let mut stream = subscriber.on_message();
    while heard.len() < messages.len() {
        let message = tokio::time::timeout(StdDuration::from_secs(2), stream.next())
            .await
            .expect("every message arrives")
            .expect("the subscription stays open");
        let payload: String = message.get_payload().unwrap();
        heard.push(serde_json::from_str::<Value>(&payload).unwrap());
    }
    assert_eq!(heard, messages, "every message once, in order");

    // Nothing listens on port 1: every message of the run is reported failed (to be retried),
    // quickly, none reported sent.
    let down = RedisUpdates::new(Arc::new(
        RedisHandle::new("redis://127.0.0.1:1", prefix, StdDuration::from_millis(300)).unwrap(),
    ));
    let started = std::time::Instant::now();
    let outcomes = down.publish_all(user, &messages[..3]).await;
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes.iter().all(Result::is_err), "{outcomes:?}");
    assert!(started.elapsed() < StdDuration::from_secs(3));
}
