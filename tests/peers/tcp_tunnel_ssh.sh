#!/usr/bin/env bash
# OpenSSH through a TCP tunnel: `ssh` → edge port → `wtmesh tcp` → a test `sshd` on loopback (its own
# host key and authorized key). A command's output, then 20 MB up and 20 MB down compared exactly
# (sha256), then a port forward inside the SSH session (-L) carrying one more connection. Then the same
# sshd through the mesh: `ssh` → `wtmesh connect ssh` (a second agent) → edge → the tunnel's agent:
# a command and 20 MB up and down exact (docs/protocol.md §4.3).
# Usage: tcp_tunnel_ssh.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
# shellcheck source=tests/peers/tcp_lib.bash
source "$(dirname "$0")/tcp_lib.bash"
peer_init "$@"
T=$PEER_TMP

command -v ssh >/dev/null && [ -x /usr/sbin/sshd ] || die "openssh-client/openssh-server missing (scripts/setup.sh)"
# sshd needs its privilege-separation directory; created empty when missing (as bench/ does).
if [ ! -d /run/sshd ]; then mkdir -m 0755 /run/sshd || die "cannot create /run/sshd"; fi

dir=$T/ssh
mkdir -m 700 "$dir"
ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key" || die "ssh-keygen (host key) failed"
ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key" || die "ssh-keygen (client key) failed"
cp "$dir/client_key.pub" "$dir/authorized_keys"
SSHD_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/sshd_config" <<CFG
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
UseDNS no
LogLevel ERROR
CFG
/usr/sbin/sshd -D -e -f "$dir/sshd_config" >"$T/sshd.log" 2>&1 </dev/null &
track $!
wait_for 10 bash -c "(exec 3<>/dev/tcp/127.0.0.1/$SSHD_PORT) 2>/dev/null" || die "sshd did not start: $(cat "$T/sshd.log")"

pick_tcp_range
start_edge main --tcp-ports "$TCP_RANGE"
start_tcp ssh main ssh "$SSHD_PORT"
P=${TCP_PORT[ssh]}
SSH_BASE=(ssh -F /dev/null -i "$dir/client_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o BatchMode=yes -o LogLevel=ERROR -o ConnectTimeout=15 -o ServerAliveInterval=0)
SSH=("${SSH_BASE[@]}" -p "$P")

out=$(timeout 30 "${SSH[@]}" root@127.0.0.1 'echo "wtmesh $((6 * 7))"; uname -s' 2>"$T/ssh-cmd.log")
check "ssh runs a command through the tunnel: $(tr '\n' ' ' <<<"$out")" [ "$out" = "$(printf 'wtmesh 42\nLinux')" ]

head -c 20000000 /dev/urandom >"$T/data.bin"
want=$(sha256sum <"$T/data.bin" | cut -d' ' -f1)
# ssh_bytes WHAT SSH...: 20 MB up (ssh stdin → remote sha256sum) and down (remote cat → ssh stdout),
# compared with $want.
ssh_bytes() {
  local what=$1 start ms up
  shift
  start=$(now_ms)
  up=$(timeout 120 "$@" root@127.0.0.1 'sha256sum | cut -d" " -f1' <"$T/data.bin" 2>>"$T/ssh-up.log")
  ms=$(($(now_ms) - start))
  check "20 MB up $what arrive exactly (${ms} ms)" [ "$up" = "$want" ]
  start=$(now_ms)
  timeout 120 "$@" root@127.0.0.1 "cat '$T/data.bin'" >"$T/down.bin" 2>>"$T/ssh-down.log"
  ms=$(($(now_ms) - start))
  check "20 MB down $what arrive exactly (${ms} ms)" [ "$(sha256sum <"$T/down.bin" | cut -d' ' -f1)" = "$want" ]
}
ssh_bytes "through the tunnel" "${SSH[@]}"

# Sessions one after another and two at once: each is its own tunnel stream.
timeout 30 "${SSH[@]}" root@127.0.0.1 'sleep 3; echo a' >"$T/slow.out" 2>/dev/null &
slow=$!
b=$(timeout 30 "${SSH[@]}" root@127.0.0.1 'echo b' 2>/dev/null)
check "a second session is not held behind a slow one: '$b' came first" \
  bash -c "[ '$b' = b ] && kill -0 $slow 2>/dev/null"
wait "$slow"
check "the slow session ends with its own output" grep -qx a "$T/slow.out"
check "the edge relayed and closed the connections" bash -c "! grep -qiE 'error|protocol' '${AGENT_ERR[ssh]}'"

# --- through connect -----------------------------------------------------------------------------
TOKEN_B=$("$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name laptop --connect ssh) || die "wtmesh token failed"
start_connect sshc main ssh "$TOKEN_B"
SSH_C=("${SSH_BASE[@]}" -p "${CONNECT_PORT[sshc]}")
out=$(timeout 30 "${SSH_C[@]}" root@127.0.0.1 'echo "mesh $((6 * 7))"' 2>"$T/sshc-cmd.log")
check "ssh runs a command through connect (agent → edge → agent): '$out'" [ "$out" = "mesh 42" ]
ssh_bytes "through connect" "${SSH_C[@]}"

peer_finish
