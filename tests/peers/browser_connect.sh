#!/usr/bin/env bash
# Browsers as mesh clients (docs/protocol.md §8): Debian's headless Chromium loads the demo page the
# edge serves at https://localhost:PORT/connect/ (real certificate checks: an NSS db that trusts the
# edge's CA) and, from it, opens WebTransport sessions to /connect/NAME?token=TOKEN:
#   - NAME = `echo`: a private tcp tunnel to a Python TCP echo (tests/peers/tcp_peer.py serve-echo) and
#     a udp tunnel of the same name to a Python UDP echo (udp_peer.py serve-echo);
#   - 4 bidi streams at once, 40 lines each, echoed exactly (each stream one TCP connection), twice;
#   - 20 datagram pings, each one UDP packet, answered as datagrams;
#   - an edge route (--route) reached the same way;
#   - refusals: a bad token, none, a token whose `connect` does not cover the name, an unknown name
#     (the session is refused; the edge logs the HTTP status), an Origin outside --allow-origin (403,
#     no session), a name whose agent went away after the session opened (its stream is reset with
#     0x13 "offline"), the per-session cap;
#   - telemetry from the page (§8, "Telemetry"): a report on a uni stream shows in the edge's /metrics as
#     wtmesh_agent_* gauges of agent="browser/SUBJECT#N" while the session lives, gone after it; a
#     report over 1024 bytes is refused and counted invalid;
#   - the token appears nowhere in the edge's log.
# Usage: browser_connect.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
# shellcheck source=tests/peers/tcp_lib.bash
source "$(dirname "$0")/tcp_lib.bash"
peer_init "$@"
need_chromium
T=$PEER_TMP

start_tcp_server echo serve-echo
start_tcp_server routed serve-echo
"python3" -u "$PEER_DIR/udp_peer.py" serve-echo >"$T/srv-udp.log" 2>&1 </dev/null &
track $!
wait_for 10 grep -q '^listening ' "$T/srv-udp.log" || die "udp_peer.py serve-echo did not start: $(cat "$T/srv-udp.log")"
UDP_ECHO=$(grep -m1 '^listening ' "$T/srv-udp.log" | cut -d' ' -f2)

pick_tcp_range
start_edge main --tcp-ports "$TCP_RANGE" --max-connects-per-session 6 --route "routed=127.0.0.1:${SRV_PORT[routed]}" \
  --admin-listen 127.0.0.1:0
wait_for 10 grep -q 'admin: http://127.0.0.1:[0-9]*/metrics' "${EDGE_DIR[main]}/stdout" || die "edge printed no admin line"
ADMIN=http://127.0.0.1:$(grep -m1 -oE 'admin: http://127\.0\.0\.1:[0-9]+' "${EDGE_DIR[main]}/stdout" | grep -oE '[0-9]+$')
start_edge strict --allow-origin https://example.invalid
start_tcp echo main echo "${SRV_PORT[echo]}" --private
start_udp uecho main echo "$UDP_ECHO" --private
start_tcp_server gone serve-echo
start_tcp gone main gone "${SRV_PORT[gone]}" --private

TOKEN=$("$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name browser --connect echo --connect routed \
  --connect gone --connect nosuch) || die "wtmesh token failed"
TOKEN_SCOPE=$("$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name browser --connect other) || die "wtmesh token failed"
TOKEN_STRICT=$("$WTMESH" token --state-dir "${EDGE_STATE[strict]}" --name browser --connect echo) || die "wtmesh token failed"
BAD_TOKEN=${TOKEN%?}A
[ "$BAD_TOKEN" != "$TOKEN" ] || BAD_TOKEN=${TOKEN%?}B

nss_home "$T/home" "${EDGE_STATE[main]}/ca.pem"
certutil -d "sql:$T/home/.pki/nssdb" -A -t 'C,,' -n wtmesh-strict-ca -i "${EDGE_STATE[strict]}/ca.pem" ||
  die "certutil could not add the strict edge's CA"

# run_page OUT EDGE CHECK...: Chromium on EDGE's demo page, the checks (tests/browser/connect_page.mjs).
# localhost is mapped to 127.0.0.1: the edge listens there only, and WebTransport (unlike the page's
# TCP connection) does not fall back from ::1.
run_page() {
  local out=$1 edge=$2 rc
  shift 2
  (cd "$BROWSER_DIR" && HOME=$T/home timeout -k 5 150 node connect_page.mjs \
    --url "https://localhost:${EDGE_PORT[$edge]}/connect/" --hash "${EDGE_HASH[$edge]}" --timeout 140000 \
    --chromium-arg "--host-resolver-rules=MAP localhost 127.0.0.1" "$@") \
    >"$out" 2>"$out.log"
  rc=$?
  [ -s "$out" ] || die "browser harness printed nothing (exit $rc): $(tail -5 "$out.log")"
  log "result: $(head -c 3000 "$out")"
  check "browser harness exits 0 (status $rc)" [ "$rc" = 0 ]
  local e
  e=$(json_field "$out" harness_error)$(json_field "$out" navError)
  [ -z "$e" ] || fail "browser harness / navigation: $e"
}

# --- the page, streams, datagrams, an edge route ----------------------------------------------------
R=$T/main.json
run_page "$R" main \
  --lines lines echo "$TOKEN" 4 40 \
  --lines lines_again echo "$TOKEN" 4 40 \
  --pings pings echo "$TOKEN" 20 \
  --lines routed routed "$TOKEN" 2 10 \
  --capped cap echo "$TOKEN" 6 \
  --refused bad_token echo "$BAD_TOKEN" \
  --refused no_token echo "" \
  --refused scope echo "$TOKEN_SCOPE" \
  --refused unknown nosuch "$TOKEN"
f() { json_field "$R" "$1"; }
check "the edge serves its demo page (status $(f status), origin $(f origin))" [ "$(f status)" = 200 ]
check "Chromium $(f browser) has WebTransport on the page" [ "$(f hasWebTransport)" = true ]
check "4 streams x 40 lines echoed exactly through the private tcp tunnel: $(f checks.lines.results)" \
  [ "$(f checks.lines.ok)" = true ]
check "and again on a new session" [ "$(f checks.lines_again.ok)" = true ]
check "20 datagram pings: $(f checks.pings.answered) answered, $(f checks.pings.exact) exact" \
  [ "$(f checks.pings.exact)" -ge 18 ]
check "an edge route (--route) reached from the browser: $(f checks.routed.results)" [ "$(f checks.routed.ok)" = true ]
check "6 connections held on a session capped at 6 (got $(f checks.cap.held))" [ "$(f checks.cap.held)" = 6 ]
check "the 7th stream is reset with 0x14 (20, limit): got $(f checks.cap.code) $(f checks.cap.meaning)" \
  [ "$(f checks.cap.code)" = 20 ]
check "the edge says why: the session's limit" \
  wait_for 5 edge_log_has main "refused a stream: this session holds 6 connections, its limit"
check "a bad token: the session is refused ($(f checks.bad_token.error))" [ "$(f checks.bad_token.refused)" = true ]
check "and the edge answered 401 invalid token" wait_for 5 grep -q 'to echo.localhost: 401 invalid token: ' "${EDGE_DIR[main]}/stderr"
check "no token: refused" [ "$(f checks.no_token.refused)" = true ]
check "and the edge answered 401" grep -q ': 401 the token is empty' "${EDGE_DIR[main]}/stderr"
check "a token whose connect claim lacks the name: refused" [ "$(f checks.scope.refused)" = true ]
check "and the edge answered 403 not in token scope" grep -q 'to echo.localhost: 403 not in token scope' "${EDGE_DIR[main]}/stderr"
check "an unknown name: refused" [ "$(f checks.unknown.refused)" = true ]
check "and the edge answered 404" grep -q 'to nosuch.localhost: 404 no tunnel or route is named nosuch.localhost' "${EDGE_DIR[main]}/stderr"
check "the UDP service saw the pings as packets" grep -q '^source 127.0.0.1:' "$T/srv-udp.log"

# --- telemetry from the page: /metrics while the session lives, then gone ---------------------------
R=$T/telemetry.json
(cd "$BROWSER_DIR" && HOME=$T/home timeout -k 5 90 node connect_page.mjs \
  --url "https://localhost:${EDGE_PORT[main]}/connect/" --hash "${EDGE_HASH[main]}" --timeout 80000 \
  --chromium-arg "--host-resolver-rules=MAP localhost 127.0.0.1" --telemetry tele echo "$TOKEN" 8000) \
  >"$R" 2>"$R.log" &
page_pid=$!
track $page_pid
metrics() { curl -s --max-time 5 "$ADMIN/metrics"; }
check "the page's report is in /metrics while its session lives (rtt, bytes, version)" \
  wait_for 40 bash -c "curl -s --max-time 5 '$ADMIN/metrics' | grep -q '^wtmesh_agent_sent_bytes_total{agent=\"browser/browser#[0-9]*\"} 1234\$'"
M=$(metrics)
log "browser telemetry in /metrics: $(echo "$M" | grep 'agent="browser/' | tr '\n' ' ')"
check "with the page's version" grep -q 'wtmesh_agent_info{agent="browser/browser#[0-9]*",version="wtmesh-connect-page/1"} 1' <<<"$M"
for want in 'wtmesh_agent_received_bytes_total{agent="browser/browser#[0-9]*"} 5678' \
  'wtmesh_agent_open_streams{agent="browser/browser#[0-9]*"} 1' \
  'wtmesh_agent_datagrams_dropped_total{agent="browser/browser#[0-9]*"} 2' \
  'wtmesh_agent_rtt_seconds{agent="browser/browser#[0-9]*"} '; do
  check "and ${want%%\{*}" grep -q "^$want" <<<"$M"
done
check "the report over 1024 bytes was refused and counted invalid" \
  wait_for 10 bash -c "curl -s --max-time 5 '$ADMIN/metrics' | grep -qE '^wtmesh_telemetry_reports_total\{result=\"invalid\"\} [1-9]'"
check "the edge says why" edge_log_has main "refused a telemetry report over 1024 bytes"
wait "$page_pid"
check "the telemetry page run exits 0 ($(head -c 300 "$R"))" [ "$(json_field "$R" checks.tele.sent)" = true ]
check "after the session the browser's gauges are gone" \
  wait_for 10 bash -c "! curl -s --max-time 5 '$ADMIN/metrics' | grep -q 'agent=\"browser/'"

# --- a name whose agent goes away: the session was accepted, its stream is reset -------------------
stop_pid "${AGENT_PID[gone]}" 5 TERM
R=$T/gone.json
run_page "$R" main --refused gone_session gone "$TOKEN"
check "an offline name: the session is refused ($(f checks.gone_session.error))" [ "$(f checks.gone_session.refused)" = true ]
check "and the edge answered 503" grep -q 'to gone.localhost: 503 gone.localhost: its agent is not connected' "${EDGE_DIR[main]}/stderr"

# --- the Origin -----------------------------------------------------------------------------------
start_tcp secho strict echo "${SRV_PORT[echo]}" --private
R=$T/strict.json
run_page "$R" strict --refused origin echo "$TOKEN_STRICT"
check "an Origin ($(f origin)) outside --allow-origin: refused" [ "$(f checks.origin.refused)" = true ]
if edge_log_has strict "session opened"; then fail "the strict edge opened a session"; else pass "the strict edge opened no session"; fi

# --- the token stays out of the logs --------------------------------------------------------------
for tok in "$TOKEN" "$TOKEN_SCOPE" "$BAD_TOKEN" "$TOKEN_STRICT"; do
  sig=${tok##*.}
  if grep -qF -- "$sig" "${EDGE_DIR[main]}/stderr" "${EDGE_DIR[main]}/stdout" "${EDGE_DIR[strict]}/stderr" \
    "${EDGE_DIR[strict]}/stdout"; then
    fail "a token's signature (${sig:0:8}...) is in an edge's log"
  else
    pass "a token's signature (${sig:0:8}...) is in no edge log"
  fi
done
check "the edge logged browser sessions opening" grep -q 'browser browser: connect echo.localhost: session opened' "${EDGE_DIR[main]}/stderr"

stop_edge main
check "the edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
