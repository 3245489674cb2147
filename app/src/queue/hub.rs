//! This replica's WebSocket subscribers. Twice a second, one `watch` script
//! call per event (per few hundred sockets) reads the state of every ticket
//! with an open socket here, counts each socket as presence, and hands each
//! socket its ticket's state. Admissions made by any replica are therefore
//! seen here within half a second, without relying on which replica holds
//! which socket, and without one Redis call per socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;
use crate::queue::{EventId, Queue, QueueError, Ticket, TicketStatus};

/// Time between two reads of all watched tickets.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
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

    /// Polls until shutdown.
    pub async fn run(
        self: Arc<Self>,
        queue: Arc<Queue>,
        metrics: Metrics,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut interval = tokio::time::interval(POLL_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed() => return,
            }
            for (event, tickets) in self.snapshot() {
                for chunk in tickets.chunks(WATCH_BATCH) {
                    self.poll(&queue, &metrics, &event, chunk).await;
                }
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
