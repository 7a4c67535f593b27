//! The event stream behind a subscription: replay from the store up to where the live
//! subscription took over, then live events, with no gap and no duplicate at the seam.

use async_graphql::futures_util::stream::{self, Stream};
use orderhub_actors::channel::{EndReason, Subscription};
use orderhub_actors::domain::{Event, RestaurantId, Timestamp};
use orderhub_actors::ports::Store;
use orderhub_actors::ErrorCode;
use std::collections::VecDeque;
use std::sync::Arc;

use super::ApiError;
use crate::metrics::{Raised, BUFFER_DEPTH, SLOW_CONSUMER_CUTS, SUBSCRIPTIONS};

/// Events read from the store per round trip when replaying.
const REPLAY_PAGE: usize = 200;

/// Stored events of one restaurant with seq in (sent, until], page by page.
struct Replay {
    store: Arc<dyn Store>,
    restaurant: RestaurantId,
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
                crate::metrics::delivering(event.seq, event.at.millis());
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
    after: i64,
    until: i64,
) -> impl Stream<Item = Result<Arc<Event>, ApiError>> + Send + 'static {
    let replay = Replay {
        store,
        restaurant,
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
    expires: Option<tokio::time::Instant>,
    done: bool,
    _active: Option<Raised>,
}

/// Every event of the subscription with seq > `after` (or, without `after`, from now on).
/// `counted`: whether it shows in the active-subscriptions gauge (a cohort's shared
/// execution does not; its members do).
pub fn events(
    field: &'static str,
    store: Arc<dyn Store>,
    restaurant: RestaurantId,
    subscription: Subscription,
    after: Option<i64>,
    expires_at: Option<Timestamp>,
    counted: bool,
) -> impl Stream<Item = Result<Arc<Event>, ApiError>> + Send + 'static {
    let feed = Feed {
        replay: Replay {
            store,
            restaurant,
            sent: after.unwrap_or(subscription.live_after),
            until: subscription.live_after,
            backlog: VecDeque::new(),
        },
        subscription,
        expires: expires_at.map(deadline),
        done: false,
        _active: counted.then(|| Raised::new(metrics::gauge!(SUBSCRIPTIONS, "field" => field))),
    };
    stream::unfold(feed, |mut feed| async move {
        let item = feed.next().await?;
        Some((item, feed))
    })
}

/// A wall-clock expiry as a Tokio deadline.
pub fn deadline(at: Timestamp) -> tokio::time::Instant {
    let left = at.millis().saturating_sub(Timestamp::now().millis()).max(0);
    tokio::time::Instant::now() + std::time::Duration::from_millis(left.unsigned_abs())
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
        loop {
            metrics::histogram!(BUFFER_DEPTH).record(self.subscription.events.len() as f64);
            let received = match self.expires {
                Some(expires) => tokio::select! {
                    received = self.subscription.events.recv() => received,
                    () = tokio::time::sleep_until(expires) => {
                        return self.end(ApiError::unauthenticated("the token has expired"));
                    }
                },
                None => self.subscription.events.recv().await,
            };
            // A cut subscription drops what is still buffered: its client resumes instead.
            if self.subscription.ended() == Some(EndReason::SlowConsumer) {
                metrics::counter!(SLOW_CONSUMER_CUTS, "reason" => "buffer").increment(1);
                return self.end(ApiError::new(
                    ErrorCode::SlowConsumer,
                    "the client did not keep up; resubscribe with after: lastSeq",
                ));
            }
            let Some(event) = received else {
                return self.end(ApiError::new(
                    ErrorCode::Unavailable,
                    "the subscription was interrupted; resubscribe with after: lastSeq",
                ));
            };
            if event.seq > self.replay.sent {
                self.replay.sent = event.seq;
                crate::metrics::delivering(event.seq, event.at.millis());
                return Some(Ok(event));
            }
        }
    }
}
