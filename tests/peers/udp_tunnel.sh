#!/usr/bin/env bash
# UDP tunnels (`wtmesh udp`, docs/protocol.md §3.2, §4.4) against real peers we did not write:
#   - `dig` (bind9-dnsutils) through the tunnel to a local `dnsmasq` (dnsmasq-base, unprivileged port):
#     the answer 10.1.2.3 for x.test, and a batch of 50 queries each answered;
#   - iperf3 TCP both ways (-t 2, -R) through the tcp tunnel of the same name;
#   - iperf3 UDP at a fixed rate (-u -b 20M -t 3 -l 1200): its TCP control connection through a tcp
#     tunnel and its UDP data through a udp tunnel with the same name and the same edge port number,
#     both in one `wtmesh agent --config` YAML file; loss and jitter reported;
#   - a Python UDP echo service (tests/peers/udp_peer.py): 40 flows at once each answered with its own
#     bytes; a packet too large for the session's datagrams is dropped and counted (edge), an answer too
#     large is dropped and counted (agent), the tunnel answers the next packet; the flow cap
#     (--udp-max-flows 4): 4 clients answered, a 5th dropped and counted, the 4 still answered; idle
#     expiry (--udp-idle-timeout 1 on both sides): the same client later reaches the service from a
#     new local socket, and both sides log the expiry;
#   - refusals with a sentence: --remote-port outside --udp-ports, held by another tunnel, in use by
#     another process; --private prints udp://NAME.localhost and opens no port;
#   - an agent stopped: its port is free again.
# Usage: udp_tunnel.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
# shellcheck source=tests/peers/tcp_lib.bash
source "$(dirname "$0")/tcp_lib.bash"
peer_init "$@"
T=$PEER_TMP
PY=(python3 -u "$PEER_DIR/udp_peer.py")

# 40 ports per edge, below the ephemeral range; the edge skips ports it cannot bind anyway.
base=$((21000 + (RANDOM % 250) * 40))
RANGE_MIN=$base RANGE_MAX=$((base + 39))
RANGE="$RANGE_MIN-$RANGE_MAX"
start_edge main --udp-ports "$RANGE" --udp-max-flows 64 --tcp-ports "$((base + 200))-$((base + 239))"
check "the edge announces its udp range" grep -qF "udp tunnels: udp://127.0.0.1:$RANGE" "${EDGE_DIR[main]}/stdout"
start_edge cap --udp-ports "$((base + 40))-$((base + 79))" --udp-max-flows 4 --admin-listen 127.0.0.1:0
start_edge idle --udp-ports "$((base + 80))-$((base + 119))" --udp-idle-timeout 1

start_echo() {
  local name=$1 log=$T/srv-$1.log
  "${PY[@]}" serve-echo >"$log" 2>&1 </dev/null &
  track $!
  wait_for 10 grep -q '^listening ' "$log" || die "udp_peer.py serve-echo did not start: $(cat "$log")"
  SRV_PORT[$name]=$(grep -m1 '^listening ' "$log" | cut -d' ' -f2)
}

# --- dig through the tunnel to dnsmasq --------------------------------------------------------------
if command -v dnsmasq >/dev/null && command -v dig >/dev/null; then
  dns_ok=0
  start_dnsmasq && dns_ok=1
  check "dnsmasq answers directly (port $DNS_PORT)" [ "$dns_ok" = 1 ]
  start_udp dns main dns "$DNS_PORT"
  P=${UDP_PORT[dns]}
  check "the line is udp://127.0.0.1:PORT  ->  127.0.0.1:$DNS_PORT" \
    grep -qxE "udp://127\.0\.0\.1:[0-9]+  ->  127\.0\.0\.1:$DNS_PORT" "${AGENT_OUT[dns]}"
  check "the port $P is in the range $RANGE" [ "$P" -ge "$RANGE_MIN" -a "$P" -le "$RANGE_MAX" ]
  got=$(timeout 20 dig @127.0.0.1 -p "$P" x.test +short +time=2 +tries=3)
  check "dig x.test through the tunnel: '$got'" [ "$got" = 10.1.2.3 ]
  for i in $(seq 1 50); do echo "q$i.x.test A"; done >"$T/dig-batch.txt"
  answered=$(timeout 60 dig @127.0.0.1 -p "$P" +short +time=2 +tries=3 -f "$T/dig-batch.txt" | grep -cx 10.1.2.3)
  check "a batch of 50 dig queries, each answered: $answered" [ "$answered" = 50 ]
else
  skip "dnsmasq or dig not installed (dnsmasq-base, bind9-dnsutils)"
fi

# --- the echo service: many flows, too large both ways ---------------------------------------------
start_echo echo
start_udp echo main echo "${SRV_PORT[echo]}"
E=${UDP_PORT[echo]}
check "one echo" timeout 20 "${PY[@]}" ping "$E"
check "40 flows at once, 5 packets each, every answer to its own flow, 40 sources (one agent socket per flow)" \
  timeout 60 "${PY[@]}" flows "$E" 40 5
check "a 1500-byte packet (over the session's max datagram size) is dropped; the next is answered" \
  timeout 20 "${PY[@]}" big "$E" 1500
check "the edge counted it as too_big" wait_for 5 edge_log_has main "udp echo.localhost: dropped so far: too_big 1,"
check "a 1500-byte answer is dropped by the agent; the next is answered" timeout 20 "${PY[@]}" bigreply "$E" 1500
check "the agent counted it as too_big" wait_for 5 grep -q "udp tunnel 1: dropped so far: too_big 1," "${AGENT_ERR[echo]}"
check "the session lived through the drops" bash -c "! grep -q 'session ended' '${EDGE_DIR[main]}/stderr'"

# --- iperf3: TCP control through a tcp tunnel, UDP data through a udp tunnel, one port number ----------
if command -v iperf3 >/dev/null; then
  IPERF_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT" >"$T/iperf3-server.log" 2>&1 </dev/null &
  track $!
  # One edge port number for both: the tcp and the udp tunnel ask for it (its own edge, one-port ranges).
  RP=$((base + 120))
  start_edge iperf --udp-ports "$RP-$RP" --tcp-ports "$RP-$RP"
  cat >"$T/iperf.yaml" <<YAML
edge: https://127.0.0.1:${EDGE_PORT[iperf]}
ca: ${EDGE_STATE[iperf]}/ca.pem
token: $(make_token iperf iperf)
tunnels:
  - {name: iperf, type: tcp, local_port: $IPERF_PORT, remote_port: $RP}
  - {name: iperf, type: udp, local_port: $IPERF_PORT, remote_port: $RP}
YAML
  "$WTMESH" agent --config "$T/iperf.yaml" >"$T/agent-iperf.out.log" 2>"$T/agent-iperf.err.log" </dev/null &
  track $!
  if wait_for 20 bash -c "grep -q '^tcp://127.0.0.1:$RP ' '$T/agent-iperf.out.log' && grep -q '^udp://127.0.0.1:$RP ' '$T/agent-iperf.out.log'"; then
    pass "one YAML file: tcp://127.0.0.1:$RP and udp://127.0.0.1:$RP for iperf.localhost"
    timeout 60 iperf3 -c 127.0.0.1 -p "$RP" -u -b 20M -t 3 -l 1200 --json >"$T/iperf3.json" 2>"$T/iperf3.err"
    rc=$?
    summary=$(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["end"]["sum"]
print("%.1f Mbit/s, %d/%d lost (%.2f %%), jitter %.3f ms" % (
    s["bits_per_second"] / 1e6, s["lost_packets"], s["packets"], s["lost_percent"], s["jitter_ms"]))
sys.exit(0 if s["packets"] > 1000 and s["lost_percent"] < 5 else 1)
' "$T/iperf3.json" 2>&1)
    ok=$?
    log "iperf3 UDP through the tunnel: $summary"
    check "iperf3 -u -b 20M -t 3 -l 1200 (exit $rc): $summary; more than 1000 packets, under 5 % lost" \
      [ "$rc" = 0 -a "$ok" = 0 ]
    # TCP data through the tcp tunnel of the same name, both directions (-R: the service sends).
    for dir in up down; do
      flag=(); [ "$dir" = down ] && flag=(-R)
      timeout 60 iperf3 -c 127.0.0.1 -p "$RP" -t 2 "${flag[@]}" --json >"$T/iperf3-tcp-$dir.json" 2>"$T/iperf3-tcp-$dir.err"
      rc=$?
      summary=$(python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["end"]
s, r = e["sum_sent"], e["sum_received"]
print("%.0f Mbit/s, %d bytes sent, %d received" % (r["bits_per_second"] / 1e6, s["bytes"], r["bytes"]))
sys.exit(0 if r["bytes"] > 1e6 and r["bits_per_second"] > 10e6 else 1)
' "$T/iperf3-tcp-$dir.json" 2>&1)
      ok=$?
      check "iperf3 TCP $dir through the tcp tunnel -t 2 (exit $rc): $summary; over 10 Mbit/s" [ "$rc" = 0 -a "$ok" = 0 ]
    done
  else
    fail "the iperf YAML agent printed no tcp:// and udp:// lines: $(tail -3 "$T/agent-iperf.err.log")"
  fi
else
  skip "iperf3 not installed"
fi

# --- the flow cap ------------------------------------------------------------------------------------
start_udp capped cap capped "${SRV_PORT[echo]}"
check "4 flows (the cap) answered, a 5th dropped, the 4 still answered" timeout 30 "${PY[@]}" cap "${UDP_PORT[capped]}" 4
check "the edge logs the cap" edge_log_has cap "udp capped.localhost: flow cap of 4 reached"
check "and counts the dropped packets" wait_for 5 grep -qE "udp capped.localhost: dropped so far: too_big 0, flow_cap [1-9]" "${EDGE_DIR[cap]}/stderr"
cap_admin=$(grep -m1 -oE 'admin: http://127\.0\.0\.1:[0-9]+' "${EDGE_DIR[cap]}/stdout" | grep -oE '[0-9]+$')
check "/metrics counts them: wtmesh_udp_packets_dropped_total{reason=\"flow_cap\"} > 0" \
  bash -c "curl -sS -m 5 http://127.0.0.1:$cap_admin/metrics | grep -qE '^wtmesh_udp_packets_dropped_total\\{reason=\"flow_cap\"\\} [1-9]'"

# --- idle expiry on both sides -------------------------------------------------------------------------
start_udp idler idle idler "${SRV_PORT[echo]}" --udp-idle-timeout 1
check "after 3 s idle the same client reaches the service from a new agent socket" \
  timeout 30 "${PY[@]}" idle "${UDP_PORT[idler]}" 3
check "the edge expired the flow" edge_log_has idle "udp idler.localhost: 1 idle flow(s) expired"
check "the agent expired the flow" grep -q "udp tunnel 1: 1 idle flow(s) expired" "${AGENT_ERR[idler]}"

# --- refusals, private (on the idle edge: its flows expire, so a new client is never past a cap) ------
IR="$((base + 80))-$((base + 119))"
tok=$(make_token idle other)
refused_udp out_of_range idle other "$tok" "outside the edge's UDP port range $IR" --remote-port 80
refused_udp port_held idle other "$tok" "port ${UDP_PORT[idler]} is held by another tunnel" --remote-port "${UDP_PORT[idler]}"
busy=$((base + 119))
python3 -c "import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1',$busy)); print('bound', flush=True); time.sleep(60)" \
  >"$T/busy.log" 2>&1 &
track $!
if wait_for 5 grep -q bound "$T/busy.log"; then
  refused_udp port_in_use idle other "$tok" "port $busy is in use on the edge's host" --remote-port "$busy"
else
  skip "could not bind $busy for the in-use check"
fi
refused_udp not_covered idle secret "$tok" "the token does not cover secret.localhost"
launch_udp priv idle priv "${SRV_PORT[echo]}" "$(make_token idle priv)" --private
check "--private prints udp://priv.localhost (by name, no port)" \
  wait_for 20 grep -qxF "udp://priv.localhost  ->  127.0.0.1:${SRV_PORT[echo]}" "${AGENT_OUT[priv]}"
check "the edge published it without a port" edge_log_has idle "udp priv.localhost: published udp://priv.localhost"
check "the tunnel still answers after the refusals" timeout 20 "${PY[@]}" ping "${UDP_PORT[idler]}"

# --- the agent goes away: its port is free again -------------------------------------------------------------
stop_pid "${AGENT_PID[idler]}" 5
check "the edge unpublished it" wait_for 5 edge_log_has idle "udp idler.localhost: unpublished"
check "its port ${UDP_PORT[idler]} can be bound again" \
  python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind(('127.0.0.1', ${UDP_PORT[idler]}))"

peer_finish
