#!/usr/bin/env bash
# Real peers: headless Chromium 156 (playwright-core, WebTransport draft-02) opens a WebTransport
# session to https://relay.localhost:PORT/echo on edge 'public'; the tunnel's agent (`wtmesh http
# --upstream h3`) relays it (docs/protocol.md §7) to the WebTransport server of a second edge
# ('upstream', its /echo service: npm's @fails-components/webtransport needs a libquiche build from
# GitHub, which cannot be fetched here). Checks, through the relay: a bidi echo (19 B, 256 KiB and
# 4 MiB each way, byte-compared), a uni stream answered on a new uni stream, a datagram echo, and
# Chromium's close(4243, "bye through the relay") logged by the upstream; the upstream stopping
# mid-session closes the public session; a tunnel without
# --upstream h3 closes the session with code 501 and a reason; an unknown name is refused.
# Usage: wt_relay.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

need_chromium
page_port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')

start_edge upstream --echo
EDGE_LISTEN_ADDR="[::]" start_edge public  # Chromium tries ::1 first for NAME.localhost
UP=${EDGE_PORT[upstream]}
PUB=${EDGE_PORT[public]}

HTTP_EXTRA_ARGS=(--upstream h3 --upstream-ca "${EDGE_STATE[upstream]}/ca.pem")
start_http relay public relay "$UP"
HTTP_EXTRA_ARGS=()
start_origin plain
start_http plain public plain "${ORIGIN_PORT[plain]}"

# Chromium checks the per-name leaf the edge serves for NAME.localhost (the same leaf on TCP and QUIC)
# by its hash: serverCertificateHashes wants ECDSA and at most 14 days.
leaf_hash() {
  openssl s_client -connect "localhost:$PUB" -servername "$1" </dev/null 2>/dev/null |
    openssl x509 -outform der 2>/dev/null | sha256sum | cut -d' ' -f1
}
relay_hash=$(leaf_hash relay.localhost)
plain_hash=$(leaf_hash plain.localhost)
nobody_hash=$(leaf_hash nobody.localhost)
check "the edge serves a leaf for relay.localhost" grep -qE '^[0-9a-f]{64}$' <<<"$relay_hash"

result=$PEER_TMP/result.json
log "running Chromium"
timeout -k 5 170 node "$BROWSER_DIR/wt_echo.mjs" --page-port "$page_port" --timeout 160000 \
  --relay relay "https://relay.localhost:$PUB/echo" "$relay_hash" \
  --closed plain "https://plain.localhost:$PUB/echo" "$plain_hash" \
  --refused nobody "https://nobody.localhost:$PUB/no-such-path" "$nobody_hash" \
  --closed upstream_gone "https://relay.localhost:$PUB/echo" "$relay_hash" \
  >"$result" 2>"$PEER_TMP/chromium.log" &
node_pid=$!
track "$node_pid"
# The last check's session is the tunnel's second relayed session: once the agent has dialled the
# upstream for it, the upstream edge goes away, and the public session must be closed, not left hanging.
# (Relay ids are the edge's to pick: with several workers each picks from its own block of ids.)
relay_ids() { grep -oE 'wt-relay [0-9]+: .* -> upstream' "${AGENT_ERR[relay]}" | cut -d' ' -f2 | tr -d :; }
agent_has_second() { [ "$(relay_ids | wc -l)" -ge 2 ]; }
second_or_done() { agent_has_second || ! kill -0 "$node_pid" 2>/dev/null; }
if wait_for 120 second_or_done && agent_has_second; then
  stop_edge upstream
else
  fail "the agent never dialled the upstream for the second relayed session"
fi
wait "$node_pid"
node_rc=$?
[ "$node_rc" -eq 0 ] || fail "browser harness exited with status $node_rc (124 = killed by timeout): $(tail -5 "$PEER_TMP/chromium.log")"
[ -s "$result" ] || die "browser harness printed no result"

wt_steps "$result"
expect_step relay.ready "relayed session to relay.localhost/echo is ready"
expect_step relay.bidi_small "relayed bidi stream echo (19 bytes + FIN)"
expect_step relay.bidi_large "relayed bidi stream echo (256 KiB + FIN)"
expect_step relay.bidi_big "relayed bidi stream echo (4 MiB each way, byte-compared)"
expect_step relay.uni "relayed uni stream answered by a new uni stream with the same bytes"
expect_step relay.datagram "relayed datagram echo"
expect_step relay.close "close({closeCode: 4243, reason: 'bye through the relay'})"
check "the close echoes code 4243 and its reason ($(cut -f3 <<<"$(step_line relay.close)"))" \
  grep -q '"closeCode":4243,"reason":"bye through the relay"' <<<"$(step_line relay.close)"
expect_step nobody.refused "a session to a name no tunnel serves (not the edge's /echo) is refused"

want='session closed code=4243 reason="bye through the relay"'
if wait_for 5 edge_log_has upstream "$want"; then
  pass "the upstream logged Chromium's close through the relay: $want"
else
  fail "the upstream did not log: $want"
fi
# A tunnel without --upstream h3: the edge accepted at once, the agent answers 501, the session closes
# with the status as its code and the agent's sentence as its reason.
expect_step plain.closed "a tunnel without --upstream h3: the session is closed"
line=$(step_line plain.closed)
check "its close code is 501 and the reason names HTTP 501 ($(cut -f3 <<<"$line"))" \
  grep -q '"closeCode":501,"reason":"upstream refused: HTTP 501' <<<"$line"
if grep -qF 'upstream refused: HTTP 501' "${EDGE_DIR[public]}/stderr"; then
  pass "the edge logged the refusal: upstream refused: HTTP 501"
else
  fail "the edge did not log 'upstream refused: HTTP 501'"
fi

expect_step upstream_gone.closed "the upstream edge stops during a relayed session: the public session is closed"
second_id=$(relay_ids | sed -n 2p)
if [ -n "$second_id" ] && grep -qE "wt-relay $second_id: upstream session closed" "${AGENT_ERR[relay]}"; then
  pass "the agent saw the upstream session end and passed the close on"
else
  fail "the agent did not log the upstream session's end"
fi

stop_edge public
check "public edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
