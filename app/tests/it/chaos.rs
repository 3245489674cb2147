//! Unhealthy dependencies, made so by a chaos proxy (`devstack::ChaosProxy`)
//! between the app and Redis or MariaDB: stalled (connections open, nothing
//! answered), slow, and healed. Each test states what the service promises.

use std::time::{Duration, Instant};

use devstack::ChaosProxy;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{keys, ws_connect, ws_next, AppOptions, Db, RedisEnv, TestApp};

fn redis_addr(redis: &mut RedisEnv) -> std::net::SocketAddr {
    format!("127.0.0.1:{}", redis.server().port)
        .parse()
        .unwrap()
}

/// The same URL with the proxy's port.
fn through(url: &str, proxy: &ChaosProxy) -> String {
    let (head, tail) = url.rsplit_once(':').unwrap();
    let rest = tail.find('/').map(|i| &tail[i..]).unwrap_or("");
    format!("{head}:{}{rest}", proxy.port())
}

async fn ready_status(app: &TestApp) -> StatusCode {
    match app
        .http
        .get(format!("{}/health/ready", app.base))
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) => r.status(),
        Err(_) => StatusCode::REQUEST_TIMEOUT,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_is_a_quick_503_then_the_service_heals_with_every_place_kept() {
    let mut redis = RedisEnv::standalone();
    let proxy = ChaosProxy::start(redis_addr(&mut redis)).unwrap();
    let keys = keys();
    let app = TestApp::spawn_at(
        "REDIS_URL",
        format!("redis://127.0.0.1:{}", proxy.port()),
        &keys,
        AppOptions::default(),
    )
    .await;
    let api = app.api();
    api.configure(
        "ev",
        json!({"capacity": 0, "queue_idle_timeout_seconds": 600}),
    )
    .await;
    let mut tickets = Vec::new();
    for i in 0..20 {
        tickets.push(api.join_ticket("ev", &format!("fan-{i}")).await);
    }
    let mut ws = ws_connect(&api, "ev", &tickets[0]).await;
    assert_eq!(
        ws_next(&mut ws, Duration::from_secs(5)).await.unwrap()["type"],
        "position"
    );

    proxy.stall();
    let started = Instant::now();
    let r = api.join("ev", "during-the-stall").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.code(), "unavailable");
    assert!(r.headers.contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let status = api.status("ev", &tickets[3]).await;
    assert_eq!(status.status, StatusCode::SERVICE_UNAVAILABLE);
    let deadline = Instant::now() + Duration::from_secs(5);
    while ready_status(&app).await != StatusCode::SERVICE_UNAVAILABLE {
        assert!(Instant::now() < deadline, "still ready 5 s into the stall");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A fan's live view is never told the place is gone because Redis is.
    let silent = Instant::now() + Duration::from_secs(3);
    while Instant::now() < silent {
        if let Some(m) = ws_next(&mut ws, Duration::from_millis(500)).await {
            assert_ne!(m["type"], "expired", "told expired during a Redis stall");
        }
    }

    proxy.heal();
    let healed = Instant::now();
    loop {
        let r = api.join("ev", "after-the-stall").await;
        if r.status == StatusCode::ACCEPTED && ready_status(&app).await == StatusCode::OK {
            break;
        }
        assert!(
            healed.elapsed() < Duration::from_secs(10),
            "not recovered 10 s after healing: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every acknowledged place is where it was.
    for (i, t) in tickets.iter().enumerate() {
        let s = api.status("ev", t).await;
        assert_eq!(s.status, StatusCode::OK, "{}", s.body);
        assert_eq!(s.body["state"], "queued");
        assert_eq!(s.body["position"], (i + 1) as u64, "{}", s.body);
    }
    // The live view goes on.
    let m = crate::support::ws_until(&mut ws, "position", Duration::from_secs(5)).await;
    assert!(m.is_some(), "the socket hears its position again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_makes_answers_slower_never_errors() {
    let mut redis = RedisEnv::standalone();
    let proxy = ChaosProxy::start(redis_addr(&mut redis)).unwrap();
    let keys = keys();
    let app = TestApp::spawn_at(
        "REDIS_URL",
        format!("redis://127.0.0.1:{}", proxy.port()),
        &keys,
        AppOptions::default(),
    )
    .await;
    let api = app.api();
    api.configure("ev", json!({"capacity": 5, "admit_per_second": 100}))
        .await;
    proxy.add_latency(Duration::from_millis(200));
    let mut joins = Vec::new();
    for i in 0..20 {
        let api = api.clone();
        joins.push(tokio::spawn(async move {
            let started = Instant::now();
            let r = api.join("ev", &format!("slow-{i}")).await;
            (r, started.elapsed())
        }));
    }
    for j in joins {
        let (r, took) = j.await.unwrap();
        assert!(r.status.is_success(), "{} {}", r.status, r.body);
        assert!(took >= Duration::from_millis(200), "{took:?}");
        let t = r.body["ticket"].as_str().unwrap().to_string();
        assert_eq!(api.status("ev", &t).await.status, StatusCode::OK);
    }
    assert_eq!(api.stats("ev").await["queued"].as_u64().unwrap() + 5, 20);
    assert_eq!(ready_status(&app).await, StatusCode::OK);
}

/// An app on its own Redis whose writer and reader connections go through
/// a chaos proxy to MariaDB, each database operation bounded by
/// `timeout_ms`.
struct DbThroughProxy {
    db: Db,
    proxy: ChaosProxy,
    app: TestApp,
    // Kept for the app's lifetime (bind them, never `..`): dropping them
    // stops Redis and removes the key files.
    _redis: RedisEnv,
    _keys: crate::support::Keys,
}

async fn db_through_proxy(timeout_ms: &str) -> DbThroughProxy {
    let redis = RedisEnv::standalone();
    let db = Db::start().await;
    let upstream: std::net::SocketAddr = format!("127.0.0.1:{}", db.server.port).parse().unwrap();
    let proxy = ChaosProxy::start(upstream).unwrap();
    let options = AppOptions::default()
        .with("DATABASE_URL", &through(&db.app_url, &proxy))
        .with("DATABASE_READ_URL", &through(&db.reader_url, &proxy))
        .with("DATABASE_OPERATION_TIMEOUT_MS", timeout_ms);
    let keys = keys();
    let app = TestApp::spawn(&redis, &keys, options).await;
    DbThroughProxy {
        db,
        proxy,
        app,
        _redis: redis,
        _keys: keys,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_stalled_mid_confirm_answers_503_and_sells_no_seat_twice() {
    let DbThroughProxy {
        db,
        proxy,
        app,
        _redis,
        _keys,
    } = db_through_proxy("1500").await;
    let api = app.api();
    api.create_event("ev", json!({"rows": 1, "seats_per_row": 10}))
        .await;
    api.configure("ev", json!({"capacity": 100, "admit_per_second": 1000}))
        .await;
    let mut held = Vec::new();
    for i in 0..8 {
        held.push(
            api.held("ev", &format!("fan-{i}"), &format!("main-A-{}", i + 1))
                .await,
        );
    }

    proxy.stall();
    let started = Instant::now();
    let mut confirms = Vec::new();
    for (token, hold) in held.clone() {
        let api = api.clone();
        confirms.push(tokio::spawn(async move {
            api.confirm(&hold, &token, None).await
        }));
    }
    for c in confirms {
        let r = c.await.unwrap();
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
        assert_eq!(r.code(), "unavailable");
        assert!(r.headers.contains_key("retry-after"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The waiting room is unaffected: ready, degraded.
    let ready = api
        .send(api.http.get(format!("{}/health/ready", api.base())))
        .await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "degraded");

    proxy.heal();
    // Fans retry: each hold ends confirmed once (201, or 200 if the first
    // attempt did commit before its answer was lost).
    let deadline = Instant::now() + Duration::from_secs(20);
    for (token, hold) in &held {
        loop {
            let r = api.confirm(hold, token, None).await;
            if r.status == StatusCode::CREATED || r.status == StatusCode::OK {
                break;
            }
            assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
            assert!(
                Instant::now() < deadline,
                "confirm still failing: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let count = |sql: &str| -> i64 { db.sql(sql).parse().unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM reservations"), 8);
    assert_eq!(
        count("SELECT COUNT(*) FROM seat_claims WHERE reservation_id IS NOT NULL"),
        8
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM (SELECT seat_id FROM reservation_seats GROUP BY seat_id HAVING COUNT(*) > 1) d"),
        0,
        "no seat sold twice"
    );
    // No hold stranded: every hold is confirmed, and no claim belongs to a
    // hold that is not live.
    assert_eq!(
        count("SELECT COUNT(*) FROM holds WHERE status <> 'confirmed'"),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM seat_claims c WHERE c.hold_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM holds h WHERE h.id = c.hold_id AND h.status = 'active')"),
        0
    );
    assert_eq!(
        count("SELECT reserved FROM event_stock WHERE event_id = 'ev'"),
        8
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_get_the_last_seat_map_while_another_rebuilds_it_from_a_stalled_database() {
    // Every part is bound, so none is dropped before the test ends.
    let DbThroughProxy {
        db: _db,
        proxy,
        app,
        _redis,
        _keys,
    } = db_through_proxy("3000").await;
    let api = app.api();
    api.create_event("ev", json!({"rows": 1, "seats_per_row": 4}))
        .await;
    api.configure("ev", json!({"capacity": 10, "admit_per_second": 1000}))
        .await;
    // The first read builds the map (and its longer-lived last copy).
    assert_eq!(api.seat_status("ev").await["main-A-1"], "available");
    let (_, token) = api.admitted("ev", "fan").await;
    let r = api
        .hold("ev", &token, json!({"seat_ids": ["main-A-1"]}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // The hold forgot the fresh copy; one reader starts the rebuild and
    // waits on the stalled database.
    proxy.stall();
    let rebuilding = {
        let api = api.clone();
        tokio::spawn(async move {
            api.send(
                api.http
                    .get(format!("{}/api/v1/events/ev/seats", api.base())),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another reader is not held up behind it: it gets the last map.
    let started = Instant::now();
    let seats = api.seat_status("ev").await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        seats["main-A-1"], "available",
        "the map from before the hold"
    );

    proxy.heal();
    let first = rebuilding.await.unwrap();
    assert!(
        first.status == StatusCode::OK || first.status == StatusCode::SERVICE_UNAVAILABLE,
        "{} {}",
        first.status,
        first.body
    );
    // With nobody rebuilding, a reader gets a fresh map: the hold shows.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if api.seat_status("ev").await["main-A-1"] == "held" {
            break;
        }
        assert!(Instant::now() < deadline, "the hold never showed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
