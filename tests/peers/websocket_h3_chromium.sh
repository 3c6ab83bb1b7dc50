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

log "Chromium loads https://app.localhost:$EP/ over HTTP/3 then opens wss://app.localhost:$EP/chromium"
(cd "$BROWSER_DIR" && HOME=$T/home timeout -k 5 90 node websocket_page.mjs --url "https://app.localhost:$EP/" \
  --ws "wss://app.localhost:$EP/chromium" --timeout 80000 \
  --chromium-arg "--origin-to-force-quic-on=app.localhost:$EP" \
  --chromium-arg "--enable-features=EnableWebsocketsOverHttp3") >"$T/result.json" 2>"$T/chromium.log"
rc=$?
[ -s "$T/result.json" ] || die "browser harness printed nothing (exit $rc): $(tail -5 "$T/chromium.log")"
log "result: $(cat "$T/result.json")"
check "browser harness exits 0 (status $rc)" [ "$rc" = 0 ]

field() { json_field "$T/result.json" "$1"; }
[ -z "$(field harness_error)" ] || fail "browser harness: $(field harness_error)"
[ -z "$(field navError)" ] || fail "navigation failed: $(field navError)"
[ -z "$(field ws.error)" ] || fail "the page's WebSocket: $(field ws.error)"
check "Chromium $(field browser) loaded the page over h3 (got $(field protocolHttp))" [ "$(field protocolHttp)" = h3 ]
check "the socket's subprotocol is chat (got '$(field ws.protocol)')" [ "$(field ws.protocol)" = chat ]
check "permessage-deflate negotiated (got '$(field ws.extensions)')" grep -q permessage-deflate <<<"$(field ws.extensions)"
check "a text message echoed (got '$(field ws.text)')" [ "$(field ws.text)" = "hello from chromium ✓" ]
check "a 300,000-byte binary message echoed byte-exact" [ "$(field ws.binaryOk)" = true ]
check "the close 4001 + reason came back cleanly (got $(field ws.close))" \
  [ "$(field ws.close)" = '{"code":4001,"reason":"client says bye","wasClean":true}' ]
check "the service saw the close 4001 and its reason" grep -q '^close 4001 client says bye$' "$T/ws-server.log"
check "the service saw the socket (subprotocol chat, X-Forwarded-Proto https)" \
  grep -q 'connection /chromium protocol=chat xfp=https' "$T/ws-server.log"
check "the edge logged the socket as an HTTP/3 extended CONNECT answered 200" \
  grep -qE 'CONNECT app\.localhost/chromium 200 .* h3' "${EDGE_DIR[main]}/stderr"
# --- HTTP/3 public → h2c upstream (RFC 9220 → RFC 8441) ----------------------------------------------
chromium_ws_h2c main h3 "--origin-to-force-quic-on=h2app.localhost:$EP" "--enable-features=EnableWebsocketsOverHttp3"

if [ "$PEER_FAILED" -gt 0 ]; then
  show_log "Chromium harness log" "$T/chromium.log" 40
  show_log "edge log" "${EDGE_DIR[main]}/stderr" 40
fi
peer_finish
