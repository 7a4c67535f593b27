use async_graphql::futures_util::{SinkExt, StreamExt};
use async_graphql::Variables;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio::time::{sleep_until, timeout, Instant};

use super::cohort::{self, ending_message, errors_of, Cohorts, Eligible, Ending, Member};
use super::outbox::{Notice, OpenConnections, Out, Outbox, Registration};
use super::protocol::{self, close, ClientMessage, Payload, Protocol};
use crate::auth::{AuthError, Tokens};
use crate::config::WsConfig;
use crate::graphql::{failed_as_a_whole, ApiError, CatchUpTo, Rendered};
use crate::graphql::{AppSchema, Caller};
use crate::metrics::{Raised, RATE_LIMITED, SLOW_CONSUMER_CUTS, SUBSCRIPTIONS, WS_CONNECTIONS};
use crate::rate_limit::{Client, RateLimiter};
use orderhub_actors::channel::Subscriber;
use orderhub_actors::ErrorCode;

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
    /// Told when the server stops: connections close with 1001.
    pub connections: OpenConnections,
}

/// Frames written per flush at most.
const WRITE_BATCH: usize = 32;

/// A running operation.
enum Running {
    /// Served by a task of its own.
    Task(AbortHandle),
    /// A cohort member: its subscription actor writes into the connection's outbox. Held to
    /// stop the actor when the operation ends.
    Member { _held: Box<(Subscriber, Raised)> },
}

struct Connection {
    protocol: Protocol,
    schema: AppSchema,
    tokens: Tokens,
    config: WsConfig,
    rate_limit: Option<Arc<RateLimiter>>,
    cohorts: Option<Cohorts>,
    upgrade_caller: Caller,
    /// Set by `connection_init`, always `Caller::Authenticated`; operations may start once it
    /// is. Its identity's rate limit applies to subscribe messages.
    caller: Option<Caller>,
    init_received: bool,
    /// By the client's id; the key tells one operation from a later one with the same id.
    operations: HashMap<String, (u64, Running)>,
    next_key: u64,
    out: Arc<Outbox>,
    /// Its place among the node's open connections, told its subject at `connection_init`.
    registration: Option<Registration>,
}

/// What to do after a client message.
enum Flow {
    Continue,
    Close(u16, String),
}

/// How the connection ends.
enum Leave {
    /// With this close code and reason, after what is queued.
    Close(u16, String),
    /// The client closed, or the socket broke: what is queued goes out if it can.
    Quietly,
    /// Nothing more can be written (a write failed, or the connection was cut as slow).
    Cut,
}

/// What woke the connection.
enum Step {
    Read(Option<Result<Message, axum::Error>>),
    /// Frames or notices are queued.
    Ready,
    /// A ping is due, or a deadline passed.
    Timer,
}

/// Runs one WebSocket connection to its end: one task reads, writes and holds the
/// subscriptions that their cohorts serve; only operations that run on their own, or still
/// catch up, have tasks.
///
/// Not an `async fn`: what it is given is boxed before the future is made. A future keeps its
/// arguments apart from its state, so the socket and the connection's state would otherwise
/// take their room in it twice, and that future is what every idle screen costs.
pub fn serve(
    socket: WebSocket,
    protocol: Protocol,
    upgrade_caller: Caller,
    services: WsServices,
) -> impl std::future::Future<Output = ()> + Send {
    let WsServices {
        schema,
        tokens,
        config,
        rate_limit,
        cohorts,
        delivery: _,
        connections,
    } = services;
    // When frames back up here, operations wait and their own buffers fill, and cohort
    // members are cut: those subscribers are cut as slow, nobody else.
    let out = Arc::new(Outbox::new(config.outbox));
    let connection = Box::new(Connection {
        protocol,
        schema,
        tokens,
        config,
        rate_limit,
        cohorts,
        upgrade_caller,
        caller: None,
        init_received: false,
        operations: HashMap::new(),
        next_key: 0,
        out,
        registration: None,
    });
    run(Box::new(socket), connection, connections)
}

async fn run(
    mut socket: Box<WebSocket>,
    mut connection: Box<Connection>,
    connections: OpenConnections,
) {
    let _open = Raised::new(metrics::gauge!(WS_CONNECTIONS));
    let Some(registration) = connections.open(&connection.out) else {
        let frame = close_frame(close::GOING_AWAY, "Server shutting down".into());
        let _ = timeout(
            Duration::from_secs(1),
            socket.send(Message::Close(Some(frame))),
        )
        .await;
        return;
    };
    drop(connections);
    connection.registration = Some(registration);
    let out = connection.out.clone();
    let started = Instant::now();
    let init_deadline = started + connection.config.init_timeout;
    let keepalive = connection.config.keepalive;
    let mut next_ping = started + keepalive;
    let mut last_heard = started;
    // One timer, boxed: the next ping, or sooner the connection_init deadline. (Each
    // subscription's actor ends it when the token expires.)
    let mut timer = Box::pin(sleep_until(init_deadline.min(next_ping)));
    let close = 'serving: loop {
        let deadline = (!connection.init_received).then_some(init_deadline);
        let wake = deadline.map_or(next_ping, |deadline| deadline.min(next_ping));
        if timer.deadline() != wake {
            timer.as_mut().reset(wake);
        }
        let step = tokio::select! {
            frame = socket.next() => Step::Read(frame),
            () = out.ready() => Step::Ready,
            () = &mut timer => Step::Timer,
        };
        match step {
            Step::Read(frame) => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Flow::Close(code, reason) = connection.handle(text.as_str()) {
                            break Leave::Close(code, reason);
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let reason = "Invalid message: binary frames are not supported";
                        let (code, reason) = connection.invalid(reason.into());
                        break Leave::Close(code, reason);
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Err(error)) => break unreadable(error),
                    Some(Ok(Message::Close(_))) | None => break Leave::Quietly,
                }
            }
            Step::Ready => {
                for notice in out.take_notices() {
                    if let Flow::Close(code, reason) = connection.notice(notice) {
                        break 'serving Leave::Close(code, reason);
                    }
                }
                // Boxed: writing needs more state than waiting, and connections mostly wait.
                if Box::pin(connection.write(&mut socket)).await.is_err() {
                    break Leave::Cut;
                }
            }
            Step::Timer => {
                let now = Instant::now();
                if deadline.is_some_and(|deadline| deadline <= now) {
                    break Leave::Close(
                        close::INIT_TIMEOUT,
                        "Connection initialisation timeout".into(),
                    );
                }
                if next_ping <= now {
                    if last_heard.elapsed() > keepalive * 2 {
                        break Leave::Close(
                            close::KEEPALIVE_TIMEOUT,
                            "Keep-alive timeout: no answer to pings".into(),
                        );
                    }
                    next_ping = now + keepalive;
                    // A full outbox means the writes are stuck; their timeout ends the
                    // connection.
                    let _ = out.try_send(Out::Ping);
                    if connection.protocol == Protocol::Legacy && connection.caller.is_some() {
                        connection.say(protocol::keep_alive());
                    }
                }
            }
        }
    };
    // Operations end first (cohort members leave their cohorts), then what is queued (and
    // the close frame, if any) is written for a moment.
    for (_, (_, operation)) in connection.operations.drain() {
        if let Running::Task(task) = operation {
            task.abort();
        }
    }
    if !matches!(close, Leave::Cut) {
        let farewell = farewell(&mut connection, &mut socket, close);
        let _ = Box::pin(timeout(Duration::from_secs(1), farewell)).await;
    }
    out.close();
}

/// Writes what is queued, then closes the socket.
async fn farewell(connection: &mut Connection, socket: &mut WebSocket, close: Leave) {
    loop {
        match connection.write(socket).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(Cut) => return,
        }
    }
    match close {
        Leave::Close(code, reason) => {
            tracing::debug!(code, %reason, "closing WebSocket");
            let frame = close_frame(code, reason);
            let _ = socket.send(Message::Close(Some(frame))).await;
        }
        Leave::Quietly | Leave::Cut => {
            let _ = socket.close().await;
        }
    }
}

/// A frame the socket refused to read: too large (1009), text that is not UTF-8 (1007) or a
/// protocol violation (1002) are answered with their RFC 6455 close code; a connection that
/// simply broke gets nothing.
fn unreadable(error: axum::Error) -> Leave {
    use tungstenite::Error;
    let Ok(error) = error.into_inner().downcast::<Error>() else {
        return Leave::Quietly;
    };
    let (code, reason) = match *error {
        Error::Capacity(_) => (close::MESSAGE_TOO_BIG, "Message too big"),
        Error::Utf8(_) => (close::INVALID_PAYLOAD, "Invalid UTF-8"),
        Error::Protocol(_) => (close::PROTOCOL_ERROR, "Protocol error"),
        _ => return Leave::Quietly,
    };
    tracing::debug!(%error, code, "unreadable WebSocket frame");
    Leave::Close(code, reason.into())
}

/// The connection is over: a write failed, or was stuck for the write timeout and the
/// connection was cut as a slow consumer.
struct Cut;

impl Connection {
    /// A message of the connection's own (ack, pong, refusals). A full outbox means the writes
    /// are stuck, and their timeout is about to end the connection.
    fn say(&self, text: String) {
        let _ = self.out.try_send(Out::Text(text, None));
    }

    /// Writes what is queued, up to a batch, with one flush; how many frames.
    async fn write(&mut self, socket: &mut WebSocket) -> Result<usize, Cut> {
        // Commit times of the events in the batch, for the delivery metrics once written. An
        // array: this runs once per frame written, and the future holding it is boxed.
        let mut events = [0; WRITE_BATCH];
        let mut event_count = 0;
        let mut written = 0;
        let write = async {
            while written < WRITE_BATCH {
                let Some(out) = self.out.pop() else {
                    break;
                };
                let (message, event) = match out {
                    Out::Text(text, event) => (Message::Text(text.into()), event),
                    Out::Event { envelope, frame } => {
                        let text = envelope.wrap(&frame.payload);
                        (Message::Text(text.into()), Some(frame.committed_at_ms))
                    }
                    Out::Ping => (Message::Ping(Default::default()), None),
                };
                if let Some(committed_at) = event {
                    events[event_count] = committed_at;
                    event_count += 1;
                }
                socket.feed(message).await?;
                written += 1;
            }
            match written {
                0 => Ok(()),
                _ => socket.flush().await,
            }
        };
        match timeout(self.config.write_timeout, write).await {
            Ok(Ok(())) => {
                for committed_at in &events[..event_count] {
                    crate::metrics::event_written(*committed_at);
                }
                Ok(written)
            }
            Ok(Err(_)) => Err(Cut),
            Err(_) => {
                metrics::counter!(SLOW_CONSUMER_CUTS, "reason" => "socket").increment(1);
                let write_timeout = self.config.write_timeout;
                tracing::info!(timeout = ?write_timeout, "closing a WebSocket whose writes are stuck (slow consumer)");
                let frame = close_frame(close::SLOW_CONSUMER, "Slow consumer".into());
                let _ = timeout(
                    Duration::from_millis(100),
                    socket.send(Message::Close(Some(frame))),
                )
                .await;
                Err(Cut)
            }
        }
    }

    fn notice(&mut self, notice: Notice) -> Flow {
        match notice {
            // Clients reconnect (to another node) and resume with `after`.
            Notice::ServerStopping => {
                return Flow::Close(close::GOING_AWAY, "Server shutting down".into());
            }
            Notice::Displaced => {
                return Flow::Close(
                    close::TOO_MANY_SOCKETS,
                    "Too many sockets for this token: this was its oldest".into(),
                );
            }
            Notice::Finished(key) => {
                self.operations
                    .retain(|_, (k, running)| !(*k == key && matches!(running, Running::Task(_))));
            }
            Notice::Member(key, member) => {
                // Completed or ended meanwhile: dropping the member stops its actor.
                if let Some((_, running)) = self.operations.values_mut().find(|(k, _)| *k == key) {
                    *running = Running::Member { _held: member };
                }
            }
            Notice::Ended { operation, text } => {
                // Unless the client completed it first: then it heard the end already.
                let id = self.operations.iter().find(|(_, (k, _))| *k == operation);
                if let Some(id) = id.map(|(id, _)| id.clone()) {
                    if let Some((_, Running::Task(task))) = self.operations.remove(&id) {
                        task.abort();
                    }
                    self.out.force(Out::Text(text, None));
                }
            }
        }
        Flow::Continue
    }

    /// Ends operation `id` before it starts, with `code`; the connection stays open.
    fn refuse(&self, id: &str, code: ErrorCode, message: &str) {
        let errors = errors_of(ApiError::new(code, message));
        self.say(protocol::error(self.protocol, id, &errors));
    }

    /// A message that is not one of the protocol's: closed with 4400 and the reason
    /// (graphql-ws PROTOCOL.md § Invalid message), after a `connection_error` with the same
    /// reason on the legacy protocol, whose clients read that.
    fn invalid(&self, reason: String) -> (u16, String) {
        if self.protocol == Protocol::Legacy {
            self.say(protocol::connection_error(&reason));
        }
        (close::INVALID_MESSAGE, reason)
    }

    fn handle(&mut self, text: &str) -> Flow {
        let message = match protocol::parse(self.protocol, text) {
            Ok(message) => message,
            Err(reason) => {
                let (code, reason) = self.invalid(reason);
                return Flow::Close(code, reason);
            }
        };
        match message {
            ClientMessage::Init(payload) => self.init(payload),
            ClientMessage::Subscribe { id, payload } => self.subscribe(id, payload),
            ClientMessage::Complete { id } => {
                // A cohort member leaves its cohort when dropped.
                if let Some((_, Running::Task(task))) = self.operations.remove(&id) {
                    task.abort();
                }
                Flow::Continue
            }
            ClientMessage::Ping(payload) => {
                self.say(protocol::pong(payload));
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
            None => std::mem::replace(&mut self.upgrade_caller, Caller::Anonymous),
        };
        // A socket without a credential could run nothing: every operation would be refused,
        // so it would only hold a place. It is refused as a bad token is.
        let caller = match caller {
            Caller::Anonymous => Caller::Rejected(AuthError::Missing),
            caller => caller,
        };
        if let Caller::Rejected(error) = &caller {
            if self.protocol == Protocol::Legacy {
                self.say(protocol::connection_error(&error.to_string()));
            }
            return Flow::Close(close::FORBIDDEN, format!("Forbidden: {error}"));
        }
        if let (Caller::Authenticated(principal), Some(registration)) =
            (&caller, &self.registration)
        {
            registration.identify(&principal.subject);
        }
        self.caller = Some(caller);
        self.say(protocol::ack(self.protocol));
        if self.protocol == Protocol::Legacy {
            self.say(protocol::keep_alive());
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
            self.refuse(&id, ErrorCode::TooManySubscriptions, &message);
            return Flow::Continue;
        }
        let client = match &caller {
            Caller::Authenticated(principal) => Some(Client::Token(principal)),
            _ => None,
        };
        if let (Some(limiter), Some(client)) = (&self.rate_limit, client) {
            if limiter.check(client).is_err() {
                metrics::counter!(RATE_LIMITED, "transport" => "ws").increment(1);
                self.refuse(
                    &id,
                    ErrorCode::RateLimited,
                    "too many requests from this client; retry later",
                );
                return Flow::Continue;
            }
        }
        let key = self.next_key;
        self.next_key += 1;
        let operation = Operation {
            schema: self.schema.clone(),
            caller,
            protocol: self.protocol,
            id: id.clone(),
            key,
            out: self.out.clone(),
        };
        let cohort = self.cohorts.as_ref().and_then(|cohorts| {
            let eligible = cohort::eligible(&payload, &operation.caller)?;
            Some((cohorts.clone(), eligible))
        });
        let task = tokio::spawn(async move {
            // Boxed: a subscription on its own keeps its task as long as it runs.
            match cohort {
                Some((cohorts, eligible)) => {
                    Box::pin(operation.run_in_cohort(&cohorts, eligible, payload)).await
                }
                None => Box::pin(operation.run(payload)).await,
            }
            operation.out.notify(Notice::Finished(operation.key));
        });
        self.operations
            .insert(id, (key, Running::Task(task.abort_handle())));
        Flow::Continue
    }
}

/// One subscribe message being served.
struct Operation {
    schema: AppSchema,
    caller: Caller,
    protocol: Protocol,
    id: String,
    /// Tells this operation from an earlier one with the same id.
    key: u64,
    out: Arc<Outbox>,
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
        self.out.send(Out::Text(text, event)).await
    }

    async fn complete(&self) {
        self.send(protocol::complete(self.protocol, &self.id), None)
            .await;
    }

    /// A subscription (or a query or mutation sent over the socket) on its own.
    async fn run(&self, payload: Payload) {
        // Boxed, stream and all: the task of every subscription would otherwise carry their
        // size (the stream is kilobytes).
        if let Forwarded::Ended(_) = Box::pin(self.forward(self.request(payload))).await {
            self.complete().await;
        }
    }

    /// Executes `request` and sends each response, with the event it carries, to the client.
    async fn forward(&self, request: async_graphql::Request) -> Forwarded {
        let rendered = Arc::new(Rendered::default());
        let mut responses = self.schema.execute_stream(request.data(rendered.clone()));
        let mut last_event = None;
        while let Some(response) = responses.next().await {
            let whole = failed_as_a_whole(&response);
            let text = match serde_json::to_value(&response) {
                Ok(value) if whole => protocol::error(self.protocol, &self.id, &value["errors"]),
                Ok(value) => protocol::next(self.protocol, &self.id, &value),
                Err(error) => {
                    tracing::error!(%error, "cannot encode a GraphQL response");
                    return Forwarded::Failed;
                }
            };
            let event = rendered.take();
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
    /// events take over, relays what queued up meanwhile, then hands its place in the cohort
    /// to the connection, which the cohort's frames reach directly from then on.
    async fn run_in_cohort(&self, cohorts: &Cohorts, eligible: Eligible, payload: Payload) {
        let active = Raised::new(metrics::gauge!(SUBSCRIPTIONS, "field" => "restaurantEvents"));
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
        let member = Member::new(self.out.clone(), self.protocol, &self.id, self.key);
        let expires_in = match &self.caller {
            Caller::Authenticated(principal) => {
                principal.expires_at().map(crate::graphql::expires_in)
            }
            _ => None,
        };
        let resume_after = catch_up.is_some().then(|| after.unwrap_or(0));
        let attached = membership
            .attach(member.clone(), live_after, resume_after, expires_in)
            .await;
        let subscriber = match attached {
            Ok(subscriber) => subscriber,
            Err(error) => {
                let errors = errors_of(error.with_last_seq(after.unwrap_or(0)));
                self.send(protocol::error(self.protocol, &self.id, &errors), None)
                    .await;
                return;
            }
        };
        if let Some(request) = catch_up {
            // Meanwhile the member's actor holds the frames after `live_after`.
            let request = request.data(CatchUpTo(live_after));
            match Box::pin(self.forward(request)).await {
                Forwarded::Ended(replayed) => {
                    let after = after.unwrap_or(0);
                    subscriber.caught_up(replayed.unwrap_or(after).max(after).max(live_after));
                }
                // The error went out: the actor's end must not follow it.
                Forwarded::Failed | Forwarded::Gone => return member.silence(),
            }
        }
        let kept = Box::new((subscriber, active));
        self.out.notify(Notice::Member(self.key, kept));
    }

    /// Tells the member how its stream ended, with the last seq it was sent.
    async fn end(&self, ending: Ending, last: i64) {
        let text = ending_message(self.protocol, &self.id, ending, last);
        self.send(text, None).await;
    }
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
