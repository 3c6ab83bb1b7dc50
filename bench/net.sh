#!/usr/bin/env bash
# bench/net.sh: what QUIC buys on a bad path (issue 13 item 6a), measured side by side in one run on
# the network of tests/net/netlab.bash (agent | router | edge namespaces; root only). The path between
# the agent's side and the edge's side has RTT 2 x --delay-ms (default 40 ms) and --loss percent of
# random loss each way (default 2). Three tunnels to the same origin (tests/peers/origin.mjs, in the
# agent's namespace), each reached from the edge's namespace:
#   quic   public HTTPS -> wtmesh edge -> QUIC/WebTransport -> wtmesh http --transport quic -> origin
#   h2     the same with --transport h2 (WebTransport over HTTP/2 on one TCP connection)
#   ssh    curl -> sshd's -R listener -> one SSH connection (TCP) -> ssh -N -R client -> origin
# For each: --requests small GETs (/hello, sequential, one curl each) on an idle tunnel, then the same
# while a bulk download (/bytes) runs through the same tunnel; p50 and p99 of their total time. A lost
# packet stalls every stream of one TCP connection until it is repaired (head-of-line blocking); QUIC
# stalls only the stream it belonged to. Printed: the table, and each TCP tunnel's loaded p99 over
# QUIC's (issue 13's goal: QUIC's loaded p99 <= 0.33 x the TCP tunnels').
# Then the stall during a NAT rebinding (issue 13 item 6c; --rebind N, 0 skips it): the router NATs the
# agent (netlab_nat) from the start; a long download runs through the quic tunnel at --rebind-loss
# (default 0) and the receiver (a reader behind curl in the edge's namespace) timestamps every read;
# every 2 x --window seconds the NAT rebinds (netlab_rebind: new address and port, old mapping gone).
# Printed: the longest gap in delivery in each --window s after a rebinding (p50 and max over N) beside
# the longest gap in the quiet windows between them (the same download's baseline jitter). For the
# HTTP/2 fallback a TCP connection cannot follow a rebinding: per rebinding (--rebind-h2 N, default 2,
# ~35 s each), what happened to the download under way, and the time from the rebinding until the
# tunnel answers again (the agent's new session).
#   sudo bash bench/net.sh [--wtmesh PATH] [--delay-ms D] [--loss P] [--requests N] [--rebind N]
#                          [--rebind-h2 N] [--rebind-loss P] [--window S] [--no-hol]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
wtmesh=$root/build/wtmesh
delay=20
loss=2
requests=100
rebinds=5
rebinds_h2=2
rebind_loss=0
window=2
hol=1
while [ $# -gt 0 ]; do
  case $1 in
    --wtmesh) wtmesh=$2; shift 2 ;;
    --delay-ms) delay=$2; shift 2 ;;
    --loss) loss=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --rebind) rebinds=$2; shift 2 ;;
    --rebind-h2) rebinds_h2=$2; shift 2 ;;
    --rebind-loss) rebind_loss=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --no-hol) hol=0; shift ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "bench/net.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
PEER_NAME=bench-net
# shellcheck source=tests/peers/lib.bash
source "$root/tests/peers/lib.bash"
# shellcheck source=tests/net/netlab.bash
source "$root/tests/net/netlab.bash"
peer_init "$wtmesh"
netlab_require
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || die "sshd not found (openssh-server)"

netlab_up "$delay"
# The agents sit behind the router's NAT from the start (the rebinding section moves the mapping; the
# head-of-line rows do not notice a NAT).
netlab_nat on
nl_start_main
nl_start_http quic main quic "$OP" --transport quic
nl_start_http h2 main h2 "$OP" --transport h2

if [ "$hol" = 1 ]; then
  # sshd on the edge's side, ssh -R from the agent's side (as `ssh -R` tunnels are used).
  ssh_dir=$PEER_TMP/ssh
  mkdir -p "$ssh_dir" && chmod 700 "$ssh_dir"
  [ -d /run/sshd ] || { mkdir -m 0755 /run/sshd && created_privsep=1; }
  ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/client_key"
  cp "$ssh_dir/client_key.pub" "$ssh_dir/authorized_keys"
  sshd_port=2222
  fwd_port=18080
  cat >"$ssh_dir/sshd_config" <<EOF
Port $sshd_port
ListenAddress $NL_EDGE_IP
HostKey $ssh_dir/host_key
AuthorizedKeysFile $ssh_dir/authorized_keys
PidFile $ssh_dir/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
UseDNS no
LogLevel ERROR
EOF
  ip netns exec "$NL_E" /usr/sbin/sshd -D -e -f "$ssh_dir/sshd_config" 2>"$PEER_TMP/sshd.log" &
  track $!
  sleep 0.5
  ip netns exec "$NL_A" ssh -N -F /dev/null -i "$ssh_dir/client_key" -p "$sshd_port" -c aes128-gcm@openssh.com \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o ExitOnForwardFailure=yes \
    -o Compression=no -R "127.0.0.1:$fwd_port:127.0.0.1:$OP" "root@$NL_EDGE_IP" \
    2>"$PEER_TMP/ssh.log" &
  track $!
  ssh_up() { nl "$NL_E" curl -s -o /dev/null -m 2 "http://127.0.0.1:$fwd_port/hello"; }
  wait_for 15 ssh_up || die "ssh -R did not come up: $(cat "$PEER_TMP/ssh.log" "$PEER_TMP/sshd.log")"

fi

url_of() {
  case $1 in
    quic) echo "https://quic.localhost:$EP" ;;
    h2) echo "https://h2.localhost:$EP" ;;
    ssh) echo "http://127.0.0.1:$fwd_port" ;;
  esac
}
# via PATH: curl's --connect-to for it (the edge's names go to the edge; ssh's listener is local).
via() { if [ "$1" = ssh ]; then echo "::127.0.0.1:"; else echo "::$NL_EDGE_IP:"; fi; }
# small PATH OUT: --requests sequential GETs of /hello; their time_total (s), one per line, in OUT.
small() {
  local base i
  base=$(url_of "$1")
  : >"$2"
  for ((i = 0; i < requests; i++)); do
    nl "$NL_E" curl -s -o /dev/null -m 30 --cacert "$CA" --connect-to "$(via "$1")" -w '%{time_total}\n' \
      "$base/hello" >>"$2" 2>/dev/null || echo 30 >>"$2"
  done
}
pct() { sort -n "$1" | awk -v p="$2" '{v[NR] = $1} END {i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.1f", v[i] * 1000}'; }

if [ "$hol" = 1 ]; then
  netlab_loss "$loss"
  log "path: RTT $((2 * delay)) ms, ${loss} % loss each way; $requests small requests per row"
  declare -A idle50 idle99 load50 load99 bulk_rate
  for path in quic h2 ssh; do
    small "$path" "$PEER_TMP/idle-$path.txt"
    idle50[$path]=$(pct "$PEER_TMP/idle-$path.txt" 50)
    idle99[$path]=$(pct "$PEER_TMP/idle-$path.txt" 99)
    base=$(url_of "$path")
    nl "$NL_E" curl -s -o /dev/null -m 600 --cacert "$CA" --connect-to "$(via "$path")" -w '%{size_download}\n' \
      "$base/bytes?n=$((4 << 30))" >"$PEER_TMP/bulk-$path.txt" 2>/dev/null &
    bulk=$!
    track "$bulk"
    sleep 2 # the bulk transfer has its window open
    t0=$(ms_now)
    small "$path" "$PEER_TMP/load-$path.txt"
    secs=$(( ($(ms_now) - t0) ))
    kill "$bulk" 2>/dev/null
    wait "$bulk" 2>/dev/null
    load50[$path]=$(pct "$PEER_TMP/load-$path.txt" 50)
    load99[$path]=$(pct "$PEER_TMP/load-$path.txt" 99)
    log "$path: idle p50 ${idle50[$path]} ms p99 ${idle99[$path]} ms; under bulk p50 ${load50[$path]} ms p99 ${load99[$path]} ms ($secs ms for the $requests)"
  done
  printf '\nhead-of-line blocking: RTT %s ms, %s %% loss each way, %s small GETs per row (ms)\n' \
    "$((2 * delay))" "$loss" "$requests"
  printf '%-6s %10s %10s %12s %12s %16s\n' path idle_p50 idle_p99 bulk_p50 bulk_p99 bulk_p99/quic
  for path in quic h2 ssh; do
    printf '%-6s %10s %10s %12s %12s %16s\n' "$path" "${idle50[$path]}" "${idle99[$path]}" "${load50[$path]}" \
      "${load99[$path]}" "$(awk -v a="${load99[$path]}" -v b="${load99[quic]}" 'BEGIN {printf "%.2f", a / b}')"
  done
  printf 'goal: quic bulk_p99 <= 0.33 x the TCP tunnels'"'"' (h2: %s, ssh: %s)\n' \
    "$(awk -v a="${load99[quic]}" -v b="${load99[h2]}" 'BEGIN {printf "%.2f", a / b}')" \
    "$(awk -v a="${load99[quic]}" -v b="${load99[ssh]}" 'BEGIN {printf "%.2f", a / b}')"
fi

# --- the stall during a NAT rebinding (issue 13 item 6c) -------------------------------------------------
if [ "$rebinds" -gt 0 ] || [ "$rebinds_h2" -gt 0 ]; then
  netlab_loss "$rebind_loss"
  # The receiver: reads what curl writes and prints every gap of >= 1 ms between two reads as
  # "FROM_MS TO_MS" (wall clock, as ms_now), then "end FIRST_MS LAST_MS BYTES".
  cat >"$PEER_TMP/reads.py" <<'EOF'
import os, sys, time
first = last = None
total = 0
out = open(sys.argv[1], "w")
while True:
    b = os.read(0, 1 << 16)
    if not b:
        break
    now = time.time() * 1000
    if last is not None and now - last >= 1:
        out.write("%.1f %.1f\n" % (last, now))
    if first is None:
        first = now
    last = now
    total += len(b)
out.write("end %.1f %.1f %d\n" % (first or 0, last or 0, total))
EOF
  # longest FILE FROM TO: the longest gap in delivery that overlaps [FROM, TO) (ms; a gap running past
  # TO counts whole, as does silence until the end of the download).
  longest() {
    awk -v a="$2" -v b="$3" '$1 == "end" { if ($3 < b) { g = b - ($3 > a ? $3 : a); if (g > m) m = g } next }
      $2 > a && $1 < b { if ($2 - $1 > m) m = $2 - $1 } END { printf "%.0f", m + 0 }' "$1"
  }
  # stats: p50 and max of the numbers on stdin.
  stats() { sort -n | awk '{v[NR] = $1} END {if (NR == 0) {print "- -"; exit} printf "%s %s", v[int((NR + 1) / 2)], v[NR]}'; }

  # HTTP/2 (TCP), first (the QUIC rows' rebindings would end its sessions too): per rebinding, a
  # download under way (curl -m 60); what became of it (curl's status and bytes, when it ended after the
  # rebinding, the edge's word for it), and the time from the rebinding until the tunnel answers /hello
  # again (the agent's new session took the name over). The download ends only when the edge gives up
  # on the dead session (its heartbeat), so rebindings are > 30 s apart and each reconnect starts from
  # the first backoff step (a session that lived 30 s resets it).
  : >"$PEER_TMP/h2-back.txt"
  h2_story=""
  for ((i = 0; i < rebinds_h2; i++)); do
    ip netns exec "$NL_E" curl -s -m 60 --cacert "$CA" --connect-to "::$NL_EDGE_IP:" -o /dev/null \
      -w '%{size_download}' "https://h2.localhost:$EP/bytes?n=$((64 << 30))" >"$PEER_TMP/h2-dl.txt" 2>/dev/null &
    dl=$!
    track "$dl"
    sleep 3
    r=$(ms_now)
    netlab_rebind 2>/dev/null
    back=""
    while [ $(($(ms_now) - r)) -lt 30000 ]; do
      code=$(nl_curl -s -o /dev/null -m 1 --cacert "$CA" -w '%{http_code}' "https://h2.localhost:$EP/hello" 2>/dev/null)
      if [ "$code" = 200 ]; then
        back=$(($(ms_now) - r))
        break
      fi
      sleep 0.05
    done
    while kill -0 "$dl" 2>/dev/null; do sleep 0.05; done
    end_ms=$(($(ms_now) - r))
    wait "$dl"
    rc=$?
    echo "${back:-30000}" >>"$PEER_TMP/h2-back.txt"
    why=$(grep 'GET h2.localhost/bytes' "${EDGE_DIR[main]}/stderr" | tail -1 | sed -n 's/.* h2 - //p')
    h2_story+=" [served again after ${back:->30000} ms; the download ended ${end_ms} ms after the rebinding: curl exit $rc after $(cat "$PEER_TMP/h2-dl.txt") bytes, edge: ${why:-?}]"
    # The agent's new session lives 31 s before the next rebinding: its backoff starts over.
    while [ $(($(ms_now) - r - ${back:-0})) -lt 31000 ] && [ $((i + 1)) -lt "$rebinds_h2" ]; do sleep 0.2; done
  done

  # QUIC: one download, a quiet window then a rebinding window, --rebind times.
  total_s=$((3 + rebinds * 2 * window + 2))
  rec=$PEER_TMP/rebind-quic.gaps
  ip netns exec "$NL_E" bash -c 'curl -s -m "$1" --cacert "$2" --connect-to "::$3:" -o - "$4" | python3 "$5" "$6"' \
    _ "$total_s" "$CA" "$NL_EDGE_IP" "https://quic.localhost:$EP/bytes?n=$((64 << 30))" "$PEER_TMP/reads.py" \
    "$rec" &
  dl=$!
  track "$dl"
  sleep 3 # the congestion window is open
  ended_before=$(grep -c 'the session to the edge ended' "${AGENT_ERR[quic]}")
  : >"$PEER_TMP/rebind-quic.windows"
  for ((i = 0; i < rebinds; i++)); do
    q=$(ms_now)
    sleep "$window"
    r=$(ms_now)
    netlab_rebind 2>/dev/null
    sleep "$window"
    echo "$q $r $((r + window * 1000))" >>"$PEER_TMP/rebind-quic.windows"
  done
  wait "$dl"
  read -r _ first last bytes < <(grep '^end' "$rec")
  rate=$(awk -v b="$bytes" -v f="$first" -v l="$last" 'BEGIN {printf "%.1f", b / ((l - f) / 1000) / 1e6}')
  : >"$PEER_TMP/quiet.txt"
  : >"$PEER_TMP/moved.txt"
  while read -r q r e; do
    longest "$rec" "$q" "$r" >>"$PEER_TMP/quiet.txt"
    echo >>"$PEER_TMP/quiet.txt"
    longest "$rec" "$r" "$e" >>"$PEER_TMP/moved.txt"
    echo >>"$PEER_TMP/moved.txt"
  done <"$PEER_TMP/rebind-quic.windows"
  read -r quiet50 quietmax < <(stats <"$PEER_TMP/quiet.txt")
  read -r moved50 movedmax < <(stats <"$PEER_TMP/moved.txt")
  ended=$(($(grep -c 'the session to the edge ended' "${AGENT_ERR[quic]}") - ended_before))
  log "quic: $bytes bytes at $rate MB/s; longest gap per quiet window: $(tr '\n' ' ' <"$PEER_TMP/quiet.txt")ms; per rebinding: $(tr '\n' ' ' <"$PEER_TMP/moved.txt")ms; agent sessions ended: $ended"

  read -r back50 backmax < <(stats <"$PEER_TMP/h2-back.txt")
  log "h2: per rebinding, served again after / the download under way:$h2_story"
  printf '\nNAT rebinding: RTT %s ms, %s %% loss each way, %s rebindings, %s s windows (ms)\n' \
    "$((2 * delay))" "$rebind_loss" "$rebinds" "$window"
  printf 'quic  one download (%s MB/s), longest gap in delivery: quiet windows p50 %s max %s; after a rebinding p50 %s max %s; agent sessions ended: %s\n' \
    "$rate" "$quiet50" "$quietmax" "$moved50" "$movedmax" "$ended"
  printf 'h2    the TCP connection does not survive: tunnel answers again after p50 %s max %s;%s\n' \
    "$back50" "$backmax" "$h2_story"
fi
[ "${created_privsep:-0}" = 1 ] && rmdir /run/sshd 2>/dev/null
exit 0
