//! Bookings end to end: the lifecycle over HTTP, every refusal's code, search honouring holds,
//! the write-side guarantee against double bookings under concurrency, and expiry with a
//! controllable clock.

use carshare_commands::bookings::{BookingService, ExpirySweeper, RequestBooking};
use carshare_commands::ManualClock;
use carshare_domain::booking::{BookingPolicy, BookingStatus};
use carshare_domain::{Actor, Role};
use carshare_event_store::{CommitSignal, EventMetadata};
use carshare_tests::{assert_error, eventually, json, vehicle_body, TestApp, TOSS_SECRET_KEY};
use chrono::{DateTime, Duration, DurationRound, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, ResponseTemplate};

fn toss_basic() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{TOSS_SECRET_KEY}:"))
    )
}

/// Toss's answer to a successful confirmation.
fn toss_done(key: &str, order_id: &str, amount: i64) -> Value {
    json!({
        "mId": "tosspayments", "version": "2022-11-16", "paymentKey": key, "orderId": order_id,
        "orderName": "차량 예약", "status": "DONE", "method": "카드", "totalAmount": amount,
        "balanceAmount": amount, "requestedAt": Utc::now().to_rfc3339(),
        "approvedAt": Utc::now().to_rfc3339()
    })
}

/// The first 10-minute boundary at least `ahead` from now.
fn slot(ahead: Duration) -> DateTime<Utc> {
    let t = Utc::now() + ahead + Duration::minutes(10);
    t.duration_trunc(Duration::minutes(10)).unwrap()
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

fn booking_body(vehicle: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Value {
    json!({
        "vehicle_id": vehicle,
        "start_datetime": rfc(start),
        "end_datetime": rfc(end),
        "guest_message": "출장 일정으로 이용하겠습니다",
    })
}

struct Scene {
    app: TestApp,
    host: String,
    guest: String,
    guest_id: Uuid,
    host_id: Uuid,
    vehicle: String,
}

async fn scene() -> Scene {
    let app = TestApp::spawn_with(carshare_tests::AppOptions {
        toss: true,
        ..Default::default()
    })
    .await;
    let (host_id, host) = app.user(Role::Host);
    let (guest_id, guest) = app.user(Role::Guest);
    let vehicle = app
        .register_vehicle(&host, &vehicle_body(37.5665, 126.9780))
        .await;
    let vehicle = vehicle["id"].as_str().unwrap().to_string();
    Scene {
        app,
        host,
        guest,
        guest_id,
        host_id,
        vehicle,
    }
}

async fn search_ids(app: &TestApp, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<String> {
    let res = app
        .http
        .get(format!("{}/v1/vehicles", app.base))
        .query(&[
            ("lat", "37.5665"),
            ("lng", "126.9780"),
            ("start_datetime", &rfc(start)),
            ("end_datetime", &rfc(end)),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_booking_goes_from_request_to_return() {
    let s = scene().await;
    let app = &s.app;
    // Starts within the pickup window (at most 30 minutes away), lasts 1 h 30.
    let start = slot(Duration::zero());
    let end = start + Duration::minutes(90);
    assert!(search_ids(app, start, end).await.contains(&s.vehicle));

    let res = app
        .post(
            "/v1/bookings",
            Some(&s.guest),
            &booking_body(&s.vehicle, start, end),
        )
        .await;
    assert!(res.headers().contains_key("x-stream-position"));
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let (status, booking) = json(res).await;
    assert_eq!(status, StatusCode::CREATED, "{booking}");
    let id = booking["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/v1/bookings/{id}"));
    assert_eq!(booking["status"], "pending");
    assert_eq!(booking["guest_id"], s.guest_id.to_string());
    // 90 minutes at 12,000 won/h; 15% fee rounded down; the rest to the host.
    assert_eq!(booking["total_amount"], 18_000);
    assert_eq!(booking["platform_fee"], 2_700);
    assert_eq!(booking["host_amount"], 15_300);
    assert_eq!(
        booking["respond_by"]
            .as_str()
            .map(|t| t.parse::<DateTime<Utc>>().unwrap()),
        Some(start)
    );

    // Read-your-writes: the search no longer offers the car for that window, or within the
    // 30-minute buffer around it; it does offer it well after.
    assert!(!search_ids(app, start, end).await.contains(&s.vehicle));
    assert!(
        !search_ids(app, end + Duration::minutes(20), end + Duration::hours(2))
            .await
            .contains(&s.vehicle)
    );
    assert!(
        search_ids(app, end + Duration::minutes(30), end + Duration::hours(2))
            .await
            .contains(&s.vehicle)
    );

    // Both sides see it; nobody else does.
    for token in [&s.guest, &s.host] {
        let (status, body) = json(app.get(&format!("/v1/bookings/{id}"), Some(token)).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], id);
    }
    let (_, stranger) = app.user(Role::Guest);
    let (status, body) = json(
        app.get(&format!("/v1/bookings/{id}"), Some(&stranger))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "BOOKING001");
    let (_, mine) = json(app.get("/v1/bookings", Some(&s.guest)).await).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let (_, hosted) = json(
        app.get("/v1/bookings?role=host&status=pending", Some(&s.host))
            .await,
    )
    .await;
    assert_eq!(hosted[0]["id"], id);
    let (_, none) = json(app.get("/v1/bookings?status=approved", Some(&s.host)).await).await;
    assert_eq!(none, json!([]));

    // The guest cannot pick up before approval; the host approves.
    let (status, body) = json(
        app.post(
            &format!("/v1/bookings/{id}/start"),
            Some(&s.guest),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "BOOKING004");
    let (status, body) = json(
        app.put(
            &format!("/v1/bookings/{id}/approve"),
            Some(&s.host),
            &json!({"host_response": "즐거운 여행 되세요"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "approved");
    assert_eq!(body["host_response"], "즐거운 여행 되세요");
    // The approval made the total due: the app opens the Toss widget with this.
    let payment = body["payment"].clone();
    assert_eq!(payment["status"], "pending", "{body}");
    assert_eq!(payment["amount"], 18_000);
    let order_id = payment["order_id"].as_str().unwrap().to_string();
    assert_eq!(order_id, format!("bk-{}", id.replace('-', "")));
    let due: DateTime<Utc> = payment["due_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        due, start,
        "due two hours after approval, never after the start"
    );

    // The guest's list shows the payment too (from the payments read model).
    let listed = eventually(std::time::Duration::from_secs(5), || async {
        let (_, mine) = json(app.get("/v1/bookings", Some(&s.guest)).await).await;
        mine[0]["payment"]["order_id"] == json!(order_id)
    })
    .await;
    assert!(listed, "the list carries the payment");

    // No pickup before paying.
    let (status, body) = json(
        app.post(
            &format!("/v1/bookings/{id}/start"),
            Some(&s.guest),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "BOOKING013");
    // The guest pays; the same call sent twice charges once.
    let toss = app.toss.as_ref().unwrap();
    Mock::given(method("POST"))
        .and(path("/v1/payments/confirm"))
        .and(header("authorization", toss_basic()))
        .and(body_json(
            json!({"paymentKey": "pk_life", "orderId": order_id, "amount": 18_000}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(toss_done("pk_life", &order_id, 18_000)),
        )
        .expect(1)
        .mount(toss)
        .await;
    let process =
        json!({"booking_id": id, "payment_key": "pk_life", "order_id": order_id, "amount": 18_000});
    for _ in 0..2 {
        let (status, paid) = json(
            app.post("/v1/payments/process", Some(&s.guest), &process)
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{paid}");
        assert_eq!(paid["status"], "completed");
        assert_eq!(paid["method"], "카드");
        assert_eq!(paid["payment_key"], "pk_life");
    }
    toss.verify().await;

    // Pickup by the host is refused; by the guest it starts the trip.
    let (status, body) = json(
        app.post(
            &format!("/v1/bookings/{id}/start"),
            Some(&s.host),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "BOOKING005");
    let (status, body) = json(
        app.post(
            &format!("/v1/bookings/{id}/start"),
            Some(&s.guest),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "active");
    assert!(body["started_at"].is_string());

    // Cancelling a trip under way is refused; the return completes it and frees the car.
    let (status, body) = json(
        app.put(
            &format!("/v1/bookings/{id}/cancel"),
            Some(&s.guest),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error(&body, "BOOKING004");
    let (status, body) = json(
        app.post(
            &format!("/v1/bookings/{id}/complete"),
            Some(&s.host),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["late_minutes"], 0);
    assert!(search_ids(app, start, end).await.contains(&s.vehicle));

    // The log holds the whole story, the vehicle's hold and release beside the booking's.
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT aggregate_type, event_type FROM events \
         WHERE aggregate_id = $1 OR (aggregate_id = $2 AND event_type IN ('WindowReserved', 'ReservationReleased')) \
         ORDER BY global_position",
    )
    .bind(&id)
    .bind(&s.vehicle)
    .fetch_all(app.pool())
    .await
    .unwrap();
    let names: Vec<&str> = events.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "BookingRequested",
            "WindowReserved",
            "BookingApproved",
            "PaymentDue",
            "PaymentConfirmed",
            "BookingStarted",
            "BookingCompleted",
            "ReservationReleased"
        ]
    );
    // A completed booking's history is one transaction per step: request and hold share one.
    let tx: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT transaction_id::text FROM events \
         WHERE event_type IN ('BookingRequested', 'WindowReserved') AND (aggregate_id = $1 OR aggregate_id = $2)",
    )
    .bind(&id)
    .bind(&s.vehicle)
    .fetch_all(app.pool())
    .await
    .unwrap();
    assert_eq!(tx.len(), 1);

    // Support reads the same story over HTTP, with actors and summaries; others cannot.
    let (status, timeline) = json(
        app.get(&format!("/v1/bookings/{id}/timeline"), Some(&s.host))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{timeline}");
    let kinds: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, names);
    assert_eq!(timeline[0]["actor_id"], s.guest_id.to_string());
    assert_eq!(timeline[0]["actor_role"], "guest");
    assert!(
        timeline[2]["summary"]
            .as_str()
            .unwrap()
            .contains("approved"),
        "{timeline}"
    );
    // Finance settles the trip: 85% of what was kept to the host, once.
    let (_, admin) = app.user(Role::Admin);
    let cutoff = json!({"cutoff": (end + Duration::hours(1)).to_rfc3339()});
    let (status, settled) =
        json(app.post("/v1/payments/settle", Some(&admin), &cutoff).await).await;
    assert_eq!(status, StatusCode::OK, "{settled}");
    assert_eq!(settled.as_array().unwrap().len(), 1, "{settled}");
    assert_eq!(settled[0]["gross"], 18_000);
    assert_eq!(settled[0]["refunds"], 0);
    assert_eq!(settled[0]["platform_fee"], 2_700);
    assert_eq!(settled[0]["host_amount"], 15_300);
    assert_eq!(settled[0]["lines"][0]["booking_id"], id.as_str());
    let (_, again) = json(app.post("/v1/payments/settle", Some(&admin), &cutoff).await).await;
    assert_eq!(again, json!([]), "nothing is settled twice");
    let (status, body) = json(
        app.post("/v1/payments/settle", Some(&s.host), &cutoff)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "AUTH005");
    let host_view = eventually(std::time::Duration::from_secs(5), || async {
        let (_, mine) = json(app.get("/v1/payments/settlements", Some(&s.host)).await).await;
        mine.as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["host_amount"] == 15_300)
    })
    .await;
    assert!(host_view, "the host sees the statement");
    let (status, _) = json(app.get("/v1/payments/settlements", Some(&s.guest)).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The audit replays the log and agrees with everything; a corrupted read row is found.
    let (status, audit) = json(app.get("/v1/admin/audit/settlements", Some(&admin)).await).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    assert_eq!(audit["settlements_checked"], 1, "{audit}");
    assert_eq!(audit["host_amount"], 15_300);
    assert_eq!(audit["hosts"][0]["host_amount"], 15_300, "{audit}");
    assert_eq!(audit["hosts"][0]["settlements"], 1, "{audit}");
    assert_eq!(audit["discrepancies"], json!([]), "{audit}");
    sqlx::query("UPDATE read.settlements SET host_amount = host_amount + 1000")
        .execute(app.pool())
        .await
        .unwrap();
    let (_, audit) = json(app.get("/v1/admin/audit/settlements", Some(&admin)).await).await;
    let found = &audit["discrepancies"];
    assert_eq!(found.as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(found[0]["kind"], "read_model");
    assert_eq!(found[0]["expected"]["host_amount"], 15_300);
    assert_eq!(found[0]["found"]["host_amount"], 16_300);
    assert!(found[0]["events"].as_array().is_some_and(|e| !e.is_empty()));
    let (status, _) = json(app.get("/v1/admin/audit/settlements", Some(&s.host)).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = json(
        app.get(&format!("/v1/bookings/{id}/timeline"), Some(&stranger))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "BOOKING001");
    // As of the approval (before pickup), the booking was approved; before the request, absent.
    let approved_at: DateTime<Utc> = timeline[2]["recorded_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let res = app
        .http
        .get(format!("{}/v1/bookings/{id}", app.base))
        .query(&[("as_of", approved_at.to_rfc3339())])
        .bearer_auth(&s.guest)
        .send()
        .await
        .unwrap();
    let (status, then) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{then}");
    assert_eq!(then["status"], "approved");
    assert!(then["started_at"].is_null());
    let res = app
        .http
        .get(format!("{}/v1/bookings/{id}", app.base))
        .query(&[("as_of", (approved_at - Duration::days(1)).to_rfc3339())])
        .bearer_auth(&s.guest)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn refusals_have_clear_codes_and_change_nothing() {
    let s = scene().await;
    let app = &s.app;
    let start = slot(Duration::days(2));
    let end = start + Duration::hours(4);
    let before = app.event_count().await;

    // Invalid windows: 422 naming the field.
    let cases = [
        (
            start,
            start + Duration::minutes(50),
            "end_datetime",
            "too_short",
        ),
        (
            start,
            start - Duration::hours(1),
            "end_datetime",
            "end_not_after_start",
        ),
        (
            start + Duration::minutes(5),
            end,
            "start_datetime",
            "not_aligned",
        ),
        (
            slot(-Duration::days(1)),
            slot(-Duration::days(1)) + Duration::hours(2),
            "start_datetime",
            "in_the_past",
        ),
        (
            start,
            start + Duration::days(31),
            "end_datetime",
            "too_long",
        ),
    ];
    for (a, b, field, reason) in cases {
        let (status, body) = json(
            app.post(
                "/v1/bookings",
                Some(&s.guest),
                &booking_body(&s.vehicle, a, b),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let error = assert_error(&body, "BOOKING003");
        assert_eq!(error["details"][0]["field"], field, "{body}");
        assert_eq!(error["details"][0]["reason"], reason, "{body}");
    }
    // Malformed input.
    let (status, body) = json(
        app.post(
            "/v1/bookings",
            Some(&s.guest),
            &json!({"vehicle_id": "nope"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "REQ002");
    let mut extra = booking_body(&s.vehicle, start, end);
    extra["total_amount"] = json!(1);
    let (status, body) = json(app.post("/v1/bookings", Some(&s.guest), &extra).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "REQ002");
    // Who may book what.
    let (status, body) = json(
        app.post(
            "/v1/bookings",
            Some(&s.host),
            &booking_body(&s.vehicle, start, end),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "BOOKING006");
    let (status, body) = json(
        app.post(
            "/v1/bookings",
            Some(&s.guest),
            &booking_body(&Uuid::new_v4().to_string(), start, end),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "VEHICLE001");
    let (status, body) = json(
        app.post("/v1/bookings", None, &booking_body(&s.vehicle, start, end))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "AUTH001");
    assert_eq!(app.event_count().await, before, "refusals wrote nothing");

    // One booking holds the window; an overlap (or one inside the buffer) is a conflict.
    let (status, first) = json(
        app.post(
            "/v1/bookings",
            Some(&s.guest),
            &booking_body(&s.vehicle, start, end),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let id = first["id"].as_str().unwrap().to_string();
    let (_, other) = app.user(Role::Guest);
    for (a, b) in [
        (start + Duration::hours(1), end + Duration::hours(1)),
        (end + Duration::minutes(20), end + Duration::hours(2)),
    ] {
        let (status, body) = json(
            app.post(
                "/v1/bookings",
                Some(&other),
                &booking_body(&s.vehicle, a, b),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_error(&body, "BOOKING002");
    }
    // A host cannot remove a car bookings hold.
    let (status, body) = json(
        app.delete(&format!("/v1/vehicles/{}", s.vehicle), Some(&s.host))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "VEHICLE007");

    // Only the host answers; a stranger cannot cancel.
    let (status, body) = json(
        app.put(
            &format!("/v1/bookings/{id}/approve"),
            Some(&s.guest),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "BOOKING005");
    let (status, body) = json(
        app.put(
            &format!("/v1/bookings/{id}/cancel"),
            Some(&other),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error(&body, "BOOKING005");
    // Reject, then approving is a transition from the wrong status.
    let (status, body) = json(
        app.put(
            &format!("/v1/bookings/{id}/reject"),
            Some(&s.host),
            &json!({"host_response": "정비 예정"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "rejected");
    let (status, body) = json(
        app.put(
            &format!("/v1/bookings/{id}/approve"),
            Some(&s.host),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let error = assert_error(&body, "BOOKING004");
    assert_eq!(error["details"][0]["reason"], "invalid_transition");

    // The rejection freed the window: the other guest books it, then cancels with a full refund
    // (more than 24 hours ahead).
    let (status, second) = json(
        app.post(
            "/v1/bookings",
            Some(&other),
            &booking_body(&s.vehicle, start, end),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second_id = second["id"].as_str().unwrap();
    let (status, body) = json(
        app.put(
            &format!("/v1/bookings/{second_id}/cancel"),
            Some(&other),
            &json!({"reason": "일정 취소"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["cancellation"]["by"], "guest");
    assert_eq!(body["cancellation"]["refund_amount"], body["total_amount"]);
    assert_eq!(body["cancellation"]["reason"], "일정 취소");
    // With nothing holding it, the car can be removed.
    let res = app
        .delete(&format!("/v1/vehicles/{}", s.vehicle), Some(&s.host))
        .await;
    assert!(res.status().is_success(), "{}", res.status());
}

#[tokio::test]
async fn fifty_concurrent_requests_for_one_window_book_the_car_once() {
    let s = scene().await;
    let app = Arc::new(s.app);
    let guests: Vec<String> = (0..50).map(|_| app.user(Role::Guest).1).collect();
    for round in 0..4 {
        // Each round asks for a different day, every request overlapping the others.
        let start = slot(Duration::days(3 + round));
        let mut tasks = Vec::new();
        for (i, guest) in guests.iter().enumerate() {
            let app = app.clone();
            let guest = guest.clone();
            let vehicle = s.vehicle.clone();
            let (a, b) = (
                start + Duration::minutes(10 * (i as i64 % 6)),
                start + Duration::hours(3),
            );
            tasks.push(tokio::spawn(async move {
                json(
                    app.post("/v1/bookings", Some(&guest), &booking_body(&vehicle, a, b))
                        .await,
                )
                .await
            }));
        }
        let mut created = 0;
        for task in tasks {
            let (status, body) = task.await.unwrap();
            match status {
                StatusCode::CREATED => created += 1,
                StatusCode::CONFLICT => {
                    assert_error(&body, "BOOKING002");
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!(created, 1, "round {round}: exactly one request wins");
    }
    let holds: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'WindowReserved'",
    )
    .bind(&s.vehicle)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(holds, 4);
    let requested: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'BookingRequested'")
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(requested, 4, "no booking exists without its hold");
}

/// Two API instances (two services over one database), each deciding from the vehicle state it
/// last wrote: a state made stale by the other instance never books a taken window (the append
/// conflicts and the retry loads afresh) and never refuses a window the other one freed.
#[tokio::test]
async fn instances_deciding_from_cached_vehicle_states_stay_exact() {
    use carshare_commands::bookings::BookingServiceError;
    use carshare_commands::metrics::STALE_CACHE;
    use carshare_domain::booking::{BookingAction, BookingError};
    let s = scene().await;
    let app = &s.app;
    let instance = || {
        BookingService::new(
            app.pool().clone(),
            CommitSignal::default(),
            Arc::new(carshare_commands::SystemClock),
            BookingPolicy::default(),
        )
    };
    let (a, b) = (instance(), instance());
    let guest = Actor::new(s.guest_id, Role::Guest);
    let meta = EventMetadata::system("Test", Utc::now());
    let vehicle_id: Uuid = s.vehicle.parse().unwrap();
    let ask = |start: DateTime<Utc>| RequestBooking {
        vehicle_id,
        start,
        end: start + Duration::hours(3),
        guest_message: None,
    };
    let (day1, day2) = (slot(Duration::days(2)), slot(Duration::days(4)));
    let stale_before = STALE_CACHE.with_label_values(&["Vehicle"]).get();

    // A books day 1 (and now knows the car's state); B books day 2 behind A's back.
    let first = a.request(guest, ask(day1), &meta).await.unwrap();
    b.request(guest, ask(day2), &meta).await.unwrap();

    // A's state lacks B's hold: asking A for day 2 must still be refused.
    let refused = a
        .request(guest, ask(day2 + Duration::minutes(30)), &meta)
        .await;
    assert!(
        matches!(
            refused,
            Err(BookingServiceError::Booking(BookingError::WindowTaken))
        ),
        "a stale state must not book a taken window: {refused:?}"
    );
    assert!(
        STALE_CACHE.with_label_values(&["Vehicle"]).get() > stale_before,
        "the refusal came through a conflict on the stale state"
    );

    // A books day 6, so it knows the car's state again (with day 1 held); then B cancels day 1
    // behind A's back. A's state still holds day 1, yet A must book it again.
    a.request(guest, ask(slot(Duration::days(6))), &meta)
        .await
        .unwrap();
    let first_id = first.booking.state.unwrap().id;
    b.execute(
        Some(guest),
        first_id,
        BookingAction::Cancel { reason: None },
        &meta,
    )
    .await
    .unwrap();
    let again = a.request(guest, ask(day1), &meta).await;
    assert!(
        again.is_ok(),
        "a window freed by another instance is bookable: {again:?}"
    );

    let counts: (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE event_type = 'WindowReserved'), \
                count(*) FILTER (WHERE event_type = 'ReservationReleased') \
         FROM events WHERE aggregate_id = $1",
    )
    .bind(&s.vehicle)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(counts, (4, 1), "four holds taken, one released");
    let sequences: Vec<i64> =
        sqlx::query_scalar("SELECT sequence FROM events WHERE aggregate_id = $1 ORDER BY sequence")
            .bind(&s.vehicle)
            .fetch_all(app.pool())
            .await
            .unwrap();
    let expected: Vec<i64> = (1..=sequences.len() as i64).collect();
    assert_eq!(sequences, expected, "the vehicle's history has no gap");

    // The read side's `reserved` (kept by difference, hold by hold) is the union of the three
    // holds left: day 1 (released, then held again by another booking), days 2 and 6.
    let last = *sequences.last().unwrap();
    // The row may not exist yet: the projection can still be behind the registration itself.
    let vehicle_read = || async {
        sqlx::query_as::<_, (i64, i64, bool, i64)>(
            "SELECT v.last_sequence, \
                    (SELECT count(*) FROM read.vehicle_holds h WHERE h.vehicle_id = v.id), \
                    v.reserved = coalesce((SELECT range_agg(tstzrange(h.start_at, h.end_at)) \
                        FROM read.vehicle_holds h WHERE h.vehicle_id = v.id), '{}'), \
                    (SELECT count(*) FROM unnest(v.reserved)) \
             FROM read.vehicles v WHERE v.id = $1",
        )
        .bind(vehicle_id)
        .fetch_optional(app.pool())
        .await
        .unwrap()
    };
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            vehicle_read().await.is_some_and(|row| row.0 == last)
        })
        .await,
        "the vehicles projection did not reach the vehicle's last event"
    );
    let (_, holds, union, ranges) = vehicle_read().await.unwrap();
    assert_eq!(
        (holds, union, ranges),
        (3, true, 3),
        "reserved is the union of the holds"
    );
}

/// Waits (up to 5 s) until `read.bookings` shows booking `id` in `status`.
async fn status_becomes(pool: &sqlx::PgPool, id: Uuid, status: &str) -> bool {
    eventually(std::time::Duration::from_secs(5), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM read.bookings WHERE id = $1")
                .bind(id)
                .fetch_optional(&pool)
                .await
                .ok()
                .flatten()
                .as_deref()
                == Some(status)
        }
    })
    .await
}

#[tokio::test]
async fn unanswered_requests_expire_at_their_deadline_and_free_the_car() {
    let s = scene().await;
    let app = &s.app;
    let clock = ManualClock::at(Utc::now());
    let service = Arc::new(BookingService::new(
        app.pool().clone(),
        CommitSignal::default(),
        Arc::new(clock.clone()),
        BookingPolicy::default(),
    ));
    let guest = Actor::new(s.guest_id, Role::Guest);
    let start = slot(Duration::days(1));
    let meta = EventMetadata::system("RequestBooking", carshare_commands::Clock::now(&clock));
    let done = service
        .request(
            guest,
            RequestBooking {
                vehicle_id: s.vehicle.parse().unwrap(),
                start,
                end: start + Duration::hours(2),
                guest_message: None,
            },
            &meta,
        )
        .await
        .unwrap();
    let id = done.booking.state.as_ref().unwrap().id;
    let sweeper = ExpirySweeper::new(
        app.pool().clone(),
        service.clone(),
        std::time::Duration::from_secs(60),
    );
    // The projection (run by the app) shows the request pending.
    let pool = app.pool().clone();
    assert!(status_becomes(&pool, id, "pending").await);
    // Seven hours and 59 minutes later nothing is due.
    clock.advance(Duration::hours(8) - Duration::minutes(1));
    assert_eq!(sweeper.sweep().await.unwrap().expired, 0);
    // At eight hours it expires, and a second sweep finds nothing more to do.
    clock.advance(Duration::minutes(1));
    let report = sweeper.sweep().await.unwrap();
    assert_eq!(report.expired, 1, "{report:?}");
    let booking = service.load(id).await.unwrap();
    let state = booking.state.unwrap();
    assert_eq!(state.status, BookingStatus::Expired);
    assert!(status_becomes(&pool, id, "expired").await);
    assert_eq!(sweeper.sweep().await.unwrap().expired, 0);
    // The expiry released the hold: the car is bookable again for that window.
    let (status, body) = json(
        app.post(
            "/v1/bookings",
            Some(&s.guest),
            &booking_body(&s.vehicle, start, start + Duration::hours(2)),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = json(app.get(&format!("/v1/bookings/{id}"), Some(&s.host)).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "expired");
    assert_eq!(body["expiry_reason"], "host_did_not_respond");
}

fn jpeg(len: usize) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.resize(len.max(4), 0x42);
    bytes
}

fn form(kind: Option<&str>, files: Vec<(&str, Vec<u8>)>) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new();
    if let Some(kind) = kind {
        form = form.text("kind", kind.to_string());
    }
    for (name, bytes) in files {
        form = form.part(
            "files",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
    }
    form
}

async fn upload(
    app: &TestApp,
    path: &str,
    token: &str,
    form: reqwest::multipart::Form,
) -> (StatusCode, Value) {
    json(
        app.http
            .post(format!("{}{path}", app.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn stored_files(dir: &std::path::Path) -> usize {
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            walk(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(dir)
}

#[tokio::test]
async fn photos_are_checked_by_content_stored_and_recorded_around_their_step() {
    let dir = std::env::temp_dir().join(format!("carshare-uploads-{}", Uuid::new_v4()));
    let app = TestApp::spawn_with(carshare_tests::AppOptions {
        env: vec![("STORAGE_DIR", dir.display().to_string())],
        ..Default::default()
    })
    .await;
    let (_, host) = app.user(Role::Host);
    let (_, guest) = app.user(Role::Guest);
    let (_, stranger) = app.user(Role::Guest);
    let vehicle = app
        .register_vehicle(&host, &vehicle_body(37.5665, 126.9780))
        .await;
    let vehicle = vehicle["id"].as_str().unwrap().to_string();
    let start = slot(Duration::zero());
    let (_, booking) = json(
        app.post(
            "/v1/bookings",
            Some(&guest),
            &booking_body(&vehicle, start, start + Duration::hours(1)),
        )
        .await,
    )
    .await;
    let id = booking["id"].as_str().unwrap().to_string();
    let path = format!("/v1/bookings/{id}/photos");

    // Before approval no photos are expected; nothing is stored.
    let (status, body) = upload(
        &app,
        &path,
        &guest,
        form(Some("pickup"), vec![("a.jpg", jpeg(100))]),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "BOOKING012");
    let (status, _) = json(
        app.put(
            &format!("/v1/bookings/{id}/approve"),
            Some(&host),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Content, not names, decides what an image is.
    let (status, body) = upload(
        &app,
        &path,
        &guest,
        form(
            Some("pickup"),
            vec![
                ("a.jpg", jpeg(64)),
                ("b.jpg", b"GIF89a not allowed".to_vec()),
            ],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(
        assert_error(&body, "UPLOAD002")["details"][0]["field"],
        "files[1]"
    );
    let (status, body) = upload(
        &app,
        &path,
        &guest,
        form(
            Some("pickup"),
            vec![("big.jpg", jpeg(10 * 1024 * 1024 + 1))],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_error(&body, "UPLOAD001");
    let eleven: Vec<(&str, Vec<u8>)> = (0..11)
        .map(|_| ("x.png", b"\x89PNG\r\n\x1a\n0000".to_vec()))
        .collect();
    let (status, body) = upload(&app, &path, &guest, form(Some("pickup"), eleven)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_error(&body, "UPLOAD003");
    let (status, body) = upload(
        &app,
        &path,
        &guest,
        form(Some("sideways"), vec![("a.jpg", jpeg(64))]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        assert_error(&body, "UPLOAD003")["details"][0]["field"],
        "kind"
    );
    let (status, body) = upload(
        &app,
        &path,
        &stranger,
        form(Some("pickup"), vec![("a.jpg", jpeg(64))]),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error(&body, "BOOKING005");
    assert_eq!(stored_files(&dir), 0, "refused uploads store nothing");

    // The guest documents the pickup: stored, and the keys recorded on the booking.
    let webp = b"RIFF\x20\0\0\0WEBPVP8 payload".to_vec();
    let (status, body) = upload(
        &app,
        &path,
        &guest,
        form(
            Some("pickup"),
            vec![("front.jpg", jpeg(2048)), ("side", webp)],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys: Vec<String> = body["pickup_photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(
        keys[0].starts_with(&format!("bookings/{id}/pickup/")) && keys[0].ends_with(".jpg"),
        "{keys:?}"
    );
    assert!(keys[1].ends_with(".webp"), "{keys:?}");
    assert_eq!(std::fs::read(dir.join(&keys[0])).unwrap(), jpeg(2048));
    assert_eq!(stored_files(&dir), 2);
    // Return photos wait for the trip.
    let (status, body) = upload(
        &app,
        &path,
        &host,
        form(Some("return"), vec![("a.jpg", jpeg(64))]),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "BOOKING012");

    // Vehicle images take the same path: the host uploads, a guest may not.
    let images = format!("/v1/vehicles/{vehicle}/images");
    let (status, body) = upload(&app, &images, &guest, form(None, vec![("a.jpg", jpeg(64))])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error(&body, "VEHICLE004");
    let (status, body) = upload(
        &app,
        &images,
        &host,
        form(None, vec![("car.png", b"\x89PNG\r\n\x1a\n0000".to_vec())]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = body["images"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        key.starts_with(&format!("vehicles/{vehicle}/")) && key.ends_with(".png"),
        "{body}"
    );
    assert!(dir.join(&key).is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn payments_are_checked_before_toss_and_refusals_and_outages_are_clear() {
    let s = scene().await;
    let app = &s.app;
    let toss = app.toss.as_ref().unwrap();
    let start = slot(Duration::days(1));
    let (_, booking) = json(
        app.post(
            "/v1/bookings",
            Some(&s.guest),
            &booking_body(&s.vehicle, start, start + Duration::hours(2)),
        )
        .await,
    )
    .await;
    let id = booking["id"].as_str().unwrap().to_string();
    let order_id = format!("bk-{}", id.replace('-', ""));
    let pay = |key: &str, order: &str, amount: i64| json!({"booking_id": id, "payment_key": key, "order_id": order, "amount": amount});

    // Nothing is due before approval.
    let (status, body) = json(
        app.post(
            "/v1/payments/process",
            Some(&s.guest),
            &pay("pk_0", &order_id, 24_000),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, "PAYMENT001");
    let (status, approved) = json(
        app.put(
            &format!("/v1/bookings/{id}/approve"),
            Some(&s.host),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(approved["payment"]["amount"], 24_000);

    // Wrong amount, wrong order, wrong payer: refused without calling Toss.
    let (status, body) = json(
        app.post(
            "/v1/payments/process",
            Some(&s.guest),
            &pay("pk_1", &order_id, 1_000),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        assert_error(&body, "PAYMENT002")["details"][0]["field"],
        "amount"
    );
    let (status, body) = json(
        app.post(
            "/v1/payments/process",
            Some(&s.guest),
            &pay("pk_1", "bk-someone-else", 24_000),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        assert_error(&body, "PAYMENT002")["details"][0]["field"],
        "order_id"
    );
    let (status, body) = json(
        app.post(
            "/v1/payments/process",
            Some(&s.host),
            &pay("pk_1", &order_id, 24_000),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_error(&body, "PAYMENT007");
    assert!(toss.received_requests().await.unwrap().is_empty());

    // Toss refuses the card: 402 with Toss's code, recorded; the booking stays approved.
    Mock::given(path("/v1/payments/confirm"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"code": "REJECT_CARD_COMPANY", "message": "카드사에서 거절했습니다."}),
        ))
        .up_to_n_times(1)
        .mount(toss)
        .await;
    let (status, body) = json(
        app.post(
            "/v1/payments/process",
            Some(&s.guest),
            &pay("pk_1", &order_id, 24_000),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    let error = assert_error(&body, "PAYMENT004");
    assert!(error["details"][0]["message"]
        .as_str()
        .unwrap()
        .contains("REJECT_CARD_COMPANY"));
    let (_, now) = json(app.get(&format!("/v1/bookings/{id}"), Some(&s.guest)).await).await;
    assert_eq!(now["status"], "approved");
    assert_eq!(now["payment"]["status"], "failed");

    // Toss down: retried, then 503 with Retry-After; nothing recorded as paid.
    Mock::given(path("/v1/payments/confirm"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(4)
        .mount(toss)
        .await;
    let res = app
        .post(
            "/v1/payments/process",
            Some(&s.guest),
            &pay("pk_2", &order_id, 24_000),
        )
        .await;
    assert!(res.headers().contains_key("retry-after"));
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_error(&body, "PAYMENT006");
    // Toss back: the next attempt goes through.
    Mock::given(path("/v1/payments/confirm"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(toss_done("pk_2", &order_id, 24_000)),
        )
        .mount(toss)
        .await;
    let (status, body) = json(
        app.post(
            "/v1/payments/process",
            Some(&s.guest),
            &pay("pk_2", &order_id, 24_000),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "completed");
    // Paid once: another payment key is refused.
    let (status, body) = json(
        app.post(
            "/v1/payments/process",
            Some(&s.guest),
            &pay("pk_3", &order_id, 24_000),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "PAYMENT003");
    let confirmed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'PaymentConfirmed'",
    )
    .bind(&id)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(confirmed, 1);

    // The payment history shows it to the guest and the host, and to nobody else.
    let (status, mine) = json(app.get("/v1/payments/history", Some(&s.guest)).await).await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["booking_id"], id.as_str());
    assert_eq!(mine[0]["status"], "completed");
    assert_eq!(mine[0]["payment_key"], "pk_2");
    let (_, hosted) = json(app.get("/v1/payments/history", Some(&s.host)).await).await;
    assert_eq!(hosted[0]["amount"], 24_000);
    let (_, stranger) = app.user(Role::Guest);
    let (_, none) = json(app.get("/v1/payments/history", Some(&stranger)).await).await;
    assert_eq!(none, json!([]));
}

#[tokio::test]
async fn cancelling_voids_an_unpaid_payment_and_refunds_a_paid_one() {
    let s = scene().await;
    let app = &s.app;
    let toss = app.toss.as_ref().unwrap();
    // Approved, unpaid, cancelled by the guest: nothing can be charged any more.
    let start = slot(Duration::days(3));
    let (_, booking) = json(
        app.post(
            "/v1/bookings",
            Some(&s.guest),
            &booking_body(&s.vehicle, start, start + Duration::hours(2)),
        )
        .await,
    )
    .await;
    let id = booking["id"].as_str().unwrap().to_string();
    json(
        app.put(
            &format!("/v1/bookings/{id}/approve"),
            Some(&s.host),
            &json!({}),
        )
        .await,
    )
    .await;
    let (status, cancelled) = json(
        app.put(
            &format!("/v1/bookings/{id}/cancel"),
            Some(&s.guest),
            &json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["payment"]["status"], "voided");
    let order = format!("bk-{}", id.replace('-', ""));
    let (status, body) = json(
        app.post(
            "/v1/payments/process",
            Some(&s.guest),
            &json!({"booking_id": id, "payment_key": "pk_x", "order_id": order, "amount": 24_000}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_error(&body, "PAYMENT008");

    // Approved, paid, cancelled by the host: refunded in full through Toss.
    let start = slot(Duration::days(4));
    let (_, booking) = json(
        app.post(
            "/v1/bookings",
            Some(&s.guest),
            &booking_body(&s.vehicle, start, start + Duration::hours(2)),
        )
        .await,
    )
    .await;
    let id = booking["id"].as_str().unwrap().to_string();
    let order = format!("bk-{}", id.replace('-', ""));
    json(
        app.put(
            &format!("/v1/bookings/{id}/approve"),
            Some(&s.host),
            &json!({}),
        )
        .await,
    )
    .await;
    Mock::given(path("/v1/payments/confirm"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(toss_done("pk_paid", &order, 24_000)),
        )
        .mount(toss)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payments/pk_paid/cancel"))
        .and(header("authorization", toss_basic()))
        .and(body_json(json!({"cancelReason": "예약 취소", "cancelAmount": 24_000})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "paymentKey": "pk_paid", "orderId": order, "status": "CANCELED", "totalAmount": 24_000,
            "cancels": [{"cancelAmount": 24_000, "cancelReason": "예약 취소", "transactionKey": "tx_refund_1"}]
        })))
        .expect(1)
        .mount(toss)
        .await;
    let (status, _) = json(
        app.post("/v1/payments/process", Some(&s.guest), &json!({"booking_id": id, "payment_key": "pk_paid", "order_id": order, "amount": 24_000}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, cancelled) = json(
        app.put(
            &format!("/v1/bookings/{id}/cancel"),
            Some(&s.host),
            &json!({"reason": "차량 고장"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["cancellation"]["refund_amount"], 24_000);
    let pool = app.pool().clone();
    let refunded = eventually(std::time::Duration::from_secs(5), || {
        let pool = pool.clone();
        let id = id.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'PaymentRefunded'",
            )
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap_or(0)
                == 1
        }
    })
    .await;
    assert!(refunded, "the refund was carried out");
    let (_, now) = json(app.get(&format!("/v1/bookings/{id}"), Some(&s.guest)).await).await;
    assert_eq!(now["payment"]["refunded_amount"], 24_000, "{now}");
    assert!(now["payment"]["pending_refund"].is_null());
    toss.verify().await;
}

#[tokio::test]
async fn a_guest_cancelling_late_gets_half_back() {
    use carshare_commands::external::toss::{TossClient, TossSettings};
    use carshare_commands::payments::{PaymentService, ProcessPayment};
    use carshare_domain::booking::BookingAction;
    let s = scene().await;
    let app = &s.app;
    let toss = app.toss.as_ref().unwrap();
    let clock = ManualClock::at(Utc::now());
    let signal = CommitSignal::default();
    let bookings = BookingService::new(
        app.pool().clone(),
        signal.clone(),
        Arc::new(clock.clone()),
        BookingPolicy::default(),
    );
    let gateway = TossClient::new(TossSettings::new(
        toss.uri(),
        secrecy::SecretString::from(TOSS_SECRET_KEY),
    ))
    .unwrap();
    let payments = PaymentService::new(
        app.pool().clone(),
        signal,
        Some(Arc::new(gateway)),
        Arc::new(clock.clone()),
    );
    let guest = Actor::new(s.guest_id, Role::Guest);
    let host_id = s.host_id;
    let host = Actor::new(host_id, Role::Host);
    let meta = EventMetadata::system("Test", Utc::now());
    // Booked 30 hours ahead, 3 hours long: 36,000 won.
    let start = slot(Duration::hours(30));
    let done = bookings
        .request(
            guest,
            RequestBooking {
                vehicle_id: s.vehicle.parse().unwrap(),
                start,
                end: start + Duration::hours(3),
                guest_message: None,
            },
            &meta,
        )
        .await
        .unwrap();
    let id = done.booking.state.unwrap().id;
    bookings
        .execute(
            Some(host),
            id,
            BookingAction::Approve {
                host_response: None,
            },
            &meta,
        )
        .await
        .unwrap();
    let order = carshare_domain::payment::order_id(id);
    Mock::given(path("/v1/payments/confirm"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(toss_done("pk_half", &order, 36_000)),
        )
        .mount(toss)
        .await;
    Mock::given(path("/v1/payments/pk_half/cancel"))
        .and(body_json(
            json!({"cancelReason": "예약 취소", "cancelAmount": 18_000}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"paymentKey": "pk_half", "cancels": [{"transactionKey": "tx_half"}]}),
        ))
        .expect(1)
        .mount(toss)
        .await;
    payments
        .process(
            guest,
            ProcessPayment {
                booking_id: id,
                payment_key: "pk_half".into(),
                order_id: order,
                amount: 36_000,
            },
            &meta,
        )
        .await
        .unwrap();
    // Eight hours later: more than an hour after booking, less than 24 hours before the start.
    clock.advance(Duration::hours(8));
    let cancelled = bookings
        .execute(
            Some(guest),
            id,
            BookingAction::Cancel { reason: None },
            &meta,
        )
        .await
        .unwrap();
    let cancellation = cancelled.booking.state.unwrap().cancellation.unwrap();
    assert_eq!(cancellation.refund_amount, carshare_domain::Won(18_000));
    assert_eq!(
        payments.execute_refund(id).await.unwrap(),
        Some(carshare_domain::Won(18_000))
    );
    let paid = payments.load(id).await.unwrap().state.unwrap();
    assert_eq!(paid.refunded, carshare_domain::Won(18_000));
    assert_eq!(paid.kept(), carshare_domain::Won(18_000));
    // Nothing more is pending: a second run refunds nothing.
    assert_eq!(payments.execute_refund(id).await.unwrap(), None);
    toss.verify().await;
}

#[tokio::test]
async fn an_approved_booking_left_unpaid_is_cancelled_at_its_payment_deadline() {
    use carshare_domain::booking::BookingAction;
    let s = scene().await;
    let app = &s.app;
    let clock = ManualClock::at(Utc::now());
    let service = Arc::new(BookingService::new(
        app.pool().clone(),
        CommitSignal::default(),
        Arc::new(clock.clone()),
        BookingPolicy::default(),
    ));
    let sweeper = ExpirySweeper::new(
        app.pool().clone(),
        service.clone(),
        std::time::Duration::from_secs(60),
    );
    let host_id = s.host_id;
    let meta = EventMetadata::system("Test", Utc::now());
    let start = slot(Duration::days(1));
    let done = service
        .request(
            Actor::new(s.guest_id, Role::Guest),
            RequestBooking {
                vehicle_id: s.vehicle.parse().unwrap(),
                start,
                end: start + Duration::hours(2),
                guest_message: None,
            },
            &meta,
        )
        .await
        .unwrap();
    let id = done.booking.state.unwrap().id;
    service
        .execute(
            Some(Actor::new(host_id, Role::Host)),
            id,
            BookingAction::Approve {
                host_response: None,
            },
            &meta,
        )
        .await
        .unwrap();
    let pool = app.pool().clone();
    assert!(status_becomes(&pool, id, "approved").await);
    // Not yet due: the platform may not cancel.
    clock.advance(Duration::minutes(119));
    assert_eq!(sweeper.sweep().await.unwrap().cancelled_unpaid, 0);
    // Two hours after approval, unpaid: cancelled by the platform, nothing to refund, car free.
    clock.advance(Duration::minutes(1));
    let report = sweeper.sweep().await.unwrap();
    assert_eq!(report.cancelled_unpaid, 1, "{report:?}");
    assert!(status_becomes(&pool, id, "cancelled").await);
    let (_, body) = json(app.get(&format!("/v1/bookings/{id}"), Some(&s.guest)).await).await;
    assert_eq!(body["cancellation"]["by"], "platform");
    assert_eq!(body["cancellation"]["refund_rule"], "not_paid");
    assert_eq!(body["payment"]["status"], "voided");
    let (status, _) = json(
        app.post(
            "/v1/bookings",
            Some(&s.guest),
            &booking_body(&s.vehicle, start, start + Duration::hours(2)),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "the car was released");
}

#[tokio::test]
async fn the_webhook_reconciles_with_toss_and_tolerates_repeats_and_strangers() {
    let s = scene().await;
    let app = &s.app;
    let toss = app.toss.as_ref().unwrap();
    let start = slot(Duration::days(2));
    let (_, booking) = json(
        app.post(
            "/v1/bookings",
            Some(&s.guest),
            &booking_body(&s.vehicle, start, start + Duration::hours(2)),
        )
        .await,
    )
    .await;
    let id = booking["id"].as_str().unwrap().to_string();
    let order = format!("bk-{}", id.replace('-', ""));
    json(
        app.put(
            &format!("/v1/bookings/{id}/approve"),
            Some(&s.host),
            &json!({}),
        )
        .await,
    )
    .await;
    // The guest paid, but the confirmation's answer never reached us; Toss reports it.
    Mock::given(method("GET"))
        .and(path("/v1/payments/pk_hook"))
        .and(header("authorization", toss_basic()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(toss_done("pk_hook", &order, 24_000)),
        )
        .mount(toss)
        .await;
    let hook = json!({"eventType": "PAYMENT_STATUS_CHANGED", "createdAt": Utc::now().to_rfc3339(),
                      "data": {"paymentKey": "pk_hook", "orderId": order, "status": "DONE"}});
    for expected in ["recorded", "unchanged"] {
        let (status, body) = json(app.post("/v1/payments/webhook", None, &hook).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["result"], expected);
    }
    let (_, now) = json(app.get(&format!("/v1/bookings/{id}"), Some(&s.guest)).await).await;
    assert_eq!(now["payment"]["status"], "completed");
    assert_eq!(now["payment"]["payment_key"], "pk_hook");
    // Toss does not know the key: recorded as unknown, answered 200.
    Mock::given(method("GET"))
        .and(path("/v1/payments/pk_nobody"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"code": "NOT_FOUND_PAYMENT", "message": "존재하지 않는 결제 정보 입니다."}),
        ))
        .mount(toss)
        .await;
    let stranger = json!({"eventType": "PAYMENT_STATUS_CHANGED", "data": {"paymentKey": "pk_nobody", "orderId": "other-shop-1"}});
    let (status, body) = json(app.post("/v1/payments/webhook", None, &stranger).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"], "unknown");
    let (status, body) = json(
        app.post(
            "/v1/payments/webhook",
            None,
            &json!({"eventType": "DEPOSIT_CALLBACK"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"], "ignored");
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM payment_webhook_deliveries ORDER BY id")
            .fetch_all(app.pool())
            .await
            .unwrap();
    assert_eq!(outcomes, ["recorded", "unchanged", "unknown", "ignored"]);
    let confirmed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'PaymentConfirmed'",
    )
    .bind(&id)
    .fetch_one(app.pool())
    .await
    .unwrap();
    assert_eq!(confirmed, 1);
}
