use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::domain::{Event, OrderId};

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

/// Why a subscription's buffer stopped being fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The buffer was full: the client did not keep up. What is still buffered is dropped.
    SlowConsumer,
}

pub enum SubscriberMsg {
    Deliver(Arc<Event>),
}

/// Feeds one subscription's bounded buffer; never waits for its reader.
pub struct SubscriptionActor;

pub struct SubscriberState {
    filter: Filter,
    buffer: mpsc::Sender<Arc<Event>>,
    ended: Arc<OnceLock<EndReason>>,
}

impl Actor for SubscriptionActor {
    type Msg = SubscriberMsg;
    type State = SubscriberState;
    type Arguments = (Filter, mpsc::Sender<Arc<Event>>, Arc<OnceLock<EndReason>>);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (filter, buffer, ended): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SubscriberState {
            filter,
            buffer,
            ended,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        SubscriberMsg::Deliver(event): Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        #[cfg(feature = "fault-injection")]
        crate::faults::hook(crate::faults::Target::Subscription, &event.restaurant_id);
        if !state.filter.matches(&event) {
            return Ok(());
        }
        match state.buffer.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let _ = state.ended.set(EndReason::SlowConsumer);
                myself.stop(Some("slow consumer".into()));
            }
            // The reader is gone: the subscription ended on the client's side.
            Err(TrySendError::Closed(_)) => myself.stop(None),
        }
        Ok(())
    }
}

/// A live subscription: every event with seq > `live_after` that matches its filter arrives
/// in `events`, in seq order, with no gap; older ones are the reader's to replay from the
/// store. Dropping it stops its actor.
pub struct Subscription {
    pub live_after: i64,
    pub events: mpsc::Receiver<Arc<Event>>,
    ended: Arc<OnceLock<EndReason>>,
    actor: ActorRef<SubscriberMsg>,
}

impl Subscription {
    pub(crate) fn new(
        live_after: i64,
        events: mpsc::Receiver<Arc<Event>>,
        ended: Arc<OnceLock<EndReason>>,
        actor: ActorRef<SubscriberMsg>,
    ) -> Self {
        Self {
            live_after,
            events,
            ended,
            actor,
        }
    }

    /// Set once the feeding actor gave up on this subscription.
    pub fn ended(&self) -> Option<EndReason> {
        self.ended.get().copied()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.actor.stop(None);
    }
}
