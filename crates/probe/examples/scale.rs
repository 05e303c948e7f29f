//! Probe-rate benchmark: `cargo run --release -p probe --example scale -- [targets] [interval_ms] [seconds]`
//! (defaults 200, 100, 5). TCP backends on 127.82.x.y; prints probes/s and CPU use.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

fn main() {
    let arg = |i: usize, default: u64| -> u64 {
        std::env::args().nth(i).map_or(default, |a| {
            a.parse()
                .unwrap_or_else(|_| panic!("argument {i}: not a number: {a}"))
        })
    };
    let targets = arg(1, 200) as usize;
    let interval = Duration::from_millis(arg(2, 100));
    let run = Duration::from_secs(arg(3, 5));
    let report = support::scale::run_scale(targets, interval, run);
    report.print();
    if report.stats.total.late > 0 {
        std::process::exit(1);
    }
}
