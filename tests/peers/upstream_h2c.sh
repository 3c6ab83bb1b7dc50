#!/usr/bin/env bash
# HTTP/2 to the local service (`wtmesh http --upstream h2c`), with Node's http2.createServer as the
# upstream and curl (--http1.1 and --http2) as the public client through our edge. Checks:
#   - the upstream sees HTTP/2 with :authority = the public authority; te: trailers passes
#   - bodies both ways byte-exact: 4 MiB up (echo), 8 MiB down (sha256)
#   - 40 concurrent slow requests all answer over ONE upstream connection (Node counts them)
#   - a response with trailers still arrives (the trailers are dropped: no room in the tunnel head)
#   - an upstream that is not listening: a clear 502
#   - WebSocket (RFC 6455 at the edge, Node `ws` client) to the h2c upstream as an RFC 8441 extended
#     CONNECT (Node http2 with enableConnectProtocol, a frame echo in h2_origin.mjs): open, text and
#     binary echo, clean close; an upstream without extended CONNECT: a clear 502
# Usage: upstream_h2c.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"
T=$PEER_TMP

start_edge main
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
start_h2_origin h2c --mode h2c
OP=${ORIGIN_PORT[h2c]}
HTTP_EXTRA_ARGS=(--upstream h2c)
start_http app main app "$OP"
B=https://app.localhost:$EP

pcurl() {
  local url=$1
  shift
  curl -sS -m 30 --cacert "$CA" -o "$T/body" -D "$T/head" -w '%{http_code} %{http_version}' "$@" "$url" \
    2>"$T/curl.err"
}
stat_of() { curl -sS -m 10 --cacert "$CA" "$B/stats" | grep -oE "\"$1\":[0-9]+" | cut -d: -f2; }

out=$(pcurl "$B/hello" --http1.1)
check "curl --http1.1 -> h2c upstream: 200 (got $out)" [ "$out" = "200 1.1" ]
check "exact body" [ "$(cat "$T/body")" = "hello from the h2 origin" ]
out=$(pcurl "$B/hello" --http2)
check "curl --http2 -> h2c upstream: 200 on HTTP/2 (got $out)" [ "$out" = "200 2" ]
out=$(pcurl "$B/proto" --http2 -H 'te: trailers')
check "the upstream saw HTTP/2, :authority = the public authority, te: trailers ($(cat "$T/body"))" \
  bash -c "grep -q '\"httpVersion\":\"2.0\"' '$T/body' && grep -q '\"authority\":\"app.localhost:$EP\"' '$T/body' && grep -q '\"te\":\"trailers\"' '$T/body'"

head -c 4194304 /dev/urandom >"$T/up.bin"
out=$(pcurl "$B/echo" --http2 --data-binary "@$T/up.bin" -H 'content-type: application/octet-stream')
check "4 MiB POST echoed byte for byte through h2c ($out)" bash -c "[ '$out' = '200 2' ] && cmp -s '$T/up.bin' '$T/body'"
out=$(pcurl "$B/echo" --http1.1 --data-binary "@$T/up.bin" -H 'transfer-encoding: chunked')
check "4 MiB chunked POST (HTTP/1.1 client) echoed byte for byte ($out)" \
  bash -c "[ '$out' = '200 1.1' ] && cmp -s '$T/up.bin' '$T/body'"
out=$(pcurl "$B/bytes?n=8388608" --http2)
sent=$(curl -sS -m 10 --cacert "$CA" "$B/stats" | grep -oE '"sha256":"[0-9a-f]+"' | cut -d'"' -f4)
got=$(sha256sum "$T/body" | cut -d' ' -f1)
check "8 MiB download through h2c arrives whole ($out, sha256 match)" bash -c "[ '$out' = '200 2' ] && [ '$sent' = '$got' ]"

before=$(stat_of connections)
pids=()
for i in $(seq 40); do
  curl -sS -m 30 --http1.1 --cacert "$CA" -o "$T/slow.$i" "$B/slow?ms=500" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
ok=$(cat "$T"/slow.* | grep -c '^slow$')
after=$(stat_of connections)
check "40 concurrent requests all answered ($ok)" [ "$ok" = 40 ]
check "... over one upstream connection (the upstream saw $((after - before)) new, $after in all)" \
  [ "$after" -le 1 ]

out=$(pcurl "$B/trailers" --http2)
check "a response with trailers arrives ($out, $(cat "$T/body"))" \
  bash -c "[ '$out' = '200 2' ] && grep -q 'with trailers' '$T/body'"

HTTP_EXTRA_ARGS=(--upstream h2c)
start_http nowhere main nowhere 1
out=$(pcurl "https://nowhere.localhost:$EP/" --http2)
check "no upstream listening: 502 (got $out)" [ "$out" = "502 2" ]
check "... the agent's log says the upstream refused" \
  wait_for 3 grep -qi 'upstream refused: connection refused' "${AGENT_OUT[nowhere]}"
check "... the public response does not" bash -c "! grep -qi 'refused' '$T/head' '$T/body'"

# --- WebSocket over extended CONNECT.
timeout 60 node "$PEER_DIR/ws_client.mjs" "wss://app.localhost:$EP/ws" "$CA" quick >"$T/ws.out" 2>"$T/ws.log"
check "WebSocket through the tunnel to the h2c upstream (extended CONNECT): $(tr '\n' ';' <"$T/ws.out")" \
  bash -c "[ \$(grep -c '^ok' '$T/ws.out') -ge 5 ] && ! grep -q '^not ok' '$T/ws.out'"
start_h2_origin noconnect --mode h2c --no-connect
HTTP_EXTRA_ARGS=(--upstream h2c)
start_http noconnect main noconnect "${ORIGIN_PORT[noconnect]}"
out=$(curl -sS -m 10 --http1.1 --cacert "$CA" -D "$T/head" -o /dev/null -w '%{http_code}' \
  -H 'connection: upgrade' -H 'upgrade: websocket' -H 'sec-websocket-version: 13' \
  -H 'sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==' "https://noconnect.localhost:$EP/ws" 2>"$T/curl.err")
check "WebSocket to an h2c upstream without extended CONNECT: 502 (got $out)" [ "$out" = 502 ]
check "... the agent's log saying the upstream does not accept WebSockets" \
  wait_for 3 grep -qi 'does not accept WebSockets' "${AGENT_OUT[noconnect]}"

peer_finish
