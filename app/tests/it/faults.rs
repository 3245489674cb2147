//! Real faults: Redis killed and restarted, SIGTERM, bad settings.

use std::process::Command;
use std::time::{Duration, Instant};

use devstack::RedisOptions;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_means_fast_503s_then_recovery_with_nothing_acknowledged_lost() {
    let mut redis = RedisEnv::standalone_with(RedisOptions {
        tls: None,
        durable: true,
    });
    let keys = keys();
    let app = TestApp::spawn(&redis, &keys, AppOptions::default()).await;
    let api = app.api();
    api.configure("ev", json!({"capacity": 10, "queue_idle_timeout_seconds": 3600, "session_timeout_seconds": 3600}))
        .await;
    let mut before: Vec<(String, Value)> = Vec::new();
    for i in 0..30 {
        let r = api.join("ev", &format!("fan-{i}")).await;
        assert!(r.status.is_success());
        let t = r.body["ticket"].as_str().unwrap().to_string();
        before.push((t, r.body.clone()));
    }

    redis.server().kill();
    for attempt in 0..5 {
        let started = Instant::now();
        let r = api.join("ev", &format!("during-{attempt}")).await;
        let took = started.elapsed();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
        assert_eq!(r.code(), "unavailable");
        assert!(r.headers.contains_key("retry-after"));
        assert!(
            took < Duration::from_secs(2),
            "503 within 2 s, took {took:?}"
        );
        let started = Instant::now();
        let r = api.status("ev", &before[0].0).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let ready = api
        .send(api.http.get(format!("{}/health/ready", api.base())))
        .await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["dependencies"]["redis"], "down");

    redis.server().restart().expect("redis restarts");
    let restarted = Instant::now();
    loop {
        let r = api
            .http
            .get(format!("{}/health/ready", api.base()))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK && api.stats("ev").await["queued"] == 20 {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "whole again within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("recovered {:?} after Redis came back", restarted.elapsed());
    for (ticket, at_join) in &before {
        let now = api.status("ev", ticket).await;
        assert_eq!(now.body["state"], at_join["state"], "{ticket}");
        assert_eq!(now.body["position"], at_join["position"]);
        if at_join["state"] == "admitted" {
            assert_eq!(now.body["token"], at_join["token"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sockets_with_a_reason_and_exits_zero_promptly() {
    let redis = RedisEnv::standalone();
    let keys = keys();
    let mut app = AppProcess::spawn(&redis, &keys, "r1", AppOptions::default()).await;
    let api = app.api();
    api.configure("ev", json!({"capacity": 0})).await;
    let t = api.join_ticket("ev", "a").await;
    let mut ws = ws_connect(&api, "ev", &t).await;
    assert_eq!(
        ws_next(&mut ws, Duration::from_secs(2)).await.unwrap()["type"],
        "position"
    );
    let started = Instant::now();
    app.terminate();
    let mut close = None;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        if let Message::Close(frame) = msg {
            close = frame;
            break;
        }
    }
    let frame = close.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1001);
    assert_eq!(frame.reason.as_str(), "server shutting down");
    let status = tokio::task::spawn_blocking(move || app.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("exits within 10 s");
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn bad_settings_are_one_line_and_exit_code_2() {
    let keys = keys();
    let base = [
        ("ADMIN_TOKEN", ADMIN.to_string()),
        ("TOKEN_KEYS", keys.token_spec.clone()),
        ("REDIS_URL", "redis://127.0.0.1:1".to_string()),
        ("LISTEN_ADDR", "127.0.0.1:0".to_string()),
    ];
    type Case = (&'static str, Vec<(&'static str, String)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "no admin token",
            vec![("ADMIN_TOKEN", String::new())],
            "admin-token",
        ),
        ("no redis", vec![("REDIS_URL", String::new())], "REDIS_URL"),
        (
            "bad redis scheme",
            vec![("REDIS_URL", "http://x".into())],
            "redis://",
        ),
        (
            "missing key file",
            vec![("TOKEN_KEYS", "k:/nonexistent.pem".into())],
            "TOKEN_KEYS",
        ),
        (
            "key spec without path",
            vec![("TOKEN_KEYS", "nocolon".into())],
            "kid:path",
        ),
        (
            "bad listen address",
            vec![("LISTEN_ADDR", "everywhere".into())],
            "listen",
        ),
        (
            "bad pool size",
            vec![("REDIS_POOL_SIZE", "0".into())],
            "pool",
        ),
        (
            "bad trusted proxy",
            vec![("TRUSTED_PROXIES", "10.0.0.0/99".into())],
            "proxies",
        ),
        (
            "brace in prefix",
            vec![("KEY_PREFIX", "a{".into())],
            "KEY_PREFIX",
        ),
        (
            "bad CA file",
            vec![("REDIS_CA_FILE", "/nonexistent.pem".into())],
            "REDIS_CA_FILE",
        ),
    ];
    for (name, overrides, needle) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_admission"));
        cmd.env_clear();
        for (k, v) in &base {
            cmd.env(k, v);
        }
        for (k, v) in &overrides {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{name}: one line: {stderr}"
        );
        assert!(
            stderr.to_lowercase().contains(&needle.to_lowercase()),
            "{name}: `{stderr}` should name {needle}"
        );
        assert!(!stderr.contains("panicked"), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_lines_with_request_ids_and_never_a_whole_ticket_or_token() {
    let redis = RedisEnv::standalone();
    let keys = keys();
    let mut app = AppProcess::spawn(&redis, &keys, "r1", AppOptions::default()).await;
    let api = app.api();
    api.configure("ev", json!({"capacity": 1})).await;
    api.configure("ev", json!({"capacity": 2, "message": "Hi"}))
        .await;
    let admitted = api.join("ev", "a").await;
    let token = admitted.body["token"].as_str().unwrap().to_string();
    let mut secrets = vec![token, admitted.body["ticket"].as_str().unwrap().to_string()];
    for i in 0..5 {
        let t = api.join_ticket("ev", &format!("fan-{i}")).await;
        api.status("ev", &t).await;
        api.heartbeat("ev", &t).await;
        api.leave("ev", &t).await;
        secrets.push(t);
    }
    app.terminate();
    app.wait_exit(Duration::from_secs(10)).expect("exits");
    let log = std::fs::read_to_string(&app.log).unwrap();
    let mut requests = 0;
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if v["message"] == "request" {
            requests += 1;
            assert!(
                v["span"]["request_id"]
                    .as_str()
                    .is_some_and(|id| id.len() >= 16),
                "{line}"
            );
            assert!(
                v["route"].as_str().is_some_and(|r| !r.contains("AAAA")),
                "{line}"
            );
        }
    }
    assert!(requests >= 20, "one access line per request");
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log holds a whole ticket or token"
        );
    }
    let change = log
        .lines()
        .find(|l| l.contains("queue configuration changed") && l.contains("capacity: 1 -> 2"))
        .expect("admin changes are logged with what changed");
    assert!(change.contains("message: none -> \\\"Hi\\\""), "{change}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_killed_and_restarted_means_503s_then_recovery() {
    let mut redis = RedisEnv::cluster_with(RedisOptions {
        tls: None,
        durable: true,
    });
    let keys = keys();
    let app = TestApp::spawn(&redis, &keys, AppOptions::default()).await;
    let api = app.api();
    // Events spread over the three masters.
    let events: Vec<String> = (0..6).map(|i| format!("ev-{i}")).collect();
    let mut tickets = Vec::new();
    for ev in &events {
        api.configure(
            ev,
            json!({"capacity": 0, "queue_idle_timeout_seconds": 3600}),
        )
        .await;
        tickets.push(api.join_ticket(ev, "fan").await);
    }
    let crate::support::Redis::Cluster(cluster) = &mut redis.redis else {
        unreachable!()
    };
    cluster.nodes[1].kill();
    // Once the others see it gone the whole cluster refuses (full coverage);
    // either way every call is a 503 within 2 s, never a hang.
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut refused = 0;
    while Instant::now() < deadline {
        for ev in &events {
            let started = Instant::now();
            let r = api.join(ev, "during").await;
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{:?}",
                started.elapsed()
            );
            if r.status == StatusCode::SERVICE_UNAVAILABLE {
                refused += 1;
            } else {
                assert!(r.status.is_success(), "{}", r.body);
            }
        }
    }
    assert!(refused > 0);
    cluster.nodes[1].restart().expect("node restarts");
    let back = Instant::now();
    cluster
        .wait_ok(Duration::from_secs(30))
        .expect("cluster ok again");
    'recovery: loop {
        let mut all = true;
        for (ev, t) in events.iter().zip(&tickets) {
            let r = api.status(ev, t).await;
            all &= r.status == StatusCode::OK && r.body["position"] == 1;
        }
        if all {
            break 'recovery;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "whole again within 10 s of the node returning"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "cluster recovered {:?} after the node restarted",
        back.elapsed()
    );
}
