//! redis-server processes from the system's binary, each on a free loopback port, keeping
//! nothing on disk.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use super::{free_port, sh_quote, since, temp_dir, Watchdog, ATTEMPTS};

/// How long a start may take.
const PATIENCE: Duration = Duration::from_secs(20);

/// The running server's pid, in its temp dir, for the watchdog: present exactly while the
/// process is ours (written after the spawn, removed before it is reaped).
const PID_FILE: &str = "server.pid";

pub struct RedisServer {
    bin: PathBuf,
    /// The temp dir: `--dir` of the server, `redis.log` and the pid file.
    dir: PathBuf,
    port: u16,
    child: Mutex<Option<Child>>,
    /// Dropped after `Drop::drop` has stopped the server itself.
    _watchdog: Watchdog,
}

impl RedisServer {
    /// A redis-server (`--save "" --appendonly no`) on a free loopback port, spawned as a
    /// child; returns once it answers PING.
    pub fn start() -> RedisServer {
        let bin = bin().to_owned();
        let dir = temp_dir("redis");
        let pid_file = sh_quote(dir.join(PID_FILE));
        let watchdog = Watchdog::spawn(&format!(
            "if [ -f {pid_file} ]; then kill -9 \"$(cat {pid_file})\"; fi; rm -rf {}",
            sh_quote(&dir)
        ));
        let mut server = RedisServer {
            bin,
            dir,
            port: 0,
            child: Mutex::new(None),
            _watchdog: watchdog,
        };
        // Another process may take the port between `free_port` and the server's bind.
        for attempt in 1..=ATTEMPTS {
            server.port = free_port();
            let mut child = server.lock_child();
            match server.try_start(&mut child) {
                Ok(()) => break,
                Err(e) if attempt < ATTEMPTS && e.contains("Address already in use") => {}
                Err(e) => panic!("redis-server did not start on port {}: {e}", server.port),
            }
        }
        server
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills it (SIGKILL, as a crash would) and waits until it is gone. Does nothing if it is
    /// stopped already.
    pub fn stop(&self) {
        let mut child = self.lock_child();
        if let Some(mut running) = child.take() {
            let _ = running.kill();
            let _ = std::fs::remove_file(self.dir.join(PID_FILE));
            let _ = running.wait();
        }
    }

    /// Starts it again after `stop`, on the same port; returns once it answers PING. Does
    /// nothing if it runs already.
    pub fn start_again(&self) {
        let mut child = self.lock_child();
        if child.is_none() {
            if let Err(e) = self.try_start(&mut child) {
                panic!(
                    "redis-server did not start again on port {}: {e}",
                    self.port
                );
            }
        }
    }

    fn try_start(&self, slot: &mut Option<Child>) -> Result<(), String> {
        let log_path = self.dir.join("redis.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let logged = log.metadata().map_or(0, |m| m.len());
        let mut child = Command::new(&self.bin)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.bin.display()))?;
        let pid_file = self.dir.join(PID_FILE);
        let _ = std::fs::write(&pid_file, child.id().to_string());
        let deadline = Instant::now() + PATIENCE;
        let failure = loop {
            if answers_ping(self.port) {
                *slot = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                break format!("it exited ({status})");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                break format!("no answer to PING within {PATIENCE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = std::fs::remove_file(&pid_file);
        let _ = child.wait();
        let text = std::fs::read(&log_path).unwrap_or_default();
        Err(format!(
            "{failure}; its log:\n{}",
            String::from_utf8_lossy(since(&text, logged))
        ))
    }

    fn lock_child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
        // The watchdog goes next, as the field is dropped.
    }
}

/// Whether a server on `port` answers `PING` with `+PONG`.
fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

/// The redis-server binary: on PATH, else in the usual places. Panics with what to install if
/// there is none.
fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from))
            .map(|dir| dir.join("redis-server"))
            .find(|file| file.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "redis-server not found (looked on PATH and in /usr/bin, /usr/sbin, \
                     /usr/local/bin): install the Debian package redis-server (scripts/test \
                     does this)"
                )
            })
    })
}
