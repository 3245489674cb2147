//! A whole sale, end to end, then `ops audit` on it: three app processes
//! (the real `admission` binary) on one redis-server, their event log on a
//! 2-shard moto stream behind a fault proxy that fails some PutRecords
//! records and some whole calls, and three events at once:
//!
//! - `fifo`: 10,000 fans, every tenth leaving at once; the stream's first
//!   shard is split a third of the way in, and one replica is killed -9
//!   halfway (its unacknowledged outbox entries are claimed by the others);
//! - `drawn`: 1,500 fans in the pre-queue, drawn at the opening, then 500
//!   more;
//! - `random`: 2,000 fans waiting, then admitted in random order.
//!
//! The audit must find every join and admission, no duplicate, nothing
//! lost, no inversion against the order (or the draw), Kendall's tau 1.0
//! in fifo and near 0 in random; and the proxy must show that the faults
//! happened.
//!
//! moto's Kinesis loses records when two writes to one shard race (the
//! real service never does): the proxy forwards one call at a time, and
//! the test's own SplitShard goes through it too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::Client;
use devstack::{http_request, AwsProxy, AwsReply, Moto, RedisOptions, RedisServer};
use serde_json::{json, Value};

const STREAM: &str = "sale-events";
const REGION: &str = "us-east-1";
const ADMIN: &str = "sale-test-admin-token-0123456789";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn work_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("ops-sale")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The app's binary, beside this crate's (`cargo test --workspace` builds
/// both).
fn admission_binary() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_ops")).with_file_name("admission");
    assert!(
        bin.is_file(),
        "{} is missing: run the workspace's tests (`cargo xtask test`), or `cargo build --workspace --bin admission` first",
        bin.display()
    );
    bin
}

fn kinesis(endpoint: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .http_client(http)
        .build();
    Client::from_conf(conf)
}

/// The AWS environment of a child process: test credentials toward
/// `endpoint`, nothing from this machine's AWS setup.
fn aws_env(cmd: &mut Command, endpoint: &str, dir: &Path) {
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_DEFAULT_REGION");
}

/// One app process.
struct Replica {
    name: String,
    addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Replica {
    fn start(dir: &Path, name: &str, redis: &str, aws: &str) -> Replica {
        let binary = admission_binary();
        let key = dir.join(format!("{name}.pem"));
        let made = Command::new(&binary)
            .arg("keygen")
            .arg("--out")
            .arg(&key)
            .output()
            .unwrap();
        assert!(made.status.success(), "keygen: {made:?}");
        let addr: SocketAddr = format!("127.0.0.1:{}", devstack::free_port())
            .parse()
            .unwrap();
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(&binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LISTEN_ADDR", addr.to_string())
            .env("REDIS_URL", redis)
            .env("ADMIN_TOKEN", ADMIN)
            .env("TOKEN_KEYS", format!("k:{}", key.display()))
            .env("REPLICA_ID", name)
            .env("ADMISSION_TICK_MS", "50")
            .env("KINESIS_STREAM", STREAM)
            .env("EVENT_HASH_KEY", "sale-test-event-hash-key-0123")
            .env("EVENT_LOG_CLAIM_IDLE_MS", "2000")
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        aws_env(&mut cmd, aws, dir);
        let child = cmd.spawn().expect("the admission binary starts");
        let replica = Replica {
            name: name.into(),
            addr,
            child,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(
            http_request(addr, "GET", "/health/ready", &[], None),
            Ok((200, _))
        ) {
            assert!(
                Instant::now() < deadline,
                "{name} did not become ready: {}",
                replica.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        replica
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = http_request(self.addr, "GET", "/metrics", &[], None).ok()?;
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l[series.len()..].trim().parse().ok())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

fn admin(addr: SocketAddr, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let auth = format!("Bearer {ADMIN}");
    let (status, text) = http_request(
        addr,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(&body.to_string()),
    )
    .unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn configure(addr: SocketAddr, event: &str, config: Value) {
    let (status, body) = admin(
        addr,
        "PUT",
        &format!("/api/v1/admin/events/{event}/queue"),
        &config,
    );
    assert_eq!(status, 200, "configure {event}: {body}");
}

fn stats(addr: SocketAddr, event: &str) -> Value {
    let (status, text) = http_request(
        addr,
        "GET",
        &format!("/api/v1/events/{event}/queue"),
        &[],
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Joins `count` fans `tag-<i>` to `event` from 8 threads, each join to
/// the next live replica (another one when a replica does not answer);
/// `every` is called with the number joined so far after each join, and a
/// fan `i` with `leave(i)` leaves right after joining.
fn join_all(
    replicas: &[SocketAddr],
    alive: &[Arc<AtomicBool>],
    event: &str,
    tag: &str,
    count: usize,
    leave: impl Fn(usize) -> bool + Sync,
    every: impl Fn(usize) + Sync,
) {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let body = format!(r#"{{"client_id":"{tag}-{i}"}}"#);
                let mut attempt = 0;
                let ticket = loop {
                    let r = (i + attempt) % replicas.len();
                    attempt += 1;
                    assert!(attempt < 50, "fan {tag}-{i} could not join");
                    if !alive[r].load(Ordering::Relaxed) {
                        continue;
                    }
                    let path = format!("/api/v1/events/{event}/queue");
                    match http_request(replicas[r], "POST", &path, &[], Some(&body)) {
                        Ok((200 | 202, text)) => {
                            let v: Value = serde_json::from_str(&text).unwrap();
                            break (r, v["ticket"].as_str().unwrap().to_string());
                        }
                        // A replica being killed, or Redis busy: the same
                        // identity joins again elsewhere (same place).
                        Ok((status, text)) => {
                            assert!(status == 503 || status == 500, "{status} {text}");
                        }
                        Err(_) => {}
                    }
                };
                if leave(i) {
                    let (r, ticket) = &ticket;
                    let path = format!("/api/v1/events/{event}/queue/{ticket}");
                    let mut left = false;
                    for k in 0..replicas.len() {
                        let r = (r + k) % replicas.len();
                        if alive[r].load(Ordering::Relaxed)
                            && matches!(
                                http_request(replicas[r], "DELETE", &path, &[], None),
                                Ok((204, _))
                            )
                        {
                            left = true;
                            break;
                        }
                    }
                    assert!(left, "fan {tag}-{i} could not leave");
                }
                every(done.fetch_add(1, Ordering::Relaxed) + 1);
            });
        }
    });
}

/// Waits until `event` has nobody waiting and its admissions stopped
/// growing; returns its stats.
fn settle(addr: SocketAddr, event: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    let mut last = Value::Null;
    loop {
        let now = stats(addr, event);
        if now["queued"] == 0 && now["admitted_total"] == last["admitted_total"] {
            return now;
        }
        assert!(Instant::now() < deadline, "{event} did not settle: {now}");
        last = now;
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs `ops audit ... --json` against moto and Redis; returns its exit
/// code and the JSON object.
fn audit(moto: &str, redis: &str, event: &str, dir: &Path) -> (i32, Value) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ops"));
    cmd.args([
        "audit", "--stream", STREAM, "--event", event, "--redis", redis, "--json",
    ])
    .stdin(Stdio::null());
    aws_env(&mut cmd, moto, dir);
    let out = cmd.output().expect("ops runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "--- audit {event}: exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("audit {event}: {e}: {stdout}"));
    (out.status.code().unwrap_or(-1), json)
}

/// Splits the stream's first shard in the middle of its hash range.
async fn split_first_shard(client: &Client) {
    let shards = client
        .list_shards()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    let first = &shards.shards()[0];
    let range = first.hash_key_range().unwrap();
    let lo: u128 = range.starting_hash_key().parse().unwrap();
    let hi: u128 = range.ending_hash_key().parse().unwrap();
    client
        .split_shard()
        .stream_name(STREAM)
        .shard_to_split(first.shard_id())
        .new_starting_hash_key((lo + (hi - lo) / 2).to_string())
        .send()
        .await
        .expect("split the shard");
}

#[test]
fn three_replicas_a_killed_one_and_faults_lose_nothing_and_keep_the_order() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = work_dir();
    let moto = Moto::start_pinned(&root(), &dir.join("moto")).expect("moto starts");
    let direct = kinesis(&moto.endpoint());
    rt.block_on(
        direct
            .create_stream()
            .stream_name(STREAM)
            .shard_count(2)
            .send(),
    )
    .unwrap();
    // Some PutRecords calls fail in part (every other record of the call
    // is refused as throttled), some fail whole.
    let upstream: SocketAddr = format!("127.0.0.1:{}", moto.port).parse().unwrap();
    let proxy = AwsProxy::start(upstream, |call| {
        if !call.target.ends_with(".PutRecords") {
            return AwsReply::Forward;
        }
        match call.nth % 5 {
            1 => {
                let records = serde_json::from_str::<Value>(&call.body)
                    .ok()
                    .and_then(|v| v["Records"].as_array().map(Vec::len))
                    .unwrap_or(0);
                AwsReply::FailRecords((0..records).step_by(2).collect())
            }
            3 if call.nth < 40 => AwsReply::error(
                "ProvisionedThroughputExceededException",
                "Rate exceeded for stream sale-events (injected)",
            ),
            _ => AwsReply::Forward,
        }
    })
    .unwrap();
    // The reshard goes through the proxy too, never beside a write.
    let resharder = kinesis(&proxy.endpoint());
    let redis = RedisServer::start(&dir.join("redis"), &RedisOptions::default()).unwrap();
    let mut replicas: Vec<Replica> = (1..=3)
        .map(|i| Replica::start(&dir, &format!("r{i}"), &redis.url(), &proxy.endpoint()))
        .collect();
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
    let alive: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::new(AtomicBool::new(true))).collect();
    let long = json!({"session_timeout_seconds": 3600, "queue_idle_timeout_seconds": 3600});
    let with = |extra: Value| {
        let mut c = long.clone();
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };

    // The pre-queue: joins before the opening are drawn at it.
    let opens = time::OffsetDateTime::now_utc() + Duration::from_secs(8);
    let opens = opens
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    configure(
        addrs[0],
        "drawn",
        with(json!({"capacity": 10000, "admit_per_second": 2000, "opens_at": opens})),
    );
    configure(
        addrs[0],
        "random",
        with(json!({"capacity": 0, "mode": "random"})),
    );
    configure(
        addrs[0],
        "fifo",
        with(json!({"capacity": 10000, "admit_per_second": 2000})),
    );
    join_all(&addrs, &alive, "drawn", "pre", 1500, |_| false, |_| {});
    assert_eq!(
        stats(addrs[0], "drawn")["queued"],
        1500,
        "all in the pre-queue before the opening"
    );
    join_all(&addrs, &alive, "random", "rnd", 2000, |_| false, |_| {});

    // The big one: a reshard a third of the way, a replica killed halfway.
    let split = AtomicBool::new(false);
    let victim = replicas[2].child.id();
    let killed = &alive[2];
    join_all(
        &addrs,
        &alive,
        "fifo",
        "fan",
        10_000,
        |i| i % 10 == 7,
        |n| {
            if n == 3_000 && !split.swap(true, Ordering::SeqCst) {
                rt.block_on(split_first_shard(&resharder));
            }
            if n == 5_000 && killed.swap(false, Ordering::SeqCst) {
                let _ = Command::new("kill")
                    .args(["-9", &victim.to_string()])
                    .status();
            }
        },
    );
    replicas[2].kill();
    assert!(split.load(Ordering::SeqCst));

    // After the opening, more fans for the drawn event; then random opens.
    while time::OffsetDateTime::now_utc().unix_timestamp()
        < time::OffsetDateTime::parse(&opens, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp()
            + 1
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    join_all(&addrs, &alive, "drawn", "post", 500, |_| false, |_| {});
    configure(
        addrs[0],
        "random",
        with(json!({"capacity": 10000, "admit_per_second": 1000, "mode": "random"})),
    );

    let mut admitted = HashMap::new();
    for event in ["fifo", "drawn", "random"] {
        let s = settle(addrs[0], event, Duration::from_secs(60));
        admitted.insert(event, s["admitted_total"].as_u64().unwrap());
    }
    // Everything shipped: nothing unshipped in any outbox (the killed
    // replica's batch claimed by the others).
    let deadline = Instant::now() + Duration::from_secs(60);
    'shipped: loop {
        let mut done = true;
        for event in ["fifo", "drawn", "random"] {
            for r in &replicas[..2] {
                let age = r.metric(&format!(
                    "admission_outbox_oldest_age_seconds{{event=\"{event}\"}}"
                ));
                done &= age == Some(0.0);
            }
        }
        if done {
            break 'shipped;
        }
        assert!(
            Instant::now() < deadline,
            "the outboxes did not drain:\n{}\n{}",
            replicas[0].log_text(),
            replicas[1].log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let audit_dir = dir.join("audit");
    std::fs::create_dir_all(&audit_dir).unwrap();
    let (code, fifo) = audit(&moto.endpoint(), &redis.url(), "fifo", &audit_dir);
    assert_eq!(code, 0, "{fifo}");
    assert_eq!(fifo["joined"], 10_000, "{fifo}");
    assert_eq!(fifo["admitted"], admitted["fifo"], "{fifo}");
    assert_eq!(fifo["duplicates"], 0, "{fifo}");
    assert_eq!(fifo["lost"], 0, "{fifo}");
    assert_eq!(fifo["inversions"], 0, "{fifo}");
    assert_eq!(fifo["kendall_tau"], 1.0, "{fifo}");

    let (code, drawn) = audit(&moto.endpoint(), &redis.url(), "drawn", &audit_dir);
    assert_eq!(code, 0, "{drawn}");
    assert_eq!(drawn["joined"], 2_000, "{drawn}");
    assert_eq!(drawn["admitted"], admitted["drawn"], "{drawn}");
    assert_eq!(drawn["admitted"], 2_000, "{drawn}");
    assert_eq!(drawn["duplicates"], 0, "{drawn}");
    assert_eq!(drawn["lost"], 0, "{drawn}");
    assert_eq!(drawn["inversions"], 0, "{drawn}");

    let (code, random) = audit(&moto.endpoint(), &redis.url(), "random", &audit_dir);
    assert_eq!(code, 0, "{random}");
    assert_eq!(random["joined"], 2_000, "{random}");
    assert_eq!(random["admitted"], 2_000, "{random}");
    assert_eq!(random["duplicates"], 0, "{random}");
    assert_eq!(random["lost"], 0, "{random}");
    let tau = random["kendall_tau"].as_f64().unwrap();
    assert!(tau.abs() < 0.2, "random order: tau {tau}");

    // The faults happened, and the replicas sent the refused records again.
    let log = proxy.log();
    let partial = log
        .iter()
        .filter(|l| matches!(&l.reply, AwsReply::FailRecords(f) if !f.is_empty()))
        .count();
    let refused = log
        .iter()
        .filter(|l| matches!(l.reply, AwsReply::Error { .. }))
        .count();
    assert!(
        partial > 0 && refused > 0,
        "{partial} partial, {refused} refused"
    );
    let retried: f64 = replicas[..2]
        .iter()
        .filter_map(|r| r.metric("admission_event_records_retried_total"))
        .sum();
    assert!(retried > 0.0, "records retried: {retried}");
    for r in &replicas[..2] {
        assert_eq!(
            r.metric("admission_event_records_failed_total"),
            Some(0.0),
            "{}",
            r.name
        );
    }
    drop(replicas);
    let _ = std::fs::remove_dir_all(&dir);
}
