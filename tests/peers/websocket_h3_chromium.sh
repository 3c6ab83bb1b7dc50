#!/usr/bin/env bash
# Real peer: Debian's headless Chromium (playwright-core, tests/browser/websocket_page.mjs) opens a
# WebSocket through `wtmesh edge` + `wtmesh http` to Node's `ws` echo service (ws_echo_server.mjs)
# over public HTTP/3: RFC 9220, an extended CONNECT on a QUIC request stream. Chromium 156 speaks it
# only with --enable-features=EnableWebsocketsOverHttp3 and only on an HTTP/3 connection to the origin
# that already exists and whose SETTINGS enabled extended CONNECT, so the page is loaded first, over
# QUIC (--origin-to-force-quic-on: Chromium's QUIC refuses a locally installed root otherwise; see
# http_tunnel_h3.sh), then the socket is opened. The edge listens on [::] because Chromium resolves
# app.localhost to ::1 first. The certificate is verified for real (HOME's NSS db trusts the edge's
# CA). Checks:
#   - the page came over h3; the socket opens with the subprotocol "chat" and permessage-deflate
#     negotiated end to end (the service's choice, through the 101 → 200 mapping)
#   - a text and a 300,000-byte binary message echoed byte-exact
#   - the client's close 4001 + reason reaches the service and comes back, cleanly
#   - the edge logged the socket as an HTTP/3 CONNECT answered 200 (not an HTTP/1.1 GET 101 or h2)
#   - the same from Chromium to an h2c upstream (`--upstream h2c`, Node's http2 with
#     enableConnectProtocol and a frame echo, h2_origin.mjs): RFC 9220 on the public leg, RFC 6455 on
#     the tunnel, RFC 8441 on the upstream leg; text and binary echoed, the close comes back.
# Usage: websocket_h3_chromium.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

need_chromium

EDGE_LISTEN_ADDR="[::]" start_edge main
EP=${EDGE_PORT[main]}
T=$PEER_TMP
start_ws_echo
start_http app main app "$WS_ECHO_PORT"
nss_home "$T/home" "${EDGE_STATE[main]}/ca.pem"

chromium_ws_echo main h3 "--origin-to-force-quic-on=app.localhost:$EP" "--enable-features=EnableWebsocketsOverHttp3"

chromium_ws_h2c main h3 "--origin-to-force-quic-on=h2app.localhost:$EP" "--enable-features=EnableWebsocketsOverHttp3"

[ "$PEER_FAILED" -eq 0 ] || show_log "edge log" "${EDGE_DIR[main]}/stderr" 40
peer_finish
