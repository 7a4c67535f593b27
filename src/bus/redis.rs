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

const CHANNEL_PREFIX: &str = "orderhub:restaurant:";
/// Events waiting to be published; past this they are dropped (the store has them, and
/// channels catch up from it).
const PUBLISH_QUEUE: usize = 10_000;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct RedisBus {
    shared: Arc<Shared>,
    publish: mpsc::Sender<(String, String)>,
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
    /// Checks the URL and starts the connection tasks. An unreachable Redis is not an error:
    /// the bus keeps trying, and until then channels get their events from the store.
    pub fn start(url: &str) -> Result<RedisBus, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let shared = Arc::new(Shared {
            listeners: Listeners::default(),
            sink: Mutex::new(None),
            connected: AtomicBool::new(false),
        });
        let (publish, queue) = mpsc::channel(PUBLISH_QUEUE);
        tokio::spawn(publish_loop(client.clone(), queue));
        tokio::spawn(subscribe_loop(client, Arc::downgrade(&shared)));
        Ok(RedisBus { shared, publish })
    }

    fn sink(&self) -> Option<PubSubSink> {
        self.shared
            .sink
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
        let channel = channel_name(restaurant);
        if let Some(mut sink) = self.sink() {
            let channel = channel.clone();
            tokio::spawn(async move {
                if let Err(error) = sink.subscribe(&channel).await {
                    tracing::warn!(%error, channel, "Redis SUBSCRIBE failed");
                }
            });
        }
        let bus = self.clone();
        let restaurant = restaurant.clone();
        Listening::new(move || {
            if !bus.shared.listeners.remove(&restaurant, token) {
                return;
            }
            let (Some(mut sink), Ok(runtime)) = (bus.sink(), tokio::runtime::Handle::try_current())
            else {
                return;
            };
            runtime.spawn(async move {
                let _ = sink.unsubscribe(&channel).await;
            });
        })
    }

    fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }
}

async fn publish_loop(client: redis::Client, mut queue: mpsc::Receiver<(String, String)>) {
    let mut connection: Option<ConnectionManager> = None;
    while let Some((channel, payload)) = queue.recv().await {
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

async fn subscribe_loop(client: redis::Client, shared: std::sync::Weak<Shared>) {
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
        let listeners = bus.listeners.all();
        let mut subscribed = true;
        for (restaurant, _) in &listeners {
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
        for (_, listener) in listeners {
            listener(BusSignal::Resync);
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
            let Some(listener) = listeners.get(&restaurant) else {
                continue;
            };
            match serde_json::from_slice::<Event>(message.get_payload_bytes()) {
                Ok(event) if event.restaurant_id == restaurant => {
                    metrics::counter!(EVENTS_RECEIVED, "source" => "bus").increment(1);
                    listener(BusSignal::Event(Arc::new(event)));
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
