//! Load generator for `cargo xtask bench`: HTTP join peak over keep-alive
//! connections, the raw Redis ceiling of the join script, and latency under
//! many open connections at a fixed offered rate (spread over several
//! processes, as one process may hold at most 20,000 files).
//!
//! Every command writes its result as a typed JSON file (`--report FILE`,
//! the types of the `report` crate) that xtask reads back.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use report::{Contention, Fans, FansShare, HttpPeak, Latency, Mixed, Push, RedisPeak, Sockets};
use serde_json::Value;
use tokio::net::TcpSocket;

mod drive;
mod render;
use tokio::sync::Semaphore;

#[derive(Parser)]
#[command(name = "loadgen", about = "Load generator for cargo xtask bench")]
struct Cli {
    /// Where to write the result (JSON, a type of the `report` crate).
    #[arg(long, global = true)]
    report: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// One load process of `cargo xtask loadtest` (writes a report::Part).
    Drive(drive::Drive),
    /// The SHA1 of each queue script, as Redis's SLOWLOG names them
    /// (loaded into --redis), one `sha name` line each.
    Scripts {
        #[arg(long)]
        redis: String,
    },
    /// The charts (SVG) of a loadtest run's report.json, into its folder.
    Render {
        /// The run's folder (holding report.json).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Peak joins per second over keep-alive HTTP connections.
    HttpPeak {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        event: String,
        #[arg(long, default_value_t = 256)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Prefix of client ids, so that several runs do not rejoin.
        #[arg(long, default_value = "peak")]
        tag: String,
    },
    /// The product's join script by EVALSHA, one call in flight per connection.
    RedisPeak {
        #[arg(long)]
        redis: String,
        #[arg(long)]
        event: String,
        #[arg(long, default_value = "")]
        key_prefix: String,
        #[arg(long, default_value_t = 50)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// `fans` admitted fans try to hold the seats of one event at once (each
    /// one seat; ten fans per seat), then every hold is confirmed.
    Contention {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        event: String,
        #[arg(long, default_value_t = 1000)]
        fans: usize,
        #[arg(long)]
        seats: usize,
    },
    /// Holds alone, then holds while other fans confirm at the same time
    /// (the event needs 4 × (`fans` + `paced`) seats in rows of 10).
    Mixed {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        event: String,
        #[arg(long, default_value_t = 100)]
        fans: usize,
        /// Fans of the paced pair of runs.
        #[arg(long, default_value_t = 1000)]
        paced: usize,
        /// Their pace: holds (and as many confirms) a second.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
        per_second: u32,
        /// The paced fans in this many rounds of the three runs, each
        /// round in another order, their latencies pooled: a p99 of one
        /// short run moves with whatever else the machine did in it.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
        rounds: u32,
    },
    /// Opens `count` WebSockets (each its own queued fan) and holds them
    /// open; writes `--ready FILE` once all are open, so the parent can
    /// measure the replica.
    Sockets {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        event: String,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 5)]
        hold_seconds: u64,
        #[arg(long)]
        ready: Option<PathBuf>,
    },
    /// Push latency: `count` queued fans, each joining through one replica
    /// and watching over a WebSocket on the next; then the queue opens
    /// (capacity `count`, `rate` a second) and each socket's `admitted` is
    /// timed against the admission's time in the event's outbox.
    Push {
        /// Every replica (at least one); fans and sockets are spread over them.
        #[arg(long, required = true)]
        target: Vec<SocketAddr>,
        #[arg(long)]
        event: String,
        #[arg(long)]
        admin: String,
        /// The replicas' Redis (the outbox is read there).
        #[arg(long)]
        redis: String,
        #[arg(long, default_value = "")]
        key_prefix: String,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 500)]
        rate: u64,
    },
    /// Fans: each holds one keep-alive connection, joins, then asks for its
    /// status once a second. Latency is measured from the scheduled send
    /// time, so a slow server cannot hide its queueing.
    Fans {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        event: String,
        #[arg(long)]
        fans: usize,
        /// Total over all processes; each process takes its share.
        #[arg(long, default_value_t = 1)]
        processes: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Seconds at the start whose samples are dropped.
        #[arg(long, default_value_t = 3)]
        warmup: u64,
        /// Source address of this process (127.0.0.x spreads ephemeral ports).
        #[arg(long)]
        source: Option<IpAddr>,
        /// Index of this process among `processes` (set by the parent).
        #[arg(long)]
        index: Option<usize>,
    },
}

async fn connect(
    target: SocketAddr,
    source: Option<IpAddr>,
) -> std::io::Result<SendRequest<Full<Bytes>>> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(src) = source {
        socket.bind(SocketAddr::new(src, 0))?;
    }
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn request(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<(u16, Bytes), String> {
    request_with(sender, method, path, body, &[]).await
}

/// [`request`] with extra headers (the catalog's `Accept-Encoding`).
async fn request_with(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: Option<String>,
    headers: &[(&str, &str)],
) -> Result<(u16, Bytes), String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "bench")
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// Waits for every worker; returns the seconds it took.
async fn wait_all(tasks: Vec<tokio::task::JoinHandle<()>>) -> f64 {
    let started = Instant::now();
    for t in tasks {
        let _ = t.await;
    }
    started.elapsed().as_secs_f64()
}

async fn http_peak(
    target: SocketAddr,
    event: String,
    connections: usize,
    seconds: u64,
    tag: String,
) -> HttpPeak {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (done, errors, event, tag) = (done.clone(), errors.clone(), event.clone(), tag.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut sender) = connect(target, None).await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let path = format!("/api/v1/events/{event}/queue");
            let mut i = 0u64;
            while Instant::now() < deadline {
                let body = format!("{{\"client_id\":\"{tag}-{c}-{i}\"}}");
                match request(&mut sender, "POST", &path, Some(body)).await {
                    Ok((200 | 202, _)) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        match connect(target, None).await {
                            Ok(s) => sender = s,
                            Err(_) => return,
                        }
                    }
                }
                i += 1;
            }
        }));
    }
    let secs = wait_all(tasks).await;
    let n = done.load(Ordering::Relaxed);
    HttpPeak {
        joins: n,
        errors: errors.load(Ordering::Relaxed),
        seconds: secs,
        per_second: n as f64 / secs,
    }
}

async fn redis_peak(
    url: String,
    event: String,
    prefix: String,
    connections: usize,
    seconds: u64,
) -> Result<RedisPeak, String> {
    let ev = admission::queue::EventId::parse(&event).ok_or("bad event id")?;
    let keys = admission::queue::scripts::EventKeys::new(&prefix, &ev);
    let script = admission::queue::scripts::Scripts::new();
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut setup = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(script.join.source())
        .query_async(&mut setup)
        .await
        .map_err(|e| e.to_string())?;
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let client = client.clone();
        let (done, sha, keys) = (done.clone(), sha.clone(), keys.all().to_vec());
        // The app's own context: the raw ceiling pays for the outbox too.
        let context = admission::queue::scripts::context_args("loadgen", 0, false);
        tasks.push(tokio::spawn(async move {
            let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                return;
            };
            let mut i = 0u64;
            while Instant::now() < deadline {
                let ticket = admission::queue::Ticket::generate();
                let r: redis::RedisResult<redis::Value> = redis::cmd("EVALSHA")
                    .arg(&sha)
                    .arg(keys.len())
                    .arg(&keys)
                    .arg(&context[..])
                    .arg(format!("cid:raw-{c}-{i}"))
                    .arg(ticket.as_str())
                    .query_async(&mut conn)
                    .await;
                if r.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    let secs = wait_all(tasks).await;
    let n = done.load(Ordering::Relaxed);
    Ok(RedisPeak {
        joins: n,
        seconds: secs,
        per_second: n as f64 / secs,
    })
}

/// One process's share of the fans.
async fn fans(
    target: SocketAddr,
    event: String,
    fans: usize,
    seconds: u64,
    warmup: u64,
    source: Option<IpAddr>,
    index: usize,
) -> FansShare {
    let limit = Arc::new(Semaphore::new(256));
    let mut senders = Vec::with_capacity(fans);
    let mut connect_errors = 0;
    for _ in 0..fans {
        let permit = limit.clone().acquire_owned().await.expect("semaphore");
        senders.push(tokio::spawn(async move {
            let r = connect(target, source).await;
            drop(permit);
            r
        }));
    }
    let mut conns = Vec::with_capacity(fans);
    for s in senders {
        match s.await {
            Ok(Ok(c)) => conns.push(c),
            _ => connect_errors += 1,
        }
    }
    let start = tokio::time::Instant::now() + Duration::from_millis(500);
    let end = start + Duration::from_secs(seconds);
    let measure_from = start + Duration::from_secs(warmup);
    let n = conns.len().max(1);
    let mut tasks = Vec::with_capacity(conns.len());
    for (i, mut sender) in conns.into_iter().enumerate() {
        let event = event.clone();
        // Fans are spread evenly over the second.
        let phase = Duration::from_micros((i as u64 * 1_000_000) / n as u64);
        tasks.push(tokio::spawn(async move {
            let mut joins = Vec::new();
            let mut polls = Vec::new();
            let mut errors = 0u64;
            let mut ticket: Option<String> = None;
            let mut at = start + phase;
            while at < end {
                tokio::time::sleep_until(at).await;
                let (method, path, body) = match &ticket {
                    None => (
                        "POST",
                        format!("/api/v1/events/{event}/queue"),
                        Some(format!("{{\"client_id\":\"fan-{index}-{i}\"}}")),
                    ),
                    Some(t) => ("GET", format!("/api/v1/events/{event}/queue/{t}"), None),
                };
                let result = request(&mut sender, method, &path, body).await;
                let latency = at.elapsed().as_micros() as u32;
                match result {
                    Ok((200 | 202, body)) => {
                        let is_join = ticket.is_none();
                        if is_join {
                            ticket = serde_json::from_slice::<Value>(&body)
                                .ok()
                                .and_then(|v| v["ticket"].as_str().map(str::to_string));
                        }
                        // Every fan joins in the first second, as at the
                        // opening of a sale: joins are always measured;
                        // status polls only after the warm-up.
                        if is_join {
                            joins.push(latency)
                        } else if at >= measure_from {
                            polls.push(latency)
                        }
                    }
                    _ => errors += 1,
                }
                at += Duration::from_secs(1);
            }
            (joins, polls, errors)
        }));
    }
    let (mut joins, mut polls, mut errors) = (Vec::new(), Vec::new(), 0u64);
    for t in tasks {
        if let Ok((j, p, e)) = t.await {
            joins.extend(j);
            polls.extend(p);
            errors += e;
        }
    }
    FansShare {
        connected: n as u64,
        connect_errors,
        errors,
        join_us: joins,
        status_us: polls,
    }
}

/// Runs `processes` children (each its share of fans, its own 127.0.0.x
/// source, its own report file next to `dir`) and merges their samples.
async fn fans_fleet(
    target: SocketAddr,
    event: String,
    total: usize,
    processes: usize,
    seconds: u64,
    warmup: u64,
    dir: &Path,
) -> Result<Fans, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    for p in 0..processes {
        let share = total / processes + usize::from(p < total % processes);
        let file = dir.join(format!("fans-{p}.json"));
        let _ = std::fs::remove_file(&file);
        let child = tokio::process::Command::new(&exe)
            .args(["fans", "--target", &target.to_string(), "--event", &event])
            .args([
                "--fans",
                &share.to_string(),
                "--seconds",
                &seconds.to_string(),
                "--warmup",
                &warmup.to_string(),
            ])
            .args([
                "--source",
                &format!("127.0.0.{}", p + 2),
                "--index",
                &p.to_string(),
            ])
            .arg("--report")
            .arg(&file)
            .spawn()
            .map_err(|e| e.to_string())?;
        children.push((child, file));
    }
    let (mut joins, mut polls) = (Vec::<u32>::new(), Vec::<u32>::new());
    let (mut errors, mut connected, mut connect_errors) = (0, 0, 0);
    for (mut child, file) in children {
        let status = child.wait().await.map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("a load process failed ({status})"));
        }
        let share: FansShare = report::read(&file).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&file);
        joins.extend(share.join_us);
        polls.extend(share.status_us);
        errors += share.errors;
        connected += share.connected;
        connect_errors += share.connect_errors;
    }
    let measured = (seconds - warmup) as f64;
    Ok(Fans {
        fans: total as u64,
        processes: processes as u64,
        connected,
        connect_errors,
        errors,
        offered_per_second: connected as f64,
        answered_per_second: polls.len() as f64 / measured,
        join: Latency::from_micros(&mut joins),
        status: Latency::from_micros(&mut polls),
    })
}

/// One request on a fresh connection (for the contention run, where each
/// fan is its own client).
async fn once(
    target: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<(u16, Value), String> {
    let mut sender = connect(target, None).await.map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| e.to_string())?;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "bench")
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn contention(
    target: SocketAddr,
    event: String,
    fans: usize,
    seats: usize,
) -> Result<Contention, String> {
    // Everyone admitted first: the contention measured is on the seats.
    let limit = Arc::new(Semaphore::new(200));
    let mut joins = Vec::new();
    for i in 0..fans {
        let (limit, event) = (limit.clone(), event.clone());
        joins.push(tokio::spawn(async move {
            let _p = limit.acquire().await.ok()?;
            let body = format!("{{\"client_id\":\"contender-{i}\"}}");
            let (status, v) = once(
                target,
                "POST",
                &format!("/api/v1/events/{event}/queue"),
                None,
                Some(body),
            )
            .await
            .ok()?;
            (status == 200)
                .then(|| v["token"].as_str().map(str::to_string))
                .flatten()
        }));
    }
    let mut tokens = Vec::new();
    for j in joins {
        if let Ok(Some(t)) = j.await {
            tokens.push(t);
        }
    }
    if tokens.len() != fans {
        return Err(format!(
            "only {} of {fans} fans were admitted",
            tokens.len()
        ));
    }
    let per_row = 10;
    let started = Instant::now();
    let mut holds = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let event = event.clone();
        let spot = i * 37 % seats;
        let seat = format!(
            "main-{}-{}",
            (b'A' + (spot / per_row) as u8) as char,
            spot % per_row + 1
        );
        holds.push(tokio::spawn(async move {
            let body = format!("{{\"seat_ids\":[\"{seat}\"]}}");
            let r = once(
                target,
                "POST",
                &format!("/api/v1/events/{event}/holds"),
                Some(&token),
                Some(body),
            )
            .await;
            (token, r)
        }));
    }
    let (mut held, mut refused, mut errors) = (Vec::new(), 0u64, 0u64);
    for h in holds {
        match h.await {
            Ok((token, Ok((201, v)))) => {
                held.push((token, v["hold_id"].as_str().unwrap_or_default().to_string()))
            }
            Ok((_, Ok((409, _)))) => refused += 1,
            _ => errors += 1,
        }
    }
    let hold_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut confirms = Vec::new();
    for (token, hold) in held.clone() {
        confirms.push(tokio::spawn(async move {
            once(
                target,
                "POST",
                &format!("/api/v1/holds/{hold}/confirm"),
                Some(&token),
                None,
            )
            .await
        }));
    }
    let mut reserved = 0u64;
    for c in confirms {
        if let Ok(Ok((201, _))) = c.await {
            reserved += 1;
        }
    }
    let confirm_seconds = started.elapsed().as_secs_f64();
    Ok(Contention {
        fans: fans as u64,
        seats: seats as u64,
        held: held.len() as u64,
        refused,
        errors,
        reserved,
        hold_seconds,
        confirm_seconds,
        total_seconds: hold_seconds + confirm_seconds,
    })
}

/// Admits `n` fans (each a new connection, as a browser would) and returns
/// their admission tokens.
async fn admit(
    target: SocketAddr,
    event: &str,
    n: usize,
    tag: &str,
) -> Result<Vec<String>, String> {
    let limit = Arc::new(Semaphore::new(200));
    let mut joins = Vec::new();
    for i in 0..n {
        let (limit, event, tag) = (limit.clone(), event.to_string(), tag.to_string());
        joins.push(tokio::spawn(async move {
            let _p = limit.acquire().await.ok()?;
            let body = format!("{{\"client_id\":\"{tag}-{i}\"}}");
            let (status, v) = once(
                target,
                "POST",
                &format!("/api/v1/events/{event}/queue"),
                None,
                Some(body),
            )
            .await
            .ok()?;
            (status == 200)
                .then(|| v["token"].as_str().map(str::to_string))
                .flatten()
        }));
    }
    let mut tokens = Vec::new();
    for j in joins {
        if let Ok(Some(t)) = j.await {
            tokens.push(t);
        }
    }
    if tokens.len() != n {
        return Err(format!("only {} of {n} fans were admitted", tokens.len()));
    }
    Ok(tokens)
}

fn seat(i: usize) -> String {
    format!("main-{}-{}", row_label(i / 10), i % 10 + 1)
}

fn row_label(mut i: usize) -> String {
    let mut label = Vec::new();
    loop {
        label.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    label.reverse();
    String::from_utf8(label).unwrap_or_default()
}

/// Holds `seats` (one per token) at once; returns (token, hold id) of each
/// success and the latencies in µs.
async fn hold_all(
    target: SocketAddr,
    event: &str,
    tokens: Vec<String>,
    seats: Vec<String>,
    pace: Pace,
) -> (Vec<(String, String)>, Vec<u32>, u64) {
    let mut tasks = Vec::new();
    let start = tokio::time::Instant::now();
    for (i, (token, seat)) in tokens.into_iter().zip(seats).enumerate() {
        let event = event.to_string();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(pace.start_of(start, i)).await;
            let started = Instant::now();
            let body = format!("{{\"seat_ids\":[\"{seat}\"]}}");
            let r = once(
                target,
                "POST",
                &format!("/api/v1/events/{event}/holds"),
                Some(&token),
                Some(body),
            )
            .await;
            (token, r, started.elapsed().as_micros() as u32)
        }));
    }
    let (mut held, mut lat, mut errors) = (Vec::new(), Vec::new(), 0);
    for t in tasks {
        match t.await {
            Ok((token, Ok((201, v)), us)) => {
                lat.push(us);
                held.push((token, v["hold_id"].as_str().unwrap_or_default().to_string()));
            }
            _ => errors += 1,
        }
    }
    (held, lat, errors)
}

async fn confirm_all(
    target: SocketAddr,
    held: Vec<(String, String)>,
    pace: Pace,
) -> (Vec<u32>, u64) {
    let mut tasks = Vec::new();
    let start = tokio::time::Instant::now();
    for (i, (token, hold)) in held.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(pace.start_of(start, i)).await;
            let started = Instant::now();
            let r = once(
                target,
                "POST",
                &format!("/api/v1/holds/{hold}/confirm"),
                Some(&token),
                None,
            )
            .await;
            (r, started.elapsed().as_micros() as u32)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        match t.await {
            Ok((Ok((201, _)), us)) => lat.push(us),
            _ => errors += 1,
        }
    }
    (lat, errors)
}

/// When the requests of a batch start: all at once, or one every so often.
#[derive(Clone, Copy)]
enum Pace {
    Burst,
    Every(Duration),
}

impl Pace {
    fn start_of(self, start: tokio::time::Instant, i: usize) -> tokio::time::Instant {
        match self {
            Pace::Burst => start,
            Pace::Every(gap) => start + gap * i as u32,
        }
    }
}

/// Holds alone, then as many holds while other fans confirm the first
/// ones, then as many holds beside as many other fans' holds (the control:
/// what the same number of requests that take none of a confirm's locks
/// costs a hold). First `fans` all at once (a burst, which fills the
/// machine's CPU), then `paced` at `per_second` a second (below
/// saturation) in `rounds` rounds. Uses 4 × (`fans` + `paced`) fans and
/// seats.
async fn mixed(
    target: SocketAddr,
    event: String,
    fans: usize,
    paced: usize,
    per_second: u32,
    rounds: usize,
) -> Result<Mixed, String> {
    let tokens = admit(target, &event, 4 * (fans + paced), "mixed").await?;
    let fans_of = |from: usize, n: usize| -> [Fans4; 4] {
        std::array::from_fn(|k| {
            let range = from + k * n..from + (k + 1) * n;
            (tokens[range.clone()].to_vec(), range.map(seat).collect())
        })
    };
    let burst = beside(target, &event, fans_of(0, fans), Pace::Burst, 1).await?;
    let gap = Pace::Every(Duration::from_secs(1) / per_second.max(1));
    let steady = beside(target, &event, fans_of(4 * fans, paced), gap, rounds).await?;
    Ok(Mixed {
        holds_alone: burst.alone,
        holds_with_confirms: burst.with_confirms,
        confirms: burst.confirms,
        holds_with_holds: burst.with_holds,
        per_second,
        rounds: rounds as u32,
        paced_holds_alone: steady.alone,
        paced_holds_with_confirms: steady.with_confirms,
        paced_confirms: steady.confirms,
        paced_holds_with_holds: steady.with_holds,
        errors: burst.errors + steady.errors,
    })
}

/// Fans (their tokens) and one seat for each.
type Fans4 = (Vec<String>, Vec<String>);

struct Beside {
    alone: Latency,
    with_confirms: Latency,
    confirms: Latency,
    with_holds: Latency,
    errors: u64,
}

/// The three runs of [`mixed`] at one pace, over four sets of fans, in
/// `rounds` rounds (each a slice of every set): holds alone, then beside
/// confirms of those holds, and the control beside other holds, first in
/// even rounds and last in odd ones, so that neither the order nor a
/// moment of the machine's favours one of them. The latencies of all
/// rounds are pooled.
async fn beside(
    target: SocketAddr,
    event: &str,
    sets: [Fans4; 4],
    pace: Pace,
    rounds: usize,
) -> Result<Beside, String> {
    let size = sets[0].0.len().div_ceil(rounds.max(1)).max(1);
    let slice = |set: &Fans4, r: usize| -> Fans4 {
        let range = (r * size).min(set.0.len())..((r + 1) * size).min(set.0.len());
        (set.0[range.clone()].to_vec(), set.1[range].to_vec())
    };
    let (mut alone, mut with_confirms, mut confirms, mut with_holds) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut errors = 0;
    for r in 0..rounds.max(1) {
        let [first, second, third, fourth] = std::array::from_fn(|k| slice(&sets[k], r));
        let mut control = Some((third, fourth));
        if r % 2 == 0 {
            if let Some((third, fourth)) = control.take() {
                errors += beside_holds(target, event, third, fourth, pace, &mut with_holds).await?;
            }
        }
        let (held, lat, e1) = hold_all(target, event, first.0, first.1, pace).await;
        alone.extend(lat);
        let confirming = tokio::spawn(confirm_all(target, held, pace));
        let (_, lat, e2) = hold_all(target, event, second.0, second.1, pace).await;
        with_confirms.extend(lat);
        let (lat, e3) = confirming.await.map_err(|e| e.to_string())?;
        confirms.extend(lat);
        errors += e1 + e2 + e3;
        if let Some((third, fourth)) = control {
            errors += beside_holds(target, event, third, fourth, pace, &mut with_holds).await?;
        }
    }
    Ok(Beside {
        alone: Latency::from_micros(&mut alone),
        with_confirms: Latency::from_micros(&mut with_confirms),
        confirms: Latency::from_micros(&mut confirms),
        with_holds: Latency::from_micros(&mut with_holds),
        errors,
    })
}

/// The control of [`beside`]: `measured` holds beside as many `other`
/// holds; their latencies go to `lat`, the errors of both are returned.
async fn beside_holds(
    target: SocketAddr,
    event: &str,
    measured: Fans4,
    other: Fans4,
    pace: Pace,
    lat: &mut Vec<u32>,
) -> Result<u64, String> {
    let others = {
        let event = event.to_string();
        tokio::spawn(async move { hold_all(target, &event, other.0, other.1, pace).await })
    };
    let (_, measured, e1) = hold_all(target, event, measured.0, measured.1, pace).await;
    lat.extend(measured);
    let (_, _, e2) = others.await.map_err(|e| e.to_string())?;
    Ok(e1 + e2)
}

async fn sockets(
    target: SocketAddr,
    event: String,
    count: usize,
    hold_seconds: u64,
    ready: Option<PathBuf>,
) -> Result<Sockets, String> {
    use futures_util::StreamExt;
    let limit = Arc::new(Semaphore::new(200));
    let mut opening = Vec::new();
    for i in 0..count {
        let (limit, event) = (limit.clone(), event.clone());
        opening.push(tokio::spawn(async move {
            let _p = limit.acquire().await.ok()?;
            let body = format!("{{\"client_id\":\"socket-{i}\"}}");
            let (_, v) = once(
                target,
                "POST",
                &format!("/api/v1/events/{event}/queue"),
                None,
                Some(body),
            )
            .await
            .ok()?;
            let ticket = v["ticket"].as_str()?.to_string();
            let url = format!("ws://{target}/api/v1/events/{event}/queue/{ticket}/ws");
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
            // Open once the first message (the position) has arrived.
            tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .ok()??
                .ok()?;
            Some(ws)
        }));
    }
    let mut open = Vec::new();
    for o in opening {
        if let Ok(Some(ws)) = o.await {
            open.push(ws);
        }
    }
    let opened = open.len();
    // Keep reading (pings, positions) so every socket stays healthy.
    let readers: Vec<_> = open
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} }))
        .collect();
    if let Some(path) = &ready {
        std::fs::write(path, opened.to_string()).map_err(|e| e.to_string())?;
    }
    tokio::time::sleep(Duration::from_secs(hold_seconds)).await;
    for r in readers {
        r.abort();
    }
    Ok(Sockets {
        requested: count as u64,
        opened: opened as u64,
        failed: (count - opened) as u64,
        held_seconds: hold_seconds as f64,
    })
}

#[allow(clippy::too_many_arguments)]
async fn push(
    targets: Vec<SocketAddr>,
    event: String,
    admin: String,
    redis_url: String,
    prefix: String,
    count: usize,
    rate: u64,
) -> Result<Push, String> {
    use futures_util::StreamExt;
    use std::collections::HashMap;
    let n = targets.len();
    if n == 0 {
        return Err("no target".into());
    }
    let clock_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    };
    let limit = Arc::new(Semaphore::new(200));
    let (told_tx, mut told_rx) = tokio::sync::mpsc::unbounded_channel::<(String, i64)>();
    let (open_tx, mut open_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut sockets = Vec::new();
    for i in 0..count {
        let (limit, event) = (limit.clone(), event.clone());
        let (join_at, watch_at) = (targets[i % n], targets[(i + 1) % n]);
        let (told_tx, open_tx) = (told_tx.clone(), open_tx.clone());
        sockets.push(tokio::spawn(async move {
            let permit = limit.acquire().await.ok()?;
            let body = format!("{{\"client_id\":\"push-{i}\"}}");
            let (_, v) = once(
                join_at,
                "POST",
                &format!("/api/v1/events/{event}/queue"),
                None,
                Some(body),
            )
            .await
            .ok()?;
            let ticket = v["ticket"].as_str()?.to_string();
            let url = format!("ws://{watch_at}/api/v1/events/{event}/queue/{ticket}/ws");
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
            drop(permit);
            let _ = open_tx.send(());
            while let Some(Ok(m)) = ws.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                    let at = clock_ms();
                    if t.as_str().contains("\"type\":\"admitted\"") {
                        let _ = told_tx.send((ticket.clone(), at));
                        break;
                    }
                }
            }
            Some(())
        }));
    }
    drop(told_tx);
    drop(open_tx);
    let mut opened = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while opened < count && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(30), open_rx.recv()).await {
            Ok(Some(())) => opened += 1,
            _ => break,
        }
    }
    eprintln!("loadgen push: {opened} of {count} sockets open; opening the queue");
    let body = format!("{{\"capacity\":{count},\"admit_per_second\":{rate},\"session_timeout_seconds\":3600,\"queue_idle_timeout_seconds\":3600}}");
    let (status, v) = once(
        targets[0],
        "PUT",
        &format!("/api/v1/admin/events/{event}/queue"),
        Some(&admin),
        Some(body),
    )
    .await?;
    if status != 200 {
        return Err(format!("opening the queue: {status} {v}"));
    }
    let mut told: HashMap<String, i64> = HashMap::new();
    let expected = Duration::from_secs(count as u64 / rate.max(1) + 30);
    let until = Instant::now() + expected;
    while told.len() < opened && Instant::now() < until {
        match tokio::time::timeout(Duration::from_secs(10), told_rx.recv()).await {
            Ok(Some((ticket, at))) => {
                told.insert(ticket, at);
            }
            _ => break,
        }
    }
    for s in sockets {
        s.abort();
    }
    // The admissions' times, from the outbox (kept a minute).
    let ev = admission::queue::EventId::parse(&event).ok_or("bad event id")?;
    let outbox = admission::queue::scripts::EventKeys::new(&prefix, &ev)
        .outbox()
        .to_string();
    let client = redis::Client::open(redis_url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut admitted: HashMap<String, i64> = HashMap::new();
    let mut from = "-".to_string();
    loop {
        let v: redis::Value = redis::cmd("XRANGE")
            .arg(&outbox)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(5000)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let entries = admission::events::outbox::entries("xrange", v).map_err(|e| e.to_string())?;
        let Some(last) = entries.last().map(|e| e.id.clone()) else {
            break;
        };
        for e in &entries {
            if e.kind() == "admitted" {
                if let (Some(t), Some(at)) = (e.get("tk"), e.get("at").and_then(|a| a.parse().ok()))
                {
                    admitted.insert(t.to_string(), at);
                }
            }
        }
        from = format!("({last}");
    }
    let mut samples: Vec<u32> = Vec::new();
    let mut missed = 0;
    for (ticket, at) in &admitted {
        match told.get(ticket) {
            Some(seen) => samples.push(((seen - at).max(0) as u32).saturating_mul(1000)),
            None => missed += 1,
        }
    }
    Ok(Push {
        replicas: n as u64,
        sockets: opened as u64,
        told: told.len() as u64,
        missed,
        cross_replica: if n > 1 { opened as u64 } else { 0 },
        latency: Latency::from_micros(&mut samples),
    })
}

/// Writes a result where `--report` says, or prints it.
fn emit<T: serde::Serialize>(path: Option<&Path>, value: &T) -> Result<(), String> {
    match path {
        Some(p) => report::write(p, value).map_err(|e| format!("{}: {e}", p.display())),
        None => {
            println!(
                "{}",
                serde_json::to_string(value).map_err(|e| e.to_string())?
            );
            Ok(())
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let out = cli.report.as_deref();
    match cli.cmd {
        Cmd::Drive(d) => drive::run(d).await,
        Cmd::Render { dir } => render::run(&dir),
        Cmd::Scripts { redis } => {
            let client = redis::Client::open(redis).map_err(|e| e.to_string())?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            let scripts = admission::queue::scripts::Scripts::new();
            for script in scripts.all() {
                let sha: String = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(script.source())
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("{sha} {}", script.name);
            }
            Ok(())
        }
        Cmd::HttpPeak {
            target,
            event,
            connections,
            seconds,
            tag,
        } => emit(
            out,
            &http_peak(target, event, connections, seconds, tag).await,
        ),
        Cmd::RedisPeak {
            redis,
            event,
            key_prefix,
            connections,
            seconds,
        } => emit(
            out,
            &redis_peak(redis, event, key_prefix, connections, seconds).await?,
        ),
        Cmd::Contention {
            target,
            event,
            fans,
            seats,
        } => emit(out, &contention(target, event, fans, seats).await?),
        Cmd::Mixed {
            target,
            event,
            fans,
            paced,
            per_second,
            rounds,
        } => emit(
            out,
            &mixed(target, event, fans, paced, per_second, rounds as usize).await?,
        ),
        Cmd::Sockets {
            target,
            event,
            count,
            hold_seconds,
            ready,
        } => emit(
            out,
            &sockets(target, event, count, hold_seconds, ready).await?,
        ),
        Cmd::Push {
            target,
            event,
            admin,
            redis,
            key_prefix,
            count,
            rate,
        } => emit(
            out,
            &push(target, event, admin, redis, key_prefix, count, rate).await?,
        ),
        Cmd::Fans {
            target,
            event,
            fans: n,
            processes,
            seconds,
            warmup,
            source,
            index,
        } => match index {
            Some(i) => emit(
                out,
                &fans(target, event, n, seconds, warmup, source, i).await,
            ),
            None => {
                let dir = out
                    .and_then(Path::parent)
                    .map(Path::to_path_buf)
                    .unwrap_or_else(std::env::temp_dir);
                let merged = fans_fleet(target, event, n, processes, seconds, warmup, &dir).await?;
                emit(out, &merged)
            }
        },
    }
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}
