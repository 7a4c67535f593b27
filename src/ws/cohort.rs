//! Cohort fan-out. Subscribers on this node that sent the same `restaurantEvents` document,
//! operation and variables (all but `after`) with the same authorization scope would each get
//! the same bytes for every event. They form a cohort: one shared execution resolves and
//! serializes each event once, and hands the payload to every member's bounded queue. Per
//! member and event what is left is a queue hand-off, an envelope and a socket write.
//!
//! async-graphql resolves every item of a subscription stream separately for each subscriber
//! (`OutputType::resolve` per item); at a few thousand screens per restaurant that, not the
//! network, would be the limit.
//!
//! A member that resumes with `after` first replays (after, L] through its own execution,
//! where L is the last seq the cohort had fanned out when the member joined; from then on
//! its queue holds exactly the events after L. A member whose queue is full is cut with
//! SLOW_CONSUMER and its `lastSeq`, like any subscriber; nobody else notices.

use async_graphql::parser::types::{DocumentOperations, OperationType, Selection};
use async_graphql::{Value as GqlValue, Variables};
use orderhub_actors::domain::Principal;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use super::connection::{Notice, Out};
use super::outbox::{Outbox, Refused};
use super::protocol::{NextEnvelope, Payload};
use crate::graphql::{AppSchema, Caller, SharedExecution};

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

/// One event as every member of a cohort gets it.
pub struct Frame {
    pub seq: i64,
    pub committed_at_ms: i64,
    /// The GraphQL response (`{"data": …}`) as JSON.
    pub payload: Box<str>,
}

/// How far a cohort has got.
#[derive(Debug, Clone)]
enum Phase {
    Starting,
    /// Live; events after this seq are fanned out.
    Live(i64),
    /// Over: the errors every member gets (`None`: the stream completed).
    Ended(Option<Arc<Value>>),
}

struct Member {
    route: Route,
    cut: Arc<AtomicBool>,
    /// The last seq handed to the connection's writer directly.
    delivered: Arc<AtomicI64>,
}

/// Where a caught-up member's frames go: its connection's outbox, which is also told
/// `Notice::Stopped(operation)` when the member is cut or the cohort ends.
pub(super) struct Outlet {
    pub outbox: Arc<Outbox>,
    pub envelope: Arc<NextEnvelope>,
    pub operation: u64,
}

/// Where a member's frames go.
enum Route {
    /// While the member catches up: frames wait in its own queue.
    Queue(mpsc::Sender<Arc<Frame>>),
    /// Caught up: straight into its connection's writer queue, with no task in between.
    Direct {
        outlet: Outlet,
        /// Frames up to this seq were sent already (a member that resumed ahead).
        after: i64,
    },
}

impl Member {
    /// The member is out of the cohort: a queue tells by closing, a direct member's
    /// connection by a notice.
    fn stopped(self) {
        if let Route::Direct { outlet, .. } = self.route {
            outlet.outbox.notify(Notice::Stopped(outlet.operation));
        }
    }
}

struct State {
    members: HashMap<u64, Member>,
    next_member: u64,
    /// The last seq fanned out.
    last_seq: i64,
    leader: Option<AbortHandle>,
}

struct Cohort {
    key: Key,
    state: Mutex<State>,
    phase: watch::Sender<Phase>,
    cohorts: Weak<Inner>,
}

struct Inner {
    schema: AppSchema,
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
    /// `buffer`: events queued per member before it is cut as a slow consumer.
    pub fn new(schema: AppSchema, buffer: usize) -> Cohorts {
        Cohorts {
            inner: Arc::new(Inner {
                schema,
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
        let (frames_tx, frames) = mpsc::channel(self.inner.buffer);
        let cut = Arc::new(AtomicBool::new(false));
        let delivered = Arc::new(AtomicI64::new(0));
        let mut state = lock(&cohort.state);
        let id = state.next_member;
        state.next_member += 1;
        state.members.insert(
            id,
            Member {
                route: Route::Queue(frames_tx),
                cut: cut.clone(),
                delivered: delivered.clone(),
            },
        );
        let joined_at = match *cohort.phase.borrow() {
            Phase::Live(_) => Some(state.last_seq),
            _ => None,
        };
        drop(state);
        Membership {
            cohort: cohort.clone(),
            id,
            frames: Some(frames),
            cut,
            delivered,
            joined_at,
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
                live_after: Box::new(move |seq| {
                    if let Some(cohort) = live.upgrade() {
                        lock(&cohort.state).last_seq = seq;
                        cohort.phase.send_replace(Phase::Live(seq));
                    }
                }),
            });
        if let Some(name) = &payload.operation_name {
            request = request.operation_name(name.clone());
        }
        let task = tokio::spawn(crate::metrics::deliveries(lead(
            Arc::downgrade(&cohort),
            self.inner.schema.clone(),
            request,
        )));
        lock(&cohort.state).leader = Some(task.abort_handle());
        cohort
    }
}

/// The shared execution: resolves and serializes each event once and fans it out.
async fn lead(cohort: Weak<Cohort>, schema: AppSchema, request: async_graphql::Request) {
    use async_graphql::futures_util::StreamExt;
    let mut responses = schema.execute_stream(request);
    while let Some(response) = responses.next().await {
        let Some(cohort) = cohort.upgrade() else {
            return;
        };
        if response.data == GqlValue::Null && !response.errors.is_empty() {
            let errors = serde_json::to_value(&response.errors).unwrap_or(Value::Null);
            cohort.end(Some(Arc::new(errors)));
            return;
        }
        let Some(event) = crate::metrics::delivered_event() else {
            continue;
        };
        let payload = match serde_json::to_string(&response) {
            Ok(payload) => payload.into_boxed_str(),
            Err(error) => {
                tracing::error!(%error, "cannot encode a GraphQL response");
                continue;
            }
        };
        cohort.fan_out(Arc::new(Frame {
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
    fn fan_out(&self, frame: Arc<Frame>) {
        let mut state = lock(&self.state);
        state.last_seq = frame.seq;
        let mut gone = Vec::new();
        for (id, member) in &state.members {
            let sent = match &member.route {
                Route::Queue(frames) => frames.try_send(frame.clone()).map_err(is_full),
                Route::Direct { after, .. } if frame.seq <= *after => continue,
                Route::Direct { outlet, .. } => {
                    let event = Out::Event {
                        envelope: outlet.envelope.clone(),
                        frame: frame.clone(),
                    };
                    let sent = outlet
                        .outbox
                        .try_send(event)
                        .map_err(|refused| refused == Refused::Full);
                    if sent.is_ok() {
                        member.delivered.store(frame.seq, Ordering::Release);
                    }
                    sent
                }
            };
            if let Err(full) = sent {
                if full {
                    member.cut.store(true, Ordering::Release);
                    metrics::counter!(crate::metrics::SLOW_CONSUMER_CUTS, "reason" => "buffer")
                        .increment(1);
                }
                gone.push(*id);
            }
        }
        for id in gone {
            if let Some(member) = state.members.remove(&id) {
                member.stopped();
            }
        }
    }

    /// Ends the cohort: members drain their queues, then get `errors` (or `complete`).
    fn end(&self, errors: Option<Arc<Value>>) {
        if let Some(inner) = self.cohorts.upgrade() {
            self.forget(&mut lock(&inner.cohorts));
        }
        let mut state = lock(&self.state);
        self.phase.send_replace(Phase::Ended(errors));
        for (_, member) in state.members.drain() {
            member.stopped();
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
}

/// A member's place in a cohort; leaving is dropping it. The last member to leave stops the
/// shared execution.
pub struct Membership {
    cohort: Arc<Cohort>,
    id: u64,
    /// Frames queued while the member catches up; gone once they go direct.
    frames: Option<mpsc::Receiver<Arc<Frame>>>,
    cut: Arc<AtomicBool>,
    delivered: Arc<AtomicI64>,
    /// The cohort's last seq when this member joined a live cohort.
    joined_at: Option<i64>,
}

/// Whether a member's frames now go to its connection directly.
pub enum Switch {
    Done,
    /// Frames arrived meanwhile: send them first.
    Pending,
}

/// Why a member's stream of frames ended.
pub enum Ending {
    /// The member fell `buffer` events behind.
    SlowConsumer,
    /// The shared execution failed; every member gets these errors.
    Failed(Arc<Value>),
    /// The shared execution completed.
    Completed,
    /// The member's token expired (the connection tells).
    TokenExpired,
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
            Phase::Live(first) => Ok(self.joined_at.unwrap_or(first)),
            Phase::Ended(errors) => Err(ending_after(errors)),
            Phase::Starting => Err(Ending::Completed),
        }
    }

    /// A frame queued while the member caught up, `None` when there is none now, or how
    /// the member's stream ended.
    pub fn try_next(&mut self) -> Option<Result<Arc<Frame>, Ending>> {
        match self.frames.as_mut()?.try_recv() {
            Ok(frame) => Some(Ok(frame)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(Err(self.ending())),
        }
    }

    /// From now on the cohort hands this member's frames (after `last`) to `outlet` itself —
    /// unless frames queued up meanwhile, which the member sends first.
    pub(super) fn go_direct(&mut self, outlet: Outlet, last: i64) -> Switch {
        let mut state = lock(&self.cohort.state);
        // Frames are queued under this lock: an empty queue stays empty until the switch.
        if self
            .frames
            .as_ref()
            .is_some_and(|frames| !frames.is_empty())
        {
            return Switch::Pending;
        }
        let Some(member) = state.members.get_mut(&self.id) else {
            // Cut or ended: the closed queue tells how.
            return Switch::Pending;
        };
        self.delivered.store(last, Ordering::Release);
        member.route = Route::Direct {
            outlet,
            after: last,
        };
        self.frames = None;
        Switch::Done
    }

    /// The last seq handed to the connection directly.
    pub fn last_sent(&self) -> i64 {
        self.delivered.load(Ordering::Acquire)
    }

    /// Whether the member still gets the cohort's frames.
    pub fn is_member(&self) -> bool {
        lock(&self.cohort.state).members.contains_key(&self.id)
    }

    /// Why the member's frames stopped (once they have).
    pub fn ending(&self) -> Ending {
        if self.cut.load(Ordering::Acquire) {
            return Ending::SlowConsumer;
        }
        let phase = self.cohort.phase.borrow().clone();
        match phase {
            Phase::Ended(errors) => ending_after(errors),
            _ => Ending::Completed,
        }
    }
}

fn is_full<T>(error: mpsc::error::TrySendError<T>) -> bool {
    matches!(error, mpsc::error::TrySendError::Full(_))
}

fn ending_after(errors: Option<Arc<Value>>) -> Ending {
    match errors {
        Some(errors) => Ending::Failed(errors),
        None => Ending::Completed,
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let Some(inner) = self.cohort.cohorts.upgrade() else {
            return;
        };
        // The node's map first, then the cohort: the order `join` takes them in.
        let mut cohorts = lock(&inner.cohorts);
        let mut state = lock(&self.cohort.state);
        state.members.remove(&self.id);
        if state.members.is_empty() {
            if let Some(leader) = state.leader.take() {
                leader.abort();
            }
            drop(state);
            self.cohort.forget(&mut cohorts);
            self.cohort.phase.send_replace(Phase::Ended(None));
        }
    }
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
