//! The operations console in a real browser: the service runs on a fresh database, is seeded
//! through the API (a trip paid, returned and settled; a pending corporate profile; a settlement
//! row corrupted; an event no projection can read), and `tests/browser/console.test.mjs` drives
//! Debian's Chromium through every page with playwright-core. Screenshots land in
//! `tests/artifacts/console/`.

use carshare_commands::accounts::{AccountService, NewAccount};
use carshare_commands::SystemClock;
use carshare_domain::{Role, SEOUL};
use carshare_tests::{eventually, json, vehicle_body, AppOptions, TestApp};
use chrono::{DateTime, Duration, DurationRound, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const ADMIN_EMAIL: &str = "ops@example.com";
const ADMIN_PASSWORD: &str = "console admin passphrase";
const PASSWORD: &str = "correct horse battery";
const COMPANY: &str = "주식회사 콘솔모빌리티";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

async fn register(app: &TestApp, email: &str, role: &str) -> (Uuid, String) {
    let (status, body) = json(
        app.post(
            "/v1/auth/register",
            None,
            &json!({"email": email, "password": PASSWORD, "name": "박지훈",
                    "phone": "010-3333-4444", "role": role}),
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

async fn ok(res: reqwest::Response) -> Value {
    let (status, body) = json(res).await;
    assert!(status.is_success(), "{status}: {body}");
    body
}

#[tokio::test]
async fn support_finance_and_admins_use_the_console_in_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium not found at {chromium}: scripts/test.sh installs Debian's `chromium` package"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: scripts/test.sh runs `npm ci` in tests/browser"
    );
    let app = TestApp::spawn_with(AppOptions {
        toss: true,
        ..AppOptions::default()
    })
    .await;
    AccountService::new(
        app.pool().clone(),
        Arc::new(SystemClock),
        Duration::days(14),
    )
    .create_admin(NewAccount {
        email: ADMIN_EMAIL.into(),
        password: ADMIN_PASSWORD.into(),
        name: "운영자".into(),
        phone: "010-1111-2222".into(),
        role: Role::Admin,
    })
    .await
    .expect("admin account");
    let (host_id, host) = register(&app, "console-host@example.com", "host").await;
    let (_, guest) = register(&app, "console-guest@example.com", "guest").await;
    let (_, admin) = app.user(Role::Admin);
    ok(app
        .post(
            "/v1/users/me/corporate-profile",
            Some(&host),
            &json!({"company_name": COMPANY, "business_registration_number": "1248100998"}),
        )
        .await)
    .await;

    // A trip: requested, approved, paid (Toss stub), picked up, returned, settled.
    let vehicle = app
        .register_vehicle(&host, &vehicle_body(37.5665, 126.9780))
        .await;
    let plate = vehicle["license_plate"].as_str().unwrap().to_string();
    let start = (Utc::now() + Duration::minutes(10))
        .duration_trunc(Duration::minutes(10))
        .unwrap();
    let end = start + Duration::minutes(90);
    let booking = ok(app
        .post(
            "/v1/bookings",
            Some(&guest),
            &json!({"vehicle_id": vehicle["id"], "start_datetime": start.to_rfc3339(),
                    "end_datetime": end.to_rfc3339()}),
        )
        .await)
    .await;
    let id = booking["id"].as_str().unwrap().to_string();
    let approved = ok(app
        .put(
            &format!("/v1/bookings/{id}/approve"),
            Some(&host),
            &json!({}),
        )
        .await)
    .await;
    let order_id = approved["payment"]["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    // A whole second between the approval and what follows, so an instant on the console's
    // one-second grid lies between them.
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    Mock::given(method("POST"))
        .and(path("/v1/payments/confirm"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "paymentKey": "pk_console", "orderId": order_id, "status": "DONE", "method": "카드",
            "totalAmount": 18_000, "balanceAmount": 18_000,
            "approvedAt": Utc::now().to_rfc3339(), "requestedAt": Utc::now().to_rfc3339()
        })))
        .mount(app.toss.as_ref().unwrap())
        .await;
    ok(app
        .post(
            "/v1/payments/process",
            Some(&guest),
            &json!({"booking_id": id, "payment_key": "pk_console", "order_id": order_id,
                    "amount": 18_000}),
        )
        .await)
    .await;
    for step in ["start", "complete"] {
        ok(app
            .post(
                &format!("/v1/bookings/{id}/{step}"),
                Some(&guest),
                &json!({}),
            )
            .await)
        .await;
    }
    let settled = ok(app
        .post(
            "/v1/payments/settle",
            Some(&admin),
            &json!({"cutoff": (end + Duration::hours(1)).to_rfc3339()}),
        )
        .await)
    .await;
    assert_eq!(settled.as_array().map(Vec::len), Some(1), "{settled}");
    // The state "as of" the first whole second after the approval, in Seoul wall-clock time.
    let timeline = ok(app
        .get(&format!("/v1/bookings/{id}/timeline"), Some(&admin))
        .await)
    .await;
    let approved_at: DateTime<Utc> = timeline
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "BookingApproved")
        .and_then(|e| e["recorded_at"].as_str())
        .unwrap()
        .parse()
        .unwrap();
    let as_of = (approved_at.duration_trunc(Duration::seconds(1)).unwrap() + Duration::seconds(1))
        .with_timezone(&SEOUL);
    // A `datetime-local` input writes a whole minute without its seconds.
    let as_of = if chrono::Timelike::second(&as_of) == 0 {
        as_of.format("%Y-%m-%dT%H:%M").to_string()
    } else {
        as_of.format("%Y-%m-%dT%H:%M:%S").to_string()
    };

    // Finance's planted discrepancy, and an event no projection can read.
    let settled_in_read_model = eventually(std::time::Duration::from_secs(5), || async {
        sqlx::query("UPDATE read.settlements SET host_amount = host_amount + 1000")
            .execute(app.pool())
            .await
            .unwrap()
            .rows_affected()
            == 1
    })
    .await;
    assert!(settled_in_read_model);
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('Vehicle', $1, 1, 'VehicleRegistered', '1.0', \
         '{\"VehicleRegistered\": {\"unreadable\": true}}', '{}')",
    )
    .bind(Uuid::new_v4().to_string())
    .execute(app.pool())
    .await
    .unwrap();
    let dead_lettered = eventually(std::time::Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM projection_dead_letters WHERE projection = 'vehicles'",
        )
        .fetch_one(app.pool())
        .await
        .unwrap()
            == 1
    })
    .await;
    assert!(dead_lettered);

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts/console");
    let vars: Vec<(&str, String)> = vec![
        ("CONSOLE_BASE_URL", app.base.clone()),
        ("SCREENSHOT_DIR", shots.display().to_string()),
        ("CHROMIUM", chromium),
        ("ADMIN_EMAIL", ADMIN_EMAIL.into()),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
        ("GUEST_EMAIL", "console-guest@example.com".into()),
        ("GUEST_PASSWORD", PASSWORD.into()),
        ("BOOKING_ID", id.clone()),
        ("PLATE", plate),
        ("AS_OF_SEOUL", as_of),
        ("HOST_ID", host_id.to_string()),
        ("COMPANY_NAME", COMPANY.into()),
        ("DEAD_EVENT_TYPE", "VehicleRegistered".into()),
    ];
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .args(["--test", "--test-reporter=spec", "console.test.mjs"])
            .current_dir(browser_dir())
            .envs(vars)
            .output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
    for name in [
        "01-sign-in-refused",
        "02-booking-timeline",
        "03-settlement-audit",
        "04-corporate-hosts",
        "05-pipeline",
        "06-phone-width",
    ] {
        assert!(shots.join(format!("{name}.png")).exists(), "{name}.png");
    }

    // What the clicks did, seen from the database.
    let verified: String =
        sqlx::query_scalar("SELECT status FROM corporate_profiles WHERE user_id = $1")
            .bind(host_id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(verified, "verified");
    let rebuilt = eventually(std::time::Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM projection_rebuilds WHERE projection = 'reviews' \
             AND status = 'finished'",
        )
        .fetch_one(app.pool())
        .await
        .unwrap()
            == 1
    })
    .await;
    assert!(rebuilt, "the rebuild started from the console finished");
    // Other roles get nothing from the console's endpoints.
    for path in ["/v1/admin/bookings?q=x", "/v1/admin/projections"] {
        let (status, _) = json(app.get(path, Some(&guest)).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let (status, _) = json(
        app.post(
            "/v1/admin/projections/reviews/rebuild",
            Some(&host),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = json(
        app.post(
            "/v1/admin/projections/nope/rebuild",
            Some(&admin),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}
