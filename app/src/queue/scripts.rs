//! Every Redis key name and every Lua script of the queue, in one place.
//!
//! # Key layout
//! All keys of one event share the hash tag `{<event_id>}`, so each script
//! touches a single slot and runs unchanged on standalone Redis, Redis
//! Cluster and ElastiCache Serverless. Every key a script touches is passed
//! in `KEYS`, always in the order of [`EventKeys`]:
//!
//! | # | key                         | type | holds |
//! |---|-----------------------------|------|-------|
//! | 1 | `<p>wr:{<ev>}:meta`         | hash | configuration, counters, pacer, draw state |
//! | 2 | `<p>wr:{<ev>}:queue`        | zset | waiting tickets, score = arrival sequence |
//! | 3 | `<p>wr:{<ev>}:pre`          | zset | pre-queue (joined before `opens_at`), score = sequence |
//! | 4 | `<p>wr:{<ev>}:seen`         | zset | waiting tickets, score = last sign of life (ms) |
//! | 5 | `<p>wr:{<ev>}:active`       | zset | admitted tickets, score = session end (ms) |
//! | 6 | `<p>wr:{<ev>}:tickets`      | hash | ticket -> `state,seq,admitted_ms,hard_end_ms,identity` |
//! | 7 | `<p>wr:{<ev>}:ids`          | hash | identity -> its live ticket |
//! | 8 | `<p>wr:{<ev>}:gone`         | zset | left/expired tickets, score = when (ms); purged after 1 h |
//! | 9 | `<p>wr:{<ev>}:window`       | list | the token bucket: admissions per 10 ms over the last second (`bucket:count`) |
//! | 10| `<p>wr:{<ev>}:rate`         | list | admissions per second over the last minute (`second:count`) |
//! | 11| `<p>wr:{<ev>}:replicas`     | zset | replica id -> heartbeat deadline (ms) |
//! | 12| `<p>wr:{<ev>}:outbox`       | stream | every change of the queue, in order (the event log's outbox) |
//! | 13| `<p>wr:{<ev>}:src:<addr>`   | str  | joins from one client address this minute (join only) |
//! | 14| `<p>wr:{<ev>}:pow:<challenge>` | str | a used challenge solution -> the identity that used it, until it expires (join only) |
//!
//! Outside any event: `<p>wr:events`, a set of event ids the admission loop
//! visits, and `<p>wr:outboxes`, the events whose outbox the shippers read
//! (an event leaves it only once its queue is gone and its outbox shipped).
//! No key holding a fan's place has a TTL, so memory pressure can never
//! silently evict someone from the queue.
//!
//! # The outbox
//! Every script that changes the queue appends what changed to the event's
//! outbox stream, in the same atomic run: one entry per change, fields
//! `t` (type: joined, drawn, admitted, expired, left, sold_out, reopened,
//! config_changed), `n` (the event's change counter, `meta.evseq`), `at`
//! (Redis's clock, ms), `r` (the replica that ran it), and as they apply
//! `tk` (ticket), `s` (the fan's seq: join order, or the drawn place),
//! `i` (the identity: never shipped, the shipper hashes it), `pq` (joined
//! the pre-queue), `h` (an admitted session's hard end, ms), `rs` (reason),
//! `seed`/`size` (drawn), `mode`, `cfg` (JSON), `oa` (opens_at ms). See
//! `crate::events` for what becomes of them. An outbox at its cap first
//! sheds its shipped history; if what is left (not yet shipped) still fills
//! it, it takes no more entries (each counted in `meta.outbox_dropped`):
//! the queue never blocks on the event log.
//!
//! The outbox keeps about a minute of history (the WebSocket hubs of every
//! replica read it for their fans); the admission loop's `tick` trims it at
//! most once a second, and never past an entry the shippers have not
//! acknowledged when the event log is on.
//!
//! Every script gets three context arguments before its own (see
//! [`context_args`]): the replica's id, the outbox cap, and whether the
//! event log ships the outbox (`1`) or not (`0`).
//!
//! Time is always Redis's own clock (`TIME`), never a replica's, and order is
//! always the sequence `HINCRBY meta seq`.

use crate::queue::EventId;
use crate::store::Script;

/// The keys of one event, in the order every script expects them.
#[derive(Debug, Clone)]
pub struct EventKeys {
    keys: Vec<String>,
    prefix: String,
}

const KEY_NAMES: [&str; 12] = [
    "meta", "queue", "pre", "seen", "active", "tickets", "ids", "gone", "window", "rate",
    "replicas", "outbox",
];

impl EventKeys {
    pub fn new(prefix: &str, event: &EventId) -> Self {
        let base = format!("{prefix}wr:{{{}}}", event.as_str());
        EventKeys {
            keys: KEY_NAMES.iter().map(|n| format!("{base}:{n}")).collect(),
            prefix: base,
        }
    }

    pub fn all(&self) -> &[String] {
        &self.keys
    }

    pub fn meta(&self) -> &str {
        &self.keys[0]
    }

    pub fn pre(&self) -> &str {
        &self.keys[2]
    }

    pub fn tickets(&self) -> &str {
        &self.keys[5]
    }

    pub fn outbox(&self) -> &str {
        &self.keys[11]
    }

    /// The event's keys plus the per-address join counter.
    pub fn with_source(&self, source: &str) -> Vec<String> {
        let mut keys = self.keys.clone();
        keys.push(self.source(source));
        keys
    }

    /// The per-address join counter.
    pub fn source(&self, source: &str) -> String {
        format!("{}:src:{source}", self.prefix)
    }

    /// The key remembering a used challenge solution (by its challenge).
    pub fn solution(&self, challenge: &str) -> String {
        format!("{}:pow:{challenge}", self.prefix)
    }
}

/// The set of event ids known to the admission loop.
pub fn events_key(prefix: &str) -> String {
    format!("{prefix}wr:events")
}

/// The set of event ids whose outbox the shippers read.
pub fn outboxes_key(prefix: &str) -> String {
    format!("{prefix}wr:outboxes")
}

/// The `event_outbox` rows already put to Kinesis (member: the row id,
/// score: when), kept for [`SHIPPED_BOOKINGS_KEEP_MS`]: a row whose
/// deletion a database restart undid is deleted again, not shipped twice.
pub fn shipped_bookings_key(prefix: &str) -> String {
    format!("{prefix}wr:shipped_bookings")
}

/// How long a shipped booking row is remembered.
pub const SHIPPED_BOOKINGS_KEEP_MS: i64 = 3_600_000;

/// The consumer group of the shippers on every outbox.
pub const SHIPPER_GROUP: &str = "shippers";

/// How long shipped outbox entries are kept (the hubs read them).
pub const OUTBOX_KEEP_MS: u64 = 60_000;

/// The arguments every script takes before its own: the replica that runs
/// it (recorded in the outbox), the outbox cap (0: no cap), and whether the
/// event log ships outboxes.
pub fn context_args(replica: &str, outbox_cap: u64, shipping: bool) -> [String; 3] {
    [
        replica.to_string(),
        outbox_cap.to_string(),
        if shipping { "1" } else { "0" }.to_string(),
    ]
}

/// The fields of the queue's configuration in the `meta` hash: the one
/// list both the Rust side (`QueueConfig::to_fields`, `from_stored`) and the
/// scripts (`load_config`, which reads them as `f.<name>`) go by.
pub const CONFIG_FIELDS: [&str; 14] = [
    "mode",
    "capacity",
    "sessions_per_replica",
    "max_capacity",
    "admit_per_second",
    "session_timeout",
    "session_max",
    "idle_timeout",
    "opens_at",
    "max_joins_per_source",
    "message",
    "require_identity",
    "challenge",
    "challenge_difficulty",
];

/// The Lua table of [`CONFIG_FIELDS`], for the prelude.
fn config_fields_lua() -> String {
    let names: Vec<String> = CONFIG_FIELDS.iter().map(|f| format!("'{f}'")).collect();
    format!("local CONFIG_FIELDS = {{{}}}", names.join(", "))
}

/// Helpers shared by every script (prepended to each one).
const PRELUDE: &str = r#"
local K_META, K_QUEUE, K_PRE, K_SEEN, K_ACTIVE, K_TICKETS, K_IDS, K_GONE, K_WINDOW, K_RATE, K_REPLICAS, K_OUTBOX =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]

-- The caller's context comes before the script's own arguments.
local REPLICA = table.remove(ARGV, 1)
local OUTBOX_CAP = tonumber(table.remove(ARGV, 1)) or 0
local SHIPPING = table.remove(ARGV, 1) == '1'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Appends one change to the outbox (see the module's comment). `fan` is
-- {ticket, seq, ident} or nil; `extra` a flat list of field, value.
local trim_shipped
local function emit(kind, now, fan, extra)
  local n = redis.call('HINCRBY', K_META, 'evseq', 1)
  if OUTBOX_CAP > 0 and redis.call('XLEN', K_OUTBOX) >= OUTBOX_CAP then
    -- At the cap, the shipped history (kept for the hubs) goes first, at
    -- most once per 100 ms; only what is not shipped yet counts.
    local last = tonumber(redis.call('HGET', K_META, 'cap_trimmed_at')) or 0
    if now - last >= 100 then
      redis.call('HSET', K_META, 'cap_trimmed_at', now)
      trim_shipped(now, 0)
    end
    if redis.call('XLEN', K_OUTBOX) >= OUTBOX_CAP then
      redis.call('HINCRBY', K_META, 'outbox_dropped', 1)
      return
    end
  end
  local f = {'t', kind, 'n', n, 'at', now, 'r', REPLICA}
  if fan then
    f[#f + 1] = 'tk'; f[#f + 1] = fan[1]
    f[#f + 1] = 's'; f[#f + 1] = fan[2]
    f[#f + 1] = 'i'; f[#f + 1] = fan[3]
  end
  if extra then
    for _, v in ipairs(extra) do f[#f + 1] = v end
  end
  redis.call('XADD', K_OUTBOX, '*', unpack(f))
end

-- Stream ids as {ms, seq}, and the smaller of two.
local function parse_id(id)
  local ms, seq = string.match(id or '', '^(%d+)-(%d+)$')
  if not ms then return nil end
  return {tonumber(ms), tonumber(seq)}
end

local function id_below(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end

-- Trims the outbox to the last `keep_ms`, never past an entry the shippers
-- have not acknowledged (when they ship it).
trim_shipped = function(now, keep_ms)
  if redis.call('EXISTS', K_OUTBOX) == 0 then return end
  local floor = {now - keep_ms, 0}
  if SHIPPING then
    local shipped = false
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', K_OUTBOX)) do
      local info = {}
      for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
      if info['name'] == 'shippers' then
        shipped = true
        local delivered = parse_id(info['last-delivered-id'])
        if delivered and id_below(delivered, floor) then floor = delivered end
        local pending = redis.call('XPENDING', K_OUTBOX, 'shippers')
        local oldest = parse_id(pending[2])
        if oldest and id_below(oldest, floor) then floor = oldest end
      end
    end
    -- Nobody has read it yet: keep all of it.
    if not shipped then return end
  end
  redis.call('XTRIM', K_OUTBOX, 'MINID', floor[1] .. '-' .. floor[2])
end

-- Trims the outbox to the last OUTBOX_KEEP_MS, at most once a second.
local function trim_outbox(now, keep_ms)
  local last = tonumber(redis.call('HGET', K_META, 'trimmed_at')) or 0
  if now - last < 1000 then return end
  redis.call('HSET', K_META, 'trimmed_at', now)
  trim_shipped(now, keep_ms)
end

-- The configuration (CONFIG_FIELDS, by name) and the draw's state.
local function load_config()
  local v = redis.call('HMGET', K_META, 'opening', 'draw_pos', unpack(CONFIG_FIELDS))
  local f = {}
  for i, name in ipairs(CONFIG_FIELDS) do f[name] = v[i + 2] end
  if not f.mode then return nil end
  return {
    mode = f.mode,
    capacity = tonumber(f.capacity),
    spr = tonumber(f.sessions_per_replica),
    max_capacity = tonumber(f.max_capacity) or 0,
    rate = tonumber(f.admit_per_second) or 0,
    session_timeout = (tonumber(f.session_timeout) or 60) * 1000,
    session_max = (tonumber(f.session_max) or 900) * 1000,
    idle = (tonumber(f.idle_timeout) or 60) * 1000,
    opens_at = tonumber(f.opens_at),
    max_src = tonumber(f.max_joins_per_source) or 0,
    message = f.message or '',
    opening = v[1] == '1',
    draw_pos = tonumber(v[2]) or 0,
    require_identity = f.require_identity == '1',
    challenge = f.challenge or 'off',
    challenge_difficulty = tonumber(f.challenge_difficulty),
  }
end

local function admits(c)
  return c.mode == 'fifo' or c.mode == 'random' or c.mode == 'passthrough' or c.mode == 'closed'
end

local function effective_capacity(c, now)
  if c.spr then
    local alive = redis.call('ZCOUNT', K_REPLICAS, '(' .. now, '+inf')
    return math.min(c.spr * alive, c.max_capacity)
  end
  return c.capacity or 0
end

-- Joins go to the pre-queue until opens_at.
local function prequeue_open(c, now)
  return (not c.opening) and c.opens_at ~= nil and now < c.opens_at
end

-- The pre-queue is closed and not yet drawn: it is frozen (nobody is
-- removed from it, so every replica sees the same list to shuffle) and
-- nobody is admitted until the draw has placed it.
local function draw_pending(c, now)
  if c.opening then return true end
  if c.opens_at and now < c.opens_at then return false end
  return redis.call('EXISTS', K_PRE) == 1
end

local function parse_record(rec)
  local st, seq, adm, hard, ident = string.match(rec, '^(%a),(%d+),(%d*),(%d*),(.*)$')
  if not st then return nil end
  return { state = st, seq = seq, admitted = tonumber(adm), hard = tonumber(hard), ident = ident }
end

local function write_record(ticket, r)
  redis.call('HSET', K_TICKETS, ticket,
    r.state .. ',' .. r.seq .. ',' .. (r.admitted or '') .. ',' .. (r.hard or '') .. ',' .. r.ident)
end

local function get_record(ticket)
  local rec = redis.call('HGET', K_TICKETS, ticket)
  if not rec then return nil end
  return parse_record(rec)
end

-- Ends a ticket (state 'l' left or 'e' expired) and frees its identity.
-- reason: timeout, idle, session_max (expired), left, booked (left).
local function finish(ticket, r, state, now, reason)
  r.state = state
  write_record(ticket, r)
  if r.ident ~= '' and redis.call('HGET', K_IDS, r.ident) == ticket then
    redis.call('HDEL', K_IDS, r.ident)
  end
  redis.call('ZADD', K_GONE, now, ticket)
  emit(state == 'l' and 'left' or 'expired', now, {ticket, r.seq, r.ident}, {'rs', reason})
end

-- Why an admitted session whose time (soft end `soft`) is up ended.
local function session_end(r, soft)
  if r.hard and soft and soft >= r.hard then return 'session_max' end
  return 'timeout'
end

local function drop_waiting(ticket, frozen)
  redis.call('ZREM', K_QUEUE, ticket)
  redis.call('ZREM', K_SEEN, ticket)
  if not frozen then redis.call('ZREM', K_PRE, ticket) end
end

-- seq: the fan's place in the queue's order (the drawn place for a
-- pre-queue fan), recorded in the outbox.
local function admit_ticket(c, now, ticket, r, seq)
  r.state = 'a'
  r.admitted = now
  r.hard = math.floor((now + c.session_max) / 1000) * 1000
  write_record(ticket, r)
  redis.call('ZADD', K_ACTIVE, math.min(now + c.session_timeout, r.hard), ticket)
  redis.call('ZREM', K_SEEN, ticket)
  emit('admitted', now, {ticket, seq or r.seq, r.ident}, {'h', r.hard})
end

local function split_pair(s)
  local a, b = string.match(s, '^(%d+):(%d+)$')
  return tonumber(a), tonumber(b)
end

-- The token bucket of one second's worth: admit_per_second tokens, each
-- admission takes one, and each comes back a second after it was taken.
-- Returns the tokens taken in the last second, after dropping 10 ms buckets
-- that ended more than a second ago (a bucket counts until 1 s after its
-- end, so no window of one second ever holds more than admit_per_second).
local function window_used(now)
  local stored = tonumber(redis.call('HGET', K_META, 'window_used')) or 0
  local used = stored
  while true do
    local head = redis.call('LINDEX', K_WINDOW, 0)
    if not head then used = 0 break end
    local b, n = split_pair(head)
    if b * 10 + 1010 > now then break end
    redis.call('LPOP', K_WINDOW)
    used = used - n
  end
  if used < 0 then used = 0 end
  -- Saved at once: a run that pops buckets but admits nobody must not
  -- leave the count too high for the next one.
  if used ~= stored then redis.call('HSET', K_META, 'window_used', used) end
  return used
end

-- The pacer: refills at admit_per_second and holds a quarter of a second's
-- worth (at least 3, so that late ticks lose nothing at low rates), so the
-- admission loop spreads admissions evenly through the second instead of
-- letting a whole second's worth through at once.
local function pace_tokens(c, now)
  local cap = math.max(3, c.rate / 4)
  local v = redis.call('HMGET', K_META, 'pace_tokens', 'pace_at')
  local tokens, at = tonumber(v[1]), tonumber(v[2])
  if not tokens then return cap end
  return math.min(cap, tokens + c.rate * math.max(0, now - at) / 1000)
end

local function store_pace(tokens, now)
  redis.call('HSET', K_META, 'pace_tokens', tostring(tokens), 'pace_at', now)
end

local function bump_bucket(key, bucket, n, keep)
  local tail = redis.call('LINDEX', key, -1)
  local tb, tn
  if tail then tb, tn = split_pair(tail) end
  if tb == bucket then
    redis.call('LSET', key, -1, bucket .. ':' .. (tn + n))
  else
    redis.call('RPUSH', key, bucket .. ':' .. n)
    redis.call('LTRIM', key, -keep, -1)
  end
end

local function record_admissions(now, n, pace, used)
  store_pace(math.max(0, pace - n), now)
  redis.call('HSET', K_META, 'window_used', used + n, 'last_admit_ms', now)
  redis.call('HINCRBY', K_META, 'admitted_total', n)
  bump_bucket(K_WINDOW, math.floor(now / 10), n, 200)
  bump_bucket(K_RATE, math.floor(now / 1000), n, 61)
end

-- Admissions per second measured over the last 60 s (over less when the
-- first admission is more recent); nil when none.
local function measured_rate(now)
  local s = math.floor(now / 1000)
  local sum, first = 0, nil
  for _, e in ipairs(redis.call('LRANGE', K_RATE, 0, -1)) do
    local es, en = split_pair(e)
    if es > s - 60 then
      sum = sum + en
      if not first or es < first then first = es end
    end
  end
  if sum == 0 then return nil end
  return sum / math.min(60, s - first + 1)
end

-- Seconds to wait at a position, or -1 (null) when no rate can be known.
local function wait_estimate(c, now, position)
  if not admits(c) then return -1 end
  local rate = measured_rate(now) or c.rate
  if rate <= 0 then return -1 end
  return math.ceil(position / rate)
end

-- Whether a queued ticket joined after the pre-queue (its sequence is
-- above every pre-queue sequence), while the pre-queue is being drawn.
local function later_than_draw(ticket)
  local last = redis.call('ZRANGE', K_PRE, -1, -1, 'WITHSCORES')
  if not last[2] then return false end
  return tonumber(redis.call('ZSCORE', K_QUEUE, ticket)) > tonumber(last[2])
end

-- A status reply: {state, ticket, position, wait, opens_at, admitted_ms, hard_end_ms, message}
local function reply(state, ticket, position, wait, opens_at, admitted, hard, message)
  return { state, ticket, position or 0, wait or -1, opens_at or 0, admitted or 0, hard or 0, message or '' }
end

-- A ticket's state, expiring it on the spot when its time is up.
-- touch_queue: a poll counts as presence for a waiting fan.
-- touch_session: a heartbeat or socket keeps an admitted session alive.
local function ticket_status(c, now, ticket, r, touch_queue, touch_session, frozen)
  if r.state == 'q' then
    local seen = tonumber(redis.call('ZSCORE', K_SEEN, ticket))
    if not frozen and (not seen or seen + c.idle <= now) then
      drop_waiting(ticket, false)
      finish(ticket, r, 'e', now, 'idle')
      return reply('expired', ticket)
    end
    if touch_queue then redis.call('ZADD', K_SEEN, now, ticket) end
    local rank = redis.call('ZRANK', K_QUEUE, ticket)
    if rank and frozen and later_than_draw(ticket) then
      -- Joined after the opening while the pre-queue is still being
      -- placed ahead: no exact position until the draw is done.
      rank = nil
    end
    if c.mode == 'sold_out' then
      return reply('sold_out', ticket, rank and rank + 1 or 0, -1, 0, 0, 0, c.message)
    end
    if rank then
      return reply('queued', ticket, rank + 1, wait_estimate(c, now, rank + 1), 0, 0, 0, c.message)
    end
    return reply('queued', ticket, 0, -1, c.opens_at or now, 0, 0, c.message)
  elseif r.state == 'a' then
    local soft = tonumber(redis.call('ZSCORE', K_ACTIVE, ticket))
    if not soft or soft <= now then
      redis.call('ZREM', K_ACTIVE, ticket)
      finish(ticket, r, 'e', now, session_end(r, soft))
      return reply('expired', ticket)
    end
    if touch_session then
      redis.call('ZADD', K_ACTIVE, math.min(now + c.session_timeout, r.hard), ticket)
    end
    return reply('admitted', ticket, 0, -1, 0, r.admitted, r.hard)
  elseif r.state == 'l' then
    return reply('left', ticket)
  end
  return reply('expired', ticket)
end
"#;

/// Creates or replaces an event's queue configuration.
///
/// KEYS: the event's keys (`meta`; `outbox` for the change).
/// ARGV: field, value, field, value, ... (every configuration field; an
///       empty value means "none"), then the configuration as JSON (for the
///       outbox).
/// Returns: the previous values of the same fields, in order (nil where the
///          event had none), so that the change can be logged.
const CONFIGURE: &str = r#"
local cfg = table.remove(ARGV)
local fields = {}
for i = 1, #ARGV, 2 do fields[#fields + 1] = ARGV[i] end
local before = redis.call('HMGET', K_META, unpack(fields))
redis.call('HSET', K_META, unpack(ARGV))
-- An admin's choice of mode wins over an automatic sold-out switch.
redis.call('HDEL', K_META, 'auto_sold_out_from')
emit('config_changed', now_ms(), nil, {'mode', redis.call('HGET', K_META, 'mode'), 'cfg', cfg})
return before
"#;

/// A fan joins (or rejoins) the queue.
///
/// KEYS: the event's keys, then the source-address counter (13) when ARGV[3]
///       is `1`, then the solution's key (`pow:<challenge>`, last) when
///       ARGV[4] is an expiry.
/// ARGV: identity, a fresh random ticket id (used only for a new arrival),
///       `1`/`0` (a source counter is given), and the challenge: `` (none
///       sent), `bad` (sent, refused by the replica's check) or the unix ms
///       at which the checked solution expires.
/// Returns: `{'err', code[, retry_after_ms]}` with code `event_not_found`,
///          `challenge_required`, `challenge_failed`, `rate_limited`,
///          `identity_required`, `queue_closed` or `sold_out`; otherwise
///          `{'new'|'existing', <status reply>...}`.
/// Invariants: one live ticket per identity; admitted at once only when
/// nobody waits, there is room and a token; order is the sequence. A join
/// to a `pow` event without a good solution writes nothing; a solution is
/// taken once (kept, as the identity that used it, until it expires: the
/// same fan retrying gets its place back, anyone else `challenge_failed`).
/// An event without a challenge ignores whatever is sent.
const JOIN: &str = r#"
local ident, ticket = ARGV[1], ARGV[2]
local K_SRC = ARGV[3] == '1' and KEYS[13] or nil
local pow = ARGV[4] or ''
local K_POW = tonumber(pow) and KEYS[#KEYS] or nil
local c = load_config()
if not c then return {'err', 'event_not_found'} end
if c.challenge == 'pow' then
  if pow == '' then return {'err', 'challenge_required'} end
  if not K_POW then return {'err', 'challenge_failed'} end
end
local now = now_ms()
if K_SRC and c.max_src > 0 then
  local n = redis.call('INCR', K_SRC)
  if n == 1 then redis.call('PEXPIRE', K_SRC, 60000) end
  if n > c.max_src then
    local ttl = redis.call('PTTL', K_SRC)
    if ttl < 0 then redis.call('PEXPIRE', K_SRC, 60000) ttl = 60000 end
    return {'err', 'rate_limited', ttl}
  end
end
if c.challenge == 'pow' then
  local ttl = math.max(tonumber(pow) - now, 1000)
  if not redis.call('SET', K_POW, ident, 'NX', 'PX', ttl) and redis.call('GET', K_POW) ~= ident then
    return {'err', 'challenge_failed'}
  end
end
if c.require_identity and string.sub(ident, 1, 4) ~= 'sub:' then
  return {'err', 'identity_required'}
end
local frozen = draw_pending(c, now)
local existing = redis.call('HGET', K_IDS, ident)
if existing then
  local r = get_record(existing)
  if r then
    local s = ticket_status(c, now, existing, r, true, true, frozen)
    if s[1] ~= 'expired' and s[1] ~= 'left' then
      table.insert(s, 1, 'existing')
      return s
    end
  end
  redis.call('HDEL', K_IDS, ident)
end
if c.mode == 'closed' then return {'err', 'queue_closed'} end
if c.mode == 'sold_out' then return {'err', 'sold_out'} end
local seq = redis.call('HINCRBY', K_META, 'seq', 1)
local r = { state = 'q', seq = tostring(seq), ident = ident }
redis.call('HSET', K_IDS, ident, ticket)
if prequeue_open(c, now) then
  write_record(ticket, r)
  redis.call('ZADD', K_PRE, seq, ticket)
  redis.call('ZADD', K_SEEN, now, ticket)
  emit('joined', now, {ticket, seq, ident}, {'pq', '1'})
  local s = reply('queued', ticket, 0, -1, c.opens_at, 0, 0, c.message)
  table.insert(s, 1, 'new')
  return s
end
if not frozen and redis.call('ZCARD', K_QUEUE) == 0 and (c.mode == 'fifo' or c.mode == 'random' or c.mode == 'passthrough') then
  local used = window_used(now)
  local room = c.mode == 'passthrough' or
    redis.call('ZCOUNT', K_ACTIVE, '(' .. now, '+inf') < effective_capacity(c, now)
  if room and (used < c.rate or c.mode == 'passthrough') then
    emit('joined', now, {ticket, seq, ident})
    admit_ticket(c, now, ticket, r)
    record_admissions(now, 1, pace_tokens(c, now), used)
    local s = reply('admitted', ticket, 0, -1, 0, r.admitted, r.hard)
    table.insert(s, 1, 'new')
    return s
  end
end
write_record(ticket, r)
redis.call('ZADD', K_QUEUE, seq, ticket)
redis.call('ZADD', K_SEEN, now, ticket)
emit('joined', now, {ticket, seq, ident})
local s
if frozen then
  -- Behind the pre-queue, which is still being placed: no position yet.
  s = reply('queued', ticket, 0, -1, c.opens_at or now, 0, 0, c.message)
else
  local position = redis.call('ZRANK', K_QUEUE, ticket) + 1
  s = reply('queued', ticket, position, wait_estimate(c, now, position), 0, 0, 0, c.message)
end
table.insert(s, 1, 'new')
return s
"#;

/// A ticket's state (a poll: counts as presence for a waiting fan).
///
/// KEYS: the event's keys.
/// ARGV: ticket, touch_session (`1` for a heartbeat, `0` for a poll).
/// Returns: `{'err', 'event_not_found'|'ticket_not_found'}` or a status reply.
const STATUS: &str = r#"
local c = load_config()
if not c then return {'err', 'event_not_found'} end
local r = get_record(ARGV[1])
if not r then return {'err', 'ticket_not_found'} end
local now = now_ms()
return ticket_status(c, now, ARGV[1], r, true, ARGV[2] == '1', draw_pending(c, now))
"#;

/// Many tickets at once, for the WebSocket hub of one replica: each open
/// socket counts as presence (queued) and keeps its session alive (admitted).
///
/// KEYS: the event's keys.
/// ARGV: tickets (at most a few hundred per call).
/// Returns: `{'err', 'event_not_found'}` or `{'ok', mode, message, reply...}`
///          with one status reply per ticket (state `unknown` when there is
///          no such ticket).
const WATCH: &str = r#"
local c = load_config()
if not c then return {'err', 'event_not_found'} end
local now = now_ms()
local frozen = draw_pending(c, now)
local out = {'ok', c.mode, c.message}
for i = 1, #ARGV do
  local r = get_record(ARGV[i])
  if r then
    out[#out + 1] = ticket_status(c, now, ARGV[i], r, true, true, frozen)
  else
    out[#out + 1] = reply('unknown', ARGV[i])
  end
end
return out
"#;

/// A fan leaves: the place or the session is freed at once. Idempotent.
///
/// KEYS: the event's keys.
/// ARGV: ticket, reason (`left`, or `booked` when a booking ended it).
/// Returns: `{'err', 'event_not_found'|'ticket_not_found'}` or
///          `{'ok', previous state letter}`.
const LEAVE: &str = r#"
local c = load_config()
if not c then return {'err', 'event_not_found'} end
local ticket = ARGV[1]
local r = get_record(ticket)
if not r then return {'err', 'ticket_not_found'} end
local now = now_ms()
local before = r.state
local reason = ARGV[2] or 'left'
if r.state == 'q' then
  drop_waiting(ticket, draw_pending(c, now))
  finish(ticket, r, 'l', now, reason)
elseif r.state == 'a' then
  redis.call('ZREM', K_ACTIVE, ticket)
  finish(ticket, r, 'l', now, reason)
end
return {'ok', before}
"#;

/// One run of a replica's admission loop for one event.
///
/// KEYS: the event's keys.
/// ARGV: replica id, batch limit, replica heartbeat ttl (ms), outbox
///       history to keep (ms).
/// Returns: `{'gone'}` when the event has no configuration, else
///          `{'ok', admitted, expired, queued, active, capacity,
///            admitted_total, last_admit_ms, draw_pending (0/1)}`.
/// Invariants: heartbeats this replica; expires ended sessions and idle
/// waiters (at most `batch` each); admits from the head (or at random in
/// `random` mode), skipping the abandoned, never beyond capacity or the
/// one-second token bucket, paced evenly, at most `batch` per run; admits
/// nobody while the pre-queue waits for its draw.
const TICK: &str = r#"
local c = load_config()
if not c then return {'gone'} end
local now = now_ms()
local batch = tonumber(ARGV[2])
redis.call('ZADD', K_REPLICAS, now + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', K_REPLICAS, '-inf', now)
local expired = 0
local ended = redis.call('ZRANGEBYSCORE', K_ACTIVE, '-inf', now, 'WITHSCORES', 'LIMIT', 0, batch)
for i = 1, #ended, 2 do
  local t, soft = ended[i], tonumber(ended[i + 1])
  redis.call('ZREM', K_ACTIVE, t)
  local r = get_record(t)
  if r and r.state == 'a' then finish(t, r, 'e', now, session_end(r, soft)) end
  expired = expired + 1
end
local frozen = draw_pending(c, now)
if not frozen then
  for _, t in ipairs(redis.call('ZRANGEBYSCORE', K_SEEN, '-inf', now - c.idle, 'LIMIT', 0, batch)) do
    drop_waiting(t, false)
    local r = get_record(t)
    if r and r.state == 'q' then finish(t, r, 'e', now, 'idle') end
    expired = expired + 1
  end
end
for _, t in ipairs(redis.call('ZRANGEBYSCORE', K_GONE, '-inf', now - 3600000, 'LIMIT', 0, batch)) do
  redis.call('ZREM', K_GONE, t)
  local r = get_record(t)
  if r and (r.state == 'l' or r.state == 'e') then redis.call('HDEL', K_TICKETS, t) end
end
local capacity = effective_capacity(c, now)
local admitted = 0
if not frozen and admits(c) then
  local used = window_used(now)
  local pace = pace_tokens(c, now)
  local want = batch
  if c.mode ~= 'passthrough' then
    want = math.min(math.floor(pace), c.rate - used, capacity - redis.call('ZCARD', K_ACTIVE), batch)
  end
  local tries = 0
  while admitted < want and tries < 2 * batch do
    tries = tries + 1
    local pick
    if c.mode == 'random' then
      pick = redis.call('ZRANDMEMBER', K_QUEUE, 1, 'WITHSCORES')
    else
      pick = redis.call('ZRANGE', K_QUEUE, 0, 0, 'WITHSCORES')
    end
    local t, place = pick[1], pick[2]
    if not t then break end
    redis.call('ZREM', K_QUEUE, t)
    local seen = tonumber(redis.call('ZSCORE', K_SEEN, t))
    local r = get_record(t)
    if r and r.state == 'q' and seen and seen + c.idle > now then
      admit_ticket(c, now, t, r, place)
      admitted = admitted + 1
    else
      redis.call('ZREM', K_SEEN, t)
      if r and r.state == 'q' then finish(t, r, 'e', now, 'idle') end
      expired = expired + 1
    end
  end
  if admitted > 0 then
    record_admissions(now, admitted, pace, used)
  else
    store_pace(pace, now)
  end
end
trim_outbox(now, tonumber(ARGV[4]))
local pre = redis.call('ZCARD', K_PRE)
if c.opening then pre = math.max(0, pre - c.draw_pos) end
local v = redis.call('HMGET', K_META, 'admitted_total', 'last_admit_ms')
return {'ok', admitted, expired, redis.call('ZCARD', K_QUEUE) + pre,
  redis.call('ZCOUNT', K_ACTIVE, '(' .. now, '+inf'), capacity,
  tonumber(v[1]) or 0, tonumber(v[2]) or 0, frozen and 1 or 0}
"#;

/// The public statistics of an event's queue.
///
/// KEYS: the event's keys.
/// ARGV: none.
/// Returns: `{'err', 'event_not_found'}` or `{'ok', mode, queued, active,
///          capacity, admit_per_second, admitted_total, opens_at_ms,
///          shuffle_seed, last_admit_ms, message}` (empty string or 0 for none).
const STATS: &str = r#"
local c = load_config()
if not c then return {'err', 'event_not_found'} end
local now = now_ms()
local pre = redis.call('ZCARD', K_PRE)
if c.opening then pre = math.max(0, pre - c.draw_pos) end
local v = redis.call('HMGET', K_META, 'admitted_total', 'shuffle_seed', 'last_admit_ms')
return {'ok', c.mode, redis.call('ZCARD', K_QUEUE) + pre,
  redis.call('ZCOUNT', K_ACTIVE, '(' .. now, '+inf'), effective_capacity(c, now), c.rate,
  tonumber(v[1]) or 0, c.opens_at or 0, v[2] or '', tonumber(v[3]) or 0, c.message}
"#;

/// Starts (or resumes) the draw of the pre-queue, under a lease so that one
/// replica does it at a time.
///
/// KEYS: the event's keys.
/// ARGV: replica id, a fresh seed (hex; kept only when a new draw starts),
///       lease (ms).
/// Returns: `{0}` when there is nothing to draw or another replica holds the
///          lease, else `{1, seed, position reached, pre-queue size}`.
const DRAW_BEGIN: &str = r#"
local c = load_config()
if not c then return {0} end
local now = now_ms()
if not draw_pending(c, now) then return {0} end
local lease = redis.call('HMGET', K_META, 'draw_owner', 'draw_until')
if lease[1] and lease[1] ~= ARGV[1] and (tonumber(lease[2]) or 0) > now then return {0} end
redis.call('HSET', K_META, 'draw_owner', ARGV[1], 'draw_until', now + tonumber(ARGV[3]))
if not c.opening then
  local size = redis.call('ZCARD', K_PRE)
  redis.call('HSET', K_META, 'opening', '1', 'shuffle_seed', ARGV[2], 'draw_pos', 0,
    'draw_size', size)
  emit('drawn', now, nil, {'seed', ARGV[2], 'size', size})
end
local v = redis.call('HMGET', K_META, 'shuffle_seed', 'draw_pos', 'draw_size')
return {1, v[1], tonumber(v[2]), tonumber(v[3])}
"#;

/// Places one batch of the drawn pre-queue into the queue.
///
/// KEYS: the event's keys.
/// ARGV: replica id, position the batch starts at, lease (ms), then
///       ticket, score, ticket, score, ...
/// Returns: `{1, new position}` (and when the draw is complete the pre-queue
///          is deleted and admission resumes), `{-1}` when the lease was
///          lost, `{-2, position}` when the batch does not start where the
///          draw stands.
const DRAW_PLACE: &str = r#"
local now = now_ms()
local v = redis.call('HMGET', K_META, 'draw_owner', 'draw_pos', 'draw_size', 'opening')
if v[1] ~= ARGV[1] or v[4] ~= '1' then return {-1} end
local pos = tonumber(v[2]) or 0
if pos ~= tonumber(ARGV[2]) then return {-2, pos} end
local placed = 0
for i = 4, #ARGV, 2 do
  local t = ARGV[i]
  local r = get_record(t)
  if r and r.state == 'q' then redis.call('ZADD', K_QUEUE, ARGV[i + 1], t) end
  placed = placed + 1
end
pos = pos + placed
redis.call('HSET', K_META, 'draw_pos', pos, 'draw_until', now + tonumber(ARGV[3]))
if pos >= (tonumber(v[3]) or 0) then
  redis.call('DEL', K_PRE)
  redis.call('HDEL', K_META, 'opening', 'draw_owner', 'draw_until')
end
return {1, pos}
"#;

/// Removes an event's queue (the event was deleted). When the event log
/// ships the outbox it stays, and the shippers delete it once every entry
/// is shipped; otherwise it goes with the rest.
///
/// KEYS: the event's keys.
/// ARGV: none.
/// Returns: the number of keys deleted.
const REMOVE: &str = r#"
local gone = 0
for i = 1, #KEYS do
  if KEYS[i] ~= K_OUTBOX or not SHIPPING then gone = gone + redis.call('DEL', KEYS[i]) end
end
return gone
"#;

/// Switches the mode to `sold_out` when the last seat is reserved
/// (remembering the mode it had), or back when a cancellation frees a seat
/// (only if the switch was automatic: an admin's `sold_out` stays).
/// Decisions are versioned by the database's count of reserved seats; one
/// older than the last applied is ignored, so decisions that reach Redis
/// out of order cannot leave the wrong mode.
///
/// KEYS: the event's keys (only `meta`).
/// ARGV: `1` (sold out) or `0` (seats available again), the decision's
///       version.
/// Returns: `{'err', 'event_not_found'}` or `{'ok', 1 if the mode changed}`.
const AUTO_SOLD_OUT: &str = r#"
local mode = redis.call('HGET', K_META, 'mode')
if not mode then return {'err', 'event_not_found'} end
local version = tonumber(ARGV[2])
local applied = tonumber(redis.call('HGET', K_META, 'sold_out_version')) or -1
if version <= applied then return {'ok', 0} end
redis.call('HSET', K_META, 'sold_out_version', version)
if ARGV[1] == '1' then
  if mode == 'sold_out' then return {'ok', 0} end
  redis.call('HSET', K_META, 'mode', 'sold_out', 'auto_sold_out_from', mode)
  emit('sold_out', now_ms(), nil, {'mode', 'sold_out'})
  return {'ok', 1}
end
local from = redis.call('HGET', K_META, 'auto_sold_out_from')
if mode == 'sold_out' and from then
  redis.call('HSET', K_META, 'mode', from)
  redis.call('HDEL', K_META, 'auto_sold_out_from')
  emit('reopened', now_ms(), nil, {'mode', from})
  return {'ok', 1}
end
return {'ok', 0}
"#;

/// Moves the opening of an existing queue, leaving the rest of its
/// configuration (and an automatic sold-out) as it is.
///
/// KEYS: the event's keys (only `meta`).
/// ARGV: opens_at in Unix ms, or empty for none.
/// Returns: `{'err', 'event_not_found'}` or `{'ok'}`.
const SET_OPENS_AT: &str = r#"
local mode = redis.call('HGET', K_META, 'mode')
if not mode then return {'err', 'event_not_found'} end
redis.call('HSET', K_META, 'opens_at', ARGV[1])
emit('config_changed', now_ms(), nil, {'mode', mode, 'oa', ARGV[1]})
return {'ok'}
"#;

/// All scripts, with their sources assembled once.
pub struct Scripts {
    pub configure: Script,
    pub join: Script,
    pub status: Script,
    pub watch: Script,
    pub leave: Script,
    pub tick: Script,
    pub stats: Script,
    pub draw_begin: Script,
    pub draw_place: Script,
    pub remove: Script,
    pub auto_sold_out: Script,
    pub set_opens_at: Script,
}

impl Scripts {
    pub fn new() -> Self {
        let fields = config_fields_lua();
        let s = |name, body: &str| Script::new(name, format!("{fields}\n{PRELUDE}\n{body}"));
        Scripts {
            configure: s("configure", CONFIGURE),
            join: s("join", JOIN),
            status: s("status", STATUS),
            watch: s("watch", WATCH),
            leave: s("leave", LEAVE),
            tick: s("tick", TICK),
            stats: s("stats", STATS),
            draw_begin: s("draw_begin", DRAW_BEGIN),
            draw_place: s("draw_place", DRAW_PLACE),
            remove: s("remove", REMOVE),
            auto_sold_out: s("auto_sold_out", AUTO_SOLD_OUT),
            set_opens_at: s("set_opens_at", SET_OPENS_AT),
        }
    }

    pub fn all(&self) -> [&Script; 12] {
        [
            &self.configure,
            &self.join,
            &self.status,
            &self.watch,
            &self.leave,
            &self.tick,
            &self.stats,
            &self.draw_begin,
            &self.draw_place,
            &self.remove,
            &self.auto_sold_out,
            &self.set_opens_at,
        ]
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_an_event_shares_one_hash_tag() {
        let ev = EventId::parse("concert-2026").unwrap();
        let keys = EventKeys::new("prod:", &ev);
        for k in keys.with_source("203.0.113.9") {
            assert!(k.starts_with("prod:wr:{concert-2026}:"), "{k}");
            let tag_start = k.find('{').unwrap();
            let tag_end = k.find('}').unwrap();
            assert_eq!(&k[tag_start + 1..tag_end], "concert-2026");
        }
        assert_eq!(keys.all().len(), 12);
    }

    #[test]
    fn the_prelude_reads_exactly_the_config_fields() {
        // Every `f.<name>` the prelude reads is a stored field, and every
        // stored field is read.
        let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let mut read: Vec<&str> = PRELUDE
            .match_indices("f.")
            .filter(|(at, _)| !PRELUDE[..*at].ends_with(ident))
            .map(|(at, _)| {
                PRELUDE[at + 2..]
                    .split(|c: char| !ident(c))
                    .next()
                    .unwrap_or("")
            })
            .collect();
        read.sort_unstable();
        read.dedup();
        let mut fields = CONFIG_FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(read, fields);
    }

    #[test]
    fn scripts_only_use_keys_they_are_given() {
        // ElastiCache refuses scripts that build key names; every redis.call
        // must name a K_ constant or KEYS[n].
        for script in Scripts::new().all() {
            for line in script.source().lines() {
                if let Some(at) = line.find("redis.call('") {
                    let rest = &line[at + "redis.call('".len()..];
                    let cmd: String = rest.chars().take_while(|c| *c != '\'').collect();
                    if cmd == "TIME" {
                        continue;
                    }
                    let mut after = &rest[cmd.len() + 1..];
                    if cmd == "XINFO" {
                        // XINFO's key comes after its subcommand.
                        after = after.trim_start_matches([',', ' ']);
                        after = after.split_once(',').map(|(_, r)| r).unwrap_or("");
                    }
                    let arg = after.trim_start_matches([',', ' ']);
                    assert!(
                        arg.starts_with("K_")
                            || arg.starts_with("KEYS[")
                            || arg.starts_with("unpack(KEYS)")
                            || arg.starts_with("key"),
                        "{}: `{}` does not take its key from KEYS",
                        script.name,
                        line.trim()
                    );
                }
            }
        }
    }
}
