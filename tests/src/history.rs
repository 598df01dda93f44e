//! A history of vehicle events written through the command service, and ways to compare the
//! read tables it produces.

use carshare_domain::vehicle::{AvailabilityRule, Schedule};
use carshare_domain::Role;
use carshare_event_store::StreamCursor;
use chrono::Utc;
use serde_json::Value;
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

/// Inserts an event row directly (bypassing the aggregates), returning its position.
pub async fn insert_raw(
    conn: &mut sqlx::PgConnection,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
    event_type: &str,
    payload: Value,
) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ($1, $2, $3, $4, '1.0', $5, '{}') RETURNING global_position",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(sequence)
    .bind(event_type)
    .bind(payload)
    .fetch_one(conn)
    .await
    .expect("insert event")
}

/// The whole `read.vehicles` and `read.vehicle_holds` tables as JSON, ordered by key.
pub async fn snapshot(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT json_build_array( \
           (SELECT coalesce(json_agg(t ORDER BY t.id), '[]') FROM read.vehicles t), \
           (SELECT coalesce(json_agg(h ORDER BY h.vehicle_id, h.booking_id), '[]') \
              FROM read.vehicle_holds h))::text",
    )
    .fetch_one(pool)
    .await
    .expect("test step")
}

/// The cursor of the newest event in the log, ignoring the read horizon.
pub async fn head_cursor(pool: &PgPool) -> StreamCursor {
    let (tx, position): (String, i64) = sqlx::query_as(
        "SELECT transaction_id::text, global_position FROM events \
         ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .expect("test step");
    StreamCursor {
        transaction_id: tx.parse().expect("test step"),
        position,
    }
}

/// Registers vehicles and changes them, straight through the command service.
pub async fn write_history(pool: &PgPool, vehicles: usize) -> Vec<Uuid> {
    use carshare_commands::vehicles::{
        LocationInput, RegisterVehicle, UpdateVehicle, VehicleService,
    };
    use carshare_commands::SystemClock;
    use carshare_domain::vehicle::{VehiclePatch, VehicleStatus};
    use carshare_event_store::{CommitSignal, EventMetadata};
    let service = VehicleService::new(
        pool.clone(),
        CommitSignal::default(),
        None,
        Arc::new(SystemClock),
    );
    let host = carshare_domain::Actor::new(Uuid::new_v4(), Role::Host);
    let meta = |command: &str| EventMetadata {
        correlation_id: Uuid::new_v4().to_string(),
        causation_id: Uuid::new_v4().to_string(),
        actor_id: Some(host.user_id),
        actor_role: Some("host".into()),
        idempotency_key: None,
        issued_at: Utc::now(),
        command: command.into(),
    };
    let mut ids = Vec::new();
    for i in 0..vehicles {
        let done = service
            .register(
                host,
                RegisterVehicle {
                    license_plate: crate::unique_plate(),
                    make: "기아".into(),
                    model: format!("K{}", 3 + i % 6),
                    year: 2020 + (i % 5) as i32,
                    color: None,
                    fuel_type: None,
                    transmission: None,
                    hourly_rate: 10_000 + i as i64,
                    location: LocationInput {
                        address: "부산광역시 해운대구".into(),
                        lat: Some(35.16 + i as f64 * 0.001),
                        lng: Some(129.16),
                    },
                    description: Some(format!("차량 {i}")),
                    images: vec![],
                },
                &meta("RegisterVehicle"),
            )
            .await
            .expect("register");
        let id = done.aggregate.state.expect("test step").id;
        ids.push(id);
        if i % 2 == 0 {
            service
                .update(
                    host,
                    id,
                    UpdateVehicle {
                        patch: VehiclePatch {
                            hourly_rate: Some(20_000 + i as i64),
                            status: Some(if i % 4 == 0 {
                                VehicleStatus::Maintenance
                            } else {
                                VehicleStatus::Active
                            }),
                            ..VehiclePatch::default()
                        },
                        ..UpdateVehicle::default()
                    },
                    &meta("UpdateVehicle"),
                )
                .await
                .expect("update");
        }
        if i % 3 == 0 {
            let rules = vec![AvailabilityRule {
                schedule: Schedule::Weekly {
                    day_of_week: (i % 7) as u8,
                },
                start: "08:00".parse().expect("test step"),
                end: "20:00".parse().expect("test step"),
                blocked: false,
            }];
            service
                .set_availability(host, id, rules, &meta("SetAvailability"))
                .await
                .expect("availability");
        }
        if i % 5 == 4 {
            service
                .remove(host, id, Some("sold".into()), &meta("RemoveVehicle"))
                .await
                .expect("remove");
        }
    }
    // Bookings holding cars, as the Vehicle aggregate records them: two holds on every other
    // car, the first released again on every fourth (so `read.vehicle_holds` has rows to
    // build, replace and delete).
    let mut conn = pool.acquire().await.expect("test step");
    let day = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("test step")
        .and_utc();
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
        let key = id.to_string();
        let mut sequence: i64 = sqlx::query_scalar(
            "SELECT max(sequence) FROM events WHERE aggregate_type = 'Vehicle' AND aggregate_id = $1",
        )
        .bind(&key)
        .fetch_one(&mut *conn)
        .await
        .expect("test step");
        let bookings = [Uuid::new_v4(), Uuid::new_v4()];
        for (k, booking) in bookings.iter().enumerate() {
            let start =
                day + chrono::Duration::days(2 + k as i64) + chrono::Duration::hours(i as i64 % 12);
            sequence += 1;
            let payload = serde_json::json!({"WindowReserved": {
                "booking_id": booking, "guest_id": Uuid::new_v4(), "start": start,
                "end": start + chrono::Duration::hours(3), "at": Utc::now()}});
            insert_raw(
                &mut conn,
                "Vehicle",
                &key,
                sequence,
                "WindowReserved",
                payload,
            )
            .await;
        }
        if i % 4 == 1 {
            sequence += 1;
            let payload = serde_json::json!({"ReservationReleased": {
                "booking_id": bookings[0], "reason": "BookingCancelled", "at": Utc::now()}});
            insert_raw(
                &mut conn,
                "Vehicle",
                &key,
                sequence,
                "ReservationReleased",
                payload,
            )
            .await;
        }
    }
    drop(conn);
    // The stream only shows events below the cluster-wide horizon: tests running beside this
    // one may hold it back for a moment. Wait until everything written here is readable.
    let reader = carshare_event_store::StreamReader::new(pool.clone());
    for _ in 0..500 {
        let written: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(pool)
            .await
            .expect("count events");
        let readable = reader
            .read_after(carshare_event_store::StreamCursor::START, 100_000)
            .await
            .expect("read the stream")
            .len();
        if i64::try_from(readable).unwrap_or(0) >= written {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    ids
}

/// Compares two table snapshots row by row, reporting the first difference only.
pub fn assert_same_rows(rebuilt: &str, live: &str) {
    let rebuilt: Vec<Value> = serde_json::from_str(rebuilt).expect("test step");
    let live: Vec<Value> = serde_json::from_str(live).expect("test step");
    assert_eq!(rebuilt.len(), live.len(), "row counts differ");
    for (r, l) in rebuilt.iter().zip(&live) {
        assert_eq!(r, l, "the rebuilt row differs from the live one");
    }
}
