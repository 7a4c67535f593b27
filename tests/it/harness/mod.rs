//! Real servers for the tests, started from the system's binaries on free loopback ports in
//! fresh temporary directories, and stopped again — also when the test process ends without
//! dropping them (servers kept in statics never are) or dies from a signal: every server has a
//! watchdog process that stops it and removes its directory once the test process is gone.
//! Only processes started here are ever stopped.
#![allow(dead_code)]

pub mod mariadb;
pub mod postgres;
pub mod prometheus;
pub mod redis;

use std::ffi::OsStr;
use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// A new empty directory (mode 0700) under the system's temp dir.
pub fn temp_dir(prefix: &str) -> PathBuf {
    temp_dir_in(&std::env::temp_dir(), prefix)
}

/// A new empty directory (mode 0700) under `base`, named after the test process; never one
/// that already exists.
pub fn temp_dir_in(base: &Path, prefix: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = base.join(format!(
            "orderhub-{prefix}-{}-{}-{nanos:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("cannot create a temp dir in {}: {e}", base.display()),
        }
    }
}

/// How many free ports a server start tries, as another process may take the port between
/// `free_port` and the server's bind.
const ATTEMPTS: usize = 5;

/// What was appended to a log after it was `len` bytes long.
fn since(log: &[u8], len: u64) -> &[u8] {
    usize::try_from(len)
        .ok()
        .and_then(|len| log.get(len..))
        .unwrap_or_default()
}

/// Polls `ready` every 50 ms until it holds; panics after `timeout`, naming `what`.
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the test process runs as root (PostgreSQL then has to run as `postgres`).
pub fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| match std::fs::metadata("/proc/self") {
        Ok(meta) => meta.uid() == 0,
        Err(_) => Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0"),
    })
}

/// `s` quoted for `sh`.
pub fn sh_quote(s: impl AsRef<OsStr>) -> String {
    format!("'{}'", s.as_ref().to_string_lossy().replace('\'', r"'\''"))
}

/// A detached `sh` process that runs a cleanup script once the test process has exited (or is
/// a zombie), polling every 0.5 s. It runs in its own process group, so a Ctrl-C aimed at the
/// tests does not take it down with them. Dropping it ends it without running the cleanup:
/// its owner drops it after cleaning up itself.
pub struct Watchdog {
    child: Child,
}

impl Watchdog {
    pub fn spawn(cleanup: &str) -> Watchdog {
        let script = format!(
            r#"trap '' HUP INT
p={parent}
while kill -0 "$p" 2>/dev/null; do
  s=$(cat /proc/"$p"/stat 2>/dev/null)
  case "${{s##*) }}" in Z*) break ;; esac
  sleep 0.5
done
{cleanup}"#,
            parent = std::process::id()
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("the watchdog (sh) starts");
        Watchdog { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
