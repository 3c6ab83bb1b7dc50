#!/usr/bin/env bash
# bench/session_ready.sh: how long until an agent's session is ready (issue 13 item 6b), on the
# network of tests/net/netlab.bash (agent | router | edge namespaces; root only) at RTT 2 x
# --delay-ms (default 40 ms), no loss. The agent logs "session ready N ms after the dial started"
# (from the start of its dial to the edge's 200 for its session request):
#   fresh  a new `wtmesh http` process, for QUIC (--transport quic) and for WebTransport over
#          HTTP/2 (--transport h2): full handshakes (TCP + TLS 1.3 + CONNECT for HTTP/2);
#   resumed  the same QUIC agent after its connection died (SIGSTOP while a request waits for it:
#          the edge gives up after its 2 s unresponsive floor; SIGCONT: its next packet meets a
#          stateless reset and it dials again): with the edge's session ticket, the session request
#          goes in 0-RTT. HTTP/2 has no 0-RTT here (TLS early data over TCP is not offered): its
#          reconnect costs what a fresh dial costs.
# Printed: each sample, the median per row, and each median in round trips.
#   sudo bash bench/session_ready.sh [--wtmesh PATH] [--delay-ms D] [--samples N]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
wtmesh=$root/build/wtmesh
delay=20
samples=5
while [ $# -gt 0 ]; do
  case $1 in
    --wtmesh) wtmesh=$2; shift 2 ;;
    --delay-ms) delay=$2; shift 2 ;;
    --samples) samples=$2; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench/session_ready.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
PEER_NAME=bench-ready
# shellcheck source=tests/peers/lib.bash
source "$root/tests/peers/lib.bash"
# shellcheck source=tests/net/netlab.bash
source "$root/tests/net/netlab.bash"
peer_init "$wtmesh"
netlab_require
netlab_up "$delay"
nl_start_main
rtt=$((2 * delay))

# ready_ms AGENT K: the K-th "session ready" figure in the agent's log (empty until there).
ready_ms() {
  grep -oE 'session ready [0-9]+ ms' "${AGENT_ERR[$1]}" | sed -n "${2}p" | grep -oE '[0-9]+'
}
median() { sort -n | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else print v[int((NR + 1) / 2)]}'; }

declare -A rows=()
for t in quic h2; do
  for ((i = 1; i <= samples; i++)); do
    nl_start_http "f$t$i" main "f$t$i" "$OP" --transport "$t"
    wait_for 10 bash -c "[ -n \"\$(grep -oE 'session ready [0-9]+' '${AGENT_ERR[f$t$i]}')\" ]" ||
      die "no session-ready line from the $t agent: $(tail -3 "${AGENT_ERR[f$t$i]}")"
    rows[fresh-$t]+="$(ready_ms "f$t$i" 1) "
    stop_pid "${AGENT_PID[f$t$i]}" 5
  done
done

nl_start_http r main r "$OP" --transport quic
for ((i = 1; i <= samples; i++)); do
  kill -STOP "${AGENT_PID[r]}"
  nl_curl -s -o /dev/null --max-time 8 --cacert "$CA" "https://r.localhost:$EP/hello" &
  sleep 3.5
  kill -CONT "${AGENT_PID[r]}"
  wait_for 15 bash -c "[ \$(grep -c 'session ready' '${AGENT_ERR[r]}') -ge $((i + 1)) ]" ||
    die "the agent did not come back: $(tail -5 "${AGENT_ERR[r]}")"
  line=$(grep 'session ready' "${AGENT_ERR[r]}" | sed -n "$((i + 1))p")
  case $line in
    *0-RTT*) rows[resumed-quic]+="$(ready_ms r $((i + 1))) " ;;
    *) rows[resumed-quic-full]+="$(ready_ms r $((i + 1))) " ;;
  esac
done

printf '\nsession ready at %d ms RTT (ms from the dial to the session accepted; %d samples each)\n' "$rtt" "$samples"
printf '%-28s %-36s %8s %8s\n' row samples median RTTs
for r in fresh-quic fresh-h2 resumed-quic resumed-quic-full; do
  [ -n "${rows[$r]:-}" ] || continue
  m=$(tr ' ' '\n' <<<"${rows[$r]}" | grep . | median)
  printf '%-28s %-36s %8s %8s\n' "$r" "${rows[$r]}" "$m" "$(awk -v m="$m" -v r="$rtt" 'BEGIN {printf "%.2f", m / r}')"
done
peer_finish
