//! The admission queue: domain types and the operations on it. Each
//! operation is one atomic script in [`scripts`]; this module turns replies
//! into types.

pub mod admission;
pub mod challenge;
pub mod config;
pub mod draw;
pub mod hub;
pub mod scripts;

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use rand::RngCore;
use redis::Value;

use crate::store::{reply, Store, StoreError};
use config::QueueConfig;
use scripts::{events_key, EventKeys, Scripts};

/// An event id: 1-64 characters of `[a-z0-9-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(String);

impl EventId {
    pub fn parse(s: &str) -> Option<EventId> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ok.then(|| EventId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A ticket: 128 random bits, base64url without padding (22 characters).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Ticket(String);

pub const TICKET_LEN: usize = 22;

/// 128 random bits from the OS, base64url without padding (22 characters).
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    B64.encode(bytes)
}

impl Ticket {
    pub fn generate() -> Ticket {
        Ticket(random_id())
    }

    pub fn parse(s: &str) -> Option<Ticket> {
        let ok = s.len() == TICKET_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Ticket(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first characters only: what logs may show.
    pub fn redacted(&self) -> &str {
        &self.0[..6]
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ticket({}…)", self.redacted())
    }
}

/// Who holds a place: a client id, or the subject of an identity token.
#[derive(Clone, PartialEq, Eq)]
pub enum Identity {
    Client(String),
    Subject(String),
}

impl Identity {
    /// A client id: 1-128 characters of `[A-Za-z0-9._:-]`.
    pub fn client(s: &str) -> Option<Identity> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        ok.then(|| Identity::Client(s.to_string()))
    }

    fn key(&self) -> String {
        match self {
            Identity::Client(c) => format!("cid:{c}"),
            Identity::Subject(s) => format!("sub:{s}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketState {
    /// Waiting. `position` is `None` in the pre-queue (before `opens_at`,
    /// or while it is being drawn), when `opens_at` is set instead.
    Queued {
        position: Option<u64>,
        estimated_wait_seconds: Option<u64>,
        opens_at_ms: Option<i64>,
    },
    Admitted {
        admitted_ms: i64,
        expires_ms: i64,
    },
    SoldOut {
        position: Option<u64>,
    },
    Expired,
    Left,
}

impl TicketState {
    pub fn name(&self) -> &'static str {
        match self {
            TicketState::Queued { .. } => "queued",
            TicketState::Admitted { .. } => "admitted",
            TicketState::SoldOut { .. } => "sold_out",
            TicketState::Expired => "expired",
            TicketState::Left => "left",
        }
    }

    pub fn is_live(&self) -> bool {
        !matches!(self, TicketState::Expired | TicketState::Left)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketStatus {
    pub ticket: Ticket,
    pub state: TicketState,
    /// The event's notice to waiting fans, when one is set.
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    pub status: TicketStatus,
    /// False when the identity already held this place.
    pub new: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub mode: String,
    pub queued: u64,
    pub active: u64,
    pub capacity: u64,
    pub admit_per_second: u64,
    pub admitted_total: u64,
    pub opens_at_ms: Option<i64>,
    pub shuffle_seed: Option<String>,
    pub last_admit_ms: Option<i64>,
    pub message: Option<String>,
}

/// What one admission-loop run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TickReport {
    pub admitted: u64,
    pub expired: u64,
    pub queued: u64,
    pub active: u64,
    pub capacity: u64,
    pub admitted_total: u64,
    pub last_admit_ms: Option<i64>,
    pub draw_pending: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no queue is configured for this event")]
    EventNotFound,
    #[error("no such ticket")]
    TicketNotFound,
    #[error("the queue is closed to new arrivals")]
    QueueClosed,
    #[error("the event is sold out")]
    SoldOut,
    #[error("this event requires an identity token")]
    IdentityRequired,
    #[error("this event requires a solved challenge")]
    ChallengeRequired,
    #[error("the challenge's solution is refused")]
    ChallengeFailed,
    #[error("too many joins from this address")]
    RateLimited { retry_after_ms: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The queue operations, shared by every request handler and background task.
pub struct Queue {
    store: Store,
    prefix: String,
    scripts: Scripts,
    /// Recorded in the outbox with every change this replica makes.
    replica: String,
    /// An event's outbox takes no more entries past this (0: no cap).
    outbox_cap: u64,
    /// Whether the event log's shippers read the outboxes.
    shipping: bool,
}

/// What a join carried of a challenge.
#[derive(Debug, Clone, Copy)]
pub enum JoinChallenge<'a> {
    /// Nothing.
    None,
    /// A solution the replica's check refused.
    Refused,
    /// A solution that checks out (not yet known to be unused).
    Solved(&'a challenge::Verified),
}

/// Why a fan's ticket ended before its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// The fan left (or the page said so).
    Left,
    /// A booking ended the session.
    Booked,
}

impl LeaveReason {
    fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Booked => "booked",
        }
    }
}

fn protocol(script: &'static str, detail: impl Into<String>) -> QueueError {
    QueueError::Store(StoreError::Protocol {
        script,
        detail: detail.into(),
    })
}

fn err_code(script: &'static str, items: &[Value]) -> Option<QueueError> {
    if reply::string(items.first()?)? != "err" {
        return None;
    }
    let code = items.get(1).and_then(reply::string).unwrap_or_default();
    Some(match code.as_str() {
        "event_not_found" => QueueError::EventNotFound,
        "ticket_not_found" => QueueError::TicketNotFound,
        "queue_closed" => QueueError::QueueClosed,
        "sold_out" => QueueError::SoldOut,
        "identity_required" => QueueError::IdentityRequired,
        "challenge_required" => QueueError::ChallengeRequired,
        "challenge_failed" => QueueError::ChallengeFailed,
        "rate_limited" => QueueError::RateLimited {
            retry_after_ms: items.get(2).and_then(reply::int).unwrap_or(60_000).max(0) as u64,
        },
        other => protocol(script, format!("unknown error code {other}")),
    })
}

/// Parses a status reply `{state, ticket, position, wait, opens_at,
/// admitted_ms, hard_end_ms, message}`.
fn parse_status(script: &'static str, items: &[Value]) -> Result<TicketStatus, QueueError> {
    let s = |i: usize| items.get(i).and_then(reply::string).unwrap_or_default();
    let n = |i: usize| items.get(i).and_then(reply::int).unwrap_or(0);
    let ticket = Ticket::parse(&s(1)).ok_or_else(|| protocol(script, "bad ticket in reply"))?;
    let positive = |v: i64| (v > 0).then_some(v as u64);
    let state = match s(0).as_str() {
        "queued" => TicketState::Queued {
            position: positive(n(2)),
            estimated_wait_seconds: (n(3) >= 0).then_some(n(3) as u64),
            opens_at_ms: (n(2) <= 0).then_some(n(4)),
        },
        "admitted" => TicketState::Admitted {
            admitted_ms: n(5),
            expires_ms: n(6),
        },
        "sold_out" => TicketState::SoldOut {
            position: positive(n(2)),
        },
        "expired" => TicketState::Expired,
        "left" => TicketState::Left,
        "unknown" => return Err(QueueError::TicketNotFound),
        other => return Err(protocol(script, format!("unknown state {other}"))),
    };
    let message = Some(s(7)).filter(|m| !m.is_empty());
    Ok(TicketStatus {
        ticket,
        state,
        message,
    })
}

impl Queue {
    pub fn new(store: Store, prefix: &str) -> Queue {
        Queue {
            store,
            prefix: prefix.to_string(),
            scripts: Scripts::new(),
            replica: String::from("unnamed"),
            outbox_cap: 0,
            shipping: false,
        }
    }

    /// The replica this queue runs for, the outbox cap per event, and
    /// whether the event log ships the outboxes.
    pub fn for_replica(mut self, replica: &str, outbox_cap: u64, shipping: bool) -> Queue {
        self.replica = replica.to_string();
        self.outbox_cap = outbox_cap;
        self.shipping = shipping;
        self
    }

    pub fn shipping(&self) -> bool {
        self.shipping
    }

    /// The replica this queue runs for.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Runs one of the queue's scripts with the context every script takes
    /// first (see `scripts::context_args`).
    pub async fn run(
        &self,
        script: &crate::store::Script,
        keys: &[String],
        args: &[String],
    ) -> Result<Value, StoreError> {
        let mut all = Vec::with_capacity(args.len() + 2);
        all.extend(scripts::context_args(
            &self.replica,
            self.outbox_cap,
            self.shipping,
        ));
        all.extend_from_slice(args);
        self.store.eval(script, keys, &all).await
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn keys(&self, event: &EventId) -> EventKeys {
        EventKeys::new(&self.prefix, event)
    }

    /// Stores a whole configuration (creating the queue if needed) and
    /// returns the one it replaced.
    ///
    /// The configuration is written before the event joins the set the
    /// admission loop visits (the two keys live in different slots, so no
    /// one script can do both): a brand-new event is therefore never in the
    /// set without its configuration, and [`Queue::forget_if_gone`] can
    /// clean up orphans without losing an event configured meanwhile.
    pub async fn configure(
        &self,
        event: &EventId,
        config: &QueueConfig,
    ) -> Result<Option<QueueConfig>, QueueError> {
        let mut args = config.to_fields();
        // The configuration as the admin API shows it, for the outbox.
        args.push(serde_json::to_string(&config.to_body(event.as_str())).unwrap_or_default());
        let v = self
            .run(&self.scripts.configure, self.keys(event).all(), &args)
            .await?;
        let before: Vec<Option<String>> = reply::array("configure", v)?
            .iter()
            .map(reply::string)
            .collect();
        self.add_to_events(event).await?;
        Ok(QueueConfig::from_stored(&before))
    }

    async fn add_to_events(&self, event: &EventId) -> Result<(), QueueError> {
        // The shippers' set first: an event the admission loop visits always
        // has its outbox shipped (or trimmed by age, with the log off).
        let mut sadd = redis::cmd("SADD");
        sadd.arg(scripts::outboxes_key(&self.prefix))
            .arg(event.as_str());
        self.store.query("SADD", &sadd).await?;
        let mut sadd = redis::cmd("SADD");
        sadd.arg(events_key(&self.prefix)).arg(event.as_str());
        self.store.query("SADD", &sadd).await?;
        Ok(())
    }

    /// Takes an event the admission loop found without a configuration out
    /// of the set it visits (an orphan: left by a removal that raced a
    /// configuration). It is put back when a configuration appeared
    /// meanwhile: [`Queue::configure`] writes the configuration before it
    /// adds the event, so either this re-check sees the configuration, or
    /// that addition comes after this removal. Returns whether it was removed.
    pub async fn forget_if_gone(&self, event: &EventId) -> Result<bool, QueueError> {
        let mut srem = redis::cmd("SREM");
        srem.arg(events_key(&self.prefix)).arg(event.as_str());
        self.store.query("SREM", &srem).await?;
        let mut exists = redis::cmd("EXISTS");
        exists.arg(self.keys(event).meta());
        let v = self.store.query("EXISTS", &exists).await?;
        if reply::int(&v) == Some(1) {
            self.add_to_events(event).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// The stored configuration, if the event has one.
    pub async fn config(&self, event: &EventId) -> Result<Option<QueueConfig>, QueueError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.keys(event).meta())
            .arg(&scripts::CONFIG_FIELDS[..]);
        let v = self.store.query("HMGET", &cmd).await?;
        let values: Vec<Option<String>> = reply::array("config", v)?
            .iter()
            .map(reply::string)
            .collect();
        Ok(QueueConfig::from_stored(&values))
    }

    /// A fan joins (or gets back the place the identity holds). `pow` is
    /// what the join carried of a challenge, already checked by
    /// [`challenge::Pow::verify`]; an event with `challenge: pow` refuses a
    /// join without a good one before writing anything.
    pub async fn join(
        &self,
        event: &EventId,
        identity: &Identity,
        source: Option<&str>,
        pow: JoinChallenge<'_>,
    ) -> Result<JoinOutcome, QueueError> {
        let event_keys = self.keys(event);
        let mut keys = event_keys.all().to_vec();
        if let Some(addr) = source {
            keys.push(event_keys.source(addr));
        }
        let pow_arg = match pow {
            JoinChallenge::None => String::new(),
            JoinChallenge::Refused => "bad".into(),
            JoinChallenge::Solved(v) => {
                keys.push(event_keys.solution(&v.id));
                v.expires_ms.to_string()
            }
        };
        let ticket = Ticket::generate();
        let has_source = if source.is_some() { "1" } else { "0" };
        let args = [identity.key(), ticket.0, has_source.into(), pow_arg];
        let v = self.run(&self.scripts.join, &keys, &args).await?;
        let items = reply::array("join", v)?;
        if let Some(e) = err_code("join", &items) {
            return Err(e);
        }
        let new = match items.first().and_then(reply::string).as_deref() {
            Some("new") => true,
            Some("existing") => false,
            _ => return Err(protocol("join", "expected new or existing")),
        };
        Ok(JoinOutcome {
            status: parse_status("join", &items[1..])?,
            new,
        })
    }

    /// A poll of one ticket (counts as presence while queued). With
    /// `heartbeat`, it also keeps an admitted session alive.
    pub async fn status(
        &self,
        event: &EventId,
        ticket: &Ticket,
        heartbeat: bool,
    ) -> Result<TicketStatus, QueueError> {
        let args = [
            ticket.0.clone(),
            if heartbeat { "1" } else { "0" }.to_string(),
        ];
        let v = self
            .run(&self.scripts.status, self.keys(event).all(), &args)
            .await?;
        let items = reply::array("status", v)?;
        if let Some(e) = err_code("status", &items) {
            return Err(e);
        }
        parse_status("status", &items)
    }

    /// Many tickets at once for the WebSocket hub; unknown tickets are
    /// returned as `Err(TicketNotFound)` in their slot.
    pub async fn watch(
        &self,
        event: &EventId,
        tickets: &[Ticket],
    ) -> Result<
        (
            String,
            Option<String>,
            Vec<Result<TicketStatus, QueueError>>,
        ),
        QueueError,
    > {
        let args: Vec<String> = tickets.iter().map(|t| t.0.clone()).collect();
        let v = self
            .run(&self.scripts.watch, self.keys(event).all(), &args)
            .await?;
        let items = reply::array("watch", v)?;
        if let Some(e) = err_code("watch", &items) {
            return Err(e);
        }
        let mode = items.get(1).and_then(reply::string).unwrap_or_default();
        let message = items
            .get(2)
            .and_then(reply::string)
            .filter(|m| !m.is_empty());
        let statuses = items
            .into_iter()
            .skip(3)
            .map(|item| {
                reply::array("watch", item)
                    .map_err(QueueError::from)
                    .and_then(|i| parse_status("watch", &i))
            })
            .collect();
        Ok((mode, message, statuses))
    }

    /// Leaves the queue or ends the session. Returns false when the ticket
    /// had already ended (the call is idempotent).
    pub async fn leave(
        &self,
        event: &EventId,
        ticket: &Ticket,
        reason: LeaveReason,
    ) -> Result<bool, QueueError> {
        let v = self
            .run(
                &self.scripts.leave,
                self.keys(event).all(),
                &[ticket.0.clone(), reason.as_str().to_string()],
            )
            .await?;
        let items = reply::array("leave", v)?;
        if let Some(e) = err_code("leave", &items) {
            return Err(e);
        }
        let before = items.get(1).and_then(reply::string).unwrap_or_default();
        Ok(before == "q" || before == "a")
    }

    pub async fn stats(&self, event: &EventId) -> Result<QueueStats, QueueError> {
        let v = self
            .run(&self.scripts.stats, self.keys(event).all(), &[])
            .await?;
        let items = reply::array("stats", v)?;
        if let Some(e) = err_code("stats", &items) {
            return Err(e);
        }
        let s = |i: usize| {
            items
                .get(i)
                .and_then(reply::string)
                .filter(|v| !v.is_empty())
        };
        let n = |i: usize| items.get(i).and_then(reply::int).unwrap_or(0);
        Ok(QueueStats {
            mode: s(1).unwrap_or_default(),
            queued: n(2).max(0) as u64,
            active: n(3).max(0) as u64,
            capacity: n(4).max(0) as u64,
            admit_per_second: n(5).max(0) as u64,
            admitted_total: n(6).max(0) as u64,
            opens_at_ms: Some(n(7)).filter(|v| *v > 0),
            shuffle_seed: s(8),
            last_admit_ms: Some(n(9)).filter(|v| *v > 0),
            message: s(10),
        })
    }

    /// One admission-loop run for an event; `None` when the event has no
    /// configuration any more.
    pub async fn tick(
        &self,
        event: &EventId,
        replica: &str,
        batch: u64,
        heartbeat_ttl_ms: u64,
    ) -> Result<Option<TickReport>, QueueError> {
        let args = [
            replica.to_string(),
            batch.to_string(),
            heartbeat_ttl_ms.to_string(),
            scripts::OUTBOX_KEEP_MS.to_string(),
        ];
        let v = self
            .run(&self.scripts.tick, self.keys(event).all(), &args)
            .await?;
        let items = reply::array("tick", v)?;
        if items.first().and_then(reply::string).as_deref() == Some("gone") {
            return Ok(None);
        }
        let n = |i: usize| items.get(i).and_then(reply::int).unwrap_or(0).max(0) as u64;
        Ok(Some(TickReport {
            admitted: n(1),
            expired: n(2),
            queued: n(3),
            active: n(4),
            capacity: n(5),
            admitted_total: n(6),
            last_admit_ms: Some(n(7) as i64).filter(|v| *v > 0),
            draw_pending: n(8) == 1,
        }))
    }

    /// Forgets the event, then deletes its queue (the reverse order of
    /// [`Queue::configure`]): a removal cut short leaves keys nobody visits
    /// rather than a set entry without keys, and either way the admission
    /// loop cleans up what is left.
    pub async fn remove(&self, event: &EventId) -> Result<(), QueueError> {
        let mut cmd = redis::cmd("SREM");
        cmd.arg(events_key(&self.prefix)).arg(event.as_str());
        self.store.query("SREM", &cmd).await?;
        self.run(&self.scripts.remove, self.keys(event).all(), &[])
            .await?;
        if !self.shipping {
            // The outbox went with the queue; with the log on, the shippers
            // take the event out of their set once its outbox is shipped.
            let mut cmd = redis::cmd("SREM");
            cmd.arg(scripts::outboxes_key(&self.prefix))
                .arg(event.as_str());
            self.store.query("SREM", &cmd).await?;
        }
        Ok(())
    }

    /// Switches to `sold_out` (or back, if the switch was automatic), unless
    /// a decision of a later `version` was applied already. Returns whether
    /// the mode changed.
    pub async fn auto_sold_out(
        &self,
        event: &EventId,
        sold_out: bool,
        version: i64,
    ) -> Result<bool, QueueError> {
        let arg = if sold_out { "1" } else { "0" };
        let v = self
            .run(
                &self.scripts.auto_sold_out,
                self.keys(event).all(),
                &[arg.to_string(), version.to_string()],
            )
            .await?;
        let items = reply::array("auto_sold_out", v)?;
        if let Some(e) = err_code("auto_sold_out", &items) {
            return Err(e);
        }
        Ok(items.get(1).and_then(reply::int) == Some(1))
    }

    /// Moves an existing queue's opening (the event's sale moved).
    pub async fn set_opens_at(
        &self,
        event: &EventId,
        opens_at_ms: Option<i64>,
    ) -> Result<(), QueueError> {
        let arg = opens_at_ms.map(|v| v.to_string()).unwrap_or_default();
        let v = self
            .run(&self.scripts.set_opens_at, self.keys(event).all(), &[arg])
            .await?;
        let items = reply::array("set_opens_at", v)?;
        match err_code("set_opens_at", &items) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every event with a queue.
    pub async fn events(&self) -> Result<Vec<EventId>, QueueError> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(events_key(&self.prefix));
        let v = self.store.query("SMEMBERS", &cmd).await?;
        let mut events: Vec<EventId> = reply::array("events", v)?
            .iter()
            .filter_map(reply::string)
            .filter_map(|s| EventId::parse(&s))
            .collect();
        events.sort();
        Ok(events)
    }

    pub(crate) fn scripts(&self) -> &Scripts {
        &self.scripts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_checked() {
        assert!(EventId::parse("concert-2026").is_some());
        assert!(EventId::parse(&"a".repeat(64)).is_some());
        for bad in ["", "Concert", "a_b", "a b", "ä", &"a".repeat(65), "a{b}"] {
            assert!(EventId::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn tickets_are_128_bit_and_unique() {
        let a = Ticket::generate();
        let b = Ticket::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), TICKET_LEN);
        assert_eq!(Ticket::parse(a.as_str()), Some(a.clone()));
        assert!(Ticket::parse("short").is_none());
        assert!(Ticket::parse(&"=".repeat(22)).is_none());
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn client_ids_are_checked() {
        assert!(Identity::client("fan-1:abc.DEF_x").is_some());
        assert!(Identity::client("fan 1").is_none());
        assert!(Identity::client("fan/1").is_none());
        assert!(Identity::client("").is_none());
        assert!(Identity::client(&"a".repeat(129)).is_none());
    }
}
