//! Builds the service from its configuration and runs it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::booking::db::{Database, DatabaseSettings, DatabaseUrlError};
use crate::booking::{sweeper, Booking, Limits};
use crate::config::{redact_url, Config, ConfigError, RedisTarget};
use crate::events::kinesis::Producer;
use crate::events::shipper::Shipper;
use crate::events::{IdentityHasher, LogHealth};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::queue::admission::AdmissionLoop;
use crate::queue::challenge::Pow;
use crate::queue::hub::Hub;
use crate::queue::Queue;
use crate::store::{ConnectError, Store};
use crate::token::identity::IdentitySettings;
use crate::token::{AdmissionKeys, IdentityKeys, KeyError};

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Why the service cannot start with its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Redis(#[from] ConnectError),
    #[error(transparent)]
    Database(#[from] DatabaseUrlError),
    #[error("TOKEN_KEYS: {0}")]
    TokenKeys(#[source] KeyError),
    #[error("IDENTITY_KEYS: {0}")]
    IdentityKeys(#[source] KeyError),
    #[error("LISTEN_ADDR {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// After a shutdown signal, the service exits within this time whatever is
/// still in flight (Kubernetes sends SIGKILL 30 s after SIGTERM by default;
/// the issue asks for 10 s).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(9);

/// How long the shippers may take to finish their batch after the signal.
const SHIPPERS_DEADLINE: Duration = Duration::from_secs(7);

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown_tx: watch::Sender<bool>,
    admission_tick: Duration,
    /// Ships the outboxes, when the event log is on.
    shipper: Option<Arc<Shipper>>,
}

/// Installs the process-wide TLS crypto provider (ring) once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Application {
    /// Everything that can fail on bad configuration fails here, before the
    /// service accepts a connection. Redis need not be reachable yet.
    pub async fn build(config: Config) -> Result<Application, BuildError> {
        install_crypto_provider();
        config.validate()?;
        let metrics = Metrics::new();
        let store = Store::connect(&config, metrics.clone())?;
        let admission_keys = AdmissionKeys::load(&config.token_keys)
            .map_err(BuildError::TokenKeys)?
            .with_claims(
                non_empty(&config.token_issuer),
                non_empty(&config.token_audience),
            );
        let identity_keys = IdentityKeys::configure(
            &config.identity_keys,
            &IdentitySettings {
                jwks_url: non_empty(&config.identity_jwks_url),
                audience: non_empty(&config.identity_audience),
                min_refetch: Duration::from_secs(config.identity_jwks_refetch_seconds),
            },
        )
        .map_err(BuildError::IdentityKeys)?;
        let listener = listen(config.listen_addr).map_err(|source| BuildError::Listen {
            addr: config.listen_addr,
            source,
        })?;
        let replica = config.replica_id();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let queue = Arc::new(Queue::new(store, &config.key_prefix).for_replica(
            &replica,
            config.outbox_max_entries,
            config.kinesis_stream().is_some(),
        ));
        let booking = match config.database_url() {
            None => None,
            Some(url) => {
                let db = Database::connect(&DatabaseSettings {
                    url: url.to_string(),
                    read_url: config
                        .database_read_url
                        .clone()
                        .filter(|u| !u.trim().is_empty()),
                    pool_size: config.database_pool_size,
                    read_pool_size: config.database_read_pool_size,
                    timeout: Duration::from_millis(config.database_timeout_ms),
                    operation_timeout: Duration::from_millis(config.database_operation_timeout_ms),
                })?;
                let limits = Limits {
                    hold_seconds: config.hold_seconds,
                    max_seats_per_ticket: config.max_seats_per_ticket,
                };
                Some(Arc::new(Booking::new(
                    db,
                    queue.clone(),
                    &config.key_prefix,
                    limits,
                    metrics.clone(),
                )))
            }
        };
        let event_log = match (config.kinesis_stream(), config.event_hash_key()) {
            (Some(stream), Some(key)) => {
                let producer = Producer::connect(stream, metrics.clone()).await;
                Some((producer, IdentityHasher::new(key)))
            }
            _ => {
                tracing::info!("the event log is off (no KINESIS_STREAM): queue changes are kept a minute in Redis and not shipped");
                None
            }
        };
        let log_health = Arc::new(LogHealth::new(event_log.is_some()));
        let shipper = event_log.map(|(producer, hasher)| {
            Arc::new(Shipper {
                queue: queue.clone(),
                producer: Arc::new(producer),
                hasher,
                replica: replica.clone(),
                metrics: metrics.clone(),
                health: log_health.clone(),
                outbox_cap: config.outbox_max_entries,
                claim_idle: Duration::from_millis(config.event_log_claim_idle_ms),
                db: booking.as_ref().map(|b| b.db.writer.clone()),
            })
        });
        let state = AppState {
            queue,
            booking,
            // Every replica has the same TOKEN_KEYS, hence the same key.
            pow: Arc::new(Pow::new(
                &admission_keys.derive_secret(b"queue challenge v1"),
            )),
            admission_keys: Arc::new(admission_keys),
            identity_keys: Arc::new(identity_keys),
            admin_tokens: Arc::new(
                config
                    .admin_tokens()
                    .iter()
                    .map(|t| t.to_string())
                    .collect(),
            ),
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            metrics,
            hub: Arc::new(Hub::default()),
            replica: replica.clone().into(),
            shutdown: shutdown_rx,
            max_seats_per_ticket: config.max_seats_per_ticket,
            websockets: crate::http::ws::Limits {
                per_ticket: usize::from(config.max_sockets_per_ticket),
                per_replica: config.max_sockets as usize,
                send_timeout: Duration::from_millis(config.websocket_send_timeout_ms),
            },
            event_log: log_health,
        };
        let redis = match config.redis_target()? {
            RedisTarget::Standalone(url) => redact_url(&url),
            RedisTarget::Cluster(nodes) => format!(
                "cluster {}",
                nodes
                    .iter()
                    .map(|n| redact_url(n))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        tracing::info!(
            listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            replica = %replica,
            redis = %redis,
            key_prefix = %config.key_prefix,
            booking = config.database_url().is_some(),
            event_log = config.kinesis_stream().unwrap_or("off"),
            "admission service configured"
        );
        Ok(Application {
            router: http::router(state.clone()),
            listener,
            state,
            shutdown_tx,
            admission_tick: Duration::from_millis(config.admission_tick_ms),
            shipper,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `signal` completes, then stops accepting, closes the
    /// WebSockets with a reason, finishes requests in flight and returns
    /// (within [`SHUTDOWN_DEADLINE`] whatever happens).
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application {
            listener,
            router,
            state,
            shutdown_tx,
            admission_tick,
            shipper,
        } = self;
        let admission = AdmissionLoop {
            queue: state.queue.clone(),
            replica: state.replica.to_string(),
            tick: admission_tick,
            metrics: state.metrics.clone(),
        };
        let loop_task = tokio::spawn(admission.run(state.shutdown.clone()));
        let hub_task = tokio::spawn(state.hub.clone().run(
            state.queue.clone(),
            state.metrics.clone(),
            state.shutdown.clone(),
        ));
        let sweep_task = state.booking.clone().map(|b| {
            tokio::spawn(sweeper::run(
                b,
                state.metrics.clone(),
                state.shutdown.clone(),
            ))
        });

        let ship_task = shipper.map(|s| tokio::spawn(s.run(state.shutdown.clone())));
        let lag_task = tokio::spawn(state.metrics.clone().watch_runtime_lag());

        let mut stopping = state.shutdown.clone();
        let graceful = async move {
            signal.await;
            tracing::info!("shutting down: no new connections; closing websockets");
            let _ = shutdown_tx.send(true);
        };
        let serve = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(graceful);
        let deadline = async move {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_DEADLINE).await;
        };
        let result = tokio::select! {
            r = serve => r,
            _ = deadline => {
                tracing::warn!("shutdown deadline reached with requests still in flight");
                Ok(())
            }
        };
        // Sockets were told to close; give their close frames a moment.
        for _ in 0..20 {
            if state.hub.socket_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The shippers saw the signal too: they finish the batch they hold
        // (its put and acknowledgement) so nothing is shipped twice
        // needlessly; what they have not read is the other replicas' to ship.
        if let Some(t) = ship_task {
            if tokio::time::timeout(SHIPPERS_DEADLINE, t).await.is_err() {
                tracing::warn!("shippers still busy at the deadline: their batch is shipped again by another replica");
            }
        }
        loop_task.abort();
        hub_task.abort();
        lag_task.abort();
        if let Some(t) = sweep_task {
            t.abort();
        }
        tracing::info!("stopped");
        result
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Connections the kernel queues for `accept` (capped by the host's
/// `net.core.somaxconn`, 4096 on current kernels). At a sale's opening
/// thousands of fans connect in the same instant; past a full queue the
/// kernel drops their SYNs and each waits a whole second to try again.
/// Measured with `cargo xtask bench` on a 2-core machine: 1,000 holds on
/// fresh connections at once took 1.1 s with tokio's default of 1,024
/// (and a hold's p99 beside confirms was 1,041 ms: one SYN retry), 0.31 s
/// with this, with no listen overflow counted (`nstat`).
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted replica binds at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
