#!/usr/bin/env bash
# redis through the mesh: `redis-cli` and `redis-benchmark` (50 clients) → `wtmesh connect redis` (agent
# B) → edge → a private `wtmesh tcp` (agent A) → a `redis-server` the test starts on loopback; and the
# same through an edge `--route` straight to it. Checks PING, a 1 MB value set and read back exactly,
# and that the benchmark completes every request; prints its ops/s beside the same benchmark run
# directly against redis (a figure, not a gate).
# Usage: connect_redis.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
# shellcheck source=tests/peers/tcp_lib.bash
source "$(dirname "$0")/tcp_lib.bash"
peer_init "$@"
T=$PEER_TMP

command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
  die "redis-server/redis-tools missing (scripts/setup.sh)"
RPORT=$(free_tcp_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$T" >"$T/redis.log" 2>&1 </dev/null &
track $!
wait_for 10 bash -c "redis-cli -p $RPORT ping 2>/dev/null | grep -q PONG" || die "redis-server did not start"

pick_tcp_range
start_edge main --tcp-ports "$TCP_RANGE" --route "direct-redis=127.0.0.1:$RPORT"
start_tcp redis main redis "$RPORT" --private
TOKEN=$("$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name client --connect redis --connect direct-redis) ||
  die "wtmesh token failed"
start_connect mesh main redis "$TOKEN"
P=${CONNECT_PORT[mesh]}

check "redis-cli PING through connect" bash -c "timeout 10 redis-cli -p $P ping | grep -qx PONG"
python3 -c 'import os,base64,sys; sys.stdout.write(base64.b64encode(os.urandom(750000)).decode())' >"$T/value.txt"
timeout 20 redis-cli -p "$P" -x set big <"$T/value.txt" >"$T/set.log" 2>&1
timeout 20 redis-cli -p "$P" --raw get big >"$T/got.txt" 2>&1
head -c -1 "$T/got.txt" >"$T/got-value.txt"  # redis-cli --raw ends the value with a newline
check "a 1 MB value set and read back exactly through connect" cmp -s "$T/value.txt" "$T/got-value.txt"

# bench LABEL PORT ARGS...: redis-benchmark -q; RESULTS = how many of SET and GET reported a final
# "requests per second" figure, OPS their sum.
bench() {
  local label=$1 port=$2 figures
  shift 2
  timeout 120 redis-benchmark -h 127.0.0.1 -p "$port" -q "$@" >"$T/bench-$label.log" 2>&1
  figures=$(tr '\r' '\n' <"$T/bench-$label.log" | grep -oE '(SET|GET): [0-9.]+ requests per second' |
    awk '{ last[$1] = $2 } END { for (k in last) print k, last[k] }')
  RESULTS=$(grep -c . <<<"$figures")
  OPS=$(awk '{ s += $2 } END { printf "%d", s }' <<<"$figures")
  log "$label: $(tr '\n' ' ' <<<"$figures")"
}
bench mesh "$P" -c 50 -n 20000 -t set,get
check "redis-benchmark -c 50 through connect (agent → edge → agent) completes SET and GET ($OPS ops/s)" [ "$RESULTS" = 2 ]
mesh_ops=$OPS
start_connect routed main direct-redis "$TOKEN"
check "redis-cli PING through connect to an edge --route" \
  bash -c "timeout 10 redis-cli -p ${CONNECT_PORT[routed]} ping | grep -qx PONG"
bench routed "${CONNECT_PORT[routed]}" -c 50 -n 20000 -t set,get
check "redis-benchmark -c 50 through connect to an edge --route completes ($OPS ops/s)" [ "$RESULTS" = 2 ]
routed_ops=$OPS
bench direct "$RPORT" -c 50 -n 20000 -t set,get
direct_ops=$OPS
check "the keyspace is intact afterwards" bash -c "timeout 10 redis-cli -p $P strlen big | grep -qx $(wc -c <"$T/value.txt")"
echo "figures: redis-benchmark -c 50 -n 20000 SET+GET summed: connect (agent→edge→agent) $mesh_ops ops/s," \
  "connect to an edge route $routed_ops ops/s, direct $direct_ops ops/s"

peer_finish
