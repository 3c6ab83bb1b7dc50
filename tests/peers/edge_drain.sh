#!/usr/bin/env bash
# Graceful drain and a rolling restart of an edge pair, with real clients (docs/protocol.md §3.6).
# Two edges share one state dir (CA, token keys) and one port number: A on 127.0.0.1:P, B on [::1]:P.
# The agent is given both (`--edge https://127.0.0.1:P,https://[::1]:P`) and the public clients both
# addresses of the name (curl --resolve NAME:P:127.0.0.1,::1 : a name with an A and an AAAA record):
# they use the first address while it accepts and fall over to the second when it refuses connections.
#   1. Slow responses in flight on A when A gets SIGTERM (curl HTTP/1.1, curl HTTP/2, gtlsclient
#      HTTP/3): each completes with every event.
#   2. The agent moves to B (its log says so) before A stops taking public work; afterwards a new
#      connection to A's address is refused, and A exits 0 within its grace.
#   3. Rolling restart under load: A is restarted on the same address and goes last in the clients'
#      order (a fresh edge holds no names until an agent registers there: DNS or the load balancer
#      lists it after the others, docs/protocol.md §3.6), then B is drained (the agent moves back to
#      A); 4 curl loops run across both drains: zero failed requests, with the count printed.
# Usage: edge_drain.sh PATH_OF_WTMESH
# shellcheck disable=SC2016  # the bash -c checks expand their arguments themselves
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"
command -v gtlsclient >/dev/null || die "gtlsclient not found (Debian package ngtcp2-client; run scripts/setup.sh)"

T=$PEER_TMP
S=$T/state
mkdir -p "$S"
# Every client here is one address (loopback): the 4 load loops open ~150 TLS connections a second,
# over the per-address handshake rate (64/s after a burst of 256), which would reset some of them.
DRAIN_ARGS=(--drain-grace 20s --drain-handoff 5s --tcp-ports none --udp-ports none --tls-handshakes-per-ip 1000)
# A whole-suite run against multi-worker edges (tests/peers/lib.bash) runs these pairs so too.
[ -n "${WTMESH_PEER_WORKERS:-}" ] && DRAIN_ARGS+=(--workers "$WTMESH_PEER_WORKERS")

# edge_up NAME ADDR PORT: starts an edge on ADDR:PORT with the shared state dir; waits for its line.
edge_up() {
  local name=$1 addr=$2 port=$3 dir=$T/edge-$1 i
  mkdir -p "$dir"
  "$WTMESH" edge --listen "$addr:$port" --domain localhost --state-dir "$S" "${DRAIN_ARGS[@]}" \
    >"$dir/stdout" 2>"$dir/stderr" </dev/null &
  EDGE_PID["$name"]=$!
  EDGE_DIR["$name"]=$dir
  track "${EDGE_PID[$name]}"
  for ((i = 0; i < 100; i++)); do
    grep -q 'wtmesh edge listening on udp://' "$dir/stdout" 2>/dev/null && break
    kill -0 "${EDGE_PID[$name]}" 2>/dev/null || die "edge $name exited: $(tail -3 "$dir/stderr")"
    sleep 0.1
  done
  grep -q 'wtmesh edge listening on udp://' "$dir/stdout" || die "edge $name did not start"
}

edge_up a 127.0.0.1 0
P=$(grep -m1 -oE 'udp://[^ ]+:[0-9]+' "$T/edge-a/stdout" | sed 's/.*://')
edge_up b "[::1]" "$P"
log "edges: a 127.0.0.1:$P, b [::1]:$P"
CA=$S/ca.pem
start_origin main
OP=${ORIGIN_PORT[main]}
TOKEN=$("$WTMESH" token --state-dir "$S" --name app --ttl 10m) || die "wtmesh token failed"
AOUT=$T/agent.out.log
AERR=$T/agent.err.log
"$WTMESH" http "$OP" --edge "https://127.0.0.1:$P,https://[::1]:$P" --token "$TOKEN" --name app --ca "$CA" \
  >"$AOUT" 2>"$AERR" </dev/null &
AGENT=$!
track "$AGENT"
wait_for 20 grep -q '^https://app.localhost' "$AOUT" || die "the agent printed no URL: $(cat "$AERR")"
BASE=https://app.localhost:$P
BOTH=(--resolve "app.localhost:$P:127.0.0.1,::1")
echo "127.0.0.1,::1" >"$T/order"  # the clients' address order (the load loops read it each time)
ONLY_A=(--resolve "app.localhost:$P:127.0.0.1")
code=$(curl -sS -m 5 --cacert "$CA" "${ONLY_A[@]}" -o /dev/null -w '%{http_code}' "$BASE/hello")
check "the tunnel answers on edge a before the drain (got $code)" [ "$code" = 200 ]

# --- load: sequential curls (one connection each) and 3 concurrent keep-alive loops, both addresses.
load_loop() {
  local id=$1 ok=0 bad=0 code
  while [ ! -e "$T/stop-load" ]; do
    # The second address only when the first refuses (no happy-eyeballs race between the families).
    code=$(curl -sS -m 10 --happy-eyeballs-timeout-ms 5000 --cacert "$CA" --resolve "app.localhost:$P:$(cat "$T/order")" -o /dev/null \
      -w '%{http_code}' "$BASE/hello?l=$id" \
      2>>"$T/load-$id.err")
    if [ "$code" = 200 ]; then ok=$((ok + 1)); else
      bad=$((bad + 1))
      echo "$(date +%T.%N) status '$code'" >>"$T/load-$id.err"
    fi
  done
  echo "$ok $bad" >"$T/load-$id.count"
}
for i in 1 2 3 4; do
  load_loop "$i" &
  track $!
done

# --- 1. slow responses in flight when A drains (10 events, 400 ms apart: 4 s).
curl -sS -N -m 30 --http1.1 --cacert "$CA" "${ONLY_A[@]}" -o "$T/sse-h1" "$BASE/sse?n=10&ms=400" 2>"$T/sse-h1.err" &
h1=$!
curl -sS -N -m 30 --http2 --cacert "$CA" "${ONLY_A[@]}" -o "$T/sse-h2" "$BASE/sse?n=10&ms=400" 2>"$T/sse-h2.err" &
h2=$!
timeout -k 5 40 gtlsclient --exit-on-all-streams-close --handshake-timeout=10s --timeout=30s \
  127.0.0.1 "$P" "$BASE/sse?n=10&ms=400" >"$T/sse-h3" 2>&1 </dev/null &
h3=$!
track "$h1"
track "$h2"
track "$h3"
wait_for 5 grep -q 'event 1 ' "$T/sse-h1" "$T/sse-h2"
sleep 0.5
t0=$(now_ms)
kill -TERM "${EDGE_PID[a]}"
wait_for 10 grep -q 'draining: moving to a new session' "$AERR"
check "the agent hears the drain and moves" grep -q 'is draining: moving to a new session' "$AERR"
# Each worker closes its listener at its next look at the edge's counts: wait for all of them.
A_WORKERS=$(grep -Eom1 'workers: [0-9]+' "$T/edge-a/stdout" | grep -Eo '[0-9]+')
stopped_public() { [ "$(grep -c 'the public side takes no new work' "$T/edge-a/stderr")" -ge "${A_WORKERS:-1}" ]; }
wait_for 10 stopped_public
check "edge a stops taking public work once the agent moved (not by the handoff limit)" \
  grep -q 'every agent moved; the public side takes no new work' "$T/edge-a/stderr"
moved_ms=$(($(now_ms) - t0))
code=$(curl -sS -m 5 --cacert "$CA" "${ONLY_A[@]}" -o /dev/null -w '%{http_code}' "$BASE/hello" 2>"$T/refused.err")
rc=$?
check "a new connection to edge a after that is refused (curl exit $rc, code $code)" [ "$rc" = 7 ]
code=$(curl -sS -m 5 --cacert "$CA" "${BOTH[@]}" -o /dev/null -w '%{http_code}' "$BASE/hello")
check "the same request with both addresses is answered by edge b (got $code)" [ "$code" = 200 ]
wait "$h1"
r1=$?
wait "$h2"
r2=$?
wait "$h3"
r3=$?
check "HTTP/1.1 response in flight completes: curl exit $r1, $(grep -c '^data: event' "$T/sse-h1") of 10 events" \
  bash -c '[ "$1" = 0 ] && [ "$(grep -c "^data: event" "$2")" = 10 ]' _ "$r1" "$T/sse-h1"
check "HTTP/2 response in flight completes: curl exit $r2, $(grep -c '^data: event' "$T/sse-h2") of 10 events" \
  bash -c '[ "$1" = 0 ] && [ "$(grep -c "^data: event" "$2")" = 10 ]' _ "$r2" "$T/sse-h2"
check "HTTP/3 response in flight completes: gtlsclient exit $r3, $(grep -c 'data: event' "$T/sse-h3") of 10 events" \
  bash -c '[ "$1" = 0 ] && [ "$(grep -c "data: event 9 " "$2")" -ge 1 ]' _ "$r3" "$T/sse-h3"
# The edge's control stream (server uni 0x3) carries SETTINGS once at offset 0, then only GOAWAY.
check "gtlsclient got more on the edge's HTTP/3 control stream after SETTINGS: the GOAWAY" \
  grep -qE 'frm rx .* STREAM\(0x0[a-f]\) id=0x3 fin=0 offset=[1-9]' "$T/sse-h3"
stop_pid "${EDGE_PID[a]}" 25 CONT
drain_ms=$(($(now_ms) - t0))
check "edge a exits 0 by itself within its grace (status $STOP_STATUS after $drain_ms ms; agent moved after $moved_ms ms)" \
  [ "$STOP_STATUS" = 0 ]
check "edge a says every request finished" grep -q 'edge: drained: every request finished' "$T/edge-a/stderr"

# --- 3. rolling restart: A again on the same address, then B drains; the load goes on.
mv "$T/edge-a" "$T/edge-a1"
echo "::1,127.0.0.1" >"$T/order"
sleep 0.2
edge_up a 127.0.0.1 "$P"
sleep 0.5
kill -TERM "${EDGE_PID[b]}"
stop_pid "${EDGE_PID[b]}" 25 CONT
check "edge b exits 0 after its drain (status $STOP_STATUS)" [ "$STOP_STATUS" = 0 ]
check "the agent moved back to the restarted edge a" bash -c "[ \$(grep -c 'is draining: moving' '$AERR') -ge 2 ]"
code=$(curl -sS -m 5 --cacert "$CA" "${ONLY_A[@]}" -o /dev/null -w '%{http_code}' "$BASE/hello")
check "the restarted edge a serves the name (got $code)" [ "$code" = 200 ]
touch "$T/stop-load"
wait_for 15 bash -c "[ \$(ls '$T'/load-*.count 2>/dev/null | wc -l) = 4 ]"
ok=0
bad=0
for f in "$T"/load-*.count; do
  read -r o b <"$f"
  ok=$((ok + o))
  bad=$((bad + b))
done
log "rolling restart of the pair (2 drains) under load: $ok requests answered 200, $bad failed"
echo "edge_drain: $((ok + bad)) requests across two drains, $bad failed"
check "zero failed requests across the rolling restart ($ok ok, $bad failed; 4 loops)" \
  bash -c '[ "$1" = 0 ] && [ "$2" -gt 40 ]' _ "$bad" "$ok"
peer_finish
