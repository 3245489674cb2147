//! An event's queue settings: the admin API's body, its validation, and how
//! it is stored in the event's `meta` hash.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::challenge::ChallengeMode;
use super::scripts::CONFIG_FIELDS;
use crate::clock::{format_ms, parse_rfc3339_ms};
use crate::Invalid;

/// How the queue lets people in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
    pub challenge: ChallengeMode,
    /// ALTCHA's `maxnumber`: a browser tries half of it on average.
    pub challenge_difficulty: u64,
}

pub const DEFAULT_CAPACITY: u64 = 1000;
pub const DEFAULT_MAX_CAPACITY: u64 = 200_000;
/// About a second of hashing in a phone's browser (docs/performance.md).
pub const DEFAULT_CHALLENGE_DIFFICULTY: u64 = 400_000;
pub const MIN_CHALLENGE_DIFFICULTY: i64 = 1_000;
pub const MAX_CHALLENGE_DIFFICULTY: i64 = 10_000_000;

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
            challenge: ChallengeMode::Off,
            challenge_difficulty: DEFAULT_CHALLENGE_DIFFICULTY,
        }
    }
}

/// The body of `PUT /api/v1/admin/events/{event_id}/queue`: every field is
/// optional and takes its default when omitted. Numbers are read as signed
/// so that a negative value is a 422 (out of range), not a 400.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConfigRequest {
    /// Admitted sessions allowed at once.
    #[schema(minimum = 0, maximum = 10000000, default = 1000)]
    pub capacity: Option<i64>,
    /// Instead of capacity: capacity = this × live replicas.
    #[schema(minimum = 1, maximum = 1000000)]
    pub sessions_per_replica: Option<i64>,
    /// The cap on capacity with sessions_per_replica.
    #[schema(minimum = 1, maximum = 10000000, default = 200000)]
    pub max_capacity: Option<i64>,
    /// Admissions per second (a one-second token bucket, paced evenly).
    #[schema(minimum = 0, maximum = 1000000, default = 100)]
    pub admit_per_second: Option<i64>,
    /// An admitted session ends unless renewed within this time.
    #[schema(minimum = 1, maximum = 86400, default = 60)]
    pub session_timeout_seconds: Option<i64>,
    /// The hard end of a session, renewed or not.
    #[schema(minimum = 1, maximum = 604800, default = 900)]
    pub session_max_seconds: Option<i64>,
    /// A waiting fan with no sign of life for this long loses the place.
    #[schema(minimum = 1, maximum = 86400, default = 60)]
    pub queue_idle_timeout_seconds: Option<i64>,
    #[schema(value_type = Option<Mode>)]
    pub mode: Option<String>,
    /// Before this time joins go to the pre-queue, drawn at random at the opening.
    #[schema(format = DateTime)]
    pub opens_at: Option<String>,
    /// Joins per client address per minute; 0 for no limit.
    #[schema(minimum = 0, maximum = 1000000, default = 0)]
    pub max_joins_per_source_per_minute: Option<i64>,
    /// A notice shown to waiting fans.
    #[schema(max_length = 500)]
    pub message: Option<String>,
    /// Joins must carry an identity_token (needs IDENTITY_KEYS).
    #[schema(default = false)]
    pub require_identity: Option<bool>,
    /// `pow`: every join carries a solved proof-of-work challenge from
    /// `GET /api/v1/events/{event_id}/queue/challenge`.
    #[schema(value_type = Option<ChallengeMode>, default = "off")]
    pub challenge: Option<String>,
    /// The challenge's `maxnumber`: a browser tries half of it on average.
    #[schema(minimum = 1000, maximum = 10000000, default = 400000)]
    pub challenge_difficulty: Option<i64>,
}

pub const MAX_MESSAGE_CHARS: usize = 500;

fn in_range(name: &str, v: Option<i64>, min: i64, max: i64, default: u64) -> Result<u64, Invalid> {
    match v {
        None => Ok(default),
        Some(v) if v >= min && v <= max => Ok(v as u64),
        Some(v) => Err(Invalid(format!(
            "{name} must be between {min} and {max}, got {v}"
        ))),
    }
}

impl QueueConfigRequest {
    /// Checks every value; the error lists what is wrong.
    pub fn validate(self, identity_keys_configured: bool) -> Result<QueueConfig, Invalid> {
        let d = QueueConfig::default();
        let capacity = match (self.capacity, self.sessions_per_replica) {
            (Some(_), Some(_)) => {
                return Err(Invalid(
                    "give capacity or sessions_per_replica, not both".into(),
                ));
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
                Invalid(format!("mode must be one of {}, got `{m}`", all.join(", ")))
            })?,
        };
        let opens_at = match self.opens_at.as_deref() {
            None => None,
            Some(s) => Some(parse_rfc3339_ms(s).ok_or_else(|| {
                Invalid(format!(
                    "opens_at must be an RFC 3339 timestamp like 2026-11-23T20:00:00Z, got `{s}`"
                ))
            })?),
        };
        let message = match self.message {
            Some(m) if m.chars().count() > MAX_MESSAGE_CHARS => {
                return Err(Invalid(format!(
                    "message may be at most {MAX_MESSAGE_CHARS} characters"
                )));
            }
            Some(m) if m.chars().any(|c| c.is_control() && c != '\n') => {
                return Err(Invalid("message may not contain control characters".into()));
            }
            Some(m) if m.trim().is_empty() => None,
            other => other,
        };
        let require_identity = self.require_identity.unwrap_or(d.require_identity);
        if require_identity && !identity_keys_configured {
            return Err(Invalid(
                "require_identity needs IDENTITY_KEYS to be configured on the service".into(),
            ));
        }
        let challenge = match self.challenge.as_deref() {
            None => d.challenge,
            Some(m) => ChallengeMode::parse(m)
                .ok_or_else(|| Invalid(format!("challenge must be one of off, pow, got `{m}`")))?,
        };
        let challenge_difficulty = in_range(
            "challenge_difficulty",
            self.challenge_difficulty,
            MIN_CHALLENGE_DIFFICULTY,
            MAX_CHALLENGE_DIFFICULTY,
            d.challenge_difficulty,
        )?;
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
            challenge,
            challenge_difficulty,
        })
    }
}

/// The stored configuration as the admin API shows it: fields that do not
/// apply are absent (`capacity`, or `sessions_per_replica` with
/// `max_capacity`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = QueueConfig)]
pub struct QueueConfigBody {
    pub event_id: String,
    pub mode: Mode,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub capacity: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sessions_per_replica: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub max_capacity: Option<u64>,
    pub admit_per_second: u64,
    pub session_timeout_seconds: u64,
    pub session_max_seconds: u64,
    pub queue_idle_timeout_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    pub opens_at: Option<String>,
    pub max_joins_per_source_per_minute: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub message: Option<String>,
    pub require_identity: bool,
    pub challenge: ChallengeMode,
    pub challenge_difficulty: u64,
}

impl QueueConfig {
    /// Field/value pairs for the `configure` script ("" means none), one
    /// per name of [`CONFIG_FIELDS`], in its order.
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
        CONFIG_FIELDS
            .iter()
            .flat_map(|&name| {
                let value = match name {
                    "mode" => self.mode.as_str().to_string(),
                    "capacity" => capacity.clone(),
                    "sessions_per_replica" => spr.clone(),
                    "max_capacity" => max.to_string(),
                    "admit_per_second" => self.admit_per_second.to_string(),
                    "session_timeout" => self.session_timeout_seconds.to_string(),
                    "session_max" => self.session_max_seconds.to_string(),
                    "idle_timeout" => self.queue_idle_timeout_seconds.to_string(),
                    "opens_at" => self.opens_at.map(|v| v.to_string()).unwrap_or_default(),
                    "max_joins_per_source" => self.max_joins_per_source_per_minute.to_string(),
                    "message" => self.message.clone().unwrap_or_default(),
                    "require_identity" => if self.require_identity { "1" } else { "0" }.into(),
                    "challenge" => self.challenge.as_str().into(),
                    "challenge_difficulty" => self.challenge_difficulty.to_string(),
                    // A field the scripts know and this does not: caught by
                    // the round-trip test below.
                    _ => String::new(),
                };
                [name.to_string(), value]
            })
            .collect()
    }

    /// Reads back what `to_fields` stored (values in the order of
    /// [`CONFIG_FIELDS`]); `None` when the event has no configuration.
    /// Values are trusted as written by this service, with defaults where
    /// one is unreadable.
    pub fn from_stored(values: &[Option<String>]) -> Option<QueueConfig> {
        let get = |name: &str| {
            let i = CONFIG_FIELDS.iter().position(|f| *f == name)?;
            values.get(i).cloned().flatten().filter(|v| !v.is_empty())
        };
        let num =
            |name: &str, default: u64| get(name).and_then(|v| v.parse().ok()).unwrap_or(default);
        let mode = Mode::parse(&get("mode")?)?;
        let d = QueueConfig::default();
        let capacity = match get("sessions_per_replica").and_then(|v| v.parse().ok()) {
            Some(spr) => Capacity::PerReplica {
                sessions_per_replica: spr,
                max_capacity: num("max_capacity", DEFAULT_MAX_CAPACITY),
            },
            None => Capacity::Fixed(num("capacity", DEFAULT_CAPACITY)),
        };
        Some(QueueConfig {
            capacity,
            admit_per_second: num("admit_per_second", d.admit_per_second),
            session_timeout_seconds: num("session_timeout", d.session_timeout_seconds),
            session_max_seconds: num("session_max", d.session_max_seconds),
            queue_idle_timeout_seconds: num("idle_timeout", d.queue_idle_timeout_seconds),
            mode,
            opens_at: get("opens_at").and_then(|v| v.parse().ok()),
            max_joins_per_source_per_minute: num("max_joins_per_source", 0),
            message: get("message"),
            require_identity: get("require_identity").as_deref() == Some("1"),
            challenge: get("challenge")
                .and_then(|v| ChallengeMode::parse(&v))
                .unwrap_or_default(),
            challenge_difficulty: num("challenge_difficulty", d.challenge_difficulty),
        })
    }

    /// The configuration as the admin API shows it.
    pub fn to_body(&self, event_id: &str) -> QueueConfigBody {
        let (capacity, sessions_per_replica, max_capacity) = match self.capacity {
            Capacity::Fixed(c) => (Some(c), None, None),
            Capacity::PerReplica {
                sessions_per_replica,
                max_capacity,
            } => (None, Some(sessions_per_replica), Some(max_capacity)),
        };
        QueueConfigBody {
            event_id: event_id.to_string(),
            mode: self.mode,
            capacity,
            sessions_per_replica,
            max_capacity,
            admit_per_second: self.admit_per_second,
            session_timeout_seconds: self.session_timeout_seconds,
            session_max_seconds: self.session_max_seconds,
            queue_idle_timeout_seconds: self.queue_idle_timeout_seconds,
            opens_at: self.opens_at.map(format_ms),
            max_joins_per_source_per_minute: self.max_joins_per_source_per_minute,
            message: self.message.clone(),
            require_identity: self.require_identity,
            challenge: self.challenge,
            challenge_difficulty: self.challenge_difficulty,
        }
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.to_body("")).unwrap_or_default()
    }

    /// A short description of what differs from `before`, for the audit log.
    pub fn diff(&self, before: Option<&QueueConfig>) -> String {
        let after = self.to_json();
        let Some(before) = before else {
            return format!("created: {after}");
        };
        let before = before.to_json();
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
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_bounds_are_the_validated_ones() {
        let schema =
            serde_json::to_value(<QueueConfigRequest as utoipa::PartialSchema>::schema()).unwrap();
        let mut checked = 0;
        for (field, prop) in schema["properties"].as_object().unwrap() {
            let (Some(min), Some(max)) = (prop["minimum"].as_i64(), prop["maximum"].as_i64())
            else {
                continue;
            };
            for ok in [min, max] {
                assert!(
                    req(serde_json::json!({ field: ok })).is_ok(),
                    "{field}={ok}"
                );
            }
            for bad in [min - 1, max + 1] {
                assert!(
                    req(serde_json::json!({ field: bad })).is_err(),
                    "{field}={bad}"
                );
            }
            checked += 1;
        }
        assert_eq!(checked, 9);
        let long = "x".repeat(prop_max_length(&schema, "message") + 1);
        assert!(req(serde_json::json!({ "message": long })).is_err());
    }

    fn prop_max_length(schema: &serde_json::Value, field: &str) -> usize {
        schema["properties"][field]["maxLength"].as_u64().unwrap() as usize
    }

    #[test]
    fn every_stored_field_round_trips_by_name() {
        let fields = QueueConfig::default().to_fields();
        let names: Vec<&str> = fields.iter().step_by(2).map(String::as_str).collect();
        assert_eq!(names, CONFIG_FIELDS);
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
            (serde_json::json!({"challenge": "captcha"}), "challenge"),
            (
                serde_json::json!({"challenge_difficulty": 999}),
                "challenge_difficulty",
            ),
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
            challenge: ChallengeMode::Pow,
            challenge_difficulty: 5000,
        };
        let fields = c.to_fields();
        let values: Vec<Option<String>> = fields.chunks(2).map(|p| Some(p[1].clone())).collect();
        assert_eq!(QueueConfig::from_stored(&values), Some(c));
    }

    #[test]
    fn json_leaves_out_what_does_not_apply() {
        let j = serde_json::to_value(QueueConfig::default().to_body("ev")).unwrap();
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
