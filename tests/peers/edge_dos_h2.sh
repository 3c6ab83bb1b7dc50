#!/usr/bin/env bash
# Issue 14 item 5: HTTP/2 attacks on the public HTTPS port (ALPN h2), written frame by frame by
# tests/peers/edge_attack.mjs h2 (nghttp2-based clients refuse to send these). Each attack runs for
# ATTACK_S seconds from 127.0.0.2 over one connection at a time, a new one as soon as the edge shed the
# last; the edge runs with default limits (plus --admin-listen for its metrics).
#   attack        what one connection sends                                          shed by
#   rapidreset    HEADERS + RST_STREAM(CANCEL), new stream each time, as fast as TCP takes them
#                 (CVE-2023-44487)                                                    nghttp2's reset rate limit (1000 + 33/s): GOAWAY
#   continuation  HEADERS without END_HEADERS, then endless CONTINUATION frames      8 CONTINUATIONs per header block
#   hpackref      a 4000-byte field into the HPACK table, then ~16,000 one-byte
#                 references to it per 16 KiB HEADERS frame (64 MB of header list)   reset at 2x max header list, 100 own answers: GOAWAY
#   hpacklit      one 60,000-byte literal value over 4 frames, stream after stream   431 each, 100 own answers in a row: GOAWAY
#   hpackmany     ~2,700 two-byte fields per 16 KiB HEADERS frame                    as hpackref
#   settings      SETTINGS frames (each needs an ACK)                                nghttp2's outbound-ACK flood limit (1000)
#   ping          PING frames (each needs an ACK)                                    as settings
#   ping-noread   PING frames, never reading the ACKs                                as settings (the edge never buffers past 64 KiB)
#   window        WINDOW_UPDATE +1 on the connection, 300,000 of them                not shed: processed at line rate, no state
# Checks per attack: a legitimate client (curl from 127.0.0.1 to app.localhost/hello every ~0.25 s,
# -m 3) gets 200 in < 1 s on every probe (2 s in a sanitizer build); the edge's RSS grows < 32 MiB
# (128 MiB); every connection the edge shed was shed within SHED_MS of its first attack byte, at least
# MIN_SHED connections were shed, and wtmesh_public_connections_shed_total{reason=...} grew by at least
# the number of connections the attacker saw shed minus one (the last may still be in flight).
# Usage: edge_dos_h2.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

RSS_LIMIT_MIB=32
PROBE_LIMIT_S=1.0
SHED_MS=1500
ATTACK_S=4
if wtmesh_sanitized; then
  RSS_LIMIT_MIB=128
  PROBE_LIMIT_S=2.0
  SHED_MS=6000
  log "sanitizer build: RSS growth limit $RSS_LIMIT_MIB MiB, probe limit $PROBE_LIMIT_S s, shed within $SHED_MS ms"
fi

start_app_tunnel --admin-listen 127.0.0.1:0
wait_for 10 grep -q 'admin: http://127.0.0.1:[0-9]*/metrics' "${EDGE_DIR[main]}/stdout" || die "edge printed no admin line"
for _ in 1 2 3 4 5; do curl -s -m 5 --cacert "$CA" -o /dev/null "$BASE/hello"; done
FIGURES=$T/figures.txt
: >"$FIGURES"

# attack LABEL REASON MIN_SHED ARGS...: one attack as described above; REASON "" = not shed.
attack() {
  local label=$1 reason=$2 min_shed=$3 idle_kib max_kib growth m0 m1 shed conns p99 max units
  shift 3
  sleep 0.5
  idle_kib=$(edge_rss_kib main)
  [ -z "$reason" ] || m0=$(edge_metric main "wtmesh_public_connections_shed_total{reason=\"$reason\"}")
  start_prober "$label" "$BASE/hello" "$CA"
  sleep 0.3
  attack_start "$label" h2 --port "$EP" --local 127.0.0.2 --duration "$ATTACK_S" "$@"
  start_sampler "$label" main "${ATTACK_PID[$label]}" $((idle_kib + 1024 * 1024))
  attack_wait "$label"
  stop_sampler "$label"
  sleep 0.3
  stop_prober "$label"
  max_kib=$(sampler_max_kib "$label")
  growth=$(((max_kib - idle_kib) / 1024))
  conns=$(attack_json "$label" 's.connected')
  shed=$(attack_json "$label" 's.closedByPeer')
  p99=$(attack_json "$label" 's.shedMs.p99')
  max=$(attack_json "$label" 's.shedMs.max')
  units=$(attack_json "$label" 's.unitsPerConn.max')
  log "$label: $conns connections, $shed shed by the edge (ms from the first attack byte: $(attack_json "$label" 's.shedMs')," \
    "how: $(attack_json "$label" 's.closedHow')), units sent $(attack_json "$label" 's.unitsSent') (per connection $(attack_json "$label" 's.unitsPerConn')), $(attack_json "$label" 's.bytesWritten') bytes;" \
    "frames in $(attack_json "$label" 's.framesIn'), GOAWAY codes seen $(attack_json "$label" 's.goaways'); RSS idle $((idle_kib / 1024)) MiB, max $((max_kib / 1024)) MiB"
  prober_check "$label" "$PROBE_LIMIT_S" "$label"
  check "$label: edge RSS grew by $growth MiB (idle $((idle_kib / 1024)) MiB, max $((max_kib / 1024)) MiB; want < $RSS_LIMIT_MIB MiB)" \
    [ "$growth" -lt "$RSS_LIMIT_MIB" ]
  check "$label: the edge is still running" kill -0 "${EDGE_PID[main]}"
  if [ -z "$reason" ]; then
    printf '%s\t%s\t%s\t%s\n' "$label" "$((max_kib / 1024))" "$growth" "not shed ($units units on one connection)" >>"$FIGURES"
    return
  fi
  m1=$(edge_metric main "wtmesh_public_connections_shed_total{reason=\"$reason\"}")
  check "$label: the edge shed $shed of $conns connections (want >= $min_shed), each within $SHED_MS ms (p99 $p99 ms, max $max ms)" \
    [ $((shed >= min_shed && max <= SHED_MS)) = 1 ]
  check "$label: wtmesh_public_connections_shed_total{reason=\"$reason\"} grew by $((m1 - m0)) (want >= $((shed - 1)))" \
    [ $((m1 - m0 >= shed - 1 && m1 > m0)) = 1 ]
  printf '%s\t%s\t%s\t%s\n' "$label" "$((max_kib / 1024))" "$growth" "$shed connections shed, p50 $(attack_json "$label" 's.shedMs.p50') ms, max $max ms ($reason)" >>"$FIGURES"
}

attack rapidreset h2_reset_rate 20 --h2 rapidreset
attack continuation h2_continuations 20 --h2 continuation
attack hpackref h2_local_answers 10 --h2 hpackref
attack hpacklit h2_local_answers 10 --h2 hpacklit --value-bytes 60000
attack hpackmany h2_local_answers 10 --h2 hpackmany
attack settings h2_flood 20 --h2 settings
attack ping h2_flood 20 --h2 ping
attack ping-noread h2_flood 20 --h2 ping --no-read --count 10000000
attack window "" 0 --h2 window --count 300000

log "figures (attack, peak RSS MiB, growth MiB, shed):"
sed 's/^/    /' "$FIGURES" >&2
code=$(curl -sS -m 5 --cacert "$CA" -o /dev/null -w '%{http_code}' "$BASE/hello" 2>"$T/curl.err")
check "after the attacks the tunnel answers 200 (got $code)" [ "$code" = 200 ]
stop_edge main
check "edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
