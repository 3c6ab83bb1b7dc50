#!/usr/bin/env bash
# WebSocket over public HTTP/2 (RFC 8441, extended CONNECT) through the tunnel to an HTTP/1.1
# WebSocket service: Node's built-in http2 client with the `ws` package's frame Sender/Receiver
# (ws_h2_client.mjs) against `wtmesh edge` with the edge's CA, and Node's `ws` as the local service
# (ws_echo_server.mjs) behind `wtmesh http`. The edge maps the extended CONNECT onto the RFC 6455
# handshake (its own Sec-WebSocket-Key, the accept checked, 101 → 200). Checks:
#   - the edge advertises SETTINGS_ENABLE_CONNECT_PROTOCOL on an h2 connection; the CONNECT gets 200
#     without Sec-WebSocket-Accept; Sec-WebSocket-Protocol ("chat") negotiated end to end
#   - text, binary, empty, 1 MiB binary and 256 KiB text messages echoed byte-exact; ping/pong
#   - 50 messages streamed 20 ms apart arrive one by one
#   - 10 WebSockets multiplexed on the one HTTP/2 connection, each echoing and closing cleanly
#   - close codes and reasons both ways (4001 from the client reaches the service and comes back,
#     4002 from the service reaches the client), the stream ending with END_STREAM both ways
#   - another :protocol gets 501; the service saw a WebSocket handshake (X-Forwarded-Proto https);
#     the edge logs the exchanges as h2 CONNECT with status 200
#   - idle timeouts (an edge with --http-idle-timeout 1 --websocket-idle-timeout 4): a socket quiet for
#     2.5 s still echoes, one quiet for more than 4 s is closed, a connection without one after ~1 s
#   - the README's try line (quick mode) against scripts/demo_service.mjs's own echo at /ws
# Usage: websocket_h2.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

start_edge main
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem

T=$PEER_TMP
start_ws_echo
start_http app main app "$WS_ECHO_PORT"

# run_client NAME URL [quick]: the client's "ok"/"not ok" lines become checks.
run_client() { node_checks "$1" 120 "$PEER_DIR/ws_h2_client.mjs" "$2" "$CA" ${3:-}; }

run_client h2 "https://app.localhost:$EP/h2chat"
check "the service saw the client's close code 4001 and its reason" grep -q '^close 4001 client says bye$' "$T/ws-server.log"
check "the service saw the WebSocket handshake with the subprotocol and X-Forwarded-Proto https" \
  grep -q 'connection /h2chat protocol=chat xfp=https' "$T/ws-server.log"
check "the service saw the 10 multiplexed sockets" [ "$(grep -c 'connection /mux-' "$T/ws-server.log")" = 10 ]
run_client h2-quick "https://app.localhost:$EP/h2chat" quick
check "the edge logged the extended CONNECT as HTTP/2 with status 200" \
  grep -qE 'CONNECT app\.localhost/h2chat 200 .* h2' "${EDGE_DIR[main]}/stderr"

# The idle timeouts: a connection carrying a WebSocket gets --websocket-idle-timeout, others
# --http-idle-timeout (H2Connection::upgraded()).
start_edge idle --http-idle-timeout 1 --websocket-idle-timeout 4
CA_IDLE=${EDGE_STATE[idle]}/ca.pem
start_http app-idle idle app "$WS_ECHO_PORT"
node_checks idle 60 "$PEER_DIR/ws_h2_client.mjs" "https://app.localhost:${EDGE_PORT[idle]}/idle" "$CA_IDLE" idle
# The README's try line: the demo service's own (dependency-free) WebSocket echo at /ws.
node "$(dirname "$0")/../../scripts/demo_service.mjs" --port 0 >"$T/demo.log" 2>&1 </dev/null &
track $!
wait_for 10 grep -q 'demo service listening on' "$T/demo.log" || die "demo service did not start: $(cat "$T/demo.log")"
DP=$(grep -m1 -oE 'listening on http://[^ ]+:[0-9]+' "$T/demo.log" | grep -oE '[0-9]+$')
start_http demo main demo "$DP"
run_client demo "https://demo.localhost:$EP/ws" quick

peer_finish
