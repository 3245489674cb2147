//! Every extractor of the API, in one place. Each turns a part of the
//! request into a checked value or the API's error shape, and those that
//! read only the head (tokens, path) run before the body is read, so a
//! request without a valid token is a 401 whatever its body.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use super::error::AppError;
use super::AppState;
use crate::booking::holds::Caller;
use crate::booking::{Booking, BookingError};
use crate::clock::now_ms;
use crate::queue::{EventId, Ticket};
use crate::token::AdmissionClaims;

/// A JSON body: at most the route's body limit, any content type, unknown
/// fields refused by the target type. Malformed JSON and wrong shapes are
/// 400; range checks are the handler's (422). A whole number written with a
/// fraction or an exponent (`2.0`, `1e3`) is an integer, as JSON Schema and
/// so the document count it.
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
        let invalid =
            |e: serde_json::Error| AppError::invalid_request(format!("invalid JSON body: {e}"));
        match serde_json::from_slice(&bytes) {
            Ok(body) => Ok(JsonBody(body)),
            // Only a body that failed is read again, as a tree.
            Err(e) => {
                let Ok(mut tree) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                    return Err(invalid(e));
                };
                if !whole_numbers_as_integers(&mut tree) {
                    return Err(invalid(e));
                }
                serde_json::from_value(tree).map(JsonBody).map_err(invalid)
            }
        }
    }
}

/// Rewrites every whole number written as a float (`2.0`) as an integer
/// (within i64; beyond, it stays a float that no field takes); true if it
/// changed anything.
fn whole_numbers_as_integers(v: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f)
                if n.is_f64()
                    && f.fract() == 0.0
                    && (i64::MIN as f64..i64::MAX as f64).contains(&f) =>
            {
                *v = Value::from(f as i64);
                true
            }
            _ => false,
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, i| whole_numbers_as_integers(i) | changed),
        Value::Object(fields) => fields
            .values_mut()
            .fold(false, |changed, f| whole_numbers_as_integers(f) | changed),
        _ => false,
    }
}

/// The path's parameters by name, or a 400 in the API's shape.
async fn path_params<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
) -> Result<Vec<(String, String)>, AppError> {
    let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
        .await
        .map_err(|e| AppError::invalid_request(format!("bad path: {e}")))?;
    Ok(params)
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
        let params = path_params(parts, state).await?;
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

/// The `{hold_id}` or `{reservation_id}` of a path: a 22-character id, or
/// a 400 in the API's error shape.
pub struct IdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let (name, raw) = path_params(parts, state)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| AppError::invalid_request("this route needs an id"))?;
        Ticket::parse(&raw)
            .map(|t| IdPath(t.as_str().to_string()))
            .ok_or_else(|| {
                AppError::invalid_request(format!(
                    "{name} must be the 22-character id the API returned"
                ))
            })
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the nearest address in `X-Forwarded-For` that is not a trusted proxy.
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// What per-source limits count: the address, or for IPv6 its /64
    /// (one subscriber's network; a client can pick any address in it).
    pub fn source_key(&self) -> String {
        match self.0 {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                    format!("{net}/64")
                }
            },
        }
    }
}

/// Set once the warning below has been logged.
static UNTRUSTED_FORWARDING_WARNED: AtomicBool = AtomicBool::new(false);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::internal())?;
        Ok(ClientAddr(client_addr(
            peer,
            &parts.headers,
            &state.trusted_proxies,
        )))
    }
}

/// Logs, once per process, that requests come through a proxy whose
/// `X-Forwarded-For` is not believed (called for every request).
pub(crate) fn warn_if_untrusted_forwarding(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) {
    if trusted.is_empty()
        && is_internal(peer)
        && headers.contains_key("x-forwarded-for")
        && !UNTRUSTED_FORWARDING_WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            peer = %peer,
            "requests arrive through a proxy with X-Forwarded-For, but TRUSTED_PROXIES is not set: \
             every fan may share the proxy's address (one per-source join limit for all); \
             set TRUSTED_PROXIES to the load balancer's network (e.g. the VPC CIDR)"
        );
    }
}

/// A private, loopback or link-local address: where a load balancer or a
/// local proxy would connect from.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || (first & 0xfe00) == 0xfc00 // unique local, fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local, fe80::/10
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

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

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

/// Requires the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        require_admin(&parts.headers, &state.admin_tokens).map(|()| Admin)
    }
}

/// The booking service, or 503 `booking_disabled`.
pub struct Bookings(pub Arc<Booking>);

impl FromRequestParts<AppState> for Bookings {
    type Rejection = AppError;

    async fn from_request_parts(
        _parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state
            .booking
            .clone()
            .map(Bookings)
            .ok_or_else(|| BookingError::Disabled.into())
    }
}

/// The admission token of the request: 401 when missing, malformed, forged
/// or past its `exp`.
fn admission(state: &AppState, headers: &HeaderMap) -> Result<AdmissionClaims, AppError> {
    let token = bearer(headers)
        .ok_or_else(|| AppError::unauthorized("missing Authorization: Bearer <admission token>"))?;
    state
        .admission_keys
        .verify(token, now_ms() / 1000)
        .map_err(|e| AppError::unauthorized(format!("admission token: {e}")))
}

/// The claims of a valid admission token.
pub struct Fan(pub AdmissionClaims);

impl FromRequestParts<AppState> for Fan {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        admission(state, &parts.headers).map(Fan)
    }
}

/// An admin (by ADMIN_TOKEN) or the fan of an admission token.
impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if require_admin(&parts.headers, &state.admin_tokens).is_ok() {
            return Ok(Caller::Admin);
        }
        let claims = admission(state, &parts.headers)?;
        Ok(Caller::Fan {
            event: claims.event_id,
            ticket: claims.ticket,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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

    #[tokio::test]
    async fn whole_numbers_with_a_fraction_are_integers() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct Body {
            n: i64,
            list: Vec<u32>,
        }
        let read = |json: &'static str| async move {
            let req = Request::builder()
                .body(axum::body::Body::from(json))
                .unwrap();
            JsonBody::<Body>::from_request(req, &()).await.map(|b| b.0)
        };
        let b = read(r#"{"n": 2.0, "list": [1e3, 7]}"#).await.unwrap();
        assert_eq!((b.n, b.list), (2, vec![1000, 7]));
        let e = read(r#"{"n": 2.5, "list": []}"#).await.unwrap_err();
        assert_eq!(e.code, crate::http::error::ErrorCode::InvalidRequest);
        assert!(
            e.message.contains("line 1"),
            "the first error: {}",
            e.message
        );
        let e = read(r#"{"n": 2.0, "list": [], "x": 1}"#).await.unwrap_err();
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }

    #[test]
    fn ipv6_sources_count_by_their_64() {
        let key = |s: &str| ClientAddr(s.parse().unwrap()).source_key();
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
    }

    #[test]
    fn internal_addresses_are_the_ones_a_proxy_would_use() {
        for internal in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "fd00::1",
            "fe80::1",
            "::1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["203.0.113.7", "8.8.8.8", "2001:db8::1"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
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
}
