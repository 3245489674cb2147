//! Request ids, access logs and HTTP metrics; client addresses behind
//! trusted proxies; the admin bearer check.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use rand::RngCore;
use tracing::Instrument;

use super::error::AppError;
use super::AppState;

pub const REQUEST_ID: &str = "x-request-id";

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
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.observe_http(&route, &method, status, elapsed);
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    let _enter = span.enter();
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(%method, %route, status, duration_ms, "request");
    } else {
        tracing::info!(%method, %route, status, duration_ms, "request");
    }
    response
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the nearest address in `X-Forwarded-For` that is not a trusted proxy.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut addr = peer.ip();
    if !is_trusted(&addr) {
        return addr;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    for hop in hops.iter().rev() {
        addr = *hop;
        if !is_trusted(hop) {
            break;
        }
    }
    addr
}

/// An extractor that requires the admin token; it runs before the body is
/// read, so a request without the token is a 401 whatever its body.
pub struct Admin;

impl axum::extract::FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        require_admin(&parts.headers, &state.admin_tokens).map(|()| Admin)
    }
}

/// Checks `Authorization: Bearer <ADMIN_TOKEN>` against every accepted
/// token, in constant time per token.
pub fn require_admin(headers: &HeaderMap, tokens: &[String]) -> Result<(), AppError> {
    let Some(presented) = bearer(headers) else {
        return Err(AppError::unauthorized(
            "missing Authorization: Bearer <admin token>",
        ));
    };
    let mut ok = false;
    for t in tokens {
        ok |= constant_time_eq(presented.as_bytes(), t.as_bytes());
    }
    if ok {
        Ok(())
    } else {
        Err(AppError::unauthorized("the admin token is not valid"))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let alb: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        // Behind the ALB: the rightmost untrusted hop is the client.
        assert_eq!(
            client_addr(alb, &headers("1.2.3.4, 203.0.113.5"), &trusted).to_string(),
            "203.0.113.5"
        );
        // A client cannot spoof through a trusted proxy by prepending.
        assert_eq!(
            client_addr(alb, &headers("6.6.6.6, 203.0.113.5, 10.9.9.9"), &trusted).to_string(),
            "203.0.113.5"
        );
        // Not from a trusted proxy: the header is ignored.
        assert_eq!(
            client_addr(stranger, &headers("1.2.3.4"), &trusted).to_string(),
            "198.51.100.7"
        );
    }

    #[test]
    fn admin_tokens_rotate() {
        let tokens = vec![
            "old-token-000000000".to_string(),
            "new-token-111111111".to_string(),
        ];
        let mut h = HeaderMap::new();
        assert!(require_admin(&h, &tokens).is_err());
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer new-token-111111111"),
        );
        assert!(require_admin(&h, &tokens).is_ok());
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer old-token-000000000"),
        );
        assert!(require_admin(&h, &tokens).is_ok());
        h.insert("authorization", HeaderValue::from_static("Bearer nope"));
        assert!(require_admin(&h, &tokens).is_err());
    }

    #[test]
    fn request_ids_are_taken_only_when_sane() {
        assert!(valid_request_id(&HeaderValue::from_static("abc-123")).is_some());
        assert!(valid_request_id(&HeaderValue::from_static("has space")).is_none());
        assert_eq!(new_request_id().len(), 24);
    }
}
