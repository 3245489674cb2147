//! Prometheus metrics served at `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Cheap to clone; every clone records into the same registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    http_duration: HistogramVec,
    http_total: IntCounterVec,
    redis_duration: HistogramVec,
    queue_length: IntGaugeVec,
    active_sessions: IntGaugeVec,
    capacity: IntGaugeVec,
    admitted_total: IntCounterVec,
    last_admit: GaugeVec,
    loop_errors: IntCounterVec,
    background_errors: IntCounterVec,
    websockets: IntGauge,
    records_sent: IntCounter,
    records_retried: IntCounter,
    records_failed: IntCounter,
    outbox_length: IntGaugeVec,
    outbox_oldest_age: GaugeVec,
    outbox_dropped: IntCounterVec,
    push_latency: Histogram,
    stage_duration: HistogramVec,
    runtime_lag: Histogram,
    /// The latest runtime lag (µs), for the slow-request log.
    last_runtime_lag_us: std::sync::atomic::AtomicU64,
}

/// What one admission-loop run saw for an event, as exported.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventGauges {
    pub queued: i64,
    pub active: i64,
    pub capacity: i64,
    pub admitted_total: i64,
    pub last_admit_ms: Option<i64>,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer an HTTP request, by route template.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let http_total = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route template.",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let redis_duration = HistogramVec::new(
            HistogramOpts::new(
                "admission_redis_command_duration_seconds",
                "Time of one Redis command or script, by name and outcome.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["command", "outcome"],
        )
        .expect("valid metric");
        let gauge = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["event"]).expect("valid metric")
        };
        let queue_length = gauge("admission_queue_length", "Fans waiting in the queue.");
        let active_sessions = gauge(
            "admission_active_sessions",
            "Admitted sessions holding a place.",
        );
        let capacity = gauge(
            "admission_capacity",
            "Admitted sessions allowed at once (effective).",
        );
        let admitted_total = IntCounterVec::new(
            Opts::new(
                "admission_admitted_total",
                "Fans admitted since the event's queue was created (all replicas).",
            ),
            &["event"],
        )
        .expect("valid metric");
        let last_admit = GaugeVec::new(
            Opts::new(
                "admission_last_admit_timestamp_seconds",
                "Unix time of the last admission; a stale value with fans queued means the loop is stuck.",
            ),
            &["event"],
        )
        .expect("valid metric");
        let loop_errors = IntCounterVec::new(
            Opts::new(
                "admission_loop_errors_total",
                "Admission-loop runs of this replica that failed, by event.",
            ),
            &["event"],
        )
        .expect("valid metric");
        let background_errors = IntCounterVec::new(
            Opts::new(
                "admission_background_errors_total",
                "Failures of this replica's background work, by task (hold_sweep, websocket_poll, sold_out); each is also logged at warn.",
            ),
            &["task"],
        )
        .expect("valid metric");
        let websockets = IntGauge::new(
            "admission_websocket_connections",
            "Open fan WebSockets on this replica.",
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let records_sent = counter(
            "admission_event_records_sent_total",
            "Kinesis records of the event log accepted (each a JSON array of events).",
        );
        let records_retried = counter(
            "admission_event_records_retried_total",
            "Kinesis records sent again after a partial failure or a failed call.",
        );
        let records_failed = counter(
            "admission_event_records_failed_total",
            "Kinesis records given up on for now (their events stay in the outbox and go again).",
        );
        let outbox_length = gauge(
            "admission_outbox_length",
            "Entries in an event's outbox (not yet shipped, and a minute of shipped history).",
        );
        let outbox_oldest_age = GaugeVec::new(
            Opts::new(
                "admission_outbox_oldest_age_seconds",
                "Age of the oldest entry of an event's outbox not yet shipped (0 when all are).",
            ),
            &["event"],
        )
        .expect("valid metric");
        let outbox_dropped = IntCounterVec::new(
            Opts::new(
                "admission_outbox_dropped_total",
                "Changes of an event not recorded because its outbox was full (all replicas).",
            ),
            &["event"],
        )
        .expect("valid metric");
        let push_latency = Histogram::with_opts(
            HistogramOpts::new(
                "admission_push_latency_seconds",
                "From a change in Redis (its outbox entry) to this replica's sockets being told.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let stage_duration = HistogramVec::new(
            HistogramOpts::new(
                "admission_request_stage_seconds",
                "Where an HTTP request's time went: `redis` (its Redis calls, queueing on the connection included) and `app` (the rest: handler, JSON, waiting for a worker thread).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["stage"],
        )
        .expect("valid metric");
        let runtime_lag = Histogram::with_opts(
            HistogramOpts::new(
                "admission_runtime_lag_seconds",
                "How late a 10 ms timer fires on this replica's runtime: its worker threads starved of CPU or blocked.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        for c in [
            Box::new(http_duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(stage_duration.clone()),
            Box::new(runtime_lag.clone()),
            Box::new(http_total.clone()),
            Box::new(redis_duration.clone()),
            Box::new(queue_length.clone()),
            Box::new(active_sessions.clone()),
            Box::new(capacity.clone()),
            Box::new(admitted_total.clone()),
            Box::new(last_admit.clone()),
            Box::new(loop_errors.clone()),
            Box::new(background_errors.clone()),
            Box::new(websockets.clone()),
            Box::new(records_sent.clone()),
            Box::new(records_retried.clone()),
            Box::new(records_failed.clone()),
            Box::new(outbox_length.clone()),
            Box::new(outbox_oldest_age.clone()),
            Box::new(outbox_dropped.clone()),
            Box::new(push_latency.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            inner: Arc::new(Inner {
                registry,
                http_duration,
                http_total,
                redis_duration,
                queue_length,
                active_sessions,
                capacity,
                admitted_total,
                last_admit,
                loop_errors,
                background_errors,
                websockets,
                records_sent,
                records_retried,
                records_failed,
                outbox_length,
                outbox_oldest_age,
                outbox_dropped,
                push_latency,
                stage_duration,
                runtime_lag,
                last_runtime_lag_us: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// Records where one request's time went (see [`with_stages`]).
    pub fn observe_stages(&self, total: Duration, stages: &Stages) {
        let d = &self.inner.stage_duration;
        d.with_label_values(&["redis"])
            .observe(stages.redis.as_secs_f64());
        d.with_label_values(&["app"])
            .observe(total.saturating_sub(stages.redis).as_secs_f64());
    }

    /// Records how late the runtime's timer fired.
    pub fn observe_runtime_lag(&self, lag: Duration) {
        self.inner.runtime_lag.observe(lag.as_secs_f64());
        self.inner
            .last_runtime_lag_us
            .store(lag.as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// The latest runtime lag measured.
    pub fn last_runtime_lag(&self) -> Duration {
        Duration::from_micros(
            self.inner
                .last_runtime_lag_us
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Measures the runtime's lag every 10 ms until the task is dropped:
    /// a request that was slow while this was high waited for a thread,
    /// not for Redis.
    pub async fn watch_runtime_lag(self) {
        let tick = Duration::from_millis(10);
        loop {
            let started = tokio::time::Instant::now();
            tokio::time::sleep(tick).await;
            self.observe_runtime_lag(started.elapsed().saturating_sub(tick));
        }
    }

    /// Records one answered request. `method` is labelled from a fixed set
    /// (anything else is `other`), so a client cannot create series.
    pub fn observe_http(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [route, method_label(method), status.as_str()];
        self.inner
            .http_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        self.inner.http_total.with_label_values(&labels).inc();
    }

    pub fn observe_redis(&self, command: &str, elapsed: Duration, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.inner
            .redis_duration
            .with_label_values(&[command, outcome])
            .observe(elapsed.as_secs_f64());
    }

    pub fn set_event(&self, event: &str, g: EventGauges) {
        let i = &self.inner;
        i.queue_length.with_label_values(&[event]).set(g.queued);
        i.active_sessions.with_label_values(&[event]).set(g.active);
        i.capacity.with_label_values(&[event]).set(g.capacity);
        // The total lives in Redis and is shared by all replicas; the counter
        // follows it and never goes down.
        let counter = i.admitted_total.with_label_values(&[event]);
        let seen = counter.get() as i64;
        if g.admitted_total > seen {
            counter.inc_by((g.admitted_total - seen) as u64);
        }
        if let Some(ms) = g.last_admit_ms {
            i.last_admit
                .with_label_values(&[event])
                .set(ms as f64 / 1000.0);
        }
    }

    /// Drops every series of an event that no longer exists.
    pub fn forget_event(&self, event: &str) {
        let i = &self.inner;
        let labels = [event];
        let _ = i.queue_length.remove_label_values(&labels);
        let _ = i.active_sessions.remove_label_values(&labels);
        let _ = i.capacity.remove_label_values(&labels);
        let _ = i.admitted_total.remove_label_values(&labels);
        let _ = i.last_admit.remove_label_values(&labels);
        let _ = i.loop_errors.remove_label_values(&labels);
        let _ = i.outbox_length.remove_label_values(&labels);
        let _ = i.outbox_oldest_age.remove_label_values(&labels);
        let _ = i.outbox_dropped.remove_label_values(&labels);
    }

    pub fn event_records_sent(&self, n: usize) {
        self.inner.records_sent.inc_by(n as u64);
    }

    pub fn event_records_retried(&self, n: usize) {
        self.inner.records_retried.inc_by(n as u64);
    }

    pub fn event_records_failed(&self, n: usize) {
        self.inner.records_failed.inc_by(n as u64);
    }

    /// An event's outbox as a shipper last saw it; `dropped` is the
    /// event's total (kept in Redis, shared by every replica).
    pub fn set_outbox(&self, event: &str, length: i64, oldest_age_seconds: f64, dropped: u64) {
        let i = &self.inner;
        i.outbox_length.with_label_values(&[event]).set(length);
        i.outbox_oldest_age
            .with_label_values(&[event])
            .set(oldest_age_seconds);
        let counter = i.outbox_dropped.with_label_values(&[event]);
        if dropped > counter.get() {
            counter.inc_by(dropped - counter.get());
        }
    }

    pub fn observe_push(&self, seconds: f64) {
        self.inner.push_latency.observe(seconds.max(0.0));
    }

    /// A background task failed (the caller logs it at warn).
    pub fn background_error(&self, task: &'static str) {
        self.inner
            .background_errors
            .with_label_values(&[task])
            .inc();
    }

    pub fn loop_error(&self, event: &str) {
        self.inner.loop_errors.with_label_values(&[event]).inc();
    }

    pub fn websocket_opened(&self) {
        self.inner.websockets.inc();
    }

    pub fn websocket_closed(&self) {
        self.inner.websockets.dec();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let families = self.inner.registry.gather();
        if TextEncoder::new().encode(&families, &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The `method` label: the standard methods, else `other`.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_series() {
        let m = Metrics::new();
        for method in ["GET", "BREW", "WHEN", "get"] {
            m.observe_http("/x", method, 405, Duration::from_millis(1));
        }
        let text = m.render();
        assert!(text.contains("method=\"GET\""));
        assert!(text.contains("method=\"other\""));
        assert!(!text.contains("BREW") && !text.contains("WHEN"));
    }

    #[test]
    fn a_removed_event_leaves_no_series() {
        let m = Metrics::new();
        m.set_event(
            "gone",
            EventGauges {
                queued: 1,
                active: 2,
                capacity: 3,
                admitted_total: 4,
                last_admit_ms: Some(5_000),
            },
        );
        m.loop_error("gone");
        assert!(m.render().contains("event=\"gone\""));
        m.forget_event("gone");
        assert!(!m.render().contains("event=\"gone\""), "{}", m.render());
    }
}

/// Where one request's time went, gathered while it runs: the store adds
/// each Redis call (see [`record_redis`]), the access log reads the sum.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stages {
    pub redis: Duration,
    pub redis_calls: u32,
    pub slowest_redis: Duration,
    /// The command or script of the slowest Redis call.
    pub slowest_label: &'static str,
}

tokio::task_local! {
    static STAGES: std::cell::RefCell<Stages>;
}

/// Runs `f` (a request) with a fresh [`Stages`] and returns both.
pub async fn with_stages<F: std::future::Future>(f: F) -> (F::Output, Stages) {
    STAGES
        .scope(std::cell::RefCell::new(Stages::default()), async {
            let out = f.await;
            let stages = STAGES.with(|s| *s.borrow());
            (out, stages)
        })
        .await
}

/// Adds one Redis call to the current request's stages (nothing outside a
/// request: the admission loop, the hub).
pub fn record_redis(label: &'static str, elapsed: Duration) {
    let _ = STAGES.try_with(|s| {
        let mut s = s.borrow_mut();
        s.redis += elapsed;
        s.redis_calls += 1;
        if elapsed > s.slowest_redis {
            s.slowest_redis = elapsed;
            s.slowest_label = label;
        }
    });
}

#[cfg(test)]
mod stage_tests {
    use super::*;

    #[tokio::test]
    async fn redis_calls_inside_a_request_add_up_and_outside_are_ignored() {
        record_redis("outside", Duration::from_millis(5));
        let ((), s) = with_stages(async {
            record_redis("join", Duration::from_millis(2));
            record_redis("status", Duration::from_millis(7));
        })
        .await;
        assert_eq!(s.redis_calls, 2);
        assert_eq!(s.redis, Duration::from_millis(9));
        assert_eq!(
            (s.slowest_label, s.slowest_redis),
            ("status", Duration::from_millis(7))
        );
    }
}
