//! The event stream behind a subscription: replay from the store up to where the live
//! subscription took over, then live events, with no gap and no duplicate at the seam.

use async_graphql::futures_util::stream::{self, Stream};
use orderhub_actors::channel::{EndReason, Subscription};
use orderhub_actors::domain::{Event, RestaurantId, Timestamp};
use orderhub_actors::ports::Store;
use std::collections::VecDeque;
use std::sync::Arc;

use super::ApiError;
use crate::metrics::{Raised, BUFFER_DEPTH, SLOW_CONSUMER_CUTS, SUBSCRIPTIONS};

/// Events read from the store per round trip when replaying.
const REPLAY_PAGE: usize = 200;

struct Feed {
    store: Arc<dyn Store>,
    restaurant: RestaurantId,
    subscription: Subscription,
    /// The last seq handed to the client.
    sent: i64,
    backlog: VecDeque<Event>,
    expires: Option<tokio::time::Instant>,
    done: bool,
    _active: Raised,
}

/// Every event of the subscription with seq > `after` (or, without `after`, from now on).
pub fn events(
    field: &'static str,
    store: Arc<dyn Store>,
    restaurant: RestaurantId,
    subscription: Subscription,
    after: Option<i64>,
    expires_at: Option<Timestamp>,
) -> impl Stream<Item = Result<Arc<Event>, ApiError>> + Send + 'static {
    let feed = Feed {
        store,
        restaurant,
        sent: after.unwrap_or(subscription.live_after),
        subscription,
        backlog: VecDeque::new(),
        expires: expires_at.map(deadline),
        done: false,
        _active: Raised::new(metrics::gauge!(SUBSCRIPTIONS, "field" => field)),
    };
    stream::unfold(feed, |mut feed| async move {
        let item = feed.next().await?;
        Some((item, feed))
    })
}

/// A wall-clock expiry as a Tokio deadline.
fn deadline(at: Timestamp) -> tokio::time::Instant {
    let left = at.millis().saturating_sub(Timestamp::now().millis()).max(0);
    tokio::time::Instant::now() + std::time::Duration::from_millis(left.unsigned_abs())
}

impl Feed {
    fn end(&mut self, error: ApiError) -> Option<Result<Arc<Event>, ApiError>> {
        self.done = true;
        Some(Err(error.with_last_seq(self.sent)))
    }

    async fn next(&mut self) -> Option<Result<Arc<Event>, ApiError>> {
        if self.done {
            return None;
        }
        let replay_until = self.subscription.live_after;
        while self.sent < replay_until {
            if let Some(event) = self.backlog.pop_front() {
                self.sent = event.seq;
                crate::metrics::delivering(event.at.millis());
                return Some(Ok(Arc::new(event)));
            }
            match self
                .store
                .events(&self.restaurant, self.sent, REPLAY_PAGE)
                .await
            {
                Ok(page) if page.is_empty() => break, // pruned meanwhile; live goes on
                Ok(page) => {
                    self.backlog = page.into_iter().filter(|e| e.seq <= replay_until).collect()
                }
                Err(error) => return self.end(error.into()),
            }
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
                    "SLOW_CONSUMER",
                    "the client did not keep up; resubscribe with after: lastSeq",
                ));
            }
            let Some(event) = received else {
                return self.end(ApiError::new(
                    "UNAVAILABLE",
                    "the subscription was interrupted; resubscribe with after: lastSeq",
                ));
            };
            if event.seq > self.sent {
                self.sent = event.seq;
                crate::metrics::delivering(event.at.millis());
                return Some(Ok(event));
            }
        }
    }
}
