//! The two ways the generator talks to a server: GraphQL over HTTP (setup and mutations) and
//! graphql-transport-ws over a WebSocket (subscriptions).

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::frame::{self, Kind};

pub type Socket = WebSocketStream<TcpStream>;

/// The subscription every generated kitchen display runs: what a display shows of a new
/// order. [`crate::frame`] reads `seq` and the order's `note` from its frames.
pub const EVENTS_QUERY: &str = "subscription($r: ID!, $after: Int) { \
    restaurantEvents(restaurantId: $r, after: $after) { __typename seq at \
    ... on OrderPlaced { order { id number status tableId note total { amount currency } \
    items { name quantity } } } } }";

/// The same, as a screen that starts now sends it with the stock graphql-ws client: a named
/// operation without `after`, the restaurant in `variables`, no operationName.
pub const LIVE_EVENTS_QUERY: &str = "subscription KitchenDisplay($r: ID!) { \
    restaurantEvents(restaurantId: $r) { __typename seq at \
    ... on OrderPlaced { order { id number status tableId note total { amount currency } \
    items { name quantity } } } } }";

/// The mutation the writers send.
pub const PLACE_ORDER: &str =
    "mutation($i: PlaceOrderInput!) { placeOrder(input: $i) { id number } }";

/// The subscription id the generator uses: one subscription per connection.
pub const SUBSCRIPTION_ID: &str = "1";

/// A server under test: its base URL (`http://host:port`).
#[derive(Clone)]
pub struct Target {
    pub base: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
}

impl Target {
    pub async fn new(base: &str) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let authority = base
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("the server URL must start with http:// (got {base})"))?;
        let addr = tokio::net::lookup_host(authority)
            .await
            .with_context(|| format!("cannot resolve {authority}"))?
            .next()
            .ok_or_else(|| anyhow!("{authority} has no address"))?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { base, addr, http })
    }

    /// POSTs a GraphQL request; returns `data`, or the first error's code and message.
    pub async fn gql(&self, token: &str, query: &str, variables: Value) -> anyhow::Result<Value> {
        let body = json!({"query": query, "variables": variables});
        let response = self
            .http
            .post(format!("{}/graphql", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let mut value: Value = response
            .json()
            .await
            .with_context(|| format!("HTTP {status} without a JSON body"))?;
        if let Some(error) = value.get("errors").and_then(|e| e.get(0)) {
            let code = error["extensions"]["code"].as_str().unwrap_or("?");
            let message = error["message"].as_str().unwrap_or("");
            bail!("{code}: {message}");
        }
        if !status.is_success() {
            bail!("HTTP {status}");
        }
        Ok(value["data"].take())
    }

    /// A bare WebSocket at `/graphql` speaking graphql-transport-ws. `recv_buffer` sets the
    /// socket's SO_RCVBUF before connecting (a small one makes a client that stops reading
    /// back up the server quickly).
    pub async fn open(&self, recv_buffer: Option<u32>) -> anyhow::Result<Socket> {
        let socket = match self.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let url = format!("ws://{}/graphql", self.base.trim_start_matches("http://"));
        let mut request = url.into_client_request()?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let config = WebSocketConfig::default().max_message_size(Some(1 << 20));
        let (socket, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
        Ok(socket)
    }

    /// A WebSocket, initialised with `token`, with one `restaurantEvents` subscription
    /// running: from `after`, or without it ([`LIVE_EVENTS_QUERY`]) from now on.
    pub async fn subscribe(
        &self,
        token: &str,
        restaurant: &str,
        after: Option<i64>,
        recv_buffer: Option<u32>,
    ) -> anyhow::Result<Socket> {
        let mut socket = self.open(recv_buffer).await?;
        init(&mut socket, token).await?;
        let payload = match after {
            Some(after) => {
                json!({"query": EVENTS_QUERY, "variables": {"r": restaurant, "after": after}})
            }
            None => json!({"query": LIVE_EVENTS_QUERY, "variables": {"r": restaurant}}),
        };
        let subscribe = json!({"id": SUBSCRIPTION_ID, "type": "subscribe", "payload": payload});
        socket.send(Message::text(subscribe.to_string())).await?;
        Ok(socket)
    }
}

/// `connection_init` with the token, then waits (at most 10 s) for `connection_ack`.
pub async fn init(socket: &mut Socket, token: &str) -> anyhow::Result<()> {
    let init =
        json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}});
    socket.send(Message::text(init.to_string())).await?;
    let acked = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = socket.next().await {
            match message? {
                Message::Text(text) => match frame::kind(&text) {
                    Kind::ConnectionAck => return Ok(()),
                    Kind::Ping => socket.send(Message::text(r#"{"type":"pong"}"#)).await?,
                    _ => bail!("expected connection_ack, got {}", text.as_str()),
                },
                Message::Close(close) => bail!("closed before connection_ack: {close:?}"),
                _ => {}
            }
        }
        bail!("closed before connection_ack")
    })
    .await;
    acked.unwrap_or_else(|_| bail!("no connection_ack within 10 s"))
}

/// Why a subscription's stream ended, for a message that ends it: a close frame (its code),
/// a socket error, or the end of the stream. `None` for any other message.
pub fn end_of(
    message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> Option<String> {
    match message {
        Some(Ok(Message::Close(close))) => Some(format!(
            "close {}",
            close.map_or(1005, |c| u16::from(c.code))
        )),
        Some(Ok(_)) => None,
        Some(Err(error)) => Some(format!("socket error: {error}")),
        None => Some("dropped".into()),
    }
}

/// An `error` frame's first `extensions.code` and `extensions.lastSeq`.
pub fn error_code(text: &str) -> (String, Option<i64>) {
    let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let first = &value["payload"][0]["extensions"];
    (
        first["code"].as_str().unwrap_or("?").to_owned(),
        first["lastSeq"].as_i64(),
    )
}

/// Now, as Unix nanoseconds.
pub fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
