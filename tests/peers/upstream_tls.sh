#!/usr/bin/env bash
# TLS to the local service (`wtmesh http --upstream-tls`), with Node's https / http2 servers as the
# upstream and curl as the public client through our edge. Checks:
#   - --upstream-ca: a service with a certificate from our test CA answers (HTTP/1.1 over TLS when the
#     server offers only http/1.1); bodies both ways byte-exact (3 MiB up, 5 MiB down)
#   - keep-alive over TLS: 20 sequential requests use few upstream connections
#   - no CA (system trust only): a 502 (the public response naming nothing inside the tunnel) and the agent's log naming the certificate problem
#   - --upstream-sni with a name the certificate does not carry: 502 naming the name
#   - --upstream-insecure: answers, and the agent's startup log says the certificate is not checked
#   - a TLS server offering h2 (Node http2.createSecureServer): ALPN picks HTTP/2; bodies byte-exact;
#     30 concurrent requests share one upstream connection; --upstream http1 keeps HTTP/1.1
# Usage: upstream_tls.sh PATH_OF_WTMESH
# shellcheck source=tests/peers/lib.bash
source "$(dirname "$0")/lib.bash"
peer_init "$@"
T=$PEER_TMP
make_test_cert "$T/certs"

start_edge main
EP=${EDGE_PORT[main]}
CA=${EDGE_STATE[main]}/ca.pem
start_h2_origin h1 --mode tls-h1 --cert "$T/certs/cert.pem" --key "$T/certs/key.pem"
OP=${ORIGIN_PORT[h1]}

# pcurl URL [curl args...]: prints the status; body in $T/body, headers in $T/head.
pcurl() {
  local url=$1
  shift
  curl -sS -m 30 --cacert "$CA" -o "$T/body" -D "$T/head" -w '%{http_code}' "$@" "$url" 2>"$T/curl.err"
}

HTTP_EXTRA_ARGS=(--upstream-tls --upstream-ca "$T/certs/ca.pem")
start_http good main good "$OP"
B=https://good.localhost:$EP
out=$(pcurl "$B/hello")
check "--upstream-ca: 200 from the TLS upstream (got $out)" [ "$out" = 200 ]
check "--upstream-ca: exact body" [ "$(cat "$T/body")" = "hello from the h2 origin" ]
out=$(pcurl "$B/proto")
check "the upstream saw HTTP/1.1 over TLS, ALPN http/1.1 ($(cat "$T/body"))" \
  bash -c "grep -q '\"httpVersion\":\"1.1\"' '$T/body' && grep -q '\"alpn\":\"http/1.1\"' '$T/body'"
head -c 3145728 /dev/urandom >"$T/up.bin"
out=$(pcurl "$B/echo" --data-binary "@$T/up.bin" -H 'content-type: application/octet-stream')
check "3 MiB POST echoed byte for byte over TLS ($out)" bash -c "[ '$out' = 200 ] && cmp -s '$T/up.bin' '$T/body'"
out=$(pcurl "$B/bytes?n=5242880")
sent=$(curl -sS -m 10 --cacert "$CA" "$B/stats" | grep -oE '"sha256":"[0-9a-f]+"' | cut -d'"' -f4)
got=$(sha256sum "$T/body" | cut -d' ' -f1)
check "5 MiB download over TLS arrives whole ($out, sha256 match)" bash -c "[ '$out' = 200 ] && [ '$sent' = '$got' ]"
before=$(curl -sS -m 10 --cacert "$CA" "$B/stats" | grep -oE '"connections":[0-9]+' | cut -d: -f2)
for _ in $(seq 20); do curl -sS -m 10 --cacert "$CA" -o /dev/null "$B/hello"; done
after=$(curl -sS -m 10 --cacert "$CA" "$B/stats" | grep -oE '"connections":[0-9]+' | cut -d: -f2)
check "keep-alive over TLS: 20 requests opened $((after - before)) upstream connections" [ $((after - before)) -le 2 ]

# System trust only: our test CA is not in it.
HTTP_EXTRA_ARGS=(--upstream-tls)
start_http untrusted main untrusted "$OP"
out=$(pcurl "https://untrusted.localhost:$EP/hello")
check "untrusted certificate: 502 (got $out)" [ "$out" = 502 ]
check "untrusted certificate: the agent's log says so" \
  wait_for 3 grep -qi 'upstream TLS failed: certificate not trusted for localhost' "${AGENT_OUT[untrusted]}"
check "untrusted certificate: the public response does not" bash -c "! grep -qi 'certificate' '$T/head' '$T/body'"

HTTP_EXTRA_ARGS=(--upstream-tls --upstream-ca "$T/certs/ca.pem" --upstream-sni other.example)
start_http badname main badname "$OP"
out=$(pcurl "https://badname.localhost:$EP/hello")
check "wrong --upstream-sni: 502 (got $out)" [ "$out" = 502 ]
check "wrong --upstream-sni: the agent's log names the name" \
  wait_for 3 grep -qi 'not trusted for other.example' "${AGENT_OUT[badname]}"

HTTP_EXTRA_ARGS=(--upstream-tls --upstream-insecure)
start_http insecure main insecure "$OP"
out=$(pcurl "https://insecure.localhost:$EP/hello")
check "--upstream-insecure: 200 without any CA (got $out)" [ "$out" = 200 ]
check "--upstream-insecure: the startup log says the certificate is not checked" \
  grep -q 'is not checked (--upstream-insecure)' "${AGENT_ERR[insecure]}"

# --- ALPN h2.
start_h2_origin h2 --mode tls --cert "$T/certs/cert.pem" --key "$T/certs/key.pem"
OP2=${ORIGIN_PORT[h2]}
HTTP_EXTRA_ARGS=(--upstream-tls --upstream-ca "$T/certs/ca.pem")
start_http alpn main alpn "$OP2"
B2=https://alpn.localhost:$EP
out=$(pcurl "$B2/proto" --http2)
check "ALPN h2: the upstream saw HTTP/2 over TLS ($(cat "$T/body"))" \
  bash -c "[ '$out' = 200 ] && grep -q '\"httpVersion\":\"2.0\"' '$T/body' && grep -q '\"alpn\":\"h2\"' '$T/body'"
out=$(pcurl "$B2/echo" --data-binary "@$T/up.bin" -H 'content-type: application/octet-stream')
check "ALPN h2: 3 MiB POST echoed byte for byte ($out)" bash -c "[ '$out' = 200 ] && cmp -s '$T/up.bin' '$T/body'"
out=$(pcurl "$B2/bytes?n=5242880" --http2)
sent=$(curl -sS -m 10 --cacert "$CA" "$B2/stats" | grep -oE '"sha256":"[0-9a-f]+"' | cut -d'"' -f4)
got=$(sha256sum "$T/body" | cut -d' ' -f1)
check "ALPN h2: 5 MiB download arrives whole ($out, sha256 match)" bash -c "[ '$out' = 200 ] && [ '$sent' = '$got' ]"
pids=()
for i in $(seq 30); do
  curl -sS -m 30 --http2 --cacert "$CA" -o "$T/slow.$i" "$B2/slow?ms=400" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
ok=$(cat "$T"/slow.* | grep -c '^slow$')
conns=$(curl -sS -m 10 --cacert "$CA" "$B2/stats" | grep -oE '"connections":[0-9]+' | cut -d: -f2)
check "ALPN h2: 30 concurrent requests answered ($ok) over one upstream connection ($conns in all)" \
  bash -c "[ '$ok' = 30 ] && [ '$conns' = 1 ]"

HTTP_EXTRA_ARGS=(--upstream-tls --upstream-ca "$T/certs/ca.pem" --upstream http1)
start_http forced main forced "$OP2"
out=$(pcurl "https://forced.localhost:$EP/proto")
check "--upstream http1 with TLS offers only http/1.1 ($(cat "$T/body"))" \
  bash -c "[ '$out' = 200 ] && grep -q '\"alpn\":\"http/1.1\"' '$T/body'"

peer_finish
