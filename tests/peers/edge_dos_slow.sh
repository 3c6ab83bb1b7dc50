#!/usr/bin/env bash
# Issue 9, attack 2: slow uploads. Each request the edge forwards holds one of the agent's request
# streams (128 per agent session) for as long as its body takes; a client that sends a body one byte
# every 5 s holds its stream for ever (each byte resets the idle timeout), so a few hundred such
# requests from one address take every stream of the tunnel and everyone else gets 502 "too many
# requests in flight". The fixed edge:
#   - lets one client address hold at most --max-streams-per-client (64) of a tunnel's streams;
#     further requests from it wait up to 1 s, then get 429;
#   - requires request bodies to progress: stalled for --body-timeout (20 s), or averaging under
#     --body-min-rate (1024 B/s) after that: 408 (when no response was sent yet) and the connection
#     closes.
# Attack (tests/peers/edge_attack.mjs slowbody, default flags): 200 TLS connections from 127.0.0.2,
# each `POST /echo` with Content-Length: 100000, then one body byte every 5 s, for 38 s.
# Checks:
#   - a legitimate client (curl from 127.0.0.1 to app.localhost/hello every ~0.25 s, -m 3) gets 200
#     in < 1 s on every probe during the attack (2 s in a sanitizer build)
#   - the edge closes >= 190 of the 200 connections within 35 s of their start (the statuses they saw
#     and when are printed)
#   - the edge's RSS grows < 64 MiB (256 MiB in a sanitizer build); the edge is alive afterwards
#   - a chunked body whose first chunk-size line carries a 70 KB chunk extension gets 400 within 3 s
#     and the connection is closed (an edge that waits for the end of that line stalls until its
#     120 s idle timeout)
# Usage: edge_dos_slow.sh PATH_OF_WTMESH
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
CONNS=200
MIN_CLOSED=190
CUT_S=35
DURATION_S=38

start_app_tunnel
for _ in 1 2 3 4 5; do curl -s -m 5 --cacert "$CA" -o /dev/null "$BASE/hello"; done
idle_kib=$(edge_rss_kib main)
log "idle: RSS $((idle_kib / 1024)) MiB"

# --- Slow uploads.
start_prober slow "$BASE/hello" "$CA"
sleep 0.5
attack_start slow slowbody --port "$EP" --local 127.0.0.2 --conns "$CONNS" --length 100000 \
  --interval-ms 5000 --duration "$DURATION_S" --cut-ms $((CUT_S * 1000)) --connect-timeout-ms 10000
start_sampler slow main "${ATTACK_PID[slow]}" $((idle_kib + 1536 * 1024))
attack_wait slow
stop_sampler slow
stop_prober slow

connected=$(attack_json slow 's.connected')
closed=$(attack_json slow 's.closedByPeer')
within=$(attack_json slow 's.closedWithinCut')
statuses=$(attack_json slow 's.statuses')
# shellcheck disable=SC2016  # a JavaScript template literal
by_status=$(attack_json slow 'Object.entries(s.byStatus).map(([k, e]) => `${k}: ${e.count} (closed by the edge ${e.closedByPeer}, answered by ${e.maxStatusAtMs} ms, closed by ${e.maxLifetimeMs} ms)`).join("; ")')
lifetimes=$(attack_json slow 's.lifetimeMs')
log "slow uploads: $connected/$CONNS connected; statuses per connection: $by_status; lifetimes (ms) $lifetimes"
max_kib=$(sampler_max_kib slow)
growth_mib=$(((max_kib - idle_kib) / 1024))

prober_check slow "$PROBE_LIMIT_S" "slow uploads"
check "slow uploads: all $CONNS attack connections were up ($connected)" [ "$connected" = "$CONNS" ]
check "slow uploads: the edge closed $within of $CONNS within ${CUT_S} s of their start (want >= $MIN_CLOSED; closed in all: $closed; statuses $statuses; lifetimes $lifetimes ms)" \
  [ "$within" -ge "$MIN_CLOSED" ]
check "slow uploads: edge RSS grew by $growth_mib MiB (idle $((idle_kib / 1024)) MiB, max $((max_kib / 1024)) MiB; want < $RSS_LIMIT_MIB MiB)" \
  [ "$growth_mib" -lt "$RSS_LIMIT_MIB" ]
check "slow uploads: the edge is still running" kill -0 "${EDGE_PID[main]}"

# --- A chunk extension that never ends (70 KB on the first chunk-size line).
attack_run chunkext chunkext --port "$EP" --local 127.0.0.2 --ext-bytes 70000 --timeout 8
st=$(attack_json chunkext 's.firstStatus')
ms=$(attack_json chunkext 's.firstResponseMs')
closed=$(attack_json chunkext 's.closedByPeer')
closed_ms=$(attack_json chunkext 's.closedAfterMs')
st_n=${st/null/0} ms_n=${ms/null/999999}
check "70 KB chunk extension: 400 within 3 s (got ${st} after ${ms} ms)" [ $((st_n == 400 && ms_n <= 3000)) = 1 ]
check "70 KB chunk extension: the edge closed the connection (closed: $closed, after $closed_ms ms)" [ "$closed" = true ]

code=$(curl -sS -m 5 --cacert "$CA" -o /dev/null -w '%{http_code}' "$BASE/hello" 2>"$T/curl.err")
check "after the attacks the tunnel answers 200 (got $code)" [ "$code" = 200 ]
stop_edge main
check "edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
