//! `redis.cluster`: TLS, cluster mode, the app's keys of one event in one
//! slot, and the servers' own count of CROSSSLOT errors (`INFO
//! errorstats`), which is how a client that splits one command's keys over
//! two slots is caught in production (the seeds' third incident).

use std::sync::Arc;

use admission::queue::scripts::EventKeys;
use admission::queue::EventId;
use redis::aio::MultiplexedConnection;
use redis::{Client, TlsCertificates};

use super::{Ctx, Outcome};

async fn connect(url: &str, ca: Option<&[u8]>) -> Result<MultiplexedConnection, String> {
    let client = match ca {
        Some(pem) if url.starts_with("rediss://") => Client::build_with_tls(
            url,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        ),
        _ => Client::open(url),
    }
    .map_err(|e| format!("{}: {e}", admission::config::redact_url(url)))?;
    client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("{}: {e}", admission::config::redact_url(url)))
}

async fn text(conn: &mut MultiplexedConnection, cmd: &mut redis::Cmd) -> Result<String, String> {
    cmd.query_async::<String>(conn)
        .await
        .map_err(|e| e.to_string())
}

/// `field:value` lines of an INFO section.
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(field)?.strip_prefix(':'))
}

/// The CROSSSLOT count of `INFO errorstats` (0 when none was counted).
pub fn crossslot_count(errorstats: &str) -> u64 {
    info_field(errorstats, "errorstat_CROSSSLOT")
        .and_then(|v| v.strip_prefix("count="))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The masters' addresses (`host:port`) from `CLUSTER NODES`.
fn masters(nodes: &str) -> Vec<String> {
    nodes
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let _id = parts.next()?;
            let addr = parts.next()?;
            let flags = parts.next()?;
            let up =
                flags.contains("master") && !flags.contains("fail") && !flags.contains("noaddr");
            up.then(|| addr.split('@').next().unwrap_or(addr).to_string())
        })
        .collect()
}

pub async fn cluster(ctx: Arc<Ctx>) -> Outcome {
    let s = &ctx.settings;
    if s.redis_urls.is_empty() {
        return Outcome::skip(
            "no Redis given",
            "--redis-url URL (or REDIS_URL, or REDIS_CLUSTER_NODES)",
        );
    }
    let ca = match &s.redis_ca_file {
        Some(path) => match std::fs::read(path) {
            Ok(pem) => Some(pem),
            Err(e) => {
                return Outcome::fail(
                    format!("--redis-ca-file {}: {e}", path.display()),
                    "give a readable PEM file, or drop the flag to trust the system's roots",
                )
            }
        },
        None => None,
    };
    let seed = &s.redis_urls[0];
    let mut conn = match connect(seed, ca.as_deref()).await {
        Ok(c) => c,
        Err(why) => {
            return Outcome::fail(
                format!("cannot reach Redis: {why}"),
                "check the URL (rediss:// for TLS) and the cache's security group: cargo xtask doctor network.security-groups",
            )
        }
    };
    let mut warnings: Vec<(String, String)> = Vec::new();
    let tls = s.redis_urls.iter().all(|u| u.starts_with("rediss://"));
    if !tls {
        warnings.push((
            "not TLS".into(),
            "ElastiCache Serverless takes only TLS: use rediss:// URLs".into(),
        ));
    }
    let info = text(&mut conn, redis::cmd("INFO").arg("cluster"))
        .await
        .unwrap_or_default();
    let cluster_mode = info_field(&info, "cluster_enabled") == Some("1");
    let mut nodes = vec![seed.clone()];
    let mut details = Vec::new();
    if cluster_mode {
        let state = text(&mut conn, redis::cmd("CLUSTER").arg("INFO"))
            .await
            .unwrap_or_default();
        if info_field(&state, "cluster_state") != Some("ok") {
            return Outcome::fail(
                format!(
                    "cluster_state is {}: some slots are not served",
                    info_field(&state, "cluster_state").unwrap_or("unknown")
                ),
                "see which: redis-cli --cluster check <node>; on ElastiCache open a support case",
            );
        }
        let listed = text(&mut conn, redis::cmd("CLUSTER").arg("NODES"))
            .await
            .unwrap_or_default();
        let scheme = if seed.starts_with("rediss://") {
            "rediss"
        } else {
            "redis"
        };
        let auth = seed
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .map(|(a, _)| format!("{a}@"))
            .unwrap_or_default();
        let found: Vec<String> = masters(&listed)
            .into_iter()
            .map(|addr| format!("{scheme}://{auth}{addr}"))
            .collect();
        if !found.is_empty() {
            nodes = found;
        }
    } else {
        warnings.push((
            "standalone, not cluster mode".into(),
            "production runs cluster mode (ElastiCache Serverless): run the app against a cluster too (cargo xtask dev --cluster)".into(),
        ));
    }

    // Every script gets one event's keys (and the source counter): they
    // must hash to one slot, or every call fails with CROSSSLOT.
    let mut key_problem = None;
    if cluster_mode {
        let event = EventId::parse("doctor-check").expect("a valid event id");
        let keys = EventKeys::new("", &event).with_source("203.0.113.7");
        let mut slots = std::collections::BTreeMap::new();
        for k in &keys {
            match redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(k)
                .query_async::<i64>(&mut conn)
                .await
            {
                Ok(slot) => {
                    slots.entry(slot).or_insert_with(Vec::new).push(k.clone());
                }
                Err(e) => details.push(format!("CLUSTER KEYSLOT {k}: {e}")),
            }
        }
        if slots.len() > 1 {
            key_problem = Some(format!(
                "one event's keys fall in {} slots: {:?}",
                slots.len(),
                slots
            ));
        }
    }

    let mut crossslot = 0;
    let mut read = 0;
    for node in &nodes {
        let mut c = match connect(node, ca.as_deref()).await {
            Ok(c) => c,
            Err(why) => {
                details.push(format!("errorstats not read: {why}"));
                continue;
            }
        };
        match text(&mut c, redis::cmd("INFO").arg("errorstats")).await {
            Ok(stats) => {
                read += 1;
                crossslot += crossslot_count(&stats);
            }
            Err(e) => details.push(format!("INFO errorstats: {e}")),
        }
    }
    let shape = format!(
        "{}{}, {} master{}",
        if cluster_mode {
            "cluster mode"
        } else {
            "standalone"
        },
        if tls { ", TLS" } else { "" },
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" }
    );
    if let Some(problem) = key_problem {
        return Outcome::fail(
            format!("{shape}: {problem}"),
            "keep every key of an event under its hash tag {event} (app/src/queue/scripts.rs)",
        )
        .details(details);
    }
    if crossslot > 0 {
        return Outcome::fail(
            format!(
                "{shape}: the servers refused {crossslot} command{} with CROSSSLOT (keys of two slots in one command or script)",
                if crossslot == 1 { "" } else { "s" }
            ),
            "find the caller in the app's logs (`CROSSSLOT`), put the keys of each command under one hash tag {...}, \
             deploy, then reset the count: redis-cli -c CONFIG RESETSTAT on each node (ElastiCache: it resets with the node)",
        )
        .details(details);
    }
    if read == 0 {
        return Outcome::warn(
            format!("{shape}: could not read the CROSSSLOT count"),
            "give every node in --redis-url (comma-separated), reachable from here",
        )
        .details(details);
    }
    if !warnings.is_empty() {
        let (whats, fixes): (Vec<String>, Vec<String>) = warnings.into_iter().unzip();
        return Outcome::warn(format!("{shape}: {}", whats.join("; ")), fixes.join("; "))
            .details(details);
    }
    Outcome::ok(format!(
        "{shape}, one event's keys in one slot, no CROSSSLOT errors"
    ))
    .details(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_crossslot_count() {
        let stats = "# Errorstats\r\nerrorstat_ERR:count=2\r\nerrorstat_CROSSSLOT:count=7\r\n";
        assert_eq!(crossslot_count(stats), 7);
        assert_eq!(
            crossslot_count("# Errorstats\r\nerrorstat_ERR:count=2\r\n"),
            0
        );
    }

    #[test]
    fn finds_the_masters() {
        let nodes = "a 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460\n\
                     b 127.0.0.1:30002@40002 master - 0 0 2 connected 5461-10922\n\
                     c 127.0.0.1:30003@40003 slave a 0 0 1 connected\n\
                     d 127.0.0.1:30004@40004 master,fail - 0 0 3 connected\n";
        assert_eq!(masters(nodes), ["127.0.0.1:30001", "127.0.0.1:30002"]);
    }
}
