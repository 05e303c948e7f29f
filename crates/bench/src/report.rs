//! Results: medians per (scenario, target), the stdout table, the BENCHMARKS.md section.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::targets::Kind;

/// P testers × N prefixes each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scenario {
    /// Position on the command line: tables and the plot keep that order.
    pub order: u32,
    pub peers: u32,
    pub prefixes: u32,
}

impl Scenario {
    pub fn total(&self) -> u64 {
        u64::from(self.peers) * u64::from(self.prefixes)
    }
    /// Past 2 M routes only nexthop and BIRD run (issue #7's scale run).
    pub fn is_scale(&self) -> bool {
        self.total() > 2_000_000
    }
    pub fn label(&self) -> String {
        format!("{} × {}", self.peers, thousands(u64::from(self.prefixes)))
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.peers, self.prefixes)
    }
}

impl std::str::FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let clean: String = s.chars().filter(|c| *c != '_' && *c != ',').collect();
        let (p, n) = clean
            .split_once(['x', 'X', '×'])
            .ok_or_else(|| format!("scenario {s:?}: want PEERSxPREFIXES, e.g. 10x10000"))?;
        let peers: u32 = p
            .trim()
            .parse()
            .map_err(|_| format!("scenario {s:?}: bad peer count"))?;
        let prefixes: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("scenario {s:?}: bad prefix count"))?;
        if peers == 0 || prefixes == 0 {
            return Err(format!("scenario {s:?}: peers and prefixes must be > 0"));
        }
        if peers > 10_000 {
            return Err(format!("scenario {s:?}: at most 10000 testers"));
        }
        // 11.0.0.0 upwards must stay below 127.0.0.0.
        if u64::from(peers) * u64::from(prefixes) > 100 * (1 << 24) {
            return Err(format!("scenario {s:?}: at most 1.6 G routes"));
        }
        Ok(Scenario {
            order: 0,
            peers,
            prefixes,
        })
    }
}

/// "10,000"
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One measured run.
#[derive(Clone, Debug)]
pub struct Run {
    pub scenario: Scenario,
    pub kind: Kind,
    /// 0-based round.
    pub index: usize,
    /// Seconds from the start signal until the monitor held P×N routes.
    pub elapsed: Option<f64>,
    /// Seconds from the start signal until every tester had received the other testers'
    /// routes; None if that took longer than the harness waited.
    pub fanout: Option<f64>,
    pub peak_rss: Option<u64>,
    pub cpu_s: Option<f64>,
    /// None: converged and every check passed.
    pub failure: Option<String>,
    /// The monitor's summary line.
    pub check: String,
    /// Someone else's build ran during the run (kept, flagged with † in the table).
    pub disturbed: bool,
}

/// Median (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

/// Medians of the successful runs of one (scenario, target).
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub runs: usize,
    pub ok: usize,
    pub elapsed: Option<f64>,
    pub all_elapsed: Vec<f64>,
    /// Per successful run: whether it was disturbed.
    pub all_disturbed: Vec<bool>,
    pub fanout: Option<f64>,
    /// Runs whose fan-out did not finish within the wait.
    pub fanout_missing: usize,
    pub peak_rss: Option<f64>,
    pub cpu_s: Option<f64>,
    pub failures: Vec<String>,
}

pub fn summarize(runs: &[Run]) -> BTreeMap<(Scenario, Kind), Summary> {
    let mut by: BTreeMap<(Scenario, Kind), Vec<&Run>> = BTreeMap::new();
    for r in runs {
        by.entry((r.scenario, r.kind)).or_default().push(r);
    }
    by.into_iter()
        .map(|(k, rs)| {
            let ok: Vec<&&Run> = rs.iter().filter(|r| r.failure.is_none()).collect();
            let all_elapsed: Vec<f64> = ok.iter().filter_map(|r| r.elapsed).collect();
            let all_disturbed: Vec<bool> = ok
                .iter()
                .filter(|r| r.elapsed.is_some())
                .map(|r| r.disturbed)
                .collect();
            let fan: Vec<f64> = ok.iter().filter_map(|r| r.fanout).collect();
            let rss: Vec<f64> = ok
                .iter()
                .filter_map(|r| r.peak_rss.map(|b| b as f64))
                .collect();
            let cpu: Vec<f64> = ok.iter().filter_map(|r| r.cpu_s).collect();
            let s = Summary {
                runs: rs.len(),
                ok: ok.len(),
                elapsed: median(&all_elapsed),
                all_elapsed,
                all_disturbed,
                fanout: median(&fan),
                fanout_missing: ok.len() - fan.len(),
                peak_rss: median(&rss),
                cpu_s: median(&cpu),
                failures: rs.iter().filter_map(|r| r.failure.clone()).collect(),
            };
            (k, s)
        })
        .collect()
}

fn secs(v: Option<f64>) -> String {
    match v {
        Some(s) if s < 0.01 => format!("{s:.4}"),
        Some(s) if s < 10.0 => format!("{s:.3}"),
        Some(s) => format!("{s:.1}"),
        None => "—".into(),
    }
}

fn mb(v: Option<f64>) -> String {
    v.map(|b| format!("{:.1}", b / 1_048_576.0))
        .unwrap_or_else(|| "—".into())
}

fn rate(total: u64, s: Option<f64>) -> String {
    match s {
        Some(s) if s > 0.0 => {
            let r = total as f64 / s;
            if r >= 1e6 {
                format!("{:.2} M", r / 1e6)
            } else if r >= 1e3 {
                format!("{:.1} k", r / 1e3)
            } else {
                format!("{r:.0}")
            }
        }
        _ => "—".into(),
    }
}

/// The best (fastest median) of the targets other than nexthop and the sink.
pub fn best_other(
    sums: &BTreeMap<(Scenario, Kind), Summary>,
    sc: Scenario,
) -> Option<(Kind, &Summary)> {
    sums.iter()
        .filter(|((s, k), v)| *s == sc && k.is_target() && !k.is_nexthop() && v.elapsed.is_some())
        .min_by(|a, b| a.1.elapsed.unwrap().total_cmp(&b.1.elapsed.unwrap()))
        .map(|((_, k), v)| (*k, v))
}

/// The main table, as Markdown (also what is printed).
pub fn results_table(sums: &BTreeMap<(Scenario, Kind), Summary>) -> String {
    let mut t = String::new();
    t.push_str("| P × N | target | elapsed s (median) | each run s | fan-out s | peak RSS MB | CPU s | routes/s | check |\n");
    t.push_str("|---|---|---:|---|---:|---:|---:|---:|---|\n");
    for ((sc, k), s) in sums {
        let each: Vec<String> = s
            .all_elapsed
            .iter()
            .zip(&s.all_disturbed)
            .map(|(e, d)| secs(Some(*e)) + if *d { "†" } else { "" })
            .collect();
        let check = if s.failures.is_empty() {
            format!("ok ({}/{} runs)", s.ok, s.runs)
        } else {
            format!(
                "**{} of {} runs failed**: {}",
                s.runs - s.ok,
                s.runs,
                s.failures[0].replace('|', "/").replace('\n', " ")
            )
        };
        let fan = match (s.fanout, s.fanout_missing) {
            (_, m) if !k.is_target() => {
                let _ = m;
                "n/a".to_string()
            }
            (Some(f), 0) => secs(Some(f)),
            (f, m) => format!("{} ({m} run(s) unfinished)", secs(f)),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            sc.label(),
            k.label(),
            secs(s.elapsed),
            each.join(" "),
            fan,
            if k.is_target() {
                mb(s.peak_rss)
            } else {
                "n/a".into()
            },
            if k.is_target() {
                secs(s.cpu_s)
            } else {
                "n/a".into()
            },
            rate(sc.total(), s.elapsed),
            check
        );
    }
    t
}

/// nexthop (each shape that ran: with a virtual network as deployed, and without) against the
/// best other target and against BIRD, per scenario.
pub fn ratio_table(sums: &BTreeMap<(Scenario, Kind), Summary>) -> String {
    let mut t = String::new();
    t.push_str("| P × N | nexthop shape | nexthop s | best other | its s | nexthop / best | goal ≤ 0.5× | nexthop / BIRD s | goal ≤ 0.3× | nexthop RSS / BIRD RSS | goal ≤ 1× |\n");
    t.push_str("|---|---|---:|---|---:|---:|---|---:|---|---:|---|\n");
    let scenarios: Vec<Scenario> = {
        let mut v: Vec<Scenario> = sums.keys().map(|(s, _)| *s).collect();
        v.dedup();
        v
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let verdict = |r: Option<f64>, goal: f64| match r {
        Some(r) if r <= goal => "met".to_string(),
        Some(_) => "**not met**".to_string(),
        None => "—".to_string(),
    };
    let times = |r: Option<f64>| r.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "—".into());
    for sc in scenarios {
        let best = best_other(sums, sc);
        let bird = sums.get(&(sc, Kind::Bird));
        for (kind, shape) in [
            (Kind::Nexthop, "virtual network"),
            (Kind::NexthopBare, "none"),
        ] {
            let Some(nh) = sums.get(&(sc, kind)) else {
                continue;
            };
            let vs_best = ratio(nh.elapsed, best.and_then(|(_, b)| b.elapsed));
            let vs_bird = ratio(nh.elapsed, bird.and_then(|b| b.elapsed));
            let rss = ratio(nh.peak_rss, bird.and_then(|b| b.peak_rss));
            let _ = writeln!(
                t,
                "| {} | {shape} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                sc.label(),
                secs(nh.elapsed),
                best.map(|(k, _)| k.label()).unwrap_or("—"),
                secs(best.and_then(|(_, b)| b.elapsed)),
                times(vs_best),
                verdict(vs_best, 0.5),
                times(vs_bird),
                verdict(vs_bird, 0.3),
                times(rss),
                verdict(rss, 1.0),
            );
        }
    }
    t
}

/// How fast the injector pushes into a receiver that only reads, against the fastest target.
pub fn injector_table(sums: &BTreeMap<(Scenario, Kind), Summary>) -> String {
    let mut t = String::new();
    t.push_str("| P × N | injector→sink s | injector routes/s | fastest target | its routes/s | headroom |\n");
    t.push_str("|---|---:|---:|---|---:|---:|\n");
    for ((sc, k), s) in sums {
        if *k != Kind::Sink {
            continue;
        }
        let fastest = sums
            .iter()
            .filter(|((x, k), v)| x == sc && k.is_target() && v.elapsed.is_some())
            .min_by(|a, b| a.1.elapsed.unwrap().total_cmp(&b.1.elapsed.unwrap()));
        let head = match (s.elapsed, fastest.and_then(|(_, f)| f.elapsed)) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.1}×", b / a),
            _ => "—".into(),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} |",
            sc.label(),
            secs(s.elapsed),
            rate(sc.total(), s.elapsed),
            fastest.map(|((_, k), _)| k.label()).unwrap_or("—"),
            rate(sc.total(), fastest.and_then(|(_, f)| f.elapsed)),
            head
        );
    }
    t
}

pub const SECTION: &str = "## Route server race (issue #7)";
const BEGIN: &str = "<!-- nexthop-bench:begin -->";
const END: &str = "<!-- nexthop-bench:end -->";

/// Puts `generated` into `doc`: between the markers of the section if it has them, else as a new
/// section at the end. Text of the section outside the markers (analysis, profiles) is kept.
pub fn splice(doc: &str, generated: &str) -> String {
    let block = format!("{BEGIN}\n{}\n{END}", generated.trim_end());
    if let (Some(sec), true) = (doc.find(SECTION), true) {
        let after = &doc[sec..];
        if let (Some(b), Some(e)) = (after.find(BEGIN), after.find(END)) {
            if b < e {
                let (b, e) = (sec + b, sec + e + END.len());
                return format!("{}{}{}", &doc[..b], block, &doc[e..]);
            }
        }
        // Section without markers: put the block right under the heading.
        let line_end = sec + after.find('\n').map(|i| i + 1).unwrap_or(after.len());
        return format!("{}\n{}\n{}", &doc[..line_end], block, &doc[line_end..]);
    }
    let mut out = doc.trim_end().to_string();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(SECTION);
    out.push_str("\n\n");
    out.push_str(&block);
    out.push('\n');
    out
}

/// Rewrites the section of the file at `path` (created if missing).
pub fn write_markdown(path: &Path, generated: &str) -> Result<()> {
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    std::fs::write(path, splice(&doc, generated))
        .with_context(|| format!("write {}", path.display()))
}

/// Today's date and time, UTC, from the system clock ("2026-11-25 14:03 UTC").
pub fn now_utc() -> String {
    utc(std::time::SystemTime::now())
}

/// A time as "2026-11-25 14:03 UTC".
pub fn utc(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_parses() {
        let s: Scenario = "10x10_000".parse().unwrap();
        assert_eq!((s.peers, s.prefixes), (10, 10_000));
        assert_eq!(s.label(), "10 × 10,000");
        assert!("64x100000".parse::<Scenario>().unwrap().is_scale());
        assert!(!"100x1000".parse::<Scenario>().unwrap().is_scale());
        assert!("0x5".parse::<Scenario>().is_err());
        assert!("ten".parse::<Scenario>().is_err());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn splice_appends_then_replaces_keeping_notes() {
        let doc = "# Benchmarks\n\n## Other\ntext\n";
        let once = splice(doc, "table v1");
        assert!(once.starts_with(doc.trim_end()));
        assert!(once.contains(SECTION));
        assert!(once.contains("table v1"));
        let with_notes = once.clone() + "\nHand-written profile notes.\n";
        let twice = splice(&with_notes, "table v2");
        assert!(twice.contains("table v2"));
        assert!(!twice.contains("table v1"));
        assert!(twice.contains("Hand-written profile notes."));
        assert!(twice.contains("## Other\ntext"));
        assert_eq!(twice.matches(SECTION).count(), 1);
    }

    #[test]
    fn date_is_plausible() {
        let d = now_utc();
        assert_eq!(d.len(), "2026-11-25 14:03 UTC".len());
        assert!(d.starts_with("20"));
    }

    fn run(sc: Scenario, kind: Kind, e: f64, rss: u64) -> Run {
        Run {
            scenario: sc,
            kind,
            index: 0,
            elapsed: Some(e),
            fanout: Some(e),
            peak_rss: Some(rss),
            cpu_s: Some(e),
            failure: None,
            check: String::new(),
            disturbed: false,
        }
    }

    #[test]
    fn ratio_against_best_other() {
        let sc: Scenario = "8x4000".parse().unwrap();
        let runs = vec![
            run(sc, Kind::Nexthop, 0.05, 10 << 20),
            run(sc, Kind::NexthopBare, 0.015, 5 << 20),
            run(sc, Kind::Bird, 0.06, 11 << 20),
            run(sc, Kind::Frr, 0.10, 45 << 20),
            run(sc, Kind::Sink, 0.01, 0),
        ];
        let sums = summarize(&runs);
        assert_eq!(best_other(&sums, sc).unwrap().0, Kind::Bird);
        let t = ratio_table(&sums);
        assert!(
            t.contains("| 8 × 4,000 | virtual network | 0.050 | BIRD | 0.060 | 0.83× | **not met** | 0.83× | **not met** | 0.91× | met |"),
            "{t}"
        );
        assert!(
            t.contains("| 8 × 4,000 | none | 0.015 | BIRD | 0.060 | 0.25× | met | 0.25× | met | 0.45× | met |"),
            "{t}"
        );
        let i = injector_table(&sums);
        assert!(i.contains("1.5×"), "{i}");
    }
}
