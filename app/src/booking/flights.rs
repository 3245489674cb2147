//! Holds of one seat on one replica, one at a time.
//!
//! At a sale's opening many fans ask for the same seats in the same
//! moment. The database decides who gets a seat (the claim's primary key),
//! but every loser still costs it a transaction. Here, a hold whose seats
//! another hold of this replica is trying already waits for that attempt:
//! when it claimed its seats, at least one of ours is taken and the answer
//! is `seat_unavailable` without a query; when it failed, ours is tried.
//! Only losses are answered this way; every success is the database's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// The outcome of an attempt: `Some(true)` once its seats are claimed,
/// `Some(false)` when it failed.
type Outcome = watch::Sender<Option<bool>>;

#[derive(Default)]
pub struct Flights {
    by_seat: Mutex<HashMap<String, Arc<Outcome>>>,
}

/// What a hold may do.
pub enum Turn<'f> {
    /// Try it; tell the waiters how it went with [`Attempt::claimed`].
    Go(Attempt<'f>),
    /// Another hold of this replica claimed one of these seats meanwhile.
    Taken,
}

/// An attempt in flight; its seats are freed for others when it is dropped.
pub struct Attempt<'f> {
    flights: &'f Flights,
    keys: Vec<String>,
    outcome: Arc<Outcome>,
}

impl Attempt<'_> {
    pub fn claimed(self, claimed: bool) {
        self.outcome.send_replace(Some(claimed));
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut map = self
            .flights
            .by_seat
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for k in &self.keys {
            if map.get(k).is_some_and(|o| Arc::ptr_eq(o, &self.outcome)) {
                map.remove(k);
            }
        }
        // Waiters of an attempt dropped without an answer try themselves.
        self.outcome.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(false);
                true
            } else {
                false
            }
        });
    }
}

impl Flights {
    /// Waits until no other hold of this replica is trying any of `seats`
    /// of `event`, then takes them for this one.
    pub async fn turn(&self, event: &str, seats: &[String]) -> Turn<'_> {
        let keys: Vec<String> = seats.iter().map(|s| format!("{event}\n{s}")).collect();
        loop {
            let busy = {
                let mut map = self.by_seat.lock().unwrap_or_else(PoisonError::into_inner);
                match keys.iter().find_map(|k| map.get(k).cloned()) {
                    Some(other) => other,
                    None => {
                        let outcome = Arc::new(watch::Sender::new(None));
                        for k in &keys {
                            map.insert(k.clone(), outcome.clone());
                        }
                        return Turn::Go(Attempt {
                            flights: self,
                            keys,
                            outcome,
                        });
                    }
                }
            };
            let mut rx = busy.subscribe();
            let claimed = matches!(
                rx.wait_for(|v| v.is_some()).await.as_deref(),
                Ok(Some(true))
            );
            if claimed {
                return Turn::Taken;
            }
        }
    }

    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.by_seat.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn seats(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn a_hold_waits_for_one_on_its_seats_and_loses_when_it_claimed() {
        let f = Arc::new(Flights::default());
        let Turn::Go(first) = f.turn("ev", &seats(&["a", "b"])).await else {
            panic!("nobody else is trying");
        };
        // Another event's seat of the same name, and another seat: free.
        assert!(matches!(f.turn("other", &seats(&["a"])).await, Turn::Go(_)));
        assert!(matches!(f.turn("ev", &seats(&["c"])).await, Turn::Go(_)));
        let waiter = tokio::spawn({
            let f = f.clone();
            async move { matches!(f.turn("ev", &seats(&["b", "c"])).await, Turn::Taken) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "waits while the first is in flight");
        first.claimed(true);
        assert!(waiter.await.unwrap(), "told the seat is taken");
        assert_eq!(f.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_failed_or_abandoned_attempt_lets_the_next_try() {
        let f = Arc::new(Flights::default());
        for give_up in [false, true] {
            let Turn::Go(first) = f.turn("ev", &seats(&["a"])).await else {
                panic!("free");
            };
            let waiter = tokio::spawn({
                let f = f.clone();
                async move {
                    match f.turn("ev", &seats(&["a"])).await {
                        Turn::Go(a) => {
                            a.claimed(true);
                            true
                        }
                        Turn::Taken => false,
                    }
                }
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            if give_up {
                drop(first);
            } else {
                first.claimed(false);
            }
            assert!(waiter.await.unwrap(), "the next one tried");
            assert_eq!(f.in_flight(), 0);
        }
    }
}
