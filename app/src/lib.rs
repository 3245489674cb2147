//! The admission service: a virtual waiting room in front of ticket sales.
//!
//! - [`queue`]: the queue itself (Redis scripts, admission loop, pre-queue
//!   draw, WebSocket hub).
//! - [`booking`]: catalog, holds and reservations on MySQL.
//! - [`http`]: routes, extractors, errors, WebSockets, the OpenAPI document.
//! - [`store`]: the Redis connection (standalone or cluster, TLS).
//! - [`token`]: admission tokens (ES256) and identity tokens.
//! - [`events`]: the event log (outboxes shipped to Kinesis).
//! - [`config`]: the one configuration struct.
//! - [`server`]: builds the service from its configuration and runs it.

pub mod booking;
pub mod clock;
pub mod config;
pub mod events;
pub mod http;
pub mod metrics;
pub mod queue;
pub mod server;
pub mod store;
pub mod token;

pub use config::Config;
pub use server::Application;

/// A value that is well-formed but not acceptable (out of range, too long,
/// two fields that exclude each other); the API answers 422
/// `validation_failed` with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);
