#!/usr/bin/env bash
# The seed topology (SPEC §6) with real packets, in network namespaces on this machine (root):
#
#              branch 192.168.10.1 (TCP echo :7, HTTP :80)
#                 |  192.168.10.0/24 (bridge "branch" in NAME-sw)  |
#        192.168.10.2                                      192.168.10.3
#          nva1 (FRR, AS 65001)                              nva2 (FRR, AS 65001)
#          10.1.2.10, health :8080/health                   10.1.2.11, health :8080/health
#                 |  10.1.0.0/16: virtual network "hub" (bridge "hub" in NAME-sw)  |
#   vm1 10.1.3.10          lb 10.1.0.100                     rs 10.1.1.4 + 10.1.1.5
#   nexthop agent          nexthop lb-mux on eth0            nexthop run (route server,
#   (vm1-nic's routes      (ip_forward=0: only the mux      LB probes, fabric, API :8179)
#    into the kernel)       forwards)
#
# With --ipv6 the lab is dual-stack: every host also gets an IPv6 address (hub fd00:1::/64 in the
# network's fd00:1::/48, branch fd00:10::/64), the instances listen on fd00:1::1:4 and ::1:5
# (instances_ipv6), the NVAs peer over IPv6 too and advertise fd00:10::/48 there with next hop
# fd00:1::100 (route-map `set ipv6 next-hop global`), the IPv4 prefix over the IPv4 sessions
# only; a second load balancer, nva-ilb6 (frontend fd00:1::100, backends the NVAs' IPv6
# addresses, probed over IPv6), gets its own mux on the LB host (`lb-mux --lb nva-ilb6`), and
# the agent installs vm1's IPv6 route.
#
# With --no-lb there is no load balancer: the NVAs advertise the branch with their own
# addresses as next hops (classic route server use), the effective route holds both, and the
# agent programs it on vm1 as one multipath route (the L4 hash policy set on vm1).
#
# With --controllers 2 the two route server instances run as the reference runs them: one
# `nexthop run --instance ADDR` per host, rs (10.1.1.4) and rs2 (10.1.1.5), from the same config
# file; the agent and the mux follow both (`--controller` twice).
#
# vm1's route to the branch is not configured anywhere: the NVAs advertise 192.168.10.0/24 with
# next hop 10.1.0.100 (the seed's route-map), the route server programs it into the hub, the
# agent on vm1 installs it (`proto 200`), and the mux sends each flow to the NVA the load
# balancer picks. The branch returns traffic through either NVA (ECMP), as a branch router that
# knows nothing of the load balancer would.
#
# Usage: lab/up.sh [--name NAME] [--mode active-passive|active-active] [--interval-ms N]
#                  [--rise N] [--fall N] [--controllers 1|2] [--graceful-restart] [--ipv6]
#                  [--no-lb] [--nexthop PATH]
# Environment (same meaning): LAB_NAME (nh), LAB_MODE, LAB_INTERVAL_MS (100), LAB_RISE (2), LAB_CONTROLLERS (1), LAB_GR (0; 1: graceful restart on the route server and the NVAs), LAB_IPV6 (0),
# LAB_FALL (3), LAB_MUX_THREADS (0: one per CPU), NEXTHOP (target/release/nexthop, else `nexthop` on PATH), LAB_DIR
# (/tmp/nexthop-lab-NAME: configs, logs, pid files). Stop it with lab/down.sh [--name NAME].
set -euo pipefail

LAB_NAME=${LAB_NAME:-nh}
LAB_MODE=${LAB_MODE:-active-passive}
LAB_INTERVAL_MS=${LAB_INTERVAL_MS:-100}
LAB_RISE=${LAB_RISE:-2}
LAB_FALL=${LAB_FALL:-3}
LAB_CONTROLLERS=${LAB_CONTROLLERS:-1}
LAB_GR=${LAB_GR:-0}
LAB_IPV6=${LAB_IPV6:-0}
LAB_NO_LB=${LAB_NO_LB:-0}
here=$(cd "$(dirname "$0")" && pwd)
while [ $# -gt 0 ]; do
  case $1 in
    --name) LAB_NAME=$2; shift 2 ;;
    --mode) LAB_MODE=$2; shift 2 ;;
    --interval-ms) LAB_INTERVAL_MS=$2; shift 2 ;;
    --rise) LAB_RISE=$2; shift 2 ;;
    --fall) LAB_FALL=$2; shift 2 ;;
    --controllers) LAB_CONTROLLERS=$2; shift 2 ;;
    --graceful-restart) LAB_GR=1; shift ;;
    --ipv6) LAB_IPV6=1; shift ;;
    --no-lb) LAB_NO_LB=1; shift ;;
    --nexthop) NEXTHOP=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "lab/up.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
LAB_DIR=${LAB_DIR:-/tmp/nexthop-lab-$LAB_NAME}
export PATH="$PATH:/usr/lib/frr:/usr/sbin:/sbin"

die() { echo "lab/up.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
case $LAB_MODE in active-passive | active-active) ;; *) die "--mode must be active-passive or active-active, not '$LAB_MODE'" ;; esac
case $LAB_CONTROLLERS in 1 | 2) ;; *) die "--controllers must be 1 or 2, not '$LAB_CONTROLLERS'" ;; esac
[ "$LAB_NO_LB" = 1 ] && [ "$LAB_IPV6" = 1 ] && die "--no-lb is IPv4 only: not with --ipv6"
if [ -z "${NEXTHOP:-}" ]; then
  if [ -x "$here/../target/release/nexthop" ]; then
    NEXTHOP=$(cd "$here/.." && pwd)/target/release/nexthop
  elif command -v nexthop >/dev/null; then
    NEXTHOP=$(command -v nexthop)
  else
    die "no nexthop binary: run 'cargo build --release' first (or set NEXTHOP=PATH)"
  fi
fi
for b in ip bgpd vtysh python3; do
  command -v $b >/dev/null || die "'$b' not found (apt-get install -y frr iproute2 python3)"
done
PY=/usr/bin/python3
[ -x $PY ] || PY=$(command -v python3)

ns() { echo "$LAB_NAME-$1"; }
HOSTS="vm1 lb rs nva1 nva2 branch"
[ "$LAB_CONTROLLERS" = 2 ] && HOSTS="$HOSTS rs2"
for h in sw $HOSTS; do
  if ip netns list | grep -qx "$(ns $h)\( (id: [0-9]*)\)\?"; then
    die "namespace $(ns $h) exists: lab '$LAB_NAME' is up already (lab/down.sh --name $LAB_NAME)"
  fi
done

rm -rf "$LAB_DIR"
mkdir -p "$LAB_DIR"
echo "$LAB_NAME" >"$LAB_DIR/name"
echo "$NEXTHOP" >"$LAB_DIR/nexthop.bin"
echo "$LAB_CONTROLLERS" >"$LAB_DIR/controllers"
echo "$LAB_IPV6" >"$LAB_DIR/ipv6"
echo "$LAB_NO_LB" >"$LAB_DIR/no-lb"
# The API listens beyond loopback, so it needs an admin token (state-changing calls: reload,
# lb set-admin): `NEXTHOP_TOKEN_FILE=$LAB_DIR/admin.token nexthop ...`. Owner-only, as required.
(umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$LAB_DIR/admin.token")
# From here on, a failure tears down what was built.
trap 'echo "lab/up.sh: failed; logs in $LAB_DIR" >&2; LAB_DIR=$LAB_DIR "$here/down.sh" --name "$LAB_NAME" --keep-logs >/dev/null 2>&1 || true' ERR

in_ns() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }
# Starts a process in a namespace, detached, output to LAB_DIR/NAME.log, pid to NAME.pid.
start() {
  local name=$1 where=$2; shift 2
  ip netns exec "$(ns "$where")" setsid "$@" </dev/null >"$LAB_DIR/$name.log" 2>&1 &
  echo $! >"$LAB_DIR/$name.pid"
}

# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $end ]; then
      echo "lab/up.sh: timed out after ${secs}s waiting for $what" >&2
      return 1
    fi
    sleep 0.2
  done
}

# ------------------------------------------------------------------ namespaces and links
for h in sw $HOSTS; do
  ip netns add "$(ns $h)"
  echo "$(ns $h)" >>"$LAB_DIR/namespaces"
  in_ns $h ip link set lo up
done
# The switch only switches: bridged frames skip iptables when br_netfilter is loaded.
for k in iptables ip6tables arptables; do
  in_ns sw sysctl -qw "net.bridge.bridge-nf-call-$k=0" 2>/dev/null || true
done
in_ns sw ip link add hub type bridge
in_ns sw ip link add branch type bridge
in_ns sw ip link set hub up
in_ns sw ip link set branch up
# link HOST IFNAME BRIDGE: a veth from HOST's IFNAME to a port of BRIDGE in the switch.
link() {
  local host=$1 ifname=$2 bridge=$3 port="$1-$3"
  ip -n "$(ns sw)" link add "$port" type veth peer name "$ifname" netns "$(ns "$host")"
  in_ns sw ip link set "$port" master "$bridge" up
  in_ns "$host" ip link set "$ifname" up
}
for h in vm1 lb rs nva1 nva2; do link $h eth0 hub; done
[ "$LAB_CONTROLLERS" = 2 ] && link rs2 eth0 hub
for h in nva1 nva2 branch; do link $h eth1 branch; done

in_ns vm1 ip addr add 10.1.3.10/16 dev eth0
in_ns lb ip addr add 10.1.0.100/16 dev eth0
in_ns rs ip addr add 10.1.1.4/16 dev eth0
if [ "$LAB_CONTROLLERS" = 2 ]; then
  in_ns rs2 ip addr add 10.1.1.5/16 dev eth0
  in_ns rs2 sysctl -qw net.ipv4.ip_forward=0
else
  in_ns rs ip addr add 10.1.1.5/16 dev eth0
fi
in_ns nva1 ip addr add 10.1.2.10/16 dev eth0
in_ns nva1 ip addr add 192.168.10.2/24 dev eth1
in_ns nva2 ip addr add 10.1.2.11/16 dev eth0
in_ns nva2 ip addr add 192.168.10.3/24 dev eth1
in_ns branch ip addr add 192.168.10.1/24 dev eth1
in_ns branch ip route add 10.1.0.0/16 nexthop via 192.168.10.2 nexthop via 192.168.10.3
in_ns branch sysctl -qw net.ipv4.fib_multipath_hash_policy=1
for h in nva1 nva2; do in_ns $h sysctl -qw net.ipv4.ip_forward=1; done
for h in vm1 lb rs branch; do in_ns $h sysctl -qw net.ipv4.ip_forward=0; done
if [ "$LAB_IPV6" = 1 ]; then
  # nodad: usable at once (no duplicate address detection on a lab's own links).
  addr6() { in_ns "$1" ip -6 addr add "$2" dev "$3" nodad; }
  addr6 vm1 fd00:1::3:10/64 eth0
  addr6 lb fd00:1::100/64 eth0
  addr6 rs fd00:1::1:4/64 eth0
  if [ "$LAB_CONTROLLERS" = 2 ]; then addr6 rs2 fd00:1::1:5/64 eth0; else addr6 rs fd00:1::1:5/64 eth0; fi
  addr6 nva1 fd00:1::2:10/64 eth0
  addr6 nva1 fd00:10::2/64 eth1
  addr6 nva2 fd00:1::2:11/64 eth0
  addr6 nva2 fd00:10::3/64 eth1
  addr6 branch fd00:10::1/64 eth1
  in_ns branch ip -6 route add fd00:1::/48 nexthop via fd00:10::2 nexthop via fd00:10::3
  in_ns branch sysctl -qw net.ipv6.fib_multipath_hash_policy=1
  for h in nva1 nva2; do in_ns $h sysctl -qw net.ipv6.conf.all.forwarding=1; done
  for h in vm1 lb rs branch; do in_ns $h sysctl -qw net.ipv6.conf.all.forwarding=0; done
  # Unlike IPv4, an IPv6 host with forwarding off answers a packet for a destination it has no
  # route to with ICMPv6 "no route": the LB host needs a route (a real one has a default).
  in_ns lb ip -6 route add blackhole default
fi

# ------------------------------------------------------------------ NVAs: FRR + health endpoint
nva_conf() { # NAME ROUTER_ID
  local gr="" v6nb="" v6af="" nh4=" set ip next-hop 10.1.0.100"
  # Without a load balancer each NVA is its own next hop (next-hop-self).
  [ "$LAB_NO_LB" = 1 ] && nh4=""
  if [ "$LAB_IPV6" = 1 ]; then
    # IPv6 sessions to the instances' IPv6 addresses, carrying IPv6 unicast only.
    v6nb=$' neighbor fd00:1::1:4 remote-as 65515\n neighbor fd00:1::1:5 remote-as 65515\n neighbor fd00:1::1:4 timers connect 2\n neighbor fd00:1::1:5 timers connect 2'
    v6af=$' address-family ipv4 unicast\n  no neighbor fd00:1::1:4 activate\n  no neighbor fd00:1::1:5 activate\n exit-address-family\n !\n address-family ipv6 unicast\n  network fd00:10::/48\n  neighbor fd00:1::1:4 activate\n  neighbor fd00:1::1:5 activate\n  neighbor fd00:1::1:4 route-map SET-NEXTHOP6 out\n  neighbor fd00:1::1:5 route-map SET-NEXTHOP6 out\n exit-address-family'
  fi
  # Graceful restart (RFC 4724): helper for the route server, and restarting speaker with its
  # forwarding state kept (the F bit); `clear bgp` is an Administrative Reset that keeps the
  # routes (RFC 8538 N bit), not FRR's default Hard Reset.
  [ "$LAB_GR" = 1 ] && gr=$' bgp graceful-restart\n bgp graceful-restart preserve-fw-state\n bgp graceful-restart select-defer-time 0\n no bgp hard-administrative-reset'
  cat <<EOF
frr defaults traditional
hostname $1
log file $LAB_DIR/$1/bgpd.log
!
router bgp 65001
 bgp router-id $2
 bgp log-neighbor-changes
$gr
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.1.1.4 remote-as 65515
 neighbor 10.1.1.5 remote-as 65515
 neighbor 10.1.1.4 timers connect 2
 neighbor 10.1.1.5 timers connect 2
$v6nb
 !
 address-family ipv4 unicast
  network 192.168.10.0/24
  neighbor 10.1.1.4 activate
  neighbor 10.1.1.5 activate
  neighbor 10.1.1.4 next-hop-self
  neighbor 10.1.1.5 next-hop-self
  neighbor 10.1.1.4 route-map SET-NEXTHOP out
  neighbor 10.1.1.5 route-map SET-NEXTHOP out
 exit-address-family
$v6af
exit
!
route-map SET-NEXTHOP permit 10
$nh4
exit
!
route-map SET-NEXTHOP6 permit 10
 set ipv6 next-hop global fd00:1::100
exit
!
EOF
}
# NAME:ADDRESSES of the health endpoints (both families in one process with --ipv6).
HEALTH="nva1:10.1.2.10 nva2:10.1.2.11"
[ "$LAB_IPV6" = 1 ] && HEALTH="nva1:10.1.2.10,fd00:1::2:10 nva2:10.1.2.11,fd00:1::2:11"
for pair in $HEALTH; do
  n=${pair%%:*} a=${pair#*:}
  echo "$a" >"$LAB_DIR/$n.health-addrs"
  mkdir -p "$LAB_DIR/$n"
  nva_conf "$n" "${a%%,*}" >"$LAB_DIR/$n/bgpd.conf"
  # bgpd without zebra, root (-S), in the foreground so that its pid is ours.
  start "$n-bgpd" "$n" "$(command -v bgpd)" -Z -S -n -P 0 -f "$LAB_DIR/$n/bgpd.conf" \
    -i "$LAB_DIR/$n/bgpd.pid" --vty_socket "$LAB_DIR/$n"
  start "$n-health" "$n" nice -n -10 "$PY" "$here/serve.py" health "$a" 8080 "$LAB_DIR/$n-probes.log"
done
branch_addrs=192.168.10.1
[ "$LAB_IPV6" = 1 ] && branch_addrs=192.168.10.1,fd00:10::1
start branch "branch" "$PY" "$here/serve.py" branch "$branch_addrs"

# The health endpoints answer before the first probe: otherwise an NVA whose server starts late
# begins "down" and, without preemption, stays standby behind the other one.
for pair in $HEALTH; do
  n=${pair%%:*} a=${pair#*:}
  for one in ${a//,/ }; do
    case $one in *:*) url="http://[$one]:8080/health" ;; *) url="http://$one:8080/health" ;; esac
    wait_for "$n's health endpoint on $one" 10 in_ns "$n" "$PY" -c \
      "import urllib.request as u; u.urlopen('$url', timeout=1).read()"
  done
done

# ------------------------------------------------------------------ route server + LB controller
cat >"$LAB_DIR/nexthop.toml" <<EOF
# Written by lab/up.sh: the seed's topology (SPEC §6), probes every $LAB_INTERVAL_MS ms.
[[virtual_network]]
name = "hub"
region = "westeurope"
address_space = ["10.1.0.0/16"$( [ "$LAB_IPV6" = 1 ] && echo ', "fd00:1::/48"' )]

[route_server]
asn = 65515
virtual_network = "hub"
instances = ["10.1.1.4", "10.1.1.5"]
$( [ "$LAB_IPV6" = 1 ] && echo 'instances_ipv6 = ["fd00:1::1:4", "fd00:1::1:5"]' )
$( [ "$LAB_GR" = 1 ] && echo 'graceful_restart = { enabled = true, restart_time_s = 120 }' )

[[route_server.peer]]
name = "nva1"
address = "10.1.2.10"
asn = 65001

[[route_server.peer]]
name = "nva2"
address = "10.1.2.11"
asn = 65001

$( [ "$LAB_NO_LB" = 1 ] || cat <<EOFLB
[[load_balancer]]
name = "nva-ilb"
virtual_network = "hub"
frontend = "10.1.0.100"
mode = "$LAB_MODE"
backends = [{ address = "10.1.2.10", priority = 1 }, { address = "10.1.2.11", priority = 2 }]
probe = { protocol = "http", port = 8080, path = "/health", interval_ms = $LAB_INTERVAL_MS, rise = $LAB_RISE, fall = $LAB_FALL }
EOFLB
)

$( [ "$LAB_IPV6" = 1 ] && cat <<EOF6
[[route_server.peer]]
name = "nva1-v6"
address = "fd00:1::2:10"
asn = 65001

[[route_server.peer]]
name = "nva2-v6"
address = "fd00:1::2:11"
asn = 65001

[[load_balancer]]
name = "nva-ilb6"
virtual_network = "hub"
frontend = "fd00:1::100"
mode = "$LAB_MODE"
backends = [{ address = "fd00:1::2:10", priority = 1 }, { address = "fd00:1::2:11", priority = 2 }]
probe = { protocol = "http", port = 8080, path = "/health", interval_ms = $LAB_INTERVAL_MS, rise = $LAB_RISE, fall = $LAB_FALL }
EOF6
)

[[nic]]
name = "vm1-nic"
virtual_network = "hub"
address = "10.1.3.10"
$( [ "$LAB_IPV6" = 1 ] && echo 'address6 = "fd00:1::3:10"' )

[api]
listen = "0.0.0.0:8179"
admin_token_file = "$LAB_DIR/admin.token"
EOF
# controller N: its namespace, pid/log name, and what it runs.
if [ "$LAB_CONTROLLERS" = 2 ]; then
  start nexthop rs "$NEXTHOP" run --config "$LAB_DIR/nexthop.toml" --instance 10.1.1.4
  start nexthop2 rs2 "$NEXTHOP" run --config "$LAB_DIR/nexthop.toml" --instance 10.1.1.5
  CONTROLLERS="rs rs2"
  SESSIONS=2
  FOLLOW=(--controller http://10.1.1.4:8179 --controller http://10.1.1.5:8179)
else
  start nexthop rs "$NEXTHOP" run --config "$LAB_DIR/nexthop.toml"
  CONTROLLERS="rs"
  SESSIONS=4
  FOLLOW=(--controller http://10.1.1.4:8179)
fi

# With IPv6 every NVA also has a session per instance over IPv6.
[ "$LAB_IPV6" = 1 ] && SESSIONS=$((SESSIONS * 2))
LBS=nva-ilb
[ "$LAB_IPV6" = 1 ] && LBS="nva-ilb nva-ilb6"
[ "$LAB_NO_LB" = 1 ] && LBS=""
established() {
  [ "$(in_ns "$1" "$NEXTHOP" --api http://127.0.0.1:8179 peers -o json | grep -o '"Established"' | wc -l)" = "$SESSIONS" ]
}
lb_up() {
  for l in $LBS; do
    [ "$(in_ns "$1" "$NEXTHOP" --api http://127.0.0.1:8179 lb show "$l" -o json | grep -o '"health": *"up"' | wc -l)" = 2 ] || return 1
  done
}
for c in $CONTROLLERS; do
  wait_for "the controller's API on $c" 20 in_ns "$c" "$NEXTHOP" --api http://127.0.0.1:8179 peers
  wait_for "$SESSIONS BGP sessions (nva1, nva2 x instances) Established on $c" 40 established "$c"
  wait_for "both NVAs healthy on $c" 20 lb_up "$c"
done

# ------------------------------------------------------------------ data plane
start agent vm1 "$NEXTHOP" agent "${FOLLOW[@]}" --nic vm1-nic
if [ "$LAB_NO_LB" = 1 ]; then
  # The agent's route is multipath: the L4 hash spreads flows by ports, not only addresses.
  in_ns vm1 sysctl -qw net.ipv4.fib_multipath_hash_policy=1
  routed() {
    local r; r=$(in_ns vm1 ip -4 route show proto 200)
    grep -q 'nexthop via 10.1.2.10' <<<"$r" && grep -q 'nexthop via 10.1.2.11' <<<"$r"
  }
else
  start lb-mux lb "$NEXTHOP" lb-mux "${FOLLOW[@]}" --lb nva-ilb --interface eth0 \
    --threads "${LAB_MUX_THREADS:-0}"
  routed() { in_ns vm1 ip -4 route show proto 200 | grep -q '^192.168.10.0/24 via 10.1.0.100'; }
fi
# The IPv6 load balancer's mux on the same interface: each mux leaves the other family's frames.
[ "$LAB_IPV6" = 1 ] && start lb-mux6 lb "$NEXTHOP" lb-mux "${FOLLOW[@]}" --lb nva-ilb6 \
  --interface eth0 --threads "${LAB_MUX_THREADS:-0}"
wait_for "the agent's route on vm1" 20 routed
[ "$LAB_NO_LB" = 1 ] || wait_for "the mux" 20 grep -q "on eth0: " "$LAB_DIR/lb-mux.log"
wait_for "a connection vm1 -> branch through the load balancer" 20 \
  in_ns vm1 "$PY" -c "import socket; socket.create_connection(('192.168.10.1', 7), 1).close()"
if [ "$LAB_IPV6" = 1 ]; then
  routed6() { in_ns vm1 ip -6 route show proto 200 | grep -q '^fd00:10::/48 via fd00:1::100'; }
  wait_for "the agent's IPv6 route on vm1" 20 routed6
  wait_for "the IPv6 mux" 20 grep -q "on eth0: " "$LAB_DIR/lb-mux6.log"
  wait_for "an IPv6 connection vm1 -> branch through the load balancer" 20 \
    in_ns vm1 "$PY" -c "import socket; socket.create_connection(('fd00:10::1', 7), 1).close()"
fi

trap - ERR
cat <<EOF
lab '$LAB_NAME' is up ($LAB_MODE, $LAB_CONTROLLERS controller process(es), probes every $LAB_INTERVAL_MS ms, rise $LAB_RISE, fall $LAB_FALL); files in $LAB_DIR
  vm1 routes:      ip netns exec $(ns vm1) ip route
  try it:          ip netns exec $(ns vm1) curl -s http://192.168.10.1/
  route server:    ip netns exec $(ns rs) $NEXTHOP peers      (also: rib, routes learned --peer nva1, effective-routes --nic vm1-nic)
  load balancer:   ip netns exec $(ns rs) $NEXTHOP lb show nva-ilb
  which NVA:       ip netns exec $(ns rs) $NEXTHOP trace --nic vm1-nic --dst 192.168.10.1 --proto tcp --sport 40000 --dport 7
  per-NVA packets: ip netns exec $(ns nva1) ip -s link show eth1   (TX: what nva1 forwarded to the branch)
  watch a NVA:     ip netns exec $(ns nva1) tcpdump -ni eth1 tcp
  FRR:             ip netns exec $(ns nva1) vtysh --vty_socket $LAB_DIR/nva1 -c 'show bgp summary'
  fail nva1:       lab/ctl.sh --name $LAB_NAME health nva1 stop    (and: start; probes are logged in $LAB_DIR/nva1-probes.log)
  restart nva1:    lab/ctl.sh --name $LAB_NAME bgpd nva1 kill|start
  controller:      lab/ctl.sh --name $LAB_NAME controller kill|stop|start [1|2]   (default: every controller)
  stop the lab:    lab/down.sh --name $LAB_NAME
EOF
