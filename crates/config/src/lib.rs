//! nexthop's configuration: the TOML file of SPEC §6, parsed into typed sections and validated.
//!
//! [`parse`] turns the text into a [`Config`] or into [`ConfigErrors`] listing *every* problem
//! (unknown keys, bad values, dangling references, duplicates, out-of-range numbers), each naming
//! the file, the key path and what is wrong:
//!
//! ```text
//! config.toml: route_server.peer[1].asn: 65515 is reserved (SPEC §3: 8074, 8075, …)
//! config.toml: load_balancer[0].backends[2].address: "10.1.2.300": invalid IPv4 address syntax
//! ```
//!
//! A `Config` that comes out of [`parse`] has every default applied and every check passed: the
//! binary starts nothing on a bad file and needs no checks of its own. [`diff_peers`] tells a
//! reload which BGP sessions to bring up, take down or keep.
//!
//! This crate never does I/O except reading the file in [`load`], never imports tokio, never
//! starts anything, and never silently fixes a value (`10.1.0.1/16` is an error, not `10.1.0.0/16`).
//!
//! ```text
//!   text ──toml──> toml::Table ──de (key paths)──> sections ──validate──> Config
//!     │ syntax error (line:col)     │ unknown key, bad value    │ references, duplicates, ranges
//!     └────────────────────────────┴──────────> ConfigErrors <──┘
//! ```
//!
//! # Layout
//! - `model`: the types, one per section, and their defaults.
//! - [`Ipv4Prefix`] (from `netprefix`, the one prefix type of every layer): `"10.1.0.0/16"`, host bits never set.
//! - `asn`: [`RESERVED_ASNS`] and [`is_reserved_asn`] (SPEC §3).
//! - `de`: a serde deserializer over `toml::Value` that tracks key paths and reports every
//!   unknown key with the valid ones.
//! - `validate`: the checks across values.
//! - `error`: [`ConfigError`], [`ConfigErrors`].
//! - `diff`: [`diff_peers`].
#![deny(unsafe_code)]

mod asn;
mod de;
mod diff;
mod error;
mod model;
mod validate;

use std::path::Path;

pub use asn::{is_reserved_asn, AS_TRANS, RESERVED_ASNS};
pub use diff::{diff_peers, PeerChange, PeerDiff};
pub use error::{ConfigError, ConfigErrors};
pub use model::{
    AdminState, Api, Backend, Bmp, Config, Distribution, Fabric, GracefulRestart, LoadBalancer,
    Mode, Mrt, Nic, NoHealthyBackends, Password, Peer, Probe, ProbeProtocol, RouteServer, Subnet,
    VirtualNetwork, DEFAULT_API_LISTEN, DEFAULT_ASN, DEFAULT_BGP_PORT, DEFAULT_HOLD_TIME,
    DEFAULT_MAGLEV_TABLE_SIZE, DEFAULT_MAX_ROUTES_PER_PEER,
};
pub use netprefix::{Ipv4Prefix, PrefixError};
pub use validate::{MAX_PASSWORD_BYTES, MIN_PROBE_INTERVAL_MS};

use error::Problems;
use model::RawRouteServer;
use validate::Sections;

/// The top-level sections, in the order they are read.
const SECTIONS: &[&str] = &[
    "virtual_network",
    "route_server",
    "load_balancer",
    "nic",
    "api",
    "fabric",
    "state_dir",
    "mrt",
    "bmp",
];

/// Reads and parses the config file at `path`; messages name the file as given.
pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
    let path = path.as_ref();
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &file),
        Err(e) => Err(ConfigErrors {
            errors: vec![ConfigError {
                file,
                key: None,
                position: None,
                message: format!("cannot read: {e}"),
            }],
        }),
    }
}

/// Parses and validates config text; `file` names it in messages.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    let problems = Problems::default();
    let table = match text.parse::<toml::Table>() {
        Ok(table) => table,
        Err(e) => {
            let position = e.span().map(|span| line_column(text, span.start));
            problems.at_position(position, e.message().trim());
            return Err(problems.into_errors(file));
        }
    };
    let sections = read_sections(&table, &problems);
    validate::check(&sections.sections, &problems);
    if problems.is_empty() {
        Ok(sections.into_config())
    } else {
        Err(problems.into_errors(file))
    }
}

impl Config {
    pub fn virtual_network(&self, name: &str) -> Option<&VirtualNetwork> {
        self.virtual_networks.iter().find(|v| v.name == name)
    }

    pub fn load_balancer(&self, name: &str) -> Option<&LoadBalancer> {
        self.load_balancers.iter().find(|lb| lb.name == name)
    }

    /// The load balancer whose frontend is `addr`: how a BGP next hop resolves (SPEC §5).
    pub fn load_balancer_by_frontend(&self, addr: std::net::IpAddr) -> Option<&LoadBalancer> {
        self.load_balancers.iter().find(|lb| lb.frontend == addr)
    }

    pub fn nic(&self, name: &str) -> Option<&Nic> {
        self.nics.iter().find(|n| n.name == name)
    }
}

/// Everything that parsed, ready for validation.
struct Read {
    sections: Sections,
    api: Api,
    fabric: Fabric,
    state_dir: Option<std::path::PathBuf>,
    mrt: Mrt,
    bmp: Vec<Bmp>,
}

impl Read {
    fn into_config(self) -> Config {
        let Sections {
            virtual_networks,
            route_server,
            load_balancers,
            nics,
            ..
        } = self.sections;
        Config {
            virtual_networks: virtual_networks.into_iter().map(|(_, v)| v).collect(),
            route_server: route_server.map(RouteServer::from),
            load_balancers: load_balancers.into_iter().map(|(_, lb)| lb).collect(),
            nics: nics.into_iter().map(|(_, n)| n).collect(),
            api: self.api,
            fabric: self.fabric,
            state_dir: self.state_dir,
            mrt: self.mrt,
            bmp: self.bmp,
        }
    }
}

/// Deserializes each section, and each item of an array section, on its own, so one bad item
/// does not hide the problems of the others.
fn read_sections(table: &toml::Table, problems: &Problems) -> Read {
    let mut read = Read {
        sections: Sections::default(),
        api: Api::default(),
        fabric: Fabric::default(),
        state_dir: None,
        mrt: Mrt::default(),
        bmp: Vec::new(),
    };
    let sections = &mut read.sections;
    for (key, _) in table
        .iter()
        .filter(|(key, _)| !SECTIONS.contains(&key.as_str()))
    {
        problems.at(de::child("", key), de::unknown_key_message(key, SECTIONS));
    }
    if let Some(value) = table.get("virtual_network") {
        let items = array_of_tables(value, "virtual_network", problems);
        // Networks that did not parse still count as declared when their name can be read, so
        // a typo in one does not turn every reference to it into a second error.
        let parsed: Vec<usize> = items.iter().map(|(i, _)| *i).collect();
        let unparsed_names: Option<Vec<String>> = match value.as_array() {
            Some(raw) => raw
                .iter()
                .enumerate()
                .filter(|(i, _)| !parsed.contains(i))
                .map(|(_, item)| {
                    item.get("name")
                        .and_then(toml::Value::as_str)
                        .map(str::to_owned)
                })
                .collect(),
            None => None,
        };
        sections.virtual_networks = items;
        sections.virtual_networks_complete = unparsed_names.is_some();
        sections.unparsed_virtual_networks = unparsed_names.unwrap_or_default();
    } else {
        sections.virtual_networks_complete = true;
    }
    if let Some(value) = table.get("route_server") {
        sections.route_server = de::from_value::<RawRouteServer>(value, "route_server", problems);
    }
    if let Some(value) = table.get("load_balancer") {
        sections.load_balancers = array_of_tables(value, "load_balancer", problems);
    }
    if let Some(value) = table.get("nic") {
        sections.nics = array_of_tables(value, "nic", problems);
    }
    if let Some(value) = table.get("api") {
        read.api = de::from_value(value, "api", problems).unwrap_or_default();
    }
    if let Some(value) = table.get("fabric") {
        read.fabric = de::from_value(value, "fabric", problems).unwrap_or_default();
    }
    if let Some(value) = table.get("mrt") {
        read.mrt = de::from_value(value, "mrt", problems).unwrap_or_default();
        if let Some(d) = read.mrt.updates_dir.as_ref().filter(|d| !d.is_absolute()) {
            problems.at(
                "mrt.updates_dir",
                format!("{:?} is not an absolute path", d.display().to_string()),
            );
        }
        if read.mrt.rotate_s < 60 {
            problems.at(
                "mrt.rotate_s",
                format!("{} is too short: at least 60 seconds", read.mrt.rotate_s),
            );
        }
    }
    if let Some(value) = table.get("bmp") {
        for (i, b) in array_of_tables::<Bmp>(value, "bmp", problems) {
            let port = b
                .collector
                .rsplit_once(':')
                .map(|(host, port)| (host, port.parse::<u16>()));
            match port {
                Some((host, Ok(p))) if p != 0 && !host.is_empty() => read.bmp.push(b),
                _ => problems.at(
                    format!("bmp[{i}].collector"),
                    format!("{:?} is not HOST:PORT", b.collector),
                ),
            }
        }
    }
    if let Some(value) = table.get("state_dir") {
        match value.as_str() {
            Some(p) if p.starts_with('/') => read.state_dir = Some(p.into()),
            Some(p) => problems.at("state_dir", format!("{p:?} is not an absolute path")),
            None => problems.at(
                "state_dir",
                format!("expected a path (a string), found {}", value.type_str()),
            ),
        }
    }
    read
}

/// The items of `[[name]]` that parsed, with their indices.
fn array_of_tables<T: serde::de::DeserializeOwned>(
    value: &toml::Value,
    name: &str,
    problems: &Problems,
) -> Vec<(usize, T)> {
    let Some(items) = value.as_array() else {
        problems.at(
            name,
            format!(
                "expected an array of tables ([[{name}]]), found {}",
                value.type_str()
            ),
        );
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            de::from_value(item, &format!("{name}[{i}]"), problems).map(|t| (i, t))
        })
        .collect()
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbé = x\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 10), (2, 4));
        assert_eq!(line_column(text, 100), (3, 1));
    }
}
