//! Prometheus metrics, recorded through the `metrics` facade and rendered at `/metrics`.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// The process-wide recorder (one per process, however many nodes a test runs in it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle());
        let upkeep = handle.clone();
        // Nothing else drains the recorder's buffers (metrics-exporter-prometheus docs).
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(5));
            upkeep.run_upkeep();
        });
        handle
    })
}

pub fn describe() {
    metrics::describe_gauge!(
        "orderhub_db_replica_lag_seconds",
        metrics::Unit::Seconds,
        "How far the read replica is behind the writer (0 when it has replayed all it received)."
    );
    metrics::describe_counter!(
        "orderhub_db_reads_total",
        "Reads by pool: writer, or replica (reads that may be a little stale)."
    );
}
