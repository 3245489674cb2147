//! Catalog and bookings on MySQL. Only admitted fans hold and reserve seats;
//! a seat is sold once because `seat_claims` has one row per claimed seat
//! (its primary key), not because of a lock in Redis.

pub mod catalog;
pub mod db;
mod flights;
pub mod holds;
pub mod keys;
pub mod sweeper;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::mysql::MySqlDatabaseError;

use crate::metrics::Metrics;
use crate::queue::{EventId, Queue, QueueError};
use crate::store::{reply, StoreError};
use db::Database;
use keys::{CACHE_CHANGED, CACHE_PUT};

#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    #[error("booking is not enabled on this service (no DATABASE_URL)")]
    Disabled,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("no such event")]
    EventNotFound,
    #[error("an event with this id already exists")]
    EventExists,
    #[error("the event has reservations")]
    EventHasReservations,
    #[error("one or more of those seats are not available")]
    SeatUnavailable,
    #[error("{0}")]
    Invalid(String),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("the hold has expired")]
    HoldExpired,
    #[error("the hold is already confirmed")]
    HoldConfirmed,
    #[error("this hold's reservation was cancelled")]
    ReservationCancelled,
    #[error("this Idempotency-Key was used for another hold")]
    IdempotencyKeyReused,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Cache(#[from] StoreError),
    #[error("could not encode a response: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("could not gzip or gunzip a seat map: {0}")]
    Gzip(std::io::Error),
    #[error("the database did not answer within {0:?}")]
    Timeout(Duration),
}

impl From<crate::Invalid> for BookingError {
    fn from(e: crate::Invalid) -> Self {
        BookingError::Invalid(e.0)
    }
}

impl BookingError {
    /// The MySQL error number, when the database refused a statement.
    pub fn mysql_number(&self) -> Option<u16> {
        match self {
            BookingError::Database(e) => e
                .as_database_error()
                .and_then(|d| d.try_downcast_ref::<MySqlDatabaseError>())
                .map(MySqlDatabaseError::number),
            _ => None,
        }
    }

    /// A duplicate key (1062).
    pub fn is_duplicate(&self) -> bool {
        self.mysql_number() == Some(1062)
    }

    /// A deadlock or lock-wait timeout: the transaction may simply be run again.
    pub fn is_retryable(&self) -> bool {
        matches!(self.mysql_number(), Some(1213 | 1205))
    }

    /// The database cannot be reached or is overloaded (as opposed to a bug).
    pub fn is_unavailable(&self) -> bool {
        match self {
            BookingError::Timeout(_) => true,
            BookingError::Database(e) => {
                matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Protocol(_)
            ) || self.is_retryable()
                // Server shutting down, too many connections, read-only
                // (an Aurora failover in progress), lost connection.
                || matches!(self.mysql_number(), Some(1040 | 1053 | 1290 | 1836 | 2006 | 2013))
            }
            _ => false,
        }
    }
}

/// Booking settings besides the database.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub hold_seconds: u64,
    pub max_seats_per_ticket: u32,
}

/// Catalog and booking operations; cheap to share.
pub struct Booking {
    pub db: Database,
    queue: Arc<Queue>,
    prefix: String,
    pub limits: Limits,
    metrics: Metrics,
    /// One seat-map rebuild at a time per event on this replica.
    rebuilding: Mutex<HashMap<EventId, Arc<tokio::sync::Mutex<()>>>>,
    /// Confirms and cancellations in their transactions at once on this
    /// replica. They all end on the event's stock row, one after another
    /// whatever their number, so more of them would only hold writer
    /// connections while they wait for its lock: a quarter of the pool (at
    /// least 2) leaves the rest to holds, whose latency then stays as it is
    /// while confirms run.
    stock_writers: tokio::sync::Semaphore,
    stock_wait: Duration,
    /// Holds of the same seat on this replica, one at a time.
    pub(crate) flights: flights::Flights,
}

/// How long cached copies live at most (each change also deletes them).
const EVENT_CACHE_TTL: Duration = Duration::from_secs(30);
const SEATS_CACHE_TTL: Duration = Duration::from_secs(2);
/// How long the last seat map built may answer readers while another
/// rebuilds it (see `Booking::seats`).
const SEATS_STALE_TTL: Duration = Duration::from_secs(30);
/// How long a cached copy's version outlives the last change: far longer
/// than any read, so a read never sees it vanish (and if one did, its copy
/// would only go uncached).
const CACHE_VERSION_TTL: Duration = Duration::from_secs(24 * 3600);

impl Booking {
    pub fn new(
        db: Database,
        queue: Arc<Queue>,
        prefix: &str,
        limits: Limits,
        metrics: Metrics,
    ) -> Booking {
        let pool = db.writer.options();
        let writers = (pool.get_max_connections() / 4).max(2) as usize;
        let stock_wait = pool.get_acquire_timeout();
        Booking {
            db,
            queue,
            prefix: prefix.to_string(),
            limits,
            metrics,
            rebuilding: Mutex::default(),
            stock_writers: tokio::sync::Semaphore::new(writers),
            stock_wait,
            flights: flights::Flights::default(),
        }
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// A turn for a transaction that writes the event's stock row (see
    /// `stock_writers`); waited for as long as a writer connection would
    /// be, then the same 503 as a pool that has none free.
    pub(crate) async fn stock_turn(
        &self,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, BookingError> {
        match tokio::time::timeout(self.stock_wait, self.stock_writers.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(sqlx::Error::PoolTimedOut.into()),
        }
    }

    /// Writes a booking event to `event_outbox` in the transaction of the
    /// change it records (only while the event log is on): the shippers
    /// send it once the change has committed, and never if it rolled back.
    pub(crate) async fn record(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
        event: &str,
        kind: &str,
        body: serde_json::Value,
    ) -> Result<(), BookingError> {
        if !self.queue.shipping() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO event_outbox (event_id, kind, body, replica, created_at) \
             VALUES (?, ?, ?, ?, NOW(3))",
        )
        .bind(event)
        .bind(kind)
        .bind(body.to_string())
        .bind(self.queue.replica())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn cache_get(&self, key: &str) -> Option<String> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        match self.queue.store().query("GET", &cmd).await {
            Ok(v) => reply::string(&v),
            // The cache is an optimisation: without it, read the database.
            Err(_) => None,
        }
    }

    /// A cached copy as it is stored (the seat map's gzip bytes).
    async fn cache_get_raw(&self, key: &str) -> Option<bytes::Bytes> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        match self.queue.store().query("GET", &cmd).await {
            Ok(redis::Value::BulkString(b)) => Some(b.into()),
            _ => None,
        }
    }

    /// A copy's version as it stands before the database is read (empty
    /// when there is none yet), for [`Booking::cache_put_if`].
    async fn cache_version(&self, version: &str) -> bytes::Bytes {
        self.cache_get_raw(version).await.unwrap_or_default()
    }

    /// Stores `value` as `fresh` only if `version` still reads `before`
    /// (no change came in since the read began: a copy read just before a
    /// change committed is never cached after that change deleted it);
    /// with `last`, also under that key whatever the version (a copy that
    /// may be stale). One round trip; a failure only costs a later read.
    async fn cache_put_if(
        &self,
        version: String,
        before: &[u8],
        value: &[u8],
        fresh: (String, Duration),
        last: Option<(String, Duration)>,
    ) {
        let fresh_ttl = fresh.1.as_millis().to_string();
        let mut keys = vec![version, fresh.0];
        let mut last_ttl = String::new();
        if let Some((key, ttl)) = last {
            keys.push(key);
            last_ttl = ttl.as_millis().to_string();
        }
        let args: [&[u8]; 4] = [before, value, fresh_ttl.as_bytes(), last_ttl.as_bytes()];
        if let Err(e) = self.queue.store().eval(&CACHE_PUT, &keys, &args).await {
            tracing::debug!(error = %e, "could not cache a copy");
        }
    }

    /// After a change has committed: `version` counted up and `copies`
    /// deleted, in one round trip. A failure here only leaves a copy until
    /// its (short) TTL runs out.
    async fn cache_changed(&self, version: String, copies: &[String]) {
        let mut keys = vec![version];
        keys.extend_from_slice(copies);
        let ttl = [CACHE_VERSION_TTL.as_millis().to_string()];
        if let Err(e) = self.queue.store().eval(&CACHE_CHANGED, &keys, &ttl).await {
            tracing::warn!(error = %e, "could not invalidate a cached copy");
        }
    }

    fn rebuild_lock(&self, event: &EventId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, m| Arc::strong_count(m) > 1);
        }
        map.entry(event.clone()).or_default().clone()
    }
}

/// A new random id (128 bits, base64url): holds and reservations.
pub fn new_id() -> String {
    crate::queue::random_id()
}
