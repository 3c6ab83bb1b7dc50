#!/usr/bin/env bash
# Server-sent events unbuffered on every public version × upstream version pair we have here: the
# origin (tests/peers/origin.mjs for HTTP/1.1, h2_origin.mjs for h2c and TLS-h2) sends one event and
# holds the second until the test asks for it (/sse-gated, /sse-release). For each pair the first
# event must reach the public client — curl --http1.1 -N, curl --http2 -N, gtlsclient (HTTP/3) —
# while the second has not been sent yet (bounded waits, no sleeps), and the second after the release.
# Usage: sse_pairs.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"
T=$PEER_TMP
make_test_cert "$T/certs"

start_edge main
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
start_origin h1
start_h2_origin h2c --mode h2c
start_h2_origin tls --mode tls --cert "$T/certs/cert.pem" --key "$T/certs/key.pem"
HTTP_EXTRA_ARGS=()
start_http h1 main sseh1 "${ORIGIN_PORT[h1]}"
HTTP_EXTRA_ARGS=(--upstream h2c)
start_http h2c main sseh2c "${ORIGIN_PORT[h2c]}"
HTTP_EXTRA_ARGS=(--upstream-tls --upstream-ca "$T/certs/ca.pem")
start_http tls main ssetls "${ORIGIN_PORT[tls]}"

# one_pair UPSTREAM PUBLIC: opens the gated stream with the public client, waits for event 1, checks
# event 2 is absent, releases it, waits for event 2.
n=0
one_pair() {
  local up=$1 pub=$2 name out pid
  n=$((n + 1))
  case "$up" in h1) name=sseh1 ;; h2c) name=sseh2c ;; tls) name=ssetls ;; esac
  local url="https://$name.localhost:$EP/sse-gated?id=$n"
  out=$T/sse-$up-$pub
  rm -rf "$out" "$out.d"
  case "$pub" in
    h1 | h2)
      local curl_v=--http2
      [ "$pub" = h1 ] && curl_v=--http1.1
      curl -sS -N -m 30 "$curl_v" --cacert "$CA" "$url" -o "$out" 2>"$out.err" &
      pid=$!
      ;;
    h3)
      mkdir -p "$out.d"
      timeout -k 5 30 gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump \
        --handshake-timeout=10s --timeout=30s --sni="$name.localhost" --download="$out.d" \
        127.0.0.1 "$EP" "$url" >"$out.log" 2>&1 </dev/null &
      pid=$!
      out="$out.d/sse-gated?id=$n"
      ;;
  esac
  track "$pid"
  wait_for 10 bash -c "compgen -G '$T/sse-$up-$pub*' >/dev/null && grep -rqs 'data: first' '$T/sse-$up-$pub'*" >/dev/null
  local first=$?
  local early=no
  grep -rqs 'data: second' "$T/sse-$up-$pub"* && early=yes
  check "SSE $up upstream -> public $pub: the first event arrives while the second is held (first: $([ $first = 0 ] && echo yes || echo no), second early: $early)" \
    bash -c "[ $first = 0 ] && [ $early = no ]"
  curl -sS -m 10 --cacert "$CA" -o /dev/null "https://$name.localhost:$EP/sse-release?id=$n"
  wait_for 10 bash -c "grep -rqs 'data: second' '$T/sse-$up-$pub'*"
  check "SSE $up upstream -> public $pub: the second event after the release" [ $? = 0 ]
  wait "$pid" 2>/dev/null
}

for up in h1 h2c tls; do
  for pub in h1 h2; do one_pair "$up" "$pub"; done
  if command -v gtlsclient >/dev/null; then
    one_pair "$up" h3
  else
    skip "gtlsclient not installed: HTTP/3 SSE for $up not checked"
  fi
done

peer_finish
