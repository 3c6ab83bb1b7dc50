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
# Then the other framing probes of issue 14 item 5, each `POST|GET /a?p=N` followed by
# `GET /smuggled?p=N` in the same write:
#   Content-Length + Transfer-Encoding: chunked (either order)     400  (RFC 9112 §6.3: ambiguous)
#   two Content-Length fields that differ (0 and 44)              400
#   a chunk size that is not hex / longer than 64 bits            400
#   a bare LF as line end                                         400
#   a NUL in a field value                                        400
#   "Content-Length : 44" (whitespace before the colon)           400  (RFC 9112 §5.1)
# Checks: the status of the first and only response, the connection closed after it, and the
# origin's request log holds neither /a nor /smuggled. Allowed framing still works: an ordinary
# `Transfer-Encoding: chunked` POST /echo gets 200 with its body echoed, two equal Content-Length
# fields are one, and an obs-fold in a field value reaches the origin as one space (RFC 9112 §5.2).
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

# probe N WANT DATA: DATA (edge_attack.mjs raw escapes) then `GET /smuggled?p=N`; WANT and a close.
probe() {
  local n=$1 want=$2 data=$3 statuses closed
  attack_run "p$n" raw --port "$EP" --local 127.0.0.2 --timeout 5 --quiet-ms 1500 \
    --data "${data}GET /smuggled?p=$n HTTP/1.1\r\nHost: app.localhost\r\n\r\n"
  statuses=$(attack_json "p$n" 's.statuses.join(",")')
  closed=$(attack_json "p$n" 's.closedByPeer')
  log "probe $n ($4) -> responses [$statuses] (first after $(attack_json "p$n" 's.firstResponseMs') ms), closed by the edge: $closed"
  check "$4: one response, $want, and the edge closed the connection (got [$statuses], closed $closed)" \
    [ "$statuses/$closed" = "$want/true" ]
}
H='Host: app.localhost\r\n'
probe 1 400 "POST /a?p=1 HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" 'Content-Length then Transfer-Encoding: chunked'
probe 2 400 "POST /a?p=2 HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" 'Transfer-Encoding: chunked then Content-Length'
probe 3 400 "POST /a?p=3 HTTP/1.1\r\n${H}Content-Length: 0\r\nContent-Length: 44\r\n\r\n" 'two different Content-Length fields'
probe 4 400 "POST /a?p=4 HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\n" 'a chunk size that is not hex'
probe 5 400 "POST /a?p=5 HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\n" 'a chunk size over 64 bits'
probe 6 400 "GET /a?p=6 HTTP/1.1\nHost: app.localhost\n\n" 'bare LF line ends'
probe 7 400 "GET /a?p=7 HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n" 'a NUL in a field value'
probe 8 400 "POST /a?p=8 HTTP/1.1\r\n${H}Content-Length : 44\r\n\r\n" 'whitespace between a field name and its colon'

attack_run samecl raw --port "$EP" --local 127.0.0.2 --timeout 5 --quiet-ms 1000 \
  --data "POST /echo HTTP/1.1\r\n${H}Content-Length: 2\r\nContent-Length: 2\r\n\r\nhi"
check "two equal Content-Length fields are one: 200 with the body echoed (got $(attack_json samecl 's.firstStatus'), '$(attack_json samecl 's.firstBody')')" \
  [ "$(attack_json samecl 's.firstStatus')/$(attack_json samecl 's.firstBody')" = 200/hi ]
attack_run fold raw --port "$EP" --local 127.0.0.2 --timeout 5 --quiet-ms 1000 \
  --data "GET /headers?fold HTTP/1.1\r\n${H}X-A: a\r\n b\r\nX-B: c\r\n\r\n"
fold=$(attack_json fold 'JSON.stringify(JSON.parse(s.firstBody).headers.slice(2, 6))')
check "an obs-fold reaches the origin as one space: 200, x-a 'a b' (got $(attack_json fold 's.firstStatus'), $fold)" \
  [ "$(attack_json fold 's.firstStatus')/$fold" = '200/["x-a","a b","x-b","c"]' ]

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
