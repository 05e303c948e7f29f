#!/usr/bin/env bash
# Captures the OPEN and UPDATE messages that real FRR, BIRD and GoBGP send, into
# crates/bgp/tests/fixtures/{frr,bird,gobgp}_*.bin (plus a pcap of each session in
# fixtures/pcap/ for tshark), using the configs in fixtures/configs/.
#
# For each daemon: two fresh network namespaces joined by a veth pair — the NVA side
# (10.1.2.1x/16, 2001:db8:1::1x/64) runs the daemon, the route-server side (10.1.1.4/16,
# 2001:db8:1::4/64) runs scripts/capture_peer.py and tcpdump. Each side gets its own UTS
# namespace with a fixed host name, because GoBGP puts the OS host name into its OPEN.
# Nothing leaves the namespaces; everything started here is stopped by pid, and the
# namespaces are deleted, on exit.
#
# Usage (root): scripts/capture_fixtures.sh [frr|bird|gobgp|bird6|gobgp6]...   (default: all)
# bird6 and gobgp6: IPv6 unicast over an IPv6 session to 2001:db8:1::4.
# FIXTURES_OUT=DIR writes the .bin files and pcaps to DIR instead (to compare a re-capture
# with the committed files: cmp DIR/frr_open.bin crates/bgp/tests/fixtures/frr_open.bin).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FIX=$ROOT/crates/bgp/tests/fixtures
CONF=$FIX/configs
OUT=${FIXTURES_OUT:-$FIX}
PEER=$ROOT/scripts/capture_peer.py
WORK=$(mktemp -d /tmp/capture-fixtures.XXXXXX)
NVA=capnva-$$
RS=caprs-$$
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$NVA" 2>/dev/null || true
  ip netns del "$RS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# $1 = NVA IPv4 address, $2 = NVA IPv6 address.
make_link() {
  ip netns del "$NVA" 2>/dev/null || true
  ip netns del "$RS" 2>/dev/null || true
  ip netns add "$NVA"
  ip netns add "$RS"
  ip -n "$NVA" link set lo up
  ip -n "$RS" link set lo up
  ip -n "$NVA" link add eth0 type veth peer name eth0 netns "$RS"
  ip -n "$NVA" addr add "$1/16" dev eth0
  ip -n "$NVA" addr add "$2/64" dev eth0 nodad
  ip -n "$RS" addr add 10.1.1.4/16 dev eth0
  ip -n "$RS" addr add 2001:db8:1::4/64 dev eth0 nodad
  ip -n "$NVA" link set eth0 up
  ip -n "$RS" link set eth0 up
}

# run_in NS HOSTNAME LOGFILE CMD... : starts CMD in the background inside NS with its own
# UTS namespace and host name; its pid is appended to PIDS (it execs, so the pid is CMD's).
run_in() {
  local ns=$1 host=$2 log=$3
  shift 3
  ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$host" "$@" >"$log" 2>&1 &
  PIDS+=($!)
}

# capture NAME NVA4 NVA6 HOST [--ipv6] -- DAEMON CMD...
capture() {
  local name=$1 v4=$2 v6=$3 host=$4
  shift 4
  local peer_args=()
  while [ "$1" != "--" ]; do peer_args+=("$1"); shift; done
  shift
  echo "== $name"
  rm -f "$OUT/${name}"_*.bin
  make_link "$v4" "$v6"
  mkdir -p "$OUT/pcap"
  run_in "$RS" rs "$WORK/$name.tcpdump.log" tcpdump -i eth0 -U -w "$OUT/pcap/$name.pcap" 'tcp port 179'
  local tcpdump_pid=${PIDS[-1]}
  sleep 1
  run_in "$RS" rs "$WORK/$name.peer.log" python3 "$PEER" --listen 10.1.1.4 --out "$OUT" \
    --name "$name" --ready-file "$WORK/$name.ready" "${peer_args[@]}"
  local peer_pid=${PIDS[-1]}
  run_in "$NVA" "$host" "$WORK/$name.daemon.log" "$@"
  local daemon_pid=${PIDS[-1]}
  if [ "$name" = gobgp ]; then inject_gobgp_routes; fi
  if [ "$name" = gobgp6 ]; then inject_gobgp6_routes; fi
  local rc=0
  wait "$peer_pid" || rc=$?
  cat "$WORK/$name.peer.log"
  kill "$daemon_pid" 2>/dev/null || true
  sleep 1
  kill "$tcpdump_pid" 2>/dev/null || true
  wait "$daemon_pid" "$tcpdump_pid" 2>/dev/null || true
  if [ "$rc" != 0 ]; then
    echo "capture of $name failed; daemon log:" >&2
    cat "$WORK/$name.daemon.log" >&2
    exit 1
  fi
}

# One route at a time after the session is up: GoBGP sends one UPDATE per prefix, and adding
# them one by one keeps their order (and so the file numbering) fixed.
inject_gobgp_routes() {
  for _ in $(seq 1 300); do [ -e "$WORK/gobgp.ready" ] && break; sleep 0.1; done
  [ -e "$WORK/gobgp.ready" ] || { echo "gobgp session did not come up" >&2; return 1; }
  local g=(ip netns exec "$NVA" gobgp -u 127.0.0.1 -p 50051)
  sleep 1
  "${g[@]}" global rib add -a ipv4 192.168.70.0/24 origin igp nexthop 10.1.0.100
  sleep 0.5
  "${g[@]}" global rib add -a ipv4 192.168.71.0/24 origin igp nexthop 10.1.0.100 community 65003:100,65003:200,no-export
  sleep 0.5
  "${g[@]}" global rib add -a ipv4 192.168.72.0/24 origin igp nexthop 10.1.0.100 large-community 65003:1:2
  sleep 0.5
  "${g[@]}" global rib add -a ipv4 192.168.73.0/24 origin igp nexthop 10.1.0.100 med 30
  sleep 0.5
  # No origin: GoBGP then sends ORIGIN incomplete (SPEC §7).
  "${g[@]}" global rib add -a ipv4 192.168.74.0/24 nexthop 10.1.0.100
}

# The same for IPv6 unicast over the IPv6 session (gobgp6).
inject_gobgp6_routes() {
  for _ in $(seq 1 300); do [ -e "$WORK/gobgp6.ready" ] && break; sleep 0.1; done
  [ -e "$WORK/gobgp6.ready" ] || { echo "gobgp6 session did not come up" >&2; return 1; }
  local g=(ip netns exec "$NVA" gobgp -u 127.0.0.1 -p 50051)
  sleep 1
  "${g[@]}" global rib add -a ipv6 2001:db8:70::/48 origin igp nexthop 2001:db8:1::100
  sleep 0.5
  "${g[@]}" global rib add -a ipv6 2001:db8:71::/48 origin igp nexthop 2001:db8:1::100 community 65003:100,no-export
  sleep 0.5
  "${g[@]}" global rib add -a ipv6 2001:db8:72::/48 origin igp nexthop 2001:db8:1::100 med 30
  sleep 0.5
  "${g[@]}" global rib del -a ipv6 2001:db8:70::/48
}

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(frr bird gobgp bird6 gobgp6)
for d in "${want[@]}"; do
  case $d in
    frr)
      capture frr 10.1.2.10 2001:db8:1::10 nva1 --ipv6 --min-updates 5 -- \
        /usr/lib/frr/bgpd -Z -S -n -P 0 -f "$CONF/frr_bgpd.conf" -i "$WORK/bgpd.pid" \
        --vty_socket "$WORK" --log stdout
      ;;
    bird)
      capture bird 10.1.2.11 2001:db8:1::11 nva2 --min-updates 4 -- \
        bird -f -c "$CONF/bird.conf" -s "$WORK/bird.ctl" -P "$WORK/bird.pid"
      ;;
    gobgp)
      capture gobgp 10.1.2.12 2001:db8:1::12 nva3 --min-updates 5 --quiet 3 -- \
        gobgpd -f "$CONF/gobgpd.toml" -p --pprof-disable --api-hosts 127.0.0.1:50051
      ;;
    bird6)
      capture bird6 10.1.2.11 2001:db8:1::11 nva2 --listen 2001:db8:1::4 --ipv6 --min-updates 4 -- \
        bird -f -c "$CONF/bird6.conf" -s "$WORK/bird.ctl" -P "$WORK/bird.pid"
      ;;
    gobgp6)
      capture gobgp6 10.1.2.12 2001:db8:1::12 nva3 --listen 2001:db8:1::4 --ipv6 --min-updates 4 --quiet 3 -- \
        gobgpd -f "$CONF/gobgpd6.toml" -p --pprof-disable --api-hosts 127.0.0.1:50051
      ;;
    *) echo "unknown daemon $d (frr, bird, gobgp, bird6, gobgp6)" >&2; exit 2 ;;
  esac
done
ls -l "$OUT"/*.bin
