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
pub async fn ready(State(state): State<AppState>) -> Response {
    let redis = state.queue.store().ping().await;
    let redis_state = if redis.is_ok() { "up" } else { "down" };
    let (code, status) = if redis.is_ok() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let body = json!({
        "status": status,
        "replica": &*state.replica,
        "dependencies": { "redis": redis_state },
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
