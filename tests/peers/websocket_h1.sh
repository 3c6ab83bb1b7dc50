#!/usr/bin/env bash
# WebSocket (RFC 6455) through the tunnel, HTTP/1.1 on both sides: Node's `ws` (tests/peers/package.json,
# installed by scripts/setup.sh) as the local service (ws_echo_server.mjs) behind `wtmesh http`, and as
# the public client (ws_client.mjs) against `wtmesh edge` with the edge's CA. Checks:
#   - the upgrade completes through edge and agent: Sec-WebSocket-Protocol ("chat") and
#     -Extensions (permessage-deflate) negotiated end to end; the service sees X-Forwarded-Proto
#   - text, binary, empty, 1 MiB binary and 256 KiB text messages echoed byte-exact
#   - ping answered by a pong with the same payload
#   - 100 messages streamed 20 ms apart arrive one by one (the first before the last is sent)
#   - 20 sockets at once
#   - close codes and reasons both ways: the client's 4001 reaches the service and comes back, the
#     service's 4002 reaches the client; the closing handshake ends the connection promptly
#   - the plain-HTTP listener (ws://) too; the edge logs the exchanges with status 101
# Usage: websocket_h1.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

start_edge main --http-listen 127.0.0.1:0
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
HTTP_PORT=$(grep -m1 -oE 'plain HTTP: http://NAME\.localhost:[0-9]+' "${EDGE_DIR[main]}/stdout" | grep -oE '[0-9]+$')
[ -n "$HTTP_PORT" ] || die "edge printed no plain HTTP port"

T=$PEER_TMP
start_ws_echo
start_http app main app "$WS_ECHO_PORT"

# run_client NAME URL [quick]: the client's "ok"/"not ok" lines become checks.
run_client() { node_checks "$1" 120 "$PEER_DIR/ws_client.mjs" "$2" "$CA" ${3:-}; }

run_client wss "wss://app.localhost:$EP/chat"
check "the service saw the client's close code 4001 and its reason" grep -q '^close 4001 client says bye$' "$T/ws-server.log"
check "the service saw the subprotocol and X-Forwarded-Proto https" grep -q 'protocol=chat xfp=https' "$T/ws-server.log"
run_client ws-plain "ws://app.localhost:$HTTP_PORT/plain" quick
check "the service saw the plain-listener socket (X-Forwarded-Proto http)" grep -q 'connection /plain protocol= xfp=http ' "$T/ws-server.log"
check "the edge logged an exchange with status 101" grep -qE 'GET .*app\.localhost.* 101 ' "${EDGE_DIR[main]}/stderr"

peer_finish
