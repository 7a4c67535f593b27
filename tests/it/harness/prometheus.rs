//! A Prometheus server from the system's binary, scraping given targets every second.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::{free_port, sh_quote, temp_dir, wait_until, Watchdog};

pub struct PrometheusServer {
    dir: PathBuf,
    port: u16,
    child: Mutex<Option<Child>>,
    _watchdog: Watchdog,
}

impl PrometheusServer {
    /// Scrapes `targets` (host:port) as job "orderhub" every second.
    pub fn start(targets: &[String]) -> PrometheusServer {
        let dir = temp_dir("prometheus");
        let port = free_port();
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: orderhub\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus.yml");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus could not start ({e}): install the Debian package prometheus (scripts/test does this)"));
        let pid = child.id();
        let server = PrometheusServer {
            _watchdog: Watchdog::spawn(&format!("kill -9 {pid}; rm -rf {}", sh_quote(&dir))),
            dir,
            port,
            child: Mutex::new(Some(child)),
        };
        let ready = format!("127.0.0.1:{port}");
        wait_until("Prometheus listens", Duration::from_secs(30), || {
            std::net::TcpStream::connect(&ready).is_ok()
        });
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
