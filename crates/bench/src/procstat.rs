//! A target's resource use from /proc, and the machine's description.

use std::fs;

/// CPU time and memory of one process at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// utime + stime, seconds (all threads).
    pub cpu_s: f64,
    /// VmHWM: peak resident set, bytes.
    pub peak_rss: u64,
    /// VmRSS now, bytes.
    pub rss: u64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    #[allow(unsafe_code)]
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`; None once the process is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let (utime, stime) = parse_stat(&stat)?;
    Some(Usage {
        cpu_s: (utime + stime) as f64 / clock_ticks(),
        peak_rss: status_kb(&status, "VmHWM:")? * 1024,
        rss: status_kb(&status, "VmRSS:").unwrap_or(0) * 1024,
    })
}

/// utime and stime (fields 14 and 15) of a stat line; the command name may hold spaces and
/// parentheses, so fields are counted after the last ')'.
pub fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // after ')' the first field is #3 (state): utime is #14 → index 11.
    Some((f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?))
}

fn status_kb(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// "AMD EPYC 7B13, 2 cores, 24 GiB, Linux 6.18.44"
pub fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| status_kb(&m, "MemTotal:"))
        .map(|kb| format!("{:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, {mem} RAM, Linux {}, {}",
        kernel.trim(),
        std::env::consts::ARCH
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_name() {
        let s =
            "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 4 0 100 1000 200";
        assert_eq!(parse_stat(s), Some((250, 75)));
    }

    #[test]
    fn own_usage_is_readable() {
        let u = usage(std::process::id()).unwrap();
        assert!(u.peak_rss > 0 && u.peak_rss >= u.rss);
    }
}
