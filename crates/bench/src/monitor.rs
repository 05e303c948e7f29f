//! What the testers announce ([`Layout`]) and how the monitor checks what it receives
//! ([`Collector`]).
//!
//! Tester `t` announces the /32s `11.0.0.0 + t·N + i` for `i < N`, with ORIGIN IGP, AS_PATH
//! `[AS_t]` and NEXT_HOP `10.(t/256+1).(t%256).1`. So any /32 the monitor receives names its
//! tester, and the monitor checks every route — not only a sample — against that tester's
//! next hop and the AS path the target is expected to send (`[AS_t]` for a transparent route
//! server, `[65515, AS_t]` for nexthop, which prepends its ASN on branch-to-branch routes). On
//! top of that it keeps three spot samples per tester (its first, middle and last prefix) as
//! received, for the report.
//!
//! IPv6 mode (`--ipv6`): the same plan in IPv6 unicast over the same IPv4 sessions (MP-BGP):
//! tester `t`'s prefix `k` (the IPv4 mode's /32 address) is the /64 `2001:db8:KKKK:KKKK::/64`,
//! its next hop `fd00:0:(t/256+1):(t%256)::1`, carried in MP_REACH_NLRI.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use bgp::wire::attrs::{AsSegment, MpNextHop};
use bgp::wire::{Ipv6Prefix, Prefix, Update};

/// The address space of the virtual network nexthop runs with (`nexthop` target): it covers
/// every tester's next hop (10.x), as a hub's address space covers its NVAs, and it is the one
/// prefix the route server itself advertises, so the monitor accepts it besides the testers'.
pub const VNET_SPACE: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 0, 0, 0), 8);
/// The same in IPv6 mode: it covers the testers' IPv6 next hops (fd00::/8).
pub const VNET_SPACE6: (Ipv6Addr, u8) = (Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0), 8);
/// The /32 the IPv6 mode's /64s live in (documentation prefix).
const PREFIX6_TOP: u128 = 0x2001_0db8;

/// First address of tester 0's prefixes.
pub const PREFIX_BASE: Ipv4Addr = Ipv4Addr::new(11, 0, 0, 0);

/// How the testers' prefixes are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub base: u32,
    pub peers: u32,
    pub per_peer: u32,
    /// IPv6 unicast /64s instead of IPv4 /32s.
    pub ipv6: bool,
}

impl Layout {
    pub fn new(peers: u32, per_peer: u32) -> Self {
        Layout {
            base: u32::from(PREFIX_BASE),
            peers,
            per_peer,
            ipv6: false,
        }
    }
    /// The same plan in IPv6 (`on`) or IPv4.
    pub fn with_ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }
    /// The IPv6 /64 of key `k` (an IPv4 mode address).
    pub fn prefix6_of(k: u32) -> Ipv6Prefix {
        Ipv6Prefix::from_bits((PREFIX6_TOP << 96) | (u128::from(k) << 64), 64)
    }
    /// The key of an IPv6 prefix, if it is one of the layout's /64s.
    pub fn key6(p: &Ipv6Prefix) -> Option<u32> {
        (p.len() == 64 && p.bits() >> 96 == PREFIX6_TOP).then_some((p.bits() >> 64) as u32)
    }
    /// Prefix `i` of tester `t` as text, in the layout's family.
    pub fn prefix_text(&self, t: usize, i: u32) -> String {
        let k = self.prefix(t, i);
        if self.ipv6 {
            Self::prefix6_of(k).to_string()
        } else {
            format!("{}/32", Ipv4Addr::from(k))
        }
    }
    pub fn total(&self) -> u64 {
        u64::from(self.peers) * u64::from(self.per_peer)
    }
    /// Address of prefix `i` of tester `t`.
    pub fn prefix(&self, t: usize, i: u32) -> u32 {
        self.base + t as u32 * self.per_peer + i
    }
    /// (tester, index) of an address, if it is one of the testers' prefixes.
    pub fn owner(&self, addr: u32) -> Option<(usize, u32)> {
        let off = u64::from(addr.wrapping_sub(self.base));
        if off >= self.total() {
            return None;
        }
        let off = off as u32;
        Some(((off / self.per_peer) as usize, off % self.per_peer))
    }
    /// Indices of the spot samples: first, middle, last.
    pub fn samples(&self) -> [u32; 3] {
        [0, self.per_peer / 2, self.per_peer - 1]
    }
}

/// The next hop tester `t` announces: 10.x, because FRR and BIRD treat 127/8 next hops as
/// martians (SPEC §7).
pub fn tester_next_hop(t: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, (t / 256 + 1) as u8, (t % 256) as u8, 1)
}

/// The IPv6 mode's next hop of tester `t`.
pub fn tester_next_hop6(t: usize) -> Ipv6Addr {
    Ipv6Addr::new(
        0xfd00,
        0,
        (t / 256 + 1) as u16,
        (t % 256) as u16,
        0,
        0,
        0,
        1,
    )
}

/// Tester `t`'s next hop in the layout's family.
pub fn tester_next_hop_ip(layout: &Layout, t: usize) -> IpAddr {
    if layout.ipv6 {
        IpAddr::V6(tester_next_hop6(t))
    } else {
        IpAddr::V4(tester_next_hop(t))
    }
}

/// A route as the monitor received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub prefix: String,
    pub next_hop: Option<IpAddr>,
    pub as_path: String,
}

/// Counts and checks what the monitor (or the sink) receives. Shared by the receiving tasks:
/// the bitmap and counters are atomics, the rare problem reports sit behind a mutex.
pub struct Collector {
    layout: Layout,
    next_hops: Vec<IpAddr>,
    paths: Vec<Vec<u32>>,
    seen: Vec<AtomicU64>,
    held: AtomicU64,
    per_tester: Vec<AtomicU64>,
    mismatched: AtomicU64,
    unexpected: AtomicU64,
    duplicates: AtomicU64,
    withdrawn: AtomicU64,
    problems: Mutex<Vec<String>>,
    samples: Mutex<Vec<Option<Seen>>>,
    done_at: Mutex<Option<Instant>>,
}

/// Problems worth quoting in a failure message.
const MAX_PROBLEMS: usize = 8;

impl Collector {
    /// `paths[t]`: the AS path expected on tester `t`'s routes.
    pub fn new(layout: Layout, paths: Vec<Vec<u32>>) -> Self {
        assert_eq!(paths.len(), layout.peers as usize);
        let words = layout.total().div_ceil(64) as usize;
        Collector {
            layout,
            next_hops: (0..layout.peers as usize)
                .map(|t| tester_next_hop_ip(&layout, t))
                .collect(),
            paths,
            seen: (0..words).map(|_| AtomicU64::new(0)).collect(),
            held: AtomicU64::new(0),
            per_tester: (0..layout.peers).map(|_| AtomicU64::new(0)).collect(),
            mismatched: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            withdrawn: AtomicU64::new(0),
            problems: Mutex::new(Vec::new()),
            samples: Mutex::new(vec![None; layout.peers as usize * 3]),
            done_at: Mutex::new(None),
        }
    }

    /// Distinct testers' routes held now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
    /// When the monitor first held every route.
    pub fn done_at(&self) -> Option<Instant> {
        *self.done_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a problem seen outside [`Collector::process`] (a failed sink connection).
    pub fn note(&self, msg: String) {
        self.problem(|| msg);
    }

    fn problem(&self, msg: impl FnOnce() -> String) {
        let mut p = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        if p.len() < MAX_PROBLEMS {
            p.push(msg());
        }
    }

    /// Takes one decoded UPDATE.
    pub fn process(&self, u: &Update<'_>) {
        if let Some(e) = &u.treat_as_withdraw {
            self.problem(|| format!("UPDATE treated as withdraw (RFC 7606): {e}"));
        }
        if !self.layout.ipv6 {
            // The hot path: the NLRI field iterated in place.
            let announced = u.nlri().map(|p| {
                if p.len() == 32 {
                    Ok(p.bits())
                } else {
                    // The address space of nexthop's virtual network is the one route it
                    // originates.
                    Err(p.bits() == u32::from(VNET_SPACE.0) && p.len() == VNET_SPACE.1)
                }
            });
            let withdrawn = u.withdrawn().filter(|p| p.len() == 32).map(|p| p.bits());
            self.take(u, u.attrs.next_hop.map(IpAddr::V4), announced, withdrawn);
            return;
        }
        let v6 = |p: &Prefix| match p {
            Prefix::V6(p) => Some(*p),
            Prefix::V4(_) => None,
        };
        let (next_hop, reach) = match &u.attrs.mp_reach {
            Some(r) => {
                let nh = match r.next_hop {
                    MpNextHop::V6 { global, .. } => Some(IpAddr::V6(global)),
                    MpNextHop::V4(a) => Some(IpAddr::V4(a)),
                };
                (nh, &r.nlri[..])
            }
            None => (None, &[][..]),
        };
        let announced = reach.iter().map(|p| match v6(p) {
            Some(p6) => Layout::key6(&p6)
                .ok_or(p6.bits() == u128::from(VNET_SPACE6.0) && p6.len() == VNET_SPACE6.1),
            None => Err(false),
        });
        let unreach = u
            .attrs
            .mp_unreach
            .as_ref()
            .map_or(&[][..], |w| &w.withdrawn[..]);
        let withdrawn = unreach
            .iter()
            .filter_map(v6)
            .filter_map(|p| Layout::key6(&p));
        self.take(u, next_hop, announced, withdrawn);
    }

    /// The family-independent part of [`Collector::process`]: `announced` gives each prefix's
    /// key, or whether a prefix that is no tester's is the virtual network's (expected) or odd.
    fn take(
        &self,
        u: &Update<'_>,
        next_hop: Option<IpAddr>,
        announced: impl Iterator<Item = Result<u32, bool>>,
        withdrawn: impl Iterator<Item = u32>,
    ) {
        let path: Option<Vec<u32>> = u.attrs.as_path.as_ref().and_then(|p| {
            let mut v = Vec::new();
            for s in &p.segments {
                match s {
                    AsSegment::Sequence(a) => v.extend_from_slice(a),
                    _ => return None,
                }
            }
            Some(v)
        });
        let mut owner = usize::MAX;
        let mut ok = false;
        let (mut added, mut dup, mut bad, mut odd) = (0u64, 0u64, 0u64, 0u64);
        let mut per: Vec<(usize, u64)> = Vec::new();
        for key in announced {
            let key = match key {
                Ok(k) => k,
                Err(vnet) => {
                    odd += u64::from(!vnet);
                    continue;
                }
            };
            let Some((t, i)) = self.layout.owner(key) else {
                odd += 1;
                continue;
            };
            if t != owner {
                owner = t;
                ok = next_hop == Some(self.next_hops[t]) && path.as_deref() == Some(&self.paths[t]);
                if !ok {
                    self.problem(|| {
                        format!(
                            "{} of tester {t}: next hop {:?}, AS path {:?}; want {} and {:?}",
                            self.layout.prefix_text(t, i),
                            next_hop,
                            u.attrs.as_path.as_ref().map(|a| a.to_string()),
                            self.next_hops[t],
                            self.paths[t]
                        )
                    });
                }
            }
            if !ok {
                bad += 1;
            }
            if let Some(k) = self.layout.samples().iter().position(|&s| s == i) {
                let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
                s[t * 3 + k] = Some(Seen {
                    prefix: self.layout.prefix_text(t, i),
                    next_hop,
                    as_path: u
                        .attrs
                        .as_path
                        .as_ref()
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                });
            }
            let off = (key - self.layout.base) as usize;
            let bit = 1u64 << (off % 64);
            if self.seen[off / 64].fetch_or(bit, Ordering::Relaxed) & bit == 0 {
                added += 1;
                match per.last_mut() {
                    Some((pt, c)) if *pt == t => *c += 1,
                    _ => per.push((t, 1)),
                }
            } else {
                dup += 1;
            }
        }
        let mut removed = 0;
        for key in withdrawn {
            if let Some((t, _)) = self.layout.owner(key) {
                let off = (key - self.layout.base) as usize;
                let bit = 1u64 << (off % 64);
                if self.seen[off / 64].fetch_and(!bit, Ordering::Relaxed) & bit != 0 {
                    removed += 1;
                    self.per_tester[t].fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        for (t, c) in per {
            self.per_tester[t].fetch_add(c, Ordering::Relaxed);
        }
        if bad > 0 {
            self.mismatched.fetch_add(bad, Ordering::Relaxed);
        }
        if dup > 0 {
            self.duplicates.fetch_add(dup, Ordering::Relaxed);
        }
        if odd > 0 {
            self.unexpected.fetch_add(odd, Ordering::Relaxed);
            self.problem(|| format!("{odd} prefixes that no tester announced"));
        }
        if removed > 0 {
            self.withdrawn.fetch_add(removed, Ordering::Relaxed);
            self.held.fetch_sub(removed, Ordering::Relaxed);
        }
        if added > 0 {
            let now = self.held.fetch_add(added, Ordering::Relaxed) + added;
            if now == self.layout.total() {
                let mut d = self.done_at.lock().unwrap_or_else(|p| p.into_inner());
                if d.is_none() {
                    *d = Some(Instant::now());
                }
            }
        }
    }

    /// The verdict after the run: routes held, every route's attributes, the spot samples.
    pub fn check(&self) -> Check {
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut problems = self
            .problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut spot_ok = 0;
        for t in 0..self.layout.peers as usize {
            for (k, i) in self.layout.samples().iter().enumerate() {
                let want_prefix = self.layout.prefix_text(t, *i);
                let want_path = self.paths[t]
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" ");
                match &samples[t * 3 + k] {
                    Some(s)
                        if s.next_hop == Some(self.next_hops[t]) && s.as_path == want_path =>
                    {
                        spot_ok += 1
                    }
                    Some(s) => problems.push(format!(
                        "spot check tester {t} {want_prefix}: next hop {:?} AS path \"{}\", want {} \"{want_path}\"",
                        s.next_hop, s.as_path, self.next_hops[t]
                    )),
                    None => problems.push(format!(
                        "spot check tester {t}: {want_prefix} never received"
                    )),
                }
            }
        }
        let per_tester: Vec<u64> = self
            .per_tester
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        for (t, &c) in per_tester.iter().enumerate() {
            if c != u64::from(self.layout.per_peer) && problems.len() < 2 * MAX_PROBLEMS {
                problems.push(format!(
                    "tester {t}: {c} of {} routes held",
                    self.layout.per_peer
                ));
            }
        }
        Check {
            held: self.held(),
            expected: self.layout.total(),
            mismatched: self.mismatched.load(Ordering::Relaxed),
            unexpected: self.unexpected.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            withdrawn: self.withdrawn.load(Ordering::Relaxed),
            spot_ok,
            spot_total: self.layout.peers as usize * 3,
            problems,
            example: samples.iter().flatten().next().cloned(),
        }
    }
}

/// The monitor's verdict on one run.
#[derive(Clone, Debug)]
pub struct Check {
    pub held: u64,
    pub expected: u64,
    /// Routes whose next hop or AS path was not the tester's.
    pub mismatched: u64,
    pub unexpected: u64,
    /// Re-announcements of a held route (not an error, reported).
    pub duplicates: u64,
    pub withdrawn: u64,
    pub spot_ok: usize,
    pub spot_total: usize,
    pub problems: Vec<String>,
    /// One received route, quoted in the report.
    pub example: Option<Seen>,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.held == self.expected
            && self.mismatched == 0
            && self.unexpected == 0
            && self.spot_ok == self.spot_total
    }
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}/{} routes held, {} with a wrong next hop or AS path, {} unexpected, spot checks {}/{} ok",
            self.held, self.expected, self.mismatched, self.unexpected, self.spot_ok, self.spot_total
        );
        if self.duplicates > 0 || self.withdrawn > 0 {
            s.push_str(&format!(
                ", {} re-announced, {} withdrawn",
                self.duplicates, self.withdrawn
            ));
        }
        if let Some(e) = &self.example {
            s.push_str(&format!(
                "; e.g. {} next hop {} AS path \"{}\"",
                e.prefix,
                e.next_hop
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "none".into()),
                e.as_path
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp::wire::attrs::{AsPath, Origin, PathAttributes};
    use bgp::wire::{frame, Ipv4Prefix, SessionContext, UpdateMessage};

    fn update(
        layout: &Layout,
        t: usize,
        range: std::ops::Range<u32>,
        path: Vec<u32>,
        nh: Ipv4Addr,
    ) -> Vec<u8> {
        let m = UpdateMessage {
            withdrawn: vec![],
            attrs: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::from_sequence(path)),
                next_hop: Some(nh),
                ..Default::default()
            },
            nlri: range
                .map(|i| Ipv4Prefix::new(Ipv4Addr::from(layout.prefix(t, i)), 32).unwrap())
                .collect(),
        };
        let mut out = Vec::new();
        m.emit(&SessionContext::default(), &mut out);
        out
    }

    fn feed(c: &Collector, bytes: &[u8]) {
        let ctx = SessionContext::default();
        let mut rest = bytes;
        while !rest.is_empty() {
            let f = frame(rest, &ctx).unwrap().unwrap();
            c.process(&Update::parse(f.body, &ctx).unwrap());
            rest = &rest[f.wire_len..];
        }
    }

    #[test]
    fn layout_round_trips() {
        let l = Layout::new(64, 100_000);
        assert_eq!(l.owner(l.prefix(0, 0)), Some((0, 0)));
        assert_eq!(l.owner(l.prefix(63, 99_999)), Some((63, 99_999)));
        assert_eq!(l.owner(l.prefix(63, 99_999) + 1), None);
        assert_eq!(l.owner(u32::from(PREFIX_BASE) - 1), None);
        assert_eq!(tester_next_hop(0), Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(tester_next_hop(257), Ipv4Addr::new(10, 2, 1, 1));
    }

    #[test]
    fn converges_when_every_route_is_right() {
        let l = Layout::new(2, 1000);
        let c = Collector::new(l, vec![vec![65515, 65001], vec![65515, 65002]]);
        feed(
            &c,
            &update(&l, 0, 0..1000, vec![65515, 65001], tester_next_hop(0)),
        );
        assert!(c.done_at().is_none());
        feed(
            &c,
            &update(&l, 1, 0..600, vec![65515, 65002], tester_next_hop(1)),
        );
        feed(
            &c,
            &update(&l, 1, 500..1000, vec![65515, 65002], tester_next_hop(1)),
        );
        assert!(c.done_at().is_some());
        let ck = c.check();
        assert!(ck.passed(), "{ck:?}");
        assert_eq!(ck.duplicates, 100);
        assert_eq!(ck.spot_ok, 6);
    }

    #[test]
    fn wrong_next_hop_or_path_fails() {
        let l = Layout::new(2, 100);
        let c = Collector::new(l, vec![vec![65001], vec![65002]]);
        feed(&c, &update(&l, 0, 0..100, vec![65001], tester_next_hop(1)));
        feed(
            &c,
            &update(&l, 1, 0..100, vec![65515, 65002], tester_next_hop(1)),
        );
        let ck = c.check();
        assert_eq!(ck.held, 200);
        assert_eq!(ck.mismatched, 200);
        assert!(!ck.passed());
        assert_eq!(ck.spot_ok, 0);
        assert!(ck.problems[0].contains("tester 0"), "{:?}", ck.problems);
    }

    #[test]
    fn missing_routes_fail() {
        let l = Layout::new(2, 100);
        let c = Collector::new(l, vec![vec![65001], vec![65002]]);
        feed(&c, &update(&l, 0, 0..100, vec![65001], tester_next_hop(0)));
        let ck = c.check();
        assert!(!ck.passed());
        assert_eq!(ck.spot_ok, 3);
        assert!(ck.problems.iter().any(|p| p.contains("never received")));
    }
}
