//! Catalog and booking routes. Holds and reservations need an admission
//! token (the fan's) and an admitted session; admin routes need ADMIN_TOKEN.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::{AppError, ErrorCode};
use super::extract::{Admin, Bookings, Fan, IdPath, JsonBody, QueuePath};
use super::openapi::{errors, EventParam, HoldParam, ReservationParam};
use super::AppState;
use crate::booking::catalog::{CreateEvent, Event, EventList, PatchEvent, SeatList};
use crate::booking::holds::{Caller, Hold, HoldRequest, ReservationBody, ReservationListBody};
use crate::booking::BookingError;
use crate::queue::{EventId, TicketState};
use crate::token::AdmissionClaims;

impl From<BookingError> for AppError {
    fn from(e: BookingError) -> Self {
        use ErrorCode::*;
        match e {
            BookingError::Disabled => AppError {
                // Not a passing outage: retrying soon will not help.
                retry_after: Some(3600),
                ..AppError::new(
                    BookingDisabled,
                    "this service runs the waiting room only; booking is not enabled",
                )
            },
            BookingError::Timeout(_) => {
                tracing::warn!(error = %e, "database stalled");
                AppError::unavailable(
                    2,
                    "the booking database is not answering; try again shortly",
                )
            }
            BookingError::Database(_) if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unavailable");
                AppError::unavailable(2, "the booking database is unavailable; try again shortly")
            }
            BookingError::Database(_) => {
                tracing::error!(error = %e, "database error");
                AppError::internal()
            }
            BookingError::Encode(_) | BookingError::Gzip(_) => {
                // The message names which (JSON, or a cached seat map's gzip).
                tracing::error!(error = %e, "could not build a response");
                AppError::internal()
            }
            BookingError::EventNotFound => AppError::new(EventNotFound, "no such event"),
            BookingError::EventExists => {
                AppError::new(EventExists, "an event with this id already exists")
            }
            BookingError::EventHasReservations => AppError::new(
                HasReservations,
                "the event has reservations and cannot be deleted",
            ),
            BookingError::SeatUnavailable => AppError::new(
                SeatUnavailable,
                "one or more of those seats are not available; nothing was held",
            ),
            BookingError::Invalid(msg) => AppError::validation_failed(msg),
            BookingError::NotFound(what) => AppError::not_found(format!("no such {what}")),
            BookingError::HoldExpired => {
                AppError::gone("the hold has expired; its seats are free again")
            }
            BookingError::HoldConfirmed => {
                AppError::new(HoldConfirmed, "the hold is already confirmed")
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

errors!(CreateEventErrors: InvalidRequest, Unauthorized, EventExists, PayloadTooLarge,
    ValidationFailed, Unavailable, BookingDisabled);
errors!(PatchEventErrors: InvalidRequest, Unauthorized, EventNotFound, PayloadTooLarge,
    ValidationFailed, Unavailable, BookingDisabled);
errors!(DeleteEventErrors: InvalidRequest, Unauthorized, EventNotFound, HasReservations,
    Unavailable, BookingDisabled);
errors!(ListErrors: Unavailable, BookingDisabled);
errors!(EventErrors: InvalidRequest, EventNotFound, Unavailable, BookingDisabled);
errors!(HoldErrors: InvalidRequest, Unauthorized, Forbidden, EventNotFound, SeatUnavailable,
    PayloadTooLarge, ValidationFailed, Unavailable, BookingDisabled);
errors!(ConfirmErrors: InvalidRequest, Unauthorized, Forbidden, EventNotFound, NotFound,
    HoldConfirmed, Gone, ValidationFailed, Unavailable, BookingDisabled);
errors!(ReleaseErrors: InvalidRequest, Unauthorized, Forbidden, NotFound, HoldConfirmed,
    Unavailable, BookingDisabled);
errors!(ReservationErrors: InvalidRequest, Unauthorized, Forbidden, NotFound, Unavailable,
    BookingDisabled);
errors!(MyReservationsErrors: InvalidRequest, Unauthorized, Forbidden, Unavailable,
    BookingDisabled);

/// Create an event with its seats (a seat_map or a list) and its queue
/// (default settings, opens_at = sale_opens_at).
#[utoipa::path(
    post, path = "/api/v1/admin/events", operation_id = "createEvent", tag = "admin",
    request_body = CreateEvent,
    security(("admin" = [])),
    responses(
        (status = 201, description = "The event.", body = Event),
        CreateEventErrors,
    )
)]
pub async fn create_event(
    _: Admin,
    Bookings(booking): Bookings,
    JsonBody(body): JsonBody<CreateEvent>,
) -> Result<Response, AppError> {
    let event = body.validate()?;
    let created = booking.db.within(booking.create_event(event)).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Update an event (and its cached copies; a new sale_opens_at moves the
/// queue's opens_at).
#[utoipa::path(
    patch, path = "/api/v1/admin/events/{event_id}", operation_id = "patchEvent", tag = "admin",
    params(EventParam),
    request_body = PatchEvent,
    security(("admin" = [])),
    responses(
        (status = 200, description = "The event.", body = Event),
        PatchEventErrors,
    )
)]
pub async fn patch_event(
    _: Admin,
    Bookings(booking): Bookings,
    path: QueuePath,
    JsonBody(body): JsonBody<PatchEvent>,
) -> Result<Json<Event>, AppError> {
    Ok(Json(
        booking
            .db
            .within(booking.patch_event(&path.event, body))
            .await?,
    ))
}

/// Remove an event that has no reservations, with its seats and queue.
#[utoipa::path(
    delete, path = "/api/v1/admin/events/{event_id}", operation_id = "deleteEvent", tag = "admin",
    params(EventParam),
    security(("admin" = [])),
    responses(
        (status = 204, description = "Removed."),
        DeleteEventErrors,
    )
)]
pub async fn delete_event(
    _: Admin,
    Bookings(booking): Bookings,
    path: QueuePath,
) -> Result<StatusCode, AppError> {
    booking.db.within(booking.delete_event(&path.event)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every event, soonest first (reader database, cached).
#[utoipa::path(
    get, path = "/api/v1/events", operation_id = "listEvents", tag = "catalog",
    responses(
        (status = 200, description = "Events.", body = EventList),
        ListErrors,
    )
)]
pub async fn list_events(Bookings(booking): Bookings) -> Result<Json<EventList>, AppError> {
    Ok(Json(booking.db.within(booking.events()).await?))
}

/// One event (reader database, cached).
#[utoipa::path(
    get, path = "/api/v1/events/{event_id}", operation_id = "getEvent", tag = "catalog",
    params(EventParam),
    responses(
        (status = 200, description = "The event.", body = Event),
        EventErrors,
    )
)]
pub async fn get_event(
    Bookings(booking): Bookings,
    path: QueuePath,
) -> Result<Json<Event>, AppError> {
    Ok(Json(booking.db.within(booking.event(&path.event)).await?))
}

/// The seat map with each seat's status (reader database, cache-aside copy
/// invalidated on every change).
#[utoipa::path(
    get, path = "/api/v1/events/{event_id}/seats", operation_id = "seats", tag = "catalog",
    params(EventParam),
    responses(
        (status = 200, description = "Seats.", body = SeatList),
        EventErrors,
    )
)]
pub async fn seats(
    Bookings(booking): Bookings,
    path: QueuePath,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let map = booking.db.within(booking.seats(&path.event)).await?;
    let vary = (header::VARY, "accept-encoding");
    let json = (header::CONTENT_TYPE, "application/json");
    if accepts_gzip(&headers) {
        // As cached: no copy, no compression per answer.
        let gzip = (header::CONTENT_ENCODING, "gzip");
        return Ok(([json, gzip, vary], map.gzipped()).into_response());
    }
    Ok(([json, vary], map.json()?).into_response())
}

/// Whether `Accept-Encoding` takes gzip (RFC 9110 §12.5.3: named or `*`,
/// with a weight above 0; an explicit `gzip;q=0` refuses it even beside
/// `*`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = false;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for (coding, weight) in super::weighted(value) {
            match coding.as_str() {
                "gzip" | "x-gzip" => return weight > 0.0,
                "*" => star = weight > 0.0,
                _ => {}
            }
        }
    }
    star
}

/// Hold seats (by id, or a quantity of the best adjacent seats in the
/// front-most row that has them). Admitted fans only.
#[utoipa::path(
    post, path = "/api/v1/events/{event_id}/holds", operation_id = "createHold", tag = "booking",
    params(EventParam),
    request_body = HoldRequest,
    security(("admission" = [])),
    responses(
        (status = 201, description = "Held.", body = Hold),
        HoldErrors,
    )
)]
pub async fn create_hold(
    State(state): State<AppState>,
    Bookings(booking): Bookings,
    Fan(claims): Fan,
    path: QueuePath,
    JsonBody(body): JsonBody<HoldRequest>,
) -> Result<Response, AppError> {
    same_event(&claims, &path.event)?;
    require_admitted(&state, &path.event, &claims.ticket).await?;
    let hold = booking
        .db
        .within(booking.hold(&path.event, &claims.ticket, body))
        .await?;
    Ok((StatusCode::CREATED, Json(hold)).into_response())
}

/// Confirm a hold. Confirming the same hold again (with or without the
/// key) returns the same reservation with 200. Ends the fan's admission
/// session.
#[utoipa::path(
    post, path = "/api/v1/holds/{hold_id}/confirm", operation_id = "confirmHold", tag = "booking",
    params(
        HoldParam,
        ("Idempotency-Key" = Option<String>, Header, max_length = 200,
            pattern = "^[\t -~]*[!-~][\t -~]*$",
            description = "Makes a retried confirm safe: the same key for another hold is a 422. \
                Visible ASCII, spaces and tabs, not blank."),
    ),
    security(("admission" = [])),
    responses(
        (status = 201, description = "Reserved.", body = ReservationBody),
        (status = 200, description = "Already reserved: the same reservation.", body = ReservationBody),
        ConfirmErrors,
    )
)]
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
    let (reservation, created) = booking
        .db
        .within(booking.confirm(&hold_id, &caller, key, alive))
        .await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(reservation.to_body(false))).into_response())
}

/// Release a hold (the fan's token or the admin token).
#[utoipa::path(
    delete, path = "/api/v1/holds/{hold_id}", operation_id = "releaseHold", tag = "booking",
    params(HoldParam),
    security(("admission" = []), ("admin" = [])),
    responses(
        (status = 204, description = "Released."),
        ReleaseErrors,
    )
)]
pub async fn release_hold(
    Bookings(booking): Bookings,
    caller: Caller,
    IdPath(hold_id): IdPath,
) -> Result<StatusCode, AppError> {
    booking
        .db
        .within(booking.release_hold(&hold_id, &caller))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A reservation (its fan's token or the admin token); read from the writer.
#[utoipa::path(
    get, path = "/api/v1/reservations/{reservation_id}", operation_id = "getReservation", tag = "booking",
    params(ReservationParam),
    security(("admission" = []), ("admin" = [])),
    responses(
        (status = 200, description = "The reservation.", body = ReservationBody),
        ReservationErrors,
    )
)]
pub async fn get_reservation(
    Bookings(booking): Bookings,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<ReservationBody>, AppError> {
    Ok(Json(
        booking
            .db
            .within(booking.reservation(&id, &caller))
            .await?
            .to_body(true),
    ))
}

/// Cancel a reservation: its seats are free again (and a sold-out queue
/// reopens).
#[utoipa::path(
    delete, path = "/api/v1/reservations/{reservation_id}", operation_id = "cancelReservation", tag = "booking",
    params(ReservationParam),
    security(("admission" = []), ("admin" = [])),
    responses(
        (status = 204, description = "Cancelled (or already was)."),
        ReservationErrors,
    )
)]
pub async fn cancel_reservation(
    Bookings(booking): Bookings,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<StatusCode, AppError> {
    booking
        .db
        .within(booking.cancel_reservation(&id, &caller))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The fan's own reservations for the event, also after the session ended
/// (until the token's exp).
#[utoipa::path(
    get, path = "/api/v1/events/{event_id}/reservations", operation_id = "myReservations", tag = "booking",
    params(EventParam),
    security(("admission" = [])),
    responses(
        (status = 200, description = "Reservations.", body = ReservationListBody),
        MyReservationsErrors,
    )
)]
pub async fn my_reservations(
    Bookings(booking): Bookings,
    Fan(claims): Fan,
    path: QueuePath,
) -> Result<Json<ReservationListBody>, AppError> {
    same_event(&claims, &path.event)?;
    let list = booking
        .db
        .within(booking.reservations_of(&path.event, &claims.ticket))
        .await?;
    Ok(Json(ReservationListBody {
        reservations: list.iter().map(|r| r.to_body(true)).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(values: &[&str]) -> bool {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::ACCEPT_ENCODING, v.parse().unwrap());
        }
        accepts_gzip(&h)
    }

    #[test]
    fn gzip_is_sent_to_clients_that_accept_it() {
        assert!(accepts(&["gzip, deflate, br, zstd"]));
        assert!(accepts(&["br;q=1.0, gzip;q=0.8"]));
        assert!(accepts(&["deflate", "GZIP"]));
        assert!(accepts(&["*"]));
        assert!(accepts(&["x-gzip"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["br"]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["*, gzip;q=0"]));
        assert!(!accepts(&["*;q=0"]));
        assert!(!accepts(&["gzip;q=0.000"]));
        // An unreadable weight counts as the default (1), as browsers send none.
        assert!(accepts(&["gzip;q=high"]));
    }
}
