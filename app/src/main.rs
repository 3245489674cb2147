//! The `admission` binary: serves (no subcommand), or runs one of its
//! subcommands. Errors of the library are typed; this edge turns them into
//! one line on stderr and an exit code (2: a bad setting, 1: a failure).

use std::path::PathBuf;
use std::process::ExitCode;

use admission::config::{one_line_error, LogFormat};
use admission::{server, Application, Config};
use anyhow::Context;
use clap::{Parser, Subcommand};

/// Virtual waiting room and admission service.
///
/// Admits fans up to a capacity, queues the rest fairly and pushes each
/// one's live position over WebSocket; admitted fans hold and reserve seats.
/// State lives in Redis (standalone or cluster, optionally TLS), bookings in
/// MySQL. Without a command it serves, with every setting below given as a
/// flag or an environment variable.
#[derive(Parser)]
#[command(
    name = "admission",
    version,
    max_term_width = 100,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Config,
}

#[derive(Subcommand)]
enum Command {
    Keygen(Keygen),
    Migrate(Migrate),
}

/// Write a new P-256 signing key for TOKEN_KEYS (PKCS#8 PEM) and its public
/// half. Never overwrites a file.
#[derive(clap::Args)]
struct Keygen {
    /// File for the private key (mode 0600); the public key goes to FILE.pub.
    /// Without it, the private key is printed.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Apply the database migrations embedded in this binary (`up`, the
/// default), or compare them with the database's (`status`). Needs only
/// DATABASE_URL.
#[derive(clap::Args)]
struct Migrate {
    #[command(subcommand)]
    action: Option<MigrateAction>,
    /// The database, as a user allowed to change the schema (`status` only
    /// reads).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
    /// Milliseconds to wait for the database connection.
    #[arg(
        long,
        env = "DATABASE_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    database_timeout_ms: u64,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum MigrateAction {
    /// Apply every pending migration (the default).
    Up,
    /// List applied, pending and drifted migrations (a drifted one was
    /// applied from a file that has changed since); exit 1 on drift or a
    /// failed migration, changing nothing.
    Status,
}

/// An error and its causes on one line, each cause once (the library's
/// messages often name their cause already).
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

fn keygen(k: Keygen) -> anyhow::Result<()> {
    match k.out {
        Some(path) => {
            admission::token::write_key_pair(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "admission keygen: wrote {} and {}.pub",
                path.display(),
                path.display()
            );
        }
        None => print!("{}", admission::token::generate_key_pair().0),
    }
    Ok(())
}

const NO_DATABASE: &str =
    "no database: pass --database-url mysql://user:pass@host:3306/db or set DATABASE_URL";

fn migrate(m: Migrate) -> anyhow::Result<()> {
    let Some(url) = m.database_url.as_deref() else {
        anyhow::bail!(NO_DATABASE);
    };
    admission::server::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timeout = std::time::Duration::from_millis(m.database_timeout_ms);
    if m.action == Some(MigrateAction::Status) {
        return migrate_status(&runtime, url, timeout);
    }
    let report = runtime.block_on(admission::booking::db::migrate(url, timeout))?;
    println!(
        "admission migrate: {} applied, {} already in place; schema at version {}",
        report.applied.len(),
        report.already,
        report
            .latest
            .map(|v| v.to_string())
            .unwrap_or_else(|| "none".into())
    );
    Ok(())
}

/// One line per migration on stdout, a summary on stderr; an error when
/// the schema drifted (exit 1).
fn migrate_status(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    use admission::booking::db::{migration_status, MigrationState};
    let status = runtime.block_on(migration_status(url, timeout))?;
    for m in &status.migrations {
        let note = match m.state {
            MigrationState::Drifted => {
                "  (its file changed after it was applied: restore the file from the commit that applied it, or fix the schema by a new migration)"
            }
            MigrationState::Failed => "  (started and never finished: repair the schema by hand, then delete its row from _sqlx_migrations)",
            MigrationState::Unknown => "  (not in this build: the database was migrated by a newer one)",
            _ => "",
        };
        println!(
            "{:<8} {} {}{note}",
            m.state.as_str(),
            m.version,
            m.description
        );
    }
    eprintln!(
        "admission migrate status: {} applied, {} pending, {} drifted, {} failed, {} unknown",
        status.count(MigrationState::Applied),
        status.count(MigrationState::Pending),
        status.count(MigrationState::Drifted),
        status.count(MigrationState::Failed),
        status.count(MigrationState::Unknown),
    );
    if status.is_broken() {
        anyhow::bail!("the schema drifted from this build's migrations");
    }
    Ok(())
}

/// Logs go to stdout through a background thread, so a slow log pipe never
/// stalls a request; the guard flushes what is buffered at exit.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(64 * 1024)
        .finish(std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
    guard
}

fn serve(config: Config) -> ExitCode {
    if let Err(e) = config.validate() {
        eprintln!("admission: {e}");
        return ExitCode::from(2);
    }
    let _log_guard = init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("admission: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        let app = match Application::build(config).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("admission: {}", one_line(&e));
                return ExitCode::from(2);
            }
        };
        match app.run_until(server::shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("admission: {e}");
                ExitCode::from(1)
            }
        }
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("admission: {}", one_line_error(&e));
            return ExitCode::from(2);
        }
    };
    let (name, result) = match cli.command {
        None => return serve(cli.serve),
        Some(Command::Keygen(k)) => ("keygen", keygen(k)),
        Some(Command::Migrate(m)) if m.database_url.as_deref().is_none_or(str::is_empty) => {
            // A missing setting is a usage error, as for the server.
            eprintln!("admission migrate: {NO_DATABASE}");
            return ExitCode::from(2);
        }
        Some(Command::Migrate(m)) => ("migrate", migrate(m)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("admission {name}: {}", one_line(e.as_ref()));
            ExitCode::from(1)
        }
    }
}
