#!/usr/bin/env bash
# bench/instructions.sh: instructions executed by the wtmesh edge and agent per request and per MiB,
# counted by valgrind's callgrind (this box has no PMU: `perf stat -e instructions` is unsupported).
# Wall-clock and even CPU-time figures drift with whatever else runs on a 2-core box; instruction counts
# stay within a few percent, so two builds can be compared across noisy runs (A/B: run it once per
# binary, or give --wtmesh twice). The edge and the agent run under callgrind (~50x slower), with the
# same nginx origin as bench/run.sh; counters are zeroed before and dumped after each phase:
#   1. requests: h2load --h1 over HTTPS, N requests of /1k.bin on 4 keep-alive connections;
#   2. bulk: one curl download of /100m.bin over HTTPS (HTTP/1.1).
# shellcheck source=lib/common.sh
# shellcheck source=lib/cpu.sh
# shellcheck source=lib/targets.sh
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
source "$BENCH_DIR/lib/common.sh"
source "$BENCH_DIR/lib/cpu.sh"
source "$BENCH_DIR/lib/targets.sh"

usage() {
  cat <<EOF
usage: bench/instructions.sh [options]
  --wtmesh PATH     a wtmesh binary to count (repeat for an A/B table; default: \$REPO/build-bench/wtmesh)
  --requests N      requests in the request phase (default 2000)
  --out DIR         keep logs, callgrind files and the report in DIR (default: a temp dir, removed on exit)
EOF
}

BINS=() REQUESTS=2000 OUT_DIR=""
while (($#)); do
  case $1 in
    --wtmesh) BINS+=("$2"); shift ;;
    --requests) REQUESTS=$2; shift ;;
    --out) OUT_DIR=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
[[ "$REQUESTS" =~ ^[1-9][0-9]*$ ]] || die "--requests takes a positive integer"
((${#BINS[@]})) || BINS=("$REPO_DIR/build-bench/wtmesh")
for tool in valgrind callgrind_control h2load curl nginx openssl ss; do
  command -v "$tool" > /dev/null || die "missing tool: $tool"
done

bench_start wtmesh-bench-ir
WTMESH_GLOBAL_ARGS=${WTMESH_GLOBAL_ARGS---log-level warn}
WTMESH_EDGE_ARGS="" WTMESH_HTTP_ARGS=""
export WTMESH_START_WAIT=120  # under callgrind the edge takes seconds to make its certificates
start_origin

# dump_ir PID LABEL: dumps callgrind's counters of PID (since the last zeroing) and prints their Ir.
dump_ir() {
  local before after f
  before=$(ls "$OUT"/callgrind."$1".out.* 2> /dev/null | wc -l)
  callgrind_control -d "$2" "$1" > /dev/null 2>&1 || die "callgrind_control -d $1 failed"
  for _ in $(seq 100); do
    after=$(ls "$OUT"/callgrind."$1".out.* 2> /dev/null | wc -l)
    ((after > before)) && break
    sleep 0.1
  done
  f=$(ls -t "$OUT"/callgrind."$1".out.* | head -1)
  awk '/^summary:/ { print $2; exit }' "$f"
}

# measure LABEL BINARY: one edge + agent under callgrind, both phases; raw LABEL KEY VALUE.
measure() {
  local label=$1 bin=$2 wrapper=$BENCH_TMP/wtmesh-$1
  # Only the long-running subcommands run under callgrind; `token` and `--help` run natively.
  cat > "$wrapper" <<EOF
#!/bin/sh
case " \$* " in
  *" --help "*) exec "$bin" "\$@" ;;
  *" edge "* | *" http "*) exec valgrind --tool=callgrind -q --callgrind-out-file=$OUT/callgrind.%p.out "$bin" "\$@" ;;
  *) exec "$bin" "\$@" ;;
esac
EOF
  chmod +x "$wrapper"
  WTMESH=$wrapper
  TARGETS=()
  start_wtmesh
  local edge=$WTMESH_EDGE_PID agent=$WTMESH_AGENT_PID host=${T_HOSTHDR[wtmesh]} url=${T_URL[wtmesh]}
  # shellcheck disable=SC2086
  curl -s -o /dev/null ${T_CURL[wtmesh]} "${T_CURLBASE[wtmesh]}/1k.bin" || true  # warm pools and caches
  callgrind_control -z "$edge" > /dev/null 2>&1 && callgrind_control -z "$agent" > /dev/null 2>&1
  h2load --h1 -n "$REQUESTS" -c 4 -m 1 -H ":authority: $host" "$url/1k.bin" > "$OUT/h2load-$label.txt" 2>&1 ||
    die "h2load failed (see $OUT/h2load-$label.txt)"
  local ok
  ok=$(awk '/^requests:/ { print $8 }' "$OUT/h2load-$label.txt")
  [[ "$ok" == "$REQUESTS" ]] || die "$label: $ok of $REQUESTS requests succeeded (see $OUT/h2load-$label.txt)"
  raw "$label" req_edge_ir "$(dump_ir "$edge" requests)"
  raw "$label" req_agent_ir "$(dump_ir "$agent" requests)"
  callgrind_control -z "$edge" > /dev/null 2>&1 && callgrind_control -z "$agent" > /dev/null 2>&1
  local size
  # shellcheck disable=SC2086
  size=$(curl -s --http1.1 -o /dev/null -w '%{size_download}' --max-time 600 ${T_CURL[wtmesh]} \
    "${T_CURLBASE[wtmesh]}/100m.bin") || die "$label: the bulk download failed"
  [[ "$size" == $((100 * 1024 * 1024)) ]] || die "$label: the bulk download got $size bytes"
  raw "$label" bulk_edge_ir "$(dump_ir "$edge" bulk)"
  raw "$label" bulk_agent_ir "$(dump_ir "$agent" bulk)"
  kill "$edge" "$agent" 2> /dev/null || true
  wait "$edge" "$agent" 2> /dev/null || true
  log "$label done"
}

labels=()
for i in "${!BINS[@]}"; do
  label=$(printf '%s' "$(basename "${BINS[$i]}")")
  ((${#BINS[@]} > 1)) && label="$((i + 1))-$label"
  labels+=("$label")
  log "counting $label (${BINS[$i]})"
  measure "$label" "${BINS[$i]}"
done

get() { awk -F'\t' -v t="$1" -v k="$2" '$1 == t && $2 == k { print $3 }' "$OUT/raw.tsv"; }
{
  printf '%-28s %14s %14s %14s %14s %14s %14s\n' binary "edge Ir/req" "agent Ir/req" "sum Ir/req" \
    "edge Ir/MiB" "agent Ir/MiB" "sum Ir/MiB"
  for l in "${labels[@]}"; do
    awk -v l="$l" -v n="$REQUESTS" -v re="$(get "$l" req_edge_ir)" -v ra="$(get "$l" req_agent_ir)" \
      -v be="$(get "$l" bulk_edge_ir)" -v ba="$(get "$l" bulk_agent_ir)" 'BEGIN {
        printf "%-28s %14.0f %14.0f %14.0f %14.0f %14.0f %14.0f\n", l, re / n, ra / n, (re + ra) / n,
          be / 100, ba / 100, (be + ba) / 100 }'
  done
  echo
  echo "(callgrind Ir of the edge and agent processes, all threads; requests: h2load --h1 -n $REQUESTS -c 4 on"
  echo " /1k.bin over HTTPS, bulk: one 100 MiB HTTPS download; each phase counted from zeroed counters)"
  echo "commit: $(git -C "$REPO_DIR" rev-parse --short HEAD 2> /dev/null || echo unknown); $(valgrind --version)"
} | tee "$OUT/report.txt"
