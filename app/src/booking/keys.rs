//! The booking caches' Redis keys: cache-aside copies of database reads,
//! with short TTLs and deleted on every change. Losing one costs a database
//! read, nothing more. (The queue's own keys and scripts are in
//! `queue/scripts.rs`.)

use std::sync::LazyLock;

use crate::queue::EventId;
use crate::store::Script;

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

/// How many times the event's claims (or the event) have changed: a
/// counter, its TTL renewed on every change. Each cached copy has one, so
/// that a copy read before a change is not stored after it (see
/// [`CACHE_PUT`]).
pub fn seats_version_key(prefix: &str, event: &EventId) -> String {
    format!("{prefix}bk:{{{}}}:seats:ver", event.as_str())
}

/// The version of one event's JSON (changed by the event's own changes
/// only: holds, which change it far more often, would keep it uncached).
pub fn event_version_key(prefix: &str, event: &EventId) -> String {
    format!("{prefix}bk:{{{}}}:event:ver", event.as_str())
}

/// The version of the list of events.
pub fn events_version_key(prefix: &str) -> String {
    format!("{prefix}bk:events:ver")
}

/// After a change has committed: KEYS[1] a version, counted up (its TTL
/// ARGV[1] ms renewed); the other KEYS (the cached copies) deleted.
pub static CACHE_CHANGED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "cache_changed",
        "redis.call('INCR', KEYS[1])\n\
         redis.call('PEXPIRE', KEYS[1], ARGV[1])\n\
         for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end\n\
         return 1"
            .to_string(),
    )
});

/// After a read: KEYS = the version, the fresh copy and optionally a last
/// copy; ARGV = the version read before the database was (empty when there
/// was none), the value, the fresh and the last copy's TTL in ms. The last
/// copy is always stored (it is allowed to be stale); the fresh one only
/// when no change came in between, else a copy read just before a hold
/// committed would be served as fresh after that hold deleted it. Returns
/// 1 when the fresh copy was stored.
pub static CACHE_PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "cache_put",
        "if KEYS[3] then redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[4]) end\n\
         if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end\n\
         redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])\n\
         return 1"
            .to_string(),
    )
});
