//! PostgreSQL servers (and streaming replicas) from the system's PostgreSQL binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use super::{free_port, is_root, kill, remove_dir, temp_dir, wait_until, watchdog};

pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    watchdog: Mutex<Option<u32>>,
}

/// Where `initdb` and `postgres` live: pg_config's bindir, else the newest
/// /usr/lib/postgresql/*/bin.
fn bin_dir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|dir| dir.join("postgres").exists() && dir.join("initdb").exists());
    if let Some(dir) = from_pg_config {
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("postgres").exists() && bin.join("initdb").exists()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found (looked at `pg_config --bindir` and \
             /usr/lib/postgresql/*/bin): install the Debian package postgresql (scripts/test does this)"
        ),
    }
}

/// Runs a PostgreSQL tool as the `postgres` user when we are root (PostgreSQL refuses root).
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn checked(what: &str, output: std::io::Result<Output>) -> Output {
    let output = output.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A temp dir the postgres user owns.
fn data_dir(prefix: &str) -> PathBuf {
    let dir = temp_dir(prefix);
    if is_root() {
        checked(
            "chown",
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .output(),
        );
    }
    checked("chmod", Command::new("chmod").arg("700").arg(&dir).output());
    dir
}

impl PgServer {
    /// A new cluster, started and accepting connections.
    pub fn start() -> PgServer {
        let bin = bin_dir();
        let dir = data_dir("pg");
        let data = dir.join("data");
        checked(
            "initdb",
            as_postgres(&bin.join("initdb"))
                .args([
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "-D",
                ])
                .arg(&data)
                .output(),
        );
        let config = "listen_addresses = '127.0.0.1'\nfsync = off\nsynchronous_commit = off\n\
             full_page_writes = off\nmax_connections = 200\nwal_level = replica\n\
             max_wal_senders = 10\nhot_standby = on\n";
        append(&data.join("postgresql.conf"), config);
        PgServer::launch(bin, dir)
    }

    /// A streaming replica of this server that applies changes `apply_delay` late.
    pub fn start_replica(&self, apply_delay: Duration) -> PgServer {
        let dir = data_dir("pg-replica");
        let data = dir.join("data");
        checked(
            "pg_basebackup",
            as_postgres(&self.bin.join("pg_basebackup"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-R",
                    "-X",
                    "stream",
                    "-D",
                ])
                .arg(&data)
                .output(),
        );
        append(
            &data.join("postgresql.conf"),
            &format!(
                "hot_standby = on\nrecovery_min_apply_delay = '{}ms'\n",
                apply_delay.as_millis()
            ),
        );
        PgServer::launch(self.bin.clone(), dir)
    }

    fn launch(bin: PathBuf, dir: PathBuf) -> PgServer {
        let port = free_port();
        let server = PgServer {
            bin,
            dir,
            port,
            watchdog: Mutex::new(None),
        };
        server.start_again();
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn create_database(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }

    /// Runs one statement on `db` and returns psql's unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let output = checked(
            &format!("psql {sql}"),
            Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    db,
                ])
                .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
                .output(),
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Starts the server on its port and data dir; blocks until it accepts connections.
    pub fn start_again(&self) {
        let log = self.dir.join("postgres.log");
        checked(
            "pg_ctl start",
            as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(&log)
                .args(["-o", &format!("-p {} -k {}", self.port, self.dir.display())])
                .args(["-w", "-t", "60", "start"])
                .output(),
        );
        let isready = self.bin.join("pg_isready");
        wait_until(
            "PostgreSQL accepts connections",
            Duration::from_secs(60),
            || {
                Command::new(&isready)
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &self.port.to_string(),
                        "-U",
                        "postgres",
                    ])
                    .output()
                    .is_ok_and(|o| o.status.success())
            },
        );
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if is_root() {
            format!(
                "runuser -u postgres -- {} -D {} -m immediate stop;",
                pg_ctl.display(),
                self.data().display()
            )
        } else {
            format!(
                "{} -D {} -m immediate stop;",
                pg_ctl.display(),
                self.data().display()
            )
        };
        let cleanup = format!("{stop} rm -rf {}", self.dir.display());
        let mut watchdog_pid = self.watchdog.lock().unwrap_or_else(|p| p.into_inner());
        if watchdog_pid.is_none() {
            *watchdog_pid = Some(watchdog(&cleanup));
        }
    }

    /// Fast shutdown; the data directory stays for `start_again`.
    pub fn stop(&self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }

    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(pid) = self
            .watchdog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            kill(pid, "-TERM");
        }
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .output();
        remove_dir(&self.dir);
    }
}

fn append(file: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(file)
        .expect("open postgresql.conf");
    f.write_all(text.as_bytes()).expect("write postgresql.conf");
}
