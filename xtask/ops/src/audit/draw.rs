//! The pre-queue draw, replayed from its seed as `app/src/queue/draw.rs`
//! documents it (ChaCha20 from the 32 seed bytes, Fisher–Yates from the
//! end, rejection sampling for a uniform index).
//!
//! Why a replay here instead of a dependency on the `admission` crate: that
//! crate is the whole service (axum, sqlx, utoipa, …), which would double the
//! cold build of this binary for 20 lines. The test below holds this replay
//! equal to `admission::queue::draw::draw_order` (a dev-dependency, compiled
//! by `cargo test --workspace` anyway) over many seeds and sizes, so the two
//! cannot drift apart unnoticed.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// `order[k]` is the join-order index of the fan the draw placed `k`-th.
pub fn draw_order(n: usize, seed: [u8; 32]) -> Vec<usize> {
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = uniform_below(&mut rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// Uniform in `0..m` (m > 0): reject the low `2^64 mod m` values.
fn uniform_below(rng: &mut ChaCha20Rng, m: u64) -> u64 {
    let threshold = m.wrapping_neg() % m;
    loop {
        let x = rng.next_u64();
        if x >= threshold {
            return x % m;
        }
    }
}

/// The 32 bytes of a seed written as 64 hex digits.
pub fn parse_seed(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut seed = [0u8; 32];
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(seed)
}

/// The place (`seq`) the draw gives each pre-queue fan: `fans` are the
/// pre-queue in join order as `(join seq, ticket)`; the k-th fan of the
/// drawn order gets the k-th smallest join seq.
pub fn places<'a>(fans: &[(u64, &'a str)], seed: [u8; 32]) -> Vec<(&'a str, u64)> {
    let mut by_join: Vec<(u64, &str)> = fans.to_vec();
    by_join.sort_unstable();
    let order = draw_order(by_join.len(), seed);
    order
        .iter()
        .enumerate()
        .map(|(k, &index)| (by_join[index].1, by_join[k].0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_is_the_apps_draw() {
        for size in [0usize, 1, 2, 3, 7, 64, 1000, 5001] {
            for s in 0..40u8 {
                let mut seed = [0u8; 32];
                seed[0] = s;
                seed[31] = s.wrapping_mul(37);
                seed[13] = size as u8;
                assert_eq!(
                    draw_order(size, seed),
                    admission::queue::draw::draw_order(size, seed),
                    "size {size}, seed {seed:?}"
                );
            }
        }
        let hex = "00ff10a0000000000000000000000000000000000000000000000000000000ee";
        assert_eq!(
            parse_seed(hex),
            admission::queue::draw::parse_seed(hex),
            "seeds parse alike"
        );
    }

    #[test]
    fn places_hand_out_the_pre_queue_seqs_in_drawn_order() {
        let seed = [3u8; 32];
        let fans = [(12, "d"), (3, "a"), (5, "b"), (9, "c")];
        let order = draw_order(4, seed);
        let join_order = ["a", "b", "c", "d"];
        let placed = places(&fans, seed);
        for (k, &(ticket, seq)) in placed.iter().enumerate() {
            assert_eq!(ticket, join_order[order[k]]);
            assert_eq!(seq, [3, 5, 9, 12][k]);
        }
    }

    #[test]
    fn seeds_are_64_hex_digits() {
        assert!(parse_seed(&"ab".repeat(32)).is_some());
        assert!(parse_seed(&"ab".repeat(31)).is_none());
        assert!(parse_seed(&"zz".repeat(32)).is_none());
        assert!(parse_seed(&"é".repeat(32)).is_none());
    }
}
