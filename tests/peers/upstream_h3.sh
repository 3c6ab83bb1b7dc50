#!/usr/bin/env bash
# HTTP/3 to the local service (`wtmesh http --upstream h3`), with ngtcp2's gtlsserver (nghttp3 inside,
# serving files from a directory; we did not write it) as the upstream and, on the public side, curl
# --http1.1 / --http2 through our edge and ngtcp2's gtlsclient over the edge's HTTP/3 (the matrix cells
# HTTP/1.1→h3, HTTP/2→h3, h3→h3). Checks:
#   - --upstream-ca: a 1 KiB file and an 8 MB file arrive byte for byte (HTTP/1.1 and HTTP/2 public);
#     HEAD answers 200 with no body (both public versions); gtlsclient through the edge's HTTP/3 gets
#     the 1 KiB and the 8 MB file byte for byte; an 8 MB POST body goes up (gtlsserver
#     ignores it and serves the file); gtlsserver's 404 passes through
#   - 40 concurrent 1 MB downloads with gtlsserver's stream limit at 8 per connection (more than one
#     connection's worth): every one byte for byte
#   - system trust only: a 502 and the agent's log saying the HTTP/3 handshake failed and why (GnuTLS:
#     "The certificate is NOT trusted. The certificate issuer is unknown.")
#   - --upstream-insecure: answers without any CA, and the startup log says the certificate is unchecked
#   - nothing listening on the UDP port: a 502 "handshake timed out" within a few seconds (UDP has no
#     RST; the agent bounds the handshake at 3 s)
#   - gtlsserver killed during a download: the download ends (truncated) instead of hanging; requests
#     get 502 while it is down; after a restart on the same port requests succeed again
# Usage: upstream_h3.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"
command -v gtlsserver >/dev/null || die "gtlsserver not found (Debian package ngtcp2-server; run scripts/setup.sh)"
command -v gtlsclient >/dev/null || die "gtlsclient not found (Debian package ngtcp2-client; run scripts/setup.sh)"
T=$PEER_TMP
make_test_cert "$T/certs"
H=$T/htdocs
mkdir -p "$H"
head -c 1024 /dev/urandom >"$H/1k.bin"
head -c 8000000 /dev/urandom >"$H/big.bin"
head -c 1000000 /dev/urandom >"$H/1m.bin"
head -c 48000000 /dev/urandom >"$H/huge.bin"

free_udp_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_udp_port)
GTLS_PID=""
start_gtls() {
  gtlsserver -q -d "$H" --max-streams-bidi=8 127.0.0.1 "$UP" "$T/certs/key.pem" "$T/certs/cert.pem" \
    >>"$T/gtlsserver.log" 2>&1 </dev/null &
  GTLS_PID=$!
  track "$GTLS_PID"
  wait_for 5 bash -c "ss -Hlun 'sport = :$UP' | grep -q ." || die "gtlsserver did not bind UDP $UP"
}
start_gtls

start_edge main
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem

# pcurl URL [curl args...]: prints the status; body in $T/body, headers in $T/head.
pcurl() {
  local url=$1
  shift
  curl -sS -m 30 --cacert "$CA" -o "$T/body" -D "$T/head" -w '%{http_code}' "$@" "$url" 2>"$T/curl.err"
}
werr() { grep -i '^wtmesh-error:' "$T/head" | tr -d '\r'; }

HTTP_EXTRA_ARGS=(--upstream h3 --upstream-ca "$T/certs/ca.pem")
start_http good main good "$UP"
B=https://good.localhost:$EP
out=$(pcurl "$B/1k.bin" --http1.1)
check "HTTP/1.1 public → h3: 1 KiB file 200 (got $out $(werr))" [ "$out" = 200 ]
check "HTTP/1.1 public → h3: 1 KiB byte for byte" cmp -s "$H/1k.bin" "$T/body"
out=$(pcurl "$B/big.bin" --http2)
check "HTTP/2 public → h3: 8 MB file 200 (got $out)" [ "$out" = 200 ]
check "HTTP/2 public → h3: 8 MB byte for byte ($(stat -c %s "$T/body") bytes)" cmp -s "$H/big.bin" "$T/body"
out=$(pcurl "$B/big.bin" --http1.1)
check "HTTP/1.1 public → h3: 8 MB byte for byte ($out)" bash -c "[ '$out' = 200 ] && cmp -s '$H/big.bin' '$T/body'"
for v in --http1.1 --http2; do
  out=$(curl -sS -m 30 --cacert "$CA" -I -o /dev/null -w '%{http_code} %{size_download}' "$v" "$B/1k.bin" 2>&1)
  check "HEAD ($v public): 200 and no body (got $out)" [ "$out" = "200 0" ]
done
check "the edge logs the HEAD requests: 200" edge_log_has main "HEAD good.localhost/1k.bin 200"
# A request body goes up through the QUIC stream's bounded send buffer (gtlsserver reads and ignores
# it, then serves the file).
out=$(pcurl "$B/1k.bin" --http2 --data-binary "@$H/big.bin" -H 'content-type: application/octet-stream')
check "8 MB POST body up to the h3 upstream: answered 200 with the file (got $out)" \
  bash -c "[ '$out' = 200 ] && cmp -s '$H/1k.bin' '$T/body'"
out=$(pcurl "$B/nothing-here" --http2)
check "a missing file: gtlsserver's 404 passes through (got $out)" [ "$out" = 404 ]

# h3 public → h3 upstream: gtlsclient through the edge's HTTP/3.
mkdir -p "$T/dl"
timeout -k 5 60 gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump --handshake-timeout=10s \
  --timeout=30s --sni=good.localhost --download="$T/dl" 127.0.0.1 "$EP" "$B/1k.bin" >"$T/gtlsclient.out" 2>&1 \
  </dev/null
check "h3 public → h3 (gtlsclient through the edge): exits 0" [ $? -eq 0 ]
check "h3 public → h3: :status 200" grep -qE '^http: stream 0x0 \[:status: 200\]' "$T/gtlsclient.out"
check "h3 public → h3: 1 KiB byte for byte" cmp -s "$H/1k.bin" "$T/dl/1k.bin"
timeout -k 5 60 gtlsclient --exit-on-all-streams-close --no-quic-dump --no-http-dump --handshake-timeout=10s \
  --timeout=30s --sni=good.localhost --download="$T/dl" 127.0.0.1 "$EP" "$B/big.bin" >"$T/gtlsclient-big.out" 2>&1 \
  </dev/null
check "h3 public → h3: 8 MB byte for byte (gtlsclient exit $?)" cmp -s "$H/big.bin" "$T/dl/big.bin"

# More concurrent requests than one connection's stream limit (8).
pids=()
for i in $(seq 40); do
  curl -sS -m 60 --http2 --cacert "$CA" -o "$T/c.$i" "$B/1m.bin" 2>/dev/null &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
ok=0
for i in $(seq 40); do cmp -s "$H/1m.bin" "$T/c.$i" && ok=$((ok + 1)); done
check "40 concurrent 1 MB downloads over a stream limit of 8: $ok byte for byte" [ "$ok" = 40 ]

# System trust only: our test CA is not in it.
HTTP_EXTRA_ARGS=(--upstream h3)
start_http untrusted main untrusted "$UP"
out=$(pcurl "https://untrusted.localhost:$EP/1k.bin")
check "untrusted certificate: 502 (got $out)" [ "$out" = 502 ]
check "untrusted certificate: the agent's log says the HTTP/3 handshake failed on the certificate" \
  wait_for 3 grep -qi 'upstream HTTP/3 handshake failed.*certificate is NOT trusted' "${AGENT_OUT[untrusted]}"
check "untrusted certificate: the public response does not ($(werr))" bash -c "! grep -qi 'certificate' '$T/head'"

HTTP_EXTRA_ARGS=(--upstream h3 --upstream-insecure)
start_http insecure main insecure "$UP"
out=$(pcurl "https://insecure.localhost:$EP/1k.bin")
check "--upstream-insecure: 200 without any CA (got $out)" bash -c "[ '$out' = 200 ] && cmp -s '$H/1k.bin' '$T/body'"
check "--upstream-insecure: the startup log says the certificate is not checked" \
  grep -q 'is not checked (--upstream-insecure)' "${AGENT_ERR[insecure]}"

# Nothing on the UDP port.
DOWN=$(free_udp_port)
HTTP_EXTRA_ARGS=(--upstream h3 --upstream-ca "$T/certs/ca.pem")
start_http down main down "$DOWN"
t0=$(now_ms)
out=$(pcurl "https://down.localhost:$EP/1k.bin")
dt=$(($(now_ms) - t0))
check "service down: 502 (got $out: $(werr))" [ "$out" = 502 ]
check "service down: answered in ${dt} ms (the port's ICMP port unreachable ends the dial, < 3 s)" [ "$dt" -lt 3000 ]
check "service down: the agent's log says nothing listens there" \
  wait_for 3 grep -qi 'upstream HTTP/3 handshake failed.*port unreachable' "${AGENT_OUT[down]}"

# gtlsserver killed during a slow download, then restarted.
# (48 MB at 2 MB/s: far more than the windows and buffers between gtlsserver and curl hold.)
curl -sS -m 60 --http1.1 --cacert "$CA" --limit-rate 2M -o "$T/slow.bin" "$B/huge.bin" 2>"$T/slow.err" &
slow=$!
sleep 1.5
kill -9 "$GTLS_PID"
t0=$(now_ms)
wait "$slow"
st=$?
dt=$(($(now_ms) - t0))
check "killed mid-download: the download ends truncated (curl $st, $(stat -c %s "$T/slow.bin") of 48000000 bytes) in ${dt} ms" \
  bash -c "[ '$st' != 0 ] && [ $(stat -c %s "$T/slow.bin") -lt 48000000 ] && [ $dt -lt 30000 ]"
t0=$(now_ms)
out=$(pcurl "$B/1k.bin")
dt=$(($(now_ms) - t0))
check "while the service is down: 502 in ${dt} ms (got $out: $(werr))" bash -c "[ '$out' = 502 ] && [ $dt -lt 3000 ]"
start_gtls
ok=""
for _ in $(seq 20); do
  out=$(pcurl "$B/1k.bin")
  if [ "$out" = 200 ] && cmp -s "$H/1k.bin" "$T/body"; then
    ok=1
    break
  fi
  sleep 0.5
done
check "after gtlsserver restarted: 200 byte for byte again" [ -n "$ok" ]
out=$(pcurl "$B/big.bin" --http2)
check "after the restart: 8 MB byte for byte ($out)" bash -c "[ '$out' = 200 ] && cmp -s '$H/big.bin' '$T/body'"

peer_finish
