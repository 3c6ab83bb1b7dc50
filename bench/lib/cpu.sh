# shellcheck shell=bash disable=SC2034
# bench/lib/cpu.sh: CPU time and memory of process trees, read from /proc (no perf/PMU needed).
# CPU = utime + stime + cutime + cstime (fields 14-17 of /proc/PID/stat, in clock ticks) summed over the
# root pids and all their live descendants. Live children are counted through their own stat line and
# exited (reaped) children through their parent's cutime/cstime, so nothing is counted twice.
# Sourced, not executed.

CLK_TCK=$(getconf CLK_TCK)

# tree_ticks PID...: total CPU ticks of the trees rooted at PID... (0 if all are gone).
tree_ticks() {
  local pids
  pids=$(descendants "$@" | tr '\n' ' ')
  [[ -z "${pids// /}" ]] && { echo 0; return; }
  local f files=()
  for f in $pids; do files+=("/proc/$f/stat"); done
  # The comm field may contain spaces: strip everything up to the last ") " first; then utime is $12.
  cat "${files[@]}" 2>/dev/null | sed 's/.*) //' | awk '{ t += $12 + $13 + $14 + $15 } END { print t + 0 }'
}

# tree_cpu_ns PID...: nanoseconds on CPU of every thread of the trees rooted at PID...: schedstat's
# first field, so no 10 ms tick rounding (bench/rates.sh: nginx at 100 req/s is a few ticks in all).
tree_cpu_ns() {
  local p f total=0 v
  for p in $(descendants "$@"); do
    for f in /proc/"$p"/task/*/schedstat; do
      read -r v _ < "$f" 2> /dev/null || continue
      total=$((total + v))
    done
  done
  echo "$total"
}

# tree_switches PID...: "VOLUNTARY INVOLUNTARY" context switches of every thread of the trees rooted at
# PID...: a voluntary one is a wait that blocked (a wake-up follows), an involuntary one a preemption.
tree_switches() {
  local p f vol=0 inv=0 k v
  for p in $(descendants "$@"); do
    for f in /proc/"$p"/task/*/status; do
      while read -r k v _; do
        case $k in
          voluntary_ctxt_switches:) vol=$((vol + v)) ;;
          nonvoluntary_ctxt_switches:) inv=$((inv + v)) ;;
        esac
      done < "$f" 2> /dev/null || continue
    done
  done
  echo "$vol $inv"
}

# ticks_to_us TICKS: microseconds of CPU.
ticks_to_us() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", t * 1e6 / hz }'; }

# rss_kb PID: current VmRSS in KiB (0 if gone). hwm_kb PID: peak VmRSS (VmHWM).
rss_kb() { awk '/^VmRSS:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ { print $2; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# rss_split_kb PID: "anon file pss" KiB: RssAnon (heap), RssFile+RssShmem (mapped binary and libraries,
# shared with other processes) and Pss (shared pages divided by the number of processes mapping them).
rss_split_kb() {
  local pss
  pss=$(awk '/^Pss:/ { print $2; exit }' "/proc/$1/smaps_rollup" 2>/dev/null)
  awk -v pss="${pss:-0}" '/^RssAnon:/ { a = $2 } /^RssFile:/ { f += $2 } /^RssShmem:/ { f += $2 }
    END { print a + 0, f + 0, pss + 0 }' "/proc/$1/status" 2>/dev/null || echo "0 0 0"
}

# tree_rss_kb PID...: sum of VmRSS over the trees (shared pages are counted once per process).
tree_rss_kb() {
  local p t=0
  for p in $(descendants "$@"); do t=$((t + $(rss_kb "$p"))); done
  echo "$t"
}

# thread_ticks PID: per-thread CPU ticks "tid comm ticks", from /proc/PID/task/*/stat (where CPU goes).
thread_ticks() {
  local f
  for f in /proc/"$1"/task/*/stat; do
    [[ -r "$f" ]] || continue
    awk '{ line = $0; tid = $1; c = line; sub(/^[^(]*\(/, "", c); sub(/\).*/, "", c);
           sub(/.*\) /, "", line); split(line, a, " "); print tid, c, a[12] + a[13] }' "$f"
  done
}

# box_ticks: "busy idle" ticks of the whole machine from /proc/stat (busy = user nice system irq softirq steal).
box_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6; exit }' /proc/stat; }

# udp_drops: "RcvbufErrors SndbufErrors InErrors" counters of the whole box (/proc/net/snmp).
udp_drops() {
  awk '$1 == "Udp:" && $2 ~ /^[0-9]+$/ { print $6, $7, $4; exit }' /proc/net/snmp 2>/dev/null || echo "0 0 0"
}
