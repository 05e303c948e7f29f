//! `nexthop-bench`: a bgperf-style race of route servers (issue #7).
//!
//! The target route server runs idle; P tester peers — the harness's own injector, each a real
//! BGP session over TCP from its own 127.x address — each advertise N unique /32s in packed
//! UPDATEs (next hop 10.x, see [`monitor`]); one monitor peer receives everything. Elapsed = from
//! the start signal (sent once every session is Established) until the monitor holds P×N
//! routes, every one of them checked for its tester's next hop and AS path. Also measured: the
//! target's peak RSS (VmHWM) and CPU seconds (utime+stime) from /proc, and the time until
//! every tester has received all the other testers' routes ("fan-out").
//!
//! Targets: `nexthop` (this repo's binary), `bird` (BIRD 2, `rs client`), `frr` (bgpd,
//! `route-server-client`), `gobgp` (`route-server-client`), and `sink`: no route server, the
//! testers push into the harness's own receiver — the injector's (and monitor's) own speed.
//!
//! ```text
//!  plan (rounds × scenarios × targets) ──> race: start target ──> establish monitor + P testers
//!     ──> settle ──> Go: testers write pre-encoded UPDATEs ──> monitor counts/checks to P×N
//!     ──> fan-out wait ──> /proc usage ──> stop ──> medians ──> stdout, BENCHMARKS.md, PNG
//! ```

mod monitor;
mod plot;
mod procstat;
mod report;
mod speaker;
mod targets;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;
use tokio::task::JoinSet;

use monitor::{tester_next_hop_ip, Collector, Layout};
use report::{Run, Scenario};
use speaker::{Identity, Phase, Tester, TesterStats};
use targets::{Binaries, Kind, Net, MONITOR_ASN, RS_ASN};

/// The scenarios of issue #7.
const DEFAULT_SCENARIOS: &str = "10x10000,100x1000,8x4000,64x100000";
const DEFAULT_TARGETS: &str = "sink,nexthop,nexthop-bare,bird,frr,gobgp";

#[derive(Parser, Debug)]
#[command(
    name = "nexthop-bench",
    version,
    about = "bgperf-style route server race: nexthop against BIRD, FRR and GoBGP over real BGP sessions on 127.0.0.0/8",
    after_help = "Examples:\n  nexthop-bench --small                      # CI: 4 × 1,000, nexthop only; exit 1 unless it converges and checks out\n  nexthop-bench --runs 3                     # everything of issue #7, writes BENCHMARKS.md and the PNG\n  nexthop-bench --scenario 8x4000 --targets nexthop,bird --runs 5 --no-write"
)]
struct Cli {
    /// Scenarios, PEERSxPREFIXES, comma-separated or repeated [default: 10x10000,100x1000,8x4000,64x100000]
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<Scenario>,
    /// Targets (sink = the injector into the harness's own receiver, no route server) [default: sink,nexthop,nexthop-bare,bird,frr,gobgp]
    #[arg(long, value_delimiter = ',')]
    targets: Vec<Kind>,
    /// Runs per scenario and target; medians are reported [default: 3, 1 with --small]
    #[arg(long)]
    runs: Option<usize>,
    /// Runs for GoBGP when fewer than --runs (it takes minutes per round)
    #[arg(long)]
    gobgp_runs: Option<usize>,
    /// CI mode: 4 peers × 1,000 prefixes, nexthop only, 1 run, nothing written; exits non-zero
    /// unless the monitor converges and every check passes
    #[arg(long)]
    small: bool,
    /// Also run FRR and GoBGP in scale scenarios (> 2 M routes); issue #7 runs only nexthop and BIRD there
    #[arg(long)]
    all_at_scale: bool,
    /// The nexthop binary [default: next to this binary, else target/{release,debug}/nexthop]
    #[arg(long)]
    nexthop_bin: Option<PathBuf>,
    /// TCP port of the target
    #[arg(long, default_value_t = 1790)]
    port: u16,
    /// The race in IPv6 unicast: /64s in MP_REACH_NLRI with IPv6 next hops, over the same
    /// IPv4 sessions (the targets get IPv6 unicast configured instead of IPv4)
    #[arg(long)]
    ipv6: bool,
    /// Second octet of the 127.N.0.0/16 the harness uses
    #[arg(long, default_value_t = 77)]
    net: u8,
    /// Give up on a run after this many seconds from the start signal
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Wait between "all Established" and the start signal, in milliseconds
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// The Markdown file whose "Route server race (issue #7)" section is rewritten
    /// [default: BENCHMARKS.md in the current directory or the nearest parent that has one]
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// The PNG plot [default: bench-route-server.png next to the Markdown file]
    #[arg(long)]
    plot: Option<PathBuf>,
    /// TTF font for the plot's text
    #[arg(
        long,
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    font: PathBuf,
    /// Print the results only; write neither Markdown nor PNG
    #[arg(long)]
    no_write: bool,
    /// On a shared machine: wait before each run until no process of these names (e.g.
    /// cargo,rustc) has run for 3 s, and repeat a run during which one appeared
    #[arg(long, value_delimiter = ',')]
    wait_idle: Vec<String>,
}

/// Watches /proc for processes that would make timings noise (someone else's build).
struct IdleWatch {
    names: Vec<String>,
    state: Arc<std::sync::Mutex<(Instant, bool)>>,
}

impl IdleWatch {
    fn start(names: Vec<String>) -> Self {
        let state = Arc::new(std::sync::Mutex::new((Instant::now(), false)));
        let (st, ns) = (state.clone(), names.clone());
        std::thread::spawn(move || loop {
            let busy = Self::busy(&ns);
            {
                let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
                if busy {
                    s.0 = Instant::now();
                    s.1 = true;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        });
        IdleWatch { names, state }
    }
    fn busy(names: &[String]) -> bool {
        let me = std::process::id().to_string();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return false;
        };
        dir.flatten().any(|e| {
            let pid = e.file_name();
            let pid = pid.to_string_lossy();
            pid.bytes().all(|b| b.is_ascii_digit())
                && pid != me
                && std::fs::read_to_string(e.path().join("comm"))
                    .is_ok_and(|c| names.iter().any(|n| n == c.trim()))
        })
    }
    /// No such process seen for `d`.
    fn idle_for(&self, d: Duration) -> bool {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0.elapsed() >= d && !Self::busy(&self.names)
    }
    fn reset(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 = false;
    }
    /// Seen since the last reset.
    fn disturbed(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}

struct Env {
    net: Net,
    bins: Binaries,
    timeout: Duration,
    settle: Duration,
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = match rt.block_on(real_main(cli)) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("nexthop-bench: {e:#}");
            2
        }
    };
    rt.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(code);
}

/// The nexthop binary: next to ours (same cargo profile), else under a target directory.
fn find_nexthop(explicit: Option<PathBuf>) -> Option<PathBuf> {
    if explicit.is_some() {
        return explicit;
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("nexthop"));
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        roots.push(PathBuf::from(t));
    }
    roots.push(PathBuf::from("target"));
    roots.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    for r in roots {
        for profile in ["release", "debug"] {
            candidates.push(r.join(profile).join("nexthop"));
        }
    }
    candidates.into_iter().find(|p| p.is_file())
}

fn default_markdown() -> PathBuf {
    let mut dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    loop {
        let p = dir.join("BENCHMARKS.md");
        if p.is_file() {
            return p;
        }
        if !dir.pop() {
            return PathBuf::from("BENCHMARKS.md");
        }
    }
}

/// One run to do.
#[derive(Clone, Copy, Debug)]
struct Planned {
    round: usize,
    scenario: Scenario,
    kind: Kind,
}

fn plan(cli: &Cli) -> Result<(Vec<Planned>, Vec<String>)> {
    let scenarios: Vec<Scenario> = match (&cli.scenario[..], cli.small) {
        ([], true) => vec!["4x1000".parse().map_err(|e: String| anyhow!(e))?],
        ([], false) => DEFAULT_SCENARIOS
            .split(',')
            .map(|s| s.parse().map_err(|e: String| anyhow!(e)))
            .collect::<Result<_>>()?,
        (s, _) => s.to_vec(),
    };
    let scenarios: Vec<Scenario> = scenarios
        .into_iter()
        .enumerate()
        .map(|(i, s)| Scenario {
            order: i as u32,
            ..s
        })
        .collect();
    let targets: Vec<Kind> = match (&cli.targets[..], cli.small) {
        ([], true) => vec![Kind::Nexthop],
        ([], false) => DEFAULT_TARGETS
            .split(',')
            .map(|s| s.parse().map_err(|e: String| anyhow!(e)))
            .collect::<Result<_>>()?,
        (t, _) => {
            let mut v = t.to_vec();
            v.sort();
            v.dedup();
            v
        }
    };
    let runs = cli.runs.unwrap_or(if cli.small { 1 } else { 3 });
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let gobgp_runs = cli.gobgp_runs.unwrap_or(runs).min(runs);
    let mut notes = Vec::new();
    let mut out = Vec::new();
    for round in 0..runs {
        for sc in &scenarios {
            for &kind in &targets {
                if sc.is_scale() && matches!(kind, Kind::Frr | Kind::Gobgp) && !cli.all_at_scale {
                    if round == 0 {
                        notes.push(format!(
                            "{}: {} not run (scale scenario: nexthop and BIRD only, as issue #7 asks; --all-at-scale runs it)",
                            sc.label(),
                            kind.label()
                        ));
                    }
                    continue;
                }
                if kind == Kind::Gobgp && round >= gobgp_runs {
                    continue;
                }
                out.push(Planned {
                    round,
                    scenario: *sc,
                    kind,
                });
            }
        }
    }
    if gobgp_runs < runs && targets.contains(&Kind::Gobgp) {
        notes.push(format!(
            "GoBGP: {gobgp_runs} run(s) per scenario instead of {runs} (--gobgp-runs), it takes minutes per round"
        ));
    }
    Ok((out, notes))
}

/// Set by SIGINT/SIGTERM: the current run stops, its target is stopped, nothing is written.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
}

async fn real_main(cli: Cli) -> Result<bool> {
    tokio::spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let (planned, notes) = plan(&cli)?;
    // The tree the nexthop binary was most likely built from: taken now, not after the runs.
    let git_at_start =
        git_revision(&std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")));
    let env = Env {
        net: Net {
            net: cli.net,
            port: cli.port,
            ipv6: cli.ipv6,
        },
        bins: Binaries {
            nexthop: find_nexthop(cli.nexthop_bin.clone()),
        },
        timeout: Duration::from_secs(cli.timeout),
        settle: Duration::from_millis(cli.settle_ms),
    };
    // Fail before the first run, not in the middle: every target's binary must be there.
    let mut kinds: Vec<Kind> = planned.iter().map(|p| p.kind).collect();
    kinds.sort();
    kinds.dedup();
    for k in &kinds {
        match k {
            Kind::Sink => {}
            Kind::Nexthop | Kind::NexthopBare => {
                if env.bins.nexthop.is_none() {
                    bail!("nexthop binary not found: `cargo build --release -p nexthop`, or pass --nexthop-bin");
                }
            }
            Kind::Bird | Kind::Frr | Kind::Gobgp => {
                let (b, pkg) = match k {
                    Kind::Bird => ("bird", "bird2"),
                    Kind::Frr => ("bgpd", "frr"),
                    _ => ("gobgpd", "gobgpd"),
                };
                if labtest::find_binary(b).is_none() {
                    bail!("`{b}` not found: install the Debian package `{pkg}` (or leave {} out of --targets)", k.name());
                }
            }
        }
    }
    let versions: Vec<(Kind, String)> = kinds
        .iter()
        .filter_map(|k| targets::version(*k, &env.bins).map(|v| (*k, v)))
        .collect();
    for n in &notes {
        println!("note: {n}");
    }
    if let Some(nh) = &env.bins.nexthop {
        if kinds.iter().any(|k| k.is_nexthop()) {
            println!("nexthop binary: {}", nh.display());
        }
    }

    let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
    let overall = mp.add(ProgressBar::new(planned.len() as u64));
    overall.set_style(
        ProgressStyle::with_template(
            "{prefix:>5} [{bar:30.cyan/blue}] {pos}/{len} runs  elapsed {elapsed_precise}  {msg}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    overall.set_prefix("all");
    let bar = mp.add(ProgressBar::new(1));
    bar.set_style(
        ProgressStyle::with_template("{prefix:>5} [{bar:30.green/white}] {human_pos}/{human_len} routes at the monitor  {per_sec}  {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_prefix("run");

    let watch_idle = (!cli.wait_idle.is_empty()).then(|| IdleWatch::start(cli.wait_idle.clone()));
    let mut runs: Vec<Run> = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        overall.set_message(format!(
            "{} {} run {}",
            p.scenario.label(),
            p.kind.label(),
            p.round + 1
        ));
        let mut attempt = 0;
        let r = loop {
            attempt += 1;
            if let Some(w) = &watch_idle {
                let mut said = false;
                while !w.idle_for(Duration::from_secs(3)) && !interrupted() {
                    if !said {
                        bar.set_message(format!("waiting: {} running", w.names.join("/")));
                        said = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                w.reset();
            }
            bar.reset();
            bar.set_length(p.scenario.total());
            bar.set_position(0);
            let r = run_once(&env, p.scenario, p.kind, p.round, &bar).await;
            match &watch_idle {
                // A long run (GoBGP takes minutes) is kept and flagged: a build's few seconds
                // barely move it, and repeating it could take all day.
                Some(w)
                    if w.disturbed()
                        && !interrupted()
                        && attempt < 10
                        && r.elapsed.is_none_or(|e| e < 60.0) =>
                {
                    mp.suspend(|| {
                        println!(
                            "[{}/{}] {} {} run {}: disturbed by {} during the run, repeating",
                            i + 1,
                            planned.len(),
                            p.scenario.label(),
                            p.kind.label(),
                            p.round + 1,
                            w.names.join("/")
                        )
                    });
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Some(w) if w.disturbed() => {
                    let mut r = r;
                    r.disturbed = true;
                    break r;
                }
                _ => break r,
            }
        };
        let line = format!(
            "[{}/{}] {} {} run {}: {}",
            i + 1,
            planned.len(),
            p.scenario.label(),
            p.kind.label(),
            p.round + 1,
            describe_run(&r)
        );
        mp.suspend(|| println!("{line}"));
        runs.push(r);
        if interrupted() {
            bail!("interrupted; the target was stopped, nothing written");
        }
        overall.inc(1);
        // Let the kernel reap the sockets and the target's memory go before the next run.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bar.finish_and_clear();
    overall.finish_and_clear();

    let sums = report::summarize(&runs);
    let results = report::results_table(&sums);
    let ratios = report::ratio_table(&sums);
    let injector = report::injector_table(&sums);
    println!("\n{results}");
    if kinds.iter().any(|k| k.is_nexthop())
        && kinds
            .iter()
            .any(|k| matches!(k, Kind::Bird | Kind::Frr | Kind::Gobgp))
    {
        println!("{ratios}");
    }
    if kinds.contains(&Kind::Sink) {
        println!("{injector}");
    }
    let all_ok = runs.iter().all(|r| r.failure.is_none());

    if !cli.small && !cli.no_write {
        let md = cli.markdown.clone().unwrap_or_else(default_markdown);
        let png = cli.plot.clone().unwrap_or_else(|| {
            md.parent()
                .unwrap_or(Path::new("."))
                .join("bench-route-server.png")
        });
        let title = format!(
            "bgperf-style route server race, {} — median of {} run(s)",
            report::now_utc(),
            cli.runs.unwrap_or(3)
        );
        let plotted = match plot::plot(&png, &cli.font, &sums, &title) {
            Ok(()) => {
                println!("plot: {}", png.display());
                true
            }
            Err(e) => {
                eprintln!("warning: no plot ({e:#})");
                false
            }
        };
        let generated = markdown(
            &git_at_start,
            &cli,
            &notes,
            &versions,
            &results,
            &ratios,
            &injector,
            &kinds,
            plotted.then_some(&png),
            &md,
        );
        report::write_markdown(&md, &generated)?;
        println!("results: {}", md.display());
    }
    if all_ok {
        println!("ok: every run converged and every route checked out");
    } else {
        println!(
            "FAILED: {} of {} runs failed",
            runs.iter().filter(|r| r.failure.is_some()).count(),
            runs.len()
        );
    }
    Ok(all_ok)
}

#[allow(clippy::too_many_arguments)]
fn markdown(
    git_at_start: &Option<String>,
    cli: &Cli,
    notes: &[String],
    versions: &[(Kind, String)],
    results: &str,
    ratios: &str,
    injector: &str,
    kinds: &[Kind],
    png: Option<&PathBuf>,
    md: &Path,
) -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut s = String::new();
    s.push_str(&format!(
        "Command: `nexthop-bench {}` (the harness built with `cargo build --release -p bench`, the nexthop binary as under Versions, run as root from the workspace root).\n\n",
        args.join(" ")
    ));
    s.push_str(&format!(
        "Date: {}. Machine: {}.\n\n",
        report::now_utc(),
        procstat::machine()
    ));
    let git = git_at_start.clone();
    let v: Vec<String> = versions
        .iter()
        .map(|(k, v)| match (k, &git) {
            (Kind::Nexthop | Kind::NexthopBare, Some(g)) => {
                format!("{}: `{}` ({g} when the harness started)", k.label(), v)
            }
            _ => format!("{}: `{}`", k.label(), v),
        })
        .collect();
    if !v.is_empty() {
        s.push_str(&format!("Versions: {}.\n\n", v.join("; ")));
    }
    s.push_str(
        "Setup (bgperf style): the target runs idle on 127.77.0.1; P tester peers (the harness's own injector, \
         each a real BGP session over TCP from its own 127.77.x address) each announce N unique /32s \
         (11.0.0.0 upwards) in packed 4096-octet UPDATEs with AS_PATH = the tester's AS and NEXT_HOP 10.x \
         (FRR and BIRD treat 127/8 next hops as martians); one monitor peer receives everything. \
         Every target is a route server passing routes unchanged to every other peer: BIRD `rs client` + \
         `next hop keep` (multihop on loopback, next hops resolved through a static 10/8 in a separate IGP table), \
         FRR `route-server-client` + `no bgp ebgp-requires-policy` (bgpd -Z), GoBGP `route-server-client`, \
         nexthop `branch_to_branch = true` (it prepends its ASN 65515: its documented behaviour). \
         **Elapsed**: start signal (sent once every session is Established, 1 s settle) until the monitor \
         holds P×N routes — every received route is checked for its tester's next hop and AS path (\"65515 AS\" \
         for nexthop, \"AS\" for the others) plus 3 spot samples per tester. **Fan-out**: until every tester \
         has received all other testers' routes (waited for at most max(5 s, elapsed) after convergence). \
         **Peak RSS**: VmHWM of the target at the end of the run; **CPU s**: utime+stime of the target \
         during the race (start signal to end of fan-out wait). Medians over the successful runs; rounds \
         interleave the targets. The machine is shared: with `--wait-idle cargo,rustc` each run waits \
         until no build has run for 3 s, a run under 60 s during which one started is repeated, a longer \
         one is kept and marked †.\n\n",
    );
    for n in notes {
        s.push_str(&format!("- {n}\n"));
    }
    if !notes.is_empty() {
        s.push('\n');
    }
    s.push_str(results);
    if kinds.iter().any(|k| k.is_nexthop()) {
        s.push_str("\nnexthop against the best of BIRD, FRR and GoBGP, in both shapes: with a virtual network as SPEC §6 deploys it (target `nexthop`: the fabric holds and resolves every route, one NIC) and without (`nexthop-bare`). Goals: elapsed ≤ 0.5× the best (issue #7), ≤ 0.3× BIRD's and peak RSS ≤ BIRD's with a virtual network (issue #12):\n\n");
        s.push_str(ratios);
    }
    if kinds.contains(&Kind::Sink) {
        s.push_str(
            "\nInjector check: the same testers pushing into the harness's own receiver (no route server; \
             the receiver decodes and checks every UPDATE like the monitor). Headroom = fastest target's \
             elapsed / injector's elapsed.\n\n",
        );
        s.push_str(injector);
    }
    if let Some(p) = png {
        let rel = p
            .strip_prefix(md.parent().unwrap_or(Path::new("")))
            .unwrap_or(p);
        s.push_str(&format!("\n![route server race]({})\n", rel.display()));
    }
    let _ = cli;
    s
}

/// "git 3870edb" (+ ", uncommitted changes in the tree") of the repository at `dir`.
fn git_revision(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("git {rev}, with uncommitted changes in the tree")
    } else {
        format!("git {rev}")
    })
}

fn describe_run(r: &Run) -> String {
    let mut s = match r.elapsed {
        Some(e) => format!("{e:.3} s"),
        None => "did not converge".into(),
    };
    if let Some(f) = r.fanout {
        s.push_str(&format!(", fan-out {f:.3} s"));
    }
    if let Some(m) = r.peak_rss {
        s.push_str(&format!(", peak RSS {:.1} MB", m as f64 / 1_048_576.0));
    }
    if let Some(c) = r.cpu_s {
        s.push_str(&format!(", CPU {c:.2} s"));
    }
    if r.index > 0 {
        // Later rounds: the check line was shown in round 1 already.
        return match &r.failure {
            None => s + " — ok",
            Some(f) => format!("{s} — FAILED: {f}"),
        };
    }
    if r.disturbed {
        s.push_str(" (another build ran during this run)");
    }
    match &r.failure {
        None => s.push_str(&format!(" — ok ({})", r.check)),
        Some(f) => s.push_str(&format!(" — FAILED: {f}")),
    }
    s
}

async fn run_once(env: &Env, sc: Scenario, kind: Kind, index: usize, bar: &ProgressBar) -> Run {
    let mut run = Run {
        scenario: sc,
        kind,
        index,
        elapsed: None,
        fanout: None,
        peak_rss: None,
        cpu_s: None,
        failure: None,
        check: String::new(),
        disturbed: false,
    };
    if let Err(e) = race(env, sc, kind, bar, &mut run).await {
        if run.failure.is_none() {
            run.failure = Some(format!("{e:#}"));
        }
    }
    run
}

/// Tasks of one race, stopped together.
struct Speakers {
    monitor: Option<tokio::task::JoinHandle<Result<()>>>,
    testers: Vec<tokio::task::JoinHandle<()>>,
    stats: Vec<Arc<TesterStats>>,
}

async fn race(env: &Env, sc: Scenario, kind: Kind, bar: &ProgressBar, run: &mut Run) -> Result<()> {
    let p = sc.peers as usize;
    let layout = Layout::new(sc.peers, sc.prefixes).with_ipv6(env.net.ipv6);
    let paths: Vec<Vec<u32>> = (0..p)
        .map(|t| {
            if kind.prepends() {
                vec![RS_ASN, targets::tester_asn(t)]
            } else {
                vec![targets::tester_asn(t)]
            }
        })
        .collect();
    let collector = Arc::new(Collector::new(layout, paths));
    let (phase_tx, phase_rx) = watch::channel(Phase::Ready);
    let peers = targets::peers(&env.net, p, kind.is_target());
    // nexthop counts held + incoming against the limit; keep it far away.
    let max_routes = u64::from(sc.prefixes) * 2 + 10_000;
    let sink = (kind == Kind::Sink).then(|| (collector.clone(), phase_rx.clone()));
    let mut target = tokio::task::block_in_place(|| {
        targets::start(kind, &env.net, &peers, &env.bins, max_routes, sink)
    })?;
    let mut speakers = Speakers {
        monitor: None,
        testers: Vec::new(),
        stats: Vec::new(),
    };
    let res = drive(
        env,
        sc,
        kind,
        layout,
        &collector,
        &phase_tx,
        &phase_rx,
        &mut target,
        &mut speakers,
        bar,
        run,
    )
    .await;
    let _ = phase_tx.send(Phase::Stop);
    let stop_all = async {
        if let Some(m) = speakers.monitor.take() {
            let _ = m.await;
        }
        for t in speakers.testers.drain(..) {
            let _ = t.await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), stop_all).await;
    tokio::task::block_in_place(|| target.stop());
    if let Err(e) = &res {
        if std::env::var_os("NEXTHOP_BENCH_DEBUG").is_some() {
            if let Some(d) = target.workdir() {
                eprintln!("debug: target workdir {} ({e:#})", d.display());
            }
        }
    }
    res
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    env: &Env,
    sc: Scenario,
    kind: Kind,
    layout: Layout,
    collector: &Arc<Collector>,
    phase_tx: &watch::Sender<Phase>,
    phase_rx: &watch::Receiver<Phase>,
    target: &mut targets::Running,
    speakers: &mut Speakers,
    bar: &ProgressBar,
    run: &mut Run,
) -> Result<()> {
    let p = sc.peers as usize;
    let net = env.net;
    bar.set_message(format!(
        "{} {}: establishing {} sessions",
        sc.label(),
        kind.label(),
        p + usize::from(kind.is_target())
    ));
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(60)
        + Duration::from_millis(200 * p as u64);
    let mut monitor = kind.is_target().then(|| {
        tokio::spawn(speaker::connect(
            Identity {
                addr: net.monitor(),
                asn: MONITOR_ASN,
                ipv6: net.ipv6,
            },
            net.target_sock(),
            deadline,
        ))
    });
    let mut joins: JoinSet<Result<Tester>> = JoinSet::new();
    for t in 0..p {
        joins.spawn(async move {
            let id = Identity {
                addr: net.tester(t),
                asn: targets::tester_asn(t),
                ipv6: net.ipv6,
            };
            let session = speaker::connect(id, net.target_sock(), deadline).await?;
            check_peer_as(&session, kind)?;
            let updates = speaker::encode_routes(
                &layout,
                t,
                id.asn,
                tester_next_hop_ip(&layout, t),
                &session.ctx,
            );
            Ok(Tester {
                index: t,
                session,
                updates,
                stats: Arc::new(TesterStats::default()),
            })
        });
    }
    let mut testers: Vec<Tester> = Vec::with_capacity(p);
    loop {
        let next = tokio::time::timeout(Duration::from_millis(500), joins.join_next()).await;
        match next {
            Ok(None) => break,
            Ok(Some(r)) => match r {
                Ok(Ok(t)) => testers.push(t),
                Ok(Err(e)) => bail!("{e:#}{}", target_said(target)),
                Err(e) => bail!("tester task: {e}"),
            },
            Err(_) => {
                if interrupted() {
                    bail!("interrupted");
                }
                if !target.alive() {
                    bail!(
                        "{} exited while sessions were being established{}",
                        kind.label(),
                        target_said(target)
                    );
                }
            }
        }
    }
    if let Some(m) = monitor.take() {
        let session = m
            .await
            .map_err(|e| anyhow!("monitor task: {e}"))?
            .map_err(|e| anyhow!("monitor: {e:#}{}", target_said(target)))?;
        speakers.monitor = Some(tokio::spawn(speaker::receive(
            session,
            collector.clone(),
            phase_rx.clone(),
        )));
    }
    testers.sort_by_key(|t| t.index);
    for t in testers {
        speakers.stats.push(t.stats.clone());
        speakers
            .testers
            .push(tokio::spawn(t.run(layout, phase_rx.clone())));
    }
    tokio::time::sleep(env.settle).await;
    if collector.held() != 0 {
        bail!(
            "the monitor received {} routes before the start signal",
            collector.held()
        );
    }
    let pid = target.pid();
    let u0 = pid.and_then(procstat::usage);
    bar.set_message(format!("{} {}", sc.label(), kind.label()));
    bar.reset_elapsed();
    bar.reset_eta();
    let t0 = Instant::now();
    phase_tx
        .send(Phase::Go)
        .map_err(|_| anyhow!("no speaker left"))?;
    let total = layout.total();
    let done = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        bar.set_position(collector.held());
        if let Some(d) = collector.done_at() {
            break d;
        }
        if interrupted() {
            bail!("interrupted");
        }
        if t0.elapsed() > env.timeout {
            let c = collector.check();
            bail!(
                "did not converge within {} s: {}",
                env.timeout.as_secs(),
                c.summary()
            );
        }
        if let Some(e) = tester_error(&speakers.stats) {
            bail!("{e}{}", target_said(target));
        }
        if let Some(m) = &speakers.monitor {
            if m.is_finished() {
                let m = speakers.monitor.take().expect("checked");
                let r = m.await.map_err(|e| anyhow!("monitor task: {e}"))?;
                bail!(
                    "monitor session ended: {}{}",
                    r.err().map(|e| format!("{e:#}")).unwrap_or_default(),
                    target_said(target)
                );
            }
        }
        if !target.alive() {
            bail!(
                "{} exited during the race{}",
                kind.label(),
                target_said(target)
            );
        }
    };
    let elapsed = done.duration_since(t0).as_secs_f64();
    run.elapsed = Some(elapsed);
    bar.set_position(total);
    // Fan-out: every tester gets the other P−1 testers' routes.
    if kind.is_target() && p > 1 {
        bar.set_message(format!(
            "{} {}: converged in {elapsed:.3} s, waiting for fan-out",
            sc.label(),
            kind.label()
        ));
        let want = (p as u64 - 1) * u64::from(sc.prefixes);
        let cap = Duration::from_secs_f64(elapsed.max(5.0));
        let until = Instant::now() + cap;
        loop {
            if speakers
                .stats
                .iter()
                .all(|s| s.others_routes.load(std::sync::atomic::Ordering::Relaxed) >= want)
            {
                run.fanout = Some(t0.elapsed().as_secs_f64());
                break;
            }
            if Instant::now() > until || tester_error(&speakers.stats).is_some() || !target.alive()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if let (Some(pid), Some(u0)) = (pid, u0) {
        if let Some(u1) = procstat::usage(pid) {
            run.cpu_s = Some(u1.cpu_s - u0.cpu_s);
            run.peak_rss = Some(u1.peak_rss);
        }
    }
    let check = collector.check();
    run.check = check.summary();
    if let Some(e) = tester_error(&speakers.stats) {
        run.failure = Some(format!("{e}{}", target_said(target)));
    } else if !check.passed() {
        run.failure = Some(format!(
            "{}; {}",
            check.summary(),
            check
                .problems
                .iter()
                .take(4)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Ok(())
}

/// The target must speak as the route server's AS.
fn check_peer_as(session: &speaker::Session, kind: Kind) -> Result<()> {
    let asn = session.peer.asn();
    if asn != RS_ASN {
        bail!("{} sent OPEN with AS {asn}, want {RS_ASN}", kind.label());
    }
    Ok(())
}

fn tester_error(stats: &[Arc<TesterStats>]) -> Option<String> {
    stats.iter().enumerate().find_map(|(t, s)| {
        s.error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|e| format!("tester {t}: {e}"))
    })
}

/// The end of the target's output, for error messages.
fn target_said(target: &targets::Running) -> String {
    let tail = target.output_tail(12);
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!(
            "\n--- {} output (last lines) ---\n{tail}",
            target.kind.label()
        )
    }
}
