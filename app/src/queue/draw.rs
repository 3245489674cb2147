//! The pre-queue draw: at `opens_at`, everyone who joined before it is
//! shuffled and placed ahead of everyone who joins later.
//!
//! The draw is replayable by anyone from the seed shown in the queue's
//! statistics:
//!
//! 1. Take the pre-queue in join order (ascending sequence), `a[0..n]`.
//! 2. Seed ChaCha20 (the `rand_chacha` 0.3 `ChaCha20Rng::from_seed`: key =
//!    the 32 seed bytes, nonce 0, block counter from 0; `next_u64` joins two
//!    little-endian 32-bit output words, low word first).
//! 3. Fisher–Yates: for `i` from `n-1` down to `1`, draw `j` uniformly in
//!    `0..=i` and swap `a[i]` and `a[j]`. A uniform `j` below `m` comes from
//!    rejection sampling: `t = (2^64 - m) mod m`; draw `x = next_u64()`
//!    until `x >= t`; `j = x mod m`.
//! 4. The fan at `a[k]` gets the `k`-th smallest of the pre-queue's
//!    sequence numbers as their place, so the whole pre-queue sits where it
//!    joined: behind anyone already queued before it, ahead of everyone who
//!    joins after the opening.
//!
//! The pre-queue is frozen from the opening until the draw is placed, so
//! every replica reads the same list and a replica that takes over a draw
//! cut short recomputes the same order and resumes where it stopped.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::queue::{EventId, Queue, QueueError};
use crate::store::reply;

/// How long a replica may hold the draw without making progress.
const LEASE_MS: u64 = 15_000;
/// Members read per ZRANGE, and placed per script call.
const READ_BATCH: usize = 5_000;
const PLACE_BATCH: usize = 1_000;

/// Uniform in `0..m` (m > 0) by rejection sampling.
fn uniform_below(rng: &mut ChaCha20Rng, m: u64) -> u64 {
    let threshold = m.wrapping_neg() % m;
    loop {
        let x = rng.next_u64();
        if x >= threshold {
            return x % m;
        }
    }
}

/// The drawn order: `order[k]` is the join-order index of the fan placed
/// `k`-th.
pub fn draw_order(n: usize, seed: [u8; 32]) -> Vec<usize> {
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = uniform_below(&mut rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

pub fn parse_seed(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(seed)
}

fn new_seed() -> String {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    seed.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs (or resumes) the draw of an event's pre-queue if it is due and no
/// other replica holds it. Returns how many fans were placed.
pub async fn run(queue: &Queue, event: &EventId, replica: &str) -> Result<usize, QueueError> {
    let keys = queue.keys(event);
    let store = queue.store();
    let scripts = queue.scripts();
    let args = [replica.to_string(), new_seed(), LEASE_MS.to_string()];
    let begin = reply::array(
        "draw_begin",
        queue.run(&scripts.draw_begin, keys.all(), &args).await?,
    )?;
    if begin.first().and_then(reply::int) != Some(1) {
        return Ok(0);
    }
    let bad = |detail: &str| {
        QueueError::Store(crate::store::StoreError::Protocol {
            script: "draw_begin",
            detail: detail.into(),
        })
    };
    let seed = begin
        .get(1)
        .and_then(reply::string)
        .and_then(|s| parse_seed(&s))
        .ok_or_else(|| bad("bad seed"))?;
    let mut pos = begin.get(2).and_then(reply::int).unwrap_or(0).max(0) as usize;
    let size = begin.get(3).and_then(reply::int).unwrap_or(0).max(0) as usize;

    // The frozen pre-queue, in join order.
    let mut members: Vec<(String, String)> = Vec::with_capacity(size);
    while members.len() < size {
        let start = members.len();
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(keys.pre())
            .arg(start)
            .arg(start + READ_BATCH - 1)
            .arg("WITHSCORES");
        let items = reply::array("draw_read", store.query("ZRANGE", &cmd).await?)?;
        if items.is_empty() {
            break;
        }
        for pair in items.chunks(2) {
            let ticket = pair.first().and_then(reply::string);
            let score = pair.get(1).and_then(reply::string);
            if let (Some(t), Some(s)) = (ticket, score) {
                members.push((t, s));
            }
        }
    }
    if members.len() != size {
        return Err(bad("the pre-queue changed during the draw"));
    }
    let order = draw_order(size, seed);
    let mut placed = 0;
    while pos < size {
        let end = (pos + PLACE_BATCH).min(size);
        let mut args = vec![replica.to_string(), pos.to_string(), LEASE_MS.to_string()];
        for (k, &idx) in order.iter().enumerate().take(end).skip(pos) {
            args.push(members[idx].0.clone());
            // The k-th smallest sequence of the pre-queue.
            args.push(members[k].1.clone());
        }
        let r = reply::array(
            "draw_place",
            queue.run(&scripts.draw_place, keys.all(), &args).await?,
        )?;
        match r.first().and_then(reply::int) {
            Some(1) => {
                placed += end - pos;
                pos = end;
            }
            // Another replica took over, or already placed this batch.
            _ => return Ok(placed),
        }
    }
    tracing::info!(event = %event, fans = size, "pre-queue drawn and placed");
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draw_is_a_permutation_fixed_by_the_seed() {
        let seed = [7u8; 32];
        let a = draw_order(1000, seed);
        assert_eq!(a, draw_order(1000, seed));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
        assert_ne!(a, draw_order(1000, [8u8; 32]));
        assert!(draw_order(0, seed).is_empty());
        assert_eq!(draw_order(1, seed), vec![0]);
    }

    #[test]
    fn draw_is_close_to_uniform() {
        // Where fan 0 lands over many seeds: each of 4 places about 1/4.
        let mut counts = [0u32; 4];
        for s in 0..4000u32 {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&s.to_le_bytes());
            let order = draw_order(4, seed);
            let place = order.iter().position(|&i| i == 0).unwrap();
            counts[place] += 1;
        }
        for c in counts {
            assert!((850..1150).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn seeds_round_trip_through_hex() {
        let hex = new_seed();
        let seed = parse_seed(&hex).unwrap();
        let back: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(back, hex);
        assert!(parse_seed("zz").is_none());
    }
}
