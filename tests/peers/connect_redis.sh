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

start_redis

pick_tcp_range
start_edge main --tcp-ports "$TCP_RANGE" --route "direct-redis=127.0.0.1:$RPORT"
start_tcp redis main redis "$RPORT" --private
TOKEN=$("$WTMESH" token --state-dir "${EDGE_STATE[main]}" --name client --connect redis --connect direct-redis) ||
  die "wtmesh token failed"
start_connect mesh main redis "$TOKEN"
P=${CONNECT_PORT[mesh]}

redis_value_checks "$P" "through connect"
redis_bench mesh "$P" -c 50 -n 20000 -t set,get
check "redis-benchmark -c 50 through connect (agent → edge → agent) completes SET and GET ($OPS ops/s)" [ "$RESULTS" = 2 ]
mesh_ops=$OPS
start_connect routed main direct-redis "$TOKEN"
check "redis-cli PING through connect to an edge --route" \
  bash -c "timeout 10 redis-cli -p ${CONNECT_PORT[routed]} ping | grep -qx PONG"
redis_bench routed "${CONNECT_PORT[routed]}" -c 50 -n 20000 -t set,get
check "redis-benchmark -c 50 through connect to an edge --route completes ($OPS ops/s)" [ "$RESULTS" = 2 ]
routed_ops=$OPS
redis_bench direct "$RPORT" -c 50 -n 20000 -t set,get
direct_ops=$OPS
check "the keyspace is intact afterwards" bash -c "timeout 10 redis-cli -p $P strlen big | grep -qx $(wc -c <"$T/value.txt")"
echo "figures: redis-benchmark -c 50 -n 20000 SET+GET summed: connect (agent→edge→agent) $mesh_ops ops/s," \
  "connect to an edge route $routed_ops ops/s, direct $direct_ops ops/s"

peer_finish
