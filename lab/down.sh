#!/usr/bin/env bash
# Stops a lab started by lab/up.sh: its processes (by the pids it recorded), then its namespaces.
# Usage: lab/down.sh [--name NAME] [--keep-logs]     (LAB_NAME, LAB_DIR as for lab/up.sh)
set -uo pipefail
LAB_NAME=${LAB_NAME:-nh}
keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --name) LAB_NAME=$2; shift 2 ;;
    --keep-logs) keep=1; shift ;;
    -h | --help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "lab/down.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
LAB_DIR=${LAB_DIR:-/tmp/nexthop-lab-$LAB_NAME}
[ "$(id -u)" = 0 ] || { echo "lab/down.sh: needs root" >&2; exit 1; }

# alive PID: running (a zombie, dead but not yet reaped by its new parent, is not).
alive() { [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
pids=""
for f in "$LAB_DIR"/*.pid; do
  [ -e "$f" ] || continue
  p=$(cat "$f")
  if [ -n "$p" ] && alive "$p"; then pids="$pids $p"; fi
done
[ -n "$pids" ] && kill -TERM $pids 2>/dev/null
for _ in $(seq 20); do
  alive=""
  for p in $pids; do alive "$p" && alive="$alive $p"; done
  [ -z "$alive" ] && break
  sleep 0.1
done
[ -n "${alive:-}" ] && kill -KILL $alive 2>/dev/null

# The lab's namespaces: those up.sh recorded, else the names it uses.
if [ -s "$LAB_DIR/namespaces" ]; then
  namespaces=$(cat "$LAB_DIR/namespaces")
else
  namespaces=$(for h in sw vm1 lb rs rs2 nva1 nva2 branch; do echo "$LAB_NAME-$h"; done)
fi
for n in $namespaces; do
  ip netns list | grep -q "^$n\( \|$\)" || continue
  # Anything still inside was started by the lab (e.g. a command a user ran in it).
  for p in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  ip netns del "$n"
done
if [ $keep = 0 ]; then rm -rf "$LAB_DIR"; fi
echo "lab '$LAB_NAME' is down"
