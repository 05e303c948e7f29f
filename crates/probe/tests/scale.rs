//! 200 TCP backends probed every 100 ms for 5 s: none may be late. Prints the probe rate and the
//! CPU it cost (run with `--nocapture`; `examples/scale.rs` is the same run in release mode).

mod support;

use std::time::Duration;

#[test]
fn two_hundred_backends_at_100ms_are_never_late() {
    let (targets, interval, run) = (200, Duration::from_millis(100), Duration::from_secs(5));
    let report = support::scale::run_scale(targets, interval, run);
    report.print();
    let total = report.stats.total;
    assert_eq!(
        total.late,
        0,
        "late probes: {:?}",
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
