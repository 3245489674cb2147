//! What the load generator measured, as typed JSON files: the load
//! generator writes them (`--report FILE`) and xtask reads them back, so
//! neither side scrapes numbers out of text, and a renamed field is a
//! compile error on both sides.

use std::io;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The raw ceiling: the product's join script by EVALSHA straight on Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedisPeak {
    pub joins: u64,
    pub seconds: f64,
    pub per_second: f64,
}

/// Joins through HTTP over keep-alive connections, as fast as answers come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpPeak {
    pub joins: u64,
    pub errors: u64,
    pub seconds: f64,
    pub per_second: f64,
}

/// Latency percentiles of one kind of request, in milliseconds (NaN, as
/// `null`, when nothing was measured).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Latency {
    /// From samples in microseconds (sorted in place).
    pub fn from_micros(samples: &mut [u32]) -> Latency {
        samples.sort_unstable();
        let at = |p: f64| -> Option<f64> {
            let last = samples.len().checked_sub(1)?;
            let i = (last as f64 * p).round() as usize;
            Some(f64::from(samples[i]) / 1000.0)
        };
        Latency {
            count: samples.len() as u64,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// One load process's share of the fans: raw samples, merged by the parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FansShare {
    pub connected: u64,
    pub connect_errors: u64,
    pub errors: u64,
    /// Join latencies (µs from the scheduled send time).
    pub join_us: Vec<u32>,
    /// Status-poll latencies after the warm-up (µs).
    pub status_us: Vec<u32>,
}

/// Many open connections at a fixed offered rate, all processes merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fans {
    pub fans: u64,
    pub processes: u64,
    pub connected: u64,
    pub connect_errors: u64,
    pub errors: u64,
    pub offered_per_second: f64,
    pub answered_per_second: f64,
    pub join: Latency,
    pub status: Latency,
}

/// Admitted fans fighting over the seats of one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contention {
    pub fans: u64,
    pub seats: u64,
    pub held: u64,
    pub refused: u64,
    pub errors: u64,
    pub reserved: u64,
    pub hold_seconds: f64,
    pub confirm_seconds: f64,
    pub total_seconds: f64,
}

/// Holds while confirms run at the same time, against holds alone: the
/// sold-out bookkeeping of a confirm must not hold a hold up. Each twice:
/// all at once (a burst, which fills the machine's CPU, so that any other
/// work slows it) and at `per_second` requests a second (below
/// saturation). `*_with_holds` is the control: holds beside as many other
/// fans' holds, which take none of a confirm's locks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mixed {
    pub holds_alone: Latency,
    pub holds_with_confirms: Latency,
    pub confirms: Latency,
    pub holds_with_holds: Latency,
    pub per_second: u32,
    /// The paced runs' rounds, each in another order, pooled.
    pub rounds: u32,
    pub paced_holds_alone: Latency,
    pub paced_holds_with_confirms: Latency,
    pub paced_confirms: Latency,
    pub paced_holds_with_holds: Latency,
    pub errors: u64,
}

/// Many WebSockets open on one replica at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sockets {
    pub requested: u64,
    pub opened: u64,
    pub failed: u64,
    /// Seconds they were all held open.
    pub held_seconds: f64,
}

/// Writes a report as JSON.
pub fn write<T: Serialize>(path: &Path, report: &T) -> io::Result<()> {
    let text = serde_json::to_vec_pretty(report).map_err(io::Error::other)?;
    std::fs::write(path, text)
}

/// Reads a report written by [`write`].
pub fn read<T: DeserializeOwned>(path: &Path) -> io::Result<T> {
    let text = std::fs::read(path)?;
    serde_json::from_slice(&text).map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_sorted_microseconds() {
        let mut samples = vec![3000, 1000, 2000, 4000, 5000];
        let l = Latency::from_micros(&mut samples);
        assert_eq!(l.count, 5);
        assert_eq!(l.p50_ms, Some(3.0));
        assert_eq!(l.max_ms, Some(5.0));
        assert_eq!(Latency::from_micros(&mut []).p99_ms, None);
    }

    #[test]
    fn reports_round_trip_through_a_file() {
        let dir = std::env::temp_dir().join(format!("report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("peak.json");
        let peak = HttpPeak {
            joins: 10,
            errors: 0,
            seconds: 1.5,
            per_second: 6.6,
        };
        write(&path, &peak).unwrap();
        assert_eq!(read::<HttpPeak>(&path).unwrap(), peak);
        assert!(read::<Contention>(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Push: how soon `admitted` reached the fans' sockets, measured from the
/// admission's time in Redis (its outbox entry) to the message's arrival.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Push {
    pub replicas: u64,
    pub sockets: u64,
    /// Sockets told `admitted`.
    pub told: u64,
    /// Admissions whose `admitted` never came over the socket.
    pub missed: u64,
    /// Sockets whose fan joined through another replica than the socket's.
    pub cross_replica: u64,
    pub latency: Latency,
}

/// A latency histogram as (value in µs, count) pairs, sorted by value: the
/// recorded buckets of an HDR histogram (3 significant digits), which the
/// load processes export and xtask merges without depending on
/// `hdrhistogram` itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub buckets: Vec<[u64; 2]>,
}

impl Histogram {
    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        let mut all: std::collections::BTreeMap<u64, u64> =
            self.buckets.iter().map(|[v, c]| (*v, *c)).collect();
        for [v, c] in &other.buckets {
            *all.entry(*v).or_default() += c;
        }
        self.buckets = all.into_iter().map(|(v, c)| [v, c]).collect();
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|[_, c]| c).sum()
    }

    /// The value (µs) at quantile `q` (0..=1), `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for [v, c] in &self.buckets {
            seen += c;
            if seen >= rank {
                return Some(*v);
            }
        }
        self.buckets.last().map(|[v, _]| *v)
    }

    pub fn mean_us(&self) -> Option<f64> {
        let total = self.count();
        (total > 0).then(|| {
            self.buckets
                .iter()
                .map(|[v, c]| *v as f64 * *c as f64)
                .sum::<f64>()
                / total as f64
        })
    }

    /// Average and percentiles in milliseconds.
    pub fn summary(&self) -> Summary {
        let ms = |v: Option<u64>| v.map(|v| v as f64 / 1000.0);
        Summary {
            count: self.count(),
            avg_ms: self.mean_us().map(|v| v / 1000.0),
            p50_ms: ms(self.quantile_us(0.5)),
            p90_ms: ms(self.quantile_us(0.9)),
            p99_ms: ms(self.quantile_us(0.99)),
            max_ms: ms(self.quantile_us(1.0)),
        }
    }
}

/// Average and percentiles of one histogram, in milliseconds (`null` when
/// nothing was measured).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub avg_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// One kind of request (a route, or a WebSocket step) in one load process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutePart {
    /// Latency of the answered requests, from the scheduled send time (µs).
    pub latency: Histogram,
    /// Requests that failed, by kind (`http 503`, `timeout`, `connect`, …).
    pub errors: std::collections::BTreeMap<String, u64>,
}

/// One second of one load process, counted by scheduled send time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondPart {
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub latency: Histogram,
    /// How late the process sent after the schedule (µs).
    pub lag: Histogram,
}

/// What one load process measured: `loadgen drive` writes it, xtask merges
/// every process's part into a [`LoadReport`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub index: u64,
    /// The loopback source address its sockets were bound to.
    pub source: String,
    pub routes: std::collections::BTreeMap<String, RoutePart>,
    /// How late this process sent each request after its scheduled time
    /// (µs): its own scheduling lag, so the reader can tell a starved load
    /// generator from a slow app.
    pub lag: Histogram,
    /// Per second from the common start.
    pub seconds: Vec<SecondPart>,
    /// The scenario's own counts (`admitted_at_once`, `queued`,
    /// `position_sum`, `sockets_open`, `held`, `reserved`, …), summed over
    /// processes.
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Tickets handed out (burst), so duplicates across processes show.
    pub tickets: Vec<String>,
}

/// One route over the whole run, every process merged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteReport {
    pub latency: Summary,
    pub errors: u64,
    /// errors ÷ (answered + errors).
    pub error_rate: f64,
    pub errors_by_kind: std::collections::BTreeMap<String, u64>,
}

/// One second of the run: the load processes' counts merged with what
/// xtask sampled from the app (queue, admissions, memory).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub second: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// The load processes' scheduling lag that second, p99 (ms).
    pub lag_p99_ms: Option<f64>,
    pub queued: Option<u64>,
    pub active: Option<u64>,
    /// Admissions during that second (difference of `admitted_total`).
    pub admissions: Option<u64>,
    /// Resident memory of the replicas this run started, summed (KiB).
    pub rss_kib: Option<u64>,
}

/// The machine a run was made on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: u64,
    pub memory_kib: u64,
    /// `/proc/loadavg` before the run: other work on the machine.
    pub load_before: String,
    pub load_after: String,
}

/// A sanity check of the run's own figures (never a timing threshold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// A target of the issue beside the figure this run reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub figure: String,
    pub met: bool,
}

/// `target/loadtest/<timestamp>/report.json`: a whole `cargo xtask
/// loadtest` run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub scenario: String,
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub started: String,
    pub seconds: f64,
    pub machine: Machine,
    /// Every setting of the run (fans, duration, replicas, processes, …).
    pub settings: std::collections::BTreeMap<String, String>,
    /// The join script by EVALSHA straight on the same Redis.
    pub raw_ceiling: Option<RedisPeak>,
    /// The run's best second of joins ÷ the raw ceiling.
    pub join_ratio: Option<f64>,
    pub routes: std::collections::BTreeMap<String, RouteReport>,
    /// The load processes' scheduling lag over the whole run.
    pub lag: Summary,
    pub counts: std::collections::BTreeMap<String, u64>,
    pub samples: Vec<Sample>,
    pub targets: Vec<Target>,
    pub checks: Vec<Check>,
}

impl LoadReport {
    /// Every process's part merged into routes, lag, per-second samples
    /// and counts (the sampled app figures are filled in by the caller).
    pub fn merge_parts(&mut self, parts: &[Part]) {
        let mut routes: std::collections::BTreeMap<String, RoutePart> = Default::default();
        let mut lag = Histogram::default();
        let mut seconds: Vec<SecondPart> = Vec::new();
        for part in parts {
            for (name, r) in &part.routes {
                let into = routes.entry(name.clone()).or_default();
                into.latency.merge(&r.latency);
                for (kind, n) in &r.errors {
                    *into.errors.entry(kind.clone()).or_default() += n;
                }
            }
            lag.merge(&part.lag);
            if seconds.len() < part.seconds.len() {
                seconds.resize(part.seconds.len(), SecondPart::default());
            }
            for (into, s) in seconds.iter_mut().zip(&part.seconds) {
                into.sent += s.sent;
                into.ok += s.ok;
                into.errors += s.errors;
                into.latency.merge(&s.latency);
                into.lag.merge(&s.lag);
            }
            for (k, v) in &part.counts {
                *self.counts.entry(k.clone()).or_default() += v;
            }
        }
        self.routes = routes
            .into_iter()
            .map(|(name, r)| {
                let errors: u64 = r.errors.values().sum();
                let answered = r.latency.count();
                let report = RouteReport {
                    latency: r.latency.summary(),
                    errors,
                    error_rate: if answered + errors == 0 {
                        0.0
                    } else {
                        errors as f64 / (answered + errors) as f64
                    },
                    errors_by_kind: r.errors,
                };
                (name, report)
            })
            .collect();
        self.lag = lag.summary();
        self.samples = seconds
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let l = s.latency.summary();
                Sample {
                    second: i as u64,
                    sent: s.sent,
                    ok: s.ok,
                    errors: s.errors,
                    p50_ms: l.p50_ms,
                    p90_ms: l.p90_ms,
                    p99_ms: l.p99_ms,
                    max_ms: l.max_ms,
                    lag_p99_ms: s.lag.summary().p99_ms,
                    ..Sample::default()
                }
            })
            .collect();
    }

    /// `samples.csv`: one line a second.
    pub fn samples_csv(&self) -> String {
        let mut out = String::from(
            "second,sent,ok,errors,p50_ms,p90_ms,p99_ms,max_ms,lag_p99_ms,queued,active,admissions,rss_kib\n",
        );
        let f = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
        let u = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        for s in &self.samples {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                s.second,
                s.sent,
                s.ok,
                s.errors,
                f(s.p50_ms),
                f(s.p90_ms),
                f(s.p99_ms),
                f(s.max_ms),
                f(s.lag_p99_ms),
                u(s.queued),
                u(s.active),
                u(s.admissions),
                u(s.rss_kib),
            ));
        }
        out
    }
}

#[cfg(test)]
mod histogram_tests {
    use super::*;

    fn h(values: &[(u64, u64)]) -> Histogram {
        Histogram {
            buckets: values.iter().map(|(v, c)| [*v, *c]).collect(),
        }
    }

    #[test]
    fn merged_histograms_add_their_counts_and_give_percentiles() {
        let mut a = h(&[(1000, 98), (5000, 1)]);
        a.merge(&h(&[(1000, 0), (90_000, 1)]));
        assert_eq!(a.count(), 100);
        let s = a.summary();
        assert_eq!(s.p50_ms, Some(1.0));
        assert_eq!(s.p99_ms, Some(5.0));
        assert_eq!(s.max_ms, Some(90.0));
        assert!((s.avg_ms.unwrap() - (98.0 + 5.0 + 90.0) / 100.0).abs() < 1e-9);
        assert_eq!(Histogram::default().summary().p99_ms, None);
    }

    #[test]
    fn parts_merge_by_route_and_by_second() {
        let part = |ok: u64| Part {
            routes: [(
                "join".to_string(),
                RoutePart {
                    latency: h(&[(2000, ok)]),
                    errors: [("timeout".to_string(), 1)].into(),
                },
            )]
            .into(),
            seconds: vec![SecondPart {
                sent: ok + 1,
                ok,
                errors: 1,
                latency: h(&[(2000, ok)]),
                lag: h(&[(10, ok)]),
            }],
            counts: [("queued".to_string(), ok)].into(),
            ..Part::default()
        };
        let mut r = LoadReport::default();
        r.merge_parts(&[part(3), part(5)]);
        let join = &r.routes["join"];
        assert_eq!(join.latency.count, 8);
        assert_eq!(join.errors, 2);
        assert!((join.error_rate - 0.2).abs() < 1e-9);
        assert_eq!(r.samples.len(), 1);
        assert_eq!((r.samples[0].sent, r.samples[0].ok), (10, 8));
        assert_eq!(r.counts["queued"], 8);
        assert!(r.samples_csv().lines().count() == 2);
    }
}
