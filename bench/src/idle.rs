//! `idle`: C connections, one `restaurantEvents` subscription each, doing nothing: what each
//! costs the server in memory.

use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};

use crate::client::Target;
use crate::reader;
use crate::server_stats;
use crate::setup::{self, Signer};

#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    pub scenario: &'static str,
    pub target: String,
    pub connections: usize,
    pub restaurants: usize,
    pub subscribed: usize,
    pub refused: usize,
    /// Subscriptions that got the one event placed after all were open.
    pub live: usize,
    pub rss_before_mib: f64,
    pub rss_after_mib: f64,
    pub kib_per_subscription: Option<f64>,
    pub connect_seconds: f64,
}

impl IdleReport {
    pub fn summary(&self) -> String {
        format!(
            "idle {}: {} connections subscribed ({} refused, {} live), server RSS {:.1} → {:.1} MiB, {} KiB per subscription",
            self.target, self.subscribed, self.refused, self.live, self.rss_before_mib, self.rss_after_mib,
            self.kib_per_subscription.map_or("?".into(), |k| format!("{k:.1}")),
        )
    }
}

pub async fn run(
    target: &Target,
    signer: &Signer,
    connections: usize,
    restaurants: usize,
    server_pids: &[u32],
    live: bool,
) -> anyhow::Result<IdleReport> {
    let restaurants = Arc::new(setup::restaurants(target, signer, restaurants.max(1)).await?);
    // Let the server settle after the setup before the first reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server_stats::read(server_pids);
    let (stop_tx, stop) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(64));
    let started = Instant::now();
    let mut connecting = Vec::with_capacity(connections);
    for i in 0..connections {
        let r = i % restaurants.len();
        let token = signer.staff(&restaurants[r].id, i)?;
        let (target, gate, restaurants, stop) = (
            target.clone(),
            gate.clone(),
            restaurants.clone(),
            stop.clone(),
        );
        connecting.push(tokio::spawn(async move {
            let socket = {
                let _permit = gate.acquire().await;
                target
                    .subscribe(
                        &token,
                        &restaurants[r].id,
                        (!live).then_some(restaurants[r].seq),
                        None,
                    )
                    .await?
            };
            let after = restaurants[r].seq;
            Ok::<_, anyhow::Error>(tokio::spawn(reader::hold(socket, after, 1, false, stop)))
        }));
    }
    let mut held = Vec::with_capacity(connections);
    let mut refused = 0;
    for connected in connecting {
        match connected.await {
            Ok(Ok(task)) => held.push(task),
            _ => refused += 1,
        }
    }
    let connect_seconds = started.elapsed().as_secs_f64();
    // One event per restaurant shows every subscription is live.
    let run_id = setup::run_id();
    for (r, restaurant) in restaurants.iter().enumerate() {
        setup::place_order(target, restaurant, &format!("{run_id}-idle-{r}")).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server_stats::read(server_pids);
    let _ = stop_tx.send(true);
    let subscribed = held.len();
    let mut live = 0;
    for task in held {
        if let Ok(result) = task.await {
            live += usize::from(result.tracker.received() >= 1);
        }
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    Ok(IdleReport {
        scenario: "idle",
        target: target.base.clone(),
        connections,
        restaurants: restaurants.len(),
        subscribed,
        refused,
        live,
        rss_before_mib: mib(before.rss_kib),
        rss_after_mib: mib(after.rss_kib),
        kib_per_subscription: (!server_pids.is_empty() && subscribed > 0)
            .then(|| after.rss_kib.saturating_sub(before.rss_kib) as f64 / subscribed as f64),
        connect_seconds,
    })
}
