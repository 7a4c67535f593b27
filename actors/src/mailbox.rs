//! A bound on an actor's mailbox. ractor's mailboxes are unbounded, so whoever sends to a
//! bounded actor asks its `Mailbox` first, and the actor says when it has taken a message out.
//! Past the bound a message is refused, and the first refusal since the actor last caught up
//! is reported as such, so that the actor is told once, not once per message.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Debug)]
pub struct Mailbox {
    bound: usize,
    /// Messages sent and not yet taken out.
    queued: AtomicUsize,
    /// A message was refused since the actor last called `recovered`.
    overflowed: AtomicBool,
}

/// What a sender may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send the message; the actor calls `taken` when it handles it.
    Admitted,
    /// The mailbox is full, and this is the first refusal: tell the actor (with a message
    /// that is not counted).
    Overflowed,
    /// The mailbox is full and the actor was told already.
    Refused,
}

impl Mailbox {
    /// A mailbox that admits `bound` messages (at least one).
    pub fn new(bound: usize) -> Mailbox {
        Mailbox {
            bound: bound.max(1),
            queued: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
        }
    }

    pub fn admit(&self) -> Admission {
        if self.queued.fetch_add(1, Ordering::AcqRel) < self.bound {
            return Admission::Admitted;
        }
        self.queued.fetch_sub(1, Ordering::AcqRel);
        match self.overflowed.swap(true, Ordering::AcqRel) {
            false => Admission::Overflowed,
            true => Admission::Refused,
        }
    }

    /// The actor took an admitted message out.
    pub fn taken(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    /// The actor dealt with an overflow: the next refusal is reported again.
    pub fn recovered(&self) {
        self.overflowed.store(false, Ordering::Release);
    }

    /// Admitted messages not yet taken out.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_bound_and_reports_the_first_refusal_once() {
        let mailbox = Mailbox::new(2);
        assert_eq!(mailbox.admit(), Admission::Admitted);
        assert_eq!(mailbox.admit(), Admission::Admitted);
        assert_eq!(mailbox.admit(), Admission::Overflowed);
        assert_eq!(mailbox.admit(), Admission::Refused);
        assert_eq!(mailbox.queued(), 2);
        mailbox.taken();
        assert_eq!(mailbox.admit(), Admission::Admitted, "room again");
        assert_eq!(mailbox.admit(), Admission::Refused, "not recovered yet");
        mailbox.recovered();
        assert_eq!(mailbox.admit(), Admission::Overflowed);
    }

    #[test]
    fn a_zero_bound_admits_one() {
        let mailbox = Mailbox::new(0);
        assert_eq!(mailbox.admit(), Admission::Admitted);
        assert_eq!(mailbox.admit(), Admission::Overflowed);
    }
}
