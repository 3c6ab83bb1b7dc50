#!/usr/bin/env bash
# Issue 14 6b/6a and item 4 on the QUIC port, against a QUIC client we did not write: ngtcp2's
# example client gtlsclient (Debian package ngtcp2-client).
#   (deadline) gtlsclient completes the handshake and then waits (--delay-stream=30s): an edge started
#       with --session-deadline 1 closes the connection within 4 s (CONNECTION_CLOSE with H3_NO_ERROR,
#       0x100, reason "no session opened"), and /metrics counts it as
#       wtmesh_connections_shed_total{reason="no_session"} 1.
#   (per-ip cap) with --quic-max-connections-per-ip 4: four gtlsclients from 127.0.0.1 hold their
#       connections (--delay-stream=20s); a fifth is refused at once (CONNECTION_CLOSE
#       CONNECTION_REFUSED, 0x2, before any handshake), counted as
#       wtmesh_quic_initials_refused_total{reason="address_connections"} 1; the four are served.
#   (rate) with --quic-handshake-burst 3 --quic-handshakes-per-ip 0.01: three GETs one after the
#       other get their 404, the fourth connection is refused (0x2), counted as
#       wtmesh_quic_initials_refused_total{reason="handshake_rate"} 1.
#   (retry) with --quic-retry-above 0 (Retry always): gtlsclient completes its handshake through the
#       Retry and gets its 404 (it checks original_dcid and retry_scid in our transport parameters);
#       an Initial carrying a forged Retry token (gtlsclient --token-file: the right magic byte,
#       random bytes) gets CONNECTION_CLOSE INVALID_TOKEN (0xb) and no connection; /metrics:
#       wtmesh_quic_retries_total 1, wtmesh_quic_initials_refused_total{reason="invalid_token"} 1;
#       then our agent (`wtmesh http`) connects through a Retry too and its tunnel serves a file.
#   (unknown token) an Initial carrying a token we never issued (NEW_TOKEN-like, random) is served
#       as one without a token: the token is dropped (it does not validate the address; the 3x
#       anti-amplification limit itself is checked by ForgedTokenTest in dispatcher_test.cc).
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

# write_token FILE HEX: a token in the PEM form gtlsclient --token-file reads.
write_token() {
  { echo "-----BEGIN QUIC TOKEN-----"; xxd -r -p <<<"$2" | base64 -w 64; echo "-----END QUIC TOKEN-----"; } >"$1"
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

# --- per-address cap on live connections ---------------------------------------------------------
admin_port=$(free_port)
start_edge cap --quic-max-connections-per-ip 4 --admin-listen "127.0.0.1:$admin_port"
holders=()
for i in 1 2 3 4; do
  timeout -k 5 40 gtlsclient --no-quic-dump --no-http-dump --handshake-timeout=10s --delay-stream=4s \
    --exit-on-all-streams-close 127.0.0.1 "${EDGE_PORT[cap]}" "https://127.0.0.1:${EDGE_PORT[cap]}/" \
    >"$PEER_TMP/holder$i.out" 2>&1 </dev/null &
  holders+=($!)
  track "${holders[-1]}"
done
for i in 1 2 3 4; do
  check "holder $i handshakes" wait_for 10 grep -q '^QUIC handshake has completed' "$PEER_TMP/holder$i.out"
done
run_gtlsclient fifth "${EDGE_PORT[cap]}" --timeout=5s
check "the fifth connection is refused at once (took ${GC_MS} ms)" [ "$GC_MS" -lt 3000 ]
check "with CONNECTION_CLOSE CONNECTION_REFUSED (0x2) and no handshake" \
  grep -qE 'frm rx .*CONNECTION_CLOSE.*error_code=[^ ]*\(0x2\)' "$PEER_TMP/fifth.out"
check "the fifth never completed a handshake" bash -c "! grep -q '^QUIC handshake has completed' '$PEER_TMP/fifth.out'"
metrics=$(curl -sS -m 5 "http://127.0.0.1:$admin_port/metrics")
check "metric wtmesh_quic_initials_refused_total{reason=\"address_connections\"} 1" \
  grep -qF 'wtmesh_quic_initials_refused_total{reason="address_connections"} 1' <<<"$metrics"
for i in 1 2 3 4; do
  wait "${holders[$((i - 1))]}"
  rc=$?
  check "holder $i served after its wait (gtlsclient status $rc, :status 404)" \
    grep -q '\[:status: 404\]' "$PEER_TMP/holder$i.out"
done
# The holders' connections leave the edge's table (and the per-address count of 4) only after their
# closing period (3 PTO, longer under a sanitizer): wait for that, or the next Initial is refused as
# the fifth was.
check "the holders' connections are gone from the edge" wait_for 10 bash -c \
  "curl -sS -m 2 'http://127.0.0.1:$admin_port/metrics' | grep -qx 'wtmesh_quic_connections 0'"
# (a) A token we did not issue (NEW_TOKEN-like magic 0x36, random bytes) is dropped, not refused:
# the client is served as one without a token (its address unvalidated until the handshake).
write_token "$PEER_TMP/unknown.pem" "36$(head -c 40 /dev/urandom | xxd -p | tr -d '\n')"
run_gtlsclient unknown "${EDGE_PORT[cap]}" --exit-on-all-streams-close --timeout=5s --token-file="$PEER_TMP/unknown.pem"
check "an Initial with an unknown token is still served (:status 404, gtlsclient status $GC_RC)" \
  grep -q '\[:status: 404\]' "$PEER_TMP/unknown.out"
stop_edge cap

# --- per-address handshake rate -------------------------------------------------------------------
admin_port=$(free_port)
start_edge rate --quic-handshake-burst 3 --quic-handshakes-per-ip 0.01 --admin-listen "127.0.0.1:$admin_port"
for i in 1 2 3; do
  run_gtlsclient get$i "${EDGE_PORT[rate]}" --exit-on-all-streams-close --timeout=5s
  check "GET $i served (:status 404)" grep -q '\[:status: 404\]' "$PEER_TMP/get$i.out"
done
run_gtlsclient get4 "${EDGE_PORT[rate]}" --exit-on-all-streams-close --timeout=5s
check "the fourth connection within the burst window is refused (0x2, took ${GC_MS} ms)" \
  grep -qE 'frm rx .*CONNECTION_CLOSE.*error_code=[^ ]*\(0x2\)' "$PEER_TMP/get4.out"
metrics=$(curl -sS -m 5 "http://127.0.0.1:$admin_port/metrics")
check "metric wtmesh_quic_initials_refused_total{reason=\"handshake_rate\"} 1" \
  grep -qF 'wtmesh_quic_initials_refused_total{reason="handshake_rate"} 1' <<<"$metrics"
stop_edge rate

# --- Retry (address validation) --------------------------------------------------------------------
admin_port=$(free_port)
start_edge retry --quic-retry-above 0 --admin-listen "127.0.0.1:$admin_port"
run_gtlsclient retry "${EDGE_PORT[retry]}" --exit-on-all-streams-close --timeout=5s
check "gtlsclient received a Retry" grep -qE 'pkt rx .* type=Retry ' "$PEER_TMP/retry.out"
check "our transport parameters carry retry_source_connection_id" \
  grep -qE 'remote transport_parameters retry_source_connection_id=0x[0-9a-f]+' "$PEER_TMP/retry.out"
check "gtlsclient completes its handshake through the Retry" grep -q '^QUIC handshake has completed' "$PEER_TMP/retry.out"
check "and its GET gets :status 404 (gtlsclient status $GC_RC)" grep -q '\[:status: 404\]' "$PEER_TMP/retry.out"
# 0xb7 is ngtcp2's Retry-token magic; the rest (a sealed token's length) is random.
write_token "$PEER_TMP/forged.pem" "b7$(head -c 120 /dev/urandom | xxd -p | tr -d '\n')"
run_gtlsclient forged "${EDGE_PORT[retry]}" --exit-on-all-streams-close --timeout=5s --token-file="$PEER_TMP/forged.pem"
check "a forged Retry token gets CONNECTION_CLOSE INVALID_TOKEN (0xb) (took ${GC_MS} ms)" \
  grep -qE 'frm rx .*CONNECTION_CLOSE.*error_code=[^ ]*\(0xb\)' "$PEER_TMP/forged.out"
check "and no handshake" bash -c "! grep -q '^QUIC handshake has completed' '$PEER_TMP/forged.out'"
metrics=$(curl -sS -m 5 "http://127.0.0.1:$admin_port/metrics")
check "metric wtmesh_quic_retries_total 1" grep -qx 'wtmesh_quic_retries_total 1' <<<"$metrics"
check "metric wtmesh_quic_initials_refused_total{reason=\"invalid_token\"} 1" \
  grep -qF 'wtmesh_quic_initials_refused_total{reason="invalid_token"} 1' <<<"$metrics"
# Our agent (`wtmesh http`) through the forced Retry: its tunnel serves.
origin_port=$(free_port)
mkdir -p "$PEER_TMP/www" && echo "hello through a retry" >"$PEER_TMP/www/hi.txt"
python3 -m http.server "$origin_port" --bind 127.0.0.1 --directory "$PEER_TMP/www" >/dev/null 2>&1 </dev/null &
track $!
wait_for 10 curl -sf -o /dev/null "http://127.0.0.1:$origin_port/hi.txt" || die "the origin did not start"
start_http agent retry app "$origin_port"
body=$(curl -sS -m 10 --cacert "${EDGE_STATE[retry]}/ca.pem" "${AGENT_URL[agent]%/}/hi.txt")
check "wtmesh http through the forced Retry: the tunnel serves (got \"$body\")" [ "$body" = "hello through a retry" ]
metrics=$(curl -sS -m 5 "http://127.0.0.1:$admin_port/metrics")
check "metric wtmesh_quic_retries_total 2 (gtlsclient's and the agent's)" grep -qx 'wtmesh_quic_retries_total 2' <<<"$metrics"
stop_edge retry

if [ "$PEER_FAILED" -gt 0 ]; then
  for f in idle fifth get4 unknown retry forged; do [ -f "$PEER_TMP/$f.out" ] && show_log "gtlsclient ($f)" "$PEER_TMP/$f.out" 40; done
fi
peer_finish
