#!/usr/bin/env bash
# The edge's admin listener and telemetry datagrams, checked with real peers: curl for HTTP and
# Prometheus' own `promtool check metrics` for the exposition format (Debian package prometheus).
#   - without --admin-listen the edge listens on no TCP port but its public HTTPS one
#   - with --admin-listen 127.0.0.1:0: GET /ready 200; unknown path 404; POST /metrics 405; a request
#     head over 8 KiB 431; a request with a body 413 (a chunked one from its head)
#   - `wtmesh http` in front of the Node origin, curl requests through the tunnel (and one to a name no
#     tunnel has), then within a bounded wait /metrics shows: the requests by tunnel and status class,
#     response bytes, public socket bytes, one agent session, and the agent's telemetry from datagram
#     flow 0 (wtmesh_agent_rtt_seconds > 0, wtmesh_agent_info with version 0.1.0, bytes sent > 0; the
#     next report, 5 s later, counts the bytes the agent received)
#   - a session with a garbage token is counted under wtmesh_session_refusals_total{reason="malformed"};
#     a TLS connection whose first record is not a ClientHello under handshake failures (tls)
#   - `promtool check metrics` accepts the whole text (format and lint)
#   - SIGTERM: the edge exits 0 with the admin listener open
# Usage: metrics.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

command -v promtool >/dev/null || die "promtool not found (Debian package prometheus; run scripts/setup.sh)"
T=$PEER_TMP

# tcp_listeners PID: the ports PID listens on over TCP, one a line.
tcp_listeners() { ss -Hltnp 2>/dev/null | grep "pid=$1," | awk '{print $4}' | sed 's/.*://' | sort -u; }

# --- Off by default.
start_edge plain
ports=$(tcp_listeners "${EDGE_PID[plain]}" | tr '\n' ' ')
check "without --admin-listen the edge listens on TCP only for HTTPS (${EDGE_PORT[plain]}; got: $ports)" \
  [ "$ports" = "${EDGE_PORT[plain]} " ]
check "without --admin-listen the edge prints no admin line" bash -c "! grep -q 'admin:' '${EDGE_DIR[plain]}/stdout'"
stop_edge plain

# --- The admin listener.
start_edge main --admin-listen 127.0.0.1:0
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
wait_for 10 grep -q 'admin: http://127.0.0.1:[0-9]*/metrics' "${EDGE_DIR[main]}/stdout" || die "edge printed no admin line"
AP=$(grep -m1 -oE 'admin: http://127\.0\.0\.1:[0-9]+' "${EDGE_DIR[main]}/stdout" | grep -oE '[0-9]+$')
ADMIN=http://127.0.0.1:$AP
log "admin listener on $ADMIN"

# admin_code ARGS...: curl the admin listener, print the status code (body in $T/admin.body).
admin_code() { curl -sS -m 5 -o "$T/admin.body" -w '%{http_code}' "$@" 2>>"$T/curl.err"; }

code=$(admin_code "$ADMIN/ready")
check "GET /ready: 200 (got $code)" [ "$code" = 200 ]
code=$(admin_code "$ADMIN/nope")
check "GET /nope: 404 (got $code)" [ "$code" = 404 ]
code=$(admin_code -X POST "$ADMIN/metrics")
check "POST /metrics: 405 (got $code)" [ "$code" = 405 ]
code=$(admin_code -H "X-Big: $(head -c 9000 /dev/zero | tr '\0' a)" "$ADMIN/metrics")
check "a request head over 8 KiB: 431 (got $code)" [ "$code" = 431 ]
code=$(admin_code -X GET --data-binary 'body' "$ADMIN/metrics")
check "a request with a body: 413 (got $code)" [ "$code" = 413 ]
# A chunked body is refused from the head, before any of it is parsed: the empty one below, sent in
# pieces, made Beast 1.83 assert (common/beast_chunked.h); the edge used to wait for the whole body.
status=$(
  exec 3<>"/dev/tcp/127.0.0.1/$AP"
  printf 'GET /metrics HTTP/1.1\r\nHost: admin\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n' >&3
  timeout 3 head -n 1 <&3 | tr -d '\r'
)
check "a chunked request body: 413 at once (got: $status)" [ "$status" = "HTTP/1.1 413 Payload Too Large" ]
code=$(admin_code -I "$ADMIN/ready")
check "HEAD /ready: 405 (got $code)" [ "$code" = 405 ]
ct=$(curl -sS -m 5 -o /dev/null -w '%{content_type}' "$ADMIN/metrics")
check "GET /metrics: content type text/plain; version=0.0.4 ($ct)" grep -q '^text/plain; version=0.0.4' <<<"$ct"

# --- Traffic through a tunnel.
start_origin main
start_http app main app "${ORIGIN_PORT[main]}"
BASE=https://app.localhost:$EP
ok=0
for i in 1 2 3; do
  code=$(curl -sS -m 10 --cacert "$CA" -o /dev/null -w '%{http_code}' "$BASE/hello" 2>>"$T/curl.err")
  [ "$code" = 200 ] && ok=$((ok + 1))
done
check "3 GETs through the tunnel answer 200 ($ok)" [ "$ok" = 3 ]
code=$(curl -sS -m 10 --cacert "$CA" -o /dev/null -w '%{http_code}' "https://nobody.localhost:$EP/" 2>>"$T/curl.err")
check "a name no tunnel has: 404 (got $code)" [ "$code" = 404 ]

# A session with a garbage token (refused with 401, counted by reason) and a TLS connection whose
# first record is no ClientHello (a failed handshake).
timeout 15 "$WTMESH" http "${ORIGIN_PORT[main]}" --edge "https://127.0.0.1:$EP" --token not-a-token --name bad \
  --ca "$CA" >"$T/bad-agent.out" 2>&1 </dev/null
rc=$?
check "wtmesh http with a garbage token gives up (status $rc)" [ "$rc" != 0 ] && [ "$rc" != 124 ]
printf '\x16\x03\x01\x00\x08garbage!' | nc -q 1 -w 3 127.0.0.1 "$EP" >/dev/null 2>&1

# value NAME_WITH_LABELS: the sample's value in $T/metrics ("" when absent).
value() { awk -v k="$1" '$1 == k {print $2; exit}' "$T/metrics"; }
scrape() { curl -sS -m 5 "$ADMIN/metrics" -o "$T/metrics" 2>>"$T/curl.err"; }
# The agent's reports: one when the session is ready, then every 5 s; the RTT is QUIC's.
agent_reported() {
  scrape || return 1
  grep -qE '^wtmesh_agent_info\{agent="app#[0-9]+",version="0\.1\.0"\} 1$' "$T/metrics" &&
    grep -qE '^wtmesh_agent_rtt_seconds\{agent="app#[0-9]+"\} ' "$T/metrics" &&
    grep -q '^wtmesh_handshake_failures_total{transport="tls"} [1-9]' "$T/metrics"
}
check "within 12 s /metrics carries the agent's telemetry" wait_for 12 agent_reported
cp "$T/metrics" "$T/metrics.log"  # shown on failure

AGENT=$(grep -m1 -oE 'agent="app#[0-9]+"' "$T/metrics" | sed 's/agent="//; s/"$//')
rtt=$(value "wtmesh_agent_rtt_seconds{agent=\"$AGENT\"}")
check "wtmesh_agent_rtt_seconds for $AGENT is > 0 and < 1 ($rtt)" awk -v v="$rtt" 'BEGIN { exit !(v > 0 && v < 1) }'
sent=$(value "wtmesh_agent_sent_bytes_total{agent=\"$AGENT\"}")
check "wtmesh_agent_sent_bytes_total > 0 ($sent)" [ "${sent:-0}" -gt 0 ]
up=$(value "wtmesh_agent_uptime_seconds{agent=\"$AGENT\"}")
check "wtmesh_agent_uptime_seconds present ($up)" [ -n "$up" ]
n=$(value 'wtmesh_http_requests_total{tunnel="app.localhost",code="2xx"}')
check "wtmesh_http_requests_total{tunnel=\"app.localhost\",code=\"2xx\"} = 3 ($n)" [ "$n" = 3 ]
n=$(value 'wtmesh_http_requests_total{tunnel="_none",code="4xx"}')
check "wtmesh_http_requests_total{tunnel=\"_none\",code=\"4xx\"} = 1 ($n)" [ "$n" = 1 ]
body_len=$(curl -sS -m 10 --cacert "$CA" "$BASE/hello" | wc -c)
b=$(value 'wtmesh_http_response_bytes_total{tunnel="app.localhost"}')
check "response bytes for app.localhost = 3 x $body_len ($b)" [ "$b" = $((3 * body_len)) ]
for k in wtmesh_public_received_bytes_total wtmesh_public_sent_bytes_total; do
  v=$(value "$k")
  check "$k > 0 ($v)" [ "${v:-0}" -gt 0 ]
done
v=$(value wtmesh_agent_sessions)
check "wtmesh_agent_sessions = 1 ($v)" [ "$v" = 1 ]
v=$(value 'wtmesh_session_refusals_total{reason="malformed"}')
check "wtmesh_session_refusals_total{reason=\"malformed\"} = 1 ($v)" [ "$v" = 1 ]
v=$(value 'wtmesh_telemetry_reports_total{result="accepted"}')
check "wtmesh_telemetry_reports_total{result=\"accepted\"} >= 1 ($v)" [ "${v:-0}" -ge 1 ]
v=$(value 'wtmesh_telemetry_reports_total{result="invalid"}')
check "no invalid telemetry reports ($v)" [ "$v" = 0 ]
# The next report (5 s after the first) counts the requests' bytes the agent received.
second_report() {
  scrape || return 1
  [ "$(value 'wtmesh_telemetry_reports_total{result="accepted"}')" -ge 2 ] &&
    [ "$(value "wtmesh_agent_received_bytes_total{agent=\"$AGENT\"}")" -gt 0 ]
}
check "within 12 s a second report arrives, counting the bytes the agent received" wait_for 12 second_report
check "every family has HELP and TYPE lines and starts with wtmesh_" \
  awk '/^# HELP /{h[$3]=1} /^# TYPE /{t[$3]=1} !/^#/{n=$1; sub(/\{.*/, "", n); if (!(n in h) || !(n in t) || n !~ /^wtmesh_/) bad=1} END {exit bad}' "$T/metrics"

promtool check metrics <"$T/metrics" >"$T/promtool.log" 2>&1
rc=$?
check "promtool check metrics accepts /metrics (status $rc)" [ "$rc" = 0 ]

stop_edge main
check "SIGTERM with the admin listener open: the edge exits 0 ($STOP_STATUS)" [ "$STOP_STATUS" = 0 ]

peer_finish
