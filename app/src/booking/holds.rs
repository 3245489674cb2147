//! Holds and reservations. Every claim on a seat is a row of `seat_claims`
//! (primary key: the seat), inserted in the transaction that makes the hold:
//! two fans can never both hold or reserve one seat, whatever the replicas
//! or the timing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{MySql, QueryBuilder, Row};
use time::PrimitiveDateTime;
use utoipa::ToSchema;

use super::catalog::to_ms;
use super::{new_id, Booking, BookingError};
use crate::clock::format_ms;
use crate::queue::EventId;

/// `POST /api/v1/events/{event_id}/holds`: seats by id, or a quantity of the
/// best seats together (exactly one of the two). A ticket may hold and
/// reserve at most `MAX_SEATS_PER_TICKET` seats of an event (the document
/// served by the API gives this service's figure as the maximum below).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    #[schema(value_type = Option<Vec<SeatId>>, min_items = 1, max_items = 8)]
    pub seat_ids: Option<Vec<String>>,
    #[schema(minimum = 1, maximum = 8)]
    pub quantity: Option<i64>,
}

/// A seat id, `{section}-{row}-{number}` (in the document only: requests
/// carry plain strings, checked by [`is_seat_id`]).
#[derive(ToSchema)]
#[schema(pattern = "^[A-Za-z0-9_-]{1,100}$")]
#[allow(dead_code)]
pub struct SeatId(String);

/// Seats held for a while, to be confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Hold {
    pub hold_id: String,
    pub seat_ids: Vec<String>,
    /// When the seats are free again unless the hold is confirmed.
    #[serde(rename = "expires_at", serialize_with = "crate::clock::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub reservation_id: String,
    pub event_id: String,
    pub ticket: String,
    pub seat_ids: Vec<String>,
    pub created_at_ms: i64,
    pub cancelled_at_ms: Option<i64>,
}

impl Reservation {
    /// As the API shows it: with its status on reads, without on confirm.
    pub fn to_body(&self, with_status: bool) -> ReservationBody {
        let status = if self.cancelled_at_ms.is_some() {
            ReservationStatus::Cancelled
        } else {
            ReservationStatus::Confirmed
        };
        ReservationBody {
            reservation_id: self.reservation_id.clone(),
            event_id: self.event_id.clone(),
            seat_ids: self.seat_ids.clone(),
            created_at: format_ms(self.created_at_ms),
            status: with_status.then_some(status),
            cancelled_at: self.cancelled_at_ms.map(format_ms),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    Confirmed,
    Cancelled,
}

/// A reservation as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = Reservation)]
pub struct ReservationBody {
    pub reservation_id: String,
    pub event_id: String,
    pub seat_ids: Vec<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// On reads (not on confirm).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub status: Option<ReservationStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    pub cancelled_at: Option<String>,
}

/// `GET /api/v1/events/{event_id}/reservations`
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ReservationList)]
pub struct ReservationListBody {
    pub reservations: Vec<ReservationBody>,
}

/// Who is asking: an admin, or the fan holding an admission ticket.
#[derive(Debug, Clone)]
pub enum Caller {
    Admin,
    Fan { event: String, ticket: String },
}

impl Caller {
    fn may_touch(&self, event: &str, ticket: &str) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Fan {
                event: e,
                ticket: t,
            } => e == event && t == ticket,
        }
    }
}

/// What a hold asks for, validated.
enum Wanted {
    Seats(Vec<String>),
    Quantity(usize),
}

const ATTEMPTS: usize = 6;
/// Runs of seats a quantity hold tries from one read of the free seats,
/// and how many reads it makes at most. Most tries that lose cost no
/// transaction (a claim seen by one read, or another hold of this replica
/// that won the run: `flights`).
const QUANTITY_TRIES: usize = 4;
const QUANTITY_ROUNDS: usize = 8;
/// Free seats a quantity hold reads to find runs of adjacent seats.
const CANDIDATE_SEATS: i64 = 2_000;

/// How a reservation is looked up.
#[derive(Clone, Copy)]
enum By {
    Id,
    Hold,
}

pub fn is_seat_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The runs in the order a quantity hold tries them: the best run first,
/// then roughly best first, each moved back by a random distance of up to
/// [`SPREAD`] places. Fans asking at the same moment read the same free
/// seats; trying them all in the same order, one would win each run and
/// the others spend their tries on it until they gave up with seats still
/// free (a load test sold 41 of 100 seats that way). Alone, a fan gets the
/// best run; under contention, one near it.
fn spread(blocks: Vec<Vec<String>>) -> Vec<Vec<String>> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let mut keyed: Vec<(f64, Vec<String>)> = blocks
        .into_iter()
        .enumerate()
        .map(|(i, seats)| {
            let jitter = if i == 0 {
                0.0
            } else {
                rng.gen_range(0.0..SPREAD)
            };
            (i as f64 + jitter, seats)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    keyed.into_iter().map(|(_, seats)| seats).collect()
}

/// How far back (in runs) a quantity hold may try a run in [`spread`].
const SPREAD: f64 = 64.0;

async fn backoff(attempt: usize) {
    let jitter = u64::from(rand::random::<u8>()) % 20;
    tokio::time::sleep(Duration::from_millis(5 * (attempt as u64 + 1) + jitter)).await;
}

impl Booking {
    fn wanted(&self, req: HoldRequest) -> Result<Wanted, BookingError> {
        let max = self.limits.max_seats_per_ticket as usize;
        match (req.seat_ids, req.quantity) {
            (Some(_), Some(_)) => Err(BookingError::Invalid(
                "give seat_ids or quantity, not both".into(),
            )),
            (None, None) => Err(BookingError::Invalid("give seat_ids or quantity".into())),
            (None, Some(q)) if q >= 1 && q as usize <= max => Ok(Wanted::Quantity(q as usize)),
            (None, Some(q)) => Err(BookingError::Invalid(format!(
                "quantity must be 1-{max}, got {q}"
            ))),
            (Some(ids), None) => {
                if ids.is_empty() || ids.len() > max {
                    return Err(BookingError::Invalid(format!(
                        "seat_ids must name 1-{max} seats"
                    )));
                }
                if let Some(bad) = ids.iter().find(|s| !is_seat_id(s)) {
                    return Err(BookingError::Invalid(format!("`{bad}` is not a seat id")));
                }
                let mut sorted = ids.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if sorted.len() != ids.len() {
                    return Err(BookingError::Invalid("seat_ids lists a seat twice".into()));
                }
                Ok(Wanted::Seats(sorted))
            }
        }
    }

    /// Holds seats for an admitted fan. Nothing is held when any seat is
    /// taken (409 seat_unavailable).
    pub async fn hold(
        &self,
        event: &EventId,
        ticket: &str,
        req: HoldRequest,
    ) -> Result<Hold, BookingError> {
        let wanted = self.wanted(req)?;
        let hold = match wanted {
            Wanted::Seats(ids) => {
                if self.check_seats(event, &ids).await? {
                    // Taken already (as the reader sees it): answered
                    // without touching the writer, so the many who lose a
                    // seat at the opening leave the writer to those who may
                    // win one.
                    return Err(BookingError::SeatUnavailable);
                }
                self.hold_with_retries(event, ticket, &ids).await?
            }
            Wanted::Quantity(n) => self.hold_best(event, ticket, n).await?,
        };
        self.seats_changed(event.as_str()).await;
        Ok(hold)
    }

    /// A quantity hold: the best runs of `n` adjacent seats, read from the
    /// reader (the common case, cheap), tried on the writer (exact: the
    /// claim is what decides; a run already taken is skipped without a
    /// transaction). Only when every candidate was taken does it read the
    /// writer.
    async fn hold_best(
        &self,
        event: &EventId,
        ticket: &str,
        n: usize,
    ) -> Result<Hold, BookingError> {
        // The first read from the reader; after a round of tries lost to
        // other fans, the free seats are read again from the writer (a
        // stale list would send every try to a run already taken), until
        // none is left or the rounds run out.
        let mut pool = &self.db.reader;
        for _ in 0..QUANTITY_ROUNDS {
            let blocks = spread(self.best_blocks(pool, event, n).await?);
            if blocks.is_empty() && std::ptr::eq(pool, &self.db.writer) {
                break;
            }
            for block in blocks.into_iter().take(QUANTITY_TRIES) {
                match self.hold_with_retries(event, ticket, &block).await {
                    Err(BookingError::SeatUnavailable) => continue,
                    other => return other,
                }
            }
            pool = &self.db.writer;
        }
        Err(BookingError::SeatUnavailable)
    }

    /// Whether any of `seats` has a live claim now.
    async fn any_claimed(
        conn: &mut sqlx::MySqlConnection,
        event: &EventId,
        seats: &[String],
    ) -> Result<bool, BookingError> {
        let mut q: QueryBuilder<MySql> =
            QueryBuilder::new("SELECT 1 FROM seat_claims WHERE event_id = ");
        q.push_bind(event.as_str()).push(" AND seat_id IN (");
        let mut sep = q.separated(", ");
        for s in seats {
            sep.push_bind(s);
        }
        q.push(") AND (expires_at IS NULL OR expires_at > NOW(3)) LIMIT 1");
        Ok(q.build().fetch_optional(conn).await?.is_some())
    }

    /// Whether every seat exists (else 422) and whether any is claimed.
    /// Seats never change once an event exists and a claim seen a moment
    /// late only sends a fan to the writer (which decides), so the reader
    /// answers; the writer only when the reader lacks a seat (an event just
    /// created).
    async fn check_seats(&self, event: &EventId, ids: &[String]) -> Result<bool, BookingError> {
        let mut found = self.existing_seats(&self.db.reader, event, ids).await?;
        if found.len() != ids.len() {
            found = self.existing_seats(&self.db.writer, event, ids).await?;
        }
        if found.len() != ids.len() {
            self.ensure_event(&self.db.writer, event).await?;
            let missing: Vec<&str> = ids
                .iter()
                .filter(|i| !found.iter().any(|(id, _)| id == *i))
                .map(String::as_str)
                .collect();
            return Err(BookingError::Invalid(format!(
                "no such seat in this event: {}",
                missing.join(", ")
            )));
        }
        Ok(found.iter().any(|(_, claimed)| *claimed))
    }

    /// The seats of `ids` that exist, each with whether it has a live claim.
    async fn existing_seats(
        &self,
        pool: &sqlx::MySqlPool,
        event: &EventId,
        ids: &[String],
    ) -> Result<Vec<(String, bool)>, BookingError> {
        let mut q: QueryBuilder<MySql> = QueryBuilder::new(
            "SELECT s.seat_id, CAST(c.seat_id IS NOT NULL AS SIGNED) FROM seats s \
             LEFT JOIN seat_claims c ON c.event_id = s.event_id AND c.seat_id = s.seat_id \
               AND (c.expires_at IS NULL OR c.expires_at > NOW(3)) \
             WHERE s.event_id = ",
        );
        q.push_bind(event.as_str()).push(" AND s.seat_id IN (");
        let mut sep = q.separated(", ");
        for id in ids {
            sep.push_bind(id);
        }
        q.push(")");
        let rows = q.build().fetch_all(pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)? == 1)))
            .collect()
    }

    /// Runs of `n` free adjacent seats in one section and row, front rows
    /// first, among the first [`CANDIDATE_SEATS`] free seats.
    async fn best_blocks(
        &self,
        pool: &sqlx::MySqlPool,
        event: &EventId,
        n: usize,
    ) -> Result<Vec<Vec<String>>, BookingError> {
        let rows = sqlx::query(
            "SELECT s.seat_id, s.section, s.row_rank, s.number FROM seats s \
             LEFT JOIN seat_claims c ON c.event_id = s.event_id AND c.seat_id = s.seat_id \
               AND (c.expires_at IS NULL OR c.expires_at > NOW(3)) \
             WHERE s.event_id = ? AND c.seat_id IS NULL \
             ORDER BY s.row_rank, s.section, s.number LIMIT ?",
        )
        .bind(event.as_str())
        .bind(CANDIDATE_SEATS)
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            self.ensure_event(pool, event).await?;
        }
        let mut lines: BTreeMap<(i32, String), Vec<(i32, String)>> = BTreeMap::new();
        for r in &rows {
            lines
                .entry((r.try_get("row_rank")?, r.try_get("section")?))
                .or_default()
                .push((r.try_get("number")?, r.try_get("seat_id")?));
        }
        let mut blocks = Vec::new();
        for seats in lines.values() {
            // Adjacent numbers: every window of n seats with consecutive numbers.
            for w in seats.windows(n) {
                if w.last().map(|l| l.0) == w.first().map(|f| f.0 + n as i32 - 1) {
                    blocks.push(w.iter().map(|(_, id)| id.clone()).collect());
                }
            }
        }
        Ok(blocks)
    }

    async fn hold_with_retries(
        &self,
        event: &EventId,
        ticket: &str,
        seats: &[String],
    ) -> Result<Hold, BookingError> {
        // Behind any hold of this replica already trying one of these
        // seats; lost without a query when it won (see `flights`).
        let flight = match self.flights.turn(event.as_str(), seats).await {
            super::flights::Turn::Go(flight) => flight,
            super::flights::Turn::Taken => return Err(BookingError::SeatUnavailable),
        };
        let mut attempt = 0;
        let held = loop {
            match self.try_hold(event, ticket, seats).await {
                Err(e) if e.is_retryable() && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                other => break other,
            }
        };
        flight.claimed(held.is_ok());
        held
    }

    async fn try_hold(
        &self,
        event: &EventId,
        ticket: &str,
        seats: &[String],
    ) -> Result<Hold, BookingError> {
        let mut conn = self.db.writer.acquire().await?;
        if Self::any_claimed(&mut conn, event, seats).await? {
            // Taken already: answered by one read, without a transaction,
            // so the many who lose a seat never wait on its lock.
            return Err(BookingError::SeatUnavailable);
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        // Serialises this fan's own concurrent holds (the per-ticket limit).
        sqlx::query("INSERT INTO ticket_locks (event_id, ticket) VALUES (?, ?) ON DUPLICATE KEY UPDATE ticket = ticket")
            .bind(event.as_str())
            .bind(ticket)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "SELECT COUNT(*), NOW(3) + INTERVAL ? SECOND FROM seat_claims WHERE event_id = ? AND ticket = ? \
             AND (expires_at IS NULL OR expires_at > NOW(3))",
        )
        .bind(self.limits.hold_seconds as i64)
        .bind(event.as_str())
        .bind(ticket)
        .fetch_one(&mut *tx)
        .await?;
        let held: i64 = row.try_get(0)?;
        let expires: PrimitiveDateTime = row.try_get(1)?;
        let max = i64::from(self.limits.max_seats_per_ticket);
        if held + seats.len() as i64 > max {
            return Err(BookingError::Invalid(format!(
                "at most {max} seats per ticket; this ticket already holds or has reserved {held}"
            )));
        }
        // The claims first: when a seat is taken, this is where it shows,
        // before anything else is written.
        let hold_id = new_id();
        let insert_claims = || {
            let mut q: QueryBuilder<MySql> = QueryBuilder::new(
                "INSERT INTO seat_claims (event_id, seat_id, ticket, hold_id, expires_at) ",
            );
            q.push_values(seats, |mut b, s| {
                b.push_bind(event.as_str())
                    .push_bind(s)
                    .push_bind(ticket)
                    .push_bind(&hold_id)
                    .push_bind(expires);
            });
            q
        };
        let mut claims = insert_claims();
        match claims
            .build()
            .execute(&mut *tx)
            .await
            .map_err(BookingError::from)
        {
            Err(e) if e.is_duplicate() => {
                // A claim of a hold that has run out no longer counts: it
                // goes, and the claims are tried once more. (Deleted only
                // here, so the common hold runs one statement fewer.)
                let mut q: QueryBuilder<MySql> =
                    QueryBuilder::new("DELETE FROM seat_claims WHERE event_id = ");
                q.push_bind(event.as_str())
                    .push(" AND expires_at <= NOW(3) AND seat_id IN (");
                let mut sep = q.separated(", ");
                for s in seats {
                    sep.push_bind(s);
                }
                q.push(")");
                if q.build().execute(&mut *tx).await?.rows_affected() == 0 {
                    return Err(BookingError::SeatUnavailable);
                }
                let mut again = insert_claims();
                match again
                    .build()
                    .execute(&mut *tx)
                    .await
                    .map_err(BookingError::from)
                {
                    Err(e) if e.is_duplicate() => return Err(BookingError::SeatUnavailable),
                    other => {
                        other?;
                    }
                };
            }
            other => {
                other?;
            }
        };
        sqlx::query(
            "INSERT INTO holds (id, event_id, ticket, status, created_at, expires_at) \
             VALUES (?, ?, ?, 'active', NOW(3), ?)",
        )
        .bind(&hold_id)
        .bind(event.as_str())
        .bind(ticket)
        .bind(expires)
        .execute(&mut *tx)
        .await?;
        let mut q: QueryBuilder<MySql> =
            QueryBuilder::new("INSERT INTO hold_seats (hold_id, seat_id) ");
        q.push_values(seats, |mut b, s| {
            b.push_bind(&hold_id).push_bind(s);
        });
        q.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Hold {
            hold_id,
            seat_ids: seats.to_vec(),
            expires_at_ms: to_ms(expires),
        })
    }

    async fn reservation_by(
        &self,
        by: By,
        value: &str,
    ) -> Result<Option<Reservation>, BookingError> {
        let sql = match by {
            By::Id => "SELECT id, event_id, ticket, created_at, cancelled_at FROM reservations WHERE id = ?",
            By::Hold => "SELECT id, event_id, ticket, created_at, cancelled_at FROM reservations WHERE hold_id = ?",
        };
        let row = sqlx::query(sql)
            .bind(value)
            .fetch_optional(&self.db.writer)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let seats = sqlx::query(
            "SELECT seat_id FROM reservation_seats WHERE reservation_id = ? ORDER BY seat_id",
        )
        .bind(&id)
        .fetch_all(&self.db.writer)
        .await?
        .iter()
        .filter_map(|r| r.try_get(0).ok())
        .collect();
        Ok(Some(Reservation {
            reservation_id: id,
            event_id: row.try_get("event_id")?,
            ticket: row.try_get("ticket")?,
            seat_ids: seats,
            created_at_ms: to_ms(row.try_get("created_at")?),
            cancelled_at_ms: row
                .try_get::<Option<PrimitiveDateTime>, _>("cancelled_at")?
                .map(to_ms),
        }))
    }

    /// The hold's event and ticket, if it exists.
    pub async fn hold_owner(&self, hold_id: &str) -> Result<(String, String), BookingError> {
        let row = sqlx::query("SELECT event_id, ticket FROM holds WHERE id = ?")
            .bind(hold_id)
            .fetch_optional(&self.db.writer)
            .await?
            .ok_or(BookingError::NotFound("hold"))?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Turns a hold into a reservation. Returns the reservation and whether
    /// it was made now (false: this hold was confirmed before, and the same
    /// reservation is returned).
    pub async fn confirm(
        &self,
        hold_id: &str,
        caller: &Caller,
        idempotency_key: Option<&str>,
        session_alive: impl std::future::Future<Output = Result<(), BookingError>>,
    ) -> Result<(Reservation, bool), BookingError> {
        let row = sqlx::query("SELECT event_id, ticket, status FROM holds WHERE id = ?")
            .bind(hold_id)
            .fetch_optional(&self.db.writer)
            .await?
            .ok_or(BookingError::NotFound("hold"))?;
        let (event, ticket, status): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        if !caller.may_touch(&event, &ticket) {
            return Err(BookingError::Forbidden(
                "this hold belongs to another ticket",
            ));
        }
        if let Some(key) = idempotency_key {
            let row = sqlx::query(
                "SELECT hold_id FROM reservations WHERE ticket = ? AND idempotency_key = ?",
            )
            .bind(&ticket)
            .bind(key)
            .fetch_optional(&self.db.writer)
            .await?;
            if let Some(row) = row {
                if row.try_get::<String, _>(0)? != hold_id {
                    return Err(BookingError::IdempotencyKeyReused);
                }
            }
        }
        // Confirmed before: the same reservation, even though confirming
        // ended the fan's session (a retried confirm is answered).
        if status == "confirmed" {
            if let Some(existing) = self.reservation_by(By::Hold, hold_id).await? {
                if existing.cancelled_at_ms.is_some() {
                    return Err(BookingError::ReservationCancelled);
                }
                return Ok((existing, false));
            }
        }
        session_alive.await?;
        let mut attempt = 0;
        let (created, stock) = loop {
            let turn = self.stock_turn().await?;
            let tried = self
                .try_confirm(hold_id, &event, &ticket, idempotency_key)
                .await;
            drop(turn);
            match tried {
                Err(e) if e.is_retryable() && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                Err(BookingError::HoldConfirmed) => {
                    // Confirmed by a concurrent retry of this request.
                    if let Some(existing) = self.reservation_by(By::Hold, hold_id).await? {
                        return Ok((existing, false));
                    }
                    return Err(BookingError::HoldConfirmed);
                }
                Err(e) if e.is_duplicate() => {
                    // Confirmed at the same moment by a retry of this
                    // request, or the key was taken by another hold.
                    if let Some(existing) = self.reservation_by(By::Hold, hold_id).await? {
                        return Ok((existing, false));
                    }
                    return Err(BookingError::IdempotencyKeyReused);
                }
                other => break other?,
            }
        };
        self.seats_changed(&event).await;
        if let Some(ev) = EventId::parse(&event) {
            // The fan is done: the place goes to the next in line.
            if let Err(e) = self
                .queue()
                .leave(
                    &ev,
                    &crate::queue::Ticket::parse(&ticket)
                        .ok_or(BookingError::Forbidden("bad ticket"))?,
                    crate::queue::LeaveReason::Booked,
                )
                .await
            {
                tracing::warn!(event = %ev, error = %e, "could not end the admission session after a booking");
            }
            if let Some(stock) = stock {
                self.apply_stock(&ev, stock).await;
            }
        }
        Ok((created, true))
    }

    async fn try_confirm(
        &self,
        hold_id: &str,
        event: &str,
        ticket: &str,
        key: Option<&str>,
    ) -> Result<(Reservation, Option<Stock>), BookingError> {
        let mut tx = self.db.writer.begin().await?;
        // Whether the fan holds anything else is read here too (not
        // locked): most fans hold one run of seats, and their confirm then
        // skips the two statements that release the others.
        let row = sqlx::query(
            "SELECT status, CAST(expires_at > NOW(3) AS SIGNED) AS live, NOW(3) AS now, \
             CAST(EXISTS (SELECT 1 FROM holds o WHERE o.event_id = ? AND o.ticket = ? \
             AND o.status = 'active' AND o.id <> ?) AS SIGNED) AS others \
             FROM holds WHERE id = ? FOR UPDATE",
        )
        .bind(event)
        .bind(ticket)
        .bind(hold_id)
        .bind(hold_id)
        .fetch_one(&mut *tx)
        .await?;
        let status: String = row.try_get("status")?;
        let live: i64 = row.try_get("live")?;
        let others: i64 = row.try_get("others")?;
        let created: PrimitiveDateTime = row.try_get("now")?;
        match status.as_str() {
            "active" if live == 1 => {}
            "confirmed" => return Err(BookingError::HoldConfirmed),
            _ => return Err(BookingError::HoldExpired),
        }
        let reservation_id = new_id();
        sqlx::query(
            "INSERT INTO reservations (id, event_id, hold_id, ticket, idempotency_key, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&reservation_id)
        .bind(event)
        .bind(hold_id)
        .bind(ticket)
        .bind(key)
        .bind(created)
        .execute(&mut *tx)
        .await?;
        let seats = sqlx::query("INSERT INTO reservation_seats (reservation_id, seat_id) SELECT ?, seat_id FROM hold_seats WHERE hold_id = ?")
            .bind(&reservation_id)
            .bind(hold_id)
            .execute(&mut *tx)
            .await?
            .rows_affected() as i64;
        let claimed = sqlx::query(
            "UPDATE seat_claims SET reservation_id = ?, hold_id = NULL, expires_at = NULL \
             WHERE hold_id = ? AND expires_at > NOW(3)",
        )
        .bind(&reservation_id)
        .bind(hold_id)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != seats as u64 {
            // Some seat's claim ran out: the hold is gone as a whole.
            return Err(BookingError::HoldExpired);
        }
        sqlx::query("UPDATE holds SET status = 'confirmed', reservation_id = ? WHERE id = ?")
            .bind(&reservation_id)
            .bind(hold_id)
            .execute(&mut *tx)
            .await?;
        // Booking ends the fan's session, so the fan's other holds could
        // never be confirmed: their seats go back now, not when they expire.
        // (A claim is only ever an active hold's, so with no other active
        // hold there is nothing to free.)
        if others == 1 {
            for release in [
                "DELETE FROM seat_claims WHERE event_id = ? AND ticket = ? AND hold_id IS NOT NULL AND hold_id <> ?",
                "UPDATE holds SET status = 'released' WHERE event_id = ? AND ticket = ? AND status = 'active' AND id <> ?",
            ] {
                sqlx::query(release)
                    .bind(event)
                    .bind(ticket)
                    .bind(hold_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        // Read inside the transaction: once it commits, the answer is ready
        // without another round trip that could fail.
        let seat_ids = sqlx::query(
            "SELECT seat_id FROM reservation_seats WHERE reservation_id = ? ORDER BY seat_id",
        )
        .bind(&reservation_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .filter_map(|r| r.try_get(0).ok())
        .collect::<Vec<String>>();
        self.record(
            &mut tx,
            event,
            "booked",
            serde_json::json!({"ticket": ticket, "seat_ids": seat_ids, "reservation_id": reservation_id}),
        )
        .await?;
        // The event's stock row is the one every confirm and cancellation
        // of the event writes: touched last, so its lock is held for two
        // statements and the commit, not for the whole transaction.
        let stock = count_reserved(&mut tx, event, seats).await?;
        tx.commit().await?;
        let reservation = Reservation {
            reservation_id,
            event_id: event.to_string(),
            ticket: ticket.to_string(),
            seat_ids,
            created_at_ms: to_ms(created),
            cancelled_at_ms: None,
        };
        Ok((reservation, stock))
    }

    /// Releases a hold (idempotent); a confirmed hold cannot be released.
    pub async fn release_hold(&self, hold_id: &str, caller: &Caller) -> Result<(), BookingError> {
        let (event, ticket) = self.hold_owner(hold_id).await?;
        if !caller.may_touch(&event, &ticket) {
            return Err(BookingError::Forbidden(
                "this hold belongs to another ticket",
            ));
        }
        let mut attempt = 0;
        loop {
            match self.try_release(hold_id).await {
                Err(e) if e.is_retryable() && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                other => break other?,
            }
        }
        self.seats_changed(&event).await;
        Ok(())
    }

    async fn try_release(&self, hold_id: &str) -> Result<(), BookingError> {
        let mut tx = self.db.writer.begin().await?;
        let status: String = sqlx::query("SELECT status FROM holds WHERE id = ? FOR UPDATE")
            .bind(hold_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if status == "confirmed" {
            return Err(BookingError::HoldConfirmed);
        }
        sqlx::query("DELETE FROM seat_claims WHERE hold_id = ?")
            .bind(hold_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE holds SET status = 'released' WHERE id = ? AND status = 'active'")
            .bind(hold_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn reservation(
        &self,
        id: &str,
        caller: &Caller,
    ) -> Result<Reservation, BookingError> {
        let r = self
            .reservation_by(By::Id, id)
            .await?
            .ok_or(BookingError::NotFound("reservation"))?;
        if !caller.may_touch(&r.event_id, &r.ticket) {
            return Err(BookingError::Forbidden(
                "this reservation belongs to another ticket",
            ));
        }
        Ok(r)
    }

    /// Cancels a reservation: its seats are free again. Idempotent.
    pub async fn cancel_reservation(&self, id: &str, caller: &Caller) -> Result<(), BookingError> {
        let r = self.reservation(id, caller).await?;
        let mut attempt = 0;
        let stock = loop {
            let turn = self.stock_turn().await?;
            let tried = self.try_cancel(id, &r.event_id).await;
            drop(turn);
            match tried {
                // A confirm of the same event at the same moment can make
                // InnoDB pick this one to undo: run it again.
                Err(e) if e.is_retryable() && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                other => break other?,
            }
        };
        self.seats_changed(&r.event_id).await;
        if let (Some(ev), Some(stock)) = (EventId::parse(&r.event_id), stock) {
            self.apply_stock(&ev, stock).await;
        }
        tracing::info!(event = %r.event_id, "reservation cancelled");
        Ok(())
    }

    async fn try_cancel(&self, id: &str, event: &str) -> Result<Option<Stock>, BookingError> {
        let mut tx = self.db.writer.begin().await?;
        let freed = sqlx::query("DELETE FROM seat_claims WHERE reservation_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let cancelled = sqlx::query(
            "UPDATE reservations SET cancelled_at = NOW(3) WHERE id = ? AND cancelled_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if cancelled == 1 && self.queue().shipping() {
            let ticket: String = sqlx::query("SELECT ticket FROM reservations WHERE id = ?")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            let seat_ids: Vec<String> = sqlx::query(
                "SELECT seat_id FROM reservation_seats WHERE reservation_id = ? ORDER BY seat_id",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .filter_map(|r| r.try_get(0).ok())
            .collect();
            self.record(
                &mut tx,
                event,
                "cancelled",
                serde_json::json!({"ticket": ticket, "seat_ids": seat_ids, "reservation_id": id}),
            )
            .await?;
        }
        let stock = if freed > 0 {
            count_reserved(&mut tx, event, -(freed as i64)).await?
        } else {
            None
        };
        tx.commit().await?;
        Ok(stock)
    }

    /// A fan's own reservations for an event (from the writer).
    pub async fn reservations_of(
        &self,
        event: &EventId,
        ticket: &str,
    ) -> Result<Vec<Reservation>, BookingError> {
        let ids: Vec<String> = sqlx::query(
            "SELECT id FROM reservations WHERE event_id = ? AND ticket = ? ORDER BY created_at",
        )
        .bind(event.as_str())
        .bind(ticket)
        .fetch_all(&self.db.writer)
        .await?
        .iter()
        .filter_map(|r| r.try_get(0).ok())
        .collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.reservation_by(By::Id, &id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Switches the queue to `sold_out` when every seat is reserved, and
    /// back when a cancellation frees one (only if it was switched here).
    /// Decisions carry the stock's version, and Redis ignores one older
    /// than the last it applied: a confirm and a cancellation that commit
    /// one after the other leave the mode of the later, whichever reaches
    /// Redis first. A decision lost here (Redis away) is applied again by
    /// [`Booking::reconcile_sold_out`].
    pub(crate) async fn apply_stock(&self, event: &EventId, stock: Stock) {
        match self
            .queue()
            .auto_sold_out(event, stock.sold_out(), stock.version)
            .await
        {
            Ok(true) => {
                tracing::info!(event = %event, sold_out = stock.sold_out(), "queue switched by seat availability")
            }
            Ok(false) => {}
            Err(crate::queue::QueueError::EventNotFound) => {}
            Err(e) => {
                self.metrics.background_error("sold_out");
                tracing::warn!(event = %event, error = %e, "could not update the queue's sold-out mode; it is retried within seconds");
            }
        }
    }

    /// Applies the sold-out decision of every event whose stock changed in
    /// the last ten minutes (each replica, every second, from the sweeper):
    /// a decision lost after its commit is applied within a second or two.
    /// Read from the reader: a copy a moment behind is harmless, since Redis
    /// ignores a decision older than one it applied.
    pub async fn reconcile_sold_out(&self) -> Result<(), BookingError> {
        let rows = sqlx::query(
            "SELECT event_id, seats, reserved, version FROM event_stock \
             WHERE updated_at > NOW(3) - INTERVAL 10 MINUTE LIMIT 1000",
        )
        .fetch_all(&self.db.reader)
        .await?;
        for r in &rows {
            let event: String = r.try_get(0)?;
            let stock = Stock {
                seats: r.try_get(1)?,
                reserved: r.try_get(2)?,
                version: r.try_get(3)?,
            };
            if let Some(ev) = EventId::parse(&event) {
                self.apply_stock(&ev, stock).await;
            }
        }
        Ok(())
    }
}

/// An event's seats and how many are reserved, and the version of that
/// count (one more at every confirm and cancellation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stock {
    pub seats: i64,
    pub reserved: i64,
    pub version: i64,
}

impl Stock {
    pub fn sold_out(&self) -> bool {
        self.seats > 0 && self.reserved >= self.seats
    }
}

/// Counts `delta` reserved seats in the transaction of a confirm or a
/// cancellation. Holds never touch this row, so its lock never holds a
/// hold up; confirms and cancellations of one event take turns on it,
/// which orders their decisions.
async fn count_reserved(
    tx: &mut sqlx::Transaction<'_, MySql>,
    event: &str,
    delta: i64,
) -> Result<Option<Stock>, BookingError> {
    sqlx::query(
        "UPDATE event_stock SET reserved = reserved + ?, version = version + 1, \
         updated_at = NOW(3) WHERE event_id = ?",
    )
    .bind(delta)
    .bind(event)
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query("SELECT seats, reserved, version FROM event_stock WHERE event_id = ?")
        .bind(event)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(r) => Some(Stock {
            seats: r.try_get(0)?,
            reserved: r.try_get(1)?,
            version: r.try_get(2)?,
        }),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn the_best_run_comes_first_then_the_others_roughly_best_first() {
        let blocks: Vec<Vec<String>> = (0..200).map(|i| vec![format!("s{i}")]).collect();
        let mut orders = std::collections::HashSet::new();
        for _ in 0..100 {
            let order: Vec<String> = spread(blocks.clone()).into_iter().flatten().collect();
            assert_eq!(order.len(), 200);
            assert_eq!(order[0], "s0", "alone, the best run");
            for (place, id) in order.iter().enumerate() {
                let was: usize = id[1..].parse().unwrap();
                // Moved back by at most SPREAD places, never forward past
                // those that were SPREAD places ahead of it.
                assert!(place + 64 >= was && was + 64 >= place, "{id} at {place}");
            }
            orders.insert(order);
        }
        assert!(orders.len() > 1, "spread");
        assert!(spread(Vec::new()).is_empty());
    }
}
