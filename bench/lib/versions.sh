# shellcheck shell=bash disable=SC2034
# bench/lib/versions.sh: the rows for the other HTTP versions (issue 11).
#   - wtmesh_h2c: a second agent (`wtmesh http --upstream h2c`) in front of the origin's HTTP/2
#     prior-knowledge port; a normal target (wrk, bulk, fixed rate), so it sits beside `wtmesh`, whose
#     agent speaks HTTP/1.1 to the same nginx.
#   - HTTP/2 public: h2load (nghttp2-client) on /1k.bin against nginx's TLS server block (`http2` on)
#     and against the edge (ALPN h2), interleaved rounds, proxy CPU per request.
#   - HTTP/3 public: ngtcp2's gtlsclient fetching /1k.bin N times on one QUIC connection (streams as
#     the peer's limit allows) against the edge and against gtlsserver serving the same file directly
#     (no proxy: the ceiling of this load generator). Debian has no HTTP/3 load generator (h2load is
#     built without it, curl 7.88 has no HTTP/3), so gtlsclient is the one here; it is single-threaded
#     and prints per stream, so its rate is a floor: compare the CPU per request.
# Sourced, not executed.

H2LOAD_ARGS=(-t2 -c32 -m10)
H3_REQUESTS=${H3_REQUESTS:-4000}

# start_wtmesh_h2c: after start_wtmesh (its edge, EDGE_PORT, state dir).
start_wtmesh_h2c() {
  local dir=$BENCH_TMP/wtmesh token
  token=$("$WTMESH" token --state-dir "$dir" --name bench2 --ttl 1h 2> "$OUT/token2.log" |
    grep -Eo '[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+' | tail -1)
  [[ -n "$token" ]] || { cat "$OUT/token2.log" >&2; die "wtmesh token printed no token for bench2"; }
  # shellcheck disable=SC2086
  spawn agent_h2c "$WTMESH" $WTMESH_GLOBAL_ARGS http "$ORIGIN_H2C_PORT" --upstream h2c \
    --edge "https://127.0.0.1:$EDGE_PORT" --token "$token" --name bench2 --ca "$dir/ca.pem" $WTMESH_HTTP_ARGS
  local pid=$SPAWNED_PID host="bench2.localhost:$EDGE_PORT" code=000
  local curlargs="--cacert $dir/ca.pem --resolve bench2.localhost:$EDGE_PORT:127.0.0.1"
  local deadline=$((SECONDS + 20))
  while ((SECONDS < deadline)); do
    alive "$pid" || break
    # shellcheck disable=SC2086
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 $curlargs "https://$host/1k.bin") || true
    [[ "$code" == 200 ]] && break
    sleep 0.2
  done
  if [[ "$code" != 200 ]]; then
    log "the h2c-upstream tunnel never answered 200 (last status $code); no wtmesh_h2c row"
    tail -5 "$OUT/agent_h2c.log" >&2
    return 0
  fi
  register wtmesh_h2c HTTPS "https://127.0.0.1:$EDGE_PORT" "$host" "https://$host" "$curlargs" \
    "$WTMESH_EDGE_PID $pid" "$pid" "edge+agent, the agent's upstream is h2c (nginx listen http2, prior knowledge)"
}

# h2_run TARGET TAG SECONDS: h2load on /1k.bin over TLS (ALPN h2); TAG "warmup" is not recorded.
h2_run() {
  local t=$1 tag=$2 secs=$3 file="$OUT/h2load-$1-$2.txt" p0 p1 args=("${H2LOAD_ARGS[@]}" -D "$secs")
  [[ -n "${T_HOSTHDR[$t]}" ]] && args+=(-H ":authority: ${T_HOSTHDR[$t]}")
  # shellcheck disable=SC2086
  p0=$(tree_ticks ${T_ROOTS[$t]})
  timeout $((secs + 30)) h2load "${args[@]}" "${T_URL[$t]}/1k.bin" > "$file" 2>&1 || log "h2load on $t exited non-zero"
  # shellcheck disable=SC2086
  p1=$(tree_ticks ${T_ROOTS[$t]})
  [[ "$tag" == warmup ]] && return 0
  local rps ok failed proto
  rps=$(awk '/^finished in/ { gsub(/,/, ""); print $4 }' "$file")
  ok=$(awk '/^requests:/ { print $8 }' "$file")
  failed=$(awk '/^requests:/ { print $10 + $12 + $14 }' "$file")
  proto=$(awk '/^Application protocol:/ { print $3 }' "$file")
  [[ -n "$rps" && -n "$ok" ]] || { log "could not parse $file"; return 0; }
  [[ "$proto" == h2 ]] || log "WARNING: h2load on $t negotiated '$proto', not h2"
  raw "$t" h2_rps "$rps"
  raw "$t" h2_requests "$ok"
  raw "$t" h2_errors "$failed"
  raw "$t" h2_ticks "$((p1 - p0))"
  log "$t h2load $tag: $rps req/s, $ok ok, $failed failed, proxy CPU $((p1 - p0)) ticks"
}

# start_gtlsserver: the HTTP/3 reference (gtlsserver serving the origin's files with an ECDSA P-256
# certificate of its own). Registers no target: phase_versions knows it as "gtlsserver".
start_gtlsserver() {
  local dir=$BENCH_TMP/gtlsserver
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2> "$OUT/gtlsserver-cert.log" || { GTLS_PID=""; return 0; }
  free_port GTLS_PORT
  spawn gtlsserver gtlsserver -q -d "$BENCH_TMP/www" 127.0.0.1 "$GTLS_PORT" "$dir/key.pem" "$dir/cert.pem"
  GTLS_PID=$SPAWNED_PID
  sleep 0.5
  alive "$GTLS_PID" || { log "gtlsserver did not start (see $OUT/gtlsserver.log)"; GTLS_PID=""; }
}

# h3_run NAME PORT AUTHORITY ROOTS: gtlsclient fetches /1k.bin H3_REQUESTS times on one connection.
h3_run() {
  local name=$1 port=$2 authority=$3 roots=$4 file="$OUT/h3-$1.txt" p0 p1 t0 t1
  # shellcheck disable=SC2086
  p0=$(tree_ticks $roots) t0=$(date +%s%N)
  timeout 120 gtlsclient --exit-on-all-streams-close --no-quic-dump \
    --handshake-timeout=10s --timeout=30s -n "$H3_REQUESTS" --sni="${authority%:*}" \
    127.0.0.1 "$port" "https://$authority/1k.bin" > "$file" 2>&1 < /dev/null || log "gtlsclient on $name exited non-zero"
  # shellcheck disable=SC2086
  t1=$(date +%s%N) p1=$(tree_ticks $roots)
  local ms=$(((t1 - t0) / 1000000)) ok
  ok=$(grep -c ':status: 200\]' "$file" || true)
  raw "h3_$name" h3_requests "$H3_REQUESTS"
  raw "h3_$name" h3_errors "$((H3_REQUESTS - ok))"
  raw "h3_$name" h3_wall_ms "$ms"
  raw "h3_$name" h3_ticks "$((p1 - p0))"
  log "h3 $name: $H3_REQUESTS requests ($ok x 200) in $ms ms, server CPU $((p1 - p0)) ticks"
}

# phase_versions ROUNDS SECONDS: the HTTP/2 (h2load) and HTTP/3 (gtlsclient) public rows.
phase_versions() {
  local rounds=$1 secs=$2 r t h2=()
  for t in nginx_tls wtmesh; do [[ " ${TARGETS[*]} " == *" $t "* ]] && h2+=("$t"); done
  if ((${#h2[@]})) && command -v h2load > /dev/null; then
    log "phase 5: HTTP/2 public, h2load ${H2LOAD_ARGS[*]}, $rounds round(s) of ${secs}s per target"
    for t in "${h2[@]}"; do h2_run "$t" warmup 2; done
    for ((r = 1; r <= rounds; r++)); do
      for ((i = 0; i < ${#h2[@]}; i++)); do h2_run "${h2[$(((i + r - 1) % ${#h2[@]}))]}" "r$r" "$secs"; done
    done
  else
    log "phase 5 skipped (no h2load, or neither nginx_tls nor wtmesh selected)"
  fi
  if [[ " ${TARGETS[*]} " == *" wtmesh "* ]] && command -v gtlsclient > /dev/null && command -v gtlsserver > /dev/null; then
    log "phase 6: HTTP/3 public, gtlsclient -n $H3_REQUESTS on one connection, $rounds round(s)"
    start_gtlsserver
    for ((r = 1; r <= rounds; r++)); do
      [[ -n "$GTLS_PID" ]] && h3_run gtlsserver "$GTLS_PORT" "127.0.0.1:$GTLS_PORT" "$GTLS_PID"
      h3_run wtmesh "$EDGE_PORT" "bench.localhost:$EDGE_PORT" "$WTMESH_EDGE_PID $WTMESH_AGENT_PID"
    done
  else
    log "phase 6 skipped (wtmesh not selected, or no gtlsclient/gtlsserver)"
  fi
}

# print_versions: the table of phase 5 and 6, and the wtmesh ratios (after summarize).
print_versions() {
  local s
  s=$(awk -F'\t' -v hz="$CLK_TCK" '
    $2 == "h2_rps" { n[$1]++; v[$1, n[$1]] = $3 }
    $2 == "h2_requests" { req[$1] += $3 } $2 == "h2_ticks" { tk[$1] += $3 } $2 == "h2_errors" { er[$1] += $3 }
    $2 == "h3_requests" { h3r[$1] += $3 } $2 == "h3_wall_ms" { h3w[$1] += $3 } $2 == "h3_ticks" { h3t[$1] += $3 }
    $2 == "h3_errors" { h3e[$1] += $3 }
    END {
      for (t in n) {
        m = n[t]; for (i = 1; i <= m; i++) a[i] = v[t, i] + 0
        for (i = 2; i <= m; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
        med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        printf "h2 %s %.0f %.1f %d\n", t, med, req[t] ? tk[t] * 1e6 / hz / req[t] : 0, er[t]
      }
      for (t in h3r) printf "h3 %s %.0f %.1f %d\n", t, (h3w[t] ? h3r[t] * 1000 / h3w[t] : 0), h3t[t] * 1e6 / hz / h3r[t], h3e[t]
    }' "$OUT/raw.tsv" | sort)
  [[ -n "$s" ]] || return 0
  echo
  echo "Other public HTTP versions (1 KiB file, same origin):"
  printf '  %-3s %-16s %9s %12s %6s\n' ver target 'req/s' 'proxyus/req' errors
  awk '{ printf "  %-3s %-16s %9s %12s %6s\n", $1, $2, $3, $4, $5 }' <<< "$s"
  echo "  h2: h2load ${H2LOAD_ARGS[*]} (median req/s over the rounds; CPU of the proxy processes per request)."
  echo "  h3: gtlsclient -n $H3_REQUESTS on one connection (rate = requests / wall time; CPU of the server"
  echo "      side per request: edge+agent for h3_wtmesh, gtlsserver itself for h3_gtlsserver, a file server"
  echo "      with no proxy hop: the reference this load generator reaches)."
  local h2w h2n h2wc h2nc h3w h3g h2c_r h2c_c
  h2w=$(awk '$1 == "h2" && $2 == "wtmesh" { print $3 }' <<< "$s")
  h2n=$(awk '$1 == "h2" && $2 == "nginx_tls" { print $3 }' <<< "$s")
  h2wc=$(awk '$1 == "h2" && $2 == "wtmesh" { print $4 }' <<< "$s")
  h2nc=$(awk '$1 == "h2" && $2 == "nginx_tls" { print $4 }' <<< "$s")
  h3w=$(awk '$1 == "h3" && $2 == "h3_wtmesh" { print $4 }' <<< "$s")
  h3g=$(awk '$1 == "h3" && $2 == "h3_gtlsserver" { print $4 }' <<< "$s")
  printf '  HTTP/2 request rate vs nginx TLS + http2       %5s   (>= 0.7 is the HTTP/1.1 goal)\n' "$(ratio "$h2w" "$h2n")"
  printf '  HTTP/2 proxy CPU per request vs nginx          %5s   (lower is better)\n' "$(ratio "$h2wc" "$h2nc")"
  printf '  HTTP/3 CPU per request vs gtlsserver direct    %5s   (edge+agent vs a file server)\n' "$(ratio "$h3w" "$h3g")"
  if [[ " ${TARGETS[*]} " == *" wtmesh_h2c "* ]]; then
    h2c_r=$(ratio "$(get wtmesh_h2c rps)" "$(get wtmesh rps)")
    h2c_c=$(ratio "$(get wtmesh_h2c cpu_us_req)" "$(get wtmesh cpu_us_req)")
    printf '  h2c upstream vs HTTP/1.1 upstream: req/s %s, proxy CPU per request %s\n' "$h2c_r" "$h2c_c"
  fi
}
