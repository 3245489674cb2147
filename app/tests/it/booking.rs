//! Catalog and bookings on real MariaDB (writer and reader users) and Redis.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_created_listed_updated_and_deleted_with_their_queue() {
    let s = BookingStack::start().await;
    let api = s.api();
    let created = api
        .create_event("film-1", json!({"rows": 3, "seats_per_row": 4}))
        .await;
    assert_eq!(created.body["id"], "film-1");
    assert_eq!(created.body["seat_count"], 12);
    assert_eq!(created.body["sale_opens_at"], "2020-01-01T00:00:00Z");
    // The event's queue exists with default settings, opening at the sale.
    let stats = api.stats("film-1").await;
    assert_eq!(stats["capacity"], 1000);
    assert_eq!(stats["opens_at"], "2020-01-01T00:00:00Z");
    let again = api
        .send(api.http.post(format!("{}/api/v1/admin/events", api.base())).bearer_auth(ADMIN).json(&json!({
            "id": "film-1", "name": "x", "venue": "y", "starts_at": "2030-01-01T00:00:00Z",
            "sale_opens_at": "2030-01-01T00:00:00Z", "seat_map": {"rows": 1, "seats_per_row": 1}
        })))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    let list = api
        .send(api.http.get(format!("{}/api/v1/events", api.base())))
        .await;
    assert_eq!(list.body["events"][0]["id"], "film-1");
    let seats = api.seat_status("film-1").await;
    assert_eq!(seats.len(), 12);
    assert_eq!(seats["main-A-1"], "available");
    assert_eq!(seats["main-C-4"], "available");
    let one = api
        .send(
            api.http
                .get(format!("{}/api/v1/events/film-1/seats", api.base())),
        )
        .await;
    assert_eq!(
        one.body["seats"][0],
        json!({"seat_id": "main-A-1", "section": "main", "row": "A", "number": 1, "price_tier": "standard", "status": "available"})
    );

    // An update shows at once, cached copies notwithstanding.
    api.send(api.http.get(format!("{}/api/v1/events/film-1", api.base())))
        .await;
    let patched = api
        .send(
            api.http
                .patch(format!("{}/api/v1/admin/events/film-1", api.base()))
                .bearer_auth(ADMIN)
                .json(&json!({"name": "Premiere", "sale_opens_at": "2021-06-01T18:00:00Z"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let got = api
        .send(api.http.get(format!("{}/api/v1/events/film-1", api.base())))
        .await;
    assert_eq!(got.body["name"], "Premiere");
    assert_eq!(
        api.stats("film-1").await["opens_at"],
        "2021-06-01T18:00:00Z"
    );
    let list = api
        .send(api.http.get(format!("{}/api/v1/events", api.base())))
        .await;
    assert_eq!(list.body["events"][0]["name"], "Premiere");

    let deleted = api
        .send(
            api.http
                .delete(format!("{}/api/v1/admin/events/film-1", api.base()))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = api
        .send(api.http.get(format!("{}/api/v1/events/film-1", api.base())))
        .await;
    assert_eq!(gone.code(), "event_not_found");
    let r = api
        .send(
            api.http
                .get(format!("{}/api/v1/events/film-1/queue", api.base())),
        )
        .await;
    assert_eq!(r.code(), "event_not_found", "the queue went with the event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_keeps_its_time_zone_utc_by_default() {
    let s = BookingStack::start().await;
    let api = s.api();
    let plain = api
        .create_event("plain", json!({"rows": 1, "seats_per_row": 1}))
        .await;
    assert_eq!(plain.body["time_zone"], "UTC");
    let seoul = api
        .create_event_with(
            "seoul",
            json!({"rows": 1, "seats_per_row": 1}),
            json!({"time_zone": "Asia/Seoul"}),
        )
        .await;
    assert_eq!(seoul.body["time_zone"], "Asia/Seoul");
    let read = api
        .send(api.http.get(format!("{}/api/v1/events/seoul", api.base())))
        .await;
    assert_eq!(read.body["time_zone"], "Asia/Seoul");
    let patch = |zone: &str| {
        api.http
            .patch(format!("{}/api/v1/admin/events/seoul", api.base()))
            .bearer_auth(ADMIN)
            .json(&json!({ "time_zone": zone }))
    };
    let moved = api.send(patch("America/Argentina/Buenos_Aires")).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(moved.body["time_zone"], "America/Argentina/Buenos_Aires");
    for bad in [
        "",
        "../etc/passwd",
        "Asia/Seoul\n",
        "9/Nine",
        &"A".repeat(65),
    ] {
        let r = api.send(patch(bad)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("time_zone"));
    }
    let list = api
        .send(api.http.get(format!("{}/api/v1/events", api.base())))
        .await;
    let zones: Vec<&str> = list.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["time_zone"].as_str().unwrap())
        .collect();
    assert_eq!(zones.len(), 2);
    assert!(
        zones.contains(&"America/Argentina/Buenos_Aires"),
        "{zones:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_seat_lists_keep_exact_ids_and_may_be_long() {
    let s = BookingStack::start().await;
    let api = s.api();
    let mut seats = vec![
        json!({"section": "A", "row": "1", "number": 1, "price_tier": "vip"}),
        json!({"section": "a", "row": "1", "number": 1, "price_tier": "cheap"}),
    ];
    for n in 1..=1500 {
        seats.push(json!({"section": "stalls", "row": format!("R{}", n / 50), "number": n % 50 + 1, "price_tier": "standard"}));
    }
    let r = api
        .send(api.http.post(format!("{}/api/v1/admin/events", api.base())).bearer_auth(ADMIN).json(&json!({
            "id": "gala", "name": "Gala", "venue": "Opera", "starts_at": "2030-01-01T20:00:00Z",
            "sale_opens_at": "2020-01-01T00:00:00Z", "seats": seats
        })))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["seat_count"], 1502);
    let status = api.seat_status("gala").await;
    assert!(
        status.contains_key("A-1-1") && status.contains_key("a-1-1"),
        "ids are exact, case included"
    );
    let (_, token) = api.admitted("gala", "fan").await;
    let both = api
        .hold("gala", &token, json!({"seat_ids": ["A-1-1", "a-1-1"]}))
        .await;
    assert_eq!(both.status, StatusCode::CREATED, "{}", both.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_keep_any_date_rfc_3339_can_write() {
    let s = BookingStack::start().await;
    let api = s.api();
    let base = &api.base();
    // Before 1970 and after 2038 too (these once reached MariaDB as
    // TIMESTAMPs and became NULL: a 500), and the first and last instants
    // MySQL's DATETIME promises (earlier years are a 422, see hardening).
    let dates = [
        ("y2040", "2040-06-01T20:00:00Z", "2039-12-31T23:59:59.999Z"),
        ("y1562", "1562-11-23T08:23:23Z", "1085-12-07T02:34:19.493Z"),
        ("edges", "9999-12-31T23:59:59.999Z", "1000-01-01T00:00:00Z"),
    ];
    for (id, starts, opens) in dates {
        let created = api
            .send(
                api.http
                    .post(format!("{base}/api/v1/admin/events"))
                    .bearer_auth(ADMIN)
                    .json(&json!({
                        "id": id, "name": "n", "venue": "v", "starts_at": starts,
                        "sale_opens_at": opens, "seat_map": {"rows": 1, "seats_per_row": 1}
                    })),
            )
            .await;
        assert_eq!(
            created.status,
            StatusCode::CREATED,
            "{id}: {}",
            created.body
        );
        let got = api
            .send(api.http.get(format!("{base}/api/v1/events/{id}")))
            .await;
        assert_eq!(
            (
                got.body["starts_at"].as_str(),
                got.body["sale_opens_at"].as_str()
            ),
            (Some(starts), Some(opens)),
            "{id}"
        );
    }
    let patched = api
        .send(
            api.http
                .patch(format!("{base}/api/v1/admin/events/y2040"))
                .bearer_auth(ADMIN)
                .json(&json!({"starts_at": "2100-01-01T00:00:00+01:00"})),
        )
        .await;
    assert_eq!(patched.body["starts_at"], "2099-12-31T23:00:00Z");
    // A time UTC puts past 9999 could not be shown again: refused.
    let beyond = api
        .send(
            api.http
                .patch(format!("{base}/api/v1/admin/events/y2040"))
                .bearer_auth(ADMIN)
                .json(&json!({"starts_at": "9999-12-31T23:00:00-05:00"})),
        )
        .await;
    assert_eq!(beyond.code(), "validation_failed", "{}", beyond.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_catalog_and_booking_input_gets_exact_codes() {
    let s = BookingStack::start().await;
    let api = s.api();
    api.create_event("ev", json!({"rows": 2, "seats_per_row": 2}))
        .await;
    let (_, token) = api.admitted("ev", "fan").await;
    let base = &api.base();
    let h = &api.http;
    let event = |extra: Value| {
        let mut body = json!({"id": "x1", "name": "n", "venue": "v", "starts_at": "2030-01-01T00:00:00Z", "sale_opens_at": "2030-01-01T00:00:00Z"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        h.post(format!("{base}/api/v1/admin/events"))
            .bearer_auth(ADMIN)
            .json(&body)
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            "create without token",
            h.post(format!("{base}/api/v1/admin/events"))
                .json(&json!({})),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "create with unknown field",
            event(json!({"seat_map": {"rows": 1, "seats_per_row": 1}, "price": 3})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "create without seats",
            event(json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "create with both seat forms",
            event(json!({"seat_map": {"rows": 1, "seats_per_row": 1}, "seats": []})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "create with bad id",
            event(json!({"id": "Bad Id", "seat_map": {"rows": 1, "seats_per_row": 1}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "create with bad time",
            event(json!({"starts_at": "soon", "seat_map": {"rows": 1, "seats_per_row": 1}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "create with too many rows",
            event(json!({"seat_map": {"rows": 1000, "seats_per_row": 1}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "patch unknown event",
            h.patch(format!("{base}/api/v1/admin/events/nope"))
                .bearer_auth(ADMIN)
                .json(&json!({"name": "x"})),
            StatusCode::NOT_FOUND,
            "event_not_found",
        ),
        (
            "seats of unknown event",
            h.get(format!("{base}/api/v1/events/nope/seats")),
            StatusCode::NOT_FOUND,
            "event_not_found",
        ),
        (
            "hold without token",
            h.post(format!("{base}/api/v1/events/ev/holds"))
                .json(&json!({"quantity": 1})),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "hold with a forged token",
            h.post(format!("{base}/api/v1/events/ev/holds"))
                .bearer_auth(format!("{token}x"))
                .json(&json!({"quantity": 1})),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "hold with both forms",
            h.post(format!("{base}/api/v1/events/ev/holds"))
                .bearer_auth(&token)
                .json(&json!({"quantity": 1, "seat_ids": ["main-A-1"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "hold of no seat",
            h.post(format!("{base}/api/v1/events/ev/holds"))
                .bearer_auth(&token)
                .json(&json!({"seat_ids": []})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "hold of an unknown seat",
            h.post(format!("{base}/api/v1/events/ev/holds"))
                .bearer_auth(&token)
                .json(&json!({"seat_ids": ["main-Z-9"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "hold of a seat twice",
            h.post(format!("{base}/api/v1/events/ev/holds"))
                .bearer_auth(&token)
                .json(&json!({"seat_ids": ["main-A-1", "main-A-1"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "hold of zero seats",
            h.post(format!("{base}/api/v1/events/ev/holds"))
                .bearer_auth(&token)
                .json(&json!({"quantity": 0})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "hold over the limit",
            h.post(format!("{base}/api/v1/events/ev/holds"))
                .bearer_auth(&token)
                .json(&json!({"quantity": 9})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "hold with a wrong type",
            h.post(format!("{base}/api/v1/events/ev/holds"))
                .bearer_auth(&token)
                .json(&json!({"quantity": "2"})),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "confirm of an id that is not UTF-8",
            h.post(format!("{base}/api/v1/holds/%FF%FE/confirm"))
                .bearer_auth(&token),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "confirm of a bad id",
            h.post(format!("{base}/api/v1/holds/nope/confirm"))
                .bearer_auth(&token),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "confirm of an unknown hold",
            h.post(format!(
                "{base}/api/v1/holds/AAAAAAAAAAAAAAAAAAAAAA/confirm"
            ))
            .bearer_auth(&token),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "unknown reservation",
            h.get(format!("{base}/api/v1/reservations/AAAAAAAAAAAAAAAAAAAAAA"))
                .bearer_auth(&token),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "reservation without token",
            h.get(format!("{base}/api/v1/reservations/AAAAAAAAAAAAAAAAAAAAAA")),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
    ];
    for (name, req, status, code) in cases {
        let r = api.send(req).await;
        assert_eq!(r.status, status, "{name}: {}", r.body);
        assert_eq!(r.code(), code, "{name}: {}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admitted_fan_holds_confirms_once_and_frees_the_place() {
    let s = BookingStack::start().await;
    let api = s.api();
    api.create_event("ev", json!({"rows": 2, "seats_per_row": 5}))
        .await;
    let (ticket, token) = api.admitted("ev", "fan").await;
    let hold = api
        .hold("ev", &token, json!({"seat_ids": ["main-A-2", "main-A-3"]}))
        .await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
    assert_eq!(hold.body["seat_ids"], json!(["main-A-2", "main-A-3"]));
    assert!(hold.body["expires_at"].as_str().unwrap().ends_with('Z'));
    let seats = api.seat_status("ev").await;
    assert_eq!(seats["main-A-2"], "held");
    assert_eq!(seats["main-A-1"], "available");
    let hold_id = hold.body["hold_id"].as_str().unwrap();

    let spare = api
        .hold("ev", &token, json!({"seat_ids": ["main-B-5"]}))
        .await;
    assert_eq!(spare.status, StatusCode::CREATED);
    let first = api.confirm(hold_id, &token, Some("pay-1")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["event_id"], "ev");
    assert_eq!(first.body["seat_ids"], json!(["main-A-2", "main-A-3"]));
    assert!(first.body["created_at"].as_str().unwrap().ends_with('Z'));
    // A payment provider retries: the same reservation, never a second one.
    for key in [Some("pay-1"), None] {
        let again = api.confirm(hold_id, &token, key).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.body);
        assert_eq!(again.body["reservation_id"], first.body["reservation_id"]);
    }
    assert_eq!(s.db.sql("SELECT COUNT(*) FROM reservations"), "1");
    // Booking ended the session: the place goes to the next fan.
    assert_eq!(api.status("ev", &ticket).await.body["state"], "left");
    let seats = api.seat_status("ev").await;
    assert_eq!(seats["main-A-2"], "reserved");
    assert_eq!(
        seats["main-B-5"], "available",
        "the fan's other hold went back with the booking"
    );

    let id = first.body["reservation_id"].as_str().unwrap();
    let got = api
        .send(
            api.http
                .get(format!("{}/api/v1/reservations/{id}", api.base()))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["seat_ids"], json!(["main-A-2", "main-A-3"]));
    // The fan's own reservations, after the session ended.
    let mine = api
        .send(
            api.http
                .get(format!("{}/api/v1/events/ev/reservations", api.base()))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    assert_eq!(mine.body["reservations"][0]["reservation_id"], id);
    // Someone else's token sees nothing of it.
    let (_, other) = api.admitted("ev", "other").await;
    let denied = api
        .send(
            api.http
                .get(format!("{}/api/v1/reservations/{id}", api.base()))
                .bearer_auth(&other),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    // A key reused for another hold is refused.
    let other_hold = api.hold("ev", &other, json!({"quantity": 1})).await;
    let reused = api
        .confirm(
            other_hold.body["hold_id"].as_str().unwrap(),
            &other,
            Some("pay-1"),
        )
        .await;
    assert_eq!(reused.status, StatusCode::CREATED, "keys are per ticket");
    let (_, third) = api.admitted("ev", "third").await;
    let h3 = api.hold("ev", &third, json!({"quantity": 1})).await;
    let h3_id = h3.body["hold_id"].as_str().unwrap();
    assert_eq!(
        api.confirm(h3_id, &third, Some("k")).await.status,
        StatusCode::CREATED
    );
    let h4 = api.hold("ev", &third, json!({"quantity": 1})).await;
    assert_eq!(
        h4.status,
        StatusCode::FORBIDDEN,
        "the session ended with the booking"
    );

    let cancel = api
        .send(
            api.http
                .delete(format!("{}/api/v1/reservations/{id}", api.base()))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(cancel.status, StatusCode::NO_CONTENT);
    assert_eq!(api.seat_status("ev").await["main-A-2"], "available");
    let after = api
        .send(
            api.http
                .get(format!("{}/api/v1/reservations/{id}", api.base()))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(after.body["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantity_holds_take_the_front_most_adjacent_seats() {
    let s = BookingStack::start().await;
    let api = s.api();
    api.create_event("ev", json!({"rows": 3, "seats_per_row": 4}))
        .await;
    let (_, a) = api.admitted("ev", "a").await;
    let (_, b) = api.admitted("ev", "b").await;
    let (_, c) = api.admitted("ev", "c").await;
    let first = api.hold("ev", &a, json!({"seat_ids": ["main-A-2"]})).await;
    assert_eq!(first.status, StatusCode::CREATED);
    // Row A has only 1 and 3-4 free: three together must come from row B.
    let three = api.hold("ev", &b, json!({"quantity": 3})).await;
    assert_eq!(
        three.body["seat_ids"],
        json!(["main-B-1", "main-B-2", "main-B-3"]),
        "{}",
        three.body
    );
    let two = api.hold("ev", &c, json!({"quantity": 2})).await;
    assert_eq!(two.body["seat_ids"], json!(["main-A-3", "main-A-4"]));
    let none = api.hold("ev", &a, json!({"quantity": 5})).await;
    assert_eq!(none.status, StatusCode::CONFLICT);
    assert_eq!(none.code(), "seat_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_none_forged_expired_other_event_and_ended_sessions_are_refused() {
    let s = BookingStack::start().await;
    let api = s.api();
    api.create_event("ev", json!({"rows": 1, "seats_per_row": 5}))
        .await;
    api.create_event("other", json!({"rows": 1, "seats_per_row": 5}))
        .await;
    let (ticket, token) = api.admitted("ev", "fan").await;
    let body = json!({"quantity": 1});
    assert_eq!(
        api.send(
            api.http
                .post(format!("{}/api/v1/events/ev/holds", api.base()))
                .json(&body)
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    let forged = {
        let other_keys = keys();
        let k = admission::token::AdmissionKeys::load(&[other_keys.token_spec.parse().unwrap()])
            .unwrap();
        k.sign(&admission::token::AdmissionClaims {
            event_id: "ev".into(),
            ticket: ticket.clone(),
            iat: 1,
            exp: 4_000_000_000,
        })
    };
    assert_eq!(
        api.hold("ev", &forged, body.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    let expired = {
        let k =
            admission::token::AdmissionKeys::load(&[s.keys.token_spec.parse().unwrap()]).unwrap();
        k.sign(&admission::token::AdmissionClaims {
            event_id: "ev".into(),
            ticket: ticket.clone(),
            iat: 1,
            exp: 2,
        })
    };
    let r = api.hold("ev", &expired, body.clone()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = api.hold("other", &token, body.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a token of another event");
    assert_eq!(r.code(), "forbidden");
    api.leave("ev", &ticket).await;
    let r = api.hold("ev", &token, body).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a left session");
    // Never admitted: a queued fan has no token at all.
    api.configure("ev", json!({"capacity": 0})).await;
    assert_eq!(api.join("ev", "late").await.status, StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_holds_free_their_seats_without_anyone_calling() {
    let s = BookingStack::start_with(AppOptions::default().with("HOLD_SECONDS", "1")).await;
    let api = s.api();
    api.create_event("ev", json!({"rows": 1, "seats_per_row": 3}))
        .await;
    let (_, token) = api.admitted("ev", "fan").await;
    let hold = api
        .hold("ev", &token, json!({"seat_ids": ["main-A-1"]}))
        .await;
    assert_eq!(api.seat_status("ev").await["main-A-1"], "held");
    let started = Instant::now();
    loop {
        let freed = s.db.sql("SELECT COUNT(*) FROM seat_claims") == "0";
        if freed && api.seat_status("ev").await["main-A-1"] == "available" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "freed by the sweeper"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.db.sql("SELECT status FROM holds"), "expired");
    let late = api
        .confirm(hold.body["hold_id"].as_str().unwrap(), &token, None)
        .await;
    assert_eq!(late.status, StatusCode::GONE);
    // The seat can be held again.
    let (_, other) = api.admitted("ev", "other").await;
    assert_eq!(
        api.hold("ev", &other, json!({"seat_ids": ["main-A-1"]}))
            .await
            .status,
        StatusCode::CREATED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_run_out_but_not_yet_swept_gives_way_to_a_new_hold() {
    let s = BookingStack::start().await;
    let api = s.api();
    api.create_event("ev", json!({"rows": 1, "seats_per_row": 3}))
        .await;
    let (_, first) = api.admitted("ev", "first").await;
    let (_, second) = api.admitted("ev", "second").await;
    let hold = api
        .hold("ev", &first, json!({"seat_ids": ["main-A-1", "main-A-2"]}))
        .await;
    assert_eq!(hold.status, StatusCode::CREATED);
    let taken = api
        .hold("ev", &second, json!({"seat_ids": ["main-A-2"]}))
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{:?}", taken.body);
    // One claim runs out (its hold still looks active to the sweeper):
    // the next hold meets it on insert, deletes it and takes the seat.
    s.db.sql(
        "UPDATE seat_claims SET expires_at = NOW(3) - INTERVAL 1 SECOND WHERE seat_id = 'main-A-2'",
    );
    let retaken = api
        .hold("ev", &second, json!({"seat_ids": ["main-A-2", "main-A-3"]}))
        .await;
    assert_eq!(retaken.status, StatusCode::CREATED, "{:?}", retaken.body);
    assert_eq!(
        s.db.sql("SELECT COUNT(*) FROM seat_claims WHERE seat_id = 'main-A-2'"),
        "1"
    );
    // A live claim still refuses.
    let (_, third) = api.admitted("ev", "third").await;
    let refused = api
        .hold("ev", &third, json!({"seat_ids": ["main-A-1"]}))
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_seat_reserved_sells_the_queue_out_and_a_cancellation_reopens_it() {
    let s = BookingStack::start().await;
    let api = s.api();
    api.create_event("ev", json!({"rows": 1, "seats_per_row": 2}))
        .await;
    api.configure("ev", json!({"capacity": 1})).await;
    let (_, token) = api.admitted("ev", "buyer").await;
    let waiting = api.join_ticket("ev", "waiting").await;
    let mut ws = ws_connect(&api, "ev", &waiting).await;
    ws_until(&mut ws, "position", Duration::from_secs(2))
        .await
        .unwrap();
    let hold = api.hold("ev", &token, json!({"quantity": 2})).await;
    let booked = api
        .confirm(hold.body["hold_id"].as_str().unwrap(), &token, None)
        .await;
    assert_eq!(booked.status, StatusCode::CREATED);
    assert_eq!(api.stats("ev").await["mode"], "sold_out");
    assert_eq!(
        ws_until(&mut ws, "sold_out", Duration::from_secs(2)).await,
        Some(json!({"type": "sold_out"}))
    );
    assert_eq!(api.join("ev", "newcomer").await.code(), "sold_out");
    // Moving the sale's opening does not make the automatic sold-out stick.
    let moved = api
        .send(
            api.http
                .patch(format!("{}/api/v1/admin/events/ev", api.base()))
                .bearer_auth(ADMIN)
                .json(&json!({"sale_opens_at": "2021-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!(api.stats("ev").await["mode"], "sold_out");

    let id = booked.body["reservation_id"].as_str().unwrap();
    let r = api
        .send(
            api.http
                .delete(format!("{}/api/v1/reservations/{id}", api.base()))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(api.stats("ev").await["mode"], "fifo", "reopened");
    // The cancelled reservation's hold cannot be confirmed again.
    let again = api
        .confirm(hold.body["hold_id"].as_str().unwrap(), &token, None)
        .await;
    assert_eq!(again.status, StatusCode::GONE);
    // The waiting fan was kept and is admitted now that a place is free.
    ws_until(&mut ws, "admitted", Duration::from_secs(3))
        .await
        .expect("admitted after the reopening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_fans_on_a_hundred_seats_sell_each_seat_once() {
    // A thousand requests at once on two shared cores: give Redis calls
    // room before they count as an outage.
    let s = BookingStack::start_with(
        AppOptions::default()
            .with("DATABASE_POOL_SIZE", "30")
            .with("REDIS_COMMAND_TIMEOUT_MS", "5000"),
    )
    .await;
    let api = s.api();
    api.create_event("ev", json!({"rows": 10, "seats_per_row": 10}))
        .await;
    let fans = if quick() { 300 } else { 1000 };
    api.configure("ev", json!({"capacity": fans, "admit_per_second": fans}))
        .await;
    let limit = Arc::new(Semaphore::new(200));
    let mut joins = Vec::new();
    for i in 0..fans {
        let (api, limit) = (api.clone(), limit.clone());
        joins.push(tokio::spawn(async move {
            let _p = limit.acquire().await.unwrap();
            api.admitted("ev", &format!("fan-{i}")).await.1
        }));
    }
    let mut tokens = Vec::new();
    for j in joins {
        tokens.push(j.await.unwrap());
    }
    // Everyone at once, each for one seat chosen at random.
    let started = Instant::now();
    let mut holds = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let (api, token) = (api.clone(), token.clone());
        // Ten fans want each seat.
        let spot = i * 37 % 100;
        let seat = format!(
            "main-{}-{}",
            (b'A' + (spot / 10) as u8) as char,
            spot % 10 + 1
        );
        holds.push(tokio::spawn(async move {
            (
                token.clone(),
                api.hold("ev", &token, json!({"seat_ids": [seat]})).await,
            )
        }));
    }
    let mut held = Vec::new();
    let mut refused = 0;
    for h in holds {
        let (token, r) = h.await.unwrap();
        match r.status {
            StatusCode::CREATED => held.push((
                token,
                r.body["hold_id"].as_str().unwrap().to_string(),
                r.body["seat_ids"][0].as_str().unwrap().to_string(),
            )),
            StatusCode::CONFLICT => {
                assert_eq!(r.code(), "seat_unavailable");
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    let hold_time = started.elapsed();
    let distinct: HashSet<&String> = held.iter().map(|(_, _, seat)| seat).collect();
    assert_eq!(held.len(), 100, "exactly 100 seats held");
    assert_eq!(distinct.len(), 100, "no seat in two holds");
    assert_eq!(refused, fans - 100);
    assert_eq!(s.db.sql("SELECT COUNT(*) FROM seat_claims"), "100");

    // Every hold confirmed twice at once: each once, none twice.
    let started = Instant::now();
    let mut confirms = Vec::new();
    for (token, hold_id, _) in held.iter().chain(held.iter()) {
        let (api, token, hold_id) = (api.clone(), token.clone(), hold_id.clone());
        confirms.push(tokio::spawn(async move {
            api.confirm(&hold_id, &token, None).await
        }));
    }
    let mut reservations: HashMap<String, usize> = HashMap::new();
    for c in confirms {
        let r = c.await.unwrap();
        assert!(
            r.status == StatusCode::CREATED || r.status == StatusCode::OK,
            "{}",
            r.body
        );
        *reservations
            .entry(r.body["reservation_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let confirm_time = started.elapsed();
    assert_eq!(reservations.len(), 100, "one reservation per hold");
    assert!(reservations.values().all(|n| *n == 2));
    assert_eq!(s.db.sql("SELECT COUNT(*) FROM reservations"), "100");
    assert_eq!(s.db.sql("SELECT COUNT(*) FROM reservation_seats"), "100");
    assert_eq!(
        s.db.sql("SELECT COUNT(DISTINCT seat_id) FROM reservation_seats"),
        "100"
    );
    assert_eq!(api.stats("ev").await["mode"], "sold_out");
    eprintln!("{fans} fans on 100 seats: holds in {hold_time:?}, 200 confirms in {confirm_time:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_reads_go_to_the_reader_and_a_fans_own_writes_to_the_writer() {
    let s = BookingStack::start().await;
    let api = s.api();
    api.create_event("ev", json!({"rows": 2, "seats_per_row": 2}))
        .await;
    let selects = |user: &str| -> i64 {
        s.db.server
            .sql(&format!("SELECT SELECT_COMMANDS FROM information_schema.USER_STATISTICS WHERE USER = '{user}'"))
            .unwrap()
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let (reader0, writer0) = (selects("reader"), selects("app"));
    for _ in 0..5 {
        // Distinct events miss the cache each time: the database is read.
        api.send(api.http.get(format!("{}/api/v1/events/ev", api.base())))
            .await;
        api.seat_status("ev").await;
        s.redis
            .cli(&["DEL", "bk:{ev}:event", "bk:{ev}:seats:gz", "bk:events"]);
        api.send(api.http.get(format!("{}/api/v1/events", api.base())))
            .await;
    }
    let (reader1, writer1) = (selects("reader"), selects("app"));
    assert!(
        reader1 - reader0 >= 10,
        "catalog reads hit the reader: {reader0} -> {reader1}"
    );
    assert_eq!(writer1, writer0, "and not the writer");

    let (_, token) = api.admitted("ev", "fan").await;
    let hold = api.hold("ev", &token, json!({"quantity": 1})).await;
    let booked = api
        .confirm(hold.body["hold_id"].as_str().unwrap(), &token, None)
        .await;
    let reader2 = selects("reader");
    let id = booked.body["reservation_id"].as_str().unwrap();
    let got = api
        .send(
            api.http
                .get(format!("{}/api/v1/reservations/{id}", api.base()))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        selects("reader"),
        reader2,
        "a fan's own reservation is read back from the writer"
    );
    assert!(selects("app") > writer1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_database_the_queue_runs_alone_and_booking_is_disabled() {
    let stack = Stack::standalone().await;
    let api = stack.api();
    for (method, path) in [
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/events/ev/seats"),
        ("POST", "/api/v1/admin/events"),
    ] {
        let r = api
            .send(
                api.http
                    .request(method.parse().unwrap(), format!("{}{path}", api.base()))
                    .bearer_auth(ADMIN)
                    .json(&json!({})),
            )
            .await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(r.code(), "booking_disabled", "{path}");
        assert!(r.headers.contains_key("retry-after"), "{path}");
    }
    let ready = api
        .send(api.http.get(format!("{}/health/ready", api.base())))
        .await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["dependencies"]["database"], "disabled");
    api.configure("ev", json!({})).await;
    assert_eq!(
        api.join("ev", "fan").await.status,
        StatusCode::OK,
        "the waiting room works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mariadb_restarted_mid_run_means_503s_then_consistent_data() {
    let mut s =
        BookingStack::start_with(AppOptions::default().with("DATABASE_TIMEOUT_MS", "1000")).await;
    let api = s.api();
    api.create_event("ev", json!({"rows": 20, "seats_per_row": 10}))
        .await;
    let mut tokens = Vec::new();
    for i in 0..60 {
        tokens.push(api.admitted("ev", &format!("fan-{i}")).await.1);
    }
    // Fans keep booking while the database goes away and comes back.
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let unavailable = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for token in tokens {
        let (api, ack, unavailable) = (api.clone(), acknowledged.clone(), unavailable.clone());
        workers.push(tokio::spawn(async move {
            for _ in 0..40 {
                let h = api.hold("ev", &token, json!({"quantity": 1})).await;
                match h.status {
                    StatusCode::CREATED => {
                        // Like a payment provider: retry the confirm until
                        // it answers for sure.
                        let hold_id = h.body["hold_id"].as_str().unwrap().to_string();
                        for _ in 0..100 {
                            let c = api.confirm(&hold_id, &token, Some("pay")).await;
                            match c.status {
                                StatusCode::CREATED | StatusCode::OK => {
                                    ack.lock().unwrap().push(
                                        c.body["reservation_id"].as_str().unwrap().to_string(),
                                    );
                                    return;
                                }
                                StatusCode::SERVICE_UNAVAILABLE => {
                                    assert!(c.headers.contains_key("retry-after"));
                                    unavailable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                    tokio::time::sleep(Duration::from_millis(200)).await;
                                }
                                StatusCode::GONE => break,
                                other => panic!("confirm: {other} {}", c.body),
                            }
                        }
                    }
                    StatusCode::SERVICE_UNAVAILABLE => {
                        assert!(h.headers.contains_key("retry-after"));
                        assert_eq!(h.code(), "unavailable");
                        unavailable.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => {}
                    other => panic!("hold: {other} {}", h.body),
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.db.server.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The queue keeps working, and the replica stays ready (degraded).
    let ready = api
        .send(api.http.get(format!("{}/health/ready", api.base())))
        .await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "degraded");
    assert_eq!(ready.body["dependencies"]["database"], "down");
    assert_eq!(api.stats("ev").await["mode"], "fifo");
    s.db.server.restart().expect("mariadb restarts");
    for w in workers {
        w.await.unwrap();
    }
    assert!(
        unavailable.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "503s while it was down"
    );
    let ack = acknowledged.lock().unwrap().clone();
    assert!(
        ack.len() >= 50,
        "bookings resumed after the restart: {}",
        ack.len()
    );
    // Consistent: every acknowledged reservation is there with its seat
    // claimed, and no seat is claimed twice (the primary key).
    for id in &ack {
        assert_eq!(
            s.db.sql(&format!(
                "SELECT COUNT(*) FROM seat_claims WHERE reservation_id = '{id}'"
            )),
            "1",
            "{id}"
        );
    }
    assert_eq!(
        s.db.sql("SELECT COUNT(*) FROM reservation_seats rs JOIN reservations r ON r.id = rs.reservation_id WHERE r.cancelled_at IS NULL"),
        s.db.sql("SELECT COUNT(*) FROM seat_claims WHERE reservation_id IS NOT NULL")
    );
    let ready = api
        .send(api.http.get(format!("{}/health/ready", api.base())))
        .await;
    assert_eq!(ready.body["status"], "ok");
}
