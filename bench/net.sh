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
#   sudo bash bench/net.sh [--wtmesh PATH] [--delay-ms D] [--loss P] [--requests N]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
wtmesh=$root/build/wtmesh
delay=20
loss=2
requests=100
while [ $# -gt 0 ]; do
  case $1 in
    --wtmesh) wtmesh=$2; shift 2 ;;
    --delay-ms) delay=$2; shift 2 ;;
    --loss) loss=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
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
nl_start_main
nl_start_http quic main quic "$OP" --transport quic
nl_start_http h2 main h2 "$OP" --transport h2

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
[ "${created_privsep:-0}" = 1 ] && rmdir /run/sshd 2>/dev/null
exit 0
