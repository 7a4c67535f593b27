//! redis-server processes from the system's binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::{free_port, kill, remove_dir, temp_dir, wait_until, watchdog};

pub struct RedisServer {
    dir: PathBuf,
    port: u16,
    child: Mutex<Option<Child>>,
    watchdog: Mutex<Option<u32>>,
}

impl RedisServer {
    /// A redis-server on a free loopback port, keeping nothing on disk.
    pub fn start() -> RedisServer {
        let server = RedisServer {
            dir: temp_dir("redis"),
            port: free_port(),
            child: Mutex::new(None),
            watchdog: Mutex::new(None),
        };
        server.start_again();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// Starts (again) on the same port; blocks until it answers PING.
    pub fn start_again(&self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server could not start ({e}): install the Debian package redis-server (scripts/test does this)")
            });
        let pid = child.id();
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        wait_until("redis-server answers PING", Duration::from_secs(20), || {
            self.answers()
        });
        let mut watchdog_pid = self.watchdog.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = watchdog_pid.take() {
            kill(old, "-TERM");
        }
        *watchdog_pid = Some(watchdog(&format!(
            "kill -9 {pid}; rm -rf {}",
            self.dir.display()
        )));
    }

    /// Kills it (as a crash would) and waits until it is gone.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(pid) = self
            .watchdog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            kill(pid, "-TERM");
        }
        remove_dir(&self.dir);
    }
}
