#!/usr/bin/env bash
# Real peers through the HTTP tunnel when the agent dies without a word (kill -9), as a crash or a
# power cut would: `wtmesh edge` + `wtmesh http` in front of the Node origin (tests/peers/origin.mjs),
# curl as the public client. Checks:
#   - the next request after the kill gets 502 within 1 s
#   - an agent restarted at once, as a user would, gets the same hostname back within 10 s
#   - at the latest within 45 s (3 missed 10 s heartbeats + the 5 s retry of a taken name), and it
#     prints the same public URL; requests sent to the dead agent meanwhile end with 502 (not a hang)
# The real times (first 502, name back) are printed.
# KNOWN FAILING (2026-11-23), the first two checks: the edge notices a silent agent only after 3
# missed 10 s heartbeats (~30 s); until then requests are sent into the dead QUIC connection and
# hang (then get 502 "no heartbeat from the agent"), and the restarted agent is refused as "taken"
# until the old session is dropped. Kept apart from http_tunnel.sh so that one stays meaningful.
# Usage: http_tunnel_kill.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

start_edge main
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
start_origin main
OP=${ORIGIN_PORT[main]}
start_http app main app "$OP"
BASE=https://app.localhost:$EP
T=$PEER_TMP
code=$(curl -sS -m 10 --cacert "$CA" -o "$T/body" -w '%{http_code}' "$BASE/hello" 2>"$T/curl.err")
check "the tunnel answers before the kill: 200 (got $code)" [ "$code" = 200 ]

# --- Agent killed (-9), restarted at once, as a user would: measure when the edge answers 502 and
# when the restarted agent gets the name back.
kill -KILL "${AGENT_PID[app]}"
wait "${AGENT_PID[app]}" 2>/dev/null
t0=$(now_ms)
code=$(curl -sS -m 1 --cacert "$CA" -o "$T/body" -w '%{http_code}' "$BASE/hello" 2>"$T/curl.err")
first_ms=$(($(now_ms) - t0))
check "after kill -9 of the agent: the next request gets 502 within 1 s (got '$code' after $first_ms ms)" [ "$code" = 502 ]
t1=$(now_ms)
launch_http app main app "$OP" "$(make_token main app)"
first_502="" back=""
for ((i = 0; i < 200; i++)); do
  code=$(curl -sS -m 2 --cacert "$CA" -o "$T/body" -w '%{http_code}' "$BASE/hello" 2>"$T/curl.err")
  [ "$code" = 502 ] && [ -z "$first_502" ] && first_502=$(($(now_ms) - t0)) &&
    log "502 after kill -9: $(grep -oE '<p>[^<]*' "$T/body" | head -1)"
  if [ "$code" = 200 ]; then
    back=$(($(now_ms) - t1))
    break
  fi
  [ $(($(now_ms) - t1)) -gt 45000 ] && break
  sleep 0.1
done
log "after kill -9: first 502 after ${first_502:-never} ms; restarted agent serves the name after ${back:-never} ms"
check "agent restarted right after kill -9: $BASE/ answers 200 within 10 s (after ${back:-more than 45000} ms)" \
  [ "${back:-99999}" -le 10000 ]
check "and within 45 s at the latest (3 missed heartbeats + the 5 s retry of a taken name)" [ -n "$back" ]
check "restarted agent prints the same URL $BASE/" grep -qxF "$BASE/  ->  http://127.0.0.1:$OP/" "${AGENT_OUT[app]}"
check "requests sent to the dead agent end with 502 at the latest after 45 s (first after ${first_502:-never} ms)" \
  [ -n "$first_502" ]

stop_edge main
check "edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
