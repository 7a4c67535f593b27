//! The servers under test and a small GraphQL client.
//!
//! One orderhub per backend is shared by every test of this binary: it runs on its own
//! runtime thread (a `#[tokio::test]` runtime ends with its test), and every test creates its
//! own restaurant, so tests do not see each other's data.

use orderhub::app::{App, Settings};
use orderhub::auth::Tokens;
use orderhub::config::{Cli, Command};
use orderhub_actors::channel::ChannelRegistry;
use orderhub_actors::domain::{RestaurantId, Role, TableId};
use orderhub_actors::restaurant::RestaurantRegistry;
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::Duration;

use crate::harness::mariadb::MariaDbServer;
use crate::harness::postgres::PgServer;

pub const SECRET: &str = "integration-tests-secret-0123456789abcdef";

/// An orderhub node seen from outside: its URL and how to sign tokens for it.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    tokens: Tokens,
    http: reqwest::Client,
}

/// An in-process node.
pub struct TestServer {
    api: Api,
    pub database_url: String,
    pub registry: RestaurantRegistry,
    pub channels: ChannelRegistry,
}

impl std::ops::Deref for TestServer {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// The settings of a test node on `database_url`, signing with [`SECRET`]; `extra` are more
/// `serve` flags.
pub fn test_settings(database_url: &str, extra: &[&str]) -> Settings {
    let mut argv = vec![
        "orderhub",
        "serve",
        "--no-demo",
        "--database-url",
        database_url,
        "--jwt-secret",
        SECRET,
    ];
    // Tests send bursts from one token; the limit has a test of its own.
    if !extra.contains(&"--rate-limit") {
        argv.extend_from_slice(&["--rate-limit", "0"]);
    }
    // The suite's tokens share one subject, standing for many devices; the cap per subject
    // has a test of its own.
    if !extra.contains(&"--ws-max-per-subject") {
        argv.extend_from_slice(&["--ws-max-per-subject", "0"]);
    }
    argv.extend_from_slice(extra);
    let Some(Command::Serve(args)) = <Cli as clap::Parser>::parse_from(argv).command else {
        panic!("serve arguments did not parse");
    };
    Settings::new(&args)
}

/// Runs a node script from `tests/contract/` with `args` to its end.
pub fn node_run(script: &str, args: &[&str]) -> std::process::Output {
    let contract = format!("{}/tests/contract", env!("CARGO_MANIFEST_DIR"));
    assert!(
        std::path::Path::new(&format!("{contract}/node_modules/graphql")).exists(),
        "graphql-js is missing: run `npm ci --prefix tests/contract` (scripts/test does this)"
    );
    std::process::Command::new("node")
        .arg(format!("{contract}/{script}"))
        .args(args)
        .output()
        .expect("node is needed for the contract checks: install the Debian package nodejs (scripts/test does this)")
}

/// Runs a node script from `tests/contract/` with `args`; its stdout comes line by line.
pub fn node_script(
    script: &str,
    args: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let path = format!("{}/tests/contract/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new("node")
        .arg(path)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node runs (scripts/test installs it)");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    (child, lines_rx)
}

impl TestServer {
    /// Starts an in-process node on a free loopback port; `extra` are more `serve` flags. It
    /// serves until the test process ends.
    pub fn start(database_url: &str, extra: &[&str]) -> TestServer {
        let node = NodeThread::start(test_settings(database_url, extra), || async {});
        let (registry, channels) = node.registries();
        TestServer {
            api: node.api.clone(),
            database_url: database_url.to_owned(),
            registry,
            channels,
        }
        .keeping(node)
    }

    fn keeping(self, mut node: NodeThread) -> TestServer {
        // Never stopped: its stop signal is kept for good and its thread left to run.
        std::mem::forget(node.stop.take());
        drop(node.thread.take());
        self
    }
}

/// An in-process node on a runtime of its own, in a thread (a `#[tokio::test]` runtime ends
/// with its test, and a node's tasks can then be counted apart from the test's). It serves
/// until `stop` or until dropped; then `after` runs on its runtime, and `stop` returns what
/// `after` returned.
pub struct NodeThread<T: Send + 'static = ()> {
    pub api: Api,
    /// The node's registries, let go before it stops: a stopped node must end its tasks by
    /// itself, not because nothing refers to it any more.
    registries: Option<(RestaurantRegistry, ChannelRegistry)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<T>>,
}

impl<T: Send + 'static> NodeThread<T> {
    pub fn start<F, Fut>(settings: Settings, after: F) -> NodeThread<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
    {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("node runtime");
            runtime.block_on(async move {
                let app = App::build(&settings).await.expect("orderhub starts");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("address");
                ready_tx
                    .send((addr, app.registry.clone(), app.channels.clone()))
                    .expect("report readiness");
                let stopped = async move {
                    let _ = stopped.await;
                };
                app.serve(listener, stopped).await.expect("serve");
                after().await
            })
        });
        let (addr, registry, channels) = ready_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("orderhub did not start within 60 s");
        NodeThread {
            api: Api::at(&format!("http://{addr}")),
            registries: Some((registry, channels)),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The node's restaurant and channel registries.
    pub fn registries(&self) -> (RestaurantRegistry, ChannelRegistry) {
        self.registries.clone().expect("running")
    }

    /// Stops the node and waits until its runtime is gone.
    pub async fn stop(mut self) -> T {
        self.registries = None;
        drop(self.stop.take());
        let thread = self.thread.take().expect("not stopped yet");
        tokio::task::spawn_blocking(move || thread.join().expect("the node stopped"))
            .await
            .expect("joined")
    }
}

impl<T: Send + 'static> Drop for NodeThread<T> {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Api {
    /// A node at `base` that signs tokens with [`SECRET`].
    pub fn at(base: &str) -> Api {
        Api {
            base: base.to_owned(),
            tokens: Tokens::new(SECRET.as_bytes()).expect("secret"),
            // No pooled connections: they belong to the runtime of the test that opened them,
            // and nodes are shared by tests with runtimes of their own.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("HTTP client"),
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn token(&self, role: Role, restaurant: Option<&str>, table: Option<&str>) -> String {
        self.token_with_ttl(role, restaurant, table, Duration::from_secs(600))
    }

    /// A token for a client other than the suite's usual one.
    pub fn token_for(
        &self,
        subject: &str,
        role: Role,
        restaurant: Option<&str>,
        table: Option<&str>,
    ) -> String {
        self.issue(subject, role, restaurant, table, Duration::from_secs(600))
    }

    pub fn token_with_ttl(
        &self,
        role: Role,
        restaurant: Option<&str>,
        table: Option<&str>,
        ttl: Duration,
    ) -> String {
        self.issue("test", role, restaurant, table, ttl)
    }

    fn issue(
        &self,
        subject: &str,
        role: Role,
        restaurant: Option<&str>,
        table: Option<&str>,
        ttl: Duration,
    ) -> String {
        let restaurant = restaurant.map(|r| RestaurantId::parse(r).expect("restaurant id"));
        let table = table.map(|t| TableId::parse(t).expect("table id"));
        self.tokens
            .issue(subject, role, restaurant.as_ref(), table.as_ref(), ttl)
    }

    pub fn admin(&self) -> String {
        self.token(Role::Admin, None, None)
    }

    /// POSTs a GraphQL request and returns the whole JSON response.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Gql {
        let (status, response) = self
            .try_gql(token, query, variables)
            .await
            .expect("request sent");
        assert!(status.is_success(), "HTTP {status}: {}", response.0);
        response
    }

    /// POSTs a GraphQL request; fails only if no JSON answer came (a node that is down).
    pub async fn try_gql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Result<(reqwest::StatusCode, Gql), reqwest::Error> {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.base))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        Ok((status, Gql(response.json().await?)))
    }

    /// What `/metrics` shows now.
    pub async fn metrics(&self) -> String {
        let response = self.http.get(format!("{}/metrics", self.base)).send();
        response
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("text")
    }

    /// A new restaurant with two tables and a menu of three items, the last one sold out.
    pub async fn fixture(&self) -> Fixture {
        let admin = self.admin();
        let created = self
            .gql(
                Some(&admin),
                "mutation($name: String!) { createRestaurant(input: {name: $name}) { id currency } }",
                json!({"name": "Test Kitchen"}),
            )
            .await;
        let restaurant = created.str("createRestaurant.id");
        assert_eq!(created.str("createRestaurant.currency"), "JPY");
        let mut tables = Vec::new();
        for name in ["T1", "T2"] {
            let table = self
                .gql(
                    Some(&admin),
                    "mutation($r: ID!, $n: String!) { createTable(restaurantId: $r, name: $n) { id } }",
                    json!({"r": restaurant, "n": name}),
                )
                .await;
            tables.push(table.str("createTable.id"));
        }
        let mut menu = Vec::new();
        for (name, price, available) in [
            ("Ramen", 900, true),
            ("Gyoza", 450, true),
            ("Special", 1500, false),
        ] {
            let item = self
                .gql(
                    Some(&admin),
                    "mutation($r: ID!, $i: MenuItemInput!) { createMenuItem(restaurantId: $r, input: $i) { id } }",
                    json!({"r": restaurant, "i": {"name": name, "price": price, "available": available}}),
                )
                .await;
            menu.push(item.str("createMenuItem.id"));
        }
        Fixture {
            // One MenuItemChanged per item created.
            seq: menu.len() as i64,
            staff: self.token(Role::Staff, Some(&restaurant), None),
            customer: self.token(Role::Customer, Some(&restaurant), Some(&tables[0])),
            other_customer: self.token(Role::Customer, Some(&restaurant), Some(&tables[1])),
            admin,
            restaurant,
            tables,
            menu,
        }
    }
}

#[derive(Clone)]
pub struct Fixture {
    pub restaurant: String,
    /// Two tables: the customer sits at the first.
    pub tables: Vec<String>,
    /// Ramen 900, Gyoza 450, Special 1500 (sold out).
    pub menu: Vec<String>,
    /// The restaurant's newest seq once set up: its menu's events. A test's own first event
    /// is `seq + 1`.
    pub seq: i64,
    pub admin: String,
    pub staff: String,
    pub customer: String,
    /// A customer at the second table.
    pub other_customer: String,
}

pub const PLACE: &str = "mutation($i: PlaceOrderInput!) { placeOrder(input: $i) { \
    id number status version tableId restaurantId note total { amount currency } \
    items { menuItemId name quantity note unitPrice { amount currency } subtotal { amount } } } }";

pub const ADVANCE: &str = "mutation($o: ID!, $to: OrderStatus!, $v: Int) { \
    advanceOrder(orderId: $o, to: $to, expectedVersion: $v) { id status version } }";

pub const CANCEL: &str = "mutation($o: ID!, $r: String!) { \
    cancelOrder(orderId: $o, reason: $r) { id status version cancelReason } }";

impl Fixture {
    /// A `placeOrder` input for the first table: `(menu index, quantity)` lines.
    pub fn order_input(&self, key: &str, lines: &[(usize, i64)]) -> Value {
        json!({
            "restaurantId": self.restaurant,
            "tableId": self.tables[0],
            "items": lines.iter().map(|(i, q)| json!({"menuItemId": self.menu[*i], "quantity": q})).collect::<Vec<_>>(),
            "idempotencyKey": key,
        })
    }

    /// Moves an order one step as staff; the move must succeed.
    pub async fn advance(&self, server: &Api, order: &str, to: &str) {
        server
            .gql(Some(&self.staff), ADVANCE, json!({"o": order, "to": to}))
            .await
            .ok();
    }

    /// Places a one-ramen order as the customer and returns its id.
    pub async fn place(&self, server: &Api, key: &str) -> String {
        let placed = server
            .gql(
                Some(&self.customer),
                PLACE,
                json!({"i": self.order_input(key, &[(0, 1)])}),
            )
            .await;
        placed.str("placeOrder.id")
    }
}

/// A GraphQL response.
#[derive(Debug, Clone)]
pub struct Gql(pub Value);

impl Gql {
    /// The value at a dotted path under `data`, e.g. `placeOrder.items.0.name`.
    pub fn at(&self, path: &str) -> &Value {
        let mut value = &self.0["data"];
        for key in path.split('.') {
            value = match key.parse::<usize>() {
                Ok(index) => &value[index],
                Err(_) => &value[key],
            };
        }
        value
    }

    pub fn str(&self, path: &str) -> String {
        match self.at(path).as_str() {
            Some(s) => s.to_owned(),
            None => panic!("no string at {path} in {}", self.0),
        }
    }

    pub fn int(&self, path: &str) -> i64 {
        match self.at(path).as_i64() {
            Some(n) => n,
            None => panic!("no integer at {path} in {}", self.0),
        }
    }

    /// The `extensions.code` of the first error, if any.
    pub fn code(&self) -> Option<&str> {
        self.0["errors"][0]["extensions"]["code"].as_str()
    }

    pub fn ok(&self) -> &Self {
        assert!(
            self.0.get("errors").is_none(),
            "unexpected errors: {}",
            self.0
        );
        self
    }

    pub fn expect_code(&self, code: &str) {
        assert_eq!(self.code(), Some(code), "expected {code} in {}", self.0);
    }
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A fresh SQLite file in the target's scratch area.
pub fn sqlite_url(name: &str) -> String {
    format!("sqlite://{}/{name}.db", scratch_dir("sqlite").display())
}

pub fn postgres_server() -> &'static PgServer {
    static PG: OnceLock<PgServer> = OnceLock::new();
    PG.get_or_init(PgServer::start)
}

/// A fresh database on the shared PostgreSQL server.
pub fn postgres_url(name: &str) -> String {
    let pg = postgres_server();
    pg.create_database(name);
    pg.url(name)
}

/// A streaming replica of the shared PostgreSQL server that applies changes 1 s late, as
/// replicas under load do: code that reads its own writes from it fails its tests.
pub fn lagging_replica() -> &'static PgServer {
    static REPLICA: OnceLock<PgServer> = OnceLock::new();
    REPLICA.get_or_init(|| postgres_server().start_replica(Duration::from_secs(1)))
}

/// A fresh database on the shared server, and the URL of the same database on its lagging
/// replica once the replica has it.
pub fn replicated_urls(name: &str) -> (String, String) {
    let primary = postgres_url(name);
    let replica = lagging_replica();
    let query = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
    crate::harness::wait_until(
        "the replica has the new database",
        Duration::from_secs(30),
        || replica.psql("postgres", &query) == "1",
    );
    (primary, replica.url(name))
}

pub fn sqlite() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| TestServer::start(&sqlite_url("shared"), &[]))
}

pub fn postgres() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| TestServer::start(&postgres_url("orderhub_shared"), &[]))
}

const SCHEMA_THERE: &str = "SELECT to_regclass('events') IS NOT NULL";

/// A node whose reads that may be stale go to a replica 1 s behind.
pub fn replica() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let (primary, replica_url) = replicated_urls("orderhub_replicated");
        let server = TestServer::start(&primary, &["--database-read-url", &replica_url]);
        // The node migrated the primary; reads routed to the replica fail until it has the
        // schema too, a second later.
        crate::harness::wait_until(
            "the replica has the schema",
            Duration::from_secs(30),
            || lagging_replica().psql("orderhub_replicated", SCHEMA_THERE) == "t",
        );
        server
    })
}

pub fn mariadb_server() -> &'static MariaDbServer {
    static SERVER: OnceLock<MariaDbServer> = OnceLock::new();
    SERVER.get_or_init(MariaDbServer::start)
}

/// A fresh database on the shared MariaDB server.
pub fn mariadb_url(name: &str) -> String {
    let server = mariadb_server();
    server.create_database(name);
    server.url(name)
}

/// A replica of the shared MariaDB server that applies each transaction 1 s late
/// (`MASTER_DELAY=1`).
pub fn lagging_mariadb_replica() -> &'static MariaDbServer {
    static REPLICA: OnceLock<MariaDbServer> = OnceLock::new();
    REPLICA.get_or_init(|| mariadb_server().start_replica(Duration::from_secs(1)))
}

/// A fresh database on the shared MariaDB server, and the URL of the same database on its
/// lagging replica once the replica has it.
pub fn mariadb_replicated_urls(name: &str) -> (String, String) {
    let primary = mariadb_url(name);
    let replica = lagging_mariadb_replica();
    let query =
        format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'");
    crate::harness::wait_until(
        "the MariaDB replica has the new database",
        Duration::from_secs(30),
        || replica.sql("", &query) == "1",
    );
    (primary, replica.url(name))
}

pub fn mariadb() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| TestServer::start(&mariadb_url("orderhub_shared"), &[]))
}

/// A MariaDB node whose reads that may be stale go to a replica 1 s behind.
pub fn mariadb_replica() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let (primary, replica) = mariadb_replicated_urls("orderhub_replicated");
        let server = TestServer::start(&primary, &["--database-read-url", &replica]);
        // As for PostgreSQL: routed reads fail until the replica has the schema.
        crate::harness::wait_until(
            "the MariaDB replica has the schema",
            Duration::from_secs(30),
            || {
                lagging_mariadb_replica().sql(
                    "",
                    "SELECT COUNT(*) FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = 'orderhub_replicated' AND TABLE_NAME = 'events'",
                ) == "1"
            },
        );
        server
    })
}

/// Runs a scenario `async fn(&'static TestServer)` once per backend: SQLite, PostgreSQL,
/// PostgreSQL with a replica 1 s behind, MariaDB, and MariaDB with a replica 1 s behind.
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$scenario(crate::support::sqlite()).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$scenario(crate::support::postgres()).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn replica() {
                    super::$scenario(crate::support::replica()).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mariadb() {
                    super::$scenario(crate::support::mariadb()).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mariadb_replica() {
                    super::$scenario(crate::support::mariadb_replica()).await;
                }
            }
        )*
    };
}
pub(crate) use on_every_backend;

pub const BIN: &str = env!("CARGO_BIN_EXE_orderhub");

/// The orderhub binary as a separate process, killed and reaped when dropped.
pub struct NodeProcess {
    child: std::process::Child,
    pub base: String,
    pub stdout_lines: Vec<String>,
    /// Every line printed so far, on stdout and stderr (its logs, also echoed to the test's
    /// output).
    output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl NodeProcess {
    /// Starts the binary in `dir` with only `env` configured (on a port the OS picks) and
    /// reads its output up to the line that says it is serving.
    pub fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> NodeProcess {
        use std::io::{BufRead, BufReader, Read};
        let child = std::process::Command::new(BIN)
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env_remove("ORDERHUB_JWT_SECRET")
            .env_remove("REDIS_URL")
            .env("ORDERHUB_LISTEN", "127.0.0.1:0")
            // Tests send bursts from one token; the limit has a test of its own.
            .env("ORDERHUB_RATE_LIMIT", "0")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("orderhub starts");
        // Owned by a NodeProcess from here on, so that it is killed and reaped whatever happens.
        let mut node = NodeProcess {
            child,
            base: String::new(),
            stdout_lines: Vec::new(),
            output: Default::default(),
        };
        let (lines_tx, lines_rx) = std::sync::mpsc::channel();
        let streams: [(Box<dyn Read + Send>, bool); 2] = [
            (Box::new(node.child.stdout.take().expect("stdout")), false),
            (Box::new(node.child.stderr.take().expect("stderr")), true),
        ];
        for (stream, echo) in streams {
            let (lines_tx, output) = (lines_tx.clone(), node.output.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if echo {
                        eprintln!("{line}");
                    }
                    output
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(line.clone());
                    // Read on after start-up, so that the process never blocks on a full pipe.
                    let _ = lines_tx.send(line);
                }
            });
        }
        drop(lines_tx);
        loop {
            let line = lines_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("orderhub said it is serving");
            node.stdout_lines.push(line.clone());
            if let Some(at) = line.find("address=") {
                node.base = line[at + "address=".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                return node;
            }
        }
    }

    pub fn api(&self) -> Api {
        Api::at(&self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed so far, one line each.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// Asserts that nothing it printed so far is a panic.
    pub fn assert_no_panic(&self) {
        let output = self.output();
        let panics: Vec<_> = output.lines().filter(|l| l.contains("panicked")).collect();
        assert!(panics.is_empty(), "the node panicked: {panics:?}");
    }

    /// SIGKILL: no shutdown, no goodbye to anyone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (at most 15 s) for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "SIGTERM sent");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "orderhub did not exit within 15 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Load tests hold this while they run, so that two of them never share the machine's two
/// cores: each measures or relies on subscribers keeping up, not on how busy the CI box is.
pub async fn load_test() -> tokio::sync::MutexGuard<'static, ()> {
    static LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOAD.lock().await
}

/// The value of the first series in a Prometheus exposition that starts with `series`
/// (a name, or a name with its labels).
pub fn metric_value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Polls `check` every 20 ms until it holds; fails the test, naming `what`, if it still does not
/// after `within`. For what a test cannot be told directly: an actor gone, a subscription
/// joined, a metric sampled, a replica caught up.
pub async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status code of a raw HTTP/1.1 response (`HTTP/1.1 408 Request Timeout…`); panics with
/// the response when it has none.
pub fn status_line(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {response:?}"))
}
