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

declare -gA CONNECT_PORT=()

# free_tcp_port: a loopback port nobody listens on right now.
free_tcp_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_connect AGENT EDGE NAME TOKEN [ARGS...]: `wtmesh connect NAME --listen 127.0.0.1:PORT` on a free
# port, then waits for its `connect NAME  ->  ...PORT` line; sets CONNECT_PORT[AGENT]. With --udp among
# ARGS the port is free for UDP and the line says udp://.
start_connect() {
  local agent=$1 edge=$2 cname=$3 token=$4 port scheme=""
  shift 4
  if [[ " $* " == *" --udp "* ]]; then
    port=$(free_port)
    scheme=udp://
  else
    port=$(free_tcp_port)
  fi
  AGENT_OUT[$agent]=$PEER_TMP/agent-$agent.out.log
  AGENT_ERR[$agent]=$PEER_TMP/agent-$agent.err.log
  "$WTMESH" connect "$cname" --listen "127.0.0.1:$port" --edge "https://127.0.0.1:${EDGE_PORT[$edge]}" \
    --token "$token" --ca "${EDGE_STATE[$edge]}/ca.pem" "$@" >"${AGENT_OUT[$agent]}" 2>"${AGENT_ERR[$agent]}" </dev/null &
  AGENT_PID[$agent]=$!
  track "${AGENT_PID[$agent]}"
  wait_for "${WTMESH_PEER_WAIT:-20}" grep -qE "^connect .*  ->  ${scheme}127\.0\.0\.1:$port\$" "${AGENT_OUT[$agent]}" ||
    die "wtmesh connect '$agent' printed no connect line: $(cat "${AGENT_ERR[$agent]}")"
  CONNECT_PORT[$agent]=$port
  log "connect agent '$agent' is up: $(head -1 "${AGENT_OUT[$agent]}")"
}
start_connect_udp() { start_connect "$@" --udp; }

# start_udp_echo NAME: tests/peers/udp_peer.py serve-echo on a free loopback port; sets SRV_PORT[NAME].
start_udp_echo() {
  local name=$1 log=$PEER_TMP/srv-$1.log
  python3 -u "$PEER_DIR/udp_peer.py" serve-echo >"$log" 2>&1 </dev/null &
  track $!
  wait_for 10 grep -q '^listening ' "$log" || die "udp_peer.py serve-echo did not start: $(cat "$log")"
  SRV_PORT[$name]=$(grep -m1 '^listening ' "$log" | cut -d' ' -f2)
}

# byte_checks PORT WHAT: the byte checks of a port that reaches a serve-count service (a tcp tunnel's
# edge port, a connect's local port): 1 MiB then SHUT_WR and the answer after the FIN, an empty
# request, `nc -N`, four connections at once each answered with its own count.
byte_checks() {
  local port=$1 what=$2 got pids=() ok=1 i pid
  local py=(python3 -u "$PEER_DIR/tcp_peer.py")
  check "half-close $what: 1 MiB, SHUT_WR, the answer still arrives" timeout 30 "${py[@]}" halfclose "$port" 1048576
  check "half-close $what: an empty request (FIN only) is answered" timeout 30 "${py[@]}" halfclose "$port" 0
  if command -v nc >/dev/null; then
    got=$(printf 'hello' | timeout 20 nc -N 127.0.0.1 "$port")
    check "half-close $what with nc -N: '$got'" grep -q '^got 5 bytes sha256 2cf24dba' <<<"$got"
  else
    skip "nc not installed (netcat-openbsd)"
  fi
  # Four at once: one stream per connection, none waits for another.
  for i in 1 2 3 4; do
    timeout 60 "${py[@]}" halfclose "$port" $((i * 300000)) >"$PEER_TMP/parallel-$port-$i.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || ok=0; done
  check "four connections at once $what, each answered with its own count" [ "$ok" = 1 ]
}

# start_redis: a redis-server on a free loopback port, RPORT.
start_redis() {
  command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
    die "redis-server/redis-tools missing (scripts/setup.sh)"
  RPORT=$(free_tcp_port)
  redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$PEER_TMP" \
    >"$PEER_TMP/redis.log" 2>&1 </dev/null &
  track $!
  wait_for 10 bash -c "redis-cli -p $RPORT ping 2>/dev/null | grep -q PONG" || die "redis-server did not start"
}

# redis_value_checks PORT WHAT: PING, then a 1 MB value set and read back exactly ($PEER_TMP/value.txt).
redis_value_checks() {
  local port=$1 what=$2 t=$PEER_TMP
  check "redis-cli PING $what" bash -c "timeout 10 redis-cli -p $port ping | grep -qx PONG"
  python3 -c 'import os,base64,sys; sys.stdout.write(base64.b64encode(os.urandom(750000)).decode())' >"$t/value.txt"
  timeout 20 redis-cli -p "$port" -x set big <"$t/value.txt" >"$t/set.log" 2>&1
  timeout 20 redis-cli -p "$port" --raw get big >"$t/got.txt" 2>&1
  head -c -1 "$t/got.txt" >"$t/got-value.txt"  # redis-cli --raw ends the value with a newline
  check "a 1 MB value set and read back exactly $what" cmp -s "$t/value.txt" "$t/got-value.txt"
}

# redis_bench LABEL PORT ARGS...: runs redis-benchmark -q; RESULTS is how many of SET and GET reported a
# final "requests per second" figure, OPS their sum.
redis_bench() {
  local label=$1 port=$2 figures
  shift 2
  timeout 120 redis-benchmark -h 127.0.0.1 -p "$port" -q "$@" >"$PEER_TMP/bench-$label.log" 2>&1
  log "$label: redis-benchmark exit $?"
  # -q rewrites a progress line with \r; the final figure of each test is "NAME: N requests per second".
  figures=$(tr '\r' '\n' <"$PEER_TMP/bench-$label.log" | grep -oE '(SET|GET): [0-9.]+ requests per second' |
    awk '{ last[$1] = $2 } END { for (k in last) print k, last[k] }')
  RESULTS=$(grep -c . <<<"$figures")
  OPS=$(awk '{ s += $2 } END { printf "%d", s }' <<<"$figures")
  log "$label: $(tr '\n' ' ' <<<"$figures")"
}
refused_tcp() { refused_port_tunnel tcp "$@"; }
refused_udp() { refused_port_tunnel udp "$@"; }
