#!/usr/bin/env bash
# Fault harness: four validators as real processes, each in its own Linux network namespace,
# driven by an open-loop load of signed transactions while faults are injected one after another
# (netem loss and delay, a partition isolating the primary, a 2|2 split, kill -9 every few
# seconds, kill -9 during block writes, a full disk, a skewed clock). After each phase it heals,
# drains the load and checks: equal head hashes, every transaction the API reported committed in
# every node's ledger exactly once, `scf ledger verify` on every node's data, peak RSS under a bound.
#
#   sudo Tests/Fault/harness.sh [--short | --long] [--seed N] [--scf PATH] [--keep DIR] [--rate TX/S]
#
# --short (default, CI) takes about 4 minutes; --long runs every phase several times longer.
# Needs root, iproute2 (ip, tc), faketime, sqlite3 and nftables (packet loss when the kernel has no
# netem; many VM kernels leave sch_netem out, and then delay comes from a tbf rate limit instead):
#   apt-get install -y iproute2 faketime sqlite3 nftables
# Everything it makes carries the prefix "scfh-" (namespaces scfh-hub, scfh-n0..3, scfh-cl, a
# tmpfs mounted from "scfh-disk" and the work directory ${TMPDIR:-/tmp}/scfh-run) and is removed
# on exit, on Ctrl-C, and at the start of the next run if an earlier run was killed. Addresses
# are from 198.18.0.0/15 only (198.18.0.10-13 validators, 198.18.0.100 client); no namespace has a
# default route, so nothing leaves the harness's own network.
# Exit status: 0 when every phase's verdict is ok, 1 when one failed, 2 on a setup error.
set -euo pipefail

PREFIX=scfh-
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
mode=short; seed=""; scf="${SCF:-}"; keep=""; rate=""
while [ $# -gt 0 ]; do
  case "$1" in
    --short) mode=short; shift ;;
    --long) mode=long; shift ;;
    --seed) seed="$2"; shift 2 ;;
    --scf) scf="$2"; shift 2 ;;
    --keep) keep="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--short|--long] [--seed N] [--scf PATH] [--keep DIR] [--rate TX/S]" >&2; exit 2 ;;
  esac
done
[ -n "$seed" ] || seed=$(( (RANDOM << 15) | RANDOM ))

fail() { echo "harness: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || fail "must run as root (it creates network namespaces and mounts a tmpfs)"
for tool in ip tc sqlite3 nft mount umount; do command -v "$tool" >/dev/null || fail "$tool is missing; apt-get install -y iproute2 sqlite3 nftables"; done
command -v faketime >/dev/null || fail "faketime is missing; apt-get install -y faketime"

if [ -z "$scf" ]; then
  (cd "$root" && swift build --product scf >/dev/null) || fail "swift build failed"
  scf="$(cd "$root" && swift build --show-bin-path)/scf"
fi
[ -x "$scf" ] || fail "no scf executable at $scf"
scf="$(cd "$(dirname "$scf")" && pwd)/$(basename "$scf")"

work="${TMPDIR:-/tmp}/${PREFIX}run"
namespaces=(hub n0 n1 n2 n3 cl)

# Removes everything this harness makes, whether from this run or one that was killed.
cleanup() {
  local ns pids link mountpoint
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX" || true); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
  done
  sleep 0.2
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$PREFIX" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$PREFIX" || true); do
    ip link del "$link" 2>/dev/null || true
  done
  while read -r source mountpoint _; do
    [ "$source" = "${PREFIX}disk" ] && umount -l "$mountpoint" 2>/dev/null || true
  done < /proc/mounts
}

finish() {
  local status=$?
  trap - EXIT INT TERM
  cleanup
  if [ -n "$keep" ]; then
    echo "harness: kept the run's files in $keep"
  elif [ "$status" -ne 0 ] && [ -d "$work" ]; then
    rm -rf "${work}-failed"; mv "$work" "${work}-failed" 2>/dev/null || true
    echo "harness: logs of the failed run are in ${work}-failed (removed by the next run)"
  else
    rm -rf "$work"
  fi
  exit "$status"
}

cleanup
rm -rf "$work" "${work}-failed"
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[ -z "$keep" ] || { rm -rf "$keep"; work="$keep"; }
mkdir -p "$work"

# Topology: a bridge in scfh-hub; each validator namespace and the client namespace hang off it
# by a veth pair. Only the 198.18.0.0/24 on-link route exists in each namespace.
for ns in "${namespaces[@]}"; do
  ip netns add "$PREFIX$ns"
  ip -n "$PREFIX$ns" link set lo up
done
ip -n "${PREFIX}hub" link add "${PREFIX}br" type bridge
ip -n "${PREFIX}hub" link set "${PREFIX}br" up
address() { case "$1" in cl) echo 198.18.0.100 ;; n*) echo "198.18.0.1${1#n}" ;; esac; }
for ns in n0 n1 n2 n3 cl; do
  ip link add "$PREFIX$ns" netns "${PREFIX}hub" type veth peer name eth0 netns "$PREFIX$ns"
  ip -n "${PREFIX}hub" link set "$PREFIX$ns" master "${PREFIX}br" up
  ip -n "$PREFIX$ns" addr add "$(address "$ns")/24" dev eth0
  ip -n "$PREFIX$ns" link set eth0 up
done

"$scf" fault setup --dir "$work" --node 198.18.0.10 --node 198.18.0.11 --node 198.18.0.12 --node 198.18.0.13 >/dev/null
# node-3's data directory is a small filesystem of its own, for the disk-full phase.
mkdir -p "$work/data/node-3"
mount -t tmpfs -o size=256m,mode=0700 "${PREFIX}disk" "$work/data/node-3"

args=(fault run --dir "$work" --mode "$mode" --seed "$seed" --scf "$scf" --netns-prefix "$PREFIX" --faketime "$(command -v faketime)" --disk-node 3)
[ -z "$rate" ] || args+=(--rate "$rate")
echo "harness: $mode run, seed $seed, work directory $work"
ip netns exec "${PREFIX}cl" "$scf" "${args[@]}"
