//! Prometheus metrics, recorded through the `metrics` facade and rendered at `/metrics`.
//! Every name is declared here, with its help text and, for histograms, buckets chosen for
//! what it measures. Label values are bounded: no ids, capped operation names.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

pub const HTTP_REQUESTS: &str = "orderhub_http_requests_total";
pub const HTTP_DURATION: &str = "orderhub_http_request_duration_seconds";
pub const OPERATIONS: &str = "orderhub_graphql_operations_total";
pub const OPERATION_DURATION: &str = "orderhub_graphql_operation_duration_seconds";
pub const RESOLVER_DURATION: &str = "orderhub_graphql_resolver_duration_seconds";
pub const WS_CONNECTIONS: &str = "orderhub_ws_connections";
pub const CONNECTIONS_REFUSED: &str = "orderhub_connections_refused_total";
pub const RATE_LIMITED: &str = "orderhub_rate_limited_total";
pub const SUBSCRIPTIONS: &str = "orderhub_subscriptions_active";
pub const COHORTS: &str = "orderhub_subscription_cohorts";
pub const EVENTS_PUBLISHED: &str = "orderhub_events_published_total";
pub const EVENTS_RECEIVED: &str = "orderhub_events_received_total";
pub const EVENTS_DELIVERED: &str = "orderhub_events_delivered_total";
pub const DELIVERY_LATENCY: &str = "orderhub_event_delivery_seconds";
pub const SLOW_CONSUMER_CUTS: &str = "orderhub_slow_consumer_cuts_total";
pub const BUFFER_DEPTH: &str = "orderhub_subscription_buffer_depth";
pub const BUS_RECONNECTS: &str = "orderhub_bus_reconnects_total";
pub const BUS_RESTARTS: &str = "orderhub_bus_restarts_total";
pub const BUS_CONNECTED: &str = "orderhub_bus_connected";
pub const ACTORS: &str = "orderhub_actors";
pub const ACTOR_FAILURES: &str = "orderhub_actor_failures_total";
pub const ACTOR_RESTARTS: &str = "orderhub_actor_restarts_total";
pub const MAILBOX_DEPTH: &str = "orderhub_mailbox_depth";
pub const MAILBOX_REFUSED: &str = "orderhub_mailbox_refused_total";
pub const STORE_QUERY_DURATION: &str = "orderhub_db_query_duration_seconds";
pub const POOL_CONNECTIONS: &str = "orderhub_db_pool_connections";
pub const REPLICA_LAG: &str = "orderhub_db_replica_lag_seconds";
pub const READS: &str = "orderhub_db_reads_total";

/// The process-wide recorder (one per process, however many nodes a test runs in it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = with_buckets(PrometheusBuilder::new());
        let handle = match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (a host embedding us): render our own registry.
            Err(_) => with_buckets(PrometheusBuilder::new())
                .build_recorder()
                .handle(),
        };
        describe();
        zero();
        let upkeep = handle.clone();
        // Nothing else drains the recorder's histogram buffers (metrics-exporter-prometheus).
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(5));
            upkeep.run_upkeep();
        });
        handle
    })
}

/// Without explicit buckets, histograms render as summaries, which cannot be aggregated
/// across nodes.
fn with_buckets(builder: PrometheusBuilder) -> PrometheusBuilder {
    const FAST: &[f64] = &[
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        1.0,
    ];
    const REQUEST: &[f64] = &[
        0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    const DEPTH: &[f64] = &[
        0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
    ];
    let set = |builder: PrometheusBuilder, name: &str, buckets: &[f64]| {
        // Only fails for an empty bucket list.
        builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
            .unwrap_or_else(|_| PrometheusBuilder::new())
    };
    let builder = set(builder, RESOLVER_DURATION, FAST);
    let builder = set(builder, STORE_QUERY_DURATION, FAST);
    let builder = set(builder, OPERATION_DURATION, REQUEST);
    let builder = set(builder, HTTP_DURATION, REQUEST);
    let builder = set(builder, DELIVERY_LATENCY, REQUEST);
    set(builder, BUFFER_DEPTH, DEPTH)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route and status.");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request duration by method and route."
    );
    describe_counter!(
        OPERATIONS,
        "GraphQL operations by type, operation name and outcome (ok or the error code)."
    );
    describe_histogram!(
        OPERATION_DURATION,
        Unit::Seconds,
        "GraphQL query and mutation duration by type and operation name."
    );
    describe_histogram!(
        RESOLVER_DURATION,
        Unit::Seconds,
        "Duration of fields with a real resolver, by Type.field."
    );
    describe_gauge!(WS_CONNECTIONS, "Open WebSocket connections.");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections refused at a limit, by reason (max_connections, max_websockets)."
    );
    describe_counter!(
        RATE_LIMITED,
        "Operations refused with RATE_LIMITED, by transport (http, ws)."
    );
    describe_gauge!(SUBSCRIPTIONS, "Active GraphQL subscriptions by field.");
    describe_gauge!(
        COHORTS,
        "Groups of restaurantEvents subscriptions that share one execution: each event is resolved and encoded once per cohort."
    );
    describe_gauge!(
        MAILBOX_DEPTH,
        "Messages waiting in (or being handled from) the bounded mailboxes of this node's actors, by kind (restaurant: commands; channel: events from the bus)."
    );
    describe_counter!(
        MAILBOX_REFUSED,
        "Messages refused because a bounded mailbox was full, by kind (restaurant: commands answered UNAVAILABLE at once; channel: bus events read from the store instead)."
    );
    describe_counter!(EVENTS_PUBLISHED, "Events handed to the bus after commit.");
    describe_counter!(
        EVENTS_RECEIVED,
        "Events that reached this node's channels, by source (bus, or store for catch-up)."
    );
    describe_counter!(
        EVENTS_DELIVERED,
        "Event messages written to client sockets."
    );
    describe_histogram!(
        DELIVERY_LATENCY,
        Unit::Seconds,
        "From an event's commit to its message being written to a client socket."
    );
    describe_counter!(
        SLOW_CONSUMER_CUTS,
        "Subscribers cut for not keeping up, by reason (buffer full, socket write stuck)."
    );
    describe_histogram!(
        BUFFER_DEPTH,
        "Events waiting in a subscription's buffer when one is taken."
    );
    describe_counter!(
        BUS_RECONNECTS,
        "Times the Redis pub/sub connection was re-established."
    );
    describe_counter!(
        BUS_RESTARTS,
        "Restarts of the Redis pub/sub connection's actor by its supervisor, by reason (connection: Redis unreachable or the connection lost; failure: the actor panicked)."
    );
    describe_gauge!(
        BUS_CONNECTED,
        "1 while events travel between nodes over the bus, 0 while it is away."
    );
    describe_gauge!(ACTORS, "Actors alive on this node, by kind.");
    describe_counter!(
        ACTOR_FAILURES,
        "Actors that failed (panicked) and were cleaned up by their supervisor, by kind."
    );
    describe_counter!(
        ACTOR_RESTARTS,
        "Failed actors their supervisor restarted at once, by kind (restaurant, channel)."
    );
    describe_histogram!(
        STORE_QUERY_DURATION,
        Unit::Seconds,
        "Store operation duration, by operation."
    );
    describe_gauge!(
        POOL_CONNECTIONS,
        "Database pool connections by pool (writer, replica; SQLite: commands) and state (open, idle)."
    );
    describe_gauge!(
        REPLICA_LAG,
        Unit::Seconds,
        "How far the read replica is behind (0 when it has replayed all it received)."
    );
    describe_counter!(
        READS,
        "Reads by pool: writer, or replica (reads that may be a little stale)."
    );
}

/// Counters exist from the start, at zero: "no slow consumers yet" is a value a dashboard
/// shows, not a missing series.
fn zero() {
    for reason in ["buffer", "socket"] {
        metrics::counter!(SLOW_CONSUMER_CUTS, "reason" => reason).absolute(0);
    }
    for source in ["bus", "store"] {
        metrics::counter!(EVENTS_RECEIVED, "source" => source).absolute(0);
    }
    for pool in ["writer", "replica"] {
        metrics::counter!(READS, "pool" => pool).absolute(0);
    }
    for reason in ["max_connections", "max_websockets", "origin"] {
        metrics::counter!(CONNECTIONS_REFUSED, "reason" => reason).absolute(0);
    }
    for transport in ["http", "ws"] {
        metrics::counter!(RATE_LIMITED, "transport" => transport).absolute(0);
    }
    metrics::counter!(ACTOR_FAILURES, "kind" => "subscription").absolute(0);
    for kind in ["restaurant", "channel"] {
        metrics::counter!(ACTOR_FAILURES, "kind" => kind).absolute(0);
        metrics::counter!(ACTOR_RESTARTS, "kind" => kind).absolute(0);
    }
    metrics::counter!(EVENTS_PUBLISHED).absolute(0);
    metrics::counter!(EVENTS_DELIVERED).absolute(0);
    metrics::counter!(BUS_RECONNECTS).absolute(0);
    for reason in ["connection", "failure"] {
        metrics::counter!(BUS_RESTARTS, "reason" => reason).absolute(0);
    }
    metrics::gauge!(WS_CONNECTIONS).set(0.0);
    for field in ["restaurantEvents", "orderUpdated"] {
        metrics::gauge!(SUBSCRIPTIONS, "field" => field).set(0.0);
    }
}

/// Records a store operation's duration when dropped.
pub struct QueryTimer {
    operation: &'static str,
    started: std::time::Instant,
}

impl QueryTimer {
    pub fn start(operation: &'static str) -> Self {
        Self {
            operation,
            started: std::time::Instant::now(),
        }
    }
}

impl Drop for QueryTimer {
    fn drop(&mut self) {
        metrics::histogram!(STORE_QUERY_DURATION, "operation" => self.operation)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// After a message carrying an event was written to a client's socket.
pub fn event_written(committed_at_ms: i64) {
    // Once per delivery, at 100k a second: look the handles up once, not per call.
    static HANDLES: OnceLock<(metrics::Counter, metrics::Histogram)> = OnceLock::new();
    let (delivered, latency) = HANDLES.get_or_init(|| {
        handle();
        (
            metrics::counter!(EVENTS_DELIVERED),
            metrics::histogram!(DELIVERY_LATENCY),
        )
    });
    delivered.increment(1);
    let now = orderhub_actors::domain::Timestamp::now().millis();
    latency.record(now.saturating_sub(committed_at_ms).max(0) as f64 / 1000.0);
}

/// Keeps a gauge raised while alive.
pub struct Raised {
    gauge: metrics::Gauge,
}

impl Raised {
    pub fn new(gauge: metrics::Gauge) -> Self {
        gauge.increment(1.0);
        Self { gauge }
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}
