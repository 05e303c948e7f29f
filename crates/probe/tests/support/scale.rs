//! The scale run shared by `tests/scale.rs` and `examples/scale.rs`: N TCP backends on
//! 127.82.x.y, probed at one interval for a while. The backends get their own thread and
//! runtime, the prober runs alone on the calling thread, so that thread's CPU time is the
//! prober's cost (tasks, timers, connect syscalls including the loopback handshake) and the
//! process's CPU time adds the backends' accepts.

use std::net::IpAddr;
use std::time::Duration;

use probe::{spawn, ProbeSpec, ProbeStats};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{cpu_seconds, ip, listen_all, TcpBackend};

pub struct ScaleReport {
    pub targets: usize,
    pub interval: Duration,
    pub wall: Duration,
    pub stats: ProbeStats,
    pub results: u64,
    pub ok: u64,
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    /// CPU seconds of the thread running the prober: (user, system).
    pub prober_cpu: (f64, f64),
    /// CPU seconds of the whole process (prober + backends): (user, system).
    pub process_cpu: (f64, f64),
}

impl ScaleReport {
    pub fn probes_per_second(&self) -> f64 {
        self.stats.total.sent as f64 / self.wall.as_secs_f64()
    }

    pub fn print(&self) {
        let wall = self.wall.as_secs_f64();
        let prober = self.prober_cpu.0 + self.prober_cpu.1;
        let process = self.process_cpu.0 + self.process_cpu.1;
        println!(
            "scale: {} TCP targets at {:?} for {:.2} s: {} probes sent ({:.0}/s), {} results, {} ok, \
             {} failed, {} late; latency p50 {:.3} ms p99 {:.3} ms; CPU: prober thread {:.2} s \
             (user {:.2} + sys {:.2}; {:.3} CPU-s per wall-s, {:.1} us per probe), whole process \
             {:.2} s (user {:.2} + sys {:.2}; {:.3} CPU-s per wall-s)",
            self.targets,
            self.interval,
            wall,
            self.stats.total.sent,
            self.probes_per_second(),
            self.results,
            self.ok,
            self.stats.total.failed,
            self.stats.total.late,
            self.latency_p50.as_secs_f64() * 1e3,
            self.latency_p99.as_secs_f64() * 1e3,
            prober,
            self.prober_cpu.0,
            self.prober_cpu.1,
            prober / wall,
            prober * 1e6 / self.stats.total.sent.max(1) as f64,
            process,
            self.process_cpu.0,
            self.process_cpu.1,
            process / wall,
        );
    }
}

pub fn run_scale(targets: usize, interval: Duration, run: Duration) -> ScaleReport {
    assert!((1..=250 * 250).contains(&targets));
    let ips: Vec<IpAddr> = (0..targets)
        .map(|i| ip(127, 82, (i / 250) as u8, (i % 250 + 1) as u8))
        .collect();

    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let backend_ips = ips.clone();
    let backends = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (port, listeners) = listen_all(&backend_ips, 1024);
            let _backends: Vec<_> = listeners.into_iter().map(TcpBackend::new).collect();
            port_tx.send(port).expect("send port");
            let _ = stop_rx.await;
        });
    });
    let port = port_rx.recv().expect("backends started");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(async move {
        let thread0 = cpu_seconds("/proc/thread-self/stat");
        let process0 = cpu_seconds("/proc/self/stat");
        let t0 = Instant::now();
        let (tx, mut rx) = mpsc::channel(1024);
        let prober = spawn(ProbeSpec::tcp(port, interval), ips, tx);
        let (mut results, mut ok) = (0u64, 0u64);
        let mut latencies = Vec::new();
        let deadline = t0 + run;
        while let Ok(Some(r)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            results += 1;
            ok += u64::from(r.ok);
            latencies.push(r.latency);
        }
        let wall = t0.elapsed();
        let stats = prober.stats();
        drop(prober);
        let since = |start: (f64, f64), now: (f64, f64)| (now.0 - start.0, now.1 - start.1);
        let prober_cpu = since(thread0, cpu_seconds("/proc/thread-self/stat"));
        let process_cpu = since(process0, cpu_seconds("/proc/self/stat"));
        latencies.sort();
        let pct = |p: usize| {
            latencies
                .get(latencies.len().saturating_sub(1) * p / 100)
                .copied()
                .unwrap_or_default()
        };
        ScaleReport {
            targets,
            interval,
            wall,
            stats,
            results,
            ok,
            latency_p50: pct(50),
            latency_p99: pct(99),
            prober_cpu,
            process_cpu,
        }
    });
    let _ = stop_tx.send(());
    backends.join().expect("backend thread");
    report
}
