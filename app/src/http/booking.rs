//! Catalog and booking routes. Holds and reservations need an admission
//! token (the fan's) and an admitted session; admin routes need ADMIN_TOKEN.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::{AppError, JsonBody, QueuePath};
use super::middleware::{bearer, require_admin, Admin};
use super::AppState;
use crate::booking::catalog::{CreateEvent, PatchEvent};
use crate::booking::holds::{Caller, HoldRequest};
use crate::booking::{Booking, BookingError};
use crate::clock::now_ms;
use crate::queue::{EventId, TicketState};
use crate::token::AdmissionClaims;

impl From<BookingError> for AppError {
    fn from(e: BookingError) -> Self {
        match e {
            BookingError::Disabled => AppError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "booking_disabled",
                message: "this service runs the waiting room only; booking is not enabled".into(),
                // Not a passing outage: retrying soon will not help.
                retry_after: Some(3600),
            },
            BookingError::Database(_) if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unavailable");
                AppError::unavailable(2, "the booking database is unavailable; try again shortly")
            }
            BookingError::Database(_) => {
                tracing::error!(error = %e, "database error");
                AppError::internal()
            }
            BookingError::EventNotFound => AppError::not_found("event_not_found", "no such event"),
            BookingError::EventExists => {
                AppError::conflict("event_exists", "an event with this id already exists")
            }
            BookingError::EventHasReservations => AppError::conflict(
                "has_reservations",
                "the event has reservations and cannot be deleted",
            ),
            BookingError::SeatUnavailable => AppError::conflict(
                "seat_unavailable",
                "one or more of those seats are not available; nothing was held",
            ),
            BookingError::Invalid(msg) => AppError::validation_failed(msg),
            BookingError::NotFound(what) => {
                AppError::not_found("not_found", format!("no such {what}"))
            }
            BookingError::HoldExpired => {
                AppError::gone("the hold has expired; its seats are free again")
            }
            BookingError::HoldConfirmed => {
                AppError::conflict("hold_confirmed", "the hold is already confirmed")
            }
            BookingError::ReservationCancelled => {
                AppError::gone("this hold's reservation was cancelled; its seats are free again")
            }
            BookingError::IdempotencyKeyReused => AppError::validation_failed(
                "this Idempotency-Key was already used for another hold",
            ),
            BookingError::Forbidden(msg) => AppError::forbidden(msg),
            BookingError::Queue(q) => q.into(),
            BookingError::Cache(s) => s.into(),
        }
    }
}

fn booking(state: &AppState) -> Result<&Arc<Booking>, AppError> {
    state
        .booking
        .as_ref()
        .ok_or_else(|| BookingError::Disabled.into())
}

/// The booking service, or 503 `booking_disabled` before the body is read.
pub struct Bookings(pub Arc<Booking>);

impl axum::extract::FromRequestParts<AppState> for Bookings {
    type Rejection = AppError;

    async fn from_request_parts(
        _parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        booking(state).map(|b| Bookings(b.clone()))
    }
}

/// The admission token of the request: 401 when missing, malformed, forged
/// or past its `exp`.
fn admission(state: &AppState, headers: &HeaderMap) -> Result<AdmissionClaims, AppError> {
    let token = bearer(headers)
        .ok_or_else(|| AppError::unauthorized("missing Authorization: Bearer <admission token>"))?;
    state
        .admission_keys
        .verify(token, now_ms() / 1000)
        .map_err(|e| AppError::unauthorized(format!("admission token: {e}")))
}

/// The claims of a valid admission token, checked before the body is read.
pub struct Fan(pub AdmissionClaims);

impl axum::extract::FromRequestParts<AppState> for Fan {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        admission(state, &parts.headers).map(Fan)
    }
}

/// An admin (by ADMIN_TOKEN) or the fan of an admission token.
impl axum::extract::FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if require_admin(&parts.headers, &state.admin_tokens).is_ok() {
            return Ok(Caller::Admin);
        }
        let claims = admission(state, &parts.headers)?;
        Ok(Caller::Fan {
            event: claims.event_id,
            ticket: claims.ticket,
        })
    }
}

/// 403 when an admission token is used on another event's route.
fn same_event(claims: &AdmissionClaims, event: &EventId) -> Result<(), AppError> {
    if claims.event_id == event.as_str() {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "this admission token is for another event",
        ))
    }
}

/// 403 unless the ticket's admission session is alive (and renews it).
async fn require_admitted(
    state: &AppState,
    event: &EventId,
    ticket: &str,
) -> Result<(), BookingError> {
    let ticket = crate::queue::Ticket::parse(ticket)
        .ok_or(BookingError::Forbidden("the token names no valid ticket"))?;
    match state.queue.status(event, &ticket, true).await {
        Ok(s) if matches!(s.state, TicketState::Admitted { .. }) => Ok(()),
        Ok(_) | Err(crate::queue::QueueError::TicketNotFound) => {
            Err(BookingError::Forbidden("this admission session has ended"))
        }
        Err(e) => Err(e.into()),
    }
}

/// The `{hold_id}` or `{reservation_id}` of a path: a 22-character id, or
/// a 400 in the API's error shape.
pub struct IdPath(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IdPath {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::invalid_request(format!("bad path: {e}")))?;
        let (name, raw) = params
            .into_iter()
            .next()
            .ok_or_else(|| AppError::invalid_request("this route needs an id"))?;
        crate::queue::Ticket::parse(&raw)
            .map(|t| IdPath(t.as_str().to_string()))
            .ok_or_else(|| {
                AppError::invalid_request(format!(
                    "{name} must be the 22-character id the API returned"
                ))
            })
    }
}
/// `POST /api/v1/admin/events`
pub async fn create_event(
    _: Admin,
    Bookings(booking): Bookings,
    JsonBody(body): JsonBody<CreateEvent>,
) -> Result<Response, AppError> {
    let event = body.validate().map_err(AppError::validation_failed)?;
    let created = booking.create_event(event).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `PATCH /api/v1/admin/events/{event_id}`
pub async fn patch_event(
    _: Admin,
    Bookings(booking): Bookings,
    path: QueuePath,
    JsonBody(body): JsonBody<PatchEvent>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(booking.patch_event(&path.event, body).await?))
}

/// `DELETE /api/v1/admin/events/{event_id}`
pub async fn delete_event(
    _: Admin,
    Bookings(booking): Bookings,
    path: QueuePath,
) -> Result<StatusCode, AppError> {
    booking.delete_event(&path.event).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/events`
pub async fn list_events(Bookings(booking): Bookings) -> Result<Json<Value>, AppError> {
    Ok(Json(booking.events().await?))
}

/// `GET /api/v1/events/{event_id}`
pub async fn get_event(
    Bookings(booking): Bookings,
    path: QueuePath,
) -> Result<Json<Value>, AppError> {
    Ok(Json(booking.event(&path.event).await?))
}

/// `GET /api/v1/events/{event_id}/seats`
pub async fn seats(Bookings(booking): Bookings, path: QueuePath) -> Result<Response, AppError> {
    let body = booking.seats(&path.event).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `POST /api/v1/events/{event_id}/holds`
pub async fn create_hold(
    State(state): State<AppState>,
    Bookings(booking): Bookings,
    Fan(claims): Fan,
    path: QueuePath,
    JsonBody(body): JsonBody<HoldRequest>,
) -> Result<Response, AppError> {
    same_event(&claims, &path.event)?;
    require_admitted(&state, &path.event, &claims.ticket).await?;
    let hold = booking.hold(&path.event, &claims.ticket, body).await?;
    Ok((StatusCode::CREATED, Json(hold.to_json())).into_response())
}

/// `POST /api/v1/holds/{hold_id}/confirm`
pub async fn confirm_hold(
    State(state): State<AppState>,
    Bookings(booking): Bookings,
    Fan(claims): Fan,
    headers: HeaderMap,
    IdPath(hold_id): IdPath,
) -> Result<Response, AppError> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= 200);
            Some(k.ok_or_else(|| {
                AppError::validation_failed("Idempotency-Key must be 1-200 visible characters")
            })?)
        }
    };
    let caller = Caller::Fan {
        event: claims.event_id.clone(),
        ticket: claims.ticket.clone(),
    };
    let event = EventId::parse(&claims.event_id)
        .ok_or_else(|| AppError::forbidden("this admission token names no valid event"))?;
    let alive = require_admitted(&state, &event, &claims.ticket);
    let (reservation, created) = booking.confirm(&hold_id, &caller, key, alive).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut body = reservation.to_json();
    if let Some(o) = body.as_object_mut() {
        o.remove("status");
    }
    Ok((code, Json(body)).into_response())
}

/// `DELETE /api/v1/holds/{hold_id}`
pub async fn release_hold(
    Bookings(booking): Bookings,
    caller: Caller,
    IdPath(hold_id): IdPath,
) -> Result<StatusCode, AppError> {
    booking.release_hold(&hold_id, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/reservations/{reservation_id}`
pub async fn get_reservation(
    Bookings(booking): Bookings,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Value>, AppError> {
    Ok(Json(booking.reservation(&id, &caller).await?.to_json()))
}

/// `DELETE /api/v1/reservations/{reservation_id}`
pub async fn cancel_reservation(
    Bookings(booking): Bookings,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode, AppError> {
    booking.cancel_reservation(&id, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/events/{event_id}/reservations`: the fan's own, until the
/// token's `exp` (also after the session ended).
pub async fn my_reservations(
    Bookings(booking): Bookings,
    Fan(claims): Fan,
    path: QueuePath,
) -> Result<Json<Value>, AppError> {
    same_event(&claims, &path.event)?;
    let list = booking.reservations_of(&path.event, &claims.ticket).await?;
    let items: Vec<Value> = list.iter().map(|r| r.to_json()).collect();
    Ok(Json(json!({ "reservations": items })))
}
