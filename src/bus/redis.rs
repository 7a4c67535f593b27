//! Redis pub/sub between nodes: one pub/sub connection per node (not per channel, not per
//! client), one Redis channel per restaurant, reconnecting with backoff.
//!
//! Messages published while a node is disconnected are lost (redis-rs: pub/sub has no
//! replay), so every reconnect tells all channels to catch up from the store.

use async_graphql::futures_util::StreamExt;
use orderhub_actors::domain::{Event, RestaurantId};
use orderhub_actors::ports::{Bus, BusSignal, EventSink, Listener, Listening};
use redis::aio::{ConnectionManager, PubSubSink};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

use super::Listeners;
use crate::metrics::{BUS_RECONNECTS, EVENTS_PUBLISHED, EVENTS_RECEIVED};
use orderhub_actors::shutdown::Shutdown;

const CHANNEL_PREFIX: &str = "orderhub:restaurant:";
/// Events waiting to be published; past this they are dropped (the store has them, and
/// channels catch up from it).
const PUBLISH_QUEUE: usize = 10_000;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct RedisBus {
    shared: Arc<Shared>,
    publish: mpsc::Sender<(String, String)>,
    /// SUBSCRIBE and UNSUBSCRIBE, sent in the order channels start and stop. Unbounded
    /// because `listen` cannot wait; a channel actor adds at most two entries in its life.
    interest: mpsc::UnboundedSender<Interest>,
}

/// A change in which restaurants this node listens to.
enum Interest {
    Subscribe(RestaurantId),
    /// Sent when a restaurant's last listener went; acted on only if it still has none.
    Unsubscribe(RestaurantId),
}

struct Shared {
    listeners: Listeners,
    /// The live connection's subscribe handle; `None` while disconnected.
    sink: Mutex<Option<PubSubSink>>,
    connected: AtomicBool,
}

fn channel_name(restaurant: &RestaurantId) -> String {
    format!("{CHANNEL_PREFIX}{restaurant}")
}

impl RedisBus {
    /// Checks the URL and starts the connection tasks, which run until `shutdown` says the
    /// node stops. An unreachable Redis is not an error: the bus keeps trying, and until then
    /// channels get their events from the store.
    pub fn start(url: &str, shutdown: Shutdown) -> Result<RedisBus, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let shared = Arc::new(Shared {
            listeners: Listeners::default(),
            sink: Mutex::new(None),
            connected: AtomicBool::new(false),
        });
        let (publish, queue) = mpsc::channel(PUBLISH_QUEUE);
        let (interest, interests) = mpsc::unbounded_channel();
        tokio::spawn(publish_loop(client.clone(), queue, shutdown.clone()));
        tokio::spawn(subscribe_loop(
            client,
            Arc::downgrade(&shared),
            shutdown.clone(),
        ));
        tokio::spawn(interest_loop(Arc::downgrade(&shared), interests, shutdown));
        Ok(RedisBus {
            shared,
            publish,
            interest,
        })
    }
}

impl Shared {
    fn sink(&self) -> Option<PubSubSink> {
        self.sink.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl EventSink for RedisBus {
    fn publish(&self, event: &Event) {
        let Ok(payload) = serde_json::to_string(event) else {
            return;
        };
        metrics::counter!(EVENTS_PUBLISHED).increment(1);
        if self
            .publish
            .try_send((channel_name(&event.restaurant_id), payload))
            .is_err()
        {
            tracing::warn!("Redis publish queue full; channels will catch up from the store");
        }
    }
}

impl Bus for RedisBus {
    fn listen(&self, restaurant: &RestaurantId, listener: Listener) -> Listening {
        // Registered first: a reconnect that happens meanwhile subscribes it too.
        let token = self.shared.listeners.insert(restaurant, listener);
        let _ = self.interest.send(Interest::Subscribe(restaurant.clone()));
        let (bus, restaurant) = (self.clone(), restaurant.clone());
        Listening::new(move || {
            if bus.shared.listeners.remove(&restaurant, token) {
                let _ = bus.interest.send(Interest::Unsubscribe(restaurant));
            }
        })
    }

    fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }
}

async fn publish_loop(
    client: redis::Client,
    mut queue: mpsc::Receiver<(String, String)>,
    mut shutdown: Shutdown,
) {
    let mut connection: Option<ConnectionManager> = None;
    loop {
        let (channel, payload) = tokio::select! {
            next = queue.recv() => match next {
                Some(next) => next,
                None => return,
            },
            () = shutdown.stopped() => return,
        };
        if connection.is_none() {
            // Reconnecting is ConnectionManager's job once it exists; creating it is ours.
            match tokio::time::timeout(
                Duration::from_secs(1),
                ConnectionManager::new(client.clone()),
            )
            .await
            {
                Ok(Ok(manager)) => connection = Some(manager),
                _ => continue, // dropped: the store has the event
            }
        }
        if let Some(manager) = connection.as_mut() {
            let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&payload)
                .query_async(manager)
                .await;
            if let Err(error) = published {
                tracing::debug!(%error, "Redis PUBLISH failed");
            }
        }
    }
}

/// Applies SUBSCRIBE and UNSUBSCRIBE one at a time, in the order they were asked for: a
/// channel that stops and one that starts right after it cannot leave the node unsubscribed.
async fn interest_loop(
    shared: std::sync::Weak<Shared>,
    mut interests: mpsc::UnboundedReceiver<Interest>,
    mut shutdown: Shutdown,
) {
    loop {
        let interest = tokio::select! {
            next = interests.recv() => match next {
                Some(next) => next,
                None => return,
            },
            () = shutdown.stopped() => return,
        };
        let Some(bus) = shared.upgrade() else { return };
        // While disconnected there is nothing to do: the reconnect subscribes every listener.
        let Some(mut sink) = bus.sink() else { continue };
        match interest {
            Interest::Subscribe(restaurant) => {
                let channel = channel_name(&restaurant);
                if let Err(error) = sink.subscribe(&channel).await {
                    tracing::warn!(%error, channel, "Redis SUBSCRIBE failed");
                    continue;
                }
                // An event published after the channel read its high-water mark and before
                // Redis confirmed the SUBSCRIBE went past this node: read it from the store.
                bus.listeners.signal(&restaurant, || BusSignal::Resync);
            }
            Interest::Unsubscribe(restaurant) if !bus.listeners.contains(&restaurant) => {
                let _ = sink.unsubscribe(channel_name(&restaurant)).await;
            }
            Interest::Unsubscribe(_) => {}
        }
    }
}

/// The node's one pub/sub connection, until the node stops: dropping the connection mid-way is
/// harmless, nothing is waiting on it then.
async fn subscribe_loop(
    client: redis::Client,
    shared: std::sync::Weak<Shared>,
    mut shutdown: Shutdown,
) {
    tokio::select! {
        () = subscribe_and_reconnect(client, shared) => {}
        () = shutdown.stopped() => {}
    }
}

async fn subscribe_and_reconnect(client: redis::Client, shared: std::sync::Weak<Shared>) {
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let pubsub = tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub()).await;
        let Some(bus) = shared.upgrade() else { return };
        let Ok(Ok(pubsub)) = pubsub else {
            if bus.connected.swap(false, Ordering::Relaxed) || first {
                tracing::warn!(
                    "Redis is unreachable; retrying, channels catch up from the store meanwhile"
                );
            }
            first = false;
            drop(bus);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            continue;
        };
        let (mut sink, mut messages) = pubsub.split();
        *bus.sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(sink.clone());
        let restaurants = bus.listeners.restaurants();
        let mut subscribed = true;
        for restaurant in &restaurants {
            subscribed &= sink.subscribe(channel_name(restaurant)).await.is_ok();
        }
        if !subscribed {
            continue;
        }
        if !first {
            metrics::counter!(BUS_RECONNECTS).increment(1);
            tracing::info!("Redis pub/sub reconnected");
        }
        first = false;
        backoff = Duration::from_millis(100);
        bus.connected.store(true, Ordering::Relaxed);
        // Whatever was published while we were away is in the store.
        for restaurant in &restaurants {
            bus.listeners.signal(restaurant, || BusSignal::Resync);
        }
        let listeners = bus.listeners.clone();
        drop(bus);
        while let Some(message) = messages.next().await {
            let Some(restaurant) = message
                .get_channel_name()
                .strip_prefix(CHANNEL_PREFIX)
                .and_then(RestaurantId::parse)
            else {
                continue;
            };
            if !listeners.contains(&restaurant) {
                continue;
            }
            match serde_json::from_slice::<Event>(message.get_payload_bytes()) {
                Ok(event) if event.restaurant_id == restaurant => {
                    metrics::counter!(EVENTS_RECEIVED, "source" => "bus").increment(1);
                    let event = Arc::new(event);
                    listeners.signal(&restaurant, || BusSignal::Event(event.clone()));
                }
                _ => tracing::warn!(
                    channel = message.get_channel_name(),
                    "ignoring a malformed bus message"
                ),
            }
        }
        let Some(bus) = shared.upgrade() else { return };
        bus.connected.store(false, Ordering::Relaxed);
        *bus.sink.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::warn!("Redis pub/sub connection lost; reconnecting");
    }
}
