//! Expired holds free their seats without anyone calling: every replica
//! sweeps once a second (the statements are idempotent, so replicas
//! sweeping at once do no harm). Making a hold also frees expired claims on
//! the seats it wants, so correctness never waits for the sweep.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use tokio::sync::watch;

use super::{Booking, BookingError};
use crate::metrics::Metrics;

const INTERVAL: Duration = Duration::from_secs(1);
const BATCH: i64 = 1_000;

impl Booking {
    /// One sweep; returns how many seats were freed.
    pub async fn sweep_expired_holds(&self) -> Result<u64, BookingError> {
        let events: Vec<String> = sqlx::query(
            "SELECT DISTINCT event_id FROM seat_claims WHERE expires_at <= NOW(3) LIMIT 100",
        )
        .fetch_all(&self.db.writer)
        .await?
        .iter()
        .filter_map(|r| r.try_get(0).ok())
        .collect();
        let freed = sqlx::query("DELETE FROM seat_claims WHERE expires_at <= NOW(3) LIMIT ?")
            .bind(BATCH)
            .execute(&self.db.writer)
            .await?
            .rows_affected();
        sqlx::query("UPDATE holds SET status = 'expired' WHERE status = 'active' AND expires_at <= NOW(3) LIMIT ?")
            .bind(BATCH)
            .execute(&self.db.writer)
            .await?;
        for event in &events {
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
