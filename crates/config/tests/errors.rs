//! One test per kind of config error: each asserts the message names the key path and the problem.

const SEED: &str = include_str!("seed.toml");

/// The error lines for `text`, which must not parse.
fn errors(text: &str) -> Vec<String> {
    match config::parse(text, "config.toml") {
        Ok(config) => panic!("expected errors, parsed: {config:#?}"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// Asserts `text` fails with exactly one error: `config.toml: KEY: MESSAGE…`, message
/// containing `problem`.
#[track_caller]
fn assert_error(text: &str, key: &str, problem: &str) {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "one error expected: {errors:#?}");
    let prefix = format!("config.toml: {key}: ");
    assert!(
        errors[0].starts_with(&prefix) && errors[0].contains(problem),
        "expected `{prefix}…{problem}…`, got `{}`",
        errors[0]
    );
}

/// The seed with one line replaced.
#[track_caller]
fn seed_with(from: &str, to: &str) -> String {
    assert!(SEED.contains(from), "{from:?} is not in the seed");
    SEED.replacen(from, to, 1)
}

const PEER2: &str =
    "\n[[route_server.peer]]\nname = \"nva2\"\naddress = \"10.1.2.11\"\nasn = 65002\n";

// ---- syntax and unknown keys ----

#[test]
fn toml_syntax_error_has_line_and_column() {
    let errors = errors("[api]\nlisten = \"127.0.0.1:8179\"\nport 8179\n");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("config.toml:3:6: "), "{}", errors[0]);
    assert!(errors[0].contains("expected"), "{}", errors[0]);
}

#[test]
fn toml_duplicate_key_is_a_syntax_error() {
    let errors = errors(&seed_with("asn = 65001", "asn = 65001\nasn = 65002"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("config.toml:15:1: duplicate key"),
        "{}",
        errors[0]
    );
}

#[test]
fn unknown_top_level_section() {
    assert_error(
        &format!("{SEED}\n[route_servers]\nasn = 1\n"),
        "route_servers",
        "unknown key (did you mean `route_server`?); valid keys: virtual_network, route_server, load_balancer, nic, api, fabric",
    );
}

#[test]
fn unknown_peer_key_names_path_and_valid_keys() {
    assert_error(
        &format!("{SEED}{PEER2}passwd = \"x\"\n"),
        "route_server.peer[1].passwd",
        "unknown key (did you mean `password`?); valid keys: name, address, asn, hold_time, max_routes, password, port",
    );
}

#[test]
fn unknown_key_in_inline_tables() {
    let errors = errors(
        &seed_with("priority = 2 }", "priority = 2, weight = 5 }").replace("rise = 2", "rize = 2"),
    );
    assert_eq!(
        errors,
        [
            "config.toml: load_balancer[0].backends[1].weight: unknown key; valid keys: address, priority, admin_state",
            "config.toml: load_balancer[0].probe.rize: unknown key (did you mean `rise`?); valid keys: protocol, \
             port, path, interval_ms, timeout_ms, rise, fall, verify_tls",
        ]
    );
}

#[test]
fn unknown_key_in_route_server_and_subnet() {
    let text = format!(
        "{SEED}\n[[virtual_network.subnet]]\nname = \"a\"\nprefix = \"10.1.9.0/24\"\nzone = 1\n"
    )
    .replace("asn = 65515\n", "asn = 65515\nrouter_id = \"1.1.1.1\"\n");
    let errors = errors(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors
        .iter()
        .any(|e| e.starts_with("config.toml: route_server.router_id: unknown key")));
    // The subnet belongs to the last [[virtual_network]] before it in the file: the only one.
    assert!(errors
        .iter()
        .any(|e| e.starts_with("config.toml: virtual_network[0].subnet[0].zone: unknown key")));
}

#[test]
fn wrong_type() {
    assert_error(
        &seed_with("asn = 65001", "asn = \"65001\""),
        "route_server.peer[0].asn",
        "invalid type: string \"65001\", expected an ASN (1 to 4294967295)",
    );
    assert_error(
        &seed_with("port = 8080", "port = \"8080\""),
        "load_balancer[0].probe.port",
        "expected an integer, found a string \"8080\"",
    );
    assert_error(
        &seed_with("port = 8080", "port = 80800"),
        "load_balancer[0].probe.port",
        "80800 is out of range (0 to 65535)",
    );
    assert_error(
        &seed_with("mode = \"active-passive\"", "mode = \"primary\""),
        "load_balancer[0].mode",
        "unknown variant `primary`",
    );
    assert_error(
        &format!("{SEED}[fabric]\nnext_hop_tracking = \"yes\"\n"),
        "fabric.next_hop_tracking",
        "expected true or false",
    );
    assert_error(
        &format!("{SEED}[api]\nlisten = \"localhost\"\n"),
        "api.listen",
        "\"localhost\": invalid socket address syntax",
    );
    assert_error(
        &format!("{SEED}fabric = 1\n"),
        "nic[0].fabric",
        "unknown key",
    );
    assert_error(
        &format!("fabric = 1\n{SEED}"),
        "fabric",
        "expected a table, found an integer 1",
    );
}

#[test]
fn single_table_where_array_of_tables_is_expected() {
    assert_error(
        "[load_balancer]\nname = \"x\"\n",
        "load_balancer",
        "expected an array of tables ([[load_balancer]]), found table",
    );
}

#[test]
fn missing_required_key() {
    assert_error(
        &seed_with("frontend = \"10.1.0.100\"\n", ""),
        "load_balancer[0]",
        "missing field `frontend`",
    );
}

// ---- prefixes and addresses ----

#[test]
fn prefix_with_host_bits_set() {
    assert_error(
        &seed_with("\"10.1.0.0/16\"", "\"10.1.0.1/16\""),
        "virtual_network[0].address_space[0]",
        "\"10.1.0.1/16\": host bits set, did you mean 10.1.0.0/16?",
    );
}

#[test]
fn malformed_prefix() {
    assert_error(
        &seed_with("\"10.1.0.0/16\"", "\"10.1.0.0\""),
        "virtual_network[0].address_space[0]",
        "expected ADDRESS/LENGTH",
    );
    assert_error(
        &seed_with("\"10.1.0.0/16\"", "\"10.1.0.0/40\""),
        "virtual_network[0].address_space[0]",
        "invalid prefix length",
    );
}

#[test]
fn bad_backend_address() {
    assert_error(
        &seed_with("{ address = \"10.1.2.11\"", "{ address = \"10.1.2.311\""),
        "load_balancer[0].backends[1].address",
        "\"10.1.2.311\": invalid IP address syntax",
    );
}

#[test]
fn bad_instance_address() {
    assert_error(
        &seed_with("\"10.1.1.5\"", "\"10.1.1\""),
        "route_server.instances[1]",
        "\"10.1.1\": invalid IPv4 address syntax",
    );
    assert_error(
        &seed_with("\"10.1.1.5\"", "\"0.0.0.0\""),
        "route_server.instances[1]",
        "0.0.0.0 is not a unicast host address",
    );
}

// ---- ASNs ----

#[test]
fn reserved_peer_asn() {
    let text = format!("{SEED}{PEER2}")
        .replace("asn = 65515\n", "asn = 64512\n")
        .replace("asn = 65002", "asn = 65515");
    let errors = errors(&text);
    assert_eq!(
        errors,
        ["config.toml: route_server.peer[1].asn: 65515 is reserved (SPEC §3: 8074, 8075, 12076, 65515, 65517–65520, \
          23456, 64496–64511, 65535–65551)"]
    );
    for asn in [
        8074, 8075, 12076, 65517, 65520, 23456, 64496, 64511, 65535, 65551,
    ] {
        assert_error(
            &seed_with("asn = 65001", &format!("asn = {asn}")),
            "route_server.peer[0].asn",
            &format!("{asn} is reserved (SPEC §3: "),
        );
    }
}

#[test]
fn peer_asn_equal_to_route_server_asn() {
    let text = seed_with("asn = 65515", "asn = 65001");
    assert_error(
        &text,
        "route_server.peer[0].asn",
        "65001 is the route server's own ASN",
    );
}

#[test]
fn asn_zero() {
    assert_error(
        &seed_with("asn = 65001", "asn = 0"),
        "route_server.peer[0].asn",
        "ASN 0 is reserved",
    );
    assert_error(
        &seed_with("asn = 65515", "asn = 0"),
        "route_server.asn",
        "ASN 0 is reserved",
    );
}

#[test]
fn asn_out_of_range() {
    assert_error(
        &seed_with("asn = 65001", "asn = 4294967296"),
        "route_server.peer[0].asn",
        "4294967296 is out of range (an ASN is 1 to 4294967295)",
    );
    assert_error(
        &seed_with("asn = 65515", "asn = -1"),
        "route_server.asn",
        "-1 is out of range",
    );
    // The largest ASN is fine.
    config::parse(&seed_with("asn = 65001", "asn = 4294967295"), "config.toml").unwrap();
}

#[test]
fn route_server_asn_as_trans() {
    assert_error(
        &seed_with("asn = 65515", "asn = 23456"),
        "route_server.asn",
        "AS_TRANS",
    );
}

// ---- peers and instances ----

#[test]
fn duplicate_peer_name() {
    let text = format!("{SEED}{}", PEER2.replace("nva2", "nva1"));
    assert_error(
        &text,
        "route_server.peer[1].name",
        "duplicate peer name \"nva1\" (first at route_server.peer[0].name)",
    );
}

#[test]
fn duplicate_peer_address() {
    let text = format!("{SEED}{}", PEER2.replace("10.1.2.11", "10.1.2.10"));
    assert_error(
        &text,
        "route_server.peer[1].address",
        "duplicate peer address 10.1.2.10 (first at route_server.peer[0].address)",
    );
}

#[test]
fn duplicate_instance_address() {
    assert_error(
        &seed_with("\"10.1.1.5\"", "\"10.1.1.4\""),
        "route_server.instances[1]",
        "duplicate instance address 10.1.1.4 (first at route_server.instances[0])",
    );
}

#[test]
fn instance_address_equal_to_peer_address() {
    assert_error(
        &seed_with(
            "address = \"10.1.2.10\"\nasn",
            "address = \"10.1.1.5\"\nasn",
        ),
        "route_server.peer[0].address",
        "10.1.1.5 is a route server instance address (route_server.instances[1])",
    );
}

#[test]
fn no_instances() {
    assert_error(
        &seed_with("instances = [\"10.1.1.4\", \"10.1.1.5\"]", "instances = []"),
        "route_server.instances",
        "at least one instance address is required",
    );
    assert_error(
        "[route_server]\n",
        "route_server.instances",
        "at least one instance address is required",
    );
}

#[test]
fn hold_time_one_or_two() {
    assert_error(
        &seed_with("asn = 65515", "asn = 65515\nhold_time = 2"),
        "route_server.hold_time",
        "2 is not allowed: the hold time is 0 or at least 3 seconds",
    );
    assert_error(
        &seed_with("asn = 65001", "asn = 65001\nhold_time = 1"),
        "route_server.peer[0].hold_time",
        "1 is not allowed",
    );
    for ok in [0, 3, 65535] {
        config::parse(
            &seed_with("asn = 65001", &format!("asn = 65001\nhold_time = {ok}")),
            "c",
        )
        .unwrap();
    }
}

#[test]
fn password_too_long() {
    let long = "x".repeat(81);
    assert_error(
        &seed_with(
            "asn = 65001",
            &format!("asn = 65001\npassword = \"{long}\""),
        ),
        "route_server.peer[0].password",
        "81 bytes is too long: a TCP-MD5 key is at most 80 bytes",
    );
    // 80 bytes is fine, counted in bytes not characters.
    config::parse(
        &seed_with(
            "asn = 65001",
            &format!("asn = 65001\npassword = \"{}\"", "x".repeat(80)),
        ),
        "c",
    )
    .unwrap();
    assert_error(
        &seed_with(
            "asn = 65001",
            &format!("asn = 65001\npassword = \"{}\"", "é".repeat(41)),
        ),
        "route_server.peer[0].password",
        "82 bytes is too long",
    );
}

#[test]
fn password_is_not_shown_by_debug() {
    let config = config::parse(
        &seed_with("asn = 65001", "asn = 65001\npassword = \"hunter2\""),
        "c",
    )
    .unwrap();
    let peer = &config.route_server.as_ref().unwrap().peers[0];
    assert_eq!(peer.password.as_ref().unwrap().expose(), "hunter2");
    assert!(!format!("{config:?}").contains("hunter2"));
}

// ---- references to virtual networks ----

#[test]
fn unknown_virtual_network_references() {
    assert_error(
        &seed_with(
            "virtual_network = \"hub\"\ninstances",
            "virtual_network = \"hbu\"\ninstances",
        ),
        "route_server.virtual_network",
        "unknown virtual network \"hbu\" (declared: hub)",
    );
    assert_error(
        &seed_with(
            "virtual_network = \"hub\"\nfrontend",
            "virtual_network = \"spoke\"\nfrontend",
        ),
        "load_balancer[0].virtual_network",
        "unknown virtual network \"spoke\"",
    );
    assert_error(
        &seed_with(
            "virtual_network = \"hub\"\naddress",
            "virtual_network = \"spoke\"\naddress",
        ),
        "nic[0].virtual_network",
        "unknown virtual network \"spoke\"",
    );
    assert_error(
        &seed_with(
            "region = \"westeurope\"",
            "region = \"westeurope\"\npeerings = [\"spoke\"]",
        ),
        "virtual_network[0].peerings[0]",
        "unknown virtual network \"spoke\" (declared: hub)",
    );
    assert_error(
        "[[nic]]\nname = \"n\"\nvirtual_network = \"hub\"\naddress = \"10.0.0.1\"\n",
        "nic[0].virtual_network",
        "unknown virtual network \"hub\" (no [[virtual_network]] is declared)",
    );
}

#[test]
fn peering_with_itself() {
    assert_error(
        &seed_with(
            "region = \"westeurope\"",
            "region = \"westeurope\"\npeerings = [\"hub\"]",
        ),
        "virtual_network[0].peerings[0]",
        "virtual network \"hub\" cannot peer with itself",
    );
}

#[test]
fn peered_networks_with_overlapping_address_spaces() {
    let text = format!(
        "{SEED}[[virtual_network]]\nname = \"spoke\"\nregion = \"westeurope\"\naddress_space = [\"10.1.128.0/17\"]\n\
         peerings = [\"hub\"]\n"
    );
    assert_error(
        &text,
        "virtual_network[1].peerings[0]",
        "10.1.128.0/17 of \"spoke\" overlaps 10.1.0.0/16 of \"hub\"",
    );
}

#[test]
fn subnet_outside_address_space() {
    let text =
        format!("{SEED}[[virtual_network.subnet]]\nname = \"s\"\nprefix = \"10.2.0.0/24\"\n");
    assert_error(
        &text,
        "virtual_network[0].subnet[0].prefix",
        "10.2.0.0/24 is outside the address space of virtual network \"hub\" (10.1.0.0/16)",
    );
}

// ---- duplicate names ----

#[test]
fn duplicate_virtual_network_name() {
    let text = format!("{SEED}[[virtual_network]]\nname = \"hub\"\nregion = \"northeurope\"\naddress_space = [\"10.9.0.0/16\"]\n");
    assert_error(
        &text,
        "virtual_network[1].name",
        "duplicate virtual network name \"hub\" (first at virtual_network[0].name)",
    );
}

#[test]
fn duplicate_load_balancer_name() {
    let text = format!(
        "{SEED}[[load_balancer]]\nname = \"nva-ilb\"\nfrontend = \"10.1.0.101\"\nbackends = [{{ address = \"10.1.2.10\" }}]\n\
         probe = {{ protocol = \"tcp\", port = 22 }}\n"
    );
    assert_error(
        &text,
        "load_balancer[1].name",
        "duplicate load balancer name \"nva-ilb\" (first at load_balancer[0].name)",
    );
}

#[test]
fn duplicate_nic_name() {
    let text = format!(
        "{SEED}[[nic]]\nname = \"vm1-nic\"\nvirtual_network = \"hub\"\naddress = \"10.1.3.11\"\n"
    );
    assert_error(
        &text,
        "nic[1].name",
        "duplicate NIC name \"vm1-nic\" (first at nic[0].name)",
    );
}

// ---- load balancers ----

#[test]
fn duplicate_backend_address() {
    assert_error(
        &seed_with("{ address = \"10.1.2.11\"", "{ address = \"10.1.2.10\""),
        "load_balancer[0].backends[1].address",
        "duplicate backend 10.1.2.10 (first at load_balancer[0].backends[0].address)",
    );
}

#[test]
fn duplicate_frontend() {
    let text = format!(
        "{SEED}[[load_balancer]]\nname = \"other\"\nfrontend = \"10.1.0.100\"\nbackends = [{{ address = \"10.1.2.10\" }}]\n\
         probe = {{ protocol = \"tcp\", port = 22 }}\n"
    );
    assert_error(
        &text,
        "load_balancer[1].frontend",
        "duplicate frontend 10.1.0.100 (first at load_balancer[0].frontend)",
    );
}

#[test]
fn no_backends() {
    let text = SEED
        .lines()
        .map(|l| {
            if l.starts_with("backends") {
                "backends = []"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_error(
        &text,
        "load_balancer[0].backends",
        "at least one backend is required",
    );
}

#[test]
fn probe_interval_below_minimum() {
    assert_error(
        &seed_with("interval_ms = 1000", "interval_ms = 50"),
        "load_balancer[0].probe.interval_ms",
        "50 ms is below the minimum of 100 ms",
    );
    config::parse(&seed_with("interval_ms = 1000", "interval_ms = 100"), "c").unwrap();
}

#[test]
fn probe_timeout_longer_than_interval() {
    assert_error(
        &seed_with(
            "interval_ms = 1000",
            "interval_ms = 1000, timeout_ms = 1500",
        ),
        "load_balancer[0].probe.timeout_ms",
        "1500 ms is longer than the interval (interval_ms = 1000)",
    );
}

#[test]
fn probe_rise_or_fall_zero() {
    assert_error(
        &seed_with("rise = 2", "rise = 0"),
        "load_balancer[0].probe.rise",
        "must be at least 1",
    );
    assert_error(
        &seed_with("fall = 2", "fall = 0"),
        "load_balancer[0].probe.fall",
        "must be at least 1",
    );
}

#[test]
fn maglev_table_size_not_prime() {
    assert_error(
        &seed_with(
            "mode = \"active-passive\"",
            "mode = \"active-passive\"\nmaglev_table_size = 65536",
        ),
        "load_balancer[0].maglev_table_size",
        "65536 is not prime; Maglev needs a prime table size (next prime: 65537)",
    );
    assert_error(
        &seed_with(
            "mode = \"active-passive\"",
            "mode = \"active-passive\"\nmaglev_table_size = 2",
        ),
        "load_balancer[0].maglev_table_size",
        "2 must be larger than the number of backends (2)",
    );
}

#[test]
fn frontend_outside_virtual_network() {
    assert_error(
        &seed_with("frontend = \"10.1.0.100\"", "frontend = \"10.2.0.100\""),
        "load_balancer[0].frontend",
        "frontend 10.2.0.100 is outside the address space of virtual network \"hub\" (10.1.0.0/16)",
    );
}

// ---- NICs ----

#[test]
fn nic_outside_virtual_network() {
    assert_error(
        &seed_with("address = \"10.1.3.10\"", "address = \"192.168.1.10\""),
        "nic[0].address",
        "address 192.168.1.10 is outside the address space of virtual network \"hub\" (10.1.0.0/16)",
    );
}

#[test]
fn nic_on_a_frontend_address() {
    assert_error(
        &seed_with("address = \"10.1.3.10\"", "address = \"10.1.0.100\""),
        "nic[0].address",
        "10.1.0.100 is the frontend of load balancer \"nva-ilb\"",
    );
}

// ---- many at once ----

#[test]
fn every_error_is_reported_at_once() {
    let text = format!(
        "{SEED}{PEER2}\n[[load_balancer]]\nname = \"bad\"\nfrontend = \"10.1.0.300\"\nbackends = []\n\
         probe = {{ protocol = \"tcp\", port = 22 }}\n\
         [[nic]]\nname = \"vm1-nic\"\nvirtual_network = \"nowhere\"\naddress = \"10.9.9.9\"\ncolour = \"red\"\n"
    )
    .replace("asn = 65002", "asn = 65515")
    .replace("interval_ms = 1000", "interval_ms = 10")
    .replace("\"10.1.1.5\"", "\"10.1.1.4\"");
    let errors = errors(&text);
    let expected = [
        "config.toml: load_balancer[1].frontend: \"10.1.0.300\": invalid IP address syntax",
        "config.toml: nic[1].colour: unknown key; valid keys: name, virtual_network, address",
        "config.toml: route_server.instances[1]: duplicate instance address 10.1.1.4",
        "config.toml: route_server.peer[1].asn: 65515 is reserved",
        "config.toml: load_balancer[0].probe.interval_ms: 10 ms is below the minimum of 100 ms",
        "config.toml: nic[1].name: duplicate NIC name \"vm1-nic\"",
        "config.toml: nic[1].virtual_network: unknown virtual network \"nowhere\" (declared: hub)",
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    for (got, want) in errors.iter().zip(expected) {
        assert!(got.starts_with(want), "expected `{want}…`, got `{got}`");
    }
    // The whole report is one line per error.
    let report = config::parse(&text, "config.toml").unwrap_err().to_string();
    assert_eq!(report.lines().count(), expected.len());
}

#[test]
fn a_network_that_did_not_parse_still_counts_as_declared() {
    let text = seed_with("\"10.1.0.0/16\"", "\"10.1.0.1/16\"").replace(
        "virtual_network = \"hub\"\naddress",
        "virtual_network = \"spoke\"\naddress",
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].starts_with("config.toml: virtual_network[0].address_space[0]: "));
    // References to "hub" are fine; "spoke" is still unknown.
    assert!(errors[1]
        .starts_with("config.toml: nic[0].virtual_network: unknown virtual network \"spoke\""));
}

// ---- [mrt] and graceful restart ----

#[test]
fn mrt_updates_dir_must_be_absolute_and_rotation_at_least_a_minute() {
    assert_error(
        &format!("{SEED}\n[mrt]\nupdates_dir = \"mrt\"\n"),
        "mrt.updates_dir",
        "not an absolute path",
    );
    assert_error(
        &format!("{SEED}\n[mrt]\nupdates_dir = \"/var/lib/nexthop/mrt\"\nrotate_s = 10\n"),
        "mrt.rotate_s",
        "at least 60 seconds",
    );
    assert_error(
        &format!("{SEED}\n[mrt]\nupdate_dir = \"/var/lib/nexthop/mrt\"\n"),
        "mrt.update_dir",
        "unknown key",
    );
    let ok = config::parse(
        &format!("{SEED}\n[mrt]\nupdates_dir = \"/var/lib/nexthop/mrt\"\n"),
        "config.toml",
    )
    .unwrap();
    assert_eq!(ok.mrt.rotate_s, 900);
}

#[test]
fn graceful_restart_time_fits_twelve_bits() {
    let rs = "[route_server]\n";
    assert!(SEED.contains(rs));
    assert_error(
        &SEED.replacen(
            rs,
            "[route_server]\ngraceful_restart = { enabled = true, restart_time_s = 5000 }\n",
            1,
        ),
        "route_server.graceful_restart.restart_time_s",
        "1 to 4095",
    );
    let ok = config::parse(
        &SEED.replacen(
            rs,
            "[route_server]\ngraceful_restart = { enabled = true }\n",
            1,
        ),
        "config.toml",
    )
    .unwrap();
    let gr = ok.route_server.unwrap().graceful_restart;
    assert!(gr.enabled && gr.restart_time_s == 120);
}

// ---- IPv6 (issue #16) ----

const INSTANCES: &str = r#"instances = ["10.1.1.4", "10.1.1.5"]"#;

#[test]
fn ipv6_keys_parse_into_both_families() {
    let text = seed_with(
        r#"address_space = ["10.1.0.0/16"]"#,
        r#"address_space = ["10.1.0.0/16", "fd00:1::/48"]"#,
    )
    .replacen(
        INSTANCES,
        &format!("{INSTANCES}\ninstances_ipv6 = [\"fd00:1:1::4\", \"fd00:1:1::5\"]"),
        1,
    )
    .replacen(r#"address = "10.1.2.10""#, r#"address = "fd00:1:2::10""#, 1);
    let cfg = config::parse(&text, "config.toml").unwrap_or_else(|e| panic!("{e:?}"));
    let v = &cfg.virtual_networks[0];
    assert_eq!(v.address_space.len(), 1);
    assert_eq!(v.address_space6[0].to_string(), "fd00:1::/48");
    let rs = cfg.route_server.as_ref().unwrap();
    assert_eq!(rs.instances_ipv6[1].to_string(), "fd00:1:1::5");
    assert!(rs.peers[0].address.is_ipv6());
}

#[test]
fn instances_ipv6_must_pair_with_instances() {
    let text = seed_with(
        INSTANCES,
        &format!("{INSTANCES}\ninstances_ipv6 = [\"fd00:1:1::4\"]"),
    );
    assert_error(
        &text,
        "route_server.instances_ipv6",
        "1 IPv6 addresses for 2 instances",
    );
}

#[test]
fn an_ipv6_peer_needs_instances_ipv6() {
    let text = seed_with(r#"address = "10.1.2.10""#, r#"address = "fd00:1:2::10""#);
    assert_error(
        &text,
        "route_server.peer[0].address",
        "give the instances IPv6 addresses (route_server.instances_ipv6)",
    );
}

#[test]
fn link_local_ipv6_addresses_are_refused() {
    let text = seed_with(
        INSTANCES,
        &format!("{INSTANCES}\ninstances_ipv6 = [\"fd00:1:1::4\", \"fe80::5\"]"),
    );
    assert_error(&text, "route_server.instances_ipv6[1]", "is link-local");
}

#[test]
fn overlapping_ipv6_address_spaces_are_refused() {
    let text = seed_with(
        r#"address_space = ["10.1.0.0/16"]"#,
        r#"address_space = ["10.1.0.0/16", "fd00:1::/48", "fd00:1:0:5::/64"]"#,
    );
    assert_error(
        &text,
        "virtual_network[0].address_space",
        "fd00:1:0:5::/64 overlaps fd00:1::/48",
    );
}

/// The seed's hub with its IPv6 space and an IPv6 load balancer beside the IPv4 one.
fn dual_stack_lb(frontend: &str, backends: &str) -> String {
    format!(
        "{}\n[[load_balancer]]\nname = \"nva-ilb6\"\nvirtual_network = \"hub\"\nfrontend = \"{frontend}\"\nbackends = {backends}\nprobe = {{ protocol = \"tcp\", port = 22 }}\n",
        seed_with(
            r#"address_space = ["10.1.0.0/16"]"#,
            r#"address_space = ["10.1.0.0/16", "fd00:1::/48"]"#,
        )
    )
}

#[test]
fn an_ipv6_load_balancer_parses() {
    let text = dual_stack_lb(
        "fd00:1::100",
        r#"[{ address = "fd00:1:2::10" }, { address = "fd00:1:2::11" }]"#,
    );
    let cfg = config::parse(&text, "config.toml").unwrap_or_else(|e| panic!("{e:?}"));
    let lb = &cfg.load_balancers[1];
    assert_eq!(lb.frontend.to_string(), "fd00:1::100");
    assert_eq!(lb.backends[1].address.to_string(), "fd00:1:2::11");
    assert_eq!(lb.backends[1].priority, 2);
    assert_eq!(
        cfg.load_balancer_by_frontend("fd00:1::100".parse().unwrap())
            .map(|l| l.name.as_str()),
        Some("nva-ilb6")
    );
}

#[test]
fn a_load_balancer_serves_one_family() {
    let text = dual_stack_lb(
        "fd00:1::100",
        r#"[{ address = "fd00:1:2::10" }, { address = "10.1.2.11" }]"#,
    );
    assert_error(
        &text,
        "load_balancer[1].backends[1].address",
        "10.1.2.11 is IPv4 and the frontend fd00:1::100 is IPv6: a load balancer serves one address family",
    );
}

#[test]
fn an_ipv6_frontend_must_be_inside_the_ipv6_space() {
    let text = dual_stack_lb("fd00:2::100", r#"[{ address = "fd00:1:2::10" }]"#);
    assert_error(
        &text,
        "load_balancer[1].frontend",
        "frontend fd00:2::100 is outside the address space of virtual network \"hub\"",
    );
    let text = dual_stack_lb("fe80::100", r#"[{ address = "fd00:1:2::10" }]"#);
    let errors = errors(&text);
    assert!(
        errors.iter().any(
            |e| e.starts_with("config.toml: load_balancer[1].frontend: ")
                && e.contains("is link-local")
        ),
        "{errors:#?}"
    );
}

#[test]
fn a_nic_may_have_an_ipv6_address_inside_the_space() {
    let good = dual_stack_lb("fd00:1::100", r#"[{ address = "fd00:1:2::10" }]"#).replacen(
        r#"address = "10.1.3.10""#,
        "address = \"10.1.3.10\"\naddress6 = \"fd00:1::3:10\"",
        1,
    );
    let cfg = config::parse(&good, "config.toml").unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        cfg.nics[0].address6.map(|a| a.to_string()).as_deref(),
        Some("fd00:1::3:10")
    );
    let outside = good.replacen("fd00:1::3:10", "fd00:9::10", 1);
    assert_error(
        &outside,
        "nic[0].address6",
        "address6 fd00:9::10 is outside the address space",
    );
    let frontend = good.replacen("fd00:1::3:10", "fd00:1::100", 1);
    assert_error(
        &frontend,
        "nic[0].address6",
        "fd00:1::100 is the frontend of load balancer \"nva-ilb6\"",
    );
}

// ---- BFD (issue #15) ----

#[test]
fn bfd_on_a_peer_parses_with_defaults_and_bad_values_are_refused() {
    let text = seed_with("asn = 65001", "asn = 65001\nbfd = { interval_ms = 100 }");
    let cfg = config::parse(&text, "config.toml").unwrap_or_else(|e| panic!("{e:?}"));
    let b = cfg.route_server.as_ref().unwrap().peers[0].bfd.unwrap();
    assert_eq!((b.enabled, b.interval_ms, b.multiplier), (true, 100, 3));
    let off = seed_with("asn = 65001", "asn = 65001\nbfd = { enabled = false }");
    let cfg = config::parse(&off, "config.toml").unwrap();
    assert_eq!(cfg.route_server.as_ref().unwrap().peers[0].bfd, None);
    assert_error(
        &seed_with("asn = 65001", "asn = 65001\nbfd = { interval_ms = 5 }"),
        "route_server.peer[0].bfd.interval_ms",
        "5 ms: BFD intervals are 10 to 60000 ms",
    );
    assert_error(
        &seed_with("asn = 65001", "asn = 65001\nbfd = { multiplier = 0 }"),
        "route_server.peer[0].bfd.multiplier",
        "must be at least 1",
    );
}
