//! The wire limit: a server that fans the same frames out over the same WebSocket stack as
//! orderhub (axum, one bounded channel and one writer task per connection, a capped send
//! buffer) with no GraphQL, no actors and no database. Running `fanout` against it gives the
//! ceiling of this machine; orderhub's figures are reported as a ratio to it.
//!
//! It speaks just enough graphql-transport-ws (connection_init → connection_ack, subscribe →
//! registered, ping → pong) and answers the GraphQL requests the generator sends: the
//! fixture mutations get fresh ids, and `placeOrder` assigns the restaurant's next seq and
//! broadcasts one `next` frame shaped like orderhub's `OrderPlaced` payload for
//! [`crate::client::EVENTS_QUERY`], encoded once per subscription id.
//!
//! A subscription with `after` first gets the events it missed, as sent before, so that a
//! subscriber is never racing the first event. For tests of the generator itself it can
//! misbehave on purpose ([`Fault`]).

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, error::TrySendError};

/// A deliberate mistake, applied to the given seq of every restaurant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The event is never sent.
    Skip(i64),
    /// The event is sent twice.
    Duplicate(i64),
    /// The event is sent after the next one.
    Swap(i64),
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (kind, seq) = text
            .split_once(':')
            .ok_or("a fault is skip:SEQ, duplicate:SEQ or swap:SEQ")?;
        let seq: i64 = seq.parse().map_err(|_| format!("bad seq in {text:?}"))?;
        match kind {
            "skip" => Ok(Fault::Skip(seq)),
            "duplicate" => Ok(Fault::Duplicate(seq)),
            "swap" => Ok(Fault::Swap(seq)),
            _ => Err(format!("unknown fault {kind:?}")),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct WireConfig {
    /// Frames buffered per connection before it is cut as too slow (like orderhub's
    /// subscription buffer).
    pub buffer: usize,
    /// Kernel send buffer per accepted socket (like ORDERHUB_SOCKET_SEND_BUFFER).
    pub socket_send_buffer: usize,
    /// A write stuck this long closes the connection with 4508.
    pub write_timeout: Duration,
    pub fault: Option<Fault>,
}

impl Default for WireConfig {
    fn default() -> Self {
        Self {
            buffer: 256,
            socket_send_buffer: 64 * 1024,
            write_timeout: Duration::from_secs(5),
            fault: None,
        }
    }
}

struct Subscriber {
    id: String,
    frames: mpsc::Sender<Utf8Bytes>,
}

#[derive(Default)]
struct Channel {
    seq: i64,
    subscribers: Vec<Subscriber>,
    /// A payload held back by [`Fault::Swap`].
    held: Option<(i64, String)>,
    /// Every payload broadcast, with its seq, in the order sent: replayed to `after`.
    sent: Vec<(i64, String)>,
}

struct Wire {
    config: WireConfig,
    channels: Mutex<HashMap<String, Channel>>,
}

/// Binds and serves until the process ends; returns the bound address once listening.
pub async fn bind(
    listen: SocketAddr,
    config: WireConfig,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    use axum::serve::ListenerExt;
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let send_buffer = config.socket_send_buffer;
    let listener = listener.tap_io(move |stream| {
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&*stream).set_send_buffer_size(send_buffer);
    });
    let state = Arc::new(Wire {
        config,
        channels: Mutex::new(HashMap::new()),
    });
    let router = Router::new()
        .route("/graphql", get(upgrade).post(graphql))
        .with_state(state);
    Ok((addr, async move { axum::serve(listener, router).await }))
}

impl Wire {
    fn channels(&self) -> std::sync::MutexGuard<'_, HashMap<String, Channel>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn fresh_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn graphql(State(wire): State<Arc<Wire>>, Json(request): Json<Value>) -> Response {
    let query = request["query"].as_str().unwrap_or_default();
    let variables = &request["variables"];
    let data = if query.contains("placeOrder") {
        match place_order(&wire, &variables["i"]) {
            Some((id, number)) => json!({"placeOrder": {"id": id, "number": number}}),
            None => return refuse("NOT_FOUND", "no such restaurant"),
        }
    } else if query.contains("createRestaurant") {
        let id = fresh_id();
        wire.channels().insert(id.clone(), Channel::default());
        json!({"createRestaurant": {"id": id, "currency": "JPY"}})
    } else if query.contains("createTable") {
        json!({"createTable": {"id": fresh_id()}})
    } else if query.contains("createMenuItem") {
        json!({"createMenuItem": {"id": fresh_id()}})
    } else if query.contains("orders(") {
        let restaurant = variables["r"].as_str().unwrap_or_default();
        let seq = wire.channels().get(restaurant).map_or(0, |c| c.seq);
        json!({"orders": {"seq": seq}})
    } else {
        return refuse("BAD_USER_INPUT", "the wire baseline only places orders");
    };
    Json(json!({"data": data})).into_response()
}

fn refuse(code: &str, message: &str) -> Response {
    Json(json!({"errors": [{"message": message, "extensions": {"code": code}}]})).into_response()
}

/// Assigns the next seq and broadcasts the event; returns the order's id and number.
fn place_order(wire: &Wire, input: &Value) -> Option<(String, i64)> {
    let restaurant = input["restaurantId"].as_str()?;
    let table = input["tableId"].as_str().unwrap_or_default();
    let note = input["note"].as_str();
    let mut channels = wire.channels();
    let channel = channels.get_mut(restaurant)?;
    channel.seq += 1;
    let seq = channel.seq;
    let order_id = fresh_id();
    // The same keys, in the same (sorted) order, as orderhub's response to EVENTS_QUERY.
    let payload = format!(
        r#"{{"data":{{"restaurantEvents":{{"__typename":"OrderPlaced","at":"2026-01-01T00:00:00.000Z","order":{{"id":"{order_id}","items":[{{"name":"Ramen","quantity":1}}],"note":{note},"number":{seq},"status":"PLACED","tableId":{table},"total":{{"amount":900,"currency":"JPY"}}}},"seq":{seq}}}}}}}"#,
        note = serde_json::to_string(&note).unwrap_or_else(|_| "null".into()),
        table = serde_json::to_string(table).unwrap_or_else(|_| "null".into()),
    );
    match wire.config.fault {
        Some(Fault::Skip(n)) if n == seq => {}
        Some(Fault::Duplicate(n)) if n == seq => {
            broadcast(channel, seq, payload.clone());
            broadcast(channel, seq, payload);
        }
        Some(Fault::Swap(n)) if n == seq => channel.held = Some((seq, payload)),
        _ => {
            broadcast(channel, seq, payload);
            if let Some((seq, held)) = channel.held.take() {
                broadcast(channel, seq, held);
            }
        }
    }
    Some((order_id, seq))
}

/// One frame per distinct subscription id, shared by every subscriber with that id; a
/// subscriber whose buffer is full is dropped (its connection then closes with 4508).
fn broadcast(channel: &mut Channel, seq: i64, payload: String) {
    let mut cache: Option<(String, Utf8Bytes)> = None;
    channel.subscribers.retain(|subscriber| {
        let frame = match &cache {
            Some((id, frame)) if *id == subscriber.id => frame.clone(),
            _ => {
                let frame = next_frame(&subscriber.id, &payload);
                cache = Some((subscriber.id.clone(), frame.clone()));
                frame
            }
        };
        match subscriber.frames.try_send(frame) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Closed(_)) => false,
        }
    });
    channel.sent.push((seq, payload));
}

/// A `next` frame of subscription `id`.
fn next_frame(id: &str, payload: &str) -> Utf8Bytes {
    let id_json = serde_json::to_string(id).unwrap_or_else(|_| "\"\"".into());
    Utf8Bytes::from(format!(
        r#"{{"id":{id_json},"payload":{payload},"type":"next"}}"#
    ))
}

async fn upgrade(State(wire): State<Arc<Wire>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .protocols(["graphql-transport-ws"])
        // As orderhub does: tungstenite zero-fills its whole read buffer before each read.
        .read_buffer_size(4 * 1024)
        .on_upgrade(move |socket| connection(socket, wire))
}

async fn connection(socket: WebSocket, wire: Arc<Wire>) {
    let (mut sink, mut inbound) = socket.split();
    let (frames, mut outbox) = mpsc::channel::<Utf8Bytes>(wire.config.buffer);
    let write_timeout = wire.config.write_timeout;
    let writer = tokio::spawn(async move {
        while let Some(frame) = outbox.recv().await {
            match tokio::time::timeout(write_timeout, sink.send(Message::Text(frame))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    let close = CloseFrame {
                        code: 4508,
                        reason: "Slow consumer".into(),
                    };
                    let _ = tokio::time::timeout(
                        Duration::from_millis(100),
                        sink.send(Message::Close(Some(close))),
                    )
                    .await;
                    return;
                }
            }
        }
        let _ = sink.close().await;
    });
    while let Some(Ok(message)) = inbound.next().await {
        let Message::Text(text) = message else {
            if matches!(message, Message::Close(_)) {
                break;
            }
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            break;
        };
        let reply = match value["type"].as_str() {
            Some("connection_init") => Some(r#"{"type":"connection_ack"}"#),
            Some("ping") => Some(r#"{"type":"pong"}"#),
            Some("subscribe") => {
                let id = value["id"].as_str().unwrap_or_default().to_owned();
                let variables = &value["payload"]["variables"];
                let restaurant = variables["r"].as_str().unwrap_or_default();
                if let Some(channel) = wire.channels().get_mut(restaurant) {
                    if let Some(after) = variables["after"].as_i64() {
                        for (_, payload) in channel.sent.iter().filter(|(seq, _)| *seq > after) {
                            let _ = frames.try_send(next_frame(&id, payload));
                        }
                    }
                    channel.subscribers.push(Subscriber {
                        id,
                        frames: frames.clone(),
                    });
                }
                None
            }
            _ => None,
        };
        if let Some(reply) = reply {
            if frames.send(Utf8Bytes::from_static(reply)).await.is_err() {
                break;
            }
        }
    }
    drop(frames);
    writer.abort();
}
