//! A subscriber that reads until it has a given number of events and then stays connected
//! (answering pings) until told to stop — or, with `leave_when_done`, leaves as soon as it
//! has them: what `idle` and `storm` connections do.

use futures_util::{SinkExt, StreamExt};
use std::time::Instant;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Socket};
use crate::frame::{self, Kind};
use crate::tracker::Tracker;

pub struct Held {
    pub tracker: Tracker,
    pub first_event: Option<Instant>,
    /// When the `want`-th event arrived.
    pub all_events: Option<Instant>,
    /// Why it ended before being told to stop: an error code or close code.
    pub end: Option<String>,
}

/// `after`: the seq the subscription started after.
pub async fn hold(
    mut socket: Socket,
    after: i64,
    want: u64,
    leave_when_done: bool,
    mut stop: watch::Receiver<bool>,
) -> Held {
    let mut held = Held {
        tracker: Tracker::new(after),
        first_event: None,
        all_events: None,
        end: None,
    };
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        match message {
            Some(Ok(Message::Text(text))) => match frame::kind(&text) {
                Kind::Next => {
                    if let Some(seq) = frame::seq(&text) {
                        held.tracker.observe(seq);
                    }
                    let now = Instant::now();
                    held.first_event.get_or_insert(now);
                    if held.all_events.is_none() && held.tracker.received() >= want {
                        held.all_events = Some(now);
                        if leave_when_done {
                            break;
                        }
                    }
                }
                Kind::Ping => {
                    let _ = socket.send(Message::text(r#"{"type":"pong"}"#)).await;
                }
                Kind::Error => {
                    held.end = Some(client::error_code(&text).0);
                    break;
                }
                _ => {}
            },
            other => {
                if let Some(end) = client::end_of(other) {
                    held.end = Some(end);
                    break;
                }
            }
        }
    }
    let _ = socket.close(None).await;
    held
}
