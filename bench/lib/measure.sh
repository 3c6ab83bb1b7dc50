# shellcheck shell=bash disable=SC2034
# bench/lib/measure.sh: one measurement each — wrk request rate, curl bulk download, fixed-rate load —
# with CPU deltas of the target's proxy processes (and of the origin) around it. Results go to raw.tsv
# through `raw TARGET KEY VALUE`; the wrk/curl outputs are kept in $OUT. Sourced, not executed.

# lat_ms VALUE: wrk latency ("812.00us", "1.20ms", "2.00s", "1.00m") in milliseconds.
lat_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%.3f", n }'
}

# wrk_run TARGET TAG SECONDS: wrk -t2 -c64 on /1k.bin. TAG "warmup" is run but not recorded.
wrk_run() {
  local t=$1 tag=$2 secs=$3 file="$OUT/wrk-$1-$2.txt"
  local args=(-t2 -c64 "-d${secs}s" --latency --timeout 5s)
  [[ -n "${T_HOSTHDR[$t]}" ]] && args+=(-H "Host: ${T_HOSTHDR[$t]}")
  local p0 o0 p1 o1 b0 b1 i0 i1
  # shellcheck disable=SC2086
  p0=$(tree_ticks ${T_ROOTS[$t]:-}) o0=$(tree_ticks "$ORIGIN_PID")
  read -r b0 i0 <<< "$(box_ticks)"
  timeout $((secs + 30)) /usr/bin/time -f '%e %U %S' -o "$file.time" wrk "${args[@]}" "${T_URL[$t]}/1k.bin" \
    > "$file" 2>&1 || log "wrk on $t exited non-zero"
  read -r b1 i1 <<< "$(box_ticks)"
  # shellcheck disable=SC2086
  p1=$(tree_ticks ${T_ROOTS[$t]:-}) o1=$(tree_ticks "$ORIGIN_PID")
  [[ "$tag" == warmup || "$tag" == profile ]] && return 0
  # CPU on the box that was neither the proxy, the origin nor wrk: other people's work disturbing the run.
  local wall wrk_ticks foreign
  read -r wall wrk_ticks <<< "$(awk -v hz="$CLK_TCK" 'END { printf "%s %.0f", $1, ($2 + $3) * hz }' "$file.time")"
  foreign=$(awk -v b=$((b1 - b0)) -v o=$((p1 - p0 + o1 - o0)) -v w="$wrk_ticks" -v s="$wall" -v hz="$CLK_TCK" \
    'BEGIN { f = (b - o - w) / (s * hz) * 100; printf "%.0f", f < 0 ? 0 : f }')
  raw "$t" foreign_pct "$foreign"
  raw "$t" idle_pct "$(awk -v i=$((i1 - i0)) -v s="$wall" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", i / (s * hz) * 100 }')"
  raw "$t" wrk_ticks "$wrk_ticks"
  local rps reqs p50 p99 non2xx sockerr
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$file")
  reqs=$(awk '/ requests in / { print $1 }' "$file")
  p50=$(lat_ms "$(awk '$1 == "50%" { print $2 }' "$file")")
  p99=$(lat_ms "$(awk '$1 == "99%" { print $2 }' "$file")")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$file")
  sockerr=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$file")
  [[ -n "$rps" && -n "$reqs" ]] || { log "could not parse $file"; return 0; }
  raw "$t" rps "$rps"
  raw "$t" p50_ms "$p50"
  raw "$t" p99_ms "$p99"
  raw "$t" errors "$(( ${non2xx:-0} + ${sockerr:-0} ))"
  raw "$t" requests "$reqs"
  raw "$t" req_ticks "$((p1 - p0))"
  raw "$t" req_origin_ticks "$((o1 - o0))"
  log "$t $tag: $rps req/s, p50 $p50 ms, p99 $p99 ms, proxy CPU $((p1 - p0)) ticks, errors $(( ${non2xx:-0} + ${sockerr:-0} )), other load ${foreign}% of a core"
}

# bulk_run TARGET RUNS: download /100m.bin RUNS times with curl; record each speed and the proxy CPU.
# HTTP/1.1, as wrk speaks: the edge also offers HTTP/2 (ALPN h2), which curl would otherwise pick.
bulk_run() {
  local t=$1 runs=$2 i out code size secs p0 p1 bytes=0
  # shellcheck disable=SC2086
  p0=$(tree_ticks ${T_ROOTS[$t]:-})
  for ((i = 1; i <= runs; i++)); do
    # shellcheck disable=SC2086
    out=$(curl -s --http1.1 -o /dev/null --max-time "$BULK_TIMEOUT" -w '%{http_code} %{size_download} %{time_total}' \
      ${T_CURL[$t]} "${T_CURLBASE[$t]}/100m.bin") || true
    read -r code size secs <<< "$out"
    echo "$t run $i: $out" >> "$OUT/bulk.txt"
    if [[ "$code" != 200 || "$size" != "$BULK_BYTES" ]]; then
      log "$t bulk run $i failed: status $code, $size of $BULK_BYTES bytes in $secs s"
      raw "$t" bulk_fail 1
      continue
    fi
    bytes=$((bytes + size))
    raw "$t" bulk_mibs "$(awk -v b="$size" -v s="$secs" 'BEGIN { printf "%.1f", b / s / 1048576 }')"
  done
  # shellcheck disable=SC2086
  p1=$(tree_ticks ${T_ROOTS[$t]:-})
  raw "$t" bulk_bytes "$bytes"
  raw "$t" bulk_ticks "$((p1 - p0))"
  log "$t bulk: $(grep "^$t run" "$OUT/bulk.txt" | tail -n "$runs" | awk '{ printf "%.0f MiB/s ", $5 / $6 / 1048576 }')"
}

# rate_run TARGET SECONDS RATE: fixed-rate load (bench/lib/rateload.py, 8 keep-alive connections) while
# sampling the agent-side process's VmRSS every 0.25 s; records achieved rate, proxy CPU and max RSS.
rate_run() {
  local t=$1 secs=$2 rate=$3 file="$OUT/rate-$1.txt"
  local p0 p1 w0 w1 maxrss=0 r lp i split="0 0 0"
  # shellcheck disable=SC2086
  p0=$(tree_ticks ${T_ROOTS[$t]:-}) w0=$(date +%s%N)
  "$PYTHON" "$BENCH_DIR/lib/rateload.py" --url "${T_URL[$t]}/1k.bin" --host "${T_HOSTHDR[$t]}" \
    --rate "$rate" --duration "$secs" --conns 8 > "$file" 2>&1 &
  lp=$!
  for ((i = 0; i < (secs + 10) * 4; i++)); do
    alive "$lp" || break
    if [[ -n "${T_AGENT[$t]}" ]]; then
      r=$(tree_rss_kb "${T_AGENT[$t]}")
      if ((r > maxrss)); then
        maxrss=$r
        split=$(rss_split_kb "${T_AGENT[$t]}")
      fi
    fi
    sleep 0.25
  done
  kill "$lp" 2>/dev/null || true
  wait "$lp" 2>/dev/null || true
  # shellcheck disable=SC2086
  p1=$(tree_ticks ${T_ROOTS[$t]:-}) w1=$(date +%s%N)
  local line done_ ok rate_got
  line=$(tail -1 "$file")
  done_=$(grep -o 'done=[0-9]*' <<< "$line" | cut -d= -f2)
  ok=$(grep -o 'ok=[0-9]*' <<< "$line" | cut -d= -f2)
  rate_got=$(grep -o ' rate=[0-9.]*' <<< "$line" | cut -d= -f2)
  [[ -n "$done_" ]] || { log "fixed-rate load on $t failed: $line"; return 0; }
  raw "$t" fixed_rate "$rate_got"
  raw "$t" fixed_ok "$ok"
  raw "$t" fixed_done "$done_"
  raw "$t" fixed_ticks "$((p1 - p0))"
  raw "$t" fixed_wall_ms "$(((w1 - w0) / 1000000))"
  raw "$t" fixed_p50_ms "$(grep -o 'p50_ms=[0-9.na]*' <<< "$line" | cut -d= -f2)"
  raw "$t" fixed_p99_ms "$(grep -o 'p99_ms=[0-9.na]*' <<< "$line" | cut -d= -f2)"
  if [[ -n "${T_AGENT[$t]}" ]]; then
    raw "$t" agent_rss_kb "$maxrss"
    local anon file pss
    read -r anon file pss <<< "$split"
    raw "$t" agent_rss_anon_kb "$anon"
    raw "$t" agent_rss_file_kb "$file"
    raw "$t" agent_pss_kb "$pss"
  fi
  log "$t fixed rate: $line; agent-side RSS max ${maxrss} KiB; proxy CPU $((p1 - p0)) ticks"
}
