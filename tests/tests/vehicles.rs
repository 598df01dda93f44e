//! Every vehicle endpoint over HTTP, success and refusal paths, against real Postgres and Redis
//! and a local Kakao Local stub; plus the cross-cutting rules (error shape, languages, auth,
//! outages, OpenAPI, health).

use carshare_domain::Role;
use carshare_tests::{assert_error, json, unique_plate, vehicle_body, AppOptions, TestApp};
use chrono::{Duration, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn window(from_hours: i64, hours: i64) -> (String, String) {
    let start = Utc::now() + Duration::hours(from_hours);
    let end = start + Duration::hours(hours);
    (
        start.to_rfc3339_opts(SecondsFormat::Secs, true),
        end.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

fn search_path(lat: f64, lng: f64, extra: &str) -> String {
    let (s, e) = window(24, 4);
    format!("/v1/vehicles?lat={lat}&lng={lng}&start_datetime={s}&end_datetime={e}{extra}")
}

// ---------------------------------------------------------------- POST /v1/vehicles

#[tokio::test]
async fn a_host_registers_a_vehicle() {
    let app = TestApp::spawn().await;
    let (host_id, host) = app.user(Role::Host);
    let mut body = vehicle_body(37.5547, 126.9707);
    body["license_plate"] = json!("서울 12 가 3456");
    body["images"] = json!(["https://cdn.example.com/a.jpg", "vehicles/a/b.png"]);
    // Characters that need escaping on the way into the read table.
    body["description"] = json!("첫 줄\n둘째 줄\t탭 \\ 역슬래시 '따옴표' \"큰따옴표\"");
    let res = app.post("/v1/vehicles", Some(&host), &body).await;
    assert_eq!(res.status(), 201);
    let location = res
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(res.headers().get("x-stream-position").is_some());
    assert!(res.headers().get("x-request-id").is_some());
    let v: Value = res.json().await.unwrap();
    assert_eq!(location, format!("/v1/vehicles/{}", id_of(&v)));
    assert_eq!(v["owner_id"], host_id.to_string());
    assert_eq!(v["license_plate"], "서울12가3456");
    assert_eq!(v["hourly_rate"], 12000);
    assert_eq!(v["status"], "active");
    assert_eq!(v["fuel_type"], "hybrid");
    assert_eq!(v["images"].as_array().unwrap().len(), 2);
    assert_eq!(v["availability"], json!([]));
    let (status, read) = json(app.get(&location, None).await).await;
    assert_eq!(status, 200);
    assert_eq!(read, v, "the read model returns exactly what was written");

    // The event carries the request's metadata and no personal data.
    let (event_type, metadata): (String, Value) =
        sqlx::query_as("SELECT event_type, metadata FROM events WHERE aggregate_id = $1")
            .bind(id_of(&v))
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(event_type, "VehicleRegistered");
    assert_eq!(metadata["actor_id"], host_id.to_string());
    assert_eq!(metadata["actor_role"], "host");
    assert_eq!(metadata["command"], "RegisterVehicle");
    assert!(metadata["correlation_id"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
}

#[tokio::test]
async fn the_correlation_id_is_taken_from_x_request_id_and_recorded() {
    let app = TestApp::spawn().await;
    let (_, host) = app.user(Role::Host);
    let res = app
        .http
        .post(format!("{}/v1/vehicles", app.base))
        .bearer_auth(&host)
        .header("X-Request-Id", "trace-abc-123")
        .header("Idempotency-Key", "key-1")
        .json(&vehicle_body(37.5, 127.0))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers().get("x-request-id").unwrap(), "trace-abc-123");
    let v: Value = res.json().await.unwrap();
    let metadata: Value = sqlx::query_scalar("SELECT metadata FROM events WHERE aggregate_id = $1")
        .bind(id_of(&v))
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(metadata["correlation_id"], "trace-abc-123");
    assert_eq!(metadata["causation_id"], "trace-abc-123");
    assert_eq!(metadata["idempotency_key"], "key-1");
    // A forged id with control characters is replaced, not echoed.
    let res = app
        .http
        .get(format!("{}/health", app.base))
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(
        res.headers().get("x-request-id").unwrap(),
        "bad id with spaces"
    );
}

#[tokio::test]
async fn registration_refusals_change_nothing() {
    let app = TestApp::spawn().await;
    let (_, host) = app.user(Role::Host);
    let (_, guest) = app.user(Role::Guest);
    let (_, admin) = app.user(Role::Admin);
    let good = vehicle_body(37.5, 127.0);
    let with = |field: &str, value: Value| {
        let mut b = good.clone();
        b[field] = value;
        b
    };
    let without = |field: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(field);
        b
    };
    // (case, token, body, status, code, field named in details)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Value,
        u16,
        &'a str,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        ("no token", None, good.clone(), 401, "AUTH001", None),
        ("guest", Some(&guest), good.clone(), 403, "VEHICLE005", None),
        ("admin", Some(&admin), good.clone(), 403, "VEHICLE005", None),
        (
            "bad plate",
            Some(&host),
            with("license_plate", json!("ABC-1234")),
            422,
            "VEHICLE006",
            Some("license_plate"),
        ),
        (
            "old year",
            Some(&host),
            with("year", json!(1985)),
            422,
            "VEHICLE006",
            Some("year"),
        ),
        (
            "future year",
            Some(&host),
            with(
                "year",
                json!(Utc::now().format("%Y").to_string().parse::<i32>().unwrap() + 2),
            ),
            422,
            "VEHICLE006",
            Some("year"),
        ),
        (
            "zero rate",
            Some(&host),
            with("hourly_rate", json!(0)),
            422,
            "VEHICLE006",
            Some("hourly_rate"),
        ),
        (
            "huge rate",
            Some(&host),
            with("hourly_rate", json!(5_000_000)),
            422,
            "VEHICLE006",
            Some("hourly_rate"),
        ),
        (
            "fractional rate",
            Some(&host),
            with("hourly_rate", json!(12000.5)),
            422,
            "REQ002",
            Some("hourly_rate"),
        ),
        (
            "rate as string",
            Some(&host),
            with("hourly_rate", json!("12000")),
            422,
            "REQ002",
            Some("hourly_rate"),
        ),
        (
            "unknown fuel",
            Some(&host),
            with("fuel_type", json!("plasma")),
            422,
            "REQ002",
            Some("fuel_type"),
        ),
        (
            "unknown field",
            Some(&host),
            with("turbo", json!(true)),
            422,
            "REQ002",
            Some("turbo"),
        ),
        (
            "missing make",
            Some(&host),
            without("make"),
            422,
            "REQ002",
            Some("make"),
        ),
        (
            "blank model",
            Some(&host),
            with("model", json!("   ")),
            422,
            "VEHICLE006",
            Some("model"),
        ),
        (
            "tokyo",
            Some(&host),
            with("location_lng", json!(139.69)),
            422,
            "VEHICLE006",
            Some("location"),
        ),
        (
            "half coordinates",
            Some(&host),
            without("location_lng"),
            422,
            "VEHICLE006",
            Some("location_lat"),
        ),
        (
            "bad image",
            Some(&host),
            with("images", json!(["../../etc/passwd"])),
            422,
            "VEHICLE006",
            Some("images[0]"),
        ),
        (
            "too many images",
            Some(&host),
            with(
                "images",
                json!((0..21)
                    .map(|i| format!("https://x.example/{i}.jpg"))
                    .collect::<Vec<_>>()),
            ),
            422,
            "VEHICLE006",
            Some("images"),
        ),
    ];
    for (name, token, body, status, code, field) in cases {
        let (got, body) = json(app.post("/v1/vehicles", token, &body).await).await;
        assert_eq!(got.as_u16(), status, "{name}: {body}");
        let error = assert_error(&body, code);
        if let Some(field) = field {
            assert_eq!(error["details"][0]["field"], field, "{name}: {body}");
        }
    }
    // Without coordinates and without geocoding configured: a clear 422.
    let mut no_coords = good.clone();
    no_coords.as_object_mut().unwrap().remove("location_lat");
    no_coords.as_object_mut().unwrap().remove("location_lng");
    let (status, body) = json(app.post("/v1/vehicles", Some(&host), &no_coords).await).await;
    assert_eq!(status, 422);
    assert_error(&body, "GEO001");
    assert_eq!(
        app.event_count().await,
        0,
        "a refused request wrote an event"
    );
    let plates: i64 = sqlx::query_scalar("SELECT count(*) FROM vehicle_plates")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(plates, 0, "a refused request reserved a plate");
}

#[tokio::test]
async fn malformed_bodies_are_refused_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let (_, host) = app.user(Role::Host);
    let url = format!("{}/v1/vehicles", app.base);
    let send = |body: Vec<u8>, content_type: &'static str| {
        let http = app.http.clone();
        let url = url.clone();
        let host = host.clone();
        async move {
            json(
                http.post(url)
                    .bearer_auth(host)
                    .header("Content-Type", content_type)
                    .body(body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let (s, b) = send(b"{\"make\": ".to_vec(), "application/json").await;
    assert_eq!(s, 400);
    assert_error(&b, "REQ001");
    let (s, b) = send(b"{} {}".to_vec(), "application/json").await;
    assert_eq!(s, 400);
    assert_error(&b, "REQ001");
    let (s, b) = send(Vec::new(), "application/json").await;
    assert_eq!(s, 400);
    assert_error(&b, "REQ001");
    let (s, b) = send(vec![0xff, 0xfe, 0x00], "application/json").await;
    assert_eq!(s, 400);
    assert_error(&b, "REQ001");
    let (s, b) = send(
        b"license_plate=1".to_vec(),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(s, 415);
    assert_error(&b, "REQ004");
    let mut huge = b"{\"description\": \"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 200_000));
    huge.extend(b"\"}");
    let (s, b) = send(huge, "application/json").await;
    assert_eq!(s, 413);
    assert_error(&b, "REQ003");
    // Deep nesting is valid JSON of the wrong shape: refused cleanly, no stack overflow.
    let deep = "[".repeat(5_000) + &"]".repeat(5_000);
    let (s, b) = send(deep.into_bytes(), "application/json").await;
    assert_eq!(s, 422, "{b}");
    assert_error(&b, "REQ002");
    let deep_field = format!(
        "{{\"description\": {}{}}}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let (s, b) = send(deep_field.into_bytes(), "application/json").await;
    assert_eq!(s, 422, "{b}");
    assert_error(&b, "REQ002");
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn messages_are_korean_unless_english_is_asked_for() {
    let app = TestApp::spawn().await;
    let (_, body) = json(app.get("/v1/nowhere", None).await).await;
    assert_error(&body, "REQ007");
    assert_eq!(body["error"]["message"], "요청한 경로를 찾을 수 없습니다.");
    let res = app
        .http
        .get(format!("{}/v1/nowhere", app.base))
        .header("Accept-Language", "en-US,en;q=0.9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["message"], "No such route.");
    // Field details follow the language too.
    let (_, host) = app.user(Role::Host);
    let mut bad = vehicle_body(37.5, 127.0);
    bad["license_plate"] = json!("nope");
    let res = app
        .http
        .post(format!("{}/v1/vehicles", app.base))
        .bearer_auth(&host)
        .header("Accept-Language", "en")
        .json(&bad)
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Not a Korean licence plate"),
        "{body}"
    );
}

#[tokio::test]
async fn tokens_are_checked() {
    let app = TestApp::spawn().await;
    let body = vehicle_body(37.5, 127.0);
    let cases = [
        ("Bearer", "AUTH002"),
        ("Bearer not-a-jwt", "AUTH002"),
        ("Basic dXNlcjpwYXNz", "AUTH002"),
    ];
    for (header_value, code) in cases {
        let res = app
            .http
            .post(format!("{}/v1/vehicles", app.base))
            .header("Authorization", header_value)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, body) = json(res).await;
        assert_eq!(status, 401, "{header_value}");
        assert_error(&body, code);
    }
    let expired = app.expired_token(Role::Host);
    let (status, b) = json(app.post("/v1/vehicles", Some(&expired), &body).await).await;
    assert_eq!(status, 401);
    assert_error(&b, "AUTH003");
    // Signed with another key.
    let other = carshare_api::auth::TokenKeys::new(
        &secrecy::SecretString::from("some-other-secret-some-other-secret-00"),
        std::time::Duration::from_secs(900),
    );
    let (forged, _) = other.issue(uuid::Uuid::new_v4(), Role::Host).unwrap();
    let (status, b) = json(app.post("/v1/vehicles", Some(&forged), &body).await).await;
    assert_eq!(status, 401);
    assert_error(&b, "AUTH002");
    // Tampered payload (role changed) with the original signature.
    let (_, guest) = app.user(Role::Guest);
    let parts: Vec<&str> = guest.split('.').collect();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
    claims["role"] = json!("host");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        engine.encode(claims.to_string()),
        parts[2]
    );
    let (status, b) = json(app.post("/v1/vehicles", Some(&tampered), &body).await).await;
    assert_eq!(status, 401);
    assert_error(&b, "AUTH002");
    // Revoked through the Redis denylist (what logout will write).
    let (_, host) = app.user(Role::Host);
    let claims = app.keys.verify(&host).unwrap();
    let client = redis_client().await;
    let mut conn = client;
    let _: () = redis::cmd("SET")
        .arg(format!("{}revoked:jti:{}", app.redis_prefix, claims.jti))
        .arg(1)
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (status, b) = json(app.post("/v1/vehicles", Some(&host), &body).await).await;
    assert_eq!(status, 401);
    assert_error(&b, "AUTH004");
    assert_eq!(app.event_count().await, 0);
}

async fn redis_client() -> redis::aio::MultiplexedConnection {
    redis::Client::open(carshare_tests::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_plate_belongs_to_one_live_vehicle() {
    let app = TestApp::spawn().await;
    let (_, host_a) = app.user(Role::Host);
    let (_, host_b) = app.user(Role::Host);
    let mut body = vehicle_body(37.5, 127.0);
    let plate = unique_plate();
    body["license_plate"] = json!(plate);
    let first = app.register_vehicle(&host_a, &body).await;
    // Same plate, written differently, by another host.
    let spaced = format!("{} {} {}", &plate[..3], &plate[3..6], &plate[6..]);
    body["license_plate"] = json!(spaced);
    let (status, b) = json(app.post("/v1/vehicles", Some(&host_b), &body).await).await;
    assert_eq!(status, 409, "{b}");
    assert_error(&b, "VEHICLE002");
    // Concurrent registrations of one new plate: exactly one wins.
    let contested = unique_plate();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut b = vehicle_body(37.5, 127.0);
        b["license_plate"] = json!(contested);
        let (_, token) = app.user(Role::Host);
        let http = app.http.clone();
        let url = format!("{}/v1/vehicles", app.base);
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&b)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
    // Once removed, the plate is free again.
    let res = app
        .delete(&format!("/v1/vehicles/{}", id_of(&first)), Some(&host_a))
        .await;
    assert_eq!(res.status(), 204);
    body["license_plate"] = json!(plate);
    app.register_vehicle(&host_b, &body).await;
}

// ---------------------------------------------------------------- geocoding through Kakao

fn kakao_found(lng: &str, lat: &str) -> Value {
    json!({
        "meta": {"total_count": 1, "pageable_count": 1, "is_end": true},
        "documents": [{"address_name": "부산 해운대구 우동 1411", "address_type": "REGION_ADDR", "x": lng, "y": lat,
                       "address": {"address_name": "부산 해운대구 우동 1411"}, "road_address": null}]
    })
}

#[tokio::test]
async fn an_address_alone_is_geocoded_with_kakao() {
    let app = TestApp::spawn_with(AppOptions {
        kakao: true,
        ..AppOptions::default()
    })
    .await;
    let kakao = app.kakao.as_ref().unwrap();
    Mock::given(method("GET"))
        .and(path("/v2/local/search/address.json"))
        .and(header("Authorization", "KakaoAK test-kakao-key"))
        .and(query_param("query", "부산 해운대구 우동 1411"))
        .respond_with(ResponseTemplate::new(200).set_body_json(kakao_found("129.1603", "35.1631")))
        .expect(1)
        .mount(kakao)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/local/search/address.json"))
        .and(query_param("query", "없는 주소 999"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "meta": {"total_count": 0, "pageable_count": 0, "is_end": true}, "documents": []})))
        .mount(kakao)
        .await;
    let (_, host) = app.user(Role::Host);
    let mut body = vehicle_body(0.0, 0.0);
    body.as_object_mut().unwrap().remove("location_lat");
    body.as_object_mut().unwrap().remove("location_lng");
    body["location_address"] = json!("부산 해운대구 우동 1411");
    let v = app.register_vehicle(&host, &body).await;
    assert_eq!(v["location_lat"], 35.1631);
    assert_eq!(v["location_lng"], 129.1603);
    body["location_address"] = json!("없는 주소 999");
    body["license_plate"] = json!(unique_plate());
    let (status, b) = json(app.post("/v1/vehicles", Some(&host), &body).await).await;
    assert_eq!(status, 422);
    assert_error(&b, "GEO002");
    // Moving the vehicle by address re-geocodes it.
    Mock::given(method("GET"))
        .and(query_param("query", "서울 중구 세종대로 110"))
        .respond_with(ResponseTemplate::new(200).set_body_json(kakao_found("126.9779", "37.5663")))
        .mount(kakao)
        .await;
    let (status, moved) = json(
        app.put(
            &format!("/v1/vehicles/{}", id_of(&v)),
            Some(&host),
            &json!({"location_address": "서울 중구 세종대로 110"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["location_lat"], 37.5663);
}

#[tokio::test]
async fn a_failing_geocoder_gives_503_and_writes_nothing() {
    let app = TestApp::spawn_with(AppOptions {
        kakao: true,
        ..AppOptions::default()
    })
    .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(app.kakao.as_ref().unwrap())
        .await;
    let (_, host) = app.user(Role::Host);
    let mut body = vehicle_body(0.0, 0.0);
    body.as_object_mut().unwrap().remove("location_lat");
    body.as_object_mut().unwrap().remove("location_lng");
    let res = app.post("/v1/vehicles", Some(&host), &body).await;
    assert!(res.headers().get("retry-after").is_some());
    let (status, b) = json(res).await;
    assert_eq!(status, 503);
    assert_error(&b, "GEO003");
    // One call = the first attempt and three retries.
    assert_eq!(
        app.kakao
            .as_ref()
            .unwrap()
            .received_requests()
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(app.event_count().await, 0);
}

// ---------------------------------------------------------------- GET /v1/vehicles/{id}

#[tokio::test]
async fn vehicles_are_read_by_id() {
    let app = TestApp::spawn().await;
    let (_, host) = app.user(Role::Host);
    let v = app
        .register_vehicle(&host, &vehicle_body(37.5, 127.0))
        .await;
    let (status, got) = json(app.get(&format!("/v1/vehicles/{}", id_of(&v)), None).await).await;
    assert_eq!(status, 200);
    assert_eq!(got, v);
    let (status, b) = json(
        app.get(&format!("/v1/vehicles/{}", uuid::Uuid::new_v4()), None)
            .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&b, "VEHICLE001");
    let (status, b) = json(app.get("/v1/vehicles/not-a-uuid", None).await).await;
    assert_eq!(status, 400);
    assert_error(&b, "REQ005");
}

// ---------------------------------------------------------------- PUT /v1/vehicles/{id}

#[tokio::test]
async fn the_owner_or_an_admin_updates_a_vehicle() {
    let app = TestApp::spawn().await;
    let (_, host) = app.user(Role::Host);
    let (_, other_host) = app.user(Role::Host);
    let (_, admin) = app.user(Role::Admin);
    let (_, guest) = app.user(Role::Guest);
    let v = app
        .register_vehicle(&host, &vehicle_body(37.5, 127.0))
        .await;
    let url = format!("/v1/vehicles/{}", id_of(&v));

    let (status, updated) = json(
        app.put(&url, Some(&host), &json!({"model": "그랜저", "color": null, "hourly_rate": 15000, "status": "maintenance"})).await,
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["model"], "그랜저");
    assert_eq!(updated["color"], Value::Null);
    assert_eq!(updated["hourly_rate"], 15000);
    assert_eq!(updated["status"], "maintenance");
    let (_, read) = json(app.get(&url, None).await).await;
    assert_eq!(read, updated);
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(id_of(&v))
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(
        types,
        [
            "VehicleRegistered",
            "VehicleDetailsUpdated",
            "HourlyRateChanged",
            "VehicleStatusChanged"
        ]
    );

    // A no-op update records nothing.
    let before = app.event_count().await;
    let (status, _) = json(
        app.put(&url, Some(&host), &json!({"model": "그랜저"}))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(app.event_count().await, before);

    let (status, _) = json(
        app.put(&url, Some(&admin), &json!({"status": "active"}))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    for (token, code, expected) in [
        (&other_host, "VEHICLE004", 403u16),
        (&guest, "VEHICLE004", 403),
    ] {
        let (status, b) = json(app.put(&url, Some(token), &json!({"model": "x"})).await).await;
        assert_eq!(status.as_u16(), expected);
        assert_error(&b, code);
    }
    let (status, b) = json(app.put(&url, Some(&host), &json!({})).await).await;
    assert_eq!(status, 422);
    assert_error(&b, "VEHICLE006");
    let (status, b) = json(
        app.put(&url, Some(&host), &json!({"status": "scrapped"}))
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_error(&b, "REQ002");
    let (status, b) = json(app.put(&url, None, &json!({"model": "x"})).await).await;
    assert_eq!(status, 401);
    assert_error(&b, "AUTH001");
    let (status, b) = json(
        app.put(
            &format!("/v1/vehicles/{}", uuid::Uuid::new_v4()),
            Some(&host),
            &json!({"model": "x"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&b, "VEHICLE001");

    // Changing the plate frees the old one.
    let old_plate = v["license_plate"].as_str().unwrap().to_string();
    let new_plate = unique_plate();
    let (status, _) = json(
        app.put(&url, Some(&host), &json!({"license_plate": new_plate}))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let mut reuse = vehicle_body(37.5, 127.0);
    reuse["license_plate"] = json!(old_plate);
    app.register_vehicle(&other_host, &reuse).await;
    reuse["license_plate"] = json!(new_plate);
    let (status, b) = json(app.post("/v1/vehicles", Some(&other_host), &reuse).await).await;
    assert_eq!(status, 409);
    assert_error(&b, "VEHICLE002");
}

// ---------------------------------------------------------------- DELETE /v1/vehicles/{id}

#[tokio::test]
async fn removing_a_vehicle_keeps_its_history() {
    let app = TestApp::spawn().await;
    let (_, host) = app.user(Role::Host);
    let (_, other) = app.user(Role::Host);
    let v = app
        .register_vehicle(&host, &vehicle_body(37.5, 127.0))
        .await;
    let url = format!("/v1/vehicles/{}", id_of(&v));
    let (status, b) = json(app.delete(&url, Some(&other)).await).await;
    assert_eq!(status, 403);
    assert_error(&b, "VEHICLE004");
    let res = app.delete(&format!("{url}?reason=sold"), Some(&host)).await;
    assert_eq!(res.status(), 204);
    let (status, b) = json(app.get(&url, None).await).await;
    assert_eq!(status, 404);
    assert_error(&b, "VEHICLE001");
    let (status, b) = json(app.delete(&url, Some(&host)).await).await;
    assert_eq!(status, 409);
    assert_error(&b, "VEHICLE003");
    let (status, b) = json(app.put(&url, Some(&host), &json!({"model": "x"})).await).await;
    assert_eq!(status, 409);
    assert_error(&b, "VEHICLE003");
    let (event, payload): (String, Value) =
        sqlx::query_as("SELECT event_type, payload FROM events WHERE aggregate_id = $1 ORDER BY sequence DESC LIMIT 1")
            .bind(id_of(&v))
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(event, "VehicleRemoved");
    assert_eq!(payload["VehicleRemoved"]["reason"], "sold");
    let (_, mine) = json(
        app.get("/v1/hosts/me/vehicles?include_removed=true", Some(&host))
            .await,
    )
    .await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let (_, mine) = json(app.get("/v1/hosts/me/vehicles", Some(&host)).await).await;
    assert_eq!(mine.as_array().unwrap().len(), 0);
}

// ---------------------------------------------------------------- availability

#[tokio::test]
async fn availability_rules_are_set_and_validated() {
    let app = TestApp::spawn().await;
    let (_, host) = app.user(Role::Host);
    let (_, stranger) = app.user(Role::Host);
    let v = app
        .register_vehicle(&host, &vehicle_body(37.5, 127.0))
        .await;
    let url = format!("/v1/vehicles/{}/availability", id_of(&v));
    let rules = json!({"rules": [
        {"day_of_week": 1, "start_time": "09:00", "end_time": "18:00", "is_recurring": true},
        {"specific_date": (Utc::now() + Duration::days(40)).format("%Y-%m-%d").to_string(), "start_time": "00:00", "end_time": "24:00", "is_blocked": true}
    ]});
    let (status, got) = json(app.post(&url, Some(&host), &rules).await).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["availability"].as_array().unwrap().len(), 2);
    assert_eq!(got["availability"][1]["is_recurring"], false);
    assert_eq!(got["availability"][1]["end_time"], "24:00");
    let (_, read) = json(app.get(&format!("/v1/vehicles/{}", id_of(&v)), None).await).await;
    assert_eq!(read["availability"], got["availability"]);

    let bad_cases = [
        (
            json!({"rules": [{"day_of_week": 7, "start_time": "09:00", "end_time": "18:00"}]}),
            "rules[0]",
        ),
        (
            json!({"rules": [{"day_of_week": 1, "start_time": "18:00", "end_time": "09:00"}]}),
            "rules[0]",
        ),
        (
            json!({"rules": [{"day_of_week": 1, "start_time": "9시", "end_time": "18:00"}]}),
            "rules[0].start_time",
        ),
        (
            json!({"rules": [{"day_of_week": 1, "specific_date": "2027-01-01", "start_time": "09:00", "end_time": "18:00"}]}),
            "rules[0]",
        ),
        (
            json!({"rules": [{"specific_date": "2099-01-01", "start_time": "09:00", "end_time": "18:00"}]}),
            "rules[0].specific_date",
        ),
    ];
    let before = app.event_count().await;
    for (body, field) in bad_cases {
        let (status, b) = json(app.post(&url, Some(&host), &body).await).await;
        assert_eq!(status, 422, "{body}: {b}");
        let e = assert_error(&b, "VEHICLE006");
        assert_eq!(e["details"][0]["field"], field, "{b}");
    }
    let (status, b) = json(app.post(&url, Some(&host), &json!({"rules": [{"day_of_week": "monday", "start_time": "09:00", "end_time": "18:00"}]})).await).await;
    assert_eq!(status, 422);
    assert_eq!(
        assert_error(&b, "REQ002")["details"][0]["field"],
        "rules[0].day_of_week"
    );
    let (status, b) = json(app.post(&url, Some(&stranger), &rules).await).await;
    assert_eq!(status, 403);
    assert_error(&b, "VEHICLE004");
    let many: Vec<Value> = (0..201)
        .map(|_| json!({"day_of_week": 1, "start_time": "09:00", "end_time": "10:00"}))
        .collect();
    let (status, b) = json(app.post(&url, Some(&host), &json!({"rules": many})).await).await;
    assert_eq!(status, 422);
    assert_error(&b, "VEHICLE006");
    assert_eq!(app.event_count().await, before);
}

// ---------------------------------------------------------------- GET /v1/vehicles (search)

#[tokio::test]
async fn search_finds_nearby_bookable_vehicles_nearest_first() {
    let app = TestApp::spawn().await;
    let (_, host) = app.user(Role::Host);
    // Around Gangnam station (37.4979, 127.0276): 0.5, 1.5, 3 and 8 km north.
    let mut ids = Vec::new();
    for (i, km) in [3.0, 0.5, 8.0, 1.5].iter().enumerate() {
        let mut body = vehicle_body(37.4979 + km / 111.0, 127.0276);
        body["hourly_rate"] = json!(10_000 * (i as i64 + 1));
        body["fuel_type"] = json!(if i % 2 == 0 { "electric" } else { "gasoline" });
        body["model"] = json!(["아이오닉 5", "쏘나타", "EV6", "K5"][i]);
        ids.push(id_of(&app.register_vehicle(&host, &body).await));
    }
    let (status, found) = json(app.get(&search_path(37.4979, 127.0276, ""), None).await).await;
    assert_eq!(status, 200, "{found}");
    let got: Vec<String> = found.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(
        got,
        vec![ids[1].clone(), ids[3].clone(), ids[0].clone()],
        "5 km radius, nearest first"
    );
    let d: Vec<f64> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["distance_km"].as_f64().unwrap())
        .collect();
    assert!(
        (d[0] - 0.5).abs() < 0.05 && (d[1] - 1.5).abs() < 0.05 && (d[2] - 3.0).abs() < 0.05,
        "{d:?}"
    );

    let (_, wide) = json(
        app.get(&search_path(37.4979, 127.0276, "&radius=10"), None)
            .await,
    )
    .await;
    assert_eq!(wide.as_array().unwrap().len(), 4);
    let (_, text) = json(
        app.get(
            &search_path(
                37.4979,
                127.0276,
                "&radius=10&q=%EC%95%84%EC%9D%B4%EC%98%A4%EB%8B%89",
            ),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        text.as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect::<Vec<_>>(),
        vec![ids[0].clone()],
        "q=아이오닉"
    );
    let (_, electric) = json(
        app.get(
            &search_path(37.4979, 127.0276, "&radius=10&fuel_type=electric"),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(electric.as_array().unwrap().len(), 2);
    let (_, priced) = json(
        app.get(
            &search_path(
                37.4979,
                127.0276,
                "&radius=10&min_price=20000&max_price=30000",
            ),
            None,
        )
        .await,
    )
    .await;
    let priced: BTreeSet<String> = priced.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(priced, BTreeSet::from([ids[1].clone(), ids[2].clone()]));

    // Pagination: pages of one, following X-Next-Cursor, cover the same list.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let extra = match &cursor {
            Some(c) => format!("&radius=10&limit=1&cursor={c}"),
            None => "&radius=10&limit=1".to_string(),
        };
        let res = app.get(&search_path(37.4979, 127.0276, &extra), None).await;
        let next = res
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_string());
        let page: Value = res.json().await.unwrap();
        seen.extend(page.as_array().unwrap().iter().map(id_of));
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec![
            ids[1].clone(),
            ids[3].clone(),
            ids[0].clone(),
            ids[2].clone()
        ]
    );

    // Inactive and removed vehicles drop out; availability rules apply.
    app.put(
        &format!("/v1/vehicles/{}", ids[1]),
        Some(&host),
        &json!({"status": "inactive"}),
    )
    .await;
    app.delete(&format!("/v1/vehicles/{}", ids[3]), Some(&host))
        .await;
    let blocked_everywhere = json!({"rules": (0..7).map(|d| json!({"day_of_week": d, "start_time": "00:00", "end_time": "24:00", "is_blocked": true})).collect::<Vec<_>>()});
    let res = app
        .post(
            &format!("/v1/vehicles/{}/availability", ids[0]),
            Some(&host),
            &blocked_everywhere,
        )
        .await;
    assert_eq!(res.status(), 200);
    let (_, after) = json(
        app.get(&search_path(37.4979, 127.0276, "&radius=10"), None)
            .await,
    )
    .await;
    assert_eq!(
        after
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect::<Vec<_>>(),
        vec![ids[2].clone()]
    );
}

#[tokio::test]
async fn bad_searches_are_refused() {
    let app = TestApp::spawn().await;
    let now = Utc::now();
    let t = |h: i64| (now + Duration::hours(h)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let cases = [
        (format!("/v1/vehicles?lat=37.5&lng=127&start_datetime={}&end_datetime={}", t(5), t(2)), 422, "REQ002", "end_datetime"),
        (format!("/v1/vehicles?lat=37.5&lng=127&start_datetime={}&end_datetime={}", t(-10), t(-5)), 422, "REQ002", "start_datetime"),
        (format!("/v1/vehicles?lat=37.5&lng=127&start_datetime={}&end_datetime={}", t(1), t(24 * 40)), 422, "REQ002", "end_datetime"),
        (format!("/v1/vehicles?lat=35.68&lng=139.69&start_datetime={}&end_datetime={}", t(1), t(2)), 422, "REQ002", "lat"),
        (format!("/v1/vehicles?lat=37.5&lng=127&radius=80&start_datetime={}&end_datetime={}", t(1), t(2)), 422, "REQ002", "radius"),
        (format!("/v1/vehicles?lat=37.5&lng=127&radius=0&start_datetime={}&end_datetime={}", t(1), t(2)), 422, "REQ002", "radius"),
        (format!("/v1/vehicles?lat=37.5&lng=127&limit=500&start_datetime={}&end_datetime={}", t(1), t(2)), 422, "REQ002", "limit"),
        (format!("/v1/vehicles?lat=37.5&lng=127&min_price=9&max_price=1&start_datetime={}&end_datetime={}", t(1), t(2)), 422, "REQ002", "min_price"),
        (format!("/v1/vehicles?lat=37.5&lng=127&cursor=zzz&start_datetime={}&end_datetime={}", t(1), t(2)), 422, "REQ002", "cursor"),
        (format!("/v1/vehicles?lat=north&lng=127&start_datetime={}&end_datetime={}", t(1), t(2)), 400, "REQ006", "lat"),
        (format!("/v1/vehicles?lat=37.5&lng=127&start_datetime=tomorrow&end_datetime={}", t(2)), 400, "REQ006", "start_datetime"),
        (format!("/v1/vehicles?lat=37.5&lng=127&fuel_type=plasma&start_datetime={}&end_datetime={}", t(1), t(2)), 400, "REQ006", "fuel_type"),
        ("/v1/vehicles?lat=37.5&lng=127".to_string(), 400, "REQ006", "start_datetime"),
    ];
    for (path, status, code, field) in cases {
        let (got, body) = json(app.get(&path, None).await).await;
        assert_eq!(got.as_u16(), status, "{path}: {body}");
        let e = assert_error(&body, code);
        assert_eq!(e["details"][0]["field"], field, "{path}: {body}");
    }
    // A '+' offset sent unencoded (decoded to a space) is still understood.
    let start = (now + Duration::hours(30))
        .with_timezone(&carshare_domain::SEOUL)
        .to_rfc3339();
    let end = (now + Duration::hours(33))
        .with_timezone(&carshare_domain::SEOUL)
        .to_rfc3339();
    let (status, body) = json(
        app.get(
            &format!("/v1/vehicles?lat=37.5&lng=127&start_datetime={start}&end_datetime={end}"),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

// ---------------------------------------------------------------- GET /v1/hosts/me/vehicles

#[tokio::test]
async fn hosts_list_their_own_vehicles() {
    let app = TestApp::spawn().await;
    let (_, host) = app.user(Role::Host);
    let (_, other) = app.user(Role::Host);
    let (_, guest) = app.user(Role::Guest);
    let mut mine = Vec::new();
    for i in 0..3 {
        mine.push(id_of(
            &app.register_vehicle(&host, &vehicle_body(37.5 + f64::from(i) * 0.01, 127.0))
                .await,
        ));
    }
    app.register_vehicle(&other, &vehicle_body(37.5, 127.0))
        .await;
    app.put(
        &format!("/v1/vehicles/{}", mine[0]),
        Some(&host),
        &json!({"status": "maintenance"}),
    )
    .await;

    let (status, list) = json(app.get("/v1/hosts/me/vehicles", Some(&host)).await).await;
    assert_eq!(status, 200);
    let got: Vec<String> = list.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(
        got,
        vec![mine[2].clone(), mine[1].clone(), mine[0].clone()],
        "newest first, own only"
    );
    let (_, maint) = json(
        app.get("/v1/hosts/me/vehicles?status=maintenance", Some(&host))
            .await,
    )
    .await;
    assert_eq!(
        maint
            .as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect::<Vec<_>>(),
        vec![mine[0].clone()]
    );
    let res = app.get("/v1/hosts/me/vehicles?limit=2", Some(&host)).await;
    let next = res
        .headers()
        .get("x-next-cursor")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let page: Value = res.json().await.unwrap();
    assert_eq!(page.as_array().unwrap().len(), 2);
    let (_, rest) = json(
        app.get(
            &format!("/v1/hosts/me/vehicles?limit=2&cursor={next}"),
            Some(&host),
        )
        .await,
    )
    .await;
    assert_eq!(
        rest.as_array()
            .unwrap()
            .iter()
            .map(id_of)
            .collect::<Vec<_>>(),
        vec![mine[0].clone()]
    );

    let (status, b) = json(app.get("/v1/hosts/me/vehicles", Some(&guest)).await).await;
    assert_eq!(status, 403);
    assert_error(&b, "AUTH005");
    let (status, b) = json(app.get("/v1/hosts/me/vehicles", None).await).await;
    assert_eq!(status, 401);
    assert_error(&b, "AUTH001");
    let (status, b) = json(
        app.get("/v1/hosts/me/vehicles?cursor=%%%", Some(&host))
            .await,
    )
    .await;
    assert!(status == 400 || status == 422, "{b}");
}

// ---------------------------------------------------------------- outages

#[tokio::test]
async fn a_redis_outage_is_a_503_not_a_hang() {
    let app = TestApp::spawn_with(AppOptions {
        env: vec![
            ("REDIS_URL", "redis://127.0.0.1:1".into()),
            ("REDIS_TIMEOUT_MS", "300".into()),
        ],
        ..AppOptions::default()
    })
    .await;
    let (_, host) = app.user(Role::Host);
    let started = std::time::Instant::now();
    let res = app
        .post("/v1/vehicles", Some(&host), &vehicle_body(37.5, 127.0))
        .await;
    assert!(res.headers().get("retry-after").is_some());
    let (status, b) = json(res).await;
    assert_eq!(status, 503);
    assert_error(&b, "SYS002");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let (status, ready) = json(app.get("/ready", None).await).await;
    assert_eq!(status, 503);
    assert_eq!(ready["redis"]["status"], "down");
    assert_eq!(ready["postgres"]["status"], "up");
    // Public reads that need no Redis still work.
    assert_eq!(
        app.get(&search_path(37.5, 127.0, ""), None).await.status(),
        200
    );
}

#[tokio::test]
async fn a_postgres_outage_is_a_503_not_a_hang() {
    let dead = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let app = TestApp::spawn_with(AppOptions {
        pool: Some(dead),
        ..AppOptions::default()
    })
    .await;
    let (_, host) = app.user(Role::Host);
    let started = std::time::Instant::now();
    for (name, res) in [
        (
            "register",
            app.post("/v1/vehicles", Some(&host), &vehicle_body(37.5, 127.0))
                .await,
        ),
        (
            "get",
            app.get(&format!("/v1/vehicles/{}", uuid::Uuid::new_v4()), None)
                .await,
        ),
        ("search", app.get(&search_path(37.5, 127.0, ""), None).await),
    ] {
        let (status, b) = json(res).await;
        assert_eq!(status, 503, "{name}: {b}");
        assert_error(&b, "SYS002");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let (status, ready) = json(app.get("/ready", None).await).await;
    assert_eq!(status, 503);
    assert_eq!(ready["postgres"]["status"], "down");
}

// ---------------------------------------------------------------- OpenAPI, health, metrics

#[tokio::test]
async fn the_openapi_document_covers_every_route_and_error() {
    let app = TestApp::spawn().await;
    let (status, doc) = json(app.get("/v1/openapi.json", None).await).await;
    assert_eq!(status, 200);
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let expected: BTreeSet<String> = [
        "GET /health",
        "GET /ready",
        "GET /metrics",
        "GET /v1/openapi.json",
        "POST /v1/vehicles",
        "GET /v1/vehicles",
        "GET /v1/vehicles/{id}",
        "PUT /v1/vehicles/{id}",
        "DELETE /v1/vehicles/{id}",
        "POST /v1/vehicles/{id}/availability",
        "GET /v1/hosts/me/vehicles",
        "GET /v1/admin/projections",
        "POST /v1/auth/register",
        "POST /v1/auth/login",
        "POST /v1/auth/refresh",
        "POST /v1/auth/logout",
        "GET /v1/auth/me",
        "GET /v1/users/me",
        "PUT /v1/users/me",
        "DELETE /v1/users/me",
        "POST /v1/users/me/corporate-profile",
        "GET /v1/users/me/corporate-profile",
        "GET /v1/admin/corporate-profiles",
        "PUT /v1/admin/corporate-profiles/{id}/verify",
        "POST /v1/bookings",
        "GET /v1/bookings",
        "GET /v1/bookings/{id}",
        "GET /v1/bookings/{id}/timeline",
        "PUT /v1/bookings/{id}/approve",
        "PUT /v1/bookings/{id}/reject",
        "PUT /v1/bookings/{id}/cancel",
        "POST /v1/bookings/{id}/start",
        "POST /v1/bookings/{id}/complete",
        "GET /v1/ws",
        "POST /v1/bookings/{id}/photos",
        "POST /v1/bookings/{id}/reviews",
        "GET /v1/admin/bookings",
        "POST /v1/admin/projections/{name}/rebuild",
        "GET /v1/users/{id}/reviews",
        "GET /v1/notifications",
        "PUT /v1/notifications/{id}/read",
        "PUT /v1/notifications/read-all",
        "POST /v1/notifications/send",
        "POST /v1/notifications/devices",
        "DELETE /v1/notifications/devices/{token}",
        "POST /v1/vehicles/{id}/images",
        "POST /v1/payments/process",
        "GET /v1/payments/history",
        "POST /v1/payments/webhook",
        "POST /v1/payments/settle",
        "GET /v1/payments/settlements",
        "GET /v1/admin/audit/settlements",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(routes, expected);
    // Every route exists on the server (no 404 REQ007 for documented paths).
    for route in &expected {
        let (m, p) = route.split_once(' ').unwrap();
        let p = p.replace("{id}", &uuid::Uuid::new_v4().to_string());
        let res = app
            .http
            .request(
                Method::from_bytes(m.as_bytes()).unwrap(),
                format!("{}{p}", app.base),
            )
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        assert!(
            !(status == 404 && body.contains("\"REQ007\"")),
            "{route} is documented but not served"
        );
    }
    let codes: BTreeSet<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let all: BTreeSet<String> = carshare_api::error::ErrorCode::ALL
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(codes, all);
    let create = &doc["paths"]["/v1/vehicles"]["post"];
    for status in ["201", "400", "401", "403", "409", "422", "503"] {
        assert!(
            create["responses"][status].is_object(),
            "POST /v1/vehicles lacks {status}"
        );
    }
    assert!(
        doc["components"]["schemas"]["VehicleCreate"]["properties"]["license_plate"].is_object()
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::spawn().await;
    let (status, health) = json(app.get("/health", None).await).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    let (status, ready) = json(app.get("/ready", None).await).await;
    assert_eq!(status, 200);
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["postgres"]["status"], "up");
    assert_eq!(ready["redis"]["status"], "up");
    assert_eq!(ready["projections"][0]["name"], "vehicles");
    let (_, host) = app.user(Role::Host);
    app.register_vehicle(&host, &vehicle_body(37.5, 127.0))
        .await;
    let res = app.get("/metrics", None).await;
    assert!(res
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();
    for metric in [
        "carshare_http_requests_total",
        "carshare_http_request_duration_seconds_bucket",
        "carshare_commands_total",
        "carshare_projection_position",
        "carshare_projection_lag_events",
        "carshare_projection_lag_seconds",
        "carshare_stream_horizon_age_seconds",
    ] {
        assert!(text.contains(metric), "{metric} missing from /metrics");
    }
    assert!(text.contains(
        "carshare_commands_total{aggregate=\"Vehicle\",command=\"RegisterVehicle\",outcome=\"ok\"}"
    ));
    // Security headers on every response.
    let res = app.get("/health", None).await;
    for h in [
        "strict-transport-security",
        "content-security-policy",
        "x-frame-options",
        "x-content-type-options",
        "referrer-policy",
    ] {
        assert!(res.headers().get(h).is_some(), "{h} missing");
    }
}

// ---------------------------------------------------------------- concurrency

#[tokio::test]
async fn concurrent_writers_on_one_vehicle_are_serialised_by_bounded_retries() {
    let app = TestApp::spawn().await;
    let (host_id, host) = app.user(Role::Host);
    let v = app
        .register_vehicle(&host, &vehicle_body(37.5, 127.0))
        .await;
    let url = format!("{}/v1/vehicles/{}", app.base, id_of(&v));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let http = app.http.clone();
        let url = url.clone();
        let token = app.token_for(host_id, Role::Host);
        tasks.push(tokio::spawn(async move {
            let res = http
                .put(url)
                .bearer_auth(token)
                .json(&json!({"hourly_rate": 20_000 + i * 100}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            (status, body)
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => ok += 1,
            409 => {
                assert_error(&body, "SYS001");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(ok >= 1);
    // Every accepted change is one event, sequences have no holes, and the read model shows the
    // last one.
    let rows: Vec<(i64, String, Value)> = sqlx::query_as(
        "SELECT sequence, event_type, payload FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(id_of(&v))
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 1 + ok);
    for (i, (sequence, _, _)) in rows.iter().enumerate() {
        assert_eq!(*sequence, i as i64 + 1);
    }
    let last_rate = rows.last().unwrap().2["HourlyRateChanged"]["hourly_rate"].clone();
    let (_, read) = json(app.get(&format!("/v1/vehicles/{}", id_of(&v)), None).await).await;
    assert_eq!(read["hourly_rate"], last_rate);
    // Each change records the rate it replaced: a lost update would break this chain.
    for pair in rows[1..].windows(2) {
        assert_eq!(
            pair[1].2["HourlyRateChanged"]["previous"],
            pair[0].2["HourlyRateChanged"]["hourly_rate"]
        );
    }
}

#[tokio::test]
async fn search_pages_through_a_fleet_parked_at_one_spot() {
    let app = TestApp::spawn().await;
    let (_, host) = app.user(Role::Host);
    let mut expected = BTreeSet::new();
    // Five cars in one garage (identical coordinates), one closer, one farther.
    for _ in 0..5 {
        expected.insert(id_of(
            &app.register_vehicle(&host, &vehicle_body(37.5700, 126.9800))
                .await,
        ));
    }
    let near = id_of(
        &app.register_vehicle(&host, &vehicle_body(37.5650, 126.9800))
            .await,
    );
    let far = id_of(
        &app.register_vehicle(&host, &vehicle_body(37.5900, 126.9800))
            .await,
    );
    expected.insert(near.clone());
    expected.insert(far.clone());
    let seen: Vec<String> = every_page(&app, "&limit=2", 2)
        .await
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(seen.len(), 7, "every vehicle exactly once: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(seen.first(), Some(&near));
    assert_eq!(seen.last(), Some(&far));
}

#[tokio::test]
async fn search_walks_past_many_nearer_cars_that_do_not_match() {
    let app = TestApp::spawn().await;
    let (_, host) = app.user(Role::Host);
    // Sixty cars in a line going north, ~55 m apart: the nearest fifty cost too much for the
    // search, the ten farthest match. With one result per page the index walk's candidates
    // (4) hold no match: the search goes on through the rest of the radius, and every page
    // after a cursor does the same from there.
    let mut cheap = Vec::new();
    for i in 0..60 {
        let mut body = vehicle_body(37.5650 + 0.0005 * f64::from(i), 126.9800);
        body["hourly_rate"] = json!(if i < 50 { 30_000 } else { 10_000 });
        let id = id_of(&app.register_vehicle(&host, &body).await);
        if i >= 50 {
            cheap.push(id);
        }
    }
    let hits = every_page(&app, "&limit=1&max_price=15000", 1).await;
    assert!(hits.iter().all(|h| h["hourly_rate"] == 10_000), "{hits:?}");
    let seen: Vec<String> = hits.iter().map(id_of).collect();
    assert_eq!(seen, cheap, "the ten matches, nearest first, each once");
}

/// Every page of a search near Seoul City Hall (`extra` adds parameters), following the
/// cursor; each page holds at most `limit` results.
async fn every_page(app: &TestApp, extra: &str, limit: usize) -> Vec<Value> {
    let mut hits = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let params = match &cursor {
            Some(c) => format!("{extra}&cursor={c}"),
            None => extra.to_string(),
        };
        let res = app
            .get(&search_path(37.5640, 126.9800, &params), None)
            .await;
        assert_eq!(res.status(), 200);
        let next = res
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_string());
        let page: Value = res.json().await.unwrap();
        let page = page.as_array().unwrap();
        assert!(page.len() <= limit);
        hits.extend(page.iter().cloned());
        match next {
            Some(n) => cursor = Some(n),
            None => return hits,
        }
    }
    panic!("the search never reached its last page");
}
