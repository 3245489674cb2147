//! `cargo xtask dev`: the whole product on this machine.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use devstack::{http_request, RedisCluster, RedisOptions, RedisServer};
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

struct App {
    child: Child,
    addr: SocketAddr,
}

impl App {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(12);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn wait_ready(addr: SocketAddr, app: &mut Child) -> Result {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = app.try_wait() {
            return Err(format!("the app exited during start-up ({status})").into());
        }
        if let Ok((200, _)) = http_request(addr, "GET", "/health/ready", &[], None) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the app did not become ready within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_app(binary: &Path, dir: &Path, redis: &Redis, check: bool, admin: &str) -> Result<App> {
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
    let port = if !check && std::net::TcpListener::bind("127.0.0.1:8080").is_ok() {
        8080
    } else {
        devstack::free_port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let (redis_var, redis_value) = redis.env();
    let log = std::fs::File::create(dir.join("app.log"))?;
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
        .env("REPLICA_ID", "dev-1")
        .stdin(Stdio::null());
    if check {
        cmd.stdout(log.try_clone()?).stderr(log);
    } else {
        cmd.env("LOG_FORMAT", "text");
    }
    let mut child = cmd.spawn()?;
    if let Err(e) = wait_ready(addr, &mut child) {
        let _ = child.kill();
        return Err(e);
    }
    Ok(App { child, addr })
}

fn create_demo_event(addr: SocketAddr, admin: &str) -> Result {
    let auth = format!("Bearer {admin}");
    let body = r#"{"capacity":2,"admit_per_second":1,"session_timeout_seconds":30,"message":"Welcome to the demo queue: 2 fans at a time."}"#;
    let (status, text) = http_request(
        addr,
        "PUT",
        "/api/v1/admin/events/demo/queue",
        &[("Authorization", &auth)],
        Some(body),
    )?;
    if status != 200 {
        return Err(format!("creating the demo event failed: {status} {text}").into());
    }
    Ok(())
}

fn print_urls(addr: SocketAddr, admin: &str, dir: &Path, redis: &Redis) {
    let base = format!("http://{addr}");
    let (var, value) = redis.env();
    println!(
        "\n  admission is running ({var}={value})\n\n    \
         app         {base}/\n    \
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
    let binary = root.join("target/debug/admission");
    let dir: PathBuf = root.join("target/dev");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let options = RedisOptions {
        tls: None,
        durable: true,
    };
    let redis = if flags.cluster {
        Redis::Cluster(RedisCluster::start(
            &dir.join("redis-cluster"),
            3,
            &options,
        )?)
    } else {
        Redis::Standalone(RedisServer::start(&dir.join("redis"), &options)?)
    };
    let admin = random_hex(24)?;
    let mut app = start_app(&binary, &dir, &redis, flags.check, &admin)?;
    create_demo_event(app.addr, &admin)?;

    if flags.check {
        let (status, body) = http_request(
            app.addr,
            "POST",
            "/api/v1/events/demo/queue",
            &[],
            Some(r#"{"client_id":"xtask-dev-check"}"#),
        )?;
        if status != 200 || !body.contains("\"admitted\"") {
            return Err(format!("demo join failed: {status} {body}").into());
        }
        app.stop();
        let code = app.child.wait()?;
        if !code.success() {
            return Err(format!("the app did not exit cleanly on SIGTERM: {code}").into());
        }
        println!("xtask dev --check: redis, app and demo event came up; a demo join was admitted; all stopped cleanly");
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
        if let Ok(Some(status)) = app.child.try_wait() {
            return Err(format!("the app exited ({status}); see the log above").into());
        }
    }
    eprintln!("\nxtask dev: stopping the app and Redis");
    app.stop();
    drop(redis);
    eprintln!("xtask dev: stopped");
    Ok(())
}
