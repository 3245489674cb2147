//! `cargo xtask dev`: the whole product on this machine. Its [`Stack`]
//! also serves the fuzz step of `cargo xtask test`.
//!
//! The AWS side (the event log's Kinesis stream) comes from a moto server
//! started here, or with `--aws localstack` from the Docker Compose stack in
//! `localstack/`, which then provides MySQL and Valkey too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use devstack::{http_request, MariaDb, Moto, Process, RedisCluster, RedisOptions, RedisServer};
use xshell::{cmd, Shell};

use crate::flags::Aws;
use crate::{flags, kinesis, localstack, tools, Result};

/// Redis, standalone or clustered, or the localstack stack's Valkey;
/// stopped when dropped (unless it is not ours).
enum Redis {
    Standalone(RedisServer),
    Cluster(RedisCluster),
    External(String),
}

impl Redis {
    fn env(&self) -> (&'static str, String) {
        match self {
            Redis::Standalone(s) => ("REDIS_URL", s.url()),
            Redis::Cluster(c) => ("REDIS_CLUSTER_NODES", c.urls()),
            Redis::External(url) => ("REDIS_URL", url.clone()),
        }
    }
}

/// Where the stack's Kinesis runs; a moto server stops when dropped.
pub enum LocalAws {
    Moto(Moto),
    LocalStack,
}

impl LocalAws {
    /// The endpoint the app and the audit give the SDK.
    pub fn endpoint(&self) -> String {
        match self {
            LocalAws::Moto(m) => m.endpoint(),
            LocalAws::LocalStack => localstack::endpoint(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            LocalAws::Moto(_) => "moto",
            LocalAws::LocalStack => "LocalStack",
        }
    }
}

/// Starts moto from the pinned venv (`cargo xtask deps` installs it) and
/// creates the stream the app writes to.
fn start_moto(root: &Path, dir: &Path) -> Result<LocalAws> {
    let moto = Moto::start_pinned(root, &dir.join("moto"))
        .map_err(|e| format!("moto (the local Kinesis) did not start: {e}"))?;
    let addr: SocketAddr = format!("127.0.0.1:{}", moto.port).parse()?;
    kinesis::ensure_stream(addr, kinesis::STREAM, kinesis::SHARDS)?;
    Ok(LocalAws::Moto(moto))
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

pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// MariaDB (or the localstack stack's MySQL) with the schema migrated; the
/// app connects as `app` (writes) and `reader` (catalog reads), never as
/// root.
struct Database {
    _server: Option<MariaDb>,
    app_url: String,
    reader_url: String,
}

fn start_database(binary: &Path, dir: &Path) -> Result<Database> {
    let server = MariaDb::start(&dir.join("mariadb"))?;
    let (migrator, app_url, reader_url) = server.create_database("tickets")?;
    migrate(binary, dir, &migrator, &app_url, &reader_url)?;
    Ok(Database {
        _server: Some(server),
        app_url,
        reader_url,
    })
}

/// The localstack stack's MySQL, migrated.
fn external_database(binary: &Path, dir: &Path) -> Result<Database> {
    let app_url = localstack::database_url(localstack::APP);
    let reader_url = localstack::database_url(localstack::READER);
    let migrator = localstack::database_url(localstack::MIGRATOR);
    migrate(binary, dir, &migrator, &app_url, &reader_url)?;
    Ok(Database {
        _server: None,
        app_url,
        reader_url,
    })
}

fn migrate(binary: &Path, dir: &Path, migrator: &str, app_url: &str, reader_url: &str) -> Result {
    let out = Command::new(binary)
        .arg("migrate")
        .env("DATABASE_URL", migrator)
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
    Ok(())
}

fn start_app(
    binary: &Path,
    dir: &Path,
    redis: &Redis,
    db: &Database,
    quiet: bool,
    admin: &str,
    event_log: &[(&'static str, String)],
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
        .env("REPLICA_ID", "dev-1")
        .envs(event_log.iter().map(|(k, v)| (*k, v)));
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
    // 409: it is still there from an earlier run (localstack's MySQL keeps
    // its data); its queue is configured again below.
    if status != 201 && status != 409 {
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

/// The admission token of a queued fan, once admitted (within 10 s).
fn wait_admitted(addr: SocketAddr, ticket: &str) -> Option<String> {
    let path = format!("/api/v1/events/demo/queue/{ticket}");
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(250));
        if let Ok((200, body)) = http_request(addr, "GET", &path, &[], None) {
            if json_string(&body, "state").as_deref() == Some("admitted") {
                return json_string(&body, "token");
            }
        }
    }
    None
}

/// A whole booking through the API: join, hold, confirm. A new fan each
/// time, so a stack that keeps its data (localstack) books again.
/// Waits until the app's event log has shipped records (the demo fan's
/// join, admission and booking) and says it is up.
fn event_log_ships(addr: SocketAddr) -> Result {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, metrics) = http_request(addr, "GET", "/metrics", &[], None)?;
        let sent: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("admission_event_records_sent_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        let (_, ready) = http_request(addr, "GET", "/health/ready", &[], None)?;
        if sent >= 1.0 && ready.contains(r#""event_log":"up""#) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "the event log shipped {sent} records in 20 s; readiness: {ready}"
            )
            .into());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn demo_booking(addr: SocketAddr) -> Result {
    let join = format!(r#"{{"client_id":"xtask-dev-check-{}"}}"#, random_hex(8)?);
    let (status, body) = http_request(addr, "POST", "/api/v1/events/demo/queue", &[], Some(&join))?;
    let token = match (status, json_string(&body, "ticket")) {
        (200, _) => json_string(&body, "token"),
        // Queued (a stack that keeps its data may still count an earlier
        // run's admission): wait for the admission loop, as a fan would.
        (202, Some(ticket)) => wait_admitted(addr, &ticket),
        _ => None,
    }
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

/// Redis, MariaDB (migrated), the event log's Kinesis when asked for, and
/// the app built in the target folder's debug/ (`CARGO_TARGET_DIR`
/// honoured), started afresh under `dir`; everything
/// stops when dropped (the app first).
pub struct Stack {
    pub app: App,
    /// The admin token the app accepts.
    pub admin: String,
    aws: Option<LocalAws>,
    redis: Redis,
    db: Database,
}

impl Stack {
    /// Without the event log. `quiet`: the app logs JSON to `dir/app.log`
    /// and listens on any free port (else on 8080 when free, logging text
    /// to the terminal).
    pub fn start(root: &Path, dir: &Path, cluster: bool, quiet: bool) -> Result<Stack> {
        Stack::start_with(root, dir, cluster, quiet, None)
    }

    /// With `aws`, the app's event log goes to a Kinesis stream on moto
    /// (started here) or on the localstack stack (which then also provides
    /// MySQL and Valkey).
    pub fn start_with(
        root: &Path,
        dir: &Path,
        cluster: bool,
        quiet: bool,
        aws: Option<Aws>,
    ) -> Result<Stack> {
        let binary = crate::ops::target_dir(root).join("debug/admission");
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let (redis, db, aws) = if aws == Some(Aws::Localstack) {
            if cluster {
                return Err("--cluster starts a local Redis Cluster; the localstack stack has one Valkey: drop one of the two".into());
            }
            localstack::check_up()?;
            kinesis::ensure_stream(
                localstack::localstack_addr(),
                kinesis::STREAM,
                kinesis::SHARDS,
            )?;
            let db = external_database(&binary, dir)?;
            (
                Redis::External(localstack::redis_url()),
                db,
                Some(LocalAws::LocalStack),
            )
        } else {
            // moto takes a few seconds to import: it starts meanwhile.
            let moto = (aws == Some(Aws::Moto)).then(|| {
                let (root, dir) = (root.to_path_buf(), dir.to_path_buf());
                std::thread::spawn(move || start_moto(&root, &dir).map_err(|e| e.to_string()))
            });
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
            let aws = match moto {
                Some(thread) => Some(thread.join().map_err(|_| "starting moto panicked")??),
                None => None,
            };
            (redis, db, aws)
        };
        let event_log = match &aws {
            Some(aws) => {
                let env = kinesis::app_env(&aws.endpoint())?;
                // For the audit and for poking at the stream by hand.
                let text: String = env
                    .iter()
                    .filter(|(k, _)| k.starts_with("AWS_") || *k == "KINESIS_STREAM")
                    .map(|(k, v)| format!("{k}={v}\n"))
                    .collect();
                std::fs::write(dir.join("aws.env"), text)?;
                env
            }
            None => Vec::new(),
        };
        let admin = random_hex(24)?;
        let app = start_app(&binary, dir, &redis, &db, quiet, &admin, &event_log)?;
        Ok(Stack {
            app,
            admin,
            aws,
            redis,
            db,
        })
    }
}

/// The audit of the demo sale, as a command to paste.
fn audit_command(aws: &LocalAws, redis: &Redis) -> String {
    format!(
        "AWS_ENDPOINT_URL={} AWS_REGION={} AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} \\\n                \
         cargo xtask audit --stream {} --event demo --redis {} --key-prefix dev:",
        aws.endpoint(),
        kinesis::REGION,
        kinesis::ACCESS_KEY_ID,
        kinesis::SECRET_ACCESS_KEY,
        kinesis::STREAM,
        redis.env().1,
    )
}

fn print_urls(addr: SocketAddr, admin: &str, dir: &Path, redis: &Redis, aws: Option<&LocalAws>) {
    let base = format!("http://{addr}");
    let (var, value) = redis.env();
    let event_log = match aws {
        Some(aws) => format!(
            "    event log   Kinesis stream {} ({} shards), {} at {}\n    \
             audit       {}\n\n",
            kinesis::STREAM,
            kinesis::SHARDS,
            aws.name(),
            aws.endpoint(),
            audit_command(aws, redis),
        ),
        None => String::new(),
    };
    println!(
        "\n  admission is running ({var}={value})\n\n    \
         fans' page  {base}/events/demo\n    \
         queue stats {base}/api/v1/events/demo/queue\n    \
         join        curl -X POST {base}/api/v1/events/demo/queue -d '{{\"client_id\":\"fan-1\"}}'\n    \
         ready       {base}/health/ready\n    \
         metrics     {base}/metrics\n    \
         openapi     {base}/api/v1/openapi.json\n    \
         jwks        {base}/.well-known/jwks.json\n\n\
         {event_log}    \
         admin token {admin}\n    \
         state       {}\n\n  Ctrl-C stops everything.\n",
        dir.display()
    );
}

pub fn run(sh: &Shell, flags: &flags::Dev) -> Result {
    // The localstack stack brings its own services.
    if flags.aws == Aws::Moto {
        tools::ensure_all(sh)?;
    }
    cmd!(sh, "cargo build --quiet --workspace --bin admission").run()?;
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
        aws,
        redis,
        db,
    } = Stack::start_with(&root, &dir, flags.cluster, flags.check, Some(flags.aws))?;
    create_demo_event(app.addr, &admin)?;

    if flags.check {
        demo_booking(app.addr)?;
        let aws = aws.ok_or("no event log")?;
        event_log_ships(app.addr)?;
        match app.stop() {
            Some(code) if code.success() => {}
            Some(code) => {
                return Err(format!("the app did not exit cleanly on SIGTERM: {code}").into())
            }
            None => return Err("the app did not stop within 12 s of SIGTERM".into()),
        }
        println!(
            "xtask dev --check: {}, {}'s Kinesis stream {} ({} shards), app and demo event came up; a demo fan joined, held and booked, and its events reached Kinesis; all stopped cleanly",
            if flags.aws == Aws::Localstack {
                "the localstack stack's valkey and mysql (migrated)"
            } else {
                "redis, mariadb (migrated)"
            },
            aws.name(),
            kinesis::STREAM,
            kinesis::SHARDS,
        );
        return Ok(());
    }

    print_urls(app.addr, &admin, &dir, &redis, aws.as_ref());
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
    eprintln!("\nxtask dev: stopping the app and the services");
    let _ = app.stop();
    drop(aws);
    drop(redis);
    drop(db);
    eprintln!("xtask dev: stopped");
    Ok(())
}
