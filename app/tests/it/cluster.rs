//! Several app processes on one 3-master Redis Cluster.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::support::*;

async fn replicas(redis: &RedisEnv, keys: &Keys, n: usize) -> Vec<AppProcess> {
    let mut apps = Vec::new();
    for i in 0..n {
        apps.push(
            AppProcess::spawn(redis, keys, &format!("replica-{i}"), AppOptions::default()).await,
        );
    }
    apps
}

async fn wait_stat(api: &Api, event: &str, field: &str, want: u64, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let stats = api.stats(event).await;
        if stats[field] == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "{field} never reached {want}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_thousand_joins_through_three_replicas_admit_exactly_capacity_in_join_order() {
    let redis = RedisEnv::cluster();
    let keys = keys();
    let apps = replicas(&redis, &keys, 3).await;
    let apis: Vec<Api> = apps.iter().map(AppProcess::api).collect();
    // Nobody polls in this test: keep the idle timeout out of the way.
    apis[0]
        .configure(
            "ev",
            json!({"capacity": 100, "queue_idle_timeout_seconds": 3600}),
        )
        .await;

    let total = if quick() { 1000 } else { 5000 };
    let limit = Arc::new(Semaphore::new(300));
    let mut tasks = Vec::new();
    for i in 0..total {
        let api = apis[i % 3].clone();
        let limit = limit.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            api.join("ev", &format!("fan-{i}")).await
        }));
    }
    let mut admitted = Vec::new();
    let mut positions = HashMap::new();
    for task in tasks {
        let r = task.await.unwrap();
        let ticket = || r.body["ticket"].as_str().unwrap().to_string();
        match r.status {
            StatusCode::OK => admitted.push(ticket()),
            StatusCode::ACCEPTED => {
                positions.insert(ticket(), r.body["position"].as_u64().unwrap());
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!(admitted.len(), 100, "exactly capacity admitted");
    assert_eq!(positions.len(), total - 100);
    let mut sorted: Vec<u64> = positions.values().copied().collect();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=(total as u64 - 100)).collect::<Vec<_>>(),
        "positions 1..n, each once"
    );

    // Order is the server's sequence: the admitted hold sequences 1..100 and
    // every queued fan's position is its sequence minus 100.
    let records: HashMap<String, u64> = ticket_records(&redis, "", "ev")
        .into_iter()
        .map(|(t, _, seq, _)| (t, seq))
        .collect();
    let mut admitted_seqs: Vec<u64> = admitted.iter().map(|t| records[t]).collect();
    admitted_seqs.sort_unstable();
    assert_eq!(admitted_seqs, (1..=100).collect::<Vec<_>>());
    for (t, p) in &positions {
        assert_eq!(records[t], p + 100, "position follows arrival sequence");
    }
    // Polled through every replica, positions agree.
    for (i, (t, p)) in positions.iter().take(30).enumerate() {
        assert_eq!(apis[i % 3].status("ev", t).await.body["position"], *p);
    }
    assert_eq!(
        apis[1].stats("ev").await["active"],
        100,
        "the loops admitted nobody more"
    );

    // Freeing the first hundred admits exactly positions 1..100 next.
    for (i, t) in admitted.iter().enumerate() {
        assert_eq!(
            apis[i % 3].leave("ev", t).await.status,
            StatusCode::NO_CONTENT
        );
    }
    wait_stat(
        &apis[2],
        "ev",
        "admitted_total",
        200,
        Duration::from_secs(10),
    )
    .await;
    let now_admitted: HashSet<String> = ticket_records(&redis, "", "ev")
        .into_iter()
        .filter(|(_, state, _, _)| *state == 'a')
        .map(|(t, _, _, _)| t)
        .collect();
    let expected: HashSet<String> = positions
        .iter()
        .filter(|(_, p)| **p <= 100)
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(now_admitted, expected, "admission order equals join order");

    // With every replica running its loop, the rate holds on server time.
    let since = admission::clock::now_ms() as u64;
    apis[0]
        .configure(
            "ev",
            json!({"capacity": 100000, "admit_per_second": 40, "queue_idle_timeout_seconds": 3600}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let times: Vec<u64> = ticket_records(&redis, "", "ev")
        .into_iter()
        .filter_map(|(_, state, _, at)| (state == 'a').then_some(at).flatten())
        .filter(|at| *at >= since)
        .collect();
    assert!(times.len() >= 80, "the rate is reached: {}", times.len());
    assert!(
        max_in_window(times, 1000) <= 40,
        "never more than 40 in any second"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_per_replica_follow_the_replicas_alive() {
    let redis = RedisEnv::cluster();
    let keys = keys();
    let mut apps = replicas(&redis, &keys, 3).await;
    let api = apps[0].api();
    api.configure("ev", json!({"sessions_per_replica": 10}))
        .await;
    wait_stat(&api, "ev", "capacity", 30, Duration::from_secs(5)).await;
    let mut admitted = Vec::new();
    for i in 0..40 {
        let r = api.join("ev", &format!("fan-{i}")).await;
        if r.status == StatusCode::OK {
            admitted.push(r.body["ticket"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(admitted.len(), 30);

    apps[2].kill();
    let took = wait_stat(&api, "ev", "capacity", 20, Duration::from_secs(20)).await;
    // Nothing the dead replica acknowledged is lost.
    for t in &admitted {
        assert_eq!(api.status("ev", t).await.body["state"], "admitted");
    }
    assert!(
        took <= Duration::from_secs(15),
        "a dead replica stops counting within 15 s ({took:?})"
    );
    // Sessions are not cut, but nobody new comes in until below 20.
    for t in &admitted[..15] {
        api.leave("ev", t).await;
    }
    wait_stat(&api, "ev", "active", 20, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(api.stats("ev").await["active"], 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_socket_on_one_replica_hears_an_admission_made_by_another() {
    let redis = RedisEnv::cluster();
    let keys = keys();
    let apps = replicas(&redis, &keys, 3).await;
    let apis: Vec<Api> = apps.iter().map(AppProcess::api).collect();
    apis[0].configure("ev", json!({"capacity": 1})).await;
    let a = apis[0].join_ticket("ev", "a").await;
    let b = apis[1].join_ticket("ev", "b").await;
    let mut ws = ws_connect(&apis[2], "ev", &b).await;
    assert_eq!(
        ws_next(&mut ws, Duration::from_secs(2)).await.unwrap()["type"],
        "position"
    );
    let left = Instant::now();
    apis[0].leave("ev", &a).await;
    let msg = ws_until(&mut ws, "admitted", Duration::from_secs(3))
        .await
        .expect("admitted");
    assert!(
        left.elapsed() < Duration::from_millis(1500),
        "{:?}",
        left.elapsed()
    );
    assert!(msg["token"].is_string());
}
