//! Probe counters. Each target task is the only writer of its own counters; [`crate::Prober`]
//! reads them. Plain relaxed atomics: each number is exact, a snapshot across numbers is not
//! (good enough for an API and a benchmark).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts for one target, or summed over all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeCounts {
    /// Probes started.
    pub sent: u64,
    /// Probes that ended not ok (refused, timed out, non-200, TLS failure, ...).
    pub failed: u64,
    /// Probes that started more than one interval after their scheduled time: the prober could
    /// not keep up (CPU starvation, a stalled results receiver).
    pub late: u64,
}

impl std::ops::AddAssign for ProbeCounts {
    fn add_assign(&mut self, o: Self) {
        self.sent += o.sent;
        self.failed += o.failed;
        self.late += o.late;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetStats {
    pub target: IpAddr,
    pub counts: ProbeCounts,
}

/// Snapshot returned by [`crate::Prober::stats`]: per target, in the order given to `spawn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeStats {
    pub targets: Vec<TargetStats>,
    pub total: ProbeCounts,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    late: AtomicU64,
}

impl Counters {
    pub(crate) fn started(&self, late: bool) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        if late {
            self.late.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ProbeCounts {
        ProbeCounts {
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
        }
    }
}
