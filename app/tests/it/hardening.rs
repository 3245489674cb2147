//! Sale-day hardening: bounded metrics, orphans cleaned up, failures made
//! visible, dates the database can hold, per-source limits on IPv6.

use std::time::Duration;

use clap::Parser;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{
    keys, metric_value, AppOptions, AppProcess, BookingStack, Keys, RedisEnv, Stack,
};

/// The app's own Redis client on `redis`, for calling its scripts directly.
fn store_on(redis: &RedisEnv, keys: &Keys) -> admission::store::Store {
    let (var, value) = redis.env();
    let config = admission::Config::try_parse_from([
        "admission",
        &format!("--{}", var.to_lowercase().replace('_', "-")),
        &value,
        "--admin-token",
        crate::support::ADMIN,
        "--token-keys",
        &keys.token_spec,
    ])
    .unwrap();
    admission::store::Store::connect(&config, admission::metrics::Metrics::new()).unwrap()
}

#[tokio::test]
async fn invented_methods_never_make_new_metric_series() {
    let stack = Stack::standalone().await;
    let api = stack.api();
    for method in ["BREW", "PROPFIND", "X-ANYTHING"] {
        let r = api
            .send(api.http.request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}/api/v1/events", api.base()),
            ))
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    let text = api.metrics().await;
    assert!(text.contains("method=\"other\""), "{text}");
    for method in ["BREW", "PROPFIND", "X-ANYTHING"] {
        assert!(!text.contains(method), "a series for {method}");
    }
}

#[tokio::test]
async fn an_event_left_without_its_queue_leaves_the_admission_loop() {
    let stack = Stack::standalone().await;
    let api = stack.api();
    api.configure("kept", json!({})).await;
    // An orphan: in the set the loop visits, without any key of its own.
    stack.redis.cli(&["SADD", "wr:events", "orphan"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let members = stack.redis.cli(&["SMEMBERS", "wr:events"]);
        if !members.lines().any(|l| l == "orphan") {
            assert!(members.lines().any(|l| l == "kept"), "{members}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "orphan still visited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Configurations and removals of one event racing each other always end
/// in a consistent state: configured and visited by the admission loop, or
/// neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_and_remove_racing_leave_no_half_event() {
    let stack = Stack::standalone().await;
    let api = stack.api();
    let store = store_on(&stack.redis, &stack.keys);
    let queue = admission::queue::Queue::new(store, "");
    let ev = admission::queue::EventId::parse("racy").unwrap();
    let settings = admission::queue::config::QueueConfig::default();
    for round in 0..30 {
        let (a, b) = tokio::join!(queue.configure(&ev, &settings), queue.remove(&ev));
        a.unwrap();
        b.unwrap();
        if round % 3 == 0 {
            queue.configure(&ev, &settings).await.unwrap();
        }
    }
    // Let the admission loop see the final state and clean up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let configured = stack.redis.cli(&["EXISTS", "wr:{racy}:meta"]).trim() == "1";
    let visited = stack.redis.cli(&["SISMEMBER", "wr:events", "racy"]).trim() == "1";
    assert_eq!(
        configured, visited,
        "configured={configured} visited={visited}"
    );
    // And a configuration after all that is admitted from as usual.
    api.configure("racy", json!({"capacity": 1})).await;
    let r = api.join("racy", "after-the-race").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_removed_event_takes_its_metric_series_along() {
    let stack = BookingStack::start().await;
    let api = stack.api();
    api.create_event("short-lived", json!({"rows": 1, "seats_per_row": 2}))
        .await;
    api.wait_metrics(Duration::from_secs(10), |t| {
        t.contains("admission_queue_length{event=\"short-lived\"}")
    })
    .await;
    let r = api
        .send(
            api.http
                .delete(format!("{}/api/v1/admin/events/short-lived", api.base()))
                .bearer_auth(crate::support::ADMIN),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    api.wait_metrics(Duration::from_secs(10), |t| {
        !t.contains("event=\"short-lived\"")
    })
    .await;
}

#[tokio::test]
async fn events_after_2038_are_stored_and_impossible_dates_are_422() {
    let stack = BookingStack::start().await;
    let api = stack.api();
    let create = |id: &str, starts: &str| {
        let api = api.clone();
        let body = json!({
            "id": id, "name": "Far future", "venue": "Hall",
            "starts_at": starts, "sale_opens_at": "2039-06-01T10:00:00.250Z",
            "seat_map": {"rows": 1, "seats_per_row": 1},
        });
        async move {
            api.send(
                api.http
                    .post(format!("{}/api/v1/admin/events", api.base()))
                    .bearer_auth(crate::support::ADMIN)
                    .json(&body),
            )
            .await
        }
    };
    let r = create("far", "2100-01-01T20:00:00Z").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["starts_at"], "2100-01-01T20:00:00Z");
    assert_eq!(r.body["sale_opens_at"], "2039-06-01T10:00:00.250Z");
    let read = api
        .send(api.http.get(format!("{}/api/v1/events/far", api.base())))
        .await;
    assert_eq!(read.body["starts_at"], "2100-01-01T20:00:00Z");
    let r = api
        .send(
            api.http
                .patch(format!("{}/api/v1/admin/events/far", api.base()))
                .bearer_auth(crate::support::ADMIN)
                .json(&json!({"starts_at": "9999-12-31T23:59:59.999Z"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["starts_at"], "9999-12-31T23:59:59.999Z");
    let r = create("ancient", "0999-12-31T00:00:00Z").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.code(), "validation_failed");
}

#[tokio::test]
async fn ipv6_fans_count_per_64_behind_a_trusted_proxy() {
    let stack =
        Stack::standalone_with(AppOptions::default().with("TRUSTED_PROXIES", "127.0.0.0/8")).await;
    let api = stack.api();
    api.configure(
        "ev",
        json!({"capacity": 0, "max_joins_per_source_per_minute": 2}),
    )
    .await;
    let join = |client: &str, from: &str| {
        let api = api.clone();
        let (client, from) = (client.to_string(), from.to_string());
        async move {
            api.send(
                api.http
                    .post(format!("{}/api/v1/events/ev/queue", api.base()))
                    .header("x-forwarded-for", from)
                    .json(&json!({ "client_id": client })),
            )
            .await
        }
    };
    // Three addresses of one /64 are one source.
    assert_eq!(
        join("a", "2001:db8:1:2::1").await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        join("b", "2001:db8:1:2::abcd").await.status,
        StatusCode::ACCEPTED
    );
    let third = join("c", "2001:db8:1:2:ffff:ffff:ffff:ffff").await;
    assert_eq!(
        third.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        third.body
    );
    // The next /64 is another source.
    assert_eq!(
        join("d", "2001:db8:1:3::1").await.status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn forwarded_requests_without_trusted_proxies_warn_once() {
    let redis = crate::support::RedisEnv::standalone();
    let keys = crate::support::keys();
    let app = AppProcess::spawn(&redis, &keys, "warns", AppOptions::default()).await;
    let api = app.api();
    for _ in 0..3 {
        api.send(
            api.http
                .get(format!("{}/health/live", api.base()))
                .header("x-forwarded-for", "203.0.113.9"),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(&app.log).unwrap();
    let warnings = log
        .lines()
        .filter(|l| l.contains("TRUSTED_PROXIES"))
        .count();
    assert_eq!(warnings, 1, "{log}");
}

#[tokio::test]
async fn hold_sweeps_that_fail_are_counted_and_logged() {
    let mut stack = BookingStack::start().await;
    let api = stack.api();
    stack.db.server.kill();
    let text = api
        .wait_metrics(Duration::from_secs(15), |t| {
            metric_value(t, "admission_background_errors_total{task=\"hold_sweep\"}")
                .is_some_and(|v| v >= 1.0)
        })
        .await;
    assert!(text.contains("hold_sweep"));
    // The queue is unaffected: the replica stays ready, degraded.
    let ready = api
        .send(api.http.get(format!("{}/health/ready", api.base())))
        .await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "degraded");
}

#[tokio::test]
async fn admission_tokens_carry_the_configured_issuer_and_audience() {
    let stack = BookingStack::start_with(
        AppOptions::default()
            .with("TOKEN_ISSUER", "https://queue.example")
            .with("TOKEN_AUDIENCE", "tickets.example"),
    )
    .await;
    let api = stack.api();
    api.create_event("ev", json!({"rows": 1, "seats_per_row": 4}))
        .await;
    api.configure("ev", json!({"capacity": 10, "admit_per_second": 100}))
        .await;
    let (_, token) = api.admitted("ev", "fan").await;
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], "https://queue.example");
    assert_eq!(claims["aud"], "tickets.example");
    // The booking routes take it.
    let r = api.hold("ev", &token, json!({"quantity": 1})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// Decisions applied out of order: an older one never undoes a newer one.
#[tokio::test]
async fn a_stale_sold_out_decision_is_ignored() {
    let stack = Stack::standalone().await;
    let api = stack.api();
    api.configure("ev", json!({})).await;
    let store = store_on(&stack.redis, &stack.keys);
    let queue = admission::queue::Queue::new(store, "");
    let ev = admission::queue::EventId::parse("ev").unwrap();
    assert!(queue.auto_sold_out(&ev, true, 5).await.unwrap());
    assert!(!queue.auto_sold_out(&ev, false, 4).await.unwrap(), "stale");
    assert_eq!(api.stats("ev").await["mode"], "sold_out");
    assert!(queue.auto_sold_out(&ev, false, 6).await.unwrap());
    assert_eq!(api.stats("ev").await["mode"], "fifo");
}

/// A confirm and a cancellation at the same moment on a nearly sold-out
/// event: whatever the order they commit and reach Redis, the queue's mode
/// ends as the database's count says, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_racing_cancellations_leave_the_right_mode() {
    let stack = BookingStack::start().await;
    let api = stack.api();
    api.create_event("ev", json!({"rows": 1, "seats_per_row": 4}))
        .await;
    api.configure("ev", json!({"capacity": 100, "admit_per_second": 1000}))
        .await;
    let mut reservations = Vec::new();
    for i in 0..3 {
        let (token, hold_id) = api
            .held("ev", &format!("first-{i}"), &format!("main-A-{}", i + 1))
            .await;
        let r = api.confirm(&hold_id, &token, None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        reservations.push(r.body["reservation_id"].as_str().unwrap().to_string());
    }
    assert_eq!(api.stats("ev").await["mode"], "fifo");
    for round in 0..10 {
        // The one free seat.
        let seats = api.seat_status("ev").await;
        let free = seats
            .iter()
            .find(|(_, s)| *s == "available")
            .map(|(id, _)| id.clone())
            .expect("a free seat");
        let (token, hold_id) = api.held("ev", &format!("round-{round}"), &free).await;
        let cancel = reservations.remove(0);
        let (confirmed, cancelled) = tokio::join!(api.confirm(&hold_id, &token, None), async {
            api.send(
                api.http
                    .delete(format!("{}/api/v1/reservations/{cancel}", api.base()))
                    .bearer_auth(crate::support::ADMIN),
            )
            .await
        });
        assert_eq!(confirmed.status, StatusCode::CREATED, "{}", confirmed.body);
        assert_eq!(
            cancelled.status,
            StatusCode::NO_CONTENT,
            "{}",
            cancelled.body
        );
        reservations.push(
            confirmed.body["reservation_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        let reserved: i64 = stack
            .db
            .sql("SELECT reserved FROM event_stock WHERE event_id = 'ev'")
            .parse()
            .unwrap();
        let counted: i64 = stack
            .db
            .sql("SELECT COUNT(*) FROM seat_claims WHERE event_id = 'ev' AND reservation_id IS NOT NULL")
            .parse()
            .unwrap();
        assert_eq!(reserved, counted, "the stock counts what is reserved");
        assert_eq!(reserved, 3);
        assert_eq!(api.stats("ev").await["mode"], "fifo", "round {round}");
    }
    // Selling the last seat switches it; cancelling one switches it back.
    let seats = api.seat_status("ev").await;
    let free = seats
        .iter()
        .find(|(_, s)| *s == "available")
        .unwrap()
        .0
        .clone();
    let (_, token) = api.admitted("ev", "last").await;
    let hold = api.hold("ev", &token, json!({"seat_ids": [free]})).await;
    api.confirm(hold.body["hold_id"].as_str().unwrap(), &token, None)
        .await;
    assert_eq!(api.stats("ev").await["mode"], "sold_out");
    let r = api
        .send(
            api.http
                .delete(format!(
                    "{}/api/v1/reservations/{}",
                    api.base(),
                    reservations[0]
                ))
                .bearer_auth(crate::support::ADMIN),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(api.stats("ev").await["mode"], "fifo");
}

/// The close frame a socket ends with (skipping other messages).
async fn close_frame(ws: &mut crate::support::Ws, timeout: Duration) -> Option<(u16, String)> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await.ok()?? {
            Ok(Message::Close(Some(frame))) => {
                return Some((u16::from(frame.code), frame.reason.to_string()))
            }
            Ok(Message::Close(None)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn a_ticket_keeps_at_most_its_sockets_and_the_newest_wins() {
    let stack =
        Stack::standalone_with(AppOptions::default().with("MAX_SOCKETS_PER_TICKET", "2")).await;
    let api = stack.api();
    api.configure("ev", json!({"capacity": 0})).await;
    let ticket = api.join_ticket("ev", "reloader").await;
    let mut first = crate::support::ws_connect(&api, "ev", &ticket).await;
    let mut second = crate::support::ws_connect(&api, "ev", &ticket).await;
    crate::support::ws_until(&mut second, "position", Duration::from_secs(5))
        .await
        .expect("the second socket is live");
    let mut third = crate::support::ws_connect(&api, "ev", &ticket).await;
    let (code, reason) = close_frame(&mut first, Duration::from_secs(5))
        .await
        .expect("the oldest socket is closed");
    assert_eq!(code, 1008);
    assert!(reason.contains("replaced"), "{reason}");
    for ws in [&mut second, &mut third] {
        assert!(
            crate::support::ws_until(ws, "position", Duration::from_secs(5))
                .await
                .is_some(),
            "the two newest stay live"
        );
    }
}

#[tokio::test]
async fn a_full_replica_refuses_new_sockets_with_retry_after() {
    let stack = Stack::standalone_with(AppOptions::default().with("MAX_SOCKETS", "3")).await;
    let api = stack.api();
    api.configure("ev", json!({"capacity": 0})).await;
    let mut open = Vec::new();
    for i in 0..3 {
        let t = api.join_ticket("ev", &format!("fan-{i}")).await;
        open.push(crate::support::ws_connect(&api, "ev", &t).await);
    }
    let extra = api.join_ticket("ev", "one-too-many").await;
    let refused = api
        .send(
            api.http
                .get(format!("{}/api/v1/events/ev/queue/{extra}/ws", api.base()))
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    assert_eq!(refused.code(), "unavailable");
    assert!(refused.headers.contains_key("retry-after"));
    // A place frees up when a socket closes.
    drop(open.pop());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio_tungstenite::connect_async(api.ws_url("ev", &extra)).await {
            Ok(_) => break,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "still refused: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test]
async fn large_reads_are_compressed_and_the_hot_path_is_not() {
    let stack = BookingStack::start().await;
    let api = stack.api();
    api.create_event("big", json!({"rows": 100, "seats_per_row": 100}))
        .await;
    api.configure("big", json!({"capacity": 0})).await;
    let plain = api
        .http
        .get(format!("{}/api/v1/events/big/seats", api.base()))
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.headers()["vary"], "accept-encoding");
    let plain_body = plain.bytes().await.unwrap();
    let plain_len = plain_body.len();
    for encoding in ["gzip", "br"] {
        let r = api
            .http
            .get(format!("{}/api/v1/events/big/seats", api.base()))
            .header("accept-encoding", encoding)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-encoding"], encoding);
        let body = r.bytes().await.unwrap();
        let len = body.len();
        assert!(
            len * 10 < plain_len,
            "{encoding}: {len} of {plain_len} bytes"
        );
        if encoding == "gzip" {
            // The cached gzip, sent as it is: the same seats as the plain map.
            use std::io::Read;
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut json)
                .unwrap();
            assert_eq!(json, plain_body);
        }
    }
    // Joins and statuses are never compressed, whatever the client accepts.
    let join = api
        .http
        .post(format!("{}/api/v1/events/big/queue", api.base()))
        .header("accept-encoding", "gzip, br")
        .json(&json!({"client_id": "fan-with-a-long-enough-client-id-to-matter"}))
        .send()
        .await
        .unwrap();
    assert!(join.headers().get("content-encoding").is_none());
    let ticket: serde_json::Value = join.json().await.unwrap();
    let status = api
        .http
        .get(format!(
            "{}/api/v1/events/big/queue/{}",
            api.base(),
            ticket["ticket"].as_str().unwrap()
        ))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert!(status.headers().get("content-encoding").is_none());
}

/// A confirm touches its own fan's rows only: with other fans' holds of the
/// event locked (as their own confirms or the sweeper lock them), a fan's
/// confirm still goes through at once. When it locked every hold of the
/// event, it waited here for the lock timeout, and concurrent confirms
/// deadlocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirm_never_waits_for_other_fans_holds() {
    use sqlx::Connection;
    let stack = BookingStack::start().await;
    let api = stack.api();
    api.create_event("ev", json!({"rows": 1, "seats_per_row": 10}))
        .await;
    api.configure("ev", json!({"capacity": 100, "admit_per_second": 1000}))
        .await;
    // Several other fans, so that whatever the tickets' order, one of them
    // sits next to the confirming fan's in every index.
    let mut others = Vec::new();
    for i in 0..6 {
        let (_, hold_id) = api
            .held("ev", &format!("other-{i}"), &format!("main-A-{}", i + 2))
            .await;
        others.push(hold_id);
    }
    // Holds of earlier events, as a busy season leaves them: the planner
    // then reads this event's holds through an index, as in production,
    // not by scanning a table of a few rows.
    api.create_event("earlier", json!({"rows": 1, "seats_per_row": 1}))
        .await;
    stack.db.sql(
        "INSERT INTO holds (id, event_id, ticket, status, created_at, expires_at) \
         SELECT CONCAT('old-', seq), 'earlier', CONCAT('t-', seq), 'expired', NOW(3), NOW(3) \
         FROM seq_1_to_5000; ANALYZE TABLE holds",
    );
    let (token, mine) = api.held("ev", "mine", "main-A-1").await;
    let mut conn = sqlx::MySqlConnection::connect(&stack.db.app_url)
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    for id in &others {
        sqlx::query("SELECT id FROM holds WHERE id = ? FOR UPDATE")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    }
    let confirmed = tokio::time::timeout(Duration::from_secs(10), api.confirm(&mine, &token, None))
        .await
        .expect("the confirm waited for other fans' holds");
    assert_eq!(confirmed.status, StatusCode::CREATED, "{}", confirmed.body);
    tx.rollback().await.unwrap();
    // The others' holds are untouched and still confirmable.
    let seats = api.seat_status("ev").await;
    assert_eq!(seats["main-A-1"], "reserved");
    for i in 2..8 {
        assert_eq!(seats[&format!("main-A-{i}")], "held", "main-A-{i}");
    }
}

/// The booking caches (`booking::keys`): a copy read before a change
/// commits must not be stored as the fresh copy after that change deleted
/// it (a fan would miss their own hold for the seat map's TTL, everyone a
/// changed event for 30 s). A read takes the version before its query and
/// stores through `CACHE_PUT`, which compares it; every change runs
/// `CACHE_CHANGED` after its commit. On one Redis and on a cluster (an
/// event's keys share a slot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_read_before_a_change_is_never_cached_as_fresh() {
    use admission::booking::keys::{
        event_cache_key, event_version_key, seats_cache_key, seats_stale_key, seats_version_key,
        CACHE_CHANGED, CACHE_PUT,
    };
    let keys = keys();
    for redis in [RedisEnv::standalone(), RedisEnv::cluster()] {
        let store = store_on(&redis, &keys);
        let ev = admission::queue::EventId::parse("ev").unwrap();
        let [version, fresh, last] = [
            seats_version_key("", &ev),
            seats_cache_key("", &ev),
            seats_stale_key("", &ev),
        ];
        let get = |key: String| {
            let store = store.clone();
            async move {
                let mut cmd = redis::cmd("GET");
                cmd.arg(&key);
                match store.query("GET", &cmd).await.unwrap() {
                    redis::Value::BulkString(b) => Some(b),
                    _ => None,
                }
            }
        };
        let put = |before: Vec<u8>, map: &'static [u8]| {
            let store = store.clone();
            let keys = [version.clone(), fresh.clone(), last.clone()];
            async move {
                let args: [&[u8]; 4] = [&before, map, b"2000", b"30000"];
                store.eval(&CACHE_PUT, &keys, &args).await.unwrap()
            }
        };
        let changed = |with_last: bool| {
            let store = store.clone();
            let mut keys = vec![version.clone(), fresh.clone()];
            if with_last {
                keys.push(last.clone());
            }
            async move {
                store
                    .eval(&CACHE_CHANGED, &keys, &["86400000"])
                    .await
                    .unwrap();
            }
        };

        // Read before any change (no version yet), a hold commits, then
        // the map is stored: only as the last copy.
        let before = get(version.clone()).await.unwrap_or_default();
        changed(false).await;
        assert_eq!(put(before, b"map-1").await, redis::Value::Int(0));
        assert_eq!(get(fresh.clone()).await, None, "not served as fresh");
        assert_eq!(get(last.clone()).await.as_deref(), Some(&b"map-1"[..]));

        // Read after the change, nothing in between: stored as fresh.
        let before = get(version.clone()).await.unwrap();
        assert_eq!(before, b"1");
        assert_eq!(put(before, b"map-2").await, redis::Value::Int(1));
        assert_eq!(get(fresh.clone()).await.as_deref(), Some(&b"map-2"[..]));

        // The next change deletes it; an event's change both copies; the
        // version keeps a TTL.
        let before = get(version.clone()).await.unwrap();
        changed(false).await;
        assert_eq!(get(fresh.clone()).await, None);
        assert_eq!(put(before, b"map-3").await, redis::Value::Int(0));
        changed(true).await;
        assert_eq!(get(last.clone()).await, None);
        assert_eq!(get(version.clone()).await.as_deref(), Some(&b"3"[..]));
        let mut pttl = redis::cmd("PTTL");
        pttl.arg(&version);
        match store.query("PTTL", &pttl).await.unwrap() {
            redis::Value::Int(ms) => assert!(ms > 86_000_000, "{ms}"),
            other => panic!("{other:?}"),
        }

        // A copy without a last copy (an event's JSON): the same rule.
        let keys = [event_version_key("", &ev), event_cache_key("", &ev)];
        let before = get(keys[0].clone()).await.unwrap_or_default();
        store
            .eval(&CACHE_CHANGED, &keys[..1], &["86400000"])
            .await
            .unwrap();
        let args: [&[u8]; 4] = [&before, b"event-1", b"30000", b""];
        let put = store.eval(&CACHE_PUT, &keys, &args).await.unwrap();
        assert_eq!(put, redis::Value::Int(0));
        assert_eq!(get(keys[1].clone()).await, None);
        let args: [&[u8]; 4] = [b"1", b"event-2", b"30000", b""];
        let put = store.eval(&CACHE_PUT, &keys, &args).await.unwrap();
        assert_eq!(put, redis::Value::Int(1));
        assert_eq!(get(keys[1].clone()).await.as_deref(), Some(&b"event-2"[..]));
    }
}
