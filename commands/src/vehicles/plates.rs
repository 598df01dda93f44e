//! Write-side uniqueness of licence plates among live vehicles (table `vehicle_plates`).

use sqlx::PgPool;
use uuid::Uuid;

/// Reservations of plates by vehicles.
#[derive(Clone)]
pub struct PlateRegistry {
    pool: PgPool,
}

/// The result of trying to reserve a plate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The plate is now (or already was) held by this vehicle.
    Held,
    /// Another vehicle holds it; `stale_candidate` when the reservation is old enough that its
    /// holder may have crashed before writing its event.
    TakenBy {
        /// The holder.
        vehicle_id: Uuid,
        /// Whether the reservation is older than the grace period.
        stale_candidate: bool,
    },
}

/// Reservations younger than this are never reclaimed: their registration may be in flight.
const STALE_AFTER_SECONDS: i64 = 60;

impl PlateRegistry {
    /// Registry over the pool.
    pub fn new(pool: PgPool) -> PlateRegistry {
        PlateRegistry { pool }
    }

    /// Tries to reserve `plate` for `vehicle_id`.
    pub async fn reserve(&self, plate: &str, vehicle_id: Uuid) -> Result<Reservation, sqlx::Error> {
        // A reservation released between our insert and our look-up makes us try again; a
        // second such coincidence in a row is reported as taken rather than looping.
        let mut last_holder = None;
        for _ in 0..3 {
            let inserted = sqlx::query(
                "INSERT INTO vehicle_plates (license_plate, vehicle_id) VALUES ($1, $2) \
                 ON CONFLICT (license_plate) DO NOTHING",
            )
            .bind(plate)
            .bind(vehicle_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok(Reservation::Held);
            }
            let holder: Option<(Uuid, bool)> = sqlx::query_as(
                "SELECT vehicle_id, reserved_at < now() - make_interval(secs => $2) \
                 FROM vehicle_plates WHERE license_plate = $1",
            )
            .bind(plate)
            .bind(STALE_AFTER_SECONDS as f64)
            .fetch_optional(&self.pool)
            .await?;
            match holder {
                Some((holder, _)) if holder == vehicle_id => return Ok(Reservation::Held),
                Some((holder, stale)) => {
                    return Ok(Reservation::TakenBy {
                        vehicle_id: holder,
                        stale_candidate: stale,
                    })
                }
                None => last_holder = Some(vehicle_id),
            }
        }
        Ok(Reservation::TakenBy {
            vehicle_id: last_holder.unwrap_or(vehicle_id),
            stale_candidate: false,
        })
    }

    /// Moves a stale reservation from `from` to `to`; false if someone else changed it first.
    pub async fn reclaim(&self, plate: &str, from: Uuid, to: Uuid) -> Result<bool, sqlx::Error> {
        let moved = sqlx::query(
            "UPDATE vehicle_plates SET vehicle_id = $3, reserved_at = now() \
             WHERE license_plate = $1 AND vehicle_id = $2",
        )
        .bind(plate)
        .bind(from)
        .bind(to)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(moved == 1)
    }

    /// Releases `plate` if `vehicle_id` holds it.
    pub async fn release(&self, plate: &str, vehicle_id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM vehicle_plates WHERE license_plate = $1 AND vehicle_id = $2")
            .bind(plate)
            .bind(vehicle_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
