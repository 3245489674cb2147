//! The fans' queue routes: join, status, heartbeat, leave, and the public
//! statistics.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::{AppError, JsonBody, QueuePath};
use super::middleware::client_addr;
use super::AppState;
use crate::clock::{format_ms, now_ms};
use crate::queue::{EventId, Identity, QueueStats, TicketState, TicketStatus};
use crate::token::{AdmissionClaims, AdmissionKeys};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub client_id: Option<String>,
    pub identity_token: Option<String>,
}

/// The admission token for an admitted ticket. Any replica signs the same
/// claims into the same token.
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
    let claims = AdmissionClaims {
        event_id: event.as_str().to_string(),
        ticket: status.ticket.as_str().to_string(),
        iat: admitted_ms / 1000,
        exp: expires_ms / 1000,
    };
    Some((keys.sign(&claims), format_ms(expires_ms)))
}

/// A ticket's state as JSON: only the fields of that state.
pub fn status_body(keys: &AdmissionKeys, event: &EventId, status: &TicketStatus) -> Value {
    let mut o = Map::new();
    o.insert("ticket".into(), status.ticket.as_str().into());
    o.insert("state".into(), status.state.name().into());
    match &status.state {
        TicketState::Queued {
            position: Some(p),
            estimated_wait_seconds,
            ..
        } => {
            o.insert("position".into(), (*p).into());
            o.insert(
                "estimated_wait_seconds".into(),
                json!(estimated_wait_seconds),
            );
        }
        TicketState::Queued {
            position: None,
            opens_at_ms,
            ..
        } => {
            if let Some(at) = opens_at_ms {
                o.insert("opens_at".into(), format_ms(*at).into());
            }
        }
        TicketState::Admitted { .. } => {
            if let Some((token, expires_at)) = admission_token(keys, event, status) {
                o.insert("token".into(), token.into());
                o.insert("expires_at".into(), expires_at.into());
            }
        }
        TicketState::SoldOut { .. } | TicketState::Expired | TicketState::Left => {}
    }
    if matches!(
        status.state,
        TicketState::Queued { .. } | TicketState::SoldOut { .. }
    ) {
        if let Some(m) = &status.message {
            o.insert("message".into(), m.clone().into());
        }
    }
    Value::Object(o)
}

/// `POST /api/v1/events/{event_id}/queue`
pub async fn join(
    State(state): State<AppState>,
    path: QueuePath,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<JoinRequest>,
) -> Result<Response, AppError> {
    let event = path.event;
    let identity = match (&body.identity_token, &body.client_id) {
        (Some(token), _) if !state.identity_keys.is_empty() => {
            let sub = state
                .identity_keys
                .verify(token, event.as_str(), now_ms() / 1000)
                .map_err(|e| AppError::unauthorized(format!("identity_token: {e}")))?;
            Identity::Subject(sub)
        }
        (_, Some(client_id)) => Identity::client(client_id).ok_or_else(|| {
            AppError::validation_failed("client_id must be 1-128 characters of [A-Za-z0-9._:-]")
        })?,
        (_, None) => return Err(AppError::invalid_request("client_id is required")),
    };
    let source = client_addr(peer, &headers, &state.trusted_proxies).to_string();
    let outcome = state.queue.join(&event, &identity, Some(&source)).await?;
    if outcome.new {
        tracing::debug!(event = %event, ticket = outcome.status.ticket.redacted(), state = outcome.status.state.name(), "joined");
    }
    let code = match outcome.status.state {
        TicketState::Admitted { .. } => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    };
    let body = status_body(&state.admission_keys, &event, &outcome.status);
    Ok((code, Json(body)).into_response())
}

/// `GET /api/v1/events/{event_id}/queue/{ticket}`
pub async fn status(
    State(state): State<AppState>,
    path: QueuePath,
) -> Result<Json<Value>, AppError> {
    let status = state
        .queue
        .status(&path.event, path.ticket()?, false)
        .await?;
    Ok(Json(status_body(
        &state.admission_keys,
        &path.event,
        &status,
    )))
}

/// `POST /api/v1/events/{event_id}/queue/{ticket}/heartbeat`
pub async fn heartbeat(
    State(state): State<AppState>,
    path: QueuePath,
) -> Result<StatusCode, AppError> {
    let status = state
        .queue
        .status(&path.event, path.ticket()?, true)
        .await?;
    match status.state {
        TicketState::Expired => Err(AppError::gone("this ticket has expired; join again")),
        TicketState::Left => Err(AppError::gone("this ticket has left the queue; join again")),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// `DELETE /api/v1/events/{event_id}/queue/{ticket}`
pub async fn leave(State(state): State<AppState>, path: QueuePath) -> Result<StatusCode, AppError> {
    let ticket = path.ticket()?;
    if state.queue.leave(&path.event, ticket).await? {
        tracing::debug!(event = %path.event, ticket = ticket.redacted(), "left");
    }
    Ok(StatusCode::NO_CONTENT)
}

pub fn stats_body(event: &EventId, s: &QueueStats) -> Value {
    let mut o = json!({
        "event_id": event.as_str(),
        "mode": s.mode,
        "queued": s.queued,
        "active": s.active,
        "capacity": s.capacity,
        "admit_per_second": s.admit_per_second,
        "admitted_total": s.admitted_total,
    });
    let map = o.as_object_mut().expect("object literal");
    if let Some(at) = s.opens_at_ms {
        map.insert("opens_at".into(), format_ms(at).into());
    }
    if let Some(seed) = &s.shuffle_seed {
        map.insert("shuffle_seed".into(), seed.clone().into());
    }
    if let Some(at) = s.last_admit_ms {
        map.insert("last_admit_at".into(), format_ms(at).into());
    }
    if let Some(m) = &s.message {
        map.insert("message".into(), m.clone().into());
    }
    o
}

/// `GET /api/v1/events/{event_id}/queue`
pub async fn stats(
    State(state): State<AppState>,
    path: QueuePath,
) -> Result<Json<Value>, AppError> {
    let stats = state.queue.stats(&path.event).await?;
    Ok(Json(stats_body(&path.event, &stats)))
}
