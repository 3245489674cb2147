//! The WebSocket view, on standalone Redis (app in-process) and on a
//! cluster through three app processes (socket and calls on different
//! replicas).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

async fn a_socket_hears_its_position_the_notice_and_its_admission(stack: Stack) {
    let api = stack.api();
    api.configure("ev", json!({"capacity": 1})).await;
    let a = api.join_ticket("ev", "a").await;
    let b = api.join_ticket("ev", "b").await;
    let mut ws = ws_connect(&api, "ev", &b).await;
    let first = ws_next(&mut ws, Duration::from_secs(2)).await.unwrap();
    assert_eq!(first["type"], "position");
    assert_eq!(first["position"], 1);
    assert!(first["estimated_wait_seconds"].is_u64());
    // Refreshed at least every 2 s while queued.
    let again = ws_until(&mut ws, "position", Duration::from_millis(2500)).await;
    assert_eq!(again.unwrap()["position"], 1);

    api.configure("ev", json!({"capacity": 1, "message": "Doors open at 8"}))
        .await;
    let notice = ws_until(&mut ws, "message", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        notice,
        json!({"type": "message", "text": "Doors open at 8"})
    );

    let left_at = Instant::now();
    api.leave("ev", &a).await;
    let admitted = ws_until(&mut ws, "admitted", Duration::from_secs(3))
        .await
        .unwrap();
    let latency = left_at.elapsed();
    assert!(admitted["token"].as_str().unwrap().split('.').count() == 3);
    assert!(admitted["expires_at"].as_str().unwrap().ends_with('Z'));
    eprintln!("admission reached the socket {latency:?} after the leave");
    assert!(latency < Duration::from_millis(1500), "{latency:?}");
}

async fn an_open_socket_keeps_a_session_alive_and_closing_it_lets_it_expire(stack: Stack) {
    let api = stack.api();
    // The hub counts presence once a second: a 2 s timeout leaves a
    // second of slack for a busy machine (with 1 s, one late poll expired
    // the fan in a loaded CI run).
    api.configure("ev", json!({"capacity": 1, "session_timeout_seconds": 2}))
        .await;
    let a = api.join_ticket("ev", "a").await;
    let mut ws = ws_connect(&api, "ev", &a).await;
    assert_eq!(
        ws_next(&mut ws, Duration::from_secs(2)).await.unwrap()["type"],
        "admitted"
    );
    tokio::time::sleep(Duration::from_millis(5000)).await;
    assert_eq!(
        api.status("ev", &a).await.body["state"],
        "admitted",
        "the socket is presence"
    );
    drop(ws);
    api.wait_status("ev", &a, Duration::from_secs(6), |s| {
        s["state"] == "expired"
    })
    .await;
}

async fn a_socket_is_told_when_its_ticket_expires(stack: Stack) {
    let api = stack.api();
    api.configure("ev", json!({"capacity": 1, "session_max_seconds": 1}))
        .await;
    let a = api.join_ticket("ev", "a").await;
    let mut ws = ws_connect(&api, "ev", &a).await;
    assert_eq!(
        ws_next(&mut ws, Duration::from_secs(2)).await.unwrap()["type"],
        "admitted"
    );
    let expired = ws_until(&mut ws, "expired", Duration::from_secs(4)).await;
    assert_eq!(expired, Some(json!({"type": "expired"})));
    assert!(
        ws_next(&mut ws, Duration::from_secs(2)).await.is_none(),
        "then the socket closes"
    );
}

async fn unknown_tickets_are_refused_before_the_upgrade(stack: Stack) {
    let api = stack.api();
    api.configure("ev", json!({})).await;
    let err = tokio_tungstenite::connect_async(api.ws_url("ev", "AAAAAAAAAAAAAAAAAAAAAA"))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 404),
        other => panic!("expected a 404, got {other:?}"),
    }
}

crate::on_standalone_and_cluster!(
    a_socket_hears_its_position_the_notice_and_its_admission,
    an_open_socket_keeps_a_session_alive_and_closing_it_lets_it_expire,
    a_socket_is_told_when_its_ticket_expires,
    unknown_tickets_are_refused_before_the_upgrade,
);
