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

start_redis

pick_tcp_range
start_edge main --tcp-ports "$TCP_RANGE"
start_tcp redis main redis "$RPORT"
P=${TCP_PORT[redis]}

redis_value_checks "$P" "through the tunnel"
redis_bench tunnel "$P" -c 50 -n 20000 -t set,get
check "redis-benchmark -c 50 through the tunnel completes SET and GET ($OPS ops/s summed)" [ "$RESULTS" = 2 ]
tunnel_ops=$OPS
redis_bench direct "$RPORT" -c 50 -n 20000 -t set,get
direct_ops=$OPS
redis_bench pipelined "$P" -c 50 -n 100000 -P 16 -t set,get
check "redis-benchmark -c 50 -P 16 through the tunnel completes ($OPS ops/s summed)" [ "$RESULTS" = 2 ]
check "the keyspace is intact afterwards" bash -c "timeout 10 redis-cli -p $P strlen big | grep -qx $(wc -c <"$T/value.txt")"
echo "figures: redis-benchmark -c 50 -n 20000 SET+GET summed: tunnel $tunnel_ops ops/s, direct $direct_ops ops/s"

peer_finish
