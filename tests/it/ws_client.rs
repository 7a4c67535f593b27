//! A plain WebSocket client speaking either GraphQL subprotocol, for the realtime tests.

use async_graphql::futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::Api;

pub const TRANSPORT_WS: &str = "graphql-transport-ws";
pub const LEGACY: &str = "graphql-ws";

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub protocol: &'static str,
}

/// What came from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Json(Value),
    Closed(Option<u16>, String),
}

impl Incoming {
    pub fn json(self) -> Value {
        match self {
            Incoming::Json(value) => value,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

impl WsClient {
    pub async fn connect(server: &Api, protocol: &'static str) -> WsClient {
        Self::connect_with(server, protocol, None, None).await
    }

    /// A client whose upgrade request carries `Authorization: <authorization>`.
    pub async fn connect_authorized(
        server: &Api,
        protocol: &'static str,
        authorization: &str,
    ) -> WsClient {
        Self::connect_with(server, protocol, None, Some(authorization)).await
    }

    /// A client whose socket takes in only a few kilobytes while it is not read: one that
    /// stops reading is noticed by the server after a handful of events.
    pub async fn connect_small(server: &Api, protocol: &'static str) -> WsClient {
        Self::connect_with(server, protocol, Some(2048), None).await
    }

    async fn connect_with(
        server: &Api,
        protocol: &'static str,
        receive_buffer: Option<u32>,
        authorization: Option<&str>,
    ) -> WsClient {
        let url = server.base.replace("http://", "ws://") + "/graphql";
        let mut request = url.into_client_request().expect("request");
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocol.parse().expect("header"));
        if let Some(authorization) = authorization {
            request
                .headers_mut()
                .insert("authorization", authorization.parse().expect("header"));
        }
        let address: std::net::SocketAddr = server
            .base
            .trim_start_matches("http://")
            .parse()
            .expect("address");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        if let Some(size) = receive_buffer {
            // Before connecting, so that the TCP window is negotiated small.
            socket.set_recv_buffer_size(size).expect("receive buffer");
        }
        let stream = MaybeTlsStream::Plain(socket.connect(address).await.expect("TCP connects"));
        let (socket, response) = tokio_tungstenite::client_async(request, stream)
            .await
            .expect("WebSocket connects");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol)
        );
        WsClient { socket, protocol }
    }

    /// Connected and acknowledged with `token`.
    pub async fn ready(server: &Api, protocol: &'static str, token: &str) -> WsClient {
        let mut client = WsClient::connect(server, protocol).await;
        client.init(token).await;
        client
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("send");
    }

    /// Sends a text frame to a server that may have closed the socket already; whether it
    /// went out.
    pub async fn try_send_raw(&mut self, text: &str) -> bool {
        let frame = Message::Text(text.to_owned().into());
        self.socket.send(frame).await.is_ok()
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.socket
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    /// The next message, skipping keep-alives; panics after 10 s of silence.
    pub async fn recv(&mut self) -> Incoming {
        self.recv_within(Duration::from_secs(10))
            .await
            .expect("a message within 10 s")
    }

    pub async fn recv_within(&mut self, wait: Duration) -> Option<Incoming> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?;
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let value: Value =
                        serde_json::from_str(text.as_str()).expect("JSON from the server");
                    if value["type"] == "ka" || value["type"] == "ping" {
                        if value["type"] == "ping" {
                            self.send(json!({"type": "pong"})).await;
                        }
                        continue;
                    }
                    return Some(Incoming::Json(value));
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (Some(u16::from(f.code)), f.reason.to_string()))
                        .unwrap_or((None, String::new()));
                    return Some(Incoming::Closed(code, reason));
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Some(Incoming::Closed(None, error.to_string())),
                None => return Some(Incoming::Closed(None, "ended".into())),
            }
        }
    }

    pub async fn init(&mut self, token: &str) {
        self.send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}})).await;
        let ack = self.recv().await.json();
        assert_eq!(ack["type"], "connection_ack", "{ack}");
    }

    /// Sends `connection_init` with `payload` (none if `None`) and returns the answer: the
    /// acknowledgement, or how the connection was refused (on graphql-ws, the
    /// `connection_error` that comes before the close is skipped).
    pub async fn init_with(&mut self, payload: Option<Value>) -> Incoming {
        let message = match payload {
            Some(payload) => json!({"type": "connection_init", "payload": payload}),
            None => json!({"type": "connection_init"}),
        };
        self.send(message).await;
        match self.recv().await {
            Incoming::Json(error) if error["type"] == "connection_error" => self.recv().await,
            answer => answer,
        }
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.protocol == LEGACY {
            "start"
        } else {
            "subscribe"
        };
        self.send(
            json!({"type": kind, "id": id, "payload": {"query": query, "variables": variables}}),
        )
        .await;
    }

    /// The payload of the next result for `id`.
    pub async fn next_result(&mut self, id: &str) -> Value {
        let message = self.recv().await.json();
        let kind = if self.protocol == LEGACY {
            "data"
        } else {
            "next"
        };
        assert_eq!(
            (message["type"].as_str(), message["id"].as_str()),
            (Some(kind), Some(id)),
            "{message}"
        );
        message["payload"].clone()
    }

    /// Expects the connection to be closed with `code`.
    pub async fn expect_close(&mut self, code: u16) {
        match self.recv().await {
            Incoming::Closed(Some(got), reason) => {
                assert_eq!(got, code, "closed with {got} {reason}")
            }
            other => panic!("expected close {code}, got {other:?}"),
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .socket
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}

pub const RESTAURANT_EVENTS: &str =
    "subscription($r: ID!, $after: Int) { restaurantEvents(restaurantId: $r, after: $after) { \
    __typename seq restaurantId at \
    ... on OrderPlaced { order { id number status } } \
    ... on OrderStatusChanged { from order { id status version } } \
    ... on MenuItemAvailabilityChanged { menuItem { id available } } \
    ... on StaffCalled { call { id tableId } } } }";

pub const ORDER_UPDATED: &str =
    "subscription($o: ID!) { orderUpdated(orderId: $o) { id status version } }";
