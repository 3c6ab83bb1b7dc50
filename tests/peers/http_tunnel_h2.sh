#!/usr/bin/env bash
# HTTP/2 on the public side, with peers we did not write: curl (nghttp2 inside), nghttp and h2load,
# against `wtmesh edge`'s HTTPS listener (ALPN h2) and its plain listener (h2c prior knowledge), in
# front of `wtmesh http` and the Node origin (tests/peers/origin.mjs). Checks:
#   - curl --http2 over TLS negotiates HTTP/2 (ALPN) and gets the exact body; curl --http1.1 on the
#     same port still gets HTTP/1.1; curl --http2-prior-knowledge on the plain port gets HTTP/2
#   - the origin sees the request as HTTP/1.1 with X-Forwarded-Proto https and the cookie crumbs joined
#   - a 256 KiB POST is echoed byte for byte over HTTP/2; a 20 MiB download arrives whole (sha256)
#   - SSE streams over HTTP/2: the first event arrives long before the last is written
#   - an unknown host gets 404 over HTTP/2 and the edge's page
#   - nghttp: 20 concurrent streams on one connection all get 200 and the same body
#   - h2load -c4 -m10 -n4000: every request succeeds (no failed, no errored, all 2xx)
# Usage: http_tunnel_h2.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

start_edge main --http-listen 127.0.0.1:0
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
HTTP_PORT=$(grep -m1 -oE 'plain HTTP: http://NAME\.localhost:[0-9]+' "${EDGE_DIR[main]}/stdout" | grep -oE '[0-9]+$')
[ -n "$HTTP_PORT" ] || die "edge printed no plain HTTP port"
start_origin main
OP=${ORIGIN_PORT[main]}
start_http app main app "$OP"
BASE=https://app.localhost:$EP
T=$PEER_TMP

# h2curl URL [curl args...]: prints "<status> <http_version>"; body in $T/body, headers in $T/head.
h2curl() {
  local url=$1
  shift
  curl -sS -m 20 --cacert "$CA" -o "$T/body" -D "$T/head" -w '%{http_code} %{http_version}' "$@" "$url" \
    2>"$T/curl.err"
}

# --- Version negotiation.
out=$(h2curl "$BASE/hello" --http2)
check "curl --http2 over TLS: 200 on HTTP/2 (got $out)" [ "$out" = "200 2" ]
check "curl --http2: exact body" [ "$(cat "$T/body")" = "hello from the origin" ]
out=$(h2curl "$BASE/hello" --http1.1)
check "curl --http1.1 on the same port: 200 on HTTP/1.1 (got $out)" [ "$out" = "200 1.1" ]
out=$(h2curl "http://app.localhost:$HTTP_PORT/hello" --http2-prior-knowledge)
check "curl --http2-prior-knowledge on the plain port: 200 on HTTP/2 (got $out)" [ "$out" = "200 2" ]
out=$(h2curl "http://app.localhost:$HTTP_PORT/hello")
check "plain port without prior knowledge: HTTP/1.1 as before (got $out)" [ "$out" = "200 1.1" ]

# --- What the origin sees.
out=$(h2curl "$BASE/headers" --http2 -H 'cookie: a=1' -H 'cookie: b=2' -H 'x-custom: yes')
check "HTTP/2 request reaches the origin as HTTP/1.1 with forwarding headers ($out)" \
  bash -c "grep -q '\"httpVersion\":\"1.1\"' '$T/body' && grep -qi '\"x-forwarded-proto\",\"https\"' '$T/body' && grep -q '\"x-custom\",\"yes\"' '$T/body'"
check "cookie crumbs arrive joined (RFC 9113 §8.2.3)" grep -qE '"cookie","a=1; b=2"' "$T/body"

# --- Bodies both ways.
head -c 262144 /dev/urandom >"$T/up.bin"
out=$(h2curl "$BASE/echo" --http2 --data-binary "@$T/up.bin" -H 'content-type: application/octet-stream')
check "256 KiB POST over HTTP/2 echoed byte for byte ($out)" \
  bash -c "[ '$out' = '200 2' ] && cmp -s '$T/up.bin' '$T/body'"
out=$(h2curl "$BASE/bytes?n=20971520" --http2)
sent=$(curl -sS -m 10 --cacert "$CA" "$BASE/stats" | grep -oE '"sha256":"[0-9a-f]+"' | cut -d'"' -f4)
got=$(sha256sum "$T/body" | cut -d' ' -f1)
check "20 MiB download over HTTP/2 arrives whole ($out, $(stat -c %s "$T/body") bytes, sha256 match)" \
  bash -c "[ '$out' = '200 2' ] && [ '$sent' = '$got' ]"

# --- SSE is not buffered.
start=$(now_ms)
curl -sS -N -m 20 --http2 --cacert "$CA" "$BASE/sse?n=4&ms=400" 2>/dev/null | while IFS= read -r line; do
  case $line in data:*) echo "$(($(now_ms) - start)) $line" ;; esac
done >"$T/sse.txt"
first=$(head -1 "$T/sse.txt" | cut -d' ' -f1)
count=$(wc -l <"$T/sse.txt")
check "SSE over HTTP/2: 4 events, the first after ${first:-?} ms (well before the last is written)" \
  bash -c "[ '$count' = 4 ] && [ '${first:-9999}' -lt 800 ]"

# --- Errors keep the HTTP/2 framing.
out=$(h2curl "https://nope.localhost:$EP/" --http2)
check "unknown host over HTTP/2: 404 (got $out)" [ "$out" = "404 2" ]
check "unknown host: the edge's page" grep -q 'wtmesh edge' "$T/body"

# --- Concurrency on one connection (nghttp) and load (h2load).
urls=()
# Both connect to 127.0.0.1 (no resolver for *.localhost here) and name the tunnel by :authority.
for i in $(seq 1 20); do urls+=("https://127.0.0.1:$EP/hello?i=$i"); done
nghttp -n -s -H ":authority: app.localhost:$EP" "${urls[@]}" >"$T/nghttp.txt" 2>&1
nghttp_rc=$?
# nghttp -s: one row per stream, "id responseEnd requestStart process code size path".
ok=$(grep -cE '^ *[0-9]+ +\S+ +\S+ +\S+ +200 +22 /hello\?i=' "$T/nghttp.txt" || true)
check "nghttp: 20 concurrent streams on one connection, all 200 with the 22-byte body (rc $nghttp_rc, $ok rows)" \
  bash -c "[ '$nghttp_rc' = 0 ] && [ '$ok' = 20 ]"
n=4000
wtmesh_sanitized && n=400
h2load -c4 -m10 -n"$n" -H ":authority: app.localhost:$EP" "https://127.0.0.1:$EP/hello" >"$T/h2load.txt" 2>&1
summary=$(grep -E '^requests:' "$T/h2load.txt")
codes=$(grep -E '^status codes:' "$T/h2load.txt")
check "h2load -c4 -m10 -n$n: all succeeded ($summary; $codes)" \
  bash -c "grep -qE '^requests: $n total, $n started, $n done, $n succeeded, 0 failed, 0 errored' '$T/h2load.txt' && grep -qE '^status codes: $n 2xx' '$T/h2load.txt'"

stop_edge main
check "edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
