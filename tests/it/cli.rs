//! The binary as an operator meets it.

use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::{NodeProcess, BIN};
use crate::ws_client::{WsClient, RESTAURANT_EVENTS, TRANSPORT_WS};

fn run(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("ORDERHUB_JWT_SECRET");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("orderhub runs")
}

pub(crate) fn scratch(name: &str) -> std::path::PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Bad configuration ends with one clear line on stderr and a failure status, no backtrace.
#[test]
fn bad_configuration_fails_with_one_line() {
    let dir = scratch("bad-config");
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let unreachable = format!("postgres://postgres@127.0.0.1:{closed_port}/x?connect_timeout=2");
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[("DATABASE_URL", "oracle://localhost/x")],
            "DATABASE_URL must start with",
        ),
        (
            &[("DATABASE_URL", &unreachable)],
            "cannot connect to the database",
        ),
        (&[("ORDERHUB_JWT_SECRET", "short")], "at least 32 bytes"),
        (&[("ORDERHUB_LISTEN", "not-an-address")], "invalid value"),
        (
            &[("ORDERHUB_CORS_ORIGINS", "*")],
            "wildcards (`*`) are not accepted",
        ),
        (
            &[(
                "ORDERHUB_CORS_ORIGINS",
                "https://a.example,https://b.example/",
            )],
            "\"https://b.example/\" is not an origin (an origin has no path",
        ),
    ];
    for (env, expected) in cases {
        let output = run(&[], env, &dir);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{env:?} must fail");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "{stderr}"
        );
    }
}

#[test]
fn schema_prints_the_served_sdl() {
    let output = run(&["schema"], &[], &scratch("schema"));
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        orderhub::graphql::sdl()
    );
}

fn printed(node: &NodeProcess, label: &str) -> Option<String> {
    node.stdout_lines.iter().find_map(|line| {
        line.trim()
            .strip_prefix(label)
            .map(|rest| rest.trim().to_owned())
    })
}

/// The README's promise: no configuration, a demo restaurant, a staff token that works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_seeds_a_demo_and_tokens_survive_restarts() {
    let dir = scratch("first-start");
    let first = NodeProcess::start(&dir, &[]);
    assert!(
        dir.join("orderhub.db").exists(),
        "the embedded default is a SQLite file here"
    );
    let staff = printed(&first, "staff token:").expect("a staff token is printed");
    assert!(printed(&first, "GraphiQL:").is_some());
    let http = reqwest::Client::new();
    let gql = |base: String, query: &'static str, variables: serde_json::Value, token: String| {
        let http = http.clone();
        async move {
            http.post(format!("{base}/graphql"))
                .bearer_auth(token)
                .json(&json!({"query": query, "variables": variables}))
                .send()
                .await
                .expect("POST")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        }
    };
    let home = http
        .get(format!("{}/", first.base))
        .send()
        .await
        .expect("GET /");
    assert_eq!(home.status(), 200, "GraphiQL is served at /");

    // Both screens, with their token in the fragment (which never reaches the server's logs).
    let customer = first
        .stdout_lines
        .iter()
        .skip_while(|line| !line.contains("customer token (Table 1"))
        .nth(1)
        .map(|line| line.trim().to_owned())
        .expect("a customer token is printed");
    for (label, path, token) in [
        ("Kitchen display:", "/kitchen", &staff),
        ("Customer page (Table 1):", "/order", &customer),
    ] {
        let url = printed(&first, label).unwrap_or_else(|| panic!("{label} is printed"));
        assert_eq!(url, format!("{}{path}#token={token}", first.base));
        let page = http
            .get(format!("{}{path}", first.base))
            .send()
            .await
            .expect("GET a screen");
        assert_eq!(page.status(), 200, "{path}");
        let content_type = page.headers()[reqwest::header::CONTENT_TYPE].clone();
        assert!(content_type
            .to_str()
            .is_ok_and(|t| t.starts_with("text/html")));
        assert!(page.text().await.expect("body").contains("<!doctype html>"));
    }

    // Through the staff token alone: find the restaurant, a table and the menu.
    let restaurant = first
        .stdout_lines
        .iter()
        .find_map(|l| {
            l.split_once("mint more with `orderhub token --role staff --restaurant ")
                .map(|(_, r)| r.trim_end_matches("`.").to_owned())
        })
        .expect("the restaurant id is printed");
    let menu = gql(
        first.base.clone(),
        "query($r: ID!) { restaurant(id: $r) { menu { id available optionGroups { id } } tables { id } timeZone businessDayStartsAt } }",
        json!({"r": restaurant}),
        staff.clone(),
    )
    .await;
    // A ramen bar in Tokyo: its business day turns at 04:00 there.
    assert_eq!(
        menu["data"]["restaurant"]["timeZone"], "Asia/Tokyo",
        "{menu}"
    );
    assert_eq!(
        menu["data"]["restaurant"]["businessDayStartsAt"], "04:00",
        "{menu}"
    );
    // A dish without choices to make (the ramen wants its noodle firmness).
    let item = menu["data"]["restaurant"]["menu"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|dish| dish["optionGroups"] == json!([]) && dish["available"] == json!(true))
        .and_then(|dish| dish["id"].as_str())
        .expect("menu")
        .to_owned();
    let table = menu["data"]["restaurant"]["tables"][0]["id"]
        .as_str()
        .expect("tables")
        .to_owned();
    let placed = gql(
        first.base.clone(),
        "mutation($i: PlaceOrderInput!) { placeOrder(input: $i) { id status number } }",
        json!({"i": {"restaurantId": restaurant, "tableId": table, "items": [{"menuItemId": item, "quantity": 1}], "idempotencyKey": "readme"}}),
        staff.clone(),
    )
    .await;
    assert_eq!(placed["data"]["placeOrder"]["status"], "PLACED", "{placed}");
    let order = placed["data"]["placeOrder"]["id"]
        .as_str()
        .expect("order id")
        .to_owned();
    let advanced = gql(
        first.base.clone(),
        "mutation($o: ID!) { advanceOrder(orderId: $o, to: ACCEPTED) { status } }",
        json!({"o": order}),
        staff.clone(),
    )
    .await;
    assert_eq!(
        advanced["data"]["advanceOrder"]["status"], "ACCEPTED",
        "{advanced}"
    );
    // The manager's link and token: the token shapes its restaurant (the page comes later).
    let manager = printed(&first, "manager token:").expect("a manager token is printed");
    assert_eq!(
        printed(&first, "Manager screen:"),
        Some(format!("{}/manage#token={manager}", first.base))
    );
    let created = gql(
        first.base.clone(),
        "mutation($r: ID!) { createTable(restaurantId: $r, name: \"Terrace\") { name } }",
        json!({"r": restaurant}),
        manager,
    )
    .await;
    assert_eq!(
        created["data"]["createTable"]["name"], "Terrace",
        "{created}"
    );
    drop(first);

    // Restarted: no second demo, and the earlier token still verifies.
    let second = NodeProcess::start(&dir, &[]);
    assert!(
        printed(&second, "staff token:").is_none(),
        "the demo is created once"
    );
    let read = gql(
        second.base.clone(),
        "query($o: ID!) { order(id: $o) { status } }",
        json!({"o": order}),
        staff.clone(),
    )
    .await;
    assert_eq!(read["data"]["order"]["status"], "ACCEPTED", "{read}");

    // `orderhub token` signs with the same stored secret.
    let minted = run(
        &["token", "--role", "staff", "--restaurant", &restaurant],
        &[],
        &dir,
    );
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8_lossy(&minted.stdout).trim().to_owned();
    let with_minted = gql(
        second.base.clone(),
        "query($o: ID!) { order(id: $o) { status } }",
        json!({"o": order}),
        token,
    )
    .await;
    assert_eq!(
        with_minted["data"]["order"]["status"], "ACCEPTED",
        "{with_minted}"
    );
    let minted_manager = run(
        &["token", "--role", "manager", "--restaurant", &restaurant],
        &[],
        &dir,
    );
    assert!(
        minted_manager.status.success(),
        "{}",
        String::from_utf8_lossy(&minted_manager.stderr)
    );
    let renamed = gql(
        second.base.clone(),
        "mutation($r: ID!) { updateRestaurant(restaurantId: $r, input: {name: \"Ramen Bar\"}) { name } }",
        json!({"r": restaurant}),
        String::from_utf8_lossy(&minted_manager.stdout).trim().to_owned(),
    )
    .await;
    assert_eq!(
        renamed["data"]["updateRestaurant"]["name"], "Ramen Bar",
        "{renamed}"
    );
    let manager_without_restaurant = run(&["token", "--role", "manager"], &[], &dir);
    assert!(!manager_without_restaurant.status.success());
    assert!(String::from_utf8_lossy(&manager_without_restaurant.stderr).contains("restaurant_id"));
    let customer_without_table = run(
        &["token", "--role", "customer", "--restaurant", &restaurant],
        &[],
        &dir,
    );
    assert!(!customer_without_table.status.success());
    assert!(String::from_utf8_lossy(&customer_without_table.stderr).contains("table_id"));
}

/// SIGTERM: WebSockets are told to go elsewhere (1001) and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_websockets_with_going_away_and_exits_cleanly() {
    let dir = scratch("sigterm");
    let mut node = NodeProcess::start(&dir, &[("ORDERHUB_JWT_SECRET", crate::support::SECRET)]);
    let api = node.api();
    let f = api.fixture().await;
    let mut kitchen = WsClient::ready(&api, TRANSPORT_WS, &f.staff).await;
    // From the menu's last event: the order below may commit before the subscription is live.
    kitchen
        .subscribe(
            "k",
            RESTAURANT_EVENTS,
            json!({"r": f.restaurant, "after": f.seq}),
        )
        .await;
    f.place(&api, "before-shutdown").await;
    assert_eq!(
        kitchen.next_result("k").await["data"]["restaurantEvents"]["seq"],
        f.seq + 1
    );
    let status = tokio::task::spawn_blocking(move || node.terminate())
        .await
        .expect("terminate");
    kitchen.expect_close(1001).await;
    assert!(status.success(), "{status:?}");
}
