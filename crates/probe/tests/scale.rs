//! 200 TCP backends probed every 100 ms for 5 s: the prober keeps up (lateness is measured, not asserted). Prints the probe rate and the
//! CPU it cost (run with `--nocapture`; `examples/scale.rs` is the same run in release mode).

mod support;

use std::time::Duration;

#[test]
fn two_hundred_backends_at_100ms_keep_up() {
    let (targets, interval, run) = (200, Duration::from_millis(100), Duration::from_secs(5));
    let report = support::scale::run_scale(targets, interval, run);
    report.print();
    let total = report.stats.total;
    // Lateness is timing, measured by `examples/scale.rs`, not asserted to the probe: on a
    // shared 2-core machine one stall of the whole machine (p99 350 ms seen in CI) makes every
    // target a probe or two late. What must hold is that the prober keeps up: a scheduler that
    // serialized targets or fell behind would make most probes late.
    assert!(
        total.late * 10 <= total.sent,
        "{} of {} probes late: {:?}",
        total.late,
        total.sent,
        report
            .stats
            .targets
            .iter()
            .filter(|t| t.counts.late > 0)
            .collect::<Vec<_>>()
    );
    assert_eq!(total.failed, 0);
    // Each target starts within one interval, then probes every interval.
    let expected = targets as u64 * (run.as_millis() / interval.as_millis()) as u64;
    assert!(
        total.sent >= expected * 9 / 10,
        "sent {} of ~{expected}",
        total.sent
    );
    assert!(report.stats.targets.iter().all(|t| t.counts.sent >= 40));
}
