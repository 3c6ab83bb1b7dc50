#!/usr/bin/env bash
# redis through a TCP tunnel: `redis-cli` and `redis-benchmark` (50 clients, pipelined and not) →
# edge port → `wtmesh tcp` → a `redis-server` the test starts on loopback. Checks PING, a 1 MB value
# set and read back exactly, and that the benchmark completes every request; prints its ops/s beside
# the same benchmark run directly against redis (a figure, not a gate).
# Usage: tcp_tunnel_redis.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
# shellcheck source=tests/peers/tcp_lib.bash
source "$(dirname "$0")/tcp_lib.bash"
peer_init "$@"
T=$PEER_TMP

command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
  die "redis-server/redis-tools missing (scripts/setup.sh)"
RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" >"$T/redis.log" 2>&1 </dev/null &
track $!
wait_for 10 bash -c "redis-cli -p $RPORT ping 2>/dev/null | grep -q PONG" || die "redis-server did not start"

pick_tcp_range
start_edge main --tcp-ports "$TCP_RANGE"
start_tcp redis main redis "$RPORT"
P=${TCP_PORT[redis]}

check "redis-cli PING through the tunnel" bash -c "timeout 10 redis-cli -p $P ping | grep -qx PONG"
python3 -c 'import os,base64,sys; sys.stdout.write(base64.b64encode(os.urandom(750000)).decode())' >"$T/value.txt"
timeout 20 redis-cli -p "$P" -x set big <"$T/value.txt" >"$T/set.log" 2>&1
timeout 20 redis-cli -p "$P" --raw get big >"$T/got.txt" 2>&1
head -c -1 "$T/got.txt" >"$T/got-value.txt"  # redis-cli --raw ends the value with a newline
check "a 1 MB value set and read back exactly" cmp -s "$T/value.txt" "$T/got-value.txt"

# bench LABEL PORT ARGS...: runs redis-benchmark -q; RESULTS is how many of SET and GET reported a
# final "requests per second" figure, OPS their sum.
bench() {
  local label=$1 port=$2 figures
  shift 2
  timeout 120 redis-benchmark -h 127.0.0.1 -p "$port" -q "$@" >"$T/bench-$label.log" 2>&1
  log "$label: redis-benchmark exit $?"
  # -q rewrites a progress line with \r; the final figure of each test is "NAME: N requests per second".
  figures=$(tr '\r' '\n' <"$T/bench-$label.log" | grep -oE '(SET|GET): [0-9.]+ requests per second' |
    awk '{ last[$1] = $2 } END { for (k in last) print k, last[k] }')
  RESULTS=$(grep -c . <<<"$figures")
  OPS=$(awk '{ s += $2 } END { printf "%d", s }' <<<"$figures")
  log "$label: $(tr '\n' ' ' <<<"$figures")"
}
bench tunnel "$P" -c 50 -n 20000 -t set,get
check "redis-benchmark -c 50 through the tunnel completes SET and GET ($OPS ops/s summed)" [ "$RESULTS" = 2 ]
tunnel_ops=$OPS
bench direct "$RPORT" -c 50 -n 20000 -t set,get
direct_ops=$OPS
bench pipelined "$P" -c 50 -n 100000 -P 16 -t set,get
check "redis-benchmark -c 50 -P 16 through the tunnel completes ($OPS ops/s summed)" [ "$RESULTS" = 2 ]
check "the keyspace is intact afterwards" bash -c "timeout 10 redis-cli -p $P strlen big | grep -qx $(wc -c <"$T/value.txt")"
echo "figures: redis-benchmark -c 50 -n 20000 SET+GET summed: tunnel $tunnel_ops ops/s, direct $direct_ops ops/s"

peer_finish
