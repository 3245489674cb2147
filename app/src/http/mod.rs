//! The HTTP and WebSocket API.
//!
//! - [`api`]: the queue, WebSocket and health bodies (one type per shape).
//! - [`extract`]: every extractor (path, JSON body, tokens, client address).
//! - [`error`]: the one error type and the error codes.
//! - [`openapi`]: the generated document and the error lists of operations.
//! - [`middleware`]: request ids, access logs, HTTP metrics.
//! - the routes: [`queue`], [`ws`], [`admin`], [`booking`], [`ops`], [`web`].

pub mod admin;
pub mod api;
pub mod booking;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod queue;
pub mod web;
pub mod ws;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use ipnet::IpNet;
use tokio::sync::watch;
use tower_http::compression::predicate::SizeAbove;
use tower_http::compression::CompressionLayer;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::booking::Booking;
use crate::metrics::Metrics;
use crate::queue::hub::Hub;
use crate::queue::Queue;
use crate::token::{AdmissionKeys, IdentityKeys};
use error::{AppError, ErrorCode, EVENT_BODY_BYTES, MAX_BODY_BYTES};
use openapi::{Document, Facts};

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub queue: Arc<Queue>,
    /// `None` when the service runs without a database (waiting room only).
    pub booking: Option<Arc<Booking>>,
    pub admission_keys: Arc<AdmissionKeys>,
    pub identity_keys: Arc<IdentityKeys>,
    /// Issues and checks the join's bot challenge.
    pub pow: Arc<crate::queue::challenge::Pow>,
    pub admin_tokens: Arc<Vec<String>>,
    pub trusted_proxies: Arc<Vec<IpNet>>,
    pub metrics: Metrics,
    pub hub: Arc<Hub>,
    pub replica: Arc<str>,
    /// Turns true when the service begins to shut down.
    pub shutdown: watch::Receiver<bool>,
    /// The seats one admission ticket may hold (stated in the document).
    pub max_seats_per_ticket: u32,
    pub websockets: ws::Limits,
    /// How the event log ships (readiness names it).
    pub event_log: Arc<crate::events::LogHealth>,
}

/// The items of a weighted header list (`Accept-Encoding`,
/// `Accept-Language`: `br;q=1.0, gzip;q=0.8`), each lower-cased with its
/// weight; a missing or unreadable weight is 1 (RFC 9110 §12.4.2: the `q`
/// parameter's name is case-insensitive).
pub(crate) fn weighted(list: &str) -> impl Iterator<Item = (String, f32)> + '_ {
    list.split(',').map(|item| {
        let mut parts = item.split(';');
        let value = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let weight = parts
            .find_map(|p| {
                let (name, q) = p.trim().split_once('=')?;
                name.eq_ignore_ascii_case("q")
                    .then(|| q.trim().parse::<f32>().ok())
                    .flatten()
            })
            .unwrap_or(1.0);
        (value, weight)
    })
}

/// Answers smaller than this are never compressed.
pub const COMPRESS_ABOVE: u16 = 1024;

/// Compresses the answers of these routes (gzip or brotli, as the client
/// accepts, above [`COMPRESS_ABOVE`] bytes): the large catalog and seat-map
/// reads, the page and the document. The hot path (join, status) is left
/// alone: its answers are small and every microsecond there counts.
fn compressed(
    (schemas, paths, routes): UtoipaMethodRouter<AppState>,
) -> UtoipaMethodRouter<AppState> {
    let layer = CompressionLayer::new()
        .gzip(true)
        .br(true)
        .compress_when(SizeAbove::new(COMPRESS_ABOVE));
    (schemas, paths, routes.layer(layer))
}

/// Every route and its documentation, from the handlers' annotations: a
/// route exists only together with its entry in the document. Each
/// `routes!` names the handlers of one path.
pub fn documented_routes() -> OpenApiRouter<AppState> {
    let (schemas, paths, create_event) = routes!(booking::create_event);
    // An explicit seat list may be long: 100,000 seats is about 7 MiB.
    let create_event = (
        schemas,
        paths,
        create_event.layer(DefaultBodyLimit::max(EVENT_BODY_BYTES)),
    );
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(queue::join, queue::stats))
        .routes(routes!(queue::status, queue::leave))
        .routes(routes!(queue::heartbeat))
        .routes(routes!(queue::challenge))
        .routes(routes!(ws::connect))
        .routes(routes!(admin::put_queue, admin::get_queue))
        .routes(create_event)
        .routes(routes!(booking::patch_event, booking::delete_event))
        .routes(compressed(routes!(booking::list_events)))
        .routes(routes!(booking::get_event))
        .routes(compressed(routes!(booking::seats)))
        .routes(routes!(booking::create_hold))
        .routes(routes!(booking::my_reservations))
        .routes(routes!(booking::confirm_hold))
        .routes(routes!(booking::release_hold))
        .routes(routes!(
            booking::get_reservation,
            booking::cancel_reservation
        ))
        .routes(compressed(routes!(web::home)))
        .routes(compressed(routes!(web::event_page)))
        .routes(compressed(routes!(web::asset)))
        .routes(compressed(routes!(openapi::document)))
        .routes(routes!(ops::jwks))
        .routes(routes!(ops::live))
        .routes(routes!(ops::ready))
        .routes(compressed(routes!(ops::metrics)))
}

/// The document as this service serves it.
pub fn document(facts: &Facts) -> serde_json::Value {
    let (_, doc) = documented_routes().split_for_parts();
    openapi::finish(doc, facts)
}

/// Every route, with the fallbacks and layers every answer goes through.
/// The route templates are the `route` label of the HTTP metrics.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = documented_routes().split_for_parts();
    let facts = Facts {
        max_seats_per_ticket: state.max_seats_per_ticket,
    };
    let doc = Document(Arc::new(openapi::finish(doc, &facts)));
    routes
        .fallback(|| async { AppError::not_found("no such route") })
        .method_not_allowed_fallback(|| async { AppError::method_not_allowed() })
        .layer(Extension(doc))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Error codes that no operation lists: answers of the router itself
/// (405) or of a bug (500).
pub const UNLISTED_CODES: [ErrorCode; 2] = [ErrorCode::MethodNotAllowed, ErrorCode::Internal];
