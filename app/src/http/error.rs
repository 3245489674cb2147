//! The one error type of the HTTP API. Every error is JSON
//! `{"error":{"code","message"}}`; each code has exactly one status, so an
//! operation's possible errors are a list of codes (see
//! [`crate::http::openapi`], which documents them from the same enum).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::queue::QueueError;
use crate::store::StoreError;

/// Bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The body limit of `POST /api/v1/admin/events` (an explicit seat list may
/// be long: 100,000 seats is about 7 MiB).
pub const EVENT_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Every error code of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    ValidationFailed,
    Unauthorized,
    Forbidden,
    EventNotFound,
    TicketNotFound,
    NotFound,
    MethodNotAllowed,
    QueueClosed,
    SoldOut,
    SeatUnavailable,
    EventExists,
    HasReservations,
    HoldConfirmed,
    Gone,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    BookingDisabled,
    Internal,
    ChallengeRequired,
    ChallengeFailed,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 22] = [
        ErrorCode::InvalidRequest,
        ErrorCode::ValidationFailed,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::EventNotFound,
        ErrorCode::TicketNotFound,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::QueueClosed,
        ErrorCode::SoldOut,
        ErrorCode::SeatUnavailable,
        ErrorCode::EventExists,
        ErrorCode::HasReservations,
        ErrorCode::HoldConfirmed,
        ErrorCode::Gone,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::BookingDisabled,
        ErrorCode::Internal,
        ErrorCode::ChallengeRequired,
        ErrorCode::ChallengeFailed,
    ];

    /// The one status every response with this code has.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            InvalidRequest => StatusCode::BAD_REQUEST,
            ValidationFailed | ChallengeRequired | ChallengeFailed => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Unauthorized => StatusCode::UNAUTHORIZED,
            Forbidden => StatusCode::FORBIDDEN,
            EventNotFound | TicketNotFound | NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            QueueClosed | SoldOut | SeatUnavailable | EventExists | HasReservations
            | HoldConfirmed => StatusCode::CONFLICT,
            Gone => StatusCode::GONE,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Unavailable | BookingDisabled => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "invalid_request",
            ValidationFailed => "validation_failed",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
            EventNotFound => "event_not_found",
            TicketNotFound => "ticket_not_found",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            QueueClosed => "queue_closed",
            SoldOut => "sold_out",
            SeatUnavailable => "seat_unavailable",
            EventExists => "event_exists",
            HasReservations => "has_reservations",
            HoldConfirmed => "hold_confirmed",
            Gone => "gone",
            PayloadTooLarge => "payload_too_large",
            RateLimited => "rate_limited",
            Unavailable => "unavailable",
            BookingDisabled => "booking_disabled",
            Internal => "internal",
            ChallengeRequired => "challenge_required",
            ChallengeFailed => "challenge_failed",
        }
    }

    /// Whether answers with this code carry `Retry-After`.
    pub fn retries(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited | ErrorCode::Unavailable | ErrorCode::BookingDisabled
        )
    }

    /// When the API answers with this code (for the OpenAPI document).
    pub fn meaning(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "malformed JSON, wrong types, unknown fields or a bad path",
            ValidationFailed => "well-formed, but a value is out of range",
            Unauthorized => "no or a wrong bearer token (admin, admission or identity token)",
            Forbidden => {
                "a token of another event or ticket, or an admission session that has ended"
            }
            EventNotFound => "no such event (or no queue is configured for it)",
            TicketNotFound => "no such ticket for this event",
            NotFound => "no such route, hold, reservation or asset",
            MethodNotAllowed => "the route exists, not with this method",
            QueueClosed => "the queue is closed to new arrivals",
            SoldOut => "the event is sold out",
            SeatUnavailable => "a seat is taken; nothing was held",
            EventExists => "an event with this id exists",
            HasReservations => "the event has reservations",
            HoldConfirmed => "the hold is already a reservation",
            Gone => "the ticket or hold has expired or ended",
            PayloadTooLarge => "the body is over the route's limit",
            RateLimited => "too many joins from this address; retry after the given seconds",
            Unavailable => "Redis or the database cannot be reached; retry after the given seconds",
            BookingDisabled => "no database is configured: the service runs the waiting room only",
            Internal => "a bug on our side; it has been logged",
            ChallengeRequired => {
                "the event asks every join for a solved challenge (GET .../queue/challenge)"
            }
            ChallengeFailed => {
                "the challenge's solution is wrong, expired, for another event or used already"
            }
        }
    }
}

/// `{"error":{"code","message"}}`
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people; may change at any time. Programs read `code`.
    pub message: String,
}

#[derive(Debug)]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn validation_failed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Gone, message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            "this route does not answer that method",
        )
    }

    pub fn payload_too_large() -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the body is too large (at most {MAX_BODY_BYTES} bytes; \
                 {EVENT_BODY_BYTES} for a new event)"
            ),
        )
    }

    pub fn rate_limited(retry_after: u64, message: impl Into<String>) -> Self {
        AppError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(ErrorCode::RateLimited, message)
        }
    }

    pub fn unavailable(retry_after: u64, message: impl Into<String>) -> Self {
        AppError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(ErrorCode::Unavailable, message)
        }
    }

    pub fn internal() -> Self {
        Self::new(
            ErrorCode::Internal,
            "something went wrong on our side; it has been logged",
        )
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        if e.is_script_bug() {
            tracing::error!(error = %e, "redis script failed");
            AppError::internal()
        } else {
            tracing::warn!(error = %e, "redis unavailable");
            AppError::unavailable(2, "the queue store is unavailable; try again shortly")
        }
    }
}

impl From<QueueError> for AppError {
    fn from(e: QueueError) -> Self {
        use ErrorCode::*;
        match e {
            QueueError::EventNotFound => {
                AppError::new(EventNotFound, "no queue is configured for this event")
            }
            QueueError::TicketNotFound => {
                AppError::new(TicketNotFound, "no such ticket for this event")
            }
            QueueError::QueueClosed => {
                AppError::new(QueueClosed, "the queue is closed to new arrivals")
            }
            QueueError::SoldOut => AppError::new(SoldOut, "the event is sold out"),
            QueueError::IdentityRequired => AppError::unauthorized(
                "this event requires an identity_token signed by the ticketing site",
            ),
            QueueError::ChallengeRequired => AppError::new(
                ChallengeRequired,
                "this event asks for a solved challenge: GET /api/v1/events/{event_id}/queue/challenge, solve it, and send it as `challenge`",
            ),
            QueueError::ChallengeFailed => AppError::new(
                ChallengeFailed,
                "this challenge's solution has been used already; get a new challenge",
            ),
            QueueError::RateLimited { retry_after_ms } => AppError::rate_limited(
                retry_after_ms.div_ceil(1000),
                "too many joins from this address; wait before trying again",
            ),
            QueueError::Store(s) => s.into(),
        }
    }
}

impl From<crate::Invalid> for AppError {
    fn from(e: crate::Invalid) -> Self {
        AppError::validation_failed(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_have_the_contract_shape() {
        let response = AppError::rate_limited(3, "slow down").into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "rate_limited");
        assert_eq!(v["error"]["message"], "slow down");
    }

    #[test]
    fn store_outages_are_503_with_retry_after() {
        let e: AppError = StoreError::Timeout(std::time::Duration::from_secs(1)).into();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after, Some(2));
    }

    #[test]
    fn codes_serialize_as_their_names() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::from(code.as_str())
            );
        }
    }
}
