//! The HTTP and WebSocket API.

pub mod admin;
pub mod booking;
pub mod error;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod queue;
pub mod web;
pub mod ws;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::Router;
use ipnet::IpNet;
use tokio::sync::watch;

use crate::booking::Booking;
use crate::metrics::Metrics;
use crate::queue::hub::Hub;
use crate::queue::Queue;
use crate::token::{AdmissionKeys, IdentityKeys};
use error::{AppError, MAX_BODY_BYTES};

/// The body limit of `POST /api/v1/admin/events` (every other body: 16 KiB).
pub const EVENT_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub queue: Arc<Queue>,
    /// `None` when the service runs without a database (waiting room only).
    pub booking: Option<Arc<Booking>>,
    pub admission_keys: Arc<AdmissionKeys>,
    pub identity_keys: Arc<IdentityKeys>,
    pub admin_tokens: Arc<Vec<String>>,
    pub trusted_proxies: Arc<Vec<IpNet>>,
    pub metrics: Metrics,
    pub hub: Arc<Hub>,
    pub replica: Arc<str>,
    /// Turns true when the service begins to shut down.
    pub shutdown: watch::Receiver<bool>,
}

/// Every route. The route templates here are the `route` label of the HTTP
/// metrics and are listed in the OpenAPI document.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/events/{event_id}/queue",
            post(queue::join).get(queue::stats),
        )
        .route(
            "/api/v1/events/{event_id}/queue/{ticket}",
            get(queue::status).delete(queue::leave),
        )
        .route(
            "/api/v1/events/{event_id}/queue/{ticket}/heartbeat",
            post(queue::heartbeat),
        )
        .route(
            "/api/v1/events/{event_id}/queue/{ticket}/ws",
            get(ws::connect),
        )
        .route(
            "/api/v1/admin/events/{event_id}/queue",
            put(admin::put_queue).get(admin::get_queue),
        )
        // An explicit seat list may be long: 100,000 seats is about 7 MiB.
        .route(
            "/api/v1/admin/events",
            post(booking::create_event).layer(DefaultBodyLimit::max(EVENT_BODY_BYTES)),
        )
        .route(
            "/api/v1/admin/events/{event_id}",
            axum::routing::patch(booking::patch_event).delete(booking::delete_event),
        )
        .route("/api/v1/events", get(booking::list_events))
        .route("/api/v1/events/{event_id}", get(booking::get_event))
        .route("/api/v1/events/{event_id}/seats", get(booking::seats))
        .route(
            "/api/v1/events/{event_id}/holds",
            post(booking::create_hold),
        )
        .route(
            "/api/v1/events/{event_id}/reservations",
            get(booking::my_reservations),
        )
        .route(
            "/api/v1/holds/{hold_id}/confirm",
            post(booking::confirm_hold),
        )
        .route("/api/v1/holds/{hold_id}", delete(booking::release_hold))
        .route(
            "/api/v1/reservations/{reservation_id}",
            get(booking::get_reservation).delete(booking::cancel_reservation),
        )
        .route("/", get(web::index))
        .route("/events/{event_id}", get(web::index))
        .route("/assets/{file}", get(web::asset))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/.well-known/jwks.json", get(ops::jwks))
        .route("/health/live", get(ops::live))
        .route("/health/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics));
    api.fallback(|| async { AppError::not_found("not_found", "no such route") })
        .method_not_allowed_fallback(|| async { AppError::method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
