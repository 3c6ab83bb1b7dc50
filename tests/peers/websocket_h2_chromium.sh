#!/usr/bin/env bash
# Real peer: Debian's headless Chromium (playwright-core, tests/browser/websocket_page.mjs) opens a
# WebSocket through `wtmesh edge` + `wtmesh http` to Node's `ws` echo service (ws_echo_server.mjs),
# from a page of the same origin loaded first: Chromium then carries the socket on that HTTP/2
# connection as an RFC 8441 extended CONNECT (it does so only on an existing h2 connection that
# advertised SETTINGS_ENABLE_CONNECT_PROTOCOL). The certificate is verified for real (HOME's NSS db
# trusts the edge's CA). Checks:
#   - the page came over h2; the socket opens with the subprotocol "chat" and permessage-deflate
#     negotiated end to end (the service's choice, through the 101 → 200 mapping)
#   - a text and a 300,000-byte binary message echoed byte-exact
#   - the client's close 4001 + reason reaches the service and comes back, cleanly
#   - the edge logged the socket as an h2 CONNECT answered 200 (not an HTTP/1.1 GET 101)
#   - the same from Chromium to an h2c upstream (`--upstream h2c`, Node's http2 echo): RFC 8441 on
#     both HTTP/2 legs, RFC 6455 on the tunnel (chromium_ws_h2c in lib.bash)
# Usage: websocket_h2_chromium.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

need_chromium

start_edge main
EP=${EDGE_PORT[main]}
T=$PEER_TMP
start_ws_echo
start_http app main app "$WS_ECHO_PORT"
nss_home "$T/home" "${EDGE_STATE[main]}/ca.pem"

# The page is the service's answer to a plain GET (ws answers 426): any document of the origin will do.
chromium_ws_echo main h2

chromium_ws_h2c main h2
peer_finish
