//! The fuzz step of `cargo xtask test`: schemathesis (pinned, in
//! `target/venv/schemathesis`) generates requests for every operation of
//! the API from the OpenAPI document the app serves, valid and invalid,
//! and checks each answer against that document: no server error, every
//! status, content type, header and body as documented, invalid input
//! refused, valid input accepted.
//!
//! It runs on the stack `cargo xtask dev` starts (Redis, MariaDB migrated,
//! the app in target/debug), seeded through the API so that the requests
//! reach past 401 and 404: an open event and its queue, an admitted fan
//! with a hold, a confirmed reservation, and an event still in its
//! pre-queue. Their ids are dictionaries that the path parameters draw
//! from most of the time (random ids otherwise), and the admin and fan
//! tokens answer the `admin` and `admission` security schemes.
//!
//! Everything it writes is under `target/fuzz`: the stack (`stack/`, made
//! afresh each run), the config and hooks (`xtask/python/schemathesis*`,
//! copied next to the dictionaries), the report (`report/`) and
//! schemathesis's own state (`cache/`, `examples.db`, `.hypothesis/`, kept
//! between runs so that a finding is tried again first).

use std::net::SocketAddr;
use std::time::Instant;

use devstack::http_request;
use xshell::{cmd, Shell};

use crate::dev::{json_string, Stack};
use crate::venv::Venv;
use crate::Result;

/// The ids the seed made, offered to the path parameters.
struct Seed {
    events: Vec<String>,
    tickets: Vec<String>,
    holds: Vec<String>,
    reservations: Vec<String>,
    /// An admitted fan's admission token (of the first event).
    fan_token: String,
}

pub fn check(sh: &Shell) -> Result {
    let root = sh.current_dir();
    let dir = root.join("target/fuzz");
    std::fs::create_dir_all(&dir)?;
    let venv = Venv::ensure(sh, "schemathesis")?;
    let mut stack = Stack::start(&root, &dir.join("stack"), false, true)?;
    let seed = seed(stack.app.addr, &stack.admin)?;

    for file in ["schemathesis.toml", "schemathesis_hooks.py"] {
        std::fs::copy(root.join("xtask/python").join(file), dir.join(file))?;
    }
    for (name, values) in [
        ("events", &seed.events),
        ("tickets", &seed.tickets),
        ("holds", &seed.holds),
        ("reservations", &seed.reservations),
    ] {
        let lines: String = values.iter().map(|v| format!("\"{v}\"\n")).collect();
        std::fs::write(dir.join(format!("{name}.dict")), lines)?;
    }
    let report = dir.join("report");
    let _ = std::fs::remove_dir_all(&report);

    let schemathesis = venv.bin("schemathesis");
    let base = format!("http://{}", stack.app.addr);
    let started = Instant::now();
    // Run from target/fuzz, so that whatever schemathesis writes where it
    // stands lands there too.
    let _cwd = sh.push_dir(&dir);
    let result = cmd!(
        sh,
        "{schemathesis} --config-file schemathesis.toml run --url {base} {base}/api/v1/openapi.json"
    )
    .env("FUZZ_ADMIN_TOKEN", &stack.admin)
    .env("FUZZ_FAN_TOKEN", &seed.fan_token)
    .run();
    let seconds = started.elapsed().as_secs();
    let log = dir.join("stack/app.log");
    if let Some(status) = stack.app.process.try_wait() {
        return Err(format!(
            "the app died during the fuzz ({status}); see {}",
            log.display()
        )
        .into());
    }
    if result.is_err() {
        let reports: Vec<String> = std::fs::read_dir(&report)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path().display().to_string()))
            .collect();
        return Err(format!(
            "schemathesis found problems in {seconds} s, each printed above with a curl command \
             that reproduces it; report: {}; the app's log: {}",
            reports.join(", "),
            log.display()
        )
        .into());
    }
    println!("xtask test: schemathesis found nothing in {seconds} s");
    Ok(())
}

/// One request through the API that must answer `want`; returns the body.
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    want: u16,
) -> Result<String> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let (status, text) = http_request(addr, method, path, &headers, body)?;
    if status != want {
        return Err(
            format!("seeding: {method} {path} answered {status}, not {want}: {text}").into(),
        );
    }
    Ok(text)
}

fn field(text: &str, key: &str) -> Result<String> {
    json_string(text, key).ok_or_else(|| format!("seeding: no `{key}` in {text}").into())
}

/// An event on sale whose queue admits everyone at once, a fan who booked
/// (a confirmed reservation), a fan still admitted with an active hold
/// (whose token the fuzzer uses), and an event whose sale opens later,
/// with a fan in its pre-queue.
fn seed(addr: SocketAddr, admin: &str) -> Result<Seed> {
    let admin = Some(admin);
    call(
        addr,
        "POST",
        "/api/v1/admin/events",
        admin,
        Some(
            r#"{"id":"fuzz","name":"Fuzz night","venue":"Hall 1","starts_at":"2030-01-01T20:00:00Z","sale_opens_at":"2020-01-01T00:00:00Z","seat_map":{"rows":20,"seats_per_row":25}}"#,
        ),
        201,
    )?;
    call(
        addr,
        "PUT",
        "/api/v1/admin/events/fuzz/queue",
        admin,
        Some(
            r#"{"capacity":100000,"admit_per_second":100000,"session_timeout_seconds":3600,"session_max_seconds":7200,"queue_idle_timeout_seconds":3600}"#,
        ),
        200,
    )?;
    let join = |event: &str, client: &str, want: u16| {
        call(
            addr,
            "POST",
            &format!("/api/v1/events/{event}/queue"),
            None,
            Some(&format!(r#"{{"client_id":"{client}"}}"#)),
            want,
        )
    };
    let hold = |token: &str| {
        let body = call(
            addr,
            "POST",
            "/api/v1/events/fuzz/holds",
            Some(token),
            Some(r#"{"quantity":2}"#),
            201,
        )?;
        field(&body, "hold_id")
    };

    let buyer = join("fuzz", "fuzz-buyer", 200)?;
    let buyer_ticket = field(&buyer, "ticket")?;
    let buyer_token = field(&buyer, "token")?;
    let confirmed = hold(&buyer_token)?;
    let reservation = call(
        addr,
        "POST",
        &format!("/api/v1/holds/{confirmed}/confirm"),
        Some(&buyer_token),
        None,
        201,
    )?;
    let reservation = field(&reservation, "reservation_id")?;

    let fan = join("fuzz", "fuzz-fan", 200)?;
    let fan_ticket = field(&fan, "ticket")?;
    let fan_token = field(&fan, "token")?;
    let active = hold(&fan_token)?;

    call(
        addr,
        "POST",
        "/api/v1/admin/events",
        admin,
        Some(
            r#"{"id":"fuzz-later","name":"Fuzz later","venue":"Hall 2","starts_at":"2031-01-01T20:00:00Z","sale_opens_at":"2030-06-01T10:00:00Z","seat_map":{"rows":2,"seats_per_row":5}}"#,
        ),
        201,
    )?;
    let early = join("fuzz-later", "fuzz-early", 202)?;
    let early_ticket = field(&early, "ticket")?;

    Ok(Seed {
        events: vec!["fuzz".into(), "fuzz-later".into()],
        tickets: vec![fan_ticket, buyer_ticket, early_ticket],
        holds: vec![active, confirmed],
        reservations: vec![reservation],
        fan_token,
    })
}
