use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorRef, MessagingErr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::actor::{ChannelActor, ChannelMsg};
use super::subscriber::{Filter, Joining, Subscriber, Subscription};
use crate::domain::RestaurantId;
use crate::mailbox::Mailbox;
use crate::ports::{Bus, Store};
use crate::shutdown::Shutdown;
use crate::slots::Slots;
use crate::supervisor::{self, Supervised};
use crate::CommandError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Events queued per subscription (in its actor's mailbox, and again in its buffer)
    /// before its client counts as too slow.
    pub buffer: usize,
    /// How long an out-of-order event waits for the missing ones before the store is read.
    pub hold_gap: Duration,
    /// How often a channel checks the store for events the bus did not bring.
    pub catch_up_every: Duration,
    /// How long a join waits for the channel.
    pub call_timeout: Duration,
    /// Bus events waiting in a channel's mailbox; past it they are dropped and the channel
    /// reads the store instead, so nothing is lost and the mailbox stays bounded.
    pub inflow: usize,
    /// How long a channel that nobody has joined lives: one its supervisor restarted after a
    /// failure waits this long for its subscribers to resubscribe, then stops.
    pub linger: Duration,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            buffer: 256,
            hold_gap: Duration::from_millis(100),
            catch_up_every: Duration::from_secs(2),
            call_timeout: Duration::from_secs(10),
            inflow: 1024,
            linger: Duration::from_secs(10),
        }
    }
}

/// Counters for operators.
#[derive(Debug, Default)]
pub(crate) struct ChannelStats {
    pub subscribers_failed: AtomicU64,
    /// Channel actors that failed (panicked), counted by the supervisor.
    pub channels_failed: AtomicU64,
    /// Failed channels the supervisor replaced.
    pub channels_restarted: AtomicU64,
    pub events_caught_up: AtomicU64,
    /// Subscription actors of subscribers alive now.
    pub subscribers_alive: AtomicU64,
    /// Subscription actors that feed a cohort's shared execution.
    pub shared_alive: AtomicU64,
    /// Subscribers cut because they fell a buffer's worth behind.
    pub slow_consumer_cuts: AtomicU64,
    /// Bus events dropped at a full channel inflow (and read from the store instead).
    pub inflow_refused: AtomicU64,
}

impl ChannelStats {
    pub fn alive(&self, shared: bool) -> &AtomicU64 {
        match shared {
            true => &self.shared_alive,
            false => &self.subscribers_alive,
        }
    }
}

/// What a registry's channels share.
pub struct ChannelInner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) config: ChannelConfig,
    /// Each channel with its inflow: ractor's mailbox is unbounded, so the bus listener admits
    /// events through this and, past `ChannelConfig::inflow`, drops them and asks for one
    /// catch-up.
    pub(crate) channels: Slots<ChannelMsg, Arc<Mailbox>>,
    /// Held while a channel starts, so that subscribers who join at the same moment find the
    /// one channel instead of each starting their own.
    starting: tokio::sync::Mutex<()>,
    pub(crate) stats: ChannelStats,
    /// The parent of every channel here.
    supervisor: ActorRef<()>,
}

/// The registry and every channel are gone: the supervisor stops.
impl Drop for ChannelInner {
    fn drop(&mut self) {
        self.supervisor.stop(None);
    }
}

impl Supervised for ChannelInner {
    const KIND: &'static str = "channel";

    fn failed(&self, child: ActorId) -> Option<RestaurantId> {
        let restaurant = self.channels.forget_actor(child);
        // After the slot is cleared: whoever sees the count sees the slot empty or replaced.
        self.stats.channels_failed.fetch_add(1, Ordering::Relaxed);
        restaurant
    }

    fn killed(&self, child: ActorId) {
        self.channels.forget_actor(child);
    }

    fn clear(&self) {
        self.channels.take_all();
    }

    async fn restart(self: Arc<Self>, restaurant: RestaurantId) -> Result<(), CommandError> {
        let registry = ChannelRegistry { inner: self };
        registry.start(&restaurant).await?;
        let restarted = &registry.inner.stats.channels_restarted;
        restarted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Finds or starts this node's channel of a restaurant and joins subscriptions to it. Its
/// channels are linked under its supervisor (`crate::supervisor`), which restarts one that
/// fails.
#[derive(Clone)]
pub struct ChannelRegistry {
    inner: Arc<ChannelInner>,
}

impl ChannelRegistry {
    /// Must be called inside a Tokio runtime: it starts the supervisor, which ends when
    /// `shutdown` says so (its channels with it) or once the registry and its channels are
    /// gone.
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        config: ChannelConfig,
        shutdown: Shutdown,
    ) -> Self {
        let inner = Arc::new_cyclic(|registry| ChannelInner {
            store,
            bus,
            config,
            channels: Slots::new(),
            starting: tokio::sync::Mutex::new(()),
            stats: ChannelStats::default(),
            supervisor: supervisor::start(registry.clone(), shutdown),
        });
        Self { inner }
    }

    /// A new subscription to the restaurant's live events that match `filter`, read from a
    /// buffer of `ChannelConfig::buffer` events.
    pub async fn join(
        &self,
        restaurant: &RestaurantId,
        filter: Filter,
        expires_in: Option<Duration>,
    ) -> Result<Subscription, CommandError> {
        self.join_buffered(restaurant, filter, expires_in, false)
            .await
    }

    /// The subscription of a cohort's shared execution: as `join`, counted apart from the
    /// subscribers it serves, who each expire on their own.
    pub async fn join_shared(
        &self,
        restaurant: &RestaurantId,
    ) -> Result<Subscription, CommandError> {
        self.join_buffered(restaurant, Filter::All, None, true)
            .await
    }

    async fn join_buffered(
        &self,
        restaurant: &RestaurantId,
        filter: Filter,
        expires_in: Option<Duration>,
        shared: bool,
    ) -> Result<Subscription, CommandError> {
        let capacity = self.inner.config.buffer;
        let mut reader = None;
        let subscriber = self
            .start_subscriber(restaurant, || {
                let (outlet, subscription) = Subscription::buffer(capacity);
                reader = Some(subscription);
                Joining {
                    expires_in,
                    shared,
                    ..Joining::events(filter.clone(), outlet)
                }
            })
            .await?;
        let reader = reader.ok_or_else(|| CommandError::ActorUnavailable("no buffer".into()))?;
        Ok(reader(subscriber))
    }

    /// Starts a subscription actor under the restaurant's channel. `joining` is asked again
    /// if a channel stopped before it saw the join (the join then had no effect).
    pub async fn start_subscriber(
        &self,
        restaurant: &RestaurantId,
        mut joining: impl FnMut() -> Joining + Send,
    ) -> Result<Subscriber, CommandError> {
        let timeout = self.inner.config.call_timeout;
        for _ in 0..3 {
            let channel = match self.inner.channels.lookup(restaurant) {
                Some((channel, _)) => channel,
                None => self.start(restaurant).await?,
            };
            let joining = joining();
            match channel
                .call(|reply| ChannelMsg::Join { joining, reply }, Some(timeout))
                .await
            {
                Ok(CallResult::Success(result)) => return result,
                Ok(CallResult::Timeout) => return Err(CommandError::Timeout(timeout)),
                // The channel stopped (its last subscriber left) before it saw the join: the
                // join had no effect, so it goes to a fresh channel.
                Ok(CallResult::SenderError)
                | Err(MessagingErr::SendErr(_) | MessagingErr::ChannelClosed) => {
                    self.inner.channels.forget(restaurant, channel.get_id());
                }
                Err(error) => return Err(CommandError::ActorUnavailable(error.to_string())),
            }
        }
        Err(CommandError::ActorUnavailable(
            "the restaurant's channel kept stopping".into(),
        ))
    }

    /// The restaurant's channel, started unless another join (or its supervisor) started it
    /// meanwhile.
    async fn start(&self, restaurant: &RestaurantId) -> Result<ActorRef<ChannelMsg>, CommandError> {
        let _starting = self.inner.starting.lock().await;
        if let Some((channel, _)) = self.inner.channels.lookup(restaurant) {
            return Ok(channel);
        }
        let inflow = Arc::new(Mailbox::new(self.inner.config.inflow));
        let arguments = (restaurant.clone(), self.inner.clone(), inflow.clone());
        let supervisor = self.inner.supervisor.get_cell();
        let (spawned, _) = Actor::spawn_linked(None, ChannelActor, arguments, supervisor)
            .await
            .map_err(|e| CommandError::ActorUnavailable(e.to_string()))?;
        Ok(self
            .inner
            .channels
            .insert_or_existing(restaurant, spawned, inflow)
            .0)
    }

    /// Channels running on this node.
    pub fn active(&self) -> usize {
        self.inner.channels.len()
    }

    /// Whether the restaurant has a channel on this node.
    pub fn has_channel(&self, restaurant: &RestaurantId) -> bool {
        self.inner.channels.contains(restaurant)
    }

    /// Channel actors that failed (panicked) so far.
    pub fn failed_channels(&self) -> u64 {
        self.inner.stats.channels_failed.load(Ordering::Relaxed)
    }

    /// Failed channels that their supervisor replaced at once, so far.
    pub fn restarts(&self) -> u64 {
        self.inner.stats.channels_restarted.load(Ordering::Relaxed)
    }

    /// Subscription actors that failed (panicked) so far.
    pub fn failed_subscribers(&self) -> u64 {
        self.inner.stats.subscribers_failed.load(Ordering::Relaxed)
    }

    /// Subscription actors of subscribers: one per open subscription.
    pub fn subscribers_alive(&self) -> u64 {
        self.inner.stats.subscribers_alive.load(Ordering::Relaxed)
    }

    /// Subscription actors feeding cohorts' shared executions.
    pub fn shared_alive(&self) -> u64 {
        self.inner.stats.shared_alive.load(Ordering::Relaxed)
    }

    /// Subscribers cut so far for falling a buffer's worth behind.
    pub fn slow_consumer_cuts(&self) -> u64 {
        self.inner.stats.slow_consumer_cuts.load(Ordering::Relaxed)
    }

    /// Bus events waiting in this node's channels' mailboxes.
    pub fn inflow_queued(&self) -> usize {
        let inflows = self.inner.channels.extras();
        inflows.iter().map(|inflow| inflow.queued()).sum()
    }

    /// Bus events dropped so far at a full inflow (each channel read the store instead).
    pub fn inflow_refused(&self) -> u64 {
        self.inner.stats.inflow_refused.load(Ordering::Relaxed)
    }

    pub fn events_caught_up(&self) -> u64 {
        self.inner.stats.events_caught_up.load(Ordering::Relaxed)
    }
}
