//! Operational routes: health, metrics, and the admission-token keys.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::api::{Dependencies, DependencyState, EventLogState, Health, HealthStatus};
use super::AppState;
use crate::token::Jwks;

/// Liveness: the process answers.
#[utoipa::path(
    get, path = "/health/live", operation_id = "live", tag = "ops",
    responses((status = 200, description = "Alive.", body = Health))
)]
pub async fn live() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
        replica: None,
        dependencies: None,
    })
}

/// Readiness: 503 only when this replica cannot serve the queue (Redis
/// unreachable); `degraded` when an optional dependency is down.
///
/// The database and the event log are optional for the queue: when either
/// is down (or an outbox is full) the replica stays ready (`degraded`), so
/// Kubernetes keeps it serving the waiting room.
#[utoipa::path(
    get, path = "/health/ready", operation_id = "ready", tag = "ops",
    responses(
        (status = 200, description = "Ready (`ok` or `degraded`).", body = Health),
        (status = 503, description = "Not ready.", body = Health,
            headers(("Retry-After" = u64, description = "Seconds to wait before asking again."))),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    let (redis, database) = tokio::join!(state.queue.store().ping(), async {
        match &state.booking {
            None => DependencyState::Disabled,
            Some(b) if b.db.ping().await.is_ok() => DependencyState::Up,
            Some(_) => DependencyState::Down,
        }
    });
    let event_log = EventLogState::from(state.event_log.get());
    let optional_down = database == DependencyState::Down
        || matches!(event_log, EventLogState::Down | EventLogState::Full);
    let (code, status) = match (redis.is_ok(), optional_down) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, HealthStatus::Unavailable),
        (true, true) => (StatusCode::OK, HealthStatus::Degraded),
        (true, false) => (StatusCode::OK, HealthStatus::Ok),
    };
    let body = Health {
        status,
        replica: Some(state.replica.to_string()),
        dependencies: Some(Dependencies {
            redis: if redis.is_ok() {
                DependencyState::Up
            } else {
                DependencyState::Down
            },
            database,
            event_log,
        }),
    };
    let mut response = (code, Json(body)).into_response();
    if code != StatusCode::OK {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
    }
    response
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(
    get, path = "/metrics", operation_id = "metrics", tag = "ops",
    responses((status = 200, description = "Text exposition format.", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Public keys (JWK Set) that verify admission tokens (ES256).
#[utoipa::path(
    get, path = "/.well-known/jwks.json", operation_id = "jwks", tag = "ops",
    responses((status = 200, description = "JWK Set.", body = Jwks))
)]
pub async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.admission_keys.jwks()),
    )
        .into_response()
}
