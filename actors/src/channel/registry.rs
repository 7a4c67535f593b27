use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, MessagingErr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::actor::{ChannelActor, ChannelMsg};
use super::subscriber::{Filter, Subscription};
use crate::domain::RestaurantId;
use crate::ports::{Bus, Store};
use crate::slots::Slots;
use crate::CommandError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Events buffered per subscription before its client counts as too slow.
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
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            buffer: 256,
            hold_gap: Duration::from_millis(100),
            catch_up_every: Duration::from_secs(2),
            call_timeout: Duration::from_secs(10),
            inflow: 1024,
        }
    }
}

/// Counters for operators.
#[derive(Debug, Default)]
pub(crate) struct ChannelStats {
    pub subscribers_failed: AtomicU64,
    pub events_caught_up: AtomicU64,
    /// Subscription actors alive now.
    pub subscribers_alive: AtomicU64,
    /// Bus events dropped at a full channel inflow (and read from the store instead).
    pub inflow_refused: AtomicU64,
}

/// A channel's bounded inflow from the bus: ractor's mailbox is unbounded, so the listener
/// counts what it has queued and, past the bound, drops the event and asks for one catch-up.
#[derive(Debug, Default)]
pub struct Inflow {
    /// Bus events in the mailbox now.
    pub(crate) queued: AtomicUsize,
    /// A catch-up is asked for and has not started yet.
    pub(crate) overflowed: AtomicBool,
}

/// What a registry's channels share.
pub struct ChannelInner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) config: ChannelConfig,
    /// Each channel with its inflow.
    pub(crate) channels: Slots<ChannelMsg, Arc<Inflow>>,
    /// Held while a channel starts, so that subscribers who join at the same moment find the
    /// one channel instead of each starting their own.
    starting: tokio::sync::Mutex<()>,
    pub(crate) stats: ChannelStats,
}

/// Finds or starts this node's channel of a restaurant and joins subscriptions to it.
#[derive(Clone)]
pub struct ChannelRegistry {
    inner: Arc<ChannelInner>,
}

impl ChannelRegistry {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>, config: ChannelConfig) -> Self {
        let inner = ChannelInner {
            store,
            bus,
            config,
            channels: Slots::new(),
            starting: tokio::sync::Mutex::new(()),
            stats: ChannelStats::default(),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// A new subscription to the restaurant's live events.
    pub async fn join(
        &self,
        restaurant: &RestaurantId,
        filter: Filter,
    ) -> Result<Subscription, CommandError> {
        let timeout = self.inner.config.call_timeout;
        for _ in 0..3 {
            let channel = match self.inner.channels.lookup(restaurant) {
                Some((channel, _)) => channel,
                None => self.start(restaurant).await?,
            };
            let filter = filter.clone();
            match channel
                .call(|reply| ChannelMsg::Join { filter, reply }, Some(timeout))
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

    /// The restaurant's channel, started unless another join started it meanwhile.
    async fn start(&self, restaurant: &RestaurantId) -> Result<ActorRef<ChannelMsg>, CommandError> {
        let _starting = self.inner.starting.lock().await;
        if let Some((channel, _)) = self.inner.channels.lookup(restaurant) {
            return Ok(channel);
        }
        let inflow = Arc::new(Inflow::default());
        let arguments = (restaurant.clone(), self.inner.clone(), inflow.clone());
        let (spawned, _) = Actor::spawn(None, ChannelActor, arguments)
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

    pub fn failed_subscribers(&self) -> u64 {
        self.inner.stats.subscribers_failed.load(Ordering::Relaxed)
    }

    pub fn subscribers_alive(&self) -> u64 {
        self.inner.stats.subscribers_alive.load(Ordering::Relaxed)
    }

    /// Bus events waiting in this node's channels' mailboxes.
    pub fn inflow_queued(&self) -> usize {
        let inflows = self.inner.channels.extras();
        inflows
            .iter()
            .map(|i| i.queued.load(Ordering::Relaxed))
            .sum()
    }

    /// Bus events dropped so far at a full inflow (each channel read the store instead).
    pub fn inflow_refused(&self) -> u64 {
        self.inner.stats.inflow_refused.load(Ordering::Relaxed)
    }

    pub fn events_caught_up(&self) -> u64 {
        self.inner.stats.events_caught_up.load(Ordering::Relaxed)
    }
}
