//! The event stream behind a subscription: replay from the store up to where the live
//! subscription took over, then live events, with no gap and no duplicate at the seam.

use async_graphql::futures_util::stream::{self, Stream};
use orderhub_actors::channel::{EndReason, Subscription};
use orderhub_actors::domain::{Event, RestaurantId, Timestamp};
use orderhub_actors::ports::Store;
use orderhub_actors::ErrorCode;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::ApiError;
use crate::metrics::{Raised, BUFFER_DEPTH, SUBSCRIPTIONS};

/// Events read from the store per round trip when replaying.
const REPLAY_PAGE: usize = 200;

/// The event a subscription response was rendered from. async-graphql turns each item of a
/// subscription's stream into a response and keeps nothing else of it, so whoever executes a
/// subscription puts a `Rendered` in the request's data, and the stream notes each event in
/// it as it hands the event over. async-graphql renders one item at a time, in order (a
/// subscription has one root field: GraphQL spec, "Single root field"), so after each
/// response `take` gives the event that response carries, or `None` for one that carries
/// none (`orderUpdated`'s current state, an error).
#[derive(Debug, Default)]
pub struct Rendered(std::sync::Mutex<Option<Tag>>);

/// Which event: its seq and commit time (milliseconds since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub seq: i64,
    pub committed_at_ms: i64,
}

impl Rendered {
    fn note(&self, event: &Event) {
        let tag = Tag {
            seq: event.seq,
            committed_at_ms: event.at.millis(),
        };
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(tag);
    }

    /// The event the response just rendered carries.
    pub fn take(&self) -> Option<Tag> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Stored events of one restaurant with seq in (sent, until], page by page.
struct Replay {
    store: Arc<dyn Store>,
    restaurant: RestaurantId,
    rendered: Option<Arc<Rendered>>,
    /// The last seq handed out.
    sent: i64,
    until: i64,
    backlog: VecDeque<Event>,
}

impl Replay {
    async fn next(&mut self) -> Option<Result<Event, ApiError>> {
        while self.sent < self.until {
            if let Some(event) = self.backlog.pop_front() {
                self.sent = event.seq;
                if let Some(rendered) = &self.rendered {
                    rendered.note(&event);
                }
                return Some(Ok(event));
            }
            match self
                .store
                .events(&self.restaurant, self.sent, REPLAY_PAGE)
                .await
            {
                Ok(page) if page.is_empty() => break, // pruned meanwhile
                Ok(page) => {
                    let until = self.until;
                    self.backlog = page.into_iter().filter(|e| e.seq <= until).collect()
                }
                Err(error) => return Some(Err(error.into())),
            }
        }
        None
    }
}

/// The stored events with seq in (after, until], then the end: how a member of a cohort
/// catches up to the point where the cohort's live events take over.
pub fn replay(
    store: Arc<dyn Store>,
    restaurant: RestaurantId,
    rendered: Option<Arc<Rendered>>,
    after: i64,
    until: i64,
) -> impl Stream<Item = Result<Arc<Event>, ApiError>> + Send + 'static {
    let replay = Replay {
        store,
        restaurant,
        rendered,
        sent: after,
        until,
        backlog: VecDeque::new(),
    };
    stream::unfold(replay, |mut replay| async move {
        let item = replay.next().await?.map(Arc::new);
        let failed = item.is_err();
        // After an error the stream ends: mark it done by jumping to the end.
        if failed {
            replay.sent = replay.until;
        }
        let sent = replay.sent;
        Some((item.map_err(|error| error.with_last_seq(sent)), replay))
    })
}

struct Feed {
    replay: Replay,
    subscription: Subscription,
    done: bool,
    _active: Option<Raised>,
}

/// Every event of the subscription with seq > `after` (or, without `after`, from now on). Its
/// actor drops what it has seen, ends it when the token expires and cuts it when it falls
/// behind; this reports how it ended, with the last seq it yielded. `counted`: whether it shows
/// in the active-subscriptions gauge (a cohort's shared execution does not; its members do).
pub fn events(
    field: &'static str,
    store: Arc<dyn Store>,
    restaurant: RestaurantId,
    rendered: Option<Arc<Rendered>>,
    subscription: Subscription,
    after: Option<i64>,
    counted: bool,
) -> impl Stream<Item = Result<Arc<Event>, ApiError>> + Send + 'static {
    let feed = Feed {
        replay: Replay {
            store,
            restaurant,
            rendered,
            sent: after.unwrap_or(subscription.live_after),
            until: subscription.live_after,
            backlog: VecDeque::new(),
        },
        subscription,
        done: false,
        _active: counted.then(|| Raised::new(metrics::gauge!(SUBSCRIPTIONS, "field" => field))),
    };
    stream::unfold(feed, |mut feed| async move {
        let item = feed.next().await?;
        Some((item, feed))
    })
}

/// A wall-clock expiry as the time left from now.
pub fn expires_in(at: Timestamp) -> Duration {
    let left = at.millis().saturating_sub(Timestamp::now().millis()).max(0);
    Duration::from_millis(left.unsigned_abs())
}

/// The error that ends a subscription for `reason`, before its `lastSeq` is set.
pub fn ending(reason: Option<EndReason>) -> ApiError {
    match reason {
        Some(EndReason::SlowConsumer) => ApiError::new(
            ErrorCode::SlowConsumer,
            "the client did not keep up; resubscribe with after: lastSeq",
        ),
        Some(EndReason::TokenExpired) => ApiError::unauthenticated("the token has expired"),
        Some(EndReason::SourceEnded | EndReason::Interrupted) | None => ApiError::new(
            ErrorCode::Unavailable,
            "the subscription was interrupted; resubscribe with after: lastSeq",
        ),
    }
}

impl Feed {
    fn end(&mut self, error: ApiError) -> Option<Result<Arc<Event>, ApiError>> {
        self.done = true;
        Some(Err(error.with_last_seq(self.replay.sent)))
    }

    async fn next(&mut self) -> Option<Result<Arc<Event>, ApiError>> {
        if self.done {
            return None;
        }
        match self.replay.next().await {
            Some(Ok(event)) => return Some(Ok(Arc::new(event))),
            Some(Err(error)) => return self.end(error),
            // Caught up (or pruned meanwhile): live goes on.
            None => {}
        }
        metrics::histogram!(BUFFER_DEPTH).record(self.subscription.events.len() as f64);
        let received = self.subscription.events.recv().await;
        // A subscription that ended drops what is still buffered: its client resumes instead.
        match (received, self.subscription.ended()) {
            (Some(event), None) => {
                self.replay.sent = event.seq;
                if let Some(rendered) = &self.replay.rendered {
                    rendered.note(&event);
                }
                Some(Ok(event))
            }
            (_, reason) => self.end(ending(reason)),
        }
    }
}
