//! The screens in a real browser: headless Chromium (the Debian package) driven by
//! playwright-core, one Node script per scenario in tests/browser. Screenshots of both pages
//! land in `target/screenshots/` for a person to look at.

use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::support::{
    sqlite, sqlite_url, Api, Fixture, NodeProcess, TestServer, ADVANCE, CANCEL, SECRET,
};

/// How long a scenario may take in all; the script's own watchdog fires earlier.
const SCENARIO_LIMIT: Duration = Duration::from_secs(120);

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `target/screenshots`, beside the scratch directory of the target in use.
fn screenshots_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    dir
}

/// A scenario script running in Node: killed when dropped, its output kept for failures.
struct Scenario {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    output: Vec<String>,
    started: Instant,
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Scenario {
    fn start(script: &str, env: &[(&str, &str)]) -> Scenario {
        assert!(
            repo_file("tests/browser/node_modules/playwright-core").exists(),
            "playwright-core is missing: run `npm ci --prefix tests/browser` (scripts/test does this)"
        );
        let mut child = Command::new("node")
            .arg(repo_file(&format!("tests/browser/{script}")))
            .current_dir(repo_file("tests/browser"))
            .envs(env.iter().copied())
            .env("SCREENSHOTS", screenshots_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node is needed for the browser tests: install the Debian package nodejs (scripts/test does this)");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for (stream, prefix) in [
            (Box::new(stdout) as Box<dyn std::io::Read + Send>, ""),
            (Box::new(stderr), "stderr: "),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(format!("{prefix}{line}")).is_err() {
                        break;
                    }
                }
            });
        }
        let stdin = child.stdin.take().expect("stdin");
        Scenario {
            name: script.to_owned(),
            child,
            stdin,
            lines,
            output: Vec::new(),
            started: Instant::now(),
        }
    }

    fn fail(&self, why: &str) -> ! {
        panic!(
            "{}: {why}\n--- its output ---\n{}",
            self.name,
            self.output.join("\n")
        );
    }

    /// The next line of output, or None once the script's output has ended.
    fn next_line(&mut self) -> Option<String> {
        let left = SCENARIO_LIMIT.saturating_sub(self.started.elapsed());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.output.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => self.fail("timed out"),
        }
    }

    /// Waits until the script reaches `step`; it waits for an [`answer`](Self::answer).
    fn reached(&mut self, step: &str) {
        let expected = format!("STEP {step}");
        loop {
            match self.next_line() {
                Some(line) if line == expected => return,
                Some(_) => {}
                None => self.fail(&format!("ended before step {step}")),
            }
        }
    }

    fn answer(&mut self, reply: &str) {
        writeln!(self.stdin, "{reply}").expect("answer the script");
    }

    /// Waits for the script to end and asserts it passed.
    fn passes(mut self) {
        while self.next_line().is_some() {}
        let deadline = self.started + SCENARIO_LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for node") {
                break status;
            }
            if Instant::now() > deadline {
                self.fail("did not exit");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() {
            self.fail(&format!("failed ({status})"));
        }
        println!("{}", self.output.join("\n"));
    }
}

/// Runs a scenario to its end against a node shared with other tests.
fn in_browser(script: &str, base: &str, f: &Fixture) {
    tokio::task::block_in_place(|| Scenario::start(script, &scenario_env(base, f)).passes());
}

fn scenario_env<'a>(base: &'a str, f: &'a Fixture) -> [(&'static str, &'a str); 4] {
    [
        ("BASE", base),
        ("STAFF_TOKEN", &f.staff),
        ("CUSTOMER_TOKEN", &f.customer),
        ("RESTAURANT", &f.restaurant),
    ]
}

/// Both pages and every file they load, from the binary, under a policy that allows no inline
/// script and nothing from elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_screens_are_served_with_everything_they_load() {
    let server = sqlite();
    let get = |path: String| async move {
        let response = server
            .http()
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .expect("GET");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map_or(String::new(), |v| v.to_str().unwrap_or_default().to_owned())
        };
        let headers = [
            header("content-type"),
            header("cache-control"),
            header("content-security-policy"),
        ];
        (
            response.status(),
            headers,
            response.text().await.expect("body"),
        )
    };
    let mut files = Vec::new();
    for page in ["/kitchen", "/order"] {
        let (status, [content_type, cache, policy], html) = get(page.to_owned()).await;
        assert_eq!(status, 200, "{page}");
        assert!(
            content_type.starts_with("text/html"),
            "{page}: {content_type}"
        );
        assert_eq!(cache, "no-cache", "{page}");
        assert!(policy.contains("default-src 'self'"), "{page}: {policy}");
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "{page}: inline code"
        );
        files.extend(
            html.split("\"/assets/screens/")
                .skip(1)
                .filter_map(|rest| rest.split('"').next().map(str::to_owned)),
        );
    }
    let mut seen = Vec::new();
    while let Some(file) = files.pop() {
        if seen.contains(&file) {
            continue;
        }
        let (status, [content_type, cache, _], body) = get(format!("/assets/screens/{file}")).await;
        assert_eq!(status, 200, "{file}");
        assert_eq!(cache, "no-cache", "{file}");
        let expected = if file.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(content_type.starts_with(expected), "{file}: {content_type}");
        // ES module imports, `from "./client.js"`.
        files.extend(
            body.split("from \"./")
                .skip(1)
                .filter_map(|rest| rest.split('"').next().map(str::to_owned)),
        );
        seen.push(file);
    }
    assert!(seen.len() >= 4, "{seen:?}");
    let (status, _, _) = get("/assets/screens/..%2FCargo.toml".to_owned()).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_goes_from_the_customer_page_to_the_kitchen_and_back() {
    let server = sqlite();
    let f = server.fixture().await;
    in_browser("flow.mjs", &server.base, &f);
    for page in ["kitchen", "customer"] {
        for size in ["1280x800", "800x1280"] {
            let path = screenshots_dir().join(format!("{page}-{size}.png"));
            let bytes = std::fs::read(&path).unwrap_or_else(|_| panic!("{path:?} is saved"));
            assert!(bytes.starts_with(b"\x89PNG"), "{path:?} is a PNG");
            assert!(bytes.len() > 20_000, "{path:?} has something on it");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_tap_or_a_retry_orders_once() {
    let server = sqlite();
    let f = server.fixture().await;
    in_browser("double.mjs", &server.base, &f);
}

/// The orders a restaurant has, as its staff sees them.
async fn placed_orders(server: &Api, f: &Fixture) -> usize {
    let orders = server
        .gql(
            Some(&f.staff),
            "query($r: ID!) { orders(restaurantId: $r, statuses: [PLACED], first: 100) { edges { node { id } } } }",
            json!({"r": f.restaurant}),
        )
        .await;
    orders.at("orders.edges").as_array().map_or(0, Vec::len)
}

/// An app served from its own origin (a page on a second loopback port) places an order with
/// `fetch` and a token, and opens a graphql-transport-ws WebSocket: both work against a server
/// whose `ORDERHUB_CORS_ORIGINS` lists its origin; against one whose list lacks it, Chromium
/// blocks the fetch at the preflight (no order is placed) and the upgrade is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_on_another_origin_orders_only_when_its_origin_is_listed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    let html = std::fs::read_to_string(repo_file("tests/browser/cross_origin.html")).expect("page");
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let allowed = TestServer::start(
        &sqlite_url("cross_origin_allowed"),
        &[
            "--cors-origins",
            &format!("https://elsewhere.example,{origin}"),
        ],
    );
    let refused = TestServer::start(
        &sqlite_url("cross_origin_refused"),
        &["--cors-origins", "https://elsewhere.example"],
    );
    let (fa, fr) = (allowed.fixture().await, refused.fixture().await);
    let input = |f: &Fixture| f.order_input("from-another-origin", &[(0, 1)]).to_string();
    let (input_a, input_r) = (input(&fa), input(&fr));
    let page = format!("{origin}/");
    let env = [
        ("PAGE", page.as_str()),
        ("ALLOWED_BASE", &allowed.base),
        ("ALLOWED_TOKEN", &fa.customer),
        ("ALLOWED_INPUT", &input_a),
        ("REFUSED_BASE", &refused.base),
        ("REFUSED_TOKEN", &fr.customer),
        ("REFUSED_INPUT", &input_r),
    ];
    tokio::task::block_in_place(|| Scenario::start("cross_origin.mjs", &env).passes());
    assert_eq!(
        placed_orders(&allowed, &fa).await,
        1,
        "the listed app ordered"
    );
    assert_eq!(
        placed_orders(&refused, &fr).await,
        0,
        "the POST never reached the server"
    );
}

/// A free loopback port, so that a restarted node comes back where the browser left it.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[test]
fn the_kitchen_catches_up_after_a_restart_or_a_dead_link_with_every_order_once() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("screens-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let listen = format!("127.0.0.1:{}", free_port());
    let database = format!("sqlite://{}/orderhub.db", dir.display());
    let node_env = [
        ("ORDERHUB_LISTEN", listen.as_str()),
        ("DATABASE_URL", database.as_str()),
        ("ORDERHUB_JWT_SECRET", SECRET),
        ("ORDERHUB_NO_DEMO", "true"),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut node = NodeProcess::start(&dir, &node_env);
    let api = node.api();
    let f = runtime.block_on(api.fixture());
    let mut scenario = Scenario::start("reconnect.mjs", &scenario_env(&api.base, &f));

    // Connected: three orders, one of them accepted; four events.
    scenario.reached("kitchen-ready");
    let before: Vec<String> = (0..3)
        .map(|i| runtime.block_on(f.place(&api, &format!("before-{i}"))))
        .collect();
    runtime.block_on(f.advance(&api, &before[0], "ACCEPTED"));
    scenario.answer("GO 4");

    // The server goes away: the board says so.
    scenario.reached("caught-up");
    let status = node.terminate();
    assert!(status.success(), "{status:?}");
    drop(node);
    scenario.answer("GO");

    // Back on the same port; orders placed, moved and cancelled, most of it before the board
    // has reconnected: eight more events.
    scenario.reached("offline-seen");
    let node = NodeProcess::start(&dir, &node_env);
    assert_eq!(node.base, api.base, "the node came back on the same port");
    let after: Vec<String> = (0..4)
        .map(|i| runtime.block_on(f.place(&api, &format!("after-{i}"))))
        .collect();
    runtime.block_on(f.advance(&api, &before[0], "PREPARING"));
    runtime.block_on(f.advance(&api, &after[0], "ACCEPTED"));
    let cancelled = runtime.block_on(api.gql(
        Some(&f.staff),
        CANCEL,
        json!({"o": before[1], "r": "Sold out"}),
    ));
    cancelled.ok();
    let accepted = runtime.block_on(api.gql(
        Some(&f.staff),
        ADVANCE,
        json!({"o": after[1], "to": "ACCEPTED", "v": 1}),
    ));
    accepted.ok();
    scenario.answer("GO 12");

    // The browser's network goes away while the node stays up: three more events.
    scenario.reached("link-down");
    let late = runtime.block_on(f.place(&api, "while-link-down"));
    runtime.block_on(f.advance(&api, &late, "ACCEPTED"));
    runtime.block_on(f.advance(&api, &after[0], "PREPARING"));
    scenario.answer("GO 15");
    scenario.passes();
    drop(node);
}

/// Copies the SQLite store `orderhub.db` (with its WAL files, if any) of a stopped node from
/// `from` to `to`, replacing what `to` had.
fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("store dir");
    for name in ["orderhub.db", "orderhub.db-wal", "orderhub.db-shm"] {
        let _ = std::fs::remove_file(to.join(name));
        if from.join(name).exists() {
            std::fs::copy(from.join(name), to.join(name)).expect("copy the store");
        }
    }
}

/// A store restored from a backup is behind the kitchen board: the board's `after` is past the
/// newest event. The server answers HISTORY_GONE with the newest seq instead of silence, and the
/// board starts over from the store: it shows the orders placed since, exactly, and goes on
/// live.
#[test]
fn the_kitchen_screen_recovers_from_a_seq_past_the_newest_event() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("screens-restore-{}", std::process::id()));
    let backup = dir.join("backup");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let listen = format!("127.0.0.1:{}", free_port());
    let database = format!("sqlite://{}/orderhub.db", dir.display());
    let node_env = [
        ("ORDERHUB_LISTEN", listen.as_str()),
        ("DATABASE_URL", database.as_str()),
        ("ORDERHUB_JWT_SECRET", SECRET),
        ("ORDERHUB_NO_DEMO", "true"),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // The backup: the restaurant and one order, event 1.
    let mut node = NodeProcess::start(&dir, &node_env);
    let api = node.api();
    let f = runtime.block_on(api.fixture());
    let kept = runtime.block_on(f.place(&api, "kept"));
    assert!(node.terminate().success());
    drop(node);
    copy_store(&dir, &backup);

    // The board sees four more events, up to 5.
    let mut node = NodeProcess::start(&dir, &node_env);
    let mut scenario = Scenario::start("restore.mjs", &scenario_env(&api.base, &f));
    scenario.reached("kitchen-ready");
    for i in 0..3 {
        runtime.block_on(f.place(&api, &format!("lost-{i}")));
    }
    runtime.block_on(f.advance(&api, &kept, "ACCEPTED"));
    scenario.answer("GO 5");

    // The store is restored from the backup, and two orders are placed (events 2 and 3)
    // before or after the board reconnects with `after: 5`.
    scenario.reached("caught-up");
    assert!(node.terminate().success());
    drop(node);
    scenario.answer("GO");
    scenario.reached("restored");
    copy_store(&backup, &dir);
    let node = NodeProcess::start(&dir, &node_env);
    assert_eq!(node.base, api.base, "the node came back on the same port");
    let placed: Vec<String> = (0..2)
        .map(|i| runtime.block_on(f.place(&api, &format!("since-{i}"))))
        .collect();
    scenario.answer(&format!("GO {}", placed.join(",")));

    scenario.reached("live");
    let next = runtime.block_on(f.place(&api, "next"));
    scenario.answer(&format!("GO {next} 4"));
    scenario.passes();
    drop(node);
}

/// Creates a menu item in the fixture's restaurant as admin; returns its id.
async fn create_item(server: &Api, f: &Fixture, item: serde_json::Value) -> String {
    server
        .gql(
            Some(&f.admin),
            "mutation($r: ID!, $i: MenuItemInput!) { createMenuItem(restaurantId: $r, input: $i) { id } }",
            json!({"r": f.restaurant, "i": item}),
        )
        .await
        .str("createMenuItem.id")
}

/// In the fixture's restaurant (JPY: Japan's rules, prices with tax, rounded down), a ramen
/// with noodle firmness (one of two) and toppings (up to two of four), and a beer. A guest's
/// phone in English orders two ramen with firm noodles, egg and chashu, and a beer, to take
/// away: the kitchen ticket shows the options, the guest the taxes computed by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeout_ramen_with_options_shows_them_in_the_kitchen_and_its_taxes_to_the_guest() {
    let server = sqlite();
    let f = server.fixture().await;
    create_item(
        server,
        &f,
        json!({
            "name": "醤油ラーメン", "price": 950, "allergens": ["WHEAT", "EGG", "SOY"],
            "description": "鶏ガラ醤油",
            "translations": [
                {"locale": "en", "name": "Shoyu ramen", "description": "Chicken and soy"},
                {"locale": "zh-Hans", "name": "酱油拉面"}
            ],
            "optionGroups": [
                {"name": "麺のかたさ", "minSelected": 1, "maxSelected": 1,
                 "translations": [{"locale": "en", "name": "Noodles"}],
                 "options": [
                     {"name": "やわらかめ", "priceDelta": 0,
                      "translations": [{"locale": "en", "name": "Soft"}]},
                     {"name": "かため", "priceDelta": 0,
                      "translations": [{"locale": "en", "name": "Firm"}]}]},
                {"name": "トッピング", "minSelected": 0, "maxSelected": 2,
                 "translations": [{"locale": "en", "name": "Toppings"}],
                 "options": [
                     {"name": "味玉", "priceDelta": 150,
                      "translations": [{"locale": "en", "name": "Egg"}]},
                     {"name": "チャーシュー", "priceDelta": 250,
                      "translations": [{"locale": "en", "name": "Chashu"}]},
                     {"name": "のり", "priceDelta": 100,
                      "translations": [{"locale": "en", "name": "Nori"}]},
                     {"name": "メンマ", "priceDelta": 120,
                      "translations": [{"locale": "en", "name": "Bamboo shoots"}]}]}
            ]
        }),
    )
    .await;
    create_item(
        server,
        &f,
        json!({"name": "Beer", "price": 600, "taxCategory": "ALCOHOL", "allergens": ["WHEAT", "GLUTEN"]}),
    )
    .await;
    in_browser("options.mjs", &server.base, &f);

    // The server's account of the order agrees with the page.
    let orders = server
        .gql(
            Some(&f.staff),
            "query($r: ID!) { orders(restaurantId: $r, first: 10) { edges { node { \
             serviceMode grandTotal { amount } taxes { basisPoints base { amount } tax { amount } } \
             items { quantity options { name } } } } } }",
            json!({"r": f.restaurant}),
        )
        .await;
    let order = orders.at("orders.edges.0.node");
    assert_eq!(order["serviceMode"], json!("TAKEOUT"));
    assert_eq!(
        order["taxes"],
        json!([
            {"basisPoints": 800, "base": {"amount": 2700}, "tax": {"amount": 200}},
            {"basisPoints": 1000, "base": {"amount": 600}, "tax": {"amount": 54}}
        ])
    );
    assert_eq!(order["grandTotal"]["amount"], json!(3300));
    assert_eq!(
        order["items"][0]["options"],
        json!([{"name": "かため"}, {"name": "味玉"}, {"name": "チャーシュー"}])
    );
    for name in [
        "options-chooser-390x844",
        "options-customer-390x844",
        "options-kitchen-1280x800",
    ] {
        let path = screenshots_dir().join(format!("{name}.png"));
        let bytes = std::fs::read(&path).unwrap_or_else(|_| panic!("{path:?} is saved"));
        assert!(bytes.starts_with(b"\x89PNG"), "{path:?} is a PNG");
    }
}

/// The manager screen: an item with option groups created and edited, a conflict shown, a tax
/// rate and a table set; then the QR sheet, every code on it decoded from a screenshot to its
/// table's customer link, and one of them opened: the customer page shows the menu.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_sets_up_the_menu_and_prints_working_table_qr_codes() {
    let server = sqlite();
    let f = server.fixture().await;
    let manager = server.token(
        orderhub_actors::domain::Role::Manager,
        Some(&f.restaurant),
        None,
    );
    let mut env = scenario_env(&server.base, &f).to_vec();
    env.push(("MANAGER_TOKEN", &manager));
    tokio::task::block_in_place(|| Scenario::start("manage.mjs", &env).passes());
    for shot in [
        "manager-1280x800",
        "manager-800x1280",
        "qr-sheet-1280x800",
        "qr-sheet-print-794x1123",
    ] {
        let path = screenshots_dir().join(format!("{shot}.png"));
        let bytes = std::fs::read(&path).unwrap_or_else(|_| panic!("{path:?} is saved"));
        assert!(bytes.starts_with(b"\x89PNG"), "{path:?} is a PNG");
    }
}
