# Helpers for the TCP and UDP tunnel tests (tests/peers/tcp_*.sh, udp_tunnel.sh), sourced after lib.bash.
# shellcheck disable=SC2034

declare -gA SRV_PORT=() TCP_PORT=() UDP_PORT=() TUNNEL_PORT=()

# pick_tcp_range: 40 ports for this test's edge (--tcp-ports "$TCP_RANGE"), below the ephemeral range
# so that parallel tests rarely meet; the edge skips ports it cannot bind anyway.
pick_tcp_range() {
  TCP_RANGE_MIN=$((21000 + (RANDOM % 275) * 40))
  TCP_RANGE_MAX=$((TCP_RANGE_MIN + 39))
  TCP_RANGE="$TCP_RANGE_MIN-$TCP_RANGE_MAX"
}

# start_tcp_server NAME MODE: tests/peers/tcp_peer.py MODE on a free loopback port, SRV_PORT[NAME];
# its event lines go to $PEER_TMP/srv-NAME.log.
start_tcp_server() {
  local name=$1 mode=$2 log=$PEER_TMP/srv-$1.log
  python3 -u "$PEER_DIR/tcp_peer.py" "$mode" >"$log" 2>&1 </dev/null &
  track $!
  wait_for 10 grep -q '^listening ' "$log" || die "tcp_peer.py $mode did not start: $(cat "$log")"
  SRV_PORT[$name]=$(grep -m1 '^listening ' "$log" | cut -d' ' -f2)
}

# launch_port_tunnel TYPE AGENT EDGE NAME LOCALPORT TOKEN [ARGS...]: `wtmesh tcp` / `wtmesh udp` without
# waiting; output in AGENT_OUT/AGENT_ERR[AGENT], pid AGENT_PID[AGENT].
launch_port_tunnel() {
  local type=$1 agent=$2 edge=$3 tname=$4 lport=$5 token=$6
  shift 6
  AGENT_OUT[$agent]=$PEER_TMP/agent-$agent.out.log
  AGENT_ERR[$agent]=$PEER_TMP/agent-$agent.err.log
  "$WTMESH" "$type" "$lport" --edge "https://127.0.0.1:${EDGE_PORT[$edge]}" --token "$token" --name "$tname" \
    --ca "${EDGE_STATE[$edge]}/ca.pem" "$@" >"${AGENT_OUT[$agent]}" 2>"${AGENT_ERR[$agent]}" </dev/null &
  AGENT_PID[$agent]=$!
  track "${AGENT_PID[$agent]}"
}
launch_tcp() { launch_port_tunnel tcp "$@"; }
launch_udp() { launch_port_tunnel udp "$@"; }

# start_port_tunnel TYPE AGENT EDGE NAME LOCALPORT [ARGS...]: launch_port_tunnel with a token for NAME, then
# waits for the `TYPE://HOST:PORT  ->  127.0.0.1:LOCALPORT` line; sets TUNNEL_PORT[AGENT] and
# AGENT_URL[AGENT].
start_port_tunnel() {
  local type=$1 agent=$2 edge=$3 tname=$4 lport=$5 token line
  shift 5
  token=$(make_token "$edge" "$tname") || die "wtmesh token failed"
  launch_port_tunnel "$type" "$agent" "$edge" "$tname" "$lport" "$token" "$@"
  wait_for "${WTMESH_PEER_WAIT:-20}" grep -qE "^$type://" "${AGENT_OUT[$agent]}" ||
    die "wtmesh $type '$agent' printed no $type:// line: $(cat "${AGENT_ERR[$agent]}")"
  line=$(grep -m1 -E "^$type://" "${AGENT_OUT[$agent]}")
  AGENT_URL[$agent]=${line%%  ->  *}
  TUNNEL_PORT[$agent]=$(sed -nE "s|^$type://[^ ]+:([0-9]+)  ->  .*|\1|p" <<<"$line")
  log "$type agent '$agent' is up: $line"
}
start_tcp() {
  start_port_tunnel tcp "$@"
  TCP_PORT[$1]=${TUNNEL_PORT[$1]}
}
start_udp() {
  start_port_tunnel udp "$@"
  UDP_PORT[$1]=${TUNNEL_PORT[$1]}
}

# refused_port_tunnel TYPE LABEL EDGE NAME TOKEN WANT_REGEX [ARGS...]: `wtmesh TYPE` must exit non-zero
# within 15 s with WANT_REGEX on stderr and print no TYPE:// line.
refused_port_tunnel() {
  local type=$1 label=$2 edge=$3 tname=$4 token=$5 want=$6 rc err
  shift 6
  err=$PEER_TMP/refused-$label.err.log
  timeout -k 2 15 "$WTMESH" "$type" 9 --edge "https://127.0.0.1:${EDGE_PORT[$edge]}" --token "$token" \
    --name "$tname" --ca "${EDGE_STATE[$edge]}/ca.pem" "$@" >"$PEER_TMP/refused-$label.out.log" 2>"$err" </dev/null
  rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -qE -- "$want" "$err" &&
    ! grep -q "^$type://" "$PEER_TMP/refused-$label.out.log"; then
    pass "$label: refused (exit $rc): $(grep -E "$want" "$err" | tail -1)"
  else
    fail "$label: want a non-zero exit and /$want/; got exit $rc: $(tail -2 "$err")"
  fi
}
refused_tcp() { refused_port_tunnel tcp "$@"; }
refused_udp() { refused_port_tunnel udp "$@"; }
