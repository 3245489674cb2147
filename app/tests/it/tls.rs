//! `rediss://`, as ElastiCache Serverless requires, against standalone and
//! cluster Redis with a throwaway CA made here.

use std::time::{Duration, Instant};

use devstack::RedisOptions;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

fn tls_options() -> (tempfile::TempDir, RedisOptions, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let files = tls_files(dir.path());
    let ca = files.ca.clone();
    (
        dir,
        RedisOptions {
            tls: Some(files),
            durable: false,
        },
        ca,
    )
}

#[tokio::test]
async fn rediss_standalone_works_with_the_ca_and_fails_cleanly_without_it() {
    let (_certs, options, ca) = tls_options();
    let redis = RedisEnv::standalone_with(options);
    assert!(redis.env().1.starts_with("rediss://"));
    let keys = keys();
    let app = TestApp::spawn(
        &redis,
        &keys,
        AppOptions::default().with("REDIS_CA_FILE", ca.to_str().unwrap()),
    )
    .await;
    let api = app.api();
    api.configure("ev", json!({"capacity": 1})).await;
    assert_eq!(api.join("ev", "a").await.status, StatusCode::OK);
    assert_eq!(api.join("ev", "b").await.status, StatusCode::ACCEPTED);

    // Without the CA the server is not trusted: not ready, 503s, no hang.
    let untrusting = AppProcess::start(&redis, &keys, "no-ca", AppOptions::default());
    let http = client();
    wait_live(&http, &untrusting.base).await;
    let started = Instant::now();
    let r = http
        .get(format!("{}/health/ready", untrusting.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = untrusting.api().join("ev", "c").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.code(), "unavailable");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_cluster_works_with_the_ca() {
    let (_certs, options, ca) = tls_options();
    let redis = RedisEnv::cluster_with(options);
    let keys = keys();
    let app = TestApp::spawn(
        &redis,
        &keys,
        AppOptions::default().with("REDIS_CA_FILE", ca.to_str().unwrap()),
    )
    .await;
    let api = app.api();
    for ev in ["alpha", "beta", "gamma"] {
        api.configure(ev, json!({"capacity": 1})).await;
        assert_eq!(api.join(ev, "a").await.status, StatusCode::OK);
        let b = api.join(ev, "b").await;
        assert_eq!(b.body["position"], 1);
        assert_eq!(api.stats(ev).await["queued"], 1);
    }
}
