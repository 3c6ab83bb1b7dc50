#!/usr/bin/env bash
# Issue 13 item 5, the last test: a rolling restart of an edge pair under load, with the agent across
# an impaired path (40 ms RTT, 1 % random loss each way; tests/net/netlab.bash). tests/peers/edge_drain.sh
# does the same on loopback; here the tunnel crosses the router.
#   - Edges A (10.77.2.2:P) and B (10.77.2.3:P) in the edge namespace, one state dir (CA, token keys):
#     a pair behind DNS. The agent (agent namespace) has `--edge https://edge.localhost:P,
#     https://edge2.localhost:P` (the two names resolve to A and B there).
#   - Public clients in the edge namespace know both addresses (curl --resolve NAME:P:A,B: a name with
#     two A records; they take the next address when one refuses): 4 loops run all along, curl HTTP/1.1
#     (4 requests per keep-alive connection), curl HTTP/2 (4 streams per connection), curl HTTP/1.1 (one
#     request per connection), gtlsclient HTTP/3 (one request per connection; when no QUIC connection
#     comes up, a draining edge's CONNECTION_REFUSED or an exited edge's silence, the request was never
#     sent and it tries the next address, as a client with two addresses does), and an 8 MiB download
#     over HTTP/2 from A is in flight when A gets SIGTERM (at 1 % loss it takes ~17 s here, up to ~30 s
#     on a busy box: 16 MiB took 35-62 s, past the edges' 60 s grace once).
#   - A drains (the agent moves to B); once A stops taking public work the clients list it last (a
#     load balancer watching /ready, 503 from the signal on, would drop it earlier; until then the
#     clients meet A's refusals and fall over to B, which is what is tested); A exits and starts
#     again on its address (it holds no names until the agent comes back); then B drains (the agent
#     moves back to A) and goes last in turn.
# Checks: zero failed requests (count printed), the download exact (SHA-256), each handoff is one new
# session (no reconnect storm: 3 sessions in all, one per edge process, no reconnect), each drained
# edge exits 0 within its grace; printed: each handoff's time from SIGTERM to the agent's new session
# registered (polled every 20 ms).
# Usage: edge_restart.sh PATH_OF_WTMESH
# shellcheck disable=SC2016  # the bash -c checks expand their arguments themselves
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/../peers/lib.bash"
# shellcheck source=tests/net/netlab.bash
source "$(dirname "$0")/netlab.bash"
peer_init "$@"
netlab_require
command -v gtlsclient >/dev/null || die "gtlsclient not found (Debian package ngtcp2-client; run scripts/setup.sh)"
command -v node >/dev/null || die "node not found"

T=$PEER_TMP
S=$T/state
mkdir -p "$S"
GRACE=60
DRAIN_ARGS=(--drain-grace "${GRACE}s" --drain-handoff 10s --tcp-ports none --udp-ports none)
A_IP=$NL_EDGE_IP
B_IP=10.77.2.3

netlab_up 20
netlab_edge_addr "$B_IP" edge2.localhost
netlab_loss 1

# edge_up NAME ADDR PORT: an edge in $NL_E on ADDR:PORT with the shared state dir; waits for its line.
edge_up() {
  local name=$1 addr=$2 port=$3 dir=$T/edge-$1
  mkdir -p "$dir"
  ip netns exec "$NL_E" "$WTMESH" edge --listen "$addr:$port" --domain localhost --state-dir "$S" \
    "${DRAIN_ARGS[@]}" >"$dir/stdout" 2>"$dir/stderr" </dev/null &
  EDGE_PID[$name]=$!
  EDGE_DIR[$name]=$dir
  track "${EDGE_PID[$name]}"
  wait_for 20 grep -q 'wtmesh edge listening on udp://' "$dir/stdout" ||
    die "edge $name did not start: $(tail -3 "$dir/stderr")"
}
edge_up a "$A_IP" 0
P=$(grep -m1 -oE 'udp://[^ ]+:[0-9]+' "$T/edge-a/stdout" | sed 's/.*://')
edge_up b "$B_IP" "$P"
log "edges: a $A_IP:$P, b $B_IP:$P (one state dir)"
CA=$S/ca.pem
start_listening_origin main ip netns exec "$NL_A" node "$PEER_DIR/origin.mjs" --log "$T/origin.requests"
OP=${ORIGIN_PORT[main]}
"$WTMESH" token --state-dir "$S" --name app --ttl 10m >"$T/token" || die "wtmesh token failed"
AOUT=$T/agent.out.log
AERR=$T/agent.err.log
ip netns exec "$NL_A" "$WTMESH" http "$OP" --edge "https://edge.localhost:$P,https://edge2.localhost:$P" \
  --token-file "$T/token" --name app --ca "$CA" --transport quic >"$AOUT" 2>"$AERR" </dev/null &
AGENT=$!
track "$AGENT"
wait_for 20 grep -q '^https://app.localhost' "$AOUT" || die "the agent printed no URL: $(cat "$AERR")"
BASE=https://app.localhost:$P
ONLY_A=(--resolve "app.localhost:$P:$A_IP")
code=$(nl "$NL_E" curl -sS -m 5 --cacert "$CA" "${ONLY_A[@]}" -o /dev/null -w '%{http_code}' "$BASE/hello")
check "the tunnel answers on edge a across the impaired path before the drain (got $code)" [ "$code" = 200 ]
# set_order A,B: the clients' address order (the loops read it for each connection). Written aside and
# renamed, so that a loop never reads an empty file between the truncation and the write.
set_order() { echo "$1" >"$T/order.new" && mv -f "$T/order.new" "$T/order"; }
set_order "$A_IP,$B_IP"

# --- load --------------------------------------------------------------------------------------------
# curl_loop ID PER_CONN CURL_ARGS...: curl with PER_CONN URLs per run (one connection, reused) until
# $T/stop-load; a request is failed unless it was answered 200. Writes "ok bad" to $T/load-ID.count.
curl_loop() {
  local id=$1 per=$2 ok=0 bad=0 urls=() i codes n
  shift 2
  for ((i = 0; i < per; i++)); do urls+=(-o /dev/null "$BASE/hello?l=$id-$i"); done
  while [ ! -e "$T/stop-load" ]; do
    codes=$(nl "$NL_E" curl -sS -m 15 "$@" --cacert "$CA" --resolve "app.localhost:$P:$(cat "$T/order")" \
      -w '%{http_code}\n' "${urls[@]}" 2>>"$T/load-$id.err.log")
    n=$(grep -cx 200 <<<"$codes")
    ok=$((ok + n))
    if [ "$n" != "$per" ]; then
      bad=$((bad + per - n))
      echo "$(date +%T.%N) codes $(tr '\n' ' ' <<<"$codes")" >>"$T/load-$id.err.log"
    fi
  done
  echo "$ok $bad" >"$T/load-$id.count"
}
# h3_loop ID: gtlsclient, one request per QUIC connection, addresses in the clients' order. As a browser
# does, a request the edge did not process goes to the next address (RFC 9114 §5.2): the connection
# was refused (a draining edge's CONNECTION_REFUSED before any request), or the edge's GOAWAY came
# first (a connection made just before the edge stopped taking work): gtlsclient then does not send
# the request ("submit_request: ERR_CONN_CLOSING"), or the edge resets it with H3_REQUEST_REJECTED.
h3_loop() {
  local id=$1 ok=0 bad=0 addr out done_
  while [ ! -e "$T/stop-load" ]; do
    done_=0
    for addr in $(tr ',' ' ' <"$T/order"); do
      out=$(nl "$NL_E" timeout -k 2 20 gtlsclient --exit-on-all-streams-close --handshake-timeout=3s \
        --timeout=15s "$addr" "$P" "$BASE/hello?l=$id" 2>&1 </dev/null)
      if grep -q ':status: 200\]' <<<"$out"; then
        ok=$((ok + 1))
        done_=1
        break
      fi
      # No handshake: refused (a draining edge's CONNECTION_REFUSED) or no answer (an edge that
      # exited): the request was never sent; a client tries the next address.
      if ! grep -q 'QUIC handshake has completed' <<<"$out"; then
        echo "$(date +%T.%N) $addr: no QUIC connection ($(grep -om1 'error_code=[A-Z_]*' <<<"$out" || echo no answer)): next address" \
          >>"$T/load-$id.refused"
        continue
      fi
      if grep -qE 'submit_request: ERR_CONN_CLOSING|RESET_STREAM\(0x04\) id=0x0 app_error_code=[^ ]*\(0x10b\)' <<<"$out"; then
        echo "$(date +%T.%N) $addr: GOAWAY before the request ($(grep -oEm1 'ERR_CONN_CLOSING|0x10b' <<<"$out")): next address" \
          >>"$T/load-$id.refused"
        continue
      fi
      break
    done
    if [ "$done_" = 0 ]; then
      bad=$((bad + 1))
      { echo "$(date +%T.%N) failed on $addr:"; tail -20 <<<"$out"; } >>"$T/load-$id.err.log"
    fi
  done
  echo "$ok $bad" >"$T/load-$id.count"
}
curl_loop h1ka 4 --http1.1 &
track $!
curl_loop h2 4 --http2 &
track $!
curl_loop h1 1 --http1.1 &
track $!
h3_loop h3 &
track $!
LOOPS=4

# --- an 8 MiB download from edge a, in flight when a gets SIGTERM -----------------------------------
SIZE=$((8 << 20))
nl "$NL_E" curl -sS -m $((GRACE + 20)) --http2 --cacert "$CA" "${ONLY_A[@]}" -o "$T/down.bin" "$BASE/bytes?n=$SIZE" \
  2>"$T/down.err" &
DL=$!
DL_T0=$(ms_now)
track "$DL"
wait_for 20 bash -c '[ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -ge $((1 << 20)) ]' _ "$T/down.bin" ||
  die "the download did not reach 1 MiB in 20 s"
sleep 1 # the loops have run a while

# drain NAME: SIGTERM to edge NAME; prints the ms from the signal until the agent's new session
# registered the name (its "registered again" line count goes up), sets HANDOFF_MS (-1: not seen in 20 s).
drain() {
  local name=$1 before t0 end
  before=$(grep -c 'registered again' "$AERR")
  t0=$(ms_now)
  kill -TERM "${EDGE_PID[$name]}"
  DRAIN_T0=$t0
  HANDOFF_MS=-1
  end=$((t0 + 20000))
  while [ "$(ms_now)" -lt "$end" ]; do
    if [ "$(grep -c 'registered again' "$AERR")" -gt "$before" ]; then
      HANDOFF_MS=$(($(ms_now) - t0))
      break
    fi
    sleep 0.02
  done
}
# exit_check NAME: waits (grace + 5 s) for edge NAME to exit by itself; checks status 0 within the grace.
exit_check() {
  local name=$1
  stop_pid "${EDGE_PID[$name]}" $((GRACE + 5)) CONT
  local secs
  secs=$(awk -v d=$(($(ms_now) - DRAIN_T0)) 'BEGIN {printf "%.1f", d / 1000}')
  check "edge $name exits 0 by itself within its ${GRACE} s grace (status $STOP_STATUS after $secs s)" \
    bash -c '[ "$1" = 0 ] && awk -v s="$2" -v g="$3" "BEGIN {exit !(s < g)}"' _ "$STOP_STATUS" "$secs" "$GRACE"
  check "edge $name says every request finished" grep -q 'edge: drained: every request finished' "${EDGE_DIR[$name]}/stderr"
}

# --- 1. A drains with the load and the download on it -----------------------------------------------
drain a
H1=$HANDOFF_MS
log "handoff 1 (a -> b): the agent's new session registered ${H1} ms after SIGTERM"
check "handoff 1: the agent moved to edge b (registered there ${H1} ms after a's SIGTERM)" [ "$H1" -ge 0 ]
check "the agent said a is draining and moved" grep -q 'is draining: moving to a new session' "$AERR"
check "edge b accepted the agent's session" grep -q 'session accepted for' "$T/edge-b/stderr"
# Once a stops taking public work the clients list it last, as DNS or a load balancer watching /ready
# would (docs/protocol.md §3.6): the restarted a holds no names until the agent comes back.
wait_for 15 grep -q 'the public side takes no new work' "$T/edge-a/stderr"
check "edge a stops taking public work once the agent moved (not by the handoff limit)" \
  grep -q 'every agent moved; the public side takes no new work' "$T/edge-a/stderr"
set_order "$B_IP,$A_IP"
wait "$DL"
rc=$?
DL_MS=$(($(ms_now) - DL_T0))
log "the $((SIZE >> 20)) MiB download took $DL_MS ms (curl exit $rc)"
nl "$NL_E" curl -sS -m 10 --cacert "$CA" --resolve "app.localhost:$P:$B_IP" -o "$T/stats.json" "$BASE/stats"
want=$(json_field "$T/stats.json" lastSent.sha256)
got=$(sha256sum "$T/down.bin" | cut -d' ' -f1)
check "the $((SIZE >> 20)) MiB download from a, in flight across a's drain, is exact (curl $rc, $(stat -c %s "$T/down.bin") bytes in $DL_MS ms)" \
  bash -c '[ "$1" = 0 ] && [ -n "$2" ] && [ "$2" = "$3" ]' _ "$rc" "$want" "$got"
exit_check a

# --- 2. A restarts (last in the clients' order), then B drains: the agent moves back to A -------------
mv "$T/edge-a" "$T/edge-a1"
EDGE_DIR[a1]=$T/edge-a1
edge_up a "$A_IP" "$P"
sleep 1
drain b
H2=$HANDOFF_MS
log "handoff 2 (b -> a): the agent's new session registered ${H2} ms after SIGTERM"
check "handoff 2: the agent moved back to the restarted edge a (registered there ${H2} ms after b's SIGTERM)" \
  [ "$H2" -ge 0 ]
check "the restarted edge a accepted the agent's session" grep -q 'session accepted for' "$T/edge-a/stderr"
wait_for 15 grep -q 'the public side takes no new work' "$T/edge-b/stderr"
check "edge b stops taking public work once the agent moved" \
  grep -q 'every agent moved; the public side takes no new work' "$T/edge-b/stderr"
set_order "$A_IP,$B_IP"
exit_check b
code=$(nl "$NL_E" curl -sS -m 5 --cacert "$CA" "${ONLY_A[@]}" -o /dev/null -w '%{http_code}' "$BASE/hello")
check "the restarted edge a serves the name (got $code)" [ "$code" = 200 ]
sleep 1 # the loops run on edge a alone for a moment

# --- the counts ----------------------------------------------------------------------------------------
touch "$T/stop-load"
wait_for 30 bash -c '[ "$(ls "$1"/load-*.count 2>/dev/null | wc -l)" = "$2" ]' _ "$T" "$LOOPS" ||
  fail "the load loops did not stop within 30 s"
ok=0
bad=0
per=""
for f in "$T"/load-*.count; do
  read -r o b <"$f"
  ok=$((ok + o))
  bad=$((bad + b))
  per+=" $(basename "$f" .count | sed 's/^load-//') $o/$b"
done
refused=$(cat "$T"/load-*.refused 2>/dev/null | wc -l)
log "rolling restart across 40 ms RTT / 1 % loss: $ok requests answered 200, $bad failed (ok/failed per loop:$per; HTTP/3 requests a draining edge refused or did not process, sent to the next address: $refused)"
echo "edge_restart: $((ok + bad)) requests across two drains, $bad failed; handoffs ${H1} ms and ${H2} ms (SIGTERM -> new session registered)"
check "zero failed requests across the rolling restart ($ok ok, $bad failed; per loop ok/failed:$per)" \
  bash -c '[ "$1" = 0 ] && [ "$2" -gt 40 ]' _ "$bad" "$ok"
# A failed request's client output first: the logs after the checks are long, and CI shows a part.
if [ "$bad" != 0 ]; then for f in "$T"/load-*.err.log; do show_log "$(basename "$f")" "$f" 40; done; fi
for f in "$T"/load-*.count; do
  read -r o b <"$f"
  check "loop $(basename "$f" .count | sed 's/^load-//') ran requests all along ($o)" [ "$o" -ge 5 ]
done

# --- no reconnect storm --------------------------------------------------------------------------------
connected=$(grep -c 'connected to the edge' "$AERR")
check "the agent opened 3 sessions in all: the first and one per handoff (got $connected)" [ "$connected" = 3 ]
check "the agent never reconnected (no 'reconnecting in')" bash -c '! grep -q "reconnecting in" "$1"' _ "$AERR"
for e in a1 b a; do
  n=$(grep -c 'session accepted for' "$T/edge-$e/stderr")
  check "edge $e accepted exactly one agent session (got $n)" [ "$n" = 1 ]
done
[ "$PEER_FAILED" = 0 ] || netlab_counters
peer_finish
