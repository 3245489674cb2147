//! Integration tests against real redis-server processes (standalone and a
//! 3-master cluster), with the app in-process or as separate processes.
//! One binary, so the (large) dependency graph is linked once.

mod api;
mod booking;
mod challenge;
mod chaos;
mod cli;
mod cluster;
mod e2e;
mod events;
mod faults;
mod hardening;
mod identity;
mod openapi;
mod rules;
mod support;
mod tls;
mod ws;
