use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::registry::ChannelInner;
use super::subscriber::{Delivery, Feeder, Joining, Subscriber, SubscriptionActor};
use crate::domain::{Event, RestaurantId};
use crate::mailbox::{Admission, Mailbox};
use crate::ports::{BusSignal, Listening};
use crate::CommandError;

/// Events read from the store per round trip when catching up.
const CATCH_UP_PAGE: usize = 500;

pub enum ChannelMsg {
    Bus(BusSignal),
    /// Starts a subscription actor under this channel.
    Join {
        joining: Joining,
        reply: RpcReplyPort<Result<Subscriber, CommandError>>,
    },
    /// Read what the store has past the last event fanned out: fills gaps, and delivers events
    /// whose publication was lost (a node died between commit and publish, the bus was down).
    CatchUp,
    /// `ChannelConfig::linger` has passed since the channel started: it stops unless someone
    /// joined.
    Unwatched,
}

/// One restaurant's live events on this node: puts them in seq order, fills gaps from the
/// store, and fans each out to its subscribers without waiting for any of them.
pub struct ChannelActor;

pub struct ChannelState {
    /// Bus events on their way in.
    inflow: Arc<Mailbox>,
    restaurant: RestaurantId,
    inner: Arc<ChannelInner>,
    /// Every event up to here has been fanned out.
    last_seq: i64,
    /// Events that arrived ahead of a gap.
    pending: BTreeMap<i64, Arc<Event>>,
    gap_check_scheduled: bool,
    /// Every subscription actor, with its feeder if the channel feeds it, and whether it
    /// serves a cohort's shared execution rather than one subscriber.
    subscribers: HashMap<ActorId, (Option<Feeder>, bool)>,
    _listening: Listening,
    /// The periodic catch-up's timer.
    _catching_up: Timer<()>,
    /// Sends `Unwatched` unless a subscriber joins first.
    linger: Option<Timer<Result<(), ractor::MessagingErr<ChannelMsg>>>>,
}

/// A timer task of the channel's, cancelled when dropped: with the channel's state, however
/// the channel ends, so that none outlives it.
struct Timer<T>(JoinHandle<T>);

impl<T> Drop for Timer<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Actor for ChannelActor {
    type Msg = ChannelMsg;
    type State = ChannelState;
    type Arguments = (RestaurantId, Arc<ChannelInner>, Arc<Mailbox>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (restaurant, inner, inflow): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Listen first, then read the high-water mark: an event published in between is
        // either at or below the mark (dropped as seen) or above it (delivered).
        let (me, queue, refused) = (myself.clone(), inflow.clone(), inner.clone());
        let listening = inner.bus.listen(
            &restaurant,
            Arc::new(move |signal| {
                let signal = match signal {
                    BusSignal::Event(event) => match queue.admit() {
                        Admission::Admitted => BusSignal::Event(event),
                        // The store has it: one catch-up brings every event dropped until then.
                        refusal => {
                            refused.stats.inflow_refused.fetch_add(1, Ordering::Relaxed);
                            match refusal {
                                Admission::Overflowed => BusSignal::Resync,
                                _ => return,
                            }
                        }
                    },
                    signal => signal,
                };
                let _ = me.cast(ChannelMsg::Bus(signal));
            }),
        );
        let last_seq = inner
            .store
            .history(&restaurant)
            .await?
            .map_or(0, |h| h.last_seq);
        let catching_up = myself.send_interval(inner.config.catch_up_every, || ChannelMsg::CatchUp);
        // A channel started for a join has it at once; one restarted after a failure waits
        // for its subscribers to come back, and no longer than this.
        let linger = myself.send_after(inner.config.linger, || ChannelMsg::Unwatched);
        Ok(ChannelState {
            inflow,
            restaurant,
            inner,
            last_seq,
            pending: BTreeMap::new(),
            gap_check_scheduled: false,
            subscribers: HashMap::new(),
            _listening: listening,
            _catching_up: Timer(catching_up),
            linger: Some(Timer(linger)),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ChannelMsg::Bus(BusSignal::Event(event)) => {
                state.inflow.taken();
                #[cfg(feature = "fault-injection")]
                crate::faults::hook(crate::faults::Target::Channel, &state.restaurant);
                state.accept(event, &myself)
            }
            ChannelMsg::Bus(BusSignal::Resync) | ChannelMsg::CatchUp => {
                state.catch_up(&myself).await
            }
            ChannelMsg::Join { joining, reply } => {
                let _ = reply.send(state.join(joining, &myself).await);
            }
            ChannelMsg::Unwatched if state.subscribers.is_empty() => state.stop(&myself),
            ChannelMsg::Unwatched => {}
        }
        Ok(())
    }

    // Without this override ractor stops the channel whenever any subscriber ends.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let ended = match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => cell.get_id(),
            SupervisionEvent::ActorFailed(cell, error) => {
                tracing::warn!(restaurant = %state.restaurant, %error, "a subscriber failed");
                let stats = &state.inner.stats;
                stats.subscribers_failed.fetch_add(1, Ordering::Relaxed);
                cell.get_id()
            }
            _ => return Ok(()),
        };
        if let Some((_, shared)) = state.subscribers.remove(&ended) {
            state
                .inner
                .stats
                .alive(shared)
                .fetch_sub(1, Ordering::Relaxed);
        }
        if state.subscribers.is_empty() {
            state.stop(&myself);
        }
        Ok(())
    }
}

/// However the channel ends (stopped, or failed, when ractor skips `post_stop`), its
/// subscriptions are no longer counted (ractor stops them with it), and its timers stop. It
/// left the registry before it stopped (`ChannelState::stop`); one that failed is taken out by
/// its supervisor, which must find it there to restart it.
impl Drop for ChannelState {
    fn drop(&mut self) {
        for (_, shared) in self.subscribers.values() {
            self.inner
                .stats
                .alive(*shared)
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl ChannelState {
    /// Stops the channel, out of the registry first: a join racing with this stop gets a fresh
    /// channel.
    fn stop(&self, myself: &ActorRef<ChannelMsg>) {
        self.inner
            .channels
            .forget(&self.restaurant, myself.get_id());
        myself.stop(None);
    }

    async fn join(
        &mut self,
        joining: Joining,
        myself: &ActorRef<ChannelMsg>,
    ) -> Result<Subscriber, CommandError> {
        let fed = joining.source.is_fed_by_channel();
        let shared = joining.shared;
        let mailbox = Arc::new(Mailbox::new(self.inner.config.buffer));
        let restaurant = self.restaurant.clone();
        let arguments = (
            joining,
            restaurant,
            self.last_seq,
            mailbox.clone(),
            self.inner.clone(),
        );
        let (child, _) = Actor::spawn_linked(None, SubscriptionActor, arguments, myself.get_cell())
            .await
            .map_err(|e| CommandError::ActorUnavailable(e.to_string()))?;
        let subscriber = Subscriber::new(self.last_seq, child.clone(), mailbox);
        // From now on the channel stops when its last subscriber leaves.
        self.linger = None;
        let feeder = fed.then(|| subscriber.feeder());
        self.subscribers.insert(child.get_id(), (feeder, shared));
        self.inner
            .stats
            .alive(shared)
            .fetch_add(1, Ordering::Relaxed);
        Ok(subscriber)
    }

    fn fan_out(&mut self, event: Arc<Event>) {
        self.last_seq = event.seq;
        for feeder in self
            .subscribers
            .values()
            .filter_map(|(feeder, _)| feeder.as_ref())
        {
            // A mailbox send: never waits for the subscriber.
            feeder.send(Delivery::Event(event.clone()));
        }
    }

    fn accept(&mut self, event: Arc<Event>, myself: &ActorRef<ChannelMsg>) {
        if event.seq <= self.last_seq {
            return; // seen already (two paths: the bus and a catch-up)
        }
        if event.seq == self.last_seq + 1 {
            self.fan_out(event);
            self.release_pending();
            return;
        }
        self.pending.insert(event.seq, event);
        if !self.gap_check_scheduled {
            // Give the missing event a moment to arrive by the bus before reading the store.
            self.gap_check_scheduled = true;
            myself.send_after(self.inner.config.hold_gap, || ChannelMsg::CatchUp);
        }
    }

    fn release_pending(&mut self) {
        while let Some(next) = self.pending.remove(&(self.last_seq + 1)) {
            self.fan_out(next);
        }
        let last = self.last_seq;
        self.pending.retain(|seq, _| *seq > last);
    }

    async fn catch_up(&mut self, myself: &ActorRef<ChannelMsg>) {
        self.gap_check_scheduled = false;
        // Before the read: an event dropped from here on asks for another catch-up.
        self.inflow.recovered();
        loop {
            let page = match self
                .inner
                .store
                .events(&self.restaurant, self.last_seq, CATCH_UP_PAGE)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    // The next periodic catch-up tries again.
                    tracing::warn!(restaurant = %self.restaurant, %error, "cannot catch up from the store");
                    break;
                }
            };
            let full_page = page.len() == CATCH_UP_PAGE;
            for event in page {
                if event.seq == self.last_seq + 1 {
                    self.inner
                        .stats
                        .events_caught_up
                        .fetch_add(1, Ordering::Relaxed);
                    self.fan_out(Arc::new(event));
                }
            }
            if !full_page {
                break;
            }
        }
        self.release_pending();
        if !self.pending.is_empty() && !self.gap_check_scheduled {
            self.gap_check_scheduled = true;
            myself.send_after(self.inner.config.hold_gap, || ChannelMsg::CatchUp);
        }
    }
}
