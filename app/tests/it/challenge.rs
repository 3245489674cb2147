//! The bot challenge at join (ALTCHA format): a `pow` event takes each solved
//! challenge once, refuses a missing one with `challenge_required` and a
//! wrong, expired, foreign or reused one with `challenge_failed`, before
//! writing anything; an event without a challenge is unchanged.

use std::time::Instant;

use admission::queue::challenge::{self, Challenge, Pow, Solution};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

async fn get_challenge(api: &Api, event: &str) -> Reply {
    api.send(api.http.get(format!(
        "{}/api/v1/events/{event}/queue/challenge",
        api.base()
    )))
    .await
}

async fn join_with(api: &Api, event: &str, client_id: &str, solution: Value) -> Reply {
    api.send(
        api.http
            .post(format!("{}/api/v1/events/{event}/queue", api.base()))
            .json(&json!({ "client_id": client_id, "challenge": solution })),
    )
    .await
}

/// A challenge from the service, solved the way a browser does.
async fn solved(api: &Api, event: &str) -> (Challenge, Value) {
    let r = get_challenge(api, event).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    let c: Challenge = serde_json::from_value(r.body).expect("ALTCHA challenge");
    let number = challenge::solve(&c).expect("solvable within maxnumber");
    (
        c.clone(),
        serde_json::to_value(Solution::of(&c, number)).unwrap(),
    )
}

/// The service's own challenge key, as every replica derives it (from the
/// first of TOKEN_KEYS): lets a test make challenges that expired.
fn service_pow(keys: &Keys) -> Pow {
    let spec = keys.token_spec.parse().expect("key spec");
    let admission = admission::token::AdmissionKeys::load(&[spec]).expect("token key");
    Pow::new(&admission.derive_secret(b"queue challenge v1"))
}

async fn a_pow_event_takes_each_solved_challenge_once(stack: Stack) {
    let api = stack.api();
    api.configure(
        "ev",
        json!({"capacity": 10, "challenge": "pow", "challenge_difficulty": 5000}),
    )
    .await;
    api.configure(
        "other",
        json!({"challenge": "pow", "challenge_difficulty": 5000}),
    )
    .await;

    let (c, solution) = solved(&api, "ev").await;
    assert_eq!(c.algorithm, "SHA-256");
    assert_eq!(c.maxnumber, 5000);
    assert!(c.salt.contains("event=ev&expires="), "{}", c.salt);

    let first = join_with(&api, "ev", "fan-1", solution.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    // The same fan retrying the same join gets its place back...
    let again = join_with(&api, "ev", "fan-1", solution.clone()).await;
    assert!(again.status.is_success(), "{}", again.body);
    assert_eq!(again.body["ticket"], first.body["ticket"]);
    // ...anyone else with that solution is refused.
    let replayed = join_with(&api, "ev", "fan-2", solution.clone()).await;
    assert_eq!(replayed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(replayed.code(), "challenge_failed", "{}", replayed.body);

    let missing = api.join("ev", "fan-3").await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.code(), "challenge_required", "{}", missing.body);

    let (c, _) = solved(&api, "ev").await;
    let number = challenge::solve(&c).unwrap();
    let wrong = serde_json::to_value(Solution::of(&c, (number + 1) % (c.maxnumber + 1))).unwrap();
    let r = join_with(&api, "ev", "fan-4", wrong).await;
    assert_eq!(r.code(), "challenge_failed", "{}", r.body);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("does not solve"));

    let (_, foreign) = solved(&api, "other").await;
    let r = join_with(&api, "ev", "fan-5", foreign).await;
    assert_eq!(r.code(), "challenge_failed", "{}", r.body);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("another event"));

    let pow = service_pow(&stack.keys);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ev = admission::queue::EventId::parse("ev").unwrap();
    let old = pow.issue(&ev, 2000, now_s - challenge::CHALLENGE_TTL_SECONDS - 5);
    let expired =
        serde_json::to_value(Solution::of(&old, challenge::solve(&old).unwrap())).unwrap();
    let r = join_with(&api, "ev", "fan-6", expired).await;
    assert_eq!(r.code(), "challenge_failed", "{}", r.body);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));

    let mut forged = solution.clone();
    forged["signature"] = json!("00".repeat(32));
    let r = join_with(&api, "ev", "fan-7", forged).await;
    assert_eq!(r.code(), "challenge_failed", "{}", r.body);

    // A fresh solution still works, for the fans refused above.
    let (_, fresh) = solved(&api, "ev").await;
    let r = join_with(&api, "ev", "fan-3", fresh).await;
    assert!(r.status.is_success(), "{}", r.body);
    assert_eq!(api.stats("ev").await["active"], 2);
}

async fn an_event_without_a_challenge_is_unchanged(stack: Stack) {
    let api = stack.api();
    api.configure("plain", json!({"capacity": 10})).await;
    let r = get_challenge(&api, "plain").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = api.join("plain", "fan-1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Whatever is sent as a challenge is ignored there.
    let junk = json!({"algorithm": "SHA-256", "challenge": "ab", "number": 1, "salt": "x", "signature": "cd"});
    let r = join_with(&api, "plain", "fan-2", junk).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = get_challenge(&api, "nowhere").await;
    assert_eq!(r.code(), "event_not_found");
    let config = api
        .send(
            api.http
                .get(format!("{}/api/v1/admin/events/plain/queue", api.base()))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(config.body["challenge"], "off");
    assert_eq!(
        config.body["challenge_difficulty"],
        admission::queue::config::DEFAULT_CHALLENGE_DIFFICULTY
    );
}

crate::on_standalone_and_cluster!(
    a_pow_event_takes_each_solved_challenge_once,
    an_event_without_a_challenge_is_unchanged,
);

/// Every key of the event with its type and contents.
fn event_snapshot(redis: &RedisEnv, event: &str) -> String {
    let keys = redis.cli(&["--scan", "--pattern", &format!("*{{{event}}}*")]);
    let mut keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    keys.sort_unstable();
    let mut out = String::new();
    for key in keys {
        let kind = redis.cli(&["TYPE", key]);
        let dump = match kind.trim() {
            "hash" => redis.cli(&["HGETALL", key]),
            "zset" => redis.cli(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
            "string" => redis.cli(&["GET", key]),
            "list" => redis.cli(&["LRANGE", key, "0", "-1"]),
            "stream" => redis.cli(&["XLEN", key]),
            other => other.to_string(),
        };
        out.push_str(&format!("{key} {kind}{dump}\n"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_without_a_good_solution_is_refused_before_any_redis_write() {
    let stack = Stack::standalone().await;
    let api = stack.api();
    // A per-source limit: its counter would be the first write of a join.
    api.configure(
        "ev",
        json!({"challenge": "pow", "challenge_difficulty": 1000, "max_joins_per_source_per_minute": 100}),
    )
    .await;
    let (_, good) = solved(&api, "ev").await;
    let before = event_snapshot(&stack.redis, "ev");
    assert!(before.contains(":meta hash"), "{before}");
    let dbsize = stack.redis.cli(&["DBSIZE"]);

    let r = api.join("ev", "bot-1").await;
    assert_eq!(r.code(), "challenge_required");
    let mut bad = good.clone();
    bad["number"] = json!(good["number"].as_u64().unwrap() + 1);
    let r = join_with(&api, "ev", "bot-2", bad).await;
    assert_eq!(r.code(), "challenge_failed");

    assert_eq!(
        event_snapshot(&stack.redis, "ev"),
        before,
        "nothing written"
    );
    assert_eq!(stack.redis.cli(&["DBSIZE"]), dbsize);

    // The good one writes (the place, the counter, the used solution).
    let r = join_with(&api, "ev", "fan", good).await;
    assert!(r.status.is_success(), "{}", r.body);
    let after = event_snapshot(&stack.redis, "ev");
    assert!(
        after.contains(":pow:"),
        "the solution is remembered: {after}"
    );
    assert!(after.contains(":src:"), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_settings_are_validated() {
    let stack = Stack::standalone().await;
    let api = stack.api();
    for (body, field) in [
        (json!({"challenge": "captcha"}), "challenge"),
        (json!({"challenge_difficulty": 999}), "challenge_difficulty"),
        (
            json!({"challenge_difficulty": 10_000_001}),
            "challenge_difficulty",
        ),
        (json!({"challenge_difficulty": -1}), "challenge_difficulty"),
    ] {
        let r = api
            .send(
                api.http
                    .put(format!("{}/api/v1/admin/events/ev/queue", api.base()))
                    .bearer_auth(ADMIN)
                    .json(&body),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(r.code(), "validation_failed");
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{message}");
    }
    let r = api
        .configure(
            "ev",
            json!({"challenge": "pow", "challenge_difficulty": 10_000_000}),
        )
        .await;
    assert_eq!(r.body["challenge"], "pow");
    assert_eq!(r.body["challenge_difficulty"], 10_000_000);
    let r = api
        .send(
            api.http
                .post(format!("{}/api/v1/events/ev/queue", api.base()))
                .json(&json!({"client_id": "f", "challenge": {"algorithm": "SHA-256"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "an incomplete payload");
}

/// The server's cost of checking a solution (printed for
/// docs/performance.md; not a timed assertion).
#[test]
fn verify_cost_is_measured() {
    let pow = Pow::new(b"measurement key, 32 bytes long!!");
    let ev = admission::queue::EventId::parse("sale").unwrap();
    let now_s = 1_800_000_000;
    let c = pow.issue(&ev, 1000, now_s);
    let s = Solution::of(&c, challenge::solve(&c).unwrap());
    let rounds = 20_000;
    let mut samples = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..rounds {
            assert!(pow.verify(&ev, &s, now_s).is_ok());
        }
        samples.push(t.elapsed().as_nanos() as f64 / rounds as f64 / 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    eprintln!(
        "challenge verify: median {:.2} µs per solution over 5 × {rounds} (min {:.2}, max {:.2})",
        samples[2], samples[0], samples[4]
    );
}
