//! Queue rules, each proved twice: on standalone Redis with the app
//! in-process, and on a 3-master cluster through three app processes (every
//! call to the next replica). Modes, expiry, the rate, identities, the
//! abuse limit and the pre-queue draw.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

fn ticket(r: &Reply) -> String {
    r.body["ticket"].as_str().expect("ticket").to_string()
}

async fn join_many(api: &Api, event: &str, n: usize) -> Vec<String> {
    let mut tickets = Vec::new();
    for i in 0..n {
        let r = api.join(event, &format!("fan-{i}")).await;
        assert!(r.status.is_success(), "{}", r.body);
        tickets.push(ticket(&r));
    }
    tickets
}

async fn paused_queues_everyone_and_resuming_admits_in_order(stack: Stack) {
    let api = stack.api();
    api.configure("ev", json!({"capacity": 10, "mode": "paused"}))
        .await;
    let tickets = join_many(&api, "ev", 3).await;
    let s = api.status("ev", &tickets[0]).await;
    assert_eq!(s.body["state"], "queued");
    assert!(
        s.body["estimated_wait_seconds"].is_null(),
        "paused: no rate"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.stats("ev").await["active"], 0);
    api.configure("ev", json!({"capacity": 10})).await;
    for t in &tickets {
        api.wait_status("ev", t, Duration::from_secs(3), |s| {
            s["state"] == "admitted"
        })
        .await;
    }
}

async fn passthrough_admits_everyone_beyond_capacity_and_rate(stack: Stack) {
    let api = stack.api();
    api.configure(
        "ev",
        json!({"capacity": 1, "admit_per_second": 1, "mode": "passthrough"}),
    )
    .await;
    for i in 0..20 {
        let r = api.join("ev", &format!("fan-{i}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    assert_eq!(api.stats("ev").await["active"], 20);
}

async fn closed_refuses_new_joins_but_still_admits_those_waiting(stack: Stack) {
    let api = stack.api();
    api.configure("ev", json!({"capacity": 0})).await;
    let tickets = join_many(&api, "ev", 2).await;
    api.configure("ev", json!({"capacity": 0, "mode": "closed"}))
        .await;
    let r = api.join("ev", "newcomer").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "queue_closed");
    let again = api.join("ev", "fan-0").await;
    assert_eq!(
        again.status,
        StatusCode::ACCEPTED,
        "a fan already queued keeps the place"
    );
    assert_eq!(ticket(&again), tickets[0]);
    api.configure("ev", json!({"capacity": 5, "mode": "closed"}))
        .await;
    for t in &tickets {
        api.wait_status("ev", t, Duration::from_secs(3), |s| {
            s["state"] == "admitted"
        })
        .await;
    }
}

async fn sold_out_reaches_every_waiting_fan_and_the_way_back_restores_positions(stack: Stack) {
    let api = stack.api();
    api.configure("ev", json!({"capacity": 0})).await;
    let tickets = join_many(&api, "ev", 5).await;
    let mut sockets = Vec::new();
    for t in &tickets[..2] {
        let mut ws = ws_connect(&api, "ev", t).await;
        ws_until(&mut ws, "position", Duration::from_secs(2))
            .await
            .expect("position on connect");
        sockets.push(ws);
    }
    api.configure("ev", json!({"capacity": 0, "mode": "sold_out"}))
        .await;
    for ws in &mut sockets {
        let m = ws_until(ws, "sold_out", Duration::from_secs(2)).await;
        assert_eq!(m, Some(json!({"type": "sold_out"})));
    }
    for t in &tickets {
        let s = api.status("ev", t).await;
        assert_eq!(s.body["state"], "sold_out");
        assert!(s.body.get("position").is_none());
    }
    let r = api.join("ev", "newcomer").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "sold_out");

    api.configure("ev", json!({"capacity": 0})).await;
    for (i, t) in tickets.iter().enumerate() {
        let s = api.status("ev", t).await;
        assert_eq!(s.body["state"], "queued");
        assert_eq!(s.body["position"], i + 1, "the place was kept");
    }
    for ws in &mut sockets {
        ws_until(ws, "position", Duration::from_secs(2))
            .await
            .expect("position again");
    }
}

async fn random_mode_admits_among_all_who_wait(stack: Stack) {
    let api = stack.api();
    api.configure("ev", json!({"capacity": 0})).await;
    let tickets = join_many(&api, "ev", 40).await;
    api.configure("ev", json!({"capacity": 10, "mode": "random"}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while api.stats("ev").await["active"] != 10 {
        assert!(Instant::now() < deadline, "10 admitted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut admitted = Vec::new();
    for (i, t) in tickets.iter().enumerate() {
        if api.status("ev", t).await.body["state"] == "admitted" {
            admitted.push(i);
        }
    }
    assert_eq!(admitted.len(), 10);
    // The first ten in arrival order would be chosen with probability
    // 1 / C(40, 10), about 1 in 850 million.
    assert_ne!(admitted, (0..10).collect::<Vec<_>>());
}

async fn an_admitted_session_without_heartbeat_expires_and_frees_its_place(stack: Stack) {
    let api = stack.api();
    api.configure("ev", json!({"capacity": 1, "session_timeout_seconds": 1}))
        .await;
    let a = ticket(&api.join("ev", "a").await);
    let b = ticket(&api.join("ev", "b").await);
    // b keeps polling (wait_status polls), a goes silent.
    api.wait_status("ev", &b, Duration::from_secs(4), |s| {
        s["state"] == "admitted"
    })
    .await;
    assert_eq!(api.status("ev", &a).await.body["state"], "expired");
    assert_eq!(api.heartbeat("ev", &a).await.status, StatusCode::GONE);
    // After expiry, joining again is a new arrival with a new ticket.
    let again = api.join("ev", "a").await;
    assert_ne!(ticket(&again), a);
}

async fn heartbeats_keep_a_session_only_until_session_max(stack: Stack) {
    let api = stack.api();
    api.configure(
        "ev",
        json!({"capacity": 1, "session_timeout_seconds": 1, "session_max_seconds": 3}),
    )
    .await;
    let r = api.join("ev", "a").await;
    let a = ticket(&r);
    let started = Instant::now();
    let mut expired_after = None;
    while started.elapsed() < Duration::from_secs(6) {
        let hb = api.heartbeat("ev", &a).await;
        if hb.status == StatusCode::GONE {
            expired_after = Some(started.elapsed());
            break;
        }
        assert_eq!(hb.status, StatusCode::NO_CONTENT);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let after = expired_after.expect("the session ended despite heartbeats");
    assert!(
        after >= Duration::from_millis(1800),
        "heartbeats kept it past the idle timeout ({after:?})"
    );
    assert_eq!(api.status("ev", &a).await.body["state"], "expired");
}

async fn a_waiting_fan_who_stops_polling_loses_the_place_and_no_capacity_is_spent_on_them(
    stack: Stack,
) {
    let api = stack.api();
    api.configure(
        "ev",
        json!({"capacity": 0, "queue_idle_timeout_seconds": 1}),
    )
    .await;
    let a = ticket(&api.join("ev", "a").await);
    let b = ticket(&api.join("ev", "b").await);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        assert_eq!(api.heartbeat("ev", &b).await.status, StatusCode::NO_CONTENT);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(api.status("ev", &b).await.body["position"], 1);
    api.configure(
        "ev",
        json!({"capacity": 1, "queue_idle_timeout_seconds": 1}),
    )
    .await;
    api.wait_status("ev", &b, Duration::from_secs(3), |s| {
        s["state"] == "admitted"
    })
    .await;
    assert_eq!(api.status("ev", &a).await.body["state"], "expired");
    assert_eq!(api.stats("ev").await["admitted_total"], 1);
}

async fn admissions_never_exceed_the_rate_in_any_window(stack: Stack) {
    let api = stack.api();
    let redis = &stack.redis;
    // At join: a full bucket admits exactly `admit_per_second` at once.
    api.configure("burst", json!({"capacity": 100, "admit_per_second": 3}))
        .await;
    let mut codes = Vec::new();
    for i in 0..8 {
        codes.push(api.join("burst", &format!("fan-{i}")).await.status.as_u16());
    }
    assert_eq!(codes, [200, 200, 200, 202, 202, 202, 202, 202]);

    // From the queue, over several seconds, by the server's own clock.
    api.configure(
        "ev",
        json!({"capacity": 1000, "admit_per_second": 5, "mode": "paused"}),
    )
    .await;
    let tickets = join_many(&api, "ev", 40).await;
    api.configure("ev", json!({"capacity": 1000, "admit_per_second": 5}))
        .await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(4200) {
        for t in &tickets {
            api.heartbeat("ev", t).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let times: Vec<u64> = ticket_records(redis, "", "ev")
        .into_iter()
        .filter_map(|(_, state, _, admitted)| (state == 'a').then_some(admitted).flatten())
        .collect();
    assert!(
        times.len() >= 15,
        "the rate is reached: {} admitted",
        times.len()
    );
    assert!(
        max_in_window(times.clone(), 1000) <= 5,
        "at most 5 in any second: {times:?}"
    );
    assert!(max_in_window(times.clone(), 2000) <= 10);
}

async fn the_rate_holds_up_over_time(stack: Stack) {
    let api = stack.api();
    // Capacity 8 and sessions that end after a second: most runs of the
    // loop find no room and admit nobody. Those runs must not eat into the
    // tokens of the seconds that follow.
    let config = json!({"capacity": 8, "admit_per_second": 10, "session_timeout_seconds": 1});
    let mut paused = config.clone();
    paused["mode"] = json!("paused");
    api.configure("ev", paused).await;
    let tickets = join_many(&api, "ev", 80).await;
    api.configure("ev", config).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        for t in &tickets {
            api.status("ev", t).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut times: Vec<u64> = ticket_records(&stack.redis, "", "ev")
        .into_iter()
        .filter_map(|(_, _, _, admitted)| admitted)
        .collect();
    times.sort_unstable();
    assert!(max_in_window(times.clone(), 1000) <= 10);
    // Sessions last about a second, so about 8 are admitted a second.
    let last = times[times.len() - 1];
    let recent = times.iter().filter(|t| **t + 4000 > last).count();
    assert!(recent >= 20, "{recent} admitted in the last 4 s");
}

async fn identity_tokens_decide_who_holds_a_place(stack: Stack) {
    let api = stack.api();
    let keys = &stack.keys;
    api.configure("ev", json!({"capacity": 0, "require_identity": true}))
        .await;
    let now = admission::clock::now_ms() / 1000;
    let sign = |claims: Value| {
        admission::token::sign_with_pem(&keys.identity_private, "site", &claims).unwrap()
    };
    let join = |body: Value| {
        let api = api.clone();
        async move {
            api.send(
                api.http
                    .post(format!("{}/api/v1/events/ev/queue", api.base()))
                    .json(&body),
            )
            .await
        }
    };
    let r = join(json!({"client_id": "anon"})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "unauthorized");
    let r = join(json!({"identity_token": "not.a.jwt"})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let other = tempfile::tempdir().unwrap();
    admission::token::write_key_pair(&other.path().join("k.pem")).unwrap();
    let foreign_pem = std::fs::read_to_string(other.path().join("k.pem")).unwrap();
    let foreign = admission::token::sign_with_pem(
        &foreign_pem,
        "site",
        &json!({"sub": "u1", "iat": now, "exp": now + 60, "event_id": "ev"}),
    )
    .unwrap();
    assert_eq!(
        join(json!({"identity_token": foreign})).await.status,
        StatusCode::UNAUTHORIZED
    );
    let expired = sign(json!({"sub": "u1", "iat": now - 300, "exp": now - 120, "event_id": "ev"}));
    assert_eq!(
        join(json!({"identity_token": expired})).await.status,
        StatusCode::UNAUTHORIZED
    );
    let wrong_event = sign(json!({"sub": "u1", "iat": now, "exp": now + 60, "event_id": "other"}));
    assert_eq!(
        join(json!({"identity_token": wrong_event})).await.status,
        StatusCode::UNAUTHORIZED
    );
    // iat is required, and a token may live an hour at most.
    for claims in [
        json!({"sub": "u1", "exp": now + 60, "event_id": "ev"}),
        json!({"sub": "u1", "iat": now, "exp": now + 7200, "event_id": "ev"}),
    ] {
        assert_eq!(
            join(json!({"identity_token": sign(claims.clone())}))
                .await
                .status,
            StatusCode::UNAUTHORIZED,
            "{claims}"
        );
    }
    // A token without event_id is a site-wide login token: refused unless
    // its aud is the service's IDENTITY_AUDIENCE (none is set here), so a
    // token signed for one event cannot be replayed on another.
    let site_wide = sign(json!({"sub": "u1", "iat": now, "exp": now + 60, "aud": "tickets"}));
    assert_eq!(
        join(json!({"identity_token": site_wide})).await.status,
        StatusCode::UNAUTHORIZED
    );

    let first = join(json!({"identity_token": sign(json!({"sub": "u1", "iat": now, "exp": now + 60, "event_id": "ev"})), "client_id": "browser-1"})).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let same = join(json!({"identity_token": sign(json!({"sub": "u1", "iat": now, "exp": now + 90, "event_id": "ev"})), "client_id": "browser-2"})).await;
    assert_eq!(
        ticket(&same),
        ticket(&first),
        "one place per identity, whatever the browser"
    );
    let other_user =
        join(json!({"identity_token": sign(json!({"sub": "u2", "iat": now, "exp": now + 60, "event_id": "ev"}))})).await;
    assert_ne!(ticket(&other_user), ticket(&first));
    assert_eq!(other_user.body["position"], 2);
}

async fn joins_per_source_are_limited_with_retry_after(stack: Stack) {
    let api = stack.api();
    api.configure(
        "ev",
        json!({"capacity": 0, "max_joins_per_source_per_minute": 3}),
    )
    .await;
    let join_from = |addr: &'static str, id: String| {
        let api = api.clone();
        async move {
            api.send(
                api.http
                    .post(format!("{}/api/v1/events/ev/queue", api.base()))
                    .header("x-forwarded-for", addr)
                    .json(&json!({"client_id": id})),
            )
            .await
        }
    };
    for i in 0..3 {
        assert_eq!(
            join_from("203.0.113.1", format!("a{i}")).await.status,
            StatusCode::ACCEPTED
        );
    }
    let limited = join_from("203.0.113.1", "a9".into()).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(
        join_from("203.0.113.2", "b0".into()).await.status,
        StatusCode::ACCEPTED
    );
}

async fn the_pre_queue_is_drawn_at_opening_ahead_of_later_joins_and_replayable(stack: Stack) {
    let api = stack.api();
    let opens_ms = admission::clock::now_ms() + 2500;
    let opens_at = admission::clock::format_ms(opens_ms);
    api.configure("ev", json!({"capacity": 0, "opens_at": opens_at}))
        .await;
    let mut pre = Vec::new();
    for i in 0..30 {
        let r = api.join("ev", &format!("early-{i}")).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        assert_eq!(r.body["opens_at"], opens_at);
        assert!(r.body.get("position").is_none());
        pre.push(ticket(&r));
    }
    assert!(api.stats("ev").await.get("shuffle_seed").is_none());
    // Wait for the opening and the draw.
    api.wait_status("ev", &pre[0], Duration::from_secs(8), |s| {
        s["position"].is_u64()
    })
    .await;
    let mut later = Vec::new();
    for i in 0..10 {
        let r = api.join("ev", &format!("late-{i}")).await;
        assert_eq!(r.body["position"], 31 + i, "{}", r.body);
        later.push(ticket(&r));
    }
    let mut positions = Vec::new();
    for t in &pre {
        positions.push(api.status("ev", t).await.body["position"].as_u64().unwrap());
    }
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=30).collect::<Vec<u64>>(),
        "the pre-queue fills places 1..30"
    );
    assert_ne!(
        positions,
        (1..=30).collect::<Vec<u64>>(),
        "and is not in arrival order"
    );
    let stats = api.stats("ev").await;
    let seed = admission::queue::draw::parse_seed(stats["shuffle_seed"].as_str().unwrap()).unwrap();
    let order = admission::queue::draw::draw_order(30, seed);
    for (k, &joined) in order.iter().enumerate() {
        assert_eq!(positions[joined], k as u64 + 1, "replayed from the seed");
    }
}

fn behind_a_proxy() -> AppOptions {
    AppOptions::default().with("TRUSTED_PROXIES", "127.0.0.1/32")
}

mod joins_per_source_are_limited_with_retry_after {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn standalone() {
        super::joins_per_source_are_limited_with_retry_after(
            Stack::standalone_with(behind_a_proxy()).await,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster() {
        super::joins_per_source_are_limited_with_retry_after(
            Stack::cluster_with(behind_a_proxy()).await,
        )
        .await
    }
}

crate::on_standalone_and_cluster!(
    the_rate_holds_up_over_time,
    paused_queues_everyone_and_resuming_admits_in_order,
    passthrough_admits_everyone_beyond_capacity_and_rate,
    closed_refuses_new_joins_but_still_admits_those_waiting,
    sold_out_reaches_every_waiting_fan_and_the_way_back_restores_positions,
    random_mode_admits_among_all_who_wait,
    an_admitted_session_without_heartbeat_expires_and_frees_its_place,
    heartbeats_keep_a_session_only_until_session_max,
    a_waiting_fan_who_stops_polling_loses_the_place_and_no_capacity_is_spent_on_them,
    admissions_never_exceed_the_rate_in_any_window,
    identity_tokens_decide_who_holds_a_place,
    the_pre_queue_is_drawn_at_opening_ahead_of_later_joins_and_replayable,
);
