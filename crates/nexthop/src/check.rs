//! `nexthop config check FILE`: everything `nexthop run` checks before it starts anything (the
//! config, the API's token and TLS files and its listen address, `--instance`), then the plan it
//! would run. Nothing starts, nothing binds.

use std::fmt::Write as _;
use std::path::Path;

use crate::daemon::RunOptions;

/// The config's value as written in TOML (`active-passive`, `http`, …).
fn as_written<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Checks `path` as `nexthop run --config path` would (with the same overrides) and returns the
/// plan; an error names every problem.
pub fn check(path: &Path, opts: &RunOptions) -> anyhow::Result<String> {
    let cfg = opts.load(path)?;
    let auth = crate::token::ApiAuth::load(&cfg.api)?;
    auth.check_listen(cfg.api.listen)?;
    let specs = opts.only.specs(&cfg)?;
    Ok(plan(path, &cfg, &specs))
}

/// What `nexthop run` would run, one part a line.
fn plan(path: &Path, cfg: &config::Config, specs: &[controller::instance::InstanceSpec]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: valid", path.display());
    match &cfg.route_server {
        None => {
            let _ = writeln!(out, "route server: none");
        }
        Some(rs) => {
            let gr = if rs.graceful_restart.enabled {
                format!("graceful restart {} s", rs.graceful_restart.restart_time_s)
            } else {
                "graceful restart off".to_string()
            };
            let _ = writeln!(
                out,
                "route server: AS {}, port {}, virtual network {}, branch_to_branch {}, {gr}",
                rs.asn,
                rs.port,
                rs.virtual_network.as_deref().unwrap_or("none"),
                rs.branch_to_branch
            );
            for s in specs {
                match s.address6 {
                    Some(a6) => {
                        let _ = writeln!(
                            out,
                            "  instance {} on {}:{} and [{a6}]:{}",
                            s.name, s.address, s.port, s.port
                        );
                    }
                    None => {
                        let _ = writeln!(out, "  instance {} on {}:{}", s.name, s.address, s.port);
                    }
                }
                let adv: Vec<String> = s
                    .originated
                    .iter()
                    .map(ToString::to_string)
                    .chain(
                        s.originated6
                            .iter()
                            .map(|p| format!("{p} (next hop {})", s.next_hop6())),
                    )
                    .collect();
                if !adv.is_empty() {
                    let _ = writeln!(out, "    advertises {}", adv.join(", "));
                }
            }
            for p in &rs.peers {
                let mut extra = Vec::new();
                if p.password.is_some() {
                    extra.push("TCP-MD5".to_string());
                }
                if p.ttl_security {
                    extra.push("GTSM".to_string());
                }
                let _ = writeln!(
                    out,
                    "  peer {} {} AS {} port {}: hold {} s, at most {} routes{}",
                    p.name,
                    p.address,
                    p.asn,
                    p.port,
                    p.hold_time,
                    p.max_routes,
                    if extra.is_empty() {
                        String::new()
                    } else {
                        format!(", {}", extra.join(", "))
                    }
                );
            }
        }
    }
    for lb in &cfg.load_balancers {
        let pr = &lb.probe;
        let target = match pr.protocol {
            config::ProbeProtocol::Tcp => format!(":{}", pr.port),
            _ => format!(":{}{}", pr.port, pr.path),
        };
        let _ = writeln!(
            out,
            "load balancer {}: frontend {}, {}, probe {} {target} every {} ms (rise {}, fall {})",
            lb.name,
            lb.frontend,
            as_written(&lb.mode),
            as_written(&pr.protocol),
            pr.interval_ms,
            pr.rise,
            pr.fall
        );
        for b in &lb.backends {
            let admin = match b.admin_state {
                config::AdminState::None => String::new(),
                a => format!(", admin {}", as_written(&a)),
            };
            let _ = writeln!(
                out,
                "  backend {} priority {}{admin}",
                b.address, b.priority
            );
        }
    }
    for v in &cfg.virtual_networks {
        let space: Vec<String> = v
            .address_space
            .iter()
            .map(ToString::to_string)
            .chain(v.address_space6.iter().map(ToString::to_string))
            .collect();
        let _ = writeln!(
            out,
            "virtual network {} ({}): {}",
            v.name,
            v.region,
            space.join(", ")
        );
    }
    for n in &cfg.nics {
        let _ = writeln!(
            out,
            "nic {}: {} in {}",
            n.name, n.address, n.virtual_network
        );
    }
    if let Some(dir) = &cfg.mrt.updates_dir {
        let _ = writeln!(
            out,
            "mrt: every UPDATE received into {}, a new file every {} s",
            dir.display(),
            cfg.mrt.rotate_s
        );
    }
    for b in &cfg.bmp {
        let _ = writeln!(out, "bmp: every instance streams to {}", b.collector);
    }
    let scheme = if cfg.api.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let set = |f: &Option<std::path::PathBuf>| if f.is_some() { "set" } else { "not set" };
    let _ = writeln!(
        out,
        "api: {scheme}://{}, admin token {}, read token {}; state_dir {}",
        cfg.api.listen,
        set(&cfg.api.admin_token_file),
        set(&cfg.api.read_token_file),
        cfg.state_dir
            .as_deref()
            .map_or("none".to_string(), |d| d.display().to_string())
    );
    out
}
