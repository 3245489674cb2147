//! The fans' queue routes: join, status, heartbeat, leave, and the public
//! statistics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::api::{JoinRequest, QueueStatsBody, TicketStatusBody};
use super::error::{AppError, ErrorCode};
use super::extract::{ClientAddr, JsonBody, QueuePath};
use super::openapi::{errors, EventParam, TicketParams};
use super::AppState;
use crate::clock::now_ms;
use crate::queue::challenge::{Challenge, ChallengeMode};
use crate::queue::{Identity, JoinChallenge, QueueError, TicketState};

errors!(JoinErrors: InvalidRequest, Unauthorized, EventNotFound, QueueClosed, SoldOut,
    PayloadTooLarge, ValidationFailed, ChallengeRequired, ChallengeFailed, RateLimited, Unavailable);
errors!(ChallengeErrors: InvalidRequest, EventNotFound, Unavailable);
errors!(StatsErrors: InvalidRequest, EventNotFound, Unavailable);
errors!(TicketErrors: InvalidRequest, EventNotFound, TicketNotFound, Unavailable);
errors!(HeartbeatErrors: InvalidRequest, EventNotFound, TicketNotFound, Gone, Unavailable);

/// Join the queue (or get back the place this identity holds).
///
/// Joining again with the same identity returns the same ticket and state.
#[utoipa::path(
    post, path = "/api/v1/events/{event_id}/queue", operation_id = "join", tag = "queue",
    params(EventParam),
    request_body = JoinRequest,
    responses(
        (status = 200, description = "Admitted at once: room, nobody waiting, and the rate allows.", body = TicketStatusBody),
        (status = 202, description = "Queued (or in the pre-queue, with `opens_at`).", body = TicketStatusBody),
        JoinErrors,
    )
)]
pub async fn join(
    State(state): State<AppState>,
    path: QueuePath,
    source: ClientAddr,
    JsonBody(body): JsonBody<JoinRequest>,
) -> Result<Response, AppError> {
    let event = path.event;
    let identity = match (&body.identity_token, &body.client_id) {
        (Some(token), _) if !state.identity_keys.is_empty() => {
            let sub = state
                .identity_keys
                .verify(token, event.as_str(), now_ms() / 1000)
                .await
                .map_err(|e| AppError::unauthorized(format!("identity_token: {e}")))?;
            Identity::Subject(sub)
        }
        (_, Some(client_id)) => Identity::client(client_id).ok_or_else(|| {
            AppError::validation_failed("client_id must be 1-128 characters of [A-Za-z0-9._:-]")
        })?,
        (_, None) => return Err(AppError::invalid_request("client_id is required")),
    };
    let source = source.source_key();
    // Checked here, without I/O; the script refuses a bad one before any
    // write, and only when the event asks for a challenge.
    let checked = body
        .challenge
        .as_ref()
        .map(|s| state.pow.verify(&event, s, now_ms() / 1000));
    let pow = match &checked {
        None => JoinChallenge::None,
        Some(Ok(v)) => JoinChallenge::Solved(v),
        Some(Err(_)) => JoinChallenge::Refused,
    };
    let outcome = match state
        .queue
        .join(&event, &identity, Some(&source), pow)
        .await
    {
        Err(QueueError::ChallengeFailed) => {
            return Err(match checked {
                Some(Err(why)) => AppError::new(ErrorCode::ChallengeFailed, why.to_string()),
                _ => QueueError::ChallengeFailed.into(),
            })
        }
        other => other?,
    };
    if outcome.new {
        tracing::debug!(event = %event, ticket = outcome.status.ticket.redacted(), state = outcome.status.state.name(), "joined");
    }
    let code = match outcome.status.state {
        TicketState::Admitted { .. } => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    };
    let body = TicketStatusBody::new(&state.admission_keys, &event, &outcome.status);
    Ok((code, Json(body)).into_response())
}

/// A fresh bot challenge (ALTCHA format) for a join to this event: find
/// `number` so that hex SHA-256(`salt` + `number`) is `challenge`, and join
/// with `{"challenge": {algorithm, challenge, number, salt, signature}}`.
///
/// Stateless: signed by the service, bound to the event, valid 10 minutes,
/// each solution accepted once. 204 when the event has no challenge.
#[utoipa::path(
    get, path = "/api/v1/events/{event_id}/queue/challenge", operation_id = "challenge", tag = "queue",
    params(EventParam),
    responses(
        (status = 200, description = "A challenge to solve (never cached).", body = Challenge),
        (status = 204, description = "The event asks for no challenge: join without one."),
        ChallengeErrors,
    )
)]
pub async fn challenge(
    State(state): State<AppState>,
    path: QueuePath,
) -> Result<Response, AppError> {
    let config = state
        .queue
        .config(&path.event)
        .await?
        .ok_or(QueueError::EventNotFound)?;
    if config.challenge == ChallengeMode::Off {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let challenge = state
        .pow
        .issue(&path.event, config.challenge_difficulty, now_ms() / 1000);
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(challenge),
    )
        .into_response())
}

/// A ticket's state. A poll counts as presence while queued.
#[utoipa::path(
    get, path = "/api/v1/events/{event_id}/queue/{ticket}", operation_id = "status", tag = "queue",
    params(TicketParams),
    responses(
        (status = 200, description = "The ticket's state.", body = TicketStatusBody),
        TicketErrors,
    )
)]
pub async fn status(
    State(state): State<AppState>,
    path: QueuePath,
) -> Result<Json<TicketStatusBody>, AppError> {
    let status = state
        .queue
        .status(&path.event, path.ticket()?, false)
        .await?;
    Ok(Json(TicketStatusBody::new(
        &state.admission_keys,
        &path.event,
        &status,
    )))
}

/// Keep a place (queued) or a session (admitted) alive.
#[utoipa::path(
    post, path = "/api/v1/events/{event_id}/queue/{ticket}/heartbeat", operation_id = "heartbeat", tag = "queue",
    params(TicketParams),
    responses(
        (status = 204, description = "Alive."),
        HeartbeatErrors,
    )
)]
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

/// Leave the queue or end the session at once. Idempotent.
#[utoipa::path(
    delete, path = "/api/v1/events/{event_id}/queue/{ticket}", operation_id = "leave", tag = "queue",
    params(TicketParams),
    responses(
        (status = 204, description = "Left (or had already ended)."),
        TicketErrors,
    )
)]
pub async fn leave(State(state): State<AppState>, path: QueuePath) -> Result<StatusCode, AppError> {
    let ticket = path.ticket()?;
    if state
        .queue
        .leave(&path.event, ticket, crate::queue::LeaveReason::Left)
        .await?
    {
        tracing::debug!(event = %path.event, ticket = ticket.redacted(), "left");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Public statistics of the queue.
#[utoipa::path(
    get, path = "/api/v1/events/{event_id}/queue", operation_id = "stats", tag = "queue",
    params(EventParam),
    responses(
        (status = 200, description = "Statistics.", body = QueueStatsBody),
        StatsErrors,
    )
)]
pub async fn stats(
    State(state): State<AppState>,
    path: QueuePath,
) -> Result<Json<QueueStatsBody>, AppError> {
    let stats = state.queue.stats(&path.event).await?;
    Ok(Json(QueueStatsBody::new(&path.event, &stats)))
}
