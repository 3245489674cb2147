//! The event log: every change of every queue, and every booking, shipped
//! to Kinesis as versioned JSON events, so that operators have a durable
//! record of who joined and who got in, and `cargo xtask audit` can prove
//! after a sale that nobody was skipped, duplicated or let in twice.
//!
//! The queue never knows Kinesis. Each queue script appends what it changed
//! to the event's outbox stream in Redis, atomically with the change
//! (`queue::scripts`); bookings write a row of `event_outbox` in the
//! transaction of the booking. Shippers on every replica read the outboxes
//! ([`shipper`]), turn entries into [`Event`]s, put them to Kinesis in
//! batches ([`kinesis`]), and only then acknowledge them: delivery is at
//! least once, and a copy is recognised by `(event_id, id)`. A Kinesis
//! outage never blocks a join; the outboxes grow (up to a cap) and drain
//! when it is back.
//!
//! The event (binding): `{"v":1,"id","type","event_id","at","replica"}`,
//! for a fan's events `"ticket","seq","client_hash"`, and the fields of its
//! type; fields that do not apply are absent.

pub mod kinesis;
pub mod outbox;
pub mod shipper;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde::Serialize;
use serde_json::{Map, Value};

/// One event of the log, as it is shipped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub v: u8,
    /// `q:<n>` (the event's change counter in Redis) or `b:<row id>`.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub event_id: String,
    /// RFC 3339 in UTC, from Redis's clock (the database's for bookings).
    pub at: String,
    pub replica: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_hash: Option<String>,
    /// The fields of its type.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// The keyed hash that stands for a fan's identity in the log
/// (HMAC-SHA256 under EVENT_HASH_KEY, 128 bits in hex): the same identity
/// gives the same hash on every replica; the raw client id never leaves
/// Redis.
#[derive(Clone)]
pub struct IdentityHasher {
    key: ring::hmac::Key,
}

impl IdentityHasher {
    pub fn new(secret: &str) -> IdentityHasher {
        IdentityHasher {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
        }
    }

    pub fn hash(&self, identity: &str) -> String {
        let tag = ring::hmac::sign(&self.key, identity.as_bytes());
        tag.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// How the event log is doing, for readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogState {
    /// No KINESIS_STREAM: the log is off.
    Disabled,
    /// Shipping (or nothing to ship).
    Up,
    /// Kinesis refuses or cannot be reached: outboxes grow.
    Down,
    /// An outbox is full: changes past its cap are not recorded.
    Full,
}

impl LogState {
    pub fn as_str(self) -> &'static str {
        match self {
            LogState::Disabled => "disabled",
            LogState::Up => "up",
            LogState::Down => "down",
            LogState::Full => "full",
        }
    }
}

/// The shared view of [`LogState`], set by the shippers: `Full` while any
/// outbox is at its cap, else `Down` while puts fail, else `Up`.
#[derive(Debug)]
pub struct LogHealth {
    enabled: bool,
    down: AtomicBool,
    full: AtomicUsize,
}

impl LogHealth {
    pub fn new(enabled: bool) -> LogHealth {
        LogHealth {
            enabled,
            down: AtomicBool::new(false),
            full: AtomicUsize::new(0),
        }
    }

    /// Whether the last put failed; returns the state before.
    pub fn set_down(&self, down: bool) -> bool {
        self.down.swap(down, Ordering::Relaxed)
    }

    /// One outbox reached its cap (`true`) or went below it again.
    pub fn outbox_full(&self, full: bool) {
        if full {
            self.full.fetch_add(1, Ordering::Relaxed);
        } else {
            let _ = self
                .full
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    pub fn get(&self) -> LogState {
        if !self.enabled {
            LogState::Disabled
        } else if self.full.load(Ordering::Relaxed) > 0 {
            LogState::Full
        } else if self.down.load(Ordering::Relaxed) {
            LogState::Down
        } else {
            LogState::Up
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_carry_only_what_applies() {
        let mut fields = Map::new();
        fields.insert("reason".into(), json!("idle"));
        let e = Event {
            v: 1,
            id: "q:7".into(),
            kind: "expired".into(),
            event_id: "ev".into(),
            at: "2026-12-02T10:00:00.250Z".into(),
            replica: "r1".into(),
            ticket: Some("t".repeat(22)),
            seq: Some(3),
            client_hash: Some("ab".into()),
            fields,
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "expired");
        assert_eq!(v["reason"], "idle");
        assert_eq!(v["seq"], 3);
        let drawn = Event {
            kind: "drawn".into(),
            ticket: None,
            seq: None,
            client_hash: None,
            fields: Map::new(),
            ..e
        };
        let v = serde_json::to_value(&drawn).unwrap();
        for absent in ["ticket", "seq", "client_hash", "reason"] {
            assert!(v.get(absent).is_none(), "{absent} in {v}");
        }
    }

    #[test]
    fn identities_hash_the_same_everywhere_and_never_show() {
        let a = IdentityHasher::new("a-secret-of-sixteen+");
        let b = IdentityHasher::new("a-secret-of-sixteen+");
        let other = IdentityHasher::new("another-secret-16chars");
        let h = a.hash("cid:fan-1");
        assert_eq!(h, b.hash("cid:fan-1"));
        assert_eq!(h.len(), 32);
        assert!(!h.contains("fan-1"));
        assert_ne!(h, a.hash("cid:fan-2"));
        assert_ne!(h, other.hash("cid:fan-1"));
    }
}

#[cfg(test)]
mod health_tests {
    use super::*;

    #[test]
    fn a_full_outbox_outranks_a_failing_put() {
        let h = LogHealth::new(true);
        assert_eq!(h.get(), LogState::Up);
        h.set_down(true);
        assert_eq!(h.get(), LogState::Down);
        h.outbox_full(true);
        h.outbox_full(true);
        assert_eq!(h.get(), LogState::Full);
        h.outbox_full(false);
        assert_eq!(h.get(), LogState::Full);
        h.outbox_full(false);
        h.outbox_full(false);
        assert_eq!(h.get(), LogState::Down);
        h.set_down(false);
        assert_eq!(h.get(), LogState::Up);
        assert_eq!(LogHealth::new(false).get(), LogState::Disabled);
    }
}
