use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use orderhub_bench::client::Target;
use orderhub_bench::fanout::{self, FanoutParams};
use orderhub_bench::setup::Signer;
use orderhub_bench::wire::{self, Fault, WireConfig};
use orderhub_bench::{idle, storm};
use serde::Serialize;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "orderhub-bench",
    about = "Load generator for orderhub (or any server with its API): fan-out, stalls, idle memory, writes, reconnect storms; and the wire-limit baseline server."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// S subscribers on restaurantEvents of R restaurants while W writers place N orders at Q/s.
    Fanout(FanoutArgs),
    /// Fanout with K more subscribers that stop reading, after the same run without them.
    Stall(StallArgs),
    /// C connections with one subscription each, idle: server RSS per subscription.
    Idle(IdleArgs),
    /// placeOrder throughput and latency over many restaurants, no subscribers.
    Writes(WritesArgs),
    /// C clients connect, subscribe and resume at once.
    Storm(StormArgs),
    /// The wire-limit baseline: the same WebSocket stack, no GraphQL, no actors.
    WireServer(WireArgs),
}

#[derive(Debug, Clone, Args)]
struct Common {
    /// The server under test.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// The server's token secret, to sign the simulated clients' tokens.
    #[arg(long, env = "ORDERHUB_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// The server's process id(s), for CPU seconds and RSS from /proc (repeat for a cluster).
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// Write the JSON report here (else to stdout); the one-line summary goes to stderr.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Generator threads: 1 runs everything on one core.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Subscribe as screens that start now do with the stock graphql-ws client: a named
    /// operation, the restaurant in `variables`, no `after` and no operationName. Without it,
    /// subscriptions resume with `after: 0`.
    #[arg(long)]
    live: bool,
}

#[derive(Debug, Clone, Args)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 50)]
    subscribers: usize,
    #[arg(long, default_value_t = 1)]
    restaurants: usize,
    #[arg(long, default_value_t = 200)]
    orders: usize,
    /// Orders per second over all writers; 0: as fast as answers come.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Seconds to wait for the last deliveries after the last order was answered.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// Subscribe on these nodes, round-robin, instead of --url (repeat; e.g. the other
    /// nodes of a cluster).
    #[arg(long = "subscribe-url")]
    subscribe_urls: Vec<String>,
}

#[derive(Debug, Clone, Args)]
struct StallArgs {
    #[command(flatten)]
    fanout: FanoutArgs,
    /// Subscribers that stop reading.
    #[arg(long, default_value_t = 5)]
    stalled: usize,
    /// SO_RCVBUF of the stalled subscribers' sockets, in bytes.
    #[arg(long, default_value_t = 4096)]
    stalled_recv_buffer: u32,
    /// Seconds the stalled subscribers stay unread after the orders start.
    #[arg(long, default_value_t = 8.0)]
    hold: f64,
    /// The server's slow-consumer timeout in seconds (ORDERHUB_SLOW_CONSUMER_TIMEOUT).
    #[arg(long, default_value_t = 5.0)]
    slow_consumer_timeout: f64,
    /// Skip the run without stalled subscribers.
    #[arg(long)]
    no_baseline: bool,
}

#[derive(Debug, Clone, Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 200)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    restaurants: usize,
}

#[derive(Debug, Clone, Args)]
struct WritesArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 10)]
    restaurants: usize,
    #[arg(long, default_value_t = 500)]
    orders: usize,
    #[arg(long, default_value_t = 16)]
    writers: usize,
    /// Orders per second over all writers; 0: as fast as answers come.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
}

#[derive(Debug, Clone, Args)]
struct StormArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 200)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    restaurants: usize,
    /// Events per restaurant placed before the storm, replayed by every client.
    #[arg(long, default_value_t = 5)]
    history: usize,
    /// Seconds the clients get to resume.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Debug, Clone, Args)]
struct WireArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Frames buffered per connection.
    #[arg(long, default_value_t = 256)]
    buffer: usize,
    /// Kernel send buffer per accepted socket, in bytes.
    #[arg(long, default_value_t = 65536)]
    socket_send_buffer: usize,
    /// Misbehave on purpose (tests of the generator): skip:SEQ, duplicate:SEQ or swap:SEQ.
    #[arg(long)]
    fault: Option<Fault>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One descriptor per simulated client.
    orderhub::app::raise_open_files_limit();
    let threads = match &cli.command {
        Command::Fanout(a) => a.common.threads,
        Command::Stall(a) => a.fanout.common.threads,
        Command::Idle(a) => a.common.threads,
        Command::Writes(a) => a.common.threads,
        Command::Storm(a) => a.common.threads,
        Command::WireServer(_) => 1,
    };
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let result = runtime
        .context("cannot start the runtime")
        .and_then(|runtime| runtime.block_on(run(cli.command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("orderhub-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Fanout(args) => {
            let (target, signer) = connect(&args.common).await?;
            let params = fanout_params(&args);
            let report =
                fanout::run(&target, &signer, params, &args.common.server_pids, "fanout").await?;
            emit(&args.common, &report, &report.summary())
        }
        Command::Stall(args) => {
            let common = &args.fanout.common;
            let (target, signer) = connect(common).await?;
            let without = if args.no_baseline {
                None
            } else {
                let params = fanout_params(&args.fanout);
                Some(fanout::run(&target, &signer, params, &common.server_pids, "fanout").await?)
            };
            let params = FanoutParams {
                stalled: args.stalled,
                stalled_recv_buffer: args.stalled_recv_buffer,
                stall_hold: Duration::from_secs_f64(args.hold),
                slow_consumer_timeout: Duration::from_secs_f64(args.slow_consumer_timeout),
                ..fanout_params(&args.fanout)
            };
            let with = fanout::run(&target, &signer, params, &common.server_pids, "stall").await?;
            let ratio = without
                .as_ref()
                .map(|w| with.delivery_latency.p99_ms / w.delivery_latency.p99_ms.max(1e-9));
            let mut line = with.summary();
            if let Some(ratio) = ratio {
                line += &format!("; healthy p99 {ratio:.2}x the run without stalls");
            }
            let report = StallReport {
                scenario: "stall",
                healthy_p99_ratio: ratio,
                without_stalls: without,
                with_stalls: with,
            };
            emit(common, &report, &line)
        }
        Command::Idle(args) => {
            let (target, signer) = connect(&args.common).await?;
            let pids = &args.common.server_pids;
            let report = idle::run(
                &target,
                &signer,
                args.connections,
                args.restaurants,
                pids,
                args.common.live,
            )
            .await?;
            emit(&args.common, &report, &report.summary())
        }
        Command::Writes(args) => {
            let (target, signer) = connect(&args.common).await?;
            let params = FanoutParams {
                subscribers: 0,
                restaurants: args.restaurants,
                orders: args.orders,
                rate: args.rate,
                writers: args.writers,
                ..fanout_params(&FanoutArgs {
                    common: args.common.clone(),
                    subscribers: 0,
                    restaurants: args.restaurants,
                    orders: args.orders,
                    rate: args.rate,
                    writers: args.writers,
                    drain: 0.0,
                    subscribe_urls: Vec::new(),
                })
            };
            let report =
                fanout::run(&target, &signer, params, &args.common.server_pids, "writes").await?;
            let w = &report.writes;
            let line = format!(
                "writes {}: {} placeOrder over {} restaurants from {} writers: {:.0}/s, latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms, {} errors",
                report.target, w.ok, args.restaurants, args.writers, w.per_second, w.latency.p50_ms,
                w.latency.p99_ms, w.latency.max_ms, w.errors.values().sum::<u64>(),
            );
            emit(&args.common, &report, &line)
        }
        Command::Storm(args) => {
            let (target, signer) = connect(&args.common).await?;
            let report = storm::run(
                &target,
                &signer,
                args.clients,
                args.restaurants,
                args.history,
                Duration::from_secs_f64(args.timeout),
                &args.common.server_pids,
            )
            .await?;
            emit(&args.common, &report, &report.summary())
        }
        Command::WireServer(args) => {
            let config = WireConfig {
                buffer: args.buffer,
                socket_send_buffer: args.socket_send_buffer,
                fault: args.fault,
                ..WireConfig::default()
            };
            let (addr, serving) = wire::bind(args.listen, config).await?;
            // The script reads this line for the port.
            println!("wire-server listening on http://{addr}");
            serving.await?;
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct StallReport {
    scenario: &'static str,
    /// Healthy subscribers' p99 with stalls / without.
    healthy_p99_ratio: Option<f64>,
    without_stalls: Option<fanout::FanoutReport>,
    with_stalls: fanout::FanoutReport,
}

async fn connect(common: &Common) -> anyhow::Result<(Target, Signer)> {
    let target = Target::new(&common.url).await?;
    let signer = Signer::new(&common.jwt_secret)?;
    Ok((target, signer))
}

fn fanout_params(args: &FanoutArgs) -> FanoutParams {
    FanoutParams {
        subscribers: args.subscribers,
        restaurants: args.restaurants,
        orders: args.orders,
        rate: args.rate,
        writers: args.writers,
        stalled: 0,
        stalled_recv_buffer: 4096,
        stall_hold: Duration::ZERO,
        slow_consumer_timeout: Duration::from_secs(5),
        drain: Duration::from_secs_f64(args.drain),
        subscribe_to: args.subscribe_urls.clone(),
        live: args.common.live,
    }
}

fn emit(common: &Common, report: &impl Serialize, summary: &str) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report)?;
    match &common.out {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(path, json + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?
        }
        None => println!("{json}"),
    }
    eprintln!("{summary}");
    Ok(())
}
