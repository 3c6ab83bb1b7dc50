# shellcheck shell=bash disable=SC2034
# bench/lib/common.sh: logging, free ports, bounded waits, and process bookkeeping for the bench
# scripts (run.sh, tcp.sh, instructions.sh). Every process the bench starts is recorded in BENCH_PIDS
# and killed (with its descendants) by bench_cleanup, which bench_start installs as the EXIT/INT/TERM
# trap. Sourced, not executed.

BENCH_PIDS=()

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# raw NAME KEY VALUE: one raw measurement, appended to $OUT/raw.tsv (the table is computed from it).
raw() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$OUT/raw.tsv"; }

# edge_workers_args [EXTRA...]: "--workers 1" when the wtmesh edge has --workers (its default is the
# core count) and EXTRA does not choose; the comparisons' targets run on one core each (nginx
# worker_processes 1, one sshd), so the edge does too. bench/workers.sh compares worker counts.
edge_workers_args() {
  [[ " $* " == *" --workers "* ]] && return 0
  local help
  help=$("$WTMESH" edge --help 2> /dev/null || true)  # not `| grep -q`: pipefail and SIGPIPE
  [[ "$help" == *"--workers"* ]] && echo "--workers 1"
  return 0
}

# port_in_use PORT: true if any TCP or UDP socket (listening or connected, any address) uses PORT.
port_in_use() {
  ss -Htuan 2>/dev/null | awk -v p="$1" '{ n = split($5, a, ":"); if (a[n] == p) found = 1 } END { exit !found }'
}

# free_port: a port free for both TCP and UDP (wtmesh needs both on the same number), picked below the
# kernel's ephemeral range so that an outgoing connection cannot take it between the check and the bind.
BENCH_PORTS_TAKEN=" "
free_port() {  # free_port VAR: sets VAR (not $(...): the taken list must survive)
  local i p lo
  lo=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  ((lo > 12000)) || lo=32768
  for ((i = 0; i < 200; i++)); do
    p=$((10000 + RANDOM % (lo - 10000)))
    [[ "$BENCH_PORTS_TAKEN" == *" $p "* ]] && continue
    if ! port_in_use "$p"; then
      BENCH_PORTS_TAKEN+="$p "
      printf -v "$1" '%s' "$p"
      return 0
    fi
  done
  die "no free port found after 200 tries"
}

# wait_tcp PORT SECONDS: wait until 127.0.0.1:PORT accepts TCP connections.
wait_tcp() {
  local port=$1 deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# wait_file PATH SECONDS
wait_file() {
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    [[ -s "$1" ]] && return 0
    sleep 0.1
  done
  return 1
}

# spawn NAME CMD...: start CMD in the background, stdout+stderr to $OUT/NAME.log; prints the pid.
# The caller must capture the pid with $(...)-free code, so this sets SPAWNED_PID instead of printing.
spawn() {
  local name=$1
  shift
  "$@" > "$OUT/$name.log" 2>&1 &
  SPAWNED_PID=$!
  BENCH_PIDS+=("$SPAWNED_PID")
  log "started $name (pid $SPAWNED_PID): $*"
}

# alive PID
alive() { kill -0 "$1" 2>/dev/null; }

# descendants PID...: the given pids plus all their live descendants, one per line.
descendants() {
  ps -e -o pid=,ppid= 2>/dev/null | awk -v roots="$*" '
    BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1 }
    { parent[$1] = $2; pids[NR] = $1 }
    END {
      changed = 1
      while (changed) {
        changed = 0
        for (i in pids) { p = pids[i]; if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } }
      }
      for (p in keep) print p
    }'
}

# bench_cleanup: TERM every recorded process and its descendants, wait up to 3 s, then KILL what is left.
bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e  # a process that is already gone must not abort the cleanup
  if ((${#BENCH_PIDS[@]} > 0)); then
    local all p i
    all=$(descendants "${BENCH_PIDS[@]}")
    for p in $all; do kill -TERM "$p" 2>/dev/null; done
    for ((i = 0; i < 30; i++)); do
      local left=0
      for p in $all; do alive "$p" && left=1; done
      ((left)) || break
      sleep 0.1
    done
    for p in $all; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
  fi
  if [[ -n "${BENCH_CREATED_PRIVSEP:-}" ]]; then rmdir "$BENCH_CREATED_PRIVSEP" 2>/dev/null; fi
  if [[ -n "${BENCH_TMP:-}" && -d "$BENCH_TMP" && -z "${KEEP_TMP:-}" ]]; then rm -rf "$BENCH_TMP"; fi
  exit "$rc"
}

# ratio A B: A/B with 2 decimals, or "n/a" when either is missing or B is 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

# raw_median TARGET KEY: the median of KEY's values for TARGET in $OUT/raw.tsv (empty if none).
raw_median() { awk -F'\t' -v t="$1" -v k="$2" '$1 == t && $2 == k { print $3 }' "$OUT/raw.tsv" | median; }

# median of numbers on stdin (one per line); empty input prints nothing.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# bench_start PREFIX: BENCH_TMP (a new directory /tmp/PREFIX.XXXXXX, readable by nginx's workers, which
# run as nobody), OUT (OUT_DIR, else BENCH_TMP/out) with an empty raw.tsv, and the cleanup trap.
bench_start() {
  BENCH_TMP=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$BENCH_TMP"
  OUT=${OUT_DIR:-$BENCH_TMP/out}
  mkdir -p "$OUT"
  : > "$OUT/raw.tsv"
  trap bench_cleanup EXIT INT TERM
}

# wait_quiet SECONDS: waits up to SECONDS (0: not at all) for the 1-minute load average to drop below 1.
wait_quiet() {
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)) && awk '{ exit !($1 >= 1.0) }' /proc/loadavg; do
    log "waiting for a quieter box (load average $(cut -d' ' -f1 /proc/loadavg))"
    sleep 10
  done
}
