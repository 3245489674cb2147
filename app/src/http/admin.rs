//! The admin API: an event's queue configuration.

use axum::extract::State;
use axum::Json;

use super::error::AppError;
use super::extract::{Admin, JsonBody, QueuePath};
use super::openapi::{errors, EventParam};
use super::AppState;
use crate::queue::config::{QueueConfigBody, QueueConfigRequest};
use crate::queue::QueueError;

errors!(PutQueueErrors: InvalidRequest, Unauthorized, PayloadTooLarge, ValidationFailed, Unavailable);
errors!(GetQueueErrors: InvalidRequest, Unauthorized, EventNotFound, Unavailable);

/// Replace the queue configuration (omitted fields take their defaults);
/// creates the queue or updates it live.
///
/// Every change is logged with what changed.
#[utoipa::path(
    put, path = "/api/v1/admin/events/{event_id}/queue", operation_id = "putQueueConfig", tag = "admin",
    params(EventParam),
    request_body = QueueConfigRequest,
    security(("admin" = [])),
    responses(
        (status = 200, description = "The stored configuration.", body = QueueConfigBody),
        PutQueueErrors,
    )
)]
pub async fn put_queue(
    State(state): State<AppState>,
    _: Admin,
    path: QueuePath,
    JsonBody(body): JsonBody<QueueConfigRequest>,
) -> Result<Json<QueueConfigBody>, AppError> {
    let config = body.validate(!state.identity_keys.is_empty())?;
    let before = state.queue.configure(&path.event, &config).await?;
    tracing::info!(
        event = %path.event,
        change = %config.diff(before.as_ref()),
        "queue configuration changed"
    );
    Ok(Json(config.to_body(path.event.as_str())))
}

/// The stored queue configuration.
#[utoipa::path(
    get, path = "/api/v1/admin/events/{event_id}/queue", operation_id = "getQueueConfig", tag = "admin",
    params(EventParam),
    security(("admin" = [])),
    responses(
        (status = 200, description = "The stored configuration.", body = QueueConfigBody),
        GetQueueErrors,
    )
)]
pub async fn get_queue(
    State(state): State<AppState>,
    _: Admin,
    path: QueuePath,
) -> Result<Json<QueueConfigBody>, AppError> {
    let config = state
        .queue
        .config(&path.event)
        .await?
        .ok_or(QueueError::EventNotFound)?;
    Ok(Json(config.to_body(path.event.as_str())))
}
