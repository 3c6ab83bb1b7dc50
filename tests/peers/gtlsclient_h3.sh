#!/usr/bin/env bash
# Real peer: ngtcp2's example HTTP/3 client (gtlsclient, Debian package ngtcp2-client; its HTTP/3 is
# nghttp3's) does plain HTTP/3 GETs against `wtmesh edge`. Asserts a clean exchange:
#   - QUIC handshake with ALPN h3, the edge's SETTINGS advertise HTTP datagrams (and extended CONNECT,
#     where this client's nghttp3 can tell), and its transport parameters allow DATAGRAM frames
#   - every GET (/, /nope, and /echo, which only answers CONNECT) gets :status 404 and ends with H3_NO_ERROR
#   - gtlsclient exits 0, and the edge is still running afterwards
# gtlsclient has no CA-file option and does not verify the server certificate, so none is passed.
# It also cannot choose its ALPN (always "h3"), so "a client offering only h2 is refused" cannot be
# shown with it; that case is left to our own tests.
# Usage: gtlsclient_h3.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

command -v gtlsclient >/dev/null || die "gtlsclient not found (Debian package ngtcp2-client; run scripts/setup.sh)"

start_edge main
port=${EDGE_PORT[main]}
out=$PEER_TMP/gtlsclient.out
paths=(/ /nope /echo)
urls=()
for p in "${paths[@]}"; do urls+=("https://127.0.0.1:$port$p"); done

log "gtlsclient --exit-on-all-streams-close --no-quic-dump 127.0.0.1 $port ${urls[*]}"
timeout -k 5 40 gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump --handshake-timeout=10s --timeout=15s \
  127.0.0.1 "$port" "${urls[@]}" >"$out" 2>&1 </dev/null &
client_pid=$!
track "$client_pid"
wait "$client_pid"
rc=$?
check "gtlsclient exits 0 (status $rc; 124 = killed by timeout)" [ "$rc" -eq 0 ]

check "QUIC handshake completes" grep -q '^QUIC handshake has completed' "$out"
check "ALPN h3 negotiated" grep -q '^Negotiated ALPN is h3$' "$out"
# nghttp3 before 1.14 (bookworm-backports has 1.8) ignores ENABLE_CONNECT_PROTOCOL on the client side and
# always prints 0 (fixed by nghttp3 commit 6e67286, "Fix ENABLE_CONNECT_PROTOCOL setting handling").
if grep -q '^http: SETTINGS_ENABLE_CONNECT_PROTOCOL=1$' "$out"; then
  pass "edge SETTINGS: SETTINGS_ENABLE_CONNECT_PROTOCOL=1"
else
  skip "SETTINGS_ENABLE_CONNECT_PROTOCOL: this gtlsclient's nghttp3 does not record it (fixed in nghttp3 1.14)"
fi
check "edge SETTINGS: SETTINGS_H3_DATAGRAM=1" grep -q '^http: SETTINGS_H3_DATAGRAM=1$' "$out"
dgram=$(grep -oE 'remote transport_parameters max_datagram_frame_size=[0-9]+' "$out" | head -1 | cut -d= -f2)
check "edge transport parameter max_datagram_frame_size=${dgram:-missing} > 0" [ "${dgram:-0}" -gt 0 ]

# Client bidi streams are 0x0, 0x4, 0x8 ... in the order the URIs were given.
for i in "${!paths[@]}"; do
  sid=$((i * 4))
  check "GET ${paths[$i]} -> :status 404" grep -q "^http: stream 0x$(printf '%x' "$sid") \[:status: 404\]" "$out"
  check "GET ${paths[$i]} stream closed with H3_NO_ERROR" grep -q "^HTTP stream $sid closed with error code 256$" "$out"
done

# The edge must not have closed the connection with an error (gtlsclient closes it with H3_NO_ERROR).
bad_close=$(grep -E 'frm rx .*CONNECTION_CLOSE' "$out" | grep -vE 'error_code=[^ ]*\((0x0|0x100)\)' || true)
check "edge sent no error CONNECTION_CLOSE${bad_close:+: $bad_close}" [ -z "$bad_close" ]

check "edge still running after the client left" kill -0 "${EDGE_PID[main]}"
if [ "$PEER_FAILED" -gt 0 ]; then
  # Without the per-frame and per-packet trace lines.
  grep -vE '^I[0-9]+ 0x[0-9a-f]+ (frm|pkt|ldc|cca|rcv|con recv)|^(Sent|Received) packet|^Set timer|^Timer has' \
    "$out" >"$out.brief"
  show_log "gtlsclient output (trace lines removed)" "$out.brief" 120
fi
peer_finish
