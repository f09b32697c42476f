//! The server process as the kernel sees it: CPU time and resident memory from /proc.

use anyhow::{Context, Result};

/// Clock ticks per second in /proc/PID/stat (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// One reading of a process.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Sample {
    /// User + system CPU time, seconds.
    pub cpu_s: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

/// Read `/proc/PID` (the server's CPU time includes all its threads).
pub fn sample(pid: u32) -> Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (is the server running?)"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = &stat[stat.rfind(')').context("odd /proc stat")? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(Sample {
        cpu_s: ticks as f64 / TICKS_PER_SEC,
        rss_kib,
    })
}

/// Readings before and after, if a PID was given.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Delta {
    pub cpu_s: f64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
}

pub struct Meter {
    pid: Option<u32>,
    before: Sample,
}

impl Meter {
    pub fn start(pid: Option<u32>) -> Result<Meter> {
        let before = match pid {
            Some(p) => sample(p)?,
            None => Sample::default(),
        };
        Ok(Meter { pid, before })
    }
    pub fn stop(&self) -> Result<Option<Delta>> {
        let Some(pid) = self.pid else { return Ok(None) };
        let after = sample(pid)?;
        Ok(Some(Delta {
            cpu_s: after.cpu_s - self.before.cpu_s,
            rss_before_kib: self.before.rss_kib,
            rss_after_kib: after.rss_kib,
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let s = super::sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.cpu_s >= 0.0);
    }
}
