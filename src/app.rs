//! Wiring: from configuration to a running server.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use orderhub_actors::channel::{ChannelConfig, ChannelRegistry};
use orderhub_actors::domain::Timestamp;
use orderhub_actors::ports::{Bus, Store, SystemClock};
use orderhub_actors::restaurant::{Deps, RegistryConfig, RestaurantRegistry};
use orderhub_actors::shutdown::{Shutdown, ShutdownSignal};
use orderhub_actors::StoreError;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::auth::{ClaimRules, Tokens, WeakSecret};
use crate::bus::{LocalBus, RedisBus};
use crate::config::WsConfig;
use crate::config::{LogFormat, ServeArgs, StoreArgs};
use crate::graphql::{self, Services, TableLinks};
use crate::http::cors::{CrossOrigin, Origin};
use crate::http::server::ServerLimits;
use crate::http::{self, HttpState};
use crate::rate_limit::RateLimiter;
use crate::store::routing::ReadRouting;
use crate::store::{self, ConnectError};
use crate::ws::{Cohorts, OpenConnections, WsServices};

/// Why the server could not start; one line each, for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] ConnectError),
    #[error(transparent)]
    Secret(#[from] WeakSecret),
    #[error("cannot read or store the token secret: {0}")]
    SecretStore(StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("REDIS_URL is not a valid Redis URL: {0}")]
    Redis(redis::RedisError),
    #[error("cannot create the demo restaurant: {0}")]
    Demo(String),
    #[error("cannot start the WebSocket runtime: {0}")]
    Runtime(std::io::Error),
}

/// The runtime WebSocket connections run on (see `WsServices::delivery`).
struct DeliveryRuntime {
    handle: tokio::runtime::Handle,
    /// Taken when dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl DeliveryRuntime {
    fn start() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("orderhub-ws")
            .enable_all()
            .build()?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }
}

impl Drop for DeliveryRuntime {
    // Dropping a runtime from async code panics; this may run there.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Where the token secret came from, so the operator is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    Configured,
    Stored,
    Generated,
}

const SECRET_SETTING: &str = "jwt_secret";

/// The configured secret, else the one kept in the database, else a new random one that is
/// stored there for every later start and every other node.
pub async fn token_secret(
    args: &StoreArgs,
    store: &dyn Store,
) -> Result<(Tokens, SecretSource), StartError> {
    if let Some(secret) = &args.jwt_secret {
        return Ok((Tokens::new(secret.as_bytes())?, SecretSource::Configured));
    }
    if let Some(secret) = store
        .setting(SECRET_SETTING)
        .await
        .map_err(StartError::SecretStore)?
    {
        return Ok((Tokens::new(secret.as_bytes())?, SecretSource::Stored));
    }
    let mut random = [0u8; 48];
    getrandom::fill(&mut random)
        .map_err(|e| StartError::SecretStore(StoreError::Internal(e.to_string())))?;
    let candidate = URL_SAFE_NO_PAD.encode(random);
    // Another node may have stored one first; whichever was stored is used by all.
    let secret = store
        .init_setting(SECRET_SETTING, &candidate)
        .await
        .map_err(StartError::SecretStore)?;
    let source = if secret == candidate {
        SecretSource::Generated
    } else {
        SecretSource::Stored
    };
    Ok((Tokens::new(secret.as_bytes())?, source))
}

/// Everything a node runs, ready to serve.
pub struct App {
    pub store: Arc<dyn Store>,
    pub registry: RestaurantRegistry,
    pub tokens: Tokens,
    pub secret_source: SecretSource,
    pub channels: ChannelRegistry,
    pub router: axum::Router,
    limits: ServerLimits,
    shutdown_timeout: Duration,
    /// Bound at build, so that `/metrics` answers as soon as the node is built.
    metrics_listener: Option<TcpListener>,
    delivery: DeliveryRuntime,
    /// The node's one shutdown signal: the accept loop, every connection and every background
    /// task obey it.
    signal: ShutdownSignal,
    /// WebSocket connections, told one by one when the server stops.
    connections: OpenConnections,
}

/// Every option, handed to the component that uses it. Built in one place, by a destructuring
/// with no `..`: an option that no component reads does not compile (an unused binding fails
/// clippy), and `every_documented_option_reaches_a_component` checks each one arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub listen: SocketAddr,
    pub store: StoreArgs,
    /// What every token's `iss` and `aud` must say.
    pub claims: ClaimRules,
    pub metrics_listen: Option<SocketAddr>,
    pub redis_url: Option<String>,
    pub log_format: LogFormat,
    /// Create the demo restaurant when the database is empty.
    pub demo: bool,
    pub event_retention: Duration,
    pub shutdown_timeout: Duration,
    pub restaurants: RegistryConfig,
    pub channels: ChannelConfig,
    pub ws: WsConfig,
    pub server: ServerLimits,
    pub schema: graphql::SchemaOptions,
    pub max_body_bytes: usize,
    pub max_websockets: usize,
    pub query_timeout: Duration,
    /// Operations per second per client, sustained, and the burst above it; rate 0 is no limit.
    pub rate_limit: (u32, u32),
    /// Other origins whose pages may call the API and open WebSockets.
    pub cors_origins: Vec<Origin>,
    /// How long the customer tokens of `Restaurant.tableLinks` are valid.
    pub table_token_ttl: Duration,
}

impl Settings {
    pub fn new(args: &ServeArgs) -> Settings {
        let ServeArgs {
            listen,
            store,
            jwt_issuer,
            jwt_audience,
            metrics_listen,
            redis_url,
            catch_up_interval,
            event_retention,
            log_format,
            no_demo,
            actor_idle,
            command_timeout,
            command_queue,
            subscription_buffer,
            ws_init_timeout,
            ws_keepalive,
            slow_consumer_timeout,
            socket_send_buffer,
            max_body_bytes,
            shutdown_timeout,
            max_connections,
            max_websockets,
            ws_max_subscriptions,
            ws_max_per_subject,
            header_timeout,
            body_timeout,
            body_min_rate,
            rate_limit,
            rate_limit_burst,
            query_timeout,
            table_token_ttl,
            disable_introspection,
            cors_origins,
        } = args.clone();
        Settings {
            listen,
            store,
            claims: ClaimRules {
                issuer: jwt_issuer,
                audience: jwt_audience,
            },
            metrics_listen,
            redis_url,
            log_format,
            demo: !no_demo,
            event_retention,
            shutdown_timeout,
            restaurants: RegistryConfig {
                idle_after: actor_idle,
                call_timeout: command_timeout,
                command_queue,
            },
            channels: ChannelConfig {
                buffer: subscription_buffer,
                catch_up_every: catch_up_interval,
                ..ChannelConfig::default()
            },
            ws: WsConfig {
                init_timeout: ws_init_timeout,
                keepalive: ws_keepalive,
                write_timeout: slow_consumer_timeout,
                max_subscriptions: ws_max_subscriptions,
                outbox: subscription_buffer.max(64),
                max_per_subject: ws_max_per_subject,
            },
            server: ServerLimits {
                max_connections,
                header_timeout,
                body: crate::http::server::BodyDeadline {
                    timeout: body_timeout,
                    min_rate: body_min_rate,
                },
                socket_send_buffer,
            },
            schema: graphql::SchemaOptions {
                disable_introspection,
            },
            max_body_bytes,
            max_websockets,
            query_timeout,
            rate_limit: (rate_limit, rate_limit_burst),
            cors_origins,
            table_token_ttl,
        }
    }
}

impl App {
    pub async fn build(settings: &Settings) -> Result<App, StartError> {
        crate::metrics::handle();
        let reads = Arc::new(ReadRouting::new());
        let replica = settings
            .store
            .database_read_url
            .as_deref()
            .map(|url| (url, reads.clone()));
        let signal = ShutdownSignal::new();
        let store =
            store::connect(&settings.store.database_url, replica, signal.shutdown()).await?;
        let (tokens, secret_source) = token_secret(&settings.store, store.as_ref()).await?;
        let tokens = tokens.with_rules(settings.claims.clone());
        let bus: Arc<dyn Bus> = match &settings.redis_url {
            Some(url) => {
                Arc::new(RedisBus::start(url, signal.shutdown()).map_err(StartError::Redis)?)
            }
            None => Arc::new(LocalBus::new()),
        };
        let registry = RestaurantRegistry::new(
            Deps {
                store: store.clone(),
                sink: bus.clone(),
                clock: Arc::new(SystemClock),
            },
            settings.restaurants,
            signal.shutdown(),
        );
        let channels = ChannelRegistry::new(
            store.clone(),
            bus.clone(),
            settings.channels,
            signal.shutdown(),
        );
        let schema = graphql::build_with(
            Some(Services {
                store: store.clone(),
                registry: registry.clone(),
                channels: channels.clone(),
                reads: reads.clone(),
                table_links: TableLinks {
                    tokens: tokens.clone(),
                    ttl: settings.table_token_ttl,
                },
            }),
            settings.schema,
        );
        let connections = OpenConnections::new(settings.ws.max_per_subject);
        let delivery = DeliveryRuntime::start().map_err(StartError::Runtime)?;
        let cohorts = Cohorts::new(schema.clone(), channels.clone(), settings.channels.buffer);
        let (rate, burst) = settings.rate_limit;
        let rate_limit = RateLimiter::new(rate, burst).map(Arc::new);
        let ws = WsServices {
            schema: schema.clone(),
            tokens: tokens.clone(),
            config: settings.ws,
            rate_limit: rate_limit.clone(),
            cohorts: Some(cohorts.clone()),
            delivery: Some(delivery.handle.clone()),
            connections: connections.clone(),
        };
        let state = HttpState {
            schema,
            tokens: tokens.clone(),
            store: store.clone(),
            bus: bus.clone(),
            reads,
            ws,
            websockets: Arc::new(Semaphore::new(settings.max_websockets)),
            max_message_bytes: settings.max_body_bytes,
            rate_limit,
            query_timeout: settings.query_timeout,
            cross_origin: CrossOrigin::new(&settings.cors_origins),
        };
        let router = http::router(
            state,
            settings.max_body_bytes,
            settings.metrics_listen.is_none(),
        );
        tokio::spawn(prune_events(
            Arc::downgrade(&store),
            settings.event_retention,
            signal.shutdown(),
        ));
        tokio::spawn(sample_actors(
            registry.clone(),
            channels.clone(),
            bus.clone(),
            cohorts,
            signal.shutdown(),
        ));
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(App {
            store,
            registry,
            tokens,
            secret_source,
            channels,
            router,
            limits: settings.server,
            shutdown_timeout: settings.shutdown_timeout,
            metrics_listener,
            delivery,
            signal,
            connections,
        })
    }

    /// Serves until `shutdown` completes; then stops accepting, lets requests in flight
    /// finish, closes WebSockets with 1001 (their clients resume elsewhere) and stops the
    /// restaurant actors after the commands they hold — all within the shutdown timeout.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if let Some(metrics) = self.metrics_listener {
            let mut stopping = self.signal.subscribe();
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stopping.wait_for(|stopping| *stopping).await;
                };
                let metrics = axum::serve(metrics, http::metrics_router::<()>())
                    .with_graceful_shutdown(stopped);
                if let Err(error) = metrics.await {
                    tracing::error!(%error, "the metrics listener failed");
                }
            });
        }
        let server = tokio::spawn(http::server::run(
            listener,
            self.router,
            self.limits,
            self.signal.subscribe(),
        ));
        shutdown.await;
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        self.signal.stop();
        self.connections.stop_all();
        if tokio::time::timeout_at(deadline, server).await.is_err() {
            tracing::warn!(
                timeout = ?self.shutdown_timeout,
                "connections still open at the shutdown deadline: closing them"
            );
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        // Requests are over, so no new command arrives; what the actors hold is written and
        // published before the process ends.
        self.registry
            .shutdown(left.max(Duration::from_secs(1)))
            .await;
        drop(self.delivery);
        // Background tasks end at once; a moment is enough for the last of them.
        let tasks_deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        if !self.signal.finish(deadline.max(tasks_deadline)).await {
            tracing::warn!("background tasks still running at the shutdown deadline");
        }
        Ok(())
    }
}

/// Gauges of what runs on this node, and counters the core keeps as plain atomics.
async fn sample_actors(
    registry: RestaurantRegistry,
    channels: ChannelRegistry,
    bus: Arc<dyn Bus>,
    cohorts: Cohorts,
    mut shutdown: Shutdown,
) {
    use crate::metrics::{
        ACTORS, ACTOR_FAILURES, ACTOR_RESTARTS, BUS_CONNECTED, COHORTS, EVENTS_RECEIVED,
        MAILBOX_DEPTH, MAILBOX_REFUSED, SLOW_CONSUMER_CUTS,
    };
    loop {
        metrics::gauge!(MAILBOX_DEPTH, "kind" => "restaurant").set(registry.queued() as f64);
        metrics::counter!(MAILBOX_REFUSED, "kind" => "restaurant").absolute(registry.refused());
        metrics::gauge!(MAILBOX_DEPTH, "kind" => "channel").set(channels.inflow_queued() as f64);
        metrics::counter!(MAILBOX_REFUSED, "kind" => "channel").absolute(channels.inflow_refused());
        metrics::gauge!(COHORTS).set(cohorts.active() as f64);
        metrics::gauge!(ACTORS, "kind" => "restaurant").set(registry.active() as f64);
        metrics::gauge!(ACTORS, "kind" => "channel").set(channels.active() as f64);
        metrics::gauge!(ACTORS, "kind" => "subscription").set(channels.subscribers_alive() as f64);
        // The subscription actors that feed cohorts' shared executions.
        metrics::gauge!(ACTORS, "kind" => "cohort").set(channels.shared_alive() as f64);
        metrics::counter!(SLOW_CONSUMER_CUTS, "reason" => "buffer")
            .absolute(channels.slow_consumer_cuts());
        metrics::counter!(ACTOR_FAILURES, "kind" => "subscription")
            .absolute(channels.failed_subscribers());
        metrics::counter!(ACTOR_FAILURES, "kind" => "restaurant").absolute(registry.failures());
        metrics::counter!(ACTOR_FAILURES, "kind" => "channel").absolute(channels.failed_channels());
        metrics::counter!(ACTOR_RESTARTS, "kind" => "restaurant").absolute(registry.restarts());
        metrics::counter!(ACTOR_RESTARTS, "kind" => "channel").absolute(channels.restarts());
        metrics::counter!(EVENTS_RECEIVED, "source" => "store")
            .absolute(channels.events_caught_up());
        metrics::gauge!(BUS_CONNECTED).set(if bus.connected() { 1.0 } else { 0.0 });
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = shutdown.stopped() => return,
        }
    }
}

/// Deletes events past the retention window, every tenth of the window (at most hourly),
/// until the store is gone.
async fn prune_events(store: Weak<dyn Store>, retention: Duration, mut shutdown: Shutdown) {
    let period = (retention / 10).clamp(Duration::from_millis(100), Duration::from_secs(3600));
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = shutdown.stopped() => return,
        }
        let Some(store) = store.upgrade() else { return };
        let before = Timestamp(Timestamp::now().millis().saturating_sub(retention_ms));
        match store.prune_events(before).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "pruned events past the retention window"),
            Err(error) => tracing::warn!(%error, "cannot prune events"),
        }
    }
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

/// Raises the soft limit on open files to the hard limit (often 1024 → 1M): a node holds one
/// descriptor per WebSocket. Returns the limit in force.
#[cfg(unix)]
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

#[cfg(not(unix))]
pub fn raise_open_files_limit() -> u64 {
    u64::MAX
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{documented_options, serve_options, Cli, Command};
    use clap::Parser;

    /// A value unlike the default for each documented option.
    fn sample(variable: &str) -> Option<&'static str> {
        Some(match variable {
            "ORDERHUB_LISTEN" => "127.0.0.1:9",
            "DATABASE_URL" => "postgres://localhost/orderhub",
            "DATABASE_READ_URL" => "postgres://replica/orderhub",
            "ORDERHUB_JWT_SECRET" => "a-secret-of-at-least-thirty-two-bytes",
            "ORDERHUB_JWT_ISSUER" => "https://id.example",
            "ORDERHUB_JWT_AUDIENCE" => "orderhub",
            "REDIS_URL" => "redis://127.0.0.1:6380",
            "ORDERHUB_METRICS_LISTEN" => "127.0.0.1:9100",
            "ORDERHUB_LOG_FORMAT" => "json",
            "ORDERHUB_CATCH_UP_INTERVAL" => "60s",
            "ORDERHUB_EVENT_RETENTION" => "1d",
            "ORDERHUB_ACTOR_IDLE" => "1m",
            "ORDERHUB_COMMAND_TIMEOUT" => "3s",
            "ORDERHUB_COMMAND_QUEUE" => "8",
            "ORDERHUB_SUBSCRIPTION_BUFFER" => "1000",
            "ORDERHUB_WS_INIT_TIMEOUT" => "1s",
            "ORDERHUB_WS_KEEPALIVE" => "5s",
            "ORDERHUB_SLOW_CONSUMER_TIMEOUT" => "9s",
            "ORDERHUB_SOCKET_SEND_BUFFER" => "8192",
            "ORDERHUB_MAX_BODY_BYTES" => "1024",
            "ORDERHUB_SHUTDOWN_TIMEOUT" => "2s",
            "ORDERHUB_MAX_CONNECTIONS" => "10",
            "ORDERHUB_MAX_WEBSOCKETS" => "5",
            "ORDERHUB_WS_MAX_SUBSCRIPTIONS" => "3",
            "ORDERHUB_WS_MAX_PER_SUBJECT" => "12",
            "ORDERHUB_HEADER_TIMEOUT" => "4s",
            "ORDERHUB_BODY_TIMEOUT" => "11s",
            "ORDERHUB_BODY_MIN_RATE" => "300",
            "ORDERHUB_RATE_LIMIT" => "7",
            "ORDERHUB_RATE_LIMIT_BURST" => "9",
            "ORDERHUB_QUERY_TIMEOUT" => "6s",
            "ORDERHUB_CORS_ORIGINS" => "https://app.example,http://127.0.0.1:5173",
            "ORDERHUB_TABLE_TOKEN_TTL" => "30d",
            // Switches are given without a value.
            "ORDERHUB_NO_DEMO" | "ORDERHUB_DISABLE_INTROSPECTION" => "",
            _ => return None,
        })
    }

    fn settings(argv: &[&str]) -> Settings {
        let mut full = vec!["orderhub", "serve"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full) {
            Ok(Cli {
                command: Some(Command::Serve(args)),
                ..
            }) => Settings::new(&args),
            other => panic!("{argv:?} did not parse as serve: {:?}", other.err()),
        }
    }

    /// Each documented option, set on its own, changes what a component is given: none is
    /// parsed and then dropped on the way (as the catch-up interval once was).
    #[test]
    fn every_documented_option_reaches_a_component() {
        let defaults = settings(&[]);
        let options = serve_options();
        for (variable, _) in documented_options() {
            let option = options
                .iter()
                .find(|o| o.variable == variable)
                .unwrap_or_else(|| panic!("{variable} is documented but not an option of serve"));
            let value = sample(&variable)
                .unwrap_or_else(|| panic!("give {variable} a sample value in this test"));
            let flag = format!("--{}", option.long);
            let argv: Vec<&str> = if option.takes_value {
                vec![&flag, value]
            } else {
                vec![&flag]
            };
            assert_ne!(
                settings(&argv),
                defaults,
                "{variable} set to {value:?} changes no component's settings"
            );
        }
    }

    #[test]
    fn the_catch_up_interval_reaches_the_channels() {
        let settings = settings(&["--catch-up-interval", "250ms"]);
        assert_eq!(settings.channels.catch_up_every, Duration::from_millis(250));
    }
}
