//! The admission loop every replica runs: for each event, every tick, one
//! `tick` script heartbeats the replica, expires ended sessions and idle
//! waiters, and admits from the head as capacity and the token bucket
//! allow. Every replica runs it at once; the script's atomicity keeps them
//! from over-admitting, and any of them can die without stopping admission.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::watch;

use crate::metrics::{EventGauges, Metrics};
use crate::queue::{draw, EventId, Queue};

/// Most admissions (and most expiries of each kind) in one script run, to
/// keep each script short.
pub const BATCH: u64 = 500;
/// A replica that has not run its loop for this long stops counting toward
/// `sessions_per_replica` capacity.
pub const REPLICA_TTL_MS: u64 = 10_000;
/// How often the list of events is re-read.
const EVENTS_REFRESH: Duration = Duration::from_secs(1);

pub struct AdmissionLoop {
    pub queue: Arc<Queue>,
    pub replica: String,
    pub tick: Duration,
    pub metrics: Metrics,
}

impl AdmissionLoop {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let drawing: Arc<Mutex<HashSet<EventId>>> = Arc::default();
        let mut events: Vec<EventId> = Vec::new();
        let mut refreshed: Option<Instant> = None;
        let mut interval = tokio::time::interval(self.tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed() => return,
            }
            if refreshed.is_none_or(|at| at.elapsed() >= EVENTS_REFRESH) {
                match self.queue.events().await {
                    Ok(list) => {
                        // Events removed (by any replica) take their series along.
                        for gone in events.iter().filter(|e| !list.contains(e)) {
                            self.metrics.forget_event(gone.as_str());
                        }
                        events = list;
                        refreshed = Some(Instant::now());
                    }
                    Err(e) => tracing::warn!(error = %e, "admission loop cannot list events"),
                }
            }
            let runs = events.iter().map(|event| self.tick_event(event, &drawing));
            join_all(runs).await;
        }
    }

    async fn tick_event(&self, event: &EventId, drawing: &Arc<Mutex<HashSet<EventId>>>) {
        match self
            .queue
            .tick(event, &self.replica, BATCH, REPLICA_TTL_MS)
            .await
        {
            Ok(Some(report)) => {
                if report.admitted > 0 || report.expired > 0 {
                    tracing::debug!(event = %event, admitted = report.admitted, expired = report.expired, "admission tick");
                }
                self.metrics.set_event(
                    event.as_str(),
                    EventGauges {
                        queued: report.queued as i64,
                        active: report.active as i64,
                        capacity: report.capacity as i64,
                        admitted_total: report.admitted_total as i64,
                        last_admit_ms: report.last_admit_ms,
                    },
                );
                if report.draw_pending {
                    self.start_draw(event, drawing);
                }
            }
            Ok(None) => {
                // No configuration: an orphan (the event was removed).
                match self.queue.forget_if_gone(event).await {
                    Ok(true) => {
                        self.metrics.forget_event(event.as_str());
                        tracing::info!(event = %event, "an event without a queue left the admission loop");
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(event = %event, error = %e, "could not clean up an event without a queue")
                    }
                }
            }
            Err(e) => {
                self.metrics.loop_error(event.as_str());
                tracing::warn!(event = %event, error = %e, "admission tick failed");
            }
        }
    }

    fn start_draw(&self, event: &EventId, drawing: &Arc<Mutex<HashSet<EventId>>>) {
        {
            let Ok(mut running) = drawing.lock() else {
                return;
            };
            if !running.insert(event.clone()) {
                return;
            }
        }
        let queue = self.queue.clone();
        let replica = self.replica.clone();
        let event = event.clone();
        let drawing = drawing.clone();
        tokio::spawn(async move {
            if let Err(e) = draw::run(&queue, &event, &replica).await {
                tracing::warn!(event = %event, error = %e, "pre-queue draw interrupted; it resumes on a later tick");
            }
            if let Ok(mut running) = drawing.lock() {
                running.remove(&event);
            }
        });
    }
}
