//! The Kinesis producer. Events are packed many to a record (a JSON array),
//! so a 100,000-fan burst is a few thousand records, which a cold on-demand
//! stream takes (about 4,000 records/s; ../shared/PLATFORM-NOTES.md).
//! Records go in PutRecords calls of at most 500 records and 5 MiB; their
//! partition keys are hashed from their content, so records spread over
//! every shard (never one key per sale, which would put a sale on one
//! shard). A call can succeed in part: only the failed records are sent
//! again, with exponential backoff and jitter.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use super::Event;
use crate::metrics::Metrics;

/// Events packed into one record at most.
pub const MAX_EVENTS_PER_RECORD: usize = 200;
/// A record's size at most (Kinesis allows 1 MiB; smaller records spread
/// a burst over more shards).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// One PutRecords call at most.
pub const MAX_RECORDS_PER_CALL: usize = 500;
pub const MAX_CALL_BYTES: usize = 5 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("Kinesis took {sent} of {total} records before the deadline: {last}")]
    Incomplete {
        sent: usize,
        total: usize,
        last: String,
    },
    #[error("could not encode an event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Packs events into records: JSON arrays of at most
/// [`MAX_EVENTS_PER_RECORD`] events and [`MAX_RECORD_BYTES`] bytes (an
/// event larger than that goes alone).
pub fn pack(events: &[Event]) -> Result<Vec<Vec<u8>>, serde_json::Error> {
    let mut records = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut count = 0;
    for event in events {
        let one = serde_json::to_vec(event)?;
        let full = count == MAX_EVENTS_PER_RECORD
            || (count > 0 && current.len() + 1 + one.len() + 1 > MAX_RECORD_BYTES);
        if full {
            current.push(b']');
            records.push(std::mem::take(&mut current));
            count = 0;
        }
        current.push(if count == 0 { b'[' } else { b',' });
        current.extend_from_slice(&one);
        count += 1;
    }
    if count > 0 {
        current.push(b']');
        records.push(current);
    }
    Ok(records)
}

/// A record's partition key: a hash of its content, so records land on
/// every shard.
pub fn partition_key(record: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, record);
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Splits records into calls of at most 500 records and 5 MiB.
fn calls(records: &[(Vec<u8>, String)]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, (data, key)) in records.iter().enumerate() {
        let size = data.len() + key.len();
        if i > start && (i - start == MAX_RECORDS_PER_CALL || bytes + size > MAX_CALL_BYTES) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < records.len() {
        out.push(start..records.len());
    }
    out
}

/// The wait before the `attempt`-th retry: exponential from 50 ms up to
/// 2 s, with full jitter.
fn backoff(attempt: u32) -> Duration {
    let cap = 50u64.saturating_mul(1 << attempt.min(6)).min(2_000);
    Duration::from_millis(rand::random::<u64>() % (cap + 1))
}

/// The SDK's HTTPS client over rustls with ring (the SDK's default would
/// build aws-lc, slow to compile).
pub fn http_client() -> aws_sdk_kinesis::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// Puts events to one stream.
pub struct Producer {
    client: aws_sdk_kinesis::Client,
    stream: String,
    metrics: Metrics,
}

impl Producer {
    /// A client from the standard AWS chain (AWS_REGION, credentials or the
    /// IRSA web identity, AWS_ENDPOINT_URL), over rustls with ring.
    pub async fn connect(stream: &str, metrics: Metrics) -> Producer {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http_client())
            .load()
            .await;
        Producer {
            client: aws_sdk_kinesis::Client::new(&config),
            stream: stream.to_string(),
            metrics,
        }
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Puts every event, retrying what fails until `deadline` has passed.
    /// `Ok` once Kinesis has taken all of them; on `Err` the caller keeps
    /// them (in its outbox) and sends them again later.
    pub async fn put(&self, events: &[Event], deadline: Duration) -> Result<(), PutError> {
        let started = Instant::now();
        let mut pending: Vec<(Vec<u8>, String)> = pack(events)?
            .into_iter()
            .map(|r| {
                let key = partition_key(&r);
                (r, key)
            })
            .collect();
        let total = pending.len();
        let mut sent = 0;
        let mut attempt = 0;
        loop {
            let mut failed = Vec::new();
            let mut last = String::new();
            for range in calls(&pending) {
                let batch = &pending[range];
                let mut request = self.client.put_records().stream_name(&self.stream);
                for (data, key) in batch {
                    let entry = PutRecordsRequestEntry::builder()
                        .data(Blob::new(data.clone()))
                        .partition_key(key)
                        .build();
                    match entry {
                        Ok(e) => request = request.records(e),
                        Err(e) => last = e.to_string(),
                    }
                }
                match request.send().await {
                    Ok(out) => {
                        let results = out.records();
                        for (i, record) in batch.iter().enumerate() {
                            match results.get(i).and_then(|r| r.error_code()) {
                                None if i < results.len() => sent += 1,
                                code => {
                                    last = code.unwrap_or("no result for the record").to_string();
                                    failed.push(record.clone());
                                }
                            }
                        }
                    }
                    // The whole call failed (throttled, a 5xx, the network):
                    // every record of it goes again.
                    Err(e) => {
                        last = aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string();
                        failed.extend_from_slice(batch);
                    }
                }
            }
            self.metrics
                .event_records_sent(pending.len() - failed.len());
            if failed.is_empty() {
                return Ok(());
            }
            if started.elapsed() >= deadline {
                self.metrics.event_records_failed(failed.len());
                return Err(PutError::Incomplete { sent, total, last });
            }
            self.metrics.event_records_retried(failed.len());
            attempt += 1;
            tokio::time::sleep(backoff(attempt)).await;
            pending = failed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize, padding: usize) -> Event {
        let mut fields = serde_json::Map::new();
        fields.insert("pad".into(), serde_json::json!("x".repeat(padding)));
        Event {
            v: 1,
            id: format!("q:{n}"),
            kind: "joined".into(),
            event_id: "ev".into(),
            at: "2026-12-02T00:00:00Z".into(),
            replica: "r".into(),
            ticket: Some("t".repeat(22)),
            seq: Some(n as u64),
            client_hash: Some("h".repeat(32)),
            fields,
        }
    }

    #[test]
    fn events_pack_into_json_arrays_within_the_limits() {
        let events: Vec<Event> = (0..1000).map(|n| event(n, 0)).collect();
        let records = pack(&events).unwrap();
        assert_eq!(records.len(), 5);
        let mut back = Vec::new();
        for r in &records {
            assert!(r.len() <= MAX_RECORD_BYTES);
            let list: Vec<serde_json::Value> = serde_json::from_slice(r).unwrap();
            assert!(list.len() <= MAX_EVENTS_PER_RECORD);
            back.extend(list);
        }
        assert_eq!(back.len(), 1000);
        assert_eq!(back[999]["id"], "q:999");
        // Large events make smaller records, each still valid JSON.
        let big: Vec<Event> = (0..10).map(|n| event(n, 20_000)).collect();
        let records = pack(&big).unwrap();
        assert!(records.len() >= 4, "{}", records.len());
        for r in &records {
            assert!(r.len() <= MAX_RECORD_BYTES);
            serde_json::from_slice::<Vec<serde_json::Value>>(r).unwrap();
        }
        assert!(pack(&[]).unwrap().is_empty());
    }

    #[test]
    fn calls_hold_at_most_500_records_and_5_mib() {
        let small: Vec<(Vec<u8>, String)> = (0..1200).map(|_| (vec![0; 10], "k".into())).collect();
        let sizes: Vec<usize> = calls(&small).iter().map(|r| r.len()).collect();
        assert_eq!(sizes, vec![500, 500, 200]);
        let large: Vec<(Vec<u8>, String)> =
            (0..100).map(|_| (vec![0; 1 << 20], "k".into())).collect();
        for range in calls(&large) {
            let bytes: usize = large[range].iter().map(|(d, k)| d.len() + k.len()).sum();
            assert!(bytes <= MAX_CALL_BYTES);
        }
    }

    #[test]
    fn partition_keys_follow_content_and_backoff_stays_bounded() {
        assert_ne!(partition_key(b"[1]"), partition_key(b"[2]"));
        assert_eq!(partition_key(b"[1]"), partition_key(b"[1]"));
        assert_eq!(partition_key(b"x").len(), 32);
        for attempt in 0..20 {
            assert!(backoff(attempt) <= Duration::from_secs(2));
        }
    }
}
