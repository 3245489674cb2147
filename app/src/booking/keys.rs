//! The booking caches' Redis keys: cache-aside copies of database reads,
//! with short TTLs and deleted on every change. Losing one costs a database
//! read, nothing more. (The queue's own keys and scripts are in
//! `queue/scripts.rs`.)

use crate::queue::EventId;

/// The JSON list of events.
pub fn events_cache_key(prefix: &str) -> String {
    format!("{prefix}bk:events")
}

/// One event's JSON.
pub fn event_cache_key(prefix: &str, event: &EventId) -> String {
    format!("{prefix}bk:{{{}}}:event", event.as_str())
}

/// One event's seat map with statuses, gzipped JSON. (`:gz`: replicas of
/// an older release cached plain JSON under `:seats`; during a rolling
/// update neither reads the other's copy.)
pub fn seats_cache_key(prefix: &str, event: &EventId) -> String {
    format!("{prefix}bk:{{{}}}:seats:gz", event.as_str())
}

/// The last seat map built, kept longer than the fresh copy: what readers
/// get while one of them rebuilds the map (stale while revalidating).
pub fn seats_stale_key(prefix: &str, event: &EventId) -> String {
    format!("{prefix}bk:{{{}}}:seats:gz:last", event.as_str())
}
