//! The bodies of the queue, WebSocket and health routes: one Rust type per
//! shape, the source of both the JSON on the wire and the schemas of the
//! OpenAPI document. (The catalog and booking bodies live with their domain
//! types in `booking/`; the queue settings in `queue/config.rs`.)
//!
//! A response carries the fields that apply to its state; the others are
//! absent, not null, except `estimated_wait_seconds`, which is null when
//! there is no rate to divide by.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::format_ms;
use crate::queue::config::Mode;
use crate::queue::{EventId, QueueStats, TicketState, TicketStatus};
use crate::token::{AdmissionClaims, AdmissionKeys};

/// `POST /api/v1/events/{event_id}/queue`
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// An unguessable random id made by the fan's browser; never a raw
    /// account id. Required unless an identity_token is given.
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    pub client_id: Option<String>,
    /// A JWT signed by the ticketing site (ES256 or RS256; keys in
    /// IDENTITY_KEYS or at IDENTITY_JWKS_URL) with `sub` (the identity),
    /// `iat` and `exp` (at most an hour apart), and `event_id` (this event)
    /// or `aud` (the service's IDENTITY_AUDIENCE); required when the event
    /// has `require_identity`.
    #[schema(max_length = 4096)]
    pub identity_token: Option<String>,
    /// A solved challenge (ALTCHA's payload as an object); required when the
    /// event has `challenge: pow`, ignored otherwise. Each is used once.
    #[schema(nullable = false)]
    pub challenge: Option<crate::queue::challenge::Solution>,
}

/// The state of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    Queued,
    Admitted,
    SoldOut,
    Expired,
    Left,
}

impl From<&TicketState> for StateName {
    fn from(s: &TicketState) -> Self {
        match s {
            TicketState::Queued { .. } => StateName::Queued,
            TicketState::Admitted { .. } => StateName::Admitted,
            TicketState::SoldOut { .. } => StateName::SoldOut,
            TicketState::Expired => StateName::Expired,
            TicketState::Left => StateName::Left,
        }
    }
}

/// A ticket's state: only the fields of that state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = TicketStatus)]
pub struct TicketStatusBody {
    /// Opaque 128-bit id (22 characters).
    pub ticket: String,
    pub state: StateName,
    /// queued (after the opening): the 1-based place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1)]
    pub position: Option<u64>,
    /// queued with a position: ceil(position / measured admission rate);
    /// null when there is no rate (a paused queue).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "present_or_null"
    )]
    #[schema(value_type = Option<u64>, minimum = 0)]
    pub estimated_wait_seconds: Option<Option<u64>>,
    /// queued in the pre-queue: when the sale opens (positions are drawn then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub opens_at: Option<String>,
    /// admitted: the ES256 admission token (event_id, ticket, iat, exp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub token: Option<String>,
    /// admitted: the session's hard end (the token's exp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    pub expires_at: Option<String>,
    /// queued or sold_out: the event's notice, when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub message: Option<String>,
}

/// A field that is absent (outer `None`), null (`Some(None)`) or a value.
mod present_or_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Option<u64>>, s: S) -> Result<S::Ok, S::Error> {
        v.flatten().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
        Option::<u64>::deserialize(d).map(Some)
    }
}

/// The admission token for an admitted ticket, and when it expires. Any
/// replica signs the same claims into the same token.
pub fn admission_token(
    keys: &AdmissionKeys,
    event: &EventId,
    status: &TicketStatus,
) -> Option<(String, String)> {
    let TicketState::Admitted {
        admitted_ms,
        expires_ms,
    } = status.state
    else {
        return None;
    };
    let claims = AdmissionClaims::new(
        event.as_str(),
        status.ticket.as_str(),
        admitted_ms / 1000,
        expires_ms / 1000,
    );
    Some((keys.sign(&claims), format_ms(expires_ms)))
}

impl TicketStatusBody {
    pub fn new(keys: &AdmissionKeys, event: &EventId, status: &TicketStatus) -> Self {
        let mut body = TicketStatusBody {
            ticket: status.ticket.as_str().to_string(),
            state: StateName::from(&status.state),
            position: None,
            estimated_wait_seconds: None,
            opens_at: None,
            token: None,
            expires_at: None,
            message: None,
        };
        match &status.state {
            TicketState::Queued {
                position: Some(p),
                estimated_wait_seconds,
                ..
            } => {
                body.position = Some(*p);
                body.estimated_wait_seconds = Some(*estimated_wait_seconds);
            }
            TicketState::Queued {
                position: None,
                opens_at_ms,
                ..
            } => body.opens_at = opens_at_ms.map(format_ms),
            TicketState::Admitted { .. } => {
                if let Some((token, expires_at)) = admission_token(keys, event, status) {
                    body.token = Some(token);
                    body.expires_at = Some(expires_at);
                }
            }
            TicketState::SoldOut { .. } | TicketState::Expired | TicketState::Left => {}
        }
        if matches!(
            status.state,
            TicketState::Queued { .. } | TicketState::SoldOut { .. }
        ) {
            body.message = status.message.clone();
        }
        body
    }
}

/// The public statistics of an event's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = QueueStats)]
pub struct QueueStatsBody {
    pub event_id: String,
    pub mode: Mode,
    /// Fans waiting (the pre-queue included).
    pub queued: u64,
    /// Admitted sessions holding a place.
    pub active: u64,
    /// Effective capacity (sessions_per_replica × live replicas, capped, when
    /// so configured).
    pub capacity: u64,
    pub admit_per_second: u64,
    pub admitted_total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    pub opens_at: Option<String>,
    /// Hex seed of the last pre-queue draw, to replay it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub shuffle_seed: Option<String>,
    /// Shows that the admission loop is alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, format = DateTime)]
    pub last_admit_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub message: Option<String>,
}

impl QueueStatsBody {
    pub fn new(event: &EventId, s: &QueueStats) -> Self {
        QueueStatsBody {
            event_id: event.as_str().to_string(),
            mode: Mode::parse(&s.mode).unwrap_or(Mode::Paused),
            queued: s.queued,
            active: s.active,
            capacity: s.capacity,
            admit_per_second: s.admit_per_second,
            admitted_total: s.admitted_total,
            opens_at: s.opens_at_ms.map(format_ms),
            shuffle_seed: s.shuffle_seed.clone(),
            last_admit_at: s.last_admit_ms.map(format_ms),
            message: s.message.clone(),
        }
    }
}

/// The JSON text messages of the WebSocket, told apart by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WsMessage {
    /// On connect, on change and at least every 2 s while queued (in the
    /// pre-queue `opens_at` instead of `position`).
    Position {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false, minimum = 1)]
        position: Option<u64>,
        /// null when there is no rate to divide by.
        #[schema(required = true)]
        estimated_wait_seconds: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(nullable = false, format = DateTime)]
        opens_at: Option<String>,
    },
    /// Within a second of the admission, whichever replica admitted.
    Admitted {
        token: String,
        #[schema(format = DateTime)]
        expires_at: String,
    },
    /// The event switched to sold_out (the fan keeps the place).
    SoldOut,
    /// The event's notice, on connect and when it changes.
    Message { text: String },
    /// The ticket expired; the socket then closes.
    Expired,
}

/// Whether a dependency answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DependencyState {
    Up,
    Down,
    /// Not configured on this service (no DATABASE_URL).
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    /// Ready, but an optional dependency is down.
    Degraded,
    /// Not ready: the queue cannot be served.
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Dependencies {
    pub redis: DependencyState,
    pub database: DependencyState,
    /// The event log (Kinesis, fed from the outboxes in Redis).
    pub event_log: EventLogState,
}

/// How the event log ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventLogState {
    /// Shipping, or nothing to ship.
    Up,
    /// Kinesis refuses or cannot be reached: the outboxes keep the events.
    Down,
    /// An outbox reached OUTBOX_MAX_ENTRIES: changes past it are not
    /// recorded in the log (counted in `admission_outbox_dropped_total`).
    Full,
    /// No KINESIS_STREAM on this service.
    Disabled,
}

impl From<crate::events::LogState> for EventLogState {
    fn from(s: crate::events::LogState) -> EventLogState {
        use crate::events::LogState;
        match s {
            LogState::Up => EventLogState::Up,
            LogState::Down => EventLogState::Down,
            LogState::Full => EventLogState::Full,
            LogState::Disabled => EventLogState::Disabled,
        }
    }
}

/// The health of this replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    /// Only on readiness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub replica: Option<String>,
    /// Only on readiness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub dependencies: Option<Dependencies>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn estimated_wait_is_absent_null_or_a_number() {
        let mut body = TicketStatusBody {
            ticket: "t".into(),
            state: StateName::Queued,
            position: None,
            estimated_wait_seconds: None,
            opens_at: None,
            token: None,
            expires_at: None,
            message: None,
        };
        assert!(serde_json::to_value(&body)
            .unwrap()
            .get("estimated_wait_seconds")
            .is_none());
        body.estimated_wait_seconds = Some(None);
        assert_eq!(
            serde_json::to_value(&body).unwrap()["estimated_wait_seconds"],
            json!(null)
        );
        body.estimated_wait_seconds = Some(Some(7));
        assert_eq!(
            serde_json::to_value(&body).unwrap()["estimated_wait_seconds"],
            json!(7)
        );
    }

    #[test]
    fn websocket_messages_keep_their_wire_shape() {
        let m = WsMessage::Position {
            position: Some(5),
            estimated_wait_seconds: None,
            opens_at: None,
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"type":"position","position":5,"estimated_wait_seconds":null})
        );
        assert_eq!(
            serde_json::to_value(WsMessage::SoldOut).unwrap(),
            json!({"type":"sold_out"})
        );
        assert_eq!(
            serde_json::to_value(WsMessage::Message { text: "x".into() }).unwrap(),
            json!({"type":"message","text":"x"})
        );
    }
}
