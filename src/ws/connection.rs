use async_graphql::futures_util::{SinkExt, StreamExt};
use async_graphql::Variables;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::{sleep, timeout, Instant};

use super::cohort::{self, Cohorts, Eligible, Ending, Frame, Switch};
use super::protocol::{self, close, ClientMessage, NextEnvelope, Payload, Protocol};
use crate::auth::Tokens;
use crate::graphql::{ApiError, CatchUpTo};
use crate::graphql::{AppSchema, Caller};
use crate::metrics::{Raised, RATE_LIMITED, SLOW_CONSUMER_CUTS, SUBSCRIPTIONS, WS_CONNECTIONS};
use crate::rate_limit::RateLimiter;

#[derive(Debug, Clone, Copy)]
pub struct WsConfig {
    /// A connection that sends no `connection_init` within this time is closed with 4408.
    pub init_timeout: Duration,
    /// The server pings this often, and closes (4504) a connection silent for twice as long.
    pub keepalive: Duration,
    /// A socket write stuck this long closes the connection (4508): the client reconnects and
    /// resumes with `after`.
    pub write_timeout: Duration,
    /// Subscriptions (operations) running at once on one connection.
    pub max_subscriptions: usize,
    /// Frames queued for the writer; a cohort member that would overflow it is cut as slow.
    pub outbox: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            init_timeout: Duration::from_secs(3),
            keepalive: Duration::from_secs(15),
            write_timeout: Duration::from_secs(5),
            max_subscriptions: 100,
            outbox: 256,
        }
    }
}

/// What every WebSocket connection of a node shares.
#[derive(Clone)]
pub struct WsServices {
    pub schema: AppSchema,
    pub tokens: Tokens,
    pub config: WsConfig,
    pub rate_limit: Option<Arc<RateLimiter>>,
    /// Subscribers of the same events share one execution (`None`: each runs its own).
    pub cohorts: Option<Cohorts>,
    /// Where WebSocket connections run (`None`: where they were accepted). A runtime of their
    /// own keeps a burst of fan-out writes from queueing ahead of commands: the kernel
    /// shares the cores between the two, and mutations do not wait behind thousands of
    /// socket writes.
    pub delivery: Option<tokio::runtime::Handle>,
    /// Turns true when the server stops: connections close with 1001.
    pub stopping: watch::Receiver<bool>,
}

/// What the connection's writer sends.
pub(super) enum Out {
    /// A message, and the commit time of the event it carries, if it carries one.
    Text(String, Option<i64>),
    /// An event of a cohort for subscription `id`: the envelope is written around the
    /// cohort's encoded payload here, by the writer.
    Event {
        envelope: Arc<NextEnvelope>,
        frame: Arc<Frame>,
    },
    Ping,
    Close(u16, String),
}

/// Frames written per flush at most.
const WRITE_BATCH: usize = 32;

struct Connection {
    protocol: Protocol,
    schema: AppSchema,
    tokens: Tokens,
    config: WsConfig,
    rate_limit: Option<Arc<RateLimiter>>,
    cohorts: Option<Cohorts>,
    upgrade_caller: Caller,
    upgrade_token: Option<String>,
    /// Set by `connection_init`; operations may start once it is.
    caller: Option<Caller>,
    /// The token the caller authenticated with: its rate limit applies to subscribe messages.
    token: Option<String>,
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
    upgrade_caller: Caller,
    upgrade_token: Option<String>,
    services: WsServices,
) {
    let WsServices {
        schema,
        tokens,
        config,
        rate_limit,
        cohorts,
        delivery: _,
        mut stopping,
    } = services;
    let _open = Raised::new(metrics::gauge!(WS_CONNECTIONS));
    let (sink, mut inbound) = socket.split();
    // When frames back up here, operations wait and their own buffers fill, and cohort
    // members are cut: those subscribers are cut as slow, nobody else.
    let (out, outbox) = mpsc::channel(config.outbox);
    let mut writer = tokio::spawn(write_loop(sink, outbox, config.write_timeout));
    let (finished, mut finished_ids) = mpsc::unbounded_channel();
    let mut connection = Connection {
        protocol,
        schema,
        tokens,
        config,
        rate_limit,
        cohorts,
        upgrade_caller,
        upgrade_token,
        caller: None,
        token: None,
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
            _ = stopping.wait_for(|stopping| *stopping) => {
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

    /// Ends operation `id` before it starts, with RATE_LIMITED; the connection stays open.
    fn refuse(&self, id: &str, message: &str) {
        let errors = serde_json::json!([{
            "message": message,
            "extensions": {"code": "RATE_LIMITED"}
        }]);
        self.send(protocol::error(self.protocol, id, &errors));
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
        let (caller, token) = match payload.as_ref().and_then(protocol::authorization) {
            Some(header) => match self.tokens.verify_header(header) {
                Ok(principal) => (Caller::Authenticated(principal), Some(header.to_owned())),
                Err(error) => (Caller::Rejected(error), None),
            },
            None => (self.upgrade_caller.clone(), self.upgrade_token.take()),
        };
        self.token = token;
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
        if self.operations.len() >= self.config.max_subscriptions {
            let message = format!(
                "at most {} subscriptions per connection",
                self.config.max_subscriptions
            );
            self.refuse(&id, &message);
            return Flow::Continue;
        }
        if let (Some(limiter), Some(token)) = (&self.rate_limit, &self.token) {
            if limiter.check(token).is_err() {
                metrics::counter!(RATE_LIMITED, "transport" => "ws").increment(1);
                self.refuse(&id, "too many requests for this token; retry later");
                return Flow::Continue;
            }
        }
        let operation = Operation {
            schema: self.schema.clone(),
            caller,
            protocol: self.protocol,
            id: id.clone(),
            out: self.out.clone(),
        };
        let finished = self.finished.clone();
        let cohort = self.cohorts.as_ref().and_then(|cohorts| {
            let eligible = cohort::eligible(&payload, &operation.caller)?;
            Some((cohorts.clone(), eligible))
        });
        let task = tokio::spawn(crate::metrics::deliveries(async move {
            // Boxed: the task lives as long as the subscription, and its size is per screen.
            match cohort {
                Some((cohorts, eligible)) => {
                    Box::pin(operation.run_in_cohort(&cohorts, eligible, payload)).await
                }
                None => Box::pin(operation.run(payload)).await,
            }
            let _ = finished.send(operation.id);
        }));
        self.operations.insert(id, task.abort_handle());
        Flow::Continue
    }
}

/// One subscribe message being served.
struct Operation {
    schema: AppSchema,
    caller: Caller,
    protocol: Protocol,
    id: String,
    out: mpsc::Sender<Out>,
}

/// How forwarding an execution's responses ended.
enum Forwarded {
    /// The stream ended; the last event it carried, if any.
    Ended(Option<i64>),
    /// It failed as a whole; the error was sent and ends the operation.
    Failed,
    /// The connection is going away.
    Gone,
}

impl Operation {
    fn request(&self, payload: Payload) -> async_graphql::Request {
        let mut request = async_graphql::Request::new(payload.query).data(self.caller.clone());
        if let Some(variables) = payload.variables {
            request = request.variables(Variables::from_json(variables));
        }
        if let Some(name) = payload.operation_name {
            request = request.operation_name(name);
        }
        request
    }

    async fn send(&self, text: String, event: Option<i64>) -> bool {
        // Waits while the writer is busy: this operation's own buffer absorbs it.
        self.out.send(Out::Text(text, event)).await.is_ok()
    }

    async fn complete(&self) {
        self.send(protocol::complete(self.protocol, &self.id), None)
            .await;
    }

    async fn fail(&self, errors: &serde_json::Value) {
        self.send(protocol::error(self.protocol, &self.id, errors), None)
            .await;
    }

    /// A subscription (or a query or mutation sent over the socket) on its own.
    async fn run(&self, payload: Payload) {
        // Boxed, stream and all: the task of every subscription would otherwise carry their
        // size (the stream is kilobytes).
        let responses = Box::pin(self.forward(self.schema.execute_stream(self.request(payload))));
        if let Forwarded::Ended(_) = responses.await {
            self.complete().await;
        }
    }

    async fn forward(
        &self,
        mut responses: impl async_graphql::futures_util::Stream<Item = async_graphql::Response> + Unpin,
    ) -> Forwarded {
        let mut last_event = None;
        while let Some(response) = responses.next().await {
            let whole = response.data == async_graphql::Value::Null && !response.errors.is_empty();
            let text = match serde_json::to_value(&response) {
                Ok(value) if whole => protocol::error(self.protocol, &self.id, &value["errors"]),
                Ok(value) => protocol::next(self.protocol, &self.id, &value),
                Err(error) => {
                    tracing::error!(%error, "cannot encode a GraphQL response");
                    return Forwarded::Failed;
                }
            };
            let event = crate::metrics::delivered_event();
            if !self.send(text, event.map(|e| e.committed_at_ms)).await {
                return Forwarded::Gone;
            }
            if whole {
                return Forwarded::Failed;
            }
            last_event = event.map(|e| e.seq).or(last_event);
        }
        Forwarded::Ended(last_event)
    }

    /// A member of a cohort: catches up on its own from `after` to where the cohort's live
    /// events take over, then relays the cohort's frames.
    async fn run_in_cohort(&self, cohorts: &Cohorts, eligible: Eligible, payload: Payload) {
        let _active = Raised::new(metrics::gauge!(SUBSCRIPTIONS, "field" => "restaurantEvents"));
        let expires = match &self.caller {
            Caller::Authenticated(principal) => {
                principal.expires_at().map(crate::graphql::deadline)
            }
            _ => None,
        };
        let mut membership = cohorts.join(&eligible, &payload);
        // Only the catch-up needs the document; a subscription may watch for days.
        let after = eligible.after;
        let catch_up =
            (after.is_some() || eligible.after_is_invalid).then(|| self.request(payload));
        drop(eligible);
        let live_after = match membership.live_after().await {
            Ok(seq) => seq,
            Err(ending) => return self.end(ending, after.unwrap_or(0)).await,
        };
        let mut last = live_after;
        if let Some(request) = catch_up {
            let request = request.data(CatchUpTo(live_after));
            // Boxed: needed once, while the member's task lives as long as it watches.
            match Box::pin(self.forward(self.schema.execute_stream(request))).await {
                Forwarded::Ended(replayed) => {
                    let after = after.unwrap_or(0);
                    last = replayed.unwrap_or(after).max(after).max(live_after);
                }
                Forwarded::Failed | Forwarded::Gone => return,
            }
        }
        // What queued up during the catch-up goes out from here; then the cohort writes to
        // this connection's writer directly.
        let direct = loop {
            match membership.try_next() {
                Some(Ok(frame)) => {
                    if frame.seq > last {
                        last = frame.seq;
                        let text = protocol::next_encoded(self.protocol, &self.id, &frame.payload);
                        if !self.send(text, Some(frame.committed_at_ms)).await {
                            return;
                        }
                    }
                }
                Some(Err(ending)) => return self.end(ending, last).await,
                None => match membership.go_direct(&self.out, &self.id, self.protocol, last) {
                    Switch::Done(direct) => break direct,
                    Switch::Pending => tokio::task::yield_now().await,
                },
            }
        };
        let ending = match expires {
            Some(expires) => tokio::select! {
                ending = membership.ended() => ending,
                () = tokio::time::sleep_until(expires) => {
                    // Out of the cohort first: no frame follows the error.
                    drop(membership);
                    let error = ApiError::unauthenticated("the token has expired");
                    let last = direct.last_seq();
                    return self.fail(&errors_of(error.with_last_seq(last))).await;
                }
            },
            None => membership.ended().await,
        };
        self.end(ending, direct.last_seq()).await
    }

    /// Tells the member how its stream ended, with the last seq it was sent.
    async fn end(&self, ending: Ending, last: i64) {
        match ending {
            Ending::Completed => self.complete().await,
            Ending::SlowConsumer => {
                let error = ApiError::new(
                    "SLOW_CONSUMER",
                    "the client did not keep up; resubscribe with after: lastSeq",
                );
                self.fail(&errors_of(error.with_last_seq(last))).await
            }
            Ending::Failed(errors) => {
                let mut errors = (*errors).clone();
                if let Some(errors) = errors.as_array_mut() {
                    for error in errors {
                        if error["extensions"].get("lastSeq").is_some() {
                            error["extensions"]["lastSeq"] = last.into();
                        }
                    }
                }
                self.fail(&errors).await
            }
        }
    }
}

/// An error as the `errors` list of a response.
fn errors_of(error: ApiError) -> serde_json::Value {
    let error = async_graphql::Error::from(error).into_server_error(Default::default());
    serde_json::to_value([error]).unwrap_or_default()
}

/// Writes frames in order; a write stuck longer than `write_timeout` ends the connection.
async fn write_loop(
    mut sink: async_graphql::futures_util::stream::SplitSink<WebSocket, Message>,
    mut outbox: mpsc::Receiver<Out>,
    write_timeout: Duration,
) {
    // Frames waiting together are written together: one flush (one system call) for many.
    // Grown on first use: an idle subscription's connection should cost little.
    let mut batch = Vec::new();
    let mut events = Vec::new();
    while outbox.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        let mut closing = false;
        let write = async {
            for out in batch.drain(..) {
                let message = match out {
                    Out::Text(text, event) => {
                        events.extend(event);
                        Message::Text(text.into())
                    }
                    Out::Event { envelope, frame } => {
                        events.push(frame.committed_at_ms);
                        Message::Text(envelope.wrap(&frame.payload).into())
                    }
                    Out::Ping => Message::Ping(Default::default()),
                    Out::Close(code, reason) => {
                        closing = true;
                        Message::Close(Some(close_frame(code, reason)))
                    }
                };
                sink.feed(message).await?;
                if closing {
                    break;
                }
            }
            sink.flush().await
        };
        match timeout(write_timeout, write).await {
            Ok(Ok(())) if !closing => {
                for committed_at in events.drain(..) {
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
