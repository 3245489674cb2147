//! This replica's WebSocket subscribers, told of their tickets' changes two
//! ways:
//!
//! - Push: for every event with a socket here, one blocking read of the
//!   event's outbox stream (on a connection of its own) follows every change
//!   any replica makes, as it is made. An admission of a ticket with a
//!   socket here is handed to the socket at once (its time and session end
//!   are in the entry); a sold-out switch, a reopening, a configuration
//!   change (a new notice), or the end of a watched ticket trigger an
//!   immediate read of the tickets concerned. One read per event, whatever
//!   the number of sockets, and whichever replica made the change.
//! - Poll: once a second, one `watch` script call per event (per few hundred
//!   sockets) reads the state of every ticket with an open socket here,
//!   counts each socket as presence, and hands each socket its ticket's
//!   state: positions and waits, which change with every admission and
//!   would flood the outbox, and everything else again should a push have
//!   been missed (Redis away, a socket behind).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::clock::now_ms;
use crate::events::outbox::{read_reply, Entry};
use crate::metrics::Metrics;
use crate::queue::{EventId, Queue, QueueError, Ticket, TicketState, TicketStatus};
use crate::store::{Dedicated, StoreError};

/// Time between two reads of all watched tickets.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1000);
/// How long one blocking read of an outbox waits for a change.
const TAIL_BLOCK: Duration = Duration::from_millis(1000);
/// Outbox entries read at once.
const TAIL_BATCH: usize = 1000;
/// The wait after a failed read of an outbox.
const TAIL_RETRY: Duration = Duration::from_millis(500);
/// Tickets per `watch` script call.
const WATCH_BATCH: usize = 250;

/// What a socket is told each poll.
#[derive(Debug, Clone)]
pub struct Update {
    pub status: Result<TicketStatus, UpdateError>,
    pub mode: String,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateError {
    /// The ticket is gone (its record was purged) or the event was removed:
    /// the only errors a fan is told about. A failed read is never one.
    NotFound,
}

type Subscribers = HashMap<EventId, HashMap<Ticket, Vec<(u64, mpsc::Sender<Update>)>>>;

#[derive(Default)]
pub struct Hub {
    subscribers: Mutex<Subscribers>,
    /// The events whose outbox this replica follows.
    tails: Mutex<HashMap<EventId, tokio::task::JoinHandle<()>>>,
    next_id: AtomicU64,
    /// Sockets open or being opened on this replica.
    sockets: AtomicUsize,
}

/// A place for one socket on this replica, taken before the upgrade and
/// given back when dropped (also when the upgrade never happens).
pub struct SocketSlot {
    hub: Arc<Hub>,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.hub.sockets.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Unsubscribes when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    event: EventId,
    ticket: Ticket,
    id: u64,
    pub updates: mpsc::Receiver<Update>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Ok(mut subs) = self.hub.subscribers.lock() {
            if let Some(tickets) = subs.get_mut(&self.event) {
                if let Some(list) = tickets.get_mut(&self.ticket) {
                    list.retain(|(id, _)| *id != self.id);
                    if list.is_empty() {
                        tickets.remove(&self.ticket);
                    }
                }
                if tickets.is_empty() {
                    subs.remove(&self.event);
                }
            }
        }
    }
}

impl Hub {
    /// Takes a socket slot, unless `max` sockets are open already.
    pub fn try_reserve(self: &Arc<Self>, max: usize) -> Option<SocketSlot> {
        let taken = self
            .sockets
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        taken.ok().map(|_| SocketSlot { hub: self.clone() })
    }

    /// Subscribes a socket to its ticket's updates. A ticket keeps at most
    /// `per_ticket` sockets: the oldest is dropped from the hub (its
    /// subscription's channel closes, and the socket is closed as replaced).
    pub fn subscribe(
        self: &Arc<Self>,
        event: &EventId,
        ticket: &Ticket,
        per_ticket: usize,
    ) -> Subscription {
        let (tx, rx) = mpsc::channel(4);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut subs) = self.subscribers.lock() {
            let list = subs
                .entry(event.clone())
                .or_default()
                .entry(ticket.clone())
                .or_default();
            list.push((id, tx));
            if list.len() > per_ticket.max(1) {
                let excess = list.len() - per_ticket.max(1);
                list.drain(..excess);
            }
        }
        Subscription {
            hub: self.clone(),
            event: event.clone(),
            ticket: ticket.clone(),
            id,
            updates: rx,
        }
    }

    pub fn socket_count(&self) -> usize {
        self.subscribers
            .lock()
            .map(|s| s.values().flat_map(|t| t.values()).map(Vec::len).sum())
            .unwrap_or(0)
    }

    fn snapshot(&self) -> Vec<(EventId, Vec<Ticket>)> {
        let Ok(subs) = self.subscribers.lock() else {
            return Vec::new();
        };
        subs.iter()
            .map(|(ev, tickets)| (ev.clone(), tickets.keys().cloned().collect()))
            .collect()
    }

    fn deliver(&self, event: &EventId, ticket: &Ticket, update: Update) {
        let Ok(subs) = self.subscribers.lock() else {
            return;
        };
        if let Some(list) = subs.get(event).and_then(|t| t.get(ticket)) {
            for (_, tx) in list {
                // A socket that is behind skips this update; the next one
                // carries the whole state anyway.
                let _ = tx.try_send(update.clone());
            }
        }
    }

    /// Polls (and follows the outboxes of the watched events) until
    /// shutdown.
    pub async fn run(
        self: Arc<Self>,
        queue: Arc<Queue>,
        metrics: Metrics,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut interval = tokio::time::interval(POLL_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut follow = tokio::time::interval(Duration::from_millis(50));
        follow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                // A socket of a new event starts its tail within 50 ms.
                _ = follow.tick() => {
                    self.follow(&queue, &metrics);
                    continue;
                }
                _ = shutdown.changed() => break,
            }
            for (event, tickets) in self.snapshot() {
                for chunk in tickets.chunks(WATCH_BATCH) {
                    self.poll(&queue, &metrics, &event, chunk).await;
                }
            }
        }
        if let Ok(mut tails) = self.tails.lock() {
            for (_, t) in tails.drain() {
                t.abort();
            }
        }
    }

    /// Starts a tail for every watched event without one (a tail ends by
    /// itself once its event has no socket here).
    fn follow(self: &Arc<Self>, queue: &Arc<Queue>, metrics: &Metrics) {
        let events: Vec<EventId> = match self.subscribers.lock() {
            Ok(subs) => subs.keys().cloned().collect(),
            Err(_) => return,
        };
        let Ok(mut tails) = self.tails.lock() else {
            return;
        };
        tails.retain(|_, t| !t.is_finished());
        for event in events {
            if let std::collections::hash_map::Entry::Vacant(slot) = tails.entry(event.clone()) {
                slot.insert(tokio::spawn(self.clone().tail(
                    queue.clone(),
                    metrics.clone(),
                    event,
                )));
            }
        }
    }

    fn watches(&self, event: &EventId) -> bool {
        self.subscribers
            .lock()
            .map(|s| s.contains_key(event))
            .unwrap_or(false)
    }

    fn watched(&self, event: &EventId, ticket: &Ticket) -> bool {
        self.subscribers
            .lock()
            .map(|s| s.get(event).is_some_and(|t| t.contains_key(ticket)))
            .unwrap_or(false)
    }

    /// Follows one event's outbox while it has sockets here.
    async fn tail(self: Arc<Self>, queue: Arc<Queue>, metrics: Metrics, event: EventId) {
        let outbox = queue.keys(&event).outbox().to_string();
        let mut conn = match queue.store().dedicated(TAIL_BLOCK) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(event = %event, error = %e, "cannot open a connection to follow the outbox");
                tokio::time::sleep(TAIL_RETRY).await;
                return;
            }
        };
        // From the changes after now: what came before is in the sockets'
        // first status read.
        let mut last: Option<String> = None;
        while self.watches(&event) {
            if last.is_none() {
                match tip(&mut conn, &outbox).await {
                    Ok(id) => last = Some(id),
                    Err(e) => {
                        tracing::debug!(event = %event, error = %e, "cannot read the outbox's tip");
                        tokio::time::sleep(TAIL_RETRY).await;
                        continue;
                    }
                }
            }
            let from = last.clone().unwrap_or_else(|| "0-0".into());
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT")
                .arg(TAIL_BATCH)
                .arg("BLOCK")
                .arg(TAIL_BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&outbox)
                .arg(&from);
            let entries = match conn.query("XREAD", &cmd).await.and_then(read_reply) {
                Ok(entries) => entries,
                Err(e) => {
                    // The poll still tells every socket its state.
                    metrics.background_error("websocket_push");
                    tracing::debug!(event = %event, error = %e, "cannot follow the outbox");
                    tokio::time::sleep(TAIL_RETRY).await;
                    continue;
                }
            };
            if let Some(e) = entries.last() {
                last = Some(e.id.clone());
            }
            self.apply(&queue, &metrics, &event, &entries).await;
        }
    }

    /// Hands the changes of `entries` to the sockets concerned.
    async fn apply(&self, queue: &Queue, metrics: &Metrics, event: &EventId, entries: &[Entry]) {
        let mut whole_event = false;
        let mut reread: Vec<Ticket> = Vec::new();
        for entry in entries {
            match entry.kind() {
                "admitted" => {
                    let Some(ticket) = entry.get("tk").and_then(Ticket::parse) else {
                        continue;
                    };
                    if !self.watched(event, &ticket) {
                        continue;
                    }
                    let (Some(at), Some(end)) = (
                        entry.get("at").and_then(|v| v.parse::<i64>().ok()),
                        entry.get("h").and_then(|v| v.parse::<i64>().ok()),
                    ) else {
                        reread.push(ticket);
                        continue;
                    };
                    let status = TicketStatus {
                        ticket: ticket.clone(),
                        state: TicketState::Admitted {
                            admitted_ms: at,
                            expires_ms: end,
                        },
                        message: None,
                    };
                    self.deliver(
                        event,
                        &ticket,
                        Update {
                            status: Ok(status),
                            mode: String::new(),
                            message: None,
                        },
                    );
                    metrics.observe_push((now_ms() - at) as f64 / 1000.0);
                }
                "expired" | "left" => {
                    if let Some(ticket) = entry.get("tk").and_then(Ticket::parse) {
                        if self.watched(event, &ticket) {
                            reread.push(ticket);
                        }
                    }
                }
                "sold_out" | "reopened" | "config_changed" => whole_event = true,
                _ => {}
            }
        }
        if whole_event {
            let tickets = self
                .snapshot()
                .into_iter()
                .find(|(e, _)| e == event)
                .map(|(_, t)| t)
                .unwrap_or_default();
            for chunk in tickets.chunks(WATCH_BATCH) {
                self.poll(queue, metrics, event, chunk).await;
            }
        } else if !reread.is_empty() {
            reread.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            reread.dedup();
            for chunk in reread.chunks(WATCH_BATCH) {
                self.poll(queue, metrics, event, chunk).await;
            }
        }
    }

    async fn poll(&self, queue: &Queue, metrics: &Metrics, event: &EventId, tickets: &[Ticket]) {
        match queue.watch(event, tickets).await {
            Ok((mode, message, statuses)) => {
                for (ticket, status) in tickets.iter().zip(statuses) {
                    let status = match status {
                        Ok(s) => Ok(s),
                        Err(QueueError::TicketNotFound) => Err(UpdateError::NotFound),
                        // A reply this replica could not read says nothing
                        // about the fan's place: tell them nothing this time.
                        Err(e) => {
                            metrics.background_error("websocket_poll");
                            tracing::warn!(event = %event, ticket = ticket.redacted(), error = %e, "could not read a watched ticket");
                            continue;
                        }
                    };
                    let update = Update {
                        status,
                        mode: mode.clone(),
                        message: message.clone(),
                    };
                    self.deliver(event, ticket, update);
                }
            }
            Err(QueueError::EventNotFound) => {
                for ticket in tickets {
                    let update = Update {
                        status: Err(UpdateError::NotFound),
                        mode: String::new(),
                        message: None,
                    };
                    self.deliver(event, ticket, update);
                }
            }
            // Redis is away: sockets stay open and hear nothing until it is back.
            Err(e) => {
                metrics.background_error("websocket_poll");
                tracing::warn!(event = %event, error = %e, "websocket poll failed");
            }
        }
    }
}

/// The id of the outbox's last entry (`0-0` when it is empty or absent).
async fn tip(conn: &mut Dedicated, outbox: &str) -> Result<String, StoreError> {
    let mut cmd = redis::cmd("XREVRANGE");
    cmd.arg(outbox).arg("+").arg("-").arg("COUNT").arg(1);
    let v = conn.query("XREVRANGE", &cmd).await?;
    Ok(crate::events::outbox::entries("xrevrange", v)?
        .first()
        .map(|e| e.id.clone())
        .unwrap_or_else(|| "0-0".into()))
}
