#!/usr/bin/env bash
# bench/run.sh: side-by-side benchmark of the wtmesh HTTP tunnel against direct access, an nginx one-hop
# reverse proxy (plain and TLS) and an `ssh -R` reverse tunnel, all in one run against the same local nginx
# origin on 127.0.0.1. Prints one table plus the raw numbers. See bench/README.md for the method.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"
# shellcheck source=lib/cpu.sh
source "$BENCH_DIR/lib/cpu.sh"
# shellcheck source=lib/targets.sh
source "$BENCH_DIR/lib/targets.sh"
# shellcheck source=lib/measure.sh
source "$BENCH_DIR/lib/measure.sh"
# shellcheck source=lib/report.sh
source "$BENCH_DIR/lib/report.sh"
# shellcheck source=lib/versions.sh
source "$BENCH_DIR/lib/versions.sh"

usage() {
  cat <<EOF
usage: bench/run.sh [--quick] [options]
  --quick            ~1 minute smoke run (1 round of 3 s, 1 bulk download, 4 s fixed rate)
  --rounds N         wrk rounds per target, interleaved across targets (default 3)
  --duration S       seconds per wrk round (default 10)
  --bulk-runs N      100 MiB downloads per target; the best counts (default 3)
  --fixed-rate R     request rate of the fixed-rate phase (default 1000)
  --fixed-secs S     seconds of the fixed-rate phase (default 10)
  --wtmesh PATH      wtmesh binary (default: \$REPO/build-bench/wtmesh, else the newest build-*/wtmesh)
  --no-wtmesh        measure only the baselines
  --only LIST        comma-separated subset of: direct,nginx,nginx_tls,ssh,wtmesh,wtmesh_http,wtmesh_h2c
                     (the HTTP/2 public phase runs for nginx_tls and wtmesh, the HTTP/3 one for wtmesh)
  --no-versions      skip the HTTP/2 (h2load) and HTTP/3 (gtlsclient) public phases
  --ssh-cipher C     cipher for ssh -R (default aes128-gcm@openssh.com)
  --profile          also record a perf (cpu-clock) profile of the edge and the agent under wrk
  --out DIR          keep logs, raw.tsv and the report in DIR (default: a temp dir, removed on exit)
  --keep-tmp         do not remove the temp dir (configs, state, logs)
  --wait-quiet S     first wait up to S seconds for the 1-minute load average to drop below 1.0
Environment: WTMESH_GLOBAL_ARGS (default "--log-level warn"), WTMESH_EDGE_ARGS, WTMESH_HTTP_ARGS.
EOF
}

MODE=full ROUNDS=3 WRK_SECS=10 WARM_SECS=2 BULK_RUNS=3 FIXED_RATE=1000 FIXED_SECS=10
WAIT_QUIET=0 WTMESH="" USE_WTMESH=1 VERSIONS=1 ONLY="" SSH_CIPHER=aes128-gcm@openssh.com PROFILE=0 OUT_DIR=""
while (($#)); do
  case "$1" in
    --quick) MODE=quick ROUNDS=1 WRK_SECS=3 WARM_SECS=1 BULK_RUNS=1 FIXED_SECS=4 ;;
    --rounds) ROUNDS=$2; shift ;;
    --duration) WRK_SECS=$2; shift ;;
    --bulk-runs) BULK_RUNS=$2; shift ;;
    --fixed-rate) FIXED_RATE=$2; shift ;;
    --fixed-secs) FIXED_SECS=$2; shift ;;
    --wtmesh) WTMESH=$2; shift ;;
    --no-wtmesh) USE_WTMESH=0 ;;
    --no-versions) VERSIONS=0 ;;
    --only) ONLY=",$2,"; shift ;;
    --ssh-cipher) SSH_CIPHER=$2; shift ;;
    --profile) PROFILE=1 ;;
    --out) OUT_DIR=$2; shift ;;
    --keep-tmp) KEEP_TMP=1 ;;
    --wait-quiet) WAIT_QUIET=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
[[ "$WAIT_QUIET" =~ ^[0-9]+$ ]] || die "--wait-quiet takes seconds"
for v in ROUNDS WRK_SECS BULK_RUNS FIXED_RATE FIXED_SECS; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
wanted() { [[ -z "$ONLY" || "$ONLY" == *",$1,"* ]]; }

WTMESH_GLOBAL_ARGS=${WTMESH_GLOBAL_ARGS---log-level warn}
WTMESH_EDGE_ARGS=${WTMESH_EDGE_ARGS-}
WTMESH_HTTP_ARGS=${WTMESH_HTTP_ARGS-}
BULK_BYTES=$((100 * 1024 * 1024))
BULK_TIMEOUT=120
PYTHON=/usr/bin/python3
[[ -x "$PYTHON" ]] || PYTHON=$(command -v python3)

for tool in wrk curl nginx /usr/sbin/sshd ssh ssh-keygen openssl ss ps "$PYTHON"; do
  command -v "$tool" > /dev/null || die "missing tool: $tool"
done

# Only the build made for the bench (bench/README.md: RelWithDebInfo, static deps) is picked by default:
# Debug/sanitizer builds of other build dirs would measure the sanitizers. Use --wtmesh PATH for others.
if ((USE_WTMESH)) && [[ -z "$WTMESH" ]]; then WTMESH=$REPO_DIR/build-bench/wtmesh; fi
WTMESH_BUILD=unknown
if [[ -n "$WTMESH" && -f "$(dirname "$WTMESH")/CMakeCache.txt" ]]; then
  WTMESH_BUILD=$(awk -F= '/^CMAKE_BUILD_TYPE:/ { print $2 }' "$(dirname "$WTMESH")/CMakeCache.txt")
  if grep -q '^WTMESH_STATIC_DEPS:BOOL=ON' "$(dirname "$WTMESH")/CMakeCache.txt"; then
    WTMESH_BUILD="$WTMESH_BUILD, static deps"
  else
    WTMESH_BUILD="$WTMESH_BUILD, shared deps"
  fi
fi

bench_start wtmesh-bench
wait_quiet "$WAIT_QUIET"
started=$SECONDS
read -r udp_rcv0 udp_snd0 udp_in0 <<< "$(udp_drops)"
{
  echo "commit: $(git -C "$REPO_DIR" rev-parse --short HEAD 2> /dev/null || echo unknown)" \
    "(working tree $(git -C "$REPO_DIR" status --porcelain 2> /dev/null | wc -l) changed files)"
  echo "kernel: $(uname -r); cpu: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo) x $(nproc)"
  echo "lo mtu: $(cat /sys/class/net/lo/mtu); tools: $(nginx -v 2>&1 | cut -d' ' -f3), $(ssh -V 2>&1 | cut -d, -f1)," \
    "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), curl $(curl --version | head -1 | cut -d' ' -f2)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the box skews everything)"
  echo "wtmesh: ${WTMESH:-none} (build type ${WTMESH_BUILD:-unset}; global args: $WTMESH_GLOBAL_ARGS; edge: ${WTMESH_EDGE_ARGS:-none}; http: ${WTMESH_HTTP_ARGS:-none})"
} > "$OUT/env.txt"
cat "$OUT/env.txt" >&2

start_origin
wanted nginx || wanted nginx_tls && start_nginx_proxy
wanted ssh && start_ssh
WTMESH_SKIP_REASON=""
if ((USE_WTMESH)) && { wanted wtmesh || wanted wtmesh_http || wanted wtmesh_h2c; }; then
  if [[ -z "$WTMESH" || ! -x "$WTMESH" ]]; then
    WTMESH_SKIP_REASON="no wtmesh binary; build it: cmake --build build-bench --target wtmesh"
  elif ! "$WTMESH" http --help > /dev/null 2>&1; then
    WTMESH_SKIP_REASON="$WTMESH has no 'http' subcommand yet"
  else
    start_wtmesh
    wanted wtmesh_h2c && start_wtmesh_h2c
  fi
  [[ -n "$WTMESH_SKIP_REASON" ]] && log "skipping wtmesh: $WTMESH_SKIP_REASON"
else
  WTMESH_SKIP_REASON="--no-wtmesh or --only"
fi
# Drop the targets that were started only as a side effect (nginx and nginx_tls share one process).
sel=()
for t in "${TARGETS[@]}"; do wanted "$t" && sel+=("$t"); done
TARGETS=("${sel[@]}")
((${#TARGETS[@]})) || die "no targets selected"

# 1. Fixed rate first, on fresh processes: achieved rate, proxy CPU and agent-side RSS at ~FIXED_RATE req/s.
log "phase 1: fixed rate ${FIXED_RATE} req/s for ${FIXED_SECS}s per target"
for t in "${TARGETS[@]}"; do rate_run "$t" "$FIXED_SECS" "$FIXED_RATE"; done

# 2. Warm-up, then ROUNDS interleaved wrk rounds (the target order rotates every round).
log "phase 2: wrk warm-up ${WARM_SECS}s, then $ROUNDS round(s) of ${WRK_SECS}s per target"
for t in "${TARGETS[@]}"; do wrk_run "$t" warmup "$WARM_SECS"; done
n=${#TARGETS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < n; i++)); do wrk_run "${TARGETS[$(((i + r - 1) % n))]}" "r$r" "$WRK_SECS"; done
done

# 3. Bulk downloads.
log "phase 3: $BULK_RUNS x 100 MiB download per target"
for t in "${TARGETS[@]}"; do bulk_run "$t" "$BULK_RUNS"; done

# 3b. The other public HTTP versions (bench/lib/versions.sh).
((VERSIONS)) && phase_versions "$ROUNDS" "$WRK_SECS"

# 4. wtmesh only: where its CPU went (per thread), peak RSS, liveness, optional perf profile.
if [[ -n "${WTMESH_AGENT_PID:-}" ]]; then
  for p in "$WTMESH_EDGE_PID" "$WTMESH_AGENT_PID"; do alive "$p" || log "WARNING: wtmesh process $p died during the run"; done
  WTMESH_THREADS=$( { thread_ticks "$WTMESH_EDGE_PID" | sed 's/^/  edge  /'
                      thread_ticks "$WTMESH_AGENT_PID" | sed 's/^/  agent /'; } 2> /dev/null)
  WTMESH_THREADS+=$'\n'"  peak VmHWM over the run: edge $(($(hwm_kb "$WTMESH_EDGE_PID") / 1024)) MiB, agent $(($(hwm_kb "$WTMESH_AGENT_PID") / 1024)) MiB"
  if ((PROFILE)); then
    if command -v perf > /dev/null; then
      log "profiling edge and agent with perf (cpu-clock) under wrk for ${WRK_SECS}s"
      perf_pids=()
      for p in edge agent; do
        pid_var="WTMESH_${p^^}_PID"
        timeout $((WRK_SECS + 20)) perf record -q -e cpu-clock -g -o "$OUT/perf-$p.data" -p "${!pid_var}" \
          -- sleep "$WRK_SECS" > "$OUT/perf-$p.log" 2>&1 &
        perf_pids+=("$!")
        BENCH_PIDS+=("$!")
      done
      sleep 0.5
      wrk_run wtmesh profile "$WRK_SECS"
      wait "${perf_pids[@]}" || true
      for p in edge agent; do
        { perf report -i "$OUT/perf-$p.data" --stdio --no-children -g none --sort dso --percent-limit 0.5 2> /dev/null |
            grep -E '^ +[0-9]' | head -12
          echo "  --- top symbols"
          perf report -i "$OUT/perf-$p.data" --stdio --no-children -g none --sort dso,sym --percent-limit 0.5 \
            2> /dev/null | grep -E '^ +[0-9]' | head -30; } > "$OUT/perf-$p.txt" || true
      done
      for p in edge agent; do
        WTMESH_THREADS+=$'\n'"  perf cpu-clock profile of the $p under wrk (by library, then top symbols):"
        WTMESH_THREADS+=$'\n'"$(head -30 "$OUT/perf-$p.txt" | sed 's/^/    /')"
      done
    else
      log "perf not found; skipping --profile"
    fi
  fi
fi

read -r udp_rcv1 udp_snd1 udp_in1 <<< "$(udp_drops)"
{ echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "UDP drops on the box during the run (should be 0): rcvbuf $((udp_rcv1 - udp_rcv0))," \
    "sndbuf $((udp_snd1 - udp_snd0)), in-errors $((udp_in1 - udp_in0))"
} >> "$OUT/env.txt"
{ print_report
  echo
  echo "environment:"
  sed 's/^/  /' "$OUT/env.txt"
} | tee "$OUT/report.txt"
echo "  wall time: $((SECONDS - started)) s; logs and raw numbers: $OUT$([[ -z "$OUT_DIR" && -z "${KEEP_TMP:-}" ]] && echo ' (temp, removed on exit: use --out DIR to keep)')"
