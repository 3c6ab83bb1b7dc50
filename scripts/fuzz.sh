#!/usr/bin/env bash
# Runs the libFuzzer targets (fuzz/*.cc) for a while each and keeps what they learn: every input that
# adds coverage is merged into the target's seed corpus fuzz/corpus/NAME/ (minimised with -merge=1,
# so the corpus grows only by inputs that reach new code), ready to commit and for CI to start from.
#
#   scripts/fuzz.sh                          every target, 5 minutes each, one per core at a time
#   scripts/fuzz.sh --minutes 30 wt_capsule  one target for 30 minutes
#   scripts/fuzz.sh --jobs 1 --minutes 1     a quick pass, one at a time
#
# Options: --minutes M (5), --jobs J (nproc), --build DIR (build-fuzz; configured and built here with
# clang, ASan+UBSan and fuzzer coverage unless it exists with WTMESH_FUZZ=ON), --no-merge (leave
# fuzz/corpus alone). A crash stops that target; its reproducer is kept in DIR/fuzz-artifacts/ and the
# script exits 1 after the others finish. Prints a table: target, runs, exec/s, coverage, corpus size
# before and after, CPU minutes the fuzzer had, result.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
minutes=5
jobs=$(nproc)
build="build-fuzz"
merge=1
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) minutes=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --no-merge) merge=0; shift ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("${1#fuzz_}"); shift ;;
  esac
done
[[ $minutes =~ ^[0-9]+$ && $minutes -ge 1 ]] || { echo "fuzz.sh: --minutes takes a whole number >= 1" >&2; exit 2; }
[[ $jobs =~ ^[0-9]+$ && $jobs -ge 1 ]] || { echo "fuzz.sh: --jobs takes a whole number >= 1" >&2; exit 2; }
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/*.cc; do targets+=("$(basename "$f" .cc)"); done
fi
for t in "${targets[@]}"; do
  [ -f "fuzz/$t.cc" ] || { echo "fuzz.sh: no target fuzz/$t.cc" >&2; exit 2; }
done

if ! grep -q '^WTMESH_FUZZ:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "fuzz.sh: configuring $build (clang, ASan+UBSan, libFuzzer)"
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWTMESH_FUZZ=ON \
    -DWTMESH_TESTS=OFF -DWTMESH_SANITIZE=ON -DWTMESH_LINE_TABLES_ONLY=ON >/dev/null
fi
bins=()
for t in "${targets[@]}"; do bins+=("fuzz_$t"); done
cmake --build "$build" -j"$jobs" --target "${bins[@]}"

mkdir -p "$build/fuzz-artifacts" "$build/fuzz-corpus" "$build/fuzz-logs"
seconds=$((minutes * 60))

# run_one NAME: fuzzes for $seconds into a work corpus seeded from fuzz/corpus/NAME, then merges what is
# new into fuzz/corpus/NAME; writes one result line to $build/fuzz-logs/NAME.result.
run_one() {
  local t=$1 bin work seeds log before after status runs rate cov
  bin=$(find "$build" -type f -name "fuzz_$t" -perm -u+x | head -1)
  work=$build/fuzz-corpus/$t
  seeds=fuzz/corpus/$t
  log=$build/fuzz-logs/$t.log
  mkdir -p "$work" "$seeds"
  before=$(find "$seeds" -type f | wc -l)
  status=ok
  # /usr/bin/time: the CPU the fuzzer really had (the issue asks for CPU-minutes, and a busy box gives
  # a 30-minute run less).
  if ! /usr/bin/time -f '%U %S' -o "$build/fuzz-logs/$t.cpu" timeout -k 10 $((seconds + 300)) "$bin" "$work" \
    "$seeds" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/fuzz-artifacts/$t-" >"$log" 2>&1; then
    status=FAILED
  fi
  if [ "$merge" = 1 ] && [ "$status" = ok ]; then
    "$bin" -merge=1 "$seeds" "$work" >"$build/fuzz-logs/$t.merge.log" 2>&1 || status="merge-failed"
  fi
  after=$(find "$seeds" -type f | wc -l)
  runs=$(grep -oE '^stat::number_of_executed_units: +[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  rate=$(grep -oE '^stat::average_exec_per_sec: +[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+' || echo '?')
  cpu=$(awk 'NF == 2 && $1 ~ /^[0-9.]+$/ { printf "%.1f", ($1 + $2) / 60 }' "$build/fuzz-logs/$t.cpu" 2>/dev/null)
  printf '%-28s %12s %9s %7s %6s %6s %8s  %s\n' "$t" "$runs" "$rate" "$cov" "$before" "$after" "${cpu:-?}" \
    "$status" >"$build/fuzz-logs/$t.result"
}

echo "fuzz.sh: ${#targets[@]} target(s), $minutes min each, $jobs at a time (logs in $build/fuzz-logs)"
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

printf '\n%-28s %12s %9s %7s %6s %6s %8s  %s\n' target runs exec/s cov seeds after cpu-min result
failed=0
for t in "${targets[@]}"; do
  if [ -f "$build/fuzz-logs/$t.result" ]; then
    cat "$build/fuzz-logs/$t.result"
    grep -q ' ok$' "$build/fuzz-logs/$t.result" || failed=1
  else
    printf '%-28s (no result)\n' "$t"
    failed=1
  fi
done
if [ "$failed" = 1 ]; then
  echo "fuzz.sh: some targets failed; reproducers in $build/fuzz-artifacts/, logs in $build/fuzz-logs/" >&2
  for a in "$build"/fuzz-artifacts/*; do [ -f "$a" ] && echo "  $a" >&2; done
  exit 1
fi
if [ "$merge" = 1 ]; then
  echo "fuzz.sh: all targets ran clean; inputs with new coverage merged into fuzz/corpus/ (git status shows them)"
else
  echo "fuzz.sh: all targets ran clean"
fi
