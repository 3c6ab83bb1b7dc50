#!/usr/bin/env bash
# Real peers through the HTTP tunnel, HTTP/1.1 on the public side (HTTP/2: http_tunnel_h2.sh): curl,
# wrk and raw sockets against `wtmesh edge`'s public
# HTTPS/HTTP listeners, `wtmesh http` in front of a Node origin (tests/peers/origin.mjs). Checks:
#   - curl with the edge's CA (real verification, SNI = NAME.localhost): 200 and the exact body;
#     without the CA curl refuses the certificate; openssl s_client: an X25519 key share gets no
#     HelloRetryRequest, the session ticket resumes the next connection, the suite is AES-128-GCM
#     whatever OpenSSL lists first, CBC-only TLS 1.2 is refused
#   - the origin sees X-Forwarded-For/-Proto/-Host and Forwarded; hop-by-hop headers (Connection and
#     what it names, Keep-Alive, TE, Upgrade, Proxy-Connection) are not forwarded; others are
#   - POST body echoed byte for byte (256 KiB)
#   - SSE and chunked responses stream: each event/chunk reaches curl soon after the origin wrote it
#     (arrival - origin send time, same clock), the first long before the last is written
#   - `wtmesh http` logs one line per request
#   - wrk -t2 -c64 -d3s (Host header, no SNI): thousands of requests (200 in a sanitizer build), no
#     non-2xx, no socket errors
#   - error statuses: unknown host 404, malformed request 400 (raw bytes, plain HTTP listener), two
#     Host headers 400, CONNECT 405, oversized header section 431, upstream refused 502 (why in the agent's log only),
#     upstream closing without an answer 502, upstream dying mid-body: the client sees a cut response
#   - a second live agent asking for the same name is refused with a clear message; the first keeps it
#   - agent stopped with SIGTERM: 502 at once; restarted: the same hostname answers 200 again
#   - a wildcard tunnel (--name '*.svc') answers a.svc and b.svc, not x.y.svc (404)
#   - `wtmesh agent --config` (YAML, token_file with a '*' token): web, api and the '*' catch-all on
#     one session, all answer, the log lines carry the hostname, SIGTERM exits 0; a config without
#     edge is refused
#   (agent kill -9: http_tunnel_kill.sh)
# Usage: http_tunnel.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

start_edge main --http-listen 127.0.0.1:0
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
HTTP_PORT=$(grep -m1 -oE 'plain HTTP: http://NAME\.localhost:[0-9]+' "${EDGE_DIR[main]}/stdout" | grep -oE '[0-9]+$')
[ -n "$HTTP_PORT" ] || die "edge printed no plain HTTP port"
start_origin main
OP=${ORIGIN_PORT[main]}
start_http app main app "$OP"
BASE=https://app.localhost:$EP
check "wtmesh http prints the public URL $BASE/" [ "${AGENT_URL[app]}" = "$BASE/" ]

T=$PEER_TMP
# curl_to URL [curl args...]: prints the status code; body in $T/body, headers in $T/head. HTTP/1.1:
# this script checks that version's framing and hop-by-hop rules (HTTP/2: http_tunnel_h2.sh).
curl_to() {
  local url=$1
  shift
  curl -sS -m 10 --http1.1 --cacert "$CA" -o "$T/body" -D "$T/head" -w '%{http_code}' "$@" "$url" 2>"$T/curl.err"
}

# --- Basic GET with real certificate verification.
code=$(curl_to "$BASE/hello")
check "GET /hello through the tunnel: 200 (got $code)" [ "$code" = 200 ]
check "GET /hello: exact body" [ "$(cat "$T/body")" = "hello from the origin" ]
curl -sS -m 10 -o /dev/null "$BASE/hello" 2>"$T/curl-noca.err"
rc=$?
check "curl without the edge's CA refuses the certificate (exit $rc, want 60)" [ "$rc" = 60 ]
subject=$(openssl s_client -connect "127.0.0.1:$EP" -servername app.localhost -CAfile "$CA" \
  -verify_hostname app.localhost </dev/null 2>/dev/null | grep -m1 -E 'Verify return code')
check "openssl: the certificate for SNI app.localhost verifies ($subject)" grep -q 'Verify return code: 0 (ok)' <<<"$subject"

# --- TLS details a client feels: X25519 (OpenSSL's first key share) is taken without a
# HelloRetryRequest round trip; a session ticket arrives and resumes the next connection.
hello_count=$(openssl s_client -connect "127.0.0.1:$EP" -servername app.localhost -CAfile "$CA" -tls1_3 \
  -groups X25519:P-256 -msg </dev/null 2>/dev/null | grep -c '>>> .*ClientHello')
check "openssl with an X25519 share: one ClientHello, no HelloRetryRequest (saw $hello_count)" [ "$hello_count" = 1 ]
openssl s_client -connect "127.0.0.1:$EP" -servername app.localhost -CAfile "$CA" -tls1_3 \
  -sess_out "$PEER_TMP/tls-session.pem" < <(sleep 0.3) >/dev/null 2>&1
resumed=$(openssl s_client -connect "127.0.0.1:$EP" -servername app.localhost -CAfile "$CA" -tls1_3 \
  -sess_in "$PEER_TMP/tls-session.pem" </dev/null 2>/dev/null | grep -m1 -E '^(New|Reused),')
check "openssl resumes the TLS 1.3 session with the edge's ticket ($resumed)" grep -q '^Reused, TLSv1.3' <<<"$resumed"
# OpenSSL lists TLS_AES_256_GCM_SHA384 first; the edge's order (AES-128-GCM first) wins. A TLS 1.2
# client offering only CBC suites is refused.
suite=$(openssl s_client -connect "127.0.0.1:$EP" -servername app.localhost -CAfile "$CA" -tls1_3 \
  </dev/null 2>/dev/null | grep -m1 -oE 'Cipher is [A-Z0-9_-]+')
check "openssl's default offer gets TLS_AES_128_GCM_SHA256 ($suite)" [ "$suite" = "Cipher is TLS_AES_128_GCM_SHA256" ]
if openssl s_client -connect "127.0.0.1:$EP" -servername app.localhost -tls1_2 \
  -cipher ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256 </dev/null >/dev/null 2>&1; then cbc=accepted; else cbc=refused; fi
check "openssl TLS 1.2 with only CBC suites is refused ($cbc)" [ "$cbc" = refused ]

# --- Forwarding and hop-by-hop headers.
code=$(curl_to "$BASE/headers" -H 'Connection: x-foo' -H 'X-Foo: must-not-pass' -H 'Keep-Alive: timeout=5' \
  -H 'TE: trailers' -H 'Upgrade: h2c' -H 'Proxy-Connection: keep-alive' -H 'X-Keep: yes')
check "GET /headers: 200 (got $code)" [ "$code" = 200 ]
# Lower-case "name: value" lines as the origin received them.
seen=$(node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  for (let i = 0; i < r.headers.length; i += 2) console.log(r.headers[i].toLowerCase() + ": " + r.headers[i + 1]);
' "$T/body") || fail "origin's /headers answer is not JSON: $(head -c 300 "$T/body")"
# shellcheck disable=SC2317  # called through check
has_header() { grep -qxF -- "$1" <<<"$seen"; }
check "origin sees X-Forwarded-For: 127.0.0.1" has_header "x-forwarded-for: 127.0.0.1"
check "origin sees X-Forwarded-Proto: https" has_header "x-forwarded-proto: https"
check "origin sees X-Forwarded-Host: app.localhost:$EP" has_header "x-forwarded-host: app.localhost:$EP"
check "origin sees Forwarded: for=127.0.0.1;host=\"app.localhost:$EP\";proto=https" \
  has_header "forwarded: for=127.0.0.1;host=\"app.localhost:$EP\";proto=https"
check "origin sees Host: app.localhost:$EP" has_header "host: app.localhost:$EP"
check "origin sees the end-to-end header X-Keep" has_header "x-keep: yes"
for h in x-foo keep-alive te upgrade proxy-connection; do
  if grep -q "^$h: " <<<"$seen"; then fail "hop-by-hop header $h was forwarded: $(grep "^$h: " <<<"$seen")"; else pass "hop-by-hop header $h not forwarded"; fi
done
if grep -q '^connection: ' <<<"$seen" && ! grep -qix 'connection: keep-alive' <<<"$seen"; then
  fail "the client's Connection header was forwarded: $(grep '^connection: ' <<<"$seen")"
else
  pass "the client's Connection header (x-foo) was not forwarded"
fi
# X-Forwarded-Proto over the plain HTTP listener is http.
code=$(curl -sS -m 10 -o "$T/body" -w '%{http_code}' "http://app.localhost:$HTTP_PORT/headers" 2>"$T/curl.err")
check "plain HTTP listener: 200 (got $code) and X-Forwarded-Proto: http" \
  bash -c "[ '$code' = 200 ] && grep -q '\"x-forwarded-proto\",\"http\"' '$T/body'"

# --- POST body echo.
head -c $((256 * 1024)) /dev/urandom >"$T/post.bin"
code=$(curl_to "$BASE/echo" --data-binary @"$T/post.bin" -H 'Content-Type: application/octet-stream')
check "POST /echo 256 KiB: 200 (got $code)" [ "$code" = 200 ]
check "POST /echo: body echoed byte for byte" cmp -s "$T/post.bin" "$T/body"

# --- Streaming: SSE and chunked. Each line gets its arrival time (ms) prefixed.
# stream_times PATH OUT: curl -N, every received line written as "ARRIVAL_MS LINE".
stream_times() {
  curl -sS -N -m 20 --http1.1 --cacert "$CA" -D "$T/stream-head" "$BASE$1" 2>"$T/curl-stream.err" |
    while IFS= read -r line; do
      [ -n "$line" ] && printf '%s %s\n' "$(( ${EPOCHREALTIME/./} / 1000 ))" "$line"
    done >"$2"
}
# stream_verdict FILE N WHAT: checks N lines, each arriving < 250 ms after the origin wrote it (t=),
# the first before the origin wrote the last. Prints the figures.
stream_verdict() {
  local file=$1 n=$2 what=$3 lats first_arrival last_sent max_lat gaps
  check "$what: $n pieces arrived (got $(wc -l <"$file"))" [ "$(wc -l <"$file")" -eq "$n" ]
  [ -s "$file" ] || return 0
  lats=$(sed -E 's/^([0-9]+) .* t=([0-9]+)$/\1 \2/' "$file" | awk '{print $1 - $2}' | paste -sd' ')
  max_lat=$(tr ' ' '\n' <<<"$lats" | sort -n | tail -1)
  first_arrival=$(head -1 "$file" | cut -d' ' -f1)
  last_sent=$(tail -1 "$file" | grep -oE 't=[0-9]+' | cut -d= -f2)
  gaps=$(awk 'NR > 1 {printf "%d ", $1 - prev} {prev = $1}' "$file")
  log "$what: arrival - send (ms): $lats; gaps between arrivals (ms): $gaps"
  check "$what: every piece arrives < 250 ms after the origin wrote it (max $max_lat ms)" [ "$max_lat" -lt 250 ]
  check "$what: the first piece arrived $((last_sent - first_arrival)) ms before the origin wrote the last (want > 800)" \
    [ $((last_sent - first_arrival)) -gt 800 ]
}
stream_times "/sse?n=5&ms=300" "$T/sse.times"
stream_verdict "$T/sse.times" 5 "SSE (5 events, 300 ms apart)"
check "SSE: Content-Type text/event-stream reaches the client" grep -qi '^content-type: text/event-stream' "$T/stream-head"
stream_times "/chunked?n=5&ms=300" "$T/chunked.times"
stream_verdict "$T/chunked.times" 5 "chunked response (5 chunks, 300 ms apart)"
check "chunked: the client gets Transfer-Encoding: chunked" grep -qi '^transfer-encoding: chunked' "$T/stream-head"

# --- The agent's request log (flushed twice a second).
check "wtmesh http logs 'GET /hello 200' (one line per request)" \
  wait_for 3 grep -qE ' GET /hello 200 [0-9]+ [0-9.]+ ms' "${AGENT_OUT[app]}"

# --- wrk: many connections, no SNI, Host header.
wrk -t2 -c64 -d3s --latency -H "Host: app.localhost:$EP" "https://127.0.0.1:$EP/hello" >"$T/wrk.log" 2>&1
wrk_rc=$?
reqs=$(grep -oE '^ +[0-9]+ requests in' "$T/wrk.log" | grep -oE '[0-9]+' | head -1)
rps=$(grep -oE 'Requests/sec: +[0-9.]+' "$T/wrk.log" | grep -oE '[0-9.]+$')
non2xx=$(grep -oE 'Non-2xx or 3xx responses: [0-9]+' "$T/wrk.log" | grep -oE '[0-9]+$')
sockerr=$(grep -E 'Socket errors' "$T/wrk.log" || true)
log "wrk: ${reqs:-?} requests, ${rps:-?} req/s; $(grep -E 'Latency|99%' "$T/wrk.log" | tr -s ' ' | paste -sd';')"
check "wrk exits 0 (status $wrk_rc)" [ "$wrk_rc" = 0 ]
# A floor that says 64 connections at once are served, not a speed test (bench/ measures speed).
# Measured: ~18-33k requests (6-11k req/s) in a RelWithDebInfo build; a Debug ASan build did ~4k on
# the 2026-11 CI box but 1314 alone and 728 under CI on a 2.5x slower one (2026-12-02).
min_reqs=2000
wtmesh_sanitized && min_reqs=200
check "wrk: at least $min_reqs requests in 3 s (${reqs:-none}, ${rps:-?} req/s)" [ "${reqs:-0}" -ge "$min_reqs" ]
check "wrk: no non-2xx responses (${non2xx:-0})" [ -z "$non2xx" ]
check "wrk: no socket errors (${sockerr:-none})" [ -z "$sockerr" ]

# --- Error statuses.
code=$(curl_to "https://nope.localhost:$EP/hello")
check "unknown host: 404 (got $code)" [ "$code" = 404 ]
check "404 page names the host" grep -q 'No tunnel is serving nope.localhost' "$T/body"
# raw_http REQUEST_BYTES: sends them to the plain HTTP listener, prints the response status line.
raw_http() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$HTTP_PORT"'; printf "%b" "$1" >&3; head -c 2000 <&3' _ "$1" 2>/dev/null |
    head -1 | tr -d '\r'
}
status=$(raw_http 'GARBAGE\x01 / HTTP/1.1\r\nHost: app.localhost\r\n\r\n')
check "malformed request line (raw bytes): 400 (got '$status')" grep -q '^HTTP/1.1 400' <<<"$status"
status=$(raw_http 'GET / HTTP/1.1\r\nHost: app.localhost\r\nHost: other.localhost\r\n\r\n')
check "two Host headers: 400 (got '$status')" grep -q '^HTTP/1.1 400' <<<"$status"
status=$(raw_http 'GET / HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
check "Content-Length with Transfer-Encoding: 400 (got '$status')" grep -q '^HTTP/1.1 400' <<<"$status"
status=$(raw_http 'CONNECT app.localhost:443 HTTP/1.1\r\nHost: app.localhost:443\r\n\r\n')
check "CONNECT: 405 (got '$status')" grep -q '^HTTP/1.1 405' <<<"$status"
# Same through TLS with openssl s_client (raw bytes after the handshake).
status=$(printf 'BROKEN\r\n\r\n' | timeout 5 openssl s_client -quiet -connect "127.0.0.1:$EP" -servername app.localhost \
  -CAfile "$CA" 2>/dev/null | head -1 | tr -d '\r')
check "malformed request over TLS (openssl s_client): 400 (got '$status')" grep -q '^HTTP/1.1 400' <<<"$status"
big=$(head -c 60000 /dev/zero | tr '\0' a)
code=$(curl_to "$BASE/hello" -H "X-Big: $big")
check "60 KB header section: 431 (got $code)" [ "$code" = 431 ]
# Upstream refused: a tunnel whose local port has nothing listening.
closed_port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
start_http down main down "$closed_port"
code=$(curl_to "https://down.localhost:$EP/x")
check "upstream refused: 502 (got $code)" [ "$code" = 502 ]
check "upstream refused: the 502 names neither the upstream's port nor the errno ($(grep -oiE '<p>[^<]*' "$T/body" | head -1))" \
  bash -c "! grep -qiE 'refused|:$closed_port' '$T/head' '$T/body' && grep -qi 'find why in the wtmesh agent' '$T/body'"
check "wtmesh http logs the failed request with its reason" wait_for 3 grep -qiE "GET /x .*refused.*:$closed_port" "${AGENT_OUT[down]}"
stop_pid "${AGENT_PID[down]}" 5
# The origin closes the connection without answering: 502, and why in the agent's log.
code=$(curl_to "$BASE/drop")
check "upstream closed without answering: 502 (got $code: $(grep -oE '<p>[^<]*' "$T/body" | head -1))" [ "$code" = 502 ]
check "the agent's log says the upstream closed the connection before responding" \
  wait_for 3 grep -q 'GET /drop .*closed the connection before responding' "${AGENT_OUT[app]}"
check "... the 502 page does not" bash -c "! grep -q 'closed the connection' '$T/body'"
# The origin dies mid-body: the client must not take the short body for a complete one.
code=$(curl_to "$BASE/partial")
rc=$?
size=$(stat -c %s "$T/body" 2>/dev/null || echo 0)
check "upstream cut mid-body: curl sees a truncated response (exit $rc, status $code, $size of 1000 bytes)" \
  bash -c "[ '$rc' -ne 0 ] && [ '$size' -lt 1000 ]"
code=$(curl_to "$BASE/hello")
check "the tunnel still answers after upstream failures: 200 (got $code)" [ "$code" = 200 ]

# --- A second agent for a taken name.
launch_http dup main app "$OP" "$(make_token main app)"
if wait_for 10 grep -q 'app.localhost is served by another agent' "${AGENT_ERR[dup]}"; then
  pass "second agent for app is refused: $(grep -m1 'served by another' "${AGENT_ERR[dup]}")"
else
  fail "second agent for app: no 'served by another agent' message within 10 s: $(tail -3 "${AGENT_ERR[dup]}")"
fi
code=$(curl_to "$BASE/hello")
check "the first agent still serves app: 200 (got $code)" [ "$code" = 200 ]
stop_pid "${AGENT_PID[dup]}" 5
check "the refused second agent stops on SIGTERM (status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]

# --- Agent stopped cleanly: 502 at once; restarted: the same hostname.
stop_pid "${AGENT_PID[app]}" 5
check "wtmesh http exits 0 on SIGTERM (status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
t0=$(now_ms)
code=$(curl_to "$BASE/hello")
check "after SIGTERM of the agent: 502 (got $code, $(($(now_ms) - t0)) ms)" [ "$code" = 502 ]
check "the 502 says the agent is not connected" grep -q 'offline: its agent is not connected' "$T/body"
t0=$(now_ms)
start_http app main app "$OP"
code=$(curl_to "$BASE/hello")
restart_ms=$(($(now_ms) - t0))
[ "$code" = 200 ] || log "restarted agent: the answer was $code: $(grep -oE '<p>[^<]*' "$T/body" | head -1)"
check "restarted agent: same URL $BASE/ and 200 again (got $code, ${restart_ms} ms from start)" \
  bash -c "[ '${AGENT_URL[app]}' = '$BASE/' ] && [ '$code' = 200 ]"

# --- Wildcard tunnel: `--name '*.svc'` serves every X.svc.localhost (one label), with its own token.
start_http svc main '*.svc' "$OP"
for h in a.svc b.svc; do
  code=$(curl_to "https://$h.localhost:$EP/hello")
  check "wildcard *.svc: $h.localhost answers 200 through it, certificate verified (got $code)" [ "$code" = 200 ]
done
code=$(curl_to "https://x.y.svc.localhost:$EP/hello")
check "wildcard *.svc matches one label only: x.y.svc.localhost is 404 (got $code)" [ "$code" = 404 ]
stop_pid "${AGENT_PID[svc]}" 5

# --- `wtmesh agent --config`: two tunnels on one session, a wildcard token from a token file.
"$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name '*' >"$T/wild.token" || die "wtmesh token --name '*' failed"
cat >"$T/agent.yaml" <<YAML
edge: https://127.0.0.1:$EP
ca: $CA
token_file: $T/wild.token
tunnels:
  - name: web
    local_port: $OP
  - name: api
    type: http
    upstream: localhost:$OP
  - name: "*"
    local_port: $OP
YAML
"$WTMESH" agent --config "$T/agent.yaml" >"$T/agent-yaml.out.log" 2>"$T/agent-yaml.err.log" </dev/null &
yaml_pid=$!
track "$yaml_pid"
check "wtmesh agent --config registers web, api and * (URL lines)" wait_for 10 bash -c \
  "grep -qxF 'https://web.localhost:$EP/  ->  http://127.0.0.1:$OP/' '$T/agent-yaml.out.log' && grep -qF 'https://api.localhost:$EP/' '$T/agent-yaml.out.log' && grep -qF 'https://*.localhost:$EP/' '$T/agent-yaml.out.log'"
for n in web api; do
  code=$(curl_to "https://$n.localhost:$EP/hello")
  check "wtmesh agent: $n.localhost answers 200 with the origin's body (got $code)" \
    bash -c "[ '$code' = 200 ] && [ \"\$(cat '$T/body')\" = 'hello from the origin' ]"
done
code=$(curl_to "https://elsewhere.localhost:$EP/hello")
check "wtmesh agent: the '*' catch-all answers a name no tunnel holds exactly (got $code)" [ "$code" = 200 ]
check "wtmesh agent logs requests prefixed with the hostname" \
  wait_for 3 grep -qE ' api\.localhost GET /hello 200 ' "$T/agent-yaml.out.log"
stop_pid "$yaml_pid" 5
check "wtmesh agent exits 0 on SIGTERM (status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
printf 'tunnels:\n  - name: web\n    local_port: %s\n' "$OP" >"$T/bad.yaml"
timeout 10 "$WTMESH" agent --config "$T/bad.yaml" >/dev/null 2>"$T/bad-yaml.err.log"
rc=$?
check "wtmesh agent with a config lacking edge: exit $rc and a sentence ($(head -1 "$T/bad-yaml.err.log"))" \
  bash -c "[ '$rc' -ne 0 ] && [ '$rc' -ne 124 ] && grep -q '^wtmesh: .*edge' '$T/bad-yaml.err.log'"

stop_edge main
check "edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
