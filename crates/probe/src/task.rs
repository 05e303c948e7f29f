//! The task that probes one target for the life of its [`crate::Prober`]: sleep to the jittered
//! first offset, then one probe per tick of its own interval, each sent on the results channel.
//! Nothing here waits on another target, so a black-holed backend only delays itself.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::check::{self, Context, Success};
use crate::stats::Counters;
use crate::{fmt_duration, ProbeResult, Protocol};

pub(crate) async fn run(
    ctx: Arc<Context>,
    target: IpAddr,
    counters: Arc<Counters>,
    results: mpsc::Sender<ProbeResult>,
) {
    let spec = &ctx.spec;
    let addr = SocketAddr::new(target, spec.port);
    let request = match spec.protocol {
        Protocol::Tcp => Vec::new(),
        Protocol::Http | Protocol::Https => crate::http::request(spec.request_path(), addr),
    };
    let first = Instant::now() + crate::schedule::first_offset(target, spec.port, spec.interval);
    let mut ticker = tokio::time::interval_at(first, spec.interval);
    // After a stall, start again one interval after the late probe instead of firing a burst.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq = 0u64;
    let mut previous_ok: Option<bool> = None;
    loop {
        let scheduled = tokio::select! {
            biased;
            () = results.closed() => return,
            at = ticker.tick() => at,
        };
        let started = Instant::now();
        let late = started.saturating_duration_since(scheduled) > spec.interval;
        counters.started(late);
        if late {
            tracing::warn!(
                behind = %fmt_duration(started - scheduled),
                "probe started more than one interval late"
            );
        }
        seq += 1;
        let outcome = tokio::select! {
            biased;
            () = results.closed() => return,
            outcome = check::probe(&ctx, addr, &request) => outcome,
        };
        let latency = started.elapsed();
        let (ok, detail) = match outcome {
            Ok(Success::Connected) => (true, format!("TCP connect in {}", fmt_latency(latency))),
            Ok(Success::Status200) => (true, format!("HTTP 200 in {}", fmt_latency(latency))),
            Err(e) => {
                counters.failed();
                (false, e.to_string())
            }
        };
        if previous_ok != Some(ok) {
            // Once per change, with the evidence: "why did this backend go down?"
            if ok {
                tracing::info!(seq, %detail, "probe ok");
            } else {
                tracing::info!(seq, %detail, "probe failed");
            }
            previous_ok = Some(ok);
        } else {
            tracing::trace!(seq, ok, %detail, "probe");
        }
        let result = ProbeResult {
            target,
            ok,
            latency,
            detail,
            seq,
        };
        if results.send(result).await.is_err() {
            return;
        }
    }
}

/// Latency in milliseconds: "1.2 ms", or "0.045 ms" below a millisecond (loopback connects).
fn fmt_latency(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 1.0 {
        format!("{ms:.3} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_format() {
        assert_eq!(fmt_latency(Duration::from_micros(1234)), "1.2 ms");
        assert_eq!(fmt_latency(Duration::from_micros(45)), "0.045 ms");
        assert_eq!(fmt_latency(Duration::from_millis(100)), "100.0 ms");
    }
}
