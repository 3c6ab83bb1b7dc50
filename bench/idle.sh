#!/usr/bin/env bash
# bench/idle.sh: what an idle agent session costs the edge (issue 15 item 4). One edge, and one
# process (bench/agents/idle_agents, real agent::TunnelAgent sessions, each from its own UDP port)
# holding N registered agent sessions that carry no requests. Once every tunnel is registered and the
# edge has settled, it measures over a window:
#   - edge memory: VmRSS and RssAnon before any session and with N, per session;
#   - edge CPU per session per second (schedstat ns of every thread), and QUIC packets per session
#     per second both ways (the edge's wtmesh_quic_packets_total);
#   - with --syscalls, the edge's system calls and wake-ups per session per second (perf stat);
#   - the load tool's own RSS per session (the agent library's footprint, informative).
# Goals (issue 15): edge memory <= 32 KiB per idle session at 10k sessions; idle CPU per session ~ 0
# between heartbeats.
#
#   bench/idle.sh                       1000 sessions, a 30 s window
#   bench/idle.sh --sessions 10000      the issue's figure (ulimit -n >= 10100; ~1 min to open)
#   bench/idle.sh --sessions 2000,10000 several sizes, one edge each, one table
# shellcheck source=lib/common.sh
# shellcheck source=lib/cpu.sh
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
source "$BENCH_DIR/lib/common.sh"
source "$BENCH_DIR/lib/cpu.sh"

usage() {
  cat <<EOF
usage: bench/idle.sh [options]
  --sessions N[,N...]  idle agent sessions to hold (default 1000); several: one run each
  --window S           seconds to measure CPU and packets over once settled (default 30)
  --settle S           seconds to wait after the last registration before measuring (default 45: an
                       agent slows its keep-alive after 30 s without requests, at a heartbeat tick)
  --rate R             new sessions per second while opening, a whole number (default 200)
  --syscalls           also count the edge's system calls and wake-ups (perf stat)
  --wtmesh PATH        the wtmesh binary (default \$REPO/build/wtmesh)
  --tool PATH          the load tool (default beside it: bench/agents/idle_agents)
  --out DIR            keep logs and the report in DIR
EOF
}

SIZES=1000 WINDOW=30 SETTLE=45 RATE=200 SYSCALLS=0 OUT_DIR=""
WTMESH=$REPO_DIR/build/wtmesh TOOL=""
# shellcheck disable=SC2034  # OUT_DIR is read by bench_start (lib/common.sh)
while (($#)); do
  case $1 in
    --sessions) SIZES=$2; shift ;;
    --window) WINDOW=$2; shift ;;
    --settle) SETTLE=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --syscalls) SYSCALLS=1 ;;
    --wtmesh) WTMESH=$2; shift ;;
    --tool) TOOL=$2; shift ;;
    --out) OUT_DIR=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
[[ -n "$TOOL" ]] || TOOL=$(dirname "$WTMESH")/bench/agents/idle_agents
[[ -x "$WTMESH" ]] || die "no wtmesh binary at $WTMESH (cmake --build build)"
[[ -x "$TOOL" ]] || die "no load tool at $TOOL (cmake --build build --target idle_agents)"
bench_start wtmesh-idle

metric() {  # metric NAME LABELS: a counter from the edge's /metrics (0 when absent)
  curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" |
    awk -v n="$1" -v l="$2" '$1 == n l { print $2; f = 1 } END { if (!f) print 0 }'
}
anon_kb() { awk '/^RssAnon:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# run_size N: one edge, N sessions, one row of figures in $OUT/raw.tsv under target "N".
run_size() {
  local n=$1 dir=$BENCH_TMP/edge-$1
  mkdir -p "$dir"
  free_port EDGE_PORT
  free_port ADMIN_PORT
  # The limits an edge puts on one address are raised (every session comes from 127.0.0.1); the ones
  # per token subject are not: the sessions spread over one token subject per 100 (the default
  # --max-sessions-per-subject), as 10k real agents would have many owners.
  spawn "edge-$n" "$WTMESH" edge --listen "127.0.0.1:$EDGE_PORT" --domain localhost --state-dir "$dir" \
    --admin-listen "127.0.0.1:$ADMIN_PORT" --quic-max-connections $((n + 1000)) \
    --quic-max-connections-per-ip $((n + 100)) --quic-handshake-burst $((n + 100)) \
    --quic-handshakes-per-ip 100000 $(edge_workers_args)
  local edge_pid=$SPAWNED_PID
  wait_tcp "$EDGE_PORT" 20 || { tail -20 "$OUT/edge-$n.log" >&2; die "the edge did not listen"; }
  wait_file "$dir/ca.pem" 20 || die "the edge wrote no ca.pem"
  local k token_args=()
  for ((k = 0; k < (n + 99) / 100; k++)); do
    "$WTMESH" token --state-dir "$dir" --name '*' --subject "idle-$k" --ttl 2h 2> "$OUT/token.log" |
      grep -Eo '[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+' | tail -1 > "$dir/token-$k"
    [[ -s "$dir/token-$k" ]] || { cat "$OUT/token.log" >&2; die "wtmesh token printed no token"; }
    token_args+=(--token-file "$dir/token-$k")
  done
  sleep 6  # one memory check of the edge (5 s) since start
  local rss0 anon0
  rss0=$(rss_kb "$edge_pid") anon0=$(anon_kb "$edge_pid")

  spawn "tool-$n" "$TOOL" --edge "https://localhost:$EDGE_PORT" --ca "$dir/ca.pem" "${token_args[@]}" \
    --sessions "$n" --rate "$RATE" --report 5
  local tool_pid=$SPAWNED_PID
  local deadline=$((SECONDS + 60 + n * 3 / RATE))
  until grep -q '^ready ' "$OUT/tool-$n.log"; do
    alive "$tool_pid" || { tail -20 "$OUT/tool-$n.log" >&2; die "the load tool ended before it was ready"; }
    ((SECONDS < deadline)) || { tail -5 "$OUT/tool-$n.log" >&2; die "$n sessions not ready in time"; }
    sleep 1
  done
  log "$(grep '^ready ' "$OUT/tool-$n.log")"
  sleep "$SETTLE"
  local sessions
  sessions=$(metric wtmesh_agent_sessions "")
  [[ "$sessions" == "$n" ]] || log "warning: the edge holds $sessions agent sessions, not $n"
  local rss1 anon1 cpu0 cpu1 in0 in1 out0 out1 t0 t1 perf_pid=""
  rss1=$(rss_kb "$edge_pid") anon1=$(anon_kb "$edge_pid")
  in0=$(metric wtmesh_quic_packets_total '{direction="in"}')
  out0=$(metric wtmesh_quic_packets_total '{direction="out"}')
  if ((SYSCALLS)); then
    perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$edge_pid" -o "$OUT/perf-$n.txt" \
      -- sleep "$WINDOW" &
    perf_pid=$!
  fi
  cpu0=$(tree_cpu_ns "$edge_pid") t0=$(date +%s%N)
  sleep "$WINDOW"
  cpu1=$(tree_cpu_ns "$edge_pid") t1=$(date +%s%N)
  in1=$(metric wtmesh_quic_packets_total '{direction="in"}')
  out1=$(metric wtmesh_quic_packets_total '{direction="out"}')
  [[ -n "$perf_pid" ]] && wait "$perf_pid"
  local secs reconnects tool_rss
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (b - a) / 1e9 }')
  reconnects=$(awk '/^held / { r = $4 } END { print r + 0 }' "$OUT/tool-$n.log")
  tool_rss=$(rss_kb "$tool_pid")
  raw "$n" rss_kib_per_session "$(awk -v a="$rss0" -v b="$rss1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')"
  raw "$n" anon_kib_per_session "$(awk -v a="$anon0" -v b="$anon1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')"
  raw "$n" edge_rss_mib "$(awk -v b="$rss1" 'BEGIN { printf "%.1f", b / 1024 }')"
  raw "$n" cpu_us_per_session_s "$(awk -v c="$((cpu1 - cpu0))" -v s="$secs" -v n="$n" 'BEGIN { printf "%.2f", c / 1e3 / s / n }')"
  raw "$n" edge_cpu_pct "$(awk -v c="$((cpu1 - cpu0))" -v s="$secs" 'BEGIN { printf "%.1f", c / 1e7 / s }')"
  raw "$n" pkts_in_per_session_s "$(awk -v d="$((in1 - in0))" -v s="$secs" -v n="$n" 'BEGIN { printf "%.3f", d / s / n }')"
  raw "$n" pkts_out_per_session_s "$(awk -v d="$((out1 - out0))" -v s="$secs" -v n="$n" 'BEGIN { printf "%.3f", d / s / n }')"
  raw "$n" tool_kib_per_session "$(awk -v b="$tool_rss" -v n="$n" 'BEGIN { printf "%.1f", b / n }')"
  raw "$n" reconnects "$reconnects"
  if ((SYSCALLS)); then
    raw "$n" syscalls_per_session_s "$(awk -F, -v s="$secs" -v n="$n" '$3 == "raw_syscalls:sys_enter" { printf "%.2f", $1 / s / n }' "$OUT/perf-$n.txt")"
    raw "$n" wakeups_per_session_s "$(awk -F, -v s="$secs" -v n="$n" '$3 == "context-switches" { printf "%.3f", $1 / s / n }' "$OUT/perf-$n.txt")"
  fi
  kill -TERM "$tool_pid" "$edge_pid" 2>/dev/null || true
  sleep 1
}

IFS=, read -r -a sizes <<<"$SIZES"
for n in "${sizes[@]}"; do
  [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 ]] || die "--sessions takes numbers: $SIZES"
  log "holding $n idle agent sessions"
  run_size "$n"
done

{
  echo "Idle agent sessions on one edge ($(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo '?'), window ${WINDOW} s)"
  keys=(edge_rss_mib rss_kib_per_session anon_kib_per_session cpu_us_per_session_s edge_cpu_pct
    pkts_in_per_session_s pkts_out_per_session_s tool_kib_per_session reconnects)
  ((SYSCALLS)) && keys+=(syscalls_per_session_s wakeups_per_session_s)
  printf '%-24s' "sessions"
  for n in "${sizes[@]}"; do printf '%12s' "$n"; done
  echo
  for k in "${keys[@]}"; do
    printf '%-24s' "$k"
    for n in "${sizes[@]}"; do printf '%12s' "$(raw_median "$n" "$k")"; done
    echo
  done
  echo "goals: rss_kib_per_session <= 32 at 10000; cpu per idle session ~ 0 between heartbeats"
} | tee "$OUT/report.txt"
