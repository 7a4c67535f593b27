//! `storm`: C kitchen displays whose Wi-Fi came back at the same moment — each connects,
//! initialises and resumes (`after: 0`) at once, and must get its restaurant's history.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::client::Target;
use crate::histogram::{Histogram, Summary};
use crate::reader;
use crate::server_stats::{Usage, Watch};
use crate::setup::{self, Signer};
use crate::tracker::Verdict;

#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    pub scenario: &'static str,
    pub target: String,
    pub clients: usize,
    pub restaurants: usize,
    /// Events each restaurant had before the storm: what every client replays.
    pub history: usize,
    pub refused: usize,
    /// Refusals and early ends by reason.
    pub failures: BTreeMap<String, u64>,
    /// Clients that got their whole history.
    pub resumed: usize,
    pub deliveries: Verdict,
    /// From the storm's start to each client's first replayed event.
    pub first_event: Summary,
    /// From the storm's start until every client had its first event (all resumed).
    pub all_subscribed_seconds: Option<f64>,
    pub all_resumed_seconds: Option<f64>,
    pub server: Option<Usage>,
}

impl StormReport {
    pub fn summary(&self) -> String {
        format!(
            "storm {}: {} clients, {} refused, {} resumed; first event p50 {:.0} ms p99 {:.0} ms max {:.0} ms; all subscribed in {}; missing {}, duplicates {}",
            self.target, self.clients, self.refused, self.resumed, self.first_event.p50_ms,
            self.first_event.p99_ms, self.first_event.max_ms,
            self.all_subscribed_seconds.map_or("never".into(), |s| format!("{s:.2} s")),
            self.deliveries.missing, self.deliveries.duplicates,
        )
    }
}

pub async fn run(
    target: &Target,
    signer: &Signer,
    clients: usize,
    restaurants: usize,
    history: usize,
    timeout: Duration,
    server_pids: &[u32],
) -> anyhow::Result<StormReport> {
    let restaurants = Arc::new(setup::restaurants(target, signer, restaurants.max(1)).await?);
    let run_id = setup::run_id();
    for (r, restaurant) in restaurants.iter().enumerate() {
        for i in 0..history.max(1) {
            setup::place_order(target, restaurant, &format!("{run_id}-{r}-{i}")).await?;
        }
    }
    let history = history.max(1);
    let tokens: Vec<String> = (0..clients)
        .map(|i| signer.staff(&restaurants[i % restaurants.len()].id, i))
        .collect::<Result<_, _>>()?;
    let (go_tx, go) = watch::channel(false);
    let (stop_tx, stop) = watch::channel(false);
    let mut tasks = Vec::with_capacity(clients);
    for (i, token) in tokens.into_iter().enumerate() {
        let (target, restaurants, mut go, stop) = (
            target.clone(),
            restaurants.clone(),
            go.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _ = go.wait_for(|go| *go).await;
            let restaurant = &restaurants[i % restaurants.len()];
            let socket = target
                .subscribe(&token, &restaurant.id, Some(restaurant.seq), None)
                .await?;
            let held = reader::hold(socket, restaurant.seq, history as u64, true, stop).await;
            Ok::<_, anyhow::Error>((restaurant.seq, held))
        }));
    }
    let watch = Watch::start(server_pids);
    let start = Instant::now();
    let _ = go_tx.send(true);
    // Ends when every client has its history or the timeout passes.
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        let _ = stop_tx.send(true);
    });
    let mut first = Histogram::default();
    let mut failures = BTreeMap::new();
    let (mut refused, mut resumed) = (0, 0);
    let mut deliveries = Verdict::default();
    let (mut last_first, mut last_all) = (Some(Duration::ZERO), Some(Duration::ZERO));
    for task in tasks {
        match task.await {
            Ok(Ok((setup_seq, held))) => {
                deliveries.add(held.tracker.verdict(setup_seq + history as i64));
                match held.first_event {
                    Some(at) => {
                        first.record((at - start).as_nanos() as u64);
                        last_first = last_first.map(|l| l.max(at - start));
                    }
                    None => last_first = None,
                }
                match held.all_events {
                    Some(at) => {
                        resumed += 1;
                        last_all = last_all.map(|l| l.max(at - start));
                    }
                    None => last_all = None,
                }
                if let Some(end) = held.end {
                    *failures.entry(end).or_insert(0) += 1;
                }
            }
            Ok(Err(error)) => {
                refused += 1;
                last_first = None;
                last_all = None;
                let reason = error.to_string();
                let reason: String = reason.chars().take(80).collect();
                *failures.entry(reason).or_insert(0) += 1;
            }
            Err(_) => refused += 1,
        }
    }
    stopper.abort();
    let _ = stop;
    Ok(StormReport {
        scenario: "storm",
        target: target.base.clone(),
        clients,
        restaurants: restaurants.len(),
        history,
        refused,
        failures,
        resumed,
        deliveries,
        first_event: first.summary(),
        all_subscribed_seconds: last_first.map(|d| d.as_secs_f64()),
        all_resumed_seconds: last_all.map(|d| d.as_secs_f64()),
        server: watch.finish(),
    })
}
