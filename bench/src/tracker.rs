//! What one subscriber must see: its restaurant's events with seq strictly +1 each, from
//! where it started, up to the last seq the server assigned.
//!
//! - **missing**: seqs never received — gaps, and at the end everything between the last
//!   seq received and the server's final seq.
//! - **duplicates**: a seq received again.
//! - **out of order**: a seq that was skipped (a gap opened) and arrived later; it is then
//!   no longer missing.

use serde::Serialize;

#[derive(Debug, Clone)]
pub struct Tracker {
    /// The highest seq received (or the start point).
    last: i64,
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    /// Seqs skipped so far, as inclusive ranges in ascending order; normally empty.
    gaps: Vec<(i64, i64)>,
}

/// A subscriber's figures at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub received: u64,
    pub missing: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
}

impl Verdict {
    pub fn add(&mut self, other: Verdict) {
        self.received += other.received;
        self.missing += other.missing;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
    }

    pub fn is_clean(&self) -> bool {
        self.missing == 0 && self.duplicates == 0 && self.out_of_order == 0
    }
}

impl Tracker {
    /// A subscriber that expects `after + 1` next (after = 0: from the restaurant's first
    /// event; resuming with `after: n`: from n + 1).
    pub fn new(after: i64) -> Self {
        Self {
            last: after,
            received: 0,
            duplicates: 0,
            out_of_order: 0,
            gaps: Vec::new(),
        }
    }

    /// The seq to resume after.
    pub fn last(&self) -> i64 {
        self.last
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn observe(&mut self, seq: i64) {
        if seq == self.last + 1 {
            self.last = seq;
            self.received += 1;
        } else if seq > self.last {
            self.gaps.push((self.last + 1, seq - 1));
            self.last = seq;
            self.received += 1;
        } else if let Some(index) = self.gaps.iter().position(|&(a, b)| a <= seq && seq <= b) {
            // A late arrival that fills (part of) a gap.
            let (a, b) = self.gaps[index];
            match (seq == a, seq == b) {
                (true, true) => {
                    self.gaps.remove(index);
                }
                (true, false) => self.gaps[index].0 = seq + 1,
                (false, true) => self.gaps[index].1 = seq - 1,
                (false, false) => {
                    self.gaps[index].1 = seq - 1;
                    self.gaps.insert(index + 1, (seq + 1, b));
                }
            }
            self.out_of_order += 1;
            self.received += 1;
        } else {
            self.duplicates += 1;
        }
    }

    /// Whether every seq up to `final_seq` has arrived.
    pub fn complete(&self, final_seq: i64) -> bool {
        self.last >= final_seq && self.gaps.is_empty()
    }

    /// The figures once the server's final seq for the restaurant is known.
    pub fn verdict(&self, final_seq: i64) -> Verdict {
        let in_gaps: i64 = self.gaps.iter().map(|&(a, b)| b - a + 1).sum();
        let tail = (final_seq - self.last).max(0);
        Verdict {
            received: self.received,
            missing: u64::try_from(in_gaps + tail).unwrap_or(0),
            duplicates: self.duplicates,
            out_of_order: self.out_of_order,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(after: i64, seqs: &[i64], final_seq: i64) -> Verdict {
        let mut tracker = Tracker::new(after);
        for &seq in seqs {
            tracker.observe(seq);
        }
        tracker.verdict(final_seq)
    }

    fn verdict(received: u64, missing: u64, duplicates: u64, out_of_order: u64) -> Verdict {
        Verdict {
            received,
            missing,
            duplicates,
            out_of_order,
        }
    }

    #[test]
    fn a_clean_stream_is_clean() {
        let v = run(0, &[1, 2, 3, 4, 5], 5);
        assert_eq!(v, verdict(5, 0, 0, 0));
        assert!(v.is_clean());
    }

    #[test]
    fn gaps_are_missing() {
        assert_eq!(run(0, &[1, 2, 5, 6], 6), verdict(4, 2, 0, 0));
        assert_eq!(run(0, &[2, 3], 3), verdict(2, 1, 0, 0));
        assert_eq!(run(0, &[1, 3, 5, 7], 7), verdict(4, 3, 0, 0));
    }

    #[test]
    fn events_never_received_at_the_end_are_missing() {
        assert_eq!(run(0, &[1, 2, 3], 10), verdict(3, 7, 0, 0));
        assert_eq!(run(0, &[], 4), verdict(0, 4, 0, 0));
        let tracker = Tracker::new(0);
        assert!(!tracker.complete(1));
        assert!(tracker.complete(0));
    }

    #[test]
    fn repeats_are_duplicates() {
        assert_eq!(run(0, &[1, 2, 2, 3, 1], 3), verdict(3, 0, 2, 0));
        // Resuming at 5 and being sent 5 again is a duplicate.
        assert_eq!(run(5, &[5, 6], 6), verdict(1, 0, 1, 0));
    }

    #[test]
    fn late_arrivals_are_out_of_order_not_missing() {
        assert_eq!(run(0, &[1, 3, 2, 4], 4), verdict(4, 0, 0, 1));
        // Several late ones inside one gap, in any order, and then one of them again.
        assert_eq!(run(0, &[1, 6, 4, 2, 5, 3, 4], 6), verdict(6, 0, 1, 4));
        // A gap partly filled stays partly missing.
        assert_eq!(run(0, &[1, 6, 3], 6), verdict(3, 3, 0, 1));
    }

    #[test]
    fn a_resumed_subscriber_expects_the_next_seq() {
        let mut tracker = Tracker::new(0);
        for seq in 1..=4 {
            tracker.observe(seq);
        }
        // Cut, then resumed with after: last.
        let after = tracker.last();
        assert_eq!(after, 4);
        for seq in after + 1..=8 {
            tracker.observe(seq);
        }
        assert!(tracker.complete(8));
        assert_eq!(tracker.verdict(8), verdict(8, 0, 0, 0));
        // Resuming from 10 means 1..=10 are not expected at all.
        assert_eq!(run(10, &[11, 12], 12), verdict(2, 0, 0, 0));
    }

    #[test]
    fn completeness_needs_every_gap_filled() {
        let mut tracker = Tracker::new(0);
        tracker.observe(2);
        assert!(!tracker.complete(2));
        tracker.observe(1);
        assert!(tracker.complete(2));
    }
}
