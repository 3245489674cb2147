//! `cargo xtask loadtest <scenario>`: the seeds' scenarios, reproducible.
//!
//! It starts (or, with `--targets`, drives) app replicas on one Redis,
//! measures the raw Redis ceiling of the join script on that Redis, then
//! runs several load processes (`loadgen drive`, each bound to its own
//! 127.0.0.x so ephemeral ports do not run out, each below the 20,000 open
//! files of one process). They start together (a `go` file), follow an
//! open-loop schedule and hand back their HDR histograms as JSON
//! (`report::Part`), which this merges with what it sampled once a second
//! from the app (queue length, admissions, the replicas' RSS). Everything
//! lands in `<target>/loadtest/<timestamp>/`: report.json, report.md,
//! samples.csv and the SVG charts (drawn by `loadgen render`, which holds
//! the plotting dependencies so that xtask stays light).
//!
//! Figures are measurements; only the sanity checks (counts add up, no
//! place lost or given twice, no seat sold twice) can fail a run.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devstack::{http_request, MariaDb, MariaDbSizes, RedisOptions, RedisServer};
use report::{Check, LoadReport, Machine, Part, RedisPeak, Sample, Target};
use xshell::{cmd, Shell};

use crate::bench::{configure, create_event, rss_kib, start_app};
use crate::dev::App;
use crate::flags::{Loadtest, Scenario};
use crate::Result;

/// One loopback source address per load process: 127.0.0.2, .3, …
fn source(index: u64) -> String {
    format!("127.0.0.{}", index + 2)
}

/// What a scenario runs with once defaults, `--quick` and flags are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub fans: u64,
    pub duration: u64,
    pub replicas: u64,
    pub processes: u64,
    /// Burst: seconds over which every fan joins.
    pub window: u64,
    /// Drain: admissions a second; catalog: requests per phase.
    pub rate: u64,
    /// Contention: seats per event; catalog: seats of the seat-map event.
    pub seats: u64,
}

impl Plan {
    pub fn new(f: &Loadtest) -> Plan {
        let q = f.quick;
        let pick = |full: u64, quick: u64| if q { quick } else { full };
        let mut p = match f.scenario {
            Scenario::Steady => Plan {
                fans: pick(10_000, 200),
                duration: pick(30, 4),
                replicas: 1,
                processes: pick(4, 2),
                window: 0,
                rate: 0,
                seats: 0,
            },
            Scenario::Ramp => Plan {
                fans: pick(10_000, 300),
                duration: pick(60, 6),
                replicas: 1,
                processes: pick(4, 2),
                window: 0,
                rate: 0,
                seats: 0,
            },
            Scenario::Soak => Plan {
                fans: pick(2_000, 100),
                duration: pick(600, 4),
                replicas: 1,
                processes: 2,
                window: 0,
                rate: 0,
                seats: 0,
            },
            Scenario::Burst => Plan {
                fans: pick(100_000, 300),
                duration: pick(10, 2),
                replicas: pick(6, 2),
                processes: 0,
                window: pick(10, 2),
                rate: 0,
                seats: 0,
            },
            Scenario::Sockets => Plan {
                fans: pick(19_000, 300),
                duration: pick(5, 2),
                replicas: 1,
                processes: 0,
                window: 0,
                rate: pick(500, 300),
                seats: 0,
            },
            Scenario::Drain => Plan {
                fans: pick(10_000, 300),
                duration: 0,
                replicas: 3,
                processes: 2,
                window: 0,
                rate: pick(500, 100),
                seats: 0,
            },
            Scenario::Contention => Plan {
                fans: pick(1_000, 100),
                duration: 0,
                replicas: 1,
                processes: 1,
                window: 0,
                rate: 0,
                seats: pick(100, 10),
            },
            // Sized by `cargo xtask bench`'s own flags (see `bench_flags`).
            Scenario::Bench => Plan {
                fans: pick(10_000, 200),
                duration: pick(10, 1),
                replicas: 4,
                processes: pick(4, 2),
                window: 0,
                rate: 0,
                seats: pick(100, 10),
            },
            Scenario::Catalog => Plan {
                fans: pick(100, 20),
                duration: pick(20, 4),
                replicas: 1,
                processes: 2,
                window: 0,
                rate: pick(10_000, 1_000),
                seats: pick(10_000, 1_000),
            },
        };
        if let Some(n) = f.fans {
            p.fans = n.get();
        }
        if let Some(d) = f.duration {
            p.duration = d.get();
        }
        if let Some(r) = f.replicas {
            p.replicas = r.get();
        }
        if let Some(r) = f.rate {
            p.rate = r.get();
        }
        if !f.targets.is_empty() {
            p.replicas = f.targets.len() as u64;
        }
        if f.scenario == Scenario::Sockets {
            // Open at --rate sockets a second (a join, then the socket):
            // 2,000 a second starved this 2-core machine's load processes
            // before the replica's limit was reached.
            p.window = p.fans.div_ceil(p.rate.max(1)).max(1);
        }
        // Sockets hold a file each on both sides: keep every load process
        // well below its 20,000 open files.
        if p.processes == 0 {
            p.processes = p.fans.div_ceil(15_000).max(2);
        }
        if let Some(n) = f.processes {
            p.processes = n.get();
        }
        p.processes = p.processes.min(p.fans.max(1)).min(200);
        p
    }
}

/// `http://host:port` (or `host:port`) as a socket address.
pub fn parse_target(s: &str) -> std::result::Result<SocketAddr, String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("ws://"))
        .unwrap_or(s)
        .trim_end_matches('/');
    if rest.contains('/') || s.starts_with("https://") {
        return Err(format!(
            "{s}: give http://host:port (plain HTTP, no path): the load generator speaks HTTP/1.1 without TLS"
        ));
    }
    rest.to_socket_addrs()
        .map_err(|e| format!("{s}: {e}"))?
        .next()
        .ok_or_else(|| format!("{s}: no address"))
}

/// Now in UTC as (`YYYYMMDDTHHMMSSZ`, `YYYY-MM-DDTHH:MM:SSZ`).
fn timestamp() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    (
        format!("{y:04}{mo:02}{d:02}T{h:02}{m:02}{s:02}Z"),
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z"),
    )
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    Machine {
        cpu,
        cores: std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(0),
        memory_kib,
        load_before: loadavg(),
        load_after: String::new(),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The queue figures of `event` as the app's statistics route gives them.
fn stats(addr: SocketAddr, event: &str) -> Option<(u64, u64, u64)> {
    let (code, body) = http_request(
        addr,
        "GET",
        &format!("/api/v1/events/{event}/queue"),
        &[],
        None,
    )
    .ok()?;
    if code != 200 {
        return None;
    }
    let num = |key: &str| -> Option<u64> {
        let at = body.find(&format!("\"{key}\":"))? + key.len() + 3;
        let digits: String = body[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    };
    Some((num("queued")?, num("active")?, num("admitted_total")?))
}

/// One second's sample: (queued, active, admitted total) from the app's
/// statistics, and the started replicas' RSS (KiB).
type Sampled = (Option<(u64, u64, u64)>, Option<u64>);

/// Once a second until stopped: the event's queue, active sessions and
/// admissions total from the app, and the started replicas' RSS.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Sampled>>,
}

impl Sampler {
    fn start(addr: SocketAddr, event: String, pids: Vec<u32>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let began = Instant::now();
            let mut out = Vec::new();
            // Bounded: at most a day of samples.
            for i in 0..86_400u32 {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let rss =
                    (!pids.is_empty()).then(|| pids.iter().filter_map(|p| rss_kib(*p).ok()).sum());
                out.push((stats(addr, &event), rss));
                let next = began + Duration::from_secs(u64::from(i) + 1);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            out
        });
        Sampler { stop, thread }
    }

    fn finish(self) -> Vec<Sampled> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The services and replicas of one run, stopped when dropped.
struct Stack {
    redis_url: String,
    targets: Vec<SocketAddr>,
    apps: Vec<App>,
    _redis: Option<RedisServer>,
    db: Option<MariaDb>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.apps.clear();
        if let Some(db) = self.db.take() {
            let _ = db.discard();
        }
    }
}

fn needs_db(s: Scenario) -> bool {
    matches!(s, Scenario::Contention | Scenario::Catalog)
}

fn start_stack(f: &Loadtest, plan: &Plan, binary: &Path, dir: &Path, admin: &str) -> Result<Stack> {
    if !f.targets.is_empty() {
        let redis_url = f
            .redis
            .clone()
            .ok_or("--targets needs --redis, the replicas' Redis, for the raw ceiling")?;
        return Ok(Stack {
            redis_url,
            targets: f.targets.clone(),
            apps: Vec::new(),
            _redis: None,
            db: None,
        });
    }
    eprintln!(
        "==> Redis{}, {} replica(s)",
        if needs_db(f.scenario) {
            ", MariaDB"
        } else {
            ""
        },
        plan.replicas
    );
    let redis = RedisServer::start(&dir.join("redis"), &RedisOptions::default())?;
    let db = if needs_db(f.scenario) {
        Some(MariaDb::start_sized(
            &dir.join("mariadb"),
            MariaDbSizes::for_load(f.quick),
        )?)
    } else {
        None
    };
    let mut apps = Vec::new();
    for i in 0..plan.replicas {
        // One database for all replicas: only the first migrates it.
        let with_db = if i == 0 { db.as_ref() } else { None };
        apps.push(start_app(
            binary,
            dir,
            &format!("replica-{i}"),
            &redis,
            with_db,
            admin,
        )?);
    }
    Ok(Stack {
        redis_url: redis.url(),
        targets: apps.iter().map(|a| a.addr).collect(),
        apps,
        _redis: Some(redis),
        db,
    })
}

/// Spawns the load processes, starts them together once all are ready,
/// samples the app while they run and returns their parts.
#[allow(clippy::too_many_arguments)]
fn drive(
    loadgen: &Path,
    dir: &Path,
    mode: &str,
    event: &str,
    plan: &Plan,
    stack: &Stack,
    extra: &[String],
    budget: Duration,
    before_go: &mut dyn FnMut() -> Result,
) -> Result<(Vec<Part>, Vec<Sampled>)> {
    let parts = dir.join("parts");
    std::fs::create_dir_all(&parts)?;
    let go = parts.join(format!("{mode}.go"));
    let targets = stack
        .targets
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut children: Vec<(Child, PathBuf, PathBuf)> = Vec::new();
    for p in 0..plan.processes {
        let out = parts.join(format!("{mode}-{p}.json"));
        let ready = parts.join(format!("{mode}-{p}.ready"));
        let log = std::fs::File::create(parts.join(format!("{mode}-{p}.log")))?;
        let mut c = Command::new(loadgen);
        c.args([
            "drive",
            "--mode",
            mode,
            "--event",
            event,
            "--targets",
            &targets,
        ])
        .args(["--fans", &plan.fans.to_string()])
        .args(["--processes", &plan.processes.to_string()])
        .args(["--index", &p.to_string(), "--source", &source(p)])
        .args(["--duration", &plan.duration.to_string()])
        .args(["--window", &plan.window.to_string()])
        .args(["--redis", &stack.redis_url])
        .args(extra)
        .arg("--ready")
        .arg(&ready)
        .arg("--go")
        .arg(&go)
        .arg("--out")
        .arg(&out)
        .stderr(log);
        if p == 0 {
            c.arg("--progress");
            c.stderr(std::process::Stdio::inherit());
        }
        children.push((c.spawn()?, out, ready));
    }
    let kill_all = |children: &mut Vec<(Child, PathBuf, PathBuf)>| {
        for (c, _, _) in children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    };
    // Setup (connections, admissions, sockets) is bounded too.
    let until = Instant::now() + Duration::from_secs(600);
    while !children.iter().all(|(_, _, r)| r.exists()) {
        let died = children
            .iter_mut()
            .any(|(c, _, _)| matches!(c.try_wait(), Ok(Some(_))));
        if died || Instant::now() > until {
            kill_all(&mut children);
            return Err(format!(
                "a load process {} before it was ready (its log: {})",
                if died {
                    "stopped"
                } else {
                    "was not ready in 10 minutes"
                },
                parts.display()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Err(e) = before_go() {
        kill_all(&mut children);
        return Err(e);
    }
    let pids = stack.apps.iter().filter_map(|a| a.process.id()).collect();
    let sampler = Sampler::start(stack.targets[0], event.to_string(), pids);
    std::fs::write(&go, b"go")?;
    let deadline = Instant::now() + budget;
    let mut results = Vec::new();
    for (mut c, out, _) in std::mem::take(&mut children) {
        let status = loop {
            if let Some(s) = c.try_wait()? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                let _ = sampler.finish();
                return Err(
                    format!("a load process ran past its {} s budget", budget.as_secs()).into(),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() {
            let _ = sampler.finish();
            return Err(format!(
                "a load process failed ({status}); logs in {}",
                parts.display()
            )
            .into());
        }
        results.push(report::read::<Part>(&out)?);
    }
    Ok((results, sampler.finish()))
}

/// Fills the per-second samples with what the sampler saw.
fn attach_samples(r: &mut LoadReport, sampled: &[Sampled]) {
    if r.samples.len() < sampled.len() {
        let from = r.samples.len() as u64;
        r.samples
            .extend((from..sampled.len() as u64).map(|second| Sample {
                second,
                ..Sample::default()
            }));
    }
    let mut last_total: Option<u64> = None;
    for (s, (queue, rss)) in r.samples.iter_mut().zip(sampled) {
        if let Some((queued, active, total)) = queue {
            s.queued = Some(*queued);
            s.active = Some(*active);
            s.admissions = last_total.map(|l| total.saturating_sub(l));
            last_total = Some(*total);
        }
        s.rss_kib = *rss;
    }
}

fn raw_ceiling(
    sh: &Shell,
    loadgen: &Path,
    stack: &Stack,
    admin: &str,
    secs: u64,
    dir: &Path,
) -> Result<RedisPeak> {
    configure(
        stack.targets[0],
        admin,
        "loadtest-raw",
        r#"{"capacity":0,"queue_idle_timeout_seconds":3600}"#,
    )?;
    let url = &stack.redis_url;
    let file = dir.join("parts/redis-peak.json");
    let secs = secs.to_string();
    eprintln!("==> raw Redis ceiling: the join script by EVALSHA over 50 connections, {secs} s");
    cmd!(
        sh,
        "{loadgen} --report {file} redis-peak --redis {url} --event loadtest-raw --connections 50 --seconds {secs}"
    )
    .quiet()
    .run()?;
    Ok(report::read(&file)?)
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into())
}

pub(crate) fn target(name: &str, goal: &str, figure: String, met: bool) -> Target {
    Target {
        name: name.into(),
        target: goal.into(),
        figure,
        met,
    }
}

pub(crate) fn check(name: &str, ok: bool, detail: String) -> Check {
    Check {
        name: name.into(),
        ok,
        detail,
    }
}

/// Where the binaries are: release builds for figures, debug for `--quick`
/// (the test suite has those built already).
fn binaries(sh: &Shell, quick: bool) -> Result<(PathBuf, PathBuf)> {
    let dir =
        crate::ops::target_dir(&sh.current_dir()).join(if quick { "debug" } else { "release" });
    let release = (!quick).then_some("--release");
    eprintln!(
        "==> building {} app and load generator",
        if quick { "debug" } else { "release" }
    );
    cmd!(
        sh,
        "cargo build {release...} --quiet --package admission --package loadgen"
    )
    .run()?;
    Ok((dir.join("admission"), dir.join("loadgen")))
}

pub fn run(sh: &Shell, f: &Loadtest) -> Result {
    let dir = run_to(sh, f)?;
    let report: LoadReport = report::read(&dir.join("report.json"))?;
    println!("{}", one_line(&report, &dir));
    let failed: Vec<&Check> = report.checks.iter().filter(|c| !c.ok).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        let names: Vec<String> = failed
            .iter()
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        Err(format!("sanity checks failed: {}", names.join("; ")).into())
    }
}

/// `cargo xtask bench`: the `bench` scenario with its own flags, release
/// builds; prints the table and one line.
pub fn bench(sh: &Shell, b: &crate::flags::Bench) -> Result {
    crate::tools::ensure_all(sh)?;
    let dir = bench_to(sh, b, false)?;
    let report: LoadReport = report::read(&dir.join("report.json"))?;
    println!("\n{}", std::fs::read_to_string(dir.join("report.md"))?);
    println!("{}", one_line(&report, &dir));
    Ok(())
}

/// The bench's flags from the load test's: its defaults (small ones with
/// --quick), --fans and --processes for the latency run, --duration for
/// each peak measurement.
fn bench_flags(f: &Loadtest) -> crate::flags::Bench {
    let mut b = crate::flags::Bench::default();
    if f.quick {
        let n = |v: u64| std::num::NonZeroU64::new(v).unwrap_or(std::num::NonZeroU64::MIN);
        b.seconds = n(1);
        b.fans = n(200);
        b.fan_processes = n(2);
        b.sockets = n(200);
        b.push_sockets = n(300);
    }
    if let Some(n) = f.fans {
        b.fans = n;
    }
    if let Some(d) = f.duration {
        b.seconds = d;
    }
    if let Some(p) = f.processes {
        b.fan_processes = p;
    }
    b
}

/// Runs the bench's measurements into a load-test folder.
fn bench_to(sh: &Shell, b: &crate::flags::Bench, debug: bool) -> Result<PathBuf> {
    let Run {
        binary,
        loadgen,
        dir,
        mut report,
    } = start_run(sh, "bench", debug)?;
    let began = Instant::now();
    let crate::bench::Measured {
        targets,
        checks,
        counts,
        raw,
        table,
    } = crate::bench::measure(sh, b, debug, &binary, &loadgen, &dir)?;
    report.seconds = began.elapsed().as_secs_f64();
    report.machine.load_after = loadavg();
    for (k, v) in [
        ("seconds_per_peak", b.seconds),
        ("latency_fans", b.fans),
        ("load_processes", b.fan_processes),
        ("memory_sockets", b.sockets),
        ("push_sockets", b.push_sockets),
    ] {
        report.settings.insert(k.into(), v.to_string());
    }
    report.settings.insert(
        "build".into(),
        if debug { "debug" } else { "release" }.into(),
    );
    report.join_ratio = counts
        .get("http_peak_joins_per_second")
        .map(|h| *h as f64 / raw.per_second.max(1.0));
    report.raw_ceiling = Some(raw);
    report.targets = targets;
    report.checks = checks;
    report.counts = counts;
    report::write(&dir.join("report.json"), &report)?;
    std::fs::write(
        dir.join("report.md"),
        format!("{}\n## The bench's table\n\n{table}", markdown(&report)),
    )?;
    link_latest(&dir, "bench");
    Ok(dir)
}

/// A run's binaries, its folder (with `parts/`) and its report so far.
struct Run {
    binary: PathBuf,
    loadgen: PathBuf,
    dir: PathBuf,
    report: LoadReport,
}

/// Builds the binaries and makes `<target>/loadtest/<timestamp>-<scenario>/`.
fn start_run(sh: &Shell, scenario: &str, debug: bool) -> Result<Run> {
    let (binary, loadgen) = binaries(sh, debug)?;
    let (stamp, started) = timestamp();
    let dir = crate::ops::target_dir(&sh.current_dir())
        .join("loadtest")
        .join(format!("{stamp}-{scenario}"));
    std::fs::create_dir_all(dir.join("parts"))?;
    let report = LoadReport {
        scenario: scenario.into(),
        started,
        machine: machine(),
        ..LoadReport::default()
    };
    Ok(Run {
        binary,
        loadgen,
        dir,
        report,
    })
}

/// The latest run of a scenario is also under loadtest/latest-<scenario>.
fn link_latest(dir: &Path, scenario: &str) {
    let latest = dir.with_file_name(format!("latest-{scenario}"));
    let _ = std::fs::remove_file(&latest);
    #[cfg(unix)]
    let _ = std::os::unix::fs::symlink(dir, &latest);
}

/// Runs a scenario and returns its report's folder.
pub fn run_to(sh: &Shell, f: &Loadtest) -> Result<PathBuf> {
    if f.scenario == Scenario::Bench {
        if !f.targets.is_empty() {
            return Err(
                "the bench scenario starts its own Redis, MariaDB and replicas: drop --targets"
                    .into(),
            );
        }
        return bench_to(sh, &bench_flags(f), f.quick && !f.release);
    }
    let plan = Plan::new(f);
    let debug = f.quick && !f.release;
    let scenario = f.scenario.name();
    let Run {
        binary,
        loadgen,
        dir,
        mut report,
    } = start_run(sh, scenario, debug)?;
    let admin = f
        .admin_token
        .clone()
        .unwrap_or_else(|| "loadtest-admin-token-0123456789".into());
    let began = Instant::now();
    let stack = start_stack(f, &plan, &binary, &dir, &admin)?;
    let s = &mut report.settings;
    for (k, v) in [
        ("fans", plan.fans),
        ("duration_seconds", plan.duration),
        ("replicas", plan.replicas),
        ("load_processes", plan.processes),
    ] {
        s.insert(k.into(), v.to_string());
    }
    s.insert("quick".into(), f.quick.to_string());
    s.insert(
        "build".into(),
        if debug { "debug" } else { "release" }.into(),
    );
    s.insert(
        "targets".into(),
        if f.targets.is_empty() {
            "started here".into()
        } else {
            stack
                .targets
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(",")
        },
    );
    let raw = raw_ceiling(
        sh,
        &loadgen,
        &stack,
        &admin,
        if f.quick { 1 } else { 5 },
        &dir,
    )?;
    eprintln!("    {:.0} joins/s", raw.per_second);
    report.raw_ceiling = Some(raw.clone());

    let event = format!("lt-{scenario}");
    let t0 = stack.targets[0];
    let mut extra: Vec<String> = Vec::new();
    let mut before_go: Box<dyn FnMut() -> Result> = Box::new(|| Ok(()));
    let mut rss_before = None;
    let budget;
    let mode;
    match f.scenario {
        Scenario::Steady | Scenario::Ramp | Scenario::Soak => {
            configure(
                t0,
                &admin,
                &event,
                &format!(
                    r#"{{"capacity":{},"admit_per_second":{},"queue_idle_timeout_seconds":3600,"session_timeout_seconds":3600}}"#,
                    plan.fans / 5,
                    (plan.fans / 50).max(1)
                ),
            )?;
            if f.scenario == Scenario::Steady {
                let secs = if f.quick { 1 } else { 5 }.to_string();
                let peak_event = "lt-peak";
                configure(
                    t0,
                    &admin,
                    peak_event,
                    r#"{"capacity":0,"queue_idle_timeout_seconds":3600}"#,
                )?;
                eprintln!("==> peak HTTP joins over 256 keep-alive connections, {secs} s");
                let file = dir.join("parts/http-peak.json");
                let target = t0.to_string();
                cmd!(sh, "{loadgen} --report {file} http-peak --target {target} --event {peak_event} --connections 256 --seconds {secs}").quiet().run()?;
                let peak: report::HttpPeak = report::read(&file)?;
                report.counts.insert(
                    "http_peak_joins_per_second".into(),
                    peak.per_second.round() as u64,
                );
                report.counts.insert("http_peak_errors".into(), peak.errors);
                report.join_ratio = Some(peak.per_second / raw.per_second);
            }
            mode = if f.scenario == Scenario::Ramp {
                "ramp"
            } else {
                "steady"
            };
            budget = Duration::from_secs(plan.duration + 120);
        }
        Scenario::Burst | Scenario::Sockets => {
            let (cap, rate) = if f.scenario == Scenario::Burst {
                ((plan.fans / 100).max(1), (plan.fans / 100).max(1))
            } else {
                (0, 1)
            };
            configure(
                t0,
                &admin,
                &event,
                &format!(
                    r#"{{"capacity":{cap},"admit_per_second":{rate},"queue_idle_timeout_seconds":3600,"session_timeout_seconds":3600}}"#
                ),
            )?;
            if f.scenario == Scenario::Sockets {
                let pid = stack.apps.first().and_then(|a| a.process.id());
                rss_before = pid.and_then(|p| rss_kib(p).ok());
            }
            mode = "burst";
            budget = Duration::from_secs(plan.window + plan.fans / 1000 + plan.duration + 180);
        }
        Scenario::Drain => {
            configure(
                t0,
                &admin,
                &event,
                r#"{"capacity":0,"queue_idle_timeout_seconds":3600,"session_timeout_seconds":3600}"#,
            )?;
            let capacity = plan.fans * 8 / 10;
            let wait = plan.fans / plan.rate.max(1) + 20;
            report
                .settings
                .insert("capacity".into(), capacity.to_string());
            report
                .settings
                .insert("admit_per_second".into(), plan.rate.to_string());
            extra.extend(["--wait".into(), wait.to_string()]);
            let (admin2, event2, rate) = (admin.clone(), event.clone(), plan.rate);
            before_go = Box::new(move || {
                configure(
                    t0,
                    &admin2,
                    &event2,
                    &format!(
                        r#"{{"capacity":{capacity},"admit_per_second":{rate},"queue_idle_timeout_seconds":3600,"session_timeout_seconds":3600}}"#
                    ),
                )
            });
            mode = "drain";
            budget = Duration::from_secs(wait + 120);
        }
        Scenario::Contention => {
            let rows = plan.seats.div_ceil(10) as u32;
            let qty_event = format!("{event}-qty");
            for ev in [&event, &qty_event] {
                create_event(t0, &admin, ev, rows, 10)?;
                configure(
                    t0,
                    &admin,
                    ev,
                    &format!(
                        r#"{{"capacity":{},"admit_per_second":{},"session_timeout_seconds":3600}}"#,
                        plan.fans, plan.fans
                    ),
                )?;
            }
            report
                .settings
                .insert("seats".into(), (u64::from(rows) * 10).to_string());
            extra.extend([
                "--seat-event".into(),
                qty_event,
                "--seats".into(),
                (u64::from(rows) * 10).to_string(),
            ]);
            mode = "contention";
            budget = Duration::from_secs(300);
        }
        Scenario::Bench => return Err("the bench scenario runs through bench_to".into()),
        Scenario::Catalog => {
            let seat_event = format!("{event}-map");
            let per_row = 100u32;
            let rows = (plan.seats.div_ceil(u64::from(per_row))) as u32;
            eprintln!(
                "==> a {}-seat event for the seat map",
                u64::from(rows) * u64::from(per_row)
            );
            create_event(t0, &admin, &seat_event, rows, per_row)?;
            for i in 0..20 {
                create_event(t0, &admin, &format!("{event}-{i}"), 10, 10)?;
            }
            report.settings.insert(
                "seat_map_seats".into(),
                (u64::from(rows) * u64::from(per_row)).to_string(),
            );
            report
                .settings
                .insert("requests_per_phase".into(), plan.rate.to_string());
            extra.extend([
                "--seat-event".into(),
                seat_event,
                "--requests".into(),
                plan.rate.to_string(),
            ]);
            mode = "catalog";
            budget = Duration::from_secs(plan.duration + 120);
        }
    }
    eprintln!(
        "==> {scenario}: {} fans over {} load processes ({}), {} replica(s)",
        plan.fans,
        plan.processes,
        (0..plan.processes)
            .map(source)
            .collect::<Vec<_>>()
            .join(", "),
        plan.replicas
    );
    // Redis's own record of commands and scripts slower than 10 ms: a
    // script holding Redis shows here, a starved machine does not.
    if let Some(redis) = &stack._redis {
        redis.cli(&["CONFIG", "SET", "slowlog-log-slower-than", "10000"])?;
        redis.cli(&["CONFIG", "SET", "slowlog-max-len", "1000"])?;
        redis.cli(&["SLOWLOG", "RESET"])?;
    }
    let (parts, sampled) = drive(
        &loadgen,
        &dir,
        mode,
        &event,
        &plan,
        &stack,
        &extra,
        budget,
        &mut *before_go,
    )?;
    report.merge_parts(&parts);
    attach_samples(&mut report, &sampled);
    let final_stats = stats(t0, &event);
    report.seconds = began.elapsed().as_secs_f64();
    report.machine.load_after = loadavg();
    if let Some(best) = report
        .routes
        .get("join")
        .and(report.samples.iter().map(|s| s.ok).max())
    {
        report.counts.insert("best_second_answers".into(), best);
    }
    if let Some(redis) = &stack._redis {
        let n: u64 = redis.cli(&["SLOWLOG", "LEN"])?.trim().parse().unwrap_or(0);
        report.counts.insert("redis_slowlog_over_10ms".into(), n);
        let log = redis.cli(&["SLOWLOG", "GET", "1000"])?;
        std::fs::write(dir.join("redis-slowlog.txt"), &log)?;
        let names = Command::new(&loadgen)
            .args(["scripts", "--redis", &stack.redis_url])
            .output()?;
        let names = String::from_utf8_lossy(&names.stdout).into_owned();
        for (what, n, max_us) in slowlog_summary(&log, &names) {
            report.counts.insert(format!("redis slow {what}: count"), n);
            report
                .counts
                .insert(format!("redis slow {what}: max µs"), max_us);
        }
    }
    judge(
        &mut report,
        f.scenario,
        &plan,
        &parts,
        final_stats,
        rss_before,
    );
    drop(stack);

    report::write(&dir.join("report.json"), &report)?;
    std::fs::write(dir.join("samples.csv"), report.samples_csv())?;
    std::fs::write(dir.join("report.md"), markdown(&report))?;
    let status = Command::new(&loadgen)
        .arg("render")
        .arg("--dir")
        .arg(&dir)
        .status()?;
    if !status.success() {
        return Err("loadgen render failed".into());
    }
    link_latest(&dir, scenario);
    Ok(dir)
}

/// What the SLOWLOG holds, by command (a script by its name), as (what,
/// entries, slowest µs). `log` is `redis-cli SLOWLOG GET`'s plain output:
/// per entry its id, time, duration (µs), then the command's words.
fn slowlog_summary(log: &str, script_names: &str) -> Vec<(String, u64, u64)> {
    let names: BTreeMap<&str, &str> = script_names
        .lines()
        .filter_map(|l| l.split_once(' '))
        .collect();
    let lines: Vec<&str> = log.lines().collect();
    let mut by: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        // A command word follows the duration line, which follows the time.
        if i < 2 || l.is_empty() || l.parse::<u64>().is_ok() {
            continue;
        }
        let is_time = lines[i - 2].parse::<u64>().is_ok_and(|t| t > 1_000_000_000);
        let Ok(micros) = lines[i - 1].parse::<u64>() else {
            continue;
        };
        if !is_time {
            continue;
        }
        let what = match (*l, lines.get(i + 1)) {
            ("EVALSHA", Some(sha)) => format!("script {}", names.get(sha).unwrap_or(sha)),
            (cmd, _) => cmd.to_string(),
        };
        let e = by.entry(what).or_default();
        e.0 += 1;
        e.1 = e.1.max(micros);
    }
    by.into_iter().map(|(k, (n, m))| (k, n, m)).collect()
}

/// The scenario's figures against the issue's targets, and its sanity
/// checks (counts that must add up whatever the machine).
fn judge(
    r: &mut LoadReport,
    scenario: Scenario,
    plan: &Plan,
    parts: &[Part],
    final_stats: Option<(u64, u64, u64)>,
    rss_before: Option<u64>,
) {
    let count = |r: &LoadReport, k: &str| r.counts.get(k).copied().unwrap_or(0);
    let mut checks = Vec::new();
    let mut targets = Vec::new();
    // Every route: each answer and error counted once per second too.
    let answered: u64 = r.routes.values().map(|x| x.latency.count + x.errors).sum();
    let per_second: u64 = r.samples.iter().map(|s| s.sent).sum();
    checks.push(check(
        "counts add up",
        answered == per_second && r.samples.iter().all(|s| s.ok + s.errors == s.sent),
        format!("{answered} requests by route, {per_second} by second"),
    ));
    let route = |name: &str| r.routes.get(name).cloned().unwrap_or_default();
    let p99 = |name: &str| r.routes.get(name).and_then(|x| x.latency.p99_ms);
    if let (Some(ratio), Some(raw)) = (r.join_ratio, &r.raw_ceiling) {
        targets.push(target(
            "joins ÷ raw Redis ceiling",
            "≥ 60%",
            format!(
                "{:.0}% ({} of {:.0} joins/s)",
                ratio * 100.0,
                count(r, "http_peak_joins_per_second"),
                raw.per_second
            ),
            ratio >= 0.6,
        ));
    }
    match scenario {
        // Its targets and checks come from the bench itself.
        Scenario::Bench => {}
        Scenario::Steady | Scenario::Soak | Scenario::Ramp => {
            let connected = count(r, "connected");
            checks.push(check(
                "every fan connected",
                connected == plan.fans,
                format!("{connected} of {}", plan.fans),
            ));
            let status_route = if scenario == Scenario::Ramp {
                format!("status@{}", plan.fans)
            } else {
                "status".into()
            };
            let errors: u64 = r.routes.values().map(|x| x.errors).sum();
            for name in ["join", status_route.as_str()] {
                targets.push(target(
                    &format!("{name} p99 ({} fans, 1 request/s each)", plan.fans),
                    "≤ 25 ms, 0 errors",
                    format!(
                        "{} ms, {errors} errors (load generator lag p99 {} ms)",
                        fmt_ms(p99(name)),
                        fmt_ms(r.lag.p99_ms)
                    ),
                    p99(name).is_some_and(|v| v <= 25.0) && errors == 0,
                ));
            }
            if scenario == Scenario::Soak {
                let rss: Vec<u64> = r.samples.iter().filter_map(|s| s.rss_kib).collect();
                if let (Some(first), Some(last)) = (rss.first(), rss.last()) {
                    r.counts.insert("rss_first_kib".into(), *first);
                    r.counts.insert("rss_last_kib".into(), *last);
                }
            }
        }
        Scenario::Burst | Scenario::Sockets => {
            let join = route("join");
            let mut tickets: Vec<&String> = parts.iter().flat_map(|p| &p.tickets).collect();
            let acked = tickets.len() as u64;
            tickets.sort();
            tickets.dedup();
            let duplicates = acked - tickets.len() as u64;
            r.counts.insert("acknowledged".into(), acked);
            r.counts.insert("duplicate_tickets".into(), duplicates);
            checks.push(check(
                "no ticket handed out twice",
                duplicates == 0,
                format!("{duplicates} duplicates"),
            ));
            checks.push(check(
                "every answered join has a ticket",
                acked == join.latency.count,
                format!("{acked} tickets, {} answered joins", join.latency.count),
            ));
            if let Some((queued, active, _)) = final_stats {
                // A join the client gave up on (timeout) may still have
                // been placed: more places than acknowledgements is not a
                // loss, fewer is.
                let lost = acked.saturating_sub(queued + active);
                let unacknowledged = (queued + active).saturating_sub(acked);
                r.counts.insert("lost_places".into(), lost);
                r.counts
                    .insert("placed_without_acknowledgement".into(), unacknowledged);
                checks.push(check(
                    "0 lost places",
                    lost == 0,
                    format!("{acked} acknowledged, {queued} queued + {active} admitted at the end"),
                ));
            }
            let positions = count(r, "positions");
            if let Some(avg) = count(r, "position_sum").checked_div(positions) {
                r.counts.insert("average_position".into(), avg);
            }
            if scenario == Scenario::Burst {
                let last_join_ms = join.latency.max_ms.unwrap_or(f64::NAN);
                targets.push(target(
                    &format!("{} fans joining within {} s acknowledged", plan.fans, plan.window),
                    "within the window, 0 errors, 0 lost or duplicate",
                    format!(
                        "{acked} acknowledged, {} errors, slowest {last_join_ms:.0} ms, {} lost, {duplicates} duplicate",
                        join.errors,
                        count(r, "lost_places")
                    ),
                    join.errors == 0 && acked == plan.fans && count(r, "lost_places") == 0 && duplicates == 0,
                ));
            } else {
                let open = count(r, "sockets_open");
                let peak = r.samples.iter().filter_map(|s| s.rss_kib).max();
                if let (Some(before), Some(peak)) = (rss_before, peak) {
                    let per = peak.saturating_sub(before) as f64 / open.max(1) as f64;
                    r.counts.insert("rss_before_kib".into(), before);
                    r.counts.insert("rss_peak_kib".into(), peak);
                    r.counts
                        .insert("rss_per_socket_bytes".into(), (per * 1024.0) as u64);
                    targets.push(target(
                        "RSS per open socket",
                        "≤ 40 KiB",
                        format!("{per:.1} KiB over {open} sockets"),
                        per <= 40.0,
                    ));
                }
                checks.push(check(
                    "sockets opened",
                    open > 0,
                    format!("{open} of {}", plan.fans),
                ));
            }
        }
        Scenario::Drain => {
            let capacity = plan.fans * 8 / 10;
            let max_active = r.samples.iter().filter_map(|s| s.active).max().unwrap_or(0);
            checks.push(check(
                "never above capacity",
                max_active <= capacity,
                format!("at most {max_active} admitted sessions, capacity {capacity}"),
            ));
            // From the admissions' own times in the outbox (Redis's clock).
            let span = count(r, "admission_span_after_first_second_ms") as f64 / 1000.0;
            let measured = if span > 0.0 {
                count(r, "admissions_after_first_second") as f64 / span
            } else {
                f64::NAN
            };
            r.counts
                .insert("admission_rate_measured".into(), measured.round() as u64);
            targets.push(target(
                "admission rate vs set rate",
                "within ±2%, never above capacity",
                format!("{measured:.0}/s for {}/s set ({:+.1}%), peak sessions {max_active} of {capacity}", plan.rate, 100.0 * (measured / plan.rate as f64 - 1.0)),
                (measured / plan.rate as f64 - 1.0).abs() <= 0.02 && max_active <= capacity,
            ));
            let told = count(r, "told");
            checks.push(check(
                "every admission told over a socket",
                count(r, "told_without_admission") == 0 && told == count(r, "admitted_seen"),
                format!(
                    "{told} told, {} admitted in the outbox among them",
                    count(r, "admitted_seen")
                ),
            ));
            targets.push(target(
                &format!("admitted → socket message p99 ({} replicas)", plan.replicas),
                "≤ 250 ms",
                format!("{} ms", fmt_ms(p99("admitted → socket"))),
                p99("admitted → socket").is_some_and(|v| v <= 250.0),
            ));
            if let Some((_, _, total)) = final_stats {
                checks.push(check(
                    "admitted up to capacity",
                    total <= capacity,
                    format!("{total} admitted in all, capacity {capacity}"),
                ));
            }
        }
        Scenario::Contention => {
            let seats: u64 = r
                .settings
                .get("seats")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            for by in ["seat id", "quantity"] {
                let held = count(r, &format!("held by {by}"));
                let reserved = count(r, &format!("reserved by {by}"));
                let refused = count(r, &format!("refused by {by}"));
                let twice = count(r, &format!("double held by {by}"))
                    + count(r, &format!("double reserved by {by}"));
                let hold = route(&format!("hold by {by}"));
                checks.push(check(
                    &format!("by {by}: no seat held or sold twice"),
                    twice == 0 && held <= seats && reserved <= held,
                    format!("{held} held, {reserved} reserved, {refused} refused, {twice} twice, {seats} seats"),
                ));
                checks.push(check(
                    &format!("by {by}: every fan answered"),
                    held + refused + hold.errors == plan.fans,
                    format!(
                        "{held} + {refused} + {} errors of {}",
                        hold.errors, plan.fans
                    ),
                ));
                let ms = count(r, &format!("hold ms by {by}"))
                    + count(r, &format!("confirm ms by {by}"));
                targets.push(target(
                    &format!("{} fans on {seats} seats by {by}", plan.fans),
                    "≤ 1 s, 0 double bookings",
                    format!(
                        "{:.2} s ({} ms holds + {} ms confirms), {reserved} sold, {twice} twice",
                        ms as f64 / 1000.0,
                        count(r, &format!("hold ms by {by}")),
                        count(r, &format!("confirm ms by {by}"))
                    ),
                    ms <= 1000 && twice == 0,
                ));
            }
        }
        Scenario::Catalog => {
            for name in ["events list", "seat map"] {
                let x = route(name);
                // Each process's busy time, averaged over processes.
                let busy_s = count(r, &format!("{name} busy ms")) as f64
                    / 1000.0
                    / plan.processes.max(1) as f64;
                let rate = if busy_s > 0.0 {
                    x.latency.count as f64 / busy_s
                } else {
                    0.0
                };
                r.counts
                    .insert(format!("{name} per second"), rate.round() as u64);
                targets.push(target(
                    &format!("{name} reads at {} concurrent", plan.fans),
                    "≥ 5,000/s",
                    format!(
                        "{rate:.0}/s ({} answered in {busy_s:.2} s), {} errors, p99 {} ms",
                        x.latency.count,
                        x.errors,
                        fmt_ms(x.latency.p99_ms)
                    ),
                    rate >= 5000.0 && x.errors == 0,
                ));
            }
        }
    }
    r.checks = checks;
    r.targets = targets;
}

fn one_line(r: &LoadReport, dir: &Path) -> String {
    let routes: Vec<String> = r
        .routes
        .iter()
        .map(|(n, x)| {
            format!(
                "{n} p99 {} ms ({} ok, {:.2}% errors)",
                fmt_ms(x.latency.p99_ms),
                x.latency.count,
                x.error_rate * 100.0
            )
        })
        .collect();
    let met = r.targets.iter().filter(|t| t.met).count();
    let ok = r.checks.iter().filter(|c| c.ok).count();
    format!(
        "xtask loadtest {}: {}; generator lag p99 {} ms; targets met {met}/{}; checks {ok}/{}; report in {}",
        r.scenario,
        routes.join(", "),
        fmt_ms(r.lag.p99_ms),
        r.targets.len(),
        r.checks.len(),
        dir.display()
    )
}

pub fn markdown(r: &LoadReport) -> String {
    let mut md = format!("# Load test `{}` ({})\n\n", r.scenario, r.started);
    md.push_str(&format!(
        "Machine: {} × {}, {} GiB; load average before {} / after {}. Run took {:.0} s.\n\n",
        r.machine.cores,
        r.machine.cpu,
        r.machine.memory_kib / 1024 / 1024,
        r.machine.load_before,
        r.machine.load_after,
        r.seconds
    ));
    md.push_str("Settings: ");
    md.push_str(
        &r.settings
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    md.push_str("\n\n");
    if let Some(raw) = &r.raw_ceiling {
        md.push_str(&format!(
            "Raw Redis ceiling (the join script by EVALSHA, 50 connections, same Redis): {:.0} joins/s",
            raw.per_second
        ));
        if let Some(ratio) = r.join_ratio {
            md.push_str(&format!("; peak HTTP joins ÷ raw: {:.0}%", ratio * 100.0));
        }
        md.push_str(".\n\n");
    }
    // The bench measures phases, not routes over time.
    if !r.routes.is_empty() || r.lag.count > 0 {
        md.push_str("| route | answered | avg ms | p50 | p90 | p99 | max | errors | error rate |\n|---|---|---|---|---|---|---|---|---|\n");
        for (name, x) in &r.routes {
            let l = &x.latency;
            md.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {:.2}% |\n",
                l.count,
                fmt_ms(l.avg_ms),
                fmt_ms(l.p50_ms),
                fmt_ms(l.p90_ms),
                fmt_ms(l.p99_ms),
                fmt_ms(l.max_ms),
                x.errors,
                x.error_rate * 100.0
            ));
        }
        let l = &r.lag;
        md.push_str(&format!(
            "| *load generator's scheduling lag* | {} | {} | {} | {} | {} | {} | | |\n\n",
            l.count,
            fmt_ms(l.avg_ms),
            fmt_ms(l.p50_ms),
            fmt_ms(l.p90_ms),
            fmt_ms(l.p99_ms),
            fmt_ms(l.max_ms)
        ));
    }
    let kinds: BTreeMap<String, u64> = r
        .routes
        .iter()
        .flat_map(|(n, x)| {
            x.errors_by_kind
                .iter()
                .map(move |(k, v)| (format!("{n}: {k}"), *v))
        })
        .collect();
    if !kinds.is_empty() {
        md.push_str("Errors by kind: ");
        md.push_str(
            &kinds
                .iter()
                .map(|(k, v)| format!("{k} × {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        md.push_str("\n\n");
    }
    if !r.targets.is_empty() {
        md.push_str("| target | goal | figure | met |\n|---|---|---|---|\n");
        for t in &r.targets {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                t.name,
                t.target,
                t.figure,
                if t.met { "yes" } else { "**no**" }
            ));
        }
        md.push('\n');
    }
    if !r.counts.is_empty() {
        md.push_str("Counts: ");
        md.push_str(
            &r.counts
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        md.push_str("\n\n");
    }
    md.push_str("Checks: ");
    md.push_str(
        &r.checks
            .iter()
            .map(|c| format!("{} {} ({})", if c.ok { "✓" } else { "✗" }, c.name, c.detail))
            .collect::<Vec<_>>()
            .join("; "),
    );
    md.push_str("\n\n");
    if !r.samples.is_empty() {
        md.push_str("Charts: latency.svg, throughput.svg, queue.svg (and memory.svg when the replicas were started here); per-second figures in samples.csv.\n");
    }
    md
}

/// `cargo xtask test`'s step: every scenario in its quick form, each
/// report checked for its shape and sanity (never for a timing).
pub fn quick_all(sh: &Shell) -> Result {
    for scenario in Scenario::ALL {
        let f = Loadtest::defaults(scenario, true);
        let dir = run_to(sh, &f)?;
        check_shape(&dir).map_err(|e| format!("loadtest {}: {e}", scenario.name()))?;
        let report: LoadReport = report::read(&dir.join("report.json"))?;
        println!("{}", one_line(&report, &dir));
    }
    Ok(())
}

/// A run's folder holds every file, its report parses, every sanity check
/// passed, and something was measured each second of the run.
pub fn check_shape(dir: &Path) -> Result {
    let r: LoadReport = report::read(&dir.join("report.json"))?;
    // The bench measures phases one after another: a table of targets,
    // no per-second samples or charts.
    let bench = r.scenario == "bench";
    let files: &[&str] = if bench {
        &["report.md"]
    } else {
        &[
            "report.md",
            "samples.csv",
            "latency.svg",
            "throughput.svg",
            "queue.svg",
        ]
    };
    for file in files {
        let path = dir.join(file);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len == 0 {
            return Err(format!("{} is missing or empty", path.display()).into());
        }
    }
    if bench {
        if r.targets.len() != 6 || r.counts.get("seats_held").copied().unwrap_or(0) == 0 {
            return Err("the bench measured less than its six targets".into());
        }
    } else {
        if r.routes.is_empty() || r.samples.is_empty() {
            return Err("no route or no sample measured".into());
        }
        let csv = std::fs::read_to_string(dir.join("samples.csv"))?;
        if csv.lines().count() != r.samples.len() + 1 {
            return Err("samples.csv has not one line a second".into());
        }
    }
    if r.raw_ceiling.as_ref().is_none_or(|c| c.joins == 0) {
        return Err("no raw Redis ceiling".into());
    }
    let failed: Vec<String> = r
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if !failed.is_empty() {
        return Err(failed.join("; ").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_open_at_the_set_rate_over_enough_processes() {
        let p = Plan::new(&Loadtest::defaults(Scenario::Sockets, false));
        assert_eq!(
            (p.fans, p.rate, p.window, p.processes),
            (19_000, 500, 38, 2)
        );
        let mut f = Loadtest::defaults(Scenario::Sockets, false);
        f.rate = std::num::NonZeroU64::new(2000);
        assert_eq!(Plan::new(&f).window, 10);
        assert_eq!(
            Plan::new(&Loadtest::defaults(Scenario::Sockets, true)).window,
            1
        );
    }

    #[test]
    fn the_bench_scenario_takes_the_bench_defaults_and_sizes_the_latency_run() {
        let full = bench_flags(&Loadtest::defaults(Scenario::Bench, false));
        assert_eq!(full, crate::flags::Bench::default());
        let quick = bench_flags(&Loadtest::defaults(Scenario::Bench, true));
        assert_eq!((quick.seconds.get(), quick.fans.get()), (1, 200));
        let mut f = Loadtest::defaults(Scenario::Bench, true);
        f.fans = std::num::NonZeroU64::new(50);
        f.duration = std::num::NonZeroU64::new(3);
        let sized = bench_flags(&f);
        assert_eq!((sized.fans.get(), sized.seconds.get()), (50, 3));
        assert!(run_to(
            &Shell::new().unwrap(),
            &Loadtest {
                targets: vec!["127.0.0.1:9".parse().unwrap()],
                ..Loadtest::defaults(Scenario::Bench, true)
            }
        )
        .is_err());
    }

    #[test]
    fn targets_are_plain_http_addresses() {
        assert_eq!(parse_target("http://127.0.0.1:8080").unwrap().port(), 8080);
        assert_eq!(parse_target("127.0.0.1:9/").unwrap().port(), 9);
        assert!(parse_target("https://example.com:443").is_err());
        assert!(parse_target("http://127.0.0.1:8080/api").is_err());
        assert!(parse_target("nonsense").is_err());
    }

    #[test]
    fn slowlog_entries_are_counted_by_script_name() {
        let log = "2\n1796228471\n18286\nXRANGE\nk\n-\n127.0.0.1:1\n\n1\n1796228470\n11642\nEVALSHA\nabc\n12\n0\n1796228469\n9000\nEVALSHA\nabc\n1\n";
        let got = slowlog_summary(log, "abc join\ndef tick\n");
        assert_eq!(
            got,
            vec![
                ("XRANGE".to_string(), 1, 18286),
                ("script join".to_string(), 2, 11642)
            ]
        );
    }

    #[test]
    fn timestamps_are_utc_and_sortable() {
        let (compact, iso) = timestamp();
        assert_eq!(compact.len(), 16);
        assert!(iso.starts_with("20") && iso.ends_with('Z'));
        assert_eq!(&compact[..4], &iso[..4]);
    }
}
