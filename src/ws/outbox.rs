//! A connection's queue of frames to write, and of notices from its operations and cohorts.
//!
//! Bounded for frames, like a channel, but it costs nothing while empty: a Tokio channel keeps
//! a block of 32 slots and its own state for as long as it lives, which for thousands of idle
//! screens is most of what each one costs. Here an idle connection holds an empty queue, and
//! the memory of a burst is given back once it is written.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

use super::connection::{Notice, Out};

pub(super) struct Outbox {
    queue: Mutex<Queue>,
    /// Wakes the connection: a frame or a notice arrived.
    ready: Notify,
    /// Wakes operations waiting for room.
    room: Notify,
    capacity: usize,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Out>,
    notices: Vec<Notice>,
    /// The connection is gone: nothing is queued any more.
    closed: bool,
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    Full,
    Closed,
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            room: Notify::new(),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Plain bookkeeping: a panic elsewhere cannot leave it inconsistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `out` if there is room.
    pub fn try_send(&self, out: Out) -> Result<(), Refused> {
        self.try_queue(out).map_err(|(refused, _)| refused)
    }

    fn try_queue(&self, out: Out) -> Result<(), (Refused, Out)> {
        let mut queue = self.lock();
        if queue.closed {
            return Err((Refused::Closed, out));
        }
        if queue.frames.len() >= self.capacity {
            return Err((Refused::Full, out));
        }
        queue.frames.push_back(out);
        drop(queue);
        self.ready.notify_one();
        Ok(())
    }

    /// Queues `out` even beyond the capacity: the last message of a subscription, at most
    /// one each.
    pub fn force(&self, out: Out) {
        self.unbounded(|queue| queue.frames.push_back(out));
    }

    /// Queues `out`, waiting for room. False when the connection is gone.
    pub async fn send(&self, mut out: Out) -> bool {
        loop {
            // Registered before the check: room made after it still wakes this.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_queue(out) {
                Ok(()) => return true,
                Err((Refused::Closed, _)) => return false,
                Err((Refused::Full, again)) => out = again,
            }
            room.await;
        }
    }

    /// Tells the connection something; notices are never refused while it lives.
    pub fn notify(&self, notice: Notice) {
        self.unbounded(|queue| queue.notices.push(notice));
    }

    fn unbounded(&self, push: impl FnOnce(&mut Queue)) {
        let mut queue = self.lock();
        if !queue.closed {
            push(&mut queue);
            drop(queue);
            self.ready.notify_one();
        }
    }

    /// Waits until a frame or a notice is queued.
    pub async fn ready(&self) {
        loop {
            let ready = self.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            {
                let queue = self.lock();
                if !queue.frames.is_empty() || !queue.notices.is_empty() {
                    return;
                }
            }
            ready.await;
        }
    }

    /// The next frame to write.
    pub fn pop(&self) -> Option<Out> {
        let mut queue = self.lock();
        let was_full = queue.frames.len() >= self.capacity;
        let out = queue.frames.pop_front();
        if queue.frames.is_empty() {
            // What an idle connection holds: nothing.
            queue.frames = VecDeque::new();
        }
        drop(queue);
        if was_full {
            self.room.notify_waiters();
        }
        out
    }

    /// The notices queued so far.
    pub fn take_notices(&self) -> Vec<Notice> {
        std::mem::take(&mut self.lock().notices)
    }

    /// The connection is gone: what is queued is dropped, waiting operations learn of it.
    pub fn close(&self) {
        let mut queue = self.lock();
        queue.closed = true;
        let frames = std::mem::take(&mut queue.frames);
        let notices = std::mem::take(&mut queue.notices);
        drop(queue);
        self.room.notify_waiters();
        // Outside the lock: a notice may hold a cohort membership, which leaves on drop.
        drop((frames, notices));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn text(n: i64) -> Out {
        Out::Text(n.to_string(), Some(n))
    }

    fn popped(outbox: &Outbox) -> Vec<i64> {
        std::iter::from_fn(|| outbox.pop())
            .map(|out| match out {
                Out::Text(_, Some(n)) => n,
                _ => -1,
            })
            .collect()
    }

    #[test]
    fn frames_are_bounded_but_the_last_message_of_a_subscription_is_not() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.try_send(text(1)), Ok(()));
        assert_eq!(outbox.try_send(text(2)), Ok(()));
        assert_eq!(outbox.try_send(text(3)), Err(Refused::Full));
        outbox.force(text(4));
        assert_eq!(popped(&outbox), [1, 2, 4]);
        assert_eq!(
            outbox.lock().frames.capacity(),
            0,
            "an empty queue holds no memory"
        );
        outbox.close();
        assert_eq!(outbox.try_send(text(5)), Err(Refused::Closed));
        outbox.force(text(6));
        assert_eq!(popped(&outbox), Vec::<i64>::new());
    }

    #[tokio::test]
    async fn a_sender_waits_for_room_and_learns_when_the_connection_is_gone() {
        let outbox = Arc::new(Outbox::new(1));
        assert!(outbox.send(text(1)).await);
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.send(text(2)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "no room yet");
        assert_eq!(popped(&outbox), [1]);
        assert!(waiting.await.unwrap());
        assert_eq!(popped(&outbox), [2]);

        assert!(outbox.send(text(3)).await);
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.send(text(4)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        outbox.close();
        assert!(!waiting.await.unwrap());
    }

    #[tokio::test]
    async fn the_connection_wakes_for_a_frame_or_a_notice() {
        let outbox = Arc::new(Outbox::new(4));
        let woken = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.ready().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!woken.is_finished(), "nothing queued yet");
        outbox.notify(Notice::Finished(7));
        tokio::time::timeout(Duration::from_secs(5), woken)
            .await
            .expect("woken by the notice")
            .unwrap();
        assert!(matches!(outbox.take_notices()[..], [Notice::Finished(7)]));
        assert!(outbox.try_send(text(1)).is_ok());
        tokio::time::timeout(Duration::from_secs(5), outbox.ready())
            .await
            .expect("a queued frame is ready at once");
    }
}
