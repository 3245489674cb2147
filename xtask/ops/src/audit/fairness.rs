//! The audit's arithmetic: from the sale's events (copies merged) and,
//! optionally, the admissions Redis still records, the figures of the
//! report and the evidence behind each.
//!
//! Events are replayed in `id` order (`q:<n>`), which is the order the
//! queue changed in, whatever shard or replica carried them.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::draw;
use super::event::{Event, EventId, Kind, Mode, Parsed};
use super::rank;

/// The sale's events, one per `id`, as read from the stream.
#[derive(Debug, Default)]
pub struct Log {
    events: BTreeMap<EventId, Event>,
    /// Extra copies of an event already read (at-least-once delivery).
    pub redelivered: u64,
    /// Ids carried by two events that differ: a copy cannot explain them.
    pub conflicting: Vec<EventId>,
    /// Why elements could not be read, with how many.
    pub unreadable: BTreeMap<String, u64>,
    /// Events of other sales sharing the stream, by `event_id`.
    pub other_sales: BTreeMap<String, u64>,
}

/// At most this many distinct reasons are kept for unreadable events.
const UNREADABLE_REASONS: usize = 20;

impl Log {
    pub fn add(&mut self, parsed: Parsed) {
        match parsed {
            Parsed::Event(e) => match self.events.get(&e.id) {
                None => {
                    self.events.insert(e.id, e);
                }
                Some(first) if *first == e => self.redelivered += 1,
                Some(_) => self.conflicting.push(e.id),
            },
            Parsed::Other(sale) => *self.other_sales.entry(sale).or_default() += 1,
            Parsed::Unreadable(why) => {
                if self.unreadable.len() < UNREADABLE_REASONS || self.unreadable.contains_key(&why)
                {
                    *self.unreadable.entry(why).or_default() += 1;
                } else {
                    *self.unreadable.entry("(other reasons)".into()).or_default() += 1;
                }
            }
        }
    }

    /// Distinct events of the sale.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// The report, exactly as `--json` prints it (field order included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub joined: u64,
    pub admitted: u64,
    pub duplicates: u64,
    pub lost: Option<u64>,
    pub inversions: u64,
    pub kendall_tau: Option<f64>,
    pub redelivered: u64,
    pub wait_p50_seconds: Option<f64>,
    pub wait_p99_seconds: Option<f64>,
}

/// An admission that should not have happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duplicate {
    /// The ticket was admitted before (under another id).
    TicketAgain { id: EventId, ticket: String },
    /// The identity already held a live admission of another ticket.
    IdentityTwice {
        id: EventId,
        client_hash: String,
        ticket: String,
        live: String,
    },
}

/// A pre-queue fan admitted at a place its draw did not give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawMismatch {
    pub id: EventId,
    pub ticket: String,
    /// The seq the seed gives; `None` when admitted before the draw.
    pub expected: Option<u64>,
    pub admitted_seq: u64,
}

/// One `drawn` event and whether it could be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawCheck {
    pub id: EventId,
    pub size: u64,
    /// Pre-queue fans the stream shows at the draw; equal to `size` when
    /// the draw could be replayed.
    pub found: u64,
}

/// The report and the evidence behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Findings {
    pub report: Report,
    pub duplicates: Vec<Duplicate>,
    /// Tickets Redis records as admitted (with when, ms) and the stream
    /// does not.
    pub lost: Vec<(String, i64)>,
    /// Pairs admitted against their `seq` in a mode that admits in order.
    pub out_of_order_pairs: u64,
    pub draw_mismatches: Vec<DrawMismatch>,
    pub draws: Vec<DrawCheck>,
    /// Things the reader should know that are not failures.
    pub notes: Vec<String>,
}

/// A pre-queue fan waiting for the draw.
struct PreFan<'a> {
    seq: u64,
    ticket: &'a str,
    ended_ms: Option<i64>,
}

/// Audits the sale's `log`; `recorded` are the admissions Redis still holds
/// (ticket → admitted_ms), when Redis was read.
pub fn audit(log: &Log, recorded: Option<&BTreeMap<String, i64>>) -> Findings {
    let mut mode = Mode::Fifo;
    let mut mode_before_sold_out = None;
    let mut saw_config = false;
    let mut admitted_before_config = 0u64;
    let mut opens_at_ms = None;

    let mut joined = 0u64;
    let mut joined_ms: HashMap<&str, i64> = HashMap::new();
    let mut pending_pre: Vec<PreFan> = Vec::new();
    let mut pending_index: HashMap<&str, usize> = HashMap::new();
    let mut drawn_seq: HashMap<&str, u64> = HashMap::new();
    let mut unverifiable: HashSet<&str> = HashSet::new();
    let mut draws = Vec::new();

    let mut admissions: HashMap<&str, u32> = HashMap::new();
    let mut live: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut duplicates = Vec::new();
    let mut draw_mismatches = Vec::new();
    let mut all_seqs = Vec::new();
    let mut ordered_seqs = Vec::new();
    let mut waits_ms = Vec::new();

    let queue_events = log
        .events
        .values()
        .filter(|e| matches!(e.id, EventId::Queue(_)));
    for e in queue_events {
        match &e.kind {
            Kind::ConfigChanged {
                mode: m,
                opens_at_ms: o,
            } => {
                saw_config = true;
                mode = *m;
                mode_before_sold_out = None;
                opens_at_ms = *o;
            }
            Kind::SoldOut => {
                if mode != Mode::SoldOut {
                    mode_before_sold_out = Some(mode);
                }
                mode = Mode::SoldOut;
            }
            Kind::Reopened => mode = mode_before_sold_out.take().unwrap_or(mode),
            Kind::Joined { fan, prequeue } => {
                joined += 1;
                joined_ms.entry(&fan.ticket).or_insert(e.at_ms);
                if *prequeue && !pending_index.contains_key(fan.ticket.as_str()) {
                    pending_index.insert(&fan.ticket, pending_pre.len());
                    pending_pre.push(PreFan {
                        seq: fan.seq,
                        ticket: &fan.ticket,
                        ended_ms: None,
                    });
                }
            }
            Kind::Ended { fan } => {
                if let Some(&i) = pending_index.get(fan.ticket.as_str()) {
                    pending_pre[i].ended_ms.get_or_insert(e.at_ms);
                }
                if let Some(tickets) = live.get_mut(fan.client_hash.as_str()) {
                    tickets.retain(|t| *t != fan.ticket);
                }
            }
            Kind::Drawn { seed, size } => {
                // The pre-queue freezes at `opens_at`: a fan who left before
                // it is out of the draw, one who left after keeps a place.
                let freeze = opens_at_ms.unwrap_or(e.at_ms);
                let members: Vec<(u64, &str)> = pending_pre
                    .iter()
                    .filter(|p| p.ended_ms.is_none_or(|t| t >= freeze))
                    .map(|p| (p.seq, p.ticket))
                    .collect();
                draws.push(DrawCheck {
                    id: e.id,
                    size: *size,
                    found: members.len() as u64,
                });
                if members.len() as u64 == *size {
                    drawn_seq.extend(draw::places(&members, *seed));
                } else {
                    unverifiable.extend(pending_pre.iter().map(|p| p.ticket));
                }
                pending_pre.clear();
                pending_index.clear();
            }
            Kind::Admitted { fan } => {
                if !saw_config {
                    admitted_before_config += 1;
                }
                let ticket = fan.ticket.as_str();
                let times = admissions.entry(ticket).or_default();
                *times += 1;
                let holding = live.entry(fan.client_hash.as_str()).or_default();
                if *times > 1 {
                    duplicates.push(Duplicate::TicketAgain {
                        id: e.id,
                        ticket: ticket.into(),
                    });
                } else {
                    if let Some(other) = holding.iter().find(|t| **t != ticket) {
                        duplicates.push(Duplicate::IdentityTwice {
                            id: e.id,
                            client_hash: fan.client_hash.clone(),
                            ticket: ticket.into(),
                            live: other.to_string(),
                        });
                    }
                    if let Some(at) = joined_ms.get(ticket) {
                        waits_ms.push(e.at_ms - at);
                    }
                }
                if !holding.contains(&ticket) {
                    holding.push(ticket);
                }
                let expected = if let Some(&seq) = drawn_seq.get(ticket) {
                    Some(Some(seq))
                } else if pending_index.contains_key(ticket) {
                    Some(None)
                } else {
                    None
                };
                if let Some(expected) = expected {
                    if expected != Some(fan.seq) && !unverifiable.contains(ticket) {
                        draw_mismatches.push(DrawMismatch {
                            id: e.id,
                            ticket: ticket.into(),
                            expected,
                            admitted_seq: fan.seq,
                        });
                    }
                }
                all_seqs.push(fan.seq);
                if mode.admits_in_order() {
                    ordered_seqs.push(fan.seq);
                }
            }
            Kind::Booking => {}
        }
    }

    let mut notes = Vec::new();
    if admitted_before_config > 0 {
        notes.push(format!(
            "{admitted_before_config} admissions came before any config_changed event: \
             they were checked as fifo, the default mode"
        ));
    }
    for d in draws.iter().filter(|d| d.found != d.size) {
        notes.push(format!(
            "the draw {} had {} pre-queue fans but the stream shows {}: its places could not \
             be replayed (pre-queue joins are missing from the stream)",
            d.id, d.size, d.found
        ));
    }
    if !pending_pre.is_empty() {
        notes.push(format!(
            "{} pre-queue fans are not drawn yet (no drawn event after their joins)",
            pending_pre.len()
        ));
    }

    let lost: Option<Vec<(String, i64)>> = recorded.map(|recorded| {
        recorded
            .iter()
            .filter(|(ticket, _)| !admissions.contains_key(ticket.as_str()))
            .map(|(t, ms)| (t.clone(), *ms))
            .collect()
    });
    let out_of_order_pairs = rank::inversions(&ordered_seqs);
    waits_ms.sort_unstable();
    let report = Report {
        joined,
        admitted: all_seqs.len() as u64,
        duplicates: duplicates.len() as u64,
        lost: lost.as_ref().map(|l| l.len() as u64),
        inversions: out_of_order_pairs + draw_mismatches.len() as u64,
        kendall_tau: rank::kendall_tau_b(&all_seqs).map(|t| round(t, 6)),
        redelivered: log.redelivered,
        wait_p50_seconds: percentile(&waits_ms, 50.0).map(|ms| ms as f64 / 1000.0),
        wait_p99_seconds: percentile(&waits_ms, 99.0).map(|ms| ms as f64 / 1000.0),
    };
    Findings {
        report,
        duplicates,
        lost: lost.unwrap_or_default(),
        out_of_order_pairs,
        draw_mismatches,
        draws,
        notes,
    }
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::super::event::Fan;
    use super::*;

    /// Builds a sale's events by hand, `at` in seconds from the start.
    #[derive(Default)]
    struct Sale {
        log: Log,
        next: u64,
    }

    fn fan(ticket: &str, seq: u64, hash: &str) -> Fan {
        Fan {
            ticket: ticket.into(),
            seq,
            client_hash: hash.into(),
        }
    }

    impl Sale {
        fn push(&mut self, at_s: f64, kind: Kind) -> EventId {
            self.next += 1;
            let id = EventId::Queue(self.next);
            self.log.add(Parsed::Event(Event {
                id,
                at_ms: (at_s * 1000.0) as i64,
                kind,
            }));
            id
        }
        fn mode(&mut self, mode: Mode) -> &mut Self {
            self.push(
                0.0,
                Kind::ConfigChanged {
                    mode,
                    opens_at_ms: None,
                },
            );
            self
        }
        fn join(&mut self, at: f64, ticket: &str, seq: u64) -> &mut Self {
            self.push(
                at,
                Kind::Joined {
                    fan: fan(ticket, seq, &format!("h-{ticket}")),
                    prequeue: false,
                },
            );
            self
        }
        fn admit(&mut self, at: f64, ticket: &str, seq: u64) -> &mut Self {
            self.admit_as(at, ticket, seq, &format!("h-{ticket}"))
        }
        fn admit_as(&mut self, at: f64, ticket: &str, seq: u64, hash: &str) -> &mut Self {
            self.push(
                at,
                Kind::Admitted {
                    fan: fan(ticket, seq, hash),
                },
            );
            self
        }
        fn end_as(&mut self, at: f64, ticket: &str, seq: u64, hash: &str) -> &mut Self {
            self.push(
                at,
                Kind::Ended {
                    fan: fan(ticket, seq, hash),
                },
            );
            self
        }
        fn audit(&self) -> Findings {
            audit(&self.log, None)
        }
    }

    /// `n` fans joining at second i and admitted at second i + wait(i), in
    /// the order `admit_order` gives (indexes into 1..=n).
    fn queue_of(n: u64, admit_order: &[u64]) -> Sale {
        let mut s = Sale::default();
        s.mode(Mode::Fifo);
        for i in 1..=n {
            s.join(i as f64, &format!("t{i}"), i);
        }
        for (k, &i) in admit_order.iter().enumerate() {
            s.admit(100.0 + k as f64, &format!("t{i}"), i);
        }
        s
    }

    #[test]
    fn a_clean_fifo_sale_reports_every_join_and_admission_in_order() {
        let order: Vec<u64> = (1..=10).collect();
        let f = queue_of(10, &order).audit();
        assert_eq!(
            f.report,
            Report {
                joined: 10,
                admitted: 10,
                duplicates: 0,
                lost: None,
                inversions: 0,
                kendall_tau: Some(1.0),
                redelivered: 0,
                // Fan i waits from i to 100 + (i - 1): 99 s for everyone.
                wait_p50_seconds: Some(99.0),
                wait_p99_seconds: Some(99.0),
            }
        );
        assert!(f.notes.is_empty(), "{:?}", f.notes);
    }

    #[test]
    fn a_fan_let_in_ahead_of_three_makes_three_inversions() {
        let f = queue_of(6, &[4, 1, 2, 3, 5, 6]).audit();
        assert_eq!(f.report.inversions, 3);
        assert_eq!(f.out_of_order_pairs, 3);
        // 15 pairs, 3 discordant: (12 - 3) / 15.
        assert_eq!(f.report.kendall_tau, Some(0.6));
    }

    #[test]
    fn random_mode_admissions_are_not_inversions_but_lower_tau() {
        let mut s = Sale::default();
        s.mode(Mode::Random);
        for i in 1..=4 {
            s.join(i as f64, &format!("t{i}"), i);
        }
        for (k, i) in [3u64, 1, 4, 2].into_iter().enumerate() {
            s.admit(10.0 + k as f64, &format!("t{i}"), i);
        }
        let f = s.audit();
        assert_eq!(f.report.inversions, 0);
        // Pairs: (3,1)d (3,4)c (3,2)d (1,4)c (1,2)c (4,2)d: (3 - 3) / 6.
        assert_eq!(f.report.kendall_tau, Some(0.0));
    }

    #[test]
    fn only_admissions_in_an_ordered_mode_count_as_inversions() {
        let mut s = Sale::default();
        s.mode(Mode::Random);
        for i in 1..=4 {
            s.join(i as f64, &format!("t{i}"), i);
        }
        s.admit(10.0, "t3", 3);
        s.mode(Mode::Closed);
        s.admit(11.0, "t2", 2)
            .admit(12.0, "t1", 1)
            .admit(13.0, "t4", 4);
        // t3 (random) is out of the check; t2 before t1 in `closed` is one.
        assert_eq!(s.audit().report.inversions, 1);
    }

    #[test]
    fn a_ticket_admitted_twice_is_one_duplicate() {
        let mut s = queue_of(3, &[1, 2, 3]);
        s.admit(200.0, "t2", 2);
        let f = s.audit();
        assert_eq!(f.report.duplicates, 1);
        assert_eq!(f.report.admitted, 4);
        assert!(
            matches!(&f.duplicates[..], [Duplicate::TicketAgain { ticket, .. }] if ticket == "t2")
        );
        // The second admission of t2 ties with the first: not an inversion.
        assert_eq!(f.report.inversions, 1, "t2 again after t3 is one pair");
    }

    #[test]
    fn one_identity_holding_two_live_admissions_is_a_duplicate() {
        let mut s = Sale::default();
        s.mode(Mode::Fifo);
        s.admit_as(1.0, "a", 1, "same")
            .admit_as(2.0, "b", 2, "same");
        let f = s.audit();
        assert_eq!(f.report.duplicates, 1);
        assert!(matches!(
            &f.duplicates[..],
            [Duplicate::IdentityTwice { ticket, live, .. }] if ticket == "b" && live == "a"
        ));
    }

    #[test]
    fn an_identity_admitted_again_after_its_session_ended_is_fine() {
        let mut s = Sale::default();
        s.mode(Mode::Fifo);
        s.admit_as(1.0, "a", 1, "same")
            .end_as(5.0, "a", 1, "same")
            .admit_as(6.0, "b", 2, "same");
        assert_eq!(s.audit().report.duplicates, 0);
    }

    #[test]
    fn copies_count_once_and_as_redelivered() {
        let mut s = queue_of(3, &[1, 2, 3]);
        let copies: Vec<Event> = s.log.events.values().take(2).cloned().collect();
        for e in copies.iter().chain(&copies[..1]) {
            s.log.add(Parsed::Event(e.clone()));
        }
        let f = s.audit();
        assert_eq!(f.report.redelivered, 3);
        assert_eq!(f.report.joined, 3);
        assert_eq!(f.report.admitted, 3);
        assert_eq!(f.report.duplicates, 0);
        assert!(s.log.conflicting.is_empty());
        // The same id with other content is no copy.
        let mut changed = copies[1].clone();
        changed.at_ms += 1;
        s.log.add(Parsed::Event(changed));
        assert_eq!(s.log.conflicting, vec![copies[1].id]);
        assert_eq!(s.log.redelivered, 3);
    }

    #[test]
    fn lost_admissions_are_those_redis_records_and_the_stream_lacks() {
        let s = queue_of(3, &[1, 2]);
        let recorded: BTreeMap<String, i64> =
            [("t1".into(), 5), ("t2".into(), 6), ("t9".into(), 7)].into();
        let f = audit(&s.log, Some(&recorded));
        assert_eq!(f.report.lost, Some(1));
        assert_eq!(f.lost, vec![("t9".to_string(), 7)]);
        assert_eq!(s.audit().report.lost, None);
    }

    #[test]
    fn waits_are_the_nearest_rank_percentiles() {
        let mut s = Sale::default();
        s.mode(Mode::Fifo);
        for i in 1..=100u64 {
            s.join(0.0, &format!("t{i}"), i);
        }
        for i in 1..=100u64 {
            // Fan i waits i seconds (admissions keep seq order).
            s.admit(i as f64, &format!("t{i}"), i);
        }
        let r = s.audit().report;
        assert_eq!(r.wait_p50_seconds, Some(50.0));
        assert_eq!(r.wait_p99_seconds, Some(99.0));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn fewer_than_two_admissions_have_no_tau() {
        let f = queue_of(2, &[2]).audit();
        assert_eq!(f.report.kendall_tau, None);
        assert_eq!(f.report.wait_p50_seconds, Some(98.0));
    }

    /// Five pre-queue fans (seqs 1..=5), one leaving before the opening and
    /// one after it, then the draw with `seed`.
    fn pre_queue(seed: [u8; 32]) -> (Sale, Vec<(String, u64)>) {
        let mut s = Sale::default();
        let opens = 60_000;
        s.push(
            0.0,
            Kind::ConfigChanged {
                mode: Mode::Fifo,
                opens_at_ms: Some(opens),
            },
        );
        for i in 1..=5u64 {
            s.push(
                i as f64,
                Kind::Joined {
                    fan: fan(&format!("p{i}"), i, &format!("h-p{i}")),
                    prequeue: true,
                },
            );
        }
        // p2 leaves before the opening (out of the draw); p4 after it (it
        // keeps its place, frozen).
        s.end_as(30.0, "p2", 2, "h-p2");
        s.end_as(61.0, "p4", 4, "h-p4");
        s.push(61.5, Kind::Drawn { seed, size: 4 });
        let members = [(1, "p1"), (3, "p3"), (4, "p4"), (5, "p5")];
        let order = draw::draw_order(4, seed);
        let placed = order
            .iter()
            .enumerate()
            .map(|(k, &i)| (members[i].1.to_string(), members[k].0))
            .collect();
        (s, placed)
    }

    #[test]
    fn pre_queue_fans_admitted_at_their_drawn_places_pass() {
        let seed = [42u8; 32];
        let (mut s, placed) = pre_queue(seed);
        let mut at = 70.0;
        for (ticket, seq) in &placed {
            if ticket != "p4" {
                s.admit(at, ticket, *seq);
                at += 1.0;
            }
        }
        let f = s.audit();
        assert_eq!(
            f.draws,
            vec![DrawCheck {
                id: EventId::Queue(9),
                size: 4,
                found: 4
            }]
        );
        assert_eq!(f.report.inversions, 0, "{:?}", f.draw_mismatches);
        assert_eq!(f.report.kendall_tau, Some(1.0));
        assert_eq!(f.report.joined, 5);
    }

    #[test]
    fn a_place_the_seed_does_not_give_is_an_inversion() {
        let seed = [42u8; 32];
        let (mut s, placed) = pre_queue(seed);
        // Admitted in drawn order but each reporting its join seq: every
        // fan the draw moved is a mismatch (the order itself may look fine).
        let mut moved = 0;
        for (k, (ticket, seq)) in placed.iter().enumerate() {
            let join_seq: u64 = ticket[1..].parse().unwrap();
            if join_seq != *seq && ticket != "p4" {
                moved += 1;
            }
            if ticket != "p4" {
                s.admit(70.0 + k as f64, ticket, join_seq);
            }
        }
        assert!(moved > 0, "the seed moved nobody: pick another");
        let f = s.audit();
        assert_eq!(f.draw_mismatches.len(), moved);
        assert_eq!(f.report.inversions, moved as u64 + f.out_of_order_pairs);
    }

    #[test]
    fn a_pre_queue_fan_admitted_before_the_draw_is_an_inversion() {
        let mut s = Sale::default();
        s.mode(Mode::Fifo);
        s.push(
            1.0,
            Kind::Joined {
                fan: fan("p1", 1, "h"),
                prequeue: true,
            },
        );
        s.admit_as(2.0, "p1", 1, "h");
        let f = s.audit();
        assert_eq!(f.report.inversions, 1);
        assert_eq!(f.draw_mismatches[0].expected, None);
        assert!(f.notes.iter().any(|n| n.contains("not drawn yet")));
    }

    #[test]
    fn a_draw_the_stream_cannot_replay_is_said_not_counted() {
        let (mut s, placed) = pre_queue([42u8; 32]);
        // Remove p5's join: the stream now shows 3 fans for a draw of 4.
        s.log
            .events
            .retain(|_, e| !matches!(&e.kind, Kind::Joined { fan, .. } if fan.ticket == "p5"));
        for (k, (ticket, _)) in placed.iter().enumerate() {
            s.admit(70.0 + k as f64, ticket, 100 + k as u64);
        }
        let f = s.audit();
        assert!(f.draw_mismatches.is_empty(), "{:?}", f.draw_mismatches);
        assert!(f.notes.iter().any(|n| n.contains("could not be replayed")));
    }

    #[test]
    fn sold_out_and_reopened_restore_the_mode() {
        let mut s = Sale::default();
        s.mode(Mode::Random);
        s.push(1.0, Kind::SoldOut);
        s.push(2.0, Kind::Reopened);
        for i in 1..=2 {
            s.join(3.0, &format!("t{i}"), i);
        }
        s.admit(4.0, "t2", 2).admit(5.0, "t1", 1);
        // Back in random mode: the swap is no inversion.
        assert_eq!(s.audit().report.inversions, 0);
    }

    #[test]
    fn admissions_before_any_configuration_are_checked_as_fifo_and_said() {
        let mut s = Sale::default();
        s.join(1.0, "t1", 1).join(1.0, "t2", 2);
        s.admit(2.0, "t2", 2).admit(3.0, "t1", 1);
        let f = s.audit();
        assert_eq!(f.report.inversions, 1);
        assert!(f.notes[0].contains("checked as fifo"), "{:?}", f.notes);
    }
}
