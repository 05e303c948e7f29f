//! The wire format, byte for byte.
//!
//! `fixtures/` holds answers of the API as it was before this crate existed (`nexthop demo` of
//! the main branch, taken with curl): each must deserialise into its type and serialise back
//! to the same bytes. The SPEC §6 literals below must hold in what the types send (every key
//! and value of the literal present; the API may add keys). Strictness: an unknown key, a
//! renamed key, a missing key and an unknown enum value are errors.

use api_types::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Deserialises `json` as `T` and checks that it serialises back to the same bytes.
fn round_trip<T: Serialize + DeserializeOwned>(json: &str) -> T {
    let json = json.trim_end();
    let v: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(serde_json::to_string(&v).unwrap(), json);
    v
}

/// Every key and value of `spec` is in `ours` (arrays element by element).
fn assert_holds(spec: &Value, ours: &Value, at: &str) {
    match (spec, ours) {
        (Value::Object(s), Value::Object(o)) => {
            for (k, sv) in s {
                let ov = o
                    .get(k)
                    .unwrap_or_else(|| panic!("{at}.{k}: missing from {ours}"));
                assert_holds(sv, ov, &format!("{at}.{k}"));
            }
        }
        (Value::Array(s), Value::Array(o)) => {
            assert_eq!(s.len(), o.len(), "{at}: length");
            for (i, (sv, ov)) in s.iter().zip(o).enumerate() {
                assert_holds(sv, ov, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(spec, ours, "{at}"),
    }
}

/// Checks a SPEC §6 literal against `full`, the same answer with every field the API sends.
fn spec_holds<T: Serialize + DeserializeOwned>(spec: &str, full: &str) {
    let typed: T = round_trip(full);
    let ours = serde_json::to_value(&typed).unwrap();
    let spec: Value = serde_json::from_str(spec).unwrap();
    assert_holds(&spec, &ours, "$");
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("fixtures/", $name, ".json"))
    };
}

#[test]
fn answers_of_the_api_round_trip_byte_for_byte() {
    let peers: PerInstance<Vec<PeerView>> = round_trip(fixture!("peers"));
    assert_eq!(peers.len(), 2);
    assert_eq!(
        peers.get("RouteServiceRole_IN_0").unwrap()[0].state,
        SessionState::Established
    );
    let learned: PerInstance<Vec<RouteView>> = round_trip(fixture!("learned"));
    assert_eq!(
        learned.get("RouteServiceRole_IN_1").unwrap()[0].origin,
        Origin::EBgp
    );
    let adv: PerInstance<Vec<RouteView>> = round_trip(fixture!("advertised"));
    assert_eq!(
        adv.get("RouteServiceRole_IN_0").unwrap()[0].origin,
        Origin::Igp
    );
    round_trip::<PerInstance<Vec<RibEntryView>>>(fixture!("rib"));
    let full: EffectiveRoutes = round_trip(fixture!("effective_routes"));
    assert!(full.is_full() && full.since.is_none());
    let inc: EffectiveRoutes = round_trip(fixture!("effective_routes_since"));
    assert_eq!(inc.since, Some(1));
    assert_eq!(inc.changed.as_deref().map(<[String]>::len), Some(2));
    let lb: LbView = round_trip(fixture!("lb_show"));
    assert_eq!(lb.validate(), Ok(()));
    assert!(lb.backends[0].last_probe.is_some());
    round_trip::<Vec<LbListEntry>>(fixture!("lb_list"));
    let t: TraceAnswer = round_trip(fixture!("trace_lb"));
    assert_eq!(t.backend, Some("127.0.2.10".parse().unwrap()));
    let t: TraceAnswer = round_trip(fixture!("trace_icmp"));
    assert_eq!((t.flow.proto, t.flow.sport), (TraceProto::Icmp, 0));
    round_trip::<TraceAnswer>(fixture!("trace_udp"));
    round_trip::<AdminAnswer>(fixture!("admin"));
    round_trip::<ErrorBody>(fixture!("error"));
}

/// Answers the demo does not give: written in the order the API sends them.
#[test]
fn other_shapes_round_trip() {
    // No route: `route` null, `dropped` set, no `why`.
    let t: TraceAnswer = round_trip(
        r#"{"dropped":"no route matches (no active route covers the destination)","flow":{"dport":443,"dst":"192.0.2.1","proto":"tcp","sport":49152,"src":"10.1.3.10"},"nic":"vm1-nic","route":null}"#,
    );
    assert!(t.route.is_none() && t.why.is_none());
    // A load balancer with no usable backend.
    round_trip::<TraceAnswer>(
        r#"{"dropped":"load balancer nva-ilb has no healthy backend (no_healthy_backends = drop)","flow":{"dport":443,"dst":"192.168.10.7","proto":"tcp","sport":49152,"src":"10.1.3.10"},"loadBalancer":"nva-ilb","nic":"vm1-nic","route":{"addressPrefix":["192.168.10.0/24"],"loadBalancer":"nva-ilb","nextHopIpAddress":["10.1.0.100"],"nextHopType":"VirtualNetworkGateway","reason":null,"source":"VirtualNetworkGateway","state":"Active"},"why":"longest prefix match: 192.168.10.0/24 (VirtualNetworkGateway) is the most specific active route covering 192.168.10.7"}"#,
    );
    // Before the first probe; active-passive.
    let lb: LbView = round_trip(
        r#"{"name":"nva-ilb","frontend":"10.1.0.100","mode":"active-passive","backends":[{"address":"10.1.2.10","health":"unknown","adminState":"drain","role":"standby","priority":1,"flows":0,"lastProbe":null,"probesSent":0,"probesFailed":0}],"newFlows":0,"movedFlows":0,"droppedFlows":0,"flowEvictions":0,"flowTableCapacity":1048576,"settings":{"distribution":"two-tuple","symmetric":true,"preempt":true,"noHealthyBackends":"all","maglevTableSize":251,"maxFlows":5000,"idleTcpS":600,"idleUdpS":10}}"#,
    );
    assert_eq!(lb.backends[0].role, Role::Standby);
    round_trip::<ReloadAnswer>(r#"{"message":"reloaded: 1 peer added","reloaded":true}"#);
    // A session that is down, and a learned route the fabric cannot program.
    round_trip::<PerInstance<Vec<PeerView>>>(
        r#"{"RouteServiceRole_IN_0":[{"lastError":"hold timer expired","messagesReceived":9,"messagesSent":9,"name":"nva2","peerAsn":65001,"peerIp":"10.1.2.11","routesAccepted":0,"routesAdvertised":0,"routesReceived":0,"state":"Active","updatesReceived":1,"updatesSent":1,"uptime":null}]}"#,
    );
    round_trip::<PerInstance<Vec<RouteView>>>(
        r#"{"RouteServiceRole_IN_0":[{"asPath":"65001","localAddress":"10.1.1.4","network":"192.168.30.0/24","nextHop":"10.9.0.1","origin":"EBgp","reason":"next hop 10.9.0.1 is in no connected network","sourcePeer":"10.1.2.10","state":"Invalid","weight":32768}]}"#,
    );
}

#[test]
fn spec_literals_hold() {
    spec_holds::<PerInstance<Vec<RouteView>>>(
        r#"{"RouteServiceRole_IN_0": [{"localAddress": "10.1.1.4", "network": "192.168.10.0/24",
          "nextHop": "10.1.0.100", "sourcePeer": "10.1.2.10", "origin": "EBgp", "asPath": "65001",
          "weight": 32768}]}"#,
        r#"{"RouteServiceRole_IN_0":[{"asPath":"65001","localAddress":"10.1.1.4","network":"192.168.10.0/24","nextHop":"10.1.0.100","origin":"EBgp","sourcePeer":"10.1.2.10","weight":32768}]}"#,
    );
    spec_holds::<PerInstance<Vec<PeerView>>>(
        r#"{"RouteServiceRole_IN_0": [{"name": "nva1", "peerIp": "10.1.2.10", "peerAsn": 65001,
          "state": "Established", "routesReceived": 1, "routesAccepted": 1, "routesAdvertised": 1,
          "lastError": null}]}"#,
        r#"{"RouteServiceRole_IN_0":[{"lastError":null,"messagesReceived":3,"messagesSent":3,"name":"nva1","peerAsn":65001,"peerIp":"10.1.2.10","routesAccepted":1,"routesAdvertised":1,"routesReceived":1,"state":"Established","updatesReceived":1,"updatesSent":1,"uptime":12}]}"#,
    );
    spec_holds::<EffectiveRoutes>(
        r#"{"value": [{"source": "VirtualNetworkGateway", "state": "Active", "addressPrefix": ["192.168.10.0/24"],
          "nextHopType": "VirtualNetworkGateway", "nextHopIpAddress": ["10.1.0.100"],
          "loadBalancer": "nva-ilb", "reason": null}]}"#,
        r#"{"value":[{"addressPrefix":["192.168.10.0/24"],"loadBalancer":"nva-ilb","nextHopIpAddress":["10.1.0.100"],"nextHopType":"VirtualNetworkGateway","reason":null,"source":"VirtualNetworkGateway","state":"Active"}],"version":3}"#,
    );
    spec_holds::<LbView>(
        r#"{"name": "nva-ilb", "frontend": "10.1.0.100", "mode": "active-passive",
          "backends": [{"address": "10.1.2.10", "health": "up", "adminState": "none", "role": "active",
          "priority": 1, "flows": 0}]}"#,
        r#"{"name":"nva-ilb","frontend":"10.1.0.100","mode":"active-passive","backends":[{"address":"10.1.2.10","health":"up","adminState":"none","role":"active","priority":1,"flows":0,"lastProbe":{"ok":true,"detail":"HTTP 200 in 0.261 ms","latencyMs":0.260737,"ageS":0.020527724},"probesSent":11,"probesFailed":0}],"newFlows":0,"movedFlows":0,"droppedFlows":0,"flowEvictions":0,"flowTableCapacity":1048576,"settings":{"distribution":"five-tuple","symmetric":false,"preempt":false,"noHealthyBackends":"drop","maglevTableSize":65537,"maxFlows":1000000,"idleTcpS":240,"idleUdpS":30}}"#,
    );
}

/// `fixture` with its first `from` replaced by `to` (which must change it).
fn edit(fixture: &str, from: &str, to: &str) -> String {
    assert!(fixture.contains(from), "{from} not in the fixture");
    fixture.replacen(from, to, 1)
}

#[test]
fn unknown_renamed_and_missing_keys_are_errors() {
    let eff = fixture!("effective_routes");
    let unknown = edit(eff, r#""version":3"#, r#""version":3,"muxes":[]"#);
    let renamed = edit(eff, "nextHopIpAddress", "nextHopIp");
    let nested_unknown = edit(eff, r#""state":"Active""#, r#""state":"Active","metric":1"#);
    let missing_nullable = edit(eff, r#""reason":null,"#, "");
    let missing = edit(eff, r#","version":3"#, "");
    for bad in [
        &unknown,
        &renamed,
        &nested_unknown,
        &missing_nullable,
        &missing,
    ] {
        let e = serde_json::from_str::<EffectiveRoutes>(bad);
        assert!(e.is_err(), "accepted: {bad}");
    }
    let peers = fixture!("peers");
    assert!(serde_json::from_str::<PerInstance<Vec<PeerView>>>(&edit(
        peers,
        r#""lastError":null,"#,
        ""
    ))
    .is_err());
    let lb = fixture!("lb_show");
    for bad in [
        edit(lb, r#""idleUdpS":30"#, r#""idleUdpS":30,"burst":1"#),
        edit(lb, r#""lastProbe":{"#, r#""probe":{"#),
        edit(lb, r#","settings":{"#, r#","setting":{"#),
    ] {
        assert!(
            serde_json::from_str::<LbView>(&bad).is_err(),
            "accepted: {bad}"
        );
    }
}

#[test]
fn unknown_enum_values_are_errors() {
    let eff = fixture!("effective_routes");
    for bad in [
        edit(eff, r#""state":"Active""#, r#""state":"Pending""#),
        edit(
            eff,
            r#""nextHopType":"Internet""#,
            r#""nextHopType":"Blackhole""#,
        ),
        edit(eff, r#""source":"Default""#, r#""source":"User""#),
        edit(eff, r#""state":"Active""#, r#""state":"active""#),
    ] {
        let e = serde_json::from_str::<EffectiveRoutes>(&bad).unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
    }
    let lb = fixture!("lb_show");
    for bad in [
        edit(lb, r#""health":"up""#, r#""health":"degraded""#),
        edit(lb, r#""role":"serving""#, r#""role":"primary""#),
        edit(lb, r#""adminState":"none""#, r#""adminState":"off""#),
        edit(lb, r#""mode":"active-active""#, r#""mode":"round-robin""#),
        edit(
            lb,
            r#""distribution":"five-tuple""#,
            r#""distribution":"four-tuple""#,
        ),
    ] {
        assert!(
            serde_json::from_str::<LbView>(&bad).is_err(),
            "accepted: {bad}"
        );
    }
    let peers = fixture!("peers");
    let bad = edit(peers, r#""state":"Established""#, r#""state":"Up""#);
    assert!(serde_json::from_str::<PerInstance<Vec<PeerView>>>(&bad).is_err());
}

/// `-o json` writes again what it read: floats too (the workspace enables serde_json's
/// `float_roundtrip`; without it the parser may be one ulp off).
#[test]
fn probe_floats_round_trip_exactly() {
    let lb = fixture!("lb_show");
    for n in (1..200_000u64).step_by(7) {
        // Latencies as the controller computes them: a Duration in ms, as f64.
        let ms = std::time::Duration::from_nanos(n * 1_013).as_secs_f64() * 1000.0;
        let age = n as f64 * 0.1 / 3.0;
        let json = edit(
            lb,
            r#""latencyMs":0.260737"#,
            &format!(r#""latencyMs":{ms:?}"#),
        );
        let json = edit(
            &json,
            r#""ageS":0.020527724"#,
            &format!(r#""ageS":{age:?}"#),
        );
        let v: LbView = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), json);
    }
}
