//! Local services for development and tests: real `redis-server` processes
//! (standalone or a Redis Cluster, plain or TLS) on free ports, in a folder
//! of the caller's choosing, stopped when dropped.
//!
//! Used by `cargo xtask dev` and by the integration tests, so both start
//! Redis the same way. No dependencies: it only spawns processes.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod aws_proxy;
pub use aws_proxy::{AwsCall, AwsProxy, AwsReply, Logged};
mod chaos;
pub use chaos::{ChaosProxy, Fault};
mod moto;
pub use moto::Moto;
#[cfg(feature = "fake-kube")]
mod fake_kube;
#[cfg(feature = "fake-kube")]
pub use fake_kube::{FakeKube, FakeKubeError};

/// The exact command that installs what the stack needs on Debian.
pub const REDIS_INSTALL_HINT: &str =
    "sudo apt-get update && sudo apt-get install -y 'redis-server=5:7.0.15-*' 'redis-tools=5:7.0.15-*'";

/// The exact command that installs MariaDB on Debian.
pub const MARIADB_INSTALL_HINT: &str =
    "sudo apt-get update && sudo apt-get install -y 'mariadb-server=1:10.11.*' 'mariadb-client=1:10.11.*'";

/// Finds an executable on PATH (and in the sbin folders, where Debian puts
/// server binaries).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn redis_binaries() -> io::Result<(PathBuf, PathBuf)> {
    match (which("redis-server"), which("redis-cli")) {
        (Some(s), Some(c)) => Ok((s, c)),
        _ => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("redis-server/redis-cli not found on PATH; install them with: {REDIS_INSTALL_HINT}  (or run `cargo xtask test`, which installs them)"),
        )),
    }
}

/// A pseudo-random number; good enough to spread ports.
fn random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

fn port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A free port for a plain server.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A free port below 55000 whose `port + 10000` (the cluster bus) is free too.
pub fn free_cluster_port() -> u16 {
    loop {
        let port = 20_000 + (random() % 25_000) as u16;
        if port_free(port) && port_free(port + 10_000) {
            return port;
        }
    }
}

/// A child process (a server, or the app itself): killed when dropped, so
/// nothing a test or `cargo xtask dev` starts outlives it.
#[derive(Default)]
pub struct Process {
    child: Option<Child>,
}

impl Process {
    /// Spawns `cmd` (stdin closed) and waits at most `timeout` until
    /// `ready()` holds. When the process exits first, the error quotes the
    /// tail of `log`, where the caller pointed its output.
    pub fn start(
        cmd: &mut Command,
        log: &Path,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> io::Result<Process> {
        let name = Path::new(cmd.get_program())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut process = Process {
            child: Some(cmd.stdin(Stdio::null()).spawn()?),
        };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = process.try_wait() {
                process.child = None;
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(3).collect();
                return Err(io::Error::other(format!(
                    "{name} exited ({status}): {}",
                    tail.join(" | ")
                )));
            }
            if ready() {
                return Ok(process);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        process.kill();
        Err(io::Error::other(format!(
            "{name} did not become ready within {timeout:?} (see {})",
            log.display()
        )))
    }

    /// How it exited, if it has.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Kills at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`. Returns
    /// its exit status when it stopped by itself in time.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_port_free(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !port_free(port) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// TLS files for a server: its certificate and key, and the CA that signed it.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    pub tls: Option<TlsFiles>,
    /// Append-only file with fsync on every write, so nothing acknowledged
    /// is lost when the server is killed.
    pub durable: bool,
}

/// One `redis-server` process.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    process: Process,
    tls: Option<TlsFiles>,
    cli: PathBuf,
    server: PathBuf,
}

impl RedisServer {
    /// Starts a standalone server in `dir` on a free port.
    pub fn start(dir: &Path, options: &RedisOptions) -> io::Result<RedisServer> {
        Self::start_inner(dir, options, false)
    }

    fn start_inner(dir: &Path, options: &RedisOptions, cluster: bool) -> io::Result<RedisServer> {
        let (server, cli) = redis_binaries()?;
        std::fs::create_dir_all(dir)?;
        let mut last_err = None;
        for _ in 0..5 {
            let port = if cluster {
                free_cluster_port()
            } else {
                free_port()
            };
            let mut args: Vec<String> = vec![
                "--bind".into(),
                "127.0.0.1".into(),
                "--dir".into(),
                dir.display().to_string(),
                "--save".into(),
                String::new(),
                "--logfile".into(),
                dir.join("redis.log").display().to_string(),
                "--daemonize".into(),
                "no".into(),
                "--protected-mode".into(),
                "no".into(),
            ];
            if options.durable {
                args.extend(["--appendonly", "yes", "--appendfsync", "always"].map(String::from));
            } else {
                args.extend(["--appendonly", "no"].map(String::from));
            }
            match &options.tls {
                Some(tls) => args.extend([
                    "--port".to_string(),
                    "0".to_string(),
                    "--tls-port".to_string(),
                    port.to_string(),
                    "--tls-cert-file".to_string(),
                    tls.cert.display().to_string(),
                    "--tls-key-file".to_string(),
                    tls.key.display().to_string(),
                    "--tls-ca-cert-file".to_string(),
                    tls.ca.display().to_string(),
                    "--tls-auth-clients".to_string(),
                    "no".to_string(),
                ]),
                None => args.extend(["--port".to_string(), port.to_string()]),
            }
            if cluster {
                args.extend([
                    "--cluster-enabled".to_string(),
                    "yes".to_string(),
                    "--cluster-config-file".to_string(),
                    dir.join("nodes.conf").display().to_string(),
                    "--cluster-node-timeout".to_string(),
                    "3000".to_string(),
                ]);
                if options.tls.is_some() {
                    args.extend(
                        ["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from),
                    );
                }
            }
            let mut s = RedisServer {
                port,
                dir: dir.to_path_buf(),
                args,
                process: Process::default(),
                tls: options.tls.clone(),
                cli: cli.clone(),
                server: server.clone(),
            };
            match s.spawn() {
                Ok(()) => return Ok(s),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    fn spawn(&mut self) -> io::Result<()> {
        let mut cmd = Command::new(&self.server);
        cmd.args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let log = self.dir.join("redis.log");
        let ready = || {
            self.cli(&["PING"])
                .map(|o| o.contains("PONG"))
                .unwrap_or(false)
        };
        self.process = Process::start(&mut cmd, &log, Duration::from_secs(10), ready)
            .map_err(|e| io::Error::other(format!("port {}: {e}", self.port)))?;
        Ok(())
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> io::Result<String> {
        let mut cmd = Command::new(&self.cli);
        cmd.arg("-h")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.port.to_string());
        if let Some(tls) = &self.tls {
            cmd.arg("--tls").arg("--cacert").arg(&tls.ca);
        }
        let out = cmd.args(args).stdin(Stdio::null()).output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr))
    }

    pub fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("rediss://localhost:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.id()
    }

    /// Kills the server and deletes its data (a load run's redo log alone
    /// is 256 MiB); `error.log` beside it stays.
    pub fn discard(mut self) -> io::Result<()> {
        self.kill();
        std::fs::remove_dir_all(self.dir.join("data"))
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Asks the server to shut down cleanly and waits for it.
    pub fn stop(&mut self) {
        let _ = self.process.stop(Duration::from_secs(5));
    }

    /// Starts the server again on the same port with the same data.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        wait_port_free(self.port, Duration::from_secs(5));
        self.spawn()
    }
}

/// A Redis Cluster of `masters` nodes, no replicas.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(dir: &Path, masters: usize, options: &RedisOptions) -> io::Result<RedisCluster> {
        let mut nodes = Vec::new();
        for i in 0..masters {
            nodes.push(RedisServer::start_inner(
                &dir.join(format!("node{i}")),
                options,
                true,
            )?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = nodes[0].cli(&args)?;
        if !out.contains("[OK] All 16384 slots covered") {
            return Err(io::Error::other(format!("cluster create failed: {out}")));
        }
        let cluster = RedisCluster { nodes };
        cluster.wait_ok(Duration::from_secs(20))?;
        Ok(cluster)
    }

    /// Waits until every node reports `cluster_state:ok`.
    pub fn wait_ok(&self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = self.nodes.iter().all(|n| {
                n.cli(&["CLUSTER", "INFO"])
                    .map(|o| o.contains("cluster_state:ok"))
                    .unwrap_or(false)
            });
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("cluster did not reach cluster_state:ok"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Node URLs, comma-separated, as REDIS_CLUSTER_NODES takes them.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One MariaDB server (`mariadbd`) with its own fresh data folder, on a free
/// port, root without a password on loopback. SQL is run through the
/// `mariadb` client.
pub struct MariaDb {
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
    process: Process,
    server: PathBuf,
    client: PathBuf,
}

/// How big a [`MariaDb`]'s redo log and buffer pool are.
#[derive(Debug, Clone, Copy)]
pub struct MariaDbSizes {
    pub redo_log_mib: u32,
    pub buffer_pool_mib: u32,
}

impl MariaDbSizes {
    /// Small, for the many servers of the test suite.
    pub const TESTS: MariaDbSizes = MariaDbSizes {
        redo_log_mib: 8,
        buffer_pool_mib: 64,
    };
    /// For figures: with an 8 MiB redo log, a few seconds of confirms fill
    /// it and every write waits for a checkpoint (a server in production,
    /// Aurora above all, never stalls that way).
    pub const LOAD: MariaDbSizes = MariaDbSizes {
        redo_log_mib: 256,
        buffer_pool_mib: 256,
    };

    /// [`LOAD`](Self::LOAD) for figures, [`TESTS`](Self::TESTS) for the
    /// suite's `--quick` shape checks.
    pub fn for_load(quick: bool) -> MariaDbSizes {
        if quick {
            Self::TESTS
        } else {
            Self::LOAD
        }
    }
}

impl MariaDb {
    pub fn start(dir: &Path) -> io::Result<MariaDb> {
        Self::start_sized(dir, MariaDbSizes::TESTS)
    }

    pub fn start_sized(dir: &Path, sizes: MariaDbSizes) -> io::Result<MariaDb> {
        let missing = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("mariadbd/mariadb-install-db not found; install them with: {MARIADB_INSTALL_HINT}  (or run `cargo xtask test`, which installs them)"),
            )
        };
        let server = which("mariadbd").ok_or_else(missing)?;
        let install = which("mariadb-install-db").ok_or_else(missing)?;
        let client = which("mariadb").ok_or_else(missing)?;
        std::fs::create_dir_all(dir)?;
        let data = dir.join("data");
        let user = if cfg!(unix) && std::env::var("USER").as_deref() != Ok("root") {
            std::env::var("USER").unwrap_or_else(|_| "root".into())
        } else {
            "root".into()
        };
        // Its own temporary folder: servers bootstrapping at once in /tmp
        // trip over each other's temporary tables.
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        let out = Command::new(install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--user={user}"))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg("--innodb-log-file-size=8M")
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "mariadb-install-db failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let mut last_err = None;
        for _ in 0..5 {
            let port = free_port();
            let args = vec![
                "--no-defaults".to_string(),
                format!("--datadir={}", data.display()),
                format!("--tmpdir={}", tmp.display()),
                format!("--user={user}"),
                format!("--port={port}"),
                "--bind-address=127.0.0.1".to_string(),
                format!("--socket={}", dir.join("mysqld.sock").display()),
                format!("--pid-file={}", dir.join("mysqld.pid").display()),
                format!("--log-error={}", dir.join("error.log").display()),
                "--skip-name-resolve".to_string(),
                "--skip-log-bin".to_string(),
                format!("--innodb-log-file-size={}M", sizes.redo_log_mib),
                format!("--innodb-buffer-pool-size={}M", sizes.buffer_pool_mib),
                "--character-set-server=utf8mb4".to_string(),
                "--collation-server=utf8mb4_unicode_ci".to_string(),
                // Per-user statement counts, so tests can see which pool ran
                // a query.
                "--userstat=1".to_string(),
                "--max-connections=500".to_string(),
            ];
            let mut db = MariaDb {
                port,
                dir: dir.to_path_buf(),
                args,
                process: Process::default(),
                server: server.clone(),
                client: client.clone(),
            };
            match db.spawn() {
                Ok(()) => return Ok(db),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("mariadbd did not start")))
    }

    fn spawn(&mut self) -> io::Result<()> {
        let mut cmd = Command::new(&self.server);
        cmd.args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let log = self.dir.join("error.log");
        let ready = || self.sql("SELECT 1").is_ok();
        self.process = Process::start(&mut cmd, &log, Duration::from_secs(30), ready)
            .map_err(|e| io::Error::other(format!("port {}: {e}", self.port)))?;
        Ok(())
    }

    /// Runs SQL as root; returns the rows, tab-separated, without headers.
    pub fn sql(&self, sql: &str) -> io::Result<String> {
        let out = Command::new(&self.client)
            .arg("--no-defaults")
            .arg("--protocol=TCP")
            .arg("-h127.0.0.1")
            .arg(format!("-P{}", self.port))
            .arg("-uroot")
            .arg("--batch")
            .arg("--skip-column-names")
            .arg("-e")
            .arg(sql)
            .stdin(Stdio::null())
            .output()?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(io::Error::other(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
        }
    }

    /// A database and the three users the product expects: `migrator`
    /// (schema changes), `app` (reads and writes, no DDL) and `reader`
    /// (reads only). Returns their URLs: (migrator, app, reader).
    pub fn create_database(&self, name: &str) -> io::Result<(String, String, String)> {
        self.sql(&format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\
             CREATE USER IF NOT EXISTS 'migrator'@'%' IDENTIFIED BY 'migrator-pw';\
             CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'app-pw';\
             CREATE USER IF NOT EXISTS 'reader'@'%' IDENTIFIED BY 'reader-pw';\
             GRANT ALL PRIVILEGES ON `{name}`.* TO 'migrator'@'%';\
             GRANT SELECT, INSERT, UPDATE, DELETE ON `{name}`.* TO 'app'@'%';\
             GRANT SELECT ON `{name}`.* TO 'reader'@'%';"
        ))?;
        let url = |user: &str| format!("mysql://{user}:{user}-pw@127.0.0.1:{}/{name}", self.port);
        Ok((url("migrator"), url("app"), url("reader")))
    }

    /// Kills the server and deletes its data (a load run's redo log alone
    /// is 256 MiB); `error.log` beside it stays.
    pub fn discard(mut self) -> io::Result<()> {
        self.kill();
        std::fs::remove_dir_all(self.dir.join("data"))
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Asks the server to shut down cleanly and waits for it.
    pub fn stop(&mut self) {
        let _ = self.process.stop(Duration::from_secs(20));
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        wait_port_free(self.port, Duration::from_secs(10));
        self.spawn()
    }
}

/// A minimal HTTP/1.1 client (one request per connection), enough to check
/// a local service without pulling an HTTP stack into xtask. A body is sent
/// as JSON unless `headers` name another Content-Type.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    let typed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    if !body.is_empty() && !typed {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other("no HTTP status line"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ports_leave_room_for_the_bus() {
        for _ in 0..20 {
            let p = free_cluster_port();
            assert!((20_000..45_000).contains(&p));
        }
    }
}
