//! The shippers: every replica reads every event's outbox through one
//! consumer group (`shippers`; each replica a consumer), puts the events to
//! Kinesis, and only then acknowledges them. An entry a replica read and
//! never acknowledged (it died) is claimed by another after
//! [`Shipper::claim_idle`] (XAUTOCLAIM; 30 s by default). Each event is read on a connection of its
//! own (a blocking read must not hold up the requests' connections, and a
//! cluster refuses a read across slots). Bookings are shipped from the
//! `event_outbox` table the same way (rows claimed with SKIP LOCKED).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Row;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::kinesis::Producer;
use super::outbox::{autoclaim_reply, read_reply, Entry};
use super::{Event, IdentityHasher, LogHealth};
use crate::clock::{format_ms, now_ms};
use crate::metrics::Metrics;
use crate::queue::scripts::{
    outboxes_key, shipped_bookings_key, SHIPPED_BOOKINGS_KEEP_MS, SHIPPER_GROUP,
};
use crate::queue::{EventId, Queue};
use crate::store::{reply, Dedicated, StoreError};

/// Entries read at once.
const BATCH: usize = 500;
/// How long a read waits for new entries: a burst's first events reach
/// Kinesis this soon, and the loop notices a stop this often.
const BLOCK: Duration = Duration::from_millis(100);
/// How often a shipper looks for such entries.
const CLAIM_EVERY: Duration = Duration::from_secs(5);
/// How long one put may keep retrying before the events go back to wait.
const PUT_DEADLINE: Duration = Duration::from_secs(5);
/// After a failed put, the wait before the next try.
const AFTER_FAILURE: Duration = Duration::from_secs(1);
/// How often the set of outboxes is read again.
const DISCOVER_EVERY: Duration = Duration::from_secs(1);

/// Everything the shippers share.
pub struct Shipper {
    pub queue: Arc<Queue>,
    pub producer: Arc<Producer>,
    pub hasher: IdentityHasher,
    pub replica: String,
    pub metrics: Metrics,
    pub health: Arc<LogHealth>,
    /// The outbox cap per event (OUTBOX_MAX_ENTRIES; 0: none).
    pub outbox_cap: u64,
    /// An entry read by a replica that has not acknowledged it for this
    /// long is taken over by another (EVENT_LOG_CLAIM_IDLE_MS). Longer than
    /// a put can take (PUT_DEADLINE), so a live replica keeps its batch.
    pub claim_idle: Duration,
    /// The writer, when bookings are on (their `event_outbox`).
    pub db: Option<sqlx::MySqlPool>,
}

impl Shipper {
    /// Ships until `shutdown`; then every shipper finishes the batch it
    /// holds (its put and its acknowledgement) before this returns.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks: HashMap<EventId, JoinHandle<()>> = HashMap::new();
        let bookings = self
            .db
            .clone()
            .map(|db| tokio::spawn(self.clone().ship_bookings(db, stop_rx.clone())));
        let mut tick = tokio::time::interval(DISCOVER_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            tasks.retain(|_, t| !t.is_finished());
            match self.outboxes().await {
                Ok(events) => {
                    for event in events {
                        if let std::collections::hash_map::Entry::Vacant(slot) =
                            tasks.entry(event.clone())
                        {
                            slot.insert(tokio::spawn(
                                self.clone().ship_event(event, stop_rx.clone()),
                            ));
                        }
                    }
                }
                Err(e) => {
                    self.metrics.background_error("event_log");
                    tracing::warn!(error = %e, "cannot list the outboxes");
                }
            }
        }
        let _ = stop_tx.send(true);
        for (_, t) in tasks {
            let _ = tokio::time::timeout(PUT_DEADLINE + Duration::from_secs(1), t).await;
        }
        if let Some(t) = bookings {
            let _ = tokio::time::timeout(PUT_DEADLINE + Duration::from_secs(1), t).await;
        }
    }

    async fn outboxes(&self) -> Result<Vec<EventId>, StoreError> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(outboxes_key(self.queue.prefix()));
        let v = self.queue.store().query("SMEMBERS", &cmd).await?;
        Ok(reply::array("outboxes", v)?
            .iter()
            .filter_map(reply::string)
            .filter_map(|s| EventId::parse(&s))
            .collect())
    }

    /// Puts events; the log's state follows the outcome.
    async fn put(&self, events: &[Event]) -> bool {
        if events.is_empty() {
            return true;
        }
        match self.producer.put(events, PUT_DEADLINE).await {
            Ok(()) => {
                if self.health.set_down(false) {
                    tracing::info!(stream = self.producer.stream(), "the event log ships again");
                }
                true
            }
            Err(e) => {
                if !self.health.set_down(true) {
                    tracing::warn!(error = %e, stream = self.producer.stream(), "the event log cannot ship: the outboxes keep the events");
                }
                false
            }
        }
    }

    /// Ships one event's outbox until stopped, or until the event is gone
    /// and its outbox shipped (then the outbox is deleted).
    async fn ship_event(self: Arc<Self>, event: EventId, stop: watch::Receiver<bool>) {
        let keys = self.queue.keys(&event);
        let outbox = keys.outbox().to_string();
        let mut conn = match self.queue.store().dedicated(BLOCK) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(event = %event, error = %e, "cannot open a connection for the shipper");
                return;
            }
        };
        // Entries this replica read before a restart come first.
        let mut own_pending = true;
        let mut last_claim: Option<Instant> = None;
        let mut last_metrics: Option<Instant> = None;
        let mut grouped = false;
        // Whether this outbox counts as full in the log's health; released
        // whichever way this task ends.
        let mut full = FullFlag(false, self.health.clone());
        let mut last_dropped: Option<u64> = None;
        loop {
            if *stop.borrow() {
                return;
            }
            if !grouped {
                match create_group(&mut conn, &outbox).await {
                    Ok(()) => grouped = true,
                    Err(e) => {
                        tracing::warn!(event = %event, error = %e, "cannot create the shippers' group");
                        tokio::time::sleep(AFTER_FAILURE).await;
                        continue;
                    }
                }
            }
            if last_metrics.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                last_metrics = Some(Instant::now());
                match self.observe(&mut conn, &event).await {
                    Ok(Outbox::Finished) => {
                        tracing::info!(event = %event, "the event is gone and its outbox shipped");
                        full.set(false);
                        self.metrics.forget_event(event.as_str());
                        return;
                    }
                    Ok(Outbox::Figures {
                        length,
                        dropped,
                        unshipped,
                    }) => {
                        // Full while changes go unrecorded, or while what is
                        // not shipped fills the outbox.
                        let now_full = self.outbox_cap > 0
                            && (dropped > last_dropped.unwrap_or(dropped)
                                || (length >= self.outbox_cap && unshipped));
                        last_dropped = Some(dropped);
                        if now_full && !full.0 {
                            tracing::error!(event = %event, cap = self.outbox_cap, "the outbox is full: further changes of this event are not recorded in the event log until it drains");
                        }
                        full.set(now_full);
                    }
                    Err(e) => tracing::debug!(event = %event, error = %e, "outbox figures"),
                }
            }
            let read = if own_pending {
                read_group(&mut conn, &outbox, &self.replica, "0", None).await
            } else if last_claim.is_none_or(|at| at.elapsed() >= CLAIM_EVERY.min(self.claim_idle)) {
                last_claim = Some(Instant::now());
                claim(&mut conn, &outbox, &self.replica, self.claim_idle).await
            } else {
                read_group(&mut conn, &outbox, &self.replica, ">", Some(BLOCK)).await
            };
            let entries = match read {
                Ok(entries) => entries,
                Err(e) if e.to_string().contains("NOGROUP") => {
                    // The outbox was deleted (the event removed before any
                    // entry): make the group again.
                    grouped = false;
                    continue;
                }
                Err(e) => {
                    self.metrics.background_error("event_log");
                    tracing::warn!(event = %event, error = %e, "cannot read the outbox");
                    tokio::time::sleep(AFTER_FAILURE).await;
                    continue;
                }
            };
            if entries.is_empty() {
                own_pending = false;
                continue;
            }
            let events: Vec<Event> = entries
                .iter()
                .filter_map(|e| {
                    let ev = e.to_event(event.as_str(), Some(&self.hasher));
                    if ev.is_none() {
                        tracing::warn!(event = %event, entry = %e.id, "skipping an outbox entry this version cannot read");
                    }
                    ev
                })
                .collect();
            if self.put(&events).await {
                if let Err(e) = ack(&mut conn, &outbox, &entries).await {
                    // Not acknowledged: shipped again later (a copy).
                    tracing::warn!(event = %event, error = %e, "cannot acknowledge shipped entries");
                }
            } else {
                own_pending = true;
                tokio::time::sleep(AFTER_FAILURE).await;
            }
        }
    }

    /// Exports the outbox's figures and returns them, or `Finished`
    /// when the event is gone and nothing is left to ship (the outbox is
    /// then deleted).
    async fn observe(&self, conn: &mut Dedicated, event: &EventId) -> Result<Outbox, StoreError> {
        let keys = self.queue.keys(event);
        let outbox = keys.outbox();
        let length =
            reply::int(&conn.query("XLEN", redis::cmd("XLEN").arg(outbox)).await?).unwrap_or(0);
        let mut info = redis::cmd("HMGET");
        info.arg(keys.meta()).arg("mode").arg("outbox_dropped");
        let meta = reply::array("meta", conn.query("HMGET", &info).await?)?;
        let exists = meta.first().and_then(reply::string).is_some();
        let dropped = meta.get(1).and_then(reply::int).unwrap_or(0).max(0) as u64;
        let oldest = oldest_unshipped(conn, outbox).await?;
        let age = oldest
            .map(|ms| ((now_ms() - ms) as f64 / 1000.0).max(0.0))
            .unwrap_or(0.0);
        self.metrics
            .set_outbox(event.as_str(), length, age, dropped);
        if !exists && oldest.is_none() {
            let mut del = redis::cmd("DEL");
            del.arg(outbox);
            conn.query("DEL", &del).await?;
            let mut srem = redis::cmd("SREM");
            srem.arg(outboxes_key(self.queue.prefix()))
                .arg(event.as_str());
            self.queue.store().query("SREM", &srem).await?;
            return Ok(Outbox::Finished);
        }
        Ok(Outbox::Figures {
            length: length.max(0) as u64,
            dropped,
            unshipped: oldest.is_some(),
        })
    }

    /// Ships `event_outbox` rows: claimed in a transaction (SKIP LOCKED, so
    /// replicas take different rows), put, remembered in Redis as shipped,
    /// then deleted; a replica that dies mid-way leaves its rows to the
    /// others. A row put whose deletion did not commit (the database
    /// restarted) is found in Redis's memory and deleted without a copy.
    async fn ship_bookings(self: Arc<Self>, db: sqlx::MySqlPool, stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.ship_booking_batch(&db).await {
                Ok(0) => tokio::time::sleep(BLOCK).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "booking events not shipped this time");
                    tokio::time::sleep(AFTER_FAILURE).await;
                }
            }
        }
    }

    async fn ship_booking_batch(&self, db: &sqlx::MySqlPool) -> Result<usize, String> {
        let mut tx = db.begin().await.map_err(|e| e.to_string())?;
        let rows = sqlx::query(
            "SELECT id, event_id, kind, body, created_at, replica FROM event_outbox \
             ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED",
        )
        .bind(BATCH as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(rows.len());
        for r in &rows {
            ids.push(r.try_get::<i64, _>("id").map_err(|e| e.to_string())?);
        }
        let shipped = self.shipped_bookings(&ids).await;
        let mut events = Vec::with_capacity(rows.len());
        for (r, id) in rows.iter().zip(&ids) {
            if shipped.contains(id) {
                continue;
            }
            if let Some(e) = booking_event(r, *id) {
                events.push(e);
            }
        }
        if !self.put(&events).await {
            return Err("Kinesis did not take the booking events".into());
        }
        self.remember_shipped(&ids, &shipped).await;
        let mut q =
            sqlx::QueryBuilder::<sqlx::MySql>::new("DELETE FROM event_outbox WHERE id IN (");
        let mut sep = q.separated(", ");
        for id in &ids {
            sep.push_bind(id);
        }
        q.push(")");
        q.build()
            .execute(&mut *tx)
            .await
            .map_err(|e| e.to_string())?;
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok(ids.len())
    }
}

impl Shipper {
    /// Which of these rows were put already (a Redis error: none known, so
    /// at worst a copy, never a loss).
    async fn shipped_bookings(&self, ids: &[i64]) -> std::collections::HashSet<i64> {
        let mut cmd = redis::cmd("ZMSCORE");
        cmd.arg(shipped_bookings_key(self.queue.prefix()));
        for id in ids {
            cmd.arg(id);
        }
        match self.queue.store().query("ZMSCORE", &cmd).await {
            Ok(redis::Value::Array(scores)) => ids
                .iter()
                .zip(scores)
                .filter(|(_, s)| !matches!(s, redis::Value::Nil))
                .map(|(id, _)| *id)
                .collect(),
            Ok(_) => Default::default(),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read which booking events were shipped");
                Default::default()
            }
        }
    }

    /// Remembers rows just put, and forgets those put long ago.
    async fn remember_shipped(&self, ids: &[i64], known: &std::collections::HashSet<i64>) {
        let key = shipped_bookings_key(self.queue.prefix());
        let now = now_ms();
        let mut add = redis::cmd("ZADD");
        add.arg(&key);
        let mut any = false;
        for id in ids.iter().filter(|id| !known.contains(id)) {
            add.arg(now).arg(id);
            any = true;
        }
        if any {
            if let Err(e) = self.queue.store().query("ZADD", &add).await {
                tracing::warn!(error = %e, "cannot remember shipped booking events: a database restart now may ship them twice");
            }
        }
        let mut trim = redis::cmd("ZREMRANGEBYSCORE");
        trim.arg(&key)
            .arg("-inf")
            .arg(now - SHIPPED_BOOKINGS_KEEP_MS);
        let _ = self.queue.store().query("ZREMRANGEBYSCORE", &trim).await;
    }
}

enum Outbox {
    Figures {
        /// Entries in the outbox (shipped or not).
        length: u64,
        /// Changes not recorded (the outbox was full), ever.
        dropped: u64,
        /// Whether some entry is not shipped yet.
        unshipped: bool,
    },
    /// The event is gone and its outbox shipped.
    Finished,
}

/// One outbox's part in [`LogHealth`]'s count of full outboxes.
struct FullFlag(bool, Arc<LogHealth>);

impl FullFlag {
    fn set(&mut self, full: bool) {
        if full != self.0 {
            self.0 = full;
            self.1.outbox_full(full);
        }
    }
}

impl Drop for FullFlag {
    fn drop(&mut self) {
        if self.0 {
            self.1.outbox_full(false);
        }
    }
}

/// A row of `event_outbox` as an event.
fn booking_event(r: &sqlx::mysql::MySqlRow, id: i64) -> Option<Event> {
    let body: String = r.try_get("body").ok()?;
    let at: time::PrimitiveDateTime = r.try_get("created_at").ok()?;
    let mut fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&body).ok()?;
    let ticket = fields
        .remove("ticket")
        .and_then(|t| t.as_str().map(str::to_string));
    Some(Event {
        v: 1,
        id: format!("b:{id}"),
        kind: r.try_get("kind").ok()?,
        event_id: r.try_get("event_id").ok()?,
        at: format_ms(crate::booking::catalog::to_ms(at)),
        replica: r.try_get("replica").ok()?,
        ticket,
        seq: None,
        client_hash: None,
        fields,
    })
}

async fn create_group(conn: &mut Dedicated, outbox: &str) -> Result<(), StoreError> {
    let mut cmd = redis::cmd("XGROUP");
    // From the start: what was written before the first shipper is shipped.
    cmd.arg("CREATE")
        .arg(outbox)
        .arg(SHIPPER_GROUP)
        .arg("0")
        .arg("MKSTREAM");
    match conn.query("XGROUP", &cmd).await {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
        Err(e) => Err(e),
    }
}

async fn read_group(
    conn: &mut Dedicated,
    outbox: &str,
    consumer: &str,
    from: &str,
    block: Option<Duration>,
) -> Result<Vec<Entry>, StoreError> {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(SHIPPER_GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(BATCH);
    if let Some(b) = block {
        cmd.arg("BLOCK").arg(b.as_millis() as u64);
    }
    cmd.arg("STREAMS").arg(outbox).arg(from);
    read_reply(conn.query("XREADGROUP", &cmd).await?)
}

async fn claim(
    conn: &mut Dedicated,
    outbox: &str,
    consumer: &str,
    idle: Duration,
) -> Result<Vec<Entry>, StoreError> {
    let mut cmd = redis::cmd("XAUTOCLAIM");
    cmd.arg(outbox)
        .arg(SHIPPER_GROUP)
        .arg(consumer)
        .arg(idle.as_millis() as u64)
        .arg("0-0")
        .arg("COUNT")
        .arg(BATCH);
    let (_, entries) = autoclaim_reply(conn.query("XAUTOCLAIM", &cmd).await?)?;
    Ok(entries)
}

async fn ack(conn: &mut Dedicated, outbox: &str, entries: &[Entry]) -> Result<(), StoreError> {
    let mut cmd = redis::cmd("XACK");
    cmd.arg(outbox).arg(SHIPPER_GROUP);
    for e in entries {
        cmd.arg(&e.id);
    }
    conn.query("XACK", &cmd).await.map(|_| ())
}

/// The ms of the oldest entry not yet shipped: the oldest pending (read,
/// not acknowledged), or the first never read; `None` when all are.
async fn oldest_unshipped(conn: &mut Dedicated, outbox: &str) -> Result<Option<i64>, StoreError> {
    let id_ms = |id: &str| id.split('-').next().and_then(|ms| ms.parse::<i64>().ok());
    let mut pending = redis::cmd("XPENDING");
    pending.arg(outbox).arg(SHIPPER_GROUP);
    let oldest_pending = match conn.query("XPENDING", &pending).await {
        Ok(v) => reply::array("xpending", v)?
            .get(1)
            .and_then(reply::string)
            .and_then(|id| id_ms(&id)),
        Err(e) if e.to_string().contains("NOGROUP") => None,
        Err(e) => return Err(e),
    };
    let mut groups = redis::cmd("XINFO");
    groups.arg("GROUPS").arg(outbox);
    let delivered = match conn.query("XINFO", &groups).await {
        Ok(v) => group_field(v, SHIPPER_GROUP, "last-delivered-id"),
        Err(e) if e.to_string().contains("no such key") => return Ok(None),
        Err(e) => return Err(e),
    };
    let first_unread = match delivered {
        Some(id) => {
            let mut range = redis::cmd("XRANGE");
            range
                .arg(outbox)
                .arg(format!("({id}"))
                .arg("+")
                .arg("COUNT")
                .arg(1);
            let v = conn.query("XRANGE", &range).await?;
            super::outbox::entries("xrange", v)?
                .first()
                .and_then(|e| e.millis())
        }
        None => {
            let mut range = redis::cmd("XRANGE");
            range.arg(outbox).arg("-").arg("+").arg("COUNT").arg(1);
            let v = conn.query("XRANGE", &range).await?;
            super::outbox::entries("xrange", v)?
                .first()
                .and_then(|e| e.millis())
        }
    };
    Ok(match (oldest_pending, first_unread) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// A field of one group in an `XINFO GROUPS` reply (RESP2 flat pairs or a
/// RESP3 map per group).
fn group_field(v: redis::Value, group: &str, field: &str) -> Option<String> {
    let groups = match v {
        redis::Value::Array(g) => g,
        _ => return None,
    };
    for g in groups {
        let pairs: Vec<(String, redis::Value)> = match g {
            redis::Value::Array(flat) => flat
                .chunks(2)
                .filter_map(|kv| Some((reply::string(kv.first()?)?, kv.get(1)?.clone())))
                .collect(),
            redis::Value::Map(m) => m
                .into_iter()
                .filter_map(|(k, v)| Some((reply::string(&k)?, v)))
                .collect(),
            _ => continue,
        };
        let name = pairs
            .iter()
            .find(|(k, _)| k == "name")
            .and_then(|(_, v)| reply::string(v));
        if name.as_deref() == Some(group) {
            return pairs
                .iter()
                .find(|(k, _)| k == field)
                .and_then(|(_, v)| reply::string(v));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn group_fields_are_read_from_xinfo() {
        let s = |x: &str| Value::BulkString(x.as_bytes().to_vec());
        let v = Value::Array(vec![
            Value::Array(vec![
                s("name"),
                s("other"),
                s("last-delivered-id"),
                s("9-0"),
            ]),
            Value::Array(vec![
                s("name"),
                s("shippers"),
                s("last-delivered-id"),
                s("5-1"),
            ]),
        ]);
        assert_eq!(
            group_field(v, "shippers", "last-delivered-id").as_deref(),
            Some("5-1")
        );
    }
}
