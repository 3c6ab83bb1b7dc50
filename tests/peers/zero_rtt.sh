#!/usr/bin/env bash
# Session tickets and 0-RTT on the edge's QUIC port (docs/protocol.md §2.3), with real peers:
#   1. an agent (`wtmesh http`) whose connection to the edge died (the agent stopped with SIGSTOP
#      while a request waited for it: the edge gives up on it after its 2 s unresponsive floor)
#      reconnects to the same edge with its ticket and sends the session request in 0-RTT ("over
#      QUIC (resumed, 0-RTT)"), and the tunnel serves again;
#   2. gtlsclient (ngtcp2's HTTP/3 client, --session-file/--tp-file) resumes and sends a GET in
#      0-RTT: the edge takes it, and the service sees it marked `early-data: 1` (RFC 8470 §5.1); a
#      POST with a body in 0-RTT gets 425 Too Early (RFC 8470 §5.2) and the service never sees it;
#   3. a restarted edge (same state dir, so the same ticket key) resumes the agent's ticket but
#      refuses its early data (GnuTLS' replay window starts with the process: it cannot know which
#      ClientHellos it saw before): the agent says so and dials again at once, without the ticket;
#      an edge with other limits (--max-streams) cannot open the ticket at all: the same;
#   4. WTMESH_0RTT=0: the agent never sends 0-RTT.
# Usage: zero_rtt.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"
command -v gtlsclient >/dev/null || die "gtlsclient not found (Debian package ngtcp2-client; run scripts/setup.sh)"

T=$PEER_TMP
S=$T/state
mkdir -p "$S"
PORT=$(free_port)
EDGE_ARGS=(--drain-grace 2s --drain-handoff 1s --tcp-ports none --udp-ports none)

# edge_up [ARGS...]: the edge on 127.0.0.1:PORT with state dir S; waits for its line.
edge_up() {
  local dir=$T/edge i
  mkdir -p "$dir"
  "$WTMESH" edge --listen "127.0.0.1:$PORT" --domain localhost --state-dir "$S" "${EDGE_ARGS[@]}" "$@" \
    >"$dir/stdout" 2>>"$dir/stderr" </dev/null &
  EDGE_PID[z]=$!
  EDGE_DIR[z]=$dir
  EDGE_STATE[z]=$S
  EDGE_PORT[z]=$PORT
  track "${EDGE_PID[z]}"
  for ((i = 0; i < 100; i++)); do
    grep -q 'wtmesh edge listening on udp://' "$dir/stdout" 2>/dev/null && return 0
    kill -0 "${EDGE_PID[z]}" 2>/dev/null || die "edge exited: $(tail -3 "$dir/stderr")"
    sleep 0.1
  done
  die "the edge did not start"
}

# serves: the tunnel answers /hello through the edge.
serves() {
  curl -sf --max-time 5 --cacert "$S/ca.pem" --resolve "app.localhost:$PORT:127.0.0.1" \
    "https://app.localhost:$PORT/hello" >/dev/null
}
# agent_says N TEXT: the agent's stderr has TEXT at least N times.
agent_says() { [ "$(grep -cF -- "$2" "${AGENT_ERR[a]}")" -ge "$1" ]; }

edge_up
start_origin o
start_http a z app "${ORIGIN_PORT[o]}"
check "the tunnel serves" wait_for 10 serves
check "the first session is a full handshake" agent_says 1 "connected to the edge 127.0.0.1:$PORT over QUIC"
check "... not 0-RTT" bash -c "! grep -qF '(resumed, 0-RTT)' '${AGENT_ERR[a]}'"

# --- 1. the connection dies, the edge lives: the agent comes back in 0-RTT ---------------------------
kill -STOP "${AGENT_PID[a]}"
curl -s -o /dev/null --max-time 6 --cacert "$S/ca.pem" --resolve "app.localhost:$PORT:127.0.0.1" \
  "https://app.localhost:$PORT/hello" &
track $!
check "the edge gives up on the stopped agent" \
  wait_for 10 grep -qE "session ended|connection (closed|lost)" "$T/edge/stderr"
kill -CONT "${AGENT_PID[a]}"
check "the agent reconnects to the same edge with 0-RTT" wait_for 15 agent_says 1 "over QUIC (resumed, 0-RTT)"
check "the tunnel serves again" wait_for 10 serves

# --- 2. gtlsclient resumes; a GET in 0-RTT is served, marked; a POST gets 425 --------------------------
G=(gtlsclient --exit-on-all-streams-close --session-file "$T/g.session" --tp-file "$T/g.tp"
  127.0.0.1 "$PORT")
timeout 10 "${G[@]}" "https://app.localhost:$PORT/hello" >"$T/g1.out" 2>&1
check "gtlsclient got a ticket and transport parameters" test -s "$T/g.session" -a -s "$T/g.tp"
timeout 10 "${G[@]}" "https://app.localhost:$PORT/headers" >"$T/g2.out" 2>&1
check "gtlsclient's resumed GET was taken in 0-RTT" bash -c "! grep -q 'Early data was rejected' '$T/g2.out'"
# gtlsclient prints the body as a hex dump: its text column, joined.
check "... and reached the service marked early-data: 1" \
  bash -c "sed -n 's/^[0-9a-f]\{8\}  .*|\(.*\)|\$/\1/p' '$T/g2.out' | tr -d '\n' | grep -qF '\"early-data\",\"1\"'"
head -c 3000 /dev/urandom >"$T/body"
timeout 10 "${G[@]}" -d "$T/body" "https://app.localhost:$PORT/echo" >"$T/g3.out" 2>&1
check "a POST with a body in 0-RTT gets 425 Too Early" grep -q ':status: 425' "$T/g3.out"
check "... and never reaches the service" bash -c "! grep -q '^POST /echo' '$T/origin-o.requests'"

# --- 3. a restarted edge refuses the old ticket's early data; the agent dials again at once -----------
rejected_before=$(grep -cF "0-RTT rejected by the server" "${AGENT_ERR[a]}")
full_before=$(grep -cE "connected to the edge 127.0.0.1:$PORT over QUIC$" "${AGENT_ERR[a]}")
stop_edge z
edge_up
check "a restarted edge refuses the ticket's 0-RTT, and the agent says so" \
  wait_for 15 agent_says $((rejected_before + 1)) "0-RTT rejected by the server"
check "... and dials again at once with a full handshake, no backoff" \
  grep -qF "refused our 0-RTT (0-RTT rejected by the server" "${AGENT_ERR[a]}"
check "the agent connects again with a full handshake" \
  wait_for 10 bash -c "[ \$(grep -cE 'connected to the edge 127.0.0.1:$PORT over QUIC\$' '${AGENT_ERR[a]}') -gt $full_before ]"
check "the tunnel serves again" wait_for 10 serves
rejected_before=$(grep -cF "0-RTT rejected by the server" "${AGENT_ERR[a]}")
stop_edge z
edge_up --max-streams 64
check "an edge with other limits cannot open the ticket: 0-RTT refused again" \
  wait_for 15 agent_says $((rejected_before + 1)) "0-RTT rejected by the server"
check "the tunnel serves again" wait_for 10 serves

# --- 4. WTMESH_0RTT=0 ----------------------------------------------------------------------------------
stop_pid "${AGENT_PID[a]}" 5
show_log "agent a" "${AGENT_ERR[a]}" 30
WTMESH_0RTT=0 start_http b z app "${ORIGIN_PORT[o]}"
check "with WTMESH_0RTT=0 the tunnel serves" wait_for 10 serves
stop_edge z
edge_up --max-streams 64
check "WTMESH_0RTT=0: the agent reconnects" \
  wait_for 15 bash -c "[ \$(grep -c 'connected to the edge' '${AGENT_ERR[b]}') -ge 2 ]"
check "... with a full handshake" bash -c "! grep -qF '(resumed, 0-RTT)' '${AGENT_ERR[b]}'"

show_log "gtlsclient GET /headers in 0-RTT" "$T/g2.out" 20
show_log "edge" "$T/edge/stderr" 30
show_log "agent b" "${AGENT_ERR[b]}" 30
peer_finish
