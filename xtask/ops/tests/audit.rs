//! `ops audit` end to end: the real binary against a moto Kinesis stream
//! and a real redis-server, both started here (devstack), with a fault
//! proxy in front of moto for what moto never does (expired iterators,
//! throttling).
//!
//! The stream holds two sales written by hand in the app's event format:
//! `sale` (fifo, a pre-queue drawn with a real seed, a fan who left before
//! the opening and one after it, booking events, copies of records) and
//! `other` (random mode, one identity admitted twice), in records that mix
//! both. Shard 0 is split between the two batches.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;
use aws_smithy_http_client::tls;
use base64::Engine;
use devstack::{AwsProxy, AwsReply, Moto, RedisOptions, RedisServer};
use serde_json::{json, Value};

const STREAM: &str = "sale-events";
const REGION: &str = "us-east-1";
/// 2026-11-23T20:00:00Z in ms: the sale's clock starts here.
const T0: i64 = 1_795_464_000_000;
/// The draw's seed (any 32 bytes; this one moves every fan of the draw).
const SEED: &str = "5eed0b5c9a1e7d4f00112233445566778899aabbccddeeff0123456789abcdef";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn work_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("ops-audit")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn start_moto(dir: &std::path::Path) -> Moto {
    Moto::start_pinned(&root(), &dir.join("moto")).expect("moto starts")
}

fn kinesis(endpoint: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
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

/// What a run of the binary printed, and its exit code.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "one JSON line on stdout: {}", self.stdout);
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// Runs `ops` with AWS pointed at `endpoint` (test credentials, nothing
/// from this machine's AWS setup), killed after two minutes.
fn ops(endpoint: &str, args: &[&str]) -> Run {
    let dir = work_dir("run");
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ops"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_DEFAULT_REGION")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ops runs");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ops {args:?} did not finish within 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("--- ops {args:?} exited {}:\n{}", run.code, run.stderr);
    run
}

/// Builds a sale's events in the app's format, numbering `q:<n>` itself.
struct Sale {
    id: &'static str,
    next: u64,
    events: Vec<Value>,
}

impl Sale {
    fn new(id: &'static str) -> Sale {
        Sale {
            id,
            next: 0,
            events: Vec::new(),
        }
    }

    fn at(ms: i64) -> String {
        let t =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
        format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }

    fn push(&mut self, ty: &str, at_ms: i64, fields: Value) {
        self.next += 1;
        let mut e = json!({
            "v": 1, "id": format!("q:{}", self.next), "type": ty,
            "event_id": self.id, "at": Sale::at(at_ms), "replica": "r1",
        });
        for (k, v) in fields.as_object().unwrap() {
            e[k] = v.clone();
        }
        self.events.push(e);
    }

    fn fan(&mut self, ty: &str, at_ms: i64, ticket: &str, seq: u64, hash: &str, extra: Value) {
        let mut fields = json!({"ticket": ticket, "seq": seq, "client_hash": hash});
        for (k, v) in extra.as_object().unwrap() {
            fields[k] = v.clone();
        }
        self.push(ty, at_ms, fields);
    }
}

/// The `sale` of the module doc; returns its events and the tickets it
/// admitted with when (ms).
fn fifo_sale_with_a_draw() -> (Vec<Value>, BTreeMap<String, i64>) {
    let mut s = Sale::new("sale");
    let opens = T0 + 60_000;
    s.push(
        "config_changed",
        T0,
        json!({"mode": "fifo", "config": {"mode": "fifo", "capacity": 2, "opens_at": Sale::at(opens)}}),
    );
    let mut joined_at = BTreeMap::new();
    for i in 1..=6u64 {
        let t = format!("p{i}");
        joined_at.insert(t.clone(), T0 + i as i64 * 1000);
        s.fan(
            "joined",
            T0 + i as i64 * 1000,
            &t,
            i,
            &format!("h-{t}"),
            json!({"prequeue": true}),
        );
    }
    // p3 leaves before the opening: out of the draw. p6 leaves after it:
    // the pre-queue is frozen, so p6 keeps a place in the draw.
    s.fan(
        "left",
        T0 + 30_000,
        "p3",
        3,
        "h-p3",
        json!({"reason": "left"}),
    );
    s.fan(
        "left",
        opens + 500,
        "p6",
        6,
        "h-p6",
        json!({"reason": "left"}),
    );
    s.push("drawn", opens + 1000, json!({"seed": SEED, "size": 5}));
    // The draw as the app computes it.
    let members = [("p1", 1u64), ("p2", 2), ("p4", 4), ("p5", 5), ("p6", 6)];
    let seed = admission::queue::draw::parse_seed(SEED).unwrap();
    let order = admission::queue::draw::draw_order(members.len(), seed);
    assert_ne!(order, vec![0, 1, 2, 3, 4], "the seed must move someone");
    let placed: Vec<(&str, u64)> = order
        .iter()
        .enumerate()
        .map(|(k, &i)| (members[i].0, members[k].1))
        .collect();
    for i in 7..=12u64 {
        let t = format!("f{i}");
        let at = opens + 2000 + i as i64 * 1000;
        joined_at.insert(t.clone(), at);
        s.fan("joined", at, &t, i, &format!("h-{t}"), json!({}));
    }
    // Admissions: the drawn pre-queue (p6 left), then f7..f12; the k-th
    // admission waited 10·k seconds.
    let mut admitted = BTreeMap::new();
    let queue: Vec<(String, u64)> = placed
        .iter()
        .filter(|(t, _)| *t != "p6")
        .map(|(t, seq)| (t.to_string(), *seq))
        .chain((7..=12).map(|i| (format!("f{i}"), i)))
        .collect();
    for (k, (ticket, seq)) in queue.iter().enumerate() {
        let at = joined_at[ticket] + 10_000 * (k as i64 + 1);
        admitted.insert(ticket.clone(), at);
        s.fan(
            "admitted",
            at,
            ticket,
            *seq,
            &format!("h-{ticket}"),
            json!({}),
        );
    }
    let (t, seq) = &queue[0];
    s.fan(
        "left",
        T0 + 900_000,
        t,
        *seq,
        &format!("h-{t}"),
        json!({"reason": "booked"}),
    );
    let (t, seq) = &queue[1];
    s.fan(
        "expired",
        T0 + 900_000,
        t,
        *seq,
        &format!("h-{t}"),
        json!({"reason": "timeout"}),
    );
    s.push("sold_out", T0 + 950_000, json!({}));
    let mut events = s.events;
    // Booking events, numbered by their own rows.
    for (n, ty, extra) in [
        (1, "booked", json!({"reservation_id": "r-1"})),
        (2, "cancelled", json!({"reservation_id": "r-1"})),
        (3, "hold_expired", json!({"hold_id": "h-9"})),
    ] {
        let mut e = json!({
            "v": 1, "id": format!("b:{n}"), "type": ty, "event_id": "sale",
            "at": Sale::at(T0 + 800_000 + n), "replica": "r2",
            "ticket": queue[0].0, "seat_ids": ["A-1", "A-2"],
        });
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        events.push(e);
    }
    (events, admitted)
}

/// `other`: random mode, admitted 3, 1, 4, 2 (tau-b 0), every wait 5 s;
/// o1 and o4 are one identity, and o4 is let in while o1's session lives.
fn random_sale_with_a_double_identity() -> Vec<Value> {
    let mut s = Sale::new("other");
    s.push(
        "config_changed",
        T0,
        json!({"mode": "random", "config": {"mode": "random", "capacity": 4}}),
    );
    let hash = |i: u64| {
        if i == 1 || i == 4 {
            "same".to_string()
        } else {
            format!("h-o{i}")
        }
    };
    for i in 1..=4u64 {
        s.fan(
            "joined",
            T0 + i as i64 * 1000,
            &format!("o{i}"),
            i,
            &hash(i),
            json!({}),
        );
    }
    for i in [3u64, 1, 4, 2] {
        let at = T0 + i as i64 * 1000 + 5000;
        s.fan("admitted", at, &format!("o{i}"), i, &hash(i), json!({}));
    }
    s.events
}

/// Records of up to three events each, in the order given.
fn records(events: &[Value]) -> Vec<Vec<u8>> {
    events
        .chunks(3)
        .map(|chunk| serde_json::to_vec(chunk).unwrap())
        .collect()
}

async fn put(client: &Client, records: &[Vec<u8>]) {
    let entries: Vec<PutRecordsRequestEntry> = records
        .iter()
        .enumerate()
        .map(|(i, data)| {
            PutRecordsRequestEntry::builder()
                .data(Blob::new(data.clone()))
                // Spread over the shards, as the app's content hash does.
                .partition_key(format!("key-{i}-{}", data.len()))
                .build()
                .unwrap()
        })
        .collect();
    let out = client
        .put_records()
        .stream_name(STREAM)
        .set_records(Some(entries))
        .send()
        .await
        .expect("PutRecords");
    assert_eq!(out.failed_record_count(), Some(0));
}

async fn shard_ids(client: &Client) -> Vec<(String, Option<String>)> {
    let out = client
        .list_shards()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    out.shards()
        .iter()
        .map(|s| {
            (
                s.shard_id().to_string(),
                s.parent_shard_id().map(str::to_string),
            )
        })
        .collect()
}

/// The record's shard and last sequence read, from a moto shard iterator
/// (base64 of `stream:shard:last sequence`).
fn decode_iterator(iterator: &str) -> (String, u64) {
    let compact: String = iterator.chars().filter(|c| !c.is_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .expect("a moto iterator");
    let text = String::from_utf8(raw).unwrap();
    let parts: Vec<&str> = text.split(':').collect();
    (parts[1].to_string(), parts[2].parse().unwrap())
}

fn expected_sale(lost: Value, redelivered: u64) -> Value {
    json!({
        "joined": 12,
        "admitted": 10,
        "duplicates": 0,
        "lost": lost,
        "inversions": 0,
        "kendall_tau": 1.0,
        "redelivered": redelivered,
        // Ten admissions waiting 10, 20, …, 100 s (nearest rank).
        "wait_p50_seconds": 50.0,
        "wait_p99_seconds": 100.0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_reads_a_resharded_stream_once_through_copies_and_faults() {
    let dir = work_dir("resharded");
    let moto = start_moto(&dir);
    let redis = RedisServer::start(&dir.join("redis"), &RedisOptions::default()).unwrap();
    let client = kinesis(&moto.endpoint());
    client
        .create_stream()
        .stream_name(STREAM)
        .shard_count(2)
        .send()
        .await
        .expect("CreateStream");

    let (sale, admitted) = fifo_sale_with_a_draw();
    let other = random_sale_with_a_double_identity();
    // Interleave the two sales, as replicas shipping both would.
    let mut all = Vec::new();
    let (mut a, mut b) = (sale.iter(), other.iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => all.extend(x.into_iter().chain(y).cloned()),
        }
    }
    let all = records(&all);
    let (first, second) = all.split_at(all.len() / 2);
    put(&client, first).await;
    // A reshard mid-stream: shard 0 becomes shards 2 and 3.
    client
        .split_shard()
        .stream_name(STREAM)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 126).to_string())
        .send()
        .await
        .expect("SplitShard");
    put(&client, second).await;
    // At-least-once delivery: two whole records again, and one event alone.
    let copies: Vec<Vec<u8>> = vec![
        first[1].clone(),
        second[2].clone(),
        serde_json::to_vec(&[&sale[20]]).unwrap(),
    ];
    let copied = |sale: &str| -> u64 {
        copies
            .iter()
            .map(|r| {
                let events: Vec<Value> = serde_json::from_slice(r).unwrap();
                events.iter().filter(|e| e["event_id"] == sale).count() as u64
            })
            .sum()
    };
    let copied_sale_events = copied("sale");
    assert!(copied_sale_events >= 3, "{copied_sale_events}");
    put(&client, &copies).await;
    let shards = shard_ids(&client).await;
    assert_eq!(shards.len(), 4, "{shards:?}");
    assert_eq!(shards[2].1.as_deref(), Some("shardId-000000000000"));

    // Redis: what the app's scripts leave in the sale's tickets hash, and
    // one admission ("ghost") whose event never reached the stream.
    let key = "t:wr:{sale}:tickets";
    for (ticket, at) in &admitted {
        let record = format!("l,1,{at},{},id-{ticket}", at + 900_000);
        redis.cli(&["HSET", key, ticket, &record]).unwrap();
    }
    redis.cli(&["HSET", key, "p3", "l,3,,,id-p3"]).unwrap();
    redis
        .cli(&[
            "HSET",
            key,
            "ghost",
            &format!("a,99,{},{},id-ghost", T0 + 5000, T0 + 905_000),
        ])
        .unwrap();
    assert!(redis.cli(&["HLEN", key]).unwrap().contains("12"));

    let endpoint = moto.endpoint();
    let with_redis = ops(
        &endpoint,
        &[
            "audit",
            "--stream",
            STREAM,
            "--event",
            "sale",
            "--redis",
            &redis.url(),
            "--key-prefix",
            "t:",
            "--json",
        ],
    );
    assert_eq!(
        with_redis.json(),
        expected_sale(json!(1), copied_sale_events)
    );
    assert_eq!(with_redis.code, 1, "a lost admission fails the audit");
    assert!(
        with_redis.stderr.contains("lost: ticket ghost"),
        "{}",
        with_redis.stderr
    );
    assert!(
        with_redis.stderr.contains("replayed from the seed"),
        "{}",
        with_redis.stderr
    );

    let without_redis = ops(
        &endpoint,
        &["audit", "--stream", STREAM, "--event", "sale", "--json"],
    );
    assert_eq!(
        without_redis.json(),
        expected_sale(Value::Null, copied_sale_events)
    );
    assert_eq!(without_redis.code, 0);
    let summary = without_redis.stderr.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("audit: ok `sale`: 12 joined, 10 admitted"),
        "{summary}"
    );

    let other_sale = ops(
        &endpoint,
        &["audit", "--stream", STREAM, "--event", "other", "--json"],
    );
    assert_eq!(
        other_sale.json(),
        json!({
            "joined": 4, "admitted": 4, "duplicates": 1, "lost": null, "inversions": 0,
            "kendall_tau": 0.0, "redelivered": copied("other"),
            "wait_p50_seconds": 5.0, "wait_p99_seconds": 5.0,
        })
    );
    assert_eq!(other_sale.code, 1, "a duplicate fails the audit");

    // Without --json: the same figures for people, on stdout.
    let table = ops(&endpoint, &["audit", "--stream", STREAM, "--event", "sale"]);
    assert_eq!(table.code, 0);
    assert!(
        table.stdout.contains("kendall_tau  1.000000 (tau-b)"),
        "{}",
        table.stdout
    );

    // Now through a proxy that expires iterators after records were read,
    // throttles reads and shard listings: the same report, nothing read
    // twice (redelivered unchanged) and nothing skipped (counts unchanged).
    let upstream: SocketAddr = format!("127.0.0.1:{}", moto.port).parse().unwrap();
    let expired_shards = std::sync::Mutex::new(std::collections::HashSet::new());
    let proxy = AwsProxy::start(upstream, move |call| {
        let op = call.target.rsplit('.').next().unwrap_or_default();
        match op {
            "ListShards" if call.nth == 0 => {
                AwsReply::error("LimitExceededException", "Rate exceeded for stream")
            }
            "GetShardIterator" if call.nth == 1 => AwsReply::error(
                "ProvisionedThroughputExceededException",
                "Rate exceeded for shard",
            ),
            "GetRecords" => {
                let body: Value = serde_json::from_str(&call.body).unwrap();
                let (shard, last) = decode_iterator(body["ShardIterator"].as_str().unwrap());
                // Once per shard after records were read, and on shard 0's
                // first read (nothing read yet).
                let first_of_parent = shard == "shardId-000000000000" && last == 0;
                if (last > 0 || first_of_parent)
                    && expired_shards.lock().unwrap().insert((shard, last > 0))
                {
                    AwsReply::error("ExpiredIteratorException", "Iterator expired")
                } else if call.nth % 4 == 2 {
                    AwsReply::error(
                        "ProvisionedThroughputExceededException",
                        "Rate exceeded for shard",
                    )
                } else {
                    AwsReply::Forward
                }
            }
            _ => AwsReply::Forward,
        }
    })
    .unwrap();
    let faulty = ops(
        &proxy.endpoint(),
        &["audit", "--stream", STREAM, "--event", "sale", "--json"],
    );
    assert_eq!(
        faulty.json(),
        expected_sale(Value::Null, copied_sale_events)
    );
    assert_eq!(faulty.code, 0);

    let log = proxy.log();
    let op = |i: usize| {
        log[i]
            .call
            .target
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let injected = |name: &str| {
        log.iter()
            .filter(
                |l| matches!(&l.reply, AwsReply::Error { error_type, .. } if error_type == name),
            )
            .count()
    };
    assert_eq!(injected("LimitExceededException"), 1);
    assert!(
        injected("ProvisionedThroughputExceededException") >= 2,
        "{log:#?}"
    );
    let expired: Vec<usize> = (0..log.len())
        .filter(|&i| matches!(&log[i].reply, AwsReply::Error { error_type, .. } if error_type == "ExpiredIteratorException"))
        .collect();
    assert!(expired.len() >= 2, "iterators expired: {log:#?}");
    assert!(
        expired.iter().any(|&i| {
            let body: Value = serde_json::from_str(&log[i].call.body).unwrap();
            decode_iterator(body["ShardIterator"].as_str().unwrap()).1 > 0
        }),
        "an iterator expired after records were read: {log:#?}"
    );
    // After each expiry, the shard's next iterator starts right after the
    // last record read (at the start when nothing was read yet).
    for &i in &expired {
        let body: Value = serde_json::from_str(&log[i].call.body).unwrap();
        let (shard, last) = decode_iterator(body["ShardIterator"].as_str().unwrap());
        let renewal = log[i + 1..]
            .iter()
            .map(|l| serde_json::from_str::<Value>(&l.call.body).unwrap())
            .find(|b| b["ShardId"] == shard.as_str())
            .unwrap_or_else(|| panic!("no new iterator for {shard}"));
        if last > 0 {
            assert_eq!(
                renewal["ShardIteratorType"], "AFTER_SEQUENCE_NUMBER",
                "{renewal}"
            );
            assert_eq!(
                renewal["StartingSequenceNumber"],
                last.to_string(),
                "{renewal}"
            );
        } else {
            assert_eq!(renewal["ShardIteratorType"], "TRIM_HORIZON", "{renewal}");
        }
    }
    // Parents before children: no child shard is opened before the last
    // read of shard 0.
    let last_parent_read = (0..log.len())
        .filter(|&i| op(i) == "GetRecords")
        .filter(|&i| {
            let body: Value = serde_json::from_str(&log[i].call.body).unwrap();
            decode_iterator(body["ShardIterator"].as_str().unwrap()).0 == "shardId-000000000000"
        })
        .max()
        .expect("shard 0 was read");
    for child in ["shardId-000000000002", "shardId-000000000003"] {
        let first_open = (0..log.len())
            .find(|&i| {
                op(i) == "GetShardIterator"
                    && serde_json::from_str::<Value>(&log[i].call.body).unwrap()["ShardId"] == child
            })
            .unwrap_or_else(|| panic!("{child} was never read"));
        assert!(
            first_open > last_parent_read,
            "{child} opened at call {first_open}, before shard 0's last read at {last_parent_read}"
        );
    }
    assert!(
        faulty.stderr.contains("(2 born of a reshard)"),
        "{}",
        faulty.stderr
    );
    drop(proxy);
    drop(redis);
    drop(moto);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_that_cannot_run_exits_2_and_says_why() {
    let dir = work_dir("cannot-run");
    let moto = start_moto(&dir);
    let endpoint = moto.endpoint();

    let missing = ops(
        &endpoint,
        &[
            "audit",
            "--stream",
            "no-such-stream",
            "--event",
            "sale",
            "--json",
        ],
    );
    assert_eq!(missing.code, 2);
    assert_eq!(missing.stdout, "", "no report when the audit could not run");
    assert!(
        missing
            .stderr
            .contains("ListShards on stream `no-such-stream`")
            && missing.stderr.contains("ResourceNotFoundException"),
        "{}",
        missing.stderr
    );

    // Redis is read first: a dead Redis stops the audit before the stream.
    let closed_port = devstack::free_port();
    let no_redis = ops(
        &endpoint,
        &[
            "audit",
            "--stream",
            STREAM,
            "--event",
            "sale",
            "--redis",
            &format!("redis://127.0.0.1:{closed_port}"),
        ],
    );
    assert_eq!(no_redis.code, 2);
    assert!(
        no_redis.stderr.contains("reading the sale's tickets"),
        "{}",
        no_redis.stderr
    );

    let bad_url = ops(
        &endpoint,
        &[
            "audit", "--stream", STREAM, "--event", "sale", "--redis", "http://x",
        ],
    );
    assert_eq!(bad_url.code, 2);
    assert!(
        bad_url.stderr.contains("--redis `http://x`"),
        "{}",
        bad_url.stderr
    );

    let usage = ops(&endpoint, &["audit", "--event", "sale"]);
    assert_eq!(usage.code, 2);
    assert!(usage.stderr.contains("--stream <NAME>"), "{}", usage.stderr);

    let help = ops(&endpoint, &["audit", "--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Exit codes: 0"), "{}", help.stdout);
    drop(moto);
    let _ = std::fs::remove_dir_all(&dir);
}
