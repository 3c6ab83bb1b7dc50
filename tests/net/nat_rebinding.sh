#!/usr/bin/env bash
# Issue 13 items 3 and 5 (connection migration): the agent sits behind a NAT (the router of
# tests/net/netlab.bash rewrites its address to 10.77.3.100) and the NAT rebinds in the middle of a
# transfer: its mapping is dropped and the agent's next packets reach the edge from 10.77.3.101 and a
# new port, answers to the old mapping are lost. 40 ms RTT, QUIC. The QUIC connection must survive
# (the edge routes by connection ID and validates the new path), so:
#   (a) a 32 MiB download through the tunnel, rebinding twice while it runs: SHA-256 exact;
#   (b) a 16 MiB upload, rebinding while it runs: the origin's SHA-256 of what it got is exact;
#   (c) no reconnect: the agent never reports its session ending, the edge opened one session;
#   (d) the stall: the longest gap in the download's progress around a rebinding (printed; bounded by
#       5 s here, the figure is for bench/net);
#   (e) rebindings while the agent is silent (blocked on flow control under a slow reader, or idle):
#       its 1 s keep-alive PING shows the edge the new address before the edge's 2 s unresponsive
#       floor, so the transfer is exact and the next request is served.
# With WTMESH_NAT_WORKERS=N (tests/net/nat_rebinding_workers.sh) the edge runs N workers on one address
# (issue 15 item 3): a rebound agent's packets then reach any worker's socket and are handed to the one
# that owns its connection; (f) the edge's /metrics counts those hand-overs.
# Usage: nat_rebinding.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/../peers/lib.bash"
# shellcheck source=tests/net/netlab.bash
source "$(dirname "$0")/netlab.bash"
peer_init "$@"
netlab_require

netlab_up 20
netlab_nat on
WORKERS=${WTMESH_NAT_WORKERS:-1}
if [ "$WORKERS" -gt 1 ]; then
  nl_start_main --workers "$WORKERS" --admin-listen 127.0.0.1:0
else
  nl_start_main
fi
nl_start_http app main app "$OP" --transport quic
BASE=https://app.localhost:$EP
agent_ended() { grep -c "the session to the edge ended" "${AGENT_ERR[app]}"; }
check "the tunnel serves through the NAT" \
  [ "$(nl_curl -s -o /dev/null -m 5 --cacert "$CA" -w '%{http_code}' "$BASE/hello")" = 200 ]

# --- (a) download across two rebindings -----------------------------------------------------------
size=$((32 << 20))
# Progress: the file's size sampled every 100 ms.
nl_curl -sS -m 90 --cacert "$CA" -o "$PEER_TMP/down.bin" "$BASE/bytes?n=$size" 2>"$PEER_TMP/down.err" &
dl=$!
track "$dl"
(
  while kill -0 "$dl" 2>/dev/null; do
    printf '%s %s\n' "$(ms_now)" "$(stat -c %s "$PEER_TMP/down.bin" 2>/dev/null || echo 0)"
    sleep 0.1
  done
) >"$PEER_TMP/progress.txt" &
sampler=$!
track "$sampler"
wait_for 20 bash -c "[ \$(stat -c %s '$PEER_TMP/down.bin' 2>/dev/null || echo 0) -gt $((4 << 20)) ]"
rebind1=$(ms_now)
netlab_rebind
wait_for 30 bash -c "[ \$(stat -c %s '$PEER_TMP/down.bin' 2>/dev/null || echo 0) -gt $((16 << 20)) ]"
# The rebinding is real: the router's only mapping of the agent's flow is to the new address.
mapped=$(nl "$NL_M" conntrack -L -p udp -s "$NL_AGENT_IP" 2>/dev/null)
check "the NAT maps the agent's QUIC flow to $NL_NAT_IP now" grep -q "dst=$NL_NAT_IP " <<<"$mapped"
netlab_rebind
wait "$dl"
rc=$?
stop_pid "$sampler" 2
nl_curl -sS -m 5 --cacert "$CA" -o "$PEER_TMP/stats.json" "$BASE/stats"
want=$(json_field "$PEER_TMP/stats.json" lastSent.sha256)
got=$(sha256sum "$PEER_TMP/down.bin" | cut -d' ' -f1)
check "(a) 32 MiB download across two NAT rebindings is exact (curl $rc, $(stat -c %s "$PEER_TMP/down.bin") bytes)" \
  eval '[[ "$rc" = 0 && -n "$want" && "$got" = "$want" ]]'
# (d) the longest time the file did not grow, after the first rebinding.
stall=$(awk -v t="$rebind1" '$1 >= t - 100 { if (seen && $2 == last) { if ($1 - since > m) m = $1 - since } else { since = $1 }
  last = $2; seen = 1 } END { print m + 0 }' "$PEER_TMP/progress.txt")
log "NAT rebinding: longest stall of the download after the first rebinding: ${stall} ms"
check "(d) the download stalled at most 5 s around a rebinding (${stall} ms)" [ "$stall" -le 5000 ]

# --- (e) rebinding while the agent is silent ------------------------------------------------------
# A 32 MiB download the public client reads at 4 MB/s: after the first ~16 MiB fill the edge's
# windows the agent spends its time blocked on the edge's flow-control credit, sending nothing, so the edge's MAX_DATA goes to a mapping that is gone
# until the agent's keep-alive PING (1 s) shows the new address. Three rebindings 1.5 s apart, each to
# a new address. (Not back to the address of a few seconds before: ngtcp2 1.11 then keeps sending
# to the newer, dead one; see docs/notes/netlab-progress.md.)
slow=$((32 << 20))
nl_curl -sS -m 60 --limit-rate 4M --cacert "$CA" -o "$PEER_TMP/slow.bin" "$BASE/bytes?n=$slow" \
  2>"$PEER_TMP/slow.err" &
sl=$!
track "$sl"
for i in 1 2 3; do
  sleep 1.5
  netlab_rebind
done
wait "$sl"
rc=$?
nl_curl -sS -m 5 --cacert "$CA" -o "$PEER_TMP/stats.json" "$BASE/stats"
want=$(json_field "$PEER_TMP/stats.json" lastSent.sha256)
got=$(sha256sum "$PEER_TMP/slow.bin" | cut -d' ' -f1)
check "(e) a 32 MiB download read at 4 MB/s (the agent mostly blocked and silent) across three rebindings is exact (curl $rc)" \
  eval '[[ "$rc" = 0 && -n "$want" && "$got" = "$want" ]]'
# Idle: rebinding with nothing under way, then a request from the public side.
sleep 1
netlab_rebind
t=$(ms_now)
code=$(nl_curl -s -o /dev/null -m 10 --cacert "$CA" -w '%{http_code}' "$BASE/hello")
log "idle rebinding: the next request answered $code in $(($(ms_now) - t)) ms"
check "(e) rebinding while idle: the next public request is served ($code in $(($(ms_now) - t)) ms)" [ "$code" = 200 ]

# --- (b) upload across a rebinding ----------------------------------------------------------------
head -c $((16 << 20)) /dev/urandom >"$PEER_TMP/up.bin"
upwant=$(sha256sum "$PEER_TMP/up.bin" | cut -d' ' -f1)
nl_curl -sS -m 90 --cacert "$CA" -T "$PEER_TMP/up.bin" -o "$PEER_TMP/up.json" "$BASE/upload" 2>"$PEER_TMP/up.err" &
ul=$!
track "$ul"
sleep 1.5
netlab_rebind
wait "$ul"
rc=$?
upgot=$(json_field "$PEER_TMP/up.json" sha256)
check "(b) 16 MiB upload across a NAT rebinding is exact (curl $rc, origin got $(json_field "$PEER_TMP/up.json" bytes) bytes)" \
  eval '[[ "$rc" = 0 && "$upgot" = "$upwant" ]]'

# --- (c) no reconnect -----------------------------------------------------------------------------
check "(c) the agent's session never ended ($(agent_ended) 'session to the edge ended')" [ "$(agent_ended)" = 0 ]
check "(c) the agent never registered again" bash -c "! grep -q 'registered again' '${AGENT_ERR[app]}'"
# --- (f) with workers: the rebindings reached other workers' sockets and were handed over ----------
if [ "$WORKERS" -gt 1 ]; then
  # Seven rebindings, each to a socket the kernel picks by the new address: all on the owner's has
  # probability (1/WORKERS)^7.
  ap=$(grep -m1 -oE 'admin: http://127\.0\.0\.1:[0-9]+' "${EDGE_DIR[main]}/stdout" | grep -oE '[0-9]+$')
  fwd=$(nl "$NL_E" curl -s -m 5 "http://127.0.0.1:$ap/metrics" | awk '$1 == "wtmesh_worker_packets_forwarded_total" {print $2}')
  check "(f) $WORKERS workers: packets of the rebound agent were handed to the worker owning its connection (${fwd:-none})" \
    [ "${fwd:-0}" -gt 0 ]
fi
[ "$PEER_FAILED" = 0 ] || netlab_counters
peer_finish
