//! The event log against a real Kinesis API (the moto server) and real
//! redis-server / MariaDB: every queue change and booking reaches the
//! stream as a binding event, a Kinesis outage degrades readiness and loses
//! nothing, a full outbox never blocks a join, and booking events are
//! shipped once each across a database restart. The whole-sale checks (3
//! replicas, 10,000 fans, a replica killed, the audit) are in
//! xtask/ops/tests.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::ShardIteratorType;
use devstack::{AwsProxy, AwsReply, Moto};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::support::*;

/// `n` fans join, 32 at a time: enough to fill an outbox quickly, without
/// a thousand requests at once on a test machine that runs other suites
/// too (one of them once waited past the app's 1 s Redis deadline: 503).
async fn join_many(api: &Api, event: &str, n: usize) -> Vec<StatusCode> {
    use futures_util::StreamExt;
    futures_util::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move { api.join(event, &format!("fan-{i}")).await.status }
        })
        .buffer_unordered(32)
        .collect()
        .await
}

const HASH_KEY: &str = "test-event-hash-key-0123456789";

/// The moto server and one stream on it, which the apps reach through a
/// proxy that forwards one call at a time (moto's Kinesis loses records
/// when two writes to one shard race; the real service does not).
pub struct Log {
    pub moto: Moto,
    proxy: AwsProxy,
    pub client: aws_sdk_kinesis::Client,
    pub stream: String,
    _dir: TempDir,
}

/// The moto venv `cargo xtask deps` installs.
fn moto_python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/venv/moto/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `cargo xtask deps` (it installs the moto server)",
        python.display()
    );
    python
}

impl Log {
    /// moto with a stream of `shards` shards.
    pub async fn start(shards: i32) -> Log {
        let dir = tempfile::tempdir().unwrap();
        let moto = Moto::start(&moto_python(), dir.path()).expect("moto starts");
        let client = client_for(&moto.endpoint());
        let upstream = format!("127.0.0.1:{}", moto.port).parse().unwrap();
        let proxy = AwsProxy::start(upstream, |_| AwsReply::Forward).expect("proxy starts");
        let log = Log {
            moto,
            proxy,
            client,
            stream: "admission-events".into(),
            _dir: dir,
        };
        log.create_stream(shards).await;
        log
    }

    pub async fn create_stream(&self, shards: i32) {
        self.client
            .create_stream()
            .stream_name(&self.stream)
            .shard_count(shards)
            .send()
            .await
            .expect("create the stream");
    }

    /// Settings that turn the event log on, toward this stream.
    pub fn options(&self) -> AppOptions {
        AppOptions::default()
            .with("KINESIS_STREAM", &self.stream)
            .with("EVENT_HASH_KEY", HASH_KEY)
            .with("AWS_ENDPOINT_URL", &self.proxy.endpoint())
            .with("AWS_REGION", "eu-west-1")
            .with("AWS_ACCESS_KEY_ID", "testing")
            .with("AWS_SECRET_ACCESS_KEY", "testing")
            .with("AWS_EC2_METADATA_DISABLED", "true")
    }

    /// Every event in the stream, in each shard's order (shards one after
    /// the other).
    pub async fn events(&self) -> Vec<Value> {
        let shards = self
            .client
            .list_shards()
            .stream_name(&self.stream)
            .send()
            .await
            .expect("list shards");
        let mut out = Vec::new();
        for shard in shards.shards() {
            let mut iterator = self
                .client
                .get_shard_iterator()
                .stream_name(&self.stream)
                .shard_id(shard.shard_id())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("shard iterator")
                .shard_iterator
                .expect("an iterator");
            loop {
                let page = self
                    .client
                    .get_records()
                    .shard_iterator(&iterator)
                    .limit(10_000)
                    .send()
                    .await
                    .expect("get records");
                for record in page.records() {
                    let events: Vec<Value> = serde_json::from_slice(record.data().as_ref())
                        .expect("a record is a JSON array of events");
                    out.extend(events);
                }
                match page.next_shard_iterator {
                    Some(next) if !page.records.is_empty() => iterator = next,
                    _ => break,
                }
            }
        }
        out
    }

    /// Reads the stream until `pred` holds for its events.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.events().await;
            if pred(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "timed out; the stream holds {} events:\n{}",
                events.len(),
                events
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A Kinesis client for moto.
pub fn client_for(endpoint: &str) -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
        .region(aws_sdk_kinesis::config::Region::new("eu-west-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .http_client(admission::events::kinesis::http_client())
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn for_event<'a>(events: &'a [Value], event: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event_id"] == event).collect()
}

/// Checks the binding shape of one event.
fn check_shape(e: &Value) {
    let o = e.as_object().expect("an object");
    assert_eq!(e["v"], 1, "{e}");
    for field in ["id", "type", "event_id", "at", "replica"] {
        assert!(o.get(field).is_some_and(Value::is_string), "{field} in {e}");
    }
    let id = e["id"].as_str().unwrap();
    assert!(
        id.strip_prefix("q:")
            .or_else(|| id.strip_prefix("b:"))
            .is_some_and(|n| n.parse::<u64>().is_ok()),
        "id {id}"
    );
    let at = e["at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok(),
        "at {at}"
    );
    for absent_or_typed in ["ticket", "client_hash"] {
        if let Some(v) = o.get(absent_or_typed) {
            assert!(v.is_string(), "{absent_or_typed} in {e}");
        }
    }
    if let Some(seq) = o.get("seq") {
        assert!(seq.is_u64(), "seq in {e}");
    }
    for v in o.values() {
        assert!(!v.is_null(), "no null fields: {e}");
    }
}

async fn ready(api: &Api) -> Value {
    let r = api
        .send(api.http.get(format!("{}/health/ready", api.base())))
        .await;
    r.body
}

async fn wait_ready_body(api: &Api, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let body = ready(api).await;
        if pred(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "timed out; readiness: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn queue_changes_reach_kinesis_as_binding_events(redis: RedisEnv) {
    let log = Log::start(2).await;
    let keys = keys();
    let app = AppProcess::spawn(&redis, &keys, "r-1", log.options()).await;
    let api = app.api();
    assert_eq!(ready(&api).await["dependencies"]["event_log"], "up");
    let r = api
        .configure("ev1", json!({"capacity": 2, "admit_per_second": 100}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (a, _) = api.admitted("ev1", "fan-a").await;
    let (b, _) = api.admitted("ev1", "fan-b").await;
    let c = api.join_ticket("ev1", "fan-c").await;
    assert_eq!(api.leave("ev1", &a).await.status, StatusCode::NO_CONTENT);
    api.wait_status("ev1", &c, Duration::from_secs(5), |s| {
        s["state"] == "admitted"
    })
    .await;

    let events = log
        .wait_for(Duration::from_secs(20), |events| {
            of_type(events, "admitted").len() >= 3 && !of_type(events, "left").is_empty()
        })
        .await;
    for e in &events {
        check_shape(e);
        assert_eq!(e["event_id"], "ev1");
        assert_eq!(e["replica"], "r-1");
        let text = e.to_string();
        assert!(!text.contains("fan-"), "no raw client id: {text}");
    }
    // Each change once (no failure here), ids unique.
    let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "{events:?}");
    let config = of_type(&events, "config_changed");
    assert_eq!(config.len(), 1);
    assert_eq!(config[0]["mode"], "fifo");
    assert_eq!(config[0]["config"]["capacity"], 2);
    assert!(config[0].get("ticket").is_none());

    let by_ticket = |t: &str, kind: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["ticket"] == t && e["type"] == kind)
            .cloned()
            .collect()
    };
    for t in [&a, &b, &c] {
        let joined = by_ticket(t, "joined");
        let admitted = by_ticket(t, "admitted");
        assert_eq!((joined.len(), admitted.len()), (1, 1), "ticket {t}");
        assert_eq!(joined[0]["seq"], admitted[0]["seq"]);
        assert_eq!(joined[0]["client_hash"], admitted[0]["client_hash"]);
        let hash = joined[0]["client_hash"].as_str().unwrap();
        assert!(
            hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{hash}"
        );
        assert!(
            joined[0]["id"].as_str().unwrap()[2..]
                .parse::<u64>()
                .unwrap()
                < admitted[0]["id"].as_str().unwrap()[2..]
                    .parse::<u64>()
                    .unwrap(),
            "joined before admitted"
        );
    }
    let seq = |t: &str| by_ticket(t, "joined")[0]["seq"].as_u64().unwrap();
    assert!(seq(&a) < seq(&b) && seq(&b) < seq(&c));
    assert_ne!(
        by_ticket(&a, "joined")[0]["client_hash"],
        by_ticket(&b, "joined")[0]["client_hash"]
    );
    let left = by_ticket(&a, "left");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["reason"], "left");

    // Everything shipped: nothing waits.
    api.wait_metrics(Duration::from_secs(5), |m| {
        metric_value(m, "admission_event_records_sent_total").unwrap_or(0.0) >= 1.0
            && metric_value(m, "admission_outbox_oldest_age_seconds{event=\"ev1\"}") == Some(0.0)
    })
    .await;
    // The outbox keeps the shipped entries a while (the hubs read them).
    let outbox = redis.cli(&["XLEN", "wr:{ev1}:outbox"]);
    assert!(outbox.trim().parse::<u64>().unwrap() >= events.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_changes_reach_kinesis_as_binding_events_standalone() {
    queue_changes_reach_kinesis_as_binding_events(RedisEnv::standalone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_changes_reach_kinesis_as_binding_events_cluster() {
    queue_changes_reach_kinesis_as_binding_events(RedisEnv::cluster()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kinesis_outage_degrades_readiness_and_loses_nothing() {
    let mut log = Log::start(1).await;
    let redis = RedisEnv::standalone();
    let keys = keys();
    let app = AppProcess::spawn(&redis, &keys, "r-1", log.options()).await;
    let api = app.api();
    api.configure("ev", json!({"capacity": 1000, "admit_per_second": 1000}))
        .await;
    api.admitted("ev", "before").await;
    log.wait_for(Duration::from_secs(20), |e| {
        !of_type(e, "admitted").is_empty()
    })
    .await;

    log.moto.stop();
    // The queue works on without Kinesis.
    let mut during = Vec::new();
    for i in 0..50 {
        let (ticket, _) = api.admitted("ev", &format!("during-{i}")).await;
        during.push(ticket);
    }
    let body = wait_ready_body(&api, Duration::from_secs(30), |b| {
        b["dependencies"]["event_log"] == "down"
    })
    .await;
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["dependencies"]["redis"], "up");
    let metrics = api
        .wait_metrics(Duration::from_secs(15), |m| {
            metric_value(m, "admission_outbox_oldest_age_seconds{event=\"ev\"}").unwrap_or(0.0)
                > 1.0
                && metric_value(m, "admission_outbox_length{event=\"ev\"}").unwrap_or(0.0) >= 100.0
        })
        .await;
    let length = metric_value(&metrics, "admission_outbox_length{event=\"ev\"}").unwrap();
    assert!(
        length >= 100.0,
        "outbox length {length}\n{metrics}\n{}",
        std::fs::read_to_string(&app.log).unwrap_or_default()
    );

    // Kinesis comes back (moto restarts empty: the stream is made again).
    log.moto.start_again().expect("moto restarts");
    log.create_stream(1).await;
    let events = log
        .wait_for(Duration::from_secs(60), |e| {
            let admitted: HashSet<&str> = of_type(e, "admitted")
                .iter()
                .filter_map(|e| e["ticket"].as_str())
                .collect();
            during.iter().all(|t| admitted.contains(t.as_str()))
        })
        .await;
    for t in &during {
        assert!(
            events
                .iter()
                .any(|e| e["ticket"] == t.as_str() && e["type"] == "joined"),
            "joined {t}"
        );
    }
    wait_ready_body(&api, Duration::from_secs(10), |b| {
        b["status"] == "ok" && b["dependencies"]["event_log"] == "up"
    })
    .await;
    api.wait_metrics(Duration::from_secs(5), |m| {
        metric_value(m, "admission_outbox_oldest_age_seconds{event=\"ev\"}") == Some(0.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_is_counted_and_never_blocks_a_join() {
    let log = Log::start(1).await;
    let redis = RedisEnv::standalone();
    let keys = keys();
    // A stream that does not exist: every put fails, nothing is shipped.
    let options = log
        .options()
        .with("KINESIS_STREAM", "no-such-stream")
        .with("OUTBOX_MAX_ENTRIES", "1000");
    let app = AppProcess::spawn(&redis, &keys, "r-1", options).await;
    let api = app.api();
    api.configure("ev", json!({"capacity": 0})).await;
    for status in join_many(&api, "ev", 1100).await {
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let body = wait_ready_body(&api, Duration::from_secs(30), |b| {
        b["dependencies"]["event_log"] == "full"
    })
    .await;
    assert_eq!(body["status"], "degraded");
    // The shipper refreshes the outbox's figures between puts, and while
    // Kinesis refuses every record a put keeps retrying for up to 5 s (and
    // then waits 1 s): the last drops show up within a few rounds of it.
    let metrics = api
        .wait_metrics(Duration::from_secs(30), |m| {
            metric_value(m, "admission_outbox_dropped_total{event=\"ev\"}").unwrap_or(0.0) >= 101.0
        })
        .await;
    assert_eq!(
        metric_value(&metrics, "admission_outbox_length{event=\"ev\"}"),
        Some(1000.0)
    );
    assert_eq!(api.stats("ev").await["queued"], 1100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booking_events_are_shipped_once_each_across_a_database_restart() {
    let log = Log::start(2).await;
    let redis = RedisEnv::standalone();
    let mut db = Db::start().await;
    let keys = keys();
    let mut options = log.options().with("HOLD_SECONDS", "1");
    options.extra.extend(db.options().extra);
    let app = AppProcess::spawn(&redis, &keys, "r-1", options).await;
    let api = app.api();
    api.create_event("show", json!({"rows": 2, "seats_per_row": 5}))
        .await;
    api.configure("show", json!({"capacity": 100, "admit_per_second": 100}))
        .await;

    let (ticket, token) = api.admitted("show", "buyer").await;
    let hold = api
        .hold(
            "show",
            &token,
            json!({"seat_ids": ["main-A-1", "main-A-2"]}),
        )
        .await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
    let hold_id = hold.body["hold_id"].as_str().unwrap().to_string();
    let confirmed = api.confirm(&hold_id, &token, None).await;
    assert_eq!(confirmed.status, StatusCode::CREATED, "{}", confirmed.body);
    let reservation = confirmed.body["reservation_id"]
        .as_str()
        .unwrap()
        .to_string();

    // MariaDB restarts mid-run; the writes after it go through once the
    // pool has reconnected.
    db.server.restart().expect("mariadb restarts");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cancel = api
            .send(
                api.http
                    .delete(format!("{}/api/v1/reservations/{reservation}", api.base()))
                    .bearer_auth(&token),
            )
            .await;
        if cancel.status == StatusCode::NO_CONTENT {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cancel: {} {}",
            cancel.status,
            cancel.body
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (late, late_token) = api.admitted("show", "late").await;
    // A pooled reader connection broken by the restart fails once.
    let mut expiring = api
        .hold("show", &late_token, json!({"seat_ids": ["main-B-3"]}))
        .await;
    while expiring.status == StatusCode::SERVICE_UNAVAILABLE && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        expiring = api
            .hold("show", &late_token, json!({"seat_ids": ["main-B-3"]}))
            .await;
    }
    assert_eq!(expiring.status, StatusCode::CREATED, "{}", expiring.body);
    let expiring_id = expiring.body["hold_id"].as_str().unwrap().to_string();

    let events = log
        .wait_for(Duration::from_secs(30), |e| {
            !of_type(e, "hold_expired").is_empty() && !of_type(e, "cancelled").is_empty()
        })
        .await;
    let bookings: Vec<&Value> = events
        .iter()
        .filter(|e| e["id"].as_str().unwrap().starts_with("b:"))
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for e in &bookings {
        check_shape(e);
        *counts.entry(e["id"].as_str().unwrap()).or_default() += 1;
    }
    assert!(counts.values().all(|&n| n == 1), "once each: {bookings:?}");
    let booked = of_type(&events, "booked");
    assert_eq!(booked.len(), 1);
    assert_eq!(booked[0]["ticket"], ticket.as_str());
    assert_eq!(booked[0]["reservation_id"], reservation.as_str());
    assert_eq!(booked[0]["seat_ids"], json!(["main-A-1", "main-A-2"]));
    assert_eq!(booked[0]["event_id"], "show");
    let cancelled = of_type(&events, "cancelled");
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["reservation_id"], reservation.as_str());
    assert_eq!(cancelled[0]["seat_ids"], json!(["main-A-1", "main-A-2"]));
    let expired = of_type(&events, "hold_expired");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["ticket"], late.as_str());
    assert_eq!(expired[0]["hold_id"], expiring_id.as_str());
    assert_eq!(expired[0]["seat_ids"], json!(["main-B-3"]));
    // The buyer's session ended with the booking.
    let left: Vec<&Value> = for_event(&events, "show")
        .into_iter()
        .filter(|e| e["type"] == "left" && e["ticket"] == ticket.as_str())
        .collect();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["reason"], "booked");
    assert_eq!(db.sql("SELECT COUNT(*) FROM event_outbox"), "0");

    // A row put to Kinesis whose deletion the restart undid: Redis
    // remembers it as shipped, so it is deleted again and not put twice.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    redis.cli(&["ZADD", "wr:shipped_bookings", &now, "1000"]);
    db.sql(
        "INSERT INTO event_outbox (id, event_id, kind, body, replica, created_at) \
         VALUES (1000, 'show', 'booked', '{}', 'r-1', NOW(3))",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.sql("SELECT COUNT(*) FROM event_outbox") != "0" {
        assert!(Instant::now() < deadline, "the shipped row is deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = log.events().await;
    assert!(
        !events.iter().any(|e| e["id"] == "b:1000"),
        "a row remembered as shipped is not put again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_stopped_replica_read_is_shipped_by_the_next() {
    let log = Log::start(1).await;
    let redis = RedisEnv::standalone();
    let keys = keys();
    let mut first = AppProcess::spawn(&redis, &keys, "r-1", log.options()).await;
    let api = first.api();
    api.configure("ev", json!({"capacity": 0})).await;
    let mut tickets = Vec::new();
    for i in 0..200 {
        tickets.push(api.join_ticket("ev", &format!("fan-{i}")).await);
    }
    // SIGTERM at once: the replica finishes the batch it holds, exits 0.
    first.terminate();
    let status = first.wait_exit(Duration::from_secs(20)).expect("exits");
    assert!(status.success(), "{status:?}");
    let second = AppProcess::spawn(&redis, &keys, "r-2", log.options()).await;
    let events = log
        .wait_for(Duration::from_secs(60), |e| {
            let joined: HashSet<&str> = of_type(e, "joined")
                .iter()
                .filter_map(|e| e["ticket"].as_str())
                .collect();
            tickets.iter().all(|t| joined.contains(t.as_str()))
        })
        .await;
    assert!(of_type(&events, "joined").len() >= tickets.len());
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_shipped_history_goes_first() {
    // The log is off: every entry counts as shipped, so an outbox at its cap
    // sheds its history and never drops a change.
    let redis = RedisEnv::standalone();
    let keys = keys();
    let options = AppOptions::default().with("OUTBOX_MAX_ENTRIES", "1000");
    let app = AppProcess::spawn(&redis, &keys, "r-1", options).await;
    let api = app.api();
    assert_eq!(ready(&api).await["dependencies"]["event_log"], "disabled");
    api.configure("ev", json!({"capacity": 0})).await;
    for status in join_many(&api, "ev", 1500).await {
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let length: u64 = redis
        .cli(&["XLEN", "wr:{ev}:outbox"])
        .trim()
        .parse()
        .unwrap();
    assert!(length <= 1000, "{length}");
    assert_eq!(
        redis
            .cli(&["HGET", "wr:{ev}:meta", "outbox_dropped"])
            .trim(),
        ""
    );
    // The newest changes are the ones kept.
    let last = redis.cli(&["XREVRANGE", "wr:{ev}:outbox", "+", "-", "COUNT", "1"]);
    assert!(last.contains("joined"), "{last}");
}
