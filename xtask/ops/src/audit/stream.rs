//! Reads a whole Kinesis stream once: every shard from TRIM_HORIZON, a
//! closed shard to its end and an open one to the tip, parents before
//! children after a reshard, several shards at a time.
//!
//! - Shards come from ListShards (all of them, closed ones included, with
//!   `ParentShardId` / `AdjacentParentShardId`). A shard starts once every
//!   parent still listed is read; a parent past the retention period is no
//!   longer listed and holds nothing to wait for. When every listed shard
//!   is read the stream is listed again, so shards born of a reshard during
//!   the read are read too.
//! - A closed shard is done when GetRecords returns no NextShardIterator
//!   (or, for an emulator that never says so, once its
//!   EndingSequenceNumber is read or it is empty at `MillisBehindLatest`
//!   0); an open shard when GetRecords returns no records and
//!   `MillisBehindLatest` is 0.
//! - An expired iterator (five minutes old) is replaced by one
//!   AFTER_SEQUENCE_NUMBER the last record read, so nothing is read twice
//!   or skipped. Throttling (`ProvisionedThroughputExceeded`,
//!   `LimitExceeded`, KMS throttling) and transient failures wait with
//!   exponential backoff and jitter; SDK retries are off so that this loop
//!   is the one place that decides.
//! - GetRecords on one shard is paced to at most five calls a second, the
//!   shard's read limit, shared with the app's other consumers.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::SdkConfig;
use aws_sdk_kinesis::types::{Record, ShardIteratorType};
use aws_sdk_kinesis::Client;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::aws::{self, Backoff, Failure};
use crate::progress::Progress;

/// Shards read at once.
const CONCURRENCY: usize = 8;
/// At most 5 GetRecords per second per shard.
const PACE: Duration = Duration::from_millis(200);
/// Records per GetRecords (the Kinesis maximum).
const LIMIT: i32 = 10_000;
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// Failures in a row before a call is given up (about three minutes of
/// waiting at the cap).
const MAX_ATTEMPTS: u32 = 25;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{op} on stream `{stream}`: {detail}")]
    Call {
        op: &'static str,
        stream: String,
        detail: String,
    },
    #[error(
        "{op} on shard {shard} of `{stream}` failed {attempts} times in a row; last: {detail}"
    )]
    GaveUp {
        op: &'static str,
        stream: String,
        shard: String,
        attempts: u32,
        detail: String,
    },
    #[error("a shard reader of `{stream}` stopped: {detail}")]
    Reader { stream: String, detail: String },
}

/// What the read took.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    pub shards: usize,
    /// Shards whose parent was listed (the stream was resharded).
    pub children: usize,
    pub records: u64,
    pub bytes: u64,
    pub calls: u64,
    pub expired_iterators: u64,
    pub throttled: u64,
    pub retried: u64,
}

impl Totals {
    fn add(&mut self, shard: &ShardTotals) {
        self.calls += shard.calls;
        self.expired_iterators += shard.expired_iterators;
        self.throttled += shard.throttled;
        self.retried += shard.retried;
    }
}

#[derive(Debug, Default)]
struct ShardTotals {
    records: u64,
    calls: u64,
    expired_iterators: u64,
    throttled: u64,
    retried: u64,
}

#[derive(Debug, Clone)]
struct Shard {
    id: String,
    parents: Vec<String>,
    /// EndingSequenceNumber: the shard is closed.
    ending: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Reading,
    Done,
}

/// The shards of the stream as listed so far, and how far each is.
#[derive(Debug, Default)]
struct Plan {
    shards: BTreeMap<String, (Shard, State)>,
}

impl Plan {
    /// Adds newly listed shards; returns how many were new.
    fn add(&mut self, listed: Vec<Shard>) -> usize {
        let mut new = 0;
        for shard in listed {
            if !self.shards.contains_key(&shard.id) {
                new += 1;
                self.shards
                    .insert(shard.id.clone(), (shard, State::Waiting));
            }
        }
        new
    }

    /// Waiting shards whose listed parents are all read, in id order.
    fn ready(&self) -> Vec<Shard> {
        self.shards
            .values()
            .filter(|(_, state)| *state == State::Waiting)
            .filter(|(shard, _)| {
                shard.parents.iter().all(|p| {
                    self.shards
                        .get(p)
                        .is_none_or(|(_, state)| *state == State::Done)
                })
            })
            .map(|(shard, _)| shard.clone())
            .collect()
    }

    fn set(&mut self, id: &str, state: State) {
        if let Some(entry) = self.shards.get_mut(id) {
            entry.1 = state;
        }
    }

    fn count(&self, state: State) -> usize {
        self.shards.values().filter(|(_, s)| *s == state).count()
    }

    fn children(&self) -> usize {
        self.shards
            .values()
            .filter(|(shard, _)| shard.parents.iter().any(|p| self.shards.contains_key(p)))
            .count()
    }
}

/// A reader of one stream.
pub struct StreamReader {
    client: Client,
    stream: String,
}

impl StreamReader {
    pub fn new(config: &SdkConfig, stream: &str) -> StreamReader {
        let conf = aws_sdk_kinesis::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .build();
        StreamReader {
            client: Client::from_conf(conf),
            stream: stream.to_string(),
        }
    }

    /// Reads every record once and hands its data to `sink`.
    pub async fn read(
        &self,
        mut sink: impl FnMut(&[u8]),
        progress: &mut Progress,
    ) -> Result<Totals, StreamError> {
        let mut plan = Plan::default();
        plan.add(self.list_shards().await?);
        progress.line(&format!(
            "stream `{}`: {} shards ({} open)",
            self.stream,
            plan.shards.len(),
            plan.shards
                .values()
                .filter(|(s, _)| s.ending.is_none())
                .count()
        ));
        let (tx, mut rx) = mpsc::channel::<Vec<Record>>(CONCURRENCY * 4);
        let mut readers: JoinSet<(String, Result<ShardTotals, StreamError>)> = JoinSet::new();
        let mut totals = Totals::default();
        loop {
            for shard in plan.ready().into_iter().take(CONCURRENCY - readers.len()) {
                plan.set(&shard.id, State::Reading);
                let client = self.client.clone();
                let stream = self.stream.clone();
                let tx = tx.clone();
                readers.spawn(async move {
                    let id = shard.id.clone();
                    (id, read_shard(&client, &stream, &shard, &tx).await)
                });
            }
            if readers.is_empty() {
                // Everything listed is read: shards a reshard made meanwhile?
                let new = plan.add(self.list_shards().await?);
                if new == 0 {
                    break;
                }
                progress.line(&format!(
                    "stream `{}`: {new} more shards (resharded during the read)",
                    self.stream
                ));
                continue;
            }
            // Records first: a reader's records are queued before it ends.
            tokio::select! {
                biased;
                Some(records) = rx.recv() => {
                    for r in &records {
                        totals.records += 1;
                        totals.bytes += r.data.as_ref().len() as u64;
                        sink(r.data.as_ref());
                    }
                }
                Some(joined) = readers.join_next() => {
                    let (id, result) = joined.map_err(|e| StreamError::Reader {
                        stream: self.stream.clone(),
                        detail: e.to_string(),
                    })?;
                    let shard = result?;
                    totals.add(&shard);
                    plan.set(&id, State::Done);
                }
            }
            progress.status(|| {
                format!(
                    "{} of {} shards read, {} records",
                    plan.count(State::Done),
                    plan.shards.len(),
                    totals.records
                )
            });
        }
        // Nothing is left in flight: every reader has ended.
        drop(tx);
        while let Some(records) = rx.recv().await {
            for r in &records {
                totals.records += 1;
                totals.bytes += r.data.as_ref().len() as u64;
                sink(r.data.as_ref());
            }
        }
        if let Some(waiting) = plan
            .shards
            .values()
            .find(|(_, state)| *state != State::Done)
        {
            return Err(StreamError::Reader {
                stream: self.stream.clone(),
                detail: format!(
                    "shard {} was never read (its parents: {:?})",
                    waiting.0.id, waiting.0.parents
                ),
            });
        }
        totals.shards = plan.shards.len();
        totals.children = plan.children();
        Ok(totals)
    }

    /// Every shard of the stream, closed ones included.
    async fn list_shards(&self) -> Result<Vec<Shard>, StreamError> {
        let mut shards = Vec::new();
        let mut next: Option<String> = None;
        let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
        loop {
            // With a NextToken, ListShards refuses the stream name.
            let call = match &next {
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            match call.send().await {
                Ok(out) => {
                    backoff.reset();
                    shards.extend(out.shards().iter().map(|s| {
                        Shard {
                            id: s.shard_id().to_string(),
                            parents: s
                                .parent_shard_id()
                                .into_iter()
                                .chain(s.adjacent_parent_shard_id())
                                .map(str::to_string)
                                .collect(),
                            ending: s
                                .sequence_number_range()
                                .and_then(|r| r.ending_sequence_number())
                                .map(str::to_string),
                        }
                    }));
                    match out.next_token() {
                        Some(token) => next = Some(token.to_string()),
                        None => return Ok(shards),
                    }
                }
                Err(e) => match aws::classify(&e) {
                    Failure::Throttled | Failure::Transient
                        if backoff.attempts() < MAX_ATTEMPTS =>
                    {
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                    _ => {
                        return Err(StreamError::Call {
                            op: "ListShards",
                            stream: self.stream.clone(),
                            detail: aws::explain(&e),
                        })
                    }
                },
            }
        }
    }
}

/// Reads one shard to its end or the tip, sending its records to `tx`.
async fn read_shard(
    client: &Client,
    stream: &str,
    shard: &Shard,
    tx: &mpsc::Sender<Vec<Record>>,
) -> Result<ShardTotals, StreamError> {
    let mut totals = ShardTotals::default();
    let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
    let mut last_read: Option<String> = None;
    let Some(mut iterator) = shard_iterator(client, stream, shard, None).await? else {
        return Ok(totals);
    };
    let mut last_call: Option<Instant> = None;
    loop {
        if let Some(at) = last_call {
            tokio::time::sleep_until(at + PACE).await;
        }
        last_call = Some(Instant::now());
        totals.calls += 1;
        let result = client
            .get_records()
            .shard_iterator(&iterator)
            .limit(LIMIT)
            .send()
            .await;
        match result {
            Ok(out) => {
                backoff.reset();
                let empty = out.records.is_empty();
                if let Some(last) = out.records.last() {
                    last_read = Some(last.sequence_number.clone());
                }
                totals.records += out.records.len() as u64;
                if !empty && tx.send(out.records).await.is_err() {
                    // The audit stopped listening: it is failing already.
                    return Ok(totals);
                }
                let Some(next) = out.next_shard_iterator else {
                    return Ok(totals);
                };
                let read_to_end = match (&shard.ending, &last_read) {
                    (Some(end), Some(last)) => sequence_at_least(last, end),
                    _ => false,
                };
                if read_to_end || (empty && out.millis_behind_latest == Some(0)) {
                    return Ok(totals);
                }
                iterator = next;
            }
            Err(e) => match aws::classify(&e) {
                Failure::ExpiredIterator => {
                    totals.expired_iterators += 1;
                    match shard_iterator(client, stream, shard, last_read.as_deref()).await? {
                        Some(fresh) => iterator = fresh,
                        None => return Ok(totals),
                    }
                }
                failure @ (Failure::Throttled | Failure::Transient) => {
                    if failure == Failure::Throttled {
                        totals.throttled += 1;
                    } else {
                        totals.retried += 1;
                    }
                    if backoff.attempts() >= MAX_ATTEMPTS {
                        return Err(StreamError::GaveUp {
                            op: "GetRecords",
                            stream: stream.to_string(),
                            shard: shard.id.clone(),
                            attempts: backoff.attempts(),
                            detail: aws::explain(&e),
                        });
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Failure::Fatal => {
                    return Err(StreamError::Call {
                        op: "GetRecords",
                        stream: stream.to_string(),
                        detail: format!("shard {}: {}", shard.id, aws::explain(&e)),
                    })
                }
            },
        }
    }
}

/// An iterator at the shard's start (TRIM_HORIZON) or just after
/// `after`. `None` when a closed shard is no longer there (trimmed).
async fn shard_iterator(
    client: &Client,
    stream: &str,
    shard: &Shard,
    after: Option<&str>,
) -> Result<Option<String>, StreamError> {
    let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
    loop {
        let call = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard.id);
        let call = match after {
            Some(seq) => call
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            None => call.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let err = match call.send().await {
            Ok(out) => return Ok(out.shard_iterator().map(str::to_string)),
            Err(e) => e,
        };
        use aws_sdk_kinesis::error::ProvideErrorMetadata;
        let gone = err.code() == Some("ResourceNotFoundException") && shard.ending.is_some();
        match aws::classify(&err) {
            _ if gone => return Ok(None),
            Failure::Throttled | Failure::Transient if backoff.attempts() < MAX_ATTEMPTS => {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Failure::Throttled | Failure::Transient => {
                return Err(StreamError::GaveUp {
                    op: "GetShardIterator",
                    stream: stream.to_string(),
                    shard: shard.id.clone(),
                    attempts: backoff.attempts(),
                    detail: aws::explain(&err),
                })
            }
            _ => {
                return Err(StreamError::Call {
                    op: "GetShardIterator",
                    stream: stream.to_string(),
                    detail: format!("shard {}: {}", shard.id, aws::explain(&err)),
                })
            }
        }
    }
}

/// Kinesis sequence numbers are decimal integers of up to 128 bits, as
/// strings: compare by value.
fn sequence_at_least(a: &str, b: &str) -> bool {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    (a.len(), a) >= (b.len(), b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parents: &[&str], closed: bool) -> Shard {
        Shard {
            id: id.into(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
            ending: closed.then(|| "99".to_string()),
        }
    }

    fn ids(shards: Vec<Shard>) -> Vec<String> {
        shards.into_iter().map(|s| s.id).collect()
    }

    #[test]
    fn children_wait_for_every_listed_parent() {
        let mut plan = Plan::default();
        // 0 split into 2 and 3; 1 and 3 merged into 4; 5's parent is gone.
        plan.add(vec![
            shard("0", &[], true),
            shard("1", &[], true),
            shard("2", &["0"], false),
            shard("3", &["0"], true),
            shard("4", &["1", "3"], false),
            shard("5", &["trimmed"], false),
        ]);
        assert_eq!(ids(plan.ready()), ["0", "1", "5"]);
        for id in ["0", "1", "5"] {
            plan.set(id, State::Reading);
        }
        assert!(plan.ready().is_empty());
        plan.set("0", State::Done);
        assert_eq!(ids(plan.ready()), ["2", "3"]);
        plan.set("3", State::Done);
        assert_eq!(ids(plan.ready()), ["2"], "4 still waits for 1");
        plan.set("1", State::Done);
        assert_eq!(ids(plan.ready()), ["2", "4"]);
        assert_eq!(plan.children(), 3);
    }

    #[test]
    fn a_relisting_adds_only_new_shards() {
        let mut plan = Plan::default();
        assert_eq!(plan.add(vec![shard("0", &[], false)]), 1);
        plan.set("0", State::Done);
        let again = vec![shard("0", &[], true), shard("1", &["0"], false)];
        assert_eq!(plan.add(again), 1);
        assert_eq!(plan.count(State::Done), 1);
        assert_eq!(ids(plan.ready()), ["1"]);
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_at_least("10", "9"));
        assert!(!sequence_at_least("9", "10"));
        assert!(sequence_at_least(
            "49590338271490256608559692538361571095921575989136588898",
            "49590338271490256608559692538361571095921575989136588898"
        ));
        assert!(!sequence_at_least(
            "49590338271490256608559692538361571095921575989136588897",
            "49590338271490256608559692538361571095921575989136588898"
        ));
        assert!(sequence_at_least("007", "7"));
    }
}
