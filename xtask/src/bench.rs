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
//!     (MariaDB), then confirming: the contention time;
//! (d) hold latency alone, and while other fans confirm at the same time;
//! (e) the replica's memory per open WebSocket (RSS before and after
//!     opening thousands of them);
//! (f) push: three replicas, 10,000 queued fans each watching over a
//!     WebSocket on another replica than the one it joined through; the
//!     queue opens, and each `admitted` is timed from the admission in
//!     Redis to its arrival on the socket.
//!
//! The load generator writes each result as a typed JSON file (the
//! `report` crate) that this reads back. The report is printed and written
//! to target/bench/report.md.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use devstack::{http_request, MariaDb, RedisOptions, RedisServer};
use report::{Contention, Fans, HttpPeak, Mixed, Push, RedisPeak, Sockets};
use xshell::{cmd, Shell};

use crate::dev::App;
use crate::{flags, tools, Result};

/// The app (release build) on `redis`, with booking on `db` when given;
/// `name` names its key and log files under `dir`.
pub(crate) fn start_app(
    binary: &Path,
    dir: &Path,
    name: &str,
    redis: &RedisServer,
    db: Option<&MariaDb>,
    admin: &str,
) -> Result<App> {
    let key = dir.join(format!("{name}.pem"));
    let made = Command::new(binary)
        .arg("keygen")
        .arg("--out")
        .arg(&key)
        .status()?;
    if !made.success() {
        return Err("admission keygen failed".into());
    }
    let addr: SocketAddr = format!("127.0.0.1:{}", devstack::free_port()).parse()?;
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(binary);
    cmd.env("LISTEN_ADDR", addr.to_string())
        .env("REDIS_URL", redis.url())
        .env("ADMIN_TOKEN", admin)
        .env("TOKEN_KEYS", format!("bench:{}", key.display()))
        .env("REDIS_POOL_SIZE", "8")
        .env("REPLICA_ID", name)
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(db) = db {
        let (migrator, app_url, reader_url) = db.create_database(name)?;
        let migrated = Command::new(binary)
            .arg("migrate")
            .env("DATABASE_URL", &migrator)
            .output()?;
        if !migrated.status.success() {
            return Err(
                format!("migrations: {}", String::from_utf8_lossy(&migrated.stderr)).into(),
            );
        }
        cmd.env("DATABASE_URL", app_url)
            .env("DATABASE_READ_URL", reader_url)
            .env("DATABASE_POOL_SIZE", "40");
    }
    App::start(&mut cmd, addr, &log_path)
}

pub(crate) fn configure(addr: SocketAddr, admin: &str, event: &str, body: &str) -> Result {
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

pub(crate) fn create_event(
    addr: SocketAddr,
    admin: &str,
    id: &str,
    rows: u32,
    per_row: u32,
) -> Result {
    let auth = format!("Bearer {admin}");
    let event = format!(
        r#"{{"id":"{id}","name":"{id}","venue":"Bench","starts_at":"2030-01-01T20:00:00Z","sale_opens_at":"2020-01-01T00:00:00Z","seat_map":{{"rows":{rows},"seats_per_row":{per_row}}}}}"#
    );
    let (code, text) = http_request(
        addr,
        "POST",
        "/api/v1/admin/events",
        &[("Authorization", &auth)],
        Some(&event),
    )?;
    if code != 201 {
        return Err(format!("creating the event {id}: {code} {text}").into());
    }
    Ok(())
}

/// A process's resident memory (VmRSS) in KiB.
pub(crate) fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/<pid>/status".into())
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
    let release = crate::ops::target_dir(&root).join("release");
    let loadgen = release.join("loadgen");
    let binary = release.join("admission");
    let dir = root.join("target/bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let redis = RedisServer::start(&dir.join("redis"), &RedisOptions::default())?;
    let db = MariaDb::start(&dir.join("mariadb"))?;
    let admin = "bench-admin-token-0123456789";
    let app = start_app(&binary, &dir, "bench", &redis, Some(&db), admin)?;
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
    let file = dir.join("redis-peak.json");
    cmd!(
        sh,
        "{loadgen} redis-peak --redis {url} --event raw --connections 50 --seconds {secs} --report {file}"
    )
    .run()?;
    let raw: RedisPeak = report::read(&file)?;
    eprintln!("    {:.0} joins/s", raw.per_second);
    eprintln!("==> (a) peak HTTP joins over 256 keep-alive connections");
    let file = dir.join("http-peak.json");
    cmd!(
        sh,
        "{loadgen} http-peak --target {target} --event peak --connections 256 --seconds {secs} --report {file}"
    )
    .run()?;
    let peak: HttpPeak = report::read(&file)?;
    eprintln!("    {:.0} joins/s, {} errors", peak.per_second, peak.errors);
    let (raw_rate, http_rate) = (raw.per_second, peak.per_second);

    let fans = flags.fans.to_string();
    let processes = flags.fan_processes.to_string();
    eprintln!("==> (b) {fans} fans, one request a second each, over {processes} processes");
    let file = dir.join("fans.json");
    cmd!(
        sh,
        "{loadgen} fans --target {target} --event fans --fans {fans} --processes {processes} --seconds 25 --warmup 5 --report {file}"
    )
    .run()?;
    let lat: Fans = report::read(&file)?;
    let ms = |v: Option<f64>| v.unwrap_or(f64::NAN);

    eprintln!("==> (c) 1,000 admitted fans on a 100-seat event, all at once");
    create_event(app.addr, admin, "contention", 10, 10)?;
    configure(
        app.addr,
        admin,
        "contention",
        r#"{"capacity":1000,"admit_per_second":1000}"#,
    )?;
    let file = dir.join("contention.json");
    cmd!(
        sh,
        "{loadgen} contention --target {target} --event contention --fans 1000 --seats 100 --report {file}"
    )
    .run()?;
    let fight: Contention = report::read(&file)?;

    eprintln!("==> (d) 100 holds alone, then 100 holds while 100 other fans confirm");
    create_event(app.addr, admin, "mixed", 30, 10)?;
    configure(
        app.addr,
        admin,
        "mixed",
        r#"{"capacity":1000,"admit_per_second":1000}"#,
    )?;
    let file = dir.join("mixed.json");
    cmd!(
        sh,
        "{loadgen} mixed --target {target} --event mixed --fans 100 --report {file}"
    )
    .run()?;
    let mixed: Mixed = report::read(&file)?;

    let sockets = flags.sockets.get();
    eprintln!("==> (e) {sockets} open WebSockets on a fresh replica: its memory per socket");
    // A replica of its own, so that memory the others' runs left in its
    // heap cannot hide the sockets' cost.
    let fresh = start_app(&binary, &dir, "sockets", &redis, None, admin)?;
    let fresh_target = fresh.addr.to_string();
    configure(
        fresh.addr,
        admin,
        "sockets",
        r#"{"capacity":0,"queue_idle_timeout_seconds":3600}"#,
    )?;
    let pid = fresh.process.id().ok_or("the app is not running")?;
    let ready = dir.join("sockets.ready");
    let file = dir.join("sockets.json");
    let count = sockets.to_string();
    let before = rss_kib(pid)?;
    let mut opener = Command::new(&loadgen)
        .args([
            "sockets",
            "--target",
            &fresh_target,
            "--event",
            "sockets",
            "--count",
            &count,
        ])
        .args(["--hold-seconds", "6", "--ready"])
        .arg(&ready)
        .arg("--report")
        .arg(&file)
        .spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while !ready.exists() {
        if std::time::Instant::now() > deadline {
            let _ = opener.kill();
            return Err("the sockets did not open within 3 minutes".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Let the replica settle (the first position messages, the hub's poll).
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after = rss_kib(pid)?;
    if !opener.wait()?.success() {
        return Err("the socket load process failed".into());
    }
    let opened: Sockets = report::read(&file)?;
    let per_socket = (after.saturating_sub(before)) as f64 / opened.opened.max(1) as f64;
    drop(fresh);

    let watchers = flags.push_sockets.get();
    eprintln!("==> (f) {watchers} sockets over 3 replicas, each on another replica than its join; the queue opens");
    let replicas = (0..3)
        .map(|i| start_app(&binary, &dir, &format!("push-{i}"), &redis, None, admin))
        .collect::<Result<Vec<_>>>()?;
    configure(
        replicas[0].addr,
        admin,
        "push",
        r#"{"capacity":0,"queue_idle_timeout_seconds":3600}"#,
    )?;
    let file = dir.join("push.json");
    let mut push = Command::new(&loadgen);
    push.arg("--report").arg(&file).args([
        "push",
        "--event",
        "push",
        "--admin",
        admin,
        "--redis",
        &redis.url(),
        "--count",
        &watchers.to_string(),
        "--rate",
        "500",
    ]);
    for r in &replicas {
        push.arg("--target").arg(r.addr.to_string());
    }
    if !push.status()?.success() {
        return Err("the push run failed".into());
    }
    let pushed: Push = report::read(&file)?;
    drop(replicas);

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
         | fans connected / offered rate | {} / {:.0} req/s | 10,000 / 10,000 |\n\
         | status polls answered after warm-up | {:.0} req/s | |\n\
         | join latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms | p99 ≤ 25 ms |\n\
         | status latency p50 / p99 / max | {:.1} / {:.1} / {:.1} ms | p99 ≤ 25 ms |\n\
         | errors (latency run) | {} | 0 |\n\
         | 1,000 fans on 100 seats: held / refused / reserved | {} / {} / {} | 100 / 900 / 100 |\n\
         | 1,000 holds at once, then 100 confirms | {:.2} s + {:.2} s = {:.2} s | ≤ 1 s (seed 004: 8.34 s) |\n\
         | hold p50 / p99 alone | {:.1} / {:.1} ms | |\n\
         | hold p50 / p99 while 100 confirms run | {:.1} / {:.1} ms | p99 as alone |\n\
         | WebSockets open / replica RSS per socket | {} / {:.1} KiB | ≤ 40 KiB |\n\
         | push: sockets over 3 replicas / told admitted / missed | {} / {} / {} | 10,000 / all / 0 |\n\
         | push: admission → `admitted` on the socket p50 / p99 / max | {:.0} / {:.0} / {:.0} ms | p99 ≤ 250 ms |\n\n\
         Machine: {cores} × {cpu}; app, Redis, MariaDB and load generators on the same machine; release builds; Redis without persistence, MariaDB with durable commits.\n",
        100.0 * http_rate / raw_rate,
        lat.connected,
        lat.offered_per_second,
        lat.answered_per_second,
        ms(lat.join.p50_ms),
        ms(lat.join.p99_ms),
        ms(lat.join.max_ms),
        ms(lat.status.p50_ms),
        ms(lat.status.p99_ms),
        ms(lat.status.max_ms),
        lat.errors,
        fight.held,
        fight.refused,
        fight.reserved,
        fight.hold_seconds,
        fight.confirm_seconds,
        fight.total_seconds,
        ms(mixed.holds_alone.p50_ms),
        ms(mixed.holds_alone.p99_ms),
        ms(mixed.holds_with_confirms.p50_ms),
        ms(mixed.holds_with_confirms.p99_ms),
        opened.opened,
        per_socket,
        pushed.sockets,
        pushed.told,
        pushed.missed,
        ms(pushed.latency.p50_ms),
        ms(pushed.latency.p99_ms),
        ms(pushed.latency.max_ms),
    );
    std::fs::write(dir.join("report.md"), &report)?;
    println!("\n{report}");
    println!(
        "xtask bench: raw {raw_rate:.0}/s, http {http_rate:.0}/s ({:.0}%), status p99 {:.1} ms at {:.0} req/s, 1,000 fans on 100 seats {:.2} s, {per_socket:.1} KiB per socket; report in target/bench/report.md",
        100.0 * http_rate / raw_rate,
        ms(lat.status.p99_ms),
        lat.answered_per_second,
        fight.total_seconds,
    );
    drop(app);
    drop(redis);
    drop(db);
    Ok(())
}
