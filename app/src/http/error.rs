//! The one error type of the HTTP API, and the extractors that turn bad
//! input into it. Every error is JSON `{"error":{"code","message"}}`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use crate::queue::{EventId, QueueError, Ticket};
use crate::store::StoreError;

/// Bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl AppError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AppError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn validation_failed(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "gone", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not answer that method",
        )
    }

    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is too large (at most {MAX_BODY_BYTES} bytes, 8 MiB for a new event)"
            ),
        )
    }

    pub fn rate_limited(retry_after: u64, message: impl Into<String>) -> Self {
        AppError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    pub fn unavailable(retry_after: u64, message: impl Into<String>) -> Self {
        AppError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side; it has been logged",
        )
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        });
        let mut response = (self.status, Json(body)).into_response();
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
        let script_bug = match &e {
            StoreError::Protocol { .. } => true,
            StoreError::Redis(r) => r.code() == Some("ERR") && r.to_string().contains("script"),
            StoreError::Timeout(_) => false,
        };
        if script_bug {
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
        match e {
            QueueError::EventNotFound => {
                AppError::not_found("event_not_found", "no queue is configured for this event")
            }
            QueueError::TicketNotFound => {
                AppError::not_found("ticket_not_found", "no such ticket for this event")
            }
            QueueError::QueueClosed => {
                AppError::conflict("queue_closed", "the queue is closed to new arrivals")
            }
            QueueError::SoldOut => AppError::conflict("sold_out", "the event is sold out"),
            QueueError::IdentityRequired => AppError::unauthorized(
                "this event requires an identity_token signed by the ticketing site",
            ),
            QueueError::RateLimited { retry_after_ms } => AppError::rate_limited(
                retry_after_ms.div_ceil(1000),
                "too many joins from this address; wait before trying again",
            ),
            QueueError::Store(s) => s.into(),
        }
    }
}

/// A JSON body: at most [`MAX_BODY_BYTES`], any content type, unknown
/// fields refused by the target type. Malformed JSON and wrong shapes are
/// 400; range checks are the handler's (422).
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::payload_too_large()
                } else {
                    AppError::invalid_request(format!("could not read the body: {e}"))
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(AppError::invalid_request(
                "expected a JSON object as the body",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| AppError::invalid_request(format!("invalid JSON body: {e}")))
    }
}

/// The `{event_id}` (and `{ticket}`, when the route has one) of a path.
pub struct QueuePath {
    pub event: EventId,
    pub ticket: Option<Ticket>,
}

impl QueuePath {
    pub fn ticket(&self) -> Result<&Ticket, AppError> {
        self.ticket
            .as_ref()
            .ok_or_else(|| AppError::invalid_request("this route needs a ticket"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueuePath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| AppError::invalid_request(format!("bad path: {e}")))?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let event = get("event_id").and_then(EventId::parse).ok_or_else(|| {
            AppError::invalid_request("event_id must be 1-64 characters of [a-z0-9-]")
        })?;
        let ticket = match get("ticket") {
            None => None,
            Some(raw) => Some(Ticket::parse(raw).ok_or_else(|| {
                AppError::invalid_request("ticket must be the 22-character id the join returned")
            })?),
        };
        Ok(QueuePath { event, ticket })
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
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after, Some(2));
    }
}
