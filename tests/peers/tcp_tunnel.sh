#!/usr/bin/env bash
# TCP tunnels (`wtmesh tcp`, docs/protocol.md §3.1, §4.2) against small Python peers we did not build
# into wtmesh (tests/peers/tcp_peer.py, standard library sockets):
#   - the printed line `tcp://127.0.0.1:PORT  ->  127.0.0.1:LOCALPORT`, the port from --tcp-ports;
#   - half-close: the client sends 1 MiB and shutdown(SHUT_WR); the service answers only after that
#     FIN and the answer (byte count + SHA-256) still arrives; also with `nc -N`;
#   - resets both ways: a client RST reaches the service as a reset, a service RST reaches the client;
#   - --proxy-protocol: the service parses a strict PROXY v2 header naming the client's own address;
#   - the per-tunnel connection cap (--tcp-max-connections 4): 4 held, the 5th reset, then one more
#     fits once one closed;
#   - refusals with a sentence: --remote-port outside the range, held by another tunnel, in use by
#     another process on the edge's host; a name outside the token's hosts;
#   - --remote-port inside the range is honoured; --private prints tcp://NAME.localhost, no port;
#   - a `type: tcp` entry in `wtmesh agent --config`;
#   - an agent killed (SIGKILL) with a connection open: the client's connection ends within 15 s;
#     an agent stopped: its port closes and the edge unpublishes it.
# Usage: tcp_tunnel.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
# shellcheck source=tests/peers/tcp_lib.bash
source "$(dirname "$0")/tcp_lib.bash"
peer_init "$@"
T=$PEER_TMP
PY=(python3 -u "$PEER_DIR/tcp_peer.py")

pick_tcp_range
start_edge main --tcp-ports "$TCP_RANGE" --tcp-max-connections 4
check "the edge announces its tcp range" grep -qF "tcp tunnels: tcp://127.0.0.1:$TCP_RANGE" "${EDGE_DIR[main]}/stdout"
# --public-host must be a DNS name or an IP address: anything else stops the edge before it listens.
bad_host_out=$(timeout 10 "$WTMESH" edge --listen 127.0.0.1:0 --state-dir "$T/bad-host" --public-host 'two words' 2>&1)
check "edge --public-host 'two words' is refused with a reason" grep -q -- "--public-host \"two words\" is neither" <<<"$bad_host_out"

# --- bytes, FIN, the printed line ----------------------------------------------------------------
start_tcp_server count serve-count
start_tcp count main count "${SRV_PORT[count]}"
P=${TCP_PORT[count]}
check "the line is tcp://127.0.0.1:PORT  ->  127.0.0.1:${SRV_PORT[count]}" \
  grep -qxE "tcp://127\.0\.0\.1:[0-9]+  ->  127\.0\.0\.1:${SRV_PORT[count]}" "${AGENT_OUT[count]}"
check "the port $P is in the range $TCP_RANGE" [ "$P" -ge "$TCP_RANGE_MIN" -a "$P" -le "$TCP_RANGE_MAX" ]
byte_checks "$P" "through the tunnel"

# --- resets both ways ----------------------------------------------------------------------------
start_tcp_server hold serve-hold
start_tcp hold main hold "${SRV_PORT[hold]}"
check "a client RST runs" timeout 10 "${PY[@]}" rst "${TCP_PORT[hold]}"
check "a client RST reaches the service as a reset" wait_for 10 grep -q '^reset' "$T/srv-hold.log"
start_tcp_server rst serve-rst
start_tcp rst main rst "${SRV_PORT[rst]}"
check "a service RST reaches the client as a reset" timeout 15 "${PY[@]}" expect-rst "${TCP_PORT[rst]}"
check "the service did send its RST" grep -q 'sent rst' "$T/srv-rst.log"

# --- PROXY protocol v2 ---------------------------------------------------------------------------
start_tcp_server proxy serve-proxy
start_tcp proxy main proxy "${SRV_PORT[proxy]}" --proxy-protocol
check "PROXY v2 header names the client's address and the tunnel port, then bytes flow" \
  timeout 15 "${PY[@]}" proxy "${TCP_PORT[proxy]}" "${TCP_PORT[proxy]}"
check "the service saw no bad header" bash -c "! grep -q 'proxy error' '$T/srv-proxy.log'"

# --- the connection cap --------------------------------------------------------------------------
coproc HOLD { timeout 60 "${PY[@]}" hold "${TCP_PORT[hold]}" 4 1.5; }
hold_out=""
read -r -t 30 hold_out <&"${HOLD[0]}"
check "four connections (the cap) are held open: '$hold_out'" [ "$hold_out" = "held 4" ]
timeout 10 "${PY[@]}" refused "${TCP_PORT[hold]}" >"$T/fifth.log" 2>&1
rc=$?
check "the fifth is reset at once (status $rc $(tail -1 "$T/fifth.log"))" [ "$rc" = 0 ]
check "the edge logs the cap" wait_for 5 edge_log_has main "at the cap of 4 connections"
exec {HOLD[1]}>&-  # closes the holder's stdin: it exits and its connections close
wait "$HOLD_PID" 2>/dev/null
check "after they closed, a connection fits again" wait_for 10 timeout 10 "${PY[@]}" hold "${TCP_PORT[hold]}" 1 0.5

# --- ports asked for, and refusals -----------------------------------------------------------------
want=$((TCP_RANGE_MIN + 7))
while [ "$want" = "$P" ] || [ "$want" = "${TCP_PORT[hold]}" ] || [ "$want" = "${TCP_PORT[rst]}" ] ||
  [ "$want" = "${TCP_PORT[proxy]}" ]; do want=$((want + 1)); done
start_tcp asked main asked "${SRV_PORT[count]}" --remote-port "$want"
check "--remote-port $want is honoured" [ "${TCP_PORT[asked]}" = "$want" ]
check "and serves" timeout 20 "${PY[@]}" halfclose "$want" 1000
tok=$(make_token main other)
refused_tcp out_of_range main other "$tok" "outside the edge's TCP port range $TCP_RANGE" --remote-port 80
refused_tcp port_held main other "$tok" "port $want is held by another tunnel" --remote-port "$want"
busy=$((TCP_RANGE_MAX))
python3 -c "import socket,time,sys; s=socket.socket(); s.bind(('127.0.0.1',$busy)); s.listen(); print('bound', flush=True); time.sleep(60)" \
  >"$T/busy.log" 2>&1 &
track $!
if wait_for 5 grep -q bound "$T/busy.log"; then
  refused_tcp port_in_use main other "$tok" "port $busy is in use on the edge's host" --remote-port "$busy"
else
  skip "could not bind $busy for the in-use check"
fi
refused_tcp not_covered main secret "$tok" "the token does not cover secret.localhost"
check "the edge is still serving after the refusals" timeout 20 "${PY[@]}" halfclose "$P" 100

# --- private, and the YAML config ----------------------------------------------------------------
start_tcp_server priv serve-count
launch_tcp priv main priv "${SRV_PORT[priv]}" "$(make_token main priv)" --private
check "--private prints tcp://priv.localhost (by name, no port)" \
  wait_for 20 grep -qxF "tcp://priv.localhost  ->  127.0.0.1:${SRV_PORT[priv]}" "${AGENT_OUT[priv]}"
check "the edge published it without a port" edge_log_has main "tcp priv.localhost: published tcp://priv.localhost"

cat >"$T/agent.yaml" <<YAML
edge: https://127.0.0.1:${EDGE_PORT[main]}
ca: ${EDGE_STATE[main]}/ca.pem
token: $(make_token main yaml)
tunnels:
  - name: yaml
    type: tcp
    local_port: ${SRV_PORT[count]}
YAML
"$WTMESH" agent --config "$T/agent.yaml" >"$T/agent-yaml.out.log" 2>"$T/agent-yaml.err.log" </dev/null &
track $!
if wait_for 20 grep -qE '^tcp://127.0.0.1:[0-9]+  ->  ' "$T/agent-yaml.out.log"; then
  yport=$(sed -nE 's|^tcp://127.0.0.1:([0-9]+)  ->  .*|\1|p' "$T/agent-yaml.out.log" | head -1)
  check "a type: tcp entry in the YAML config serves on $yport" timeout 20 "${PY[@]}" halfclose "$yport" 5000
else
  fail "the YAML tcp tunnel printed no line: $(tail -3 "$T/agent-yaml.err.log")"
fi

# --- an agent killed: its open connections are reset, soon -------------------------------------------
timeout 30 "${PY[@]}" expect-end "${TCP_PORT[hold]}" 15 >"$T/killed.log" 2>&1 &
end_pid=$!
if wait_for 10 grep -q '^open' "$T/killed.log"; then
  sleep 0.5  # the stream reaches the agent and its service (not asserted: the end is)
  start=$(now_ms)
  kill -KILL "${AGENT_PID[hold]}"
  wait "$end_pid"
  rc=$?
  check "a connection through a killed agent ends (status $rc, $(($(now_ms) - start)) ms; $(tail -1 "$T/killed.log"))" \
    [ "$rc" = 0 ]
else
  fail "the connection for the kill check did not open: $(cat "$T/killed.log")"
fi

# --- the agent goes away: its port closes ----------------------------------------------------------
stop_pid "${AGENT_PID[asked]}" 5
check "the port of a stopped agent is closed" wait_for 10 bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$want) 2>/dev/null"
check "the edge unpublished it" wait_for 5 edge_log_has main "tcp asked.localhost: unpublished"

peer_finish
