#!/usr/bin/env bash
# Issue 13 item 5: transfers through the tunnel on a path that drops 10 % of the packets in each
# direction at random (nftables on the router of tests/net/netlab.bash), 10 ms RTT. Over QUIC and over
# the HTTP/2 fallback (--transport h2, TCP):
#   (a) the session comes up and the tunnel serves despite the loss (handshakes retransmitted);
#   (b) a 4 MiB download and a 4 MiB upload through the tunnel are exact (SHA-256), each within 60 s;
#   the throughput of each is printed (the loss, not the machine, limits it).
# Usage: lossy_transfer.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/../peers/lib.bash"
# shellcheck source=tests/net/netlab.bash
source "$(dirname "$0")/netlab.bash"
peer_init "$@"
netlab_require

netlab_up 5
nl_start_main
BASE=https://app.localhost:$EP
size=$((4 << 20))
head -c "$size" /dev/urandom >"$PEER_TMP/up.bin"
upwant=$(sha256sum "$PEER_TMP/up.bin" | cut -d' ' -f1)
netlab_loss 10

for transport in quic h2; do
  nl_start_http "$transport" main app "$OP" --transport "$transport"
  served() { [ "$(nl_curl -s -o /dev/null -m 5 --cacert "$CA" -w '%{http_code}' "$BASE/hello")" = 200 ]; }
  check "$transport, 10 % loss: the tunnel serves" wait_for 20 served

  t=$(ms_now)
  nl_curl -sS -m 60 --retry 0 --cacert "$CA" -o "$PEER_TMP/down-$transport.bin" "$BASE/bytes?n=$size" \
    2>"$PEER_TMP/down-$transport.err"
  rc=$?
  ms=$(($(ms_now) - t))
  nl_curl -sS -m 10 --cacert "$CA" -o "$PEER_TMP/stats.json" "$BASE/stats"
  want=$(json_field "$PEER_TMP/stats.json" lastSent.sha256)
  got=$(sha256sum "$PEER_TMP/down-$transport.bin" | cut -d' ' -f1)
  log "$transport, 10 % loss: 4 MiB download in $ms ms ($(awk -v b="$size" -v t="$ms" 'BEGIN {printf "%.2f", b / t / 1000}') MB/s)"
  check "$transport, 10 % loss: 4 MiB download exact (curl $rc, $ms ms)" \
    eval '[[ "$rc" = 0 && -n "$want" && "$got" = "$want" ]]'

  t=$(ms_now)
  nl_curl -sS -m 60 --cacert "$CA" -T "$PEER_TMP/up.bin" -o "$PEER_TMP/up-$transport.json" "$BASE/upload" \
    2>"$PEER_TMP/up-$transport.err"
  rc=$?
  ms=$(($(ms_now) - t))
  log "$transport, 10 % loss: 4 MiB upload in $ms ms ($(awk -v b="$size" -v t="$ms" 'BEGIN {printf "%.2f", b / t / 1000}') MB/s)"
  check "$transport, 10 % loss: 4 MiB upload exact (curl $rc, $ms ms)" \
    eval '[[ "$rc" = 0 && "$(json_field "$PEER_TMP/up-$transport.json" sha256)" = "$upwant" ]]'
  stop_pid "${AGENT_PID[$transport]}" 5
done
[ "$PEER_FAILED" = 0 ] || netlab_counters
peer_finish
