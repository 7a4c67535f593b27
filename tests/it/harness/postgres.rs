//! PostgreSQL servers, and streaming replicas of them, from the system's PostgreSQL binaries:
//! each one its own cluster in a temp dir, listening on a free loopback port. As root, every
//! PostgreSQL program runs as the `postgres` user (the server refuses to run as root).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use super::{
    free_port, is_root, sh_quote, since, temp_dir, temp_dir_in, wait_until, Watchdog, ATTEMPTS,
};

/// How long a start, a stop or a replica's catching up may take.
const PATIENCE: Duration = Duration::from_secs(60);

pub struct PgServer {
    bin: PathBuf,
    /// The temp dir: `data/` (the cluster), `postgres.log` and the Unix socket.
    dir: PathBuf,
    port: u16,
    /// The postmaster's pid while it runs; the lock also keeps stops and starts apart.
    pid: Mutex<Option<u32>>,
    /// Dropped after `Drop::drop` has stopped the server itself.
    _watchdog: Watchdog,
}

impl PgServer {
    /// A new cluster (trust authentication, superuser `postgres`, UTF8, locale C, durability
    /// off, ready to be replicated), started and accepting connections.
    pub fn start() -> PgServer {
        let mut server = PgServer::new("pg");
        let initdb = server
            .as_postgres("initdb")
            .arg("-D")
            .arg(server.data())
            .args(["--auth=trust", "-U", "postgres", "--no-sync"])
            .args(["-E", "UTF8", "--locale=C"])
            .output();
        checked("initdb", initdb);
        server.configure(&format!(
            "listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = {}\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 200\n\
             wal_level = replica\n\
             max_wal_senders = 10\n\
             hot_standby = on\n",
            conf_string(&server.dir)
        ));
        server.first_start();
        server
    }

    /// A hot standby streaming from this server, applying each commit `apply_delay` after it
    /// happened on the primary; returns once it accepts read connections and streams.
    pub fn start_replica(&self, apply_delay: Duration) -> PgServer {
        let mut replica = PgServer::new("pg-replica");
        let backup = replica
            .as_postgres("pg_basebackup")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(["-R", "-X", "stream", "--checkpoint=fast", "--no-sync", "-D"])
            .arg(replica.data())
            .output();
        checked("pg_basebackup", backup);
        // Later lines win over the primary's, which the backup copied.
        replica.configure(&format!(
            "unix_socket_directories = {}\n\
             hot_standby = on\n\
             recovery_min_apply_delay = '{}ms'\n",
            conf_string(&replica.dir),
            apply_delay.as_millis()
        ));
        replica.first_start();
        wait_until(
            &format!("the replica on port {} streams", replica.port),
            PATIENCE,
            || {
                replica
                    .try_psql("postgres", "SELECT status FROM pg_stat_wal_receiver")
                    .is_ok_and(|status| status == "streaming")
            },
        );
        replica
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name`; panics with psql's stderr if that fails.
    pub fn create_database(&self, name: &str) {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(e) = self.try_psql("postgres", &sql) {
            panic!("CREATE DATABASE {name} on port {} failed: {e}", self.port);
        }
    }

    /// Runs one SQL statement on database `db` with `psql -At` and returns its stdout, without
    /// the final newline; panics with psql's stderr if the statement fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql)
            .unwrap_or_else(|e| panic!("psql on port {} ({db}): {sql}: {e}", self.port))
    }

    /// Fast shutdown, then a start on the same port and data dir; returns once it accepts
    /// connections again.
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// Fast shutdown (sessions are cut, work is rolled back); keeps the data dir. Does nothing
    /// if it is stopped already.
    pub fn stop(&self) {
        let mut pid = self.lock_pid();
        if pid.is_some() {
            let stop = self
                .as_postgres("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "fast", "-w", "-t", "60", "stop"])
                .output();
            checked("pg_ctl stop", stop);
            *pid = None;
        }
    }

    /// Starts it again after `stop`, on the same port and data dir; returns once it accepts
    /// connections. Does nothing if it runs already.
    pub fn start_again(&self) {
        let mut pid = self.lock_pid();
        if pid.is_none() {
            if let Err(e) = self.try_start(&mut pid) {
                panic!("PostgreSQL did not start again on port {}: {e}", self.port);
            }
        }
    }

    /// An empty server in a new temp dir, with its watchdog; not initialised, not started.
    fn new(prefix: &str) -> PgServer {
        let bin = bin_dir().to_owned();
        let dir = if is_root() {
            // The postgres user has to reach it: not under a TMPDIR of root's.
            let dir = temp_dir_in(Path::new("/tmp"), prefix);
            checked(
                "chown postgres",
                Command::new("chown").arg("postgres:").arg(&dir).output(),
            );
            dir
        } else {
            temp_dir(prefix)
        };
        let pg_ctl = [
            runuser_prefix(),
            sh_quote(bin.join("pg_ctl")),
            "-D".to_owned(),
            sh_quote(dir.join("data")),
            "-m immediate -w -t 60 stop >/dev/null 2>&1;".to_owned(),
        ]
        .join(" ");
        let watchdog = Watchdog::spawn(&format!("{pg_ctl} rm -rf {}", sh_quote(&dir)));
        PgServer {
            bin,
            dir,
            port: 0,
            pid: Mutex::new(None),
            _watchdog: watchdog,
        }
    }

    /// The first start, on a free port; tries other ports if another process took it first.
    fn first_start(&mut self) {
        for attempt in 1..=ATTEMPTS {
            self.port = free_port();
            self.configure(&format!("port = {}\n", self.port));
            let mut pid = self.lock_pid();
            match self.try_start(&mut pid) {
                Ok(()) => return,
                Err(e) if attempt < ATTEMPTS && e.contains("could not bind") => {}
                Err(e) => panic!("PostgreSQL did not start on port {}: {e}", self.port),
            }
        }
    }

    /// `pg_ctl start`, then waits until `SELECT 1` works over TCP.
    fn try_start(&self, pid: &mut Option<u32>) -> Result<(), String> {
        let log = self.dir.join("postgres.log");
        let logged = std::fs::metadata(&log).map_or(0, |m| m.len());
        let start = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"])
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if !start.status.success() {
            let text = std::fs::read(&log).unwrap_or_default();
            return Err(format!(
                "{}{}\n{}",
                String::from_utf8_lossy(&start.stdout),
                String::from_utf8_lossy(&start.stderr),
                String::from_utf8_lossy(since(&text, logged))
            ));
        }
        // The postmaster's pid is the first line of its lock file.
        let lock_file = std::fs::read_to_string(self.data().join("postmaster.pid"));
        *pid = lock_file
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse().ok());
        wait_until(
            &format!("PostgreSQL on port {} answers", self.port),
            PATIENCE,
            || self.try_psql("postgres", "SELECT 1").is_ok(),
        );
        Ok(())
    }

    /// `psql -At` with one statement; its stdout, or its stderr as the error.
    fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let output = Command::new(self.program("psql"))
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(["-d", db, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if output.status.success() {
            let stdout = String::from_utf8_lossy(&output.stdout);
            Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn configure(&self, lines: &str) {
        let conf = self.data().join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| f.write_all(lines.as_bytes()))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
    }

    fn program(&self, name: &str) -> PathBuf {
        let path = self.bin.join(name);
        if path.exists() {
            path
        } else {
            PathBuf::from(name)
        }
    }

    /// A PostgreSQL program, run as `postgres` when we are root, inside the temp dir.
    fn as_postgres(&self, name: &str) -> Command {
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command
                .args(["-u", "postgres", "--"])
                .arg(self.program(name));
            command
        } else {
            Command::new(self.program(name))
        };
        command.current_dir(&self.dir);
        command
    }

    fn lock_pid(&self) -> MutexGuard<'_, Option<u32>> {
        self.pid.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = self
                .as_postgres("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "-t", "60", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // The watchdog goes next, as the field is dropped.
    }
}

/// `runuser -u postgres --` when we are root, for the watchdog's script.
fn runuser_prefix() -> String {
    if is_root() {
        "runuser -u postgres --".to_owned()
    } else {
        String::new()
    }
}

/// Where `initdb` and `postgres` are: `pg_config --bindir`, else the newest
/// /usr/lib/postgresql/*/bin. Panics with what to install if there are none.
fn bin_dir() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = find_bin_dir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries not found (looked in `pg_config --bindir` and \
                 /usr/lib/postgresql/*/bin): install the Debian package postgresql \
                 (scripts/test does this)"
            )
        });
        let postgres_user = || {
            Command::new("id")
                .arg("postgres")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        assert!(
            !is_root() || postgres_user(),
            "PostgreSQL refuses to run as root and there is no `postgres` user to run it as: \
             install the Debian package postgresql (scripts/test does this)"
        );
        bin
    })
}

fn find_bin_dir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").exists() && dir.join("postgres").exists();
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|dir| has_server(dir));
    if from_pg_config.is_some() {
        return from_pg_config;
    }
    let mut installed: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version = name
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    installed.sort();
    installed.pop().map(|(_, bin)| bin)
}

/// `value` as a postgresql.conf string.
fn conf_string(value: &Path) -> String {
    format!("'{}'", value.to_string_lossy().replace('\'', "''"))
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
