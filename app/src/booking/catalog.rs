//! Events and seats: the admin API's create/update/delete, and the public
//! reads served from the reader pool through short-lived Redis copies.

use serde::{Deserialize, Serialize};
use sqlx::{MySql, QueryBuilder, Row};
use time::{OffsetDateTime, PrimitiveDateTime};
use utoipa::ToSchema;

use super::keys::{
    event_cache_key, event_version_key, events_cache_key, events_version_key, seats_cache_key,
    seats_stale_key, seats_version_key,
};
use super::{Booking, BookingError, EVENT_CACHE_TTL, SEATS_CACHE_TTL, SEATS_STALE_TTL};
use crate::clock::{format_ms, parse_rfc3339_ms, MAX_STORABLE_MS, MIN_STORABLE_MS};
use crate::queue::config::QueueConfig;
use crate::queue::{EventId, QueueError};
use crate::Invalid;

pub const MAX_SEATS: usize = 100_000;
const INSERT_BATCH: usize = 1_000;

/// Section `main`, rows A, B, … and seat numbers from 1.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatMap {
    #[schema(minimum = 1, maximum = 702)]
    pub rows: i64,
    #[schema(minimum = 1, maximum = 1000)]
    pub seats_per_row: i64,
}

/// One seat of an explicit seat list.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatSpec {
    #[schema(pattern = "^[A-Za-z0-9_]{1,32}$")]
    pub section: String,
    #[schema(pattern = "^[A-Za-z0-9_]{1,16}$")]
    pub row: String,
    #[schema(minimum = 1, maximum = 100000)]
    pub number: i64,
    #[schema(min_length = 1, max_length = 32)]
    pub price_tier: String,
}

// Dates: the document promises years written 1001-9998, so that whatever
// the offset the instant stays within DATETIME's years 1000-9999 (the API
// accepts any instant in those years; see `timestamp`).

/// `POST /api/v1/admin/events`: an event with its seats (a seat_map or a
/// list of seats, not both).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEvent {
    /// Also the queue's event_id.
    #[schema(pattern = "^[a-z0-9-]{1,64}$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(min_length = 1, max_length = 200)]
    pub venue: String,
    #[schema(format = DateTime, pattern = "^(100[1-9]|10[1-9][0-9]|1[1-9][0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-")]
    pub starts_at: String,
    /// The queue's opens_at: joins before it go to the pre-queue.
    #[schema(format = DateTime, pattern = "^(100[1-9]|10[1-9][0-9]|1[1-9][0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-")]
    pub sale_opens_at: String,
    /// Where the event takes place, an IANA time zone (`Asia/Seoul`); the
    /// fans' page shows its times there. UTC when omitted.
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_+/-]{0,63}$", example = "Asia/Seoul")]
    pub time_zone: Option<String>,
    pub seat_map: Option<SeatMap>,
    /// Instead of seat_map.
    #[schema(min_items = 1, max_items = 100000)]
    pub seats: Option<Vec<SeatSpec>>,
}

/// `PATCH /api/v1/admin/events/{event_id}`: only the fields given change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchEvent {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub venue: Option<String>,
    #[schema(format = DateTime, pattern = "^(100[1-9]|10[1-9][0-9]|1[1-9][0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-")]
    pub starts_at: Option<String>,
    /// Moves the queue's opening too.
    #[schema(format = DateTime, pattern = "^(100[1-9]|10[1-9][0-9]|1[1-9][0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-")]
    pub sale_opens_at: Option<String>,
    /// An IANA time zone (`Asia/Seoul`).
    #[schema(pattern = "^[A-Za-z][A-Za-z0-9_+/-]{0,63}$", example = "Asia/Seoul")]
    pub time_zone: Option<String>,
}

/// An event as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: String,
    pub name: String,
    pub venue: String,
    #[schema(format = DateTime)]
    pub starts_at: String,
    #[schema(format = DateTime)]
    pub sale_opens_at: String,
    /// The IANA time zone the event takes place in.
    #[serde(default = "utc")]
    pub time_zone: String,
    pub seat_count: i64,
}

fn utc() -> String {
    "UTC".into()
}

/// An IANA time zone name by its shape (`Asia/Seoul`, `UTC`,
/// `America/Argentina/Buenos_Aires`, `Etc/GMT+9`): the service has no
/// time zone database; a browser that does not know the name shows the
/// fan's own zone.
pub fn time_zone(v: &str) -> Result<String, Invalid> {
    let ok = (1..=64).contains(&v.len())
        && v.as_bytes()[0].is_ascii_alphabetic()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+/-".contains(&b));
    if ok {
        Ok(v.to_string())
    } else {
        Err(Invalid(format!(
            "time_zone must be an IANA time zone name like Asia/Seoul, got `{v}`"
        )))
    }
}

/// `GET /api/v1/events`: every event, soonest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    pub events: Vec<Event>,
}

/// Whether a seat can be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeatStatus {
    Available,
    Held,
    Reserved,
}

/// One seat and its status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SeatView {
    /// `{section}-{row}-{number}`
    pub seat_id: String,
    pub section: String,
    pub row: String,
    pub number: i32,
    pub price_tier: String,
    pub status: SeatStatus,
}

/// `GET /api/v1/events/{event_id}/seats`: front rows first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SeatList {
    pub seats: Vec<SeatView>,
}

/// A seat list as gzipped JSON: how it is cached and, to a client that
/// accepts gzip, sent.
#[derive(Debug, Clone)]
pub struct GzippedSeats(bytes::Bytes);

impl GzippedSeats {
    /// Gzips JSON. Level 6 (the default): the map is built at most every
    /// 2 s per event and replica and read many times in between.
    pub fn gzip(json: &[u8]) -> Result<GzippedSeats, BookingError> {
        use std::io::Write;
        let mut z = flate2::write::GzEncoder::new(
            Vec::with_capacity(json.len() / 8),
            flate2::Compression::default(),
        );
        z.write_all(json).map_err(BookingError::Gzip)?;
        Ok(GzippedSeats(z.finish().map_err(BookingError::Gzip)?.into()))
    }

    /// The gzipped bytes, as cached.
    pub fn gzipped(&self) -> bytes::Bytes {
        self.0.clone()
    }

    /// The JSON, for a client that does not accept gzip.
    pub fn json(&self) -> Result<Vec<u8>, BookingError> {
        use std::io::Read;
        let mut out = Vec::with_capacity(self.0.len() * 8);
        flate2::read::GzDecoder::new(self.0.as_ref())
            .read_to_end(&mut out)
            .map_err(BookingError::Gzip)?;
        Ok(out)
    }
}

/// A validated seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub section: String,
    pub row: String,
    pub row_rank: i32,
    pub number: i32,
    pub price_tier: String,
}

impl Seat {
    pub fn id(&self) -> String {
        format!("{}-{}-{}", self.section, self.row, self.number)
    }
}

/// Rows of a seat map: A..Z, then AA, AB, ... (like spreadsheet columns).
pub fn row_label(mut i: usize) -> String {
    let mut label = Vec::new();
    loop {
        label.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    label.reverse();
    String::from_utf8(label).unwrap_or_default()
}

fn text(name: &str, v: &str, max: usize) -> Result<String, Invalid> {
    let t = v.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(Invalid(format!(
            "{name} must be 1-{max} printable characters"
        )));
    }
    Ok(t.to_string())
}

fn token_part(name: &str, v: &str, max: usize) -> Result<String, Invalid> {
    let ok = !v.is_empty()
        && v.len() <= max
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(v.to_string())
    } else {
        Err(Invalid(format!(
            "{name} must be 1-{max} characters of [A-Za-z0-9_], got `{v}`"
        )))
    }
}

fn timestamp(name: &str, v: &str) -> Result<i64, Invalid> {
    let ms = parse_rfc3339_ms(v)
        .ok_or_else(|| Invalid(format!("{name} must be an RFC 3339 timestamp, got `{v}`")))?;
    if !(MIN_STORABLE_MS..=MAX_STORABLE_MS).contains(&ms) {
        return Err(Invalid(format!(
            "{name} must be between the years 1000 and 9999, got `{v}`"
        )));
    }
    Ok(ms)
}

/// A validated new event.
#[derive(Debug)]
pub struct NewEvent {
    pub id: EventId,
    pub name: String,
    pub venue: String,
    pub starts_at_ms: i64,
    pub sale_opens_at_ms: i64,
    pub time_zone: String,
    pub seats: Vec<Seat>,
}

impl CreateEvent {
    pub fn validate(self) -> Result<NewEvent, Invalid> {
        let invalid = |m: &str| Invalid(m.to_string());
        let id = EventId::parse(&self.id)
            .ok_or_else(|| invalid("id must be 1-64 characters of [a-z0-9-]"))?;
        let seats = match (self.seat_map, self.seats) {
            (Some(_), Some(_)) => return Err(invalid("give seat_map or seats, not both")),
            (None, None) => return Err(invalid("give seat_map or seats")),
            (Some(map), None) => {
                if !(1..=702).contains(&map.rows) || !(1..=1000).contains(&map.seats_per_row) {
                    return Err(invalid(
                        "seat_map needs 1-702 rows and 1-1000 seats_per_row",
                    ));
                }
                if (map.rows * map.seats_per_row) as usize > MAX_SEATS {
                    return Err(Invalid(format!(
                        "an event may have at most {MAX_SEATS} seats"
                    )));
                }
                (0..map.rows as usize)
                    .flat_map(|r| {
                        (1..=map.seats_per_row as i32).map(move |n| Seat {
                            section: "main".into(),
                            row: row_label(r),
                            row_rank: r as i32,
                            number: n,
                            price_tier: "standard".into(),
                        })
                    })
                    .collect()
            }
            (None, Some(list)) => {
                if list.is_empty() || list.len() > MAX_SEATS {
                    return Err(Invalid(format!("seats must hold 1-{MAX_SEATS} seats")));
                }
                let mut ranks: Vec<String> = Vec::new();
                let mut seats = Vec::with_capacity(list.len());
                for s in list {
                    let section = token_part("section", &s.section, 32)?;
                    let row = token_part("row", &s.row, 16)?;
                    if !(1..=100_000).contains(&s.number) {
                        return Err(Invalid(format!(
                            "seat number must be 1-100000, got {}",
                            s.number
                        )));
                    }
                    let rank = match ranks.iter().position(|r| *r == row) {
                        Some(i) => i,
                        None => {
                            ranks.push(row.clone());
                            ranks.len() - 1
                        }
                    };
                    seats.push(Seat {
                        section,
                        row,
                        row_rank: rank as i32,
                        number: s.number as i32,
                        price_tier: text("price_tier", &s.price_tier, 32)?,
                    });
                }
                let mut ids: Vec<String> = seats.iter().map(Seat::id).collect();
                ids.sort_unstable();
                if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
                    return Err(Invalid(format!("seat {} is listed twice", w[0])));
                }
                seats
            }
        };
        Ok(NewEvent {
            id,
            name: text("name", &self.name, 200)?,
            venue: text("venue", &self.venue, 200)?,
            starts_at_ms: timestamp("starts_at", &self.starts_at)?,
            sale_opens_at_ms: timestamp("sale_opens_at", &self.sale_opens_at)?,
            time_zone: self
                .time_zone
                .as_deref()
                .map(time_zone)
                .transpose()?
                .unwrap_or_else(utc),
            seats,
        })
    }
}

/// Unix milliseconds as a `DATETIME(3)` value in UTC. Times are bound as a
/// plain date and time, never as a TIMESTAMP: the server converts a
/// TIMESTAMP through its range, which ends in January 2038.
pub fn to_datetime(ms: i64) -> PrimitiveDateTime {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    PrimitiveDateTime::new(t.date(), t.time())
}

/// A `DATETIME(3)` value (UTC) as Unix milliseconds.
pub fn to_ms(t: PrimitiveDateTime) -> i64 {
    (t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn event_from_row(row: &sqlx::mysql::MySqlRow) -> Result<Event, sqlx::Error> {
    let starts: PrimitiveDateTime = row.try_get("starts_at")?;
    let opens: PrimitiveDateTime = row.try_get("sale_opens_at")?;
    Ok(Event {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        venue: row.try_get("venue")?,
        starts_at: format_ms(to_ms(starts)),
        sale_opens_at: format_ms(to_ms(opens)),
        time_zone: row.try_get("time_zone")?,
        seat_count: row.try_get("seat_count")?,
    })
}

/// The columns of an event as the API shows it (a macro, so that queries
/// stay static strings).
macro_rules! event_select {
    () => {
        "SELECT e.id, e.name, e.venue, e.starts_at, e.sale_opens_at, e.time_zone, \
         (SELECT COUNT(*) FROM seats s WHERE s.event_id = e.id) AS seat_count FROM events e "
    };
}

impl Booking {
    /// Forgets every cached copy of an event (created, changed, removed):
    /// the list, the event, and both seat maps (each version counted up).
    async fn event_changed(&self, event: &EventId) {
        let p = &self.prefix;
        self.cache_changed(events_version_key(p), &[events_cache_key(p)])
            .await;
        self.cache_changed(event_version_key(p, event), &[event_cache_key(p, event)])
            .await;
        self.seat_maps_forget(event, true).await;
    }

    /// Creates the event, its seats and (unless one exists) its queue with
    /// default settings opening at `sale_opens_at`.
    pub async fn create_event(&self, e: NewEvent) -> Result<Event, BookingError> {
        let mut tx = self.db.writer.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO events (id, name, venue, starts_at, sale_opens_at, time_zone, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, NOW(3), NOW(3))",
        )
        .bind(e.id.as_str())
        .bind(&e.name)
        .bind(&e.venue)
        .bind(to_datetime(e.starts_at_ms))
        .bind(to_datetime(e.sale_opens_at_ms))
        .bind(&e.time_zone)
        .execute(&mut *tx)
        .await
        .map_err(BookingError::from);
        match inserted {
            Err(err) if err.is_duplicate() => return Err(BookingError::EventExists),
            other => other?,
        };
        for chunk in e.seats.chunks(INSERT_BATCH) {
            let mut q: QueryBuilder<MySql> = QueryBuilder::new(
                "INSERT INTO seats (event_id, seat_id, section, row_label, row_rank, number, price_tier) ",
            );
            q.push_values(chunk, |mut b, s| {
                b.push_bind(e.id.as_str())
                    .push_bind(s.id())
                    .push_bind(&s.section)
                    .push_bind(&s.row)
                    .push_bind(s.row_rank)
                    .push_bind(s.number)
                    .push_bind(&s.price_tier);
            });
            match q
                .build()
                .execute(&mut *tx)
                .await
                .map_err(BookingError::from)
            {
                Err(err) if err.is_duplicate() => {
                    return Err(Invalid("a seat is listed twice".into()).into())
                }
                other => other?,
            };
        }
        sqlx::query(
            "INSERT INTO event_stock (event_id, seats, reserved, version, updated_at) \
             VALUES (?, ?, 0, 0, NOW(3))",
        )
        .bind(e.id.as_str())
        .bind(e.seats.len() as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // The event is committed: a Redis failure here must not turn into an
        // error that makes the admin retry into `event_exists`.
        let event_id = e.id.clone();
        if let Err(err) = self.create_queue(&event_id, e.sale_opens_at_ms).await {
            tracing::error!(event = %event_id, error = %err, "event created but its queue could not be: PUT its queue configuration to create it");
        }
        self.event_changed(&e.id).await;
        tracing::info!(event = %e.id, seats = e.seats.len(), "event created");
        self.event_from(&self.db.writer, &e.id).await
    }

    /// The event's queue with default settings opening at the sale, unless
    /// a queue already exists.
    async fn create_queue(&self, event: &EventId, opens_at_ms: i64) -> Result<(), QueueError> {
        if self.queue().config(event).await?.is_none() {
            let config = QueueConfig {
                opens_at: Some(opens_at_ms),
                ..QueueConfig::default()
            };
            self.queue().configure(event, &config).await?;
        }
        Ok(())
    }

    pub async fn patch_event(&self, event: &EventId, p: PatchEvent) -> Result<Event, BookingError> {
        let name = p
            .name
            .as_deref()
            .map(|v| text("name", v, 200))
            .transpose()?;
        let venue = p
            .venue
            .as_deref()
            .map(|v| text("venue", v, 200))
            .transpose()?;
        let starts = p
            .starts_at
            .as_deref()
            .map(|v| timestamp("starts_at", v))
            .transpose()?;
        let opens = p
            .sale_opens_at
            .as_deref()
            .map(|v| timestamp("sale_opens_at", v))
            .transpose()?;
        let zone = p.time_zone.as_deref().map(time_zone).transpose()?;
        let result = sqlx::query(
            "UPDATE events SET name = COALESCE(?, name), venue = COALESCE(?, venue), \
             starts_at = COALESCE(?, starts_at), sale_opens_at = COALESCE(?, sale_opens_at), \
             time_zone = COALESCE(?, time_zone), updated_at = NOW(3) WHERE id = ?",
        )
        .bind(name)
        .bind(venue)
        .bind(starts.map(to_datetime))
        .bind(opens.map(to_datetime))
        .bind(zone)
        .bind(event.as_str())
        .execute(&self.db.writer)
        .await?;
        if result.rows_affected() == 0 {
            return Err(BookingError::EventNotFound);
        }
        if let Some(opens) = opens {
            // Only the opening moves: the rest of the queue's settings (and
            // an automatic sold-out) stay as they are.
            match self.queue().set_opens_at(event, Some(opens)).await {
                Ok(()) | Err(QueueError::EventNotFound) => {}
                Err(e) => {
                    tracing::warn!(event = %event, error = %e, "the queue's opening could not be moved; PUT its configuration")
                }
            }
        }
        self.event_changed(event).await;
        tracing::info!(event = %event, "event updated");
        self.event_from(&self.db.writer, event).await
    }

    /// Removes an event that has no reservations, with its seats and queue.
    pub async fn delete_event(&self, event: &EventId) -> Result<(), BookingError> {
        let mut tx = self.db.writer.begin().await?;
        let found = sqlx::query("SELECT id FROM events WHERE id = ? FOR UPDATE")
            .bind(event.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Err(BookingError::EventNotFound);
        }
        let reservations: i64 = sqlx::query("SELECT COUNT(*) FROM reservations WHERE event_id = ?")
            .bind(event.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if reservations > 0 {
            return Err(BookingError::EventHasReservations);
        }
        sqlx::query("DELETE FROM events WHERE id = ?")
            .bind(event.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if let Err(e) = self.queue().remove(event).await {
            tracing::error!(event = %event, error = %e, "event deleted but its queue could not be removed");
        }
        self.event_changed(event).await;
        tracing::info!(event = %event, "event deleted");
        Ok(())
    }

    async fn event_from(
        &self,
        pool: &sqlx::MySqlPool,
        event: &EventId,
    ) -> Result<Event, BookingError> {
        let row = sqlx::query(concat!(event_select!(), "WHERE e.id = ?"))
            .bind(event.as_str())
            .fetch_optional(pool)
            .await?
            .ok_or(BookingError::EventNotFound)?;
        Ok(event_from_row(&row)?)
    }

    /// One event, from the cache or the reader.
    pub async fn event(&self, event: &EventId) -> Result<Event, BookingError> {
        let key = event_cache_key(&self.prefix, event);
        if let Some(v) = self
            .cache_get(&key)
            .await
            .and_then(|s| serde_json::from_str(&s).ok())
        {
            return Ok(v);
        }
        let version = event_version_key(&self.prefix, event);
        let before = self.cache_version(&version).await;
        let v = self.event_from(&self.db.reader, event).await?;
        if let Ok(text) = serde_json::to_string(&v) {
            let fresh = (key, EVENT_CACHE_TTL);
            self.cache_put_if(version, &before, text.as_bytes(), fresh, None)
                .await;
        }
        Ok(v)
    }

    /// Every event, soonest first, from the cache or the reader.
    pub async fn events(&self) -> Result<EventList, BookingError> {
        let key = events_cache_key(&self.prefix);
        if let Some(v) = self
            .cache_get(&key)
            .await
            .and_then(|s| serde_json::from_str(&s).ok())
        {
            return Ok(v);
        }
        let version = events_version_key(&self.prefix);
        let before = self.cache_version(&version).await;
        let rows = sqlx::query(concat!(
            event_select!(),
            "ORDER BY e.starts_at, e.id LIMIT 1000"
        ))
        .fetch_all(&self.db.reader)
        .await?;
        let events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let v = EventList { events };
        if let Ok(text) = serde_json::to_string(&v) {
            let fresh = (key, EVENT_CACHE_TTL);
            self.cache_put_if(version, &before, text.as_bytes(), fresh, None)
                .await;
        }
        Ok(v)
    }

    /// The seat map with each seat's status, from the cache or the reader,
    /// gzipped: it is cached and sent as gzip (a 10,000-seat map is about
    /// 1 MB of JSON and 60 KB gzipped), so that neither Redis, the copy
    /// into the answer nor the compression of every answer costs a
    /// megabyte's work per reader.
    ///
    /// One rebuild per event at a time on this replica: a burst of readers
    /// after an invalidation makes one query, not hundreds. While it runs,
    /// the others answer the last map built (at most `SEATS_STALE_TTL`
    /// old, and older than the fresh copy by the rebuild's time) instead of
    /// waiting for it: a 10,000-seat map takes long enough to build on a
    /// busy database that every reader's p99 jumped to seconds each time
    /// the fresh copy ran out. A reader who finds nobody rebuilding always
    /// gets a fresh map, so a fan's own hold shows on their next read.
    pub async fn seats(&self, event: &EventId) -> Result<GzippedSeats, BookingError> {
        let key = seats_cache_key(&self.prefix, event);
        if let Some(s) = self.cache_get_raw(&key).await {
            return Ok(GzippedSeats(s));
        }
        let lock = self.rebuild_lock(event);
        let _guard = match lock.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                let stale = seats_stale_key(&self.prefix, event);
                if let Some(s) = self.cache_get_raw(&stale).await {
                    return Ok(GzippedSeats(s));
                }
                lock.lock().await
            }
        };
        if let Some(s) = self.cache_get_raw(&key).await {
            return Ok(GzippedSeats(s));
        }
        // The version before the read: a change that commits while the
        // map is read counts it up (after its commit), and the map is then
        // not cached as fresh.
        let version = seats_version_key(&self.prefix, event);
        let before = self.cache_version(&version).await;
        let seats = self.seats_from(&self.db.reader, event).await?;
        let map = GzippedSeats::gzip(&serde_json::to_vec(&seats)?)?;
        let last = (seats_stale_key(&self.prefix, event), SEATS_STALE_TTL);
        self.cache_put_if(version, &before, &map.0, (key, SEATS_CACHE_TTL), Some(last))
            .await;
        Ok(map)
    }

    pub(crate) async fn seats_from(
        &self,
        pool: &sqlx::MySqlPool,
        event: &EventId,
    ) -> Result<SeatList, BookingError> {
        self.ensure_event(pool, event).await?;
        let rows = sqlx::query(
            "SELECT s.seat_id, s.section, s.row_label, s.number, s.price_tier, \
             CAST(CASE WHEN c.reservation_id IS NOT NULL THEN 2 \
                       WHEN c.expires_at > NOW(3) THEN 1 ELSE 0 END AS SIGNED) AS claim \
             FROM seats s LEFT JOIN seat_claims c ON c.event_id = s.event_id AND c.seat_id = s.seat_id \
             WHERE s.event_id = ? ORDER BY s.row_rank, s.section, s.number",
        )
        .bind(event.as_str())
        .fetch_all(pool)
        .await?;
        let mut seats = Vec::with_capacity(rows.len());
        for r in &rows {
            let status = match r.try_get::<i64, _>("claim")? {
                2 => SeatStatus::Reserved,
                1 => SeatStatus::Held,
                _ => SeatStatus::Available,
            };
            seats.push(SeatView {
                seat_id: r.try_get("seat_id")?,
                section: r.try_get("section")?,
                row: r.try_get("row_label")?,
                number: r.try_get("number")?,
                price_tier: r.try_get("price_tier")?,
                status,
            });
        }
        Ok(SeatList { seats })
    }

    /// `EventNotFound` unless the event exists.
    pub(crate) async fn ensure_event(
        &self,
        pool: &sqlx::MySqlPool,
        event: &EventId,
    ) -> Result<(), BookingError> {
        sqlx::query("SELECT 1 FROM events WHERE id = ?")
            .bind(event.as_str())
            .fetch_optional(pool)
            .await?
            .map(|_| ())
            .ok_or(BookingError::EventNotFound)
    }

    /// Forgets the cached seat map of an event (after any claim changes,
    /// once committed), and counts its version up so that a map read
    /// before the change is not cached after it.
    pub(crate) async fn seats_changed(&self, event: &str) {
        if let Some(ev) = EventId::parse(event) {
            self.seat_maps_forget(&ev, false).await;
        }
    }

    /// The fresh seat map (and with `last`, the one readers get while it
    /// is rebuilt) deleted, the version counted up.
    async fn seat_maps_forget(&self, event: &EventId, last: bool) {
        let mut copies = vec![seats_cache_key(&self.prefix, event)];
        if last {
            copies.push(seats_stale_key(&self.prefix, event));
        }
        self.cache_changed(seats_version_key(&self.prefix, event), &copies)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seat_map_is_gzipped_and_comes_back_the_same() {
        let json = serde_json::to_vec(&serde_json::json!({"seats": (0..2000)
            .map(|i| serde_json::json!({"seat_id": format!("main-A-{i}"), "status": "available"}))
            .collect::<Vec<_>>()}))
        .unwrap();
        let map = GzippedSeats::gzip(&json).unwrap();
        assert_eq!(&map.gzipped()[..2], &[0x1f, 0x8b], "a gzip member");
        assert!(map.gzipped().len() * 10 < json.len());
        assert_eq!(map.json().unwrap(), json);
        // A cached value that is not gzip is an error, never a panic.
        assert!(GzippedSeats(bytes::Bytes::from_static(b"{\"seats\":[]}"))
            .json()
            .is_err());
    }

    #[test]
    fn row_labels_run_like_spreadsheet_columns() {
        assert_eq!(row_label(0), "A");
        assert_eq!(row_label(25), "Z");
        assert_eq!(row_label(26), "AA");
        assert_eq!(row_label(27), "AB");
        assert_eq!(row_label(701), "ZZ");
    }

    use serde_json::{json, Value};

    fn create(extra: Value) -> Result<NewEvent, String> {
        let mut body = json!({
            "id": "film-1", "name": "Premiere", "venue": "Hall 1",
            "starts_at": "2026-12-01T20:00:00Z", "sale_opens_at": "2026-11-30T12:00:00Z"
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        serde_json::from_value::<CreateEvent>(body)
            .map_err(|e| e.to_string())?
            .validate()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_seat_map_makes_section_main_rows_from_a_and_numbers_from_1() {
        let e = create(json!({"seat_map": {"rows": 2, "seats_per_row": 3}})).unwrap();
        let ids: Vec<String> = e.seats.iter().map(Seat::id).collect();
        assert_eq!(
            ids,
            ["main-A-1", "main-A-2", "main-A-3", "main-B-1", "main-B-2", "main-B-3"]
        );
        assert_eq!(e.seats[3].row_rank, 1);
    }

    #[test]
    fn bad_events_are_refused_with_a_reason() {
        assert!(create(json!({})).unwrap_err().contains("seat_map or seats"));
        assert!(create(json!({"seat_map": {"rows": 0, "seats_per_row": 3}})).is_err());
        let dup = json!({"seats": [
            {"section": "A", "row": "1", "number": 1, "price_tier": "vip"},
            {"section": "A", "row": "1", "number": 1, "price_tier": "vip"}
        ]});
        assert!(create(dup).unwrap_err().contains("twice"));
        let dash =
            json!({"seats": [{"section": "a-b", "row": "1", "number": 1, "price_tier": "x"}]});
        assert!(create(dash).unwrap_err().contains("section"));
    }
}
