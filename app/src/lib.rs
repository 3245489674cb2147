//! The admission service: a virtual waiting room in front of ticket sales.
//!
//! - [`booking`]: catalog, holds and reservations on MySQL.
//! - [`queue`]: the queue itself (Redis scripts, admission loop, pre-queue
//!   draw, WebSocket hub).
//! - [`http`]: routes, errors, WebSockets, OpenAPI.
//! - [`store`]: the Redis connection (standalone or cluster, TLS).
//! - [`token`]: admission tokens (ES256) and identity tokens.
//! - [`config`]: the one configuration struct.

// The OpenAPI document is one large json! literal.
#![recursion_limit = "512"]

pub mod booking;
pub mod clock;
pub mod config;
pub mod http;
pub mod metrics;
pub mod queue;
pub mod server;
pub mod store;
pub mod token;

pub use config::Config;
pub use server::Application;
