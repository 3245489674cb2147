//! The admissions Redis still records for a sale, to find those missing
//! from the stream.
//!
//! The sale's `tickets` hash (`<prefix>wr:{<event>}:tickets`, see
//! `app/src/queue/scripts.rs`) maps each ticket to
//! `state,seq,admitted_ms,hard_end_ms,identity`; a ticket that was ever
//! admitted has `admitted_ms`, whatever its state now. Finished tickets are
//! purged an hour after they end, so this sees the last hour's admissions
//! and every live one. Read with HSCAN (never HGETALL on a hash that may
//! hold 100,000 tickets), on standalone Redis or a cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::AsyncConnectionConfig;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Fields per HSCAN call.
const SCAN_COUNT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum TicketsError {
    #[error("--redis `{url}`: {source}")]
    Url {
        url: String,
        source: redis::RedisError,
    },
    #[error("--redis: no URL given")]
    Empty,
    #[error("Redis at {url}: {source}")]
    Redis {
        url: String,
        source: redis::RedisError,
    },
}

/// Where the sale's Redis is, as `--redis` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `redis://` or `rediss://`: one server, or one node of a cluster
    /// (found out on connecting).
    Single(String),
    /// Comma-separated nodes of a Redis Cluster.
    Cluster(Vec<String>),
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, TicketsError> {
        let urls: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        for url in &urls {
            redis::parse_redis_url(url).ok_or_else(|| TicketsError::Url {
                url: redact(url),
                source: redis::RedisError::from((
                    redis::ErrorKind::InvalidClientConfig,
                    "not a redis:// or rediss:// URL",
                )),
            })?;
        }
        match urls.len() {
            0 => Err(TicketsError::Empty),
            1 => Ok(Target::Single(urls.into_iter().next().unwrap_or_default())),
            _ => Ok(Target::Cluster(urls)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Single(url) => redact(url),
            Target::Cluster(nodes) => nodes
                .iter()
                .map(|n| redact(n))
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// The key of a sale's tickets hash.
pub fn tickets_key(prefix: &str, event: &str) -> String {
    format!("{prefix}wr:{{{event}}}:tickets")
}

/// Tickets of the sale that Redis records as admitted, with when (ms).
#[derive(Debug, Default)]
pub struct Recorded {
    pub admitted: BTreeMap<String, i64>,
    /// Tickets in the hash (admitted or not).
    pub tickets: u64,
    /// Records not in the expected shape (a format change?).
    pub unreadable: u64,
}

/// Reads the sale's tickets hash.
pub async fn recorded(
    target: &Target,
    prefix: &str,
    event: &str,
) -> Result<Recorded, TicketsError> {
    let key = tickets_key(prefix, event);
    let fail = |source| TicketsError::Redis {
        url: target.describe(),
        source,
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let cluster_nodes = match target {
        Target::Cluster(nodes) => nodes.clone(),
        Target::Single(url) => {
            let client = redis::Client::open(url.as_str()).map_err(fail)?;
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(fail)?;
            // One URL may still be a cluster (ElastiCache Serverless is).
            let info: String = redis::cmd("INFO")
                .arg("cluster")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !info.contains("cluster_enabled:1") {
                return scan(&mut conn, &key).await.map_err(fail);
            }
            vec![url.clone()]
        }
    };
    // TLS (rediss://) and credentials follow the first node.
    let builder = redis::cluster::ClusterClientBuilder::new(cluster_nodes)
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT);
    let client = builder.build().map_err(fail)?;
    let mut conn = client.get_async_connection().await.map_err(fail)?;
    scan(&mut conn, &key).await.map_err(fail)
}

/// HSCAN the whole hash: an entry present throughout is returned at least
/// once (a map makes repeats harmless).
async fn scan<C: ConnectionLike + Send>(conn: &mut C, key: &str) -> redis::RedisResult<Recorded> {
    let mut out = Recorded::default();
    let mut seen = std::collections::HashSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, fields): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
            .arg(key)
            .arg(cursor)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(conn)
            .await?;
        for (ticket, record) in fields {
            if !seen.insert(ticket.clone()) {
                continue;
            }
            out.tickets += 1;
            match admitted_ms(&record) {
                Some(Some(ms)) => {
                    out.admitted.insert(ticket, ms);
                }
                Some(None) => {}
                None => out.unreadable += 1,
            }
        }
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

/// `state,seq,admitted_ms,hard_end_ms,identity` → `Some(admitted_ms)` (None
/// when never admitted); `None` when the record is not in that shape.
fn admitted_ms(record: &str) -> Option<Option<i64>> {
    let mut fields = record.splitn(5, ',');
    let state = fields.next()?;
    let seq = fields.next()?;
    let admitted = fields.next()?;
    let _hard_end = fields.next()?;
    let _identity = fields.next()?;
    if !matches!(state, "q" | "a" | "l" | "e") || seq.parse::<u64>().is_err() {
        return None;
    }
    if admitted.is_empty() {
        return Some(None);
    }
    admitted.parse().ok().map(Some)
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_say_whether_a_ticket_was_admitted() {
        assert_eq!(
            admitted_ms("a,7,1795464000250,1795464900000,fan-1"),
            Some(Some(1_795_464_000_250))
        );
        assert_eq!(
            admitted_ms("e,7,1795464000250,1795464900000,"),
            Some(Some(1_795_464_000_250))
        );
        assert_eq!(admitted_ms("q,8,,,fan-2"), Some(None));
        assert_eq!(admitted_ms("l,9,,,id,with,commas"), Some(None));
        assert_eq!(admitted_ms("x,9,,,"), None);
        assert_eq!(admitted_ms("q,nine,,,"), None);
        assert_eq!(admitted_ms("a,7,soon,,"), None);
        assert_eq!(admitted_ms("a,7"), None);
    }

    #[test]
    fn redis_urls_one_or_many() {
        assert_eq!(
            Target::parse("redis://127.0.0.1:6379").unwrap(),
            Target::Single("redis://127.0.0.1:6379".into())
        );
        assert_eq!(
            Target::parse("rediss://a:6379, rediss://b:6379").unwrap(),
            Target::Cluster(vec!["rediss://a:6379".into(), "rediss://b:6379".into()])
        );
        assert!(Target::parse("").is_err());
        assert!(Target::parse("http://x").is_err());
    }

    #[test]
    fn keys_and_messages() {
        assert_eq!(tickets_key("dev:", "demo"), "dev:wr:{demo}:tickets");
        assert_eq!(
            redact("rediss://user:secret@host:6379"),
            "rediss://user:***@host:6379"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }
}
