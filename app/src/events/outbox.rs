//! Reading the outbox streams the queue scripts write (see
//! `queue::scripts` for the fields of an entry), and turning entries into
//! [`Event`]s.

use std::collections::HashMap;

use redis::Value;
use serde_json::{json, Map};

use super::{Event, IdentityHasher};
use crate::clock::format_ms;
use crate::store::{reply, StoreError};

/// One outbox entry: its stream id and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub fields: HashMap<String, String>,
}

impl Entry {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    /// The entry's type (`t`).
    pub fn kind(&self) -> &str {
        self.get("t").unwrap_or("")
    }

    /// The stream id's milliseconds (Redis's clock when it was added).
    pub fn millis(&self) -> Option<i64> {
        self.id.split('-').next()?.parse().ok()
    }

    /// The shipped event, or `None` for an entry this version cannot read
    /// (logged by the caller; it is acknowledged and skipped, never retried
    /// forever).
    pub fn to_event(&self, event_id: &str, hasher: Option<&IdentityHasher>) -> Option<Event> {
        let n: u64 = self.get("n")?.parse().ok()?;
        let at: i64 = self.get("at")?.parse().ok()?;
        let kind = self.kind().to_string();
        let mut fields = Map::new();
        match kind.as_str() {
            "joined" => {
                if self.get("pq") == Some("1") {
                    fields.insert("prequeue".into(), json!(true));
                }
            }
            "drawn" => {
                fields.insert("seed".into(), json!(self.get("seed")?));
                let size: u64 = self.get("size")?.parse().ok()?;
                fields.insert("size".into(), json!(size));
            }
            "admitted" | "sold_out" => {}
            "expired" | "left" => {
                fields.insert("reason".into(), json!(self.get("rs")?));
            }
            "reopened" => {
                fields.insert("mode".into(), json!(self.get("mode")?));
            }
            "config_changed" => {
                fields.insert("mode".into(), json!(self.get("mode")?));
                if let Some(cfg) = self.get("cfg") {
                    if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(cfg) {
                        if let Some(o) = v.as_object_mut() {
                            o.remove("event_id");
                        }
                        fields.insert("config".into(), v);
                    }
                }
                if let Some(oa) = self.get("oa") {
                    let opens = oa.parse::<i64>().ok().map(format_ms);
                    fields.insert("opens_at".into(), json!(opens));
                }
            }
            _ => return None,
        }
        let ticket = self.get("tk").map(str::to_string);
        let seq = self.get("s").and_then(|s| s.parse().ok());
        let client_hash = match (self.get("i"), hasher) {
            (Some(identity), Some(h)) if !identity.is_empty() => Some(h.hash(identity)),
            _ => None,
        };
        Some(Event {
            v: 1,
            id: format!("q:{n}"),
            kind,
            event_id: event_id.to_string(),
            at: format_ms(at),
            replica: self.get("r").unwrap_or("").to_string(),
            ticket,
            seq,
            client_hash,
            fields,
        })
    }
}

/// The entries of a stream's entry list (`[[id, [field, value, ...]], ...]`).
pub fn entries(script: &'static str, list: Value) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    for item in reply::array(script, list)? {
        let pair = match item {
            // A deleted entry still pending shows as [id, nil]: skip it.
            Value::Array(pair) => pair,
            _ => continue,
        };
        let Some(id) = pair.first().and_then(reply::string) else {
            continue;
        };
        let mut fields = HashMap::new();
        if let Some(Value::Array(flat)) = pair.get(1) {
            for kv in flat.chunks(2) {
                if let (Some(k), Some(v)) = (
                    kv.first().and_then(reply::string),
                    kv.get(1).and_then(reply::string),
                ) {
                    fields.insert(k, v);
                }
            }
        }
        out.push(Entry { id, fields });
    }
    Ok(out)
}

/// The entries of an `XREAD`/`XREADGROUP` reply for one stream (nil when
/// the block ran out).
pub fn read_reply(v: Value) -> Result<Vec<Entry>, StoreError> {
    let streams = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(pairs) => pairs.into_iter().map(|(_, list)| list).collect(),
        other => reply::array("xread", other)?
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => kv.pop(),
                _ => None,
            })
            .collect::<Vec<_>>(),
    };
    let mut out = Vec::new();
    for list in streams {
        out.extend(entries("xread", list)?);
    }
    Ok(out)
}

/// The next cursor and the entries of an `XAUTOCLAIM` reply.
pub fn autoclaim_reply(v: Value) -> Result<(String, Vec<Entry>), StoreError> {
    let mut items = reply::array("xautoclaim", v)?.into_iter();
    let next = items
        .next()
        .as_ref()
        .and_then(reply::string)
        .unwrap_or_else(|| "0-0".into());
    let claimed = match items.next() {
        Some(list) => entries("xautoclaim", list)?,
        None => Vec::new(),
    };
    Ok((next, claimed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fields: &[(&str, &str)]) -> Entry {
        Entry {
            id: "1700000000000-0".into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn entries_become_the_binding_events() {
        let hasher = IdentityHasher::new("sixteen-characters!");
        let e = entry(&[
            ("t", "joined"),
            ("n", "41"),
            ("at", "1795464000250"),
            ("r", "replica-a"),
            ("tk", "AAAAAAAAAAAAAAAAAAAAAA"),
            ("s", "17"),
            ("i", "cid:fan-9"),
            ("pq", "1"),
        ])
        .to_event("concert", Some(&hasher))
        .unwrap();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["id"], "q:41");
        assert_eq!(v["type"], "joined");
        assert_eq!(v["event_id"], "concert");
        assert_eq!(v["at"], "2026-11-23T20:00:00.250Z");
        assert_eq!(v["replica"], "replica-a");
        assert_eq!(v["seq"], 17);
        assert_eq!(v["prequeue"], true);
        assert_eq!(v["client_hash"], hasher.hash("cid:fan-9"));
        assert!(
            !v.to_string().contains("fan-9"),
            "the raw identity never ships"
        );

        let left = entry(&[
            ("t", "left"),
            ("n", "2"),
            ("at", "1"),
            ("tk", "x"),
            ("s", "1"),
            ("i", "cid:a"),
            ("rs", "booked"),
        ])
        .to_event("ev", Some(&hasher))
        .unwrap();
        assert_eq!(serde_json::to_value(&left).unwrap()["reason"], "booked");
        let drawn = entry(&[
            ("t", "drawn"),
            ("n", "3"),
            ("at", "1"),
            ("seed", "ab"),
            ("size", "5"),
        ])
        .to_event("ev", Some(&hasher))
        .unwrap();
        let v = serde_json::to_value(&drawn).unwrap();
        assert_eq!(
            (v["seed"].as_str(), v["size"].as_u64()),
            (Some("ab"), Some(5))
        );
        assert!(v.get("ticket").is_none());
        // Internal fields (the session's hard end) are not shipped.
        let admitted = entry(&[
            ("t", "admitted"),
            ("n", "4"),
            ("at", "1"),
            ("tk", "x"),
            ("s", "1"),
            ("i", "cid:a"),
            ("h", "99"),
        ])
        .to_event("ev", Some(&hasher))
        .unwrap();
        assert!(serde_json::to_value(&admitted).unwrap().get("h").is_none());
        assert!(entry(&[("t", "mystery"), ("n", "5"), ("at", "1")])
            .to_event("ev", None)
            .is_none());
    }

    #[test]
    fn stream_replies_are_read_in_both_protocols() {
        let item = |id: &str| {
            Value::Array(vec![
                Value::BulkString(id.as_bytes().to_vec()),
                Value::Array(vec![
                    Value::BulkString(b"t".to_vec()),
                    Value::BulkString(b"joined".to_vec()),
                ]),
            ])
        };
        let resp2 = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"k".to_vec()),
            Value::Array(vec![item("1-0"), item("2-0")]),
        ])]);
        let got = read_reply(resp2).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].id, "2-0");
        assert_eq!(got[0].kind(), "joined");
        assert!(read_reply(Value::Nil).unwrap().is_empty());
        let claimed = Value::Array(vec![
            Value::BulkString(b"5-0".to_vec()),
            Value::Array(vec![
                item("3-0"),
                Value::Array(vec![Value::BulkString(b"4-0".to_vec()), Value::Nil]),
            ]),
            Value::Array(vec![]),
        ]);
        let (next, entries) = autoclaim_reply(claimed).unwrap();
        assert_eq!(next, "5-0");
        assert_eq!(entries.len(), 2);
        assert!(entries[1].fields.is_empty());
    }
}
