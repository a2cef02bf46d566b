#!/usr/bin/env bash
# Makes the sample consortium's keys and genesis file from Genesis/consortium.json.
#   Genesis/make-sample.sh [--crypto ed25519-sha256|sm2-sm3] [--scf PATH]
# Keys go to Genesis/keys/ (mode 0600, ignored by git): they are test keys for a sample chain,
# never real secrets. Re-running keeps existing keys and rewrites genesis.json.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
crypto=ed25519-sha256
scf=""
while [ $# -gt 0 ]; do
  case "$1" in
    --crypto) crypto="$2"; shift 2 ;;
    --scf) scf="$2"; shift 2 ;;
    *) echo "usage: $0 [--crypto ed25519-sha256|sm2-sm3] [--scf PATH]" >&2; exit 2 ;;
  esac
done
if [ -z "$scf" ]; then
  (cd "$here/.." && swift build --product scf >/dev/null)
  scf="$(cd "$here/.." && swift build --show-bin-path)/scf"
fi
mkdir -p "$here/keys"
chmod 700 "$here/keys"
names=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(" ".join([m["keyFile"] for m in s["members"]]+[v["keyFile"] for v in s["validators"]]))' "$here/consortium.json")
for file in $names; do
  path="$here/$file"
  if [ -f "$path" ] && ! grep -q "\"suite\" : \"$crypto\"" "$path"; then rm -f "$path"; fi
  [ -f "$path" ] || "$scf" keys generate --suite "$crypto" --out "$path" >/dev/null
done
"$scf" genesis create --spec "$here/consortium.json" --crypto "$crypto" --out "$here/genesis.json" --force
