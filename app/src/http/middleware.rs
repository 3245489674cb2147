//! Request ids, access logs and HTTP metrics.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use tracing::Instrument;

use super::extract::warn_if_untrusted_forwarding;
use super::AppState;

pub const REQUEST_ID: &str = "x-request-id";

/// A request slower than this is logged at `warn` with where its time went
/// (Redis, the rest, the runtime's lag), so a tail can be traced to the
/// app, to Redis or to a starved machine.
const SLOW_REQUEST: std::time::Duration = std::time::Duration::from_millis(50);

/// The request id of a request, as the handlers see it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn valid_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b));
    ok.then(|| s.to_string())
}

fn new_request_id() -> String {
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Takes or makes `X-Request-Id`, returns it, logs one line per request
/// (route template, never the concrete path: paths hold tickets), and
/// records the HTTP metrics.
pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(valid_request_id)
        .unwrap_or_else(new_request_id);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        warn_if_untrusted_forwarding(peer.ip(), req.headers(), &state.trusted_proxies);
    }
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let (mut response, stages) =
        crate::metrics::with_stages(next.run(req).instrument(span.clone())).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.observe_http(&route, &method, status, elapsed);
    state.metrics.observe_stages(elapsed, &stages);
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    let _enter = span.enter();
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    if elapsed >= SLOW_REQUEST && route != "/api/v1/events/{event_id}/queue/{ticket}/ws" {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        tracing::warn!(
            %method,
            %route,
            status,
            duration_ms,
            redis_ms = ms(stages.redis),
            redis_calls = stages.redis_calls,
            slowest_redis_ms = ms(stages.slowest_redis),
            slowest_redis = stages.slowest_label,
            app_ms = ms(elapsed.saturating_sub(stages.redis)),
            runtime_lag_ms = ms(state.metrics.last_runtime_lag()),
            "slow request"
        );
    } else if status >= 500 {
        tracing::warn!(%method, %route, status, duration_ms, "request");
    } else {
        tracing::info!(%method, %route, status, duration_ms, "request");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_taken_only_when_sane() {
        assert!(valid_request_id(&HeaderValue::from_static("abc-123")).is_some());
        assert!(valid_request_id(&HeaderValue::from_static("has space")).is_none());
        assert_eq!(new_request_id().len(), 24);
    }
}
