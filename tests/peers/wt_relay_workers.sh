#!/usr/bin/env bash
# Issue 15 item 3: the public WebTransport relay (docs/protocol.md §7) on `wtmesh edge --workers 4`,
# with headless Chromium 156 as the client. One agent (`wtmesh http --upstream h3`) serves
# *.relay.localhost and relays to the /echo WebTransport server of a second edge; Chromium opens a
# relayed session to each of r1..r6.relay.localhost, each its own QUIC connection (per-name
# certificates: no pooling), which the kernel spreads over the four workers' sockets. A session on
# another worker than the agent's hops (edge/worker_directory.h): its route answer, the put-off
# answer to the CONNECT (wt::Accept::later), the relay id, the session stream, the streams both
# sides open and the datagrams all cross threads. The chance that none of the six crosses is
# (1/4)^6 = 1 in 4096, and the hop counter in /metrics must show crossings. Checks, per name: ready,
# bidi echo (19 B, 256 KiB, 4 MiB byte-compared), a uni stream answered on a new uni stream, a
# datagram echo, close(4243) logged by the upstream; then no stream left open on the agent's
# session, and SIGTERM.
# Usage: wt_relay_workers.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

need_chromium
page_port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')

start_edge upstream --echo
EDGE_LISTEN_ADDR="[::]" start_edge public --workers 4 --admin-listen 127.0.0.1:0  # Chromium tries ::1 first
UP=${EDGE_PORT[upstream]}
PUB=${EDGE_PORT[public]}
check "the public edge runs four workers" grep -q 'workers: 4 threads' "${EDGE_DIR[public]}/stdout"

HTTP_EXTRA_ARGS=(--upstream h3 --upstream-ca "${EDGE_STATE[upstream]}/ca.pem")
start_http relay public '*.relay' "$UP"
HTTP_EXTRA_ARGS=()

names=(r1 r2 r3 r4 r5 r6)
args=()
for n in "${names[@]}"; do
  hash=$(openssl s_client -connect "localhost:$PUB" -servername "$n.relay.localhost" </dev/null 2>/dev/null |
    openssl x509 -outform der 2>/dev/null | sha256sum | cut -d' ' -f1)
  [[ "$hash" =~ ^[0-9a-f]{64}$ ]] || die "no leaf for $n.relay.localhost"
  args+=(--relay "$n" "https://$n.relay.localhost:$PUB/echo" "$hash")
done

result=$PEER_TMP/result.json
log "running Chromium: ${#names[@]} relayed sessions"
timeout -k 5 230 node "$BROWSER_DIR/wt_echo.mjs" --page-port "$page_port" --timeout 220000 "${args[@]}" \
  >"$result" 2>"$PEER_TMP/chromium.log"
node_rc=$?
[ "$node_rc" -eq 0 ] || fail "browser harness exited with status $node_rc (124 = killed by timeout): $(tail -5 "$PEER_TMP/chromium.log")"
[ -s "$result" ] || die "browser harness printed no result"

wt_steps "$result"
for n in "${names[@]}"; do
  expect_step "$n.ready" "$n.relay.localhost: the relayed session is ready"
  expect_step "$n.bidi_small" "$n: bidi echo, 19 bytes + FIN"
  expect_step "$n.bidi_big" "$n: bidi echo, 4 MiB each way, byte-compared"
  expect_step "$n.uni" "$n: a uni stream answered on a new uni stream"
  expect_step "$n.datagram" "$n: datagram echo"
  expect_step "$n.close" "$n: close(4243, 'bye through the relay')"
done
closes() { grep -c 'session closed code=4243 reason="bye through the relay"' "${EDGE_DIR[upstream]}/stderr"; }
six_closes() { [ "$(closes)" -ge ${#names[@]} ]; }
wait_for 5 six_closes
check "the upstream logged all ${#names[@]} closes through the relay ($(closes))" six_closes

hops=$(edge_metric public wtmesh_worker_hops_total)
check "/metrics: relayed sessions crossed between workers ($hops hops)" [ "${hops:-0}" -gt 0 ]
streams_gone() { [ "$(edge_metric public wtmesh_tunnel_streams)" = 0 ]; }
check "no relayed stream is left open on the agent's session" wait_for 5 streams_gone

stop_edge public
check "the public edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
stop_edge upstream
peer_finish
