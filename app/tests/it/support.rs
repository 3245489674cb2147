//! Test harness: real Redis (from `devstack`), the app in-process or as
//! separate processes, keys, and small HTTP/WebSocket helpers.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use admission::{Application, Config};
use clap::Parser;
use devstack::{MariaDb, RedisCluster, RedisOptions, RedisServer, TlsFiles};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

pub const ADMIN: &str = "test-admin-token-0123456789";

/// Keys a test needs: the admission-token key and a site's identity key.
pub struct Keys {
    pub dir: TempDir,
    pub token_spec: String,
    pub identity_spec: String,
    pub identity_private: String,
}

pub fn keys() -> Keys {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token.pem");
    let identity = dir.path().join("identity.pem");
    admission::token::write_key_pair(&token).expect("token key");
    admission::token::write_key_pair(&identity).expect("identity key");
    Keys {
        token_spec: format!("t1:{}", token.display()),
        identity_spec: format!("site:{}.pub", identity.display()),
        identity_private: std::fs::read_to_string(&identity).expect("identity key"),
        dir,
    }
}

/// A throwaway CA and a server certificate for localhost / 127.0.0.1.
pub fn tls_files(dir: &Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "admission test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let files = TlsFiles {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
        ca: dir.join("ca.crt"),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    std::fs::write(&files.ca, ca.pem()).unwrap();
    files
}

/// Redis for one test: a standalone server or a 3-master cluster.
pub enum Redis {
    Standalone(RedisServer),
    Cluster(RedisCluster),
}

pub struct RedisEnv {
    pub dir: TempDir,
    pub redis: Redis,
}

impl RedisEnv {
    pub fn standalone() -> RedisEnv {
        Self::standalone_with(RedisOptions::default())
    }

    pub fn standalone_with(options: RedisOptions) -> RedisEnv {
        let dir = tempfile::tempdir().unwrap();
        let server = RedisServer::start(&dir.path().join("redis"), &options).expect("redis-server");
        RedisEnv {
            dir,
            redis: Redis::Standalone(server),
        }
    }

    pub fn cluster() -> RedisEnv {
        Self::cluster_with(RedisOptions::default())
    }

    pub fn cluster_with(options: RedisOptions) -> RedisEnv {
        let dir = tempfile::tempdir().unwrap();
        let cluster =
            RedisCluster::start(&dir.path().join("cluster"), 3, &options).expect("redis cluster");
        RedisEnv {
            dir,
            redis: Redis::Cluster(cluster),
        }
    }

    /// The environment variable and value that point the app at it.
    pub fn env(&self) -> (&'static str, String) {
        match &self.redis {
            Redis::Standalone(s) => ("REDIS_URL", s.url()),
            Redis::Cluster(c) => ("REDIS_CLUSTER_NODES", c.urls()),
        }
    }

    pub fn server(&mut self) -> &mut RedisServer {
        match &mut self.redis {
            Redis::Standalone(s) => s,
            Redis::Cluster(c) => &mut c.nodes[0],
        }
    }

    /// Runs redis-cli against the node that holds `key`'s slot (`-c`
    /// follows redirects).
    pub fn cli(&self, args: &[&str]) -> String {
        match &self.redis {
            Redis::Standalone(s) => s.cli(args).unwrap(),
            Redis::Cluster(c) => {
                let mut full = vec!["-c"];
                full.extend_from_slice(args);
                c.nodes[0].cli(&full).unwrap()
            }
        }
    }
}

/// Extra settings for an app.
#[derive(Default, Clone)]
pub struct AppOptions {
    pub extra: Vec<(String, String)>,
}

impl AppOptions {
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.extra.push((key.to_string(), value.to_string()));
        self
    }
}

fn env_to_flag(key: &str) -> String {
    format!("--{}", key.to_lowercase().replace('_', "-"))
}

/// The app, in this process, on a free port.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(redis: &RedisEnv, keys: &Keys, options: AppOptions) -> TestApp {
        let (var, value) = redis.env();
        Self::spawn_at(var, value, keys, options).await
    }

    /// The app with Redis at `value` (of `var`: REDIS_URL or
    /// REDIS_CLUSTER_NODES), e.g. behind a chaos proxy.
    pub async fn spawn_at(var: &str, value: String, keys: &Keys, options: AppOptions) -> TestApp {
        let mut args = vec![
            "admission".to_string(),
            "--listen-addr".into(),
            "127.0.0.1:0".into(),
            env_to_flag(var),
            value,
            "--admin-token".into(),
            ADMIN.into(),
            "--token-keys".into(),
            keys.token_spec.clone(),
            "--identity-keys".into(),
            keys.identity_spec.clone(),
            "--admission-tick-ms".into(),
            "50".into(),
        ];
        for (k, v) in &options.extra {
            args.push(env_to_flag(k));
            args.push(v.clone());
        }
        let config = Config::try_parse_from(args).expect("test config parses");
        let app = Application::build(config).await.expect("app builds");
        let addr = app.local_addr();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        let test_app = TestApp {
            addr,
            base: format!("http://{addr}"),
            http: client(),
            stop: Some(tx),
            task: Some(task),
        };
        test_app.wait_ready().await;
        test_app
    }

    async fn wait_ready(&self) {
        wait_ready(&self.http, &self.base).await;
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(12), task).await;
        }
    }

    pub fn api(&self) -> Api {
        Api::new(vec![self.base.clone()])
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(512)
        .build()
        .unwrap()
}

/// Waits until the process answers at all (it may not be ready).
pub async fn wait_live(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("{base}/health/live"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "{base} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/health/ready")).send().await {
            if r.status() == StatusCode::OK {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{base} did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The app as its own process (the real binary), for multi-replica tests.
pub struct AppProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub base: String,
    pub log: PathBuf,
}

impl AppProcess {
    pub async fn spawn(
        redis: &RedisEnv,
        keys: &Keys,
        replica: &str,
        options: AppOptions,
    ) -> AppProcess {
        let process = Self::start(redis, keys, replica, options);
        wait_ready(&client(), &process.base).await;
        process
    }

    pub fn start(redis: &RedisEnv, keys: &Keys, replica: &str, options: AppOptions) -> AppProcess {
        let port = devstack::free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let (var, value) = redis.env();
        let log = redis.dir.path().join(format!("app-{replica}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_admission"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LISTEN_ADDR", addr.to_string())
            .env(var, value)
            .env("ADMIN_TOKEN", ADMIN)
            .env("TOKEN_KEYS", &keys.token_spec)
            .env("IDENTITY_KEYS", &keys.identity_spec)
            .env("REPLICA_ID", replica)
            .env("ADMISSION_TICK_MS", "50")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        for (k, v) in &options.extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("admission binary starts");
        AppProcess {
            child,
            addr,
            base: format!("http://{addr}"),
            log,
        }
    }

    pub fn api(&self) -> Api {
        Api::new(vec![self.base.clone()])
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits for the process to exit; `None` if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Small typed calls on the API. With several replicas, each call goes to
/// the next one in turn.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    bases: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Api {
    pub fn new(bases: Vec<String>) -> Api {
        Api {
            http: client(),
            bases: Arc::new(bases),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The base URL of the next replica.
    pub fn base(&self) -> String {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.bases[i % self.bases.len()].clone()
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let r = req.send().await.expect("request sent");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn configure(&self, event: &str, config: Value) -> Reply {
        let r = self
            .send(
                self.http
                    .put(format!("{}/api/v1/admin/events/{event}/queue", self.base()))
                    .bearer_auth(ADMIN)
                    .json(&config),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "configure {event}: {}", r.body);
        r
    }

    pub async fn join(&self, event: &str, client_id: &str) -> Reply {
        self.send(
            self.http
                .post(format!("{}/api/v1/events/{event}/queue", self.base()))
                .json(&json!({ "client_id": client_id })),
        )
        .await
    }

    /// Joins and returns the ticket (admitted or queued).
    pub async fn join_ticket(&self, event: &str, client_id: &str) -> String {
        let r = self.join(event, client_id).await;
        assert!(r.status.is_success(), "join {event}: {}", r.body);
        r.body["ticket"].as_str().expect("ticket").to_string()
    }

    pub async fn status(&self, event: &str, ticket: &str) -> Reply {
        self.send(self.http.get(format!(
            "{}/api/v1/events/{event}/queue/{ticket}",
            self.base()
        )))
        .await
    }

    pub async fn heartbeat(&self, event: &str, ticket: &str) -> Reply {
        self.send(self.http.post(format!(
            "{}/api/v1/events/{event}/queue/{ticket}/heartbeat",
            self.base()
        )))
        .await
    }

    pub async fn leave(&self, event: &str, ticket: &str) -> Reply {
        self.send(self.http.delete(format!(
            "{}/api/v1/events/{event}/queue/{ticket}",
            self.base()
        )))
        .await
    }

    pub async fn stats(&self, event: &str) -> Value {
        let r = self
            .send(
                self.http
                    .get(format!("{}/api/v1/events/{event}/queue", self.base())),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "stats: {}", r.body);
        r.body
    }

    /// Polls a ticket until `pred` holds on its status body.
    pub async fn wait_status(
        &self,
        event: &str,
        ticket: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.status(event, ticket).await;
            if pred(&r.body) {
                return r.body;
            }
            assert!(
                Instant::now() < deadline,
                "timed out; last status {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn ws_url(&self, event: &str, ticket: &str) -> String {
        format!(
            "{}/api/v1/events/{event}/queue/{ticket}/ws",
            self.base().replacen("http://", "ws://", 1)
        )
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn ws_connect(api: &Api, event: &str, ticket: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(api.ws_url(event, ticket))
        .await
        .expect("websocket connects");
    ws
}

/// The next JSON text message (skipping pings), or `None` on close/timeout.
pub async fn ws_next(ws: &mut Ws, timeout: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Reads messages until one of `kind` arrives.
pub async fn ws_until(ws: &mut Ws, kind: &str, timeout: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = ws_next(ws, left).await?;
        if msg["type"] == kind {
            return Some(msg);
        }
    }
}

/// Every ticket record of an event, read from Redis directly:
/// ticket -> (state, seq, admitted_ms).
pub fn ticket_records(
    redis: &RedisEnv,
    prefix: &str,
    event: &str,
) -> Vec<(String, char, u64, Option<u64>)> {
    let key = format!("{prefix}wr:{{{event}}}:tickets");
    let lines: Vec<String> = redis
        .cli(&["HGETALL", &key])
        .lines()
        .map(str::to_string)
        .collect();
    lines
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| {
            let parts: Vec<&str> = c[1].splitn(5, ',').collect();
            (
                c[0].clone(),
                parts[0].chars().next().unwrap_or('?'),
                parts[1].parse().unwrap_or(0),
                parts[2].parse().ok(),
            )
        })
        .collect()
}

/// The largest number of admissions inside any window of `window_ms`.
pub fn max_in_window(mut times: Vec<u64>, window_ms: u64) -> usize {
    times.sort_unstable();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= window_ms {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

pub fn quick() -> bool {
    std::env::var("ADMISSION_QUICK_TESTS").is_ok_and(|v| !v.is_empty())
}

/// Redis and the app as a test runs them: standalone Redis with the app
/// in-process, or a 3-master cluster with three app processes (each call
/// of the stack's `api()` then goes to the next replica).
pub struct Stack {
    pub redis: RedisEnv,
    pub keys: Keys,
    app: Option<TestApp>,
    replicas: Vec<AppProcess>,
}

impl Stack {
    pub async fn standalone() -> Stack {
        Self::standalone_with(AppOptions::default()).await
    }

    pub async fn standalone_with(options: AppOptions) -> Stack {
        let redis = RedisEnv::standalone();
        let keys = keys();
        let app = TestApp::spawn(&redis, &keys, options).await;
        Stack {
            redis,
            keys,
            app: Some(app),
            replicas: Vec::new(),
        }
    }

    pub async fn cluster() -> Stack {
        Self::cluster_with(AppOptions::default()).await
    }

    pub async fn cluster_with(options: AppOptions) -> Stack {
        let redis = RedisEnv::cluster();
        let keys = keys();
        let replicas = (0..3)
            .map(|i| AppProcess::start(&redis, &keys, &format!("replica-{i}"), options.clone()))
            .collect::<Vec<_>>();
        for r in &replicas {
            wait_ready(&client(), &r.base).await;
        }
        Stack {
            redis,
            keys,
            app: None,
            replicas,
        }
    }

    pub fn api(&self) -> Api {
        match &self.app {
            Some(app) => app.api(),
            None => Api::new(self.replicas.iter().map(|r| r.base.clone()).collect()),
        }
    }
}

/// Runs an `async fn(Stack)` test twice: on standalone Redis with the app
/// in-process, and on a 3-master cluster with three app processes.
#[macro_export]
macro_rules! on_standalone_and_cluster {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn standalone() {
                    super::$name($crate::support::Stack::standalone().await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn cluster() {
                    super::$name($crate::support::Stack::cluster().await).await
                }
            }
        )*
    };
}

/// MariaDB for one test: a fresh server, one database with the schema
/// migrated, and the app's two users (`app` writes, `reader` reads).
pub struct Db {
    pub server: MariaDb,
    pub migrator_url: String,
    pub app_url: String,
    pub reader_url: String,
    _dir: TempDir,
}

impl Db {
    pub async fn start() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let server = MariaDb::start(&dir.path().join("mariadb")).expect("mariadbd");
        let (migrator_url, app_url, reader_url) = server.create_database("tickets").unwrap();
        admission::booking::db::migrate(&migrator_url, Duration::from_secs(10))
            .await
            .expect("migrations apply");
        Db {
            server,
            migrator_url,
            app_url,
            reader_url,
            _dir: dir,
        }
    }

    /// App settings that point at this database (writer and reader users).
    pub fn options(&self) -> AppOptions {
        AppOptions::default()
            .with("DATABASE_URL", &self.app_url)
            .with("DATABASE_READ_URL", &self.reader_url)
    }

    /// One value from SQL run as root on the test database.
    pub fn sql(&self, sql: &str) -> String {
        self.server
            .sql(&format!("USE tickets; {sql}"))
            .unwrap()
            .trim()
            .to_string()
    }
}

/// Redis, MariaDB and the app in-process, for booking tests.
pub struct BookingStack {
    pub redis: RedisEnv,
    pub db: Db,
    pub keys: Keys,
    pub app: TestApp,
}

impl BookingStack {
    pub async fn start() -> BookingStack {
        Self::start_with(AppOptions::default()).await
    }

    pub async fn start_with(extra: AppOptions) -> BookingStack {
        let redis = RedisEnv::standalone();
        let db = Db::start().await;
        let keys = keys();
        let mut options = db.options();
        options.extra.extend(extra.extra);
        let app = TestApp::spawn(&redis, &keys, options).await;
        BookingStack {
            redis,
            db,
            keys,
            app,
        }
    }

    pub fn api(&self) -> Api {
        self.app.api()
    }
}

impl Api {
    /// Creates an event through the admin API; its sale is open.
    pub async fn create_event(&self, id: &str, seat_map: Value) -> Reply {
        self.create_event_with(id, seat_map, json!({})).await
    }

    /// The same, with `extra` fields in the body (e.g. `time_zone`).
    pub async fn create_event_with(&self, id: &str, seat_map: Value, extra: Value) -> Reply {
        let mut body = json!({
            "id": id, "name": format!("Event {id}"), "venue": "Hall 1",
            "starts_at": "2030-01-01T20:00:00Z",
            "sale_opens_at": "2020-01-01T00:00:00Z",
            "seat_map": seat_map,
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let r = self
            .send(
                self.http
                    .post(format!("{}/api/v1/admin/events", self.base()))
                    .bearer_auth(ADMIN)
                    .json(&body),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "create {id}: {}", r.body);
        r
    }

    /// Joins and expects to be admitted; returns (ticket, token).
    pub async fn admitted(&self, event: &str, client_id: &str) -> (String, String) {
        let r = self.join(event, client_id).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        (
            r.body["ticket"].as_str().unwrap().to_string(),
            r.body["token"].as_str().unwrap().to_string(),
        )
    }

    /// An admitted fan (`client_id`) who holds `seat`, as the test expects
    /// (201); returns (token, hold id).
    pub async fn held(&self, event: &str, client_id: &str, seat: &str) -> (String, String) {
        let (_, token) = self.admitted(event, client_id).await;
        let r = self.hold(event, &token, json!({"seat_ids": [seat]})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let hold_id = r.body["hold_id"].as_str().unwrap().to_string();
        (token, hold_id)
    }

    pub async fn hold(&self, event: &str, token: &str, body: Value) -> Reply {
        self.send(
            self.http
                .post(format!("{}/api/v1/events/{event}/holds", self.base()))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    pub async fn confirm(&self, hold_id: &str, token: &str, key: Option<&str>) -> Reply {
        let mut req = self
            .http
            .post(format!("{}/api/v1/holds/{hold_id}/confirm", self.base()))
            .bearer_auth(token);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        self.send(req).await
    }

    pub async fn seat_status(&self, event: &str) -> std::collections::HashMap<String, String> {
        let r = self
            .send(
                self.http
                    .get(format!("{}/api/v1/events/{event}/seats", self.base())),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["seats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["seat_id"].as_str().unwrap().to_string(),
                    s["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl Api {
    /// The Prometheus text of the next replica.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base()))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .unwrap_or_default()
    }

    /// Polls `/metrics` until `pred` holds; returns the last text.
    pub async fn wait_metrics(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.metrics().await;
            if pred(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "timed out; metrics:\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The value of one series in Prometheus text (`name{labels}` exactly as
/// rendered, or a bare name), if present.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l[series.len()..].trim().parse().ok())
}
