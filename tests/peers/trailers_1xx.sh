#!/usr/bin/env bash
# Trailers and interim (1xx) responses through the tunnel (docs/protocol.md §4.1, session feature
# `trailers`), for an h2c upstream (Node http2, tests/peers/h2_origin.mjs) and an HTTP/1.1 upstream
# (Node http, tests/peers/origin.mjs: chunked body with a trailer section), to clients we did not write:
#   - curl --http2: the trailing HEADERS (grpc-status: 0 / x-checksum); 103 Early Hints before the 200
#   - curl --http1.1: the trailers as chunked trailer fields only with TE: trailers; 103 before the 200
#   - gtlsclient (HTTP/3): prints the trailing HEADERS it received (the origin sends grpc-status /
#     x-checksum only as a trailer) and the 103 with its link before the 200
# Usage: trailers_1xx.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"
T=$PEER_TMP

start_edge main
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
start_h2_origin node --mode h2c
HTTP_EXTRA_ARGS=(--upstream h2c)
start_http node main node "${ORIGIN_PORT[node]}"
start_origin h1
HTTP_EXTRA_ARGS=()
start_http h1 main h1app "${ORIGIN_PORT[h1]}"

# pair NAME LABEL TRAILER: the checks against https://NAME.localhost, whose /trailers ends with TRAILER.
pair() {
  local name=$1 label=$2 trailer=$3
  local B=https://$name.localhost:$EP
  curl -sS -m 20 --http2 --cacert "$CA" -D "$T/h2.head" -o "$T/h2.body" "$B/trailers" 2>"$T/curl.err"
  check "$label: curl --http2: body, then the trailer $trailer ($(tr -d '\r' <"$T/h2.head" | tr '\n' ' '))" \
    bash -c "grep -q 'with trailers' '$T/h2.body' && tr -d '\r' <'$T/h2.head' | grep -qix '$trailer'"
  curl -sS -m 20 --http1.1 --cacert "$CA" -H 'te: trailers' -D "$T/h1.head" -o "$T/h1.body" "$B/trailers" 2>"$T/curl.err"
  check "$label: curl --http1.1 with TE: trailers: chunked, trailer $trailer ($(tr -d '\r' <"$T/h1.head" | tr '\n' ' '))" \
    bash -c "grep -q 'with trailers' '$T/h1.body' && tr -d '\r' <'$T/h1.head' | grep -qix '$trailer'"
  curl -sS -m 20 --http1.1 --cacert "$CA" -D "$T/h1n.head" -o "$T/h1n.body" "$B/trailers" 2>"$T/curl.err"
  check "$label: curl --http1.1 without TE: trailers: body, no trailer" \
    bash -c "grep -q 'with trailers' '$T/h1n.body' && ! grep -qi '${trailer%%:*}' '$T/h1n.head'"
  for v in --http2 --http1.1; do
    curl -sS -m 20 "$v" --cacert "$CA" -D "$T/eh.head" -o "$T/eh.body" "$B/early-hints" 2>"$T/curl.err"
    check "$label: curl $v: 103 Early Hints (link) before the 200 ($(tr -d '\r' <"$T/eh.head" | grep -iE '^(HTTP|link)' | tr '\n' ' '))" \
      bash -c "tr -d '\r' <'$T/eh.head' | grep -qE '^HTTP/[0-9.]+ 103' && tr -d '\r' <'$T/eh.head' | grep -qi '^link: </style.css>' && tr -d '\r' <'$T/eh.head' | grep -qE '^HTTP/[0-9.]+ 200'"
  done

  if command -v gtlsclient >/dev/null; then
    timeout -k 5 60 gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump --handshake-timeout=10s \
      --timeout=30s --sni="$name.localhost" 127.0.0.1 "$EP" "$B/trailers" >"$T/h3.out" 2>&1 </dev/null
    check "$label: gtlsclient (HTTP/3): :status 200, then a trailing HEADERS with $trailer ($(grep -E '^http: stream .*\[' "$T/h3.out" | tr '\n' ' '))" \
      bash -c "grep -qE '^http: stream 0x0 \[:status: 200\]' '$T/h3.out' && grep -qE '\[$trailer\]' '$T/h3.out'"
    timeout -k 5 60 gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump --handshake-timeout=10s \
      --timeout=30s --sni="$name.localhost" 127.0.0.1 "$EP" "$B/early-hints" >"$T/h3eh.out" 2>&1 </dev/null
    check "$label: gtlsclient (HTTP/3): 103 with link, then 200 ($(grep -E '^http: stream .*\[:status' "$T/h3eh.out" | tr '\n' ' '))" \
      bash -c "grep -qE '\[:status: 103\]' '$T/h3eh.out' && grep -qE '\[link: </style.css>' '$T/h3eh.out' && grep -qE '\[:status: 200\]' '$T/h3eh.out'"
  else
    skip "gtlsclient not installed (ngtcp2-client): HTTP/3 trailers not checked"
  fi
}

pair node "h2c upstream" "grpc-status: 0"
pair h1app "HTTP/1.1 upstream" "x-checksum: abc"

peer_finish
