#!/usr/bin/env bash
# gRPC through the tunnel (docs/protocol.md §4.1, session feature `trailers`), with Debian's
# python3-grpcio on both ends (tests/peers/grpc_peer.py: generic handlers, raw-bytes messages) and
# public HTTP/2 over TLS to our edge:
#   - upstream h2c (`wtmesh http --upstream h2c`) and TLS-h2 (`--upstream-tls --upstream-ca`, the
#     gRPC server on a certificate from a test CA): unary (trailing metadata, 1 MiB), a unary error
#     (trailers-only: grpc-status/grpc-message in the head), bidirectional streaming in lock-step (each
#     reply before the next message is sent), a streaming error after messages (real trailers).
# Trailers and 1xx to curl and gtlsclient (HTTP/3, which no gRPC client here speaks): trailers_1xx.sh.
# Usage: grpc_h2c.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"
T=$PEER_TMP
PY=/usr/bin/python3
"$PY" -c 'import grpc' 2>/dev/null || die "python3-grpcio missing (Debian package python3-grpcio; run scripts/setup.sh)"
make_test_cert "$T/certs"

# start_grpc NAME [--cert FILE --key FILE]: grpc_peer.py server; sets ORIGIN_PORT[NAME].
start_grpc() {
  local name=$1
  shift
  start_listening_origin "$name" "$PY" "$PEER_DIR/grpc_peer.py" server "$@"
}

# grpc_calls LABEL TUNNEL: grpc_peer.py client through the edge's public HTTP/2 to TUNNEL.localhost;
# each of its 7 "ok"/"not ok" lines is a check, and it must exit 0 with all 7.
grpc_calls() {
  local label=$1 tunnel=$2 out=$T/client-$2.out rc line
  timeout 60 "$PY" "$PEER_DIR/grpc_peer.py" client "127.0.0.1:$EP" "$tunnel.localhost:$EP" "$CA" >"$out" 2>&1
  rc=$?
  while read -r line; do check "$label: $line" [ "${line#ok }" != "$line" ]; done < <(grep -E '^(not )?ok ' "$out")
  check "gRPC client ($label) exits 0 with 7 checks ($(grep -c '^ok ' "$out") ok; $(grep -v '^ok ' "$out" | head -3 | tr '\n' ' '))" \
    bash -c "[ $rc = 0 ] && [ \$(grep -c '^ok ' '$out') = 7 ]"
}

start_edge main
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem

# --- gRPC, h2c upstream ----------------------------------------------------------------------------
start_grpc h2c
HTTP_EXTRA_ARGS=(--upstream h2c)
start_http grpc main grpc "${ORIGIN_PORT[h2c]}"
grpc_calls "h2c upstream, public HTTP/2" grpc

# --- gRPC, TLS-h2 upstream -------------------------------------------------------------------------
start_grpc tls --cert "$T/certs/cert.pem" --key "$T/certs/key.pem"
HTTP_EXTRA_ARGS=(--upstream-tls --upstream-ca "$T/certs/ca.pem")
start_http grpctls main grpctls "${ORIGIN_PORT[tls]}"
grpc_calls "TLS-h2 upstream, public HTTP/2" grpctls

peer_finish
