#!/usr/bin/env bash
# Issue 15 item 3: `wtmesh edge --workers 2`, two threads on one address (SO_REUSEPORT), with real
# peers. Two agents (`wtmesh http`, QUIC) each land on the worker the kernel hashed their address to;
# every curl below is a new TCP connection, hashed to either worker, so most tunnels are reached from
# both (the /metrics hop counter proves it). Checks:
#   - 40 GETs over HTTPS/1.1, 20 over HTTP/2, 20 over the plain listener, to both tunnels: every one
#     200 with the exact body; each connection was steered (by SNI or Host) to the worker holding its
#     name, so none of these requests crossed (wtmesh_worker_connections_steered_total > 0, hops 0);
#     with --no-steering (a second edge) none is handed over and requests cross instead
#   - a 2 MiB POST echoed byte for byte, and four 16 MiB downloads with the origin's SHA-256, whichever
#     worker takes them (request and response both cross the hop)
#   - HTTP/3 with gtlsclient (a QUIC peer: its connection lands on either socket) to both tunnels
#   - WebSocket echoes (ws_client.mjs, Node's ws) through either worker
#   - wrk -c 32 for 3 s: no errors, no non-2xx
#   - a TCP tunnel's public port, and `wtmesh connect` from four agents (on either worker) to a private
#     TCP tunnel: bytes both ways
#   - basic auth on a tunnel, from new connections on either worker: 401 without or with a wrong
#     password, 200 with the right one (the tunnel's gate travels with the route)
#   - `wtmesh connect --udp` from six agents to a private udp tunnel (a UDP echo): one echo each
#   - the edge's caps count over both workers: a 7th session of a subject is refused
#     (--max-sessions-per-subject 6), one address holds at most 48 TCP connections (--max-connections-per-ip)
#   - /metrics sums the workers: 17 agent sessions (4 http, 2 tcp, 4 connect, 1 udp, 6 connect --udp),
#     wtmesh_worker_hops_total > 0
#   - SIGTERM: every worker drains and the edge exits 0
# Usage: edge_workers.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
# shellcheck source=tests/peers/tcp_lib.bash
source "$(dirname "$0")/tcp_lib.bash"
peer_init "$@"

pick_tcp_range
start_edge main --workers 2 --http-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --tcp-ports "$TCP_RANGE" \
  --drain-handoff 1s --drain-grace 3s --max-sessions-per-subject 6 --max-connections-per-ip 48
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
T=$PEER_TMP
HTTP_PORT=$(grep -m1 -oE 'plain HTTP: http://NAME\.localhost:[0-9]+' "${EDGE_DIR[main]}/stdout" | grep -oE '[0-9]+$')
[ -n "$HTTP_PORT" ] || die "edge printed no plain HTTP port"
check "the edge says it runs two workers" grep -q 'workers: 2 threads' "${EDGE_DIR[main]}/stdout"
start_origin main
OP=${ORIGIN_PORT[main]}
start_http app main app "$OP"
start_http api main api "$OP"

# Requests on fresh connections to both names; each must be 200 with the exact body.
many_gets() {
  local label=$1 n=$2 ok=0 i name code
  shift 2
  for ((i = 0; i < n; i++)); do
    name=app
    [ $((i % 2)) = 1 ] && name=api
    code=$(curl -sS -m 10 --cacert "$CA" -o "$T/body" -w '%{http_code}' "$@" "$(url_of "$name")/hello" 2>>"$T/curl.err")
    [ "$code" = 200 ] && [ "$(cat "$T/body")" = "hello from the origin" ] && ok=$((ok + 1))
  done
  check "$label: $ok of $n answered 200 with the exact body" [ "$ok" = "$n" ]
}
url_of() { echo "https://$1.localhost:$EP"; }
many_gets "HTTPS/1.1 on new connections" 40 --http1.1
many_gets "HTTP/2 on new connections" 20 --http2
url_of() { echo "http://$1.localhost:$HTTP_PORT"; }
many_gets "plain HTTP on new connections" 20 --http1.1
url_of() { echo "https://$1.localhost:$EP"; }
# Each of those connections was handed, before TLS (or by its Host), to the worker whose agent holds
# its name: none of their requests crossed between the workers.
steered=$(edge_metric main wtmesh_worker_connections_steered_total)
hops=$(edge_metric main wtmesh_worker_hops_total)
steering_ok() { [ "${steered:-0}" -gt 0 ] && [ "${hops:-1}" = 0 ]; }
check "steering: connections handed to their name's worker (${steered:-0}), no request crossed (${hops:-?} hops)" steering_ok

# --- bodies both ways across workers.
head -c $((2 << 20)) /dev/urandom >"$T/post.bin"
ok=0
for i in 1 2 3 4; do
  curl -sS -m 20 --cacert "$CA" --data-binary "@$T/post.bin" -H 'Content-Type: application/octet-stream' \
    -o "$T/echo.bin" "https://app.localhost:$EP/echo" 2>>"$T/curl.err" && cmp -s "$T/post.bin" "$T/echo.bin" && ok=$((ok + 1))
done
check "a 2 MiB POST is echoed byte for byte, 4 of 4 times ($ok)" [ "$ok" = 4 ]
ok=0
for i in 1 2 3 4; do
  name=app
  [ $((i % 2)) = 0 ] && name=api
  curl -sS -m 60 --cacert "$CA" -o "$T/down.bin" "https://$name.localhost:$EP/bytes?n=$((16 << 20))" 2>>"$T/curl.err" || continue
  curl -sS -m 5 --cacert "$CA" -o "$T/stats.json" "https://$name.localhost:$EP/stats"
  [ "$(json_field "$T/stats.json" lastSent.sha256)" = "$(sha256sum "$T/down.bin" | cut -d' ' -f1)" ] && ok=$((ok + 1))
done
check "16 MiB downloads arrive exact, 4 of 4 ($ok)" [ "$ok" = 4 ]

# --- HTTP/3: gtlsclient's QUIC connection lands on either worker's socket.
command -v gtlsclient >/dev/null || die "gtlsclient not found (Debian package ngtcp2-client; run scripts/setup.sh)"
ok=0
for i in 1 2 3 4 5 6; do
  name=app
  [ $((i % 2)) = 0 ] && name=api
  rm -rf "$T/dl" && mkdir -p "$T/dl"
  timeout -k 5 30 gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump --handshake-timeout=10s \
    --timeout=20s --sni="$name.localhost" --download="$T/dl" 127.0.0.1 "$EP" "https://$name.localhost:$EP/hello" \
    >"$T/gtl.out" 2>&1 </dev/null
  grep -qxF 'hello from the origin' "$T/dl/hello" 2>/dev/null && ok=$((ok + 1))
done
check "HTTP/3 (gtlsclient) to both tunnels: $ok of 6 with the exact body" [ "$ok" = 6 ]

# --- WebSocket (HTTP/1.1 upgrade) through either worker to the ws echo service.
start_ws_echo
start_http ws main ws "$WS_ECHO_PORT"
for i in 1 2 3 4; do
  node_checks "ws-$i" 60 "$PEER_DIR/ws_client.mjs" "wss://ws.localhost:$EP/chat" "$CA" quick
done

# --- load: connections spread over both workers.
if command -v wrk >/dev/null; then
  wrk -t2 -c32 -d3s -H 'Host: app.localhost' "https://127.0.0.1:$EP/hello" >"$T/wrk.out" 2>&1
  reqs=$(grep -oE '^ +[0-9]+ requests' "$T/wrk.out" | grep -oE '[0-9]+')
  check "wrk: requests served (${reqs:-0})" [ "${reqs:-0}" -gt 100 ]
  check "wrk: no socket errors or non-2xx" bash -c "! grep -qE 'Socket errors|Non-2xx' '$T/wrk.out'"
else
  skip "wrk not installed"
fi

# --- visitor auth holds on whichever worker the visitor lands: the gate travels with the route.
HTTP_EXTRA_ARGS=(--basic-auth alice:wonderland)
start_http gated main gated "$OP"
HTTP_EXTRA_ARGS=()
open_ok=0 denied=0 wrong=0
for ((i = 0; i < 16; i++)); do
  code=$(curl -sS -m 10 --cacert "$CA" -o /dev/null -w '%{http_code}' "https://gated.localhost:$EP/hello" 2>>"$T/curl.err")
  [ "$code" = 401 ] && denied=$((denied + 1))
  code=$(curl -sS -m 10 --cacert "$CA" -o /dev/null -w '%{http_code}' -u alice:wrong "https://gated.localhost:$EP/hello" 2>>"$T/curl.err")
  [ "$code" = 401 ] && wrong=$((wrong + 1))
  code=$(curl -sS -m 10 --cacert "$CA" -o /dev/null -w '%{http_code}' -u alice:wonderland "https://gated.localhost:$EP/hello" 2>>"$T/curl.err")
  [ "$code" = 200 ] && open_ok=$((open_ok + 1))
done
check "basic auth on new connections to either worker: no credentials 401 ($denied of 16), a wrong password 401 ($wrong of 16), alice 200 ($open_ok of 16)" \
  [ "$denied" = 16 ] && [ "$wrong" = 16 ] && [ "$open_ok" = 16 ]

# --- TCP: a public tunnel port (bound by the worker holding the agent) and the mesh's connect, whose
# four clients land on either worker (each an agent session of its own) and reach the private service
# on whichever worker its agent is.
start_tcp_server count serve-count
start_tcp pub main pub "${SRV_PORT[count]}"
byte_checks "${TCP_PORT[pub]}" "through a tcp tunnel's public port"
start_tcp svc main svc "${SRV_PORT[count]}" --private
TOKEN_C=$("$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name client --connect svc) || die "wtmesh token failed"
hops_before=$(edge_metric main wtmesh_worker_hops_total)
ok=0
for c in c1 c2 c3 c4; do
  start_connect "$c" main svc "$TOKEN_C"
  timeout 30 python3 -u "$PEER_DIR/tcp_peer.py" halfclose "${CONNECT_PORT[$c]}" 100000 >>"$T/connect.log" 2>&1 &&
    ok=$((ok + 1))
done
hops_after=$(edge_metric main wtmesh_worker_hops_total)
check "wtmesh connect from four agents reaches the private service, 4 of 4 ($ok; $((hops_after - hops_before)) crossed workers)" [ "$ok" = 4 ]

# --- UDP: `wtmesh connect --udp` from six agents, on either worker, to a private udp tunnel: a flow is
# opened on the worker holding the tunnel and its packets cross both ways (edge/worker_directory.h).
start_udp_echo uecho
start_udp uecho main uecho "${SRV_PORT[uecho]}" --private
TOKEN_U=$("$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name uclient --connect uecho) || die "wtmesh token failed"
hops_before=$(edge_metric main wtmesh_worker_hops_total)
ok=0
for c in u1 u2 u3 u4 u5 u6; do
  start_connect_udp "$c" main uecho "$TOKEN_U"
  timeout 20 python3 -u "$PEER_DIR/udp_peer.py" ping "${CONNECT_PORT[$c]}" >>"$T/connect_udp.log" 2>&1 &&
    ok=$((ok + 1))
done
hops_after=$(edge_metric main wtmesh_worker_hops_total)
check "wtmesh connect --udp from six agents reaches the private UDP echo, 6 of 6 ($ok; $((hops_after - hops_before)) crossed workers)" [ "$ok" = 6 ]

# --- The edge's limits are the edge's, not a worker's (the six uclient sessions sit on both workers).
# A seventh session of the subject is refused (--max-sessions-per-subject 6), whichever worker it reaches.
"$WTMESH" connect uecho --udp --listen "127.0.0.1:$(free_port)" --edge "https://127.0.0.1:$EP" --token "$TOKEN_U" \
  --ca "$CA" >"$T/u7.out" 2>"$T/u7.err" </dev/null &
u7=$!
track "$u7"
check "a 7th session of the subject is refused: 429, at most 6 per subject on this edge" \
  wait_for 10 grep -q 'at most 6 sessions per token subject' "$T/u7.err"
kill "$u7" 2>/dev/null
# 60 idle TCP connections from 127.0.0.1 to the HTTPS port, spread by the kernel over both workers'
# listeners: at most 48 are held (--max-connections-per-ip 48), the rest are reset.
held=$(python3 - "$EP" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
socks = []
for _ in range(60):
    try:  # a connection the edge resets at once may fail here already: it is not held
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    except OSError as e:
        print("connect:", e, file=sys.stderr)
time.sleep(1.0)
alive = 0
for s in socks:
    s.setblocking(False)
    try:
        alive += 0 if s.recv(1) == b"" else 1
    except BlockingIOError:
        alive += 1
    except OSError:
        pass
print(alive)
PY
)
check "60 connections from one address over both workers' listeners: $held held (the cap is 48)" \
  bash -c "[ '${held:-0}' -le 48 ] && [ '${held:-0}' -ge 40 ]"

# --- /metrics sums the workers.
sessions=$(edge_metric main wtmesh_agent_sessions)
hops=$(edge_metric main wtmesh_worker_hops_total)
check "/metrics: the 17 agent sessions, summed over the workers ($sessions)" [ "$sessions" = 17 ]
check "/metrics: requests crossed between workers ($hops hops)" [ "${hops:-0}" -gt 0 ]

# The drain's handoff (1 s: the agents have no other edge to move to) and grace (3 s) bound this.
t=$(ms_now)
stop_pid "${EDGE_PID[main]}" 10 TERM
check "SIGTERM: every worker drains and the edge exits 0 (status $STOP_STATUS after $(($(ms_now) - t)) ms)" [ "$STOP_STATUS" = 0 ]

# --- --no-steering: a connection is served where it landed, and its requests cross to the agent's
# worker (20 connections over two workers: all on the agent's one is a chance of 2^-20).
start_edge plain --workers 2 --admin-listen 127.0.0.1:0 --no-steering
EP=${EDGE_PORT[plain]}
CA=${EDGE_STATE[plain]}/ca.pem
start_http plainapp plain app "$OP"
many_gets_app() {
  local ok=0 i code
  for ((i = 0; i < 20; i++)); do
    code=$(curl -sS -m 10 --cacert "$CA" -o "$T/body" -w '%{http_code}' --http1.1 "https://app.localhost:$EP/hello" 2>>"$T/curl.err")
    [ "$code" = 200 ] && [ "$(cat "$T/body")" = "hello from the origin" ] && ok=$((ok + 1))
  done
  check "--no-steering: $ok of 20 HTTPS requests on new connections answered 200 with the exact body" [ "$ok" = 20 ]
}
many_gets_app
steered=$(edge_metric plain wtmesh_worker_connections_steered_total)
hops=$(edge_metric plain wtmesh_worker_hops_total)
check "--no-steering: no connection handed over (${steered:-none}), requests crossed instead (${hops:-0} hops)" \
  bash -c "[ '${steered:-0}' = 0 ] && [ '${hops:-0}' -gt 0 ]"
peer_finish
