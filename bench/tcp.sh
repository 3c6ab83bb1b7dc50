#!/usr/bin/env bash
# bench/tcp.sh: TCP and UDP tunnels side by side in one run: iperf3 (bulk, both directions) and
# redis-benchmark (many small requests on many connections) against the same local iperf3 and
# redis-server, reached directly, through an `ssh -R` reverse tunnel (AES-GCM), and through `wtmesh tcp`
# twice: with QUIC's default 1452-byte packets and with 64 KiB packets (loopback's MTU allows them;
# `--max-udp-payload`); then iperf3 UDP at a fixed rate, directly and through `wtmesh udp` (loss and
# jitter; ssh forwards no UDP).
# Prints one table with ratios and keeps the raw numbers. See bench/README.md ("TCP tunnels").
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
usage: bench/tcp.sh [--quick] [options]
  --quick            ~1 minute smoke run (1 round, 3 s of iperf3, 20000 redis requests)
  --rounds N         rounds per target, interleaved across targets; medians are reported (default 3)
  --secs S           seconds of each iperf3 run (default 8)
  --redis-requests N requests per redis-benchmark test (SET and GET; default 100000)
  --redis-clients N  redis-benchmark connections (default 50)
  --udp-rate R       iperf3 UDP rate, iperf3 units (default 100M); 1200-byte packets
  --wtmesh PATH      wtmesh binary (default: \$REPO/build-bench/wtmesh)
  --only LIST        comma-separated subset of: direct,ssh,wtmesh,wtmesh_jumbo
  --ssh-cipher C     cipher for ssh -R (default aes128-gcm@openssh.com)
  --out DIR          keep logs, raw.tsv and the report in DIR (default: a temp dir, removed on exit)
  --wait-quiet S     first wait up to S seconds for the 1-minute load average to drop below 1.0
Environment: WTMESH_GLOBAL_ARGS (default "--log-level warn").
EOF
}

ROUNDS=3 SECS=8 REDIS_N=100000 REDIS_C=50 UDP_RATE=100M WTMESH="" ONLY="" SSH_CIPHER=aes128-gcm@openssh.com OUT_DIR=""
WAIT_QUIET=0
while (($#)); do
  case $1 in
    --quick) ROUNDS=1 SECS=3 REDIS_N=20000 ;;
    --rounds) ROUNDS=$2; shift ;;
    --secs) SECS=$2; shift ;;
    --redis-requests) REDIS_N=$2; shift ;;
    --redis-clients) REDIS_C=$2; shift ;;
    --udp-rate) UDP_RATE=$2; shift ;;
    --wtmesh) WTMESH=$2; shift ;;
    --only) ONLY=",$2,"; shift ;;
    --ssh-cipher) SSH_CIPHER=$2; shift ;;
    --out) OUT_DIR=$2; shift ;;
    --wait-quiet) WAIT_QUIET=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
for v in ROUNDS SECS REDIS_N REDIS_C; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
[[ "$WAIT_QUIET" =~ ^[0-9]+$ ]] || die "--wait-quiet takes seconds"
[[ "$UDP_RATE" =~ ^[0-9]+[KMG]?$ ]] || die "--udp-rate takes a rate such as 100M"
wanted() { [[ -z "$ONLY" || "$ONLY" == *",$1,"* ]]; }
WTMESH_GLOBAL_ARGS=${WTMESH_GLOBAL_ARGS---log-level warn}
WTMESH=${WTMESH:-$REPO_DIR/build-bench/wtmesh}
for tool in iperf3 redis-server redis-benchmark redis-cli /usr/sbin/sshd ssh ssh-keygen python3 ss; do
  command -v "$tool" > /dev/null || die "missing tool: $tool (scripts/setup.sh installs it)"
done

bench_start wtmesh-bench-tcp
wait_quiet "$WAIT_QUIET"
started=$SECONDS

# --- the services ------------------------------------------------------------------------------------
free_port IPERF_PORT
spawn iperf3 iperf3 -s -p "$IPERF_PORT" --bind 127.0.0.1
wait_tcp "$IPERF_PORT" 10 || die "iperf3 -s did not start (see $OUT/iperf3.log)"
free_port REDIS_PORT
spawn redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$BENCH_TMP"
wait_tcp "$REDIS_PORT" 10 || die "redis-server did not start (see $OUT/redis.log)"

# --- the ways to reach them: T_IPERF/T_REDIS (ports), T_ROOTS (the proxy's processes), T_NOTE --------
declare -A T_IPERF T_REDIS T_UDP
target() {  # target NAME IPERF_PORT REDIS_PORT ROOTS NOTE [UDP]: UDP=1 when iperf3 -u works through it
  TARGETS+=("$1")
  T_IPERF[$1]=$2 T_REDIS[$1]=$3 T_ROOTS[$1]=$4 T_NOTE[$1]=$5 T_UDP[$1]=${6:-0}
}
TARGETS=()
wanted direct && target direct "$IPERF_PORT" "$REDIS_PORT" "" "no proxy" 1
if wanted ssh; then
  start_sshd
  free_port SSH_IPERF
  free_port SSH_REDIS
  ssh_reverse "$SSH_IPERF:$IPERF_PORT" "$SSH_REDIS:$REDIS_PORT"
  target ssh "$SSH_IPERF" "$SSH_REDIS" "$SSHD_PID $SSH_PID" "ssh -R, $SSH_NEGOTIATED"
fi

# start_wtmesh_tcp NAME MAX_UDP_PAYLOAD: an edge and one agent (`wtmesh agent --config`, one session)
# publishing iperf3 and redis as tcp tunnels on ports chosen here, and iperf3 once more as a udp tunnel
# on the same port number (its UDP test keeps its control connection on TCP), when the binary has udp.
start_wtmesh_tcp() {
  local name=$1 payload=$2 dir=$BENCH_TMP/$1 edge_port iport rport token udp=0 udp_ports=()
  mkdir -p "$dir"
  if "$WTMESH" udp --help > /dev/null 2>&1; then udp=1 udp_ports=(--udp-ports 10000-32767); fi
  free_port edge_port
  free_port iport
  free_port rport
  # shellcheck disable=SC2086
  spawn "$name-edge" "$WTMESH" $WTMESH_GLOBAL_ARGS edge --listen "127.0.0.1:$edge_port" --domain localhost \
    --state-dir "$dir/state" --tcp-ports 10000-32767 "${udp_ports[@]}" --max-udp-payload "$payload" \
    $(edge_workers_args)
  local edge_pid=$SPAWNED_PID
  wait_file "$dir/state/ca.pem" 20 || die "wtmesh edge wrote no ca.pem (see $OUT/$name-edge.log)"
  wait_tcp "$edge_port" 20 || die "wtmesh edge did not listen (see $OUT/$name-edge.log)"
  token=$("$WTMESH" token --state-dir "$dir/state" --name '*' --ttl 1h 2> "$OUT/$name-token.log" |
    grep -Eo '[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+' | tail -1)
  [[ -n "$token" ]] || die "wtmesh token printed no token (see $OUT/$name-token.log)"
  cat > "$dir/agent.yaml" <<EOF
edge: https://127.0.0.1:$edge_port
ca: $dir/state/ca.pem
token: $token
tunnels:
  - name: iperf
    type: tcp
    local_port: $IPERF_PORT
    remote_port: $iport
  - name: redis
    type: tcp
    local_port: $REDIS_PORT
    remote_port: $rport
EOF
  ((udp)) && printf '  - name: iperf\n    type: udp\n    local_port: %s\n    remote_port: %s\n' \
    "$IPERF_PORT" "$iport" >> "$dir/agent.yaml"
  # shellcheck disable=SC2086
  spawn "$name-agent" "$WTMESH" $WTMESH_GLOBAL_ARGS agent --config "$dir/agent.yaml" --max-udp-payload "$payload"
  local agent_pid=$SPAWNED_PID
  { wait_tcp "$iport" 20 && wait_tcp "$rport" 20; } || die "wtmesh tcp tunnels did not open (see $OUT/$name-agent.log)"
  target "$name" "$iport" "$rport" "$edge_pid $agent_pid" "edge+agent, QUIC packets up to $payload bytes" "$udp"
}
if [[ -x "$WTMESH" ]] && "$WTMESH" tcp --help > /dev/null 2>&1; then
  wanted wtmesh && start_wtmesh_tcp wtmesh 1452
  wanted wtmesh_jumbo && start_wtmesh_tcp wtmesh_jumbo 65507
else
  log "skipping wtmesh: no binary with a 'tcp' subcommand at $WTMESH (cmake --build build-bench --target wtmesh)"
fi
((${#TARGETS[@]})) || die "no targets selected"

{
  echo "commit: $(git -C "$REPO_DIR" rev-parse --short HEAD 2> /dev/null || echo unknown)"
  echo "kernel: $(uname -r); cpu: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo) x $(nproc)"
  echo "tools: $(iperf3 --version | head -1 | cut -d' ' -f1-2), redis $(redis-server --version | grep -oE 'v=[0-9.]+'), $(ssh -V 2>&1 | cut -d, -f1)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the box skews everything)"
  echo "wtmesh: $WTMESH (global args: $WTMESH_GLOBAL_ARGS)"
} > "$OUT/env.txt"
cat "$OUT/env.txt" >&2

# --- measurements --------------------------------------------------------------------------------------
# iperf_run TARGET up|down TAG: one iperf3 TCP stream for SECS seconds (down = -R: the service sends);
# records Gbit/s received, the proxy's CPU ticks and bytes, and the box's UDP receive-buffer drops (QUIC
# packets the kernel threw away because a wtmesh socket was not read in time).
iperf_run() {
  local t=$1 dir=$2 tag=$3 file="$OUT/iperf-$1-$2-$3.json" args=() p0 p1 parsed d0 d1 x
  [[ "$dir" == down ]] && args=(-R)
  read -r d0 x x <<< "$(udp_drops)"
  # shellcheck disable=SC2086
  p0=$(tree_ticks ${T_ROOTS[$t]:-})
  timeout $((SECS + 30)) iperf3 -c 127.0.0.1 -p "${T_IPERF[$t]}" -t "$SECS" -J "${args[@]}" > "$file" 2>&1 ||
    log "iperf3 on $t ($dir) exited non-zero"
  # shellcheck disable=SC2086
  p1=$(tree_ticks ${T_ROOTS[$t]:-})
  read -r d1 x x <<< "$(udp_drops)"
  parsed=$(python3 -c 'import json,sys
e = json.load(open(sys.argv[1]))["end"]["sum_received"]
print("%.3f %d" % (e["bits_per_second"] / 1e9, e["bytes"]))' "$file" 2> /dev/null) ||
    { log "could not parse $file"; return 0; }
  read -r gbps bytes <<< "$parsed"
  raw "$t" "tcp_${dir}_gbps" "$gbps"
  raw "$t" "tcp_${dir}_bytes" "$bytes"
  raw "$t" "tcp_${dir}_ticks" "$((p1 - p0))"
  raw "$t" "tcp_${dir}_udp_rcvbuf_drops" "$((d1 - d0))"
  log "$t iperf3 $dir $tag: $gbps Gbit/s, proxy CPU $((p1 - p0)) ticks, UDP datagrams dropped for a full receive buffer on the box: $((d1 - d0))"
}

# redis_run TARGET TAG: redis-benchmark -c REDIS_C -n REDIS_N -t set,get; records SET+GET ops/s summed,
# requests done and the proxy's CPU ticks.
redis_run() {
  local t=$1 tag=$2 file="$OUT/redis-$1-$2.txt" p0 p1 ops n
  # shellcheck disable=SC2086
  p0=$(tree_ticks ${T_ROOTS[$t]:-})
  timeout 300 redis-benchmark -h 127.0.0.1 -p "${T_REDIS[$t]}" -c "$REDIS_C" -n "$REDIS_N" -t set,get -q \
    > "$file" 2>&1 || log "redis-benchmark on $t exited non-zero"
  # shellcheck disable=SC2086
  p1=$(tree_ticks ${T_ROOTS[$t]:-})
  # -q rewrites a progress line with \r; each test's final figure is "NAME: N requests per second".
  read -r n ops <<< "$(tr '\r' '\n' < "$file" | grep -oE '^(SET|GET): [0-9.]+ requests per second' |
    awk '{ last[$1] = $2 } END { for (k in last) { n++; s += last[k] } printf "%d %.0f", n, s }')"
  [[ "$n" == 2 ]] || { log "redis-benchmark on $t reported $n of 2 figures (see $file)"; return 0; }
  raw "$t" redis_ops "$ops"
  raw "$t" redis_requests "$((2 * REDIS_N))"
  raw "$t" redis_ticks "$((p1 - p0))"
  log "$t redis $tag: $ops ops/s (SET+GET), proxy CPU $((p1 - p0)) ticks"
}

# udp_run TARGET TAG: iperf3 -u at UDP_RATE for SECS seconds with 1200-byte packets; records the loss
# and jitter the server saw.
udp_run() {
  local t=$1 tag=$2 file="$OUT/iperf-udp-$1-$2.json" parsed loss jitter packets
  timeout $((SECS + 30)) iperf3 -c 127.0.0.1 -p "${T_IPERF[$t]}" -u -b "$UDP_RATE" -l 1200 -t "$SECS" -J \
    > "$file" 2>&1 || log "iperf3 -u on $t exited non-zero"
  parsed=$(python3 -c 'import json,sys
s = json.load(open(sys.argv[1]))["end"]["sum"]
print("%.3f %.4f %d" % (s["lost_percent"], s["jitter_ms"], s["packets"]))' "$file" 2> /dev/null) ||
    { log "could not parse $file"; return 0; }
  read -r loss jitter packets <<< "$parsed"
  raw "$t" udp_loss_pct "$loss"
  raw "$t" udp_jitter_ms "$jitter"
  log "$t iperf3 udp $tag: $loss % of $packets packets lost, jitter $jitter ms"
}

n=${#TARGETS[@]}
log "warm-up: one short iperf3 run per target"
for t in "${TARGETS[@]}"; do
  timeout 20 iperf3 -c 127.0.0.1 -p "${T_IPERF[$t]}" -t 1 > /dev/null 2>&1 || log "warm-up iperf3 on $t failed"
done
for ((r = 1; r <= ROUNDS; r++)); do
  log "round $r of $ROUNDS"
  for ((i = 0; i < n; i++)); do
    t=${TARGETS[$(((i + r - 1) % n))]}
    iperf_run "$t" up "r$r"
    iperf_run "$t" down "r$r"
    redis_run "$t" "r$r"
    if ((T_UDP[$t])); then udp_run "$t" "r$r"; fi
  done
done

# --- report ----------------------------------------------------------------------------------------------
# med TARGET KEY: the median of the raw values; sum TARGET KEY: their sum.
med() { raw_median "$@"; }
med_or_dash() { local v; v=$(med "$1" "$2"); echo "${v:--}"; }
sum() { awk -F'\t' -v t="$1" -v k="$2" '$1 == t && $2 == k { s += $3 } END { printf "%.0f", s }' "$OUT/raw.tsv"; }
# per TICKS_KEY AMOUNT_KEY SCALE: CPU ms per (amount / scale) for target $t, "-" without a proxy.
per() {
  local ticks amount
  ticks=$(sum "$t" "$1") amount=$(sum "$t" "$2")
  [[ -n "${T_ROOTS[$t]}" && "$amount" != 0 ]] || { echo -; return; }
  awk -v c="$ticks" -v a="$amount" -v s="$3" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", c * 1000 / hz / (a / s) }'
}
# ratio_x A B: "1.23x", or "-" (lib/common.sh's ratio prints "1.23" or "n/a").
ratio_x() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2fx", a / b }'; }
{
  printf '%-13s %10s %10s %11s %12s %10s %10s %10s   %s\n' target "up Gbit/s" "down" "CPU ms/GiB" "redis ops/s" \
    "CPU us/op" "UDP loss%" "jitter ms" note
  for t in "${TARGETS[@]}"; do
    printf '%-13s %10s %10s %11s %12s %10s %10s %10s   %s\n' "$t" "$(med "$t" tcp_up_gbps)" \
      "$(med "$t" tcp_down_gbps)" "$(per tcp_up_ticks tcp_up_bytes 1073741824)" "$(med "$t" redis_ops)" \
      "$(per redis_ticks redis_requests 1000)" "$(med_or_dash "$t" udp_loss_pct)" \
      "$(med_or_dash "$t" udp_jitter_ms)" "${T_NOTE[$t]}"
  done
  echo
  echo "(medians of $ROUNDS round(s); iperf3 one TCP stream for ${SECS}s each way; redis-benchmark -c $REDIS_C" \
    "-n $REDIS_N -t set,get, SET and GET ops/s summed; CPU = the proxy's processes, utime+stime from /proc;" \
    "CPU ms/GiB from the upload runs; CPU us/op is per request; UDP: iperf3 -u -b $UDP_RATE -l 1200 for" \
    "${SECS}s, loss and jitter as its server saw them)"
  if [[ -n "${T_IPERF[ssh]:-}" ]]; then
    for w in wtmesh wtmesh_jumbo; do
      [[ -n "${T_IPERF[$w]:-}" ]] || continue
      echo "$w vs ssh -R: upload $(ratio_x "$(med $w tcp_up_gbps)" "$(med ssh tcp_up_gbps)")," \
        "download $(ratio_x "$(med $w tcp_down_gbps)" "$(med ssh tcp_down_gbps)")," \
        "redis $(ratio_x "$(med $w redis_ops)" "$(med ssh redis_ops)")"
    done
  fi
  echo
  echo "environment:"
  echo "  load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  sed 's/^/  /' "$OUT/env.txt"
} | tee "$OUT/report.txt"
echo "  wall time: $((SECONDS - started)) s; logs and raw numbers: $OUT$([[ -z "$OUT_DIR" ]] && echo ' (temp, removed on exit: use --out DIR to keep)')"
