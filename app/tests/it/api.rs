//! The HTTP contract on standalone Redis, with the app in-process.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

async fn setup() -> (RedisEnv, Keys, TestApp) {
    let redis = RedisEnv::standalone();
    let keys = keys();
    let app = TestApp::spawn(&redis, &keys, AppOptions::default()).await;
    (redis, keys, app)
}

#[tokio::test]
async fn joins_are_admitted_up_to_capacity_then_queued_in_order() {
    let (_r, _k, app) = setup().await;
    let api = app.api();
    api.configure("ev", json!({"capacity": 2})).await;
    for i in 0..2 {
        let r = api.join("ev", &format!("fan-{i}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["state"], "admitted");
        assert!(r.body["token"].as_str().unwrap().split('.').count() == 3);
        assert!(r.body["expires_at"].as_str().unwrap().ends_with('Z'));
        assert!(r.body.get("position").is_none());
    }
    for i in 0..3 {
        let r = api.join("ev", &format!("late-{i}")).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        assert_eq!(r.body["state"], "queued");
        assert_eq!(r.body["position"], i + 1);
        assert!(r.body["estimated_wait_seconds"].is_u64());
        assert!(r.body.get("token").is_none());
        assert_eq!(r.body["ticket"].as_str().unwrap().len(), 22);
    }
    let stats = api.stats("ev").await;
    assert_eq!(stats["queued"], 3);
    assert_eq!(stats["active"], 2);
    assert_eq!(stats["capacity"], 2);
    assert_eq!(stats["admitted_total"], 2);
    assert_eq!(stats["mode"], "fifo");
    assert!(stats["last_admit_at"].as_str().unwrap().ends_with('Z'));
    assert!(stats.get("opens_at").is_none());
    assert!(stats.get("shuffle_seed").is_none());
}

#[tokio::test]
async fn rejoining_returns_the_same_ticket_and_leaving_starts_over_at_the_back() {
    let (_r, _k, app) = setup().await;
    let api = app.api();
    api.configure("ev", json!({"capacity": 0})).await;
    let first = api.join("ev", "fan-a").await;
    api.join("ev", "fan-b").await;
    let again = api.join("ev", "fan-a").await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.body["ticket"], first.body["ticket"]);
    assert_eq!(again.body["position"], 1);
    let ticket = first.body["ticket"].as_str().unwrap();
    assert_eq!(api.leave("ev", ticket).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.status("ev", ticket).await.body["state"], "left");
    let back = api.join("ev", "fan-a").await;
    assert_ne!(back.body["ticket"], first.body["ticket"]);
    assert_eq!(back.body["position"], 2, "a new arrival goes to the back");
}

#[tokio::test]
async fn leaving_frees_a_place_at_once_and_the_next_fan_is_admitted() {
    let (_r, _k, app) = setup().await;
    let api = app.api();
    api.configure("ev", json!({"capacity": 1})).await;
    let a = api.join("ev", "a").await;
    let b = api.join("ev", "b").await;
    assert_eq!(b.body["state"], "queued");
    let ta = a.body["ticket"].as_str().unwrap();
    let tb = b.body["ticket"].as_str().unwrap();
    assert_eq!(api.leave("ev", ta).await.status, StatusCode::NO_CONTENT);
    // Idempotent.
    assert_eq!(api.leave("ev", ta).await.status, StatusCode::NO_CONTENT);
    let stats = api.stats("ev").await;
    assert!(
        stats["active"] == 0 || stats["active"] == 1 && stats["queued"] == 0,
        "{stats}"
    );
    api.wait_status("ev", tb, Duration::from_secs(2), |s| {
        s["state"] == "admitted"
    })
    .await;
}

#[tokio::test]
async fn heartbeat_keeps_tickets_and_is_gone_after_leaving() {
    let (_r, _k, app) = setup().await;
    let api = app.api();
    api.configure("ev", json!({"capacity": 1})).await;
    let a = api.join_ticket("ev", "a").await;
    let b = api.join_ticket("ev", "b").await;
    assert_eq!(api.heartbeat("ev", &a).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.heartbeat("ev", &b).await.status, StatusCode::NO_CONTENT);
    api.leave("ev", &b).await;
    let r = api.heartbeat("ev", &b).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.code(), "gone");
}

#[tokio::test]
async fn bad_inputs_get_the_exact_status_and_code() {
    let (_r, _k, app) = setup().await;
    let api = app.api();
    api.configure("ev", json!({"capacity": 0})).await;
    let ticket = api.join_ticket("ev", "x").await;
    let base = &api.base();
    let h = &api.http;
    let big = format!("{{\"client_id\":\"{}\"}}", "a".repeat(17_000));
    let unknown_ticket = "AAAAAAAAAAAAAAAAAAAAAA";
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            "malformed json",
            h.post(format!("{base}/api/v1/events/ev/queue"))
                .body("{not json"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "empty body",
            h.post(format!("{base}/api/v1/events/ev/queue")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "wrong type",
            h.post(format!("{base}/api/v1/events/ev/queue"))
                .json(&json!({"client_id": 7})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "unknown field",
            h.post(format!("{base}/api/v1/events/ev/queue"))
                .json(&json!({"client_id": "a", "vip": true})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "json array",
            h.post(format!("{base}/api/v1/events/ev/queue"))
                .json(&json!(["a"])),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "missing client_id",
            h.post(format!("{base}/api/v1/events/ev/queue"))
                .json(&json!({})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "bad event id",
            h.post(format!("{base}/api/v1/events/Bad_Event/queue"))
                .json(&json!({"client_id": "a"})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "event id too long",
            h.get(format!("{base}/api/v1/events/{}/queue", "a".repeat(65))),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "bad ticket",
            h.get(format!("{base}/api/v1/events/ev/queue/not-a-ticket")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "client_id with space",
            h.post(format!("{base}/api/v1/events/ev/queue"))
                .json(&json!({"client_id": "a b"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "client_id too long",
            h.post(format!("{base}/api/v1/events/ev/queue"))
                .json(&json!({"client_id": "a".repeat(129)})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "empty client_id",
            h.post(format!("{base}/api/v1/events/ev/queue"))
                .json(&json!({"client_id": ""})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "unknown event",
            h.post(format!("{base}/api/v1/events/nope/queue"))
                .json(&json!({"client_id": "a"})),
            StatusCode::NOT_FOUND,
            "event_not_found",
        ),
        (
            "stats of unknown event",
            h.get(format!("{base}/api/v1/events/nope/queue")),
            StatusCode::NOT_FOUND,
            "event_not_found",
        ),
        (
            "unknown ticket",
            h.get(format!("{base}/api/v1/events/ev/queue/{unknown_ticket}")),
            StatusCode::NOT_FOUND,
            "ticket_not_found",
        ),
        (
            "heartbeat unknown ticket",
            h.post(format!(
                "{base}/api/v1/events/ev/queue/{unknown_ticket}/heartbeat"
            )),
            StatusCode::NOT_FOUND,
            "ticket_not_found",
        ),
        (
            "ticket of unknown event",
            h.get(format!("{base}/api/v1/events/nope/queue/{ticket}")),
            StatusCode::NOT_FOUND,
            "event_not_found",
        ),
        (
            "body over 16 KiB",
            h.post(format!("{base}/api/v1/events/ev/queue"))
                .header("content-type", "application/json")
                .body(big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "unknown route",
            h.get(format!("{base}/api/v2/nothing")),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "wrong method",
            h.patch(format!("{base}/api/v1/events/ev/queue")),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "websocket without upgrade",
            h.get(format!("{base}/api/v1/events/ev/queue/{ticket}/ws")),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "admin without token",
            h.put(format!("{base}/api/v1/admin/events/ev/queue"))
                .json(&json!({})),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "admin with wrong token",
            h.put(format!("{base}/api/v1/admin/events/ev/queue"))
                .bearer_auth("wrong-token-0000000000")
                .json(&json!({})),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "admin get without token",
            h.get(format!("{base}/api/v1/admin/events/ev/queue")),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "admin capacity and sessions_per_replica",
            h.put(format!("{base}/api/v1/admin/events/ev/queue"))
                .bearer_auth(ADMIN)
                .json(&json!({"capacity": 5, "sessions_per_replica": 2})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "admin negative capacity",
            h.put(format!("{base}/api/v1/admin/events/ev/queue"))
                .bearer_auth(ADMIN)
                .json(&json!({"capacity": -1})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "admin unknown mode",
            h.put(format!("{base}/api/v1/admin/events/ev/queue"))
                .bearer_auth(ADMIN)
                .json(&json!({"mode": "lottery"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "admin bad opens_at",
            h.put(format!("{base}/api/v1/admin/events/ev/queue"))
                .bearer_auth(ADMIN)
                .json(&json!({"opens_at": "tomorrow 8pm"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "admin zero timeout",
            h.put(format!("{base}/api/v1/admin/events/ev/queue"))
                .bearer_auth(ADMIN)
                .json(&json!({"session_timeout_seconds": 0})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "admin string for number",
            h.put(format!("{base}/api/v1/admin/events/ev/queue"))
                .bearer_auth(ADMIN)
                .json(&json!({"capacity": "10"})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "admin fractional number",
            h.put(format!("{base}/api/v1/admin/events/ev/queue"))
                .bearer_auth(ADMIN)
                .json(&json!({"capacity": 1.5})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "admin unknown field",
            h.put(format!("{base}/api/v1/admin/events/ev/queue"))
                .bearer_auth(ADMIN)
                .json(&json!({"capactiy": 10})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "admin long message",
            h.put(format!("{base}/api/v1/admin/events/ev/queue"))
                .bearer_auth(ADMIN)
                .json(&json!({"message": "x".repeat(501)})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "admin get unknown event",
            h.get(format!("{base}/api/v1/admin/events/nope/queue"))
                .bearer_auth(ADMIN),
            StatusCode::NOT_FOUND,
            "event_not_found",
        ),
    ];
    for (name, req, status, code) in cases {
        let r = api.send(req).await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
        assert_eq!(r.code(), code, "{name}: {}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn admin_put_replaces_the_whole_configuration() {
    let (_r, _k, app) = setup().await;
    let api = app.api();
    let r = api
        .configure("ev", json!({"capacity": 7, "admit_per_second": 3, "message": "Hello", "opens_at": "2030-01-01T20:00:00+01:00"}))
        .await;
    assert_eq!(r.body["capacity"], 7);
    assert_eq!(r.body["opens_at"], "2030-01-01T19:00:00Z");
    assert_eq!(r.body["message"], "Hello");
    let r = api
        .configure("ev", json!({"sessions_per_replica": 5}))
        .await;
    assert_eq!(r.body["sessions_per_replica"], 5);
    assert_eq!(r.body["max_capacity"], 200000);
    assert_eq!(
        r.body["admit_per_second"], 100,
        "omitted fields take their defaults"
    );
    assert!(r.body.get("capacity").is_none());
    assert!(r.body.get("message").is_none());
    assert!(r.body.get("opens_at").is_none());
    let got = api
        .send(
            api.http
                .get(format!("{}/api/v1/admin/events/ev/queue", api.base()))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(got.body, r.body);
}

/// Verifies an ES256 JWT against the published JWK Set, independently of
/// the service's own token code.
fn verify_with_jwks(token: &str, jwks: &Value) -> Value {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use p256::ecdsa::signature::Verifier;
    let parts: Vec<&str> = token.split('.').collect();
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("kid is published");
    let x = B64.decode(jwk["x"].as_str().unwrap()).unwrap();
    let y = B64.decode(jwk["y"].as_str().unwrap()).unwrap();
    let sec1 = [&[0x04u8][..], &x, &y].concat();
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&B64.decode(parts[2]).unwrap()).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("signature verifies with the JWKS key");
    serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap()
}

#[tokio::test]
async fn admission_tokens_verify_with_the_published_keys() {
    let (_r, _k, app) = setup().await;
    let api = app.api();
    api.configure("ev", json!({"session_max_seconds": 600}))
        .await;
    let r = api.join("ev", "fan").await;
    let jwks = api
        .send(
            api.http
                .get(format!("{}/.well-known/jwks.json", api.base())),
        )
        .await;
    assert_eq!(jwks.status, StatusCode::OK);
    let claims = verify_with_jwks(r.body["token"].as_str().unwrap(), &jwks.body);
    assert_eq!(claims["event_id"], "ev");
    assert_eq!(claims["ticket"], r.body["ticket"]);
    let exp = claims["exp"].as_i64().unwrap();
    let iat = claims["iat"].as_i64().unwrap();
    assert!(
        (599..=600).contains(&(exp - iat)),
        "exp is the session's hard end"
    );
    assert_eq!(
        admission::clock::parse_rfc3339_ms(r.body["expires_at"].as_str().unwrap()),
        Some(exp * 1000)
    );
    // The status of an admitted ticket carries the same token.
    let s = api.status("ev", r.body["ticket"].as_str().unwrap()).await;
    assert_eq!(s.body["token"], r.body["token"]);
}

#[tokio::test]
async fn metrics_openapi_health_and_request_ids() {
    let (_r, _k, app) = setup().await;
    let api = app.api();
    api.configure("ev", json!({})).await;
    api.join("ev", "fan").await;
    // The admission loop picks the new event up within a second or two.
    let mut metrics = String::new();
    for _ in 0..60 {
        metrics = api
            .http
            .get(format!("{}/metrics", api.base()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("admission_queue_length{event=\"ev\"}") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for series in [
        "admission_queue_length{event=\"ev\"}",
        "admission_active_sessions{event=\"ev\"}",
        "admission_capacity{event=\"ev\"}",
        "admission_admitted_total{event=\"ev\"} 1",
        "admission_last_admit_timestamp_seconds{event=\"ev\"}",
        "admission_redis_command_duration_seconds_bucket",
        "http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/events/{event_id}/queue\",status=\"200\"",
        "http_requests_total{method=\"POST\",route=\"/api/v1/events/{event_id}/queue\",status=\"200\"} 1",
    ] {
        assert!(metrics.contains(series), "missing {series}");
    }

    let spec = api
        .send(api.http.get(format!("{}/api/v1/openapi.json", api.base())))
        .await
        .body;
    let routes = [
        ("post", "/api/v1/events/{event_id}/queue"),
        ("get", "/api/v1/events/{event_id}/queue"),
        ("get", "/api/v1/events/{event_id}/queue/{ticket}"),
        ("delete", "/api/v1/events/{event_id}/queue/{ticket}"),
        ("post", "/api/v1/events/{event_id}/queue/{ticket}/heartbeat"),
        ("get", "/api/v1/events/{event_id}/queue/challenge"),
        ("get", "/api/v1/events/{event_id}/queue/{ticket}/ws"),
        ("put", "/api/v1/admin/events/{event_id}/queue"),
        ("get", "/api/v1/admin/events/{event_id}/queue"),
        ("get", "/api/v1/openapi.json"),
        ("get", "/.well-known/jwks.json"),
        ("get", "/health/live"),
        ("get", "/health/ready"),
        ("get", "/metrics"),
        ("post", "/api/v1/admin/events"),
        ("patch", "/api/v1/admin/events/{event_id}"),
        ("delete", "/api/v1/admin/events/{event_id}"),
        ("get", "/api/v1/events"),
        ("get", "/api/v1/events/{event_id}"),
        ("get", "/api/v1/events/{event_id}/seats"),
        ("post", "/api/v1/events/{event_id}/holds"),
        ("get", "/api/v1/events/{event_id}/reservations"),
        ("post", "/api/v1/holds/{hold_id}/confirm"),
        ("delete", "/api/v1/holds/{hold_id}"),
        ("get", "/api/v1/reservations/{reservation_id}"),
        ("delete", "/api/v1/reservations/{reservation_id}"),
        ("get", "/"),
        ("get", "/events/{event_id}"),
        ("get", "/assets/{file}"),
    ];
    let documented: usize = spec["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| {
            p.as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .count()
        })
        .sum();
    assert_eq!(
        documented,
        routes.len(),
        "every documented operation is a route"
    );
    for (method, path) in routes {
        let op = &spec["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(op["responses"].is_object());
        // The route exists: a request never falls through to `not_found`.
        let url = format!(
            "{}{}",
            api.base(),
            path.replace("{event_id}", "ev")
                .replace("{ticket}", "AAAAAAAAAAAAAAAAAAAAAA")
                .replace("{hold_id}", "AAAAAAAAAAAAAAAAAAAAAA")
                .replace("{reservation_id}", "AAAAAAAAAAAAAAAAAAAAAA")
                .replace("{file}", "app.js")
        );
        let r = api
            .send(
                api.http
                    .request(method.to_uppercase().parse().unwrap(), url),
            )
            .await;
        assert_ne!(r.code(), "not_found", "{method} {path}");
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }

    let ready = api
        .send(api.http.get(format!("{}/health/ready", api.base())))
        .await;
    assert_eq!(ready.body["status"], "ok");
    assert_eq!(ready.body["dependencies"]["redis"], "up");

    let r = api
        .http
        .get(format!("{}/health/live", api.base()))
        .header("x-request-id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-42");
    let r = api
        .http
        .get(format!("{}/health/live", api.base()))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["x-request-id"].len() >= 16,
        "a request id is made when none is given"
    );
}
