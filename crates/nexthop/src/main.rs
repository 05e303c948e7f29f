//! `nexthop`: one binary for the route server, the load balancer, the CLI and the demo.
//!
//! This is the only place that wires the crates together.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

mod adminstore;
mod agent;
mod api;
mod apitls;
mod bfdrun;
mod bmprun;
mod check;
mod cli;
mod console;
mod contract;
mod daemon;
mod demo;
mod events;
mod fabricrun;
mod instance;
mod lbrun;
mod mrtlog;
mod mux;
mod openapi;
mod token;

#[derive(Parser)]
#[command(
    name = "nexthop",
    version,
    about = "BGP route server with next hop IP support, and an internal L4 load balancer"
)]
struct Cli {
    /// API of a running `nexthop run` (or demo). Repeatable (or comma-separated in
    /// NEXTHOP_API), one per controller: `lb set-admin` and `reload` apply to each; the
    /// queries ask the first.
    #[arg(
        long,
        global = true,
        env = "NEXTHOP_API",
        default_value = "http://127.0.0.1:8179",
        value_delimiter = ','
    )]
    api: Vec<String>,
    /// The API token to send (`Authorization: Bearer`): a file with one line, mode 600.
    #[arg(long, global = true, env = "NEXTHOP_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    /// The CA to verify an https:// API with (PEM); default: the system's roots.
    #[arg(long, global = true, env = "NEXTHOP_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run what the config declares: route server instances, load balancers, fabric, API.
    Run {
        #[arg(long)]
        config: std::path::PathBuf,
        /// Run only the route server instance at this address (repeatable; default: every
        /// instance of the config). One process per instance, on its own host, is the
        /// reference's redundancy.
        #[arg(long = "instance", value_name = "ADDR")]
        instances: Vec<std::net::Ipv4Addr>,
        /// Serve the API here instead of `[api] listen` (one config file for every host).
        #[arg(long, value_name = "ADDR:PORT")]
        api_listen: Option<std::net::SocketAddr>,
    },
    /// MRT (RFC 6396) exports of the route server's tables.
    Mrt {
        #[command(subcommand)]
        command: MrtCommand,
    },
    /// Shell completions for bash, zsh or fish, on stdout
    /// (e.g. `nexthop completions bash > /usr/share/bash-completion/completions/nexthop`).
    Completions {
        #[arg(value_parser = ["bash", "zsh", "fish"])]
        shell: String,
    },
    /// The man page (roff) on stdout: `nexthop man | man -l -`.
    Man,
    /// Config files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The embedded default: route server instances and emulated NVAs on 127.0.0.0/8.
    Demo(demo::DemoArgs),
    /// The Loc-RIB of each instance: ECMP paths and forwarding next hops.
    Rib {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        output: String,
    },
    /// Re-read the config of a running `nexthop run` and apply it (as SIGHUP does).
    Reload,
    /// BGP peers per route server instance.
    Peers {
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        output: String,
    },
    /// Routes learned from, or advertised to, a peer.
    Routes {
        /// `learned` or `advertised`.
        which: String,
        #[arg(long)]
        peer: String,
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        output: String,
    },
    /// Effective routes of a NIC.
    EffectiveRoutes {
        #[arg(long)]
        nic: String,
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        output: String,
    },
    /// Load balancer state and admin commands.
    Lb {
        #[command(subcommand)]
        command: LbCommand,
    },
    /// Where a given flow from a NIC goes: the route, why it won, the LB and the backend.
    Trace {
        #[arg(long)]
        nic: String,
        #[arg(long)]
        dst: String,
        #[arg(long, default_value = "tcp", value_parser = ["tcp", "udp", "icmp"])]
        proto: String,
        #[arg(long)]
        sport: Option<u16>,
        #[arg(long)]
        dport: Option<u16>,
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        output: String,
    },
    /// Host agent: programs a NIC's effective routes into the kernel.
    Agent {
        /// A controller's API URL (repeatable: one per route server instance; the kernel gets
        /// the union of what they say).
        #[arg(long = "controller", value_name = "URL", required = true)]
        controllers: Vec<String>,
        #[arg(long)]
        nic: String,
        /// After reconnecting to the controller, keep routes it does not list (yet) this many
        /// seconds before removing them (a restarted controller relearns its routes first).
        #[arg(long, default_value_t = 10)]
        reconnect_grace_s: u64,
        /// Seconds a silent controller's last answer still counts while another controller
        /// answers (with none answering, it counts for ever: fail static).
        #[arg(long, value_name = "SECONDS", default_value_t = 300)]
        stale_after: u64,
        /// Only program routes inside this prefix (repeatable; default: any prefix except one
        /// that would take over the route to the controller).
        #[arg(long)]
        allow: Vec<linux::Prefix>,
        /// Write the agent's metrics here (Prometheus text, for node_exporter's textfile
        /// collector), rewritten atomically after each change.
        #[arg(long)]
        metrics_file: Option<std::path::PathBuf>,
    },
    /// Load balancer data plane on the host that owns the frontend.
    LbMux {
        /// A controller's API URL (repeatable: health and roles come from the first one in
        /// this order that answers).
        #[arg(long = "controller", value_name = "URL", required = true)]
        controllers: Vec<String>,
        #[arg(long)]
        lb: String,
        #[arg(long)]
        interface: String,
        /// Forwarding threads (0: one per CPU).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
}

#[derive(Subcommand)]
enum MrtCommand {
    /// A TABLE_DUMP_V2 snapshot of an instance's Adj-RIBs-In (read it with `bgpdump -m FILE`).
    Dump {
        /// The instance's name (`RouteServiceRole_IN_0`, …).
        #[arg(long)]
        instance: String,
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check FILE as `nexthop run` would (the config, the API's token and TLS files, the
    /// instances selected) and print what it would run; nothing starts.
    Check {
        file: std::path::PathBuf,
        /// As for `nexthop run`: only the instance at this address (repeatable).
        #[arg(long = "instance", value_name = "ADDR")]
        instances: Vec<std::net::Ipv4Addr>,
        /// As for `nexthop run`: the API's address instead of `[api] listen`.
        #[arg(long, value_name = "ADDR:PORT")]
        api_listen: Option<std::net::SocketAddr>,
    },
}

#[derive(Subcommand)]
enum LbCommand {
    /// Backends: health, admin state, role, last probe, flows.
    Show {
        name: String,
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        output: String,
    },
    /// Override the probes for one backend: up, down, drain (no new flows) or none.
    SetAdmin {
        name: String,
        backend: String,
        #[arg(value_parser = ["up", "down", "drain", "none"])]
        state: String,
    },
}

fn main() {
    if let Err(e) = real_main() {
        // One clean line (with its causes), not a backtrace: this is a user-facing tool.
        eprintln!("nexthop: {e:#}");
        std::process::exit(1);
    }
}

/// The log filter from `NEXTHOP_LOG`: a level (`info`) or `target=level` directives
/// (`warn,routeserver=debug`). Unset or invalid means warnings and errors only; an invalid value
/// is reported, not fatal. (`Targets` rather than `EnvFilter`: no regex engine in the binary.)
fn log_filter(var: Option<&str>) -> (Targets, Option<String>) {
    let warn = || Targets::new().with_default(tracing::Level::WARN);
    match var.map(str::trim).filter(|v| !v.is_empty()) {
        None => (warn(), None),
        Some(v) => match v.parse::<Targets>() {
            Ok(t) => (t, None),
            Err(e) => (warn(), Some(format!("invalid filter {v:?}: {e}"))),
        },
    }
}

/// `NEXTHOP_LOG_FORMAT`: `json` for one JSON object a line (for a log shipper), anything else
/// unset or `text`. An unknown value is reported and text is used.
fn log_json(var: Option<&str>) -> (bool, Option<String>) {
    match var.map(str::trim) {
        None | Some("") | Some("text") => (false, None),
        Some("json") => (true, None),
        Some(v) => (false, Some(format!("{v:?} is not text or json"))),
    }
}

fn real_main() -> anyhow::Result<()> {
    let (filter, bad_filter) = log_filter(std::env::var("NEXTHOP_LOG").ok().as_deref());
    let (json, bad_format) = log_json(std::env::var("NEXTHOP_LOG_FORMAT").ok().as_deref());
    let text = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
    });
    let json = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(text)
        .with(json)
        .with(filter)
        .init();
    if let Some(e) = bad_filter {
        tracing::warn!("NEXTHOP_LOG: {e}; logging warnings and errors only");
    }
    if let Some(e) = bad_format {
        tracing::warn!("NEXTHOP_LOG_FORMAT: {e}; logging text");
    }
    let cli = Cli::parse();
    let api = cli
        .api
        .first()
        .map_or("http://127.0.0.1:8179", String::as_str);
    token::set_client_token_file(cli.token_file.as_deref())?;
    apitls::set_ca_file(cli.ca_file.as_deref());
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let shell = match shell.as_str() {
                "bash" => clap_complete::Shell::Bash,
                "zsh" => clap_complete::Shell::Zsh,
                _ => clap_complete::Shell::Fish,
            };
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "nexthop",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Man => {
            use clap::CommandFactory;
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                // `nexthop man | head`: the reader went away, nothing is wrong.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                r => Ok(r?),
            }
        }
        Command::Config {
            command:
                ConfigCommand::Check {
                    file,
                    instances,
                    api_listen,
                },
        } => {
            let plan = check::check(
                &file,
                &daemon::RunOptions {
                    only: daemon::Only(instances),
                    api_listen,
                },
            )?;
            print!("{plan}");
            Ok(())
        }
        Command::Run {
            config,
            instances,
            api_listen,
        } => daemon::run(
            config,
            daemon::RunOptions {
                only: daemon::Only(instances),
                api_listen,
            },
        ),
        Command::Reload => cli::reload(&cli.api),
        Command::Mrt {
            command: MrtCommand::Dump { instance, out },
        } => cli::mrt_dump(api, &instance, &out),
        Command::Rib { output } => cli::rib(api, &output),
        Command::Peers { output } => cli::peers(api, &output),
        Command::Routes {
            which,
            peer,
            output,
        } => cli::routes(api, &which, &peer, &output),
        Command::EffectiveRoutes { nic, output } => cli::effective_routes(api, &nic, &output),
        Command::Trace {
            nic,
            dst,
            proto,
            sport,
            dport,
            output,
        } => cli::trace(api, &nic, &dst, &proto, sport, dport, &output),
        Command::Lb {
            command: LbCommand::Show { name, output },
        } => cli::lb_show(api, &name, &output),
        Command::Lb {
            command:
                LbCommand::SetAdmin {
                    name,
                    backend,
                    state,
                },
        } => cli::lb_set_admin(&cli.api, &name, &backend, &state),
        Command::Agent {
            controllers,
            nic,
            reconnect_grace_s,
            stale_after,
            allow,
            metrics_file,
        } => agent::run(agent::Options {
            controllers,
            nic,
            grace: std::time::Duration::from_secs(reconnect_grace_s),
            stale_after: std::time::Duration::from_secs(stale_after),
            allow,
            metrics_file,
        }),
        Command::LbMux {
            controllers,
            lb,
            interface,
            threads,
        } => mux::run(&controllers, &lb, &interface, threads),
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn log_format_is_text_unless_json() {
        assert_eq!(super::log_json(None), (false, None));
        assert_eq!(super::log_json(Some("text")), (false, None));
        assert_eq!(super::log_json(Some(" json ")), (true, None));
        let (json, e) = super::log_json(Some("yaml"));
        assert!(!json && e.unwrap().contains("yaml"));
    }

    #[test]
    fn log_filter_takes_levels_and_directives_and_reports_garbage() {
        let (t, e) = log_filter(None);
        assert!(e.is_none());
        assert!(t.would_enable("routeserver", &Level::WARN));
        assert!(!t.would_enable("routeserver", &Level::INFO));

        let (t, e) = log_filter(Some("warn,routeserver=debug"));
        assert!(e.is_none());
        assert!(t.would_enable("routeserver::rib", &Level::DEBUG));
        assert!(!t.would_enable("bgp_driver", &Level::INFO));

        let (t, e) = log_filter(Some("routeserver=loud"));
        assert!(e.unwrap().contains("routeserver=loud"));
        assert!(t.would_enable("routeserver", &Level::WARN));
        assert!(!t.would_enable("routeserver", &Level::INFO));
    }
}
