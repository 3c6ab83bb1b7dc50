# Helpers for the TCP tunnel tests (tests/peers/tcp_*.sh), sourced after lib.bash.
# shellcheck disable=SC2034

declare -gA SRV_PORT=() TCP_PORT=()

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

# launch_tcp AGENT EDGE NAME LOCALPORT TOKEN [ARGS...]: `wtmesh tcp` without waiting; output in
# AGENT_OUT/AGENT_ERR[AGENT], pid AGENT_PID[AGENT].
launch_tcp() {
  local agent=$1 edge=$2 tname=$3 lport=$4 token=$5
  shift 5
  AGENT_OUT[$agent]=$PEER_TMP/agent-$agent.out.log
  AGENT_ERR[$agent]=$PEER_TMP/agent-$agent.err.log
  "$WTMESH" tcp "$lport" --edge "https://127.0.0.1:${EDGE_PORT[$edge]}" --token "$token" --name "$tname" \
    --ca "${EDGE_STATE[$edge]}/ca.pem" "$@" >"${AGENT_OUT[$agent]}" 2>"${AGENT_ERR[$agent]}" </dev/null &
  AGENT_PID[$agent]=$!
  track "${AGENT_PID[$agent]}"
}

# start_tcp AGENT EDGE NAME LOCALPORT [ARGS...]: launch_tcp with a token for NAME, then waits for the
# `tcp://HOST:PORT  ->  127.0.0.1:LOCALPORT` line; sets TCP_PORT[AGENT] and AGENT_URL[AGENT].
start_tcp() {
  local agent=$1 edge=$2 tname=$3 lport=$4 token line
  shift 4
  token=$(make_token "$edge" "$tname") || die "wtmesh token failed"
  launch_tcp "$agent" "$edge" "$tname" "$lport" "$token" "$@"
  wait_for "${WTMESH_PEER_WAIT:-20}" grep -qE '^tcp://' "${AGENT_OUT[$agent]}" ||
    die "wtmesh tcp '$agent' printed no tcp:// line: $(cat "${AGENT_ERR[$agent]}")"
  line=$(grep -m1 -E '^tcp://' "${AGENT_OUT[$agent]}")
  AGENT_URL[$agent]=${line%%  ->  *}
  TCP_PORT[$agent]=$(sed -nE 's|^tcp://[^ ]+:([0-9]+)  ->  .*|\1|p' <<<"$line")
  log "tcp agent '$agent' is up: $line"
}

# refused_tcp LABEL EDGE NAME TOKEN WANT_REGEX [ARGS...]: `wtmesh tcp` must exit non-zero within 15 s
# with WANT_REGEX on stderr and print no tcp:// line.
refused_tcp() {
  local label=$1 edge=$2 tname=$3 token=$4 want=$5 rc err
  shift 5
  err=$PEER_TMP/refused-$label.err.log
  timeout -k 2 15 "$WTMESH" tcp 9 --edge "https://127.0.0.1:${EDGE_PORT[$edge]}" --token "$token" \
    --name "$tname" --ca "${EDGE_STATE[$edge]}/ca.pem" "$@" >"$PEER_TMP/refused-$label.out.log" 2>"$err" </dev/null
  rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -qE -- "$want" "$err" &&
    ! grep -q '^tcp://' "$PEER_TMP/refused-$label.out.log"; then
    pass "$label: refused (exit $rc): $(grep -E "$want" "$err" | tail -1)"
  else
    fail "$label: want a non-zero exit and /$want/; got exit $rc: $(tail -2 "$err")"
  fi
}

declare -gA CONNECT_PORT=()

# free_tcp_port: a loopback port nobody listens on right now.
free_tcp_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_connect AGENT EDGE NAME TOKEN [ARGS...]: `wtmesh connect NAME --listen 127.0.0.1:PORT` on a free
# port, then waits for its `connect NAME  ->  127.0.0.1:PORT` line; sets CONNECT_PORT[AGENT].
start_connect() {
  local agent=$1 edge=$2 cname=$3 token=$4 port
  shift 4
  port=$(free_tcp_port)
  AGENT_OUT[$agent]=$PEER_TMP/agent-$agent.out.log
  AGENT_ERR[$agent]=$PEER_TMP/agent-$agent.err.log
  "$WTMESH" connect "$cname" --listen "127.0.0.1:$port" --edge "https://127.0.0.1:${EDGE_PORT[$edge]}" \
    --token "$token" --ca "${EDGE_STATE[$edge]}/ca.pem" "$@" >"${AGENT_OUT[$agent]}" 2>"${AGENT_ERR[$agent]}" </dev/null &
  AGENT_PID[$agent]=$!
  track "${AGENT_PID[$agent]}"
  wait_for "${WTMESH_PEER_WAIT:-20}" grep -qE '^connect ' "${AGENT_OUT[$agent]}" ||
    die "wtmesh connect '$agent' printed no connect line: $(cat "${AGENT_ERR[$agent]}")"
  CONNECT_PORT[$agent]=$port
  log "connect agent '$agent' is up: $(head -1 "${AGENT_OUT[$agent]}")"
}
