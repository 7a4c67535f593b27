use orderhub_actors::domain::{Event, RestaurantId};
use orderhub_actors::ports::{Bus, BusSignal, EventSink, Listener, Listening};
use std::sync::Arc;

use super::Listeners;
use crate::metrics::{EVENTS_PUBLISHED, EVENTS_RECEIVED};

/// For a single node: publishing hands the event straight to the restaurant's channel.
#[derive(Clone, Default)]
pub struct LocalBus {
    listeners: Listeners,
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }
}

impl EventSink for LocalBus {
    fn publish(&self, event: &Event) {
        metrics::counter!(EVENTS_PUBLISHED).increment(1);
        let event = Arc::new(event.clone());
        if self
            .listeners
            .signal(&event.restaurant_id, || BusSignal::Event(event.clone()))
        {
            metrics::counter!(EVENTS_RECEIVED, "source" => "bus").increment(1);
        }
    }
}

impl Bus for LocalBus {
    fn listen(&self, restaurant: &RestaurantId, listener: Listener) -> Listening {
        let token = self.listeners.insert(restaurant, listener);
        let listeners = self.listeners.clone();
        let restaurant = restaurant.clone();
        Listening::new(move || {
            listeners.remove(&restaurant, token);
        })
    }
}
