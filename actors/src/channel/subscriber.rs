//! One actor per subscription, a supervised child of its restaurant's channel. It owns what
//! is this subscriber's alone: its bounded mailbox, its seq position (the one place a
//! subscription drops what it has seen), its token's expiry and its slow-consumer cut. Where
//! its deliveries go is an `Outlet`: a bounded buffer that a subscription's own execution
//! reads, or, for a member of a cohort, the connection's queue of frames.

use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::registry::ChannelInner;
use crate::domain::{Event, OrderId, RestaurantId};
use crate::mailbox::{Admission, Mailbox};

/// Which of a channel's events a subscription wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    Order(OrderId),
}

impl Filter {
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Filter::All => true,
            Filter::Order(id) => event.kind.order().is_some_and(|order| &order.id == id),
        }
    }
}

/// One event as a cohort renders it once for all its members: the bytes, and which event they
/// carry.
#[derive(Debug)]
pub struct Frame {
    pub seq: i64,
    /// When the event was committed, in milliseconds since the Unix epoch.
    pub committed_at_ms: i64,
    /// The rendered response, opaque here.
    pub payload: Box<str>,
}

/// What a subscription actor hands on.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// An event, for a subscription that renders its own.
    Event(Arc<Event>),
    /// An event rendered by the subscription's cohort.
    Frame(Arc<Frame>),
}

impl Delivery {
    pub fn seq(&self) -> i64 {
        match self {
            Delivery::Event(event) => event.seq,
            Delivery::Frame(frame) => frame.seq,
        }
    }
}

/// Why a subscription ended on the server's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The subscriber fell a buffer's worth behind. What is still buffered is dropped.
    SlowConsumer,
    /// The caller's token expired.
    TokenExpired,
    /// What fed it ended: the cohort's execution completed or failed.
    SourceEnded,
    /// The actor or its channel failed; the client resumes with `after`.
    Interrupted,
}

/// Why an outlet did not take a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Full: the subscriber is cut as slow.
    Full,
    /// Its reader is gone: the subscription ended on the client's side.
    Gone,
}

/// Where a subscription's deliveries go, typed by what it takes (`Arc<Event>` or
/// `Arc<Frame>`); implemented by whoever serves the subscriber.
pub trait Outlet<T>: Send + 'static {
    /// Hands one delivery on, never waiting.
    fn offer(&mut self, item: T) -> Result<(), Refused>;
    /// The subscription ended: why, and the last seq handed on (or, while it caught up, the
    /// one it resumed after). Called once, unless the reader went first.
    fn end(&mut self, reason: EndReason, last_seq: i64);
}

/// Where a subscription's deliveries come from, each with the outlet that takes them.
pub enum Source {
    /// The channel's events that match the filter, for a subscription that renders its own.
    Events(Filter, Box<dyn Outlet<Arc<Event>>>),
    /// Its cohort's frames: the cohort sends them (`SubscriberMsg::Deliver`), the channel
    /// only supervises.
    Cohort(Box<dyn Outlet<Arc<Frame>>>),
}

impl Source {
    /// Whether the channel feeds it its events.
    pub fn is_fed_by_channel(&self) -> bool {
        matches!(self, Source::Events(..))
    }

    fn end(&mut self, reason: EndReason, last_seq: i64) {
        match self {
            Source::Events(_, outlet) => outlet.end(reason, last_seq),
            Source::Cohort(outlet) => outlet.end(reason, last_seq),
        }
    }
}

/// What a new subscription actor starts with.
pub struct Joining {
    /// Where its deliveries come from and go.
    pub source: Source,
    /// When its caller's token expires, from now.
    pub expires_in: Option<Duration>,
    /// The subscriber has everything up to here (a cohort member's start; `None`: where the
    /// channel is now).
    pub position: Option<i64>,
    /// The subscriber catches up on its own first: deliveries wait in the actor (as many as
    /// its mailbox holds) until `SubscriberMsg::CaughtUp`.
    pub catching_up: bool,
    /// It feeds a cohort's shared execution rather than serving one subscriber: counted apart.
    pub shared: bool,
}

impl Joining {
    /// A subscriber of the channel's events that match `filter`, from where the channel is.
    pub fn events(filter: Filter, outlet: Box<dyn Outlet<Arc<Event>>>) -> Joining {
        Joining {
            source: Source::Events(filter, outlet),
            expires_in: None,
            position: None,
            catching_up: false,
            shared: false,
        }
    }
}

pub enum SubscriberMsg {
    /// Counted in the mailbox.
    Deliver(Delivery),
    /// The mailbox refused a delivery: the subscriber is too slow.
    Overflowed,
    /// The subscriber caught up on its own to this seq: what waits after it goes on now.
    CaughtUp(i64),
    /// Whoever fed it ended.
    SourceEnded,
    Expired,
}

/// One subscription's actor.
pub struct SubscriptionActor;

pub struct SubscriberState {
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    restaurant: RestaurantId,
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    shared: bool,
    source: Source,
    /// The last seq handed on (the subscriber has everything up to here).
    position: i64,
    /// Deliveries waiting while the subscriber catches up.
    held: Option<VecDeque<Delivery>>,
    mailbox: Arc<Mailbox>,
    ended: bool,
    /// The timer of its token's expiry: a task of its own, stopped with the actor.
    expiry: Option<tokio::task::AbortHandle>,
    inner: Arc<ChannelInner>,
}

impl Actor for SubscriptionActor {
    type Msg = SubscriberMsg;
    type State = SubscriberState;
    /// The subscriber, its restaurant, where the channel is, its mailbox's bound.
    type Arguments = (Joining, RestaurantId, i64, Arc<Mailbox>, Arc<ChannelInner>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (joining, restaurant, live_after, mailbox, inner): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let expiry = joining.expires_in.map(|expires_in| {
            myself
                .send_after(expires_in, || SubscriberMsg::Expired)
                .abort_handle()
        });
        Ok(SubscriberState {
            restaurant,
            shared: joining.shared,
            source: joining.source,
            position: joining.position.unwrap_or(live_after),
            held: joining.catching_up.then(VecDeque::new),
            mailbox,
            ended: false,
            expiry,
            inner,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SubscriberMsg::Deliver(delivery) => {
                state.mailbox.taken();
                // A subscriber's actor, not one that feeds a cohort's execution.
                #[cfg(feature = "fault-injection")]
                if !state.shared {
                    crate::faults::hook(crate::faults::Target::Subscription, &state.restaurant);
                }
                state.deliver(delivery);
            }
            SubscriberMsg::Overflowed => state.end(EndReason::SlowConsumer),
            SubscriberMsg::CaughtUp(seq) => {
                state.position = state.position.max(seq);
                for delivery in state.held.take().unwrap_or_default() {
                    state.deliver(delivery);
                }
            }
            SubscriberMsg::SourceEnded => state.end(EndReason::SourceEnded),
            SubscriberMsg::Expired => state.end(EndReason::TokenExpired),
        }
        if state.ended {
            myself.stop(None);
        }
        Ok(())
    }
}

impl SubscriberState {
    fn deliver(&mut self, delivery: Delivery) {
        if self.ended {
            return;
        }
        if let (Source::Events(filter, _), Delivery::Event(event)) = (&self.source, &delivery) {
            if !filter.matches(event) {
                return;
            }
        }
        if let Some(held) = self.held.as_mut() {
            if held.len() >= self.inner.config.buffer {
                return self.end(EndReason::SlowConsumer);
            }
            held.push_back(delivery);
            return;
        }
        // Seen already: a cohort member that resumed past it, or an event its own catch-up
        // delivered.
        let seq = delivery.seq();
        if seq <= self.position {
            return;
        }
        let offered = match (&mut self.source, delivery) {
            (Source::Events(_, outlet), Delivery::Event(event)) => outlet.offer(event),
            (Source::Cohort(outlet), Delivery::Frame(frame)) => outlet.offer(frame),
            (_, delivery) => {
                // Whoever feeds it sent the wrong kind: a fault of the server's, never
                // skipped silently. The client resumes from its position.
                tracing::error!(
                    seq = delivery.seq(),
                    "a subscription was sent a delivery of the wrong kind"
                );
                return self.end(EndReason::Interrupted);
            }
        };
        match offered {
            Ok(()) => self.position = seq,
            Err(Refused::Full) => self.end(EndReason::SlowConsumer),
            Err(Refused::Gone) => self.ended = true,
        }
    }

    /// Ends the subscription once; the actor stops after the message at hand.
    fn end(&mut self, reason: EndReason) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        if reason == EndReason::SlowConsumer {
            self.inner
                .stats
                .slow_consumer_cuts
                .fetch_add(1, Ordering::Relaxed);
        }
        self.source.end(reason, self.position);
    }
}

/// However the actor ends (stopped with its channel, or failed, when ractor skips
/// `post_stop`), its subscriber hears of it unless it ended already.
impl Drop for SubscriberState {
    fn drop(&mut self) {
        if let Some(expiry) = &self.expiry {
            expiry.abort();
        }
        if !self.ended {
            self.source.end(EndReason::Interrupted, self.position);
        }
    }
}

/// A subscription actor, as whoever feeds or serves it holds it. Dropping it stops the actor.
pub struct Subscriber {
    /// The channel had fanned out every event up to here when the subscriber joined.
    pub live_after: i64,
    actor: ActorRef<SubscriberMsg>,
    mailbox: Arc<Mailbox>,
}

impl Subscriber {
    pub(crate) fn new(
        live_after: i64,
        actor: ActorRef<SubscriberMsg>,
        mailbox: Arc<Mailbox>,
    ) -> Self {
        Self {
            live_after,
            actor,
            mailbox,
        }
    }

    /// A sender of deliveries to this subscriber, that holds it no longer than it lives.
    pub fn feeder(&self) -> Feeder {
        Feeder {
            actor: self.actor.clone(),
            mailbox: self.mailbox.clone(),
        }
    }

    /// The subscriber caught up on its own to `seq` (see `Joining::catching_up`).
    pub fn caught_up(&self, seq: i64) {
        let _ = self.actor.cast(SubscriberMsg::CaughtUp(seq));
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.actor.stop(None);
    }
}

/// Sends deliveries to one subscription actor through its bounded mailbox, never waiting.
#[derive(Clone)]
pub struct Feeder {
    actor: ActorRef<SubscriberMsg>,
    mailbox: Arc<Mailbox>,
}

impl Feeder {
    /// False once the actor is gone.
    pub fn send(&self, delivery: Delivery) -> bool {
        let message = match self.mailbox.admit() {
            Admission::Admitted => SubscriberMsg::Deliver(delivery),
            Admission::Overflowed => SubscriberMsg::Overflowed,
            Admission::Refused => return true,
        };
        self.actor.cast(message).is_ok()
    }

    /// Whoever fed the subscriber ended.
    pub fn source_ended(&self) {
        let _ = self.actor.cast(SubscriberMsg::SourceEnded);
    }

    /// The subscriber fell behind before its actor started: it is cut.
    pub fn overflowed(&self) {
        let _ = self.actor.cast(SubscriberMsg::Overflowed);
    }
}

/// A subscription whose own execution reads its events from a bounded buffer: every event
/// with seq > `live_after` that matches its filter arrives in `events`, in seq order, with no
/// gap; older ones are the reader's to replay from the store. Dropping it stops its actor.
pub struct Subscription {
    pub live_after: i64,
    pub events: mpsc::Receiver<Arc<Event>>,
    ended: Arc<OnceLock<EndReason>>,
    _subscriber: Subscriber,
}

impl Subscription {
    /// Why the buffer stopped being fed, once it has.
    pub fn ended(&self) -> Option<EndReason> {
        self.ended.get().copied()
    }

    /// An outlet into a new buffer of `capacity` events, and what its reader keeps.
    pub(crate) fn buffer(
        capacity: usize,
    ) -> (Box<dyn Outlet<Arc<Event>>>, impl FnOnce(Subscriber) -> Self) {
        let (sender, events) = mpsc::channel(capacity.max(1));
        let ended = Arc::new(OnceLock::new());
        let outlet = Box::new(Buffer {
            sender,
            ended: ended.clone(),
        });
        let subscription = move |subscriber: Subscriber| Subscription {
            live_after: subscriber.live_after,
            events,
            ended,
            _subscriber: subscriber,
        };
        (outlet, subscription)
    }
}

/// The outlet of a `Subscription`: its buffer, and why it ended.
struct Buffer {
    sender: mpsc::Sender<Arc<Event>>,
    ended: Arc<OnceLock<EndReason>>,
}

impl Outlet<Arc<Event>> for Buffer {
    fn offer(&mut self, event: Arc<Event>) -> Result<(), Refused> {
        self.sender.try_send(event).map_err(|error| match error {
            TrySendError::Full(_) => Refused::Full,
            TrySendError::Closed(_) => Refused::Gone,
        })
    }

    fn end(&mut self, reason: EndReason, _last_seq: i64) {
        let _ = self.ended.set(reason);
    }
}
