#!/usr/bin/env bash
# gRPC through the tunnel (docs/protocol.md §4.1, session feature `trailers`), with Debian's
# python3-grpcio on both ends (tests/peers/grpc_peer.py: generic handlers, raw-bytes messages) and
# public HTTP/2 over TLS to our edge:
#   - upstream h2c (`wtmesh http --upstream h2c`) and TLS-h2 (`--upstream-tls --upstream-ca`, the
#     gRPC server on a certificate from a test CA): unary (trailing metadata, 1 MiB), a unary error
#     (trailers-only: grpc-status/grpc-message in the head), bidirectional streaming in lock-step (each
#     reply before the next message is sent), a streaming error after messages (real trailers);
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
  local name=$1 out line i
  shift
  out=$T/grpc-$name.log
  "$PY" "$PEER_DIR/grpc_peer.py" server "$@" >"$out" 2>&1 </dev/null &
  ORIGIN_PID[$name]=$!
  track "${ORIGIN_PID[$name]}"
  for ((i = 0; i < 100; i++)); do
    line=$(grep -m1 -oE 'origin listening on [0-9]+' "$out" 2>/dev/null || true)
    [ -n "$line" ] && break
    kill -0 "${ORIGIN_PID[$name]}" 2>/dev/null || die "grpc server '$name' exited: $(cat "$out")"
    sleep 0.1
  done
  [ -n "$line" ] || die "grpc server '$name' did not start within 10 s"
  ORIGIN_PORT[$name]=${line##* }
}

start_edge main
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem

# --- gRPC, h2c upstream ----------------------------------------------------------------------------
start_grpc h2c
HTTP_EXTRA_ARGS=(--upstream h2c)
start_http grpc main grpc "${ORIGIN_PORT[h2c]}"
timeout 60 "$PY" "$PEER_DIR/grpc_peer.py" client "127.0.0.1:$EP" "grpc.localhost:$EP" "$CA" >"$T/c1.out" 2>&1
rc=$?
while read -r line; do check "h2c upstream, public HTTP/2: $line" [ "${line#ok }" != "$line" ]; done < <(grep -E '^(not )?ok ' "$T/c1.out")
check "gRPC client (h2c upstream) exits 0 with 7 checks ($(grep -c '^ok ' "$T/c1.out") ok; $(grep -v '^ok ' "$T/c1.out" | head -3 | tr '\n' ' '))" \
  bash -c "[ $rc = 0 ] && [ \$(grep -c '^ok ' '$T/c1.out') = 7 ]"

# --- gRPC, TLS-h2 upstream -------------------------------------------------------------------------
start_grpc tls --cert "$T/certs/cert.pem" --key "$T/certs/key.pem"
HTTP_EXTRA_ARGS=(--upstream-tls --upstream-ca "$T/certs/ca.pem")
start_http grpctls main grpctls "${ORIGIN_PORT[tls]}"
timeout 60 "$PY" "$PEER_DIR/grpc_peer.py" client "127.0.0.1:$EP" "grpctls.localhost:$EP" "$CA" >"$T/c2.out" 2>&1
rc=$?
while read -r line; do check "TLS-h2 upstream, public HTTP/2: $line" [ "${line#ok }" != "$line" ]; done < <(grep -E '^(not )?ok ' "$T/c2.out")
check "gRPC client (TLS-h2 upstream) exits 0 with 7 checks ($(grep -c '^ok ' "$T/c2.out") ok; $(grep -v '^ok ' "$T/c2.out" | head -3 | tr '\n' ' '))" \
  bash -c "[ $rc = 0 ] && [ \$(grep -c '^ok ' '$T/c2.out') = 7 ]"

peer_finish
