#!/usr/bin/env bash
# bench/rates.sh: what a request costs at everyday rates. Every target of bench/run.sh (direct, nginx
# one-hop plain and TLS, ssh -R, wtmesh over HTTPS and plain HTTP) gets the same open-loop load
# (bench/lib/rateload.py: /1k.bin over 8 keep-alive connections) at each rate in turn, and for each
# (rate, target) the bench records, over exactly the load's window:
#   - proxy CPU per request, from /proc/TID/schedstat (nanoseconds of run time of every thread of the
#     proxy's processes: no 10 ms tick rounding, which at 100 req/s is a tenth of nginx's figure);
#   - system calls and context switches (wake-ups) per request, counted by the kernel's tracepoints
#     (`perf stat -e raw_syscalls:sys_enter,context-switches`; no PMU needed) when perf can use them;
#   - achieved rate, failures, p50/p99 latency from the scheduled time, and p99 added over `direct`.
# Then the ratios to nginx TLS (the issue-15 goal: CPU per request <= 1.5x at 500 and 1000 req/s) and
# to ssh -R. --breakdown also runs `perf trace -s` on the wtmesh edge and agent at each rate and prints
# which system calls they make per request; --profile runs `perf record` (cpu-clock samples) on them at
# each rate and prints where their CPU goes, by library and by function.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"
# shellcheck source=lib/cpu.sh
source "$BENCH_DIR/lib/cpu.sh"
# shellcheck source=lib/targets.sh
source "$BENCH_DIR/lib/targets.sh"

usage() {
  cat <<EOF
usage: bench/rates.sh [options]
  --rates LIST       comma-separated request rates (default 100,500,1000)
  --secs S           seconds per (rate, target) (default 10)
  --conns N          keep-alive connections of the load (default 8)
  --rounds N         repeat every (rate, target) N times, interleaved; medians are printed (default 1)
  --only LIST        subset of: direct,nginx,nginx_tls,ssh,wtmesh,wtmesh_http
  --wtmesh PATH      wtmesh binary (default \$REPO/build-bench/wtmesh)
  --breakdown        per-system-call counts of the wtmesh edge and agent (perf trace -s) at each rate
  --profile          where the wtmesh edge's and agent's CPU goes at each rate (perf record, cpu-clock)
  --out DIR          keep logs, raw.tsv and the report in DIR
  --wait-quiet S     first wait up to S seconds for the load average to drop below 1.0
Environment: WTMESH_GLOBAL_ARGS (default "--log-level warn"), WTMESH_EDGE_ARGS, WTMESH_HTTP_ARGS.
EOF
}

SSH_CIPHER=aes128-gcm@openssh.com RATES=100,500,1000 SECS=10 CONNS=8 ROUNDS=1 ONLY="" WTMESH="" BREAKDOWN=0 PROFILE=0 OUT_DIR="" WAIT_QUIET=0
while (($#)); do
  case $1 in
    --rates) RATES=$2; shift ;;
    --secs) SECS=$2; shift ;;
    --conns) CONNS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --only) ONLY=",$2,"; shift ;;
    --wtmesh) WTMESH=$2; shift ;;
    --breakdown) BREAKDOWN=1 ;;
    --profile) PROFILE=1 ;;
    --out) OUT_DIR=$2; shift ;;
    --wait-quiet) WAIT_QUIET=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
[[ "$RATES" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--rates takes positive integers separated by commas"
for v in SECS CONNS ROUNDS WAIT_QUIET; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a whole number"
done
((SECS > 0 && CONNS > 0 && ROUNDS > 0)) || die "--secs, --conns and --rounds must be positive"
IFS=, read -r -a RATE_LIST <<< "$RATES"
wanted() { [[ -z "$ONLY" || "$ONLY" == *",$1,"* ]]; }

WTMESH_GLOBAL_ARGS=${WTMESH_GLOBAL_ARGS---log-level warn}
WTMESH_EDGE_ARGS=${WTMESH_EDGE_ARGS-}
WTMESH_HTTP_ARGS=${WTMESH_HTTP_ARGS-}
PYTHON=/usr/bin/python3
[[ -x "$PYTHON" ]] || PYTHON=$(command -v python3)
for tool in curl nginx /usr/sbin/sshd ssh ssh-keygen openssl ss ps "$PYTHON"; do
  command -v "$tool" > /dev/null || die "missing tool: $tool"
done
[[ -n "$WTMESH" ]] || WTMESH=$REPO_DIR/build-bench/wtmesh

# Tracepoint counting needs perf and a kernel that lets this user read tracepoints (root here).
PERF_OK=0
if command -v perf > /dev/null && perf stat -e raw_syscalls:sys_enter,context-switches -x, -- true > /dev/null 2>&1; then
  PERF_OK=1
fi

bench_start wtmesh-rates
wait_quiet "$WAIT_QUIET"
started=$SECONDS
{
  echo "commit: $(git -C "$REPO_DIR" rev-parse --short HEAD 2> /dev/null || echo unknown)" \
    "(working tree $(git -C "$REPO_DIR" status --porcelain 2> /dev/null | wc -l) changed files)"
  echo "kernel: $(uname -r); cpu: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo) x $(nproc)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wtmesh: $WTMESH; system calls counted: $([[ $PERF_OK == 1 ]] && echo "yes (perf tracepoints)" || echo "no (perf cannot read tracepoints)")"
} > "$OUT/env.txt"
cat "$OUT/env.txt" >&2

start_origin
{ wanted nginx || wanted nginx_tls; } && start_nginx_proxy
wanted ssh && start_ssh
if { wanted wtmesh || wanted wtmesh_http; }; then
  if [[ -x "$WTMESH" ]]; then start_wtmesh; else log "no wtmesh binary at $WTMESH: wtmesh rows skipped"; fi
fi
sel=()
for t in "${TARGETS[@]}"; do wanted "$t" && [[ "$t" != wtmesh_h2c ]] && sel+=("$t"); done
TARGETS=("${sel[@]}")
((${#TARGETS[@]})) || die "no targets selected"

# one_run TARGET RATE ROUND: the load at RATE for SECS, with CPU, system calls and wake-ups of the proxy.
# ROUND "trace" is a separate wtmesh run under `perf trace -s` (which slows every system call, so its
# CPU and latency are not recorded): only its per-call counts are kept.
one_run() {
  local t=$1 rate=$2 round=$3 file="$OUT/rate-$1-$2-r$3.txt" pids="" c0 c1 v0 v1 i0 i1 lp perf_pid="" tr_pids=()
  [[ -n "${T_ROOTS[$t]}" ]] && pids=$(descendants ${T_ROOTS[$t]} | sort -n | paste -sd,)
  # shellcheck disable=SC2086
  [[ -n "$pids" ]] && c0=$(tree_cpu_ns ${T_ROOTS[$t]}) && read -r v0 i0 <<< "$(tree_switches ${T_ROOTS[$t]})"
  "$PYTHON" "$BENCH_DIR/lib/rateload.py" --url "${T_URL[$t]}/1k.bin" --host "${T_HOSTHDR[$t]}" \
    --rate "$rate" --duration "$SECS" --conns "$CONNS" > "$file" 2>&1 &
  lp=$!
  BENCH_PIDS+=("$lp")
  if [[ -n "$pids" && $PERF_OK == 1 && $round != trace && $round != profile ]]; then
    perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$pids" -o "$file.perf" &
    perf_pid=$!
    BENCH_PIDS+=("$perf_pid")
  fi
  if [[ $round == trace || $round == profile ]]; then
    local who pid
    for who in edge agent; do
      pid=WTMESH_${who^^}_PID
      if [[ $round == trace ]]; then
        perf trace -s -p "${!pid}" -o "$OUT/trace-$who-$rate-r$round.txt" &
      else
        perf record -q -e cpu-clock -F 4999 -p "${!pid}" -o "$OUT/profile-$who-$rate.data" > /dev/null 2>&1 &
      fi
      tr_pids+=("$!")
      BENCH_PIDS+=("$!")
    done
  fi
  wait "$lp" || true
  [[ -n "$perf_pid" ]] && { kill -INT "$perf_pid" 2> /dev/null || true; wait "$perf_pid" 2> /dev/null || true; }
  for p in "${tr_pids[@]}"; do kill -INT "$p" 2> /dev/null || true; done
  for p in "${tr_pids[@]}"; do wait "$p" 2> /dev/null || true; done
  # shellcheck disable=SC2086
  [[ -n "$pids" ]] && c1=$(tree_cpu_ns ${T_ROOTS[$t]}) && read -r v1 i1 <<< "$(tree_switches ${T_ROOTS[$t]})"
  local line done_
  line=$(tail -1 "$file")
  done_=$(grep -o 'done=[0-9]*' <<< "$line" | cut -d= -f2)
  [[ -n "$done_" && "$done_" -gt 0 ]] || { log "$t at $rate req/s failed: $line"; return 0; }
  if [[ $round == trace ]]; then
    local who
    for who in edge agent; do
      [[ -s "$OUT/trace-$who-$rate-r$round.txt" ]] || continue
      awk -v who="$who" -v n="$done_" -v rate="$rate" '
        $1 ~ /^[a-z_0-9]+$/ && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ { c[$1] += $2; e[$1] += $3 }
        END { for (s in c) printf "%s\t%s\t%s\t%.2f\t%.2f\n", rate, who, s, c[s] / n, e[s] / n }' \
        "$OUT/trace-$who-$rate-r$round.txt" >> "$OUT/breakdown.tsv"
    done
    log "$t at $rate req/s (system call breakdown): $line"
    return 0
  fi
  if [[ $round == profile ]]; then
    local who
    for who in edge agent; do
      [[ -s "$OUT/profile-$who-$rate.data" ]] || continue
      perf report -i "$OUT/profile-$who-$rate.data" --stdio --sort dso -q 2> /dev/null |
        awk 'NF { print $1, $2 }' > "$OUT/profile-$who-$rate-dso.txt"
      perf report -i "$OUT/profile-$who-$rate.data" --stdio --sort dso,sym -q 2> /dev/null |
        awk 'NF && n++ < 25 { $2 = ""; $3 = ""; print }' > "$OUT/profile-$who-$rate-sym.txt"
    done
    log "$t at $rate req/s (profile): $line"
    return 0
  fi
  local k="$t@$rate"
  raw "$k" done "$done_"
  raw "$k" ok "$(grep -o 'ok=[0-9]*' <<< "$line" | cut -d= -f2)"
  raw "$k" rate "$(grep -o ' rate=[0-9.]*' <<< "$line" | cut -d= -f2)"
  raw "$k" p50_ms "$(grep -o 'p50_ms=[0-9.na]*' <<< "$line" | cut -d= -f2)"
  raw "$k" p99_ms "$(grep -o 'p99_ms=[0-9.na]*' <<< "$line" | cut -d= -f2)"
  if [[ -n "$pids" ]]; then
    raw "$k" cpu_us_req "$(awk -v c=$((c1 - c0)) -v n="$done_" 'BEGIN { printf "%.1f", c / 1000 / n }')"
    raw "$k" vol_req "$(awk -v c=$((v1 - v0)) -v n="$done_" 'BEGIN { printf "%.2f", c / n }')"
    raw "$k" inv_req "$(awk -v c=$((i1 - i0)) -v n="$done_" 'BEGIN { printf "%.2f", c / n }')"
    if [[ -s "$file.perf" ]]; then
      local sc cs
      sc=$(awk -F, '$3 == "raw_syscalls:sys_enter" { print $1 }' "$file.perf")
      cs=$(awk -F, '$3 == "context-switches" { print $1 }' "$file.perf")
      [[ "$sc" =~ ^[0-9]+$ ]] && raw "$k" sys_req "$(awk -v s="$sc" -v n="$done_" 'BEGIN { printf "%.1f", s / n }')"
      [[ "$cs" =~ ^[0-9]+$ ]] && raw "$k" cs_req "$(awk -v s="$cs" -v n="$done_" 'BEGIN { printf "%.2f", s / n }')"
    fi
  fi
  log "$t at $rate req/s (round $round): $line$([[ -n "$pids" ]] && echo "; proxy CPU $(((c1 - c0) / 1000000)) ms")"
}

log "fixed-rate load at ${RATES} req/s, ${SECS}s each, ${CONNS} connections, $ROUNDS round(s), targets: ${TARGETS[*]}"
n=${#TARGETS[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  for rate in "${RATE_LIST[@]}"; do
    for ((i = 0; i < n; i++)); do one_run "${TARGETS[$(((i + r - 1) % n))]}" "$rate" "$r"; done
  done
done
if ((BREAKDOWN)); then
  if [[ $PERF_OK == 1 && -n "${WTMESH_EDGE_PID:-}" ]]; then
    for rate in "${RATE_LIST[@]}"; do one_run wtmesh "$rate" trace; done
  else
    log "--breakdown needs perf tracepoints and the wtmesh target: skipped"
  fi
fi

if ((PROFILE)); then
  if command -v perf > /dev/null && [[ -n "${WTMESH_EDGE_PID:-}" ]]; then
    for rate in "${RATE_LIST[@]}"; do one_run wtmesh "$rate" profile; done
  else
    log "--profile needs perf and the wtmesh target: skipped"
  fi
fi

# med TARGET@RATE KEY: the median over the rounds (lib/common.sh).
med() { raw_median "$@"; }

{
  echo
  echo "== CPU, system calls and wake-ups per request at fixed rates ($(date -u +%Y-%m-%dT%H:%MZ); /1k.bin, $CONNS keep-alive connections, ${SECS}s per cell, median of $ROUNDS) =="
  fmt='%-6s %-11s %8s %7s %9s %8s %8s %7s %7s %8s %9s\n'
  # shellcheck disable=SC2059
  printf "$fmt" rate target 'got r/s' failed 'CPU us/r' 'sys/r' 'wake/r' 'vol/r' 'inv/r' 'p99 ms' '+p99 ms'
  for rate in "${RATE_LIST[@]}"; do
    base99=$(med "direct@$rate" p99_ms)
    for t in "${TARGETS[@]}"; do
      k="$t@$rate"
      d=$(med "$k" done) o=$(med "$k" ok)
      p99=$(med "$k" p99_ms)
      # shellcheck disable=SC2059
      printf "$fmt" "$rate" "$t" "$(med "$k" rate)" "$(awk -v d="$d" -v o="$o" 'BEGIN { print d - o }')" \
        "$(med "$k" cpu_us_req)" "$(med "$k" sys_req)" "$(med "$k" cs_req)" "$(med "$k" vol_req)" "$(med "$k" inv_req)" "$p99" \
        "$(awk -v a="$p99" -v b="$base99" 'BEGIN { if (a == "" || b == "") print "-"; else printf "%+.2f", a - b }')"
    done
  done
  echo
  echo "wtmesh / baseline, CPU per request (goal at 500 and 1000 req/s: <= 1.5x nginx TLS one-hop), and the"
  echo "p99 latency wtmesh adds over direct (goal at 1000 req/s: <= 1 ms):"
  for rate in "${RATE_LIST[@]}"; do
    w=$(med "wtmesh@$rate" cpu_us_req)
    c=$(ratio "$w" "$(med "nginx_tls@$rate" cpu_us_req)")
    added=$(awk -v a="$(med "wtmesh@$rate" p99_ms)" -v b="$(med "direct@$rate" p99_ms)" \
      'BEGIN { if (a == "" || b == "") print "n/a"; else printf "%.2f", a - b }')
    printf '  %5s req/s: vs nginx TLS %5s%s, vs ssh -R %5s; plain-HTTP edge vs nginx %5s; added p99 %s ms%s\n' "$rate" \
      "$c" "$( ((rate == 500 || rate == 1000)) && [[ $c != n/a ]] && awk -v c="$c" 'BEGIN { print (c <= 1.5) ? " (met)" : " (NOT met)" }')" \
      "$(ratio "$w" "$(med "ssh@$rate" cpu_us_req)")" \
      "$(ratio "$(med "wtmesh_http@$rate" cpu_us_req)" "$(med "nginx@$rate" cpu_us_req)")" "$added" \
      "$( ((rate == 1000)) && [[ $added != n/a ]] && awk -v a="$added" 'BEGIN { print (a <= 1) ? " (met)" : " (NOT met)" }')"
  done
  if [[ -s "$OUT/breakdown.tsv" ]]; then
    echo
    echo "wtmesh system calls per request by kind (perf trace -s; calls, of which failed e.g. EAGAIN):"
    for rate in "${RATE_LIST[@]}"; do
      for who in edge agent; do
        printf '  %5s req/s %-5s ' "$rate" "$who"
        awk -F'\t' -v r="$rate" -v w="$who" '$1 == r && $2 == w && $4 >= 0.05 { print $4, $3, $5 }' "$OUT/breakdown.tsv" |
          sort -rg | awk '{ t += $1; s = s sprintf(" %s %.2f%s", $2, $1, $3 >= 0.05 ? sprintf(" (%.2f failed)", $3) : "") }
                          END { printf "total %.1f:%s\n", t, s }'
      done
    done
  fi
  if ((PROFILE)); then
    echo
    echo "where wtmesh's CPU goes (perf record -e cpu-clock; share of each process's samples):"
    for rate in "${RATE_LIST[@]}"; do
      for who in edge agent; do
        [[ -s "$OUT/profile-$who-$rate-dso.txt" ]] || continue
        printf '  %5s req/s %-5s by library: %s\n' "$rate" "$who" \
          "$(awk '$1 + 0 >= 1 { printf "%s %s  ", $2, $1 }' "$OUT/profile-$who-$rate-dso.txt")"
        awk 'NR <= 12 { print "      " $0 }' "$OUT/profile-$who-$rate-sym.txt"
      done
    done
  fi
  echo
  echo "CPU is every thread of the proxy processes (nginx master+worker; sshd+ssh; wtmesh edge+agent);"
  echo "sys/r and wake/r are the same processes' system calls and context switches per request (perf);"
  echo "vol/r and inv/r split the switches (/proc: waits that blocked, preemptions). At low rates CPU per"
  echo "request follows the switches: each costs a process tens of µs of cold caches and VM exits here."
  echo "environment:"
  sed 's/^/  /' "$OUT/env.txt"
  echo "  load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/report.txt"
echo "  wall time: $((SECONDS - started)) s; raw numbers: $OUT/raw.tsv$([[ -z "$OUT_DIR" ]] && echo ' (temp: use --out DIR to keep)')"
