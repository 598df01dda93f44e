//! A row of `read.vehicles` and how events change it.

use carshare_domain::time::TimeWindow;
use carshare_domain::vehicle::{AvailabilityRule, AvailabilityRules, Hold, VehicleEvent};
use carshare_event_store::StoredEvent;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::PgConnection;
use std::collections::HashMap;
use uuid::Uuid;

/// A vehicle as the read side knows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct VehicleRow {
    /// Id.
    pub id: Uuid,
    /// Owning host.
    pub owner_id: Uuid,
    /// Normalised plate.
    pub license_plate: String,
    /// Manufacturer.
    pub make: String,
    /// Model.
    pub model: String,
    /// Model year.
    pub year: i32,
    /// Colour.
    pub color: Option<String>,
    /// Fuel (wire name).
    pub fuel_type: Option<String>,
    /// Gearbox (wire name).
    pub transmission: Option<String>,
    /// Won per hour.
    pub hourly_rate: i64,
    /// Pickup address.
    pub location_address: String,
    /// Latitude.
    pub location_lat: f64,
    /// Longitude.
    pub location_lng: f64,
    /// Status (wire name).
    pub status: String,
    /// Image references.
    pub images: Json<Vec<String>>,
    /// Description.
    pub description: Option<String>,
    /// Availability rules.
    pub availability: Json<Vec<AvailabilityRule>>,
    /// Windows held by bookings.
    pub holds: Json<Vec<Hold>>,
    /// When removed, if removed.
    pub removed_at: Option<DateTime<Utc>>,
    /// Registration time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Sequence of the last event applied.
    pub last_sequence: i64,
    /// Global position of the last event applied.
    pub last_position: i64,
}

/// Columns read back by the projection and the queries.
pub(crate) const COLUMNS: &str =
    "id, owner_id, license_plate, make, model, year, color, fuel_type, \
    transmission, hourly_rate, location_address, location_lat, location_lng, status, images, \
    description, availability, holds, removed_at, created_at, updated_at, last_sequence, \
    last_position";

impl VehicleRow {
    pub(crate) fn from_registration(
        id: Uuid,
        event: VehicleEvent,
        stored: &StoredEvent,
    ) -> Result<VehicleRow, String> {
        match event {
            VehicleEvent::VehicleRegistered {
                owner_id,
                details,
                hourly_rate,
                location,
                images,
                status,
                at,
                ..
            } => Ok(VehicleRow {
                id,
                owner_id,
                license_plate: details.license_plate.as_str().to_string(),
                make: details.make,
                model: details.model,
                year: details.year,
                color: details.color,
                fuel_type: details.fuel_type.map(|f| f.as_str().to_string()),
                transmission: details.transmission.map(|t| t.as_str().to_string()),
                hourly_rate: hourly_rate.amount(),
                location_address: location.address,
                location_lat: location.lat,
                location_lng: location.lng,
                status: status.as_str().to_string(),
                images: Json(images),
                description: details.description,
                availability: Json(Vec::new()),
                holds: Json(Vec::new()),
                removed_at: None,
                created_at: at,
                updated_at: at,
                last_sequence: stored.sequence,
                last_position: stored.position,
            }),
            other => Err(format!(
                "{} before VehicleRegistered (sequence {})",
                other.name(),
                stored.sequence
            )),
        }
    }

    pub(crate) fn apply(
        &mut self,
        event: VehicleEvent,
        stored: &StoredEvent,
    ) -> Result<(), String> {
        self.updated_at = event.at();
        match event {
            VehicleEvent::VehicleRegistered { .. } => {
                return Err("VehicleRegistered for a vehicle already registered".into())
            }
            VehicleEvent::VehicleDetailsUpdated { details, .. } => {
                self.license_plate = details.license_plate.as_str().to_string();
                self.make = details.make;
                self.model = details.model;
                self.year = details.year;
                self.color = details.color;
                self.fuel_type = details.fuel_type.map(|f| f.as_str().to_string());
                self.transmission = details.transmission.map(|t| t.as_str().to_string());
                self.description = details.description;
            }
            VehicleEvent::HourlyRateChanged { hourly_rate, .. } => {
                self.hourly_rate = hourly_rate.amount()
            }
            VehicleEvent::VehicleRelocated { location, .. } => {
                self.location_address = location.address;
                self.location_lat = location.lat;
                self.location_lng = location.lng;
            }
            VehicleEvent::VehicleStatusChanged { status, .. } => {
                self.status = status.as_str().to_string()
            }
            VehicleEvent::AvailabilitySet { rules, .. } => self.availability = Json(rules),
            VehicleEvent::VehicleImagesAttached { images, .. } => {
                for image in images {
                    if !self.images.0.contains(&image) {
                        self.images.0.push(image);
                    }
                }
            }
            VehicleEvent::VehicleImagesReplaced { images, .. } => self.images = Json(images),
            VehicleEvent::WindowReserved {
                booking_id,
                start,
                end,
                ..
            } => {
                self.holds.0.retain(|h| h.booking_id != booking_id);
                self.holds.0.push(Hold {
                    booking_id,
                    window: TimeWindow { start, end },
                });
            }
            VehicleEvent::ReservationReleased { booking_id, .. } => {
                self.holds.0.retain(|h| h.booking_id != booking_id)
            }
            VehicleEvent::VehicleRemoved { at, .. } => self.removed_at = Some(at),
        }
        self.last_sequence = stored.sequence;
        self.last_position = stored.position;
        Ok(())
    }

    /// The availability rules as a domain value.
    pub fn rules(&self) -> AvailabilityRules {
        AvailabilityRules(self.availability.0.clone())
    }

    /// The held windows, for the `reserved` multirange.
    fn reserved(&self) -> String {
        let spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = self
            .holds
            .0
            .iter()
            .map(|h| (h.window.start, h.window.end))
            .collect();
        tstz_multirange(&spans)
    }

    fn search_text(&self) -> String {
        let mut text = format!("{} {}", self.make, self.model);
        if let Some(d) = &self.description {
            text.push(' ');
            text.push_str(d);
        }
        text
    }
}

pub(crate) async fn load(
    conn: &mut PgConnection,
    table: &str,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, VehicleRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<VehicleRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM {table} WHERE id = ANY($1)"))
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().map(|r| (r.id, r)).collect())
}

fn int_multirange(spans: &[(u32, u32)]) -> String {
    let parts: Vec<String> = spans.iter().map(|(a, b)| format!("[{a},{b})")).collect();
    format!("{{{}}}", parts.join(","))
}

fn tstz_multirange(spans: &[(DateTime<Utc>, DateTime<Utc>)]) -> String {
    let parts: Vec<String> = spans
        .iter()
        .map(|(a, b)| format!("[\"{}\",\"{}\")", a.to_rfc3339(), b.to_rfc3339()))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// Every written column, in `COPY` order (the generated `location` is computed by Postgres).
const WRITE_COLUMNS: &str = "id, owner_id, license_plate, make, model, year, color, fuel_type, \
    transmission, hourly_rate, location_address, location_lat, location_lng, status, images, \
    description, availability, has_available_rules, weekly_available, weekly_blocked, \
    dated_available, dated_blocked, holds, reserved, search_text, removed_at, created_at, \
    updated_at, last_sequence, last_position";

/// Appends `value` to a `COPY ... (FORMAT text)` line, escaped.
fn copy_text(line: &mut String, value: &str) {
    if !value
        .bytes()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        line.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => line.push_str("\\\\"),
            '\t' => line.push_str("\\t"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c => line.push(c),
        }
    }
}

fn copy_opt(line: &mut String, value: Option<&str>) {
    match value {
        Some(v) => copy_text(line, v),
        None => line.push_str("\\N"),
    }
}

fn copy_time(line: &mut String, value: Option<DateTime<Utc>>) {
    match value {
        Some(t) => line.push_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        None => line.push_str("\\N"),
    }
}

/// Inserts new rows with `COPY`.
async fn copy_in(
    conn: &mut PgConnection,
    table: &str,
    rows: &[&VehicleRow],
) -> Result<(), sqlx::Error> {
    use std::fmt::Write as _;
    let mut data = String::with_capacity(rows.len() * 640);
    for r in rows {
        let rules = r.rules();
        let images = serde_json::to_string(&r.images.0).unwrap_or_else(|_| "[]".into());
        let availability = serde_json::to_string(&r.availability.0).unwrap_or_else(|_| "[]".into());
        // Writing into a String cannot fail.
        let _ = write!(data, "{}\t{}\t", r.id, r.owner_id);
        copy_text(&mut data, &r.license_plate);
        data.push('\t');
        copy_text(&mut data, &r.make);
        data.push('\t');
        copy_text(&mut data, &r.model);
        let _ = write!(data, "\t{}\t", r.year);
        copy_opt(&mut data, r.color.as_deref());
        data.push('\t');
        copy_opt(&mut data, r.fuel_type.as_deref());
        data.push('\t');
        copy_opt(&mut data, r.transmission.as_deref());
        let _ = write!(data, "\t{}\t", r.hourly_rate);
        copy_text(&mut data, &r.location_address);
        let _ = write!(data, "\t{}\t{}\t", r.location_lat, r.location_lng);
        copy_text(&mut data, &r.status);
        data.push('\t');
        copy_text(&mut data, &images);
        data.push('\t');
        copy_opt(&mut data, r.description.as_deref());
        data.push('\t');
        copy_text(&mut data, &availability);
        let _ = write!(
            data,
            "\t{}\t{}\t{}\t",
            if rules.has_available_rules() {
                't'
            } else {
                'f'
            },
            int_multirange(&rules.weekly_minutes(false)),
            int_multirange(&rules.weekly_minutes(true)),
        );
        copy_text(&mut data, &tstz_multirange(&rules.dated_instants(false)));
        data.push('\t');
        copy_text(&mut data, &tstz_multirange(&rules.dated_instants(true)));
        data.push('\t');
        copy_text(
            &mut data,
            &serde_json::to_string(&r.holds.0).unwrap_or_else(|_| "[]".into()),
        );
        data.push('\t');
        copy_text(&mut data, &r.reserved());
        data.push('\t');
        copy_text(&mut data, &r.search_text());
        data.push('\t');
        copy_time(&mut data, r.removed_at);
        data.push('\t');
        copy_time(&mut data, Some(r.created_at));
        data.push('\t');
        copy_time(&mut data, Some(r.updated_at));
        let _ = writeln!(data, "\t{}\t{}", r.last_sequence, r.last_position);
    }
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {table} ({WRITE_COLUMNS}) FROM STDIN (FORMAT text)"
        ))
        .await?;
    copy.send(data.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// Replaces an existing row, but never with an older state of it (redelivered events).
const UPSERT: &str = "ON CONFLICT (id) DO UPDATE SET owner_id = EXCLUDED.owner_id, \
    license_plate = EXCLUDED.license_plate, make = EXCLUDED.make, model = EXCLUDED.model, \
    year = EXCLUDED.year, color = EXCLUDED.color, fuel_type = EXCLUDED.fuel_type, \
    transmission = EXCLUDED.transmission, hourly_rate = EXCLUDED.hourly_rate, \
    location_address = EXCLUDED.location_address, location_lat = EXCLUDED.location_lat, \
    location_lng = EXCLUDED.location_lng, status = EXCLUDED.status, images = EXCLUDED.images, \
    description = EXCLUDED.description, availability = EXCLUDED.availability, \
    has_available_rules = EXCLUDED.has_available_rules, \
    weekly_available = EXCLUDED.weekly_available, weekly_blocked = EXCLUDED.weekly_blocked, \
    dated_available = EXCLUDED.dated_available, dated_blocked = EXCLUDED.dated_blocked, \
    holds = EXCLUDED.holds, reserved = EXCLUDED.reserved, search_text = EXCLUDED.search_text, removed_at = EXCLUDED.removed_at, \
    created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, \
    last_sequence = EXCLUDED.last_sequence, last_position = EXCLUDED.last_position \
    WHERE cur.last_sequence < EXCLUDED.last_sequence";

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// Rows known not to exist yet (the caller holds the projection's lock): `COPY`, the
    /// cheapest way into a table.
    Insert,
    /// Rows that may exist: insert or replace, never going back to an older sequence.
    Upsert,
}

/// Writes rows in one statement.
pub(crate) async fn write(
    conn: &mut PgConnection,
    table: &str,
    rows: &[&VehicleRow],
    mode: Write,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    if mode == Write::Insert {
        return copy_in(conn, table, rows).await;
    }
    let n = rows.len();
    let mut id = Vec::with_capacity(n);
    let mut owner_id = Vec::with_capacity(n);
    let mut plate = Vec::with_capacity(n);
    let mut make = Vec::with_capacity(n);
    let mut model = Vec::with_capacity(n);
    let mut year = Vec::with_capacity(n);
    let mut color: Vec<Option<String>> = Vec::with_capacity(n);
    let mut fuel: Vec<Option<String>> = Vec::with_capacity(n);
    let mut transmission: Vec<Option<String>> = Vec::with_capacity(n);
    let mut rate = Vec::with_capacity(n);
    let mut address = Vec::with_capacity(n);
    let mut lat = Vec::with_capacity(n);
    let mut lng = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut images = Vec::with_capacity(n);
    let mut description: Vec<Option<String>> = Vec::with_capacity(n);
    let mut availability = Vec::with_capacity(n);
    let mut has_rules = Vec::with_capacity(n);
    let mut weekly_available = Vec::with_capacity(n);
    let mut weekly_blocked = Vec::with_capacity(n);
    let mut dated_available = Vec::with_capacity(n);
    let mut dated_blocked = Vec::with_capacity(n);
    let mut holds = Vec::with_capacity(n);
    let mut reserved = Vec::with_capacity(n);
    let mut search_text = Vec::with_capacity(n);
    let mut removed_at: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut created_at = Vec::with_capacity(n);
    let mut updated_at = Vec::with_capacity(n);
    let mut last_sequence = Vec::with_capacity(n);
    let mut last_position = Vec::with_capacity(n);
    for r in rows {
        let rules = r.rules();
        id.push(r.id);
        owner_id.push(r.owner_id);
        plate.push(r.license_plate.clone());
        make.push(r.make.clone());
        model.push(r.model.clone());
        year.push(r.year);
        color.push(r.color.clone());
        fuel.push(r.fuel_type.clone());
        transmission.push(r.transmission.clone());
        rate.push(r.hourly_rate);
        address.push(r.location_address.clone());
        lat.push(r.location_lat);
        lng.push(r.location_lng);
        status.push(r.status.clone());
        images.push(serde_json::to_string(&r.images.0).unwrap_or_else(|_| "[]".into()));
        description.push(r.description.clone());
        availability.push(serde_json::to_string(&r.availability.0).unwrap_or_else(|_| "[]".into()));
        has_rules.push(rules.has_available_rules());
        weekly_available.push(int_multirange(&rules.weekly_minutes(false)));
        weekly_blocked.push(int_multirange(&rules.weekly_minutes(true)));
        dated_available.push(tstz_multirange(&rules.dated_instants(false)));
        dated_blocked.push(tstz_multirange(&rules.dated_instants(true)));
        holds.push(serde_json::to_string(&r.holds.0).unwrap_or_else(|_| "[]".into()));
        reserved.push(r.reserved());
        search_text.push(r.search_text());
        removed_at.push(r.removed_at);
        created_at.push(r.created_at);
        updated_at.push(r.updated_at);
        last_sequence.push(r.last_sequence);
        last_position.push(r.last_position);
    }
    let sql = format!(
        "INSERT INTO {table} AS cur (id, owner_id, license_plate, make, model, year, color, fuel_type, \
           transmission, hourly_rate, location_address, location_lat, location_lng, status, images, \
           description, availability, has_available_rules, weekly_available, weekly_blocked, \
           dated_available, dated_blocked, search_text, removed_at, created_at, updated_at, \
           last_sequence, last_position, holds, reserved) \
         SELECT u.id, u.owner_id, u.license_plate, u.make, u.model, u.year, u.color, u.fuel_type, \
           u.transmission, u.hourly_rate, u.location_address, u.location_lat, u.location_lng, u.status, \
           u.images::jsonb, u.description, u.availability::jsonb, u.has_available_rules, \
           u.weekly_available::int4multirange, u.weekly_blocked::int4multirange, \
           u.dated_available::tstzmultirange, u.dated_blocked::tstzmultirange, u.search_text, \
           u.removed_at, u.created_at, u.updated_at, u.last_sequence, u.last_position, \
           u.holds::jsonb, u.reserved::tstzmultirange \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::text[], \
           $8::text[], $9::text[], $10::int8[], $11::text[], $12::float8[], $13::float8[], $14::text[], \
           $15::text[], $16::text[], $17::text[], $18::bool[], $19::text[], $20::text[], $21::text[], \
           $22::text[], $23::text[], $24::timestamptz[], $25::timestamptz[], $26::timestamptz[], \
           $27::int8[], $28::int8[], $29::text[], $30::text[]) \
           AS u(id, owner_id, license_plate, make, model, year, color, fuel_type, transmission, \
             hourly_rate, location_address, location_lat, location_lng, status, images, description, \
             availability, has_available_rules, weekly_available, weekly_blocked, dated_available, \
             dated_blocked, search_text, removed_at, created_at, updated_at, last_sequence, \
             last_position, holds, reserved) \
         {UPSERT}"
    );
    sqlx::query(&sql)
        .bind(id)
        .bind(owner_id)
        .bind(plate)
        .bind(make)
        .bind(model)
        .bind(year)
        .bind(color)
        .bind(fuel)
        .bind(transmission)
        .bind(rate)
        .bind(address)
        .bind(lat)
        .bind(lng)
        .bind(status)
        .bind(images)
        .bind(description)
        .bind(availability)
        .bind(has_rules)
        .bind(weekly_available)
        .bind(weekly_blocked)
        .bind(dated_available)
        .bind(dated_blocked)
        .bind(search_text)
        .bind(removed_at)
        .bind(created_at)
        .bind(updated_at)
        .bind(last_sequence)
        .bind(last_position)
        .bind(holds)
        .bind(reserved)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
