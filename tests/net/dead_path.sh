#!/usr/bin/env bash
# Issue 13 items 2 and 5 (liveness): the path between agent and edge goes dead — the router drops
# everything, no RST, no ICMP, as a pulled cable or a NAT that lost its state does — and comes back.
# Agent and edge in their own network namespaces (tests/net/netlab.bash), 40 ms RTT, QUIC.
#   (a) the agent notices the dead path within 15 s while idle (its heartbeat PING every 10 s is data
#       in flight; unanswered for max(600 ms, 8 PTO) the connection is given up), and says so;
#   (b) while the path stays dead it retries with exponential backoff and jitter: the delays it
#       announces grow, and none is longer than the 30 s cap (each attempt is a QUIC handshake given
#       up after 10 s; the backoff's arithmetic and jitter are unit-tested: Backoff.* in tests/unit/agent);
#   (c) once the path is back, the public URL answers 200 within the announced delay + 3 s;
#   (d) the edge holds one session for the agent afterwards (the new one replaced the half-dead
#       old one: wtmesh_agent_sessions 1 within 15 s), and the agent registered the name once;
#   (e) a dead path during a request: a 502/timeout for that request is acceptable, but the agent
#       detects it within 5 s (data in flight) and serves again after the path returns.
# Usage: dead_path.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/../peers/lib.bash"
# shellcheck source=tests/net/netlab.bash
source "$(dirname "$0")/netlab.bash"
peer_init "$@"
netlab_require

netlab_up 20
admin=$(free_port)
nl_start_main --admin-listen "127.0.0.1:$admin"
nl_start_http app main app "$OP" --transport quic
URL=https://app.localhost:$EP/hello
public_code() { nl_curl -s -o /dev/null -m "${1:-3}" --cacert "$CA" -w '%{http_code}' "$URL"; }
metric() { nl "$NL_E" curl -sS -m 3 "http://127.0.0.1:$admin/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
agent_lines() { cat "${AGENT_ERR[app]}"; }
check "the tunnel serves before the path dies" [ "$(public_code)" = 200 ]

# --- (a) idle, then dead --------------------------------------------------------------------------
ended_before=$(agent_lines | grep -c "the session to the edge ended")
t0=$(ms_now)
netlab_dead on
detect_ms=""
while [ $(($(ms_now) - t0)) -lt 20000 ]; do
  if [ "$(agent_lines | grep -c "the session to the edge ended")" -gt "$ended_before" ]; then
    detect_ms=$(($(ms_now) - t0))
    break
  fi
  sleep 0.1
done
log "idle dead path: the agent noticed after ${detect_ms:-never} ms: $(agent_lines | grep "the session to the edge ended" | tail -1)"
check "(a) the agent notices an idle dead path within 15 s (took ${detect_ms:-never} ms)" \
  eval '[[ -n "$detect_ms" && "${detect_ms:-99999}" -le 15000 ]]'

# --- (b) backoff while dead -----------------------------------------------------------------------
# Each attempt is a QUIC handshake that gets no answer (Initials resent at PTO, given up after the
# 10 s handshake timeout), then the next delay: wait for two delays after the one announced above.
delays_now() { agent_lines | grep -oE 'reconnecting in [0-9.]+ s' | awk '{print $3}'; }
three_delays() { [ "$(delays_now | wc -l)" -ge 3 ]; }
wait_for 25 three_delays
mapfile -t delays < <(delays_now)
log "reconnect delays announced so far: ${delays[*]} s"
grows=$(printf '%s\n' "${delays[@]:1}" | awk 'NR > 1 && $1 + 0 > prev {g++} {prev = $1 + 0} END {print g + 0}')
capped=$(printf '%s\n' "${delays[@]}" | awk '$1 + 0 > 30 {c++} END {print c + 0}')
check "(b) while dead the agent keeps retrying with a growing delay (${delays[*]} s: the attempts after the first drop)" \
  eval '[[ "${#delays[@]}" -ge 3 && "$grows" -ge 1 ]]'
check "(b) no delay above the 30 s cap" [ "$capped" = 0 ]

# --- (c) the path returns -------------------------------------------------------------------------
last_delay=${delays[-1]:-30}
t1=$(ms_now)
netlab_dead off
back_ms=""
while [ $(($(ms_now) - t1)) -lt 40000 ]; do
  if [ "$(public_code 2)" = 200 ]; then
    back_ms=$(($(ms_now) - t1))
    break
  fi
  sleep 0.1
done
limit_ms=$(awk -v d="$last_delay" 'BEGIN {printf "%d", d * 1000 + 3000}')
log "path back: the public URL answered 200 after ${back_ms:-never} ms (last announced delay ${last_delay} s)"
check "(c) the tunnel serves again within the announced ${last_delay} s + 3 s of the path's return (took ${back_ms:-never} ms)" \
  eval '[[ -n "$back_ms" && "${back_ms:-999999}" -le "$limit_ms" ]]'

# --- (d) one session, no duplicate ----------------------------------------------------------------
one_session() { [ "$(metric wtmesh_agent_sessions)" = 1 ]; }
check "(d) the edge holds exactly one session for the agent (wtmesh_agent_sessions 1)" wait_for 15 one_session
regs=$(agent_lines | grep -c "registered again")
check "(d) the agent registered its name once on the new session ($regs 'registered again')" [ "$regs" = 1 ]

# --- (e) dead during a request --------------------------------------------------------------------
nl_curl -s -o /dev/null -m 30 --cacert "$CA" "https://app.localhost:$EP/sse?n=40&ms=250" &
sse=$!
track "$sse"
sleep 1
ended_before=$(agent_lines | grep -c "the session to the edge ended")
t2=$(ms_now)
netlab_dead on
detect2=""
while [ $(($(ms_now) - t2)) -lt 10000 ]; do
  if [ "$(agent_lines | grep -c "the session to the edge ended")" -gt "$ended_before" ]; then
    detect2=$(($(ms_now) - t2))
    break
  fi
  sleep 0.1
done
check "(e) with a response streaming, the agent notices the dead path within 5 s (took ${detect2:-never} ms)" \
  eval '[[ -n "$detect2" && "${detect2:-99999}" -le 5000 ]]'
netlab_dead off
serves() { [ "$(public_code 2)" = 200 ]; }
check "(e) and serves again after the path returns" wait_for 20 serves
stop_pid "$sse" 2
[ "$PEER_FAILED" = 0 ] || netlab_counters
peer_finish
