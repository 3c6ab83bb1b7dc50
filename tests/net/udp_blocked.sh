#!/usr/bin/env bash
# Issue 13 items 1 and 5: a network that blocks UDP (so QUIC), for real: the agent and the edge in two
# network namespaces with a router between them (tests/net/netlab.bash) whose nftables rules drop every
# UDP packet, 40 ms RTT (20 ms each way, netlab_delay). `wtmesh http` with the default --transport auto
# races QUIC against WebTransport over HTTP/2 and must:
#   (a) serve the public URL within 3 s of its start (curl from the edge's side polls until 200);
#   (b) say it uses HTTP/2;
#   (c) move back to QUIC once the router lets UDP through again (the QUIC probe, every 1 s here via
#       WTMESH_QUIC_PROBE_INTERVAL_MS), while a 16 MiB download runs: the download's SHA-256 is exact
#       and requests made during and after the move all answer 200.
# Usage: udp_blocked.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/../peers/lib.bash"
# shellcheck source=tests/net/netlab.bash
source "$(dirname "$0")/netlab.bash"
peer_init "$@"
netlab_require

netlab_up 20
netlab_block_udp on
nl_start_main

# --- (a) serving within 3 s of the agent's start -----------------------------------------------------
t0=$(ms_now)
WTMESH_QUIC_PROBE_INTERVAL_MS=1000 nl_start_http app main app "$OP"
served_ms=""
while [ $(($(ms_now) - t0)) -lt 10000 ]; do
  code=$(nl_curl -s -o /dev/null -m 2 --cacert "$CA" -w '%{http_code}' "https://app.localhost:$EP/hello")
  if [ "$code" = 200 ]; then
    served_ms=$(($(ms_now) - t0))
    break
  fi
  sleep 0.05
done
log "UDP blocked: the tunnel served ${served_ms:-never} ms after the agent started"
check "UDP blocked: the tunnel serves within 3 s of the agent's start (took ${served_ms:-never} ms)" \
  eval '[[ -n "$served_ms" && "${served_ms:-99999}" -le 3000 ]]'
check "(b) the agent says it is on HTTP/2" grep -qiE 'HTTP/2|over h2' "${AGENT_OUT[app]}" "${AGENT_ERR[app]}"

# --- (c) UDP comes back: the agent moves to QUIC under a running download ----------------------------
size=$((16 << 20))
nl_curl -sS -m 60 --cacert "$CA" -o "$PEER_TMP/download.bin" "https://app.localhost:$EP/bytes?n=$size" \
  2>"$PEER_TMP/download.err" &
dl=$!
track "$dl"
sleep 0.3
netlab_block_udp off
moved=""
for ((i = 0; i < 100; i++)); do
  if grep -q "moving to a new session over QUIC" "${AGENT_OUT[app]}" "${AGENT_ERR[app]}"; then
    moved=yes
    break
  fi
  sleep 0.1
done
check "(c) UDP open again: the agent moves to QUIC within 10 s" [ "$moved" = yes ]
bad=0
for i in $(seq 1 20); do
  code=$(nl_curl -s -o /dev/null -m 5 --cacert "$CA" -w '%{http_code}' "https://app.localhost:$EP/hello")
  [ "$code" = 200 ] || bad=$((bad + 1))
  sleep 0.05
done
check "(c) 20 requests during and after the move all answer 200 ($bad did not)" [ "$bad" = 0 ]
wait "$dl"
rc=$?
nl_curl -sS -m 5 --cacert "$CA" -o "$PEER_TMP/stats.json" "https://app.localhost:$EP/stats"
want=$(json_field "$PEER_TMP/stats.json" lastSent.sha256)
got=$(sha256sum "$PEER_TMP/download.bin" | cut -d' ' -f1)
check "(c) the 16 MiB download that ran across the move is exact (curl status $rc, $(stat -c %s "$PEER_TMP/download.bin" 2>/dev/null) bytes, sha256 ${got:0:16}... want ${want:0:16}...)" \
  eval '[[ "$rc" = 0 && -n "$want" && "$got" = "$want" ]]'
peer_finish
