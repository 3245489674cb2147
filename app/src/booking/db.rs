//! The MySQL pools (Aurora writer and reader endpoints; MariaDB in tests)
//! and the embedded migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{Executor, Row};

use super::BookingError;
use crate::config::redact_url;

/// Migrations in `app/migrations`, compiled into the binary and applied with
/// sqlx's migrator (its `_sqlx_migrations` table).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Clone)]
pub struct Database {
    /// Writes, and a fan's own reads (read back from the writer).
    pub writer: MySqlPool,
    /// Catalog and availability reads.
    pub reader: MySqlPool,
    /// How long one operation may take (see [`Database::within`]).
    pub operation_timeout: Duration,
}

pub struct DatabaseSettings {
    pub url: String,
    pub read_url: Option<String>,
    pub pool_size: u32,
    pub read_pool_size: u32,
    pub timeout: Duration,
    pub operation_timeout: Duration,
}

/// A database URL the pools cannot use (shown with its password hidden).
#[derive(Debug, thiserror::Error)]
pub enum DatabaseUrlError {
    #[error("{var}: `{url}` must start with mysql://")]
    Scheme { var: &'static str, url: String },
    #[error("{var} {url}: {source}")]
    Invalid {
        var: &'static str,
        url: String,
        #[source]
        source: sqlx::Error,
    },
}

/// Why `admission migrate` failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Url(#[from] DatabaseUrlError),
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

fn options(url: &str, var: &'static str) -> Result<MySqlConnectOptions, DatabaseUrlError> {
    if !url.starts_with("mysql://") && !url.starts_with("mariadb://") {
        return Err(DatabaseUrlError::Scheme {
            var,
            url: redact_url(url),
        });
    }
    MySqlConnectOptions::from_str(url).map_err(|source| DatabaseUrlError::Invalid {
        var,
        url: redact_url(url),
        source,
    })
}

fn pool(options: MySqlConnectOptions, size: u32, timeout: Duration) -> MySqlPool {
    MySqlPoolOptions::new()
        .max_connections(size)
        .min_connections(0)
        .acquire_timeout(timeout)
        .idle_timeout(Duration::from_secs(300))
        .max_lifetime(Duration::from_secs(1800))
        // Not pinged before each use (a round trip on every request at the
        // opening): sqlx pings a connection when it is returned, and one
        // broken by a database restart fails once and is closed.
        .test_before_acquire(false)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                // Every time in the schema is UTC; read committed keeps
                // concurrent holds from locking gaps they do not touch.
                conn.execute("SET time_zone = '+00:00'").await?;
                conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await?;
                Ok(())
            })
        })
        .connect_lazy_with(options)
}

impl Database {
    /// Builds both pools without connecting: the service starts while the
    /// database is down and connects when it is back.
    pub fn connect(s: &DatabaseSettings) -> Result<Database, DatabaseUrlError> {
        let writer = pool(options(&s.url, "DATABASE_URL")?, s.pool_size, s.timeout);
        let reader = match &s.read_url {
            Some(url) => pool(
                options(url, "DATABASE_READ_URL")?,
                s.read_pool_size,
                s.timeout,
            ),
            None => writer.clone(),
        };
        Ok(Database {
            writer,
            reader,
            operation_timeout: s.operation_timeout,
        })
    }

    /// Runs one operation under the operation deadline. Past it the
    /// operation is dropped: its connection is closed (a transaction in it
    /// is rolled back by the server) and the caller gets
    /// [`BookingError::Timeout`], a 503.
    pub async fn within<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, BookingError>>,
    ) -> Result<T, BookingError> {
        match tokio::time::timeout(self.operation_timeout, op).await {
            Ok(r) => r,
            Err(_) => Err(BookingError::Timeout(self.operation_timeout)),
        }
    }

    /// Whether the writer answers, within a second (readiness must never
    /// hang on a stalled database).
    pub async fn ping(&self) -> Result<(), BookingError> {
        let ping = async {
            sqlx::query("SELECT 1").execute(&self.writer).await?;
            Ok(())
        };
        match tokio::time::timeout(Duration::from_secs(1), ping).await {
            Ok(r) => r,
            Err(_) => Err(BookingError::Timeout(Duration::from_secs(1))),
        }
    }
}

/// What `admission migrate` did.
pub struct MigrationReport {
    pub applied: Vec<String>,
    pub already: usize,
    pub latest: Option<i64>,
}

/// Applies every pending migration, printing one line per migration.
pub async fn migrate(url: &str, timeout: Duration) -> Result<MigrationReport, MigrateError> {
    let options = options(url, "DATABASE_URL")?;
    let pool = MySqlPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(timeout)
        .connect_with(options)
        .await
        .map_err(|source| MigrateError::Connect {
            url: redact_url(url),
            source,
        })?;
    let applied_before: Vec<i64> =
        match sqlx::query("SELECT version FROM _sqlx_migrations WHERE success = 1")
            .fetch_all(&pool)
            .await
        {
            Ok(rows) => rows
                .iter()
                .filter_map(|r| r.try_get::<i64, _>(0).ok())
                .collect(),
            Err(_) => Vec::new(),
        };
    let pending: Vec<String> = MIGRATOR
        .iter()
        .filter(|m| !applied_before.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    for m in &pending {
        eprintln!("migrate: applying {m}");
    }
    MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(MigrationReport {
        already: MIGRATOR.iter().count() - pending.len(),
        applied: pending,
        latest: MIGRATOR.iter().map(|m| m.version).max(),
    })
}
