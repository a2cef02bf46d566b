#!/usr/bin/env bash
# Makes the sample 4-validator consortium on this machine's loopback:
#   Network/make-sample.sh [--crypto ed25519-sha256|sm2-sm3] [--scf PATH] [--base-port 7100] [--api-base-port 8100]
# Writes the genesis (Genesis/make-sample.sh), the consortium CA and each node's TLS certificate
# (Network/tls/, keys mode 0600, ignored by git), and Network/node-N.json configs. Start a node
# with `scf node start --config Network/node-0.json` (one terminal per node), or all four with
# Network/start-local.sh. Sample keys only: never real secrets.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
crypto=ed25519-sha256; scf=""; base=7100; apibase=8100
while [ $# -gt 0 ]; do
  case "$1" in
    --crypto) crypto="$2"; shift 2 ;;
    --scf) scf="$2"; shift 2 ;;
    --base-port) base="$2"; shift 2 ;;
    --api-base-port) apibase="$2"; shift 2 ;;
    *) echo "usage: $0 [--crypto S] [--scf PATH] [--base-port N] [--api-base-port N]" >&2; exit 2 ;;
  esac
done
if [ -z "$scf" ]; then
  (cd "$here/.." && swift build --product scf >/dev/null)
  scf="$(cd "$here/.." && swift build --show-bin-path)/scf"
fi
"$here/../Genesis/make-sample.sh" --crypto "$crypto" --scf "$scf"
mkdir -p "$here/tls/ca"
chmod 700 "$here/tls" "$here/tls/ca"
[ -f "$here/tls/ca/ca.key" ] || "$scf" network ca --dir "$here/tls/ca" >/dev/null
names=(node-0 node-1 node-2 node-3)
for i in 0 1 2 3; do
  name=${names[$i]}
  "$scf" network issue --ca-dir "$here/tls/ca" --validator "$name" --ip 127.0.0.1 --out "$here/tls/$name" >/dev/null
  peers=()
  for j in 0 1 2 3; do [ "$j" = "$i" ] || peers+=(--peer "${names[$j]}=127.0.0.1:$((base + j))"); done
  "$scf" node init --out "$here/$name.json" --validator "$name" --genesis "$here/../Genesis/genesis.json" \
    --key "$here/../Genesis/keys/$name.key" --data "$here/data/$name" --listen "127.0.0.1:$((base + i))" \
    --api "127.0.0.1:$((apibase + i))" "${peers[@]}" --tls-dir "$here/tls/$name" >/dev/null
done
echo "sample network ready: Network/node-{0,1,2,3}.json (validators on 127.0.0.1:$base-$((base + 3)), API on :$apibase-$((apibase + 3)))"
