#!/usr/bin/env bash
# The mesh's `wtmesh connect` (docs/protocol.md §4.3) between two agents through one edge, with small
# Python peers we did not build into wtmesh (tests/peers/tcp_peer.py) and OpenBSD nc:
#   - agent A publishes a private tcp tunnel (`wtmesh tcp --private`); agent B runs
#     `wtmesh connect NAME --listen 127.0.0.1:PORT` and prints `connect NAME  ->  127.0.0.1:PORT`;
#   - bytes exact both ways with half-close (1 MiB then SHUT_WR, the answer after the FIN; an empty
#     request; nc -N), four at once; resets both ways (client RST → service reset, service RST →
#     client reset);
#   - an edge route (`wtmesh edge --route NAME=HOST:PORT`) reached the same way, and one whose
#     address refuses (refused `unreachable`);
#   - refusals the connecting agent logs, the client reaching nothing: a name outside the token's
#     `connect` claim ("not in token scope"), a token without the claim, an unknown name, a name whose
#     agent is gone (offline);
#   - the per-session cap (--max-connects-per-session 4): 4 held, the 5th refused (`limit`), room
#     again once one closed;
#   - a `type: connect` entry in `wtmesh agent --config`.
# Usage: connect.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
# shellcheck source=tests/peers/tcp_lib.bash
source "$(dirname "$0")/tcp_lib.bash"
peer_init "$@"
T=$PEER_TMP
PY=(python3 -u "$PEER_DIR/tcp_peer.py")

start_tcp_server routed serve-count
CLOSED_PORT=$(free_tcp_port)
pick_tcp_range
# The routes and the cap come from an edge config file (`wtmesh edge --config`, YAML keyed by option
# names); --tcp-ports from the command line.
cat >"$T/edge.yaml" <<YAML
max-connects-per-session: 4
route:
  - routed=127.0.0.1:${SRV_PORT[routed]}
  - closed=127.0.0.1:$CLOSED_PORT
YAML
start_edge main --tcp-ports "$TCP_RANGE" --config "$T/edge.yaml"
check "the edge announces its route" grep -qF "route: routed.localhost  ->  127.0.0.1:${SRV_PORT[routed]}" \
  "${EDGE_DIR[main]}/stdout"

# --- two agents: A publishes privately, B connects -------------------------------------------------
start_tcp_server count serve-count
start_tcp svc main svc "${SRV_PORT[count]}" --private
check "agent A's private tunnel has no port" grep -qx "tcp://svc.localhost  ->  127.0.0.1:${SRV_PORT[count]}" \
  "${AGENT_OUT[svc]}"
TOKEN_B=$("$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name client --connect svc --connect hold \
  --connect rst --connect routed --connect closed --connect nosuch --connect gone) || die "wtmesh token failed"
start_connect b main svc "$TOKEN_B"
P=${CONNECT_PORT[b]}
check "the line is connect svc  ->  127.0.0.1:$P" grep -qxF "connect svc  ->  127.0.0.1:$P" "${AGENT_OUT[b]}"
byte_checks "$P" "through connect"

# --- resets both ways ----------------------------------------------------------------------------
start_tcp_server hold serve-hold
start_tcp hold main hold "${SRV_PORT[hold]}" --private
start_connect bhold main hold "$TOKEN_B"
check "a client RST through connect runs" timeout 10 "${PY[@]}" rst "${CONNECT_PORT[bhold]}"
check "a client RST reaches the service as a reset" wait_for 10 grep -q '^reset' "$T/srv-hold.log"
start_tcp_server rst serve-rst
start_tcp rst main rst "${SRV_PORT[rst]}" --private
start_connect brst main rst "$TOKEN_B"
check "a service RST reaches the connecting client as a reset" timeout 15 "${PY[@]}" expect-rst "${CONNECT_PORT[brst]}"

# --- the per-session cap ---------------------------------------------------------------------------
coproc HOLD { timeout 60 "${PY[@]}" hold "${CONNECT_PORT[bhold]}" 4 1.5; }
hold_out=""
read -r -t 30 hold_out <&"${HOLD[0]}"
check "four connect streams (the cap) are held open: '$hold_out'" [ "$hold_out" = "held 4" ]
check "the fifth is reset at once" timeout 10 "${PY[@]}" refused "${CONNECT_PORT[bhold]}"
check "the agent says why: limit" wait_for 5 grep -q 'connect hold refused: .*limit' "${AGENT_ERR[bhold]}"
exec {HOLD[1]}>&-
wait "$HOLD_PID" 2>/dev/null
check "room again once they closed: one more is held" \
  wait_for 10 bash -c "timeout 20 ${PY[*]} hold ${CONNECT_PORT[bhold]} 1 0.5 </dev/null | grep -qx 'held 1'"

# --- an edge route -------------------------------------------------------------------------------
start_connect broute main routed "$TOKEN_B"
check "connect to an edge --route: 1 MiB half-close exact" timeout 30 "${PY[@]}" halfclose "${CONNECT_PORT[broute]}" 1048576
start_connect bclosed main closed "$TOKEN_B"
check "an edge route whose address refuses: the client is reset" timeout 10 "${PY[@]}" refused "${CONNECT_PORT[bclosed]}"
check "the agent says why: unreachable" wait_for 5 grep -q 'connect closed refused: .*did not accept the connection.*(unreachable)' "${AGENT_ERR[bclosed]}"

# --- refusals --------------------------------------------------------------------------------------
start_connect scope main secret "$TOKEN_B"
check "out of scope: the client reaches nothing" timeout 10 "${PY[@]}" refused "${CONNECT_PORT[scope]}"
check "out of scope: the agent logs 'connect secret refused: not in token scope'" \
  wait_for 5 grep -q 'connect secret refused: not in token scope' "${AGENT_ERR[scope]}"
TOKEN_NONE=$(make_token main plain) || die "wtmesh token failed"
start_connect none main svc "$TOKEN_NONE"
check "a token without connect: the client reaches nothing" timeout 10 "${PY[@]}" refused "${CONNECT_PORT[none]}"
check "a token without connect: not in token scope" wait_for 5 grep -q 'connect svc refused: not in token scope' "${AGENT_ERR[none]}"
start_connect unknown main nosuch "$TOKEN_B"
check "unknown name: the client reaches nothing" timeout 10 "${PY[@]}" refused "${CONNECT_PORT[unknown]}"
check "unknown name: the agent logs it" wait_for 5 grep -q 'connect nosuch refused: no tunnel or route is named nosuch.localhost (unknown)' "${AGENT_ERR[unknown]}"
start_tcp_server gone serve-count
start_tcp gone main gone "${SRV_PORT[gone]}" --private
start_connect bgone main gone "$TOKEN_B"
check "before its agent goes: reached" timeout 30 "${PY[@]}" halfclose "${CONNECT_PORT[bgone]}" 10
stop_pid "${AGENT_PID[gone]}" 5 TERM
check "agent gone: the client reaches nothing" wait_for 10 timeout 10 "${PY[@]}" refused "${CONNECT_PORT[bgone]}"
check "agent gone: the agent logs offline" wait_for 5 grep -q 'connect gone refused: gone.localhost: its agent is not connected (offline)' "${AGENT_ERR[bgone]}"

# --- YAML ----------------------------------------------------------------------------------------
YPORT=$(free_tcp_port)
cat >"$T/connect.yaml" <<YAML
edge: https://127.0.0.1:${EDGE_PORT[main]}
ca: ${EDGE_STATE[main]}/ca.pem
token: $TOKEN_B
tunnels:
  - name: svc
    type: connect
    listen: 127.0.0.1:$YPORT
YAML
"$WTMESH" agent --config "$T/connect.yaml" >"$T/yaml.out" 2>"$T/yaml.err" </dev/null &
track $!
check "YAML type: connect prints its line" wait_for 20 grep -qxF "connect svc  ->  127.0.0.1:$YPORT" "$T/yaml.out"
check "YAML connect: half-close exact" timeout 30 "${PY[@]}" halfclose "$YPORT" 100000

peer_finish
