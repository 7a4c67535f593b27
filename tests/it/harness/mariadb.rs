//! MariaDB servers, and replicas of them, from the system's MariaDB binaries: each one its own
//! data dir (`mariadb-install-db`) in a temp dir, listening on a free loopback port and on a
//! Unix socket in that dir. Never the machine's own MariaDB service. As root, `mariadbd` runs
//! with `--user=root` (it refuses root otherwise); as anyone else, as that user.
//!
//! Every server has the binary log and GTIDs on and a distinct `server_id`; a replica follows
//! its primary with `MASTER_USE_GTID=slave_pos` and a `MASTER_DELAY`. Grants are real (no
//! `--skip-grant-tables`): the replica logs in as a replication user, orderhub as `orderhub`.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{free_port, is_root, sh_quote, temp_dir, wait_until, Watchdog, ATTEMPTS};

/// How long a start, a stop or a replica's catching up may take.
const PATIENCE: Duration = Duration::from_secs(60);

/// The account orderhub connects with, on the primary and (replicated) on the replica.
const USER: &str = "orderhub";
const PASSWORD: &str = "orderhub-test";
/// The account the replica reads the primary's binary log with.
const REPLICATION_USER: &str = "replicator";
const REPLICATION_PASSWORD: &str = "replicator-test";

pub struct MariaDbServer {
    /// The temp dir: `data/`, `error.log`, `mariadbd.pid` and the socket `mariadb.sock`.
    dir: PathBuf,
    port: u16,
    server_id: u32,
    /// The server process while it runs; the lock also keeps stops and starts apart.
    process: Mutex<Option<Child>>,
    /// Dropped after `Drop::drop` has stopped the server itself.
    _watchdog: Watchdog,
}

impl MariaDbServer {
    /// A new primary (binary log, GTIDs, durability off), started and accepting connections,
    /// with the `orderhub` account (all privileges, from 127.0.0.1) and a replication account.
    pub fn start() -> MariaDbServer {
        let mut server = MariaDbServer::new("mariadb");
        server.first_start();
        server.sql(
            "",
            &format!(
                "CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
                 GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'127.0.0.1'; \
                 CREATE USER '{REPLICATION_USER}'@'127.0.0.1' IDENTIFIED BY '{REPLICATION_PASSWORD}'; \
                 GRANT REPLICATION SLAVE ON *.* TO '{REPLICATION_USER}'@'127.0.0.1'"
            ),
        );
        server
    }

    /// A replica of this server that applies each transaction `apply_delay` (whole seconds)
    /// after the primary committed it; returns once both of its threads run. It starts from
    /// the primary's first GTID, so it gets the accounts and every database through
    /// replication.
    pub fn start_replica(&self, apply_delay: Duration) -> MariaDbServer {
        let mut replica = MariaDbServer::new("mariadb-replica");
        replica.first_start();
        replica.sql(
            "",
            &format!(
                "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, \
                 MASTER_USER='{REPLICATION_USER}', MASTER_PASSWORD='{REPLICATION_PASSWORD}', \
                 MASTER_USE_GTID=slave_pos, MASTER_DELAY={}; START SLAVE",
                self.port,
                apply_delay.as_secs()
            ),
        );
        wait_until(
            &format!("the replica on port {} replicates", replica.port),
            PATIENCE,
            || {
                replica
                    .try_sql("", "SHOW SLAVE STATUS")
                    .is_ok_and(|status| {
                        // Tab-separated: Slave_IO_Running and Slave_SQL_Running are two "Yes".
                        status.split('\t').filter(|field| *field == "Yes").count() >= 2
                    })
            },
        );
        replica
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://orderhub:…@127.0.0.1:PORT/DB`
    pub fn url(&self, db: &str) -> String {
        format!("mysql://{USER}:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name`; panics with the client's stderr if that fails.
    pub fn create_database(&self, name: &str) {
        let sql = format!("CREATE DATABASE `{}`", name.replace('`', "``"));
        if let Err(e) = self.try_sql("", &sql) {
            panic!("CREATE DATABASE {name} on port {} failed: {e}", self.port);
        }
    }

    /// Runs SQL on database `db` ("" for none) with the `mariadb` client as root over the
    /// socket, and returns its tab-separated output without headers or the final newline;
    /// panics with the client's stderr if it fails.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        self.try_sql(db, sql)
            .unwrap_or_else(|e| panic!("mariadb on port {} ({db}): {sql}: {e}", self.port))
    }

    /// `sql`, with the client's stderr as the error.
    pub fn try_sql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut command = Command::new("mariadb");
        command
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-u", "root", "-N", "-B", "--connect-timeout=5"]);
        if !db.is_empty() {
            command.args(["-D", db]);
        }
        let output = command
            .args(["-e", sql])
            .output()
            .map_err(|e| format!("mariadb: {e}"))?;
        if output.status.success() {
            let stdout = String::from_utf8_lossy(&output.stdout);
            Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// A normal shutdown (SIGTERM; sessions are cut, work is rolled back); keeps the data dir.
    /// Does nothing if it is stopped already.
    pub fn stop(&self) {
        let mut process = self.lock_process();
        if let Some(mut child) = process.take() {
            signal(&child, "TERM");
            let _ = child.wait();
        }
    }

    /// Starts it again after `stop`, on the same port and data dir; returns once it accepts
    /// connections. Does nothing if it runs already.
    pub fn start_again(&self) {
        let mut process = self.lock_process();
        if process.is_none() {
            if let Err(e) = self.try_start(&mut process) {
                panic!("MariaDB did not start again on port {}: {e}", self.port);
            }
        }
    }

    /// A fresh data dir in a new temp dir, with its watchdog; not started.
    fn new(prefix: &str) -> MariaDbServer {
        static SERVER_IDS: AtomicU32 = AtomicU32::new(1);
        let dir = temp_dir(prefix);
        // Stops by the pid the server wrote, then removes everything.
        let pid_file = sh_quote(dir.join("mariadbd.pid"));
        let watchdog = Watchdog::spawn(&format!(
            "p=$(cat {pid_file} 2>/dev/null) && kill -KILL \"$p\"; rm -rf {}",
            sh_quote(&dir)
        ));
        let mut install = Command::new(program("mariadb-install-db"));
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .current_dir(&dir);
        if is_root() {
            install.arg("--user=root");
        }
        checked("mariadb-install-db", install.output());
        MariaDbServer {
            dir,
            port: 0,
            server_id: SERVER_IDS.fetch_add(1, Ordering::Relaxed),
            process: Mutex::new(None),
            _watchdog: watchdog,
        }
    }

    /// The first start, on a free port; tries other ports if another process took it first.
    fn first_start(&mut self) {
        for attempt in 1..=ATTEMPTS {
            self.port = free_port();
            let mut process = self.lock_process();
            match self.try_start(&mut process) {
                Ok(()) => return,
                Err(e) if attempt < ATTEMPTS && e.contains("Address already in use") => {}
                Err(e) => panic!("MariaDB did not start on port {}: {e}", self.port),
            }
        }
    }

    /// Starts `mariadbd`, then waits until it answers on its socket; on failure, what it
    /// logged.
    fn try_start(&self, process: &mut Option<Child>) -> Result<(), String> {
        let log = self.dir.join("error.log");
        let logged = std::fs::metadata(&log).map_or(0, |m| m.len());
        let mut command = Command::new(program("mariadbd"));
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.dir.join("data").display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.join("mariadbd.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--server-id={}", self.server_id))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--log-bin=binlog",
                "--log-basename=orderhub",
                "--binlog-format=MIXED",
                "--innodb-flush-log-at-trx-commit=0",
                "--sync-binlog=0",
                "--innodb-buffer-pool-size=64M",
                "--max-connections=500",
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            command.arg("--user=root");
        }
        let mut child = command.spawn().map_err(|e| format!("mariadbd: {e}"))?;
        let ready = std::time::Instant::now() + PATIENCE;
        loop {
            if self.try_sql("", "SELECT 1").is_ok() {
                *process = Some(child);
                return Ok(());
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || std::time::Instant::now() > ready {
                if exited.is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                let text = std::fs::read(&log).unwrap_or_default();
                return Err(String::from_utf8_lossy(super::since(&text, logged)).into_owned());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("mariadb.sock")
    }

    fn lock_process(&self) -> MutexGuard<'_, Option<Child>> {
        self.process.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for MariaDbServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.lock_process().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // The watchdog goes next, as the field is dropped.
    }
}

/// Sends `SIGname` to the server, by its pid.
fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status();
}

/// `name` from /usr/sbin or /usr/bin, else from PATH. Panics with what to install if the
/// server is missing.
fn program(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin"] {
        let path = PathBuf::from(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    found.unwrap_or_else(|| {
        panic!(
            "{name} not found: install the Debian packages mariadb-server and mariadb-client \
             (scripts/test does this)"
        )
    })
}

fn checked(what: &str, output: std::io::Result<Output>) -> Output {
    let output = output.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
