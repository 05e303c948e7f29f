//! The topology: virtual networks with their regions, address spaces and peerings, the NICs in
//! them, the load balancers (a frontend in a virtual network, hence a region) and the virtual
//! network of the route server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::table::{NextHopType, Prefix, Route, RouteSource, RouteState};

#[derive(Clone, Debug)]
pub struct VnetInfo {
    pub name: String,
    pub region: String,
    pub address_space: Vec<Prefix>,
    /// Peered virtual networks (symmetric: the topology adds the other direction).
    pub peerings: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct NicInfo {
    pub name: String,
    pub vnet: String,
    pub address: Ipv4Addr,
    /// The NIC's IPv6 address, when it has one (trace of IPv6 flows).
    pub address6: Option<Ipv6Addr>,
}

#[derive(Clone, Debug)]
pub struct LbInfo {
    pub name: String,
    pub frontend: IpAddr,
    /// The LB's virtual network's region; None when it has none.
    pub region: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Topology {
    pub vnets: Vec<VnetInfo>,
    pub nics: Vec<NicInfo>,
    pub lbs: Vec<LbInfo>,
    /// The route server's virtual network.
    pub route_server_vnet: Option<String>,
}

impl Topology {
    /// Builds the topology; peerings are made symmetric.
    pub fn new(
        mut vnets: Vec<VnetInfo>,
        nics: Vec<NicInfo>,
        lbs: Vec<LbInfo>,
        route_server_vnet: Option<String>,
    ) -> Self {
        let pairs: Vec<(String, String)> = vnets
            .iter()
            .flat_map(|v| v.peerings.iter().map(move |p| (p.clone(), v.name.clone())))
            .collect();
        for (a, b) in pairs {
            if let Some(v) = vnets.iter_mut().find(|v| v.name == a) {
                if !v.peerings.contains(&b) {
                    v.peerings.push(b);
                }
            }
        }
        Self {
            vnets,
            nics,
            lbs,
            route_server_vnet,
        }
    }

    pub fn vnet(&self, name: &str) -> Option<&VnetInfo> {
        self.vnets.iter().find(|v| v.name == name)
    }
    pub fn nic(&self, name: &str) -> Option<&NicInfo> {
        self.nics.iter().find(|n| n.name == name)
    }
    pub fn lb_by_frontend(&self, ip: IpAddr) -> Option<&LbInfo> {
        self.lbs.iter().find(|l| l.frontend == ip)
    }
    pub fn route_server_region(&self) -> Option<&str> {
        let v = self.route_server_vnet.as_deref()?;
        self.vnet(v).map(|v| v.region.as_str())
    }

    /// Prefixes a NIC in `vnet` reaches directly: its own space and its peers'.
    pub fn connected(&self, vnet: &str) -> Vec<Prefix> {
        let Some(v) = self.vnet(vnet) else {
            return Vec::new();
        };
        let mut out = v.address_space.clone();
        for p in &v.peerings {
            if let Some(pv) = self.vnet(p) {
                out.extend(pv.address_space.iter().copied());
            }
        }
        out
    }

    /// Virtual networks that get the route server's routes: its own and those peered with it.
    pub fn bgp_receivers(&self) -> Vec<String> {
        let Some(rs) = self.route_server_vnet.as_deref().and_then(|n| self.vnet(n)) else {
            return Vec::new();
        };
        let mut v = vec![rs.name.clone()];
        v.extend(rs.peerings.iter().cloned());
        v
    }

    /// System routes of a virtual network (SPEC §5): its own space (VnetLocal), each peered
    /// network's space (VNetPeering), and the default route to the Internet (IPv4 always,
    /// IPv6 when the network has IPv6 space).
    pub fn system_routes(&self, vnet: &str) -> Vec<Route> {
        let Some(v) = self.vnet(vnet) else {
            return Vec::new();
        };
        let sys = |prefix, t| Route {
            source: RouteSource::Default,
            state: RouteState::Active,
            prefix,
            next_hop_type: t,
            next_hop_ips: Vec::new(),
            load_balancer: None,
            reason: None,
        };
        let mut out: Vec<Route> = v
            .address_space
            .iter()
            .map(|p| sys(*p, NextHopType::VnetLocal))
            .collect();
        for p in &v.peerings {
            if let Some(pv) = self.vnet(p) {
                out.extend(
                    pv.address_space
                        .iter()
                        .map(|x| sys(*x, NextHopType::VNetPeering)),
                );
            }
        }
        out.push(sys(
            Prefix::V4(netprefix::Ipv4Prefix::DEFAULT),
            NextHopType::Internet,
        ));
        if v.address_space.iter().any(|p| !p.is_ipv4()) {
            out.push(sys(
                Prefix::V6(netprefix::Ipv6Prefix::DEFAULT),
                NextHopType::Internet,
            ));
        }
        out
    }
}
