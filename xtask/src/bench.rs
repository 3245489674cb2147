//! `cargo xtask bench`: figures, never pass/fail. Release builds of the app
//! and the load generator, one standalone Redis, and three measurements:
//!
//! (a) peak HTTP joins/s over 256 keep-alive connections, beside the raw
//!     ceiling of the product's own join script by EVALSHA over 50
//!     connections, and their ratio;
//! (b) join and status latency with 10,000 open connections offering
//!     10,000 requests per second in all (each fan one request a second),
//!     spread over several load-generator processes;
//! (c) 1,000 admitted fans holding the 100 seats of one event at once
//!     (MariaDB), then confirming: the contention time.
//!
//! The report is printed and written to target/bench/report.md.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use devstack::{http_request, MariaDb, RedisOptions, RedisServer};
use xshell::{cmd, Shell};

use crate::{flags, tools, Result};

/// The first number after `"key":` at or after `from` in a JSON text.
fn json_number(text: &str, key: &str) -> Option<f64> {
    let needle = format!("\"{key}\":");
    let at = text.find(&needle)? + needle.len();
    let rest = &text[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || ".-eE+".contains(c)))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The JSON object that follows `"key":`.
fn json_object<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!("\"{key}\":{{");
    let at = text.find(&needle)? + needle.len() - 1;
    let end = text[at..].find('}')?;
    Some(&text[at..=at + end])
}

struct App {
    child: Child,
    addr: SocketAddr,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn start_app(
    root: &Path,
    dir: &Path,
    redis: &RedisServer,
    db: &MariaDb,
    admin: &str,
) -> Result<App> {
    let binary = root.join("target/release/admission");
    let (migrator, app_url, reader_url) = db.create_database("bench")?;
    let migrated = Command::new(&binary)
        .arg("migrate")
        .env("DATABASE_URL", &migrator)
        .output()?;
    if !migrated.status.success() {
        return Err(format!("migrations: {}", String::from_utf8_lossy(&migrated.stderr)).into());
    }
    let key = dir.join("token.pem");
    Command::new(&binary)
        .arg("keygen")
        .arg("--out")
        .arg(&key)
        .status()?;
    let addr: SocketAddr = format!("127.0.0.1:{}", devstack::free_port()).parse()?;
    let log = std::fs::File::create(dir.join("app.log"))?;
    let child = Command::new(&binary)
        .env("LISTEN_ADDR", addr.to_string())
        .env("REDIS_URL", redis.url())
        .env("ADMIN_TOKEN", admin)
        .env("TOKEN_KEYS", format!("bench:{}", key.display()))
        .env("REDIS_POOL_SIZE", "8")
        .env("DATABASE_URL", app_url)
        .env("DATABASE_READ_URL", reader_url)
        .env("DATABASE_POOL_SIZE", "40")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !matches!(
        http_request(addr, "GET", "/health/ready", &[], None),
        Ok((200, _))
    ) {
        if Instant::now() > deadline {
            return Err("the app did not become ready".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(App { child, addr })
}

fn configure(addr: SocketAddr, admin: &str, event: &str, body: &str) -> Result {
    let auth = format!("Bearer {admin}");
    let (status, text) = http_request(
        addr,
        "PUT",
        &format!("/api/v1/admin/events/{event}/queue"),
        &[("Authorization", &auth)],
        Some(body),
    )?;
    if status != 200 {
        return Err(format!("configuring {event}: {status} {text}").into());
    }
    Ok(())
}

pub fn run(sh: &Shell, flags: &flags::Bench) -> Result {
    tools::ensure_all(sh)?;
    eprintln!("==> building release binaries");
    cmd!(
        sh,
        "cargo build --release --quiet --package admission --package loadgen"
    )
    .run()?;
    let root = sh.current_dir();
    let loadgen = root.join("target/release/loadgen");
    let dir = root.join("target/bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let redis = RedisServer::start(&dir.join("redis"), &RedisOptions::default())?;
    let db = MariaDb::start(&dir.join("mariadb"))?;
    let admin = "bench-admin-token-0123456789";
    let app = start_app(&root, &dir, &redis, &db, admin)?;
    let target = app.addr.to_string();
    let secs = flags.seconds.to_string();
    // Everyone queues: the join path under test is the common one.
    for ev in ["raw", "peak"] {
        configure(
            app.addr,
            admin,
            ev,
            r#"{"capacity":0,"queue_idle_timeout_seconds":3600}"#,
        )?;
    }
    configure(
        app.addr,
        admin,
        "fans",
        r#"{"capacity":2000,"admit_per_second":200}"#,
    )?;

    eprintln!("==> (a) raw Redis ceiling: the join script by EVALSHA over 50 connections");
    let url = redis.url();
    let raw = cmd!(
        sh,
        "{loadgen} redis-peak --redis {url} --event raw --connections 50 --seconds {secs}"
    )
    .read()?;
    eprintln!("{raw}");
    eprintln!("==> (a) peak HTTP joins over 256 keep-alive connections");
    let peak = cmd!(
        sh,
        "{loadgen} http-peak --target {target} --event peak --connections 256 --seconds {secs}"
    )
    .read()?;
    eprintln!("{peak}");
    let raw_rate = json_number(&raw, "per_second").unwrap_or(f64::NAN);
    let http_rate = json_number(&peak, "per_second").unwrap_or(f64::NAN);

    let fans = flags.fans.to_string();
    let processes = flags.fan_processes.to_string();
    eprintln!("==> (b) {fans} fans, one request a second each, over {processes} processes");
    let lat = cmd!(
        sh,
        "{loadgen} fans --target {target} --event fans --fans {fans} --processes {processes} --seconds 25 --warmup 5"
    )
    .read()?;
    let join = json_object(&lat, "join").unwrap_or("{}");
    let status = json_object(&lat, "status").unwrap_or("{}");
    let g = |text: &str, key: &str| json_number(text, key).unwrap_or(f64::NAN);

    eprintln!("==> (c) 1,000 admitted fans on a 100-seat event, all at once");
    let auth = format!("Bearer {admin}");
    let event = r#"{"id":"contention","name":"Contention","venue":"Bench","starts_at":"2030-01-01T20:00:00Z","sale_opens_at":"2020-01-01T00:00:00Z","seat_map":{"rows":10,"seats_per_row":10}}"#;
    let (code, text) = http_request(
        app.addr,
        "POST",
        "/api/v1/admin/events",
        &[("Authorization", &auth)],
        Some(event),
    )?;
    if code != 201 {
        return Err(format!("creating the contention event: {code} {text}").into());
    }
    configure(
        app.addr,
        admin,
        "contention",
        r#"{"capacity":1000,"admit_per_second":1000}"#,
    )?;
    let fight = cmd!(
        sh,
        "{loadgen} contention --target {target} --event contention --fans 1000 --seats 100"
    )
    .read()?;
    eprintln!("{fight}");

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let report = format!(
        "| measure | figure | target |\n|---|---|---|\n\
         | raw Redis ceiling: join script by EVALSHA, 50 connections | {raw_rate:.0} joins/s | |\n\
         | peak HTTP joins, 256 keep-alive connections | {http_rate:.0} joins/s | |\n\
         | HTTP ÷ raw | {:.0}% | ≥ 40% |\n\
         | fans connected / offered rate | {:.0} / {:.0} req/s | 10,000 / 10,000 |\n\
         | status polls answered after warm-up | {:.0} req/s | |\n\
         | join latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms | p99 ≤ 25 ms |\n\
         | status latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms | p99 ≤ 25 ms |\n\
         | errors (latency run) | {:.0} | 0 |\n\
         | 1,000 fans on 100 seats: held / refused / reserved | {:.0} / {:.0} / {:.0} | 100 / 900 / 100 |\n\
         | 1,000 holds at once, then 100 confirms | {:.2} s + {:.2} s | seed 004: 8.34 s |\n\n\
         Machine: {cores} × {cpu}; app, Redis, MariaDB and load generators on the same machine; release builds; Redis without persistence, MariaDB with durable commits.\n",
        100.0 * http_rate / raw_rate,
        g(&lat, "connected"),
        g(&lat, "offered_per_second"),
        g(&lat, "answered_per_second"),
        g(join, "p50_ms"),
        g(join, "p99_ms"),
        g(join, "max_ms"),
        g(status, "p50_ms"),
        g(status, "p99_ms"),
        g(status, "max_ms"),
        g(&lat, "errors"),
        g(&fight, "held"),
        g(&fight, "refused"),
        g(&fight, "reserved"),
        g(&fight, "hold_seconds"),
        g(&fight, "confirm_seconds"),
    );
    std::fs::write(dir.join("report.md"), &report)?;
    println!("\n{report}");
    println!(
        "xtask bench: raw {raw_rate:.0}/s, http {http_rate:.0}/s ({:.0}%), status p99 {:.1} ms at {:.0} req/s; report in target/bench/report.md",
        100.0 * http_rate / raw_rate,
        g(status, "p99_ms"),
        g(&lat, "answered_per_second")
    );
    drop(app);
    drop(redis);
    drop(db);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbers_out_of_loadgen_json() {
        let text =
            r#"{"join":{"count":3,"p50_ms":1.5},"status":{"p50_ms":2.25},"per_second":12345.6}"#;
        assert_eq!(json_number(text, "per_second"), Some(12345.6));
        assert_eq!(
            json_number(json_object(text, "status").unwrap(), "p50_ms"),
            Some(2.25)
        );
        assert_eq!(
            json_number(json_object(text, "join").unwrap(), "p50_ms"),
            Some(1.5)
        );
        assert_eq!(json_number(text, "missing"), None);
    }
}
