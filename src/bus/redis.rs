//! Redis pub/sub between nodes: one pub/sub connection per node (not per channel, not per
//! client), one Redis channel per restaurant.
//!
//! The connection is an actor, [`PubSubActor`], that a [`PubSubSupervisor`] restarts whenever
//! it ends — it panicked, Redis was unreachable, or the connection was lost — after a backoff of
//! 100 ms doubling to 5 s, back to 100 ms once one has run for 10 s. Messages published while
//! no connection listened are lost (redis-rs: pub/sub has no replay), so every start subscribes
//! every restaurant this node listens to and tells their channels to catch up from the store.
//! PUBLISH goes through a plain task on a connection of its own.

use async_graphql::futures_util::StreamExt;
use orderhub_actors::domain::{Event, RestaurantId};
use orderhub_actors::ports::{Bus, BusSignal, EventSink, Listener, Listening};
use orderhub_actors::shutdown::Shutdown;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use redis::aio::{ConnectionManager, PubSubSink};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::Listeners;
use crate::metrics::{BUS_RECONNECTS, BUS_RESTARTS, EVENTS_PUBLISHED, EVENTS_RECEIVED};

const CHANNEL_PREFIX: &str = "orderhub:restaurant:";
/// Events waiting to be published; past this they are dropped (the store has them, and
/// channels catch up from it).
const PUBLISH_QUEUE: usize = 10_000;
/// How long connecting, or one SUBSCRIBE or UNSUBSCRIBE, may take before the connection
/// counts as lost.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// The first restart's delay; each next one doubles it, up to `MAX_RESTART_DELAY`.
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(100);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(5);
/// A connection actor that ran this long was healthy: the next restart waits
/// `FIRST_RESTART_DELAY` again.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct RedisBus {
    shared: Arc<Shared>,
    publish: mpsc::Sender<(String, String)>,
}

struct Shared {
    listeners: Listeners,
    /// The connection actor of the moment, told of SUBSCRIBE and UNSUBSCRIBE; messages to one
    /// that has ended are lost, and its successor subscribes every listener when it starts.
    connection: Mutex<Option<ActorRef<PubSubMsg>>>,
    connected: AtomicBool,
    /// A connection was made once: the next one is a reconnect.
    ever_connected: AtomicBool,
    /// False from a failed attempt or a lost connection until the next connection: one warning
    /// per outage.
    reachable: AtomicBool,
}

fn channel_name(restaurant: &RestaurantId) -> String {
    format!("{CHANNEL_PREFIX}{restaurant}")
}

impl RedisBus {
    /// Checks the URL and starts the publishing task and the connection's supervisor, which run
    /// until `shutdown` says the node stops. An unreachable Redis is not an error: the bus keeps
    /// trying, and until then channels get their events from the store.
    pub fn start(url: &str, shutdown: Shutdown) -> Result<RedisBus, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let shared = Arc::new(Shared {
            listeners: Listeners::default(),
            connection: Mutex::new(None),
            connected: AtomicBool::new(false),
            ever_connected: AtomicBool::new(false),
            reachable: AtomicBool::new(true),
        });
        let (publish, queue) = mpsc::channel(PUBLISH_QUEUE);
        tokio::spawn(publish_loop(client.clone(), queue, shutdown.clone()));
        let args = PubSubArgs {
            client,
            shared: shared.clone(),
        };
        tokio::spawn(supervise(args, shutdown));
        Ok(RedisBus { shared, publish })
    }
}

impl Shared {
    /// Tells the connection actor of the moment, if there is one.
    fn tell(&self, message: PubSubMsg) {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(connection) = connection {
            let _ = connection.cast(message);
        }
    }

    fn set_connection(&self, connection: Option<ActorRef<PubSubMsg>>) {
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = connection;
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
        // Registered first: a connection that starts meanwhile subscribes it too (see
        // `PubSubActor::pre_start`).
        let token = self.shared.listeners.insert(restaurant, listener);
        self.shared.tell(PubSubMsg::Subscribe(restaurant.clone()));
        let (shared, restaurant) = (self.shared.clone(), restaurant.clone());
        Listening::new(move || {
            if shared.listeners.remove(&restaurant, token) {
                shared.tell(PubSubMsg::Unsubscribe(restaurant));
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

/// Runs the connection's supervisor until the node stops, then stops it and waits for it (it
/// waits for its connection actor in turn).
async fn supervise(args: PubSubArgs, mut shutdown: Shutdown) {
    let (supervisor, mut ended) = match Actor::spawn(None, PubSubSupervisor, args).await {
        Ok(spawned) => spawned,
        Err(error) => {
            tracing::error!(%error, "the Redis pub/sub supervisor did not start");
            return;
        }
    };
    tokio::select! {
        () = shutdown.stopped() => {
            supervisor.stop(None);
            let _ = ended.await;
        }
        _ = &mut ended => tracing::error!(
            "the Redis pub/sub supervisor stopped; channels catch up from the store only"
        ),
    }
}

/// A task that is aborted when this is dropped, however its owner ends.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a connection actor ended when Redis, not the code, was at fault.
#[derive(Debug, thiserror::Error)]
#[error("Redis pub/sub: {0}")]
struct Disconnected(&'static str);

#[derive(Clone)]
struct PubSubArgs {
    client: redis::Client,
    shared: Arc<Shared>,
}

/// What the connection actor handles, in the order it was sent.
enum PubSubMsg {
    /// A message from Redis, passed on by the connection's reader.
    Message(redis::Msg),
    /// The connection ended.
    Lost,
    Subscribe(RestaurantId),
    /// Sent when a restaurant's last listener went; acted on only if it still has none.
    Unsubscribe(RestaurantId),
}

/// The node's one pub/sub connection: connects when it starts, subscribes every restaurant
/// this node listens to and tells their channels to catch up; then passes each message on to
/// the restaurant's listeners and applies SUBSCRIBE and UNSUBSCRIBE one at a time, in the order
/// they were asked for, so that a channel that stops and one that starts right after it cannot
/// leave the node unsubscribed. It never reconnects: it ends, and its supervisor starts another.
struct PubSubActor;

struct PubSubState {
    shared: Arc<Shared>,
    client: redis::Client,
    /// Set once connected (in `post_start`, before any message is handled).
    sink: Option<PubSubSink>,
    /// Reads the connection's messages into the mailbox; dropped with the state, however the
    /// actor ends (a panic skips `post_stop`), and the connection with it.
    _reader: Option<AbortOnDrop<()>>,
}

impl Actor for PubSubActor {
    type Msg = PubSubMsg;
    type State = PubSubState;
    type Arguments = PubSubArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<PubSubMsg>,
        args: PubSubArgs,
    ) -> Result<PubSubState, ActorProcessingErr> {
        // Before the listeners are read (`post_start`): a listener added after that read sends
        // its SUBSCRIBE to this actor.
        args.shared.set_connection(Some(myself));
        Ok(PubSubState {
            shared: args.shared,
            client: args.client,
            sink: None,
            _reader: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<PubSubMsg>,
        state: &mut PubSubState,
    ) -> Result<(), ActorProcessingErr> {
        let shared = state.shared.clone();
        let connecting = tokio::time::timeout(REDIS_TIMEOUT, state.client.get_async_pubsub());
        let Ok(Ok(pubsub)) = connecting.await else {
            if shared.reachable.swap(false, Ordering::Relaxed) {
                tracing::warn!(
                    "Redis is unreachable; retrying, channels catch up from the store meanwhile"
                );
            }
            return Err(Disconnected("unreachable").into());
        };
        let (mut sink, mut messages) = pubsub.split();
        state._reader = Some(AbortOnDrop(tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                if myself.cast(PubSubMsg::Message(message)).is_err() {
                    return;
                }
            }
            let _ = myself.cast(PubSubMsg::Lost);
        })));
        let restaurants = shared.listeners.restaurants();
        for restaurant in &restaurants {
            subscribe(&mut sink, restaurant).await?;
        }
        state.sink = Some(sink);
        shared.reachable.store(true, Ordering::Relaxed);
        if shared.ever_connected.swap(true, Ordering::Relaxed) {
            metrics::counter!(BUS_RECONNECTS).increment(1);
            tracing::info!("Redis pub/sub reconnected");
        }
        shared.connected.store(true, Ordering::Relaxed);
        // Whatever was published while no connection listened is in the store.
        for restaurant in &restaurants {
            shared.listeners.signal(restaurant, || BusSignal::Resync);
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<PubSubMsg>,
        message: PubSubMsg,
        state: &mut PubSubState,
    ) -> Result<(), ActorProcessingErr> {
        let shared = &state.shared;
        match message {
            PubSubMsg::Message(message) => deliver(&shared.listeners, &message),
            PubSubMsg::Lost => {
                shared.connected.store(false, Ordering::Relaxed);
                shared.reachable.store(false, Ordering::Relaxed);
                tracing::warn!("Redis pub/sub connection lost; reconnecting");
                return Err(Disconnected("connection lost").into());
            }
            PubSubMsg::Subscribe(restaurant) => {
                if let Some(sink) = state.sink.as_mut() {
                    subscribe(sink, &restaurant).await?;
                    // An event published after the channel read its high-water mark and before
                    // Redis confirmed the SUBSCRIBE went past this node: read it from the store.
                    shared.listeners.signal(&restaurant, || BusSignal::Resync);
                }
            }
            PubSubMsg::Unsubscribe(restaurant) if !shared.listeners.contains(&restaurant) => {
                if let Some(sink) = state.sink.as_mut() {
                    let unsubscribe = sink.unsubscribe(channel_name(&restaurant));
                    if !matches!(
                        tokio::time::timeout(REDIS_TIMEOUT, unsubscribe).await,
                        Ok(Ok(()))
                    ) {
                        return Err(Disconnected("UNSUBSCRIBE failed").into());
                    }
                }
            }
            PubSubMsg::Unsubscribe(_) => {}
        }
        Ok(())
    }
}

/// SUBSCRIBE, confirmed; a failure or no answer ends the connection (its successor subscribes
/// every listener again).
async fn subscribe(sink: &mut PubSubSink, restaurant: &RestaurantId) -> Result<(), Disconnected> {
    let channel = channel_name(restaurant);
    match tokio::time::timeout(REDIS_TIMEOUT, sink.subscribe(&channel)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => {
            tracing::warn!(%error, channel, "Redis SUBSCRIBE failed");
            Err(Disconnected("SUBSCRIBE failed"))
        }
        Err(_) => Err(Disconnected("SUBSCRIBE timed out")),
    }
}

/// Parses a message into an `Event` and gives it to the restaurant's listeners.
fn deliver(listeners: &Listeners, message: &redis::Msg) {
    let Some(restaurant) = message
        .get_channel_name()
        .strip_prefix(CHANNEL_PREFIX)
        .and_then(RestaurantId::parse)
    else {
        return;
    };
    #[cfg(feature = "fault-injection")]
    orderhub_actors::faults::hook(orderhub_actors::faults::Target::BusConnection, &restaurant);
    if !listeners.contains(&restaurant) {
        return;
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

/// Delays between restarts: `FIRST_RESTART_DELAY`, doubling up to `MAX_RESTART_DELAY`, and
/// `FIRST_RESTART_DELAY` again after an actor that ran `HEALTHY_RUN`.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: FIRST_RESTART_DELAY,
        }
    }
}

impl Backoff {
    /// How long to wait before restarting an actor that ran for `ran`.
    fn delay(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY_RUN {
            self.next = FIRST_RESTART_DELAY;
        }
        let delay = self.next;
        self.next = (delay * 2).min(MAX_RESTART_DELAY);
        delay
    }
}

/// Keeps one [`PubSubActor`] running, linked under it: starts one, and when it ends, however
/// it ends, starts the next after the [`Backoff`] delay, counting the restart
/// (`orderhub_bus_restarts_total`). When the node stops, it kills its connection actor, which
/// has nothing to finish, and waits for it.
struct PubSubSupervisor;

/// The supervisor's one message: time to start the next connection actor.
struct Restart;

struct SupervisorState {
    args: PubSubArgs,
    /// The connection actor and when it started.
    child: Option<(ActorRef<PubSubMsg>, Instant)>,
    backoff: Backoff,
    /// The restart waiting for its delay; cancelled if the supervisor ends first.
    restart: Option<AbortOnDrop<Result<(), ractor::MessagingErr<Restart>>>>,
}

impl SupervisorState {
    async fn start_child(&mut self, myself: &ActorRef<Restart>) {
        self.restart = None;
        let args = self.args.clone();
        match Actor::spawn_linked(None, PubSubActor, args, myself.get_cell()).await {
            Ok((child, _)) => self.child = Some((child, Instant::now())),
            Err(error) => {
                tracing::error!(%error, "the Redis pub/sub actor did not start");
                self.restart_later(myself, Duration::ZERO);
            }
        }
    }

    fn restart_later(&mut self, myself: &ActorRef<Restart>, ran: Duration) {
        let delay = self.backoff.delay(ran);
        self.restart = Some(AbortOnDrop(myself.send_after(delay, || Restart)));
    }
}

impl Actor for PubSubSupervisor {
    type Msg = Restart;
    type State = SupervisorState;
    type Arguments = PubSubArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Restart>,
        args: PubSubArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        Ok(SupervisorState {
            args,
            child: None,
            backoff: Backoff::default(),
            restart: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Restart>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.start_child(&myself).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Restart>,
        _restart: Restart,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        if state.child.is_none() {
            state.start_child(&myself).await;
        }
        Ok(())
    }

    // Without this override ractor stops the supervisor when its child ends.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Restart>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (ended, reason) = match &event {
            SupervisionEvent::ActorFailed(cell, error) => {
                if error.downcast_ref::<Disconnected>().is_some() {
                    tracing::debug!(%error, "the Redis pub/sub actor ended");
                    (cell.get_id(), "connection")
                } else {
                    tracing::error!(%error, "the Redis pub/sub actor failed; restarting it");
                    (cell.get_id(), "failure")
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, why) => {
                tracing::error!(?why, "the Redis pub/sub actor stopped; restarting it");
                (cell.get_id(), "failure")
            }
            _ => return Ok(()),
        };
        // An earlier actor's late news, or one the supervisor stopped itself.
        let Some((_, started)) = state.child.take_if(|(child, _)| child.get_id() == ended) else {
            return Ok(());
        };
        state.args.shared.connected.store(false, Ordering::Relaxed);
        metrics::counter!(BUS_RESTARTS, "reason" => reason).increment(1);
        state.restart_later(&myself, started.elapsed());
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Restart>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.restart = None;
        let shared = &state.args.shared;
        shared.set_connection(None);
        if let Some((child, _)) = state.child.take() {
            let _ = child.kill_and_wait(Some(REDIS_TIMEOUT)).await;
        }
        shared.connected.store(false, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 ms doubling to 5 s and staying there; 100 ms again after a healthy run.
    #[test]
    fn restart_delays_double_up_to_the_cap_and_reset_after_a_healthy_run() {
        let mut backoff = Backoff::default();
        let quick = Duration::from_millis(50);
        let delays: Vec<u64> = (0..9)
            .map(|_| backoff.delay(quick).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000]
        );
        assert_eq!(backoff.delay(HEALTHY_RUN), FIRST_RESTART_DELAY);
        assert_eq!(backoff.delay(quick), Duration::from_millis(200));
        assert_eq!(
            backoff.delay(HEALTHY_RUN - Duration::from_millis(1)),
            Duration::from_millis(400),
            "a run just short of healthy does not reset"
        );
    }
}
