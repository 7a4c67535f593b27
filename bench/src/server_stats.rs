//! The server's CPU time and memory, read from `/proc/PID` (Linux) for the processes named
//! with `--server-pid`; several pids (a cluster of nodes) are added up.

use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One reading of every watched process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_kib: u64,
    /// Peak RSS since the process started (VmHWM).
    pub hwm_kib: u64,
}

/// What a run cost the server.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub rss_start_mib: f64,
    pub rss_end_mib: f64,
    /// The largest RSS sampled during the run (every 200 ms).
    pub rss_max_mib: f64,
    /// VmHWM at the end: the peak since the server started.
    pub peak_rss_mib: f64,
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// utime and stime from `/proc/PID/stat` (fields 14 and 15; the command name, field 2, is
/// in parentheses and may hold spaces, so fields are counted after its closing parenthesis).
pub fn parse_stat(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // after_name starts at field 3 (state); utime is field 14.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` line of `/proc/PID/status`, e.g. `VmRSS:   12345 kB`.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn read(pids: &[u32]) -> Reading {
    let mut reading = Reading::default();
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        reading.cpu_ticks += parse_stat(&stat).unwrap_or(0);
        reading.rss_kib += parse_status_kib(&status, "VmRSS").unwrap_or(0);
        reading.hwm_kib += parse_status_kib(&status, "VmHWM").unwrap_or(0);
    }
    reading
}

/// Watches the servers' usage from `start` until `finish`.
pub struct Watch {
    pids: Vec<u32>,
    start: Reading,
    max_rss_kib: Arc<Mutex<u64>>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Watch {
    pub fn start(pids: &[u32]) -> Self {
        let start = read(pids);
        let max_rss_kib = Arc::new(Mutex::new(start.rss_kib));
        let sampler = tokio::spawn({
            let pids = pids.to_vec();
            let max = max_rss_kib.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let rss = read(&pids).rss_kib;
                    let mut max = max.lock().unwrap_or_else(|e| e.into_inner());
                    *max = (*max).max(rss);
                }
            }
        });
        Self {
            pids: pids.to_vec(),
            start,
            max_rss_kib,
            sampler,
        }
    }

    /// The reading now, without ending the watch.
    pub fn now(&self) -> Reading {
        read(&self.pids)
    }

    pub fn start_reading(&self) -> Reading {
        self.start
    }

    pub fn finish(self) -> Option<Usage> {
        self.sampler.abort();
        if self.pids.is_empty() {
            return None;
        }
        let end = read(&self.pids);
        let max = *self.max_rss_kib.lock().unwrap_or_else(|e| e.into_inner());
        let mib = |kib: u64| kib as f64 / 1024.0;
        Some(Usage {
            cpu_seconds: end.cpu_ticks.saturating_sub(self.start.cpu_ticks) as f64
                / ticks_per_second(),
            rss_start_mib: mib(self.start.rss_kib),
            rss_end_mib: mib(end.rss_kib),
            rss_max_mib: mib(max.max(end.rss_kib)),
            peak_rss_mib: mib(end.hwm_kib),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "1234 (orderhub (x) y) S 1 1234 1234 0 -1 4194560 2093 0 0 0 250 37 0 0 20 0 9 0 1000 1 2 3";
        assert_eq!(parse_stat(stat), Some(287));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn status_lines_are_read_in_kib() {
        let status = "Name:\torderhub\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(10240));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(20480));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let reading = read(&[std::process::id()]);
        assert!(reading.rss_kib > 0);
        assert!(reading.hwm_kib >= reading.rss_kib);
    }
}
