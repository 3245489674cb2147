//! Operational routes: health, metrics, and the admission-token keys.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;

/// `GET /health/live`: the process is up.
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /health/ready`: 503 only when this replica cannot serve the queue
/// (Redis unreachable). The body names each dependency's state.
/// The database is optional for the queue: when it is down the replica stays
/// ready (`degraded`), so Kubernetes keeps it serving the waiting room.
pub async fn ready(State(state): State<AppState>) -> Response {
    let (redis, database) = tokio::join!(state.queue.store().ping(), async {
        match &state.booking {
            None => "disabled",
            Some(b) if b.db.ping().await.is_ok() => "up",
            Some(_) => "down",
        }
    });
    let redis_state = if redis.is_ok() { "up" } else { "down" };
    let (code, status) = match (redis.is_ok(), database) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (true, "down") => (StatusCode::OK, "degraded"),
        (true, _) => (StatusCode::OK, "ok"),
    };
    let body = json!({
        "status": status,
        "replica": &*state.replica,
        "dependencies": { "redis": redis_state, "database": database },
    });
    let mut response = (code, Json(body)).into_response();
    if code != StatusCode::OK {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
    }
    response
}

/// `GET /metrics`: Prometheus text format.
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

/// `GET /.well-known/jwks.json`: the public keys of admission tokens.
pub async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.admission_keys.jwks()),
    )
        .into_response()
}
