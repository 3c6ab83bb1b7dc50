# netlab: a small network made of namespaces for tests/net/*.sh and bench/net/ (issue 13 item 5).
# Sourced after tests/peers/lib.bash. Needs root (CI runs as root), iproute2, nftables, conntrack and
# the netlab_delay helper built beside the wtmesh binary (tests/net/netlab_delay.cc).
#
#   agent side            router                 edge side
#   ns $NL_A              ns $NL_M               ns $NL_E
#   a0 10.77.1.2 ---veth--- m1 10.77.1.1
#                          m2 10.77.2.1 ---veth--- e0 10.77.2.2
#
# The agent and its local service run in $NL_A, the edge and the public clients in $NL_E; $NL_M
# forwards between them and is where the path is impaired:
#   - every forwarded packet goes through netlab_delay, a user-space program: M routes what arrives on
#     m1 into TUN device ta and what arrives on m2 into tb; the program holds each packet for the
#     one-way delay (netlab_up DELAY_MS: RTT + 2x; 0 = none) and writes it out of the other TUN device,
#     from where the kernel forwards it on;
#   - loss, UDP blocking and a dead path are nftables drop rules (netlab_loss, netlab_block_udp,
#     netlab_dead; this kernel has no netem qdisc): blocking and dead on what arrives on m1/m2, loss on
#     what comes out of ta/tb, which are single packets (GSO and TSO bursts are segmented before a TUN
#     device), so 10 % loss drops 10 % of the packets, not of the bursts;
#   - NAT: netlab_nat on makes M rewrite the agent's source address to 10.77.3.100 (the edge sees the
#     agent behind a NAT); netlab_rebind moves the mapping to another address and drops M's connection
#     tracking, as a NAT box that reboots or times a mapping out does: the agent's next packet reaches
#     the edge from a new address and port (a NAT rebinding).
# In $NL_A the name edge.localhost resolves to the edge (ip netns exec mounts /etc/netns/NAME/hosts):
# the edge's certificate covers *.localhost, so the agent dials https://edge.localhost:PORT.
# A second edge (a pair behind DNS, tests/net/edge_restart.sh): netlab_edge_addr 10.77.2.3 edge2.localhost
# adds that address to e0 and the name to $NL_A's hosts file; both edges then sit behind one router.
NL_AGENT_IP=10.77.1.2
NL_EDGE_IP=10.77.2.2
NL_A="" NL_M="" NL_E="" NL_DELAY_PID="" NL_LOSS=0 NL_BLOCK_UDP=0 NL_DEAD=0 NL_NAT=0 NL_NAT_IP=""

# netlab_require: skips the whole script (status 0, one SKIP line) where namespaces cannot be made.
netlab_require() {
  local why=""
  if [ "$(id -u)" != 0 ]; then
    why="not root (network namespaces need CAP_NET_ADMIN)"
  elif ! command -v nft >/dev/null || ! command -v conntrack >/dev/null; then
    why="nft or conntrack missing (scripts/setup.sh installs nftables and conntrack)"
  elif [ ! -c /dev/net/tun ]; then
    why="no /dev/net/tun"
  elif ! ip netns add "wtlprobe$$" 2>/dev/null; then
    why="ip netns add fails here (a container without CAP_SYS_ADMIN?)"
  else
    ip netns del "wtlprobe$$"
  fi
  NL_DELAY_BIN=$(dirname "$WTMESH")/tests/netlab_delay
  [ -x "$NL_DELAY_BIN" ] || NL_DELAY_BIN=$(dirname "$WTMESH")/netlab_delay
  if [ -z "$why" ] && [ ! -x "$NL_DELAY_BIN" ]; then why="netlab_delay not built next to $WTMESH"; fi
  if [ -n "$why" ]; then
    skip "netlab: $why"
    peer_finish
  fi
}

# nl NS CMD...: runs CMD in namespace NS.
nl() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

# netlab_up [DELAY_MS]: makes the three namespaces, their links and routes; with DELAY_MS > 0 the
# one-way delay of each direction (RTT on the path = 2 x DELAY_MS). Removed again on exit.
netlab_up() {
  local delay=${1:-0} id=$$ ns
  netlab_reap_stale
  NL_A=wtl${id}a NL_M=wtl${id}m NL_E=wtl${id}e
  trap netlab_cleanup EXIT
  for ns in "$NL_A" "$NL_M" "$NL_E"; do
    ip netns add "$ns" || die "ip netns add $ns failed"
    ip -n "$ns" link set lo up
  done
  mkdir -p "/etc/netns/$NL_A"
  printf '127.0.0.1 localhost\n%s edge.localhost\n' "$NL_EDGE_IP" >"/etc/netns/$NL_A/hosts"
  ip link add "wtl${id}x" netns "$NL_A" type veth peer name "wtl${id}y" netns "$NL_M" || die "veth A-M"
  ip link add "wtl${id}z" netns "$NL_M" type veth peer name "wtl${id}w" netns "$NL_E" || die "veth M-E"
  ip -n "$NL_A" link set "wtl${id}x" name a0
  ip -n "$NL_M" link set "wtl${id}y" name m1
  ip -n "$NL_M" link set "wtl${id}z" name m2
  ip -n "$NL_E" link set "wtl${id}w" name e0
  ip -n "$NL_A" addr add "$NL_AGENT_IP/24" dev a0
  ip -n "$NL_M" addr add 10.77.1.1/24 dev m1
  ip -n "$NL_M" addr add 10.77.2.1/24 dev m2
  ip -n "$NL_E" addr add "$NL_EDGE_IP/24" dev e0
  ip -n "$NL_A" link set a0 up
  ip -n "$NL_M" link set m1 up
  ip -n "$NL_M" link set m2 up
  ip -n "$NL_E" link set e0 up
  ip -n "$NL_A" route add default via 10.77.1.1
  ip -n "$NL_E" route add default via 10.77.2.1
  nl "$NL_M" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  # The NAT's addresses: the edge reaches them through M, and M drops what no mapping claims.
  ip -n "$NL_M" route add blackhole 10.77.3.0/24
  netlab_apply
  # The TUN path is there even without delay: the kernel hands a TUN device single packets (it
  # segments GSO/TSO bursts first), so the loss rule, which matches packets coming out of ta/tb,
  # drops packets, not whole bursts of them.
  local ready=$PEER_TMP/netlab-delay.ready
  ip netns exec "$NL_M" "$NL_DELAY_BIN" --tun-a ta --tun-b tb --delay-ms "$delay" --ready "$ready" \
    >"$PEER_TMP/netlab-delay.log" 2>&1 </dev/null &
  NL_DELAY_PID=$!
  track "$NL_DELAY_PID"
  wait_for 5 test -e "$ready" || die "netlab_delay did not start: $(cat "$PEER_TMP/netlab-delay.log")"
  nl "$NL_M" sysctl -qw net.ipv4.conf.ta.rp_filter=0 net.ipv4.conf.tb.rp_filter=0
  ip -n "$NL_M" link set ta up
  ip -n "$NL_M" link set tb up
  ip -n "$NL_M" route add default dev ta table 101
  ip -n "$NL_M" route add default dev tb table 102
  ip -n "$NL_M" rule add iif m1 lookup 101 pref 100
  ip -n "$NL_M" rule add iif m2 lookup 102 pref 101
  # Reachable: a TCP connect to a closed port of the edge side is refused (no ping on the machine).
  local err
  err=$(nl "$NL_A" timeout 3 bash -c "exec 3<>/dev/tcp/$NL_EDGE_IP/9" 2>&1)
  [[ $err == *refused* ]] || die "netlab: the agent side cannot reach the edge side ($err)"
  log "netlab up: $NL_A ($NL_AGENT_IP) - $NL_M - $NL_E ($NL_EDGE_IP), one-way delay ${delay} ms"
}

# netlab_edge_addr IP NAME: one more address of the edge side (IP in 10.77.2.0/24, on e0) and NAME
# resolving to it in $NL_A: a second edge on its own address, as behind DNS. Call after netlab_up.
netlab_edge_addr() {
  ip -n "$NL_E" addr add "$1/24" dev e0 || die "netlab: cannot add $1 to e0"
  printf '%s %s\n' "$1" "$2" >>"/etc/netns/$NL_A/hosts"
}

# netlab_apply: writes the router's nftables rules for the current NL_* state, atomically.
netlab_apply() {
  local rules="" permille
  [ "$NL_DEAD" = 1 ] && rules+=$'\n    iifname { "m1", "m2" } drop'
  [ "$NL_BLOCK_UDP" = 1 ] && rules+=$'\n    iifname { "m1", "m2" } meta l4proto udp drop'
  permille=$(awk -v p="$NL_LOSS" 'BEGIN {printf "%d", p * 10 + 0.5}')
  [ "$permille" -gt 0 ] && rules+=$'\n    iifname { "ta", "tb" } numgen random mod 1000 < '"$permille"' drop'
  local nat=""
  [ "$NL_NAT" = 1 ] && nat="ip saddr 10.77.1.0/24 ip daddr 10.77.2.0/24 snat to $NL_NAT_IP"
  # Packets coming back out of the delay's TUN devices were judged (and NATed) on their first pass.
  nl "$NL_M" nft -f - <<EOF || die "netlab: nft rules failed"
table inet lab
delete table inet lab
table ip labnat
delete table ip labnat
table inet lab {
  chain raw {
    type filter hook prerouting priority -300; policy accept;
    iifname { "ta", "tb" } notrack
  }
  chain impair {
    type filter hook forward priority 0; policy accept;$rules
  }
}
table ip labnat {
  chain post {
    type nat hook postrouting priority 100; policy accept;
    $nat
  }
}
EOF
}

# netlab_loss PERCENT: random loss of every packet crossing the router, both directions (0 = none;
# one decimal: 0.5).
netlab_loss() {
  NL_LOSS=$1
  netlab_apply
}
# netlab_block_udp on|off: drops every UDP packet crossing the router (a network that blocks QUIC).
netlab_block_udp() {
  NL_BLOCK_UDP=$([ "$1" = on ] && echo 1 || echo 0)
  netlab_apply
}
# netlab_dead on|off: drops everything crossing the router (the path goes dead, no RST, no ICMP).
netlab_dead() {
  NL_DEAD=$([ "$1" = on ] && echo 1 || echo 0)
  netlab_apply
}
# netlab_nat on|off: the router NATs the agent's address to 10.77.3.100 (the edge routes 10.77.3.0/24
# back through it).
netlab_nat() {
  if [ "$1" = on ]; then
    NL_NAT=1 NL_NAT_IP=10.77.3.100
    ip -n "$NL_E" route replace 10.77.3.0/24 via 10.77.2.1
  else
    NL_NAT=0
  fi
  netlab_apply
  nl "$NL_M" conntrack -F >/dev/null 2>&1 || true
}
# netlab_rebind: the NAT maps the agent to the next address (.100 -> .101 -> .100) and forgets every
# mapping: packets from the agent reach the edge from a new address and port; answers to the old
# mapping are dropped.
netlab_rebind() {
  [ "$NL_NAT" = 1 ] || die "netlab_rebind needs netlab_nat on"
  if [ "${NL_REBIND_BACK:-0}" = 1 ]; then
    # Back and forth between two mappings: a NAT that hands out an address it used before.
    if [ "$NL_NAT_IP" = 10.77.3.100 ]; then NL_NAT_IP=10.77.3.101; else NL_NAT_IP=10.77.3.100; fi
  else
    NL_NAT_IP=10.77.3.$((${NL_NAT_IP##*.} + 1))
  fi
  netlab_apply
  nl "$NL_M" conntrack -F >/dev/null 2>&1 || true
  log "netlab: NAT rebinding: the agent is now seen as $NL_NAT_IP"
}

# netlab_counters: the delay's and the router's view, for a failing test's log.
netlab_counters() {
  nl "$NL_M" nft list table inet lab 2>/dev/null | sed 's/^/  | /'
  nl "$NL_M" conntrack -L 2>/dev/null | head -5 | sed 's/^/  | /'
}

netlab_down() {
  local ns
  [ -n "$NL_DELAY_PID" ] && stop_pid "$NL_DELAY_PID" 3
  for ns in "$NL_A" "$NL_M" "$NL_E"; do
    [ -n "$ns" ] || continue
    # Processes still inside (a test that died early) would keep the namespace's devices alive.
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
  done
}

# Namespaces left by a netlab whose script was killed (its pid is in the name).
netlab_reap_stale() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^wtl[0-9]+[ame]$'); do
    pid=${ns#wtl}
    pid=${pid%?}
    kill -0 "$pid" 2>/dev/null && continue
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
  done
}

netlab_cleanup() {
  local rc=$?
  (exit "$rc")
  peer_cleanup
  netlab_down
}

# --- wtmesh in the namespaces ------------------------------------------------------------------------

# nl_start_edge NAME [edge args...]: `wtmesh edge` in $NL_E on $NL_EDGE_IP (start_edge of lib.bash).
nl_start_edge() {
  EDGE_NETNS=$NL_E EDGE_LISTEN_ADDR=$NL_EDGE_IP start_edge "$@"
}

# nl_start_main [edge args...]: edge 'main' in $NL_E and the Node origin (tests/peers/origin.mjs) in
# $NL_A; sets EP (the edge's port), CA (its CA file) and OP (the origin's port).
nl_start_main() {
  command -v node >/dev/null || die "node not found"
  nl_start_edge main "$@"
  start_listening_origin main ip netns exec "$NL_A" node "$PEER_DIR/origin.mjs" --log "$PEER_TMP/origin.requests"
  EP=${EDGE_PORT[main]}
  CA=${EDGE_STATE[main]}/ca.pem
  OP=${ORIGIN_PORT[main]}
}

# nl_start_http AGENT EDGE TUNNEL_NAME LOCALPORT [wtmesh http args...]: `wtmesh http` in $NL_A toward
# edge EDGE (a token made here), waits (bounded) for its public URL; sets AGENT_PID/URL/OUT/ERR.
nl_start_http() {
  local agent=$1 edge=$2 tname=$3 lport=$4 token i url=""
  shift 4
  token=$(make_token "$edge" "$tname") || die "wtmesh token failed"
  AGENT_OUT[$agent]=$PEER_TMP/agent-$agent.out.log
  AGENT_ERR[$agent]=$PEER_TMP/agent-$agent.err.log
  : >"${AGENT_OUT[$agent]}"
  : >"${AGENT_ERR[$agent]}"
  printf '%s' "$token" >"$PEER_TMP/token-$agent"
  # ip netns exec, not nl: the background process must be wtmesh itself (ip execs it), for stop_pid.
  ip netns exec "$NL_A" "$WTMESH" http "$lport" --edge "https://edge.localhost:${EDGE_PORT[$edge]}" \
    --token-file "$PEER_TMP/token-$agent" --name "$tname" --ca "${EDGE_STATE[$edge]}/ca.pem" "$@" \
    >"${AGENT_OUT[$agent]}" 2>"${AGENT_ERR[$agent]}" </dev/null &
  AGENT_PID[$agent]=$!
  track "${AGENT_PID[$agent]}"
  for ((i = 0; i < 200; i++)); do
    url=$(grep -m1 -oE '^https://[^ ]+/' "${AGENT_OUT[$agent]}" 2>/dev/null || true)
    [ -n "$url" ] && break
    kill -0 "${AGENT_PID[$agent]}" 2>/dev/null || die "wtmesh http '$agent' exited: $(cat "${AGENT_ERR[$agent]}")"
    sleep 0.1
  done
  [ -n "$url" ] || die "wtmesh http '$agent' printed no public URL within 20 s"
  AGENT_URL[$agent]=$url
  log "agent '$agent' is up in $NL_A: pid ${AGENT_PID[$agent]}, $url"
}

# nl_curl ARGS...: curl in $NL_E (the public side), names of the edge's domain resolved to the edge.
nl_curl() {
  nl "$NL_E" curl --connect-to "::$NL_EDGE_IP:" "$@"
}
