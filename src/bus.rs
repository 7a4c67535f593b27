//! The in-process event bus: committed events reach this node's channels.

use orderhub_actors::domain::{Event, RestaurantId};
use orderhub_actors::ports::{Bus, BusSignal, EventSink, Listener, Listening};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// For a single node: publishing hands the event straight to the restaurant's channel.
#[derive(Clone, Default)]
pub struct LocalBus {
    listeners: Arc<Mutex<HashMap<RestaurantId, (u64, Listener)>>>,
    next_token: Arc<AtomicU64>,
}

impl LocalBus {
    pub fn new() -> Self {
        Self::default()
    }
}

impl EventSink for LocalBus {
    fn publish(&self, event: &Event) {
        let listener = self
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&event.restaurant_id)
            .map(|(_, listener)| listener.clone());
        if let Some(listener) = listener {
            listener(BusSignal::Event(Arc::new(event.clone())));
        }
    }
}

impl Bus for LocalBus {
    fn listen(&self, restaurant: &RestaurantId, listener: Listener) -> Listening {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(restaurant.clone(), (token, listener));
        let listeners = self.listeners.clone();
        let restaurant = restaurant.clone();
        Listening::new(move || {
            let mut listeners = listeners.lock().unwrap_or_else(|p| p.into_inner());
            // A newer listener for the channel may have replaced this one.
            if listeners.get(&restaurant).is_some_and(|(t, _)| *t == token) {
                listeners.remove(&restaurant);
            }
        })
    }
}
