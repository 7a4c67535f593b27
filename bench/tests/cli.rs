//! The `orderhub-bench` binary as `scripts/bench` runs it: the wire-limit server, and a small
//! fanout and stall against it, each writing its JSON report.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_orderhub-bench");
const SECRET: &str = "bench-cli-tests-secret-0123456789abcdef";

/// The wire server this test started; stopped by its own PID when dropped.
struct WireServer {
    child: Child,
    url: String,
}

impl WireServer {
    fn start() -> Self {
        let mut child = Command::new(BIN)
            .args(["wire-server", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the wire server starts");
        let stdout = child.stdout.take().expect("its stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("it prints its address");
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        Self { child, url }
    }
}

impl Drop for WireServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one scenario against `url` and returns its JSON report.
fn run(url: &str, scenario: &[&str]) -> Value {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "bench-cli-{}-{}.json",
        scenario[0],
        std::process::id()
    ));
    let output = Command::new(BIN)
        .args(scenario)
        .args(["--url", url, "--out"])
        .arg(&out)
        .env("ORDERHUB_JWT_SECRET", SECRET)
        .output()
        .expect("the generator runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{scenario:?} failed: {stderr}");
    assert!(!stderr.trim().is_empty(), "no summary line on stderr");
    let text = std::fs::read_to_string(&out).expect("the report");
    let _ = std::fs::remove_file(&out);
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

#[test]
fn a_fanout_against_the_wire_server_is_clean() {
    let wire = WireServer::start();
    let report = run(
        &wire.url,
        &[
            "fanout",
            "--subscribers",
            "3",
            "--orders",
            "10",
            "--rate",
            "0",
        ],
    );
    assert_eq!(report["subscribed"], 3, "{report}");
    assert_eq!(report["complete"], 3, "{report}");
    assert_eq!(report["deliveries"]["received"], 30, "{report}");
    assert_eq!(report["deliveries"]["missing"], 0, "{report}");
}

#[test]
fn a_stall_reports_the_run_with_and_without_stalled_subscribers() {
    let wire = WireServer::start();
    let report = run(
        &wire.url,
        &[
            "stall",
            "--subscribers",
            "2",
            "--orders",
            "10",
            "--rate",
            "0",
            "--stalled",
            "1",
            "--hold",
            "0.5",
            "--drain",
            "2",
        ],
    );
    assert_eq!(report["scenario"], "stall", "{report}");
    assert_eq!(report["without_stalls"]["complete"], 2, "{report}");
    // The healthy subscribers of the run with a stalled one still get every event.
    assert_eq!(report["with_stalls"]["complete"], 2, "{report}");
    assert!(report["healthy_p99_ratio"].as_f64().is_some(), "{report}");
}
