#!/usr/bin/env bash
# bench/workers.sh: what `wtmesh edge --workers N` buys (issue 15 item 3). For each worker count in
# turn: an nginx origin, the edge with that many workers, AGENTS agents (`wtmesh http`, one tunnel
# each, each its own process and QUIC connection, so the kernel spreads them over the workers' UDP
# sockets), and one wrk per tunnel at once (HTTPS, keep-alive, /1k.bin), CONNS connections in all,
# spread by the kernel over the workers' TCP listeners. Printed per worker count: requests per second,
# the edge's CPU per request (schedstat of all its threads), how that CPU split over its threads, and
# the requests that crossed between workers (wtmesh_worker_hops_total).
#
# Pinning (taskset) shows the scaling without the load competing for the edge's cores: --edge-cpus
# for the edge, --load-cpus for wrk, the agents and the origin. On a 2-core box the honest split is
# the edge on one core with 1 and 2 workers (no gain is possible: it shows the hop's overhead), or
# everything on both cores (the edge's threads then share them with the load).
#
# wrk sends no SNI to https://127.0.0.1 (the tunnel is named by Host), so its connections cannot be
# steered to the worker holding their tunnel (edge/listener_steering.h) and (N-1)/N of the requests
# cross. --sni runs wrk with a private /etc/hosts (a mount namespace: root and unshare) naming
# tNAME.localhost, so its ClientHellos carry the name: the connections are steered, nothing crosses.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"
# shellcheck source=lib/cpu.sh
source "$BENCH_DIR/lib/cpu.sh"
# shellcheck source=lib/targets.sh
source "$BENCH_DIR/lib/targets.sh"

usage() {
  cat <<EOF
usage: bench/workers.sh [options]
  --workers LIST     worker counts to compare (default 1,2)
  --agents N         agents, one tunnel each (default 2)
  --conns N          wrk connections in all, split over the tunnels (default 64)
  --secs S           seconds of load per worker count (default 8)
  --rounds N         repeat the comparison, interleaved (default 1)
  --edge-cpus LIST   taskset the edge (e.g. 1); default: not pinned
  --load-cpus LIST   taskset wrk, the agents and the origin (e.g. 0); default: not pinned
  --wtmesh PATH      wtmesh binary (default \$REPO/build-bench/wtmesh, else build/wtmesh)
  --sni              wrk asks for https://tI.localhost (SNI: steered connections; needs root)
  --out DIR          keep logs and raw.tsv in DIR
EOF
}

WORKER_LIST=1,2 AGENTS=2 CONNS=64 SECS=8 ROUNDS=1 EDGE_CPUS="" LOAD_CPUS="" WTMESH="" OUT_DIR="" SNI=0
while (($#)); do
  case $1 in
    --workers) WORKER_LIST=$2; shift ;;
    --agents) AGENTS=$2; shift ;;
    --conns) CONNS=$2; shift ;;
    --secs) SECS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --edge-cpus) EDGE_CPUS=$2; shift ;;
    --load-cpus) LOAD_CPUS=$2; shift ;;
    --wtmesh) WTMESH=$2; shift ;;
    --out) OUT_DIR=$2; shift ;;
    --sni) SNI=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
REPO_DIR=$(dirname "$BENCH_DIR")
if [[ -z "$WTMESH" ]]; then
  WTMESH=$REPO_DIR/build-bench/wtmesh
  [[ -x "$WTMESH" ]] || WTMESH=$REPO_DIR/build/wtmesh
fi
[[ -x "$WTMESH" ]] || die "no wtmesh binary at $WTMESH (--wtmesh PATH)"
command -v wrk > /dev/null || die "wrk not installed (scripts/setup.sh)"
command -v nginx > /dev/null || die "nginx not installed (scripts/setup.sh)"
WTMESH_GLOBAL_ARGS=${WTMESH_GLOBAL_ARGS:---log-level warn}
pin() {  # pin CPUS CMD...: taskset when CPUS is set; always in a background job (it execs CMD)
  local cpus=$1
  shift
  if [[ -n "$cpus" ]]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}

bench_start wtmesh-workers
start_origin
if [[ -n "$LOAD_CPUS" ]]; then
  for p in $(descendants "$ORIGIN_PID"); do taskset -a -p -c "$LOAD_CPUS" "$p" > /dev/null; done
fi

# run_one WORKERS ROUND: edge + agents + load; records rps, cpu_us_per_req, hops, thread split.
run_one() {
  local workers=$1 round=$2
  local dir=$BENCH_TMP/edge-$workers-$round port i
  mkdir -p "$dir"
  free_port port
  # shellcheck disable=SC2086
  spawn "edge-$workers-$round" pin "$EDGE_CPUS" "$WTMESH" $WTMESH_GLOBAL_ARGS edge --listen "127.0.0.1:$port" \
    --domain localhost --state-dir "$dir" --workers "$workers" --admin-listen 127.0.0.1:0
  local edge_pid=$SPAWNED_PID agents=()
  wait_tcp "$port" 20 || die "the edge did not listen (see $OUT/edge-$workers-$round.log)"
  wait_file "$dir/ca.pem" 20 || die "the edge wrote no ca.pem"
  for ((i = 0; i < AGENTS; i++)); do
    local token
    token=$("$WTMESH" token --state-dir "$dir" --name "t$i" --ttl 1h 2> /dev/null |
      grep -Eo '[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+' | tail -1)
    # shellcheck disable=SC2086
    spawn "agent-$workers-$round-$i" pin "$LOAD_CPUS" "$WTMESH" $WTMESH_GLOBAL_ARGS http "$ORIGIN_PORT" \
      --edge "https://127.0.0.1:$port" --token "$token" --name "t$i" --ca "$dir/ca.pem"
    agents+=("$SPAWNED_PID")
  done
  for ((i = 0; i < AGENTS; i++)); do
    local deadline=$((SECONDS + 20)) code=000
    while ((SECONDS < deadline)); do
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$dir/ca.pem" \
        --resolve "t$i.localhost:$port:127.0.0.1" "https://t$i.localhost:$port/1k.bin") || true
      [[ "$code" == 200 ]] && break
      sleep 0.2
    done
    [[ "$code" == 200 ]] || die "tunnel t$i never answered 200"
  done
  local per=$((CONNS / AGENTS)) wrks=() cpu0 cpu1
  ((per > 0)) || per=1
  cpu0=$(tree_cpu_ns "$edge_pid")
  local ticks0
  ticks0=$(thread_ticks "$edge_pid" | sort -k1,1)
  for ((i = 0; i < AGENTS; i++)); do
    if ((SNI)); then
      pin "$LOAD_CPUS" unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec "$@"' "$BENCH_TMP/hosts" \
        wrk -t1 -c"$per" -d"${SECS}s" "https://t$i.localhost:$port/1k.bin" > "$OUT/wrk-$workers-$round-$i.txt" 2>&1 &
    else
      pin "$LOAD_CPUS" wrk -t1 -c"$per" -d"${SECS}s" -H "Host: t$i.localhost" "https://127.0.0.1:$port/1k.bin" \
        > "$OUT/wrk-$workers-$round-$i.txt" 2>&1 &
    fi
    wrks+=($!)
  done
  for p in "${wrks[@]}"; do wait "$p" || true; done
  cpu1=$(tree_cpu_ns "$edge_pid")
  local reqs=0 errs=0 n
  for ((i = 0; i < AGENTS; i++)); do
    n=$(awk '/requests in/ { print $1 }' "$OUT/wrk-$workers-$round-$i.txt")
    reqs=$((reqs + ${n:-0}))
    grep -qE 'Socket errors|Non-2xx' "$OUT/wrk-$workers-$round-$i.txt" && errs=$((errs + 1))
  done
  local rps cpu_us hops split
  rps=$(awk -v r="$reqs" -v s="$SECS" 'BEGIN { printf "%.0f", r / s }')
  cpu_us=$(awk -v a="$cpu0" -v b="$cpu1" -v r="$reqs" 'BEGIN { if (r) printf "%.1f", (b - a) / 1000 / r; else print "n/a" }')
  # Where the edge's CPU went: each thread's share of the ticks it used during the load.
  split=$(join <(echo "$ticks0") <(thread_ticks "$edge_pid" | sort -k1,1) |
    awk '{ d = $5 - $3; t[NR] = d; s += d } END { for (i = 1; i <= NR; i++) if (t[i] > 0) printf "%s%.0f%%", (o++ ? "/" : ""), 100 * t[i] / s }')
  local admin
  admin=$(grep -m1 -oE 'admin: http://127\.0\.0\.1:[0-9]+' "$OUT/edge-$workers-$round.log" | grep -oE '[0-9]+$' || true)
  hops=$(curl -s -m 5 "http://127.0.0.1:$admin/metrics" | awk '$1 == "wtmesh_worker_hops_total" { print $2 }')
  raw "w$workers" rps "$rps"
  raw "w$workers" cpu_us "$cpu_us"
  local crossed
  crossed=$(awk -v h="${hops:-0}" -v r="$reqs" 'BEGIN { if (r) printf "%.0f%%", 100 * h / r; else print "n/a" }')
  log "workers=$workers round=$round: $rps req/s, edge ${cpu_us} us CPU/request, threads ${split:-?}, $crossed crossed workers, wrk errors in $errs run(s)"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$workers" "$round" "$rps" "$cpu_us" "${split:-?}" "$crossed" >> "$OUT/rows.tsv"
  kill -TERM "$edge_pid" "${agents[@]}" 2> /dev/null || true
  for p in "$edge_pid" "${agents[@]}"; do
    for ((i = 0; i < 50; i++)); do alive "$p" || break; sleep 0.1; done
  done
}

if ((SNI)); then
  [[ $(id -u) == 0 ]] && command -v unshare > /dev/null || die "--sni needs root and unshare (a private /etc/hosts for wrk)"
  { cat /etc/hosts; for ((i = 0; i < AGENTS; i++)); do echo "127.0.0.1 t$i.localhost"; done; } > "$BENCH_TMP/hosts"
fi
IFS=, read -r -a counts <<< "$WORKER_LIST"
for ((round = 1; round <= ROUNDS; round++)); do
  for w in "${counts[@]}"; do run_one "$w" "$round"; done
done

echo
echo "wtmesh edge --workers: $AGENTS agents, $CONNS wrk connections over HTTPS (keep-alive, 1 KiB), ${SECS}s each$( ((SNI)) && echo ", SNI (steered)")"
echo "  edge pinned to: ${EDGE_CPUS:-any core}; load, agents and origin: ${LOAD_CPUS:-any core}; $(nproc) cores"
printf '  %-8s %10s %14s %8s %9s   %s\n' workers "req/s" "edge us/req" "vs first" "crossed" "edge threads' CPU share (last round)"
base=$(raw_median w"${counts[0]}" rps)
for w in "${counts[@]}"; do
  r=$(raw_median "w$w" rps)
  c=$(raw_median "w$w" cpu_us)
  s=$(awk -F'\t' -v w="$w" '$1 == w { s = $5 } END { print s }' "$OUT/rows.tsv")
  x=$(awk -F'\t' -v w="$w" '$1 == w { s = $6 } END { print s }' "$OUT/rows.tsv")
  printf '  %-8s %10s %14s %8s %9s   %s\n' "$w" "$r" "$c" "$(ratio "$r" "$base")x" "$x" "$s"
done
