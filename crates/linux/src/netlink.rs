//! A small hand-written rtnetlink client: IPv4 and IPv6 routes of nexthop's own protocol in the
//! main table, and read-only dumps of links, addresses and neighbours.
//!
//! Ownership rule: every route this module writes carries `rtm_protocol = `[`RTPROT_NEXTHOP`]
//! (200, shown by `ip route` as `proto 200`), and it only ever writes, replaces or deletes
//! routes with that protocol:
//! - delete sends the protocol, and the kernel only deletes a route whose protocol matches;
//! - replace first looks for a route of another protocol with the same prefix and metric
//!   (the kernel's replace key) and refuses with [`Error::Foreign`] instead of overwriting it;
//! - [`Netlink::routes`] returns only protocol-200 routes, so a caller reconciling "what is
//!   there" against "what should be there" never sees anyone else's.
//!
//! Requests are synchronous (one request, read until its ACK or `NLMSG_DONE`) on one socket
//! per [`Netlink`]; it is meant for one owner (the agent task, the mux's neighbour refresh).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

use crate::sys;

/// nexthop's `rtm_protocol` value. Linux reserves 0–4 for itself and `/etc/iproute2/rt_protos`
/// names a few more (bird 12, zebra 11, babel 42, bgp 186, isis 187, ospf 188, rip 189,
/// eigrp 192); 200 is unassigned there.
pub const RTPROT_NEXTHOP: u8 = 200;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;

const RTM_GETLINK: u16 = 18;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTM_GETNEIGH: u16 = 30;

const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;
const RT_TABLE_MAIN: u8 = 254;
const RTN_UNICAST: u8 = 1;
const RT_SCOPE_UNIVERSE: u8 = 0;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP: states whose
/// link-layer address can be used.
const NUD_USABLE: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x80 | 0x40;

/// Errors of the rtnetlink client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel answered a request with a negative errno.
    #[error("kernel refused {op} {what}: {source}")]
    Kernel {
        op: &'static str,
        what: String,
        source: std::io::Error,
    },
    /// A route for the prefix, with the same metric, belongs to another protocol: nexthop
    /// does not overwrite it.
    #[error("{prefix} metric {metric} is a route of protocol {protocol}, not nexthop's")]
    Foreign {
        prefix: Prefix,
        metric: u32,
        protocol: u8,
    },
    #[error("malformed netlink message: {0}")]
    Malformed(&'static str),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A prefix of either family (`netprefix`): host bits always zero.
pub use netprefix::Prefix;

/// One route of the main table, as nexthop programs it: `prefix via gateway`, or with several
/// gateways one multipath route (`prefix nexthop via A nexthop via B`, the kernel's ECMP), all
/// of the prefix's family.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Route {
    pub prefix: Prefix,
    /// At least one; sorted, no repeats ([`Route::new`]).
    pub gateways: Vec<IpAddr>,
    /// `metric` in `ip route`; the kernel's replace key is (prefix, tos, metric).
    pub metric: u32,
}

impl Route {
    /// A route via `gateways` (sorted and deduplicated here, so two routes with the same
    /// gateways compare equal whatever order they came in).
    pub fn new(prefix: Prefix, mut gateways: Vec<IpAddr>, metric: u32) -> Route {
        gateways.sort();
        gateways.dedup();
        Route {
            prefix,
            gateways,
            metric,
        }
    }

    /// The gateways as `ip route` would list them: `A` or `A,B`.
    pub fn via(&self) -> String {
        let v: Vec<String> = self.gateways.iter().map(ToString::to_string).collect();
        v.join(",")
    }
}

/// A route as dumped, whoever owns it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KernelRoute {
    pub prefix: Prefix,
    /// Its gateways (several for a multipath route; none for a device route), sorted.
    pub gateways: Vec<IpAddr>,
    pub metric: u32,
    pub protocol: u8,
    pub oif: Option<u32>,
}

/// One interface.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
}

/// One usable neighbour entry (ARP or NDP).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Neighbour {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub mac: [u8; 6],
}

/// A `NETLINK_ROUTE` socket in the network namespace of the thread that opened it.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    pub fn open() -> Result<Netlink> {
        Ok(Netlink {
            fd: sys::netlink_route_socket()?,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Adds `route`; an error if a route with its key already exists (whoever owns it).
    pub fn add_route(&mut self, route: &Route) -> Result<()> {
        same_family(route)?;
        let msg = self.route_msg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, route);
        self.transact(&msg, "add", &route_text(route))
    }

    /// Adds `route` or replaces nexthop's route with the same prefix and metric; refuses with
    /// [`Error::Foreign`] when that key belongs to another protocol.
    pub fn replace_route(&mut self, route: &Route) -> Result<()> {
        if let Some(other) = self.dump_routes()?.into_iter().find(|r| {
            r.prefix == route.prefix && r.metric == route.metric && r.protocol != RTPROT_NEXTHOP
        }) {
            return Err(Error::Foreign {
                prefix: route.prefix,
                metric: route.metric,
                protocol: other.protocol,
            });
        }
        self.replace_unchecked(route)
    }

    /// [`Netlink::replace_route`] without the ownership check, for a caller that has just
    /// checked against a dump of its own ([`crate::agent::reconcile`], which would otherwise
    /// dump the table once per route).
    pub(crate) fn replace_unchecked(&mut self, route: &Route) -> Result<()> {
        same_family(route)?;
        let msg = self.route_msg(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, route);
        self.transact(&msg, "replace", &route_text(route))
    }

    /// Deletes nexthop's route for `prefix` with `metric`. The request carries protocol 200,
    /// so the kernel never deletes another protocol's route (it answers ESRCH instead).
    pub fn delete_route(&mut self, prefix: Prefix, metric: u32) -> Result<()> {
        let route = Route {
            prefix,
            gateways: Vec::new(),
            metric,
        };
        let msg = self.route_msg(RTM_DELROUTE, 0, &route);
        self.transact(&msg, "delete", &format!("{prefix} metric {metric}"))
    }

    /// nexthop's IPv4 and IPv6 unicast routes in the main table, sorted.
    pub fn routes(&mut self) -> Result<Vec<Route>> {
        Ok(own_routes(&self.dump_routes()?))
    }
    /// Every IPv4 and IPv6 unicast route of the main table, any protocol (read-only).
    pub fn dump_routes(&mut self) -> Result<Vec<KernelRoute>> {
        let mut out = self.dump_family(AF_INET)?;
        out.extend(self.dump_family(AF_INET6)?);
        Ok(out)
    }

    fn dump_family(&mut self, af: u8) -> Result<Vec<KernelRoute>> {
        let mut req = self.header(RTM_GETROUTE, NLM_F_DUMP);
        req.extend_from_slice(&[af, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        self.dump(req, "dump", "routes", |ty, body| {
            if ty != RTM_NEWROUTE || body.len() < 12 {
                return Ok(());
            }
            let (family, dst_len, table, protocol, rtype) =
                (body[0], body[1], body[4], body[5], body[7]);
            if family != af || rtype != RTN_UNICAST {
                return Ok(());
            }
            let mut dst = match af {
                AF_INET => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                _ => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            let (mut gateways, mut oif, mut metric, mut tab) =
                (Vec::new(), None, 0, u32::from(table));
            for (t, v) in attrs(&body[12..]) {
                match t {
                    RTA_DST => dst = ip(af, v)?,
                    RTA_GATEWAY => gateways.push(ip(af, v)?),
                    RTA_MULTIPATH => gateways.extend(multipath_gateways(af, v)?),
                    RTA_OIF => oif = Some(u32_ne(v)?),
                    RTA_PRIORITY => metric = u32_ne(v)?,
                    RTA_TABLE => tab = u32_ne(v)?,
                    _ => {}
                }
            }
            if tab != u32::from(RT_TABLE_MAIN) {
                return Ok(());
            }
            if dst_len > if af == AF_INET { 32 } else { 128 } {
                return Err(Error::Malformed("rtm_dst_len"));
            }
            let prefix = Prefix::truncating(dst, dst_len);
            gateways.sort();
            out.push(KernelRoute {
                prefix,
                gateways,
                metric,
                protocol,
                oif,
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// Every interface with its index, name and MAC address.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let mut req = self.header(RTM_GETLINK, NLM_F_DUMP);
        req.extend_from_slice(&[0u8; 16]); // ifinfomsg, family AF_UNSPEC
        let mut out = Vec::new();
        self.dump(req, "dump", "links", |ty, body| {
            if ty != 16 || body.len() < 16 {
                return Ok(()); // RTM_NEWLINK
            }
            let index = u32_ne(&body[4..8])?;
            let (mut name, mut mac) = (String::new(), None);
            for (t, v) in attrs(&body[16..]) {
                match t {
                    IFLA_IFNAME => {
                        name = String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or(v))
                            .into_owned()
                    }
                    IFLA_ADDRESS if v.len() == 6 => mac = v.try_into().ok(),
                    _ => {}
                }
            }
            out.push(Link { index, name, mac });
            Ok(())
        })?;
        Ok(out)
    }

    /// The interface called `name`.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>> {
        Ok(self.links()?.into_iter().find(|l| l.name == name))
    }

    /// Every local address of both families (any interface) — the addresses the mux must
    /// leave to the kernel.
    pub fn addresses(&mut self) -> Result<Vec<IpAddr>> {
        let mut req = self.header(RTM_GETADDR, NLM_F_DUMP);
        req.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // ifaddrmsg, AF_UNSPEC: both
        let mut out = Vec::new();
        self.dump(req, "dump", "addresses", |ty, body| {
            if ty != 20 || body.len() < 8 || !matches!(body[0], AF_INET | AF_INET6) {
                return Ok(()); // RTM_NEWADDR
            }
            let af = body[0];
            // IFA_LOCAL is the local address when there is one (on a point-to-point link
            // IFA_ADDRESS is the peer's); otherwise IFA_ADDRESS is (IPv6 usually).
            let (mut local, mut address) = (None, None);
            for (t, v) in attrs(&body[8..]) {
                match t {
                    IFA_LOCAL => local = Some(ip(af, v)?),
                    IFA_ADDRESS => address = Some(ip(af, v)?),
                    _ => {}
                }
            }
            out.extend(local.or(address));
            Ok(())
        })?;
        Ok(out)
    }

    /// Neighbour entries of both families (ARP and NDP) whose MAC is usable (reachable,
    /// stale, delay, probe, permanent).
    pub fn neighbours(&mut self) -> Result<Vec<Neighbour>> {
        let mut req = self.header(RTM_GETNEIGH, NLM_F_DUMP);
        req.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // ndmsg, AF_UNSPEC: both
        let mut out = Vec::new();
        self.dump(req, "dump", "neighbours", |ty, body| {
            if ty != 28 || body.len() < 12 || !matches!(body[0], AF_INET | AF_INET6) {
                return Ok(()); // RTM_NEWNEIGH
            }
            let af = body[0];
            let ifindex = u32_ne(&body[4..8])?;
            let state = u16::from_ne_bytes([body[8], body[9]]);
            if state & NUD_USABLE == 0 {
                return Ok(());
            }
            let (mut addr, mut mac) = (None, None);
            for (t, v) in attrs(&body[12..]) {
                match t {
                    NDA_DST => addr = Some(ip(af, v)?),
                    NDA_LLADDR if v.len() == 6 => mac = v.try_into().ok(),
                    _ => {}
                }
            }
            if let (Some(addr), Some(mac)) = (addr, mac) {
                out.push(Neighbour { ifindex, addr, mac });
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn header(&mut self, ty: u16, flags: u16) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut m = Vec::with_capacity(64);
        m.extend_from_slice(&0u32.to_ne_bytes()); // length, set in finish()
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m
    }

    fn route_msg(&mut self, ty: u16, flags: u16, r: &Route) -> Vec<u8> {
        let mut m = self.header(ty, flags | NLM_F_ACK);
        let scope = RT_SCOPE_UNIVERSE;
        let af = if r.prefix.is_ipv4() {
            AF_INET
        } else {
            AF_INET6
        };
        m.extend_from_slice(&[af, r.prefix.len(), 0, 0, RT_TABLE_MAIN]);
        m.extend_from_slice(&[RTPROT_NEXTHOP, scope, RTN_UNICAST, 0, 0, 0, 0]);
        push_attr(&mut m, RTA_TABLE, &u32::from(RT_TABLE_MAIN).to_ne_bytes());
        push_attr(&mut m, RTA_DST, &octets(r.prefix.addr()));
        match r.gateways.as_slice() {
            [] => {}
            [one] => push_attr(&mut m, RTA_GATEWAY, &octets(*one)),
            several => {
                // RTA_MULTIPATH: one rtnexthop (len, flags, hops = weight - 1, ifindex 0: the
                // kernel finds the device from the gateway) per gateway, each followed by its
                // RTA_GATEWAY.
                let mut nh = Vec::new();
                for g in several {
                    let mut gw = Vec::new();
                    push_attr(&mut gw, RTA_GATEWAY, &octets(*g));
                    nh.extend_from_slice(&((8 + gw.len()) as u16).to_ne_bytes());
                    nh.extend_from_slice(&[0, 0]);
                    nh.extend_from_slice(&0i32.to_ne_bytes());
                    nh.extend_from_slice(&gw);
                }
                push_attr(&mut m, RTA_MULTIPATH, &nh);
            }
        }
        push_attr(&mut m, RTA_PRIORITY, &r.metric.to_ne_bytes());
        m
    }

    /// Sends a request with NLM_F_ACK and waits for its ACK.
    fn transact(&mut self, msg: &[u8], op: &'static str, what: &str) -> Result<()> {
        let mut msg = msg.to_vec();
        finish(&mut msg);
        sys::send(&self.fd, &msg)?;
        let seq = self.seq;
        loop {
            let n = sys::recv(&self.fd, &mut self.buf)?;
            for (ty, _flags, mseq, body) in messages(&self.buf[..n]) {
                if mseq != seq || ty != NLMSG_ERROR {
                    continue;
                }
                return error_code(body, op, what);
            }
        }
    }

    /// Sends a dump request and feeds each answer message to `each` until NLMSG_DONE.
    fn dump(
        &mut self,
        mut req: Vec<u8>,
        op: &'static str,
        what: &str,
        mut each: impl FnMut(u16, &[u8]) -> Result<()>,
    ) -> Result<()> {
        finish(&mut req);
        sys::send(&self.fd, &req)?;
        let seq = self.seq;
        loop {
            let n = sys::recv(&self.fd, &mut self.buf)?;
            for (ty, flags, mseq, body) in messages(&self.buf[..n]) {
                if mseq != seq {
                    continue;
                }
                match ty {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => return error_code(body, op, what),
                    _ => each(ty, body)?,
                }
                if flags & NLM_F_MULTI == 0 {
                    return Ok(());
                }
            }
        }
    }
}

/// The routes of `dump` that are nexthop's, sorted.
pub fn own_routes(dump: &[KernelRoute]) -> Vec<Route> {
    let mut out: Vec<Route> = dump
        .iter()
        .filter(|r| r.protocol == RTPROT_NEXTHOP)
        .filter(|r| !r.gateways.is_empty())
        .map(|r| Route::new(r.prefix, r.gateways.clone(), r.metric))
        .collect();
    out.sort();
    out
}

/// A route has a gateway, and its prefix and gateways are of one family (no IPv4 route via an
/// IPv6 gateway).
fn same_family(r: &Route) -> Result<()> {
    if r.gateways.is_empty() {
        Err(Error::Malformed("a route without a gateway"))
    } else if r.gateways.iter().all(|g| g.is_ipv4() == r.prefix.is_ipv4()) {
        Ok(())
    } else {
        Err(Error::Malformed("prefix and gateway of different families"))
    }
}

/// The gateways of an RTA_MULTIPATH value: rtnexthop entries (u16 length, flags, hops,
/// ifindex), each followed by its attributes, RTA_GATEWAY among them.
fn multipath_gateways(af: u8, mut v: &[u8]) -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    while v.len() >= 8 {
        let len = usize::from(u16::from_ne_bytes([v[0], v[1]]));
        if len < 8 || len > v.len() {
            return Err(Error::Malformed("rtnexthop length"));
        }
        for (t, a) in attrs(&v[8..len]) {
            if t == RTA_GATEWAY {
                out.push(ip(af, a)?);
            }
        }
        v = &v[align4(len).min(v.len())..];
    }
    Ok(out)
}

fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// An address attribute of family `af`.
fn ip(af: u8, v: &[u8]) -> Result<IpAddr> {
    if af == AF_INET {
        return ipv4(v).map(IpAddr::V4);
    }
    let o: [u8; 16] = v
        .try_into()
        .map_err(|_| Error::Malformed("IPv6 attribute"))?;
    Ok(IpAddr::V6(Ipv6Addr::from(o)))
}

fn route_text(r: &Route) -> String {
    format!("{} via {} metric {}", r.prefix, r.via(), r.metric)
}

fn finish(m: &mut [u8]) {
    let len = m.len() as u32;
    m[..4].copy_from_slice(&len.to_ne_bytes());
}

fn push_attr(m: &mut Vec<u8>, ty: u16, v: &[u8]) {
    m.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(v);
    m.resize(align4(m.len()), 0);
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The ACK/error body: errno 0 is success.
fn error_code(body: &[u8], op: &'static str, what: &str) -> Result<()> {
    let code = i32::from_ne_bytes(
        body.get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error::Malformed("short NLMSG_ERROR"))?,
    );
    if code == 0 {
        return Ok(());
    }
    Err(Error::Kernel {
        op,
        what: what.to_string(),
        source: std::io::Error::from_raw_os_error(-code),
    })
}

/// The netlink messages in one datagram: (type, flags, seq, body). Stops at the first
/// malformed header.
fn messages(mut b: &[u8]) -> impl Iterator<Item = (u16, u16, u32, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            return None;
        }
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        let flags = u16::from_ne_bytes([b[6], b[7]]);
        let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
        let body = &b[NLMSG_HDRLEN..len];
        b = &b[align4(len).min(b.len())..];
        Some((ty, flags, seq, body))
    })
}

/// The route attributes in `b`: (type without flag bits, value).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        if len < 4 || len > b.len() {
            return None;
        }
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        let v = &b[4..len];
        b = &b[align4(len).min(b.len())..];
        Some((ty, v))
    })
}

fn ipv4(v: &[u8]) -> Result<Ipv4Addr> {
    let o: [u8; 4] = v
        .try_into()
        .map_err(|_| Error::Malformed("IPv4 attribute"))?;
    Ok(Ipv4Addr::from(o))
}

fn u32_ne(v: &[u8]) -> Result<u32> {
    let o: [u8; 4] = v
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(Error::Malformed("u32 attribute"))?;
    Ok(u32::from_ne_bytes(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_clears_host_bits_and_parses() {
        // The kernel's and the controller's prefixes: host bits cleared when made from an
        // address, refused in text (the controller never sends them).
        let p = Prefix::truncating(Ipv4Addr::new(192, 168, 10, 77).into(), 24);
        assert_eq!(p.to_string(), "192.168.10.0/24");
        assert!("192.168.10.77/24".parse::<Prefix>().is_err());
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("10.0.0.0".parse::<Prefix>().is_err());
        assert_eq!(
            Prefix::truncating(Ipv4Addr::new(1, 2, 3, 4).into(), 0).to_string(),
            "0.0.0.0/0"
        );
    }

    #[test]
    fn attributes_are_padded_and_parsed_back() {
        let mut m = Vec::new();
        push_attr(&mut m, RTA_DST, &[192, 168, 10, 0]);
        push_attr(&mut m, IFLA_IFNAME, b"eth0\0");
        assert_eq!(m.len(), 8 + 12);
        let got: Vec<_> = attrs(&m).collect();
        assert_eq!(
            got,
            vec![
                (RTA_DST, &[192u8, 168, 10, 0][..]),
                (IFLA_IFNAME, &b"eth0\0"[..])
            ]
        );
    }

    #[test]
    fn truncated_messages_and_attributes_stop_without_panicking() {
        let mut m = vec![0u8; 16];
        m[..4].copy_from_slice(&40u32.to_ne_bytes()); // claims more than there is
        assert_eq!(messages(&m).count(), 0);
        assert_eq!(attrs(&[8, 0, 1, 0, 1]).count(), 0);
        assert_eq!(attrs(&[2, 0, 1, 0]).count(), 0);
        assert!(error_code(&[1, 2], "x", "y").is_err());
    }
}
