#!/usr/bin/env bash
# Real peers through the HTTP tunnel when the agent dies without a word (kill -9), as a crash or a
# power cut would: `wtmesh edge` + `wtmesh http` in front of the Node origin (tests/peers/origin.mjs),
# curl as the public client. The edge notices a silent peer once data it sent waits for an answer
# (quic::TransportLimits::unresponsive_floor: 2 s on the edge, longer than the agents' 1 s keep-alive
# so that a NAT rebinding is survived; docs/protocol.md §2), so:
#   A. kill -9, then a request: 502 within 3.5 s; an agent restarted then serves the same name at once.
#   B. kill -9 and an immediate restart with no request in between (the old session still looks
#      alive): the new agent is refused "taken", the edge probes the holder, drops it, and the
#      restarted agent's early retry gets the same hostname back within 5 s.
#   D. kill -9 while a response streams (SSE, the edge only receives): the session's quiet-stream probe
#      (AgentSession::kQuietProbeAfter, 1 s) plus the unresponsive rule cut the client's response
#      within ~3 s, not at the next heartbeat.
#   C. kill -9 with no traffic at all: the edge's own heartbeat PING finds the agent gone and the
#      name answers 502, not a hang. The edge PINGs an agent only once it has not heard from it for
#      1.5 intervals (a live agent PINGs every 10 s itself: docs/protocol.md §3), so that PING goes
#      out 15-25 s after the agent's last one, and the unresponsive floor adds 2 s; the heartbeat
#      timeout (30 s of silence) is the backstop.
# The real times are printed.
# Usage: http_tunnel_kill.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"

start_app_tunnel

# wait_for_200 SECONDS: polls the public URL until 200; prints the elapsed ms, or nothing.
wait_for_200() {
  local limit_ms=$(($1 * 1000)) t=$(now_ms) code
  while [ $(($(now_ms) - t)) -lt "$limit_ms" ]; do
    code=$(curl -sS -m 2 --cacert "$CA" -o "$T/body" -w '%{http_code}' "$BASE/hello" 2>"$T/curl.err")
    if [ "$code" = 200 ]; then
      echo $(($(now_ms) - t))
      return 0
    fi
    sleep 0.05
  done
}

# --- A. kill -9, then a request.
kill -KILL "${AGENT_PID[app]}"
wait "${AGENT_PID[app]}" 2>/dev/null
t0=$(now_ms)
code=$(curl -sS -m 5 --cacert "$CA" -o "$T/body" -w '%{http_code}' "$BASE/hello" 2>"$T/curl.err")
first_ms=$(($(now_ms) - t0))
log "A: 502 after kill -9: $(grep -oE '<p>[^<]*' "$T/body" | head -1)"
check "A: after kill -9 of the agent the next request gets 502 within 3.5 s (got '$code' after $first_ms ms)" \
  bash -c '[ "$1" = 502 ] && [ "$2" -le 3500 ]' _ "$code" "$first_ms"
launch_http app main app "$OP" "$(make_token main app)"
back=$(wait_for_200 10)
log "A: restarted agent serves the name after ${back:-never} ms"
check "A: a restarted agent serves $BASE/ again within 2 s (after ${back:-more than 10000} ms)" \
  bash -c '[ -n "$1" ] && [ "$1" -le 2000 ]' _ "$back"
check "A: the restarted agent prints the same URL $BASE/" grep -qxF "$BASE/  ->  http://127.0.0.1:$OP/" "${AGENT_OUT[app]}"

# --- B. kill -9 and restart at once: the name is still held by the dead session.
kill -KILL "${AGENT_PID[app]}"
wait "${AGENT_PID[app]}" 2>/dev/null
launch_http app main app "$OP" "$(make_token main app)"
back=$(wait_for_200 10)
log "B: restarted agent serves the name after ${back:-never} ms"
check "B: restarted at once, the agent gets the same hostname back within 5 s (after ${back:-more than 10000} ms)" \
  bash -c '[ -n "$1" ] && [ "$1" -le 5000 ]' _ "$back"
check "B: it was refused as taken first, then served (the edge probed the dead holder)" \
  grep -q "served by another agent" "${AGENT_ERR[app]}"

# --- D. kill -9 while a response streams to the client.
curl -sS -N -m 60 --cacert "$CA" -o "$T/sse" "$BASE/sse?n=100&ms=400" 2>"$T/sse.err" &
sse_pid=$!
track "$sse_pid"
for ((i = 0; i < 100; i++)); do
  grep -q 'event 1 ' "$T/sse" 2>/dev/null && break
  sleep 0.05
done
check "D: the event stream flows before the kill" grep -q 'event 1 ' "$T/sse"
kill -KILL "${AGENT_PID[app]}"
wait "${AGENT_PID[app]}" 2>/dev/null
t0=$(now_ms)
for ((i = 0; i < 200; i++)); do
  kill -0 "$sse_pid" 2>/dev/null || break
  sleep 0.05
done
cut_ms=$(($(now_ms) - t0))
wait "$sse_pid" 2>/dev/null
sse_rc=$?
log "D: the streaming response was cut ${cut_ms} ms after kill -9 (curl exit $sse_rc: $(head -c 200 "$T/sse.err"))"
check "D: the client's streaming response ends within 5 s of the kill, not at the heartbeat (after $cut_ms ms)" \
  [ "$cut_ms" -le 5000 ]
check "D: curl sees a cut response, not a complete one (exit $sse_rc)" [ "$sse_rc" != 0 ]
launch_http app main app "$OP" "$(make_token main app)"
back=$(wait_for_200 10)
check "D: the restarted agent serves the name again (after ${back:-more than 10000} ms)" [ -n "$back" ]

# --- C. kill -9 and silence: the heartbeat finds it.
edge_log=${EDGE_DIR[main]}/stderr
seen=$(grep -cE "peer unresponsive|no heartbeat from the agent" "$edge_log")
kill -KILL "${AGENT_PID[app]}"
wait "${AGENT_PID[app]}" 2>/dev/null
t0=$(now_ms)
gone=""
for ((i = 0; i < 700; i++)); do
  # Look without sending anything to the agent: the edge log says when the session ended.
  if [ "$(grep -cE "peer unresponsive|no heartbeat from the agent" "$edge_log")" -gt "$seen" ]; then
    gone=$(($(now_ms) - t0))
    break
  fi
  sleep 0.05
done
log "C: the edge dropped the silent session after ${gone:-never} ms"
check "C: with no traffic, the edge drops the killed agent's session within 31 s (after ${gone:-more than 35000} ms)" \
  bash -c '[ -n "$1" ] && [ "$1" -le 31000 ]' _ "$gone"
code=$(curl -sS -m 3 --cacert "$CA" -o "$T/body" -w '%{http_code}' "$BASE/hello" 2>"$T/curl.err")
check "C: then the name answers 502 at once (got '$code')" [ "$code" = 502 ]

stop_edge main
check "edge stops cleanly on SIGTERM (exit status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
peer_finish
