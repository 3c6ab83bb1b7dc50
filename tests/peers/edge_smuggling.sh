#!/usr/bin/env bash
# Issue 9, attack 4: request smuggling with Transfer-Encoding (RFC 9112 §6.3). A request whose
# Transfer-Encoding does not end in exactly one "chunked" must not be read as a body-less request
# (its body would then be parsed as the next request: "smuggled" past whatever checked the first),
# nor forwarded with a coding the edge does not decode. The fixed edge answers itself and closes the
# connection; nothing reaches the origin:
#   Transfer-Encoding: chunked, identity   400      (chunked not last: the length is unknown)
#   Transfer-Encoding: xchunked            400
#   Transfer-Encoding: gzip                400      (a request needs a chunked final coding)
#   Transfer-Encoding: gzip, chunked       501      (well formed, but the edge does not decode gzip)
#   Transfer-Encoding: chunked, chunked    400      (chunked applied twice)
# Each is sent over TLS from 127.0.0.2 (tests/peers/edge_attack.mjs raw) as `POST /a?te=N` followed
# at once by `GET /smuggled?te=N` (for the two that end in chunked, after a last-chunk "0\r\n\r\n", so
# an edge that takes the codings as plain chunked sees a complete request and then the smuggled one).
# Checks: the status of the first and only response, the connection closed after it, and the
# origin's request log holds neither /a nor /smuggled. An ordinary `Transfer-Encoding: chunked`
# POST /echo still gets 200 with its body echoed.
# Usage: edge_smuggling.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

start_app_tunnel

# variant N TE WANT: sends the smuggling pair with Transfer-Encoding TE, checks the answer is WANT.
variant() {
  local n=$1 te=$2 want=$3 body smuggled statuses first closed how ms
  smuggled="GET /smuggled?te=$n HTTP/1.1\\r\\nHost: app.localhost\\r\\n\\r\\n"
  body=$smuggled
  [[ $te == *chunked ]] && body="0\\r\\n\\r\\n$smuggled"
  attack_run "te$n" raw --port "$EP" --local 127.0.0.2 --timeout 5 --quiet-ms 1500 \
    --data "POST /a?te=$n HTTP/1.1\\r\\nHost: app.localhost\\r\\nTransfer-Encoding: $te\\r\\n\\r\\n$body"
  statuses=$(attack_json "te$n" 's.statuses.join(",")')
  first=$(attack_json "te$n" 's.firstStatus')
  closed=$(attack_json "te$n" 's.closedByPeer')
  how=$(attack_json "te$n" 's.peerCloseHow')
  ms=$(attack_json "te$n" 's.firstResponseMs')
  log "Transfer-Encoding: $te -> responses [$statuses] (first after $ms ms), closed by the edge: $closed ($how)"
  check "Transfer-Encoding: $te: the first response is $want (got ${first})" [ "$first" = "$want" ]
  check "Transfer-Encoding: $te: only one response (got [$statuses]) and the edge closed the connection ($closed)" \
    [ "$statuses/$closed" = "$want/true" ]
}
variant 1 'chunked, identity' 400
variant 2 'xchunked' 400
variant 3 'gzip' 400
variant 4 'gzip, chunked' 501
variant 5 'chunked, chunked' 400

leaked=$(grep -E '^[A-Z]+ /(a|smuggled)([?]|$)' "$T/origin-main.requests" 2>/dev/null | paste -sd, -)
check "none of these requests reached the origin (origin saw: ${leaked:-nothing})" [ -z "$leaked" ]

# An ordinary chunked upload still works.
attack_run chunked raw --port "$EP" --local 127.0.0.2 --timeout 5 --quiet-ms 1000 \
  --data 'POST /echo HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n'
first=$(attack_json chunked 's.firstStatus')
echoed=$(attack_json chunked 's.firstBody')
check "an ordinary Transfer-Encoding: chunked POST /echo: 200 with the body echoed (got $first, '$echoed')" \
  [ "$first/$echoed" = "200/hello world" ]

stop_edge main
check "edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
