//! A row of `read.vehicles` and how events change it.

use carshare_domain::time::TimeWindow;
use carshare_domain::vehicle::{AvailabilityRule, AvailabilityRules, VehicleEvent};
use carshare_event_store::StoredEvent;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::PgConnection;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
    /// Holds changed by the events applied since the row was loaded, in order: the booking and
    /// its window, or `None` when released. They are written to `read.vehicle_holds`.
    #[sqlx(skip)]
    pub(crate) hold_changes: Vec<(Uuid, Option<TimeWindow>)>,
    /// Whether an applied event changed more than the holds and the row's bookkeeping (sequence,
    /// position, update time): then the whole row is rewritten, otherwise only those.
    #[sqlx(skip)]
    pub(crate) rewritten: bool,
}

/// Columns read back by the projection and the queries.
pub(crate) const COLUMNS: &str =
    "id, owner_id, license_plate, make, model, year, color, fuel_type, \
    transmission, hourly_rate, location_address, location_lat, location_lng, status, images, \
    description, availability, removed_at, created_at, updated_at, last_sequence, \
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
                removed_at: None,
                created_at: at,
                updated_at: at,
                last_sequence: stored.sequence,
                last_position: stored.position,
                hold_changes: Vec::new(),
                rewritten: true,
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
        let is_hold = matches!(
            event,
            VehicleEvent::WindowReserved { .. } | VehicleEvent::ReservationReleased { .. }
        );
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
            } => self
                .hold_changes
                .push((booking_id, Some(TimeWindow { start, end }))),
            VehicleEvent::ReservationReleased { booking_id, .. } => {
                self.hold_changes.push((booking_id, None))
            }
            VehicleEvent::VehicleRemoved { at, .. } => self.removed_at = Some(at),
        }
        if !is_hold {
            self.rewritten = true;
        }
        self.last_sequence = stored.sequence;
        self.last_position = stored.position;
        Ok(())
    }

    /// The availability rules as a domain value.
    pub fn rules(&self) -> AvailabilityRules {
        AvailabilityRules(self.availability.0.clone())
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
    // Locked, in one order (no deadlock between two writers of overlapping batches): a
    // second writer of one of these cars waits here until this transaction ends, then loads
    // the row with everything it wrote, so the row loaded tells which events its holds carry.
    let rows: Vec<VehicleRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM {table} WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE"
    ))
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
    dated_available, dated_blocked, search_text, removed_at, created_at, \
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
    search_text = EXCLUDED.search_text, removed_at = EXCLUDED.removed_at, \
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

/// Writes rows and the holds their events changed. `tables` names the vehicles table and the
/// holds table of the target.
///
/// A row whose events changed more than its holds is rewritten whole; one whose events only
/// reserved or released windows gets a narrow update of its bookkeeping columns (heap-only,
/// no index entries). Either way the row is written only if it is newer than the stored one,
/// and holds only for the rows that were written, so a stale batch (redelivered while another
/// worker had moved on) changes nothing.
pub(crate) async fn write(
    conn: &mut PgConnection,
    tables: (&str, &str),
    rows: &[&VehicleRow],
    mode: Write,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let (table, holds_table) = tables;
    let written: HashSet<Uuid> = match mode {
        Write::Insert => {
            copy_in(conn, table, rows).await?;
            rows.iter().map(|r| r.id).collect()
        }
        Write::Upsert => {
            let (whole, narrow): (Vec<&VehicleRow>, Vec<&VehicleRow>) =
                rows.iter().partition(|r| r.rewritten);
            let mut written: HashSet<Uuid> =
                upsert(conn, table, &whole).await?.into_iter().collect();
            written.extend(touch(conn, table, &narrow).await?);
            written
        }
    };
    write_holds(conn, (table, holds_table), rows, &written).await
}

/// Moves the bookkeeping columns of rows whose events only changed holds.
async fn touch(
    conn: &mut PgConnection,
    table: &str,
    rows: &[&VehicleRow],
) -> Result<Vec<Uuid>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let id: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let updated_at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.updated_at).collect();
    let last_sequence: Vec<i64> = rows.iter().map(|r| r.last_sequence).collect();
    let last_position: Vec<i64> = rows.iter().map(|r| r.last_position).collect();
    sqlx::query_scalar(&format!(
        "UPDATE {table} AS cur SET updated_at = u.updated_at, \
           last_sequence = u.last_sequence, last_position = u.last_position \
         FROM UNNEST($1::uuid[], $2::timestamptz[], $3::int8[], $4::int8[]) \
           AS u(id, updated_at, last_sequence, last_position) \
         WHERE cur.id = u.id AND cur.last_sequence < u.last_sequence \
         RETURNING cur.id"
    ))
    .bind(id)
    .bind(updated_at)
    .bind(last_sequence)
    .bind(last_position)
    .fetch_all(&mut *conn)
    .await
}

/// Applies the net hold changes of the written rows (the last change per vehicle and booking)
/// to the holds table, and to the rows' `reserved` by difference: the windows the changed
/// holds had come out, the windows they hold now go in. A car's holds never overlap (the
/// Vehicle aggregate refuses a window within the buffer of another, and a booking holding
/// one already), so this keeps `reserved` equal to the union of the car's holds without
/// reading them again: a booking costs the same whether the car holds three windows or three
/// hundred.
async fn write_holds(
    conn: &mut PgConnection,
    (table, holds_table): (&str, &str),
    rows: &[&VehicleRow],
    written: &HashSet<Uuid>,
) -> Result<(), sqlx::Error> {
    let mut net: BTreeMap<(Uuid, Uuid), Option<TimeWindow>> = BTreeMap::new();
    // Holds that may be in the table already: those whose first change here is a release. A
    // booking reserves a window only while it holds none on the car (the Vehicle aggregate
    // refuses a second one), and the row was loaded locked, after any other writer of this
    // car committed (`load`): the events it folded are applied nowhere yet, so a hold first
    // reserved by one of them is not in the table.
    let mut stored: BTreeSet<(Uuid, Uuid)> = BTreeSet::new();
    for r in rows.iter().filter(|r| written.contains(&r.id)) {
        for (booking_id, window) in &r.hold_changes {
            let key = (r.id, *booking_id);
            if !net.contains_key(&key) && window.is_none() {
                stored.insert(key);
            }
            net.insert(key, *window);
        }
    }
    if net.is_empty() {
        return Ok(());
    }
    // Every changed hold that may be stored leaves the table first, telling the window it had.
    // Under a stream of new bookings there is none, and no statement.
    let gone: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)> = if stored.is_empty() {
        Vec::new()
    } else {
        let (vehicles, bookings): (Vec<Uuid>, Vec<Uuid>) = stored.into_iter().unzip();
        sqlx::query_as(&format!(
            "DELETE FROM {holds_table} h USING UNNEST($1::uuid[], $2::uuid[]) AS u(v, b) \
             WHERE h.vehicle_id = u.v AND h.booking_id = u.b \
             RETURNING h.vehicle_id, h.start_at, h.end_at"
        ))
        .bind(vehicles)
        .bind(bookings)
        .fetch_all(&mut *conn)
        .await?
    };
    let held: Vec<(Uuid, Uuid, TimeWindow)> = net
        .into_iter()
        .filter_map(|((vehicle_id, booking_id), window)| {
            window.map(|w| (vehicle_id, booking_id, w))
        })
        .collect();
    if gone.is_empty() && held.is_empty() {
        return Ok(()); // released holds the table never had
    }
    let gone_vehicle: Vec<Uuid> = gone.iter().map(|g| g.0).collect();
    let gone_start: Vec<DateTime<Utc>> = gone.iter().map(|g| g.1).collect();
    let gone_end: Vec<DateTime<Utc>> = gone.iter().map(|g| g.2).collect();
    let held_vehicle: Vec<Uuid> = held.iter().map(|h| h.0).collect();
    let held_booking: Vec<Uuid> = held.iter().map(|h| h.1).collect();
    let held_start: Vec<DateTime<Utc>> = held.iter().map(|h| h.2.start).collect();
    let held_end: Vec<DateTime<Utc>> = held.iter().map(|h| h.2.end).collect();
    // `reserved` loses the windows gone and gains the windows held, per vehicle.
    sqlx::query(&format!(
        "WITH inserted AS ( \
           INSERT INTO {holds_table} (vehicle_id, booking_id, start_at, end_at) \
           SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::timestamptz[]) \
           ON CONFLICT (vehicle_id, booking_id) \
           DO UPDATE SET start_at = EXCLUDED.start_at, end_at = EXCLUDED.end_at), \
         change AS ( \
           SELECT c.v AS id, \
             coalesce(range_agg(tstzrange(c.s, c.e)) FILTER (WHERE NOT c.held), '{{}}') AS gone, \
             coalesce(range_agg(tstzrange(c.s, c.e)) FILTER (WHERE c.held), '{{}}') AS held \
           FROM ( \
             SELECT v, s, e, false FROM UNNEST($5::uuid[], $6::timestamptz[], $7::timestamptz[]) \
               AS g(v, s, e) \
             UNION ALL \
             SELECT v, s, e, true FROM UNNEST($1::uuid[], $3::timestamptz[], $4::timestamptz[]) \
               AS h(v, s, e)) AS c(v, s, e, held) \
           GROUP BY c.v) \
         UPDATE {table} v SET reserved = (v.reserved - change.gone) + change.held \
         FROM change WHERE v.id = change.id"
    ))
    .bind(held_vehicle)
    .bind(held_booking)
    .bind(held_start)
    .bind(held_end)
    .bind(gone_vehicle)
    .bind(gone_start)
    .bind(gone_end)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts or replaces whole rows, never with an older state; the ids written.
async fn upsert(
    conn: &mut PgConnection,
    table: &str,
    rows: &[&VehicleRow],
) -> Result<Vec<Uuid>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
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
           last_sequence, last_position) \
         SELECT u.id, u.owner_id, u.license_plate, u.make, u.model, u.year, u.color, u.fuel_type, \
           u.transmission, u.hourly_rate, u.location_address, u.location_lat, u.location_lng, u.status, \
           u.images::jsonb, u.description, u.availability::jsonb, u.has_available_rules, \
           u.weekly_available::int4multirange, u.weekly_blocked::int4multirange, \
           u.dated_available::tstzmultirange, u.dated_blocked::tstzmultirange, u.search_text, \
           u.removed_at, u.created_at, u.updated_at, u.last_sequence, u.last_position \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::text[], \
           $8::text[], $9::text[], $10::int8[], $11::text[], $12::float8[], $13::float8[], $14::text[], \
           $15::text[], $16::text[], $17::text[], $18::bool[], $19::text[], $20::text[], $21::text[], \
           $22::text[], $23::text[], $24::timestamptz[], $25::timestamptz[], $26::timestamptz[], \
           $27::int8[], $28::int8[]) \
           AS u(id, owner_id, license_plate, make, model, year, color, fuel_type, transmission, \
             hourly_rate, location_address, location_lat, location_lng, status, images, description, \
             availability, has_available_rules, weekly_available, weekly_blocked, dated_available, \
             dated_blocked, search_text, removed_at, created_at, updated_at, last_sequence, \
             last_position) \
         {UPSERT} RETURNING cur.id"
    );
    sqlx::query_scalar(&sql)
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
        .fetch_all(&mut *conn)
        .await
}
