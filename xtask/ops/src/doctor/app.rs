//! The app's own health from its public URL: `app.ready` (`/health/ready`
//! and what it says is degraded), `app.admission-loop` (an event with fans
//! waiting, room and an admitting mode, not admitted for 10 s: the loop is
//! stalled) and `app.event-log` (the outboxes' length and oldest unshipped
//! entry, from `/metrics`). The answers are read with the app's own types.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use admission::http::api::{DependencyState, EventLogState, Health, HealthStatus, QueueStatsBody};
use admission::queue::config::Mode;

use super::{Ctx, Outcome};

/// An event whose last admission is older than this, with fans waiting
/// and room, has a stalled loop (the loop ticks every 100 ms).
pub const STALL_AFTER_MS: i64 = 10_000;
/// The oldest unshipped outbox entry: warn past this, fail past 6×.
pub const OUTBOX_WARN_SECONDS: f64 = 10.0;

fn skip_no_url() -> Outcome {
    Outcome::skip(
        "no app URL given",
        "--url https://<host> (or APP_URL, or --env ENV)",
    )
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default()
}

async fn get(url: &str) -> Result<(u16, String), String> {
    let r = http().get(url).send().await.map_err(|e| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        format!("GET {url}: {text}")
    })?;
    let status = r.status().as_u16();
    let body = r.text().await.map_err(|e| format!("GET {url}: {e}"))?;
    Ok((status, body))
}

fn unreachable(why: String) -> Outcome {
    Outcome::fail(
        format!("the app does not answer: {why}"),
        "check the ALB and the pods: cargo xtask doctor alb.ingress k8s.rollout",
    )
}

pub async fn ready(ctx: Arc<Ctx>) -> Outcome {
    let Some(base) = &ctx.settings.url else {
        return skip_no_url();
    };
    let (code, body) = match get(&format!("{base}/health/ready")).await {
        Ok(r) => r,
        Err(why) => return unreachable(why),
    };
    let health: Health = match serde_json::from_str(&body) {
        Ok(h) => h,
        Err(e) => {
            return Outcome::fail(
                format!(
                    "/health/ready answered {code} with something else than the app's health ({e})"
                ),
                format!("check that {base} is the app (the Ingress's host and path)"),
            )
        }
    };
    let replica = health.replica.clone().unwrap_or_else(|| "?".into());
    let deps = health.dependencies.clone();
    let mut down = Vec::new();
    let mut fixes = Vec::new();
    if let Some(d) = &deps {
        if d.redis == DependencyState::Down {
            down.push("redis is down".to_string());
            fixes.push("cargo xtask doctor redis.cluster network.security-groups".to_string());
        }
        if d.database == DependencyState::Down {
            down.push("the database is down (bookings answer 503)".to_string());
            fixes.push(
                "cargo xtask doctor db.schema network.security-groups; check Aurora's status"
                    .to_string(),
            );
        }
        match d.event_log {
            EventLogState::Down => {
                down.push(
                    "the event log cannot reach Kinesis (events wait in the outboxes)".into(),
                );
                fixes.push("cargo xtask doctor kinesis.stream irsa.chain".into());
            }
            EventLogState::Full => {
                down.push("an outbox is full (new changes are not recorded)".into());
                fixes.push("cargo xtask doctor app.event-log kinesis.stream".into());
            }
            _ => {}
        }
    }
    match health.status {
        HealthStatus::Ok => Outcome::ok(format!("ready (replica {replica}: {})", describe(&deps))),
        HealthStatus::Degraded => Outcome::warn(
            format!(
                "ready but degraded (replica {replica}): {}",
                down.join("; ")
            ),
            fixes.join("; "),
        ),
        HealthStatus::Unavailable => Outcome::fail(
            format!(
                "not ready ({code}, replica {replica}): {}",
                if down.is_empty() {
                    "unavailable".into()
                } else {
                    down.join("; ")
                }
            ),
            if fixes.is_empty() {
                "cargo xtask doctor redis.cluster k8s.rollout".into()
            } else {
                fixes.join("; ")
            },
        ),
    }
}

fn describe(deps: &Option<admission::http::api::Dependencies>) -> String {
    match deps {
        Some(d) => format!(
            "redis {}, database {}, event log {}",
            serde_json::to_value(d.redis)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            serde_json::to_value(d.database)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            serde_json::to_value(d.event_log)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        ),
        None => "no dependencies reported".into(),
    }
}

/// One sample of the text exposition format: labels and value.
pub type Sample = (BTreeMap<String, String>, f64);

/// The samples of metric `name` in a `/metrics` text.
pub fn samples(text: &str, name: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => {
                    let (inside, after) = r.split_once('}')?;
                    (parse_labels(inside), after)
                }
                None if rest.starts_with(' ') => (BTreeMap::new(), rest),
                None => return None,
            };
            let value: f64 = value.split_whitespace().next()?.parse().ok()?;
            Some((labels, value))
        })
        .collect()
}

fn parse_labels(inside: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = inside;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    labels
}

async fn metrics(base: &str) -> Result<String, Outcome> {
    match get(&format!("{base}/metrics")).await {
        Ok((200, body)) => Ok(body),
        Ok((code, _)) => Err(Outcome::fail(
            format!("/metrics answered {code}"),
            format!("check that {base} is the app and that its /metrics is routed"),
        )),
        Err(why) => Err(unreachable(why)),
    }
}

fn per_event(text: &str, name: &str) -> BTreeMap<String, f64> {
    samples(text, name)
        .into_iter()
        .filter_map(|(labels, v)| Some((labels.get("event")?.clone(), v)))
        .collect()
}

/// Whether the loop admits in this mode (a paused or sold-out event
/// admits nobody on purpose).
fn admits(mode: Mode) -> bool {
    matches!(
        mode,
        Mode::Fifo | Mode::Random | Mode::Passthrough | Mode::Closed
    )
}

/// The events whose loop looks stalled at `now_ms`, with why.
pub fn stalled(stats: &[QueueStatsBody], now_ms: i64) -> Vec<String> {
    stats
        .iter()
        .filter(|s| s.queued > 0 && s.active < s.capacity && admits(s.mode))
        .filter(|s| {
            s.opens_at
                .as_deref()
                .and_then(admission::clock::parse_rfc3339_ms)
                .is_none_or(|opens| opens <= now_ms - STALL_AFTER_MS)
        })
        .filter_map(|s| {
            let last = s
                .last_admit_at
                .as_deref()
                .and_then(admission::clock::parse_rfc3339_ms);
            let since = match last {
                Some(ms) if now_ms - ms <= STALL_AFTER_MS => return None,
                Some(ms) => format!("last admission {} s ago", (now_ms - ms) / 1000),
                None => "no admission yet".into(),
            };
            Some(format!(
                "{}: {} waiting, {}/{} active, mode {}, {since}",
                s.event_id,
                s.queued,
                s.active,
                s.capacity,
                serde_json::to_value(s.mode)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ))
        })
        .collect()
}

pub async fn admission_loop(ctx: Arc<Ctx>) -> Outcome {
    let Some(base) = &ctx.settings.url else {
        return skip_no_url();
    };
    let text = match metrics(base).await {
        Ok(t) => t,
        Err(o) => return o,
    };
    let events: Vec<String> = per_event(&text, "admission_queue_length")
        .into_keys()
        .collect();
    if events.is_empty() {
        return Outcome::ok("no event on this replica's /metrics: nothing to admit");
    }
    let mut stats = Vec::new();
    let mut details = Vec::new();
    for e in &events {
        match get(&format!("{base}/api/v1/events/{e}/queue")).await {
            Ok((200, body)) => match serde_json::from_str::<QueueStatsBody>(&body) {
                Ok(s) => stats.push(s),
                Err(err) => details.push(format!("{e}: an unexpected statistics answer ({err})")),
            },
            Ok((code, _)) => details.push(format!("{e}: statistics answered {code}")),
            Err(why) => details.push(why),
        }
    }
    let stuck = stalled(&stats, admission::clock::now_ms());
    if !stuck.is_empty() {
        let ns = ctx.settings.namespace.as_deref().unwrap_or("<namespace>");
        return Outcome::fail(
            format!(
                "the admission loop is stalled for {} event{}: {}",
                stuck.len(),
                if stuck.len() == 1 { "" } else { "s" },
                stuck[0]
            ),
            format!(
                "look for `admission tick failed` in the logs (kubectl -n {ns} logs -l app.kubernetes.io/name=admission --since=5m), \
                 then restart the pods: kubectl -n {ns} rollout restart deployment"
            ),
        )
        .details(stuck.into_iter().skip(1).chain(details));
    }
    if stats.is_empty() && !details.is_empty() {
        return Outcome::warn(
            "cannot read any event's statistics".to_string(),
            format!("check that {base} routes /api/v1"),
        )
        .details(details);
    }
    Outcome::ok(format!(
        "{} event{} admitting as they should",
        stats.len(),
        if stats.len() == 1 { "" } else { "s" }
    ))
    .details(details)
}

pub async fn event_log(ctx: Arc<Ctx>) -> Outcome {
    let Some(base) = &ctx.settings.url else {
        return skip_no_url();
    };
    let text = match metrics(base).await {
        Ok(t) => t,
        Err(o) => return o,
    };
    let lengths = per_event(&text, "admission_outbox_length");
    let ages = per_event(&text, "admission_outbox_oldest_age_seconds");
    let dropped = per_event(&text, "admission_outbox_dropped_total");
    if lengths.is_empty() && ages.is_empty() {
        // No outbox yet: readiness says whether the event log is on at all.
        let state = match get(&format!("{base}/health/ready")).await {
            Ok((_, body)) => serde_json::from_str::<Health>(&body)
                .ok()
                .and_then(|h| h.dependencies)
                .map(|d| d.event_log),
            Err(_) => None,
        };
        return match state {
            Some(EventLogState::Disabled) => Outcome::skip(
                "the event log is off (the app runs without KINESIS_STREAM)",
                "set KINESIS_STREAM in the chart's values to turn the event log on",
            ),
            _ => Outcome::ok("the event log runs; no outbox on this replica yet"),
        };
    }
    let total: f64 = lengths.values().sum();
    let (oldest_event, oldest) = ages
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(e, a)| (e.clone(), *a))
        .unwrap_or_default();
    let lost: Vec<String> = dropped
        .iter()
        .filter(|(_, n)| **n > 0.0)
        .map(|(e, n)| format!("{e}: {n:.0} changes not recorded (outbox full)"))
        .collect();
    let summary = format!(
        "{} outbox{}, {total:.0} entries, oldest unshipped {oldest:.0} s{}",
        lengths.len(),
        if lengths.len() == 1 { "" } else { "es" },
        if oldest > 0.0 {
            format!(" ({oldest_event})")
        } else {
            String::new()
        }
    );
    if oldest >= OUTBOX_WARN_SECONDS * 6.0 {
        return Outcome::fail(
            format!("{summary}: the shippers are not shipping"),
            "see why Kinesis refuses the writes: cargo xtask doctor kinesis.stream irsa.chain; \
             the app's logs say `event log` with the cause",
        )
        .details(lost);
    }
    if oldest >= OUTBOX_WARN_SECONDS || !lost.is_empty() {
        return Outcome::warn(
            summary,
            "watch it: if the age keeps growing, cargo xtask doctor kinesis.stream; raise OUTBOX_MAX_ENTRIES if outboxes fill",
        )
        .details(lost);
    }
    Outcome::ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_of_the_text_format() {
        let text = "# HELP admission_queue_length Fans waiting.\n\
                    # TYPE admission_queue_length gauge\n\
                    admission_queue_length{event=\"a\\\"b\"} 12\n\
                    admission_queue_length{event=\"c\"} 0\n\
                    admission_queue_length_other 5\n\
                    admission_event_records_sent_total 3\n";
        let s = per_event(text, "admission_queue_length");
        assert_eq!(s.get("a\"b"), Some(&12.0));
        assert_eq!(s.get("c"), Some(&0.0));
        assert_eq!(s.len(), 2);
        assert_eq!(
            samples(text, "admission_event_records_sent_total")[0].1,
            3.0
        );
    }

    fn stats(
        mode: Mode,
        queued: u64,
        active: u64,
        capacity: u64,
        last: Option<i64>,
    ) -> QueueStatsBody {
        QueueStatsBody {
            event_id: "e".into(),
            mode,
            queued,
            active,
            capacity,
            admit_per_second: 100,
            admitted_total: 0,
            opens_at: None,
            shuffle_seed: None,
            last_admit_at: last.map(admission::clock::format_ms),
            message: None,
        }
    }

    #[test]
    fn a_loop_is_stalled_only_with_fans_waiting_room_and_an_admitting_mode() {
        let now = 1_800_000_000_000;
        let old = Some(now - 30_000);
        assert_eq!(stalled(&[stats(Mode::Fifo, 5, 1, 10, old)], now).len(), 1);
        assert_eq!(stalled(&[stats(Mode::Fifo, 5, 1, 10, None)], now).len(), 1);
        assert!(stalled(&[stats(Mode::Fifo, 5, 1, 10, Some(now - 2_000))], now).is_empty());
        assert!(stalled(&[stats(Mode::Fifo, 0, 1, 10, old)], now).is_empty());
        assert!(stalled(&[stats(Mode::Fifo, 5, 10, 10, old)], now).is_empty());
        assert!(stalled(&[stats(Mode::Paused, 5, 1, 10, old)], now).is_empty());
        assert!(stalled(&[stats(Mode::SoldOut, 5, 1, 10, old)], now).is_empty());
    }
}
