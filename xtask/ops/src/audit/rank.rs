//! Rank statistics over a sequence of queue places (`seq`) listed in the
//! order the fans were admitted: how many pairs are out of order, and
//! Kendall's tau-b between the two orders. Both in O(n log n) by counting
//! inversions with a merge sort (Knight's algorithm, with no ties in the
//! admission order since every admission has its own `id`).

/// Pairs `i < j` with `seqs[i] > seqs[j]`: fans admitted before someone
/// who was ahead of them. Equal places are not inversions.
pub fn inversions(seqs: &[u64]) -> u64 {
    let mut work = seqs.to_vec();
    let mut buf = vec![0; work.len()];
    sort_counting(&mut work, &mut buf)
}

/// Sorts `a` (using `buf`, as long as `a`) and returns its strict
/// inversions: bottom-up merge sort, where taking an element from the right
/// run passes over every element still waiting in the left run.
fn sort_counting(a: &mut [u64], buf: &mut [u64]) -> u64 {
    let n = a.len();
    let mut count = 0u64;
    let mut width = 1;
    while width < n {
        let mut start = 0;
        while start < n {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j, mut k) = (start, mid, start);
            while i < mid && j < end {
                // `<=`: an equal element on the left goes first, so ties
                // never count.
                if a[i] <= a[j] {
                    buf[k] = a[i];
                    i += 1;
                } else {
                    buf[k] = a[j];
                    j += 1;
                    count += (mid - i) as u64;
                }
                k += 1;
            }
            buf[k..k + (mid - i)].copy_from_slice(&a[i..mid]);
            k += mid - i;
            buf[k..k + (end - j)].copy_from_slice(&a[j..end]);
            a[start..end].copy_from_slice(&buf[start..end]);
            start = end;
        }
        width *= 2;
    }
    count
}

/// Kendall's tau-b between admission order (the index) and queue order
/// (the value): 1.0 when every fan was admitted in the order of their
/// place, -1.0 for the exact reverse, near 0.0 for an order unrelated to
/// the places. Tau-b corrects for ties in `seqs` (the same place admitted
/// twice); the admission order has none. `None` for fewer than two
/// admissions, or when every place is the same (the coefficient is then
/// undefined).
pub fn kendall_tau_b(seqs: &[u64]) -> Option<f64> {
    let n = seqs.len() as u64;
    if n < 2 {
        return None;
    }
    let pairs = n * (n - 1) / 2;
    let mut sorted = seqs.to_vec();
    let mut buf = vec![0; sorted.len()];
    let discordant = sort_counting(&mut sorted, &mut buf);
    let tied: u64 = sorted
        .chunk_by(|a, b| a == b)
        .map(|run| {
            let t = run.len() as u64;
            t * (t - 1) / 2
        })
        .sum();
    if tied == pairs {
        return None;
    }
    let concordant = pairs - tied - discordant;
    let numerator = concordant as f64 - discordant as f64;
    Some(numerator / ((pairs as f64) * ((pairs - tied) as f64)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definitions, pair by pair: what the fast versions must equal.
    fn inversions_by_pairs(s: &[u64]) -> u64 {
        let mut count = 0;
        for i in 0..s.len() {
            for j in i + 1..s.len() {
                if s[i] > s[j] {
                    count += 1;
                }
            }
        }
        count
    }

    fn tau_b_by_pairs(s: &[u64]) -> Option<f64> {
        let (mut c, mut d, mut ties) = (0i64, 0i64, 0i64);
        let n = s.len() as i64;
        for i in 0..s.len() {
            for j in i + 1..s.len() {
                match s[i].cmp(&s[j]) {
                    std::cmp::Ordering::Less => c += 1,
                    std::cmp::Ordering::Greater => d += 1,
                    std::cmp::Ordering::Equal => ties += 1,
                }
            }
        }
        let n0 = n * (n - 1) / 2;
        if n < 2 || n0 == ties {
            return None;
        }
        Some((c - d) as f64 / ((n0 as f64) * ((n0 - ties) as f64)).sqrt())
    }

    #[test]
    fn a_perfect_fifo_has_no_inversions_and_tau_one() {
        let s: Vec<u64> = (1..=100).collect();
        assert_eq!(inversions(&s), 0);
        assert_eq!(kendall_tau_b(&s), Some(1.0));
    }

    #[test]
    fn the_reverse_order_inverts_every_pair() {
        let s: Vec<u64> = (1..=10).rev().collect();
        assert_eq!(inversions(&s), 45);
        assert_eq!(kendall_tau_b(&s), Some(-1.0));
    }

    #[test]
    fn one_fan_let_in_early_inverts_the_pairs_it_jumps() {
        // Fan 5 admitted first: it jumped fans 1, 2, 3 and 4.
        assert_eq!(inversions(&[5, 1, 2, 3, 4, 6]), 4);
        // Two adjacent fans swapped: one pair.
        assert_eq!(inversions(&[1, 3, 2, 4]), 1);
        // Of 15 pairs, 11 concordant and 4 discordant: (11 - 4) / 15.
        let tau = kendall_tau_b(&[5, 1, 2, 3, 4, 6]).unwrap();
        assert!((tau - 7.0 / 15.0).abs() < 1e-12, "{tau}");
    }

    #[test]
    fn the_same_place_twice_is_a_tie_not_an_inversion() {
        assert_eq!(inversions(&[1, 2, 2, 3]), 0);
        // 6 pairs, 1 tied, 5 concordant: 5 / sqrt(6 * 5).
        let tau = kendall_tau_b(&[1, 2, 2, 3]).unwrap();
        assert!((tau - 5.0 / 30f64.sqrt()).abs() < 1e-12, "{tau}");
        assert_eq!(kendall_tau_b(&[4, 4, 4]), None);
    }

    #[test]
    fn tau_is_undefined_below_two_admissions() {
        assert_eq!(kendall_tau_b(&[]), None);
        assert_eq!(kendall_tau_b(&[7]), None);
        assert_eq!(inversions(&[]), 0);
        assert_eq!(inversions(&[7]), 0);
    }

    #[test]
    fn fast_counts_equal_the_pairwise_definitions() {
        // A fixed pseudo-random walk over many lengths, with ties.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for n in 0..130 {
            let s: Vec<u64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x % (n as u64 / 2 + 3)
                })
                .collect();
            assert_eq!(inversions(&s), inversions_by_pairs(&s), "{s:?}");
            match (kendall_tau_b(&s), tau_b_by_pairs(&s)) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{s:?}: {a} {b}"),
                (a, b) => assert_eq!(a, b, "{s:?}"),
            }
        }
    }

    #[test]
    fn a_random_order_has_tau_near_zero() {
        // 2,000 places shuffled (Fisher-Yates on a fixed xorshift).
        let n = 2000u64;
        let mut s: Vec<u64> = (0..n).collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in (1..s.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let tau = kendall_tau_b(&s).unwrap();
        assert!(tau.abs() < 0.1, "{tau}");
    }
}
