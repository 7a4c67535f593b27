use async_graphql::futures_util::{SinkExt, StreamExt};
use async_graphql::Variables;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::{sleep, timeout, Instant};

use super::protocol::{self, close, ClientMessage, Payload, Protocol};
use crate::auth::Tokens;
use crate::graphql::{AppSchema, Caller};
use crate::metrics::{Raised, SLOW_CONSUMER_CUTS, WS_CONNECTIONS};

#[derive(Debug, Clone, Copy)]
pub struct WsConfig {
    /// A connection that sends no `connection_init` within this time is closed with 4408.
    pub init_timeout: Duration,
    /// The server pings this often, and closes (4504) a connection silent for twice as long.
    pub keepalive: Duration,
    /// A socket write stuck this long closes the connection (4508): the client reconnects and
    /// resumes with `after`.
    pub write_timeout: Duration,
    /// Operations running at once on one connection.
    pub max_operations: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            init_timeout: Duration::from_secs(3),
            keepalive: Duration::from_secs(15),
            write_timeout: Duration::from_secs(5),
            max_operations: 100,
        }
    }
}

/// Tells a connection that the server is stopping, and tells the server (by being dropped)
/// that the connection has ended.
#[derive(Clone)]
pub struct Shutdown {
    pub stopping: watch::Receiver<bool>,
    pub alive: mpsc::Sender<()>,
}

/// What the connection's writer sends.
enum Out {
    /// A message, and the commit time of the event it carries, if it carries one.
    Text(String, Option<i64>),
    Ping,
    Close(u16, String),
}

/// Frames queued for the writer. When they back up, operations wait here and their
/// subscriptions' own buffers fill: those subscribers are cut as slow, nobody else.
const OUTBOX: usize = 64;

struct Connection {
    protocol: Protocol,
    schema: AppSchema,
    tokens: Tokens,
    config: WsConfig,
    upgrade_caller: Caller,
    /// Set by `connection_init`; operations may start once it is.
    caller: Option<Caller>,
    init_received: bool,
    operations: HashMap<String, AbortHandle>,
    out: mpsc::Sender<Out>,
    finished: mpsc::UnboundedSender<String>,
}

/// What to do after a client message.
enum Flow {
    Continue,
    Close(u16, String),
}

/// Runs one WebSocket connection to its end.
pub async fn serve(
    socket: WebSocket,
    protocol: Protocol,
    schema: AppSchema,
    tokens: Tokens,
    upgrade_caller: Caller,
    config: WsConfig,
    mut shutdown: Shutdown,
) {
    let _open = Raised::new(metrics::gauge!(WS_CONNECTIONS));
    let (sink, mut inbound) = socket.split();
    let (out, outbox) = mpsc::channel(OUTBOX);
    let mut writer = tokio::spawn(write_loop(sink, outbox, config.write_timeout));
    let (finished, mut finished_ids) = mpsc::unbounded_channel();
    let mut connection = Connection {
        protocol,
        schema,
        tokens,
        config,
        upgrade_caller,
        caller: None,
        init_received: false,
        operations: HashMap::new(),
        out,
        finished,
    };
    let init_deadline = sleep(config.init_timeout);
    tokio::pin!(init_deadline);
    let mut keepalive =
        tokio::time::interval_at(Instant::now() + config.keepalive, config.keepalive);
    let mut last_heard = Instant::now();
    let mut writer_done = false;
    let close = loop {
        tokio::select! {
            frame = inbound.next() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Flow::Close(code, reason) = connection.handle(text.as_str()) {
                            break Some((code, reason));
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        break Some((close::INVALID_MESSAGE, "Invalid message: binary frames are not supported".into()));
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Err(error)) => break unreadable(error),
                    Some(Ok(Message::Close(_))) | None => break None,
                }
            }
            () = &mut init_deadline, if !connection.init_received => {
                break Some((close::INIT_TIMEOUT, "Connection initialisation timeout".into()));
            }
            _ = keepalive.tick() => {
                if last_heard.elapsed() > connection.config.keepalive * 2 {
                    break Some((close::KEEPALIVE_TIMEOUT, "Keep-alive timeout: no answer to pings".into()));
                }
                // A full outbox means the writer is stuck; its own timeout ends the connection.
                let _ = connection.out.try_send(Out::Ping);
                if connection.protocol == Protocol::Legacy && connection.caller.is_some() {
                    let _ = connection.out.try_send(Out::Text(protocol::keep_alive(), None));
                }
            }
            _ = shutdown.stopping.wait_for(|stopping| *stopping) => {
                // Clients reconnect (to another node) and resume with `after`.
                break Some((close::GOING_AWAY, "Server shutting down".into()));
            }
            Some(id) = finished_ids.recv() => {
                connection.operations.remove(&id);
            }
            _ = &mut writer, if !writer_done => {
                writer_done = true;
                break None;
            }
        }
    };
    // Operations hold senders to the writer: end them first, then let the writer finish
    // (sending the close frame, if any) for a moment.
    for (_, operation) in connection.operations.drain() {
        operation.abort();
    }
    if let Some((code, reason)) = close {
        tracing::debug!(code, %reason, "closing WebSocket");
        let _ = connection.out.try_send(Out::Close(code, reason));
    }
    drop(connection);
    if !writer_done {
        let _ = timeout(Duration::from_secs(1), writer).await;
    }
    drop(shutdown);
}

/// A frame the socket refused to read: too large (1009), text that is not UTF-8 (1007) or a
/// protocol violation (1002) are answered with their RFC 6455 close code; a connection that
/// simply broke gets nothing.
fn unreadable(error: axum::Error) -> Option<(u16, String)> {
    use tungstenite::Error;
    let error = error.into_inner().downcast::<Error>().ok()?;
    let (code, reason) = match *error {
        Error::Capacity(_) => (close::MESSAGE_TOO_BIG, "Message too big"),
        Error::Utf8(_) => (close::INVALID_PAYLOAD, "Invalid UTF-8"),
        Error::Protocol(_) => (close::PROTOCOL_ERROR, "Protocol error"),
        _ => return None,
    };
    tracing::debug!(%error, code, "unreadable WebSocket frame");
    Some((code, reason.into()))
}

impl Connection {
    fn send(&self, text: String) {
        // A full outbox means the writer is stuck and about to end the connection.
        let _ = self.out.try_send(Out::Text(text, None));
    }

    fn handle(&mut self, text: &str) -> Flow {
        let message = match protocol::parse(self.protocol, text) {
            Ok(message) => message,
            Err(reason) => return Flow::Close(close::INVALID_MESSAGE, reason),
        };
        match message {
            ClientMessage::Init(payload) => self.init(payload),
            ClientMessage::Subscribe { id, payload } => self.subscribe(id, payload),
            ClientMessage::Complete { id } => {
                if let Some(operation) = self.operations.remove(&id) {
                    operation.abort();
                }
                Flow::Continue
            }
            ClientMessage::Ping(payload) => {
                self.send(protocol::pong(payload));
                Flow::Continue
            }
            ClientMessage::Pong => Flow::Continue,
            ClientMessage::Terminate => Flow::Close(1000, "Normal closure".into()),
        }
    }

    fn init(&mut self, payload: Option<serde_json::Value>) -> Flow {
        if self.init_received {
            return Flow::Close(
                close::TOO_MANY_INITS,
                "Too many initialisation requests".into(),
            );
        }
        self.init_received = true;
        let caller = match payload.as_ref().and_then(protocol::authorization) {
            Some(header) => match self.tokens.verify_header(header) {
                Ok(principal) => Caller::Authenticated(principal),
                Err(error) => Caller::Rejected(error),
            },
            None => self.upgrade_caller.clone(),
        };
        if let Caller::Rejected(error) = &caller {
            if self.protocol == Protocol::Legacy {
                self.send(protocol::connection_error(&error.to_string()));
            }
            return Flow::Close(close::FORBIDDEN, format!("Forbidden: {error}"));
        }
        self.caller = Some(caller);
        self.send(protocol::ack(self.protocol));
        if self.protocol == Protocol::Legacy {
            self.send(protocol::keep_alive());
        }
        Flow::Continue
    }

    fn subscribe(&mut self, id: String, payload: Payload) -> Flow {
        let Some(caller) = self.caller.clone() else {
            return Flow::Close(close::UNAUTHORIZED, "Unauthorized".into());
        };
        if self.operations.contains_key(&id) {
            return Flow::Close(
                close::DUPLICATE_ID,
                format!("Subscriber for {id} already exists"),
            );
        }
        if self.operations.len() >= self.config.max_operations {
            let errors = serde_json::json!([{
                "message": format!("at most {} operations per connection", self.config.max_operations),
                "extensions": {"code": "RATE_LIMITED"}
            }]);
            self.send(protocol::error(self.protocol, &id, &errors));
            return Flow::Continue;
        }
        let task = tokio::spawn(crate::metrics::deliveries(run_operation(
            self.schema.clone(),
            caller,
            self.protocol,
            id.clone(),
            payload,
            self.out.clone(),
            self.finished.clone(),
        )));
        self.operations.insert(id, task.abort_handle());
        Flow::Continue
    }
}

async fn run_operation(
    schema: AppSchema,
    caller: Caller,
    protocol: Protocol,
    id: String,
    payload: Payload,
    out: mpsc::Sender<Out>,
    finished: mpsc::UnboundedSender<String>,
) {
    let mut request = async_graphql::Request::new(payload.query).data(caller);
    if let Some(variables) = payload.variables {
        request = request.variables(Variables::from_json(variables));
    }
    if let Some(name) = payload.operation_name {
        request = request.operation_name(name);
    }
    let mut responses = schema.execute_stream(request);
    let mut failed = false;
    while let Some(response) = responses.next().await {
        let whole = response.data == async_graphql::Value::Null && !response.errors.is_empty();
        let text = match serde_json::to_value(&response) {
            Ok(value) if whole => protocol::error(protocol, &id, &value["errors"]),
            Ok(value) => protocol::next(protocol, &id, &value),
            Err(error) => {
                tracing::error!(%error, "cannot encode a GraphQL response");
                break;
            }
        };
        let event = crate::metrics::delivered_event();
        // Waits while the writer is busy: this operation's subscription buffer absorbs it.
        if out.send(Out::Text(text, event)).await.is_err() {
            return;
        }
        if whole {
            failed = true;
            break;
        }
    }
    if !failed {
        let _ = out
            .send(Out::Text(protocol::complete(protocol, &id), None))
            .await;
    }
    let _ = finished.send(id);
}

/// Writes frames in order; a write stuck longer than `write_timeout` ends the connection.
async fn write_loop(
    mut sink: async_graphql::futures_util::stream::SplitSink<WebSocket, Message>,
    mut outbox: mpsc::Receiver<Out>,
    write_timeout: Duration,
) {
    while let Some(out) = outbox.recv().await {
        let (message, last, event) = match out {
            Out::Text(text, event) => (Message::Text(text.into()), false, event),
            Out::Ping => (Message::Ping(Default::default()), false, None),
            Out::Close(code, reason) => {
                (Message::Close(Some(close_frame(code, reason))), true, None)
            }
        };
        match timeout(write_timeout, sink.send(message)).await {
            Ok(Ok(())) if !last => {
                if let Some(committed_at) = event {
                    crate::metrics::event_written(committed_at);
                }
            }
            Ok(Ok(())) | Ok(Err(_)) => return,
            Err(_) => {
                metrics::counter!(SLOW_CONSUMER_CUTS, "reason" => "socket").increment(1);
                tracing::info!(timeout = ?write_timeout, "closing a WebSocket whose writes are stuck (slow consumer)");
                let frame = close_frame(close::SLOW_CONSUMER, "Slow consumer".into());
                let _ = timeout(
                    Duration::from_millis(100),
                    sink.send(Message::Close(Some(frame))),
                )
                .await;
                return;
            }
        }
    }
    let _ = timeout(Duration::from_secs(1), sink.close()).await;
}

/// A close frame's reason fits in a control frame (RFC 6455: 123 bytes); longer reasons, which
/// may quote what the client sent, are cut at a character boundary.
fn close_frame(code: u16, mut reason: String) -> CloseFrame {
    const MAX_REASON_BYTES: usize = 123;
    if reason.len() > MAX_REASON_BYTES {
        let cut = (0..=MAX_REASON_BYTES)
            .rev()
            .find(|at| reason.is_char_boundary(*at))
            .unwrap_or(0);
        reason.truncate(cut);
    }
    CloseFrame {
        code,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_in_a_control_frame() {
        let long = close_frame(close::INVALID_MESSAGE, "é".repeat(100));
        assert_eq!(long.reason.len(), 122);
        let short = close_frame(close::INVALID_MESSAGE, "Invalid message".into());
        assert_eq!(short.reason.as_str(), "Invalid message");
    }
}
