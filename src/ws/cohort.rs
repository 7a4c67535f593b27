//! Cohorts: the render is shared, the identity is not. Subscribers on this node that sent the
//! same `restaurantEvents` document, operation and variables (all but `after`) with the same
//! authorization scope would each get the same bytes for every event. They form a cohort: one
//! shared execution resolves and serializes each event once into a `Frame`, and sends it to
//! every member's own subscription actor, which hands it to the member's connection.
//!
//! async-graphql resolves every item of a subscription stream separately for each subscriber
//! (`OutputType::resolve` per item); at a few thousand screens per restaurant that, not the
//! network, would be the limit.
//!
//! Each member is a `SubscriptionActor` under the restaurant's channel, like any subscription:
//! its mailbox, seq position, token expiry and slow-consumer cut are its own, and ending one
//! member touches nobody else. A member that resumes with `after` first replays (after, L]
//! through its own execution, where L is the last seq the cohort had sent out when the member
//! joined, while its actor holds the frames after L.

use async_graphql::parser::types::{DocumentOperations, OperationType, Selection};
use async_graphql::{Value as GqlValue, Variables};
use orderhub_actors::channel::{
    ChannelRegistry, Delivery, EndReason, Feeder, Frame, Joining, Outlet, Refused, Source,
    Subscriber,
};
use orderhub_actors::domain::{Principal, RestaurantId};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::outbox::{Notice, Out, Outbox, Refused as Full};
use super::protocol::{self, NextEnvelope, Payload, Protocol};
use crate::graphql::{failed_as_a_whole, ApiError, AppSchema, Caller, Rendered, SharedExecution};
use orderhub_actors::ErrorCode;

/// Same key, same bytes: the document, the operation, the variables but `after`, and the
/// caller's scope (role, restaurant, table), which decides authorization.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    query: String,
    operation_name: Option<String>,
    variables: String,
    scope: String,
}

/// A subscribe message that may join a cohort.
pub struct Eligible {
    key: Key,
    /// The shared execution runs as this: the caller's scope, without the caller's expiry
    /// (each member's token expiry ends that member alone).
    scope: Principal,
    /// The variable bound to `after`, if any; the shared execution sets it to null.
    after_variable: Option<String>,
    /// The member's own `after`, if it resumes.
    pub after: Option<i64>,
    /// The member gave an `after` that is not a plain seq: its own execution reports why.
    pub after_is_invalid: bool,
}

/// Whether a subscribe can share a cohort: one operation whose only root field is
/// `restaurantEvents` (named fragments may be spread inside it), without directives, with
/// `after` absent, null or a variable, sent by an authenticated caller. Everything else runs on
/// its own, as before.
pub fn eligible(payload: &Payload, caller: &Caller) -> Option<Eligible> {
    let Caller::Authenticated(principal) = caller else {
        return None;
    };
    let document = async_graphql::parser::parse_query(&payload.query).ok()?;
    // The parser keeps a named operation in `Multiple` even when it is the only one, and
    // clients (graphql-ws among them) send no operationName then: as for execution (GraphQL
    // spec, GetOperation), the one operation is the one meant.
    let operation = match (&document.operations, &payload.operation_name) {
        (DocumentOperations::Single(operation), _) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name.as_str())?,
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()?
        }
        (DocumentOperations::Multiple(_), None) => return None,
    };
    let operation = &operation.node;
    if operation.ty != OperationType::Subscription || !operation.directives.is_empty() {
        return None;
    }
    let [root] = operation.selection_set.node.items.as_slice() else {
        return None;
    };
    let Selection::Field(field) = &root.node else {
        return None;
    };
    let field = &field.node;
    if field.name.node != "restaurantEvents" || !field.directives.is_empty() {
        return None;
    }
    let mut after_variable = None;
    for (name, value) in &field.arguments {
        if name.node == "after" {
            // The parser's value type is not exported: a variable prints as `$name`.
            match value.node.clone().into_const() {
                Some(GqlValue::Null) => {}
                Some(_) => return None,
                None => after_variable = Some(value.node.to_string().strip_prefix('$')?.to_owned()),
            }
        }
    }
    let mut variables = payload.variables.clone().unwrap_or(Value::Null);
    let after_value = match (&after_variable, variables.as_object_mut()) {
        (Some(name), Some(object)) => object.remove(name.as_str()),
        _ => None,
    };
    let (after, after_is_invalid) = match after_value {
        None | Some(Value::Null) => (None, false),
        Some(value) => match value.as_i64() {
            Some(seq) => (Some(seq), false),
            None => (None, true),
        },
    };
    let scope = Principal::new(
        "cohort".into(),
        principal.role,
        principal.restaurant_id().cloned(),
        principal.table_id().cloned(),
    )
    .ok()?;
    Some(Eligible {
        key: Key {
            query: payload.query.clone(),
            operation_name: payload.operation_name.clone(),
            variables: variables.to_string(),
            scope: format!(
                "{:?}/{:?}/{:?}",
                scope.role,
                scope.restaurant_id(),
                scope.table_id()
            ),
        },
        scope,
        after_variable,
        after,
        after_is_invalid,
    })
}

/// How far a cohort has got.
#[derive(Debug, Clone)]
enum Phase {
    Starting,
    /// Live in this restaurant; events after this seq are sent out.
    Live(RestaurantId, i64),
    /// Over: the errors every member gets (`None`: the stream completed).
    Ended(Option<Arc<Value>>),
}

/// Where a member's frames go.
enum Route {
    /// Until its actor has started: frames wait here, as many as its mailbox would hold.
    Waiting(VecDeque<Arc<Frame>>),
    /// Its subscription actor.
    Actor(Feeder),
    /// Fell behind while waiting: its actor ends it as soon as it starts.
    Cut,
}

struct State {
    members: HashMap<u64, Route>,
    next_member: u64,
    /// The last seq sent out.
    last_seq: i64,
    leader: Option<AbortHandle>,
}

struct Cohort {
    key: Key,
    state: Mutex<State>,
    phase: watch::Sender<Phase>,
    cohorts: Weak<Inner>,
    /// Frames that may wait for a member whose actor has not started.
    buffer: usize,
}

struct Inner {
    schema: AppSchema,
    channels: ChannelRegistry,
    buffer: usize,
    cohorts: Mutex<HashMap<Key, Arc<Cohort>>>,
}

/// This node's cohorts.
#[derive(Clone)]
pub struct Cohorts {
    inner: Arc<Inner>,
}

/// A lock around plain bookkeeping: a panic elsewhere cannot leave it half-updated in a way
/// that matters more than losing the node's cohorts, so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cohorts {
    /// `buffer`: frames waiting for a member before it is cut as a slow consumer (its
    /// subscription actor's mailbox holds as many).
    pub fn new(schema: AppSchema, channels: ChannelRegistry, buffer: usize) -> Cohorts {
        Cohorts {
            inner: Arc::new(Inner {
                schema,
                channels,
                buffer,
                cohorts: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Cohorts running on this node.
    pub fn active(&self) -> usize {
        lock(&self.inner.cohorts).len()
    }

    /// Joins (or starts) the cohort of `eligible`, as `payload` asked.
    pub fn join(&self, eligible: &Eligible, payload: &Payload) -> Membership {
        let mut cohorts = lock(&self.inner.cohorts);
        let running = cohorts
            .get(&eligible.key)
            .filter(|cohort| !matches!(*cohort.phase.borrow(), Phase::Ended(_)))
            .cloned();
        let cohort = running.unwrap_or_else(|| {
            let cohort = self.start(eligible, payload);
            cohorts.insert(eligible.key.clone(), cohort.clone());
            cohort
        });
        let mut state = lock(&cohort.state);
        let id = state.next_member;
        state.next_member += 1;
        state.members.insert(id, Route::Waiting(VecDeque::new()));
        let joined_at = match *cohort.phase.borrow() {
            Phase::Live(..) => Some(state.last_seq),
            _ => None,
        };
        drop(state);
        Membership {
            cohort: cohort.clone(),
            id,
            joined_at,
            attached: false,
        }
    }

    fn start(&self, eligible: &Eligible, payload: &Payload) -> Arc<Cohort> {
        let cohort = Arc::new(Cohort {
            key: eligible.key.clone(),
            state: Mutex::new(State {
                members: HashMap::new(),
                next_member: 0,
                last_seq: 0,
                leader: None,
            }),
            phase: watch::Sender::new(Phase::Starting),
            cohorts: Arc::downgrade(&self.inner),
            buffer: self.inner.buffer,
        });
        let mut variables = payload.variables.clone().unwrap_or(Value::Null);
        if let (Some(name), Some(object)) = (&eligible.after_variable, variables.as_object_mut()) {
            object.insert(name.clone(), Value::Null);
        }
        let live = Arc::downgrade(&cohort);
        let mut request = async_graphql::Request::new(payload.query.clone())
            .variables(Variables::from_json(variables))
            .data(Caller::Authenticated(eligible.scope.clone()))
            .data(SharedExecution {
                live_after: Box::new(move |restaurant, seq| {
                    if let Some(cohort) = live.upgrade() {
                        lock(&cohort.state).last_seq = seq;
                        cohort
                            .phase
                            .send_replace(Phase::Live(restaurant.clone(), seq));
                    }
                }),
            });
        if let Some(name) = &payload.operation_name {
            request = request.operation_name(name.clone());
        }
        let task = tokio::spawn(lead(
            Arc::downgrade(&cohort),
            self.inner.schema.clone(),
            request,
        ));
        lock(&cohort.state).leader = Some(task.abort_handle());
        cohort
    }
}

/// The shared execution: resolves and serializes each event once and sends it out.
async fn lead(cohort: Weak<Cohort>, schema: AppSchema, request: async_graphql::Request) {
    use async_graphql::futures_util::StreamExt;
    let rendered = Arc::new(Rendered::default());
    let mut responses = schema.execute_stream(request.data(rendered.clone()));
    while let Some(response) = responses.next().await {
        let Some(cohort) = cohort.upgrade() else {
            return;
        };
        if failed_as_a_whole(&response) {
            let errors = serde_json::to_value(&response.errors).unwrap_or(Value::Null);
            cohort.end(Some(Arc::new(errors)));
            return;
        }
        // Every response of `restaurantEvents` carries an event: one that does not is a
        // fault here, and the members resume rather than miss it.
        let Some(event) = rendered.take() else {
            tracing::error!("a shared execution rendered a response without its event");
            let error = ApiError::new(
                ErrorCode::Internal,
                "the subscription lost its place; resubscribe with after: lastSeq",
            );
            let errors = errors_of(error.with_last_seq(0));
            cohort.end(Some(Arc::new(errors)));
            return;
        };
        let payload = match serde_json::to_string(&response) {
            Ok(payload) => payload.into_boxed_str(),
            Err(error) => {
                tracing::error!(%error, "cannot encode a GraphQL response");
                continue;
            }
        };
        cohort.send_out(Arc::new(Frame {
            seq: event.seq,
            committed_at_ms: event.committed_at_ms,
            payload,
        }));
    }
    if let Some(cohort) = cohort.upgrade() {
        cohort.end(None);
    }
}

impl Cohort {
    fn send_out(&self, frame: Arc<Frame>) {
        let buffer = self.buffer;
        let mut state = lock(&self.state);
        state.last_seq = frame.seq;
        let mut gone = Vec::new();
        for (id, route) in state.members.iter_mut() {
            match route {
                Route::Waiting(frames) if frames.len() >= buffer => *route = Route::Cut,
                Route::Waiting(frames) => frames.push_back(frame.clone()),
                Route::Actor(feeder) => {
                    if !feeder.send(Delivery::Frame(frame.clone())) {
                        gone.push(*id);
                    }
                }
                Route::Cut => {}
            }
        }
        for id in gone {
            state.members.remove(&id);
        }
    }

    /// Ends the cohort: each member's actor ends its subscription after what it has, with
    /// `errors` (or `complete`).
    fn end(&self, errors: Option<Arc<Value>>) {
        if let Some(inner) = self.cohorts.upgrade() {
            self.forget(&mut lock(&inner.cohorts));
        }
        let mut state = lock(&self.state);
        self.phase.send_replace(Phase::Ended(errors));
        for route in state.members.values() {
            if let Route::Actor(feeder) = route {
                feeder.source_ended();
            }
        }
        if let Some(leader) = state.leader.take() {
            leader.abort();
        }
    }

    /// Removes this cohort from the node's map, unless a newer one took its key.
    fn forget(&self, cohorts: &mut HashMap<Key, Arc<Cohort>>) {
        if cohorts
            .get(&self.key)
            .is_some_and(|current| std::ptr::eq(Arc::as_ptr(current), self))
        {
            cohorts.remove(&self.key);
        }
    }

    /// Member `id` left; the last one to leave stops the shared execution.
    fn leave(&self, id: u64) {
        let Some(inner) = self.cohorts.upgrade() else {
            return;
        };
        // The node's map first, then the cohort: the order `join` takes them in.
        let mut cohorts = lock(&inner.cohorts);
        let mut state = lock(&self.state);
        state.members.remove(&id);
        if state.members.is_empty() {
            if let Some(leader) = state.leader.take() {
                leader.abort();
            }
            drop(state);
            self.forget(&mut cohorts);
            // Unless it ended already: how it ended stays for whoever reads it still.
            self.phase.send_if_modified(|phase| {
                let ending = !matches!(phase, Phase::Ended(_));
                if ending {
                    *phase = Phase::Ended(None);
                }
                ending
            });
        }
    }

    /// How a member whose cohort ended ends.
    fn ending(&self) -> Ending {
        match &*self.phase.borrow() {
            Phase::Ended(Some(errors)) => Ending::Failed(errors.clone()),
            _ => Ending::Completed,
        }
    }
}

/// A member's place in its cohort until its subscription actor takes it over.
pub struct Membership {
    cohort: Arc<Cohort>,
    id: u64,
    /// The cohort's last seq when this member joined a live cohort.
    joined_at: Option<i64>,
    /// Its actor's outlet holds its place now.
    attached: bool,
}

/// How a member's subscription ended.
pub enum Ending {
    /// Its actor ended it (the shared execution's end aside).
    Ended(EndReason),
    /// The shared execution failed; every member gets these errors.
    Failed(Arc<Value>),
    /// The shared execution completed.
    Completed,
}

/// Who a member is on its connection.
pub(super) struct Member {
    outbox: Arc<Outbox>,
    protocol: Protocol,
    id: String,
    /// Tells this operation from an earlier one with the same id.
    operation: u64,
    /// Its operation ended it and said so: the actor's end goes unsaid.
    silenced: AtomicBool,
}

impl Member {
    pub fn new(outbox: Arc<Outbox>, protocol: Protocol, id: &str, operation: u64) -> Arc<Member> {
        Arc::new(Member {
            outbox,
            protocol,
            id: id.to_owned(),
            operation,
            silenced: AtomicBool::new(false),
        })
    }

    pub fn silence(&self) {
        self.silenced.store(true, Ordering::Release);
    }
}

impl Membership {
    /// Waits until the cohort is live and returns the seq after which this member's frames
    /// start; or how the cohort ended before that.
    pub async fn live_after(&mut self) -> Result<i64, Ending> {
        let mut phase = self.cohort.phase.subscribe();
        let phase = phase
            .wait_for(|phase| !matches!(phase, Phase::Starting))
            .await
            .map(|phase| phase.clone())
            .unwrap_or(Phase::Ended(None));
        match phase {
            Phase::Live(_, first) => Ok(self.joined_at.unwrap_or(first)),
            Phase::Ended(errors) => Err(ending_after(errors)),
            Phase::Starting => Err(Ending::Completed),
        }
    }

    /// Starts the member's subscription actor under the restaurant's channel, with the frames
    /// after `live_after`; with `resume_after`, it holds them until told the member caught up.
    pub(super) async fn attach(
        mut self,
        member: Arc<Member>,
        live_after: i64,
        resume_after: Option<i64>,
        expires_in: Option<Duration>,
    ) -> Result<Subscriber, ApiError> {
        let (restaurant, channels) =
            match (&*self.cohort.phase.borrow(), self.cohort.cohorts.upgrade()) {
                (Phase::Live(restaurant, _), Some(inner)) => {
                    (restaurant.clone(), inner.channels.clone())
                }
                _ => return Err(ApiError::new(ErrorCode::Unavailable, "the cohort ended")),
            };
        let envelope = Arc::new(NextEnvelope::new(member.protocol, &member.id));
        let subscriber = channels
            .start_subscriber(&restaurant, || Joining {
                source: Source::Cohort(Box::new(MemberOutlet {
                    member: member.clone(),
                    envelope: envelope.clone(),
                    cohort: self.cohort.clone(),
                    place: self.id,
                })),
                expires_in,
                position: Some(resume_after.unwrap_or(live_after)),
                catching_up: resume_after.is_some(),
                shared: false,
            })
            .await?;
        // From here the actor's outlet holds the member's place.
        self.attached = true;
        let feeder = subscriber.feeder();
        let mut state = lock(&self.cohort.state);
        match state.members.insert(self.id, Route::Actor(feeder.clone())) {
            Some(Route::Waiting(frames)) => {
                for frame in frames {
                    feeder.send(Delivery::Frame(frame));
                }
            }
            Some(Route::Cut) => {
                state.members.remove(&self.id);
                feeder.overflowed();
            }
            Some(Route::Actor(_)) | None => {
                state.members.remove(&self.id);
                feeder.source_ended();
            }
        }
        Ok(subscriber)
    }
}

fn ending_after(errors: Option<Arc<Value>>) -> Ending {
    match errors {
        Some(errors) => Ending::Failed(errors),
        None => Ending::Completed,
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if !self.attached {
            self.cohort.leave(self.id);
        }
    }
}

/// Where a member's subscription actor hands its frames: the connection's outbox. It holds the
/// member's place in the cohort for as long as the actor lives.
struct MemberOutlet {
    member: Arc<Member>,
    envelope: Arc<NextEnvelope>,
    /// Kept while the member lives: how the cohort ended is read after its execution let go.
    cohort: Arc<Cohort>,
    place: u64,
}

impl Outlet<Arc<Frame>> for MemberOutlet {
    fn offer(&mut self, frame: Arc<Frame>) -> Result<(), Refused> {
        let event = Out::Event {
            envelope: self.envelope.clone(),
            frame,
        };
        self.member
            .outbox
            .try_send(event)
            .map_err(|refused| match refused {
                Full::Full => Refused::Full,
                Full::Closed => Refused::Gone,
            })
    }

    fn end(&mut self, reason: EndReason, last_seq: i64) {
        if self.member.silenced.load(Ordering::Acquire) {
            return;
        }
        let ending = match reason {
            EndReason::SourceEnded => self.cohort.ending(),
            reason => Ending::Ended(reason),
        };
        let member = &self.member;
        let text = ending_message(member.protocol, &member.id, ending, last_seq);
        member.outbox.notify(Notice::Ended {
            operation: member.operation,
            text,
        });
    }
}

impl Drop for MemberOutlet {
    fn drop(&mut self) {
        self.cohort.leave(self.place);
    }
}

/// The message that ends a member's stream: complete, or its errors with the last seq the
/// member was sent.
pub(super) fn ending_message(protocol: Protocol, id: &str, ending: Ending, last: i64) -> String {
    let error = match ending {
        Ending::Completed => return protocol::complete(protocol, id),
        Ending::Ended(reason) => crate::graphql::ending(Some(reason)),
        Ending::Failed(errors) => {
            let mut errors = (*errors).clone();
            if let Some(errors) = errors.as_array_mut() {
                for error in errors {
                    if error["extensions"].get("lastSeq").is_some() {
                        error["extensions"]["lastSeq"] = last.into();
                    }
                }
            }
            return protocol::error(protocol, id, &errors);
        }
    };
    protocol::error(protocol, id, &errors_of(error.with_last_seq(last)))
}

/// An error as the `errors` list of a response.
pub(super) fn errors_of(error: ApiError) -> Value {
    let error = async_graphql::Error::from(error).into_server_error(Default::default());
    serde_json::to_value([error]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderhub_actors::domain::{RestaurantId, Role};

    fn staff() -> Caller {
        let restaurant = Some(RestaurantId::generate());
        let principal = Principal::new("screen".into(), Role::Staff, restaurant, None);
        Caller::Authenticated(principal.expect("a staff principal"))
    }

    fn payload(query: &str, operation_name: Option<&str>) -> Payload {
        Payload {
            query: query.into(),
            variables: Some(serde_json::json!({"r": "x", "after": 3})),
            operation_name: operation_name.map(Into::into),
            extensions: None,
        }
    }

    #[test]
    fn the_one_named_operation_is_meant_without_an_operation_name() {
        let named = "subscription Lg($r: ID!, $after: Int) { restaurantEvents(restaurantId: $r, after: $after) { seq } }";
        let member = eligible(&payload(named, None), &staff()).expect("eligible");
        assert_eq!(member.after, Some(3));
        assert!(eligible(&payload(named, Some("Lg")), &staff()).is_some());
        assert!(eligible(&payload(named, Some("Other")), &staff()).is_none());
        let two = format!(
            "{named} subscription Other {{ restaurantEvents(restaurantId: \"x\") {{ seq }} }}"
        );
        assert!(
            eligible(&payload(&two, None), &staff()).is_none(),
            "two operations and no name: execution refuses it, so no cohort either"
        );
    }

    #[test]
    fn named_fragments_inside_the_field_share_a_cohort() {
        let query = "subscription($r: ID!) { restaurantEvents(restaurantId: $r) { ...Ev } } \
                     fragment Ev on RestaurantEvent { seq }";
        assert!(eligible(&payload(query, None), &staff()).is_some());
        let at_the_root = "subscription { ...Root } fragment Root on Subscription { restaurantEvents(restaurantId: \"x\") { seq } }";
        assert!(eligible(&payload(at_the_root, None), &staff()).is_none());
    }
}
