//! The admin API: an event's queue configuration.

use axum::extract::State;
use axum::Json;
use serde_json::Value;

use super::error::{AppError, JsonBody, QueuePath};
use super::middleware::Admin;
use super::AppState;
use crate::queue::config::QueueConfigRequest;
use crate::queue::QueueError;

/// `PUT /api/v1/admin/events/{event_id}/queue`: replaces the whole
/// configuration (omitted fields take their defaults), creating the queue or
/// changing it live. Every change is logged with what changed.
pub async fn put_queue(
    State(state): State<AppState>,
    _: Admin,
    path: QueuePath,
    JsonBody(body): JsonBody<QueueConfigRequest>,
) -> Result<Json<Value>, AppError> {
    let config = body
        .validate(!state.identity_keys.is_empty())
        .map_err(AppError::validation_failed)?;
    let before = state.queue.configure(&path.event, &config).await?;
    tracing::info!(
        event = %path.event,
        change = %config.diff(before.as_ref()),
        "queue configuration changed"
    );
    Ok(Json(config.to_json(path.event.as_str())))
}

/// `GET /api/v1/admin/events/{event_id}/queue`: the stored configuration.
pub async fn get_queue(
    State(state): State<AppState>,
    _: Admin,
    path: QueuePath,
) -> Result<Json<Value>, AppError> {
    let config = state
        .queue
        .config(&path.event)
        .await?
        .ok_or(QueueError::EventNotFound)?;
    Ok(Json(config.to_json(path.event.as_str())))
}
