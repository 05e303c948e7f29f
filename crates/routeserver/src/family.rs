//! The two address families a [`Rib`](crate::Rib) holds, as types: [`V4`] (IPv4 unicast) and
//! [`V6`] (IPv6 unicast). A route server instance keeps one RIB per family (`Rib<V4>`,
//! `Rib<V6>`), with the same peers under the same ids; the RIB's code is the same for both, and
//! what differs sits here:
//!
//! - where a family's prefixes are in an UPDATE: IPv4 in the Withdrawn Routes and NLRI fields
//!   (and in MP_REACH/MP_UNREACH with AFI 1), IPv6 only in MP_REACH/MP_UNREACH with AFI 2;
//! - where the next hop is: NEXT_HOP for IPv4, MP_REACH_NLRI's next hop for IPv6 (global, and
//!   link-local as FRR sends it on a shared link; the global one forwards);
//! - how UPDATEs are packed: behind the attributes for IPv4, inside MP_REACH_NLRI for IPv6.
//!
//! A path is stored the same way in both: one interned [`PathAttributes`]. An IPv6 path keeps
//! its next hop in `mp_reach` (with no NLRI in it), so paths with different next hops are
//! different sets, as NEXT_HOP makes them for IPv4.

use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::wire::attrs::{MpNextHop, MpReach, MpUnreach};
use bgp::wire::update::{pack_ipv4, pack_ipv6, pack_ipv6_withdrawals, pack_withdrawals};
use bgp::wire::{Afi, Ipv4Prefix, Ipv6Prefix, PathAttributes, Prefix, Safi, UpdateMessage};

/// One family's share of an UPDATE.
#[derive(Debug)]
pub struct Part<'a, P: Clone> {
    pub withdrawn: Cow<'a, [P]>,
    pub announced: Cow<'a, [P]>,
    /// The path of the announced prefixes, with the next hop where this family keeps it and no
    /// NLRI of any family inside.
    pub attrs: Cow<'a, PathAttributes>,
    /// Why the announced prefixes cannot be taken whatever the policy (they are held as
    /// refused, with this reason).
    pub refused: Option<String>,
}

/// An address family of the RIB.
pub trait Family: Clone + fmt::Debug + Default + PartialEq + Send + Sync + 'static {
    type Prefix: Copy + Eq + Hash + Ord + fmt::Debug + fmt::Display + Send + Sync + 'static;
    /// An address of the family: a next hop, the instance's own address.
    type Addr: Copy + Eq + Ord + Hash + fmt::Debug + fmt::Display + Send + Sync + 'static;
    const AFI: Afi;

    /// This family's part of `u`; `None` when `u` carries nothing of it.
    fn part(u: &UpdateMessage) -> Option<Part<'_, Self::Prefix>>;
    /// The forwarding next hop of a stored path.
    fn next_hop(a: &PathAttributes) -> Option<Self::Addr>;
    /// `a` with the next hop `nh` (the attributes of the prefixes an instance originates).
    fn with_next_hop(a: PathAttributes, nh: Self::Addr) -> PathAttributes;
    /// The next hop part of `src` as re-advertised to another peer (third party: unchanged,
    /// but never a link-local address, which means nothing off the link it was learned on).
    fn export_next_hop(src: &PathAttributes, out: &mut PathAttributes);
    /// Appends UPDATEs announcing `prefixes` with the encoded attributes `encoded` (of `attrs`,
    /// this family's next hop left out); returns the number of messages.
    fn pack(
        attrs: &PathAttributes,
        encoded: &[u8],
        prefixes: &[Self::Prefix],
        max: usize,
        out: &mut Vec<u8>,
    ) -> usize;
    /// Appends UPDATEs withdrawing `prefixes`; returns the number of messages.
    fn pack_withdrawals(prefixes: &[Self::Prefix], max: usize, out: &mut Vec<u8>) -> usize;
    /// Octets one announcing message needs besides its prefixes and the encoded attributes.
    fn announce_overhead(attrs: &PathAttributes) -> usize;
    /// The attributes as encoded before the prefixes of [`Family::pack`] (for IPv6, without
    /// MP_REACH_NLRI, which `pack` writes around the prefixes).
    fn encoded_part(attrs: &PathAttributes) -> Cow<'_, PathAttributes>;
    /// The largest prefix of the family (a host route), for size checks.
    const HOST_ROUTE_OCTETS: usize;
}

/// IPv4 unicast.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V4;

/// IPv6 unicast.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V6;

impl Family for V4 {
    type Prefix = Ipv4Prefix;
    type Addr = Ipv4Addr;
    const AFI: Afi = Afi::IPV4;
    const HOST_ROUTE_OCTETS: usize = 5;

    fn part(u: &UpdateMessage) -> Option<Part<'_, Ipv4Prefix>> {
        let (reach, unreach) = mp_unicast(u, Afi::IPV4);
        if reach.is_none() && unreach.is_none() {
            // The common case, zero-copy: the classic fields only.
            if u.withdrawn.is_empty() && u.nlri.is_empty() {
                return None;
            }
            let attrs = if u.attrs.mp_reach.is_some() || u.attrs.mp_unreach.is_some() {
                Cow::Owned(without_mp(&u.attrs))
            } else {
                Cow::Borrowed(&u.attrs)
            };
            return Some(Part {
                withdrawn: Cow::Borrowed(&u.withdrawn),
                announced: Cow::Borrowed(&u.nlri),
                attrs,
                refused: None,
            });
        }
        let v4 = |p: &[Prefix]| -> Vec<Ipv4Prefix> {
            only(p, |p| match p {
                Prefix::V4(p) => Some(*p),
                Prefix::V6(_) => None,
            })
        };
        let mut withdrawn = u.withdrawn.clone();
        withdrawn.extend(unreach.map(|m| v4(&m.withdrawn)).unwrap_or_default());
        let mut announced = u.nlri.clone();
        let mut attrs = without_mp(&u.attrs);
        let mut refused = None;
        if let Some(m) = reach {
            announced.extend(v4(&m.nlri));
            match m.next_hop {
                // MP_REACH's next hop is the one of its NLRI (RFC 4760 §3).
                MpNextHop::V4(nh) if u.nlri.is_empty() => attrs.next_hop = Some(nh),
                MpNextHop::V4(_) => {}
                MpNextHop::V6 { global, .. } => {
                    refused = Some(format!(
                        "IPv4 route with the IPv6 next hop {global} (RFC 8950 extended next hop) is not supported"
                    ))
                }
            }
        }
        Some(Part {
            withdrawn: Cow::Owned(withdrawn),
            announced: Cow::Owned(announced),
            attrs: Cow::Owned(attrs),
            refused,
        })
    }

    fn next_hop(a: &PathAttributes) -> Option<Ipv4Addr> {
        a.next_hop
    }

    fn with_next_hop(mut a: PathAttributes, nh: Ipv4Addr) -> PathAttributes {
        a.next_hop = Some(nh);
        a
    }

    fn export_next_hop(src: &PathAttributes, out: &mut PathAttributes) {
        out.next_hop = src.next_hop;
    }

    fn pack(
        _attrs: &PathAttributes,
        encoded: &[u8],
        prefixes: &[Ipv4Prefix],
        max: usize,
        out: &mut Vec<u8>,
    ) -> usize {
        pack_ipv4(encoded, prefixes.iter().copied(), max, out)
    }

    fn pack_withdrawals(prefixes: &[Ipv4Prefix], max: usize, out: &mut Vec<u8>) -> usize {
        pack_withdrawals(prefixes.iter().copied(), max, out)
    }

    fn announce_overhead(_attrs: &PathAttributes) -> usize {
        0
    }

    fn encoded_part(attrs: &PathAttributes) -> Cow<'_, PathAttributes> {
        Cow::Borrowed(attrs)
    }
}

impl Family for V6 {
    type Prefix = Ipv6Prefix;
    type Addr = Ipv6Addr;
    const AFI: Afi = Afi::IPV6;
    const HOST_ROUTE_OCTETS: usize = 17;

    fn part(u: &UpdateMessage) -> Option<Part<'_, Ipv6Prefix>> {
        let (reach, unreach) = mp_unicast(u, Afi::IPV6);
        if reach.is_none() && unreach.is_none() {
            return None;
        }
        let v6 = |p: &[Prefix]| -> Vec<Ipv6Prefix> {
            only(p, |p| match p {
                Prefix::V6(p) => Some(*p),
                Prefix::V4(_) => None,
            })
        };
        let withdrawn = unreach.map(|m| v6(&m.withdrawn)).unwrap_or_default();
        let (announced, mut attrs, refused) = match reach {
            None => (Vec::new(), PathAttributes::default(), None),
            Some(m) => {
                let mut a = without_mp(&u.attrs);
                // NEXT_HOP means nothing for IPv6 NLRI (RFC 4760 §3).
                a.next_hop = None;
                let refused = match m.next_hop {
                    MpNextHop::V6 { global, .. } => next_hop_problem(global),
                    MpNextHop::V4(nh) => Some(format!(
                        "IPv6 route with the IPv4 next hop {nh} (a 4-octet MP_REACH next hop)"
                    )),
                };
                a.mp_reach = Some(MpReach {
                    afi: Afi::IPV6,
                    safi: Safi::UNICAST,
                    next_hop: m.next_hop,
                    nlri: Vec::new(),
                });
                (v6(&m.nlri), a, refused)
            }
        };
        if announced.is_empty() {
            attrs = PathAttributes::default();
        }
        Some(Part {
            withdrawn: Cow::Owned(withdrawn),
            announced: Cow::Owned(announced),
            attrs: Cow::Owned(attrs),
            refused,
        })
    }

    fn next_hop(a: &PathAttributes) -> Option<Ipv6Addr> {
        match a.mp_reach.as_ref()?.next_hop {
            MpNextHop::V6 { global, .. } => Some(global),
            MpNextHop::V4(_) => None,
        }
    }

    fn with_next_hop(mut a: PathAttributes, nh: Ipv6Addr) -> PathAttributes {
        a.next_hop = None;
        a.mp_reach = Some(MpReach {
            afi: Afi::IPV6,
            safi: Safi::UNICAST,
            next_hop: MpNextHop::V6 {
                global: nh,
                link_local: None,
            },
            nlri: Vec::new(),
        });
        a
    }

    fn export_next_hop(src: &PathAttributes, out: &mut PathAttributes) {
        out.next_hop = None;
        out.mp_reach = src.mp_reach.as_ref().map(|m| MpReach {
            next_hop: match m.next_hop {
                MpNextHop::V6 { global, .. } => MpNextHop::V6 {
                    global,
                    link_local: None,
                },
                nh => nh,
            },
            nlri: Vec::new(),
            ..*m
        });
    }

    fn pack(
        attrs: &PathAttributes,
        encoded: &[u8],
        prefixes: &[Ipv6Prefix],
        max: usize,
        out: &mut Vec<u8>,
    ) -> usize {
        match attrs.mp_reach.as_ref() {
            Some(m) => pack_ipv6(encoded, &m.next_hop, prefixes.iter().copied(), max, out),
            None => 0,
        }
    }

    fn pack_withdrawals(prefixes: &[Ipv6Prefix], max: usize, out: &mut Vec<u8>) -> usize {
        pack_ipv6_withdrawals(prefixes.iter().copied(), max, out)
    }

    fn announce_overhead(attrs: &PathAttributes) -> usize {
        // MP_REACH_NLRI: 4 (header) + 3 (AFI, SAFI) + 1 + next hop + 1 (reserved).
        let nh = match attrs.mp_reach.as_ref().map(|m| m.next_hop) {
            Some(MpNextHop::V6 {
                link_local: Some(_),
                ..
            }) => 32,
            _ => 16,
        };
        4 + 3 + 1 + nh + 1
    }

    fn encoded_part(attrs: &PathAttributes) -> Cow<'_, PathAttributes> {
        let mut a = attrs.clone();
        a.mp_reach = None;
        Cow::Owned(a)
    }
}

/// Why an IPv6 global next hop cannot forward, if it cannot.
fn next_hop_problem(nh: Ipv6Addr) -> Option<String> {
    let seg0 = nh.segments()[0];
    if nh.is_unspecified() || nh.is_loopback() || nh.is_multicast() {
        Some(format!("IPv6 next hop {nh} is not a unicast address"))
    } else if let Some(v4) = nh.to_ipv4_mapped() {
        // What FRR sends for IPv6 over an IPv4 session when it has no global IPv6 address:
        // an IPv6 route cannot be forwarded through an IPv4 gateway here.
        Some(format!(
            "IPv6 next hop {nh} is IPv4-mapped ({v4}): an IPv6 route needs an IPv6 next hop (e.g. set ipv6 next-hop global)"
        ))
    } else if seg0 & 0xffc0 == 0xfe80 {
        Some(format!(
            "IPv6 next hop {nh} is link-local only (a global next hop is needed)"
        ))
    } else {
        None
    }
}

/// The unicast MP_REACH_NLRI and MP_UNREACH_NLRI of `afi` in `u`, if there are.
fn mp_unicast(u: &UpdateMessage, afi: Afi) -> (Option<&MpReach>, Option<&MpUnreach>) {
    let unicast = |a: Afi, s: Safi| a == afi && s == Safi::UNICAST;
    let reach = u.attrs.mp_reach.as_ref().filter(|m| unicast(m.afi, m.safi));
    let unreach = u
        .attrs
        .mp_unreach
        .as_ref()
        .filter(|m| unicast(m.afi, m.safi));
    (reach, unreach)
}

/// The prefixes of one family in an MP attribute's list.
fn only<P>(p: &[Prefix], pick: impl Fn(&Prefix) -> Option<P>) -> Vec<P> {
    p.iter().filter_map(pick).collect()
}

fn without_mp(a: &PathAttributes) -> PathAttributes {
    PathAttributes {
        mp_reach: None,
        mp_unreach: None,
        ..a.clone()
    }
}
