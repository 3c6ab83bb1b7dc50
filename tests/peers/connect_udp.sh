#!/usr/bin/env bash
# The mesh over UDP: `wtmesh connect NAME --listen 127.0.0.1:PORT --udp` (docs/protocol.md §4.3 flag
# `udp`, §4.4) between agents through one edge, with real peers we did not write:
#   - `dig` through connect --udp to a `dnsmasq` behind another agent's private udp tunnel
#     (`wtmesh udp --private`): the answer 10.1.2.3, and a batch of 50 queries each answered;
#   - a Python UDP echo service (tests/peers/udp_peer.py) behind a private udp tunnel: 40 flows at once
#     (one per client socket) each answered with its own bytes; a packet too large for the session's
#     datagrams dropped and counted by the connecting agent, an answer too large dropped and counted by
#     the serving agent, the next packets answered; the flow cap
#     (connect --udp-max-flows 4): 4 clients answered, a 5th dropped and counted, the 4 still answered;
#     idle expiry on the connecting agent (--udp-idle-timeout 1) and on the edge (its
#     --udp-idle-timeout 1): a client later reaches the service through a new flow;
#   - refusals the connecting agent reports, the client getting nothing back: a name outside the
#     token's `connect` claim (the service behind it sees no packet) and an unknown name;
#   - edge UDP routes (`wtmesh edge --udp-route NAME=HOST:PORT`, the edge's own socket per flow, no
#     agent behind the name): dig to dnsmasq through one; the echo service through another, with the
#     route's flow cap (--udp-max-flows 3) and idle expiry (--udp-idle-timeout 4) on an edge without
#     UDP tunnels;
#   - iperf3 -u: its TCP control through `connect` (TCP) and its UDP data through `connect --udp`, both
#     on the same local port number and reaching a tcp and a udp tunnel of one name, both sides in YAML.
# Usage: connect_udp.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
# shellcheck source=tests/peers/tcp_lib.bash
source "$(dirname "$0")/tcp_lib.bash"
peer_init "$@"
T=$PEER_TMP
PY=(python3 -u "$PEER_DIR/udp_peer.py")

base=$((21000 + (RANDOM % 250) * 40))
start_edge main --udp-ports "$base-$((base + 19))" --tcp-ports "$((base + 20))-$((base + 39))"
start_edge idle --udp-ports "$((base + 20))-$((base + 29))" --tcp-ports none --udp-idle-timeout 1
TOKEN=$("$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name client --connect dns --connect echo \
  --connect nosuch --connect iperf) || die "wtmesh token failed"

# --- dig through connect --udp to dnsmasq behind a private udp tunnel ----------------------------------
if command -v dnsmasq >/dev/null && command -v dig >/dev/null; then
  dns_ok=0
  start_dnsmasq && dns_ok=1
  check "dnsmasq answers directly (port $DNS_PORT)" [ "$dns_ok" = 1 ]
  start_udp dns main dns "$DNS_PORT" --private
  check "the dns tunnel is private: udp://dns.localhost" grep -qxF "udp://dns.localhost  ->  127.0.0.1:$DNS_PORT" "${AGENT_OUT[dns]}"
  start_connect_udp cdns main dns "$TOKEN"
  P=${CONNECT_PORT[cdns]}
  got=$(timeout 20 dig @127.0.0.1 -p "$P" x.test +short +time=2 +tries=3)
  check "dig x.test through connect --udp: '$got'" [ "$got" = 10.1.2.3 ]
  for i in $(seq 1 50); do echo "q$i.x.test A"; done >"$T/dig-batch.txt"
  answered=$(timeout 60 dig @127.0.0.1 -p "$P" +short +time=2 +tries=3 -f "$T/dig-batch.txt" | grep -cx 10.1.2.3)
  check "a batch of 50 dig queries through connect --udp, each answered: $answered" [ "$answered" = 50 ]
else
  skip "dnsmasq or dig not installed (dnsmasq-base, bind9-dnsutils)"
fi

# --- the echo service: many flows, too large three ways ---------------------------------------------
start_udp_echo echo
start_udp echo main echo "${SRV_PORT[echo]}" --private
start_connect_udp cecho main echo "$TOKEN"
E=${CONNECT_PORT[cecho]}
check "one echo through connect --udp" timeout 20 "${PY[@]}" ping "$E"
check "40 flows at once, 5 packets each, every answer to its own flow" timeout 60 "${PY[@]}" flows "$E" 40 5
check "the service saw 41 sources (one serving flow per connect flow)" \
  wait_for 5 bash -c "[ \$(grep -c '^source' '$T/srv-echo.log') -ge 41 ]"
check "the edge opened them as flows of the echo tunnel" \
  bash -c "! grep -q 'udp echo.localhost: flow cap' '${EDGE_DIR[main]}/stderr'"
check "a 1500-byte packet is dropped by the connecting agent; the next is answered" \
  timeout 20 "${PY[@]}" big "$E" 1500
check "the connecting agent counted it as too_big" \
  wait_for 5 grep -q "connect echo --udp: dropped so far: too_big 1," "${AGENT_ERR[cecho]}"
check "a 1500-byte answer is dropped by the serving agent; the next is answered" \
  timeout 20 "${PY[@]}" bigreply "$E" 1500
check "the serving agent counted it as too_big" \
  wait_for 5 grep -q "udp tunnel 1: dropped so far: too_big 1," "${AGENT_ERR[echo]}"
check "the sessions lived through the drops" bash -c "! grep -q 'session ended' '${EDGE_DIR[main]}/stderr'"

# --- the flow cap of a connect --------------------------------------------------------------------------
start_connect_udp ccap main echo "$TOKEN" --udp-max-flows 4
check "4 flows (the cap) answered, a 5th dropped, the 4 still answered" \
  timeout 30 "${PY[@]}" cap "${CONNECT_PORT[ccap]}" 4
check "the connecting agent logs the cap" grep -q "connect echo --udp: flow cap of 4 reached" "${AGENT_ERR[ccap]}"
check "and counts the dropped packets" \
  wait_for 5 grep -qE "connect echo --udp: dropped so far: too_big 0, flow_cap [1-9]" "${AGENT_ERR[ccap]}"

# --- idle expiry: the connecting agent's, then the edge's ------------------------------------------------
start_connect_udp cidle main echo "$TOKEN" --udp-idle-timeout 1
check "agent expiry: after 3 s idle the same client reaches the service through a new flow" \
  timeout 30 "${PY[@]}" idle "${CONNECT_PORT[cidle]}" 3
check "the connecting agent expired the flow" grep -q "connect echo --udp: 1 idle flow(s) expired" "${AGENT_ERR[cidle]}"
start_udp_echo echo2
TOKEN_IDLE=$("$WTMESH" token --state-dir "${EDGE_STATE[idle]}" --name client --connect echo2) || die "wtmesh token failed"
start_udp echo2 idle echo2 "${SRV_PORT[echo2]}" --private
start_connect_udp cidle2 idle echo2 "$TOKEN_IDLE"
check "edge expiry: after 3 s idle the same client reaches the service through a new flow" \
  timeout 30 "${PY[@]}" idle "${CONNECT_PORT[cidle2]}" 3
check "the edge expired the serving tunnel's flow" edge_log_has idle "udp echo2.localhost: 1 idle flow(s) expired"

# --- refusals ----------------------------------------------------------------------------------------------
start_udp_echo hidden
start_udp hidden main hidden "${SRV_PORT[hidden]}" --private
start_connect_udp cscope main hidden "$TOKEN"
check "out of scope: the client gets nothing back" timeout 10 "${PY[@]}" noanswer "${CONNECT_PORT[cscope]}"
check "out of scope: 'connect hidden --udp refused: not in token scope (not_in_scope)'" \
  wait_for 5 grep -q 'connect hidden --udp refused: not in token scope (not_in_scope)' "${AGENT_ERR[cscope]}"
check "out of scope: the service behind it saw no packet" bash -c "! grep -q '^source' '$T/srv-hidden.log'"
start_connect_udp cunknown main nosuch "$TOKEN"
check "unknown name: the client gets nothing back" timeout 10 "${PY[@]}" noanswer "${CONNECT_PORT[cunknown]}"
check "unknown name: the agent reports it" \
  wait_for 5 grep -q 'connect nosuch --udp refused: no udp tunnel is named nosuch.localhost (unknown)' "${AGENT_ERR[cunknown]}"
check "after the refusals the edge and the other connects live on" timeout 20 "${PY[@]}" ping "$E"

# --- edge UDP routes: the edge's own socket per flow ----------------------------------------------------
start_udp_echo routed
route_args=(--udp-route "echoroute=127.0.0.1:${SRV_PORT[routed]}")
[ -n "${DNS_PORT:-}" ] && route_args+=(--udp-route "dnsroute=127.0.0.1:$DNS_PORT")
start_edge route --udp-ports none --tcp-ports none --udp-max-flows 3 --udp-idle-timeout 4 "${route_args[@]}" \
  --admin-listen 127.0.0.1:0
wait_for 10 grep -q 'admin: http://127.0.0.1:[0-9]*/metrics' "${EDGE_DIR[route]}/stdout" || die "edge printed no admin line"
ADMIN=http://127.0.0.1:$(grep -m1 -oE 'admin: http://127\.0\.0\.1:[0-9]+' "${EDGE_DIR[route]}/stdout" | grep -oE '[0-9]+$')
check "the edge prints its udp route" \
  grep -qxF "  udp route: echoroute.localhost  ->  udp://127.0.0.1:${SRV_PORT[routed]}" "${EDGE_DIR[route]}/stdout"
TOKEN_ROUTE=$("$WTMESH" token --state-dir "${EDGE_STATE[route]}" --name client --connect echoroute --connect dnsroute) ||
  die "wtmesh token failed"
if [ -n "${DNS_PORT:-}" ]; then
  start_connect_udp croutedns route dnsroute "$TOKEN_ROUTE"
  got=$(timeout 20 dig @127.0.0.1 -p "${CONNECT_PORT[croutedns]}" x.test +short +time=2 +tries=3)
  check "dig x.test through connect --udp to an edge udp route: '$got'" [ "$got" = 10.1.2.3 ]
fi
start_connect_udp croute route echoroute "$TOKEN_ROUTE"
R=${CONNECT_PORT[croute]}
check "the route's flow cap: 3 flows answered through an edge udp route, a 4th refused, the 3 still answered" \
  timeout 30 "${PY[@]}" cap "$R" 3
check "the connecting agent reports the refusal" \
  wait_for 5 grep -q 'connect echoroute --udp refused: echoroute.localhost: the route has as many flows as it may (limit)' \
  "${AGENT_ERR[croute]}"
check "/metrics counts the refused route flow" \
  bash -c "curl -s --max-time 5 '$ADMIN/metrics' | grep -qE '^wtmesh_udp_route_flows_refused_total [1-9]'"
sleep 5  # the cap test's flows expire (4 s idle) and free the route's places
check "route idle expiry: after 6 s idle the same client reaches the service from a new edge socket" \
  timeout 30 "${PY[@]}" idle "$R" 6
check "the echo service saw only the edge's sockets, one per flow" \
  bash -c "[ \$(grep -c '^source' '$T/srv-routed.log') -ge 5 ]"

# --- iperf3 -u: control through connect (TCP), data through connect --udp, one port number --------------
if command -v iperf3 >/dev/null; then
  IPERF_PORT=$(free_port)
  iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT" >"$T/iperf3-server.log" 2>&1 </dev/null &
  track $!
  cat >"$T/serve.yaml" <<YAML
edge: https://127.0.0.1:${EDGE_PORT[main]}
ca: ${EDGE_STATE[main]}/ca.pem
token: $(make_token main iperf)
tunnels:
  - {name: iperf, type: tcp, local_port: $IPERF_PORT, private: true}
  - {name: iperf, type: udp, local_port: $IPERF_PORT, private: true}
YAML
  "$WTMESH" agent --config "$T/serve.yaml" >"$T/serve.out" 2>"$T/serve.err" </dev/null &
  track $!
  CP=$(free_port)
  cat >"$T/connect.yaml" <<YAML
edge: https://127.0.0.1:${EDGE_PORT[main]}
ca: ${EDGE_STATE[main]}/ca.pem
token: $TOKEN
tunnels:
  - {name: iperf, type: connect, listen: "127.0.0.1:$CP"}
  - {name: iperf, type: connect, listen: "127.0.0.1:$CP", udp: true}
YAML
  "$WTMESH" agent --config "$T/connect.yaml" >"$T/connect.out" 2>"$T/connect.err" </dev/null &
  track $!
  if wait_for 20 bash -c "grep -q '^udp://iperf.localhost ' '$T/serve.out' && grep -q '^tcp://iperf.localhost ' '$T/serve.out' &&
       grep -qxF 'connect iperf  ->  udp://127.0.0.1:$CP' '$T/connect.out' && grep -qxF 'connect iperf  ->  127.0.0.1:$CP' '$T/connect.out'"; then
    pass "YAML: a tcp and a udp connect of iperf on 127.0.0.1:$CP"
    timeout 60 iperf3 -c 127.0.0.1 -p "$CP" -u -b 20M -t 3 -l 1200 --json >"$T/iperf3.json" 2>"$T/iperf3.err"
    rc=$?
    summary=$(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["end"]["sum"]
print("%.1f Mbit/s, %d/%d lost (%.2f %%), jitter %.3f ms" % (
    s["bits_per_second"] / 1e6, s["lost_packets"], s["packets"], s["lost_percent"], s["jitter_ms"]))
sys.exit(0 if s["packets"] > 1000 and s["lost_percent"] < 5 else 1)
' "$T/iperf3.json" 2>&1)
    ok=$?
    log "iperf3 UDP through connect --udp: $summary"
    check "iperf3 -u -b 20M -t 3 -l 1200 through connect (exit $rc): $summary; more than 1000 packets, under 5 % lost" \
      [ "$rc" = 0 -a "$ok" = 0 ]
  else
    fail "the iperf YAML agents did not come up: $(tail -3 "$T/serve.err") $(tail -3 "$T/connect.err")"
  fi
else
  skip "iperf3 not installed"
fi

peer_finish
