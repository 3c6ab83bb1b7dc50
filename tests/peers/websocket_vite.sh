#!/usr/bin/env bash
# A Vite dev server's HMR WebSocket through the tunnel (npm vite, tests/peers/package.json): `wtmesh
# http` in front of `vite` (vite_server.mjs), and a client doing what /@vite/client does
# (vite_hmr_client.mjs) against `wtmesh edge`: the page and the client script come through, the HMR
# socket opens (subprotocol vite-hmr, its token), "connected" arrives, and editing a module pushes an
# update to the client.
# Usage: websocket_vite.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

[ -d "$PEER_DIR/node_modules/vite" ] || die "vite missing in $PEER_DIR (run scripts/setup.sh)"

start_edge main
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
T=$PEER_TMP
mkdir -p "$T/site"
cat >"$T/site/index.html" <<'HTML'
<!doctype html>
<html><head><meta charset="utf-8"><title>vite through wtmesh</title></head>
<body><p id="out"></p><script type="module" src="/main.js"></script></body></html>
HTML
cat >"$T/site/main.js" <<'JS'
document.getElementById('out').textContent = 'hello from vite';
if (import.meta.hot) import.meta.hot.accept();
JS

node "$PEER_DIR/vite_server.mjs" "$T/site" >"$T/vite.log" 2>&1 </dev/null &
track $!
wait_for 30 grep -q 'vite listening on' "$T/vite.log" || die "vite did not start: $(cat "$T/vite.log")"
VP=$(grep -m1 -oE 'vite listening on [0-9]+' "$T/vite.log" | grep -oE '[0-9]+$')
start_http app main app "$VP"

node_checks "" 60 "$PEER_DIR/vite_hmr_client.mjs" "https://app.localhost:$EP/" "$CA" "$T/site"

peer_finish
