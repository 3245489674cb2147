//! An event's queue settings: the admin API's body, its validation, and how
//! it is stored in the event's `meta` hash.

use serde::{Deserialize, Serialize};

use crate::clock::{format_ms, parse_rfc3339_ms};

/// How the queue lets people in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// First come, first served.
    Fifo,
    /// Each admission picks uniformly among those waiting.
    Random,
    /// Everyone is admitted at once.
    Passthrough,
    /// Joins go on; nobody is admitted.
    Paused,
    /// New joins are refused (409 queue_closed); those waiting are still admitted.
    Closed,
    /// New joins are refused (409 sold_out); those waiting are told so and keep their place.
    SoldOut,
}

impl Mode {
    pub const ALL: [Mode; 6] = [
        Mode::Fifo,
        Mode::Random,
        Mode::Passthrough,
        Mode::Paused,
        Mode::Closed,
        Mode::SoldOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Fifo => "fifo",
            Mode::Random => "random",
            Mode::Passthrough => "passthrough",
            Mode::Paused => "paused",
            Mode::Closed => "closed",
            Mode::SoldOut => "sold_out",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// How many may be admitted at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    Fixed(u64),
    PerReplica {
        sessions_per_replica: u64,
        max_capacity: u64,
    },
}

/// A validated queue configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub capacity: Capacity,
    pub admit_per_second: u64,
    pub session_timeout_seconds: u64,
    pub session_max_seconds: u64,
    pub queue_idle_timeout_seconds: u64,
    pub mode: Mode,
    /// Unix milliseconds.
    pub opens_at: Option<i64>,
    pub max_joins_per_source_per_minute: u64,
    pub message: Option<String>,
    pub require_identity: bool,
}

pub const DEFAULT_CAPACITY: u64 = 1000;
pub const DEFAULT_MAX_CAPACITY: u64 = 200_000;

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: Capacity::Fixed(DEFAULT_CAPACITY),
            admit_per_second: 100,
            session_timeout_seconds: 60,
            session_max_seconds: 900,
            queue_idle_timeout_seconds: 60,
            mode: Mode::Fifo,
            opens_at: None,
            max_joins_per_source_per_minute: 0,
            message: None,
            require_identity: false,
        }
    }
}

/// The body of `PUT /api/v1/admin/events/{event_id}/queue`: every field is
/// optional and takes its default when omitted. Numbers are read as signed
/// so that a negative value is a 422 (out of range), not a 400.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfigRequest {
    pub capacity: Option<i64>,
    pub sessions_per_replica: Option<i64>,
    pub max_capacity: Option<i64>,
    pub admit_per_second: Option<i64>,
    pub session_timeout_seconds: Option<i64>,
    pub session_max_seconds: Option<i64>,
    pub queue_idle_timeout_seconds: Option<i64>,
    pub mode: Option<String>,
    pub opens_at: Option<String>,
    pub max_joins_per_source_per_minute: Option<i64>,
    pub message: Option<String>,
    pub require_identity: Option<bool>,
}

pub const MAX_MESSAGE_CHARS: usize = 500;

fn in_range(name: &str, v: Option<i64>, min: i64, max: i64, default: u64) -> Result<u64, String> {
    match v {
        None => Ok(default),
        Some(v) if v >= min && v <= max => Ok(v as u64),
        Some(v) => Err(format!("{name} must be between {min} and {max}, got {v}")),
    }
}

impl QueueConfigRequest {
    /// Checks every value; the error lists what is wrong.
    pub fn validate(self, identity_keys_configured: bool) -> Result<QueueConfig, String> {
        let d = QueueConfig::default();
        let capacity = match (self.capacity, self.sessions_per_replica) {
            (Some(_), Some(_)) => {
                return Err("give capacity or sessions_per_replica, not both".into());
            }
            (_, Some(spr)) => Capacity::PerReplica {
                sessions_per_replica: in_range("sessions_per_replica", Some(spr), 1, 1_000_000, 0)?,
                max_capacity: in_range(
                    "max_capacity",
                    self.max_capacity,
                    1,
                    10_000_000,
                    DEFAULT_MAX_CAPACITY,
                )?,
            },
            (cap, None) => {
                in_range(
                    "max_capacity",
                    self.max_capacity,
                    1,
                    10_000_000,
                    DEFAULT_MAX_CAPACITY,
                )?;
                Capacity::Fixed(in_range("capacity", cap, 0, 10_000_000, DEFAULT_CAPACITY)?)
            }
        };
        let mode = match self.mode.as_deref() {
            None => d.mode,
            Some(m) => Mode::parse(m).ok_or_else(|| {
                let all: Vec<_> = Mode::ALL.iter().map(|m| m.as_str()).collect();
                format!("mode must be one of {}, got `{m}`", all.join(", "))
            })?,
        };
        let opens_at = match self.opens_at.as_deref() {
            None => None,
            Some(s) => Some(parse_rfc3339_ms(s).ok_or_else(|| {
                format!(
                    "opens_at must be an RFC 3339 timestamp like 2026-11-23T20:00:00Z, got `{s}`"
                )
            })?),
        };
        let message = match self.message {
            Some(m) if m.chars().count() > MAX_MESSAGE_CHARS => {
                return Err(format!(
                    "message may be at most {MAX_MESSAGE_CHARS} characters"
                ));
            }
            Some(m) if m.chars().any(|c| c.is_control() && c != '\n') => {
                return Err("message may not contain control characters".into());
            }
            Some(m) if m.trim().is_empty() => None,
            other => other,
        };
        let require_identity = self.require_identity.unwrap_or(d.require_identity);
        if require_identity && !identity_keys_configured {
            return Err(
                "require_identity needs IDENTITY_KEYS to be configured on the service".into(),
            );
        }
        Ok(QueueConfig {
            capacity,
            admit_per_second: in_range(
                "admit_per_second",
                self.admit_per_second,
                0,
                1_000_000,
                d.admit_per_second,
            )?,
            session_timeout_seconds: in_range(
                "session_timeout_seconds",
                self.session_timeout_seconds,
                1,
                86_400,
                d.session_timeout_seconds,
            )?,
            session_max_seconds: in_range(
                "session_max_seconds",
                self.session_max_seconds,
                1,
                7 * 86_400,
                d.session_max_seconds,
            )?,
            queue_idle_timeout_seconds: in_range(
                "queue_idle_timeout_seconds",
                self.queue_idle_timeout_seconds,
                1,
                86_400,
                d.queue_idle_timeout_seconds,
            )?,
            mode,
            opens_at,
            max_joins_per_source_per_minute: in_range(
                "max_joins_per_source_per_minute",
                self.max_joins_per_source_per_minute,
                0,
                1_000_000,
                d.max_joins_per_source_per_minute,
            )?,
            message,
            require_identity,
        })
    }
}

/// Field names in the `meta` hash; the Lua prelude reads the same names.
const FIELDS: [&str; 12] = [
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
];

impl QueueConfig {
    /// Field/value pairs for the `configure` script ("" means none).
    pub fn to_fields(&self) -> Vec<String> {
        let (capacity, spr, max) = match self.capacity {
            Capacity::Fixed(c) => (c.to_string(), String::new(), DEFAULT_MAX_CAPACITY),
            Capacity::PerReplica {
                sessions_per_replica,
                max_capacity,
            } => (
                String::new(),
                sessions_per_replica.to_string(),
                max_capacity,
            ),
        };
        let values = [
            self.mode.as_str().to_string(),
            capacity,
            spr,
            max.to_string(),
            self.admit_per_second.to_string(),
            self.session_timeout_seconds.to_string(),
            self.session_max_seconds.to_string(),
            self.queue_idle_timeout_seconds.to_string(),
            self.opens_at.map(|v| v.to_string()).unwrap_or_default(),
            self.max_joins_per_source_per_minute.to_string(),
            self.message.clone().unwrap_or_default(),
            if self.require_identity { "1" } else { "0" }.to_string(),
        ];
        FIELDS
            .iter()
            .zip(values)
            .flat_map(|(f, v)| [f.to_string(), v])
            .collect()
    }

    /// Reads back what `to_fields` stored; `None` when the event has no
    /// configuration. Values are trusted as written by this service, with
    /// defaults where one is unreadable.
    pub fn from_stored(values: &[Option<String>]) -> Option<QueueConfig> {
        let get = |i: usize| values.get(i).cloned().flatten().filter(|v| !v.is_empty());
        let num = |i: usize, default: u64| get(i).and_then(|v| v.parse().ok()).unwrap_or(default);
        let mode = Mode::parse(&get(0)?)?;
        let d = QueueConfig::default();
        let capacity = match get(2).and_then(|v| v.parse().ok()) {
            Some(spr) => Capacity::PerReplica {
                sessions_per_replica: spr,
                max_capacity: num(3, DEFAULT_MAX_CAPACITY),
            },
            None => Capacity::Fixed(num(1, DEFAULT_CAPACITY)),
        };
        Some(QueueConfig {
            capacity,
            admit_per_second: num(4, d.admit_per_second),
            session_timeout_seconds: num(5, d.session_timeout_seconds),
            session_max_seconds: num(6, d.session_max_seconds),
            queue_idle_timeout_seconds: num(7, d.queue_idle_timeout_seconds),
            mode,
            opens_at: get(8).and_then(|v| v.parse().ok()),
            max_joins_per_source_per_minute: num(9, 0),
            message: get(10),
            require_identity: get(11).as_deref() == Some("1"),
        })
    }

    pub fn stored_field_names() -> &'static [&'static str] {
        &FIELDS
    }

    /// The configuration as the admin API shows it: fields that do not apply
    /// are absent.
    pub fn to_json(&self, event_id: &str) -> serde_json::Value {
        let mut o = serde_json::json!({
            "event_id": event_id,
            "mode": self.mode.as_str(),
            "admit_per_second": self.admit_per_second,
            "session_timeout_seconds": self.session_timeout_seconds,
            "session_max_seconds": self.session_max_seconds,
            "queue_idle_timeout_seconds": self.queue_idle_timeout_seconds,
            "max_joins_per_source_per_minute": self.max_joins_per_source_per_minute,
            "require_identity": self.require_identity,
        });
        let map = o.as_object_mut().expect("object literal");
        match self.capacity {
            Capacity::Fixed(c) => {
                map.insert("capacity".into(), c.into());
            }
            Capacity::PerReplica {
                sessions_per_replica,
                max_capacity,
            } => {
                map.insert("sessions_per_replica".into(), sessions_per_replica.into());
                map.insert("max_capacity".into(), max_capacity.into());
            }
        }
        if let Some(at) = self.opens_at {
            map.insert("opens_at".into(), format_ms(at).into());
        }
        if let Some(m) = &self.message {
            map.insert("message".into(), m.clone().into());
        }
        o
    }

    /// A short description of what differs from `before`, for the audit log.
    pub fn diff(&self, before: Option<&QueueConfig>) -> String {
        let after = self.to_json("");
        let Some(before) = before else {
            return format!("created: {after}");
        };
        let before = before.to_json("");
        let (Some(a), Some(b)) = (after.as_object(), before.as_object()) else {
            return String::new();
        };
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        let changes: Vec<String> = keys
            .into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| {
                let show = |v: Option<&serde_json::Value>| {
                    v.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
                };
                format!("{k}: {} -> {}", show(b.get(k)), show(a.get(k)))
            })
            .collect();
        if changes.is_empty() {
            "no change".into()
        } else {
            changes.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: serde_json::Value) -> Result<QueueConfig, String> {
        serde_json::from_value::<QueueConfigRequest>(json)
            .map_err(|e| e.to_string())?
            .validate(true)
    }

    #[test]
    fn empty_body_gives_the_defaults() {
        assert_eq!(req(serde_json::json!({})).unwrap(), QueueConfig::default());
    }

    #[test]
    fn capacity_and_sessions_per_replica_exclude_each_other() {
        let err = req(serde_json::json!({"capacity": 5, "sessions_per_replica": 2})).unwrap_err();
        assert!(err.contains("not both"), "{err}");
        let c = req(serde_json::json!({"sessions_per_replica": 50})).unwrap();
        assert_eq!(
            c.capacity,
            Capacity::PerReplica {
                sessions_per_replica: 50,
                max_capacity: DEFAULT_MAX_CAPACITY
            }
        );
    }

    #[test]
    fn out_of_range_values_are_named() {
        for (body, field) in [
            (serde_json::json!({"capacity": -1}), "capacity"),
            (
                serde_json::json!({"admit_per_second": 2_000_000}),
                "admit_per_second",
            ),
            (
                serde_json::json!({"session_timeout_seconds": 0}),
                "session_timeout_seconds",
            ),
            (serde_json::json!({"mode": "lottery"}), "mode"),
            (serde_json::json!({"opens_at": "tomorrow"}), "opens_at"),
        ] {
            let err = req(body).unwrap_err();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn require_identity_needs_keys() {
        let body: QueueConfigRequest =
            serde_json::from_value(serde_json::json!({"require_identity": true})).unwrap();
        assert!(body.validate(false).is_err());
    }

    #[test]
    fn stored_fields_round_trip() {
        let c = QueueConfig {
            capacity: Capacity::PerReplica {
                sessions_per_replica: 7,
                max_capacity: 70,
            },
            admit_per_second: 12,
            session_timeout_seconds: 30,
            session_max_seconds: 600,
            queue_idle_timeout_seconds: 45,
            mode: Mode::SoldOut,
            opens_at: Some(1_795_464_000_000),
            max_joins_per_source_per_minute: 9,
            message: Some("Doors open at 8".into()),
            require_identity: true,
        };
        let fields = c.to_fields();
        let values: Vec<Option<String>> = fields.chunks(2).map(|p| Some(p[1].clone())).collect();
        assert_eq!(QueueConfig::from_stored(&values), Some(c));
    }

    #[test]
    fn json_leaves_out_what_does_not_apply() {
        let j = QueueConfig::default().to_json("ev");
        assert_eq!(j["capacity"], 1000);
        assert!(j.get("sessions_per_replica").is_none());
        assert!(j.get("opens_at").is_none());
        assert!(j.get("message").is_none());
    }

    #[test]
    fn diff_names_changed_fields() {
        let a = QueueConfig::default();
        let b = QueueConfig {
            admit_per_second: 5,
            ..QueueConfig::default()
        };
        assert_eq!(b.diff(Some(&a)), "admit_per_second: 100 -> 5");
        assert_eq!(a.diff(Some(&a)), "no change");
    }
}
