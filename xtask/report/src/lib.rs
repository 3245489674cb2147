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
/// sold-out bookkeeping of a confirm must not hold a hold up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mixed {
    pub holds_alone: Latency,
    pub holds_with_confirms: Latency,
    pub confirms: Latency,
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
