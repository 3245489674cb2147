//! `loadgen drive`: one load process of `cargo xtask loadtest`. It binds
//! its sockets to one loopback source address, waits for the common start
//! (the `--go` file), follows an open-loop schedule and records every
//! latency from the scheduled send time in HDR histograms (no coordinated
//! omission), next to its own scheduling lag: how late it sent after the
//! schedule. Its result is a `report::Part`, merged by xtask.
//!
//! Every loop is bounded in count and in time: a request waits at most
//! `REQUEST_TIMEOUT`, a process stops at its deadline whatever happens.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use hdrhistogram::Histogram as Hdr;
use report::{Histogram, Part, RoutePart, SecondPart};
use serde_json::Value;
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::{connect, request, request_with};

/// The longest any one request or WebSocket step may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest a process waits for the common start.
const GO_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Each fan joins, then asks for its status once a second.
    Steady,
    /// As steady, with fans starting in three stages (1%, 10%, 100%).
    Ramp,
    /// Fans join spread over `--window`, then wait on a WebSocket.
    Burst,
    /// Fans join a closed queue and watch on another replica's socket; the
    /// parent opens the queue; each `admitted` is timed from the outbox.
    Drain,
    /// `--fans` connections reading the catalog as fast as answers come
    /// (closed loop, like `ab -c`): events list, then a seat map.
    Catalog,
    /// `--fans` admitted fans hold the seats of `--event` (by seat id: ten
    /// fans per seat) and of `--seat-event` (by quantity, one seat each)
    /// all at once; every hold is then confirmed at once.
    Contention,
}

#[derive(Debug, Args)]
pub struct Drive {
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// The app replicas, comma-separated; fans are spread over them.
    #[arg(long, value_delimiter = ',', required = true)]
    pub targets: Vec<SocketAddr>,
    #[arg(long)]
    pub event: String,
    /// Fans over all processes (catalog: connections over all processes).
    #[arg(long)]
    pub fans: u64,
    #[arg(long, default_value_t = 1)]
    pub processes: u64,
    #[arg(long, default_value_t = 0)]
    pub index: u64,
    /// Source address of this process's sockets (127.0.0.x).
    #[arg(long)]
    pub source: Option<IpAddr>,
    /// Seconds of the schedule after the start (steady, ramp, catalog), or
    /// the seconds the sockets are held after the burst's window.
    #[arg(long)]
    pub duration: u64,
    /// Burst: seconds over which every fan joins.
    #[arg(long, default_value_t = 10)]
    pub window: u64,
    /// The replicas' Redis (drain reads the outbox there).
    #[arg(long)]
    pub redis: Option<String>,
    /// Drain: seconds to wait for every `admitted` after the start.
    #[arg(long, default_value_t = 60)]
    pub wait: u64,
    /// Catalog: the event whose seat map is read.
    #[arg(long)]
    pub seat_event: Option<String>,
    /// Catalog: requests per phase over all processes (`ab -n`).
    #[arg(long, default_value_t = 10_000)]
    pub requests: u64,
    /// Contention: seats of each event (rows of 10).
    #[arg(long, default_value_t = 100)]
    pub seats: u64,
    /// Written once the process is connected and ready to start.
    #[arg(long)]
    pub ready: PathBuf,
    /// The common start: the process begins once this file exists.
    #[arg(long)]
    pub go: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Show a progress bar (one process of the run does).
    #[arg(long)]
    pub progress: bool,
}

/// Histograms of one process, shared by its fans.
struct Recorder {
    start: Instant,
    routes: BTreeMap<String, (Hdr<u64>, BTreeMap<String, u64>)>,
    lag: Hdr<u64>,
    seconds: Vec<Second>,
    counts: BTreeMap<String, u64>,
    tickets: Vec<String>,
}

/// One second's counts: sent, answered, failed, latency, lag.
type Second = (u64, u64, u64, Hdr<u64>, Hdr<u64>);

fn hdr() -> Hdr<u64> {
    // 1 µs to 10 minutes, 3 significant digits.
    Hdr::new_with_bounds(1, 600_000_000, 3).expect("valid HDR bounds")
}

fn export(h: &Hdr<u64>) -> Histogram {
    Histogram {
        buckets: h
            .iter_recorded()
            .map(|v| {
                [
                    h.highest_equivalent(v.value_iterated_to()),
                    v.count_at_value(),
                ]
            })
            .collect(),
    }
}

type Shared = Arc<Mutex<Recorder>>;

impl Recorder {
    fn new(start: Instant) -> Shared {
        Arc::new(Mutex::new(Recorder {
            start,
            routes: BTreeMap::new(),
            lag: hdr(),
            seconds: Vec::new(),
            counts: BTreeMap::new(),
            tickets: Vec::new(),
        }))
    }

    fn second(&mut self, at: Instant) -> &mut Second {
        let i = at.saturating_duration_since(self.start).as_secs() as usize;
        while self.seconds.len() <= i {
            self.seconds.push((0, 0, 0, hdr(), hdr()));
        }
        &mut self.seconds[i]
    }

    /// One request scheduled at `at`, sent `lag` late, answered (`Ok`) at
    /// `now` or failed with a kind of error.
    fn record(&mut self, route: &str, at: Instant, lag: Duration, outcome: Result<(), String>) {
        let now = Instant::now();
        let latency = now.saturating_duration_since(at).as_micros() as u64;
        let lag = lag.as_micros() as u64;
        self.lag.saturating_record(lag);
        let entry = self
            .routes
            .entry(route.to_string())
            .or_insert_with(|| (hdr(), BTreeMap::new()));
        let ok = outcome.is_ok();
        match outcome {
            Ok(()) => entry.0.saturating_record(latency),
            Err(kind) => *entry.1.entry(kind).or_default() += 1,
        }
        let s = self.second(at);
        s.0 += 1;
        if ok {
            s.1 += 1;
            s.3.saturating_record(latency);
        } else {
            s.2 += 1;
        }
        s.4.saturating_record(lag);
    }

    fn count(&mut self, name: &str, n: u64) {
        *self.counts.entry(name.to_string()).or_default() += n;
    }

    fn part(&self, index: u64, source: Option<IpAddr>) -> Part {
        Part {
            index,
            source: source.map(|s| s.to_string()).unwrap_or_default(),
            routes: self
                .routes
                .iter()
                .map(|(k, (h, e))| {
                    (
                        k.clone(),
                        RoutePart {
                            latency: export(h),
                            errors: e.clone(),
                        },
                    )
                })
                .collect(),
            lag: export(&self.lag),
            seconds: self
                .seconds
                .iter()
                .map(|(sent, ok, errors, l, g)| SecondPart {
                    sent: *sent,
                    ok: *ok,
                    errors: *errors,
                    latency: export(l),
                    lag: export(g),
                })
                .collect(),
            counts: self.counts.clone(),
            tickets: self.tickets.clone(),
        }
    }
}

fn lock(r: &Shared) -> std::sync::MutexGuard<'_, Recorder> {
    // A fan task that panicked cannot leave the recorder half-written in a
    // way that matters for counts: keep going with what is there.
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// The kind of a failed request, as reports count them.
fn kind(e: &str) -> String {
    if e.contains("timed out") || e == "timeout" {
        "timeout".into()
    } else if e.contains("refused") || e.contains("connect") {
        "connect".into()
    } else if e.contains("reset") || e.contains("closed") || e.contains("broken") {
        "connection closed".into()
    } else if e.contains("Address") || e.contains("address") {
        "no source port".into()
    } else {
        "io".into()
    }
}

async fn timed<T>(f: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err("timeout".into()),
    }
}

/// One request on a new connection bound to `source`.
async fn once(
    target: SocketAddr,
    source: Option<IpAddr>,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<(u16, Value), String> {
    let mut sender = connect(target, source).await.map_err(|e| e.to_string())?;
    let (status, bytes) = request(&mut sender, method, path, body).await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// A WebSocket to `target` from `source`.
async fn websocket(
    target: SocketAddr,
    source: Option<IpAddr>,
    path: &str,
) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    if let Some(src) = source {
        socket
            .bind(SocketAddr::new(src, 0))
            .map_err(|e| e.to_string())?;
    }
    let stream = socket.connect(target).await.map_err(|e| e.to_string())?;
    let url = format!("ws://{target}{path}");
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

async fn wait_for(path: &Path, timeout: Duration) -> Result<(), String> {
    let until = std::time::Instant::now() + timeout;
    while !path.exists() {
        if std::time::Instant::now() > until {
            return Err(format!("{} did not appear", path.display()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

fn progress(show: bool, seconds: u64, what: &str) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(seconds.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template("    {prefix} [{bar:40}] {pos}/{len} s {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}

/// Ticks the bar once a second with the process's sent/errors so far.
fn tick(bar: indicatif::ProgressBar, rec: Shared, seconds: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for s in 1..=seconds {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (sent, errors) = {
                let r = lock(&rec);
                r.seconds
                    .iter()
                    .fold((0, 0), |(a, b), s| (a + s.0, b + s.2))
            };
            bar.set_position(s);
            bar.set_message(format!("{sent} sent, {errors} errors (this process)"));
        }
        bar.finish_and_clear();
    })
}

/// This process's share of `total`, and the global index of its `i`th fan
/// (fans are interleaved over processes so each one's schedule is even).
fn share(total: u64, processes: u64, index: u64) -> u64 {
    total / processes + u64::from(index < total % processes)
}

pub async fn run(d: Drive) -> Result<(), String> {
    if d.processes == 0 || d.index >= d.processes {
        return Err("--index must be below --processes".into());
    }
    let part = match d.mode {
        Mode::Steady | Mode::Ramp => steady(&d).await?,
        Mode::Burst => burst(&d).await?,
        Mode::Drain => drain(&d).await?,
        Mode::Catalog => catalog(&d).await?,
        Mode::Contention => contention(&d).await?,
    };
    report::write(&d.out, &part).map_err(|e| format!("{}: {e}", d.out.display()))
}

fn ready(d: &Drive) -> Result<(), String> {
    std::fs::write(&d.ready, b"ready").map_err(|e| format!("{}: {e}", d.ready.display()))
}

/// Steady and ramp: each fan holds one keep-alive connection, joins, then
/// polls its status once a second until the end.
async fn steady(d: &Drive) -> Result<Part, String> {
    let n = share(d.fans, d.processes, d.index);
    let limit = Arc::new(Semaphore::new(256));
    let mut opening = Vec::new();
    for i in 0..n {
        let target = d.targets[((i * d.processes + d.index) as usize) % d.targets.len()];
        let (limit, source) = (limit.clone(), d.source);
        opening.push(tokio::spawn(async move {
            let _p = limit.acquire_owned().await.ok()?;
            timed(async { connect(target, source).await.map_err(|e| e.to_string()) })
                .await
                .ok()
                .map(|c| (target, c))
        }));
    }
    let mut conns = Vec::new();
    let mut connect_errors = 0;
    for o in opening {
        match o.await {
            Ok(Some(c)) => conns.push(c),
            _ => connect_errors += 1,
        }
    }
    ready(d)?;
    wait_for(&d.go, GO_TIMEOUT).await?;
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs(d.duration);
    let rec = Recorder::new(start);
    lock(&rec).count("connected", conns.len() as u64);
    lock(&rec).count("connect_errors", connect_errors);
    let bar = tick(
        progress(
            d.progress,
            d.duration,
            &format!("{:?}", d.mode).to_lowercase(),
        ),
        rec.clone(),
        d.duration,
    );
    let stage_len = Duration::from_secs(d.duration / 3);
    let mut tasks = Vec::new();
    for (i, (target, mut sender)) in conns.into_iter().enumerate() {
        let global = i as u64 * d.processes + d.index;
        // Ramp: the first 1% of fans from the start, up to 10% from a third
        // of the run, everyone from two thirds; a status's route names the
        // fans connected in the stage it was sent in.
        let stage = match d.mode {
            Mode::Ramp if global < d.fans.div_ceil(100) => 0,
            Mode::Ramp if global < d.fans.div_ceil(10) => 1,
            Mode::Ramp => 2,
            _ => 0,
        };
        let stages = [d.fans.div_ceil(100), d.fans.div_ceil(10), d.fans];
        let ramp = d.mode == Mode::Ramp;
        let status_routes = stages.map(|n| format!("status@{n}"));
        let phase = Duration::from_micros(global * 1_000_000 / d.fans.max(1));
        let (rec, event, source) = (rec.clone(), d.event.clone(), d.source);
        tasks.push(tokio::spawn(async move {
            let mut ticket: Option<String> = None;
            let mut at = start + stage_len * stage + phase;
            while at < end {
                tokio::time::sleep_until(at).await;
                let lag = Instant::now().saturating_duration_since(at);
                let (route, method, path, body) = match &ticket {
                    None => (
                        "join",
                        "POST",
                        format!("/api/v1/events/{event}/queue"),
                        Some(format!("{{\"client_id\":\"fan-{global}\"}}")),
                    ),
                    Some(t) => (
                        if ramp {
                            let now = at.saturating_duration_since(start);
                            let k =
                                (now.as_secs_f64() / stage_len.as_secs_f64().max(1e-3)) as usize;
                            status_routes[k.min(2)].as_str()
                        } else {
                            "status"
                        },
                        "GET",
                        format!("/api/v1/events/{event}/queue/{t}"),
                        None,
                    ),
                };
                let result = timed(request(&mut sender, method, &path, body)).await;
                let outcome = match result {
                    Ok((200 | 202, body)) => {
                        if ticket.is_none() {
                            ticket = serde_json::from_slice::<Value>(&body)
                                .ok()
                                .and_then(|v| v["ticket"].as_str().map(str::to_string));
                        }
                        Ok(())
                    }
                    Ok((code, _)) => Err(format!("http {code}")),
                    Err(e) => {
                        // The connection's state is unknown: start afresh.
                        if let Ok(Ok(s)) =
                            tokio::time::timeout(REQUEST_TIMEOUT, connect(target, source)).await
                        {
                            sender = s;
                        }
                        Err(kind(&e))
                    }
                };
                lock(&rec).record(route, at, lag, outcome);
                at += Duration::from_secs(1);
            }
        }));
    }
    for t in tasks {
        let _ = tokio::time::timeout_at(end + REQUEST_TIMEOUT * 3, t).await;
    }
    let _ = bar.await;
    let part = lock(&rec).part(d.index, d.source);
    Ok(part)
}

/// Burst: fan `g` joins at `g × window / fans` on its own connection, then
/// opens a WebSocket (to the next replica) and keeps it until the end.
async fn burst(d: &Drive) -> Result<Part, String> {
    let n = share(d.fans, d.processes, d.index);
    ready(d)?;
    wait_for(&d.go, GO_TIMEOUT).await?;
    let start = Instant::now() + Duration::from_millis(200);
    let window = Duration::from_secs(d.window);
    let end = start + window + Duration::from_secs(d.duration);
    let rec = Recorder::new(start);
    let total = d.window + d.duration;
    let bar = tick(progress(d.progress, total, "burst"), rec.clone(), total);
    let mut tasks = Vec::new();
    for i in 0..n {
        let global = i * d.processes + d.index;
        let at = start + window.mul_f64(global as f64 / d.fans.max(1) as f64);
        let r = d.targets.len() as u64;
        let join_at = d.targets[(global % r) as usize];
        let watch_at = d.targets[((global + 1) % r) as usize];
        let (rec, event, source) = (rec.clone(), d.event.clone(), d.source);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let lag = Instant::now().saturating_duration_since(at);
            let body = format!("{{\"client_id\":\"burst-{global}\"}}");
            let path = format!("/api/v1/events/{event}/queue");
            let joined = timed(once(join_at, source, "POST", &path, Some(body))).await;
            let ticket = match joined {
                Ok((code @ (200 | 202), v)) => {
                    let ticket = v["ticket"].as_str().map(str::to_string);
                    let mut r = lock(&rec);
                    r.record("join", at, lag, Ok(()));
                    if code == 200 {
                        r.count("admitted_at_once", 1);
                    } else {
                        r.count("queued", 1);
                        if let Some(p) = v["position"].as_u64() {
                            r.count("position_sum", p);
                            r.count("positions", 1);
                        }
                    }
                    if let Some(t) = &ticket {
                        r.tickets.push(t.clone());
                    }
                    ticket
                }
                Ok((code, _)) => {
                    lock(&rec).record("join", at, lag, Err(format!("http {code}")));
                    None
                }
                Err(e) => {
                    lock(&rec).record("join", at, lag, Err(kind(&e)));
                    None
                }
            };
            let ticket = ticket?;
            // The socket's first message is timed from its own request.
            let asked = Instant::now();
            let path = format!("/api/v1/events/{event}/queue/{ticket}/ws");
            let opened = timed(async {
                let mut ws = websocket(watch_at, source, &path).await?;
                match ws.next().await {
                    Some(Ok(_)) => Ok(ws),
                    Some(Err(e)) => Err(e.to_string()),
                    None => Err("closed".into()),
                }
            })
            .await;
            let mut ws = match opened {
                Ok(ws) => {
                    let mut r = lock(&rec);
                    r.record("ws first message", asked, Duration::ZERO, Ok(()));
                    r.count("sockets_open", 1);
                    ws
                }
                Err(e) => {
                    lock(&rec).record("ws first message", asked, Duration::ZERO, Err(kind(&e)));
                    return None;
                }
            };
            // Hold the socket, reading what comes, until the end.
            loop {
                match tokio::time::timeout_at(end, ws.next()).await {
                    Err(_) => break,
                    Ok(Some(Ok(_))) => {}
                    Ok(_) => {
                        lock(&rec).count("sockets_closed_early", 1);
                        break;
                    }
                }
            }
            Some(())
        }));
    }
    for t in tasks {
        let _ = tokio::time::timeout_at(end + REQUEST_TIMEOUT * 3, t).await;
    }
    let _ = bar.await;
    let part = lock(&rec).part(d.index, d.source);
    Ok(part)
}

/// Drain: each fan joins a closed queue through one replica and watches on
/// the next; after the common start (the parent has opened the queue) each
/// `admitted` is timed from the admission's time in the outbox.
async fn drain(d: &Drive) -> Result<Part, String> {
    let n = share(d.fans, d.processes, d.index);
    let r = d.targets.len() as u64;
    let limit = Arc::new(Semaphore::new(200));
    let (told_tx, mut told_rx) = tokio::sync::mpsc::unbounded_channel::<(String, i64)>();
    let mut fans = Vec::new();
    for i in 0..n {
        let global = i * d.processes + d.index;
        let join_at = d.targets[(global % r) as usize];
        let watch_at = d.targets[((global + 1) % r) as usize];
        let (limit, event, source, told_tx) =
            (limit.clone(), d.event.clone(), d.source, told_tx.clone());
        fans.push(tokio::spawn(async move {
            let opened = {
                let _p = limit.acquire().await.ok()?;
                let body = format!("{{\"client_id\":\"drain-{global}\"}}");
                let path = format!("/api/v1/events/{event}/queue");
                let (_, v) = timed(once(join_at, source, "POST", &path, Some(body)))
                    .await
                    .ok()?;
                let ticket = v["ticket"].as_str()?.to_string();
                let path = format!("/api/v1/events/{event}/queue/{ticket}/ws");
                let ws = timed(websocket(watch_at, source, &path)).await.ok()?;
                (ticket, ws)
            };
            let (ticket, mut ws) = opened;
            let _ = told_tx.send((ticket.clone(), -1));
            while let Some(Ok(m)) = ws.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                    if t.as_str().contains("\"type\":\"admitted\"") {
                        let _ = told_tx.send((ticket, unix_ms()));
                        break;
                    }
                }
            }
            Some(())
        }));
    }
    drop(told_tx);
    // Wait until every fan has its socket (or has failed).
    let mut open = 0u64;
    let setup_until = Instant::now() + Duration::from_secs(300);
    let mut told: HashMap<String, i64> = HashMap::new();
    while open < n {
        match tokio::time::timeout_at(
            setup_until.min(Instant::now() + REQUEST_TIMEOUT * 2),
            told_rx.recv(),
        )
        .await
        {
            Ok(Some((t, -1))) => {
                open += 1;
                let _ = t;
            }
            Ok(Some((t, at))) => {
                told.insert(t, at);
            }
            _ => break,
        }
    }
    ready(d)?;
    wait_for(&d.go, GO_TIMEOUT).await?;
    let start = Instant::now();
    let rec = Recorder::new(start);
    let bar = tick(progress(d.progress, d.wait, "drain"), rec.clone(), d.wait);
    let until = start + Duration::from_secs(d.wait);
    // Admissions stop at capacity: once they have begun, five quiet
    // seconds mean the rest stay queued.
    let quiet = Duration::from_secs(5);
    let mut last = None;
    while (told.len() as u64) < open {
        let by = last.map_or(until, |l: Instant| until.min(l + quiet));
        match tokio::time::timeout_at(by, told_rx.recv()).await {
            Ok(Some((t, at))) if at >= 0 => {
                told.insert(t, at);
                last = Some(Instant::now());
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    for f in fans {
        f.abort();
    }
    bar.abort();
    // The admissions' times, from the outbox.
    let url = d.redis.clone().ok_or("drain needs --redis")?;
    let admitted = outbox_admissions(&url, &d.event).await?;
    let mut r = lock(&rec);
    // The rate in Redis's own clock, past the first second (whose full
    // token bucket admits a burst); counted by one process only.
    if d.index == 0 {
        let mut times: Vec<i64> = admitted.values().copied().collect();
        times.sort_unstable();
        if let (Some(first), Some(last)) = (times.first().copied(), times.last().copied()) {
            let after = times.iter().filter(|t| **t > first + 1000).count() as u64;
            r.count("outbox_admissions", times.len() as u64);
            r.count("admissions_after_first_second", after);
            r.count(
                "admission_span_after_first_second_ms",
                (last - first - 1000).max(0) as u64,
            );
        }
    }
    r.count("sockets_open", open);
    r.count("told", told.len() as u64);
    let base = unix_ms();
    let now = Instant::now();
    for (ticket, seen) in &told {
        match admitted.get(ticket) {
            Some(at) => {
                // Recorded as a request scheduled at the admission.
                let ago = Duration::from_millis((base - at).max(0) as u64);
                let delay = Duration::from_millis((seen - at).max(0) as u64);
                let scheduled = now.checked_sub(ago).unwrap_or(start);
                let latency = delay.as_micros() as u64;
                r.lag.saturating_record(0);
                let e = r
                    .routes
                    .entry("admitted → socket".to_string())
                    .or_insert_with(|| (hdr(), BTreeMap::new()));
                e.0.saturating_record(latency);
                let s = r.second(scheduled);
                s.0 += 1;
                s.1 += 1;
                s.3.saturating_record(latency);
            }
            None => r.count("told_without_admission", 1),
        }
    }
    let mine: Vec<&String> = admitted.keys().filter(|t| told.contains_key(*t)).collect();
    r.count("admitted_seen", mine.len() as u64);
    let part = r.part(d.index, d.source);
    Ok(part)
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// ticket → admission time (Redis clock, ms) from the event's outbox.
async fn outbox_admissions(url: &str, event: &str) -> Result<HashMap<String, i64>, String> {
    let ev = admission::queue::EventId::parse(event).ok_or("bad event id")?;
    let outbox = admission::queue::scripts::EventKeys::new("", &ev)
        .outbox()
        .to_string();
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let mut admitted = HashMap::new();
    let mut from = "-".to_string();
    // Bounded: at most 1,000 pages of 5,000 entries.
    for _ in 0..1000 {
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
    Ok(admitted)
}

/// Catalog: closed loop like `ab -c`: each connection sends its next
/// request when the last is answered; the events list for the first half,
/// the seat map for the second; at most `requests` per phase in all.
/// What browsers send in `Accept-Encoding` (Chrome, Firefox, Safari).
const BROWSER_ENCODINGS: &[(&str, &str)] = &[("accept-encoding", "gzip, deflate, br, zstd")];

async fn catalog(d: &Drive) -> Result<Part, String> {
    let n = share(d.fans, d.processes, d.index);
    let seat_event = d.seat_event.clone().ok_or("catalog needs --seat-event")?;
    let mut conns = Vec::new();
    for i in 0..n {
        let target = d.targets[(i as usize) % d.targets.len()];
        let c = timed(async { connect(target, d.source).await.map_err(|e| e.to_string()) }).await?;
        conns.push((target, c));
    }
    ready(d)?;
    wait_for(&d.go, GO_TIMEOUT).await?;
    let start = Instant::now();
    let half = Duration::from_secs(d.duration.max(2) / 2);
    let rec = Recorder::new(start);
    let bar = tick(
        progress(d.progress, d.duration, "catalog"),
        rec.clone(),
        d.duration,
    );
    let budget = share(d.requests, d.processes, d.index);
    let per_conn = budget.div_ceil(n.max(1));
    let mut tasks = Vec::new();
    for (target, mut sender) in conns {
        let (rec, seat_event, source) = (rec.clone(), seat_event.clone(), d.source);
        tasks.push(tokio::spawn(async move {
            for (phase, route, path) in [
                (0u32, "events list", "/api/v1/events".to_string()),
                (1, "seat map", format!("/api/v1/events/{seat_event}/seats")),
            ] {
                let phase_end = start + half * (phase + 1);
                let mut sent = 0;
                while sent < per_conn && Instant::now() < phase_end {
                    let at = Instant::now();
                    // As a browser asks (the answer's bytes are counted
                    // as they come: nothing is decompressed here).
                    let asked = request_with(&mut sender, "GET", &path, None, BROWSER_ENCODINGS);
                    let outcome = match timed(asked).await {
                        Ok((200, _)) => Ok(()),
                        Ok((code, _)) => Err(format!("http {code}")),
                        Err(e) => {
                            if let Ok(Ok(s)) =
                                tokio::time::timeout(REQUEST_TIMEOUT, connect(target, source)).await
                            {
                                sender = s;
                            }
                            Err(kind(&e))
                        }
                    };
                    lock(&rec).record(route, at, Duration::ZERO, outcome);
                    sent += 1;
                }
                // How long this process's phase was busy: the rate is
                // answers over that, not over the phase's time budget.
                let busy = Instant::now().saturating_duration_since(start + half * phase);
                {
                    let mut r = lock(&rec);
                    let key = format!("{route} busy ms");
                    let e = r.counts.entry(key).or_default();
                    *e = (*e).max(busy.as_millis() as u64);
                }
                tokio::time::sleep_until(phase_end).await;
            }
        }));
    }
    for t in tasks {
        let _ = tokio::time::timeout_at(start + half * 2 + REQUEST_TIMEOUT * 2, t).await;
    }
    let _ = bar.await;
    let part = lock(&rec).part(d.index, d.source);
    Ok(part)
}

/// Contention: on each of two events (by seat id, by quantity) every fan
/// asks for one seat at the same scheduled moment, then every successful
/// hold is confirmed at once. Seats held or reserved twice are counted
/// from the answers (`double_held`, `double_reserved`).
async fn contention(d: &Drive) -> Result<Part, String> {
    let seat_event = d
        .seat_event
        .clone()
        .ok_or("contention needs --seat-event")?;
    let target = d.targets[0];
    let n = share(d.fans, d.processes, d.index) as usize;
    let mut tokens = Vec::new();
    for (event, tag) in [(&d.event, "by-id"), (&seat_event, "by-qty")] {
        let tag = format!("{tag}-{}", d.index);
        tokens.push(crate::admit(target, event, n, &tag).await?);
    }
    ready(d)?;
    wait_for(&d.go, GO_TIMEOUT).await?;
    let start = Instant::now() + Duration::from_millis(100);
    let rec = Recorder::new(start);
    let seats = d.seats.max(1) as usize;
    for ((event, by), tokens) in [(&d.event, "seat id"), (&seat_event, "quantity")]
        .into_iter()
        .zip(tokens)
    {
        let at = Instant::now() + Duration::from_millis(100);
        let began = at;
        let mut holds = Vec::new();
        for (i, token) in tokens.into_iter().enumerate() {
            let global = i as u64 * d.processes + d.index;
            let body = if by == "seat id" {
                format!(
                    "{{\"seat_ids\":[\"{}\"]}}",
                    crate::seat(global as usize * 37 % seats)
                )
            } else {
                "{\"quantity\":1}".to_string()
            };
            let (event, source) = (event.clone(), d.source);
            holds.push(tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let lag = Instant::now().saturating_duration_since(at);
                let path = format!("/api/v1/events/{event}/holds");
                let r = timed(authorized(
                    target,
                    source,
                    "POST",
                    &path,
                    &token,
                    Some(body),
                ))
                .await;
                (token, lag, r)
            }));
        }
        let route = format!("hold by {by}");
        let mut held = Vec::new();
        let mut seats_held: HashMap<String, u64> = HashMap::new();
        for h in holds {
            let Ok((token, lag, r)) = h.await else {
                continue;
            };
            let outcome = match r {
                Ok((201, v)) => {
                    for s in v["seat_ids"].as_array().into_iter().flatten() {
                        *seats_held
                            .entry(s.as_str().unwrap_or("").to_string())
                            .or_default() += 1;
                    }
                    held.push((token, v["hold_id"].as_str().unwrap_or_default().to_string()));
                    Ok(())
                }
                // A refused seat is an answer, not an error.
                Ok((409, _)) => {
                    lock(&rec).count(&format!("refused by {by}"), 1);
                    Ok(())
                }
                Ok((code, _)) => Err(format!("http {code}")),
                Err(e) => Err(kind(&e)),
            };
            lock(&rec).record(&route, at, lag, outcome);
        }
        let hold_ms = began.elapsed().as_millis() as u64;
        let at = Instant::now();
        let mut confirms = Vec::new();
        let held_count = held.len() as u64;
        for (token, hold) in held {
            let source = d.source;
            confirms.push(tokio::spawn(async move {
                let path = format!("/api/v1/holds/{hold}/confirm");
                timed(authorized(target, source, "POST", &path, &token, None)).await
            }));
        }
        let route = format!("confirm by {by}");
        let mut reserved: HashMap<String, u64> = HashMap::new();
        let mut reservations = 0;
        for c in confirms {
            let outcome = match c.await {
                Ok(Ok((201, v))) => {
                    reservations += 1;
                    for s in v["seat_ids"].as_array().into_iter().flatten() {
                        *reserved
                            .entry(s.as_str().unwrap_or("").to_string())
                            .or_default() += 1;
                    }
                    Ok(())
                }
                Ok(Ok((code, _))) => Err(format!("http {code}")),
                Ok(Err(e)) => Err(kind(&e)),
                Err(e) => Err(e.to_string()),
            };
            lock(&rec).record(&route, at, Duration::ZERO, outcome);
        }
        let confirm_ms = at.elapsed().as_millis() as u64;
        let mut r = lock(&rec);
        r.count(&format!("held by {by}"), held_count);
        r.count(&format!("reserved by {by}"), reservations);
        r.count(
            &format!("double held by {by}"),
            seats_held.values().filter(|n| **n > 1).count() as u64,
        );
        r.count(
            &format!("double reserved by {by}"),
            reserved.values().filter(|n| **n > 1).count() as u64,
        );
        r.count(&format!("hold ms by {by}"), hold_ms);
        r.count(&format!("confirm ms by {by}"), confirm_ms);
    }
    let part = lock(&rec).part(d.index, d.source);
    Ok(part)
}

/// One request with a fan's token, on a new connection from `source`.
async fn authorized(
    target: SocketAddr,
    source: Option<IpAddr>,
    method: &str,
    path: &str,
    token: &str,
    body: Option<String>,
) -> Result<(u16, Value), String> {
    use http_body_util::BodyExt;
    let mut sender = connect(target, source).await.map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| e.to_string())?;
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "loadtest")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.unwrap_or_default(),
        )))
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
