//! Expired holds free their seats without anyone calling: every replica
//! sweeps once a second (the statements are idempotent, so replicas
//! sweeping at once do no harm). Making a hold also frees expired claims on
//! the seats it wants, so correctness never waits for the sweep.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::watch;

use super::{Booking, BookingError};
use crate::metrics::Metrics;

const INTERVAL: Duration = Duration::from_secs(1);
const BATCH: i64 = 1_000;
/// Expired claims that no active hold owns.
macro_rules! orphaned {
    () => {
        "expires_at <= NOW(3) AND NOT EXISTS \
         (SELECT 1 FROM holds h WHERE h.id = seat_claims.hold_id AND h.status = 'active')"
    };
}

impl Booking {
    /// One sweep; returns how many seats were freed. Each expired hold is
    /// marked `expired` and its claims deleted in one transaction, with its
    /// `hold_expired` event when the event log is on; holds another
    /// replica is sweeping are skipped (SKIP LOCKED), so each expiry is
    /// recorded once.
    pub async fn sweep_expired_holds(&self) -> Result<u64, BookingError> {
        let mut tx = self.db.writer.begin().await?;
        let holds: Vec<(String, String, String)> = sqlx::query(
            "SELECT id, event_id, ticket FROM holds WHERE status = 'active' AND expires_at <= NOW(3) \
             ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED",
        )
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?, r.try_get(2).ok()?)))
        .collect();
        let mut freed = 0;
        if !holds.is_empty() {
            let in_list = |sql: &str| {
                let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(sql);
                let mut sep = q.separated(", ");
                for (id, _, _) in &holds {
                    sep.push_bind(id.clone());
                }
                q.push(")");
                q
            };
            freed += in_list("DELETE FROM seat_claims WHERE hold_id IN (")
                .build()
                .execute(&mut *tx)
                .await?
                .rows_affected();
            in_list("UPDATE holds SET status = 'expired' WHERE id IN (")
                .build()
                .execute(&mut *tx)
                .await?;
            if self.queue().shipping() {
                let mut seats: HashMap<String, Vec<String>> = HashMap::new();
                for r in in_list("SELECT hold_id, seat_id FROM hold_seats WHERE hold_id IN (")
                    .push(" ORDER BY hold_id, seat_id")
                    .build()
                    .fetch_all(&mut *tx)
                    .await?
                {
                    seats.entry(r.try_get(0)?).or_default().push(r.try_get(1)?);
                }
                for (id, event, ticket) in &holds {
                    let seat_ids = seats.remove(id).unwrap_or_default();
                    self.record(
                        &mut tx,
                        event,
                        "hold_expired",
                        serde_json::json!({"ticket": ticket, "seat_ids": seat_ids, "hold_id": id}),
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        // Expired claims whose hold is no longer active (none are
        // expected: a belt and braces for rows older than this sweep). A
        // claim of an active hold that expired since the select above is
        // left to the next sweep, which marks the hold in the same
        // transaction: a hold is never active without its seats.
        let events: Vec<String> = sqlx::query(concat!(
            "SELECT DISTINCT event_id FROM seat_claims WHERE ",
            orphaned!(),
            " LIMIT 100"
        ))
        .fetch_all(&self.db.writer)
        .await?
        .iter()
        .filter_map(|r| r.try_get(0).ok())
        .collect();
        if !events.is_empty() {
            freed += sqlx::query(concat!(
                "DELETE FROM seat_claims WHERE ",
                orphaned!(),
                " LIMIT ?"
            ))
            .bind(BATCH)
            .execute(&self.db.writer)
            .await?
            .rows_affected();
        }
        let mut changed: Vec<&str> = holds.iter().map(|(_, e, _)| e.as_str()).collect();
        changed.extend(events.iter().map(String::as_str));
        changed.sort_unstable();
        changed.dedup();
        for event in changed {
            self.seats_changed(event).await;
        }
        Ok(freed)
    }
}

pub async fn run(booking: Arc<Booking>, metrics: Metrics, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = booking.db.within(booking.reconcile_sold_out()).await {
            metrics.background_error("sold_out");
            tracing::warn!(error = %e, "could not reconcile sold-out modes");
        }
        match booking.db.within(booking.sweep_expired_holds()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(seats = n, "expired holds released"),
            Err(e) => {
                metrics.background_error("hold_sweep");
                tracing::warn!(error = %e, "hold sweep failed; expired holds keep their seats until the next sweep (a new hold frees the seats it wants anyway)");
            }
        }
    }
}
