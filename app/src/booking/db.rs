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
    #[error("cannot read the applied migrations of {url}: {source}")]
    Read {
        url: String,
        #[source]
        source: sqlx::Error,
    },
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

/// One connection for a migration command, or why not.
async fn migration_pool(url: &str, timeout: Duration) -> Result<MySqlPool, MigrateError> {
    let options = options(url, "DATABASE_URL")?;
    MySqlPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(timeout)
        .connect_with(options)
        .await
        .map_err(|source| MigrateError::Connect {
            url: redact_url(url),
            source,
        })
}

/// Applies every pending migration, printing one line per migration.
pub async fn migrate(url: &str, timeout: Duration) -> Result<MigrationReport, MigrateError> {
    let pool = migration_pool(url, timeout).await?;
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

/// Where one migration stands in a database, against this build's
/// migrations (`MIGRATOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationState {
    /// Applied, with the checksum of this checkout's file.
    Applied,
    /// In this checkout, not yet in the database.
    Pending,
    /// Applied, but the file changed since (a different checksum): the
    /// database and this checkout disagree about what the schema is.
    Drifted,
    /// Started and never finished (`success = 0`): sqlx refuses to go on.
    Failed,
    /// In the database, not in this checkout (a newer build migrated it).
    Unknown,
}

impl MigrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Applied => "applied",
            MigrationState::Pending => "pending",
            MigrationState::Drifted => "drifted",
            MigrationState::Failed => "failed",
            MigrationState::Unknown => "unknown",
        }
    }
}

/// One migration in `admission migrate status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationLine {
    pub version: i64,
    pub description: String,
    pub state: MigrationState,
}

/// What `admission migrate status` found, in version order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationStatus {
    pub migrations: Vec<MigrationLine>,
}

impl MigrationStatus {
    pub fn count(&self, state: MigrationState) -> usize {
        self.migrations.iter().filter(|m| m.state == state).count()
    }

    pub fn with_state(&self, state: MigrationState) -> impl Iterator<Item = &MigrationLine> {
        self.migrations.iter().filter(move |m| m.state == state)
    }

    /// Drift or a failed migration: the schema is not what this checkout
    /// says it is, and migrating will not mend it.
    pub fn is_broken(&self) -> bool {
        self.count(MigrationState::Drifted) + self.count(MigrationState::Failed) > 0
    }
}

/// A row of sqlx's `_sqlx_migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: i64,
    pub description: String,
    pub checksum: Vec<u8>,
    pub success: bool,
}

/// Compares the migrations of this checkout, `(version, description,
/// checksum)`, with what the database recorded.
pub fn compare_migrations(
    ours: &[(i64, String, Vec<u8>)],
    applied: &[AppliedMigration],
) -> MigrationStatus {
    let mut migrations: Vec<MigrationLine> = ours
        .iter()
        .map(|(version, description, checksum)| {
            let state = match applied.iter().find(|a| a.version == *version) {
                None => MigrationState::Pending,
                Some(a) if !a.success => MigrationState::Failed,
                Some(a) if a.checksum != *checksum => MigrationState::Drifted,
                Some(_) => MigrationState::Applied,
            };
            MigrationLine {
                version: *version,
                description: description.clone(),
                state,
            }
        })
        .collect();
    for a in applied {
        if !ours.iter().any(|(v, _, _)| *v == a.version) {
            migrations.push(MigrationLine {
                version: a.version,
                description: a.description.clone(),
                state: if a.success {
                    MigrationState::Unknown
                } else {
                    MigrationState::Failed
                },
            });
        }
    }
    migrations.sort_by_key(|m| m.version);
    MigrationStatus { migrations }
}

/// The migrations embedded in this build, as [`compare_migrations`] takes
/// them.
pub fn embedded_migrations() -> Vec<(i64, String, Vec<u8>)> {
    MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| (m.version, m.description.to_string(), m.checksum.to_vec()))
        .collect()
}

/// Lists applied, pending and drifted migrations of the database at `url`
/// against this build's, changing nothing (a database never migrated has
/// them all pending).
pub async fn migration_status(
    url: &str,
    timeout: Duration,
) -> Result<MigrationStatus, MigrateError> {
    let pool = migration_pool(url, timeout).await?;
    let result = applied_migrations(&pool).await;
    pool.close().await;
    let applied = result.map_err(|source| MigrateError::Read {
        url: redact_url(url),
        source,
    })?;
    Ok(compare_migrations(&embedded_migrations(), &applied))
}

async fn applied_migrations(pool: &MySqlPool) -> Result<Vec<AppliedMigration>, sqlx::Error> {
    let exists: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_name = '_sqlx_migrations'",
    )
    .fetch_one(pool)
    .await?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT version, description, checksum, success FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AppliedMigration {
                version: r.try_get(0)?,
                description: r.try_get(1)?,
                checksum: r.try_get(2)?,
                success: r.try_get(3)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Vec<(i64, String, Vec<u8>)> {
        vec![
            (1, "one".into(), vec![1]),
            (2, "two".into(), vec![2]),
            (3, "three".into(), vec![3]),
        ]
    }

    fn row(version: i64, checksum: u8, success: bool) -> AppliedMigration {
        AppliedMigration {
            version,
            description: format!("m{version}"),
            checksum: vec![checksum],
            success,
        }
    }

    #[test]
    fn a_changed_checksum_is_drift_and_a_missing_row_is_pending() {
        let status = compare_migrations(&ours(), &[row(1, 1, true), row(2, 9, true)]);
        let states: Vec<_> = status.migrations.iter().map(|m| m.state).collect();
        assert_eq!(
            states,
            [
                MigrationState::Applied,
                MigrationState::Drifted,
                MigrationState::Pending
            ]
        );
        assert!(status.is_broken());
    }

    #[test]
    fn a_newer_database_and_a_failed_migration_are_named() {
        let status = compare_migrations(
            &ours(),
            &[row(1, 1, true), row(2, 2, false), row(4, 4, true)],
        );
        let states: Vec<_> = status
            .migrations
            .iter()
            .map(|m| (m.version, m.state))
            .collect();
        assert_eq!(
            states,
            [
                (1, MigrationState::Applied),
                (2, MigrationState::Failed),
                (3, MigrationState::Pending),
                (4, MigrationState::Unknown)
            ]
        );
        assert!(status.is_broken());
        assert!(!compare_migrations(&ours(), &[]).is_broken());
    }
}
