//! Accounts and access over HTTP: registration, login, token rotation and reuse detection,
//! logout, profiles, erasure, corporate host profiles, rate limits, idempotent POSTs, CORS, and
//! the auth matrix of every protected route — against real Postgres and Redis.

use carshare_domain::Role;
use carshare_tests::{assert_error, json, vehicle_body, AppOptions, TestApp};
use chrono::DurationRound;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;

fn registration(email: &str, role: &str) -> Value {
    json!({
        "email": email,
        "password": "correct horse battery",
        "name": "김민수",
        "phone": "+82 10-1234-5678",
        "role": role
    })
}

async fn register(app: &TestApp, email: &str, role: &str) -> Value {
    let (status, body) = json(
        app.post("/v1/auth/register", None, &registration(email, role))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

fn token(auth: &Value) -> String {
    auth["access_token"].as_str().unwrap().to_string()
}

fn refresh_token(auth: &Value) -> String {
    auth["refresh_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn registration_signs_the_user_in_and_never_shows_password_material() {
    let app = TestApp::spawn().await;
    let res = app
        .post(
            "/v1/auth/register",
            None,
            &registration("Kim.MinSu@Example.co.kr", "guest"),
        )
        .await;
    assert_eq!(res.status(), 201);
    let text = res.text().await.unwrap();
    assert!(!text.to_lowercase().contains("password"), "{text}");
    assert!(!text.contains("argon2"));
    let auth: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(auth["token_type"], "Bearer");
    assert!(auth["expires_in"].as_u64().unwrap() <= 900);
    let user = &auth["user"];
    assert_eq!(user["email"], "kim.minsu@example.co.kr");
    assert_eq!(user["phone"], "010-1234-5678");
    assert_eq!(user["role"], "guest");
    assert_eq!(user["is_verified"], false);
    // The access token works, and says who the user is.
    let (status, me) = json(app.get("/v1/auth/me", Some(&token(&auth))).await).await;
    assert_eq!(status, 200);
    assert_eq!(me, *user);
    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1::text::uuid")
            .bind(user["id"].as_str().unwrap())
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    // Access tokens live at most 15 minutes.
    let claims = app.keys.verify(&token(&auth)).unwrap();
    assert!(claims.exp - claims.iat <= 900);
}

#[tokio::test]
async fn registration_refusals_name_the_field_and_store_nothing() {
    let app = TestApp::spawn().await;
    register(&app, "taken@example.com", "host").await;
    let with = |field: &str, value: Value| {
        let mut b = registration("new@example.com", "guest");
        b[field] = value;
        b
    };
    let cases = [
        (
            "duplicate in another case",
            registration("TAKEN@Example.COM", "guest"),
            409,
            "ACCOUNT001",
            "email",
        ),
        (
            "short password",
            with("password", json!("short1")),
            422,
            "ACCOUNT002",
            "password",
        ),
        (
            "repeated password",
            with("password", json!("aaaaaaaaaaaa")),
            422,
            "ACCOUNT002",
            "password",
        ),
        (
            "landline",
            with("phone", json!("02-123-4567")),
            422,
            "ACCOUNT002",
            "phone",
        ),
        (
            "foreign phone",
            with("phone", json!("+1 415 555 1234")),
            422,
            "ACCOUNT002",
            "phone",
        ),
        (
            "letters in phone",
            with("phone", json!("010-abcd-5678")),
            422,
            "ACCOUNT002",
            "phone",
        ),
        (
            "self-made admin",
            with("role", json!("admin")),
            422,
            "ACCOUNT002",
            "role",
        ),
        (
            "unknown role",
            with("role", json!("owner")),
            422,
            "ACCOUNT002",
            "role",
        ),
        (
            "bad email",
            with("email", json!("not-an-email")),
            422,
            "ACCOUNT002",
            "email",
        ),
        (
            "blank name",
            with("name", json!("  ")),
            422,
            "ACCOUNT002",
            "name",
        ),
        (
            "missing phone",
            {
                let mut b = registration("new@example.com", "guest");
                b.as_object_mut().unwrap().remove("phone");
                b
            },
            422,
            "REQ002",
            "phone",
        ),
    ];
    for (name, body, status, code, field) in cases {
        let (got, b) = json(app.post("/v1/auth/register", None, &body).await).await;
        assert_eq!(got.as_u16(), status, "{name}: {b}");
        let e = assert_error(&b, code);
        assert_eq!(e["details"][0]["field"], field, "{name}: {b}");
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn login_checks_the_password_without_telling_which_part_was_wrong() {
    let app = TestApp::spawn().await;
    register(&app, "host@example.com", "host").await;
    let (status, auth) = json(
        app.post(
            "/v1/auth/login",
            None,
            &json!({"email": "HOST@example.com", "password": "correct horse battery"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    assert_eq!(auth["user"]["role"], "host");
    let (status, wrong) = json(
        app.post(
            "/v1/auth/login",
            None,
            &json!({"email": "host@example.com", "password": "wrong horse battery"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_error(&wrong, "AUTH006");
    let (status, unknown) = json(
        app.post(
            "/v1/auth/login",
            None,
            &json!({"email": "nobody@example.com", "password": "correct horse battery"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        assert_error(&unknown, "AUTH006")["message"],
        wrong["error"]["message"]
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_session() {
    let app = TestApp::spawn().await;
    let first = register(&app, "guest@example.com", "guest").await;
    let (status, second) = json(
        app.post(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": refresh_token(&first)}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(refresh_token(&second), refresh_token(&first));
    assert_eq!(
        app.get("/v1/auth/me", Some(&token(&second))).await.status(),
        200
    );
    let (status, third) = json(
        app.post(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": refresh_token(&second)}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);

    // The first token again: a reuse. The whole family dies, including the newest tokens.
    let (status, reused) = json(
        app.post(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": refresh_token(&first)}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_error(&reused, "AUTH008");
    let (status, dead) = json(
        app.post(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": refresh_token(&third)}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_error(&dead, "AUTH007");
    let (status, revoked) = json(app.get("/v1/auth/me", Some(&token(&third))).await).await;
    assert_eq!(status, 401);
    assert_error(&revoked, "AUTH004");

    // Another login is another family, untouched.
    let (status, again) = json(
        app.post(
            "/v1/auth/login",
            None,
            &json!({"email": "guest@example.com", "password": "correct horse battery"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.get("/v1/auth/me", Some(&token(&again))).await.status(),
        200
    );
    let (status, junk) = json(
        app.post(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": "not-a-token"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_error(&junk, "AUTH007");
}

#[tokio::test]
async fn logout_revokes_the_access_token_and_the_session() {
    let app = TestApp::spawn().await;
    let auth = register(&app, "guest@example.com", "guest").await;
    let access = token(&auth);
    let res = app.post("/v1/auth/logout", Some(&access), &json!({})).await;
    assert_eq!(res.status(), 204);
    let (status, b) = json(app.get("/v1/auth/me", Some(&access)).await).await;
    assert_eq!(status, 401);
    assert_error(&b, "AUTH004");
    let (status, b) = json(
        app.post(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": refresh_token(&auth)}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_error(&b, "AUTH007");
    let (status, b) = json(app.post("/v1/auth/logout", None, &json!({})).await).await;
    assert_eq!(status, 401);
    assert_error(&b, "AUTH001");
}

#[tokio::test]
async fn the_profile_can_be_read_and_changed() {
    let app = TestApp::spawn().await;
    let auth = register(&app, "guest@example.com", "guest").await;
    let t = token(&auth);
    let (status, me) = json(app.get("/v1/users/me", Some(&t)).await).await;
    assert_eq!(status, 200);
    assert_eq!(me["name"], "김민수");
    let (status, changed) = json(
        app.put("/v1/users/me", Some(&t), &json!({"name": "김민준", "phone": "01098765432", "profile_image_url": "https://cdn.example.com/me.png"}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "김민준");
    assert_eq!(changed["phone"], "010-9876-5432");
    assert_eq!(
        changed["profile_image_url"],
        "https://cdn.example.com/me.png"
    );
    let (_, cleared) = json(
        app.put(
            "/v1/users/me",
            Some(&t),
            &json!({"profile_image_url": null}),
        )
        .await,
    )
    .await;
    assert_eq!(cleared["profile_image_url"], Value::Null);
    for (body, field) in [
        (json!({"phone": "12345"}), "phone"),
        (
            json!({"profile_image_url": "javascript:alert(1)"}),
            "profile_image_url",
        ),
        (json!({}), "body"),
    ] {
        let (status, b) = json(app.put("/v1/users/me", Some(&t), &body).await).await;
        assert_eq!(status, 422, "{b}");
        assert_eq!(assert_error(&b, "ACCOUNT002")["details"][0]["field"], field);
    }
    let (status, b) = json(
        app.put(
            "/v1/users/me",
            Some(&t),
            &json!({"email": "other@example.com"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_error(&b, "REQ002");
}

#[tokio::test]
async fn erasing_an_account_anonymises_it_and_keeps_the_log_valid() {
    let app = TestApp::spawn().await;
    let host = register(&app, "host@example.com", "host").await;
    let t = token(&host);
    let vehicle = app.register_vehicle(&t, &vehicle_body(37.5, 127.0)).await;
    let events_before = app.event_count().await;

    // A host with a listed vehicle must remove it first.
    let (status, b) = json(app.delete("/v1/users/me", Some(&t)).await).await;
    assert_eq!(status, 409);
    assert_error(&b, "ACCOUNT004");
    assert_eq!(
        app.delete(
            &format!("/v1/vehicles/{}", vehicle["id"].as_str().unwrap()),
            Some(&t)
        )
        .await
        .status(),
        204
    );

    assert_eq!(app.delete("/v1/users/me", Some(&t)).await.status(), 204);
    let (status, b) = json(app.get("/v1/users/me", Some(&t)).await).await;
    assert_eq!(status, 401);
    assert_error(&b, "AUTH004");
    let (status, _) = json(
        app.post(
            "/v1/auth/login",
            None,
            &json!({"email": "host@example.com", "password": "correct horse battery"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = json(
        app.post(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": refresh_token(&host)}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 401);
    let row: (String, String, String, Option<String>) = sqlx::query_as(
        "SELECT email, name, phone, profile_image_url FROM users WHERE id = $1::text::uuid",
    )
    .bind(host["user"]["id"].as_str().unwrap())
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert!(row.0.ends_with("@erased.invalid"));
    assert_eq!(row.1, "탈퇴한 사용자");
    assert_eq!(row.2, "");
    // The log is untouched (one more event: the vehicle's removal), and names the host by id only.
    assert_eq!(app.event_count().await, events_before + 1);
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE payload::text ILIKE '%host@example.com%' OR metadata::text ILIKE '%host@example.com%' \
           OR payload::text LIKE '%010-1234-5678%' OR payload::text LIKE '%김민수%'",
    )
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(leaked, 0);
    // The address can be registered again.
    register(&app, "host@example.com", "guest").await;
}

#[tokio::test]
async fn corporate_profiles_are_checked_and_verified_by_admins() {
    let app = TestApp::spawn().await;
    let guest = register(&app, "guest@example.com", "guest").await;
    let host = register(&app, "host@example.com", "host").await;
    let other = register(&app, "other@example.com", "host").await;
    let (_, admin) = app.user(Role::Admin);
    let profile = json!({"company_name": "주식회사 카셰어", "business_registration_number": "1248100998",
                         "verification_documents": ["https://docs.example.com/brn.pdf"]});

    let (status, b) = json(
        app.post(
            "/v1/users/me/corporate-profile",
            Some(&token(&guest)),
            &profile,
        )
        .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_error(&b, "CORP005");
    let (status, b) = json(
        app.get("/v1/users/me/corporate-profile", Some(&token(&host)))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&b, "CORP004");
    let mut bad = profile.clone();
    bad["business_registration_number"] = json!("124-81-00999");
    let (status, b) = json(
        app.post("/v1/users/me/corporate-profile", Some(&token(&host)), &bad)
            .await,
    )
    .await;
    assert_eq!(status, 422);
    let e = assert_error(&b, "CORP003");
    assert_eq!(e["details"][0]["field"], "business_registration_number");
    assert_eq!(e["details"][0]["reason"], "invalid_checksum");
    bad["business_registration_number"] = json!("12481");
    let (status, b) = json(
        app.post("/v1/users/me/corporate-profile", Some(&token(&host)), &bad)
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        assert_error(&b, "CORP003")["details"][0]["reason"],
        "invalid_format"
    );

    let (status, created) = json(
        app.post(
            "/v1/users/me/corporate-profile",
            Some(&token(&host)),
            &profile,
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["business_registration_number"], "124-81-00998");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["is_verified"], false);
    let (status, b) = json(
        app.post(
            "/v1/users/me/corporate-profile",
            Some(&token(&host)),
            &profile,
        )
        .await,
    )
    .await;
    assert_eq!(status, 409);
    assert_error(&b, "CORP001");
    let mut hyphenated = profile.clone();
    hyphenated["business_registration_number"] = json!("124-81-00998");
    let (status, b) = json(
        app.post(
            "/v1/users/me/corporate-profile",
            Some(&token(&other)),
            &hyphenated,
        )
        .await,
    )
    .await;
    assert_eq!(status, 409);
    assert_error(&b, "CORP002");

    // Admins review; others may not.
    let (status, b) = json(
        app.get(
            "/v1/admin/corporate-profiles?status=pending",
            Some(&token(&host)),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_error(&b, "AUTH005");
    let (status, pending) = json(
        app.get("/v1/admin/corporate-profiles?status=pending", Some(&admin))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(pending.as_array().unwrap().len(), 1);
    let id = created["id"].as_str().unwrap();
    let (status, b) = json(
        app.put(
            &format!("/v1/admin/corporate-profiles/{id}/verify"),
            Some(&admin),
            &json!({"verified": false}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(assert_error(&b, "CORP003")["details"][0]["field"], "reason");
    let (status, rejected) = json(
        app.put(
            &format!("/v1/admin/corporate-profiles/{id}/verify"),
            Some(&admin),
            &json!({"verified": false, "reason": "서류 불명확"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["rejection_reason"], "서류 불명확");
    let res = app
        .http
        .put(format!(
            "{}/v1/admin/corporate-profiles/{id}/verify",
            app.base
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let (status, verified) = json(res).await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["status"], "verified");
    assert_eq!(verified["is_verified"], true);
    let (_, mine) = json(
        app.get("/v1/users/me/corporate-profile", Some(&token(&host)))
            .await,
    )
    .await;
    assert_eq!(mine["status"], "verified");
    let (status, b) = json(
        app.put(
            &format!(
                "/v1/admin/corporate-profiles/{}/verify",
                uuid::Uuid::new_v4()
            ),
            Some(&admin),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&b, "CORP004");
    let (status, b) = json(
        app.put(
            &format!("/v1/admin/corporate-profiles/{id}/verify"),
            Some(&admin),
            &json!({"verified": "yes"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422, "{b}");
    assert_error(&b, "REQ002");
}

#[tokio::test]
async fn rate_limits_trip_with_headers_and_reset() {
    let app = TestApp::spawn_with(AppOptions {
        env: vec![
            ("RATE_LIMIT_IP_PER_MINUTE", "6".into()),
            ("RATE_LIMIT_AUTH_PER_MINUTE", "3".into()),
            ("RATE_LIMIT_WINDOW_SECONDS", "4".into()),
        ],
        ..AppOptions::default()
    })
    .await;
    // Start right after a window boundary, so the whole sequence fits in one window.
    let now = chrono::Utc::now();
    let into_window = now.timestamp_millis() % 4_000;
    tokio::time::sleep(Duration::from_millis((4_050 - into_window) as u64)).await;
    let login = json!({"email": "nobody@example.com", "password": "whatever-password"});
    for i in 0..3 {
        let res = app.post("/v1/auth/login", None, &login).await;
        assert_eq!(res.status(), 401, "attempt {i}");
        assert_eq!(res.headers().get("ratelimit-limit").unwrap(), "3");
    }
    let res = app.post("/v1/auth/login", None, &login).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=4).contains(&retry), "{retry}");
    assert_eq!(res.headers().get("ratelimit-remaining").unwrap(), "0");
    assert!(res.headers().get("x-request-id").is_some());
    let body: Value = res.json().await.unwrap();
    assert_error(&body, "RATE001");
    // A forged X-Forwarded-For does not help: the socket's address counts.
    let res = app
        .http
        .post(format!("{}/v1/auth/login", app.base))
        .header("X-Forwarded-For", "203.0.113.77")
        .json(&login)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // The general per-address limit covers every route; health checks are exempt.
    let mut last = StatusCode::OK;
    for _ in 0..4 {
        last = app
            .get("/v1/vehicles/00000000-0000-0000-0000-000000000000", None)
            .await
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.get("/health", None).await.status(), 200);
    // A new window resets the counts.
    tokio::time::sleep(Duration::from_millis(retry * 1_000 + 100)).await;
    assert_eq!(app.post("/v1/auth/login", None, &login).await.status(), 401);
}

#[tokio::test]
async fn trusted_proxies_pass_on_the_client_address_and_users_have_their_own_budget() {
    let app = TestApp::spawn_with(AppOptions {
        env: vec![
            ("RATE_LIMIT_AUTH_PER_MINUTE", "2".into()),
            ("RATE_LIMIT_USER_PER_HOUR", "3".into()),
            ("TRUSTED_PROXIES", "127.0.0.1/32, ::1".into()),
        ],
        ..AppOptions::default()
    })
    .await;
    let login = json!({"email": "nobody@example.com", "password": "whatever-password"});
    let from = |ip: &'static str| {
        let http = app.http.clone();
        let url = format!("{}/v1/auth/login", app.base);
        let login = login.clone();
        async move {
            http.post(url)
                .header("X-Forwarded-For", ip)
                .json(&login)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(from("198.51.100.1").await, 401);
    assert_eq!(from("198.51.100.1").await, 401);
    assert_eq!(from("198.51.100.1").await, 429);
    assert_eq!(
        from("198.51.100.2").await,
        401,
        "another client behind the proxy has its own budget"
    );
    let (_, user) = app.user(Role::Guest);
    for _ in 0..3 {
        assert_eq!(
            app.get("/v1/hosts/me/vehicles", Some(&user)).await.status(),
            403
        );
    }
    let res = app.get("/v1/hosts/me/vehicles", Some(&user)).await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers().get("ratelimit-policy").unwrap(), "3;w=3600");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let app = TestApp::spawn().await;
    let (_, host) = app.user(Role::Host);
    let body = vehicle_body(37.5, 127.0);
    let send = |body: Value, key: &'static str| {
        let http = app.http.clone();
        let url = format!("{}/v1/vehicles", app.base);
        let host = host.clone();
        async move {
            http.post(url)
                .bearer_auth(host)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let first = send(body.clone(), "order-1").await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_location = first.headers().get("location").unwrap().clone();
    let first_body: Value = first.json().await.unwrap();
    let events = app.event_count().await;

    let again = send(body.clone(), "order-1").await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.headers().get("location").unwrap(), &first_location);
    assert_eq!(again.json::<Value>().await.unwrap(), first_body);
    assert_eq!(app.event_count().await, events, "the replay wrote nothing");

    let mut other = body.clone();
    other["hourly_rate"] = json!(99_000);
    let (status, b) = json(send(other, "order-1").await).await;
    assert_eq!(status, 422);
    assert_error(&b, "IDEM001");
    assert_eq!(app.event_count().await, events);

    // A refused request is not remembered: fixing it and retrying with the key runs it.
    let mut invalid = vehicle_body(37.5, 127.0);
    invalid["year"] = json!(1900);
    assert_eq!(send(invalid, "order-2").await.status(), 422);
    assert_eq!(
        send(vehicle_body(37.5, 127.0), "order-2").await.status(),
        201
    );

    // Registration without a token is scoped to the client address.
    let reg = registration("idem@example.com", "guest");
    let r1 = app
        .http
        .post(format!("{}/v1/auth/register", app.base))
        .header("Idempotency-Key", "signup")
        .json(&reg)
        .send()
        .await
        .unwrap();
    let r2 = app
        .http
        .post(format!("{}/v1/auth/register", app.base))
        .header("Idempotency-Key", "signup")
        .json(&reg)
        .send()
        .await
        .unwrap();
    assert_eq!(r1.status(), 201);
    assert_eq!(r2.status(), 201);
    assert_eq!(r2.headers().get("idempotent-replayed").unwrap(), "true");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(users, 1);
    let (status, b) = json(
        app.http
            .post(format!("{}/v1/vehicles", app.base))
            .bearer_auth(&host)
            .header("Idempotency-Key", "x".repeat(300))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert_error(&b, "REQ002");
}

#[tokio::test]
async fn only_allowed_origins_get_cors_headers() {
    let app = TestApp::spawn_with(AppOptions {
        env: vec![(
            "CORS_ALLOWED_ORIGINS",
            "https://app.carshare.example".into(),
        )],
        ..AppOptions::default()
    })
    .await;
    let preflight = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/vehicles", app.base),
        )
        .header("Origin", "https://app.carshare.example")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "https://app.carshare.example"
    );
    let res = app
        .http
        .get(format!("{}/health", app.base))
        .header("Origin", "https://app.carshare.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers().get("access-control-allow-origin").unwrap(),
        "https://app.carshare.example"
    );
    let res = app
        .http
        .get(format!("{}/health", app.base))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn the_demo_seed_creates_usable_accounts_and_vehicles_once() {
    let app = TestApp::spawn().await;
    carshare_api::cli::demo::seed(app.pool().clone(), |_, _| {})
        .await
        .unwrap();
    let events = app.event_count().await;
    assert!(events >= 300);
    carshare_api::cli::demo::seed(app.pool().clone(), |_, _| {})
        .await
        .unwrap();
    assert_eq!(
        app.event_count().await,
        events,
        "a second seed adds nothing"
    );
    let (status, auth) = json(
        app.post("/v1/auth/login", None, &json!({"email": "admin@carshare.demo", "password": carshare_api::cli::demo::DEMO_PASSWORD})).await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(auth["user"]["role"], "admin");
    let (_, host) = json(
        app.post("/v1/auth/login", None, &json!({"email": "host.busan@carshare.demo", "password": carshare_api::cli::demo::DEMO_PASSWORD})).await,
    )
    .await;
    let (_, profile) = json(
        app.get("/v1/users/me/corporate-profile", Some(&token(&host)))
            .await,
    )
    .await;
    assert_eq!(profile["status"], "verified");
    // The vehicles are searchable near Seoul City Hall.
    let start = (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%dT01:00:00Z");
    let end = (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%dT05:00:00Z");
    let pool = app.pool().clone();
    assert!(
        carshare_tests::eventually(Duration::from_secs(15), || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM read.vehicles")
                    .fetch_one(&pool)
                    .await
                    .unwrap()
                    >= 300
            }
        })
        .await
    );
    let (status, found) = json(
        app.get(&format!("/v1/vehicles?lat=37.5663&lng=126.9779&radius=5&start_datetime={start}&end_datetime={end}"), None).await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(found.as_array().unwrap().len(), 20);
}

/// Who sends a request in the auth matrix.
#[derive(Clone, Copy, Debug)]
enum Who {
    Guest,
    OtherGuest,
    Host,
    OtherHost,
}

/// One refusal to check: `who` sends `method path` (with `{…}` filled from the fixture) and
/// gets `status` with `code`; or the cell does not apply, and why.
enum Cell {
    Refused {
        who: Who,
        path: &'static str,
        status: u16,
        code: &'static str,
    },
    Open(&'static str),
}

use Cell::{Open, Refused};

/// Every protected route: the wrong role, and someone else's resource.
fn access_rows() -> Vec<(&'static str, Cell, Cell)> {
    const ANY: &str = "every signed-in user may call it";
    const OWN: &str = "acts on the caller's own account or inbox only";
    vec![
        ("GET /v1/auth/me", Open(ANY), Open(OWN)),
        ("POST /v1/auth/logout", Open(ANY), Open(OWN)),
        ("GET /v1/users/me", Open(ANY), Open(OWN)),
        ("PUT /v1/users/me", Open(ANY), Open(OWN)),
        ("DELETE /v1/users/me", Open(ANY), Open(OWN)),
        (
            "POST /v1/users/me/corporate-profile",
            Refused {
                who: Who::Guest,
                path: "/v1/users/me/corporate-profile",
                status: 403,
                code: "CORP005",
            },
            Open(OWN),
        ),
        (
            "GET /v1/users/me/corporate-profile",
            Refused {
                who: Who::Guest,
                path: "/v1/users/me/corporate-profile",
                status: 403,
                code: "CORP005",
            },
            Open(OWN),
        ),
        (
            "GET /v1/users/{id}/reviews",
            Open(ANY),
            Open("reviews are public to signed-in users"),
        ),
        (
            "POST /v1/vehicles",
            Refused {
                who: Who::Guest,
                path: "/v1/vehicles",
                status: 403,
                code: "VEHICLE005",
            },
            Open("creates a new vehicle"),
        ),
        (
            "PUT /v1/vehicles/{id}",
            Refused {
                who: Who::Guest,
                path: "/v1/vehicles/{vehicle}",
                status: 403,
                code: "VEHICLE004",
            },
            Refused {
                who: Who::OtherHost,
                path: "/v1/vehicles/{vehicle}",
                status: 403,
                code: "VEHICLE004",
            },
        ),
        (
            "DELETE /v1/vehicles/{id}",
            Refused {
                who: Who::Guest,
                path: "/v1/vehicles/{vehicle}",
                status: 403,
                code: "VEHICLE004",
            },
            Refused {
                who: Who::OtherHost,
                path: "/v1/vehicles/{vehicle}",
                status: 403,
                code: "VEHICLE004",
            },
        ),
        (
            "POST /v1/vehicles/{id}/availability",
            Refused {
                who: Who::Guest,
                path: "/v1/vehicles/{vehicle}/availability",
                status: 403,
                code: "VEHICLE004",
            },
            Refused {
                who: Who::OtherHost,
                path: "/v1/vehicles/{vehicle}/availability",
                status: 403,
                code: "VEHICLE004",
            },
        ),
        (
            "POST /v1/vehicles/{id}/images",
            Refused {
                who: Who::Guest,
                path: "/v1/vehicles/{vehicle}/images",
                status: 403,
                code: "VEHICLE004",
            },
            Refused {
                who: Who::OtherHost,
                path: "/v1/vehicles/{vehicle}/images",
                status: 403,
                code: "VEHICLE004",
            },
        ),
        (
            "GET /v1/hosts/me/vehicles",
            Refused {
                who: Who::Guest,
                path: "/v1/hosts/me/vehicles",
                status: 403,
                code: "AUTH005",
            },
            Open(OWN),
        ),
        (
            "POST /v1/bookings",
            Refused {
                who: Who::Host,
                path: "/v1/bookings",
                status: 403,
                code: "BOOKING006",
            },
            Open("creates a new booking"),
        ),
        (
            "GET /v1/bookings",
            Open(ANY),
            Open("lists the caller's own bookings"),
        ),
        (
            "GET /v1/bookings/{id}",
            Open("guest, host or admin of the booking"),
            Refused {
                who: Who::OtherGuest,
                path: "/v1/bookings/{booking}",
                status: 404,
                code: "BOOKING001",
            },
        ),
        (
            "GET /v1/bookings/{id}/timeline",
            Open("guest, host or admin of the booking"),
            Refused {
                who: Who::OtherHost,
                path: "/v1/bookings/{booking}/timeline",
                status: 404,
                code: "BOOKING001",
            },
        ),
        (
            "PUT /v1/bookings/{id}/approve",
            Refused {
                who: Who::Guest,
                path: "/v1/bookings/{booking}/approve",
                status: 403,
                code: "BOOKING005",
            },
            Refused {
                who: Who::OtherHost,
                path: "/v1/bookings/{booking}/approve",
                status: 403,
                code: "BOOKING005",
            },
        ),
        (
            "PUT /v1/bookings/{id}/reject",
            Refused {
                who: Who::Guest,
                path: "/v1/bookings/{booking}/reject",
                status: 403,
                code: "BOOKING005",
            },
            Refused {
                who: Who::OtherHost,
                path: "/v1/bookings/{booking}/reject",
                status: 403,
                code: "BOOKING005",
            },
        ),
        (
            "PUT /v1/bookings/{id}/cancel",
            Open("guest, host or admin of the booking"),
            Refused {
                who: Who::OtherGuest,
                path: "/v1/bookings/{booking}/cancel",
                status: 403,
                code: "BOOKING005",
            },
        ),
        (
            "POST /v1/bookings/{id}/start",
            Refused {
                who: Who::Host,
                path: "/v1/bookings/{booking}/start",
                status: 403,
                code: "BOOKING005",
            },
            Refused {
                who: Who::OtherGuest,
                path: "/v1/bookings/{booking}/start",
                status: 403,
                code: "BOOKING005",
            },
        ),
        (
            "POST /v1/bookings/{id}/complete",
            Open("guest or host of the booking"),
            Refused {
                who: Who::OtherGuest,
                path: "/v1/bookings/{booking}/complete",
                status: 403,
                code: "BOOKING005",
            },
        ),
        (
            "POST /v1/bookings/{id}/photos",
            Open("guest or host of the booking"),
            Refused {
                who: Who::OtherGuest,
                path: "/v1/bookings/{booking}/photos",
                status: 403,
                code: "BOOKING005",
            },
        ),
        (
            "POST /v1/bookings/{id}/reviews",
            Open("guest or host of the booking"),
            Refused {
                who: Who::OtherHost,
                path: "/v1/bookings/{booking}/reviews",
                status: 403,
                code: "BOOKING005",
            },
        ),
        (
            "GET /v1/ws",
            Open(ANY),
            Open("streams the caller's own updates"),
        ),
        (
            "POST /v1/payments/process",
            Refused {
                who: Who::Host,
                path: "/v1/payments/process",
                status: 403,
                code: "PAYMENT007",
            },
            Refused {
                who: Who::OtherGuest,
                path: "/v1/payments/process",
                status: 403,
                code: "PAYMENT007",
            },
        ),
        (
            "GET /v1/payments/history",
            Open(ANY),
            Open("lists the caller's own payments"),
        ),
        (
            "POST /v1/payments/settle",
            Refused {
                who: Who::Host,
                path: "/v1/payments/settle",
                status: 403,
                code: "AUTH005",
            },
            Open("admins settle every host"),
        ),
        (
            "GET /v1/payments/settlements",
            Refused {
                who: Who::Guest,
                path: "/v1/payments/settlements",
                status: 403,
                code: "AUTH005",
            },
            Open("hosts see only their own statements"),
        ),
        ("GET /v1/notifications", Open(ANY), Open(OWN)),
        (
            "PUT /v1/notifications/{id}/read",
            Open(ANY),
            Refused {
                who: Who::OtherGuest,
                path: "/v1/notifications/{notification}/read",
                status: 404,
                code: "NOTIFICATION001",
            },
        ),
        ("PUT /v1/notifications/read-all", Open(ANY), Open(OWN)),
        (
            "POST /v1/notifications/send",
            Refused {
                who: Who::Host,
                path: "/v1/notifications/send",
                status: 403,
                code: "AUTH005",
            },
            Open("admins address anyone"),
        ),
        ("POST /v1/notifications/devices", Open(ANY), Open(OWN)),
        (
            "DELETE /v1/notifications/devices/{token}",
            Open(ANY),
            Refused {
                who: Who::OtherGuest,
                path: "/v1/notifications/devices/{device}",
                status: 404,
                code: "NOTIFICATION004",
            },
        ),
        (
            "GET /v1/admin/projections",
            Refused {
                who: Who::Host,
                path: "/v1/admin/projections",
                status: 403,
                code: "AUTH005",
            },
            Open("admins only"),
        ),
        (
            "POST /v1/admin/projections/{name}/rebuild",
            Refused {
                who: Who::Guest,
                path: "/v1/admin/projections/bookings/rebuild",
                status: 403,
                code: "AUTH005",
            },
            Open("admins only"),
        ),
        (
            "GET /v1/admin/bookings",
            Refused {
                who: Who::Host,
                path: "/v1/admin/bookings?q=x",
                status: 403,
                code: "AUTH005",
            },
            Open("admins only"),
        ),
        (
            "GET /v1/admin/corporate-profiles",
            Refused {
                who: Who::Host,
                path: "/v1/admin/corporate-profiles",
                status: 403,
                code: "AUTH005",
            },
            Open("admins only"),
        ),
        (
            "PUT /v1/admin/corporate-profiles/{id}/verify",
            Refused {
                who: Who::Host,
                path: "/v1/admin/corporate-profiles/{profile}/verify",
                status: 403,
                code: "AUTH005",
            },
            Open("admins only"),
        ),
        (
            "GET /v1/admin/audit/settlements",
            Refused {
                who: Who::Host,
                path: "/v1/admin/audit/settlements",
                status: 403,
                code: "AUTH005",
            },
            Open("admins only"),
        ),
    ]
}

/// A well-formed body for the route, so that only the caller's right to call it is in question.
fn valid_body(method: &str, path: &str, fixture: Option<(&str, &str)>) -> Value {
    let vehicle = fixture.map(|f| f.0);
    let booking = fixture.map_or_else(|| Uuid::nil().to_string(), |f| f.1.to_string());
    let start = (chrono::Utc::now() + chrono::Duration::days(5))
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap();
    let path = path.split('?').next().unwrap_or(path);
    match (method, path) {
        ("POST", "/v1/vehicles") => vehicle_body(37.5665, 126.9780),
        ("PUT", p) if p.starts_with("/v1/vehicles/") => json!({"hourly_rate": 15_000}),
        ("POST", p) if p.ends_with("/availability") => json!({"rules": [
            {"day_of_week": 1, "start_time": "09:00", "end_time": "18:00", "is_recurring": true}]}),
        ("POST", "/v1/bookings") => {
            json!({"vehicle_id": vehicle.map_or_else(|| Uuid::new_v4().to_string(), str::to_string),
            "start_datetime": start.to_rfc3339(),
            "end_datetime": (start + chrono::Duration::hours(2)).to_rfc3339()})
        }
        ("POST", "/v1/users/me/corporate-profile") => json!({"company_name": "주식회사 테스트",
            "business_registration_number": "1248100998"}),
        ("POST", "/v1/payments/process") => json!({"booking_id": booking,
            "payment_key": "pk", "order_id": "bk-x", "amount": 1}),
        ("POST", "/v1/payments/settle") => json!({"cutoff": chrono::Utc::now().to_rfc3339()}),
        ("POST", "/v1/notifications/send") => json!({"role": "host", "title": "t", "body": "b"}),
        ("POST", "/v1/notifications/devices") => json!({"token": "t", "platform": "ios"}),
        ("POST", p) if p.ends_with("/reviews") => json!({"rating": 5}),
        ("PUT", p) if p.ends_with("/verify") => json!({"verified": true}),
        _ => json!({}),
    }
}

/// Sends `method path` with `token` and a body fitting the route.
async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    fixture: Option<(&str, &str)>,
) -> (StatusCode, Value) {
    let url = format!("{}{path}", app.base);
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.http.request(method.clone(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if path.ends_with("/photos") || path.ends_with("/images") {
        let form = reqwest::multipart::Form::new();
        let form = if path.ends_with("/photos") {
            form.text("kind", "pickup")
        } else {
            form
        };
        let form = form.part(
            "files",
            reqwest::multipart::Part::bytes(vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10])
                .file_name("a.jpg")
                .mime_str("image/jpeg")
                .unwrap(),
        );
        req = req.multipart(form);
    } else if method == reqwest::Method::POST || method == reqwest::Method::PUT {
        req = req.json(&valid_body(method.as_str(), path, fixture));
    }
    let res = req.send().await.unwrap();
    json(res).await
}

#[tokio::test]
async fn every_protected_route_refuses_bad_credentials_wrong_roles_and_strangers() {
    let app = TestApp::spawn().await;
    // The protected routes, from the served OpenAPI document.
    let (_, doc) = json(app.get("/v1/openapi.json", None).await).await;
    let mut protected: BTreeSet<String> = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let bearer = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if bearer {
                protected.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let rows = access_rows();
    let listed: BTreeSet<String> = rows.iter().map(|(r, _, _)| r.to_string()).collect();
    assert_eq!(
        protected, listed,
        "every protected route needs a row in access_rows (and every row a route)"
    );

    // Bad credentials, on every protected route: 401 with the right code, before anything else.
    let revoked_token = token(&register(&app, "revoked@example.com", "guest").await);
    let (status, _) = json(
        app.post("/v1/auth/logout", Some(&revoked_token), &json!({}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let foreign = carshare_api::auth::TokenKeys::new(
        &secrecy::SecretString::from("another-secret-another-secret-0123456789"),
        Duration::from_secs(900),
    )
    .issue(Uuid::new_v4(), Role::Admin)
    .unwrap()
    .0;
    let expired = app.expired_token(Role::Admin);
    let credentials: [(&str, Option<&str>, &str); 5] = [
        ("no token", None, "AUTH001"),
        ("malformed", Some("not-a-jwt"), "AUTH002"),
        ("expired", Some(&expired), "AUTH003"),
        ("signed with another key", Some(&foreign), "AUTH002"),
        ("revoked by logout", Some(&revoked_token), "AUTH004"),
    ];
    for route in &protected {
        let (method, template) = route.split_once(' ').unwrap();
        let path = template
            .replace("{id}", &Uuid::new_v4().to_string())
            .replace("{token}", "device-token")
            .replace("{name}", "bookings");
        for (what, bearer, code) in &credentials {
            let (status, body) = call(&app, method, &path, *bearer, None).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{route} with {what}: {body}"
            );
            assert_error(&body, code);
        }
    }

    // The fixture: host A's car, booked (and approved) by guest G; host B and guest S are
    // strangers to it.
    let host = register(&app, "matrix-host@example.com", "host").await;
    let other_host = register(&app, "matrix-other-host@example.com", "host").await;
    let guest = register(&app, "matrix-guest@example.com", "guest").await;
    let other_guest = register(&app, "matrix-other-guest@example.com", "guest").await;
    let vehicle = app
        .register_vehicle(&token(&host), &vehicle_body(37.5665, 126.9780))
        .await;
    let vehicle = vehicle["id"].as_str().unwrap().to_string();
    let start = (chrono::Utc::now() + chrono::Duration::days(3))
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap();
    let (status, booking) = json(
        app.post(
            "/v1/bookings",
            Some(&token(&guest)),
            &json!({"vehicle_id": vehicle, "start_datetime": start.to_rfc3339(),
                    "end_datetime": (start + chrono::Duration::hours(2)).to_rfc3339()}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    let booking = booking["id"].as_str().unwrap().to_string();
    let (status, _) = json(
        app.put(
            &format!("/v1/bookings/{booking}/approve"),
            Some(&token(&host)),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "approved: a payment is due");
    let (status, _) = json(
        app.post(
            "/v1/users/me/corporate-profile",
            Some(&token(&host)),
            &json!({"company_name": "주식회사 매트릭스", "business_registration_number": "1248100998"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let profile: Uuid = sqlx::query_scalar("SELECT id FROM corporate_profiles")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let (status, _) = json(
        app.post(
            "/v1/notifications/devices",
            Some(&token(&guest)),
            &json!({"token": "guest-device", "platform": "android"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let notification = {
        let found = carshare_tests::eventually(Duration::from_secs(5), || async {
            let (_, inbox) = json(app.get("/v1/notifications", Some(&token(&host))).await).await;
            inbox.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
        assert!(found, "the host's booking request notification");
        let (_, inbox) = json(app.get("/v1/notifications", Some(&token(&host))).await).await;
        inbox[0]["id"].as_str().unwrap().to_string()
    };
    let fill = |path: &str| {
        path.replace("{vehicle}", &vehicle)
            .replace("{booking}", &booking)
            .replace("{profile}", &profile.to_string())
            .replace("{notification}", &notification)
            .replace("{device}", "guest-device")
    };
    let tokens = |who: Who| match who {
        Who::Guest => token(&guest),
        Who::OtherGuest => token(&other_guest),
        Who::Host => token(&host),
        Who::OtherHost => token(&other_host),
    };
    let events_before = app.event_count().await;
    for (route, wrong_role, not_yours) in rows {
        let (method, _) = route.split_once(' ').unwrap();
        for (what, cell) in [("wrong role", wrong_role), ("someone else's", not_yours)] {
            match cell {
                Open(why) => assert!(!why.is_empty()),
                Refused {
                    who,
                    path,
                    status,
                    code,
                } => {
                    let (got, body) = call(
                        &app,
                        method,
                        &fill(path),
                        Some(&tokens(who)),
                        Some((&vehicle, &booking)),
                    )
                    .await;
                    assert_eq!(got.as_u16(), status, "{route}, {what} ({who:?}): {body}");
                    assert_error(&body, code);
                }
            }
        }
    }
    assert_eq!(
        app.event_count().await,
        events_before,
        "no refusal wrote anything"
    );
}

#[tokio::test]
async fn rate_limits_hold_across_two_instances_sharing_redis() {
    let limits = vec![
        ("RATE_LIMIT_IP_PER_MINUTE", "6".to_string()),
        ("RATE_LIMIT_WINDOW_SECONDS", "4".to_string()),
    ];
    let a = TestApp::spawn_with(AppOptions {
        env: limits.clone(),
        ..AppOptions::default()
    })
    .await;
    let mut env = limits;
    env.push(("REDIS_KEY_PREFIX", a.redis_prefix.clone()));
    let b = TestApp::spawn_with(AppOptions {
        pool: Some(a.pool().clone()),
        env,
        ..AppOptions::default()
    })
    .await;
    // Start right after a window boundary, so the sequence fits in one window.
    let into_window = chrono::Utc::now().timestamp_millis() % 4_000;
    tokio::time::sleep(Duration::from_millis((4_050 - into_window) as u64)).await;
    let path = "/v1/vehicles/00000000-0000-0000-0000-000000000000";
    for (i, app) in [&a, &b, &a, &b, &a, &b].into_iter().enumerate() {
        let status = app.get(path, None).await.status();
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "request {i} is within the budget"
        );
    }
    // The address spent its 6 requests across both instances: both refuse the 7th.
    for app in [&a, &b] {
        let res = app.get(path, None).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()["ratelimit-remaining"], "0");
    }
}

#[tokio::test]
async fn hostile_input_is_refused_cleanly_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let post_raw = |body: Vec<u8>| {
        let http = app.http.clone();
        let url = format!("{}/v1/auth/register", app.base);
        async move {
            let res = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            json(res).await
        }
    };
    let users = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users")
            .fetch_one(app.pool())
            .await
            .unwrap()
    };
    // Deeply nested JSON, invalid UTF-8, a body over the limit, a body that is only whitespace.
    let nested = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)).into_bytes();
    let mut invalid_utf8 = br#"{"email": "a@example.com", "name": ""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xC3, 0x28, 0xFF]);
    invalid_utf8.extend_from_slice(
        br#"", "password": "correct horse battery", "phone": "010-1234-5678", "role": "guest"}"#,
    );
    let mut huge = br#"{"email": "a@example.com", "name": ""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 70_000));
    huge.extend_from_slice(br#""}"#);
    let nested_objects =
        format!("{}1{}", "{\"name\":".repeat(5_000), "}".repeat(5_000)).into_bytes();
    for (what, body, statuses, codes) in [
        (
            "arrays nested 20,000 deep",
            nested,
            [422, 422],
            ["REQ002", "REQ002"],
        ),
        (
            "objects nested 5,000 deep",
            nested_objects,
            [400, 422],
            ["REQ001", "REQ002"],
        ),
        (
            "invalid UTF-8",
            invalid_utf8,
            [400, 400],
            ["REQ001", "REQ001"],
        ),
        ("over 64 KiB", huge, [413, 413], ["REQ003", "REQ003"]),
        ("blank", b"   ".to_vec(), [400, 400], ["REQ001", "REQ001"]),
    ] {
        let (got, body) = post_raw(body).await;
        assert!(statuses.contains(&got.as_u16()), "{what}: {got} {body}");
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(codes.contains(&code), "{what}: {body}");
    }
    assert_eq!(users().await, 0, "nothing was registered");

    // SQL and script injection strings in every text field are data: stored and returned
    // exactly, never interpreted.
    let injections = [
        "Robert'); DROP TABLE users;--",
        "<script>alert(document.cookie)</script>",
        "' OR '1'='1",
        "${jndi:ldap://example.com/a}",
        "\u{202e}evil\u{0000}",
    ];
    for (i, text) in injections.iter().enumerate() {
        let (status, body) = json(
            app.post(
                "/v1/auth/register",
                None,
                &json!({"email": format!("inject{i}@example.com"), "password": "correct horse battery",
                        "name": text, "phone": "010-1234-5678", "role": "host"}),
            )
            .await,
        )
        .await;
        if text.contains('\u{0000}') {
            // NUL cannot be stored in Postgres text: refused as invalid, not a 500.
            assert!(status.is_client_error(), "{text:?}: {status} {body}");
            continue;
        }
        assert_eq!(status, StatusCode::CREATED, "{text:?}: {body}");
        assert_eq!(body["user"]["name"], *text);
        let host = token(&body);
        let mut vehicle = vehicle_body(37.5665, 126.9780);
        vehicle["description"] = json!(text);
        vehicle["model"] = json!(format!("모델 {text}").chars().take(50).collect::<String>());
        let (status, created) = json(app.post("/v1/vehicles", Some(&host), &vehicle).await).await;
        assert_eq!(status, StatusCode::CREATED, "{text:?}: {created}");
        assert_eq!(created["description"], *text);
        // Search text with the same strings is a plain substring match.
        let res = app
            .http
            .get(format!("{}/v1/vehicles", app.base))
            .query(&[
                ("lat", "37.5665"),
                ("lng", "126.9780"),
                ("q", text),
                (
                    "start_datetime",
                    &(chrono::Utc::now() + chrono::Duration::days(2))
                        .duration_trunc(chrono::Duration::hours(1))
                        .unwrap()
                        .to_rfc3339(),
                ),
                (
                    "end_datetime",
                    &(chrono::Utc::now() + chrono::Duration::days(2) + chrono::Duration::hours(3))
                        .duration_trunc(chrono::Duration::hours(1))
                        .unwrap()
                        .to_rfc3339(),
                ),
            ])
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success() || res.status().is_client_error(),
            "{text:?}"
        );
    }
    assert_eq!(users().await, 4, "the users table is intact");
    // NUL in a query parameter or a path segment: refused, never a database error.
    let res = app
        .http
        .get(format!("{}/v1/vehicles", app.base))
        .query(&[("lat", "37.5"), ("lng", "127.0"), ("q", "a\0b")])
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "REQ006");
    let (_, someone) = app.user(Role::Guest);
    let (status, body) = json(
        app.delete("/v1/notifications/devices/a%00b", Some(&someone))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "NOTIFICATION004");

    // Path traversal in upload names: the name is ignored, the key is generated.
    let host = token(&register(&app, "uploader@example.com", "host").await);
    let vehicle = app
        .register_vehicle(&host, &vehicle_body(37.5665, 126.9780))
        .await;
    let mut jpeg = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0,
    ];
    jpeg.resize(2_048, 0);
    for name in [
        "../../../../tmp/carshare-evil.jpg",
        "..\\..\\evil.jpg",
        "/etc/passwd",
    ] {
        let form = reqwest::multipart::Form::new().part(
            "files",
            reqwest::multipart::Part::bytes(jpeg.clone())
                .file_name(name.to_string())
                .mime_str("image/jpeg")
                .unwrap(),
        );
        let res = app
            .http
            .post(format!(
                "{}/v1/vehicles/{}/images",
                app.base,
                vehicle["id"].as_str().unwrap()
            ))
            .bearer_auth(&host)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let (status, body) = json(res).await;
        assert!(status.is_success(), "{name}: {body}");
        let images = body["images"].as_array().unwrap();
        let key = images.last().unwrap().as_str().unwrap();
        assert!(
            !key.contains("..") && !key.contains("evil") && !key.contains("passwd"),
            "{key}"
        );
    }
    assert!(!std::path::Path::new("/tmp/carshare-evil.jpg").exists());

    // A documented path with an undocumented method: 405 with the methods it does allow.
    let res = app
        .http
        .request(
            reqwest::Method::PATCH,
            format!("{}/v1/vehicles/{}", app.base, Uuid::new_v4()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "DELETE, GET, PUT");
    let (_, body) = json(res).await;
    assert_error(&body, "REQ008");
    let (status, body) = json(app.get("/v1/nowhere/at/all", None).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "REQ007");
}
