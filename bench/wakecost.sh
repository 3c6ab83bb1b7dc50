#!/usr/bin/env bash
# bench/wakecost.sh [RATES] [SECS]: what one wake-up of a process costs on this machine, with no proxy
# in it: a UDP echo process on loopback (bench/lib/wakecost.c) woken RATE times a second. At everyday
# request rates a proxy's CPU per request is close to its wake-ups per request times this cost plus
# its own work in cold caches (bench/README.md, "Everyday rates: what limits wtmesh").
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RATES=${1:-100,1000,10000} SECS=${2:-3}
[[ "$RATES" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ && "$SECS" =~ ^[1-9][0-9]*$ ]] || {
  echo "usage: bench/wakecost.sh [RATES e.g. 100,1000] [SECS]" >&2
  exit 2
}
bin=$(mktemp /tmp/wakecost.XXXXXX)
trap 'rm -f "$bin"' EXIT
cc -O2 -Wall -Werror -o "$bin" "$BENCH_DIR/lib/wakecost.c"
IFS=, read -r -a list <<< "$RATES"
for r in "${list[@]}"; do "$bin" "$r" "$SECS"; done
