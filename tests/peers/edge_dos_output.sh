#!/usr/bin/env bash
# Issue 9, attack 1: the output flood. A client pipelines cheap requests the edge answers itself
# (404 for an unknown name, 502 for a tunnel whose agent is gone) as fast as TLS takes them and never
# reads a byte of the answers. An edge that parses the next request regardless of the answers still
# queued for the client grows its output buffer without bound (hundreds of MiB in seconds) and writes
# one log line per request (millions). The fixed edge stops reading a connection while its unsent
# output is over a small bound (64 KiB).
# Attack (tests/peers/edge_attack.mjs flood, 20 s, from 127.0.0.2 and 127.0.0.3, one TLS connection
# each, paused right after the handshake): `GET / HTTP/1.1` for nosuch.localhost (404) and for
# gone.localhost (a tunnel registered, then its agent stopped: 502 offline).
# Checks, while it runs:
#   - a legitimate client (curl from 127.0.0.1 to the live tunnel app.localhost, every ~0.25 s, -m 3)
#     gets 200 in < 1 s on every probe (2 s in a sanitizer build)
#   - the edge's RSS grows < 64 MiB over its idle value (256 MiB in a sanitizer build)
#   - the edge stops taking the attacker's requests: in the last 12 s of the attack it logs fewer than
#     100 of them, and in all its stderr grows by fewer than 2000 lines (the edge closes a connection
#     at its 100th own answer in a row; the unfixed edge logs millions)
#   - the edge is alive afterwards and still serves the tunnel
# The figures (requests written by the attacker, RSS growth, log lines, probe latency) are printed.
# Usage: edge_dos_output.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

RSS_LIMIT_MIB=64
PROBE_LIMIT_S=1.0
if wtmesh_sanitized; then
  RSS_LIMIT_MIB=256
  PROBE_LIMIT_S=2.0
  log "sanitizer build: RSS growth limit $RSS_LIMIT_MIB MiB, probe limit $PROBE_LIMIT_S s"
fi
DURATION_S=20

start_app_tunnel
# A tunnel whose agent is gone: the name answers 502 (offline) from the edge itself.
start_http gone main gone "$OP"
stop_pid "${AGENT_PID[gone]}" 5
code=$(curl -sS -m 10 --cacert "$CA" -o /dev/null -w '%{http_code}' "https://gone.localhost:$EP/" 2>"$T/curl.err")
log "gone.localhost after its agent stopped: $code"
code404=$(curl -sS -m 10 --cacert "$CA" -o /dev/null -w '%{http_code}' "https://nosuch.localhost:$EP/" 2>"$T/curl.err")
# The smaller of the two answers (head + body), for the log bound below.
resp_bytes=$(for h in nosuch gone; do
  curl -s -m 10 --cacert "$CA" -o /dev/null -w '%{size_header} %{size_download}\n' "https://$h.localhost:$EP/"
done | awk '{n = $1 + $2} NR == 1 || n < m {m = n} END {print m + 0}')
check "the flood's names are answered by the edge itself: nosuch 404 (got $code404), gone 502 (got $code)" \
  [ "$code404 $code" = "404 502" ]

# Idle RSS: the largest of a few samples after some ordinary traffic.
for _ in 1 2 3 4 5; do curl -s -m 5 --cacert "$CA" -o /dev/null "$BASE/hello"; done
idle_kib=0
for _ in 1 2 3 4; do
  k=$(edge_rss_kib main)
  [ "${k:-0}" -gt "$idle_kib" ] && idle_kib=$k
  sleep 0.25
done
lines0=$(edge_log_lines main)
log "idle: RSS $((idle_kib / 1024)) MiB, edge stderr $lines0 lines"
# Bounding the edge's own unsent output (64 KiB) does not bound what the kernel takes first (the send
# buffer autotunes up to tcp_wmem's max, 4 MiB, even towards a reader that never reads: ~11,500
# answers), so the edge also closes a connection at its 100th own answer in a row, each one logged.
LOG_LIMIT=2000

# --- The attack, with the prober and the RSS sampler around it.
start_prober flood "$BASE/hello" "$CA"
sleep 0.5
attack_start flood flood --port "$EP" --hosts nosuch.localhost,gone.localhost \
  --local 127.0.0.2,127.0.0.3 --duration "$DURATION_S"
# Guard: past 1.5 GiB of growth the edge has failed; stop the attack instead of eating the machine.
start_sampler flood main "${ATTACK_PID[flood]}" $((idle_kib + 1536 * 1024))
# The log count once the socket buffers are surely full: from here on a fixed edge takes no request.
MID_S=$((DURATION_S * 2 / 5))
sleep "$MID_S"
lines_mid=$(edge_log_lines main)
# attacker_lines FROM TO: edge log lines FROM+1..TO that are requests from the attacker's addresses.
attacker_lines() {
  sed -n "$(($1 + 1)),$2p" "${EDGE_DIR[main]}/stderr" | grep -cE ' http 127\.0\.0\.(2|3) '
}
attack_wait flood
stop_sampler flood
sleep 0.5
stop_prober flood
lines1=$(edge_log_lines main)

max_kib=$(sampler_max_kib flood)
growth_mib=$(((max_kib - idle_kib) / 1024))
reqs=$(attack_json flood 's.requestsWritten')
mib_written=$(attack_json flood '(s.bytesWritten / 1048576).toFixed(1)')
# shellcheck disable=SC2016  # a JavaScript template literal
per_conn=$(attack_json flood 's.conns.map(c => `${c.host}: ${c.requestsWritten} requests${c.closedByPeerAtMs !== null ? ", closed by the edge at " + c.closedByPeerAtMs + " ms (" + c.how + ")" : ""}`).join("; ")')
log "attack: $reqs pipelined requests ($mib_written MiB) written in $DURATION_S s: $per_conn"
log "edge RSS: idle $((idle_kib / 1024)) MiB, max $((max_kib / 1024)) MiB during the attack (+$growth_mib MiB); stderr +$((lines1 - lines0)) lines ($((lines_mid - lines0)) in the first $MID_S s)"

up=$(attack_json flood 's.conns.filter(c => c.connected).length')
check "the attacker's connections were up ($up of 2, TLS done) and wrote requests ($reqs)" [ $((up == 2 && reqs > 0)) = 1 ]
prober_check flood "$PROBE_LIMIT_S" "output flood"
check "output flood: edge RSS grew by $growth_mib MiB (idle $((idle_kib / 1024)) MiB, max $((max_kib / 1024)) MiB; want < $RSS_LIMIT_MIB MiB)" \
  [ "$growth_mib" -lt "$RSS_LIMIT_MIB" ]
tail_lines=$(attacker_lines "$lines_mid" "$lines1")
check "output flood: the edge's stderr grew by $((lines1 - lines0)) lines during the attack (want < $LOG_LIMIT)" \
  [ $((lines1 - lines0)) -lt "$LOG_LIMIT" ]
check "output flood: in the attack's last $((DURATION_S - MID_S)) s the edge logged $tail_lines requests of the attacker (want < 100: it stopped taking them)" \
  [ "$tail_lines" -lt 100 ]
check "output flood: the edge is still running" kill -0 "${EDGE_PID[main]}"
code=$(curl -sS -m 5 --cacert "$CA" -o /dev/null -w '%{http_code}' "$BASE/hello" 2>"$T/curl.err")
check "after the attack the tunnel answers 200 (got $code)" [ "$code" = 200 ]

stop_edge main
check "edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
