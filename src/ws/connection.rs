use async_graphql::futures_util::{SinkExt, StreamExt};
use async_graphql::Variables;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio::time::{sleep_until, timeout, Instant};

use super::cohort::{self, Cohorts, Eligible, Ending, Frame, Membership, Outlet, Switch};
use super::outbox::{OpenConnections, Outbox};
use super::protocol::{self, close, ClientMessage, NextEnvelope, Payload, Protocol};
use crate::auth::Tokens;
use crate::graphql::{ApiError, CatchUpTo};
use crate::graphql::{AppSchema, Caller};
use crate::metrics::{Raised, RATE_LIMITED, SLOW_CONSUMER_CUTS, SUBSCRIPTIONS, WS_CONNECTIONS};
use crate::rate_limit::RateLimiter;
use orderhub_actors::ErrorCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Told when the server stops: connections close with 1001.
    pub connections: OpenConnections,
}

/// What the connection writes.
pub(super) enum Out {
    /// A message, and the commit time of the event it carries, if it carries one.
    Text(String, Option<i64>),
    /// An event of a cohort for one subscription: the envelope is written around the
    /// cohort's encoded payload here, when it is written.
    Event {
        envelope: Arc<NextEnvelope>,
        frame: Arc<Frame>,
    },
    Ping,
}

/// What a connection's operations and cohorts tell it.
pub(super) enum Notice {
    /// The task of operation `key` ended.
    Finished(u64),
    /// Operation `key` caught up: from now on its cohort writes to this connection directly,
    /// its task ends, and the connection keeps its place in the cohort.
    Direct(u64, Box<DirectMember>),
    /// Cohort member `key` was cut, or its cohort ended.
    Stopped(u64),
    /// The server stops: the connection closes with 1001.
    ServerStopping,
}

/// A subscription served by its cohort with no task of its own: idle, it costs a map entry.
pub(super) struct DirectMember {
    membership: Membership,
    _active: Raised,
}

/// Frames written per flush at most.
const WRITE_BATCH: usize = 32;

/// A running operation.
enum Running {
    /// Served by a task of its own.
    Task(AbortHandle),
    /// Served by its cohort, straight into the connection's outbox.
    Member(Box<DirectMember>),
}

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
    /// When the caller's token expires; past it, cohort members end with UNAUTHENTICATED
    /// (operations on their own end by themselves).
    expires: Option<Instant>,
    /// By the client's id; the key tells one operation from a later one with the same id.
    operations: HashMap<String, (u64, Running)>,
    next_key: u64,
    out: Arc<Outbox>,
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
    upgrade_token: Option<String>,
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
        upgrade_token,
        caller: None,
        token: None,
        init_received: false,
        expires: None,
        operations: HashMap::new(),
        next_key: 0,
        out,
    });
    run(Box::new(socket), connection, connections)
}

async fn run(
    mut socket: Box<WebSocket>,
    mut connection: Box<Connection>,
    connections: OpenConnections,
) {
    let _open = Raised::new(metrics::gauge!(WS_CONNECTIONS));
    let Some(_registered) = connections.open(&connection.out) else {
        let frame = close_frame(close::GOING_AWAY, "Server shutting down".into());
        let _ = timeout(
            Duration::from_secs(1),
            socket.send(Message::Close(Some(frame))),
        )
        .await;
        return;
    };
    drop(connections);
    let out = connection.out.clone();
    let started = Instant::now();
    let init_deadline = started + connection.config.init_timeout;
    let keepalive = connection.config.keepalive;
    let mut next_ping = started + keepalive;
    let mut last_heard = started;
    // One timer, boxed: the next ping, or sooner the connection_init deadline and then the
    // token's expiry.
    let mut timer = Box::pin(sleep_until(init_deadline.min(next_ping)));
    let close = 'serving: loop {
        let deadline = match connection.init_received {
            false => Some(init_deadline),
            // Until it has passed: then the members it ended are gone.
            true => connection.expires.filter(|at| *at > Instant::now()),
        };
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
                        break Leave::Close(
                            close::INVALID_MESSAGE,
                            "Invalid message: binary frames are not supported".into(),
                        );
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
                    if !connection.init_received {
                        break Leave::Close(
                            close::INIT_TIMEOUT,
                            "Connection initialisation timeout".into(),
                        );
                    }
                    connection.expire();
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
            Notice::Finished(key) => {
                self.operations
                    .retain(|_, (k, running)| !(*k == key && matches!(running, Running::Task(_))));
            }
            Notice::Direct(key, member) => self.take_over(key, member),
            Notice::Stopped(key) => {
                // A member still in its task learns of it there.
                let id = self.members().find(|(_, k)| *k == key).map(|(id, _)| id);
                if let Some((id, member)) = id.and_then(|id| self.remove_member(id)) {
                    let ending = member.membership.ending();
                    self.end_member(&id, member, ending);
                }
            }
        }
        Flow::Continue
    }

    /// A cohort member caught up: the connection keeps its place in the cohort from now on.
    fn take_over(&mut self, key: u64, member: Box<DirectMember>) {
        let Some((id, running)) = self.operations.iter_mut().find(|(_, (k, _))| *k == key) else {
            // Completed meanwhile: dropping the member leaves the cohort.
            return;
        };
        let ending = if self.expires.is_some_and(|at| at <= Instant::now()) {
            Ending::TokenExpired
        } else if !member.membership.is_member() {
            // Cut or ended before the connection took it over: no notice follows.
            member.membership.ending()
        } else {
            running.1 = Running::Member(member);
            return;
        };
        let id = id.clone();
        self.operations.remove(&id);
        self.end_member(&id, *member, ending);
    }

    /// Ends a cohort member that is out of the operations: out of its cohort first, so that
    /// no frame follows, then the message telling the client why, after the frames queued.
    fn end_member(&self, id: &str, member: DirectMember, ending: Ending) {
        let last = member.membership.last_sent();
        drop(member);
        let text = ending_message(self.protocol, id, ending, last);
        self.out.force(Out::Text(text, None));
    }

    /// The caller's token expired: every cohort member ends with UNAUTHENTICATED.
    fn expire(&mut self) {
        let members: Vec<String> = self.members().map(|(id, _)| id).collect();
        for id in members {
            if let Some((id, member)) = self.remove_member(id) {
                self.end_member(&id, member, Ending::TokenExpired);
            }
        }
    }

    /// The ids and keys of the operations their cohorts serve.
    fn members(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        self.operations
            .iter()
            .filter(|(_, (_, running))| matches!(running, Running::Member(_)))
            .map(|(id, (key, _))| (id.clone(), *key))
    }

    /// Takes operation `id` out if its cohort serves it.
    fn remove_member(&mut self, id: String) -> Option<(String, DirectMember)> {
        if !matches!(self.operations.get(&id), Some((_, Running::Member(_)))) {
            return None;
        }
        match self.operations.remove(&id) {
            Some((_, Running::Member(member))) => Some((id, *member)),
            _ => None,
        }
    }

    /// Ends operation `id` before it starts, with `code`; the connection stays open.
    fn refuse(&self, id: &str, code: ErrorCode, message: &str) {
        let errors = errors_of(ApiError::new(code, message));
        self.say(protocol::error(self.protocol, id, &errors));
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
        let (caller, token) = match payload.as_ref().and_then(protocol::authorization) {
            Some(header) => match self.tokens.verify_header(header) {
                Ok(principal) => (Caller::Authenticated(principal), Some(header.to_owned())),
                Err(error) => (Caller::Rejected(error), None),
            },
            None => (self.upgrade_caller.clone(), self.upgrade_token.take()),
        };
        // Kept only to find its rate limit.
        self.token = token.filter(|_| self.rate_limit.is_some());
        if let Caller::Rejected(error) = &caller {
            if self.protocol == Protocol::Legacy {
                self.say(protocol::connection_error(&error.to_string()));
            }
            return Flow::Close(close::FORBIDDEN, format!("Forbidden: {error}"));
        }
        if let Caller::Authenticated(principal) = &caller {
            self.expires = principal.expires_at().map(crate::graphql::deadline);
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
        if let (Some(limiter), Some(token)) = (&self.rate_limit, &self.token) {
            if limiter.check(token).is_err() {
                metrics::counter!(RATE_LIMITED, "transport" => "ws").increment(1);
                self.refuse(
                    &id,
                    ErrorCode::RateLimited,
                    "too many requests for this token; retry later",
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
        let task = tokio::spawn(crate::metrics::deliveries(async move {
            // Boxed: a subscription on its own keeps its task as long as it runs.
            match cohort {
                Some((cohorts, eligible)) => {
                    Box::pin(operation.run_in_cohort(&cohorts, eligible, payload)).await
                }
                None => Box::pin(operation.run(payload)).await,
            }
            operation.out.notify(Notice::Finished(operation.key));
        }));
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
        let mut last = live_after;
        if let Some(request) = catch_up {
            let request = request.data(CatchUpTo(live_after));
            match Box::pin(self.forward(self.schema.execute_stream(request))).await {
                Forwarded::Ended(replayed) => {
                    let after = after.unwrap_or(0);
                    last = replayed.unwrap_or(after).max(after).max(live_after);
                }
                Forwarded::Failed | Forwarded::Gone => return,
            }
        }
        let envelope = Arc::new(NextEnvelope::new(self.protocol, &self.id));
        loop {
            match membership.try_next() {
                Some(Ok(frame)) => {
                    if frame.seq > last {
                        last = frame.seq;
                        let text = envelope.wrap(&frame.payload);
                        if !self.send(text, Some(frame.committed_at_ms)).await {
                            return;
                        }
                    }
                }
                Some(Err(ending)) => return self.end(ending, last).await,
                None => {
                    let outlet = Outlet {
                        outbox: self.out.clone(),
                        envelope: envelope.clone(),
                        operation: self.key,
                    };
                    match membership.go_direct(outlet, last) {
                        Switch::Done => {
                            let member = DirectMember {
                                membership,
                                _active: active,
                            };
                            self.out.notify(Notice::Direct(self.key, Box::new(member)));
                            return;
                        }
                        Switch::Pending => tokio::task::yield_now().await,
                    }
                }
            }
        }
    }

    /// Tells the member how its stream ended, with the last seq it was sent.
    async fn end(&self, ending: Ending, last: i64) {
        let text = ending_message(self.protocol, &self.id, ending, last);
        self.send(text, None).await;
    }
}

/// The message that ends a cohort member's stream: complete, or its errors with the last
/// seq the member was sent.
fn ending_message(protocol: Protocol, id: &str, ending: Ending, last: i64) -> String {
    match ending {
        Ending::Completed => protocol::complete(protocol, id),
        Ending::SlowConsumer => {
            let error = ApiError::new(
                ErrorCode::SlowConsumer,
                "the client did not keep up; resubscribe with after: lastSeq",
            );
            protocol::error(protocol, id, &errors_of(error.with_last_seq(last)))
        }
        Ending::TokenExpired => {
            let error = ApiError::unauthenticated("the token has expired");
            protocol::error(protocol, id, &errors_of(error.with_last_seq(last)))
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
            protocol::error(protocol, id, &errors)
        }
    }
}

/// An error as the `errors` list of a response.
fn errors_of(error: ApiError) -> serde_json::Value {
    let error = async_graphql::Error::from(error).into_server_error(Default::default());
    serde_json::to_value([error]).unwrap_or_default()
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
