#!/usr/bin/env bash
# Issue 9, attack 3: connection floods. Connections cost the edge a file descriptor each and, until
# they send something, nothing else: an edge that keeps the usual soft limit of 1024 open files, caps
# public connections only globally (10,000), cuts a silent or dripping connection only after its
# 120 s idle timeout (any byte resets it), and logs every refused connection, is taken down by one
# address opening connections and never finishing them. The fixed edge:
#   - raises its RLIMIT_NOFILE soft limit to the hard limit at start;
#   - caps connections per client address (--max-connections-per-ip, 256): beyond it they are closed
#     at once, and those refusals are logged rate-limited, not one line each;
#   - cuts a connection that has not finished its TLS handshake within --handshake-timeout (10 s) or
#     its first request header within --header-timeout (10 s, from accept).
# The edge is started with the soft limit lowered to 1024 (what most systems give a service), the
# attacker (tests/peers/edge_attack.mjs) with the soft limit raised to the hard one. Default flags.
#   (c) /proc/PID/limits: the edge's "Max open files" soft limit equals the hard limit
#   (a) 10,100 bare TCP connects from 127.0.0.2 that send nothing, held 20 s: at most 256 (+32 slack)
#       of them stay open longer than 1 s at once, the others are closed by the edge within 1 s, and
#       every one is closed by the edge within 12 s of its connect; fewer than 100 edge log lines
#       mention a refusal
#   (b) 3,000 slowloris connections from 127.0.0.3..127.0.0.14 (250 each, under the per-address cap):
#       half drip a real TLS ClientHello one byte every 5 s, half finish TLS and drip a request header
#       one byte every 5 s: the edge closes every one within 13 s of its connect
#   During (a) and (b): a legitimate client (curl from 127.0.0.1 to app.localhost/hello every ~0.25 s,
#   -m 3) gets 200 in < 1 s on every probe (2 s in a sanitizer build) and the edge is alive afterwards;
#   the edge's RSS grows < 64 MiB in (a) and in (b) (256 MiB in a sanitizer build).
# Usage: edge_dos_conns.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

RSS_LIMIT_MIB=64
PROBE_LIMIT_S=1.0
FLOOD_CONNS=10100
PER_IP_CAP=256
CAP_SLACK=32
LORIS_CONNS=3000
LORIS_CUT_S=13
if wtmesh_sanitized; then
  RSS_LIMIT_MIB=256
  PROBE_LIMIT_S=2.0
  LORIS_CONNS=1200 # 100 per address: TLS handshakes cost a sanitizer build several times more
  LORIS_CUT_S=15
  log "sanitizer build: RSS growth limit $RSS_LIMIT_MIB MiB, probe limit $PROBE_LIMIT_S s, $LORIS_CONNS slowloris connections cut within $LORIS_CUT_S s"
fi

hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((FLOOD_CONNS + 500)) ]; then
  skip "connection floods: the open-files hard limit is $hard, the attacker needs $((FLOOD_CONNS + 500))"
  peer_finish
fi
# What most systems give a service; the edge is expected to raise it itself.
ulimit -Sn 1024

start_app_tunnel

# --- (c) RLIMIT_NOFILE.
read -r soft_nofile hard_nofile < <(awk '/^Max open files/ {print $4, $5}' "/proc/${EDGE_PID[main]}/limits")
check "(c) the edge raised its open-files soft limit to the hard limit (soft $soft_nofile, hard $hard_nofile; started with 1024)" \
  [ "$soft_nofile" = "$hard_nofile" ]

for _ in 1 2 3 4 5; do curl -s -m 5 --cacert "$CA" -o /dev/null "$BASE/hello"; done
idle_kib=$(edge_rss_kib main)
log "idle: RSS $((idle_kib / 1024)) MiB"

# --- (a) Bare connects from one address.
lines0=$(edge_log_lines main)
start_prober flood "$BASE/hello" "$CA"
sleep 0.5
attack_start flood connflood --port "$EP" --local 127.0.0.2 --conns "$FLOOD_CONNS" --parallel 128 \
  --connect-timeout-ms 5000 --duration 20 --quick-ms 1000 --cut-ms 12000
start_sampler flood main "${ATTACK_PID[flood]}" $((idle_kib + 1536 * 1024))
attack_wait flood
stop_sampler flood
stop_prober flood
lines1=$(edge_log_lines main)
refusals=$(tail -n +"$((lines0 + 1))" "${EDGE_DIR[main]}/stderr" | head -n "$((lines1 - lines0))" | grep -ci 'refus')

connected=$(attack_json flood 's.connected')
failed=$(attack_json flood 's.connectFailed')
quick=$(attack_json flood 's.closedWithinQuick')
within=$(attack_json flood 's.closedWithinCut')
long_open=$(attack_json flood 's.maxOpenLongLived')
log "(a) $connected/$FLOOD_CONNS connected ($failed failed: $(attack_json flood 's.errors')) in $(attack_json flood 's.connectPhaseMs') ms;" \
  "closed by the edge: $(attack_json flood 's.closedByPeer') ($quick within 1 s, $within within 12 s), lifetimes (ms) $(attack_json flood 's.lifetimeMs');" \
  "most open at once $(attack_json flood 's.maxOpen'), of those living > 1 s $long_open; edge log +$((lines1 - lines0)) lines, $refusals mention a refusal"
max_kib=$(sampler_max_kib flood)
growth_mib=$(((max_kib - idle_kib) / 1024))

prober_check flood "$PROBE_LIMIT_S" "(a) $FLOOD_CONNS bare connects"
check "(a) the attacker's connects went through: $connected of $FLOOD_CONNS connected (want >= 99 %; failures: $(attack_json flood 's.errors'))" \
  [ $((connected * 100 >= FLOOD_CONNS * 99)) = 1 ]
check "(a) at most $PER_IP_CAP (+$CAP_SLACK) of the attacker's connections lived > 1 s at once (most: $long_open)" \
  [ "$long_open" -le $((PER_IP_CAP + CAP_SLACK)) ]
check "(a) the edge closed $quick of the attacker's $connected connections within 1 s (want >= $((connected - PER_IP_CAP - CAP_SLACK)))" \
  [ "$quick" -ge $((connected - PER_IP_CAP - CAP_SLACK)) ]
check "(a) the edge closed every connection within 12 s of its connect ($within of $connected)" \
  [ $((connected > 0 && within == connected)) = 1 ]
check "(a) refused connections are not logged one line each: $refusals edge log lines mention a refusal (want < 100; +$((lines1 - lines0)) lines in all)" \
  [ "$refusals" -lt 100 ]
check "(a) edge RSS grew by $growth_mib MiB (idle $((idle_kib / 1024)) MiB, max $((max_kib / 1024)) MiB; want < $RSS_LIMIT_MIB MiB)" \
  [ "$growth_mib" -lt "$RSS_LIMIT_MIB" ]
check "(a) the edge is still running" kill -0 "${EDGE_PID[main]}"

# --- (b) Slowloris: ClientHello and request header one byte every 5 s, spread under the per-address cap.
sleep 1
idle_kib=$(edge_rss_kib main)
start_prober loris "$BASE/hello" "$CA"
sleep 0.5
attack_start loris slowloris --port "$EP" --local 127.0.0.3-127.0.0.14 --conns "$LORIS_CONNS" --parallel 128 \
  --interval-ms 5000 --connect-timeout-ms 10000 --duration 22 --cut-ms $((LORIS_CUT_S * 1000))
start_sampler loris main "${ATTACK_PID[loris]}" $((idle_kib + 1536 * 1024))
attack_wait loris
stop_sampler loris
stop_prober loris
for kind in hello header; do
  log "(b) $kind: $(attack_json loris "s.$kind.connected") connected$([ $kind = header ] && echo ", $(attack_json loris 's.header.tlsDone') finished TLS"), closed by the edge $(attack_json loris "s.$kind.closedByPeer") ($(attack_json loris "s.$kind.closedWithinCut") within $LORIS_CUT_S s), lifetimes (ms) $(attack_json loris "s.$kind.lifetimeMs"), errors $(attack_json loris "s.$kind.errors")"
done
connected=$(attack_json loris 's.all.connected')
within=$(attack_json loris 's.all.closedWithinCut')
max_kib=$(sampler_max_kib loris)
growth_mib=$(((max_kib - idle_kib) / 1024))
prober_check loris "$PROBE_LIMIT_S" "(b) $LORIS_CONNS slowloris connections"
check "(b) the slowloris connections got through: $connected of $LORIS_CONNS connected (want >= 99 %), $(attack_json loris 's.header.tlsDone') finished TLS" \
  [ $((connected * 100 >= LORIS_CONNS * 99)) = 1 ]
check "(b) the edge closed every slowloris connection within $LORIS_CUT_S s of its connect ($within of $connected; ClientHello drip max $(attack_json loris 's.hello.lifetimeMs.max') ms, header drip max $(attack_json loris 's.header.lifetimeMs.max') ms)" \
  [ $((connected > 0 && within == connected)) = 1 ]
per_conn_kib=$(((max_kib - idle_kib) / LORIS_CONNS))
check "(b) edge RSS grew by $growth_mib MiB for $LORIS_CONNS held connections, $per_conn_kib KiB each (idle $((idle_kib / 1024)) MiB, max $((max_kib / 1024)) MiB; want < $RSS_LIMIT_MIB MiB)" \
  [ "$growth_mib" -lt "$RSS_LIMIT_MIB" ]
check "(b) the edge is still running" kill -0 "${EDGE_PID[main]}"

code=$(curl -sS -m 5 --cacert "$CA" -o /dev/null -w '%{http_code}' "$BASE/hello" 2>"$T/curl.err")
check "after the attacks the tunnel answers 200 (got $code)" [ "$code" = 200 ]
stop_edge main
check "edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
