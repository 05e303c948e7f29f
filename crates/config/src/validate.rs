//! Checks that need more than one value: references, duplicates, ranges, containment.
//!
//! Every check reports to [`Problems`] and carries on, so one run lists every mistake. A value
//! that failed to parse is absent here; checks that would then give false alarms (a reference to
//! a network whose table did not parse) are skipped.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::asn::{is_reserved_asn, reserved_asns_text, AS_TRANS};
use crate::error::Problems;
use crate::model::{LoadBalancer, Nic, ProbeProtocol, RawRouteServer, VirtualNetwork};

/// The sections as parsed, each item with its index in the file, before validation.
#[derive(Debug, Default)]
pub(crate) struct Sections {
    pub virtual_networks: Vec<(usize, VirtualNetwork)>,
    /// Names of the `[[virtual_network]]`s that did not parse: references to them are not errors.
    pub unparsed_virtual_networks: Vec<String>,
    /// False when the name of some `[[virtual_network]]` that did not parse is unknown, so no
    /// reference can be called dangling.
    pub virtual_networks_complete: bool,
    pub route_server: Option<RawRouteServer>,
    pub load_balancers: Vec<(usize, LoadBalancer)>,
    pub nics: Vec<(usize, Nic)>,
}

/// TCP-MD5 keys are at most 80 bytes (RFC 2385 §4.5 via Linux's TCP_MD5SIG_MAXKEYLEN).
pub const MAX_PASSWORD_BYTES: usize = 80;
/// The shortest probe interval we run.
pub const MIN_PROBE_INTERVAL_MS: u32 = 100;

pub(crate) fn check(sections: &Sections, problems: &Problems) {
    let networks = Networks::new(sections);
    check_virtual_networks(sections, &networks, problems);
    if let Some(rs) = &sections.route_server {
        check_route_server(rs, &networks, problems);
    }
    check_load_balancers(sections, &networks, problems);
    check_nics(sections, &networks, problems);
}

/// The declared virtual networks, by name, for reference checks.
struct Networks<'a> {
    by_name: HashMap<&'a str, &'a VirtualNetwork>,
    names: Vec<&'a str>,
    unparsed: &'a [String],
    complete: bool,
}

impl<'a> Networks<'a> {
    fn new(sections: &'a Sections) -> Self {
        let mut by_name = HashMap::new();
        let mut names = Vec::new();
        for (_, vnet) in &sections.virtual_networks {
            // A duplicate is reported once, at its name; references go to the first.
            if !by_name.contains_key(vnet.name.as_str()) {
                by_name.insert(vnet.name.as_str(), vnet);
                names.push(vnet.name.as_str());
            }
        }
        Self {
            by_name,
            names,
            unparsed: &sections.unparsed_virtual_networks,
            complete: sections.virtual_networks_complete,
        }
    }

    /// The network named at `key`, or a problem when there is none.
    fn resolve(&self, key: &str, name: &str, problems: &Problems) -> Option<&'a VirtualNetwork> {
        let found = self.by_name.get(name).copied();
        if found.is_none() && self.complete && !self.unparsed.iter().any(|n| n == name) {
            let known = if self.names.is_empty() {
                "no [[virtual_network]] is declared".to_owned()
            } else {
                format!("declared: {}", self.names.join(", "))
            };
            problems.at(key, format!("unknown virtual network {name:?} ({known})"));
        }
        found
    }
}

/// "10.1.0.0/16, 10.2.0.0/16"
fn address_space_text(vnet: &VirtualNetwork) -> String {
    let prefixes: Vec<String> = (vnet.address_space.iter().map(|p| p.to_string()))
        .chain(vnet.address_space6.iter().map(|p| p.to_string()))
        .collect();
    prefixes.join(", ")
}

fn in_address_space(vnet: &VirtualNetwork, addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => vnet.address_space.iter().any(|p| p.contains(a)),
        IpAddr::V6(a) => vnet.address_space6.iter().any(|p| p.contains(a)),
    }
}

/// Reports an address outside `vnet`'s address space (of the address's family).
fn check_inside(
    key: &str,
    what: &str,
    addr: impl Into<IpAddr>,
    vnet: &VirtualNetwork,
    problems: &Problems,
) {
    let addr = addr.into();
    if !in_address_space(vnet, addr) {
        problems.at(
            key,
            format!(
                "{what} {addr} is outside the address space of virtual network {:?} ({})",
                vnet.name,
                address_space_text(vnet)
            ),
        );
    }
}

/// Reports, for each repeated value, the later occurrence and where the value first appeared.
fn check_unique<T: Eq + Hash>(
    items: impl IntoIterator<Item = (String, T)>,
    problem: impl Fn(&T, &str) -> String,
    problems: &Problems,
) {
    let mut first: HashMap<T, String> = HashMap::new();
    for (key, value) in items {
        match first.get(&value) {
            Some(first_key) => problems.at(&key, problem(&value, first_key)),
            None => {
                first.insert(value, key);
            }
        }
    }
}

fn check_name(key: String, name: &str, problems: &Problems) {
    if name.trim().is_empty() {
        problems.at(key, "must not be empty");
    }
}

/// Addresses that can name one host: not 0.0.0.0, broadcast or multicast.
fn check_unicast(key: &str, addr: Ipv4Addr, problems: &Problems) {
    if addr.is_unspecified() || addr.is_broadcast() || addr.is_multicast() {
        problems.at(key, format!("{addr} is not a unicast host address"));
    }
}

fn check_unicast_ip(key: &str, addr: IpAddr, problems: &Problems) {
    match addr {
        IpAddr::V4(a) => check_unicast(key, a, problems),
        IpAddr::V6(a) => check_unicast6(key, a, problems),
    }
}

fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn check_unicast6(key: &str, addr: Ipv6Addr, problems: &Problems) {
    if addr.is_unspecified() || addr.is_multicast() {
        problems.at(key, format!("{addr} is not a unicast host address"));
    } else if addr.segments()[0] & 0xffc0 == 0xfe80 {
        problems.at(
            key,
            format!("{addr} is link-local: a BGP session and a next hop need a global (or unique local) address"),
        );
    }
}

fn check_at_least_one(key: String, value: u32, problems: &Problems) {
    if value == 0 {
        problems.at(key, "must be at least 1");
    }
}

fn check_hold_time(key: String, hold_time: u16, problems: &Problems) {
    if hold_time == 1 || hold_time == 2 {
        problems.at(
            key,
            format!("{hold_time} is not allowed: the hold time is 0 or at least 3 seconds (RFC 4271 §4.2)"),
        );
    }
}

fn check_virtual_networks(sections: &Sections, networks: &Networks<'_>, problems: &Problems) {
    let vnets = &sections.virtual_networks;
    check_unique(
        vnets
            .iter()
            .map(|(i, v)| (format!("virtual_network[{i}].name"), v.name.as_str())),
        |name, first| format!("duplicate virtual network name {name:?} (first at {first})"),
        problems,
    );
    let mut peered_pairs = HashSet::new();
    for (i, vnet) in vnets {
        let at = format!("virtual_network[{i}]");
        check_name(format!("{at}.name"), &vnet.name, problems);
        check_name(format!("{at}.region"), &vnet.region, problems);
        if vnet.address_space.is_empty() && vnet.address_space6.is_empty() {
            problems.at(
                format!("{at}.address_space"),
                "at least one prefix is required",
            );
        }
        for (j, prefix) in vnet.address_space6.iter().enumerate() {
            if let Some(other) = vnet.address_space6[..j]
                .iter()
                .find(|p| p.covers(prefix) || prefix.covers(p))
            {
                problems.at(
                    format!("{at}.address_space"),
                    format!("{prefix} overlaps {other}"),
                );
            }
        }
        for (j, prefix) in vnet.address_space.iter().enumerate() {
            if let Some(k) = vnet.address_space[..j]
                .iter()
                .position(|p| p.overlaps(prefix))
            {
                problems.at(
                    format!("{at}.address_space[{j}]"),
                    format!(
                        "{prefix} overlaps {} (address_space[{k}])",
                        vnet.address_space[k]
                    ),
                );
            }
        }

        check_unique(
            vnet.peerings
                .iter()
                .enumerate()
                .map(|(j, p)| (format!("{at}.peerings[{j}]"), p.as_str())),
            |name, first| format!("peering with {name:?} listed twice (first at {first})"),
            problems,
        );
        for (j, peer_name) in vnet.peerings.iter().enumerate() {
            let key = format!("{at}.peerings[{j}]");
            if *peer_name == vnet.name {
                problems.at(
                    key,
                    format!("virtual network {peer_name:?} cannot peer with itself"),
                );
                continue;
            }
            let Some(other) = networks.resolve(&key, peer_name, problems) else {
                continue;
            };
            // Declared on both sides or once, a pair is checked once.
            let pair = if vnet.name < other.name {
                (vnet.name.as_str(), other.name.as_str())
            } else {
                (other.name.as_str(), vnet.name.as_str())
            };
            if !peered_pairs.insert(pair) {
                continue;
            }
            let overlap = vnet.address_space.iter().find_map(|a| {
                other
                    .address_space
                    .iter()
                    .find(|b| a.overlaps(b))
                    .map(|b| (a, b))
            });
            if let Some((a, b)) = overlap {
                problems.at(
                    key,
                    format!(
                        "peered networks need distinct address spaces: {a} of {:?} overlaps {b} of {:?}",
                        vnet.name, other.name
                    ),
                );
            }
        }

        check_unique(
            vnet.subnets
                .iter()
                .enumerate()
                .map(|(j, s)| (format!("{at}.subnet[{j}].name"), s.name.as_str())),
            |name, first| format!("duplicate subnet name {name:?} (first at {first})"),
            problems,
        );
        for (j, subnet) in vnet.subnets.iter().enumerate() {
            let key = format!("{at}.subnet[{j}]");
            check_name(format!("{key}.name"), &subnet.name, problems);
            let prefix = subnet.prefix;
            if !vnet.address_space.iter().any(|space| space.covers(&prefix)) {
                problems.at(
                    format!("{key}.prefix"),
                    format!(
                        "{prefix} is outside the address space of virtual network {:?} ({})",
                        vnet.name,
                        address_space_text(vnet)
                    ),
                );
            } else if let Some(k) = vnet.subnets[..j]
                .iter()
                .position(|s| s.prefix.overlaps(&prefix))
            {
                problems.at(
                    format!("{key}.prefix"),
                    format!(
                        "{prefix} overlaps subnet {:?} ({})",
                        vnet.subnets[k].name, vnet.subnets[k].prefix
                    ),
                );
            }
        }
    }
}

fn check_route_server(rs: &RawRouteServer, networks: &Networks<'_>, problems: &Problems) {
    match rs.asn {
        0 => problems.at("route_server.asn", "ASN 0 is reserved (RFC 7607)"),
        AS_TRANS => problems.at(
            "route_server.asn",
            "23456 is AS_TRANS (RFC 6793), not a usable ASN",
        ),
        _ => {}
    }
    if let Some(name) = &rs.virtual_network {
        networks.resolve("route_server.virtual_network", name, problems);
    }
    if rs.port == 0 {
        problems.at("route_server.port", "port 0 is not allowed");
    }
    check_hold_time("route_server.hold_time".into(), rs.hold_time, problems);
    check_at_least_one(
        "route_server.max_routes_per_peer".into(),
        rs.max_routes_per_peer,
        problems,
    );

    let gr = rs.graceful_restart;
    if gr.enabled && !(1..=4095).contains(&gr.restart_time_s) {
        problems.at(
            "route_server.graceful_restart.restart_time_s",
            format!(
                "{} is out of range: 1 to 4095 seconds (12 bits, RFC 4724 §3)",
                gr.restart_time_s
            ),
        );
    }
    if rs.instances.is_empty() {
        problems.at(
            "route_server.instances",
            "at least one instance address is required",
        );
    }
    for (i, addr) in rs.instances.iter().enumerate() {
        check_unicast(&format!("route_server.instances[{i}]"), *addr, problems);
    }
    check_unique(
        rs.instances
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("route_server.instances[{i}]"), *a)),
        |addr, first| format!("duplicate instance address {addr} (first at {first})"),
        problems,
    );

    if !rs.instances_ipv6.is_empty() && rs.instances_ipv6.len() != rs.instances.len() {
        problems.at(
            "route_server.instances_ipv6",
            format!(
                "{} IPv6 addresses for {} instances: give one per instance, in the order of route_server.instances",
                rs.instances_ipv6.len(),
                rs.instances.len()
            ),
        );
    }
    for (i, addr) in rs.instances_ipv6.iter().enumerate() {
        check_unicast6(
            &format!("route_server.instances_ipv6[{i}]"),
            *addr,
            problems,
        );
    }
    check_unique(
        rs.instances_ipv6
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("route_server.instances_ipv6[{i}]"), *a)),
        |addr, first| format!("duplicate instance address {addr} (first at {first})"),
        problems,
    );

    check_unique(
        rs.peer
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("route_server.peer[{i}].name"), p.name.as_str())),
        |name, first| format!("duplicate peer name {name:?} (first at {first})"),
        problems,
    );
    check_unique(
        rs.peer
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("route_server.peer[{i}].address"), p.address)),
        |addr, first| format!("duplicate peer address {addr} (first at {first})"),
        problems,
    );
    for (i, peer) in rs.peer.iter().enumerate() {
        let at = format!("route_server.peer[{i}]");
        check_name(format!("{at}.name"), &peer.name, problems);

        let key = format!("{at}.address");
        match peer.address {
            IpAddr::V4(a) => {
                check_unicast(&key, a, problems);
                if let Some(k) = rs.instances.iter().position(|i| *i == a) {
                    problems.at(
                        key,
                        format!(
                            "{a} is a route server instance address (route_server.instances[{k}])"
                        ),
                    );
                }
            }
            IpAddr::V6(a) => {
                check_unicast6(&key, a, problems);
                if rs.instances_ipv6.is_empty() {
                    problems.at(
                        key,
                        format!("{a} is an IPv6 peer: give the instances IPv6 addresses (route_server.instances_ipv6) to peer with it"),
                    );
                } else if let Some(k) = rs.instances_ipv6.iter().position(|i| *i == a) {
                    problems.at(
                        key,
                        format!("{a} is a route server instance address (route_server.instances_ipv6[{k}])"),
                    );
                }
            }
        }

        let key = format!("{at}.asn");
        if peer.asn == 0 {
            problems.at(key, "ASN 0 is reserved (RFC 7607)");
        } else if is_reserved_asn(peer.asn) {
            problems.at(
                key,
                format!(
                    "{} is reserved (SPEC §3: {})",
                    peer.asn,
                    reserved_asns_text()
                ),
            );
        } else if peer.asn == rs.asn {
            problems.at(
                key,
                format!(
                    "{} is the route server's own ASN (route_server.asn); peers are eBGP and need another ASN",
                    peer.asn
                ),
            );
        }

        if let Some(b) = &peer.bfd {
            if !(10..=60_000).contains(&b.interval_ms) {
                problems.at(
                    format!("{at}.bfd.interval_ms"),
                    format!("{} ms: BFD intervals are 10 to 60000 ms", b.interval_ms),
                );
            }
            if b.multiplier == 0 {
                problems.at(format!("{at}.bfd.multiplier"), "must be at least 1");
            }
            if peer.address.is_ipv6() {
                problems.at(
                    format!("{at}.bfd"),
                    "BFD runs over IPv4 sessions only, for now",
                );
            }
        }
        if let Some(hold_time) = peer.hold_time {
            check_hold_time(format!("{at}.hold_time"), hold_time, problems);
        }
        if let Some(max_routes) = peer.max_routes {
            check_at_least_one(format!("{at}.max_routes"), max_routes, problems);
        }
        if peer.port == Some(0) {
            problems.at(format!("{at}.port"), "port 0 is not allowed");
        }
        if let Some(password) = &peer.password {
            let len = password.expose().len();
            if len == 0 {
                problems.at(
                    format!("{at}.password"),
                    "empty password; leave the key out for no TCP-MD5",
                );
            } else if len > MAX_PASSWORD_BYTES {
                problems.at(
                    format!("{at}.password"),
                    format!("{len} bytes is too long: a TCP-MD5 key is at most {MAX_PASSWORD_BYTES} bytes"),
                );
            }
        }
    }
}

fn check_load_balancers(sections: &Sections, networks: &Networks<'_>, problems: &Problems) {
    let lbs = &sections.load_balancers;
    check_unique(
        lbs.iter()
            .map(|(i, lb)| (format!("load_balancer[{i}].name"), lb.name.as_str())),
        |name, first| format!("duplicate load balancer name {name:?} (first at {first})"),
        problems,
    );
    check_unique(
        lbs.iter()
            .map(|(i, lb)| (format!("load_balancer[{i}].frontend"), lb.frontend)),
        |addr, first| format!("duplicate frontend {addr} (first at {first})"),
        problems,
    );
    for (i, lb) in lbs {
        let at = format!("load_balancer[{i}]");
        check_name(format!("{at}.name"), &lb.name, problems);

        let key = format!("{at}.frontend");
        check_unicast_ip(&key, lb.frontend, problems);
        if let Some(name) = &lb.virtual_network {
            if let Some(vnet) = networks.resolve(&format!("{at}.virtual_network"), name, problems) {
                check_inside(&key, "frontend", lb.frontend, vnet, problems);
            }
        }

        if lb.backends.is_empty() {
            problems.at(format!("{at}.backends"), "at least one backend is required");
        }
        check_unique(
            lb.backends
                .iter()
                .enumerate()
                .map(|(j, b)| (format!("{at}.backends[{j}].address"), b.address)),
            |addr, first| format!("duplicate backend {addr} (first at {first})"),
            problems,
        );
        for (j, backend) in lb.backends.iter().enumerate() {
            let key = format!("{at}.backends[{j}]");
            check_unicast_ip(&format!("{key}.address"), backend.address, problems);
            if backend.address.is_ipv4() != lb.frontend.is_ipv4() {
                problems.at(
                    format!("{key}.address"),
                    format!(
                        "{} is {} and the frontend {} is {}: a load balancer serves one address family (configure a second load balancer for the other)",
                        backend.address,
                        family(backend.address),
                        lb.frontend,
                        family(lb.frontend)
                    ),
                );
            }
            if backend.address == lb.frontend {
                problems.at(
                    format!("{key}.address"),
                    format!("{} is the load balancer's own frontend", backend.address),
                );
            }
            if backend.priority == 0 {
                problems.at(
                    format!("{key}.priority"),
                    "must be at least 1 (1 is the most preferred)",
                );
            }
        }

        check_probe(&at, lb, problems);

        let size = lb.maglev_table_size;
        if !is_prime(size) {
            problems.at(
                format!("{at}.maglev_table_size"),
                format!(
                    "{size} is not prime; Maglev needs a prime table size (next prime: {})",
                    next_prime(size)
                ),
            );
        } else if (size as usize) <= lb.backends.len() {
            problems.at(
                format!("{at}.maglev_table_size"),
                format!(
                    "{size} must be larger than the number of backends ({})",
                    lb.backends.len()
                ),
            );
        }
        check_at_least_one(
            format!("{at}.flow_idle_timeout_tcp_s"),
            lb.flow_idle_timeout_tcp_s,
            problems,
        );
        check_at_least_one(
            format!("{at}.flow_idle_timeout_udp_s"),
            lb.flow_idle_timeout_udp_s,
            problems,
        );
        check_at_least_one(format!("{at}.max_flows"), lb.max_flows, problems);
    }
}

fn check_probe(lb_key: &str, lb: &LoadBalancer, problems: &Problems) {
    let at = format!("{lb_key}.probe");
    let probe = &lb.probe;
    if probe.port == 0 {
        problems.at(format!("{at}.port"), "port 0 is not allowed");
    }
    if probe.protocol != ProbeProtocol::Tcp && !probe.path.starts_with('/') {
        problems.at(
            format!("{at}.path"),
            format!("{:?} must start with /", probe.path),
        );
    }
    if probe.interval_ms < MIN_PROBE_INTERVAL_MS {
        problems.at(
            format!("{at}.interval_ms"),
            format!(
                "{} ms is below the minimum of {MIN_PROBE_INTERVAL_MS} ms",
                probe.interval_ms
            ),
        );
    }
    if probe.timeout_ms == 0 {
        problems.at(format!("{at}.timeout_ms"), "must be at least 1");
    } else if probe.timeout_ms > probe.interval_ms {
        problems.at(
            format!("{at}.timeout_ms"),
            format!(
                "{} ms is longer than the interval (interval_ms = {}); a probe must end before the next starts",
                probe.timeout_ms, probe.interval_ms
            ),
        );
    }
    check_at_least_one(format!("{at}.rise"), probe.rise, problems);
    check_at_least_one(format!("{at}.fall"), probe.fall, problems);
}

fn check_nics(sections: &Sections, networks: &Networks<'_>, problems: &Problems) {
    let nics = &sections.nics;
    check_unique(
        nics.iter()
            .map(|(i, nic)| (format!("nic[{i}].name"), nic.name.as_str())),
        |name, first| format!("duplicate NIC name {name:?} (first at {first})"),
        problems,
    );
    check_unique(
        nics.iter().map(|(i, nic)| {
            (
                format!("nic[{i}].address"),
                (nic.virtual_network.as_str(), nic.address),
            )
        }),
        |(vnet, addr), first| format!("{addr} is already used in {vnet:?} by {first}"),
        problems,
    );
    check_unique(
        nics.iter().filter_map(|(i, nic)| {
            let a = nic.address6?;
            Some((
                format!("nic[{i}].address6"),
                (nic.virtual_network.as_str(), a),
            ))
        }),
        |(vnet, addr), first| format!("{addr} is already used in {vnet:?} by {first}"),
        problems,
    );
    for (i, nic) in nics {
        let at = format!("nic[{i}]");
        check_name(format!("{at}.name"), &nic.name, problems);
        let vnet = networks.resolve(
            &format!("{at}.virtual_network"),
            &nic.virtual_network,
            problems,
        );
        let addresses = std::iter::once(("address", IpAddr::V4(nic.address)))
            .chain(nic.address6.map(|a| ("address6", IpAddr::V6(a))));
        for (field, addr) in addresses {
            let key = format!("{at}.{field}");
            check_unicast_ip(&key, addr, problems);
            if let Some(vnet) = vnet {
                check_inside(&key, field, addr, vnet, problems);
            }
            let frontend = sections.load_balancers.iter().find(|(_, lb)| {
                lb.frontend == addr
                    && lb.virtual_network.as_deref() == Some(nic.virtual_network.as_str())
            });
            if let Some((_, lb)) = frontend {
                problems.at(
                    key,
                    format!("{addr} is the frontend of load balancer {:?}", lb.name),
                );
            }
        }
    }
}

/// One primality test for the Maglev table size, the load balancer's own.
use lb::maglev::is_prime;

/// The smallest prime ≥ n (saturating at the largest u32 prime).
fn next_prime(n: u32) -> u32 {
    (n..=u32::MAX)
        .find(|&k| is_prime(k))
        .unwrap_or(4_294_967_291)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        let small: Vec<u32> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65537));
        assert!(!is_prime(65536));
        assert!(is_prime(4_294_967_291));
        assert!(!is_prime(u32::MAX));
        assert_eq!(next_prime(65536), 65537);
        assert_eq!(next_prime(65000), 65003);
        assert_eq!(next_prime(u32::MAX), 4_294_967_291);
    }
}
