//! Configuration: one clap struct, every option also an environment variable.

use crate::http::cors::Origin;
use clap::{Args, Parser, Subcommand, ValueEnum};
use orderhub_actors::domain::Role;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "orderhub",
    version,
    about = "A realtime order hub for restaurants."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// With no subcommand, orderhub serves.
    #[command(flatten)]
    pub serve: ServeArgs,
}

// Parsed once at start; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Print a signed token for a customer, staff member or admin.
    Token(TokenArgs),
    /// Print the GraphQL schema (SDL) that the server serves.
    Schema,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the database is and how tokens are signed: what `serve` and `token` share.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct StoreArgs {
    /// Writer database: postgres://…, mysql://… (MySQL 8 or MariaDB; also mariadb://…) or
    /// sqlite://… (a file, created if missing).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://orderhub.db")]
    pub database_url: String,

    /// Reader: a PostgreSQL or MySQL replica (of the writer's kind) for reads that may be a
    /// little stale (lists, menus). Clients always read their own writes.
    #[arg(long, env = "DATABASE_READ_URL")]
    pub database_read_url: Option<String>,

    /// HS256 secret for tokens, at least 32 bytes. Without it, a random secret is generated
    /// once and kept in the database, so tokens survive restarts and every node shares it.
    #[arg(long, env = "ORDERHUB_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
}

/// The options of `serve`. Every one is documented in the README's configuration table
/// (`the_readme_documents_every_option_with_its_default` keeps the two the same list) and
/// reaches the component that uses it through `app::Settings`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Logs are filtered by RUST_LOG (default: info,sqlx=warn,ractor=warn).")]
pub struct ServeArgs {
    /// HTTP and WebSocket listener.
    #[arg(long, env = "ORDERHUB_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub store: StoreArgs,

    /// The issuer every token must name in `iss` (RFC 7519 §4.1.1). Unset, `iss` is not
    /// checked.
    #[arg(long, env = "ORDERHUB_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The audience every token's `aud` must be or contain (RFC 7519 §4.1.3). Unset, `aud` is
    /// not checked.
    #[arg(long, env = "ORDERHUB_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// A separate listener for /metrics (then not served on the main listener).
    #[arg(long, env = "ORDERHUB_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Redis for fan-out between nodes (redis://…). Without it, events travel in-process,
    /// for a single node.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// How often each live channel checks the store for events the bus did not bring (a
    /// node that died between commit and publish, a Redis outage).
    #[arg(long, env = "ORDERHUB_CATCH_UP_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub catch_up_interval: Duration,

    /// How long events are kept for `after` replays; resuming from before that gives
    /// HISTORY_GONE.
    #[arg(long, env = "ORDERHUB_EVENT_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub event_retention: Duration,

    /// Log format.
    #[arg(long, env = "ORDERHUB_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Do not create the demo restaurant when the database is empty.
    #[arg(long, env = "ORDERHUB_NO_DEMO", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_demo: bool,

    /// A restaurant's actor that handled nothing for this long is stopped (e.g. 300s, 5m).
    #[arg(long, env = "ORDERHUB_ACTOR_IDLE", default_value = "5m", value_parser = parse_duration)]
    pub actor_idle: Duration,

    /// How long a mutation waits for its restaurant's actor before failing with UNAVAILABLE.
    #[arg(long, env = "ORDERHUB_COMMAND_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub command_timeout: Duration,

    /// Mutations of one restaurant queued or running on this node at once; more are refused at
    /// once with UNAVAILABLE and retryAfterSeconds instead of waiting out the timeout.
    #[arg(long, env = "ORDERHUB_COMMAND_QUEUE", default_value_t = 256, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub command_queue: usize,

    /// Events buffered per subscription; a client that falls this far behind is cut off with
    /// SLOW_CONSUMER and resumes with `after`.
    #[arg(long, env = "ORDERHUB_SUBSCRIPTION_BUFFER", default_value_t = 256)]
    pub subscription_buffer: usize,

    /// A WebSocket that sends no connection_init within this time is closed with 4408.
    #[arg(long, env = "ORDERHUB_WS_INIT_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub ws_init_timeout: Duration,

    /// The server pings WebSocket clients this often and closes (4504) one silent for twice as long.
    #[arg(long, env = "ORDERHUB_WS_KEEPALIVE", default_value = "15s", value_parser = parse_duration)]
    pub ws_keepalive: Duration,

    /// A WebSocket whose socket write is stuck this long is closed (4508); its client
    /// reconnects and resumes with `after`.
    #[arg(long, env = "ORDERHUB_SLOW_CONSUMER_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub slow_consumer_timeout: Duration,

    /// Kernel send buffer per accepted socket, in bytes: small, so that a client that stopped
    /// reading is noticed after kilobytes rather than megabytes.
    #[arg(long, env = "ORDERHUB_SOCKET_SEND_BUFFER", default_value_t = 64 * 1024)]
    pub socket_send_buffer: usize,

    /// Largest HTTP request body accepted, in bytes.
    #[arg(long, env = "ORDERHUB_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,

    /// After SIGTERM or SIGINT: how long in-flight requests get to finish and WebSockets to
    /// close before the process exits anyway.
    #[arg(long, env = "ORDERHUB_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// TCP connections (HTTP and WebSocket) open at once; more are closed as they arrive.
    #[arg(long, env = "ORDERHUB_MAX_CONNECTIONS", default_value_t = 12_000)]
    pub max_connections: usize,

    /// WebSocket connections open at once; more upgrades are refused with HTTP 503.
    #[arg(long, env = "ORDERHUB_MAX_WEBSOCKETS", default_value_t = 10_000)]
    pub max_websockets: usize,

    /// Subscriptions running at once on one WebSocket; more are refused with RATE_LIMITED.
    #[arg(long, env = "ORDERHUB_WS_MAX_SUBSCRIPTIONS", default_value_t = 100)]
    pub ws_max_subscriptions: usize,

    /// WebSockets one token subject may hold open on this node. Past it the subject's oldest
    /// socket is closed with 4008, so that a client that reconnects without closing its old
    /// sockets keeps its newest one and never takes other subjects' places. 0: no cap.
    #[arg(long, env = "ORDERHUB_WS_MAX_PER_SUBJECT", default_value_t = 32)]
    pub ws_max_per_subject: usize,

    /// A connection that has not sent a whole request head this long after opening (or after
    /// its last response) is closed: idle and slowloris connections do not pile up.
    #[arg(long, env = "ORDERHUB_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// A request body gets this long to start arriving, plus one second for every
    /// ORDERHUB_BODY_MIN_RATE bytes it sends; past that it is answered 408 and the connection
    /// closed, so that a trickled body cannot hold a connection slot (Apache's defaults).
    #[arg(long, env = "ORDERHUB_BODY_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub body_timeout: Duration,

    /// Bytes per second a request body must keep up to earn more time; 0: the whole body
    /// within ORDERHUB_BODY_TIMEOUT.
    #[arg(long, env = "ORDERHUB_BODY_MIN_RATE", default_value_t = 500)]
    pub body_min_rate: u64,

    /// Operations per second per client (GraphQL requests and subscribe messages), sustained;
    /// more are refused with RATE_LIMITED (HTTP 429 with Retry-After). A client is a token's
    /// subject, role and scope, or the peer's IP address without a valid token. 0 turns the
    /// limit off.
    #[arg(long, env = "ORDERHUB_RATE_LIMIT", default_value_t = 100)]
    pub rate_limit: u32,

    /// Operations a client may send in a burst above the sustained rate.
    #[arg(long, env = "ORDERHUB_RATE_LIMIT_BURST", default_value_t = 200)]
    pub rate_limit_burst: u32,

    /// A query (over HTTP) that takes longer is answered with TIMEOUT. Mutations are bounded
    /// by ORDERHUB_COMMAND_TIMEOUT instead, so that a write is never cut half-way.
    #[arg(long, env = "ORDERHUB_QUERY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub query_timeout: Duration,

    /// Origins (`scheme://host[:port]`, comma-separated) whose pages may call the API from a
    /// browser: CORS for HTTP, and the `Origin` check on WebSocket upgrades. Exact origins only,
    /// no `*`. Empty: only the server's own pages and clients that are not browsers.
    #[arg(long, env = "ORDERHUB_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<Origin>,

    /// How long the customer links of the manager screen's QR sheet (`Restaurant.tableLinks`)
    /// stay valid: the tokens printed on the tables. Reprint before it runs out.
    #[arg(long, env = "ORDERHUB_TABLE_TOKEN_TTL", default_value = "365d", value_parser = parse_duration)]
    pub table_token_ttl: Duration,

    /// Refuse introspection (`__schema`, `__type`) with GRAPHQL_VALIDATION_FAILED. GraphiQL
    /// needs it, so it is on unless this is set.
    #[arg(long, env = "ORDERHUB_DISABLE_INTROSPECTION", value_parser = clap::builder::BoolishValueParser::new())]
    pub disable_introspection: bool,
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Restaurant id (customer, staff and manager tokens).
    #[arg(long)]
    pub restaurant: Option<String>,
    /// Table id (customer tokens).
    #[arg(long)]
    pub table: Option<String>,
    /// Lifetime, e.g. 90s, 30m, 12h, 7d.
    #[arg(long, default_value = "12h", value_parser = parse_duration)]
    pub ttl: Duration,
    /// Who the token is for (the `sub` claim), for logs.
    #[arg(long, default_value = "cli")]
    pub subject: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Customer,
    Staff,
    Manager,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Customer => Role::Customer,
            RoleArg::Staff => Role::Staff,
            RoleArg::Manager => Role::Manager,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// The WebSocket settings of a node (`ServeArgs` fills them in `app::Settings::new`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsConfig {
    /// A connection that sends no `connection_init` within this time is closed with 4408.
    pub init_timeout: Duration,
    /// The server pings this often, and closes (4504) a connection silent for twice as long.
    pub keepalive: Duration,
    /// A socket write stuck this long closes the connection (4508): the client reconnects and
    /// resumes with `after`.
    pub write_timeout: Duration,
    /// Subscriptions (operations) running at once on one connection.
    pub max_subscriptions: usize,
    /// Frames queued for the writer; a cohort member that would overflow it is cut as slow.
    pub outbox: usize,
    /// Connections one token subject may hold open; 0: no cap.
    pub max_per_subject: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            init_timeout: Duration::from_secs(3),
            keepalive: Duration::from_secs(15),
            write_timeout: Duration::from_secs(5),
            max_subscriptions: 100,
            outbox: 256,
            max_per_subject: 32,
        }
    }
}

/// A duration such as `90s`, `30m`, `12h` or `7d`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: use e.g. 90s, 30m, 12h, 7d"))?;
    let unit_seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "ms" => return Ok(Duration::from_millis(number)),
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?}: use ms, s, m, h or d"
            ))
        }
    };
    Ok(Duration::from_secs(number.saturating_mul(unit_seconds)))
}

/// The README's configuration table, `(variable, default)` per row, the default without its
/// backticks.
#[cfg(test)]
pub(crate) fn documented_options() -> Vec<(String, String)> {
    let readme = include_str!("../README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the README has a Configuration section");
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let variable = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((variable.to_owned(), cells.get(2)?.replace('`', "")))
        })
        .collect()
}

/// One of `serve`'s options as clap knows it.
#[cfg(test)]
pub(crate) struct ServeOption {
    pub variable: String,
    pub long: String,
    /// Empty when it has none.
    pub default: String,
    /// False for a switch such as `--no-demo`.
    pub takes_value: bool,
}

#[cfg(test)]
pub(crate) fn serve_options() -> Vec<ServeOption> {
    use clap::CommandFactory;
    let command = Cli::command();
    let serve = command
        .find_subcommand("serve")
        .expect("serve is a subcommand");
    serve
        .get_arguments()
        .filter_map(|arg| {
            let variable = arg.get_env()?.to_str()?.to_owned();
            let long = arg.get_long()?.to_owned();
            let default = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(",");
            let takes_value = arg.get_action().takes_values();
            Some(ServeOption {
                variable,
                long,
                default,
                takes_value,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_documents_every_option_with_its_default() {
        let documented = documented_options();
        let served = serve_options();
        let mut documented_names: Vec<&str> = documented.iter().map(|(v, _)| v.as_str()).collect();
        let mut served_names: Vec<&str> = served.iter().map(|o| o.variable.as_str()).collect();
        documented_names.sort_unstable();
        served_names.sort_unstable();
        assert_eq!(
            documented_names, served_names,
            "the README's configuration table and `orderhub serve --help` list other options"
        );
        for ServeOption {
            variable, default, ..
        } in &served
        {
            let (_, readme_default) = documented
                .iter()
                .find(|(v, _)| v == variable)
                .expect("documented");
            match default.as_str() {
                // An option without a default: the README says what happens instead.
                "" | "false" => assert!(
                    readme_default.starts_with("none")
                        || ["off", "generated"].contains(&readme_default.as_str()),
                    "{variable}: the README gives the default {readme_default:?}, clap has none"
                ),
                default => assert_eq!(
                    readme_default, default,
                    "{variable}: the README's default is not the one in force"
                ),
            }
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn switches_take_the_usual_spellings_from_the_environment() {
        assert!(Cli::parse_from(["orderhub", "--no-demo"]).serve.no_demo);
        std::env::set_var("ORDERHUB_NO_DEMO", "1");
        let cli = Cli::try_parse_from(["orderhub"]);
        std::env::remove_var("ORDERHUB_NO_DEMO");
        assert!(cli.expect("ORDERHUB_NO_DEMO=1 parses").serve.no_demo);
    }

    #[test]
    fn cors_origins_are_a_list_checked_at_start() {
        let parsed = Cli::try_parse_from([
            "orderhub",
            "--cors-origins",
            "https://app.example, HTTP://127.0.0.1:5173",
        ])
        .expect("two origins parse");
        let origins: Vec<String> = parsed
            .serve
            .cors_origins
            .iter()
            .map(|o| o.to_string())
            .collect();
        assert_eq!(origins, ["https://app.example", "http://127.0.0.1:5173"]);
        for (value, says) in [
            ("*", "wildcards (`*`) are not accepted"),
            ("https://app.example/", "no path"),
            ("app.example", "scheme://host[:port]"),
        ] {
            let refused = Cli::try_parse_from(["orderhub", "--cors-origins", value])
                .expect_err(value)
                .to_string();
            assert!(refused.contains(says), "{value}: {refused}");
        }
        assert!(Cli::parse_from(["orderhub"]).serve.cors_origins.is_empty());
    }

    #[test]
    fn no_subcommand_means_serve_with_defaults() {
        let cli = Cli::parse_from(["orderhub"]);
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(cli.serve.store.database_url, "sqlite://orderhub.db");
    }
}
