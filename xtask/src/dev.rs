//! `cargo xtask dev`: the whole product on this machine. Its [`Stack`]
//! also serves the fuzz step of `cargo xtask test`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use devstack::{http_request, MariaDb, Process, RedisCluster, RedisOptions, RedisServer};
use xshell::{cmd, Shell};

use crate::{flags, tools, Result};

/// Redis, standalone or clustered; stopped when dropped.
enum Redis {
    Standalone(RedisServer),
    Cluster(RedisCluster),
}

impl Redis {
    fn env(&self) -> (&'static str, String) {
        match self {
            Redis::Standalone(s) => ("REDIS_URL", s.url()),
            Redis::Cluster(c) => ("REDIS_CLUSTER_NODES", c.urls()),
        }
    }
}

/// The app process and where it listens; stopped when dropped.
pub struct App {
    pub process: Process,
    pub addr: SocketAddr,
}

impl App {
    /// Starts the `admission` binary as `cmd` describes and waits until
    /// `/health/ready` answers 200 (at most 30 s).
    pub fn start(cmd: &mut Command, addr: SocketAddr, log: &Path) -> Result<App> {
        let ready = || {
            matches!(
                http_request(addr, "GET", "/health/ready", &[], None),
                Ok((200, _))
            )
        };
        let process = Process::start(cmd, log, Duration::from_secs(30), ready)
            .map_err(|e| format!("the app did not come up: {e}"))?;
        Ok(App { process, addr })
    }

    /// SIGTERM, and its exit status if it stopped by itself within 12 s.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.process.stop(Duration::from_secs(12))
    }
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// MariaDB with the schema migrated; the app connects as `app` (writes) and
/// `reader` (catalog reads), never as root.
struct Database {
    _server: MariaDb,
    app_url: String,
    reader_url: String,
}

fn start_database(binary: &Path, dir: &Path) -> Result<Database> {
    let server = MariaDb::start(&dir.join("mariadb"))?;
    let (migrator, app_url, reader_url) = server.create_database("tickets")?;
    let out = Command::new(binary)
        .arg("migrate")
        .env("DATABASE_URL", &migrator)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "migrations failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    // For `cargo xtask migrate` and for poking at the data by hand.
    std::fs::write(
        dir.join("database.env"),
        format!(
            "MIGRATOR_URL={migrator}\nDATABASE_URL={app_url}\nDATABASE_READ_URL={reader_url}\n"
        ),
    )?;
    Ok(Database {
        _server: server,
        app_url,
        reader_url,
    })
}

fn start_app(
    binary: &Path,
    dir: &Path,
    redis: &Redis,
    db: &Database,
    quiet: bool,
    admin: &str,
) -> Result<App> {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys)?;
    let token_key = keys.join("token.pem");
    let identity_key = keys.join("identity.pem");
    for key in [&token_key, &identity_key] {
        let ok = Command::new(binary)
            .arg("keygen")
            .arg("--out")
            .arg(key)
            .status()?;
        if !ok.success() {
            return Err("`admission keygen` failed".into());
        }
    }
    // 8080 when it is free (the documented default), else any free port.
    let port = if !quiet && std::net::TcpListener::bind("127.0.0.1:8080").is_ok() {
        8080
    } else {
        devstack::free_port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let (redis_var, redis_value) = redis.env();
    let log_path = dir.join("app.log");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(binary);
    cmd.env("LISTEN_ADDR", addr.to_string())
        .env(redis_var, redis_value)
        .env("ADMIN_TOKEN", admin)
        .env("TOKEN_KEYS", format!("dev:{}", token_key.display()))
        .env(
            "IDENTITY_KEYS",
            format!("site:{}.pub", identity_key.display()),
        )
        .env("KEY_PREFIX", "dev:")
        .env("DATABASE_URL", &db.app_url)
        .env("DATABASE_READ_URL", &db.reader_url)
        .env("REPLICA_ID", "dev-1");
    if quiet {
        cmd.stdout(log.try_clone()?).stderr(log);
    } else {
        cmd.env("LOG_FORMAT", "text");
    }
    App::start(&mut cmd, addr, &log_path)
}

fn create_demo_event(addr: SocketAddr, admin: &str) -> Result {
    let auth = format!("Bearer {admin}");
    let event = r#"{"id":"demo","name":"Demo premiere","venue":"Hall 1","starts_at":"2030-01-01T20:00:00Z","sale_opens_at":"2020-01-01T00:00:00Z","seat_map":{"rows":8,"seats_per_row":12}}"#;
    let (status, text) = http_request(
        addr,
        "POST",
        "/api/v1/admin/events",
        &[("Authorization", &auth)],
        Some(event),
    )?;
    if status != 201 {
        return Err(format!("creating the demo event failed: {status} {text}").into());
    }
    // Two fans at a time, one admission a second: enough to see the queue.
    let queue = r#"{"capacity":2,"admit_per_second":1,"session_timeout_seconds":30,"message":"Welcome to the demo queue: 2 fans at a time."}"#;
    let (status, text) = http_request(
        addr,
        "PUT",
        "/api/v1/admin/events/demo/queue",
        &[("Authorization", &auth)],
        Some(queue),
    )?;
    if status != 200 {
        return Err(format!("configuring the demo queue failed: {status} {text}").into());
    }
    Ok(())
}

/// The value of `"key":"…"` in a JSON text.
pub fn json_string(text: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\":\"");
    let at = text.find(&needle)? + needle.len();
    Some(text[at..].split('"').next()?.to_string())
}

/// A whole booking through the API: join, hold, confirm.
fn demo_booking(addr: SocketAddr) -> Result {
    let (status, body) = http_request(
        addr,
        "POST",
        "/api/v1/events/demo/queue",
        &[],
        Some(r#"{"client_id":"xtask-dev-check"}"#),
    )?;
    let token = json_string(&body, "token")
        .filter(|_| status == 200)
        .ok_or_else(|| format!("demo join failed: {status} {body}"))?;
    let auth = format!("Bearer {token}");
    let (status, body) = http_request(
        addr,
        "POST",
        "/api/v1/events/demo/holds",
        &[("Authorization", &auth)],
        Some(r#"{"quantity":2}"#),
    )?;
    let hold = json_string(&body, "hold_id")
        .filter(|_| status == 201)
        .ok_or_else(|| format!("demo hold failed: {status} {body}"))?;
    let (status, body) = http_request(
        addr,
        "POST",
        &format!("/api/v1/holds/{hold}/confirm"),
        &[("Authorization", &auth)],
        None,
    )?;
    if status != 201 {
        return Err(format!("demo confirm failed: {status} {body}").into());
    }
    Ok(())
}

/// Redis, MariaDB (migrated) and the app built in target/debug, started
/// afresh under `dir`; everything stops when dropped (the app first).
pub struct Stack {
    pub app: App,
    /// The admin token the app accepts.
    pub admin: String,
    redis: Redis,
    db: Database,
}

impl Stack {
    /// `quiet`: the app logs JSON to `dir/app.log` and listens on any free
    /// port (else on 8080 when free, logging text to the terminal).
    pub fn start(root: &Path, dir: &Path, cluster: bool, quiet: bool) -> Result<Stack> {
        let binary = root.join("target/debug/admission");
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let options = RedisOptions {
            tls: None,
            durable: true,
        };
        let redis = if cluster {
            Redis::Cluster(RedisCluster::start(
                &dir.join("redis-cluster"),
                3,
                &options,
            )?)
        } else {
            Redis::Standalone(RedisServer::start(&dir.join("redis"), &options)?)
        };
        let db = start_database(&binary, dir)?;
        let admin = random_hex(24)?;
        let app = start_app(&binary, dir, &redis, &db, quiet, &admin)?;
        Ok(Stack {
            app,
            admin,
            redis,
            db,
        })
    }
}

fn print_urls(addr: SocketAddr, admin: &str, dir: &Path, redis: &Redis) {
    let base = format!("http://{addr}");
    let (var, value) = redis.env();
    println!(
        "\n  admission is running ({var}={value})\n\n    \
         fans' page  {base}/events/demo\n    \
         queue stats {base}/api/v1/events/demo/queue\n    \
         join        curl -X POST {base}/api/v1/events/demo/queue -d '{{\"client_id\":\"fan-1\"}}'\n    \
         ready       {base}/health/ready\n    \
         metrics     {base}/metrics\n    \
         openapi     {base}/api/v1/openapi.json\n    \
         jwks        {base}/.well-known/jwks.json\n\n    \
         admin token {admin}\n    \
         state       {}\n\n  Ctrl-C stops everything.\n",
        dir.display()
    );
}

pub fn run(sh: &Shell, flags: &flags::Dev) -> Result {
    tools::ensure_all(sh)?;
    cmd!(sh, "cargo build --quiet --package admission").run()?;
    run_built(sh, flags)
}

/// Runs the stack with the binary already in target/debug (`cargo xtask
/// test` reuses the one its `cargo test` built, instead of rebuilding it
/// with a different feature set).
pub fn run_built(sh: &Shell, flags: &flags::Dev) -> Result {
    let root = sh.current_dir();
    let dir: PathBuf = root.join("target/dev");
    let Stack {
        mut app,
        admin,
        redis,
        db,
    } = Stack::start(&root, &dir, flags.cluster, flags.check)?;
    create_demo_event(app.addr, &admin)?;

    if flags.check {
        demo_booking(app.addr)?;
        match app.stop() {
            Some(code) if code.success() => {}
            Some(code) => {
                return Err(format!("the app did not exit cleanly on SIGTERM: {code}").into())
            }
            None => return Err("the app did not stop within 12 s of SIGTERM".into()),
        }
        println!("xtask dev --check: redis, mariadb (migrated), app and demo event came up; a demo fan joined, held and booked; all stopped cleanly");
        return Ok(());
    }

    print_urls(app.addr, &admin, &dir, &redis);
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })?;
    loop {
        if rx.recv_timeout(Duration::from_millis(500)).is_ok() {
            break;
        }
        if let Some(status) = app.process.try_wait() {
            return Err(format!("the app exited ({status}); see the log above").into());
        }
    }
    eprintln!("\nxtask dev: stopping the app, Redis and MariaDB");
    let _ = app.stop();
    drop(redis);
    drop(db);
    eprintln!("xtask dev: stopped");
    Ok(())
}
