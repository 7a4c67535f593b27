//! The SubscriptionActor against in-memory ports, in paused time: what each subscription owns
//! alone (its bounded mailbox, its seq position, its token expiry and its slow-consumer cut),
//! for a subscription read from a buffer and for a cohort member fed frames.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, next_seq, Channels};
use orderhub_actors::channel::{
    ChannelConfig, Delivery, EndReason, Filter, Frame, Joining, Outlet, Refused, Source, Subscriber,
};

const AT_ONCE: Duration = Duration::from_millis(1);

type Fixture = Channels;

async fn fixture(buffer: usize) -> Fixture {
    let config = ChannelConfig {
        buffer,
        catch_up_every: Duration::from_secs(3600),
        ..ChannelConfig::default()
    };
    Channels::new(config).await
}

/// A cohort member whose outlet takes `room` frames and records what happens.
async fn join_member(
    f: &Fixture,
    room: usize,
    position: i64,
    catching_up: bool,
) -> (Subscriber, Record) {
    let record = Record::default();
    let outlet = Recording {
        record: record.clone(),
        room,
    };
    let mut outlet = Some(outlet);
    let subscriber = f
        .channels
        .start_subscriber(f.seeded.id(), || Joining {
            source: Source::Cohort(Box::new(outlet.take().expect("joined once"))),
            expires_in: None,
            position: Some(position),
            catching_up,
            shared: false,
        })
        .await
        .expect("start a member");
    (subscriber, record)
}

/// What a member's outlet saw: the seqs it took, and how it ended.
#[derive(Clone, Default)]
struct Record(Arc<Mutex<Seen>>);

#[derive(Default)]
struct Seen {
    taken: Vec<i64>,
    ended: Option<(EndReason, i64)>,
}

impl Record {
    fn taken(&self) -> Vec<i64> {
        self.0.lock().expect("record").taken.clone()
    }

    fn ended(&self) -> Option<(EndReason, i64)> {
        self.0.lock().expect("record").ended
    }
}

struct Recording {
    record: Record,
    room: usize,
}

impl Outlet<Arc<Frame>> for Recording {
    fn offer(&mut self, frame: Arc<Frame>) -> Result<(), Refused> {
        let mut seen = self.record.0.lock().expect("record");
        if seen.taken.len() >= self.room {
            return Err(Refused::Full);
        }
        seen.taken.push(frame.seq);
        Ok(())
    }

    fn end(&mut self, reason: EndReason, last_seq: i64) {
        let mut seen = self.record.0.lock().expect("record");
        assert!(seen.ended.is_none(), "ended twice");
        seen.ended = Some((reason, last_seq));
    }
}

fn frame(seq: i64) -> Delivery {
    Delivery::Frame(Arc::new(Frame {
        seq,
        committed_at_ms: 0,
        payload: format!("{{\"seq\":{seq}}}").into_boxed_str(),
    }))
}

#[tokio::test(start_paused = true)]
async fn a_token_expiry_ends_that_subscription_alone() {
    let f = fixture(16).await;
    let id = f.seeded.id();
    let mut expiring = f
        .channels
        .join(id, Filter::All, Some(Duration::from_secs(30)))
        .await
        .expect("join");
    let mut staying = f.channels.join(id, Filter::All, None).await.expect("join");
    f.emit().await;
    assert_eq!(next_seq(&mut expiring, AT_ONCE).await, 1);
    assert_eq!(next_seq(&mut staying, AT_ONCE).await, 1);

    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(expiring.ended(), None, "not before its time");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        tokio::time::timeout(AT_ONCE, expiring.events.recv()).await,
        Ok(None),
        "the buffer is closed at the expiry"
    );
    assert_eq!(expiring.ended(), Some(EndReason::TokenExpired));

    f.emit().await;
    assert_eq!(next_seq(&mut staying, AT_ONCE).await, 2);
    assert_eq!(f.channels.subscribers_alive(), 1);
    assert_eq!(f.channels.slow_consumer_cuts(), 0, "an expiry is not a cut");
}

#[tokio::test(start_paused = true)]
async fn a_member_holds_frames_while_it_catches_up_then_skips_what_it_replayed() {
    let f = fixture(16).await;
    let (member, record) = join_member(&f, usize::MAX, 0, true).await;
    let feeder = member.feeder();
    for seq in 3..=5 {
        assert!(feeder.send(frame(seq)));
    }
    tokio::time::sleep(AT_ONCE).await;
    assert_eq!(record.taken(), Vec::<i64>::new(), "held while catching up");

    // Its own replay went up to 4: only 5 is new.
    member.caught_up(4);
    eventually("the held frame goes out", || record.taken() == [5]).await;
    feeder.send(frame(5));
    feeder.send(frame(6));
    eventually("a frame seen is dropped, the next goes out", || {
        record.taken() == [5, 6]
    })
    .await;
    assert_eq!(record.ended(), None);
}

#[tokio::test(start_paused = true)]
async fn a_full_mailbox_cuts_that_member_with_its_last_seq() {
    let f = fixture(2).await;
    let (member, record) = join_member(&f, usize::MAX, 0, false).await;
    let (other, other_record) = join_member(&f, usize::MAX, 0, false).await;
    let (feeder, other_feeder) = (member.feeder(), other.feeder());
    // Sent without yielding: the actor has taken nothing out yet.
    for seq in 1..=5 {
        feeder.send(frame(seq));
    }
    other_feeder.send(frame(1));
    eventually("the member is cut", || record.ended().is_some()).await;
    assert_eq!(record.taken(), [1, 2], "what its mailbox held went out");
    assert_eq!(record.ended(), Some((EndReason::SlowConsumer, 2)));
    eventually("the other member got its frame", || {
        other_record.taken() == [1]
    })
    .await;
    assert_eq!(other_record.ended(), None, "nobody else notices");
    assert_eq!(f.channels.slow_consumer_cuts(), 1);
    eventually("the cut member's actor is gone", || {
        f.channels.subscribers_alive() == 1
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_full_outlet_cuts_the_member_and_held_frames_count_against_its_buffer() {
    let f = fixture(2).await;
    let (member, record) = join_member(&f, 1, 0, false).await;
    member.feeder().send(frame(1));
    member.feeder().send(frame(2));
    eventually("cut at the full outlet", || record.ended().is_some()).await;
    assert_eq!(record.ended(), Some((EndReason::SlowConsumer, 1)));

    // Catching up from 7, it may hold its buffer's worth and no more.
    let (catching_up, record) = join_member(&f, usize::MAX, 7, true).await;
    let feeder = catching_up.feeder();
    for seq in 10..=11 {
        feeder.send(frame(seq));
        tokio::time::sleep(AT_ONCE).await;
    }
    assert_eq!(record.ended(), None);
    feeder.send(frame(12));
    eventually("cut while catching up", || record.ended().is_some()).await;
    assert_eq!(
        record.ended(),
        Some((EndReason::SlowConsumer, 7)),
        "it has what it resumed after, no more"
    );
}

#[tokio::test(start_paused = true)]
async fn a_member_ends_once_when_its_source_ends_or_when_it_is_dropped() {
    let f = fixture(16).await;
    let (member, record) = join_member(&f, usize::MAX, 3, false).await;
    member.feeder().send(frame(4));
    member.feeder().source_ended();
    eventually("ended", || record.ended().is_some()).await;
    assert_eq!(record.taken(), [4]);
    assert_eq!(record.ended(), Some((EndReason::SourceEnded, 4)));

    // Stopped without an end of its own (its channel failed, or its holder let go): the
    // outlet hears it was interrupted, with where it was.
    let (dropped, record) = join_member(&f, usize::MAX, 9, false).await;
    drop(dropped);
    eventually("told on stopping", || record.ended().is_some()).await;
    assert_eq!(record.ended(), Some((EndReason::Interrupted, 9)));
    eventually("no actor left", || f.channels.subscribers_alive() == 0).await;
}

#[tokio::test(start_paused = true)]
async fn a_cohort_feed_is_counted_apart_from_subscribers() {
    let f = fixture(16).await;
    let shared = f.channels.join_shared(f.seeded.id()).await.expect("join");
    let (member, _) = join_member(&f, usize::MAX, 0, false).await;
    assert_eq!(f.channels.shared_alive(), 1);
    assert_eq!(
        f.channels.subscribers_alive(),
        1,
        "the member, not the feed"
    );
    drop((shared, member));
    eventually("both gone", || {
        f.channels.shared_alive() == 0 && f.channels.subscribers_alive() == 0
    })
    .await;
}

/// A member takes frames only: an event sent to it is the server's fault, which ends it
/// `Interrupted` at its position (its client resumes) instead of being skipped silently.
#[tokio::test(start_paused = true)]
async fn a_delivery_of_the_wrong_kind_interrupts_the_subscription() {
    let f = fixture(16).await;
    let mut events = f
        .channels
        .join(f.seeded.id(), Filter::All, None)
        .await
        .expect("join");
    f.emit().await;
    let event = tokio::time::timeout(AT_ONCE, events.events.recv())
        .await
        .expect("an event in time")
        .expect("an event");
    let (member, record) = join_member(&f, usize::MAX, 0, false).await;
    assert_eq!(event.seq, 1);
    assert!(member.feeder().send(Delivery::Event(event)));
    eventually("the member ends", || record.ended().is_some()).await;
    assert_eq!(record.taken(), Vec::<i64>::new());
    assert_eq!(record.ended(), Some((EndReason::Interrupted, 0)));
    assert_eq!(f.channels.slow_consumer_cuts(), 0);
}
