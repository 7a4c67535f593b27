//! The in-process event bus: committed events reach this node's subscribers.

use orderhub_actors::domain::Event;
use orderhub_actors::ports::EventSink;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Fans committed events out to this node's listeners without ever blocking the publisher.
/// A listener that falls behind loses events (`Lagged`) and must refill them from the store,
/// which holds every event.
#[derive(Clone)]
pub struct LocalBus {
    sender: broadcast::Sender<Arc<Event>>,
}

impl LocalBus {
    pub fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity.max(1)).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}

impl EventSink for LocalBus {
    fn publish(&self, event: &Event) {
        // No listener is not an error: nobody is watching this node right now.
        let _ = self.sender.send(Arc::new(event.clone()));
    }
}
