//! `fanout` and `stall`: S kitchen displays on `restaurantEvents` of R restaurants while W
//! writers place N orders at Q a second; every order's note carries its send time. With
//! `stalled` > 0, that many more displays subscribe and then stop reading.

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Socket, Target, PLACE_ORDER};
use crate::frame::{self, Kind};
use crate::histogram::{Histogram, Summary};
use crate::server_stats::{Usage, Watch};
use crate::setup::{self, Restaurant, Signer};
use crate::tracker::{Tracker, Verdict};

#[derive(Debug, Clone, Serialize)]
pub struct FanoutParams {
    pub subscribers: usize,
    pub restaurants: usize,
    pub orders: usize,
    /// Orders a second over all writers; 0: as fast as the writers get answers.
    pub rate: f64,
    pub writers: usize,
    /// Displays that subscribe and then stop reading.
    pub stalled: usize,
    /// SO_RCVBUF of the stalled displays' sockets.
    pub stalled_recv_buffer: u32,
    /// How long stalled displays stay unread, from the start of the orders (at least until
    /// the healthy ones are done).
    #[serde(serialize_with = "seconds")]
    pub stall_hold: Duration,
    /// The server's slow-consumer timeout, to estimate when a 4508 close happened.
    #[serde(serialize_with = "seconds")]
    pub slow_consumer_timeout: Duration,
    /// How long to wait for the last deliveries after the last order was answered.
    #[serde(serialize_with = "seconds")]
    pub drain: Duration,
    /// Where the displays subscribe, round-robin (other nodes of a cluster); empty: the
    /// server that takes the orders.
    pub subscribe_to: Vec<String>,
    /// Displays subscribe without `after` (see `client::LIVE_EVENTS_QUERY`): each counts
    /// from the first event it gets, and warm-up orders go on until every one has had one.
    pub live: bool,
}

/// Durations in reports are seconds.
pub fn seconds<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// Placing orders: how many, how fast, how the server answered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Writes {
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: Summary,
}

/// How a stalled display ended.
#[derive(Debug, Clone, Serialize)]
pub struct Stalled {
    /// `SLOW_CONSUMER` (an error frame), `close 4508` (or another code), `dropped` (the
    /// connection ended without either), or `not cut`.
    pub outcome: String,
    pub last_seq: i64,
    pub received: u64,
    /// When the server stopped delivering to it, after the stall began (estimated from the
    /// send time of the first event it never got; for a 4508 close plus the timeout).
    pub cut_after_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    pub scenario: &'static str,
    pub target: String,
    pub params: FanoutParams,
    pub subscribed: usize,
    pub refused: usize,
    pub complete: usize,
    /// Summed over the healthy displays.
    pub deliveries: Verdict,
    pub expected_deliveries: u64,
    pub delivery_latency: Summary,
    pub deliveries_per_second: f64,
    /// Subscriptions that ended early: error code or close code → count.
    pub subscriber_ends: BTreeMap<String, u64>,
    pub writes: Writes,
    pub server: Option<Usage>,
    pub deliveries_per_server_cpu_second: Option<f64>,
    pub stalled: Vec<Stalled>,
    pub seconds: f64,
}

impl FanoutReport {
    pub fn summary(&self) -> String {
        let l = &self.delivery_latency;
        let mut line = format!(
            "{} {}: {} subscribers, {} deliveries ({:.0}/s), missing {}, duplicates {}, out-of-order {}, latency p50 {:.1} ms p90 {:.1} ms p99 {:.1} ms max {:.1} ms; placeOrder {:.0}/s p99 {:.1} ms, {} errors",
            self.scenario, self.target, self.subscribed, self.deliveries.received,
            self.deliveries_per_second, self.deliveries.missing, self.deliveries.duplicates,
            self.deliveries.out_of_order, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms,
            self.writes.per_second, self.writes.latency.p99_ms,
            self.writes.errors.values().sum::<u64>(),
        );
        if let (Some(server), Some(per_cpu)) = (&self.server, self.deliveries_per_server_cpu_second)
        {
            line += &format!(
                "; server {:.2} CPU s ({per_cpu:.0} deliveries/CPU s), RSS max {:.0} MiB",
                server.cpu_seconds, server.rss_max_mib
            );
        }
        if !self.stalled.is_empty() {
            let cut = self
                .stalled
                .iter()
                .filter(|s| s.outcome != "not cut")
                .count();
            let latest = self
                .stalled
                .iter()
                .filter_map(|s| s.cut_after_s)
                .fold(0.0, f64::max);
            line += &format!(
                "; stalled {} cut {cut} (latest {latest:.1} s)",
                self.stalled.len()
            );
        }
        line
    }
}

/// What the displays of a run share.
struct Shared {
    /// Each restaurant's seq once set up, before the run's first order.
    setup_seq: Vec<i64>,
    /// The last seq of each restaurant, once the writers are done (i64::MAX before).
    final_seq: Vec<AtomicI64>,
    /// The highest seq any display saw per restaurant (an order whose answer was lost may
    /// still have been committed).
    max_seen: Vec<AtomicI64>,
    warm: AtomicUsize,
    /// Displays that have every event up to the final seq.
    complete: AtomicUsize,
    /// Displays that have the final seq (with or without gaps): the run can end.
    caught_up: AtomicUsize,
    /// Nanoseconds since `start` of the latest delivery.
    last_delivery: AtomicU64,
    start: Instant,
    /// Send times (Unix ns) of each restaurant's accepted orders.
    sent: Vec<Mutex<Vec<u64>>>,
}

/// 0 running, 1 final seqs known, 2 stop.
type Stage = watch::Receiver<u8>;
const FINAL_KNOWN: u8 = 1;
const STOP: u8 = 2;

struct Display {
    tracker: Tracker,
    latency: Histogram,
    end: Option<String>,
}

pub async fn run(
    target: &Target,
    signer: &Signer,
    params: FanoutParams,
    server_pids: &[u32],
    scenario: &'static str,
) -> anyhow::Result<FanoutReport> {
    let restaurants =
        Arc::new(setup::restaurants(target, signer, params.restaurants.max(1)).await?);
    let r_count = restaurants.len();
    let shared = Arc::new(Shared {
        setup_seq: restaurants.iter().map(|r| r.seq).collect(),
        final_seq: (0..r_count).map(|_| AtomicI64::new(i64::MAX)).collect(),
        max_seen: (0..r_count).map(|_| AtomicI64::new(0)).collect(),
        warm: AtomicUsize::new(0),
        complete: AtomicUsize::new(0),
        caught_up: AtomicUsize::new(0),
        last_delivery: AtomicU64::new(0),
        start: Instant::now(),
        sent: (0..r_count).map(|_| Mutex::new(Vec::new())).collect(),
    });
    let (stage_tx, stage) = watch::channel(0u8);

    let mut nodes = Vec::new();
    for url in &params.subscribe_to {
        nodes.push(Target::new(url).await?);
    }
    if nodes.is_empty() {
        nodes.push(target.clone());
    }
    // Subscribe everyone, a few at a time (this is not the storm scenario).
    let gate = Arc::new(Semaphore::new(64));
    let mut connecting = Vec::new();
    for i in 0..params.subscribers + params.stalled {
        let restaurant = i % r_count;
        let token = signer.staff(&restaurants[restaurant].id, i)?;
        let target = nodes[i % nodes.len()].clone();
        let (gate, restaurants) = (gate.clone(), restaurants.clone());
        let stalled = i >= params.subscribers;
        let recv_buffer = stalled.then_some(params.stalled_recv_buffer);
        connecting.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            target
                .subscribe(
                    &token,
                    &restaurants[restaurant].id,
                    (!params.live).then_some(restaurants[restaurant].seq),
                    recv_buffer,
                )
                .await
        }));
    }
    let mut healthy = Vec::new();
    let mut stalled = Vec::new();
    let mut refused = 0;
    for (i, connected) in connecting.into_iter().enumerate() {
        match connected.await {
            Ok(Ok(socket)) if i < params.subscribers => {
                let task = display(
                    socket,
                    i % r_count,
                    shared.clone(),
                    stage.clone(),
                    params.live,
                );
                healthy.push(tokio::spawn(task));
            }
            Ok(Ok(socket)) => stalled.push((i % r_count, socket)),
            Ok(Err(error)) => {
                refused += 1;
                if refused <= 3 {
                    eprintln!("orderhub-bench: a display could not subscribe: {error:#}");
                }
            }
            Err(_) => refused += 1,
        }
    }
    let subscribed = healthy.len();

    // Warm-up: one order per restaurant proves every subscription is live (seq 1). Live
    // displays see only events after they joined: more warm-up orders until each had one.
    let run_id = setup::run_id();
    let stall_start = Instant::now();
    let warm_deadline = Instant::now() + Duration::from_secs(30);
    let mut round = 0;
    loop {
        for (r, restaurant) in restaurants.iter().enumerate() {
            let sent = client::unix_nanos();
            let key = format!("{run_id}-warm-{round}-{r}");
            setup::place_order(target, restaurant, &key).await?;
            lock(&shared.sent[r]).push(sent);
        }
        round += 1;
        // Resuming displays all get the first one: wait for them as long as it takes.
        let next_round = if params.live {
            (Instant::now() + Duration::from_millis(500)).min(warm_deadline)
        } else {
            warm_deadline
        };
        while shared.warm.load(Ordering::Relaxed) < subscribed && Instant::now() < next_round {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let warm = shared.warm.load(Ordering::Relaxed) >= subscribed;
        if warm || !params.live || Instant::now() >= warm_deadline {
            break;
        }
    }

    let watch = Watch::start(server_pids);
    let writes_started = Instant::now();
    let start_nanos = shared.start.elapsed().as_nanos() as u64;
    let writes = write(target, &restaurants, &params, &run_id, &shared).await;
    let writes_seconds = writes_started.elapsed().as_secs_f64();

    for (r, final_seq) in shared.final_seq.iter().enumerate() {
        let sent = lock(&shared.sent[r]).len() as i64;
        final_seq.store(shared.setup_seq[r] + sent, Ordering::Relaxed);
    }
    let _ = stage_tx.send(FINAL_KNOWN);
    let drain_deadline = Instant::now() + params.drain;
    while shared.caught_up.load(Ordering::Relaxed) < subscribed && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A moment more, so that late and repeated events after the last one are seen too.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = stage_tx.send(STOP);
    let usage = watch.finish();

    let mut deliveries = Verdict::default();
    let mut latency = Histogram::default();
    let mut subscriber_ends = BTreeMap::new();
    let mut expected = 0;
    for (i, task) in healthy.into_iter().enumerate() {
        let Ok(display) = task.await else { continue };
        let r = i % r_count;
        let final_seq = final_of(&shared, r);
        // The warm-up event is not part of the measurement.
        let mut verdict = display.tracker.verdict(final_seq);
        verdict.received = verdict.received.saturating_sub(1);
        expected += u64::try_from(final_seq - shared.setup_seq[r] - 1).unwrap_or(0);
        deliveries.add(verdict);
        latency.merge(&display.latency);
        if let Some(end) = display.end {
            *subscriber_ends.entry(end).or_insert(0) += 1;
        }
    }

    let mut stalled_reports = Vec::new();
    if !stalled.is_empty() {
        let hold_until = stall_start + params.stall_hold;
        tokio::time::sleep_until(hold_until.max(Instant::now()).into()).await;
        let waking = stalled
            .into_iter()
            .map(|(r, socket)| wake(socket, &params, &shared, r, stall_start));
        stalled_reports = futures_util::future::join_all(waking).await;
    }

    let delivery_span = (shared
        .last_delivery
        .load(Ordering::Relaxed)
        .saturating_sub(start_nanos)) as f64
        / 1e9;
    let per_cpu = usage
        .as_ref()
        .filter(|u| u.cpu_seconds > 0.0)
        .map(|u| deliveries.received as f64 / u.cpu_seconds);
    Ok(FanoutReport {
        scenario,
        target: target.base.clone(),
        params,
        subscribed,
        refused,
        complete: shared.complete.load(Ordering::Relaxed),
        deliveries,
        expected_deliveries: expected,
        delivery_latency: latency.summary(),
        deliveries_per_second: if delivery_span > 0.0 {
            deliveries.received as f64 / delivery_span
        } else {
            0.0
        },
        subscriber_ends,
        writes: Writes {
            seconds: writes_seconds,
            per_second: writes.ok as f64 / writes_seconds.max(1e-9),
            ..writes
        },
        server: usage,
        deliveries_per_server_cpu_second: per_cpu,
        stalled: stalled_reports,
        seconds: shared.start.elapsed().as_secs_f64(),
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn final_of(shared: &Shared, r: usize) -> i64 {
    let known = shared.final_seq[r].load(Ordering::Relaxed);
    let known = if known == i64::MAX { 0 } else { known };
    known.max(shared.max_seen[r].load(Ordering::Relaxed))
}

/// One healthy display: reads until told to stop, checking every event.
async fn display(
    mut socket: Socket,
    r: usize,
    shared: Arc<Shared>,
    mut stage: Stage,
    live: bool,
) -> Display {
    let mut d = Display {
        tracker: Tracker::new(shared.setup_seq[r]),
        latency: Histogram::default(),
        end: None,
    };
    let mut warm = false;
    let mut progress = Progress::default();
    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            changed = stage.changed() => {
                if changed.is_err() || *stage.borrow() == STOP {
                    break;
                }
                progress.check(&d.tracker, &shared, r);
                continue;
            }
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            // WebSocket pings are answered by the WebSocket layer.
            other => match client::end_of(other) {
                Some(end) => {
                    d.end = Some(end);
                    break;
                }
                None => continue,
            },
        };
        match frame::kind(&text) {
            Kind::Next => {
                let Some(seq) = frame::seq(&text) else {
                    d.end = Some("a next frame without seq".into());
                    break;
                };
                let now = client::unix_nanos();
                if live && !warm {
                    // What came before it joined is not its to get.
                    d.tracker = Tracker::new(seq - 1);
                }
                d.tracker.observe(seq);
                shared.max_seen[r].fetch_max(seq, Ordering::Relaxed);
                shared
                    .last_delivery
                    .fetch_max(shared.start.elapsed().as_nanos() as u64, Ordering::Relaxed);
                // The run's first event is the warm-up, not measured.
                if seq > shared.setup_seq[r] + 1 {
                    if let Some(sent) = frame::sent_at_nanos(&text) {
                        d.latency.record(now.saturating_sub(sent));
                    }
                }
                if !warm && d.tracker.last() > shared.setup_seq[r] {
                    warm = true;
                    shared.warm.fetch_add(1, Ordering::Relaxed);
                }
                progress.check(&d.tracker, &shared, r);
            }
            Kind::Ping => {
                let _ = socket.send(Message::text(r#"{"type":"pong"}"#)).await;
            }
            Kind::Error => {
                let (code, _) = client::error_code(&text);
                d.end = Some(code);
                break;
            }
            Kind::Complete => {
                d.end = Some("complete".into());
                break;
            }
            _ => {}
        }
    }
    let _ = socket.close(None).await;
    d
}

/// What a display has told the run so far.
#[derive(Default)]
struct Progress {
    caught_up: bool,
    complete: bool,
}

impl Progress {
    fn check(&mut self, tracker: &Tracker, shared: &Shared, r: usize) {
        let final_seq = shared.final_seq[r].load(Ordering::Relaxed);
        if !self.caught_up && tracker.last() >= final_seq {
            self.caught_up = true;
            shared.caught_up.fetch_add(1, Ordering::Relaxed);
        }
        if !self.complete && tracker.complete(final_seq) {
            self.complete = true;
            shared.complete.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A stalled display starts reading again: what did the server do with it?
async fn wake(
    mut socket: Socket,
    params: &FanoutParams,
    shared: &Shared,
    r: usize,
    stall_start: Instant,
) -> Stalled {
    let mut tracker = Tracker::new(shared.setup_seq[r]);
    let outcome = loop {
        let message = match tokio::time::timeout(Duration::from_secs(2), socket.next()).await {
            Err(_) => break "not cut".to_owned(),
            Ok(message) => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            other => match client::end_of(other) {
                Some(end) if end.starts_with("socket error") => break "dropped".to_owned(),
                Some(end) => break end,
                None => continue,
            },
        };
        match frame::kind(&text) {
            Kind::Next => {
                if let Some(seq) = frame::seq(&text) {
                    tracker.observe(seq);
                }
            }
            Kind::Error => break client::error_code(&text).0,
            _ => {}
        }
    };
    let last_seq = tracker.last();
    let cut_after_s = (outcome != "not cut").then(|| {
        let sent = lock(&shared.sent[r]);
        let mut times = sent.clone();
        times.sort_unstable();
        // Send time of the first event it never got, relative to the stall's start.
        let first_missed = usize::try_from(last_seq)
            .ok()
            .and_then(|i| times.get(i).copied());
        let stall_start_nanos = client::unix_nanos() - stall_start.elapsed().as_nanos() as u64;
        let missed_at =
            first_missed.map_or(0.0, |t| t.saturating_sub(stall_start_nanos) as f64 / 1e9);
        if outcome == "close 4508" {
            missed_at + params.slow_consumer_timeout.as_secs_f64()
        } else {
            missed_at
        }
    });
    let _ = socket.close(None).await;
    Stalled {
        outcome,
        last_seq,
        received: tracker.received(),
        cut_after_s,
    }
}

/// W writers place the orders at the configured rate; each order goes to restaurant i % R.
async fn write(
    target: &Target,
    restaurants: &Arc<Vec<Restaurant>>,
    params: &FanoutParams,
    run_id: &str,
    shared: &Arc<Shared>,
) -> Writes {
    let writers = params.writers.max(1);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (target, restaurants, shared) = (target.clone(), restaurants.clone(), shared.clone());
        let (orders, rate, run_id) = (params.orders, params.rate, run_id.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut pace = (rate > 0.0).then(|| {
                let offset = Duration::from_secs_f64(w as f64 / rate);
                let period = Duration::from_secs_f64(writers as f64 / rate);
                tokio::time::interval_at(start + offset, period)
            });
            let mut latency = Histogram::default();
            let mut writes = Writes::default();
            for i in (w..orders).step_by(writers) {
                if let Some(pace) = &mut pace {
                    pace.tick().await;
                }
                let r = i % restaurants.len();
                let sent = client::unix_nanos();
                let variables =
                    setup::order_variables(&restaurants[r], &format!("{run_id}-{i}"), sent);
                let began = Instant::now();
                let result = target
                    .gql(&restaurants[r].customer, PLACE_ORDER, variables)
                    .await;
                latency.record(began.elapsed().as_nanos() as u64);
                match result {
                    Ok(_) => {
                        writes.ok += 1;
                        lock(&shared.sent[r]).push(sent);
                    }
                    Err(error) => {
                        let code = error.to_string();
                        let code = code.split(':').next().unwrap_or("?").to_owned();
                        *writes.errors.entry(code).or_insert(0) += 1;
                    }
                }
            }
            (writes, latency)
        }));
    }
    let mut total = Writes::default();
    let mut latency = Histogram::default();
    for task in tasks {
        if let Ok((writes, h)) = task.await {
            total.ok += writes.ok;
            for (code, n) in writes.errors {
                *total.errors.entry(code).or_insert(0) += n;
            }
            latency.merge(&h);
        }
    }
    total.latency = latency.summary();
    total
}
