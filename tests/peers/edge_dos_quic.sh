#!/usr/bin/env bash
# Issue 14 6b/6a and item 4 on the QUIC port, against a QUIC client we did not write: ngtcp2's
# example client gtlsclient (Debian package ngtcp2-client).
#   (deadline) gtlsclient completes the handshake and then waits (--delay-stream=30s): an edge started
#       with --session-deadline 1 closes the connection within 4 s (CONNECTION_CLOSE with H3_NO_ERROR,
#       0x100, reason "no session opened"), and /metrics counts it as
#       wtmesh_connections_shed_total{reason="no_session"} 1.
# Usage: edge_dos_quic.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

command -v gtlsclient >/dev/null || die "gtlsclient not found (Debian package ngtcp2-client; run scripts/setup.sh)"
command -v curl >/dev/null || die "curl not found"

# gtlsclient HOST PORT ARGS...: runs it (at most 40 s) into $PEER_TMP/NAME.out; sets GC_RC and GC_MS.
run_gtlsclient() {
  local name=$1 port=$2 start
  shift 2
  start=$(now_ms)
  timeout -k 5 40 gtlsclient --no-quic-dump --no-http-dump --handshake-timeout=10s "$@" 127.0.0.1 "$port" \
    "https://127.0.0.1:$port/" >"$PEER_TMP/$name.out" 2>&1 </dev/null
  GC_RC=$?
  GC_MS=$(($(now_ms) - start))
}

admin_port=$(free_port)
start_edge deadline --session-deadline 1 --admin-listen "127.0.0.1:$admin_port"
run_gtlsclient idle "${EDGE_PORT[deadline]}" --delay-stream=30s --timeout=30s
check "gtlsclient handshakes" grep -q '^QUIC handshake has completed' "$PEER_TMP/idle.out"
check "the idle connection is closed by the edge within 4 s (took ${GC_MS} ms, gtlsclient status $GC_RC)" \
  [ "$GC_MS" -lt 4000 ]
check "with CONNECTION_CLOSE H3_NO_ERROR \"no session opened\"" \
  grep -qE 'frm rx .*CONNECTION_CLOSE.*error_code=[^ ]*\(0x100\).*reason=\[no session opened\]' "$PEER_TMP/idle.out"
metrics=$(curl -sS -m 5 "http://127.0.0.1:$admin_port/metrics")
check "metric wtmesh_connections_shed_total{reason=\"no_session\"} 1" \
  grep -qF 'wtmesh_connections_shed_total{reason="no_session"} 1' <<<"$metrics"
stop_edge deadline

[ "$PEER_FAILED" -eq 0 ] || show_log "gtlsclient (idle)" "$PEER_TMP/idle.out" 40
peer_finish
