#!/usr/bin/env bash
# Fails and restores parts of a lab started by lab/up.sh.
#
#   lab/ctl.sh [--name NAME] health nva1|nva2 stop|start
#       an NVA's health endpoint: stopping it fails the NVA for the load balancer while its
#       routing keeps working (the probes it answered are in LAB_DIR/NVA-probes.log)
#   lab/ctl.sh [--name NAME] bgpd nva1|nva2 kill|start
#       an NVA's BGP daemon (FRR bgpd): kill -9 it, start it again (a restarting NVA)
#   lab/ctl.sh [--name NAME] mux stop|start
#       `nexthop lb-mux` on the LB host (stopped, nothing forwards: ip_forward is off there),
#       and the IPv6 one of a lab started with --ipv6; LAB_MUX_THREADS=N: forwarding threads
#       (default: one per CPU)
#   lab/ctl.sh [--name NAME] controller stop|kill|start [1|2]
#       `nexthop run` (route server, probes, fabric, API): the agent and the mux keep forwarding
#       on what they last knew (fail static) until it is back. With two controller processes
#       (lab/up.sh --controllers 2), 1 is rs (10.1.1.4) and 2 is rs2 (10.1.1.5); default: both
#
# LAB_NAME, LAB_DIR and NEXTHOP as for lab/up.sh. Prints the unix time of the action.
set -euo pipefail
LAB_NAME=${LAB_NAME:-nh}
if [ "${1:-}" = --name ]; then LAB_NAME=$2; shift 2; fi
LAB_DIR=${LAB_DIR:-/tmp/nexthop-lab-$LAB_NAME}
here=$(cd "$(dirname "$0")" && pwd)
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ -d "$LAB_DIR" ] || { echo "lab/ctl.sh: no lab '$LAB_NAME' ($LAB_DIR missing)" >&2; exit 1; }

# alive PID: running (a zombie, dead but not yet reaped by its new parent, is not).
alive() { [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
running() { [ -s "$1" ] && alive "$(cat "$1")"; }
# stop PIDFILE SIGNAL WHAT: prints the time the signal was sent.
stop() {
  if running "$1"; then
    local p at; p=$(cat "$1")
    at=$(date +%s.%N)
    kill "-$2" "$p"
    for _ in $(seq 100); do alive "$p" || break; sleep 0.05; done
    echo "$3 stopped at $at"
  else
    echo "$3 was not running"
  fi
  rm -f "$1"
}
# start PIDFILE LOG NAMESPACE WHAT COMMAND...
start() {
  local pidfile=$1 log=$2 netns=$3 what=$4; shift 4
  if running "$pidfile"; then echo "$what is running already"; return; fi
  ip netns exec "$netns" setsid "$@" </dev/null >>"$log" 2>&1 &
  echo $! >"$pidfile"
  echo "$what started at $(date +%s.%N)"
}

case ${1:-} in
  health)
    nva=${2:-}
    case $nva in nva1) addr=10.1.2.10 ;; nva2) addr=10.1.2.11 ;; *) usage ;; esac
    # Both families with --ipv6 (lab/up.sh wrote them down).
    [ -s "$LAB_DIR/$nva.health-addrs" ] && addr=$(cat "$LAB_DIR/$nva.health-addrs")
    PY=/usr/bin/python3; [ -x $PY ] || PY=$(command -v python3)
    case ${3:-} in
      stop) stop "$LAB_DIR/$nva-health.pid" KILL "$nva health endpoint" ;;
      start) start "$LAB_DIR/$nva-health.pid" "$LAB_DIR/$nva-health.log" "$LAB_NAME-$nva" \
        "$nva health endpoint" nice -n -10 "$PY" "$here/serve.py" health "$addr" 8080 "$LAB_DIR/$nva-probes.log" ;;
      *) usage ;;
    esac
    ;;
  bgpd)
    nva=${2:-}
    case $nva in nva1 | nva2) ;; *) usage ;; esac
    case ${3:-} in
      kill) stop "$LAB_DIR/$nva-bgpd.pid" KILL "$nva bgpd" ;;
      start) start "$LAB_DIR/$nva-bgpd.pid" "$LAB_DIR/$nva-bgpd.log" "$LAB_NAME-$nva" "$nva bgpd" \
        "$(PATH=$PATH:/usr/lib/frr command -v bgpd)" -Z -S -n -P 0 -f "$LAB_DIR/$nva/bgpd.conf" \
        -i "$LAB_DIR/$nva/bgpd.pid" --vty_socket "$LAB_DIR/$nva" ;;
      *) usage ;;
    esac
    ;;
  controller)
    NEXTHOP=${NEXTHOP:-$(cat "$LAB_DIR/nexthop.bin")}
    n=$(cat "$LAB_DIR/controllers" 2>/dev/null || echo 1)
    which=${3:-all}
    case $which in all) which=$(seq "$n") ;; 1 | 2) [ "$which" -le "$n" ] || usage ;; *) usage ;; esac
    for c in $which; do
      # controller c: its pid/log name, namespace and instance.
      case $c in
        1) name=nexthop host=rs inst=10.1.1.4 ;;
        2) name=nexthop2 host=rs2 inst=10.1.1.5 ;;
      esac
      only=()
      [ "$n" = 2 ] && only=(--instance "$inst")
      what=controller
      [ "$n" = 2 ] && what="controller $c"
      case ${2:-} in
        stop) stop "$LAB_DIR/$name.pid" TERM "$what" ;;
        kill) stop "$LAB_DIR/$name.pid" KILL "$what" ;;
        start) start "$LAB_DIR/$name.pid" "$LAB_DIR/$name.log" "$LAB_NAME-$host" "$what" \
          "$NEXTHOP" run --config "$LAB_DIR/nexthop.toml" "${only[@]}" ;;
        *) usage ;;
      esac
    done
    ;;
  mux)
    NEXTHOP=${NEXTHOP:-$(cat "$LAB_DIR/nexthop.bin")}
    ipv6=$(cat "$LAB_DIR/ipv6" 2>/dev/null || echo 0)
    if [ "$(cat "$LAB_DIR/no-lb" 2>/dev/null || echo 0)" = 1 ]; then
      echo "lab/ctl.sh: lab '$LAB_NAME' has no load balancer (--no-lb), so no mux" >&2
      exit 2
    fi
    case ${2:-} in
      stop)
        stop "$LAB_DIR/lb-mux.pid" TERM "mux"
        if [ "$ipv6" = 1 ]; then stop "$LAB_DIR/lb-mux6.pid" TERM "IPv6 mux"; fi ;;
      start)
        follow=(--controller http://10.1.1.4:8179)
        [ "$(cat "$LAB_DIR/controllers" 2>/dev/null || echo 1)" = 2 ] && follow+=(--controller http://10.1.1.5:8179)
        start "$LAB_DIR/lb-mux.pid" "$LAB_DIR/lb-mux.log" "$LAB_NAME-lb" "mux" \
        "$NEXTHOP" lb-mux "${follow[@]}" --lb nva-ilb --interface eth0 \
        --threads "${LAB_MUX_THREADS:-0}"
        if [ "$ipv6" = 1 ]; then
          start "$LAB_DIR/lb-mux6.pid" "$LAB_DIR/lb-mux6.log" "$LAB_NAME-lb" "IPv6 mux" \
            "$NEXTHOP" lb-mux "${follow[@]}" --lb nva-ilb6 --interface eth0 \
            --threads "${LAB_MUX_THREADS:-0}"
        fi ;;
      *) usage ;;
    esac
    ;;
  *) usage ;;
esac
