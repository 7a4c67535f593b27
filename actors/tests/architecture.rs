//! Architecture invariants that a grep can check, as ARCHITECTURE.md states them. They read
//! the workspace's files, not just this crate's: this crate's tests build in seconds, so this is
//! the cheapest place to keep the whole layout honest. Each test names the invariant it holds.

use std::fs;
use std::path::{Path, PathBuf};

fn actors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn repo_dir() -> PathBuf {
    actors_dir()
        .parent()
        .expect("actors/ sits in the workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `text` has `word` as a whole identifier (case-sensitive).
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident_char) && !after.is_some_and(is_ident_char)
    })
}

/// The text without whitespace, so that a call reads the same however rustfmt wrapped it.
fn squeezed(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The adapter crates: HTTP, GraphQL, SQL, Redis, WebSocket, tokens, and the adapter crate
/// itself. The core may depend on none of them.
const ADAPTER_CRATES: &[&str] = &[
    "axum",
    "async-graphql",
    "async-graphql-axum",
    "hyper",
    "hyper-util",
    "tower",
    "tower-http",
    "sqlx",
    "redis",
    "tungstenite",
    "tokio-tungstenite",
    "jsonwebtoken",
    "reqwest",
    "orderhub",
];

/// The same crates as they are named in Rust code.
const ADAPTER_PATHS: &[&str] = &[
    "axum",
    "async_graphql",
    "hyper",
    "tower",
    "tower_http",
    "sqlx",
    "redis",
    "tungstenite",
    "jsonwebtoken",
    "reqwest",
];

/// Invariant "the core imports no adapter": `actors/Cargo.toml` names no adapter crate in any
/// dependency table, and its only path dependency is the crate itself (for `testing`).
#[test]
fn the_core_depends_on_no_adapter_crate() {
    let manifest = read(&actors_dir().join("Cargo.toml"));
    let mut section = String::new();
    let mut dependencies = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            // `[dependencies.axum]` names the crate in the header.
            if let Some((table, name)) = section.rsplit_once('.') {
                if table.ends_with("dependencies") {
                    dependencies.push((name.trim_matches('"').to_owned(), String::new()));
                }
            }
            continue;
        }
        if !section.ends_with("dependencies") || line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((name, spec)) = line.split_once('=') {
            let name = name.trim().split('.').next().unwrap_or_default();
            dependencies.push((name.trim_matches('"').to_owned(), spec.to_owned()));
        }
    }
    assert!(
        dependencies.iter().any(|(name, _)| name == "ractor"),
        "the manifest was not read: {dependencies:?}"
    );
    for (name, spec) in &dependencies {
        assert!(
            !ADAPTER_CRATES.contains(&name.as_str()),
            "actors/Cargo.toml depends on the adapter crate {name}"
        );
        if let Some((_, path)) = spec.split_once("path") {
            let path = path.trim_start_matches([' ', '=']).split('"').nth(1);
            assert_eq!(
                path,
                Some("."),
                "{name}: the core's only path dependency is itself"
            );
        }
    }
}

/// The code of a Rust file without its `//` comments (prose may name anything).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Invariant "the core imports no adapter": no file under `actors/src` names an adapter crate
/// in code (a comment may mention Redis; `redis::` would be an import).
#[test]
fn no_core_source_names_an_adapter() {
    let files = rust_files(&actors_dir().join("src"));
    assert!(files.len() > 10, "actors/src was not read: {files:?}");
    for file in files {
        let text = code_of(&read(&file));
        for path in ADAPTER_PATHS {
            assert!(
                !has_word(&text, path),
                "{} names the adapter crate `{path}`",
                file.display()
            );
        }
        assert!(
            !text.contains("orderhub::"),
            "{} uses the adapter crate `orderhub`",
            file.display()
        );
    }
}

/// Invariant "the actor tree": each registry starts one supervisor, with no parent; restaurant
/// and channel actors are spawned linked under their registry's supervisor, subscription actors
/// under their channel; in the adapters, the Redis bus's supervisor and its connection actor
/// linked under it; nothing else spawns an actor.
#[test]
fn the_actor_tree_is_the_documented_one() {
    let actors = actors_dir().join("src");
    // The one supervisor, generic over its registry; both registries start it.
    let spawns = [
        (
            "supervisor.rs",
            "ActorRuntime::spawn_instant(None,Supervisor::<R>::new(),registry)",
        ),
        (
            "restaurant/registry.rs",
            "Actor::spawn_linked(None,RestaurantActor,(restaurant.clone(),self.inner.deps.clone()),self.inner.supervisor.get_cell(),)",
        ),
        (
            "channel/registry.rs",
            "Actor::spawn_linked(None,ChannelActor,arguments,supervisor)",
        ),
        (
            "channel/actor.rs",
            "Actor::spawn_linked(None,SubscriptionActor,arguments,myself.get_cell())",
        ),
    ];
    for (file, call) in spawns {
        let text = squeezed(&read(&actors.join(file)));
        assert_eq!(text.matches(call).count(), 1, "{file}: {call}");
    }
    let channel_registry = squeezed(&read(&actors.join("channel/registry.rs")));
    assert!(
        channel_registry.contains("letsupervisor=self.inner.supervisor.get_cell();"),
        "a channel's parent is not its registry's supervisor"
    );
    for registry in ["restaurant/registry.rs", "channel/registry.rs"] {
        let text = squeezed(&read(&actors.join(registry)));
        assert_eq!(
            text.matches("supervisor::start(registry.clone(),shutdown")
                .count(),
            1,
            "{registry} does not start its supervisor"
        );
    }
    // The one actor tree in the adapters: the node's Redis pub/sub connection, supervised.
    let adapters = repo_dir().join("src");
    let adapter_spawns = [
        ("bus/redis.rs", "Actor::spawn(None,PubSubSupervisor,"),
        ("bus/redis.rs", "Actor::spawn_linked(None,PubSubActor,"),
    ];
    for (file, call) in adapter_spawns {
        let text = squeezed(&read(&adapters.join(file)));
        assert_eq!(text.matches(call).count(), 1, "src/{file}: {call}");
    }
    let mut sources = rust_files(&actors);
    sources.extend(rust_files(&adapters));
    let total: usize = sources
        .iter()
        .map(|file| {
            let text = squeezed(&read(file));
            [
                "Actor::spawn(",
                "Actor::spawn_linked(",
                "ActorRuntime::spawn",
            ]
            .iter()
            .map(|call| text.matches(call).count())
            .sum::<usize>()
        })
        .sum();
    assert_eq!(
        total,
        spawns.len() + adapter_spawns.len(),
        "an actor is spawned outside the tree"
    );
}

/// Invariant "every command transaction locks its restaurant's row first": the store opens a
/// transaction in one place (`TxConnection::begin`, called once, with the dialect's `BEGIN`),
/// and its first statement is `sql::lock_and_look_up` with the dialect's `LOCK`, which locks
/// the restaurant's row until commit: `FOR UPDATE OF r` on PostgreSQL, `FOR UPDATE` on MySQL,
/// and on SQLite the write lock that `BEGIN IMMEDIATE` took.
#[test]
fn a_command_transaction_locks_its_restaurant_first() {
    let src = repo_dir().join("src");
    let opened: Vec<PathBuf> = rust_files(&src)
        .into_iter()
        .filter(|file| {
            let text = read(file);
            text.contains(".begin()") || text.contains("TransactionManager>::begin")
        })
        .collect();
    assert_eq!(
        opened,
        [src.join("store/backend.rs")],
        "transactions are opened elsewhere"
    );
    let backend = read(&src.join("store/backend.rs"));
    assert!(!backend.contains(".begin()"), "a second way to open one");
    assert_eq!(backend.matches("TransactionManager>::begin").count(), 1);
    assert_eq!(backend.matches("TxConnection::begin(").count(), 1);
    let after_begin = &backend[backend.find("TxConnection::begin(").expect("begin")..];
    assert!(
        after_begin.starts_with("TxConnection::begin(conn, dialect::BEGIN)"),
        "a transaction begun otherwise than its dialect says"
    );
    let built = after_begin
        .find("let statement =\n                    dialect::built(sql::lock_and_look_up(shape, dialect::key_is, dialect::LOCK));")
        .expect("the lock statement");
    let run = after_begin
        .find("lock_and_look_up(&mut tx, &statement, restaurant, &lookup)")
        .expect("the lock statement run");
    assert!(
        built < run && !after_begin[..run].contains("sqlx::query"),
        "the first statement of a transaction is not the lock"
    );
    let dialects = read(&src.join("store/dialect.rs"));
    let constants = |name: &str| -> Vec<String> {
        dialects
            .split(&format!("pub const {name}: "))
            .skip(1)
            .map(|rest| rest[..rest.find(';').expect("the constant ends")].to_owned())
            .collect()
    };
    assert_eq!(
        constants("LOCK"),
        [
            "&str = \" FOR UPDATE OF r\"",
            "&str = \"\"",
            "&str = \" FOR UPDATE\""
        ],
        "PostgreSQL, SQLite, MySQL"
    );
    assert_eq!(
        constants("BEGIN"),
        [
            "Option<&str> = None",
            "Option<&str> = Some(\"BEGIN IMMEDIATE\")",
            "Option<&str> = None"
        ],
        "PostgreSQL, SQLite, MySQL"
    );
    let sql = read(&src.join("store/sql.rs"));
    assert!(!sql.contains("BEGIN"), "a transaction opened in SQL text");
}

/// Invariant "events are published only after commit": the core publishes in one place,
/// `commit_and_publish`, after the commit returned.
#[test]
fn events_are_published_only_after_commit() {
    let actors = actors_dir().join("src");
    let publishing: Vec<PathBuf> = rust_files(&actors)
        .into_iter()
        .filter(|file| !file.ends_with("testing.rs") && read(file).contains(".publish("))
        .collect();
    let actor = actors.join("restaurant/actor.rs");
    assert_eq!(publishing, std::slice::from_ref(&actor));
    let text = read(&actor);
    assert_eq!(text.matches(".publish(").count(), 1);
    let body = text
        .split("async fn commit_and_publish(")
        .nth(1)
        .expect("commit_and_publish in the restaurant actor");
    let body = &body[..body
        .find("\n    }\n")
        .expect("the end of commit_and_publish")];
    let committed = body.find("tx.commit().await?").expect("a commit");
    let published = body.find(".publish(").expect("the publication");
    assert!(committed < published, "published before commit");
}

/// Invariant "error codes are one closed set": every `code` that the adapters write into a
/// response (`extensions.set("code", …)`, `"code": …`) is an `ErrorCode`'s `as_str()`.
#[test]
fn every_code_a_transport_writes_is_an_error_code() {
    let mut writes = 0;
    for file in rust_files(&repo_dir().join("src")) {
        for (number, line) in read(&file).lines().enumerate() {
            let writes_code = line.contains("set(\"code\"") || line.contains("\"code\":");
            if !writes_code {
                continue;
            }
            writes += 1;
            assert!(
                line.contains(".as_str()"),
                "{}:{}: a code that is not an ErrorCode: {}",
                file.display(),
                number + 1,
                line.trim()
            );
        }
    }
    assert!(writes >= 3, "found only {writes} places that write a code");
}

/// Invariant "no std MutexGuard lives across an .await": clippy's `await_holding_lock` (on by
/// default) fails `scripts/test`, which denies warnings, and nothing allows it.
#[test]
fn no_lock_guard_may_cross_an_await() {
    let script = read(&repo_dir().join("scripts/test"));
    assert!(
        script.contains("cargo clippy --workspace --all-targets --locked -- -D warnings"),
        "scripts/test no longer denies clippy's warnings"
    );
    let repo = repo_dir();
    let mut files = rust_files(&repo.join("src"));
    files.extend(rust_files(&repo.join("actors")));
    files.extend(rust_files(&repo.join("bench")));
    // This file names the lint to explain itself.
    files.retain(|file| !file.ends_with("actors/tests/architecture.rs"));
    for file in files {
        assert!(
            !read(&file).contains("await_holding_lock"),
            "{} allows a lock across an await",
            file.display()
        );
    }
}

/// ARCHITECTURE.md stays true to the tree: every path it names in backticks exists, and every
/// `file.rs::name` it cites as a test is a function of that file.
#[test]
fn every_path_and_test_named_in_architecture_md_exists() {
    let repo = repo_dir();
    let doc = read(&repo.join("ARCHITECTURE.md"));
    let spans: Vec<&str> = doc.split('`').skip(1).step_by(2).collect();
    let (mut paths, mut tests) = (0, 0);
    for span in spans {
        if span.contains(char::is_whitespace) || span.starts_with('/') {
            continue;
        }
        if let Some((file, name)) = span.split_once(".rs::") {
            let file = repo.join(format!("{file}.rs"));
            let is_fn = has_word(&read(&file), &format!("fn {name}"));
            assert!(is_fn, "ARCHITECTURE.md cites `{span}`, which is not there");
            tests += 1;
            continue;
        }
        let is_path = span.contains('/')
            || [".rs", ".md", ".toml", ".graphql", ".mjs", ".sql"]
                .iter()
                .any(|ext| span.ends_with(ext));
        if is_path && !span.contains("::") {
            assert!(
                repo.join(span).exists(),
                "ARCHITECTURE.md names `{span}`, which does not exist"
            );
            paths += 1;
        }
    }
    assert!(
        paths > 50 && tests > 10,
        "only {paths} paths and {tests} tests found"
    );
}

/// Code lines (comments and SQL aside) of the workspace's non-test sources that compare a seq.
fn seq_comparisons() -> Vec<(String, String)> {
    let repo = repo_dir();
    let mut found = Vec::new();
    for dir in ["src", "actors/src"] {
        for file in rust_files(&repo.join(dir)) {
            let name = file
                .strip_prefix(&repo)
                .expect("in the repo")
                .display()
                .to_string();
            if name.ends_with("testing.rs") {
                continue;
            }
            let text = read(&file);
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for line in code.lines().map(str::trim) {
                let compares = ["seq <", "seq >", "seq, _| *seq >"]
                    .iter()
                    .any(|pattern| line.contains(pattern));
                if compares && !line.starts_with("//") && !line.contains("WHERE") {
                    found.push((name.clone(), line.to_owned()));
                }
            }
        }
    }
    found
}

/// Invariant: seq is checked in one place. A channel puts its restaurant's events in order
/// (`ChannelState::accept`, `release_pending`); a subscription drops what it has seen
/// (`SubscriberState::deliver`); a replay reads a bounded range. Nothing else compares seqs.
#[test]
fn seq_is_checked_in_one_place() {
    let allowed = [
        "actors/src/channel/actor.rs",
        "actors/src/channel/subscriber.rs",
        "src/graphql/live.rs",
    ];
    let found = seq_comparisons();
    let elsewhere: Vec<_> = found
        .iter()
        .filter(|(file, _)| !allowed.contains(&file.as_str()))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "seq compared outside its place: {elsewhere:?}"
    );
    let per_file = |file: &str| found.iter().filter(|(f, _)| f == file).count();
    assert_eq!(per_file("actors/src/channel/subscriber.rs"), 1, "{found:?}");
    assert_eq!(
        per_file("src/graphql/live.rs"),
        1,
        "only the replay's bound: {found:?}"
    );
}

/// Invariant: `src/ws` has no import circle. The outbox (with the types it queues) imports
/// neither the cohort nor the connection; the cohort does not import the connection.
#[test]
fn the_websocket_modules_import_one_way() {
    let ws = repo_dir().join("src/ws");
    let imports = |file: &str, module: &str| {
        let text = read(&ws.join(file));
        text.contains(&format!("super::{module}")) || text.contains(&format!("ws::{module}"))
    };
    assert!(!imports("outbox.rs", "connection") && !imports("outbox.rs", "cohort"));
    assert!(!imports("cohort.rs", "connection"));
    assert!(imports("connection.rs", "cohort") && imports("cohort.rs", "outbox"));
}
