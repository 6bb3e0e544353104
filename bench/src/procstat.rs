//! CPU time and resident memory of a process, from `/proc/PID/stat` and `/proc/PID/status`, sampled over a run.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Clock ticks per second of `/proc/*/stat` times. `USER_HZ` is 100 on every Linux architecture the
/// benchmark targets (it is fixed by the kernel ABI, independent of `CONFIG_HZ`).
const TICKS_PER_SEC: f64 = 100.0;

/// Which process to read: ourselves or another PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    Current,
    Other(u32),
}

impl Pid {
    fn dir(self) -> String {
        match self {
            Pid::Current => "/proc/self".into(),
            Pid::Other(p) => format!("/proc/{p}"),
        }
    }
}

/// Parses user + system CPU ticks from the text of `/proc/PID/stat`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    parse_stat_user_system(stat).map(|(u, s)| u + s)
}

/// Parses user and system CPU ticks, apart, from the text of `/proc/PID/stat`.
pub fn parse_stat_user_system(stat: &str) -> Option<(u64, u64)> {
    // The command name (field 2) may contain spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After ')': field 3 (state) is index 0; utime is field 14 → index 11, stime field 15 → index 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// Parses `VmRSS` (in KiB) from the text of `/proc/PID/status`.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_ascii_whitespace().next()?.parse().ok())
}

/// CPU ticks used so far by `pid`: user, system.
pub fn cpu_ticks(pid: Pid) -> Option<(u64, u64)> {
    parse_stat_user_system(&std::fs::read_to_string(format!("{}/stat", pid.dir())).ok()?)
}

/// Current resident set size of `pid`, in KiB.
pub fn rss_kib(pid: Pid) -> Option<u64> {
    parse_status_rss_kib(&std::fs::read_to_string(format!("{}/status", pid.dir())).ok()?)
}

/// One reading of CPU and memory.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    at: Instant,
    ticks: Option<u64>,
    system_ticks: Option<u64>,
}

impl Reading {
    pub fn take(pid: Pid) -> Reading {
        let ticks = cpu_ticks(pid);
        Reading {
            at: Instant::now(),
            ticks: ticks.map(|(u, s)| u + s),
            system_ticks: ticks.map(|(_, s)| s),
        }
    }

    /// CPU seconds used between `self` and a later reading.
    pub fn cpu_secs_until(&self, later: &Reading) -> Option<f64> {
        Some(later.ticks?.checked_sub(self.ticks?)? as f64 / TICKS_PER_SEC)
    }

    /// System (kernel) CPU seconds used between `self` and a later reading.
    pub fn system_secs_until(&self, later: &Reading) -> Option<f64> {
        Some(later.system_ticks?.checked_sub(self.system_ticks?)? as f64 / TICKS_PER_SEC)
    }

    /// CPU use between `self` and a later reading, in percent of one core.
    pub fn cpu_percent_until(&self, later: &Reading) -> Option<f64> {
        let secs = later.at.duration_since(self.at).as_secs_f64();
        let ticks = later.ticks?.checked_sub(self.ticks?)?;
        (secs > 0.0).then(|| ticks as f64 / TICKS_PER_SEC / secs * 100.0)
    }
}

/// One point of a process's time series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the series started.
    pub t_ms: u64,
    /// CPU use since the previous sample, percent of one core.
    pub cpu_pct: f64,
    pub rss_kib: u64,
}

/// Samples a process every `interval` until told to stop; bounded by `max_samples`.
#[derive(Debug)]
pub struct Sampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

impl Sampler {
    pub fn start(pid: Pid, interval: Duration, max_samples: usize) -> Sampler {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let mut last = Reading::take(pid);
            let mut out = Vec::new();
            while out.len() < max_samples {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stopped.changed() => break,
                }
                let now = Reading::take(pid);
                out.push(Sample {
                    t_ms: start.elapsed().as_millis() as u64,
                    cpu_pct: last.cpu_percent_until(&now).unwrap_or(0.0),
                    rss_kib: rss_kib(pid).unwrap_or(0),
                });
                last = now;
            }
            out
        });
        Sampler { stop, task }
    }

    pub async fn finish(self) -> Vec<Sample> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_even_with_spaces_and_parens_in_the_name() {
        let stat =
            "4242 (my (weird) proc) S 1 4242 4242 0 -1 4194560 1000 0 0 0 731 269 0 0 20 0 3 0 \
                    100 2000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(1000));
        assert_eq!(parse_stat_user_system(stat), Some((731, 269)));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn parses_vmrss_from_status() {
        let status = "Name:\tdevrelay\nVmPeak:\t  10000 kB\nVmRSS:\t    5120 kB\nThreads:\t2\n";
        assert_eq!(parse_status_rss_kib(status), Some(5120));
        assert_eq!(parse_status_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn reads_this_process() {
        assert!(rss_kib(Pid::Current).unwrap() > 0);
        let a = Reading::take(Pid::Current);
        // Burn a little CPU so the counter can move; the value itself is not asserted (no timed assertions).
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let b = Reading::take(Pid::Current);
        assert!(a.cpu_percent_until(&b).unwrap() >= 0.0);
    }
}
