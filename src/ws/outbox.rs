//! A connection's queue of frames to write, and of notices from its operations and cohorts.
//!
//! Bounded for frames, like a channel, but it costs nothing while empty: a Tokio channel keeps
//! a block of 32 slots and its own state for as long as it lives, which for thousands of idle
//! screens is most of what each one costs. Here an idle connection holds an empty queue, and
//! the memory of a burst is given back once it is written.

use async_graphql::futures_util::task::AtomicWaker;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Poll;
use tokio::sync::Notify;

use orderhub_actors::channel::{Frame, Subscriber};

use super::protocol::NextEnvelope;
use crate::metrics::Raised;

/// What the connection writes.
pub(super) enum Out {
    /// A message, and the commit time of the event it carries, if it carries one.
    Text(String, Option<i64>),
    /// An event of a cohort for one subscription: the envelope is written around the
    /// cohort's encoded payload here, when it is written.
    Event {
        envelope: Arc<NextEnvelope>,
        frame: Arc<Frame>,
    },
    Ping,
}

/// What a connection's operations and subscription actors tell it.
pub(super) enum Notice {
    /// The task of operation `key` ended.
    Finished(u64),
    /// Operation `key` is a cohort member that caught up: its subscription actor writes to this
    /// connection directly from now on, its task ends, and the connection keeps the member.
    Member(u64, Box<(Subscriber, Raised)>),
    /// Operation `operation` ended on the server's side: `text` is its last message.
    Ended { operation: u64, text: String },
    /// The server stops: the connection closes with 1001.
    ServerStopping,
    /// Its subject opened more connections than it may hold; this was its oldest.
    Displaced,
}

pub(super) struct Outbox {
    queue: Mutex<Queue>,
    /// Wakes the connection: a frame or a notice arrived. One waiter, woken once per frame:
    /// an atomic hand-off, where a `Notify` would take its lock to wait and again to wake.
    ready: AtomicWaker,
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
            ready: AtomicWaker::new(),
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
        self.ready.wake();
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
            self.ready.wake();
        }
    }

    /// Waits until a frame or a notice is queued. For the connection alone: there is one
    /// waker.
    pub fn ready(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            // Registered before the check: a frame queued after it still wakes the connection.
            self.ready.register(cx.waker());
            let queue = self.lock();
            match queue.frames.is_empty() && queue.notices.is_empty() {
                true => Poll::Pending,
                false => Poll::Ready(()),
            }
        })
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

/// The node's open WebSocket connections, to tell each one, through its outbox, that the
/// server stops, and to hold each token subject to its share of them. A node-wide signal that
/// every connection waited on would be polled, under its lock, each time a connection wrote a
/// frame.
#[derive(Clone, Default)]
pub struct OpenConnections {
    registry: Arc<Mutex<Registry>>,
}

#[derive(Default)]
struct Registry {
    stopping: bool,
    next: u64,
    /// Each connection's outbox, and its subject once `connection_init` named one.
    open: HashMap<u64, (Weak<Outbox>, Option<Arc<str>>)>,
    /// Connections per subject, oldest first.
    subjects: HashMap<Arc<str>, VecDeque<u64>>,
    /// Connections one subject may hold; 0: any number.
    per_subject: usize,
}

/// A connection's place among the open ones; dropping it leaves.
pub(super) struct Registration {
    connections: OpenConnections,
    id: u64,
}

impl OpenConnections {
    /// `per_subject`: connections one token subject may hold (0: any number).
    pub fn new(per_subject: usize) -> OpenConnections {
        let registry = Registry {
            per_subject,
            ..Registry::default()
        };
        OpenConnections {
            registry: Arc::new(Mutex::new(registry)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection; `None` once the server stops.
    pub(super) fn open(&self, outbox: &Arc<Outbox>) -> Option<Registration> {
        let mut registry = self.lock();
        if registry.stopping {
            return None;
        }
        let id = registry.next;
        registry.next += 1;
        registry.open.insert(id, (Arc::downgrade(outbox), None));
        Some(Registration {
            connections: self.clone(),
            id,
        })
    }

    /// Tells every open connection, and every one that opens from now on, that the server
    /// stops: each closes with 1001.
    pub fn stop_all(&self) {
        let open: Vec<Weak<Outbox>> = {
            let mut registry = self.lock();
            registry.stopping = true;
            registry
                .open
                .values()
                .map(|(outbox, _)| outbox.clone())
                .collect()
        };
        for outbox in open.iter().filter_map(Weak::upgrade) {
            outbox.notify(Notice::ServerStopping);
        }
    }
}

impl Registration {
    /// The connection belongs to `subject` (its token's `sub`). If that makes one more than
    /// the subject may hold, its oldest connection is told to close (`Notice::Displaced`).
    pub(super) fn identify(&self, subject: &str) {
        let displaced = {
            let mut registry = self.connections.lock();
            let registry = &mut *registry;
            let Some((_, slot)) = registry.open.get_mut(&self.id) else {
                return;
            };
            let subject: Arc<str> = Arc::from(subject);
            *slot = Some(subject.clone());
            let held = registry.subjects.entry(subject).or_default();
            held.push_back(self.id);
            let mut displaced = Vec::new();
            while registry.per_subject > 0 && held.len() > registry.per_subject {
                let Some(oldest) = held.pop_front() else {
                    break;
                };
                if let Some((outbox, subject)) = registry.open.get_mut(&oldest) {
                    // Counted no more: its place is free now, not once it has closed.
                    *subject = None;
                    displaced.push(outbox.clone());
                }
            }
            displaced
        };
        for outbox in displaced.iter().filter_map(Weak::upgrade) {
            outbox.notify(Notice::Displaced);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut registry = self.connections.lock();
        let Some((_, Some(subject))) = registry.open.remove(&self.id) else {
            return;
        };
        if let Some(held) = registry.subjects.get_mut(&subject) {
            held.retain(|id| *id != self.id);
            if held.is_empty() {
                registry.subjects.remove(&subject);
            }
        }
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

    #[test]
    fn stopping_reaches_every_open_connection_and_refuses_new_ones() {
        let connections = OpenConnections::default();
        let (a, b) = (Arc::new(Outbox::new(4)), Arc::new(Outbox::new(4)));
        let _a = connections.open(&a).expect("open");
        let left = connections.open(&b).expect("open");
        drop(left);
        connections.stop_all();
        assert!(matches!(a.take_notices()[..], [Notice::ServerStopping]));
        assert!(
            b.take_notices().is_empty(),
            "a closed connection is not told"
        );
        assert!(connections.open(&b).is_none());
    }
}
