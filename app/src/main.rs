use std::path::PathBuf;
use std::process::ExitCode;

use admission::config::{one_line_error, LogFormat};
use admission::{server, Application, Config};
use clap::Parser;

/// Writes a new P-256 key for TOKEN_KEYS (PKCS#8 PEM) and its public half.
#[derive(Parser)]
#[command(name = "admission keygen")]
struct Keygen {
    /// File for the private key (mode 0600); the public key goes to FILE.pub.
    /// Without it, the private key is printed.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Applies the database migrations embedded in this binary.
#[derive(Parser)]
#[command(name = "admission migrate")]
struct Migrate {
    /// The database, as a user allowed to change the schema.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Milliseconds to wait for the database connection.
    #[arg(long, env = "DATABASE_TIMEOUT_MS", default_value_t = 10_000)]
    database_timeout_ms: u64,
}

fn migrate(args: Vec<String>) -> ExitCode {
    let m = match Migrate::try_parse_from(args) {
        Ok(m) => m,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("admission migrate: {}", one_line_error(&e));
            return ExitCode::from(2);
        }
    };
    admission::server::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("admission migrate: {e}");
            return ExitCode::from(1);
        }
    };
    let timeout = std::time::Duration::from_millis(m.database_timeout_ms);
    match runtime.block_on(admission::booking::db::migrate(&m.database_url, timeout)) {
        Ok(report) => {
            println!(
                "admission migrate: {} applied, {} already in place; schema at version {}",
                report.applied.len(),
                report.already,
                report
                    .latest
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "none".into())
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("admission migrate: {e}");
            ExitCode::from(1)
        }
    }
}

fn keygen(args: Vec<String>) -> ExitCode {
    let k = match Keygen::try_parse_from(args) {
        Ok(k) => k,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match k.out {
        Some(path) => match admission::token::write_key_pair(&path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("admission: cannot write {}: {e}", path.display());
                ExitCode::from(1)
            }
        },
        None => {
            print!("{}", admission::token::generate_key_pair().0);
            ExitCode::SUCCESS
        }
    }
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("keygen") => return keygen(args[1..].to_vec()),
        Some("migrate") => return migrate(args[1..].to_vec()),
        _ => {}
    }
    let config = match Config::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("admission: {}", one_line_error(&e));
            return ExitCode::from(2);
        }
    };
    if let Err(msg) = config.validate() {
        eprintln!("admission: {msg}");
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
            Err(msg) => {
                eprintln!("admission: {msg}");
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
