//! The Redis connection: standalone or cluster, plain or TLS, a small pool of
//! multiplexed connections, a hard deadline on every command, and script
//! calls by EVALSHA that fall back to EVAL after a restart emptied the
//! script cache.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::{Client, ErrorKind, RedisError, ServerErrorKind, TlsCertificates, Value};

use crate::config::{redact_url, Config, ConfigError, RedisTarget};
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    #[error("unexpected reply from redis script {script}: {detail}")]
    Protocol {
        script: &'static str,
        detail: String,
    },
}

impl StoreError {
    /// A script that failed by itself (a bug), as opposed to Redis being
    /// away or slow (an outage).
    pub fn is_script_bug(&self) -> bool {
        match self {
            StoreError::Protocol { .. } => true,
            StoreError::Redis(r) => r.code() == Some("ERR") && r.to_string().contains("script"),
            StoreError::Timeout(_) => false,
        }
    }
}

/// Why the Redis client could not be set up (before any connection).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("REDIS_CA_FILE {}: {source}", path.display())]
    CaFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("REDIS_CA_FILE {}: no PEM certificate in it", .0.display())]
    CaFileEmpty(std::path::PathBuf),
    /// The URL is shown with its password hidden.
    #[error("{var} {url}: {source}")]
    Client {
        var: &'static str,
        url: String,
        #[source]
        source: RedisError,
    },
}

/// A Lua script with its SHA1, sent by EVALSHA.
pub struct Script {
    pub name: &'static str,
    source: String,
    sha: String,
}

impl Script {
    pub fn new(name: &'static str, source: String) -> Self {
        let sha = redis::Script::new(&source).get_hash().to_string();
        Script { name, source, sha }
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

/// A pool of multiplexed Redis connections; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    conns: Vec<Conn>,
    next: AtomicUsize,
    timeout: Duration,
    metrics: Metrics,
    cluster: bool,
    /// What new (dedicated) connections are made from.
    source: Source,
}

/// Both are cheap to clone; one lives per store.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Source {
    Single(Client),
    Cluster(redis::cluster::ClusterClient),
}

/// A connection of its own, never shared with requests: for blocking reads
/// (`XREADGROUP`/`XREAD ... BLOCK`), which would hold up every command
/// pipelined behind them on a shared connection. It reconnects by itself.
pub struct Dedicated {
    conn: Conn,
    timeout: Duration,
    metrics: Metrics,
}

impl Dedicated {
    /// Runs one command; its deadline is the connection's (the longest
    /// block it is used for, plus the command deadline).
    pub async fn query(
        &mut self,
        label: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<Value, StoreError> {
        let started = Instant::now();
        let fut = async {
            match &mut self.conn {
                Conn::Single(c) => cmd.query_async::<Value>(c).await,
                Conn::Cluster(c) => cmd.query_async::<Value>(c).await,
            }
        };
        let result = match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(StoreError::from),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        };
        self.metrics
            .observe_redis(label, started.elapsed(), result.is_ok());
        result
    }
}

impl Store {
    /// Builds the pool without talking to Redis: the service starts (and
    /// reports itself not ready) while Redis is down, and connects as soon as
    /// it is back.
    pub fn connect(config: &Config, metrics: Metrics) -> Result<Store, ConnectError> {
        let timeout = config.redis_command_timeout();
        let tls = tls_certificates(config)?;
        let size = usize::from(config.redis_pool_size);
        let target = config.redis_target()?;
        let cluster = matches!(target, RedisTarget::Cluster(_));
        let conns = match target {
            RedisTarget::Standalone(url) => {
                let client = match &tls {
                    Some(certs) if url.starts_with("rediss://") => {
                        Client::build_with_tls(url.as_str(), certs.clone())
                    }
                    _ => Client::open(url.as_str()),
                }
                .map_err(|source| ConnectError::Client {
                    var: "REDIS_URL",
                    url: redact_url(&url),
                    source,
                })?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                let conns = (0..size)
                    .map(|_| {
                        ConnectionManager::new_lazy_with_config(
                            client.clone(),
                            manager_config.clone(),
                        )
                        .map(Conn::Single)
                        .map_err(|source| ConnectError::Client {
                            var: "REDIS_URL",
                            url: redact_url(&url),
                            source,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                (conns, Source::Single(client))
            }
            RedisTarget::Cluster(nodes) => {
                let mut builder = ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2)
                    .min_retry_wait(20)
                    .max_retry_wait(200);
                if let Some(certs) = &tls {
                    if nodes.iter().any(|n| n.starts_with("rediss://")) {
                        builder = builder.certs(certs.clone());
                    }
                }
                let client = builder.build().map_err(|source| ConnectError::Client {
                    var: "REDIS_CLUSTER_NODES",
                    url: nodes
                        .iter()
                        .map(|n| redact_url(n))
                        .collect::<Vec<_>>()
                        .join(","),
                    source,
                })?;
                let cluster_config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout);
                let conns = (0..size)
                    .map(|_| {
                        Conn::Cluster(
                            client.get_pending_async_connection_with_config(cluster_config.clone()),
                        )
                    })
                    .collect();
                (conns, Source::Cluster(client))
            }
        };
        let (conns, source) = conns;
        Ok(Store {
            inner: Arc::new(Inner {
                conns,
                next: AtomicUsize::new(0),
                timeout,
                metrics,
                cluster,
                source,
            }),
        })
    }

    /// A new connection of its own whose replies may take up to `wait`
    /// (plus the command deadline). Made lazily: it connects on first use.
    pub fn dedicated(&self, wait: Duration) -> Result<Dedicated, StoreError> {
        let timeout = wait + self.inner.timeout;
        let conn = match &self.inner.source {
            Source::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.inner.timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(1000));
                Conn::Single(ConnectionManager::new_lazy_with_config(
                    client.clone(),
                    config,
                )?)
            }
            Source::Cluster(client) => {
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(self.inner.timeout)
                    .set_response_timeout(timeout);
                Conn::Cluster(client.get_pending_async_connection_with_config(config))
            }
        };
        Ok(Dedicated {
            conn,
            timeout,
            metrics: self.inner.metrics.clone(),
        })
    }

    pub fn is_cluster(&self) -> bool {
        self.inner.cluster
    }

    fn conn(&self) -> Conn {
        let i = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.conns.len();
        self.inner.conns[i].clone()
    }

    /// Runs one command under the deadline.
    pub async fn query(&self, label: &'static str, cmd: &redis::Cmd) -> Result<Value, StoreError> {
        let started = Instant::now();
        let mut conn = self.conn();
        let fut = async {
            match &mut conn {
                Conn::Single(c) => cmd.query_async::<Value>(c).await,
                Conn::Cluster(c) => cmd.query_async::<Value>(c).await,
            }
        };
        let result = match tokio::time::timeout(self.inner.timeout, fut).await {
            Ok(r) => r.map_err(StoreError::from),
            Err(_) => Err(StoreError::Timeout(self.inner.timeout)),
        };
        let elapsed = started.elapsed();
        self.inner
            .metrics
            .observe_redis(label, elapsed, result.is_ok());
        crate::metrics::record_redis(label, elapsed);
        result
    }

    /// Runs a script by EVALSHA; after a NOSCRIPT (Redis restarted, or a new
    /// node) it sends the source once by EVAL, which also caches it there.
    pub async fn eval<A: redis::ToRedisArgs>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[A],
    ) -> Result<Value, StoreError> {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&script.sha).arg(keys.len()).arg(keys).arg(args);
        match self.query(script.name, &cmd).await {
            Err(StoreError::Redis(e)) if is_noscript(&e) => {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(&script.source).arg(keys.len()).arg(keys).arg(args);
                self.query(script.name, &cmd).await
            }
            other => other,
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.query("PING", &redis::cmd("PING")).await.map(|_| ())
    }
}

fn is_noscript(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(ServerErrorKind::NoScript)) || e.code() == Some("NOSCRIPT")
}

/// The trust store for `rediss://`: the system roots plus REDIS_CA_FILE.
/// redis-rs trusts only the roots it is given once any are given, so the
/// system roots are added here explicitly.
fn tls_certificates(config: &Config) -> Result<Option<TlsCertificates>, ConnectError> {
    let Some(path) = &config.redis_ca_file else {
        return Ok(None);
    };
    let extra = std::fs::read(path).map_err(|source| ConnectError::CaFile {
        path: path.clone(),
        source,
    })?;
    if !String::from_utf8_lossy(&extra).contains("-----BEGIN CERTIFICATE-----") {
        return Err(ConnectError::CaFileEmpty(path.clone()));
    }
    let mut bundle = Vec::new();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        bundle.extend_from_slice(pem_certificate(cert.as_ref()).as_bytes());
    }
    bundle.extend_from_slice(&extra);
    bundle.push(b'\n');
    Ok(Some(TlsCertificates {
        client_tls: None,
        root_cert: Some(bundle),
    }))
}

fn pem_certificate(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Reads a script's reply without panicking on a surprise.
pub mod reply {
    use super::{StoreError, Value};

    pub fn array(script: &'static str, v: Value) -> Result<Vec<Value>, StoreError> {
        match v {
            Value::Array(items) | Value::Set(items) => Ok(items),
            other => Err(StoreError::Protocol {
                script,
                detail: format!("expected an array, got {other:?}"),
            }),
        }
    }

    pub fn string(v: &Value) -> Option<String> {
        match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) => Some(s.clone()),
            Value::VerbatimString { text, .. } => Some(text.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Okay => Some("OK".into()),
            _ => None,
        }
    }

    pub fn int(v: &Value) -> Option<i64> {
        match v {
            Value::Int(i) => Some(*i),
            Value::BulkString(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
            Value::SimpleString(s) => s.trim().parse().ok(),
            Value::Double(d) => Some(*d as i64),
            _ => None,
        }
    }
}
