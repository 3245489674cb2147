//! The event log's wire format (version 1), as the app writes it: a Kinesis
//! record's data is a JSON array of events, each
//! `{"v":1,"id","type","event_id","at","replica"}` plus, for a fan's events,
//! `"ticket","seq","client_hash"`, plus the fields of its type.
//!
//! Parsed once into [`Event`], so the arithmetic never sees a missing field.

use std::fmt;

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Identifies an event within its sale; copies share it. Queue events
/// (`q:<n>`) are numbered by a counter the Redis scripts increment
/// atomically, so their order is the order the queue changed in. Booking
/// events (`b:<row>`) come from MySQL and are not ordered against them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventId {
    Queue(u64),
    Booking(u64),
}

impl EventId {
    fn parse(s: &str) -> Option<EventId> {
        let (kind, n) = s.split_once(':')?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n = n.parse().ok()?;
        match kind {
            "q" => Some(EventId::Queue(n)),
            "b" => Some(EventId::Booking(n)),
            _ => None,
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventId::Queue(n) => write!(f, "q:{n}"),
            EventId::Booking(n) => write!(f, "b:{n}"),
        }
    }
}

/// The fan an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fan {
    pub ticket: String,
    /// The fan's place in the queue's order (for `joined`, the join
    /// sequence).
    pub seq: u64,
    /// Keyed hash of the fan's identity (client id or signed identity).
    pub client_hash: String,
}

/// The queue modes (`config_changed.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Fifo,
    Random,
    Passthrough,
    Paused,
    Closed,
    SoldOut,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "fifo" => Mode::Fifo,
            "random" => Mode::Random,
            "passthrough" => Mode::Passthrough,
            "paused" => Mode::Paused,
            "closed" => Mode::Closed,
            "sold_out" => Mode::SoldOut,
            _ => return None,
        })
    }

    /// Modes that admit from the head of the queue, in `seq` order:
    /// `fifo`, and `closed` (no new joins, admission goes on from the head).
    pub fn admits_in_order(self) -> bool {
        matches!(self, Mode::Fifo | Mode::Closed)
    }
}

/// What happened, with the fields of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Joined {
        fan: Fan,
        prequeue: bool,
    },
    Drawn {
        seed: [u8; 32],
        size: u64,
    },
    Admitted {
        fan: Fan,
    },
    /// `expired` or `left`: the fan's ticket ended (waiting or admitted).
    Ended {
        fan: Fan,
    },
    SoldOut,
    Reopened,
    ConfigChanged {
        mode: Mode,
        /// `config.opens_at` (ms), when the queue has an opening.
        opens_at_ms: Option<i64>,
    },
    /// `booked`, `cancelled`, `hold_expired`: counted for redelivery only.
    Booking,
}

/// One event of the audited sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    /// `at`, in ms since the epoch (Redis's clock).
    pub at_ms: i64,
    pub kind: Kind,
}

/// What a record's element turned out to be.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// An event of the audited sale.
    Event(Event),
    /// An event of another sale sharing the stream (its `event_id`).
    Other(String),
    /// Not something this audit can read (say why).
    Unreadable(String),
}

#[derive(Deserialize)]
struct Wire {
    #[serde(deserialize_with = "number")]
    v: u64,
    id: String,
    #[serde(rename = "type")]
    kind: String,
    at: String,
    ticket: Option<String>,
    #[serde(default, deserialize_with = "some_number")]
    seq: Option<u64>,
    client_hash: Option<String>,
    #[serde(default, deserialize_with = "flag")]
    prequeue: bool,
    seed: Option<String>,
    #[serde(default, deserialize_with = "some_number")]
    size: Option<u64>,
    mode: Option<String>,
    config: Option<WireConfig>,
}

/// A whole number written as a JSON number or as a string of digits (the
/// scripts hold every field as a string; either reaches the wire as one).
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(u64),
    Text(String),
}

fn number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Number::deserialize(d)? {
        Number::Int(n) => Ok(n),
        Number::Text(s) => s
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a whole number"))),
    }
}

fn some_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    number(d).map(Some)
}

/// `true`, or `"1"` / `"true"` as the scripts write flags.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Text(s) => s == "1" || s == "true",
    })
}

#[derive(Deserialize)]
struct WireConfig {
    opens_at: Option<String>,
}

/// The events of one record's data, each parsed for `sale` (the audited
/// `event_id`). A record that is not a JSON array (or object) is one
/// unreadable element.
pub fn parse_record(data: &[u8], sale: &str) -> Vec<Parsed> {
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(serde_json::Value::Array(items)) => items.into_iter().map(|v| parse(v, sale)).collect(),
        Ok(v @ serde_json::Value::Object(_)) => vec![parse(v, sale)],
        Ok(_) => vec![Parsed::Unreadable(
            "a record that is not a JSON array of events".into(),
        )],
        Err(e) => vec![Parsed::Unreadable(format!(
            "a record that is not JSON: {e}"
        ))],
    }
}

fn parse(value: serde_json::Value, sale: &str) -> Parsed {
    match value.get("event_id").and_then(|v| v.as_str()) {
        Some(id) if id == sale => {}
        Some(other) => return Parsed::Other(other.to_string()),
        None => return Parsed::Unreadable("an event without `event_id`".into()),
    }
    let wire: Wire = match serde_json::from_value(value) {
        Ok(w) => w,
        Err(e) => return Parsed::Unreadable(format!("an event of an unexpected shape: {e}")),
    };
    match event(wire) {
        Ok(e) => Parsed::Event(e),
        Err(why) => Parsed::Unreadable(why),
    }
}

fn event(w: Wire) -> Result<Event, String> {
    if w.v != 1 {
        return Err(format!("an event of version {} (this audit reads 1)", w.v));
    }
    let id = EventId::parse(&w.id).ok_or_else(|| format!("an event with id `{}`", w.id))?;
    let at_ms = parse_time_ms(&w.at).ok_or_else(|| format!("{}: `at` is `{}`", w.id, w.at))?;
    let missing = |field: &str| format!("{} ({}): no `{field}`", w.id, w.kind);
    let fan = || -> Result<Fan, String> {
        Ok(Fan {
            ticket: w.ticket.clone().ok_or_else(|| missing("ticket"))?,
            seq: w.seq.ok_or_else(|| missing("seq"))?,
            client_hash: w
                .client_hash
                .clone()
                .ok_or_else(|| missing("client_hash"))?,
        })
    };
    let kind = match w.kind.as_str() {
        "joined" => Kind::Joined {
            fan: fan()?,
            prequeue: w.prequeue,
        },
        "drawn" => Kind::Drawn {
            seed: w
                .seed
                .as_deref()
                .and_then(super::draw::parse_seed)
                .ok_or_else(|| missing("seed (64 hex digits)"))?,
            size: w.size.ok_or_else(|| missing("size"))?,
        },
        "admitted" => Kind::Admitted { fan: fan()? },
        "expired" | "left" => Kind::Ended { fan: fan()? },
        "sold_out" => Kind::SoldOut,
        "reopened" => Kind::Reopened,
        "config_changed" => Kind::ConfigChanged {
            mode: w
                .mode
                .as_deref()
                .and_then(Mode::parse)
                .ok_or_else(|| missing("mode"))?,
            opens_at_ms: match w.config.and_then(|c| c.opens_at) {
                None => None,
                Some(s) => {
                    Some(parse_time_ms(&s).ok_or_else(|| format!("{}: opens_at `{s}`", w.id))?)
                }
            },
        },
        "booked" | "cancelled" | "hold_expired" => Kind::Booking,
        other => return Err(format!("{}: unknown type `{other}`", w.id)),
    };
    Ok(Event { id, at_ms, kind })
}

/// RFC 3339 to ms since the epoch.
pub fn parse_time_ms(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(json: &str) -> Parsed {
        let mut v = parse_record(format!("[{json}]").as_bytes(), "sale");
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn reads_every_type_of_the_format() {
        let fan = r#""ticket":"t1","seq":7,"client_hash":"h1""#;
        let head = |id: &str, ty: &str| {
            format!(
                r#""v":1,"id":"{id}","type":"{ty}","event_id":"sale","at":"2026-11-23T20:00:00.250Z","replica":"r1""#
            )
        };
        let Parsed::Event(e) = one(&format!(
            "{{{},{fan},\"prequeue\":true}}",
            head("q:3", "joined")
        )) else {
            panic!()
        };
        assert_eq!(e.id, EventId::Queue(3));
        assert_eq!(e.at_ms, 1_795_464_000_250);
        assert!(matches!(e.kind, Kind::Joined { prequeue: true, ref fan } if fan.seq == 7));
        let seed = "ab".repeat(32);
        assert!(matches!(
            one(&format!(
                r#"{{{},"seed":"{seed}","size":5}}"#,
                head("q:9", "drawn")
            )),
            Parsed::Event(Event {
                kind: Kind::Drawn { size: 5, .. },
                ..
            })
        ));
        for ty in ["expired", "left"] {
            assert!(matches!(
                one(&format!(r#"{{{},{fan},"reason":"idle"}}"#, head("q:4", ty))),
                Parsed::Event(Event {
                    kind: Kind::Ended { .. },
                    ..
                })
            ));
        }
        assert!(matches!(
            one(&format!(
                r#"{{{},"mode":"random","config":{{"mode":"random","opens_at":"2026-11-23T20:00:00Z","capacity":2}}}}"#,
                head("q:1", "config_changed")
            )),
            Parsed::Event(Event {
                kind: Kind::ConfigChanged {
                    mode: Mode::Random,
                    opens_at_ms: Some(1_795_464_000_000)
                },
                ..
            })
        ));
        assert!(matches!(
            one(&format!(
                r#"{{{},"ticket":"t1","seat_ids":["A-1"],"reservation_id":"r"}}"#,
                head("b:12", "booked")
            )),
            Parsed::Event(Event {
                id: EventId::Booking(12),
                kind: Kind::Booking,
                ..
            })
        ));
    }

    #[test]
    fn other_sales_and_bad_events_are_told_apart() {
        assert_eq!(
            one(r#"{"v":1,"id":"q:1","type":"sold_out","event_id":"other","at":"x"}"#),
            Parsed::Other("other".into())
        );
        let bad = [
            r#"{"v":2,"id":"q:1","type":"sold_out","event_id":"sale","at":"2026-11-23T20:00:00Z"}"#,
            r#"{"v":1,"id":"x:1","type":"sold_out","event_id":"sale","at":"2026-11-23T20:00:00Z"}"#,
            r#"{"v":1,"id":"q:1","type":"admitted","event_id":"sale","at":"2026-11-23T20:00:00Z","ticket":"t"}"#,
            r#"{"v":1,"id":"q:1","type":"teleported","event_id":"sale","at":"2026-11-23T20:00:00Z"}"#,
            r#"{"v":1,"id":"q:1","type":"sold_out","event_id":"sale","at":"yesterday"}"#,
            r#"{"v":1,"type":"sold_out","event_id":"sale"}"#,
            r#"{"id":"q:1"}"#,
        ];
        for json in bad {
            assert!(matches!(one(json), Parsed::Unreadable(_)), "{json}");
        }
        assert!(matches!(
            parse_record(b"not json", "sale")[..],
            [Parsed::Unreadable(_)]
        ));
    }

    #[test]
    fn numbers_and_flags_may_come_as_strings() {
        let Parsed::Event(e) = one(
            r#"{"v":"1","id":"q:2","type":"joined","event_id":"sale","at":"2026-11-23T20:00:00Z","ticket":"t","seq":"42","client_hash":"h","prequeue":"1"}"#,
        ) else {
            panic!()
        };
        assert!(matches!(e.kind, Kind::Joined { prequeue: true, ref fan } if fan.seq == 42));
        assert!(matches!(
            one(
                r#"{"v":1,"id":"q:2","type":"admitted","event_id":"sale","at":"2026-11-23T20:00:00Z","ticket":"t","seq":"4x","client_hash":"h"}"#
            ),
            Parsed::Unreadable(_)
        ));
    }
}
