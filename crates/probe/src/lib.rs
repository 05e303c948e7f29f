//! Health probes for the load balancer's backends, over real sockets.
//!
//! [`spawn`] starts one tokio task per backend address. Each task probes its target every
//! `interval` — a TCP connect, or an HTTP/1.1 `GET` (optionally inside TLS) where only status 200
//! is up (SPEC §4) — and sends a [`ProbeResult`] with the evidence (`"HTTP 500"`, `"timed out
//! after 100 ms"`) on a bounded channel. The owner of the backend table (the `lb` crate's state,
//! driven by the binary) turns results into up/down with its rise/fall counts.
//!
//! This crate never decides whether a backend is up (no rise/fall, no state beyond counters),
//! never lets one target delay another (one task each, each probe bounded by `timeout`), never
//! sends to any address but its targets, and never panics on what the network says. Dropping the
//! [`Prober`], or the results receiver, ends every task.
//!
//! # Layout
//! - `spec`: [`ProbeSpec`], [`Protocol`], [`SpecError`]: what to probe, checks and clamping.
//! - `schedule`: pinned splitmix64 and the first-probe offset, reproducible per target.
//! - `task`: the per-target loop: ticks, lateness, results, a log line per change.
//! - `check`: one probe: connect, TLS, HTTP under the timeout; failures as evidence.
//! - `http`: the tiny HTTP/1.1 client (request bytes, status line).
//! - `tls`: rustls (`ring`) client config; accept-any or system-roots verification.
//! - `stats`: per-target counters behind [`Prober::stats`].
//!
//! ```text
//!   spawn(spec, targets, tx) ──> Prober { JoinSet, counters }      (Drop aborts the tasks)
//!                                   │
//!          ┌────────────────────────┼────────────────────────┐
//!          ▼                        ▼                        ▼
//!   target task 10.0.0.1     target task 10.0.0.2  ...  (Nx: one per target)
//!   sleep(jitter) then every interval:
//!     timeout(connect [-> TLS] [-> GET, status line])  ──> counters (sent/failed/late)
//!          │                        │                        │
//!          └───────> mpsc::Sender<ProbeResult> (bounded) <───┘
//!                                   │
//!                                   ▼
//!                  backend-table owner (rise/fall, lb state)
//! ```
#![deny(unsafe_code)]

mod check;
mod http;
mod schedule;
mod spec;
mod stats;
mod task;
mod tls;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument;

pub use schedule::first_offset;
pub use spec::{ProbeSpec, Protocol, SpecError, MIN_INTERVAL};
pub use stats::{ProbeCounts, ProbeStats, TargetStats};

/// The outcome of one probe of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub target: IpAddr,
    pub ok: bool,
    /// From the start of the probe to its outcome (for a timeout: about `timeout`).
    pub latency: Duration,
    /// Evidence for logs and the API: "HTTP 200 in 1.2 ms", "HTTP 500", "connection refused",
    /// "timed out after 100 ms", "TLS handshake failed: ...".
    pub detail: String,
    /// 1 for the first probe of this target, then +1 per probe: a gap means nothing was lost, a
    /// repeat means a new Prober.
    pub seq: u64,
}

/// Running probes. Owns the tasks: dropping it aborts them all.
pub struct Prober {
    /// The probe tasks; `JoinSet`'s drop aborts them, which is the whole shutdown protocol.
    tasks: JoinSet<()>,
    /// Targets in `spawn` order, beside their counters, for [`Prober::stats`].
    targets: Vec<(IpAddr, Arc<stats::Counters>)>,
    /// The spec actually run (after [`ProbeSpec::normalized`]).
    spec: ProbeSpec,
}

/// Starts probing every target (duplicates are probed once) with `spec`, sending each result on
/// `results`. Must be called within a tokio runtime.
///
/// `spec` runs as [`ProbeSpec::normalized`]: too short an interval or too long a timeout is
/// clamped with a warning. Other problems — a bad path, a source address of the wrong family,
/// `verify_tls` without system roots — make every affected probe fail with a detail that says
/// so; call [`ProbeSpec::validate`] first to reject them up front.
///
/// Results are sent with backpressure: a receiver that stops reading stalls the tasks, and
/// their stalled probes count as `late`.
pub fn spawn(spec: ProbeSpec, targets: Vec<IpAddr>, results: mpsc::Sender<ProbeResult>) -> Prober {
    let normalized = spec.normalized();
    if normalized.interval != spec.interval || normalized.timeout != spec.timeout {
        tracing::warn!(
            interval = ?spec.interval,
            timeout = ?spec.timeout,
            used_interval = ?normalized.interval,
            used_timeout = ?normalized.timeout,
            "probe interval/timeout out of range; clamped"
        );
    }
    let ctx = Arc::new(check::Context::new(normalized.clone()));
    if let Some(Err(why)) = &ctx.tls {
        tracing::warn!(%why, "HTTPS probes will fail");
    }
    let mut tasks = JoinSet::new();
    let mut seen = Vec::with_capacity(targets.len());
    for target in targets {
        if seen.iter().any(|(t, _)| *t == target) {
            continue;
        }
        let counters = Arc::new(stats::Counters::default());
        let span = tracing::info_span!(
            "probe",
            backend = %target,
            port = normalized.port,
            protocol = ?normalized.protocol
        );
        tasks.spawn(
            task::run(ctx.clone(), target, counters.clone(), results.clone()).instrument(span),
        );
        seen.push((target, counters));
    }
    Prober {
        tasks,
        targets: seen,
        spec: normalized,
    }
}

impl Prober {
    /// Counters per target (in `spawn` order) and their sum.
    pub fn stats(&self) -> ProbeStats {
        let mut total = ProbeCounts::default();
        let targets = self
            .targets
            .iter()
            .map(|(target, counters)| {
                let counts = counters.snapshot();
                total += counts;
                TargetStats {
                    target: *target,
                    counts,
                }
            })
            .collect();
        ProbeStats { targets, total }
    }

    /// The spec being run (after clamping).
    pub fn spec(&self) -> &ProbeSpec {
        &self.spec
    }

    /// The targets being probed, in `spawn` order, without duplicates.
    pub fn targets(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.targets.iter().map(|(t, _)| *t)
    }

    /// Number of probe tasks still running (they end early only when the receiver is gone).
    pub fn running(&mut self) -> usize {
        while self.tasks.try_join_next().is_some() {}
        self.tasks.len()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        // JoinSet would do this on its own drop; said here so the contract is visible.
        self.tasks.abort_all();
    }
}

/// "100 ms" for whole milliseconds, else "12.5 ms": the text of timeouts in details.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() % 1_000_000 == 0 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_format() {
        assert_eq!(fmt_duration(Duration::from_millis(100)), "100 ms");
        assert_eq!(fmt_duration(Duration::from_secs(5)), "5000 ms");
        assert_eq!(fmt_duration(Duration::from_micros(12_500)), "12.5 ms");
    }
}
