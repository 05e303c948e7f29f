//! The configuration types, one per section of SPEC §6, with their defaults.
//!
//! Values that default to another value (a peer's port, hold time and route limit inherit the
//! route server's; a backend's priority is its position; a probe's timeout is its interval) are
//! resolved while parsing, so every field here holds the value in force.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Deserializer, Serialize};

use netprefix::{Ipv4Prefix, Ipv6Prefix, Prefix};

/// A whole config file. Every section is optional: a file with only `[[load_balancer]]` runs
/// only load balancers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[[virtual_network]]`
    #[serde(default, rename = "virtual_network")]
    pub virtual_networks: Vec<VirtualNetwork>,
    /// `[route_server]`
    #[serde(default)]
    pub route_server: Option<RouteServer>,
    /// `[[load_balancer]]`
    #[serde(default, rename = "load_balancer")]
    pub load_balancers: Vec<LoadBalancer>,
    /// `[[nic]]`
    #[serde(default, rename = "nic")]
    pub nics: Vec<Nic>,
    /// `[api]`; present or not, the API listens.
    #[serde(default)]
    pub api: Api,
    /// `[fabric]`
    #[serde(default)]
    pub fabric: Fabric,
    /// `state_dir`: where state that must survive a restart is kept (admin overrides).
    #[serde(default)]
    pub state_dir: Option<std::path::PathBuf>,
    /// `[mrt]`
    #[serde(default)]
    pub mrt: Mrt,
    /// `[[bmp]]`
    #[serde(default, rename = "bmp")]
    pub bmp: Vec<Bmp>,
}

/// `[[bmp]]`: a BMP (RFC 7854) collector every instance streams to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bmp {
    /// `HOST:PORT`.
    pub collector: String,
}

/// `[mrt]`: BGP4MP update logs (RFC 6396) of every UPDATE received, one file per period.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mrt {
    /// Where the logs go (absolute); none: no logs.
    #[serde(default)]
    pub updates_dir: Option<std::path::PathBuf>,
    /// Seconds each file covers before the next one starts; at least 60, default 900.
    #[serde(default = "default_rotate_s")]
    pub rotate_s: u32,
}

impl Default for Mrt {
    fn default() -> Self {
        Self {
            updates_dir: None,
            rotate_s: default_rotate_s(),
        }
    }
}

fn default_rotate_s() -> u32 {
    900
}

/// `[[virtual_network]]`: a network with its address spaces, subnets and peerings (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RawVirtualNetwork")]
pub struct VirtualNetwork {
    pub name: String,
    pub region: String,
    /// The IPv4 prefixes of `address_space`. With `address_space6`, at least one prefix; the
    /// prefixes do not overlap.
    pub address_space: Vec<Ipv4Prefix>,
    /// The IPv6 prefixes of `address_space` (one key holds both families).
    pub address_space6: Vec<Ipv6Prefix>,
    /// Names of the virtual networks this one is peered with. Declaring a peering on one side
    /// is enough; the fabric treats it as both ways.
    pub peerings: Vec<String>,
    /// `[[virtual_network.subnet]]`
    pub subnets: Vec<Subnet>,
}

/// `[[virtual_network]]` as written: `address_space` mixes the families.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVirtualNetwork {
    name: String,
    region: String,
    address_space: Vec<Prefix>,
    #[serde(default)]
    peerings: Vec<String>,
    #[serde(default, rename = "subnet")]
    subnets: Vec<Subnet>,
}

impl From<RawVirtualNetwork> for VirtualNetwork {
    fn from(raw: RawVirtualNetwork) -> Self {
        let mut address_space = Vec::new();
        let mut address_space6 = Vec::new();
        for p in raw.address_space {
            match p {
                Prefix::V4(p) => address_space.push(p),
                Prefix::V6(p) => address_space6.push(p),
            }
        }
        Self {
            name: raw.name,
            region: raw.region,
            address_space,
            address_space6,
            peerings: raw.peerings,
            subnets: raw.subnets,
        }
    }
}

/// `[[virtual_network.subnet]]`: a prefix inside its network's address space.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub name: String,
    pub prefix: Ipv4Prefix,
}

/// `[route_server]`: N BGP speakers sharing one config (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RawRouteServer")]
pub struct RouteServer {
    /// Our ASN; default 65515.
    pub asn: u32,
    /// The network whose address space is advertised and whose NICs get the learned routes.
    /// `None`: a bare route server that programs nothing.
    pub virtual_network: Option<String>,
    /// One BGP speaker per address, each listening on `ADDRESS:port`; at least one.
    pub instances: Vec<Ipv4Addr>,
    /// `instances_ipv6`: each instance's IPv6 address, paired by position with `instances`
    /// (none, or one per instance). An instance with one also listens on `[ADDRESS6]:port`,
    /// peers with IPv6 peers from it, and originates the IPv6 address space with it as the
    /// next hop.
    pub instances_ipv6: Vec<Ipv6Addr>,
    /// Local TCP port; default 179.
    pub port: u16,
    /// Re-advertise learned routes to the NVAs; default false.
    pub branch_to_branch: bool,
    /// Default route limit of a peer (SPEC §3 counting); default 4000.
    pub max_routes_per_peer: u32,
    /// Hold time we offer, in seconds: 0 (no keepalives) or at least 3; default 180.
    pub hold_time: u16,
    /// `[[route_server.peer]]`; every instance peers with every one.
    pub peers: Vec<Peer>,
    /// `graceful_restart = { enabled = true, restart_time_s = 120 }` (RFC 4724); off by default.
    pub graceful_restart: GracefulRestart,
}

/// `[route_server] graceful_restart`: helper for peers that restart, and restarting speaker
/// with its forwarding state preserved (the data plane does not depend on the controller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GracefulRestart {
    #[serde(default)]
    pub enabled: bool,
    /// Seconds a peer keeps our routes after our sessions go (12 bits: at most 4095).
    #[serde(default = "default_restart_time")]
    pub restart_time_s: u16,
}

impl Default for GracefulRestart {
    fn default() -> Self {
        Self {
            enabled: false,
            restart_time_s: default_restart_time(),
        }
    }
}

fn default_restart_time() -> u16 {
    120
}

impl RouteServer {
    /// Keepalive interval in seconds: a third of the hold time (RFC 4271 §10), 0 when it is 0.
    pub fn keepalive(&self) -> u16 {
        self.hold_time / 3
    }
}

/// `[[route_server.peer]]`: an NVA, peered with every instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    /// IPv4 or IPv6: the session runs over that family, from each instance's address of it.
    pub address: IpAddr,
    pub asn: u32,
    /// Seconds; the route server's unless set.
    pub hold_time: u16,
    /// Route limit; the route server's `max_routes_per_peer` unless set.
    pub max_routes: u32,
    /// TCP-MD5 (RFC 2385) key, at most 80 bytes.
    pub password: Option<Password>,
    /// The peer's TCP port; the route server's `port` unless set.
    pub port: u16,
    /// GTSM (RFC 5082): the peer must be one hop away (TTL 255 sent, under 254 dropped).
    pub ttl_security: bool,
    /// A path with more ASNs in its AS_PATH is refused (treated as withdrawn). Default 255.
    pub max_as_path_length: u32,
    /// A path with more communities (standard, extended, large) is refused. Default 1024.
    pub max_communities: u32,
    /// A path with more octets of unknown attributes is refused. Default 4096.
    pub max_unknown_attribute_octets: u32,
    /// BFD (RFC 5880/5881) with the peer: a BFD Down takes the BGP session down at once.
    pub bfd: Option<Bfd>,
}

/// `bfd = { enabled = true, interval_ms = 100, multiplier = 3 }` on a peer: single-hop BFD,
/// asynchronous mode. A session is declared down after `multiplier` intervals without a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bfd {
    /// Default true (the table says BFD is wanted).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Transmit and receive interval once Up, 10–60000 ms. Default 300.
    #[serde(default = "default_bfd_interval_ms")]
    pub interval_ms: u32,
    /// 1–255. Default 3.
    #[serde(default = "default_bfd_multiplier")]
    pub multiplier: u8,
}

fn yes() -> bool {
    true
}

fn default_bfd_interval_ms() -> u32 {
    300
}

fn default_bfd_multiplier() -> u8 {
    3
}

impl Peer {
    /// Keepalive interval in seconds: a third of the hold time, 0 when it is 0.
    pub fn keepalive(&self) -> u16 {
        self.hold_time / 3
    }
}

/// A TCP-MD5 key. `Debug` does not show it, so a logged config does not leak it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// The key, for the socket option.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// `[[load_balancer]]`: an internal L4 load balancer, HA ports (SPEC §4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    pub name: String,
    /// The network the frontend lives in. `None`: a standalone load balancer.
    #[serde(default)]
    pub virtual_network: Option<String>,
    /// IPv4 or IPv6; the backends are of the same family (one family per load balancer).
    pub frontend: IpAddr,
    /// Default active-active.
    #[serde(default)]
    pub mode: Mode,
    /// At least one; `priority` defaults to position + 1.
    #[serde(deserialize_with = "backends_with_priorities")]
    pub backends: Vec<Backend>,
    pub probe: Probe,
    /// Default 5-tuple.
    #[serde(default)]
    pub distribution: Distribution,
    /// Both directions of a flow pick the same backend; default false.
    #[serde(default)]
    pub symmetric: bool,
    /// Active-passive: a recovered higher-priority backend takes over again; default false.
    #[serde(default)]
    pub preempt: bool,
    /// Default drop.
    #[serde(default)]
    pub no_healthy_backends: NoHealthyBackends,
    /// Maglev lookup table size M, a prime larger than the number of backends; default 65537.
    #[serde(default = "default_maglev_table_size")]
    pub maglev_table_size: u32,
    /// Default 240.
    #[serde(default = "default_flow_idle_timeout_tcp_s")]
    pub flow_idle_timeout_tcp_s: u32,
    /// Default 30.
    #[serde(default = "default_flow_idle_timeout_udp_s")]
    pub flow_idle_timeout_udp_s: u32,
    /// Default 1,000,000.
    #[serde(default = "default_max_flows")]
    pub max_flows: u32,
}

/// How a load balancer spreads flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Every flow on the healthy backend of best priority.
    ActivePassive,
    /// Flows spread over healthy backends by hash.
    #[default]
    ActiveActive,
}

/// One NVA behind a load balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub address: IpAddr,
    /// Lower is preferred (active-passive); 1 is the first. Defaults to position + 1.
    pub priority: u32,
    /// Default none (probes decide).
    pub admin_state: AdminState,
}

/// An operator's override of a backend's probed health (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminState {
    /// Serving whatever the probes say.
    Up,
    /// Not serving, new or existing flows.
    Down,
    /// No new flows; existing flows stay.
    Drain,
    /// Probes decide.
    #[default]
    None,
}

/// `probe = { … }`: how backend health is checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RawProbe")]
pub struct Probe {
    pub protocol: ProbeProtocol,
    pub port: u16,
    /// HTTP(S) path; default "/".
    pub path: String,
    /// Default 5000, at least 100.
    pub interval_ms: u32,
    /// Default the interval; at most the interval.
    pub timeout_ms: u32,
    /// Consecutive successes to go up; default 2.
    pub rise: u32,
    /// Consecutive failures to go down; default 2.
    pub fall: u32,
    /// HTTPS: check the certificate; default false.
    pub verify_tls: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeProtocol {
    /// Up when a TCP connection opens.
    Tcp,
    /// Up on a 200 answer.
    Http,
    /// Up on a 200 answer over TLS.
    Https,
}

/// Which fields of a packet pick its backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Distribution {
    /// Source, destination, protocol and ports.
    #[default]
    #[serde(rename = "5-tuple")]
    FiveTuple,
    /// Source and destination addresses.
    #[serde(rename = "2-tuple")]
    TwoTuple,
    /// Addresses and protocol.
    #[serde(rename = "3-tuple")]
    ThreeTuple,
}

/// What new flows do when no backend is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoHealthyBackends {
    /// Dropped; established flows continue.
    #[default]
    Drop,
    /// Spread over all backends as if healthy.
    All,
}

/// `[[nic]]`: a NIC whose effective routes the fabric computes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    pub name: String,
    pub virtual_network: String,
    /// Inside the network's address space.
    pub address: Ipv4Addr,
    /// The NIC's IPv6 address, inside the network's IPv6 address space (dual stack).
    #[serde(default)]
    pub address6: Option<Ipv6Addr>,
}

/// `[api]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// Default 127.0.0.1:8179.
    #[serde(default = "default_api_listen")]
    pub listen: SocketAddr,
    /// The admin token's file: state-changing calls need `Authorization: Bearer <token>`.
    #[serde(default)]
    pub admin_token_file: Option<std::path::PathBuf>,
    /// The read token's file: when set, every GET (and `/metrics`) needs the read or the admin
    /// token.
    #[serde(default)]
    pub read_token_file: Option<std::path::PathBuf>,
    /// With `tls_key`: the API speaks HTTPS only, with this certificate chain (PEM).
    #[serde(default)]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM).
    #[serde(default)]
    pub tls_key: Option<std::path::PathBuf>,
}

impl Default for Api {
    fn default() -> Self {
        Self {
            listen: default_api_listen(),
            admin_token_file: None,
            read_token_file: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[fabric]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fabric {
    /// Stop programming a route whose load balancer has no healthy backend; default false.
    #[serde(default)]
    pub next_hop_tracking: bool,
}

macro_rules! names {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The name as written in the config file.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
names!(Mode { ActivePassive => "active-passive", ActiveActive => "active-active" });
names!(AdminState { Up => "up", Down => "down", Drain => "drain", None => "none" });
names!(ProbeProtocol { Tcp => "tcp", Http => "http", Https => "https" });
names!(Distribution { FiveTuple => "5-tuple", TwoTuple => "2-tuple", ThreeTuple => "3-tuple" });
names!(NoHealthyBackends { Drop => "drop", All => "all" });

pub const DEFAULT_ASN: u32 = 65515;
pub const DEFAULT_BGP_PORT: u16 = 179;
pub const DEFAULT_HOLD_TIME: u16 = 180;
pub const DEFAULT_MAX_ROUTES_PER_PEER: u32 = 4000;
pub const DEFAULT_MAGLEV_TABLE_SIZE: u32 = 65537;
pub const DEFAULT_API_LISTEN: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8179));

fn default_asn() -> u32 {
    DEFAULT_ASN
}
fn default_bgp_port() -> u16 {
    DEFAULT_BGP_PORT
}
fn default_hold_time() -> u16 {
    DEFAULT_HOLD_TIME
}
fn default_max_routes_per_peer() -> u32 {
    DEFAULT_MAX_ROUTES_PER_PEER
}
fn default_maglev_table_size() -> u32 {
    DEFAULT_MAGLEV_TABLE_SIZE
}
fn default_flow_idle_timeout_tcp_s() -> u32 {
    240
}
fn default_flow_idle_timeout_udp_s() -> u32 {
    30
}
fn default_max_flows() -> u32 {
    1_000_000
}
fn default_api_listen() -> SocketAddr {
    DEFAULT_API_LISTEN
}
fn default_probe_path() -> String {
    "/".to_owned()
}
fn default_probe_interval_ms() -> u32 {
    5000
}
fn default_probe_count() -> u32 {
    2
}

/// An ASN as written: an integer, 0 to 4294967295 (0 is rejected later, with the other checks).
fn asn<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    struct Asn;
    impl serde::de::Visitor<'_> for Asn {
        type Value = u32;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an ASN (1 to 4294967295)")
        }
        fn visit_i64<E: serde::de::Error>(self, asn: i64) -> Result<u32, E> {
            u32::try_from(asn).map_err(|_| {
                E::custom(format!("{asn} is out of range (an ASN is 1 to 4294967295)"))
            })
        }
        fn visit_u64<E: serde::de::Error>(self, asn: u64) -> Result<u32, E> {
            u32::try_from(asn).map_err(|_| {
                E::custom(format!("{asn} is out of range (an ASN is 1 to 4294967295)"))
            })
        }
    }
    deserializer.deserialize_i64(Asn)
}

/// `[route_server]` as written: peers' unset values still unset, so validation can tell an
/// inherited value from one written on the peer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouteServer {
    #[serde(default = "default_asn", deserialize_with = "asn")]
    pub asn: u32,
    #[serde(default)]
    pub virtual_network: Option<String>,
    #[serde(default)]
    pub instances: Vec<Ipv4Addr>,
    #[serde(default)]
    pub instances_ipv6: Vec<Ipv6Addr>,
    #[serde(default = "default_bgp_port")]
    pub port: u16,
    #[serde(default)]
    pub branch_to_branch: bool,
    #[serde(default = "default_max_routes_per_peer")]
    pub max_routes_per_peer: u32,
    #[serde(default = "default_hold_time")]
    pub hold_time: u16,
    #[serde(default)]
    pub peer: Vec<RawPeer>,
    #[serde(default)]
    pub graceful_restart: GracefulRestart,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeer {
    pub name: String,
    pub address: IpAddr,
    #[serde(deserialize_with = "asn")]
    pub asn: u32,
    #[serde(default)]
    pub hold_time: Option<u16>,
    #[serde(default)]
    pub max_routes: Option<u32>,
    #[serde(default)]
    pub password: Option<Password>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub ttl_security: bool,
    #[serde(default = "default_max_as_path_length")]
    pub max_as_path_length: u32,
    #[serde(default = "default_max_communities")]
    pub max_communities: u32,
    #[serde(default = "default_max_unknown_attribute_octets")]
    pub max_unknown_attribute_octets: u32,
    #[serde(default)]
    pub bfd: Option<Bfd>,
}

fn default_max_as_path_length() -> u32 {
    255
}

fn default_max_communities() -> u32 {
    1024
}

fn default_max_unknown_attribute_octets() -> u32 {
    4096
}

impl From<RawRouteServer> for RouteServer {
    fn from(raw: RawRouteServer) -> Self {
        let peers = raw
            .peer
            .into_iter()
            .map(|p| Peer {
                name: p.name,
                address: p.address,
                asn: p.asn,
                hold_time: p.hold_time.unwrap_or(raw.hold_time),
                max_routes: p.max_routes.unwrap_or(raw.max_routes_per_peer),
                password: p.password,
                port: p.port.unwrap_or(raw.port),
                ttl_security: p.ttl_security,
                max_as_path_length: p.max_as_path_length,
                max_communities: p.max_communities,
                max_unknown_attribute_octets: p.max_unknown_attribute_octets,
                bfd: p.bfd.filter(|b| b.enabled),
            })
            .collect();
        Self {
            asn: raw.asn,
            virtual_network: raw.virtual_network,
            instances: raw.instances,
            instances_ipv6: raw.instances_ipv6,
            port: raw.port,
            branch_to_branch: raw.branch_to_branch,
            max_routes_per_peer: raw.max_routes_per_peer,
            hold_time: raw.hold_time,
            peers,
            graceful_restart: raw.graceful_restart,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    address: IpAddr,
    #[serde(default)]
    priority: Option<u32>,
    #[serde(default)]
    admin_state: AdminState,
}

fn backends_with_priorities<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Backend>, D::Error> {
    let raw = Vec::<RawBackend>::deserialize(deserializer)?;
    Ok(raw
        .into_iter()
        .enumerate()
        .map(|(i, b)| Backend {
            address: b.address,
            priority: b
                .priority
                .unwrap_or_else(|| u32::try_from(i + 1).unwrap_or(u32::MAX)),
            admin_state: b.admin_state,
        })
        .collect())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    protocol: ProbeProtocol,
    port: u16,
    #[serde(default = "default_probe_path")]
    path: String,
    #[serde(default = "default_probe_interval_ms")]
    interval_ms: u32,
    #[serde(default)]
    timeout_ms: Option<u32>,
    #[serde(default = "default_probe_count")]
    rise: u32,
    #[serde(default = "default_probe_count")]
    fall: u32,
    #[serde(default)]
    verify_tls: bool,
}

impl From<RawProbe> for Probe {
    fn from(raw: RawProbe) -> Self {
        Self {
            protocol: raw.protocol,
            port: raw.port,
            path: raw.path,
            interval_ms: raw.interval_ms,
            timeout_ms: raw.timeout_ms.unwrap_or(raw.interval_ms),
            rise: raw.rise,
            fall: raw.fall,
            verify_tls: raw.verify_tls,
        }
    }
}
