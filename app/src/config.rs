//! The whole configuration of the `admission` binary: one clap struct, every
//! field settable by flag or environment variable and documented by `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;

/// The settings of `admission` when it serves (no subcommand).
#[derive(Debug, Clone, Parser)]
#[command(name = "admission", version, max_term_width = 100)]
pub struct Config {
    /// Address and port to serve HTTP and WebSocket on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,

    /// Standalone Redis, `redis://host:port` or `rediss://host:port` (TLS).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Comma-separated Redis Cluster node URLs (`redis://` or `rediss://`).
    /// When set, the service runs in cluster mode and REDIS_URL is ignored.
    #[arg(long, env = "REDIS_CLUSTER_NODES", value_delimiter = ',')]
    pub redis_cluster_nodes: Vec<String>,

    /// PEM file of CA certificates trusted for `rediss://`, besides the
    /// system roots.
    #[arg(long, env = "REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,

    /// Number of multiplexed Redis connections (per node in cluster mode).
    #[arg(long, env = "REDIS_POOL_SIZE", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub redis_pool_size: u16,

    /// Milliseconds a Redis command may take before the request fails with
    /// 503 instead of hanging.
    #[arg(long, env = "REDIS_COMMAND_TIMEOUT_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub redis_command_timeout_ms: u64,

    /// Prefix of every Redis key, so several deployments can share one Redis.
    /// May not contain `{` or `}` (they would break the per-event hash tag).
    #[arg(long, env = "KEY_PREFIX", default_value = "")]
    pub key_prefix: String,

    /// Comma-separated bearer tokens accepted on the admin API. Any of them is
    /// accepted, so a new one can be rolled out before the old one is removed.
    #[arg(
        long,
        env = "ADMIN_TOKEN",
        value_delimiter = ',',
        required = true,
        hide_env_values = true
    )]
    pub admin_token: Vec<String>,

    /// Comma-separated `kid:path` pairs of P-256 private keys (PKCS#8 PEM)
    /// for admission tokens. The first one signs; all of them verify and are
    /// published at /.well-known/jwks.json.
    #[arg(long, env = "TOKEN_KEYS", value_delimiter = ',', required = true)]
    pub token_keys: Vec<KeySpec>,

    /// `iss` claim of admission tokens (added only when set, and then
    /// required on the booking routes). Never taken from request headers.
    #[arg(long, env = "TOKEN_ISSUER")]
    pub token_issuer: Option<String>,

    /// `aud` claim of admission tokens (added only when set, and then
    /// required on the booking routes): the site that verifies them.
    #[arg(long, env = "TOKEN_AUDIENCE")]
    pub token_audience: Option<String>,

    /// Comma-separated `kid:path` pairs of public keys (SPKI PEM, P-256 for
    /// ES256 or RSA for RS256) that verify identity tokens signed by the
    /// ticketing site, for events with `require_identity`.
    #[arg(long, env = "IDENTITY_KEYS", value_delimiter = ',')]
    pub identity_keys: Vec<KeySpec>,

    /// The ticketing site's JWKS (https://), e.g. its Cognito, Auth0 or
    /// Keycloak key set: identity tokens signed by its keys (ES256 or RS256)
    /// are accepted. Cached; fetched again when a token names an unknown key
    /// (at most once a minute) and every hour.
    #[arg(long, env = "IDENTITY_JWKS_URL")]
    pub identity_jwks_url: Option<String>,

    /// The `aud` that identity tokens without `event_id` (the site's own
    /// login tokens) must carry; without it such tokens are refused.
    #[arg(long, env = "IDENTITY_AUDIENCE")]
    pub identity_audience: Option<String>,

    /// Least seconds between two fetches of IDENTITY_JWKS_URL.
    #[arg(long, env = "IDENTITY_JWKS_REFETCH_SECONDS", default_value_t = 60, hide = true,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub identity_jwks_refetch_seconds: u64,

    /// Comma-separated CIDRs of proxies (load balancers) whose
    /// `X-Forwarded-For` header is believed when finding a client's address.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,

    /// Name of this replica in Redis (replica heartbeats, shuffle lock).
    /// Default: hostname and process id.
    #[arg(long, env = "REPLICA_ID")]
    pub replica_id: Option<String>,

    /// Milliseconds between two runs of this replica's admission loop for
    /// each event (at most 250: the pacer holds a quarter second's worth).
    #[arg(long, env = "ADMISSION_TICK_MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(10..=250))]
    pub admission_tick_ms: u64,

    /// MySQL writer (the Aurora writer endpoint), `mysql://user:pass@host:3306/db`,
    /// as the app's own user (never the master user). Without it the service
    /// runs the waiting room alone and booking routes answer 503
    /// `booking_disabled`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// MySQL reader (the Aurora reader endpoint) for catalog and availability
    /// reads. Default: the writer.
    #[arg(long, env = "DATABASE_READ_URL", hide_env_values = true)]
    pub database_read_url: Option<String>,

    /// Connections to the writer.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_pool_size: u32,

    /// Connections to the reader.
    #[arg(long, env = "DATABASE_READ_POOL_SIZE", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_read_pool_size: u32,

    /// Milliseconds a request may wait for a free database connection (or
    /// for a new one to connect) before answering 503. At a sale's opening
    /// requests queue for connections: this is that queue's limit.
    #[arg(long, env = "DATABASE_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub database_timeout_ms: u64,

    /// Milliseconds one booking operation (all its statements) may take
    /// before the request answers 503; its transaction is rolled back. A
    /// database that stalls (rather than refusing) cannot hang a request.
    #[arg(long, env = "DATABASE_OPERATION_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(100..=120_000))]
    pub database_operation_timeout_ms: u64,

    /// Seconds a hold keeps its seats before they are free again.
    #[arg(long, env = "HOLD_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub hold_seconds: u64,

    /// Seats one admission ticket may hold and reserve for an event.
    #[arg(long, env = "MAX_SEATS_PER_TICKET", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_seats_per_ticket: u32,

    /// Open WebSockets one ticket may have on a replica; a new one closes the
    /// oldest (a fan who reloads the page keeps one live view).
    #[arg(long, env = "MAX_SOCKETS_PER_TICKET", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=16))]
    pub max_sockets_per_ticket: u16,

    /// Open WebSockets on this replica; beyond it the upgrade answers 503
    /// with Retry-After (fans fall back to polling). Keep it under the
    /// process's open-file limit (20,000 here).
    #[arg(long, env = "MAX_SOCKETS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_sockets: u32,

    /// Milliseconds a WebSocket message may take to be written before the
    /// socket is dropped as not reading.
    #[arg(long, env = "WEBSOCKET_SEND_TIMEOUT_MS", default_value_t = 10_000, hide = true,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub websocket_send_timeout_ms: u64,

    /// The Kinesis stream of the event log (every change of every queue,
    /// and every booking). Without it the event log is off. AWS settings
    /// come from the standard chain: AWS_REGION, credentials or the IRSA web
    /// identity, and AWS_ENDPOINT_URL (moto, LocalStack).
    #[arg(long, env = "KINESIS_STREAM")]
    pub kinesis_stream: Option<String>,

    /// The key of `client_hash` in the event log (an HMAC of the fan's
    /// identity): the same on every replica, kept secret; at least 16
    /// characters. Required with KINESIS_STREAM.
    #[arg(long, env = "EVENT_HASH_KEY", hide_env_values = true)]
    pub event_hash_key: Option<String>,

    /// Entries an event's outbox may hold while the event log cannot ship
    /// (a Kinesis outage). Past it, changes are not recorded (counted, and
    /// readiness turns degraded); the queue never waits for the log. The
    /// default holds about an hour of a 100,000-fan sale's changes (~75 MB).
    #[arg(long, env = "OUTBOX_MAX_ENTRIES", default_value_t = 500_000,
          value_parser = clap::value_parser!(u64).range(1_000..=100_000_000))]
    pub outbox_max_entries: u64,

    /// Milliseconds an outbox entry read by another replica may go
    /// unacknowledged before this one takes it over (that replica died).
    #[arg(long, env = "EVENT_LOG_CLAIM_IDLE_MS", default_value_t = 30_000, hide = true,
          value_parser = clap::value_parser!(u64).range(500..=3_600_000))]
    pub event_log_claim_idle_ms: u64,

    /// Log format: `json` (one JSON object per line) or `text`.
    #[arg(long, env = "LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// A `kid:path` pair naming a key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub kid: String,
    pub path: PathBuf,
}

/// Why a `kid:path` pair was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySpecError {
    #[error("`{0}` is not of the form kid:path")]
    Shape(String),
    #[error("key id `{0}` must be 1-64 characters of [A-Za-z0-9._-]")]
    Kid(String),
    #[error("key `{0}` has an empty path")]
    EmptyPath(String),
}

impl FromStr for KeySpec {
    type Err = KeySpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kid, path) = s
            .trim()
            .split_once(':')
            .ok_or_else(|| KeySpecError::Shape(s.to_string()))?;
        let valid_kid = !kid.is_empty()
            && kid.len() <= 64
            && kid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_kid {
            return Err(KeySpecError::Kid(kid.to_string()));
        }
        if path.is_empty() {
            return Err(KeySpecError::EmptyPath(kid.to_string()));
        }
        Ok(KeySpec {
            kid: kid.to_string(),
            path: PathBuf::from(path),
        })
    }
}

/// Where Redis is, as the service will connect to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    Standalone(String),
    Cluster(Vec<String>),
}

/// A setting the service cannot run with; `admission` prints it on one line
/// and exits with code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("set REDIS_URL (standalone) or REDIS_CLUSTER_NODES (cluster)")]
    NoRedis,
    /// The URL is shown with its password hidden.
    #[error("{var}: `{url}` must start with redis:// or rediss://")]
    RedisScheme { var: &'static str, url: String },
    #[error("KEY_PREFIX may not contain `{{` or `}}`")]
    KeyPrefixBraces,
    #[error("KEY_PREFIX may be at most 64 characters")]
    KeyPrefixLength,
    #[error("ADMIN_TOKEN must name at least one non-empty token")]
    NoAdminToken,
    #[error("every ADMIN_TOKEN must be at least 16 characters")]
    ShortAdminToken,
    #[error("TOKEN_KEYS must name at least one kid:path")]
    NoTokenKeys,
    #[error("DATABASE_URL: `{0}` must start with mysql://")]
    DatabaseScheme(String),
    #[error("DATABASE_READ_URL needs DATABASE_URL")]
    ReadUrlWithoutWriter,
    #[error("REPLICA_ID must be 1-128 characters without spaces")]
    ReplicaId,
    #[error("KINESIS_STREAM must be 1-128 characters of [A-Za-z0-9_.-]")]
    StreamName,
    #[error("EVENT_HASH_KEY of at least 16 characters is required with KINESIS_STREAM")]
    EventHashKey,
}

impl Config {
    /// Checks what clap cannot: cross-field rules and the shape of values.
    /// Files are read later, by the parts that use them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.redis_target()?;
        if self.key_prefix.contains(['{', '}']) {
            return Err(ConfigError::KeyPrefixBraces);
        }
        if self.key_prefix.len() > 64 {
            return Err(ConfigError::KeyPrefixLength);
        }
        if self.admin_tokens().is_empty() {
            return Err(ConfigError::NoAdminToken);
        }
        if self.admin_tokens().iter().any(|t| t.len() < 16) {
            return Err(ConfigError::ShortAdminToken);
        }
        if self.token_keys.is_empty() {
            return Err(ConfigError::NoTokenKeys);
        }
        if let Some(url) = self.database_url() {
            if !url.starts_with("mysql://") {
                return Err(ConfigError::DatabaseScheme(redact_url(url)));
            }
        }
        if self
            .database_read_url
            .as_deref()
            .is_some_and(|u| !u.trim().is_empty())
            && self.database_url().is_none()
        {
            return Err(ConfigError::ReadUrlWithoutWriter);
        }
        if let Some(id) = &self.replica_id {
            if id.is_empty() || id.len() > 128 || id.contains(char::is_whitespace) {
                return Err(ConfigError::ReplicaId);
            }
        }
        if let Some(stream) = self.kinesis_stream() {
            let ok = stream.len() <= 128
                && stream
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !ok {
                return Err(ConfigError::StreamName);
            }
            if self.event_hash_key().is_none_or(|k| k.len() < 16) {
                return Err(ConfigError::EventHashKey);
            }
        }
        Ok(())
    }

    /// The event log's stream, when the log is on.
    pub fn kinesis_stream(&self) -> Option<&str> {
        self.kinesis_stream
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    pub fn event_hash_key(&self) -> Option<&str> {
        self.event_hash_key
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    pub fn redis_target(&self) -> Result<RedisTarget, ConfigError> {
        let nodes: Vec<String> = self
            .redis_cluster_nodes
            .iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        let check = |url: &str, var: &'static str| -> Result<(), ConfigError> {
            if url.starts_with("redis://") || url.starts_with("rediss://") {
                Ok(())
            } else {
                Err(ConfigError::RedisScheme {
                    var,
                    url: redact_url(url),
                })
            }
        };
        if !nodes.is_empty() {
            for n in &nodes {
                check(n, "REDIS_CLUSTER_NODES")?;
            }
            return Ok(RedisTarget::Cluster(nodes));
        }
        match self.redis_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => {
                check(url, "REDIS_URL")?;
                Ok(RedisTarget::Standalone(url.to_string()))
            }
            _ => Err(ConfigError::NoRedis),
        }
    }

    pub fn admin_tokens(&self) -> Vec<&str> {
        self.admin_token
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .collect()
    }

    pub fn replica_id(&self) -> String {
        self.replica_id.clone().unwrap_or_else(|| {
            let host = gethostname::gethostname().to_string_lossy().into_owned();
            format!("{host}-{}", std::process::id())
        })
    }

    /// The writer URL, if booking is enabled.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
    }

    pub fn redis_command_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_command_timeout_ms)
    }
}

/// Hides a password in a Redis URL so that it can be printed.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Turns a clap error into the one line the service prints before exiting
/// with code 2.
pub fn one_line_error(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let text = rendered.split("\nUsage:").next().unwrap_or(&rendered);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    line.trim_start_matches("error:").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let mut argv = vec!["admission"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv)
    }

    const BASE: &[&str] = &[
        "--admin-token",
        "0123456789abcdef0123",
        "--token-keys",
        "k1:/tmp/k1.pem",
        "--redis-url",
        "redis://127.0.0.1:6379",
    ];

    #[test]
    fn defaults_apply() {
        let c = parse(BASE).unwrap();
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.key_prefix, "");
        assert_eq!(c.redis_pool_size, 4);
        c.validate().unwrap();
    }

    #[test]
    fn cluster_nodes_win_over_url() {
        let mut args = BASE.to_vec();
        args.extend(["--redis-cluster-nodes", "redis://a:1,rediss://b:2"]);
        let c = parse(&args).unwrap();
        assert_eq!(
            c.redis_target().unwrap(),
            RedisTarget::Cluster(vec!["redis://a:1".into(), "rediss://b:2".into()])
        );
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let mut args = BASE.to_vec();
        args.extend(["--key-prefix", "a{b"]);
        assert_eq!(
            parse(&args).unwrap().validate(),
            Err(ConfigError::KeyPrefixBraces)
        );

        let args = [
            "--admin-token",
            "short",
            "--token-keys",
            "k:/x",
            "--redis-url",
            "redis://x",
        ];
        assert_eq!(
            parse(&args).unwrap().validate(),
            Err(ConfigError::ShortAdminToken)
        );

        let args = ["--admin-token", "0123456789abcdef", "--token-keys", "k:/x"];
        assert_eq!(parse(&args).unwrap().validate(), Err(ConfigError::NoRedis));

        let args = [
            "--admin-token",
            "0123456789abcdef",
            "--token-keys",
            "k:/x",
            "--redis-url",
            "http://x",
        ];
        let err = parse(&args).unwrap().validate().unwrap_err();
        assert!(matches!(err, ConfigError::RedisScheme { .. }));
        assert!(err.to_string().contains("redis://"), "{err}");
    }

    #[test]
    fn key_specs_parse() {
        assert_eq!(
            "main:/etc/keys/a.pem".parse::<KeySpec>().unwrap(),
            KeySpec {
                kid: "main".into(),
                path: "/etc/keys/a.pem".into()
            }
        );
        assert!("nocolon".parse::<KeySpec>().is_err());
        assert!("bad kid:/x".parse::<KeySpec>().is_err());
        assert!("k:".parse::<KeySpec>().is_err());
    }

    #[test]
    fn missing_required_setting_is_one_line() {
        let err = parse(&["--redis-url", "redis://x"]).unwrap_err();
        let line = one_line_error(&err);
        assert!(!line.contains('\n'));
        assert!(line.contains("--admin-token"), "{line}");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("rediss://user:pw@host:6379"),
            "rediss://***@host:6379"
        );
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
    }
}
