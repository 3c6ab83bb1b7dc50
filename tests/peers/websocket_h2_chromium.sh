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
log "Chromium loads https://app.localhost:$EP/ then opens wss://app.localhost:$EP/chromium"
(cd "$BROWSER_DIR" && HOME=$T/home timeout -k 5 90 node websocket_page.mjs --url "https://app.localhost:$EP/" \
  --ws "wss://app.localhost:$EP/chromium" --timeout 80000) >"$T/result.json" 2>"$T/chromium.log"
rc=$?
[ -s "$T/result.json" ] || die "browser harness printed nothing (exit $rc): $(tail -5 "$T/chromium.log")"
log "result: $(cat "$T/result.json")"
check "browser harness exits 0 (status $rc)" [ "$rc" = 0 ]

field() { json_field "$T/result.json" "$1"; }
[ -z "$(field harness_error)" ] || fail "browser harness: $(field harness_error)"
[ -z "$(field navError)" ] || fail "navigation failed: $(field navError)"
[ -z "$(field ws.error)" ] || fail "the page's WebSocket: $(field ws.error)"
check "Chromium $(field browser) loaded the page over h2 (got $(field protocolHttp))" [ "$(field protocolHttp)" = h2 ]
check "the socket's subprotocol is chat (got '$(field ws.protocol)')" [ "$(field ws.protocol)" = chat ]
check "permessage-deflate negotiated (got '$(field ws.extensions)')" grep -q permessage-deflate <<<"$(field ws.extensions)"
check "a text message echoed (got '$(field ws.text)')" [ "$(field ws.text)" = "hello from chromium ✓" ]
check "a 300,000-byte binary message echoed byte-exact" [ "$(field ws.binaryOk)" = true ]
check "the close 4001 + reason came back cleanly (got $(field ws.close))" \
  [ "$(field ws.close)" = '{"code":4001,"reason":"client says bye","wasClean":true}' ]
check "the service saw the close 4001 and its reason" grep -q '^close 4001 client says bye$' "$T/ws-server.log"
check "the service saw the socket (subprotocol chat, X-Forwarded-Proto https)" \
  grep -q 'connection /chromium protocol=chat xfp=https' "$T/ws-server.log"
check "the edge logged the socket as an h2 extended CONNECT answered 200" \
  grep -qE 'CONNECT app\.localhost/chromium 200 .* h2' "${EDGE_DIR[main]}/stderr"
chromium_ws_h2c main h2
peer_finish
